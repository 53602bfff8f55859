"""Score → win-probability calibrators: bootstrap linear map, score buckets, isotonic regression.

- **bootstrap** (cold start, the plan's stage-1 map): ``P = 0.40 + score/100 × 0.30`` clipped to
  ``[0.35, 0.75]``; needs no data.
- **bucket**: the realised win rate per score bucket of ``width`` points (10, then 5 once samples
  allow); a bucket with fewer than ``min_bucket_samples`` falls back to its 10-point parent bucket,
  then to the bootstrap map.
- **isotonic**: a non-decreasing step fit by pool-adjacent-violators (``pav``, our own), predicted
  by linear interpolation between the fitted points and clamped outside them (as scikit-learn's
  ``IsotonicRegression(out_of_bounds="clip")``).

``CalibratorConfig.method_for(n)`` picks the method by sample count from a declarative table.
Every fitted calibrator has a content ``version`` (``<strategy>@<method>-<sha12>`` of its method,
sample counts and parameters), so re-fitting on the same data produces the same version and storing
it again is a no-op; the unstored cold-start map is ``BOOTSTRAP_VERSION``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from arbray.calibration.metrics import FloatArray, brier_score, log_loss, roc_auc
from arbray.scoring.config import FrozenModel, canonical_json

Method = Literal["bootstrap", "bucket", "isotonic"]
LabelName = Literal["y_binary_60m", "y_binary_30m"]
Population = Literal["sided", "passed", "entries"]
BOOTSTRAP_VERSION = "bootstrap-v1"
"""``calibrator_version`` of results calibrated by the cold-start map."""


def bootstrap_probability(score: npt.ArrayLike) -> FloatArray:
    """The plan's stage-1 map: ``0.40 + score/100 × 0.30`` clipped to ``[0.35, 0.75]``."""
    s = np.asarray(score, dtype=np.float64)
    return np.clip(0.40 + s / 100.0 * 0.30, 0.35, 0.75)


class MethodRule(FrozenModel):
    """Use ``method`` (with ``bucket_width`` for buckets) from ``min_samples`` labelled events on."""

    min_samples: int = Field(ge=0)
    method: Method
    bucket_width: float | None = Field(None, gt=0, le=50)

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        if (self.method == "bucket") != (self.bucket_width is not None):
            return [(("method", "bucket_width"), "bucket_width is required for bucket and only for bucket")]
        return []


AUTO_METHODS: tuple[MethodRule, ...] = (
    MethodRule(min_samples=5000, method="isotonic"),
    MethodRule(min_samples=1000, method="bucket", bucket_width=5.0),
    MethodRule(min_samples=300, method="bucket", bucket_width=10.0),
    MethodRule(min_samples=0, method="bootstrap"),
)
"""The plan's table (stage 2.2): bootstrap below 300 samples, 10-point buckets from 300, 5-point
buckets from 1000, isotonic regression from 5000."""


class CalibratorConfig(FrozenModel):
    """How ``arbray calibrate`` builds a strategy's calibrator from labelled score events."""

    label: LabelName = Field("y_binary_60m", description="outcome column the probability predicts")
    population: Population = Field("sided", description="events used: every event with a side, those no gate "
                                                        "blocked, or actual entries")
    auto_methods: tuple[MethodRule, ...] = Field(AUTO_METHODS, min_length=1)
    min_bucket_samples: int = Field(30, ge=1, description="a bucket with fewer samples falls back")
    isotonic_min_samples: int = Field(50, ge=2, description="isotonic needs at least this many samples")
    p_min: float = Field(0.01, ge=0.0, lt=0.5, description="fitted probabilities are clipped to [p_min, p_max]")
    p_max: float = Field(0.99, gt=0.5, le=1.0)
    score_lo: float = Field(0.0, description="bucket range; scores are clipped into it")
    score_hi: float = Field(100.0)
    holdout_fraction: float = Field(0.3, ge=0.0, lt=1.0, description="latest share of events kept out of the "
                                                                     "fit for the stored holdout metrics")
    activate: Literal["always", "beats_bootstrap"] = Field(
        "beats_bootstrap", description="activate a fitted map only if its holdout Brier beats the bootstrap map's")

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        out: list[tuple[tuple[str, ...], str]] = []
        if self.score_hi <= self.score_lo:
            out.append((("score_lo", "score_hi"), "score_hi must exceed score_lo"))
        mins = [r.min_samples for r in self.auto_methods]
        if mins != sorted(mins, reverse=True) or mins[-1] != 0:
            out.append((("auto_methods",), "rules must be ordered by decreasing min_samples, the last at 0"))
        return out

    def method_for(self, n: int) -> MethodRule:
        """The first rule whose ``min_samples`` ``n`` reaches."""
        return next(r for r in self.auto_methods if n >= r.min_samples)


