"""``SymbolStateCore``: one or more symbols' live feature state, evaluation boundaries and outputs.

The feed (``arbray.feeds.MarketFeed``, or any other producer of parsed market data) delivers each
symbol's messages to ``route(symbol)``: a sink that places evaluation boundaries exactly as the
replay engine does — at every multiple ``B`` of ``every_ms``, when the first message whose
exchange-time key (the running maximum of ``T``, or ``E`` for markPrice/kline/forceOrder) reaches
``B`` arrives, and before it is applied — and then applies the message to the symbol's
``SymbolFeatures``. At a boundary the core first hands the symbol's trades before ``B`` to
``outputs.trades``, then the snapshot at ``B`` (with the CVD windows a snapshot does not carry) to
``outputs.boundary``. Between boundaries trades leave in batches at most every ``batch_ms``, or at
once when a trade reaches a trigger level the PositionManager set (a stop, a take-profit, a resting
order), so exits do not wait for the batch timer. Raw messages never leave one by one.

In live operation a quiet symbol still gets its boundary once the wall clock passes ``B`` plus a
grace period (``timer_boundaries``); replays turn that off, so boundaries depend on data only.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import Field

from arbray.clock import Clock, SystemClock
from arbray.features.config import FeatureConfig
from arbray.features.snapshot import FeatureSnapshot
from arbray.features.symbol import SymbolFeatures
from arbray.marketdata.events import DepthUpdate, Event, ForceOrder, Kline, MarkPrice, RejectCounter, TradeBatch
from arbray.marketdata.orderbook import LocalOrderBook
from arbray.scoring.config import SNAPSHOT_CVD_FIELDS, WINDOW_MINUTES, FrozenModel, cvd_input_name
from arbray.screener.live import KlineExtrasMemo

EXTRA_WINDOWS: tuple[str, ...] = tuple(w for w in WINDOW_MINUTES if w not in SNAPSHOT_CVD_FIELDS)
"""CVD windows strategies may ask for that a ``FeatureSnapshot`` does not carry (8h, 12h)."""


class SymbolStateConfig(FrozenModel):
    """How a SymbolState turns market data into snapshots and batches."""

    every_ms: int = Field(15_000, ge=250, le=3_600_000, description="evaluation interval (exchange time)")
    batch_ms: int = Field(50, ge=50, le=10_000, description="longest a trade waits before leaving in a batch")
    timer_boundaries: bool = Field(True, description="emit a quiet symbol's boundary on the wall clock")
    boundary_grace_ms: int = Field(1_000, ge=0, le=60_000, description="wall-clock wait past B for a message >= B")
    max_idle_ms: int = Field(10 * 60_000, ge=1_000, description="a longer silence restarts the boundary grid")
    series_points: int = Field(5_760, ge=10, le=100_000, description="snapshot points kept for charts (24 h at 15 s)")
    liquidations_kept: int = Field(200, ge=0, le=10_000)
    features: FeatureConfig = Field(default_factory=FeatureConfig)


I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TradeSlice:
    """A symbol's trades in arrival order (numpy columns), as they leave a SymbolState."""

    symbol: str
    ts_ms: I64
    price: F64
    qty: F64
    is_buyer_maker: npt.NDArray[np.bool_]
    trade_id: I64
    recv_ns: I64

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    def to_batch(self) -> TradeBatch:
        """The same trades as a ``TradeBatch`` (to rebuild features elsewhere)."""
        return TradeBatch.from_columns(self.symbol, self.ts_ms, self.price, self.qty, self.is_buyer_maker,
                                       self.trade_id, self.recv_ns)


class SymbolOutputs(Protocol):
    """Where a SymbolState's products go (the actor shell sends them on; tests collect them)."""

    def trades(self, batch: TradeSlice) -> None:
        """Trades of one symbol, all before that symbol's next boundary."""

    def boundary(self, snap: FeatureSnapshot, extras: dict[str, float | None], trigger_recv_ns: int) -> None:
        """The snapshot at a boundary; ``trigger_recv_ns`` is the local receive time of the message
        that crossed it (0 for a timer boundary)."""


