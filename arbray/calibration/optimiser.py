"""Gate and threshold optimiser: scan a gate threshold, judge it out of sample by walk-forward.

A *scan* keeps the samples whose field value is above (or below) each threshold and reports count,
win rate, net and mean R and a Sharpe proxy (``mean / std × √n``, a t-statistic) per threshold. The
field is the score ``total``, ``p_calibrated``, a layer score (``layer:<name>``), a raw input
(``input:<name>``) or a snapshot feature (``feature:<name>``, e.g. ``feature:atr_pct_5m`` for a
volatility floor). Samples are labelled events (outcome: the label as a virtual trade — the target's
R, −1R at the stop, else the 60-minute return in R, minus ``cost_r``) or closed trades joined with
their signal events (outcome: net R).

*Walk-forward*: rolling folds of ``train_ms`` (30 days) tested on the following ``step_ms`` (7 days),
shrunk in proportion when the data span is shorter than ``train + min_folds × step``. A training set
holds only samples whose outcome is known before its test window starts (``end_ms ≤ test start``:
an event's label horizon or a trade's exit), so no training outcome looks into the test period. On
each fold the objective picks the threshold in sample; the picks are then scored on their test
windows and stitched. A threshold is recommended only when that stitched out-of-sample result has
positive net R and beats no gate on the same windows by the objective — never from in-sample numbers
alone; the recommended value is the pick on the latest training window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from arbray.calibration.calibrators import Population
from arbray.calibration.dataset import in_population, outcome_r
from arbray.scoring.config import FrozenModel
from arbray.storage.base import Store

DAY_MS = 86_400_000
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class ScanSpec(FrozenModel):
    """One gate threshold to scan."""

    field: str = Field("total", pattern=r"^(total|p_calibrated|(layer|input|feature):[A-Za-z0-9_]+)$")
    keep: Literal["above", "below"] = Field("above", description="keep samples with value ≥ (above) or ≤ threshold")
    thresholds: tuple[float, ...] | None = Field(None, min_length=1, description="default: a quantile grid")
    grid_size: int = Field(15, ge=2, le=200)
    population: Population | None = Field(None, description="events mode; default: passed for total/p_calibrated "
                                                            "(simulated entry rule), entries otherwise (tightening)")

    def population_for(self) -> Population:
        if self.population is not None:
            return self.population
        return "passed" if self.field in ("total", "p_calibrated") else "entries"


class OptimiserConfig(FrozenModel):
    """Samples, objective and walk-forward geometry."""

    mode: Literal["events", "trades"] = "events"
    objective: Literal["sharpe_proxy", "net_r"] = "sharpe_proxy"
    train_ms: int = Field(30 * DAY_MS, ge=60_000)
    step_ms: int = Field(7 * DAY_MS, ge=60_000)
    min_folds: int = Field(3, ge=1, le=100, description="folds the span must allow before windows shrink")
    label_horizon_ms: int = Field(3_600_000, ge=0, description="an event's outcome is known this long after it")
    min_train_count: int = Field(20, ge=1, description="a threshold keeping fewer training samples is not picked")
    min_test_count: int = Field(10, ge=1, description="stitched out-of-sample samples needed to recommend")
    cost_r: float = Field(0.0, ge=0, le=5, description="cost charged per virtual trade (events mode)")
    spacing_ms: int = Field(0, ge=0, description="events mode: keep at most one event per symbol per this span, so "
                                                 "overlapping label windows do not inflate the sample count")
    target_atr: float = Field(2.0, gt=0)
    stop_atr: float = Field(1.0, gt=0)


@dataclass(frozen=True, slots=True)
class Fold:
    """One walk-forward fold: train on ``[train_start, train_end)``, test on ``[test_start, test_end)``."""

    train_start: int
    train_end: int
    test_start: int
    test_end: int


@dataclass(frozen=True, slots=True)
class Samples:
    """Scan inputs: when each sample starts, when its outcome is known, its field value and outcome R."""

    start_ms: IntArray
    end_ms: IntArray
    value: FloatArray
    outcome: FloatArray

    def __len__(self) -> int:
        return int(self.start_ms.size)

    def take(self, idx: npt.NDArray[np.int64] | npt.NDArray[np.bool_]) -> Samples:
        return Samples(self.start_ms[idx], self.end_ms[idx], self.value[idx], self.outcome[idx])


def walk_forward_folds(start_ms: int, end_ms: int, train_ms: int, step_ms: int,
                       min_folds: int = 3) -> tuple[list[Fold], float]:
    """Rolling folds over ``[start_ms, end_ms)`` and the scale applied to both windows (1.0 = as given)."""
    span = end_ms - start_ms
    if span <= 0:
        return [], 1.0
    scale = min(1.0, span / (train_ms + min_folds * step_ms))
    train, step = max(1, math.ceil(train_ms * scale)), max(1, math.ceil(step_ms * scale))
    folds = []
    k = 0
    while True:
        a = start_ms + k * step
        test_start = a + train
        if test_start >= end_ms:
            break
        folds.append(Fold(a, test_start, test_start, min(test_start + step, end_ms)))
        k += 1
    return folds, scale


def split(samples: Samples, fold: Fold) -> tuple[IntArray, IntArray]:
    """Training indices (started in the train window, outcome known by the test start) and test indices."""
    s, e = samples.start_ms, samples.end_ms
    train = np.flatnonzero((s >= fold.train_start) & (e <= fold.test_start))
    test = np.flatnonzero((s >= fold.test_start) & (s < fold.test_end))
    return train.astype(np.int64), test.astype(np.int64)


def outcome_stats(r: FloatArray) -> dict[str, Any]:
    """Count, win rate, net and mean R, Sharpe proxy of outcomes ``r``."""
    n = int(r.size)
    sd = float(r.std(ddof=1)) if n > 1 else 0.0
    mean = float(r.mean()) if n else None
    return {"n": n, "win_rate": float((r > 0).mean()) if n else None, "net_r": float(r.sum()), "avg_r": mean,
            "sharpe_proxy": mean / sd * math.sqrt(n) if n > 1 and sd > 0 and mean is not None else None}


def _keep(value: FloatArray, thr: float, keep: str) -> npt.NDArray[np.bool_]:
    return value >= thr if keep == "above" else value <= thr


def scan(samples: Samples, thresholds: Sequence[float], keep: str) -> list[dict[str, Any]]:
    """Outcome statistics of the samples each threshold keeps."""
    return [{"threshold": float(t), **outcome_stats(samples.outcome[_keep(samples.value, t, keep)])}
            for t in thresholds]


def pick(rows: Sequence[Mapping[str, Any]], objective: str, min_count: int) -> float | None:
    """The threshold maximising ``objective`` among those keeping at least ``min_count`` samples."""
    best: tuple[float, float] | None = None
    for r in rows:
        v = r[objective]
        if r["n"] < min_count or v is None:
            continue
        if best is None or v > best[0]:
            best = (v, r["threshold"])
    return None if best is None else best[1]


def grid(values: FloatArray, size: int) -> list[float]:
    """Distinct quantiles of ``values`` (``size`` levels from the minimum to the 95th percentile)."""
    if not values.size:
        return []
    q = np.unique(np.quantile(values, np.linspace(0.0, 0.95, size)))
    return [float(x) for x in q]


def optimise(samples: Samples, spec: ScanSpec, config: OptimiserConfig) -> dict[str, Any]:
    """In-sample scan, walk-forward folds with out-of-sample scores, and the recommendation (or why none)."""
    ok = ~np.isnan(samples.value) & ~np.isnan(samples.outcome)
    data = samples.take(ok)
    thresholds = list(spec.thresholds) if spec.thresholds is not None else grid(data.value, spec.grid_size)
    report: dict[str, Any] = {"field": spec.field, "keep": spec.keep, "samples": len(data),
                              "missing_value": int((~ok).sum()), "thresholds": thresholds,
                              "in_sample": scan(data, thresholds, spec.keep), "folds": []}
    if not len(data) or not thresholds:
        report["recommendation"] = None
        report["reason"] = "no samples"
        return report
    folds, scale = walk_forward_folds(int(data.start_ms.min()), int(data.start_ms.max()) + 1, config.train_ms,
                                      config.step_ms, config.min_folds)
    report["window_scale"] = scale
    chosen_out: list[FloatArray] = []
    base_out: list[FloatArray] = []
    per_thr: list[list[FloatArray]] = [[] for _ in thresholds]
    for f in folds:
        tr, te = split(data, f)
        train, test = data.take(tr), data.take(te)
        rows = scan(train, thresholds, spec.keep)
        thr = pick(rows, config.objective, config.min_train_count)
        entry: dict[str, Any] = {"train": [f.train_start, f.train_end], "test": [f.test_start, f.test_end],
                                 "n_train": len(train), "n_test": len(test), "chosen": thr,
                                 "baseline_test": outcome_stats(test.outcome)}
        base_out.append(test.outcome)
        for i, t in enumerate(thresholds):
            per_thr[i].append(test.outcome[_keep(test.value, t, spec.keep)])
        if thr is not None:
            kept = test.outcome[_keep(test.value, thr, spec.keep)]
            entry["train_stats"] = next(r for r in rows if r["threshold"] == thr)
            entry["test_stats"] = outcome_stats(kept)
            chosen_out.append(kept)
        report["folds"].append(entry)
    stitched = np.concatenate(chosen_out) if chosen_out else np.zeros(0)
    baseline = np.concatenate(base_out) if base_out else np.zeros(0)
    report["oos"] = {"chosen": outcome_stats(stitched), "baseline": outcome_stats(baseline),
                     "folds_with_pick": len(chosen_out)}
    report["oos_by_threshold"] = [{"threshold": t, **outcome_stats(np.concatenate(parts) if parts else np.zeros(0))}
                                  for t, parts in zip(thresholds, per_thr, strict=True)]
    now = int(data.end_ms.max())
    train_len = max(1, int(config.train_ms * scale))
    last_train = data.take(np.flatnonzero(data.start_ms >= now - train_len))
    current = pick(scan(last_train, thresholds, spec.keep), config.objective, config.min_train_count)
    oos, base, obj = report["oos"]["chosen"], report["oos"]["baseline"], config.objective
    if len(chosen_out) < 2 or oos["n"] < config.min_test_count:
        reason = f"too little out-of-sample evidence ({len(chosen_out)} folds with a pick, {oos['n']} test samples)"
        rec = None
    elif oos["net_r"] <= 0 or (oos[obj] or -math.inf) <= (base[obj] or -math.inf):
        reason = (f"out-of-sample net R {oos['net_r']:.2f} is not positive, or its {obj} "
                  f"{_num(oos[obj])} does not beat no gate ({_num(base[obj])})")
        rec = None
    elif current is None:
        reason, rec = "no threshold qualifies on the latest training window", None
    else:
        reason, rec = (f"walk-forward out-of-sample {obj} {_num(oos[obj])} (net R {oos['net_r']:.2f} over "
                       f"{oos['n']} samples) beats no gate ({_num(base[obj])}); value picked on the latest "
                       "training window"), current
    report["recommendation"] = rec
    report["reason"] = reason
    return report


def _num(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def field_value(row: Mapping[str, Any], name: str) -> float | None:
    """A sample's value of ``total``/``p_calibrated``/``layer:x``/``input:x``/``feature:x``."""
    if ":" not in name:
        v = row.get(name)
    else:
        kind, key = name.split(":", 1)
        if kind == "layer":
            v = next((lay.get("score") for lay in row.get("layers") or () if lay.get("name") == key), None)
        else:
            v = (row.get("inputs" if kind == "input" else "features") or {}).get(key)
    return None if v is None else float(v)


