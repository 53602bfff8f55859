"""WebSocket connections of the feed: shard planning, reconnects, watchdog and gap-free rotation.

``plan_shards`` splits the stream names into groups of at most ``shard_size`` (per routed path when
``routed``). A ``StreamShard`` keeps one group connected:

- connects to ``/stream?streams=a/b/c`` (or ``/stream`` plus paced ``SUBSCRIBE`` messages, at most
  ``control_msgs_per_s`` — Binance disconnects a client sending more than 10 per second);
- reconnects after a drop: at once if the connection had delivered data, otherwise after a capped
  exponential delay with jitter; new connections across all shards are capped per 5 minutes;
- a watchdog aborts a connection that delivered nothing for ``watchdog_s`` (a silent stall);
- rotation: after ``rotation_s`` it opens the replacement first, switches once the replacement
  delivers data, and closes the old one ``rotation_overlap_s`` later. Both deliver during the
  overlap; the feed's sequencers drop whatever arrives twice.

Two client libraries (``transport``): aiohttp (default; its C frame reader costs about a third of
``websockets``' pure-Python one per frame, measured in ``benchmarks/bench_feed.py``) and
``websockets``. Either answers server pings itself; the client sends no pings of its own (they
would count against the 10 messages/s). Every frame is handed on as bytes with its local receive
time in ns.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import aiohttp
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from arbray.feeds.config import FeedConfig
from arbray.feeds.continuity import Backoff, SlidingWindowThrottle

MessageHandler = Callable[[bytes, int], None]
"""Receives every frame's bytes and its local receive time (epoch ns)."""

_PUBLIC_KINDS = ("depth", "bookTicker")  # what Binance's routed /public path carries
CONNECTS_PER_5_MIN = 300  # Binance: at most 300 new connections per 5 minutes per IP
_USER_AGENT = "arbray-feed/0.1"


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """One connection's worth of streams: the URL path prefix (routed endpoints) and the names."""

    prefix: str
    streams: tuple[str, ...]


def _route(stream: str) -> str:
    kind = stream.split("@", 1)[1] if "@" in stream else stream
    return "/public" if kind.startswith(_PUBLIC_KINDS) or stream == "!bookTicker" else "/market"


def plan_shards(config: FeedConfig) -> list[ShardPlan]:
    """Stream names in groups of at most ``shard_size``, one group per connection."""
    groups: dict[str, list[str]] = {}
    for name in config.stream_names():
        groups.setdefault(_route(name) if config.routed else "", []).append(name)
    size = config.shard_size
    return [ShardPlan(prefix, tuple(names[i:i + size]))
            for prefix, names in groups.items() for i in range(0, len(names), size)]


def shard_url(ws_base: str, plan: ShardPlan, via_url: bool) -> str:
    base = ws_base.rstrip("/") + plan.prefix + "/stream"
    return f"{base}?streams={'/'.join(plan.streams)}" if via_url else base


def _is_data(raw: bytes) -> bool:
    """A market message, not a ``{"result": …, "id": …}`` reply or an error."""
    head = raw[:12]
    return not (head.startswith((b'{"result"', b'{"id"', b'{"error"', b'{"code"')))


