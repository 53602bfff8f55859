"""The control API on a real Ray cluster: Serve, a real Prometheus scraping Ray's metrics, Ray jobs.

One local cluster for this module's session (dashboard on loopback for the job API, metrics export
on a free port, metrics reported every second); Serve runs the API from ``arbray.actors.serve``
on a free loopback port; Prometheus (Debian package ``prometheus``) scrapes the export port and
the test reads an ``arbray_…`` metric back through Prometheus's HTTP API.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(fn: Any, timeout_s: float, what: str, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last: {last!r}")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A private local Ray with its dashboard (job API) and metrics export on free loopback ports."""
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    import ray

    if ray.is_initialized():
        pytest.skip("Ray was initialised elsewhere in this session; this module needs its own metrics port")
    ports = {"metrics": free_port(), "dashboard": free_port()}
    ray.init(num_cpus=2, namespace="arbray", include_dashboard=True, dashboard_host="127.0.0.1",
             dashboard_port=ports["dashboard"], _metrics_export_port=ports["metrics"], log_to_driver=False,
             _system_config={"metrics_report_interval_ms": 1000},
             _temp_dir=str(tmp_path_factory.mktemp("ray")))
    try:
        yield ports
    finally:
        from ray import serve

        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="session")
def served(cluster: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The API on Serve over a fresh SQLite store, with a read and an admin token."""
    from arbray.actors.serve import ServeApiConfig, start

    from arbray.storage import open_store

    root = tmp_path_factory.mktemp("api")
    dsn = f"sqlite:///{root / 'arbray.db'}"

    async def tokens() -> tuple[str, str]:
        store = await open_store(dsn)
        try:
            return await store.create_credential("ops", "admin"), await store.create_credential("viewer", "read")
        finally:
            await store.close()

    admin, read = asyncio.run(tokens())
    port = free_port()
    start(ServeApiConfig(dsn=dsn, jobs_address=f"http://127.0.0.1:{cluster['dashboard']}",
                         jobs_dir=str(root / "jobs")), port=port)
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{base}/healthz", timeout=5).status_code == 200, 60, "Serve to answer")
    yield {"base": base, "admin": {"Authorization": f"Bearer {admin}"}, "read": {"Authorization": f"Bearer {read}"}}


def test_api_on_serve_authenticates_validates_and_serves_the_dashboard(served: dict[str, Any]) -> None:
    base = served["base"]
    with httpx.Client(base_url=base, timeout=10) as c:
        assert c.get("/api/v1/strategies").status_code == 401
        body = {"display_name": "BTC on Serve", "config": {"kind": "factory", "strategy_id": "serve_btc",
                                                           "symbol": "BTCUSDT"}}
        assert c.post("/api/v1/strategies", json=body, headers=served["read"]).status_code == 403
        bad = c.post("/api/v1/strategies", headers=served["admin"],
                     json={**body, "config": {**body["config"], "weight_env": 40}})
        assert bad.status_code == 422
        assert {tuple(e["loc"]) for e in bad.json()["detail"]} >= {("body", "config", "weight_env")}
        created = c.post("/api/v1/strategies", json=body, headers=served["admin"])
        assert created.status_code == 201, created.text
        assert created.json()["runtime"]["reloaded"] is False  # no engine running in this cluster
        cards = c.get("/api/v1/strategies", headers=served["read"]).json()
        assert [x["slug"] for x in cards] == ["serve_btc"]
        assert c.get("/readyz").status_code == 503
        snaps = c.get("/api/v1/market/snapshots", headers=served["read"])  # no engine in this namespace
        assert snaps.json() in ({"detail": "runtime not running"}, {})
        assert c.get("/api/v1/system/health", headers=served["read"]).status_code == 503
        page = c.get("/")
        assert page.status_code == 200 and page.text.lower().startswith("<!doctype html>")
        assert "default-src 'self'" in page.headers["content-security-policy"]


@pytest.mark.skipif(PROMETHEUS is None, reason="Prometheus is not installed (Debian package prometheus)")
def test_prometheus_scrapes_arbray_api_metrics_from_ray(served: dict[str, Any], cluster: dict[str, Any],
                                                        tmp_path: Path) -> None:
    prom_port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                   "scrape_configs:\n  - job_name: ray\n    static_configs:\n"
                   f"      - targets: ['127.0.0.1:{cluster['metrics']}']\n", encoding="utf-8")
    assert PROMETHEUS is not None
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        prom = f"http://127.0.0.1:{prom_port}"
        wait_for(lambda: httpx.get(f"{prom}/-/ready", timeout=2).status_code == 200, 30, "Prometheus to be ready")
        with httpx.Client(base_url=served["base"], timeout=10) as c:
            for _ in range(5):
                assert c.get("/api/v1/strategies", headers=served["read"]).status_code == 200
            assert c.get("/api/v1/strategies").status_code == 401
        query = ('sum without (WorkerId, instance, job) '
                 '(ray_arbray_api_requests_total{route="/api/v1/strategies", method="GET"})')

        def scraped() -> list[dict[str, Any]]:
            res = httpx.get(f"{prom}/api/v1/query", params={"query": query}, timeout=5).json()
            assert res["status"] == "success"
            rows: list[dict[str, Any]] = res["data"]["result"]
            ok = {r["metric"].get("status"): float(r["value"][1]) for r in rows}
            return rows if ok.get("200", 0) >= 5 and ok.get("401", 0) >= 1 else []

        rows = wait_for(scraped, 90, "the API request counter in Prometheus", every_s=1.0)
        assert {r["metric"]["method"] for r in rows} == {"GET"} and all("token" not in r["metric"] for r in rows)
        hist = httpx.get(f"{prom}/api/v1/query", timeout=5, params={
            "query": 'sum(ray_arbray_api_request_seconds_count{route="/api/v1/strategies"})'}).json()
        assert float(hist["data"]["result"][0]["value"][1]) >= 6
        failures = httpx.get(f"{prom}/api/v1/query", timeout=5, params={
            "query": 'sum(ray_arbray_api_auth_failures_total{reason="missing"})'}).json()
        assert float(failures["data"]["result"][0]["value"][1]) >= 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_backtest_runs_as_a_ray_job_and_reports_results(served: dict[str, Any]) -> None:
    with httpx.Client(base_url=served["base"], timeout=30) as c:
        inputs = c.get("/api/v1/backtests/inputs", headers=served["read"]).json()
        assert "btcusdt_20240718.gz" in inputs
        job = c.post("/api/v1/backtests", headers=served["admin"], json={
            "type": "backtest", "inputs": ["btcusdt_20240718.gz", "btcusdt_20240719.gz"],
            "strategies": ["BTC_CVD30mx4h_TPbalanced"], "every": "15s"})
        assert job.status_code == 202, job.text
        job_id = job.json()["job_id"]

        def done() -> dict[str, Any] | None:
            info: dict[str, Any] = c.get(f"/api/v1/backtests/{job_id}", headers=served["read"]).json()
            return info if info["status"] in ("SUCCEEDED", "FAILED", "STOPPED") else None

        info = wait_for(done, 180, "the backtest job to finish", every_s=1.0)
        logs = c.get(f"/api/v1/backtests/{job_id}/logs", headers=served["read"]).json()["log"]
        assert info["status"] == "SUCCEEDED", logs[-2000:]
        res = c.get(f"/api/v1/backtests/{job_id}/results", headers=served["read"]).json()
        assert res["summary"]["trades_processed"] > 0 and "summary.json" in res["files"]
        assert any(j["job_id"] == job_id for j in c.get("/api/v1/backtests", headers=served["read"]).json())
