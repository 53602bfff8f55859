"""The Ray scan over symbol shards on a private local Ray equals the in-process scan; the named
``screener`` actor runs the live cache and the periodic scan against a simulator subprocess."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from arbray.screener.backfill import BackfillConfig
from arbray.screener.cache import KlineCacheConfig
from arbray.screener.models import ShortGridConfig
from arbray.screener.scan import scan
from arbray.screener.service import ScreenerConfig
from arbray.screener.synth import synthetic_universe
from arbray.storage import open_store
from tests.integration.test_screen_live import sim_serve

pytestmark = pytest.mark.integration
__all__ = ["sim_serve"]
ray = pytest.importorskip("ray")


@pytest.fixture(scope="session")
def screen_ray() -> Iterator[None]:
    from arbray.actors.screen import start_ray

    start_ray(2)
    yield
    ray.shutdown()


def test_ray_shards_match_local_scan(screen_ray: None) -> None:
    from arbray.actors.screen import scan_ray

    u = synthetic_universe(120, seed=5)
    for model in ("short_grid", "ats_v2"):
        ranked, excluded = scan_ray(u, model, workers=2, timeout_s=120)
        local, _ = scan(u, model)
        assert excluded == [] and len(ranked) == 120
        assert [r["symbol"] for r in ranked] == [r["symbol"] for r in local]
        assert [r["score"] for r in ranked] == pytest.approx([r["score"] for r in local], rel=1e-12)


def test_screener_actor_scans_the_live_cache_and_journals(screen_ray: None, sim_serve: dict[str, str],
                                                          tmp_path: Path) -> None:
    from arbray.actors.runtime import NAMESPACE
    from arbray.actors.screen import SCREENER_ACTOR, start_screener

    dsn = f"sqlite:///{tmp_path / 'screen.db'}"
    asyncio.run(_migrate(dsn))
    cfg = ScreenerConfig(interval_s=2, bars=60, grid=ShortGridConfig(min_bars=60, min_quote_volume=0),
                         cache=KlineCacheConfig(intervals=("1m",), backfill=BackfillConfig(bars=60)))
    handle = start_screener(cfg, dsn, (sim_serve["ws"], sim_serve["rest"]), symbols=None, workers=2)
    try:
        assert ray.get(handle.ready.remote(), timeout=120)
        assert ray.get_actor(SCREENER_ACTOR, namespace=NAMESPACE) is not None
        deadline = time.monotonic() + 60
        latest = None
        while latest is None or latest["started_ms"] is None:
            assert time.monotonic() < deadline, "no scan within 60 s"
            latest = ray.get(handle.latest.remote("short_grid", 3), timeout=30)
            time.sleep(0.2)
        assert latest["symbols"] == 3 and [r["rank"] for r in latest["results"]] == [1, 2, 3]
        stats = ray.get(handle.stats.remote(), timeout=30)
        assert stats["cache"]["backfilled"] == 3 and stats["screener"]["failures"] == {}
        assert stats["feed"]["connections"] >= 1 and stats["rest"]["failures"] == {}
        stored = asyncio.run(_latest(dsn))
        assert stored is not None and stored["symbols"] == 3 and stored["results"]
        ray.get(handle.stop.remote(), timeout=30)
    finally:
        ray.kill(handle)


async def _migrate(dsn: str) -> None:
    store = await open_store(dsn)
    await store.close()


async def _latest(dsn: str) -> dict[str, object] | None:
    store = await open_store(dsn, migrate=False)
    try:
        return await store.latest_screen_run("ats_v2")
    finally:
        await store.close()
