"""Binance USD-M REST request weights and rate limits as one declarative table.

Both sides use it: the exchange simulator charges these weights and answers with Binance's
errors when a limit is exceeded; the feed, venue and screener clients account for them before
sending, so a client never learns about a limit by being banned. Figures are Binance's published
ones (developers.binance.com, USDⓈ-M futures "General Info" and each endpoint's page): IP request
weight 2,400 per minute, orders 300 per 10 s and 1,200 per minute per account, and the
``/futures/data/*`` statistics endpoints limited to 1,000 requests per 5 minutes per IP.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Pool = Literal["weight", "orders", "futures_data", "spot_weight"]
"""Which counter a request draws on: IP request weight, account order count, the statistics
endpoints' request count, or Binance spot's separate IP weight."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One limit: at most ``limit`` units of ``pool`` within any ``interval_ms`` window."""

    pool: Pool
    interval_ms: int
    limit: int
    header: str | None  # the response header carrying the used amount (lower case), if any


RATE_LIMITS: tuple[RateLimit, ...] = (
    RateLimit("weight", 60_000, 2_400, "x-mbx-used-weight-1m"),
    RateLimit("orders", 10_000, 300, "x-mbx-order-count-10s"),
    RateLimit("orders", 60_000, 1_200, "x-mbx-order-count-1m"),
    RateLimit("futures_data", 300_000, 1_000, None),
    RateLimit("spot_weight", 60_000, 6_000, "x-mbx-used-weight-1m"),
)