def pav(y: npt.ArrayLike, w: npt.ArrayLike | None = None) -> FloatArray:
    """Pool-adjacent-violators: the weighted least-squares non-decreasing fit to ``y`` (in order)."""
    ya = np.asarray(y, dtype=np.float64)
    wa = np.ones_like(ya) if w is None else np.asarray(w, dtype=np.float64)
    n = ya.size
    val = np.empty(n)
    wt = np.empty(n)
    size = np.empty(n, dtype=np.int64)
    top = -1
    for i in range(n):
        top += 1
        val[top], wt[top], size[top] = ya[i], wa[i], 1
        while top > 0 and val[top - 1] > val[top]:
            tw = wt[top - 1] + wt[top]
            val[top - 1] = (val[top - 1] * wt[top - 1] + val[top] * wt[top]) / tw
            wt[top - 1] = tw
            size[top - 1] += size[top]
            top -= 1
    return np.repeat(val[: top + 1], size[: top + 1])


def _version(strategy: str, method: str, n: int, wins: int, params: Mapping[str, Any]) -> str:
    key = {"strategy": strategy, "method": method, "n": n, "wins": wins, "params": dict(params)}
    return f"{strategy}@{method}-{hashlib.sha256(canonical_json(key).encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class Calibrator:
    """A fitted map from score to win probability for one strategy (see the module docstring)."""

    strategy: str
    method: Method
    params: Mapping[str, Any]
    n_samples: int = 0
    n_wins: int = 0
    version: str = ""
    _x: FloatArray = field(init=False, repr=False, compare=False, default_factory=lambda: np.zeros(0))
    _y: FloatArray = field(init=False, repr=False, compare=False, default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        if not self.version:
            object.__setattr__(self, "version", _version(self.strategy, self.method, self.n_samples, self.n_wins,
                                                         self.params))
        if self.method == "isotonic":
            object.__setattr__(self, "_x", np.asarray(self.params["x"], dtype=np.float64))
            object.__setattr__(self, "_y", np.asarray(self.params["y"], dtype=np.float64))
        elif self.method == "bucket":
            b = self.params["buckets"]
            object.__setattr__(self, "_x", np.asarray([x["lo"] for x in b], dtype=np.float64))
            object.__setattr__(self, "_y", np.asarray([x["p"] for x in b], dtype=np.float64))

    def predict(self, score: npt.ArrayLike) -> FloatArray:
        """Win probabilities of ``score`` (any shape)."""
        s = np.asarray(score, dtype=np.float64)
        if self.method == "bootstrap":
            return bootstrap_probability(s)
        if self.method == "isotonic":
            return np.interp(s, self._x, self._y)
        lo, hi = float(self.params["score_lo"]), float(self.params["score_hi"])
        width = float(self.params["width"])
        k = np.clip(((np.clip(s, lo, hi) - lo) // width).astype(np.int64), 0, self._y.size - 1)
        out: FloatArray = self._y[k]
        return out

    def to_record(self) -> dict[str, Any]:
        """The ``calibrators`` row fields this calibrator defines."""
        return {"strategy": self.strategy, "version": self.version, "method": self.method,
                "n_samples": self.n_samples, "n_wins": self.n_wins, "params": dict(self.params)}

    @classmethod
    def from_record(cls, row: Mapping[str, Any]) -> Calibrator:
        """Inverse of ``to_record`` (a stored ``calibrators`` row)."""
        return cls(strategy=row["strategy"], method=row["method"], params=dict(row["params"]),
                   n_samples=int(row.get("n_samples") or 0), n_wins=int(row.get("n_wins") or 0),
                   version=row["version"])


BOOTSTRAP_PARAMS: Mapping[str, Any] = {"map": "0.40 + score/100 * 0.30, clipped to [0.35, 0.75]"}


def bootstrap_calibrator(strategy: str = "*") -> Calibrator:
    """The cold-start map as a ``Calibrator`` (version ``BOOTSTRAP_VERSION``)."""
    return Calibrator(strategy=strategy, method="bootstrap", params=BOOTSTRAP_PARAMS, version=BOOTSTRAP_VERSION)


def fit_bucket(strategy: str, score: npt.ArrayLike, y: npt.ArrayLike, width: float,
               config: CalibratorConfig) -> Calibrator:
    """Realised win rate per ``width``-point bucket; thin buckets fall back to 10-point, then bootstrap."""
    s = np.clip(np.asarray(score, dtype=np.float64), config.score_lo, config.score_hi)
    ya = np.asarray(y, dtype=np.float64)
    lo, hi = config.score_lo, config.score_hi

    def counts(w: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int]:
        nb = max(1, int(np.ceil((hi - lo) / w)))
        k = np.minimum(((s - lo) // w).astype(np.int64), nb - 1)
        return np.bincount(k, minlength=nb), np.bincount(k, weights=ya, minlength=nb).astype(np.int64), nb

    n, wins, nb = counts(width)
    pn, pw, _ = counts(10.0)
    buckets = []
    for b in range(nb):
        a = lo + b * width
        src: str
        if n[b] >= config.min_bucket_samples:
            p, src = wins[b] / n[b], "data"
        else:
            parent = int((a - lo) // 10.0)
            if width < 10.0 and parent < pn.size and pn[parent] >= config.min_bucket_samples:
                p, src = pw[parent] / pn[parent], "parent"
            else:
                p, src = float(bootstrap_probability(a + width / 2)), "bootstrap"
        buckets.append({"lo": a, "hi": min(hi, a + width), "n": int(n[b]), "wins": int(wins[b]),
                        "p": float(np.clip(p, config.p_min, config.p_max)), "source": src})
    params = {"width": width, "score_lo": lo, "score_hi": hi, "min_samples": config.min_bucket_samples,
              "buckets": buckets}
    return Calibrator(strategy, "bucket", params, int(s.size), int(ya.sum()))


def fit_isotonic(strategy: str, score: npt.ArrayLike, y: npt.ArrayLike, config: CalibratorConfig) -> Calibrator:
    """Isotonic (non-decreasing) regression of outcome on score by pool-adjacent-violators."""
    s = np.asarray(score, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if s.size < config.isotonic_min_samples:
        raise ValueError(f"isotonic calibration needs at least {config.isotonic_min_samples} samples, got {s.size}")
    xs, inv, cnt = np.unique(s, return_inverse=True, return_counts=True)
    mean_y = np.bincount(inv, weights=ya) / cnt
    fit = np.clip(pav(mean_y, cnt), config.p_min, config.p_max)
    keep = np.ones(xs.size, dtype=bool)  # drop interior points of flat runs: same predictions, smaller params
    keep[1:-1] = (fit[1:-1] != fit[:-2]) | (fit[1:-1] != fit[2:])
    params = {"x": [float(v) for v in xs[keep]], "y": [float(v) for v in fit[keep]]}
    return Calibrator(strategy, "isotonic", params, int(s.size), int(ya.sum()))


@dataclass(frozen=True)
class FitResult:
    """A fitted calibrator, why its method was chosen and its scores on the chronological holdout."""

    calibrator: Calibrator
    reason: str
    holdout: dict[str, Any]


def _fit(strategy: str, score: FloatArray, y: FloatArray, rule: MethodRule, config: CalibratorConfig) -> Calibrator:
    if rule.method == "isotonic":
        return fit_isotonic(strategy, score, y, config)
    if rule.method == "bucket":
        assert rule.bucket_width is not None
        return fit_bucket(strategy, score, y, rule.bucket_width, config)
    return Calibrator(strategy, "bootstrap", BOOTSTRAP_PARAMS, int(score.size), int(y.sum()))


def fit_calibrator(strategy: str, score: npt.ArrayLike, y: npt.ArrayLike, ts_ms: npt.ArrayLike | None = None,
                   config: CalibratorConfig | None = None, method: Literal["auto", "bucket", "isotonic"] = "auto",
                   ) -> FitResult:
    """Choose the method (by sample count unless forced), score it on the latest ``holdout_fraction`` of
    events after fitting on the earlier ones, then fit it on every event."""
    cfg = config or CalibratorConfig()
    s = np.asarray(score, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    n = int(s.size)
    auto = cfg.method_for(n)
    if method == "auto":
        rule, reason = auto, f"auto: {n} samples ≥ {auto.min_samples} → {auto.method}"
    elif method == "bucket":
        width = auto.bucket_width if auto.method == "bucket" else (5.0 if n >= 1000 else 10.0)
        rule, reason = MethodRule(min_samples=0, method="bucket", bucket_width=width), f"forced bucket ({width:g} pt)"
    else:
        rule, reason = MethodRule(min_samples=0, method="isotonic"), "forced isotonic"
    order = np.argsort(np.asarray(ts_ms, dtype=np.int64), kind="stable") if ts_ms is not None else np.arange(n)
    cut = round(n * (1 - cfg.holdout_fraction))
    holdout: dict[str, Any] = {"n_train": cut, "n_test": n - cut}
    train, test = order[:cut], order[cut:]
    if test.size and train.size >= (cfg.isotonic_min_samples if rule.method == "isotonic" else 1):
        early = _fit(strategy, s[train], ya[train], rule, cfg)
        p, pb = early.predict(s[test]), bootstrap_probability(s[test])
        holdout.update(brier=brier_score(p, ya[test]), brier_bootstrap=brier_score(pb, ya[test]),
                       log_loss=log_loss(p, ya[test]), log_loss_bootstrap=log_loss(pb, ya[test]),
                       auc=roc_auc(s[test], ya[test]), base_rate=float(ya[test].mean()))
    return FitResult(_fit(strategy, s, ya, rule, cfg), reason, holdout)


def latest_by_strategy(rows: Sequence[Mapping[str, Any]], active_only: bool = True) -> dict[str, Calibrator]:
    """The newest (highest id) calibrator per strategy among stored rows (active ones only by default)."""
    out: dict[str, tuple[int, Calibrator]] = {}
    for r in rows:
        if active_only and not r.get("active", True):
            continue
        rid = int(r.get("id") or 0)
        if r["strategy"] not in out or rid > out[r["strategy"]][0]:
            out[r["strategy"]] = (rid, Calibrator.from_record(r))
    return {k: v for k, (_, v) in out.items()}
