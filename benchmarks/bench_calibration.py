"""Calibration throughput: labelling, live calibration of score batches, pool-adjacent-violators.

Run: ``.venv/bin/python benchmarks/bench_calibration.py [--hours 24] [--rate 20] [--repeat 3]``.

- **labels**: a random-walk trade path (``rate`` trades/s for ``hours``), one event per 15 s per
  side, standard 30/60-minute horizons. Baseline (same run): the direct numpy labeller that slices
  each event's 60-minute window and scans it (``argmax`` of the barrier masks, ``max``/``min``);
  ours uses per-block maxima.
- **live**: ``LiveCalibration.apply`` on 1,000 results of 10 strategies (isotonic calibrators), and
  ``probabilities`` on the same columns, vs the baseline of copying those 1,000 ``ScoreResult``
  objects at all (``dataclasses.replace`` with nothing changed): stamping costs little beyond the
  copies a frozen record needs, and the column path avoids them.
- **pav**: ``pav`` on 100,000 points vs ``scipy.optimize.isotonic_regression`` (C++).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
from scipy.optimize import isotonic_regression  # noqa: E402

from arbray.calibration.calibrators import CalibratorConfig, fit_isotonic, pav  # noqa: E402
from arbray.calibration.labels import LabelEvent, LabelSpec, PricePath, label_events  # noqa: E402
from arbray.calibration.live import LiveCalibration  # noqa: E402
from arbray.scoring.result import GateResult, LayerScore, ScoreResult  # noqa: E402


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def naive_labels(events: list[LabelEvent], ts: np.ndarray, px: np.ndarray, spec: LabelSpec) -> list[tuple[int, ...]]:
    """Each event's window sliced and scanned with numpy (the straightforward vectorised labeller)."""
    out = []
    for ev in events:
        a = int(np.searchsorted(ts, ev.ts_ms, "left"))
        b = int(np.searchsorted(ts, ev.ts_ms + spec.horizon_ms, "left"))
        p0, atr, w = px[a - 1], ev.atr or 1.0, px[a:b]
        up, down = w >= p0 + ev.side * spec.target_atr * atr, w <= p0 - ev.side * spec.stop_atr * atr
        if ev.side < 0:
            up, down = w <= p0 - spec.target_atr * atr, w >= p0 + spec.stop_atr * atr
        it = int(up.argmax()) if up.any() else b
        st = int(down.argmax()) if down.any() else b
        out.append((it, st, int(w.max() * 100), int(w.min() * 100)))
    return out


def bench_labels(hours: float, rate: float, repeat: int) -> None:
    rng = np.random.default_rng(7)
    n = int(hours * 3600 * rate)
    ts = 1_700_000_000_000 + np.cumsum(rng.integers(1, int(2_000 / rate), n)).astype(np.int64)
    px = 60_000 + np.cumsum(rng.normal(0, 2.0, n))
    path = PricePath.from_prices("BTCUSDT", ts, px, "recording")
    spec = LabelSpec(2.0, 1.0, 300_000)
    t_end = int(ts[-1]) - spec.horizon_ms
    events = [LabelEvent(i, "BTCUSDT", t, side, 60.0, None)
              for i, (t, side) in enumerate((t, s) for t in range(int(ts[0]) + 60_000, t_end, 15_000) for s in (1, -1))]
    ours = best(lambda: label_events(events, path, spec), repeat)
    base = best(lambda: naive_labels(events, ts, px, spec), repeat)
    print(f"labels: {n:,} trades over {hours:g} h, {len(events):,} events (60-min window ≈ {rate * 3600:,.0f} trades)")
    print(f"  block-maxima labeller  {len(events) / ours:>10,.0f} events/s")
    print(f"  naive window scan      {len(events) / base:>10,.0f} events/s   (baseline)")
    print(f"  ratio                  {base / ours:>10.1f}×")


def bench_live(repeat: int) -> None:
    rng = np.random.default_rng(3)
    cfg = CalibratorConfig()
    cals = {}
    for k in range(10):
        s = rng.uniform(0, 100, 6_000)
        cals[f"s{k}"] = fit_isotonic(f"s{k}", s, (rng.uniform(0, 1, s.size) < 0.2 + s / 250).astype(float), cfg)
    live = LiveCalibration(cals)
    results = [ScoreResult(f"s{i % 10}", "factory", "1", "h", "BTCUSDT", 0, "LONG", True, float(rng.uniform(0, 100)),
                           (LayerScore("d", 1, 2, 3, 4),), (GateResult("g", "passed"),), None, None, True, False, (),
                           {}) for i in range(1_000)]
    ids, totals = [r.strategy_id for r in results], np.asarray([r.total for r in results])
    ours = statistics.median(best(lambda: live.apply(results), 1) for _ in range(repeat * 5))
    cols = statistics.median(best(lambda: live.probabilities(ids, totals), 1) for _ in range(repeat * 5))
    base = statistics.median(best(lambda: [dataclasses.replace(r) for r in results], 1) for _ in range(repeat * 5))
    print("live: LiveCalibration on 1,000 results of 10 strategies (isotonic)")
    print(f"  apply (stamped copies) {ours * 1e3:>10.2f} ms per batch")
    print(f"  probabilities (columns){cols * 1e3:>10.2f} ms per batch")
    print(f"  copying the results    {base * 1e3:>10.2f} ms per batch   (baseline)")
    print(f"  ratio apply / copy     {ours / base:>10.2f}×;  columns / copy {cols / base:.2f}×")


def bench_pav(repeat: int) -> None:
    rng = np.random.default_rng(5)
    y = (rng.uniform(0, 1, 100_000) < np.linspace(0.2, 0.7, 100_000)).astype(float)
    ours = best(lambda: pav(y), repeat)
    base = best(lambda: isotonic_regression(y), repeat)
    print("pav: 100,000 points")
    print(f"  arbray pav (Python)    {ours * 1e3:>10.1f} ms")
    print(f"  scipy (C++)            {base * 1e3:>10.1f} ms   (baseline)")
    print(f"  ratio                  {ours / base:>10.1f}× slower (runs once per calibration)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--rate", type=float, default=20.0, help="trades per second")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    bench_labels(args.hours, args.rate, args.repeat)
    bench_live(args.repeat)
    bench_pav(args.repeat)


if __name__ == "__main__":
    main()
