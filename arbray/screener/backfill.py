"""REST backfill of a universe: klines, open-interest history and funding through ``BinanceRest``.

Every request goes through the client's ``RateLimiter`` (priced by ``arbray.binance.weights``: klines
``limit`` 100–499 cost weight 2, ``openInterestHist`` draws on the statistics endpoints' own 1,000
requests / 5 min, ``fundingRate`` weight 1), so a backfill never exceeds 2,400 weight/min however many
requests run at once (``concurrency``). ``BackfillReport`` says what it cost: requests, units per pool
(as this client charged them, retries included), time spent waiting for the limiter, the exchange's
own ``X-MBX-USED-WEIGHT-1M``, and failures and rejected rows by reason. ``progress`` is called after
every request.

Replies are validated row by row (``parse_klines``, ``parse_open_interest``, ``parse_funding``): a bad
row is dropped and counted under ``<endpoint>:<reason>``; a symbol whose request fails for good is
counted under ``<endpoint>:<error>`` and left out — the rest of the universe still comes back.
``backfill_universe`` is the one-shot path (``arbray screen --live`` without streams, the benchmark);
the stream-fed ``KlineCache`` (``arbray.screener.cache``) uses the same fetchers at start and after a gap.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import Field

from arbray.binance.weights import request_cost
from arbray.feeds.rest import BinanceError, BinanceRest
from arbray.scoring.config import FrozenModel
from arbray.screener.data import SymbolKlines
from arbray.screener.models import timeframe_minutes

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
T = TypeVar("T")

Interval = Literal["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d"]
"""Kline intervals with a fixed length (the screener's timeframes)."""
StatPeriod = Literal["5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d"]
"""Periods of ``/futures/data/openInterestHist``."""
KLINES = "/fapi/v1/klines"
OI_HIST = "/futures/data/openInterestHist"
FUNDING = "/fapi/v1/fundingRate"
EXCHANGE_INFO = "/fapi/v1/exchangeInfo"
MAX_KLINES_LIMIT = 1500
MAX_OI_LIMIT = 500


def interval_ms(interval: str) -> int:
    """Bar length in milliseconds."""
    return int(timeframe_minutes(interval) * 60_000)


class BackfillConfig(FrozenModel):
    """What a backfill fetches per symbol, and how many requests may wait on the limiter at once."""

    bars: int = Field(300, ge=60, le=MAX_KLINES_LIMIT - 1, description="closed bars per symbol and interval")
    open_interest: bool = Field(True, description="fetch openInterestHist (the O/O+ factors and OVR)")
    oi_period: StatPeriod = Field("5m", description="openInterestHist period; samples are aligned to bar closes")
    funding: bool = Field(True, description="fetch the funding-rate history (B, short-grid funding)")
    funding_limit: int = Field(10, ge=1, le=1000, description="settlements fetched (funding_mean uses 9)")
    concurrency: int = Field(8, ge=1, le=64, description="requests in flight (each still waits for its weight)")


@dataclass(frozen=True)
class KlineBlock:
    """Validated kline rows of one symbol and interval, oldest first (Binance's 12-field layout)."""

    interval: str
    open_ms: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    quote_volume: F64
    trades: I64
    taker_buy: F64

    def __len__(self) -> int:
        return int(self.open_ms.shape[0])

    def take(self, mask: npt.NDArray[np.bool_]) -> KlineBlock:
        """The rows where ``mask`` is true."""
        return KlineBlock(self.interval, self.open_ms[mask], self.open[mask], self.high[mask], self.low[mask],
                          self.close[mask], self.volume[mask], self.quote_volume[mask], self.trades[mask],
                          self.taker_buy[mask])


def empty_block(interval: str) -> KlineBlock:
    """A block without rows."""
    f, i = np.empty(0, np.float64), np.empty(0, np.int64)
    return KlineBlock(interval, i, f, f, f, f, f, f, i, f)


_KLINE_REASONS = frozenset({"bad_row", "nonpositive_price", "inconsistent_ohlc", "negative_volume",
                            "taker_buy_above_volume", "bad_open_time"})


def _kline_row(r: Any, period: int) -> tuple[int, float, float, float, float, float, float, int, float]:
    """One REST kline row, validated; raises ``ValueError`` with the reason."""
    if not isinstance(r, list | tuple) or len(r) < 10:
        raise ValueError("bad_row")
    o_ms, close_ms = int(r[0]), int(r[6])
    o, h, lo, c = float(r[1]), float(r[2]), float(r[3]), float(r[4])
    v, qv, n, tb = float(r[5]), float(r[7]), int(r[8]), float(r[9])
    if not all(math.isfinite(x) and x > 0 for x in (o, h, lo, c)):
        raise ValueError("nonpositive_price")
    if not (lo <= min(o, c) and h >= max(o, c)):
        raise ValueError("inconsistent_ohlc")
    if not all(math.isfinite(x) and x >= 0 for x in (v, qv, tb)) or n < 0:
        raise ValueError("negative_volume")
    if tb > v * (1 + 1e-9) + 1e-12:
        raise ValueError("taker_buy_above_volume")
    if o_ms % period or close_ms != o_ms + period - 1:
        raise ValueError("bad_open_time")
    return o_ms, o, h, lo, c, v, qv, n, tb


def parse_klines(interval: str, rows: Any, rejects: Counter[str]) -> KlineBlock:
    """``/fapi/v1/klines`` rows as a ``KlineBlock``; bad rows are counted (``klines:<reason>``) and dropped,
    as are rows not newer than the previous one."""
    if not isinstance(rows, list):
        rejects["klines:not_a_list"] += 1
        return empty_block(interval)
    period = interval_ms(interval)
    good: list[tuple[int, float, float, float, float, float, float, int, float]] = []
    for r in rows:
        try:
            row = _kline_row(r, period)
        except (TypeError, ValueError) as exc:
            rejects[f"klines:{exc if str(exc) in _KLINE_REASONS else 'bad_value'}"] += 1
            continue
        if good and row[0] <= good[-1][0]:
            rejects["klines:out_of_order"] += 1
            continue
        good.append(row)
    if not good:
        return empty_block(interval)
    cols = list(zip(*good, strict=True))
    f = [np.asarray(c, np.float64) for c in cols]
    return KlineBlock(interval, np.asarray(cols[0], np.int64), f[1], f[2], f[3], f[4], f[5], f[6],
                      np.asarray(cols[7], np.int64), f[8])



@dataclass(frozen=True)
class Series:
    """Timestamped samples of one symbol (open interest in the base asset, or funding rates), oldest first."""

    ts_ms: I64
    value: F64

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])


