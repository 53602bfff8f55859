"""Outcome labels of score events, computed from the market data after each event.

For an event at ``t`` with side ``s`` (+1 LONG, −1 SHORT), entry price ``p0`` (the snapshot's
price — its last trade, or its mark price for the mark source — else the last price observed
before ``t``) and the snapshot's ATR:

- ``y_binary_30m`` / ``y_binary_60m``: 1 iff ``p0 + s × target_atr × ATR`` is touched before any
  touch of ``p0 − s × stop_atr × ATR``, chronologically, within 30 / 60 minutes, else 0;
- ``y_return_15m/30m/60m``: ``s × (p(t + h) / p0 − 1)`` with ``p(t + h)`` the last price before
  ``t + h`` (raw long-direction returns for events without a side);
- ``mfe_r_60m`` / ``mae_r_60m``: the largest favourable / adverse excursion within 60 minutes in R,
  with 1R = ``stop_atr × ATR``; both ≥ 0.

Prices are trades (the recording's trades or the journal's ``agg_trades``) or mark prices (a
recording's ``markPrice`` stream), as configured; 1-minute klines are the fallback when a symbol has
no trades — a bar's high and low are then touched at its open time, and a bar that touches both
barriers counts as the stop (the conservative reading). Windows are half-open ``[t, t + h)`` on
exchange time, like the feature windows.

An event is labelled once the data covers ``t + 60 min``; until then it stays pending. An event that
can be labelled only in part gets a row whose ``status`` says why the rest is NULL: ``no_side``,
``no_atr``, ``no_price`` (nothing traded before it) or ``gap`` (no price for more than
``max_gap_ms`` around or inside the window), so a backfill never retries it and nothing is lost.
Events are labelled together with array operations: range maxima from block maxima and a sparse table,
first barrier touches by binary search over block prefix maxima (``RangeIndex``).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic import Field

from arbray.clock import Clock, SystemClock
from arbray.marketdata.events import Event, Kline, MarkPrice, TradeBatch
from arbray.marketdata.parser import BinanceParser
from arbray.replay.readers import open_input
from arbray.scoring.config import FrozenModel, canonical_json
from arbray.storage.base import Store

MINUTE_MS = 60_000
PriceSource = Literal["trade", "mark"]
DataSource = Literal["recording", "agg_trades", "klines"]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class LabelConfig(FrozenModel):
    """What a label means: price source, barrier multiples of the snapshot ATR, tolerated data gaps."""

    price_source: PriceSource = Field("trade", description="trade prices or the markPrice stream")
    target_atr: float = Field(2.0, gt=0, le=20, description="win barrier: this many ATR in the event's direction")
    stop_atr: float = Field(1.0, gt=0, le=20, description="loss barrier (and 1R): this many ATR against it")
    max_gap_ms: int = Field(300_000, ge=1_000, le=3_600_000, description="longest tolerated stretch without a price")
    kline_interval: str = Field("1m", pattern=r"^\d+[mh]$", description="journal klines used without agg_trades")

    @property
    def version(self) -> str:
        """``lbl-<sha12>`` of the config: stored with each label so a changed definition is detectable."""
        return "lbl-" + hashlib.sha256(canonical_json(self.model_dump(mode="json")).encode()).hexdigest()[:12]

    def spec(self) -> LabelSpec:
        """The label geometry with the standard horizons (30/60 min binary, 15/30/60 min returns)."""
        return LabelSpec(self.target_atr, self.stop_atr, self.max_gap_ms)


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """Barriers, gap tolerance and horizons (ms); the stored columns use the default horizons."""

    target_atr: float
    stop_atr: float
    max_gap_ms: int
    binary_ms: tuple[int, int] = (30 * MINUTE_MS, 60 * MINUTE_MS)
    return_ms: tuple[int, int, int] = (15 * MINUTE_MS, 30 * MINUTE_MS, 60 * MINUTE_MS)
    excursion_ms: int = 60 * MINUTE_MS

    @property
    def horizon_ms(self) -> int:
        """How far after an event the data must reach before it can be labelled."""
        return max(*self.binary_ms, *self.return_ms, self.excursion_ms)


class LabelEvent(NamedTuple):
    """What labelling needs of a score event (``price``: the snapshot's entry price, if it has one)."""

    event_id: int
    symbol: str
    ts_ms: int
    side: int
    atr: float | None
    price: float | None = None


class Label(NamedTuple):
    """One ``score_labels`` row (without the config-level columns)."""

    event_id: int
    status: str
    entry_price: float | None
    atr: float | None
    y_binary_30m: int | None
    y_binary_60m: int | None
    y_return_15m: float | None
    y_return_30m: float | None
    y_return_60m: float | None
    mfe_r_60m: float | None
    mae_r_60m: float | None
    first_hit: str | None
    first_hit_ms: int | None


class RangeIndex:
    """Vectorised range maximum and first index reaching a threshold over a fixed array.

    Block maxima (``block`` elements each) with a sparse table over them answer any range in O(1)
    numpy work per query plus a gather of at most ``2 × block`` elements for the partial ends; the
    first index ``≥ thr`` binary-searches the blocks' prefix maxima. Every method takes arrays of
    queries (half-open ``[a, b)``) and answers them all at once.
    """

    def __init__(self, v: FloatArray, block: int = 64) -> None:
        self.v, self.block = np.asarray(v, dtype=np.float64), block
        n = self.v.size
        nb = -(-n // block)
        pad = np.full(max(1, nb) * block, -np.inf)
        pad[:n] = self.v
        levels = [pad.reshape(-1, block).max(axis=1)]
        k = 1
        while (1 << k) <= nb:
            prev, h = levels[-1], 1 << (k - 1)
            nxt = np.full(prev.size, -np.inf)
            nxt[: prev.size - h] = np.maximum(prev[:-h], prev[h:])
            levels.append(nxt)
            k += 1
        self.table: FloatArray = np.stack(levels)
        self._padded = np.append(self.v, -np.inf)  # index n reads as "no value"

    def _blocks_max(self, lo: IntArray, hi: IntArray) -> FloatArray:
        """Max of whole blocks ``[lo, hi)`` (−inf where empty)."""
        span = hi - lo
        ok = span > 0
        k = np.zeros(span.size, dtype=np.int64)
        k[ok] = np.floor(np.log2(span[ok])).astype(np.int64)
        t = self.table
        both = np.maximum(t[k, np.minimum(lo, t.shape[1] - 1)], t[k, np.clip(hi - (1 << k), 0, t.shape[1] - 1)])
        out: FloatArray = np.where(ok, both, -np.inf)
        return out

    def _gather(self, start: IntArray, end: IntArray, width: int) -> FloatArray:
        """Rows of ``v[start:end]`` padded with −inf to ``width`` (each segment is at most ``width`` long)."""
        idx = start[:, None] + np.arange(width)[None, :]
        idx = np.where(idx < end[:, None], idx, self.v.size)
        out: FloatArray = self._padded[idx]
        return out

    def _split(self, a: IntArray, b: IntArray) -> tuple[IntArray, IntArray, IntArray, IntArray]:
        """Head ``[a, h)``, whole blocks ``[ba, bb)`` and tail ``[t, b)`` of each range."""
        bs = self.block
        ba, bb = -(-a // bs), b // bs
        small = ba >= bb
        head_end = np.where(small, b, ba * bs)
        tail = np.where(small, b, bb * bs)
        return head_end, np.where(small, 0, ba), np.where(small, 0, bb), tail

    def max(self, start: npt.ArrayLike, end: npt.ArrayLike) -> FloatArray:
        """``max(v[start:end])`` per query (−inf for empty ranges)."""
        a = np.asarray(start, dtype=np.int64)
        b = np.maximum(a, np.asarray(end, dtype=np.int64))
        head_end, ba, bb, tail = self._split(a, b)
        parts = [self._gather(a, head_end, 2 * self.block).max(axis=1, initial=-np.inf), self._blocks_max(ba, bb),
                 self._gather(tail, b, self.block).max(axis=1, initial=-np.inf)]
        out: FloatArray = np.maximum.reduce(parts)
        return out

    def first_ge(self, start: npt.ArrayLike, end: npt.ArrayLike, thr: npt.ArrayLike) -> IntArray:
        """The first index ``i`` in ``[start, end)`` with ``v[i] >= thr`` per query, else ``end``."""
        a = np.asarray(start, dtype=np.int64)
        b = np.maximum(a, np.asarray(end, dtype=np.int64))
        th = np.asarray(thr, dtype=np.float64)
        bs = self.block
        head_end, ba, bb, tail = self._split(a, b)
        out: IntArray = b.copy()
        hit = self._gather(a, head_end, 2 * bs) >= th[:, None]
        found = hit.any(axis=1)
        out[found] = a[found] + hit[found].argmax(axis=1)
        todo = ~found & (self._blocks_max(ba, bb) >= th)
        if todo.any():
            lo, hi, first, t = ba[todo].copy(), bb[todo] - 1, ba[todo], th[todo]
            while (lo < hi).any():  # smallest j with max(blocks[first..j]) >= thr
                mid = (lo + hi) // 2
                ok = self._blocks_max(first, mid + 1) >= t
                hi = np.where(ok, mid, hi)
                lo = np.where(ok, lo, mid + 1)
            row = self._gather(lo * bs, lo * bs + bs, bs) >= t[:, None]
            out[todo] = lo * bs + row.argmax(axis=1)
            found |= todo
        rest = np.flatnonzero(~found)
        if rest.size:
            row = self._gather(tail[rest], b[rest], bs) >= th[rest][:, None]
            has = row.any(axis=1)
            out[rest[has]] = tail[rest][has] + row[has].argmax(axis=1)
        return out


@dataclass
class PricePath:
    """One symbol's prices in time order: trades/marks (``hi = lo = close``) or bars (``ts`` = open time,
    ``close_ts`` = close time). ``covered_until_ms``: the data is complete up to this time."""

    symbol: str
    source: DataSource
    ts: IntArray
    close_ts: IntArray
    hi: FloatArray
    lo: FloatArray
    close: FloatArray
    covered_until_ms: int
    _hi: RangeIndex = field(init=False, repr=False)
    _neg_lo: RangeIndex = field(init=False, repr=False)
    _gaps: RangeIndex = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._hi, self._neg_lo = RangeIndex(self.hi), RangeIndex(-self.lo)
        self._gaps = RangeIndex(np.diff(self.ts).astype(np.float64))

    @classmethod
    def from_prices(cls, symbol: str, ts: npt.ArrayLike, price: npt.ArrayLike, source: DataSource,
                    covered_until_ms: int | None = None) -> PricePath:
        """A path of point observations (stably sorted by time)."""
        t, p = np.asarray(ts, dtype=np.int64), np.asarray(price, dtype=np.float64)
        order = np.argsort(t, kind="stable")
        t, p = t[order], p[order]
        end = int(t[-1]) if t.size else 0
        return cls(symbol, source, t, t, p, p, p, end if covered_until_ms is None else covered_until_ms)

    @classmethod
    def from_bars(cls, symbol: str, open_ms: npt.ArrayLike, close_ms: npt.ArrayLike, high: npt.ArrayLike,
                  low: npt.ArrayLike, close: npt.ArrayLike, source: DataSource = "klines") -> PricePath:
        """A path of OHLC bars (sorted by open time)."""
        o = np.asarray(open_ms, dtype=np.int64)
        order = np.argsort(o, kind="stable")
        c = np.asarray(close_ms, dtype=np.int64)[order]
        return cls(symbol, source, o[order], c, np.asarray(high, dtype=np.float64)[order],
                   np.asarray(low, dtype=np.float64)[order], np.asarray(close, dtype=np.float64)[order],
                   int(c[-1]) + 1 if c.size else 0)

    def __len__(self) -> int:
        return int(self.ts.size)

    def price_before(self, t: int) -> tuple[float, int] | None:
        """The last close known before ``t`` and its time."""
        i = int(np.searchsorted(self.close_ts, t, "left")) - 1
        return None if i < 0 else (float(self.close[i]), int(self.close_ts[i]))


def label_events(events: Iterable[LabelEvent], path: PricePath, spec: LabelSpec) -> tuple[list[Label], list[int]]:
    """Labels of the events the path covers, and the ids of those still pending (data not yet there).

    Events sharing a snapshot (time, side, ATR and price: every strategy scoring it) are computed once;
    all of them are labelled together with array operations.
    """
    evs = list(events)
    pending = [e.event_id for e in evs if e.ts_ms + spec.horizon_ms > path.covered_until_ms]
    ready = [e for e in evs if e.ts_ms + spec.horizon_ms <= path.covered_until_ms]
    if not ready:
        return [], pending
    keys: dict[tuple[int, int, float | None, float | None], int] = {}
    slot = [keys.setdefault((e.ts_ms, e.side, e.atr, e.price), len(keys)) for e in ready]
    uniq = list(keys)
    labels = _label_unique(uniq, path, spec) if len(path) else [
        Label(0, "no_price", None, None, None, None, None, None, None, None, None, None, None)] * len(uniq)
    return [labels[k]._replace(event_id=e.event_id) for e, k in zip(ready, slot, strict=True)], pending


def _label_unique(uniq: Sequence[tuple[int, int, float | None, float | None]], path: PricePath,
                  spec: LabelSpec) -> list[Label]:
    t0 = np.asarray([u[0] for u in uniq], dtype=np.int64)
    side = np.asarray([u[1] for u in uniq], dtype=np.int64)
    atr = np.asarray([np.nan if u[2] is None else u[2] for u in uniq], dtype=np.float64)
    given = np.asarray([np.nan if u[3] is None else u[3] for u in uniq], dtype=np.float64)
    ts, close_ts, close = path.ts, path.close_ts, path.close
    n = ts.size
    ib = np.searchsorted(close_ts, t0, "left") - 1
    has_given = np.isfinite(given) & (given > 0)
    no_price = ~has_given & (ib < 0)
    p0 = np.where(has_given, given, close[np.maximum(ib, 0)])
    stale = ~has_given & ~no_price & (t0 - close_ts[np.maximum(ib, 0)] > spec.max_gap_ms)
    h_all = spec.horizon_ms
    a = np.searchsorted(ts, t0, "left")
    b = np.searchsorted(ts, t0 + h_all, "left")
    nonempty = a < b
    inner = path._gaps.max(a, np.maximum(a, b - 1))
    head = np.where(nonempty, ts[np.minimum(a, n - 1)] - t0, h_all)
    tail = np.where(nonempty, t0 + h_all - ts[np.maximum(b - 1, 0)], h_all)
    gap = np.maximum(np.maximum(head, tail), np.where(np.isfinite(inner), inner, 0)) > spec.max_gap_ms
    s = np.where(side == 0, 1, side)
    rets = []
    for h in spec.return_ms:
        j = np.searchsorted(close_ts, t0 + h, "left") - 1
        rets.append(s * (np.where(j >= 0, close[np.maximum(j, 0)], p0) / p0 - 1.0))
    ok_atr = np.isfinite(atr) & (atr > 0)
    r_unit = spec.stop_atr * np.where(ok_atr, atr, 1.0)
    be = np.searchsorted(ts, t0 + spec.excursion_ms, "left")
    top, bottom = path._hi.max(a, be), -path._neg_lo.max(a, be)
    fav = np.where(s > 0, top - p0, p0 - bottom)
    adv = np.where(s > 0, p0 - bottom, top - p0)
    bb = np.searchsorted(ts, t0 + max(spec.binary_ms), "left")
    w = np.where(ok_atr, atr, 0.0)
    # long: target on highs, stop on lows; short: target on lows, stop on highs
    on_hi = np.where(s > 0, p0 + spec.target_atr * w, p0 + spec.stop_atr * w)
    on_lo = np.where(s > 0, -(p0 - spec.stop_atr * w), -(p0 - spec.target_atr * w))
    i_hi, i_lo = path._hi.first_ge(a, bb, on_hi), path._neg_lo.first_ge(a, bb, on_lo)
    i_t, i_s = np.where(s > 0, i_hi, i_lo), np.where(s > 0, i_lo, i_hi)
    target_first = i_t < i_s  # a bar touching both barriers (same index) counts as the stop
    stop_first = ~target_first & (i_s < bb)
    hit_ms = ts[np.minimum(np.where(target_first, i_t, i_s), n - 1)]
    out = []
    for k in range(len(uniq)):
        atr_k = float(atr[k]) if ok_atr[k] else None
        if no_price[k]:
            out.append(Label(0, "no_price", None, atr_k, None, None, None, None, None, None, None, None, None))
            continue
        entry = float(p0[k])
        if stale[k] or gap[k]:
            out.append(Label(0, "gap", entry, atr_k, None, None, None, None, None, None, None, None, None))
            continue
        r15, r30, r60 = float(rets[0][k]), float(rets[1][k]), float(rets[2][k])
        if side[k] == 0 or atr_k is None:
            out.append(Label(0, "no_side" if side[k] == 0 else "no_atr", entry, atr_k, None, None, r15, r30, r60,
                             None, None, None, None))
            continue
        first = "target" if target_first[k] else "stop" if stop_first[k] else None
        first_ms = int(hit_ms[k]) if first else None
        ys = [int(first == "target" and first_ms is not None and first_ms < int(t0[k]) + h) for h in spec.binary_ms]
        out.append(Label(0, "ok", entry, atr_k, ys[0], ys[1], r15, r30, r60, max(0.0, float(fav[k])) / r_unit[k],
                         max(0.0, float(adv[k])) / r_unit[k], first, first_ms))
    return out


# ---------------------------------------------------------------------------------------- price sources


class _Collector:
    """A parser router and sink keeping each symbol's trade prices, mark prices and closed klines."""

    def __init__(self) -> None:
        self.trades: dict[str, tuple[list[int], list[float]]] = {}
        self.marks: dict[str, tuple[list[int], list[float]]] = {}
        self.bars: dict[str, list[Kline]] = {}

    def route(self, symbol: str) -> _Sink:
        return _Sink(self, symbol)

    def on_batch(self, batch: TradeBatch) -> None:
        ts, px = self.trades.setdefault(batch.symbol, ([], []))
        ts.extend(batch.rows["ts_ms"].tolist())
        px.extend(batch.rows["price"].tolist())

    def on_event(self, ev: Event) -> None:
        if isinstance(ev, MarkPrice):
            ts, px = self.marks.setdefault(ev.symbol, ([], []))
            ts.append(ev.event_ms)
            px.append(ev.mark_price)
        elif isinstance(ev, Kline) and ev.closed:
            self.bars.setdefault(ev.symbol, []).append(ev)


class _Sink:
    """One symbol's parser sink: trade prices into the collector's lists, other events to the collector."""

    def __init__(self, owner: _Collector, symbol: str) -> None:
        self._ts, self._px = owner.trades.setdefault(symbol, ([], []))
        self._owner = owner

    def on_trade(self, ts_ms: int, price: float, qty: float, is_buyer_maker: bool, trade_id: int, id_kind: str,
                 recv_ns: int) -> None:
        self._ts.append(ts_ms)
        self._px.append(price)

    def on_book_ticker(self, update_id: int, transact_ms: int, bid: float, bid_qty: float, ask: float,
                       ask_qty: float, recv_ns: int) -> None:
        return None

    def on_event(self, event: Event) -> None:
        self._owner.on_event(event)


@dataclass
class RecordingPrices:
    """Trade and mark-price paths per symbol parsed from recorded files (every format the replay reads)."""

    trade: dict[str, PricePath]
    mark: dict[str, PricePath]

    @classmethod
    def load(cls, files: Sequence[str | Path]) -> RecordingPrices:
        """Parse ``files``; a symbol without trades uses its closed klines as its trade path."""
        col = _Collector()
        parser = BinanceParser(col)
        for f in files:
            for _, _, payload in open_input(f, MINUTE_MS):
                if isinstance(payload, tuple):
                    obj, recv, hint = payload
                    if obj is not None:
                        parser.feed_obj(obj, recv, hint)
                elif isinstance(payload, TradeBatch):
                    col.on_batch(payload)
                else:
                    col.on_event(payload)
        trade = {s: PricePath.from_prices(s, ts, px, "recording") for s, (ts, px) in col.trades.items() if ts}
        for s, bars in col.bars.items():
            if s not in trade and bars:
                trade[s] = PricePath.from_bars(s, [k.open_ms for k in bars], [k.close_ms for k in bars],
                                               [k.high for k in bars], [k.low for k in bars],
                                               [k.close for k in bars], "recording")
        mark = {s: PricePath.from_prices(s, ts, px, "recording") for s, (ts, px) in col.marks.items() if ts}
        return cls(trade, mark)

    def get(self, symbol: str, source: PriceSource) -> PricePath | None:
        """The symbol's trade or mark-price path, if the recordings had one."""
        return (self.trade if source == "trade" else self.mark).get(symbol)


async def store_path(store: Store, symbol: str, from_ms: int, to_ms: int, config: LabelConfig) -> PricePath | None:
    """The journal's ``agg_trades`` of ``[from_ms, to_ms)`` for ``symbol``, else its klines."""
    if config.price_source == "mark":
        raise ValueError("mark-price labels need recordings with a markPrice stream (pass --input FILE)")
    ts, px = await store.agg_trade_prices(symbol, from_ms, to_ms)
    if ts:
        return PricePath.from_prices(symbol, ts, px, "agg_trades")
    bars = await store.kline_bars(symbol, config.kline_interval, from_ms, to_ms)
    if not bars:
        return None
    return PricePath.from_bars(symbol, [b["open_ms"] for b in bars], [b["close_ms"] for b in bars],
                               [b["high"] for b in bars], [b["low"] for b in bars], [b["close"] for b in bars])


# ---------------------------------------------------------------------------------------- backfill


def event_atr(features: Mapping[str, Any] | None, inputs: Mapping[str, Any] | None) -> float | None:
    """The event's ATR: the snapshot's ``atr_5m``, else its recorded ``price × atr_pct_5m``."""
    if features and features.get("atr_5m") is not None:
        return float(features["atr_5m"])
    if inputs and inputs.get("price") is not None and inputs.get("atr_pct_5m") is not None:
        return float(inputs["price"]) * float(inputs["atr_pct_5m"])
    return None


def to_label_event(row: Mapping[str, Any], price_source: PriceSource = "trade") -> LabelEvent:
    """A ``LabelEvent`` from a fetched ``score_events`` row (entry price from its snapshot)."""
    side = {"LONG": 1, "SHORT": -1}.get(row.get("side") or "", 0)
    feats = row.get("features") or {}
    price = feats.get("price" if price_source == "trade" else "mark_price")
    if price is None and price_source == "trade":
        price = (row.get("inputs") or {}).get("price")
    return LabelEvent(int(row["id"]), row["symbol"], int(row["ts_ms"]), side,
                      event_atr(row.get("features"), row.get("inputs")), None if price is None else float(price))


@dataclass
class BackfillReport:
    """What one ``arbray label`` run did: rows written by status, events still pending, per symbol."""

    examined: int = 0
    labelled: Counter[str] = field(default_factory=Counter)
    pending: int = 0
    no_data: int = 0
    by_symbol: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"examined": self.examined, "labelled": sum(self.labelled.values()),
                "by_status": dict(sorted(self.labelled.items())), "pending": self.pending, "no_data": self.no_data,
                "by_symbol": self.by_symbol}


async def backfill_labels(store: Store, config: LabelConfig | None = None, prices: RecordingPrices | None = None,
                          strategy: str | None = None, run_id: str | None = None, relabel: bool = False,
                          page: int = 5_000, clock: Clock | None = None) -> BackfillReport:
    """Label every unlabelled score event the market data covers (idempotent; safe to re-run).

    Prices come from ``prices`` (recordings) when given, else from the journal's ``agg_trades`` /
    klines. With ``relabel`` events labelled under another ``LabelConfig.version`` are relabelled.
    Events whose symbol has no price data at all are counted as ``no_data`` and stay unlabelled.
    """
    cfg = config or LabelConfig()
    spec = cfg.spec()
    now = (clock or SystemClock()).now_ms
    version = cfg.version
    report = BackfillReport()
    if prices is not None:
        source = prices.trade if cfg.price_source == "trade" else prices.mark
        ends = {s: p.covered_until_ms for s, p in source.items()}
    else:
        if cfg.price_source == "mark":
            raise ValueError("mark-price labels need recordings with a markPrice stream (pass --input FILE)")
        ends = await store.market_data_end(cfg.kline_interval)
    if not ends:
        return report
    after = 0
    while True:
        rows = await store.unlabelled_score_events(max(ends.values()) - spec.horizon_ms, after_id=after, limit=page,
                                                   strategy=strategy, run_id=run_id,
                                                   label_version=version if relabel else None)
        if not rows:
            break
        after = int(rows[-1]["id"])
        report.examined += len(rows)
        by_symbol: dict[str, list[LabelEvent]] = {}
        for r in rows:
            by_symbol.setdefault(r["symbol"], []).append(to_label_event(r, cfg.price_source))
        out: list[tuple[Any, ...]] = []
        for sym, evs in sorted(by_symbol.items()):
            stats = report.by_symbol.setdefault(sym, {"labelled": 0, "pending": 0, "no_data": 0})
            path: PricePath | None
            if prices is not None:
                path = prices.get(sym, cfg.price_source)
            else:
                lo = min(e.ts_ms for e in evs) - cfg.max_gap_ms
                path = await store_path(store, sym, lo, max(e.ts_ms for e in evs) + spec.horizon_ms, cfg)
                if path is not None:
                    path.covered_until_ms = ends.get(sym, path.covered_until_ms)
            if path is None or not len(path):
                report.no_data += len(evs)
                stats["no_data"] += len(evs)
                continue
            labels, pending = label_events(evs, path, spec)
            report.pending += len(pending)
            stats["pending"] += len(pending)
            stats["labelled"] += len(labels)
            ts = now()
            for lab in labels:
                report.labelled[lab.status] += 1
                out.append((*lab, cfg.price_source, path.source, version, ts))
        await store.insert_score_labels(out)
        if len(rows) < page:
            break
    return report
