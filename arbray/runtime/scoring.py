"""``ScoringCore``: what a Strategy actor computes — every running strategy of a symbol at once.

Stateless between calls apart from the configs it was given: the actor re-reads the live strategy
set from the journal every evaluation cycle and calls ``set_configs`` when its version changed, so
an edit made through the API takes effect at the next boundary. Post-processors (calibration,
an expected-value gate) run on the results in order; the ones that trade are returned separately.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

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


class Calibrated:
    """The Strategy actor's post-processor: every result gets its calibrated win probability
    (``arbray.calibration.LiveCalibration``: the strategy's active calibrator, else the bootstrap map),
    then the expected-value gate blocks the entries of the strategies it is configured for."""

    def __init__(self, ev_gates: Mapping[str, Any] | None = None) -> None:
        """``ev_gates``: strategy → ``EvGateConfig`` (or its JSON form, as it crosses an actor boundary)."""
        from arbray.calibration.ev_gate import EvGateConfig
        from arbray.calibration.live import LiveCalibration

        self.live = LiveCalibration()
        self.ev_gates = {k: v if isinstance(v, EvGateConfig) else EvGateConfig.model_validate(v)
                         for k, v in (ev_gates or {}).items()}
        self.gate: Any = None

    async def refresh(self, store: Any) -> bool:
        """Reload the calibrators (and the gate's realised costs) when the journal's calibration changed."""
        state = await store.calibration_state()
        if state == self.live.version:
            return False
        await self.live.load(store)
        if self.ev_gates:
            from arbray.calibration.ev_gate import EvGate

            self.gate = await EvGate.from_store(store, self.ev_gates, calibration=self.live)
        return True

    def __call__(self, snap: FeatureSnapshot, results: list[ScoreResult]) -> list[ScoreResult]:
        out = self.live.apply(results)
        return self.gate(snap, out) if self.gate is not None else out
