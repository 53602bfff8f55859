"""The ``ats_v2`` Strategy kind: equal to the screener's ``ats_v2`` on the same bars, missing inputs
listed (never replaced), the batch path equal to the scalar path, and the config's rules."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from arbray.strategies.ats_v2 import LAYER_NAMES, AtsV2Config
from pydantic import ValidationError

from arbray.features.bars import BarSeries
from arbray.features.snapshot import FeatureSnapshot
from arbray.scoring.evaluator import Evaluator
from arbray.scoring.presets import load_preset
from arbray.scoring.registry import get_kind, parse_config
from arbray.scoring.result import ScoreResult
from arbray.screener.data import BookSummary, LiquidationSummary, SymbolKlines
from arbray.screener.live import BarArrays, KlineExtrasMemo, bar_arrays, extra_name, kline_extras
from arbray.screener.scan import References, score_shard
from arbray.screener.synth import synthetic_universe
from tests.unit.scoring.helpers import snap

pytestmark = pytest.mark.unit
KIND = get_kind("ats_v2")


def cfg(**kw: object) -> AtsV2Config:
    c = parse_config({"kind": "ats_v2", "strategy_id": "t", "symbols": ["SYN0002USDT", "BTCUSDT"], **kw})
    assert isinstance(c, AtsV2Config)
    return c


def screener_row(k: SymbolKlines, refs: References) -> dict[str, object]:
    (row,) = score_shard([k], "ats_v2", refs)
    return row


def no_book(s: FeatureSnapshot) -> FeatureSnapshot:
    return replace(s, spread_bps=None, depth_bid_qty_10=None, depth_ask_qty_10=None)


def signed(r: ScoreResult) -> float:
    return r.total * (1 if r.side == "LONG" else -1 if r.side == "SHORT" else 0)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_v1_scores_equal_the_screener_on_the_same_bars(seed: int) -> None:
    k = synthetic_universe(3, seed=seed)[2]
    row = screener_row(k, References({}))
    extras = kline_extras(BarArrays.from_klines(k), None)
    r = KIND.score(no_book(snap(symbol=k.symbol)), cfg(), extras)
    assert row["mode"] == "v1" and r.inputs["score"] == pytest.approx(row["score"], rel=1e-9)
    assert signed(r) == pytest.approx(row["score"], rel=1e-9)
    assert r.inputs["probability_up"] == pytest.approx(row["probability_up"], rel=1e-9)
    # the layers add up to the total (F's layer is what the modulator added)
    assert sum(lay.score for lay in r.layers) == pytest.approx(r.total, abs=1e-9)
    assert [lay.name for lay in r.layers] == list(LAYER_NAMES)


def test_v2_scores_equal_the_screener_with_book_liquidations_basis_and_references() -> None:
    u = synthetic_universe(3, seed=9)
    btc, eth, k = u
    price, spread, bid_q, ask_q, funding, div = float(k.close[-1]), 3.0, 40_000.0, 25_000.0, 0.00015, -0.0008
    depth_usd = (bid_q + ask_q) * price
    basis = 1.0 / (1.0 + div) - 1.0
    full = replace(k, funding=np.array([0.0001, funding]), spot_close=float(k.close[-1]) / (1.0 + basis),
                   book=BookSummary(spread, depth_usd), liquidations=LiquidationSummary(120_000.0, 30_000.0))
    refs = References.from_universe(u, 300)
    row = screener_row(full, refs)
    assert row["mode"] == "v2" and row["components"]["I"] is not None and row["components"]["L"] is not None
    extras = kline_extras(BarArrays.from_klines(k), None,
                          references={"5m": (BarArrays.from_klines(btc), BarArrays.from_klines(eth))})
    s = snap(symbol=k.symbol, price=price, spread_bps=spread, depth_bid_qty_10=bid_q, depth_ask_qty_10=ask_q,
             funding_rate=funding, spot_perp_div=div, liq_long_usd_5m=120_000.0, liq_short_usd_5m=30_000.0)
    r = KIND.score(s, cfg(), extras)
    assert signed(r) == pytest.approx(row["score"], rel=1e-9)
    assert r.missing == ()
    # the same inputs without the liquidation feed: hybrid degrades to V1 and says why
    r1 = KIND.score(s, cfg(liquidation_feed=False), extras)
    assert "liquidations" in r1.missing and r1.layer("Q").max == 0.0 and r1.layer("L").max == 0.0


def test_missing_inputs_are_listed_and_never_filled() -> None:
    k = synthetic_universe(3, seed=5)[2]
    c = cfg()
    s = no_book(snap(symbol=k.symbol))
    none = KIND.score(s, c, None)
    assert none.block_reason == "not_ready:5m_klines" and none.total == 0.0 and none.side is None
    assert {extra_name("5m", f) for f in ("ema_gap_atr", "momentum_z", "cvd_imbalance", "ker", "r2")} <= set(
        none.missing)
    # bars without taker-buy volume: C is left out (weight dropped) and its input is listed
    no_taker = replace(BarArrays.from_klines(k), taker_buy=None)
    r = KIND.score(s, c, kline_extras(no_taker, None))
    assert r.block_reason is None and r.layer("C").max == 0.0 and r.layer("T").max > 0
    assert extra_name("5m", "cvd_imbalance") in r.missing and r.inputs[extra_name("5m", "cvd_imbalance")] is None
    row = screener_row(replace(k, taker_buy=None), References({}))
    assert signed(r) == pytest.approx(row["score"], rel=1e-9)
    # too few bars: every factor of that timeframe is None, the kind is not ready
    few = kline_extras(BarArrays.from_klines(k).tail(40), None)
    assert few[extra_name("5m", "ema_gap_atr")] is None and few["ats_5m_bars"] == 40.0
    assert KIND.score(s, c, few).block_reason == "not_ready:5m_klines"
    # the 1h factors are read only by a 1h config
    assert KIND.score(s, cfg(timeframe="1h"), kline_extras(BarArrays.from_klines(k), None)).block_reason == \
        "not_ready:1h_klines"


def test_coverage_gate_side_restriction_and_thresholds() -> None:
    k = synthetic_universe(3, seed=2)[2]
    extras = kline_extras(BarArrays.from_klines(k), None)
    s = no_book(snap(symbol=k.symbol))
    base = KIND.score(s, cfg(), extras)
    side = base.side
    assert side is not None and base.gate("coverage").status == "passed"
    only_t = {f: None for f in extras if f.startswith("ats_5m_") and not f.endswith(("ema_gap_atr", "bars"))}
    thin = KIND.score(s, cfg(), {**extras, **only_t})
    assert thin.block_reason is not None and thin.block_reason.startswith("coverage") and not thin.is_entry
    low = KIND.score(s, cfg(entry_score=1, flip_threshold=1), extras)
    assert low.is_entry and low.is_flip_signal and low.tier == "heavy"
    other = "short_only" if side == "LONG" else "long_only"
    blocked = KIND.score(s, cfg(entry_score=1, flip_threshold=1, direction=other), extras)
    assert not blocked.side_allowed and not blocked.is_entry and not blocked.is_flip_signal


def test_batch_equals_scalar_and_the_evaluator_runs_the_preset() -> None:
    k = synthetic_universe(3, seed=3)[2]
    extras = kline_extras(BarArrays.from_klines(k), None)
    configs = [cfg(strategy_id=f"c{i}", entry_score=10 + 10 * i, flip_threshold=95, mode=m)
               for i, m in enumerate(("v1", "v2", "hybrid"))]
    s = no_book(snap(symbol=k.symbol))
    batch = KIND.score_batch(s, KIND.compile(configs, k.symbol), extras)
    assert batch.results() == [KIND.score(s, c, extras) for c in configs]
    ev = Evaluator([load_preset("ats_v2_btc")], min_batch=1)
    (r,) = ev.results(snap(), kline_extras(BarArrays.from_klines(replace(k, symbol="BTCUSDT")), None))
    assert r.strategy_id == "ats_v2_btc" and r.kind == "ats_v2" and 0 <= r.total <= 100


def test_config_rules() -> None:
    with pytest.raises(ValidationError, match="outside"):
        cfg(v1_weights={"T": 25, "X": 5})
    with pytest.raises(ValidationError, match="positive weight"):
        cfg(v2_weights={"T": 0})
    with pytest.raises(ValidationError, match="flip_threshold"):
        cfg(entry_score=70, flip_threshold=50)
    with pytest.raises(ValidationError):
        cfg(timeframe="15m")
    assert load_preset("ats_v2_btc").applies_to == ("BTCUSDT",)


def test_memo_recomputes_only_when_a_bar_closes_and_reads_the_runtime_series() -> None:
    """``SymbolFeatures``-style bars built from trades (with sides) feed the kind through the memo."""
    rng = np.random.default_rng(4)
    period = 300_000
    series_5m, series_1h = BarSeries(period, keep=300), BarSeries(3_600_000, keep=300)
    n = 200 * 20
    ts = np.arange(n, dtype=np.int64) * (period // 20)
    price = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    qty = rng.uniform(0.1, 2.0, n)
    maker = rng.random(n) < 0.5
    for s in (series_5m, series_1h):
        s.add_trades(ts, price, qty, maker)
        s.close_until(int(ts[-1]) + 1)
    bars = bar_arrays(series_5m, "5m")
    assert len(bars) == 199 and bars.taker_buy is not None
    assert bars.taker_buy.sum() == pytest.approx(qty[~maker][ts[~maker] < 199 * period].sum())
    memo = KlineExtrasMemo()
    first = memo(series_5m, series_1h)
    assert memo(series_5m, series_1h) == first and memo.computed == 1
    assert first[extra_name("5m", "cvd_imbalance")] is not None and first["ats_1h_bars"] == 16.0
    series_5m.add_trades(np.array([200 * period + 5], np.int64), np.array([101.0]), np.array([1.0]),
                         np.array([False]))
    series_5m.close_until(201 * period)
    assert memo(series_5m, series_1h)["ats_5m_bars"] == 201.0 and memo.computed == 2  # bars 199 and 200 closed
