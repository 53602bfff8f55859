"""What the control plane may ask of a running arbray: one async interface, two implementations.

The FastAPI app (``arbray.api``) depends only on ``RuntimeControl``. On Ray, ``arbray.actors.control``
implements it with named actor handles; in-process (tests, a single-process run) the runtime core
implements it directly. Everything returned is plain JSON-ready data (dicts, lists, numbers), so it
crosses an actor boundary unchanged.

Strategy identity: the runtime and every ``ScoreResult`` use the config's ``strategy_id`` (a unique
ASCII name, the journal's ``slug``); the journal's ``strategies.strategy_id`` is a UUID
(``arbray.backtest.journal.strategy_uuid("live", name)``). Methods here take the name.

Lifecycle semantics (digest §8.1): only ``running`` strategies are scored and may open positions;
``paused`` and ``deprecated`` ones are not scored, but their open positions keep being managed to
their exits. The journal is the source of truth for configs and status; the runtime re-reads it
every evaluation cycle, and ``reload_strategies`` makes it re-read now.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

RiskCommand = Literal["block_new", "resume", "emergency_close"]
RISK_STATES = ("ACTIVE", "REDUCING", "HALTED")


class RuntimeUnavailable(RuntimeError):
    """The runtime (or the actor a call needs) is not running or did not answer in time."""


class RuntimeControl(Protocol):
    """The running engine, as the control API sees it."""

    async def health(self) -> dict[str, Any]:
        """Liveness and readiness.

        ``{"ready": bool, "mode": "paper"|"sim"|"live", "started_ms": int,
        "actors": {name: {"alive": bool, "restarts": int, "last_heartbeat_ms": int | None}},
        "data": {symbol: {"last_message_ms": int | None, "fresh": bool, "book_state": str,
        "warming_up": bool}}}`` — ready means every actor is alive and every symbol's data is fresh.
        """

    async def stats(self) -> dict[str, Any]:
        """Counters since start: ``messages``, ``rejects`` (by reason), ``snapshots``, ``scores``,
        ``signals``, ``orders``, ``fills``, ``trades``, ``book_resyncs``, ``actor_restarts``, ``risk_state``."""

    async def snapshots(self) -> dict[str, dict[str, Any]]:
        """The latest ``FeatureSnapshot.to_dict()`` per symbol (plus ``"extras"``: CVD windows the
        snapshot does not carry, e.g. ``cvd_8h``)."""

    async def market(self, symbol: str) -> dict[str, Any]:
        """One symbol in detail: ``{"snapshot": {...}, "book": {"bids": [[p, q], …], "asks": […],
        "last_update_id": int, "state": str}, "liquidations": [{"ts_ms", "side", "price", "qty",
        "usd"}], "series": [{"ts_ms", "price", "cvd_5m", "cvd_1h"}]}`` (series: one point per
        snapshot, last 24 h). Raises ``KeyError`` for a symbol the runtime does not trade."""

    async def positions(self) -> list[dict[str, Any]]:
        """Open positions with live marks: ``{"strategy_id", "position_id", "symbol", "side",
        "qty", "entry_price", "mark_price", "opened_ms", "risk_usd", "risk_distance",
        "floating_pnl", "floating_r", "phase", "working_orders": [{"client_order_id", "kind",
        "side", "price", "qty", "filled"}]}``."""

    async def accounts(self) -> dict[str, dict[str, Any]]:
        """Per strategy: ``{"balance", "initial_balance", "realised", "fees", "funding",
        "open_positions", "trades", "net_r"}`` as the PositionManager holds them."""

    async def risk(self) -> dict[str, Any]:
        """``{"state": "ACTIVE"|"REDUCING"|"HALTED", "reasons": [str], "since_ms": int,
        "issued_ms": int, "ttl_ms": int, "manual": {"block_new": bool, "killed": [strategy]},
        "strategies": {strategy: {"state", "reasons"}}, "history": [{"ts_ms", "state",
        "reasons", "source"}]}``."""

    async def risk_command(self, command: RiskCommand, reason: str, source: str) -> dict[str, Any]:
        """``block_new`` (no new exposure), ``resume`` (clear manual blocks), ``emergency_close``
        (flatten every position now, then HALTED). Returns the new ``risk()`` state."""

    async def kill_strategy(self, strategy: str, reason: str, source: str) -> dict[str, Any]:
        """Stop one strategy now: close its positions by taker and refuse its new entries until
        resumed (``risk_command("resume", …)`` or the strategy's resume). Returns ``risk()``."""

    async def reload_strategies(self) -> dict[str, Any]:
        """Re-read configs and statuses from the journal now; ``{"version": int, "running": [names]}``."""

    async def add_balance(self, strategy: str, amount: float, ref: str) -> dict[str, Any]:
        """Credit ``amount`` to a strategy's account (idempotent per ``ref``); returns ``accounts()[strategy]``."""

    async def cluster(self) -> dict[str, Any]:
        """Ray cluster summary: ``{"nodes": [{"node_id", "alive", "resources"}], "resources":
        {"total", "available"}, "actors": [{"name", "state", "restarts", "pid"}]}``."""
