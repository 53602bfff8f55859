"""The peerbench CVD sign-flip rule through the TradeTape equals a brute-force evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from arbray.backtest.cvd_rule import run_cvd_rule

pytestmark = pytest.mark.unit


def brute(ts_ns: np.ndarray, qty: np.ndarray, ibm: np.ndarray) -> np.ndarray:
    ts = ts_ns // 1_000_000
    lots = np.rint(qty / 0.001).astype(np.int64) * np.where(ibm, -1, 1)
    out, prev = [], 0
    b = ts[0] - ts[0] % 15_000 + 15_000
    while b <= ts[-1]:
        s = int(np.sign(lots[(ts >= b - 1_800_000) & (ts < b)].sum()))
        if s != 0 and s != prev:
            out.append((b * 1_000_000, s))
            prev = s
        b += 15_000
    return np.array(out, np.int64).reshape(-1, 2)


@pytest.mark.parametrize("batch", [7, 1_000, 1 << 16])
def test_matches_brute_force(batch: int) -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    ts_ns = (1_700_000_000_000 + np.sort(rng.integers(0, 3 * 3_600_000, n))) * 1_000_000
    qty = np.round(rng.exponential(0.02, n) + 0.001, 3)
    ibm = rng.random(n) < 0.5 + 0.2 * np.sin(np.arange(n) / 300)
    price = np.round(50_000 + np.cumsum(rng.normal(0, 1, n)), 1)
    res = run_cvd_rule(ts_ns, price, qty, ibm, batch=batch)
    ref = brute(ts_ns, qty, ibm)
    assert len(ref) > 5
    np.testing.assert_array_equal(res.decisions, ref)
    assert res.events == n and 700 < res.boundaries <= 720
