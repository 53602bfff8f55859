"""``arbray sim generate``: write hours of a simulated USD-M market as a replayable recording.

``arbray sim generate --symbols BTCUSDT,ETHUSDT --hours 6 --seed 1 --out FILE.gz`` runs the market
model (``arbray.sim.model``) and writes an hftbacktest collector file that ``arbray replay`` and
``arbray backtest`` read like a real recording; a JSON summary line goes to stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import orjson

from arbray.sim.model import MarketModelConfig
from arbray.sim.recording import generate


def _cmd_generate(args: argparse.Namespace) -> int:
    symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
    cfg = MarketModelConfig(symbols=symbols, hours=args.hours, seed=args.seed, step_ms=args.step_ms,
                            rate_scale=args.rate_scale, initial_regime=args.regime)
    started = time.perf_counter()
    model, lines = generate(cfg, args.out)
    elapsed = time.perf_counter() - started
    summary = {
        "out": args.out,
        "lines": lines,
        "seconds": round(elapsed, 3),
        "lines_per_s": round(lines / elapsed) if elapsed > 0 else None,
        "market_hours": args.hours,
        "regimes": [[t, r] for t, r in model.regime_log],
        "symbols": {
            s: {"trades": st.trades, "depth_updates": st.depth_updates, "book_tickers": st.book_tickers,
                "liquidations": st.liquidations, "force_orders": st.force_orders,
                "funding_settlements": [[t, r] for t, r in st.funding]}
            for s, st in model.stats.items()
        },
    }
    sys.stdout.buffer.write(orjson.dumps(summary) + b"\n")
    return 0


def register(subparsers: Any) -> None:
    """Add ``sim generate`` to the top-level ``arbray`` parser."""
    sim = subparsers.add_parser("sim", help="the market simulator")
    sub = sim.add_subparsers(dest="sim_command", required=True)
    g = sub.add_parser("generate", help="generate a recording of a simulated USD-M market")
    g.add_argument("--symbols", default="BTCUSDT", help="comma-separated symbols, e.g. BTCUSDT,ETHUSDT")
    g.add_argument("--hours", type=float, default=1.0, help="market time to generate")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--step-ms", type=int, default=50, help="model time step (one depth update at most)")
    g.add_argument("--rate-scale", type=float, default=1.0, help="scale every trade and maker rate")
    g.add_argument("--regime", choices=("calm", "trend", "crash"), default="calm", help="initial regime")
    g.add_argument("--out", required=True, help="output file (.gz for gzip)")
    g.set_defaults(func=_cmd_generate)
