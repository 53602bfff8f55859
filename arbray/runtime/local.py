"""``LocalRuntime``: the whole runtime in one process and one event loop, without Ray.

The same services the actors run (``arbray.runtime.services``), wired with direct ports: the
simulator (when the source is ``sim`` or ``replay``) on loopback, one ``MarketFeed`` per SymbolState
group, the Strategy, PositionManager, RiskGuard and Journal services. It implements
``RuntimeControl``, so the control API runs against it in tests, and it is what the Ray runtime
must behave like.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence
from typing import Any

from arbray.clock import Clock, SystemClock
from arbray.feeds.client import MarketFeed
from arbray.feeds.config import BINANCE_PRODUCTION, BINANCE_TESTNET, Endpoints, FeedConfig
from arbray.feeds.rest import BinanceRest
from arbray.marketdata.events import Kline
from arbray.runtime.config import RunConfig
from arbray.runtime.control import RiskCommand, RuntimeUnavailable
from arbray.runtime.journal import JournalCore
from arbray.runtime.position_manager import PositionManagerConfig
from arbray.runtime.risk_guard import RiskGuardCore
from arbray.runtime.scoring import Calibrated
from arbray.runtime.services import (
    JournalService,
    PositionManagerService,
    RiskGuardService,
    StrategyService,
    SymbolStateService,
)
from arbray.runtime.strategies import register_strategies
from arbray.runtime.symbol_state import SymbolStateCore
from arbray.scoring.config import StrategyConfig
from arbray.scoring.presets import load_presets, load_strategies
from arbray.storage.base import Store

WARMUP_KLINES = (("5m", 300), ("1h", 100))
"""Closed klines fetched per symbol at start: enough for ATR(14) and its percentile history."""


async def wait_until(check: Any, timeout_s: float, what: str) -> None:
    """Poll ``check()`` (sync or async) every 20 ms until it is true; ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        ok = check()
        if asyncio.iscoroutine(ok):
            ok = await ok
        if ok:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.02)


def new_instance_id(now_ms: int) -> str:
    """A fresh, sortable instance id: ``r<UTC time>-<random>``."""
    return time.strftime("r%Y%m%dT%H%M%SZ", time.gmtime(now_ms / 1000)) + "-" + secrets.token_hex(3)


def run_strategies(config: RunConfig) -> list[StrategyConfig]:
    """The strategy configs a run registers: the named presets/files, or every preset for its symbols."""
    out = [c for ref in config.strategies for c in load_strategies(ref)] if config.strategies else load_presets()
    return [c for c in out if set(c.applies_to) & set(config.symbols)]


def endpoints_for(config: RunConfig, sim_urls: tuple[str, str] | None) -> Endpoints:
    """Where the feed connects: the run's simulator, or Binance (preset or overridden URLs)."""
    if sim_urls is not None:
        rest, ws = sim_urls
        return Endpoints(ws, rest, rest)
    b = config.binance
    base = BINANCE_TESTNET if b.testnet else BINANCE_PRODUCTION
    return Endpoints(b.ws_base or base.ws_base, b.rest_base or base.rest_base, b.spot_rest_base or base.spot_rest_base)


def sim_credentials() -> tuple[str, str]:
    """A fresh API key pair for the run's own simulator account (never stored, never printed)."""
    return secrets.token_hex(32), secrets.token_hex(32)


