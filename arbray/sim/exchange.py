"""``SimExchange``: the state of a simulated Binance USD-M exchange for N symbols (no network).

A market source — the live ``MarketModel`` (default) or a recorded file (``arbray.sim.replay_source``)
— reports what happens through the model's ``MarketSink`` calls (integer ticks and steps). The
exchange keeps, per symbol, everything Binance serves about the market: the full book with
Binance's update ids, a bounded aggTrade history (``/aggTrades?fromId=``), 1-minute klines built
from the trades (every other interval is an exact aggregation of them), mark/index price, funding
with its 8-hourly settlements, open interest and its 5-minute history, the two long/short ratios
(``arbray.sim.history.RatioProcess``) and liquidations. Each public message is encoded once as its
Binance JSON payload and handed to the subscribers of its stream name — and only encoded when the
stream has a subscriber.

Market time is driven explicitly (``advance_to``); ``step()`` paces it against the injected wall
clock at ``speed``× (``pause``/``resume`` freeze it). The server (``arbray.sim.server``) is a thin
shell around this object; B's matching engine uses the ``BookAccess`` methods (``best_bid``,
``best_ask``, ``depth``, ``take``, ``on_trade``, ``on_funding``, ``mark_price``, ``true_book``).

Depth ids: a REST snapshot's ``lastUpdateId`` always lines up with the diff streams under
Binance's rule (drop ``u < lastUpdateId``; the first applied event has ``U ≤ lastUpdateId ≤ u``).
In model mode it is the id the *next* change will carry (the next event of every depth stream,
raw or conflated, bridges it); in replay mode, where the next id is not known yet, it is the last
replayed event's ``u`` (that event bridges it, so a client must have buffered it — as Binance's own
algorithm requires).
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson
from pydantic import Field

from arbray.clock import Clock, SystemClock
from arbray.scoring.config import FrozenModel, Symbol
from arbray.sim.history import FIVE_MIN_MS, MINUTE_MS, RatioProcess, SymbolHistory, synthesize
from arbray.sim.model import MarketModel, MarketModelConfig
from arbray.sim.streams import (
    INTERVAL_MS,
    StreamSpec,
    UnknownStream,
    bucket_close,
    bucket_open,
    bucket_open_array,
    parse_stream,
)
from arbray.symbols import spec_for

I64 = npt.NDArray[np.int64]
TradeCallback = Callable[[str, int, float, float, bool], None]
FundingCallback = Callable[[str, int, float, float], None]
DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
STAT_PERIODS = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")


class ExchangeError(ValueError):
    """A request the exchange refuses, with the Binance error code the server answers with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ExchangeSymbol:
    """A listed symbol's trading rules: tick and step are ``10**-decimals``."""

    symbol: str
    price_decimals: int
    qty_decimals: int
    min_notional: float = 5.0

    @property
    def tick_size(self) -> float:
        return 10.0 ** -self.price_decimals

    @property
    def step_size(self) -> float:
        return 10.0 ** -self.qty_decimals

    def ticks(self, price: float) -> int:
        """``price`` in integer ticks (nearest)."""
        scale: int = 10**self.price_decimals
        return round(price * scale)

    def steps(self, qty: float) -> int:
        """``qty`` in integer steps (nearest)."""
        scale: int = 10**self.qty_decimals
        return round(qty * scale)


class SimExchangeConfig(FrozenModel):
    """What the simulated exchange serves: a live model (default) or a replayed recording."""

    symbols: tuple[Symbol, ...] = Field(("BTCUSDT",), min_length=1)
    seed: int = 1
    start_ms: int | None = Field(None, ge=0, description="market start; None: the clock's now, floored to 1 s")
    speed: float | Literal["max"] = Field(1.0, description="market seconds per wall second, or 'max'")
    rate_scale: float = Field(1.0, gt=0, description="multiplies the model's trade and maker rates")
    step_ms: int = Field(50, ge=1, le=10_000, description="model step (at most one depth update per step)")
    model: MarketModelConfig | None = Field(None, description="full model config; its symbols must match")
    replay: str | None = Field(None, description="replay this recording instead of running the model")
    history_hours: float = Field(48.0, ge=0, le=24 * 30, description="synthetic history before a live start")
    agg_trade_history: int = Field(500_000, ge=100, description="aggTrades kept per symbol for REST")
    spot_offset: float = Field(-0.0001, ge=-0.05, le=0.05, description="spot price = index × (1 + offset)")

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        out: list[tuple[tuple[str, ...], str]] = []
        if self.speed != "max" and not (isinstance(self.speed, float) and self.speed > 0):
            out.append((("speed",), "speed must be > 0 or 'max'"))
        if self.model is not None and tuple(self.model.symbols) != tuple(self.symbols):
            out.append((("model", "symbols"), "model.symbols must equal symbols"))
        if self.model is not None and self.replay is not None:
            out.append((("model", "replay"), "a replay has no model"))
        if len(set(self.symbols)) != len(self.symbols):
            out.append((("symbols",), "symbols must be unique"))
        return out


def _formatter(decimals: int) -> Callable[[int], str]:
    """Integer units → Binance's fixed-decimal string (``123456, 2`` → ``"1234.56"``)."""
    if decimals == 0:
        return str
    scale = 10**decimals

    def fmt(v: int) -> str:
        return f"{v // scale}.{v % scale:0{decimals}d}"

    return fmt


def _raw_levels(levels: Any) -> str:
    """Recorded ``[price, qty]`` strings back into Binance's JSON array body."""
    return ",".join(f'["{p}","{q}"]' for p, q in levels)


def _price_key(level: Any) -> float:
    return float(level[0])


class _TradeLog:
    """A bounded aggTrade history as parallel lists (bisectable by id and time)."""

    __slots__ = ("first", "ids", "last", "limit", "maker", "ms", "price", "qty")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.ids: list[int] = []
        self.ms: list[int] = []
        self.price: list[int] = []
        self.qty: list[int] = []
        self.first: list[int] = []
        self.last: list[int] = []
        self.maker: list[bool] = []

    def append(self, agg_id: int, ms: int, price: int, qty: int, first: int, last: int, maker: bool) -> None:
        self.ids.append(agg_id)
        self.ms.append(ms)
        self.price.append(price)
        self.qty.append(qty)
        self.first.append(first)
        self.last.append(last)
        self.maker.append(maker)
        if len(self.ids) > self.limit + self.limit // 4:  # trim in blocks: amortised O(1)
            cut = len(self.ids) - self.limit
            for col in (self.ids, self.ms, self.price, self.qty, self.first, self.last, self.maker):
                del col[:cut]


_NO_ID = -1


class _Bars:
    """Closed 1-minute bars as int64 rows (see ``SymbolHistory.bars``) plus the open bar."""

    __slots__ = ("n", "open", "rows")

    def __init__(self) -> None:
        self.rows = np.zeros((1024, 12), np.int64)
        self.n = 0
        self.open: list[int] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, _NO_ID, _NO_ID]

    def load(self, rows: I64) -> None:
        self.rows = np.zeros((max(1024, 2 * rows.shape[0]), 12), np.int64)
        self.rows[: rows.shape[0]] = rows
        self.n = rows.shape[0]

    def start(self, open_ms: int, price: int) -> None:
        self.open = [open_ms, price, price, price, price, 0, 0, 0, 0, 0, _NO_ID, _NO_ID]

    def trade(self, price: int, qty: int, buyer_maker: bool, trade_id: int) -> None:
        b = self.open
        if b[7] == 0:
            b[1] = b[2] = b[3] = b[4] = price
            b[10] = trade_id
        else:
            if price > b[2]:
                b[2] = price
            elif price < b[3]:
                b[3] = price
            b[4] = price
        b[5] += qty
        b[6] += price * qty
        b[7] += 1
        if not buyer_maker:
            b[8] += qty
            b[9] += price * qty
        b[11] = trade_id

    def close(self) -> list[int]:
        """Close the open bar and open the next (empty, at the close price); returns the closed row.

        A bar before the first known price (a replay's first minutes) is not kept."""
        row = self.open
        if row[1] == 0 and row[7] == 0:
            self.start(row[0] + MINUTE_MS, 0)
            return row
        if self.n == self.rows.shape[0]:
            grown = np.zeros((2 * self.n, 12), np.int64)
            grown[: self.n] = self.rows[: self.n]
            self.rows = grown
        self.rows[self.n] = row
        self.n += 1
        self.start(row[0] + MINUTE_MS, row[4])
        return row

    def view(self) -> I64:
        return self.rows[: self.n]


