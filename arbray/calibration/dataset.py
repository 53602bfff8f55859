"""Labelled score events as the calibration dataset: population filters and numpy columns.

Rows come from ``Store.labelled_events``. A population is the set of events whose outcome a
probability is meant for: ``sided`` (every event that names a side), ``passed`` (those no gate
blocked) or ``entries`` (actual entry signals); only labels with status ``ok`` carry outcomes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from arbray.calibration.calibrators import LabelName, Population

FloatArray = npt.NDArray[np.float64]


def in_population(row: Mapping[str, Any], population: Population) -> bool:
    """Whether a labelled event belongs to ``population`` (and has a usable outcome)."""
    if row.get("status") != "ok" or row.get("side") is None:
        return False
    if population == "passed":
        return bool(row.get("gate_passed"))
    if population == "entries":
        return bool(row.get("is_entry"))
    return True


def select(rows: Iterable[Mapping[str, Any]], population: Population, label: LabelName) -> list[Mapping[str, Any]]:
    """The rows of ``population`` whose ``label`` is known."""
    return [r for r in rows if in_population(r, population) and r.get(label) is not None]


def column(rows: Sequence[Mapping[str, Any]], name: str) -> FloatArray:
    """One numeric column (None → NaN)."""
    return np.asarray([np.nan if r.get(name) is None else float(r[name]) for r in rows], dtype=np.float64)


def outcome_r(row: Mapping[str, Any], target_atr: float = 2.0, stop_atr: float = 1.0) -> float | None:
    """The event's outcome as a virtual trade in R (1R = ``stop_atr`` × ATR): the target (+target/stop R)
    or the stop (−1R), whichever the label saw first within 60 min, else the 60-minute return in R."""
    if row.get("status") != "ok":
        return None
    if row.get("first_hit") == "target" and row.get("y_binary_60m") == 1:
        return target_atr / stop_atr
    if row.get("first_hit") == "stop":
        return -1.0
    ret, p0, atr = row.get("y_return_60m"), row.get("entry_price"), row.get("atr")
    if ret is None or not p0 or not atr:
        return None
    return float(ret) * float(p0) / (stop_atr * float(atr))


def group_by(rows: Iterable[Mapping[str, Any]], key: str) -> dict[Any, list[Mapping[str, Any]]]:
    """Rows grouped by one column, keys sorted."""
    out: dict[Any, list[Mapping[str, Any]]] = {}
    for r in rows:
        out.setdefault(r.get(key), []).append(r)
    return dict(sorted(out.items(), key=lambda kv: str(kv[0])))
