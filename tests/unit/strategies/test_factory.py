"""Golden cases for the V5.4 factory kind, hand-computed from digest §4.6 line by line."""

from __future__ import annotations

import pytest
from arbray.strategies.factory import FactoryConfig, layer_maxima, score

from arbray.scoring.config import WrongSymbolError
from arbray.scoring.evaluator import Evaluator
from arbray.scoring.registry import get_kind
from arbray.scoring.result import ScoreResult
from tests.unit.scoring.helpers import BASE_SNAPSHOT, config, snap

pytestmark = pytest.mark.unit

BTC_CONTROL = {"weight_direction": 38, "weight_env": 32, "weight_aux": 28, "weight_momentum": 2, "entry_score": 71}


def fcfg(**kw: object) -> FactoryConfig:
    c = config("factory", **kw)
    assert isinstance(c, FactoryConfig)
    return c


def layers(r: ScoreResult) -> dict[str, tuple[float, float, float]]:
    return {lay.name: (lay.raw, lay.score, lay.max) for lay in r.layers}


# ------------------------------------------------------------------ weight scaling
def test_weight_scaling_examples_from_the_digest() -> None:
    # norm = 100/100; w_dir_eff = (55 + 5)·1 = 60 → 60·55/80, 60·25/80, 25, 15
    assert layer_maxima(55, 25, 15, 5) == (41.25, 18.75, 25.0, 15.0)
    # w_dir_eff = 38 + 2 = 40 → 27.5, 12.5, 32, 28
    assert layer_maxima(38, 32, 28, 2) == (27.5, 12.5, 32.0, 28.0)
    assert sum(layer_maxima(38, 32, 28, 2)) == 100.0
    r = score(BASE_SNAPSHOT, fcfg(**BTC_CONTROL))
    assert [lay.max for lay in r.layers] == [27.5, 12.5, 32.0, 28.0]


# ------------------------------------------------------------------ golden totals
def test_golden_default_weights() -> None:
    """BTC, 30m/4h: fast 50 > 0 and slow 200 > 0 → LONG, resonance 30; P99 buy 12 → 20;
    accel +3 → 5; direction min(55, 55) = 55 → 55/55·41.25 = 41.25.
    LSR 0.6 (long, < 0.7) → 10; top trader 0.58 ≥ 0.55 → 10; crowding 20 → 20/25·18.75 = 15.
    OI +1 % → 10 → 10/15·25 = 16.667. Premium missing → 2 → 2/5·15 = 6.
    Total round(41.25 + 15 + 16.667 + 6, 1) = 78.9 ≥ 75 → entry, < 80 → standard."""
    r = score(BASE_SNAPSHOT, fcfg())
    assert layers(r)["direction"] == (55.0, 41.25, 41.25)
    assert layers(r)["crowding"] == (20.0, 15.0, 18.75)
    assert layers(r)["environment"][:2] == (10.0, pytest.approx(50 / 3))
    assert layers(r)["auxiliary"] == (2.0, 6.0, 15.0)
    assert r.total == 78.9
    assert (r.side, r.gate_passed, r.is_entry, r.tier, r.is_flip_signal) == ("LONG", True, True, "standard", False)
    assert [g.status for g in r.gates] == ["passed", "passed", "passed", "passed", "disabled"]
    assert r.missing == ("coinbase_premium",)
    assert r.kind == "factory" and r.version == "5.4" and r.config_hash == fcfg().config_hash


def test_golden_btc_control_weights() -> None:
    """15m/1h: fast 20, slow 80 → LONG; direction 55 → 27.5; crowding 20 → 20/25·12.5 = 10;
    environment 10 → 10/15·32 = 21.333; auxiliary 2 → 2/5·28 = 11.2; total 70.0 < 71: no entry.
    With OI +5 % the environment is 15 → 32 and the total 80.7 ≥ 80 → heavy and a flip signal."""
    c = fcfg(cvd_fast_window="15m", cvd_slow_window="1h", **BTC_CONTROL)
    r = score(BASE_SNAPSHOT, c)
    assert [lay.score for lay in r.layers] == [27.5, 10.0, pytest.approx(64 / 3), pytest.approx(11.2)]
    assert r.total == 70.0 and not r.is_entry and r.tier is None
    r = score(snap(oi_change_pct=0.05), c)
    assert r.layer("environment").score == 32.0
    assert r.total == 80.7 and r.is_entry and r.tier == "heavy" and r.is_flip_signal


