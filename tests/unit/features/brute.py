"""Independent brute-force feature computations used as references (exact rational arithmetic)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class T:
    ts: int
    price: str  # decimal strings, as Binance sends them
    qty: str
    sell: bool


def window(trades: list[T], t0: int, t1: int) -> list[T]:
    return [x for x in trades if t0 <= x.ts < t1]


def cvd(trades: list[T], t0: int, t1: int) -> Fraction:
    return sum((Fraction(x.qty) * (-1 if x.sell else 1) for x in window(trades, t0, t1)), Fraction(0))


def cvd_usd(trades: list[T], t0: int, t1: int) -> Fraction:
    return sum(
        (Fraction(x.price) * Fraction(x.qty) * (-1 if x.sell else 1) for x in window(trades, t0, t1)), Fraction(0)
    )


def vwap(trades: list[T], t0: int, t1: int) -> Fraction | None:
    w = window(trades, t0, t1)
    q = sum((Fraction(x.qty) for x in w), Fraction(0))
    return None if q == 0 else sum((Fraction(x.price) * Fraction(x.qty) for x in w), Fraction(0)) / q


def volumes(trades: list[T], t0: int, t1: int) -> tuple[Fraction, Fraction]:
    w = window(trades, t0, t1)
    return (sum((Fraction(x.qty) for x in w if not x.sell), Fraction(0)),
            sum((Fraction(x.qty) for x in w if x.sell), Fraction(0)))


def quantile(trades: list[T], t0: int, t1: int, p: float) -> Fraction | None:
    qs = sorted(Fraction(x.qty) for x in window(trades, t0, t1))
    return qs[min(int(len(qs) * p), len(qs) - 1)] if qs else None


def bars(trades: list[tuple[int, float]], period: int) -> list[tuple[int, float, float, float, float]]:
    """OHLC bars (open time, o, h, l, c) from (ts, price) trades; empty periods are flat bars."""
    out: list[tuple[int, float, float, float, float]] = []
    for ts, p in trades:
        b = ts - ts % period
        if out and out[-1][0] == b:
            o, h, lo, _ = out[-1][1:]
            out[-1] = (b, o, max(h, p), min(lo, p), p)
        else:
            while out and out[-1][0] + period < b:
                c = out[-1][4]
                out.append((out[-1][0] + period, c, c, c, c))
            out.append((b, p, p, p, p))
    return out


def wilder_atr(closed: list[tuple[int, float, float, float, float]], n: int) -> float | None:
    """Textbook Wilder ATR: mean of the first n true ranges, then (prev × (n−1) + TR) / n."""
    trs = []
    prev_c = None
    for _, _, h, lo, c in closed:
        trs.append(h - lo if prev_c is None else max(h - lo, abs(h - prev_c), abs(lo - prev_c)))
        prev_c = c
    if len(trs) < n:
        return None
    atr = sum(trs[:n]) / n
    for tr in trs[n:]:
        atr = (atr * (n - 1) + tr) / n
    return atr