def _merge(a: list[int] | None, b: list[int]) -> list[int]:
    """Two consecutive bars as one; a bar without trades only contributes its open time."""
    if a is None:
        return list(b)
    if b[7] == 0:
        return list(a)
    if a[7] == 0:
        return [a[0], *b[1:]]
    return [a[0], a[1], max(a[2], b[2]), min(a[3], b[3]), b[4], a[5] + b[5], a[6] + b[6], a[7] + b[7],
            a[8] + b[8], a[9] + b[9], a[10], b[11]]


def aggregate_bars(rows: I64, interval: str) -> I64:
    """1-minute rows → ``interval`` rows (first/last traded row give open/close; sums add up)."""
    if rows.shape[0] == 0:
        return rows
    keys = bucket_open_array(rows[:, 0], interval)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], rows.shape[0]] - 1
    has = rows[:, 7] > 0
    idx = np.arange(rows.shape[0])
    big = np.iinfo(np.int64).max
    first = np.minimum.reduceat(np.where(has, idx, big), starts)
    last = np.maximum.reduceat(np.where(has, idx, -1), starts)
    empty = last < 0
    first = np.where(empty, starts, first)
    last = np.where(empty, ends, last)
    out = np.empty((starts.shape[0], 12), np.int64)
    out[:, 0] = keys[starts]
    out[:, 1] = rows[first, 1]
    out[:, 2] = np.where(empty, rows[first, 1], np.maximum.reduceat(np.where(has, rows[:, 2], -1), starts))
    out[:, 3] = np.where(empty, rows[first, 1], np.minimum.reduceat(np.where(has, rows[:, 3], big), starts))
    out[:, 4] = rows[last, 4]
    for col in (5, 6, 7, 8, 9):
        out[:, col] = np.add.reduceat(rows[:, col], starts)
    out[:, 10] = rows[first, 10]
    out[:, 11] = rows[last, 11]
    return out


class _Conflation:
    """A diff-depth stream conflated over ``speed_ms``: latest quantity per price since the last push."""

    __slots__ = ("a", "b", "first", "last", "pu", "t")

    def __init__(self, pu: int) -> None:
        self.pu = pu
        self.first = -1
        self.last = 0
        self.t = 0
        self.b: dict[int, int] = {}
        self.a: dict[int, int] = {}


class _KlineStream:
    """A subscribed ``@kline_<interval>``: the closed part of the current bar and what was pushed."""

    __slots__ = ("acc", "interval", "open_ms", "pushed")

    def __init__(self, interval: str, open_ms: int, acc: list[int] | None) -> None:
        self.interval = interval
        self.open_ms = open_ms
        self.acc = acc
        self.pushed: tuple[int, ...] = ()


class _Sym:
    """Mutable per-symbol exchange state."""

    def __init__(self, idx: int, spec: ExchangeSymbol, agg_limit: int) -> None:
        self.idx = idx
        self.spec = spec
        self.name = spec.symbol
        self.lower = spec.symbol.lower()
        self.pf = _formatter(spec.price_decimals)
        self.qf = _formatter(spec.qty_decimals)
        self.nf = _formatter(spec.price_decimals + spec.qty_decimals)
        self.tick = spec.tick_size
        self.qscale = 10**spec.qty_decimals
        self.pscale = 10**spec.price_decimals
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.book_known = False  # a snapshot was applied (a replay may start with diffs before its snapshot)
        self.book_floor = 0  # the applied snapshot's id: older diffs are already in it
        # replay: diff levels as the recording's strings, applied to the book only when it is read
        self.pend_b: dict[str, str] = {}
        self.pend_a: dict[str, str] = {}
        self.bt_raw: bytes | None = None  # replay: the latest bookTicker payload, decoded on demand
        self.last_u = 0
        self.depth_ms = 0
        self.bt: tuple[int, int, int, int, int, int] | None = None  # u, ms, bid, bid qty, ask, ask qty
        self.trades = _TradeLog(agg_limit)
        self.next_agg = 0
        self.last_price = 0
        self.bars = _Bars()
        self.mark = self.index = self.rate = 0.0
        self.next_funding = 0
        self.mark_ms = 0
        self.funding: list[tuple[int, float, float]] = []
        self.oi = 0.0
        self.oi_hist: list[tuple[int, float, float]] = []  # (time, open interest, value)
        self.ratios: list[tuple[int, float, float]] = []  # (time, long account share, top long position share)
        self.ratio_state = (0.0, 0.0)
        self.flow_buy = self.flow_sell = 0
        self.price_5m = 0
        self.liquidations: list[tuple[int, str, float, float]] = []
        self.conflate: dict[str, _Conflation] = {}
        self.partial: dict[str, tuple[int, int, bool]] = {}  # stream → (levels, pushed u, pushed yet)
        self.klines: dict[str, _KlineStream] = {}
        self.consumed_b: dict[int, int] = {}  # replay: quantity users took per level until it changes
        self.consumed_a: dict[int, int] = {}
        lo = self.lower
        self.n_agg, self.n_trade, self.n_bt = f"{lo}@aggTrade", f"{lo}@trade", f"{lo}@bookTicker"
        self.n_depth0, self.n_force = f"{lo}@depth@0ms", f"{lo}@forceOrder"
        self.n_mark1, self.n_mark3 = f"{lo}@markPrice@1s", f"{lo}@markPrice"

    def levels(self, levels: list[tuple[int, int]]) -> str:
        pf, qf = self.pf, self.qf
        return ",".join(f'["{pf(p)}","{qf(q)}"]' for p, q in levels)

    def units(self, text: str, decimals: int) -> int:
        """A recorded decimal string in integer units (Binance formats every value with fixed decimals)."""
        dot = len(text) - decimals - 1
        if decimals and dot > 0 and text[dot] == ".":
            return int(text[:dot] + text[dot + 1:])
        scale: int = 10**decimals
        return round(float(text) * scale)

    def sync(self) -> None:
        """Apply pending replayed diff levels and the latest replayed bookTicker."""
        if self.pend_b or self.pend_a:
            pd, qd, units = self.spec.price_decimals, self.spec.qty_decimals, self.units
            bids = [(units(p, pd), units(q, qd)) for p, q in self.pend_b.items()]
            asks = [(units(p, pd), units(q, qd)) for p, q in self.pend_a.items()]
            self.pend_b.clear()
            self.pend_a.clear()
            SimExchange._apply_levels(self, bids, asks)
        if self.bt_raw is not None:
            raw = orjson.loads(self.bt_raw)
            self.bt_raw = None
            pd, qd, units = self.spec.price_decimals, self.spec.qty_decimals, self.units
            self.bt = (int(raw["u"]), int(raw.get("T") or raw["E"]), units(raw["b"], pd), units(raw["B"], qd),
                       units(raw["a"], pd), units(raw["A"], qd))

    def mid_ticks(self) -> float:
        self.sync()
        if self.bids and self.asks:
            return (max(self.bids) + min(self.asks)) / 2.0
        return float(self.last_price)


