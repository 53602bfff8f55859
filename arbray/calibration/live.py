"""``LiveCalibration``: stamp every ``ScoreResult`` with a calibrated win probability.

The runtime's Strategy actor calls ``apply`` on every scored batch and ``load`` whenever
``await store.calibration_state()`` differs from ``version`` (a new calibrator was stored or one was
(de)activated). A strategy without a stored active calibrator gets the bootstrap map (version
``bootstrap-v1``), so results are calibrated from the first snapshot on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from arbray.calibration.calibrators import Calibrator, bootstrap_calibrator, latest_by_strategy
from arbray.calibration.metrics import FloatArray
from arbray.scoring.result import ScoreResult
from arbray.storage.base import Store


class LiveCalibration:
    """The latest active calibrator per strategy, applied to score results."""

    def __init__(self, calibrators: Mapping[str, Calibrator] | None = None) -> None:
        self._by_strategy: dict[str, Calibrator] = dict(calibrators or {})
        self._bootstrap = bootstrap_calibrator()
        self._version = "unloaded"

    @property
    def version(self) -> str:
        """The store's ``calibration_state()`` at the last ``load`` (``unloaded`` before the first)."""
        return self._version

    @property
    def calibrators(self) -> Mapping[str, Calibrator]:
        """The loaded calibrators by strategy id."""
        return dict(self._by_strategy)

    async def load(self, store: Store) -> None:
        """Load the newest active calibrator of every strategy from ``store``."""
        state = await store.calibration_state()
        rows = await store.calibrators(active_only=True)
        self._by_strategy = latest_by_strategy(rows)
        self._version = state

    def calibrator_for(self, strategy_id: str) -> Calibrator:
        """The strategy's calibrator, or the bootstrap map."""
        return self._by_strategy.get(strategy_id, self._bootstrap)

    def probabilities(self, strategy_ids: Sequence[str], totals: npt.ArrayLike) -> tuple[FloatArray, list[str]]:
        """Probabilities and calibrator versions for parallel columns (e.g. a ``ScoreBatch``'s
        ``strategy_ids`` and ``total``), without materialising results: the vectorised path."""
        t = np.asarray(totals, dtype=np.float64)
        p = np.empty(t.size)
        versions = [""] * t.size
        groups: dict[str, list[int]] = {}
        for i, sid in enumerate(strategy_ids):
            groups.setdefault(sid, []).append(i)
        for sid, idx in groups.items():
            cal = self.calibrator_for(sid)
            p[idx] = cal.predict(t[idx])
            for i in idx:
                versions[i] = cal.version
        return p, versions

    def apply(self, results: Sequence[ScoreResult]) -> list[ScoreResult]:
        """Copies of ``results`` with ``p_calibrated`` and ``calibrator_version`` set, in order."""
        if not results:
            return []
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(results):
            groups.setdefault(r.strategy_id, []).append(i)
        out: list[ScoreResult | None] = [None] * len(results)
        replace = dataclasses.replace
        for sid, idx in groups.items():
            cal = self.calibrator_for(sid)
            p = cal.predict(np.fromiter((results[i].total for i in idx), dtype=np.float64, count=len(idx))).tolist()
            v = cal.version
            for i, pi in zip(idx, p, strict=True):
                out[i] = replace(results[i], p_calibrated=pi, calibrator_version=v)
        return [r for r in out if r is not None]
