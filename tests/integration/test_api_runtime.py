"""The API against the real in-process runtime (``arbray.runtime.local.LocalRuntime``) on the built-in
simulator: readiness and health, snapshots and market detail, a strategy created through the API is
reloaded and scored, positions come live from the runtime, pause/resume reach the runtime, add-balance credits the
account once, and the risk controls (block-new, resume, kill, emergency close) act and are audited.
A runtime that is down or too slow gives 503 within the configured timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from arbray.api import ApiSettings
from arbray.runtime.config import RunConfig, SimSourceConfig
from arbray.runtime.control import RuntimeUnavailable
from arbray.runtime.local import LocalRuntime
from arbray.runtime.symbol_state import SymbolStateConfig
from tests.unit.api.helpers import Api, api, factory_config, run

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
EAGER = factory_config("eager", entry_score=60, flip_threshold=60, gate_vol_enabled=False, gate_cvd_enabled=False,
                       gate_whale_enabled=False, gate_obi_enabled=False, cvd_fast_window="5m", cvd_slow_window="30m",
                       timeout_minutes=30)
"""A factory config that enters readily (lowest entry score, no gates)."""


async def until(fn: Callable[[], Awaitable[Any]], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last: {last!r}")


@asynccontextmanager
async def with_runtime(tmp_path: Path) -> AsyncIterator[Api]:
    async with api(f"sqlite:///{tmp_path / 'rt.db'}", settings=ApiSettings(runtime_timeout_s=30)) as a:
        rt = LocalRuntime(RunConfig(symbols=("BTCUSDT",), strategies=("BTC_CVD30mx4h_TPbalanced",),
                                    symbol_state=SymbolStateConfig(every_ms=1_000),
                                    sim=SimSourceConfig(speed=20.0, history_hours=6, rate_scale=0.3)), a.store)
        await rt.start()
        a.ctx.runtime = rt
        try:
            yield a
        finally:
            await rt.stop()


def test_engine_endpoints_and_a_strategy_from_creation_to_its_scores(tmp_path: Path) -> None:
    async def go() -> None:
        async with with_runtime(tmp_path) as a:
            c, h, adm = a.client, a.read, a.admin

            async def ready() -> bool:
                return (await c.get("/readyz")).status_code == 200
            await until(ready, 90, "readiness")
            health = (await c.get("/api/v1/system/health", headers=h)).json()
            assert health["ready"] is True and health["mode"] == "paper" and health["data"]["BTCUSDT"]["fresh"]
            assert (await c.get("/api/v1/system/stats", headers=h)).json()["messages"] > 0
            assert (await c.get("/api/v1/system/cluster", headers=h)).status_code == 200
            assert "BTC_CVD30mx4h_TPbalanced" in (await c.get("/api/v1/accounts", headers=h)).json()

            async def snapshot() -> dict[str, Any] | None:
                snaps: dict[str, Any] = (await c.get("/api/v1/market/snapshots", headers=h)).json()
                return snaps.get("BTCUSDT")
            snap = await until(snapshot, 90, "a BTCUSDT snapshot")
            assert snap["symbol"] == "BTCUSDT" and snap["price"] > 0
            m = (await c.get("/api/v1/market/BTCUSDT", headers=h)).json()
            assert m["book"]["bids"] and m["snapshot"]["symbol"] == "BTCUSDT"
            assert (await c.get("/api/v1/market/ETHUSDT", headers=h)).status_code == 404
            ind = (await c.get("/api/v1/market/BTCUSDT/indicators", headers=h)).json()
            assert ind["snapshot"]["symbol"] == "BTCUSDT"

            created = (await c.post("/api/v1/strategies", headers=adm,
                                    json={"display_name": "Eager", "config": EAGER})).json()
            assert created["runtime"]["reloaded"] is True and "eager" in created["runtime"]["running"]

            async def scored() -> list[Any]:
                rows: list[Any] = (await c.get("/api/v1/scores/latest", headers=h, params={"strategy": "eager"})).json()
                return rows
            (score,) = await until(scored, 90, "the new strategy's first score")
            assert score["strategy"] == "eager" and score["symbol"] == "BTCUSDT"

            pos = (await c.get("/api/v1/positions", headers=h)).json()
            assert pos["source"] == "runtime"
            assert all(p["strategy_id"].count("-") == 4 for p in pos["positions"])  # journal UUIDs

            paused = (await c.post("/api/v1/strategies/eager/pause", headers=adm)).json()
            assert paused["runtime"]["reloaded"] and "eager" not in paused["runtime"]["running"]
            resumed = (await c.post("/api/v1/strategies/eager/resume", headers=adm)).json()
            assert "eager" in resumed["runtime"]["running"]

            before = (await c.get("/api/v1/accounts", headers=h)).json()["eager"]["balance"]
            credit = (await c.post("/api/v1/strategies/eager/add-balance", headers=adm,
                                   json={"amount": 500, "ref": "rt-1"})).json()
            assert credit["changed"] and credit["account"]["balance"] == pytest.approx(before + 500)
            again = (await c.post("/api/v1/strategies/eager/add-balance", headers=adm,
                                  json={"amount": 500, "ref": "rt-1"})).json()
            assert again["changed"] is False
            deposits = [e for e in (await c.get("/api/v1/strategies/eager/equity", headers=h)).json()
                        if e["kind"] == "deposit"]
            assert [d["ref"] for d in deposits] == ["rt-1"]

    run(go())


def test_risk_controls_act_on_the_runtime_and_are_audited(tmp_path: Path) -> None:
    async def go() -> None:
        async with with_runtime(tmp_path) as a:
            c, adm = a.client, a.admin
            r = (await c.get("/api/v1/risk", headers=a.read)).json()
            assert r["source"] == "runtime" and r["state"] in ("ACTIVE", "REDUCING", "HALTED")
            blocked = (await c.post("/api/v1/risk/block-new", headers=adm, json={"reason": "test"})).json()
            assert "manual" in blocked, blocked
            assert blocked["manual"]["block_new"] is True and blocked["state"] != "ACTIVE"
            resumed = (await c.post("/api/v1/risk/resume", headers=adm)).json()
            assert "manual" in resumed, resumed
            assert resumed["manual"]["block_new"] is False
            killed = (await c.post("/api/v1/strategies/BTC_CVD30mx4h_TPbalanced/kill", headers=adm,
                                   json={"reason": "drill"})).json()
            assert "BTC_CVD30mx4h_TPbalanced" in str(killed["manual"]["killed"])
            detail = (await c.get("/api/v1/strategies/BTC_CVD30mx4h_TPbalanced", headers=a.read)).json()
            assert detail["status"] == "paused" and detail["events"][-1]["event"] == "killed"
            assert (await c.post("/api/v1/risk/emergency-close", headers=adm, json={})).status_code == 422
            halted = (await c.post("/api/v1/risk/emergency-close", headers=adm, json={"confirm": True})).json()
            assert halted["state"] == "HALTED"
            audit = (await c.get("/api/v1/risk/events", headers=a.read, params={"limit": 50})).json()["items"]
            cmds = [e for e in audit if e["kind"] == "api_command"]
            assert [e["message"] for e in cmds] == ["emergency_close", "kill BTC_CVD30mx4h_TPbalanced", "resume",
                                                    "block_new"]
            assert all(e["detail"]["by"] == "api:root" for e in cmds)

    run(go())


class SlowOrDown:
    """A runtime that never answers in time, or reports itself unavailable."""

    def __init__(self, down: bool) -> None:
        self.down = down

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        async def call(*_: Any) -> Any:
            if self.down:
                raise RuntimeUnavailable(name)
            await asyncio.sleep(60)
        return call


def test_a_runtime_that_is_down_or_slow_gives_503_in_time(tmp_path: Path) -> None:
    async def go() -> None:
        for down, detail in ((True, "runtime not running"), (False, "runtime did not answer within 0.2s")):
            async with api(f"sqlite:///{tmp_path / f'{down}.db'}", runtime=SlowOrDown(down),
                           settings=ApiSettings(runtime_timeout_s=0.2)) as a:
                t0 = time.monotonic()
                r = await a.client.get("/api/v1/market/snapshots", headers=a.read)
                assert (r.status_code, r.json()) == (503, {"detail": detail})
                assert time.monotonic() - t0 < 5
                assert (await a.client.get("/readyz")).status_code == 503
                assert (await a.client.get("/api/v1/risk", headers=a.read)).json()["source"] == "journal"
                created = await a.client.post("/api/v1/strategies", headers=a.admin,
                                              json={"display_name": "x", "config": factory_config("x")})
                assert created.status_code == 201 and created.json()["runtime"]["reloaded"] is False

    run(go())
