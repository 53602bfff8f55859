"""Parse Binance USD-M stream and REST JSON into events, rejecting bad input with a reason.

Accepts raw stream payloads, combined-stream wrappers ``{"stream": ..., "data": ...}``, array
payloads (``!markPrice@arr``) and the REST depth snapshot. Trades go to the sink's fast
``on_trade``; everything else becomes a typed event. Nothing malformed is coerced: a message that
fails validation is counted under ``"<event>:<problem>"`` and dropped, and the reader continues.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Protocol

import orjson

from arbray.marketdata.events import (
    BookTicker,
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


class MarketDataSink(Protocol):
    """Receives parsed market data: trades one by one (hot path), other events as objects."""

    def on_trade(
        self,
        symbol: str,
        ts_ms: int,
        price: float,
        qty: float,
        is_buyer_maker: bool,
        trade_id: int,
        id_kind: str,
        recv_ns: int,
    ) -> None: ...

    def on_event(self, event: Event) -> None: ...


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

    def __init__(self, sink: MarketDataSink, rejects: RejectCounter | None = None) -> None:
        self.sink = sink
        self.rejects = rejects if rejects is not None else RejectCounter()
        self.events: Counter[str] = Counter()

    def feed(self, raw: bytes | str, recv_ns: int = 0, symbol_hint: str | None = None) -> None:
        """Parse one raw JSON message."""
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.rejects["malformed_json"] += 1
            return
        self.feed_obj(obj, recv_ns, symbol_hint)

    def feed_obj(self, obj: Any, recv_ns: int = 0, symbol_hint: str | None = None) -> None:
        """Dispatch one decoded JSON value (wrapper, payload, array or REST snapshot)."""
        if type(obj) is dict:
            data = obj.get("data")
            if data is not None and "stream" in obj:
                obj = data
                if type(obj) is list:
                    self._many(obj, recv_ns, symbol_hint)
                    return
            self._one(obj, recv_ns, symbol_hint)
        elif type(obj) is list:
            self._many(obj, recv_ns, symbol_hint)
        else:
            self.rejects["not_an_object"] += 1

    def _many(self, items: list[Any], recv_ns: int, symbol_hint: str | None) -> None:
        if not items:
            self.rejects["empty_array"] += 1
        for item in items:
            self._one(item, recv_ns, symbol_hint)

    def _one(self, d: Any, recv_ns: int, symbol_hint: str | None) -> None:
        if type(d) is not dict:
            self.rejects["not_an_object"] += 1
            return
        raw_type = d.get("e")
        etype = raw_type if type(raw_type) is str else ""
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
        self.sink.on_trade(d["s"], int(d["T"]), p, q, m, int(d["a"]), "agg", recv_ns)

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
        self.sink.on_trade(d["s"], int(d["T"]), p, q, m, int(d["t"]), "trade", recv_ns)

    def _depth(self, d: dict[str, Any], recv_ns: int, _: str | None) -> None:
        first, final, prev = int(d["U"]), int(d["u"]), int(d["pu"])
        if final < first:
            raise InvalidMessage("bad_id_range")
        self.sink.on_event(
            DepthUpdate(
                d["s"], int(d["E"]), int(d["T"]), first, final, prev, _levels(d["b"]), _levels(d["a"]), recv_ns
            )
        )

    def _depth_snapshot(self, d: dict[str, Any], recv_ns: int, symbol_hint: str | None) -> None:
        symbol = d.get("s") or d.get("symbol") or symbol_hint
        if not symbol:
            raise InvalidMessage("no_symbol")
        self.sink.on_event(
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
        bid, ask = _pos(d["b"]), _pos(d["a"])
        if bid >= ask:
            raise InvalidMessage("crossed")
        self.sink.on_event(
            BookTicker(
                d["s"], int(d["u"]), int(d.get("T") or d["E"]), bid, _nonneg(d["B"]), ask, _nonneg(d["A"]),
                recv_ns,
            )
        )

    def _mark_price(self, d: dict[str, Any], recv_ns: int, _: str | None) -> None:
        idx = d.get("i")
        rate = _opt_float(d.get("r"))
        nft = d.get("T")
        self.sink.on_event(
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
        self.sink.on_event(
            ForceOrder(
                o["s"], int(o["T"]), side, _pos(o["p"]), _nonneg(o["ap"]), _pos(o["q"]), _nonneg(o["z"]),
                recv_ns,
            )
        )

    def _kline(self, d: dict[str, Any], recv_ns: int, _: str | None) -> None:
        k = d["k"]
        o, h, low, c = _pos(k["o"]), _pos(k["h"]), _pos(k["l"]), _pos(k["c"])
        if not (low <= min(o, c) and h >= max(o, c)):
            raise InvalidMessage("inconsistent_ohlc")
        self.sink.on_event(
            Kline(
                k.get("s") or d["s"], k["i"], int(k["t"]), int(k["T"]), o, h, low, c,
                _nonneg(k["v"]), _nonneg(k["q"]), int(k["n"]), _nonneg(k["V"]), bool(k["x"]), recv_ns,
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
