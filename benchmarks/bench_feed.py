"""Feed-client throughput: messages/s ingested into ``SymbolFeatures`` over loopback, against ceilings.

Servers run in their own processes (the other core); the client is this process. Two sources of
the same generated recording (faults off), each fresh per measurement:

- ``sim``: the exchange simulator replaying the file at ``max`` speed (as fast as the client reads,
  with back-pressure); it starts paused and is resumed once the client is subscribed. This is the
  end-to-end number, and it is bounded by how fast the simulator serves on a shared machine.
- ``burst``: the file's frames pre-encoded and written by a bare aiohttp handler as fast as the
  socket takes them, so the client, not the server, is the bottleneck; REST (the depth snapshot)
  comes from a paused simulator replay of the same file, whose book is the file's starting book.

Per source, four measurements on the same streams: a bare ``websockets`` loop and a bare aiohttp
loop (``recv`` + ``orjson.loads``, nothing else: the ceilings), and ``MarketFeed`` into
``MarketState`` (parser, sequencers, order book with snapshot sync, trade tape and every
``SymbolFeatures`` input) with each transport. Reported: messages, wall msgs/s (first frame to
last), client CPU µs per message (``time.process_time`` of this process only) and the one-core
capacity it implies (messages / CPU seconds), with feed/ceiling ratios. Prints one JSON line.

Run:  python benchmarks/bench_feed.py [--hours 0.1] [--symbols BTCUSDT,ETHUSDT] [--runs 2] [--source both]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from arbray.feeds.client import MarketFeed
from arbray.feeds.config import FeedConfig
from arbray.replay.engine import MarketState

STREAMS = ("aggTrade", "depth@0ms", "bookTicker", "markPrice@1s")
IDLE_S = 1.5  # the stream is over when nothing arrives for this long


def recording(hours: float, symbols: tuple[str, ...], seed: int) -> Path:
    """A generated recording, cached between runs of the benchmark."""
    from arbray.sim.model import MarketModelConfig
    from arbray.sim.recording import generate

    path = Path(tempfile.gettempdir()) / f"arbray-bench-feed-{'-'.join(symbols).lower()}-{hours}h-{seed}.gz"
    if not path.exists():
        print(f"generating {hours} h of {','.join(symbols)} → {path} …", file=sys.stderr, flush=True)
        tmp = path.with_suffix(".tmp")
        generate(MarketModelConfig(symbols=symbols, hours=hours, seed=seed), tmp)
        tmp.rename(path)
    return path


# ------------------------------------------------------------------------------------------ servers
def _serve_sim(path: str, conn: Connection) -> None:
    """A paused simulator replay at 'max' speed; sends (rest, ws, symbols), runs until told to stop."""
    from arbray.sim.exchange import SimExchange, SimExchangeConfig
    from arbray.sim.server import SimServer, SimServerConfig

    async def main() -> None:
        ex = SimExchange(SimExchangeConfig(replay=path, speed="max"))
        ex.pause()
        server = SimServer(ex, SimServerConfig())
        await server.start()
        conn.send((server.rest_url, server.ws_url, list(ex.symbols)))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await server.stop()

    asyncio.run(main())


def _serve_burst(path: str, conn: Connection) -> None:
    """Writes every recorded stream frame to the first WebSocket client as fast as the socket takes them,
    then keeps the connection open (silent) until the client closes it; later connections get nothing."""
    with gzip.open(path, "rb") as fh:
        frames = [js for _, _, js in (line.rstrip(b"\n").partition(b" ") for line in fh)
                  if js.startswith(b'{"stream"')]
    served = False

    async def handler(request: web.Request) -> web.WebSocketResponse:
        nonlocal served
        ws = web.WebSocketResponse(compress=False, max_msg_size=2**24)
        await ws.prepare(request)
        if not served:
            served = True
            text = aiohttp.WSMsgType.TEXT
            for f in frames:
                await ws.send_frame(f, text)
        async for _ in ws:  # until the client closes
            pass
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/stream", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        conn.send(f"ws://127.0.0.1:{port}")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await runner.cleanup()

    asyncio.run(main())


class _Proc:
    def __init__(self, target: Callable[[str, Connection], None], path: Path) -> None:
        ctx = mp.get_context("spawn")
        self.parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(str(path), child), daemon=True)
        self.proc.start()

    def recv(self) -> Any:
        return self.parent.recv()

    def stop(self) -> None:
        self.parent.send("stop")
        self.proc.join(30)


class Source:
    """``sim``: the simulator serves WS and REST. ``burst``: a bare sender serves WS, a paused simulator REST."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind, self.path = kind, path
        self.procs: list[_Proc] = []

    def __enter__(self) -> Source:
        sim = _Proc(_serve_sim, self.path)
        self.procs.append(sim)
        self.rest, self.ws, self.symbols = sim.recv()
        if self.kind == "burst":
            burst = _Proc(_serve_burst, self.path)
            self.procs.append(burst)
            self.ws = burst.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.stop()

    async def go(self) -> None:
        """Start the market (the burst sender starts by itself when a client connects)."""
        if self.kind == "sim":
            async with aiohttp.ClientSession() as http, http.post(f"{self.rest}/_sim/resume") as r:
                assert r.status == 200

    def url(self) -> str:
        names = [f"{s.lower()}@{k}" for s in self.symbols for k in STREAMS]
        return f"{self.ws}/stream?streams={'/'.join(names)}"


