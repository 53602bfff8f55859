"""Local order book sync: when a symbol's ``LocalOrderBook`` needs a snapshot, fetch one — throttled.

The book itself buffers diffs while a snapshot is in flight and checks the ``pu`` chain (Binance's
algorithm, ``arbray.marketdata.orderbook``). This module decides *when* to fetch:

- a book that is not synced is queued once (never two requests in flight for one symbol);
- requests go out one at a time, at most ``snapshots_per_min`` per minute over all symbols (the
  hftbacktest collector uses 100/min; Binance's weight budget allows 120 at limit 1000), and each
  waits on the REST client's rate limiter;
- after a snapshot is applied the book has ``snapshot_bridge_timeout_s`` to sync (the first diff
  must bridge it); a snapshot the stream never bridges, a new break, or a REST failure counts as a
  failed attempt and queues the next one;
- after ``snapshot_max_attempts`` failures in a row the book is reported ``degraded`` and retried
  every ``degraded_retry_s`` instead (Nautilus gives up after 5; giving up for good would leave
  the symbol dark, so arbray keeps trying slowly and says so).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from arbray.clock import Clock, SystemClock
from arbray.feeds.config import FeedConfig
from arbray.feeds.continuity import SlidingWindowThrottle
from arbray.feeds.rest import BinanceError, BinanceRest, RestReply
from arbray.marketdata.orderbook import BookState, LocalOrderBook

TrackState = Literal["idle", "queued", "fetching", "bridging"]


@dataclass(slots=True)
class BookTrack:
    """Sync progress of one symbol's book."""

    state: TrackState = "idle"
    attempts: int = 0  # failed attempts in a row
    degraded: bool = False
    retry_at_ms: int = 0
    applied_ms: int = 0
    marker: tuple[int, int] = (0, 0)


def _marker(book: LocalOrderBook) -> tuple[int, int]:
    """Changes when the book gives up on an applied snapshot (not bridged) or breaks again."""
    return book.resyncs, book.stats["snapshot_not_bridged"]


class BookSyncPolicy:
    """The pure decision part: which symbols to fetch, and what a fetch's outcome means."""

    def __init__(self, config: FeedConfig) -> None:
        self.config = config
        self.tracks: dict[str, BookTrack] = {}
        self.stats: Counter[str] = Counter()

    def track(self, symbol: str) -> BookTrack:
        t = self.tracks.get(symbol)
        if t is None:
            t = self.tracks[symbol] = BookTrack()
        return t

    def observe(self, symbol: str, book: LocalOrderBook, now_ms: int) -> bool:
        """Look at a book after an event; True when a snapshot should be queued for it now."""
        t = self.track(symbol)
        if book.state is BookState.SYNCED:
            if t.state == "bridging":
                self._succeeded(t)
            return False
        if t.state in ("queued", "fetching"):
            return False
        if t.state == "bridging":
            if _marker(book) == t.marker and now_ms - t.applied_ms < self.config.snapshot_bridge_timeout_s * 1000:
                return False
            self.failed(symbol, now_ms, "not_bridged" if _marker(book) != t.marker else "bridge_timeout")
        if now_ms < t.retry_at_ms:
            return False
        t.state = "queued"
        return True

    def applied(self, symbol: str, book: LocalOrderBook, now_ms: int) -> None:
        """A snapshot was just fed to the book."""
        t = self.track(symbol)
        self.stats["snapshots_applied"] += 1
        if book.state is BookState.SYNCED:
            self._succeeded(t)
        else:
            t.state, t.applied_ms, t.marker = "bridging", now_ms, _marker(book)

    def _succeeded(self, t: BookTrack) -> None:
        t.state, t.attempts, t.retry_at_ms = "idle", 0, 0
        if t.degraded:
            t.degraded = False
            self.stats["recovered_from_degraded"] += 1
        self.stats["syncs"] += 1

    def failed(self, symbol: str, now_ms: int, reason: str) -> None:
        """A fetch failed or its snapshot did not sync the book."""
        t = self.track(symbol)
        t.attempts += 1
        t.state = "idle"
        self.stats["sync_failures"] += 1
        self.stats[f"sync_failures:{reason}"] += 1
        if t.attempts >= self.config.snapshot_max_attempts:
            if not t.degraded:
                t.degraded = True
                self.stats["degraded"] += 1
            t.retry_at_ms = now_ms + int(self.config.degraded_retry_s * 1000)
        else:
            t.retry_at_ms = now_ms

    def degraded(self) -> list[str]:
        return sorted(s for s, t in self.tracks.items() if t.degraded)


SnapshotSink = Callable[[str, RestReply, int], LocalOrderBook | None]
"""Feeds a fetched snapshot to the symbol's book (through the parser); returns the book."""


class BookSyncer:
    """The async worker: takes queued symbols and fetches ``/fapi/v1/depth`` within the throttle."""

    def __init__(self, config: FeedConfig, rest: BinanceRest, apply: SnapshotSink, clock: Clock | None = None) -> None:
        self.config = config
        self.rest = rest
        self.apply = apply
        self.clock = clock or SystemClock()
        self.policy = BookSyncPolicy(config)
        self.throttle = SlidingWindowThrottle(config.snapshots_per_min, 60_000)
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self.stats = self.policy.stats

    def observe(self, symbol: str, book: LocalOrderBook) -> None:
        """Called for a book that may need a snapshot; queues at most one fetch per symbol."""
        if self.policy.observe(symbol, book, self.clock.now_ms()):
            self._queue.put_nowait(symbol)

    async def run(self) -> None:
        """Fetch queued snapshots one at a time, until cancelled."""
        while True:
            symbol = await self._queue.get()
            track = self.policy.track(symbol)
            track.state = "fetching"
            wait = self.throttle.wait_ms(self.clock.now_ms())
            if wait > 0:
                self.stats["throttled"] += 1
            while wait > 0:  # in steps, re-reading the (possibly injected) clock
                self.stats["throttled_ms"] += min(wait, 250)
                await asyncio.sleep(min(wait, 250) / 1000)
                wait = self.throttle.wait_ms(self.clock.now_ms())
            self.throttle.record(self.clock.now_ms())
            self.stats["snapshot_requests"] += 1
            try:
                reply = await self.rest.request("GET", "/fapi/v1/depth",
                                                {"symbol": symbol, "limit": self.config.snapshot_limit})
            except BinanceError as exc:
                self.stats[f"snapshot_errors:{exc.code or exc.http_status}"] += 1
                self.policy.failed(symbol, self.clock.now_ms(), "rest_error")
                continue
            book = self.apply(symbol, reply, time.time_ns())
            if book is None:  # the reply did not parse: counted by the parser
                self.policy.failed(symbol, self.clock.now_ms(), "bad_snapshot")
                continue
            self.stats["snapshots_fetched"] += 1
            self.policy.applied(symbol, book, self.clock.now_ms())

    def snapshot_stats(self) -> dict[str, Any]:
        return {**dict(sorted(self.stats.items())), "degraded": self.policy.degraded(),
                "queued": self._queue.qsize(), "throttle_used_1m": self.throttle.used(self.clock.now_ms())}