# (upper bound of ``limit`` exclusive, weight) steps; the last step applies above every bound.
_DEPTH_STEPS = ((51, 2), (101, 5), (501, 10), (1_001, 20))
_KLINE_STEPS = ((100, 1), (500, 2), (1_001, 5), (10**9, 10))


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A REST endpoint's cost: a fixed weight, a weight that steps with ``limit``, or one that
    depends on whether ``symbol`` is given; ``orders`` counts it against the order limits."""

    method: str
    path: str
    weight: int = 1
    weight_no_symbol: int | None = None  # weight when the request names no symbol
    limit_steps: tuple[tuple[int, int], ...] = ()
    default_limit: int = 500
    pool: Pool = "weight"
    orders: bool = False
    signed: bool = False


ENDPOINTS: dict[tuple[str, str], Endpoint] = {
    (e.method, e.path): e
    for e in (
        Endpoint("GET", "/fapi/v1/ping"),
        Endpoint("GET", "/fapi/v1/time"),
        Endpoint("GET", "/fapi/v1/exchangeInfo"),
        Endpoint("GET", "/fapi/v1/depth", limit_steps=_DEPTH_STEPS, default_limit=500),
        Endpoint("GET", "/fapi/v1/trades", weight=5),
        Endpoint("GET", "/fapi/v1/aggTrades", weight=20),
        Endpoint("GET", "/fapi/v1/klines", limit_steps=_KLINE_STEPS, default_limit=500),
        Endpoint("GET", "/fapi/v1/markPriceKlines", limit_steps=_KLINE_STEPS, default_limit=500),
        Endpoint("GET", "/fapi/v1/indexPriceKlines", limit_steps=_KLINE_STEPS, default_limit=500),
        Endpoint("GET", "/fapi/v1/premiumIndex", weight=1, weight_no_symbol=10),
        Endpoint("GET", "/fapi/v1/fundingRate"),
        Endpoint("GET", "/fapi/v1/openInterest"),
        Endpoint("GET", "/fapi/v1/ticker/24hr", weight=1, weight_no_symbol=40),
        Endpoint("GET", "/fapi/v1/ticker/price", weight=1, weight_no_symbol=2),
        Endpoint("GET", "/fapi/v2/ticker/price", weight=1, weight_no_symbol=2),
        Endpoint("GET", "/fapi/v1/ticker/bookTicker", weight=2, weight_no_symbol=5),
        Endpoint("GET", "/futures/data/openInterestHist", pool="futures_data"),
        Endpoint("GET", "/futures/data/globalLongShortAccountRatio", pool="futures_data"),
        Endpoint("GET", "/futures/data/topLongShortPositionRatio", pool="futures_data"),
        Endpoint("GET", "/futures/data/topLongShortAccountRatio", pool="futures_data"),
        Endpoint("GET", "/futures/data/takerlongshortRatio", pool="futures_data"),
        Endpoint("POST", "/fapi/v1/order", weight=0, orders=True, signed=True),
        Endpoint("DELETE", "/fapi/v1/order", signed=True),
        Endpoint("GET", "/fapi/v1/order", signed=True),
        Endpoint("GET", "/fapi/v1/openOrders", weight=1, weight_no_symbol=40, signed=True),
        Endpoint("DELETE", "/fapi/v1/allOpenOrders", signed=True),
        Endpoint("GET", "/fapi/v1/allOrders", weight=5, signed=True),
        Endpoint("GET", "/fapi/v1/userTrades", weight=5, signed=True),
        Endpoint("GET", "/fapi/v2/positionRisk", weight=5, signed=True),
        Endpoint("GET", "/fapi/v3/positionRisk", weight=5, signed=True),
        Endpoint("GET", "/fapi/v2/balance", weight=5, signed=True),
        Endpoint("GET", "/fapi/v3/balance", weight=5, signed=True),
        Endpoint("GET", "/fapi/v2/account", weight=5, signed=True),
        Endpoint("GET", "/fapi/v3/account", weight=5, signed=True),
        Endpoint("POST", "/fapi/v1/leverage", signed=True),
        Endpoint("GET", "/fapi/v1/income", weight=30, signed=True),
        Endpoint("POST", "/fapi/v1/listenKey"),
        Endpoint("PUT", "/fapi/v1/listenKey"),
        Endpoint("DELETE", "/fapi/v1/listenKey"),
        Endpoint("GET", "/api/v3/ticker/price", weight=2, weight_no_symbol=4, pool="spot_weight"),
    )
}


class UnknownEndpoint(KeyError):
    """A request for an endpoint the table does not describe (so its cost is unknown)."""


def endpoint(method: str, path: str) -> Endpoint:
    """The table entry for ``method path``; raises ``UnknownEndpoint``."""
    try:
        return ENDPOINTS[(method.upper(), path)]
    except KeyError:
        raise UnknownEndpoint(f"{method.upper()} {path}") from None


def request_cost(method: str, path: str, params: Mapping[str, Any] | None = None) -> dict[Pool, int]:
    """Units each pool is charged for one request: e.g. ``{"weight": 20}`` or ``{"orders": 1}``."""
    e = endpoint(method, path)
    params = params or {}
    w = e.weight
    if e.weight_no_symbol is not None and not params.get("symbol"):
        w = e.weight_no_symbol
    if e.limit_steps:
        limit = int(params.get("limit") or e.default_limit)
        w = e.limit_steps[-1][1]
        for bound, step_weight in e.limit_steps:
            if limit < bound:
                w = step_weight
                break
    cost: dict[Pool, int] = {}
    if e.pool == "futures_data":
        cost["futures_data"] = 1
    elif w:
        cost[e.pool] = w
    if e.orders:
        cost["orders"] = 1
    return cost


class RateLimiter:
    """Sliding-window accounting of every ``RATE_LIMITS`` entry (timestamps from the caller).

    ``wait_ms`` says how long a request must wait so that no window would exceed its limit;
    ``charge`` records it. Exchange-reported usage (``observe``) can only raise the local count,
    so a client that shares an IP with others still slows down in time.
    """

    def __init__(self, limits: tuple[RateLimit, ...] = RATE_LIMITS, headroom: float = 1.0) -> None:
        if not 0 < headroom <= 1:
            raise ValueError("headroom must be in (0, 1]")
        self.limits = limits
        self.headroom = headroom
        self._events: dict[int, deque[tuple[int, int]]] = {i: deque() for i in range(len(limits))}
        self._used: dict[int, int] = dict.fromkeys(range(len(limits)), 0)
        self._floor: dict[int, tuple[int, int]] = {}  # limit index → (observed used, at ms)

    def _expire(self, i: int, now_ms: int) -> None:
        q, horizon = self._events[i], now_ms - self.limits[i].interval_ms
        while q and q[0][0] <= horizon:
            self._used[i] -= q.popleft()[1]

    def used(self, pool: Pool, interval_ms: int, now_ms: int) -> int:
        """Units of ``pool`` used within the limit of that interval, as far as this client knows."""
        for i, lim in enumerate(self.limits):
            if lim.pool == pool and lim.interval_ms == interval_ms:
                self._expire(i, now_ms)
                return max(self._used[i], self._observed(i, now_ms))
        raise KeyError((pool, interval_ms))

    def _observed(self, i: int, now_ms: int) -> int:
        seen = self._floor.get(i)
        if seen is None or now_ms - seen[1] >= self.limits[i].interval_ms:
            return 0
        return seen[0]

    def wait_ms(self, cost: Mapping[Pool, int], now_ms: int) -> int:
        """Milliseconds until a request costing ``cost`` fits every window (0: send now)."""
        wait = 0
        for i, lim in enumerate(self.limits):
            units = cost.get(lim.pool, 0)
            if not units:
                continue
            self._expire(i, now_ms)
            cap = int(lim.limit * self.headroom)
            if units > cap:
                raise ValueError(f"a request costing {units} can never fit {lim.pool} limit {cap}")
            until = now_ms
            need = self._used[i] + units - cap
            if need > 0:  # free the oldest local events until the request fits
                freed = 0
                for ts, n in self._events[i]:
                    freed += n
                    if freed >= need:
                        until = ts + lim.interval_ms
                        break
            seen = self._floor.get(i)
            if seen is not None and self._observed(i, now_ms) + units > cap:
                until = max(until, seen[1] + lim.interval_ms)  # the exchange's count resets with its window
            wait = max(wait, until - now_ms)
        return wait

    def charge(self, cost: Mapping[Pool, int], now_ms: int) -> None:
        """Record a sent request."""
        for i, lim in enumerate(self.limits):
            units = cost.get(lim.pool, 0)
            if units:
                self._events[i].append((now_ms, units))
                self._used[i] += units

    def observe(self, headers: Mapping[str, str], now_ms: int, spot: bool = False) -> None:
        """Take the exchange's ``X-MBX-USED-WEIGHT-1M`` / ``X-MBX-ORDER-COUNT-*`` as a floor."""
        lower = {k.lower(): v for k, v in headers.items()}
        for i, lim in enumerate(self.limits):
            if lim.header is None or (lim.pool == "spot_weight") != spot:
                continue
            raw = lower.get(lim.header)
            if raw is not None and raw.isdigit():
                self._floor[i] = (int(raw), now_ms)
