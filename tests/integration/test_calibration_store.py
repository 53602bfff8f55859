"""Calibration on SQLite and PostgreSQL: labels from the journal's agg_trades and klines, idempotent
backfill and relabelling, stored calibrators and the live loader, reports and the EV gate's cost table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from arbray.calibration.calibrate import calibrate_strategy
from arbray.calibration.calibrators import BOOTSTRAP_VERSION, CalibratorConfig
from arbray.calibration.costs import load_trade_costs
from arbray.calibration.ev_gate import EvGate, EvGateConfig
from arbray.calibration.labels import LabelConfig, LabelEvent, PricePath, backfill_labels, label_events
from arbray.calibration.live import LiveCalibration
from arbray.calibration.monitor import calibration_report
from arbray.calibration.optimiser import OptimiserConfig, ScanSpec, gates_report
from arbray.clock import ManualClock
from arbray.scoring.result import GateResult, LayerScore, ScoreResult
from arbray.storage import SqlStore, open_store
from arbray.storage.records import AggTrade, Kline, StrategyRecord, TradeRecord
from tests.integration.storage_backends import dsn, make_dsn, pg_database, run
from tests.unit.calibration.helpers import brute_label_bars

pytestmark = pytest.mark.integration
__all__ = ["dsn", "make_dsn", "pg_database"]
T0 = 1_723_075_200_000
MIN = 60_000
CLOCK = ManualClock(1_800_000_000_000)


def walk(seed: int, n: int = 12_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = T0 + np.cumsum(rng.integers(200, 1_600, n)).astype(np.int64)
    return ts, np.round(60_000 + np.cumsum(rng.normal(0, 6.0, n)), 1)


def result(strategy: str, symbol: str, ts: int, total: float, side: str | None, p: float | None = None) -> ScoreResult:
    return ScoreResult(strategy_id=strategy, kind="factory", version="1", config_hash="h", symbol=symbol, ts_ms=ts,
                       side=side, side_allowed=True, total=total,  # type: ignore[arg-type]
                       layers=(LayerScore("direction", 1.0, 2.0, total / 2, 50.0),), gates=(GateResult("g", "passed"),),
                       block_reason=None, tier=None, is_entry=total >= 60, is_flip_signal=False, missing=(),
                       inputs={"price": None}, p_calibrated=p, calibrator_version=None if p is None else "v0")


async def seed_events(store: SqlStore, symbol: str, ts: np.ndarray, px: np.ndarray, seed: int) -> list[LabelEvent]:
    """One event per minute for two strategies over the walk's first 140 minutes, snapshot price and ATR set."""
    rng = np.random.default_rng(seed)
    evs = []
    for k, t in enumerate(range(int(ts[0]) + 2 * MIN, int(ts[0]) + 140 * MIN, MIN)):
        price = float(px[np.searchsorted(ts, t) - 1])
        feats = {"price": price, "atr_5m": 40.0, "mark_price": None, "spread_bps": 0.5, "best_bid": price - 0.05,
                 "best_ask": price + 0.05, "atr_pct_5m": 40.0 / price}
        side = ("LONG", "SHORT", None)[k % 3]
        rs = [result("alpha", symbol, t, float(rng.uniform(0, 100)), side),
              result("beta", symbol, t, float(rng.uniform(0, 100)), "LONG", p=0.55)]
        await store.insert_score_events(rs, run_id="r1", features=feats)
        evs.append(LabelEvent(0, symbol, t, {"LONG": 1, "SHORT": -1, None: 0}[side], 40.0, price))
    return evs


