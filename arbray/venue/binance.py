"""``BinanceVenue``: the execution machine's ``Venue`` on Binance USD-M (or the simulator) over REST + user stream.

``submit``/``cancel`` are synchronous, as the ``Venue`` protocol requires: they schedule the
request on the event loop and return. Everything that happens comes back through the handler as
``Fill`` / ``OrderUpdate`` / ``FundingCharge`` with ``account`` = the strategy that sent the order,
in the order the paper venue would report it (fills before the terminal update, a lost cancel
race as ``cancel_rejected`` after the fills that won it).

Idempotency: the engine's client ids map deterministically to ``newClientOrderId``
(``arbray.venue.client_ids``); requests for one order are serialised; an outcome that is unknown
(-1006/-1007, HTTP 408/503, a timeout or a dropped connection) is resolved by querying the order
by its client id until its real state is known — never by sending a second order. Fills are
deduplicated by (symbol, trade id), so the stream and REST recovery can both report one fill and
the engine sees it once. See ``docs/venue.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter, OrderedDict, deque
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

import aiohttp
from pydantic import Field

from arbray.binance.errors import ERRORS
from arbray.binance.signing import DEFAULT_RECV_WINDOW_MS, MAX_RECV_WINDOW_MS
from arbray.binance.weights import RATE_LIMITS, RateLimit
from arbray.clock import Clock, SystemClock
from arbray.execution.venue import EventHandler, Fill, FundingCharge, Order, OrderUpdate, UpdateStatus, VenueEvent
from arbray.scoring.config import FrozenModel
from arbray.symbols import SymbolSpec, spec_for
from arbray.venue.client_ids import DEFAULT_PREFIX, ClientIdMap, parse_engine_id
from arbray.venue.credentials import BinanceCredentials
from arbray.venue.events import (
    OrderTradeUpdate,
    PayloadError,
    RestOrder,
    parse_order_trade_update,
    parse_rest_order,
    parse_user_trade,
)
from arbray.venue.rest import BinanceApiError, BinanceRest

log = logging.getLogger("arbray.venue")
_FILL_LOG_LIMIT = 100_000  # fills per symbol kept with their times (funding attribution); older ones are folded

TESTNET_REST = "https://testnet.binancefuture.com"
TESTNET_WS = "wss://fstream.binancefuture.com"
PRODUCTION_REST = "https://fapi.binance.com"
PRODUCTION_WS = "wss://fstream.binance.com"

REJECT_REASONS: dict[int, str] = {
    -5022: "post_only_would_cross",  # the paper venue's reason: the machine reacts identically
    -2019: "margin_insufficient",
    -2022: "reduce_only_no_position",
}
"""Binance codes whose reject reason is the paper venue's; every other code is rejected with its name."""


def is_production_url(url: str) -> bool:
    """Whether ``url`` points at Binance's live exchange (any ``*.binance.com`` host)."""
    host = (urlparse(url).hostname or "").lower()
    return host == "binance.com" or host.endswith(".binance.com")


class BinanceVenueConfig(FrozenModel):
    """Where the venue connects and how it paces, retries and reconciles."""

    rest_base: str = Field(TESTNET_REST, description="REST base URL (no path)")
    ws_base: str = Field(TESTNET_WS, description="WebSocket base URL; the user stream is <ws_base>/ws/<listenKey>")
    allow_production: bool = Field(False, description="must be True to trade on Binance's live exchange")
    recv_window_ms: int = Field(DEFAULT_RECV_WINDOW_MS, ge=100, le=MAX_RECV_WINDOW_MS)
    request_timeout_s: float = Field(10.0, gt=0, le=120)
    connect_timeout_s: float = Field(10.0, gt=0, le=120)
    keepalive_interval_s: float = Field(1_800.0, gt=0, le=3_600, description="listen-key PUT period (60 min validity)")
    reconnect_initial_s: float = Field(0.5, gt=0, le=60)
    reconnect_max_s: float = Field(30.0, gt=0, le=600)
    ws_heartbeat_s: float = Field(30.0, gt=0, le=600, description="client pings; a dead connection is dropped")
    reconcile_interval_s: float = Field(60.0, ge=0, le=86_400, description="periodic REST reconciliation; 0: off")
    query_attempts: int = Field(8, ge=1, le=100, description="order queries before an unknown outcome is 'not placed'")
    query_backoff_s: float = Field(0.1, gt=0, le=10, description="first wait between those queries (doubles)")
    fill_wait_s: float = Field(1.0, ge=0, le=60, description="wait for the stream before fetching userTrades")
    max_retries: int = Field(5, ge=0, le=50, description="resends after retryable failures")
    max_backoffs: int = Field(5, ge=0, le=50, description="waits on 429/418 before giving up")
    rate_headroom: float = Field(0.9, gt=0, le=1, description="share of each published limit the client uses")
    client_id_prefix: str = Field(DEFAULT_PREFIX, min_length=1, max_length=8, pattern=r"^[\.A-Z\:/a-z0-9_-]+$")

    @classmethod
    def testnet(cls, **overrides: Any) -> BinanceVenueConfig:
        """Binance's futures testnet."""
        return cls(**{"rest_base": TESTNET_REST, "ws_base": TESTNET_WS, **overrides})

    @classmethod
    def production(cls, **overrides: Any) -> BinanceVenueConfig:
        """Binance's live exchange; refused unless ``allow_production=True`` is passed too."""
        return cls(**{"rest_base": PRODUCTION_REST, "ws_base": PRODUCTION_WS, **overrides})

    @property
    def is_production(self) -> bool:
        return is_production_url(self.rest_base) or is_production_url(self.ws_base)

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        out: list[tuple[tuple[str, ...], str]] = []
        if self.is_production and not self.allow_production:
            out.append((("rest_base", "ws_base", "allow_production"),
                        "production Binance URLs are refused unless allow_production=True"))
        if self.reconnect_max_s < self.reconnect_initial_s:
            out.append((("reconnect_initial_s", "reconnect_max_s"), "reconnect_max_s must be ≥ reconnect_initial_s"))
        return out


