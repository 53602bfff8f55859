"""The live screener inputs against the simulator on loopback: universe from exchangeInfo, REST backfill
with rate-limit accounting and pacing, and the stream-fed kline cache across a reconnect that skips closes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator

import orjson
import pytest

from arbray.binance.weights import RateLimit, RateLimiter
from arbray.feeds.config import Endpoints, RestConfig
from arbray.feeds.rest import BinanceRest
from arbray.screener.backfill import BackfillConfig, backfill_universe
from arbray.screener.cache import KlineCache, KlineCacheConfig
from arbray.screener.universe import fetch_universe
from arbray.sim.exchange import SimExchange, SimExchangeConfig
from arbray.sim.server import SimServer

pytestmark = pytest.mark.integration
SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


async def with_sim(body: Callable[[SimExchange, SimServer], Awaitable[None]], symbols: tuple[str, ...] = SYMS,
                   speed: float = 30.0, paused: bool = False, timeout_s: float = 90.0, hours: float = 2.0) -> None:
    ex = SimExchange(SimExchangeConfig(symbols=symbols, seed=3, speed=speed, history_hours=hours, rate_scale=0.05))
    if paused:
        ex.pause()
    srv = SimServer(ex)
    await srv.start()
    try:
        await asyncio.wait_for(body(ex, srv), timeout_s)
    finally:
        await srv.stop()


async def until(cond: Callable[[], bool], timeout_s: float = 30.0) -> None:
    t_end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < t_end, "condition not reached in time"
        await asyncio.sleep(0.05)


@pytest.fixture
def sim_serve() -> Iterator[dict[str, str]]:
    """``arbray sim serve`` on an ephemeral loopback port: three symbols, 30× speed, 2 h of history."""
    proc = subprocess.Popen([sys.executable, "-m", "arbray", "sim", "serve", "--symbols", "BTCUSDT,ETHUSDT,SOLUSDT",
                             "--speed", "30", "--history-hours", "2", "--rate-scale", "0.05", "--port", "0",
                             "--no-trading"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = orjson.loads(proc.stdout.readline())
        yield {"rest": info["rest"], "ws": info["ws"]}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def closed_truth(ex: SimExchange, symbol: str, interval: str) -> dict[int, tuple[float, float, float]]:
    """The exchange's closed bars: open ms → (close, volume, taker-buy volume)."""
    rows = ex.klines(symbol, interval, limit=1500)[:-1]
    return {int(r[0]): (float(r[4]), float(r[5]), float(r[9])) for r in rows}


def test_cache_equals_the_exchange_across_a_reconnect_that_skips_closes() -> None:
    async def body(ex: SimExchange, srv: SimServer) -> None:
        cfg = KlineCacheConfig(intervals=("1m",), backfill=BackfillConfig(bars=60), gap_delay_s=0.2)
        cache = KlineCache(Endpoints(srv.ws_url, srv.rest_url, None), SYMS, cfg)
        await cache.start()
        try:
            core = cache.core
            assert core.ready() and core.status()["bars_min"] == 60
            first = {k.symbol: int(k.ts_ms[-1]) for k in cache.panel()}
            await until(lambda: core.status()["counts"].get("closed_stream", 0) >= 2 * len(SYMS))
            # every symbol's series advanced by stream closes alone (no REST polling)
            requests = cache.report.requests
            assert all(int(k.ts_ms[-1]) > first[k.symbol] for k in cache.panel())
            assert cache.report.requests == requests
            # the connection drops while 5 minutes of market pass: those closes are never streamed
            ex.pause()
            await srv.disconnect_all()
            ex.advance_to(ex.now_ms() + 5 * 60_000)
            ex.resume()
            await until(lambda: core.stats["gaps_filled"] >= len(SYMS) and not core.status()["open_gaps"])
            panel = cache.panel()
            assert len(panel) == len(SYMS)
            for k in panel:
                truth = closed_truth(ex, k.symbol, "1m")
                assert k.bars == 60 and k.taker_buy is not None and k.open_interest is not None
                got = {int(t): (c, v, tb) for t, c, v, tb in zip(k.ts_ms, k.close, k.volume, k.taker_buy, strict=True)}
                assert all(truth[t] == pytest.approx(x) for t, x in got.items())
                assert int(k.ts_ms[-1]) == max(truth)  # nothing missing at the end either
            st = cache.stats()
            assert st["feed"]["reconnects"] >= 1 and st["rest"]["failures"] == {} and st["errors"] == {}
            assert st["cache"]["counts"]["gap_fills"] >= len(SYMS)
        finally:
            await cache.stop()

    asyncio.run(with_sim(body))


def test_backfill_from_exchange_info_charges_the_published_weights() -> None:
    symbols = tuple(["BTCUSDT", "ETHUSDT"] + [f"SYN{i:04d}USDT" for i in range(2, 20)])

    async def body(ex: SimExchange, srv: SimServer) -> None:
        async with BinanceRest(RestConfig(base_url=srv.rest_url)) as rest:
            u = await fetch_universe(rest)
            assert u.symbols == tuple(sorted(symbols)) and u.excluded == {}
            klines, report = await backfill_universe(rest, u.symbols, "5m", BackfillConfig(bars=60))
        assert [k.symbol for k in klines] == list(u.symbols)
        assert all(k.bars == 60 and k.open_interest is not None and k.taker_buy is not None for k in klines)
        # klines limit=61 → weight 1 each, fundingRate weight 1, openInterestHist 1 statistics request each
        assert report.units == {"weight": 20 + 20, "futures_data": 20} and report.requests == 60
        assert report.failures == {} and report.rejects == {}
        assert report.used_weight_1m == 1 + 40  # the exchange's own count: exchangeInfo + ours
        btc = next(k for k in klines if k.symbol == "BTCUSDT")
        truth = closed_truth(ex, "BTCUSDT", "5m")
        assert {int(t): float(c) for t, c in zip(btc.ts_ms, btc.close, strict=True)} == {
            t: v[0] for t, v in truth.items() if t >= int(btc.ts_ms[0])}
        assert not any(k.startswith("rest_429") for k in srv.counts)

    asyncio.run(with_sim(body, symbols, paused=True, hours=6.0))


def test_backfill_waits_for_its_weight_instead_of_being_refused() -> None:
    """With a budget of 10 weight per 2 s, ten klines requests of weight 2 take at least one extra window."""
    symbols = tuple(["BTCUSDT", "ETHUSDT"] + [f"SYN{i:04d}USDT" for i in range(2, 10)])

    async def body(ex: SimExchange, srv: SimServer) -> None:
        limiter = RateLimiter((RateLimit("weight", 2_000, 10, "x-mbx-used-weight-1m"),))
        async with BinanceRest(RestConfig(base_url=srv.rest_url), limiter=limiter) as rest:
            t0 = time.perf_counter()
            klines, report = await backfill_universe(rest, symbols, "5m",
                                                     BackfillConfig(bars=100, open_interest=False, funding=False))
            elapsed = time.perf_counter() - t0
        assert len(klines) == 10 and report.units == {"weight": 20}
        assert report.rate_limit_waits > 0 and elapsed >= 1.9
        assert not any(k.startswith("rest_429") for k in srv.counts)

    asyncio.run(with_sim(body, symbols, paused=True, hours=10.0))
