"""The live runtime on Ray under load: CPU, memory, ingest rate and signal-to-order latency.

Runs ``arbray run`` in mode ``sim`` (orders go to the simulator's trading API over signed REST) on a
private local Ray for a bounded time, with N symbols from the simulator's market model at its
default (BTCUSDT-like) rates, an eager strategy per symbol and a short evaluation interval so that
orders happen. Reports:

- CPU of every Ray process of the run as a share of one core, with and without the simulator (which
  stands in for Binance), and per actor;
- memory (RSS and PSS) of those processes;
- messages ingested per second (and the simulator's own count of what it sent);
- latency from the local receive time of the message that triggered an order (the boundary-crossing
  message for an entry, the trade for an exit) to the order reaching the simulator's trading API,
  p50/p99, measured on one clock (same machine).

The baseline in the same run is the idle cluster (Ray's own processes with no arbray actor), so the
CPU figure attributable to arbray is the difference. One JSON line at the end.

    .venv/bin/python benchmarks/bench_runtime.py --symbols BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT --seconds 120
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

EAGER = {"kind": "factory", "direction": "both", "cvd_fast_window": "5m", "cvd_slow_window": "30m",
         "weight_direction": 55, "weight_env": 25, "weight_aux": 15, "weight_momentum": 5, "entry_score": 60,
         "gate_vol_enabled": False, "gate_cvd_enabled": False, "gate_whale_enabled": False,
         "gate_obi_enabled": False, "sl_atr_multiplier": 0.5, "tp1_ratio": 0.3, "tp2_ratio": 0.5,
         "timeout_minutes": 30, "flip_threshold": 95}


TICKS = os.sysconf("SC_CLK_TCK")


def ray_processes(session_dir: str) -> list[int]:
    """Pids of every process of this run's Ray (those whose command line names its session folder, and
    the workers it started), read from /proc (Linux)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if session_dir in cmd or cmd.startswith("ray::"):
            out.append(int(d.name))
    return out


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    out: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
        except (OSError, IndexError, ValueError):
            continue
    return out


