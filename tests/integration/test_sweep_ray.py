"""A sweep on a private local Ray: rows come back ranked and equal the in-process backtest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ray = pytest.importorskip("ray")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    from arbray.actors.sweep import start_ray

    start_ray(2)
    yield
    ray.shutdown()


def test_grid_sweep_shares_data_and_ranks(ray_cluster: None, tmp_path: Path) -> None:
    from arbray.actors.sweep import backtest_chunk, expand_grid, run_sweep, write_table

    from arbray.backtest.engine import BacktestConfig
    from tests.unit.backtest.synth import records, synth_trades

    grid = {"strategies": ["v53", "BTC_CVD30mx4h_TPbalanced"], "params": {"entry_score": [70, 75]}}
    configs = expand_grid(grid)
    assert [c.strategy_id for c in configs] == ["v53_entry_score70", "v53_entry_score75",
                                                "BTC_CVD30mx4h_TPbalanced_entry_score70",
                                                "BTC_CVD30mx4h_TPbalanced_entry_score75"]
    data = [list(records(*synth_trades(hours=3, per_s=5)))]
    bt = BacktestConfig()
    other = [list(records(*synth_trades(hours=3, per_s=5, seed=2)))]
    rows = run_sweep(configs, bt, {"a": ray.put(data), "b": ray.put(other)}, per_task=3, timeout_s=120)
    assert len(rows) == 2 * len(configs)
    assert [r["net_r"] for r in rows] == sorted((r["net_r"] for r in rows), reverse=True)
    local = backtest_chunk([c.model_dump(mode="json") for c in configs], bt.model_dump(mode="json"), data)
    mine = sorted((r for r in rows if r.pop("inputs") == "a"), key=lambda r: r["strategy_id"])
    assert mine == sorted(local, key=lambda r: r["strategy_id"])  # same rows as in-process
    write_table([{"inputs": "a", **r} for r in mine], tmp_path)
    assert (tmp_path / "ranking.csv").read_text().count("\n") == len(configs) + 1
