"""The dashboard in a real browser against the running engine: a ``LocalRuntime`` (simulator on loopback
at 20× speed, feed, SymbolState, Strategy, PositionManager, RiskGuard, Journal; mode ``paper``) and the
API on uvicorn share this test's event loop, while playwright-core drives Debian's Chromium
(``browser/drive_live.mjs``): sign in, create an eager strategy through the form, see it scored and
re-scored, see its paper position, pause it on the plaza while the position is open, see that it is no
longer scored while the position is still managed to a closed trade, and check that a strategy with more
than one page of scores shows its newest. The journal is then checked through the API and the store.
Screenshots go to ``$ARBRAY_SCREENSHOT_DIR`` when set (``ARBRAY_SCREENSHOT_DIR=docs/img`` regenerates
the committed ``docs/img/dashboard-live-*.png``), else to a temporary folder.

The market is the simulator's model (seed 1) paced against the wall clock, so timings vary from run
to run; the strategy is made eager enough (entry score 60, gates off, direction weight 80 with
momentum 15) that about every other evaluation on this market is an entry, and its exits (stop
1 ATR, TP 0.5/1 R, timeout 30 market minutes = 90 s wall) keep a position open for seconds to tens of
seconds: long enough to pause it while open, short enough to see it close.

"After the pause" means after the pause reached the engine (the API's ``reload_strategies`` call
returned, noted by ``ReloadSpy`` in market time): the pause event is stamped before its journal write
and that call, and at 20x the tens of milliseconds between them are a market second or two, in which
the strategy is legitimately still scored.

Needs (installed by CI, never by the test): ``apt-get install chromium`` and
``npm ci --prefix tests/e2e/browser``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.browser_env import BROWSER_DIR, NODE, needs_browser

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning"), *needs_browser]

NAME = "btc_live_e2e"
PRESET = "BTC_CVD30mx4h_TPbalanced"
"""The strategy the run starts with: scored from the start, so it has more than a page of scores."""
SPEED = 20.0
EVERY_MS = 1_000
DRIVER_TIMEOUT_S = 240.0
FORM = {
    "name": NAME, "display_name": "BTC eager (live e2e)", "preset": PRESET, "every_ms": EVERY_MS,
    "fields": {"symbol": "BTCUSDT", "direction": "both", "cvd_fast_window": "5m", "cvd_slow_window": "30m",
               "weight_direction": 80, "weight_env": 5, "weight_aux": 0, "weight_momentum": 15,
               "entry_score": 60, "flip_threshold": 95, "sl_atr_multiplier": 1.0, "tp1_ratio": 0.5,
               "tp2_ratio": 1.0, "timeout_minutes": 30},
    "checks": {"gate_vol_enabled": False, "gate_cvd_enabled": False, "gate_whale_enabled": False,
               "gate_obi_enabled": False, "gate_spot_perp_enabled": False},
    # wall seconds per browser wait; the trade's bound is the 30-minute timeout at 20x (90 s) plus margin
    "deadlines_s": {"scored": 45, "position": 60, "trade": 120, "preset": 90},
}
"""What the driver types into the create form (see the module docstring for why these values)."""


class ReloadSpy:
    """The runtime as the API sees it, noting when each strategy reload the API asked for had taken effect:
    ``(wall ms, simulator market ms)``. From then on a paused strategy is not scored."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.reloads: list[tuple[int, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runtime, name)

    async def reload_strategies(self) -> dict[str, Any]:
        out: dict[str, Any] = await self.runtime.reload_strategies()
        exchange = self.runtime.sim.exchange
        self.reloads.append((exchange.clock.now_ms(), exchange.target_ms()))
        return out


