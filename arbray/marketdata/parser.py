"""Parse Binance USD-M stream and REST JSON into events, rejecting bad input with a reason.

Accepts raw stream payloads, combined-stream wrappers ``{"stream": ..., "data": ...}``, array
payloads (``!markPrice@arr``) and the REST depth snapshot, and hands each message to its
symbol's sink: trades and best bid/ask as plain values, everything else as typed events. Nothing
malformed is coerced: a message that fails validation is counted under ``"<event>:<problem>"``
and dropped, and the reader continues.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import Any, Protocol

import orjson

from arbray.marketdata.events import (
    DepthSnapshot,
    DepthUpdate,
    Event,
    ForceOrder,
    Kline,
    Level,
    MarkPrice,
    RejectCounter,
)

_INF = math.inf


class SymbolSink(Protocol):
    """Receives one symbol's parsed data: trades and best bid/ask as plain values (the two
    highest-rate streams, without an object per message), everything else as typed events."""

    def on_trade(
        self, ts_ms: int, price: float, qty: float, is_buyer_maker: bool, trade_id: int, id_kind: str, recv_ns: int
    ) -> None: ...

    def on_book_ticker(
        self, update_id: int, transact_ms: int, bid: float, bid_qty: float, ask: float, ask_qty: float, recv_ns: int
    ) -> None: ...

    def on_event(self, event: Event) -> None: ...


class MarketDataRouter(Protocol):
    """Gives the sink for a symbol; the parser caches the answer, so routing costs one dict lookup."""

    def route(self, symbol: str) -> SymbolSink: ...


class InvalidMessage(ValueError):
    """A message that is well-formed JSON but violates the Binance contract."""


def _pos(x: Any) -> float:
    v = float(x)
    if not (0.0 < v < _INF):
        raise InvalidMessage("nonpositive_or_nan")
    return v


def _nonneg(x: Any) -> float:
    v = float(x)
    if not (0.0 <= v < _INF):
        raise InvalidMessage("negative_or_nan")
    return v


def _opt_float(x: Any) -> float | None:
    return None if x is None or x == "" else float(x)


_NUMBER_CHARS = str.maketrans("", "", "0123456789.,")
_chain = itertools.chain.from_iterable


def _raw_levels(raw: Any) -> Any:
    """Validate diff-depth levels without converting them: every level is a pair of strings made of
    digits and dots (so never negative, NaN or infinite). Malformed numbers that pass this check
    (``"1.2.3"``) and zero prices are caught when the book converts them, which resyncs the book."""
    if type(raw) is not list:
        raise InvalidMessage("bad_level")
    if raw:
        joined = ",".join(_chain(raw))  # TypeError on a non-string: counted as bad_value
        if joined.count(",") != 2 * len(raw) - 1 or joined.translate(_NUMBER_CHARS):
            raise InvalidMessage("bad_level")
    return raw


def _levels(raw: Any) -> list[Level]:
    """Depth levels ``[[price, qty], ...]``: price > 0, qty >= 0 (0 removes), all finite."""
    out = [(float(p), float(q)) for p, q in raw]
    for p, q in out:
        if not (0.0 < p < _INF and 0.0 <= q < _INF):
            raise InvalidMessage("bad_level")
    return out


class BinanceParser:
    """Stateless-per-message parser that feeds a ``MarketDataSink`` and counts what it sees.

    ``events`` counts accepted messages by type; ``rejects`` counts rejected ones by reason.
    ``symbol_hint`` names the symbol of REST snapshots, which carry none themselves.
    """

    def __init__(self, router: MarketDataRouter, rejects: RejectCounter | None = None) -> None:
        self.router = router
        self.rejects = rejects if rejects is not None else RejectCounter()
        self.events: Counter[str] = Counter()
        self._routes: dict[str, SymbolSink] = {}

    def _sink(self, symbol: Any) -> SymbolSink:
        sink = self._routes.get(symbol)
        if sink is None:
            if type(symbol) is not str or not symbol:
                raise InvalidMessage("bad_symbol")
            sink = self._routes[symbol] = self.router.route(symbol)
        return sink

    def feed(self, raw: bytes | str, recv_ns: int = 0, symbol_hint: str | None = None) -> None:
        """Parse one raw JSON message."""
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.rejects["malformed_json"] += 1
            return
        self.feed_obj(obj, recv_ns, symbol_hint)

    def feed_obj(self, d: Any, recv_ns: int = 0, symbol_hint: str | None = None) -> None:
        """Dispatch one decoded JSON value (wrapper, payload, array or REST snapshot).

        The per-message hot path of every live feed and replay: one function, one dict lookup.
        """
        if type(d) is dict and "stream" in d:
            d = d.get("data")
        if type(d) is not dict:
            if type(d) is list:
                if not d:
                    self.rejects["empty_array"] += 1
                for item in d:
                    self.feed_obj(item, recv_ns, symbol_hint)
            else:
                self.rejects["not_an_object"] += 1
            return
        raw_type = d.get("e")
        etype: str = raw_type if type(raw_type) is str else ""
        handler = _HANDLERS.get(etype)
        if handler is None:
            if "lastUpdateId" in d and "bids" in d:
                handler, etype = BinanceParser._depth_snapshot, "depthSnapshot"
            elif "result" in d and "id" in d:
                self.events["control"] += 1
                return
            else:
                self.rejects[f"unknown_event:{etype}" if etype else "unknown_event"] += 1
                return
        try:
            handler(self, d, recv_ns, symbol_hint)
        except InvalidMessage as exc:
            self.rejects[f"{etype}:{exc}"] += 1
            return
        except KeyError as exc:
            self.rejects[f"{etype}:missing_field:{exc.args[0]}"] += 1
            return
        except (TypeError, ValueError, AttributeError):
            self.rejects[f"{etype}:bad_value"] += 1
            return
        self.events[etype] += 1

    def _agg_trade(self, d: dict[str, Any], recv_ns: int, _: str | None) -> None:
        p = float(d["p"])
        q = float(d["q"])
        if not (0.0 < p < _INF):
            raise InvalidMessage("nonpositive_or_nan_price")
        if not (0.0 < q < _INF):
            raise InvalidMessage("nonpositive_or_nan_qty")
        m = d["m"]
        if type(m) is not bool:
            raise InvalidMessage("bad_side")
        self._sink(d["s"]).on_trade(int(d["T"]), p, q, m, int(d["a"]), "agg", recv_ns)

    def _trade(self, d: dict[str, Any], recv_ns: int, _: str | None) -> None:
        p = float(d["p"])
        q = float(d["q"])
        if not (0.0 < p < _INF):
            raise InvalidMessage("nonpositive_or_nan_price")
        if not (0.0 < q < _INF):
            raise InvalidMessage("nonpositive_or_nan_qty")
        m = d["m"]
        if type(m) is not bool:
            raise InvalidMessage("bad_side")
        self._sink(d["s"]).on_trade(int(d["T"]), p, q, m, int(d["t"]), "trade", recv_ns)

    def _depth(self, d: dict[str, Any], recv_ns: int, _: str | None) -> None:
        first, final, prev = int(d["U"]), int(d["u"]), int(d["pu"])
        if final < first:
            raise InvalidMessage("bad_id_range")
        sym = d["s"]
        self._sink(sym).on_event(
            DepthUpdate(sym, int(d["E"]), int(d["T"]), first, final, prev, _raw_levels(d["b"]), _raw_levels(d["a"]),
                        recv_ns)
        )

    def _depth_snapshot(self, d: dict[str, Any], recv_ns: int, symbol_hint: str | None) -> None:
        symbol = d.get("s") or d.get("symbol") or symbol_hint
        if not symbol:
            raise InvalidMessage("no_symbol")
        self._sink(str(symbol).upper()).on_event(
            DepthSnapshot(
                str(symbol).upper(),
                int(d["lastUpdateId"]),
                int(d.get("T") or d.get("E") or 0),
                _levels(d["bids"]),
                _levels(d["asks"]),
                recv_ns,
            )
        )

    def _book_ticker(self, d: dict[str, Any], recv_ns: int, _: str | None) -> None:
        bid, ask, bq, aq = float(d["b"]), float(d["a"]), float(d["B"]), float(d["A"])
        if not (0.0 < bid < ask < _INF):
            raise InvalidMessage("crossed" if 0.0 < ask <= bid < _INF else "nonpositive_or_nan")
        if not (0.0 <= bq < _INF and 0.0 <= aq < _INF):
            raise InvalidMessage("negative_or_nan")
        self._sink(d["s"]).on_book_ticker(int(d["u"]), int(d.get("T") or d["E"]), bid, bq, ask, aq, recv_ns)

    def _mark_price(self, d: dict[str, Any], recv_ns: int, _: str | None) -> None:
        idx = d.get("i")
        rate = _opt_float(d.get("r"))
        nft = d.get("T")
        self._sink(d["s"]).on_event(
            MarkPrice(
                d["s"],
                int(d["E"]),
                _pos(d["p"]),
                _pos(idx) if idx not in (None, "") else None,
                rate if rate is not None and math.isfinite(rate) else None,
                int(nft) if nft else None,
                recv_ns,
            )
        )

    def _force_order(self, d: dict[str, Any], recv_ns: int, _: str | None) -> None:
        o = d["o"]
        side = o["S"]
        if side not in ("BUY", "SELL"):
            raise InvalidMessage("bad_side")
        self._sink(o["s"]).on_event(
            ForceOrder(
                o["s"], int(o["T"]), side, _pos(o["p"]), _nonneg(o["ap"]), _pos(o["q"]), _nonneg(o["z"]),
                recv_ns, int(d.get("E") or 0),
            )
        )

    def _kline(self, d: dict[str, Any], recv_ns: int, _: str | None) -> None:
        k = d["k"]
        o, h, low, c = _pos(k["o"]), _pos(k["h"]), _pos(k["l"]), _pos(k["c"])
        if not (low <= min(o, c) and h >= max(o, c)):
            raise InvalidMessage("inconsistent_ohlc")
        self._sink(k.get("s") or d["s"]).on_event(
            Kline(
                k.get("s") or d["s"], k["i"], int(k["t"]), int(k["T"]), o, h, low, c,
                _nonneg(k["v"]), _nonneg(k["q"]), int(k["n"]), _nonneg(k["V"]), bool(k["x"]), recv_ns,
                int(d.get("E") or 0),
            )
        )


_HANDLERS: dict[str, Any] = {
    "aggTrade": BinanceParser._agg_trade,
    "trade": BinanceParser._trade,
    "depthUpdate": BinanceParser._depth,
    "bookTicker": BinanceParser._book_ticker,
    "markPriceUpdate": BinanceParser._mark_price,
    "forceOrder": BinanceParser._force_order,
    "kline": BinanceParser._kline,
}
