"""Factor library against independent references: straightforward loops, a direct R/S, scipy's linregress."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import linregress  # type: ignore[import-untyped]

from arbray.screener.data import SymbolKlines, read_feather_klines
from arbray.screener.factors import (
    atr_wilder,
    beta_corr,
    compute_factors,
    cvd_features,
    hurst_rs,
    ker,
    log_returns,
    natr,
    trend_regression,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def real_klines(real_data: Path) -> list[SymbolKlines]:
    folder = real_data / "roshan7869_algotrading"
    names = ["klines_5m/DOGE_USDT_USDT-5m-futures.feather", "klines_1m/SUI_USDT_USDT-1m-futures.feather",
             "klines_1h/BTC_USDT_USDT-1h-futures.feather"]
    return [read_feather_klines(folder / n, max_bars=600) for n in names]


def _atr_loop(h: np.ndarray, lo: np.ndarray, c: np.ndarray, n: int) -> float:
    trs = [max(h[t] - lo[t], abs(h[t] - c[t - 1]), abs(lo[t] - c[t - 1])) for t in range(1, len(c))]
    atr = sum(trs[:n]) / n
    for tr in trs[n:]:
        atr = (atr * (n - 1) + tr) / n
    return float(atr)


def _rs_direct(y: np.ndarray, windows: tuple[int, ...] = (10, 20, 30, 50, 100)) -> float:
    """The research document's calculate_hurst_exponent, transcribed loop for loop."""
    pts = []
    for w in windows:
        if w >= len(y):
            continue
        vals = []
        for i in range(len(y) // w):
            sub = y[i * w:(i + 1) * w]
            x = np.cumsum(sub - np.mean(sub))
            s = np.std(sub, ddof=1)
            if s > 0:
                vals.append((np.max(x) - np.min(x)) / s)
        if vals:
            pts.append((w, np.mean(vals)))
    return float(linregress(np.log([w for w, _ in pts]), np.log([v for _, v in pts])).slope)


def test_atr_and_natr_match_a_loop_on_real_klines(real_klines: list[SymbolKlines]) -> None:
    for k in real_klines:
        for n in (7, 14):
            got = atr_wilder(k.high[None], k.low[None], k.close[None], n)[0]
            want = _atr_loop(k.high, k.low, k.close, n)
            assert got == pytest.approx(want, rel=1e-9)
            assert natr(k.high[None], k.low[None], k.close[None], n)[0] == pytest.approx(100 * want / k.close[-1])
    assert np.isnan(atr_wilder(np.ones((1, 5)), np.ones((1, 5)), np.ones((1, 5)), 14)[0])


def test_ker_matches_a_loop(real_klines: list[SymbolKlines]) -> None:
    for k in real_klines:
        c = k.close
        want = abs(c[-1] - c[-11]) / sum(abs(c[i] - c[i - 1]) for i in range(len(c) - 10, len(c)))
        assert ker(c[None], 10)[0] == pytest.approx(want)
    assert np.isnan(ker(np.ones((1, 20)), 10)[0])  # no path: undefined, not 0


def test_hurst_matches_direct_rs_on_real_returns(real_klines: list[SymbolKlines]) -> None:
    r = np.stack([log_returns(k.close[None])[0] for k in real_klines])
    got = hurst_rs(r)
    for i in range(len(real_klines)):
        assert got[i] == pytest.approx(_rs_direct(r[i]), abs=1e-10)


def test_hurst_on_series_of_known_character() -> None:
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((200, 300))
    h_noise = hurst_rs(noise)
    # R/S on short windows is biased upward (Anis–Lloyd): white noise lands a little above 0.5
    assert 0.5 < float(np.mean(h_noise)) < 0.62
    assert float(np.mean(hurst_rs(np.cumsum(noise, axis=1)))) > 0.9  # integrated noise: strongly persistent
    assert float(np.mean(hurst_rs(np.diff(noise, axis=1)))) < 0.3  # over-differenced: anti-persistent
    assert np.isnan(hurst_rs(rng.standard_normal((1, 15)))[0])  # one usable window: no slope, NaN not 0.5


def test_trend_regression_matches_linregress(real_klines: list[SymbolKlines]) -> None:
    for k in real_klines:
        y = k.close[-50:]
        ref = linregress(np.arange(50), y)
        slope, r2 = trend_regression(k.close[None], 50)
        assert slope[0] == pytest.approx(ref.slope / y.mean(), rel=1e-9)
        assert r2[0] == pytest.approx(ref.rvalue ** 2, rel=1e-9)
    assert np.isnan(trend_regression(np.ones((1, 50)), 50)[1][0])


def test_beta_and_correlation_match_numpy() -> None:
    rng = np.random.default_rng(1)
    ref = rng.standard_normal(299)
    rows = np.stack([0.7 * ref + 0.3 * rng.standard_normal(299), rng.standard_normal(299)])
    beta, corr = beta_corr(rows, ref)
    for i in range(2):
        assert beta[i] == pytest.approx(np.polyfit(ref, rows[i], 1)[0])
        assert corr[i] == pytest.approx(np.corrcoef(ref, rows[i])[0, 1])


def test_cvd_features_by_hand() -> None:
    close = np.array([[1.0, 2.0, 3.0]])
    vol = np.array([[10.0, 10.0, 10.0]])
    buy = np.array([[2.0, 3.0, 4.0]])  # deltas −6, −4, −2 → Σ −12 over Σ 30
    imb, div = cvd_features(close, vol, buy, n=3)
    assert imb[0] == pytest.approx(-0.4)
    assert div[0] == pytest.approx(0.4)  # price up on net selling: a bearish divergence


def test_missing_inputs_give_nan_and_are_reported(real_klines: list[SymbolKlines]) -> None:
    doge = real_klines[0].tail(300)
    f, missing = compute_factors([doge])
    for name in ("cvd_imbalance", "ovr", "oi_change", "basis", "spread_bps", "liq_skew", "beta_btc", "corr_eth"):
        assert np.isnan(f[name][0])
    assert {"taker_buy", "open_interest", "spot_close", "order_book", "liquidations", "btc_reference",
            "eth_reference"} <= set(missing[0])
    assert np.isfinite(f["natr"][0]) and np.isfinite(f["hurst"][0])
    # funding settlements come from the sibling funding folder
    assert "funding" not in missing[0] and np.isfinite(f["funding_mean"][0])


def test_references_only_when_timestamps_align(real_klines: list[SymbolKlines]) -> None:
    btc = real_klines[2].tail(300)
    f, missing = compute_factors([btc, real_klines[0].tail(300)], btc=btc)
    assert f["beta_btc"][0] == pytest.approx(1.0) and f["corr_btc"][0] == pytest.approx(1.0)
    assert np.isnan(f["beta_btc"][1]) and "btc_reference" in missing[1]
