"""Typed market-data events (low rate) and the numpy trade batch (hot path).

Every event carries the exchange time (``*_ms``, epoch ms) and the local receive time
(``recv_ns``, epoch ns; 0 when unknown, e.g. for CSV sources without a receive time).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Level = tuple[float, float]
# Diff-depth levels as received: ``[price, qty]`` decimal strings, validated by the parser but
# converted to floats only when the book is read (see ``LocalOrderBook``). Floats are accepted too.
RawLevel = tuple[str, str] | list[str] | tuple[float, float]

TRADE_DTYPE = np.dtype(
    [
        ("ts_ms", np.int64),
        ("recv_ns", np.int64),
        ("trade_id", np.int64),
        ("price", np.float64),
        ("qty", np.float64),
        ("is_buyer_maker", np.bool_),
    ]
)


@dataclass(frozen=True, slots=True)
class TradeBatch:
    """Trades of one symbol in arrival order, as a structured numpy array of ``TRADE_DTYPE``.

    ``is_buyer_maker`` True means the taker sold. ``id_kind`` says which Binance id sequence
    ``trade_id`` belongs to: ``"agg"`` (aggTrade ``a``) or ``"trade"`` (trade ``t``).
    """

    symbol: str
    rows: npt.NDArray[np.void]
    id_kind: str = "agg"

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @staticmethod
    def from_columns(
        symbol: str,
        ts_ms: npt.ArrayLike,
        price: npt.ArrayLike,
        qty: npt.ArrayLike,
        is_buyer_maker: npt.ArrayLike,
        trade_id: npt.ArrayLike | None = None,
        recv_ns: npt.ArrayLike | None = None,
        id_kind: str = "agg",
    ) -> TradeBatch:
        ts = np.asarray(ts_ms, dtype=np.int64)
        rows = np.empty(ts.shape[0], dtype=TRADE_DTYPE)
        rows["ts_ms"] = ts
        rows["price"] = price
        rows["qty"] = qty
        rows["is_buyer_maker"] = is_buyer_maker
        rows["trade_id"] = -1 if trade_id is None else trade_id
        rows["recv_ns"] = 0 if recv_ns is None else recv_ns
        return TradeBatch(symbol, rows, id_kind)


@dataclass(frozen=True, slots=True)
class DepthUpdate:
    """A diff-depth event (``depthUpdate``): ids ``U``..``u`` with previous final id ``pu``."""

    symbol: str
    event_ms: int
    transact_ms: int
    first_id: int
    final_id: int
    prev_final_id: int
    bids: Sequence[RawLevel]
    asks: Sequence[RawLevel]
    recv_ns: int = 0


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    """A REST ``/fapi/v1/depth`` snapshot."""

    symbol: str
    last_update_id: int
    transact_ms: int
    bids: list[Level]
    asks: list[Level]
    recv_ns: int = 0


@dataclass(frozen=True, slots=True)
class BookTicker:
    """Best bid/ask (``bookTicker``); ``update_id`` is on the same sequence as depth ids."""

    symbol: str
    update_id: int
    transact_ms: int
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    recv_ns: int = 0


@dataclass(frozen=True, slots=True)
class MarkPrice:
    """``markPriceUpdate``: mark and index price, funding rate and next funding time."""

    symbol: str
    event_ms: int
    mark_price: float
    index_price: float | None
    funding_rate: float | None
    next_funding_ms: int | None
    recv_ns: int = 0


@dataclass(frozen=True, slots=True)
class ForceOrder:
    """A liquidation order (``forceOrder``). Side SELL liquidates a long, BUY a short."""

    symbol: str
    trade_ms: int
    side: str
    price: float
    avg_price: float
    qty: float
    filled_qty: float
    recv_ns: int = 0
    event_ms: int = 0  # the message's event time ``E`` (0 when unknown); ``trade_ms`` is the order's ``T``

    @property
    def usd(self) -> float:
        """Liquidated notional: filled quantity at the average fill price."""
        px = self.avg_price if self.avg_price > 0 else self.price
        qty = self.filled_qty if self.filled_qty > 0 else self.qty
        return px * qty


@dataclass(frozen=True, slots=True)
class Kline:
    """A candlestick (stream ``kline`` or a public-data CSV row)."""

    symbol: str
    interval: str
    open_ms: int
    close_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trades: int
    taker_buy_volume: float
    closed: bool
    recv_ns: int = 0
    event_ms: int = 0  # the stream message's event time ``E`` (0 for files and REST rows)


@dataclass(frozen=True, slots=True)
class MarketIndicator:
    """A REST-polled indicator sample: open interest, long/short ratios, spot price.

    ``kind`` is one of ``open_interest`` (value in contracts or USD as stated by ``unit``),
    ``long_short_ratio``, ``top_trader_long_ratio`` (long share 0–1) or ``spot_price``.
    """

    symbol: str
    ts_ms: int
    kind: str
    value: float
    recv_ns: int = 0


Event = DepthUpdate | DepthSnapshot | BookTicker | MarkPrice | ForceOrder | Kline | MarketIndicator


class RejectCounter(Counter[str]):
    """Rejected inputs counted per reason (never silently dropped)."""

    def reject(self, reason: str) -> None:
        self[reason] += 1
