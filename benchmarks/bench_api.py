"""Control API latency on loopback: p50/p99 of the common read endpoints under a bounded load,
through Ray Serve and, as the baseline measured in the same run, the same app on plain uvicorn.

Setup: one SQLite store with 12 live factory strategies, 50 closed trades each (ledger booked),
score events and a persisted risk state; one read token (verified once, then served from the
API's short verify cache, as a polling dashboard is). Load: for each endpoint, ``--requests``
requests from ``--concurrency`` concurrent clients (httpx, keep-alive), after ``--warmup``
requests; every request must answer 200. Serve runs with the deployment's own settings
(``num_cpus`` 0, access log off) on a private local Ray (dashboard off).

Run:  .venv/bin/python benchmarks/bench_api.py [--requests 300] [--concurrency 4] [--skip-serve]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from arbray.backtest.journal import strategy_uuid
from arbray.scoring.registry import parse_config
from arbray.storage import open_store
from arbray.storage.base import SqlStore
from arbray.storage.records import StrategyRecord, TradeRecord

ENDPOINTS = ("/healthz", "/api/v1/strategies", "/api/v1/strategies/bench_00",
             "/api/v1/strategies/bench_00/trades?limit=50", "/api/v1/risk", "/api/v1/strategies/bench_00/equity")
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def seed(store: SqlStore, strategies: int = 12, trades: int = 50) -> str:
    """Strategies with trades and scores; returns a read token."""
    t0 = 1_720_000_000_000
    for i in range(strategies):
        name = f"bench_{i:02d}"
        cfg = parse_config({"kind": "factory", "strategy_id": name, "symbol": "BTCUSDT" if i % 2 else "ETHUSDT"})
        sid = strategy_uuid("live", name)
        await store.upsert_strategy(StrategyRecord(sid, name, f"Bench {i}", "factory", cfg.model_dump(mode="json"),
                                                   cfg.config_hash, 10_000.0, t0))
        for k in range(trades):
            pnl = (k % 7 - 3) * 12.5
            await store.record_trade(TradeRecord(
                trade_id=f"{name}-{k}", strategy_id=sid, symbol="BTCUSDT", side="LONG" if k % 2 else "SHORT",
                qty=0.01, entry_price=60_000.0, entry_ms=t0 + k * 600_000, exit_price=60_000.0 + pnl * 100,
                exit_ms=t0 + k * 600_000 + 300_000, exit_reason="tp1" if pnl > 0 else "sl", pnl=pnl, fees=0.6,
                risk_distance=300.0, r_multiple=pnl / 3.0))
    await store.set_risk_state("global", "ACTIVE", t0, {"reasons": []})
    return await store.create_credential("bench", "read")


@contextmanager
def uvicorn_server(dsn: str) -> Iterator[str]:
    """``arbray api serve`` (plain uvicorn) in its own process, like the Serve replica is."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "arbray", "api", "serve", "--db", dsn, "--port", str(port),
                             "--no-jobs"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("arbray api serve did not start")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@contextmanager
def serve_server(dsn: str, tmp: Path) -> Iterator[str]:
    """The app on Ray Serve (private local Ray)."""
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    import ray
    from arbray.actors.serve import ServeApiConfig, start
    from ray import serve

    ray.init(num_cpus=2, namespace="arbray", include_dashboard=False, log_to_driver=False, _temp_dir=str(tmp / "ray"))
    try:
        port = free_port()
        start(ServeApiConfig(dsn=dsn, jobs=False), port=port)
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


async def load(base: str, path: str, token: str, n: int, concurrency: int, warmup: int) -> list[float]:
    """Latencies (s) of ``n`` GETs of ``path`` from ``concurrency`` workers; every answer must be 200."""
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30, limits=limits) as client:
        for _ in range(warmup):
            (await client.get(path)).raise_for_status()
        lat: list[float] = []
        todo = iter(range(n))

        async def worker() -> None:
            for _ in todo:
                t0 = time.perf_counter()
                r = await client.get(path)
                lat.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: {r.status_code} {r.text[:200]}")

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        lat.append(-(time.perf_counter() - t0))  # total wall time, marked negative
    return lat


def summarise(lat: list[float]) -> dict[str, float]:
    wall = -lat.pop()
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"p50_ms": statistics.median(lat) * 1e3, "p99_ms": q[98] * 1e3, "rps": len(lat) / wall}


def run_target(name: str, base: str, token: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    out = {}
    for path in ENDPOINTS:
        lat = asyncio.run(load(base, path, token, args.requests, args.concurrency, args.warmup))
        out[path] = summarise(lat)
        r = out[path]
        print(f"{name:8} {path:48} p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  {r['rps']:8.1f} req/s",
              flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300, help="measured requests per endpoint")
    ap.add_argument("--concurrency", type=int, default=4, help="concurrent clients")
    ap.add_argument("--warmup", type=int, default=20, help="unmeasured requests per endpoint first")
    ap.add_argument("--skip-serve", action="store_true", help="only the uvicorn baseline")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="arbray-bench-api-"))
    dsn = f"sqlite:///{tmp / 'bench.db'}"

    async def prepare() -> str:
        store = await open_store(dsn)
        try:
            return await seed(store)
        finally:
            await store.close()

    token = asyncio.run(prepare())
    print(f"{args.requests} requests per endpoint, concurrency {args.concurrency}, loopback, SQLite store\n")
    with uvicorn_server(dsn) as base:
        baseline = run_target("uvicorn", base, token, args)
    if args.skip_serve:
        return
    print()
    with serve_server(dsn, tmp) as base:
        serve = run_target("serve", base, token, args)
    print("\nServe vs uvicorn (same run):")
    for path in ENDPOINTS:
        b, s = baseline[path], serve[path]
        print(f"  {path:48} p50 ×{s['p50_ms'] / b['p50_ms']:5.1f}  p99 ×{s['p99_ms'] / b['p99_ms']:5.1f}  "
              f"throughput ×{s['rps'] / b['rps']:5.2f}")


if __name__ == "__main__":
    main()
