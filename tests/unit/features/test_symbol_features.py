"""SymbolFeatures snapshots equal brute-force recomputation; predecessor bugs stay fixed."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbray.features.config import FeatureConfig
from arbray.features.symbol import SymbolFeatures
from arbray.marketdata.events import (
    BookTicker,
    DepthSnapshot,
    ForceOrder,
    MarketIndicator,
    MarkPrice,
    TradeBatch,
)
from tests.unit.features import brute
from tests.unit.features.brute import T

pytestmark = pytest.mark.unit
MIN = 60_000
DAY = 1440 * MIN


def close(a: float | None, b: Fraction | float | None, rel: float = 1e-12) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - float(b)) <= rel * max(1.0, abs(float(b)))


@st.composite
def sessions(draw: st.DrawFn) -> tuple[list[T], list[int]]:
    n = draw(st.integers(1, 150))
    span = draw(st.sampled_from([10 * MIN, 3 * 60 * MIN, 2 * DAY]))
    ts = sorted(draw(st.lists(st.integers(0, span), min_size=n, max_size=n)))
    prices = ["64000.1", "64000.2", "63999.9", "64100"]
    qtys = ["0.001", "0.002", "0.5", "1.5", "20", "0.013"]
    trades = [T(t, draw(st.sampled_from(prices)), draw(st.sampled_from(qtys)), draw(st.booleans())) for t in ts]
    evals = sorted(set(draw(st.lists(st.integers(1, span + 10 * MIN), min_size=1, max_size=6))))
    return trades, evals


def feed(sf: SymbolFeatures, trades: list[T], raw: bool, first_id: int) -> None:
    for i, x in enumerate(trades, start=first_id):
        if raw:
            sf.on_trade(x.ts, float(x.price), float(x.qty), x.sell, i, "agg", 0)
        else:
            sf.add_trades(TradeBatch.from_columns("BTCUSDT", [x.ts], [float(x.price)], [float(x.qty)], [x.sell], [i]))


@settings(max_examples=120, deadline=None)
@given(sessions(), st.booleans())
def test_snapshot_matches_brute_force(session: tuple[list[T], list[int]], raw: bool) -> None:
    trades, evals = session
    sf = SymbolFeatures("BTCUSDT", FeatureConfig(quantile_min_trades=1, flush_trades=7))
    fed = 0
    for t in evals:
        upto = [x for x in trades if x.ts < t]
        feed(sf, trades[fed:len(upto)], raw, fed + 1)
        fed = len(upto)
        s = sf.snapshot(t)
        if not upto:
            assert s.price is None and s.cvd_5m is None and "no_trades" in s.quality
            continue
        assert s.price == float(upto[-1].price) and s.last_trade_ts_ms == upto[-1].ts  # last trade, not VWAP
        for name, minutes in (("5m", 5), ("15m", 15), ("30m", 30), ("1h", 60), ("4h", 240), ("24h", 1440)):
            assert close(getattr(s, f"cvd_{name}"), brute.cvd(trades, t - minutes * MIN, t))
            assert close(getattr(s, f"cvd_usd_{name}"), brute.cvd_usd(trades, t - minutes * MIN, t))
        assert close(s.vwap_30m, brute.vwap(trades, t - 30 * MIN, t))
        b1, s1 = brute.volumes(trades, t - MIN, t)
        assert close(s.buy_vol_1m, b1) and close(s.sell_vol_1m, s1)
        assert close(s.p95_qty_24h, brute.quantile(trades, t - DAY, t, 0.95))
        assert close(s.p99_qty_24h, brute.quantile(trades, t - DAY, t, 0.99))
        # slope/accel per minute at fixed steps, independent of how often snapshots are taken
        if trades[0].ts <= t - 2 * MIN:
            c = [brute.cvd(trades, t - k * MIN - 30 * MIN, t - k * MIN) for k in (0, 1, 2)]
            assert close(s.cvd_slope_30m_per_min, c[0] - c[1])
            assert close(s.cvd_accel_30m_per_min2, c[0] - 2 * c[1] + c[2])


def test_large_trades_counted_per_trade_not_per_millisecond() -> None:
    """Predecessor hotfix 9528d69 de-duplicated by time_ms and lost simultaneous large trades."""
    sf = SymbolFeatures("BTCUSDT", FeatureConfig(quantile_min_trades=1))
    t0 = 10 * MIN
    sf.add_trades(TradeBatch.from_columns("BTCUSDT", [t0] * 1000, [60000.0] * 1000, [0.01] * 1000, [False] * 1000,
                                          list(range(1, 1001))))
    sf.add_trades(TradeBatch.from_columns("BTCUSDT", [t0 + 5] * 3, [60000.0] * 3, [20.0] * 3, [True] * 3,
                                          [1001, 1002, 1003]))
    s = sf.snapshot(t0 + 1000)
    assert s.large_trade_qty == pytest.approx(10.0)  # USD floor $600k / $60k
    assert s.large_trades_15m == 3 and s.large_sell_qty_15m == pytest.approx(60.0)
    assert s.whale_trades_15m == 3 and s.whale_flow_15m == pytest.approx(-1.0)


def test_duplicate_and_out_of_order_trade_ids_are_rejected_and_gaps_recorded() -> None:
    sf = SymbolFeatures("BTCUSDT")
    for tid in (1, 2, 2, 5, 4, 6):
        sf.on_trade(1000 + tid, 100.0, 1.0, False, tid, "agg", 0)
    sf.flush()
    assert sf.rejects["trade:duplicate_or_out_of_order_id"] == 2
    assert list(sf.id_gaps) == [(3, 4)] and sf.stats["trade_id_gaps"] == 1
    assert len(sf.tape) == 4
    sf.on_trade(2000, 100.0, 1.0, False, 7, "trade", 0)
    assert sf.rejects["trade:second_trade_stream:trade"] == 1


def test_batch_path_rejects_bad_rows() -> None:
    sf = SymbolFeatures("BTCUSDT")
    sf.add_trades(TradeBatch.from_columns("BTCUSDT", [1, 2, 3], [100.0, np.nan, 100.0], [1.0, 1.0, -1.0],
                                          [False] * 3, [1, 2, 3]))
    assert len(sf.tape) == 1 and sf.rejects["trade:nonpositive_or_nan"] == 2


def test_snapshot_time_cannot_go_backwards() -> None:
    sf = SymbolFeatures("BTCUSDT")
    sf.snapshot(1000)
    with pytest.raises(ValueError, match="backwards"):
        sf.snapshot(999)


def test_repeated_snapshots_do_not_change_slope_or_percentile() -> None:
    """Predecessor: slope per call and ATR percentile sampled per read (P2-5) drifted on re-reads."""
    sf = SymbolFeatures("BTCUSDT", FeatureConfig(atr_length=2))
    rng = np.random.default_rng(1)
    ts = np.sort(rng.integers(0, 4 * 3_600_000, 5000))
    px = np.round(60000 + np.cumsum(rng.normal(0, 5, 5000)), 1)
    sf.add_trades(TradeBatch.from_columns("BTCUSDT", ts, px, np.full(5000, 0.01), rng.random(5000) < 0.5,
                                          np.arange(1, 5001)))
    t = 4 * 3_600_000 + 1
    first = sf.snapshot(t)
    again = [sf.snapshot(t) for _ in range(5)]
    assert all(a == first for a in again)
    assert first.atr_percentile_5m is not None


def test_book_obi_zero_is_a_value_and_bookticker_fresher_wins() -> None:
    sf = SymbolFeatures("BTCUSDT")
    sf.on_event(DepthSnapshot("BTCUSDT", 10, 5, [(100.0, 2.0)], [(100.1, 2.0)]))
    from arbray.marketdata.events import DepthUpdate

    sf.on_event(DepthUpdate("BTCUSDT", 6, 6, 9, 11, 8, [], []))
    s = sf.snapshot(10)
    assert s.book_state == "synced" and s.obi_10 == 0.0  # predecessor treated 0.0 as missing
    assert s.microprice == pytest.approx(100.05) and s.spread_bps == pytest.approx(0.1 / 100.05 * 1e4)
    sf.on_event(BookTicker("BTCUSDT", 12, 7, 100.05, 1.0, 100.1, 3.0))
    s = sf.snapshot(11)
    assert s.best_bid == 100.05 and s.best_bid_qty == 1.0  # newer update id than the book
    assert s.depth_bid_qty_10 == 2.0


def test_mark_liquidations_oi_and_ratios() -> None:
    sf = SymbolFeatures("BTCUSDT", FeatureConfig(oi_change_horizon_ms=15 * MIN))
    sf.on_event(MarkPrice("BTCUSDT", 1000, 100.0, 100.5, 0.0001, 28_800_000))
    sf.on_event(ForceOrder("BTCUSDT", 2000, "SELL", 99.0, 99.5, 2.0, 2.0))  # a long liquidated
    sf.on_event(ForceOrder("BTCUSDT", 3000, "BUY", 101.0, 101.0, 1.0, 1.0))  # a short liquidated
    for k, v in ((0, 1000.0), (5, 1010.0), (10, 1020.0), (15, 1030.0), (20, 1050.0)):
        sf.on_event(MarketIndicator("BTCUSDT", k * MIN, "open_interest", v))
    sf.on_event(MarketIndicator("BTCUSDT", 5000, "long_short_ratio", 1.7))
    s = sf.snapshot(20 * MIN + 1)
    assert s.mark_price == 100.0 and s.index_price == 100.5 and s.funding_rate == 0.0001
    assert s.spot_perp_div == pytest.approx(0.005)  # index as the spot reference without a spot feed
    assert s.liq_long_usd_5m == 0.0  # outside the 5-minute window at 20 min
    assert s.open_interest == 1050.0 and s.oi_change_pct == pytest.approx(1050 / 1010 - 1)
    assert s.oi_change_horizon_min == 15.0 and s.long_short_ratio == 1.7
    sf2 = SymbolFeatures("BTCUSDT")
    sf2.on_event(ForceOrder("BTCUSDT", 2000, "SELL", 99.0, 99.5, 2.0, 2.0))
    sf2.on_event(ForceOrder("BTCUSDT", 3000, "BUY", 101.0, 101.0, 1.0, 1.0))
    s2 = sf2.snapshot(4000)
    assert s2.liq_long_usd_5m == pytest.approx(199.0) and s2.liq_short_usd_5m == pytest.approx(101.0)
    assert "no_mark_price" in s2.quality and s2.oi_change_pct is None


def test_missing_data_is_null_never_a_default() -> None:
    s = SymbolFeatures("XYZUSDT").snapshot(1000)
    d = s.to_dict()
    for key in ("price", "cvd_5m", "vwap_30m", "atr_5m", "p99_qty_24h", "obi_10", "funding_rate", "best_bid",
                "whale_flow_15m", "oi_change_pct"):
        assert d[key] is None, key
    assert set(s.quality) >= {"no_trades", "warming_up_atr", "book_awaiting_snapshot", "no_mark_price"}