def event_key(ev: Event) -> int | None:
    """The replay readers' exchange-time key of a parsed event (None: not a stream event)."""
    if isinstance(ev, DepthUpdate):
        return ev.transact_ms or ev.event_ms
    if isinstance(ev, MarkPrice):
        return ev.event_ms
    if isinstance(ev, ForceOrder):
        return ev.event_ms or ev.trade_ms
    if isinstance(ev, Kline):
        return ev.event_ms or None
    return None  # REST snapshots and polled indicators are not stream messages


class _Symbol:
    """One symbol's boundary grid, features, trigger levels and unsent trades."""

    def __init__(self, core: SymbolStateCore, symbol: str) -> None:
        cfg = core.config
        self.core, self.symbol = core, symbol
        self.features = SymbolFeatures(symbol, cfg.features, rejects=core.rejects)
        self.book: LocalOrderBook = self.features.book
        self.every = cfg.every_ms
        self.key = 0  # running maximum of exchange time over this symbol's messages
        self.next_b: int | None = None
        self.last_key: int | None = None
        self.sent = 0  # global tape index of the first trade not yet handed to outputs
        self.pending_since_ms: int | None = None  # wall time of the oldest unsent trade
        self.lo, self.hi = -math.inf, math.inf  # flush at once when a trade reaches these prices
        self.last_message_ms: int | None = None
        self.last_snapshot: FeatureSnapshot | None = None
        self.last_extras: dict[str, float | None] = {}
        self.kline_extras = KlineExtrasMemo()  # the kline factors ats_v2 reads (any strategy may be added live)
        self.series: deque[tuple[int, float | None, float | None, float | None]] = deque(maxlen=cfg.series_points)
        self.liquidations: deque[ForceOrder] = deque(maxlen=cfg.liquidations_kept)
        self.boundaries = 0
        self.messages = 0

    # ---- the SymbolSink the feed calls ---------------------------------------------------------
    def on_trade(self, ts_ms: int, price: float, qty: float, is_buyer_maker: bool, trade_id: int, id_kind: str,
                 recv_ns: int) -> None:
        self.messages += 1
        if ts_ms > self.key:
            self._advance(ts_ms, recv_ns)
        self.features.on_trade(ts_ms, price, qty, is_buyer_maker, trade_id, id_kind, recv_ns)
        if self.pending_since_ms is None:
            self.pending_since_ms = self.core.clock.now_ms()
        if price <= self.lo or price >= self.hi:
            self.flush()

    def on_book_ticker(self, update_id: int, transact_ms: int, bid: float, bid_qty: float, ask: float,
                       ask_qty: float, recv_ns: int) -> None:
        self.messages += 1
        if transact_ms > self.key and not self.core.gap_pending(self.symbol):
            self._advance(transact_ms, recv_ns)
        self.features.on_book_ticker(update_id, transact_ms, bid, bid_qty, ask, ask_qty, recv_ns)

    def on_event(self, ev: Event) -> None:
        self.messages += 1
        t = event_key(ev)
        if t is not None and t > self.key and not self.core.gap_pending(self.symbol):
            self._advance(t, ev.recv_ns)
        if isinstance(ev, ForceOrder):
            self.liquidations.append(ev)
        self.features.on_event(ev)

    # ---- boundaries ----------------------------------------------------------------------------
    def _advance(self, t: int, recv_ns: int) -> None:
        """A message with key ``t`` > every key so far: emit the boundaries it crosses first."""
        self.key = t
        self.last_message_ms = self.core.clock.now_ms()
        every, nxt = self.every, self.next_b
        if nxt is None:
            self.next_b = t - t % every + every
        elif t >= nxt:
            if self.last_key is not None and t - self.last_key > self.core.config.max_idle_ms:
                self._emit(nxt, recv_ns)  # one snapshot closes the session before the gap
                self.next_b = t - t % every + every
            else:
                while nxt <= t:
                    self._emit(nxt, recv_ns)
                    nxt += every
                self.next_b = nxt
        self.last_key = t

    def _emit(self, b: int, recv_ns: int) -> None:
        self.flush()
        f = self.features
        t0 = time.perf_counter()
        snap = f.snapshot(b)
        if self.core.gap_pending(self.symbol):
            snap = replace(snap, quality=(*snap.quality, "gap_filled"))
        extras = {cvd_input_name(w): f.cvd(WINDOW_MINUTES[w] * 60_000, b) for w in EXTRA_WINDOWS}
        extras.update(self.kline_extras(f.bars_5m, f.bars_1h))  # recomputed only when a bar closed
        self.core.snapshot_times.append((self.symbol, time.perf_counter() - t0))
        self.last_snapshot, self.last_extras = snap, extras
        self.series.append((b, snap.price, snap.cvd_5m, snap.cvd_1h))
        self.boundaries += 1
        self.core.outputs.boundary(snap, extras, recv_ns)

    def timer(self, now_ms: int) -> None:
        """Wall-clock duties: a due batch, and (live) a quiet symbol's overdue boundary."""
        if self.pending_since_ms is not None and now_ms - self.pending_since_ms >= self.core.config.batch_ms:
            self.flush()
        cfg = self.core.config
        nxt = self.next_b
        if cfg.timer_boundaries and nxt is not None and now_ms >= nxt + cfg.boundary_grace_ms and self.key < nxt \
                and not self.core.gap_pending(self.symbol):
            while nxt + cfg.boundary_grace_ms <= now_ms:
                self._emit(nxt, 0)
                nxt += self.every
            self.next_b = nxt

    def flush(self) -> None:
        """Hand every unsent trade to the outputs as one batch."""
        self.pending_since_ms = None
        f = self.features
        f.flush()
        tape = f.tape
        i = max(self.sent - tape.base, tape.start)
        j = tape.n
        if j <= i:
            return
        self.sent = tape.base + j
        self.core.outputs.trades(TradeSlice(self.symbol, tape.ts[i:j].copy(), tape.price[i:j].copy(),
                                            tape.qty[i:j].copy(), tape.sell[i:j].copy(),
                                            tape.trade_id[i:j].copy(), tape.recv_ns[i:j].copy()))


