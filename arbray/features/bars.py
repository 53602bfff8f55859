"""Fixed-period OHLC bars built from trades, with Wilder's ATR and its percentile.

ATR follows Wilder: TR = max(H − L, |H − prevC|, |L − prevC|) (the first bar's TR is H − L), the
first ATR is the mean of the first ``length`` TRs, then ATR = (ATR × (length − 1) + TR) / length.
It is None until ``length`` TRs exist (the predecessor seeded with one TR and used only 14,
digest §3.3). The ATR percentile is sampled once per closed bar, never per read (P2-5), as the
share of the last ``history`` samples that are <= the current ATR.

A period without trades becomes a flat bar at the previous close (Binance kline semantics). A gap
longer than ``max_gap_bars`` is a data outage: the series restarts rather than inventing bars.

Each bar also carries its taker-buy volume (base asset, Binance kline field 9) when the trades that
built it said which side was the taker (``add_trades(..., is_buyer_maker=...)``) or the kline carried
it; otherwise it is None. ``keep`` closed bars are kept for readers such as the screener's factors.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Bar:
    open_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    taker_buy_volume: float | None = None  # None: the source did not say which side was the taker


class BarSeries:
    """Bars of ``period_ms`` with ATR(``length``) and an ATR percentile over ``history`` bars.

    ``keep`` closed bars are retained (default ``max(2 × length, 64)``, enough for the ATR's readers).
    """

    def __init__(self, period_ms: int, length: int = 14, history: int = 288, max_gap_bars: int = 12,
                 keep: int | None = None) -> None:
        if keep is not None and keep < 1:
            raise ValueError("keep must be >= 1")
        self.period_ms = period_ms
        self.length = length
        self.max_gap_bars = max_gap_bars
        self.closed: deque[Bar] = deque(maxlen=keep if keep is not None else max(2 * length, 64))
        self.atr: float | None = None
        self.atr_samples: deque[float] = deque(maxlen=history)
        self.restarts = 0
        self._seed_trs: list[float] = []
        self._prev_close: float | None = None
        # the open bar
        self._ob_start: int | None = None
        self._o = self._h = self._l = self._c = 0.0
        self._v = 0.0
        self._tb: float | None = None  # the open bar's taker-buy volume (None: unknown)

    # ------------------------------------------------------------ closing bars
    def _close_bar(self, bar: Bar) -> None:
        pc = self._prev_close
        tr = bar.high - bar.low if pc is None else max(bar.high - bar.low, abs(bar.high - pc), abs(bar.low - pc))
        self._prev_close = bar.close
        self.closed.append(bar)
        if self.atr is None:
            self._seed_trs.append(tr)
            if len(self._seed_trs) == self.length:
                self.atr = sum(self._seed_trs) / self.length
                self._seed_trs = []
        else:
            self.atr = (self.atr * (self.length - 1) + tr) / self.length
        if self.atr is not None:
            self.atr_samples.append(self.atr)

    def _restart(self) -> None:
        self.restarts += 1
        self.closed.clear()
        self.atr = None
        self.atr_samples.clear()
        self._seed_trs = []
        self._prev_close = None
        self._ob_start = None

    def _fill_gap(self, until_start: int) -> None:
        """Close flat bars for empty periods between the last closed bar and ``until_start``."""
        if not self.closed or self._prev_close is None:
            return
        nxt = self.closed[-1].open_ms + self.period_ms
        gap = (until_start - nxt) // self.period_ms
        if gap <= 0:
            return
        if gap > self.max_gap_bars:
            self._restart()
            return
        c = self._prev_close
        for k in range(gap):
            self._close_bar(Bar(nxt + k * self.period_ms, c, c, c, c, 0.0, 0.0))

    def _advance_to(self, bar_start: int) -> None:
        """Close the open bar (if older) and any empty bars before ``bar_start``."""
        if self._ob_start is not None:
            if bar_start <= self._ob_start:
                return
            self._close_bar(Bar(self._ob_start, self._o, self._h, self._l, self._c, self._v, self._tb))
            self._ob_start = None
        self._fill_gap(bar_start)

    def close_until(self, ts_ms: int) -> None:
        """Close every bar that ended at or before ``ts_ms`` (called at evaluation time)."""
        self._advance_to(ts_ms - ts_ms % self.period_ms)

    # ----------------------------------------------------------------- inputs
    def add_trades(
        self, ts: npt.NDArray[np.int64], price: npt.NDArray[np.float64], qty: npt.NDArray[np.float64],
        is_buyer_maker: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        """Fold a time-ordered batch of trades into bars; ``is_buyer_maker`` (per trade) adds the
        taker-buy volume (trades whose buyer was the taker), else the bars' taker-buy volume is unknown."""
        n = int(ts.shape[0])
        if n == 0:
            return
        buy_qty = None if is_buyer_maker is None else np.where(is_buyer_maker, 0.0, qty)
        first_bar = int(ts[0]) - int(ts[0]) % self.period_ms
        if first_bar == self._ob_start and int(ts[-1]) < first_bar + self.period_ms:
            # the common live/backtest case: the whole batch falls inside the open bar
            self._h = max(self._h, float(price.max()))
            self._l = min(self._l, float(price.min()))
            self._c = float(price[-1])
            self._v += float(qty.sum())
            self._tb = None if buy_qty is None or self._tb is None else self._tb + float(buy_qty.sum())
            return
        bar_id = ts - ts % self.period_ms
        cuts = np.flatnonzero(bar_id[1:] != bar_id[:-1]) + 1
        starts = np.concatenate(([0], cuts))
        ends = np.concatenate((cuts, [n]))
        highs = np.maximum.reduceat(price, starts)
        lows = np.minimum.reduceat(price, starts)
        vols = np.add.reduceat(qty, starts)
        buys = None if buy_qty is None else np.add.reduceat(buy_qty, starts)
        for g in range(starts.shape[0]):
            b = int(bar_id[starts[g]])
            if self._ob_start is not None and b < self._ob_start:
                b = self._ob_start  # a late print: fold it into the open bar
            if self._ob_start is None or b > self._ob_start:
                self._advance_to(b)
            o, h, lo, c = float(price[starts[g]]), float(highs[g]), float(lows[g]), float(price[ends[g] - 1])
            tb = None if buys is None else float(buys[g])
            if self._ob_start is None:
                self._ob_start = b
                self._o, self._h, self._l, self._c, self._v = o, h, lo, c, float(vols[g])
                self._tb = tb
            else:
                self._h = max(self._h, h)
                self._l = min(self._l, lo)
                self._c = c
                self._v += float(vols[g])
                self._tb = None if tb is None or self._tb is None else self._tb + tb

    def add_closed_bar(self, bar: Bar) -> bool:
        """Append a closed kline (warm-up or stream) if it is newer than every bar seen so far."""
        last = self.closed[-1].open_ms if self.closed else None
        if (last is not None and bar.open_ms <= last) or (self._ob_start is not None and bar.open_ms >= self._ob_start):
            return False
        if last is not None and bar.open_ms - last > (self.max_gap_bars + 1) * self.period_ms:
            self._restart()
        self._close_bar(bar)
        return True

    # ---------------------------------------------------------------- queries
    def atr_percentile(self) -> float | None:
        """Percent of the last ``history`` ATR samples <= the current ATR (None below 10 samples)."""
        if self.atr is None or len(self.atr_samples) < 10:
            return None
        cur = self.atr
        return 100.0 * sum(1 for x in self.atr_samples if x <= cur) / len(self.atr_samples)
