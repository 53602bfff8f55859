"""Fault injection: exact, seeded counts; every frame accounted for; every malformed frame is one
the Binance parser rejects; configs from YAML/JSON."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from arbray.marketdata.parser import BinanceParser
from arbray.sim.exchange import SimExchange, SimExchangeConfig
from arbray.sim.faults import FaultConfig, FaultInjector, StreamFaults, corrupt

pytestmark = pytest.mark.unit

STREAMS = {"btcusdt@aggTrade": "aggTrade", "btcusdt@depth@100ms": "depth", "btcusdt@bookTicker": "bookTicker",
           "btcusdt@markPrice@1s": "markPrice", "btcusdt@kline_1m": "kline", "btcusdt@depth5": "partialDepth"}


@pytest.fixture(scope="module")
def messages() -> list[tuple[str, bytes]]:
    """Real simulator payloads of several kinds, in publication order."""
    ex = SimExchange(SimExchangeConfig(start_ms=1_723_075_200_000, history_hours=0, rate_scale=0.3))
    out: list[tuple[str, bytes]] = []
    for name, kind in STREAMS.items():
        ex.subscribe(name, lambda data, kind=kind: out.append((kind, data)))
    ex.advance_to(1_723_075_200_000 + 20_000)
    assert len(out) > 2000
    return out


class _Sink:
    def on_trade(self, *a: Any) -> None: ...

    def on_book_ticker(self, *a: Any) -> None: ...

    def on_event(self, event: Any) -> None: ...


class _Router:
    def route(self, symbol: str) -> _Sink:
        return _Sink()


def run(inj: FaultInjector, msgs: list[tuple[str, bytes]]) -> list[bytes]:
    """The frames one connection sends, plus the one still held for a reorder (if any)."""
    conn = inj.connection()
    out: list[bytes] = []
    for kind, data in msgs:
        out.extend(conn.apply(kind, data))
    return out + ([conn.held] if conn.held is not None else [])


CFG = FaultConfig(seed=7, depth_gap_rate=0.05, streams={
    "aggTrade": StreamFaults(drop=0.05, duplicate=0.05, reorder=0.05, malformed=0.05),
    "*": StreamFaults(drop=0.02, malformed=0.03, duplicate=0.01)})


def test_counts_are_exact_and_reproducible_for_a_seed(messages: list[tuple[str, bytes]]) -> None:
    a, b = FaultInjector(CFG), FaultInjector(CFG)
    out_a, out_b = run(a, messages), run(b, messages)
    assert out_a == out_b and a.counts == b.counts
    c = FaultInjector(CFG.model_copy(update={"seed": 8}))
    assert run(c, messages) != out_a
    counts = a.counts
    by_kind = Counter(kind for kind, _ in messages)
    for kind in ("aggTrade", "depth", "bookTicker"):
        assert counts[f"drop:{kind}"] > 0 and counts[f"malformed:{kind}"] > 0, kind
    assert counts["depth_gap"] > 0 and counts["reorder:aggTrade"] > 0 and counts["duplicate:aggTrade"] > 0
    assert set(counts) >= {"malformed_variant:truncated", "malformed_variant:wrong_type",
                           "malformed_variant:nan_price"}
    removed = sum(v for k, v in counts.items() if k.startswith("drop:")) + counts["depth_gap"]
    added = sum(v for k, v in counts.items() if k.startswith("duplicate:"))
    assert len(out_a) == len(messages) - removed + added
    assert sum(by_kind.values()) == len(messages)


def test_every_malformed_frame_is_rejected_by_the_parser(messages: list[tuple[str, bytes]]) -> None:
    inj = FaultInjector(FaultConfig(seed=3, streams={"*": StreamFaults(malformed=0.2)}))
    parser = BinanceParser(_Router())
    frames = run(inj, messages)
    for f in frames:
        parser.feed(f)
    malformed = sum(v for k, v in inj.counts.items() if k.startswith("malformed:"))
    assert malformed > 100
    assert sum(parser.rejects.values()) == malformed
    assert sum(parser.events.values()) == len(messages) - malformed


def test_reorder_swaps_adjacent_frames(messages: list[tuple[str, bytes]]) -> None:
    trades = [(k, d) for k, d in messages if k == "aggTrade"]
    inj = FaultInjector(FaultConfig(seed=1, streams={"aggTrade": StreamFaults(reorder=0.1)}))
    ids = [orjson.loads(f)["a"] for f in run(inj, trades)]
    swaps = sum(1 for x, y in itertools.pairwise(ids) if y < x)
    assert swaps == inj.counts["reorder:aggTrade"] > 0
    assert sorted(ids) == [orjson.loads(d)["a"] for _, d in trades]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 1000), st.floats(0, 0.5), st.floats(0, 0.5), st.floats(0, 0.5), st.floats(0, 0.5),
       st.floats(0, 0.5))
def test_every_message_is_accounted_for(seed: int, drop: float, dup: float, reorder: float, bad: float,
                                        gap: float) -> None:
    msgs = [("depth" if k % 3 == 0 else "aggTrade", b'{"e":"aggTrade","s":"BTCUSDT","p":"1.0","a":%d}' % k)
            for k in range(300)]
    inj = FaultInjector(FaultConfig(seed=seed, depth_gap_rate=gap, streams={
        "*": StreamFaults(drop=drop, duplicate=dup, reorder=reorder, malformed=bad)}))
    conn = inj.connection()
    out = [f for kind, d in msgs for f in conn.apply(kind, d)]
    c = inj.counts
    removed = sum(v for k, v in c.items() if k.startswith("drop:")) + c["depth_gap"]
    added = sum(v for k, v in c.items() if k.startswith("duplicate:"))
    assert len(out) + (conn.held is not None) == len(msgs) - removed + added


def test_rest_and_order_faults_are_seeded_and_counted() -> None:
    cfg = FaultConfig(seed=5, rest_5xx_rate=0.1, rest_timeout_rate=0.1, order_reject_rate=0.3)
    a, b = FaultInjector(cfg), FaultInjector(cfg)
    seq_a = [(a.rest_fault(), a.order_fault()) for _ in range(500)]
    seq_b = [(b.rest_fault(), b.order_fault()) for _ in range(500)]
    assert seq_a == seq_b
    assert a.counts["rest_5xx"] == sum(1 for r, _ in seq_a if r == "5xx") > 20
    assert a.counts["rest_timeout"] == sum(1 for r, _ in seq_a if r == "timeout") > 20
    codes = Counter(o for _, o in seq_a if o is not None)
    assert set(codes) == {-2010, -1008, -1007}
    assert all(a.counts[f"order_reject:{k}"] == v for k, v in codes.items())
    assert FaultInjector().order_fault() is None and FaultInjector().rest_fault() is None


def test_corrupt_variants() -> None:
    data = b'{"e":"aggTrade","E":1,"a":2,"s":"BTCUSDT","p":"60000.1","q":"0.010","f":3,"l":3,"T":1,"m":true}'
    assert corrupt(data, 0)[1] == "truncated" and len(corrupt(data, 0)[0]) < len(data)
    assert corrupt(data, 1) == (data.replace(b'"s":"BTCUSDT"', b'"s":12345'), "wrong_type")
    assert corrupt(data, 2) == (data.replace(b'"p":"60000.1"', b'"p":"NaN"'), "nan_price")
    depth = b'{"e":"depthUpdate","E":1,"T":1,"U":1,"u":2,"pu":0,"b":[["1.5","2"]],"a":[]}'
    assert corrupt(depth, 2)[0].startswith(b'{"e":"depthUpdate"') and b'[["NaN"' in corrupt(depth, 2)[0]


def test_config_from_yaml_and_json_and_rules(tmp_path: Path) -> None:
    y = tmp_path / "f.yaml"
    y.write_text("seed: 3\ndisconnect_every_s: 2.5\nstreams:\n  depth: {drop: 0.1}\n  '*': {duplicate: 0.01}\n")
    cfg = FaultConfig.from_file(y)
    assert cfg.disconnect_every_s == 2.5 and cfg.for_kind("depth").drop == 0.1
    assert cfg.for_kind("aggTrade").duplicate == 0.01 and cfg.streams_active
    j = tmp_path / "f.json"
    j.write_text(orjson.dumps(cfg.model_dump(mode="json")).decode())
    assert FaultConfig.from_file(j) == cfg
    assert not FaultConfig().streams_active
    with pytest.raises(ValidationError):
        FaultConfig(stall_every_s=1.0, stall_s=2.0)
    with pytest.raises(ValidationError):
        FaultConfig.model_validate({"streams": {"nonsense": {"drop": 0.1}}})
    with pytest.raises(ValidationError):
        FaultConfig(rest_5xx_rate=1.5)
