"""Synthetic history before a live simulated session: 1m klines, open interest, ratios, funding.

Why: a client's first run warms ATR(14) on 5m bars and its 5-minute indicators from REST before
the first live trade, so the simulator must answer ``/fapi/v1/klines`` and the statistics
endpoints for the hours *before* the live start. The history is drawn from the same
regime-switching market factor and per-symbol betas as ``arbray.sim.model`` (calm / trend / crash,
the alt's beta and own noise), vectorised over minutes, and shifted so that the last close equals
the live start price: the live session continues it without a jump.

The long/short account ratio and the top-trader position ratio are *documented synthetic series*
(Binance publishes no formula). ``RatioProcess`` drives both the history and the live session:

- global long/short account ratio: long share ``0.5 + a``, ``a ← φ·a − κ_r·r + σ·ε`` — retail
  accounts fade price moves (a falling 5-minute return ``r`` raises the share of long accounts);
- top-trader long/short position ratio: long share ``0.5 + b``, ``b ← φ·b + κ_f·imb + σ·ε`` — top
  traders position with the taker flow (``imb`` = (buy − sell) / (buy + sell) taker volume);
- both shares are clipped to [0.2, 0.8]; the ratio is share / (1 − share).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from arbray.sim.model import HOUR_MS, MarketModelConfig

MINUTE_MS = 60_000
FIVE_MIN_MS = 300_000
# What the live model trades per minute, measured (seed 1, 10 calm minutes at rate_scale 1): fills per
# taker order arrival (BTCUSDT 2.8, ETHUSDT 2.4 — orders walk levels and informed takers add fills) and
# quantity per fill in units of the spec's median taker size (BTCUSDT 6.6, ETHUSDT 8.8). They size the
# synthetic bars so that history and live volume match.
FILLS_PER_ORDER = 2.6
QTY_PER_FILL_OVER_MEDIAN = 7.5

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RatioProcess:
    """The synthetic ratio dynamics shared by history and live sessions (see the module doc)."""

    phi: float = 0.97
    kappa_ret: float = 2.0
    kappa_flow: float = 0.02
    sigma: float = 0.004

    def step(self, a: float, b: float, ret: float, imbalance: float, z1: float, z2: float) -> tuple[float, float]:
        """Advance both states by one 5-minute period."""
        a = self.phi * a - self.kappa_ret * ret + self.sigma * z1
        b = self.phi * b + self.kappa_flow * imbalance + self.sigma * z2
        return max(-0.3, min(0.3, a)), max(-0.3, min(0.3, b))

    @staticmethod
    def shares(a: float, b: float) -> tuple[float, float]:
        """(long account share, top-trader long position share)."""
        return 0.5 + a, 0.5 + b


@dataclass(frozen=True, slots=True)
class SymbolHistory:
    """One symbol's synthetic history, in integer ticks and steps like the live exchange."""

    bars: I64  # (n, 12): open ms, o, h, l, c (ticks), volume (steps), quote (ticks·steps), trades,
    # taker buy volume (steps), taker buy quote, first trade id, last trade id (-1: none)
    times: I64  # the 5-minute grid of open interest and ratios (the last one is the live start)
    oi: F64  # open interest (base asset)
    oi_value: F64  # open interest × close (quote asset)
    account_long: F64  # long account share, global
    position_long: F64  # top-trader long position share
    ratio_state: tuple[float, float]  # RatioProcess state at the end (the live session continues it)
    funding: list[tuple[int, float, float]]  # (funding time, rate, mark price)