def test_golden_short_side_and_crowding_bands() -> None:
    """All CVDs negative → SHORT. P99: sell 30 aligned → 20; accel −3 aligned → 5 → 55.
    LSR 2.5 (> 2.0 for a short) → 15; top trader 0.4 (≤ 0.45 for a short) → 10; min(25, 25).
    OI −1 % → 5 → 8.333; premium −0.1 % aligned with a short → 5 → 15.
    Total 41.25 + 18.75 + 8.333 + 15 = 83.3."""
    s = snap(cvd_30m=-50.0, cvd_4h=-200.0, large_buy_qty_15m=0.0, large_sell_qty_15m=30.0,
             cvd_accel_30m_per_min2=-3.0, long_short_ratio=2.5, top_trader_long_ratio=0.4, oi_change_pct=-0.01,
             whale_flow_15m=-0.2, obi_10=-0.1)
    r = score(s, fcfg(), {"coinbase_premium": -0.001})
    assert r.side == "SHORT"
    assert [lay.raw for lay in r.layers] == [55.0, 25.0, 5.0, 5.0]
    assert r.total == 83.3 and r.is_entry and r.tier == "heavy" and r.is_flip_signal
    assert "coinbase_premium" not in r.missing


@pytest.mark.parametrize(("lsr", "tt", "expected"), [
    (0.49, 0.55, 25.0), (0.5, 0.55, 20.0), (0.69, 0.5, 15.0), (0.7, 0.5, 12.0), (0.99, 0.45, 7.0),
    (1.0, 0.46, 5.0), (None, None, 12.0), (1.5, 0.6, 10.0),
])
def test_crowding_points_long(lsr: float | None, tt: float | None, expected: float) -> None:
    """LONG: LSR < 0.5 → 15, < 0.7 → 10, < 1.0 → 7, else 0, missing 7; top trader ≥ .55 → 10,
    ≤ .45 → 0, else 5, missing 5; capped at 25."""
    r = score(snap(long_short_ratio=lsr, top_trader_long_ratio=tt), fcfg())
    assert r.layer("crowding").raw == expected


@pytest.mark.parametrize(("oi", "raw"), [(None, 10.0), (-0.01, 5.0), (0.0, 5.0), (0.001, 10.0), (0.03, 15.0)])
def test_environment_oi_points(oi: float | None, raw: float) -> None:
    assert score(snap(oi_change_pct=oi), fcfg()).layer("environment").raw == raw


@pytest.mark.parametrize(("buy", "sell", "raw"), [(12.0, 0.0, 55.0), (12.0, 30.0, 55.0), (0.0, 0.0, 45.0),
                                                   (0.0, 30.0, 35.0), (None, None, 45.0)])
def test_direction_p99_flow(buy: float | None, sell: float | None, raw: float) -> None:
    """Aligned P99 trade → 20; none adverse → 10; adverse only → 0; unknown P99 → 10 (missing)."""
    r = score(snap(large_buy_qty_15m=buy, large_sell_qty_15m=sell, whale_flow_15m=None), fcfg(gate_whale_enabled=False))
    assert r.layer("direction").raw == raw
    assert ("large_buy_qty_15m" in r.missing) == (buy is None)


# ------------------------------------------------------------------ gates, in order, with reasons
def test_volatility_gate() -> None:
    r = score(snap(atr_5m=90.0), fcfg())  # 90/60000 = 0.0015 < 0.002
    assert r.block_reason == "low_vol(0.0015<0.002)" and r.total == 0.0 and not r.is_entry
    assert [g.status for g in r.gates] == ["blocked", "not_run", "not_run", "not_run", "not_run"]
    assert r.side == "LONG" and r.layer("direction").score == 41.25  # layers still logged
    assert score(snap(atr_5m=120.0), fcfg()).gate("volatility").status == "passed"  # 0.002 is not below
    assert score(snap(atr_5m=90.0), fcfg(gate_vol_enabled=False)).gate("volatility").status == "disabled"


def test_cvd_resonance_gate() -> None:
    s = snap(cvd_4h=-200.0)
    r = score(s, fcfg())
    assert (r.block_reason, r.total, r.side) == ("no_direction_consensus", 0.0, "LONG")
    assert r.layer("direction").raw == 25.0  # resonance 0 + P99 20 + accel 5
    r = score(s, fcfg(gate_cvd_enabled=False))
    assert r.gate("cvd_resonance").status == "disabled" and r.block_reason is None and r.total > 0
    # fast not > 0 → SHORT, as the predecessor (LONG only if fast > 0)
    assert score(snap(cvd_30m=0.0), fcfg(gate_cvd_enabled=False)).side == "SHORT"


