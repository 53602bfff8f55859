"""The ``Store`` protocol and ``SqlStore``, its implementation over a minimal connection interface.

All SQL is written once with ``?`` placeholders in the subset SQLite 3.35+ and PostgreSQL share
(``ON CONFLICT``, ``RETURNING``, window functions); a backend supplies connections, transactions,
placeholder translation and its own fast bulk path. JSON columns travel as text and are decoded on
read; booleans are normalised to ``bool``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import orjson

from arbray.scoring.result import ScoreResult
from arbray.storage.config import StoreConfig
from arbray.storage.records import (
    LIVE_RUN,
    AggTrade,
    Continuity,
    FillRecord,
    FundingRate,
    Kline,
    Liquidation,
    OpenInterest,
    OrderRecord,
    Page,
    PositionRecord,
    RiskEvent,
    Role,
    SignalRecord,
    StrategyRecord,
    StrategyStatus,
    TradeRecord,
    coerce,
)
from arbray.storage.schema import LATEST_VERSION, MIGRATIONS_TABLE_DDL, TABLES, Dialect, load_migrations

JSON_COLUMNS = frozenset({"config", "detail", "tags", "layers", "gates", "missing", "inputs", "features"})
BOOL_COLUMNS = frozenset({"side_allowed", "gate_passed", "is_entry", "is_flip_signal", "reduce_only", "is_maker",
                          "is_buyer_maker"})
EXPORT_ORDER: dict[str, str] = {
    "schema_migrations": "version", "strategies": "strategy_id", "strategy_events": "id", "balance_ledger": "id",
    "score_events": "id", "signals": "id", "orders": "client_order_id", "order_events": "id",
    "positions": "position_id", "fills": "fill_id", "trades": "id", "risk_state": "scope", "risk_events": "id",
    "agg_trades": "symbol, agg_id", "klines": "symbol, interval, open_ms", "funding_rates": "symbol, funding_ms",
    "open_interest": "symbol, ts_ms", "liquidations": "symbol, ts_ms, side, price, qty",
    "retention_policy": "table_name", "api_credentials": "id", "score_labels": "event_id", "calibrators": "id",
    "runs": "run_id", "pm_inputs": "run_id, seq", "screen_runs": "id", "screen_results": "run_id, rank",
}
"""A stable order (the primary key) per table, for export paging."""

SCORE_COLUMNS = ("run_id", "strategy", "kind", "version", "config_hash", "symbol", "ts_ms", "side", "side_allowed",
                 "total", "gate_passed", "block_reason", "tier", "is_entry", "is_flip_signal", "layers", "gates",
                 "missing", "inputs", "features", "p_calibrated", "calibrator_version")
AGG_COLUMNS = AggTrade._fields
LABEL_COLUMNS = ("event_id", "status", "entry_price", "atr", "y_binary_30m", "y_binary_60m", "y_return_15m",
                 "y_return_30m", "y_return_60m", "mfe_r_60m", "mae_r_60m", "first_hit", "first_hit_ms",
                 "price_source", "data_source", "label_version", "labelled_ms")
"""``score_labels`` columns in the order ``insert_score_labels`` takes them (``arbray.calibration.labels``)."""
CALIBRATOR_COLUMNS = ("strategy", "version", "method", "score_field", "label", "n_samples", "n_wins", "params",
                      "metrics", "train_from_ms", "train_to_ms", "created_ms", "active")
"""``calibrators`` columns ``insert_calibrator`` writes (``arbray.calibration.calibrators``)."""
_STATUS_COLUMN: dict[str, str] = {"paused": "paused_ms", "running": "resumed_ms", "deprecated": "deprecated_ms"}
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_TABLE_EXISTS: dict[Dialect, str] = {
    "sqlite": "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?",
    "postgresql": "SELECT COUNT(*) AS n FROM information_schema.tables "
                  "WHERE table_schema = current_schema() AND table_name = ?",
}


def now_ms() -> int:
    """Current UTC epoch milliseconds."""
    return time.time_ns() // 1_000_000


def dumps(value: Any) -> str | None:
    """JSON text of ``value`` (None stays NULL); tuples become arrays."""
    return None if value is None else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """scrypt cost parameters; stored in each credential row, so raising them needs no migration."""

    n: int = 2**14
    r: int = 8
    p: int = 1


DEFAULT_SCRYPT = ScryptParams()
TOKEN_PATTERN = re.compile(r"^arb_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
"""``arb_<token_id>_<secret>``: 16 hex digits find the row, a 256-bit url-safe secret is verified."""
CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
LAST_USED_RESOLUTION_MS = 60_000
"""``last_used_ms`` is stamped at most once a minute per credential, so reads do not write every time."""
_DUMMY_SALT = bytes(16)
_NO_HASH = "0" * 64


def hash_token(secret: str, salt: bytes, params: ScryptParams = DEFAULT_SCRYPT) -> str:
    """scrypt hex digest (32 bytes) of a token's secret part: only this and the salt are stored."""
    return hashlib.scrypt(secret.encode(), salt=salt, n=params.n, r=params.r, p=params.p,
                          maxmem=256 * params.n * params.r + (1 << 20), dklen=32).hex()


def split_token(token: str) -> tuple[str, str] | None:
    """``(token_id, secret)`` of a well-formed token, else None."""
    m = TOKEN_PATTERN.match(token)
    return (m.group(1), m.group(2)) if m else None