def _series(pairs: list[tuple[int, float]]) -> Series:
    pairs = sorted(dict(pairs).items())
    return Series(np.asarray([t for t, _ in pairs], np.int64), np.asarray([v for _, v in pairs], np.float64))


def parse_open_interest(rows: Any, rejects: Counter[str]) -> Series:
    """``openInterestHist`` rows (``sumOpenInterest`` at ``timestamp``) as a ``Series``."""
    return _parse_samples(rows, "timestamp", "sumOpenInterest", "open_interest", rejects, nonneg=True)


def parse_funding(rows: Any, rejects: Counter[str]) -> Series:
    """``fundingRate`` rows (``fundingRate`` at ``fundingTime``) as a ``Series``."""
    return _parse_samples(rows, "fundingTime", "fundingRate", "funding", rejects, nonneg=False)


def _parse_samples(rows: Any, ts_key: str, value_key: str, what: str, rejects: Counter[str],
                   nonneg: bool) -> Series:
    if not isinstance(rows, list):
        rejects[f"{what}:not_a_list"] += 1
        return _series([])
    out: list[tuple[int, float]] = []
    for r in rows:
        try:
            t, v = int(r[ts_key]), float(r[value_key])
        except (KeyError, TypeError, ValueError):
            rejects[f"{what}:bad_row"] += 1
            continue
        if not math.isfinite(v) or (nonneg and v < 0):
            rejects[f"{what}:bad_value"] += 1
            continue
        out.append((t, v))
    return _series(out)


@dataclass(frozen=True)
class Progress:
    """After each request: the stage, requests done of the stage's total, and units charged so far."""

    stage: str
    done: int
    total: int
    weight: int
    futures_data: int


ProgressFn = Callable[[Progress], None]


