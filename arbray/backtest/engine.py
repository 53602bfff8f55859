"""The deterministic backtest engine: replay → features → scoring → execution → accounts → risk.

It drives the same objects as the live runtime: ``ReplayEngine`` emits a ``FeatureSnapshot`` per
symbol every ``every_ms``; at a snapshot at ``B`` the engine first runs the symbol's trades of
``[previous B, B)`` through the paper venue and the position machines (numpy finds the next trade
at which anything can happen, so quiet trades cost nothing in Python), then fires timers, charges
funding, updates the risk engines, and finally scores the snapshot and hands the signals to each
strategy's executor. Time comes only from a ``ManualClock`` set to exchange time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import Field

from arbray.clock import ManualClock
from arbray.execution.executor import Signal, StrategyExecutor, StrategyRules
from arbray.execution.machine import ExecutionConfig, PositionMachine
from arbray.execution.paper import PaperVenue, PaperVenueConfig
from arbray.execution.venue import EventHandler, Order, VenueEvent
from arbray.features.snapshot import FeatureSnapshot
from arbray.features.symbol import SymbolFeatures
from arbray.replay.engine import ReplayEngine, ReplaySummary
from arbray.replay.readers import Record
from arbray.risk.rules import RiskConfig, RiskEngine
from arbray.scoring.config import FrozenModel, StrategyConfig, canonical_json, cvd_input_name, window_ms
from arbray.scoring.evaluator import Evaluator
from arbray.scoring.result import ScoreResult


class BacktestConfig(FrozenModel):
    """Everything besides the strategies and the inputs that determines a backtest's output."""

    every_ms: int = Field(15_000, ge=1_000, le=3_600_000, description="snapshot and scoring interval")
    warmup_ms: int = Field(0, ge=0, le=7 * 24 * 3_600_000, description="no signal taken before first trade + this")
    initial_balance: float = Field(10_000.0, gt=0)
    risk_fraction: float = Field(0.02, gt=0, le=0.2)
    cooldown_ms: int = Field(0, ge=0, le=24 * 3_600_000)
    max_open_positions: int = Field(4, ge=1, le=100)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    venue: PaperVenueConfig = Field(default_factory=PaperVenueConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)

    @property
    def config_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.model_dump(mode="json")).encode("ascii")).hexdigest()


def rules_for(cfg: StrategyConfig, bt: BacktestConfig) -> StrategyRules:
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
        initial_balance=bt.initial_balance, risk_fraction=bt.risk_fraction, sl_atr_multiplier=sl,
        tp1_r=float(tp1), tp2_r=float(tp2), timeout_ms=int(getattr(cfg, "timeout_minutes", 240)) * 60_000,
        flip_threshold=float(getattr(cfg, "flip_threshold", 100.0)), direction=cfg.direction,
        cooldown_ms=bt.cooldown_ms, max_open_positions=bt.max_open_positions,
    )


class _CountingVenue:
    """Forwards to the paper venue and counts submissions for a strategy's order-rate rule."""

    def __init__(self, venue: PaperVenue, risk: RiskEngine) -> None:
        self._venue, self._risk = venue, risk

    def connect(self, handler: EventHandler) -> None:
        self._venue.connect(handler)

    def submit(self, order: Order, now_ms: int) -> None:
        self._risk.on_submit()
        self._venue.submit(order, now_ms)

    def cancel(self, client_id: str, now_ms: int) -> None:
        self._venue.cancel(client_id, now_ms)


@dataclass
class BacktestResult:
    """What one run produced, ready for ``arbray.backtest.output``."""

    config: BacktestConfig
    strategies: list[StrategyConfig]
    replay: ReplaySummary
    executors: dict[str, StrategyExecutor]
    risks: dict[str, RiskEngine]
    signals: list[dict[str, Any]]
    equity: list[tuple[int, str, float, float]]
    trades_processed: int
    events_processed: int
    symbols: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)

    def machines(self) -> list[PositionMachine]:
        """Every finished machine that traded, in (close time, position id) order."""
        out = [m for ex in self.executors.values() for m in ex.finished if m.pos.entry_qty > 0]
        return sorted(out, key=lambda m: (m.pos.closed_ms or 0, m.pos.position_id))


