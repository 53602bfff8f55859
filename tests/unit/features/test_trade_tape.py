"""The trade tape's integer window sums equal exact rational brute force, whatever the batching."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbray.features.quantile import SlidingQuantile
from arbray.features.trades import TradeTape, needed_decimals
from tests.unit.features.brute import T, cvd, cvd_usd

pytestmark = pytest.mark.unit

# Per-symbol price/qty profiles as Binance quotes them (one symbol never mixes 0.0001 and 65000).
PROFILES = [
    (["65000.5", "65000.1", "64999.9", "65010"], ["0.001", "0.5", "1.234", "12"]),
    (["3500.12", "3499.99", "3500"], ["0.001", "0.01", "5.5"]),
    (["0.0001234", "0.0001235", "0.000124"], ["1", "1000", "5000000"]),
    (["0.5123", "0.5124", "0.51"], ["0.1", "10", "1000.5"]),
]


@st.composite
def trade_lists(draw: st.DrawFn) -> list[T]:
    prices, qtys = draw(st.sampled_from(PROFILES))
    n = draw(st.integers(1, 80))
    ts = sorted(draw(st.lists(st.integers(0, 3_600_000), min_size=n, max_size=n)))
    return [T(t, draw(st.sampled_from(prices)), draw(st.sampled_from(qtys)), draw(st.booleans())) for t in ts]


def load(tape: TradeTape, trades: list[T], cuts: list[int]) -> None:
    bounds = [0, *sorted(set(c % (len(trades) + 1) for c in cuts)), len(trades)]
    for a, b in itertools.pairwise(bounds):
        chunk = trades[a:b]
        tape.append(
            np.array([x.ts for x in chunk], np.int64), np.array([float(x.price) for x in chunk]),
            np.array([float(x.qty) for x in chunk]), np.array([x.sell for x in chunk]),
            np.arange(a, b, dtype=np.int64), np.zeros(b - a, np.int64),
        )


@settings(max_examples=200, deadline=None)
@given(trade_lists(), st.lists(st.integers(0, 100), max_size=5), st.lists(st.integers(-1000, 3_700_000), max_size=8),
       st.sampled_from([1000, 60_000, 300_000, 1_800_000]))
def test_window_sums_are_exact(trades: list[T], cuts: list[int], evals: list[int], w: int) -> None:
    tape = TradeTape(capacity=4)  # tiny capacity forces growth and compaction
    load(tape, trades, cuts)
    for t in evals:
        b, s, bn, sn, n = tape.sums(t - w, t)
        assert Fraction(b - s) / Fraction(10) ** (tape.qty_decimals or 0) == cvd(trades, t - w, t)
        scale = Fraction(10) ** ((tape.qty_decimals or 0) + (tape.price_decimals or 0))
        assert Fraction(bn - sn) / scale == cvd_usd(trades, t - w, t)
        assert n == sum(1 for x in trades if t - w <= x.ts < t)


def test_precision_grows_exactly() -> None:
    tape = TradeTape(price_decimals=1, qty_decimals=0)
    load(tape, [T(1, "100.5", "2", False)], [])
    load(tape, [T(2, "100.25", "0.001", True)], [])
    assert (tape.price_decimals, tape.qty_decimals) == (2, 3)
    b, s, bn, sn, _ = tape.sums(0, 10)
    assert (b, s) == (2000, 1)
    assert Fraction(bn - sn) / 10**5 == Fraction("100.5") * 2 - Fraction("100.25") * Fraction("0.001")


def test_needed_decimals() -> None:
    assert needed_decimals(np.array([1.0, 2.0])) == 0
    assert needed_decimals(np.array([0.003, 28145.1])) == 3
    assert needed_decimals(np.array([0.0001234])) == 7


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(1, 50), max_size=30), min_size=1, max_size=8), st.data())
def test_sliding_quantile_equals_sorting(batches: list[list[int]], data: st.DataObject) -> None:
    q = SlidingQuantile()
    window: list[int] = []
    for b in batches:
        q.add(np.array(b, np.int64))
        window.extend(b)
        k = data.draw(st.integers(0, len(window)))
        q.remove(np.array(window[:k], np.int64))
        window = window[k:]
        for p in (0.0, 0.5, 0.95, 0.99):
            expected = sorted(window)[min(int(len(window) * p), len(window) - 1)] if window else None
            assert q.quantiles((p,)) == [expected]
    with pytest.raises(ValueError):
        q.remove(np.array([10**9], np.int64))


def test_a_day_of_trades_has_no_drift() -> None:
    """2 M trades over 24 h: window sums equal exact integer sums to the last unit."""
    rng = np.random.default_rng(7)
    n = 2_000_000
    ts = np.sort(rng.integers(0, 86_400_000, n)).astype(np.int64)
    ticks = 600_000 + rng.integers(-5000, 5000, n)  # price in 0.1 USD ticks
    lots = rng.integers(1, 5000, n)  # qty in 0.001 BTC lots
    sell = rng.random(n) < 0.5
    tape = TradeTape(price_decimals=1, qty_decimals=3)
    for a in range(0, n, 100_000):
        sl = slice(a, a + 100_000)
        ids = np.arange(a, a + 100_000)
        tape.append(ts[sl], ticks[sl] / 10, lots[sl] / 1000, sell[sl], ids, np.zeros(100_000, np.int64))
    signed = np.where(sell, -lots, lots)
    for t0 in (0, 43_200_000, 86_000_000):
        m = ts >= t0
        b, s, bn, sn, cnt = tape.sums(t0, 86_400_001)
        assert b - s == int(signed[m].sum()) and cnt == int(m.sum())
        assert bn - sn == int((signed * ticks)[m].sum())