@dataclass
class BackfillReport:
    """What a backfill cost and what went wrong (see the module doc)."""

    requests: int = 0
    units: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    rejects: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    rate_limit_waits: int = 0
    rate_limit_wait_ms: int = 0
    retries: int = 0
    used_weight_1m: int | None = None

    def merge(self, other: BackfillReport) -> None:
        """Add ``other`` (a later stage or another shard) to this report."""
        self.requests += other.requests
        self.units.update(other.units)
        self.failures.update(other.failures)
        self.rejects.update(other.rejects)
        self.seconds += other.seconds
        self.rate_limit_waits += other.rate_limit_waits
        self.rate_limit_wait_ms += other.rate_limit_wait_ms
        self.retries += other.retries
        if other.used_weight_1m is not None:
            self.used_weight_1m = max(self.used_weight_1m or 0, other.used_weight_1m)

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "weight": self.units.get("weight", 0),
                "futures_data_requests": self.units.get("futures_data", 0), "units": dict(sorted(self.units.items())),
                "seconds": round(self.seconds, 3), "rate_limit_waits": self.rate_limit_waits,
                "rate_limit_wait_ms": self.rate_limit_wait_ms, "retries": self.retries,
                "used_weight_1m": self.used_weight_1m, "failures": dict(sorted(self.failures.items())),
                "rejects": dict(sorted(self.rejects.items()))}


class Backfiller:
    """Fetches one endpoint for many symbols through a shared ``BinanceRest`` (its limiter paces them)."""

    def __init__(self, rest: BinanceRest, config: BackfillConfig | None = None,
                 progress: ProgressFn | None = None) -> None:
        self.rest = rest
        self.config = config or BackfillConfig()
        self.progress = progress
        self.report = BackfillReport()

    async def _each(self, stage: str, path: str, jobs: Sequence[tuple[str, Mapping[str, str | int]]],
                    parse: Callable[[Any], T]) -> dict[str, T]:
        """GET ``path`` once per ``(symbol, params)`` with ``concurrency`` in flight; parsed replies by symbol."""
        rep, rest = self.report, self.rest
        before = (rest.stats["rate_limit_waits"], rest.stats["rate_limit_wait_ms"], rest.stats["retries"])
        sem = asyncio.Semaphore(self.config.concurrency)
        out: dict[str, T] = {}
        done = 0
        t0 = time.perf_counter()

        async def one(symbol: str, params: Mapping[str, str | int]) -> None:
            nonlocal done
            async with sem:
                try:
                    reply = await rest.request("GET", path, params)
                except BinanceError as exc:
                    rep.failures[f"{stage}:{exc.code if exc.code is not None else exc.http_status or exc.action}"] += 1
                    reply = None
                rep.requests += 1
                rep.units.update(request_cost("GET", path, params))
                if reply is not None:
                    out[symbol] = parse(reply.data)
                done += 1
                if self.progress is not None:
                    self.progress(Progress(stage, done, len(jobs), rep.units["weight"], rep.units["futures_data"]))

        await asyncio.gather(*(one(s, p) for s, p in jobs))
        rep.seconds += time.perf_counter() - t0
        rep.rate_limit_waits += rest.stats["rate_limit_waits"] - before[0]
        rep.rate_limit_wait_ms += rest.stats["rate_limit_wait_ms"] - before[1]
        rep.retries += rest.stats["retries"] - before[2]
        if rest.used_weight_1m is not None:
            rep.used_weight_1m = rest.used_weight_1m
        return out

    async def klines(self, symbols: Sequence[str], interval: str, limit: int | None = None,
                     start_ms: Mapping[str, int] | None = None) -> dict[str, KlineBlock]:
        """The last ``limit`` klines (default ``bars + 1``: the closed bars and the open one) per symbol,
        or ``limit`` from ``start_ms[symbol]`` on."""
        n = min(MAX_KLINES_LIMIT, limit or self.config.bars + 1)
        jobs: list[tuple[str, Mapping[str, str | int]]] = []
        for s in symbols:
            params: dict[str, str | int] = {"symbol": s, "interval": interval, "limit": n}
            if start_ms is not None:
                params["startTime"] = start_ms[s]
            jobs.append((s, params))
        return await self._each(f"klines_{interval}", KLINES, jobs,
                                lambda d: parse_klines(interval, d, self.report.rejects))

    async def open_interest(self, symbols: Sequence[str], limit: int) -> dict[str, Series]:
        """The last ``limit`` (≤ 500) open-interest samples of ``oi_period`` per symbol."""
        jobs: list[tuple[str, Mapping[str, str | int]]] = [
            (s, {"symbol": s, "period": self.config.oi_period, "limit": min(MAX_OI_LIMIT, max(1, limit))})
            for s in symbols]
        return await self._each("open_interest", OI_HIST, jobs, lambda d: parse_open_interest(d, self.report.rejects))

    async def funding(self, symbols: Sequence[str]) -> dict[str, Series]:
        """The last ``funding_limit`` funding settlements per symbol."""
        jobs: list[tuple[str, Mapping[str, str | int]]] = [
            (s, {"symbol": s, "limit": self.config.funding_limit}) for s in symbols]
        return await self._each("funding", FUNDING, jobs, lambda d: parse_funding(d, self.report.rejects))


