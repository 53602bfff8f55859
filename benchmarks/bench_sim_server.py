"""Simulator server throughput over loopback, against a bare aiohttp ceiling measured in the same run.

Three servers, each in its own process (one core), each sending to one client (this process):

- ``ceiling``: a bare aiohttp WebSocket handler sending the recording's pre-encoded combined-stream
  frames as fast as it can (no exchange, no fan-out, no accounting): the most aiohttp can do;
- ``replay``: ``arbray sim serve --replay FILE --speed max`` serving the same recording message by
  message (exchange state, recorded-stream fan-out, per-connection queue and back-pressure);
- ``live``: the live model at ``--speed max`` for the same symbols, every stream the recording
  carries plus ``@aggTrade`` and ``@depth@100ms`` (so model generation is part of the cost).

For each: messages/s received, the server process's CPU seconds per message (from /proc), and the
ratio to the ceiling. Also the live model's generation cost per market second. One JSON line.

    python benchmarks/bench_sim_server.py [--minutes 4] [--symbols BTCUSDT,ETHUSDT]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from arbray.sim.exchange import SimExchange, SimExchangeConfig
from arbray.sim.model import MarketModelConfig
from arbray.sim.recording import generate

T0 = 1_723_075_200_000


def _frames(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as fh:
        return [js for js in (line.partition(b" ")[2].rstrip(b"\n") for line in fh) if js.startswith(b'{"stream"')]


async def _ceiling_server(path: Path) -> None:
    frames = _frames(path)

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        text = aiohttp.WSMsgType.TEXT
        for frame in frames:
            await ws.send_frame(frame, text)
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/stream", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(orjson.dumps({"rest": f"http://127.0.0.1:{port}", "ws": f"ws://127.0.0.1:{port}"}).decode(), flush=True)
    await asyncio.Event().wait()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _spawn(args: list[str]) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    return proc, orjson.loads(proc.stdout.readline())


async def _receive(url: str, expect: int | None, seconds: float | None, before: str | None = None) -> tuple[int, float]:
    """Count frames (first to last) until ``expect`` arrived or ``seconds`` passed."""
    async with aiohttp.ClientSession() as s, s.ws_connect(url, max_msg_size=0, compress=0) as ws:
        if before is not None:
            async with s.post(before):
                pass
        n = 0
        first = 0.0
        end = float("inf")
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            if n == 0:
                first = time.perf_counter()
                if seconds is not None:
                    end = first + seconds
            n += 1
            if (expect is not None and n >= expect) or (n & 1023 == 0 and time.perf_counter() >= end):
                break
        return n, time.perf_counter() - first


def _measure(args: list[str], path_query: str, expect: int | None, seconds: float | None,
             resume: bool) -> dict[str, Any]:
    proc, info = _spawn(args)
    try:
        cpu0 = _cpu_s(proc.pid)
        before = info["rest"] + "/_sim/resume" if resume else None
        n, wall = asyncio.run(_receive(info["ws"] + path_query, expect, seconds, before))
        cpu = _cpu_s(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(10)
    return {"messages": n, "seconds": round(wall, 3), "msgs_per_s": round(n / wall),
            "server_cpu_us_per_msg": round(cpu / n * 1e6, 2), "server_msgs_per_cpu_s": round(n / cpu) if cpu else None}


def _generation_cost(symbols: tuple[str, ...], seconds: int = 120) -> float:
    """Percent of one core the live exchange (model + exchange state, no subscribers) needs at 1×."""
    ex = SimExchange(SimExchangeConfig(symbols=symbols, start_ms=T0, history_hours=0))
    started = time.process_time()
    ex.advance_to(T0 + seconds * 1000)
    return round((time.process_time() - started) / seconds * 100, 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=4.0, help="market minutes in the recording")
    p.add_argument("--symbols", default="BTCUSDT,ETHUSDT")
    p.add_argument("--live-seconds", type=float, default=8.0, help="wall seconds of the live measurement")
    p.add_argument("--role", choices=("ceiling",), help=argparse.SUPPRESS)
    p.add_argument("--file", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "ceiling":
        asyncio.run(_ceiling_server(Path(args.file)))
        return
    symbols = tuple(s.strip().upper() for s in args.symbols.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.gz"
        started = time.perf_counter()
        generate(MarketModelConfig(symbols=symbols, hours=args.minutes / 60, seed=1, start_ms=T0), path)
        gen_s = time.perf_counter() - started
        frames = _frames(path)
        streams = sorted({orjson.loads(f)["stream"] for f in frames})
        query = "/stream?streams=" + "/".join(streams)
        ceiling = _measure([__file__, "--role", "ceiling", "--file", str(path)], "/stream", len(frames), None,
                           resume=False)
        cli = ["-m", "arbray", "sim", "serve", "--port", "0", "--paused"]
        replay = _measure([*cli, "--replay", str(path), "--speed", "max"], query, len(frames), None, resume=True)
        live_streams = sorted({*streams, *(f"{s.lower()}@aggTrade" for s in symbols),
                               *(f"{s.lower()}@depth@100ms" for s in symbols)})
        live = _measure([*cli, "--symbols", ",".join(symbols), "--speed", "max", "--history-hours", "0"],
                        "/stream?streams=" + "/".join(live_streams), None, args.live_seconds, resume=True)
    out = {
        "bench": "sim_server",
        "recording": {"symbols": list(symbols), "market_minutes": args.minutes, "stream_messages": len(frames),
                      "streams": streams, "generate_s": round(gen_s, 2)},
        "ceiling_bare_aiohttp": ceiling,
        "replay_max": {**replay, "ratio_to_ceiling": round(replay["msgs_per_s"] / ceiling["msgs_per_s"], 3)},
        "live_max": {**live, "streams": live_streams,
                     "ratio_to_ceiling": round(live["msgs_per_s"] / ceiling["msgs_per_s"], 3)},
        "live_generation_pct_of_core_at_1x": {"BTCUSDT": _generation_cost(("BTCUSDT",)),
                                              "BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT": _generation_cost(
                                                  ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"))},
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    sys.stdout.buffer.write(orjson.dumps(out) + b"\n")


if __name__ == "__main__":
    main()
