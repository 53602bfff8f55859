"""``arbray run`` on Ray: start (or join) a cluster, launch the runtime's actors, watch, stop cleanly.

Locally the driver starts a private Ray (free ports, loopback, never 6379); under ``ray job
submit`` it joins the job's cluster. It registers the run's strategies in the journal, starts the
simulator when the source is ``sim``/``replay``, creates the named actors (Journal, Strategy pool,
PositionManager, RiskGuard, SymbolStates — these last ones on nodes offering the configured
resource, so a multi-node cluster spreads them), optionally the control API on Serve, and then
supervises until the duration ends, Ctrl-C, or — for a replay at ``max`` speed — the recording is
fully consumed. The final summary is one JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from arbray.runtime.config import RunConfig
from arbray.runtime.local import endpoints_for, new_instance_id, run_strategies, sim_credentials, wait_until
from arbray.runtime.strategies import register_strategies
from arbray.storage import open_store

from .control import ActorRuntimeControl, actor_table
from .runtime import (
    ACTOR_OPTIONS,
    NAMESPACE,
    RAY_ENV,
    JournalActor,
    PositionManagerActor,
    RiskGuardActor,
    SimExchangeActor,
    StrategyActor,
    SymbolStateActor,
    free_port,
)

log = logging.getLogger("arbray.run")


@dataclass
class RayRun:
    """A launched runtime: its config, instance id and actor handles."""

    config: RunConfig
    dsn: str
    instance: str
    started_ms: int
    handles: dict[str, Any] = field(default_factory=dict)
    sim_urls: tuple[str, str] | None = None
    api_url: str | None = None
    owns_ray: bool = False
    first_token: str | None = None  # an admin token made because the journal had none (shown once)


def start_ray(address: str | None, num_cpus: int, dashboard: bool, metrics_port: int | None,
              temp_dir: str | None = None) -> tuple[bool, str | None]:
    """Join ``address`` (or ``RAY_ADDRESS``), else start a private local Ray.

    Returns (whether we started it, the Ray dashboard's URL when it has one)."""
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    import ray

    if ray.is_initialized():
        return False, None
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ctx = ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
        return False, getattr(ctx, "dashboard_url", None) or None
    kwargs: dict[str, Any] = {"num_cpus": num_cpus, "include_dashboard": dashboard, "namespace": NAMESPACE,
                              "log_to_driver": False}
    if dashboard:
        kwargs["dashboard_host"] = "127.0.0.1"
    if metrics_port is not None:
        kwargs["_metrics_export_port"] = metrics_port
    if temp_dir is not None:
        kwargs["_temp_dir"] = temp_dir
    ctx = ray.init(**kwargs)
    return True, getattr(ctx, "dashboard_url", None) or None


def shutdown_ray() -> None:
    """Stop the private local Ray this driver started."""
    import ray

    ray.shutdown()


async def launch(config: RunConfig, dsn: str, symbol_state_resource: str | None = None) -> RayRun:
    """Create every actor of the run and wait until each has booted."""
    existing = [n for n, a in actor_table(NAMESPACE).items() if a["state"] != "DEAD"]
    if "position_manager" in existing:
        raise RuntimeError(f"an arbray runtime is already running in namespace {NAMESPACE!r}")
    store = await open_store(dsn)
    now = int(time.time() * 1000)
    instance = config.instance or new_instance_id(now)
    await register_strategies(store, run_strategies(config), config.initial_balance, now)
    await store.start_run(instance, config.mode, config.source, config.model_dump(mode="json"), now)
    rows = await store.risk_state()
    detail = rows.get("global", {}).get("detail")
    flatten = int(detail.get("flatten_seq", 0)) if isinstance(detail, dict) else 0
    first_token = None
    if config.api.enabled and not await store.list_credentials():  # so a new user can open the dashboard
        first_token = await store.create_credential("first-run", "admin")
    await store.close()

    cfg_json = config.model_dump(mode="json")
    run = RayRun(config, dsn, instance, now, first_token=first_token)
    opts = dict(ACTOR_OPTIONS)
    sim_keys = sim_credentials() if config.mode == "sim" else None
    if config.source in ("sim", "replay"):
        sim = SimExchangeActor.options(name="sim_exchange", namespace=NAMESPACE, **opts).remote(
            cfg_json, free_port(), sim_keys)
        run.handles["sim_exchange"] = sim
        run.sim_urls = await run.handles["sim_exchange"].urls.remote()
    endpoints = endpoints_for(config, run.sim_urls)
    ep = (endpoints.ws_base, endpoints.rest_base, endpoints.spot_rest_base)
    run.handles["journal"] = JournalActor.options(name="journal", namespace=NAMESPACE, **opts).remote(
        dsn, config.run_id, instance)
    await run.handles["journal"].ready.remote()
    symbols = sorted(config.symbols)
    pool = [f"strategy_{k}" for k in range(config.strategy_actors)]
    assignment = {s: pool[k % len(pool)] for k, s in enumerate(symbols)}
    for name in pool:
        served = [s for s in symbols if assignment[s] == name]
        run.handles[name] = StrategyActor.options(name=name, namespace=NAMESPACE, **opts).remote(
            dsn, served, min(1_000, config.every_ms), cfg_json["ev_gates"])
    run.handles["position_manager"] = PositionManagerActor.options(name="position_manager", namespace=NAMESPACE,
                                                                   **opts).remote(cfg_json, dsn, instance, flatten, now,
                                                                                  ep, sim_keys)
    run.handles["risk_guard"] = RiskGuardActor.options(name="risk_guard", namespace=NAMESPACE, **opts).remote(
        cfg_json, dsn)
    await asyncio.gather(*(h.ready.remote() for h in run.handles.values()))
    sym_opts = dict(opts)
    if symbol_state_resource:
        sym_opts["resources"] = {symbol_state_resource: 0.001}
    for name, syms in config.groups():
        run.handles[name] = SymbolStateActor.options(name=name, namespace=NAMESPACE, **sym_opts).remote(
            cfg_json, dsn, name, list(syms), {s: assignment[s] for s in syms}, ep)
    await asyncio.gather(*(run.handles[n].ready.remote() for n, _ in config.groups()))
    if config.screener.enabled:  # boots (universe, backfill, streams) in the background; the API reads its scans
        from .screen import start_screener

        run.handles["screener"] = start_screener(
            config.screener.scan, dsn, (endpoints.ws_base, endpoints.rest_base),
            symbols if config.screener.universe == "run" else None, config.screener.workers)
    if config.source == "replay":  # start once every feed listens and entries are allowed (as in the backtest)
        feeds = len(config.groups())

        async def connected() -> bool:
            return bool((await run.handles["sim_exchange"].state.remote())["connections"] >= feeds)
        await wait_until(connected, 60, "the feeds to connect to the simulator")
        await _wait_for_permission(run)
        await _start_replay(run)
    return run


async def _start_replay(run: RayRun, sync_timeout_s: float = 5.0) -> None:
    """Resume the replay at 1× until every book is synced (at most ``sync_timeout_s``), then at its
    speed: a book syncs one REST snapshot after its first diff, and at ``max`` that round trip could
    span boundaries the backtest of the file sees with a synced book. Speed changes no content."""
    sim = run.handles["sim_exchange"]
    names = [n for n, _ in run.config.groups()]
    await sim.resume.remote(1.0)
    deadline = time.monotonic() + sync_timeout_s
    while time.monotonic() < deadline:
        stats = [await run.handles[n].stats.remote() for n in names]
        books = [b for s in stats for b in ((s.get("feed") or {}).get("book") or {}).get("symbols", {}).values()]
        if books and all(b["state"] == "synced" for b in books):
            break
        await asyncio.sleep(0.05)
    await sim.resume.remote(run.config.sim.speed)


async def _wait_for_permission(run: RayRun, timeout_s: float = 60.0) -> None:
    """Until the PositionManager holds an ACTIVE permission blocking no symbol (a replay starts then,
    so its first boundary trades exactly as the backtest's does)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        s = await run.handles["position_manager"].stats.remote()
        if s.get("permission") == "ACTIVE" and s.get("blocked_symbols") == 0:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the risk guard gave no ACTIVE permission in time")


def start_api(run: RayRun) -> str | None:
    """The control API and dashboard on Ray Serve (loopback unless the config names another host)."""
    from .serve import ServeApiConfig, start

    api = run.config.api
    start(ServeApiConfig(dsn=run.dsn, jobs=False), host=api.host, port=api.port)
    run.api_url = f"http://{api.host}:{api.port}/"
    return run.api_url


async def replay_drained(run: RayRun, control: ActorRuntimeControl, quiet_s: float = 2.0) -> bool:
    """A replay has been served completely, and every message processed and handed to the PositionManager
    (with boundary ordering, trades after the last boundary wait for a boundary that never comes — as the
    backtest's end-of-file boundary, they are not part of the comparison)."""
    sim = run.handles.get("sim_exchange")
    if sim is None or not (await sim.state.remote()).get("finished"):
        return False
    before = (await control.stats())["messages"]
    await asyncio.sleep(quiet_s)
    after = await control.stats()
    states = after["symbol_states"]
    unsent = sum(s.get("unsent", 0) for s in states)
    filling = any(s.get("gap_pending") for s in states)  # a restarted one still catching up from REST
    return bool(after["messages"] == before and unsent == 0 and not filling)


async def stop(run: RayRun) -> None:
    """Stop feeds first, drain the senders, flush the PositionManager and the journal, then kill."""
    import ray

    await stop_feeds(run)
    if run.api_url is not None:
        from ray import serve

        with contextlib.suppress(Exception):
            serve.shutdown()  # type: ignore[no-untyped-call]
    for h in run.handles.values():
        with contextlib.suppress(Exception):
            ray.kill(h, no_restart=True)


async def supervise(run: RayRun, duration_s: float | None, until_drained: bool,
                    status_every_s: float = 15.0) -> str:
    """Wait for the end of the run; returns why it ended."""
    control = ActorRuntimeControl(NAMESPACE)
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop_event.set)
    deadline = None if duration_s is None else loop.time() + duration_s
    next_status = loop.time() + status_every_s
    try:
        while True:
            if stop_event.is_set():
                return "interrupted"
            if deadline is not None and loop.time() >= deadline:
                return "duration"
            if until_drained and await replay_drained(run, control):
                return "replay_finished"
            if loop.time() >= next_status:
                next_status += status_every_s
                with contextlib.suppress(Exception):
                    s = await control.stats()
                    log.warning("status: %d messages, %d snapshots, %d signals, %d orders, %d trades, risk %s",
                                s["messages"], s["snapshots"], s["signals"], s["orders"], s["trades"], s["risk_state"])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_event.wait(), 0.5)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def final_summary(run: RayRun, reason: str) -> dict[str, Any]:
    control = ActorRuntimeControl(NAMESPACE)
    s = await control.stats()
    summary = {
        "instance": run.instance, "mode": run.config.mode, "source": run.config.source,
        "symbols": list(run.config.symbols), "ended": reason,
        "seconds": round(time.time() - run.started_ms / 1000, 1),
        "messages": s["messages"], "rejects": sum(s["rejects"].values()), "snapshots": s["snapshots"],
        "scores": s["scores"], "signals": s["signals"], "orders": s["orders"], "fills": s["fills"],
        "trades": s["trades"], "book_resyncs": s["book_resyncs"], "risk_state": s["risk_state"],
        "actor_restarts": s["actor_restarts"],
    }
    store = await open_store(run.dsn, migrate=False)
    try:
        await store.update_run(run.instance, "stopped", None, summary)
    finally:
        await store.close()
    return summary


async def run_on_ray(config: RunConfig, dsn: str, duration_s: float | None, api: bool,
                     symbol_state_resource: str | None = None, on_ready: Any = None) -> dict[str, Any]:
    """Launch, supervise and stop one run; returns the final summary."""
    run = await launch(config, dsn, symbol_state_resource)
    if api:
        start_api(run)
    if on_ready is not None:
        on_ready(run)
    until_drained = config.source == "replay" and config.sim.speed == "max"
    reason = await supervise(run, duration_s, until_drained)
    await stop_feeds(run)
    summary = await final_summary(run, reason)
    await stop(run)
    return summary


async def stop_feeds(run: RayRun) -> None:
    """Stop the SymbolStates (their last batches go out) and flush, so the summary counts everything."""
    for name, _ in run.config.groups():
        with contextlib.suppress(Exception):
            await asyncio.wait_for(run.handles[name].stop.remote(), 15)
    for name in ("position_manager", "journal"):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(run.handles[name].flush.remote(), 15)
