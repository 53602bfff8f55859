"""A generated recording through the existing replay and backtest: zero rejects, zero resyncs,
and ATR warmed up after more than 70 minutes of market time."""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import orjson
import pytest

from arbray.cli_backtest import register as register_backtest
from arbray.cli_sim import register as register_sim
from arbray.features.snapshot import FeatureSnapshot
from arbray.replay.engine import ReplayEngine
from arbray.replay.readers import open_input
from arbray.sim.model import MarketModelConfig
from arbray.sim.recording import generate

pytestmark = pytest.mark.integration


def run_cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="arbray")
    sub = p.add_subparsers(dest="command", required=True)
    register_sim(sub)
    register_backtest(sub)
    args = p.parse_args(argv)
    code: int = args.func(args)
    return code


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "sim_76m.gz"
    cfg = MarketModelConfig(symbols=("BTCUSDT", "ETHUSDT"), hours=1.27, seed=1, step_ms=250, rate_scale=0.06,
                            refill_levels=4, max_levels=60)
    generate(cfg, out)
    return out


def test_cli_generate_writes_a_replayable_file_and_a_summary(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "btcusdt_sim.gz"
    assert run_cli(["sim", "generate", "--symbols", "BTCUSDT", "--hours", "0.01", "--seed", "3",
                    "--out", str(out)]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["lines"] > 1000 and summary["symbols"]["BTCUSDT"]["trades"] > 100
    with gzip.open(out, "rb") as fh:
        first = orjson.loads(fh.readline().partition(b" ")[2])
    assert set(first) == {"lastUpdateId", "E", "T", "bids", "asks"}  # the name gives the symbol
    d = ReplayEngine(60_000, lambda snap: None).run([open_input(out)]).to_dict()
    assert d["rejected_total"] == 0 and d["book_resyncs"] == {"BTCUSDT": 0}


def test_replay_has_no_rejects_no_resyncs_and_warms_up_atr(long_recording: Path) -> None:
    last: dict[str, FeatureSnapshot] = {}

    def on_snapshot(snap: FeatureSnapshot) -> None:
        last[snap.symbol] = snap

    summary = ReplayEngine(60_000, on_snapshot).run([open_input(long_recording)])
    d = summary.to_dict()
    assert d["rejected_total"] == 0, d["rejected"]
    assert d["book_resyncs"] == {"BTCUSDT": 0, "ETHUSDT": 0}
    assert d["trade_id_gaps"] == {"BTCUSDT": 0, "ETHUSDT": 0}
    assert d["events"]["depthSnapshot"] == 2 and d["events"]["markPriceUpdate"] > 9000
    for sym in ("BTCUSDT", "ETHUSDT"):
        assert last[sym].atr_5m is not None and last[sym].atr_5m > 0


def test_backtest_runs_on_a_generated_recording(long_recording: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bt"
    assert run_cli(["backtest", "--input", str(long_recording), "--strategy", "v53", "--out", str(out)]) == 0
    printed = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["trades_processed"] > 10_000
    replay = orjson.loads((out / "summary.json").read_bytes())["replay"]
    assert replay["rejected_total"] == 0, replay["rejected"]
    assert replay["book_resyncs"] == {"BTCUSDT": 0, "ETHUSDT": 0}


def test_a_long_crash_with_cascades_replays_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "crash.gz"
    cfg = MarketModelConfig(symbols=("BTCUSDT", "ETHUSDT"), hours=0.4, seed=4, step_ms=250, rate_scale=0.1,
                            initial_regime="crash", crash_mean_minutes=10_000, crash_drift_per_min=-0.02,
                            liq_rate_per_s=5.0, refill_levels=8)
    model, _ = generate(cfg, out)
    assert all(st.liquidations > 0 for st in model.stats.values())
    d = ReplayEngine(60_000, lambda snap: None).run([open_input(out)]).to_dict()
    assert d["rejected_total"] == 0, d["rejected"]
    assert d["book_resyncs"] == {"BTCUSDT": 0, "ETHUSDT": 0}
    assert d["events"]["forceOrder"] > 0
