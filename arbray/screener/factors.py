"""Kline factor library, vectorised over symbols × bars.

Every function takes arrays of shape ``(S, N)`` (S symbols, N bars, oldest first) and returns one
value per symbol, shape ``(S,)``, computed over the most recent bars. Inputs a factor cannot be
computed from give NaN — never a stand-in constant — and ``compute_factors`` reports them as missing.

Formulas and units are listed in ``docs/screener.md``; each function's docstring repeats its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.signal import lfilter  # type: ignore[import-untyped]  # scipy ships no stubs here

from arbray.screener.data import SymbolKlines

HURST_WINDOWS: tuple[int, ...] = (10, 20, 30, 50, 100)
"""The short-grid research document's R/S window scheme (non-overlapping chunks of each size)."""


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """TR_t = max(H_t − L_t, |H_t − C_{t−1}|, |L_t − C_{t−1}|); TR_0 = H_0 − L_0. Price units, shape (S, N)."""
    prev = np.concatenate([close[:, :1], close[:, :-1]], axis=1)
    tr: np.ndarray = np.maximum(high - low, np.maximum(np.abs(high - prev), np.abs(low - prev)))
    tr[:, 0] = high[:, 0] - low[:, 0]
    return tr


def atr_wilder(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """Wilder ATR at the last bar: seed ATR_n = mean(TR_1..TR_n), then ATR_t = ATR_{t−1} + (TR_t − ATR_{t−1})/n.

    TR_0 (no previous close) is not used. Price units. NaN when fewer than n + 1 bars.
    """
    s, bars = close.shape
    if bars < n + 1:
        return np.full(s, np.nan)
    tr = true_range(high, low, close)[:, 1:]
    seed: np.ndarray = tr[:, :n].mean(axis=1)
    rest = tr[:, n:]
    if rest.shape[1] == 0:
        return seed
    # y_t = (1 − 1/n)·y_{t−1} + TR_t/n as a first-order IIR filter, started from the seed
    zi = ((1.0 - 1.0 / n) * seed)[:, None]
    y, _ = lfilter([1.0 / n], [1.0, -(1.0 - 1.0 / n)], rest, axis=1, zi=zi)
    return np.asarray(y[:, -1])


def natr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """NATR = 100 · ATR_n / C_last: average true range as percent of price per bar."""
    out: np.ndarray = 100.0 * atr_wilder(high, low, close, n) / close[:, -1]
    return out


def ker(close: np.ndarray, n: int = 10) -> np.ndarray:
    """Kaufman efficiency ratio = |C_t − C_{t−n}| / Σ_{i=t−n+1..t} |C_i − C_{i−1}|, dimensionless in [0, 1].

    1 = a straight move, 0 = pure back-and-forth. NaN when the path length is 0 or bars ≤ n.
    """
    if close.shape[1] <= n:
        return np.full(close.shape[0], np.nan)
    seg = close[:, -(n + 1):]
    path = np.abs(np.diff(seg, axis=1)).sum(axis=1)
    net = np.abs(seg[:, -1] - seg[:, 0])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(path > 0, net / path, np.nan)


def rs_by_window(series: np.ndarray, windows: Sequence[int] = HURST_WINDOWS) -> tuple[np.ndarray, np.ndarray]:
    """Mean rescaled range E[R/S]_w for each window w, shape (S, len(windows)).

    Per the document: the series is cut from its start into ⌊N/w⌋ non-overlapping chunks; in each
    chunk X = cumsum(y − mean), R = max X − min X, S = std(y, ddof=1), and chunks with S = 0 are
    skipped. Windows with w ≥ N, or without a usable chunk, give NaN. Returns (windows, E[R/S]).
    """
    s, n = series.shape
    ws = np.asarray(windows, dtype=np.float64)
    out = np.full((s, len(windows)), np.nan)
    for j, w in enumerate(windows):
        k = n // w
        if w >= n or k == 0:
            continue
        chunks = series[:, : k * w].reshape(s, k, w)
        dev = chunks - chunks.mean(axis=2, keepdims=True)
        x = np.cumsum(dev, axis=2)
        r = x.max(axis=2) - x.min(axis=2)
        sd = chunks.std(axis=2, ddof=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rs = np.where(sd > 0, r / sd, np.nan)
        valid = np.isfinite(rs)
        cnt = valid.sum(axis=1)
        tot = np.where(valid, rs, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, j] = np.where(cnt > 0, tot / cnt, np.nan)
    return ws, out


def hurst_rs(series: np.ndarray, windows: Sequence[int] = HURST_WINDOWS) -> np.ndarray:
    """Hurst exponent H = OLS slope of log E[R/S]_w on log w, over the windows that have a value.

    Dimensionless; H < 0.5 mean-reverting, 0.5 random, > 0.5 persistent. NaN when fewer than two
    windows qualify (the document's code returned a hard 0.5 there; arbray reports NaN instead).
    Apply it to increments (log returns): R/S of a price level is ≈ 1 for any random walk.
    """
    ws, rs = rs_by_window(series, windows)
    x = np.where(np.isfinite(rs), np.log(ws)[None, :], np.nan)
    y = np.log(rs)
    return _nan_ols_slope(x, y)


def _nan_ols_slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise OLS slope of y on x ignoring NaN pairs; NaN with fewer than two pairs or no spread in x."""
    ok = np.isfinite(x) & np.isfinite(y)
    cnt = ok.sum(axis=1)
    xz, yz = np.where(ok, x, 0.0), np.where(ok, y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = xz.sum(axis=1) / cnt, yz.sum(axis=1) / cnt
        dx = np.where(ok, x - mx[:, None], 0.0)
        dy = np.where(ok, y - my[:, None], 0.0)
        sxx = (dx * dx).sum(axis=1)
        slope = (dx * dy).sum(axis=1) / sxx
    return np.where((cnt >= 2) & (sxx > 0), slope, np.nan)


def log_returns(close: np.ndarray) -> np.ndarray:
    """r_t = ln(C_t / C_{t−1}), shape (S, N − 1)."""
    return np.diff(np.log(close), axis=1)


def trend_regression(close: np.ndarray, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """OLS of C on bar index over the last n bars: (slope / mean(C), R²).

    Normalised slope is the fitted drift as a fraction of the mean price per bar (1/bar); R² in [0, 1].
    NaN for a constant window (R² undefined) or fewer than 3 bars.
    """
    y = close if n is None else close[:, -n:]
    m = y.shape[1]
    if m < 3:
        nan = np.full(y.shape[0], np.nan)
        return nan, nan
    t = np.arange(m, dtype=np.float64) - (m - 1) / 2.0
    my = y.mean(axis=1)
    dy = y - my[:, None]
    sxx = float((t * t).sum())
    sxy = dy @ t
    syy = (dy * dy).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(syy > 0, sxy * sxy / (sxx * syy), np.nan)
    return sxy / sxx / my, r2


def ema_last(x: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average (α = 2/(span+1), seeded with the first value) at the last bar."""
    a = 2.0 / (span + 1)
    y, _ = lfilter([a], [1.0, -(1.0 - a)], x[:, 1:], axis=1, zi=((1.0 - a) * x[:, 0])[:, None])
    return np.asarray(y[:, -1]) if x.shape[1] > 1 else x[:, 0].copy()


def momentum_z(close: np.ndarray, k: int = 12) -> np.ndarray:
    """z = ln(C_t / C_{t−k}) / (σ_r · √k): the k-bar return in units of its own noise.

    σ_r = std of the 1-bar log returns over the whole panel window. Dimensionless.
    """
    r = log_returns(close)
    sd = r.std(axis=1, ddof=1)
    ret = np.log(close[:, -1] / close[:, -1 - k])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sd > 0, ret / (sd * np.sqrt(k)), np.nan)


def relative_volume(volume: np.ndarray, recent: int = 5, base: int = 20) -> np.ndarray:
    """rv = mean(V over the last ``recent`` bars) / mean(V over the ``base`` bars before them); ratio, 1 = usual."""
    b = volume[:, -(recent + base):-recent].mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, volume[:, -recent:].mean(axis=1) / b, np.nan)


