"""Sequencers: any interleaving of duplicates, reorders and holes delivers each id once, in order."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbray.feeds.continuity import Backoff, DepthSequencer, RecentSet, SlidingWindowThrottle, TradeSequencer

pytestmark = pytest.mark.unit


def _perturb(n: int, drops: set[int], dups: set[int], swaps: list[int]) -> list[int]:
    """Arrival order of ids 0..n-1 with some dropped, some sent twice and adjacent pairs swapped."""
    arrivals: list[int] = []
    for i in range(n):
        if i not in drops:
            arrivals.append(i)
        if i in dups:
            arrivals.append(i)
    for k in swaps:
        if k + 1 < len(arrivals):
            arrivals[k], arrivals[k + 1] = arrivals[k + 1], arrivals[k]
    return arrivals


perturbations = st.integers(1, 300).flatmap(lambda n: st.tuples(
    st.just(n),
    st.sets(st.integers(0, n - 1), max_size=n // 3),
    st.sets(st.integers(0, n - 1), max_size=n // 3),
    st.lists(st.integers(0, n), max_size=n // 2),
    st.integers(0, 2**32 - 1),
))


@settings(max_examples=200, deadline=None)
@given(perturbations)
def test_trade_sequencer_delivers_every_id_once_in_order_with_rest_fill(case: tuple) -> None:
    n, drops, dups, swaps, seed = case
    rng = random.Random(seed)
    delivered: list[int] = []
    seq: TradeSequencer[int] = TradeSequencer(delivered.append)
    arrivals = _perturb(n, drops, dups, swaps)

    def rest_fill(page: int) -> None:
        gap = seq.gap()
        if gap is not None:
            lo, hi = gap
            for tid in range(lo, min(hi, lo + page - 1) + 1):  # the server has every id
                seq.offer(tid, tid, 0)

    for t, tid in enumerate(arrivals):
        seq.offer(tid, tid, t)
        if rng.random() < 0.3:  # REST answers at arbitrary points, in pages of arbitrary size
            rest_fill(rng.randint(1, 5))
    while seq.gap() is not None:
        rest_fill(rng.randint(1, 5))
    if not arrivals:
        assert delivered == []
        return
    first = arrivals[0]
    assert delivered == list(range(first, max(arrivals) + 1))
    assert seq.held == 0 and seq.stats["ids_unfillable"] == 0


@settings(max_examples=200, deadline=None)
@given(perturbations)
def test_trade_sequencer_without_rest_reports_every_skipped_id(case: tuple) -> None:
    n, drops, dups, swaps, _ = case
    delivered: list[int] = []
    seq: TradeSequencer[int] = TradeSequencer(delivered.append)
    arrivals = _perturb(n, drops, dups, swaps)
    for t, tid in enumerate(arrivals):
        seq.offer(tid, tid, t)
    while seq.skip_gap(10**6) is not None:
        pass
    assert delivered == sorted(set(delivered)), "strictly increasing, each id once"
    if arrivals:
        skipped = {i for lo, hi in seq.unfillable for i in range(lo, hi + 1)}
        assert not skipped & set(delivered)
        assert skipped | set(delivered) == set(range(arrivals[0], max(arrivals) + 1))
        assert seq.stats["ids_unfillable"] == len(skipped)


def test_trade_sequencer_counts_and_gap_timing() -> None:
    out: list[int] = []
    seq: TradeSequencer[int] = TradeSequencer(out.append)
    for tid in (10, 11, 11, 14, 15):
        seq.offer(tid, tid, 1000 + tid)
    assert out == [10, 11] and seq.gap() == (12, 13) and seq.gap_since_ms == 1014
    assert seq.stats["duplicates"] == 1 and seq.stats["gaps_detected"] == 1
    seq.offer(13, 13, 2000)  # fills half the hole: still held
    assert out == [10, 11] and seq.gap() == (12, 12)
    seq.offer(12, 12, 2001)
    assert out == [10, 11, 12, 13, 14, 15] and seq.gap() is None and seq.gap_since_ms is None
    assert seq.stats["gaps_closed"] == 1 and seq.stats["hole_items"] == 2


def test_trade_sequencer_overflow_skips_and_records() -> None:
    out: list[int] = []
    seq: TradeSequencer[int] = TradeSequencer(out.append, max_held=3)
    for tid in (0, 5, 6, 7, 8):
        seq.offer(tid, tid, tid)
    assert out == [0, 5, 6, 7, 8]
    assert list(seq.unfillable) == [(1, 4)] and seq.stats["gaps_unfillable:held_overflow"] == 1


chains = st.integers(1, 120).flatmap(lambda n: st.tuples(
    st.just(n),
    st.sets(st.integers(0, n - 1), max_size=n // 3),
    st.lists(st.integers(0, n), max_size=n // 2),
    st.lists(st.integers(1, 4), min_size=n, max_size=n),  # u steps (events cover 1-4 ids)
))


@settings(max_examples=120, deadline=None)
@given(chains)
def test_depth_sequencer_repairs_duplicates_and_swaps_in_window(case: tuple) -> None:
    n, dups, swaps, steps = case
    u = [0]
    for s in steps:
        u.append(u[-1] + s)  # event i covers (u[i-1], u[i]]; pu = u[i-1]
    events = [(u[i], u[i - 1]) for i in range(1, n + 1)]
    arrivals = _perturb(n, set(), dups, swaps)
    out: list[int] = []
    seq: DepthSequencer[int] = DepthSequencer(out.append, window_ms=10**9)
    for t, i in enumerate(arrivals):  # the chain starts at the first arrival
        final, prev = events[i]
        seq.offer(final, prev, final, t)
    seq.expire(10**12)
    assert out == [f for f, _ in events[arrivals[0]:]], "every later event once, in chain order"
    assert seq.stats["released_unchained"] == 0


@settings(max_examples=120, deadline=None)
@given(chains, st.integers(0, 5))
def test_depth_sequencer_with_drops_is_increasing_and_bounded_in_time(case: tuple, window: int) -> None:
    n, drops, swaps, steps = case
    u = [0]
    for s in steps:
        u.append(u[-1] + s)
    events = [(u[i], u[i - 1]) for i in range(1, n + 1)]
    arrivals = _perturb(n, drops, set(), swaps)
    out: list[int] = []
    seq: DepthSequencer[int] = DepthSequencer(out.append, window_ms=window)
    for t, i in enumerate(arrivals):
        final, prev = events[i]
        seq.offer(final, prev, final, t)
        if seq.held_since_ms is not None:
            assert t - seq.held_since_ms <= window  # nothing waits longer than the window
    seq.expire(10**12)
    assert out == sorted(set(out))
    assert seq.held == 0


def test_depth_sequencer_holds_then_releases_unchained() -> None:
    out: list[int] = []
    seq: DepthSequencer[int] = DepthSequencer(out.append, window_ms=50)
    seq.offer(10, 5, 10, 0)
    seq.offer(30, 20, 30, 1)  # 20 is missing
    seq.offer(40, 30, 40, 2)
    assert out == [10] and seq.held == 2
    assert not seq.expire(40)
    assert seq.expire(51)
    assert out == [10, 30, 40] and seq.stats["released_unchained"] == 2
    seq.offer(20, 10, 20, 60)  # too late: behind the chain now
    assert out == [10, 30, 40] and seq.stats["duplicates"] == 1


def test_recent_set_is_bounded() -> None:
    r = RecentSet(3)
    assert r.add("a") and r.add("b") and not r.add("a")
    assert r.add("c") and r.add("d")  # evicts "a"
    assert r.add("a") and len(r) == 3


def test_backoff_is_capped_exponential_with_jitter() -> None:
    b = Backoff(0.5, 4.0, jitter=0.0)
    assert [b.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next_delay() == 0.5
    j = Backoff(1.0, 8.0, jitter=0.5, rng=random.Random(1))
    delays = [j.next_delay() for _ in range(5)]
    for k, d in enumerate(delays):
        base = min(8.0, 2.0**k)
        assert base * 0.5 <= d <= base
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)


def test_sliding_window_throttle() -> None:
    t = SlidingWindowThrottle(2, 1000)
    assert t.wait_ms(0) == 0
    t.record(0)
    t.record(100)
    assert t.wait_ms(500) == 500 and t.used(500) == 2
    assert t.wait_ms(1000) == 0 and t.used(1000) == 1
