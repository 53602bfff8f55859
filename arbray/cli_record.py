"""``arbray record``: record live market data with the feed client to replayable files (and the journal).

``arbray record --symbols BTCUSDT,ETHUSDT --out DIR (--rest-base URL --ws-base URL | --sim | --binance)
[--duration 60s] [--db DSN]`` runs a ``MarketFeed`` and writes what it delivered — WebSocket messages,
REST depth snapshots and REST-filled aggTrades, in delivery order — as one gzip hftbacktest
collector file per symbol (``arbray replay`` reads them as they are). With ``--db`` the aggTrades
also go into the journal through ``AggTradeRecorder``. It never guesses where data comes from: give
both base URLs, ``--binance`` (production), or ``--sim`` (the exchange simulator in-process on
loopback). Prints one JSON summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from arbray.cli import parse_interval
from arbray.feeds.client import MarketFeed
from arbray.feeds.config import BINANCE_PRODUCTION, FeedConfig
from arbray.feeds.recording import AggTradeTap, RawFileRecorder
from arbray.replay.engine import MarketState

_JOURNAL_FLUSH_S = 0.2


def _symbols(text: str) -> tuple[str, ...]:
    return tuple(s.strip().upper() for s in text.split(",") if s.strip())


async def _start_sim(symbols: tuple[str, ...], speed: float, seed: int) -> tuple[Any, str, str]:
    """A simulator on an ephemeral loopback port: (server, REST base, WS base)."""
    from arbray.sim.exchange import SimExchange, SimExchangeConfig
    from arbray.sim.server import SimServer, SimServerConfig

    exchange = SimExchange(SimExchangeConfig(symbols=symbols, seed=seed, speed=speed))
    server = SimServer(exchange, SimServerConfig(host="127.0.0.1", port=0))
    await server.start()
    return server, server.rest_url, server.ws_url


async def record(args: argparse.Namespace) -> dict[str, Any]:
    """Run the feed until ``--duration`` passes (or SIGINT/SIGTERM) and return the summary."""
    symbols = _symbols(args.symbols)
    server = None
    if args.sim:
        server, rest_base, ws_base = await _start_sim(symbols, args.sim_speed, args.sim_seed)
        spot_base: str | None = rest_base
        source = "sim"
    elif args.binance:
        rest_base, ws_base, spot_base = (BINANCE_PRODUCTION.rest_base, BINANCE_PRODUCTION.ws_base,
                                         BINANCE_PRODUCTION.spot_rest_base)
        source = "binance"
    else:
        rest_base, ws_base, spot_base, source = args.rest_base, args.ws_base, args.spot_rest_base, "urls"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d_%H%M%S")
    files = RawFileRecorder(Path(args.out), stamp)
    tap = AggTradeTap() if args.db else None

    def on_raw(recv_ns: int, raw: bytes) -> None:
        files(recv_ns, raw)
        if tap is not None:
            tap(recv_ns, raw)

    config = FeedConfig(ws_base=ws_base, rest_base=rest_base, spot_rest_base=spot_base, symbols=symbols)
    state = MarketState()
    feed = MarketFeed(config, state, on_raw=on_raw)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    journal: dict[str, Any] | None = None
    started = time.monotonic()
    try:
        if args.db:
            journal = await _run_with_journal(feed, tap, args.db, stop, args.duration)
        else:
            await feed.start()
            await _wait(stop, args.duration)
            await feed.stop()
    finally:
        files.close()
        if server is not None:
            await server.stop()
    stats = feed.stats()
    return {
        "source": source, "rest_base": rest_base, "ws_base": ws_base, "symbols": list(symbols),
        "seconds": round(time.monotonic() - started, 3), "out": str(Path(args.out)), "files": files.summary(),
        "messages": stats["messages"], "rejects": stats["rejects"], "reconnects": stats["reconnects"],
        "rotations": stats["rotations"], "gaps": {k: v for k, v in stats["gaps"].items() if k != "unfillable_ranges"},
        "duplicates_dropped": stats["duplicates_dropped"], "book_resyncs": stats["book"]["resyncs"],
        "snapshots_fetched": stats["book"]["snapshots_fetched"],
        "degraded_books": stats["book"]["sync"].get("degraded"),
        "rest_weight_used_1m": stats["rest_weight_used_1m"], "task_errors": stats["task_errors"],
        "journal": journal,
    }


async def _wait(stop: asyncio.Event, duration_ms: int | None) -> None:
    if duration_ms is None:
        await stop.wait()
    else:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration_ms / 1000)


async def _run_with_journal(feed: MarketFeed, tap: AggTradeTap | None, dsn: str, stop: asyncio.Event,
                            duration_ms: int | None) -> dict[str, Any]:
    """Run the feed while moving tapped aggTrades into the journal; the journal's view afterwards."""
    from arbray.storage import open_store
    from arbray.storage.config import StoreConfig, redact
    from arbray.storage.recorder import AggTradeRecorder

    assert tap is not None
    store = await open_store(StoreConfig(dsn=dsn))
    try:
        recorder = AggTradeRecorder(store)
        recorder.start()

        async def pump() -> None:
            while True:
                await asyncio.sleep(_JOURNAL_FLUSH_S)
                rows = tap.take()
                if rows:
                    await recorder.put_many(rows)

        await feed.start()
        pumping = asyncio.create_task(pump())
        try:
            await _wait(stop, duration_ms)
        finally:
            await feed.stop()
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pumping
            rows = tap.take()
            if rows:
                await recorder.put_many(rows)
            await recorder.close()
        continuity = await store.continuity()
        return {
            "db": redact(dsn), "agg_trades_accepted": recorder.stats.accepted, "agg_trades_written":
            recorder.stats.written, "dropped": recorder.stats.dropped, "write_errors": recorder.stats.write_errors,
            "continuity": {c.symbol: {"first_id": c.first_id, "last_id": c.last_id, "rows": c.rows,
                                      "missing_ranges": [list(g) for g in c.gaps]} for c in continuity},
        }
    finally:
        await store.close()


