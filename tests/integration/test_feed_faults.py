"""The feed client against the simulator with faults on: complete trades, exact books, every reject counted.

One bounded run (≈15 s of wall time, the market at 4×) with disconnects every 3 s, dropped /
duplicated / reordered / malformed messages on every stream kind, depth id gaps, and REST 5xx and
timeouts. Checked against the server's own records:

- the aggTrade ids each sink received equal the server's aggTrade list over the same range: no
  gap, no duplicate, in order (the REST gap fill recovered everything lost);
- at several pauses of the market the local book equals ``/_sim/true_book`` level for level, after
  the resyncs the faults forced;
- every malformed frame that reached the client is a counted reject, and the test prints what the
  server injected next to what the client recovered.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp
import orjson
import pytest

from arbray.features.symbol import SymbolFeatures
from arbray.feeds.client import MarketFeed
from arbray.feeds.config import FeedConfig
from arbray.marketdata.events import Event, ForceOrder
from arbray.replay.engine import MarketState
from arbray.sim.exchange import SimExchange, SimExchangeConfig
from arbray.sim.server import SimServer, SimServerConfig

pytestmark = pytest.mark.integration

SYMBOLS = ("BTCUSDT", "ETHUSDT")


class TrackingFeatures(SymbolFeatures):
    """``SymbolFeatures`` that also remembers every trade id and liquidation it was given."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.ids: list[int] = []
        self.liquidations: list[ForceOrder] = []

    def on_trade(self, ts_ms: int, price: float, qty: float, is_buyer_maker: bool, trade_id: int, id_kind: str,
                 recv_ns: int) -> None:
        self.ids.append(trade_id)
        super().on_trade(ts_ms, price, qty, is_buyer_maker, trade_id, id_kind, recv_ns)

    def on_event(self, ev: Event) -> None:
        if isinstance(ev, ForceOrder):
            self.liquidations.append(ev)
        super().on_event(ev)


class TrackingState(MarketState):
    def get(self, symbol: str) -> TrackingFeatures:
        s = self.symbols.get(symbol)
        if s is None:
            s = self.symbols[symbol] = TrackingFeatures(symbol, self.config, rejects=self.rejects)
        assert isinstance(s, TrackingFeatures)
        return s


FAULTS = {
    "seed": 7,
    "disconnect_every_s": 3.0,
    "streams": {
        "aggTrade": {"drop": 0.01, "duplicate": 0.03, "reorder": 0.03, "malformed": 0.01},
        "depth": {"drop": 0.01, "duplicate": 0.03, "reorder": 0.03, "malformed": 0.01},
        "bookTicker": {"drop": 0.01, "duplicate": 0.02, "reorder": 0.02, "malformed": 0.01},
        "markPrice": {"duplicate": 0.1, "malformed": 0.05},
    },
    "depth_gap_rate": 0.005,
    "rest_5xx_rate": 0.05,
    "rest_timeout_rate": 0.02,
    "rest_timeout_s": 1.5,
}


def malformed_kind(raw: bytes) -> str | None:
    """How the simulator corrupted a frame (``arbray.sim.faults.corrupt``), judged independently of the parser."""
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "truncated"
    if b'"s":12345' in raw:
        return "wrong_type"
    if b'"NaN"' in raw:
        return "nan"
    return None


