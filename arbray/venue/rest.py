"""Binance USD-M REST over aiohttp: signing, time sync, rate-limit accounting and backoff.

Every request is costed with ``arbray.binance.weights`` and waits in the client's ``RateLimiter``
before it is sent; the exchange's ``X-MBX-USED-WEIGHT-1M`` / ``X-MBX-ORDER-COUNT-*`` headers raise
the local count. A 429/418 (or -1003/-1015) is waited out (``Retry-After``, else the limiter) and
the same request is sent again — Binance did not process it. -1021 re-syncs the clock offset with
``/fapi/v1/time`` once. Everything else is raised as ``BinanceApiError`` with its action from
``arbray.binance.errors.action_for``; a timeout or a dropped connection on a request that changes
state is ``reconcile`` (the exchange may have executed it). Logs carry method, path and status,
never parameters, keys or signatures.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp

from arbray.binance.errors import Action, action_for
from arbray.binance.signing import API_KEY_HEADER
from arbray.binance.weights import RATE_LIMITS, RateLimit, RateLimiter, request_cost
from arbray.clock import Clock, SystemClock
from arbray.venue.credentials import BinanceCredentials

log = logging.getLogger("arbray.venue")


class BinanceApiError(Exception):
    """A failed request: HTTP status, Binance code (None when there is none) and the action to take."""

    def __init__(self, method: str, path: str, http_status: int, code: int | None, msg: str, action: Action,
                 retry_after_s: float | None = None) -> None:
        super().__init__(method, path, http_status, code, msg)
        self.method = method
        self.path = path
        self.http_status = http_status
        self.code = code
        self.msg = msg
        self.action: Action = action
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return f"{self.method} {self.path} → HTTP {self.http_status} code {self.code}: {self.msg} ({self.action})"


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class BinanceRest:
    """One base URL, one key: signed and public requests with limits respected."""

    def __init__(self, base_url: str, credentials: BinanceCredentials | None, *, recv_window_ms: int = 5_000,
                 timeout_s: float = 10.0, max_backoffs: int = 5, headroom: float = 0.9, clock: Clock | None = None,
                 session: aiohttp.ClientSession | None = None, limits: tuple[RateLimit, ...] = RATE_LIMITS) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.recv_window_ms = recv_window_ms
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.max_backoffs = max_backoffs
        self.clock: Clock = clock or SystemClock()
        self.limiter = RateLimiter(limits, headroom=headroom)
        self.offset_ms = 0
        self._session = session
        self._own_session = session is None
        self.counters: Counter[str] = Counter()

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    async def __aenter__(self) -> BinanceRest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None and not self._session.closed:
            await self._session.close()

    def timestamp(self) -> int:
        """Milliseconds on the exchange's clock as this client estimates it."""
        return self.clock.now_ms() + self.offset_ms

    async def sync_time(self) -> int:
        """Measure the offset to ``/fapi/v1/time`` (half the round trip is assumed each way)."""
        t0 = self.clock.now_ms()
        data = await self.request("GET", "/fapi/v1/time", resync=False)
        t1 = self.clock.now_ms()
        self.offset_ms = int(data["serverTime"]) - (t0 + t1) // 2
        self.counters["time_syncs"] += 1
        return self.offset_ms

    def _payload(self, params: Mapping[str, Any] | None, signed: bool) -> str:
        items = [(k, _text(v)) for k, v in (params or {}).items() if v is not None]
        if signed:
            if self.credentials is None:
                raise BinanceApiError("-", "-", 0, -2015, "no credentials for a signed request", "auth")
            items.append(("recvWindow", str(self.recv_window_ms)))
            items.append(("timestamp", str(self.timestamp())))
            query = urlencode(items)
            return f"{query}&signature={self.credentials.sign(query)}"
        return urlencode(items)

    async def request(self, method: str, path: str, params: Mapping[str, Any] | None = None, *,
                      signed: bool = False, api_key: bool = False, resync: bool = True) -> Any:
        """Send one request and return its decoded JSON (see the module docstring for failures)."""
        method = method.upper()
        cost = request_cost(method, path, params)
        backoffs = 0
        resynced = not resync
        session = await self.session()
        while True:
            wait = self.limiter.wait_ms(cost, self.clock.now_ms())
            if wait > 0:
                self.counters["limiter_waits"] += 1
                self.counters["limiter_wait_ms"] += wait
                await asyncio.sleep(wait / 1000)
            self.limiter.charge(cost, self.clock.now_ms())
            payload = self._payload(params, signed)
            headers = {}
            if signed or api_key:
                if self.credentials is None:
                    raise BinanceApiError(method, path, 0, -2015, "no credentials", "auth")
                headers[API_KEY_HEADER] = self.credentials.api_key
            url = self.base_url + path
            body: str | None = None
            if method in ("POST", "PUT") and payload:
                body = payload
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            elif payload:
                url = f"{url}?{payload}"
            self.counters[f"{method} {path}"] += 1
            try:
                async with session.request(method, url, data=body, headers=headers, timeout=self.timeout) as resp:
                    status = resp.status
                    text = await resp.text()
                    self.limiter.observe(dict(resp.headers), self.clock.now_ms())
                    retry_after = resp.headers.get("Retry-After")
            except TimeoutError:
                self.counters["timeouts"] += 1
                log.warning("%s %s timed out", method, path)
                raise BinanceApiError(method, path, 408, None, "request timed out",
                                      "retry" if method == "GET" else "reconcile") from None
            except aiohttp.ClientConnectorError as e:
                self.counters["connect_errors"] += 1
                raise BinanceApiError(method, path, 0, None, f"cannot connect ({type(e).__name__})", "retry") from None
            except aiohttp.ClientError as e:
                self.counters["transport_errors"] += 1
                raise BinanceApiError(method, path, 0, None, f"transport error ({type(e).__name__})",
                                      "retry" if method == "GET" else "reconcile") from None
            data: Any = None
            try:
                data = json.loads(text) if text else None
            except ValueError:
                data = None
            code = data.get("code") if isinstance(data, dict) else None
            if status == 200 and not (isinstance(code, int) and code < 0):
                log.debug("%s %s → 200", method, path)
                return data
            code = code if isinstance(code, int) else None
            msg = str(data.get("msg", "")) if isinstance(data, dict) else text[:200]
            action = action_for(code, status)
            self.counters[f"error:{code if code is not None else status}"] += 1
            log.info("%s %s → HTTP %s code %s (%s)", method, path, status, code, action)
            ra = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None
            if action == "backoff" and backoffs < self.max_backoffs:
                backoffs += 1
                resynced = not resync  # the resend carries a new timestamp: it may resync again
                self.counters["backoffs"] += 1
                delay_ms = ra * 1000 if ra is not None else max(self.limiter.wait_ms(cost, self.clock.now_ms()),
                                                                  250 * 2 ** backoffs)
                self.counters["backoff_wait_ms"] += int(delay_ms)
                await asyncio.sleep(delay_ms / 1000)
                continue
            if code == -1021 and not resynced:
                resynced = True
                await self.sync_time()
                continue
            raise BinanceApiError(method, path, status, code, msg, action, ra)