def _regimes(cfg: MarketModelConfig, minutes: int, rng: np.random.Generator) -> tuple[F64, F64, F64]:
    """Per-minute (volatility, drift, activity multiplier) from the model's regime chain."""
    vol = np.empty(minutes)
    drift = np.empty(minutes)
    mult = np.empty(minutes)
    u = rng.random(minutes)
    sign = np.where(rng.random(minutes) < 0.5, 1.0, -1.0)
    p_trend = cfg.calm_to_trend_per_hour / 60.0
    p_crash = cfg.calm_to_crash_per_hour / 60.0
    regime, trend_sign = cfg.initial_regime, 1.0
    for k in range(minutes):  # a Markov chain: sequential by nature, 2,880 steps for 48 h
        if regime == "calm":
            if u[k] < p_crash:
                regime = "crash"
            elif u[k] < p_crash + p_trend:
                regime, trend_sign = "trend", float(sign[k])
        elif regime == "trend":
            if u[k] < 1.0 / cfg.trend_mean_minutes:
                regime = "calm"
        elif u[k] < 1.0 / cfg.crash_mean_minutes:
            regime = "calm"
        if regime == "calm":
            vol[k], drift[k], mult[k] = cfg.vol_per_min, 0.0, 1.0
        elif regime == "trend":
            vol[k], drift[k] = cfg.vol_per_min * cfg.trend_vol_mult, trend_sign * cfg.trend_drift_per_min
            mult[k] = cfg.trend_rate_mult
        else:
            vol[k], drift[k] = cfg.vol_per_min * cfg.crash_vol_mult, cfg.crash_drift_per_min
            mult[k] = cfg.crash_rate_mult
    return vol, drift, mult


def synthesize(cfg: MarketModelConfig, end_ms: int, end_ticks: dict[str, int], hours: float,
               seed: int, ratios: RatioProcess = RatioProcess()) -> dict[str, SymbolHistory]:
    """``hours`` of history for every symbol of ``cfg``, ending at ``end_ms`` (a minute boundary)
    with close ``end_ticks[symbol]`` (the live start price in ticks)."""
    if end_ms % MINUTE_MS:
        raise ValueError("history must end on a minute boundary")
    minutes = round(hours * 60)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0x4849_5354])))
    out: dict[str, SymbolHistory] = {}
    if minutes <= 0:
        for sym in cfg.symbols:
            out[sym] = SymbolHistory(np.zeros((0, 12), np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0),
                                     np.zeros(0), np.zeros(0), (0.0, 0.0), [])
        return out
    vol, drift, mult = _regimes(cfg, minutes, rng)
    mkt = drift + vol * rng.standard_normal(minutes)
    open_ms = end_ms - MINUTE_MS * np.arange(minutes, 0, -1, dtype=np.int64)
    for sym in cfg.symbols:
        spec = cfg.spec(sym)
        tick = 10.0 ** -spec.price_decimals
        ret = spec.beta * mkt + spec.idio_vol_per_min * rng.standard_normal(minutes)
        # log close of each minute, anchored so that the last close is the live start price
        log_close = math.log(end_ticks[sym] * tick) - (np.cumsum(ret[::-1])[::-1] - ret)
        log_open = log_close - ret
        sigma = np.sqrt(np.square(vol * spec.beta) + spec.idio_vol_per_min ** 2)
        excursion_hi = np.abs(rng.standard_normal(minutes)) * sigma * 0.5
        excursion_lo = np.abs(rng.standard_normal(minutes)) * sigma * 0.5
        o = np.rint(np.exp(log_open) / tick).astype(np.int64)
        c = np.rint(np.exp(log_close) / tick).astype(np.int64)
        c[-1] = end_ticks[sym]
        o[1:] = c[:-1]  # each bar opens at the previous close, as live bars do
        h = np.maximum(np.maximum(o, c), np.rint(np.exp(np.maximum(log_open, log_close) + excursion_hi) / tick)
                       .astype(np.int64))
        lo = np.minimum(np.minimum(o, c), np.rint(np.exp(np.minimum(log_open, log_close) - excursion_lo) / tick)
                        .astype(np.int64))
        lo = np.maximum(lo, 1)
        n = rng.poisson(spec.trade_rate * cfg.rate_scale * 60.0 * FILLS_PER_ORDER * mult).astype(np.int64)
        qscale = 10 ** spec.qty_decimals
        v = np.rint(n * spec.median_qty * QTY_PER_FILL_OVER_MEDIAN * qscale
                    * rng.lognormal(0.0, 0.35, minutes)).astype(np.int64)
        v = np.where(n > 0, np.maximum(v, n), 0)
        buy_share = np.clip(0.5 + 0.5 * np.tanh(ret / np.maximum(sigma, 1e-12)), 0.05, 0.95)
        vb = np.rint(v * buy_share).astype(np.int64)
        mid = (h + lo) // 2
        q = v * mid
        qb = vb * mid
        bars = np.stack([open_ms, o, h, lo, c, v, q, n, vb, qb, np.full(minutes, -1), np.full(minutes, -1)],
                        axis=1).astype(np.int64)
        out[sym] = _indicators(cfg, sym, bars, ret, rng, ratios, end_ms)
    return out


