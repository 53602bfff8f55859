"""Trading, market, signal, risk, system and meta endpoints over a store seeded by journalling a real
backtest (generated BTCUSDT, the real engine), on SQLite and PostgreSQL; runtime-backed endpoints
without a runtime (journal fallbacks and 503s)."""

from __future__ import annotations

from typing import Any

import pytest

from arbray.storage.records import FundingRate, Liquidation, OpenInterest, RiskEvent
from tests.integration.storage_backends import dsn, make_dsn, pg_database
from tests.unit.api.helpers import api, run, seed, seeded_backtest

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
__all__ = ["dsn", "make_dsn", "pg_database"]
V51 = "v51_baseline@bt-seed"


async def all_pages(client: Any, url: str, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1_000):
        q = {**params, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(url, headers=headers, params=q)).json()
        rows += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows
    raise AssertionError("pagination did not end")


def test_trades_equity_stats_scores_and_signals_of_a_journalled_backtest(dsn: str) -> None:
    async def go() -> None:
        async with api(dsn) as a:
            counts = await seed(a.store)
            c, h = a.client, a.read
            cards = {x["slug"]: x for x in (await c.get("/api/v1/strategies?source=backtest", headers=h)).json()}
            assert set(cards) == {V51, "BTC_CVD30mx4h_TPbalanced@bt-seed"}
            v51 = cards[V51]
            assert v51["source"] == "backtest" and v51["run_id"] == "bt-seed" and v51["trades"] == counts["trades"] > 0
            assert v51["net_usdt"] == pytest.approx(v51["current_balance"] - v51["initial_balance"])
            assert v51["net_r"] == pytest.approx(v51["stats"]["total_r"])

            trades = await all_pages(c, f"/api/v1/strategies/{V51}/trades", h, limit=1)
            assert len(trades) == counts["trades"] and len({t["trade_id"] for t in trades}) == len(trades)
            assert [t["exit_ms"] for t in trades] == sorted((t["exit_ms"] for t in trades), reverse=True)
            assert all(t["net_pnl"] == pytest.approx(t["pnl"] - t["fees"] + t["funding"]) for t in trades)
            same = await all_pages(c, "/api/v1/trades", h, strategy=V51, run_id="bt-seed", limit=3)
            assert [t["trade_id"] for t in same] == [t["trade_id"] for t in trades]
            reason = trades[0]["exit_reason"]
            by_reason = (await c.get("/api/v1/trades", headers=h, params={"exit_reason": reason})).json()["items"]
            assert by_reason and all(t["exit_reason"] == reason for t in by_reason)
            late = (await c.get("/api/v1/trades", headers=h, params={"since_ms": trades[0]["exit_ms"]})).json()
            assert [t["trade_id"] for t in late["items"]] == [trades[0]["trade_id"]]
            bad = await c.get("/api/v1/trades", headers=h, params={"cursor": "nope"})
            assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "cursor"]
            assert (await c.get("/api/v1/trades", headers=h, params={"limit": 1_001})).status_code == 422
            assert (await c.get("/api/v1/trades", headers=h, params={"limit": 0})).status_code == 422

            equity = (await c.get(f"/api/v1/strategies/{V51}/equity", headers=h)).json()
            assert equity[0]["kind"] == "initial" and equity[-1]["balance"] == pytest.approx(v51["current_balance"])
            st = (await c.get(f"/api/v1/strategies/{V51}/stats", headers=h)).json()
            assert st["stats"]["trades"] == counts["trades"] and st["stats"]["max_drawdown"] >= 0
            ex = st["execution"]
            assert ex["fills"] > 0 and 0 <= ex["maker_ratio"] <= 1 and ex["fees"] > 0
            assert ex["fees_r_avg"] is not None and ex["fees_r_avg"] > 0
            overall = (await c.get("/api/v1/stats?source=backtest", headers=h)).json()
            assert overall["strategies"] == 2 and overall["trades"] == counts["trades"]
            assert overall["execution"]["fills"] >= ex["fills"]
            assert (await c.get("/api/v1/stats", headers=h)).json()["strategies"] == 0  # no live strategy

            scores = await all_pages(c, f"/api/v1/strategies/{V51}/scores", h, limit=97)
            n_v51 = sum(1 for _, rs in seeded_backtest()[1].batches for r in rs if r.strategy_id == "v51_baseline")
            assert len(scores) == n_v51 and len({s["id"] for s in scores}) == n_v51
            assert [s["ts_ms"] for s in scores] == sorted(s["ts_ms"] for s in scores)
            assert all(s["features"] is None for s in scores)
            with_f = (await c.get(f"/api/v1/strategies/{V51}/scores", headers=h,
                                  params={"limit": 1, "features": True})).json()["items"][0]
            assert with_f["features"]["symbol"] == "BTCUSDT" and with_f["layers"] and with_f["gates"]
            signals = await all_pages(c, f"/api/v1/strategies/{V51}/signals", h, limit=5)
            assert len(signals) > 0 and all(s["strategy_id"] == v51["strategy_id"] for s in signals)
            assert signals == await all_pages(c, "/api/v1/signals", h, strategy=V51, limit=50)
            assert (await c.get("/api/v1/scores/latest", headers=h)).json() == []  # no live scores
            detail = (await c.get(f"/api/v1/strategies/{V51}", headers=h)).json()
            assert detail["latest_score"]["symbol"] == "BTCUSDT" and detail["stats"]["trades"] == counts["trades"]
            pos = (await c.get("/api/v1/positions", headers=h)).json()
            assert pos == {"source": "journal", "positions": []}

    run(go())


