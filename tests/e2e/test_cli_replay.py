"""``arbray replay`` / ``arbray demo`` as a user runs them: real files in, JSON lines out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import SESSIONS

pytestmark = pytest.mark.e2e

CONTRACT = [
    "symbol", "ts_ms", "price", "cvd_5m", "cvd_15m", "cvd_30m", "cvd_1h", "cvd_4h", "cvd_24h", "cvd_usd_5m",
    "cvd_usd_15m", "cvd_usd_30m", "cvd_usd_1h", "cvd_usd_4h", "cvd_usd_24h", "vwap_30m", "buy_vol_1m",
    "sell_vol_1m", "atr_5m", "atr_1h", "atr_pct_5m", "atr_percentile_5m", "p95_qty_24h", "p99_qty_24h",
    "whale_flow_15m", "cvd_slope_30m_per_min", "cvd_accel_30m_per_min2", "best_bid", "best_ask", "spread_bps",
    "microprice", "obi_10", "funding_rate", "mark_price", "oi_change_pct", "liq_long_usd_5m", "liq_short_usd_5m",
    "quality",
]


def arbray(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arbray", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, check=False)


@pytest.mark.parametrize("session", SESSIONS, ids=[s[0] for s in SESSIONS])
def test_replay_every_real_recording(real_data: Path, tmp_path: Path, session: tuple[str, ...]) -> None:
    out = tmp_path / "features.jsonl"
    inputs = [a for f in session for a in ("--input", str(real_data / "hftbacktest" / "usdm" / f))]
    proc = arbray("replay", *inputs, "--every", "15s", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = orjson.loads(proc.stdout.strip().splitlines()[-1])
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert summary["snapshots_written"] == len(lines) > 10
    assert summary["rejected"] == {} and summary["events"]["trade"] > 1000
    assert set(summary["book_resyncs"].values()) == {0}
    for rec in lines:
        assert all(k in rec for k in CONTRACT)
        assert rec["ts_ms"] % 15_000 == 0
    synced = [r for r in lines if r["book_state"] == "synced"]
    assert synced and all(r["best_bid"] < r["best_ask"] and r["obi_10"] is not None for r in synced)
    if "20230404" in session[0]:
        assert any(r["funding_rate"] is not None and r["mark_price"] for r in lines)  # markPrice@1s in 2023
    assert all(r["atr_5m"] is None and "warming_up_atr" in r["quality"] for r in lines)  # < 14 bars recorded


def test_replay_to_stdout_and_every_real_file_at_once(hft_files: list[Path], tmp_path: Path) -> None:
    proc = arbray("replay", *[a for f in hft_files for a in ("--input", str(f))], "--every", "1m", "--out", "-")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    summary = orjson.loads(lines[-1])
    assert summary["snapshots_written"] == len(lines) - 1
    assert summary["boundaries_skipped_idle"] > 0  # 2023 and 2024 sessions are a year apart
    assert {orjson.loads(x)["symbol"] for x in lines[:-1]} == {"BTCUSDT", "ETHUSDT"}
    # BTC's 2024 sessions start with a fresh snapshot after the 2023 book went out of sequence
    assert summary["book_resyncs"]["BTCUSDT"] >= 1


def test_demo_runs_on_bundled_data_and_backtests_a_generated_session(tmp_path: Path) -> None:
    proc = arbray("demo", "--out", str(tmp_path / "f.jsonl"), "--sim-hours", "1.5",
                  "--backtest-out", str(tmp_path / "bt"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "BTCUSDT" in proc.stdout and "ETHUSDT" in proc.stdout and "snapshots written" in proc.stdout
    summary = orjson.loads((tmp_path / "bt" / "summary.json").read_bytes())
    assert summary["replay"]["rejected_total"] == 0 and summary["replay"]["book_resyncs"] == {"BTCUSDT": 0}
    assert len(summary["by_strategy"]) == 25 and (tmp_path / "bt" / "report.html").exists()  # + ats_v2_btc


def test_bad_arguments_fail_clearly(tmp_path: Path) -> None:
    proc = arbray("replay", "--every", "fast", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "invalid interval" in proc.stderr
    proc = arbray("replay", "--input", str(tmp_path / "nope.gz"), "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "no such input file" in proc.stderr