def oi_samples_for(bars: int, interval: str, oi_period: str) -> int:
    """Open-interest samples covering ``bars`` bars of ``interval`` (capped at one request's 500)."""
    return min(MAX_OI_LIMIT, math.ceil(bars * interval_ms(interval) / interval_ms(oi_period)) + 1)


def align_open_interest(open_ms: I64, period_ms: int, oi: Series | None, window: int = 50) -> F64 | None:
    """Open interest at each bar's close: the latest sample at or before ``open + period``; NaN before the
    first sample. None when fewer than ``window`` trailing bars have a value (the OI factors' look-back)."""
    if oi is None or len(oi) == 0 or open_ms.shape[0] == 0:
        return None
    k = np.searchsorted(oi.ts_ms, open_ms + period_ms, side="right") - 1
    out = np.where(k >= 0, oi.value[np.maximum(k, 0)], np.nan)
    finite = np.flatnonzero(np.isfinite(out))
    if finite.size == 0 or out.shape[0] - finite[0] < min(window, out.shape[0]):
        return None
    return out


def funding_until(funding: Series | None, until_ms: int) -> F64 | None:
    """Settled funding rates at or before ``until_ms`` (oldest first), or None when there are none."""
    if funding is None:
        return None
    rates = funding.value[funding.ts_ms <= until_ms]
    return rates if rates.size else None


def closed_rows(block: KlineBlock, known_ms: int | None) -> KlineBlock:
    """The closed bars of a reply. The open bar is always the newest existing bar, so every row but the
    newest is closed; the newest is closed only when ``known_ms`` (exchange time known to have passed
    when the request was sent, e.g. from the streams) is at or past its end. None: drop the newest."""
    n = len(block)
    if n == 0:
        return block
    newest_closed = known_ms is not None and int(block.open_ms[-1]) + interval_ms(block.interval) <= known_ms
    return block if newest_closed else block.take(np.arange(n) < n - 1)


def to_symbol_klines(symbol: str, block: KlineBlock, oi: Series | None, funding: Series | None) -> SymbolKlines:
    """Closed bars plus their aligned open interest and the funding settled by the last close."""
    period = interval_ms(block.interval)
    last_close = int(block.open_ms[-1]) + period if len(block) else 0
    return SymbolKlines(symbol, block.interval, block.open_ms, block.open, block.high, block.low, block.close,
                        block.volume, taker_buy=block.taker_buy,
                        open_interest=align_open_interest(block.open_ms, period, oi),
                        funding=funding_until(funding, last_close))


async def backfill_universe(rest: BinanceRest, symbols: Sequence[str], interval: str,
                            config: BackfillConfig | None = None,
                            progress: ProgressFn | None = None) -> tuple[list[SymbolKlines], BackfillReport]:
    """Closed ``bars`` klines (+ open interest, funding) of every symbol by REST, as scan inputs, and the cost.

    The newest row of each reply is the open bar and is dropped; symbols with no bars are left out
    (their failure is in the report)."""
    cfg = config or BackfillConfig()
    bf = Backfiller(rest, cfg, progress)
    blocks = await bf.klines(symbols, interval)
    oi = (await bf.open_interest(list(blocks), oi_samples_for(cfg.bars, interval, cfg.oi_period))
          if cfg.open_interest else {})
    funding = await bf.funding(list(blocks)) if cfg.funding else {}
    out = []
    for s in symbols:
        block = blocks.get(s)
        if block is None:
            continue
        closed = closed_rows(block, None)
        if len(closed) == 0:
            bf.report.failures["klines:no_closed_bars"] += 1
            continue
        out.append(to_symbol_klines(s, closed, oi.get(s), funding.get(s)))
    return out, bf.report

