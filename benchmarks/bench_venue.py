"""Order-path throughput and latency: matching engine, signed REST, and BinanceVenue end to end.

Run: ``.venv/bin/python benchmarks/bench_venue.py [--orders 2000] [--runs 3]``. Everything is on
loopback in one process (the simulator server and the client share the event loop, as they share
the machine's cores), with the live model running at 1× (so the server's market clock is the wall clock) and the rate
limits raised out of the way on both sides (the server's and the clients' limiters; with Binance's
real limits a client can send at most 270 new orders per 10 s at the default headroom); orders rest
20 USDT (200 ticks) below the bid and do not fill.

1. ``engine``: ``MatchingEngine.new_order`` + ``cancel_order`` pairs per second in-process, no HTTP,
   for post-only orders 1 USDT (``near``: queue position from a 20-level snapshot) and 20 USDT
   (``deep``: a 1000-level snapshot) below the bid.
2. ``rest_baseline``: the same order/cancel pairs as sequential signed aiohttp requests
   (``BinanceRest``): the floor any HTTP client pays here.
3. ``venue``: ``BinanceVenue.submit`` of every order at once, then ``cancel`` of each as soon as its
   ``accepted`` event arrives over the user stream; pairs per second and the submit→accepted and
   cancel→canceled latencies (p50/p99) as the engine sees them. Ratios are against (2).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import time
from typing import Any

from arbray.execution.venue import Order, OrderUpdate, VenueEvent
from arbray.sim.exchange import SimExchange, SimExchangeConfig
from arbray.sim.matching import MatchingConfig, MatchingEngine
from arbray.sim.server import SimServer, SimServerConfig
from arbray.sim.trading_api import TradingApi
from arbray.venue import BinanceCredentials, BinanceRest, BinanceVenue, BinanceVenueConfig

BTC = "BTCUSDT"
SERVER = SimServerConfig(weight_per_minute=10**9, orders_per_10s=10**9, orders_per_minute=10**9)
CLIENT_LIMITS = SERVER.rate_limits()  # the clients pace to the server's (raised) limits, not Binance's


def _q(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def _setup() -> tuple[SimExchange, MatchingEngine, SimServer, str, str]:
    ex = SimExchange(SimExchangeConfig(symbols=(BTC,), seed=3, speed=1.0, history_hours=0))
    engine = MatchingEngine(ex, MatchingConfig(max_open_orders=10_000))
    api = TradingApi(engine)
    server = SimServer(ex, SERVER, extensions=[api])
    key, secret = secrets.token_hex(16), secrets.token_hex(32)
    engine.add_account(key, secret, balance=1e12)
    await server.start()
    return ex, engine, server, key, secret


def bench_engine(engine: MatchingEngine, key: str, price: float, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        r = engine.new_order(key, {"symbol": BTC, "side": "BUY", "type": "LIMIT", "timeInForce": "GTX",
                                   "quantity": "0.001", "price": f"{price:.1f}", "newClientOrderId": f"e{i}"})
        engine.cancel_order(key, BTC, order_id=r["orderId"])
    return n / (time.perf_counter() - t0)


async def bench_rest(server: SimServer, key: str, secret: str, price: float, n: int) -> dict[str, float]:
    lat: list[float] = []
    async with BinanceRest(server.rest_url, BinanceCredentials(key, secret), recv_window_ms=60_000,
                           limits=CLIENT_LIMITS) as rest:
        await rest.sync_time()
        t0 = time.perf_counter()
        for i in range(n):
            a = time.perf_counter()
            await rest.request("POST", "/fapi/v1/order", {
                "symbol": BTC, "side": "BUY", "type": "LIMIT", "timeInForce": "GTX", "quantity": "0.001",
                "price": f"{price:.1f}", "newClientOrderId": f"r{i}"}, signed=True)
            await rest.request("DELETE", "/fapi/v1/order", {"symbol": BTC, "origClientOrderId": f"r{i}"},
                               signed=True)
            lat.append(time.perf_counter() - a)
        dt = time.perf_counter() - t0
    return {"pairs_per_s": n / dt, "pair_ms_p50": 1e3 * _q(lat, 0.5), "pair_ms_p99": 1e3 * _q(lat, 0.99)}


async def bench_venue(server: SimServer, key: str, secret: str, price: float, n: int, run: int) -> dict[str, float]:
    cfg = BinanceVenueConfig(rest_base=server.rest_url, ws_base=server.ws_url, reconcile_interval_s=0,
                             recv_window_ms=60_000)
    venue = BinanceVenue(cfg, BinanceCredentials(key, secret), limits=CLIENT_LIMITS)
    sent: dict[str, float] = {}
    accepted: dict[str, float] = {}
    canceled: dict[str, float] = {}
    cancel_sent: dict[str, float] = {}
    rejected: list[str] = []
    done = asyncio.Event()

    def on_event(ev: VenueEvent) -> None:
        if not isinstance(ev, OrderUpdate):
            return
        now = time.perf_counter()
        if ev.status == "accepted":
            accepted[ev.client_id] = now
            cancel_sent[ev.client_id] = time.perf_counter()
            venue.cancel(ev.client_id, 0)
        elif ev.status in ("canceled", "rejected"):
            canceled[ev.client_id] = now
            if ev.status == "rejected":
                rejected.append(ev.reason or "")
            if len(canceled) == n:
                done.set()

    venue.connect(on_event)
    await venue.start()
    t0 = time.perf_counter()
    for i in range(n):
        cid = f"bench{run}-{BTC}-{i}-EM"
        sent[cid] = time.perf_counter()
        venue.submit(Order(cid, "bench", BTC, 1, 0.001, "limit", price, post_only=True), 0)
    await asyncio.wait_for(done.wait(), 300)
    dt = time.perf_counter() - t0
    await venue.stop()
    if rejected:
        raise RuntimeError(f"{len(rejected)} orders rejected: {sorted(set(rejected))}")
    acc = [accepted[c] - sent[c] for c in sent]
    can = [canceled[c] - cancel_sent[c] for c in sent]
    return {"pairs_per_s": n / dt, "accept_ms_p50": 1e3 * _q(acc, 0.5), "accept_ms_p99": 1e3 * _q(acc, 0.99),
            "cancel_ms_p50": 1e3 * _q(can, 0.5), "cancel_ms_p99": 1e3 * _q(can, 0.99),
            "duplicate_fills": float(venue.stats()["counters"].get("duplicate_fills", 0))}


async def main(orders: int, runs: int) -> dict[str, Any]:
    ex, engine, server, key, secret = await _setup()
    try:
        bid = ex.best_bid(BTC)
        assert bid is not None
        price = round(bid[0] - 20, 1)
        eng, near, rest, ven = [], [], [], []
        for r in range(runs):
            eng.append(bench_engine(engine, key, price, orders))
            near.append(bench_engine(engine, key, round(bid[0] - 1, 1), orders))
            rest.append(await bench_rest(server, key, secret, price, orders))
            ven.append(await bench_venue(server, key, secret, price, orders, r))
    finally:
        await server.stop()

    def med(rows: list[dict[str, float]], k: str) -> float:
        return statistics.median(r[k] for r in rows)

    rest_pps, venue_pps = med(rest, "pairs_per_s"), med(ven, "pairs_per_s")
    return {
        "bench": "venue", "orders_per_run": orders, "runs": runs, "cpus": os.cpu_count(),
        "python": platform.python_version(), "machine": platform.machine(),
        "engine_pairs_per_s": {"near": round(statistics.median(near)), "deep": round(statistics.median(eng))},
        "rest_baseline": {k: round(med(rest, k), 3) for k in rest[0]},
        "venue": {k: round(med(ven, k), 3) for k in ven[0]},
        "venue_vs_rest_throughput": round(venue_pps / rest_pps, 2),
        "engine_vs_rest_throughput": round(statistics.median(eng) / rest_pps, 1),
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--orders", type=int, default=2000)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    print(json.dumps(asyncio.run(main(a.orders, a.runs))))
