"""Backtest throughput: the peerbench CVD rule next to hftbacktest/numpy, the full pipeline, and sweeps.

Run: ``/work/venv/bin/python benchmarks/bench_backtest.py [--runs 3] [--peers numpy,hftbacktest]
[--skip-sweep]``. Needs the peerbench workload (``PEERBENCH_DIR``, default ``/tmp/peerbench``;
built with ``peerbench build`` when missing; peer engines create their venvs from PyPI on first use).

1. ``cvd``: arbray's ``run_cvd_rule`` over the 2M-trade workload, one fresh process per run (as
   peerbench runs its engines), decisions checked against the reference; the peer engines are
   measured by ``peerbench`` in the same run. Events/s = 2,000,000 / replay seconds (load excluded).
2. ``pipeline``: the full pipeline (features, scoring every 15 s with the 23 presets that carry
   BTCUSDT, execution, accounts, risk) over synthetic trades and, when present, the real tardis
   BTCUSDT trades of 2020-02-22 (2 h); trades/s per core.
3. ``sweep``: the 18 BTC control presets on local Ray over a real recording, 1 then 2 workers.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PEERBENCH = SHARED / "tools" / "peerbench" / "peerbench"
TARDIS = SHARED / "data" / "real" / "nautilus_trader" / "tardis_binance-futures_BTCUSDT_trades_2020-02-22.csv.gz"
RECORDING = SHARED / "data" / "real" / "hftbacktest" / "usdm" / "btcusdt_20240808.gz"
ARBRAY_RUN = """
import json, sys
from arbray.backtest.cvd_rule import load_trades, run_cvd_rule
import numpy as np
r = run_cvd_rule(*load_trades(sys.argv[1]))
np.save(sys.argv[2], r.decisions)
print(json.dumps({"run_s": r.run_s, "events": r.events, "decisions": len(r.decisions)}))
"""


def peer(engine: str, runs: int, env: dict[str, str]) -> dict[str, Any] | None:
    """The summary line ``peerbench ENGINE`` prints for the cvd workload, or None on failure."""
    proc = subprocess.run([str(PEERBENCH), engine, "--runs", str(runs), "--workloads", "cvd"], env=env,
                          capture_output=True, text=True, timeout=1_800, check=False)
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{") and "run_s_median" in x]
    if proc.returncode != 0 or not lines:
        print(f"peerbench {engine} failed: {proc.stderr[-500:]}", file=sys.stderr)
        return None
    out: dict[str, Any] = lines[-1]
    return out


def bench_cvd(runs: int, peers: list[str]) -> list[dict[str, Any]]:
    work = Path(os.environ.get("PEERBENCH_DIR", "/tmp/peerbench"))
    env = os.environ | {"PEERBENCH_DIR": str(work)}
    subprocess.run([str(PEERBENCH), "build"], env=env, check=True, capture_output=True, timeout=1_800)
    npz, dec = work / "trades_2m.npz", work / "decisions_arbray.npy"
    times = []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", ARBRAY_RUN, str(npz), str(dec)], capture_output=True, text=True,
                              check=True, timeout=600)
        times.append(json.loads(proc.stdout)["run_s"])
    check = subprocess.run([str(PEERBENCH), "check", str(dec)], env=env, capture_output=True, text=True, check=False)
    run_s = statistics.median(times)
    rows = [{"engine": "arbray", "run_s_median": run_s, "events_per_s_median": 2_000_000 / run_s,
             "check": "OK" if check.returncode == 0 else "DIFFERENT"}]
    for name in peers:
        r = peer(name, runs, env)
        if r is not None:
            rows.append({"engine": r["engine"], "run_s_median": r["run_s_median"],
                         "events_per_s_median": r["events_per_s_median"], "check": "OK"})
    return rows


def bench_pipeline(hours: int, per_s: int) -> list[dict[str, Any]]:
    sys.path.insert(0, str(REPO))  # the synthetic-trade generator lives with the tests
    from arbray.backtest.engine import Backtest
    from arbray.replay.readers import open_input
    from arbray.scoring.presets import load_presets
    from tests.unit.backtest.synth import records, synth_trades

    configs = [c for c in load_presets() if "BTCUSDT" in c.applies_to]
    rows = []
    data = synth_trades(hours=hours, per_s=per_s)
    recs = list(records(*data))
    t0 = time.perf_counter()
    res = Backtest(configs).run([iter(recs)])
    dt = time.perf_counter() - t0
    rows.append({"input": f"synthetic {hours}h @{per_s}/s", "trades": res.trades_processed, "run_s": dt,
                 "trades_per_s": res.trades_processed / dt, "positions": len(res.machines())})
    if TARDIS.is_file():
        recs = list(open_input(TARDIS, 15_000))
        t0 = time.perf_counter()
        res = Backtest(configs).run([iter(recs)])
        dt = time.perf_counter() - t0
        rows.append({"input": "tardis BTCUSDT 2020-02-22 (2h, parsed beforehand)", "trades": res.trades_processed,
                     "run_s": dt, "trades_per_s": res.trades_processed / dt, "positions": len(res.machines())})
    return rows


def bench_sweep() -> list[dict[str, Any]]:
    import ray
    from arbray.actors.sweep import expand_grid, load_inputs, run_sweep, start_ray

    from arbray.backtest.engine import BacktestConfig
    from arbray.scoring.presets import preset_names

    names = [n for n in preset_names() if n.startswith("BTC_")]
    configs = expand_grid({"strategies": names})
    data = load_inputs([str(RECORDING)], 15_000)
    rows = []
    for cpus in (1, 2):
        start_ray(cpus)
        refs = {"btcusdt_20240808": ray.put(data)}
        t0 = time.perf_counter()
        out = run_sweep(configs, BacktestConfig(), refs, per_task=3)
        rows.append({"workers": cpus, "configs": len(out), "run_s": time.perf_counter() - t0})
        ray.shutdown()
    rows[1]["speedup"] = rows[0]["run_s"] / rows[1]["run_s"]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--peers", default="numpy,hftbacktest", help="peerbench engines to run (comma list, or '')")
    ap.add_argument("--hours", type=int, default=6)
    ap.add_argument("--per-s", type=int, default=20)
    ap.add_argument("--skip-cvd", action="store_true")
    ap.add_argument("--skip-sweep", action="store_true")
    a = ap.parse_args()
    if not a.skip_cvd:
        print("## cvd rule (2,000,000 trades)")
        for r in bench_cvd(a.runs, [p for p in a.peers.split(",") if p]):
            print(json.dumps(r))
    print("## full pipeline (every preset that trades BTCUSDT: 18 control + 5 legacy, one core)")
    for r in bench_pipeline(a.hours, a.per_s):
        print(json.dumps(r))
    if not a.skip_sweep:
        print("## sweep on local Ray (18 BTC control presets, btcusdt_20240808)")
        for r in bench_sweep():
            print(json.dumps(r))


if __name__ == "__main__":
    main()
