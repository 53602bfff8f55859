"""The evaluator: grouped, vectorised, symbol-scoped and equal to the scalar kinds; scoring is pure."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from arbray.features.symbol import SymbolFeatures
from arbray.marketdata.events import TradeBatch
from arbray.scoring.evaluator import Evaluator
from arbray.scoring.presets import load_presets
from arbray.scoring.registry import kind_of
from tests.unit.scoring.helpers import BASE_SNAPSHOT, config, snap

pytestmark = pytest.mark.unit


def test_results_equal_the_scalar_kinds_and_skip_other_symbols() -> None:
    configs = [*load_presets(), config(strategy_id="eth_only", symbol="ETHUSDT"),
               config(strategy_id="btc_8h", cvd_slow_window="8h")]
    ev = Evaluator(configs)
    extras = {"cvd_8h": 12.0}
    got = ev.results(BASE_SNAPSHOT, extras)
    want = {c.strategy_id: kind_of(c).score(BASE_SNAPSHOT, c, extras) for c in configs if "BTCUSDT" in c.applies_to}
    assert {r.strategy_id: r for r in got} == want
    assert "eth_only" not in {r.strategy_id for r in got}
    assert len(ev.evaluate(BASE_SNAPSHOT, extras)) == 7  # one batch per kind (ats_v2_btc included)
    eth = ev.results(snap(symbol="ETHUSDT", price=3000.0, atr_5m=15.0))
    assert {r.strategy_id for r in eth} == {"eth_only", "v51_baseline", "v52_8signals", "v53", "v53_fast",
                                            "v53_middle"}
    assert ev.results(snap(symbol="DOGEUSDT")) == []
    assert ev.extra_windows("BTCUSDT") == ("8h",) and ev.extra_windows("ETHUSDT") == ()
    vectorised, scalar = Evaluator(configs, min_batch=1), Evaluator(configs, min_batch=10**9)
    assert vectorised.results(BASE_SNAPSHOT, extras) == scalar.results(BASE_SNAPSHOT, extras) == got


def test_duplicate_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate strategy ids"):
        Evaluator([config(), config(entry_score=80)])


def test_thousand_configs_in_one_call() -> None:
    configs = [config(strategy_id=f"c{i}", entry_score=60 + i % 30, flip_threshold=95,
                      cvd_fast_window=("5m", "15m", "30m")[i % 3]) for i in range(1000)]
    batches = Evaluator(configs).evaluate(BASE_SNAPSHOT)
    assert len(batches) == 1 and len(batches[0]) == 1000
    totals = batches[0].total
    assert np.array_equal(batches[0].is_entry, totals >= np.array([60 + i % 30 for i in range(1000)]))


def test_atr_percentile_slope_and_oi_are_read_without_side_effects() -> None:
    """Snapshots taken twice at the same time are identical (the predecessor appended to the ATR
    percentile history and advanced slope/OI state on every read), and scoring them is pure."""
    rng = np.random.default_rng(7)
    n = 3 * 3600
    ts = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * 1000
    price = 60_000 + np.cumsum(rng.normal(0, 5, n))
    feats = SymbolFeatures("BTCUSDT")
    feats.add_trades(TradeBatch.from_columns("BTCUSDT", ts, price.round(1), rng.uniform(0.001, 2, n).round(3),
                                             rng.random(n) < 0.5, np.arange(n)))
    t = int(ts[-1]) + 1
    first, second = feats.snapshot(t), feats.snapshot(t)
    assert first == second
    assert first.atr_percentile_5m is not None and first.cvd_accel_30m_per_min2 is not None
    ev = Evaluator(load_presets())
    results = ev.results(first)
    assert results == ev.results(second) == ev.results(replace(first))
    assert any(r.block_reason is None or not r.block_reason.startswith("not_ready") for r in results)
