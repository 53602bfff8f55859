"""The simulator's matching engine: accounts, order entry, fills, fees, PnL and funding.

Why: the execution machine and the Binance venue client must be exercised against something that
behaves like Binance USD-M — its filters and error codes, its order states and its user-data
events — without the internet. This module is that exchange's private side, independent of HTTP:
``arbray.sim.trading_api`` puts it behind signed REST and the user stream.

Model (see ``docs/venue.md``):
- Accounts are one-way (``positionSide=BOTH``), cross margin, USDT. A new order needs its initial
  margin (``notional / leverage`` of the part that does not close the position) from the available
  balance (wallet + unrealised PnL − position and open-order margin) or it is refused with -2019.
- Taker parts (market orders, crossing limits) consume the exchange's displayed book through
  ``BookAccess.take`` up to the limit price; what cannot fill expires (IOC, market) or rests (GTC).
- Resting orders are *shadow* orders: they are not shown in the public book. An order joins the
  queue behind the displayed quantity at its price when it arrives; a public trade at its price
  first consumes that queue, then fills it; a trade through its price fills it at its own price.
  One trade's quantity is shared by the resting orders in price-time priority. Cancels of displayed
  quantity ahead are not credited (conservative). A user's own taker fills never fill its resting
  orders.
- Money is exact: every commission, realised PnL and funding amount is a ``Decimal`` rounded to
  8 places when it is booked, and the wallet moves by exactly the amounts the events report.
Quantities and prices are integers on the symbol's step and tick grids.
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Protocol, cast

from pydantic import Field, SecretStr

from arbray.binance.errors import ERRORS, error_body
from arbray.clock import Clock
from arbray.execution.fees import DEFAULT_FEE_TIER, FEE_SCHEDULE
from arbray.scoring.config import FrozenModel

MONEY = Decimal("0.00000001")
ZERO = Decimal(0)
CLIENT_ORDER_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
"""Binance's ``newClientOrderId`` rule (USD-M New Order page)."""
ASSET = "USDT"
_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)  # what /fapi/v1/depth accepts

OrderType = Literal["LIMIT", "MARKET"]
TimeInForce = Literal["GTC", "IOC", "FOK", "GTX"]
OrderStatus = Literal["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED"]
TERMINAL: frozenset[str] = frozenset({"FILLED", "CANCELED", "EXPIRED"})
_TIFS: tuple[str, ...] = ("GTC", "IOC", "FOK", "GTX")
UserEvent = dict[str, Any]
Listener = Callable[[UserEvent], None]


class SymbolFilters(Protocol):
    """What the engine needs to know about a symbol's trading rules."""

    @property
    def tick_size(self) -> float: ...
    @property
    def step_size(self) -> float: ...
    @property
    def min_notional(self) -> float: ...


class BookAccess(Protocol):
    """The exchange's public side as the matching engine uses it (``SimExchange`` implements it)."""

    symbols: tuple[str, ...]

    def now_ms(self) -> int: ...
    def spec(self, symbol: str) -> SymbolFilters: ...
    def best_bid(self, symbol: str) -> tuple[float, float] | None: ...
    def best_ask(self, symbol: str) -> tuple[float, float] | None: ...
    def depth(self, symbol: str, limit: int) -> Mapping[str, Any]: ...
    def take(self, symbol: str, is_buy: bool, qty: float, limit_price: float | None) -> list[tuple[float, float]]: ...
    def on_trade(self, fn: Callable[[str, int, float, float, bool], None]) -> None: ...
    def on_funding(self, fn: Callable[[str, int, float, float], None]) -> None: ...
    def mark_price(self, symbol: str) -> float: ...


class MatchingConfig(FrozenModel):
    """Account defaults, fees and bookkeeping bounds of the simulated exchange."""

    initial_balance: float = Field(100_000.0, gt=0, le=1e12, description="USDT wallet of a new account")
    default_leverage: int = Field(20, ge=1, le=125)
    fee_tier: str = DEFAULT_FEE_TIER
    maker_fee: float | None = Field(None, ge=-0.001, le=0.01, description="overrides the tier; < 0 is a rebate")
    taker_fee: float | None = Field(None, ge=0, le=0.01, description="overrides the tier")
    maint_margin_rate: float = Field(0.004, ge=0, le=0.5, description="maintenance margin / notional (reported)")
    max_open_orders: int = Field(200, ge=1, le=10_000, description="open orders per account and symbol (-2025)")
    history_limit: int = Field(100_000, ge=100, le=10_000_000,
                               description="finished orders, trades and income rows kept per account")
    depth_levels: Literal[5, 10, 20, 50, 100, 500, 1000] = Field(
        1000, description="deepest REST depth snapshot read for queue-position and FOK checks")

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        if self.fee_tier not in FEE_SCHEDULE:
            return [(("fee_tier",), f"unknown fee tier {self.fee_tier!r}; known: {', '.join(sorted(FEE_SCHEDULE))}")]
        return []


class OrderError(Exception):
    """A request the exchange refuses: a Binance error code and its message arguments."""

    def __init__(self, code: int, *args: object) -> None:
        super().__init__(code, *args)
        self.code = code
        self.body = error_body(code, *args)
        self.http_status = ERRORS[code].http_status

    def __str__(self) -> str:
        return f"{self.code}: {self.body['msg']}"


@dataclass(frozen=True, slots=True)
class _Rules:
    tick: Decimal
    step: Decimal
    min_notional: Decimal
    price_places: int
    qty_places: int


@dataclass(slots=True)
class SimOrder:
    """One order's full state on the exchange."""

    order_id: int
    symbol: str
    api_key: str
    client_id: str
    side: int
    type: OrderType
    tif: TimeInForce
    lots: int
    ticks: int
    reduce_only: bool
    time_ms: int
    seq: int
    status: OrderStatus = "NEW"
    filled_lots: int = 0
    cum_quote: Decimal = ZERO
    update_ms: int = 0
    queue_ahead: int = 0

    @property
    def remaining(self) -> int:
        return self.lots - self.filled_lots


