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


def to_units(values: F64, start: int = 0) -> tuple[int, I64]:
    """The smallest decimal count ``d >= start`` at which every value is an integer number of
    10^-d units, and those integers.

    Exact test: ``rint(x·10^d) / 10^d == x`` holds exactly when ``x`` is the double nearest to a
    decimal with at most ``d`` digits (division by a power of ten is correctly rounded), which is
    what ``float()`` of an exchange's decimal string gives.
    """
    d = start
    while True:
        scale = 10.0**d
        units = np.rint(values * scale)
        if d >= MAX_DECIMALS or np.array_equal(units / scale, values):
            return d, units.astype(np.int64)
        d += 1


def needed_decimals(values: F64, start: int = 0) -> int:
    """Smallest decimal count >= ``start`` at which every value is an integer multiple of 10^-d."""
    return to_units(values, start)[0]


class TradeTape:
    """Trades of one symbol in arrival order, with exact window sums over exchange time.

    Windows are half-open ``[t - w, t)``. Timestamps used for indexing are the running maximum
    of the trades' exchange times, so a (rare) late print is counted at the time it arrived.
    """

    def __init__(
        self,
        price_decimals: int | None = None,
        qty_decimals: int | None = None,
        capacity: int = 1 << 14,
        whale_usd: float = float("inf"),
    ) -> None:
        self.price_decimals = price_decimals
        self.qty_decimals = qty_decimals
        self.whale_usd = whale_usd  # trades of at least this notional also go into the whale sums
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
        # cumulative sums, index k = sum over [0, k): all lots, signed lots (+buy −sell), and the
        # same for notional; buy = (all + signed) / 2 and sell = (all − signed) / 2 exactly
        self.c_lots: I64 = np.zeros(cap + 1, np.int64)
        self.c_signed: I64 = np.zeros(cap + 1, np.int64)
        self.c_not: I64 = np.zeros(cap + 1, np.int64)
        self.c_signed_not: I64 = np.zeros(cap + 1, np.int64)
        self.c_whale_not: I64 = np.zeros(cap + 1, np.int64)  # notional of trades >= whale_usd
        self.c_whale_signed_not: I64 = np.zeros(cap + 1, np.int64)
        self.c_whale_n: I64 = np.zeros(cap + 1, np.int64)

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
            self.c_lots[s : e + 1] *= fq
            self.c_signed[s : e + 1] *= fq
        if fn != 1:
            for cum in (self.c_not, self.c_signed_not, self.c_whale_not, self.c_whale_signed_not):
                cum[s : e + 1] *= fn
        self.price_decimals, self.qty_decimals = new_pd, new_qd

    # --------------------------------------------------------------- append
    def append(
        self, ts: I64, price: F64, qty: F64, sell: npt.NDArray[np.bool_], trade_id: I64, recv_ns: I64
    ) -> None:
        """Append a batch of trades (already validated: finite, positive)."""
        m = int(ts.shape[0])
        if m == 0:
            return
        pd, ticks = to_units(price, self.price_decimals or 0)
        qd, lots = to_units(qty, self.qty_decimals or 0)
        cur_pd = pd if self.price_decimals is None else self.price_decimals
        cur_qd = qd if self.qty_decimals is None else self.qty_decimals
        self.price_decimals, self.qty_decimals = cur_pd, cur_qd
        if pd > cur_pd or qd > cur_qd:  # this batch carries more decimals: grow precision exactly
            self._rescale(max(pd, cur_pd), max(qd, cur_qd))
            ticks = to_units(price, self.price_decimals)[1]
            lots = to_units(qty, self.qty_decimals)[1]
        self._ensure_room(m)
        s, e = self.n, self.n + m
        mono = np.maximum.accumulate(ts)
        if s > self.start and mono[0] < self.ts[s - 1]:
            mono = np.maximum(mono, self.ts[s - 1])
        if not np.array_equal(mono, ts):
            self.time_regressions += int(np.count_nonzero(mono != ts))
        self.ts[s:e] = mono
        self.price[s:e] = price
        self.qty[s:e] = qty
        self.sell[s:e] = sell
        self.trade_id[s:e] = trade_id
        self.recv_ns[s:e] = recv_ns
        self.lots[s:e] = lots
        notional = ticks * lots
        signed_not = np.where(sell, -notional, notional)
        whale = notional >= self.whale_usd * self.notional_scale()
        for cum, values in (
            (self.c_lots, lots),
            (self.c_signed, np.where(sell, -lots, lots)),
            (self.c_not, notional),
            (self.c_signed_not, signed_not),
            (self.c_whale_not, np.where(whale, notional, 0)),
            (self.c_whale_signed_not, np.where(whale, signed_not, 0)),
            (self.c_whale_n, whale),
        ):
            cum[s + 1 : e + 1] = values
            np.cumsum(cum[s : e + 1], out=cum[s : e + 1])  # cum[s] is the running base
        if int(self.c_not[e]) > _INT_LIMIT:
            raise OverflowError(
                "notional sum exceeds int64 range; reduce retention or price/qty decimals for this symbol"
            )
        if self.first_ts is None:
            self.first_ts = int(mono[0])
        self.n = e

    def _cums(self) -> tuple[I64, ...]:
        return (self.c_lots, self.c_signed, self.c_not, self.c_signed_not, self.c_whale_not,
                self.c_whale_signed_not, self.c_whale_n)

    def _ensure_room(self, m: int) -> None:
        if self.n + m <= self.capacity:
            return
        live = self.n - self.start
        cap = self.capacity
        while live + m > cap // 2:
            cap *= 2
        old = (self.ts, self.price, self.qty, self.sell, self.trade_id, self.recv_ns, self.lots)
        olds = self._cums()
        s, e = self.start, self.n
        if cap != self.capacity:
            self._alloc(cap)
        new = (self.ts, self.price, self.qty, self.sell, self.trade_id, self.recv_ns, self.lots)
        for dst, src in zip(new, old, strict=True):
            dst[:live] = src[s:e]
        news = self._cums()
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
        lots = int(self.c_lots[j] - self.c_lots[i])
        signed = int(self.c_signed[j] - self.c_signed[i])
        nt = int(self.c_not[j] - self.c_not[i])
        signed_nt = int(self.c_signed_not[j] - self.c_signed_not[i])
        return (lots + signed) // 2, (lots - signed) // 2, (nt + signed_nt) // 2, (nt - signed_nt) // 2, j - i

    def range_sums(self, t0: I64, t1: I64) -> tuple[I64, I64, I64, I64, I64]:
        """``sums`` for many ranges ``[t0[k], t1[k])`` in one vectorised pass: all lots, signed
        lots (buy − sell), all notional, signed notional, and trade counts, as int64 arrays."""
        k = t0.shape[0]
        idx = self.start + np.searchsorted(self.ts[self.start : self.n], np.concatenate((t0, t1)), "left")
        i, j = idx[:k], idx[k:]
        return (
            self.c_lots[j] - self.c_lots[i],
            self.c_signed[j] - self.c_signed[i],
            self.c_not[j] - self.c_not[i],
            self.c_signed_not[j] - self.c_signed_not[i],
            j - i,
        )

    def whale_sums(self, t0: int, t1: int) -> tuple[int, int, int]:
        """Over ``[t0, t1)``, trades of at least ``whale_usd``: notional, signed notional, count."""
        i, j = self.span(t0, t1)
        return (
            int(self.c_whale_not[j] - self.c_whale_not[i]),
            int(self.c_whale_signed_not[j] - self.c_whale_signed_not[i]),
            int(self.c_whale_n[j] - self.c_whale_n[i]),
        )

    def cvd(self, t0: int, t1: int) -> float:
        """Taker buy − taker sell quantity (coin) over ``[t0, t1)``."""
        i, j = self.span(t0, t1)
        return int(self.c_signed[j] - self.c_signed[i]) / self.lot_scale()