def test_whale_gate_btc_flow() -> None:
    r = score(snap(whale_flow_15m=-0.6), fcfg())
    assert r.block_reason == "whale_flow_adverse(-0.6)" and r.total == 0.0
    assert [g.status for g in r.gates][2:] == ["blocked", "not_run", "not_run"]
    assert score(snap(whale_flow_15m=-0.5), fcfg()).gate_passed  # not beyond −0.5
    assert score(snap(whale_flow_15m=None, whale_trades_15m=0), fcfg()).gate_passed  # no whale trades: no flow


def test_whale_gate_alt_large_orders() -> None:
    """ETH: adverse P99 sells worth ≥ $50k and no aligned one → veto."""
    eth = snap(symbol="ETHUSDT", price=3000.0, atr_5m=15.0, large_buy_qty_15m=0.0, large_sell_qty_15m=20.0)
    c = fcfg(symbol="ETHUSDT")
    assert c.whale_mode == "large_order" and c.whale_usd_threshold == 50_000
    r = score(eth, c)  # 20 × 3000 = 60k ≥ 50k
    assert r.block_reason == "whale_adverse(>$50k)" and r.total == 0.0
    assert score(snap(symbol="ETHUSDT", price=3000.0, atr_5m=15.0, large_buy_qty_15m=0.0,
                      large_sell_qty_15m=10.0), c).gate_passed  # 30k < 50k
    assert score(snap(symbol="ETHUSDT", price=3000.0, atr_5m=15.0, large_buy_qty_15m=20.0,
                      large_sell_qty_15m=20.0), c).gate_passed  # aligned as well


def test_obi_gate() -> None:
    assert score(snap(obi_10=-0.31), fcfg()).block_reason == "obi_veto"  # BTC threshold 0.30
    assert score(snap(obi_10=-0.30), fcfg()).gate_passed
    r = score(snap(obi_10=None), fcfg())
    assert r.gate_passed and "obi_10" in r.missing


def test_spot_perp_gate_is_off_by_default() -> None:
    s = snap(spot_perp_div=-0.004)
    r = score(s, fcfg())
    assert r.gate("spot_perp").status == "disabled" and "spot_perp_div" not in r.missing
    r = score(s, fcfg(gate_spot_perp_enabled=True))  # BTC threshold 0.003
    assert r.block_reason == "spd_veto" and r.total == 0.0
    assert score(snap(spot_perp_div=-0.003), fcfg(gate_spot_perp_enabled=True)).gate_passed


def test_first_block_wins() -> None:
    r = score(snap(atr_5m=60.0, cvd_4h=-1.0, obi_10=-0.9), fcfg())
    assert r.block_reason.startswith("low_vol") and r.gate("obi").status == "not_run"


def test_not_ready_is_the_early_exit() -> None:
    for s, reason in ((snap(price=None), "not_ready:price"), (snap(atr_5m=None), "not_ready:atr_pct_5m"),
                      (snap(atr_5m=0.0), "not_ready:atr_pct_5m"), (snap(cvd_4h=None), "not_ready:cvd_4h")):
        r = score(s, fcfg())
        assert (r.block_reason, r.total, r.side, r.is_entry) == (reason, 0.0, None, False)
        assert all(g.status == "not_run" for g in r.gates)


# ------------------------------------------------------------------ tiers and direction
@pytest.mark.parametrize(("entry", "flip", "tier", "flip_signal"), [
    (76, 80, "standard", False), (77, 80, None, False), (70, 76, "heavy", True), (70, 77, "standard", False),
])
def test_tier_boundaries(entry: int, flip: int, tier: str | None, flip_signal: bool) -> None:
    """LSR 1.0 → 0 and top trader 0.5 → 5: crowding 5 → 3.75; OI +5 % → 25; total
    41.25 + 3.75 + 25 + 6 = 76.0 exactly. Entry iff total ≥ entry_score; heavy iff ≥ flip_threshold."""
    r = score(snap(long_short_ratio=1.0, top_trader_long_ratio=0.5, oi_change_pct=0.05),
              fcfg(entry_score=entry, flip_threshold=flip))
    assert r.total == 76.0
    assert (r.tier, r.is_entry, r.is_flip_signal) == (tier, tier is not None, flip_signal)


def test_direction_restriction() -> None:
    s = snap(oi_change_pct=0.05)  # LONG: 41.25 + 15 + 25 + 6 = 87.25 → 87.2 (round half to even)
    long_only, short_only = fcfg(direction="long_only"), fcfg(direction="short_only")
    assert score(s, long_only).total == 87.2
    assert score(s, long_only).is_entry and score(s, long_only).is_flip_signal
    r = score(s, short_only)
    assert r.total == score(s, long_only).total and r.side == "LONG"  # scored and logged
    assert not r.side_allowed and not r.is_entry and r.tier is None
    assert not r.is_flip_signal  # bug fix: the predecessor flipped regardless of the restriction


