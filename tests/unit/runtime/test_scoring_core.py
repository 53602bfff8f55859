"""ScoringCore: all results and the actionable ones, with the calibration post-processor."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from arbray.runtime.scoring import Calibrated, ScoringCore
from arbray.storage import open_store
from tests.unit.scoring.helpers import config, snap

pytestmark = pytest.mark.unit


def test_every_result_carries_a_calibrated_probability_and_actionable_ones_are_split(tmp_path: Path) -> None:
    cal = Calibrated()

    async def load() -> None:
        store = await open_store(f"sqlite:///{tmp_path / 'j.db'}")
        try:
            assert await cal.refresh(store)  # first load
            assert not await cal.refresh(store)  # nothing changed since
        finally:
            await store.close()
    asyncio.run(load())
    cfgs = [config(strategy_id=f"f{k}", entry_score=60 + k) for k in range(3)]
    core = ScoringCore(cfgs, "v1", post=[cal])
    s = snap()
    results, actionable = core.score(s)
    assert [r.strategy_id for r in results] == ["f0", "f1", "f2"]
    assert all(r.p_calibrated is not None and r.calibrator_version == "bootstrap-v1" for r in results)
    assert actionable == [r for r in results if (r.is_entry or r.is_flip_signal) and r.side is not None]
    core.set_configs(cfgs[:1], "v2")
    assert [r.strategy_id for r in core.score(s)[0]] == ["f0"] and core.version == "v2"
