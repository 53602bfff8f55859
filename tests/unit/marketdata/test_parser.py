"""Parsing every Binance USD-M message kind, and rejecting bad input with a counted reason."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbray.marketdata.events import (
    BookTicker,
    DepthSnapshot,
    DepthUpdate,
    Event,
    ForceOrder,
    Kline,
    MarkPrice,
)
from arbray.marketdata.parser import BinanceParser

pytestmark = pytest.mark.unit


class Sink:
    """Router and per-symbol sinks in one: records everything in arrival order."""

    def __init__(self) -> None:
        self.trades: list[tuple[Any, ...]] = []
        self.events: list[Event] = []

    def route(self, symbol: str) -> SymSink:
        return SymSink(self, symbol)


class SymSink:
    def __init__(self, parent: Sink, symbol: str) -> None:
        self.parent, self.symbol = parent, symbol

    def on_trade(self, *args: Any) -> None:
        self.parent.trades.append((self.symbol, *args))

    def on_book_ticker(self, *args: Any) -> None:
        self.parent.events.append(BookTicker(self.symbol, *args))

    def on_event(self, event: Event) -> None:
        self.parent.events.append(event)


def make() -> tuple[BinanceParser, Sink]:
    sink = Sink()
    return BinanceParser(sink), sink


AGG = {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 5, "p": "100.5", "q": "0.010", "f": 1, "l": 2, "T": 10, "m": True}
TRADE = {"e": "trade", "E": 2, "T": 11, "s": "BTCUSDT", "t": 7, "p": "100.6", "q": "0.002", "X": "MARKET", "m": False}
DEPTH = {"e": "depthUpdate", "E": 3, "T": 2, "s": "BTCUSDT", "U": 10, "u": 12, "pu": 9,
         "b": [["100.0", "1.5"], ["99.9", "0"]], "a": [["100.1", "2"]]}
BOOK = {"e": "bookTicker", "u": 12, "s": "BTCUSDT", "b": "100.0", "B": "1.5", "a": "100.1", "A": "2", "T": 4, "E": 5}
MARK = {"e": "markPriceUpdate", "E": 6, "s": "BTCUSDT", "p": "100.05", "P": "100", "i": "100.02", "r": "0.0001",
        "T": 28800000}
FORCE = {"e": "forceOrder", "E": 7, "o": {"s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.5",
                                          "p": "99", "ap": "99.5", "X": "FILLED", "l": "0.5", "z": "0.5", "T": 7}}
KLINE = {"e": "kline", "E": 8, "s": "BTCUSDT", "k": {"t": 0, "T": 299999, "s": "BTCUSDT", "i": "5m", "o": "1",
                                                   "c": "2", "h": "3", "l": "0.5", "v": "10", "n": 4, "x": True,
                                                   "q": "15", "V": "6", "Q": "9"}}
SNAP = {"lastUpdateId": 11, "E": 1, "T": 1, "bids": [["100.0", "1"]], "asks": [["100.1", "1"]]}


def test_every_kind_parses_raw_and_combined() -> None:
    for wrapped in (False, True):
        p, sink = make()
        for msg in (AGG, TRADE, DEPTH, BOOK, MARK, FORCE, KLINE):
            raw = {"stream": "btcusdt@x", "data": msg} if wrapped else msg
            p.feed(orjson.dumps(raw), recv_ns=99)
        p.feed(orjson.dumps(SNAP), symbol_hint="BTCUSDT")
        assert not p.rejects
        assert sink.trades == [
            ("BTCUSDT", 10, 100.5, 0.01, True, 5, "agg", 99),
            ("BTCUSDT", 11, 100.6, 0.002, False, 7, "trade", 99),
        ]
        kinds = [type(e) for e in sink.events]
        assert kinds == [DepthUpdate, BookTicker, MarkPrice, ForceOrder, Kline, DepthSnapshot]
        depth = sink.events[0]
        assert isinstance(depth, DepthUpdate)
        assert (depth.first_id, depth.final_id, depth.prev_final_id) == (10, 12, 9)
        assert depth.bids == [["100.0", "1.5"], ["99.9", "0"]] and depth.recv_ns == 99  # converted by the book
        force = sink.events[3]
        assert isinstance(force, ForceOrder) and force.usd == pytest.approx(0.5 * 99.5)
        assert p.events["aggTrade"] == 1 and p.events["depthSnapshot"] == 1


def test_array_payload() -> None:
    p, sink = make()
    p.feed(orjson.dumps({"stream": "!markPrice@arr", "data": [MARK, {**MARK, "s": "ETHUSDT"}]}))
    assert [e.symbol for e in sink.events] == ["BTCUSDT", "ETHUSDT"]


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b'"text"', "not_an_object"),
        (orjson.dumps({**AGG, "p": "NaN"}), "aggTrade:nonpositive_or_nan_price"),
        (orjson.dumps({**AGG, "p": "-1"}), "aggTrade:nonpositive_or_nan_price"),
        (orjson.dumps({**AGG, "q": "0"}), "aggTrade:nonpositive_or_nan_qty"),
        (orjson.dumps({**AGG, "q": "inf"}), "aggTrade:nonpositive_or_nan_qty"),
        (orjson.dumps({**AGG, "m": "yes"}), "aggTrade:bad_side"),
        (orjson.dumps({k: v for k, v in TRADE.items() if k != "t"}), "trade:missing_field:t"),
        (orjson.dumps({**TRADE, "p": "abc"}), "trade:bad_value"),
        (orjson.dumps({**DEPTH, "b": [["100", "-1"]]}), "depthUpdate:bad_level"),
        (orjson.dumps({**DEPTH, "b": [["nan", "1"]]}), "depthUpdate:bad_level"),
        (orjson.dumps({**DEPTH, "a": [["1e5", "1"]]}), "depthUpdate:bad_level"),
        (orjson.dumps({**DEPTH, "a": [["100", "1", "2"]]}), "depthUpdate:bad_level"),
        (orjson.dumps({**DEPTH, "a": "100"}), "depthUpdate:bad_level"),
        (orjson.dumps({**DEPTH, "b": [[100.5, "1"]]}), "depthUpdate:bad_value"),
        (orjson.dumps({**DEPTH, "U": 20}), "depthUpdate:bad_id_range"),
        (orjson.dumps({**BOOK, "b": "200"}), "bookTicker:crossed"),
        (orjson.dumps({**MARK, "p": "0"}), "markPriceUpdate:nonpositive_or_nan"),
        (orjson.dumps({**FORCE, "o": {**FORCE["o"], "S": "UP"}}), "forceOrder:bad_side"),
        (orjson.dumps({**KLINE, "k": {**KLINE["k"], "h": "0.7"}}), "kline:inconsistent_ohlc"),
        (orjson.dumps({"e": "somethingNew", "s": "BTCUSDT"}), "unknown_event:somethingNew"),
        (orjson.dumps({"x": 1}), "unknown_event"),
        (orjson.dumps(SNAP), "depthSnapshot:no_symbol"),
    ],
)
def test_rejects_are_counted_by_reason(msg: bytes, reason: str) -> None:
    p, sink = make()
    p.feed(msg)
    assert p.rejects == {reason: 1}
    assert not sink.trades and not sink.events


def test_arrays_account_for_every_element() -> None:
    p, _ = make()
    p.feed(b"[1, 2]")
    p.feed(b"[]")
    assert p.rejects == {"not_an_object": 2, "empty_array": 1}


def test_control_messages_are_not_rejects() -> None:
    p, _ = make()
    p.feed(b'{"result":null,"id":1}')
    assert not p.rejects and p.events["control"] == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(
        ["e", "s", "p", "q", "T", "E", "a", "t", "m", "U", "u", "pu", "b", "a", "B", "A", "o", "k", "data",
         "stream", "lastUpdateId", "bids", "asks", "i", "r"]), children, max_size=8),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=64), json_values.map(orjson.dumps)),
       st.sampled_from(["aggTrade", "trade", "depthUpdate", "bookTicker", "markPriceUpdate", "forceOrder", "kline"]))
def test_garbage_never_crashes_and_is_always_accounted(raw: bytes, etype: str) -> None:
    p, _ = make()
    p.feed(raw, symbol_hint="BTCUSDT")
    # A mutated real message too: same keys, hostile values.
    p.feed(orjson.dumps({"e": etype, "s": "BTCUSDT", "p": raw.decode("latin-1"), "q": "1"}))
    accounted = sum(p.rejects.values()) + sum(p.events.values())
    assert accounted >= 2