async def wait_for(pred: Any, timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(step)
    return bool(pred())


def book_levels(levels: list[list[str]]) -> dict[float, float]:
    return {float(p): float(q) for p, q in levels}


async def _faults_run(transport: str) -> None:
    ex = SimExchange(SimExchangeConfig(symbols=SYMBOLS, seed=11, speed=4.0, history_hours=0.25))
    server = SimServer(ex, SimServerConfig())
    await server.start()
    state = TrackingState()
    config = FeedConfig(ws_base=server.ws_url, rest_base=server.rest_url, symbols=SYMBOLS, pollers=(),
                        rest_timeout_s=0.5, rest_max_attempts=10, watchdog_s=5.0, gap_grace_ms=20,
                        backoff_initial_s=0.05, backoff_max_s=0.5, transport=transport)
    feed = MarketFeed(config, state)
    frames: Counter[str] = Counter()
    deliver = feed._on_message

    def tap(raw: bytes, recv_ns: int) -> None:  # what reached the client, classified independently
        frames["frames"] += 1
        kind = malformed_kind(raw)
        if kind is not None:
            frames[kind] += 1
        deliver(raw, recv_ns)

    feed._on_message = tap  # type: ignore[method-assign]
    http = aiohttp.ClientSession()
    base = server.rest_url
    verified = 0
    try:
        async with http.post(f"{base}/_sim/faults", data=orjson.dumps(FAULTS)) as r:
            assert r.status == 200
        await feed.start()
        started = time.monotonic()
        rounds = 0
        resyncs_at_verify: list[int] = []
        while (verified < 4 or time.monotonic() - started < 12) and rounds < 12 and time.monotonic() - started < 30:
            rounds += 1
            await asyncio.sleep(1.5)
            async with http.post(f"{base}/_sim/pause") as r:
                assert r.status == 200
            true: dict[str, Any] = {}
            for sym in SYMBOLS:
                async with http.get(f"{base}/_sim/true_book", params={"symbol": sym}) as r:
                    true[sym] = await r.json()

            def converged(true: dict[str, Any] = true) -> bool:
                return all(state.symbols[s].book.synced and state.symbols[s].book.last_update_id
                           == true[s]["lastUpdateId"] for s in SYMBOLS)

            if await wait_for(converged, 3.0):
                for sym in SYMBOLS:
                    book = state.symbols[sym].book
                    assert book.bids == book_levels(true[sym]["bids"]), f"{sym} bids differ after resyncs"
                    assert book.asks == book_levels(true[sym]["asks"]), f"{sym} asks differ after resyncs"
                verified += 1
                resyncs_at_verify.append(sum(state.symbols[s].book.resyncs for s in SYMBOLS))
            async with http.post(f"{base}/_sim/resume") as r:
                assert r.status == 200
        # End: freeze the market, stop injecting, let the gap fill finish.
        async with http.post(f"{base}/_sim/pause") as r:
            assert r.status == 200
        settled = await wait_for(lambda: feed.stats()["gaps"]["held_now"] == 0 and all(
            ch.fill_task is None for ch in feed.channels.values()), 10.0)
        assert settled, (feed.stats()["gaps"], feed.stats()["rest"],
                         {s: (c.trades.gap(), c.trades.held, c.fill_task) for s, c in feed.channels.items()})
        async with http.get(f"{base}/_sim/state") as r:
            sim_state = await r.json()
    finally:
        await feed.stop()
        await http.close()
        await server.stop()

    stats = feed.stats()
    injected = sim_state["faults"]
    malformed_injected = sum(v for k, v in injected.items() if k.startswith("malformed:"))
    malformed_received = frames["truncated"] + frames["wrong_type"] + frames["nan"]
    print("\ninjected by the server:", orjson.dumps(injected).decode())
    print("received by the client:", dict(frames))
    print("recovered:", orjson.dumps({
        "verified_book_rounds": verified, "rounds": rounds, "book_resyncs": stats["book"]["resyncs"],
        "resyncs_at_each_verified_round": resyncs_at_verify, "snapshots": stats["book"]["snapshots_fetched"],
        "reconnects": stats["reconnects"], "gaps": {k: v for k, v in stats["gaps"].items()},
        "duplicates_dropped": stats["duplicates_dropped"], "out_of_order": stats["out_of_order"],
        "rejects": stats["rejects"], "rest": stats["rest"]}).decode())

    # Every trade once, in order, equal to the server's list over the same id range.
    for sym in SYMBOLS:
        ids = state.symbols[sym].ids
        assert len(ids) > 200, f"{sym}: too few trades to mean anything"
        served: list[int] = []
        while not served or served[-1] < ids[-1]:
            page = ex.agg_trades(sym, from_id=ids[0] if not served else served[-1] + 1, limit=1000)
            assert page, f"{sym}: server has no trades after {served[-1] if served else ids[0]}"
            served += [t["a"] for t in page]
        served = [a for a in served if a <= ids[-1]]
        assert ids == served, f"{sym}: delivered ids differ from the server's aggTrade list"
    assert stats["gaps"]["unfillable"] == 0 and stats["gaps"]["ids_unfillable"] == 0
    assert stats["gaps"]["detected"] > 0 and stats["gaps"]["ids_filled_rest"] > 0

    # Books: exact at every verified pause, and the faults did force resyncs before them.
    assert verified >= 3, f"only {verified} of {rounds} pauses converged"
    assert stats["book"]["resyncs"] > 0 and resyncs_at_verify[-1] > 0

    # Every malformed frame the client received is a counted reject, nothing else was rejected.
    assert malformed_injected > 0 and malformed_received > 0
    assert stats["rejects_total"] == malformed_received, (stats["rejects"], dict(frames))
    assert malformed_received >= 0.8 * malformed_injected  # the rest was queued on connections the faults closed

    # Disconnects were injected and every one was followed by a reconnect; duplicates were dropped.
    assert injected["disconnect"] >= 2 and stats["reconnects"] >= injected["disconnect"] - 1
    assert stats["duplicates_total"] > 0 and stats["task_errors"] == []
    assert injected.get("rest_5xx", 0) + injected.get("rest_timeout", 0) == 0 or stats["rest"]["retries"] > 0


@pytest.mark.parametrize("transport", ["aiohttp", "websockets"])
def test_feed_recovers_everything_under_faults(transport: str) -> None:
    asyncio.run(asyncio.wait_for(_faults_run(transport), 90))
