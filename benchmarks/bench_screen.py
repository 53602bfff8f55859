"""Full market scan: 500 symbols × 300 bars, compute only, one core and Ray with 1 and 2 workers.

Run: ``/work/venv/bin/python benchmarks/bench_screen.py [--symbols 500] [--bars 300] [--repeat 5] [--no-ray]``.
The klines come from the seeded synthetic generator (``arbray.screener.synth``; no exchange simulator
REST exists yet, so end-to-end time is not measured) and are built before timing. Reported: the
in-process scan per model (median of ``--repeat``), the research document's per-symbol R/S loop
against the vectorised Hurst, and the Ray scan over 1 and 2 shards/workers (warm cluster; Ray start-up
reported separately). Target: compute < 1 s on one core. Also printed: the Binance REST weight floor
for fetching the same universe end to end.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402

import numpy as np  # noqa: E402
from scipy.stats import linregress  # type: ignore[import-untyped]  # noqa: E402

from arbray.screener.factors import HURST_WINDOWS, hurst_rs, log_returns  # noqa: E402
from arbray.screener.scan import ModelName, scan  # noqa: E402
from arbray.screener.synth import synthetic_universe  # noqa: E402

WEIGHT_PER_MINUTE = 2400
"""Binance USD-M REQUEST_WEIGHT limit per IP per minute."""


def klines_weight(limit: int) -> int:
    """``GET /fapi/v1/klines`` weight by ``limit``: ≤100 → 1, ≤500 → 2, ≤1000 → 5, else 10."""
    return 1 if limit <= 100 else 2 if limit <= 500 else 5 if limit <= 1000 else 10


def median_s(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``repeat`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def hurst_loop(y: np.ndarray) -> float:
    """The research document's per-symbol calculate_hurst_exponent (Python loops, linregress)."""
    pts = []
    for w in HURST_WINDOWS:
        if w >= len(y):
            continue
        vals = []
        for i in range(len(y) // w):
            sub = y[i * w:(i + 1) * w]
            x = np.cumsum(sub - np.mean(sub))
            s = np.std(sub, ddof=1)
            if s > 0:
                vals.append((np.max(x) - np.min(x)) / s)
        if vals:
            pts.append((w, np.mean(vals)))
    return float(linregress(np.log([w for w, _ in pts]), np.log([v for _, v in pts])).slope)


def rate_limit_floor(symbols: int, bars: int) -> list[str]:
    """Lines describing the REST weight an end-to-end scan costs and the time floor it implies."""
    kw = klines_weight(bars) * symbols
    oi = symbols  # GET /fapi/v1/openInterest: weight 1 per symbol (research document)
    lines = [f"REST weight: klines limit={bars} → weight {klines_weight(bars)} × {symbols} = {kw}; "
             f"openInterest 1 × {symbols} = {oi}; limit {WEIGHT_PER_MINUTE}/min"]
    for name, w in (("klines only", kw), ("klines + open interest", kw + oi)):
        lines.append(f"  {name}: {w} weight → sustained floor {w / WEIGHT_PER_MINUTE * 60:.1f} s per scan "
                     f"({'fits one fresh 1-minute window' if w <= WEIGHT_PER_MINUTE else 'needs several minutes'})")
    lines.append("  a kline-stream cache (no REST per scan) removes this floor; only backfill pays it")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--bars", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray measurements")
    args = ap.parse_args()
    universe = synthetic_universe(args.symbols, args.bars, seed=7)
    n, b = args.symbols, args.bars
    print(f"{n} symbols × {b} bars (synthetic, seed 7), compute only, median of {args.repeat}")
    models: tuple[ModelName, ...] = ("short_grid", "ats_v2")
    local = {m: median_s(partial(scan, universe, m, b), args.repeat) for m in models}
    for m, s in local.items():
        print(f"  in-process, 1 core   {m:<10} {s * 1e3:8.1f} ms  ({n / s:,.0f} symbols/s; target < 1000 ms)")
    r = np.stack([log_returns(s.close[None])[0] for s in universe])
    loop = median_s(lambda: [hurst_loop(row) for row in r], max(1, args.repeat // 2))
    vec = median_s(lambda: hurst_rs(r), args.repeat)
    print(f"  Hurst R/S: document's per-symbol loop {loop * 1e3:.1f} ms, vectorised {vec * 1e3:.2f} ms "
          f"({loop / vec:.0f}× faster, same values)")
    if not args.no_ray:
        screen = importlib.import_module("arbray.actors.screen")
        t0 = time.perf_counter()
        screen.start_ray(2)
        print(f"  Ray start-up (2 CPUs, not counted below): {time.perf_counter() - t0:.2f} s")
        for workers in (1, 2):
            for m in models:
                s = median_s(partial(screen.scan_ray, universe, m, workers, b), args.repeat)
                print(f"  Ray, {workers} worker{'s' if workers > 1 else ' '}        {m:<10} {s * 1e3:8.1f} ms")
    for line in rate_limit_floor(n, b):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
