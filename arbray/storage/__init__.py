"""Storage: one schema, numbered migrations, SQLite (embedded default) and PostgreSQL backends.

``await open_store()`` picks the backend from the DSN (``ARBRAY_DB``, a secret file named by
``ARBRAY_DB_FILE``, or the SQLite file under the user's data directory) and, by default, applies
pending migrations before returning. See ``docs/storage.md`` for the schema and conventions.
"""

from __future__ import annotations

from arbray.storage.base import SqlStore, Store
from arbray.storage.config import StoreConfig, dialect_of


async def open_store(config: StoreConfig | str | None = None, migrate: bool = True) -> SqlStore:
    """Open the store for ``config`` (a ``StoreConfig``, a DSN, or None for the default DSN)."""
    cfg = config if isinstance(config, StoreConfig) else StoreConfig() if config is None else StoreConfig(dsn=config)
    store: SqlStore
    if dialect_of(cfg.dsn) == "sqlite":
        from arbray.storage.sqlite import SqliteStore

        store = await SqliteStore.open(cfg)
    else:
        from arbray.storage.postgres import PostgresStore

        store = await PostgresStore.open(cfg)
    if migrate:
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
    return store


__all__ = ["SqlStore", "Store", "StoreConfig", "open_store"]