def make_venue(config: RunConfig, instance: str, endpoints: Endpoints,
               sim_keys: tuple[str, str] | None) -> Any:
    """The order venue of mode ``sim`` (the simulator's trading API) or ``live`` (Binance); None for paper."""
    if config.mode == "paper":
        return None
    from arbray.venue.binance import BinanceVenue, BinanceVenueConfig
    from arbray.venue.credentials import BinanceCredentials

    prefix = "a" + instance.rsplit("-", 1)[-1][:6]  # per instance: engine ids restart with every run
    vc = config.venue
    if config.mode == "sim":
        if sim_keys is None:
            raise ValueError("mode 'sim' needs the simulator's account keys")
        creds = BinanceCredentials(*sim_keys)
        cfg = BinanceVenueConfig(rest_base=endpoints.rest_base, ws_base=endpoints.ws_base, client_id_prefix=prefix,
                                 reconcile_interval_s=vc.reconcile_interval_s)
    else:
        creds = (BinanceCredentials.from_file(vc.credentials_file) if vc.credentials_file
                 else BinanceCredentials.from_env())
        base = (BinanceVenueConfig.testnet if config.binance.testnet else BinanceVenueConfig.production)
        cfg = base(client_id_prefix=prefix, allow_production=vc.allow_production,
                   reconcile_interval_s=vc.reconcile_interval_s)
    return BinanceVenue(cfg, creds)


def sim_extensions(exchange: Any, keys: tuple[str, str] | None) -> list[Any]:
    """The simulator's trading API with the run's account (mode ``sim``), else nothing."""
    if keys is None:
        return []
    from arbray.sim.trading_api import KEY_ENV, SECRET_ENV, trading_extension

    api, _ = trading_extension(exchange, env={KEY_ENV: keys[0], SECRET_ENV: keys[1]})
    return [api]


def feed_config(config: RunConfig, endpoints: Endpoints, symbols: Sequence[str]) -> FeedConfig:
    """The feed of one SymbolState. A replay carries only the recording: no REST indicator pollers
    or spot price, which the backtest of the same file would not have."""
    if config.source == "replay":
        return FeedConfig.for_endpoints(endpoints, tuple(symbols), pollers=(), spot_rest_base=None)
    return FeedConfig.for_endpoints(endpoints, tuple(symbols))


async def fetch_warmup_klines(rest: BinanceRest, symbol: str) -> list[Kline]:
    """Closed 5m and 1h klines from REST (the ATR warm-up of a live start)."""
    out: list[Kline] = []
    now = int(time.time() * 1000)
    for interval, limit in WARMUP_KLINES:
        rows = await rest.get("/fapi/v1/klines", {"symbol": symbol, "interval": interval, "limit": limit})
        for row in rows or []:
            close_ms = int(row[6])
            if close_ms >= now:
                continue  # the open bar
            out.append(Kline(symbol, interval, int(row[0]), close_ms, float(row[1]), float(row[2]), float(row[3]),
                             float(row[4]), float(row[5]), float(row[7]), int(row[8]), float(row[9]), True))
    return out


