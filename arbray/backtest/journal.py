"""Write a backtest into the journal, so backtests and live runs share one query path.

Everything is tagged with the backtest's ``run_id``. Each strategy config becomes a strategy row
with a deterministic UUID (``uuid5`` of the run and the config's id) and the slug
``<strategy_id>@<run_id>``, so a backtest never collides with the live strategy of the same name.
Score events carry the snapshot's features: the same calibration dataset live trading produces.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from arbray.backtest.engine import BacktestResult
from arbray.backtest.stats import trade_record
from arbray.features.snapshot import FeatureSnapshot
from arbray.scoring.result import ScoreResult
from arbray.storage.base import Store
from arbray.storage.records import FillRecord, SignalRecord, StrategyRecord, TradeRecord

_NAMESPACE = uuid.UUID("6f1f4c59-2a55-4e0e-9d0c-6d8b1f0a7a11")


class ScoreCollector:
    """A ``Backtest`` score sink that keeps every ``ScoreResult`` with its snapshot's features."""

    def __init__(self) -> None:
        self.batches: list[tuple[dict[str, Any], list[ScoreResult]]] = []

    def __call__(self, snap: FeatureSnapshot, results: list[ScoreResult]) -> None:
        if results:
            self.batches.append((snap.to_dict(), results))

    def __len__(self) -> int:
        return sum(len(r) for _, r in self.batches)


def strategy_uuid(run_id: str, strategy_id: str) -> str:
    """The journal id of one strategy config in one run (stable across re-journaling)."""
    return str(uuid.uuid5(_NAMESPACE, f"{run_id}:{strategy_id}"))


async def journal_backtest(
    store: Store, res: BacktestResult, scores: ScoreCollector, run_id: str
) -> dict[str, int]:
    """Record strategies, score events, signals, fills and trades of ``res``; idempotent per ``run_id``."""
    first = min((a for a, _ in res.symbols.values() if a is not None), default=0)
    ids = {c.strategy_id: strategy_uuid(run_id, c.strategy_id) for c in res.strategies}
    for c in res.strategies:
        await store.upsert_strategy(
            StrategyRecord(
                strategy_id=ids[c.strategy_id], slug=f"{c.strategy_id}@{run_id}", display_name=c.strategy_id,
                kind=c.kind, config=c.model_dump(mode="json"), config_hash=c.config_hash,
                initial_balance=res.config.initial_balance, created_ms=first, tags=("backtest",),
            ),
            ts_ms=first,
        )
    n_scores = 0
    for features, results in scores.batches:
        n_scores += await store.insert_score_events(results, run_id=run_id, features=features)
    n_signals = 0
    for s in res.signals:
        n_signals += await store.insert_signal(SignalRecord(
            strategy_id=ids[s["strategy_id"]], symbol=s["symbol"], ts_ms=s["ts_ms"], side=s["side"],
            action=str(s["action"]), score=s["score"], tier=s["tier"], price=s["price"],
            detail={"is_entry": s["is_entry"], "is_flip_signal": s["is_flip_signal"], "atr_5m": s["atr_5m"]},
            run_id=run_id,
        ))
    n_fills = n_trades = 0
    machines: Sequence[Any] = res.machines()
    for m in machines:
        p = m.pos
        sid = ids[p.strategy_id]
        for k, f in enumerate(p.fills):
            n_fills += await store.apply_fill(FillRecord(
                fill_id=f"{run_id}:{p.position_id}:{k}", client_order_id=f.client_id, strategy_id=sid,
                symbol=f.symbol, side="BUY" if f.side > 0 else "SELL", price=f.price, qty=f.qty, fee=f.fee,
                fee_asset="USDT", is_maker=f.liquidity == "maker", ts_ms=f.ts_ms, position_id=p.position_id,
                run_id=run_id,
            ))
        t = trade_record(m)
        n_trades += await store.record_trade(TradeRecord(
            trade_id=f"{run_id}:{p.position_id}", strategy_id=sid, symbol=p.symbol, side=t["direction"],
            qty=t["qty"], entry_price=t["entry_price"], entry_ms=t["entry_ts_ms"], exit_price=t["exit_price"],
            exit_ms=t["exit_ts_ms"], exit_reason=str(t["exit_reason"]), pnl=p.price_pnl, fees=p.fees,
            funding=-p.funding, risk_distance=p.risk_distance, r_multiple=t["net_r"], score=p.score, tier=p.tier,
            position_id=p.position_id, detail=t, run_id=run_id,
        ))
    return {"strategies": len(ids), "score_events": n_scores, "signals": n_signals, "fills": n_fills,
            "trades": n_trades}
