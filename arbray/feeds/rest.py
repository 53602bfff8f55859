"""``BinanceRest``: an aiohttp client that accounts for Binance's rate limits before it sends.

Every request is priced with ``request_cost`` and waits on the shared ``RateLimiter`` until it
fits every window; the exchange's ``X-MBX-USED-WEIGHT-1M`` header is fed back as a floor, so a
client sharing an IP with others still slows down in time. Failures are mapped with
``action_for``: ``backoff`` (429, 418, -1003, -1015) blocks every request of this client until the
``Retry-After`` the exchange gave (or ``rate_limit_backoff_s``); ``retry`` (5xx, -1000/-1001/-1008),
timeouts and connection errors are retried with capped exponential backoff; ``reconcile`` is
retried only for GET (reading twice is harmless; an order's outcome must be reconciled by its
caller). Everything else raises ``BinanceError`` at once. ``stats`` counts all of it.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from arbray.binance.errors import Action, action_for
from arbray.binance.weights import RateLimiter, request_cost
from arbray.clock import Clock, SystemClock
from arbray.feeds.config import RestConfig
from arbray.feeds.continuity import Backoff

Params = Mapping[str, str | int | float | bool]
_RECHECK_MS = 250  # a long wait is slept in steps, re-reading the (possibly injected) clock


class BinanceError(Exception):
    """A request that failed for good: HTTP status, Binance code (if any), message and the action."""

    def __init__(self, method: str, path: str, http_status: int | None, code: int | None, msg: str,
                 action: Action | str) -> None:
        super().__init__(f"{method} {path}: HTTP {http_status} code {code}: {msg} ({action})")
        self.method, self.path = method, path
        self.http_status, self.code, self.msg, self.action = http_status, code, msg, action


@dataclass(frozen=True, slots=True)
class RestReply:
    """A successful response: status, raw body (for recording), decoded JSON and headers."""

    status: int
    body: bytes
    data: Any
    headers: Mapping[str, str]


def _param_text(v: str | int | float | bool) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _error_fields(body: bytes) -> tuple[int | None, str]:
    """Binance's ``{"code": -1003, "msg": "..."}``; (None, text) for anything else."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, body[:200].decode("utf-8", "replace")
    if isinstance(obj, dict) and isinstance(obj.get("code"), int):
        return int(obj["code"]), str(obj.get("msg", ""))
    return None, body[:200].decode("utf-8", "replace")


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("Retry-After") or headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


