"""Shared helpers of the runtime's integration tests: a generated recording and backtest references.

The generated recording is the market simulator's own output (``arbray.sim.recording.generate``)
with bookTicker lines thinned to one in ``keep_every`` — the simulator publishes them 2–3× more
often than Binance, and thinning keeps the file small enough to replay in seconds. Both sides of
every comparison read the same thinned file, so nothing is lost for parity.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from arbray.backtest.engine import Backtest, BacktestConfig, BacktestResult
from arbray.backtest.journal import ScoreCollector
from arbray.backtest.stats import trade_record
from arbray.replay.readers import open_input
from arbray.scoring.config import StrategyConfig
from arbray.sim.model import MarketModelConfig
from arbray.sim.recording import generate

EAGER = {
    "kind": "factory", "strategy_id": "eager_btc", "symbol": "BTCUSDT", "direction": "both",
    "cvd_fast_window": "5m", "cvd_slow_window": "30m", "weight_direction": 55, "weight_env": 25, "weight_aux": 15,
    "weight_momentum": 5, "entry_score": 60, "gate_vol_enabled": False, "gate_cvd_enabled": False,
    "gate_whale_enabled": False, "gate_obi_enabled": False, "sl_atr_multiplier": 0.5, "tp1_ratio": 0.3,
    "tp2_ratio": 0.5, "timeout_minutes": 30, "flip_threshold": 95,
}
"""A factory config that enters at the lowest allowed score with every gate off: trades often."""


def generated_recording(out: Path, hours: float = 1.7, seed: int = 11, keep_every: int = 20) -> Path:
    """Generate ``hours`` of BTCUSDT and write it with bookTickers thinned (see the module docstring)."""
    raw = out.with_suffix(".raw.gz")
    generate(MarketModelConfig(symbols=("BTCUSDT",), hours=hours, seed=seed, rate_scale=0.2, step_ms=500), raw)
    n = 0
    with gzip.open(raw, "rb") as src, gzip.open(out, "wb", compresslevel=1) as dst:
        for line in src:
            if b"@bookTicker" in line:
                n += 1
                if n % keep_every:
                    continue
            dst.write(line)
    raw.unlink()
    return out


def backtest(path: Path, strategies: list[StrategyConfig]) -> tuple[BacktestResult, ScoreCollector]:
    coll = ScoreCollector()
    res = Backtest(strategies, BacktestConfig(), score_sink=coll).run([open_input(path, 15_000)])
    return res, coll


def trade_key(t: dict[str, Any]) -> tuple[Any, ...]:
    """The fields of a trade that parity requires to match exactly."""
    return (t["strategy_id"], t["symbol"], t["direction"], t["signal_ts_ms"], t["entry_ts_ms"], t["exit_ts_ms"],
            t["exit_reason"],
            round(t["entry_price"], 8), round(t["exit_price"], 8), round(t["qty"], 8), round(t["net_r"], 9))


async def journal_view(store: Any) -> dict[str, Any]:
    """Signals, trades, score events and snapshot features of the journal, keyed for comparison."""
    async with store.connection() as c:
        sig = await c.fetch("SELECT s.ts_ms, g.slug, s.side, s.action, s.score FROM signals s "
                            "JOIN strategies g ON g.strategy_id = s.strategy_id")
        trades = await c.fetch("SELECT detail FROM trades")
        scores = await c.fetch("SELECT strategy, symbol, ts_ms, total, block_reason, side, tier, features "
                               "FROM score_events")
        counts = {t: (await c.fetch(f"SELECT COUNT(*) AS n FROM {t}"))[0]["n"]
                  for t in ("orders", "fills", "positions", "trades", "signals", "score_events", "agg_trades")}
        dup_agg = (await c.fetch("SELECT COUNT(*) AS n FROM (SELECT symbol, agg_id FROM agg_trades "
                                 "GROUP BY symbol, agg_id HAVING COUNT(*) > 1) d"))[0]["n"]
    features: dict[tuple[str, int], dict[str, Any]] = {}
    for r in scores:
        f = json.loads(r["features"]) if isinstance(r["features"], str) else r["features"]
        features[(f["symbol"], f["ts_ms"])] = f
    details = [json.loads(r["detail"]) if isinstance(r["detail"], str) else r["detail"] for r in trades]
    return {
        "signals": sorted((r["ts_ms"], r["slug"], r["side"], r["action"], round(r["score"], 9)) for r in sig),
        "trades": sorted(trade_key(t) for t in details),
        "scores": {(r["strategy"], r["symbol"], r["ts_ms"]): (round(r["total"], 9), r["block_reason"], r["side"],
                                                             r["tier"]) for r in scores},
        "features": features, "counts": counts, "duplicate_agg_trades": dup_agg,
    }


def backtest_view(res: BacktestResult, coll: ScoreCollector, until_ms: int) -> dict[str, Any]:
    """The same view of a backtest, up to the runtime's last boundary (a stream has no end-of-file one)."""
    return {
        "signals": sorted((s["ts_ms"], s["strategy_id"], s["side"], str(s["action"]), round(s["score"], 9))
                          for s in res.signals if s["ts_ms"] <= until_ms),
        "trades": sorted(trade_key(trade_record(m)) for m in res.machines() if (m.pos.closed_ms or 0) <= until_ms),
        "scores": {(r.strategy_id, r.symbol, r.ts_ms): (round(r.total, 9), r.block_reason, r.side, r.tier)
                   for _, rs in coll.batches for r in rs if r.ts_ms <= until_ms},
        "features": {(f["symbol"], f["ts_ms"]): f for f, _ in coll.batches if f["ts_ms"] <= until_ms},
    }
