"""The local order book follows Binance's USD-M algorithm step by step (and a brute-force model)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbray.marketdata.events import DepthSnapshot, DepthUpdate, Level
from arbray.marketdata.orderbook import BookState, LocalOrderBook

pytestmark = pytest.mark.unit


def snap(last: int, bids: list[Level], asks: list[Level]) -> DepthSnapshot:
    return DepthSnapshot("X", last, 0, bids, asks)


def diff(U: int, u: int, pu: int, bids: list[Level] = (), asks: list[Level] = ()) -> DepthUpdate:  # type: ignore[assignment]
    return DepthUpdate("X", 0, u, U, u, pu, list(bids), list(asks))


def test_buffers_until_snapshot_then_drops_old_and_bridges() -> None:
    b = LocalOrderBook("X")
    b.apply_diff(diff(1, 5, 0, [(10.0, 1.0)]))  # u < lastUpdateId: dropped
    b.apply_diff(diff(6, 12, 5, [(10.0, 2.0)]))  # bridges lastUpdateId=8
    b.apply_diff(diff(13, 15, 12, [(11.0, 1.0)]))
    assert b.state is BookState.AWAITING_SNAPSHOT and b.best_bid() is None
    assert b.apply_snapshot(snap(8, [(9.0, 5.0)], [(12.0, 1.0)]))
    assert b.synced and b.last_update_id == 15
    assert b.best_bid() == (11.0, 1.0) and b.bids[10.0] == 2.0
    assert b.stats["dropped_before_snapshot"] == 1


def test_snapshot_not_bridged_waits_for_another() -> None:
    b = LocalOrderBook("X")
    b.apply_diff(diff(20, 25, 19))
    assert not b.apply_snapshot(snap(8, [(9.0, 5.0)], [(12.0, 1.0)]))
    assert b.needs_snapshot and b.stats["snapshot_not_bridged"] == 1
    assert b.best_bid() is None  # never a book built on a broken chain
    assert b.apply_snapshot(snap(22, [(9.0, 5.0)], [(12.0, 1.0)]))


def test_snapshot_then_live_diff_bridges() -> None:
    b = LocalOrderBook("X")
    b.apply_snapshot(snap(100, [(9.0, 5.0)], [(12.0, 1.0)]))
    assert not b.synced
    b.apply_diff(diff(90, 99, 89))  # older than the snapshot
    assert b.apply_diff(diff(100, 104, 99, asks=[(12.0, 0.0), (13.0, 1.0)]))
    assert b.best_ask() == (13.0, 1.0)


def test_gap_resyncs_and_clears() -> None:
    b = LocalOrderBook("X")
    b.apply_diff(diff(1, 10, 0))
    b.apply_snapshot(snap(5, [(9.0, 5.0)], [(12.0, 1.0)]))
    assert b.synced
    assert not b.apply_diff(diff(15, 20, 12))  # pu != 10: a message was lost
    assert b.state is BookState.RESYNCING and b.resyncs == 1
    assert b.best_bid() is None and b.best_ask() is None
    b.apply_snapshot(snap(18, [(9.5, 1.0)], [(12.0, 1.0)]))
    assert b.synced and b.best_bid() == (9.5, 1.0)


def test_duplicate_is_counted_not_applied() -> None:
    b = LocalOrderBook("X")
    b.apply_diff(diff(1, 10, 0))
    b.apply_snapshot(snap(5, [(9.0, 5.0)], [(12.0, 1.0)]))
    b.apply_diff(diff(11, 12, 10, [(9.0, 1.0)]))
    assert not b.apply_diff(diff(11, 12, 10, [(9.0, 7.0)]))
    assert b.synced and b.bids[9.0] == 1.0 and b.stats["stale_or_duplicate"] == 1


def test_zero_removes_and_unknown_removal_is_fine() -> None:
    b = LocalOrderBook("X")
    b.apply_snapshot(snap(1, [(9.0, 5.0), (8.0, 1.0)], [(12.0, 1.0)]))
    b.apply_diff(diff(1, 2, 0, [(9.0, 0.0), (7.0, 0.0)]))
    assert b.synced and b.best_bid() == (8.0, 1.0) and 7.0 not in b.bids
    assert b.imbalance(10) == pytest.approx((1.0 - 1.0) / 2.0)


levels = st.lists(st.tuples(st.integers(1, 40).map(float), st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5])), max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(levels, levels), min_size=1, max_size=40))
def test_matches_brute_force_model(updates: list[tuple[list[Level], list[Level]]]) -> None:
    """Best prices, top-N and imbalance equal a plain dict model after any update sequence."""
    b = LocalOrderBook("X")
    b.apply_snapshot(snap(1, [(20.0, 1.0)], [(21.0, 1.0)]))
    model_b: dict[float, float] = {20.0: 1.0}
    model_a: dict[float, float] = {21.0: 1.0}
    last = 1
    for k, (bids, asks) in enumerate(updates):
        b.apply_diff(diff(last, last + 1 + k, last - 1 if k == 0 else last, bids, asks))
        last = last + 1 + k
        for side, lv in ((model_b, bids), (model_a, asks)):
            for p, q in lv:
                if q == 0.0:
                    side.pop(p, None)
                else:
                    side[p] = q
        assert b.synced
        assert b.best_bid() == ((max(model_b), model_b[max(model_b)]) if model_b else None)
        assert b.best_ask() == ((min(model_a), model_a[min(model_a)]) if model_a else None)
        tb, ta = b.top(3)
        assert tb == [(p, model_b[p]) for p in sorted(model_b, reverse=True)[:3]]
        assert ta == [(p, model_a[p]) for p in sorted(model_a)[:3]]


def test_lazy_levels_with_bad_values_break_the_book_and_are_counted() -> None:
    """Strings that pass the parser's charset check but are not numbers resync the book when read."""
    b = LocalOrderBook("X")
    b.apply_snapshot(snap(1, [(9.0, 5.0)], [(12.0, 1.0)]))
    b.apply_diff(diff(1, 2, 0, [("9.5", "1.0")]))
    b.apply_diff(diff(3, 4, 2, [("1.2.3", "1.0")]))
    assert b.best_bid() is None and b.state is BookState.RESYNCING
    assert b.rejects["depthUpdate:bad_level"] == 1 and b.resyncs == 1
    b2 = LocalOrderBook("X")
    b2.apply_snapshot(snap(1, [(9.0, 5.0)], [(12.0, 1.0)]))
    b2.apply_diff(diff(1, 2, 0, [("0.0", "1.0")]))  # zero price
    assert b2.best_ask() is None and b2.rejects["depthUpdate:bad_level"] == 1


