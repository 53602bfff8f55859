"""The venue interface and its order/fill/funding records.

A venue accepts orders and cancels identified by client order ids and reports back through one
handler: acknowledgements, rejects, cancels, fills and funding charges. Submitting an id a second
time is a no-op, which is what makes a replayed execution machine idempotent against a venue
that already saw its orders. Implementations: ``PaperVenue`` here; the simulator exchange and
Binance adapters implement the same protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

OrderKind = Literal["market", "limit"]
Liquidity = Literal["maker", "taker"]
UpdateStatus = Literal["accepted", "rejected", "canceled", "cancel_rejected"]
BUY, SELL = 1, -1


@dataclass(frozen=True, slots=True)
class Order:
    """An order request. ``side`` is +1 (buy) or −1 (sell); ``price`` only for limits."""

    client_id: str
    account: str
    symbol: str
    side: int
    qty: float
    kind: OrderKind
    price: float | None = None
    post_only: bool = False
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class Fill:
    """A (partial) execution; ``fee`` is in quote currency (negative: a maker rebate)."""

    client_id: str
    account: str
    symbol: str
    side: int
    qty: float
    price: float
    fee: float
    liquidity: Liquidity
    remaining: float
    ts_ms: int


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A non-fill order state change; ``filled`` is the order's cumulative filled quantity."""

    client_id: str
    account: str
    status: UpdateStatus
    filled: float
    reason: str | None
    ts_ms: int


@dataclass(frozen=True, slots=True)
class FundingCharge:
    """Funding settled on a position: ``amount`` > 0 is paid by the account."""

    account: str
    symbol: str
    position_qty: float
    mark_price: float
    rate: float
    amount: float
    ts_ms: int


VenueEvent = Fill | OrderUpdate | FundingCharge
EventHandler = Callable[[VenueEvent], None]


class Venue(Protocol):
    """What the execution machine needs from a venue."""

    def connect(self, handler: EventHandler) -> None:
        """Route every event of this venue to ``handler`` (replacing any earlier one)."""

    def submit(self, order: Order, now_ms: int) -> None:
        """Send ``order`` (a no-op when its client id was already submitted)."""

    def cancel(self, client_id: str, now_ms: int) -> None:
        """Request the cancellation of a working order (a no-op when already requested)."""
