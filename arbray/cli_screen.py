"""``arbray screen``: scan a universe of kline files with ``ats_v2`` or ``short_grid`` and rank it.

``arbray screen --universe all|FILE --klines DIR --model ats_v2|short_grid --out results.json [--workers N]``
reads every ``*-futures.feather`` under ``DIR`` (``FILE``: an ``exchangeInfo`` JSON or a JSON list of
symbols restricting the universe), scores each symbol, prints a ranked table and writes the results
as a JSON list of ``{symbol, rank, score, factors, explanation, …}``. ``--workers N`` (N ≥ 1) runs the
scan on a private local Ray with N CPUs (``arbray.actors.screen``, imported only then); without it
the scan runs in this process. A final JSON summary line goes to stdout.

``arbray screen --live [--rest-base URL --ws-base URL] [--interval 5m] --model … --out results.json``
builds the live kline cache instead (``arbray.screener.cache``): the universe from ``exchangeInfo``
(every TRADING USDT perpetual; ``--universe FILE`` or ``--symbols`` narrow it), kline streams for all of
it, the REST backfill with rate-limit accounting (progress on stderr), then one scan over the cache —
the same scan the periodic service runs; ``--dsn`` journals it (``screen_runs``). The endpoints default
to Binance production; point them at ``arbray sim serve`` for the simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson

from arbray.feeds.config import BINANCE_PRODUCTION, Endpoints, RestConfig
from arbray.feeds.rest import BinanceError, BinanceRest
from arbray.screener.backfill import BackfillConfig, Progress, ProgressFn
from arbray.screener.cache import KlineCache, KlineCacheConfig
from arbray.screener.data import SymbolKlines, load_exchange_info, load_kline_dir
from arbray.screener.models import AtsConfig, ShortGridConfig
from arbray.screener.scan import ModelName, scan
from arbray.screener.service import ScreenerConfig, ScreenerService
from arbray.screener.universe import Universe, fetch_universe


def register(subparsers: Any) -> None:
    """Add ``screen`` to the ``arbray`` sub-commands."""
    p = subparsers.add_parser("screen", help="rank a universe of kline files with ats_v2 or the short-grid screen")
    p.add_argument("--universe", default="all", help="'all' (every file in --klines) or an exchangeInfo/JSON list file")
    p.add_argument("--klines", type=Path, help="folder of *-futures.feather kline files (recursive); not with --live")
    p.add_argument("--model", choices=("ats_v2", "short_grid"), default="short_grid")
    p.add_argument("--out", type=Path, default=Path("results.json"))
    p.add_argument("--workers", type=int, default=0, help="Ray workers (0: in-process scan)")
    p.add_argument("--bars", type=int, default=300, help="most recent bars per symbol (default 300)")
    p.add_argument("--mode", choices=("v1", "v2", "hybrid"), default="hybrid", help="ats_v2 factor set")
    p.add_argument("--min-quote-volume", type=float, default=ShortGridConfig().min_quote_volume,
                   help="short_grid liquidity filter: USDT traded over the 50-bar window")
    p.add_argument("--top", type=int, default=20, help="rows of the printed table (all are written to --out)")
    live = p.add_argument_group("live (--live): the kline cache from Binance or the simulator")
    live.add_argument("--live", action="store_true", help="scan a live kline cache instead of files")
    live.add_argument("--rest-base", default=BINANCE_PRODUCTION.rest_base, help="USD-M REST base URL")
    live.add_argument("--ws-base", default=BINANCE_PRODUCTION.ws_base, help="USD-M WebSocket base URL")
    live.add_argument("--interval", default="5m", help="kline interval of the cache (5m)")
    live.add_argument("--symbols", default=None, help="comma-separated symbols instead of exchangeInfo's universe")
    live.add_argument("--no-open-interest", action="store_true", help="skip the openInterestHist backfill")
    live.add_argument("--no-funding", action="store_true", help="skip the funding-rate backfill")
    live.add_argument("--dsn", default=None, help="journal the run in this store (screen_runs / screen_results)")
    p.set_defaults(func=cmd_screen)


def cmd_screen(args: argparse.Namespace) -> int:
    """Run the scan the arguments describe; 0 on success."""
    if args.live:
        try:
            return asyncio.run(_live(args))
        except BinanceError as exc:
            raise ValueError(f"REST request failed for good: {exc}") from exc
    if args.klines is None:
        raise ValueError("--klines DIR is required (or --live)")
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


async def _live(args: argparse.Namespace) -> int:
    """``--live``: universe, kline cache (streams + backfill), one journalled scan, the table."""
    t0 = time.perf_counter()
    backfill = BackfillConfig(bars=args.bars, open_interest=not args.no_open_interest, funding=not args.no_funding)
    cfg = ScreenerConfig(models=(args.model,), timeframe=args.interval, bars=args.bars, ats=AtsConfig(mode=args.mode),
                         grid=ShortGridConfig(min_quote_volume=args.min_quote_volume, min_bars=min(300, args.bars)),
                         cache=KlineCacheConfig(intervals=(args.interval,), backfill=backfill))
    rest = BinanceRest(RestConfig(base_url=args.rest_base))
    store = None
    try:
        if args.symbols:
            universe = Universe(tuple(sorted({x.strip().upper() for x in args.symbols.split(",") if x.strip()})),
                                "--symbols", {})
        else:
            universe = await fetch_universe(rest)
        symbols = list(universe.symbols)
        if args.universe != "all":
            wanted = load_exchange_info(Path(args.universe))
            symbols = [s for s in symbols if s in wanted]
        if not symbols:
            raise ValueError("the universe is empty")
        print(f"universe: {len(symbols)} symbols from {universe.source} (left out: {universe.excluded})",
              file=sys.stderr)
        cache = KlineCache(Endpoints(args.ws_base, args.rest_base, None), symbols, cfg.cache, rest=rest)
        cache.backfiller.progress = _progress_printer(sys.stderr)
        scan_fn = None
        if args.workers >= 1:
            screen = importlib.import_module("arbray.actors.screen")
            screen.start_ray(args.workers)

            def scan_fn(u: Sequence[SymbolKlines], m: ModelName, b: int, a: AtsConfig,
                        g: ShortGridConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
                ranked, excluded = screen.scan_ray(u, m, args.workers, b, a, g)
                return list(ranked), list(excluded)
        if args.dsn:
            from arbray.storage import open_store

            store = await open_store(args.dsn)
        t1 = time.perf_counter()
        await cache.start()
        ready_s = time.perf_counter() - t1
        try:
            svc = ScreenerService(cache.core, cfg, store, scan_fn=scan_fn, source_name=f"kline_cache:{args.rest_base}")
            t2 = time.perf_counter()
            done = await svc.run_once()
            scan_s = time.perf_counter() - t2
            stats = cache.stats()
        finally:
            await cache.stop()
    finally:
        await rest.close()
        if store is not None:
            await store.close()
    result = done.get(args.model)
    if result is None:
        raise ValueError(f"no scan ran: {svc.stats()}")
    ranked = result["results"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(ranked, option=orjson.OPT_INDENT_2))
    print(format_table(ranked[: args.top], args.model))
    rest_cost = stats["rest"]
    print(orjson.dumps({"model": args.model, "live": True, "symbols": result["symbols"], "ranked": len(ranked),
                        "excluded": result["excluded"], "interval": args.interval, "bars": args.bars,
                        "backfill_s": round(ready_s, 3), "scan_s": round(scan_s, 4),
                        "total_s": round(time.perf_counter() - t0, 3), "rest": rest_cost,
                        "rate_limit_floor_s": round(rate_limit_floor_s(rest_cost), 2),
                        "cache": {k: stats["cache"][k] for k in ("backfilled", "bars_min", "bars_max", "open_gaps")},
                        "run_id": result["id"], "workers": args.workers, "out": str(args.out)}).decode())
    return 0


def rate_limit_floor_s(cost: dict[str, Any]) -> float:
    """Seconds the same requests need at least against Binance's limits: 2,400 weight per minute and the
    statistics endpoints' 1,000 requests per 5 minutes (both sustained rates)."""
    return float(max(cost.get("weight", 0) / 2_400 * 60, cost.get("futures_data_requests", 0) / 1_000 * 300))


def _progress_printer(out: TextIO) -> ProgressFn:
    """A progress callback printing each stage at every tenth of its requests."""
    def show(p: Progress) -> None:
        if p.done == p.total or p.done % max(1, p.total // 10) == 0:
            print(f"backfill {p.stage}: {p.done}/{p.total} requests, weight {p.weight}, "
                  f"statistics requests {p.futures_data}", file=out)
    return show


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