async def run_scenario(db: Path, shots: Path) -> dict[str, Any]:
    """Engine + API in this loop, the browser driver as a subprocess; returns what the checks need."""
    import uvicorn

    from arbray.api import ApiContext, ApiSettings, create_app
    from arbray.runtime.config import RunConfig, SimSourceConfig
    from arbray.runtime.local import LocalRuntime, wait_until
    from arbray.runtime.symbol_state import SymbolStateConfig
    from arbray.storage import open_store
    from tests.unit.api.helpers import FAST_SCRYPT

    store = await open_store(f"sqlite:///{db}")
    rt = LocalRuntime(RunConfig(symbols=("BTCUSDT",), strategies=(PRESET,), mode="paper", source="sim",
                                symbol_state=SymbolStateConfig(every_ms=EVERY_MS),
                                sim=SimSourceConfig(seed=1, speed=SPEED, history_hours=6, rate_scale=0.1)), store)
    server: uvicorn.Server | None = None
    serving: asyncio.Task[None] | None = None
    try:
        t0 = time.monotonic()
        await rt.start()
        token = await store.create_credential("e2e", "admin", params=FAST_SCRYPT)
        spy = ReloadSpy(rt)
        app = create_app(ApiContext(store=store, runtime=spy,
                                    settings=ApiSettings(symbols=("BTCUSDT",), runtime_timeout_s=10)))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        await wait_until(lambda: server is not None and server.started, 30, "uvicorn to start")
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            async def ready() -> bool:
                return (await http.get("/readyz")).status_code == 200
            await wait_until(ready, 60, "the engine to be ready")
            started_s = time.monotonic() - t0
            assert NODE is not None
            proc = await asyncio.create_subprocess_exec(
                NODE, str(BROWSER_DIR / "drive_live.mjs"), base, token, str(shots), json.dumps(FORM),
                cwd=BROWSER_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            try:
                out, err = await asyncio.wait_for(proc.communicate(), DRIVER_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                raise
            assert proc.returncode == 0, err.decode()[-3000:]
            res: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
            assert "error" not in res, res["error"] + "\n" + err.decode()[-3000:]
            headers = {"Authorization": f"Bearer {token}"}

            async def get(path: str, **params: Any) -> Any:
                r = await http.get(f"/api/v1{path}", headers=headers, params=params)
                assert r.status_code == 200, (path, r.status_code, r.text)
                return r.json()

            events = await get(f"/strategies/{NAME}/events")
            pause_wall = next(e["ts_ms"] for e in events if e["to_status"] == "paused")
            effective_wall, effective_market = next((w, m) for w, m in spy.reloads if w >= pause_wall)
            api = {
                "detail": await get(f"/strategies/{NAME}"), "events": events,
                "scores": (await get(f"/strategies/{NAME}/scores", limit=1000))["items"],
                "latest": await get("/scores/latest", strategy=NAME),
                "signals": (await get(f"/strategies/{NAME}/signals", limit=1000))["items"],
                "trades": (await get(f"/strategies/{NAME}/trades"))["items"],
                "stats": await get(f"/strategies/{NAME}/stats"),
                "positions": await get("/positions", strategy=NAME),
                "pause_market_ms": effective_market, "pause_lag_ms": effective_wall - pause_wall,
            }
        async with store.connection() as c:
            journal = {t: await c.fetch(f"SELECT * FROM {t} WHERE strategy_id = ?", (api["detail"]["strategy_id"],))
                       for t in ("orders", "fills", "positions")}
        return {"driver": res, "api": api, "journal": journal, "started_s": started_s,
                "driver_log": err.decode()}
    finally:
        if server is not None:
            server.should_exit = True
        if serving is not None:
            await asyncio.wait_for(serving, 20)
        await rt.stop()
        await store.close()


def test_dashboard_against_the_engine_scores_trades_and_pauses(tmp_path: Path) -> None:
    shots = Path(os.environ.get("ARBRAY_SCREENSHOT_DIR") or tmp_path).resolve()  # the driver runs elsewhere
    shots.mkdir(parents=True, exist_ok=True)
    out = asyncio.run(run_scenario(tmp_path / "live.db", shots))
    res, api, journal = out["driver"], out["api"], out["journal"]
    print(f"engine ready after {out['started_s']:.1f} s; pause in effect {api['pause_lag_ms']} ms after its event;"
          " browser steps (s):",
          {s["name"]: s["t_s"] for s in res["steps"]})

    # ---- what the browser saw
    assert [s["name"] for s in res["steps"]] == [
        "signed in", "created", "scored", "position shown", "paused", "not scored while paused", "trade shown",
        "long-running strategy shows its newest score"], out["driver_log"]
    assert res["errors"] == [], res["errors"]
    assert res["weights_message"] == "Weights total 100 ✓"
    assert res["layer_bars"] == 4 and res["gates"] == 5
    assert res["gate_states"][:4] == ["volatility: disabled", "cvd_resonance: disabled", "whale: disabled",
                                      "obi: disabled"], res["gate_states"]
    assert res["newer_score"]["ts_ms"] > res["first_score"]["ts_ms"]  # re-scored within the deadline
    strategy, symbol, side = res["position_row"][:3]
    assert (strategy, symbol) == (NAME, "BTCUSDT") and side in ("LONG", "SHORT")
    assert (res["card_status_before"], res["card_status_after"]) == ("running", "paused")
    assert res["card_open_before"] >= 1 and res["card_score_before"] != "–"
    # nothing newer shown after the pause, while the other strategy's scores moved 20 intervals on
    assert res["score_at_pause"]["ts_ms"] <= res["market_at_pause"]
    assert res["score_later"] == res["score_at_pause"]
    assert res["preset_latest_later"] >= res["score_at_pause"]["ts_ms"] + 20 * EVERY_MS
    assert res["trade_row"][1] == "BTCUSDT" and res["positions_after"] == 0
    preset = res["preset"]
    assert preset["shown"]["ts_ms"] >= preset["api_latest_ts_before_render"], preset  # the newest, not page 1's last
    assert preset["history_lines"] == 1  # and its score history is drawn

    # ---- the journal, through the API
    pause = api["pause_market_ms"]
    scores, signals, trades = api["scores"], api["signals"], api["trades"]
    assert api["detail"]["status"] == "paused"
    assert api["events"][-1]["to_status"] == "paused"
    assert scores and all(s["strategy"] == NAME and s["symbol"] == "BTCUSDT" for s in scores)
    (latest,) = api["latest"]
    assert latest["ts_ms"] <= pause, ("scored after the pause", latest["ts_ms"], pause)
    entries = [s for s in signals if s["action"] == "entry"]
    assert entries and all(s["ts_ms"] <= pause for s in entries), "entered after the pause"
    execution = api["stats"]["execution"]
    assert execution["orders_total"] >= 1 and execution["fills"] >= 1
    assert trades and api["stats"]["stats"]["trades"] == len(trades)
    managed = [t for t in trades if t["entry_ms"] <= pause < t["exit_ms"]]
    assert managed, ("no position was open across the pause", pause, [(t["entry_ms"], t["exit_ms"]) for t in trades])
    assert api["positions"]["source"] == "runtime" and api["positions"]["positions"] == []

    # ---- and in the store: the orders, their fills and the position rows behind those trades
    orders, fills, positions = journal["orders"], journal["fills"], journal["positions"]
    assert orders and fills and {f["client_order_id"] for f in fills} <= {o["client_order_id"] for o in orders}
    closed = {p["position_id"] for p in positions if p["status"] == "closed"}
    assert {t["position_id"] for t in trades} <= closed
    assert managed[0]["position_id"] in {f["position_id"] for f in fills}
    for name in ("scored", "position", "plaza", "trades"):
        assert (shots / f"dashboard-live-{name}.png").stat().st_size > 10_000
