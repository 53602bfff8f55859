"""Every injected fault kind observed on the wire by a test client, and counted exactly.

Ground truth comes from an in-process tap on the exchange (it sees every payload before the
server's faults). Each client reads one stream kind, so a reorder can only swap messages of that
stream. The market is paused before the counts are compared, so nothing is in flight."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from typing import Any

import aiohttp
import orjson
import pytest
import websockets

from arbray.marketdata.parser import BinanceParser
from tests.integration.test_sim_server import OrderProbe, get, post, recv_json, running

pytestmark = pytest.mark.integration


class _Sink:
    def on_trade(self, *a: Any) -> None: ...

    def on_book_ticker(self, *a: Any) -> None: ...

    def on_event(self, event: Any) -> None: ...


class _Router:
    def route(self, symbol: str) -> _Sink:
        return _Sink()


async def _read_until_quiet(ws: Any, out: list[bytes], quiet_s: float, stop: asyncio.Event) -> None:
    """Collect frames; after ``stop`` is set, return once nothing arrived for ``quiet_s``."""
    while True:
        try:
            raw = await asyncio.wait_for(ws.recv(), quiet_s)
        except TimeoutError:
            if stop.is_set():
                return
            continue
        out.append(raw.encode() if isinstance(raw, str) else raw)


def _from_first(truth: list[bytes], first: bytes) -> list[bytes]:
    return truth[truth.index(first):]


def test_message_faults_are_observed_and_counted_exactly() -> None:
    faults = {"seed": 11, "depth_gap_rate": 0.08, "streams": {
        "aggTrade": {"drop": 0.05, "duplicate": 0.05, "reorder": 0.05},
        "bookTicker": {"malformed": 0.05}}}
    names = {"agg": "btcusdt@aggTrade", "depth": "btcusdt@depth@100ms", "bt": "ethusdt@bookTicker"}

    async def scenario() -> None:
        async with running(speed=6.0) as srv:
            truth: dict[str, list[bytes]] = {k: [] for k in names}
            for key, name in names.items():
                srv.exchange.subscribe(name, truth[key].append)
            clients = {k: await websockets.connect(srv.ws_url + "/ws/" + n, max_queue=None) for k, n in names.items()}
            got: dict[str, list[bytes]] = {k: [] for k in names}
            for k, ws in clients.items():  # faults off: the first frame anchors each client in the truth
                raw = await asyncio.wait_for(ws.recv(), 3)
                got[k].append(raw.encode() if isinstance(raw, str) else raw)
            await post(srv, "/_sim/faults", faults)
            stop = asyncio.Event()
            readers = [asyncio.create_task(_read_until_quiet(ws, got[k], 0.3, stop)) for k, ws in clients.items()]
            await asyncio.sleep(2.5)
            await post(srv, "/_sim/pause")
            stop.set()
            await asyncio.gather(*readers)
            _, state, _ = await get(srv, "/_sim/state")
            injected = state["faults"]
            for ws in clients.values():
                await ws.close()

            # aggTrade: drops, duplicates and adjacent swaps
            want = [orjson.loads(d)["a"] for d in _from_first(truth["agg"], got["agg"][0])]
            ids = [orjson.loads(d)["a"] for d in got["agg"]]
            missing = set(want) - set(ids)
            held = len(missing) - injected.get("drop:aggTrade", 0)  # a reorder still holding its frame
            swaps = sum(1 for a, b in itertools.pairwise(ids) if b < a)
            print(f"aggTrade: {len(want)} published, injected {injected}, observed missing={len(missing)} "
                  f"duplicates={len(ids) - len(set(ids))} swaps={swaps}")
            assert held in (0, 1)
            assert injected["drop:aggTrade"] > 0 and len(ids) - len(set(ids)) == injected["duplicate:aggTrade"] > 0
            assert swaps == injected["reorder:aggTrade"] - held > 0
            # depth: withheld events are id gaps the client sees as pu ≠ its last u
            want_depth = [orjson.loads(d) for d in _from_first(truth["depth"], got["depth"][0])]
            seen = [orjson.loads(d) for d in got["depth"]]
            gaps = sum(1 for a, b in itertools.pairwise(seen) if b["pu"] != a["u"])
            assert len(want_depth) - len(seen) == injected["depth_gap"] > 0
            assert 0 < gaps <= injected["depth_gap"]
            assert all(b["U"] > a["u"] for a, b in itertools.pairwise(seen))
            # bookTicker: every malformed frame is a parser reject, everything else parses
            parser = BinanceParser(_Router())
            for frame in got["bt"]:
                parser.feed(frame)
            want_bt = _from_first(truth["bt"], got["bt"][0])
            assert sum(parser.rejects.values()) == injected["malformed:bookTicker"] > 0
            assert parser.events["bookTicker"] == len(want_bt) - injected["malformed:bookTicker"]
            assert len(got["bt"]) == len(want_bt)
            assert {"truncated", "wrong_type", "nan_price"} <= {
                k.partition(":")[2] for k in injected if k.startswith("malformed_variant:")}

    asyncio.run(scenario())


def test_disconnects_and_silent_stalls() -> None:
    async def scenario() -> None:
        async with running(speed=4.0) as srv:
            await post(srv, "/_sim/faults", {"disconnect_every_s": 0.6})
            started = time.monotonic()
            async with websockets.connect(srv.ws_url + "/ws/btcusdt@bookTicker", max_queue=None) as ws:
                with pytest.raises(websockets.ConnectionClosed):
                    while True:
                        await recv_json(ws)
            assert 0.3 < time.monotonic() - started < 2.0
            assert srv.faults.counts["disconnect"] >= 1
            await post(srv, "/_sim/faults", {"stall_every_s": 1.0, "stall_s": 0.6})
            async with websockets.connect(srv.ws_url + "/ws/btcusdt@bookTicker", max_queue=None) as ws:
                last = time.monotonic()
                gaps = []
                end = last + 2.6
                while time.monotonic() < end:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await recv_json(ws, timeout=0.2)
                        now = time.monotonic()
                        gaps.append(now - last)
                        last = now
                assert ws.close_code is None  # the connection stayed open through the stalls
            assert max(gaps) >= 0.45  # silent for a stall (nothing sent, the connection open)
            assert sorted(gaps)[len(gaps) // 2] < 0.05  # otherwise a busy stream
            assert srv.faults.counts["stall"] >= 2 and srv.faults.counts["stall_dropped"] > 0

    asyncio.run(scenario())


def test_rest_5xx_timeouts_and_order_rejects() -> None:
    async def scenario() -> None:
        async with running(extensions=(OrderProbe(),)) as srv, aiohttp.ClientSession() as s:
            await post(srv, "/_sim/faults", {"rest_5xx_rate": 1.0})
            async with s.get(srv.rest_url + "/fapi/v1/ping") as r:
                assert r.status == 503 and (await r.json())["code"] == -1001
            _, state, _ = await get(srv, "/_sim/state")  # admin endpoints are never faulted
            assert state["faults"]["rest_5xx"] == 1
            await post(srv, "/_sim/faults", {"rest_timeout_rate": 1.0, "rest_timeout_s": 1.0})
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                async with s.get(srv.rest_url + "/fapi/v1/time", timeout=aiohttp.ClientTimeout(total=0.3)):
                    pass
            assert time.monotonic() - started < 0.6
            assert srv.faults.counts["rest_timeout"] == 1
            await post(srv, "/_sim/faults", {"order_reject_rate": 1.0, "seed": 2})
            codes = []
            for _ in range(9):
                async with s.post(srv.rest_url + "/fapi/v1/order") as r:
                    codes.append((await r.json())["code"])
            assert set(codes) <= {-2010, -1008, -1007} and len(set(codes)) >= 2
            assert sum(v for k, v in srv.faults.counts.items() if k.startswith("order_reject:")) == 9
            await post(srv, "/_sim/faults", {})
            async with s.get(srv.rest_url + "/fapi/v1/ping") as r:
                assert r.status == 200

    asyncio.run(scenario())