def test_backfill_from_agg_trades_and_klines_is_idempotent(dsn: str) -> None:
    async def body() -> None:
        store = await open_store(dsn)
        try:
            ts, px = walk(1)
            await store.insert_agg_trades([AggTrade("BTCUSDT", i, float(p), 0.01, i, i, int(t), bool(i % 2))
                                           for i, (t, p) in enumerate(zip(ts, px, strict=True))])
            evs = await seed_events(store, "BTCUSDT", ts, px, 1)
            k_open = np.arange(T0, T0 + 200 * MIN, MIN)
            kts, kpx = walk(2, 20_000)
            bars = []
            for o in k_open:
                m = (kts >= o) & (kts < o + MIN)
                if m.any():
                    bars.append(Kline("ETHUSDT", "1m", int(o), int(o) + MIN - 1, float(kpx[m][0]), float(kpx[m].max()),
                                      float(kpx[m].min()), float(kpx[m][-1]), 1.0, 1.0, 1, 0.5))
            await store.insert_klines(bars)
            await seed_events(store, "ETHUSDT", kts, kpx, 2)

            rep = await backfill_labels(store, LabelConfig(), clock=CLOCK)
            assert rep.labelled["ok"] > 0 and rep.labelled["no_side"] > 0 and rep.pending > 0
            again = await backfill_labels(store, LabelConfig(), clock=CLOCK)
            assert again.labelled == {} and again.examined == rep.pending  # only the pending are looked at again
            rows = await store.labelled_events(run_id="r1")
            assert {r["data_source"] for r in rows} == {"agg_trades", "klines"}
            path = PricePath.from_prices("BTCUSDT", ts, px, "agg_trades")
            want = {e.ts_ms: lab for e, lab in zip(evs, label_events(evs, path, LabelConfig().spec())[0],
                                                   strict=False)}
            btc = [r for r in rows if r["symbol"] == "BTCUSDT" and r["strategy"] == "alpha"]
            assert btc and len(btc) == len(want)
            for r in btc:
                w = want[r["ts_ms"]]
                assert (r["status"], r["y_binary_60m"], r["first_hit"]) == (w.status, w.y_binary_60m, w.first_hit)
                assert r["y_return_60m"] == pytest.approx(w.y_return_60m) and r["labelled_ms"] == CLOCK.now_ms()
            eth = [r for r in rows if r["symbol"] == "ETHUSDT" and r["status"] == "ok"]
            assert eth
            spec = LabelConfig().spec()
            for r in eth:
                ref = brute_label_bars([b.open_ms for b in bars], [b.close_ms for b in bars], [b.high for b in bars],
                                       [b.low for b in bars], [b.close for b in bars], r["ts_ms"],
                                       1 if r["side"] == "LONG" else -1, 40.0, spec, r["entry_price"])
                assert (r["y_binary_60m"], r["first_hit"]) == (ref["y_binary_60m"], ref["first_hit"])
                assert r["mfe_r_60m"] == pytest.approx(ref["mfe_r_60m"])
            counts = await store.label_counts()
            assert sum(counts.values()) == len(rows)
            other = LabelConfig(target_atr=3.0)
            re = await backfill_labels(store, other, relabel=True, clock=CLOCK)
            assert sum(re.labelled.values()) == len(rows)
            assert {r["label_version"] for r in await store.labelled_events()} == {other.version}
            with pytest.raises(ValueError, match="markPrice"):
                await backfill_labels(store, LabelConfig(price_source="mark"))
        finally:
            await store.close()

    run(body())


async def labelled_store(dsn: str) -> SqlStore:
    store = await open_store(dsn)
    ts, px = walk(3)
    await store.insert_agg_trades([AggTrade("BTCUSDT", i, float(p), 0.01, i, i, int(t), False)
                                   for i, (t, p) in enumerate(zip(ts, px, strict=True))])
    await seed_events(store, "BTCUSDT", ts, px, 3)
    await backfill_labels(store, LabelConfig(), clock=CLOCK)
    return store


def test_calibrators_are_stored_versioned_and_loaded_live(dsn: str) -> None:
    async def body() -> None:
        store = await labelled_store(dsn)
        try:
            state0 = await store.calibration_state()
            live = LiveCalibration()
            await live.load(store)
            assert live.version == state0 == "0:0:0" and not live.calibrators
            strict = await calibrate_strategy(store, "alpha", CalibratorConfig(), "bucket", clock=CLOCK)
            rows = await store.calibrators("alpha")
            assert rows[0]["active"] == strict["active"] and rows[0]["metrics"]["activation"] == strict["activation"]
            cfg = CalibratorConfig(isotonic_min_samples=10, activate="always")
            a = await calibrate_strategy(store, "alpha", cfg, "isotonic", clock=CLOCK)
            assert a["stored"] and a["active"] and a["method"] == "isotonic" and a["n_samples"] > 0
            assert await store.calibration_state() != state0
            again = await calibrate_strategy(store, "alpha", cfg, "isotonic", clock=CLOCK)
            assert not again["stored"] and again["version"] == a["version"]
            b = await calibrate_strategy(store, "beta", cfg, "bucket", clock=CLOCK)
            assert b["method"] == "bucket"
            await live.load(store)
            assert live.version == await store.calibration_state()
            assert live.calibrator_for("alpha").version == a["version"]
            out = live.apply([result("alpha", "BTCUSDT", T0, 50.0, "LONG"), result("gamma", "BTCUSDT", T0, 50.0, None)])
            assert out[0].calibrator_version == a["version"] and out[1].calibrator_version == BOOTSTRAP_VERSION
            rows = await store.calibrators("alpha")
            assert rows[1]["params"]["x"] and rows[1]["metrics"]["reason"] == "forced isotonic"
            assert rows[1]["train_to_ms"] >= rows[1]["train_from_ms"] and rows[1]["created_ms"] == CLOCK.now_ms()
            assert await store.set_calibrator_active(a["version"], False)
            assert not await store.set_calibrator_active("nope", False)
            assert await store.calibration_state() != live.version  # the runtime reloads on this change
            await live.load(store)  # back to the earlier bucket fit if it went live, else the bootstrap map
            fallback = strict["version"] if strict["active"] else BOOTSTRAP_VERSION
            assert live.calibrator_for("alpha").version == fallback
            with pytest.raises(ValueError, match="no labelled"):
                await calibrate_strategy(store, "nobody", cfg)
            await store.insert_score_events(out, run_id="live")
            back = await store.latest_scores(["alpha"])
            assert back[0]["p_calibrated"] == pytest.approx(out[0].p_calibrated)
            assert back[0]["calibrator_version"] == a["version"]
        finally:
            await store.close()

    run(body())


