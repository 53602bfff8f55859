"""Forecast statistics: Brier decomposition identities, AUC and log loss against brute force, Wilson intervals."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbray.calibration.metrics import (
    band_table,
    brier_decomposition,
    brier_score,
    forecast_summary,
    log_loss,
    reliability_curve,
    roc_auc,
    wilson_interval,
)

pytestmark = pytest.mark.unit

probs = st.lists(st.tuples(st.floats(0, 1), st.integers(0, 1)), min_size=1, max_size=200)
coarse = st.lists(st.tuples(st.sampled_from([0.0, 0.1, 0.35, 0.5, 0.75, 1.0]), st.integers(0, 1)), min_size=1,
                  max_size=200)


@settings(max_examples=200, deadline=None)
@given(coarse)
def test_murphy_identity_with_one_bin_per_forecast_value(data: list[tuple[float, int]]) -> None:
    p, y = np.array([d[0] for d in data]), np.array([d[1] for d in data], dtype=float)
    d = brier_decomposition(p, y)
    assert d is not None
    assert d.within_bin_variance == pytest.approx(0.0, abs=1e-15)
    assert d.within_bin_covariance == pytest.approx(0.0, abs=1e-15)
    assert d.brier == pytest.approx(d.reliability - d.resolution + d.uncertainty, abs=1e-12)
    assert abs(d.identity_error) < 1e-12


@settings(max_examples=200, deadline=None)
@given(probs, st.integers(1, 20))
def test_generalised_identity_holds_for_any_binning(data: list[tuple[float, int]], bins: int) -> None:
    p, y = np.array([d[0] for d in data]), np.array([d[1] for d in data], dtype=float)
    d = brier_decomposition(p, y, bins=bins)
    assert d is not None
    assert abs(d.identity_error) < 1e-12
    assert d.brier == pytest.approx(float(np.mean((p - y) ** 2)), abs=1e-15)
    assert d.reliability >= 0 and d.resolution >= 0 and d.within_bin_variance >= 0
    base = y.mean()
    assert d.uncertainty == pytest.approx(base * (1 - base))
    assert d.resolution <= d.uncertainty + 1e-12  # resolution cannot exceed the outcome variance


def test_decomposition_by_hand() -> None:
    # two forecast values: 0.2 on [0, 0, 1] and 0.8 on [1, 1, 0, 1]
    p = [0.2, 0.2, 0.2, 0.8, 0.8, 0.8, 0.8]
    y = [0, 0, 1, 1, 1, 0, 1]
    d = brier_decomposition(p, y)
    assert d is not None
    assert d.reliability == pytest.approx((3 * (0.2 - 1 / 3) ** 2 + 4 * (0.8 - 0.75) ** 2) / 7)
    base = 4 / 7
    assert d.resolution == pytest.approx((3 * (1 / 3 - base) ** 2 + 4 * (0.75 - base) ** 2) / 7)
    assert d.brier == pytest.approx(brier_score(p, y))
    assert brier_decomposition([], []) is None and brier_score([], []) is None


def _auc_pairs(s: list[float], y: list[int]) -> float | None:
    pos = [a for a, b in zip(s, y, strict=True) if b == 1]
    neg = [a for a, b in zip(s, y, strict=True) if b == 0]
    if not pos or not neg:
        return None
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10), st.integers(0, 1)), min_size=1, max_size=60))
def test_auc_equals_the_pairwise_definition_with_ties(data: list[tuple[int, int]]) -> None:
    s, y = [float(d[0]) for d in data], [d[1] for d in data]
    ref = _auc_pairs(s, y)
    got = roc_auc(s, y)
    assert (got is None) == (ref is None)
    if ref is not None:
        assert got == pytest.approx(ref, abs=1e-12)


def test_log_loss_and_clipping() -> None:
    assert log_loss([0.5, 0.5], [1, 0]) == pytest.approx(math.log(2))
    assert log_loss([0.9, 0.2], [1, 0]) == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2)
    assert math.isfinite(log_loss([0.0, 1.0], [1, 0]) or 0.0)  # clipped, not infinite
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        log_loss([1.2], [1])
    with pytest.raises(ValueError, match="0 or 1"):
        brier_score([0.5], [2])


def test_wilson_interval_known_values() -> None:
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-4)
    assert wilson_interval(0, 0) == (None, None)


def test_curve_bands_and_summary() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 1, 5000)
    y = (rng.uniform(0, 1, 5000) < p).astype(float)
    curve = reliability_curve(p, y, 10)
    assert sum(b["n"] for b in curve) == 5000
    for b in curve:  # a calibrated forecast: each bin's realised rate inside a generous interval of its mean
        assert b["ci_lo"] - 0.05 <= b["mean_p"] <= b["ci_hi"] + 0.05
    bands = band_table([5, 15, 15, 99, 100, 150, -3], [1, 0, 1, 1, 0, 1, 0], width=10)
    by = {b["band"]: b for b in bands}
    assert by["0-10"]["n"] == 2 and by["10-20"]["wins"] == 1 and by["90-100"]["n"] == 3
    s = forecast_summary(p, y, score=p * 100)
    assert s["n"] == 5000 and s["auc"] == pytest.approx(s["auc_score"])
    assert s["brier"] < 0.2 and s["decomposition"]["reliability"] < 0.002
