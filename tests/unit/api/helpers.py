"""Test helpers for the control API: an httpx client on the ASGI app over a real store, with tokens,
and a backtest journalled into the store (generated market, real engine) to seed trading data."""

from __future__ import annotations

import asyncio
import functools
import tempfile
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from arbray.api import ApiContext, ApiSettings, create_app
from arbray.clock import Clock
from arbray.metrics import InMemoryMetrics
from arbray.storage import open_store
from arbray.storage.base import ScryptParams, SqlStore

T = TypeVar("T")
FAST_SCRYPT = ScryptParams(n=2**10, r=8, p=1)
"""Cheap KDF for tokens of tests that do not measure timing."""


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a fresh event loop (the suite uses no pytest-asyncio)."""
    return asyncio.run(coro)


@dataclass
class Api:
    """A client on the app, its store and context, and headers for an admin and a read token."""

    client: httpx.AsyncClient
    store: SqlStore
    ctx: ApiContext
    admin: dict[str, str]
    read: dict[str, str]
    metrics: InMemoryMetrics


@asynccontextmanager
async def api(dsn: str, runtime: Any = None, jobs: Any = None, settings: ApiSettings | None = None,
              clock: Clock | None = None) -> AsyncIterator[Api]:
    """The app over a store at ``dsn`` with an admin and a read credential."""
    store = await open_store(dsn)
    try:
        admin = await store.create_credential("root", "admin", params=FAST_SCRYPT)
        read = await store.create_credential("viewer", "read", params=FAST_SCRYPT)
        metrics = InMemoryMetrics()
        ctx = ApiContext(store=store, runtime=runtime, jobs=jobs, metrics=metrics,
                         settings=settings or ApiSettings())
        if clock is not None:
            ctx.clock = clock
        app = create_app(ctx)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client, store, ctx, {"Authorization": f"Bearer {admin}"},
                      {"Authorization": f"Bearer {read}"}, metrics)
    finally:
        await store.close()


def factory_config(name: str = "btc_a", **fields: Any) -> dict[str, Any]:
    """A valid factory config on BTCUSDT with ``fields`` overriding the defaults."""
    return {"kind": "factory", "strategy_id": name, "symbol": "BTCUSDT", **fields}


@functools.cache
def seeded_backtest() -> tuple[Any, Any, str]:
    """A backtest of ``v51_baseline`` and one factory preset on 2 h of generated BTCUSDT (seed 7):
    ``(result, scores, run_id)``, computed once per process (~15 s)."""
    from arbray.backtest.engine import Backtest, BacktestConfig
    from arbray.backtest.journal import ScoreCollector
    from arbray.replay.readers import open_input
    from arbray.scoring.presets import load_preset
    from arbray.sim.model import MarketModelConfig
    from arbray.sim.recording import generate

    path = Path(tempfile.mkdtemp(prefix="arbray-seed-")) / "btc_sim.gz"
    generate(MarketModelConfig(symbols=("BTCUSDT",), hours=2.0, seed=7, rate_scale=0.05, step_ms=1000), path)
    configs = [load_preset("v51_baseline"), load_preset("BTC_CVD30mx4h_TPbalanced")]
    scores = ScoreCollector()
    res = Backtest(configs, BacktestConfig(), score_sink=scores).run([open_input(path, 15_000)])
    return res, scores, "bt-seed"


async def seed(store: SqlStore) -> dict[str, int]:
    """Journal ``seeded_backtest()`` into ``store``."""
    from arbray.backtest.journal import journal_backtest

    res, scores, run_id = seeded_backtest()
    return await journal_backtest(store, res, scores, run_id)


def free_port() -> int:
    """A free TCP port on loopback (bind port 0)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve_in_thread(dsn: str, prepare: Any = None, jobs_dir: Path | None = None) -> Iterator[dict[str, Any]]:
    """uvicorn serving the app on a free loopback port in a thread, over a store opened in that thread's
    loop; ``prepare(store)`` (async) runs first. Yields ``{"base", "admin", "read", "dsn"}``."""
    import queue
    import threading

    import uvicorn

    from arbray.api.jobs import JobsConfig, SubprocessJobRunner

    port = free_port()
    ready: queue.Queue[Any] = queue.Queue()
    holder: dict[str, Any] = {}

    async def main() -> None:
        store = await open_store(dsn)
        jobs = SubprocessJobRunner(JobsConfig(work_dir=jobs_dir)) if jobs_dir is not None else None
        try:
            if prepare is not None:
                await prepare(store)
            admin = await store.create_credential("root", "admin", params=FAST_SCRYPT)
            read = await store.create_credential("viewer", "read", params=FAST_SCRYPT)
            app = create_app(ApiContext(store=store, jobs=jobs))
            holder["server"] = srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                                   log_level="warning", access_log=False))
            task = asyncio.create_task(srv.serve())
            while not srv.started and not task.done():
                await asyncio.sleep(0.05)
            ready.put({"base": f"http://127.0.0.1:{port}", "dsn": dsn, "admin": admin, "read": read})
            await task
        except BaseException as exc:
            ready.put(exc)
            raise
        finally:
            if jobs is not None:
                await jobs.close()
            await store.close()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    info = ready.get(timeout=180)
    if isinstance(info, BaseException):
        raise info
    try:
        yield info
    finally:
        holder["server"].should_exit = True
        thread.join(timeout=20)
