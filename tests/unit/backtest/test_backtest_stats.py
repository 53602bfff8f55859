"""Statistics on hand-made trades."""

from __future__ import annotations

from typing import Any

import pytest

from arbray.backtest.stats import core_stats, execution_kpis, full_stats, score_band

pytestmark = pytest.mark.unit
DAY = 86_400_000


def trade(net: float, fees: float, day: int, score: float = 76.0, **kw: Any) -> dict[str, Any]:
    t = {"net_r": net, "gross_r": net + fees, "fees_r": fees, "funding_r": 0.0, "exit_ts_ms": day * DAY + 1,
         "entry_ts_ms": day * DAY, "symbol": "BTCUSDT", "direction": "LONG", "score": score,
         "exit_reason": "tp" if net > 0 else "sl", "qty": 1.0, "entry_maker_qty": 1.0, "tp_maker_qty": 0.5,
         "tp_taker_qty": 0.5, "entry_slippage_r": 0.0, "entry_timed_out": False, "tp_legs_crossed": 2,
         "tp_legs_fallback": 1}
    t.update(kw)
    return t


def test_core_stats_by_hand() -> None:
    trades = [trade(1.0, 0.1, 0), trade(-1.2, 0.2, 0), trade(0.5, 0.1, 1), trade(-0.3, 0.1, 2)]
    s = core_stats(trades)
    assert s["trades"] == 4 and s["win_rate"] == 0.5
    assert s["net_r"] == pytest.approx(0.0)
    assert s["fees_r"] == pytest.approx(0.5) and s["gross_r"] == pytest.approx(0.5)
    assert s["profit_factor"] == pytest.approx(1.5 / 1.5)
    assert s["avg_win_r"] == pytest.approx(0.75) and s["avg_loss_r"] == pytest.approx(-0.75)
    assert s["payoff"] == pytest.approx(1.0)
    assert s["max_drawdown_r"] == pytest.approx(1.2)  # peak 1.0 → −0.2


def test_full_stats_ratios_and_breakdowns() -> None:
    trades = [trade(1.0, 0.1, 0), trade(-1.2, 0.2, 0, score=91), trade(0.5, 0.1, 1), trade(-0.3, 0.1, 2)]
    s = full_stats(trades, flips=1, span_ms=3 * DAY, equity=[], strategy_id=None)
    # daily net R: −0.2, 0.5, −0.3 → mean 0, so Sharpe and Sortino are 0
    assert s["sharpe"] == pytest.approx(0.0) and s["sortino"] == pytest.approx(0.0)
    assert s["by_exit_reason"]["sl"]["trades"] == 2
    assert s["by_score_band"]["90+"]["trades"] == 1
    assert s["exposure"] == pytest.approx(4 / (3 * DAY))
    k = execution_kpis(trades, flips=1)
    assert k["maker_ratio_entry"] == 1.0 and k["maker_ratio_tp"] == 0.5
    assert k["friction_r"] == pytest.approx(0.125) and k["tp_overshoot_rate"] == 0.5
    assert k["flips_per_position"] == 0.25


def test_score_bands() -> None:
    assert [score_band(x) for x in (95, 85, 75, 65, 10)] == ["90+", "80-90", "70-80", "60-70", "<60"]
