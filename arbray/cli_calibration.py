"""``arbray label``, ``arbray calibrate`` and ``arbray report calibration|costs|gates``.

``arbray label [--input FILE…] [--price trade|mark]`` labels every journalled score event the market
data covers (recordings when given, else the journal's agg_trades/klines), idempotently;
``arbray calibrate --strategy NAME… | --all [--method auto|bucket|isotonic]`` fits, stores and
activates calibrators; ``arbray report KIND --out DIR [--png]`` writes ``KIND.json`` and a
self-contained ``KIND.html`` (and a PNG screenshot). Every command takes ``--db DSN`` and prints a
final JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson

from arbray.calibration.calibrate import calibrate_strategy
from arbray.calibration.calibrators import CalibratorConfig
from arbray.calibration.costs import CostConfig, cost_report, load_trade_costs
from arbray.calibration.labels import LabelConfig, RecordingPrices, backfill_labels
from arbray.calibration.monitor import MonitorConfig, calibration_report
from arbray.calibration.optimiser import DAY_MS, OptimiserConfig, ScanSpec, gates_report
from arbray.calibration.report import render_png, write_report
from arbray.storage import open_store
from arbray.storage.base import Store
from arbray.storage.config import StoreConfig, redact

DEFAULT_SCANS = ("total", "feature:atr_pct_5m")


def _emit(obj: dict[str, Any]) -> int:
    sys.stdout.buffer.write(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS) + b"\n")
    sys.stdout.flush()
    return 0


def _config(args: argparse.Namespace) -> StoreConfig:
    return StoreConfig(dsn=args.db) if args.db else StoreConfig()


async def _with_store(args: argparse.Namespace, job: Any) -> dict[str, Any]:
    cfg = _config(args)
    store = await open_store(cfg)
    try:
        out: dict[str, Any] = await job(store)
    finally:
        await store.close()
    return {"db": redact(cfg.dsn), **out}


def _cmd_label(args: argparse.Namespace) -> int:
    cfg = LabelConfig(price_source=args.price, max_gap_ms=args.max_gap_ms)
    prices = RecordingPrices.load(args.input) if args.input else None

    async def job(store: Store) -> dict[str, Any]:
        rep = await backfill_labels(store, cfg, prices, strategy=args.strategy, run_id=args.run_id,
                                    relabel=args.relabel)
        return {"label_version": cfg.version, "price_source": cfg.price_source,
                "source": "recordings" if prices else "journal", **rep.to_dict()}

    return _emit(asyncio.run(_with_store(args, job)))


async def _strategies_with_labels(store: Store, run_id: str | None) -> list[str]:
    return sorted({r["strategy"] for r in await store.labelled_events(run_id=run_id)})


def _cmd_calibrate(args: argparse.Namespace) -> int:
    if not args.strategy and not args.all:
        raise ValueError("name the strategies to calibrate (--strategy NAME…) or pass --all")
    cfg = CalibratorConfig(label=args.label, population=args.population, min_bucket_samples=args.min_bucket_samples,
                           activate=args.activate)

    async def job(store: Store) -> dict[str, Any]:
        names = args.strategy or await _strategies_with_labels(store, args.run_id)
        return {"calibrators": [await calibrate_strategy(store, s, cfg, args.method, args.run_id) for s in names],
                "calibration_state": await store.calibration_state()}

    return _emit(asyncio.run(_with_store(args, job)))


def _scan(text: str) -> ScanSpec:
    keep = "below" if text.endswith("<=") else "above"
    return ScanSpec(field=text.removesuffix("<=").removesuffix(">="), keep=keep)


def _cmd_report(args: argparse.Namespace) -> int:
    out = Path(args.out)

    async def job(store: Store) -> dict[str, Any]:
        rep: dict[str, Any]
        if args.kind == "calibration":
            rep = await calibration_report(store, MonitorConfig(label=args.label, population=args.population),
                                           strategy=args.strategy, run_id=args.run_id)
            summary = {"strategies": len(rep["strategies"]), "events": rep["events"]}
        elif args.kind == "costs":
            cfg = CostConfig()
            costs, skipped = await load_trade_costs(store, cfg, run_id=args.run_id, strategy=args.strategy)
            rep = cost_report(costs, skipped, cfg)
            summary = {"trades": rep["trades"], "skipped": rep["skipped"], "cost_table": rep["cost_table"]}
        else:
            ocfg = OptimiserConfig(mode=args.mode, train_ms=int(args.train_days * DAY_MS),
                                   step_ms=int(args.step_days * DAY_MS), cost_r=args.cost_r,
                                   spacing_ms=int(args.spacing_min * 60_000))
            specs = [_scan(f) for f in (args.field or DEFAULT_SCANS)]
            names = [args.strategy] if args.strategy else await _strategies_with_labels(store, args.run_id)
            rep = {"mode": ocfg.mode, "strategies": {s: await gates_report(store, s, specs, ocfg, args.run_id)
                                                     for s in names}}
            summary = {"recommendations": {s: {sc["field"]: sc["recommendation"] for sc in r["scans"]}
                                           for s, r in rep["strategies"].items()}}
        js, page = write_report(args.kind, rep, out)
        files = {"json": str(js), "html": str(page)}
        if args.png:
            png = out / f"{args.kind}.png"
            files["png"] = str(png) if render_png(page, png) else "skipped: no chromium (install Debian chromium)"
        return {"report": args.kind, **summary, "files": files}

    return _emit(asyncio.run(_with_store(args, job)))


def register(subparsers: Any) -> None:
    """Add ``label``, ``calibrate`` and ``report`` to the ``arbray`` parser's subparsers."""
    db_help = "journal DSN (sqlite:///… or postgresql://…); default $ARBRAY_DB / $ARBRAY_DB_FILE / embedded SQLite"
    lab = subparsers.add_parser("label", help="label journalled score events with their market outcomes")
    lab.add_argument("--db", default=None, metavar="DSN", help=db_help)
    lab.add_argument("--input", action="extend", nargs="+", metavar="FILE",
                     help="recordings with the prices after the events (default: the journal's agg_trades/klines)")
    lab.add_argument("--price", choices=("trade", "mark"), default="trade", help="price the barriers are checked on")
    lab.add_argument("--max-gap-ms", type=int, default=300_000, help="longest tolerated stretch without a price")
    lab.add_argument("--strategy", default=None, help="only this strategy's events (config strategy_id)")
    lab.add_argument("--run-id", default=None, help="only this run's events")
    lab.add_argument("--relabel", action="store_true", help="also relabel events labelled under another definition")
    lab.set_defaults(func=_cmd_label)

    cal = subparsers.add_parser("calibrate", help="fit, store and activate score → win-probability calibrators")
    cal.add_argument("--db", default=None, metavar="DSN", help=db_help)
    cal.add_argument("--strategy", action="extend", nargs="+", metavar="NAME", help="config strategy_id(s)")
    cal.add_argument("--all", action="store_true", help="every strategy with labelled events")
    cal.add_argument("--method", choices=("auto", "bucket", "isotonic"), default="auto",
                     help="auto picks by sample count: bootstrap < 300 ≤ 10-pt buckets < 1000 ≤ 5-pt < 5000 ≤ isotonic")
    cal.add_argument("--label", choices=("y_binary_60m", "y_binary_30m"), default="y_binary_60m")
    cal.add_argument("--population", choices=("sided", "passed", "entries"), default="sided")
    cal.add_argument("--min-bucket-samples", type=int, default=30, help="thinner buckets fall back")
    cal.add_argument("--activate", choices=("beats_bootstrap", "always"), default="beats_bootstrap",
                     help="make the fit live only if its holdout Brier beats the bootstrap map (default), or always")
    cal.add_argument("--run-id", default=None, help="only this run's events")
    cal.set_defaults(func=_cmd_calibrate)

    rep = subparsers.add_parser("report", help="calibration, cost or gate-optimiser report (JSON + HTML)")
    rep.add_argument("kind", choices=("calibration", "costs", "gates"))
    rep.add_argument("--out", required=True, help="output folder")
    rep.add_argument("--db", default=None, metavar="DSN", help=db_help)
    rep.add_argument("--strategy", default=None, help="only this strategy (config strategy_id)")
    rep.add_argument("--run-id", default=None, help="only this run")
    rep.add_argument("--png", action="store_true", help="also screenshot the page with headless Chromium")
    rep.add_argument("--label", choices=("y_binary_60m", "y_binary_30m"), default="y_binary_60m")
    rep.add_argument("--population", choices=("sided", "passed", "entries"), default="sided")
    rep.add_argument("--field", action="append", metavar="FIELD[<=]",
                     help="gates: total, p_calibrated, layer:X, input:X or feature:X; suffix <= keeps values below "
                          f"(default: {', '.join(DEFAULT_SCANS)})")
    rep.add_argument("--mode", choices=("events", "trades"), default="events", help="gates: labelled events or trades")
    rep.add_argument("--train-days", type=float, default=30.0, help="gates: walk-forward training window")
    rep.add_argument("--step-days", type=float, default=7.0, help="gates: walk-forward step (= test window)")
    rep.add_argument("--cost-r", type=float, default=0.0, help="gates: cost in R charged per labelled event")
    rep.add_argument("--spacing-min", type=float, default=0.0,
                     help="gates: at most one event per symbol per this many minutes (labels overlap otherwise)")
    rep.set_defaults(func=_cmd_report)
