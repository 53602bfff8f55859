"""The ``arbray`` command line."""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import IO

import asyncpg  # type: ignore[import-untyped]
import orjson

from arbray.features.snapshot import FeatureSnapshot
from arbray.replay.engine import ReplayEngine, ReplaySummary
from arbray.replay.readers import open_input

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def parse_interval(text: str) -> int:
    """``"15s"`` → 15000; accepts ms, s, m, h."""
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h)\s*", text)
    if not m or int(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"invalid interval {text!r}: use e.g. 250ms, 15s, 1m, 1h")
    return int(m.group(1)) * _UNITS_MS[m.group(2)]


def bundled_inputs() -> list[Path]:
    """The real recordings shipped with the package (see ``arbray/data/README.md``)."""
    root = resources.files("arbray") / "data"
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".gz"))


def replay(inputs: Sequence[str | Path], every_ms: int, out: IO[bytes]) -> ReplaySummary:
    """Replay ``inputs`` and write one JSON line per snapshot to ``out``."""
    write = out.write

    def emit(snap: FeatureSnapshot) -> None:
        write(orjson.dumps(snap.to_dict()) + b"\n")

    engine = ReplayEngine(every_ms, emit)
    return engine.run([open_input(p, every_ms) for p in inputs])


def _cmd_replay(args: argparse.Namespace) -> int:
    inputs = args.input or [str(p) for p in bundled_inputs()]
    if args.out == "-":
        summary = replay(inputs, args.every, sys.stdout.buffer)
    else:
        with open(args.out, "wb") as fh:
            summary = replay(inputs, args.every, fh)
    sys.stdout.buffer.write(orjson.dumps(summary.to_dict()) + b"\n")
    sys.stdout.flush()
    return 0


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _cmd_demo(args: argparse.Namespace) -> int:
    """Replay the bundled recordings and print a per-minute feature table."""
    rows: list[FeatureSnapshot] = []
    out_path = Path(args.out)
    with out_path.open("wb") as fh:

        def emit(snap: FeatureSnapshot) -> None:
            fh.write(orjson.dumps(snap.to_dict()) + b"\n")
            rows.append(snap)

        engine = ReplayEngine(args.every, emit)
        summary = engine.run([open_input(p, args.every) for p in bundled_inputs()])
    print(f"{'symbol':9} {'time (UTC)':19} {'price':>10} {'cvd_5m':>9} {'cvd_usd_5m':>12} "
          f"{'vwap_30m':>10} {'spread_bps':>10} {'obi_10':>7} {'book':>9}")
    import datetime as dt

    for s in rows:
        if s.ts_ms % 60_000 == 0:
            when = dt.datetime.fromtimestamp(s.ts_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
            print(f"{s.symbol:9} {when:19} {_fmt(s.price, '10.2f')} {_fmt(s.cvd_5m, '9.3f')} "
                  f"{_fmt(s.cvd_usd_5m, '12,.0f')} {_fmt(s.vwap_30m, '10.2f')} {_fmt(s.spread_bps, '10.3f')} "
                  f"{_fmt(s.obi_10, '7.3f')} {s.book_state:>9}")
    print(f"\n{summary.snapshots_written} snapshots written to {out_path}")
    print(orjson.dumps(summary.to_dict()).decode(), flush=True)
    if args.sim_hours > 0:
        _demo_backtest(args.sim_hours, Path(args.backtest_out))
    return 0


def _demo_backtest(hours: float, out: Path) -> None:
    """Backtest every BTCUSDT preset on a generated session long enough to warm up ATR.

    The real recordings are 6–9 minutes long; ATR(14) on 5m bars needs 70 minutes.
    """
    from arbray.backtest.engine import Backtest, BacktestConfig
    from arbray.backtest.output import write_outputs
    from arbray.scoring.presets import load_presets
    from arbray.sim.model import MarketModelConfig
    from arbray.sim.recording import generate

    out.mkdir(parents=True, exist_ok=True)
    sim_path = out / "btcusdt_sim.gz"
    print(f"\nGenerating {hours:g} h of BTCUSDT with the market simulator (seed 7) → {sim_path} …", flush=True)
    generate(MarketModelConfig(symbols=("BTCUSDT",), hours=hours, seed=7, rate_scale=0.25, step_ms=250), sim_path)
    configs = [c for c in load_presets() if "BTCUSDT" in c.applies_to]
    print(f"Backtesting {len(configs)} BTCUSDT presets on it (maker-first execution, fees and funding) …", flush=True)
    res = Backtest(configs, BacktestConfig()).run([open_input(sim_path, 15_000)])
    summary = write_outputs(res, out)
    print(f"\n{'strategy':30} {'trades':>6} {'win %':>6} {'net R':>7} {'fees R':>7} {'maker % entry':>13}")
    quiet = 0
    for sid, st in summary["by_strategy"].items():
        if not st["trades"]:
            quiet += 1
            continue
        maker = st.get("maker_ratio_entry")
        win = 100 * (st["win_rate"] or 0)
        print(f"{sid:30} {st['trades']:>6} {win:>6.1f} {st['net_r']:>7.2f} {st['fees_r']:>7.2f} "
              f"{'-' if maker is None else f'{100 * maker:.0f}':>13}")
    print(f"{quiet} presets took no trade: no entry signal (score below entry or a gate blocked) in this session.")
    print(f"Report: {out / 'report.html'}  (summary.json, trades.jsonl, signals.jsonl, equity.csv beside it)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arbray", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("replay", help="replay recorded files and write feature snapshots as JSON lines")
    p.add_argument("--input", action="append", help="recorded file (repeatable); default: the bundled data")
    p.add_argument("--every", type=parse_interval, default=15_000, help="snapshot interval (default 15s)")
    p.add_argument("--out", default="features.jsonl", help="output JSON-lines file, or - for stdout")
    p.set_defaults(func=_cmd_replay)
    d = sub.add_parser("demo", help="replay the bundled real BTC/ETH recording and print features")
    d.add_argument("--every", type=parse_interval, default=15_000)
    d.add_argument("--out", default="features.jsonl")
    d.add_argument("--sim-hours", type=float, default=4.0,
                   help="hours of generated BTCUSDT to backtest the presets on (0: skip the backtest)")
    d.add_argument("--backtest-out", default="demo-backtest", help="backtest output folder")
    d.set_defaults(func=_cmd_demo)
    from arbray.cli_api import register as register_api
    from arbray.cli_backtest import register as register_backtest
    from arbray.cli_calibration import register as register_calibration
    from arbray.cli_record import register as register_record
    from arbray.cli_run import register as register_run
    from arbray.cli_screen import register as register_screen
    from arbray.cli_sim import register as register_sim
    from arbray.cli_storage import register as register_storage
    from arbray.cli_strategies import register as register_strategies

    register_strategies(sub)
    register_backtest(sub)
    register_screen(sub)
    register_sim(sub)
    register_storage(sub)
    register_api(sub)
    register_calibration(sub)
    register_record(sub)
    register_run(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (FileNotFoundError, ValueError) as exc:
        print(f"arbray: error: {exc}", file=sys.stderr)
        return 2
    except (sqlite3.Error, asyncpg.PostgresError, OSError) as exc:  # database unreachable, unmigrated, …
        print(f"arbray: database error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
