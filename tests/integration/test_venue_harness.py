"""A running simulator (SimExchange + SimServer + matching engine + trading API) for the venue tests.

Everything is real: the server listens on an ephemeral loopback port, clients speak HTTP and
WebSocket to it. Accounts get random keys per test. ``sweep`` lets a second account trade
in-process against the same exchange (a counterparty the test controls).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from arbray.execution.venue import Fill, OrderUpdate, VenueEvent
from arbray.sim.exchange import SimExchange, SimExchangeConfig
from arbray.sim.matching import MatchingConfig, MatchingEngine
from arbray.sim.server import SimServer, SimServerConfig
from arbray.sim.trading_api import TradingApi, TradingApiConfig
from arbray.venue import BinanceCredentials, BinanceRest, BinanceVenue, BinanceVenueConfig

pytestmark = pytest.mark.integration
BTC = "BTCUSDT"
T = TypeVar("T")


class ScaledClock:
    """Wall time running ``factor``× faster from construction (rate-limit windows in tests)."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.t0 = time.time_ns() // 1_000_000

    def now_ms(self) -> int:
        return self.t0 + int((time.time_ns() // 1_000_000 - self.t0) * self.factor)


@dataclass
class Sim:
    exchange: SimExchange
    engine: MatchingEngine
    api: TradingApi
    server: SimServer
    key: str
    secret: str
    counterparty: str

    def credentials(self) -> BinanceCredentials:
        return BinanceCredentials(self.key, self.secret)

    def venue_config(self, **overrides: Any) -> BinanceVenueConfig:
        base: dict[str, Any] = dict(rest_base=self.server.rest_url, ws_base=self.server.ws_url,
                                    reconcile_interval_s=0, reconnect_initial_s=0.1, reconnect_max_s=0.5,
                                    fill_wait_s=0.3, query_backoff_s=0.02, recv_window_ms=60_000,
                                    request_timeout_s=5.0)
        base.update(overrides)
        return BinanceVenueConfig(**base)

    def venue(self, **overrides: Any) -> BinanceVenue:
        return BinanceVenue(self.venue_config(**overrides), self.credentials())

    def rest(self) -> BinanceRest:
        return BinanceRest(self.server.rest_url, self.credentials(), recv_window_ms=60_000)

    def sweep(self, side: str, qty: float, symbol: str = BTC) -> dict[str, Any]:
        """The counterparty's market order (its prints fill resting orders of the tested account)."""
        return self.engine.new_order(self.counterparty, {"symbol": symbol, "side": side, "type": "MARKET",
                                                         "quantity": f"{qty:.3f}", "newOrderRespType": "RESULT"})

    def orders_with_client_id(self, wire: str) -> list[Any]:
        acct = self.engine.accounts[self.key]
        return [o for o in [*acct.open_orders.values(), *acct.finished.values()] if o.client_id == wire]

    def best(self, symbol: str = BTC) -> tuple[float, float]:
        bid, ask = self.exchange.best_bid(symbol), self.exchange.best_ask(symbol)
        assert bid is not None and ask is not None
        return bid[0], ask[0]


@asynccontextmanager
async def running_sim(speed: float = 1.0, server: SimServerConfig | None = None, api: TradingApiConfig | None = None,
                      matching: MatchingConfig | None = None, server_clock: Any = None,
                      paused: bool = False) -> AsyncIterator[Sim]:
    exchange = SimExchange(SimExchangeConfig(symbols=(BTC,), seed=7, speed=speed, history_hours=0))
    engine = MatchingEngine(exchange, matching or MatchingConfig())
    trading = TradingApi(engine, api or TradingApiConfig())
    srv = SimServer(exchange, server or SimServerConfig(), extensions=[trading], clock=server_clock)
    key, secret = secrets.token_hex(16), secrets.token_hex(32)
    counterparty = secrets.token_hex(16)
    engine.add_account(key, secret)
    engine.add_account(counterparty, secrets.token_hex(32), balance=1e9)
    await srv.start()
    if paused:
        exchange.pause()
    try:
        yield Sim(exchange, engine, trading, srv, key, secret, counterparty)
    finally:
        await srv.stop()


def run(coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
    """Run one async test body with a hard bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


async def wait_until(pred: Callable[[], bool], timeout_s: float = 5.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.01)


class Recorder:
    """Collects venue events; helpers by order and kind."""

    def __init__(self) -> None:
        self.events: list[VenueEvent] = []

    def __call__(self, ev: VenueEvent) -> None:
        self.events.append(ev)

    def fills(self, cid: str | None = None) -> list[Fill]:
        return [e for e in self.events if isinstance(e, Fill) and (cid is None or e.client_id == cid)]

    def updates(self, cid: str | None = None, status: str | None = None) -> list[OrderUpdate]:
        return [e for e in self.events if isinstance(e, OrderUpdate) and (cid is None or e.client_id == cid)
                and (status is None or e.status == status)]

    def of(self, cid: str) -> list[VenueEvent]:
        return [e for e in self.events if getattr(e, "client_id", None) == cid]


async def settle(venue: BinanceVenue, extra: Awaitable[Any] | None = None) -> None:
    assert await venue.wait_idle(10.0)
    if extra is not None:
        await extra


def test_harness_serves_signed_time_and_account() -> None:
    async def body() -> None:
        async with running_sim(paused=True) as sim:
            rest = sim.rest()
            try:
                await rest.sync_time()
                acct = await rest.request("GET", "/fapi/v2/account", signed=True)
                assert acct["assets"][0]["asset"] == "USDT" and acct["positions"][0]["symbol"] == BTC
            finally:
                await rest.close()

    run(body())
