"""``arbray screen`` end to end: every real kline file, a generated 500-symbol universe, and ``--live``
against a simulator subprocess (universe, streams, backfill, one journalled scan)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from arbray.cli_screen import main
from arbray.screener.synth import synthetic_universe, write_feather_universe
from arbray.storage import open_store
from tests.integration.storage_backends import run
from tests.integration.test_screen_live import sim_serve

pytestmark = pytest.mark.integration
__all__ = ["sim_serve"]


@pytest.mark.parametrize("model", ["short_grid", "ats_v2"])
def test_screen_all_real_kline_files(real_data: Path, tmp_path: Path, model: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    folder = real_data / "roshan7869_algotrading"
    files = sorted(folder.rglob("*-futures.feather"))
    out = tmp_path / "results.json"
    assert main(["screen", "--universe", "all", "--klines", str(folder), "--model", model, "--out", str(out)]) == 0
    rows = orjson.loads(out.read_bytes())
    assert len(rows) == len(files) > 30  # every file has ≥ 300 bars and enough volume: nothing excluded
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    for r in rows:
        assert set(r) >= {"symbol", "rank", "score", "factors", "explanation"}
        assert r["factors"]["natr"] is not None and r["factors"]["hurst"] is not None
        assert r["factors"]["cvd_imbalance"] is None and "taker_buy" in r["missing"]  # these klines lack it
    printed = capsys.readouterr().out
    assert printed.splitlines()[1].split()[1] == rows[0]["symbol"]
    assert orjson.loads(printed.splitlines()[-1])["ranked"] == len(rows)


def test_screen_500_symbol_synthetic_universe(tmp_path: Path) -> None:
    write_feather_universe(tmp_path / "k", synthetic_universe(500, bars=300, seed=11))
    out = tmp_path / "r.json"
    assert main(["screen", "--klines", str(tmp_path / "k"), "--model", "short_grid", "--out", str(out)]) == 0
    rows = orjson.loads(out.read_bytes())
    assert len(rows) == 500
    assert rows[0]["factors"]["cvd_imbalance"] is not None and rows[0]["factors"]["ovr"] is not None
    info = tmp_path / "info.json"
    info.write_bytes(orjson.dumps({"symbols": [{"symbol": "BTCUSDT"}, {"symbol": "SYN0042USDT"}]}))
    assert main(["screen", "--universe", str(info), "--klines", str(tmp_path / "k"), "--model", "ats_v2",
                 "--out", str(out)]) == 0
    assert sorted(r["symbol"] for r in orjson.loads(out.read_bytes())) == ["BTCUSDT", "SYN0042USDT"]


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    assert main(["screen", "--klines", str(tmp_path / "nope"), "--out", str(tmp_path / "r.json")]) == 2


@pytest.mark.parametrize("model", ["ats_v2", "short_grid"])
def test_screen_live_from_the_simulator(sim_serve: dict[str, str], tmp_path: Path, model: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out, dsn = tmp_path / "live.json", f"sqlite:///{tmp_path / 'j.db'}"
    assert main(["screen", "--live", "--rest-base", sim_serve["rest"], "--ws-base", sim_serve["ws"], "--interval",
                 "1m", "--bars", "60", "--model", model, "--min-quote-volume", "0", "--out", str(out),
                 "--dsn", dsn]) == 0
    captured = capsys.readouterr()
    rows = orjson.loads(out.read_bytes())
    summary = orjson.loads(captured.out.splitlines()[-1])
    assert summary["live"] and summary["symbols"] == 3 and summary["ranked"] == len(rows) == 3
    assert [r["rank"] for r in rows] == [1, 2, 3] and all(r["explanation"] for r in rows)
    assert rows[0]["factors"]["cvd_imbalance"] is not None  # klines carry taker-buy volume
    # 3 × klines (limit 61: weight 1) + 3 × funding (1) + exchangeInfo is outside the cache's count
    assert summary["rest"]["weight"] == 6 and summary["rest"]["futures_data_requests"] == 3
    assert summary["rest"]["failures"] == {} and summary["cache"]["bars_min"] == 60
    assert "backfill klines_1m: 3/3 requests" in captured.err and "universe: 3 symbols" in captured.err
    assert captured.out.splitlines()[1].split()[1] == rows[0]["symbol"]

    async def stored() -> dict[str, object] | None:
        store = await open_store(dsn, migrate=False)
        try:
            return await store.latest_screen_run(model)
        finally:
            await store.close()

    run_row = run(stored())
    assert run_row is not None and run_row["id"] == summary["run_id"] and run_row["ranked"] == 3


def test_live_needs_a_reachable_exchange(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["screen", "--live", "--rest-base", "http://127.0.0.1:9", "--ws-base", "ws://127.0.0.1:9",
                 "--out", str(tmp_path / "r.json")]) == 2
    assert "REST request failed" in capsys.readouterr().err