class BinanceRest:
    """Rate-limited, retrying REST client for USD-M (``base_url``) and spot (``spot_base_url``)."""

    def __init__(self, config: RestConfig, clock: Clock | None = None, limiter: RateLimiter | None = None,
                 session: aiohttp.ClientSession | None = None, rng: random.Random | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.limiter = limiter or RateLimiter(headroom=config.headroom)
        self._session = session
        self._own_session = session is None
        self._rng = rng or random.Random()
        self._blocked_until_ms = 0  # set by a 429/418: no request leaves before this
        self.stats: Counter[str] = Counter()
        self.used_weight_1m: int | None = None  # the exchange's last X-MBX-USED-WEIGHT-1M

    async def start(self) -> None:
        """Open the HTTP session (idempotent)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": self.config.user_agent}, trust_env=False,
                connector=aiohttp.TCPConnector(limit=32, ttl_dns_cache=300))
            self._own_session = True

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> BinanceRest:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def get(self, path: str, params: Params | None = None, *, spot: bool = False) -> Any:
        """GET ``path`` and return the decoded JSON."""
        return (await self.request("GET", path, params, spot=spot)).data

    async def request(self, method: str, path: str, params: Params | None = None, *, spot: bool = False,
                      headers: Mapping[str, str] | None = None) -> RestReply:
        """Send one request with rate-limit waits and retries; raises ``BinanceError`` when it gives up."""
        if self._session is None:
            await self.start()
        session = self._session
        assert session is not None
        base = self.config.spot_base_url if spot else self.config.base_url
        if base is None:
            raise BinanceError(method, path, None, None, "no spot_base_url configured", "fatal")
        method = method.upper()
        query = {k: _param_text(v) for k, v in (params or {}).items()}
        cost = request_cost(method, path, query)
        cfg, loop = self.config, asyncio.get_running_loop()
        deadline = loop.time() + cfg.deadline_s
        backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s, 0.5, self._rng)
        timeout = aiohttp.ClientTimeout(total=cfg.timeout_s)
        url = base + path
        attempt = 0
        while True:
            attempt += 1
            if not await self._wait_for_budget(cost, deadline - loop.time()):
                self.stats["gave_up"] += 1
                raise BinanceError(method, path, None, None, f"rate-limited for longer than the {cfg.deadline_s}s "
                                                             "deadline", "backoff")
            self.limiter.charge(cost, self.clock.now_ms())
            self.stats["requests"] += 1
            self.stats["weight_charged"] += sum(cost.values())
            status: int | None = None
            code: int | None = None
            try:
                async with session.request(method, url, params=query, timeout=timeout, headers=headers) as resp:
                    body = await resp.read()
                    status = resp.status
                    resp_headers = resp.headers
            except TimeoutError:
                self.stats["timeouts"] += 1
                action: Action | str = "retry"
                msg = f"no response within {cfg.timeout_s}s"
            except aiohttp.ClientError as exc:
                self.stats["connection_errors"] += 1
                action, msg = "retry", f"{type(exc).__name__}: {exc}"
            else:
                self.stats[f"http_{status}"] += 1
                self.limiter.observe(resp_headers, self.clock.now_ms(), spot=spot)
                used = resp_headers.get("X-MBX-USED-WEIGHT-1M")
                if used is not None and used.isdigit() and not spot:
                    self.used_weight_1m = int(used)
                if 200 <= status < 300:
                    try:
                        data = orjson.loads(body)
                    except orjson.JSONDecodeError:
                        self.stats["bad_json"] += 1
                        action, msg = "retry", "response is not JSON"
                    else:
                        return RestReply(status, body, data, resp_headers)
                else:
                    code, msg = _error_fields(body)
                    if code is not None:
                        self.stats[f"code_{code}"] += 1
                    action = action_for(code, status)
                    if action == "backoff":
                        self._block(_retry_after_s(resp_headers))
                    elif action == "reconcile" and method != "GET":
                        raise BinanceError(method, path, status, code, msg, action)
                    elif action not in ("retry", "reconcile"):
                        self.stats["failed"] += 1
                        raise BinanceError(method, path, status, code, msg, action)
            if attempt >= cfg.max_attempts or loop.time() >= deadline:
                self.stats["gave_up"] += 1
                raise BinanceError(method, path, status, code, f"gave up after {attempt} attempts: {msg}", action)
            if action != "backoff":
                self.stats["retries"] += 1
                await asyncio.sleep(min(backoff.next_delay(), max(0.0, deadline - loop.time())))

    async def wait_budget(self, method: str, path: str, params: Params | None = None) -> None:
        """Wait until a request like this would be sent at once (charges nothing): lets a caller decide
        what to ask for after the wait, e.g. a gap fill that covers every hole that opened meanwhile."""
        await self._wait_for_budget(request_cost(method.upper(), path, {k: _param_text(v) for k, v in
                                                                       (params or {}).items()}))

    def _block(self, retry_after_s: float | None) -> None:
        """Hold every request until the exchange's ``Retry-After`` (or the configured default) has passed."""
        wait_s = self.config.rate_limit_backoff_s if retry_after_s is None else retry_after_s
        until = self.clock.now_ms() + int(wait_s * 1000)
        self._blocked_until_ms = max(self._blocked_until_ms, until)
        self.stats["backoffs"] += 1

    async def _wait_for_budget(self, cost: Mapping[Any, int], within_s: float | None = None) -> bool:
        """Sleep until a 429/418 block has passed and the request fits every rate-limit window; False
        (at once, without sleeping) if that is further away than ``within_s``."""
        while True:
            now = self.clock.now_ms()
            wait = max(self._blocked_until_ms - now, self.limiter.wait_ms(cost, now))
            if wait <= 0:
                return True
            if within_s is not None and wait > within_s * 1000:
                return False
            self.stats["rate_limit_waits"] += 1
            self.stats["rate_limit_wait_ms"] += min(wait, _RECHECK_MS)
            await asyncio.sleep(min(wait, _RECHECK_MS) / 1000)  # re-read the clock: it may be injected

    @property
    def blocked_for_ms(self) -> int:
        """How long requests are still held by a 429/418 back-off (0: not blocked)."""
        return max(0, self._blocked_until_ms - self.clock.now_ms())

    def snapshot_stats(self) -> dict[str, Any]:
        """Counters plus the exchange-reported weight and any active back-off."""
        return {**dict(sorted(self.stats.items())), "used_weight_1m": self.used_weight_1m,
                "blocked_for_ms": self.blocked_for_ms}
