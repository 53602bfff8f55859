"""The vectorised evaluator: many configs of many kinds scored on each snapshot.

Configs are grouped per symbol by kind and compiled once into parameter arrays; each snapshot
then costs one ``score_batch`` call per kind. Groups smaller than ``min_batch`` are scored with
the scalar functions instead (numpy's per-call overhead dominates there; both paths give equal
results). A config never sees a snapshot of a symbol it does not carry (the predecessor
evaluated every strategy on every symbol and filtered at open time).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from arbray.features.snapshot import FeatureSnapshot
from arbray.scoring.config import SNAPSHOT_CVD_FIELDS, Extras, StrategyConfig
from arbray.scoring.registry import StrategyKind, kind_of
from arbray.scoring.result import ScoreBatch, ScoreResult


@dataclass(frozen=True)
class _Group:
    """The configs of one kind for one symbol, compiled."""

    kind: StrategyKind[Any, Any]
    configs: tuple[StrategyConfig, ...]
    compiled: Any


class Evaluator:
    """Scores a fixed set of strategy configs on snapshots, one vectorised call per kind."""

    def __init__(self, configs: Sequence[StrategyConfig], min_batch: int = 8) -> None:
        dupes = sorted(k for k, n in Counter(c.strategy_id for c in configs).items() if n > 1)
        if dupes:
            raise ValueError(f"duplicate strategy ids: {dupes}")
        self.configs = tuple(configs)
        self.min_batch = min_batch
        self._groups: dict[str, list[_Group]] = {}
        self._extra_windows: dict[str, tuple[str, ...]] = {}

    def configs_for(self, symbol: str) -> list[StrategyConfig]:
        """The configs that carry ``symbol``, in the given order."""
        return [c for c in self.configs if symbol in c.applies_to]

    def extra_windows(self, symbol: str) -> tuple[str, ...]:
        """CVD windows the ``symbol`` configs read that the snapshot lacks (supply them as extras)."""
        if symbol not in self._extra_windows:
            wins = {w for c in self.configs_for(symbol) for w in kind_of(c).windows(c)}
            self._extra_windows[symbol] = tuple(sorted(w for w in wins if w not in SNAPSHOT_CVD_FIELDS))
        return self._extra_windows[symbol]

    def _compiled(self, symbol: str) -> list[_Group]:
        groups = self._groups.get(symbol)
        if groups is None:
            by_kind: dict[str, list[StrategyConfig]] = {}
            for c in self.configs_for(symbol):
                by_kind.setdefault(c.kind, []).append(c)
            groups = []
            for cfgs in by_kind.values():
                kind = kind_of(cfgs[0])
                groups.append(_Group(kind, tuple(cfgs), kind.compile(cfgs, symbol)))
            self._groups[symbol] = groups
        return groups

    def evaluate(self, snap: FeatureSnapshot, extras: Extras | None = None) -> list[ScoreBatch]:
        """One vectorised ``ScoreBatch`` per kind for the configs that carry ``snap.symbol``."""
        return [g.kind.score_batch(snap, g.compiled, extras) for g in self._compiled(snap.symbol)]

    def results(self, snap: FeatureSnapshot, extras: Extras | None = None) -> list[ScoreResult]:
        """Every ``ScoreResult`` for ``snap``, kind by kind; small groups take the scalar path."""
        out: list[ScoreResult] = []
        for g in self._compiled(snap.symbol):
            if len(g.configs) < self.min_batch:
                out.extend(g.kind.score(snap, c, extras) for c in g.configs)
            else:
                out.extend(g.kind.score_batch(snap, g.compiled, extras).results())
        return out
