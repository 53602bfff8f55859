"""Feature-pipeline throughput on real recordings, against ceilings measured in the same run.

Two paths, as the live SymbolState actor and the backtest use them:
1. raw lines → parsed → features: every line of the 8 real hftbacktest recordings (decompressed
   in memory first, so gzip is excluded from both sides) through the real ``ReplayEngine``
   (parser, order book, trade tape, bars, quantiles) with a snapshot every 15 s of exchange time.
   Ceiling: ``orjson.loads`` of the same lines and nothing else.
2. numpy trade batches → features: the real BTCUSDT trades repeated to N trades (shifted in time,
   as peerbench's workload), fed to ``SymbolFeatures.add_trades`` one 15-second batch at a time
   with a snapshot at every boundary, and in large batches without snapshots. Baseline: a pure
   numpy pass computing the same 30-minute CVD at every boundary (cumsum + searchsorted).

Run:  python benchmarks/bench_features.py [--trades 2000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

from arbray.features.snapshot import FeatureSnapshot
from arbray.features.symbol import SymbolFeatures
from arbray.marketdata.events import TradeBatch
from arbray.replay.engine import ReplayEngine
from arbray.replay.readers import iter_hftbacktest_lines, symbol_from_name

SESSIONS = [
    ("btcusdt_20230404.dat.gz", "btcusdt_20230405.dat.gz"),
    ("btcusdt_20240718.gz", "btcusdt_20240719.gz"),
    ("ethusdt_20240718.gz", "ethusdt_20240719.gz"),
    ("btcusdt_20240808.gz",),
    ("ethusdt_20240808.gz",),
]


def data_dir() -> Path:
    env = os.environ.get("ARBRAY_REAL_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def load_sessions(base: Path) -> list[tuple[str, list[bytes]]]:
    out = []
    for files in SESSIONS:
        lines: list[bytes] = []
        for f in files:
            with gzip.open(base / "hftbacktest" / "usdm" / f, "rb") as fh:
                lines.extend(fh.read().splitlines())
        out.append((symbol_from_name(files[0]) or "", lines))
    return out


def best(fns: list[Callable[[], None]], repeat: int) -> list[float]:
    """Best wall time of each function, runs interleaved so machine noise hits all of them alike."""
    times = [float("inf")] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[k] = min(times[k], time.perf_counter() - t0)
    return times


def bench_raw(sessions: list[tuple[str, list[bytes]]], repeat: int) -> dict[str, float]:
    n = sum(len(lines) for _, lines in sessions)

    def ceiling() -> None:
        loads = orjson.loads
        for _, lines in sessions:
            for line in lines:
                loads(line.partition(b" ")[2])

    snaps = 0

    def pipeline() -> None:
        nonlocal snaps
        snaps = 0

        def count(_: FeatureSnapshot) -> None:
            nonlocal snaps
            snaps += 1

        for sym, lines in sessions:
            ReplayEngine(15_000, count).run([iter_hftbacktest_lines(lines, sym)])

    t_ceiling, t_pipe = best([ceiling, pipeline], repeat)
    return {
        "messages": n,
        "ceiling_orjson_msgs_per_s": n / t_ceiling,
        "pipeline_msgs_per_s": n / t_pipe,
        "ratio_to_ceiling": t_ceiling / t_pipe,
        "snapshots": snaps,
    }


def trade_workload(sessions: list[tuple[str, list[bytes]]], n_target: int) -> dict[str, np.ndarray]:
    """Real BTCUSDT trades, each session shifted to follow the previous one 100 ms later."""
    segments = []
    for sym, lines in sessions:
        if sym != "BTCUSDT":
            continue
        rows = [orjson.loads(ln.partition(b" ")[2])["data"] for ln in lines if b'"e":"trade"' in ln]
        segments.append((np.array([d["T"] for d in rows], np.int64), np.array([float(d["p"]) for d in rows]),
                         np.array([float(d["q"]) for d in rows]), np.array([d["m"] for d in rows])))
    ts, px, qty, sell = [], [], [], []
    t_next, total = 1_700_000_000_000, 0
    while total < n_target:
        for seg_ts, seg_px, seg_q, seg_m in segments:
            shifted = seg_ts - seg_ts[0] + t_next
            ts.append(shifted)
            px.append(seg_px)
            qty.append(seg_q)
            sell.append(seg_m)
            t_next = int(shifted[-1]) + 100
            total += shifted.shape[0]
    return {
        "ts": np.concatenate(ts)[:n_target],
        "price": np.concatenate(px)[:n_target],
        "qty": np.concatenate(qty)[:n_target],
        "sell": np.concatenate(sell)[:n_target],
        "id": np.arange(1, n_target + 1, dtype=np.int64),
    }


def bench_batches(w: dict[str, np.ndarray], repeat: int) -> dict[str, float]:
    n = int(w["ts"].shape[0])
    every = 15_000
    bounds = np.arange(w["ts"][0] - w["ts"][0] % every + every, w["ts"][-1] + every, every)
    cuts = np.searchsorted(w["ts"], bounds, "left")

    def baseline() -> None:
        signed = np.where(w["sell"], -w["qty"], w["qty"])
        cs = np.concatenate(([0.0], np.cumsum(signed)))
        lo = np.searchsorted(w["ts"], bounds - 30 * 60_000, "left")
        _ = cs[cuts] - cs[lo]

    def per_boundary() -> None:
        sf = SymbolFeatures("BTCUSDT")
        a = 0
        for b, t in zip(cuts, bounds, strict=True):
            if b > a:
                sf.add_trades(TradeBatch.from_columns("BTCUSDT", w["ts"][a:b], w["price"][a:b], w["qty"][a:b],
                                                      w["sell"][a:b], w["id"][a:b]))
                a = int(b)
            sf.snapshot(int(t))

    def large_batches() -> None:
        sf = SymbolFeatures("BTCUSDT")
        step = 65_536
        for a in range(0, n, step):
            sl = slice(a, a + step)
            sf.add_trades(TradeBatch.from_columns("BTCUSDT", w["ts"][sl], w["price"][sl], w["qty"][sl],
                                                  w["sell"][sl], w["id"][sl]))
        sf.snapshot(int(w["ts"][-1]) + 1)

    t_base, t_per, t_large = best([baseline, per_boundary, large_batches], repeat)
    return {
        "trades": n,
        "boundaries": int(bounds.shape[0]),
        "numpy_cvd_baseline_trades_per_s": n / t_base,
        "per_15s_batch_with_snapshots_trades_per_s": n / t_per,
        "large_batches_trades_per_s": n / t_large,
        "per_15s_ratio_to_baseline": t_base / t_per,
        "large_ratio_to_baseline": t_base / t_large,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trades", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    base = data_dir()
    if not (base / "hftbacktest" / "usdm").is_dir():
        print(f"real data not found at {base}; set ARBRAY_REAL_DATA", file=sys.stderr)
        return 2
    sessions = load_sessions(base)
    raw = bench_raw(sessions, args.repeat)
    print(orjson.dumps({"bench": "raw_lines_to_features", **raw}).decode())
    w = trade_workload(sessions, args.trades)
    batch = bench_batches(w, args.repeat)
    print(orjson.dumps({"bench": "numpy_batches_to_features", **batch}).decode())
    print(f"\nraw path: {raw['pipeline_msgs_per_s']:,.0f} msg/s = {raw['ratio_to_ceiling']:.0%} of the orjson "
          f"parse-only ceiling ({raw['ceiling_orjson_msgs_per_s']:,.0f} msg/s; target >= 40%)")
    print(f"batch path: {batch['large_batches_trades_per_s'] / 1e6:.2f} M trades/s in large batches, "
          f"{batch['per_15s_batch_with_snapshots_trades_per_s'] / 1e6:.2f} M trades/s in 15 s batches with a "
          f"snapshot each (target >= 5 M/s per core); numpy CVD baseline "
          f"{batch['numpy_cvd_baseline_trades_per_s'] / 1e6:.1f} M/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
