"""Calibration monitor: how well each strategy's probabilities match realised outcomes.

Per strategy (and per symbol and period within it) over the labelled events of the configured
population: the bootstrap map's forecasts, the active stored calibrator's forecasts (split into the
events it was trained on and those after its training range — only the latter are out of sample)
and the probabilities recorded live (``p_calibrated`` in the journal) where there are any; for each
the Brier score with its decomposition, log loss, AUC and the reliability curve with Wilson
intervals. Discrimination of the raw score: AUC and win rate per score band, for labels and, where
the strategy traded, for its closed trades.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import Field

from arbray.calibration.calibrators import Calibrator, LabelName, Population, bootstrap_probability, latest_by_strategy
from arbray.calibration.dataset import column, group_by, select
from arbray.calibration.metrics import band_table, brier_score, forecast_summary, roc_auc
from arbray.clock import Clock, SystemClock
from arbray.scoring.config import FrozenModel
from arbray.storage.base import Store

HOUR_MS = 3_600_000
DAY_MS = 86_400_000


class MonitorConfig(FrozenModel):
    """Which outcome and events the report judges, and its binning."""

    label: LabelName = "y_binary_60m"
    population: Population = "sided"
    bins: int = Field(10, ge=2, le=50, description="reliability-curve bins on [0, 1]")
    band_width: float = Field(10.0, gt=0, le=50, description="score band width")
    period_ms: int | None = Field(None, ge=60_000, description="period breakdown; default: a day, an hour if the "
                                                               "events span less than three days")


def _forecasts(rows: Sequence[Mapping[str, Any]], cal: Calibrator | None, train_to: int | None,
               cfg: MonitorConfig) -> dict[str, Any]:
    score, y = column(rows, "total"), column(rows, cfg.label)
    out: dict[str, Any] = {"bootstrap": forecast_summary(bootstrap_probability(score), y, score, cfg.bins)}
    if cal is not None:
        p = cal.predict(score)
        ts = column(rows, "ts_ms")
        out["calibrated"] = forecast_summary(p, y, score, cfg.bins)
        if train_to is not None:
            late = ts > train_to
            out["calibrated_out_of_sample"] = forecast_summary(p[late], y[late], score[late], cfg.bins)
    recorded = [r for r in rows if r.get("p_calibrated") is not None]
    if recorded:
        out["recorded"] = forecast_summary(column(recorded, "p_calibrated"), column(recorded, cfg.label),
                                           column(recorded, "total"), cfg.bins)
    return out


def _brief(rows: Sequence[Mapping[str, Any]], cal: Calibrator | None, cfg: MonitorConfig) -> dict[str, Any]:
    score, y = column(rows, "total"), column(rows, cfg.label)
    return {"n": len(rows), "wins": int(y.sum()), "base_rate": float(y.mean()) if len(rows) else None,
            "brier_bootstrap": brier_score(bootstrap_probability(score), y),
            "brier_calibrated": None if cal is None else brier_score(cal.predict(score), y),
            "auc_score": roc_auc(score, y)}


async def _trades_by_strategy(store: Store, run_id: str | None) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    cursor: str | None = None
    while True:
        page = await store.trades(run_id=run_id, limit=1_000, cursor=cursor)
        for t in page.rows:
            sid = (t.get("detail") or {}).get("strategy_id")
            if sid is not None and t.get("score") is not None and t.get("r_multiple") is not None:
                out.setdefault(sid, []).append(t)
        if (cursor := page.next_cursor) is None:
            return out


async def calibration_report(store: Store, config: MonitorConfig | None = None, strategy: str | None = None,
                             run_id: str | None = None, clock: Clock | None = None) -> dict[str, Any]:
    """The calibration report (JSON-ready) of every strategy with labelled events, or of one."""
    cfg = config or MonitorConfig()
    rows = select(await store.labelled_events(strategy=strategy, run_id=run_id), cfg.population, cfg.label)
    stored = await store.calibrators()
    cals = latest_by_strategy(stored, active_only=False)
    live = {c.version for c in latest_by_strategy(stored).values()}
    rows_of = {r["version"]: r for r in stored}
    trades = await _trades_by_strategy(store, run_id)
    times = [int(r["ts_ms"]) for r in rows]
    span = (max(times) - min(times)) if times else 0
    period = cfg.period_ms or (DAY_MS if span >= 3 * DAY_MS else HOUR_MS)
    report: dict[str, Any] = {"generated_ms": (clock or SystemClock()).now_ms(), "config": cfg.model_dump(mode="json"),
                              "run_id": run_id, "label_counts": await store.label_counts(), "events": len(rows),
                              "period_ms": period, "strategies": {}}
    for sid, srows in group_by(rows, "strategy").items():
        cal = cals.get(sid)
        score, y = column(srows, "total"), column(srows, cfg.label)
        ts = column(srows, "ts_ms")
        entry: dict[str, Any] = {
            "n": len(srows), "wins": int(y.sum()), "base_rate": float(y.mean()),
            "first_ms": int(ts.min()), "last_ms": int(ts.max()),
            "kinds": sorted({str(r.get("kind")) for r in srows}),
            "calibrator": None if cal is None else {
                "version": cal.version, "method": cal.method, "n_samples": cal.n_samples,
                "active": bool(rows_of[cal.version]["active"]), "live": cal.version in live,
                "activation": (rows_of[cal.version].get("metrics") or {}).get("activation"),
                "train_to_ms": rows_of[cal.version].get("train_to_ms"),
                "holdout": (rows_of[cal.version].get("metrics") or {}).get("holdout"), "params": dict(cal.params)},
            "forecasts": _forecasts(srows, cal, None if cal is None else rows_of[cal.version].get("train_to_ms"), cfg),
            "auc_score": roc_auc(score, y),
            "bands": band_table(score, y, cfg.band_width),
            "by_symbol": {s: _brief(g, cal, cfg) for s, g in group_by(srows, "symbol").items()},
            "by_period": [{"start_ms": int(k), **_brief(g, cal, cfg)} for k, g in
                          sorted(group_by([{**r, "_p": int(r["ts_ms"]) // period * period} for r in srows],
                                          "_p").items(), key=lambda kv: int(kv[0]))],
        }
        st = trades.get(sid, [])
        if st:
            entry["trades"] = {"n": len(st), "win_rate": float(np.mean([t["r_multiple"] > 0 for t in st])),
                               "net_r": float(sum(t["r_multiple"] for t in st)),
                               "bands": band_table([t["score"] for t in st], [t["r_multiple"] > 0 for t in st],
                                                   cfg.band_width)}
        report["strategies"][sid] = entry
    return report
