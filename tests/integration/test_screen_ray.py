"""The Ray scan over symbol shards on a private local Ray equals the in-process scan."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from arbray.screener.scan import scan
from arbray.screener.synth import synthetic_universe

pytestmark = pytest.mark.integration
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
