"""Parameter sweeps on Ray: a grid of strategy configs × backtest settings, run as Ray tasks.

The driver loads every input once (``open_input`` → record lists), puts them in the object store
with ``ray.put`` and hands the reference to each task, so no task re-reads or re-parses a file.
A task backtests a chunk of grid points in one ``Backtest`` (strategies are independent: one
account, one risk engine each) and returns one row per point; the driver ranks them by net R.

Grid YAML::

    strategies: [BTC_CVD30mx4h_TPbalanced, ...]   # preset names or YAML files
    params: {entry_score: [70, 75]}                # optional: strategy fields, every combination
    backtest: {risk_fraction: 0.01}                # optional: BacktestConfig fields for every point
    inputs: {d20240718: [a.gz, b.gz], d20240808: [c.gz]}   # optional: input sets (date ranges);
                                                   # default: --input as one set

Symbols come with the strategies (each config carries the symbols it trades).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import ray
import yaml

from arbray.backtest.engine import Backtest, BacktestConfig
from arbray.backtest.stats import trade_record
from arbray.replay.readers import Record, open_input
from arbray.scoring.config import StrategyConfig
from arbray.scoring.presets import load_strategies
from arbray.scoring.registry import parse_config

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
RANK_KEYS = ("net_r", "trades", "win_rate", "gross_r", "fees_r", "profit_factor", "max_drawdown_r")
TASK_TIMEOUT_S = 3_600.0


def start_ray(num_cpus: int) -> None:
    """A private local Ray (free ports, never 6379), the job's cluster inside a Ray job, or the one already up."""
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):  # inside a Ray job (e.g. a sweep submitted through the API): join it
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


def expand_grid(grid: dict[str, Any]) -> list[StrategyConfig]:
    """Every strategy × every combination of ``params``; ids get a suffix per combination."""
    base = [c for ref in grid.get("strategies", []) for c in load_strategies(str(ref))]
    if not base:
        raise ValueError("grid: 'strategies' lists no preset or file")
    params: dict[str, list[Any]] = {k: list(v) if isinstance(v, list) else [v]
                                    for k, v in (grid.get("params") or {}).items()}
    names = sorted(params)
    out: list[StrategyConfig] = []
    for cfg in base:
        for combo in itertools.product(*(params[n] for n in names)):
            if not combo:
                out.append(cfg)
                continue
            data = cfg.model_dump(mode="json") | dict(zip(names, combo, strict=True))
            data["strategy_id"] = cfg.strategy_id + "".join(f"_{n}{v}" for n, v in zip(names, combo, strict=True))
            out.append(parse_config(data))
    return out


def input_sets(grid: dict[str, Any], default: Sequence[str]) -> dict[str, list[str]]:
    """The grid's ``inputs`` (label → files, e.g. one entry per date range), else one set of ``default``."""
    given = grid.get("inputs")
    if not given:
        return {"all": list(default)}
    return {str(label): [str(p) for p in (paths if isinstance(paths, list) else [paths])]
            for label, paths in dict(given).items()}


def load_inputs(paths: Sequence[str], every_ms: int) -> list[list[Record]]:
    """Each input file read once into a record list (what the object store shares)."""
    return [list(open_input(p, every_ms)) for p in paths]


def _row(cfg: StrategyConfig, trades: list[dict[str, Any]], balance: float) -> dict[str, Any]:
    from arbray.backtest.stats import core_stats

    st = core_stats(trades)
    return {"strategy_id": cfg.strategy_id, "config_hash": cfg.config_hash, "final_balance": balance,
            **{k: st[k] for k in RANK_KEYS}}


def backtest_chunk(configs: list[dict[str, Any]], bt: dict[str, Any], data: list[list[Record]]) -> list[dict[str, Any]]:
    """Backtest a chunk of grid points over the shared inputs; one result row per point."""
    cfgs = [parse_config(c) for c in configs]
    res = Backtest(cfgs, BacktestConfig.model_validate(bt)).run([iter(d) for d in data])
    trades = [trade_record(m) for m in res.machines()]
    return [_row(c, [t for t in trades if t["strategy_id"] == c.strategy_id],
                 res.executors[c.strategy_id].account.balance) for c in cfgs]


_remote_chunk = ray.remote(num_cpus=1)(backtest_chunk)


def run_sweep(configs: list[StrategyConfig], bt: BacktestConfig, data_refs: dict[str, Any], per_task: int,
              timeout_s: float = TASK_TIMEOUT_S) -> list[dict[str, Any]]:
    """Run the grid × input sets as Ray tasks; ``data_refs`` maps an input-set label (e.g. a date
    range) to its object-store reference. Rows are ranked by net R."""
    dumped = [c.model_dump(mode="json") for c in configs]
    bt_d = bt.model_dump(mode="json")
    labels: list[str] = []
    futures = []
    for label, ref in data_refs.items():
        for i in range(0, len(dumped), per_task):
            futures.append(_remote_chunk.remote(dumped[i:i + per_task], bt_d, ref))
            labels.append(label)
    chunks = ray.get(futures, timeout=timeout_s)
    rows = [{"inputs": label, **r} for label, chunk in zip(labels, chunks, strict=True) for r in chunk]
    return sorted(rows, key=lambda r: (-r["net_r"], r["inputs"], r["strategy_id"]))


def write_table(rows: list[dict[str, Any]], out: Path) -> None:
    """``ranking.jsonl`` and ``ranking.csv`` in rank order."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "ranking.jsonl").open("wb") as fh:
        for rank, r in enumerate(rows, 1):
            fh.write(orjson.dumps({"rank": rank, **r}) + b"\n")
    cols = ("inputs", "strategy_id", *RANK_KEYS, "final_balance", "config_hash")
    with (out / "ranking.csv").open("w", encoding="ascii") as fh:
        fh.write("rank," + ",".join(cols) + "\n")
        for rank, r in enumerate(rows, 1):
            fh.write(f"{rank}," + ",".join("" if r[c] is None else str(r[c]) for c in cols) + "\n")


def default_per_task(n: int, num_cpus: int) -> int:
    """Chunk size giving about four tasks per CPU (load balance vs per-task replay cost)."""
    return max(1, math.ceil(n / (4 * num_cpus)))


def run_sweep_cli(args: argparse.Namespace) -> int:
    """``arbray sweep``: load once, ``ray.put``, run the grid, write the ranked table."""
    from arbray.cli_backtest import backtest_config

    grid = yaml.safe_load(Path(args.grid).read_text(encoding="utf-8")) or {}
    configs = expand_grid(grid)
    bt = BacktestConfig.model_validate(backtest_config(args).model_dump() | (grid.get("backtest") or {}))
    sets = input_sets(grid, args.input)
    t0 = time.perf_counter()
    loaded = {label: load_inputs(paths, bt.every_ms) for label, paths in sets.items()}
    load_s = time.perf_counter() - t0
    start_ray(args.num_cpus)
    refs = {label: ray.put(data) for label, data in loaded.items()}
    t1 = time.perf_counter()
    rows = run_sweep(configs, bt, refs, default_per_task(len(configs) * len(refs), args.num_cpus))
    run_s = time.perf_counter() - t1
    write_table(rows, Path(args.out))
    best = rows[0] if rows else None
    line = {"configs": len(configs), "num_cpus": args.num_cpus, "load_s": load_s, "run_s": run_s,
            "best": best["strategy_id"] if best else None, "out": args.out}
    sys.stdout.buffer.write(orjson.dumps(line) + b"\n")
    return 0
