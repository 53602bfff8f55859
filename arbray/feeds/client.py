"""``MarketFeed``: complete, de-duplicated, in-order Binance USD-M market data into per-symbol sinks.

Data path: every WebSocket frame → ``orjson.loads`` → ``BinanceParser.feed_obj`` (which validates
and counts rejects by reason) → the symbol's ``_Channel`` → the router's sink (``SymbolFeatures``
in the runtime). The channel is where completeness is enforced, after validation, so a malformed
message is simply missing data that the next mechanism recovers:

- aggTrades: ``TradeSequencer`` by ``a``; a hole holds later trades and is filled from
  ``GET /fapi/v1/aggTrades?fromId=`` (paged, rate-limited; the fill goes through the parser too),
  or reported unfillable after ``gap_fill_deadline_s``;
- diff depth: ``DepthSequencer`` by ``pu``/``u`` (duplicates dropped, short reorders repaired); the
  book's own algorithm resyncs on a real break and ``BookSyncer`` fetches the throttled snapshot;
- bookTicker by ``u``, markPrice by ``E``, forceOrder and klines by payload identity: what arrives
  twice (rotation overlap, duplicated frames) is dropped and counted, so nothing is counted twice.

``on_raw(recv_ns, raw)`` receives every message the feed delivered, in delivery order, with its
receive time: the WebSocket frame as received, REST depth snapshots (with ``"symbol"`` added, as the
parser accepts) and REST gap fills re-encoded as combined-stream aggTrade messages — so a recording
replays exactly what the live sinks saw. Duplicates and rejected messages are counted, not passed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson

from arbray.clock import Clock, SystemClock
from arbray.feeds.booksync import BookSyncer
from arbray.feeds.config import FeedConfig
from arbray.feeds.continuity import DepthSequencer, RecentSet, SlidingWindowThrottle, TradeSequencer
from arbray.feeds.pollers import Pollers
from arbray.feeds.rest import BinanceError, BinanceRest, RestReply
from arbray.feeds.ws import CONNECTS_PER_5_MIN, StreamShard, plan_shards
from arbray.marketdata.events import (
    BookTicker,
    DepthUpdate,
    Event,
    ForceOrder,
    Kline,
    MarkPrice,
    RejectCounter,
)
from arbray.marketdata.orderbook import BookState, LocalOrderBook
from arbray.marketdata.parser import BinanceParser, MarketDataRouter, SymbolSink

RawHandler = Callable[[int, bytes], None]
_SYNCED = BookState.SYNCED
_loads, _JSONError = orjson.loads, orjson.JSONDecodeError
_FILL_RETRY_S = 0.2  # pause before asking REST again for trades it did not have yet


def _ns_source(clock: Clock) -> Callable[[], int]:
    """Local receive times in ns: the wall clock for a ``SystemClock``, else the injected clock."""
    own = getattr(clock, "now_ns", None)
    if callable(own):
        return own  # type: ignore[no-any-return]
    if isinstance(clock, SystemClock):
        return time.time_ns
    return lambda: clock.now_ms() * 1_000_000


TradeItem = tuple[int, float, float, bool, int, int, bytes | None]  # ts, price, qty, m, id, recv_ns, raw


class _Channel:
    """One symbol between the parser and its sink: sequencing, de-duplication, book sync hooks."""

    def __init__(self, feed: MarketFeed, symbol: str, sink: SymbolSink) -> None:
        cfg = feed.config
        self.feed, self.symbol, self.sink = feed, symbol, sink
        book = getattr(sink, "book", None)
        self.book: LocalOrderBook | None = book if isinstance(book, LocalOrderBook) else None
        self.record = feed.on_raw is not None
        self._sink_trade = sink.on_trade
        self._sink_event = sink.on_event
        self._sink_ticker = sink.on_book_ticker
        self.trades: TradeSequencer[TradeItem] = TradeSequencer(self._deliver_agg, cfg.max_held_trades)
        self.plain_trades: TradeSequencer[TradeItem] = TradeSequencer(self._deliver_plain, cfg.max_held_trades)
        self.depth: DepthSequencer[tuple[DepthUpdate, bytes | None]] = DepthSequencer(
            self._deliver_depth, cfg.depth_reorder_ms)
        self.recent = RecentSet(cfg.dedupe_window)
        self.ticker_u = -1
        self.mark_ms = -1
        self.dups: Counter[str] = Counter()  # live duplicates / stale messages by stream kind
        self.filling = False
        self.resumed = False  # resume_after was called and no trade was delivered since (see gap_pending)
        self.catching_up = False  # the REST catch-up after resume_after is running
        self.fill_task: asyncio.Task[None] | None = None
        self.expire_handle: asyncio.TimerHandle | None = None
        self.watch = False  # the book sync wants to see this book after every diff

    # ------------------------------------------------------------- SymbolSink
    def on_trade(self, ts_ms: int, price: float, qty: float, is_buyer_maker: bool, trade_id: int, id_kind: str,
                 recv_ns: int) -> None:
        item = (ts_ms, price, qty, is_buyer_maker, trade_id, recv_ns, self.feed.cur_raw)
        if id_kind == "agg":
            seq = self.trades
            if not seq.offer(trade_id, item, recv_ns // 1_000_000):
                if self.filling:
                    self.feed.cont["fill_overlap"] += 1
                else:
                    self.dups["aggTrade"] += 1
            elif self.filling:
                self.feed.cont["ids_filled_rest"] += 1
            if seq.held and self.fill_task is None:
                self.feed.start_fill(self)
        else:  # the @trade stream has no keyless REST history to fill from: holes are reported
            seq = self.plain_trades
            if not seq.offer(trade_id, item, recv_ns // 1_000_000):
                self.dups["trade"] += 1
            if seq.held:
                seq.skip_gap(recv_ns // 1_000_000, "trade_stream_no_fill")

    def on_book_ticker(self, update_id: int, transact_ms: int, bid: float, bid_qty: float, ask: float,
                       ask_qty: float, recv_ns: int) -> None:
        if update_id <= self.ticker_u:
            self.dups["bookTicker"] += 1
            return
        self.ticker_u = update_id
        self._sink_ticker(update_id, transact_ms, bid, bid_qty, ask, ask_qty, recv_ns)
        if self.record:
            self.feed.emit_raw(self.feed.cur_raw, recv_ns)

    def on_event(self, ev: Event) -> None:
        if type(ev) is DepthUpdate:
            depth = self.depth
            depth.offer(ev.final_id, ev.prev_final_id, (ev, self.feed.cur_raw), ev.recv_ns // 1_000_000)
            if depth.held_since_ms is not None and self.expire_handle is None:
                self.feed.schedule_expire(self, depth.window_ms / 1000)
            return
        if type(ev) is MarkPrice:
            if ev.event_ms <= self.mark_ms:
                self.dups["markPriceUpdate"] += 1
                return
            self.mark_ms = ev.event_ms
        elif type(ev) is ForceOrder:
            if not self.recent.add((ev.trade_ms, ev.side, ev.price, ev.avg_price, ev.qty, ev.filled_qty)):
                self.dups["forceOrder"] += 1
                return
        elif type(ev) is Kline:
            if not self.recent.add((ev.interval, ev.open_ms, ev.open, ev.high, ev.low, ev.close, ev.volume,
                                    ev.trades, ev.closed)):
                self.dups["kline"] += 1
                return
        elif type(ev) is BookTicker:
            self.on_book_ticker(ev.update_id, ev.transact_ms, ev.bid, ev.bid_qty, ev.ask, ev.ask_qty, ev.recv_ns)
            return
        self._sink_event(ev)
        if self.record:
            self.feed.emit_raw(self.feed.cur_raw, getattr(ev, "recv_ns", 0))

    # -------------------------------------------------------------- delivery
    def _deliver_agg(self, item: TradeItem) -> None:
        self.resumed = False
        self._sink_trade(item[0], item[1], item[2], item[3], item[4], "agg", item[5])
        if self.record:
            self.feed.emit_raw(item[6], item[5])

    def _deliver_plain(self, item: TradeItem) -> None:
        self._sink_trade(item[0], item[1], item[2], item[3], item[4], "trade", item[5])
        if self.record:
            self.feed.emit_raw(item[6], item[5])

    def _deliver_depth(self, item: tuple[DepthUpdate, bytes | None]) -> None:
        ev = item[0]
        self._sink_event(ev)
        if self.record:
            self.feed.emit_raw(item[1], ev.recv_ns)
        book = self.book
        if book is not None and (self.watch or book.state is not _SYNCED):
            self.observe_book()

    def observe_book(self) -> None:
        """Let the book sync look at this book (queues a snapshot when it needs one)."""
        book, syncer = self.book, self.feed.booksync
        if book is None or syncer is None:
            return
        syncer.observe(self.symbol, book)
        self.watch = book.state is not _SYNCED or syncer.policy.track(self.symbol).state != "idle"

    def expire_depth(self) -> None:
        """The reorder window passed: release held depth events (the book resyncs if they do not chain)."""
        self.expire_handle = None
        depth = self.depth
        depth.expire(self.feed.now_ns() // 1_000_000)
        if depth.held_since_ms is not None:
            left = depth.window_ms - (self.feed.now_ns() // 1_000_000 - depth.held_since_ms)
            self.feed.schedule_expire(self, max(0.001, left / 1000))


class _Router:
    """The parser's router: one ``_Channel`` per symbol, wrapping the user's sink."""

    def __init__(self, feed: MarketFeed) -> None:
        self.feed = feed

    def route(self, symbol: str) -> _Channel:
        return self.feed.channel(symbol)


class MarketFeed:
    """The Binance USD-M market-data client of one process (see the module doc).

    ``router`` gives each symbol's sink (``MarketState`` or the runtime's own); a sink that has a
    ``book: LocalOrderBook`` gets snapshot sync. ``rest`` may be shared with other clients of the
    same IP (one rate limiter); otherwise the feed makes and closes its own. ``clock`` drives the
    REST limiter and the sync policies; receive times are the wall clock in ns unless the clock
    offers ``now_ns``.
    """

    def __init__(self, config: FeedConfig, router: MarketDataRouter, clock: Clock | None = None,
                 rest: BinanceRest | None = None, on_raw: RawHandler | None = None) -> None:
        self.config = config
        self.router = router
        self.clock = clock or SystemClock()
        self.now_ns = _ns_source(self.clock)
        self.on_raw = on_raw
        shared = getattr(router, "rejects", None)
        self.rejects = shared if isinstance(shared, RejectCounter) else RejectCounter()
        self.parser = BinanceParser(_Router(self), self.rejects)
        self.channels: dict[str, _Channel] = {}
        self.ws_stats: Counter[str] = Counter()
        self.cont: Counter[str] = Counter()  # gap-fill counters
        self.last_seen: dict[str, int] = {}  # stream name -> last receive time (ns)
        self.cur_raw: bytes | None = None  # the message being parsed (for on_raw)
        self._last_emitted: bytes | None = None
        self._rest = rest
        self._own_rest = rest is None
        self.booksync: BookSyncer | None = None
        self.pollers: Pollers | None = None
        self.shards: list[StreamShard] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._fills: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.task_errors: list[str] = []
        self._started_ns = 0

    # ------------------------------------------------------------ lifecycle
    @property
    def rest(self) -> BinanceRest:
        if self._rest is None:
            self._rest = BinanceRest(self.config.rest_config(), self.clock)
        return self._rest

    async def start(self) -> None:
        """Open the REST session and the WebSocket shards; start book sync, pollers and housekeeping."""
        if self._tasks:
            raise RuntimeError("MarketFeed already started")
        cfg = self.config
        self._loop = asyncio.get_running_loop()
        self._started_ns = self.now_ns()
        await self.rest.start()
        self.booksync = BookSyncer(cfg, self.rest, self._apply_snapshot, self.clock)
        for symbol in cfg.symbols:
            if self.channel(symbol).resumed:
                self.start_fill(self.channels[symbol], catch_up=True)
        connects = SlidingWindowThrottle(CONNECTS_PER_5_MIN, 300_000)
        rng = random.Random()
        self.shards = [StreamShard(f"shard{i}", plan, cfg, self._on_message, self.ws_stats, connects, rng)
                       for i, plan in enumerate(plan_shards(cfg))]
        for shard in self.shards:
            self._spawn(shard.run(), shard.name)
        self._spawn(self.booksync.run(), "booksync")
        mark_streamed = any(k.startswith("markPrice") for k in cfg.streams) or any(
            g.startswith("!markPrice") for g in cfg.global_streams)
        self.pollers = Pollers(cfg, self.rest, self._emit_polled, self.rejects, mark_streamed, self.clock)
        if cfg.pollers:
            self._spawn(self.pollers.run_indicators(), "pollers")
        if cfg.spot_rest_base is not None:
            self._spawn(self.pollers.run_spot(), "spot")
        self._spawn(self._housekeeping(), "housekeeping")

    async def stop(self) -> None:
        """Cancel everything, close the sockets (and the REST session if the feed made it)."""
        tasks = self._tasks + list(self._fills)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
        self._fills.clear()
        for ch in self.channels.values():
            if ch.expire_handle is not None:
                ch.expire_handle.cancel()
                ch.expire_handle = None
            flush = getattr(ch.sink, "flush", None)
            if callable(flush):
                flush()
        if self._own_rest and self._rest is not None:
            await self._rest.close()

    async def __aenter__(self) -> MarketFeed:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=f"feed-{name}")
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.task_errors.append(f"{task.get_name()}: {task.exception()!r}")

    # ------------------------------------------------------------- hot path
    def _on_message(self, raw: bytes, recv_ns: int) -> None:
        """One WebSocket frame."""
        try:
            obj = _loads(raw)
        except _JSONError:
            self.rejects["malformed_json"] += 1
            return
        self.cur_raw = raw
        self.parser.feed_obj(obj, recv_ns)
        if type(obj) is dict:
            stream = obj.get("stream")
            if type(stream) is str:
                self.last_seen[stream] = recv_ns

    def emit_raw(self, raw: bytes | None, recv_ns: int) -> None:
        """Pass a delivered message to ``on_raw`` once (array messages deliver several events)."""
        if raw is not None and raw is not self._last_emitted and self.on_raw is not None:
            self._last_emitted = raw
            self.on_raw(recv_ns, raw)

    def channel(self, symbol: str) -> _Channel:
        ch = self.channels.get(symbol)
        if ch is None:
            ch = self.channels[symbol] = _Channel(self, symbol, self.router.route(symbol))
        return ch

    def resume_after(self, symbol: str, agg_id: int) -> None:
        """Continue ``symbol``'s aggTrades right after ``agg_id`` (a restart that kept the trades up to
        it): the first live trade then opens a gap from ``agg_id + 1`` that REST fills."""
        ch = self.channel(symbol)
        if ch.trades.last is None or agg_id > ch.trades.last:
            ch.trades.last = agg_id
            ch.resumed = True

    def gap_pending(self, symbol: str) -> bool:
        """Whether trades of ``symbol`` may still arrive from before what other streams now show: trades
        are held for a REST fill, or a resumed symbol is still catching up from REST. A consumer
        that cuts time into windows waits with them (SymbolState does)."""
        ch = self.channels.get(symbol)
        return ch is not None and (ch.resumed or ch.catching_up or ch.filling or ch.trades.held > 0)

    def schedule_expire(self, ch: _Channel, delay_s: float) -> None:
        loop = self._loop
        if loop is None:  # not started: held events are released by later events only
            return
        ch.expire_handle = loop.call_later(delay_s, ch.expire_depth)

    # --------------------------------------------------------- REST paths
    def _apply_snapshot(self, symbol: str, reply: RestReply, recv_ns: int) -> LocalOrderBook | None:
        """Feed a fetched depth snapshot through the parser; the book it went to, or None if rejected."""
        ch = self.channel(symbol)
        data = reply.data
        if self.on_raw is not None and isinstance(data, dict):
            self.cur_raw = orjson.dumps({**data, "symbol": symbol})
        before = self.parser.events["depthSnapshot"]
        self.parser.feed_obj(data, recv_ns, symbol)
        if self.parser.events["depthSnapshot"] == before:
            return None
        ch.watch = True
        return ch.book

    def start_fill(self, ch: _Channel, catch_up: bool = False) -> None:
        """Start filling ``ch``'s aggTrade hole from REST (one task per symbol at a time)."""
        if self._loop is None:
            return
        task = self._loop.create_task(self._catch_up(ch) if catch_up else self._fill(ch),
                                      name=f"feed-fill-{ch.symbol}")
        ch.fill_task = task
        self._fills.add(task)
        task.add_done_callback(self._fills.discard)
        task.add_done_callback(self._task_done)

    async def _fill(self, ch: _Channel) -> None:
        cfg, seq, cont = self.config, ch.trades, self.cont
        deadline_ms = int(cfg.gap_fill_deadline_s * 1000)
        try:
            if cfg.gap_grace_ms > 0:
                await asyncio.sleep(cfg.gap_grace_ms / 1000)  # a reordered trade may still arrive live
            while seq.gap() is not None:
                now_ms = self.now_ns() // 1_000_000
                if seq.gap_since_ms is not None and now_ms - seq.gap_since_ms > deadline_ms:
                    seq.skip_gap(now_ms, "deadline")
                    continue
                # Wait for the weight first, then ask for everything held by then: one page from the first
                # missing id covers every hole up to the highest held id (up to gap_fill_page trades).
                await self.rest.wait_budget("GET", "/fapi/v1/aggTrades", {"symbol": ch.symbol})
                span = seq.held_span()
                if span is None:
                    break
                lo, top = span
                cont["fill_requests"] += 1
                try:
                    reply = await self.rest.request("GET", "/fapi/v1/aggTrades", {
                        "symbol": ch.symbol, "fromId": lo, "limit": min(cfg.gap_fill_page, top - lo + 1)})
                except BinanceError:
                    cont["fill_errors"] += 1
                    await asyncio.sleep(_FILL_RETRY_S)
                    continue
                before = seq.last
                self._feed_fill(ch, reply.data, self.now_ns())
                if seq.last == before:
                    cont["fill_no_progress"] += 1
                    await asyncio.sleep(_FILL_RETRY_S)
        finally:
            ch.fill_task = None

    async def _catch_up(self, ch: _Channel) -> None:
        """A resumed symbol's trades since ``resume_after``, page by page from REST until a short page
        (caught up): a restart must not wait for a live trade to open the gap, as the stream may be quiet
        (a finished replay, an illiquid symbol). Trades held live meanwhile are filled afterwards."""
        cfg, seq, cont = self.config, ch.trades, self.cont
        ch.catching_up = True
        try:
            while True:
                await self.rest.wait_budget("GET", "/fapi/v1/aggTrades", {"symbol": ch.symbol})
                assert seq.last is not None
                cont["catch_up_requests"] += 1
                try:
                    reply = await self.rest.request("GET", "/fapi/v1/aggTrades", {
                        "symbol": ch.symbol, "fromId": seq.last + 1, "limit": cfg.gap_fill_page})
                except BinanceError:
                    cont["fill_errors"] += 1
                    await asyncio.sleep(_FILL_RETRY_S)
                    continue
                self._feed_fill(ch, reply.data, self.now_ns())
                if not isinstance(reply.data, list) or len(reply.data) < cfg.gap_fill_page:
                    break
        finally:
            ch.fill_task = None
            ch.resumed = ch.catching_up = False
        if seq.held:
            self.start_fill(ch)

    def _feed_fill(self, ch: _Channel, rows: Any, recv_ns: int) -> None:
        """REST aggTrades rows as stream payloads through the parser (validated and counted alike)."""
        if not isinstance(rows, list):
            self.rejects["aggTrades:not_a_list"] += 1
            return
        stream = f"{ch.symbol.lower()}@aggTrade"
        ch.filling = True
        try:
            for r in rows:
                if type(r) is not dict:
                    self.rejects["aggTrades:not_an_object"] += 1
                    continue
                d = {"e": "aggTrade", "E": r.get("T"), "s": ch.symbol, **r}
                if self.on_raw is not None:
                    self.cur_raw = orjson.dumps({"stream": stream, "data": d})
                self.parser.feed_obj(d, recv_ns)
        finally:
            ch.filling = False

    def _emit_polled(self, symbol: str, ev: Event) -> None:
        self.channel(symbol).sink.on_event(ev)

    async def _housekeeping(self) -> None:
        """Look at every unsynced book once a second (degraded retries, bridge timeouts, quiet streams)."""
        while True:
            await asyncio.sleep(1.0)
            for ch in list(self.channels.values()):
                if ch.book is not None and (ch.watch or ch.book.state is not _SYNCED):
                    ch.observe_book()

    # ---------------------------------------------------------------- stats
    @property
    def connections(self) -> int:
        """WebSocket connections open now."""
        return sum(s.connections for s in self.shards)

    def stats(self) -> dict[str, Any]:
        """Everything the feed counted (see ``docs/feeds.md`` for each key)."""
        cont: Counter[str] = Counter(self.cont)
        dups: Counter[str] = Counter()
        depth: Counter[str] = Counter()
        unfillable: dict[str, list[tuple[int, int]]] = {}
        books: dict[str, dict[str, Any]] = {}
        for sym, ch in self.channels.items():
            for key in ("gaps_detected", "gaps_closed", "gaps_unfillable", "ids_unfillable", "hole_items"):
                cont[key] += ch.trades.stats[key] + ch.plain_trades.stats[key]
            dups.update(ch.dups)
            depth.update(ch.depth.stats)
            if ch.trades.unfillable or ch.plain_trades.unfillable:
                unfillable[sym] = list(ch.trades.unfillable) + list(ch.plain_trades.unfillable)
            if ch.book is not None:
                books[sym] = {"state": str(ch.book.state), "resyncs": ch.book.resyncs,
                              "last_update_id": ch.book.last_update_id}
        if depth["duplicates"]:
            dups["depthUpdate"] += depth["duplicates"]
        cont["held_now"] = sum(ch.trades.held for ch in self.channels.values())
        ws = dict(sorted(self.ws_stats.items()))
        sync = self.booksync.snapshot_stats() if self.booksync is not None else {}
        return {
            "uptime_s": round((self.now_ns() - self._started_ns) / 1e9, 3) if self._started_ns else 0.0,
            "messages": dict(sorted(self.parser.events.items())),
            "rejects": dict(sorted(self.rejects.items())),
            "rejects_total": sum(self.rejects.values()),
            "connections": self.connections,
            "shards": len(self.shards),
            "reconnects": self.ws_stats["disconnects"],
            "rotations": self.ws_stats["rotations"],
            "ws": ws,
            "gaps": {"detected": cont["gaps_detected"], "filled": cont["gaps_closed"],
                     "unfillable": cont["gaps_unfillable"], "ids_unfillable": cont["ids_unfillable"],
                     "ids_filled_rest": cont["ids_filled_rest"], "fill_requests": cont["fill_requests"],
                     "fill_errors": cont["fill_errors"], "fill_no_progress": cont["fill_no_progress"],
                     "fill_overlap": cont["fill_overlap"], "held_now": cont["held_now"],
                     "unfillable_ranges": unfillable},
            "duplicates_dropped": dict(sorted(dups.items())),
            "duplicates_total": sum(dups.values()),
            "out_of_order": {"aggTrade_late": cont["hole_items"] - cont["ids_filled_rest"],
                             "depth_held": depth["held"], "depth_reordered": depth["reordered"],
                             "depth_released_unchained": depth["released_unchained"]},
            "book": {"resyncs": sum(b["resyncs"] for b in books.values()),
                     "snapshots_fetched": sync.get("snapshots_fetched", 0), "sync": sync, "symbols": books},
            "rest": self.rest.snapshot_stats() if self._rest is not None else {},
            "rest_weight_used_1m": self._rest.used_weight_1m if self._rest is not None else None,
            "pollers": self.pollers.snapshot_stats() if self.pollers is not None else {},
            "last_message_ns": dict(sorted(self.last_seen.items())),
            "task_errors": list(self.task_errors),
        }
