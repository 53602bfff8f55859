"""``arbray sim serve`` as a process: one JSON line with the URLs when ready, serving REST and WS,
a clean exit on SIGTERM, loopback unless a remote host is explicitly allowed, replay mode."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from arbray.cli import main
from arbray.sim.model import MarketModelConfig
from arbray.sim.recording import generate

pytestmark = pytest.mark.integration


def _serve(*args: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBRAY_SIM_API")}  # a generated account
    proc = subprocess.Popen([sys.executable, "-m", "arbray", "sim", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    if not ready:
        proc.kill()
        raise AssertionError("sim serve printed nothing in 30 s")
    line = proc.stdout.readline()
    if not line:
        proc.wait(5)
        raise AssertionError(proc.stderr.read().decode() if proc.stderr else "no output")
    return proc, orjson.loads(line)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return orjson.loads(r.read())


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_serve_prints_its_urls_serves_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("seed: 3\nrest_5xx_rate: 0.0\n")
    proc, info = _serve("--symbols", "BTCUSDT,ETHUSDT", "--speed", "5", "--history-hours", "1", "--faults",
                        str(faults), "--rate-scale", "0.5")
    try:
        assert info["symbols"] == ["BTCUSDT", "ETHUSDT"] and info["mode"] == "model" and info["speed"] == 5.0
        assert info["rest"].startswith("http://127.0.0.1:") and info["ws"] == info["rest"].replace("http", "ws")
        account = info["account"]  # the trading API: a generated key pair, printed once
        assert len(account["api_key"]) == 64 and len(account["api_secret"]) == 64
        assert _get(info["rest"] + "/fapi/v1/ping") == {}
        assert len(_get(info["rest"] + "/fapi/v1/klines?symbol=ETHUSDT&interval=1m&limit=1000")) >= 60
        assert _get(info["rest"] + "/_sim/faults")["seed"] == 3
    finally:
        code = _stop(proc)
    assert code == 0


def test_serve_replays_a_recording(tmp_path: Path) -> None:
    rec = tmp_path / "sim.gz"
    generate(MarketModelConfig(symbols=("BTCUSDT",), hours=0.005, seed=2, rate_scale=0.2), rec)
    proc, info = _serve("--replay", str(rec), "--speed", "max", "--no-trading")
    try:
        assert info["mode"] == "replay" and info["symbols"] == ["BTCUSDT"] and "account" not in info
        assert _get(info["rest"] + "/fapi/v1/depth?symbol=BTCUSDT&limit=5")["lastUpdateId"] > 0
    finally:
        assert _stop(proc) == 0


def test_serve_refuses_a_non_loopback_host_unless_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "serve", "--host", "0.0.0.0", "--port", "0", "--history-hours", "0"]) == 2
    assert "allow_remote" in capsys.readouterr().err