def _indicators(cfg: MarketModelConfig, sym: str, bars: I64, ret: F64, rng: np.random.Generator,
                ratios: RatioProcess, end_ms: int) -> SymbolHistory:
    """Open interest and ratios on the 5-minute grid, funding on the 8-hour grid, inside the bars."""
    spec = cfg.spec(sym)
    tick = 10.0 ** -spec.price_decimals
    first_open = int(bars[0, 0])
    last = end_ms - end_ms % FIVE_MIN_MS
    periods = max(0, (last - first_open) // FIVE_MIN_MS)
    times = last - FIVE_MIN_MS * np.arange(periods - 1, -1, -1, dtype=np.int64)
    k_end = (times - first_open) // MINUTE_MS - 1  # the bar that closes at each grid time
    log_c = np.log(bars[:, 4].astype(float))
    cum_v = np.concatenate([[0], np.cumsum(bars[:, 5])])
    cum_vb = np.concatenate([[0], np.cumsum(bars[:, 8])])
    r5 = log_c[k_end] - np.log(bars[k_end - 4, 1].astype(float))
    v = (cum_v[k_end + 1] - cum_v[k_end - 4]).astype(float)
    vb = (cum_vb[k_end + 1] - cum_vb[k_end - 4]).astype(float)
    imb = np.where(v > 0, (2 * vb - v) / np.maximum(v, 1.0), 0.0)
    z = rng.standard_normal((2, periods))
    acc = np.empty(periods)
    pos = np.empty(periods)
    a = b = 0.0
    for k in range(periods):
        a, b = ratios.step(a, b, float(r5[k]), float(imb[k]), float(z[0, k]), float(z[1, k]))
        acc[k], pos[k] = ratios.shares(a, b)
    # open interest: a log AR(1) around the spec's level, anchored at the live start level
    eps = rng.standard_normal(periods) * 0.004 + 2.0 * np.abs(r5)
    log_oi = np.empty(periods)
    x = 0.0
    for k in range(periods - 1, -1, -1):  # backwards from the anchor so the last point is exact
        log_oi[k] = x
        x = 0.995 * x - eps[k]
    oi = spec.open_interest * np.exp(log_oi)
    oi_value = oi * bars[k_end, 4] * tick
    # funding: settlements every funding_interval_h inside the window, rate = premium + clamp(...)
    period_ms = cfg.funding_interval_h * HOUR_MS
    funding: list[tuple[int, float, float]] = []
    basis = cfg.basis_mean
    for ft in range((first_open // period_ms + 1) * period_ms, end_ms + 1, period_ms):
        basis = cfg.basis_mean + (basis - cfg.basis_mean) * 0.5 + cfg.basis_vol * float(rng.standard_normal())
        rate = max(-cfg.funding_cap, min(cfg.funding_cap,
                                         basis + max(-0.0005, min(0.0005, cfg.interest_rate - basis))))
        row = (ft - first_open) // MINUTE_MS - 1
        funding.append((ft, rate, float(bars[row, 4]) * tick))
    return SymbolHistory(bars, times, oi, oi_value, acc, pos, (a, b), funding)
