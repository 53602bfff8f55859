"""Calibrators: the bootstrap map, PAV against scipy and the min–max formula, recovery of known probabilities.

Stated tolerances (outcomes drawn from p(s) = 0.25 + 0.5 (s/100)^1.5, s uniform on [0, 100]):
- bucket calibrators (10- and 5-point): every bucket within 4 standard errors of its true mean
  probability, and the mean absolute error ≤ 0.07 / 0.03 / 0.012 at 10³ / 10⁴ / 10⁵ samples;
- isotonic: mean absolute error against p(s) on a grid ≤ 0.06 / 0.025 / 0.012 at 10³ / 10⁴ / 10⁵.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scipy.optimize import isotonic_regression  # type: ignore[import-untyped]

from arbray.calibration.calibrators import (
    BOOTSTRAP_VERSION,
    Calibrator,
    CalibratorConfig,
    MethodRule,
    bootstrap_calibrator,
    bootstrap_probability,
    fit_bucket,
    fit_calibrator,
    fit_isotonic,
    latest_by_strategy,
    pav,
)

pytestmark = pytest.mark.unit
CFG = CalibratorConfig()


def truth(s: np.ndarray) -> np.ndarray:
    return 0.25 + 0.5 * (s / 100) ** 1.5


def sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    s = rng.uniform(0, 100, n)
    return s, (rng.uniform(0, 1, n) < truth(s)).astype(float)


def test_bootstrap_map_is_the_plans_formula() -> None:
    assert bootstrap_probability(0) == pytest.approx(0.40)
    assert bootstrap_probability(50) == pytest.approx(0.55)
    assert bootstrap_probability(100) == pytest.approx(0.70)
    assert bootstrap_probability(200) == pytest.approx(0.75) and bootstrap_probability(-100) == pytest.approx(0.35)
    cal = bootstrap_calibrator()
    assert cal.version == BOOTSTRAP_VERSION and cal.predict([60.0])[0] == pytest.approx(0.58)


def _minmax_isotonic(y: list[float], w: list[float]) -> list[float]:
    """f_i = max_{j≤i} min_{k≥i} weighted mean(y[j..k]): the exact isotonic regression."""
    n = len(y)

    def avg(j: int, k: int) -> float:
        return sum(a * b for a, b in zip(y[j: k + 1], w[j: k + 1], strict=True)) / sum(w[j: k + 1])

    return [max(min(avg(j, k) for k in range(i, n)) for j in range(i + 1)) for i in range(n)]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(-5, 5), st.floats(0.1, 4)), min_size=1, max_size=25))
def test_pav_matches_scipy_and_the_minmax_formula(data: list[tuple[float, float]]) -> None:
    y, w = [d[0] for d in data], [d[1] for d in data]
    got = pav(y, w)
    assert np.all(np.diff(got) >= -1e-12)
    np.testing.assert_allclose(got, isotonic_regression(y, weights=w, increasing=True).x, atol=1e-9)
    np.testing.assert_allclose(got, _minmax_isotonic(y, w), atol=1e-9)


def test_isotonic_calibrator_pools_ties_and_interpolates() -> None:
    s = np.array([10, 10, 20, 30, 30, 40], dtype=float)
    y = np.array([1, 0, 0, 1, 1, 1], dtype=float)
    cal = fit_isotonic("x", s, y, CalibratorConfig(isotonic_min_samples=2))
    # unique scores 10,20,30,40 with means .5, 0, 1, 1 → PAV pools 10 and 20 to 1/3
    assert cal.predict([10, 20, 30, 40]) == pytest.approx([1 / 3, 1 / 3, 0.99, 0.99])
    assert cal.predict([25])[0] == pytest.approx((1 / 3 + 0.99) / 2)
    assert cal.predict([0, 100]) == pytest.approx([1 / 3, 0.99])  # clamped outside the fitted range
    with pytest.raises(ValueError, match="at least 50"):
        fit_isotonic("x", s, y, CFG)


@pytest.mark.parametrize(("n", "mae_max"), [(1_000, 0.06), (10_000, 0.025), (100_000, 0.012)])
def test_isotonic_recovers_known_probabilities(n: int, mae_max: float) -> None:
    grid = np.linspace(0.5, 99.5, 200)
    for seed in range(3):
        s, y = sample(n, seed)
        cal = fit_isotonic("x", s, y, CFG)
        assert np.abs(cal.predict(grid) - truth(grid)).mean() <= mae_max


@pytest.mark.parametrize(("n", "mae_max"), [(1_000, 0.07), (10_000, 0.03), (100_000, 0.012)])
@pytest.mark.parametrize("width", [10.0, 5.0])
def test_buckets_recover_known_probabilities(n: int, mae_max: float, width: float) -> None:
    for seed in range(3):
        s, y = sample(n, seed)
        cal = fit_bucket("x", s, y, width, CFG)
        errs = []
        for b in cal.params["buckets"]:
            true_mean = float(truth(np.linspace(b["lo"], b["hi"], 1001)).mean())
            se = np.sqrt(true_mean * (1 - true_mean) / b["n"])
            assert b["source"] == "data" and abs(b["p"] - true_mean) <= 4 * se
            errs.append(abs(b["p"] - true_mean))
        assert np.mean(errs) <= mae_max


def test_thin_buckets_fall_back_to_parent_then_bootstrap() -> None:
    s = np.r_[np.full(40, 52.0), np.full(10, 57.0), np.full(5, 91.0)]
    y = np.r_[np.ones(20), np.zeros(20), np.ones(10), np.ones(5)]
    cal = fit_bucket("x", s, y, 5.0, CFG)
    by = {b["lo"]: b for b in cal.params["buckets"]}
    assert by[50.0]["source"] == "data" and by[50.0]["p"] == pytest.approx(0.5)
    assert by[55.0]["source"] == "parent" and by[55.0]["p"] == pytest.approx(30 / 50)  # 10-pt bucket 50–60
    assert by[90.0]["source"] == "bootstrap" and by[90.0]["p"] == pytest.approx(float(bootstrap_probability(92.5)))
    assert cal.predict([52, 57, 91, 250])[:3] == pytest.approx([0.5, 0.6, float(bootstrap_probability(92.5))])


def test_method_is_chosen_by_sample_count_and_versions_are_content_hashes() -> None:
    assert [CFG.method_for(n).method for n in (0, 299, 300, 999, 1000, 4999, 5000)] == [
        "bootstrap", "bootstrap", "bucket", "bucket", "bucket", "bucket", "isotonic"]
    assert CFG.method_for(300).bucket_width == 10.0 and CFG.method_for(1000).bucket_width == 5.0
    s, y = sample(2_000, 1)
    ts = np.arange(2_000) * 15_000
    a = fit_calibrator("s", s, y, ts, CFG)
    b = fit_calibrator("s", s, y, ts, CFG)
    assert a.calibrator.method == "bucket" and a.calibrator.version == b.calibrator.version
    assert a.calibrator.version.startswith("s@bucket-")
    assert a.holdout["n_train"] == 1_400 and a.holdout["n_test"] == 600
    assert a.holdout["brier"] < a.holdout["brier_bootstrap"]  # the data-driven map beats the cold-start map
    iso = fit_calibrator("s", s, y, ts, CFG, method="isotonic")
    assert iso.calibrator.method == "isotonic" and iso.calibrator.version != a.calibrator.version
    back = Calibrator.from_record(a.calibrator.to_record())
    assert back.version == a.calibrator.version
    np.testing.assert_array_equal(back.predict(s[:50]), a.calibrator.predict(s[:50]))
    few = fit_calibrator("s", s[:100], y[:100], ts[:100], CFG)
    assert few.calibrator.method == "bootstrap" and few.calibrator.version != BOOTSTRAP_VERSION


def test_a_fit_goes_live_only_if_it_beats_the_bootstrap_map_out_of_sample() -> None:
    from arbray.calibration.calibrate import activation

    assert activation({"brier": 0.20, "brier_bootstrap": 0.25}, "bucket", CFG)[0]
    ok, why = activation({"brier": 0.30, "brier_bootstrap": 0.25}, "bucket", CFG)
    assert not ok and "0.3000 ≥ bootstrap 0.2500" in why
    assert not activation({"n_test": 0}, "isotonic", CFG)[0]
    assert activation({"brier": 0.30, "brier_bootstrap": 0.25}, "bucket", CalibratorConfig(activate="always"))[0]
    assert activation({}, "bootstrap", CFG)[0]


def test_latest_active_calibrator_per_strategy() -> None:
    s, y = sample(600, 2)
    old = fit_bucket("a", s, y, 10.0, CFG).to_record()
    new = fit_isotonic("a", s, y, CFG).to_record()
    rows = [{**old, "id": 1, "active": True}, {**new, "id": 2, "active": True},
            {**fit_bucket("b", s, y, 10.0, CFG).to_record(), "id": 3, "active": False}]
    got = latest_by_strategy(rows)
    assert set(got) == {"a"} and got["a"].method == "isotonic"


def test_config_rules() -> None:
    with pytest.raises(ValidationError, match="bucket_width"):
        MethodRule(min_samples=10, method="bucket")
    with pytest.raises(ValidationError, match="decreasing min_samples"):
        CalibratorConfig(auto_methods=(MethodRule(min_samples=0, method="bootstrap"),
                                       MethodRule(min_samples=10, method="isotonic")))
    with pytest.raises(ValidationError, match="score_hi"):
        CalibratorConfig(score_lo=50, score_hi=10)