def _trade_detail(entry_ms: int, sig_ms: int) -> dict[str, Any]:
    return {"position_id": "p1", "strategy_id": "alpha", "symbol": "BTCUSDT", "direction": "LONG", "score": 70.0,
            "signal_ts_ms": sig_ms, "entry_ts_ms": entry_ms, "exit_ts_ms": entry_ms + 10 * MIN,
            "signal_price": 60_000.0, "entry_price": 60_003.0, "exit_price": 59_950.0, "qty": 0.1, "risk_usd": 100.0,
            "risk_distance": 50.0, "exit_reason": "sl", "gross_r": -0.5, "fees_r": 0.06, "funding_r": 0.0,
            "net_r": -0.56, "fees": 6.0, "funding": 0.0, "entry_maker_qty": 0.0, "tp_maker_qty": 0.0,
            "tp_taker_qty": 0.0, "entry_slippage_r": 0.003}


def test_reports_and_the_ev_gate_cost_table_from_the_journal(dsn: str) -> None:
    async def body() -> None:
        store = await labelled_store(dsn)
        try:
            sig = T0 + 10 * MIN
            feats = {"best_bid": 59_999.9, "best_ask": 60_000.1, "spread_bps": 0.033, "price": 60_000.0}
            await store.insert_score_events([result("alpha", "BTCUSDT", sig, 70.0, "LONG")], run_id="bt",
                                            features=feats)
            sid = "6f1f4c59-2a55-4e0e-9d0c-6d8b1f0a7a12"
            await store.upsert_strategy(StrategyRecord(sid, "alpha@bt", "alpha", "factory", {}, "h", 10_000.0, T0))
            for i in range(12):
                await store.record_trade(TradeRecord(
                    trade_id=f"bt:{i}", strategy_id=sid, symbol="BTCUSDT", side="LONG", qty=0.1, entry_price=60_003.0,
                    entry_ms=sig + 1_000 + i, exit_price=59_950.0, exit_ms=sig + 20 * MIN + i, exit_reason="sl",
                    pnl=-5.3, fees=6.0, r_multiple=-0.56, score=70.0, detail=_trade_detail(sig + 1_000 + i, sig),
                    run_id="bt"))
            costs, skipped = await load_trade_costs(store, run_id="bt")
            assert len(costs) == 12 and not skipped
            assert costs[0]["fee_bps"] == pytest.approx(6.0 / 6_000.3 * 1e4)
            gate = await EvGate.from_store(store, {"alpha": EvGateConfig()}, run_id="bt")
            assert gate.costs["BTCUSDT"].n == 12
            rep = await calibration_report(store, clock=CLOCK)
            alpha = rep["strategies"]["alpha"]
            assert alpha["n"] > 0 and alpha["forecasts"]["bootstrap"]["brier"] is not None
            assert "recorded" in rep["strategies"]["beta"]["forecasts"]  # beta's events carry p_calibrated
            assert rep["strategies"]["alpha"]["trades"]["n"] == 12
            gates = await gates_report(store, "alpha", [ScanSpec(field="total", population="sided"),
                                                        ScanSpec(field="feature:atr_pct_5m")], OptimiserConfig())
            assert gates["scans"][0]["samples"] > 0 and gates["scans"][0]["folds"]
            trades = await gates_report(store, "alpha", [ScanSpec(field="total")], OptimiserConfig(mode="trades"),
                                        run_id="bt")
            assert trades["scans"][0]["samples"] == 12
        finally:
            await store.close()

    run(body())