class _Connection:
    """One open WebSocket and the task reading it (``_WebsocketsConnection`` / ``_AiohttpConnection``)."""

    def __init__(self, on_message: MessageHandler) -> None:
        self.on_message = on_message
        self.opened_mono = time.monotonic()
        self.last_ns = time.time_ns()
        self.first_data = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.aborted_by_watchdog = False
        self.rotate_at: float | None = None  # monotonic time of the next rotation

    def _seen(self, raw: bytes, t: int) -> None:
        """Before the first data frame (control replies do not count as delivering)."""
        self.last_ns = t
        self.on_message(raw, t)
        if _is_data(raw):
            self.first_data.set()

    async def read(self) -> None:
        raise NotImplementedError

    async def send(self, text: str) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Stop reading now and drop the connection (a stalled peer may never answer a close handshake)."""
        raise NotImplementedError

    async def _close_socket(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._close_socket()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


class _WebsocketsConnection(_Connection):
    """A connection opened with the ``websockets`` library."""

    def __init__(self, ws: ClientConnection, on_message: MessageHandler) -> None:
        super().__init__(on_message)
        self.ws = ws

    async def read(self) -> None:
        recv, now = self.ws.recv, time.time_ns
        with contextlib.suppress(ConnectionClosed):
            while not self.first_data.is_set():
                raw = await recv(decode=False)
                self._seen(raw, now())
            on_message = self.on_message
            while True:  # the hot loop
                raw = await recv(decode=False)
                t = now()
                self.last_ns = t
                on_message(raw, t)

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    def abort(self) -> None:
        transport = self.ws.transport
        if transport is not None:
            transport.abort()

    async def _close_socket(self) -> None:
        await self.ws.close()


class _AiohttpConnection(_Connection):
    """A connection opened with aiohttp's client (C-accelerated frame reader, text frames as bytes)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse[Literal[False]], on_message: MessageHandler) -> None:
        super().__init__(on_message)
        self.ws = ws
        self._closing: asyncio.Task[None] | None = None

    async def read(self) -> None:
        receive, now = self.ws.receive, time.time_ns
        data_types = (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)
        while not self.first_data.is_set():
            msg = await receive()
            if msg.type not in data_types:
                return
            self._seen(msg.data, now())
        on_message = self.on_message
        while True:  # the hot loop
            msg = await receive()
            if msg.type not in data_types:  # CLOSE, CLOSING, CLOSED, ERROR
                return
            t = now()
            self.last_ns = t
            on_message(msg.data, t)

    async def send(self, text: str) -> None:
        await self.ws.send_str(text)

    def abort(self) -> None:
        if self.task is not None:
            self.task.cancel()  # reading stops now; the socket closes in the background
        self._closing = asyncio.get_running_loop().create_task(self.close())

    async def _close_socket(self) -> None:
        await self.ws.close()


