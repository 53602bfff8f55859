"""The simulator's signed trading endpoints and user-data stream (a ``SimServer`` extension).

REST, as Binance USD-M: ``X-MBX-APIKEY`` names the account; SIGNED routes need ``timestamp``
within ``recvWindow`` of the server clock (-1021) and an HMAC-SHA256 ``signature`` over the query
string concatenated with the form body, as sent (-1022). Parameters may come in the query, the
body or both (the query wins). Every request is charged through the server's rate limiter first
(new orders count against the order limits, -1015). ``POST /fapi/v1/order`` can be hit by the
server's ``order_reject_rate`` fault: -2010 and -1008 refuse the order, -1007 executes it and then
answers the timeout — the case a client must reconcile.

User stream: ``POST /fapi/v1/listenKey`` returns the account's key (the same one while it is
valid, its validity extended), ``PUT`` extends it, ``DELETE`` closes it; ``/ws/<listenKey>`` carries
``ORDER_TRADE_UPDATE``, ``ACCOUNT_UPDATE`` and, when a key lapses, ``listenKeyExpired`` (after which
that connection gets no more events). Accounts come from ``ARBRAY_SIM_API_KEY`` /
``ARBRAY_SIM_API_SECRET`` or are generated at start (``sim_credentials``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl

import orjson
from aiohttp import WSMsgType, web
from pydantic import Field

from arbray.binance.errors import ERRORS, error_body
from arbray.binance.signing import API_KEY_HEADER, DEFAULT_RECV_WINDOW_MS, MAX_RECV_WINDOW_MS, verify
from arbray.clock import Clock
from arbray.scoring.config import FrozenModel
from arbray.sim.matching import BookAccess, MatchingConfig, MatchingEngine, OrderError, SimAccount

KEY_ENV = "ARBRAY_SIM_API_KEY"
SECRET_ENV = "ARBRAY_SIM_API_SECRET"


class FaultSource(Protocol):
    def order_fault(self) -> int | None: ...


class ServerHooks(Protocol):
    """What the trading routes use from ``SimServer``."""

    faults: FaultSource

    def charge(self, request: web.Request, method: str, path: str,
               params: Mapping[str, Any]) -> web.StreamResponse | None: ...


class TradingApiConfig(FrozenModel):
    """Listen-key validity and stream housekeeping."""

    listen_key_validity_ms: int = Field(3_600_000, ge=100, le=24 * 3_600_000, description="Binance: 60 minutes")
    expiry_check_ms: int = Field(200, ge=10, le=60_000, description="how often lapsed keys are looked for")
    stream_queue: int = Field(100_000, ge=10, description="events buffered per user-stream connection")


def sim_credentials(env: Mapping[str, str] | None = None) -> tuple[str, str, bool]:
    """``(api_key, secret, generated)``: from the environment, else a fresh random pair."""
    env = os.environ if env is None else env
    key, secret = env.get(KEY_ENV, ""), env.get(SECRET_ENV, "")
    if key and secret:
        return key, secret, False
    return secrets.token_hex(32), secrets.token_hex(32), True


def trading_extension(book: BookAccess, matching: MatchingConfig | None = None,
                      config: TradingApiConfig | None = None,
                      env: Mapping[str, str] | None = None) -> tuple[TradingApi, dict[str, Any]]:
    """The matching engine and trading API for ``book`` with one account, and what to print about it.

    The account's key pair comes from ``ARBRAY_SIM_API_KEY``/``ARBRAY_SIM_API_SECRET`` or is
    generated; a generated secret is returned once in the info (to print at start), one taken from
    the environment is not repeated.
    """
    key, secret, generated = sim_credentials(env)
    engine = MatchingEngine(book, matching)
    acct = engine.add_account(key, secret)
    info: dict[str, Any] = {"api_key": key, "balance": f"{acct.wallet:f}", "asset": "USDT"}
    if generated:
        info["api_secret"] = secret
    else:
        info["api_secret_from"] = SECRET_ENV
    return TradingApi(engine, config), info


@dataclass(eq=False)
class _ListenKey:
    key: str
    api_key: str
    expires_ms: int
    live: bool = True


@dataclass(eq=False)
class _Conn:
    ws: web.WebSocketResponse
    listen_key: _ListenKey
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    dropped: int = 0


Handler = Callable[[SimAccount, dict[str, str]], Any]


class TradingApi:
    """Signed trading REST and the user-data stream over one ``MatchingEngine``."""

    def __init__(self, engine: MatchingEngine, config: TradingApiConfig | None = None,
                 clock: Clock | None = None) -> None:
        self.engine = engine
        self.config = config or TradingApiConfig()
        self.clock: Clock = clock or engine
        self.server: ServerHooks | None = None
        self._keys: dict[str, _ListenKey] = {}
        self._key_of_account: dict[str, _ListenKey] = {}
        self._conns: set[_Conn] = set()
        self._subscribed: set[str] = set()
        self._expiry_task: asyncio.Task[None] | None = None
        self.counters: Counter[str] = Counter()
        self.arrivals: OrderedDict[str, int] = OrderedDict()  # newClientOrderId → wall ns the order arrived

    # ------------------------------------------------------------------ ServerExtension
    def install(self, app: web.Application, server: ServerHooks) -> None:
        """Add the trading routes and the listen-key expiry task to ``app``."""
        self.server = server
        routes: list[tuple[str, str, Handler, bool]] = [
            ("POST", "/fapi/v1/order", self._new_order, True),
            ("DELETE", "/fapi/v1/order", self._cancel_order, True),
            ("GET", "/fapi/v1/order", self._query_order, True),
            ("GET", "/fapi/v1/openOrders", self._open_orders, True),
            ("DELETE", "/fapi/v1/allOpenOrders", self._cancel_all, True),
            ("GET", "/fapi/v2/positionRisk", lambda a, p: self._positions(a, p, 2), True),
            ("GET", "/fapi/v3/positionRisk", lambda a, p: self._positions(a, p, 3), True),
            ("GET", "/fapi/v2/balance", lambda a, p: self.engine.balance_payloads(a.api_key), True),
            ("GET", "/fapi/v3/balance", lambda a, p: self.engine.balance_payloads(a.api_key), True),
            ("GET", "/fapi/v2/account", lambda a, p: self.engine.account_payload(a.api_key, 2), True),
            ("GET", "/fapi/v3/account", lambda a, p: self.engine.account_payload(a.api_key, 3), True),
            ("GET", "/fapi/v1/userTrades", self._user_trades, True),
            ("GET", "/fapi/v1/income", self._income, True),
            ("POST", "/fapi/v1/leverage", self._leverage, True),
            ("POST", "/fapi/v1/listenKey", self._listen_key_new, False),
            ("PUT", "/fapi/v1/listenKey", self._listen_key_keepalive, False),
            ("DELETE", "/fapi/v1/listenKey", self._listen_key_close, False),
        ]
        for method, path, fn, signed in routes:
            app.router.add_route(method, path, self._route(method, path, fn, signed))
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)

    async def handle_ws(self, token: str, ws: web.WebSocketResponse) -> bool:
        """Serve ``/ws/<listenKey>``; False when ``token`` is not a live listen key."""
        lk = self._keys.get(token)
        if lk is None or not lk.live:
            return False
        self._subscribe(lk.api_key)
        conn = _Conn(ws, lk, asyncio.Queue(self.config.stream_queue))
        self._conns.add(conn)
        self.counters["stream_connections"] += 1
        writer = asyncio.create_task(self._writer(conn))
        try:
            async for msg in ws:  # the user stream takes no client messages; read to see the close
                if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self._conns.discard(conn)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return True

    # ------------------------------------------------------------------ streams
    def _subscribe(self, api_key: str) -> None:
        if api_key in self._subscribed:
            return
        self._subscribed.add(api_key)
        self.engine.subscribe(api_key, lambda ev: self._fan_out(api_key, ev))

    def _fan_out(self, api_key: str, event: dict[str, Any]) -> None:
        text: str | None = None
        for conn in list(self._conns):
            if conn.listen_key.api_key != api_key or not conn.listen_key.live:
                continue
            text = text or orjson.dumps(event).decode()
            try:
                conn.queue.put_nowait(text)
                self.counters["events_sent"] += 1
            except asyncio.QueueFull:
                conn.dropped += 1
                self.counters["events_dropped_slow_client"] += 1

    async def _writer(self, conn: _Conn) -> None:
        while True:
            text = await conn.queue.get()
            if text is None:  # the listen key was closed: so is its stream
                await conn.ws.close()
                return
            await conn.ws.send_str(text)

    async def drop_streams(self) -> int:
        """Close every user-stream connection now (what an exchange-side disconnect looks like)."""
        conns = list(self._conns)
        for c in conns:
            await c.ws.close(code=1001, message=b"server going away")
        self.counters["streams_dropped"] += len(conns)
        return len(conns)

    async def _on_startup(self, app: web.Application) -> None:
        self._expiry_task = asyncio.create_task(self._expiry_loop())

    async def _on_cleanup(self, app: web.Application) -> None:
        if self._expiry_task is not None:
            self._expiry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry_task

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.expiry_check_ms / 1000)
            self.expire_keys()

    def expire_keys(self) -> int:
        """Lapse every key past its validity: tell its connections ``listenKeyExpired``, then go quiet."""
        now = self.clock.now_ms()
        n = 0
        for lk in list(self._keys.values()):
            if lk.live and lk.expires_ms <= now:
                lk.live = False
                n += 1
                del self._keys[lk.key]
                if self._key_of_account.get(lk.api_key) is lk:
                    del self._key_of_account[lk.api_key]
                text = orjson.dumps({"e": "listenKeyExpired", "E": now, "listenKey": lk.key}).decode()
                for conn in self._conns:
                    if conn.listen_key is lk:
                        with contextlib.suppress(asyncio.QueueFull):
                            conn.queue.put_nowait(text)
                self.counters["listen_keys_expired"] += 1
        return n

    # ------------------------------------------------------------------ request plumbing
    def _route(self, method: str, path: str, fn: Handler, signed: bool) -> Callable[[web.Request],
                                                                                  Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, method, path, fn, signed)

        return handler

    async def _handle(self, request: web.Request, method: str, path: str, fn: Handler,
                      signed: bool) -> web.StreamResponse:
        arrived_ns = time.time_ns()
        raw_query = request.rel_url.raw_query_string
        body = await request.text() if request.can_read_body else ""
        params = dict(parse_qsl(body, keep_blank_values=True))
        params.update(parse_qsl(raw_query, keep_blank_values=True))
        if (method, path) == ("POST", "/fapi/v1/order") and params.get("newClientOrderId"):
            self.arrivals.setdefault(params["newClientOrderId"], arrived_ns)  # (for latency measurements)
            while len(self.arrivals) > 100_000:
                self.arrivals.popitem(last=False)
        assert self.server is not None, "install() first"
        limited = self.server.charge(request, method, path, params)
        if limited is not None:
            return limited
        self.counters[f"{method} {path}"] += 1
        try:
            acct = self._authenticate(request, params, raw_query + body, signed)
            fault = self.server.faults.order_fault() if (method, path) == ("POST", "/fapi/v1/order") else None
            if fault is not None and fault != -1007:
                self.counters[f"fault:{fault}"] += 1
                return _error(fault)
            result = fn(acct, params)
            if fault == -1007:  # executed, but the client is told the outcome is unknown
                self.counters["fault:-1007"] += 1
                return _error(-1007)
        except OrderError as e:
            self.counters[f"error:{e.code}"] += 1
            return web.json_response(e.body, status=e.http_status)
        return web.json_response(result, dumps=lambda o: orjson.dumps(o).decode())

    def _authenticate(self, request: web.Request, params: Mapping[str, str], total: str,
                      signed: bool) -> SimAccount:
        key = request.headers.get(API_KEY_HEADER, "")
        if not key:
            raise OrderError(-2014)
        acct = self.engine.accounts.get(key)
        if acct is None:
            raise OrderError(-2015)
        if not signed:
            return acct
        try:
            ts = int(params.get("timestamp", ""))
            window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS))
        except ValueError:
            raise OrderError(-1102) from None
        if not 0 < window <= MAX_RECV_WINDOW_MS:
            raise OrderError(-1130, "recvWindow")
        now = self.clock.now_ms()
        if not (ts < now + 1000 and now - ts <= window):
            raise OrderError(-1021)
        if "signature" not in params or not verify(acct.secret.get_secret_value(), total):
            raise OrderError(-1022)
        return acct

    # ------------------------------------------------------------------ endpoints
    def _new_order(self, acct: SimAccount, p: dict[str, str]) -> Any:
        return self.engine.new_order(acct.api_key, p)

    def _cancel_order(self, acct: SimAccount, p: dict[str, str]) -> Any:
        return self.engine.cancel_order(acct.api_key, _symbol(p), _opt_int(p, "orderId"),
                                        p.get("origClientOrderId") or None)

    def _query_order(self, acct: SimAccount, p: dict[str, str]) -> Any:
        return self.engine.query_order(acct.api_key, _symbol(p), _opt_int(p, "orderId"),
                                       p.get("origClientOrderId") or None)

    def _open_orders(self, acct: SimAccount, p: dict[str, str]) -> Any:
        return self.engine.open_orders(acct.api_key, p.get("symbol") or None)

    def _cancel_all(self, acct: SimAccount, p: dict[str, str]) -> Any:
        self.engine.cancel_all(acct.api_key, _symbol(p))
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def _positions(self, acct: SimAccount, p: dict[str, str], version: int) -> Any:
        return self.engine.position_payloads(acct.api_key, p.get("symbol") or None, version)

    def _user_trades(self, acct: SimAccount, p: dict[str, str]) -> Any:
        return self.engine.user_trades(acct.api_key, _symbol(p), _opt_int(p, "orderId"), _opt_int(p, "fromId"),
                                       _opt_int(p, "startTime"), _opt_int(p, "endTime"),
                                       min(1000, _opt_int(p, "limit") or 500))

    def _income(self, acct: SimAccount, p: dict[str, str]) -> Any:
        return self.engine.income_rows(acct.api_key, p.get("symbol") or None, p.get("incomeType") or None,
                                       _opt_int(p, "startTime"), _opt_int(p, "endTime"),
                                       min(1000, _opt_int(p, "limit") or 100))

    def _leverage(self, acct: SimAccount, p: dict[str, str]) -> Any:
        lev = _opt_int(p, "leverage")
        if lev is None:
            raise OrderError(-1102)
        return self.engine.set_leverage(acct.api_key, _symbol(p), lev)

    def _listen_key_new(self, acct: SimAccount, p: dict[str, str]) -> Any:
        now = self.clock.now_ms()
        lk = self._key_of_account.get(acct.api_key)
        if lk is None or not lk.live:
            lk = _ListenKey(secrets.token_hex(32), acct.api_key, 0)
            self._keys[lk.key] = lk
            self._key_of_account[acct.api_key] = lk
            self.counters["listen_keys_created"] += 1
        lk.expires_ms = now + self.config.listen_key_validity_ms
        return {"listenKey": lk.key}

    def _listen_key_keepalive(self, acct: SimAccount, p: dict[str, str]) -> Any:
        lk = self._key_of_account.get(acct.api_key)
        if lk is None or not lk.live:
            raise OrderError(-1125)
        lk.expires_ms = self.clock.now_ms() + self.config.listen_key_validity_ms
        self.counters["listen_key_keepalives"] += 1
        return {"listenKey": lk.key}

    def _listen_key_close(self, acct: SimAccount, p: dict[str, str]) -> Any:
        lk = self._key_of_account.pop(acct.api_key, None)
        if lk is not None:
            lk.live = False
            self._keys.pop(lk.key, None)
            for conn in self._conns:
                if conn.listen_key is lk:
                    conn.queue.put_nowait(None)
        return {}

    def stats(self) -> dict[str, Any]:
        """Requests, errors, injected faults and stream counters."""
        return {**self.counters, "stream_connections_open": len(self._conns), "listen_keys_live": len(self._keys)}


def _error(code: int) -> web.Response:
    return web.json_response(error_body(code), status=ERRORS[code].http_status)


def _symbol(p: Mapping[str, str]) -> str:
    s = p.get("symbol")
    if not s:
        raise OrderError(-1102)
    return s


def _opt_int(p: Mapping[str, str], name: str) -> int | None:
    v = p.get(name)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise OrderError(-1102) from None
