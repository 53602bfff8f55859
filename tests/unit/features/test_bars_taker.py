"""``BarSeries`` taker-buy volume per bar and ``keep`` (additions for the screener's kline factors)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbray.features.bars import Bar, BarSeries
from arbray.features.config import FeatureConfig
from arbray.features.symbol import SymbolFeatures
from arbray.marketdata.events import Kline, TradeBatch

pytestmark = pytest.mark.unit
P = 300_000


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30 * P), st.floats(0.001, 5.0), st.booleans()), min_size=1, max_size=200),
       st.integers(1, 6))
def test_taker_buy_volume_per_bar_equals_a_loop(trades: list[tuple[int, float, bool]], nbatches: int) -> None:
    trades = sorted(trades)
    s = BarSeries(P, length=2, max_gap_bars=10_000, keep=1_000)
    ts = np.array([t for t, _, _ in trades], np.int64)
    qty = np.array([q for _, q, _ in trades])
    maker = np.array([m for _, _, m in trades])
    for chunk in np.array_split(np.arange(len(trades)), nbatches):
        if chunk.size:
            s.add_trades(ts[chunk], np.full(chunk.size, 100.0), qty[chunk], maker[chunk])
    s.close_until(int(ts[-1]) - int(ts[-1]) % P + P)
    want: dict[int, float] = {}
    for t, q, m in trades:
        want[t - t % P] = want.get(t - t % P, 0.0) + (0.0 if m else q)
    for b in s.closed:
        assert b.taker_buy_volume == pytest.approx(want.get(b.open_ms, 0.0), rel=1e-12, abs=1e-12)
        assert b.volume >= b.taker_buy_volume - 1e-12


def test_unknown_sides_give_none_and_keep_bounds_the_history() -> None:
    s = BarSeries(P, keep=3)
    s.add_trades(np.arange(6, dtype=np.int64) * P, np.full(6, 10.0), np.ones(6))
    s.close_until(6 * P)
    assert len(s.closed) == 3 and all(b.taker_buy_volume is None for b in s.closed)
    assert BarSeries(P).closed.maxlen == 64 and BarSeries(P, length=40).closed.maxlen == 80
    with pytest.raises(ValueError):
        BarSeries(P, keep=0)
    # a bar mixing trades with and without sides does not know its taker-buy volume
    m = BarSeries(P)
    m.add_trades(np.array([0], np.int64), np.array([1.0]), np.array([1.0]), np.array([False]))
    m.add_trades(np.array([1], np.int64), np.array([1.0]), np.array([1.0]))
    m.close_until(P)
    assert m.closed[-1].taker_buy_volume is None


def test_symbol_features_pass_sides_and_kline_taker_volume() -> None:
    f = SymbolFeatures("BTCUSDT", FeatureConfig(bars_kept=100))
    f.on_event(Kline("BTCUSDT", "5m", 0, P - 1, 10, 11, 9, 10.5, 7.0, 70.0, 3, 4.0, True))
    assert f.bars_5m.closed[-1] == Bar(0, 10, 11, 9, 10.5, 7.0, 4.0) and f.bars_5m.closed.maxlen == 100
    f.add_trades(TradeBatch.from_columns("BTCUSDT", [P + 1, P + 2, P + 3], [10.0, 10.1, 10.2], [1.0, 2.0, 3.0],
                                         [True, False, False], [1, 2, 3]))
    f.snapshot(2 * P)
    assert f.bars_5m.closed[-1].taker_buy_volume == pytest.approx(5.0)
