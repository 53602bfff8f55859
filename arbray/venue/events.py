"""Typed views of Binance USD-M private payloads: ``ORDER_TRADE_UPDATE``, REST orders and trades.

Parsing is strict about the fields the venue acts on and raises ``PayloadError`` (with a short
reason that the venue counts) for anything malformed, so a bad message is never half-applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TERMINAL_STATUSES = frozenset({"FILLED", "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED"})


class PayloadError(ValueError):
    """A private payload the venue cannot use; ``reason`` is a short counter key."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class OrderTradeUpdate:
    """The fields of one ``ORDER_TRADE_UPDATE`` the venue needs (quantities as floats)."""

    symbol: str
    client_id: str
    side: int
    order_type: str
    time_in_force: str
    exec_type: str
    status: str
    order_id: int
    orig_qty: float
    last_qty: float
    cum_qty: float
    last_price: float
    commission: float
    commission_asset: str | None
    trade_id: int
    maker: bool
    reduce_only: bool
    realized: float
    ts_ms: int


@dataclass(frozen=True, slots=True)
class RestOrder:
    """An order as ``GET/POST/DELETE /fapi/v1/order`` and ``openOrders`` return it."""

    symbol: str
    client_id: str
    order_id: int
    side: int
    status: str
    orig_qty: float
    executed_qty: float
    price: float
    order_type: str
    time_in_force: str
    reduce_only: bool
    update_ms: int

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class UserTrade:
    """One ``/fapi/v1/userTrades`` row."""

    trade_id: int
    order_id: int
    symbol: str
    side: int
    price: float
    qty: float
    commission: float
    commission_asset: str
    maker: bool
    ts_ms: int


def _side(v: Any) -> int:
    if v == "BUY":
        return 1
    if v == "SELL":
        return -1
    raise PayloadError("bad_side")


def _num(m: Mapping[str, Any], k: str, default: str | None = None) -> float:
    v = m.get(k, default)
    if v is None:
        raise PayloadError(f"missing_{k}")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise PayloadError(f"bad_{k}") from None
    if x != x or x in (float("inf"), float("-inf")):
        raise PayloadError(f"bad_{k}")
    return x


def _int(m: Mapping[str, Any], k: str, default: int | None = None) -> int:
    v = m.get(k, default)
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise PayloadError(f"bad_{k}")
    try:
        return int(v)
    except ValueError:
        raise PayloadError(f"bad_{k}") from None


def _str(m: Mapping[str, Any], k: str) -> str:
    v = m.get(k)
    if not isinstance(v, str) or not v:
        raise PayloadError(f"missing_{k}")
    return v


def parse_order_trade_update(msg: Mapping[str, Any]) -> OrderTradeUpdate:
    """``{"e": "ORDER_TRADE_UPDATE", "E", "T", "o": {…}}`` → ``OrderTradeUpdate``."""
    o = msg.get("o")
    if not isinstance(o, Mapping):
        raise PayloadError("missing_o")
    asset = o.get("N")
    return OrderTradeUpdate(
        symbol=_str(o, "s"), client_id=_str(o, "c"), side=_side(o.get("S")), order_type=_str(o, "o"),
        time_in_force=str(o.get("f", "")), exec_type=_str(o, "x"), status=_str(o, "X"), order_id=_int(o, "i"),
        orig_qty=_num(o, "q"), last_qty=_num(o, "l", "0"), cum_qty=_num(o, "z"), last_price=_num(o, "L", "0"),
        commission=_num(o, "n", "0"), commission_asset=asset if isinstance(asset, str) else None,
        trade_id=_int(o, "t", 0), maker=bool(o.get("m", False)), reduce_only=bool(o.get("R", False)),
        realized=_num(o, "rp", "0"), ts_ms=_int(o, "T", _int(msg, "T", 0)),
    )


def parse_rest_order(d: Mapping[str, Any]) -> RestOrder:
    """A REST order payload → ``RestOrder``."""
    return RestOrder(
        symbol=_str(d, "symbol"), client_id=_str(d, "clientOrderId"), order_id=_int(d, "orderId"),
        side=_side(d.get("side")), status=_str(d, "status"), orig_qty=_num(d, "origQty"),
        executed_qty=_num(d, "executedQty", "0"), price=_num(d, "price", "0"), order_type=_str(d, "type"),
        time_in_force=str(d.get("timeInForce", "")), reduce_only=bool(d.get("reduceOnly", False)),
        update_ms=_int(d, "updateTime", 0),
    )


def parse_user_trade(d: Mapping[str, Any]) -> UserTrade:
    """A ``/fapi/v1/userTrades`` row → ``UserTrade``."""
    return UserTrade(
        trade_id=_int(d, "id"), order_id=_int(d, "orderId"), symbol=_str(d, "symbol"), side=_side(d.get("side")),
        price=_num(d, "price"), qty=_num(d, "qty"), commission=_num(d, "commission", "0"),
        commission_asset=str(d.get("commissionAsset", "USDT")), maker=bool(d.get("maker", False)),
        ts_ms=_int(d, "time", 0),
    )
