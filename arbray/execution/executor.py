"""One strategy's trading: signals → position machines → account, with an input event log.

The executor owns the strategy's account and one ``PositionMachine`` per symbol with a working
position. It applies the opening rules (entry signal, side restriction, cooldown, max open
positions, a risk gate, 1R sizing on tick/step/min notional) and the flip rule (a reverse signal
scoring at least ``flip_threshold`` closes by taker, then re-enters when the side is allowed).
Every input (signals, venue events, prices, clock ticks) is appended to ``log``; feeding that
log to a fresh executor rebuilds the same state (``replay``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from arbray.clock import Clock
from arbray.execution.account import Account, ExitReason, Position
from arbray.execution.machine import ExecutionConfig, Phase, Plan, PositionMachine
from arbray.execution.sizing import position_size, step_size, tick_size
from arbray.execution.venue import Fill, FundingCharge, OrderUpdate, Venue, VenueEvent
from arbray.scoring.config import Direction, FrozenModel, side_allowed
from arbray.symbols import SymbolSpec, spec_for

TIER_MULTIPLIERS: dict[str, float] = {"light": 0.5, "standard": 1.0, "heavy": 1.5}
"""Size multiplier per signal tier (digest §5.1); pnl in R is not scaled by tier."""


class StrategyRules(FrozenModel):
    """Account and position rules of one strategy (digest §5.1–5.3 defaults)."""

    initial_balance: float = Field(10_000.0, gt=0)
    risk_fraction: float = Field(0.02, gt=0, le=0.2, description="1R = balance × risk_fraction at entry")
    sl_atr_multiplier: float = Field(2.0, gt=0, le=10, description="risk distance = multiplier × ATR(5m)")
    tp1_r: float = Field(0.75, gt=0, le=10)
    tp2_r: float = Field(1.5, gt=0, le=20)
    tp1_fraction: float = Field(0.5, gt=0, le=1, description="share closed at TP1")
    timeout_ms: int = Field(240 * 60_000, ge=60_000, le=7 * 24 * 3_600_000)
    flip_threshold: float = Field(80.0, ge=0, le=100)
    direction: Direction = "both"
    cooldown_ms: int = Field(0, ge=0, le=24 * 3_600_000, description="no new entry on a symbol after a close")
    max_open_positions: int = Field(4, ge=1, le=100)
    use_tiers: bool = Field(True, description="scale size by TIER_MULTIPLIERS")

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        if self.tp2_r <= self.tp1_r:
            return [(("tp1_r", "tp2_r"), f"tp2_r ({self.tp2_r}) must be beyond tp1_r ({self.tp1_r})")]
        return []


@dataclass(frozen=True, slots=True)
class Signal:
    """What a strategy said about a symbol at ``ts_ms``, with the market context to act on it."""

    strategy_id: str
    symbol: str
    ts_ms: int
    side: int
    score: float
    tier: str | None
    is_entry: bool
    is_flip: bool
    atr: float | None
    price: float
    bid: float | None = None
    ask: float | None = None


Gate = Callable[[str, str, float], str | None]
"""(strategy_id, symbol, notional) → reason to refuse a new entry, or None."""
LogEntry = tuple[str, int, Any]
"""(input kind, clock time, payload)."""


class StrategyExecutor:
    """Signals and market data in, orders out, positions booked into one account."""

    def __init__(self, strategy_id: str, rules: StrategyRules, cfg: ExecutionConfig, venue: Venue, clock: Clock,
                 spec_of: Callable[[str], SymbolSpec] = spec_for, gate: Gate | None = None,
                 on_close: Callable[[Position], None] | None = None, id_prefix: str = "") -> None:
        """``id_prefix`` starts every position (and so client order) id: a live run's instance tag, so
        ids never repeat across runs on one exchange account."""
        self.strategy_id = strategy_id
        self.id_prefix = id_prefix
        self.rules = rules
        self.cfg = cfg
        self.venue = venue
        self.clock = clock
        self.spec_of = spec_of
        self.gate = gate
        self.on_close = on_close
        self.account = Account(strategy_id, rules.initial_balance)
        self.machines: dict[str, PositionMachine] = {}
        self.finished: list[PositionMachine] = []
        self.counters: Counter[str] = Counter()
        self.log: list[LogEntry] = []
        self._by_order: dict[str, PositionMachine] = {}
        self._seq = 0
        self._cooldown_until: dict[str, int] = {}
        self._reentry: dict[str, Signal] = {}
        self.flips = 0

    # ------------------------------------------------------------ inputs
    def on_signal(self, sig: Signal) -> str | None:
        """Act on a signal; returns what was done or why nothing was ('entry', 'flip', reason…)."""
        now = self.clock.now_ms()
        self.log.append(("signal", now, sig))
        m = self.machines.get(sig.symbol)
        if m is not None:
            if sig.side == -m.pos.side and sig.score >= self.rules.flip_threshold and m.phase in (
                    Phase.POSITION_OPEN, Phase.TP_FALLBACK_TAKER, Phase.TIMEOUT_PENDING):
                self.flips += 1
                if sig.is_entry and side_allowed(self.rules.direction, sig.side):
                    self._reentry[sig.symbol] = sig
                m.request_exit("flip", now)
                self._reap(sig.symbol)
                return "flip"
            return self._count("busy")
        if not sig.is_entry:
            return None
        if not side_allowed(self.rules.direction, sig.side):
            return self._count("side_not_allowed")
        if now < self._cooldown_until.get(sig.symbol, 0):
            return self._count("cooldown")
        return self._enter(sig, now)

    def on_event(self, ev: VenueEvent) -> None:
        """A venue event for this strategy's account."""
        self.log.append(("event", self.clock.now_ms(), ev))
        if isinstance(ev, FundingCharge):
            m = self.machines.get(ev.symbol)
            if m is not None:
                m.on_funding(ev)
            return
        m = self._by_order.get(ev.client_id)
        if m is None:
            return
        if isinstance(ev, Fill):
            m.on_fill(ev)
        elif isinstance(ev, OrderUpdate):
            m.on_update(ev)
        self._track(m)
        self._reap(m.pos.symbol)

    def on_price(self, symbol: str, price: float) -> None:
        """A trade print of ``symbol`` at the clock's time."""
        self.log.append(("price", self.clock.now_ms(), (symbol, price)))
        m = self.machines.get(symbol)
        if m is not None:
            m.on_price(self.clock.now_ms(), price)
            self._track(m)
            self._reap(symbol)

    def on_time(self, symbol: str | None = None) -> None:
        """A clock tick: fire due timers of every machine, or of ``symbol``'s (not logged when none)."""
        syms = sorted(self.machines) if symbol is None else [symbol] if symbol in self.machines else []
        if not syms:
            return
        now = self.clock.now_ms()
        self.log.append(("time", now, symbol))
        for sym in syms:
            m = self.machines[sym]
            m.on_time(now)
            self._track(m)
            self._reap(sym)

    def close_all(self, reason: ExitReason) -> None:
        """Exit every position (risk halt or manual), cancelling working orders first."""
        now = self.clock.now_ms()
        self.log.append(("close_all", now, reason))
        self._reentry.clear()
        for sym in sorted(self.machines):
            self.machines[sym].request_exit(reason, now)
            self._track(self.machines[sym])
            self._reap(sym)

    # ------------------------------------------------------------ internals
    def _count(self, reason: str) -> str:
        self.counters[f"skip:{reason}"] += 1
        return reason

    def _enter(self, sig: Signal, now: int) -> str:
        if len(self.machines) >= self.rules.max_open_positions:
            return self._count("max_open_positions")
        if sig.atr is None or sig.atr <= 0:
            return self._count("no_atr")
        spec = self.spec_of(sig.symbol)
        one_r = self.account.one_r(self.rules.risk_fraction)
        rd = self.rules.sl_atr_multiplier * sig.atr
        mult = TIER_MULTIPLIERS.get(sig.tier or "standard", 1.0) if self.rules.use_tiers else 1.0
        qty = position_size(one_r, rd, sig.price, spec, mult)
        if qty is None:
            return self._count("below_min_size")
        if self.gate is not None:
            reason = self.gate(self.strategy_id, sig.symbol, qty * sig.price)
            if reason is not None:
                return self._count(f"risk:{reason}")
        self._seq += 1
        pos = Position(f"{self.id_prefix}{self.strategy_id}-{sig.symbol}-{self._seq}", self.strategy_id, sig.symbol,
                       sig.side,
                       one_r, rd, sig.price, sig.ts_ms, sig.score, sig.tier)
        plan = Plan(tick_size(spec), step_size(spec), self.rules.tp1_r, self.rules.tp2_r, self.rules.tp1_fraction,
                    self.rules.timeout_ms)
        m = PositionMachine(pos, qty, plan, self.cfg, self.venue)
        self.machines[sig.symbol] = m
        m.start(now, sig.bid, sig.ask)
        self._track(m)
        self.counters["entries"] += 1
        return "entry"

    def _track(self, m: PositionMachine) -> None:
        for cid in m.orders:
            self._by_order.setdefault(cid, m)

    def _reap(self, symbol: str) -> None:
        """Book a machine that reached CLOSED and start a pending flip re-entry."""
        m = self.machines.get(symbol)
        if m is None or m.active:
            return
        del self.machines[symbol]
        self.finished.append(m)
        if m.pos.entry_qty > 0:
            self.account.book_closed(m.pos)
            if self.on_close is not None:
                self.on_close(m.pos)
        now = self.clock.now_ms()
        self._cooldown_until[symbol] = now + self.rules.cooldown_ms
        sig = self._reentry.pop(symbol, None)
        if sig is not None:
            self._enter(sig, now)

    def state(self) -> dict[str, Any]:
        """Comparable summary of the whole executor (account and machines)."""
        a = self.account
        return {
            "balance": a.balance, "realised": a.realised, "fees": a.fees, "funding": a.funding,
            "closed": [(p.position_id, p.exit_reason, p.net_pnl) for p in a.closed],
            "machines": {s: m.state() for s, m in sorted(self.machines.items())},
            "seq": self._seq,
        }


def replay(log: list[LogEntry], executor: StrategyExecutor, set_time: Callable[[int], None]) -> StrategyExecutor:
    """Feed a recorded input log to a fresh ``executor`` (its venue ignores already-sent ids)."""
    for kind, now, payload in log:
        set_time(now)
        if kind == "signal":
            executor.on_signal(payload)
        elif kind == "event":
            executor.on_event(payload)
        elif kind == "price":
            executor.on_price(payload[0], payload[1])
        elif kind == "time":
            executor.on_time(payload)
        elif kind == "close_all":
            executor.close_all(payload)
    return executor