@dataclass(slots=True)
class _Position:
    lots: int = 0
    entry: Decimal = ZERO
    realized: Decimal = ZERO  # pre-fee accumulated realised PnL ("cr")
    open_fees: Decimal = ZERO  # commissions paid while building the current position (break-even price)
    update_ms: int = 0


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One fill of one order (``/fapi/v1/userTrades`` row)."""

    trade_id: int
    order_id: int
    symbol: str
    side: int
    ticks: int
    lots: int
    quote: Decimal
    commission: Decimal
    realized: Decimal
    maker: bool
    time_ms: int


@dataclass(frozen=True, slots=True)
class IncomeRecord:
    """One wallet movement (``/fapi/v1/income`` row)."""

    tran_id: int
    symbol: str
    income_type: str
    amount: Decimal
    time_ms: int
    trade_id: str


@dataclass
class SimAccount:
    """An API key's futures account: wallet, leverage per symbol, positions, orders and history."""

    api_key: str
    secret: SecretStr
    wallet: Decimal
    initial: Decimal
    alias: str
    leverage: dict[str, int] = field(default_factory=dict)
    positions: dict[str, _Position] = field(default_factory=dict)
    open_orders: dict[tuple[str, int], SimOrder] = field(default_factory=dict)
    open_client_ids: dict[tuple[str, str], int] = field(default_factory=dict)
    finished: OrderedDict[tuple[str, int], SimOrder] = field(default_factory=OrderedDict)
    last_by_client_id: dict[tuple[str, str], int] = field(default_factory=dict)
    trades: deque[TradeRecord] = field(default_factory=deque)
    income: deque[IncomeRecord] = field(default_factory=deque)
    update_ms: int = 0


