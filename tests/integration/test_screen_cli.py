"""``arbray screen`` end to end: every real kline file, and a generated 500-symbol universe."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from arbray.cli_screen import main
from arbray.screener.synth import synthetic_universe, write_feather_universe

pytestmark = pytest.mark.integration


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
