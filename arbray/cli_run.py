"""``arbray run``: the main job — the runtime on Ray (or in one process), paper trading by default.

``arbray run`` starts a private local Ray (or joins ``--address``/``RAY_ADDRESS``, e.g. under
``ray job submit``), the exchange simulator on loopback unless a real source is configured, the
actors, and the control API with its dashboard on Ray Serve; prints where to look; stops on Ctrl-C
or after ``--duration`` and prints one JSON summary line. ``--config run.yaml`` takes a
``RunConfig`` document; flags override it. ``--in-process`` runs everything in this process without
Ray (``LocalRuntime``). Live trading needs ``--mode live --live`` and Binance credentials from the
environment or ``--credentials-file``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import ValidationError

from arbray.runtime.config import RunConfig
from arbray.storage.config import default_dsn, redact

REPLAY_PERMISSION_TTL_MS = 60_000
"""The PositionManager's permission TTL in replays (see ``build_config``); live runs keep the default."""


def _speed(text: str) -> float | str:
    if text == "max":
        return "max"
    v = float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError("speed must be > 0 or 'max'")
    return v


def build_config(args: argparse.Namespace) -> RunConfig:
    """The run's config: ``--config`` file, then the flags given on the command line."""
    data: dict[str, Any] = {}
    if args.config:
        loaded = yaml.safe_load(Path(args.config).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.config}: a run config must be a mapping")
        data = loaded

    def put(path: str, value: Any) -> None:
        if value is None:
            return
        node = data
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value

    put("mode", args.mode)
    put("source", "replay" if args.replay else args.source)
    put("symbols", [s.strip().upper() for s in args.symbols.split(",") if s.strip()] if args.symbols else None)
    put("strategies", args.strategy)
    put("symbol_state.every_ms", args.every)
    put("sim.replay", args.replay)
    put("sim.speed", args.speed)
    put("sim.seed", args.seed)
    put("sim.history_hours", args.history_hours)
    put("sim.rate_scale", args.rate_scale)
    put("sim.faults", args.faults)
    put("binance.testnet", True if args.testnet else None)
    put("venue.credentials_file", args.credentials_file)
    if args.mode == "live" and args.live and not args.testnet:
        put("venue.allow_production", True)
    if args.mode == "live":
        data.setdefault("source", "binance")
    put("api.port", args.api_port)
    put("run_id", args.run_id)
    put("instance", args.instance)
    if args.no_screener:
        put("screener.enabled", False)
    put("screener.scan.interval_s", args.screen_every / 1000 if args.screen_every else None)
    put("symbols_per_actor", args.symbols_per_actor)
    put("strategy_actors", args.strategy_actors)
    if data.get("source") == "replay":  # a replay's boundaries and order depend on data only (parity)
        data.setdefault("warmup_klines", False)
        data.setdefault("screener", {}).setdefault("enabled", False)
        data.setdefault("symbol_state", {}).setdefault("timer_boundaries", False)
        data.setdefault("position_manager", {}).setdefault("ordering", "boundary")
        # a replay (paper or simulator, never live) saturates the machine at max speed: the wall-clock
        # permission TTL would halt on scheduling stalls and make the run depend on timing, not data
        data["position_manager"].setdefault("permission_ttl_ms", REPLAY_PERMISSION_TTL_MS)
        data.setdefault("guard", {}).setdefault("require_fresh_data", False)
    return RunConfig.model_validate(data)


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        config = build_config(args)
    except ValidationError as exc:
        print(f"arbray: invalid run config ({exc.error_count()} errors):", file=sys.stderr)
        for e in exc.errors():
            print(f"  {'.'.join(str(x) for x in e['loc']) or '<root>'}: {e['msg']}", file=sys.stderr)
        return 2
    if config.mode == "live":
        if not args.live:
            print("arbray: live trading needs the explicit --live flag", file=sys.stderr)
            return 2
        if not (os.environ.get("BINANCE_API_KEY") and os.environ.get("BINANCE_API_SECRET")) and \
                not args.credentials_file:
            print("arbray: live trading needs BINANCE_API_KEY/BINANCE_API_SECRET or --credentials-file",
                  file=sys.stderr)
            return 2
    dsn = args.db or default_dsn()
    duration = args.duration / 1000 if args.duration else None
    if args.in_process:
        summary = asyncio.run(_run_local(config, dsn, duration))
    else:
        summary = asyncio.run(_run_ray(config, dsn, duration, args))
    sys.stdout.buffer.write(orjson.dumps(summary) + b"\n")
    sys.stdout.flush()
    return 0


async def _run_local(config: RunConfig, dsn: str, duration_s: float | None) -> dict[str, Any]:
    from arbray.runtime.local import LocalRuntime
    from arbray.storage import open_store

    store = await open_store(dsn)
    rt = LocalRuntime(config, store)
    started = time.time()
    try:
        await rt.start()
        print(f"arbray: running in-process ({config.mode}, source {config.source}) — journal {redact(dsn)}",
              file=sys.stderr)
        await asyncio.sleep(duration_s if duration_s is not None else 10**9)
    finally:
        s = await rt.stop()
        await store.close()
    return {"instance": rt.instance, "mode": config.mode, "source": config.source, "symbols": list(config.symbols),
            "seconds": round(time.time() - started, 1), "messages": s["messages"],
            "rejects": sum(s["rejects"].values()), "snapshots": s["snapshots"], "scores": s["scores"],
            "signals": s["signals"], "orders": s["orders"], "fills": s["fills"], "trades": s["trades"],
            "book_resyncs": s["book_resyncs"], "risk_state": s["risk_state"], "actor_restarts": 0}


