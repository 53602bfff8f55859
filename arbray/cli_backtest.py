"""``arbray backtest``, ``arbray sweep`` and ``arbray bench cvd-rule``.

``arbray backtest --input FILE… --strategy NAME_OR_YAML… [--fees maker,taker] [--fill-model through|queue]
--out DIR`` replays the recordings through features → scoring → execution → accounts → risk and
writes the output folder; ``arbray sweep`` runs a parameter grid on local Ray (``arbray.actors.sweep``,
imported only when called); ``arbray bench cvd-rule`` runs the peerbench 30-minute CVD sign-flip
rule over a trades ``.npz`` through arbray's ``TradeTape``. Each prints a final JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from arbray.backtest.cvd_rule import load_trades, run_cvd_rule
from arbray.backtest.engine import Backtest, BacktestConfig, BacktestResult
from arbray.backtest.journal import ScoreCollector, journal_backtest
from arbray.backtest.output import write_outputs
from arbray.execution.machine import ExecutionConfig
from arbray.execution.paper import PaperVenueConfig
from arbray.replay.readers import open_input
from arbray.scoring.config import StrategyConfig
from arbray.storage import open_store


def parse_fees(text: str) -> tuple[float, float]:
    """``maker,taker`` as fractions (``0.0002,0.0005``); a negative maker fee is a rebate."""
    try:
        maker, taker = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected MAKER,TAKER, e.g. 0.0002,0.0005") from None
    return maker, taker


def backtest_config(args: argparse.Namespace) -> BacktestConfig:
    """The ``BacktestConfig`` the command-line options describe."""
    venue: dict[str, Any] = {"fill_model": args.fill_model, "latency_ms": args.latency_ms,
                             "slippage_bps": args.slippage_bps, "fee_tier": args.fee_tier}
    if args.fees is not None:
        venue["maker_fee"], venue["taker_fee"] = args.fees
    return BacktestConfig(
        every_ms=args.every, warmup_ms=args.warmup_ms, initial_balance=args.balance, risk_fraction=args.risk_fraction,
        venue=PaperVenueConfig(**venue),
        execution=ExecutionConfig(maker_entry=not args.taker_entry, maker_tp=not args.taker_tp),
    )


def run_backtest(
    inputs: list[str], configs: list[StrategyConfig], cfg: BacktestConfig, out: Path, db: str | None = None
) -> dict[str, Any]:
    """Replay ``inputs`` with ``configs`` and write the output folder (and the journal at ``db``)."""
    collector = ScoreCollector() if db else None
    t0 = time.perf_counter()
    res = Backtest(configs, cfg, score_sink=collector).run([open_input(p, cfg.every_ms) for p in inputs])
    run_s = time.perf_counter() - t0
    summary = write_outputs(res, out)
    summary["run_s"] = run_s
    summary["trades_per_s"] = res.trades_processed / run_s if run_s > 0 else None
    if db and collector is not None:
        run_id = backtest_run_id(cfg, configs, inputs)
        summary["run_id"] = run_id
        summary["journal"] = asyncio.run(_journal(db, res, collector, run_id))
    return summary


def backtest_run_id(cfg: BacktestConfig, configs: list[StrategyConfig], inputs: list[str]) -> str:
    """Deterministic run id: the same inputs and configs journal into the same rows (idempotent)."""
    key = "|".join([cfg.config_hash, *sorted(c.config_hash for c in configs), *(Path(p).name for p in inputs)])
    return "bt-" + hashlib.sha256(key.encode()).hexdigest()[:16]


async def _journal(db: str, res: BacktestResult, collector: ScoreCollector, run_id: str) -> dict[str, int]:
    store = await open_store(db)
    try:
        return await journal_backtest(store, res, collector, run_id)
    finally:
        await store.close()


def _cmd_backtest(args: argparse.Namespace) -> int:
    from arbray.cli_strategies import load_configs

    summary = run_backtest(args.input, load_configs(args.strategy), backtest_config(args), Path(args.out), args.db)
    keys = ("trades", "win_rate", "gross_r", "fees_r", "funding_r", "net_r", "profit_factor", "max_drawdown_r",
            "maker_ratio_entry", "maker_ratio_tp", "friction_r", "trades_processed", "run_s", "trades_per_s",
            "run_id", "journal")
    line = {k: summary.get(k) for k in keys} | {"out": args.out}
    sys.stdout.buffer.write(orjson.dumps(line) + b"\n")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    # imported by name at call time: the core never imports Ray, only this command's actors module does
    sweep = importlib.import_module("arbray.actors.sweep")
    code: int = sweep.run_sweep_cli(args)
    return code


def _cmd_cvd_rule(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    trades = load_trades(args.trades)
    load_s = time.perf_counter() - t0
    result = run_cvd_rule(*trades)
    if args.decisions_out:
        import numpy as np

        np.save(args.decisions_out, result.decisions)
    line = {"engine": "arbray", "workload": "cvd", "events": result.events, "load_s": load_s,
            "run_s": result.run_s, "events_per_s": result.events / result.run_s if result.run_s > 0 else None,
            "decisions": len(result.decisions), "boundaries": result.boundaries}
    sys.stdout.buffer.write(orjson.dumps(line) + b"\n")
    return 0


def _add_backtest_options(p: argparse.ArgumentParser, parse_interval: Any) -> None:
    p.add_argument("--input", action="extend", nargs="+", required=True, metavar="FILE", help="recorded file(s)")
    p.add_argument("--every", type=parse_interval, default=15_000, help="scoring interval (default 15s)")
    p.add_argument("--warmup-ms", type=int, default=0, help="no signal before first trade + this")
    p.add_argument("--balance", type=float, default=10_000.0, help="initial balance per strategy")
    p.add_argument("--risk-fraction", type=float, default=0.02, help="1R as a fraction of the balance")
    p.add_argument("--fees", type=parse_fees, default=None, metavar="MAKER,TAKER", help="override the fee tier")
    p.add_argument("--fee-tier", default="binance_usdm_vip0", help="fee schedule row (arbray.execution.fees)")
    p.add_argument("--fill-model", choices=("through", "queue"), default="through")
    p.add_argument("--latency-ms", type=int, default=0, help="order and cancel latency")
    p.add_argument("--slippage-bps", type=float, default=1.0, help="market fill vs last trade without a book")
    p.add_argument("--taker-entry", action="store_true", help="enter by taker instead of post-only first")
    p.add_argument("--taker-tp", action="store_true", help="take profit by taker instead of resting post-only")
    p.add_argument("--out", required=True, help="output folder")


def register(subparsers: Any) -> None:
    """Add ``backtest``, ``sweep`` and ``bench`` to the ``arbray`` parser's subparsers."""
    from arbray.cli import parse_interval

    b = subparsers.add_parser("backtest", help="backtest strategies on recordings; writes summary/trades/report")
    _add_backtest_options(b, parse_interval)
    b.add_argument("--strategy", action="extend", nargs="+", metavar="NAME_OR_YAML",
                   help="preset name or YAML file (repeatable); default: every preset")
    b.add_argument("--db", default=None, metavar="DSN",
                   help="also journal strategies, score events, signals, fills and trades (sqlite:///… or postgresql://…)")
    b.set_defaults(func=_cmd_backtest)

    s = subparsers.add_parser("sweep", help="run a strategy-parameter grid as Ray tasks; writes a ranked table")
    _add_backtest_options(s, parse_interval)
    s.add_argument("--grid", required=True, help="grid YAML: base presets and parameter lists")
    s.add_argument("--num-cpus", type=int, default=2, help="local Ray CPUs (workers)")
    s.set_defaults(func=_cmd_sweep)

    bench = subparsers.add_parser("bench", help="benchmarks")
    bsub = bench.add_subparsers(dest="bench_command", required=True)
    c = bsub.add_parser("cvd-rule", help="the peerbench 30-min CVD sign-flip rule through arbray's TradeTape")
    c.add_argument("--trades", required=True, help="peerbench trades .npz")
    c.add_argument("--decisions-out", default=None, help="write the (boundary_ns, side) rows as .npy")
    c.set_defaults(func=_cmd_cvd_rule)