class SymbolStateCore:
    """Feature state and boundaries for a set of symbols; ``route`` is the feed's router."""

    def __init__(self, symbols: Iterable[str], outputs: SymbolOutputs, config: SymbolStateConfig | None = None,
                 clock: Clock | None = None) -> None:
        self.config = config or SymbolStateConfig()
        self.outputs = outputs
        self.clock = clock or SystemClock()
        self.rejects = RejectCounter()
        self.symbols: dict[str, _Symbol] = {}
        self.unknown: Counter[str] = Counter()
        self.snapshot_times: deque[tuple[str, float]] = deque(maxlen=10_000)  # (symbol, seconds to build)
        self.gap_pending: Callable[[str], bool] = lambda symbol: False
        """Set by the feed's owner: True while trades older than other streams' messages may still come
        (a REST gap fill): boundaries then wait for the trades, so no window misses one."""
        for s in symbols:
            self.symbols[s] = _Symbol(self, s)

    def route(self, symbol: str) -> _Symbol:
        """The sink of ``symbol`` (``MarketDataRouter``); another symbol is refused and counted."""
        sym = self.symbols.get(symbol)
        if sym is None:
            self.unknown[symbol] += 1
            raise KeyError(f"this SymbolState does not own {symbol}")
        return sym

    def tick(self) -> None:
        """Run wall-clock duties of every symbol (call every few tens of ms)."""
        now = self.clock.now_ms()
        for s in self.symbols.values():
            s.timer(now)

    def set_triggers(self, symbol: str, lo: float | None, hi: float | None) -> None:
        """Flush trades at once when a price is at or below ``lo`` or at or above ``hi``."""
        s = self.symbols[symbol]
        s.lo = -math.inf if lo is None else lo
        s.hi = math.inf if hi is None else hi

    def flush(self) -> None:
        for s in self.symbols.values():
            s.flush()

    def drain_snapshot_times(self) -> list[tuple[str, float]]:
        """Snapshot build times since the last call (for the latency metric)."""
        out = list(self.snapshot_times)
        self.snapshot_times.clear()
        return out

    def warm_up(self, symbol: str, klines: list[Kline] | None = None, trades: TradeBatch | None = None,
                last_boundary_ms: int | None = None) -> int:
        """Seed bars from closed klines and the tape from recorded trades before live data starts.

        With ``last_boundary_ms`` (the last boundary the PositionManager applied, after a restart) only
        the trades before it are seeded; the later ones go through the normal path, so every boundary
        after it is emitted again, in order, from exactly the trades before it. Seeded trades count as
        sent. Returns the number of klines used.
        """
        s = self.symbols[symbol]
        used = s.features.warm_up_klines(klines) if klines else 0
        if trades is None or not len(trades):
            return used
        rows = trades.rows
        later = rows[rows["ts_ms"] >= last_boundary_ms] if last_boundary_ms is not None else rows[:0]
        seeded = rows[rows["ts_ms"] < last_boundary_ms] if last_boundary_ms is not None else rows
        if len(seeded):
            s.features.add_trades(TradeBatch(symbol, seeded, trades.id_kind))
            s.sent = s.features.tape.base + s.features.tape.n
        last = last_boundary_ms if last_boundary_ms is not None else int(rows["ts_ms"].max())
        s.key = max(s.key, last)
        s.next_b = last - last % s.every + s.every
        s.last_key = last
        for r in later:  # re-emit the boundaries the PositionManager has not applied
            s.on_trade(int(r["ts_ms"]), float(r["price"]), float(r["qty"]), bool(r["is_buyer_maker"]),
                       int(r["trade_id"]), trades.id_kind, int(r["recv_ns"]))
        return used

    def last_trade_id(self, symbol: str) -> int | None:
        """The highest aggTrade id in ``symbol``'s tape."""
        tape = self.symbols[symbol].features.tape
        tape_ids = tape.trade_id[tape.start:tape.n]
        return int(tape_ids[-1]) if tape_ids.shape[0] else None

    # ---- read side -----------------------------------------------------------------------------
    def health(self) -> dict[str, dict[str, Any]]:
        """Per symbol: last message (wall ms), exchange key, book state, quality, counters."""
        out: dict[str, dict[str, Any]] = {}
        for name, s in self.symbols.items():
            snap = s.last_snapshot
            out[name] = {
                "last_message_ms": s.last_message_ms, "exchange_ms": s.key or None, "book_state": s.book.state.value,
                "quality": list(snap.quality) if snap is not None else ["no_snapshot_yet"],
                "warming_up": snap is None or any(q.startswith("warming_up") for q in snap.quality),
                "messages": s.messages, "boundaries": s.boundaries, "book_resyncs": s.book.resyncs,
                "trade_id_gaps": s.features.stats["trade_id_gaps"],
            }
        return out

    def snapshots(self) -> dict[str, dict[str, Any]]:
        """The latest snapshot of every symbol that has one, with its extras."""
        return {n: {**s.last_snapshot.to_dict(), "extras": dict(s.last_extras)}
                for n, s in self.symbols.items() if s.last_snapshot is not None}

    def market(self, symbol: str, levels: int = 20) -> dict[str, Any]:
        """Book top, recent liquidations and the per-boundary series of one symbol."""
        s = self.symbols[symbol]
        bids, asks = (s.book.top(levels) if s.book.synced else ([], []))
        return {
            "snapshot": None if s.last_snapshot is None else {**s.last_snapshot.to_dict(), "extras": s.last_extras},
            "book": {"bids": [list(x) for x in bids], "asks": [list(x) for x in asks],
                     "last_update_id": s.book.last_update_id, "state": s.book.state.value},
            "liquidations": [{"ts_ms": e.trade_ms, "side": e.side, "price": e.avg_price or e.price,
                              "qty": e.filled_qty or e.qty, "usd": e.usd} for e in list(s.liquidations)[-50:]],
            "series": [{"ts_ms": t, "price": p, "cvd_5m": c5, "cvd_1h": c1} for t, p, c5, c1 in s.series],
        }

    def stats(self) -> dict[str, Any]:
        return {
            "messages": sum(s.messages for s in self.symbols.values()),
            "boundaries": sum(s.boundaries for s in self.symbols.values()),
            "book_resyncs": sum(s.book.resyncs for s in self.symbols.values()),
            "rejects": dict(self.rejects),
            "unknown_symbols": dict(self.unknown),
        }

