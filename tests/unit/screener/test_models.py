"""Golden tests for ats_v2 and the short-grid GSS, hand-computed from the design documents' weights."""

from __future__ import annotations

import math

import pytest

from arbray.screener.factors import FACTOR_NAMES
from arbray.screener.models import (
    V1_WEIGHTS,
    V2_WEIGHTS,
    AtsConfig,
    ShortGridConfig,
    ats_combine,
    ats_v2,
    probability,
    short_grid,
)

pytestmark = pytest.mark.unit


def _factors(**kw: float) -> dict[str, float]:
    f = dict.fromkeys(FACTOR_NAMES, math.nan)
    f.update(kw)
    return f


def test_document_weights() -> None:
    assert V1_WEIGHTS == {"T": 25, "M": 15, "C": 20, "V": 15, "S": 10, "O": 20, "E": 10}
    assert sum(V1_WEIGHTS.values()) == 115
    new = {k: V2_WEIGHTS[k] for k in ("C+", "O+", "V+", "L", "B", "Q", "I")}
    assert new == {"C+": 20, "O+": 20, "V+": 15, "L": 20, "B": 15, "Q": 10, "I": 10}


def test_v1_combination_by_hand() -> None:
    scores: dict[str, float | None] = {"T": 40, "M": 20, "C": -10, "V": 70, "S": 60, "O": None, "E": 30, "F": 20}
    score, left_out = ats_combine(scores, V1_WEIGHTS, f_gain=0.2)
    # signed: 25·40 + 15·20 + 20·(−10) = 1100 > 0 → dir +1; unsigned (x−50)·2: V +40, S +20, E −40
    # (1100 + 15·40 + 10·20 + 10·(−40)) / (115 − 20) = 1500/95; F +20 → ×(1 + 0.2·0.2)
    assert score == pytest.approx(1500 / 95 * 1.04)
    assert left_out == ["O"]
    assert probability(score or 0.0, 20.0) == pytest.approx(1 / (1 + math.exp(-(1500 / 95 * 1.04) / 20)))
    assert probability(0.0, 20.0) == 0.5


def test_all_factors_at_the_extreme_score_100() -> None:
    full = {k: 100.0 for k in V2_WEIGHTS} | {"F": 0.0}
    assert ats_combine(dict(full), V2_WEIGHTS, 0.2)[0] == pytest.approx(100.0)
    assert ats_combine({k: -100.0 if k not in ("V+", "S", "E", "L", "I") else 100.0 for k in V2_WEIGHTS},
                       V2_WEIGHTS, 0.2)[0] == pytest.approx(-100.0)


BASE = {"ema_gap_atr": 2.0, "momentum_z": 1.0, "rel_volume": 1.0, "r2": 0.5, "ker": 0.3, "norm_slope": 0.001,
        "trigger_bar": 0.0}


def test_hybrid_degrades_to_v1_and_reports_missing() -> None:
    f = _factors(**BASE)
    res = ats_v2("X", f, ["taker_buy", "open_interest", "order_book", "liquidations", "spot_close"], AtsConfig())
    assert res.extra["mode"] == "v1"
    assert {"order_book", "liquidations", "taker_buy", "open_interest"} <= set(res.missing)
    # T = 100·tanh(1), M = 100·tanh(0.5), V = 50, S = 50, E = 30 → dir + ; V, S contribute 0, E −40
    t, m = 100 * math.tanh(1.0), 100 * math.tanh(0.5)
    assert res.score == pytest.approx((25 * t + 15 * m + 10 * (-40)) / (25 + 15 + 15 + 10 + 10))
    assert res.components["L"] is None and res.components["Q"] is None  # never a neutral stand-in
    assert "missing" in res.explanation


def test_hybrid_uses_v2_when_book_and_liquidations_exist() -> None:
    f = _factors(**BASE, spread_bps=5.0, depth_usd=500_000.0, liq_skew=0.5, cvd_imbalance=0.2, oi_change=0.05,
                 basis=0.0, funding_last=0.0, corr_btc=0.6, corr_eth=0.8)
    res = ats_v2("X", f, ["btc_reference"], AtsConfig())
    assert res.extra["mode"] == "v2"
    c = res.components
    assert c["L"] == pytest.approx(50 * 0.5 + 50 * 0.5)
    assert c["Q"] == pytest.approx(50.0) and c["B"] == pytest.approx(0.0)
    assert c["I"] == pytest.approx(20.0) and c["C+"] == pytest.approx(20.0)
    assert c["O+"] == pytest.approx(100 * math.tanh(1.0))
    assert res.missing == []


def test_short_grid_gss_by_hand() -> None:
    f = _factors(natr=0.5, ker=0.2, hurst=0.45, norm_slope=0.0002, r2=0.4, funding_mean=0.0001,
                 cvd_imbalance=-0.2, quote_volume=1e7)
    res = short_grid("X", "5m", 300, f, ["open_interest"], ShortGridConfig())
    # volatility: NATR/day = 0.5·√288 = 8.49 % ≥ 5 % → 100; 100·(1 − 0.2) = 80 → 90
    # trend: Hurst (0.65 − 0.45)/0.3 → 66.67; rising with R² 0.4 → 60 → 63.33
    # micro: funding 100·(0.5 + 0.0001/0.001) = 60; flow 100·(0.5 + 0.1) = 60; OVR missing → 60
    assert res.components["volatility"] == pytest.approx(90.0)
    assert res.components["trend"] == pytest.approx(190 / 3)
    assert res.components["micro"] == pytest.approx(60.0)
    assert res.score == pytest.approx(0.40 * 90 + 0.35 * 190 / 3 + 0.25 * 60)
    assert res.missing == ["open_interest"]


def test_short_grid_filters() -> None:
    f = _factors(natr=0.5, ker=0.2, quote_volume=10.0)
    assert short_grid("X", "5m", 299, f, [], ShortGridConfig()).excluded == "min_bars"
    assert short_grid("X", "5m", 300, f, [], ShortGridConfig()).excluded == "liquidity"


def test_config_is_frozen() -> None:
    cfg = ShortGridConfig()
    with pytest.raises(ValueError):
        cfg.w_trend = 1.0  # type: ignore[misc]
