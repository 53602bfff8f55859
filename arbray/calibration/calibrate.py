"""``arbray calibrate``: fit a strategy's calibrator on its labelled score events and store it.

The stored row carries the method, why it was chosen, sample counts, the chronological-holdout
scores (fitted on the earlier events, scored on the latest ``holdout_fraction``, next to the
bootstrap map on the same events) and the training time range; it becomes the strategy's active
calibrator, which ``LiveCalibration`` picks up on its next ``load``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from arbray.calibration.calibrators import CalibratorConfig, fit_calibrator
from arbray.calibration.dataset import column, select
from arbray.clock import Clock, SystemClock
from arbray.storage.base import Store


async def calibrate_strategy(store: Store, strategy: str, config: CalibratorConfig | None = None,
                             method: Literal["auto", "bucket", "isotonic"] = "auto", run_id: str | None = None,
                             clock: Clock | None = None) -> dict[str, Any]:
    """Fit, store and activate the calibrator of ``strategy`` (the config's strategy_id); its summary."""
    cfg = config or CalibratorConfig()
    rows = select(await store.labelled_events(strategy=strategy, run_id=run_id), cfg.population, cfg.label)
    if not rows:
        raise ValueError(f"no labelled {cfg.population} events for strategy {strategy!r}"
                         f"{'' if run_id is None else f' in run {run_id!r}'}; run `arbray label` first")
    score, y, ts = column(rows, "total"), column(rows, cfg.label), column(rows, "ts_ms").astype(np.int64)
    fit = fit_calibrator(strategy, score, y, ts, cfg, method)
    cal = fit.calibrator
    metrics = {"reason": fit.reason, "holdout": fit.holdout, "population": cfg.population, "run_id": run_id,
               "config": cfg.model_dump(mode="json")}
    rec = {**cal.to_record(), "score_field": "total", "label": cfg.label, "metrics": metrics,
           "train_from_ms": int(ts.min()), "train_to_ms": int(ts.max()),
           "created_ms": (clock or SystemClock()).now_ms(), "active": True}
    stored = await store.insert_calibrator(rec)
    if not stored:  # the same fit again: make sure that version is the active one
        await store.set_calibrator_active(cal.version, True)
    return {"strategy": strategy, "version": cal.version, "method": cal.method, "reason": fit.reason,
            "stored": stored, "n_samples": cal.n_samples, "n_wins": cal.n_wins, "holdout": fit.holdout,
            "train_from_ms": rec["train_from_ms"], "train_to_ms": rec["train_to_ms"]}