class MatchingEngine:
    """Binance USD-M order entry and matching for every account, against one ``BookAccess``."""

    def __init__(self, book: BookAccess, config: MatchingConfig | None = None, clock: Clock | None = None) -> None:
        self.book = book
        self.config = config or MatchingConfig()
        self.clock: Clock = clock if clock is not None else book
        tier = FEE_SCHEDULE[self.config.fee_tier]
        maker = tier.maker if self.config.maker_fee is None else self.config.maker_fee
        taker = tier.taker if self.config.taker_fee is None else self.config.taker_fee
        self.maker_rate = Decimal(str(maker))
        self.taker_rate = Decimal(str(taker))
        self.accounts: dict[str, SimAccount] = {}
        self._listeners: dict[str, list[Listener]] = {}
        self._rules: dict[str, _Rules] = {}
        self._resting: dict[str, list[SimOrder]] = {s: [] for s in book.symbols}
        self._order_ids: dict[str, int] = {}
        self._trade_ids: dict[str, int] = {}
        self._seq = 0
        self._tran_id = 0
        self._taking: str | None = None  # the account whose taker order is executing right now
        self.counters: dict[str, int] = {}
        book.on_trade(self.on_trade)
        book.on_funding(self.on_funding)

    # ------------------------------------------------------------------ accounts and events
    def add_account(self, api_key: str, secret: str, balance: float | None = None) -> SimAccount:
        """Open an account (or return the existing one for ``api_key``)."""
        acct = self.accounts.get(api_key)
        if acct is not None:
            return acct
        wallet = Decimal(str(self.config.initial_balance if balance is None else balance)).quantize(MONEY)
        acct = SimAccount(api_key, SecretStr(secret), wallet, wallet, f"sim{len(self.accounts) + 1}")
        self.accounts[api_key] = acct
        return acct

    def account(self, api_key: str) -> SimAccount:
        """The account of ``api_key``; -2015 when there is none."""
        acct = self.accounts.get(api_key)
        if acct is None:
            raise OrderError(-2015)
        return acct

    def subscribe(self, api_key: str, fn: Listener) -> Callable[[], None]:
        """Deliver every user-data event of ``api_key`` to ``fn``; returns the unsubscribe function."""
        self._listeners.setdefault(api_key, []).append(fn)

        def unsubscribe() -> None:
            fns = self._listeners.get(api_key, [])
            if fn in fns:
                fns.remove(fn)

        return unsubscribe

    def _emit(self, api_key: str, event: UserEvent) -> None:
        for fn in list(self._listeners.get(api_key, ())):
            fn(event)

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def now_ms(self) -> int:
        return self.clock.now_ms()

    # ------------------------------------------------------------------ symbol rules
    def rules(self, symbol: str) -> _Rules:
        """The symbol's tick, step and minimum notional as exact decimals; -1121 for a symbol the exchange lacks."""
        r = self._rules.get(symbol)
        if r is None:
            if symbol not in self._resting:
                if symbol not in self.book.symbols:
                    raise OrderError(-1121)
                self._resting[symbol] = []  # a symbol the exchange listed after we started
            s = self.book.spec(symbol)
            tick, step = Decimal(str(s.tick_size)), Decimal(str(s.step_size))
            r = _Rules(tick, step, Decimal(str(s.min_notional)), _places(tick), _places(step))
            self._rules[symbol] = r
        return r

    def _price(self, r: _Rules, ticks: int) -> Decimal:
        return ticks * r.tick

    def _qty(self, r: _Rules, lots: int) -> Decimal:
        return lots * r.step

    # ------------------------------------------------------------------ order entry
    def new_order(self, api_key: str, params: Mapping[str, str]) -> dict[str, Any]:
        """``POST /fapi/v1/order``: validate, execute and answer as Binance (ACK or RESULT)."""
        acct = self.account(api_key)
        symbol = _required(params, "symbol")
        r = self.rules(symbol)
        side_s = _required(params, "side")
        if side_s not in ("BUY", "SELL"):
            raise OrderError(-1117)
        side = 1 if side_s == "BUY" else -1
        otype_s = _required(params, "type")
        if otype_s not in ("LIMIT", "MARKET"):
            raise OrderError(-1116)
        otype = cast(OrderType, otype_s)
        if params.get("positionSide", "BOTH") != "BOTH":
            raise OrderError(-4061)
        resp_type = params.get("newOrderRespType", "ACK")
        if resp_type not in ("ACK", "RESULT"):
            raise OrderError(-1136)
        reduce_only = _bool_param(params, "reduceOnly")
        lots = self._parse_lots(r, _required(params, "quantity"))
        ticks = 0
        tif: TimeInForce = "GTC"
        if otype == "LIMIT":
            tif_s = _required(params, "timeInForce")
            if tif_s not in _TIFS:
                raise OrderError(-1115)
            tif = cast(TimeInForce, tif_s)
            ticks = self._parse_ticks(r, _required(params, "price"))
        elif "price" in params:
            raise OrderError(-1106, "price")
        client_id = params.get("newClientOrderId") or f"sim-{self._seq + 1}"
        if not CLIENT_ORDER_ID.match(client_id):
            raise OrderError(-4015)
        if (symbol, client_id) in acct.open_client_ids:
            raise OrderError(-4116)
        book_side = self._resting[symbol]
        if sum(1 for o in book_side if o.api_key == api_key) >= self.config.max_open_orders:
            raise OrderError(-2025)

        pos = acct.positions.get(symbol, _Position())
        if reduce_only and (pos.lots == 0 or pos.lots * side > 0):
            raise OrderError(-2022)
        ref_price = self._price(r, ticks) if otype == "LIMIT" else Decimal(str(self.book.mark_price(symbol)))
        if not reduce_only and ref_price * self._qty(r, lots) < r.min_notional:
            raise OrderError(-4164, f"{r.min_notional.normalize():f}")
        crosses = otype == "MARKET" or self._crosses(symbol, side, self._price(r, ticks))
        if tif == "GTX" and crosses:
            raise OrderError(-5022)
        if not reduce_only:
            self._check_margin(acct, symbol, side, lots, self._taker_reference(symbol, side, otype, ref_price))
        if otype == "LIMIT" and tif == "FOK" and self._fillable_lots(symbol, side, ticks, r) < lots:
            raise OrderError(-5021)

        now = self.now_ms()
        order = SimOrder(self._next_order_id(symbol), symbol, api_key, client_id, side, otype, tif, lots, ticks,
                         reduce_only, now, self._next_seq(), update_ms=now)
        acct.open_orders[(symbol, order.order_id)] = order
        acct.open_client_ids[(symbol, client_id)] = order.order_id
        acct.last_by_client_id[(symbol, client_id)] = order.order_id
        self._count(f"orders:{otype}:{tif if otype == 'LIMIT' else 'NA'}")
        self._order_event(order, "NEW")
        ack = self.order_payload(order)
        if crosses:
            self._execute_taker(order)
        if order.status not in TERMINAL:
            if otype == "MARKET" or tif in ("IOC", "FOK"):
                self._finish(order, "EXPIRED")
            else:
                self._rest(order)
        return self.order_payload(order) if resp_type == "RESULT" else ack

    def _parse_lots(self, r: _Rules, text: str) -> int:
        q = _decimal(text)
        if q <= 0:
            raise OrderError(-4003)
        if _places(q) > r.qty_places:
            raise OrderError(-1111)
        lots = q / r.step
        if lots != lots.to_integral_value():
            raise OrderError(-4023)
        return int(lots)

    def _parse_ticks(self, r: _Rules, text: str) -> int:
        p = _decimal(text)
        if p <= 0:
            raise OrderError(-4001)
        if _places(p) > r.price_places:
            raise OrderError(-1111)
        ticks = p / r.tick
        if ticks != ticks.to_integral_value():
            raise OrderError(-4014)
        return int(ticks)

    def _crosses(self, symbol: str, side: int, price: Decimal) -> bool:
        best = self.book.best_ask(symbol) if side > 0 else self.book.best_bid(symbol)
        if best is None:
            return False
        opp = Decimal(str(best[0]))
        return price >= opp if side > 0 else price <= opp

    def _taker_reference(self, symbol: str, side: int, otype: str, ref: Decimal) -> Decimal:
        """Price a new order's margin is computed at: its limit, else the opposite best (or mark)."""
        if otype == "LIMIT":
            return ref
        best = self.book.best_ask(symbol) if side > 0 else self.book.best_bid(symbol)
        return Decimal(str(best[0])) if best is not None else ref

    def _scan(self, symbol: str, bids: bool, last_ticks: int, r: _Rules) -> Iterator[tuple[int, int]]:
        """Displayed (ticks, lots) on one side, best first, down to ``last_ticks`` inclusive.

        The first snapshot is the smallest REST depth that can reach ``last_ticks`` (a level per
        tick at most); a deeper one is read only if that one was full and ended short of it.
        """
        tick, step = float(r.tick), float(r.step)
        best = self.book.best_bid(symbol) if bids else self.book.best_ask(symbol)
        if best is None:
            return
        need = abs(last_ticks - round(best[0] / tick)) + 1
        limits = [n for n in _DEPTH_LIMITS if n <= self.config.depth_levels]
        key = "bids" if bids else "asks"
        seen = 0
        for limit in [n for n in limits if n >= need][:1] + [n for n in limits if n > need * 2][:1]:
            levels = self.book.depth(symbol, limit)[key]
            for p, q in levels[seen:]:
                t = round(float(p) / tick)
                if (t < last_ticks) if bids else (t > last_ticks):
                    return
                yield t, round(float(q) / step)
            seen = len(levels)
            if seen < limit:
                return

    def _fillable_lots(self, symbol: str, side: int, ticks: int, r: _Rules) -> int:
        return sum(q for _, q in self._scan(symbol, side < 0, ticks, r))

    def _displayed_lots(self, symbol: str, side: int, ticks: int, r: _Rules) -> int:
        """Displayed quantity at ``ticks`` on the order's own side (0 inside the spread or off the book)."""
        best = self.book.best_bid(symbol) if side > 0 else self.book.best_ask(symbol)
        if best is None:
            return 0
        best_ticks = round(best[0] / float(r.tick))
        if (ticks > best_ticks) if side > 0 else (ticks < best_ticks):
            return 0  # a new best price: nobody ahead
        if ticks == best_ticks:
            return round(best[1] / float(r.step))
        for t, q in self._scan(symbol, side > 0, ticks, r):
            if t == ticks:
                return q
        return 0

    # ------------------------------------------------------------------ margin
    def _check_margin(self, acct: SimAccount, symbol: str, side: int, lots: int, price: Decimal) -> None:
        r = self.rules(symbol)
        pos = acct.positions.get(symbol, _Position())
        closing = min(lots, abs(pos.lots)) if pos.lots * side < 0 else 0
        opening = lots - closing
        if opening <= 0:
            return
        need = self._qty(r, opening) * price / self.leverage(acct, symbol)
        if need > self.available(acct):
            raise OrderError(-2019)

    def leverage(self, acct: SimAccount, symbol: str) -> int:
        return acct.leverage.get(symbol, self.config.default_leverage)

    def set_leverage(self, api_key: str, symbol: str, leverage: int) -> dict[str, Any]:
        """``POST /fapi/v1/leverage``."""
        acct = self.account(api_key)
        self.rules(symbol)
        if not 1 <= leverage <= 125:
            raise OrderError(-4028)
        acct.leverage[symbol] = leverage
        return {"leverage": leverage, "maxNotionalValue": "1000000000", "symbol": symbol}

    def _mark(self, symbol: str) -> Decimal:
        return Decimal(str(self.book.mark_price(symbol)))

    def unrealized(self, acct: SimAccount, symbol: str) -> Decimal:
        pos = acct.positions.get(symbol)
        if pos is None or pos.lots == 0:
            return ZERO
        return (self._mark(symbol) - pos.entry) * self._qty(self.rules(symbol), pos.lots)

    def position_margin(self, acct: SimAccount, symbol: str) -> Decimal:
        pos = acct.positions.get(symbol)
        if pos is None or pos.lots == 0:
            return ZERO
        return abs(self._qty(self.rules(symbol), pos.lots)) * self._mark(symbol) / self.leverage(acct, symbol)

    def order_margin(self, acct: SimAccount, symbol: str | None = None) -> Decimal:
        """Initial margin held by open non-reduce-only limit orders (at their limit price)."""
        total = ZERO
        for o in acct.open_orders.values():
            if o.reduce_only or (symbol is not None and o.symbol != symbol):
                continue
            r = self.rules(o.symbol)
            total += self._qty(r, o.remaining) * self._price(r, o.ticks) / self.leverage(acct, o.symbol)
        return total

    def available(self, acct: SimAccount) -> Decimal:
        """Wallet + unrealised PnL − position margin − open-order margin."""
        upnl = sum((self.unrealized(acct, s) for s in acct.positions), ZERO)
        pm = sum((self.position_margin(acct, s) for s in acct.positions), ZERO)
        return acct.wallet + upnl - pm - self.order_margin(acct)

    # ------------------------------------------------------------------ execution
    def _execute_taker(self, order: SimOrder) -> None:
        r = self.rules(order.symbol)
        limit = float(self._price(r, order.ticks)) if order.type == "LIMIT" else None
        want = order.remaining
        if order.reduce_only:
            pos = self.accounts[order.api_key].positions.get(order.symbol, _Position())
            want = min(want, abs(pos.lots))
        if want <= 0:
            return
        self._taking = order.api_key
        try:
            fills = self.book.take(order.symbol, order.side > 0, float(self._qty(r, want)), limit)
        finally:
            self._taking = None
        tick, step = float(r.tick), float(r.step)
        for price, qty in fills:
            if order.status in TERMINAL:
                break
            lots = min(round(qty / step), order.remaining)
            if lots > 0:
                self._fill(order, round(price / tick), lots, maker=False)

    def _rest(self, order: SimOrder) -> None:
        r = self.rules(order.symbol)
        order.queue_ahead = self._displayed_lots(order.symbol, order.side, order.ticks, r)
        self._resting[order.symbol].append(order)

    def on_trade(self, symbol: str, ts_ms: int, price: float, qty: float, is_buyer_maker: bool) -> None:
        """A public trade: fill the resting orders it reaches (see the module docstring)."""
        resting = self._resting.get(symbol)
        if not resting:
            return
        r = self.rules(symbol)
        ticks = round(price / float(r.tick))
        budget = round(qty / float(r.step))
        side = 1 if is_buyer_maker else -1  # the resting side the taker hit
        hit = [o for o in resting if o.side == side and o.api_key != self._taking
               and (o.ticks >= ticks if side > 0 else o.ticks <= ticks)]
        if not hit:
            return
        hit.sort(key=lambda o: (-o.ticks * side, o.seq))
        avail: list[int] = []
        for o in hit:  # the print consumed the displayed queue at its price, whoever gets the fills
            if o.ticks == ticks:
                avail.append(max(0, budget - o.queue_ahead))
                o.queue_ahead = max(0, o.queue_ahead - budget)
            else:
                avail.append(budget)
        for o, can in zip(hit, avail, strict=True):
            if budget <= 0:
                break
            lots = min(o.remaining, can, budget)
            if lots <= 0 or o.status in TERMINAL:
                continue
            if o.reduce_only:
                pos = self.accounts[o.api_key].positions.get(symbol, _Position())
                lots = min(lots, abs(pos.lots) if pos.lots * o.side < 0 else 0)
                if lots <= 0:
                    continue
            budget -= lots
            self._fill(o, o.ticks, lots, maker=True)

    def _fill(self, order: SimOrder, ticks: int, lots: int, maker: bool) -> None:
        acct = self.accounts[order.api_key]
        r = self.rules(order.symbol)
        now = self.now_ms()
        price, qty = self._price(r, ticks), self._qty(r, lots)
        quote = price * qty
        commission = (quote * (self.maker_rate if maker else self.taker_rate)).quantize(MONEY)
        pos = acct.positions.setdefault(order.symbol, _Position())
        realized = self._apply_position(pos, r, order.side, ticks, lots, commission)
        pos.update_ms = now
        acct.wallet += realized - commission
        acct.update_ms = now
        order.filled_lots += lots
        order.cum_quote += quote
        order.update_ms = now
        trade_id = self._next_trade_id(order.symbol)
        rec = TradeRecord(trade_id, order.order_id, order.symbol, order.side, ticks, lots, quote, commission,
                          realized, maker, now)
        _push(acct.trades, rec, self.config.history_limit)
        if realized:
            self._income(acct, order.symbol, "REALIZED_PNL", realized, now, str(trade_id))
        if commission:
            self._income(acct, order.symbol, "COMMISSION", -commission, now, str(trade_id))
        self._count("fills:maker" if maker else "fills:taker")
        done = order.remaining == 0
        if done:
            self._close(order, "FILLED")
        else:
            order.status = "PARTIALLY_FILLED"
        self._order_event(order, "TRADE", rec)
        self._account_event(acct, "ORDER", [order.symbol])
        self._expire_reduce_only(acct, order.symbol, pos)

    def _expire_reduce_only(self, acct: SimAccount, symbol: str, pos: _Position) -> None:
        """Reduce-only orders that can no longer reduce the position expire (as Binance does)."""
        stale = [o for o in acct.open_orders.values()
                 if o.symbol == symbol and o.reduce_only and (pos.lots == 0 or pos.lots * o.side > 0)]
        for o in sorted(stale, key=lambda o: o.seq):
            self._finish(o, "EXPIRED")

    def _apply_position(self, pos: _Position, r: _Rules, side: int, ticks: int, lots: int,
                        commission: Decimal) -> Decimal:
        """Book a fill on a one-way position; returns the realised PnL (8 places)."""
        price = self._price(r, ticks)
        realized = ZERO
        signed = side * lots
        if pos.lots == 0 or pos.lots * side > 0:
            held = abs(pos.lots)
            pos.entry = (pos.entry * held + price * lots) / (held + lots)
            pos.lots += signed
            pos.open_fees += commission
            return ZERO
        closing = min(lots, abs(pos.lots))
        direction = 1 if pos.lots > 0 else -1
        realized = ((price - pos.entry) * self._qty(r, closing) * direction).quantize(MONEY)
        pos.realized += realized
        share = Decimal(closing) / Decimal(abs(pos.lots))
        pos.open_fees -= (pos.open_fees * share).quantize(MONEY)
        pos.lots += signed
        if pos.lots == 0:
            pos.entry = ZERO
            pos.open_fees = ZERO
        elif pos.lots * side > 0:  # flipped through zero: the rest opens at the fill price
            pos.entry = price
            pos.open_fees = commission * Decimal(lots - closing) / Decimal(lots)
        return realized

    # ------------------------------------------------------------------ cancels and queries
    def _find(self, acct: SimAccount, symbol: str, order_id: int | None, client_id: str | None) -> SimOrder:
        if order_id is None and not client_id:
            raise OrderError(-1102)
        if order_id is None:
            oid = acct.last_by_client_id.get((symbol, client_id or ""))
            if oid is None:
                raise OrderError(-2013)
            order_id = oid
        key = (symbol, order_id)
        order = acct.open_orders.get(key) or acct.finished.get(key)
        if order is None or (client_id and order.client_id != client_id):
            raise OrderError(-2013)
        return order

    def cancel_order(self, api_key: str, symbol: str, order_id: int | None = None,
                     client_id: str | None = None) -> dict[str, Any]:
        """``DELETE /fapi/v1/order``: -2011 for an order that is unknown or no longer open."""
        acct = self.account(api_key)
        self.rules(symbol)
        try:
            order = self._find(acct, symbol, order_id, client_id)
        except OrderError as e:
            if e.code == -2013:
                raise OrderError(-2011) from None
            raise
        if order.status in TERMINAL:
            self._count("cancel_rejected")
            raise OrderError(-2011)
        self._finish(order, "CANCELED")
        return self.order_payload(order)

    def cancel_all(self, api_key: str, symbol: str) -> int:
        """``DELETE /fapi/v1/allOpenOrders``: cancel every open order of the symbol; returns the count."""
        acct = self.account(api_key)
        self.rules(symbol)
        open_ = sorted((o for o in acct.open_orders.values() if o.symbol == symbol), key=lambda o: o.seq)
        for o in open_:
            self._finish(o, "CANCELED")
        return len(open_)

    def query_order(self, api_key: str, symbol: str, order_id: int | None = None,
                    client_id: str | None = None) -> dict[str, Any]:
        """``GET /fapi/v1/order``."""
        acct = self.account(api_key)
        self.rules(symbol)
        return self.order_payload(self._find(acct, symbol, order_id, client_id), query=True)

    def open_orders(self, api_key: str, symbol: str | None = None) -> list[dict[str, Any]]:
        """``GET /fapi/v1/openOrders``."""
        acct = self.account(api_key)
        if symbol is not None:
            self.rules(symbol)
        orders = sorted((o for o in acct.open_orders.values() if symbol is None or o.symbol == symbol),
                        key=lambda o: o.seq)
        return [self.order_payload(o, query=True) for o in orders]

    def _finish(self, order: SimOrder, status: Literal["CANCELED", "EXPIRED"]) -> None:
        self._close(order, status)
        order.update_ms = self.now_ms()
        self._order_event(order, status)

    def _close(self, order: SimOrder, status: OrderStatus) -> None:
        """Move an order to its terminal status and out of every open index."""
        order.status = status
        acct = self.accounts[order.api_key]
        key = (order.symbol, order.order_id)
        acct.open_orders.pop(key, None)
        if acct.open_client_ids.get((order.symbol, order.client_id)) == order.order_id:
            del acct.open_client_ids[(order.symbol, order.client_id)]
        resting = self._resting[order.symbol]
        if order in resting:
            resting.remove(order)
        acct.finished[key] = order
        while len(acct.finished) > self.config.history_limit:
            old_key, old = acct.finished.popitem(last=False)
            if acct.last_by_client_id.get((old.symbol, old.client_id)) == old_key[1]:
                del acct.last_by_client_id[(old.symbol, old.client_id)]

    # ------------------------------------------------------------------ funding
    def on_funding(self, symbol: str, ts_ms: int, rate: float, mark: float) -> None:
        """Settle funding on every open position of ``symbol``: longs pay a positive rate."""
        if symbol not in self._resting:
            return
        r = self.rules(symbol)
        rate_d, mark_d = Decimal(str(rate)), Decimal(str(mark))
        for acct in self.accounts.values():
            pos = acct.positions.get(symbol)
            if pos is None or pos.lots == 0:
                continue
            amount = (self._qty(r, pos.lots) * mark_d * rate_d).quantize(MONEY)
            if not amount:
                continue
            acct.wallet -= amount
            acct.update_ms = ts_ms
            self._income(acct, symbol, "FUNDING_FEE", -amount, ts_ms, "")
            self._count("funding")
            self._account_event(acct, "FUNDING_FEE", [], balance_change=-amount, ts_ms=ts_ms)

    def _income(self, acct: SimAccount, symbol: str, kind: str, amount: Decimal, ts: int, trade_id: str) -> None:
        self._tran_id += 1
        _push(acct.income, IncomeRecord(self._tran_id, symbol, kind, amount, ts, trade_id), self.config.history_limit)

    # ------------------------------------------------------------------ ids
    def _next_order_id(self, symbol: str) -> int:
        n = self._order_ids.get(symbol, 0) + 1
        self._order_ids[symbol] = n
        return n

    def _next_trade_id(self, symbol: str) -> int:
        n = self._trade_ids.get(symbol, 0) + 1
        self._trade_ids[symbol] = n
        return n

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # ------------------------------------------------------------------ payloads
    def _avg(self, order: SimOrder) -> Decimal:
        if order.filled_lots == 0:
            return ZERO
        r = self.rules(order.symbol)
        return order.cum_quote / self._qty(r, order.filled_lots)

    def order_payload(self, order: SimOrder, query: bool = False) -> dict[str, Any]:
        """An order as ``POST``/``DELETE``/``GET /fapi/v1/order`` return it."""
        r = self.rules(order.symbol)
        pp, qp = r.price_places, r.qty_places
        executed = _fmt(self._qty(r, order.filled_lots), qp)
        out: dict[str, Any] = {
            "avgPrice": _fmt(self._avg(order), pp + 3),
            "clientOrderId": order.client_id,
            "cumQuote": _fmt(order.cum_quote, 8),
            "executedQty": executed,
            "orderId": order.order_id,
            "origQty": _fmt(self._qty(r, order.lots), qp),
            "origType": order.type,
            "price": _fmt(self._price(r, order.ticks), pp),
            "reduceOnly": order.reduce_only,
            "side": "BUY" if order.side > 0 else "SELL",
            "positionSide": "BOTH",
            "status": order.status,
            "stopPrice": "0",
            "closePosition": False,
            "symbol": order.symbol,
            "timeInForce": order.tif,
            "type": order.type,
            "updateTime": order.update_ms,
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "NONE",
            "goodTillDate": 0,
        }
        if query:
            out["time"] = order.time_ms
        else:
            out["cumQty"] = executed
        return out

    def _order_event(self, order: SimOrder, exec_type: str, trade: TradeRecord | None = None) -> None:
        """``ORDER_TRADE_UPDATE`` with every field of anchors §7.6."""
        r = self.rules(order.symbol)
        pp, qp = r.price_places, r.qty_places
        acct = self.accounts[order.api_key]
        bid_notional = ask_notional = ZERO
        for other in acct.open_orders.values():
            if other.symbol == order.symbol and other.type == "LIMIT":
                n = self._price(r, other.ticks) * self._qty(r, other.remaining)
                if other.side > 0:
                    bid_notional += n
                else:
                    ask_notional += n
        now = self.now_ms()
        o: dict[str, Any] = {
            "s": order.symbol, "c": order.client_id, "S": "BUY" if order.side > 0 else "SELL", "o": order.type,
            "f": order.tif, "q": _fmt(self._qty(r, order.lots), qp), "p": _fmt(self._price(r, order.ticks), pp),
            "ap": _fmt(self._avg(order), pp + 3), "sp": "0", "x": exec_type, "X": order.status,
            "i": order.order_id,
            "l": _fmt(self._qty(r, trade.lots), qp) if trade else _fmt(ZERO, qp),
            "z": _fmt(self._qty(r, order.filled_lots), qp),
            "L": _fmt(self._price(r, trade.ticks), pp) if trade else _fmt(ZERO, pp),
        }
        if trade is not None and trade.commission:
            o["N"] = ASSET
            o["n"] = _fmt(trade.commission, 8)
        o.update({
            "T": trade.time_ms if trade else order.update_ms, "t": trade.trade_id if trade else 0,
            "b": _fmt(bid_notional, 8), "a": _fmt(ask_notional, 8), "m": bool(trade and trade.maker),
            "R": order.reduce_only, "wt": "CONTRACT_PRICE", "ot": order.type, "ps": "BOTH", "cp": False,
            "rp": _fmt(trade.realized if trade else ZERO, 8), "pP": False, "si": 0, "ss": 0,
            "V": "NONE", "pm": "NONE", "gtd": 0,
        })
        self._emit(order.api_key, {"e": "ORDER_TRADE_UPDATE", "E": now, "T": o["T"], "o": o})

    def _account_event(self, acct: SimAccount, reason: str, symbols: Sequence[str],
                       balance_change: Decimal = ZERO, ts_ms: int | None = None) -> None:
        """``ACCOUNT_UPDATE``: the USDT balance and the positions of ``symbols``."""
        now = self.now_ms() if ts_ms is None else ts_ms
        wallet = _fmt(acct.wallet, 8)
        positions = []
        for s in symbols:
            r = self.rules(s)
            pos = acct.positions.get(s, _Position())
            positions.append({
                "s": s, "pa": _fmt(self._qty(r, pos.lots), r.qty_places), "ep": _fmt(pos.entry, r.price_places + 5),
                "bep": _fmt(self._break_even(acct, s), r.price_places + 5), "cr": _fmt(pos.realized, 8),
                "up": _fmt(self.unrealized(acct, s), 8), "mt": "cross", "iw": "0", "ps": "BOTH", "ma": ASSET,
            })
        self._emit(acct.api_key, {
            "e": "ACCOUNT_UPDATE", "E": now, "T": now,
            "a": {"m": reason, "B": [{"a": ASSET, "wb": wallet, "cw": wallet, "bc": _fmt(balance_change, 8)}],
                  "P": positions},
        })

    def _break_even(self, acct: SimAccount, symbol: str) -> Decimal:
        pos = acct.positions.get(symbol)
        if pos is None or pos.lots == 0:
            return ZERO
        qty = abs(self._qty(self.rules(symbol), pos.lots))
        return pos.entry + (pos.open_fees / qty if pos.lots > 0 else -pos.open_fees / qty)

    def position_payloads(self, api_key: str, symbol: str | None = None, version: int = 2) -> list[dict[str, Any]]:
        """``GET /fapi/v2/positionRisk`` (every symbol) or ``/fapi/v3/positionRisk`` (held or with orders)."""
        acct = self.account(api_key)
        symbols = [symbol] if symbol is not None else list(self.book.symbols)
        out = []
        for s in symbols:
            r = self.rules(s)
            pos = acct.positions.get(s, _Position())
            has_orders = any(o.symbol == s for o in acct.open_orders.values())
            if version >= 3 and pos.lots == 0 and not has_orders:
                continue
            mark = self._mark(s)
            qty = self._qty(r, pos.lots)
            row: dict[str, Any] = {
                "symbol": s, "positionSide": "BOTH", "positionAmt": _fmt(qty, r.qty_places),
                "entryPrice": _fmt(pos.entry, r.price_places + 5),
                "breakEvenPrice": _fmt(self._break_even(acct, s), r.price_places + 5),
                "markPrice": _fmt(mark, 8), "unRealizedProfit": _fmt(self.unrealized(acct, s), 8),
                "liquidationPrice": "0", "isolatedMargin": "0.00000000", "notional": _fmt(qty * mark, 8),
                "isolatedWallet": "0", "updateTime": pos.update_ms,
            }
            if version >= 3:
                pm = self.position_margin(acct, s)
                om = self.order_margin(acct, s)
                row.update({
                    "marginAsset": ASSET, "initialMargin": _fmt(pm + om, 8),
                    "maintMargin": _fmt(abs(qty) * mark * Decimal(str(self.config.maint_margin_rate)), 8),
                    "positionInitialMargin": _fmt(pm, 8), "openOrderInitialMargin": _fmt(om, 8), "adl": 0,
                    "bidNotional": "0", "askNotional": "0",
                })
            else:
                row.update({
                    "marginType": "cross", "isAutoAddMargin": "false", "leverage": str(self.leverage(acct, s)),
                    "maxNotionalValue": "1000000000",
                })
            out.append(row)
        return out

    def _totals(self, acct: SimAccount) -> dict[str, Decimal]:
        upnl = sum((self.unrealized(acct, s) for s in acct.positions), ZERO)
        pm = sum((self.position_margin(acct, s) for s in acct.positions), ZERO)
        om = self.order_margin(acct)
        maint = sum((abs(self._qty(self.rules(s), p.lots)) * self._mark(s) for s, p in acct.positions.items()), ZERO)
        maint *= Decimal(str(self.config.maint_margin_rate))
        avail = acct.wallet + upnl - pm - om
        return {"wallet": acct.wallet, "upnl": upnl, "pm": pm, "om": om, "maint": maint, "available": avail,
                "withdraw": max(ZERO, min(acct.wallet, avail))}

    def balance_payloads(self, api_key: str) -> list[dict[str, Any]]:
        """``GET /fapi/v2/balance`` and ``/fapi/v3/balance``."""
        acct = self.account(api_key)
        t = self._totals(acct)
        return [{
            "accountAlias": acct.alias, "asset": ASSET, "balance": _fmt(t["wallet"], 8),
            "crossWalletBalance": _fmt(t["wallet"], 8), "crossUnPnl": _fmt(t["upnl"], 8),
            "availableBalance": _fmt(t["available"], 8), "maxWithdrawAmount": _fmt(t["withdraw"], 8),
            "marginAvailable": True, "updateTime": acct.update_ms,
        }]

    def account_payload(self, api_key: str, version: int = 2) -> dict[str, Any]:
        """``GET /fapi/v2/account`` (or v3): totals, the USDT asset and the positions."""
        acct = self.account(api_key)
        t = self._totals(acct)
        totals = {
            "totalInitialMargin": _fmt(t["pm"] + t["om"], 8), "totalMaintMargin": _fmt(t["maint"], 8),
            "totalWalletBalance": _fmt(t["wallet"], 8), "totalUnrealizedProfit": _fmt(t["upnl"], 8),
            "totalMarginBalance": _fmt(t["wallet"] + t["upnl"], 8),
            "totalPositionInitialMargin": _fmt(t["pm"], 8), "totalOpenOrderInitialMargin": _fmt(t["om"], 8),
            "totalCrossWalletBalance": _fmt(t["wallet"], 8), "totalCrossUnPnl": _fmt(t["upnl"], 8),
            "availableBalance": _fmt(t["available"], 8), "maxWithdrawAmount": _fmt(t["withdraw"], 8),
        }
        asset = {
            "asset": ASSET, "walletBalance": _fmt(t["wallet"], 8), "unrealizedProfit": _fmt(t["upnl"], 8),
            "marginBalance": _fmt(t["wallet"] + t["upnl"], 8), "maintMargin": _fmt(t["maint"], 8),
            "initialMargin": _fmt(t["pm"] + t["om"], 8), "positionInitialMargin": _fmt(t["pm"], 8),
            "openOrderInitialMargin": _fmt(t["om"], 8), "crossWalletBalance": _fmt(t["wallet"], 8),
            "crossUnPnl": _fmt(t["upnl"], 8), "availableBalance": _fmt(t["available"], 8),
            "maxWithdrawAmount": _fmt(t["withdraw"], 8), "marginAvailable": True, "updateTime": acct.update_ms,
        }
        positions = []
        for s in self.book.symbols:
            r = self.rules(s)
            pos = acct.positions.get(s, _Position())
            if version >= 3 and pos.lots == 0 and not any(o.symbol == s for o in acct.open_orders.values()):
                continue
            qty = self._qty(r, pos.lots)
            pm, om = self.position_margin(acct, s), self.order_margin(acct, s)
            row: dict[str, Any] = {
                "symbol": s, "positionSide": "BOTH", "positionAmt": _fmt(qty, r.qty_places),
                "unrealizedProfit": _fmt(self.unrealized(acct, s), 8), "isolatedMargin": "0.00000000",
                "notional": _fmt(qty * self._mark(s), 8), "isolatedWallet": "0",
                "initialMargin": _fmt(pm + om, 8),
                "maintMargin": _fmt(abs(qty) * self._mark(s) * Decimal(str(self.config.maint_margin_rate)), 8),
                "updateTime": pos.update_ms,
            }
            if version < 3:
                row.update({
                    "positionInitialMargin": _fmt(pm, 8), "openOrderInitialMargin": _fmt(om, 8),
                    "leverage": str(self.leverage(acct, s)), "isolated": False,
                    "entryPrice": _fmt(pos.entry, r.price_places + 5), "maxNotional": "1000000000",
                    "bidNotional": "0", "askNotional": "0",
                })
            positions.append(row)
        head: dict[str, Any] = {}
        if version < 3:
            head = {"feeTier": 0, "feeBurn": False, "canTrade": True, "canDeposit": True, "canWithdraw": True,
                    "updateTime": 0, "multiAssetsMargin": False, "tradeGroupId": -1}
        return {**head, **totals, "assets": [asset], "positions": positions}

    def user_trades(self, api_key: str, symbol: str, order_id: int | None = None, from_id: int | None = None,
                    start_ms: int | None = None, end_ms: int | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """``GET /fapi/v1/userTrades`` (oldest first)."""
        acct = self.account(api_key)
        r = self.rules(symbol)
        rows = []
        for t in _select(acct.trades, start_ms, end_ms):
            if t.symbol != symbol or (order_id is not None and t.order_id != order_id):
                continue
            if from_id is not None and t.trade_id < from_id:
                continue
            rows.append({
                "buyer": t.side > 0, "commission": _fmt(t.commission, 8), "commissionAsset": ASSET,
                "id": t.trade_id, "maker": t.maker, "orderId": t.order_id,
                "price": _fmt(self._price(r, t.ticks), r.price_places),
                "qty": _fmt(self._qty(r, t.lots), r.qty_places), "quoteQty": _fmt(t.quote, 8),
                "realizedPnl": _fmt(t.realized, 8), "side": "BUY" if t.side > 0 else "SELL",
                "positionSide": "BOTH", "symbol": symbol, "time": t.time_ms,
            })
        return rows[:limit] if from_id is not None else rows[-limit:]

    def income_rows(self, api_key: str, symbol: str | None = None, income_type: str | None = None,
                    start_ms: int | None = None, end_ms: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """``GET /fapi/v1/income`` (oldest first)."""
        acct = self.account(api_key)
        rows = [{
            "symbol": i.symbol, "incomeType": i.income_type, "income": _fmt(i.amount, 8), "asset": ASSET,
            "info": i.income_type, "time": i.time_ms, "tranId": i.tran_id, "tradeId": i.trade_id,
        } for i in _select(acct.income, start_ms, end_ms)
            if (symbol is None or i.symbol == symbol) and (income_type is None or i.income_type == income_type)]
        return rows[:limit] if start_ms is not None else rows[-limit:]


# ---------------------------------------------------------------------- helpers
def _select(rows: deque[Any], start_ms: int | None, end_ms: int | None) -> Iterator[Any]:
    for row in rows:
        if (start_ms is None or row.time_ms >= start_ms) and (end_ms is None or row.time_ms <= end_ms):
            yield row


def _push(rows: deque[Any], row: Any, limit: int) -> None:
    rows.append(row)
    while len(rows) > limit:
        rows.popleft()


def _required(params: Mapping[str, str], name: str) -> str:
    v = params.get(name)
    if v is None or v == "":
        raise OrderError(-1102)
    return v


def _bool_param(params: Mapping[str, str], name: str) -> bool:
    v = params.get(name, "false").lower()
    if v not in ("true", "false"):
        raise OrderError(-1130)
    return v == "true"


def _decimal(text: str) -> Decimal:
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise OrderError(-1102) from None
    if not d.is_finite():
        raise OrderError(-1102)
    return d


def _places(d: Decimal) -> int:
    """Decimal places of ``d`` ignoring trailing zeros ("0.10" → 1)."""
    exp = d.normalize().as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 0


def _fmt(d: Decimal, places: int) -> str:
    return f"{d.quantize(Decimal(1).scaleb(-places)):f}"
