"""Storage write throughput on SQLite and PostgreSQL: aggTrade recording and score-event inserts.

For each backend, with a baseline measured in the same run:
1. aggTrades, baseline: one plain ``executemany`` of ``INSERT … ON CONFLICT DO NOTHING`` per
   batch on a bare connection (stdlib sqlite3 / asyncpg), no queue, no store.
2. aggTrades through ``store.insert_agg_trades`` in batches (SQLite executemany in its worker
   thread; PostgreSQL COPY into a staging table + ``INSERT … SELECT … ON CONFLICT``).
3. aggTrades through ``AggTradeRecorder``: the producer ``await put()``s one row at a time;
   rows/s is end to end (first put → last row committed), plus how long the producer spent.
4. Score events (real ``ScoreResult`` shape, 4 layers, 5 gates, 16 inputs): baseline = encoding
   the rows (JSON columns) + plain executemany, vs ``insert_score_events`` from the objects.

PostgreSQL uses a throw-away database ``arbray_bench_<random>`` created through
``$ARBRAY_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``) and dropped after.
Target: ≥ 20,000 aggTrades/s sustained on each backend.

Run:  /work/venv/bin/python benchmarks/bench_storage.py [--trades 200000] [--scores 50000] [--backend both]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

from arbray.scoring.result import GateResult, LayerScore, ScoreResult
from arbray.storage import SqlStore, StoreConfig, open_store
from arbray.storage.base import AGG_COLUMNS, SCORE_COLUMNS, score_row
from arbray.storage.config import sqlite_path
from arbray.storage.postgres import to_dollar
from arbray.storage.recorder import AggTradeRecorder
from arbray.storage.records import AggTrade

BATCH = 5_000
ADMIN = os.environ.get("ARBRAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def agg_rows(symbol: str, n: int) -> list[AggTrade]:
    return [AggTrade(symbol, i, 60_000.0 + (i % 100) * 0.1, 0.001 * (1 + i % 7), 3 * i, 3 * i + 2,
                     1_700_000_000_000 + i * 5, i % 2 == 0) for i in range(n)]


def score_results(n: int) -> list[ScoreResult]:
    layers = tuple(LayerScore(name, 1.0, 2.0, 10.0, 25.0) for name in ("direction", "environment", "aux", "momentum"))
    gates = tuple(GateResult(name, "passed") for name in ("vol", "cvd", "whale", "obi", "spot_perp"))
    inputs = {f"f{j}": float(j) for j in range(16)}
    return [ScoreResult(f"s{i % 50}", "factory", "1", "c" * 64, "BTCUSDT", 1_700_000_000_000 + (i // 50) * 15_000,
                        "LONG", True, 42.0, layers, gates, None, "standard", False, False, (), inputs)
            for i in range(n)]


def insert_sql(table: str, cols: tuple[str, ...], conflict: str) -> str:
    return (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
            f"ON CONFLICT ({conflict}) DO NOTHING")


def baseline_sqlite(path: str, table: str, cols: tuple[str, ...], conflict: str, rows: list[Any]) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    sql = insert_sql(table, cols, conflict)
    t0 = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        db.execute("BEGIN")
        db.executemany(sql, rows[i:i + BATCH])
        db.execute("COMMIT")
    dt = time.perf_counter() - t0
    db.close()
    return dt


async def baseline_pg(dsn: str, table: str, cols: tuple[str, ...], conflict: str, rows: list[Any]) -> float:
    conn = await asyncpg.connect(dsn)
    sql = to_dollar(insert_sql(table, cols, conflict))
    t0 = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        async with conn.transaction():
            await conn.executemany(sql, rows[i:i + BATCH])
    dt = time.perf_counter() - t0
    await conn.close()
    return dt


async def baseline(store: SqlStore, table: str, cols: tuple[str, ...], conflict: str, rows: list[Any]) -> float:
    dsn = store.config.dsn
    if store.dialect == "sqlite":
        return await asyncio.to_thread(baseline_sqlite, sqlite_path(dsn), table, cols, conflict, rows)
    return await baseline_pg(dsn, table, cols, conflict, rows)


async def bench_backend(dsn: str, n_trades: int, n_scores: int) -> dict[str, float]:
    store = await open_store(StoreConfig(dsn=dsn, batch_size=BATCH, queue_size=50_000))
    out: dict[str, float] = {}
    try:
        dt = await baseline(store, "agg_trades", AGG_COLUMNS, "symbol, agg_id", agg_rows("BASEUSDT", n_trades))
        out["agg baseline executemany"] = n_trades / dt

        rows = agg_rows("BTCUSDT", n_trades)
        t0 = time.perf_counter()
        for i in range(0, n_trades, BATCH):
            await store.insert_agg_trades(rows[i:i + BATCH])
        out["agg store.insert_agg_trades"] = n_trades / (time.perf_counter() - t0)

        rows = agg_rows("ETHUSDT", n_trades)
        t0 = time.perf_counter()
        async with AggTradeRecorder(store) as rec:
            for r in rows:
                await rec.put(r)
            produced = time.perf_counter() - t0
            await rec.flush()
        total = time.perf_counter() - t0
        assert rec.stats.written == n_trades and rec.stats.dropped == 0
        out["agg recorder end-to-end"] = n_trades / total
        out["agg recorder producer put()"] = n_trades / produced
        [c] = await store.continuity("ETHUSDT")
        assert c.rows == n_trades and not c.gaps

        results = score_results(n_scores)
        t0 = time.perf_counter()
        base_rows = [score_row(r, "baseline", None) for r in results]
        encode = time.perf_counter() - t0
        dt = await baseline(store, "score_events", SCORE_COLUMNS, "run_id, strategy, symbol, ts_ms", base_rows)
        out["score baseline executemany"] = n_scores / (encode + dt)
        t0 = time.perf_counter()
        for i in range(0, n_scores, 1_000):
            await store.insert_score_events(results[i:i + 1_000])
        out["score store.insert_score_events"] = n_scores / (time.perf_counter() - t0)
    finally:
        await store.close()
    return out


async def with_pg_database(n_trades: int, n_scores: int) -> dict[str, float]:
    name = f"arbray_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN, timeout=5)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        p = urlsplit(ADMIN)
        return await bench_backend(urlunsplit((p.scheme, p.netloc, f"/{name}", "", "")), n_trades, n_scores)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trades", type=int, default=200_000)
    ap.add_argument("--scores", type=int, default=50_000)
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    a = ap.parse_args()
    results: dict[str, dict[str, float]] = {}
    if a.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            results["sqlite"] = asyncio.run(bench_backend(f"sqlite:///{Path(tmp) / 'bench.db'}", a.trades, a.scores))
    if a.backend in ("postgresql", "both"):
        results["postgresql"] = asyncio.run(with_pg_database(a.trades, a.scores))
    print(f"{a.trades:,} aggTrades, {a.scores:,} score events, batches of {BATCH:,}")
    for backend, res in results.items():
        print(f"\n{backend}")
        for k, v in res.items():
            print(f"  {k:34s} {v:>12,.0f} rows/s")


if __name__ == "__main__":
    main()