def range_position(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 50) -> np.ndarray:
    """(C_t − min L) / (max H − min L) over the last n bars, in [0, 1] (0 = at the low, 1 = at the high)."""
    hi, lo = high[:, -n:].max(axis=1), low[:, -n:].min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(hi > lo, (close[:, -1] - lo) / (hi - lo), np.nan)


def trigger_bar(open_: np.ndarray, close: np.ndarray, volume: np.ndarray, atr: np.ndarray,
                vol_mult: float = 3.0, base: int = 20) -> np.ndarray:
    """1.0 when the last bar is a trigger bar (V_t > vol_mult · mean of the previous ``base`` volumes and
    |C_t − O_t| > ATR), else 0.0; NaN when ATR is NaN. Flag, dimensionless."""
    prev = volume[:, -(base + 1):-1].mean(axis=1)
    hit = (volume[:, -1] > vol_mult * prev) & (np.abs(close[:, -1] - open_[:, -1]) > atr)
    return np.where(np.isfinite(atr), hit.astype(np.float64), np.nan)


def cvd_features(
    close: np.ndarray, volume: np.ndarray, taker_buy: np.ndarray, n: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """From taker-buy base volume B and total V over the last n bars: (imbalance, divergence).

    Delta_t = 2·B_t − V_t (taker buys − taker sells); imbalance = Σ Delta / Σ V in [−1, 1].
    divergence = −sign(C_t − C_{t−n}) · imbalance in [−1, 1]: > 0 when the order flow opposes the
    price move (e.g. price up on net selling), < 0 when it confirms it.
    """
    d = (2.0 * taker_buy[:, -n:] - volume[:, -n:]).sum(axis=1)
    v = volume[:, -n:].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        imb = np.where(v > 0, d / v, np.nan)
    return imb, -np.sign(close[:, -1] - close[:, -n]) * imb


def beta_corr(returns: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """β = cov(r, r_ref)/var(r_ref) and Pearson ρ of each row's returns against one reference series."""
    dx = ref - ref.mean()
    dy = returns - returns.mean(axis=1, keepdims=True)
    sxx = float((dx * dx).sum())
    sxy = dy @ dx
    syy = (dy * dy).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = sxy / sxx if sxx > 0 else np.full(returns.shape[0], np.nan)
        corr = np.where(syy > 0, sxy / np.sqrt(sxx * syy), np.nan) if sxx > 0 else np.full(returns.shape[0], np.nan)
    return beta, corr


FACTOR_NAMES: tuple[str, ...] = (
    "atr", "natr", "ker", "hurst", "norm_slope", "r2", "ema_gap_atr", "momentum_z", "rel_volume", "range_pos",
    "quote_volume", "trigger_bar", "cvd_imbalance", "cvd_divergence", "oi_change", "ovr", "funding_last",
    "funding_mean", "basis", "beta_btc", "corr_btc", "beta_eth", "corr_eth", "spread_bps", "depth_usd", "liq_skew",
)
"""Every factor ``compute_factors`` returns, in output order."""

def compute_factors(
    panel: Sequence[SymbolKlines],
    btc: SymbolKlines | None = None,
    eth: SymbolKlines | None = None,
    window: int = 50,
    funding_lookback: int = 9,
) -> tuple[dict[str, np.ndarray], list[list[str]]]:
    """All factors for a panel of symbols with the same number of bars.

    Returns ``({factor: values (S,)}, missing)`` where ``missing[i]`` lists the inputs symbol ``i``
    lacked (its dependent factors are NaN). ``btc``/``eth`` are reference series for β/ρ; a symbol
    is compared only when its bar timestamps equal the reference's (otherwise ``*_reference`` is missing).
    """
    if not panel:
        return {k: np.empty(0) for k in FACTOR_NAMES}, []
    n = panel[0].bars
    if any(p.bars != n for p in panel):
        raise ValueError("compute_factors: every symbol in a panel must have the same number of bars")
    h = np.stack([p.high for p in panel])
    lo = np.stack([p.low for p in panel])
    c = np.stack([p.close for p in panel])
    v = np.stack([p.volume for p in panel])
    s = len(panel)
    nan = np.full(s, np.nan)
    f: dict[str, np.ndarray] = {}
    f["atr"] = atr_wilder(h, lo, c)
    f["natr"] = 100.0 * f["atr"] / c[:, -1]
    f["ker"] = ker(c, 10)
    r = log_returns(c)
    f["hurst"] = hurst_rs(r)
    f["norm_slope"], f["r2"] = trend_regression(c, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        f["ema_gap_atr"] = (ema_last(c, 20) - ema_last(c, 50)) / f["atr"]
    f["momentum_z"] = momentum_z(c, 12)
    f["rel_volume"] = relative_volume(v)
    f["range_pos"] = range_position(h, lo, c, window)
    f["quote_volume"] = (c[:, -window:] * v[:, -window:]).sum(axis=1)
    o = np.stack([p.open for p in panel])
    f["trigger_bar"] = trigger_bar(o, c, v, f["atr"])
    for k in ("cvd_imbalance", "cvd_divergence", "oi_change", "ovr", "funding_last", "funding_mean", "basis",
              "beta_btc", "corr_btc", "beta_eth", "corr_eth", "spread_bps", "depth_usd", "liq_skew"):
        f[k] = nan.copy()
    missing: list[set[str]] = [set() for _ in range(s)]

    tb_rows = [i for i, p in enumerate(panel) if p.taker_buy is not None]
    if tb_rows:
        tb = np.stack([panel[i].taker_buy for i in tb_rows])  # type: ignore[misc]
        f["cvd_imbalance"][tb_rows], f["cvd_divergence"][tb_rows] = cvd_features(c[tb_rows], v[tb_rows], tb, window)
    for i, p in enumerate(panel):
        if p.taker_buy is None:
            missing[i].add("taker_buy")
        if p.open_interest is not None and p.open_interest.size >= window:
            oi = p.open_interest
            f["oi_change"][i] = oi[-1] / oi[-window] - 1.0 if oi[-window] > 0 else np.nan
            f["ovr"][i] = oi[-1] * c[i, -1] / f["quote_volume"][i] if f["quote_volume"][i] > 0 else np.nan
        else:
            missing[i].add("open_interest")
        if p.funding is not None and p.funding.size:
            f["funding_last"][i] = p.funding[-1]
            f["funding_mean"][i] = float(p.funding[-funding_lookback:].mean())
        else:
            missing[i].add("funding")
        if p.spot_close is not None and p.spot_close > 0:
            f["basis"][i] = c[i, -1] / p.spot_close - 1.0
        else:
            missing[i].add("spot_close")
        if p.book is not None:
            f["spread_bps"][i], f["depth_usd"][i] = p.book.spread_bps, p.book.depth_usd
        else:
            missing[i].add("order_book")
        if p.liquidations is not None:
            tot = p.liquidations.long_usd + p.liquidations.short_usd
            f["liq_skew"][i] = (p.liquidations.short_usd - p.liquidations.long_usd) / tot if tot > 0 else 0.0
        else:
            missing[i].add("liquidations")
    for name, ref in (("btc", btc), ("eth", eth)):
        rows = [i for i, p in enumerate(panel)
                if ref is not None and ref.bars >= n and np.array_equal(ref.ts_ms[-n:], p.ts_ms)]
        if ref is not None and rows:
            beta, corr = beta_corr(r[rows], log_returns(ref.close[None, -n:])[0])
            f[f"beta_{name}"][rows], f[f"corr_{name}"][rows] = beta, corr
        for i in set(range(s)) - set(rows):
            missing[i].add(f"{name}_reference")
    return f, [sorted(m) for m in missing]

