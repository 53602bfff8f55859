"""``SimServer``: a local Binance USD-M on one loopback port (REST and WebSocket), over ``SimExchange``.

Binance serves REST (``fapi.binance.com``) and streams (``fstream.binance.com``) on separate hosts;
clients take a REST and a WS base URL, and both point here (``rest_url``, ``ws_url``). A loop task
advances the exchange to its paced market time (``speed``× the wall clock, or as fast as the
slowest subscriber reads at ``max``, with back-pressure and never a dropped message).

WebSocket: ``/ws/<stream>[/<stream>…]`` (raw payloads), ``/ws`` and ``/stream`` with ``SUBSCRIBE``
/ ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` / ``SET_PROPERTY`` / ``GET_PROPERTY``, and
``/stream?streams=a/b/c`` (``{"stream": name, "data": payload}``). Binance's connection rules are
enforced: server pings with a pong deadline, 10 incoming messages/s, a stream cap per connection and
a maximum lifetime (all configurable down to fractions of a second for tests). ``/ws/<token>``
where ``<token>`` is not a market stream goes to the extensions (B's user-data stream).

REST: the market endpoints with Binance's layouts, every request charged per client IP with
``arbray.binance.weights`` (``X-MBX-USED-WEIGHT-1M``, order-count headers, 429 ``-1003``/``-1015``,
418 after repeated 429s). Extensions add routes and share the limiter through ``charge``.
Admin (loopback only, unweighted): ``/_sim/faults``, ``/_sim/state``, ``/_sim/pause``,
``/_sim/resume``, ``/_sim/speed``, ``/_sim/true_book``, ``/_sim/disconnect``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import struct
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import orjson
from aiohttp import WSMsgType, web
from pydantic import Field, ValidationError

from arbray.binance.errors import ERRORS
from arbray.binance.weights import RATE_LIMITS, RateLimit, RateLimiter, UnknownEndpoint, request_cost
from arbray.clock import Clock, SystemClock
from arbray.scoring.config import FrozenModel
from arbray.sim.exchange import ExchangeError, SimExchange
from arbray.sim.faults import ConnectionFaults, FaultConfig, FaultInjector
from arbray.sim.streams import UnknownStream

log = logging.getLogger(__name__)


def _text_frame_header(n: int) -> bytes:
    """The RFC 6455 header of an unmasked final text frame carrying ``n`` bytes."""
    if n < 126:
        return bytes((0x81, n))
    if n < 65_536:
        return struct.pack("!BBH", 0x81, 126, n)
    return struct.pack("!BBQ", 0x81, 127, n)


_HEADERS: dict[int, bytes] = {n: _text_frame_header(n) for n in range(4096)}  # payload length → header
_HEADERS_KEY = web.RequestKey("arbray_rate_headers", dict)
_WS_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback address."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SimServerConfig(FrozenModel):
    """The server's network, pacing, connection-rule and rate-limit settings (Binance's defaults)."""

    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65_535, description="0: an ephemeral port")
    allow_remote: bool = Field(False, description="required to bind a non-loopback host")
    loop_interval_ms: int = Field(10, ge=1, le=1000, description="pace loop period")
    max_chunk_ms: int = Field(50, ge=1, le=60_000, description="'max' speed: market ms per advance")
    high_water: int = Field(2_000, ge=10, description="'max' speed: wait while a connection queues more")
    max_queue: int = Field(500_000, ge=100, description="paced: a connection queueing more is dropped")
    send_batch: int = Field(512, ge=1, description="frames written to the socket in one call")
    write_buffer: int = Field(262_144, ge=1024, description="bytes buffered per connection before waiting")
    ping_interval_s: float = Field(180.0, gt=0)
    pong_timeout_s: float = Field(600.0, gt=0)
    max_incoming_per_s: int = Field(10, ge=1)
    max_streams_per_connection: int = Field(1024, ge=1)
    max_lifetime_s: float = Field(86_400.0, gt=0)
    weight_per_minute: int = Field(2_400, ge=1)
    orders_per_10s: int = Field(300, ge=1)
    orders_per_minute: int = Field(1_200, ge=1)
    futures_data_per_5m: int = Field(1_000, ge=1)
    spot_weight_per_minute: int = Field(6_000, ge=1)
    ban_after_429s: int = Field(5, ge=1, description="429s within ban_window_s that get the IP banned")
    ban_window_s: float = Field(60.0, gt=0)
    ban_s: float = Field(120.0, gt=0, description="IP ban length (Binance: 2 minutes to 3 days)")
    faults: FaultConfig = Field(default_factory=FaultConfig)

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        if not self.allow_remote and not is_loopback(self.host):
            return [(("host", "allow_remote"), "a non-loopback host needs allow_remote=true")]
        return []

    def rate_limits(self) -> tuple[RateLimit, ...]:
        """``RATE_LIMITS`` with this config's limits."""
        by_key = {("weight", 60_000): self.weight_per_minute, ("orders", 10_000): self.orders_per_10s,
                  ("orders", 60_000): self.orders_per_minute, ("futures_data", 300_000): self.futures_data_per_5m,
                  ("spot_weight", 60_000): self.spot_weight_per_minute}
        return tuple(RateLimit(r.pool, r.interval_ms, by_key.get((r.pool, r.interval_ms), r.limit), r.header)
                     for r in RATE_LIMITS)


