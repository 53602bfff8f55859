"""Synthetic but realistic trade streams for backtest tests (the real recordings are too short for ATR)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from arbray.marketdata.events import TradeBatch
from arbray.replay.readers import Record

T0 = 1_700_000_000_000


def synth_trades(hours: int = 6, per_s: int = 20, seed: int = 1) -> tuple[np.ndarray, ...]:
    """A geometric random walk (prices stay positive) whose drift and taker imbalance switch every
    15 minutes, so CVD and price agree."""
    rng = np.random.default_rng(seed)
    n = hours * 3600 * per_s
    ts = T0 + np.sort(rng.integers(0, hours * 3_600_000, n))
    regime = np.repeat(rng.choice([-1, 1], size=hours * 4), n // (hours * 4) + 1)[:n]
    buy = rng.random(n) < 0.5 + 0.15 * regime
    log_steps = np.where(buy, 1, -1) * rng.exponential(0.6, n) / 50_000  # ~0.6 USD per trade at 50k
    px = np.round(50_000 * np.exp(np.cumsum(log_steps)), 1)
    qty = np.round(rng.exponential(0.05, n) + 0.001, 3)
    return ts, px, qty, ~buy


def records(ts: np.ndarray, px: np.ndarray, qty: np.ndarray, sell: np.ndarray, symbol: str = "BTCUSDT",
            align_ms: int = 15_000) -> Iterator[Record]:
    """``TradeBatch`` records that never cross an ``align_ms`` multiple (as the file readers emit)."""
    keys = ts // align_ms
    cuts = [0, *(np.flatnonzero(keys[1:] != keys[:-1]) + 1).tolist(), len(ts)]
    ids = np.arange(len(ts))
    for a, b in itertools.pairwise(cuts):
        yield int(ts[a]), a, TradeBatch.from_columns(symbol, ts[a:b], px[a:b], qty[a:b], sell[a:b], ids[a:b])
