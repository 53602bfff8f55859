"""SQLite backend: stdlib ``sqlite3`` on one connection driven by one worker thread, WAL mode.

A single thread owns the connection (sqlite3 objects are not shared across threads) and an
``asyncio.Lock`` gives each transaction exclusive use of it, so the event loop never blocks on
disk I/O and concurrent tasks never interleave statements inside each other's transactions.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from arbray.storage.base import SqlStore
from arbray.storage.config import StoreConfig, sqlite_path
from arbray.storage.schema import Dialect

T = TypeVar("T")


class _SqliteConn:
    """``Conn`` over the store's connection; ``in_tx`` says whether a transaction is open."""

    def __init__(self, store: SqliteStore, in_tx: bool) -> None:
        self._store = store
        self._in_tx = in_tx

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        def run(db: sqlite3.Connection) -> int:
            return db.execute(sql, tuple(args)).rowcount

        return await self._store._run(run)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        in_tx = self._in_tx

        def run(db: sqlite3.Connection) -> None:
            if in_tx:
                db.executemany(sql, rows)
                return
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(sql, rows)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        await self._store._run(run)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        def run(db: sqlite3.Connection) -> list[dict[str, Any]]:
            cur = db.execute(sql, tuple(args))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

        return await self._store._run(run)


class SqliteStore(SqlStore):
    """The embedded store: a SQLite file (created with its directory) in WAL mode."""

    dialect: Dialect = "sqlite"

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.path = sqlite_path(config.dsn)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="arbray-sqlite")
        self._lock = asyncio.Lock()
        self._db: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, config: StoreConfig) -> SqliteStore:
        """Open (creating if needed) the database file and configure the connection."""
        store = cls(config)
        await asyncio.get_running_loop().run_in_executor(store._executor, store._connect)
        return store

    def _connect(self) -> None:
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(Path(self.path).expanduser() if self.path != ":memory:" else self.path,
                             isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA busy_timeout = 10000")
        self._db = db

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        if db is None:
            raise RuntimeError("store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, db)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[_SqliteConn]:
        async with self._lock:
            yield _SqliteConn(self, in_tx=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqliteConn]:
        async with self._lock:
            await self._run(lambda db: db.execute("BEGIN IMMEDIATE"))
            try:
                yield _SqliteConn(self, in_tx=True)
            except BaseException:
                await self._run(lambda db: db.execute("ROLLBACK"))
                raise
            await self._run(lambda db: db.execute("COMMIT"))

    async def _lock_migrations(self, c: Any) -> None:
        """``BEGIN IMMEDIATE`` already holds SQLite's write lock for the whole transaction."""

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, db.close)
        self._executor.shutdown(wait=True)

    async def describe_schema(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        async with self.connection() as c:
            tables = await c.fetch("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                                   "ORDER BY name")
            for t in tables:
                name = t["name"]
                cols = await c.fetch(f"PRAGMA table_info({name})")
                desc = [f"{r['name']} {r['type']} notnull={r['notnull']} default={r['dflt_value']} pk={r['pk']}"
                        for r in cols]
                idx = await c.fetch("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                                    "AND sql IS NOT NULL ORDER BY name", (name,))
                desc += [f"index {r['sql']}" for r in idx]
                out[name] = desc
        return out
