"""The simulator server over loopback with real clients (``websockets``, aiohttp): payloads shaped like
the real recordings, combined wrapping, live (un)subscription, Binance's connection rules (pings,
the no-pong drop, lifetime, incoming-message and stream limits), REST layouts, 429/418, the
extension hook, the admin endpoints, and a local book equal to the true book after pausing.

The helpers at the top are shared by the other ``test_sim_server_*`` modules."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import websockets
import zstandard
from aiohttp import web

from arbray.marketdata.events import DepthSnapshot, DepthUpdate
from arbray.marketdata.orderbook import LocalOrderBook
from arbray.sim.exchange import SimExchange, SimExchangeConfig
from arbray.sim.server import ServerExtension, SimServer, SimServerConfig

pytestmark = pytest.mark.integration

T0 = 1_723_075_200_000


# ----------------------------------------------------------------------------- shared helpers
@contextlib.asynccontextmanager
async def running(server: SimServerConfig | None = None, extensions: tuple[ServerExtension, ...] = (),
                  paused: bool = False, **exchange: Any) -> AsyncIterator[SimServer]:
    """A started ``SimServer`` on an ephemeral loopback port (BTCUSDT+ETHUSDT, 2 h of history, 4×);
    ``paused``: the market waits for ``/_sim/resume`` (so a client can subscribe first)."""
    fields: dict[str, Any] = {"history_hours": 2.0, "speed": 4.0}
    if "replay" not in exchange:
        fields["symbols"] = ("BTCUSDT", "ETHUSDT")
    fields.update(exchange)
    srv = SimServer(SimExchange(SimExchangeConfig(**fields)), server or SimServerConfig(), extensions=extensions)
    if paused:
        srv.exchange.pause()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def get(srv: SimServer, path: str, **params: Any) -> tuple[int, Any, Any]:
    """(status, JSON body, headers) of a GET."""
    async with aiohttp.ClientSession() as s, s.get(srv.rest_url + path, params=params) as r:
        return r.status, await r.json(content_type=None), r.headers


async def post(srv: SimServer, path: str, body: Any = None) -> Any:
    async with aiohttp.ClientSession() as s, s.post(srv.rest_url + path, data=orjson.dumps(body or {})) as r:
        return await r.json(content_type=None)


def connect(url: str) -> Any:
    """A ``websockets`` client with an unbounded receive queue: a client that stops reading with a full
    queue stops reading the socket, so it cannot see the server's close frame (a 10 s close timeout)."""
    return websockets.connect(url, max_queue=None)


async def recv_json(ws: Any, timeout: float = 3.0) -> Any:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))


