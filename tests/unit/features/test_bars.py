"""Bars and Wilder ATR against an independent textbook implementation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbray.features.bars import Bar, BarSeries
from tests.unit.features import brute

pytestmark = pytest.mark.unit
P = 300_000


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40 * P), st.integers(9000, 9100)), min_size=1, max_size=300),
       st.integers(1, 7), st.integers(2, 14))
def test_atr_equals_textbook_wilder(trades: list[tuple[int, int]], nbatches: int, length: int) -> None:
    trades = sorted(trades)
    series = BarSeries(P, length=length, max_gap_bars=10_000)
    ts = np.array([t for t, _ in trades], np.int64)
    px = np.array([p / 10 for _, p in trades])
    for chunk in np.array_split(np.arange(len(trades)), nbatches):
        if chunk.size:
            series.add_trades(ts[chunk], px[chunk], np.ones(chunk.size))
    end = trades[-1][0] + 3 * P
    series.close_until(end)
    ref_bars = brute.bars([(t, p / 10) for t, p in trades], P)
    # close_until also closes the empty bars up to `end`
    while ref_bars[-1][0] + P < end - end % P:
        c = ref_bars[-1][4]
        ref_bars.append((ref_bars[-1][0] + P, c, c, c, c))
    assert [(b.open_ms, b.open, b.high, b.low, b.close) for b in series.closed] == ref_bars[-len(series.closed):]
    ref = brute.wilder_atr(ref_bars, length)
    assert (series.atr is None) == (ref is None)
    if ref is not None:
        assert series.atr == pytest.approx(ref, rel=1e-12)


def test_percentile_sampled_once_per_closed_bar() -> None:
    s = BarSeries(P, length=2)
    for k in range(12):
        s.add_trades(np.array([k * P], np.int64), np.array([100.0 + (k % 3)]), np.array([1.0]))
    s.close_until(12 * P)
    n = len(s.atr_samples)
    values = [s.atr_percentile() for _ in range(5)]
    assert len(set(values)) == 1 and len(s.atr_samples) == n == 11


def test_long_gap_restarts_instead_of_inventing_bars() -> None:
    s = BarSeries(P, length=2, max_gap_bars=3)
    s.add_trades(np.array([0, P, 2 * P], np.int64), np.array([1.0, 2.0, 3.0]), np.ones(3))
    s.add_trades(np.array([100 * P], np.int64), np.array([5.0]), np.ones(1))
    assert s.restarts == 1 and s.atr is None and len(s.closed) == 0


def test_klines_seed_history_only_before_trades() -> None:
    s = BarSeries(P, length=2)
    assert s.add_closed_bar(Bar(0, 1, 2, 0.5, 1.5, 10))
    assert s.add_closed_bar(Bar(P, 1.5, 2.5, 1, 2, 10))
    assert s.atr == pytest.approx(((2 - 0.5) + (2.5 - 1)) / 2)
    assert not s.add_closed_bar(Bar(P, 1, 1, 1, 1, 1))  # not newer
    s.add_trades(np.array([3 * P], np.int64), np.array([2.0]), np.ones(1))
    assert not s.add_closed_bar(Bar(4 * P, 1, 1, 1, 1, 1))  # trades own this period now
