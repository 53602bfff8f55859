"""``arbray sim generate`` and ``arbray sim serve``: the market simulator's command line.

``arbray sim generate --symbols BTCUSDT,ETHUSDT --hours 6 --seed 1 --out FILE.gz`` runs the market
model (``arbray.sim.model``) and writes an hftbacktest collector file that ``arbray replay`` and
``arbray backtest`` read like a real recording; a JSON summary line goes to stdout.

``arbray sim serve --port 0 --symbols BTCUSDT,ETHUSDT [--speed 1|N|max] [--replay FILE] …`` serves a
local Binance USD-M (``arbray.sim.server``, with the trading API of ``arbray.sim.trading_api`` unless
``--no-trading``) on loopback, prints one JSON line with its REST and WS base URLs (and the trading
account) when ready, and serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from typing import Any, Literal

import orjson

from arbray.sim.model import MarketModelConfig
from arbray.sim.recording import generate


def _cmd_generate(args: argparse.Namespace) -> int:
    symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
    cfg = MarketModelConfig(symbols=symbols, hours=args.hours, seed=args.seed, step_ms=args.step_ms,
                            rate_scale=args.rate_scale, initial_regime=args.regime)
    started = time.perf_counter()
    model, lines = generate(cfg, args.out)
    elapsed = time.perf_counter() - started
    summary = {
        "out": args.out,
        "lines": lines,
        "seconds": round(elapsed, 3),
        "lines_per_s": round(lines / elapsed) if elapsed > 0 else None,
        "market_hours": args.hours,
        "regimes": [[t, r] for t, r in model.regime_log],
        "symbols": {
            s: {"trades": st.trades, "depth_updates": st.depth_updates, "book_tickers": st.book_tickers,
                "liquidations": st.liquidations, "force_orders": st.force_orders,
                "funding_settlements": [[t, r] for t, r in st.funding]}
            for s, st in model.stats.items()
        },
    }
    sys.stdout.buffer.write(orjson.dumps(summary) + b"\n")
    return 0


def _speed(text: str) -> float | Literal["max"]:
    if text == "max":
        return "max"
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid speed {text!r}: a number > 0 or 'max'") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"invalid speed {text!r}: a number > 0 or 'max'")
    return v


async def serve(args: argparse.Namespace, ready: asyncio.Event | None = None) -> int:
    """Run the simulator server until SIGINT/SIGTERM (or ``stop`` is set by a test)."""
    from arbray.sim.exchange import SimExchange, SimExchangeConfig
    from arbray.sim.faults import FaultConfig
    from arbray.sim.server import SimServer, SimServerConfig

    symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
    ex_fields: dict[str, Any] = {"seed": args.seed, "speed": args.speed, "history_hours": args.history_hours,
                                 "rate_scale": args.rate_scale}
    if args.replay:
        ex_fields["replay"] = args.replay
        if args.symbols_given:
            ex_fields["symbols"] = symbols
    else:
        ex_fields["symbols"] = symbols
    exchange = SimExchange(SimExchangeConfig(**ex_fields))
    faults = FaultConfig.from_file(args.faults) if args.faults else FaultConfig()
    extensions: list[Any] = []
    account: dict[str, Any] | None = None
    if not args.no_trading:  # signed trading routes and the user-data stream (arbray.sim.trading_api)
        from arbray.sim.trading_api import trading_extension

        api, account = trading_extension(exchange)
        extensions.append(api)
    server = SimServer(exchange, SimServerConfig(host=args.host, port=args.port, allow_remote=args.allow_remote,
                                                 faults=faults), extensions=extensions)
    if args.paused:
        exchange.pause()
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    line: dict[str, Any] = {"rest": server.rest_url, "ws": server.ws_url, "symbols": list(exchange.symbols),
                            "mode": exchange.mode, "speed": exchange.speed, "paused": exchange.paused,
                            "market_ms": exchange.now_ms()}
    if account is not None:
        line["account"] = account  # a generated secret is printed here once, never again
    sys.stdout.buffer.write(orjson.dumps(line) + b"\n")
    sys.stdout.flush()
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        await server.stop()
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    args.symbols_given = args.symbols is not None
    if args.symbols is None:
        args.symbols = "BTCUSDT"
    return asyncio.run(serve(args))


def register(subparsers: Any) -> None:
    """Add ``sim generate`` and ``sim serve`` to the top-level ``arbray`` parser."""
    sim = subparsers.add_parser("sim", help="the market simulator")
    sub = sim.add_subparsers(dest="sim_command", required=True)
    g = sub.add_parser("generate", help="generate a recording of a simulated USD-M market")
    g.add_argument("--symbols", default="BTCUSDT", help="comma-separated symbols, e.g. BTCUSDT,ETHUSDT")
    g.add_argument("--hours", type=float, default=1.0, help="market time to generate")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--step-ms", type=int, default=50, help="model time step (one depth update at most)")
    g.add_argument("--rate-scale", type=float, default=1.0, help="scale every trade and maker rate")
    g.add_argument("--regime", choices=("calm", "trend", "crash"), default="calm", help="initial regime")
    g.add_argument("--out", required=True, help="output file (.gz for gzip)")
    g.set_defaults(func=_cmd_generate)
    v = sub.add_parser("serve", help="serve a local Binance USD-M (REST + WebSocket) on loopback")
    v.add_argument("--host", default="127.0.0.1", help="bind address (loopback unless --allow-remote)")
    v.add_argument("--port", type=int, default=0, help="port (0: an ephemeral one, printed when ready)")
    v.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback --host")
    v.add_argument("--symbols", default=None, help="comma-separated symbols (default BTCUSDT; replay: the file's)")
    v.add_argument("--seed", type=int, default=1)
    v.add_argument("--speed", type=_speed, default=1.0, help="market seconds per wall second, or 'max'")
    v.add_argument("--replay", default=None, help="replay this recording instead of running the live model")
    v.add_argument("--history-hours", type=float, default=48.0, help="synthetic history before a live start")
    v.add_argument("--rate-scale", type=float, default=1.0, help="scale the model's trade and maker rates")
    v.add_argument("--faults", default=None, help="fault config (YAML or JSON), see arbray.sim.faults")
    v.add_argument("--paused", action="store_true", help="start with the market paused (POST /_sim/resume)")
    v.add_argument("--no-trading", action="store_true",
                   help="market data only: no signed trading routes and no user-data stream")
    v.set_defaults(func=_cmd_serve)
