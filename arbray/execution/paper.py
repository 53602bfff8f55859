"""The paper venue: a deterministic fill model over recorded trades (and an optional book).

Market orders walk the book levels when a book is set, else fill at the last trade price moved
against the taker by ``slippage_bps``. A resting limit fills (as maker, at its own price) when a
trade prints strictly through it, up to that trade's quantity; in ``queue`` mode trades at the
price first consume the quantity that was ahead of the order when it arrived. Orders and cancels
reach the venue ``latency_ms`` after they are sent. Funding is charged at every settlement
boundary from the mark price and rate the caller supplies. See ``docs/backtest-assumptions.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from arbray.execution.fees import DEFAULT_FEE_TIER, FEE_SCHEDULE, FeeRates
from arbray.execution.venue import EventHandler, Fill, FundingCharge, Order, OrderUpdate, VenueEvent
from arbray.scoring.config import FrozenModel

FUNDING_INTERVAL_MS = 8 * 3_600_000


class PaperVenueConfig(FrozenModel):
    """Fill-model, latency and fee settings of the paper venue."""

    latency_ms: int = Field(0, ge=0, le=60_000, description="one-way order and cancel latency")
    fill_model: Literal["through", "queue"] = "through"
    slippage_bps: float = Field(1.0, ge=0, le=500, description="market fill vs last trade when no book is set")
    fee_tier: str = DEFAULT_FEE_TIER
    maker_fee: float | None = Field(None, ge=-0.001, le=0.01, description="overrides the tier; < 0 is a rebate")
    taker_fee: float | None = Field(None, ge=0, le=0.01, description="overrides the tier")
    funding_interval_ms: int = Field(FUNDING_INTERVAL_MS, ge=60_000, le=24 * 3_600_000)

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        if self.fee_tier not in FEE_SCHEDULE:
            return [(("fee_tier",), f"unknown fee tier {self.fee_tier!r}; known: {', '.join(sorted(FEE_SCHEDULE))}")]
        return []

    def rates(self) -> FeeRates:
        """Effective maker/taker rates (tier, then explicit overrides)."""
        tier = FEE_SCHEDULE[self.fee_tier]
        return FeeRates(tier.maker if self.maker_fee is None else self.maker_fee,
                        tier.taker if self.taker_fee is None else self.taker_fee)


@dataclass
class _Working:
    order: Order
    arrive_ms: int
    seq: int
    remaining: float
    resting: bool = False
    queue_ahead: float = 0.0


@dataclass(frozen=True)
class _Cancel:
    client_id: str
    account: str
    symbol: str
    arrive_ms: int
    seq: int


Levels = list[tuple[float, float]]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class PaperVenue:
    """Simulated matching of arbray's orders against recorded market data."""

    def __init__(self, config: PaperVenueConfig | None = None) -> None:
        self.config = config or PaperVenueConfig()
        self.rates = self.config.rates()
        self._handler: EventHandler | None = None
        self._known: set[str] = set()
        self._working: dict[str, _Working] = {}
        self._filled: dict[str, float] = {}
        self._orders: dict[str, Order] = {}
        self._cancels: dict[str, _Cancel] = {}
        self._seq = 0
        self._last: dict[str, float] = {}
        self._books: dict[str, tuple[Levels, Levels]] = {}
        self._positions: dict[tuple[str, str], float] = {}
        self._funding_epoch: dict[str, int] = {}

    # ---------------------------------------------------------------- protocol
    def connect(self, handler: EventHandler) -> None:
        self._handler = handler

    def submit(self, order: Order, now_ms: int) -> None:
        if order.client_id in self._known:
            return
        self._known.add(order.client_id)
        self._orders[order.client_id] = order
        self._seq += 1
        self._working[order.client_id] = _Working(order, now_ms + self.config.latency_ms, self._seq, order.qty)
        self._filled[order.client_id] = 0.0

    def cancel(self, client_id: str, now_ms: int) -> None:
        o = self._orders.get(client_id)
        if o is None or client_id in self._cancels:
            return
        self._seq += 1
        self._cancels[client_id] = _Cancel(client_id, o.account, o.symbol, now_ms + self.config.latency_ms, self._seq)

    # ---------------------------------------------------------------- market data
    def set_last(self, symbol: str, price: float) -> None:
        """The last trade price of ``symbol`` (reference for market fills without a book)."""
        self._last[symbol] = price

    def set_book(self, symbol: str, bids: Levels, asks: Levels) -> None:
        """Book levels best first; an empty side means no book (fills use the last trade)."""
        self._books[symbol] = (bids, asks)

    def position(self, account: str, symbol: str) -> float:
        """Net signed position the venue holds for ``account`` in ``symbol``."""
        return self._positions.get((account, symbol), 0.0)

    def is_working(self, client_id: str) -> bool:
        """Whether the order is pending arrival or resting."""
        return client_id in self._working

    def next_index(self, symbol: str, ts: I64, px: F64, i: int, j: int) -> int:
        """First trade index in ``[i, j)`` at which this venue has something to do, else ``j``."""
        k = j
        queue = self.config.fill_model == "queue"
        seg_ts = ts[i:j]
        for c in self._cancels.values():
            if c.symbol == symbol:
                k = min(k, i + int(np.searchsorted(seg_ts, c.arrive_ms, "left")))
        for w in self._working.values():
            o = w.order
            if o.symbol != symbol:
                continue
            if not w.resting:
                k = min(k, i + int(np.searchsorted(seg_ts, w.arrive_ms, "left")))
            if w.resting and o.price is not None and k > i:
                seg = px[i:k]
                if o.side > 0:
                    hit = seg <= o.price if queue else seg < o.price
                else:
                    hit = seg >= o.price if queue else seg > o.price
                if hit.any():
                    k = i + int(np.argmax(hit))
        return k

    def advance(self, symbol: str | None, now_ms: int) -> None:
        """Deliver every order and cancel that has reached the venue by ``now_ms``."""
        while True:
            due: tuple[int, int, _Working | _Cancel] | None = None
            for w in self._working.values():
                ok = (symbol is None or w.order.symbol == symbol) and not w.resting and w.arrive_ms <= now_ms
                if ok and (due is None or (w.arrive_ms, w.seq) < due[:2]):
                    due = (w.arrive_ms, w.seq, w)
            for c in self._cancels.values():
                ok = (symbol is None or c.symbol == symbol) and c.arrive_ms <= now_ms
                if ok and (due is None or (c.arrive_ms, c.seq) < due[:2]):
                    due = (c.arrive_ms, c.seq, c)
            if due is None:
                return
            t, _, item = due
            if isinstance(item, _Cancel):
                self._cancel_arrives(item, t)
            else:
                self._arrive(item, t)

    def on_trade(self, symbol: str, ts_ms: int, price: float, qty: float) -> None:
        """Apply one trade: deliver due orders, fill resting limits it trades through, then record it."""
        self.advance(symbol, ts_ms)
        queue = self.config.fill_model == "queue"
        for w in sorted((w for w in self._working.values() if w.resting and w.order.symbol == symbol),
                        key=lambda w: w.seq):
            o = w.order
            assert o.price is not None
            through = price < o.price if o.side > 0 else price > o.price
            avail = 0.0
            if through:
                avail = qty
            elif queue and price == o.price:
                avail = max(0.0, qty - w.queue_ahead)
                w.queue_ahead = max(0.0, w.queue_ahead - qty)
            if avail > 0 and o.reduce_only:
                pos = self.position(o.account, o.symbol)
                avail = min(avail, abs(pos)) if pos * o.side < 0 else 0.0
                if avail <= 0:
                    self._done(w)
                    self._emit(OrderUpdate(o.client_id, o.account, "canceled", self._filled[o.client_id],
                                           "reduce_only_flat", ts_ms))
                    continue
            if avail > 0:
                self._fill(w, min(w.remaining, avail), o.price, "maker", ts_ms)
        self._last[symbol] = price

    def on_funding(self, symbol: str, ts_ms: int, mark_price: float | None, rate: float | None) -> None:
        """Charge funding on open positions when ``ts_ms`` has crossed a settlement boundary."""
        epoch = ts_ms // self.config.funding_interval_ms
        prev = self._funding_epoch.get(symbol)
        self._funding_epoch[symbol] = epoch
        if prev is None or epoch <= prev or mark_price is None or rate is None:
            return
        settle = epoch * self.config.funding_interval_ms
        for (account, sym), pos in sorted(self._positions.items()):
            if sym == symbol and pos != 0.0:
                self._emit(FundingCharge(account, symbol, pos, mark_price, rate, pos * mark_price * rate, settle))

    # ---------------------------------------------------------------- internals
    def _emit(self, ev: VenueEvent) -> None:
        if self._handler is not None:
            self._handler(ev)

    def _arrive(self, w: _Working, t: int) -> None:
        o = w.order
        if o.reduce_only:
            pos = self.position(o.account, o.symbol)
            if pos * o.side >= 0 or abs(pos) < 1e-12:
                self._done(w)
                self._emit(OrderUpdate(o.client_id, o.account, "rejected", 0.0, "reduce_only_no_position", t))
                return
            w.remaining = min(w.remaining, abs(pos))
        if o.kind == "market":
            self._take(w, t, None)
            return
        assert o.price is not None
        crosses = self._crosses(o)
        if crosses:
            if o.post_only:
                self._done(w)
                self._emit(OrderUpdate(o.client_id, o.account, "rejected", 0.0, "post_only_would_cross", t))
                return
            self._take(w, t, o.price)
            return
        w.resting = True
        if self.config.fill_model == "queue":
            w.queue_ahead = self._level_qty(o.symbol, o.side, o.price)
        self._emit(OrderUpdate(o.client_id, o.account, "accepted", 0.0, None, t))

    def _crosses(self, o: Order) -> bool:
        """Would the limit take liquidity: at or through the opposite best, else strictly through the last trade."""
        assert o.price is not None
        book = self._books.get(o.symbol)
        levels = (book[1] if o.side > 0 else book[0]) if book is not None else []
        if levels:
            best = levels[0][0]
            return o.price >= best if o.side > 0 else o.price <= best
        last = self._last.get(o.symbol)
        return last is not None and (o.price > last if o.side > 0 else o.price < last)

    def _level_qty(self, symbol: str, side: int, price: float) -> float:
        book = self._books.get(symbol)
        if book is None:
            return 0.0
        for p, q in book[0] if side > 0 else book[1]:
            if p == price:
                return q
        return 0.0

    def _take(self, w: _Working, t: int, limit: float | None) -> None:
        """Fill ``w`` as taker now: walk the opposite book levels, else the last trade ± slippage."""
        o = w.order
        book = self._books.get(o.symbol)
        levels = (book[1] if o.side > 0 else book[0]) if book is not None else []
        slip = self.config.slippage_bps / 1e4
        if levels:
            for p, q in levels:
                if w.remaining <= 0 or (limit is not None and (p > limit if o.side > 0 else p < limit)):
                    break
                self._fill(w, min(w.remaining, q), p, "taker", t)
            if w.remaining > 0 and limit is None:
                self._fill(w, w.remaining, levels[-1][0] * (1 + o.side * slip), "taker", t)
        else:
            last = self._last.get(o.symbol)
            if last is None:
                self._done(w)
                self._emit(OrderUpdate(o.client_id, o.account, "rejected", 0.0, "no_market_data", t))
                return
            px = last * (1 + o.side * slip)
            if limit is not None:
                px = min(px, limit) if o.side > 0 else max(px, limit)
            self._fill(w, w.remaining, px, "taker", t)
        if w.remaining > 0:
            self._done(w)
            self._emit(OrderUpdate(o.client_id, o.account, "canceled", self._filled[o.client_id], "ioc_remainder", t))

    def _fill(self, w: _Working, qty: float, price: float, liquidity: Literal["maker", "taker"], t: int) -> None:
        o = w.order
        if qty <= 0:
            return
        w.remaining = max(0.0, w.remaining - qty)
        if w.remaining < 1e-12:
            w.remaining = 0.0
        self._filled[o.client_id] += qty
        rate = self.rates.maker if liquidity == "maker" else self.rates.taker
        key = (o.account, o.symbol)
        self._positions[key] = self._positions.get(key, 0.0) + o.side * qty
        if w.remaining == 0.0:
            self._done(w)
        self._emit(Fill(o.client_id, o.account, o.symbol, o.side, qty, price, qty * price * rate, liquidity,
                        w.remaining, t))

    def _cancel_arrives(self, c: _Cancel, t: int) -> None:
        """Cancel a working order, or answer ``cancel_rejected`` when it already finished (a lost race)."""
        del self._cancels[c.client_id]
        w = self._working.get(c.client_id)
        if w is None:
            self._emit(OrderUpdate(c.client_id, c.account, "cancel_rejected", self._filled[c.client_id],
                                   "not_working", t))
            return
        self._done(w)
        self._emit(OrderUpdate(c.client_id, c.account, "canceled", self._filled[c.client_id], None, t))

    def _done(self, w: _Working) -> None:
        self._working.pop(w.order.client_id, None)
