"""``ScoringCore``: what a Strategy actor computes — every running strategy of a symbol at once.

Stateless between calls apart from the configs it was given: the actor re-reads the live strategy
set from the journal every evaluation cycle and calls ``set_configs`` when its version changed, so
an edit made through the API takes effect at the next boundary. Post-processors (calibration,
an expected-value gate) run on the results in order; the ones that trade are returned separately.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from arbray.features.snapshot import FeatureSnapshot
from arbray.scoring.config import StrategyConfig, cvd_input_name
from arbray.scoring.evaluator import Evaluator
from arbray.scoring.result import ScoreResult

PostProcessor = Callable[[FeatureSnapshot, list[ScoreResult]], list[ScoreResult]]
"""Maps a snapshot's results to (possibly changed) results, e.g. adding ``p_calibrated``."""


class ScoringCore:
    """Configs → an ``Evaluator``; snapshots → all results and the actionable ones."""

    def __init__(self, configs: Sequence[StrategyConfig] = (), version: str = "",
                 post: Sequence[PostProcessor] = ()) -> None:
        self.post = list(post)
        self.counters: Counter[str] = Counter()
        self.set_configs(configs, version)

    def set_configs(self, configs: Sequence[StrategyConfig], version: str) -> None:
        """Score these configs from now on (the previous set is dropped)."""
        self.configs = list(configs)
        self.evaluator = Evaluator(self.configs)
        self.version = version
        self.counters["reloads"] += 1

    def score(self, snap: FeatureSnapshot, extras: Mapping[str, float | None] | None = None,
              ) -> tuple[list[ScoreResult], list[ScoreResult]]:
        """(every result, the entry/flip results with a side) for one snapshot."""
        windows = self.evaluator.extra_windows(snap.symbol)
        wanted = {cvd_input_name(w) for w in windows}
        ex = {k: v for k, v in (extras or {}).items() if k in wanted} if wanted else None
        results = [r for batch in self.evaluator.evaluate(snap, ex) for r in batch.results()]
        for fn in self.post:
            results = fn(snap, results)
        actionable = [r for r in results if (r.is_entry or r.is_flip_signal) and r.side is not None]
        self.counters["snapshots"] += 1
        self.counters["scores"] += len(results)
        self.counters["actionable"] += len(actionable)
        return results, actionable