# ------------------------------------------------------------------------------------------ clients
class _Clock:
    """Counts frames and remembers the first and last arrival."""

    def __init__(self) -> None:
        self.n = 0
        self.first = self.last = 0.0

    def tick(self) -> None:
        self.n += 1
        self.last = time.perf_counter()
        if self.n == 1:
            self.first = self.last

    async def until_idle(self) -> None:
        while self.n == 0 or time.perf_counter() - self.last < IDLE_S:
            await asyncio.sleep(0.25)


async def ceiling_websockets(src: Source) -> dict[str, Any]:
    """Bare ``websockets`` loop: recv + orjson.loads."""
    loads, c = orjson.loads, _Clock()
    async with connect(src.url(), max_queue=4096, ping_interval=None, compression=None, proxy=None,
                       max_size=2**24) as conn:

        async def watch() -> None:
            await c.until_idle()
            await conn.close()

        await asyncio.sleep(0.3)
        cpu0 = time.process_time()
        await src.go()
        watcher = asyncio.create_task(watch())
        recv = conn.recv
        with contextlib.suppress(ConnectionClosed):
            while True:
                loads(await recv(decode=False))
                c.tick()
        cpu = time.process_time() - cpu0
        await watcher
    return _result(c.n, c.last - c.first, cpu)


async def ceiling_aiohttp(src: Source) -> dict[str, Any]:
    """Bare aiohttp loop: receive + orjson.loads."""
    loads, c = orjson.loads, _Clock()
    async with aiohttp.ClientSession() as http, http.ws_connect(src.url(), compress=0, max_msg_size=2**24,
                                                               decode_text=False) as conn:

        async def watch() -> None:
            await c.until_idle()
            await conn.close()

        await asyncio.sleep(0.3)
        cpu0 = time.process_time()
        await src.go()
        watcher = asyncio.create_task(watch())
        receive, text = conn.receive, aiohttp.WSMsgType.TEXT
        while True:
            msg = await receive()
            if msg.type is not text:
                break
            loads(msg.data)
            c.tick()
        cpu = time.process_time() - cpu0
        await watcher
    return _result(c.n, c.last - c.first, cpu)


