"""``PositionManagerCore``: accounts, positions and execution for every live strategy, event-sourced.

Everything the PositionManager does follows from an ordered log of inputs (``Item``s): each
SymbolState's numbered stream of trade batches and boundaries (the boundary carries the entry/flip
``ScoreResult``s of its snapshot), the RiskGuard's permissions, commands (close, kill, add
balance), changes of the strategy set, and — with an external venue — the venue's events. ``apply``
runs one item through a ``Trader`` (the very object the backtest drives) and returns what the
journal must record: orders and their states, fills with the position they produce, closed trades,
signals, ledger entries. Replaying the applied items into a fresh core rebuilds the same accounts,
positions and working orders (``replay``), which is how a restarted PositionManager loses and
duplicates nothing: what it had applied is in its input log, what it had not is resent by the
senders (they keep every item until it is acknowledged), and client order ids are functions of
the inputs, so the venue never sees an order twice.

``Sequencer`` decides when items are applied. ``arrival``: each symbol's items as soon as they come,
in sequence (live). ``boundary``: every symbol's items up to a boundary ``B``, symbol by symbol in
name order, once all symbols reached ``B`` — the backtest's exact order, for parity runs.

Fail-closed: new entries need a fresh ACTIVE permission; the shell applies a ``stale`` permission
item when the last one outlived its TTL, so the rule is in the log like everything else.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field

from arbray.backtest.stats import trade_record
from arbray.clock import ManualClock
from arbray.execution.account import Position
from arbray.execution.machine import PositionMachine
from arbray.execution.trader import Trader, TradingConfig
from arbray.execution.venue import EventHandler, Fill, FundingCharge, Order, OrderUpdate, Venue, VenueEvent
from arbray.features.snapshot import FeatureSnapshot
from arbray.runtime.strategies import LiveStrategy, live_uuid
from arbray.runtime.symbol_state import TradeSlice
from arbray.scoring.config import FrozenModel
from arbray.scoring.result import ScoreResult
from arbray.storage.records import FillRecord, OrderRecord, PositionRecord, SignalRecord, TradeRecord

Ordering = Literal["arrival", "boundary"]


class PositionManagerConfig(FrozenModel):
    """How the PositionManager orders its inputs and trades."""

    ordering: Ordering = Field("arrival", description="arrival: live; boundary: the backtest's order (parity)")
    permission_ttl_ms: int = Field(5_000, ge=500, le=600_000, description="an older permission counts as HALTED")
    barrier_timeout_ms: int = Field(30_000, ge=100, le=3_600_000,
                                    description="boundary ordering: wait this long (wall) for a lagging symbol")
    trading: TradingConfig = Field(default_factory=TradingConfig)


# ---------------------------------------------------------------------------------------- items
@dataclass(frozen=True, slots=True)
class TradesItem:
    symbol: str
    seq: int
    batch: TradeSlice


@dataclass(frozen=True, slots=True)
class BoundaryItem:
    symbol: str
    seq: int
    snap: FeatureSnapshot
    results: tuple[ScoreResult, ...]  # entry/flip results of the snapshot (others do not trade)
    trigger_recv_ns: int = 0


@dataclass(frozen=True, slots=True)
class Permission:
    """The RiskGuard's word on new exposure (``state`` ACTIVE allows), as applied."""

    state: str
    reasons: tuple[str, ...] = ()
    blocked_symbols: tuple[tuple[str, str], ...] = ()  # (symbol, reason)
    killed: tuple[tuple[str, str], ...] = ()  # (strategy, reason)
    flatten_seq: int = 0  # bumped by every emergency close
    issued_ms: int = 0


@dataclass(frozen=True, slots=True)
class PermissionItem:
    permission: Permission


@dataclass(frozen=True, slots=True)
class StrategiesItem:
    """The live strategy set changed: new ones start trading, edited ones take their new rules."""

    strategies: tuple[LiveStrategy, ...]


@dataclass(frozen=True, slots=True)
class BalanceItem:
    strategy: str
    amount: float
    ref: str


@dataclass(frozen=True, slots=True)
class CloseItem:
    """Flatten one strategy (``kill``) or every strategy (``emergency``) by taker now."""

    strategy: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class VenueItem:
    event: VenueEvent


Item = TradesItem | BoundaryItem | PermissionItem | StrategiesItem | BalanceItem | CloseItem | VenueItem
StreamItem = TradesItem | BoundaryItem


