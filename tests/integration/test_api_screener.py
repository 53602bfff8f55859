"""Screener endpoints over a real store (SQLite and PostgreSQL) seeded by the periodic service: the
latest ranked scan per model, the run history with cursors, auth, validation and the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbray.clock import ManualClock
from arbray.screener.service import ScreenerConfig, ScreenerService
from tests.integration.storage_backends import dsn, make_dsn, pg_database
from tests.integration.test_screen_service import T0, filled_core
from tests.unit.api.helpers import api, run

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
__all__ = ["dsn", "make_dsn", "pg_database"]


def test_latest_and_runs_from_the_journal(dsn: str) -> None:
    async def go() -> None:
        async with api(dsn) as a:
            get = a.client.get
            r = await get("/api/v1/screener/latest?model=ats_v2", headers=a.read)
            assert r.status_code == 404 and r.json() == {"detail": "no ats_v2 scan journalled yet"}
            clock = ManualClock(T0)
            svc = ScreenerService(filled_core(15), ScreenerConfig(), a.store, clock)
            for k in range(3):
                clock.set(T0 + k * 60_000)
                await svc.run_once()
            assert (await get("/api/v1/screener/latest")).status_code == 401
            r = await get("/api/v1/screener/latest?model=short_grid&limit=3", headers=a.read)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["model"] == "short_grid" and body["started_ms"] == T0 + 120_000 and body["symbols"] == 15
            assert [x["rank"] for x in body["results"]] == [1, 2, 3]
            mem = svc.latest_result("short_grid", 3)
            assert mem is not None and [x["symbol"] for x in body["results"]] == [x["symbol"] for x in
                                                                                    mem["results"]]
            top = body["results"][0]
            assert set(top) == {"rank", "symbol", "timeframe", "score", "probability_up", "mode", "factors",
                                "components", "missing", "explanation"}
            assert top["factors"]["spread_bps"] is None and top["explanation"].startswith("GSS")
            ats = (await get("/api/v1/screener/latest", headers=a.read)).json()  # model defaults to ats_v2
            assert ats["model"] == "ats_v2" and len(ats["results"]) == 15 and ats["results"][0]["mode"] == "v1"
            assert 0 <= ats["results"][0]["probability_up"] <= 1
            page = (await get("/api/v1/screener/runs?limit=4", headers=a.read)).json()
            assert [x["model"] for x in page["items"]] == ["short_grid", "ats_v2"] * 2
            assert "results" not in page["items"][0] and page["next_cursor"]
            rest = (await get(f"/api/v1/screener/runs?limit=4&cursor={page['next_cursor']}", headers=a.read)).json()
            assert len(rest["items"]) == 2 and rest["next_cursor"] is None
            only = (await get("/api/v1/screener/runs?model=ats_v2", headers=a.read)).json()
            assert len(only["items"]) == 3 and {x["model"] for x in only["items"]} == {"ats_v2"}
            for bad in ("latest?model=ema", "latest?limit=0", "latest?limit=100000", "runs?cursor=nope",
                        "runs?model=x"):
                assert (await get(f"/api/v1/screener/{bad}", headers=a.read)).status_code == 422, bad

    run(go())


def test_openapi_documents_the_screener(tmp_path: Path) -> None:
    async def go() -> None:
        async with api(f"sqlite:///{tmp_path}/o.db") as a:
            doc = (await a.client.get("/api/v1/openapi.json")).json()
            latest = doc["paths"]["/api/v1/screener/latest"]["get"]
            assert {"200", "401", "404", "422"} <= set(latest["responses"])
            assert doc["components"]["schemas"]["ScreenLatest"]["examples"][0]["results"][0]["rank"] == 1
            assert "/api/v1/screener/runs" in doc["paths"]

    run(go())