def test_two_spellings_of_one_price_resync_instead_of_guessing() -> None:
    """"9.5" and "9.50" pending together: which write came last is unknowable → resync, counted."""
    b = LocalOrderBook("X")
    b.apply_snapshot(snap(1, [(9.0, 5.0)], [(12.0, 1.0)]))
    b.apply_diff(diff(1, 2, 0, [("9.5", "1.0")]))
    assert b.best_bid() == (9.5, 1.0)
    b.apply_diff(diff(3, 4, 2, [("9.50", "0")]))  # read in between: unambiguous
    assert b.best_bid() == (9.0, 5.0)
    b.apply_diff(diff(5, 6, 4, [("9.5", "2.0")]))
    b.apply_diff(diff(7, 8, 6, [("9.50", "0")]))
    assert b.best_bid() is None and b.state is BookState.RESYNCING
    assert b.rejects["depthUpdate:ambiguous_price"] == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(levels, levels), min_size=1, max_size=30), st.lists(st.integers(0, 30), max_size=6))
def test_lazy_reads_at_any_point_equal_eager_model(updates: list[tuple[list[Level], list[Level]]],
                                                   reads: list[int]) -> None:
    """Materialising at arbitrary points (or never until the end) gives the same book."""
    lazy, eager = LocalOrderBook("X"), LocalOrderBook("X", max_pending=1)
    for book in (lazy, eager):
        book.apply_snapshot(snap(1, [(20.0, 1.0)], [(21.0, 1.0)]))
    prev_u = 0
    for k, (bids, asks) in enumerate(updates):
        sb = [(f"{p:.1f}", f"{q}") for p, q in bids]
        sa = [(f"{p:.2f}", f"{q}") for p, q in asks]
        for book in (lazy, eager):
            book.apply_diff(diff(1 if k == 0 else prev_u + 1, prev_u + 2, prev_u, sb, sa))
        prev_u += 2
        if k in reads:
            assert lazy.top(50) == eager.top(50)
    assert lazy.top(50) == eager.top(50) and lazy.synced


def test_spread_microprice_depth() -> None:
    b = LocalOrderBook("X")
    assert b.spread() is None and b.microprice() is None
    b.apply_snapshot(snap(1, [(9.0, 3.0), (8.0, 1.0)], [(10.0, 1.0), (11.0, 4.0)]))
    b.apply_diff(diff(1, 2, 0))
    assert b.spread() == 1.0
    assert b.microprice() == pytest.approx((9.0 * 1.0 + 10.0 * 3.0) / 4.0)
    assert b.depth(1) == (3.0, 1.0) and b.depth(10) == (4.0, 5.0)
