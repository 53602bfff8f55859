"""Replay mode of SimExchange: pacing against a ManualClock, pause and speed, the replayed book, and
streams derived from a recording that does not carry them."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest

from arbray.clock import ManualClock
from arbray.replay.readers import open_input
from arbray.sim.exchange import SimExchange, SimExchangeConfig
from arbray.sim.model import MarketModelConfig
from arbray.sim.recording import generate

pytestmark = pytest.mark.unit

T0 = 1_723_075_200_000


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("replay") / "sim.gz"
    generate(MarketModelConfig(symbols=("BTCUSDT", "ETHUSDT"), hours=0.01, seed=3, start_ms=T0, rate_scale=0.3),
             out)
    return out


def _stream_lines(path: Path) -> list[tuple[int, str, bytes]]:
    """(reader sort time, stream, original data bytes) for every stream line of a recording."""
    out = []
    with gzip.open(path, "rb") as fh:
        raw = [line.partition(b" ")[2].rstrip(b"\n") for line in fh]
    for (sort_ms, _, payload), js in zip(open_input(path), raw, strict=True):
        obj = payload[0]  # type: ignore[index]
        if "stream" in obj:
            prefix = b'{"stream":"' + obj["stream"].encode() + b'","data":'
            assert js.startswith(prefix)
            out.append((sort_ms, obj["stream"], js[len(prefix):-1]))
    return out


def test_replay_is_paced_by_the_clock_and_publishes_original_payloads(recording: Path) -> None:
    clock = ManualClock(1_000_000)
    ex = SimExchange(SimExchangeConfig(replay=str(recording), speed=2.0), clock=clock)
    assert ex.mode == "replay" and ex.symbols == ("BTCUSDT", "ETHUSDT")
    lines = _stream_lines(recording)
    got: list[tuple[str, bytes]] = []
    for name in sorted({n for _, n, _ in lines}):
        ex.subscribe(name, lambda data, name=name: got.append((name, data)))
    start = ex.now_ms()
    assert start == T0
    clock.set(1_000_250)  # 250 ms of wall time at 2× = 500 ms of market time
    ex.step()
    assert ex.now_ms() == start + 500
    due = [(n, d) for t, n, d in lines if t <= start + 500]
    assert got == due and 0 < len(due) < len(lines)
    ex.pause()
    clock.set(1_010_000)
    ex.step()
    assert ex.now_ms() == start + 500 and len(got) == len(due)  # paused: nothing new
    ex.resume()
    ex.set_speed(10.0)
    clock.set(1_010_100)  # 100 ms at 10× after resuming
    ex.step()
    assert ex.now_ms() == start + 1500
    assert got == [(n, d) for t, n, d in lines if t <= start + 1500]
    ex.set_speed("max")
    ex.advance_to(start + 3_600_000)
    assert got == [(n, d) for _, n, d in lines] and ex.finished


def test_replayed_book_rest_and_derived_streams(recording: Path) -> None:
    ex = SimExchange(SimExchangeConfig(replay=str(recording), speed="max"))
    first = ex.depth("BTCUSDT", 1000)  # the file's REST snapshot is applied at start
    with gzip.open(recording, "rb") as fh:
        snaps = [orjson.loads(line.partition(b" ")[2]) for line in fh if b'"lastUpdateId"' in line[:60]]
    btc = next(s for s in snaps if s["symbol"] == "BTCUSDT")
    assert first["lastUpdateId"] == btc["lastUpdateId"] and first["bids"][:5] == btc["bids"][:5]
    derived: dict[str, list[Any]] = {"btcusdt@aggTrade": [], "btcusdt@depth@100ms": [], "btcusdt@kline_1m": []}
    for name, out in derived.items():
        ex.subscribe(name, lambda data, out=out: out.append(orjson.loads(data)))
    recorded_trades: list[Any] = []
    ex.subscribe("btcusdt@trade", lambda data: recorded_trades.append(orjson.loads(data)))
    ex.advance_to(ex.now_ms() + 3_600_000)
    agg = derived["btcusdt@aggTrade"]
    assert [(a["a"], a["f"], a["l"], a["p"], a["q"], a["m"]) for a in agg] == [
        (t["t"], t["t"], t["t"], t["p"], t["q"], t["m"]) for t in recorded_trades]
    assert [t["a"] for t in ex.agg_trades("BTCUSDT", from_id=agg[0]["a"], limit=1000)] == [
        a["a"] for a in agg][:1000]
    depth = derived["btcusdt@depth@100ms"]
    assert depth and all(b["pu"] == a["u"] for a, b in itertools.pairwise(depth))
    assert depth[-1]["u"] == ex.true_book("BTCUSDT")["lastUpdateId"]  # flushed when the file ended
    assert derived["btcusdt@kline_1m"]


def test_replay_of_a_csv_source_converts_rows_to_payloads(real_data: Path) -> None:
    path = real_data / "nautilus_trader" / "tardis_binance-futures_BTCUSDT_trades_2020-02-22.csv.gz"
    ex = SimExchange(SimExchangeConfig(replay=str(path), speed="max"))
    got: list[Any] = []
    ex.subscribe("btcusdt@aggTrade", lambda data: got.append(orjson.loads(data)))
    while not ex.finished:
        ex.advance_to(ex.now_ms() + 600_000)
    assert len(got) == 9999 and set(got[0]) == {"e", "E", "a", "s", "p", "q", "f", "l", "T", "m"}
    assert ex.klines("BTCUSDT", "1h", limit=10)[0][8] > 0
