"""``arbray record`` as a user runs it: against a separately started ``arbray sim serve`` (base URLs)
and with ``--sim``; the files replay cleanly and the journal has every aggTrade."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from arbray.replay.engine import ReplayEngine
from arbray.replay.readers import open_input

pytestmark = pytest.mark.e2e


def arbray(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arbray", *args], capture_output=True, text=True, timeout=120,
                          check=False)


def test_record_refuses_to_guess_a_source(tmp_path: Path) -> None:
    proc = arbray("record", "--symbols", "BTCUSDT", "--out", str(tmp_path), "--duration", "1s")
    assert proc.returncode == 2 and "--sim" in proc.stderr and "--rest-base" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_record_from_a_running_simulator_replays_and_journals(tmp_path: Path) -> None:
    server = subprocess.Popen([sys.executable, "-m", "arbray", "sim", "serve", "--port", "0", "--symbols",
                               "BTCUSDT,ETHUSDT", "--speed", "4", "--history-hours", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        ready = orjson.loads(server.stdout.readline())
        out, db = tmp_path / "rec", tmp_path / "journal.db"
        proc = arbray("record", "--symbols", "BTCUSDT,ETHUSDT", "--out", str(out), "--rest-base", ready["rest"],
                      "--ws-base", ready["ws"], "--duration", "3s", "--db", f"sqlite:///{db}")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr
    summary = orjson.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["source"] == "urls" and summary["rejects"] == {} and summary["task_errors"] == []
    assert summary["snapshots_fetched"] == 2 and summary["messages"]["aggTrade"] > 50
    for sym in ("BTCUSDT", "ETHUSDT"):
        f = summary["files"][sym]
        assert Path(f["path"]).exists() and f["lines"] > 100
        replayed = ReplayEngine(15_000, lambda s: None).run([open_input(f["path"], 15_000)]).to_dict()
        assert replayed["rejected"] == {} and replayed["trade_id_gaps"] == {sym: 0}
        assert replayed["events"]["depthSnapshot"] == 1 and replayed["book_resyncs"] == {sym: 0}
        journal = summary["journal"]["continuity"][sym]
        assert journal["missing_ranges"] == [] and journal["rows"] == replayed["events"]["aggTrade"]
    assert summary["journal"]["agg_trades_written"] == summary["messages"]["aggTrade"]


def test_record_with_the_in_process_simulator(tmp_path: Path) -> None:
    proc = arbray("record", "--symbols", "BTCUSDT", "--out", str(tmp_path), "--sim", "--sim-speed", "4",
                  "--duration", "2s")
    assert proc.returncode == 0, proc.stderr
    summary = orjson.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["source"] == "sim" and summary["journal"] is None
    assert summary["files"]["BTCUSDT"]["lines"] > 100 and summary["rejects"] == {}
