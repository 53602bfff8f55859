"""The trade tape: a columnar buffer of trades with integer cumulative sums.

Quantities are stored as integer lots (``qty × 10^qty_decimals``) and notionals as integer
tick-lots (``price × 10^price_decimals × lots``), so every window sum is a difference of two
int64 cumulative sums: exact, O(log n) per query, O(1) amortised per trade, and free of the
float drift of the predecessor's running sums (digest §3.1, P1-2). Precision is taken from the
symbol table or inferred from the data, and grows (exactly, by powers of ten) if a later trade
carries more decimals.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
MAX_DECIMALS = 10
_INT_LIMIT = 2**62


def needed_decimals(values: F64, start: int = 0) -> int:
    """Smallest decimal count >= ``start`` at which every value is an integer multiple of 10^-d."""
    d = start
    while d < MAX_DECIMALS:
        scaled = values * (10.0**d)
        if np.all(np.abs(scaled - np.rint(scaled)) <= 16 * np.spacing(np.abs(scaled))):
            return d
        d += 1
    return MAX_DECIMALS


class TradeTape:
    """Trades of one symbol in arrival order, with exact window sums over exchange time.

    Windows are half-open ``[t - w, t)``. Timestamps used for indexing are the running maximum
    of the trades' exchange times, so a (rare) late print is counted at the time it arrived.
    """

    def __init__(
        self, price_decimals: int | None = None, qty_decimals: int | None = None, capacity: int = 1 << 14
    ) -> None:
        self.price_decimals = price_decimals
        self.qty_decimals = qty_decimals
        self.start = 0
        self.n = 0
        self.base = 0  # trades discarded by compaction: global index = base + array index
        self.time_regressions = 0
        self.first_ts: int | None = None
        self._alloc(capacity)

    def _alloc(self, cap: int) -> None:
        self.ts: I64 = np.zeros(cap, np.int64)
        self.price: F64 = np.zeros(cap, np.float64)
        self.qty: F64 = np.zeros(cap, np.float64)
        self.sell: npt.NDArray[np.bool_] = np.zeros(cap, np.bool_)
        self.trade_id: I64 = np.zeros(cap, np.int64)
        self.recv_ns: I64 = np.zeros(cap, np.int64)
        self.lots: I64 = np.zeros(cap, np.int64)
        # cumulative sums: index k holds the sum over [0, k)
        self.c_buy: I64 = np.zeros(cap + 1, np.int64)
        self.c_sell: I64 = np.zeros(cap + 1, np.int64)
        self.c_buy_not: I64 = np.zeros(cap + 1, np.int64)
        self.c_sell_not: I64 = np.zeros(cap + 1, np.int64)

    @property
    def capacity(self) -> int:
        return int(self.ts.shape[0])

    def __len__(self) -> int:
        return self.n - self.start

    @property
    def last_ts(self) -> int | None:
        return int(self.ts[self.n - 1]) if self.n > self.start else None

    @property
    def last_price(self) -> float | None:
        return float(self.price[self.n - 1]) if self.n > self.start else None

    # --------------------------------------------------------------- scales
    def lot_scale(self) -> float:
        return 10.0 ** (self.qty_decimals or 0)

    def notional_scale(self) -> float:
        return 10.0 ** ((self.qty_decimals or 0) + (self.price_decimals or 0))

    def _rescale(self, new_pd: int, new_qd: int) -> None:
        """Grow precision: multiply stored integers by powers of ten (exact)."""
        fq = 10 ** (new_qd - (self.qty_decimals or 0))
        fn = fq * 10 ** (new_pd - (self.price_decimals or 0))
        s, e = self.start, self.n
        if fq != 1:
            self.lots[s:e] *= fq
            self.c_buy[s : e + 1] *= fq
            self.c_sell[s : e + 1] *= fq
        if fn != 1:
            self.c_buy_not[s : e + 1] *= fn
            self.c_sell_not[s : e + 1] *= fn
        self.price_decimals, self.qty_decimals = new_pd, new_qd

    # --------------------------------------------------------------- append
    def append(
        self, ts: I64, price: F64, qty: F64, sell: npt.NDArray[np.bool_], trade_id: I64, recv_ns: I64
    ) -> None:
        """Append a batch of trades (already validated: finite, positive)."""
        m = int(ts.shape[0])
        if m == 0:
            return
        pd = needed_decimals(price, self.price_decimals or 0)
        qd = needed_decimals(qty, self.qty_decimals or 0)
        if self.price_decimals is None:
            self.price_decimals = pd
        if self.qty_decimals is None:
            self.qty_decimals = qd
        if pd > (self.price_decimals or 0) or qd > (self.qty_decimals or 0):
            self._rescale(max(pd, self.price_decimals or 0), max(qd, self.qty_decimals or 0))
        self._ensure_room(m)
        s, e = self.n, self.n + m
        prev = int(self.ts[s - 1]) if s > self.start else None
        mono = np.maximum.accumulate(ts)
        if prev is not None and mono[0] < prev:
            mono = np.maximum(mono, prev)
        regress = int(np.count_nonzero(mono != ts))
        self.time_regressions += regress
        self.ts[s:e] = mono
        self.price[s:e] = price
        self.qty[s:e] = qty
        self.sell[s:e] = sell
        self.trade_id[s:e] = trade_id
        self.recv_ns[s:e] = recv_ns
        lots = np.rint(qty * (10.0 ** (self.qty_decimals or 0))).astype(np.int64)
        ticks = np.rint(price * (10.0 ** (self.price_decimals or 0))).astype(np.int64)
        self.lots[s:e] = lots
        notional = ticks * lots
        buy_lots = np.where(sell, 0, lots)
        sell_lots = lots - buy_lots
        buy_not = np.where(sell, 0, notional)
        sell_not = notional - buy_not
        np.cumsum(buy_lots, out=self.c_buy[s + 1 : e + 1])
        self.c_buy[s + 1 : e + 1] += self.c_buy[s]
        np.cumsum(sell_lots, out=self.c_sell[s + 1 : e + 1])
        self.c_sell[s + 1 : e + 1] += self.c_sell[s]
        np.cumsum(buy_not, out=self.c_buy_not[s + 1 : e + 1])
        self.c_buy_not[s + 1 : e + 1] += self.c_buy_not[s]
        np.cumsum(sell_not, out=self.c_sell_not[s + 1 : e + 1])
        self.c_sell_not[s + 1 : e + 1] += self.c_sell_not[s]
        if int(self.c_buy_not[e]) > _INT_LIMIT or int(self.c_sell_not[e]) > _INT_LIMIT:
            raise OverflowError(
                "notional sum exceeds int64 range; reduce retention or price/qty decimals for this symbol"
            )
        if self.first_ts is None:
            self.first_ts = int(mono[0])
        self.n = e

    def _ensure_room(self, m: int) -> None:
        if self.n + m <= self.capacity:
            return
        live = self.n - self.start
        cap = self.capacity
        while live + m > cap // 2:
            cap *= 2
        old = (self.ts, self.price, self.qty, self.sell, self.trade_id, self.recv_ns, self.lots)
        olds = (self.c_buy, self.c_sell, self.c_buy_not, self.c_sell_not)
        s, e = self.start, self.n
        if cap != self.capacity:
            self._alloc(cap)
        new = (self.ts, self.price, self.qty, self.sell, self.trade_id, self.recv_ns, self.lots)
        for dst, src in zip(new, old, strict=True):
            dst[:live] = src[s:e]
        news = (self.c_buy, self.c_sell, self.c_buy_not, self.c_sell_not)
        for dst, src in zip(news, olds, strict=True):
            dst[: live + 1] = src[s : e + 1] - src[s]
        self.base += s
        self.start, self.n = 0, live

    def release_before(self, index: int) -> None:
        """Forget trades before array ``index`` (space is reclaimed at the next growth)."""
        self.start = max(self.start, min(index, self.n))

    # --------------------------------------------------------------- queries
    def index(self, ts_ms: int) -> int:
        """Absolute index of the first trade with time >= ``ts_ms``."""
        return self.start + int(np.searchsorted(self.ts[self.start : self.n], ts_ms, "left"))

    def span(self, t0: int, t1: int) -> tuple[int, int]:
        """Absolute index range of trades with ``t0 <= ts < t1``."""
        seg = self.ts[self.start : self.n]
        i, j = np.searchsorted(seg, (t0, t1), "left")
        return self.start + int(i), self.start + int(j)

    def sums(self, t0: int, t1: int) -> tuple[int, int, int, int, int]:
        """Exact integer sums over ``[t0, t1)``: buy lots, sell lots, buy/sell notional, count."""
        i, j = self.span(t0, t1)
        return (
            int(self.c_buy[j] - self.c_buy[i]),
            int(self.c_sell[j] - self.c_sell[i]),
            int(self.c_buy_not[j] - self.c_buy_not[i]),
            int(self.c_sell_not[j] - self.c_sell_not[i]),
            j - i,
        )

    def cvd(self, t0: int, t1: int) -> float:
        """Taker buy − taker sell quantity (coin) over ``[t0, t1)``."""
        i, j = self.span(t0, t1)
        d = (self.c_buy[j] - self.c_buy[i]) - (self.c_sell[j] - self.c_sell[i])
        return int(d) / self.lot_scale()