async def _run_ray(config: RunConfig, dsn: str, duration_s: float | None, args: argparse.Namespace) -> dict[str, Any]:
    driver = importlib.import_module("arbray.actors.run")  # Ray only here: the core never imports it
    owns, ray_url = driver.start_ray(args.address, args.num_cpus, dashboard=not args.no_ray_dashboard,
                                     metrics_port=args.metrics_port)

    def ready(run: Any) -> None:
        lines = [f"arbray: {config.mode} trading, source {config.source}, symbols {', '.join(config.symbols)}",
                 f"  instance   {run.instance} (journal {redact(dsn)})"]
        if run.sim_urls is not None:
            lines.append(f"  simulator  REST {run.sim_urls[0]}  WS {run.sim_urls[1]}")
        if run.api_url is not None:
            lines.append(f"  dashboard  {run.api_url}  (API {run.api_url}api/v1)")
            if run.first_token:
                lines.append(f"  token      {run.first_token}  (admin; shown once — the journal had no API token)")
            else:
                lines.append("  token      yours, or: arbray token create --role admin --name me")
        if ray_url:
            lines.append(f"  Ray        http://{ray_url}")
        lines.append("  stop with Ctrl-C" if duration_s is None else f"  stopping after {duration_s:g} s")
        print("\n".join(lines), file=sys.stderr, flush=True)

    try:
        summary: dict[str, Any] = await driver.run_on_ray(
            config, dsn, duration_s, api=config.api.enabled and not args.no_api,
            symbol_state_resource=args.symbol_state_resource, on_ready=ready)
        return summary
    finally:
        if owns:
            driver.shutdown_ray()


def _duration(text: str) -> int:
    from arbray.cli import parse_interval

    return parse_interval(text)


def register(subparsers: Any) -> None:
    """Add ``run`` to the top-level ``arbray`` parser."""
    from arbray.cli import parse_interval

    r = subparsers.add_parser("run", help="run the engine: actors on Ray, simulator, API and dashboard")
    r.add_argument("--config", help="a RunConfig YAML file (flags override it)")
    r.add_argument("--mode", choices=("paper", "sim", "live"), help="paper (default), sim or live")
    r.add_argument("--live", action="store_true", help="confirm live trading on Binance")
    r.add_argument("--credentials-file", help="Binance API key/secret file (live)")
    r.add_argument("--source", choices=("sim", "replay", "binance"), help="market data (default: the simulator)")
    r.add_argument("--replay", help="replay this recording through the simulator (source replay)")
    r.add_argument("--speed", type=_speed, help="simulator market speed: 1, N or max (replays)")
    r.add_argument("--symbols", help="comma-separated symbols (default BTCUSDT)")
    r.add_argument("--strategy", action="append", help="preset name or YAML file (repeatable; default all presets)")
    r.add_argument("--every", type=parse_interval, help="evaluation interval, e.g. 15s (default) or 250ms")
    r.add_argument("--duration", type=_duration, help="stop by itself after this long (e.g. 90s)")
    r.add_argument("--db", help="journal DSN (default: ARBRAY_DB, ARBRAY_DB_FILE, else embedded SQLite)")
    r.add_argument("--seed", type=int, help="simulator seed")
    r.add_argument("--history-hours", type=float, help="simulator kline history before the start")
    r.add_argument("--rate-scale", type=float, help="simulator trade/maker rate multiplier")
    r.add_argument("--faults", help="simulator fault-injection file")
    r.add_argument("--testnet", action="store_true", help="Binance testnet endpoints (source binance)")
    r.add_argument("--api-port", type=int, help="control API and dashboard port (default 8000)")
    r.add_argument("--no-api", action="store_true", help="do not start the control API")
    r.add_argument("--no-screener", action="store_true", help="do not start the market-wide screener")
    r.add_argument("--screen-every", type=parse_interval, help="screener scan period, e.g. 1m (default 60s)")
    r.add_argument("--no-ray-dashboard", action="store_true", help="do not start Ray's dashboard")
    r.add_argument("--address", help="join this Ray cluster (default: RAY_ADDRESS, else a private local one)")
    r.add_argument("--num-cpus", type=int, default=2, help="CPUs of a private local Ray")
    r.add_argument("--metrics-port", type=int, help="Ray metrics export port (Prometheus scrapes it)")
    r.add_argument("--symbol-state-resource", help="custom resource SymbolState actors require (multi-node)")
    r.add_argument("--symbols-per-actor", type=int, help="symbols hosted by one SymbolState actor")
    r.add_argument("--strategy-actors", type=int, help="Strategy actors in the pool")
    r.add_argument("--run-id", help="journal tag of the run's rows (default live)")
    r.add_argument("--instance", help="resume this instance (its PositionManager input log)")
    r.add_argument("--in-process", action="store_true", help="everything in this process, without Ray")
    r.set_defaults(func=_cmd_run)