class LocalRuntime:
    """Everything of ``arbray run`` in this process (see the module docstring)."""

    def __init__(self, config: RunConfig, store: Store, clock: Clock | None = None) -> None:
        self.config = config
        self.store = store
        self.clock = clock or SystemClock()
        self.started_ms = self.clock.now_ms()
        self.instance = config.instance or new_instance_id(self.started_ms)
        self.sim: Any = None
        self.symbol_states: list[SymbolStateService] = []
        self.journal: JournalService | None = None
        self.strategy: StrategyService | None = None
        self.pm: PositionManagerService | None = None
        self.guard: RiskGuardService | None = None
        self._rest: BinanceRest | None = None
        self._sim_keys: tuple[str, str] | None = sim_credentials() if config.mode == "sim" else None
        self.restarts = 0

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.config
        now = self.clock.now_ms()
        await self.store.migrate()
        await register_strategies(self.store, run_strategies(cfg), cfg.initial_balance, now)
        await self.store.start_run(self.instance, cfg.mode, cfg.source, cfg.model_dump(mode="json"), now)
        sim_urls = await self._start_sim() if cfg.source in ("sim", "replay") else None
        endpoints = endpoints_for(cfg, sim_urls)
        self.journal = JournalService(JournalCore(self.store, cfg.run_id, self.instance))
        self.strategy = StrategyService(self.store, self.journal, cfg.symbols, clock=self.clock,
                                        post=[Calibrated(cfg.ev_gates)], reload_every_ms=min(1_000, cfg.every_ms))
        await self.strategy.start()
        guard_core = RiskGuardCore({s: n for n, syms in cfg.groups() for s in syms}, cfg.guard, self.clock)
        risk_rows = await self.store.risk_state()
        if "global" in risk_rows and isinstance(risk_rows["global"].get("detail"), dict):
            guard_core.from_state(risk_rows["global"]["detail"])
        pm_cfg: PositionManagerConfig = cfg.position_manager
        self.pm = PositionManagerService(cfg.run_id, self.instance, pm_cfg, self.store, self.journal, cfg.symbols,
                                         venue=make_venue(cfg, self.instance, endpoints, self._sim_keys),
                                         clock=self.clock, flatten_baseline=guard_core.x.flatten_seq)
        self.guard = RiskGuardService(guard_core, self.pm, self.journal, store=self.store)
        self.pm.guard = self.guard
        await self.pm.start()
        await self.guard.start()
        self._rest = BinanceRest(FeedConfig.for_endpoints(endpoints, cfg.symbols).rest_config(), self.clock)
        for name, syms in cfg.groups():
            svc = SymbolStateService(name, syms, cfg.symbol_state, self.strategy, self.pm, self.journal, self.guard,
                                     feed_factory=self._feed_factory(endpoints, syms), clock=self.clock)
            warm = {}
            if cfg.warmup_klines and cfg.source != "replay":
                warm = {s: (await fetch_warmup_klines(self._rest, s), None) for s in syms}
            await svc.start(warm)
            self.symbol_states.append(svc)
        if cfg.source == "replay":  # the replay starts once every feed listens and entries are allowed
            await wait_until(lambda: self.sim.state()["connections"] >= len(self.symbol_states), 30,
                             "the feeds to connect to the simulator")
            await self.guard.publish()
            self.sim.exchange.resume()

    def _feed_factory(self, endpoints: Endpoints, symbols: Sequence[str]) -> Any:
        def make(core: SymbolStateCore) -> MarketFeed:
            return MarketFeed(feed_config(self.config, endpoints, symbols), core, self.clock)
        return make

    async def _start_sim(self) -> tuple[str, str]:
        from arbray.sim.exchange import SimExchange, SimExchangeConfig
        from arbray.sim.faults import FaultConfig
        from arbray.sim.server import SimServer, SimServerConfig

        s = self.config.sim
        fields: dict[str, Any] = {"seed": s.seed, "speed": s.speed, "history_hours": s.history_hours,
                                  "rate_scale": s.rate_scale}
        if self.config.source == "replay":
            fields["replay"] = s.replay
        fields["symbols"] = self.config.symbols
        exchange = SimExchange(SimExchangeConfig(**fields))
        if self.config.source == "replay":
            exchange.pause()
        faults = FaultConfig.from_file(s.faults) if s.faults else FaultConfig()
        self.sim = SimServer(exchange, SimServerConfig(port=0, faults=faults),
                             extensions=sim_extensions(exchange, self._sim_keys))
        await self.sim.start()
        return self.sim.rest_url, self.sim.ws_url

    async def stop(self) -> dict[str, Any]:
        """Stop everything in order (feeds first, then the journal drains) and record the run's summary."""
        for svc in self.symbol_states:
            await svc.stop()
        summary = await self.stats()
        if self.guard is not None:
            await self.guard.stop()
        if self.strategy is not None:
            await self.strategy.stop()
        if self.pm is not None:
            await self.pm.stop()
        if self.journal is not None:
            await self.journal.core.close()
        if self._rest is not None:
            await self._rest.close()
        if self.sim is not None:
            await self.sim.stop()
        await self.store.update_run(self.instance, "stopped", self.clock.now_ms(), summary)
        return summary

    async def run_for(self, seconds: float) -> dict[str, Any]:
        await self.start()
        try:
            await asyncio.sleep(seconds)
        finally:
            summary = await self.stop()
        return summary

    def _need(self) -> tuple[PositionManagerService, RiskGuardService, StrategyService]:
        if self.pm is None or self.guard is None or self.strategy is None:
            raise RuntimeUnavailable("the runtime is not started")
        return self.pm, self.guard, self.strategy

    # ---- RuntimeControl ----------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        self._need()
        now = self.clock.now_ms()
        data: dict[str, Any] = {}
        for svc in self.symbol_states:
            for sym, h in svc.core.health().items():
                last = h["last_message_ms"]
                data[sym] = {"last_message_ms": last, "book_state": h["book_state"], "warming_up": h["warming_up"],
                             "fresh": last is not None and now - last <= self.config.guard.stale_data_ms}
        actors = {name: {"alive": True, "restarts": 0, "last_heartbeat_ms": now}
                  for name in ["journal", "strategy_0", "position_manager", "risk_guard",
                               *(s.name for s in self.symbol_states)]}
        ready = bool(data) and all(d["fresh"] for d in data.values())
        return {"ready": ready, "mode": self.config.mode, "started_ms": self.started_ms, "actors": actors,
                "data": data, "instance": self.instance}

    async def stats(self) -> dict[str, Any]:
        pm, guard, strategy = self._need()
        sym = [s.stats() for s in self.symbol_states]
        pm_stats = pm.stats()
        journal = self.journal.stats() if self.journal is not None else {}
        rejects: dict[str, int] = {}
        for s in sym:
            for k, v in s["rejects"].items():
                rejects[k] = rejects.get(k, 0) + v
        return {
            "instance": self.instance, "messages": sum(s["messages"] for s in sym), "rejects": rejects,
            "snapshots": sum(s["boundaries"] for s in sym), "scores": strategy.core.counters["scores"],
            "signals": pm_stats.get("signals", 0), "orders": pm_stats.get("orders", 0),
            "fills": pm_stats.get("fills_maker", 0) + pm_stats.get("fills_taker", 0),
            "trades": pm_stats.get("trades", 0), "book_resyncs": sum(s["book_resyncs"] for s in sym),
            "actor_restarts": self.restarts, "risk_state": guard.core.state, "position_manager": pm_stats,
            "journal": journal, "symbol_states": sym,
        }

    async def snapshots(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for svc in self.symbol_states:
            out.update(svc.core.snapshots())
        return out

    async def market(self, symbol: str) -> dict[str, Any]:
        for svc in self.symbol_states:
            if symbol in svc.core.symbols:
                return svc.core.market(symbol)
        raise KeyError(symbol)

    async def positions(self) -> list[dict[str, Any]]:
        return self._need()[0].positions()

    async def accounts(self) -> dict[str, dict[str, Any]]:
        return self._need()[0].accounts()

    async def risk(self) -> dict[str, Any]:
        pm, guard, _ = self._need()
        return {**guard.view(), "strategies": pm.strategy_risk()}

    async def risk_command(self, command: RiskCommand, reason: str, source: str) -> dict[str, Any]:
        _, guard, _ = self._need()
        await guard.command(command, reason, source)
        return await self.risk()

    async def kill_strategy(self, strategy: str, reason: str, source: str) -> dict[str, Any]:
        _, guard, _ = self._need()
        await guard.kill(strategy, reason, source)
        return await self.risk()

    async def reload_strategies(self) -> dict[str, Any]:
        pm, _, strategy = self._need()
        await strategy.reload(force=True)
        return await pm.reload_strategies()

    async def add_balance(self, strategy: str, amount: float, ref: str) -> dict[str, Any]:
        return await self._need()[0].add_balance(strategy, amount, ref)

    async def cluster(self) -> dict[str, Any]:
        return {"nodes": [], "resources": {"total": {}, "available": {}}, "actors": [],
                "note": "in-process runtime: no Ray cluster"}
