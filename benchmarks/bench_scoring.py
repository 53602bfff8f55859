"""Factory-kind scoring throughput: 1 and 1,000 configs per snapshot, scalar loop vs vectorised.

Run: ``/work/venv/bin/python benchmarks/bench_scoring.py [--snapshots 200] [--repeat 5]``.
The baseline is the plain per-config Python loop over the scalar ``score`` measured in the same
run; the vectorised path is one ``score_batch`` call per snapshot (numpy columns), reported
without and with materialising every ``ScoreResult``. Target: 1,000 configs in < 20 ms on one core.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import fields  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from arbray.strategies.factory import FactoryConfig, compile_configs, score, score_batch  # noqa: E402

from arbray.features.snapshot import FeatureSnapshot  # noqa: E402
from arbray.scoring.evaluator import Evaluator  # noqa: E402

WINDOWS = [("5m", "30m"), ("5m", "1h"), ("15m", "1h"), ("15m", "4h"), ("30m", "1h"), ("30m", "4h"), ("30m", "24h")]


def make_configs(n: int) -> list[FactoryConfig]:
    """``n`` distinct BTCUSDT factory records varying windows, weights, thresholds and gates."""
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        fast, slow = WINDOWS[i % len(WINDOWS)]
        w_mom, w_aux, w_env = int(rng.integers(0, 16)), int(rng.integers(0, 31)), int(rng.integers(20, 41))
        entry = int(rng.integers(60, 90))
        out.append(FactoryConfig(
            strategy_id=f"bench_{i}", symbol="BTCUSDT", cvd_fast_window=fast, cvd_slow_window=slow,
            weight_direction=100 - w_mom - w_aux - w_env, weight_env=w_env, weight_aux=w_aux, weight_momentum=w_mom,
            entry_score=entry, flip_threshold=int(rng.integers(entry, 96)),
            direction=("both", "long_only", "short_only")[i % 3],
            vol_atr_pct_min=float(rng.choice([0.0, 0.001, 0.002, 0.003])),
            gate_spot_perp_enabled=bool(i % 2), obi_threshold=float(rng.choice([0.0, 0.3, 0.5])),
        ))
    return out


def make_snapshots(n: int) -> list[FeatureSnapshot]:
    """``n`` ready BTCUSDT snapshots with varied features."""
    rng = np.random.default_rng(2)
    base: dict[str, Any] = {f.name: None for f in fields(FeatureSnapshot)}
    base.update(symbol="BTCUSDT", trade_count_1m=100, whale_trades_15m=3, oi_change_horizon_min=15.0,
                liq_long_usd_5m=0.0, liq_short_usd_5m=0.0, book_state="synced", quality=())
    out = []
    for i in range(n):
        price = 60_000.0 + float(rng.normal(0, 500))
        cvds = {f"cvd_{w}": float(rng.normal(0, 100)) for w in ("5m", "15m", "30m", "1h", "4h", "24h")}
        out.append(FeatureSnapshot(**{
            **base, **cvds, "ts_ms": 1_723_161_600_000 + i * 15_000, "price": price,
            "atr_5m": price * float(rng.uniform(0.001, 0.004)), "atr_pct_5m": float(rng.uniform(0.001, 0.004)),
            "large_buy_qty_15m": float(rng.choice([0.0, 12.0])), "large_sell_qty_15m": float(rng.choice([0.0, 12.0])),
            "cvd_accel_30m_per_min2": float(rng.normal(0, 5)), "whale_flow_15m": float(rng.uniform(-1, 1)),
            "obi_10": float(rng.uniform(-0.6, 0.6)), "spot_perp_div": float(rng.normal(0, 0.003)),
            "long_short_ratio": float(rng.uniform(0.4, 2.5)), "top_trader_long_ratio": float(rng.uniform(0.4, 0.6)),
            "oi_change_pct": float(rng.normal(0, 0.02)),
        }))
    return out


def per_snapshot_ms(fn: Callable[[FeatureSnapshot], object], snaps: list[FeatureSnapshot], repeat: int) -> float:
    """Median over ``repeat`` runs of the mean wall time per snapshot, in milliseconds."""
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for s in snaps:
            fn(s)
        runs.append((time.perf_counter() - t0) / len(snaps) * 1e3)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--snapshots", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    snaps = make_snapshots(args.snapshots)
    rows: list[tuple[str, int, float]] = []
    for n in (1, 1000):
        cfgs = make_configs(n)
        compiled = compile_configs(cfgs, "BTCUSDT")
        n_snaps = snaps if n == 1 else snaps[: max(20, args.snapshots // 10)]
        base = per_snapshot_ms(lambda s, cfgs=cfgs: [score(s, c) for c in cfgs], n_snaps, args.repeat)
        vec = per_snapshot_ms(lambda s, compiled=compiled: score_batch(s, compiled), n_snaps, args.repeat)
        mat = per_snapshot_ms(lambda s, compiled=compiled: score_batch(s, compiled).results(), n_snaps, args.repeat)
        ev = Evaluator(cfgs)
        auto = per_snapshot_ms(lambda s, ev=ev: ev.results(s), n_snaps, args.repeat)
        rows += [("scalar loop (baseline)", n, base), ("vectorised, arrays", n, vec),
                 ("vectorised + ScoreResults", n, mat), ("Evaluator.results", n, auto)]
    print(f"factory kind, {args.snapshots} snapshots, median of {args.repeat} runs, one core")
    print(f"{'path':28} {'configs':>7} {'ms/snapshot':>12} {'evals/s':>12} {'vs baseline':>12}")
    baseline = {n: ms for name, n, ms in rows if name.startswith("scalar")}
    for name, n, ms in rows:
        print(f"{name:28} {n:>7} {ms:>12.3f} {n / ms * 1e3:>12,.0f} {baseline[n] / ms:>11.1f}x")
    ms_1000 = next(ms for name, n, ms in rows if n == 1000 and name == "vectorised + ScoreResults")
    print(f"1,000 configs with ScoreResults: {ms_1000:.2f} ms per snapshot (target < 20 ms)")


if __name__ == "__main__":
    main()
