"""Fixtures for the storage suite: every test runs once on SQLite and once on real PostgreSQL.

PostgreSQL: ``$ARBRAY_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``) is the
admin connection; the session creates ``arbray_test_<random>`` and drops it at the end, and every
test gets its own empty schema in it (via ``search_path``). Unreachable → those tests skip.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pytest

T = TypeVar("T")
ADMIN_DSN = os.environ.get("ARBRAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
_counter = itertools.count()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh event loop (no pytest-asyncio)."""
    return asyncio.run(coro)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN, timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _with_db(dsn: str, db: str, query: str = "") -> str:
    p = urlsplit(dsn)
    return urlunsplit((p.scheme, p.netloc, f"/{db}", query, ""))


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """DSN of a PostgreSQL database created for this test session (dropped afterwards)."""
    name = f"arbray_test_{secrets.token_hex(4)}"
    try:
        run(_admin(f"CREATE DATABASE {name}"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL not reachable at {ADMIN_DSN} (set ARBRAY_TEST_PG): {exc}")
    try:
        yield _with_db(ADMIN_DSN, name)
    finally:
        run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(params=["sqlite", "postgresql"])
def make_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Factory of DSNs of new empty databases on the parametrised backend."""
    if request.param == "sqlite":
        return lambda: f"sqlite:///{tmp_path / f'db{next(_counter)}.sqlite'}"
    base: str = request.getfixturevalue("pg_database")

    def new_schema() -> str:
        schema = f"t{next(_counter)}_{secrets.token_hex(3)}"

        async def create() -> None:
            conn = await asyncpg.connect(base)
            try:
                await conn.execute(f"CREATE SCHEMA {schema}")
            finally:
                await conn.close()

        with ThreadPoolExecutor(1) as pool:  # callable from inside a test's running event loop too
            pool.submit(run, create()).result()
        return _with_db(base, urlsplit(base).path.lstrip("/"), f"search_path={schema}")

    return new_schema


@pytest.fixture
def dsn(make_dsn: Callable[[], str]) -> str:
    """DSN of one new empty database on the parametrised backend."""
    return make_dsn()
