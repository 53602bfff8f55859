"""REST indicator pollers: one declarative row per endpoint, a pure parser per row, one runner.

Every ``poll_interval_s`` (Binance publishes these statistics per 5 minutes) the runner fetches,
per symbol and in table order: ``openInterestHist`` (history on the first poll, so the OI change
has a base at once), ``openInterest`` (the current value), the global long/short account ratio,
the top traders' position ratio, the funding-rate history and the premium index. The spot price
(``/api/v3/ticker/price`` on ``spot_rest_base``) is polled every ``spot_poll_interval_s`` for the
spot–perp divergence. Results become ``MarketIndicator`` events (kinds ``open_interest`` in
contracts, ``long_short_ratio``, ``top_trader_long_ratio``, ``spot_price``) handed to the symbol's
sink; the premium index becomes a ``MarkPrice`` when no markPrice stream is subscribed. Samples not
newer than the last one sent for the same kind are skipped (the sink would reject them), and a
malformed reply is counted under ``<poller>:<problem>`` and sends nothing.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from arbray.clock import Clock, SystemClock
from arbray.feeds.config import FeedConfig
from arbray.feeds.rest import BinanceError, BinanceRest
from arbray.marketdata.events import Event, MarketIndicator, MarkPrice, RejectCounter


class BadReply(ValueError):
    """A REST reply that does not have the documented shape."""


def _num(x: Any) -> float:
    v = float(x)
    if not math.isfinite(v) or v < 0:
        raise BadReply("bad_value")
    return v


def _rows(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise BadReply("not_a_list")
    return data


def _obj(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BadReply("not_an_object")
    return data


def parse_open_interest(symbol: str, data: Any, now_ms: int) -> list[Event]:
    """``{"openInterest": "10659.509", "symbol": …, "time": …}`` → ``open_interest`` (contracts)."""
    d = _obj(data)
    return [MarketIndicator(symbol, int(d["time"]), "open_interest", _num(d["openInterest"]))]


def parse_open_interest_hist(symbol: str, data: Any, now_ms: int) -> list[Event]:
    """``[{"sumOpenInterest", "sumOpenInterestValue", "timestamp"}, …]`` → ``open_interest`` per row, oldest first."""
    out: list[Event] = [MarketIndicator(symbol, int(r["timestamp"]), "open_interest", _num(r["sumOpenInterest"]))
                        for r in _rows(data)]
    return sorted(out, key=lambda e: e.ts_ms)  # type: ignore[union-attr]


def _latest(data: Any, field: str, kind: str, symbol: str) -> list[Event]:
    rows = _rows(data)
    if not rows:
        return []
    r = max(rows, key=lambda r: int(r["timestamp"]))
    return [MarketIndicator(symbol, int(r["timestamp"]), kind, _num(r[field]))]


def parse_long_short_ratio(symbol: str, data: Any, now_ms: int) -> list[Event]:
    """``globalLongShortAccountRatio`` rows → ``long_short_ratio`` (``longShortRatio`` of the latest row)."""
    return _latest(data, "longShortRatio", "long_short_ratio", symbol)


def parse_top_trader_ratio(symbol: str, data: Any, now_ms: int) -> list[Event]:
    """``topLongShortPositionRatio`` rows → ``top_trader_long_ratio`` (``longAccount``, the long share 0–1)."""
    return _latest(data, "longAccount", "top_trader_long_ratio", symbol)


def parse_funding_rate(symbol: str, data: Any, now_ms: int) -> list[Event]:
    """``fundingRate`` history: validated; the latest settlement is kept as a polled value (no sink event)."""
    for r in _rows(data):
        int(r["fundingTime"])
        if not math.isfinite(float(r["fundingRate"])):
            raise BadReply("bad_value")
    return []


def parse_premium_index(symbol: str, data: Any, now_ms: int) -> list[Event]:
    """``premiumIndex`` → a ``MarkPrice`` (mark, index, last funding rate, next funding time)."""
    d = _obj(data)
    mark, index = _num(d["markPrice"]), _num(d["indexPrice"])
    if mark <= 0:
        raise BadReply("bad_value")
    rate = float(d["lastFundingRate"])
    if not math.isfinite(rate):
        raise BadReply("bad_value")
    nft = int(d.get("nextFundingTime") or 0)
    return [MarkPrice(symbol, int(d["time"]), mark, index if index > 0 else None, rate, nft or None)]


def parse_spot_price(symbol: str, data: Any, now_ms: int) -> list[Event]:
    """Spot ``ticker/price`` ``{"symbol", "price"}`` → ``spot_price`` at the local time (the reply has none)."""
    d = _obj(data)
    price = _num(d["price"])
    if price <= 0:
        raise BadReply("bad_value")
    return [MarketIndicator(symbol, now_ms, "spot_price", price)]


Parser = Callable[[str, Any, int], list[Event]]


@dataclass(frozen=True, slots=True)
class PollSpec:
    """One poller: endpoint, query for a symbol, and the parser of its reply."""

    name: str
    path: str
    params: Callable[[str, FeedConfig, bool], dict[str, str | int]]
    parse: Parser
    spot: bool = False


def _period(limit_first: bool) -> Callable[[str, FeedConfig, bool], dict[str, str | int]]:
    def params(symbol: str, cfg: FeedConfig, first: bool) -> dict[str, str | int]:
        return {"symbol": symbol, "period": cfg.poll_period,
                "limit": cfg.oi_history_limit if first and limit_first else 1}
    return params


POLL_SPECS: dict[str, PollSpec] = {p.name: p for p in (
    PollSpec("open_interest_hist", "/futures/data/openInterestHist", _period(True), parse_open_interest_hist),
    PollSpec("open_interest", "/fapi/v1/openInterest", lambda s, c, f: {"symbol": s}, parse_open_interest),
    PollSpec("long_short_ratio", "/futures/data/globalLongShortAccountRatio", _period(False),
             parse_long_short_ratio),
    PollSpec("top_trader_ratio", "/futures/data/topLongShortPositionRatio", _period(False), parse_top_trader_ratio),
    PollSpec("funding_rate", "/fapi/v1/fundingRate", lambda s, c, f: {"symbol": s, "limit": 1}, parse_funding_rate),
    PollSpec("premium_index", "/fapi/v1/premiumIndex", lambda s, c, f: {"symbol": s}, parse_premium_index),
)}
SPOT_SPEC = PollSpec("spot_price", "/api/v3/ticker/price", lambda s, c, f: {"symbol": s}, parse_spot_price, spot=True)


def _ts(ev: Event) -> int:
    return ev.ts_ms if isinstance(ev, MarketIndicator) else ev.event_ms  # type: ignore[union-attr]


class Pollers:
    """Runs the pollers of ``config`` against ``rest`` and hands events to ``emit(symbol, event)``.

    ``latest`` keeps the last raw reply of every (symbol, poller) — e.g. the funding-rate history
    row, which has no event kind — so the runtime can read any polled value.
    """

    def __init__(self, config: FeedConfig, rest: BinanceRest, emit: Callable[[str, Event], None],
                 rejects: RejectCounter, mark_streamed: bool, clock: Clock | None = None) -> None:
        self.config, self.rest, self.emit, self.rejects = config, rest, emit, rejects
        self.clock = clock or SystemClock()
        self.specs = [spec for name, spec in POLL_SPECS.items() if name in config.pollers]
        self.mark_streamed = mark_streamed  # then the premium index is kept in ``latest`` only
        self.stats: Counter[str] = Counter()
        self.latest: dict[tuple[str, str], tuple[int, Any]] = {}
        self._last_ts: dict[tuple[str, str], int] = {}
        self._spot_disabled: set[str] = set()

    async def poll_once(self, spec: PollSpec, symbol: str, first: bool) -> None:
        """One request for one symbol; errors are counted, never raised."""
        query_symbol = self.config.spot_symbols.get(symbol, symbol) if spec.spot else symbol
        try:
            data = await self.rest.get(spec.path, spec.params(query_symbol, self.config, first), spot=spec.spot)
        except BinanceError as exc:
            self.stats[f"{spec.name}:error"] += 1
            if spec.spot and exc.code == -1121:  # no such spot pair: stop asking for it
                self._spot_disabled.add(symbol)
                self.stats[f"{spec.name}:disabled:{symbol}"] += 1
            return
        now_ms = self.clock.now_ms()
        self.latest[(symbol, spec.name)] = (now_ms, data)
        try:
            events = spec.parse(symbol, data, now_ms)
        except BadReply as exc:
            self.rejects[f"{spec.name}:{exc}"] += 1
            return
        except KeyError as exc:
            self.rejects[f"{spec.name}:missing_field:{exc.args[0]}"] += 1
            return
        except (TypeError, ValueError):
            self.rejects[f"{spec.name}:bad_value"] += 1
            return
        self.stats[f"{spec.name}:ok"] += 1
        for ev in events:
            if isinstance(ev, MarkPrice) and self.mark_streamed:
                continue
            key = (symbol, ev.kind if isinstance(ev, MarketIndicator) else "mark_price")
            ts = _ts(ev)
            if ts <= self._last_ts.get(key, -1):
                self.stats[f"{spec.name}:not_newer"] += 1
                continue
            self._last_ts[key] = ts
            self.stats[f"samples:{key[1]}"] += 1
            self.emit(symbol, ev)

    async def run_indicators(self) -> None:
        """Poll every indicator for every symbol each ``poll_interval_s`` (fixed rate), until cancelled."""
        loop = asyncio.get_running_loop()
        first = True
        while True:
            started = loop.time()
            for symbol in self.config.symbols:
                for spec in self.specs:
                    await self.poll_once(spec, symbol, first)
            first = False
            self.stats["cycles"] += 1
            await asyncio.sleep(max(0.0, started + self.config.poll_interval_s - loop.time()))

    async def run_spot(self) -> None:
        """Poll the spot price of every symbol each ``spot_poll_interval_s``, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            for symbol in self.config.symbols:
                if symbol not in self._spot_disabled:
                    await self.poll_once(SPOT_SPEC, symbol, False)
            await asyncio.sleep(max(0.0, started + self.config.spot_poll_interval_s - loop.time()))

    def snapshot_stats(self) -> dict[str, Any]:
        return dict(sorted(self.stats.items()))