class StreamShard:
    """Keeps one group of streams connected (see module doc); ``stats`` is shared with the feed."""

    def __init__(self, name: str, plan: ShardPlan, config: FeedConfig, on_message: MessageHandler,
                 stats: Counter[str], connect_throttle: SlidingWindowThrottle,
                 rng: random.Random | None = None) -> None:
        self.name, self.plan, self.config = name, plan, config
        self.on_message = on_message
        self.stats = stats
        self.url = shard_url(config.ws_base, plan, config.subscribe_via == "url")
        self._connects = connect_throttle
        self._backoff = Backoff(config.backoff_initial_s, config.backoff_max_s, config.backoff_jitter, rng)
        self._live: list[_Connection] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_id = 1
        self._delay_next = False
        self._session: aiohttp.ClientSession | None = None  # the aiohttp transport's
        self.last_error: str | None = None

    @property
    def connections(self) -> int:
        """Connections open now (2 while rotating)."""
        return sum(1 for c in self._live if c.task is not None and not c.task.done())

    async def run(self) -> None:
        """Connect, watch and rotate until cancelled."""
        watchdog = asyncio.create_task(self._watchdog(), name=f"{self.name}-watchdog")
        try:
            await self._supervise()
        finally:
            watchdog.cancel()
            for task in list(self._tasks):
                task.cancel()
            for conn in list(self._live):
                await conn.close()
            self._live.clear()
            if self._session is not None:
                await self._session.close()
                self._session = None

    async def _supervise(self) -> None:
        cfg = self.config
        conn: _Connection | None = None
        while True:
            if conn is None:
                conn = await self._connect_with_backoff()
            assert conn.task is not None
            if conn.rotate_at is None:
                conn.rotate_at = conn.opened_mono + cfg.rotation_s
            done, _ = await asyncio.wait({conn.task}, timeout=max(0.0, conn.rotate_at - time.monotonic()))
            if done:
                self._closed(conn)
                conn = None
                continue
            conn = await self._rotate(conn)

    def _closed(self, conn: _Connection) -> None:
        assert conn.task is not None
        exc = None if conn.task.cancelled() else conn.task.exception()
        self.last_error = None if exc is None else f"{type(exc).__name__}: {exc}"
        self.stats["disconnects"] += 1
        if conn.first_data.is_set():
            self._backoff.reset()  # it worked: reconnect at once
            self._delay_next = False
        else:  # accepted but never delivered: treat like a failed attempt
            self._delay_next = True
        if conn in self._live:
            self._live.remove(conn)

    async def _rotate(self, old: _Connection) -> _Connection:
        """Open the replacement, switch when it delivers, close the old one after the overlap."""
        cfg = self.config
        try:
            new = await asyncio.wait_for(self._connect_with_backoff(), cfg.rotation_switch_timeout_s)
        except TimeoutError:
            return self._rotation_failed(old)
        assert old.task is not None
        first = asyncio.create_task(new.first_data.wait())
        done, _ = await asyncio.wait({first, old.task}, timeout=cfg.rotation_switch_timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        first.cancel()
        if not new.first_data.is_set():
            if old.task in done:  # the old one dropped meanwhile: the new one takes over as it is
                self._closed(old)
                return new
            self._live.remove(new)
            await new.close()
            return self._rotation_failed(old)
        self.stats["rotations"] += 1
        self._spawn(self._retire(old), f"{self.name}-retire")
        return new

    def _rotation_failed(self, old: _Connection) -> _Connection:
        """Keep the old connection and try again after one switch timeout."""
        self.stats["rotation_failures"] += 1
        old.rotate_at = time.monotonic() + self.config.rotation_switch_timeout_s
        return old

    async def _retire(self, old: _Connection) -> None:
        await asyncio.sleep(self.config.rotation_overlap_s)
        if old in self._live:
            self._live.remove(old)
        await old.close()

    def _spawn(self, coro: object, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_with_backoff(self) -> _Connection:
        """Open a connection, waiting between failed attempts (and for the per-IP connect budget)."""
        cfg = self.config
        delay = self._delay_next
        while True:
            if delay:
                await asyncio.sleep(self._backoff.next_delay())
            delay = True
            wait = self._connects.wait_ms(time.time_ns() // 1_000_000)
            if wait > 0:
                self.stats["connect_throttled"] += 1
                await asyncio.sleep(wait / 1000)
            self._connects.record(time.time_ns() // 1_000_000)
            self.stats["connect_attempts"] += 1
            try:
                conn = await self._open()
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed,
                    aiohttp.ClientError) as exc:
                self.stats["connect_failures"] += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                continue
            conn.task = asyncio.create_task(self._read(conn), name=f"{self.name}-conn{self._next_id}")
            self._next_id += 1
            self._live.append(conn)
            self.stats["connects"] += 1
            if cfg.subscribe_via == "subscribe":
                self._spawn(self._subscribe(conn), f"{self.name}-subscribe")
            return conn

    async def _open(self) -> _Connection:
        cfg = self.config
        if cfg.transport == "websockets":
            ws = await connect(self.url, open_timeout=cfg.open_timeout_s, close_timeout=cfg.close_timeout_s,
                               ping_interval=None, max_queue=cfg.max_queue, max_size=2**24,
                               compression="deflate" if cfg.compression else None, proxy=None,
                               user_agent_header=_USER_AGENT)
            return _WebsocketsConnection(ws, self.on_message)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": _USER_AGENT}, trust_env=False,
                timeout=aiohttp.ClientTimeout(total=None, connect=cfg.open_timeout_s))
        aws = await self._session.ws_connect(
            self.url, timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=cfg.close_timeout_s),
            autoping=True, heartbeat=None, compress=15 if cfg.compression else 0, max_msg_size=2**24,
            decode_text=False)
        return _AiohttpConnection(aws, self.on_message)

    async def _read(self, conn: _Connection) -> None:
        await conn.read()

    async def _subscribe(self, conn: _Connection) -> None:
        """Send ``SUBSCRIBE`` in batches, no faster than ``control_msgs_per_s``."""
        cfg = self.config
        streams = self.plan.streams
        interval = 1.0 / cfg.control_msgs_per_s
        for n, i in enumerate(range(0, len(streams), cfg.subscribe_batch)):
            if n:
                await asyncio.sleep(interval)
            msg = {"method": "SUBSCRIBE", "params": list(streams[i:i + cfg.subscribe_batch]), "id": n + 1}
            try:
                await conn.send(orjson.dumps(msg).decode())
            except (ConnectionClosed, ConnectionError, RuntimeError, aiohttp.ClientError):
                return
            self.stats["control_msgs_sent"] += 1

    async def _watchdog(self) -> None:
        """Abort connections that delivered nothing for ``watchdog_s``."""
        limit_ns = int(self.config.watchdog_s * 1e9)
        period = min(1.0, self.config.watchdog_s / 4)
        while True:
            await asyncio.sleep(period)
            now = time.time_ns()
            for conn in list(self._live):
                if not conn.aborted_by_watchdog and now - conn.last_ns > limit_ns:
                    conn.aborted_by_watchdog = True
                    self.stats["watchdog_reconnects"] += 1
                    conn.abort()