class Backtest:
    """One deterministic run of strategies over recorded inputs."""

    def __init__(
        self,
        strategies: Sequence[StrategyConfig],
        config: BacktestConfig | None = None,
        score_sink: Callable[[FeatureSnapshot, list[ScoreResult]], None] | None = None,
    ) -> None:
        self.config = config or BacktestConfig()
        self.score_sink = score_sink  # receives every ScoreResult (e.g. for the journal); off by default
        self.strategies = list(strategies)
        self.clock = ManualClock(0)
        self.venue = PaperVenue(self.config.venue)
        self.venue.connect(self._route)
        self.evaluator = Evaluator(self.strategies)
        self.executors: dict[str, StrategyExecutor] = {}
        self.risks: dict[str, RiskEngine] = {}
        for cfg in self.strategies:
            risk = RiskEngine(self.config.risk, self.clock)
            ex = StrategyExecutor(cfg.strategy_id, rules_for(cfg, self.config), self.config.execution,
                                  _CountingVenue(self.venue, risk), self.clock, gate=risk.gate)
            ex.on_close = self._closer(risk, ex)
            self.executors[cfg.strategy_id] = ex
            self.risks[cfg.strategy_id] = risk
        self.signals: list[dict[str, Any]] = []
        self.equity: list[tuple[int, str, float, float]] = []
        self._done_until: dict[str, int] = {}
        self._first_ts: int | None = None
        self._last_equity_ts = -1
        self._trades = 0
        self._events = 0
        self.engine = ReplayEngine(self.config.every_ms, self._on_snapshot)

    @staticmethod
    def _closer(risk: RiskEngine, ex: StrategyExecutor) -> Any:
        def on_close(pos: Any) -> None:
            risk.on_close(pos.position_id, pos.r(pos.net_pnl))
            risk.on_balance(ex.account.balance, ex.account.one_r(ex.rules.risk_fraction))
        return on_close

    def _route(self, ev: VenueEvent) -> None:
        self.executors[ev.account].on_event(ev)

    def run(self, sources: Iterable[Iterator[Record]]) -> BacktestResult:
        summary = self.engine.run(sources)
        syms = {s: (f.tape.first_ts, f.tape.last_ts) for s, f in sorted(self.engine.state.symbols.items())}
        return BacktestResult(self.config, self.strategies, summary, self.executors, self.risks, self.signals,
                              self.equity, self._trades, self._events, syms)

    # ------------------------------------------------------------ per snapshot
    def _on_snapshot(self, snap: FeatureSnapshot) -> None:
        sym = self.engine.state.symbols[snap.symbol]
        t = snap.ts_ms
        self._market(sym, t)
        self.clock.set(t)
        self.venue.advance(snap.symbol, t)
        self.venue.on_funding(snap.symbol, t, snap.mark_price, snap.funding_rate)
        for ex in self.executors.values():
            ex.on_time()
        self.venue.advance(snap.symbol, t)
        self._risk(snap)
        if snap.price is not None and self._first_ts is not None and t >= self._first_ts + self.config.warmup_ms:
            self._score(snap, sym)
            self.venue.advance(snap.symbol, t)
        if t != self._last_equity_ts:
            self._last_equity_ts = t
            for sid, ex in self.executors.items():
                unreal = sum(m.pos.unrealised(m.last_price) - m.pos.fees - m.pos.funding
                             for m in ex.machines.values())
                self.equity.append((t, sid, ex.account.balance, ex.account.balance + unreal))

    def _market(self, sym: SymbolFeatures, t: int) -> None:
        """Run the trades of ``[last boundary, t)`` through the venue and the machines."""
        tape, name = sym.tape, sym.symbol
        t0 = self._done_until.get(name, tape.first_ts if tape.first_ts is not None else t)
        self._done_until[name] = t
        if self._first_ts is None and tape.first_ts is not None:
            self._first_ts = tape.first_ts
        i, j = tape.span(t0, t)
        self._trades += j - i
        ts, px, qty = tape.ts, tape.price, tape.qty
        venue, clock = self.venue, self.clock
        k = i
        while k < j:
            nxt = venue.next_index(name, ts, px, k, j)
            for ex in self.executors.values():
                m = ex.machines.get(name)
                if m is not None:
                    nxt = m.next_trigger(ts, px, k, nxt)
            if nxt >= j:
                break
            tk, pk = int(ts[nxt]), float(px[nxt])
            clock.set(tk)
            if nxt > tape.start:
                venue.set_last(name, float(px[nxt - 1]))
            venue.on_trade(name, tk, pk, float(qty[nxt]))
            for ex in self.executors.values():
                if name in ex.machines:
                    ex.on_price(name, pk)
            venue.advance(name, tk)
            self._events += 1
            k = nxt + 1
        if j > i:
            venue.set_last(name, float(px[j - 1]))

    def _risk(self, snap: FeatureSnapshot) -> None:
        now = snap.ts_ms
        for sid, risk in self.risks.items():
            ex = self.executors[sid]
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
            self.venue.advance(None, now)

    def _score(self, snap: FeatureSnapshot, sym: SymbolFeatures) -> None:
        windows = self.evaluator.extra_windows(snap.symbol)
        extras = {cvd_input_name(w): sym.cvd(window_ms(w), snap.ts_ms) for w in windows} if windows else None
        price = snap.price
        assert price is not None
        results = []
        if self.score_sink is not None:
            everything = [r for batch in self.evaluator.evaluate(snap, extras) for r in batch.results()]
            self.score_sink(snap, everything)
            results = [r for r in everything if (r.is_entry or r.is_flip_signal) and r.side is not None]
        else:
            for batch in self.evaluator.evaluate(snap, extras):
                act = np.flatnonzero((batch.is_entry | batch.is_flip_signal) & (batch.side != 0))
                if act.size:
                    results.extend(batch.results(act.tolist()))  # only actionable rows become objects
        for r in results:
            side = 1 if r.side == "LONG" else -1
            sig = Signal(r.strategy_id, r.symbol, r.ts_ms, side, r.total, r.tier, r.is_entry, r.is_flip_signal,
                         snap.atr_5m, price, snap.best_bid, snap.best_ask)
            action = self.executors[r.strategy_id].on_signal(sig)
            self.signals.append({
                "ts_ms": r.ts_ms, "strategy_id": r.strategy_id, "symbol": r.symbol, "side": r.side,
                "score": r.total, "tier": r.tier, "is_entry": r.is_entry, "is_flip_signal": r.is_flip_signal,
                "price": price, "atr_5m": snap.atr_5m, "action": action,
            })
