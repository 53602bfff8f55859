"""SimExchange core: klines vs a brute-force aggregation of the served trades, aggTrade pagination,
the depth id chain of every depth stream, funding settlement, the history, BookAccess and takes."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbray.marketdata.events import DepthSnapshot, DepthUpdate
from arbray.marketdata.orderbook import LocalOrderBook
from arbray.sim.exchange import ExchangeError, SimExchange, SimExchangeConfig, aggregate_bars
from arbray.sim.model import HOUR_MS, MarketModelConfig
from arbray.sim.streams import INTERVAL_MS, UnknownStream, bucket_close, bucket_open, parse_stream

pytestmark = pytest.mark.unit

T0 = 1_723_075_200_000  # 2024-08-08 00:00 UTC, a multiple of 8 h


def exchange(**kw: Any) -> SimExchange:
    fields: dict[str, Any] = {"symbols": ("BTCUSDT", "ETHUSDT"), "start_ms": T0 + 60_000, "history_hours": 2.0,
                              "rate_scale": 0.3}
    fields.update(kw)
    return SimExchange(SimExchangeConfig(**fields))


class Collector:
    """Subscribes to streams and keeps the decoded payloads."""

    def __init__(self, ex: SimExchange, *streams: str) -> None:
        self.msgs: dict[str, list[Any]] = defaultdict(list)
        self.unsubs = [ex.subscribe(s, lambda data, s=s: self.msgs[s].append(orjson.loads(data))) for s in streams]


def brute_bars(trades: list[dict[str, Any]], interval: str) -> dict[int, tuple[float, float, float, float, float, int]]:
    """open ms → (o, h, l, c, volume, count) from raw aggTrades."""
    out: dict[int, list[Any]] = {}
    for t in trades:
        k = bucket_open(t["T"], interval)
        p, q = float(t["p"]), float(t["q"])
        b = out.get(k)
        if b is None:
            out[k] = [p, p, p, p, q, 1]
        else:
            b[1], b[2], b[3] = max(b[1], p), min(b[2], p), p
            b[4] += q
            b[5] += 1
    return {k: (v[0], v[1], v[2], v[3], round(v[4], 6), v[5]) for k, v in out.items()}


def test_klines_equal_a_brute_force_aggregation_of_the_served_trades() -> None:
    ex = exchange(symbols=("BTCUSDT",), rate_scale=0.15, step_ms=100)
    col = Collector(ex, "btcusdt@aggTrade", "btcusdt@kline_1m", "btcusdt@kline_5m")
    ex.advance_to(T0 + 8 * 60_000 + 30_000)
    trades = col.msgs["btcusdt@aggTrade"]
    assert len(trades) > 1000
    live_from = T0 + 60_000
    for interval in ("1m", "3m", "5m", "15m"):
        want = brute_bars(trades, interval)
        rows = ex.klines("BTCUSDT", interval, start_ms=live_from, limit=1500)
        got = {r[0]: (float(r[1]), float(r[2]), float(r[3]), float(r[4]), round(float(r[5]), 6), r[8])
               for r in rows if r[0] >= bucket_open(live_from, interval) and r[8] > 0}
        full = {k: v for k, v in want.items() if k >= live_from}  # the first 3m/15m bar also holds history
        assert {k: got[k] for k in full} == full, interval
        for r in rows:
            assert r[6] == bucket_close(r[0], interval) and len(r) == 12
    # every closed bar of a kline stream equals the REST bar; open-bar updates never run ahead of it
    for stream, interval in (("btcusdt@kline_1m", "1m"), ("btcusdt@kline_5m", "5m")):
        rest = {r[0]: r for r in ex.klines("BTCUSDT", interval, limit=1500)}
        finals = [m["k"] for m in col.msgs[stream] if m["k"]["x"]]
        assert len(finals) >= (7 if interval == "1m" else 1)
        for k in finals:
            r = rest[k["t"]]
            assert (k["o"], k["h"], k["l"], k["c"], k["v"], k["n"], k["q"], k["V"], k["Q"]) == (
                r[1], r[2], r[3], r[4], r[5], r[8], r[7], r[9], r[10])
        updates = [m for m in col.msgs[stream] if not m["k"]["x"]]
        assert updates and all(m["E"] <= m["k"]["T"] + 1 for m in updates)


def test_history_klines_join_the_live_bars_without_a_gap() -> None:
    ex = exchange(history_hours=48.0)
    ex.advance_to(T0 + 3 * 60_000)
    rows = ex.klines("BTCUSDT", "1m", limit=1500)
    opens = np.array([r[0] for r in rows])
    assert np.all(np.diff(opens) == 60_000)
    five = ex.klines("BTCUSDT", "5m", limit=1500)
    assert len(five) == 577 and five[-1][0] == T0  # 48 h of 5m bars plus the open one: ATR(14) warms up
    hist = [r for r in rows if r[0] < T0 + 60_000]
    assert all(b[1] == a[4] for a, b in itertools.pairwise(hist))  # history bars open at the last close
    live = rows[len(hist)]  # live bars open at their first trade: within a few ticks of the last close
    assert abs(float(live[1]) / float(hist[-1][4]) - 1) < 2e-4
    oi = ex.open_interest_hist("BTCUSDT", "5m", limit=500)
    assert len(oi) == 500 and all(r["timestamp"] % 300_000 == 0 for r in oi)
    assert float(oi[-1]["sumOpenInterest"]) == pytest.approx(80_000.0, rel=0.01)
    ratios = ex.long_short_ratio("BTCUSDT", "1h", "account", limit=48)
    assert len(ratios) == 48 and all(0.2 <= float(r["longAccount"]) <= 0.8 for r in ratios)
    assert len(ex.funding_rate("BTCUSDT")) == 6


def test_history_synthesis_is_fast() -> None:
    started = time.perf_counter()
    SimExchange(SimExchangeConfig(symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"), start_ms=T0, history_hours=48))
    assert time.perf_counter() - started < 1.0


def test_agg_trades_pagination_by_from_id_has_no_gaps_or_overlaps() -> None:
    ex = exchange()
    col = Collector(ex, "ethusdt@aggTrade")
    ex.advance_to(T0 + 5 * 60_000)
    served = [m["a"] for m in col.msgs["ethusdt@aggTrade"]]
    assert len(served) > 2500
    got: list[int] = []
    next_id = served[0]
    while True:
        page = ex.agg_trades("ETHUSDT", from_id=next_id, limit=1000)
        if not page:
            break
        got.extend(t["a"] for t in page)
        next_id = page[-1]["a"] + 1
    assert got == served
    assert np.all(np.diff(got) == 1)
    recent = ex.agg_trades("ETHUSDT", limit=10)
    assert [t["a"] for t in recent] == served[-10:]
    window = ex.agg_trades("ETHUSDT", start_ms=T0 + 120_000, end_ms=T0 + 121_000, limit=1000)
    assert window and all(T0 + 120_000 <= t["T"] <= T0 + 121_000 for t in window)
    with pytest.raises(ExchangeError) as err:
        ex.agg_trades("ETHUSDT", start_ms=T0, end_ms=T0 + 2 * HOUR_MS)
    assert err.value.code == -1127


def _diff(d: dict[str, Any]) -> DepthUpdate:
    return DepthUpdate(d["s"], d["E"], d["T"], d["U"], d["u"], d["pu"], d["b"], d["a"])


def test_every_depth_stream_chains_and_a_local_book_equals_the_true_book() -> None:
    ex = exchange()
    streams = ("btcusdt@depth@0ms", "btcusdt@depth@100ms", "btcusdt@depth", "btcusdt@depth@500ms")
    col = Collector(ex, *streams)
    ex.advance_to(T0 + 60_000 + 20)
    snap = ex.depth("BTCUSDT", 1000)
    books = {s: LocalOrderBook("BTCUSDT") for s in streams}
    for s, book in books.items():
        for d in col.msgs[s]:
            book.apply_diff(_diff(d))
        book.apply_snapshot(DepthSnapshot("BTCUSDT", snap["lastUpdateId"], snap["T"],
                                          [(float(p), float(q)) for p, q in snap["bids"]],
                                          [(float(p), float(q)) for p, q in snap["asks"]]))
    seen = {s: len(col.msgs[s]) for s in streams}
    ex.advance_to(T0 + 3 * 60_000 + 37)
    ex.pause()  # publishes what the conflated streams still hold
    true = ex.true_book("BTCUSDT")
    for s in streams:
        msgs = col.msgs[s]
        for prev, cur in itertools.pairwise(msgs):
            assert cur["pu"] == prev["u"] and cur["U"] > prev["u"] and cur["u"] >= cur["U"]
        for d in msgs[seen[s]:]:
            books[s].apply_diff(_diff(d))
        book = books[s]
        assert book.synced and book.resyncs == 0, (s, book.stats)
        assert book.last_update_id == true["lastUpdateId"], s
        assert book.bids == {float(p): float(q) for p, q in true["bids"]}, s
        assert book.asks == {float(p): float(q) for p, q in true["asks"]}, s
    speeds = {s: np.diff([m["E"] for m in col.msgs[s]]) for s in streams[1:]}
    assert np.all(speeds["btcusdt@depth@100ms"] % 100 == 0)
    assert np.all(speeds["btcusdt@depth"] % 250 == 0)
    assert np.all(speeds["btcusdt@depth@500ms"][:-1] % 500 == 0)


def test_the_exchange_book_is_the_model_book() -> None:
    ex = exchange()
    ex.advance_to(T0 + 2 * 60_000)
    model = ex.source.model  # type: ignore[attr-defined]
    for i, sym in enumerate(ex.symbols):
        book = ex.true_book(sym)
        ms = model.syms[i]
        tick = 10 ** ms.spec.price_decimals
        assert {round(float(p) * tick): round(float(q) * ms.qscale) for p, q in book["bids"]} == ms.bids
        assert {round(float(p) * tick): round(float(q) * ms.qscale) for p, q in book["asks"]} == ms.asks
        assert book["lastUpdateId"] == ms.prev_final


def test_partial_depth_is_the_top_of_the_true_book() -> None:
    ex = exchange()
    col = Collector(ex, "btcusdt@depth5", "btcusdt@depth20@100ms")
    ex.advance_to(T0 + 60_000 + 2_000)
    for stream, levels in (("btcusdt@depth5", 5), ("btcusdt@depth20@100ms", 20)):
        last = col.msgs[stream][-1]
        true = ex.true_book("BTCUSDT")
        assert last["u"] == true["lastUpdateId"]
        assert last["b"] == true["bids"][:levels] and last["a"] == true["asks"][:levels]


def test_funding_settles_at_eight_hour_boundaries_with_the_model_rate() -> None:
    cfg = MarketModelConfig(symbols=("BTCUSDT",), start_ms=T0 + 8 * HOUR_MS - 30 * 60_000, hours=1.0, step_ms=1000,
                            rate_scale=0.02, max_levels=40, refill_levels=2)
    ex = SimExchange(SimExchangeConfig(symbols=("BTCUSDT",), model=cfg, history_hours=9.0))
    settled: list[tuple[str, int, float, float]] = []
    ex.on_funding(lambda *a: settled.append(a))
    assert ex.premium_index("BTCUSDT")["nextFundingTime"] == T0 + 8 * HOUR_MS
    ex.advance_to(T0 + 8 * HOUR_MS + 10 * 60_000)
    model_funding = ex.source.model.stats["BTCUSDT"].funding  # type: ignore[attr-defined]
    assert [(s[1], s[2]) for s in settled] == model_funding == [(T0 + 8 * HOUR_MS, model_funding[0][1])]
    rows = ex.funding_rate("BTCUSDT", limit=1000)
    assert rows[-1]["fundingTime"] == T0 + 8 * HOUR_MS and float(rows[-1]["fundingRate"]) == settled[0][2]
    assert [r["fundingTime"] for r in rows] == sorted(r["fundingTime"] for r in rows)
    assert all(r["fundingTime"] % (8 * HOUR_MS) == 0 for r in rows)
    assert ex.premium_index("BTCUSDT")["nextFundingTime"] == T0 + 16 * HOUR_MS


def test_take_walks_the_book_up_to_the_limit_and_is_published() -> None:
    ex = exchange()
    ex.advance_to(T0 + 70_000)
    col = Collector(ex, "btcusdt@aggTrade", "btcusdt@depth@0ms", "btcusdt@bookTicker")
    public: list[tuple[str, int, float, float, bool]] = []
    ex.on_trade(lambda *a: public.append(a))
    ask = ex.best_ask("BTCUSDT")
    assert ask is not None
    asks = ex.true_book("BTCUSDT")["asks"]
    limit = float(asks[2][0])
    want = sum(float(q) for _, q in asks[:3])
    fills = ex.take("BTCUSDT", True, 1000.0, limit)
    assert [p for p, _ in fills] == [float(p) for p, _ in asks[:3]]
    assert sum(q for _, q in fills) == pytest.approx(want)
    assert all(p <= limit for p, _ in fills)
    assert [(t["p"], t["q"], t["m"]) for t in col.msgs["btcusdt@aggTrade"]] == [
        (f"{p:.1f}", f"{q:.3f}", False) for p, q in fills]
    assert [(a[2], a[3], a[4]) for a in public] == [(p, q, False) for p, q in fills]
    after = ex.true_book("BTCUSDT")
    assert float(after["asks"][0][0]) > limit
    assert col.msgs["btcusdt@depth@0ms"][-1]["u"] == after["lastUpdateId"]
    assert float(col.msgs["btcusdt@bookTicker"][-1]["a"]) == float(after["asks"][0][0])
    sell = ex.take("BTCUSDT", False, 0.001, None)
    assert len(sell) == 1 and sell[0][1] == pytest.approx(0.001)


def test_mark_price_streams_and_the_all_market_array() -> None:
    ex = exchange()
    col = Collector(ex, "btcusdt@markPrice@1s", "btcusdt@markPrice", "!markPrice@arr@1s", "!markPrice@arr")
    ex.advance_to(T0 + 60_000 + 9_500)
    one = col.msgs["btcusdt@markPrice@1s"]
    assert len(one) == 10 and all(m["E"] % 1000 == 0 for m in one)
    three = col.msgs["btcusdt@markPrice"]
    assert [m["E"] for m in three] == [T0 + 60_000 + k for k in (0, 3000, 6000, 9000)]
    arr = col.msgs["!markPrice@arr@1s"]
    assert len(arr) == 10 and all([d["s"] for d in a] == ["BTCUSDT", "ETHUSDT"] for a in arr)
    assert [a[0]["E"] for a in col.msgs["!markPrice@arr"]] == [m["E"] for m in three]


def test_unknown_streams_and_bad_requests_are_refused() -> None:
    ex = exchange()
    for name in ("btcusdt@aggtrade", "BTCUSDT@aggTrade", "dogeusdt@aggTrade", "btcusdt@kline_7m", "btcusdt@depth7",
                 "btcusdt@depth5@0ms", "!bogus"):
        with pytest.raises(UnknownStream):
            ex.subscribe(name, lambda data: None)
    for call, code in ((lambda: ex.depth("BTCUSDT", 7), -1130), (lambda: ex.depth("NOPEUSDT", 5), -1121),
                       (lambda: ex.klines("BTCUSDT", "7m"), -1120),
                       (lambda: ex.open_interest_hist("BTCUSDT", "7m"), -1130)):
        with pytest.raises(ExchangeError) as err:
            call()
        assert err.value.code == code


def test_stream_names_parse_to_their_kind_and_speed() -> None:
    syms = {"BTCUSDT"}
    cases = {
        "btcusdt@aggTrade": ("aggTrade", 0), "btcusdt@depth": ("depth", 250), "btcusdt@depth@100ms": ("depth", 100),
        "btcusdt@depth@0ms": ("depth", 0), "btcusdt@depth10@500ms": ("partialDepth", 500),
        "btcusdt@markPrice": ("markPrice", 3000), "btcusdt@markPrice@1s": ("markPrice", 1000),
        "!forceOrder@arr": ("forceOrder", 1000), "btcusdt@kline_1M": ("kline", 250),
    }
    for name, (kind, speed) in cases.items():
        spec = parse_stream(name, syms)
        assert (spec.kind, spec.speed_ms) == (kind, speed), name


def test_calendar_buckets() -> None:
    ms = 1_723_075_200_000 + 3 * 86_400_000 + 5  # Sunday 2024-08-11
    assert bucket_open(ms, "1w") == 1_722_816_000_000  # Monday 2024-08-05
    assert bucket_open(ms, "1M") == 1_722_470_400_000  # 2024-08-01
    assert bucket_close(1_722_470_400_000, "1M") == 1_725_148_800_000 - 1
    assert INTERVAL_MS["1M"] == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4 * 86_400_000), st.integers(1, 10_000), st.integers(1, 50),
                          st.booleans()), min_size=1, max_size=300),
       st.sampled_from(["3m", "5m", "1h", "4h", "1d", "1w", "1M"]))
def test_aggregated_bars_equal_brute_force_over_random_trades(trades: list[tuple[int, int, int, bool]],
                                                              interval: str) -> None:
    trades.sort(key=lambda t: t[0])
    minutes: dict[int, list[int]] = {}
    for tid, (ms, px, qty, maker) in enumerate(trades):
        k = ms - ms % 60_000
        b = minutes.get(k)
        if b is None:
            b = minutes[k] = [k, px, px, px, px, 0, 0, 0, 0, 0, tid, tid]
        b[2], b[3], b[4] = max(b[2], px), min(b[3], px), px
        b[5] += qty
        b[6] += px * qty
        b[7] += 1
        if not maker:
            b[8] += qty
            b[9] += px * qty
        b[11] = tid
    rows = np.array([minutes[k] for k in sorted(minutes)], np.int64)
    got = {int(r[0]): [int(v) for v in r] for r in aggregate_bars(rows, interval)}
    want: dict[int, list[int]] = {}
    for tid, (ms, px, qty, maker) in enumerate(trades):
        k = bucket_open(ms, interval)
        b = want.get(k)
        if b is None:
            b = want[k] = [k, px, px, px, px, 0, 0, 0, 0, 0, tid, tid]
        b[2], b[3], b[4] = max(b[2], px), min(b[3], px), px
        b[5] += qty
        b[6] += px * qty
        b[7] += 1
        if not maker:
            b[8] += qty
            b[9] += px * qty
        b[11] = tid
    assert got == want


def test_liquidations_follow_binance_snapshot_semantics() -> None:
    cfg = MarketModelConfig(symbols=("BTCUSDT", "ETHUSDT"), start_ms=T0, initial_regime="crash",
                            crash_mean_minutes=10_000, crash_drift_per_min=-0.02, liq_rate_per_s=5.0, rate_scale=0.1,
                            step_ms=250, refill_levels=8)
    ex = SimExchange(SimExchangeConfig(symbols=cfg.symbols, model=cfg, history_hours=0))
    col = Collector(ex, "btcusdt@forceOrder", "!forceOrder@arr")
    ex.advance_to(T0 + 4 * 60_000)
    own = col.msgs["btcusdt@forceOrder"]
    assert own and all(m["o"]["S"] == "SELL" and m["o"]["X"] == "FILLED" for m in own)
    seconds = [m["E"] // 1000 for m in own]
    assert len(seconds) == len(set(seconds))  # at most the latest one per symbol per second
    every = col.msgs["!forceOrder@arr"]
    assert {m["o"]["s"] for m in every} == {"BTCUSDT", "ETHUSDT"}
    assert [m for m in every if m["o"]["s"] == "BTCUSDT"] == own
    assert ex.stats()["symbols"]["BTCUSDT"]["liquidations"] == len(own)
