"""The simulator's signed trading API over real HTTP and WebSocket: auth, every order type, views, listen keys."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from arbray.binance.signing import API_KEY_HEADER, sign
from arbray.sim.trading_api import TradingApiConfig
from arbray.venue import BinanceApiError
from tests.integration.test_venue_harness import BTC, Sim, run, running_sim, wait_until

pytestmark = pytest.mark.integration


async def raw(sim: Sim, method: str, path: str, query: str = "", body: str = "",
              key: str | None = None) -> tuple[int, Any]:
    headers = {API_KEY_HEADER: sim.key if key is None else key}
    if body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    async with aiohttp.ClientSession() as s, s.request(method, f"{sim.server.rest_url}{path}?{query}",
                                                        data=body or None, headers=headers) as r:
        return r.status, await r.json(content_type=None)


def px(price: float) -> str:
    return f"{price:.1f}"


def signed(sim: Sim, params: dict[str, str], secret: str | None = None, ts: int | None = None) -> str:
    q = urlencode({**params, "recvWindow": "5000", "timestamp": str(ts if ts is not None else sim.exchange.now_ms())})
    return f"{q}&signature={sign(secret or sim.secret, q)}"


def test_authentication_signature_and_timestamp() -> None:
    async def body() -> None:
        async with running_sim(paused=True) as sim:
            p = {"symbol": BTC}
            assert (await raw(sim, "GET", "/fapi/v1/openOrders", signed(sim, p)))[0] == 200
            status, err = await raw(sim, "GET", "/fapi/v1/openOrders", signed(sim, p, secret="0" * 64))
            assert (status, err["code"]) == (400, -1022)
            status, err = await raw(sim, "GET", "/fapi/v1/openOrders",
                                    signed(sim, p, ts=sim.exchange.now_ms() - 10_000))
            assert (status, err["code"]) == (400, -1021)
            status, err = await raw(sim, "GET", "/fapi/v1/openOrders",
                                    signed(sim, p, ts=sim.exchange.now_ms() + 5_000))
            assert err["code"] == -1021  # more than 1 s ahead of the server
            status, err = await raw(sim, "GET", "/fapi/v1/openOrders", signed(sim, p), key="nope")
            assert (status, err["code"]) == (401, -2015)
            status, err = await raw(sim, "GET", "/fapi/v1/openOrders", urlencode(p), key="")
            assert err["code"] == -2014
            # params split between query and form body; the signature covers query + body as sent
            now = sim.exchange.now_ms()
            q = urlencode({"symbol": BTC, "side": "BUY", "type": "LIMIT"})
            b = urlencode({"timeInForce": "GTC", "quantity": "0.010", "price": "1000.0", "recvWindow": "5000",
                           "timestamp": str(now)})
            status, order = await raw(sim, "POST", "/fapi/v1/order", q, f"{b}&signature={sign(sim.secret, q + b)}")
            assert status == 200 and order["status"] == "NEW" and order["price"] == "1000.0"

    run(body())


def test_every_order_type_and_time_in_force() -> None:
    async def body() -> None:
        async with running_sim(paused=True) as sim, sim.rest() as rest:
            await rest.sync_time()

            async def order(**p: Any) -> Any:
                return await rest.request("POST", "/fapi/v1/order",
                                          {"symbol": BTC, "newOrderRespType": "RESULT", **p}, signed=True)

            bid, ask = sim.best()
            m = await order(side="BUY", type="MARKET", quantity="0.010")
            assert m["status"] == "FILLED" and m["type"] == "MARKET" and float(m["avgPrice"]) >= ask
            bid, ask = sim.best()
            ask_qty = sim.exchange.best_ask(BTC)[1]  # type: ignore[index]
            gtc = await order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.010", price=px(bid - 50))
            assert gtc["status"] == "NEW"
            ioc = await order(side="BUY", type="LIMIT", timeInForce="IOC", quantity=f"{ask_qty + 5:.3f}",
                              price=f"{ask:.1f}")
            assert ioc["status"] == "EXPIRED" and float(ioc["executedQty"]) == pytest.approx(ask_qty)
            with pytest.raises(BinanceApiError) as e:
                await order(side="SELL", type="LIMIT", timeInForce="FOK", quantity="20.000", price=px(bid - 0.5))
            assert e.value.code == -5021
            bid, ask = sim.best()
            fok = await order(side="SELL", type="LIMIT", timeInForce="FOK", quantity="0.001", price=f"{bid:.1f}")
            assert fok["status"] == "FILLED"
            with pytest.raises(BinanceApiError) as e:
                await order(side="BUY", type="LIMIT", timeInForce="GTX", quantity="0.010", price=f"{ask:.1f}")
            assert e.value.code == -5022 and e.value.action == "reject"
            gtx = await order(side="SELL", type="LIMIT", timeInForce="GTX", quantity="0.010", price=px(ask + 5))
            assert gtx["status"] == "NEW" and gtx["timeInForce"] == "GTX"
            opened = await rest.request("GET", "/fapi/v1/openOrders", {"symbol": BTC}, signed=True)
            assert {o["orderId"] for o in opened} == {gtc["orderId"], gtx["orderId"]}
            q = await rest.request("GET", "/fapi/v1/order", {"symbol": BTC, "orderId": m["orderId"]}, signed=True)
            assert q["status"] == "FILLED" and q["time"] > 0
            c = await rest.request("DELETE", "/fapi/v1/order",
                                   {"symbol": BTC, "origClientOrderId": gtc["clientOrderId"]}, signed=True)
            assert c["status"] == "CANCELED"
            with pytest.raises(BinanceApiError) as e:  # already canceled: the race Binance reports as -2011
                await rest.request("DELETE", "/fapi/v1/order", {"symbol": BTC, "orderId": gtc["orderId"]},
                                   signed=True)
            assert e.value.code == -2011
            done = await rest.request("DELETE", "/fapi/v1/allOpenOrders", {"symbol": BTC}, signed=True)
            assert done["code"] == 200
            assert await rest.request("GET", "/fapi/v1/openOrders", signed=True) == []
            # account views agree with each other and with the fills
            trades = await rest.request("GET", "/fapi/v1/userTrades", {"symbol": BTC}, signed=True)
            net = sum(float(t["qty"]) * (1 if t["buyer"] else -1) for t in trades)
            (pos,) = await rest.request("GET", "/fapi/v2/positionRisk", {"symbol": BTC}, signed=True)
            assert float(pos["positionAmt"]) == pytest.approx(net) and pos["positionSide"] == "BOTH"
            v3 = await rest.request("GET", "/fapi/v3/positionRisk", signed=True)
            assert [p["symbol"] for p in v3] == [BTC] and "initialMargin" in v3[0]
            (bal,) = await rest.request("GET", "/fapi/v2/balance", signed=True)
            fees = sum(float(t["commission"]) for t in trades)
            assert float(bal["balance"]) == pytest.approx(100_000 - fees + sum(float(t["realizedPnl"])
                                                                                for t in trades))
            acct = await rest.request("GET", "/fapi/v3/account", signed=True)
            assert acct["totalWalletBalance"] == bal["balance"]
            lev = await rest.request("POST", "/fapi/v1/leverage", {"symbol": BTC, "leverage": 5}, signed=True)
            assert lev["leverage"] == 5
            income = await rest.request("GET", "/fapi/v1/income", {"incomeType": "COMMISSION"}, signed=True)
            assert len(income) == len(trades)

    run(body())


def test_listen_key_lifecycle_and_user_stream_events() -> None:
    async def body() -> None:
        async with running_sim(paused=True) as sim, sim.rest() as rest:
            await rest.sync_time()
            k1 = (await rest.request("POST", "/fapi/v1/listenKey", api_key=True))["listenKey"]
            k2 = (await rest.request("POST", "/fapi/v1/listenKey", api_key=True))["listenKey"]
            assert k1 == k2 and len(k1) == 64  # one live key per account, re-POST extends it
            await rest.request("PUT", "/fapi/v1/listenKey", api_key=True)
            got: list[dict[str, Any]] = []
            async with aiohttp.ClientSession() as s, s.ws_connect(f"{sim.server.ws_url}/ws/{k1}") as ws:
                await rest.request("POST", "/fapi/v1/order", {"symbol": BTC, "side": "BUY", "type": "MARKET",
                                                              "quantity": "0.005"}, signed=True)
                while len(got) < 3:
                    got.append(json.loads((await ws.receive(timeout=5)).data))
                assert [g["e"] for g in got] == ["ORDER_TRADE_UPDATE", "ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"]
                assert [g["o"]["x"] for g in got[:2]] == ["NEW", "TRADE"] and got[2]["a"]["m"] == "ORDER"
                await rest.request("DELETE", "/fapi/v1/listenKey", api_key=True)
                closed = await ws.receive(timeout=5)
                assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            with pytest.raises(BinanceApiError) as e:
                await rest.request("PUT", "/fapi/v1/listenKey", api_key=True)
            assert e.value.code == -1125
            # an unknown key is not a stream
            async with aiohttp.ClientSession() as s, s.ws_connect(f"{sim.server.ws_url}/ws/{k1}") as ws:
                reply = json.loads((await ws.receive(timeout=5)).data)
                assert reply["code"] == 2

    run(body())


def test_listen_key_lapses_without_keepalive() -> None:
    async def body() -> None:
        cfg = TradingApiConfig(listen_key_validity_ms=300, expiry_check_ms=20)
        async with running_sim(api=cfg) as sim, sim.rest() as rest:
            await rest.sync_time()
            key = (await rest.request("POST", "/fapi/v1/listenKey", api_key=True))["listenKey"]
            async with aiohttp.ClientSession() as s, s.ws_connect(f"{sim.server.ws_url}/ws/{key}") as ws:
                msg = json.loads((await ws.receive(timeout=5)).data)
                assert msg == {"e": "listenKeyExpired", "E": msg["E"], "listenKey": key}
            await wait_until(lambda: sim.api.counters["listen_keys_expired"] == 1)

    run(body())