def _cmd_record(args: argparse.Namespace) -> int:
    if not args.sim and not args.binance and not (args.rest_base and args.ws_base):
        print("arbray record: say where the data comes from: --rest-base URL and --ws-base URL, "
              "--binance, or --sim (the local simulator)", file=sys.stderr)
        return 2
    if sum((bool(args.sim), bool(args.binance), bool(args.rest_base or args.ws_base))) > 1:
        print("arbray record: use only one of --sim, --binance, --rest-base/--ws-base", file=sys.stderr)
        return 2
    summary = asyncio.run(record(args))
    sys.stdout.buffer.write(orjson.dumps(summary) + b"\n")
    sys.stdout.flush()
    return 0


def register(subparsers: Any) -> None:
    """Add ``record`` to the top-level ``arbray`` parser."""
    r = subparsers.add_parser("record", help="record live market data to replayable files (and the journal)")
    r.add_argument("--symbols", required=True, help="comma-separated symbols, e.g. BTCUSDT,ETHUSDT")
    r.add_argument("--out", required=True, help="output folder: one <symbol>_<UTC stamp>.gz per symbol")
    r.add_argument("--rest-base", help="USD-M REST base URL, e.g. http://127.0.0.1:8080")
    r.add_argument("--ws-base", help="USD-M WebSocket base URL, e.g. ws://127.0.0.1:8080")
    r.add_argument("--spot-rest-base", help="spot REST base URL for the spot price (optional)")
    r.add_argument("--binance", action="store_true", help="record from Binance production")
    r.add_argument("--sim", action="store_true", help="record from the simulator, started in-process on loopback")
    r.add_argument("--sim-speed", type=float, default=1.0, help="simulator market speed (with --sim)")
    r.add_argument("--sim-seed", type=int, default=1, help="simulator seed (with --sim)")
    r.add_argument("--duration", type=parse_interval, default=None, help="stop after this long (e.g. 60s, 1h); "
                                                                          "default: until SIGINT/SIGTERM")
    r.add_argument("--db", default=None, metavar="DSN", help="also journal the aggTrades (sqlite:///… or postgresql://…)")
    r.set_defaults(func=_cmd_record)
