"""Storage read models, lifecycle, credentials, retention, the aggTrade recorder and ``arbray db``, on both backends."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from arbray.cli_storage import export_table, register
from arbray.storage import StoreConfig, open_store
from arbray.storage.recorder import AggTradeRecorder
from arbray.storage.records import (
    AggTrade,
    FundingRate,
    Kline,
    Liquidation,
    OpenInterest,
    OrderRecord,
    PositionRecord,
    RiskEvent,
    SignalRecord,
)
from arbray.storage.schema import LATEST_VERSION
from tests.integration.storage_backends import dsn, make_dsn, pg_database, run
from tests.integration.test_storage_store import score, strategy, trade

pytestmark = pytest.mark.integration
__all__ = ["dsn", "make_dsn", "pg_database"]


def test_lifecycle_orders_signals_and_read_models(dsn: str) -> None:
    async def go() -> None:
        store = await open_store(dsn)
        try:
            a, b = strategy("alpha"), strategy("beta", 5_000.0)
            await store.upsert_strategy(a)
            await store.upsert_strategy(b)
            sid = a["strategy_id"]
            assert await store.set_strategy_status(sid, "paused", 2_000, reason="drawdown") is True
            assert await store.set_strategy_status(sid, "paused", 2_500) is False
            assert await store.set_strategy_status(sid, "running", 3_000) is True
            assert await store.set_strategy_status(b["strategy_id"], "deprecated", 4_000) is True
            with pytest.raises(ValueError, match="deprecated"):
                await store.set_strategy_status(b["strategy_id"], "running", 5_000)
            row = await store.get_strategy(sid)
            assert row is not None
            assert (row["status"], row["paused_ms"], row["resumed_ms"], row["status_changed_ms"]) == (
                "running", 2_000, 3_000, 3_000)
            events = await store.strategy_events(sid)
            assert [(e["event"], e["to_status"]) for e in events] == [
                ("created", "running"), ("status", "paused"), ("status", "running")]
            assert events[1]["detail"] == {"reason": "drawdown"}
            assert [s["slug"] for s in await store.list_strategies("deprecated")] == ["beta"]

            await store.insert_score_events([score("alpha", 10_000, 60.0), score("alpha", 20_000, 80.0),
                                             score("beta", 15_000, 40.0)])
            latest = {r["strategy"]: r for r in await store.latest_scores()}
            assert await store.latest_scores(["beta", "alpha", "nobody"]) == [latest["alpha"], latest["beta"]]
            assert latest["alpha"]["total"] == 80.0 and latest["alpha"]["is_entry"] is True
            assert latest["alpha"]["inputs"] == {"cvd_fast": 1.5, "obi": None}
            assert latest["alpha"]["layers"][0]["name"] == "direction" and latest["beta"]["ts_ms"] == 15_000
            assert len(await store.score_history("alpha", since_ms=15_000)) == 1

            for i in range(5):
                assert await store.insert_signal(SignalRecord(sid, "BTCUSDT", 10_000 + i, "LONG", "entry", 80.0 + i))
            assert await store.insert_signal({"strategy_id": sid, "symbol": "BTCUSDT", "ts_ms": 10_000,
                                              "side": "LONG", "action": "entry", "score": 80.0}) is False
            p1 = await store.signal_history(sid, limit=3)
            p2 = await store.signal_history(sid, limit=3, cursor=p1.next_cursor)
            assert [r["ts_ms"] for r in p1.rows + p2.rows] == [10_004, 10_003, 10_002, 10_001, 10_000]
            assert p2.next_cursor is None

            order = OrderRecord("o1", sid, "BTCUSDT", "BUY", "LIMIT", 0.2, created_ms=9_000, updated_ms=9_000,
                                time_in_force="GTX", price=100.0)
            await store.record_order(order)
            await store.record_order({**{f: getattr(order, f) for f in order.__slots__}, "state": "PARTIALLY_FILLED",
                                      "filled_qty": 0.1, "avg_price": 100.0, "updated_ms": 9_500,
                                      "venue_order_id": "v1"})
            assert [h["state"] for h in await store.order_history("o1")] == ["NEW", "PARTIALLY_FILLED"]

            await store.apply_fill({"fill_id": "f1", "client_order_id": "o1", "strategy_id": sid, "symbol": "BTCUSDT",
                                    "side": "BUY", "price": 100.0, "qty": 0.1, "fee": 0.0, "fee_asset": "USDT",
                                    "is_maker": True, "ts_ms": 9_500},
                                   PositionRecord("p1", sid, "BTCUSDT", "LONG", "open", 0.1, 100.0, 9_500, 9_500))
            assert [p["position_id"] for p in await store.open_positions()] == ["p1"]

            await store.record_trade(trade(sid, 1, 50_000, pnl=100.0, fees=5.0))
            await store.record_trade(trade(sid, 2, 60_000, pnl=-200.0, fees=5.0))
            await store.record_trade(trade(sid, 3, 70_000, pnl=50.0, fees=5.0))
            st = await store.strategy_stats(sid)
            assert (st["trades"], st["wins"], st["losses"]) == (3, 2, 1)
            assert st["net_pnl"] == pytest.approx(100 + (-200) + 50 - 15 - 1.5)
            assert st["max_drawdown"] == pytest.approx(200 + 5 + 0.5)
            assert st["profit_factor"] == pytest.approx((94.5 + 44.5) / 205.5)
            curve = await store.equity_curve(sid)
            assert curve[0]["balance"] == 10_000.0 and curve[-1]["balance"] == pytest.approx(10_000 - 66.5)

            cards = {c["slug"]: c for c in await store.strategy_cards()}
            assert cards["alpha"]["open_positions"] == 1 and cards["alpha"]["stats"]["trades"] == 3
            assert cards["alpha"]["latest_score"]["total"] == 80.0
            assert cards["beta"]["status"] == "deprecated" and cards["beta"]["stats"]["win_rate"] is None

            await store.set_risk_state("global", "ACTIVE", 1_000, {"daily_loss": 0.0})
            await store.set_risk_state("global", "HALTED", 2_000, {"daily_loss": 500.0})
            await store.add_risk_event(RiskEvent(2_000, "global", "critical", "circuit_break", "daily loss"))
            assert (await store.risk_state())["global"]["state"] == "HALTED"
            assert (await store.row_counts())["risk_events"] == 1
        finally:
            await store.close()

    run(go())


def test_market_data_continuity_and_retention(dsn: str) -> None:
    async def go() -> None:
        store = await open_store(dsn)
        day = 86_400_000
        now = 100 * day
        try:
            ids = [i for i in range(1, 101) if not (10 <= i <= 12 or i == 50)]
            await store.insert_agg_trades([AggTrade("ETHUSDT", i, 1.0, 1.0, i, i, now - (100 - i) * day, True)
                                           for i in ids])
            [c] = await store.continuity("ETHUSDT")
            assert (c.first_id, c.last_id, c.rows, c.gaps, c.missing) == (1, 100, 96, ((10, 12), (50, 50)), 4)
            await store.insert_klines([Kline("BTCUSDT", "1m", 0, 59_999, 1, 2, 0.5, 1.5, 10, 15, 3, 4)])
            await store.insert_klines([Kline("BTCUSDT", "1m", 0, 59_999, 1, 3, 0.5, 2.5, 20, 45, 6, 8)])
            await store.insert_funding_rates([FundingRate("BTCUSDT", now, 0.0001, 100.0)] * 2)
            await store.insert_open_interest([OpenInterest("BTCUSDT", now - 400 * day, 1e4, None)])
            await store.insert_liquidations([Liquidation("BTCUSDT", now, "SELL", 99.0, 0.5)] * 2)
            counts = await store.row_counts()
            assert (counts["klines"], counts["funding_rates"], counts["liquidations"]) == (1, 1, 1)
            kl = [r async for r in store.export_rows("klines")]
            assert kl[0]["close"] == 2.5 and kl[0]["trades"] == 6
            deleted = await store.apply_retention(now)
            assert deleted["agg_trades"] == len([i for i in ids if 100 - i > 30])
            assert deleted["open_interest"] == 1 and deleted["funding_rates"] == 0
            assert (await store.continuity("ETHUSDT"))[0].first_id == 70
        finally:
            await store.close()

    run(go())


def test_api_credentials_store_only_hashes(dsn: str) -> None:
    async def go() -> None:
        store = await open_store(dsn)
        try:
            token = await store.create_credential("ops", "admin", 1_000)
            assert await store.verify_token(token, 2_000) == "admin"
            assert await store.verify_token(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
            rows = [r async for r in store.export_rows("api_credentials")]
            assert token not in json.dumps(rows) and rows[0]["last_used_ms"] == 2_000
            assert await store.revoke_credential("ops") is True
            assert await store.verify_token(token) is None
        finally:
            await store.close()

    run(go())


def test_recorder_writes_everything_with_backpressure(dsn: str) -> None:
    async def go() -> None:
        store = await open_store(StoreConfig(dsn=dsn, queue_size=1_000, batch_size=300, flush_interval_ms=20))
        try:
            async with AggTradeRecorder(store) as rec:
                async def produce(symbol: str) -> None:
                    for i in range(6_000):
                        await rec.put(AggTrade(symbol, i, 1.0, 1.0, i, i, i, False))

                await asyncio.gather(produce("BTCUSDT"), produce("ETHUSDT"))
                await rec.flush()
                assert rec.depth == 0
            assert rec.stats.accepted == rec.stats.written == 12_000 and rec.stats.dropped == 0
            assert rec.stats.max_depth <= 1_000
            assert [(c.rows, c.gaps) for c in await store.continuity()] == [(6_000, ()), (6_000, ())]
        finally:
            await store.close()

    run(go())


def test_recorder_drops_only_when_configured_and_counts(dsn: str) -> None:
    async def go() -> None:
        store = await open_store(StoreConfig(dsn=dsn, queue_size=100, batch_size=50, drop_policy="drop_newest"))
        try:
            rec = AggTradeRecorder(store)
            rec.start()
            accepted = await rec.put_many([AggTrade("BTCUSDT", i, 1.0, 1.0, i, i, i, False) for i in range(250)])
            await rec.close()
            assert accepted == 100 and rec.stats.dropped == 150 and rec.stats.written == 100
            [c] = await store.continuity()
            assert (c.first_id, c.last_id, c.gaps) == (0, 99, ())
        finally:
            await store.close()

    run(go())


def test_recorder_retries_a_failed_write(dsn: str) -> None:
    async def go() -> None:
        store = await open_store(StoreConfig(dsn=dsn, batch_size=10, flush_interval_ms=5))
        real = store.insert_agg_trades
        calls = 0

        async def flaky(rows: Sequence[AggTrade | tuple[Any, ...]]) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ConnectionError("database went away")
            await real(rows)

        store.insert_agg_trades = flaky  # type: ignore[method-assign]  # inject one failure
        try:
            async with AggTradeRecorder(store) as rec:
                await rec.put_many([AggTrade("BTCUSDT", i, 1.0, 1.0, i, i, i, False) for i in range(30)])
                await rec.flush()
            assert rec.stats.write_errors == 1 and rec.stats.written == 30
            assert (await store.row_counts())["agg_trades"] == 30
        finally:
            await store.close()

    run(go())


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    parser = argparse.ArgumentParser(prog="arbray")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    return capsys.readouterr().out


def test_db_cli_migrate_info_export(dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = json.loads(_cli(["db", "migrate", "--db", dsn], capsys))
    assert out["applied"] == list(range(1, LATEST_VERSION + 1)) and out["schema_version"] == LATEST_VERSION
    assert json.loads(_cli(["db", "migrate", "--db", dsn], capsys))["applied"] == []

    async def seed() -> None:
        store = await open_store(dsn)
        try:
            await store.upsert_strategy(strategy("alpha"))
            await store.insert_score_events([score("alpha", 1_000, 70.0)])
        finally:
            await store.close()

    run(seed())
    info = json.loads(_cli(["db", "info", "--db", dsn], capsys))
    assert info["schema_version"] == LATEST_VERSION and info["rows"]["strategies"] == 1
    lines = _cli(["db", "export", "--db", dsn, "--table", "score_events", "--format", "jsonl"], capsys).splitlines()
    assert json.loads(lines[0])["inputs"] == {"cvd_fast": 1.5, "obi": None}
    target = tmp_path / "strategies.csv"
    _cli(["db", "export", "--db", dsn, "--table", "strategies", "--format", "csv", "--out", str(target)], capsys)
    [row] = list(csv.DictReader(io.StringIO(target.read_text())))
    assert row["slug"] == "alpha" and json.loads(row["config"]) == {"entry_score": 75}
    buf = io.BytesIO()
    assert run(export_table(StoreConfig(dsn=dsn), "retention_policy", "jsonl", buf)) == 8  # 6 + screener (0007)


def test_default_store_is_sqlite_in_wal_mode_under_the_data_dir(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    monkeypatch.delenv("ARBRAY_DB", raising=False)
    monkeypatch.delenv("ARBRAY_DB_FILE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))

    async def go() -> str:
        store = await open_store()
        try:
            assert store.dialect == "sqlite" and await store.schema_version() == LATEST_VERSION
            async with store.connection() as c:
                return str((await c.fetch("PRAGMA journal_mode"))[0]["journal_mode"])
        finally:
            await store.close()

    assert run(go()) == "wal"
    assert (tmp_path / "arbray" / "arbray.db").is_file()
