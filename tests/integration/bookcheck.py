"""Replay a recording session and compare the local book with every bookTicker (used by tests)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arbray.marketdata.events import BookTicker, DepthSnapshot, DepthUpdate, Event
from arbray.marketdata.orderbook import LocalOrderBook
from arbray.marketdata.parser import BinanceParser
from arbray.replay.readers import read_hftbacktest


@dataclass
class Agreement:
    id_aligned: int = 0
    id_aligned_equal: int = 0
    time_aligned: int = 0
    time_aligned_equal: int = 0
    mismatch_inside_next_event: int = 0
    resyncs: int = 0
    tickers: int = 0
    classes: Counter[str] = field(default_factory=Counter)


class _Sink:
    def __init__(self, symbol: str, next_depth_t: list[int]) -> None:
        self.book = LocalOrderBook(symbol)
        self.res = Agreement()
        self.next_depth_t = next_depth_t  # transaction times of depth events in arrival order
        self.depth_seen = 0
        self.next_first_ids: list[int] = []

    def on_trade(self, *args: Any) -> None:
        pass

    def route(self, symbol: str) -> _Sink:
        return self

    def on_book_ticker(self, *args: Any) -> None:
        self._compare(BookTicker(self.book.symbol, *args))

    def on_event(self, ev: Event) -> None:
        if isinstance(ev, DepthUpdate):
            self.depth_seen += 1
            self.book.apply_diff(ev)
        elif isinstance(ev, DepthSnapshot):
            self.book.apply_snapshot(ev)
        elif isinstance(ev, BookTicker):
            self._compare(ev)

    def _compare(self, bt: BookTicker) -> None:
        r, book = self.res, self.book
        r.tickers += 1
        if not book.synced:
            return
        bb, ba = book.best_bid(), book.best_ask()
        equal = bb is not None and ba is not None and bb[0] == bt.bid and ba[0] == bt.ask
        if bt.update_id == book.last_update_id:
            r.id_aligned += 1
            r.id_aligned_equal += equal and bb == (bt.bid, bt.bid_qty) and ba == (bt.ask, bt.ask_qty)
        k = self.depth_seen
        nxt_t = self.next_depth_t[k] if k < len(self.next_depth_t) else None
        if book.last_transact_ms <= bt.transact_ms and (nxt_t is None or nxt_t > bt.transact_ms):
            r.time_aligned += 1
            if equal:
                r.time_aligned_equal += 1
            elif nxt_t is None:
                r.classes["recording_ended"] += 1  # the depth event carrying these updates was not recorded
            elif k < len(self.next_first_ids) and self.next_first_ids[k] <= bt.update_id:
                r.mismatch_inside_next_event += 1  # the ticker already reflects the next (conflated) event
            elif bt.update_id < book.last_update_id:
                r.classes["book_ahead_of_ticker"] += 1  # same ms; the book holds later updates
            else:
                r.classes["other"] += 1


def check_session(files: list[Path]) -> Agreement:
    """Replay one session (files that continue each other) and measure book/ticker agreement."""
    depth_t: list[int] = []
    first_ids: list[int] = []
    for f in files:
        for _, _, p in read_hftbacktest(f):
            obj = p[0]  # type: ignore[index]
            d = obj.get("data") if isinstance(obj, dict) else None
            if isinstance(d, dict) and d.get("e") == "depthUpdate":
                depth_t.append(d["T"])
                first_ids.append(d["U"])
    symbol = files[0].name.split("_")[0].upper()
    sink = _Sink(symbol, depth_t)
    sink.next_first_ids = first_ids
    parser = BinanceParser(sink)
    for f in files:
        for _, _, p in read_hftbacktest(f):
            obj, recv_ns, hint = p  # type: ignore[misc]
            parser.feed_obj(obj, recv_ns, hint)
    assert not parser.rejects, parser.rejects
    sink.res.resyncs = sink.book.resyncs
    return sink.res
