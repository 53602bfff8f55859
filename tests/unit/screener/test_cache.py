"""``KlineCacheCore``: stream closes, duplicates, gaps and their REST repair, merges, the scan panel."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbray.clock import ManualClock
from arbray.marketdata.events import Kline, MarketIndicator
from arbray.screener.backfill import BackfillConfig, KlineBlock, Series, parse_klines
from arbray.screener.cache import KlineCacheConfig, KlineCacheCore

pytestmark = pytest.mark.unit
P = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % P


def bar(i: int, closed: bool = True, sym: str = "BTCUSDT", event_ms: int | None = None) -> Kline:
    """Bar ``i`` of a deterministic path (prices differ per bar so merges can be checked)."""
    o = T0 + i * P
    c = 100.0 + i
    return Kline(sym, "1m", o, o + P - 1, c - 0.5, c + 1, c - 1, c, 10.0 + i, (10.0 + i) * c, 5, 4.0 + i % 3,
                 closed, 0, event_ms if event_ms is not None else o + P - (0 if closed else 30_000))


def rest_rows(lo: int, hi: int) -> KlineBlock:
    """REST rows for bars ``lo..hi-1`` with the same values as ``bar``."""
    rows = []
    for i in range(lo, hi):
        k = bar(i)
        rows.append([k.open_ms, str(k.open), str(k.high), str(k.low), str(k.close), str(k.volume), k.close_ms,
                     str(k.quote_volume), k.trades, str(k.taker_buy_volume), "0", "0"])
    return parse_klines("1m", rows, Counter())


def core(bars: int = 60, symbols: tuple[str, ...] = ("BTCUSDT",)) -> KlineCacheCore:
    return KlineCacheCore(symbols, KlineCacheConfig(intervals=("1m",), backfill=BackfillConfig(bars=bars)),
                          ManualClock(T0))


def closes(c: KlineCacheCore, sym: str = "BTCUSDT") -> list[float]:
    (k,) = c.panel("1m", symbols=[sym])
    return k.close.tolist()


def test_stream_closes_extend_and_duplicates_are_dropped() -> None:
    c = core()
    for i in range(5):
        c.on_kline(bar(i, closed=False))
        c.on_kline(bar(i))
        c.on_kline(bar(i))  # a duplicated frame
    assert closes(c) == [100.0 + i for i in range(5)]
    st_ = c.status()["counts"]
    assert st_["closed_stream"] == 5 and st_["duplicate_close"] == 5 and c.status()["open_gaps"] == {}


def test_capacity_is_bounded_and_compaction_keeps_the_newest_bars() -> None:
    c = core(bars=60)
    for i in range(500):
        c.on_kline(bar(i))
    (k,) = c.panel("1m")
    assert k.bars == 60 and k.close[-1] == 599.0 and np.all(np.diff(k.ts_ms) == P)
    assert k.taker_buy is not None and k.taker_buy[-1] == 4.0 + 499 % 3


def test_a_skipped_close_is_a_gap_that_rest_fills() -> None:
    c = core()
    for i in range(10):
        c.on_kline(bar(i))
    c.on_kline(bar(13, closed=False))  # closes of 10, 11, 12 never came (a reconnect)
    gaps = c.due_gaps(T0, 0)
    assert [(s, iv, g.from_ms) for s, iv, g in gaps] == [("BTCUSDT", "1m", T0 + 10 * P)]
    c.on_kline(bar(13))
    c.merge("BTCUSDT", "1m", rest_rows(10, 14), known_ms=T0 + 14 * P)
    assert closes(c) == [100.0 + i for i in range(14)] and c.status()["open_gaps"] == {}
    assert c.stats["gaps_filled"] == 1


def test_a_late_close_after_a_newer_one_is_counted_not_inserted() -> None:
    c = core()
    c.on_kline(bar(0))
    c.on_kline(bar(2))  # gap at 1
    c.on_kline(bar(1))
    assert closes(c) == [100.0, 102.0] and c.status()["counts"]["late_close"] == 1
    c.merge("BTCUSDT", "1m", rest_rows(0, 3), known_ms=T0 + 3 * P)
    assert closes(c) == [100.0, 101.0, 102.0]


def test_startup_merge_keeps_stream_closes_and_drops_the_open_rest_row() -> None:
    c = core()
    c.on_kline(bar(30, closed=False))
    c.on_kline(bar(30))  # closed by the stream while the backfill was in flight
    c.on_kline(bar(31, closed=False))
    # REST was asked while bar 30 was open: its newest row (30) is partial and must not count
    partial = rest_rows(0, 31)
    assert c.merge("BTCUSDT", "1m", partial, known_ms=T0 + 30 * P + 10) == 30
    assert closes(c) == [100.0 + i for i in range(31)]
    assert c.ready() and c.status()["open_gaps"] == {}
    # without stream knowledge the newest row is always dropped
    d = core()
    d.merge("BTCUSDT", "1m", rest_rows(0, 31), known_ms=None)
    assert closes(d)[-1] == 129.0


def test_merge_that_leaves_a_hole_reopens_the_gap() -> None:
    c = core()
    c.merge("BTCUSDT", "1m", rest_rows(0, 5), known_ms=T0 + 5 * P)
    c.on_kline(bar(8))
    c.merge("BTCUSDT", "1m", rest_rows(5, 6), known_ms=T0 + 6 * P)  # bars 6, 7 still missing
    assert c.status()["open_gaps"] == {"BTCUSDT@1m": T0 + 6 * P}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["ok", "drop", "dup", "update_only"]), min_size=5, max_size=150))
def test_any_stream_damage_is_repaired_by_the_gap_fill(events: list[str]) -> None:
    """Whatever closes the stream loses or repeats, a REST fill from the reported gap restores every bar."""
    c = core(bars=100)
    c.merge("BTCUSDT", "1m", rest_rows(0, 11), known_ms=T0 + 11 * P)
    for j, what in enumerate(events):
        i = 11 + j
        if what in ("ok", "dup"):
            c.on_kline(bar(i))
        if what == "dup":
            c.on_kline(bar(i))
        if what == "update_only":
            c.on_kline(bar(i, closed=False))
    end = 11 + len(events)
    c.on_kline(bar(end, closed=False))
    for _, _, g in c.due_gaps(T0, 0):
        c.merge("BTCUSDT", "1m", rest_rows((g.from_ms - T0) // P, end + 1), known_ms=T0 + end * P + 1)
    assert closes(c) == [100.0 + i for i in range(max(0, end - 100), end)]
    assert c.status()["open_gaps"] == {}


def test_panel_aligns_open_interest_and_funding_and_refuses_unknown_symbols() -> None:
    c = core(symbols=("BTCUSDT", "ETHUSDT"))
    c.merge("BTCUSDT", "1m", rest_rows(0, 61), known_ms=T0 + 61 * P)
    sink = c.route("BTCUSDT")
    for i in range(0, 61, 5):  # 5-minute samples at bar closes
        sink.on_event(MarketIndicator("BTCUSDT", T0 + i * P, "open_interest", 1000.0 + i))
    c.set_funding("BTCUSDT", Series(np.array([T0 - 1, T0 + 30 * P, T0 + 90 * P], np.int64),
                                    np.array([0.0001, 0.0002, 0.0003])))
    (k,) = c.panel("1m")  # ETHUSDT has no bars yet and is left out
    assert k.symbol == "BTCUSDT" and k.bars == 60 and k.open_interest is not None
    # bar 59 closes at T0 + 60P, where the sample is 1060; bar 56 closes at 57P → the 55P sample
    assert k.open_interest[-1] == 1060.0 and k.open_interest[-4] == 1055.0
    assert k.funding is not None and k.funding.tolist() == [0.0001, 0.0002]
    with pytest.raises(KeyError):
        c.route("DOGEUSDT")
    assert c.unknown["DOGEUSDT"] == 1
    c.on_kline(bar(1, sym="ETHUSDT", closed=False))
    assert c.open_bar("ETHUSDT") is not None and not c.ready()
