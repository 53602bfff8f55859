"""EV gate arithmetic and block reasons, live calibration stamping, trade cost decomposition."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from arbray.calibration.calibrators import BOOTSTRAP_VERSION, CalibratorConfig, bootstrap_probability, fit_bucket
from arbray.calibration.costs import CostConfig, CostTable, SymbolCost, cost_report, expected_cost_bps, trade_cost
from arbray.calibration.ev_gate import EvGate, EvGateConfig
from arbray.calibration.live import LiveCalibration
from arbray.execution.fees import fee_rates
from arbray.scoring.result import GateResult, ScoreResult
from tests.unit.scoring.helpers import snap

pytestmark = pytest.mark.unit
SNAP = snap(spread_bps=1.0)  # BTCUSDT at 60,000 with ATR 180


def result(strategy: str = "s", total: float = 80.0, is_entry: bool = True, side: str | None = "LONG",
           p: float | None = None, flip: bool = False) -> ScoreResult:
    return ScoreResult(strategy_id=strategy, kind="k", version="1", config_hash="h", symbol="BTCUSDT",
                       ts_ms=SNAP.ts_ms, side=side, side_allowed=True, total=total, layers=(),  # type: ignore[arg-type]
                       gates=(GateResult("g", "passed"),), block_reason=None, tier=None, is_entry=is_entry,
                       is_flip_signal=flip, missing=(), inputs={}, p_calibrated=p)


def test_fee_model_fallback_and_ev_arithmetic() -> None:
    gate = EvGate({"s": EvGateConfig()})
    est = gate.estimate(SNAP, result(total=80.0))
    assert est is not None and est.cost_source == "fee_model"
    assert est.cost_bps == pytest.approx(2 * 5.0 + 1.0 + 1.0)  # vip0 taker both legs + spread + slippage
    assert est.cost_r == pytest.approx(12e-4 * 60_000 / 180)
    assert est.p == pytest.approx(0.64)
    assert est.ev_net == pytest.approx(0.64 * 2 - 0.36 - est.cost_r)
    out = gate(SNAP, [result(total=80.0), result(total=20.0)])
    assert out[0].is_entry and out[0].block_reason is None
    low = out[1]
    ev = 0.46 * 2 - 0.54 - est.cost_r
    assert not low.is_entry and low.block_reason == f"ev_gate:{ev:.4f}"
    assert low.gates[-1] == GateResult("ev_gate", "blocked", low.block_reason)
    assert gate.counts[("s", "passed")] == 1 and gate.counts[("s", "blocked")] == 1


def test_realised_costs_replace_the_fee_model_once_a_symbol_has_enough_trades() -> None:
    table = CostTable({"BTCUSDT": SymbolCost(20, 5.0, 30.0)})
    p95 = EvGate({"s": EvGateConfig()}, table).estimate(SNAP, result())
    med = EvGate({"s": EvGateConfig(cost_source="realised_median")}, table).estimate(SNAP, result())
    few = EvGate({"s": EvGateConfig(min_cost_samples=50)}, table).estimate(SNAP, result())
    fee = EvGate({"s": EvGateConfig(cost_source="fee_model")}, table).estimate(SNAP, result())
    assert p95 is not None and med is not None and few is not None and fee is not None
    assert (p95.cost_bps, p95.cost_source) == (30.0, "realised_p95")
    assert (med.cost_bps, med.cost_source) == (5.0, "realised_median")
    assert few.cost_source == fee.cost_source == "fee_model"


def test_only_configured_entries_are_gated_and_missing_atr_fails_closed() -> None:
    gate = EvGate({"s": EvGateConfig(threshold_r=5.0)})
    kept = [result("other"), result(is_entry=False, flip=True), result(side=None)]
    assert gate(SNAP, kept) == kept  # other strategies, non-entries and side-less results pass untouched
    flip = gate(SNAP, [result(flip=True)])[0]
    assert not flip.is_entry and flip.is_flip_signal  # may still flip-exit, never re-enter
    no_atr = gate(snap(atr_5m=None), [result()])[0]
    assert not no_atr.is_entry and no_atr.block_reason == "ev_gate:no_atr"


def test_probability_sources_in_order() -> None:
    rng = np.random.default_rng(0)
    s = rng.uniform(0, 100, 600)
    cal = fit_bucket("s", s, (rng.uniform(0, 1, 600) < 0.2).astype(float), 10.0, CalibratorConfig())
    live = LiveCalibration({"s": cal})
    gate = EvGate({"s": EvGateConfig()}, calibration=live)
    assert gate.probability(result(p=0.9)) == 0.9
    assert gate.probability(result(total=55.0)) == pytest.approx(float(cal.predict(55.0)))
    assert EvGate({"s": EvGateConfig()}).probability(result(total=55.0)) == pytest.approx(0.565)
    with pytest.raises(ValidationError, match="unknown fee tier"):
        EvGateConfig(fallback_fee_tier="vip99")


def test_live_calibration_stamps_every_result() -> None:
    rng = np.random.default_rng(1)
    s = rng.uniform(0, 100, 600)
    cal = fit_bucket("a", s, (rng.uniform(0, 1, 600) < 0.3).astype(float), 10.0, CalibratorConfig())
    live = LiveCalibration({"a": cal})
    assert live.version == "unloaded"
    rs = [result("a", 35.0), result("b", 35.0), result("a", 95.0, side=None)]
    out = live.apply(rs)
    assert [r.strategy_id for r in out] == ["a", "b", "a"]
    assert out[0].p_calibrated == pytest.approx(float(cal.predict(35.0))) and out[0].calibrator_version == cal.version
    assert out[1].p_calibrated == pytest.approx(float(bootstrap_probability(35.0)))
    assert out[1].calibrator_version == BOOTSTRAP_VERSION
    assert out[2].p_calibrated == pytest.approx(float(cal.predict(95.0)))
    assert out[0].total == 35.0 and out[0].gates == rs[0].gates  # everything else is copied
    assert ScoreResult.from_dict(out[0].to_dict()) == out[0]
    assert live.apply([]) == []
    p, versions = live.probabilities(["a", "b", "a"], [35.0, 35.0, 95.0])
    assert p.tolist() == [r.p_calibrated for r in out] and versions == [r.calibrator_version for r in out]


def _detail(**kw: Any) -> dict[str, Any]:
    d = {"strategy_id": "s", "symbol": "BTCUSDT", "signal_ts_ms": 0, "entry_ts_ms": 3_600_000, "direction": "LONG",
         "qty": 1.0, "entry_price": 100.02, "exit_price": 99.0, "fees": 0.1, "funding": 0.01, "entry_maker_qty": 0.0,
         "tp_maker_qty": 0.0, "tp_taker_qty": 0.0, "signal_price": 100.0, "exit_reason": "sl", "risk_distance": 1.0,
         "fees_r": 0.1, "entry_slippage_r": 0.02, "net_r": -1.1}
    return {**d, **kw}


def test_trade_cost_decomposition() -> None:
    feats = {"best_bid": 99.99, "best_ask": 100.01, "spread_bps": 2.0}
    c = trade_cost(_detail(), feats, CostConfig())
    half = 0.02 / 100.0 * 1e4 / 2  # 1 bps
    assert c["spread_bps"] == pytest.approx(2 * half)  # taker in and out
    entry_slip = (100.02 - 100.0) / 100.0 * 1e4 - half
    exit_slip = (99.02 - 99.0) / 100.02 * 1e4 - half  # filled 2 ticks beyond the stop at 99.02
    assert c["slippage_bps"] == pytest.approx(entry_slip + exit_slip)
    assert c["fee_bps"] == pytest.approx(0.1 / 100.02 * 1e4) and c["funding_bps"] == pytest.approx(0.01 / 100.02 * 1e4)
    assert c["realised_bps"] == pytest.approx(c["spread_bps"] + c["slippage_bps"] + c["fee_bps"])
    assert c["expected_bps"] == pytest.approx(expected_cost_bps(2.0, fee_rates("binance_usdm_vip0"), "taker", 1.0))
    assert c["hour"] == "01" and c["friction_r"] == pytest.approx(0.12)
    maker = trade_cost(_detail(entry_maker_qty=1.0, entry_price=99.99, exit_reason="tp", tp_maker_qty=1.0,
                               tp_taker_qty=0.0, exit_price=101.0), feats, CostConfig())
    assert maker["spread_bps"] == 0.0 and maker["slippage_bps"] == pytest.approx(-1.0)  # a maker fill earns the spread


def test_cost_report_breakdowns_and_table() -> None:
    feats = {"best_bid": 99.99, "best_ask": 100.01, "spread_bps": 2.0}
    costs = [trade_cost(_detail(entry_ts_ms=h * 3_600_000, symbol=sym), feats, CostConfig()) | {"symbol": sym}
             for h, sym in ((0, "BTCUSDT"), (1, "BTCUSDT"), (1, "ETHUSDT"))]
    rep = cost_report(costs, {"no_signal_snapshot": 1})
    assert rep["trades"] == 3 and set(rep["by_symbol"]) == {"BTCUSDT", "ETHUSDT"}
    assert set(rep["by_hour"]) == {"00", "01"} and set(rep["by_exit_type"]) == {"sl"}
    assert rep["trend_period_ms"] == 3_600_000 and [t["trades"] for t in rep["trends"]] == [1, 2]
    assert rep["cost_table"]["BTCUSDT"]["n"] == 2 and rep["summary"]["maker_ratio_entry"] == 0.0
    assert CostTable.from_costs(costs)["ETHUSDT"].median_bps == pytest.approx(costs[2]["realised_bps"])
