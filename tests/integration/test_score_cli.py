"""``arbray score`` over every real recording with every preset; ``arbray strategies``."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from arbray.cli import build_parser
from arbray.cli_strategies import register
from arbray.features.snapshot import FeatureSnapshot
from arbray.replay.engine import ReplayEngine
from arbray.replay.readers import open_input
from arbray.scoring.evaluator import Evaluator
from arbray.scoring.presets import load_presets, preset_names
from arbray.scoring.registry import kind_of
from arbray.scoring.result import ScoreResult
from tests.conftest import SESSIONS

pytestmark = pytest.mark.integration


def run(argv: list[str]) -> int:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "score" not in sub.choices:
        register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.mark.parametrize("session", SESSIONS, ids=lambda s: s[0].split(".")[0])
def test_score_every_preset_over_every_recording(
    session: tuple[str, ...], hft_files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [str(p) for p in hft_files if p.name in session]
    assert len(files) == len(session)
    out = tmp_path / "scores.jsonl"
    assert run(["score", "--input", *files, "--every", "15s", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    lines = out.read_bytes().splitlines()
    assert summary["results_written"] == len(lines) > 0
    assert summary["strategies"] == len(preset_names())
    results = [ScoreResult.from_dict(json.loads(x)) for x in lines]
    (symbol,) = summary["replay"]["book_resyncs"]  # one symbol per recording session
    presets = {c.strategy_id: c for c in load_presets()}
    applicable = [c for c in presets.values() if symbol in c.applies_to]
    assert len(results) == summary["replay"]["snapshots_written"] * len(applicable)
    assert Counter(r.strategy_id for r in results).keys() == {c.strategy_id for c in applicable}
    assert all(r.symbol == symbol and 0 <= r.total <= 100 for r in results)


def test_real_snapshots_score_the_same_scalar_and_vectorised(hft_files: list[Path]) -> None:
    """Real feature values (with an ATR filled in: the recordings are shorter than 14 bars)
    through every preset: the batch path equals the scalar path, and some results pass every gate."""
    snaps: list[FeatureSnapshot] = []
    engine = ReplayEngine(5_000, snaps.append)
    engine.run([open_input(p, 5_000) for p in hft_files if p.name.endswith("20240808.gz")])
    assert snaps
    presets = load_presets()
    ev = Evaluator(presets)
    by_id = {c.strategy_id: c for c in presets}
    gated = Counter[str]()
    for s in snaps:
        if s.price is None:
            continue
        s = replace(s, atr_5m=s.price * 0.0025, atr_pct_5m=0.0025)
        got = ev.results(s)
        for r in got:
            c = by_id[r.strategy_id]
            assert r == kind_of(c).score(s, c, None)
            gated[r.block_reason or "passed"] += 1
    assert gated["passed"] > 0


def test_strategies_schema_and_presets(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(["strategies", "schema", "factory"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.validate({"kind": "factory", "strategy_id": "x", "symbol": "BTCUSDT"}, schema)
    assert "weight_direction" in schema["properties"]
    assert run(["strategies", "presets", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["name"] for r in rows] == preset_names()
    assert run(["strategies", "presets"]) == 0
    assert "BTC_CVD15mx1h_TPconservative" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown strategy kind"):
        run(["strategies", "schema", "nope"])


def test_score_computes_windows_the_snapshot_lacks(hft_files: list[Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A slow window of 8h is computed from the trade tape; 24h is the snapshot's own field."""
    f = tmp_path / "mine.yaml"
    f.write_text("- {kind: factory, strategy_id: w8h, symbol: BTCUSDT, cvd_slow_window: 8h}\n"
                 "- {kind: factory, strategy_id: w24h, symbol: BTCUSDT, cvd_slow_window: 24h}\n"
                 "- {kind: factory, strategy_id: eth, symbol: ETHUSDT}\n")
    files = [str(p) for p in hft_files if p.name == "btcusdt_20240808.gz"]
    out = tmp_path / "s.jsonl"
    assert run(["score", "--input", *files, "--strategy", str(f), "--every", "30s", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["by_strategy"]["eth"] == {}  # never evaluated on BTC snapshots
    rows = [json.loads(x) for x in out.read_bytes().splitlines()]
    w8 = [r["inputs"]["cvd_8h"] for r in rows if r["strategy_id"] == "w8h"]
    w24 = [r["inputs"]["cvd_24h"] for r in rows if r["strategy_id"] == "w24h"]
    assert w8 and all(v is not None for v in w8) and w8 == w24  # the recording is shorter than 8h
