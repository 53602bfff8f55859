"""``arbray screen``: scan a universe of kline files with ``ats_v2`` or ``short_grid`` and rank it.

``arbray screen --universe all|FILE --klines DIR --model ats_v2|short_grid --out results.json [--workers N]``
reads every ``*-futures.feather`` under ``DIR`` (``FILE``: an ``exchangeInfo`` JSON or a JSON list of
symbols restricting the universe), scores each symbol, prints a ranked table and writes the results
as a JSON list of ``{symbol, rank, score, factors, explanation, …}``. ``--workers N`` (N ≥ 1) runs the
scan on a private local Ray with N CPUs (``arbray.actors.screen``, imported only then); without it
the scan runs in this process. A final JSON summary line goes to stdout.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from arbray.screener.data import load_exchange_info, load_kline_dir
from arbray.screener.models import AtsConfig, ShortGridConfig
from arbray.screener.scan import scan


def register(subparsers: Any) -> None:
    """Add ``screen`` to the ``arbray`` sub-commands."""
    p = subparsers.add_parser("screen", help="rank a universe of kline files with ats_v2 or the short-grid screen")
    p.add_argument("--universe", default="all", help="'all' (every file in --klines) or an exchangeInfo/JSON list file")
    p.add_argument("--klines", required=True, type=Path, help="folder of *-futures.feather kline files (recursive)")
    p.add_argument("--model", choices=("ats_v2", "short_grid"), default="short_grid")
    p.add_argument("--out", type=Path, default=Path("results.json"))
    p.add_argument("--workers", type=int, default=0, help="Ray workers (0: in-process scan)")
    p.add_argument("--bars", type=int, default=300, help="most recent bars per symbol (default 300)")
    p.add_argument("--mode", choices=("v1", "v2", "hybrid"), default="hybrid", help="ats_v2 factor set")
    p.add_argument("--min-quote-volume", type=float, default=ShortGridConfig().min_quote_volume,
                   help="short_grid liquidity filter: USDT traded over the 50-bar window")
    p.add_argument("--top", type=int, default=20, help="rows of the printed table (all are written to --out)")
    p.set_defaults(func=cmd_screen)


def cmd_screen(args: argparse.Namespace) -> int:
    """Run the scan the arguments describe; 0 on success."""
    wanted = None if args.universe == "all" else load_exchange_info(Path(args.universe))
    t0 = time.perf_counter()
    symbols = load_kline_dir(args.klines, max_bars=args.bars, symbols=wanted)
    load_s = time.perf_counter() - t0
    if not symbols:
        raise ValueError(f"no kline files for the universe under {args.klines}")
    ats = AtsConfig(mode=args.mode)
    grid = ShortGridConfig(min_quote_volume=args.min_quote_volume)
    t1 = time.perf_counter()
    if args.workers >= 1:
        # imported by name at call time: the core never imports Ray, only this command's actors module does
        screen = importlib.import_module("arbray.actors.screen")
        screen.start_ray(args.workers)
        t1 = time.perf_counter()
        ranked, excluded = screen.scan_ray(symbols, args.model, args.workers, args.bars, ats, grid)
    else:
        ranked, excluded = scan(symbols, args.model, args.bars, ats, grid)
    scan_s = time.perf_counter() - t1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(ranked, option=orjson.OPT_INDENT_2))
    print(format_table(ranked[: args.top], args.model))
    for row in excluded:
        print(f"excluded {row['symbol']}@{row['timeframe']}: {row['explanation']}", file=sys.stderr)
    print(orjson.dumps({"model": args.model, "symbols": len(symbols), "ranked": len(ranked),
                        "excluded": len(excluded), "load_s": round(load_s, 4), "scan_s": round(scan_s, 4),
                        "workers": args.workers, "out": str(args.out)}).decode())
    return 0


def format_table(rows: Sequence[dict[str, Any]], model: str) -> str:
    """A fixed-width ranked table: rank, symbol, timeframe, score and the model's headline numbers."""
    cols = ("volatility", "trend", "micro")
    if model == "short_grid":
        head = (f"{'rank':>4}  {'symbol':<16}{'tf':>4}  {'GSS':>6}  {'vol':>5}  {'trend':>5}  {'micro':>5}  "
                f"{'NATR%':>7}  {'KER':>5}  {'H':>5}")
    else:
        head = (f"{'rank':>4}  {'symbol':<16}{'tf':>4}  {'score':>6}  {'P(up)':>5}  {'mode':>5}  "
                f"{'T':>5}  {'M':>5}  {'C':>5}  missing")
    lines = [head]
    for r in rows:
        left = f"{r['rank']:>4}  {r['symbol']:<16}{r['timeframe']:>4}  {_f(r['score'], '6.1f')}  "
        if model == "short_grid":
            f = r["factors"]
            lines.append(left + "  ".join(_f(r["components"].get(c), "5.0f") for c in cols)
                         + f"  {_f(f.get('natr'), '7.3f')}  {_f(f.get('ker'), '5.2f')}  {_f(f.get('hurst'), '5.2f')}")
        else:
            c = r["components"]
            lines.append(left + f"{_f(r.get('probability_up'), '5.2f')}  {r.get('mode')!s:>5}  "
                         + "  ".join(_f(c.get(k), "5.0f") for k in ("T", "M", "C")) + "  " + ",".join(r["missing"]))
    return "\n".join(lines)


def _f(x: float | None, spec: str) -> str:
    width = int(spec.split(".")[0])
    return f"{'—':>{width}}" if x is None else format(x, spec)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -m arbray.cli_screen screen …``) with the same arguments as ``arbray screen``."""
    parser = argparse.ArgumentParser(prog="arbray")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (FileNotFoundError, ValueError) as exc:
        print(f"arbray: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
