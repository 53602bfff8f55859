"""The market-wide scan on Ray: symbol shards as tasks (many symbols per task), ranked on the driver.

The driver puts the BTC/ETH references in the object store once; each task scores one shard with
the same ``score_shard`` the in-process scan uses, so results are identical to ``scan``. Never one
task or actor per symbol: shard count defaults to the worker count.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import ray

from arbray.screener.data import SymbolKlines
from arbray.screener.models import AtsConfig, ShortGridConfig
from arbray.screener.scan import ModelName, References, rank, score_shard, shards

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
TASK_TIMEOUT_S = 600.0


def start_ray(num_cpus: int) -> None:
    """A private local Ray (free ports, never 6379, no dashboard), unless one is already initialised."""
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):  # inside a Ray job (e.g. a sweep submitted through the API): join it
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


@ray.remote(num_cpus=1)
def _score_shard_task(symbols: list[SymbolKlines], model: ModelName, refs: References, bars: int,
                      ats: AtsConfig, grid: ShortGridConfig) -> list[dict[str, Any]]:
    return score_shard(symbols, model, refs, bars, ats, grid)


def scan_ray(symbols: Sequence[SymbolKlines], model: ModelName, workers: int, bars: int = 300,
             ats: AtsConfig | None = None, grid: ShortGridConfig | None = None, per_worker: int = 1,
             timeout_s: float = TASK_TIMEOUT_S) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Scan ``symbols`` in ``workers × per_worker`` shards on the running Ray; (ranked, excluded)."""
    refs = ray.put(References.from_universe(symbols, bars))
    futures = [_score_shard_task.remote(shard, model, refs, bars, ats or AtsConfig(), grid or ShortGridConfig())
               for shard in shards(symbols, workers * per_worker)]
    rows = [row for part in ray.get(futures, timeout=timeout_s) for row in part]
    return rank(rows)
