"""The recorder writes what the feed delivered as collector files that the replay reads back."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from arbray.feeds.recording import AggTradeTap, RawFileRecorder, message_symbol
from arbray.replay.engine import ReplayEngine
from arbray.replay.readers import open_input

pytestmark = pytest.mark.unit


def _agg(a: int) -> bytes:
    return orjson.dumps({"stream": "ethusdt@aggTrade", "data": {
        "e": "aggTrade", "E": 1_000 + a, "s": "ETHUSDT", "a": a, "p": "3000.5", "q": "0.010", "f": a, "l": a,
        "T": 1_700_000_000_000 + a, "m": False}})


def test_message_symbol() -> None:
    assert message_symbol(_agg(1)) == "ETHUSDT"
    assert message_symbol(b'{"lastUpdateId":5,"bids":[],"asks":[],"symbol":"BTCUSDT"}') == "BTCUSDT"
    liq = {"stream": "!forceOrder@arr", "data": {"e": "forceOrder", "o": {"s": "SOLUSDT"}}}
    assert message_symbol(orjson.dumps(liq)) == "SOLUSDT"
    assert message_symbol(b"not json") is None


def test_files_replay_and_tap(tmp_path: Path) -> None:
    rec = RawFileRecorder(tmp_path, "20240101_000000")
    tap = AggTradeTap()
    snap = orjson.dumps({"lastUpdateId": 10, "E": 1_700_000_000_000, "T": 1_700_000_000_000,
                         "bids": [["2999.0", "1.0"]], "asks": [["3001.0", "2.0"]], "symbol": "ETHUSDT"})
    for i, raw in enumerate([snap, *[_agg(a) for a in range(1, 2001)]]):
        rec(1_700_000_000_000_000_000 + i, raw)
        tap(0, raw)
    rec(0, b"garbage")
    rec.close()
    assert rec.unattributed == 1
    summary = rec.summary()
    path = Path(summary["ETHUSDT"]["path"])
    assert path.name == "ethusdt_20240101_000000.gz" and summary["ETHUSDT"]["lines"] == 2001
    engine = ReplayEngine(60_000, lambda s: None)
    result = engine.run([open_input(path, 60_000)])
    assert result.events["aggTrade"] == 2000 and result.events["depthSnapshot"] == 1
    assert result.rejected == {} and result.trade_id_gaps == {"ETHUSDT": 0}
    rows = tap.take()
    assert [r.agg_id for r in rows] == list(range(1, 2001)) and rows[0].symbol == "ETHUSDT"
    assert tap.take() == []
