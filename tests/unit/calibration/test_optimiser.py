"""Gate optimiser: walk-forward geometry, a splitter that never leaks, and out-of-sample-only recommendations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbray.calibration.optimiser import (
    DAY_MS,
    Fold,
    OptimiserConfig,
    Samples,
    ScanSpec,
    event_samples,
    field_value,
    optimise,
    outcome_stats,
    pick,
    scan,
    split,
    walk_forward_folds,
)

pytestmark = pytest.mark.unit
HOUR = 3_600_000


def test_folds_use_30_day_train_7_day_step_when_the_data_allows() -> None:
    folds, scale = walk_forward_folds(0, 100 * DAY_MS, 30 * DAY_MS, 7 * DAY_MS)
    assert scale == 1.0
    assert folds[0] == Fold(0, 30 * DAY_MS, 30 * DAY_MS, 37 * DAY_MS)
    assert folds[1].train_start == 7 * DAY_MS and len(folds) == 10
    assert folds[-1].test_end == 100 * DAY_MS


def test_folds_shrink_in_proportion_on_short_data() -> None:
    folds, scale = walk_forward_folds(0, 3 * HOUR, 30 * DAY_MS, 7 * DAY_MS, min_folds=3)
    assert scale == pytest.approx(3 * HOUR / (51 * DAY_MS))
    train, step = folds[0].train_end - folds[0].train_start, folds[0].test_end - folds[0].test_start
    assert train / step == pytest.approx(30 / 7, rel=1e-3)
    assert len(folds) == 3 and folds[-1].test_end == 3 * HOUR


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40 * DAY_MS), st.integers(0, 3 * DAY_MS)), min_size=1, max_size=300),
       st.integers(1, 20), st.integers(1, 10), st.integers(1, 5))
def test_splitter_never_leaks_future_data(raw: list[tuple[int, int]], train_d: int, step_d: int, k: int) -> None:
    """No training sample starts outside its window or has an outcome known after its test window starts,
    and every test sample lies inside its test window."""
    start = np.asarray(sorted(a for a, _ in raw), dtype=np.int64)
    end = start + np.asarray([b for _, b in raw], dtype=np.int64)
    s = Samples(start, end, np.zeros(len(raw)), np.zeros(len(raw)))
    folds, _ = walk_forward_folds(int(start.min()), int(start.max()) + 1, train_d * DAY_MS, step_d * DAY_MS, k)
    for f in folds:
        assert f.train_end == f.test_start <= f.test_end
        tr, te = split(s, f)
        assert np.all(s.start_ms[tr] >= f.train_start)
        assert np.all(s.end_ms[tr] <= f.test_start)  # the outcome of every training sample is known before the test
        assert np.all((s.start_ms[te] >= f.test_start) & (s.start_ms[te] < f.test_end))
        assert not set(tr.tolist()) & set(te.tolist())


def _samples(n: int, seed: int, signal: float, base: float = 0.3) -> Samples:
    rng = np.random.default_rng(seed)
    start = np.sort(rng.integers(0, 60 * DAY_MS, n)).astype(np.int64)
    value = rng.uniform(0, 100, n)
    win = rng.uniform(0, 1, n) < base + signal * (value / 100)
    return Samples(start, start + HOUR, value, np.where(win, 2.0, -1.0))


def test_each_folds_pick_depends_only_on_data_before_its_test_window() -> None:
    s = _samples(3_000, 1, 0.3)
    cfg = OptimiserConfig(min_train_count=20)
    spec = ScanSpec(field="total", thresholds=tuple(range(0, 100, 10)))
    base = optimise(s, spec, cfg)
    for k, f in enumerate(base["folds"]):
        later = s.start_ms + 0 >= f["test"][0]
        rng = np.random.default_rng(k)
        scrambled = Samples(s.start_ms, s.end_ms, s.value, np.where(later, rng.choice([2.0, -1.0], len(s)), s.outcome))
        again = optimise(scrambled, spec, cfg)
        assert again["folds"][k]["chosen"] == f["chosen"]  # a leak would let the scrambled future move the pick
        assert again["folds"][k]["n_train"] == f["n_train"]


def test_scan_statistics_and_pick() -> None:
    s = Samples(np.arange(6, dtype=np.int64), np.arange(6, dtype=np.int64), np.array([10, 20, 30, 40, 50, 60.0]),
                np.array([-1, -1, 2, -1, 2, 2.0]))
    rows = scan(s, [0, 30, 50], "above")
    assert [r["n"] for r in rows] == [6, 4, 2]
    assert rows[1]["net_r"] == pytest.approx(5.0) and rows[1]["win_rate"] == pytest.approx(0.75)
    assert rows[2]["sharpe_proxy"] is None  # no dispersion
    st_ = outcome_stats(np.array([2.0, -1.0, 2.0, -1.0]))
    assert st_["avg_r"] == pytest.approx(0.5) and st_["sharpe_proxy"] == pytest.approx(0.5 / np.std([2, -1, 2, -1],
                                                                                                    ddof=1) * 2)
    assert pick(rows, "net_r", 3) == 30.0 and pick(rows, "net_r", 7) is None
    below = scan(s, [30], "below")
    assert below[0]["n"] == 3


def test_recommends_only_with_out_of_sample_evidence() -> None:
    grid = ScanSpec(field="total", thresholds=tuple(range(0, 100, 10)))
    real = optimise(_samples(4_000, 2, 0.5, base=0.15), grid, OptimiserConfig())
    assert real["recommendation"] is not None and real["recommendation"] >= 30
    assert real["oos"]["chosen"]["sharpe_proxy"] > real["oos"]["baseline"]["sharpe_proxy"]
    assert real["oos"]["chosen"]["net_r"] > 0
    # pure noise with a negative edge: in-sample some threshold always looks best, out of sample none helps
    noise = _samples(4_000, 3, 0.0)
    noise = Samples(noise.start_ms, noise.end_ms, noise.value, np.where(noise.outcome > 0, 1.5, -1.0))
    rep = optimise(noise, grid, OptimiserConfig())
    assert any(f["chosen"] is not None for f in rep["folds"])  # in sample, some threshold always looks best
    assert rep["recommendation"] is None and "not positive" in rep["reason"]
    tiny = optimise(_samples(30, 4, 0.4), ScanSpec(field="total"), OptimiserConfig())
    assert tiny["recommendation"] is None and "too little" in tiny["reason"]


def test_field_values_and_event_samples() -> None:
    row = {"total": 70.0, "p_calibrated": 0.6, "layers": [{"name": "direction", "score": 30.0}],
           "inputs": {"obi_10": 0.2}, "features": {"atr_pct_5m": 0.004}}
    assert field_value(row, "total") == 70.0 and field_value(row, "layer:direction") == 30.0
    assert field_value(row, "input:obi_10") == 0.2 and field_value(row, "feature:atr_pct_5m") == 0.004
    assert field_value(row, "feature:nope") is None
    rows = [{**row, "ts_ms": 1_000, "status": "ok", "side": "LONG", "gate_passed": True, "is_entry": False,
             "first_hit": "target", "y_binary_60m": 1},
            {**row, "ts_ms": 2_000, "status": "ok", "side": "SHORT", "gate_passed": True, "is_entry": True,
             "first_hit": None, "y_binary_60m": 0, "y_return_60m": 0.001, "entry_price": 100.0, "atr": 0.5},
            {**row, "ts_ms": 3_000, "status": "no_side", "side": None, "gate_passed": True, "is_entry": False}]
    s = event_samples(rows, ScanSpec(field="total"), OptimiserConfig(cost_r=0.1))
    assert len(s) == 2 and s.outcome.tolist() == pytest.approx([1.9, 0.2 - 0.1])
    assert s.end_ms.tolist() == [1_000 + HOUR, 2_000 + HOUR]
    assert len(event_samples(rows, ScanSpec(field="feature:atr_pct_5m"), OptimiserConfig())) == 1  # entries only
    dense = [{**rows[0], "symbol": "BTCUSDT", "ts_ms": t} for t in range(0, 600_000, 15_000)]
    spaced = event_samples(dense, ScanSpec(field="total"), OptimiserConfig(spacing_ms=300_000))
    assert spaced.start_ms.tolist() == [0, 300_000]
