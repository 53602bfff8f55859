"""Seeded synthetic perpetual klines, for scanning a large universe without an exchange or simulator.

Each symbol's log price is an AR(1)-in-returns process r_t = φ·r_{t−1} + σ·ε_t with its own φ
(mean-reverting to trending), σ and drift, so factor values spread across the universe. Bars carry
taker-buy volume and open interest as well, so every kline factor is exercised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

from arbray.screener.data import SymbolKlines
from arbray.screener.models import timeframe_minutes


def synthetic_symbol(name: str, bars: int, rng: np.random.Generator, timeframe: str = "5m",
                     start_ms: int = 1_767_225_600_000) -> SymbolKlines:
    """One symbol's klines from the generator (``rng`` decides φ, σ, drift, price and volume level)."""
    phi = rng.uniform(-0.4, 0.4)
    sigma = rng.uniform(0.001, 0.01)
    drift = rng.normal(0.0, 0.0005)
    eps = rng.standard_normal(bars)
    r = np.empty(bars)
    prev = 0.0
    for t in range(bars):
        prev = phi * prev + sigma * eps[t]
        r[t] = prev + drift
    close = rng.uniform(0.01, 50_000.0) * np.exp(np.cumsum(r))
    open_ = np.concatenate([[close[0] * np.exp(-r[0])], close[:-1]])
    wick = np.abs(rng.normal(0.0, sigma, (2, bars))) * close
    high = np.maximum(open_, close) + wick[0]
    low = np.maximum(np.minimum(open_, close) - wick[1], 1e-12)
    volume = rng.lognormal(np.log(1e6 / close.mean()), 0.5, bars)
    buy_share = np.clip(0.5 + 5.0 * r + rng.normal(0.0, 0.05, bars), 0.0, 1.0)
    oi = volume.mean() * 20.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, bars)))
    ts = start_ms + np.arange(bars, dtype=np.int64) * int(timeframe_minutes(timeframe) * 60_000)
    return SymbolKlines(name, timeframe, ts, open_, high, low, close, volume, taker_buy=volume * buy_share,
                        open_interest=oi, funding=rng.normal(0.0001, 0.0002, 9))


def synthetic_universe(n: int, bars: int = 300, seed: int = 7, timeframe: str = "5m") -> list[SymbolKlines]:
    """``n`` symbols; the first two are BTCUSDT and ETHUSDT (references for β/ρ), the rest SYN0002USDT…"""
    rng = np.random.default_rng(seed)
    names = ["BTCUSDT", "ETHUSDT", *(f"SYN{i:04d}USDT" for i in range(2, n))][:n]
    return [synthetic_symbol(name, bars, rng, timeframe) for name in names]


def write_feather_universe(folder: Path, symbols: list[SymbolKlines]) -> list[Path]:
    """Write each symbol as a freqtrade-named Feather file (with taker-buy volume and open interest columns)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in symbols:
        cols = {
            "date": pa.array(s.ts_ms, pa.timestamp("ms", tz="UTC")), "open": s.open, "high": s.high, "low": s.low,
            "close": s.close, "volume": s.volume,
        }
        if s.taker_buy is not None:
            cols["taker_buy_volume"] = s.taker_buy
        if s.open_interest is not None:
            cols["open_interest"] = s.open_interest
        base = s.symbol.removesuffix("USDT")
        path = folder / f"{base}_USDT_USDT-{s.timeframe}-futures.feather"
        feather.write_feather(pa.table(cols), path)
        paths.append(path)
    return paths
