"""The feed client against the simulator over loopback: rotation, watchdog, sharding, snapshot
throttling, rate-limit back-off and the REST pollers feeding ``SymbolFeatures``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from arbray.clock import ManualClock
from arbray.feeds.client import MarketFeed
from arbray.feeds.config import FeedConfig, RestConfig
from arbray.feeds.rest import BinanceRest
from arbray.replay.engine import MarketState
from arbray.sim.exchange import SimExchange, SimExchangeConfig
from arbray.sim.faults import FaultConfig
from arbray.sim.model import MarketModelConfig
from arbray.sim.server import SimServer, SimServerConfig
from tests.integration.test_feed_faults import TrackingState, wait_for

pytestmark = pytest.mark.integration


async def _with_sim(body: Callable[[SimExchange, SimServer], Awaitable[None]], symbols: tuple[str, ...] = ("BTCUSDT",),
                    speed: float = 2.0, model: MarketModelConfig | None = None, rate_scale: float = 1.0,
                    clock: ManualClock | None = None, **server: Any) -> None:
    """Run ``body`` against a simulator on an ephemeral loopback port (``server``: SimServerConfig fields)."""
    ex = SimExchange(SimExchangeConfig(symbols=symbols, seed=5, speed=speed, history_hours=0.5, model=model,
                                       rate_scale=rate_scale))
    srv = SimServer(ex, SimServerConfig(**server), clock=clock)
    await srv.start()
    try:
        await asyncio.wait_for(body(ex, srv), 60)
    finally:
        await srv.stop()


def _feed_config(srv: SimServer, symbols: tuple[str, ...] = ("BTCUSDT",), **kw: Any) -> FeedConfig:
    return FeedConfig.model_validate({"ws_base": srv.ws_url, "rest_base": srv.rest_url, "symbols": symbols,
                                      "pollers": (), **kw})


def _served_ids(ex: SimExchange, symbol: str, first: int, last: int) -> list[int]:
    out: list[int] = []
    while not out or out[-1] < last:
        page = ex.agg_trades(symbol, from_id=first if not out else out[-1] + 1, limit=1000)
        assert page
        out += [t["a"] for t in page]
    return [a for a in out if a <= last]


def _liq_key(o: dict[str, Any]) -> tuple[Any, ...]:
    return (int(o["T"]), o["S"], float(o["p"]), float(o["ap"]), float(o["q"]), float(o["z"]))


TRANSPORTS = pytest.mark.parametrize("transport", ["aiohttp", "websockets"])


@TRANSPORTS
def test_rotation_has_no_gap_and_no_duplicate(transport: str) -> None:
    """Connections rotate every 1.5 s (the server would close them at 5 s): trades stay gap-free
    without any REST fill, and each liquidation — subscribed twice, per symbol and all-market —
    reaches the sink exactly once."""
    model = MarketModelConfig(symbols=("BTCUSDT",), seed=5, liq_threshold_1m=0.0002, liq_rate_per_s=2.0)

    async def body(ex: SimExchange, srv: SimServer) -> None:
        published: list[dict[str, Any]] = []
        ex.subscribe("btcusdt@forceOrder", lambda b: published.append(orjson.loads(b)["o"]))
        state = TrackingState()
        cfg = _feed_config(srv, streams=("aggTrade", "depth@100ms", "bookTicker", "forceOrder"),
                           global_streams=("!forceOrder@arr",), rotation_s=1.5, rotation_overlap_s=0.3,
                           watchdog_s=1.0, transport=transport)
        feed = MarketFeed(cfg, state)
        await feed.start()
        try:
            assert await wait_for(lambda: feed.stats()["rotations"] >= 4, 12.0), feed.stats()["ws"]
            assert feed.connections in (1, 2)
        finally:
            await feed.stop()
        stats = feed.stats()
        sink = state.symbols["BTCUSDT"]
        print("\nrotation:", orjson.dumps({k: stats[k] for k in ("rotations", "reconnects", "ws", "gaps",
                                                                  "duplicates_dropped")}).decode())
        assert stats["reconnects"] == 0 and stats["ws"].get("rotation_failures", 0) == 0
        assert stats["gaps"]["detected"] == 0 and stats["gaps"]["fill_requests"] == 0
        assert sink.ids == _served_ids(ex, "BTCUSDT", sink.ids[0], sink.ids[-1])
        assert stats["duplicates_dropped"].get("aggTrade", 0) > 0  # the overlaps did deliver trades twice
        got = [(lq.trade_ms, lq.side, lq.price, lq.avg_price, lq.qty, lq.filled_qty) for lq in sink.liquidations]
        assert got and len(got) == len(set(got)), "a liquidation reached the sink twice"
        lo, hi = got[0][0], got[-1][0]
        want = [k for k in map(_liq_key, published) if lo <= k[0] <= hi]
        assert got == want, "liquidations differ from what the exchange published"
        assert stats["duplicates_dropped"]["forceOrder"] >= len(got)  # each came per symbol and all-market
        assert stats["book"]["symbols"]["BTCUSDT"]["resyncs"] == 0

    asyncio.run(_with_sim(body, model=model, max_lifetime_s=5.0))


@TRANSPORTS
def test_watchdog_replaces_a_silent_connection(transport: str) -> None:
    """The server stalls (open but silent) for 1.2 s every 2.5 s: the watchdog aborts and reconnects,
    and the trades lost in the stall come back through the REST gap fill."""

    async def body(ex: SimExchange, srv: SimServer) -> None:
        state = TrackingState()
        feed = MarketFeed(_feed_config(srv, watchdog_s=0.4, backoff_initial_s=0.05, backoff_max_s=0.2,
                                       transport=transport), state)
        await feed.start()
        try:
            assert await wait_for(lambda: srv.faults.counts["stall"] >= 2, 10.0)
            await asyncio.sleep(1.6)  # past the second stall
            ex.pause()
            assert await wait_for(lambda: feed.stats()["gaps"]["held_now"] == 0, 5.0)
        finally:
            await feed.stop()
        stats = feed.stats()
        print("\nwatchdog:", orjson.dumps({k: stats[k] for k in ("ws", "reconnects", "gaps")}).decode(),
              dict(srv.faults.counts))
        sink = state.symbols["BTCUSDT"]
        assert srv.faults.counts["stall"] >= 2 and srv.faults.counts["stall_dropped"] > 0
        assert stats["ws"]["watchdog_reconnects"] >= 2 and stats["reconnects"] >= 2
        assert sink.ids == _served_ids(ex, "BTCUSDT", sink.ids[0], sink.ids[-1])
        assert stats["gaps"]["ids_filled_rest"] > 0 and stats["gaps"]["unfillable"] == 0

    faults = FaultConfig(stall_every_s=2.5, stall_s=1.2)
    asyncio.run(_with_sim(body, faults=faults))


@pytest.mark.parametrize("via", ["url", "subscribe"])
def test_streams_are_sharded(via: str) -> None:
    """11 symbols x 20 streams = 220 streams: two connections at the default 200 per connection,
    every stream delivering; with SUBSCRIBE messages paced under the 10 messages/s limit."""
    symbols = tuple(f"{s}USDT" for s in ("BTC", "ETH", "SOL", "XRP", "BNB", "DOGE", "ADA", "LTC", "LINK", "AVAX",
                                          "DOT"))
    intervals = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")
    kinds = ("aggTrade", "depth@100ms", "bookTicker", "markPrice@1s", "forceOrder", *(f"kline_{i}" for i in intervals))

    async def body(ex: SimExchange, srv: SimServer) -> None:
        cfg = _feed_config(srv, symbols, streams=kinds, subscribe_via=via, subscribe_batch=50, control_msgs_per_s=4)
        assert len(cfg.stream_names()) == 220
        feed = MarketFeed(cfg, MarketState())
        await feed.start()
        try:
            names = {f"{s.lower()}@{k}" for s in symbols for k in ("aggTrade", "depth@100ms", "bookTicker",
                                                                   "markPrice@1s", "kline_1m")}
            assert await wait_for(lambda: names <= set(feed.last_seen), 15.0), names - set(feed.last_seen)
            assert feed.connections == 2 and len(feed.shards) == 2
            assert srv.state()["connections"] == 2
        finally:
            await feed.stop()
        stats = feed.stats()
        assert stats["rejects_total"] == 0 and stats["reconnects"] == 0
        if via == "subscribe":
            assert stats["ws"]["control_msgs_sent"] == 5  # 4 batches of 50 + 1 of 20
            assert srv.counts.get("ws_error:too_many_messages", 0) == 0
            assert stats["messages"]["control"] == 5  # every SUBSCRIBE was answered

    asyncio.run(_with_sim(body, symbols=symbols, speed=1.0, rate_scale=0.2))


def test_snapshots_are_throttled() -> None:
    """Depth gaps on a fifth of the messages force constant resyncs: at most 3 snapshots go out in
    the minute (the server saw exactly 3), the rest wait in the throttle, visible in the stats."""

    async def body(ex: SimExchange, srv: SimServer) -> None:
        feed = MarketFeed(_feed_config(srv, ("BTCUSDT", "ETHUSDT"), snapshots_per_min=3), MarketState())
        await feed.start()
        try:
            assert await wait_for(lambda: feed.stats()["book"]["sync"].get("throttled", 0) >= 1, 10.0)
            await asyncio.sleep(1.0)
        finally:
            await feed.stop()
        sync = feed.stats()["book"]["sync"]
        print("\nthrottle:", orjson.dumps(sync).decode(), srv.counts.get("rest:/fapi/v1/depth"))
        assert sync["snapshot_requests"] == 3 and srv.counts["rest:/fapi/v1/depth"] == 3
        assert sync["throttle_used_1m"] == 3 and sync["throttled"] >= 1

    asyncio.run(_with_sim(body, symbols=("BTCUSDT", "ETHUSDT"), faults=FaultConfig(depth_gap_rate=0.2)))


def test_rest_honours_retry_after_on_429_and_418() -> None:
    """With the server's weight limit at 100/min, the sixth depth request (weight 20) gets a 429 with
    Retry-After: the client holds every request until that time has passed on its clock, sends no
    second request meanwhile, then succeeds. A 418 ban is held the same way."""
    clock = ManualClock(int(time.time() * 1000))

    async def body(ex: SimExchange, srv: SimServer) -> None:
        async with BinanceRest(RestConfig(base_url=srv.rest_url, timeout_s=2.0), clock=clock) as rest:
            for _ in range(5):
                await rest.get("/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 1000})
            assert rest.used_weight_1m == 100
            sixth = asyncio.create_task(rest.get("/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 1000}))
            assert await wait_for(lambda: rest.stats["http_429"] == 1, 3.0)
            assert 55_000 <= rest.blocked_for_ms <= 60_000
            await asyncio.sleep(0.6)
            assert not sixth.done() and rest.stats["requests"] == 6  # nothing re-sent while blocked
            clock.set(clock.now_ms() + rest.blocked_for_ms + 1)
            book = await asyncio.wait_for(sixth, 3.0)
            assert book["lastUpdateId"] > 0 and rest.stats["requests"] == 7 and rest.stats["backoffs"] == 1
            assert rest.stats["code_-1003"] == 1 and srv.counts["rest_429:weight"] == 1

    asyncio.run(_with_sim(body, weight_per_minute=100, clock=clock))

    clock2 = ManualClock(int(time.time() * 1000))

    async def banned(ex: SimExchange, srv: SimServer) -> None:
        async with BinanceRest(RestConfig(base_url=srv.rest_url, timeout_s=2.0), clock=clock2) as rest:
            for _ in range(2):
                await rest.get("/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 1000})
            third = asyncio.create_task(rest.get("/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 1000}))
            assert await wait_for(lambda: rest.stats["http_418"] == 1, 3.0)
            assert 9_000 <= rest.blocked_for_ms <= 10_000
            await asyncio.sleep(0.3)
            assert not third.done()
            clock2.set(clock2.now_ms() + 61_000)  # past the ban and the weight window
            assert (await asyncio.wait_for(third, 3.0))["lastUpdateId"] > 0
            assert srv.counts["ip_bans"] == 1 and rest.stats["requests"] == 4

    asyncio.run(_with_sim(banned, weight_per_minute=40, ban_after_429s=1, ban_s=10.0, clock=clock2))


def test_pollers_feed_oi_ratios_and_spot_into_features() -> None:
    """The pollers' REST answers become the OI, OI change, long/short, top-trader and spot-perp
    features of ``SymbolFeatures``, with the values the server reports."""

    async def body(ex: SimExchange, srv: SimServer) -> None:
        state = MarketState()
        cfg = FeedConfig(ws_base=srv.ws_url, rest_base=srv.rest_url, spot_rest_base=srv.rest_url,
                         symbols=("BTCUSDT",), poll_interval_s=1.0, spot_poll_interval_s=0.3)
        feed = MarketFeed(cfg, state)
        await feed.start()
        try:
            assert await wait_for(lambda: feed.stats()["pollers"].get("cycles", 0) >= 2 and feed.stats()[
                "pollers"].get("samples:spot_price", 0) >= 3, 10.0), feed.stats()["pollers"]
            ex.pause()
            await asyncio.sleep(0.4)  # one more spot poll at the paused price
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{srv.rest_url}/fapi/v1/openInterest", params={"symbol": "BTCUSDT"}) as r:
                    oi = await r.json()
                async with http.get(f"{srv.rest_url}/futures/data/globalLongShortAccountRatio",
                                    params={"symbol": "BTCUSDT", "period": "5m", "limit": 1}) as r:
                    ls = (await r.json())[-1]
                async with http.get(f"{srv.rest_url}/futures/data/topLongShortPositionRatio",
                                    params={"symbol": "BTCUSDT", "period": "5m", "limit": 1}) as r:
                    top = (await r.json())[-1]
        finally:
            await feed.stop()
        snap = state.symbols["BTCUSDT"].snapshot(ex.now_ms() + 1)
        stats = feed.stats()
        print("\npollers:", orjson.dumps(stats["pollers"]).decode(), snap.open_interest, snap.oi_change_pct,
              snap.long_short_ratio, snap.top_trader_long_ratio, snap.spot_perp_div)
        assert snap.open_interest == pytest.approx(float(oi["openInterest"]))
        assert snap.oi_change_pct is not None  # the first poll's openInterestHist gave the base
        assert snap.long_short_ratio == pytest.approx(float(ls["longShortRatio"]))
        assert snap.top_trader_long_ratio == pytest.approx(float(top["longAccount"]))
        assert snap.spot_perp_div is not None and abs(snap.spot_perp_div) < 0.01
        assert stats["rejects_total"] == 0
        assert not any(k.endswith(":error") for k in stats["pollers"])
        assert stats["pollers"]["funding_rate:ok"] >= 2 and ("BTCUSDT", "funding_rate") in feed.pollers.latest

    asyncio.run(_with_sim(body))


def test_rest_outage_reports_unfillable_gaps_and_degraded_books_then_recovers() -> None:
    """Every REST call fails (5xx) while trades and depth messages are dropped: holes are reported
    unfillable after the deadline (never silently skipped), books are reported degraded after their
    attempts; once REST is back, books resync and new holes are filled again."""

    async def body(ex: SimExchange, srv: SimServer) -> None:
        state = TrackingState()
        cfg = _feed_config(srv, gap_fill_deadline_s=1.0, snapshot_max_attempts=2, degraded_retry_s=1.0,
                           rest_max_attempts=2)
        feed = MarketFeed(cfg, state)
        await feed.start()
        try:
            assert await wait_for(lambda: feed.stats()["gaps"]["unfillable"] >= 1
                                  and feed.stats()["book"]["sync"]["degraded"] == ["BTCUSDT"], 15.0), feed.stats()
            outage = feed.stats()
            srv.faults.replace(FaultConfig(streams={"aggTrade": {"drop": 0.05}}))  # REST is back
            assert await wait_for(lambda: feed.stats()["book"]["symbols"]["BTCUSDT"]["state"] == "synced"
                                  and feed.stats()["gaps"]["filled"] > outage["gaps"]["filled"], 10.0), feed.stats()
        finally:
            await feed.stop()
        stats = feed.stats()
        print("\noutage:", orjson.dumps({"gaps": outage["gaps"], "sync": outage["book"]["sync"]}).decode(),
              "\nafter:", orjson.dumps({"gaps": stats["gaps"], "sync": stats["book"]["sync"]}).decode())
        skipped = {i for lo, hi in outage["gaps"]["unfillable_ranges"]["BTCUSDT"] for i in range(lo, hi + 1)}
        ids = state.symbols["BTCUSDT"].ids
        assert skipped and not skipped & set(ids)  # reported ids are exactly the ones never delivered
        assert ids == sorted(set(ids)) and skipped | set(ids) == set(range(ids[0], ids[-1] + 1))
        assert outage["gaps"]["ids_unfillable"] == len(skipped)
        assert stats["book"]["sync"]["recovered_from_degraded"] == 1 and stats["book"]["sync"]["degraded"] == []
        assert stats["rest"]["code_-1001"] > 0 and stats["task_errors"] == []

    faults = FaultConfig(streams={"aggTrade": {"drop": 0.05}}, depth_gap_rate=0.05, rest_5xx_rate=1.0)
    asyncio.run(_with_sim(body, faults=faults))


def test_a_resumed_feed_catches_up_from_rest_on_a_quiet_stream() -> None:
    """A restart continues right after the journal's last trade: with the market paused (no live trade
    would ever open the gap) the feed still fetches every trade since from REST, page by page, in order
    and once, and reports no gap pending when caught up."""

    async def body(ex: SimExchange, srv: SimServer) -> None:
        def served_span() -> int:
            latest = ex.agg_trades("BTCUSDT", limit=1)
            return int(latest[0]["a"] - ex.agg_trades("BTCUSDT", from_id=0, limit=1)[0]["a"]) if latest else 0
        assert await wait_for(lambda: served_span() > 2_600, 30.0)
        ex.pause()
        served: list[int] = []
        while page := ex.agg_trades("BTCUSDT", from_id=served[-1] + 1 if served else 0, limit=1000):
            served += [t["a"] for t in page]
        assert len(served) > 2_500  # more than two REST pages behind
        resume_from = served[0] + 100
        state = TrackingState()
        feed = MarketFeed(_feed_config(srv, gap_fill_page=1000), state)
        feed.resume_after("BTCUSDT", resume_from)
        assert feed.gap_pending("BTCUSDT")
        await feed.start()
        try:
            assert await wait_for(lambda: not feed.gap_pending("BTCUSDT"), 20.0)
        finally:
            await feed.stop()
        got = state.get("BTCUSDT").ids
        assert got == [a for a in served if a > resume_from]
        assert feed.cont["catch_up_requests"] >= 3

    asyncio.run(_with_sim(body, speed=30.0))
