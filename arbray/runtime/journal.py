"""``JournalCore``: the runtime's single writer to the store.

Two kinds of writes. *Acknowledged* ones — the PositionManager's applied inputs and the orders,
fills, positions, trades and signals they produced — are awaited: the caller acknowledges its own
sender only after they are durable. *Streamed* ones — score events with their snapshot's features
(the calibration dataset) and recorded aggTrades — are queued and written in batches by a
background task, so the hot path never waits on the disk; ``flush`` drains them (used at shutdown
and by tests). Every write is idempotent, so a retried call or a replayed item changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
from collections import Counter
from collections.abc import Sequence
from typing import Any

from arbray.features.snapshot import FeatureSnapshot
from arbray.runtime.position_manager import Item, Outputs
from arbray.runtime.symbol_state import TradeSlice
from arbray.scoring.result import ScoreResult
from arbray.storage.base import Store
from arbray.storage.records import AggTrade, RiskEvent

InputRow = tuple[int, str, str | None, int, bytes]


class StaleWriter(RuntimeError):
    """A write from a PositionManager incarnation that a newer one has replaced."""


def encode_item(seq: int, item: Item, ts_ms: int) -> InputRow:
    """The ``pm_inputs`` row of one applied item (payloads are the runtime's own records, pickled)."""
    return (seq, type(item).__name__, getattr(item, "symbol", None), ts_ms, pickle.dumps(item, protocol=5))


def decode_item(row: InputRow) -> Item:
    """An item back from its ``pm_inputs`` row (trusted: only the runtime writes this table)."""
    item: Item = pickle.loads(row[4])
    return item


class JournalCore:
    """Batched, idempotent writes of one run's journal."""

    def __init__(self, store: Store, run_id: str, instance: str, batch_ms: int = 200, max_batch: int = 5_000) -> None:
        """``run_id`` tags journal rows; ``instance`` keys the PositionManager's input log."""
        self.store = store
        self.run_id = run_id
        self.instance = instance
        self.batch_s = batch_ms / 1000
        self.max_batch = max_batch
        self.counters: Counter[str] = Counter()
        self._scores: list[tuple[dict[str, Any], list[ScoreResult]]] = []
        self._trades: list[AggTrade] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.write_ms_max = 0.0
        self.epoch = 0  # the PositionManager incarnation allowed to write (see ``fence``)

    # ---- acknowledged writes -------------------------------------------------------------------
    async def fence(self, epoch: int) -> None:
        """A new PositionManager incarnation takes over: writes of older ones are refused from now on
        (one still in progress finishes first, so the new one reads it back from the log)."""
        async with self._lock:
            if epoch < self.epoch:
                raise StaleWriter(f"epoch {epoch} is older than the current {self.epoch}")
            self.epoch = epoch

    async def record(self, inputs: Sequence[InputRow], outputs: Outputs | None, epoch: int = 0) -> None:
        """Durably record applied PositionManager inputs and what they produced (in that order).

        ``StaleWriter`` if a newer PositionManager incarnation has fenced this one out."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        async with self._lock:
            if epoch < self.epoch:
                self.counters["stale_writes_refused"] += 1
                raise StaleWriter(f"epoch {epoch} was fenced out by {self.epoch}")
            if inputs:
                await self.store.append_pm_inputs(self.instance, inputs)
                self.counters["pm_inputs"] += len(inputs)
            if outputs:
                await self._outputs(outputs)
        self.write_ms_max = max(self.write_ms_max, (loop.time() - t0) * 1000)

    async def _outputs(self, out: Outputs) -> None:
        s, c = self.store, self.counters
        for o in out.orders:
            await s.record_order(o)
        c["orders"] += len(out.orders)
        for f, p in out.fills:
            c["fills"] += await s.apply_fill(f, p)
        for p in out.positions:
            await s.upsert_position(p)
        c["positions"] += len(out.positions)
        for t in out.trades:
            c["trades"] += await s.record_trade(t)
        for sig in out.signals:
            c["signals"] += await s.insert_signal(sig)
        for uuid, kind, amount, ts, ref in out.ledger:
            c["ledger"] += await s.add_ledger_entry(uuid, kind, amount, ts, ref)

    async def risk(self, state: str, detail: dict[str, Any], events: Sequence[RiskEvent] = ()) -> None:
        """The guard's persisted state (scope ``global``) and its events."""
        async with self._lock:
            await self.store.set_risk_state("global", state, None, detail)
            for ev in events:
                await self.store.add_risk_event(ev)
        self.counters["risk_writes"] += 1

    # ---- streamed writes -----------------------------------------------------------------------
    def scores(self, snap: FeatureSnapshot, results: list[ScoreResult]) -> None:
        """Queue a snapshot's score events (with its features: the calibration dataset)."""
        if results:
            self._scores.append((snap.to_dict(), results))
            self._kick()

    def agg_trades(self, batch: TradeSlice) -> None:
        """Queue recorded aggTrades (first/last trade ids are not kept by the live path: −1)."""
        sym = batch.symbol
        self._trades.extend(
            AggTrade(sym, int(a), float(p), float(q), -1, -1, int(t), bool(m))
            for a, p, q, t, m in zip(batch.trade_id.tolist(), batch.price.tolist(), batch.qty.tolist(),
                                     batch.ts_ms.tolist(), batch.is_buyer_maker.tolist(), strict=True))
        self._kick()

    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain_later())

    async def _drain_later(self) -> None:
        await asyncio.sleep(self.batch_s)
        await self.flush()

    async def flush(self) -> None:
        """Write every queued score event and aggTrade now."""
        async with self._lock:
            while self._scores or self._trades:
                scores, self._scores = self._scores, []
                trades, self._trades = self._trades[: self.max_batch], self._trades[self.max_batch:]
                for features, results in scores:
                    self.counters["score_events"] += await self.store.insert_score_events(
                        results, run_id=self.run_id, features=features)
                if trades:
                    await self.store.insert_agg_trades(trades)
                    self.counters["agg_trades"] += len(trades)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    def stats(self) -> dict[str, Any]:
        return {**self.counters, "queued_scores": len(self._scores), "queued_agg_trades": len(self._trades),
                "write_ms_max": round(self.write_ms_max, 3)}
