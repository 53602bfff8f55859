"""Replay mode over loopback: a real Binance recording served message by message with its original
payloads in file order at ``max`` speed, and a local book from the replayed REST snapshot and diffs
equal to the true book; derived streams and REST from the replayed state."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import orjson
import pytest

from arbray.marketdata.orderbook import LocalOrderBook
from tests.integration.test_sim_server import (
    connect,
    diff_event,
    get,
    post,
    recv_json,
    running,
    snapshot_event,
)

pytestmark = pytest.mark.integration


def test_a_real_recording_is_replayed_byte_for_byte_in_file_order(real_data: Path) -> None:
    path = real_data / "hftbacktest" / "usdm" / "btcusdt_20240718.gz"
    with gzip.open(path, "rb") as fh:
        lines = [line.partition(b" ")[2].rstrip(b"\n") for line in fh]
    recorded = [js for js in lines if js.startswith(b'{"stream"')]
    names = sorted({orjson.loads(js)["stream"] for js in recorded})

    async def scenario() -> None:
        async with running(paused=True, replay=str(path), speed="max") as srv:
            async with connect(srv.ws_url + "/stream?streams=" + "/".join(names)) as ws:
                await post(srv, "/_sim/resume")
                frames = [await asyncio.wait_for(ws.recv(), 5) for _ in recorded]
                assert [f.encode() if isinstance(f, str) else f for f in frames] == recorded
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(ws.recv(), 0.3)
            _, state, _ = await get(srv, "/_sim/state")
            assert state["mode"] == "replay" and state["finished"] is True
            assert sum(state["sent"].values()) == len(recorded)

    asyncio.run(scenario())


def test_a_local_book_from_the_replayed_snapshot_and_diffs_equals_the_true_book(real_data: Path) -> None:
    path = real_data / "hftbacktest" / "usdm" / "ethusdt_20240718.gz"

    async def scenario() -> None:
        async with running(paused=True, replay=str(path), speed=1.0) as srv:
            books = {name: LocalOrderBook("ETHUSDT") for name in ("ethusdt@depth@0ms", "ethusdt@depth@100ms")}
            clients = {name: await connect(srv.ws_url + "/ws/" + name).__aenter__() for name in books}
            trades = await connect(srv.ws_url + "/ws/ethusdt@aggTrade").__aenter__()
            _, early, _ = await get(srv, "/fapi/v1/depth", symbol="ETHUSDT", limit=1000)
            assert early["lastUpdateId"] == 0 and early["bids"] == []  # the file's snapshot comes 250 ms in
            await post(srv, "/_sim/resume")
            await asyncio.sleep(0.6)
            _, snap, _ = await get(srv, "/fapi/v1/depth", symbol="ETHUSDT", limit=1000)
            assert snap["lastUpdateId"] > 0 and len(snap["bids"]) == 1000
            for book in books.values():
                book.apply_snapshot(snapshot_event("ETHUSDT", snap))
            await post(srv, "/_sim/speed", {"speed": "max"})
            _, true, _ = await _true_book_when_finished(srv)
            for name, ws in clients.items():
                book = books[name]
                while book.last_update_id < true["lastUpdateId"]:
                    book.apply_diff(diff_event(await recv_json(ws)))
                assert book.synced and book.resyncs == 0, (name, book.stats)
                # the real book is deeper than the 1000-level snapshot: compare the best 500 levels
                bids, asks = book.top(500)
                assert bids == [(float(p), float(q)) for p, q in true["bids"][:500]], name
                assert asks == [(float(p), float(q)) for p, q in true["asks"][:500]], name
                await ws.close()
            agg = []
            while True:
                try:
                    agg.append((await recv_json(trades, timeout=0.3))["a"])
                except TimeoutError:
                    break
            await trades.close()
            _, rest, _ = await get(srv, "/fapi/v1/aggTrades", symbol="ETHUSDT", fromId=agg[0], limit=1000)
            assert [t["a"] for t in rest] == agg[:1000] and len(agg) == 1640  # the file's trades, ids a = t

    asyncio.run(scenario())


async def _true_book_when_finished(srv: object) -> tuple[int, dict[str, object], object]:
    for _ in range(200):
        _, state, _ = await get(srv, "/_sim/state")  # type: ignore[arg-type]
        if state["finished"]:
            return await get(srv, "/_sim/true_book", symbol="ETHUSDT")  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
    raise AssertionError("the replay did not finish")
