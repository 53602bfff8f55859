"""The backtest engine end to end on synthetic trades: exits happen, outputs are complete and deterministic."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from arbray.backtest.engine import Backtest, BacktestConfig, rules_for
from arbray.backtest.output import write_outputs
from arbray.scoring.presets import load_preset, load_presets
from tests.unit.backtest.synth import records, synth_trades

pytestmark = pytest.mark.unit
REQUIRED = ("trades", "win_rate", "gross_r", "fees_r", "funding_r", "net_r", "profit_factor", "max_drawdown_r",
            "sharpe", "maker_ratio_entry", "maker_ratio_tp", "friction_r", "by_exit_reason", "config_hashes")


def run(out: Path) -> dict[str, object]:
    data = synth_trades()
    configs = [c for c in load_presets() if "BTCUSDT" in c.applies_to]
    res = Backtest(configs, BacktestConfig()).run([records(*data)])
    return write_outputs(res, out)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, object]]:
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    summary = run(a)
    run(b)
    return a, b, summary


def test_two_runs_are_byte_identical(two_runs: tuple[Path, Path, dict[str, object]]) -> None:
    a, b, _ = two_runs
    for name in ("trades.jsonl", "signals.jsonl", "equity.csv", "summary.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_outputs_and_summary_keys(two_runs: tuple[Path, Path, dict[str, object]]) -> None:
    a, _, summary = two_runs
    for key in REQUIRED:
        assert key in summary, key
    trades = [orjson.loads(x) for x in (a / "trades.jsonl").read_bytes().splitlines()]
    assert summary["trades"] == len(trades) > 5
    assert {t["exit_reason"] for t in trades} >= {"tp", "sl"}
    for t in trades:
        assert t["net_r"] == pytest.approx(t["gross_r"] - t["fees_r"] - t["funding_r"])
        assert t["signal_ts_ms"] >= 1_700_000_000_000 + 60 * 60_000  # warm-up: ATR(14) on 5m bars first
    html = (a / "report.html").read_text()
    assert "<svg" in html and "By exit reason" in html and "<script" not in html
    assert (a / "equity.csv").read_text().startswith("ts_ms,strategy_id,balance,equity\n")
    signals = (a / "signals.jsonl").read_bytes().splitlines()
    assert signals and orjson.loads(signals[0])["action"] in ("entry", "busy", "flip", "cooldown")


def test_rules_from_factory_and_legacy_configs() -> None:
    bt = BacktestConfig()
    f = rules_for(load_preset("BTC_CVD30mx4h_TPbalanced"), bt)
    cfg = load_preset("BTC_CVD30mx4h_TPbalanced")
    assert (f.sl_atr_multiplier, f.tp1_r, f.tp2_r) == (cfg.sl_atr_multiplier, cfg.tp1_ratio, cfg.tp2_ratio)  # type: ignore[attr-defined]
    legacy = rules_for(load_preset("v53"), bt)  # tp_sl 2.0 / 1.5 / 3.0 ATR → 0.75R / 1.5R, 60 min
    assert (legacy.sl_atr_multiplier, legacy.tp1_r, legacy.tp2_r, legacy.timeout_ms) == (2.0, 0.75, 1.5, 3_600_000)
    assert legacy.flip_threshold == 85
