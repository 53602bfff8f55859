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
    sys.stdout.buffer.write(orjson.dumps(summary.to_dict()) + b"\n")
    return 0


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
    d.set_defaults(func=_cmd_demo)
    from arbray.cli_backtest import register as register_backtest
    from arbray.cli_screen import register as register_screen
    from arbray.cli_sim import register as register_sim
    from arbray.cli_storage import register as register_storage
    from arbray.cli_strategies import register as register_strategies

    register_strategies(sub)
    register_backtest(sub)
    register_screen(sub)
    register_sim(sub)
    register_storage(sub)
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
