"""Local order book kept with Binance USD-M's official algorithm.

1. Buffer diff events while no snapshot is applied.
2. On a snapshot, drop buffered events with ``u < lastUpdateId``; the first applied event must
   satisfy ``U <= lastUpdateId <= u`` (otherwise the snapshot is too old or too new: wait).
3. Every later event must have ``pu`` equal to the previous event's ``u``; otherwise the book
   is cleared and marked ``resyncing`` until the next snapshot (never a silently wrong book).
4. Quantities are absolute; 0 removes the level; removing an unknown level is fine.

An event whose ``u`` is at or below the last applied ``u`` is a duplicate or stale message: it is
counted and ignored instead of forcing a resync.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from enum import StrEnum

from arbray.marketdata.events import DepthSnapshot, DepthUpdate, Level


class BookState(StrEnum):
    """``awaiting_snapshot`` before the first sync, ``synced``, ``resyncing`` after a break."""

    AWAITING_SNAPSHOT = "awaiting_snapshot"
    SYNCED = "synced"
    RESYNCING = "resyncing"


class LocalOrderBook:
    """One symbol's book: price → quantity per side, with lazily cached best prices.

    ``needs_snapshot`` tells the owner (feed client or replay) to fetch/apply a snapshot.
    ``max_buffer`` bounds the pre-snapshot buffer (oldest events are dropped and counted; a
    dropped event can only make the next snapshot fail to line up, never corrupt the book).
    """

    def __init__(self, symbol: str, max_buffer: int = 20_000) -> None:
        self.symbol = symbol
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.state = BookState.AWAITING_SNAPSHOT
        self.last_update_id = 0
        self.last_transact_ms = 0
        self.resyncs = 0
        self.stats: Counter[str] = Counter()
        self._buffer: deque[DepthUpdate] = deque(maxlen=max_buffer)
        self._best_bid: float | None = None
        self._best_ask: float | None = None
        self._bid_dirty = False
        self._ask_dirty = False
        self._snapshot_id: int | None = None  # applied snapshot not yet bridged by a diff

    # ----------------------------------------------------------------- state
    @property
    def synced(self) -> bool:
        return self.state is BookState.SYNCED

    @property
    def needs_snapshot(self) -> bool:
        return self.state is not BookState.SYNCED

    def _clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self._best_bid = self._best_ask = None
        self._bid_dirty = self._ask_dirty = False

    def _break(self, reason: str) -> None:
        self.stats[reason] += 1
        self.resyncs += 1
        self._clear()
        self.state = BookState.RESYNCING
        self._buffer.clear()

    # ---------------------------------------------------------------- inputs
    def apply_snapshot(self, snap: DepthSnapshot) -> bool:
        """Load a REST snapshot and replay buffered diffs. Returns True if the book is synced."""
        self._clear()
        for p, q in snap.bids:
            if q > 0.0:
                self.bids[p] = q
        for p, q in snap.asks:
            if q > 0.0:
                self.asks[p] = q
        self._bid_dirty = self._ask_dirty = True
        self.last_update_id = snap.last_update_id
        self.last_transact_ms = snap.transact_ms
        self.stats["snapshots"] += 1
        pending = list(self._buffer)
        self._buffer.clear()
        self.state = BookState.AWAITING_SNAPSHOT if self.resyncs == 0 else BookState.RESYNCING
        self._snapshot_id = snap.last_update_id
        for ev in pending:  # if none bridges the snapshot yet, the next live diff may
            self.apply_diff(ev)
        return self.synced

    def apply_diff(self, ev: DepthUpdate) -> bool:
        """Apply one diff event. Returns True if it was applied to a synced book."""
        if self.state is BookState.SYNCED:
            if ev.final_id <= self.last_update_id:
                self.stats["stale_or_duplicate"] += 1
                return False
            if ev.prev_final_id != self.last_update_id:
                self._break("sequence_gap")
                self._buffer.append(ev)
                return False
            self._apply_levels(ev)
            return True
        snap_id = self._snapshot_id
        if snap_id is None:
            self._buffer.append(ev)
            self.stats["buffered"] += 1
            return False
        if ev.final_id < snap_id:
            self.stats["dropped_before_snapshot"] += 1
            return False
        if ev.first_id <= snap_id <= ev.final_id:
            self.state = BookState.SYNCED
            self._snapshot_id = None
            self._apply_levels(ev)
            return True
        # First event after the snapshot does not bridge it: the snapshot is unusable.
        self.stats["snapshot_not_bridged"] += 1
        self._snapshot_id = None
        self._clear()
        self._buffer.append(ev)
        return False

    def _apply_levels(self, ev: DepthUpdate) -> None:
        bids, asks = self.bids, self.asks
        bb, ba = self._best_bid, self._best_ask
        for p, q in ev.bids:
            if q == 0.0:
                if bids.pop(p, None) is not None and p == bb:
                    self._bid_dirty = True
            else:
                bids[p] = q
                if bb is None or p > bb:
                    bb = p
        for p, q in ev.asks:
            if q == 0.0:
                if asks.pop(p, None) is not None and p == ba:
                    self._ask_dirty = True
            else:
                asks[p] = q
                if ba is None or p < ba:
                    ba = p
        self._best_bid, self._best_ask = bb, ba
        self.last_update_id = ev.final_id
        self.last_transact_ms = ev.transact_ms

    # --------------------------------------------------------------- queries
    def best_bid(self) -> tuple[float, float] | None:
        if self._bid_dirty:
            self._best_bid = max(self.bids) if self.bids else None
            self._bid_dirty = False
        p = self._best_bid
        return None if p is None else (p, self.bids[p])

    def best_ask(self) -> tuple[float, float] | None:
        if self._ask_dirty:
            self._best_ask = min(self.asks) if self.asks else None
            self._ask_dirty = False
        p = self._best_ask
        return None if p is None else (p, self.asks[p])

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """The best ``n`` levels per side, best first."""
        bid_prices = heapq.nlargest(n, self.bids)
        ask_prices = heapq.nsmallest(n, self.asks)
        return [(p, self.bids[p]) for p in bid_prices], [(p, self.asks[p]) for p in ask_prices]

    def imbalance(self, n: int) -> float | None:
        """(bid qty − ask qty) / (bid qty + ask qty) over the top ``n`` levels, in [-1, 1]."""
        bids, asks = self.top(n)
        b = sum(q for _, q in bids)
        a = sum(q for _, q in asks)
        return None if b + a <= 0.0 else (b - a) / (b + a)