# ------------------------------------------------------------------ predecessor bugs
def test_zero_gate_parameters_are_honoured() -> None:
    """The predecessor's ``x or default`` turned 0 into the default (flow 0.5, vol 0.002, OBI 0.35)."""
    assert score(snap(whale_flow_15m=-0.01), fcfg(whale_flow_pct=0.0)).block_reason == "whale_flow_adverse(-0.01)"
    assert score(snap(whale_flow_15m=-0.01), fcfg(whale_flow_pct=0.5)).gate_passed
    assert score(snap(atr_5m=6.0), fcfg(vol_atr_pct_min=0.0)).gate("volatility").status == "passed"
    assert score(snap(obi_10=-0.01), fcfg(obi_threshold=0.0)).block_reason == "obi_veto"
    eth = snap(symbol="ETHUSDT", price=3000.0, atr_5m=15.0, large_buy_qty_15m=0.0, large_sell_qty_15m=0.001)
    assert score(eth, fcfg(symbol="ETHUSDT", whale_usd_threshold=0.0)).block_reason == "whale_adverse(>$0k)"
    assert fcfg(whale_flow_pct=0.0).whale_flow_pct == 0.0


def test_obi_zero_is_a_value() -> None:
    r = score(snap(obi_10=0.0), fcfg(obi_threshold=0.0))
    assert r.gate_passed and r.inputs["obi_10"] == 0.0 and "obi_10" not in r.missing
    r = score(snap(spot_perp_div=0.0), fcfg(gate_spot_perp_enabled=True, spot_perp_threshold=0.0))
    assert r.gate_passed and "spot_perp_div" not in r.missing


def test_slow_windows_beyond_4h_are_not_capped() -> None:
    """cvd_4h = +200 but cvd_24h = −500: a 24h slow window has no resonance with fast +50.
    Capped at 4h (the predecessor) it would be LONG with resonance 30."""
    r = score(BASE_SNAPSHOT, fcfg(cvd_slow_window="24h"))
    assert r.block_reason == "no_direction_consensus" and r.inputs["cvd_24h"] == -500.0
    c8 = fcfg(cvd_slow_window="8h")
    assert score(BASE_SNAPSHOT, c8, {"cvd_8h": -10.0}).block_reason == "no_direction_consensus"
    assert score(BASE_SNAPSHOT, c8, {"cvd_8h": 10.0}).gate_passed
    assert score(BASE_SNAPSHOT, c8).block_reason == "not_ready:cvd_8h"
    assert Evaluator([c8]).extra_windows("BTCUSDT") == ("8h",)


def test_slope_and_acceleration_are_per_unit_time_and_stateless() -> None:
    """The accel bonus follows the snapshot's per-minute² acceleration; scoring the same snapshot
    again gives the same result (the predecessor's per-call difference was 0 on the second call)."""
    c = fcfg()
    first, second = score(BASE_SNAPSHOT, c), score(BASE_SNAPSHOT, c)
    assert first == second and first.layer("direction").raw == 55.0
    assert score(snap(cvd_accel_30m_per_min2=-3.0), c).layer("direction").raw == 50.0
    r = score(snap(cvd_accel_30m_per_min2=None), c)
    assert r.layer("direction").raw == 50.0 and "cvd_accel_30m_per_min2" in r.missing


def test_oi_change_uses_the_snapshot_horizon() -> None:
    """OI +5 % over the snapshot's 15-minute horizon scores 15 on every evaluation; the
    predecessor compared with the previous evaluation and scored 5 from the second call on."""
    s = snap(oi_change_pct=0.05, open_interest=1e5)
    c = fcfg()
    assert [score(s, c).layer("environment").raw for _ in range(3)] == [15.0, 15.0, 15.0]


def test_wrong_symbol_is_refused() -> None:
    c = fcfg()
    eth = snap(symbol="ETHUSDT")
    with pytest.raises(WrongSymbolError):
        score(eth, c)
    kind = get_kind("factory")
    with pytest.raises(WrongSymbolError):
        kind.compile([c], "ETHUSDT")
    with pytest.raises(WrongSymbolError):
        kind.score_batch(eth, kind.compile([c], "BTCUSDT"), None)
    ev = Evaluator([c, fcfg(strategy_id="eth", symbol="ETHUSDT")])
    assert [r.strategy_id for r in ev.results(eth)] == ["eth"]
    assert [r.strategy_id for r in ev.results(BASE_SNAPSHOT)] == ["t"]