class ServerExtension(Protocol):
    """Adds routes (B's trading API) and may own ``/ws/<token>`` connections (listen keys)."""

    def install(self, app: web.Application, server: SimServer) -> None: ...

    async def handle_ws(self, token: str, ws: web.WebSocketResponse) -> bool:
        """Called with the prepared WebSocket for ``/ws/<token>`` when ``token`` is not a market
        stream. Return False at once if the token is not yours; if it is, serve it and return True
        when done (the server closes it afterwards)."""
        ...


class _Conn:
    """One market WebSocket connection: its streams, send queue and rule bookkeeping."""

    def __init__(self, number: int, ws: web.WebSocketResponse, combined: bool, remote: str,
                 faults: ConnectionFaults, now: float) -> None:
        self.number = number
        self.ws = ws
        self.combined = combined
        self.remote = remote
        self.faults = faults
        self.streams: dict[str, _Hub] = {}
        self.queue: deque[tuple[str, bytes]] = deque()
        self.wake = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self.opened = now
        self.last_ping = now
        self.awaiting_pong_since: float | None = None
        self.incoming: deque[float] = deque()
        self.closing: str | None = None
        self.sender: asyncio.Task[None] | None = None
        self.transport: asyncio.Transport | None = None
        self.drain: Callable[[], Awaitable[None]] | None = None


class _Hub:
    """Fans one exchange stream out to its raw and combined subscribers (wrapping once)."""

    def __init__(self, server: SimServer, name: str, kind: str) -> None:
        self.server = server
        self.name = name
        self.kind = kind
        self.raw: list[_Conn] = []
        self.combined: list[_Conn] = []
        self.prefix = b'{"stream":"' + name.encode() + b'","data":'
        self.unsubscribe: Callable[[], None] = lambda: None

    def __call__(self, data: bytes) -> None:
        push, kind = self.server._push, self.kind
        for c in self.raw:
            push(c, kind, data)
        if self.combined:
            wrapped = self.prefix + data + b"}"
            for c in self.combined:
                push(c, kind, wrapped)


class _IpState:
    """Rate-limit accounting for one client IP."""

    def __init__(self, limits: tuple[RateLimit, ...]) -> None:
        self.limiter = RateLimiter(limits)
        self.rejected: deque[int] = deque()
        self.banned_until = 0


