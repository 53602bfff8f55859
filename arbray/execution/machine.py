"""The maker/taker execution state machine of one position (digest §6.4).

Entry: post-only ``entry_offset_ticks`` inside the spread → on ``entry_timeout_ms`` (or a
post-only reject) cancel → taker for the remainder only if the market is within
``entry_fallback_slippage_bps`` of the signal price, else keep the partial fill. Exits: TP1/TP2
rest post-only (reduce-only) and fall back to a taker after the price has traded through for
``tp_timeout_ms``; after TP1 the stop moves to break-even; SL is always taker; timeout exits
post-only at mid, then taker after ``timeout_grace_ms``; a flip or a risk close is taker.
Every exit first cancels the machine's working orders and waits for each cancel to settle
(Cancel → Market), so a TP fill that races a cancel is never closed twice.

Client order ids are ``<position_id>-<role><attempt>``: a function of the position sequence and
the step, so a machine rebuilt from its event log sends the same ids and the venue ignores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from arbray.execution.account import ExitReason, Position
from arbray.execution.sizing import floor_to, passive_price, round_to
from arbray.execution.venue import Fill, FundingCharge, Order, OrderUpdate, Venue
from arbray.scoring.config import FrozenModel


class ExecutionConfig(FrozenModel):
    """Parameters of the execution state machine (digest §6.4 ranges)."""

    maker_entry: bool = Field(True, description="post-only entry first; False: taker entry")
    entry_offset_ticks: int = Field(1, ge=0, le=20, description="ticks inside the spread for the maker entry")
    entry_timeout_ms: int = Field(4_000, ge=100, le=600_000)
    entry_fallback_slippage_bps: float = Field(5.0, ge=0, le=500, description="max |mkt − signal| for the taker")
    min_fill_ratio: float = Field(1.0, gt=0, le=1, description="filled share that counts as a full entry")
    maker_tp: bool = Field(True, description="TPs rest post-only; False: taker when the price crosses")
    tp_timeout_ms: int = Field(2_000, ge=0, le=600_000, description="wait after a trade-through before the taker")
    timeout_maker: bool = Field(True, description="timeout exit post-only at mid first")
    timeout_grace_ms: int = Field(5_000, ge=0, le=600_000)
    breakeven_offset_bps: float = Field(0.0, ge=0, le=100, description="fee-aware break-even: stop this far in profit")


class Phase(StrEnum):
    ENTRY_PENDING_MAKER = "ENTRY_PENDING_MAKER"
    ENTRY_CANCELING = "ENTRY_CANCELING"
    ENTRY_FALLBACK_TAKER = "ENTRY_FALLBACK_TAKER"
    POSITION_OPEN = "POSITION_OPEN"
    TP_FALLBACK_TAKER = "TP_FALLBACK_TAKER"
    EXIT_CANCELING = "EXIT_CANCELING"
    TIMEOUT_PENDING = "TIMEOUT_PENDING"
    EXIT_TAKER = "EXIT_TAKER"
    CLOSED = "CLOSED"


_OPEN_PHASES = (Phase.POSITION_OPEN, Phase.TP_FALLBACK_TAKER, Phase.TIMEOUT_PENDING)
_MAX_EXIT_RETRIES = 3
_EXIT_ROLE: dict[str, str] = {"sl": "SL", "sl_be": "SL", "flip": "FL", "timeout": "TT", "risk": "RK"}
LegState = Literal["waiting", "resting", "canceling", "taker", "done"]


@dataclass
class TpLeg:
    """One take-profit leg: its price, quantity and how it is being worked."""

    role: str
    price: float
    qty: float
    filled: float = 0.0
    state: LegState = "waiting"
    cross_ts: int | None = None
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """Exit geometry and sizing inputs fixed at the signal."""

    tick: float
    step: float
    tp1_r: float
    tp2_r: float
    tp1_fraction: float
    timeout_ms: int


I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


class PositionMachine:
    """Drives one position from its entry order to flat through a ``Venue``."""

    def __init__(self, pos: Position, target_qty: float, plan: Plan, cfg: ExecutionConfig, venue: Venue) -> None:
        self.pos = pos
        self.target = target_qty
        self.plan = plan
        self.cfg = cfg
        self.venue = venue
        self.phase = Phase.ENTRY_PENDING_MAKER
        self.working: set[str] = set()
        self.orders: dict[str, str] = {}
        self.legs: list[TpLeg] = []
        self.sl = 0.0
        self.tp1_done = False
        self.entry_deadline: int | None = None
        self.entry_timed_out = False
        self.timeout_at: int | None = None
        self.grace_deadline: int | None = None
        self.exit_reason: ExitReason | None = None
        self.exit_attempt = 0
        self.exit_retry = False
        self.last_price = pos.signal_price
        self.transitions: list[tuple[int, str]] = []

    # ------------------------------------------------------------ helpers
    def _id(self, role: str) -> str:
        return f"{self.pos.position_id}-{role}"

    def _submit(self, role: str, now: int, side: int, qty: float, kind: Literal["market", "limit"],
                price: float | None = None, post_only: bool = False, reduce_only: bool = False) -> str:
        cid = self._id(role)
        self.working.add(cid)
        self.orders[cid] = role
        self.venue.submit(Order(cid, self.pos.strategy_id, self.pos.symbol, side, qty, kind, price, post_only,
                                reduce_only), now)
        return cid

    def _set(self, phase: Phase, now: int) -> None:
        if phase != self.phase:
            self.phase = phase
            self.transitions.append((now, phase.value))

    @property
    def active(self) -> bool:
        return self.phase != Phase.CLOSED

    # ------------------------------------------------------------ entry
    def start(self, now: int, bid: float | None, ask: float | None) -> None:
        """Send the entry: post-only inside the spread, or a taker when maker entries are off."""
        self.transitions.append((now, self.phase.value))
        side, tick = self.pos.side, self.plan.tick
        if not self.cfg.maker_entry:
            self._submit("ET", now, side, self.target, "market")
            self._set(Phase.ENTRY_FALLBACK_TAKER, now)
            return
        off = self.cfg.entry_offset_ticks * tick
        if bid is not None and ask is not None and ask > bid:
            mid = (bid + ask) / 2
            raw = min(mid, bid + off) if side > 0 else max(mid, ask - off)
        else:
            raw = self.pos.signal_price - side * off
        self._submit("EM", now, side, self.target, "limit", passive_price(raw, tick, side), post_only=True)
        self.entry_deadline = now + self.cfg.entry_timeout_ms

    def _entry_fallback(self, now: int) -> None:
        remainder = floor_to(self.target - self.pos.entry_qty, self.plan.step)
        if remainder <= 0 or self.pos.entry_qty >= self.cfg.min_fill_ratio * self.target - 1e-12:
            self._open(now)  # filled enough: the rest is not chased
            return
        theo = self.pos.signal_price
        slippage_bps = abs(self.last_price - theo) / theo * 1e4
        if slippage_bps <= self.cfg.entry_fallback_slippage_bps:
            self._submit("ET", now, self.pos.side, remainder, "market")
            self._set(Phase.ENTRY_FALLBACK_TAKER, now)
        elif self.pos.qty > 0:
            self._open(now)
        else:
            self._close("entry_expired", now)

    def _open(self, now: int) -> None:
        """Entry done: fix SL/TPs around the average entry and place the TP legs."""
        if self.pos.qty <= 0:
            self._close("entry_expired", now)
            return
        p, pos = self.plan, self.pos
        pos.opened_ms = now
        entry, rd, side = pos.avg_entry, pos.risk_distance, pos.side
        self.sl = round_to(entry - side * rd, p.tick)
        q1 = floor_to(pos.qty * p.tp1_fraction, p.step)
        if q1 <= 0 or q1 >= pos.qty:
            q1 = pos.qty
        q2 = round_to(pos.qty - q1, p.step)
        self.legs = [TpLeg("T1", round_to(entry + side * p.tp1_r * rd, p.tick), q1)]
        if q2 > 0:
            self.legs.append(TpLeg("T2", round_to(entry + side * p.tp2_r * rd, p.tick), q2))
        self.timeout_at = now + p.timeout_ms
        self._set(Phase.POSITION_OPEN, now)
        if self.cfg.maker_tp:
            for leg in self.legs:
                self._submit(leg.role, now, -side, leg.qty, "limit", leg.price, post_only=True, reduce_only=True)
                leg.state = "resting"

    # ------------------------------------------------------------ venue events
    def on_fill(self, f: Fill) -> None:
        """Book a fill and advance the machine."""
        role = self.orders.get(f.client_id, "")
        now = f.ts_ms
        if self.phase == Phase.CLOSED:
            self.working.discard(f.client_id)
            return
        self.pos.apply_fill(f)
        if f.remaining <= 0:
            self.working.discard(f.client_id)
        leg = self._leg_of(role)
        if leg is not None:
            leg.filled += f.qty
            if f.liquidity == "maker":
                self.pos.tp_maker_qty += f.qty
            else:
                self.pos.tp_taker_qty += f.qty
            if leg.filled >= leg.qty - 1e-12:
                leg.state = "done"
                if leg.role == "T1":
                    self._breakeven()
        if role == "EM":
            full = self.pos.entry_qty >= self.cfg.min_fill_ratio * self.target - 1e-12
            if f.remaining <= 0 and self.phase == Phase.ENTRY_PENDING_MAKER:
                self._open(now)
            elif full and self.phase == Phase.ENTRY_PENDING_MAKER:
                self.venue.cancel(f.client_id, now)
                self._set(Phase.ENTRY_CANCELING, now)
        elif role == "ET":
            if f.remaining <= 0 and self.phase == Phase.ENTRY_FALLBACK_TAKER:
                self._open(now)
        elif self.pos.entry_qty > 0 and self.pos.qty <= 0:
            self._finish(now)
        elif leg is not None and self.phase == Phase.TP_FALLBACK_TAKER and leg.state == "done":
            self._maybe_back_to_open(now)

    def on_update(self, u: OrderUpdate) -> None:
        """React to accepts, rejects, cancels and lost cancel races."""
        if u.status == "accepted":
            return
        self.working.discard(u.client_id)
        if self.phase == Phase.CLOSED:
            return
        role = self.orders.get(u.client_id, "")
        now = u.ts_ms
        leg = self._leg_of(role)
        if role == "EM":
            if self.phase == Phase.EXIT_CANCELING:
                self._exit_when_quiet(now)
            elif self.phase in (Phase.ENTRY_PENDING_MAKER, Phase.ENTRY_CANCELING):
                self._entry_fallback(now)
        elif role == "ET":
            if self.phase == Phase.EXIT_CANCELING:
                self._exit_when_quiet(now)
            elif self.phase == Phase.ENTRY_FALLBACK_TAKER:
                self._open(now)
        elif leg is not None and leg.state in ("resting", "canceling") and self.phase != Phase.EXIT_CANCELING:
            leg.fallback = True
            self._tp_taker(leg, now)
        elif self.phase == Phase.EXIT_CANCELING:
            self._exit_when_quiet(now)
        elif role == "TM" and self.phase == Phase.TIMEOUT_PENDING:
            self._send_taker_exit(now)
        elif self.phase == Phase.EXIT_TAKER and self.pos.qty > 0 and self.exit_attempt < _MAX_EXIT_RETRIES:
            self.exit_retry = True  # a rejected exit is sent again on the next trade (fresh market data)

    def _tp_taker(self, leg: TpLeg, now: int) -> None:
        """Take the unfilled rest of a TP leg (after a trade-through, or at once without maker TPs)."""
        remaining = round_to(leg.qty - leg.filled, self.plan.step)
        if remaining > 0 and self.pos.qty > 0:
            leg.state = "taker"
            self._submit(f"{leg.role}F", now, -self.pos.side, min(remaining, self.pos.qty), "market",
                         reduce_only=True)
            self._set(Phase.TP_FALLBACK_TAKER, now)
        else:
            leg.state = "done"

    def on_funding(self, c: FundingCharge) -> None:
        self.pos.funding += c.amount

    # ------------------------------------------------------------ market and time
    def on_price(self, now: int, price: float) -> None:
        """A trade at ``price``: stop, TP trade-through and timers."""
        self.last_price = price
        side = self.pos.side
        if self.exit_retry and self.phase == Phase.EXIT_TAKER:
            self.exit_retry = False
            self.exit_attempt += 1
            self._send_taker_exit(now)
            return
        if self.phase in _OPEN_PHASES and (price - self.sl) * side <= 0:
            self.request_exit("sl_be" if self.tp1_done else "sl", now)
            return
        if self.phase in (Phase.POSITION_OPEN, Phase.TP_FALLBACK_TAKER):
            for leg in self.legs:
                if leg.state in ("resting", "waiting") and leg.cross_ts is None and (price - leg.price) * side >= 0:
                    leg.cross_ts = now
        self.on_time(now)

    def on_time(self, now: int) -> None:
        """Fire the timers that are due at ``now``."""
        if self.phase == Phase.ENTRY_PENDING_MAKER and self.entry_deadline is not None and now >= self.entry_deadline:
            self.entry_timed_out = True
            self.venue.cancel(self._id("EM"), now)
            self._set(Phase.ENTRY_CANCELING, now)
        elif self.phase in (Phase.POSITION_OPEN, Phase.TP_FALLBACK_TAKER):
            if self.timeout_at is not None and now >= self.timeout_at:
                self.request_exit("timeout", now)
                return
            for leg in self.legs:
                if leg.cross_ts is None:
                    continue
                if leg.state == "waiting":
                    self._tp_taker(leg, now)
                elif leg.state == "resting" and now >= leg.cross_ts + self.cfg.tp_timeout_ms:
                    leg.state = "canceling"
                    self.venue.cancel(self._id(leg.role), now)
                    self._set(Phase.TP_FALLBACK_TAKER, now)
        elif self.phase == Phase.TIMEOUT_PENDING and self.grace_deadline is not None and now >= self.grace_deadline:
            self.grace_deadline = None
            self.venue.cancel(self._id("TM"), now)

    def next_trigger(self, ts: I64, px: F64, i: int, j: int) -> int:
        """First trade index in ``[i, j)`` at which this machine must act, else ``j``."""
        deadlines: list[int] = []
        if self.phase == Phase.ENTRY_PENDING_MAKER and self.entry_deadline is not None:
            deadlines.append(self.entry_deadline)
        if self.phase in (Phase.POSITION_OPEN, Phase.TP_FALLBACK_TAKER):
            if self.timeout_at is not None:
                deadlines.append(self.timeout_at)
            deadlines.extend(leg.cross_ts + self.cfg.tp_timeout_ms for leg in self.legs
                             if leg.cross_ts is not None and leg.state in ("resting", "waiting"))
        if self.phase == Phase.TIMEOUT_PENDING and self.grace_deadline is not None:
            deadlines.append(self.grace_deadline)
        if self.exit_retry:
            return i
        k = j
        if deadlines:
            k = min(k, i + int(np.searchsorted(ts[i:j], min(deadlines), "left")))
        if k > i and self.phase in _OPEN_PHASES:
            seg = (px[i:k] - self.sl) * self.pos.side <= 0
            for leg in self.legs:
                if leg.cross_ts is None and leg.state in ("resting", "waiting"):
                    seg |= (px[i:k] - leg.price) * self.pos.side >= 0
            if seg.any():
                k = i + int(np.argmax(seg))
        return k

    # ------------------------------------------------------------ exits
    def request_exit(self, reason: ExitReason, now: int) -> None:
        """Close the position for ``reason``: cancel everything working, then exit."""
        if self.phase in (Phase.CLOSED, Phase.EXIT_CANCELING, Phase.EXIT_TAKER):
            return
        if self.phase == Phase.TIMEOUT_PENDING and reason == "timeout":
            return
        self.exit_reason = reason
        self._set(Phase.EXIT_CANCELING, now)
        for cid in sorted(self.working):
            self.venue.cancel(cid, now)
        self._exit_when_quiet(now)

    def _exit_when_quiet(self, now: int) -> None:
        if self.working:
            return
        if self.pos.entry_qty <= 0:
            self._close("entry_expired", now)
        elif self.pos.qty <= 0:
            self._finish(now)
        elif self.exit_reason == "timeout" and self.cfg.timeout_maker and self.grace_deadline is None:
            mid = self.last_price
            self._submit("TM", now, -self.pos.side, self.pos.qty, "limit",
                         passive_price(mid, self.plan.tick, -self.pos.side), post_only=True, reduce_only=True)
            self.grace_deadline = now + self.cfg.timeout_grace_ms
            self._set(Phase.TIMEOUT_PENDING, now)
        else:
            self._send_taker_exit(now)

    def _send_taker_exit(self, now: int) -> None:
        if self.pos.qty <= 0:
            self._finish(now)
            return
        reason = self.exit_reason or "risk"
        suffix = str(self.exit_attempt) if self.exit_attempt else ""
        self._submit(_EXIT_ROLE[reason] + suffix, now, -self.pos.side, self.pos.qty, "market", reduce_only=True)
        self._set(Phase.EXIT_TAKER, now)

    def _finish(self, now: int) -> None:
        """Flat after being open: the exit reason is the exit path taken, else TP."""
        self._close(self.exit_reason or "tp", now)

    def _close(self, reason: ExitReason, now: int) -> None:
        for cid in sorted(self.working):
            self.venue.cancel(cid, now)
        self.pos.exit_reason = reason
        self.pos.closed_ms = now
        self._set(Phase.CLOSED, now)

    def _breakeven(self) -> None:
        if self.tp1_done:
            return
        self.tp1_done = True
        entry = self.pos.avg_entry
        be = entry * (1 + self.pos.side * self.cfg.breakeven_offset_bps / 1e4)
        self.sl = passive_price(be, self.plan.tick, -self.pos.side) if self.cfg.breakeven_offset_bps else entry

    def _maybe_back_to_open(self, now: int) -> None:
        if all(leg.state in ("done", "resting", "waiting") for leg in self.legs):
            self._set(Phase.POSITION_OPEN, now)

    def _leg_of(self, role: str) -> TpLeg | None:
        base = role[:-1] if role.endswith("F") else role
        for leg in self.legs:
            if leg.role == base:
                return leg
        return None

    def state(self) -> dict[str, object]:
        """A comparable summary of the machine (used by the crash-and-replay test)."""
        p = self.pos
        return {
            "phase": self.phase.value, "qty": p.qty, "entry_qty": p.entry_qty, "avg_entry": p.avg_entry,
            "price_pnl": p.price_pnl, "fees": p.fees, "funding": p.funding, "sl": self.sl,
            "legs": [(g.role, g.price, g.qty, g.filled, g.state) for g in self.legs],
            "working": sorted(self.working), "exit_reason": p.exit_reason, "transitions": list(self.transitions),
        }