@dataclass(frozen=True, slots=True)
class VenueOrderView:
    """An order as the venue reported it during reconciliation."""

    client_id: str
    engine_id: str | None
    symbol: str
    side: int
    qty: float
    filled: float
    price: float
    status: str
    order_id: int


@dataclass(frozen=True)
class ReconcileReport:
    """What the venue holds versus what the engine knows."""

    ts_ms: int
    open_orders: tuple[VenueOrderView, ...]
    unknown: tuple[VenueOrderView, ...]
    lost: tuple[str, ...]
    finished: Mapping[str, str]
    recovered_fills: int
    positions: Mapping[str, float]
    position_diffs: Mapping[str, tuple[float, float]]

    @property
    def clean(self) -> bool:
        """Nothing unknown, nothing lost, positions agree."""
        return not self.unknown and not self.lost and not self.position_diffs


@dataclass(eq=False)
class _Tracked:
    """The venue's view of one engine order."""

    engine_id: str
    wire: str
    account: str
    symbol: str
    side: int
    qty: float
    order: Order | None
    order_id: int | None = None
    status: str = "PENDING"  # PENDING until the exchange confirmed it; then its Binance status
    filled: float = 0.0
    accepted: bool = False
    closed: bool = False  # the terminal event (a fill to zero or an update) was delivered
    cancel_requested: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _reason(e: BinanceApiError) -> str:
    if e.code is not None and e.code in REJECT_REASONS:
        return REJECT_REASONS[e.code]
    if e.code is not None and e.code in ERRORS:
        return ERRORS[e.code].name.lower()
    return f"binance_{e.code}" if e.code is not None else f"http_{e.http_status}"


