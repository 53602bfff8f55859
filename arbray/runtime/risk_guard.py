"""``RiskGuardCore``: the system-wide circuit breaker, fail-closed.

It watches what no single strategy can see — every symbol's data freshness, the SymbolState actors'
heartbeats, the portfolio's realised R today, venue errors — and the operators' switches
(block-new, resume, emergency close, per-strategy kill), and issues a ``Permission``: ACTIVE,
REDUCING (no new exposure) or HALTED (no new exposure, and an emergency close flattens everything
once), plus the symbols and strategies that may open nothing. The PositionManager treats a
permission older than its TTL as HALTED, so a dead guard stops trading instead of waving it
through. Each strategy's own limits (daily loss, loss streak, hold time, notional) stay in its
``RiskEngine`` inside the PositionManager.

Rules are one declarative table; the state is the most severe rule that fires. The manual switches,
the kill list, the flatten counter and today's R persist through ``to_state``/``from_state``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from arbray.clock import Clock, SystemClock
from arbray.runtime.control import RiskCommand
from arbray.runtime.position_manager import Permission
from arbray.scoring.config import FrozenModel

DAY_MS = 86_400_000
SEVERITY = {"ACTIVE": 0, "REDUCING": 1, "HALTED": 2}


class RiskGuardConfig(FrozenModel):
    """Thresholds of the system-wide rules."""

    permission_ttl_ms: int = Field(5_000, ge=500, le=600_000, description="how long a permission stays valid")
    stale_data_ms: int = Field(30_000, ge=1_000, le=3_600_000, description="a symbol this silent opens nothing")
    heartbeat_timeout_ms: int = Field(15_000, ge=1_000, le=3_600_000, description="a silent source blocks its symbols")
    require_fresh_data: bool = Field(True, description="block a symbol without recent market data (wall clock); "
                                     "off for replays, whose pace is not the wall clock's")
    daily_loss_limit_r: float = Field(-15.0, le=0, ge=-1_000, description="portfolio realised R per UTC day → HALTED")
    max_venue_errors: int = Field(5, ge=1, le=10_000, description="venue errors within the window → REDUCING")
    venue_error_window_ms: int = Field(60_000, ge=1_000, le=3_600_000)
    history_kept: int = Field(500, ge=10, le=100_000)


@dataclass
class GuardInputs:
    """What the rules read."""

    heartbeats: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)  # source → (ms, symbols)
    last_message: dict[str, int | None] = field(default_factory=dict)  # symbol → wall ms of its last message
    day: int = -1
    day_r: float = 0.0
    venue_errors: deque[int] = field(default_factory=deque)
    block_new: str | None = None
    halted: str | None = None  # emergency close reason, until resume
    killed: dict[str, str] = field(default_factory=dict)
    killed_ms: dict[str, int] = field(default_factory=dict)
    flatten_seq: int = 0


@dataclass(frozen=True, slots=True)
class GuardRule:
    """A system-wide rule: the state it imposes while ``check`` returns a reason."""

    name: str
    state: str
    check: Callable[[GuardInputs, RiskGuardConfig, int], str | None]


def _halted(x: GuardInputs, c: RiskGuardConfig, now: int) -> str | None:
    return f"emergency close: {x.halted}" if x.halted is not None else None


def _daily_loss(x: GuardInputs, c: RiskGuardConfig, now: int) -> str | None:
    if x.day == now // DAY_MS and x.day_r <= c.daily_loss_limit_r:
        return f"portfolio {x.day_r:.2f}R today <= {c.daily_loss_limit_r}R"
    return None


def _block_new(x: GuardInputs, c: RiskGuardConfig, now: int) -> str | None:
    return f"block-new: {x.block_new}" if x.block_new is not None else None


def _venue_errors(x: GuardInputs, c: RiskGuardConfig, now: int) -> str | None:
    n = sum(1 for t in x.venue_errors if t > now - c.venue_error_window_ms)
    return f"{n} venue errors in {c.venue_error_window_ms} ms" if n >= c.max_venue_errors else None


RULES: tuple[GuardRule, ...] = (
    GuardRule("emergency_close", "HALTED", _halted),
    GuardRule("portfolio_daily_loss", "HALTED", _daily_loss),
    GuardRule("block_new", "REDUCING", _block_new),
    GuardRule("venue_errors", "REDUCING", _venue_errors),
)


class RiskGuardCore:
    """System-wide rules → ``Permission`` (see the module docstring)."""

    def __init__(self, symbols: Mapping[str, str] | None = None, config: RiskGuardConfig | None = None,
                 clock: Clock | None = None) -> None:
        """``symbols`` maps every traded symbol to the source (SymbolState) that feeds it."""
        self.config = config or RiskGuardConfig()
        self.clock = clock or SystemClock()
        self.sources = dict(symbols or {})
        self.x = GuardInputs(last_message=dict.fromkeys(self.sources))
        self.history: deque[dict[str, Any]] = deque(maxlen=self.config.history_kept)
        self.state, self.since_ms = "HALTED", self.clock.now_ms()
        self.reasons: tuple[str, ...] = ("starting",)
        self._last_key: tuple[Any, ...] | None = None

    # ---- inputs --------------------------------------------------------------------------------
    def on_heartbeat(self, source: str, health: Mapping[str, Mapping[str, Any]]) -> None:
        """A SymbolState's report: per symbol its last message's wall time (``last_message_ms``)."""
        now = self.clock.now_ms()
        self.x.heartbeats[source] = (now, tuple(health))
        for sym, h in health.items():
            self.sources.setdefault(sym, source)
            self.x.last_message[sym] = h.get("last_message_ms")

    def on_trade_closed(self, strategy: str, net_r: float, exit_ms: int) -> None:
        day = exit_ms // DAY_MS
        if day != self.x.day:
            self.x.day, self.x.day_r = day, 0.0
        self.x.day_r += net_r

    def on_venue_error(self, kind: str) -> None:
        now = self.clock.now_ms()
        q = self.x.venue_errors
        q.append(now)
        while q and q[0] <= now - self.config.venue_error_window_ms:
            q.popleft()

    def command(self, command: RiskCommand, reason: str, source: str) -> None:
        """An operator's switch; recorded in the history with who gave it."""
        if command == "block_new":
            self.x.block_new = reason or "manual"
        elif command == "resume":
            self.x.block_new = self.x.halted = None
            self.x.killed.clear()
            self.x.killed_ms.clear()
        elif command == "emergency_close":
            self.x.halted = reason or "manual"
            self.x.flatten_seq += 1
        else:
            raise ValueError(f"unknown risk command {command!r}")
        self._record(f"command:{command}", source, reason)

    def kill(self, strategy: str, reason: str, source: str) -> None:
        self.x.killed[strategy] = reason or "manual"
        self.x.killed_ms[strategy] = self.clock.now_ms()
        self._record("command:kill", source, f"{strategy}: {reason}")

    def on_resumed(self, strategy: str, resumed_ms: int) -> bool:
        """The strategy was set running again in the journal after its kill: the kill is lifted."""
        if strategy in self.x.killed and resumed_ms > self.x.killed_ms.get(strategy, 0):
            del self.x.killed[strategy]
            self.x.killed_ms.pop(strategy, None)
            self._record("resume:strategy", "journal", strategy)
            return True
        return False

    # ---- evaluation ----------------------------------------------------------------------------
    def evaluate(self) -> Permission:
        """The permission now (and a history entry when the state or its reasons changed)."""
        now = self.clock.now_ms()
        c, x = self.config, self.x
        state, reasons = "ACTIVE", []
        for rule in RULES:
            why = rule.check(x, c, now)
            if why is not None:
                reasons.append(f"{rule.name}: {why}")
                if SEVERITY[rule.state] > SEVERITY[state]:
                    state = rule.state
        blocked: list[tuple[str, str]] = []
        for sym in sorted(self.sources):
            src = self.sources[sym]
            beat = x.heartbeats.get(src)
            last = x.last_message.get(sym)
            if beat is None or now - beat[0] > c.heartbeat_timeout_ms:
                blocked.append((sym, f"no heartbeat from {src}"))
            elif not c.require_fresh_data:
                continue
            elif last is None:
                blocked.append((sym, "no market data yet"))
            elif now - last > c.stale_data_ms:
                blocked.append((sym, f"market data {now - last} ms old"))
        key = (state, tuple(reasons), tuple(blocked), tuple(sorted(x.killed.items())))
        if key != self._last_key:
            if state != self.state:
                self.since_ms = now
            self.state, self.reasons = state, tuple(reasons)
            self._last_key = key
            self.history.append({"ts_ms": now, "state": state, "reasons": list(reasons),
                                 "blocked_symbols": [list(b) for b in blocked], "killed": dict(x.killed),
                                 "source": "rules"})
        return Permission(state, tuple(reasons), tuple(blocked), tuple(sorted(x.killed.items())), x.flatten_seq, now)

    def _record(self, event: str, source: str, detail: str) -> None:
        self.history.append({"ts_ms": self.clock.now_ms(), "state": self.state, "reasons": [detail],
                             "event": event, "source": source})

    def view(self) -> dict[str, Any]:
        """``RuntimeControl.risk()`` minus the per-strategy states (the PositionManager has those)."""
        p = self.evaluate()
        return {"state": p.state, "reasons": list(p.reasons), "since_ms": self.since_ms, "issued_ms": p.issued_ms,
                "ttl_ms": self.config.permission_ttl_ms,
                "manual": {"block_new": self.x.block_new is not None, "halted": self.x.halted is not None,
                           "killed": sorted(self.x.killed)},
                "blocked_symbols": {s: r for s, r in p.blocked_symbols}, "day_r": self.x.day_r,
                "history": list(self.history)[-100:]}

    # ---- persistence ---------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        x = self.x
        return {"block_new": x.block_new, "halted": x.halted, "killed": dict(x.killed),
                "killed_ms": dict(x.killed_ms), "flatten_seq": x.flatten_seq, "day": x.day, "day_r": x.day_r}

    def from_state(self, d: Mapping[str, Any]) -> None:
        """Restore the persisted switches (a restarted guard keeps a halt and every kill)."""
        x = self.x
        x.block_new, x.halted = d.get("block_new"), d.get("halted")
        x.killed = dict(d.get("killed") or {})
        x.killed_ms = {k: int(v) for k, v in (d.get("killed_ms") or {}).items()}
        x.flatten_seq = int(d.get("flatten_seq") or 0)
        x.day, x.day_r = int(d.get("day", -1)), float(d.get("day_r", 0.0))