# ---------------------------------------------------------------------------------------- outputs
@dataclass
class Outputs:
    """What applying items produced, in journal order."""

    orders: list[OrderRecord] = field(default_factory=list)
    fills: list[tuple[FillRecord, PositionRecord | None]] = field(default_factory=list)
    positions: list[PositionRecord] = field(default_factory=list)
    trades: list[TradeRecord] = field(default_factory=list)
    signals: list[SignalRecord] = field(default_factory=list)
    ledger: list[tuple[str, str, float, int, str]] = field(default_factory=list)  # (uuid, kind, amount, ts, ref)
    submitted: list[tuple[str, int, str]] = field(default_factory=list)
    """(client id, local receive ns of the market message behind it or 0, the item kind that placed it)."""

    def extend(self, other: Outputs) -> None:
        for name in ("orders", "fills", "positions", "trades", "signals", "ledger", "submitted"):
            getattr(self, name).extend(getattr(other, name))

    def __bool__(self) -> bool:
        return any((self.orders, self.fills, self.positions, self.trades, self.signals, self.ledger))


@dataclass
class _OrderState:
    order: Order
    created_ms: int
    filled: float = 0.0
    notional: float = 0.0
    state: str = "NEW"
    fills: int = 0


class _RecordingVenue:
    """Between the trader and the real venue: every order, cancel and event is also recorded.

    The paper venue's events arrive synchronously; an external venue's arrive as ``VenueItem``s
    (logged inputs), so they are not connected here. While the core replays its log nothing reaches
    the venue: those orders were sent before, and reconciliation settles them afterwards.
    """

    def __init__(self, inner: Venue, core: PositionManagerCore, external: bool) -> None:
        self.inner, self.core, self.external = inner, core, external
        self._handler: EventHandler | None = None
        if not external:
            inner.connect(self._on_event)

    def connect(self, handler: EventHandler) -> None:
        self._handler = handler

    def _live(self) -> bool:
        """Whether orders reach the venue now: always the paper venue (it is part of the replayed state),
        an external one only outside a replay."""
        return not (self.external and self.core.replaying)

    def submit(self, order: Order, now_ms: int) -> None:
        self.core._on_submit(order, now_ms)
        if self._live():
            self.inner.submit(order, now_ms)

    def cancel(self, client_id: str, now_ms: int) -> None:
        if self._live():
            self.inner.cancel(client_id, now_ms)

    def _on_event(self, ev: VenueEvent) -> None:
        self.core._on_venue_event(ev)
        if self._handler is not None:
            self._handler(ev)