class _Sink:
    """The model's ``MarketSink``, forwarding to the exchange."""

    def __init__(self, ex: SimExchange) -> None:
        self.ex = ex

    def snapshot(self, sym: int, last_update_id: int, ms: int, bids: list[tuple[int, int]],
                 asks: list[tuple[int, int]]) -> None:
        self.ex._on_snapshot(sym, last_update_id, ms, bids, asks)

    def trade(self, sym: int, ms: int, trade_id: int, price: int, qty: int, buyer_maker: bool) -> None:
        self.ex._on_trade(sym, ms, None, trade_id, trade_id, price, qty, buyer_maker)

    def book_ticker(self, sym: int, ms: int, update_id: int, bid: int, bid_qty: int, ask: int, ask_qty: int) -> None:
        self.ex._on_book_ticker(sym, ms, update_id, bid, bid_qty, ask, ask_qty)

    def depth(self, sym: int, ms: int, first_id: int, final_id: int, prev_id: int,
              bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        self.ex._on_depth(sym, ms, first_id, final_id, prev_id, bids, asks)

    def mark_price(self, sym: int, ms: int, mark: float, index: float, rate: float, next_funding_ms: int) -> None:
        self.ex._on_mark(sym, ms, mark, index, rate, next_funding_ms)

    def force_order(self, sym: int, ms: int, sell: bool, price: int, avg_price: int, qty: int) -> None:
        self.ex._on_force(sym, ms, sell, price, avg_price, qty)


class MarketSource:
    """What drives the exchange: ``start`` reports the opening state, ``advance_to`` the market up
    to a time (calling ``exchange._clock_to`` before each time step), ``take`` a user's taker order."""

    symbols: tuple[ExchangeSymbol, ...]
    finished: bool = False
    mode: str = ""

    def start(self, ex: SimExchange, sink: _Sink) -> int:
        raise NotImplementedError

    def advance_to(self, t_ms: int) -> None:
        raise NotImplementedError

    def take(self, sym: int, ms: int, buy: bool, qty: int, limit: int | None) -> list[tuple[int, int]]:
        raise NotImplementedError

    def open_interest(self, sym: int) -> float | None:
        """Open interest now, or None if the source does not know it (the exchange then tracks it)."""
        return None

    def stats(self) -> dict[str, Any]:
        return {}


class ModelSource(MarketSource):
    """The live ``MarketModel``, stepped in whole model steps."""

    mode = "model"

    def __init__(self, cfg: MarketModelConfig) -> None:
        self.cfg = cfg
        self.model = MarketModel(cfg)
        self.symbols = tuple(
            ExchangeSymbol(s, cfg.spec(s).price_decimals, cfg.spec(s).qty_decimals, spec_for(s).min_notional_usd)
            for s in cfg.symbols
        )
        self._ex: SimExchange | None = None
        self._sink: _Sink | None = None

    def start(self, ex: SimExchange, sink: _Sink) -> int:
        self._ex, self._sink = ex, sink
        self.model.start(sink)
        return self.cfg.start_ms

    def advance_to(self, t_ms: int) -> None:
        ex, sink, model = self._ex, self._sink, self.model
        assert ex is not None and sink is not None
        step = self.cfg.step_ms
        while model.next_step_ms + step - 1 <= t_ms:
            ex._clock_to(model.next_step_ms)
            model.advance_to(model.next_step_ms + step - 1, sink)
        ex._clock_to(model.next_step_ms)

    def take(self, sym: int, ms: int, buy: bool, qty: int, limit: int | None) -> list[tuple[int, int]]:
        assert self._sink is not None
        return self.model.user_take(sym, ms, buy, qty, limit, self._sink)

    def open_interest(self, sym: int) -> float | None:
        return self.model.syms[sym].oi

    def stats(self) -> dict[str, Any]:
        return {"regime": self.model.regime, "regimes": len(self.model.regime_log)}


class SimExchange:
    """The simulated exchange (see the module docstring)."""

    def __init__(self, config: SimExchangeConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self._subs: dict[str, list[Callable[[bytes], None]]] = {}
        self._specs: dict[str, StreamSpec] = {}
        self._recorded: set[str] = set()  # replay: stream names the file carries (served as recorded)
        self._trade_cbs: list[TradeCallback] = []
        self._funding_cbs: list[FundingCallback] = []
        self.encoded: Counter[str] = Counter()
        self._mark_arr: list[bytes] = []
        self._mark_arr_ms = 0
        self.ratio_process = RatioProcess()
        self._ratio_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([config.seed, 0x5241_5449])))
        self.source = self._make_source(config)
        self.mode = self.source.mode
        self._syms: list[_Sym] = []
        self._by_name: dict[str, _Sym] = {}
        self.symbols: tuple[str, ...] = ()  # listed symbols (a replay may list more as they appear)
        for spec in self.source.symbols:
            self._add_symbol(spec)
        self._now = 0
        self._next_boundary = 0
        self._next_flush: dict[int, int] = {}
        self._next_minute = self._next_5m = 0
        self._sink = _Sink(self)
        self._now = self.source.start(self, self._sink)
        self.start_ms = self._now
        self._init_clock(self._now)
        if self.mode == "model":
            self._load_history()
        self._paused = False
        self._speed: float | None = None if config.speed == "max" else float(config.speed)
        self._anchor_wall = self.clock.now_ms()
        self._anchor_market = self._now

    # ----------------------------------------------------------------- setup
    def _make_source(self, config: SimExchangeConfig) -> MarketSource:
        if config.replay is not None:
            from arbray.sim.replay_source import ReplaySource

            return ReplaySource(config.replay, config.symbols if "symbols" in config.model_fields_set else ())
        if config.model is not None:
            cfg = config.model
        else:
            start = config.start_ms
            if start is None:
                start = self.clock.now_ms() // 1000 * 1000
            cfg = MarketModelConfig(symbols=tuple(config.symbols), seed=config.seed, start_ms=start,
                                    rate_scale=config.rate_scale, step_ms=config.step_ms)
        return ModelSource(cfg)

    def _add_symbol(self, spec: ExchangeSymbol) -> _Sym:
        s = _Sym(len(self._syms), spec, self.config.agg_trade_history)
        s.next_agg = 200_000_000 + 7_919_000 * s.idx  # aggTrade ids: their own sequence, as on Binance
        self._syms.append(s)
        self._by_name[spec.symbol] = s
        self.symbols = (*self.symbols, spec.symbol)
        return s

    def add_symbol(self, spec: ExchangeSymbol) -> int:
        """Register a symbol found while replaying; returns its index."""
        if spec.symbol in self._by_name:
            return self._by_name[spec.symbol].idx
        s = self._add_symbol(spec)
        s.bars.start(self._now - self._now % MINUTE_MS, 0)
        return s.idx

    def _init_clock(self, t0: int) -> None:
        for speed in (100, 250, 500):
            self._next_flush[speed] = (t0 // speed + 1) * speed
        self._next_minute = (t0 // MINUTE_MS + 1) * MINUTE_MS
        self._next_5m = (t0 // FIVE_MIN_MS + 1) * FIVE_MIN_MS
        self._next_boundary = min(min(self._next_flush.values()), self._next_minute, self._next_5m)
        for s in self._syms:
            s.bars.start(t0 - t0 % MINUTE_MS, s.last_price)

    def _load_history(self) -> None:
        src = self.source
        assert isinstance(src, ModelSource)
        end = self.start_ms - self.start_ms % MINUTE_MS
        end_ticks = {s.name: (max(s.bids) if s.bids else 1) for s in self._syms}
        hist = synthesize(src.cfg, end, end_ticks, self.config.history_hours, self.config.seed, self.ratio_process)
        tick_start = self.start_ms - self.start_ms % MINUTE_MS
        for s in self._syms:
            h: SymbolHistory = hist[s.name]
            s.bars.load(h.bars)
            s.last_price = end_ticks[s.name]
            s.bars.start(tick_start, s.last_price)
            s.price_5m = s.last_price
            s.oi_hist = [(int(t), float(v), float(val)) for t, v, val in zip(h.times, h.oi, h.oi_value, strict=True)]
            s.ratios = [(int(t), float(a), float(b)) for t, a, b in zip(
                h.times, h.account_long, h.position_long, strict=True)]
            s.ratio_state = h.ratio_state
            s.funding = list(h.funding)
            s.oi = src.model.syms[s.idx].oi
            # until the first markPrice second: the start price, Binance's default rate, the next settlement
            s.mark = s.index = s.last_price / s.pscale
            s.rate = src.cfg.interest_rate
            period = src.cfg.funding_interval_h * 3_600_000
            s.next_funding = (self.start_ms // period + 1) * period

    # ------------------------------------------------------------ identity
    def now_ms(self) -> int:
        """Market time: everything stamped at or before it has been published."""
        return self._now

    def spec(self, symbol: str) -> ExchangeSymbol:
        return self._sym(symbol).spec

    def _sym(self, symbol: str) -> _Sym:
        s = self._by_name.get(symbol)
        if s is None:
            raise ExchangeError(-1121, "Invalid symbol.")
        return s

    @property
    def finished(self) -> bool:
        """True when a replay has published its whole file (a live model never finishes)."""
        return self.source.finished

    # -------------------------------------------------------------- pacing
    @property
    def speed(self) -> float | Literal["max"]:
        return "max" if self._speed is None else self._speed

    @property
    def paused(self) -> bool:
        return self._paused

    def set_speed(self, speed: float | Literal["max"]) -> None:
        """Change the pace from now on (the market time so far is kept)."""
        if speed != "max" and not speed > 0:
            raise ValueError("speed must be > 0 or 'max'")
        self._speed = None if speed == "max" else float(speed)
        self._reanchor()

    def _reanchor(self) -> None:
        self._anchor_wall = self.clock.now_ms()
        self._anchor_market = self._now

    def pause(self) -> None:
        """Freeze the market clock; conflated depth buffers are published first, so a client's book
        can reach the true book while paused."""
        if not self._paused:
            self._paused = True
            self.flush_conflated()

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._reanchor()

    def target_ms(self) -> int:
        """Market time the pace asks for now (``now_ms`` when paused or at ``max``)."""
        if self._paused or self._speed is None:
            return self._now
        return self._anchor_market + int((self.clock.now_ms() - self._anchor_wall) * self._speed)

    def step(self) -> None:
        """Advance the market to ``target_ms()``."""
        t = self.target_ms()
        if t > self._now:
            self.advance_to(t)

    def advance_to(self, t_ms: int) -> None:
        """Run the market to ``t_ms`` (publishing every message stamped up to it)."""
        if t_ms <= self._now:
            return
        self.source.advance_to(t_ms)
        self._now = t_ms

    # -------------------------------------------------------- subscriptions
    def stream_spec(self, stream: str) -> StreamSpec:
        """What ``stream`` means; raises ``UnknownStream``."""
        spec = self._specs.get(stream)
        if spec is None:
            spec = parse_stream(stream, self._by_name)
            self._specs[stream] = spec
        return spec

    def subscribe(self, stream: str, fn: Callable[[bytes], None]) -> Callable[[], None]:
        """Deliver every payload of ``stream`` to ``fn``; returns the unsubscribe function."""
        spec = self.stream_spec(stream)
        subs = self._subs.get(stream)
        if subs is None:
            subs = self._subs[stream] = []
            self._activate(spec)

        subs.append(fn)

        def unsubscribe() -> None:
            lst = self._subs.get(stream)
            if lst is not None and fn in lst:
                lst.remove(fn)
                if not lst:
                    del self._subs[stream]
                    self._deactivate(spec)

        return unsubscribe

    def _activate(self, spec: StreamSpec) -> None:
        if spec.symbol is None:
            return
        s = self._by_name[spec.symbol]
        if spec.kind == "depth" and spec.speed_ms:
            s.conflate[spec.name] = _Conflation(s.last_u)
        elif spec.kind == "partialDepth":
            s.partial[spec.name] = (spec.levels, s.last_u, False)
        elif spec.kind == "kline":
            open_ms = bucket_open(s.bars.open[0], spec.interval)
            rows = s.bars.view()
            acc: list[int] | None = None
            if spec.interval != "1m" and rows.shape[0]:
                part = rows[rows[:, 0] >= open_ms]
                if part.shape[0]:
                    acc = [int(v) for v in aggregate_bars(part, spec.interval)[-1]]
            s.klines[spec.name] = _KlineStream(spec.interval, open_ms, acc)

    def _deactivate(self, spec: StreamSpec) -> None:
        if spec.symbol is None:
            return
        s = self._by_name[spec.symbol]
        s.conflate.pop(spec.name, None)
        s.partial.pop(spec.name, None)
        s.klines.pop(spec.name, None)

    def _emit(self, name: str, kind: str, data: bytes) -> None:
        subs = self._subs.get(name)
        if subs:
            self.encoded[kind] += 1
            for fn in subs:
                fn(data)

    def publish_recorded(self, name: str, kind: str, data: bytes) -> None:
        """Replay: publish a recorded payload as it was; derived copies of ``name`` are suppressed."""
        self._recorded.add(name)
        subs = self._subs.get(name)
        if subs:
            self.encoded[kind] += 1
            for fn in subs:
                fn(data)

    def on_trade(self, fn: TradeCallback) -> None:
        """Call ``fn(symbol, ts_ms, price, qty, is_buyer_maker)`` for every public trade."""
        self._trade_cbs.append(fn)

    def on_funding(self, fn: FundingCallback) -> None:
        """Call ``fn(symbol, funding_time_ms, rate, mark_price)`` at every funding settlement."""
        self._funding_cbs.append(fn)

    # ------------------------------------------------------ source events
    def _on_snapshot(self, i: int, last_update_id: int, ms: int, bids: list[tuple[int, int]],
                     asks: list[tuple[int, int]]) -> None:
        s = self._syms[i]
        s.pend_b.clear()
        s.pend_a.clear()
        s.bids = dict(bids)
        s.asks = dict(asks)
        s.book_known = True
        s.book_floor = last_update_id
        s.last_u = last_update_id
        s.depth_ms = ms
        s.consumed_a.clear()
        s.consumed_b.clear()
        for conf in s.conflate.values():
            conf.pu = last_update_id
        if bids and not s.last_price:
            s.last_price = bids[0][0]

    def _on_trade(self, i: int, ms: int, agg_id: int | None, first: int, last: int, price: int, qty: int,
                  buyer_maker: bool) -> None:
        s = self._syms[i]
        if agg_id is None:
            agg_id = s.next_agg
        s.next_agg = agg_id + 1
        s.trades.append(agg_id, ms, price, qty, first, last, buyer_maker)
        if ms >= s.bars.open[0] + MINUTE_MS:
            self._roll_bars(s, ms)
        s.bars.trade(price, qty, buyer_maker, last)
        s.last_price = price
        if buyer_maker:
            s.flow_sell += qty
        else:
            s.flow_buy += qty
        subs = self._subs
        m = "true" if buyer_maker else "false"
        if s.n_agg in subs and s.n_agg not in self._recorded:
            self._emit(s.n_agg, "aggTrade", (
                f'{{"e":"aggTrade","E":{ms},"a":{agg_id},"s":"{s.name}","p":"{s.pf(price)}","q":"{s.qf(qty)}",'
                f'"f":{first},"l":{last},"T":{ms},"m":{m}}}').encode())
        if s.n_trade in subs and s.n_trade not in self._recorded:
            self._emit(s.n_trade, "trade", (
                f'{{"e":"trade","E":{ms},"T":{ms},"s":"{s.name}","t":{last},"p":"{s.pf(price)}",'
                f'"q":"{s.qf(qty)}","X":"MARKET","m":{m}}}').encode())
        if self._trade_cbs:
            px, q = price / s.pscale, qty / s.qscale
            for fn in self._trade_cbs:
                fn(s.name, ms, px, q, buyer_maker)

    def _on_book_ticker(self, i: int, ms: int, u: int, bid: int, bid_qty: int, ask: int, ask_qty: int) -> None:
        s = self._syms[i]
        s.bt = (u, ms, bid, bid_qty, ask, ask_qty)
        subs = self._subs
        if (s.n_bt in subs and s.n_bt not in self._recorded) or "!bookTicker" in subs:
            data = (f'{{"e":"bookTicker","u":{u},"s":"{s.name}","b":"{s.pf(bid)}","B":"{s.qf(bid_qty)}",'
                    f'"a":"{s.pf(ask)}","A":"{s.qf(ask_qty)}","T":{ms},"E":{ms}}}').encode()
            if s.n_bt not in self._recorded:
                self._emit(s.n_bt, "bookTicker", data)
            self._emit("!bookTicker", "bookTicker", data)

    def _on_depth(self, i: int, ms: int, first: int, final: int, prev: int, bids: list[tuple[int, int]],
                  asks: list[tuple[int, int]]) -> None:
        s = self._syms[i]
        if s.book_known and final >= s.book_floor:
            self._apply_levels(s, bids, asks)
        s.last_u = final
        s.depth_ms = ms
        if s.n_depth0 in self._subs and s.n_depth0 not in self._recorded:
            self._emit(s.n_depth0, "depth", (
                f'{{"e":"depthUpdate","E":{ms},"T":{ms},"s":"{s.name}","U":{first},"u":{final},"pu":{prev},'
                f'"b":[{s.levels(bids)}],"a":[{s.levels(asks)}]}}').encode())
        for conf in s.conflate.values():
            if conf.first < 0:
                conf.first = first
            conf.b.update(bids)
            conf.a.update(asks)
            conf.last = final
            conf.t = ms

    @staticmethod
    def _apply_levels(s: _Sym, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        """Absolute quantities into the book (0 removes); a replay's user takes on a changed level lapse."""
        book = s.bids
        consumed = s.consumed_b
        for p, q in bids:
            if q:
                book[p] = q
            else:
                book.pop(p, None)
            if consumed:
                consumed.pop(p, None)
        book = s.asks
        consumed = s.consumed_a
        for p, q in asks:
            if q:
                book[p] = q
            else:
                book.pop(p, None)
            if consumed:
                consumed.pop(p, None)

    def _on_depth_raw(self, i: int, ms: int, first: int, final: int, prev: int, bids: list[list[str]],
                      asks: list[list[str]]) -> None:
        """Replay: a recorded diff with its level strings; the book absorbs them lazily (``_Sym.sync``)."""
        s = self._syms[i]
        if s.book_known and final >= s.book_floor:
            s.pend_b.update(bids)  # type: ignore[arg-type]
            s.pend_a.update(asks)  # type: ignore[arg-type]
        s.last_u = final
        s.depth_ms = ms
        if s.n_depth0 in self._subs and s.n_depth0 not in self._recorded:
            self._emit(s.n_depth0, "depth", (
                f'{{"e":"depthUpdate","E":{ms},"T":{ms},"s":"{s.name}","U":{first},"u":{final},"pu":{prev},'
                f'"b":[{_raw_levels(bids)}],"a":[{_raw_levels(asks)}]}}').encode())
        for conf in s.conflate.values():
            if conf.first < 0:
                conf.first = first
            conf.b.update(bids)  # type: ignore[arg-type]
            conf.a.update(asks)  # type: ignore[arg-type]
            conf.last = final
            conf.t = ms

    def _on_book_ticker_raw(self, i: int, data: bytes) -> None:
        """Replay: a recorded bookTicker; decoded only when REST or a BookAccess call reads it."""
        self._syms[i].bt_raw = data
        if "!bookTicker" in self._subs:
            self._emit("!bookTicker", "bookTicker", data)

    def _on_mark(self, i: int, ms: int, mark: float, index: float, rate: float, next_funding_ms: int) -> None:
        s = self._syms[i]
        if s.next_funding and next_funding_ms > s.next_funding and ms >= s.next_funding:
            settled = s.next_funding
            s.funding.append((settled, s.rate, mark))
            for fn in self._funding_cbs:
                fn(s.name, settled, s.rate, mark)
        first_3s = ms // 3000 != s.mark_ms // 3000 or not s.mark_ms
        s.mark, s.index, s.rate, s.next_funding, s.mark_ms = mark, index, rate, next_funding_ms, ms
        subs = self._subs
        want3 = first_3s and (s.n_mark3 in subs or "!markPrice@arr" in subs)
        if s.n_mark1 in subs or want3 or "!markPrice@arr@1s" in subs:
            data = (f'{{"e":"markPriceUpdate","E":{ms},"s":"{s.name}","p":"{mark:.8f}","P":"{index:.8f}",'
                    f'"i":"{index:.8f}","r":"{rate:.8f}","T":{next_funding_ms}}}').encode()
            if s.n_mark1 not in self._recorded:
                self._emit(s.n_mark1, "markPrice", data)
            if first_3s and s.n_mark3 not in self._recorded:
                self._emit(s.n_mark3, "markPrice", data)
            if self._mark_arr and ms != self._mark_arr_ms:
                self._flush_mark_arr()
            self._mark_arr.append(data)
            self._mark_arr_ms = ms

    def _flush_mark_arr(self) -> None:
        if not self._mark_arr:
            return
        data = b"[" + b",".join(self._mark_arr) + b"]"
        self._emit("!markPrice@arr@1s", "markPrice", data)
        if self._mark_arr_ms % 3000 < 1000:
            self._emit("!markPrice@arr", "markPrice", data)
        self._mark_arr.clear()

    def _on_force(self, i: int, ms: int, sell: bool, price: int, avg_price: int, qty: int) -> None:
        s = self._syms[i]
        side = "SELL" if sell else "BUY"
        s.liquidations.append((ms, side, price / s.pscale, qty / s.qscale))
        if len(s.liquidations) > 10_000:
            del s.liquidations[:2_000]
        if s.n_force in self._subs or "!forceOrder@arr" in self._subs:
            q = s.qf(qty)
            data = (f'{{"e":"forceOrder","E":{ms},"o":{{"s":"{s.name}","S":"{side}","o":"LIMIT","f":"IOC",'
                    f'"q":"{q}","p":"{s.pf(price)}","ap":"{s.pf(avg_price)}","X":"FILLED","l":"{q}","z":"{q}",'
                    f'"T":{ms}}}}}').encode()
            if s.n_force not in self._recorded:
                self._emit(s.n_force, "forceOrder", data)
            self._emit("!forceOrder@arr", "forceOrder", data)

    def _on_kline(self, i: int, interval: str, row: list[int], closed: bool, ms: int) -> None:
        """Replay of a recorded kline: 1-minute closed bars join the bar history."""
        s = self._syms[i]
        if interval == "1m" and closed and row[0] >= (s.bars.view()[-1, 0] + MINUTE_MS if s.bars.n else 0):
            s.bars.open = list(row)
            s.bars.close()

    # ------------------------------------------------------ time boundaries
    def _clock_to(self, t: int) -> None:
        """Publish everything due at boundaries up to ``t``: conflated and partial depth, kline
        updates and closes, the 5-minute statistics, the all-market mark price array."""
        if self._mark_arr and self._mark_arr_ms < t:
            self._flush_mark_arr()
        if t < self._next_boundary:
            return
        if t >= self._next_minute:
            minute = t - t % MINUTE_MS
            for s in self._syms:
                if s.bars.open[0] + MINUTE_MS <= minute:
                    self._roll_bars(s, minute)
            self._next_minute = minute + MINUTE_MS
        for speed, due in self._next_flush.items():
            if t >= due:
                boundary = t - t % speed
                for s in self._syms:
                    if s.conflate or s.partial or (speed == 250 and s.klines):
                        self._flush_streams(s, speed, boundary)
                self._next_flush[speed] = boundary + speed
        if t >= self._next_5m:
            boundary = t - t % FIVE_MIN_MS
            for s in self._syms:
                self._sample_5m(s, boundary)
            self._next_5m = boundary + FIVE_MIN_MS
        self._next_boundary = min(min(self._next_flush.values()), self._next_minute, self._next_5m)

    def flush_conflated(self) -> None:
        """Publish every pending conflated depth event now (used when pausing)."""
        for s in self._syms:
            for name, conf in s.conflate.items():
                self._push_conflated(s, name, conf, max(self._now, conf.t))

    def _flush_streams(self, s: _Sym, speed: int, boundary: int) -> None:
        for name, conf in s.conflate.items():
            if self._specs[name].speed_ms == speed:
                self._push_conflated(s, name, conf, boundary)
        for name, (levels, pushed, any_yet) in list(s.partial.items()):
            if self._specs[name].speed_ms == speed and (pushed != s.last_u or not any_yet):
                s.sync()
                bids = [(p, s.bids[p]) for p in heapq.nlargest(levels, s.bids)]
                asks = [(p, s.asks[p]) for p in heapq.nsmallest(levels, s.asks)]
                first = min(pushed + 1, s.last_u)
                self._emit(name, "partialDepth", (
                    f'{{"e":"depthUpdate","E":{boundary},"T":{s.depth_ms},"s":"{s.name}","U":{first},'
                    f'"u":{s.last_u},"pu":{pushed},"b":[{s.levels(bids)}],"a":[{s.levels(asks)}]}}').encode())
                s.partial[name] = (levels, s.last_u, True)
        if speed == 250:
            for name, ks in s.klines.items():
                self._push_kline(s, name, ks, boundary, False)

    def _push_conflated(self, s: _Sym, name: str, conf: _Conflation, at_ms: int) -> None:
        if conf.first < 0:
            return
        if self.mode == "model":
            b = s.levels(sorted(conf.b.items(), reverse=True))
            a = s.levels(sorted(conf.a.items()))
        else:  # replayed level strings, as recorded
            b = _raw_levels(sorted(conf.b.items(), key=_price_key, reverse=True))
            a = _raw_levels(sorted(conf.a.items(), key=_price_key))
        self._emit(name, "depth", (
            f'{{"e":"depthUpdate","E":{at_ms},"T":{conf.t},"s":"{s.name}","U":{conf.first},"u":{conf.last},'
            f'"pu":{conf.pu},"b":[{b}],"a":[{a}]}}').encode())
        conf.pu = conf.last
        conf.first = -1
        conf.b.clear()
        conf.a.clear()

    def _kline_payload(self, s: _Sym, interval: str, bar: list[int], closed: bool, ms: int) -> bytes:
        pf, qf, nf = s.pf, s.qf, s.nf
        return (f'{{"e":"kline","E":{ms},"s":"{s.name}","k":{{"t":{bar[0]},"T":{bucket_close(bar[0], interval)},'
                f'"s":"{s.name}","i":"{interval}","f":{bar[10]},"L":{bar[11]},"o":"{pf(bar[1])}","c":"{pf(bar[4])}",'
                f'"h":"{pf(bar[2])}","l":"{pf(bar[3])}","v":"{qf(bar[5])}","n":{bar[7]},'
                f'"x":{"true" if closed else "false"},"q":"{nf(bar[6])}","V":"{qf(bar[8])}","Q":"{nf(bar[9])}",'
                f'"B":"0"}}}}').encode()

    def _push_kline(self, s: _Sym, name: str, ks: _KlineStream, ms: int, closed: bool,
                    bar: list[int] | None = None) -> None:
        if name in self._recorded:
            return
        if bar is None:
            bar = _merge(ks.acc, s.bars.open) if s.bars.open[0] >= ks.open_ms else ks.acc
            if bar is None:
                return
        sig = (bar[0], bar[7], bar[5], bar[4], bar[2], bar[3], int(closed))
        if sig == ks.pushed:
            return
        ks.pushed = sig
        self._emit(name, "kline", self._kline_payload(s, ks.interval, bar, closed, ms))

    def _roll_bars(self, s: _Sym, t: int) -> None:
        """Close 1-minute bars until the open one contains ``t`` (kline streams get their finals)."""
        while s.bars.open[0] + MINUTE_MS <= t:
            closed = s.bars.close()
            new_open = s.bars.open[0]
            for name, ks in s.klines.items():
                bar = _merge(ks.acc, closed)
                if bucket_open(new_open, ks.interval) != ks.open_ms:
                    self._push_kline(s, name, ks, new_open, True, bar)
                    ks.open_ms, ks.acc, ks.pushed = bucket_open(new_open, ks.interval), None, ()
                else:
                    ks.acc = bar

    def _sample_5m(self, s: _Sym, boundary: int) -> None:
        oi = self.source.open_interest(s.idx)
        if oi is None:  # replay: a synthetic open interest driven by the replayed taker flow
            if not s.oi:
                s.oi = 50_000_000.0 / max(s.last_price / s.pscale, 1e-9) / 100.0
            s.oi = max(0.0, s.oi + 0.3 * (s.flow_buy - s.flow_sell) / s.qscale)
            oi = s.oi
        s.oi = oi
        price = s.last_price / s.pscale
        s.oi_hist.append((boundary, oi, oi * (s.mark or price)))
        ret = math.log(s.last_price / s.price_5m) if s.price_5m and s.last_price else 0.0
        vol = s.flow_buy + s.flow_sell
        imb = (s.flow_buy - s.flow_sell) / vol if vol else 0.0
        z = self._ratio_rng.standard_normal(2)
        a, b = self.ratio_process.step(*s.ratio_state, ret, imb, float(z[0]), float(z[1]))
        s.ratio_state = (a, b)
        acc, pos = self.ratio_process.shares(a, b)
        s.ratios.append((boundary, acc, pos))
        s.flow_buy = s.flow_sell = 0
        s.price_5m = s.last_price
        for lst in (s.oi_hist, s.ratios):
            if len(lst) > 30 * 288 + 600:  # Binance keeps 30 days of statistics
                del lst[:600]

    # ----------------------------------------------------------- BookAccess
    def best_bid(self, symbol: str) -> tuple[float, float] | None:
        s = self._sym(symbol)
        s.sync()
        if not s.bids:
            return None
        p = max(s.bids)
        return p / s.pscale, (s.bids[p] - s.consumed_b.get(p, 0)) / s.qscale

    def best_ask(self, symbol: str) -> tuple[float, float] | None:
        s = self._sym(symbol)
        s.sync()
        if not s.asks:
            return None
        p = min(s.asks)
        return p / s.pscale, (s.asks[p] - s.consumed_a.get(p, 0)) / s.qscale

    def snapshot_id(self, symbol: str) -> int:
        """The ``lastUpdateId`` a REST snapshot taken now carries (see the module docstring)."""
        s = self._sym(symbol)
        return s.last_u + 1 if self.mode == "model" else s.last_u

    def depth(self, symbol: str, limit: int) -> dict[str, Any]:
        """The REST ``/fapi/v1/depth`` payload (prices and quantities as strings)."""
        if limit not in DEPTH_LIMITS:
            raise ExchangeError(-1130, "Data sent for parameter 'limit' is not valid.")
        s = self._sym(symbol)
        s.sync()
        if not s.book_known and s.last_u:  # a replay before its first snapshot: no diff bridges id 0,
            return {"lastUpdateId": 0, "E": self._now, "T": s.depth_ms, "bids": [], "asks": []}  # so clients retry
        bids, asks = s.bids, s.asks
        if not bids and not asks and s.bt is not None:  # a top-of-book-only replay
            _, _, b, bq, a, aq = s.bt
            bids, asks = {b: bq}, {a: aq}
        pf, qf = s.pf, s.qf
        return {
            "lastUpdateId": self.snapshot_id(symbol),
            "E": self._now,
            "T": s.depth_ms,
            "bids": [[pf(p), qf(bids[p])] for p in heapq.nlargest(limit, bids)],
            "asks": [[pf(p), qf(asks[p])] for p in heapq.nsmallest(limit, asks)],
        }

    def true_book(self, symbol: str) -> dict[str, Any]:
        """The full book and the ``u`` of the last published depth event."""
        s = self._sym(symbol)
        s.sync()
        pf, qf = s.pf, s.qf
        return {
            "symbol": s.name,
            "lastUpdateId": s.last_u,
            "known": s.book_known,
            "bids": [[pf(p), qf(s.bids[p])] for p in sorted(s.bids, reverse=True)],
            "asks": [[pf(p), qf(s.asks[p])] for p in sorted(s.asks)],
        }

    def take(self, symbol: str, is_buy: bool, qty: float, limit_price: float | None) -> list[tuple[float, float]]:
        """A user's taker order consuming resting liquidity up to ``limit_price`` (inclusive).

        Model mode: the fills change the book and are published exactly like model taker flow
        (aggTrade/trade, bookTicker, one depth update, ``on_trade``). Replay mode: the order fills
        against the replayed book without changing the recorded market; the quantity it took is
        remembered per level until the recording changes that level, so repeated orders cannot take
        the same liquidity twice. Returns (price, qty) fills.
        """
        s = self._sym(symbol)
        s.sync()
        steps = s.spec.steps(qty)
        if steps <= 0:
            return []
        limit = None
        if limit_price is not None:
            exact = limit_price * s.pscale
            limit = math.floor(exact + 1e-9) if is_buy else math.ceil(exact - 1e-9)
        if self.mode == "model":
            stamp = max(self._now, s.depth_ms)
            fills = self.source.take(s.idx, stamp, is_buy, steps, limit)
        else:
            fills = self._take_replayed(s, is_buy, steps, limit)
        return [(p / s.pscale, q / s.qscale) for p, q in fills]

    def _take_replayed(self, s: _Sym, buy: bool, steps: int, limit: int | None) -> list[tuple[int, int]]:
        book, consumed = (s.asks, s.consumed_a) if buy else (s.bids, s.consumed_b)
        fills: list[tuple[int, int]] = []
        for p in sorted(book) if buy else sorted(book, reverse=True):
            if steps <= 0 or (limit is not None and (p > limit if buy else p < limit)):
                break
            free = book[p] - consumed.get(p, 0)
            if free <= 0:
                continue
            fill = min(free, steps)
            consumed[p] = consumed.get(p, 0) + fill
            fills.append((p, fill))
            steps -= fill
        return fills

    def mark_price(self, symbol: str) -> float:
        """The latest mark price (the mid when the source publishes none)."""
        s = self._sym(symbol)
        return s.mark if s.mark else s.mid_ticks() / s.pscale

    # ------------------------------------------------------------- REST data
    def exchange_info(self, rate_limits: list[dict[str, Any]]) -> dict[str, Any]:
        """``/fapi/v1/exchangeInfo`` for the listed symbols."""
        symbols = []
        for s in self._syms:
            sp = s.spec
            tick, step = s.pf(1), s.qf(1)
            base = sp.symbol[:-4] if sp.symbol.endswith(("USDT", "USDC")) else sp.symbol
            max_qty = s.qf(10**sp.qty_decimals * max(1, int(10_000_000 / max(s.last_price / s.pscale, 1e-9))))
            symbols.append({
                "symbol": sp.symbol, "pair": sp.symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
                "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
                "requiredMarginPercent": "5.0000", "baseAsset": base, "quoteAsset": sp.symbol[len(base):],
                "marginAsset": sp.symbol[len(base):], "pricePrecision": sp.price_decimals,
                "quantityPrecision": sp.qty_decimals, "baseAssetPrecision": 8, "quotePrecision": 8,
                "underlyingType": "COIN", "underlyingSubType": [], "settlePlan": 0, "triggerProtect": "0.0500",
                "liquidationFee": "0.012500", "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": s.pf(10**sp.price_decimals * 10**7),
                     "tickSize": tick},
                    {"filterType": "LOT_SIZE", "minQty": step, "maxQty": max_qty, "stepSize": step},
                    {"filterType": "MARKET_LOT_SIZE", "minQty": step, "maxQty": max_qty, "stepSize": step},
                    {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                    {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                    {"filterType": "MIN_NOTIONAL", "notional": f"{sp.min_notional:g}"},
                    {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
                     "multiplierDecimal": "4"},
                ],
                "orderTypes": ["LIMIT", "MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
            })
        return {"timezone": "UTC", "serverTime": self._now, "futuresType": "U_MARGINED", "rateLimits": rate_limits,
                "exchangeFilters": [], "assets": [{"asset": "USDT", "marginAvailable": True,
                                                   "autoAssetExchange": "-10000"}], "symbols": symbols}

    def agg_trades(self, symbol: str, from_id: int | None = None, start_ms: int | None = None,
                   end_ms: int | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """``/fapi/v1/aggTrades``: by ``fromId``, by time window, or the most recent ``limit``."""
        import bisect

        if not 1 <= limit <= 1000:
            raise ExchangeError(-1130, "Data sent for parameter 'limit' is not valid.")
        if start_ms is not None and end_ms is not None and end_ms - start_ms > 3_600_000:
            raise ExchangeError(-1127, "More than 1 hours between startTime and endTime.")
        s = self._sym(symbol)
        log = s.trades
        n = len(log.ids)
        if from_id is not None:
            lo = bisect.bisect_left(log.ids, from_id)
            hi = min(n, lo + limit)
            if end_ms is not None:
                hi = min(hi, bisect.bisect_right(log.ms, end_ms, lo, hi))
        elif start_ms is not None or end_ms is not None:
            lo = bisect.bisect_left(log.ms, start_ms) if start_ms is not None else 0
            hi = bisect.bisect_right(log.ms, end_ms) if end_ms is not None else n
            if start_ms is not None:
                hi = min(hi, lo + limit)
            else:
                lo = max(lo, hi - limit)
        else:
            hi = n
            lo = max(0, n - limit)
        pf, qf = s.pf, s.qf
        return [{"a": log.ids[k], "p": pf(log.price[k]), "q": qf(log.qty[k]), "f": log.first[k], "l": log.last[k],
                 "T": log.ms[k], "m": log.maker[k]} for k in range(lo, hi)]

    def _bars(self, s: _Sym, interval: str) -> I64:
        rows = s.bars.view()
        open_row = np.asarray([s.bars.open], np.int64)
        rows = np.concatenate([rows, open_row]) if s.bars.open[0] else rows
        return rows if interval == "1m" else aggregate_bars(rows, interval)

    def klines(self, symbol: str, interval: str, start_ms: int | None = None, end_ms: int | None = None,
               limit: int = 500) -> list[list[Any]]:
        """``/fapi/v1/klines``: 12-field rows, oldest first; the last one may still be open."""
        if interval not in INTERVAL_MS:
            raise ExchangeError(-1120, "Invalid interval.")
        if not 1 <= limit <= 1500:
            raise ExchangeError(-1130, "Data sent for parameter 'limit' is not valid.")
        s = self._sym(symbol)
        rows = self._bars(s, interval)
        t = rows[:, 0]
        lo, hi = 0, rows.shape[0]
        if start_ms is not None:
            lo = int(np.searchsorted(t, bucket_open(start_ms, interval)))
        if end_ms is not None:
            hi = int(np.searchsorted(t, end_ms, side="right"))
        if start_ms is not None:
            hi = min(hi, lo + limit)
        else:
            lo = max(lo, hi - limit)
        pf, qf, nf = s.pf, s.qf, s.nf
        return [[int(r[0]), pf(int(r[1])), pf(int(r[2])), pf(int(r[3])), pf(int(r[4])), qf(int(r[5])),
                 bucket_close(int(r[0]), interval), nf(int(r[6])), int(r[7]), qf(int(r[8])), nf(int(r[9])), "0"]
                for r in rows[lo:hi].tolist()]

    def premium_index(self, symbol: str) -> dict[str, Any]:
        """``/fapi/v1/premiumIndex`` for one symbol."""
        s = self._sym(symbol)
        return {"symbol": s.name, "markPrice": f"{self.mark_price(symbol):.8f}",
                "indexPrice": f"{(s.index or self.mark_price(symbol)):.8f}",
                "estimatedSettlePrice": f"{(s.index or self.mark_price(symbol)):.8f}",
                "lastFundingRate": f"{s.rate:.8f}", "interestRate": "0.00010000",
                "nextFundingTime": s.next_funding, "time": self._now}

    def funding_rate(self, symbol: str, start_ms: int | None = None, end_ms: int | None = None,
                     limit: int = 100) -> list[dict[str, Any]]:
        """``/fapi/v1/fundingRate`` history (oldest first)."""
        if not 1 <= limit <= 1000:
            raise ExchangeError(-1130, "Data sent for parameter 'limit' is not valid.")
        s = self._sym(symbol)
        rows = [f for f in s.funding if (start_ms is None or f[0] >= start_ms) and (end_ms is None or f[0] <= end_ms)]
        rows = rows[:limit] if start_ms is not None else rows[-limit:]
        return [{"symbol": s.name, "fundingTime": t, "fundingRate": f"{r:.8f}", "markPrice": f"{m:.8f}"}
                for t, r, m in rows]

    def open_interest(self, symbol: str) -> dict[str, Any]:
        """``/fapi/v1/openInterest`` now."""
        s = self._sym(symbol)
        oi = self.source.open_interest(s.idx)
        return {"openInterest": f"{(s.oi if oi is None else oi):.{s.spec.qty_decimals}f}", "symbol": s.name,
                "time": self._now}

    def _stat_rows(self, rows: list[tuple[int, float, float]], period: str, start_ms: int | None,
                   end_ms: int | None, limit: int) -> list[tuple[int, float, float]]:
        if period not in STAT_PERIODS:
            raise ExchangeError(-1130, "Data sent for parameter 'period' is not valid.")
        if not 1 <= limit <= 500:
            raise ExchangeError(-1130, "Data sent for parameter 'limit' is not valid.")
        length = INTERVAL_MS["1d" if period == "1d" else period]
        sel = [r for r in rows if r[0] % length == 0 and (start_ms is None or r[0] >= start_ms)
               and (end_ms is None or r[0] <= end_ms)]
        return sel[:limit] if start_ms is not None and end_ms is None else sel[-limit:]

    def open_interest_hist(self, symbol: str, period: str, start_ms: int | None = None, end_ms: int | None = None,
                           limit: int = 30) -> list[dict[str, Any]]:
        """``/futures/data/openInterestHist``."""
        s = self._sym(symbol)
        d = s.spec.qty_decimals
        return [{"symbol": s.name, "sumOpenInterest": f"{oi:.{d}f}", "sumOpenInterestValue": f"{value:.8f}",
                 "timestamp": t} for t, oi, value in self._stat_rows(s.oi_hist, period, start_ms, end_ms, limit)]

    def long_short_ratio(self, symbol: str, period: str, which: Literal["account", "position"],
                         start_ms: int | None = None, end_ms: int | None = None,
                         limit: int = 30) -> list[dict[str, Any]]:
        """``globalLongShortAccountRatio`` (``account``) or ``topLongShortPositionRatio`` (``position``)."""
        s = self._sym(symbol)
        out = []
        for t, acc, pos in self._stat_rows(s.ratios, period, start_ms, end_ms, limit):
            long = acc if which == "account" else pos
            out.append({"symbol": s.name, "longShortRatio": f"{long / (1.0 - long):.4f}",
                        "longAccount": f"{long:.4f}", "shortAccount": f"{1.0 - long:.4f}", "timestamp": t})
        return out

    def ticker_price(self, symbol: str) -> dict[str, Any]:
        """``/fapi/v1/ticker/price`` for one symbol (the last trade price)."""
        s = self._sym(symbol)
        return {"symbol": s.name, "price": s.pf(s.last_price), "time": self._now}

    def book_ticker(self, symbol: str) -> dict[str, Any]:
        """``/fapi/v1/ticker/bookTicker`` for one symbol."""
        s = self._sym(symbol)
        s.sync()
        if s.bt is not None:
            u, ms, b, bq, a, aq = s.bt
        else:
            b = max(s.bids) if s.bids else 0
            a = min(s.asks) if s.asks else 0
            u, ms, bq, aq = s.last_u, s.depth_ms, s.bids.get(b, 0), s.asks.get(a, 0)
        return {"symbol": s.name, "bidPrice": s.pf(b), "bidQty": s.qf(bq), "askPrice": s.pf(a), "askQty": s.qf(aq),
                "time": ms, "lastUpdateId": u}

    def spot_price(self, symbol: str) -> dict[str, Any]:
        """Spot ``/api/v3/ticker/price``: the index price × (1 + ``spot_offset``)."""
        s = self._sym(symbol)
        index = s.index or self.mark_price(symbol)
        return {"symbol": s.name, "price": f"{index * (1.0 + self.config.spot_offset):.8f}"}

    # --------------------------------------------------------------- stats
    def stats(self) -> dict[str, Any]:
        """Market time, mode, encoded messages per stream kind and per-symbol counters."""
        return {
            "mode": self.mode,
            "market_ms": self._now,
            "start_ms": self.start_ms,
            "speed": self.speed,
            "paused": self._paused,
            "finished": self.finished,
            "encoded": dict(self.encoded),
            "subscribed_streams": len(self._subs),
            "source": self.source.stats(),
            "symbols": {s.name: {"last_update_id": s.last_u, "agg_trades_kept": len(s.trades.ids),
                                 "next_agg_id": s.next_agg, "funding_settlements": len(s.funding),
                                 "liquidations": len(s.liquidations)} for s in self._syms},
        }


__all__ = ["ExchangeError", "ExchangeSymbol", "MarketSource", "ModelSource", "SimExchange", "SimExchangeConfig",
           "UnknownStream", "aggregate_bars"]