async def feed(src: Source, transport: str) -> dict[str, Any]:
    """The real client: MarketFeed into MarketState (SymbolFeatures per symbol)."""
    state = MarketState()
    cfg = FeedConfig(ws_base=src.ws, rest_base=src.rest, symbols=tuple(src.symbols), streams=STREAMS, pollers=(),
                     watchdog_s=30.0, transport=transport)
    mf = MarketFeed(cfg, state)
    cpu0 = time.process_time()
    start_ns = time.time_ns()
    await mf.start()
    for _ in range(200):
        if mf.connections:
            break
        await asyncio.sleep(0.01)
    if src.kind == "sim":
        await asyncio.sleep(0.3)
        cpu0 = time.process_time()
        start_ns = time.time_ns()
        await src.go()
    seen = -1
    while True:
        await asyncio.sleep(IDLE_S)
        total = sum(mf.parser.events.values()) + sum(mf.rejects.values())
        if total == seen:
            break
        seen = total
    cpu = time.process_time() - cpu0
    stats = mf.stats()
    await mf.stop()
    n = sum(v for k, v in stats["messages"].items() if k not in ("depthSnapshot", "control"))
    out = _result(n, (max(stats["last_message_ns"].values()) - start_ns) / 1e9, cpu)  # wall: start to last frame
    out.update(rejects=stats["rejects_total"], gaps=stats["gaps"]["detected"], resyncs=stats["book"]["resyncs"],
               trades_in_features={k: len(v.tape) for k, v in state.symbols.items()},
               books={k: v.book.state.value for k, v in state.symbols.items()})
    return out


def _result(n: int, wall: float, cpu: float) -> dict[str, Any]:
    return {"messages": n, "wall_s": round(wall, 3), "msgs_per_s": round(n / wall) if wall > 0 else None,
            "cpu_s": round(cpu, 3), "cpu_us_per_msg": round(1e6 * cpu / n, 3) if n else None,
            "one_core_msgs_per_s": round(n / cpu) if cpu > 0 else None}


MEASURES: dict[str, Callable[[Source], Awaitable[dict[str, Any]]]] = {
    "ceiling_websockets": ceiling_websockets,
    "ceiling_aiohttp": ceiling_aiohttp,
    "feed_aiohttp": lambda s: feed(s, "aiohttp"),
    "feed_websockets": lambda s: feed(s, "websockets"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=0.1, help="market hours in the generated recording")
    ap.add_argument("--symbols", default="BTCUSDT,ETHUSDT")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--source", choices=("sim", "burst", "both"), default="both")
    args = ap.parse_args()
    symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
    path = recording(args.hours, symbols, args.seed)
    kinds = ("sim", "burst") if args.source == "both" else (args.source,)
    summary: dict[str, Any] = {"benchmark": "feed", "recording": str(path), "streams": list(STREAMS),
                               "symbols": list(symbols), "cpus": os.cpu_count(), "python": sys.version.split()[0],
                               "target_msgs_per_s": 50_000}
    for kind in kinds:
        runs: list[dict[str, Any]] = []
        for _ in range(args.runs):
            run: dict[str, Any] = {}
            for name, measure in MEASURES.items():
                with Source(kind, path) as src:
                    run[name] = asyncio.run(measure(src))
            runs.append(run)
            print(kind, orjson.dumps(run).decode(), file=sys.stderr, flush=True)
        best = {name: max((r[name] for r in runs), key=lambda m: m["one_core_msgs_per_s"] or 0) for name in MEASURES}
        summary[kind] = {
            "best": {name: {k: m[k] for k in ("messages", "msgs_per_s", "cpu_us_per_msg", "one_core_msgs_per_s")}
                     for name, m in best.items()},
            "feed_vs_ceiling_one_core": {t: round(best[f"feed_{t}"]["one_core_msgs_per_s"]
                                                  / best[f"ceiling_{t}"]["one_core_msgs_per_s"], 3)
                                         for t in ("aiohttp", "websockets")},
            "feed_aiohttp_vs_websockets_one_core": round(best["feed_aiohttp"]["one_core_msgs_per_s"]
                                                          / best["feed_websockets"]["one_core_msgs_per_s"], 3),
            "runs": runs,
        }
    print(orjson.dumps(summary).decode())


if __name__ == "__main__":
    main()
