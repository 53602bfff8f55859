"""Risk rules as a declarative table, evaluated into ACTIVE / REDUCING / HALTED with reasons.

Each ``RiskRule`` names the state it imposes while its check fires and whether it also asks for
every position to be closed (digest §6.2 defaults). The engine is fed fills/closes, heartbeats,
order submissions and balance updates, reads time only from the injected clock, and answers
``allows(action)``: new entries need ACTIVE; reducing orders and cancels always pass. Per-order
limits (notional per order and in total) refuse single orders without changing the state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

from pydantic import Field

from arbray.clock import Clock
from arbray.scoring.config import FrozenModel

MINUTE_MS = 60_000
DAY_MS = 24 * 60 * MINUTE_MS
Action = Literal["new", "reduce", "cancel"]


class TradingState(IntEnum):
    """Ordered by severity: the evaluated state is the most severe one any rule imposes."""

    ACTIVE = 0
    REDUCING = 1
    HALTED = 2


class RiskConfig(FrozenModel):
    """Thresholds of the risk rules (digest §6.2 defaults)."""

    daily_loss_limit_r: float = Field(-5.0, le=0, ge=-100, description="UTC-day realised R that halts")
    max_consecutive_losses: int = Field(5, ge=1, le=100)
    loss_pause_ms: int = Field(60 * MINUTE_MS, ge=0, le=DAY_MS)
    stale_data_ms: int = Field(30_000, ge=1_000, le=3_600_000)
    min_balance_r: float = Field(2.0, ge=0, le=100, description="reject new entries below this many R")
    hold_alert_ms: int = Field(45 * MINUTE_MS, ge=MINUTE_MS, le=7 * DAY_MS)
    hold_force_close_ms: int = Field(70 * MINUTE_MS, ge=MINUTE_MS, le=7 * DAY_MS)
    max_order_notional: float = Field(500_000.0, gt=0)
    max_total_notional: float = Field(2_000_000.0, gt=0)
    max_orders_per_window: int = Field(50, ge=1, le=100_000)
    order_rate_window_ms: int = Field(10_000, ge=100, le=3_600_000)

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        out: list[tuple[tuple[str, ...], str]] = []
        if self.hold_force_close_ms <= self.hold_alert_ms:
            out.append((("hold_alert_ms", "hold_force_close_ms"), "the force close must come after the alert"))
        if self.max_total_notional < self.max_order_notional:
            out.append((("max_order_notional", "max_total_notional"), "the total limit must cover one order"))
        return out


@dataclass
class RiskInputs:
    """What the rules read: fed by the engine's ``on_*`` methods."""

    day: int = -1
    day_r: float = 0.0
    consecutive_losses: int = 0
    pause_until_ms: int = 0
    last_data_ms: int | None = None
    balance: float = 0.0
    one_r: float = 0.0
    open_notional: float = 0.0
    positions: dict[str, tuple[int, float]] = field(default_factory=dict)
    submits: deque[int] = field(default_factory=deque)
    killed: bool = False
    block_new: bool = False


@dataclass(frozen=True, slots=True)
class RiskRule:
    """One row of the table: the state imposed while ``check`` returns a reason."""

    name: str
    state: TradingState
    close_all: bool
    check: Callable[[RiskInputs, RiskConfig, int], str | None]


def _daily_loss(x: RiskInputs, c: RiskConfig, now: int) -> str | None:
    return f"daily loss {x.day_r:.2f}R <= {c.daily_loss_limit_r}R" if x.day_r <= c.daily_loss_limit_r else None


def _loss_pause(x: RiskInputs, c: RiskConfig, now: int) -> str | None:
    if now < x.pause_until_ms:
        return f"paused after {c.max_consecutive_losses} losses until {x.pause_until_ms}"
    return None


def _stale(x: RiskInputs, c: RiskConfig, now: int) -> str | None:
    if x.last_data_ms is None or now - x.last_data_ms > c.stale_data_ms:
        return f"market data older than {c.stale_data_ms} ms"
    return None


def _low_balance(x: RiskInputs, c: RiskConfig, now: int) -> str | None:
    if x.one_r > 0 and x.balance < c.min_balance_r * x.one_r:
        return f"balance {x.balance:.2f} < {c.min_balance_r}R ({c.min_balance_r * x.one_r:.2f})"
    return None


def _total_notional(x: RiskInputs, c: RiskConfig, now: int) -> str | None:
    if x.open_notional > c.max_total_notional:
        return f"open notional {x.open_notional:.0f} > {c.max_total_notional:.0f}"
    return None


def _order_rate(x: RiskInputs, c: RiskConfig, now: int) -> str | None:
    n = sum(1 for t in x.submits if t > now - c.order_rate_window_ms)
    return f"{n} orders in {c.order_rate_window_ms} ms" if n >= c.max_orders_per_window else None


def _kill(x: RiskInputs, c: RiskConfig, now: int) -> str | None:
    return "manual kill switch" if x.killed else None


def _block_new(x: RiskInputs, c: RiskConfig, now: int) -> str | None:
    return "manual block-new" if x.block_new else None


