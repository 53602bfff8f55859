"""Statistics of probability forecasts of binary outcomes.

Brier score and its decomposition (Murphy 1973, with the two within-bin terms of Stephenson et al.
2008, so ``brier = reliability − resolution + uncertainty + within_bin_variance −
within_bin_covariance`` holds exactly for any binning; with one bin per distinct forecast value
the two extra terms are zero and it is Murphy's identity), log loss, ROC AUC (Mann–Whitney with
ties averaged), Wilson score intervals, the reliability curve and win rate by score band.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata  # type: ignore[import-untyped]  # scipy ships no stubs

FloatArray = npt.NDArray[np.float64]
Z95 = 1.959963984540054
"""Two-sided 95 % standard-normal quantile."""


def _arrays(p: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    pa, ya = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if pa.shape != ya.shape or pa.ndim != 1:
        raise ValueError(f"forecasts and outcomes must be 1-d of equal length, got {pa.shape} and {ya.shape}")
    if pa.size and (np.nanmin(pa) < 0 or np.nanmax(pa) > 1 or np.isnan(pa).any()):
        raise ValueError("forecast probabilities must lie in [0, 1]")
    if ya.size and not np.isin(ya, (0.0, 1.0)).all():
        raise ValueError("outcomes must be 0 or 1")
    return pa, ya


def wilson_interval(wins: int, n: int, z: float = Z95) -> tuple[float, float] | tuple[None, None]:
    """Wilson score interval of a binomial proportion (``(None, None)`` without samples)."""
    if n <= 0:
        return None, None
    phat = wins / n
    den = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / den
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / den
    lo, hi = centre - half, centre + half
    return (0.0 if lo < 1e-12 else lo), (1.0 if hi > 1 - 1e-12 else hi)


def brier_score(p: npt.ArrayLike, y: npt.ArrayLike) -> float | None:
    """Mean squared difference of forecast and outcome (None without samples)."""
    pa, ya = _arrays(p, y)
    return float(np.mean((pa - ya) ** 2)) if pa.size else None


@dataclass(frozen=True, slots=True)
class BrierDecomposition:
    """The terms of the Brier score; ``identity_error`` is what the identity misses (≈ 1e-16)."""

    n: int
    bins: int
    brier: float
    reliability: float
    resolution: float
    uncertainty: float
    within_bin_variance: float
    within_bin_covariance: float

    @property
    def identity_error(self) -> float:
        return self.brier - (self.reliability - self.resolution + self.uncertainty
                             + self.within_bin_variance - self.within_bin_covariance)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "identity_error": self.identity_error}


def _bin_index(p: FloatArray, bins: int | None) -> npt.NDArray[np.int64]:
    if bins is None:
        _, idx = np.unique(p, return_inverse=True)
        return idx.astype(np.int64)
    if bins < 1:
        raise ValueError("bins must be positive")
    return np.minimum((p * bins).astype(np.int64), bins - 1)


def brier_decomposition(p: npt.ArrayLike, y: npt.ArrayLike, bins: int | None = None) -> BrierDecomposition | None:
    """Reliability, resolution and uncertainty of the forecasts ``p`` of outcomes ``y``.

    ``bins=None`` groups by distinct forecast value (Murphy's exact identity); an integer uses that
    many equal-width bins on [0, 1] and reports the within-bin variance and covariance terms.
    """
    pa, ya = _arrays(p, y)
    n = pa.size
    if n == 0:
        return None
    k = _bin_index(pa, bins)
    nb = int(k.max()) + 1
    cnt = np.bincount(k, minlength=nb).astype(np.float64)
    used = cnt > 0
    pbar = np.bincount(k, weights=pa, minlength=nb)[used] / cnt[used]
    obar = np.bincount(k, weights=ya, minlength=nb)[used] / cnt[used]
    base = float(ya.mean())
    c = cnt[used]
    pk = np.zeros(nb)
    ok = np.zeros(nb)
    pk[used], ok[used] = pbar, obar
    dp, dy = pa - pk[k], ya - ok[k]
    return BrierDecomposition(
        n=n, bins=int(used.sum()), brier=float(np.mean((pa - ya) ** 2)),
        reliability=float(np.sum(c * (pbar - obar) ** 2) / n),
        resolution=float(np.sum(c * (obar - base) ** 2) / n),
        uncertainty=base * (1 - base),
        within_bin_variance=float(np.sum(dp * dp) / n),
        within_bin_covariance=float(2 * np.sum(dp * dy) / n),
    )


def log_loss(p: npt.ArrayLike, y: npt.ArrayLike, eps: float = 1e-15) -> float | None:
    """Mean negative log-likelihood, forecasts clipped to ``[eps, 1 − eps]`` (None without samples)."""
    pa, ya = _arrays(p, y)
    if not pa.size:
        return None
    q = np.clip(pa, eps, 1 - eps)
    return float(-np.mean(ya * np.log(q) + (1 - ya) * np.log(1 - q)))


def roc_auc(score: npt.ArrayLike, y: npt.ArrayLike) -> float | None:
    """Area under the ROC curve of ``score`` for outcomes ``y`` (ties count ½); None with one class."""
    s = np.asarray(score, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if s.shape != ya.shape:
        raise ValueError("score and outcomes must have equal length")
    n1 = int(ya.sum())
    n0 = ya.size - n1
    if n1 == 0 or n0 == 0:
        return None
    ranks = rankdata(s)
    return float((ranks[ya == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def reliability_curve(p: npt.ArrayLike, y: npt.ArrayLike, bins: int = 10) -> list[dict[str, Any]]:
    """Per equal-width forecast bin: count, mean forecast, realised rate and its Wilson 95 % interval."""
    pa, ya = _arrays(p, y)
    k = _bin_index(pa, bins)
    out = []
    for b in range(bins):
        m = k == b
        n = int(m.sum())
        wins = int(ya[m].sum())
        lo, hi = wilson_interval(wins, n)
        out.append({"lo": b / bins, "hi": (b + 1) / bins, "n": n, "wins": wins,
                    "mean_p": float(pa[m].mean()) if n else None, "rate": wins / n if n else None,
                    "ci_lo": lo, "ci_hi": hi})
    return out


def band_table(score: npt.ArrayLike, y: npt.ArrayLike, width: float = 10.0, lo: float = 0.0,
               hi: float = 100.0) -> list[dict[str, Any]]:
    """Win rate with Wilson interval per score band of ``width`` (scores clipped into ``[lo, hi]``)."""
    s = np.clip(np.asarray(score, dtype=np.float64), lo, hi)
    ya = np.asarray(y, dtype=np.float64)
    nb = max(1, math.ceil((hi - lo) / width))
    k = np.minimum(((s - lo) // width).astype(np.int64), nb - 1)
    out = []
    for b in range(nb):
        m = k == b
        n = int(m.sum())
        wins = int(ya[m].sum())
        ci_lo, ci_hi = wilson_interval(wins, n)
        a = lo + b * width
        out.append({"band": f"{a:g}-{min(hi, a + width):g}", "lo": a, "hi": min(hi, a + width), "n": n,
                    "wins": wins, "rate": wins / n if n else None, "ci_lo": ci_lo, "ci_hi": ci_hi})
    return out


def forecast_summary(p: npt.ArrayLike, y: npt.ArrayLike, score: npt.ArrayLike | None = None,
                     bins: int = 10) -> dict[str, Any]:
    """Every statistic of one set of forecasts: Brier (+ skill vs the base rate), decomposition,
    log loss, AUC of the forecast (and of the raw score when given) and the reliability curve."""
    pa, ya = _arrays(p, y)
    n = int(pa.size)
    base = float(ya.mean()) if n else None
    brier = brier_score(pa, ya)
    ref = None if base is None else base * (1 - base)
    dec = brier_decomposition(pa, ya, bins=bins)
    return {
        "n": n, "wins": int(ya.sum()), "base_rate": base, "mean_p": float(pa.mean()) if n else None,
        "brier": brier,
        "brier_skill": None if brier is None or not ref else 1 - brier / ref,
        "decomposition": None if dec is None else dec.to_dict(),
        "log_loss": log_loss(pa, ya),
        "auc": roc_auc(pa, ya),
        "auc_score": None if score is None else roc_auc(score, ya),
        "curve": reliability_curve(pa, ya, bins) if n else [],
    }
