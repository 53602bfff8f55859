"""Exactly-once, in-order delivery of Binance streams that arrive duplicated, reordered or with holes.

Pure state machines (no I/O, times passed in), one per symbol and sequence:

- ``TradeSequencer``: aggTrade ids must go up by one. A duplicate (``a`` <= last delivered) is
  dropped; a hole holds later trades until it is filled — by the live stream (a reorder) or by REST
  (``gap()`` says what to fetch; the fill goes through ``offer`` like live data) — and then
  delivers them in id order. A hole that cannot be filled is skipped only through ``skip_gap``,
  which records it (``unfillable``): never silently.
- ``DepthSequencer``: diff-depth events must chain (``pu`` == previous ``u``). An event that does
  not chain is held up to a reorder window for the missing one; after that it is released in
  ``u`` order and the order book's own ``pu`` check resyncs. Events at or below the last ``u`` are
  duplicates (e.g. from both connections while one is being rotated).
- ``RecentSet``: bounded memory of payload identities, for id-less streams (forceOrder, kline) whose
  duplicates can only be recognised by content.
- ``Backoff`` and ``SlidingWindowThrottle``: reconnect delays and the snapshot request budget.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter, deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class TradeSequencer(Generic[T]):
    """Delivers items with consecutive integer ids exactly once and in id order (see module doc).

    ``deliver`` is called synchronously for every item released. The first id offered starts the
    sequence. ``stats`` counts ``duplicates``, ``gaps_detected``, ``gaps_closed`` (holes that were
    filled, live or by REST), ``hole_items`` (items that arrived inside a hole: late live ones or
    REST fills), ``gaps_unfillable`` and ``ids_unfillable``.
    """

    __slots__ = ("_deliver", "_heap", "_held", "_top", "gap_since_ms", "last", "max_held", "stats", "unfillable")

    def __init__(self, deliver: Callable[[T], None], max_held: int = 200_000) -> None:
        self._deliver = deliver
        self.max_held = max_held
        self.last: int | None = None
        self._held: dict[int, T] = {}
        self._heap: list[int] = []
        self._top = -1  # highest id held
        self.gap_since_ms: int | None = None
        self.stats: Counter[str] = Counter()
        self.unfillable: deque[tuple[int, int]] = deque(maxlen=1000)  # skipped (first, last) id ranges

    @property
    def held(self) -> int:
        """Items waiting behind a hole."""
        return len(self._held)

    def offer(self, tid: int, item: T, now_ms: int) -> bool:
        """Take one item; False if it was a duplicate. Delivers it (and anything it unblocks) when in order."""
        last = self.last
        if last is not None and tid == last + 1 and not self._held:
            self.last = tid
            self._deliver(item)
            return True
        return self._offer_slow(tid, item, now_ms)

    def _offer_slow(self, tid: int, item: T, now_ms: int) -> bool:
        last = self.last
        if last is None:
            self.last = tid
            self._deliver(item)
            return True
        if tid <= last or tid in self._held:
            self.stats["duplicates"] += 1
            return False
        if self._heap and tid < self._heap[0]:
            self.stats["hole_items"] += 1  # a late or REST-filled item inside a hole
        self._held[tid] = item
        heapq.heappush(self._heap, tid)
        if tid > self._top:
            self._top = tid
        if tid == last + 1:
            self._drain()
            if not self._held:
                self.stats["gaps_closed"] += 1
        elif self.gap_since_ms is None:
            self.gap_since_ms = now_ms
            self.stats["gaps_detected"] += 1
        if len(self._held) > self.max_held:
            self.skip_gap(now_ms, "held_overflow")
        return True

    def _drain(self) -> None:
        heap, held = self._heap, self._held
        assert self.last is not None
        while heap and heap[0] == self.last + 1:
            tid = heapq.heappop(heap)
            self.last = tid
            self._deliver(held.pop(tid))
        if not held:
            self.gap_since_ms = None
            self._top = -1

    def gap(self) -> tuple[int, int] | None:
        """The missing id range ``(first, last)`` inclusive that holds items back, if any."""
        if not self._held or self.last is None:
            return None
        return self.last + 1, self._heap[0] - 1

    def held_span(self) -> tuple[int, int] | None:
        """``(first missing id, highest held id)``: one REST page from the first id covers every hole up to the
        second (a page costs the same weight whatever its length)."""
        if not self._held or self.last is None:
            return None
        return self.last + 1, self._top

    def skip_gap(self, now_ms: int, reason: str = "deadline") -> tuple[int, int] | None:
        """Give up on the current hole: record it as unfillable and release what it held back."""
        gap = self.gap()
        if gap is None:
            return None
        lo, hi = gap
        self.unfillable.append(gap)
        self.stats["gaps_unfillable"] += 1
        self.stats[f"gaps_unfillable:{reason}"] += 1
        self.stats["ids_unfillable"] += hi - lo + 1
        self.last = hi
        self._drain()
        if self._held:  # a further hole behind the one skipped: time it from now
            self.gap_since_ms = now_ms
            self.stats["gaps_detected"] += 1
        return gap


class DepthSequencer(Generic[T]):
    """Chains diff-depth events by ``pu`` == previous ``u``, holding out-of-sequence ones briefly.

    ``stats``: ``duplicates`` (``u`` at or below the last delivered), ``held`` (events that did not
    chain on arrival), ``reordered`` (held events released in sequence because the missing one
    came), ``released_unchained`` (held past the window and released for the book to resync).
    """

    __slots__ = ("_deliver", "_held", "held_since_ms", "last_u", "stats", "window_ms")

    def __init__(self, deliver: Callable[[T], None], window_ms: float) -> None:
        self._deliver = deliver
        self.window_ms = window_ms
        self.last_u: int | None = None
        self._held: dict[int, tuple[int, T]] = {}  # prev final id (pu) -> (u, item)
        self.held_since_ms: int | None = None
        self.stats: Counter[str] = Counter()

    @property
    def held(self) -> int:
        return len(self._held)

    def offer(self, final_id: int, prev_final_id: int, item: T, now_ms: int) -> None:
        """Take one event: deliver it if it chains, drop a duplicate, else hold it (see class doc)."""
        last = self.last_u
        if last is None or prev_final_id == last:
            self.last_u = final_id
            self._deliver(item)
            if self._held:
                self._drain()
                if self.held_since_ms is not None and now_ms - self.held_since_ms >= self.window_ms:
                    self.expire(now_ms)  # the chain moved on but still not up to what is held
            return
        if final_id <= last:
            self.stats["duplicates"] += 1
            return
        if self.window_ms <= 0:
            self.last_u = final_id
            self.stats["released_unchained"] += 1
            self._deliver(item)
            return
        held = self._held.get(prev_final_id)
        if held is not None:
            self.stats["duplicates"] += 1  # same position in the chain already held
            return
        self._held[prev_final_id] = (final_id, item)
        self.stats["held"] += 1
        if self.held_since_ms is None:
            self.held_since_ms = now_ms
        elif now_ms - self.held_since_ms >= self.window_ms:
            self.expire(now_ms)

    def _drain(self) -> None:
        held = self._held
        while held:
            nxt = held.pop(self.last_u, None)  # type: ignore[arg-type]
            if nxt is None:
                break
            self.last_u = nxt[0]
            self.stats["reordered"] += 1
            self._deliver(nxt[1])
        if not held:
            self.held_since_ms = None
        else:  # drop held events the chain has overtaken
            last = self.last_u
            assert last is not None
            for pu in [pu for pu, (u, _) in held.items() if u <= last]:
                del held[pu]
                self.stats["duplicates"] += 1
            if not held:
                self.held_since_ms = None

    def expire(self, now_ms: int) -> bool:
        """Release held events in ``u`` order once the window has passed; True if any were released."""
        if self.held_since_ms is None or now_ms - self.held_since_ms < self.window_ms:
            return False
        items = sorted(self._held.values(), key=lambda x: x[0])
        self._held.clear()
        self.held_since_ms = None
        for u, item in items:
            if self.last_u is not None and u <= self.last_u:
                self.stats["duplicates"] += 1
                continue
            self.last_u = u
            self.stats["released_unchained"] += 1
            self._deliver(item)
        return True


class RecentSet:
    """The last ``capacity`` distinct keys seen; ``add`` tells whether a key is new."""

    __slots__ = ("_order", "_seen", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: set[Hashable] = set()
        self._order: deque[Hashable] = deque()

    def add(self, key: Hashable) -> bool:
        """Remember ``key``; False if it was already among the recent keys (a duplicate)."""
        if key in self._seen:
            return False
        self._seen.add(key)
        self._order.append(key)
        if len(self._order) > self.capacity:
            self._seen.discard(self._order.popleft())
        return True

    def __len__(self) -> int:
        return len(self._order)


class Backoff:
    """Capped exponential delays with jitter: ``initial × 2^n`` up to ``maximum``, times uniform(1 − jitter, 1)."""

    def __init__(self, initial_s: float, maximum_s: float, jitter: float = 0.5, rng: random.Random | None = None):
        if not 0 < initial_s <= maximum_s:
            raise ValueError("need 0 < initial_s <= maximum_s")
        if not 0 <= jitter <= 1:
            raise ValueError("jitter must be in [0, 1]")
        self.initial_s, self.maximum_s, self.jitter = initial_s, maximum_s, jitter
        self._rng = rng or random.Random()
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        base = min(self.maximum_s, self.initial_s * 2.0 ** min(self.failures, 62))
        self.failures += 1
        return base * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self.failures = 0


class SlidingWindowThrottle:
    """At most ``limit`` events in any ``window_ms``: ``wait_ms`` says how long until one more fits."""

    def __init__(self, limit: int, window_ms: int = 60_000) -> None:
        if limit < 1 or window_ms < 1:
            raise ValueError("limit and window_ms must be positive")
        self.limit, self.window_ms = limit, window_ms
        self._times: deque[int] = deque()

    def _expire(self, now_ms: int) -> None:
        while self._times and self._times[0] <= now_ms - self.window_ms:
            self._times.popleft()

    def wait_ms(self, now_ms: int) -> int:
        self._expire(now_ms)
        if len(self._times) < self.limit:
            return 0
        return self._times[0] + self.window_ms - now_ms

    def record(self, now_ms: int) -> None:
        self._times.append(now_ms)

    def used(self, now_ms: int) -> int:
        self._expire(now_ms)
        return len(self._times)
