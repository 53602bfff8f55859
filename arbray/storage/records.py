"""Plain records the store writes and reads: frozen dataclasses whose fields are the table's columns.

Every write method of the store also accepts a plain mapping with the same keys, so producers
(live execution, the backtest engine) need not import these types. Timestamps are UTC epoch ms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, NamedTuple, TypeVar

OrderSide = Literal["BUY", "SELL"]
PositionSide = Literal["LONG", "SHORT"]
StrategyStatus = Literal["running", "paused", "deprecated"]
Role = Literal["read", "admin"]
LIVE_RUN = "live"
"""``run_id`` of live and paper trading; backtests use their own run id."""


@dataclass(frozen=True, slots=True)
class StrategyRecord:
    """A strategy: UUID id, the config's id as ``slug``, its config JSON and starting balance."""

    strategy_id: str
    slug: str
    display_name: str
    kind: str
    config: Mapping[str, Any]
    config_hash: str
    initial_balance: float
    created_ms: int
    status: StrategyStatus = "running"
    description: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SignalRecord:
    """An actionable signal (entry, flip, exit) a strategy emitted."""

    strategy_id: str
    symbol: str
    ts_ms: int
    side: PositionSide
    action: str
    score: float
    tier: str | None = None
    price: float | None = None
    detail: Mapping[str, Any] | None = None
    run_id: str = LIVE_RUN


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """An order as last known; ``record_order`` also appends its state to the order's history."""

    client_order_id: str
    strategy_id: str
    symbol: str
    side: OrderSide
    order_type: str
    qty: float
    created_ms: int
    updated_ms: int
    state: str = "NEW"
    time_in_force: str | None = None
    price: float | None = None
    stop_price: float | None = None
    reduce_only: bool = False
    venue_order_id: str | None = None
    filled_qty: float = 0.0
    avg_price: float | None = None
    run_id: str = LIVE_RUN


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One execution of an order; ``fill_id`` is unique (e.g. ``SYMBOL:venue_trade_id``)."""

    fill_id: str
    client_order_id: str
    strategy_id: str
    symbol: str
    side: OrderSide
    price: float
    qty: float
    fee: float
    fee_asset: str
    is_maker: bool
    ts_ms: int
    venue_trade_id: str | None = None
    position_id: str | None = None
    run_id: str = LIVE_RUN


@dataclass(frozen=True, slots=True)
class PositionRecord:
    """A position's state after a fill (the caller computes it; the store keeps it atomic with the fill)."""

    position_id: str
    strategy_id: str
    symbol: str
    side: PositionSide
    status: Literal["open", "closed"]
    qty: float
    entry_price: float
    opened_ms: int
    updated_ms: int
    stop_price: float | None = None
    realised_pnl: float = 0.0
    fees: float = 0.0
    funding: float = 0.0
    closed_ms: int | None = None
    run_id: str = LIVE_RUN


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """A closed round trip: entry, exit, gross ``pnl``, ``fees`` paid, ``funding`` received (signed), R."""

    trade_id: str
    strategy_id: str
    symbol: str
    side: PositionSide
    qty: float
    entry_price: float
    entry_ms: int
    exit_price: float
    exit_ms: int
    exit_reason: str
    pnl: float
    fees: float = 0.0
    funding: float = 0.0
    risk_distance: float | None = None
    r_multiple: float | None = None
    score: float | None = None
    tier: str | None = None
    position_id: str | None = None
    detail: Mapping[str, Any] | None = None
    run_id: str = LIVE_RUN

    @property
    def net_pnl(self) -> float:
        """``pnl − fees + funding``: what the trade adds to the strategy's balance."""
        return self.pnl - self.fees + self.funding


@dataclass(frozen=True, slots=True)
class RiskEvent:
    """A risk guard event (state change, breach, circuit break)."""

    ts_ms: int
    scope: str
    level: Literal["info", "warning", "error", "critical"]
    kind: str
    message: str
    detail: Mapping[str, Any] | None = None


class AggTrade(NamedTuple):
    """A Binance aggTrade; a tuple so the high-rate path can batch without conversion."""

    symbol: str
    agg_id: int
    price: float
    qty: float
    first_trade_id: int
    last_trade_id: int
    time_ms: int
    is_buyer_maker: bool


class Kline(NamedTuple):
    """One candle of ``interval`` opening at ``open_ms``."""

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


class FundingRate(NamedTuple):
    """A settled (or predicted) funding rate at ``funding_ms``."""

    symbol: str
    funding_ms: int
    rate: float
    mark_price: float | None


class OpenInterest(NamedTuple):
    """Open interest (contracts, and its USD value when known) at ``ts_ms``."""

    symbol: str
    ts_ms: int
    open_interest: float
    open_interest_value: float | None


class Liquidation(NamedTuple):
    """A forced order; ``side`` is the liquidation order's side."""

    symbol: str
    ts_ms: int
    side: OrderSide
    price: float
    qty: float


@dataclass(frozen=True, slots=True)
class Continuity:
    """aggTrade id continuity of one symbol: covered id range, row count and missing id ranges."""

    symbol: str
    first_id: int
    last_id: int
    rows: int
    gaps: tuple[tuple[int, int], ...] = field(default=())
    """Inclusive ``(first_missing, last_missing)`` id ranges."""

    @property
    def missing(self) -> int:
        """How many ids are missing between ``first_id`` and ``last_id``."""
        return sum(b - a + 1 for a, b in self.gaps)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a read model and the cursor of the next page (None when this is the last)."""

    rows: list[dict[str, Any]]
    next_cursor: str | None


R = TypeVar("R")


def coerce(cls: type[R], obj: R | Mapping[str, Any]) -> R:
    """``obj`` if it already is a ``cls``, else ``cls(**obj)`` with unknown keys rejected."""
    if isinstance(obj, cls):
        return obj
    if not isinstance(obj, Mapping):
        raise TypeError(f"expected {cls.__name__} or a mapping, got {type(obj).__name__}")
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(obj) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    return cls(**obj)
