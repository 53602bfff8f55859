"""The dashboard in a real browser: playwright-core drives Debian's Chromium against the API on
uvicorn (loopback, free port) over a store seeded with a journalled backtest. Signs in, creates a
strategy through the form (live weights check, the API's field errors shown), pauses it on the
plaza, opens a strategy with trades, and takes screenshots (into ``$ARBRAY_SCREENSHOT_DIR`` when set:
``ARBRAY_SCREENSHOT_DIR=docs/img`` regenerates the committed ``docs/img/dashboard-*.png``).

Needs (installed by CI, never by the test): ``apt-get install chromium`` and
``npm ci --prefix tests/e2e/browser``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser_env import BROWSER_DIR, NODE, needs_browser

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning"), *needs_browser]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """uvicorn serving the API and dashboard in a thread, over a SQLite store seeded with a backtest."""
    from tests.unit.api.helpers import seed, serve_in_thread

    with serve_in_thread(f"sqlite:///{tmp_path_factory.mktemp('dash') / 'arbray.db'}", prepare=seed) as info:
        yield {**info, "token": info["admin"]}


def test_dashboard_sign_in_create_pause_and_detail(server: dict[str, Any], tmp_path: Path) -> None:
    from arbray.storage import open_store

    shots = Path(os.environ.get("ARBRAY_SCREENSHOT_DIR") or tmp_path)  # docs/img regenerates the committed ones
    shots.mkdir(parents=True, exist_ok=True)
    assert NODE is not None
    proc = subprocess.run([NODE, str(BROWSER_DIR / "drive.mjs"), server["base"], server["token"],
                           "v51_baseline@bt-seed", str(shots)], capture_output=True, text=True, timeout=180,
                          cwd=BROWSER_DIR)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [s["name"] for s in res["steps"]] == ["bad token refused", "signed in", "created", "paused", "detail",
                                                 "market"]
    assert res["steps"][0]["message"] == "That token was not accepted."
    assert res["token_in_storage"] is True and res["token_in_local_storage"] is False
    assert res["eth_obi_default"] == "0.35"  # the symbol's recommended gate value was applied
    assert res["save_disabled_when_weights_105"] is True and "must total 100" in res["weights_message"]
    assert res["save_enabled_when_weights_100"] is True
    assert res["entry_error"] == "at most 95"
    assert "flip_threshold" in res["api_field_error"]  # the API's cross-field error, shown at the field
    assert (res["card_status_before"], res["card_status_after"]) == ("running", "paused")
    assert res["layer_bars"] >= 4 and res["gates"] >= 1 and res["trade_rows"] >= 1
    assert res["market_notice"] is True  # no engine attached: the market view says so
    assert res["errors"] == [], res["errors"]
    for name in ("create", "plaza", "detail-signals", "detail-equity"):
        assert (shots / f"dashboard-{name}.png").stat().st_size > 10_000

    async def check() -> dict[str, Any]:
        store = await open_store(server["dsn"])
        try:
            rows = {r["slug"]: r for r in await store.list_strategies()}
            return rows["eth_browser"]
        finally:
            await store.close()

    row = asyncio.run(check())
    assert row["status"] == "paused" and row["config"]["symbol"] == "ETHUSDT"
    assert (row["config"]["weight_direction"], row["config"]["weight_env"]) == (50, 30)
    assert (row["config"]["entry_score"], row["config"]["flip_threshold"]) == (78, 85)
