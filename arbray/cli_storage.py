"""``arbray db``: apply migrations, show the schema version and row counts, export a table.

``arbray db migrate [--db DSN]`` applies pending migrations; ``arbray db info`` prints the DSN
(password redacted), schema version and rows per table as JSON; ``arbray db export --table T
--format csv|jsonl [--out FILE]`` streams a table in primary-key order. Without ``--db`` the DSN
comes from ``ARBRAY_DB`` / ``ARBRAY_DB_FILE`` or the embedded SQLite default.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import sys
from typing import IO, Any

import orjson

from arbray.storage import open_store
from arbray.storage.config import StoreConfig, redact
from arbray.storage.schema import LATEST_VERSION, TABLES


def _config(args: argparse.Namespace) -> StoreConfig:
    return StoreConfig(dsn=args.db) if args.db else StoreConfig()


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(obj) + b"\n")
    sys.stdout.flush()


async def _migrate(cfg: StoreConfig) -> dict[str, Any]:
    store = await open_store(cfg, migrate=False)
    try:
        applied = await store.migrate()
        return {"db": redact(cfg.dsn), "applied": applied, "schema_version": await store.schema_version()}
    finally:
        await store.close()


async def _info(cfg: StoreConfig) -> dict[str, Any]:
    store = await open_store(cfg, migrate=False)
    try:
        return {"db": redact(cfg.dsn), "backend": store.dialect, "schema_version": await store.schema_version(),
                "latest_version": LATEST_VERSION, "rows": await store.row_counts()}
    finally:
        await store.close()


def _cell(v: Any) -> Any:
    return orjson.dumps(v).decode() if isinstance(v, dict | list) else v


async def export_table(cfg: StoreConfig, table: str, fmt: str, out: IO[bytes]) -> int:
    """Write every row of ``table`` to ``out`` as CSV (JSON cells as JSON text) or JSON lines; row count."""
    store = await open_store(cfg, migrate=False)
    n = 0
    try:
        writer: Any = None
        text = io.StringIO()
        async for row in store.export_rows(table):
            if fmt == "jsonl":
                out.write(orjson.dumps(row) + b"\n")
            else:
                if writer is None:
                    writer = csv.DictWriter(text, fieldnames=list(row), lineterminator="\n")
                    writer.writeheader()
                writer.writerow({k: _cell(v) for k, v in row.items()})
                out.write(text.getvalue().encode())
                text.seek(0)
                text.truncate()
            n += 1
    finally:
        await store.close()
    return n


def _cmd_migrate(args: argparse.Namespace) -> int:
    _emit(asyncio.run(_migrate(_config(args))))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    _emit(asyncio.run(_info(_config(args))))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if args.out == "-":
        n = asyncio.run(export_table(cfg, args.table, args.format, sys.stdout.buffer))
        sys.stdout.flush()
    else:
        with open(args.out, "wb") as fh:
            n = asyncio.run(export_table(cfg, args.table, args.format, fh))
    sys.stderr.write(f"exported {n} rows of {args.table}\n")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``db`` subcommand (migrate, info, export) to the ``arbray`` parser's subparsers."""
    db = subparsers.add_parser("db", help="the journal database: migrations, info, export")
    sub = db.add_subparsers(dest="db_command", required=True)
    dsn_help = "sqlite:///PATH or postgresql://… (default: $ARBRAY_DB, $ARBRAY_DB_FILE, or the embedded SQLite file)"
    m = sub.add_parser("migrate", help="apply pending schema migrations")
    m.add_argument("--db", help=dsn_help)
    m.set_defaults(func=_cmd_migrate)
    i = sub.add_parser("info", help="schema version and row counts as JSON")
    i.add_argument("--db", help=dsn_help)
    i.set_defaults(func=_cmd_info)
    e = sub.add_parser("export", help="export one table as CSV or JSON lines")
    e.add_argument("--db", help=dsn_help)
    e.add_argument("--table", required=True, choices=TABLES)
    e.add_argument("--format", choices=("csv", "jsonl"), default="jsonl")
    e.add_argument("--out", default="-", help="output file, or - for stdout (default)")
    e.set_defaults(func=_cmd_export)