def decode_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A fetched row with JSON columns parsed and boolean columns as ``bool``."""
    out = dict(row)
    for k, v in out.items():
        if v is None:
            continue
        if k in JSON_COLUMNS and isinstance(v, str):
            out[k] = orjson.loads(v)
        elif k in BOOL_COLUMNS:
            out[k] = bool(v)
    return out


def score_row(event: ScoreResult | Mapping[str, Any], run_id: str,
              features: Mapping[str, Any] | None) -> tuple[Any, ...]:
    """The ``score_events`` row of one ``ScoreResult`` (or its ``to_dict()``, optionally with ``features``)."""
    d = event.to_dict() if isinstance(event, ScoreResult) else event
    feats = d.get("features", features)
    return (run_id, d["strategy_id"], d["kind"], d["version"], d["config_hash"], d["symbol"], int(d["ts_ms"]),
            d["side"], bool(d["side_allowed"]), float(d["total"]), d["block_reason"] is None, d["block_reason"],
            d["tier"], bool(d["is_entry"]), bool(d["is_flip_signal"]), dumps(list(d["layers"])),
            dumps(list(d["gates"])), dumps(list(d["missing"])), dumps(dict(d["inputs"])), dumps(feats),
            d.get("p_calibrated"), d.get("calibrator_version"))


class Conn(Protocol):
    """What ``SqlStore`` needs of a connection; SQL uses ``?`` placeholders."""

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; return the affected row count."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for every row."""
        ...

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one query; return its rows as dicts."""
        ...


@runtime_checkable
class Store(Protocol):
    """The async storage interface of arbray; ``open_store`` returns one for a DSN.

    Every write accepts a record dataclass from ``arbray.storage.records`` or a plain mapping with
    the same keys; the semantics of each method are documented on ``SqlStore``.
    """

    dialect: Dialect

    async def migrate(self, target: int | None = None) -> list[int]: ...
    async def schema_version(self) -> int: ...
    async def describe_schema(self) -> dict[str, list[str]]: ...
    async def row_counts(self) -> dict[str, int]: ...
    async def close(self) -> None: ...
    async def upsert_strategy(self, rec: StrategyRecord | Mapping[str, Any], ts_ms: int | None = None) -> bool: ...
    async def set_strategy_status(self, strategy_id: str, status: StrategyStatus, ts_ms: int | None = None,
                                  reason: str | None = None) -> bool: ...
    async def mark_strategy_run(self, strategy_id: str, ts_ms: int | None = None) -> None: ...
    async def get_strategy(self, strategy_id: str) -> dict[str, Any] | None: ...
    async def strategy_events(self, strategy_id: str) -> list[dict[str, Any]]: ...
    async def list_strategies(self, status: StrategyStatus | None = None) -> list[dict[str, Any]]: ...
    async def add_ledger_entry(self, strategy_id: str, kind: str, amount: float, ts_ms: int | None = None,
                               ref: str | None = None) -> bool: ...
    async def insert_score_events(self, events: Iterable[ScoreResult | Mapping[str, Any]], run_id: str = LIVE_RUN,
                                  features: Mapping[str, Any] | None = None) -> int: ...
    async def insert_signal(self, rec: SignalRecord | Mapping[str, Any]) -> bool: ...
    async def record_order(self, rec: OrderRecord | Mapping[str, Any]) -> None: ...
    async def apply_fill(self, fill: FillRecord | Mapping[str, Any],
                         position: PositionRecord | Mapping[str, Any] | None = None) -> bool: ...
    async def order_history(self, client_order_id: str) -> list[dict[str, Any]]: ...
    async def fills(self, client_order_id: str) -> list[dict[str, Any]]: ...
    async def record_trade(self, rec: TradeRecord | Mapping[str, Any]) -> bool: ...
    async def set_risk_state(self, scope: str, state: str, ts_ms: int | None = None,
                             detail: Mapping[str, Any] | None = None) -> None: ...
    async def risk_state(self) -> dict[str, dict[str, Any]]: ...
    async def add_risk_event(self, ev: RiskEvent | Mapping[str, Any]) -> None: ...
    async def insert_agg_trades(self, rows: Sequence[AggTrade | tuple[Any, ...]]) -> None: ...
    async def insert_klines(self, rows: Sequence[Kline]) -> None: ...
    async def insert_funding_rates(self, rows: Sequence[FundingRate]) -> None: ...
    async def insert_open_interest(self, rows: Sequence[OpenInterest]) -> None: ...
    async def insert_liquidations(self, rows: Sequence[Liquidation]) -> None: ...
    async def continuity(self, symbol: str | None = None) -> list[Continuity]: ...
    async def apply_retention(self, ts_ms: int | None = None) -> dict[str, int]: ...
    async def create_credential(self, name: str, role: Role, ts_ms: int | None = None,
                                params: ScryptParams = DEFAULT_SCRYPT) -> str: ...
    async def authenticate_token(self, token: str, ts_ms: int | None = None) -> dict[str, Any] | None: ...
    async def verify_token(self, token: str, ts_ms: int | None = None) -> Role | None: ...
    async def revoke_credential(self, name: str, ts_ms: int | None = None) -> bool: ...
    async def list_credentials(self) -> list[dict[str, Any]]: ...
    async def add_strategy_event(self, strategy_id: str, event: str, detail: Mapping[str, Any] | None = None,
                                 ts_ms: int | None = None) -> None: ...
    async def add_strategy_balance(self, strategy_id: str, amount: float, ref: str, ts_ms: int | None = None,
                                   source: str | None = None) -> bool: ...
    async def restore_strategy(self, strategy_id: str, ts_ms: int | None = None,
                               reason: str | None = None) -> bool: ...
    async def pnl_since(self, since_ms: int) -> dict[str, dict[str, Any]]: ...
    async def execution_kpis(self) -> dict[str, dict[str, Any]]: ...
    async def risk_events(self, limit: int = 100, cursor: str | None = None) -> Page: ...
    async def market_history(self, symbol: str, since_ms: int, limit: int = 500) -> dict[str, list[dict[str, Any]]]: ...
    async def latest_scores(self, strategies: Sequence[str] | None = None,
                            run_id: str = LIVE_RUN) -> list[dict[str, Any]]: ...
    async def score_history(self, strategy: str, since_ms: int | None = None, limit: int = 1_000,
                            run_id: str = LIVE_RUN) -> list[dict[str, Any]]: ...
    async def signal_history(self, strategy_id: str | None = None, symbol: str | None = None, limit: int = 100,
                             cursor: str | None = None) -> Page: ...
    async def open_positions(self, strategy_id: str | None = None) -> list[dict[str, Any]]: ...
    async def trades(self, strategy_id: str | None = None, symbol: str | None = None, run_id: str | None = None,
                     since_ms: int | None = None, until_ms: int | None = None, exit_reason: str | None = None,
                     limit: int = 100, cursor: str | None = None) -> Page: ...
    async def equity_curve(self, strategy_id: str) -> list[dict[str, Any]]: ...
    async def strategy_stats(self, strategy_id: str) -> dict[str, Any]: ...
    async def strategy_cards(self, status: StrategyStatus | None = None) -> list[dict[str, Any]]: ...
    def export_rows(self, table: str, page_size: int = 5_000) -> AsyncIterator[dict[str, Any]]: ...
    # ---- calibration (arbray.calibration): labels, calibrators, their inputs ----
    async def unlabelled_score_events(self, max_ts_ms: int, after_id: int = 0, limit: int = 5_000,
                                      strategy: str | None = None, run_id: str | None = None,
                                      label_version: str | None = None) -> list[dict[str, Any]]: ...
    async def insert_score_labels(self, rows: Sequence[Sequence[Any]]) -> int: ...
    async def labelled_events(self, strategy: str | None = None, run_id: str | None = None,
                              since_ms: int | None = None, until_ms: int | None = None,
                              with_details: bool = False) -> list[dict[str, Any]]: ...
    async def label_counts(self) -> dict[str, int]: ...
    async def score_events_at(self, run_id: str, strategy: str, symbol: str,
                              ts_list: Sequence[int]) -> list[dict[str, Any]]: ...
    async def agg_trade_prices(self, symbol: str, from_ms: int, to_ms: int) -> tuple[list[int], list[float]]: ...
    async def kline_bars(self, symbol: str, interval: str, from_ms: int, to_ms: int) -> list[dict[str, Any]]: ...
    async def market_data_end(self, kline_interval: str = "1m") -> dict[str, int]: ...
    async def insert_calibrator(self, rec: Mapping[str, Any]) -> bool: ...
    async def calibrators(self, strategy: str | None = None, active_only: bool = False) -> list[dict[str, Any]]: ...
    async def set_calibrator_active(self, version: str, active: bool) -> bool: ...
    async def calibration_state(self) -> str: ...

    # ---- runtime (arbray.runtime): runs, the PositionManager's input log, position states ----
    async def upsert_position(self, rec: PositionRecord | Mapping[str, Any]) -> None: ...
    async def start_run(self, run_id: str, mode: str, source: str, config: Mapping[str, Any],
                        ts_ms: int | None = None) -> bool: ...
    async def update_run(self, run_id: str, status: str, ts_ms: int | None = None,
                         summary: Mapping[str, Any] | None = None) -> None: ...
    async def get_run(self, run_id: str) -> dict[str, Any] | None: ...
    async def append_pm_inputs(self, run_id: str, rows: Sequence[tuple[int, str, str | None, int, bytes]]) -> int: ...
    async def pm_inputs(self, run_id: str, after_seq: int = 0,
                        limit: int = 10_000) -> list[tuple[int, str, str | None, int, bytes]]: ...
    async def agg_trades_since(self, symbol: str, window_ms: int) -> list[tuple[int, int, float, float, bool]]: ...

    # ---- screener (arbray.screener.service): periodic scans and their ranked results ----
    async def insert_screen_run(self, run: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> int: ...
    async def screen_runs(self, model: str | None = None, limit: int = 100, cursor: str | None = None) -> Page: ...
    async def latest_screen_run(self, model: str, limit: int | None = None) -> dict[str, Any] | None: ...
    async def screen_results(self, run_id: int, limit: int | None = None) -> list[dict[str, Any]]: ...
    # ---- end screener ----


class SqlStore(ABC):
    """Every ``Store`` method written once over ``Conn``; subclasses provide the connections."""

    dialect: Dialect
    config: StoreConfig
    fault_hook: Callable[[str], None] | None = None
    """Called with a checkpoint name inside multi-write transactions (``"fill_written"``); tests use it
    to inject a failure between two writes that must be atomic."""

    @abstractmethod
    def connection(self) -> AbstractAsyncContextManager[Conn]:
        """A connection in autocommit mode (each statement is its own transaction)."""

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Conn]:
        """A connection inside a transaction: committed on exit, rolled back on an exception."""

    @abstractmethod
    async def close(self) -> None:
        """Release the connection(s)."""

    @abstractmethod
    async def describe_schema(self) -> dict[str, list[str]]:
        """Normalised description of every table (columns with type, nullability, default) and index."""

    @abstractmethod
    async def _lock_migrations(self, c: Conn) -> None:
        """Serialise migrations across processes for the rest of the current transaction."""

    async def _bulk_insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                           conflict: str) -> None:
        """Insert many rows, skipping those that conflict on ``conflict``; backends may override."""
        cols = ", ".join(columns)
        marks = ", ".join("?" * len(columns))
        async with self.transaction() as c:
            await c.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT ({conflict}) DO NOTHING",
                                rows)

    def _fault(self, point: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(point)

    # ---- schema ---------------------------------------------------------------------------------

    async def migrate(self, target: int | None = None) -> list[int]:
        """Apply every pending migration up to ``target`` (default: all); return the versions applied."""
        migrations = load_migrations()
        async with self.transaction() as c:
            await self._lock_migrations(c)
            await c.execute(MIGRATIONS_TABLE_DDL)
        applied: list[int] = []
        for m in migrations:
            if target is not None and m.version > target:
                break
            async with self.transaction() as c:
                await self._lock_migrations(c)
                rows = await c.fetch("SELECT checksum FROM schema_migrations WHERE version = ?", (m.version,))
                if rows:
                    if rows[0]["checksum"] != m.checksum:
                        raise RuntimeError(f"migration {m.version} ({m.name}) changed after it was applied")
                    continue
                for stmt in m.statements(self.dialect):
                    await c.execute(stmt)
                await c.execute("INSERT INTO schema_migrations (version, name, checksum, applied_ms) "
                                "VALUES (?, ?, ?, ?)", (m.version, m.name, m.checksum, now_ms()))
            applied.append(m.version)
        version = await self.schema_version()
        if version > LATEST_VERSION:
            raise RuntimeError(f"database schema version {version} is newer than this arbray ({LATEST_VERSION})")
        return applied

    async def schema_version(self) -> int:
        """The highest applied migration (0 for an empty database)."""
        async with self.connection() as c:
            if not (await c.fetch(_TABLE_EXISTS[self.dialect], ("schema_migrations",)))[0]["n"]:
                return 0
            rows = await c.fetch("SELECT MAX(version) AS v FROM schema_migrations")
        return int(rows[0]["v"] or 0)

    async def row_counts(self) -> dict[str, int]:
        """Rows per table of the schema (tables not yet created are left out)."""
        have = set(await self.describe_schema())
        out: dict[str, int] = {}
        async with self.connection() as c:
            for t in TABLES:
                if t in have:
                    out[t] = int((await c.fetch(f"SELECT COUNT(*) AS n FROM {t}"))[0]["n"])
        return out

    async def export_rows(self, table: str, page_size: int = 5_000) -> AsyncIterator[dict[str, Any]]:
        """Every row of ``table`` in primary-key order, decoded, paged by ``page_size``."""
        if table not in EXPORT_ORDER:
            raise ValueError(f"unknown table {table!r}; one of: {', '.join(TABLES)}")
        offset = 0
        while True:
            async with self.connection() as c:
                rows = await c.fetch(f"SELECT * FROM {table} ORDER BY {EXPORT_ORDER[table]} LIMIT ? OFFSET ?",
                                     (page_size, offset))
            for r in rows:
                yield decode_row(r)
            if len(rows) < page_size:
                return
            offset += page_size

    # ---- strategies and balances ----------------------------------------------------------------

    async def upsert_strategy(self, rec: StrategyRecord | Mapping[str, Any], ts_ms: int | None = None) -> bool:
        """Create the strategy (with its initial ledger entry) or update its config; True when created."""
        r = coerce(StrategyRecord, rec)
        sid = str(uuid.UUID(r.strategy_id))
        ts = now_ms() if ts_ms is None else ts_ms
        async with self.transaction() as c:
            created = await c.execute(
                "INSERT INTO strategies (strategy_id, slug, display_name, kind, config, config_hash, status, "
                "initial_balance, current_balance, created_ms, updated_ms, status_changed_ms, description, tags) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?) ON CONFLICT (strategy_id) DO NOTHING",
                (sid, r.slug, r.display_name, r.kind, dumps(dict(r.config)), r.config_hash, r.status,
                 float(r.initial_balance), r.created_ms, r.created_ms, r.created_ms, r.description,
                 dumps(list(r.tags))))
            if created:
                await c.execute("INSERT INTO strategy_events (strategy_id, ts_ms, event, from_status, to_status) "
                                "VALUES (?, ?, 'created', NULL, ?)", (sid, r.created_ms, r.status))
                await self._ledger(c, sid, "initial", float(r.initial_balance), r.created_ms, "initial")
                return True
            old = await c.fetch("SELECT config_hash FROM strategies WHERE strategy_id = ?", (sid,))
            await c.execute("UPDATE strategies SET slug = ?, display_name = ?, kind = ?, config = ?, config_hash = ?, "
                            "description = ?, tags = ?, updated_ms = ? WHERE strategy_id = ?",
                            (r.slug, r.display_name, r.kind, dumps(dict(r.config)), r.config_hash, r.description,
                             dumps(list(r.tags)), ts, sid))
            if old[0]["config_hash"] != r.config_hash:
                await c.execute("INSERT INTO strategy_events (strategy_id, ts_ms, event, detail) "
                                "VALUES (?, ?, 'config_changed', ?)",
                                (sid, ts, dumps({"from": old[0]["config_hash"], "to": r.config_hash})))
            return False

    async def set_strategy_status(self, strategy_id: str, status: StrategyStatus, ts_ms: int | None = None,
                                  reason: str | None = None) -> bool:
        """Move a strategy to ``status``, stamping the change and logging it; False if already there.

        ``deprecated`` is terminal. The update is conditional on the status read, so two concurrent
        changes cannot both log a transition from the same state.
        """
        if status not in _STATUS_COLUMN:
            raise ValueError(f"unknown strategy status {status!r}")
        ts = now_ms() if ts_ms is None else ts_ms
        async with self.transaction() as c:
            rows = await c.fetch("SELECT status FROM strategies WHERE strategy_id = ?", (strategy_id,))
            if not rows:
                raise KeyError(strategy_id)
            old = rows[0]["status"]
            if old == status:
                return False
            if old == "deprecated":
                raise ValueError(f"strategy {strategy_id} is deprecated; its status cannot change")
            n = await c.execute(f"UPDATE strategies SET status = ?, status_changed_ms = ?, "
                                f"{_STATUS_COLUMN[status]} = ?, updated_ms = ? WHERE strategy_id = ? AND status = ?",
                                (status, ts, ts, ts, strategy_id, old))
            if n != 1:
                raise RuntimeError(f"strategy {strategy_id} changed status concurrently")
            await c.execute("INSERT INTO strategy_events (strategy_id, ts_ms, event, from_status, to_status, detail) "
                            "VALUES (?, ?, 'status', ?, ?, ?)",
                            (strategy_id, ts, old, status, dumps({"reason": reason} if reason else None)))
            return True

    async def mark_strategy_run(self, strategy_id: str, ts_ms: int | None = None) -> None:
        """Stamp ``last_run_ms`` (the strategy produced a score)."""
        async with self.connection() as c:
            await c.execute("UPDATE strategies SET last_run_ms = ? WHERE strategy_id = ?",
                            (now_ms() if ts_ms is None else ts_ms, strategy_id))

    async def get_strategy(self, strategy_id: str) -> dict[str, Any] | None:
        """One strategy row, or None."""
        async with self.connection() as c:
            rows = await c.fetch("SELECT * FROM strategies WHERE strategy_id = ?", (strategy_id,))
        return decode_row(rows[0]) if rows else None

    async def list_strategies(self, status: StrategyStatus | None = None) -> list[dict[str, Any]]:
        """Strategies (optionally of one status) by creation time."""
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        async with self.connection() as c:
            rows = await c.fetch(f"SELECT * FROM strategies {where} ORDER BY created_ms, strategy_id", args)
        return [decode_row(r) for r in rows]

    async def strategy_events(self, strategy_id: str) -> list[dict[str, Any]]:
        """The strategy's lifecycle history, oldest first."""
        async with self.connection() as c:
            rows = await c.fetch("SELECT * FROM strategy_events WHERE strategy_id = ? ORDER BY ts_ms, id",
                                 (strategy_id,))
        return [decode_row(r) for r in rows]

    async def add_ledger_entry(self, strategy_id: str, kind: str, amount: float, ts_ms: int | None = None,
                               ref: str | None = None) -> bool:
        """Book ``amount`` (signed) to the strategy's balance; with ``ref`` it is booked at most once."""
        async with self.transaction() as c:
            return await self._ledger(c, strategy_id, kind, amount, now_ms() if ts_ms is None else ts_ms, ref)

    async def _ledger(self, c: Conn, strategy_id: str, kind: str, amount: float, ts_ms: int, ref: str | None) -> bool:
        rows = await c.fetch("INSERT INTO balance_ledger (strategy_id, ts_ms, kind, amount, balance_after, ref) "
                             "VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (strategy_id, kind, ref) DO NOTHING RETURNING id",
                             (strategy_id, ts_ms, kind, float(amount), ref))
        if not rows:
            return False
        bal = await c.fetch("UPDATE strategies SET current_balance = current_balance + ? WHERE strategy_id = ? "
                            "RETURNING current_balance", (float(amount), strategy_id))
        if not bal:
            raise KeyError(strategy_id)
        await c.execute("UPDATE balance_ledger SET balance_after = ? WHERE id = ?", (bal[0]["current_balance"],
                                                                                     rows[0]["id"]))
        return True

    # ---- journal ------------------------------------------------------------------------------

    async def insert_score_events(self, events: Iterable[ScoreResult | Mapping[str, Any]], run_id: str = LIVE_RUN,
                                  features: Mapping[str, Any] | None = None) -> int:
        """Store ``ScoreResult``s (objects or ``to_dict()`` dicts) with their raw inputs; idempotent on
        ``(run_id, strategy, symbol, ts_ms)``. ``features`` (a ``FeatureSnapshot.to_dict()``) is stored
        with every event that carries no ``features`` key of its own. Returns the number submitted."""
        rows = [score_row(e, run_id, features) for e in events]
        if rows:
            await self._bulk_insert("score_events", SCORE_COLUMNS, rows, "run_id, strategy, symbol, ts_ms")
        return len(rows)

    async def insert_signal(self, rec: SignalRecord | Mapping[str, Any]) -> bool:
        """Store a signal; False if the same signal was already stored."""
        r = coerce(SignalRecord, rec)
        async with self.connection() as c:
            return bool(await c.execute(
                "INSERT INTO signals (run_id, strategy_id, symbol, ts_ms, side, action, score, tier, price, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id, strategy_id, symbol, ts_ms, action) DO NOTHING",
                (r.run_id, r.strategy_id, r.symbol, r.ts_ms, r.side, r.action, float(r.score), r.tier, r.price,
                 dumps(r.detail))))

    async def record_order(self, rec: OrderRecord | Mapping[str, Any]) -> None:
        """Insert or update an order and append its state at ``updated_ms`` to the order's history."""
        r = coerce(OrderRecord, rec)
        async with self.transaction() as c:
            await c.execute(
                "INSERT INTO orders (client_order_id, run_id, strategy_id, symbol, side, order_type, time_in_force, "
                "price, stop_price, qty, reduce_only, venue_order_id, state, filled_qty, avg_price, created_ms, "
                "updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (client_order_id) DO UPDATE SET price = excluded.price, stop_price = excluded.stop_price, "
                "qty = excluded.qty, venue_order_id = COALESCE(excluded.venue_order_id, orders.venue_order_id), "
                "state = excluded.state, filled_qty = excluded.filled_qty, avg_price = excluded.avg_price, "
                "updated_ms = excluded.updated_ms",
                (r.client_order_id, r.run_id, r.strategy_id, r.symbol, r.side, r.order_type, r.time_in_force, r.price,
                 r.stop_price, float(r.qty), bool(r.reduce_only), r.venue_order_id, r.state, float(r.filled_qty),
                 r.avg_price, r.created_ms, r.updated_ms))
            await c.execute("INSERT INTO order_events (client_order_id, ts_ms, state, detail) VALUES (?, ?, ?, ?) "
                            "ON CONFLICT (client_order_id, ts_ms, state) DO NOTHING",
                            (r.client_order_id, r.updated_ms, r.state,
                             dumps({"filled_qty": r.filled_qty, "avg_price": r.avg_price})))

    async def order_history(self, client_order_id: str) -> list[dict[str, Any]]:
        """The order's state changes, oldest first."""
        async with self.connection() as c:
            rows = await c.fetch("SELECT * FROM order_events WHERE client_order_id = ? ORDER BY ts_ms, id",
                                 (client_order_id,))
        return [decode_row(r) for r in rows]

    async def apply_fill(self, fill: FillRecord | Mapping[str, Any],
                         position: PositionRecord | Mapping[str, Any] | None = None) -> bool:
        """Journal a fill and the position state it produces in one transaction.

        Idempotent on ``fill_id``: a fill already journalled changes nothing and returns False, so a
        replayed fill never moves the position twice.
        """
        f = coerce(FillRecord, fill)
        p = None if position is None else coerce(PositionRecord, position)
        async with self.transaction() as c:
            n = await c.execute(
                "INSERT INTO fills (fill_id, client_order_id, run_id, strategy_id, position_id, symbol, side, price, "
                "qty, fee, fee_asset, is_maker, venue_trade_id, ts_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (fill_id) DO NOTHING",
                (f.fill_id, f.client_order_id, f.run_id, f.strategy_id, f.position_id, f.symbol, f.side, float(f.price),
                 float(f.qty), float(f.fee), f.fee_asset, bool(f.is_maker), f.venue_trade_id, f.ts_ms))
            if not n:
                return False
            self._fault("fill_written")
            if p is not None:
                await c.execute(
                    "INSERT INTO positions (position_id, run_id, strategy_id, symbol, side, status, qty, entry_price, "
                    "stop_price, realised_pnl, fees, funding, opened_ms, updated_ms, closed_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (position_id) DO UPDATE SET "
                    "status = excluded.status, qty = excluded.qty, entry_price = excluded.entry_price, "
                    "stop_price = excluded.stop_price, realised_pnl = excluded.realised_pnl, fees = excluded.fees, "
                    "funding = excluded.funding, updated_ms = excluded.updated_ms, closed_ms = excluded.closed_ms",
                    (p.position_id, p.run_id, p.strategy_id, p.symbol, p.side, p.status, float(p.qty),
                     float(p.entry_price), p.stop_price, float(p.realised_pnl), float(p.fees), float(p.funding),
                     p.opened_ms, p.updated_ms, p.closed_ms))
            return True

    async def record_trade(self, rec: TradeRecord | Mapping[str, Any]) -> bool:
        """Journal a closed trade and book its PnL, fees and funding to the ledger atomically.

        Idempotent on ``trade_id``: a repeated trade is neither stored nor booked twice (False).
        """
        t = coerce(TradeRecord, rec)
        async with self.transaction() as c:
            n = await c.execute(
                "INSERT INTO trades (trade_id, run_id, strategy_id, position_id, symbol, side, qty, entry_price, "
                "entry_ms, exit_price, exit_ms, exit_reason, pnl, fees, funding, risk_distance, r_multiple, score, "
                "tier, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (trade_id) DO NOTHING",
                (t.trade_id, t.run_id, t.strategy_id, t.position_id, t.symbol, t.side, float(t.qty),
                 float(t.entry_price), t.entry_ms, float(t.exit_price), t.exit_ms, t.exit_reason, float(t.pnl),
                 float(t.fees), float(t.funding), t.risk_distance, t.r_multiple, t.score, t.tier, dumps(t.detail)))
            if not n:
                return False
            await self._ledger(c, t.strategy_id, "realised_pnl", t.pnl, t.exit_ms, t.trade_id)
            if t.fees:
                await self._ledger(c, t.strategy_id, "fee", -t.fees, t.exit_ms, t.trade_id)
            if t.funding:
                await self._ledger(c, t.strategy_id, "funding", t.funding, t.exit_ms, t.trade_id)
            return True

    async def set_risk_state(self, scope: str, state: str, ts_ms: int | None = None,
                             detail: Mapping[str, Any] | None = None) -> None:
        """Persist the risk guard's current state for ``scope`` (``global`` or a strategy id)."""
        async with self.connection() as c:
            await c.execute("INSERT INTO risk_state (scope, state, detail, updated_ms) VALUES (?, ?, ?, ?) "
                            "ON CONFLICT (scope) DO UPDATE SET state = excluded.state, detail = excluded.detail, "
                            "updated_ms = excluded.updated_ms",
                            (scope, state, dumps(detail), now_ms() if ts_ms is None else ts_ms))

    async def risk_state(self) -> dict[str, dict[str, Any]]:
        """The persisted risk state per scope."""
        async with self.connection() as c:
            rows = await c.fetch("SELECT * FROM risk_state ORDER BY scope")
        return {r["scope"]: decode_row(r) for r in rows}

    async def add_risk_event(self, ev: RiskEvent | Mapping[str, Any]) -> None:
        """Append a risk event."""
        e = coerce(RiskEvent, ev)
        async with self.connection() as c:
            await c.execute("INSERT INTO risk_events (ts_ms, scope, level, kind, message, detail) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            (e.ts_ms, e.scope, e.level, e.kind, e.message, dumps(e.detail)))

    # ---- market data --------------------------------------------------------------------------

    async def insert_agg_trades(self, rows: Sequence[AggTrade | tuple[Any, ...]]) -> None:
        """Store aggTrades, skipping any ``(symbol, agg_id)`` already stored."""
        if rows:
            await self._bulk_insert("agg_trades", AGG_COLUMNS, rows, "symbol, agg_id")

    async def insert_klines(self, rows: Sequence[Kline]) -> None:
        """Store candles; a candle already stored is replaced (the open candle updates until it closes)."""
        if not rows:
            return
        cols = ", ".join(Kline._fields)
        sets = ", ".join(f"{c} = excluded.{c}" for c in Kline._fields[3:])
        async with self.transaction() as c:
            await c.executemany(f"INSERT INTO klines ({cols}) VALUES ({', '.join('?' * len(Kline._fields))}) "
                                f"ON CONFLICT (symbol, interval, open_ms) DO UPDATE SET {sets}", rows)

    async def insert_funding_rates(self, rows: Sequence[FundingRate]) -> None:
        """Store funding rates, skipping duplicates."""
        if rows:
            await self._bulk_insert("funding_rates", FundingRate._fields, rows, "symbol, funding_ms")

    async def insert_open_interest(self, rows: Sequence[OpenInterest]) -> None:
        """Store open-interest samples, skipping duplicates."""
        if rows:
            await self._bulk_insert("open_interest", OpenInterest._fields, rows, "symbol, ts_ms")

    async def insert_liquidations(self, rows: Sequence[Liquidation]) -> None:
        """Store liquidations, skipping duplicates."""
        if rows:
            await self._bulk_insert("liquidations", Liquidation._fields, rows, "symbol, ts_ms, side, price, qty")

    async def continuity(self, symbol: str | None = None) -> list[Continuity]:
        """Per symbol: the stored aggTrade id range, row count and every missing id range."""
        where, args = ("WHERE symbol = ?", (symbol,)) if symbol else ("", ())
        async with self.connection() as c:
            spans = await c.fetch(f"SELECT symbol, MIN(agg_id) AS lo, MAX(agg_id) AS hi, COUNT(*) AS n FROM agg_trades "
                                  f"{where} GROUP BY symbol ORDER BY symbol", args)
            gaps = await c.fetch(f"SELECT symbol, prev + 1 AS a, agg_id - 1 AS b FROM (SELECT symbol, agg_id, "
                                 f"LAG(agg_id) OVER (PARTITION BY symbol ORDER BY agg_id) AS prev FROM agg_trades "
                                 f"{where}) t WHERE agg_id - prev > 1 ORDER BY symbol, a", args)
        by: dict[str, list[tuple[int, int]]] = {}
        for g in gaps:
            by.setdefault(g["symbol"], []).append((int(g["a"]), int(g["b"])))
        return [Continuity(s["symbol"], int(s["lo"]), int(s["hi"]), int(s["n"]), tuple(by.get(s["symbol"], ())))
                for s in spans]

    async def apply_retention(self, ts_ms: int | None = None) -> dict[str, int]:
        """Delete rows older than each table's ``retention_policy.keep_days``; rows deleted per table."""
        now = now_ms() if ts_ms is None else ts_ms
        out: dict[str, int] = {}
        async with self.connection() as c:
            policy = await c.fetch("SELECT table_name, time_column, keep_days FROM retention_policy "
                                   "ORDER BY table_name")
        for p in policy:
            table, col = p["table_name"], p["time_column"]
            if table not in TABLES or not _IDENT.match(col):
                raise ValueError(f"bad retention policy row {dict(p)}")
            async with self.transaction() as c:
                out[table] = await c.execute(f"DELETE FROM {table} WHERE {col} < ?",
                                             (now - int(p["keep_days"]) * 86_400_000,))
        return out

    # ---- control plane: API credentials, lifecycle writes and read models of the API ----------

    async def create_credential(self, name: str, role: Role, ts_ms: int | None = None,
                                params: ScryptParams = DEFAULT_SCRYPT) -> str:
        """Issue a token ``arb_<id>_<secret>`` for ``name`` with ``role``; returned once, only scrypt of the secret
        is kept. A name is unique among active credentials (``ValueError`` otherwise)."""
        if not CREDENTIAL_NAME.match(name):
            raise ValueError(f"credential name {name!r}: 1-64 of A-Z a-z 0-9 _ . @ -, starting alphanumeric")
        if role not in ("read", "admin"):
            raise ValueError(f"role must be read or admin, got {role!r}")
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        digest = await asyncio.to_thread(hash_token, secret, salt, params)
        async with self.transaction() as c:
            if await c.fetch("SELECT id FROM api_credentials WHERE name = ? AND revoked_ms IS NULL", (name,)):
                raise ValueError(f"an active credential named {name!r} exists; revoke it first")
            await c.execute("INSERT INTO api_credentials (token_id, name, role, kdf, kdf_n, kdf_r, kdf_p, salt, "
                            "secret_hash, created_ms) VALUES (?, ?, ?, 'scrypt', ?, ?, ?, ?, ?, ?)",
                            (token_id, name, role, params.n, params.r, params.p, salt.hex(), digest,
                             now_ms() if ts_ms is None else ts_ms))
        return f"arb_{token_id}_{secret}"

    async def authenticate_token(self, token: str, ts_ms: int | None = None) -> dict[str, Any] | None:
        """``{"token_id", "name", "role"}`` of a valid, unrevoked token, else None.

        A well-formed token always costs one scrypt, whether its id exists or not, and the digests
        are compared in constant time, so timing tells neither which ids exist nor how close a
        secret was. ``last_used_ms`` is stamped at most once per ``LAST_USED_RESOLUTION_MS``.
        """
        parts = split_token(token)
        if parts is None:
            return None
        token_id, secret = parts
        async with self.connection() as c:
            rows = await c.fetch("SELECT id, name, role, kdf, kdf_n, kdf_r, kdf_p, salt, secret_hash, last_used_ms, "
                                 "revoked_ms FROM api_credentials WHERE token_id = ?", (token_id,))
        row = rows[0] if rows and rows[0]["kdf"] == "scrypt" else None
        if row is None:
            salt, params, want = _DUMMY_SALT, DEFAULT_SCRYPT, _NO_HASH
        else:
            salt = bytes.fromhex(row["salt"])
            params = ScryptParams(int(row["kdf_n"]), int(row["kdf_r"]), int(row["kdf_p"]))
            want = str(row["secret_hash"])
        got = await asyncio.to_thread(hash_token, secret, salt, params)
        if not hmac.compare_digest(got, want) or row is None or row["revoked_ms"] is not None:
            return None
        ts = now_ms() if ts_ms is None else ts_ms
        last = row["last_used_ms"]
        if last is None or ts - int(last) >= LAST_USED_RESOLUTION_MS:
            async with self.connection() as c:
                await c.execute("UPDATE api_credentials SET last_used_ms = ? WHERE id = ?", (ts, row["id"]))
        return {"token_id": token_id, "name": row["name"], "role": row["role"]}

    async def verify_token(self, token: str, ts_ms: int | None = None) -> Role | None:
        """The role of a valid, unrevoked token, else None (see ``authenticate_token``)."""
        cred = await self.authenticate_token(token, ts_ms)
        role: Role | None = None if cred is None else cred["role"]
        return role

    async def revoke_credential(self, name: str, ts_ms: int | None = None) -> bool:
        """Revoke the active credential named ``name`` (or with token id ``name``); False if there is none."""
        async with self.connection() as c:
            return bool(await c.execute("UPDATE api_credentials SET revoked_ms = ? "
                                        "WHERE (name = ? OR token_id = ?) AND revoked_ms IS NULL",
                                        (now_ms() if ts_ms is None else ts_ms, name, name)))

    async def list_credentials(self) -> list[dict[str, Any]]:
        """Every credential without its hash or salt, oldest first."""
        async with self.connection() as c:
            rows = await c.fetch("SELECT token_id, name, role, kdf, created_ms, last_used_ms, revoked_ms "
                                 "FROM api_credentials ORDER BY created_ms, id")
        return [dict(r) for r in rows]

    async def add_strategy_event(self, strategy_id: str, event: str, detail: Mapping[str, Any] | None = None,
                                 ts_ms: int | None = None) -> None:
        """Append a lifecycle event (e.g. ``patched``, ``killed``) to the strategy's history."""
        async with self.connection() as c:
            await c.execute("INSERT INTO strategy_events (strategy_id, ts_ms, event, detail) VALUES (?, ?, ?, ?)",
                            (strategy_id, now_ms() if ts_ms is None else ts_ms, event, dumps(detail)))

    async def add_strategy_balance(self, strategy_id: str, amount: float, ref: str, ts_ms: int | None = None,
                                   source: str | None = None) -> bool:
        """Deposit ``amount``: raises both the initial and the current balance (digest §8.1) and logs
        ``balance_added``, atomically; idempotent per ``ref`` (False when ``ref`` was booked before)."""
        if not amount > 0:
            raise ValueError(f"amount must be positive, got {amount}")
        ts = now_ms() if ts_ms is None else ts_ms
        async with self.transaction() as c:
            if not await self._ledger(c, strategy_id, "deposit", float(amount), ts, ref):
                return False
            await c.execute("UPDATE strategies SET initial_balance = initial_balance + ?, updated_ms = ? "
                            "WHERE strategy_id = ?", (float(amount), ts, strategy_id))
            await c.execute("INSERT INTO strategy_events (strategy_id, ts_ms, event, detail) "
                            "VALUES (?, ?, 'balance_added', ?)",
                            (strategy_id, ts, dumps({"amount": float(amount), "ref": ref, "source": source})))
            return True

    async def restore_strategy(self, strategy_id: str, ts_ms: int | None = None, reason: str | None = None) -> bool:
        """``deprecated → running`` with its old balance and history, clearing ``deprecated_ms``; False
        if the strategy is not deprecated (``KeyError`` if it does not exist)."""
        ts = now_ms() if ts_ms is None else ts_ms
        async with self.transaction() as c:
            rows = await c.fetch("SELECT status FROM strategies WHERE strategy_id = ?", (strategy_id,))
            if not rows:
                raise KeyError(strategy_id)
            if rows[0]["status"] != "deprecated":
                return False
            await c.execute("UPDATE strategies SET status = 'running', status_changed_ms = ?, resumed_ms = ?, "
                            "deprecated_ms = NULL, updated_ms = ? WHERE strategy_id = ? AND status = 'deprecated'",
                            (ts, ts, ts, strategy_id))
            await c.execute("INSERT INTO strategy_events (strategy_id, ts_ms, event, from_status, to_status, detail) "
                            "VALUES (?, ?, 'restored', 'deprecated', 'running', ?)",
                            (strategy_id, ts, dumps({"reason": reason} if reason else None)))
            return True

    async def pnl_since(self, since_ms: int) -> dict[str, dict[str, Any]]:
        """Per strategy: trades closed at or after ``since_ms``, their net PnL and net R (the plaza's 24 h PnL)."""
        async with self.connection() as c:
            rows = await c.fetch("SELECT strategy_id, COUNT(*) AS trades, SUM(pnl - fees + funding) AS net_pnl, "
                                 "SUM(r_multiple) AS net_r FROM trades WHERE exit_ms >= ? GROUP BY strategy_id",
                                 (since_ms,))
        return {r["strategy_id"]: {"trades": int(r["trades"]), "net_pnl": float(r["net_pnl"] or 0.0),
                                   "net_r": float(r["net_r"] or 0.0)} for r in rows}

    async def execution_kpis(self) -> dict[str, dict[str, Any]]:
        """Per strategy: fills and maker share, fees, notional, orders by type and final state, friction in R."""
        async with self.connection() as c:
            fills = await c.fetch("SELECT strategy_id, COUNT(*) AS fills, "
                                  "SUM(CASE WHEN is_maker THEN 1 ELSE 0 END) AS maker_fills, SUM(fee) AS fees, "
                                  "SUM(price * qty) AS notional FROM fills GROUP BY strategy_id")
            orders = await c.fetch("SELECT strategy_id, order_type, state, COUNT(*) AS n FROM orders "
                                   "GROUP BY strategy_id, order_type, state")
            friction = await c.fetch("SELECT strategy_id, COUNT(*) AS n, SUM(fees / (risk_distance * qty)) AS fees_r "
                                     "FROM trades WHERE risk_distance > 0 AND qty > 0 GROUP BY strategy_id")
        out: dict[str, dict[str, Any]] = {}

        def entry(sid: str) -> dict[str, Any]:
            return out.setdefault(sid, {"fills": 0, "maker_fills": 0, "maker_ratio": None, "fees": 0.0,
                                        "notional": 0.0, "orders": {}, "orders_total": 0, "fees_r_avg": None})

        for r in fills:
            e = entry(r["strategy_id"])
            n, maker = int(r["fills"]), int(r["maker_fills"] or 0)
            e.update(fills=n, maker_fills=maker, maker_ratio=maker / n if n else None,
                     fees=float(r["fees"] or 0.0), notional=float(r["notional"] or 0.0))
        for r in orders:
            e = entry(r["strategy_id"])
            by_type = e["orders"].setdefault(r["order_type"], {})
            by_type[r["state"]] = int(r["n"])
            e["orders_total"] += int(r["n"])
        for r in friction:
            if int(r["n"]):
                entry(r["strategy_id"])["fees_r_avg"] = float(r["fees_r"] or 0.0) / int(r["n"])
        return out

    async def risk_events(self, limit: int = 100, cursor: str | None = None) -> Page:
        """Risk events newest first, keyset-paginated on ``(ts_ms, id)``."""
        return await self._keyset("risk_events", "ts_ms", {}, [], limit, cursor)

    async def market_history(self, symbol: str, since_ms: int, limit: int = 500) -> dict[str, list[dict[str, Any]]]:
        """Recorded indicators of ``symbol`` from ``since_ms``, newest first, at most ``limit`` each: funding
        rates, open interest and liquidations."""
        async with self.connection() as c:
            funding = await c.fetch("SELECT funding_ms, rate, mark_price FROM funding_rates WHERE symbol = ? "
                                    "AND funding_ms >= ? ORDER BY funding_ms DESC LIMIT ?", (symbol, since_ms, limit))
            oi = await c.fetch("SELECT ts_ms, open_interest, open_interest_value FROM open_interest WHERE symbol = ? "
                               "AND ts_ms >= ? ORDER BY ts_ms DESC LIMIT ?", (symbol, since_ms, limit))
            liqs = await c.fetch("SELECT ts_ms, side, price, qty FROM liquidations WHERE symbol = ? AND ts_ms >= ? "
                                 "ORDER BY ts_ms DESC LIMIT ?", (symbol, since_ms, limit))
        return {"funding": [dict(r) for r in funding], "open_interest": [dict(r) for r in oi],
                "liquidations": [dict(r) | {"usd": float(r["price"]) * float(r["qty"])} for r in liqs]}

    # ---- read models --------------------------------------------------------------------------

    async def latest_scores(self, strategies: Sequence[str] | None = None,
                            run_id: str = LIVE_RUN) -> list[dict[str, Any]]:
        """The most recent score event per strategy (config id = slug) in ``run_id``.

        With ``strategies`` each is one index lookup on ``(run_id, strategy, ts_ms)``; without, the
        whole run is scanned once (every strategy that ever scored).
        """
        async with self.connection() as c:
            if strategies is None:
                rows = await c.fetch("SELECT * FROM (SELECT s.*, ROW_NUMBER() OVER (PARTITION BY strategy "
                                     "ORDER BY ts_ms DESC, id DESC) AS rn FROM score_events s WHERE run_id = ?) t "
                                     "WHERE rn = 1 ORDER BY strategy", (run_id,))
            else:
                rows = []
                for slug in sorted(set(strategies)):
                    rows += await c.fetch("SELECT * FROM score_events WHERE run_id = ? AND strategy = ? "
                                          "ORDER BY ts_ms DESC, id DESC LIMIT 1", (run_id, slug))
        out = [decode_row(r) for r in rows]
        for r in out:
            r.pop("rn", None)
        return out

    async def score_history(self, strategy: str, since_ms: int | None = None, limit: int = 1_000,
                            run_id: str = LIVE_RUN) -> list[dict[str, Any]]:
        """Score events of one strategy (config id), oldest first from ``since_ms``."""
        async with self.connection() as c:
            rows = await c.fetch("SELECT * FROM score_events WHERE run_id = ? AND strategy = ? AND ts_ms >= ? "
                                 "ORDER BY ts_ms, id LIMIT ?", (run_id, strategy, since_ms or 0, limit))
        return [decode_row(r) for r in rows]

    async def signal_history(self, strategy_id: str | None = None, symbol: str | None = None, limit: int = 100,
                             cursor: str | None = None) -> Page:
        """Signals newest first, keyset-paginated on ``(ts_ms, id)`` so inserts never shift a page."""
        return await self._keyset("signals", "ts_ms", {"strategy_id": strategy_id, "symbol": symbol}, [], limit,
                                  cursor)

    async def open_positions(self, strategy_id: str | None = None) -> list[dict[str, Any]]:
        """Open positions, oldest first."""
        where, args = ("AND strategy_id = ?", (strategy_id,)) if strategy_id else ("", ())
        async with self.connection() as c:
            rows = await c.fetch(f"SELECT * FROM positions WHERE status = 'open' {where} "
                                 "ORDER BY opened_ms, position_id", args)
        return [decode_row(r) for r in rows]

    async def fills(self, client_order_id: str) -> list[dict[str, Any]]:
        """The fills of one order, oldest first."""
        async with self.connection() as c:
            rows = await c.fetch("SELECT * FROM fills WHERE client_order_id = ? ORDER BY ts_ms, fill_id",
                                 (client_order_id,))
        return [decode_row(r) for r in rows]

    async def trades(self, strategy_id: str | None = None, symbol: str | None = None, run_id: str | None = None,
                     since_ms: int | None = None, until_ms: int | None = None, exit_reason: str | None = None,
                     limit: int = 100, cursor: str | None = None) -> Page:
        """Closed trades newest exit first, filtered, keyset-paginated on ``(exit_ms, id)``."""
        extra: list[tuple[str, Any]] = []
        if since_ms is not None:
            extra.append(("exit_ms >= ?", since_ms))
        if until_ms is not None:
            extra.append(("exit_ms < ?", until_ms))
        eq = {"strategy_id": strategy_id, "symbol": symbol, "run_id": run_id, "exit_reason": exit_reason}
        return await self._keyset("trades", "exit_ms", eq, extra, limit, cursor)

    async def _keyset(self, table: str, ts_col: str, eq: Mapping[str, Any], extra: list[tuple[str, Any]], limit: int,
                      cursor: str | None) -> Page:
        if limit <= 0:
            raise ValueError("limit must be positive")
        conds = [f"{k} = ?" for k, v in eq.items() if v is not None] + [c for c, _ in extra]
        args: list[Any] = [v for v in eq.values() if v is not None] + [v for _, v in extra]
        if cursor:
            try:
                ts_s, id_s = cursor.split(":")
                ts, rid = int(ts_s), int(id_s)
            except ValueError:
                raise ValueError(f"bad cursor {cursor!r}") from None
            conds.append(f"({ts_col} < ? OR ({ts_col} = ? AND id < ?))")
            args += [ts, ts, rid]
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        async with self.connection() as c:
            rows = await c.fetch(f"SELECT * FROM {table} {where} ORDER BY {ts_col} DESC, id DESC LIMIT ?",
                                 (*args, limit + 1))
        more = len(rows) > limit
        page = [decode_row(r) for r in rows[:limit]]
        nxt = f"{page[-1][ts_col]}:{page[-1]['id']}" if more else None
        return Page(page, nxt)

    async def equity_curve(self, strategy_id: str) -> list[dict[str, Any]]:
        """The strategy's balance after every ledger entry, oldest first."""
        async with self.connection() as c:
            rows = await c.fetch("SELECT ts_ms, kind, amount, balance_after AS balance, ref FROM balance_ledger "
                                 "WHERE strategy_id = ? ORDER BY ts_ms, id", (strategy_id,))
        return [dict(r) for r in rows]

    _STATS_SQL = (
        "SELECT strategy_id, COUNT(*) AS trades, "
        "SUM(CASE WHEN pnl - fees + funding > 0 THEN 1 ELSE 0 END) AS wins, "
        "SUM(CASE WHEN pnl - fees + funding < 0 THEN 1 ELSE 0 END) AS losses, "
        "SUM(pnl) AS gross_pnl, SUM(fees) AS fees, SUM(funding) AS funding, SUM(pnl - fees + funding) AS net_pnl, "
        "SUM(CASE WHEN pnl - fees + funding > 0 THEN pnl - fees + funding ELSE 0 END) AS gross_win, "
        "SUM(CASE WHEN pnl - fees + funding < 0 THEN fees - pnl - funding ELSE 0 END) AS gross_loss, "
        "SUM(r_multiple) AS total_r, AVG(r_multiple) AS avg_r, MAX(pnl - fees + funding) AS best, "
        "MIN(pnl - fees + funding) AS worst FROM trades {where} GROUP BY strategy_id"
    )

    @staticmethod
    def _stats_from(row: Mapping[str, Any] | None) -> dict[str, Any]:
        if row is None:
            return {"trades": 0, "wins": 0, "losses": 0, "win_rate": None, "gross_pnl": 0.0, "fees": 0.0,
                    "funding": 0.0, "net_pnl": 0.0, "profit_factor": None, "total_r": 0.0, "avg_r": None,
                    "best": None, "worst": None}
        n, wins = int(row["trades"]), int(row["wins"])
        loss = float(row["gross_loss"])
        return {"trades": n, "wins": wins, "losses": int(row["losses"]), "win_rate": wins / n if n else None,
                "gross_pnl": float(row["gross_pnl"]), "fees": float(row["fees"]), "funding": float(row["funding"]),
                "net_pnl": float(row["net_pnl"]), "profit_factor": float(row["gross_win"]) / loss if loss else None,
                "total_r": float(row["total_r"] or 0.0),
                "avg_r": None if row["avg_r"] is None else float(row["avg_r"]),
                "best": float(row["best"]), "worst": float(row["worst"])}

    async def strategy_stats(self, strategy_id: str) -> dict[str, Any]:
        """Trade statistics of one strategy (net of fees and funding) and its equity drawdown."""
        async with self.connection() as c:
            rows = await c.fetch(self._STATS_SQL.format(where="WHERE strategy_id = ?"), (strategy_id,))
        stats = self._stats_from(rows[0] if rows else None)
        settled: dict[int, float] = {}  # balance once every entry booked at a timestamp is in
        for p in await self.equity_curve(strategy_id):
            settled[p["ts_ms"]] = p["balance"]
        peak, mdd = float("-inf"), 0.0
        for bal in settled.values():
            peak = max(peak, bal)
            mdd = max(mdd, peak - bal)
        stats["max_drawdown"] = mdd
        stats["max_drawdown_pct"] = mdd / peak if peak > 0 else None
        return stats

    async def strategy_cards(self, status: StrategyStatus | None = None) -> list[dict[str, Any]]:
        """One card per strategy: identity, status, balances, trade statistics, open positions, latest score."""
        strategies = await self.list_strategies(status)
        async with self.connection() as c:
            stats = {r["strategy_id"]: r for r in await c.fetch(self._STATS_SQL.format(where=""))}
            opens = {r["strategy_id"]: int(r["n"]) for r in await c.fetch(
                "SELECT strategy_id, COUNT(*) AS n FROM positions WHERE status = 'open' GROUP BY strategy_id")}
        latest = {r["strategy"]: r for r in await self.latest_scores([s["slug"] for s in strategies])}
        cards = []
        for s in strategies:
            score = latest.get(s["slug"])
            cards.append({
                "strategy_id": s["strategy_id"], "slug": s["slug"], "display_name": s["display_name"],
                "kind": s["kind"], "status": s["status"], "config_hash": s["config_hash"],
                "initial_balance": s["initial_balance"], "current_balance": s["current_balance"],
                "status_changed_ms": s["status_changed_ms"], "last_run_ms": s["last_run_ms"],
                "tags": s.get("tags") or [], "open_positions": opens.get(s["strategy_id"], 0),
                "stats": self._stats_from(stats.get(s["strategy_id"])),
                "latest_score": None if score is None else {k: score[k] for k in (
                    "ts_ms", "symbol", "total", "side", "tier", "gate_passed", "block_reason", "is_entry")},
            })
        return cards

    # ---- calibration (arbray.calibration): labels, calibrators, their inputs ------------------

    async def unlabelled_score_events(self, max_ts_ms: int, after_id: int = 0, limit: int = 5_000,
                                      strategy: str | None = None, run_id: str | None = None,
                                      label_version: str | None = None) -> list[dict[str, Any]]:
        """Score events at or before ``max_ts_ms`` with no label (or, given ``label_version``, with a
        label of another version), in id order after ``after_id``: id, run, strategy, symbol, time,
        side, features and inputs."""
        conds = ["e.id > ?", "e.ts_ms <= ?"]
        args: list[Any] = [after_id, max_ts_ms]
        if label_version is None:
            conds.append("l.event_id IS NULL")
        else:
            conds.append("(l.event_id IS NULL OR l.label_version <> ?)")
            args.append(label_version)
        for col, val in (("e.strategy", strategy), ("e.run_id", run_id)):
            if val is not None:
                conds.append(f"{col} = ?")
                args.append(val)
        async with self.connection() as c:
            rows = await c.fetch("SELECT e.id, e.run_id, e.strategy, e.symbol, e.ts_ms, e.side, e.features, e.inputs "
                                 "FROM score_events e LEFT JOIN score_labels l ON l.event_id = e.id "
                                 f"WHERE {' AND '.join(conds)} ORDER BY e.id LIMIT ?", (*args, limit))
        return [decode_row(r) for r in rows]

    async def insert_score_labels(self, rows: Sequence[Sequence[Any]]) -> int:
        """Store labels (``LABEL_COLUMNS`` tuples); a label already stored for an event is replaced."""
        if not rows:
            return 0
        cols = ", ".join(LABEL_COLUMNS)
        sets = ", ".join(f"{c} = excluded.{c}" for c in LABEL_COLUMNS[1:])
        async with self.transaction() as c:
            await c.executemany(f"INSERT INTO score_labels ({cols}) VALUES ({', '.join('?' * len(LABEL_COLUMNS))}) "
                                f"ON CONFLICT (event_id) DO UPDATE SET {sets}", rows)
        return len(rows)

    async def labelled_events(self, strategy: str | None = None, run_id: str | None = None,
                              since_ms: int | None = None, until_ms: int | None = None,
                              with_details: bool = False) -> list[dict[str, Any]]:
        """Score events joined with their labels, oldest first; ``with_details`` adds layers, inputs, features."""
        conds: list[str] = []
        args: list[Any] = []
        for cond, val in (("e.strategy = ?", strategy), ("e.run_id = ?", run_id), ("e.ts_ms >= ?", since_ms),
                          ("e.ts_ms < ?", until_ms)):
            if val is not None:
                conds.append(cond)
                args.append(val)
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        extra = ", e.layers, e.inputs, e.features" if with_details else ""
        async with self.connection() as c:
            rows = await c.fetch(
                "SELECT e.id, e.run_id, e.strategy, e.kind, e.symbol, e.ts_ms, e.side, e.total, e.gate_passed, "
                "e.block_reason, e.tier, e.is_entry, e.is_flip_signal, e.p_calibrated, e.calibrator_version, "
                f"{', '.join('l.' + c for c in LABEL_COLUMNS[1:])}{extra} FROM score_events e "
                f"JOIN score_labels l ON l.event_id = e.id {where} ORDER BY e.ts_ms, e.id", args)
        return [decode_row(r) for r in rows]

    async def label_counts(self) -> dict[str, int]:
        """Stored labels per status."""
        async with self.connection() as c:
            rows = await c.fetch("SELECT status, COUNT(*) AS n FROM score_labels GROUP BY status ORDER BY status")
        return {r["status"]: int(r["n"]) for r in rows}

    async def score_events_at(self, run_id: str, strategy: str, symbol: str,
                              ts_list: Sequence[int]) -> list[dict[str, Any]]:
        """The score events of one strategy (config id) and symbol in ``run_id`` at the given times."""
        out: list[dict[str, Any]] = []
        wanted = sorted(set(int(t) for t in ts_list))
        for i in range(0, len(wanted), 500):
            chunk = wanted[i: i + 500]
            async with self.connection() as c:
                rows = await c.fetch(f"SELECT * FROM score_events WHERE run_id = ? AND strategy = ? AND symbol = ? "
                                     f"AND ts_ms IN ({', '.join('?' * len(chunk))}) ORDER BY ts_ms",
                                     (run_id, strategy, symbol, *chunk))
            out += [decode_row(r) for r in rows]
        return out

    async def agg_trade_prices(self, symbol: str, from_ms: int, to_ms: int) -> tuple[list[int], list[float]]:
        """``(time_ms, price)`` columns of the stored aggTrades of ``[from_ms, to_ms)`` in trade order."""
        async with self.connection() as c:
            rows = await c.fetch("SELECT time_ms, price FROM agg_trades WHERE symbol = ? AND time_ms >= ? "
                                 "AND time_ms < ? ORDER BY time_ms, agg_id", (symbol, from_ms, to_ms))
        return [int(r["time_ms"]) for r in rows], [float(r["price"]) for r in rows]

    async def kline_bars(self, symbol: str, interval: str, from_ms: int, to_ms: int) -> list[dict[str, Any]]:
        """Stored candles of ``interval`` opening in ``[from_ms, to_ms)``, oldest first."""
        async with self.connection() as c:
            return await c.fetch("SELECT open_ms, close_ms, open, high, low, close FROM klines WHERE symbol = ? "
                                 "AND interval = ? AND open_ms >= ? AND open_ms < ? ORDER BY open_ms",
                                 (symbol, interval, from_ms, to_ms))

    async def market_data_end(self, kline_interval: str = "1m") -> dict[str, int]:
        """Per symbol, the latest time the stored aggTrades or ``kline_interval`` candles reach."""
        async with self.connection() as c:
            trades = await c.fetch("SELECT symbol, MAX(time_ms) AS t FROM agg_trades GROUP BY symbol")
            bars = await c.fetch("SELECT symbol, MAX(close_ms) AS t FROM klines WHERE interval = ? GROUP BY symbol",
                                 (kline_interval,))
        out: dict[str, int] = {}
        for r in [*trades, *bars]:
            out[r["symbol"]] = max(out.get(r["symbol"], 0), int(r["t"]))
        return out

    async def insert_calibrator(self, rec: Mapping[str, Any]) -> bool:
        """Store a calibrator row (``CALIBRATOR_COLUMNS``); False if that version is already stored."""
        row = [rec.get(c) for c in CALIBRATOR_COLUMNS]
        row[CALIBRATOR_COLUMNS.index("params")] = dumps(dict(rec["params"]))
        row[CALIBRATOR_COLUMNS.index("metrics")] = dumps(rec.get("metrics"))
        row[CALIBRATOR_COLUMNS.index("active")] = bool(rec.get("active", True))
        async with self.connection() as c:
            return bool(await c.execute(
                f"INSERT INTO calibrators ({', '.join(CALIBRATOR_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(CALIBRATOR_COLUMNS))}) ON CONFLICT (version) DO NOTHING", row))

    async def calibrators(self, strategy: str | None = None, active_only: bool = False) -> list[dict[str, Any]]:
        """Stored calibrators (of one strategy, optionally only active ones), oldest first."""
        conds = [c for c, on in (("strategy = ?", strategy is not None), ("active = ?", active_only)) if on]
        args = [a for a, on in ((strategy, strategy is not None), (True, active_only)) if on]
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        async with self.connection() as c:
            rows = await c.fetch(f"SELECT * FROM calibrators {where} ORDER BY id", args)
        out = [decode_row(r) for r in rows]
        for r in out:
            r["active"] = bool(r["active"])
            for k in ("params", "metrics"):
                if isinstance(r[k], str):
                    r[k] = orjson.loads(r[k])
        return out

    async def set_calibrator_active(self, version: str, active: bool) -> bool:
        """(De)activate a stored calibrator; False if no such version."""
        async with self.connection() as c:
            return bool(await c.execute("UPDATE calibrators SET active = ? WHERE version = ?", (active, version)))

    async def calibration_state(self) -> str:
        """A token that changes whenever a calibrator is stored or (de)activated (cheap to poll)."""
        async with self.connection() as c:
            r = (await c.fetch("SELECT COALESCE(MAX(id), 0) AS m, "
                               "COALESCE(SUM(CASE WHEN active THEN 1 ELSE 0 END), 0) AS n, "
                               "COALESCE(SUM(CASE WHEN active THEN id ELSE 0 END), 0) AS s FROM calibrators"))[0]
        return f"{int(r['m'])}:{int(r['n'])}:{int(r['s'])}"

    # ---- runtime (arbray.runtime): runs, the PositionManager's input log, position states ------

    async def upsert_position(self, rec: PositionRecord | Mapping[str, Any]) -> None:
        """Journal a position's state that no fill changed (a stop moved, a close recorded)."""
        p = coerce(PositionRecord, rec)
        async with self.connection() as c:
            await c.execute(
                "INSERT INTO positions (position_id, run_id, strategy_id, symbol, side, status, qty, entry_price, "
                "stop_price, realised_pnl, fees, funding, opened_ms, updated_ms, closed_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (position_id) DO UPDATE SET "
                "status = excluded.status, qty = excluded.qty, entry_price = excluded.entry_price, "
                "stop_price = excluded.stop_price, realised_pnl = excluded.realised_pnl, fees = excluded.fees, "
                "funding = excluded.funding, updated_ms = excluded.updated_ms, closed_ms = excluded.closed_ms "
                "WHERE positions.updated_ms <= excluded.updated_ms",
                (p.position_id, p.run_id, p.strategy_id, p.symbol, p.side, p.status, float(p.qty),
                 float(p.entry_price), p.stop_price, float(p.realised_pnl), float(p.fees), float(p.funding),
                 p.opened_ms, p.updated_ms, p.closed_ms))

    async def start_run(self, run_id: str, mode: str, source: str, config: Mapping[str, Any],
                        ts_ms: int | None = None) -> bool:
        """Record a new run (True), or mark an existing one running again (a resumed run: False)."""
        ts = now_ms() if ts_ms is None else ts_ms
        async with self.transaction() as c:
            n = await c.execute("INSERT INTO runs (run_id, mode, source, config, status, started_ms, updated_ms) "
                                "VALUES (?, ?, ?, ?, 'running', ?, ?) ON CONFLICT (run_id) DO NOTHING",
                                (run_id, mode, source, dumps(dict(config)), ts, ts))
            if not n:
                await c.execute("UPDATE runs SET status = 'running', updated_ms = ?, stopped_ms = NULL "
                                "WHERE run_id = ?", (ts, run_id))
        return bool(n)

    async def update_run(self, run_id: str, status: str, ts_ms: int | None = None,
                         summary: Mapping[str, Any] | None = None) -> None:
        """Set a run's status (``stopped``/``failed`` also stamp ``stopped_ms``) and its summary."""
        ts = now_ms() if ts_ms is None else ts_ms
        async with self.connection() as c:
            await c.execute("UPDATE runs SET status = ?, updated_ms = ?, stopped_ms = ?, "
                            "summary = COALESCE(?, summary) WHERE run_id = ?",
                            (status, ts, None if status == "running" else ts, dumps(summary), run_id))

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        async with self.connection() as c:
            rows = await c.fetch("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            return None
        out = decode_row(rows[0])
        for k in ("config", "summary"):
            if isinstance(out.get(k), str):
                out[k] = orjson.loads(out[k])
        return out

    async def append_pm_inputs(self, run_id: str, rows: Sequence[tuple[int, str, str | None, int, bytes]]) -> int:
        """Append applied inputs ``(seq, kind, symbol, ts_ms, payload)``; a seq already logged is kept as it
        is (idempotent). Returns the number submitted."""
        if rows:
            async with self.transaction() as c:
                await c.executemany("INSERT INTO pm_inputs (run_id, seq, kind, symbol, ts_ms, payload) "
                                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, seq) DO NOTHING",
                                    [(run_id, int(q), k, sym, int(t), bytes(b)) for q, k, sym, t, b in rows])
        return len(rows)

    async def pm_inputs(self, run_id: str, after_seq: int = 0,
                        limit: int = 10_000) -> list[tuple[int, str, str | None, int, bytes]]:
        """The run's logged inputs with ``seq > after_seq``, in order, at most ``limit``."""
        async with self.connection() as c:
            rows = await c.fetch("SELECT seq, kind, symbol, ts_ms, payload FROM pm_inputs WHERE run_id = ? AND seq > ? "
                                 "ORDER BY seq LIMIT ?", (run_id, after_seq, limit))
        return [(int(r["seq"]), r["kind"], r["symbol"], int(r["ts_ms"]), bytes(r["payload"])) for r in rows]

    async def agg_trades_since(self, symbol: str, window_ms: int) -> list[tuple[int, int, float, float, bool]]:
        """``(agg_id, time_ms, price, qty, is_buyer_maker)`` of ``symbol``'s recorded aggTrades within
        ``window_ms`` of the newest one, in id order (a restarted SymbolState's warm-up)."""
        async with self.connection() as c:
            top = await c.fetch("SELECT MAX(time_ms) AS t FROM agg_trades WHERE symbol = ?", (symbol,))
            if not top or top[0]["t"] is None:
                return []
            rows = await c.fetch("SELECT agg_id, time_ms, price, qty, is_buyer_maker FROM agg_trades "
                                 "WHERE symbol = ? AND time_ms >= ? ORDER BY agg_id",
                                 (symbol, int(top[0]["t"]) - window_ms))
        return [(int(r["agg_id"]), int(r["time_ms"]), float(r["price"]), float(r["qty"]), bool(r["is_buyer_maker"]))
                for r in rows]

    # ---- screener (arbray.screener.service): periodic scans and their ranked results ------------

    async def insert_screen_run(self, run: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> int:
        """Store one scan (``SCREEN_RUN_COLUMNS``) and its ranked rows (``{symbol, timeframe, rank, score,
        probability_up, mode, factors, components, missing, explanation}``) in one transaction; the run's id."""
        row = [run.get(c) for c in SCREEN_RUN_COLUMNS]
        row[SCREEN_RUN_COLUMNS.index("config")] = dumps(dict(run["config"]))
        row[SCREEN_RUN_COLUMNS.index("stats")] = dumps(run.get("stats"))
        started = int(run["started_ms"])
        async with self.transaction() as c:
            ins = await c.fetch(f"INSERT INTO screen_runs ({', '.join(SCREEN_RUN_COLUMNS)}) "
                                f"VALUES ({', '.join('?' * len(SCREEN_RUN_COLUMNS))}) RETURNING id", row)
            rid = int(ins[0]["id"])
            if results:
                await c.executemany(
                    f"INSERT INTO screen_results ({', '.join(SCREEN_RESULT_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(SCREEN_RESULT_COLUMNS))})",
                    [(rid, int(r["rank"]), r["symbol"], r["timeframe"], r.get("score"), r.get("probability_up"),
                      r.get("mode"), dumps(dict(r.get("factors") or {})), dumps(dict(r.get("components") or {})),
                      dumps(list(r.get("missing") or [])), str(r.get("explanation") or ""), started)
                     for r in results])
        return rid

    async def screen_runs(self, model: str | None = None, limit: int = 100, cursor: str | None = None) -> Page:
        """Scans newest first (optionally of one model), keyset-paginated on ``(started_ms, id)``."""
        page = await self._keyset("screen_runs", "started_ms", {"model": model}, [], limit, cursor)
        for r in page.rows:
            _decode_json(r, ("config", "stats"))
        return page

    async def latest_screen_run(self, model: str, limit: int | None = None) -> dict[str, Any] | None:
        """The newest scan of ``model`` with its first ``limit`` results (all by default) as ``results``."""
        async with self.connection() as c:
            rows = await c.fetch("SELECT * FROM screen_runs WHERE model = ? ORDER BY started_ms DESC, id DESC "
                                 "LIMIT 1", (model,))
        if not rows:
            return None
        run = _decode_json(decode_row(rows[0]), ("config", "stats"))
        run["results"] = await self.screen_results(int(run["id"]), limit)
        return run

    async def screen_results(self, run_id: int, limit: int | None = None) -> list[dict[str, Any]]:
        """A scan's ranked rows in rank order (at most ``limit``)."""
        async with self.connection() as c:
            rows = await c.fetch("SELECT * FROM screen_results WHERE run_id = ? ORDER BY rank LIMIT ?",
                                 (run_id, limit if limit is not None else 1_000_000))
        return [_decode_json(decode_row(r), ("factors", "components", "missing")) for r in rows]
    # ---- end screener ---------------------------------------------------------------------------


# ---- screener: the columns and JSON decoding of SqlStore's screener section ----------------------
SCREEN_RUN_COLUMNS = ("model", "timeframe", "source", "started_ms", "finished_ms", "symbols", "ranked", "excluded",
                      "config", "stats")
"""``screen_runs`` columns ``insert_screen_run`` writes (``arbray.screener.service``)."""
SCREEN_RESULT_COLUMNS = ("run_id", "rank", "symbol", "timeframe", "score", "probability_up", "mode", "factors",
                         "components", "missing", "explanation", "started_ms")


def _decode_json(row: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """Parse the JSON text of ``keys`` in ``row`` (JSONB already arrives parsed)."""
    for k in keys:
        if isinstance(row.get(k), str):
            row[k] = orjson.loads(row[k])
    return row
# ---- end screener ------------------------------------------------------------------------------
