"""Per-strategy accounts and positions: a balance ledger and fill-by-fill position accounting.

A position's realised quote PnL is the signed cash flow of its fills (price PnL) minus fees and
funding; R values divide by the position's 1R (balance × risk fraction at entry). The ledger
books each closed position once, so balance = initial + additions + Σ closed net PnL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from arbray.execution.venue import Fill

ExitReason = Literal["tp", "sl", "sl_be", "timeout", "flip", "risk", "entry_expired"]


@dataclass
class Position:
    """One position of one strategy in one symbol, from its first entry fill to flat."""

    position_id: str
    strategy_id: str
    symbol: str
    side: int
    risk_usd: float
    risk_distance: float
    signal_price: float
    signal_ts_ms: int
    score: float
    tier: str | None
    qty: float = 0.0
    entry_qty: float = 0.0
    avg_entry: float = 0.0
    price_pnl: float = 0.0
    fees: float = 0.0
    funding: float = 0.0
    opened_ms: int | None = None
    closed_ms: int | None = None
    exit_reason: ExitReason | None = None
    exit_value: float = 0.0
    exit_qty: float = 0.0
    entry_maker_qty: float = 0.0
    tp_maker_qty: float = 0.0
    tp_taker_qty: float = 0.0
    fills: list[Fill] = field(default_factory=list)

    def apply_fill(self, f: Fill) -> None:
        """Book a fill: same side grows the position (average price), the other side reduces it."""
        self.fills.append(f)
        self.fees += f.fee
        if f.side == self.side:
            new_qty = self.qty + f.qty
            self.avg_entry = (self.avg_entry * self.qty + f.price * f.qty) / new_qty
            self.qty = new_qty
            self.entry_qty += f.qty
            if f.liquidity == "maker":
                self.entry_maker_qty += f.qty
        else:
            q = min(f.qty, self.qty)
            self.price_pnl += (f.price - self.avg_entry) * q * self.side
            self.qty = max(0.0, self.qty - q)
            if self.qty < 1e-12:
                self.qty = 0.0
            self.exit_value += f.price * q
            self.exit_qty += q

    @property
    def is_open(self) -> bool:
        return self.qty > 0.0

    @property
    def avg_exit(self) -> float | None:
        return self.exit_value / self.exit_qty if self.exit_qty > 0 else None

    @property
    def net_pnl(self) -> float:
        """Realised quote PnL: price PnL − fees − funding."""
        return self.price_pnl - self.fees - self.funding

    def r(self, quote: float) -> float:
        """``quote`` in units of this position's 1R."""
        return quote / self.risk_usd if self.risk_usd > 0 else 0.0

    def unrealised(self, price: float) -> float:
        """Price PnL of the open quantity at ``price``."""
        return (price - self.avg_entry) * self.qty * self.side


@dataclass
class Account:
    """Balance ledger of one strategy."""

    strategy_id: str
    initial_balance: float
    balance: float = 0.0
    added: float = 0.0
    realised: float = 0.0
    fees: float = 0.0
    funding: float = 0.0
    closed: list[Position] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.balance = self.initial_balance

    def add_balance(self, amount: float) -> None:
        """Deposit (or, negative, withdraw) ``amount`` quote."""
        self.added += amount
        self.balance += amount

    def one_r(self, risk_fraction: float) -> float:
        """1R now: balance × risk fraction."""
        return self.balance * risk_fraction

    def book_closed(self, pos: Position) -> None:
        """Realise a flat position into the balance (once)."""
        self.realised += pos.price_pnl
        self.fees += pos.fees
        self.funding += pos.funding
        self.balance += pos.net_pnl
        self.closed.append(pos)
