"""The storage suite, run on SQLite and on PostgreSQL: schema, atomicity, idempotency, read models."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from arbray.scoring.result import GateResult, LayerScore, ScoreResult
from arbray.storage import SqlStore, Store, open_store
from arbray.storage.records import AggTrade, FillRecord, PositionRecord, TradeRecord
from arbray.storage.schema import LATEST_VERSION
from tests.integration.storage_backends import dsn, make_dsn, pg_database, run

pytestmark = pytest.mark.integration
__all__ = ["dsn", "make_dsn", "pg_database"]


def strategy(slug: str = "alpha", balance: float = 10_000.0) -> dict[str, Any]:
    return {"strategy_id": str(uuid.uuid4()), "slug": slug, "display_name": slug.title(), "kind": "factory",
            "config": {"entry_score": 75}, "config_hash": "h1", "initial_balance": balance, "created_ms": 1_000}


def trade(sid: str, i: int, exit_ms: int, pnl: float = 10.0, fees: float = 1.0) -> TradeRecord:
    return TradeRecord(trade_id=f"t{i}", strategy_id=sid, symbol="BTCUSDT", side="LONG", qty=0.1, entry_price=100.0,
                       entry_ms=exit_ms - 60_000, exit_price=101.0, exit_ms=exit_ms, exit_reason="tp", pnl=pnl,
                       fees=fees, funding=-0.5, risk_distance=2.0, r_multiple=pnl / 20)


def score(slug: str, ts_ms: int, total: float) -> ScoreResult:
    return ScoreResult(strategy_id=slug, kind="factory", version="1", config_hash="h1", symbol="BTCUSDT", ts_ms=ts_ms,
                       side="LONG", side_allowed=True, total=total,
                       layers=(LayerScore("direction", 1.0, 2.0, 50.0, 55.0),),
                       gates=(GateResult("vol", "passed"),), block_reason=None, tier="standard", is_entry=total > 75,
                       is_flip_signal=False, missing=("obi",), inputs={"cvd_fast": 1.5, "obi": None})


async def count(store: SqlStore, table: str) -> int:
    return (await store.row_counts())[table]


def test_fresh_and_upgraded_schemas_are_identical(make_dsn: Callable[[], str]) -> None:
    async def go() -> None:
        fresh: Store = await open_store(make_dsn())  # SqlStore satisfies the protocol (checked by mypy)
        upgraded = await open_store(make_dsn(), migrate=False)
        try:
            assert isinstance(fresh, Store)
            assert await upgraded.schema_version() == 0
            assert await upgraded.migrate(target=1) == [1]
            s = strategy()
            async with upgraded.transaction() as c:  # data written by a version-1 binary
                await c.execute("INSERT INTO strategies (strategy_id, slug, display_name, kind, config, config_hash, "
                                "initial_balance, current_balance, created_ms, updated_ms, status_changed_ms) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                (s["strategy_id"], "alpha", "Alpha", "factory", '{"entry_score": 75}', "h1",
                                 10_000.0, 10_000.0, 1_000, 1_000, 1_000))
            assert await upgraded.migrate() == list(range(2, LATEST_VERSION + 1))
            assert await upgraded.describe_schema() == await fresh.describe_schema()
            assert await upgraded.schema_version() == await fresh.schema_version() == LATEST_VERSION
            row = await upgraded.get_strategy(s["strategy_id"])
            assert row is not None and row["current_balance"] == 10_000.0 and row["description"] is None
            assert row["config"] == {"entry_score": 75}
            assert await upgraded.upsert_strategy({**s, "config_hash": "h2"}) is False
            assert [e["event"] for e in await upgraded.strategy_events(s["strategy_id"])] == ["config_changed"]
        finally:
            await fresh.close()
            await upgraded.close()

    run(go())


def test_migrations_are_idempotent_and_serialised(dsn: str) -> None:
    async def go() -> None:
        a = await open_store(dsn, migrate=False)
        b = await open_store(dsn, migrate=False)
        try:
            done = await asyncio.gather(a.migrate(), b.migrate())
            assert sorted(done[0] + done[1]) == list(range(1, LATEST_VERSION + 1))
            before = await a.describe_schema()
            assert await a.migrate() == []
            assert await a.describe_schema() == before
            assert (await a.row_counts())["schema_migrations"] == LATEST_VERSION
        finally:
            await a.close()
            await b.close()

    run(go())


def test_fill_and_position_are_atomic(dsn: str) -> None:
    async def go() -> None:
        store = await open_store(dsn)
        try:
            s = strategy()
            sid = s["strategy_id"]
            await store.upsert_strategy(s)
            fill = FillRecord(fill_id="BTCUSDT:1", client_order_id="o1", strategy_id=sid, symbol="BTCUSDT", side="BUY",
                              price=100.0, qty=0.1, fee=0.004, fee_asset="USDT", is_maker=False, ts_ms=5_000,
                              venue_trade_id="1", position_id="p1")
            pos = PositionRecord(position_id="p1", strategy_id=sid, symbol="BTCUSDT", side="LONG", status="open",
                                 qty=0.1, entry_price=100.0, opened_ms=5_000, updated_ms=5_000, fees=0.004)

            def boom(point: str) -> None:
                raise RuntimeError(f"injected failure at {point}")

            store.fault_hook = boom
            with pytest.raises(RuntimeError, match="fill_written"):
                await store.apply_fill(fill, pos)
            assert await count(store, "fills") == 0 and await count(store, "positions") == 0
            store.fault_hook = None
            assert await store.apply_fill(fill, pos) is True
            assert await store.apply_fill(_asdict(fill), {**_asdict(pos), "qty": 99.0}) is False  # replayed fill
            [p] = await store.open_positions(sid)
            assert p["qty"] == 0.1 and p["fees"] == 0.004
            assert [f["fill_id"] for f in await store.fills("o1")] == ["BTCUSDT:1"]
            assert (await store.fills("o1"))[0]["is_maker"] is False
            f2 = {**_asdict(fill), "fill_id": "BTCUSDT:2", "venue_trade_id": "2"}
            p2 = {**_asdict(pos), "qty": 0.2, "updated_ms": 6_000}
            assert sorted(await asyncio.gather(store.apply_fill(f2, p2), store.apply_fill(f2, p2))) == [False, True]
            assert [p["qty"] for p in await store.open_positions()] == [0.2]
        finally:
            await store.close()

    run(go())


def _asdict(rec: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(rec)


def test_reinserting_fills_trades_aggtrades_and_scores_changes_nothing(dsn: str) -> None:
    async def go() -> None:
        store = await open_store(dsn)
        try:
            s = strategy()
            sid = s["strategy_id"]
            assert await store.upsert_strategy(s) is True
            assert await store.upsert_strategy(s) is False
            t = trade(sid, 1, 100_000, pnl=30.0, fees=2.0)
            assert await store.record_trade(t) is True
            assert await store.record_trade(_asdict(t)) is False
            assert await count(store, "trades") == 1
            row = await store.get_strategy(sid)
            assert row is not None and row["current_balance"] == pytest.approx(10_000 + 30 - 2 - 0.5)
            curve = await store.equity_curve(sid)
            assert [p["kind"] for p in curve] == ["initial", "realised_pnl", "fee", "funding"]
            assert curve[-1]["balance"] == pytest.approx(10_027.5)

            rows = [AggTrade("BTCUSDT", i, 100.0 + i, 0.5, i * 2, i * 2 + 1, 1_000 + i, i % 2 == 0) for i in range(500)]
            await store.insert_agg_trades(rows)
            await store.insert_agg_trades(rows[100:300])
            assert await count(store, "agg_trades") == 500

            events = [score("alpha", 1_000 * i, 50.0 + i) for i in range(10)]
            assert await store.insert_score_events(events, features={"symbol": "BTCUSDT", "mid": 100.0}) == 10
            await store.insert_score_events([e.to_dict() for e in events])
            assert await count(store, "score_events") == 10
        finally:
            await store.close()

    run(go())


def test_trade_pagination_is_stable_under_inserts(dsn: str) -> None:
    async def go() -> None:
        store = await open_store(dsn)
        try:
            s = strategy()
            sid = s["strategy_id"]
            await store.upsert_strategy(s)
            for i in range(25):
                await store.record_trade(trade(sid, i, 1_000_000 + (i // 3) * 1_000))
            seen: list[str] = []
            cursor = None
            new = 100
            while True:
                page = await store.trades(strategy_id=sid, limit=7, cursor=cursor)
                seen += [r["trade_id"] for r in page.rows]
                await store.record_trade(trade(sid, new, 9_000_000 + new))  # newer trades arrive between pages
                new += 1
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            assert sorted(seen) == sorted(f"t{i}" for i in range(25))
            assert len(seen) == len(set(seen))
            keys = [(1_000_000 + (int(t[1:]) // 3) * 1_000) for t in seen]
            assert keys == sorted(keys, reverse=True)
            filtered = await store.trades(strategy_id=sid, since_ms=1_003_000, until_ms=1_005_000, limit=100)
            assert len(filtered.rows) == 6 and filtered.next_cursor is None
            with pytest.raises(ValueError, match="cursor"):
                await store.trades(cursor="garbage")
        finally:
            await store.close()

    run(go())


def test_two_concurrent_writers_lose_nothing(dsn: str) -> None:
    async def go() -> None:
        store = await open_store(dsn)
        try:
            s = strategy()
            sid = s["strategy_id"]
            await store.upsert_strategy(s)

            async def trades_writer(prefix: str) -> None:
                for i in range(40):
                    await store.record_trade(TradeRecord(**{**_asdict(trade(sid, i, 2_000 + i)),
                                                            "trade_id": f"{prefix}{i}", "fees": 0.0, "funding": 0.0}))

            async def agg_writer(symbol: str) -> None:
                for start in range(0, 4_000, 500):
                    await store.insert_agg_trades([AggTrade(symbol, i, 1.0, 1.0, i, i, i, False)
                                                   for i in range(start, start + 500)])

            await asyncio.gather(trades_writer("a"), trades_writer("b"), agg_writer("BTCUSDT"), agg_writer("ETHUSDT"))
            assert await count(store, "trades") == 80
            row = await store.get_strategy(sid)
            assert row is not None and row["current_balance"] == pytest.approx(10_000 + 80 * 10.0)
            assert await count(store, "agg_trades") == 8_000
            assert [(c.symbol, c.rows, c.gaps) for c in await store.continuity()] == [
                ("BTCUSDT", 4_000, ()), ("ETHUSDT", 4_000, ())]
        finally:
            await store.close()

    run(go())
