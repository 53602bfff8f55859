"""``Trader``: the trading step shared by the backtest and the live PositionManager.

It owns one ``StrategyExecutor`` and one ``RiskEngine`` per strategy over a venue, and is driven by
three inputs, always in this order per symbol and evaluation boundary ``B``:

1. ``on_trades(symbol, ts, price, qty)`` — the trades of ``[previous B, B)`` (in any number of
   batches); with the paper venue, numpy finds the next trade at which a working order or a machine
   trigger can act, so quiet trades cost no Python call;
2. ``begin_boundary(snap)`` — the clock moves to ``B``; due orders arrive, funding settles, the
   timers of the symbol's machines fire, and the risk engines of the strategies trading the symbol
   evaluate (closing what they must);
3. ``act(snap, results)`` — the entry/flip ``ScoreResult``s of the snapshot become signals for the
   executors, then ``end_boundary(snap)`` records the equity point.

The backtest feeds it from a replay; the PositionManager feeds it the same data from SymbolState
batches and Strategy scores, so paper trading on a replayed file equals its backtest (parity). The
clock is a ``ManualClock`` on exchange time in both. A global ``permission`` (the RiskGuard's, fail
closed) can veto new entries of every strategy without touching their own risk engines.

A boundary of one symbol touches only the strategies that trade it, so a single-symbol strategy's
results depend only on its own symbol's inputs, whatever order other symbols' inputs come in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import Field

from arbray.clock import ManualClock
from arbray.execution.executor import Signal, StrategyExecutor, StrategyRules
from arbray.execution.machine import ExecutionConfig
from arbray.execution.paper import PaperVenue, PaperVenueConfig
from arbray.execution.venue import EventHandler, Order, Venue, VenueEvent
from arbray.features.snapshot import FeatureSnapshot
from arbray.risk.rules import RiskConfig, RiskEngine
from arbray.scoring.config import FrozenModel, StrategyConfig
from arbray.scoring.result import ScoreResult

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


class TradingConfig(FrozenModel):
    """Account, execution, fill-model and risk settings of every strategy a ``Trader`` runs."""

    warmup_ms: int = Field(0, ge=0, le=7 * 24 * 3_600_000, description="no signal taken before first trade + this")
    initial_balance: float = Field(10_000.0, gt=0)
    risk_fraction: float = Field(0.02, gt=0, le=0.2)
    cooldown_ms: int = Field(0, ge=0, le=24 * 3_600_000)
    max_open_positions: int = Field(4, ge=1, le=100)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    venue: PaperVenueConfig = Field(default_factory=PaperVenueConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)


def rules_for(cfg: StrategyConfig, tc: TradingConfig, initial_balance: float | None = None) -> StrategyRules:
    """Exit geometry of a strategy config: R-based (factory) or legacy ATR multiples (tp_sl)."""
    sl = float(getattr(cfg, "sl_atr_multiplier", 0.0))
    tp1, tp2 = getattr(cfg, "tp1_ratio", None), getattr(cfg, "tp2_ratio", None)
    targets = getattr(cfg, "tp_sl", None)
    if targets is not None:
        sl = targets.sl_multiplier
        tp1, tp2 = targets.tp1_multiplier / sl, targets.tp2_multiplier / sl
    if not sl or tp1 is None or tp2 is None:
        raise ValueError(f"strategy {cfg.strategy_id!r} has no exit geometry (sl/tp ratios)")
    return StrategyRules(
        initial_balance=tc.initial_balance if initial_balance is None else initial_balance,
        risk_fraction=tc.risk_fraction, sl_atr_multiplier=sl,
        tp1_r=float(tp1), tp2_r=float(tp2), timeout_ms=int(getattr(cfg, "timeout_minutes", 240)) * 60_000,
        flip_threshold=float(getattr(cfg, "flip_threshold", 100.0)), direction=cfg.direction,
        cooldown_ms=tc.cooldown_ms, max_open_positions=tc.max_open_positions,
    )


class _CountingVenue:
    """Forwards to the venue and counts submissions for a strategy's order-rate rule."""

    def __init__(self, venue: Venue, risk: RiskEngine) -> None:
        self._venue, self._risk = venue, risk

    def connect(self, handler: EventHandler) -> None:
        self._venue.connect(handler)

    def submit(self, order: Order, now_ms: int) -> None:
        self._risk.on_submit()
        self._venue.submit(order, now_ms)

    def cancel(self, client_id: str, now_ms: int) -> None:
        self._venue.cancel(client_id, now_ms)