def event_samples(rows: Sequence[Mapping[str, Any]], spec: ScanSpec, config: OptimiserConfig) -> Samples:
    """Samples of labelled events (``Store.labelled_events(with_details=True)`` rows) of the scan's population."""
    pop = spec.population_for()
    chosen = [r for r in rows if in_population(r, pop)]
    if config.spacing_ms:
        last: dict[str, int] = {}
        spaced = []
        for r in sorted(chosen, key=lambda r: (int(r["ts_ms"]), r.get("id", 0))):
            t = int(r["ts_ms"])
            if t - last.get(r["symbol"], -config.spacing_ms) >= config.spacing_ms:
                last[r["symbol"]] = t
                spaced.append(r)
        chosen = spaced
    start = np.asarray([int(r["ts_ms"]) for r in chosen], dtype=np.int64)
    out = [outcome_r(r, config.target_atr, config.stop_atr) for r in chosen]
    return Samples(start, start + config.label_horizon_ms,
                   np.asarray([np.nan if (v := field_value(r, spec.field)) is None else v for r in chosen]),
                   np.asarray([np.nan if o is None else o - config.cost_r for o in out]))


async def trade_samples(store: Store, spec: ScanSpec, run_id: str | None = None,
                        strategy: str | None = None) -> Samples:
    """Samples of closed trades (outcome net R) with the field read from each trade's signal event."""
    trades: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await store.trades(run_id=run_id, limit=1_000, cursor=cursor)
        trades += page.rows
        if (cursor := page.next_cursor) is None:
            break
    keep = [t for t in trades if (t.get("detail") or {}).get("signal_ts_ms") is not None and t.get("r_multiple")
            is not None and (strategy is None or t["detail"].get("strategy_id") == strategy)]
    events: dict[tuple[str, str, str, int], Mapping[str, Any]] = {}
    wanted: dict[tuple[str, str, str], list[int]] = {}
    for t in keep:
        wanted.setdefault((t["run_id"], t["detail"]["strategy_id"], t["symbol"]), []).append(
            int(t["detail"]["signal_ts_ms"]))
    for (run, strat, sym), ts_list in wanted.items():
        for e in await store.score_events_at(run, strat, sym, ts_list):
            events[(run, strat, sym, int(e["ts_ms"]))] = e
    vals, starts, ends, outs = [], [], [], []
    for t in sorted(keep, key=lambda t: (t["entry_ms"], t["id"])):
        ev = events.get((t["run_id"], t["detail"]["strategy_id"], t["symbol"], int(t["detail"]["signal_ts_ms"])))
        v = None if ev is None else field_value(ev, spec.field)
        vals.append(np.nan if v is None else v)
        starts.append(int(t["entry_ms"]))
        ends.append(int(t["exit_ms"]))
        outs.append(float(t["r_multiple"]))
    return Samples(np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64),
                   np.asarray(vals, dtype=np.float64), np.asarray(outs, dtype=np.float64))


async def gates_report(store: Store, strategy: str, specs: Sequence[ScanSpec], config: OptimiserConfig | None = None,
                       run_id: str | None = None) -> dict[str, Any]:
    """``optimise`` for each scan of one strategy, over its labelled events or its trades."""
    cfg = config or OptimiserConfig()
    rows = await store.labelled_events(strategy=strategy, run_id=run_id, with_details=True) \
        if cfg.mode == "events" else []
    scans = []
    for spec in specs:
        samples = event_samples(rows, spec, cfg) if cfg.mode == "events" else \
            await trade_samples(store, spec, run_id, strategy)
        scans.append({"population": spec.population_for() if cfg.mode == "events" else "trades",
                      **optimise(samples, spec, cfg)})
    return {"strategy": strategy, "run_id": run_id, "mode": cfg.mode, "config": cfg.model_dump(mode="json"),
            "scans": scans}
