"""``arbray calibrate``: fit a strategy's calibrator on its labelled score events and store it.

The stored row carries the method, why it was chosen, sample counts, the chronological-holdout
scores (fitted on the earlier events, scored on the latest ``holdout_fraction``, next to the
bootstrap map on the same events) and the training time range. It becomes the strategy's active
calibrator — which ``LiveCalibration`` picks up on its next ``load`` — only if it beat the bootstrap
map on that holdout (``CalibratorConfig.activate``); otherwise it is stored inactive, with the reason.
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
    active, why = activation(fit.holdout, cal.method, cfg)
    metrics["activation"] = why
    rec = {**cal.to_record(), "score_field": "total", "label": cfg.label, "metrics": metrics,
           "train_from_ms": int(ts.min()), "train_to_ms": int(ts.max()),
           "created_ms": (clock or SystemClock()).now_ms(), "active": active}
    stored = await store.insert_calibrator(rec)
    if not stored:  # the same fit again: its activation follows the same rule
        await store.set_calibrator_active(cal.version, active)
    return {"strategy": strategy, "version": cal.version, "method": cal.method, "reason": fit.reason,
            "stored": stored, "active": active, "activation": why, "n_samples": cal.n_samples, "n_wins": cal.n_wins,
            "holdout": fit.holdout, "train_from_ms": rec["train_from_ms"], "train_to_ms": rec["train_to_ms"]}


def activation(holdout: dict[str, Any], method: str, config: CalibratorConfig) -> tuple[bool, str]:
    """Whether a fit becomes the live calibrator: always, or only if it beat the bootstrap map out of sample."""
    if config.activate == "always" or method == "bootstrap":
        return True, "activated" if method != "bootstrap" else "bootstrap map"
    ours, boot = holdout.get("brier"), holdout.get("brier_bootstrap")
    if ours is None or boot is None:
        return False, "not activated: no holdout events to compare it with the bootstrap map"
    if ours < boot:
        return True, f"activated: holdout Brier {ours:.4f} < bootstrap {boot:.4f}"
    return False, f"not activated: holdout Brier {ours:.4f} ≥ bootstrap {boot:.4f}"
