"""PostgreSQL backend through asyncpg: a connection pool, cached prepared statements, COPY for bulk.

Statements use asyncpg's per-connection prepared-statement cache (every parametrised ``execute``
and ``fetch`` is prepared once per connection). Bulk inserts ``COPY`` rows into a session-local
staging table and move them with one ``INSERT … SELECT … ON CONFLICT DO NOTHING``, which keeps
them idempotent at COPY speed. Migrations hold a transaction-scoped advisory lock.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from arbray.storage.base import SqlStore
from arbray.storage.config import StoreConfig
from arbray.storage.schema import Dialect

_QMARK = re.compile(r"\?")
_MIGRATION_LOCK = 0x61726272  # "arbr"
_STATUS_COUNT = re.compile(r"(\d+)$")


def to_dollar(sql: str) -> str:
    """``?`` placeholders → ``$1, $2, …`` (the SQL of this package never has ``?`` inside literals)."""
    n = 0

    def sub(_: re.Match[str]) -> str:
        nonlocal n
        n += 1
        return f"${n}"

    return _QMARK.sub(sub, sql)


class _PgConn:
    """``Conn`` over one pooled asyncpg connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.raw = conn
        self._cache: dict[str, str] = {}

    def _sql(self, sql: str) -> str:
        out = self._cache.get(sql)
        if out is None:
            out = self._cache[sql] = to_dollar(sql)
        return out

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        status: str = await (self.raw.execute(self._sql(sql), *args) if args else self.raw.execute(sql))
        m = _STATUS_COUNT.search(status)
        return int(m.group(1)) if m else 0

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self.raw.executemany(self._sql(sql), rows)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.raw.fetch(self._sql(sql), *args)]


class PostgresStore(SqlStore):
    """The production store: PostgreSQL through an asyncpg pool."""

    dialect: Dialect = "postgresql"

    def __init__(self, config: StoreConfig, pool: asyncpg.Pool) -> None:
        self.config = config
        self._pool = pool

    @classmethod
    async def open(cls, config: StoreConfig) -> PostgresStore:
        """Create the pool (credentials come only from the DSN, i.e. the environment or a secret file)."""
        pool = await asyncpg.create_pool(config.dsn, min_size=1, max_size=config.pool_max_size)
        return cls(config, pool)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[_PgConn]:
        async with self._pool.acquire() as conn:
            yield _PgConn(conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PgConn]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield _PgConn(conn)

    async def _lock_migrations(self, c: Any) -> None:
        await c.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))

    async def _bulk_insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                           conflict: str) -> None:
        cols = ", ".join(columns)
        stage = f"_stage_{table}"
        async with self.transaction() as c:
            await c.raw.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
                                f"SELECT {cols} FROM {table} WITH NO DATA")
            await c.raw.copy_records_to_table(stage, records=rows, columns=list(columns))
            await c.raw.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} "
                                f"ON CONFLICT ({conflict}) DO NOTHING")

    async def close(self) -> None:
        await self._pool.close()

    async def describe_schema(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        async with self.connection() as c:
            cols = await c.fetch(
                "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity "
                "FROM information_schema.columns WHERE table_schema = current_schema() "
                "ORDER BY table_name, ordinal_position")
            for r in cols:
                out.setdefault(r["table_name"], []).append(
                    f"{r['column_name']} {r['data_type']} nullable={r['is_nullable']} default={r['column_default']} "
                    f"identity={r['is_identity']}")
            idx = await c.fetch("SELECT tablename, indexdef, schemaname FROM pg_indexes "
                                "WHERE schemaname = current_schema() ORDER BY tablename, indexname")
            for r in idx:  # the definition names the schema; drop it so schemas compare across databases
                out.setdefault(r["tablename"], []).append(
                    "index " + r["indexdef"].replace(f" {r['schemaname']}.", " "))
            cons = await c.fetch(
                "SELECT cl.relname AS t, pg_get_constraintdef(co.oid) AS d FROM pg_constraint co "
                "JOIN pg_class cl ON cl.oid = co.conrelid JOIN pg_namespace n ON n.oid = cl.relnamespace "
                "WHERE n.nspname = current_schema() ORDER BY cl.relname, co.conname")
            for r in cons:
                out.setdefault(r["t"], []).append(f"constraint {r['d']}")
        return out