class Trader:
    """Strategies' executors and risk engines over one venue, stepped per evaluation boundary.

    ``venue`` defaults to a ``PaperVenue`` built from ``config.venue``; a venue that wraps a paper
    venue names it as ``paper`` so trades step its fill model; with any other venue (the simulator
    exchange, Binance) fills arrive through ``on_venue_event`` and trades only drive the machines'
    price triggers.
    """

    def __init__(self, strategies: Sequence[StrategyConfig], config: TradingConfig | None = None,
                 clock: ManualClock | None = None, venue: Venue | None = None,
                 balances: dict[str, float] | None = None, paper: PaperVenue | None = None,
                 id_prefix: str = "") -> None:
        self.config = config or TradingConfig()
        self.clock = clock or ManualClock(0)
        self.id_prefix = id_prefix  # starts every position / client order id (see StrategyExecutor)
        if venue is None:
            venue = paper = paper or PaperVenue(self.config.venue)
        elif paper is None and isinstance(venue, PaperVenue):
            paper = venue
        self.venue: Venue = venue
        self.paper = paper  # the fill model to step with trades (None: an external venue fills)
        self.venue.connect(self.on_venue_event)
        self.strategies: dict[str, StrategyConfig] = {}
        self.executors: dict[str, StrategyExecutor] = {}
        self.risks: dict[str, RiskEngine] = {}
        self.permission: str | None = None  # the global veto on new entries (None: allowed)
        self.blocked_symbols: dict[str, str] = {}  # symbol → why no new entry may open on it
        self.killed: dict[str, str] = {}  # strategy → why it may open nothing
        self.on_close: Callable[[str, Any], None] | None = None  # (strategy, Position) after booking
        self.first_ts: int | None = None
        self.trades_processed = 0
        self.events_processed = 0
        self._last_equity_ts = -1
        self.equity: list[tuple[int, str, float, float]] = []
        self._by_symbol: dict[str, list[str]] = {}
        for cfg in strategies:
            self.add_strategy(cfg, (balances or {}).get(cfg.strategy_id))

    # ------------------------------------------------------------ strategy set
    def add_strategy(self, cfg: StrategyConfig, initial_balance: float | None = None) -> None:
        """Start trading ``cfg`` (a new account at ``initial_balance`` or the config's default)."""
        sid = cfg.strategy_id
        if sid in self.executors:
            raise ValueError(f"strategy {sid!r} is already trading")
        risk = RiskEngine(self.config.risk, self.clock)
        ex = StrategyExecutor(sid, rules_for(cfg, self.config, initial_balance), self.config.execution,
                              _CountingVenue(self.venue, risk), self.clock, gate=self._gate(risk),
                              id_prefix=self.id_prefix)
        ex.on_close = self._closer(sid, risk, ex)
        self.strategies[sid], self.executors[sid], self.risks[sid] = cfg, ex, risk
        self._by_symbol.clear()

    def update_strategy(self, cfg: StrategyConfig) -> None:
        """A changed config: new exit geometry and rules apply to positions opened from now on."""
        ex = self.executors[cfg.strategy_id]
        ex.rules = rules_for(cfg, self.config, ex.rules.initial_balance)
        self.strategies[cfg.strategy_id] = cfg
        self._by_symbol.clear()

    def _gate(self, risk: RiskEngine) -> Callable[[str, str, float], str | None]:
        def gate(strategy_id: str, symbol: str, notional: float) -> str | None:
            if self.permission is not None:
                return f"global:{self.permission}"
            if symbol in self.blocked_symbols:
                return f"symbol:{self.blocked_symbols[symbol]}"
            if strategy_id in self.killed:
                return f"killed:{self.killed[strategy_id]}"
            return risk.gate(strategy_id, symbol, notional)
        return gate

    def _closer(self, sid: str, risk: RiskEngine, ex: StrategyExecutor) -> Callable[[Any], None]:
        def on_close(pos: Any) -> None:
            risk.on_close(pos.position_id, pos.r(pos.net_pnl))
            risk.on_balance(ex.account.balance, ex.account.one_r(ex.rules.risk_fraction))
            if self.on_close is not None:
                self.on_close(sid, pos)
        return on_close

    def on_venue_event(self, ev: VenueEvent) -> None:
        """A fill, order update or funding charge for one strategy's account."""
        ex = self.executors.get(ev.account)
        if ex is not None:
            ex.on_event(ev)

    # ------------------------------------------------------------ market data
    def on_trades(self, symbol: str, ts: I64, px: F64, qty: F64) -> None:
        """Run trades (exchange-time order, all before the next boundary) through venue and machines."""
        j = int(ts.shape[0])
        if j == 0:
            return
        if self.first_ts is None or int(ts[0]) < self.first_ts:
            self.first_ts = int(ts[0]) if self.first_ts is None else min(self.first_ts, int(ts[0]))
        self.trades_processed += j
        paper, clock, execs = self.paper, self.clock, self.executors.values()
        k = 0
        while k < j:
            nxt = paper.next_index(symbol, ts, px, k, j) if paper is not None else j
            for ex in execs:
                m = ex.machines.get(symbol)
                if m is not None:
                    nxt = m.next_trigger(ts, px, k, nxt)
            if nxt >= j:
                break
            tk, pk = int(ts[nxt]), float(px[nxt])
            clock.set(tk)
            if paper is not None:
                if nxt > 0:
                    paper.set_last(symbol, float(px[nxt - 1]))
                paper.on_trade(symbol, tk, pk, float(qty[nxt]))
            for ex in execs:
                if symbol in ex.machines:
                    ex.on_price(symbol, pk)
            if paper is not None:
                paper.advance(symbol, tk)
            self.events_processed += 1
            k = nxt + 1
        if paper is not None:
            paper.set_last(symbol, float(px[j - 1]))

    # ------------------------------------------------------------ boundaries
    def begin_boundary(self, snap: FeatureSnapshot) -> None:
        """Move to the boundary: deliver due orders, settle funding, fire timers, evaluate risk."""
        t = snap.ts_ms
        self.clock.set(t)
        paper = self.paper
        if paper is not None:
            paper.advance(snap.symbol, t)
            paper.on_funding(snap.symbol, t, snap.mark_price, snap.funding_rate)
        for sid in self._trading(snap.symbol):
            self.executors[sid].on_time(snap.symbol)
        if paper is not None:
            paper.advance(snap.symbol, t)
        self._risk(snap)

    def eligible(self, snap: FeatureSnapshot) -> bool:
        """Whether signals may be taken at this snapshot (a price, and past the warm-up)."""
        return (snap.price is not None and self.first_ts is not None
                and snap.ts_ms >= self.first_ts + self.config.warmup_ms)

    def act(self, snap: FeatureSnapshot, results: Iterable[ScoreResult]) -> list[dict[str, Any]]:
        """Hand entry/flip results to their executors; one signal record per result acted upon."""
        price = snap.price
        if price is None:
            return []
        out: list[dict[str, Any]] = []
        for r in results:
            if r.side is None or not (r.is_entry or r.is_flip_signal):
                continue
            ex = self.executors.get(r.strategy_id)
            if ex is None:
                continue
            side = 1 if r.side == "LONG" else -1
            sig = Signal(r.strategy_id, r.symbol, r.ts_ms, side, r.total, r.tier, r.is_entry, r.is_flip_signal,
                         snap.atr_5m, price, snap.best_bid, snap.best_ask)
            action = ex.on_signal(sig)
            out.append({
                "ts_ms": r.ts_ms, "strategy_id": r.strategy_id, "symbol": r.symbol, "side": r.side,
                "score": r.total, "tier": r.tier, "is_entry": r.is_entry, "is_flip_signal": r.is_flip_signal,
                "price": price, "atr_5m": snap.atr_5m, "action": action,
            })
        if self.paper is not None:
            self.paper.advance(snap.symbol, snap.ts_ms)
        return out

    def end_boundary(self, snap: FeatureSnapshot) -> None:
        """Record one equity point per strategy per boundary time."""
        t = snap.ts_ms
        if t == self._last_equity_ts:
            return
        self._last_equity_ts = t
        for sid, ex in self.executors.items():
            unreal = sum(m.pos.unrealised(m.last_price) - m.pos.fees - m.pos.funding for m in ex.machines.values())
            self.equity.append((t, sid, ex.account.balance, ex.account.balance + unreal))

    def _trading(self, symbol: str) -> list[str]:
        """Strategies that trade ``symbol``: a boundary of one symbol never touches another's state."""
        ids = self._by_symbol.get(symbol)
        if ids is None:
            ids = self._by_symbol[symbol] = [sid for sid, c in self.strategies.items() if symbol in c.applies_to]
        return ids

    def _risk(self, snap: FeatureSnapshot) -> None:
        now = snap.ts_ms
        for sid in self._trading(snap.symbol):
            risk, ex = self.risks[sid], self.executors[sid]
            if snap.last_trade_ts_ms is not None:
                risk.on_data(snap.last_trade_ts_ms)
            risk.on_balance(ex.account.balance, ex.account.one_r(ex.rules.risk_fraction))
            if not ex.machines:
                continue  # nothing to close; new entries are checked by the gate when they happen
            for m in ex.machines.values():
                if m.pos.opened_ms is not None and m.pos.qty > 0:
                    risk.on_position(m.pos.position_id, m.pos.opened_ms, m.pos.qty * m.pos.avg_entry)
            d = risk.evaluate()
            if d.close_all and ex.machines:
                ex.close_all("risk")
            for pid in d.force_close:
                for m in list(ex.machines.values()):
                    if m.pos.position_id == pid:
                        m.request_exit("risk", now)
            if self.paper is not None:
                self.paper.advance(None, now)

    # ------------------------------------------------------------ commands
    def close_all(self, strategy: str | None = None) -> None:
        """Flatten every position (or one strategy's) by taker as a ``risk`` exit, cancelling first."""
        for sid, ex in self.executors.items():
            if strategy is None or sid == strategy:
                ex.close_all("risk")
        if self.paper is not None:
            self.paper.advance(None, self.clock.now_ms())
