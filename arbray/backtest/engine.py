"""The deterministic backtest engine: replay → features → scoring → execution → accounts → risk.

It drives the same objects as the live runtime: ``ReplayEngine`` emits a ``FeatureSnapshot`` per
symbol every ``every_ms``; at a snapshot at ``B`` the engine first runs the symbol's trades of
``[previous B, B)`` through the paper venue and the position machines (numpy finds the next trade
at which anything can happen, so quiet trades cost nothing in Python), then fires timers, charges
funding, updates the risk engines, and finally scores the snapshot and hands the signals to each
strategy's executor. Time comes only from a ``ManualClock`` set to exchange time. The trading
step itself is ``arbray.execution.trader.Trader``, which the live PositionManager drives too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import Field

from arbray.execution.executor import StrategyExecutor
from arbray.execution.machine import PositionMachine
from arbray.execution.trader import Trader, TradingConfig, rules_for
from arbray.features.snapshot import FeatureSnapshot
from arbray.features.symbol import SymbolFeatures
from arbray.replay.engine import ReplayEngine, ReplaySummary
from arbray.replay.readers import Record
from arbray.risk.rules import RiskEngine
from arbray.scoring.config import StrategyConfig, canonical_json, cvd_input_name, window_ms
from arbray.scoring.evaluator import Evaluator
from arbray.scoring.result import ScoreResult
from arbray.screener.live import KlineExtrasMemo, wants_kline_extras

__all__ = ["Backtest", "BacktestConfig", "BacktestResult", "ScoreFilter", "rules_for"]

ScoreFilter = Callable[[FeatureSnapshot, list[ScoreResult]], list[ScoreResult]]
"""Receives a snapshot's entry/flip results and returns the ones to act on (e.g. an EV gate)."""


class BacktestConfig(TradingConfig):
    """Everything besides the strategies and the inputs that determines a backtest's output."""

    every_ms: int = Field(15_000, ge=1_000, le=3_600_000, description="snapshot and scoring interval")

    @property
    def config_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.model_dump(mode="json")).encode("ascii")).hexdigest()


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
    """One deterministic run of strategies over recorded inputs: a replay driving a ``Trader``."""

    def __init__(
        self,
        strategies: Sequence[StrategyConfig],
        config: BacktestConfig | None = None,
        score_sink: Callable[[FeatureSnapshot, list[ScoreResult]], None] | None = None,
        score_filter: ScoreFilter | None = None,
    ) -> None:
        self.config = config or BacktestConfig()
        self.score_sink = score_sink  # receives every ScoreResult (e.g. for the journal); off by default
        self.score_filter = score_filter
        self.strategies = list(strategies)
        self.trader = Trader(self.strategies, self.config)
        self.clock = self.trader.clock
        self.evaluator = Evaluator(self.strategies)
        self.signals: list[dict[str, Any]] = []
        self._done_until: dict[str, int] = {}
        self._kline_memos: dict[str, KlineExtrasMemo | None] = {}
        self.engine = ReplayEngine(self.config.every_ms, self._on_snapshot)

    def run(self, sources: Iterable[Iterator[Record]]) -> BacktestResult:
        summary = self.engine.run(sources)
        syms = {s: (f.tape.first_ts, f.tape.last_ts) for s, f in sorted(self.engine.state.symbols.items())}
        t = self.trader
        return BacktestResult(self.config, self.strategies, summary, t.executors, t.risks, self.signals,
                              t.equity, t.trades_processed, t.events_processed, syms)

    # ------------------------------------------------------------ per snapshot
    def _on_snapshot(self, snap: FeatureSnapshot) -> None:
        sym = self.engine.state.symbols[snap.symbol]
        trader = self.trader
        self._market(sym, snap.ts_ms)
        trader.begin_boundary(snap)
        if trader.eligible(snap):
            self.signals.extend(trader.act(snap, self._score(snap, sym)))
        trader.end_boundary(snap)

    def _market(self, sym: SymbolFeatures, t: int) -> None:
        """Hand the trades of ``[last boundary, t)`` to the trader."""
        tape, name = sym.tape, sym.symbol
        t0 = self._done_until.get(name, tape.first_ts if tape.first_ts is not None else t)
        self._done_until[name] = t
        i, j = tape.span(t0, t)
        if j > i:
            self.trader.on_trades(name, tape.ts[i:j], tape.price[i:j], tape.qty[i:j])

    def _kline_memo(self, symbol: str) -> KlineExtrasMemo | None:
        """The symbol's kline-factor memo when a kind that reads kline extras (``ats_v2``) trades it."""
        if symbol not in self._kline_memos:
            wanted = wants_kline_extras(c.kind for c in self.evaluator.configs_for(symbol))
            self._kline_memos[symbol] = KlineExtrasMemo() if wanted else None
        return self._kline_memos[symbol]

    def _score(self, snap: FeatureSnapshot, sym: SymbolFeatures) -> list[ScoreResult]:
        """The snapshot's entry/flip results (only actionable rows become objects on the fast path)."""
        windows = self.evaluator.extra_windows(snap.symbol)
        extras = {cvd_input_name(w): sym.cvd(window_ms(w), snap.ts_ms) for w in windows} if windows else None
        memo = self._kline_memo(snap.symbol)
        if memo is not None:
            extras = {**(extras or {}), **memo(sym.bars_5m, sym.bars_1h)}
        results: list[ScoreResult] = []
        if self.score_sink is not None:
            everything = [r for batch in self.evaluator.evaluate(snap, extras) for r in batch.results()]
            self.score_sink(snap, everything)
            results = [r for r in everything if (r.is_entry or r.is_flip_signal) and r.side is not None]
        else:
            for batch in self.evaluator.evaluate(snap, extras):
                act = np.flatnonzero((batch.is_entry | batch.is_flip_signal) & (batch.side != 0))
                if act.size:
                    results.extend(batch.results(act.tolist()))
        return self.score_filter(snap, results) if self.score_filter is not None else results
