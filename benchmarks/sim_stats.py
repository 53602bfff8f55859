"""Compare basic statistics of a generated market with the real hftbacktest recordings, and time the generator.

Both sides go through the same code: ``arbray.replay.readers.read_hftbacktest`` and
``arbray.marketdata.parser.BinanceParser`` feed a collecting sink, so the comparison measures what
the engine sees. Statistics per symbol: trade messages/s, taker-size quantiles, spread in ticks
(bookTicker), 1-minute volatility (from 10-second log returns of the bookTicker mid, scaled by
sqrt(6), because the real sessions last only 5-9 minutes), depth messages/s, depth levels/s and
bookTicker messages/s. Prints a Markdown table and the generator's lines/s.

    /work/venv/bin/python benchmarks/sim_stats.py [--minutes 30] [--seed 1] [--real DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arbray.marketdata.events import DepthUpdate, Event
from arbray.marketdata.parser import BinanceParser
from arbray.replay.readers import read_hftbacktest
from arbray.sim.model import MarketModelConfig
from arbray.sim.recording import generate

TICKS = {"BTCUSDT": 0.1, "ETHUSDT": 0.01}


@dataclass
class _Collect:
    """A parser sink (router and symbol sink in one) that keeps what the statistics need."""

    trade_ms: list[int] = field(default_factory=list)
    qty: list[float] = field(default_factory=list)
    bt_ms: list[int] = field(default_factory=list)
    bid: list[float] = field(default_factory=list)
    ask: list[float] = field(default_factory=list)
    depth_ms: list[int] = field(default_factory=list)
    levels: int = 0

    def route(self, symbol: str) -> _Collect:
        return self

    def on_trade(self, ts: int, price: float, qty: float, buyer_maker: bool, tid: int, kind: str, recv: int) -> None:
        self.trade_ms.append(ts)
        self.qty.append(qty)

    def on_book_ticker(self, uid: int, ts: int, bid: float, bq: float, ask: float, aq: float, recv: int) -> None:
        self.bt_ms.append(ts)
        self.bid.append(bid)
        self.ask.append(ask)

    def on_event(self, ev: Event) -> None:
        if isinstance(ev, DepthUpdate):
            self.depth_ms.append(ev.transact_ms)
            self.levels += len(ev.bids) + len(ev.asks)


def collect(paths: list[Path]) -> dict[str, _Collect]:
    """Parse recordings into one collector per symbol."""
    out: dict[str, _Collect] = {}

    class Router:
        def route(self, symbol: str) -> _Collect:
            return out.setdefault(symbol, _Collect())

    parser = BinanceParser(Router())  # type: ignore[arg-type]
    for p in paths:
        for _, _, payload in read_hftbacktest(p):
            obj, recv, hint = payload  # type: ignore[misc]
            parser.feed_obj(obj, recv, hint)
    return out


def stats(c: _Collect, tick: float) -> dict[str, float]:
    """The comparison statistics of one symbol."""
    span_s = (max(c.bt_ms[-1], c.trade_ms[-1]) - min(c.bt_ms[0], c.trade_ms[0])) / 1000.0
    q = np.asarray(c.qty)
    bid, ask, ms = np.asarray(c.bid), np.asarray(c.ask), np.asarray(c.bt_ms)
    spread = np.rint((ask - bid) / tick)
    mid = (bid + ask) / 2.0
    buckets = ms // 10_000
    last = np.r_[np.nonzero(np.diff(buckets))[0], len(buckets) - 1]
    r10 = np.diff(np.log(mid[last]))
    return {
        "span_min": span_s / 60.0,
        "trades_s": len(c.trade_ms) / span_s,
        "q50": float(np.quantile(q, 0.5)),
        "q90": float(np.quantile(q, 0.9)),
        "q99": float(np.quantile(q, 0.99)),
        "spread_mean": float(spread.mean()),
        "spread_1tick": float((spread <= 1).mean()),
        "vol_1m_bp": float(r10.std(ddof=1) * np.sqrt(6.0) * 1e4) if len(r10) > 2 else float("nan"),
        "depth_s": len(c.depth_ms) / span_s,
        "levels_s": c.levels / span_s,
        "bookticker_s": len(c.bt_ms) / span_s,
    }


def _row(name: str, s: dict[str, float]) -> str:
    return (f"| {name} | {s['span_min']:.1f} | {s['trades_s']:.0f} | {s['q50']:.4g} / {s['q90']:.4g} / "
            f"{s['q99']:.4g} | {s['spread_mean']:.2f} ({s['spread_1tick'] * 100:.0f}% at 1) | "
            f"{s['vol_1m_bp']:.1f} | {s['depth_s']:.1f} | {s['levels_s']:.0f} | {s['bookticker_s']:.0f} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--minutes", type=float, default=30.0, help="market minutes to generate")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--real", default=str(Path(__file__).resolve().parents[2] / "shared/data/real/hftbacktest/usdm"))
    args = ap.parse_args(argv)
    real = Path(args.real)
    print("| source | minutes | trades/s | size p50 / p90 / p99 | spread ticks | 1-min vol (bp) "
          "| depth msgs/s | depth levels/s | bookTicker/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    sessions: dict[str, list[Path]] = {}
    for p in sorted(real.glob("*_2024*.gz")):
        sym, day = p.name.split("_")[0].upper(), p.name.split("_")[1][:8]
        key = f"{sym} {'20240718-19' if day in ('20240718', '20240719') else day}"
        sessions.setdefault(key, []).append(p)
    for key, paths in sessions.items():
        sym = key.split()[0]
        print(_row(f"real {key}", stats(collect(paths)[sym], TICKS[sym])))
    cfg = MarketModelConfig(symbols=("BTCUSDT", "ETHUSDT"), hours=args.minutes / 60.0, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sim.gz"
        t0 = time.perf_counter()
        _, lines = generate(cfg, out)
        elapsed = time.perf_counter() - t0
        got: dict[str, Any] = collect([out])
    for sym in cfg.symbols:
        print(_row(f"sim {sym} seed {args.seed}", stats(got[sym], TICKS[sym])))
    market_s = cfg.hours * 3600.0
    print(f"\ngenerator: {lines} lines ({lines / market_s:.0f}/s of market time) for {len(cfg.symbols)} symbols, "
          f"{args.minutes:g} market minutes in {elapsed:.1f} s wall = {lines / elapsed:,.0f} lines/s, "
          f"{market_s / elapsed:.0f}x real time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