def test_market_indicators_risk_fallback_system_and_meta(dsn: str) -> None:
    async def go() -> None:
        async with api(dsn) as a:
            c, h = a.client, a.read
            now = a.ctx.clock.now_ms()
            await a.store.insert_funding_rates([FundingRate("BTCUSDT", now - 3_600_000, 0.0001, 60_000.0)])
            await a.store.insert_open_interest([OpenInterest("BTCUSDT", now - 60_000 * k, 100.0 + k, None)
                                                for k in range(3)])
            await a.store.insert_liquidations([Liquidation("BTCUSDT", now - 1_000, "SELL", 60_000.0, 0.5)])
            ind = (await c.get("/api/v1/market/BTCUSDT/indicators", headers=h)).json()
            assert [o["open_interest"] for o in ind["open_interest"]] == [100.0, 101.0, 102.0]
            assert ind["liquidations"][0]["usd"] == 30_000.0 and ind["funding"][0]["rate"] == 0.0001
            assert ind["snapshot"] is None
            assert (await c.get("/api/v1/market/btc/indicators", headers=h)).status_code == 422
            for url in ("/api/v1/market/snapshots", "/api/v1/market/BTCUSDT", "/api/v1/accounts",
                        "/api/v1/system/health", "/api/v1/system/stats", "/api/v1/system/cluster"):
                r = await c.get(url, headers=h)
                assert (r.status_code, r.json()) == (503, {"detail": "runtime not running"}), url

            await a.store.set_risk_state("global", "REDUCING", now, {"reasons": ["daily drawdown"]})
            risk = (await c.get("/api/v1/risk", headers=h)).json()
            assert (risk["source"], risk["state"], risk["reasons"]) == ("journal", "REDUCING", ["daily drawdown"])
            for k in range(3):
                await a.store.add_risk_event(RiskEvent(now + k, "global", "warning", "breach", f"event {k}"))
            events = await all_pages(c, "/api/v1/risk/events", h, limit=2)
            assert [e["message"] for e in events] == ["event 2", "event 1", "event 0"]
            for url, payload in (("/api/v1/risk/block-new", {}), ("/api/v1/risk/resume", None),
                                 ("/api/v1/risk/emergency-close", {"confirm": True})):
                r = await c.post(url, headers=a.admin, json=payload)
                assert r.status_code == 503, url
            assert (await c.post("/api/v1/risk/emergency-close", headers=a.admin, json={"confirm": False})
                    ).status_code == 422
            assert len(await all_pages(c, "/api/v1/risk/events", h)) == 3  # nothing executed, nothing recorded

            assert (await c.get("/healthz")).json() == {"status": "ok"}
            ready = await c.get("/readyz")
            assert ready.status_code == 503 and ready.json() == {"ready": False, "detail": "runtime not running"}
            v = (await c.get("/api/v1/system/versions", headers=h)).json()
            assert v["schema_version"] == v["latest_schema_version"] and v["kinds"]["factory"] == "5.4"
            assert (await c.get("/api/v1/system/whoami", headers=h)).json() == {"name": "viewer", "role": "read"}
            kinds = (await c.get("/api/v1/kinds", headers=h)).json()
            assert "factory" in {k["name"] for k in kinds}
            fk = (await c.get("/api/v1/kinds/factory", headers=h)).json()
            assert fk["config_schema"]["properties"]["weight_direction"]["maximum"] == 80
            assert (await c.get("/api/v1/kinds/nope", headers=h)).status_code == 404
            assert len((await c.get("/api/v1/presets", headers=h)).json()) == 25
            syms = {s["symbol"]: s for s in (await c.get("/api/v1/symbols", headers=h)).json()}
            assert syms["BTCUSDT"]["gate_defaults"]["whale_mode"] == "flow"
            assert (await c.get("/api/v1/backtests", headers=h)).json() == {"detail": "jobs not available"}

    run(go())