class BinanceVenue:
    """Binance USD-M through signed REST and the user-data stream (implements ``Venue``)."""

    def __init__(self, config: BinanceVenueConfig, credentials: BinanceCredentials, clock: Clock | None = None,
                 session: aiohttp.ClientSession | None = None, limits: tuple[RateLimit, ...] = RATE_LIMITS) -> None:
        if config.is_production and not config.allow_production:
            raise ValueError("production Binance URLs are refused unless allow_production=True")
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.rest = BinanceRest(config.rest_base, credentials, recv_window_ms=config.recv_window_ms,
                                timeout_s=config.request_timeout_s, max_backoffs=config.max_backoffs,
                                headroom=config.rate_headroom, clock=self.clock, session=session, limits=limits)
        self.ids = ClientIdMap(config.client_id_prefix)
        self.specs: dict[str, SymbolSpec] = {}
        self._filters: dict[str, tuple[Decimal, Decimal]] = {}
        self._orders: dict[str, _Tracked] = {}
        self._by_wire: dict[str, _Tracked] = {}
        self._handler: EventHandler | None = None
        self._backlog: list[VenueEvent] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._order_tasks: set[asyncio.Task[Any]] = set()
        self._seen_trades: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._progress = asyncio.Event()
        self._fill_log: dict[str, deque[tuple[int, str, float]]] = {}
        self._fill_base: dict[str, dict[str, float]] = {}
        self._positions: dict[tuple[str, str], float] = {}
        self._venue_positions: dict[str, float] = {}
        self._funding_seen: set[int] = set()
        self._funding_since_ms: int | None = None
        self.foreign: dict[str, OrderTradeUpdate] = {}
        self.counters: Counter[str] = Counter()
        self.last_report: ReconcileReport | None = None
        self._listen_key: str | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connected = asyncio.Event()
        self._stopping = False

    def __repr__(self) -> str:
        return f"BinanceVenue(rest={self.config.rest_base!r}, ws={self.config.ws_base!r}, orders={len(self._orders)})"

    # ================================================================== Venue protocol
    def connect(self, handler: EventHandler) -> None:
        """Route every event to ``handler``; events that arrived before are delivered now."""
        self._handler = handler
        backlog, self._backlog = self._backlog, []
        for ev in backlog:
            self._emit(ev)

    def submit(self, order: Order, now_ms: int) -> None:
        """Send ``order`` (a no-op when its client id is already known)."""
        if order.client_id in self._orders:
            self.counters["duplicate_submits"] += 1
            return
        tr = _Tracked(order.client_id, self.ids.wire(order.client_id), order.account, order.symbol, order.side,
                      order.qty, order)
        self._track(tr)
        self._spawn(self._submit(tr), order_task=True)

    def cancel(self, client_id: str, now_ms: int) -> None:
        """Request the cancellation of a working order (a no-op when unknown or already requested)."""
        tr = self._orders.get(client_id)
        if tr is None or tr.cancel_requested:
            return
        tr.cancel_requested = True
        self._spawn(self._cancel(tr), order_task=True)

    # ================================================================== lifecycle
    async def start(self, known: Iterable[str] | Mapping[str, float] = ()) -> ReconcileReport:
        """Sync the clock, load the symbols, open the user stream, reconcile (``known``: see ``reconcile``)
        and start keep-alive and periodic reconciliation; returns the start-up reconciliation."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        await self.rest.sync_time()
        await self.load_exchange_info()
        await self._renew_listen_key()
        self._spawn(self._stream_loop())
        try:
            await asyncio.wait_for(self._connected.wait(), self.config.connect_timeout_s)
        except TimeoutError:
            raise ConnectionError(f"user stream did not connect within {self.config.connect_timeout_s}s") from None
        report = await self.reconcile(known)
        self._spawn(self._keepalive_loop())
        if self.config.reconcile_interval_s > 0:
            self._spawn(self._reconcile_loop())
        return report

    async def stop(self, drain_s: float = 5.0) -> None:
        """Finish in-flight order requests (up to ``drain_s``), close the stream and the session."""
        await self.wait_idle(drain_s)
        self._stopping = True
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._ws is not None:
            await self._ws.close()
        if self._listen_key is not None:
            with contextlib.suppress(BinanceApiError):
                await self.rest.request("DELETE", "/fapi/v1/listenKey", api_key=True)
        await self.rest.close()

    async def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Wait until no order request or recovery is in flight; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._order_tasks:
            left = deadline - loop.time()
            if left <= 0:
                return False
            await asyncio.wait(set(self._order_tasks), timeout=left)
        return True

    def _spawn(self, coro: Coroutine[Any, Any, Any], order_task: bool = False) -> None:
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is None and loop is None:
            coro.close()
            raise RuntimeError("BinanceVenue needs a running event loop (call start() first)")
        if running is not None and (loop is None or running is loop):
            self._register(running.create_task(coro), order_task)
        else:
            assert loop is not None
            loop.call_soon_threadsafe(lambda: self._register(loop.create_task(coro), order_task))

    def _register(self, task: asyncio.Task[Any], order_task: bool) -> None:
        self._tasks.add(task)
        if order_task:
            self._order_tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._order_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.counters["task_errors"] += 1
            log.error("venue task failed: %r", task.exception())

    # ================================================================== symbols
    async def load_exchange_info(self) -> dict[str, SymbolSpec]:
        """Tick, step and minimum notional of every trading symbol from ``/fapi/v1/exchangeInfo``."""
        info = await self.rest.request("GET", "/fapi/v1/exchangeInfo")
        specs: dict[str, SymbolSpec] = {}
        for s in info.get("symbols", []):
            if s.get("status", "TRADING") != "TRADING":
                continue
            filters = {f.get("filterType"): f for f in s.get("filters", [])}
            try:
                tick = Decimal(str(filters["PRICE_FILTER"]["tickSize"])).normalize()
                step = Decimal(str(filters["LOT_SIZE"]["stepSize"])).normalize()
            except (KeyError, ArithmeticError):
                self.counters["exchange_info_bad_symbol"] += 1
                continue
            notional = float(filters.get("MIN_NOTIONAL", {}).get("notional", 5.0))
            sym = str(s["symbol"])
            specs[sym] = replace(spec_for(sym), price_decimals=_places(tick), qty_decimals=_places(step),
                                 min_notional_usd=notional)
            self._filters[sym] = (tick, step)
        self.specs = specs
        return specs

    def _fmt(self, symbol: str, value: float, price: bool) -> str:
        f = self._filters.get(symbol)
        d = Decimal(repr(value))
        if f is None:
            return f"{d.normalize():f}"
        unit = f[0] if price else f[1]
        return f"{(d / unit).to_integral_value() * unit:f}"

    def _order_params(self, o: Order) -> dict[str, str]:
        p = {"symbol": o.symbol, "side": "BUY" if o.side > 0 else "SELL", "quantity": self._fmt(o.symbol, o.qty, False),
             "newClientOrderId": self.ids.wire(o.client_id), "newOrderRespType": "RESULT"}
        if o.kind == "market":
            p["type"] = "MARKET"
        else:
            if o.price is None:
                raise ValueError(f"limit order {o.client_id} without a price")
            p.update(type="LIMIT", price=self._fmt(o.symbol, o.price, True),
                     timeInForce="GTX" if o.post_only else "GTC")
        if o.reduce_only:
            p["reduceOnly"] = "true"
        return p

    # ================================================================== events out
    def _emit(self, ev: VenueEvent) -> None:
        if self._handler is None:
            self._backlog.append(ev)
            return
        try:
            self._handler(ev)
        except Exception:  # the engine's bug must not kill the stream reader
            self.counters["handler_errors"] += 1
            log.exception("venue event handler raised")

    def _track(self, tr: _Tracked) -> None:
        self._orders[tr.engine_id] = tr
        self._by_wire[tr.wire] = tr

    def _now(self) -> int:
        return self.rest.timestamp()

    def _accept(self, tr: _Tracked, ts: int) -> None:
        if tr.status == "PENDING":
            tr.status = "NEW"
        if not tr.accepted and not tr.closed:
            tr.accepted = True
            self._emit(OrderUpdate(tr.engine_id, tr.account, "accepted", tr.filled, None, ts))

    def _fill(self, tr: _Tracked, trade_id: int, qty: float, price: float, fee: float, maker: bool, ts: int) -> bool:
        key = (tr.symbol, trade_id)
        if key in self._seen_trades:
            self.counters["duplicate_fills"] += 1
            return False
        self._seen_trades[key] = None
        while len(self._seen_trades) > 200_000:
            self._seen_trades.popitem(last=False)
        tr.filled += qty
        remaining = tr.qty - tr.filled
        if remaining <= 1e-9 * max(1.0, tr.qty):
            remaining = 0.0
        pkey = (tr.account, tr.symbol)
        self._positions[pkey] = self._positions.get(pkey, 0.0) + tr.side * qty
        log_ = self._fill_log.setdefault(tr.symbol, deque())
        log_.append((ts, tr.account, tr.side * qty))
        if len(log_) > _FILL_LOG_LIMIT:  # fold the oldest fills into the base positions
            _, acct, delta = log_.popleft()
            base = self._fill_base.setdefault(tr.symbol, {})
            base[acct] = base.get(acct, 0.0) + delta
        if remaining == 0.0:
            tr.closed = True
            tr.status = "FILLED"
        self.counters["fills"] += 1
        self._emit(Fill(tr.engine_id, tr.account, tr.symbol, tr.side, qty, price, fee, "maker" if maker else "taker",
                        remaining, ts))
        self._progress.set()
        self._progress = asyncio.Event()
        return True

    def _terminal(self, tr: _Tracked, status: str, reason: str | None, ts: int) -> None:
        """Deliver the order's end (canceled/expired/rejected) once; a full fill already was its end."""
        tr.status = status if status != "PENDING" else tr.status
        if tr.closed:
            return
        tr.closed = True
        kind: UpdateStatus = "rejected" if status in ("REJECTED", "LOST") else "canceled"
        if kind == "rejected":
            self.counters[f"rejects:{reason}"] += 1
        self._emit(OrderUpdate(tr.engine_id, tr.account, kind, tr.filled, reason, ts))

    def _cancel_rejected(self, tr: _Tracked, reason: str) -> None:
        self.counters["cancel_rejected"] += 1
        self._emit(OrderUpdate(tr.engine_id, tr.account, "cancel_rejected", tr.filled, reason, self._now()))

    # ================================================================== order requests
    async def _submit(self, tr: _Tracked) -> None:
        async with tr.lock:
            await self._place(tr)

    async def _place(self, tr: _Tracked) -> None:
        assert tr.order is not None
        try:
            params = self._order_params(tr.order)
        except ValueError as e:
            self._terminal(tr, "REJECTED", "invalid_order", self._now())
            log.warning("%s", e)
            return
        retries = 0
        while True:
            try:
                data = await self.rest.request("POST", "/fapi/v1/order", params, signed=True)
            except BinanceApiError as e:
                self.counters[f"order_error:{e.code if e.code is not None else e.http_status}"] += 1
                if e.action in ("reconcile", "duplicate"):
                    self.counters[f"resolve:{e.action}"] += 1
                    if await self._resolve(tr):
                        return
                    if e.action == "duplicate" or retries >= self.config.max_retries:
                        self._terminal(tr, "REJECTED", "unknown_outcome", self._now())
                        return
                    retries += 1
                    continue  # not on the exchange after all queries: send it again, same client id
                if e.action == "retry" and retries < self.config.max_retries:
                    retries += 1
                    self.counters["order_retries"] += 1
                    await asyncio.sleep(self.config.query_backoff_s * 2 ** retries)
                    continue
                self._terminal(tr, "REJECTED", _reason(e), self._now())
                return
            self._apply(tr, parse_rest_order(data))
            return

    async def _query(self, tr: _Tracked) -> RestOrder | None:
        """The order's state on the exchange by client id (None: it does not exist); retries transport errors."""
        for attempt in range(self.config.query_attempts):
            try:
                data = await self.rest.request("GET", "/fapi/v1/order",
                                               {"symbol": tr.symbol, "origClientOrderId": tr.wire}, signed=True)
                return parse_rest_order(data)
            except BinanceApiError as e:
                if e.code == -2013:
                    return None
                self.counters["query_retries"] += 1
                await asyncio.sleep(self.config.query_backoff_s * 2 ** attempt)
            except PayloadError as e:
                self.counters[f"bad_rest:{e.reason}"] += 1
                await asyncio.sleep(self.config.query_backoff_s * 2 ** attempt)
        return None

    async def _resolve(self, tr: _Tracked) -> bool:
        """After an unknown outcome: poll the order until it shows up (True) or the attempts run out."""
        for attempt in range(self.config.query_attempts):
            ro = await self._query(tr)
            if ro is not None:
                self.counters["resolved_placed"] += 1
                self._apply(tr, ro)
                return True
            await asyncio.sleep(self.config.query_backoff_s * 2 ** attempt)
        self.counters["resolved_not_placed"] += 1
        return False

    def _apply(self, tr: _Tracked, ro: RestOrder) -> None:
        """Bring the tracked order up to a REST snapshot (missing fills and the end are settled asynchronously)."""
        tr.order_id = ro.order_id
        if tr.order is None:
            tr.qty, tr.side = ro.orig_qty, ro.side
        if not ro.terminal:
            self._accept(tr, ro.update_ms or self._now())
            tr.status = ro.status
            if ro.executed_qty > tr.filled + 1e-12:
                self._spawn(self._settle(tr, None, ro.executed_qty), order_task=True)
        elif not tr.closed:
            self._spawn(self._settle(tr, ro.status, ro.executed_qty), order_task=True)

    async def _cancel(self, tr: _Tracked) -> None:
        try:
            await self._cancel_locked(tr)
        finally:
            if not tr.closed:
                tr.cancel_requested = False  # the order still works: a later cancel is sent again

    async def _cancel_locked(self, tr: _Tracked) -> None:
        async with tr.lock:
            if tr.closed or tr.status in ("REJECTED", "LOST"):
                self._cancel_rejected(tr, "not_working")
                return
            retries = 0
            while True:
                try:
                    data = await self.rest.request("DELETE", "/fapi/v1/order",
                                                   {"symbol": tr.symbol, "origClientOrderId": tr.wire}, signed=True)
                except BinanceApiError as e:
                    self.counters[f"cancel_error:{e.code if e.code is not None else e.http_status}"] += 1
                    if e.code in (-2011, -2013) or e.action in ("retry", "reconcile", "backoff"):
                        ro = await self._query(tr)
                        if ro is not None and ro.terminal:
                            await self._settle(tr, ro.status, ro.executed_qty)
                            if e.code in (-2011, -2013) or ro.status == "FILLED":  # the cancel did not cancel it
                                self._cancel_rejected(tr, "not_working")
                            return
                        if ro is None and e.code in (-2011, -2013):
                            self._cancel_rejected(tr, "unknown_order")
                            return
                        if retries < self.config.max_retries:
                            retries += 1
                            continue
                    self._cancel_rejected(tr, _reason(e))
                    return
                await self._settle(tr, (ro := parse_rest_order(data)).status, ro.executed_qty)
                return

    async def _settle(self, tr: _Tracked, status: str | None, executed: float) -> None:
        """Deliver fills up to ``executed`` (stream first, then ``userTrades``), then the end ``status``."""
        if executed > tr.filled + 1e-12:
            await self._wait_fills(tr, executed, self.config.fill_wait_s)
        if executed > tr.filled + 1e-12:
            await self._recover_fills(tr)
        if executed > tr.filled + 1e-9 * max(1.0, executed):
            self.counters["unrecovered_fill_qty"] += 1
            log.warning("order %s: venue executed %s, recovered only %s", tr.wire, executed, tr.filled)
        if status is not None and status not in ("NEW", "PARTIALLY_FILLED", "FILLED"):
            self._terminal(tr, status, "expired" if status.startswith("EXPIRED") else None, self._now())

    async def _wait_fills(self, tr: _Tracked, target: float, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while tr.filled < target - 1e-12:
            left = deadline - loop.time()
            if left <= 0:
                return
            ev = self._progress
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ev.wait(), left)

    async def _recover_fills(self, tr: _Tracked, skip_qty: float = 0.0) -> int:
        """Fetch the order's trades and deliver the ones not seen (after ``skip_qty`` the engine already has)."""
        if tr.order_id is None:
            return 0
        try:
            rows = await self.rest.request("GET", "/fapi/v1/userTrades",
                                           {"symbol": tr.symbol, "orderId": tr.order_id, "limit": 1000}, signed=True)
        except BinanceApiError as e:
            self.counters[f"user_trades_error:{e.code}"] += 1
            return 0
        n = 0
        skipped = 0.0
        for t in sorted((parse_user_trade(r) for r in rows), key=lambda t: t.trade_id):
            if skipped + t.qty <= skip_qty + 1e-12:
                skipped += t.qty
                self._seen_trades[(t.symbol, t.trade_id)] = None
                continue
            fee = t.commission if t.commission_asset == "USDT" else 0.0
            if self._fill(tr, t.trade_id, t.qty, t.price, fee, t.maker, t.ts_ms):
                n += 1
        self.counters["recovered_fills"] += n
        return n

    # ================================================================== user stream
    async def _renew_listen_key(self) -> str:
        data = await self.rest.request("POST", "/fapi/v1/listenKey", api_key=True)
        key = str(data["listenKey"])
        if key != self._listen_key:
            self.counters["listen_keys"] += 1
        self._listen_key = key
        return key

    async def _stream_loop(self) -> None:
        attempt = 0
        first = True
        session = await self.rest.session()
        while not self._stopping:
            try:
                if self._listen_key is None:
                    await self._renew_listen_key()
                url = f"{self.config.ws_base.rstrip('/')}/ws/{self._listen_key}"
                async with session.ws_connect(url, heartbeat=self.config.ws_heartbeat_s,
                                              timeout=aiohttp.ClientWSTimeout(ws_close=5.0)) as ws:
                    self._ws = ws
                    self._connected.set()
                    if not first:
                        self.counters["reconnects"] += 1
                        self._spawn(self.recover("reconnect"), order_task=True)
                    first = False
                    attempt = 0
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            self._on_message(msg.data)
                        elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                            break
                self.counters["disconnects"] += 1
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, BinanceApiError, OSError, TimeoutError) as e:
                self.counters["connect_failures"] += 1
                log.warning("user stream connect failed: %s", type(e).__name__)
            finally:
                self._ws = None
                self._connected.clear()
            if self._stopping:
                return
            delay = min(self.config.reconnect_max_s, self.config.reconnect_initial_s * 2 ** attempt)
            attempt += 1
            await asyncio.sleep(delay)

    async def _keepalive_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.config.keepalive_interval_s)
            try:
                await self.rest.request("PUT", "/fapi/v1/listenKey", api_key=True)
                self.counters["keepalives"] += 1
            except BinanceApiError as e:
                self.counters["keepalive_failures"] += 1
                log.warning("listen-key keep-alive failed (%s); renewing", e.code)
                await self._restart_stream()

    async def _restart_stream(self) -> None:
        """New listen key, reconnect (the stream loop then reconciles by REST)."""
        self._listen_key = None
        with contextlib.suppress(BinanceApiError):
            await self._renew_listen_key()
        if self._ws is not None:
            await self._ws.close()

    async def _reconcile_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.config.reconcile_interval_s)
            try:
                self.last_report = await self.reconcile(())
            except BinanceApiError as e:
                self.counters["reconcile_failures"] += 1
                log.warning("periodic reconciliation failed: %s", e.code)

    def _on_message(self, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if isinstance(msg, dict) and "stream" in msg and isinstance(msg.get("data"), dict):
            msg = msg["data"]
        if not isinstance(msg, dict):
            self.counters["bad_messages:json"] += 1
            self._spawn(self.recover("malformed"), order_task=True)
            return
        kind = msg.get("e")
        self.counters[f"events:{kind}"] += 1
        if kind == "ORDER_TRADE_UPDATE":
            try:
                u = parse_order_trade_update(msg)
            except PayloadError as e:
                self.counters[f"bad_messages:{e.reason}"] += 1
                self._spawn(self.recover("malformed"), order_task=True)
                return
            self._on_order_update(u)
        elif kind == "ACCOUNT_UPDATE":
            a = msg.get("a") or {}
            for p in a.get("P") or ():
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    self._venue_positions[str(p["s"])] = float(p["pa"])
            if a.get("m") == "FUNDING_FEE":
                self._spawn(self._sync_funding(), order_task=True)
        elif kind == "listenKeyExpired":
            self.counters["listen_key_expired"] += 1
            self._spawn(self._restart_stream())

    def _on_order_update(self, u: OrderTradeUpdate) -> None:
        tr = self._by_wire.get(u.client_id)
        if tr is None:
            self.foreign[u.client_id] = u
            self.counters["foreign_events"] += 1
            return
        tr.order_id = u.order_id
        if u.exec_type == "NEW":
            self._accept(tr, u.ts_ms)
        elif u.exec_type == "TRADE":
            self._accept(tr, u.ts_ms)
            fee = u.commission if (u.commission_asset or "USDT") == "USDT" else 0.0
            if u.commission_asset not in (None, "USDT"):
                self.counters["commission_not_quote"] += 1
            self._fill(tr, u.trade_id, u.last_qty, u.last_price, fee, u.maker, u.ts_ms)
        elif u.exec_type in ("CANCELED", "EXPIRED"):
            if u.cum_qty > tr.filled + 1e-12:
                self._spawn(self._settle(tr, u.status, u.cum_qty), order_task=True)
            else:
                self._terminal(tr, u.status, "expired" if u.exec_type == "EXPIRED" else None, u.ts_ms)
        else:
            self.counters[f"exec_type:{u.exec_type}"] += 1

    # ================================================================== recovery and reconciliation
    async def recover(self, reason: str) -> int:
        """Bring every unfinished order up to the exchange's state by REST; returns fills recovered."""
        self.counters[f"recover:{reason}"] += 1
        before = self.counters["recovered_fills"]
        for tr in [t for t in self._orders.values() if not t.closed and t.status not in ("PENDING",)]:
            if tr.lock.locked():
                continue  # a submit/cancel in flight settles this order itself
            async with tr.lock:
                ro = await self._query(tr)
                if ro is None:
                    continue
                tr.order_id = ro.order_id
                if ro.executed_qty > tr.filled + 1e-12:
                    await self._settle(tr, None, ro.executed_qty)
                if ro.terminal:
                    await self._settle(tr, ro.status, ro.executed_qty)
        return self.counters["recovered_fills"] - before

    async def reconcile(self, known: Iterable[str] | Mapping[str, float],
                        expected_positions: Mapping[str, float] | None = None) -> ReconcileReport:
        """Compare the venue with the engine: open orders, the orders ``known`` to the engine, positions.

        ``known`` are the engine's client ids (e.g. rebuilt from its log after a restart); they are
        tracked from now on, so replayed ``submit`` calls are no-ops. A mapping id → filled quantity
        tells the venue what the engine already booked, and the missing fills are delivered;
        with plain ids, orders this venue did not track are reported, not re-delivered. Known ids the
        venue has no record of are reported ``lost`` and forgotten, so a replay sends them again.
        Positions are compared with ``expected_positions`` (by symbol), else with this venue's fills.
        """
        self.counters["reconciles"] += 1
        engine_filled = dict(known) if isinstance(known, Mapping) else None
        adopted: list[_Tracked] = []
        for eid in (engine_filled or known):
            if eid in self._orders:
                continue
            parsed = parse_engine_id(eid)
            if parsed is None:
                self.counters["reconcile_unparsable_ids"] += 1
                continue
            account, symbol = parsed
            tr = _Tracked(eid, self.ids.wire(eid), account, symbol, 0, 0.0, None, status="UNKNOWN")
            self._track(tr)
            adopted.append(tr)
        rows = await self.rest.request("GET", "/fapi/v1/openOrders", signed=True)
        open_views: list[VenueOrderView] = []
        unknown: list[VenueOrderView] = []
        open_wires: set[str] = set()
        for row in rows:
            snap = parse_rest_order(row)
            owner = self._by_wire.get(snap.client_id)
            view = VenueOrderView(snap.client_id, owner.engine_id if owner else None, snap.symbol, snap.side,
                                  snap.orig_qty, snap.executed_qty, snap.price, snap.status, snap.order_id)
            open_views.append(view)
            open_wires.add(snap.client_id)
            if owner is None:
                unknown.append(view)
        lost: list[str] = []
        finished: dict[str, str] = {}
        recovered = 0
        for tr in adopted:
            ro = await self._query(tr)
            if ro is None:
                lost.append(tr.engine_id)
                del self._orders[tr.engine_id]
                self._by_wire.pop(tr.wire, None)
                continue
            tr.order_id, tr.qty, tr.side, tr.status = ro.order_id, ro.orig_qty, ro.side, ro.status
            base = engine_filled.get(tr.engine_id) if engine_filled is not None else None
            if base is None:
                tr.filled = ro.executed_qty  # reported, not re-delivered
                tr.accepted = True
                tr.closed = ro.terminal or ro.executed_qty >= ro.orig_qty
            else:
                tr.filled = base
                tr.accepted = True
                if ro.executed_qty > base + 1e-12:
                    recovered += await self._recover_fills(tr, skip_qty=base)
                if ro.terminal:
                    self._terminal(tr, ro.status, None, self._now())
            if ro.terminal:
                finished[tr.engine_id] = ro.status
        for tr in list(self._orders.values()):
            if tr.closed or tr in adopted or tr.wire in open_wires or tr.status == "PENDING" or tr.lock.locked():
                continue
            async with tr.lock:  # it was working and is not open any more: learn how it ended
                now_ro = await self._query(tr)
                if now_ro is not None:
                    await self._settle(tr, None, now_ro.executed_qty)
                    if now_ro.terminal:
                        await self._settle(tr, now_ro.status, now_ro.executed_qty)
                        finished[tr.engine_id] = now_ro.status
        risk = await self.rest.request("GET", "/fapi/v2/positionRisk", signed=True)
        venue_pos = {str(p["symbol"]): float(p["positionAmt"]) for p in risk if float(p["positionAmt"]) != 0.0}
        self._venue_positions.update({str(p["symbol"]): float(p["positionAmt"]) for p in risk})
        expected = dict(expected_positions) if expected_positions is not None else self.positions()
        diffs = {s: (venue_pos.get(s, 0.0), expected.get(s, 0.0)) for s in set(venue_pos) | set(expected)
                 if abs(venue_pos.get(s, 0.0) - expected.get(s, 0.0)) > 1e-9}
        report = ReconcileReport(self._now(), tuple(open_views), tuple(unknown), tuple(lost), finished,
                                 recovered, venue_pos, diffs)
        self.counters["reconcile_unknown_orders"] += len(unknown)
        self.counters["reconcile_lost_orders"] += len(lost)
        self.last_report = report
        return report

    def positions(self, account: str | None = None) -> dict[str, float]:
        """Net position by symbol from the fills this venue delivered (of one strategy, or all)."""
        out: dict[str, float] = {}
        for (acct, sym), q in self._positions.items():
            if account is None or acct == account:
                out[sym] = out.get(sym, 0.0) + q
        return {s: q for s, q in out.items() if abs(q) > 1e-12}

    # ================================================================== funding
    def _position_at(self, symbol: str, ts_ms: int) -> dict[str, float]:
        """Each strategy's position in ``symbol`` after the fills stamped at or before ``ts_ms``."""
        out: dict[str, float] = dict(self._fill_base.get(symbol, {}))
        for t, account, delta in self._fill_log.get(symbol, ()):
            if t <= ts_ms:
                out[account] = out.get(account, 0.0) + delta
        return {a: q for a, q in out.items() if abs(q) > 1e-12}

    async def _sync_funding(self) -> None:
        """Turn new ``FUNDING_FEE`` income into ``FundingCharge`` events per strategy and symbol."""
        params: dict[str, Any] = {"incomeType": "FUNDING_FEE", "limit": 1000}
        if self._funding_since_ms is not None:
            params["startTime"] = self._funding_since_ms
        try:
            rows = await self.rest.request("GET", "/fapi/v1/income", params, signed=True)
        except BinanceApiError as e:
            self.counters[f"funding_sync_error:{e.code}"] += 1
            return
        for row in sorted(rows, key=lambda r: int(r.get("time", 0))):
            tran = int(row.get("tranId", 0))
            if tran in self._funding_seen:
                continue
            self._funding_seen.add(tran)
            symbol, ts, income = str(row.get("symbol", "")), int(row.get("time", 0)), float(row.get("income", 0))
            self._funding_since_ms = max(self._funding_since_ms or 0, ts)
            held = self._position_at(symbol, ts)
            net = sum(held.values())
            if not held or abs(net) < 1e-12:
                self.counters["funding_unattributed"] += 1
                continue
            rate, mark = await self._funding_rate(symbol, ts)
            if rate is None or mark is None:
                rate = 0.0
                mark = abs(income / net) if net else 0.0
            for account, qty in sorted(held.items()):
                amount = qty * mark * rate if rate else -income * qty / net
                self.counters["funding_charges"] += 1
                self._emit(FundingCharge(account, symbol, qty, mark, rate, amount, ts))

    async def _funding_rate(self, symbol: str, ts: int) -> tuple[float | None, float | None]:
        try:
            rows = await self.rest.request("GET", "/fapi/v1/fundingRate",
                                           {"symbol": symbol, "startTime": ts - 1, "endTime": ts + 1, "limit": 1})
        except BinanceApiError:
            return None, None
        if not rows:
            return None, None
        row = rows[-1]
        try:
            rate = float(row["fundingRate"])
            mark = float(row["markPrice"]) if row.get("markPrice") not in (None, "") else None
        except (KeyError, TypeError, ValueError):
            return None, None
        return rate, mark

    # ================================================================== introspection
    def stats(self) -> dict[str, Any]:
        """Counters of requests, errors, fills, recoveries and stream health, plus current state."""
        working = sum(1 for t in self._orders.values() if not t.closed)
        return {
            "orders": len(self._orders), "working": working, "connected": self._connected.is_set(),
            "counters": dict(self.counters), "rest": dict(self.rest.counters),
            "rest_offset_ms": self.rest.offset_ms, "foreign_orders": len(self.foreign),
        }

    def order_state(self, client_id: str) -> dict[str, Any] | None:
        """The venue's view of one engine order (status, filled, exchange id)."""
        tr = self._orders.get(client_id)
        if tr is None:
            return None
        return {"wire": tr.wire, "status": tr.status, "filled": tr.filled, "order_id": tr.order_id,
                "closed": tr.closed}


def _places(d: Decimal) -> int:
    exp = d.normalize().as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 0

