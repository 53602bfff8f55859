"""Strategy factory endpoints over a real store: every validation rule of digest §8.3 (field-level
422s, cross-field rules), create/list/get/patch and every lifecycle action, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arbray.backtest.journal import strategy_uuid
from tests.integration.storage_backends import dsn, make_dsn, pg_database
from tests.unit.api.helpers import api, factory_config, run

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
__all__ = ["dsn", "make_dsn", "pg_database"]

# field, a value below its range, a value above it (digest §8.3; gate thresholds start at 0 here)
RANGES: list[tuple[str, Any, Any]] = [
    ("weight_direction", 9, 81), ("weight_env", 4, 61), ("weight_aux", -1, 41), ("weight_momentum", -1, 21),
    ("entry_score", 59, 96), ("vol_atr_pct_min", -0.001, 0.021), ("whale_usd_threshold", -1, 1_000_001),
    ("whale_flow_pct", -0.1, 1.1), ("obi_threshold", -0.1, 0.91), ("spot_perp_threshold", -0.001, 0.011),
    ("sl_atr_multiplier", 0.49, 3.01), ("tp1_ratio", 0.29, 2.01), ("tp2_ratio", 0.49, 4.01),
    ("timeout_minutes", 29, 1441), ("flip_threshold", 59, 96),
]
ENUMS: list[tuple[str, Any]] = [("direction", "sideways"), ("cvd_fast_window", "1h"), ("cvd_slow_window", "2h"),
                                ("whale_mode", "sometimes"), ("gate_obi_enabled", "maybe")]


def sqlite_dsn(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


def body(config: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    return {"display_name": "BTC A", "config": config or factory_config(), **top}


def locs(resp: Any) -> set[tuple[Any, ...]]:
    assert resp.status_code == 422, resp.text
    return {tuple(e["loc"]) for e in resp.json()["detail"]}


def test_every_field_range_and_enum_is_a_field_level_422(tmp_path: Path) -> None:
    async def go() -> None:
        async with api(sqlite_dsn(tmp_path)) as a:
            for field, low, high in RANGES:
                for value in (low, high):
                    r = await a.client.post("/api/v1/strategies", headers=a.admin,
                                            json=body(factory_config(**{field: value})))
                    assert ("body", "config", field) in locs(r), (field, value)
            for field, value in ENUMS:
                r = await a.client.post("/api/v1/strategies", headers=a.admin,
                                        json=body(factory_config(**{field: value})))
                assert ("body", "config", field) in locs(r), field
            assert await a.store.list_strategies() == []

    run(go())


def test_cross_field_rules_and_create_level_rules(tmp_path: Path) -> None:
    async def go() -> None:
        async with api(sqlite_dsn(tmp_path)) as a:
            post = a.client.post
            weights = {"weight_direction": 50, "weight_env": 25, "weight_aux": 15, "weight_momentum": 5}
            r = await post("/api/v1/strategies", headers=a.admin, json=body(factory_config(**weights)))
            assert locs(r) == {("body", "config", w) for w in weights}
            assert all(e["type"] == "cross_field" and "sum to 100, got 95" in e["msg"] for e in r.json()["detail"])
            r = await post("/api/v1/strategies", headers=a.admin,
                           json=body(factory_config(entry_score=85, flip_threshold=80)))
            assert locs(r) == {("body", "config", "entry_score"), ("body", "config", "flip_threshold")}
            r = await post("/api/v1/strategies", headers=a.admin,
                           json=body(factory_config(tp1_ratio=1.5, tp2_ratio=1.5)))
            assert locs(r) == {("body", "config", "tp1_ratio"), ("body", "config", "tp2_ratio")}
            # a broken field and a broken rule over other fields are reported together
            r = await post("/api/v1/strategies", headers=a.admin,
                           json=body(factory_config(timeout_minutes=5, weight_env=30)))
            assert ("body", "config", "timeout_minutes") in locs(r) and ("body", "config", "weight_env") in locs(r)
            assert locs(await post("/api/v1/strategies", headers=a.admin, json=body(display_name=""))) == {
                ("body", "display_name")}
            assert locs(await post("/api/v1/strategies", headers=a.admin, json=body(display_name="x" * 51))) == {
                ("body", "display_name")}
            assert locs(await post("/api/v1/strategies", headers=a.admin, json=body(display_name="   "))) == {
                ("body", "display_name")}
            assert locs(await post("/api/v1/strategies", headers=a.admin, json=body(initial_balance=999))) == {
                ("body", "initial_balance")}
            assert locs(await post("/api/v1/strategies", headers=a.admin, json=body(description="d" * 501))) == {
                ("body", "description")}
            assert locs(await post("/api/v1/strategies", headers=a.admin, json=body(surprise=1))) == {
                ("body", "surprise")}
            r = await post("/api/v1/strategies", headers=a.admin, json=body(factory_config(symbol="DOGEUSDT")))
            assert locs(r) == {("body", "config", "symbol")} and "not traded here" in r.json()["detail"][0]["msg"]
            r = await post("/api/v1/strategies", headers=a.admin, json=body({"strategy_id": "x", "symbol": "BTCUSDT"}))
            assert locs(r) == {("body", "config", "kind")}
            r = await post("/api/v1/strategies", headers=a.admin, json=body({"kind": "nope", "strategy_id": "x"}))
            assert locs(r) == {("body", "config", "kind")} and "known:" in r.json()["detail"][0]["msg"]
            r = await post("/api/v1/strategies", headers=a.admin, json=body(factory_config(name="bad name!")))
            assert ("body", "config", "strategy_id") in locs(r)
            assert all("input" not in e for e in r.json()["detail"])  # the body is never echoed back
            # any registered kind is validated by its own model
            r = await post("/api/v1/strategies", headers=a.admin,
                           json=body({"kind": "v53", "strategy_id": "v53_x", "symbols": ["BTCUSDT"],
                                      "entry_score": 500}))
            assert r.status_code == 422 and all(e["loc"][:2] == ["body", "config"] for e in r.json()["detail"])
            ok = await post("/api/v1/strategies", headers=a.admin,
                            json=body({"kind": "v53", "strategy_id": "v53_x", "symbols": ["BTCUSDT", "ETHUSDT"]}))
            assert ok.status_code == 201, ok.text
            assert ok.json()["strategy"]["symbols"] == ["BTCUSDT", "ETHUSDT"]

    run(go())


def test_create_list_get_patch_and_lifecycle(dsn: str) -> None:
    async def go() -> None:
        async with api(dsn) as a:
            c = a.client
            r = await c.post("/api/v1/strategies", headers=a.admin, json=body(
                factory_config(weight_direction=50, weight_env=30), tags=["btc", "fast"], description="first"))
            assert r.status_code == 201, r.text
            out = r.json()
            sid = strategy_uuid("live", "btc_a")
            assert out["changed"] is True and out["strategy"]["strategy_id"] == sid
            assert out["strategy"]["slug"] == "btc_a" and out["strategy"]["status"] == "running"
            assert out["strategy"]["initial_balance"] == out["strategy"]["current_balance"] == 10_000
            assert out["runtime"] == {"reloaded": False, "version": None, "running": None,
                                      "detail": "runtime not running"}
            assert (await c.post("/api/v1/strategies", headers=a.admin, json=body())).status_code == 409
            await c.post("/api/v1/strategies", headers=a.admin, json=body(
                {"kind": "factory", "strategy_id": "eth_b", "symbol": "ETHUSDT"}, display_name="ETH B"))

            cards = (await c.get("/api/v1/strategies", headers=a.read)).json()
            assert [x["slug"] for x in cards] == ["btc_a", "eth_b"]
            assert cards[0]["net_usdt"] == 0 and cards[0]["trades"] == 0 and cards[0]["pnl_24h"]["trades"] == 0
            assert [x["slug"] for x in (await c.get("/api/v1/strategies?symbol=ETHUSDT", headers=a.read)).json()] == [
                "eth_b"]
            assert (await c.get("/api/v1/strategies?kind=v53", headers=a.read)).json() == []
            assert len((await c.get("/api/v1/strategies?source=live", headers=a.read)).json()) == 2
            assert (await c.get("/api/v1/strategies?status=nope", headers=a.read)).status_code == 422

            by_slug = (await c.get("/api/v1/strategies/btc_a", headers=a.read)).json()
            by_uuid = (await c.get(f"/api/v1/strategies/{sid}", headers=a.read)).json()
            assert by_slug == by_uuid and by_slug["config"]["weight_env"] == 30
            assert by_slug["config"]["obi_threshold"] == 0.30  # BTC's gate-table default, filled in
            assert (await c.get("/api/v1/strategies/nope", headers=a.read)).status_code == 404
            assert (await c.get("/api/v1/strategies/..%2F..", headers=a.read)).status_code == 404

            # patch: partial, re-validated against the stored config
            p = await c.patch("/api/v1/strategies/btc_a", headers=a.admin, json={"config": {"weight_env": 25}})
            assert locs(p) >= {("body", "config", "weight_env")}  # 50+25+15+5 = 95
            p = await c.patch("/api/v1/strategies/btc_a", headers=a.admin,
                              json={"config": {"weight_env": 25, "weight_direction": 55}, "display_name": "BTC A2"})
            assert p.status_code == 200 and p.json()["changed"] is True
            assert p.json()["strategy"]["display_name"] == "BTC A2"
            assert p.json()["strategy"]["config"]["weight_direction"] == 55
            for field in ("symbol", "initial_balance", "status", "kind", "strategy_id"):
                r = await c.patch("/api/v1/strategies/btc_a", headers=a.admin, json={field: "x"})
                assert locs(r) == {("body", field)} and r.json()["detail"][0]["type"] == "not_patchable"
            for field in ("symbol", "kind", "strategy_id"):
                r = await c.patch("/api/v1/strategies/btc_a", headers=a.admin, json={"config": {field: "ETHUSDT"}})
                assert locs(r) == {("body", "config", field)}
            assert (await c.patch("/api/v1/strategies/btc_a", headers=a.admin, json={})).status_code == 400
            assert (await c.patch("/api/v1/strategies/btc_a", headers=a.admin, json={"config": {}})).status_code == 400
            same = await c.patch("/api/v1/strategies/btc_a", headers=a.admin, json={"display_name": "BTC A2"})
            assert same.status_code == 200 and same.json()["changed"] is False

            # lifecycle: running ⇄ paused, → deprecated (confirmed), restore, add-balance
            assert (await c.post("/api/v1/strategies/btc_a/pause", headers=a.read)).status_code == 403
            p1 = await c.post("/api/v1/strategies/btc_a/pause", headers=a.admin, json={"reason": "test"})
            assert p1.json()["changed"] and p1.json()["strategy"]["status"] == "paused"
            assert (await c.post("/api/v1/strategies/btc_a/pause", headers=a.admin)).json()["changed"] is False
            assert (await c.post("/api/v1/strategies/btc_a/restore", headers=a.admin)).status_code == 409
            r1 = await c.post("/api/v1/strategies/btc_a/resume", headers=a.admin)
            assert r1.json()["strategy"]["status"] == "running"
            assert locs(await c.post("/api/v1/strategies/btc_a/deprecate", headers=a.admin, json={})) == {
                ("body", "confirm")}
            assert locs(await c.post("/api/v1/strategies/btc_a/deprecate", headers=a.admin,
                                     json={"confirm": False})) == {("body", "confirm")}
            d = await c.post("/api/v1/strategies/btc_a/deprecate", headers=a.admin, json={"confirm": True})
            assert d.json()["strategy"]["status"] == "deprecated" and d.json()["strategy"]["deprecated_ms"]
            for action in ("pause", "resume"):
                assert (await c.post(f"/api/v1/strategies/btc_a/{action}", headers=a.admin)).status_code == 403
            assert (await c.patch("/api/v1/strategies/btc_a", headers=a.admin,
                                  json={"display_name": "z"})).status_code == 403
            assert (await c.post("/api/v1/strategies/btc_a/add-balance", headers=a.admin,
                                 json={"amount": 100})).status_code == 403
            assert [x["slug"] for x in (await c.get("/api/v1/strategies?status=deprecated", headers=a.read)).json()] \
                == ["btc_a"]
            rs = await c.post("/api/v1/strategies/btc_a/restore", headers=a.admin)
            assert rs.json()["strategy"]["status"] == "running" and rs.json()["strategy"]["deprecated_ms"] is None

            assert locs(await c.post("/api/v1/strategies/btc_a/add-balance", headers=a.admin,
                                     json={"amount": 0})) == {("body", "amount")}
            ab = await c.post("/api/v1/strategies/btc_a/add-balance", headers=a.admin,
                              json={"amount": 1_500, "ref": "topup-1"})
            assert ab.status_code == 200 and ab.json()["changed"] and ab.json()["ref"] == "topup-1"
            assert ab.json()["strategy"]["initial_balance"] == ab.json()["strategy"]["current_balance"] == 11_500
            again = await c.post("/api/v1/strategies/btc_a/add-balance", headers=a.admin,
                                 json={"amount": 1_500, "ref": "topup-1"})
            assert again.json()["changed"] is False and again.json()["strategy"]["current_balance"] == 11_500
            equity = (await c.get("/api/v1/strategies/btc_a/equity", headers=a.read)).json()
            assert [(p["kind"], p["balance"]) for p in equity] == [("initial", 10_000), ("deposit", 11_500)]

            events = (await c.get("/api/v1/strategies/btc_a/events", headers=a.read)).json()
            assert [e["event"] for e in events] == [
                "created", "api:create", "config_changed", "api:patch", "status", "status", "status", "restored",
                "balance_added"]
            assert [(e["from_status"], e["to_status"]) for e in events if e["event"] == "status"] == [
                ("running", "paused"), ("paused", "running"), ("running", "deprecated")]
            assert events[4]["detail"] == {"reason": "api:root: test"}
            assert events[-1]["detail"]["source"] == "api:root"

    run(go())
