"""Binance USD-M stream names and kline intervals as the simulator serves them.

One parser for every name a client may subscribe to, so the exchange, the server and the fault
injector agree on what a name means and which *kind* of stream it is (faults and statistics are
kept per kind). Symbols in stream names are lower case, as on Binance.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

StreamKind = Literal["aggTrade", "trade", "depth", "partialDepth", "bookTicker", "markPrice", "forceOrder", "kline"]
STREAM_KINDS: tuple[StreamKind, ...] = (
    "aggTrade", "trade", "depth", "partialDepth", "bookTicker", "markPrice", "forceOrder", "kline",
)

# Binance's kline intervals; "1M" (calendar month) has no fixed length.
INTERVAL_MS: dict[str, int] = {
    "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000,
    "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000, "12h": 43_200_000,
    "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000, "1M": 0,
}
_WEEK_OFFSET_MS = 4 * 86_400_000  # 1970-01-01 was a Thursday; weekly bars open on Mondays


class UnknownStream(ValueError):
    """A stream name the exchange does not publish."""


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """What a stream name means: its kind, symbol (None for all-market streams), update speed in
    ms (0 = real time), partial-book levels and kline interval."""

    name: str
    kind: StreamKind
    symbol: str | None
    speed_ms: int = 0
    levels: int = 0
    interval: str = ""


_SYMBOL_STREAM = re.compile(
    r"^([a-z0-9]+)@(?:"
    r"(?P<agg>aggTrade)|(?P<trade>trade)|(?P<bt>bookTicker)|(?P<force>forceOrder)"
    r"|depth(?P<levels>5|10|20)?(?:@(?P<speed>0|100|250|500)ms)?"
    r"|(?P<mark>markPrice)(?P<mark1s>@1s)?"
    r"|kline_(?P<interval>[0-9]+[mhdwM]))$"
)
_ALL_MARKET = {
    "!markPrice@arr": StreamSpec("!markPrice@arr", "markPrice", None, 3000),
    "!markPrice@arr@1s": StreamSpec("!markPrice@arr@1s", "markPrice", None, 1000),
    "!forceOrder@arr": StreamSpec("!forceOrder@arr", "forceOrder", None, 1000),
    "!bookTicker": StreamSpec("!bookTicker", "bookTicker", None, 0),
}


def parse_stream(name: str, symbols: Collection[str]) -> StreamSpec:
    """Parse ``name`` for an exchange listing ``symbols`` (upper case); raises ``UnknownStream``."""
    spec = _ALL_MARKET.get(name)
    if spec is not None:
        return spec
    m = _SYMBOL_STREAM.match(name)
    if m is None:
        raise UnknownStream(name)
    symbol = m.group(1).upper()
    if symbol not in symbols:
        raise UnknownStream(name)
    if m.group("agg"):
        return StreamSpec(name, "aggTrade", symbol)
    if m.group("trade"):
        return StreamSpec(name, "trade", symbol)
    if m.group("bt"):
        return StreamSpec(name, "bookTicker", symbol)
    if m.group("force"):
        return StreamSpec(name, "forceOrder", symbol, 1000)
    if m.group("mark"):
        return StreamSpec(name, "markPrice", symbol, 1000 if m.group("mark1s") else 3000)
    interval = m.group("interval")
    if interval is not None:
        if interval not in INTERVAL_MS:
            raise UnknownStream(name)
        return StreamSpec(name, "kline", symbol, 250, interval=interval)
    speed = m.group("speed")
    levels = m.group("levels")
    if levels is not None:
        if speed == "0":
            raise UnknownStream(name)
        return StreamSpec(name, "partialDepth", symbol, int(speed or 250), levels=int(levels))
    return StreamSpec(name, "depth", symbol, int(speed or 250))


def bucket_open(ms: int, interval: str) -> int:
    """Open time of the ``interval`` bar containing ``ms`` (weeks open on Monday, months on the 1st)."""
    length = INTERVAL_MS[interval]
    if interval == "1w":
        return (ms - _WEEK_OFFSET_MS) // length * length + _WEEK_OFFSET_MS
    if length:
        return ms - ms % length
    d = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return int(dt.datetime(d.year, d.month, 1, tzinfo=dt.UTC).timestamp() * 1000)


def bucket_close(open_ms: int, interval: str) -> int:
    """Close time (inclusive, Binance's ``T``) of the bar opening at ``open_ms``."""
    length = INTERVAL_MS[interval]
    if length:
        return open_ms + length - 1
    d = dt.datetime.fromtimestamp(open_ms / 1000, dt.UTC)
    nxt = dt.datetime(d.year + d.month // 12, d.month % 12 + 1, 1, tzinfo=dt.UTC)
    return int(nxt.timestamp() * 1000) - 1


def bucket_open_array(ms: npt.NDArray[np.int64], interval: str) -> npt.NDArray[np.int64]:
    """``bucket_open`` for an array of times."""
    length = INTERVAL_MS[interval]
    if interval == "1w":
        out: npt.NDArray[np.int64] = (ms - _WEEK_OFFSET_MS) // length * length + _WEEK_OFFSET_MS
        return out
    if length:
        return ms - ms % length
    months = ms.astype("datetime64[ms]").astype("datetime64[M]")
    return months.astype("datetime64[ms]").astype(np.int64)
