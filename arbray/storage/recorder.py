"""``AggTradeRecorder``: a bounded in-memory queue drained in batches by one background writer.

Producers ``await put(...)``, which only appends to a buffer, so a database write never blocks
the caller. When the buffer is full the policy decides: ``block`` waits for the writer
(back-pressure), ``drop_newest`` drops the new rows and counts them. A failed write keeps its
batch at the head of the queue and is retried with back-off, so transient outages lose nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from arbray.storage.base import SqlStore
from arbray.storage.config import StoreConfig
from arbray.storage.records import AggTrade


@dataclass(slots=True)
class RecorderStats:
    """Counters of one recorder: rows accepted, written, dropped; failed writes; deepest queue."""

    accepted: int = 0
    written: int = 0
    dropped: int = 0
    write_errors: int = 0
    max_depth: int = 0


class AggTradeRecorder:
    """Records aggTrades into a store at high rate without blocking the producer on I/O."""

    def __init__(self, store: SqlStore, config: StoreConfig | None = None) -> None:
        """``config`` defaults to the store's own (queue size, drop policy, batch size, flush interval)."""
        cfg = config or store.config
        self._store = store
        self._cap = cfg.queue_size
        self._batch = cfg.batch_size
        self._flush_s = cfg.flush_interval_ms / 1000
        self._drop = cfg.drop_policy == "drop_newest"
        self._buf: list[AggTrade | tuple[Any, ...]] = []
        self._has_data = asyncio.Event()
        self._batch_ready = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._inflight = False
        self.last_error: BaseException | None = None
        self.stats = RecorderStats()

    def start(self) -> None:
        """Start the background writer (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="arbray-aggtrade-writer")

    @property
    def depth(self) -> int:
        """Rows waiting to be written."""
        return len(self._buf)

    async def put(self, row: AggTrade | tuple[Any, ...]) -> bool:
        """Queue one aggTrade; False when it was dropped (``drop_newest`` and the queue is full)."""
        return await self.put_many((row,)) == 1

    async def put_many(self, rows: Sequence[AggTrade | tuple[Any, ...]]) -> int:
        """Queue aggTrades; returns how many were accepted (the rest were dropped and counted)."""
        if self._closing:
            raise RuntimeError("recorder is closed")
        self.start()
        accepted = 0
        i = 0
        while i < len(rows):
            free = self._cap - len(self._buf)
            if free <= 0:
                if self._drop:
                    self.stats.dropped += len(rows) - i
                    break
                self._space.clear()
                await self._space.wait()
                continue
            chunk = rows[i:i + free]
            self._buf.extend(chunk)
            i += len(chunk)
            accepted += len(chunk)
            self._has_data.set()
            if len(self._buf) >= self._batch:
                self._batch_ready.set()
        self.stats.accepted += accepted
        self.stats.max_depth = max(self.stats.max_depth, len(self._buf))
        return accepted

    async def flush(self) -> None:
        """Wait until every row queued so far is written."""
        while self._buf or self._inflight:
            if self._task is None or self._task.done():
                raise RuntimeError("recorder writer is not running") from self.last_error
            self._batch_ready.set()
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        """Write everything still queued, then stop the writer (re-raising a write that keeps failing)."""
        self._closing = True
        self._has_data.set()
        self._batch_ready.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def __aenter__(self) -> AggTradeRecorder:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            if not self._buf:
                if self._closing:
                    return
                self._has_data.clear()
                await self._has_data.wait()
                continue
            if len(self._buf) < self._batch and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._batch_ready.wait(), self._flush_s)
            self._batch_ready.clear()
            batch = self._buf[:self._batch]
            del self._buf[:len(batch)]
            self._inflight = True
            self._space.set()
            try:
                await self._store.insert_agg_trades(batch)
            except Exception as exc:
                self._buf[:0] = batch
                self.stats.write_errors += 1
                self.last_error = exc
                if self._closing and backoff >= 0.4:
                    raise
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            finally:
                self._inflight = False
            backoff = 0.05
            self.stats.written += len(batch)