def shape(value: Any) -> Any:
    """A JSON value's structure: dict keys with their shapes, a list's first element, type names."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def real_hftbacktest_payloads(path: Path) -> dict[str, Any]:
    """The first payload of every stream kind in an hftbacktest file, keyed by the stream suffix."""
    out: dict[str, Any] = {}
    with gzip.open(path, "rb") as fh:
        for line in fh:
            obj = orjson.loads(line.partition(b" ")[2])
            if "stream" in obj:
                out.setdefault(obj["stream"].partition("@")[2], obj["data"])
            else:
                out.setdefault("rest_depth", obj)
    return out


def real_cryptofeed_payloads(path: Path) -> dict[str, Any]:
    """The first payload of every stream kind (and REST depth / exchangeInfo) in a cryptofeed v2 capture."""
    out: dict[str, Any] = {}
    reader = zstandard.ZstdDecompressor().stream_reader(path.open("rb"))
    for line in io.TextIOWrapper(reader, encoding="utf-8"):
        rec = orjson.loads(line)
        data = rec.get("data")
        if not isinstance(data, str):
            continue
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        url = str(rec.get("url", ""))
        if "exchangeInfo" in url:
            out.setdefault("exchangeInfo", obj)
        elif "/depth" in url:
            out.setdefault("rest_depth", obj)
        elif isinstance(obj, dict) and "stream" in obj:
            out.setdefault(obj["stream"].partition("@")[2], obj["data"])
    return out


def diff_event(d: dict[str, Any]) -> DepthUpdate:
    return DepthUpdate(d["s"], d["E"], d["T"], d["U"], d["u"], d["pu"], d["b"], d["a"])


def snapshot_event(symbol: str, snap: dict[str, Any]) -> DepthSnapshot:
    return DepthSnapshot(symbol, snap["lastUpdateId"], snap["T"], [(float(p), float(q)) for p, q in snap["bids"]],
                         [(float(p), float(q)) for p, q in snap["asks"]])


def same_book(book: LocalOrderBook, true: dict[str, Any]) -> bool:
    return (book.bids == {float(p): float(q) for p, q in true["bids"]}
            and book.asks == {float(p): float(q) for p, q in true["asks"]})


# ----------------------------------------------------------------------------- payloads
def test_stream_and_rest_payloads_have_the_real_recordings_shapes(real_data: Path) -> None:
    hft = real_hftbacktest_payloads(real_data / "hftbacktest" / "usdm" / "btcusdt_20230404.dat.gz")
    cf = real_cryptofeed_payloads(real_data / "cryptofeed" / "BINANCE_FUTURES_2021-07-22.jsonl.zst")
    streams = {"trade": hft["trade"], "bookTicker": hft["bookTicker"], "depth@0ms": hft["depth@0ms"],
               "markPrice@1s": hft["markPrice@1s"], "aggTrade": cf["aggTrade"], "depth@100ms": cf["depth@100ms"],
               "kline_1m": cf["kline_1m"]}

    async def scenario() -> None:
        async with running(speed=8.0) as srv:
            url = srv.ws_url + "/stream?streams=" + "/".join(f"btcusdt@{s}" for s in streams)
            got: dict[str, Any] = {}
            async with connect(url) as ws:
                deadline = time.monotonic() + 20
                while len(got) < len(streams) and time.monotonic() < deadline:
                    m = await recv_json(ws, timeout=10)
                    got.setdefault(m["stream"].partition("@")[2], m["data"])
            for name, real in streams.items():
                assert shape(got[name]) == shape(real), name
            _, depth, _ = await get(srv, "/fapi/v1/depth", symbol="BTCUSDT", limit=1000)
            assert shape(depth) == shape(cf["rest_depth"])
            _, info, _ = await get(srv, "/fapi/v1/exchangeInfo")
            real_info = cf["exchangeInfo"]
            assert set(real_info) <= set(info)
            assert set(real_info["symbols"][0]) <= set(info["symbols"][0])
            real_filters = {f["filterType"]: shape(f) for f in real_info["symbols"][0]["filters"]}
            ours = {f["filterType"]: shape(f) for f in info["symbols"][0]["filters"]}
            for kind in ("PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "MIN_NOTIONAL", "MAX_NUM_ORDERS"):
                assert ours[kind] == {k: real_filters[kind][k] for k in ours[kind]}, kind
                assert set(ours[kind]) == set(real_filters[kind]), kind
            assert info["rateLimits"] == real_info["rateLimits"]

    asyncio.run(scenario())


# ----------------------------------------------------------------------------- subscriptions
def test_raw_combined_and_live_subscriptions() -> None:
    async def scenario() -> None:
        async with running(speed=8.0) as srv:
            async with connect(srv.ws_url + "/ws/btcusdt@aggTrade") as ws:
                m = await recv_json(ws)
                assert m["e"] == "aggTrade" and m["s"] == "BTCUSDT"
            async with connect(srv.ws_url + "/ws/btcusdt@aggTrade/ethusdt@aggTrade") as ws:
                seen = {(await recv_json(ws))["s"] for _ in range(40)}
                assert seen == {"BTCUSDT", "ETHUSDT"}
            async with connect(srv.ws_url + "/stream?streams=btcusdt@bookTicker/ethusdt@aggTrade") as ws:
                names = {(await recv_json(ws))["stream"] for _ in range(60)}
                assert names == {"btcusdt@bookTicker", "ethusdt@aggTrade"}
            async with connect(srv.ws_url + "/ws") as ws:
                await ws.send(orjson.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade",
                                                                              "btcusdt@markPrice@1s"], "id": 1}))
                assert await recv_json(ws) == {"result": None, "id": 1}
                first = await recv_json(ws)
                assert first["e"] in ("aggTrade", "markPriceUpdate")  # raw payloads on /ws
                await ws.send(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
                reply = await _reply(ws, 2)
                assert reply["result"] == ["btcusdt@aggTrade", "btcusdt@markPrice@1s"]
                await ws.send(orjson.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 3}))
                await _reply(ws, 3)
                await ws.send(orjson.dumps({"method": "SET_PROPERTY", "params": ["combined", True], "id": 4}))
                await _reply(ws, 4)
                await ws.send(orjson.dumps({"method": "GET_PROPERTY", "params": ["combined"], "id": 5}))
                assert (await _reply(ws, 5))["result"] is True
                for _ in range(3):
                    m = await recv_json(ws)
                    assert m["stream"] == "btcusdt@markPrice@1s" and m["data"]["e"] == "markPriceUpdate"
            async with connect(srv.ws_url + "/stream") as ws:
                await ws.send(orjson.dumps({"method": "SUBSCRIBE", "params": ["!markPrice@arr@1s"], "id": 9}))
                assert await recv_json(ws) == {"result": None, "id": 9}
                m = await recv_json(ws)
                assert m["stream"] == "!markPrice@arr@1s" and [d["s"] for d in m["data"]] == ["BTCUSDT", "ETHUSDT"]

    asyncio.run(scenario())


async def _reply(ws: Any, req_id: int) -> Any:
    """The control reply with ``id`` (data frames in between are skipped)."""
    for _ in range(10_000):
        m = await recv_json(ws)
        if isinstance(m, dict) and m.get("id") == req_id and ("result" in m or "code" in m):
            return m
    raise AssertionError(f"no reply {req_id}")


def test_bad_control_messages_get_binance_errors_and_are_counted() -> None:
    cases: list[tuple[bytes, int]] = [
        (b"{not json", 3),
        (orjson.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"]}), 2),  # no id
        (orjson.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": -1}), 2),
        (orjson.dumps({"method": "SUBSCRIBEX", "params": [], "id": 1}), 2),
        (orjson.dumps({"params": [], "id": 2}), 2),
        (orjson.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@nonsense"], "id": 3}), 2),
        (orjson.dumps({"method": "SET_PROPERTY", "params": ["colour", True], "id": 4}), 0),
        (orjson.dumps({"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 5}), 1),
    ]

    async def scenario() -> None:
        async with running(SimServerConfig(max_incoming_per_s=100)) as srv, \
                connect(srv.ws_url + "/ws") as ws:
            for raw, code in cases:
                await ws.send(raw.decode())
                reply = await recv_json(ws)
                assert reply["code"] == code and isinstance(reply["msg"], str), (raw, reply)
            await ws.send(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 6}).decode())
            assert await recv_json(ws) == {"result": [], "id": 6}  # nothing was subscribed by the bad ones
            counts = srv.state()["server"]
            assert sum(v for k, v in counts.items() if k.startswith("ws_error:")) == len(cases)
            assert counts["ws_error:unknown_stream"] == 1 and counts["ws_error:bad_json"] == 1
            async with aiohttp.ClientSession() as s, s.get(srv.ws_url.replace("ws:", "http:")
                                                           + "/stream?streams=btcusdt@nope") as r:
                assert r.status == 400

    asyncio.run(scenario())


# ----------------------------------------------------------------------------- connection rules
def test_server_pings_and_a_client_that_never_pongs_is_dropped() -> None:
    cfg = SimServerConfig(ping_interval_s=0.2, pong_timeout_s=0.5)

    async def scenario() -> None:
        async with running(cfg) as srv, aiohttp.ClientSession() as s:
            async with connect(srv.ws_url + "/ws/btcusdt@bookTicker") as good:
                silent = await s.ws_connect(srv.ws_url + "/ws/btcusdt@bookTicker", autoping=False)
                pings = 0
                started = time.monotonic()
                while True:
                    msg = await asyncio.wait_for(silent.receive(), 3)
                    if msg.type == aiohttp.WSMsgType.PING:
                        pings += 1
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                        break
                lasted = time.monotonic() - started
                assert pings >= 1 and 0.5 <= lasted < 2.5
                assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 1008, "no_pong")
                await recv_json(good)  # the client that answers pings is still served
            assert srv.counts["closed:no_pong"] == 1

    asyncio.run(scenario())


def test_connections_are_closed_at_their_maximum_lifetime() -> None:
    async def scenario() -> None:
        async with running(SimServerConfig(max_lifetime_s=0.6)) as srv:
            started = time.monotonic()
            async with connect(srv.ws_url + "/ws/btcusdt@bookTicker") as ws:
                with pytest.raises(websockets.ConnectionClosed):
                    while True:
                        await recv_json(ws)
            assert 0.5 <= time.monotonic() - started < 2.0
            assert srv.counts["closed:max_lifetime"] == 1

    asyncio.run(scenario())


def test_more_than_ten_incoming_messages_a_second_disconnects() -> None:
    async def scenario() -> None:
        async with running() as srv, connect(srv.ws_url + "/ws") as ws:
            for k in range(10):
                await ws.send(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": k}).decode())
            for _ in range(10):
                await recv_json(ws)
            await ws.send(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 10}).decode())
            with pytest.raises(websockets.ConnectionClosed):
                await recv_json(ws)
            assert srv.counts["closed:incoming_rate"] == 1

    asyncio.run(scenario())


def test_the_stream_limit_per_connection() -> None:
    async def scenario() -> None:
        async with running(SimServerConfig(max_streams_per_connection=3)) as srv:
            four = "btcusdt@aggTrade/btcusdt@bookTicker/ethusdt@aggTrade/ethusdt@bookTicker"
            with pytest.raises(websockets.InvalidStatus):
                async with connect(srv.ws_url + "/stream?streams=" + four):
                    pass
            async with connect(srv.ws_url + "/stream?streams=btcusdt@aggTrade/btcusdt@bookTicker") as ws:
                await ws.send(orjson.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@aggTrade", "ethusdt@trade"],
                                            "id": 1}).decode())
                assert (await _reply(ws, 1))["code"] == 2
                await ws.send(orjson.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@aggTrade"], "id": 2}).decode())
                assert (await _reply(ws, 2))["result"] is None

    asyncio.run(scenario())


# ----------------------------------------------------------------------------- REST
def test_rest_endpoints_answer_with_binance_layouts() -> None:
    async def scenario() -> None:
        async with running(history_hours=9.0) as srv:  # 9 h of history hold a funding settlement
            await asyncio.sleep(0.3)
            status, body, headers = await get(srv, "/fapi/v1/ping")
            assert (status, body) == (200, {}) and headers["X-MBX-USED-WEIGHT-1M"] == "1"
            _, t, _ = await get(srv, "/fapi/v1/time")
            assert abs(t["serverTime"] - srv.exchange.now_ms()) < 1000
            _, info, _ = await get(srv, "/fapi/v1/exchangeInfo")
            btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
            filters = {f["filterType"]: f for f in btc["filters"]}
            assert filters["PRICE_FILTER"]["tickSize"] == "0.1" and filters["LOT_SIZE"]["stepSize"] == "0.001"
            assert filters["MIN_NOTIONAL"]["notional"] == "5" and btc["pricePrecision"] == 1
            _, depth, _ = await get(srv, "/fapi/v1/depth", symbol="BTCUSDT", limit=5)
            assert len(depth["bids"]) == len(depth["asks"]) == 5 and float(depth["bids"][0][0]) < float(
                depth["asks"][0][0])
            _, trades, _ = await get(srv, "/fapi/v1/aggTrades", symbol="BTCUSDT", limit=3)
            assert len(trades) == 3 and set(trades[0]) == {"a", "p", "q", "f", "l", "T", "m"}
            _, kl, _ = await get(srv, "/fapi/v1/klines", symbol="BTCUSDT", interval="5m", limit=10)
            assert len(kl) == 10 and all(len(r) == 12 and isinstance(r[0], int) and isinstance(r[1], str)
                                         for r in kl)
            _, pi, _ = await get(srv, "/fapi/v1/premiumIndex", symbol="BTCUSDT")
            assert set(pi) == {"symbol", "markPrice", "indexPrice", "estimatedSettlePrice", "lastFundingRate",
                               "interestRate", "nextFundingTime", "time"}
            _, pis, _ = await get(srv, "/fapi/v1/premiumIndex")
            assert [p["symbol"] for p in pis] == ["BTCUSDT", "ETHUSDT"]
            _, fr, _ = await get(srv, "/fapi/v1/fundingRate", symbol="BTCUSDT")
            assert fr and set(fr[0]) == {"symbol", "fundingTime", "fundingRate", "markPrice"}
            _, oi, _ = await get(srv, "/fapi/v1/openInterest", symbol="ETHUSDT")
            assert set(oi) == {"openInterest", "symbol", "time"} and float(oi["openInterest"]) > 0
            for path, keys in (("/futures/data/openInterestHist", {"symbol", "sumOpenInterest",
                                                                   "sumOpenInterestValue", "timestamp"}),
                               ("/futures/data/globalLongShortAccountRatio", {"symbol", "longShortRatio",
                                                                              "longAccount", "shortAccount",
                                                                              "timestamp"}),
                               ("/futures/data/topLongShortPositionRatio", {"symbol", "longShortRatio",
                                                                            "longAccount", "shortAccount",
                                                                            "timestamp"})):
                _, rows, _ = await get(srv, path, symbol="BTCUSDT", period="5m", limit=12)
                assert len(rows) == 12 and set(rows[0]) == keys, path
                assert all(b["timestamp"] - a["timestamp"] == 300_000 for a, b in itertools.pairwise(rows))
            _, tp, _ = await get(srv, "/fapi/v1/ticker/price", symbol="BTCUSDT")
            assert set(tp) == {"symbol", "price", "time"}
            _, bt, _ = await get(srv, "/fapi/v1/ticker/bookTicker")
            assert len(bt) == 2 and set(bt[0]) == {"symbol", "bidPrice", "bidQty", "askPrice", "askQty", "time",
                                                   "lastUpdateId"}
            _, spot, h = await get(srv, "/api/v3/ticker/price", symbol="BTCUSDT")
            index = float(pi["indexPrice"])
            assert set(spot) == {"symbol", "price"} and float(spot["price"]) == pytest.approx(index * 0.9999, rel=1e-3)
            assert h["X-MBX-USED-WEIGHT-1M"] == "2"  # spot weight is its own pool
            for path, params, code in (("/fapi/v1/depth", {"symbol": "NOPEUSDT"}, -1121),
                                       ("/fapi/v1/depth", {}, -1102),
                                       ("/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": "abc"}, -1100),
                                       ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "7m"}, -1120)):
                status, err, _ = await get(srv, path, **params)
                assert status == 400 and err["code"] == code, (path, params, err)

    asyncio.run(scenario())


class OrderProbe:
    """A test extension: one order-counted route and a listen-key WebSocket."""

    def install(self, app: web.Application, server: SimServer) -> None:
        self.server = server

        async def order(request: web.Request) -> web.Response:
            refused = server.charge(request, "POST", "/fapi/v1/order", dict(request.query))
            if refused is not None:
                return refused
            code = server.faults.order_fault()
            if code is not None:
                return web.json_response({"code": code, "msg": "injected"}, status=400)
            return web.json_response({"orderId": 1})

        app.router.add_post("/fapi/v1/order", order)

    async def handle_ws(self, token: str, ws: web.WebSocketResponse) -> bool:
        if token != "key123":
            return False
        await ws.send_str('{"e":"listenKeyExpired"}')
        return True


def test_rate_limits_answer_429_then_418_and_extensions_share_them() -> None:
    cfg = SimServerConfig(weight_per_minute=10, orders_per_10s=3, ban_after_429s=3, ban_s=60)

    async def scenario() -> None:
        async with running(cfg, extensions=(OrderProbe(),)) as srv, aiohttp.ClientSession() as s:
            used = []
            for _ in range(5):  # depth limit=5 weighs 2
                async with s.get(srv.rest_url + "/fapi/v1/depth", params={"symbol": "BTCUSDT", "limit": 5}) as r:
                    assert r.status == 200
                    used.append(int(r.headers["X-MBX-USED-WEIGHT-1M"]))
            assert used == [2, 4, 6, 8, 10]
            async with s.get(srv.rest_url + "/fapi/v1/ping") as r:
                body = await r.json()
                assert r.status == 429 and body["code"] == -1003 and int(r.headers["Retry-After"]) >= 1
                assert r.headers["X-MBX-USED-WEIGHT-1M"] == "10"
            async with s.get(srv.rest_url + "/_sim/state") as r:
                assert r.status == 200  # admin is unweighted
            for k in range(3):  # orders: 3 per 10 s
                async with s.post(srv.rest_url + "/fapi/v1/order") as r:
                    if k < 3:
                        assert r.status == 200 and r.headers["X-MBX-ORDER-COUNT-10S"] == str(k + 1)
            async with s.post(srv.rest_url + "/fapi/v1/order") as r:
                assert r.status == 429 and (await r.json())["code"] == -1015
            async with s.get(srv.rest_url + "/fapi/v1/ping") as r:  # the third 429 within the window: banned
                body = await r.json()
                assert r.status == 418 and body["code"] == -1003 and "banned until" in body["msg"]
            async with s.get(srv.rest_url + "/fapi/v1/time") as r:
                assert r.status == 418
            assert srv.counts["ip_bans"] == 1 and srv.counts["rest_418"] == 1
            async with connect(srv.ws_url + "/ws/key123") as ws:
                assert orjson.loads(await ws.recv()) == {"e": "listenKeyExpired"}
            async with connect(srv.ws_url + "/ws/notakey") as ws:
                assert (await recv_json(ws))["code"] == 2

    asyncio.run(scenario())


# ----------------------------------------------------------------------------- admin and books
def test_admin_state_faults_speed_and_disconnect() -> None:
    async def scenario() -> None:
        async with running() as srv:
            async with connect(srv.ws_url + "/ws/btcusdt@bookTicker") as ws:
                await recv_json(ws)
                state = await post(srv, "/_sim/speed", {"speed": 2})
                assert state == {"speed": 2.0}
                bad = await post(srv, "/_sim/faults", {"streams": {"bogus": {"drop": 2}}})
                assert "error" in bad
                cfg = await post(srv, "/_sim/faults", {"seed": 4, "rest_5xx_rate": 0.0})
                assert cfg["seed"] == 4
                _, got, _ = await get(srv, "/_sim/faults")
                assert got == cfg
                _, st, _ = await get(srv, "/_sim/state")
                assert st["connections"] == 1 and st["sent"]["bookTicker"] >= 1 and st["mode"] == "model"
                assert set(st) >= {"market_ms", "speed", "paused", "sent", "connections", "faults", "server"}
                assert (await post(srv, "/_sim/disconnect")) == {"closed": 1}
                with pytest.raises(websockets.ConnectionClosed):
                    while True:
                        await recv_json(ws)
            assert srv.counts["closed:admin_disconnect"] == 1

    asyncio.run(scenario())


def test_a_local_book_from_rest_and_diff_depth_equals_the_true_book_after_pausing() -> None:
    async def scenario() -> None:
        async with running(speed=10.0) as srv, connect(srv.ws_url + "/ws/btcusdt@depth@100ms") as ws:
            book = LocalOrderBook("BTCUSDT")
            book.apply_diff(diff_event(await recv_json(ws)))
            _, snap, _ = await get(srv, "/fapi/v1/depth", symbol="BTCUSDT", limit=1000)
            book.apply_snapshot(snapshot_event("BTCUSDT", snap))
            for _ in range(3):
                deadline = time.monotonic() + 0.7
                while time.monotonic() < deadline:
                    book.apply_diff(diff_event(await recv_json(ws)))
                paused = await post(srv, "/_sim/pause")
                assert paused["paused"] is True
                _, true, _ = await get(srv, "/_sim/true_book", symbol="BTCUSDT")
                while book.last_update_id < true["lastUpdateId"]:
                    book.apply_diff(diff_event(await recv_json(ws)))
                assert book.synced and book.resyncs == 0
                assert book.last_update_id == true["lastUpdateId"] and same_book(book, true)
                with pytest.raises(asyncio.TimeoutError):  # paused: no new market messages
                    await recv_json(ws, timeout=0.3)
                await post(srv, "/_sim/resume")

    asyncio.run(scenario())


def test_max_speed_never_drops_a_message_for_a_slow_reader() -> None:
    cfg = SimServerConfig(high_water=200)

    async def scenario() -> None:
        async with running(cfg, speed="max", symbols=("BTCUSDT",)) as srv:
            ws = await websockets.connect(srv.ws_url + "/stream?streams=btcusdt@aggTrade/btcusdt@bookTicker")
            ids, tickers = [], []
            for k in range(4000):  # a bounded client queue: TCP back-pressure reaches the market loop
                m = await recv_json(ws)
                (ids if m["stream"].endswith("aggTrade") else tickers).append(m["data"])
                if k == 100:
                    await asyncio.sleep(0.2)  # the reader stalls; the market waits once the buffers are full
            assert [t["a"] for t in ids] == list(range(ids[0]["a"], ids[0]["a"] + len(ids)))
            assert all(b["u"] > a["u"] for a, b in itertools.pairwise(tickers))
            assert srv.exchange.now_ms() - srv.exchange.start_ms > 10_000  # it did run ahead of real time
            ws.transport.abort()  # leave without reading the ~30k messages still in the socket buffers

    asyncio.run(scenario())
