"""The ``ats_v2`` kind in a backtest: the engine feeds it the kline factors of the symbol's own bars
(``KlineExtrasMemo`` over ``SymbolFeatures.bars_5m``), so after 60 closed 5-minute bars its scores
carry them; before that it says exactly which inputs are missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbray.backtest.engine import Backtest, BacktestConfig
from arbray.backtest.journal import ScoreCollector
from arbray.replay.readers import open_input
from arbray.scoring.presets import load_preset
from arbray.screener.live import features_kline_extras
from arbray.sim.model import MarketModelConfig
from arbray.sim.recording import generate

pytestmark = pytest.mark.integration
KLINE_FACTORS = ("ema_gap_atr", "momentum_z", "rel_volume", "trigger_bar", "r2", "ker", "norm_slope", "cvd_imbalance")


def test_backtest_feeds_ats_v2_the_kline_factors_of_its_own_bars(tmp_path: Path) -> None:
    rec = tmp_path / "sim.gz"
    generate(MarketModelConfig(symbols=("BTCUSDT",), hours=5.25, seed=3, rate_scale=0.01, step_ms=5000), rec)
    coll = ScoreCollector()
    bt = Backtest([load_preset("ats_v2_btc")], BacktestConfig(), score_sink=coll)
    bt.run([open_input(rec, 15_000)])
    results = [r for _, batch in coll.batches for r in batch]
    first, last = results[0], results[-1]
    assert {f"ats_5m_{f}" for f in KLINE_FACTORS} <= set(first.missing)  # no 60 bars yet: said, not filled in
    assert not {f"ats_5m_{f}" for f in KLINE_FACTORS} & set(last.missing)
    assert set(last.missing) == {"ats_5m_corr_btc", "ats_5m_corr_eth", "ats_5m_oi_change"}  # no references, no OI
    sym = bt.engine.state.symbols["BTCUSDT"]
    memo = bt._kline_memos["BTCUSDT"]
    assert memo is not None and memo.computed <= len(sym.bars_5m.closed) + len(sym.bars_1h.closed) + 1
    ready = features_kline_extras(sym.bars_5m, sym.bars_1h)
    assert ready["ats_5m_ker"] is not None and 0.0 <= ready["ats_5m_ker"] <= 1.0
