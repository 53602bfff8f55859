"""The runtime on Ray: one thin actor per service of ``arbray.runtime.services``.

Every actor is an asyncio actor with ``num_cpus=0`` (the 2-core default machine runs all of them
beside the simulator), named in one namespace so the control API finds them, and created with
``max_restarts=-1``: Ray restarts a dead actor with the same arguments, and the actor boots itself
(in ``__init__``, on the running event loop) — the Journal reopens the store, the PositionManager
replays its input log, the SymbolState re-warms from the journal's trades and the feed fills the
gap by REST, the RiskGuard restores its switches. Calls that arrive during a boot wait for it.

Ports between actors are handles (``_Port``); a call that fails because the other side is
restarting raises, and the services' own retry logic (SymbolState's outbox, the guard's publisher)
takes over.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import ray

from arbray.features.snapshot import FeatureSnapshot
from arbray.marketdata.events import Kline, TradeBatch
from arbray.runtime.config import RunConfig
from arbray.runtime.journal import InputRow, JournalCore
from arbray.runtime.position_manager import Outputs, Permission, StreamItem
from arbray.runtime.risk_guard import RiskGuardCore
from arbray.runtime.services import (
    GuardPort,
    JournalPort,
    JournalService,
    PermissionPort,
    PositionManagerService,
    PositionPort,
    RiskGuardService,
    StrategyService,
    SymbolStateService,
)
from arbray.runtime.symbol_state import TradeSlice
from arbray.scoring.result import ScoreResult

from .metrics import RayMetrics

NAMESPACE = "arbray"
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
ACTOR_OPTIONS: dict[str, Any] = {"num_cpus": 0, "max_restarts": -1, "max_task_retries": 0,
                                 "max_concurrency": 1000}
REWARM_MS = 25 * 3_600_000  # journaled trades a restarted SymbolState reloads (the 24 h windows + margin)
T = TypeVar("T")
log = logging.getLogger("arbray.actors")


def free_port() -> int:
    """A free loopback TCP port (for servers that must keep their port across restarts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Booting:
    """Runs an actor's async boot on its event loop from ``__init__``; methods ``await self.ready()``.

    A restarted incarnation counts itself in ``arbray_actor_restarts``.
    """

    metrics: RayMetrics

    def _boot_in_background(self, boot: Callable[[], Awaitable[None]], name: str) -> None:
        self.metrics = RayMetrics()
        if ray.get_runtime_context().was_current_actor_reconstructed:
            self.metrics.inc("arbray_actor_restarts", actor=name)
        self._booted = asyncio.Event()
        self._boot_error: BaseException | None = None

        async def run() -> None:
            try:
                await boot()
            except BaseException as exc:
                self._boot_error = exc
                log.exception("actor boot failed")
                raise
            finally:
                self._booted.set()
        self._boot_task = asyncio.get_running_loop().create_task(run())

    async def ready(self) -> bool:
        await self._booted.wait()
        if self._boot_error is not None:
            raise RuntimeError(f"boot failed: {self._boot_error!r}")
        return True

    def pid(self) -> int:
        return os.getpid()


class _Port:
    """An actor handle as a service port: ``await port.method(...)`` calls ``handle.method.remote``."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._handle: Any = None

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any) -> Any:
            if self._handle is None:
                self._handle = ray.get_actor(self._name, namespace=NAMESPACE)
            return await getattr(self._handle, method).remote(*args)
        return call


def _journal() -> JournalPort:
    return cast(JournalPort, _Port("journal"))


def _guard() -> GuardPort:
    return cast(GuardPort, _Port("risk_guard"))


def _pm() -> PositionPort:
    return cast(PositionPort, _Port("position_manager"))


async def _open_store(dsn: str) -> Any:
    from arbray.storage import open_store

    return await open_store(dsn, migrate=False)


# ------------------------------------------------------------------------------------------ journal
class _JournalActor(_Booting):
    def __init__(self, dsn: str, run_id: str, instance: str) -> None:
        self.svc: JournalService | None = None

        async def boot() -> None:
            store = await _open_store(dsn)
            self.svc = JournalService(JournalCore(store, run_id, instance))
        self._boot_in_background(boot, "journal")

    async def fence(self, epoch: int) -> None:
        await self.ready()
        assert self.svc is not None
        await self.svc.fence(epoch)

    async def record(self, inputs: list[InputRow], outputs: Outputs | None, epoch: int = 0) -> None:
        await self.ready()
        assert self.svc is not None
        await self.svc.record(inputs, outputs, epoch)

    async def scores(self, snap: FeatureSnapshot, results: list[ScoreResult]) -> None:
        await self.ready()
        assert self.svc is not None
        await self.svc.scores(snap, results)

    async def agg_trades(self, batch: TradeSlice) -> None:
        await self.ready()
        assert self.svc is not None
        await self.svc.agg_trades(batch)

    async def risk(self, state: str, detail: dict[str, Any]) -> None:
        await self.ready()
        assert self.svc is not None
        await self.svc.risk(state, detail)

    async def flush(self) -> None:
        await self.ready()
        assert self.svc is not None
        await self.svc.core.close()

    async def stats(self) -> dict[str, Any]:
        await self.ready()
        assert self.svc is not None
        return self.svc.stats()


# ------------------------------------------------------------------------------------------ strategy
class _StrategyActor(_Booting):
    """Stateless scoring of the journal's running strategies (a pool member)."""

    def __init__(self, dsn: str, symbols: list[str], reload_every_ms: int,
                 ev_gates: dict[str, Any] | None = None) -> None:
        self.svc: StrategyService | None = None

        async def boot() -> None:
            from arbray.runtime.scoring import Calibrated

            store = await _open_store(dsn)
            self.svc = StrategyService(store, _journal(), symbols, post=[Calibrated(ev_gates)],
                                       reload_every_ms=reload_every_ms, metrics=self.metrics)
            await self.svc.start()
        self._boot_in_background(boot, "strategy")

    async def score(self, snap: FeatureSnapshot, extras: dict[str, float | None]) -> list[ScoreResult]:
        await self.ready()
        assert self.svc is not None
        return await self.svc.score(snap, extras)

    async def reload(self) -> str:
        await self.ready()
        assert self.svc is not None
        return await self.svc.reload(force=True)

    async def stats(self) -> dict[str, Any]:
        await self.ready()
        assert self.svc is not None
        return self.svc.stats()


# ------------------------------------------------------------------------------------------ position manager
class _PositionManagerActor(_Booting):
    def __init__(self, config_json: dict[str, Any], dsn: str, instance: str, flatten_baseline: int,
                 started_ms: int, endpoints: tuple[str, str, str | None],
                 sim_keys: tuple[str, str] | None = None) -> None:
        cfg = RunConfig.model_validate(config_json)
        self.svc: PositionManagerService | None = None
        self.info = {"mode": cfg.mode, "source": cfg.source, "instance": instance, "started_ms": started_ms}

        async def boot() -> None:
            from arbray.feeds.config import Endpoints
            from arbray.runtime.local import make_venue

            store = await _open_store(dsn)
            venue = make_venue(cfg, instance, Endpoints(*endpoints), sim_keys)
            self.svc = PositionManagerService(cfg.run_id, instance, cfg.position_manager, store, _journal(),
                                              cfg.symbols, guard=_guard(), venue=venue,
                                              flatten_baseline=flatten_baseline, metrics=self.metrics)
            await self.svc.start()
        self._boot_in_background(boot, "position_manager")

    async def _svc(self) -> PositionManagerService:
        await self.ready()
        assert self.svc is not None
        return self.svc

    async def submit(self, source: str, items: list[StreamItem]) -> dict[str, Any]:
        return await (await self._svc()).submit(source, items)

    async def run_info(self) -> dict[str, Any]:
        return self.info

    async def stream_positions(self) -> dict[str, dict[str, int]]:
        return await (await self._svc()).stream_positions()

    async def permission(self, p: Permission) -> None:
        await (await self._svc()).permission(p)

    async def add_balance(self, strategy: str, amount: float, ref: str) -> dict[str, Any]:
        return await (await self._svc()).add_balance(strategy, amount, ref)

    async def reload_strategies(self) -> dict[str, Any]:
        return await (await self._svc()).reload_strategies()

    async def positions(self) -> list[dict[str, Any]]:
        return (await self._svc()).positions()

    async def accounts(self) -> dict[str, dict[str, Any]]:
        return (await self._svc()).accounts()

    async def strategy_risk(self) -> dict[str, dict[str, Any]]:
        return (await self._svc()).strategy_risk()

    async def flush(self) -> None:
        await (await self._svc()).flush()

    async def stats(self) -> dict[str, Any]:
        return (await self._svc()).stats()

    async def order_latency(self) -> list[tuple[str, int, int, str]]:
        """(engine client id, trigger receive ns or 0, submit ns, placing item kind) of this incarnation's orders."""
        return list((await self._svc()).order_latency)


# ------------------------------------------------------------------------------------------ risk guard
class _RiskGuardActor(_Booting):
    def __init__(self, config_json: dict[str, Any], dsn: str) -> None:
        cfg = RunConfig.model_validate(config_json)
        self.svc: RiskGuardService | None = None

        async def boot() -> None:
            store = await _open_store(dsn)
            core = RiskGuardCore({s: n for n, syms in cfg.groups() for s in syms}, cfg.guard)
            rows = await store.risk_state()
            if "global" in rows and isinstance(rows["global"].get("detail"), dict):
                core.from_state(rows["global"]["detail"])
            self.svc = RiskGuardService(core, cast(PermissionPort, _Port("position_manager")), _journal(), store=store,
                                        metrics=self.metrics)
            await self.svc.start()
        self._boot_in_background(boot, "risk_guard")

    async def _svc(self) -> RiskGuardService:
        await self.ready()
        assert self.svc is not None
        return self.svc

    async def heartbeat(self, source: str, health: dict[str, dict[str, Any]]) -> None:
        await (await self._svc()).heartbeat(source, health)

    async def trades_closed(self, closed: list[tuple[str, float, int]]) -> None:
        await (await self._svc()).trades_closed(closed)

    async def command(self, command: Any, reason: str, source: str) -> dict[str, Any]:
        return await (await self._svc()).command(command, reason, source)

    async def kill(self, strategy: str, reason: str, source: str) -> dict[str, Any]:
        return await (await self._svc()).kill(strategy, reason, source)

    async def view(self) -> dict[str, Any]:
        return (await self._svc()).view()

    async def flatten_seq(self) -> int:
        return (await self._svc()).core.x.flatten_seq


# ------------------------------------------------------------------------------------------ symbol state
class _ScorerPort:
    """Routes a symbol's snapshot to the Strategy actor that serves it."""

    def __init__(self, assignment: dict[str, str]) -> None:
        self._ports = {sym: _Port(name) for sym, name in assignment.items()}

    async def score(self, snap: FeatureSnapshot, extras: dict[str, float | None]) -> list[ScoreResult]:
        result: list[ScoreResult] = await self._ports[snap.symbol].score(snap, extras)
        return result


class _SymbolStateActor(_Booting):
    def __init__(self, config_json: dict[str, Any], dsn: str, name: str, symbols: list[str],
                 assignment: dict[str, str], endpoints: tuple[str, str, str | None]) -> None:
        cfg = RunConfig.model_validate(config_json)
        self.svc: SymbolStateService | None = None
        self.name = name

        async def boot() -> None:
            from arbray.feeds.client import MarketFeed
            from arbray.feeds.config import Endpoints, FeedConfig
            from arbray.feeds.rest import BinanceRest
            from arbray.runtime.local import feed_config, fetch_warmup_klines

            ep = Endpoints(endpoints[0], endpoints[1], endpoints[2])
            store = await _open_store(dsn)
            warm: dict[str, tuple[list[Kline] | None, TradeBatch | None]] = {}
            last_ids: dict[str, int] = {}
            rest = BinanceRest(FeedConfig.for_endpoints(ep, tuple(symbols)).rest_config())
            try:
                for sym in symbols:
                    klines = await fetch_warmup_klines(rest, sym) if cfg.warmup_klines and cfg.source != "replay" \
                        else None
                    trades = await _journal_trades(store, sym)
                    if trades is not None:
                        last_ids[sym] = int(trades.rows["trade_id"][-1])
                    warm[sym] = (klines, trades)
            finally:
                await rest.close()

            def make_feed(core: Any) -> MarketFeed:
                feed = MarketFeed(feed_config(cfg, ep, symbols), core)
                for sym, tid in last_ids.items():  # continue exactly after the journal: REST fills the gap
                    feed.resume_after(sym, tid)
                return feed

            self.svc = SymbolStateService(name, symbols, cfg.symbol_state, _ScorerPort(assignment),
                                          _pm(), _journal(), _guard(),
                                          feed_factory=make_feed, metrics=self.metrics)
            await self.svc.start(warm)
        self._boot_in_background(boot, "symbol_state")

    async def _svc(self) -> SymbolStateService:
        await self.ready()
        assert self.svc is not None
        return self.svc

    async def stats(self) -> dict[str, Any]:
        return (await self._svc()).stats()

    async def health(self) -> dict[str, dict[str, Any]]:
        return (await self._svc()).core.health()

    async def snapshots(self) -> dict[str, dict[str, Any]]:
        return (await self._svc()).core.snapshots()

    async def market(self, symbol: str) -> dict[str, Any]:
        return (await self._svc()).core.market(symbol)

    async def stop(self) -> None:
        await (await self._svc()).stop()


async def _journal_trades(store: Any, symbol: str) -> TradeBatch | None:
    """The journal's aggTrades of ``symbol`` of the last 25 h (a restarted SymbolState's warm-up)."""
    rows = await store.agg_trades_since(symbol, REWARM_MS)
    if not rows:
        return None
    return TradeBatch.from_columns(symbol, [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
                                   [r[4] for r in rows], [r[0] for r in rows])


# ------------------------------------------------------------------------------------------ simulator
class _SimExchangeActor(_Booting):
    """The exchange simulator on a fixed loopback port (kept across a restart)."""

    def __init__(self, config_json: dict[str, Any], port: int, sim_keys: tuple[str, str] | None = None) -> None:
        cfg = RunConfig.model_validate(config_json)
        self.server: Any = None

        async def boot() -> None:
            from arbray.runtime.local import sim_extensions
            from arbray.sim.exchange import SimExchange, SimExchangeConfig
            from arbray.sim.faults import FaultConfig
            from arbray.sim.server import SimServer, SimServerConfig

            s = cfg.sim
            fields: dict[str, Any] = {"seed": s.seed, "speed": s.speed, "history_hours": s.history_hours,
                                      "rate_scale": s.rate_scale, "symbols": cfg.symbols}
            if cfg.source == "replay":
                fields["replay"] = s.replay
            exchange = SimExchange(SimExchangeConfig(**fields))
            faults = FaultConfig.from_file(s.faults) if s.faults else FaultConfig()
            if cfg.source == "replay":
                exchange.pause()  # the driver resumes once the runtime is ready to take every message
            self.server = SimServer(exchange, SimServerConfig(port=port, faults=faults),
                                    extensions=sim_extensions(exchange, sim_keys))
            await self.server.start()
        self._boot_in_background(boot, "sim_exchange")

    async def resume(self, speed: float | str | None = None) -> None:
        """Unpause, at ``speed`` (market seconds per wall second, or 'max') if given."""
        await self.ready()
        if speed is not None:
            self.server.exchange.set_speed(speed)
        self.server.exchange.resume()

    async def urls(self) -> tuple[str, str]:
        await self.ready()
        return self.server.rest_url, self.server.ws_url

    async def state(self) -> dict[str, Any]:
        await self.ready()
        result: dict[str, Any] = self.server.state()
        return result

    async def order_arrivals(self) -> dict[str, int]:
        """newClientOrderId → wall ns each order reached the simulator's trading API (mode sim)."""
        await self.ready()
        for ext in self.server.extensions:
            arrivals = getattr(ext, "arrivals", None)
            if arrivals is not None:
                return dict(arrivals)
        return {}

    async def stop(self) -> None:
        await self.ready()
        await self.server.stop()


# The actor classes (Ray wraps each plain class above).
JournalActor = ray.remote(_JournalActor)
StrategyActor = ray.remote(_StrategyActor)
PositionManagerActor = ray.remote(_PositionManagerActor)
RiskGuardActor = ray.remote(_RiskGuardActor)
SymbolStateActor = ray.remote(_SymbolStateActor)
SimExchangeActor = ray.remote(_SimExchangeActor)


def get(name: str) -> Any:
    """The named runtime actor."""
    return ray.get_actor(name, namespace=NAMESPACE)


async def call(name: str, method: str, *args: Any, timeout_s: float = 10.0) -> Any:
    """``await`` one actor method by name with a deadline."""
    return await asyncio.wait_for(getattr(get(name), method).remote(*args), timeout_s)