class PositionManagerCore:
    """Trader + journal records for the live strategies of one run (see the module docstring)."""

    def __init__(self, run_id: str, config: PositionManagerConfig, strategies: Sequence[LiveStrategy] = (),
                 venue: Venue | None = None, instance: str | None = None, flatten_baseline: int = 0) -> None:
        """``run_id`` tags journal rows (``live`` for every non-backtest run); ``instance`` — unique per
        ``arbray run`` — prefixes order, position and trade ids, which restart with every instance."""
        from arbray.execution.paper import PaperVenue

        self.run_id = run_id
        self.instance = instance or run_id
        self.config = config
        self.clock = ManualClock(0)
        self.external_venue = venue is not None
        paper: PaperVenue | None = None
        if venue is None:
            venue = paper = PaperVenue(config.trading.venue)
        self.replaying = False  # set while the log is re-applied: no order reaches an external venue
        self.venue = _RecordingVenue(venue, self, external=self.external_venue)
        # on an exchange account, client ids must not repeat across runs: prefix them with the instance tag
        tag = f"{self.instance.rsplit('-', 1)[-1][:6]}." if self.external_venue else ""
        self.trader = Trader([], config.trading, self.clock, self.venue, paper=paper, id_prefix=tag)
        self.trader.on_close = self._on_close
        self.live: dict[str, LiveStrategy] = {}
        self.permission = Permission("HALTED", ("no permission yet",))
        self.last_seq: dict[str, int] = {}
        self.last_trade_id: dict[str, int] = {}
        self.last_boundary: dict[str, int] = {}
        self.marks: dict[str, float] = {}
        self.counters: Counter[str] = Counter()
        self.applied = 0
        self._orders: dict[str, _OrderState] = {}
        self._out = Outputs()
        self._trigger_ns = 0
        self._trigger_kind = ""
        self._positions: dict[str, tuple[float, float, float | None]] = {}
        self._fills: list[tuple[FillRecord, str]] = []
        self._closed: dict[str, PositionRecord] = {}
        self._apply_permission(self.permission)
        self.counters["flatten_seq"] = flatten_baseline  # emergency closes before this instance are history
        self._set_strategies(strategies)

    # ---- identity in the journal ---------------------------------------------------------------
    def _jid(self, internal: str) -> str:
        """Journal key of an order/position/trade of this instance (engine ids restart with each one)."""
        return f"{self.instance}:{internal}"

    # ---- applying ------------------------------------------------------------------------------
    def apply(self, item: Item) -> Outputs:
        """Apply one item; returns the records the journal must hold before it is acknowledged."""
        self._out = out = Outputs()
        self.applied += 1
        self._trigger_ns, self._trigger_kind = 0, type(item).__name__  # only market items carry a receive time
        if isinstance(item, TradesItem):
            self._apply_trades(item)
        elif isinstance(item, BoundaryItem):
            self._apply_boundary(item)
        elif isinstance(item, PermissionItem):
            self._apply_permission(item.permission)
        elif isinstance(item, StrategiesItem):
            self._set_strategies(item.strategies)
        elif isinstance(item, BalanceItem):
            self._apply_balance(item)
        elif isinstance(item, CloseItem):
            self.trader.close_all(item.strategy)
            self.counters["close_commands"] += 1
        elif isinstance(item, VenueItem):
            self.venue._on_event(item.event)
        self._finish_positions()
        return out

    def _apply_trades(self, item: TradesItem) -> None:
        b = item.batch
        self.last_seq[item.symbol] = item.seq
        last = self.last_trade_id.get(item.symbol, -1)
        ids = b.trade_id
        keep = ids > last
        if not keep.all():
            self.counters["duplicate_trades_dropped"] += int(np.count_nonzero(~keep))
            if not keep.any():
                return
        ts, px, qty = (b.ts_ms[keep], b.price[keep], b.qty[keep]) if not keep.all() else (b.ts_ms, b.price, b.qty)
        self.last_trade_id[item.symbol] = int(ids[keep][-1])
        self._trigger_ns = int(b.recv_ns[keep][-1])
        self.trader.on_trades(item.symbol, ts, px, qty)
        self.marks[item.symbol] = float(px[-1])

    def _apply_boundary(self, item: BoundaryItem) -> None:
        self.last_seq[item.symbol] = item.seq
        snap = item.snap
        if snap.ts_ms <= self.last_boundary.get(item.symbol, -1):
            self.counters["duplicate_boundaries_dropped"] += 1
            return
        self.last_boundary[item.symbol] = snap.ts_ms
        self._trigger_ns = item.trigger_recv_ns
        t = self.trader
        t.begin_boundary(snap)
        if t.eligible(snap):
            for s in t.act(snap, item.results):
                sid = s["strategy_id"]
                self._out.signals.append(SignalRecord(
                    strategy_id=live_uuid(sid), symbol=s["symbol"], ts_ms=s["ts_ms"], side=s["side"],
                    action=str(s["action"]), score=float(s["score"]), tier=s["tier"], price=s["price"],
                    detail={"is_entry": s["is_entry"], "is_flip_signal": s["is_flip_signal"], "atr_5m": s["atr_5m"]},
                    run_id=self.run_id))
                self.counters["signals"] += 1
        t.end_boundary(snap)
        if snap.price is not None:
            self.marks[item.symbol] = snap.price

    def _apply_permission(self, p: Permission) -> None:
        self.permission = p
        t = self.trader
        t.permission = None if p.state == "ACTIVE" else f"{p.state}: {'; '.join(p.reasons)}"
        t.blocked_symbols = dict(p.blocked_symbols)
        t.killed = dict(p.killed)
        seen = self.counters["flatten_seq"]
        if p.flatten_seq > seen:
            self.counters["flatten_seq"] = p.flatten_seq
            t.close_all()
            self.counters["emergency_closes"] += 1
        for strategy, _ in p.killed:
            ex = t.executors.get(strategy)
            if ex is not None and ex.machines:
                t.close_all(strategy)

    def _set_strategies(self, strategies: Iterable[LiveStrategy]) -> None:
        t = self.trader
        for s in strategies:
            old = self.live.get(s.name)
            self.live[s.name] = s
            if s.name not in t.executors:
                t.add_strategy(s.config, s.current_balance)
                self.counters["strategies_added"] += 1
            elif old is not None and old.config.config_hash != s.config.config_hash:
                t.update_strategy(s.config)
                self.counters["strategies_updated"] += 1

    def _apply_balance(self, item: BalanceItem) -> None:
        ex = self.trader.executors.get(item.strategy)
        if ex is None:
            raise KeyError(f"unknown strategy {item.strategy!r}")
        ex.account.add_balance(item.amount)
        self._out.ledger.append((live_uuid(item.strategy), "deposit", item.amount, self.clock.now_ms(), item.ref))

    # ---- recording (called by the trader through the recording venue) --------------------------
    def _on_submit(self, order: Order, now_ms: int) -> None:
        if order.client_id in self._orders:
            return
        st = self._orders[order.client_id] = _OrderState(order, now_ms)
        self._record_order(st, now_ms)
        self._out.submitted.append((order.client_id, self._trigger_ns, self._trigger_kind))
        self.counters["orders"] += 1

    def _on_venue_event(self, ev: VenueEvent) -> None:
        if isinstance(ev, FundingCharge):
            self.counters["funding_charges"] += 1
            return
        st = self._orders.get(ev.client_id)
        if st is None:
            self.counters["events_for_unknown_orders"] += 1
            return
        if isinstance(ev, Fill):
            st.filled += ev.qty
            st.notional += ev.qty * ev.price
            st.fills += 1
            st.state = "FILLED" if ev.remaining <= 1e-12 else "PARTIALLY_FILLED"
            o = st.order
            pid = ev.client_id.rsplit("-", 1)[0]
            self._fills.append((FillRecord(
                fill_id=self._jid(f"{ev.client_id}:{st.fills}"), client_order_id=self._jid(ev.client_id),
                strategy_id=live_uuid(o.account), symbol=o.symbol, side="BUY" if o.side > 0 else "SELL",
                price=ev.price, qty=ev.qty, fee=ev.fee, fee_asset="USDT", is_maker=ev.liquidity == "maker",
                ts_ms=ev.ts_ms, position_id=self._jid(pid), run_id=self.run_id), pid))
            self.counters[f"fills_{ev.liquidity}"] += 1
            self._record_order(st, ev.ts_ms)
        elif isinstance(ev, OrderUpdate):
            st.state = {"accepted": "NEW", "rejected": "REJECTED", "canceled": "CANCELED",
                        "cancel_rejected": st.state}[ev.status]
            if ev.status == "rejected":
                self.counters[f"rejects:{ev.reason}"] += 1
            self._record_order(st, ev.ts_ms)

    def _record_order(self, st: _OrderState, ts_ms: int) -> None:
        o = st.order
        self._out.orders.append(OrderRecord(
            client_order_id=self._jid(o.client_id), strategy_id=live_uuid(o.account), symbol=o.symbol,
            side="BUY" if o.side > 0 else "SELL", order_type="LIMIT" if o.kind == "limit" else "MARKET",
            qty=o.qty, created_ms=st.created_ms, updated_ms=ts_ms, state=st.state,
            time_in_force=("GTX" if o.post_only else "GTC") if o.kind == "limit" else None, price=o.price,
            reduce_only=o.reduce_only, filled_qty=st.filled,
            avg_price=st.notional / st.filled if st.filled > 0 else None, run_id=self.run_id))
        if st.state in ("FILLED", "CANCELED", "REJECTED"):
            del self._orders[o.client_id]

    def _on_close(self, sid: str, pos: Position) -> None:
        ex = self.trader.executors[sid]
        m = ex.finished.pop() if ex.finished and ex.finished[-1].pos is pos else None
        if pos.entry_qty <= 0 or m is None:
            return
        t = trade_record(m)
        jid = self._jid(pos.position_id)
        self._out.trades.append(TradeRecord(
            trade_id=jid, strategy_id=live_uuid(sid), symbol=pos.symbol, side=t["direction"], qty=t["qty"],
            entry_price=t["entry_price"], entry_ms=t["entry_ts_ms"], exit_price=t["exit_price"],
            exit_ms=t["exit_ts_ms"], exit_reason=str(t["exit_reason"]), pnl=pos.price_pnl, fees=pos.fees,
            funding=-pos.funding, risk_distance=pos.risk_distance, r_multiple=t["net_r"], score=pos.score,
            tier=pos.tier, position_id=jid, detail=t, run_id=self.run_id))
        self._closed[pos.position_id] = self._position_record(m, pos.closed_ms or self.clock.now_ms(), "closed")
        self.counters["trades"] += 1

    def _finish_positions(self) -> None:
        """Pair each fill with the state of its position after this item; journal other position changes."""
        records: dict[str, PositionRecord] = dict(self._closed)
        now: dict[str, tuple[float, float, float | None]] = {}
        ts = self.clock.now_ms()
        for ex in self.trader.executors.values():
            for m in ex.machines.values():
                p = m.pos
                if p.qty <= 0:
                    continue
                now[p.position_id] = state = (p.qty, p.avg_entry, m.sl)
                if self._positions.get(p.position_id) != state:
                    records[p.position_id] = self._position_record(m, ts, "open")
        for fill, pid in self._fills:
            self._out.fills.append((fill, records.pop(pid, None)))
        self._out.positions.extend(records[k] for k in sorted(records))
        self._positions = now
        self._fills.clear()
        self._closed.clear()

    def _position_record(self, m: PositionMachine, ts: int, status: Literal["open", "closed"]) -> PositionRecord:
        p = m.pos
        is_open = status == "open"
        return PositionRecord(
            position_id=self._jid(p.position_id), strategy_id=live_uuid(p.strategy_id), symbol=p.symbol,
            side="LONG" if p.side > 0 else "SHORT", status=status, qty=p.qty if is_open else 0.0,
            entry_price=p.avg_entry, opened_ms=p.opened_ms or ts, updated_ms=ts,
            stop_price=m.sl if is_open else None, realised_pnl=p.price_pnl, fees=p.fees, funding=-p.funding,
            closed_ms=None if is_open else p.closed_ms, run_id=self.run_id)

    # ---- read side -----------------------------------------------------------------------------
    def triggers(self, symbol: str) -> tuple[float | None, float | None]:
        """Prices at which a trade of ``symbol`` makes this manager act, so the SymbolState sends it at
        once: the highest level below the market (a long's stop, a short's target, a resting buy)
        and the lowest above it."""
        below: list[float] = []
        above: list[float] = []
        for ex in self.trader.executors.values():
            m = ex.machines.get(symbol)
            if m is None or m.pos.qty <= 0:
                continue
            long = m.pos.side > 0
            (below if long else above).append(m.sl)
            for g in m.legs:
                if g.state in ("resting", "waiting"):
                    (above if long else below).append(g.price)
        for st in self._orders.values():
            o = st.order
            if o.symbol == symbol and o.kind == "limit" and o.price is not None:
                (below if o.side > 0 else above).append(o.price)
        return (max(below) if below else None), (min(above) if above else None)

    def positions(self) -> list[dict[str, Any]]:
        """Open positions with their live mark and floating PnL/R (``RuntimeControl.positions``)."""
        out: list[dict[str, Any]] = []
        for sid, ex in sorted(self.trader.executors.items()):
            for sym, m in sorted(ex.machines.items()):
                p = m.pos
                mark = self.marks.get(sym, m.last_price)
                floating = p.unrealised(mark) - p.fees - p.funding if mark is not None and p.qty > 0 else 0.0
                out.append({
                    "strategy_id": sid, "position_id": self._jid(p.position_id), "symbol": sym,
                    "side": "LONG" if p.side > 0 else "SHORT", "qty": p.qty, "entry_price": p.avg_entry or None,
                    "mark_price": mark, "opened_ms": p.opened_ms, "risk_usd": p.risk_usd,
                    "risk_distance": p.risk_distance, "floating_pnl": floating,
                    "floating_r": floating / p.risk_usd if p.risk_usd else None, "phase": m.phase.value,
                    "working_orders": [
                        {"client_order_id": self._jid(cid), "kind": st.order.kind,
                         "side": "BUY" if st.order.side > 0 else "SELL", "price": st.order.price,
                         "qty": st.order.qty, "filled": st.filled}
                        for cid, st in sorted(self._orders.items()) if st.order.account == sid
                        and st.order.symbol == sym],
                })
        return out

    def accounts(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for sid, ex in sorted(self.trader.executors.items()):
            a = ex.account
            live = self.live.get(sid)
            closed = a.closed
            out[sid] = {
                "balance": a.balance, "initial_balance": live.initial_balance if live else ex.rules.initial_balance,
                "realised": a.realised, "fees": a.fees, "funding": a.funding, "open_positions": len(ex.machines),
                "trades": len(closed), "net_r": sum(p.r(p.net_pnl) for p in closed),
            }
        return out

    def working_orders(self) -> dict[str, float]:
        """Client id → filled quantity of every order this core believes is working (to reconcile)."""
        return {cid: st.filled for cid, st in self._orders.items()}

    def stream_positions(self) -> dict[str, dict[str, int]]:
        """Per symbol: the last applied sequence number, trade id and boundary (senders resend after them)."""
        syms = set(self.last_seq) | set(self.last_trade_id) | set(self.last_boundary)
        return {s: {"seq": self.last_seq.get(s, 0), "trade_id": self.last_trade_id.get(s, -1),
                    "boundary_ms": self.last_boundary.get(s, -1)} for s in sorted(syms)}


def replay(core: PositionManagerCore, items: Iterable[Item]) -> int:
    """Re-apply logged items to a fresh core (outputs are already journalled); returns how many."""
    n = 0
    for item in items:
        core.apply(item)
        n += 1
    return n


class Sequencer:
    """Orders stream items from several SymbolStates for ``apply`` (see the module docstring).

    Boundary ordering waits, before releasing boundary ``B``, for every symbol that has sent
    anything to have a boundary queued (at ``B``, or later when it skipped ``B`` across an idle gap).
    ``ready(force=True)`` — the shell's barrier timeout — releases ``B`` without the symbols that have
    not reached it; those are not waited for again until they send something.
    """

    def __init__(self, symbols: Iterable[str], ordering: Ordering, last_seq: dict[str, int] | None = None) -> None:
        self.symbols = sorted(symbols)
        self.ordering = ordering
        self.next_seq = {s: (last_seq or {}).get(s, 0) + 1 for s in self.symbols}
        self._early: dict[str, dict[int, StreamItem]] = {s: {} for s in self.symbols}
        self._queues: dict[str, deque[StreamItem]] = {s: deque() for s in self.symbols}
        self._active: set[str] = set()
        self.duplicates = 0
        self.forced = 0

    def push(self, item: StreamItem) -> None:
        """Accept one item (duplicates by sequence number are dropped; early ones wait for the gap)."""
        s = item.symbol
        if s not in self._queues:
            raise KeyError(f"no stream for {s}")
        if item.seq < self.next_seq[s] or item.seq in self._early[s]:
            self.duplicates += 1
            return
        self._active.add(s)
        early = self._early[s]
        early[item.seq] = item
        while self.next_seq[s] in early:
            self._queues[s].append(early.pop(self.next_seq[s]))
            self.next_seq[s] += 1

    def ready(self, force: bool = False) -> list[StreamItem]:
        """Items that may be applied now, in the order to apply them."""
        out: list[StreamItem] = []
        if self.ordering == "arrival":
            for s in self.symbols:
                out.extend(self._queues[s])
                self._queues[s].clear()
            return out
        while True:
            heads = {s: next((i for i in self._queues[s] if isinstance(i, BoundaryItem)), None)
                     for s in self.symbols if s in self._active}
            times = [h.snap.ts_ms for h in heads.values() if h is not None]
            if not times:
                return out
            lagging = [s for s, h in heads.items() if h is None]
            if lagging:
                if not force:
                    return out
                self.forced += 1
                self._active.difference_update(lagging)
            force = False
            b = min(times)
            for s in self.symbols:
                h = heads.get(s)
                if h is None or h.snap.ts_ms != b:
                    continue
                q = self._queues[s]
                while True:
                    item = q.popleft()
                    out.append(item)
                    if item is h:
                        break

    def oldest_boundary(self) -> int | None:
        """The exchange time of the earliest queued boundary (the shell times the barrier from it)."""
        times = [i.snap.ts_ms for q in self._queues.values() for i in q if isinstance(i, BoundaryItem)]
        return min(times) if times else None

    def pending(self) -> int:
        return sum(len(q) for q in self._queues.values()) + sum(len(e) for e in self._early.values())
