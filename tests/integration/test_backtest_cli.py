"""``backtest`` and ``bench cvd-rule`` through their argparse registration, on real and synthetic files."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import orjson
import pytest

from arbray.cli_backtest import register

pytestmark = pytest.mark.integration


def run_cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="arbray")
    register(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    code: int = args.func(args)
    return code


def test_backtest_on_a_real_recording(real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the recordings last minutes: ATR(14) on 5m bars is never ready, so no strategy may enter
    src = real_data / "hftbacktest" / "usdm" / "ethusdt_20240718.gz"
    out = tmp_path / "bt"
    assert run_cli(["backtest", "--input", str(src), "--strategy", "v53", "--fees", "0.0001,0.0004",
                    "--fill-model", "queue", "--out", str(out)]) == 0
    line = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["trades"] == 0 and line["trades_processed"] > 1_000
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["data_ranges"]["ETHUSDT"]["first_ts_ms"] is not None
    assert summary["by_strategy"]["v53"]["final_balance"] == 10_000.0
    for name in ("trades.jsonl", "signals.jsonl", "equity.csv", "report.html"):
        assert (out / name).is_file()


def test_bench_cvd_rule_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(5)
    n = 30_000
    ts_ns = (1_700_000_000_000 + np.sort(rng.integers(0, 4 * 3_600_000, n))) * 1_000_000
    np.savez(tmp_path / "t.npz", ts_ns=ts_ns, price=np.full(n, 50_000.0), qty=np.full(n, 0.002),
             is_buyer_maker=rng.random(n) < 0.5 + 0.3 * np.sin(np.arange(n) / 400))
    dec = tmp_path / "d.npy"
    assert run_cli(["bench", "cvd-rule", "--trades", str(tmp_path / "t.npz"), "--decisions-out", str(dec)]) == 0
    line = orjson.loads(capsys.readouterr().out.strip())
    assert line["events"] == n and line["events_per_s"] > 0
    d = np.load(dec)
    assert d.shape == (line["decisions"], 2) and set(d[:, 1].tolist()) <= {-1, 1}
    assert (np.diff(d[:, 1]) != 0).all()  # every decision is a sign flip
