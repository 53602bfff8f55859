"""The peerbench 30-minute CVD sign-flip rule run through arbray's ``TradeTape``.

Trades stream into the tape in batches (as the replay feeds ``TradeBatch``es); every 15 s
boundary ``B`` with ``ts[0] < B <= ts[-1]`` is evaluated once the trades before it are in the
tape, from the tape's exact integer cumulative sums over ``[B − 30 min, B)``, so no float drift
can flip a sign. An order is sent whenever the sign of the CVD differs from the previous non-zero
sign: BUY for +1, SELL for −1 (peerbench README, "The shared simple strategy rule").
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from arbray.features.trades import TradeTape

NS_PER_MS = 1_000_000
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class CvdRuleResult:
    """Decisions as ``(boundary_ns, side)`` rows, the counts and the replay time."""

    decisions: I64
    events: int
    boundaries: int
    run_s: float


def load_trades(path: str) -> tuple[I64, F64, F64, Bools]:
    """``ts_ns``, ``price``, ``qty`` and ``is_buyer_maker`` columns of a peerbench ``.npz``."""
    with np.load(path) as d:
        return (np.asarray(d["ts_ns"], np.int64), np.asarray(d["price"], np.float64),
                np.asarray(d["qty"], np.float64), np.asarray(d["is_buyer_maker"], np.bool_))


def run_cvd_rule(ts_ns: I64, price: F64, qty: F64, is_buyer_maker: Bools, every_ms: int = 15_000,
                 window_ms: int = 30 * 60_000, batch: int = 1 << 16, qty_decimals: int = 3,
                 price_decimals: int = 1) -> CvdRuleResult:
    """Replay the trades in ``batch``-sized pieces and decide at every boundary that has fallen due."""
    t0 = time.perf_counter()
    n = int(ts_ns.shape[0])
    first, last = int(ts_ns[0]) // NS_PER_MS, int(ts_ns[-1]) // NS_PER_MS
    bounds = np.arange(first - first % every_ms + every_ms, last + 1, every_ms, dtype=np.int64)
    due_at = np.searchsorted(ts_ns, bounds * NS_PER_MS, "left")  # due when its first trade arrives
    tape = TradeTape(price_decimals, qty_decimals, capacity=1 << 18)
    no_ids = np.zeros(min(batch, n), np.int64)  # the rule needs no trade ids or receive times
    out: list[tuple[int, int]] = []
    prev = 0
    b = 0
    for a in range(0, n, batch):
        e = min(a + batch, n)
        ts = ts_ns[a:e] // NS_PER_MS
        tape.append(ts, price[a:e], qty[a:e], is_buyer_maker[a:e], no_ids[: e - a], no_ids[: e - a])
        # boundaries due on a trade of this batch: their windows end before that trade, so the
        # trades after it, already in the tape, are outside every window evaluated here
        k = int(np.searchsorted(due_at, e, "left"))
        if k > b:
            _, signed, _, _, _ = tape.range_sums(bounds[b:k] - window_ms, bounds[b:k])
            for bnd, s in zip(bounds[b:k].tolist(), np.sign(signed).tolist(), strict=True):
                if s != 0 and s != prev:
                    out.append((bnd * NS_PER_MS, s))
                    prev = s
            b = k
        tape.release_before(tape.index(int(ts[-1]) - window_ms - every_ms))
    run_s = time.perf_counter() - t0
    return CvdRuleResult(np.array(out, np.int64).reshape(-1, 2), n, int(bounds.shape[0]), run_s)
