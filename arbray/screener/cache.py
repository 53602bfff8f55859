"""``KlineCache``: every symbol's last N closed bars (plus the open one) kept current by kline streams.

``KlineCacheCore`` (no I/O) is the feed's router: the ``MarketFeed`` delivers each symbol's parsed
``Kline`` events (``<symbol>@kline_<interval>`` streams, sharded over connections) and open-interest
samples (the feed's ``openInterestHist`` poller) to ``route(symbol)``. Per symbol and interval it keeps
the closed bars in numpy columns — the layout ``arbray.screener.factors`` reads — and the open bar.

Completeness: a closed kline extends the series; a duplicate is dropped and counted; a bar that opens
more than one period after the last closed one (a reconnect that skipped closes, or an update of the
next bar while the previous close never came) records a **gap** from the first missing bar. The
shell fills gaps from REST (``klines?startTime=``) after ``gap_delay_s`` and merges the rows by open
time; the same merge takes the start-up backfill, so stream closes that arrive while the backfill is in
flight are kept. A scan reads ``panel()`` and never polls REST.

``KlineCache`` is the asyncio shell: one ``BinanceRest`` (one rate limiter per IP) shared by the feed,
the start-up backfill (``arbray.screener.backfill``), gap fills and the hourly funding refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from arbray.clock import Clock, SystemClock
from arbray.feeds.client import MarketFeed
from arbray.feeds.config import Endpoints, FeedConfig
from arbray.feeds.rest import BinanceRest
from arbray.marketdata.events import Event, Kline, MarketIndicator
from arbray.scoring.config import FrozenModel
from arbray.screener.backfill import (
    MAX_KLINES_LIMIT,
    BackfillConfig,
    Backfiller,
    BackfillReport,
    Interval,
    KlineBlock,
    Series,
    align_open_interest,
    closed_rows,
    funding_until,
    interval_ms,
    oi_samples_for,
)
from arbray.screener.data import SymbolKlines

log = logging.getLogger(__name__)
_COLS = ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy")


class KlineCacheConfig(FrozenModel):
    """Which intervals the cache keeps, how much, and how it backfills and repairs them."""

    intervals: tuple[Interval, ...] = Field(("5m",), min_length=1, description="kline intervals (streams)")
    backfill: BackfillConfig = Field(default_factory=BackfillConfig, description="bars, OI, funding, concurrency")
    gap_delay_s: float = Field(1.0, ge=0, le=600, description="wait after a gap before filling it by REST")
    gap_check_s: float = Field(0.25, gt=0, le=60, description="how often the shell looks for due gaps")
    max_gap_attempts: int = Field(5, ge=1, le=100, description="REST fills of one gap before it is reported")
    funding_refresh_s: float = Field(3600.0, gt=0, le=86_400, description="period of the funding-history refresh")
    shard_size: int = Field(200, ge=1, le=1024, description="kline streams per WebSocket connection")
    ready_timeout_s: float = Field(300.0, gt=0, le=3600, description="start() waits this long for the backfill")

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        if len(set(self.intervals)) != len(self.intervals):
            return [(("intervals",), "intervals must be unique")]
        return []


@dataclass
class _Gap:
    """Missing closed bars of one series from ``from_ms`` on, seen at ``since_ms`` (wall clock)."""

    from_ms: int
    since_ms: int
    attempts: int = 0
    in_flight: bool = False


class _Series:
    """One symbol's closed bars of one interval (numpy columns, capacity 2N, compacted) and its open bar."""

    def __init__(self, symbol: str, interval: str, keep: int) -> None:
        self.symbol, self.interval, self.keep = symbol, interval, keep
        self.period = interval_ms(interval)
        cap = 2 * keep
        self.open_ms = np.zeros(cap, np.int64)
        self.cols = {c: np.zeros(cap, np.float64) for c in _COLS}
        self.trades = np.zeros(cap, np.int64)
        self.lo = self.hi = 0  # rows [lo, hi) are the closed bars
        self.open_bar: Kline | None = None
        self.gap: _Gap | None = None
        self.backfilled = False
        self.stats: Counter[str] = Counter()

    def __len__(self) -> int:
        return self.hi - self.lo

    @property
    def last_ms(self) -> int | None:
        """Open time of the newest closed bar."""
        return int(self.open_ms[self.hi - 1]) if self.hi > self.lo else None

    def _append(self, k: Kline) -> None:
        if self.hi == self.open_ms.shape[0]:  # compact: keep the newest ``keep - 1`` rows, then append
            n = min(self.keep - 1, len(self))
            src = slice(self.hi - n, self.hi)
            self.open_ms[:n] = self.open_ms[src]
            self.trades[:n] = self.trades[src]
            for a in self.cols.values():
                a[:n] = a[src]
            self.lo, self.hi = 0, n
        i = self.hi
        self.open_ms[i] = k.open_ms
        self.trades[i] = k.trades
        c = self.cols
        c["open"][i], c["high"][i], c["low"][i], c["close"][i] = k.open, k.high, k.low, k.close
        c["volume"][i], c["quote_volume"][i], c["taker_buy"][i] = k.volume, k.quote_volume, k.taker_buy_volume
        self.hi += 1
        if len(self) > self.keep:
            self.lo = self.hi - self.keep

    def view(self, n: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Copies of the newest ``n`` closed bars (default all kept): (open_ms, columns)."""
        lo = self.lo if n is None else max(self.lo, self.hi - n)
        return self.open_ms[lo:self.hi].copy(), {k: a[lo:self.hi].copy() for k, a in self.cols.items()}

    def replace_with(self, block: KlineBlock) -> None:
        """Reset the closed bars to ``block``'s newest ``keep`` rows."""
        n = min(len(block), self.keep)
        src = slice(len(block) - n, len(block))
        self.lo, self.hi = 0, n
        self.open_ms[:n] = block.open_ms[src]
        self.trades[:n] = block.trades[src]
        for c in _COLS:
            self.cols[c][:n] = getattr(block, c)[src]


class _Sink:
    """The feed's ``SymbolSink`` for one symbol: klines and open-interest samples go to the core."""

    def __init__(self, core: KlineCacheCore, symbol: str) -> None:
        self.core, self.symbol = core, symbol

    def on_trade(self, ts_ms: int, price: float, qty: float, is_buyer_maker: bool, trade_id: int, id_kind: str,
                 recv_ns: int) -> None:
        self.core.stats["ignored:trade"] += 1

    def on_book_ticker(self, update_id: int, transact_ms: int, bid: float, bid_qty: float, ask: float,
                       ask_qty: float, recv_ns: int) -> None:
        self.core.stats["ignored:bookTicker"] += 1

    def on_event(self, event: Event) -> None:
        if isinstance(event, Kline):
            self.core.on_kline(event)
        elif isinstance(event, MarketIndicator) and event.kind == "open_interest":
            self.core.on_open_interest(self.symbol, event.ts_ms, event.value)
        else:
            self.core.stats[f"ignored:{type(event).__name__}"] += 1


class KlineCacheCore:
    """Bars, open interest and funding of a fixed universe (see the module doc); ``route`` is the router."""

    def __init__(self, symbols: Sequence[str], config: KlineCacheConfig | None = None,
                 clock: Clock | None = None) -> None:
        self.config = config or KlineCacheConfig()
        self.clock = clock or SystemClock()
        self.symbols = tuple(symbols)
        keep = self.config.backfill.bars
        self.series: dict[tuple[str, str], _Series] = {
            (s, iv): _Series(s, iv, keep) for s in self.symbols for iv in self.config.intervals}
        self._sinks = {s: _Sink(self, s) for s in self.symbols}
        self.open_interest: dict[str, dict[int, float]] = {s: {} for s in self.symbols}
        self._oi_series: dict[str, Series] = {}
        self.funding: dict[str, Series] = {}
        self.exchange_ms = 0  # the newest kline event time seen (exchange clock)
        self.stats: Counter[str] = Counter()
        self.unknown: Counter[str] = Counter()
        self._oi_keep = oi_samples_for(keep, self.config.intervals[0], self.config.backfill.oi_period) + 2

    # ------------------------------------------------------------------ the feed's side
    def route(self, symbol: str) -> _Sink:
        """The sink of ``symbol`` (``MarketDataRouter``); another symbol is refused and counted."""
        sink = self._sinks.get(symbol)
        if sink is None:
            self.unknown[symbol] += 1
            raise KeyError(f"the kline cache does not hold {symbol}")
        return sink

    def on_kline(self, k: Kline) -> None:
        """A kline stream event: extend, update the open bar, or record a gap."""
        s = self.series.get((k.symbol, k.interval))
        if s is None:
            self.stats[f"ignored:kline_{k.interval}"] += 1
            return
        self.exchange_ms = max(self.exchange_ms, k.event_ms)
        last = s.last_ms
        if k.closed:
            if last is not None and k.open_ms <= last:
                s.stats["duplicate_close" if k.open_ms == last else "late_close"] += 1
                return
            if last is not None and k.open_ms > last + s.period:
                self._gap(s, last + s.period)
            s._append(k)
            s.stats["closed_stream"] += 1
            if s.open_bar is not None and s.open_bar.open_ms <= k.open_ms:
                s.open_bar = None
            return
        if s.open_bar is not None and k.open_ms < s.open_bar.open_ms:
            s.stats["stale_update"] += 1
            return
        if last is not None and k.open_ms > last + s.period:
            self._gap(s, last + s.period)  # the close of the bar(s) before this one never came
        s.open_bar = k
        s.stats["updates"] += 1

    def on_open_interest(self, symbol: str, ts_ms: int, value: float) -> None:
        """An open-interest sample (base asset) at ``ts_ms``."""
        book = self.open_interest[symbol]
        book[ts_ms] = value
        if len(book) > self._oi_keep:
            for t in sorted(book)[: len(book) - self._oi_keep]:
                del book[t]
        self._oi_series.pop(symbol, None)
        self.stats["oi_samples"] += 1

    def oi_series(self, symbol: str) -> Series | None:
        """The symbol's open-interest samples as sorted arrays (rebuilt only after a new sample)."""
        cached = self._oi_series.get(symbol)
        if cached is None:
            book = self.open_interest.get(symbol)
            if not book:
                return None
            items = sorted(book.items())
            cached = self._oi_series[symbol] = Series(np.fromiter((t for t, _ in items), np.int64, len(items)),
                                                      np.fromiter((v for _, v in items), np.float64, len(items)))
        return cached

    def _gap(self, s: _Series, from_ms: int) -> None:
        if s.gap is None:
            s.gap = _Gap(from_ms, self.clock.now_ms())
            s.stats["gaps"] += 1
            self.stats["gaps_detected"] += 1
        elif from_ms < s.gap.from_ms:
            s.gap.from_ms = from_ms

    # ------------------------------------------------------------------ REST merges
    def merge(self, symbol: str, interval: str, block: KlineBlock, known_ms: int | None) -> int:
        """Merge REST rows into a series by open time (a bar the stream closed wins); returns the closed
        bars added. ``known_ms`` is the exchange time the streams had shown when the request was sent:
        the reply's newest row counts as closed only if that time had passed its end (``closed_rows``).
        Afterwards the series is checked for holes; one that remains is a gap again."""
        s = self.series[(symbol, interval)]
        open_ms = s.open_bar.open_ms if s.open_bar is not None else None
        rows = closed_rows(block, known_ms)
        s.backfilled = True
        if len(rows) == 0:
            return 0
        have_ms, have = s.view()
        before = len(have_ms)
        all_ms = np.concatenate([have_ms, rows.open_ms])
        order = np.argsort(all_ms, kind="stable")
        _, first = np.unique(all_ms[order], return_index=True)
        pick = order[first]  # existing rows win ties (a bar already closed by the stream)
        cols = {c: np.concatenate([have[c], getattr(rows, c)])[pick] for c in _COLS}
        trades = np.concatenate([s.trades[s.lo:s.hi], rows.trades])[pick]
        merged = KlineBlock(interval, all_ms[pick], cols["open"], cols["high"], cols["low"], cols["close"],
                            cols["volume"], cols["quote_volume"], trades, cols["taker_buy"])
        s.replace_with(merged)
        added = len(merged) - before
        s.stats["closed_rest"] += max(0, added)
        kept_ms = s.open_ms[s.lo:s.hi]
        holes = np.flatnonzero(np.diff(kept_ms) != s.period)
        tail_missing = open_ms is not None and s.last_ms is not None and open_ms > s.last_ms + s.period
        if holes.size:
            self._reopen(s, int(kept_ms[holes[0]]) + s.period)
        elif tail_missing and s.last_ms is not None:
            self._reopen(s, s.last_ms + s.period)
        elif s.gap is not None:
            s.gap = None
            self.stats["gaps_filled"] += 1
        return max(0, added)

    def _reopen(self, s: _Series, from_ms: int) -> None:
        if s.gap is None:
            self._gap(s, from_ms)
        else:
            s.gap.from_ms = from_ms
            s.gap.since_ms = self.clock.now_ms()

    def set_open_interest(self, symbol: str, oi: Series) -> None:
        """Backfilled open-interest samples."""
        for t, v in zip(oi.ts_ms.tolist(), oi.value.tolist(), strict=True):
            self.on_open_interest(symbol, t, v)

    def set_funding(self, symbol: str, funding: Series) -> None:
        """The funding-rate history (replaced by each refresh)."""
        self.funding[symbol] = funding

    def due_gaps(self, now_ms: int, delay_ms: int) -> list[tuple[str, str, _Gap]]:
        """Gaps that waited ``delay_ms``, are not being filled and have attempts left."""
        out = []
        for (sym, iv), s in self.series.items():
            g = s.gap
            if g is not None and not g.in_flight and now_ms - g.since_ms >= delay_ms \
                    and g.attempts < self.config.max_gap_attempts:
                out.append((sym, iv, g))
        return out

    # ------------------------------------------------------------------ the scan's side
    def ready(self, interval: str | None = None) -> bool:
        """Every series (of ``interval``) was backfilled."""
        return all(s.backfilled for (_, iv), s in self.series.items() if interval is None or iv == interval)

    def panel(self, interval: str | None = None, bars: int | None = None,
              symbols: Sequence[str] | None = None) -> list[SymbolKlines]:
        """Scan inputs: the newest ``bars`` closed bars of each symbol (``interval`` default: the first),
        with taker-buy volume, open interest aligned to bar closes and funding settled by the last close.
        Symbols without closed bars are left out; the open bar is not included (it is not final)."""
        iv = interval or self.config.intervals[0]
        out = []
        for sym in symbols or self.symbols:
            s = self.series[(sym, iv)]
            if len(s) == 0:
                continue
            ts, c = s.view(bars)
            oi = align_open_interest(ts, s.period, self.oi_series(sym)) if iv == self.config.intervals[0] else None
            out.append(SymbolKlines(sym, iv, ts, c["open"], c["high"], c["low"], c["close"], c["volume"],
                                    taker_buy=c["taker_buy"], open_interest=oi,
                                    funding=funding_until(self.funding.get(sym), int(ts[-1]) + s.period)))
        return out

    def open_bar(self, symbol: str, interval: str | None = None) -> Kline | None:
        """The bar still open (the latest stream update), if any."""
        return self.series[(symbol, interval or self.config.intervals[0])].open_bar

    def status(self) -> dict[str, Any]:
        """Counts over every series: bars kept, backfilled, open gaps, stream/REST closes, duplicates."""
        per: Counter[str] = Counter()
        gaps: dict[str, int] = {}
        for (sym, iv), s in self.series.items():
            per.update(s.stats)
            if s.gap is not None:
                gaps[f"{sym}@{iv}"] = s.gap.from_ms
        lengths = [len(s) for s in self.series.values()]
        return {
            "symbols": len(self.symbols), "intervals": list(self.config.intervals), "series": len(self.series),
            "backfilled": sum(s.backfilled for s in self.series.values()),
            "bars_min": min(lengths, default=0), "bars_max": max(lengths, default=0),
            "open_gaps": gaps, "exchange_ms": self.exchange_ms or None,
            "counts": dict(sorted((self.stats + per).items())), "unknown_symbols": dict(self.unknown),
        }


class KlineCache:
    """The cache with its feed and REST repairs (see the module doc); ``start`` returns once backfilled."""

    def __init__(self, endpoints: Endpoints, symbols: Sequence[str], config: KlineCacheConfig | None = None,
                 clock: Clock | None = None, rest: BinanceRest | None = None) -> None:
        self.config = config or KlineCacheConfig()
        self.endpoints = endpoints
        self.clock = clock or SystemClock()
        self.core = KlineCacheCore(symbols, self.config, self.clock)
        bf = self.config.backfill
        self.feed_config = FeedConfig.for_endpoints(
            Endpoints(endpoints.ws_base, endpoints.rest_base, None), tuple(symbols),
            streams=tuple(f"kline_{iv}" for iv in self.config.intervals), shard_size=self.config.shard_size,
            pollers=("open_interest_hist",) if bf.open_interest else (), poll_period=bf.oi_period,
            poll_interval_s=float(interval_ms(bf.oi_period) // 1000), oi_history_limit=1)
        self.rest = rest or BinanceRest(self.feed_config.rest_config(), self.clock)
        self._own_rest = rest is None
        self.feed: MarketFeed | None = None
        self.backfiller = Backfiller(self.rest, bf)
        self.report = BackfillReport()
        self.errors: Counter[str] = Counter()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Connect the streams first (nothing closes unseen), then backfill every series; start repairs."""
        if self.feed is not None:
            raise RuntimeError("KlineCache already started")
        await self.rest.start()
        self.feed = MarketFeed(self.feed_config, self.core, self.clock, rest=self.rest)
        await self.feed.start()
        await asyncio.wait_for(self.backfill(), self.config.ready_timeout_s)
        self._tasks = [asyncio.get_running_loop().create_task(self._gap_loop(), name="kline-cache-gaps"),
                       asyncio.get_running_loop().create_task(self._funding_loop(), name="kline-cache-funding")]

    async def backfill(self) -> BackfillReport:
        """Klines of every interval, open interest and funding for the whole universe (the start-up fill)."""
        bf, core = self.backfiller, self.core
        syms = list(core.symbols)
        for iv in self.config.intervals:
            known = core.exchange_ms or None
            for sym, block in (await bf.klines(syms, iv)).items():
                core.merge(sym, iv, block, known)
        cfg = self.config.backfill
        if cfg.open_interest:
            n = oi_samples_for(cfg.bars, self.config.intervals[0], cfg.oi_period)
            for sym, oi in (await bf.open_interest(syms, n)).items():
                core.set_open_interest(sym, oi)
        if cfg.funding:
            await self._refresh_funding()
        self.report.merge(bf.report)
        bf.report = BackfillReport()
        return self.report

    async def _refresh_funding(self) -> None:
        for sym, f in (await self.backfiller.funding(list(self.core.symbols))).items():
            self.core.set_funding(sym, f)

    async def _gap_loop(self) -> None:
        delay_ms = int(self.config.gap_delay_s * 1000)
        fills: set[asyncio.Task[None]] = set()
        while True:
            await asyncio.sleep(self.config.gap_check_s)
            for sym, iv, gap in self.core.due_gaps(self.clock.now_ms(), delay_ms):
                gap.in_flight = True
                t = asyncio.get_running_loop().create_task(self._fill(sym, iv, gap))
                fills.add(t)
                t.add_done_callback(fills.discard)

    async def _fill(self, symbol: str, interval: str, gap: _Gap) -> None:
        """One REST fill of a gap: every bar from its start to now (bounded by one request's limit)."""
        s = self.core.series[(symbol, interval)]
        try:
            gap.attempts += 1
            now_bar = s.open_bar.open_ms if s.open_bar is not None else gap.from_ms + s.period
            limit = min(MAX_KLINES_LIMIT, max(2, math.ceil((now_bar - gap.from_ms) / s.period) + 2))
            known = self.core.exchange_ms or None
            blocks = await self.backfiller.klines([symbol], interval, limit, {symbol: gap.from_ms})
            if symbol in blocks:
                self.core.merge(symbol, interval, blocks[symbol], known)
                self.core.stats["gap_fills"] += 1
            else:
                self.core.stats["gap_fill_errors"] += 1
        except Exception as exc:  # a repair must never kill the loop; the gap stays open and is retried
            self.errors[type(exc).__name__] += 1
            log.exception("kline gap fill failed for %s@%s", symbol, interval)
        finally:
            gap.in_flight = False
            self.report.merge(self.backfiller.report)
            self.backfiller.report = BackfillReport()

    async def _funding_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.funding_refresh_s)
            if self.config.backfill.funding:
                try:
                    await self._refresh_funding()
                except Exception as exc:  # keep the last history; try again next period
                    self.errors[type(exc).__name__] += 1
                    log.exception("funding refresh failed")
                self.report.merge(self.backfiller.report)
                self.backfiller.report = BackfillReport()

    async def stop(self) -> None:
        """Stop the repairs and the feed; close the REST session if the cache made it."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        self._tasks = []
        if self.feed is not None:
            await self.feed.stop()
        if self._own_rest:
            await self.rest.close()

    async def __aenter__(self) -> KlineCache:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def panel(self, interval: str | None = None, bars: int | None = None) -> list[SymbolKlines]:
        """``KlineCacheCore.panel`` (no REST)."""
        return self.core.panel(interval, bars)

    def stats(self) -> dict[str, Any]:
        """The cache's status, the REST cost so far and the feed's counters."""
        feed = self.feed.stats() if self.feed is not None else {}
        return {"cache": self.core.status(), "rest": self.report.to_dict(), "errors": dict(self.errors),
                "feed": {k: feed.get(k) for k in ("messages", "rejects_total", "connections", "shards", "reconnects",
                                                  "duplicates_total", "task_errors")}}