RULES: tuple[RiskRule, ...] = (
    RiskRule("kill_switch", TradingState.HALTED, True, _kill),
    RiskRule("daily_loss", TradingState.HALTED, True, _daily_loss),
    RiskRule("consecutive_losses", TradingState.REDUCING, False, _loss_pause),
    RiskRule("stale_data", TradingState.REDUCING, False, _stale),
    RiskRule("low_balance", TradingState.REDUCING, False, _low_balance),
    RiskRule("total_notional", TradingState.REDUCING, False, _total_notional),
    RiskRule("order_rate", TradingState.REDUCING, False, _order_rate),
    RiskRule("block_new", TradingState.REDUCING, False, _block_new),
)
"""The table: every rule is checked; the most severe firing state wins."""


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The evaluated state, the reasons (``rule: detail``), and what must be done now."""

    state: TradingState
    reasons: tuple[str, ...]
    close_all: bool
    force_close: tuple[str, ...]
    hold_alerts: tuple[str, ...]


class RiskEngine:
    """Evaluates ``RULES`` over fed inputs at the injected clock's time."""

    def __init__(self, config: RiskConfig | None = None, clock: Clock | None = None,
                 rules: tuple[RiskRule, ...] = RULES) -> None:
        if clock is None:
            raise ValueError("RiskEngine needs an injected clock")
        self.config = config or RiskConfig()
        self.clock = clock
        self.rules = rules
        self.x = RiskInputs()
        self.history: list[tuple[int, str, tuple[str, ...]]] = []

    # ------------------------------------------------------------ inputs
    def on_data(self, ts_ms: int) -> None:
        """A market-data heartbeat (latest exchange time seen)."""
        self.x.last_data_ms = ts_ms if self.x.last_data_ms is None else max(self.x.last_data_ms, ts_ms)

    def on_balance(self, balance: float, one_r: float) -> None:
        self.x.balance, self.x.one_r = balance, one_r

    def on_position(self, position_id: str, opened_ms: int, notional: float) -> None:
        """A position opened (or resized)."""
        self.x.positions[position_id] = (opened_ms, notional)
        self.x.open_notional = sum(n for _, n in self.x.positions.values())

    def on_close(self, position_id: str, pnl_r: float) -> None:
        """A position closed with ``pnl_r``: daily R, loss streak and the pause."""
        now = self.clock.now_ms()
        self.x.positions.pop(position_id, None)
        self.x.open_notional = sum(n for _, n in self.x.positions.values())
        self._roll_day(now)
        self.x.day_r += pnl_r
        if pnl_r < 0:
            self.x.consecutive_losses += 1
            if self.x.consecutive_losses >= self.config.max_consecutive_losses:
                self.x.pause_until_ms = now + self.config.loss_pause_ms
                self.x.consecutive_losses = 0
        else:
            self.x.consecutive_losses = 0

    def on_submit(self) -> None:
        """An order was sent (rate rule)."""
        now = self.clock.now_ms()
        q = self.x.submits
        q.append(now)
        while q and q[0] <= now - self.config.order_rate_window_ms:
            q.popleft()

    def kill(self) -> None:
        self.x.killed = True

    def set_block_new(self, on: bool) -> None:
        self.x.block_new = on

    def resume(self) -> None:
        """Manual resume: clears the kill switch, block-new and the loss pause."""
        self.x.killed = self.x.block_new = False
        self.x.pause_until_ms = 0

    def _roll_day(self, now: int) -> None:
        day = now // DAY_MS
        if day != self.x.day:
            self.x.day, self.x.day_r = day, 0.0

    # ------------------------------------------------------------ decisions
    def evaluate(self) -> RiskDecision:
        """The current state with every firing rule's reason and the required actions."""
        now = self.clock.now_ms()
        self._roll_day(now)
        state, reasons, close_all = TradingState.ACTIVE, [], False
        for rule in self.rules:
            why = rule.check(self.x, self.config, now)
            if why is not None:
                state = max(state, rule.state)
                reasons.append(f"{rule.name}: {why}")
                close_all |= rule.close_all
        c = self.config
        held = sorted(self.x.positions.items())
        force = tuple(pid for pid, (t0, _) in held if now - t0 >= c.hold_force_close_ms)
        alerts = tuple(pid for pid, (t0, _) in held if c.hold_alert_ms <= now - t0 < c.hold_force_close_ms)
        decision = RiskDecision(state, tuple(reasons), close_all, force, alerts)
        if not self.history or self.history[-1][1:] != (state.name, decision.reasons):
            self.history.append((now, state.name, decision.reasons))
        return decision

    def allows(self, action: Action, notional: float = 0.0) -> tuple[bool, str | None]:
        """Whether an order may be sent: cancels and reducing orders always; new entries only when ACTIVE
        and within the per-order and total notional limits."""
        if action != "new":
            return True, None
        d = self.evaluate()
        if d.state != TradingState.ACTIVE:
            return False, f"{d.state.name}: {'; '.join(d.reasons)}"
        c = self.config
        if notional > c.max_order_notional:
            return False, f"max_order_notional: {notional:.0f} > {c.max_order_notional:.0f}"
        if self.x.open_notional + notional > c.max_total_notional:
            return False, f"max_total_notional: {self.x.open_notional + notional:.0f} > {c.max_total_notional:.0f}"
        return True, None

    def gate(self, strategy_id: str, symbol: str, notional: float) -> str | None:
        """``StrategyExecutor`` gate: the refusal reason for a new entry, or None."""
        ok, why = self.allows("new", notional)
        return None if ok else why
