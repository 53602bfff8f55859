"""Backtest jobs through the API with the local runner: a real ``arbray backtest`` process on the
bundled recording, its status, logs and results; stopping a job; a runner restart losing nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from arbray.api.jobs import JobsConfig, SubprocessJobRunner
from tests.unit.api.helpers import api, run

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
INPUTS = ["btcusdt_20240718.gz", "btcusdt_20240719.gz"]


async def wait_status(client: Any, job_id: str, headers: dict[str, str], want: set[str],
                      timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info: dict[str, Any] = (await client.get(f"/api/v1/backtests/{job_id}", headers=headers)).json()
        if info["status"] in want:
            return info
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} not in {want} after {timeout_s}s")


def test_backtest_job_runs_reports_and_journals(tmp_path: Path) -> None:
    dsn = f"sqlite:///{tmp_path / 'jobs.db'}"

    async def go() -> None:
        runner = SubprocessJobRunner(JobsConfig(work_dir=tmp_path / "jobs", journal_dsn=dsn))
        try:
            async with api(dsn, jobs=runner) as a:
                c = a.client
                assert set(INPUTS) <= set((await c.get("/api/v1/backtests/inputs", headers=a.read)).json())
                bad = await c.post("/api/v1/backtests", headers=a.admin,
                                   json={"type": "backtest", "inputs": ["nope.gz"], "strategies": ["v51_baseline"]})
                assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "inputs", 0]
                assert (await c.post("/api/v1/backtests", headers=a.read, json={})).status_code == 403
                r = await c.post("/api/v1/backtests", headers=a.admin, json={
                    "type": "backtest", "inputs": INPUTS, "journal": True,
                    "strategies": ["v51_baseline", {"kind": "factory", "strategy_id": "job_inline",
                                                    "symbol": "BTCUSDT"}]})
                assert r.status_code == 202, r.text
                job_id = r.json()["job_id"]
                assert (await c.get(f"/api/v1/backtests/{job_id}/results", headers=a.read)).status_code in (409, 200)
                info = await wait_status(c, job_id, a.read, {"SUCCEEDED", "FAILED"})
                log = (await c.get(f"/api/v1/backtests/{job_id}/logs", headers=a.read)).json()["log"]
                assert info["status"] == "SUCCEEDED", log
                res = (await c.get(f"/api/v1/backtests/{job_id}/results", headers=a.read)).json()
                assert res["summary"]["trades_processed"] > 0 and res["summary"]["journal"]["strategies"] == 2
                assert "summary.json" in res["files"] and res["detail"]["trades_processed"] > 0
                slugs = {x["slug"] for x in (await c.get("/api/v1/strategies?source=backtest", headers=a.read)).json()}
                assert {s.split("@")[0] for s in slugs} == {"v51_baseline", "job_inline"}
                assert [j["job_id"] for j in (await c.get("/api/v1/backtests", headers=a.read)).json()] == [job_id]
                assert (await c.get("/api/v1/backtests/backtest-000000000000", headers=a.read)).status_code == 404
                stopped = await c.post(f"/api/v1/backtests/{job_id}/stop", headers=a.admin)
                assert stopped.json()["status"] == "SUCCEEDED"  # a finished job is left as it is
        finally:
            await runner.close()

    run(go())


def test_stop_and_restart_lose_nothing(tmp_path: Path) -> None:
    work = tmp_path / "jobs"

    async def go() -> None:
        runner = SubprocessJobRunner(JobsConfig(work_dir=work, max_running=1))
        async with api(f"sqlite:///{tmp_path / 'j.db'}", jobs=runner) as a:
            body = {"type": "backtest", "inputs": INPUTS, "strategies": ["v51_baseline"]}
            first = (await a.client.post("/api/v1/backtests", headers=a.admin, json=body)).json()["job_id"]
            second = (await a.client.post("/api/v1/backtests", headers=a.admin, json=body)).json()["job_id"]
            assert (await a.client.get(f"/api/v1/backtests/{second}", headers=a.read)).json()["status"] == "PENDING"
            await wait_status(a.client, first, a.read, {"RUNNING", "SUCCEEDED"})
            r = await a.client.post(f"/api/v1/backtests/{second}/stop", headers=a.admin)
            assert r.json()["status"] == "STOPPED"
            r = await a.client.post(f"/api/v1/backtests/{first}/stop", headers=a.admin)
            assert r.json()["status"] in ("STOPPED", "SUCCEEDED")
        await runner.close()
        meta = orjson.loads((work / second / "job.json").read_bytes())
        assert meta["status"] == "STOPPED"
        # a job the runner was still tracking when it died is reported, not forgotten
        (work / "backtest-0123456789ab").mkdir()
        (work / "backtest-0123456789ab" / "job.json").write_bytes(orjson.dumps(
            {"job_id": "backtest-0123456789ab", "type": "backtest", "status": "RUNNING", "submitted_ms": 1,
             "started_ms": 2, "ended_ms": None, "message": None}))
        again = SubprocessJobRunner(JobsConfig(work_dir=work))
        lost = await again.info("backtest-0123456789ab")
        assert lost is not None and lost["status"] == "FAILED" and "restarted" in lost["message"]
        assert {j["job_id"] for j in await again.list()} == {first, second, "backtest-0123456789ab"}
        await again.close()

    run(go())
