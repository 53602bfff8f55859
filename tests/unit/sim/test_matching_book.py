"""A small real price-level book implementing ``BookAccess``, and the tests of that book itself.

The matching-engine tests trade against it: takers consume levels and print one public trade per
level, exactly as the simulator's exchange does, so the engine sees the same callbacks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from arbray.clock import ManualClock

pytestmark = pytest.mark.unit

TradeFn = Callable[[str, int, float, float, bool], None]
FundingFn = Callable[[str, int, float, float], None]


@dataclass(frozen=True)
class Spec:
    tick_size: float
    step_size: float
    min_notional: float = 5.0


class LevelBook:
    """Bids and asks per symbol as {ticks: lots}; trades print per consumed level."""

    def __init__(self, specs: dict[str, Spec], clock: ManualClock | None = None) -> None:
        self.specs = specs
        self.symbols = tuple(specs)
        self.clock = clock or ManualClock(1_700_000_000_000)
        self.bids: dict[str, dict[int, int]] = {s: {} for s in specs}
        self.asks: dict[str, dict[int, int]] = {s: {} for s in specs}
        self.marks: dict[str, float] = {}
        self._trade_fns: list[TradeFn] = []
        self._funding_fns: list[FundingFn] = []
        self.prints: list[tuple[str, float, float, bool]] = []

    # -- helpers for tests
    def _t(self, symbol: str, price: float) -> int:
        return round(price / self.specs[symbol].tick_size)

    def _l(self, symbol: str, qty: float) -> int:
        return round(qty / self.specs[symbol].step_size)

    def _p(self, symbol: str, ticks: int) -> float:
        return float(Decimal(str(self.specs[symbol].tick_size)) * ticks)

    def _q(self, symbol: str, lots: int) -> float:
        return float(Decimal(str(self.specs[symbol].step_size)) * lots)

    def level(self, symbol: str, is_bid: bool, price: float, qty: float) -> None:
        side = self.bids[symbol] if is_bid else self.asks[symbol]
        t = self._t(symbol, price)
        if qty <= 0:
            side.pop(t, None)
        else:
            side[t] = self._l(symbol, qty)

    def ladder(self, symbol: str, bid: float, ask: float, qty: float, levels: int = 5) -> None:
        """``levels`` price levels of ``qty`` on each side from ``bid``/``ask`` outwards."""
        tick = self.specs[symbol].tick_size
        for i in range(levels):
            self.level(symbol, True, bid - i * tick, qty)
            self.level(symbol, False, ask + i * tick, qty)
        self.marks.setdefault(symbol, (bid + ask) / 2)

    def print_trade(self, symbol: str, price: float, qty: float, is_buyer_maker: bool) -> None:
        """A public trade that does not change the displayed book (e.g. against hidden liquidity)."""
        self.prints.append((symbol, price, qty, is_buyer_maker))
        for fn in list(self._trade_fns):
            fn(symbol, self.clock.now_ms(), price, qty, is_buyer_maker)

    def settle(self, symbol: str, rate: float) -> None:
        for fn in list(self._funding_fns):
            fn(symbol, self.clock.now_ms(), rate, self.mark_price(symbol))

    # -- BookAccess
    def now_ms(self) -> int:
        return self.clock.now_ms()

    def spec(self, symbol: str) -> Spec:
        return self.specs[symbol]

    def best_bid(self, symbol: str) -> tuple[float, float] | None:
        b = self.bids[symbol]
        if not b:
            return None
        t = max(b)
        return self._p(symbol, t), self._q(symbol, b[t])

    def best_ask(self, symbol: str) -> tuple[float, float] | None:
        a = self.asks[symbol]
        if not a:
            return None
        t = min(a)
        return self._p(symbol, t), self._q(symbol, a[t])

    def depth(self, symbol: str, limit: int) -> dict[str, Any]:
        bids = sorted(self.bids[symbol].items(), reverse=True)[:limit]
        asks = sorted(self.asks[symbol].items())[:limit]
        fmt = lambda t, q: [str(Decimal(str(self.specs[symbol].tick_size)) * t),  # noqa: E731
                            str(Decimal(str(self.specs[symbol].step_size)) * q)]
        return {"lastUpdateId": 1, "bids": [fmt(t, q) for t, q in bids], "asks": [fmt(t, q) for t, q in asks]}

    def take(self, symbol: str, is_buy: bool, qty: float, limit_price: float | None) -> list[tuple[float, float]]:
        side = self.asks[symbol] if is_buy else self.bids[symbol]
        want = self._l(symbol, qty)
        limit = None if limit_price is None else self._t(symbol, limit_price)
        fills: list[tuple[float, float]] = []
        for t in sorted(side, reverse=not is_buy):
            if want <= 0 or (limit is not None and (t > limit if is_buy else t < limit)):
                break
            n = min(want, side[t])
            side[t] -= n
            if side[t] == 0:
                del side[t]
            want -= n
            fills.append((self._p(symbol, t), self._q(symbol, n)))
        for p, q in fills:
            self.print_trade(symbol, p, q, not is_buy)
        return fills

    def on_trade(self, fn: TradeFn) -> None:
        self._trade_fns.append(fn)

    def on_funding(self, fn: FundingFn) -> None:
        self._funding_fns.append(fn)

    def mark_price(self, symbol: str) -> float:
        if symbol in self.marks:
            return self.marks[symbol]
        bb, ba = self.best_bid(symbol), self.best_ask(symbol)
        if bb and ba:
            return (bb[0] + ba[0]) / 2
        raise KeyError(symbol)


BTC = "BTCUSDT"


def test_take_walks_levels_up_to_the_limit_and_prints_each() -> None:
    book = LevelBook({BTC: Spec(0.1, 0.001)})
    book.ladder(BTC, 100.0, 100.1, 1.0, levels=3)
    fills = book.take(BTC, True, 2.5, 100.2)
    assert fills == [(100.1, 1.0), (100.2, 1.0)]
    assert book.best_ask(BTC) == (100.3, 1.0)
    assert [p[1:] for p in book.prints] == [(100.1, 1.0, False), (100.2, 1.0, False)]
    assert book.take(BTC, False, 0.5, None) == [(100.0, 0.5)]
    assert book.best_bid(BTC) == (100.0, 0.5)


def test_depth_payload_is_best_first_strings() -> None:
    book = LevelBook({BTC: Spec(0.1, 0.001)})
    book.ladder(BTC, 100.0, 100.1, 0.25, levels=2)
    d = book.depth(BTC, 5)
    assert d["bids"] == [["100.0", "0.250"], ["99.9", "0.250"]]
    assert d["asks"][0] == ["100.1", "0.250"]