def memory(pids: list[int]) -> tuple[float, float]:
    """Total RSS and PSS in MiB (smaps_rollup)."""
    rss = pss = 0.0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return rss / 1024, pss / 1024


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import ray
    from arbray.actors.control import ActorRuntimeControl
    from arbray.actors.run import final_summary, launch, start_ray, stop, stop_feeds

    from arbray.cli_run import build_config, register
    from arbray.venue.client_ids import wire_id

    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="bench_runtime_"))
    files = []
    for sym in symbols:
        p = tmp / f"eager_{sym}.yaml"
        p.write_text(yaml.safe_dump({**EAGER, "strategy_id": f"eager_{sym.lower()}", "symbol": sym}))
        files.append(str(p))
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    argv = ["run", "--mode", "sim", "--symbols", ",".join(symbols), "--every", args.every, "--no-api",
            "--history-hours", "6", "--rate-scale", str(args.rate_scale),
            "--strategy-actors", str(args.strategy_actors)]
    if not args.with_screener:
        argv.append("--no-screener")
    for f in files:
        argv += ["--strategy", f]
    cfg = build_config(parser.parse_args(argv))
    session = str(tmp / "ray")
    start_ray(None, 2, dashboard=False, metrics_port=None, temp_dir=session)
    await asyncio.sleep(3)
    idle = ray_processes(session)
    c0 = cpu_seconds(idle)
    await asyncio.sleep(args.idle_seconds)
    idle_cpu = sum(cpu_seconds(idle).get(pid, 0) - c for pid, c in c0.items()) / args.idle_seconds
    idle_rss, idle_pss = memory(idle)

    run_ = await launch(cfg, f"sqlite:///{tmp / 'journal.db'}")
    pids = {name: await h.pid.remote() for name, h in run_.handles.items()}
    await asyncio.sleep(args.warmup_seconds)  # boots, warm-up, first boundaries
    control = ActorRuntimeControl("arbray")
    procs = ray_processes(session)
    s0 = await control.stats()
    m0 = s0["messages"]
    sent0 = sum((await run_.handles["sim_exchange"].state.remote())["sent"].values())
    c1, t1 = cpu_seconds(procs), time.monotonic()
    await asyncio.sleep(args.seconds)
    c2, t2 = cpu_seconds(procs), time.monotonic()
    stats = await control.stats()
    sent1 = sum((await run_.handles["sim_exchange"].state.remote())["sent"].values())
    rss, pss = memory(procs)
    wall = t2 - t1
    per_pid = {pid: (c2.get(pid, c) - c) / wall for pid, c in c1.items()}
    total = sum(per_pid.values())
    by_actor = {name: round(100 * per_pid.get(pid, 0.0), 1) for name, pid in pids.items()}
    sim_share = per_pid.get(pids.get("sim_exchange", -1), 0.0)

    lat = await run_.handles["position_manager"].order_latency.remote()
    arrivals = await run_.handles["sim_exchange"].order_arrivals.remote()
    prefix = "a" + run_.instance.rsplit("-", 1)[-1][:6]
    to_sim: dict[str, list[float]] = {"BoundaryItem": [], "TradesItem": []}
    to_submit: dict[str, list[float]] = {"BoundaryItem": [], "TradesItem": []}
    for cid, trig_ns, sent_ns, kind in lat:
        if not trig_ns:  # a reaction to a fill or a command: no market message behind it
            continue
        to_submit[kind].append((sent_ns - trig_ns) / 1e6)
        arr = arrivals.get(wire_id(cid, prefix))
        if arr is not None:
            to_sim[kind].append((arr - trig_ns) / 1e6)
    everything = to_sim["BoundaryItem"] + to_sim["TradesItem"]
    scored = [(s["trigger_to_scored_ms_p50"], s["trigger_to_scored_ms_p99"]) for s in stats["symbol_states"]]
    await stop_feeds(run_)
    summary = await final_summary(run_, "benchmark")
    await stop(run_)
    ray.shutdown()
    return {
        "symbols": symbols, "seconds": round(wall, 1), "every": args.every,
        "rate_scale": args.rate_scale, "screener": args.with_screener,
        "ingest_msgs_per_s": round((stats["messages"] - m0) / wall, 1),
        "ingest_msgs_per_s_by_symbol_state": [
            round((b["messages"] - a["messages"]) / wall, 1)
            for a, b in zip(s0["symbol_states"], stats["symbol_states"], strict=True)],
        "simulator_sent_msgs_per_s": round((sent1 - sent0) / wall, 1),
        "cpu_pct_of_one_core_all_ray": round(100 * total, 1),
        "cpu_pct_of_one_core_without_simulator": round(100 * (total - sim_share), 1),
        "cpu_pct_idle_cluster_baseline": round(100 * idle_cpu, 1),
        "cpu_pct_arbray_without_simulator_minus_idle": round(100 * (total - sim_share - idle_cpu), 1),
        "cpu_pct_by_actor": by_actor,
        "memory_rss_mib": round(rss, 1), "memory_pss_mib": round(pss, 1),
        "memory_idle_cluster_pss_mib": round(idle_pss, 1), "memory_idle_cluster_rss_mib": round(idle_rss, 1),
        "orders": len(lat), "orders_with_a_market_trigger_at_simulator": len(everything),
        "trigger_to_simulator_ms_p50": pct(everything, 0.5), "trigger_to_simulator_ms_p99": pct(everything, 0.99),
        "by_trigger": {
            ("signal_at_boundary" if kind == "BoundaryItem" else "trade_batch"): {
                "orders": len(xs), "to_simulator_ms_p50": pct(xs, 0.5), "to_simulator_ms_p99": pct(xs, 0.99),
                "to_pm_decision_ms_p50": pct(to_submit[kind], 0.5),
                "to_pm_decision_ms_p99": pct(to_submit[kind], 0.99)} for kind, xs in to_sim.items()},
        "trigger_to_scored_ms_p50_p99_by_symbol_state": scored,
        "summary": summary, "load_average": os.getloadavg(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT")
    ap.add_argument("--seconds", type=float, default=120.0, help="measured window")
    ap.add_argument("--warmup-seconds", type=float, default=20.0)
    ap.add_argument("--idle-seconds", type=float, default=10.0, help="idle-cluster baseline window")
    ap.add_argument("--every", default="1s", help="evaluation interval")
    ap.add_argument("--rate-scale", type=float, default=1.0, help="simulator trade/maker rate multiplier")
    ap.add_argument("--strategy-actors", type=int, default=1, help="Strategy actors in the pool")
    ap.add_argument("--with-screener", action="store_true", help="also run the market-wide screener actor")
    args = ap.parse_args()
    for k, v in {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
                 "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}.items():
        os.environ.setdefault(k, v)
    print(orjson.dumps(asyncio.run(run(args)), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