class SimServer:
    """The simulator's HTTP + WebSocket server (see the module docstring)."""

    def __init__(self, exchange: SimExchange, config: SimServerConfig | None = None,
                 extensions: Sequence[ServerExtension] = (), clock: Clock | None = None) -> None:
        self.exchange = exchange
        self.config = config or SimServerConfig()
        self.clock: Clock = clock or SystemClock()
        self.faults = FaultInjector(self.config.faults)
        self.extensions = tuple(extensions)
        self.sent: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.loop_error: str | None = None
        self._limits = self.config.rate_limits()
        self._ips: dict[str, _IpState] = {}
        self._conns: set[_Conn] = set()
        self._other_ws: set[web.WebSocketResponse] = set()
        self._hubs: dict[str, _Hub] = {}
        self._conn_numbers = 0
        self._stalled_until = 0.0
        self._next_disconnect = 0.0
        self._next_stall = 0.0
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Future[Any]] = set()
        self._port = 0
        self.app = self._build_app()
        for ext in self.extensions:
            ext.install(self.app, self)

    # ------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        return self._port

    @property
    def rest_url(self) -> str:
        return f"http://{self._url_host()}:{self._port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._url_host()}:{self._port}"

    def _url_host(self) -> str:
        host = self.config.host
        return f"[{host}]" if ":" in host else host

    async def start(self) -> None:
        """Bind the port and start the market loop and the connection housekeeping."""
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        now = time.monotonic()
        self._schedule_faults(now)
        self.exchange.set_speed(self.exchange.speed)  # pace from now, not from construction
        self._tasks = [asyncio.create_task(self._market_loop(), name="sim-market"),
                       asyncio.create_task(self._housekeeping(), name="sim-housekeeping")]

    async def stop(self) -> None:
        """Close every connection and release the port."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        await self.disconnect_all("server_stop")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _schedule_faults(self, now: float) -> None:
        cfg = self.faults.config
        self._next_disconnect = now + cfg.disconnect_every_s if cfg.disconnect_every_s else 0.0
        self._next_stall = now + cfg.stall_every_s if cfg.stall_every_s else 0.0

    # ----------------------------------------------------------------- loops
    async def _market_loop(self) -> None:
        ex, cfg = self.exchange, self.config
        interval = cfg.loop_interval_ms / 1000.0
        try:
            while True:
                if ex.speed == "max" and not ex.paused and not ex.finished:
                    await self._wait_for_room()
                    ex.advance_to(ex.now_ms() + cfg.max_chunk_ms)
                    await asyncio.sleep(0)
                else:
                    ex.step()
                    await asyncio.sleep(interval)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the market stops; the error is reported at /_sim/state
            self.loop_error = f"{type(exc).__name__}: {exc}"
            log.exception("simulator market loop failed")

    async def _wait_for_room(self) -> None:
        """Back-pressure for 'max' speed: wait until no connection queues more than high_water."""
        while True:
            full = [c for c in self._conns if c.closing is None and len(c.queue) > self.config.high_water]
            if not full:
                return
            await full[0].room.wait()

    async def _housekeeping(self) -> None:
        """Pings, pong deadlines, connection lifetimes and the periodic faults."""
        cfg = self.config
        while True:
            period = min(1.0, cfg.ping_interval_s / 4, cfg.pong_timeout_s / 4, cfg.max_lifetime_s / 4)
            fc = self.faults.config
            for every in (fc.disconnect_every_s, fc.stall_every_s):
                if every:
                    period = min(period, every / 4)
            await asyncio.sleep(max(0.005, period))
            now = time.monotonic()
            if self._next_disconnect and now >= self._next_disconnect:
                n = await self.disconnect_all("fault_disconnect")
                self.faults.count("disconnect", n)
                self._next_disconnect = now + (fc.disconnect_every_s or 0.0)
            if self._next_stall and now >= self._next_stall:
                self._stalled_until = now + fc.stall_s
                self.faults.count("stall")
                self._next_stall = now + (fc.stall_every_s or 0.0)
            stalled = now < self._stalled_until
            for c in list(self._conns):
                if c.closing is not None:
                    continue
                if now - c.opened >= cfg.max_lifetime_s:
                    self._close_soon(c, "max_lifetime", 1000)
                elif c.awaiting_pong_since is not None and now - c.awaiting_pong_since >= cfg.pong_timeout_s:
                    self._close_soon(c, "no_pong", 1008)
                elif not stalled and now - c.last_ping >= cfg.ping_interval_s:
                    c.last_ping = now
                    if c.awaiting_pong_since is None:
                        c.awaiting_pong_since = now
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await c.ws.ping(b"")
            for ws in list(self._other_ws):
                opened = getattr(ws, "_arbray_opened", now)
                if now - opened >= cfg.max_lifetime_s:
                    self.counts["closed:max_lifetime"] += 1
                    self._other_ws.discard(ws)
                    self._spawn(ws.close(code=1000, message=b"max lifetime"))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        """Run ``coro`` in the background, keeping a reference until it is done."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _close_soon(self, c: _Conn, reason: str, code: int) -> None:
        if c.closing is None:
            c.closing = reason
            self.counts[f"closed:{reason}"] += 1
            c.wake.set()
            self._spawn(self._close(c, code, reason))

    async def _close(self, c: _Conn, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await c.ws.close(code=code, message=reason.encode())

    async def disconnect_all(self, reason: str = "admin_disconnect") -> int:
        """Close every WebSocket (market and extension) now; returns how many."""
        conns = [c for c in self._conns if c.closing is None]
        for c in conns:
            c.closing = reason
            self.counts[f"closed:{reason}"] += 1
            c.wake.set()
        others = list(self._other_ws)
        self._other_ws.clear()
        self.counts[f"closed:{reason}"] += len(others)
        await asyncio.gather(*(self._close(c, 1001, reason) for c in conns),
                             *(self._close_ws(ws, reason) for ws in others), return_exceptions=True)
        return len(conns) + len(others)

    async def _close_ws(self, ws: web.WebSocketResponse, reason: str) -> None:
        with contextlib.suppress(Exception):
            await ws.close(code=1001, message=reason.encode())

    # ------------------------------------------------------------ delivery
    def _push(self, c: _Conn, kind: str, data: bytes) -> None:
        if c.closing is not None:
            return
        q = c.queue
        was_empty = not q
        if self.faults.streams_active:
            for frame in c.faults.apply(kind, data):
                q.append((kind, frame))
        else:
            q.append((kind, data))
        n = len(q)
        if was_empty and n:
            c.wake.set()
        if n > self.config.high_water:
            c.room.clear()
            if n > self.config.max_queue and self.exchange.speed != "max":
                self._close_soon(c, "slow_client", 1008)

    def _control_reply(self, c: _Conn, body: Mapping[str, Any]) -> None:
        c.queue.append(("control", orjson.dumps(body)))
        c.wake.set()

    async def _sender(self, c: _Conn) -> None:
        """Write queued frames in batches straight to the socket (one write per batch, RFC 6455 text
        frames; aiohttp's own pings and close frames go through its writer, whole frames either way),
        waiting for the socket to drain above ``write_buffer`` — the back-pressure 'max' speed relies on."""
        q, sent, cfg = c.queue, self.sent, self.config
        low, batch_max, limit = cfg.high_water // 2, cfg.send_batch, cfg.write_buffer
        tr, drain = c.transport, c.drain
        assert tr is not None
        headers, header = _HEADERS, _text_frame_header
        try:
            while c.closing is None:
                if not q:
                    c.room.set()
                    c.wake.clear()
                    await c.wake.wait()
                    continue
                if tr.is_closing():
                    return
                stalled = bool(self._stalled_until) and time.monotonic() < self._stalled_until
                parts: list[bytes] = []
                n = 0
                while q and n < batch_max:
                    kind, data = q.popleft()
                    n += 1
                    if stalled and kind != "control":
                        self.faults.count("stall_dropped")
                        continue
                    n_bytes = len(data)
                    parts.append(headers.get(n_bytes) or header(n_bytes))
                    parts.append(data)
                    sent[kind] += 1
                if parts:
                    tr.write(b"".join(parts))
                if len(q) < low:
                    c.room.set()
                if tr.get_write_buffer_size() > limit:
                    if drain is not None:
                        await drain()
                    else:
                        while tr.get_write_buffer_size() > limit and not tr.is_closing():
                            await asyncio.sleep(0.001)
        except (ConnectionError, RuntimeError):
            pass
        finally:
            c.room.set()

    # ---------------------------------------------------------- WebSocket
    def _subscribe(self, c: _Conn, name: str) -> None:
        hub = self._hubs.get(name)
        if hub is None:
            spec = self.exchange.stream_spec(name)
            hub = self._hubs[name] = _Hub(self, name, spec.kind)
            hub.unsubscribe = self.exchange.subscribe(name, hub)
        (hub.combined if c.combined else hub.raw).append(c)
        c.streams[name] = hub

    def _unsubscribe(self, c: _Conn, name: str) -> None:
        hub = c.streams.pop(name, None)
        if hub is None:
            return
        for lst in (hub.raw, hub.combined):
            if c in lst:
                lst.remove(c)
        if not hub.raw and not hub.combined:
            hub.unsubscribe()
            del self._hubs[name]

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/ws/"):
            names = [n for n in path[4:].split("/") if n]
            try:
                for n in names:
                    self.exchange.stream_spec(n)
            except UnknownStream:
                if len(names) == 1:
                    return await self._extension_ws(request, names[0])
                return self._ws_http_error(f"unknown stream in {path}")
            return await self._market_ws(request, names, combined=False)
        combined = path.startswith("/stream")
        names = [n for n in request.query.get("streams", "").split("/") if n] if combined else []
        for n in names:
            try:
                self.exchange.stream_spec(n)
            except UnknownStream:
                return self._ws_http_error(f"unknown stream {n}")
        return await self._market_ws(request, names, combined=combined)

    def _ws_http_error(self, msg: str) -> web.Response:
        self.counts["ws_error:bad_url"] += 1
        return web.json_response({"code": 2, "msg": f"Invalid request: {msg}"}, status=400)

    async def _extension_ws(self, request: web.Request, token: str) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, heartbeat=self.config.ping_interval_s, compress=False, timeout=2.0)
        await ws.prepare(request)
        ws._arbray_opened = time.monotonic()  # type: ignore[attr-defined]
        self._other_ws.add(ws)
        try:
            for ext in self.extensions:
                if await ext.handle_ws(token, ws):
                    break
            else:
                self.counts["ws_error:unknown_stream_or_key"] += 1
                await ws.send_str(orjson.dumps({"code": 2, "msg": f"Invalid request: unknown stream {token}",
                                                "id": None}).decode())
        finally:
            self._other_ws.discard(ws)
            if not ws.closed:
                await ws.close()
        return ws

    async def _market_ws(self, request: web.Request, names: list[str], combined: bool) -> web.StreamResponse:
        cfg = self.config
        if len(names) > cfg.max_streams_per_connection:
            return self._ws_http_error(f"too many streams ({len(names)} > {cfg.max_streams_per_connection})")
        ws = web.WebSocketResponse(autoping=False, compress=False, timeout=2.0, max_msg_size=1 << 20)
        await ws.prepare(request)
        self._conn_numbers += 1
        c = _Conn(self._conn_numbers, ws, combined, request.remote or "", self.faults.connection(), time.monotonic())
        c.transport = request.transport
        c.drain = getattr(request.protocol, "_drain_helper", None)  # aiohttp's flow-control wait, if present
        self._conns.add(c)
        self.counts["connections_opened"] += 1
        for n in dict.fromkeys(names):
            self._subscribe(c, n)
        c.sender = asyncio.create_task(self._sender(c))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    if not self._incoming_ok(c):
                        break
                    self._control(c, msg.data)
                elif msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    c.awaiting_pong_since = None
                elif msg.type == WSMsgType.BINARY:  # control JSON sent as a binary frame is accepted too
                    if not self._incoming_ok(c):
                        break
                    self._control(c, msg.data.decode("utf-8", "replace"))
                else:
                    break
        finally:
            if c.closing is None:
                c.closing = "client_closed"
                self.counts["closed:client_closed"] += 1
            c.wake.set()
            for n in list(c.streams):
                self._unsubscribe(c, n)
            self._conns.discard(c)
            if c.sender is not None:
                c.sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await c.sender
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()
        return ws

    def _incoming_ok(self, c: _Conn) -> bool:
        """Binance's incoming-message limit: more than ``max_incoming_per_s`` in 1 s disconnects."""
        now = time.monotonic()
        c.incoming.append(now)
        while c.incoming and now - c.incoming[0] > 1.0:
            c.incoming.popleft()
        if len(c.incoming) > self.config.max_incoming_per_s:
            self._close_soon(c, "incoming_rate", 1008)
            return False
        return True

    def _ws_error(self, c: _Conn, code: int, msg: str, req_id: Any, reason: str) -> None:
        self.counts[f"ws_error:{reason}"] += 1
        self._control_reply(c, {"code": code, "msg": msg, "id": req_id})

    def _control(self, c: _Conn, text: str) -> None:
        """One SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY / GET_PROPERTY request."""
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            self._ws_error(c, 3, f"Invalid JSON: {exc}", None, "bad_json")
            return
        if not isinstance(req, dict):
            self._ws_error(c, 3, "Invalid JSON: expected an object", None, "bad_json")
            return
        req_id = req.get("id")
        if "id" not in req or isinstance(req_id, bool) or not (
                (isinstance(req_id, int) and req_id >= 0) or isinstance(req_id, str)):
            self._ws_error(c, 2, "Invalid request: request ID must be an unsigned integer", None, "bad_id")
            return
        method = req.get("method")
        if method is None:
            self._ws_error(c, 2, "Invalid request: missing field `method`", req_id, "missing_method")
            return
        if method not in _WS_METHODS:
            self._ws_error(c, 2, f"Invalid request: unknown variant {method}, expected one of "
                                 "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`",
                           req_id, "bad_method")
            return
        params = req.get("params", [])
        if not isinstance(params, list):
            self._ws_error(c, 2, "Invalid request: params must be an array", req_id, "bad_params")
            return
        if method == "LIST_SUBSCRIPTIONS":
            self._control_reply(c, {"result": list(c.streams), "id": req_id})
        elif method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not all(isinstance(p, str) for p in params):
                self._ws_error(c, 2, "Invalid request: stream names must be strings", req_id, "bad_params")
                return
            if method == "UNSUBSCRIBE":
                for p in params:
                    self._unsubscribe(c, p)
                self._control_reply(c, {"result": None, "id": req_id})
                return
            for p in params:
                try:
                    self.exchange.stream_spec(p)
                except UnknownStream:
                    self._ws_error(c, 2, f"Invalid request: unknown stream {p}", req_id, "unknown_stream")
                    return
            new = [p for p in dict.fromkeys(params) if p not in c.streams]
            if len(c.streams) + len(new) > self.config.max_streams_per_connection:
                self._ws_error(c, 2, f"Invalid request: too many streams (max "
                                     f"{self.config.max_streams_per_connection} per connection)", req_id,
                               "too_many_streams")
                return
            for p in new:
                self._subscribe(c, p)
            self._control_reply(c, {"result": None, "id": req_id})
        else:
            if not params or not isinstance(params[0], str):
                self._ws_error(c, 2, "Invalid request: property name must be a string", req_id, "bad_property")
            elif params[0] != "combined":
                self._ws_error(c, 0, "Unknown property", req_id, "unknown_property")
            elif method == "GET_PROPERTY":
                self._control_reply(c, {"result": c.combined, "id": req_id})
            elif len(params) != 2 or not isinstance(params[1], bool):
                self._ws_error(c, 1, "Invalid value type: expected Boolean", req_id, "bad_property_value")
            else:
                names = list(c.streams)
                for n in names:
                    self._unsubscribe(c, n)
                c.combined = params[1]
                for n in names:
                    self._subscribe(c, n)
                self._control_reply(c, {"result": None, "id": req_id})

    # ----------------------------------------------------------- REST: limits
    def charge(self, request: web.Request, method: str, path: str,
               params: Mapping[str, Any]) -> web.Response | None:
        """Charge one request to its client IP: None if it may proceed, else the 429/418 answer.

        The used weight / order counts are attached to the request and sent as Binance's headers
        on whatever response it gets.
        """
        ip = request.remote or "unknown"
        now = self.clock.now_ms()
        st = self._ips.get(ip)
        if st is None:
            st = self._ips[ip] = _IpState(self._limits)
        if st.banned_until > now:
            self.counts["rest_418"] += 1
            return self._banned(st.banned_until, now)
        try:
            cost = request_cost(method, path, params)
        except (UnknownEndpoint, ValueError):  # unlisted route, or a malformed limit the handler will refuse
            cost = {"weight": 1}
        violated = None
        for lim in self._limits:
            units = cost.get(lim.pool, 0)
            if units and st.limiter.used(lim.pool, lim.interval_ms, now) + units > lim.limit:
                violated = lim
                break
        spot = path.startswith("/api/")
        if violated is not None:
            st.rejected.append(now)
            while st.rejected and now - st.rejected[0] > self.config.ban_window_s * 1000:
                st.rejected.popleft()
            request[_HEADERS_KEY] = self._usage_headers(st, cost, now, spot)
            if len(st.rejected) >= self.config.ban_after_429s:
                st.banned_until = now + int(self.config.ban_s * 1000)
                self.counts["ip_bans"] += 1
                return self._banned(st.banned_until, now)
            try:
                retry_ms = st.limiter.wait_ms(cost, now)
            except ValueError:
                retry_ms = violated.interval_ms
            self.counts[f"rest_429:{violated.pool}"] += 1
            if violated.pool == "orders":
                per = "10 SECOND" if violated.interval_ms == 10_000 else "1 MINUTE"
                body = {"code": -1015,
                        "msg": f"Too many new orders; current limit is {violated.limit} orders per {per}."}
            else:
                per = "5 MINUTE" if violated.interval_ms == 300_000 else "1 MINUTE"
                body = {"code": -1003, "msg": f"Too much request weight used; current limit is {violated.limit} "
                                              f"request weight per {per}. Please use WebSocket Streams for live "
                                              "updates to avoid polling the API."}
            return web.json_response(body, status=429, headers={"Retry-After": str(max(1, -(-retry_ms // 1000)))})
        st.limiter.charge(cost, now)
        request[_HEADERS_KEY] = self._usage_headers(st, cost, now, spot)
        return None

    def _usage_headers(self, st: _IpState, cost: Mapping[Any, int], now: int, spot: bool) -> dict[str, str]:
        headers = {"X-MBX-USED-WEIGHT-1M": str(st.limiter.used("spot_weight" if spot else "weight", 60_000, now))}
        if "orders" in cost:
            headers["X-MBX-ORDER-COUNT-10S"] = str(st.limiter.used("orders", 10_000, now))
            headers["X-MBX-ORDER-COUNT-1M"] = str(st.limiter.used("orders", 60_000, now))
        return headers

    def _banned(self, until: int, now: int) -> web.Response:
        body = {"code": -1003, "msg": f"Way too much request weight used; IP banned until {until}. "
                                      "Please use WebSocket Streams for live updates to avoid bans."}
        return web.json_response(body, status=418, headers={"Retry-After": str(max(1, -(-(until - now) // 1000)))})

    async def _add_headers(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        headers = request.get(_HEADERS_KEY)
        if headers:
            response.headers.update(headers)

    @web.middleware
    async def _middleware(self, request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_sim/"):
            if not is_loopback(request.remote):
                return web.json_response({"code": -2015, "msg": "admin endpoints are loopback only"}, status=403)
            return await handler(request)
        if path == "/ws" or path.startswith(("/ws/", "/stream")):
            return await handler(request)
        fault = self.faults.rest_fault()
        if fault == "5xx":
            e = ERRORS[-1001]
            return web.json_response({"code": e.code, "msg": e.message}, status=503)
        if fault == "timeout":
            await asyncio.sleep(self.faults.config.rest_timeout_s)
            e = ERRORS[-1007]
            return web.json_response({"code": e.code, "msg": e.message}, status=e.http_status)
        return await handler(request)

    # ------------------------------------------------------------ REST: routes
    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.on_response_prepare.append(self._add_headers)
        ex = self.exchange
        r = app.router
        r.add_get("/ws", self._ws_handler)
        r.add_get("/ws/{tail:.+}", self._ws_handler)
        r.add_get("/stream", self._ws_handler)
        market: dict[str, Callable[[Params], Any]] = {
            "/fapi/v1/ping": lambda p: {},
            "/fapi/v1/time": lambda p: {"serverTime": ex.now_ms()},
            "/fapi/v1/exchangeInfo": lambda p: ex.exchange_info(self._rate_limit_info()),
            "/fapi/v1/depth": lambda p: ex.depth(p.symbol(), p.number("limit", 500)),
            "/fapi/v1/aggTrades": lambda p: ex.agg_trades(p.symbol(), p.opt_int("fromId"), p.opt_int("startTime"),
                                                          p.opt_int("endTime"), p.number("limit", 500)),
            "/fapi/v1/klines": lambda p: ex.klines(p.symbol(), p.required("interval"), p.opt_int("startTime"),
                                                   p.opt_int("endTime"), p.number("limit", 500)),
            "/fapi/v1/premiumIndex": lambda p: p.per_symbol(ex.premium_index, ex.symbols),
            "/fapi/v1/fundingRate": lambda p: ex.funding_rate(p.symbol(), p.opt_int("startTime"),
                                                              p.opt_int("endTime"), p.number("limit", 100)),
            "/fapi/v1/openInterest": lambda p: ex.open_interest(p.symbol()),
            "/futures/data/openInterestHist": lambda p: ex.open_interest_hist(
                p.symbol(), p.required("period"), p.opt_int("startTime"), p.opt_int("endTime"), p.number("limit", 30)),
            "/futures/data/globalLongShortAccountRatio": lambda p: ex.long_short_ratio(
                p.symbol(), p.required("period"), "account", p.opt_int("startTime"), p.opt_int("endTime"),
                p.number("limit", 30)),
            "/futures/data/topLongShortPositionRatio": lambda p: ex.long_short_ratio(
                p.symbol(), p.required("period"), "position", p.opt_int("startTime"), p.opt_int("endTime"),
                p.number("limit", 30)),
            "/fapi/v1/ticker/price": lambda p: p.per_symbol(ex.ticker_price, ex.symbols),
            "/fapi/v1/ticker/bookTicker": lambda p: p.per_symbol(ex.book_ticker, ex.symbols),
            "/api/v3/ticker/price": lambda p: p.per_symbol(ex.spot_price, ex.symbols),
        }
        for path, fn in market.items():
            r.add_get(path, self._rest(path, fn))
        r.add_get("/_sim/faults", self._admin_get_faults)
        r.add_post("/_sim/faults", self._admin_set_faults)
        r.add_get("/_sim/state", self._admin_state)
        r.add_post("/_sim/pause", self._admin_pause)
        r.add_post("/_sim/resume", self._admin_resume)
        r.add_post("/_sim/speed", self._admin_speed)
        r.add_get("/_sim/true_book", self._admin_true_book)
        r.add_post("/_sim/disconnect", self._admin_disconnect)
        return app

    def _rate_limit_info(self) -> list[dict[str, Any]]:
        """exchangeInfo's ``rateLimits`` (Binance lists the per-minute order limit first)."""
        out = []
        for lim in sorted(self._limits, key=lambda r: (r.pool != "weight", -r.interval_ms)):
            if lim.pool == "weight":
                out.append({"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                            "limit": lim.limit})
            elif lim.pool == "orders":
                unit, num = ("SECOND", 10) if lim.interval_ms == 10_000 else ("MINUTE", 1)
                out.append({"rateLimitType": "ORDERS", "interval": unit, "intervalNum": num, "limit": lim.limit})
        return out

    def _rest(self, path: str, fn: Callable[[Params], Any]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            params = Params(request.query)
            refused = self.charge(request, "GET", path, params.raw)
            if refused is not None:
                return refused
            try:
                payload = fn(params)
            except ExchangeError as exc:
                self.counts[f"rest_error:{exc.code}"] += 1
                status = ERRORS[exc.code].http_status if exc.code in ERRORS else 400
                return web.json_response({"code": exc.code, "msg": exc.message}, status=status)
            self.counts[f"rest:{path}"] += 1
            return web.Response(body=orjson.dumps(payload), content_type="application/json")

        return handler

    # ------------------------------------------------------------ admin
    async def _admin_get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.config.model_dump(mode="json"))

    async def _admin_set_faults(self, request: web.Request) -> web.Response:
        try:
            cfg = FaultConfig.model_validate(orjson.loads(await request.read() or b"{}"))
        except (ValidationError, orjson.JSONDecodeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.faults.replace(cfg)
        self._schedule_faults(time.monotonic())
        return web.json_response(cfg.model_dump(mode="json"))

    def state(self) -> dict[str, Any]:
        """What ``/_sim/state`` reports."""
        ex = self.exchange
        return {
            "market_ms": ex.now_ms(), "speed": ex.speed, "paused": ex.paused, "mode": ex.mode,
            "finished": ex.finished, "symbols": list(ex.symbols), "sent": dict(self.sent),
            "connections": len(self._conns) + len(self._other_ws), "server": dict(self.counts),
            "faults": dict(self.faults.counts), "loop_error": self.loop_error, "exchange": ex.stats(),
        }

    async def _admin_state(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.state()), content_type="application/json")

    async def _admin_pause(self, request: web.Request) -> web.Response:
        self.exchange.pause()
        return web.json_response({"paused": True, "market_ms": self.exchange.now_ms()})

    async def _admin_resume(self, request: web.Request) -> web.Response:
        self.exchange.resume()
        return web.json_response({"paused": False, "market_ms": self.exchange.now_ms()})

    async def _admin_speed(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read() or b"{}")
            speed = body["speed"]
            self.exchange.set_speed("max" if speed == "max" else float(speed))
        except (KeyError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
            return web.json_response({"error": f"expected {{'speed': number > 0 or 'max'}}: {exc}"}, status=400)
        return web.json_response({"speed": self.exchange.speed})

    async def _admin_true_book(self, request: web.Request) -> web.Response:
        try:
            book = self.exchange.true_book(request.query.get("symbol", ""))
        except ExchangeError as exc:
            return web.json_response({"code": exc.code, "msg": exc.message}, status=400)
        return web.Response(body=orjson.dumps(book), content_type="application/json")

    async def _admin_disconnect(self, request: web.Request) -> web.Response:
        return web.json_response({"closed": await self.disconnect_all("admin_disconnect")})


class Params:
    """A request's query parameters with Binance's validation errors."""

    def __init__(self, query: Mapping[str, str]) -> None:
        self.raw = dict(query)

    def required(self, name: str) -> str:
        v = self.raw.get(name)
        if not v:
            raise ExchangeError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        return v

    def symbol(self) -> str:
        return self.required("symbol")

    def opt_int(self, name: str) -> int | None:
        v = self.raw.get(name)
        if v is None or v == "":
            return None
        if not v.lstrip("-").isdigit():
            raise ExchangeError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                       "'^[0-9]{1,20}$'.")
        return int(v)

    def number(self, name: str, default: int) -> int:
        v = self.opt_int(name)
        return default if v is None else v

    def per_symbol(self, fn: Callable[[str], dict[str, Any]], symbols: Sequence[str]) -> Any:
        """One object for ``symbol=``, else a list for every symbol (Binance's ticker endpoints)."""
        sym = self.raw.get("symbol")
        return fn(sym) if sym else [fn(s) for s in symbols]

