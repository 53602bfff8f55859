"""The calibration loop end to end, as a user runs it: a generated 3-hour two-symbol market, a backtest of
three strategies of two kinds journalled with --db, labels, calibration and the three reports; then the
EV gate as the backtest's score filter, its decisions journalled."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from arbray.backtest.engine import Backtest, BacktestConfig
from arbray.backtest.journal import ScoreCollector, journal_backtest
from arbray.calibration.ev_gate import EvGate, EvGateConfig, RecordedGate
from arbray.calibration.report import chromium_path
from arbray.cli_strategies import load_configs
from arbray.features.snapshot import FeatureSnapshot
from arbray.replay.readers import open_input
from arbray.scoring.result import ScoreResult
from arbray.storage import open_store

pytestmark = pytest.mark.e2e
STRATEGIES = ("v51_baseline", "v53", "BTC_CVD5mx30m_TPbalanced")


def arbray(*args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "arbray", *args], capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = orjson.loads(proc.stdout.strip().splitlines()[-1])
    return out


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """A generated recording and a SQLite journal holding a backtest of it."""
    tmp = tmp_path_factory.mktemp("cal")
    sim = tmp / "sim.gz"
    arbray("sim", "generate", "--symbols", "BTCUSDT,ETHUSDT", "--hours", "3", "--seed", "11", "--rate-scale", "0.03",
           "--step-ms", "2000", "--out", str(sim))
    db = f"sqlite:///{tmp / 'journal.db'}"
    bt = arbray("backtest", "--input", str(sim), "--strategy", *STRATEGIES, "--db", db, "--out", str(tmp / "bt"))
    assert bt["journal"]["score_events"] > 2_000 and bt["journal"]["trades"] > 0
    return sim, db, tmp


def test_label_calibrate_report(journal: tuple[Path, str, Path]) -> None:
    sim, db, tmp = journal
    lab = arbray("label", "--db", db, "--input", str(sim))
    assert lab["labelled"] == lab["examined"] and lab["pending"] == 0 and lab["no_data"] == 0
    assert lab["by_status"]["ok"] >= 800 and set(lab["by_status"]) <= {"ok", "no_side", "no_atr"}
    assert arbray("label", "--db", db, "--input", str(sim))["labelled"] == 0  # idempotent

    cal = arbray("calibrate", "--db", db, "--all")
    methods = {c["strategy"]: c["method"] for c in cal["calibrators"]}
    assert set(methods) == set(STRATEGIES)
    assert methods["v51_baseline"] == "bucket"  # 400 samples: 10-point buckets (≥ 300)
    assert methods["BTC_CVD5mx30m_TPbalanced"] == "bootstrap"  # one symbol, 200 samples: below 300
    for c in cal["calibrators"]:  # live only if it beat the bootstrap map on the latest 30 % of events
        assert c["active"] == (c["method"] == "bootstrap" or c["holdout"]["brier"] < c["holdout"]["brier_bootstrap"])
    iso = arbray("calibrate", "--db", db, "--strategy", "v53", "--method", "isotonic", "--activate",
                 "always")["calibrators"][0]
    assert iso["method"] == "isotonic" and iso["stored"] and iso["active"] and iso["holdout"]["n_test"] > 0

    out = tmp / "reports"
    png = ["--png"] if chromium_path() else []
    rep = arbray("report", "calibration", "--db", db, "--out", str(out), *png)
    data = orjson.loads((out / "calibration.json").read_bytes())
    assert rep["strategies"] == 3 and set(data["strategies"]) == set(STRATEGIES)
    v53 = data["strategies"]["v53"]
    assert v53["calibrator"]["method"] == "isotonic" and set(v53["by_symbol"]) == {"BTCUSDT", "ETHUSDT"}
    for name in ("bootstrap", "calibrated"):
        d = v53["forecasts"][name]["decomposition"]
        assert abs(d["identity_error"]) < 1e-12 and d["n"] == v53["n"]
    assert v53["forecasts"]["calibrated"]["brier"] <= v53["forecasts"]["bootstrap"]["brier"]
    page = (out / "calibration.html").read_text()
    assert page.count("<svg") >= 6 and "http" not in page.replace("http://www.w3.org/2000/svg", "")
    if png:
        assert (out / "calibration.png").stat().st_size > 20_000

    costs = arbray("report", "costs", "--db", db, "--out", str(out))
    assert costs["trades"] > 0 and costs["cost_table"]
    c = orjson.loads((out / "costs.json").read_bytes())
    assert c["summary"]["fee_bps"]["mean"] > 0 and set(c["by_exit_type"]) and c["trends"]

    gates = arbray("report", "gates", "--db", db, "--out", str(out), "--field", "total", "--field",
                   "feature:spread_bps<=")
    g = orjson.loads((out / "gates.json").read_bytes())
    assert set(gates["recommendations"]) == set(STRATEGIES)
    scan = g["strategies"]["v51_baseline"]["scans"][0]
    assert scan["window_scale"] < 1 and len(scan["folds"]) >= 3  # 30 d / 7 d shrunk to the 3-hour span
    assert all(f["train"][1] <= f["test"][0] for f in scan["folds"])
    assert scan["recommendation"] is None or "out-of-sample" in scan["reason"]


def test_ev_gate_blocks_entries_and_the_journal_records_why(journal: tuple[Path, str, Path]) -> None:
    sim, _, tmp = journal
    configs = load_configs(["v51_baseline"])
    probe = EvGate({"v51_baseline": EvGateConfig(threshold_r=-5.0)})
    evs: list[float] = []

    def measure(snap: FeatureSnapshot, results: list[ScoreResult]) -> list[ScoreResult]:
        evs.extend(e.ev_net for r in results if r.is_entry and (e := probe.estimate(snap, r)) is not None)
        return probe(snap, results)

    plain = Backtest(configs, BacktestConfig(), score_filter=measure).run([open_input(sim, 15_000)])
    threshold = sorted(evs)[len(evs) // 2]  # the median entry's EV: about half the entries are blocked
    collector = ScoreCollector()
    gate = EvGate({"v51_baseline": EvGateConfig(threshold_r=threshold)}, keep_blocked=True)
    res = Backtest(configs, BacktestConfig(), score_sink=collector,
                   score_filter=RecordedGate(gate, collector)).run([open_input(sim, 15_000)])
    assert len(evs) > 20 and probe.counts[("v51_baseline", "passed")] == len(evs)
    assert sum(1 for s in plain.signals if s["action"] == "entry") > 0
    assert gate.counts[("v51_baseline", "blocked")] > 0 and gate.counts[("v51_baseline", "passed")] > 0
    entered = {(s["symbol"], s["ts_ms"]) for s in res.signals if s["action"] == "entry"}
    assert entered and not entered & {(r.symbol, r.ts_ms) for r in gate.blocked or ()}  # no blocked entry was taken
    assert gate.blocked and all(r.block_reason and r.block_reason.startswith("ev_gate:") and not r.is_entry
                                for r in gate.blocked)

    async def journal_and_read() -> list[dict[str, Any]]:
        store = await open_store(f"sqlite:///{tmp / 'ev.db'}")
        try:
            await journal_backtest(store, res, collector, "ev-run")
            hist = await store.score_history("v51_baseline", limit=100_000, run_id="ev-run")
            return [h for h in hist if (h["block_reason"] or "").startswith("ev_gate:")]
        finally:
            await store.close()

    blocked = asyncio.run(journal_and_read())
    assert len(blocked) == len(gate.blocked)
    assert all(not b["is_entry"] and not b["gate_passed"] and b["gates"][-1]["name"] == "ev_gate" for b in blocked)
