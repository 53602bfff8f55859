"""Feed pieces that need no server: config rules, shard planning, pollers' parsing, book sync policy,
and the channel path (parser → sequencers → sink) driven with raw Binance messages."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from arbray.feeds.booksync import BookSyncPolicy
from arbray.feeds.client import MarketFeed
from arbray.feeds.config import BINANCE_PRODUCTION, BINANCE_TESTNET, FeedConfig
from arbray.feeds.pollers import (
    BadReply,
    parse_long_short_ratio,
    parse_open_interest,
    parse_open_interest_hist,
    parse_premium_index,
    parse_spot_price,
    parse_top_trader_ratio,
)
from arbray.feeds.ws import plan_shards, shard_url
from arbray.marketdata.events import DepthSnapshot, DepthUpdate, MarketIndicator, MarkPrice
from arbray.marketdata.orderbook import LocalOrderBook
from arbray.replay.engine import MarketState

pytestmark = pytest.mark.unit

LOCAL = {"ws_base": "ws://127.0.0.1:1", "rest_base": "http://127.0.0.1:1"}


def _cfg(**kw: object) -> FeedConfig:
    return FeedConfig.model_validate({**LOCAL, "symbols": ("BTCUSDT",), **kw})


def test_presets_and_config_rules() -> None:
    prod = FeedConfig.for_endpoints(BINANCE_PRODUCTION, ("BTCUSDT", "ETHUSDT"))
    assert prod.ws_base.startswith("wss://") and prod.spot_rest_base is not None
    assert FeedConfig.for_endpoints(BINANCE_TESTNET, ("BTCUSDT",)).rest_base.startswith("https://")
    assert prod.rest_config().base_url == prod.rest_base
    with pytest.raises(ValidationError) as exc:
        _cfg(streams=("aggTrade", "depth@7ms"), snapshot_limit=999, pollers=("nope",), symbols=("BTCUSDT",) * 2)
    text = str(exc.value)
    for field in ("streams", "snapshot_limit", "pollers", "symbols"):
        assert field in text
    with pytest.raises(ValidationError, match="not both"):
        _cfg(streams=("aggTrade", "trade"))
    with pytest.raises(ValidationError, match="one diff-depth"):
        _cfg(streams=("depth@100ms", "depth"))
    with pytest.raises(ValidationError):
        _cfg(symbols=("btcusdt",))  # symbols are upper case
    with pytest.raises(ValidationError):
        _cfg(unknown_field=1)


def test_shards_split_at_shard_size_and_by_route() -> None:
    symbols = tuple(f"S{i:02d}USDT" for i in range(41))  # 41 x 5 = 205 streams
    cfg = _cfg(symbols=symbols)
    plans = plan_shards(cfg)
    assert [len(p.streams) for p in plans] == [200, 5]
    assert [name for p in plans for name in p.streams] == cfg.stream_names()
    routed = plan_shards(_cfg(symbols=("BTCUSDT",), routed=True, global_streams=("!forceOrder@arr",)))
    by_prefix = {p.prefix: p.streams for p in routed}
    assert by_prefix["/public"] == ("btcusdt@depth@100ms", "btcusdt@bookTicker")
    assert "!forceOrder@arr" in by_prefix["/market"] and "btcusdt@aggTrade" in by_prefix["/market"]
    url = shard_url("wss://x.example", routed[0], via_url=True)
    assert url.startswith("wss://x.example/market/stream?streams=btcusdt@aggTrade/")
    assert shard_url("wss://x.example/", routed[0], via_url=False) == "wss://x.example/market/stream"


def test_pollers_parse_binance_replies() -> None:
    oi = parse_open_interest("BTCUSDT", {"openInterest": "10659.509", "symbol": "BTCUSDT", "time": 1589437530011}, 0)
    assert oi == [MarketIndicator("BTCUSDT", 1589437530011, "open_interest", 10659.509)]
    hist = parse_open_interest_hist("BTCUSDT", [
        {"symbol": "BTCUSDT", "sumOpenInterest": "20.5", "sumOpenInterestValue": "1000", "timestamp": 2},
        {"symbol": "BTCUSDT", "sumOpenInterest": "10.5", "sumOpenInterestValue": "500", "timestamp": 1}], 0)
    assert [(e.ts_ms, e.value) for e in hist] == [(1, 10.5), (2, 20.5)]  # type: ignore[union-attr]
    ls = parse_long_short_ratio("BTCUSDT", [
        {"symbol": "BTCUSDT", "longShortRatio": "1.8", "longAccount": "0.64", "shortAccount": "0.36",
         "timestamp": 5}, {"longShortRatio": "1.1", "timestamp": 4}], 0)
    assert ls == [MarketIndicator("BTCUSDT", 5, "long_short_ratio", 1.8)]
    top = parse_top_trader_ratio("BTCUSDT", [{"longShortRatio": "1.4", "longAccount": "0.58",
                                               "shortAccount": "0.42", "timestamp": 9}], 0)
    assert top == [MarketIndicator("BTCUSDT", 9, "top_trader_long_ratio", 0.58)]
    mark = parse_premium_index("BTCUSDT", {"symbol": "BTCUSDT", "markPrice": "100.5", "indexPrice": "100.4",
                                           "estimatedSettlePrice": "100", "lastFundingRate": "0.0001",
                                           "interestRate": "0.0001", "nextFundingTime": 8, "time": 7}, 0)
    assert mark == [MarkPrice("BTCUSDT", 7, 100.5, 100.4, 0.0001, 8)]
    assert parse_spot_price("BTCUSDT", {"symbol": "BTCUSDT", "price": "99.9"}, 42) == [
        MarketIndicator("BTCUSDT", 42, "spot_price", 99.9)]
    with pytest.raises(BadReply):
        parse_open_interest_hist("BTCUSDT", {"code": -1}, 0)
    with pytest.raises(BadReply):
        parse_spot_price("BTCUSDT", {"price": "nan"}, 0)
    with pytest.raises(KeyError):
        parse_open_interest("BTCUSDT", {"symbol": "BTCUSDT"}, 0)


def test_book_sync_policy_retries_then_degrades_then_recovers() -> None:
    policy = BookSyncPolicy(_cfg(snapshot_max_attempts=2, degraded_retry_s=10, snapshot_bridge_timeout_s=1))
    book = LocalOrderBook("BTCUSDT")
    assert policy.observe("BTCUSDT", book, 0)  # awaiting its first snapshot: queue it
    assert not policy.observe("BTCUSDT", book, 1)  # already queued: never twice
    policy.failed("BTCUSDT", 2, "rest_error")
    assert policy.observe("BTCUSDT", book, 3)
    policy.failed("BTCUSDT", 4, "rest_error")  # second failure in a row: degraded
    assert policy.degraded() == ["BTCUSDT"]
    assert not policy.observe("BTCUSDT", book, 5_000)  # waits degraded_retry_s
    assert policy.observe("BTCUSDT", book, 10_004)
    book.apply_snapshot(DepthSnapshot("BTCUSDT", 100, 0, [(1.0, 1.0)], [(2.0, 1.0)]))
    policy.applied("BTCUSDT", book, 10_005)
    assert policy.tracks["BTCUSDT"].state == "bridging"
    assert not policy.observe("BTCUSDT", book, 10_500)  # waiting for the bridging diff
    assert not policy.observe("BTCUSDT", book, 11_006)  # bridge timeout: a failure; degraded, so wait again
    assert policy.stats["sync_failures:bridge_timeout"] == 1
    assert policy.observe("BTCUSDT", book, 21_006)
    book.apply_snapshot(DepthSnapshot("BTCUSDT", 200, 0, [(1.0, 1.0)], [(2.0, 1.0)]))
    policy.applied("BTCUSDT", book, 21_007)
    book.apply_diff(DepthUpdate("BTCUSDT", 0, 0, 150, 210, 140, [("1.0", "2.0")], []))  # bridges 200
    assert not policy.observe("BTCUSDT", book, 21_008)
    assert policy.degraded() == [] and policy.stats["recovered_from_degraded"] == 1
    assert policy.tracks["BTCUSDT"].attempts == 0 and policy.stats["syncs"] == 1


def _agg(a: int, price: str = "100.0") -> bytes:
    return orjson.dumps({"stream": "btcusdt@aggTrade", "data": {
        "e": "aggTrade", "E": 1000 + a, "s": "BTCUSDT", "a": a, "p": price, "q": "0.5", "f": a, "l": a,
        "T": 1000 + a, "m": a % 2 == 0}})


def _force(ms: int) -> bytes:
    return orjson.dumps({"stream": "btcusdt@forceOrder", "data": {"e": "forceOrder", "E": ms + 5, "o": {
        "s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.1", "p": "99", "ap": "99.5", "X": "FILLED",
        "l": "0.1", "z": "0.1", "T": ms}}})


def test_channel_dedupes_holds_and_counts_without_a_server() -> None:
    state = MarketState()
    raws: list[tuple[int, bytes]] = []
    feed = MarketFeed(_cfg(), state, on_raw=lambda ns, raw: raws.append((ns, raw)))
    for i, raw in enumerate([_agg(1), _agg(2), _agg(2), _agg(4), b'{"stream": "btcusdt@aggTrade", "da',
                             _agg(5, "nan"), _force(10), _force(10), _force(11)]):
        feed._on_message(raw, 1_000_000 * (i + 1))
    ch = feed.channels["BTCUSDT"]
    assert ch.trades.last == 2 and ch.trades.gap() == (3, 3)  # 4 is held behind the hole at 3
    stats = feed.stats()
    assert stats["duplicates_dropped"] == {"aggTrade": 1, "forceOrder": 1}
    assert stats["rejects"] == {"malformed_json": 1, "aggTrade:nonpositive_or_nan_price": 1}
    assert stats["gaps"]["detected"] == 1 and stats["gaps"]["held_now"] == 1
    feed._feed_fill(ch, [{"a": 3, "p": "100.0", "q": "0.5", "f": 3, "l": 3, "T": 1003, "m": False}], 99)
    assert ch.trades.last == 4 and ch.trades.gap() is None
    assert feed.stats()["gaps"]["ids_filled_rest"] == 1
    sym = state.symbols["BTCUSDT"]
    sym.flush()
    assert list(sym.tape.trade_id[: len(sym.tape)]) == [1, 2, 3, 4]
    assert len(sym._liqs) == 2  # the duplicated liquidation counted once
    recorded = [orjson.loads(r)["data"].get("a") for _, r in raws if b"aggTrade" in r]
    assert recorded == [1, 2, 3, 4], "on_raw sees what was delivered, in delivery order"
