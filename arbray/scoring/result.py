"""``ScoreResult``: what one strategy says about one snapshot, and ``ScoreBatch``, many of them.

A ``ScoreResult`` is the record the journal stores for calibration: per-layer raw and weighted
scores, every gate's status with the first block reason, the total, side, tier, entry and flip
flags, the strategy's identity (id, kind, version, config hash), the raw inputs it used and the
inputs that were missing. ``ScoreBatch`` holds the same for N configs of one kind as numpy
columns (the vectorised path) and materialises ``ScoreResult``s on demand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

Side = Literal["LONG", "SHORT"]
Tier = Literal["light", "standard", "heavy"]
GateStatus = Literal["not_run", "passed", "blocked", "disabled"]

GATE_STATUSES: tuple[GateStatus, ...] = ("not_run", "passed", "blocked", "disabled")
"""Codes of ``ScoreBatch.gate_status``: the index into this tuple."""
NOT_RUN, PASSED, BLOCKED, DISABLED = 0, 1, 2, 3
TIERS: tuple[Tier | None, ...] = (None, "light", "standard", "heavy")
"""Codes of ``ScoreBatch.tier``: the index into this tuple."""
NO_TIER, LIGHT, STANDARD, HEAVY = 0, 1, 2, 3


def side_name(side: int) -> Side | None:
    """+1 → LONG, −1 → SHORT, 0 → None."""
    return "LONG" if side > 0 else "SHORT" if side < 0 else None


class LayerScore(NamedTuple):
    """One scoring layer: raw points on the kind's own scale and the weighted contribution."""

    name: str
    raw: float
    raw_max: float
    score: float
    max: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "raw": self.raw, "raw_max": self.raw_max, "score": self.score, "max": self.max}


class GateResult(NamedTuple):
    """One gate: passed, blocked (with its reason), disabled, or not run after an earlier block."""

    name: str
    status: GateStatus
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """The score of one strategy config on one snapshot."""

    strategy_id: str
    kind: str
    version: str
    config_hash: str
    symbol: str
    ts_ms: int
    side: Side | None
    side_allowed: bool
    total: float
    layers: tuple[LayerScore, ...]
    gates: tuple[GateResult, ...]
    block_reason: str | None
    tier: Tier | None
    is_entry: bool
    is_flip_signal: bool
    missing: tuple[str, ...]
    inputs: Mapping[str, float | None]
    """Raw inputs read (read-only; results of one batch may share it)."""
    p_calibrated: float | None = None
    """Calibrated win probability (``arbray.calibration``); None until a calibrator is applied."""
    calibrator_version: str | None = None
    """Version of the calibrator that set ``p_calibrated`` (``bootstrap`` on a cold start)."""

    @property
    def gate_passed(self) -> bool:
        """True when no gate blocked and the snapshot was ready to score."""
        return self.block_reason is None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Picklable (the runtime's input log): the read-only ``inputs`` view travels as a dict."""
        values = tuple(dict(v) if f.name == "inputs" else v
                       for f, v in ((f, getattr(self, f.name)) for f in fields(self)))
        return _rebuild_score_result, values

    def layer(self, name: str) -> LayerScore:
        """The layer called ``name``."""
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise KeyError(name)

    def gate(self, name: str) -> GateResult:
        """The gate called ``name``."""
        for g in self.gates:
            if g.name == name:
                return g
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the journal record)."""
        return {
            "strategy_id": self.strategy_id,
            "kind": self.kind,
            "version": self.version,
            "config_hash": self.config_hash,
            "symbol": self.symbol,
            "ts_ms": self.ts_ms,
            "side": self.side,
            "side_allowed": self.side_allowed,
            "total": self.total,
            "gate_passed": self.gate_passed,
            "block_reason": self.block_reason,
            "tier": self.tier,
            "is_entry": self.is_entry,
            "is_flip_signal": self.is_flip_signal,
            "layers": [lay.to_dict() for lay in self.layers],
            "gates": [g.to_dict() for g in self.gates],
            "missing": list(self.missing),
            "inputs": dict(self.inputs),
            "p_calibrated": self.p_calibrated,
            "calibrator_version": self.calibrator_version,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScoreResult:
        """Inverse of ``to_dict`` (``gate_passed`` is derived and ignored)."""
        return cls(
            strategy_id=d["strategy_id"],
            kind=d["kind"],
            version=d["version"],
            config_hash=d["config_hash"],
            symbol=d["symbol"],
            ts_ms=int(d["ts_ms"]),
            side=d["side"],
            side_allowed=bool(d["side_allowed"]),
            total=float(d["total"]),
            layers=tuple(LayerScore(x["name"], float(x["raw"]), float(x["raw_max"]), float(x["score"]),
                                    float(x["max"])) for x in d["layers"]),
            gates=tuple(GateResult(x["name"], x["status"], x["reason"]) for x in d["gates"]),
            block_reason=d["block_reason"],
            tier=d["tier"],
            is_entry=bool(d["is_entry"]),
            is_flip_signal=bool(d["is_flip_signal"]),
            missing=tuple(d["missing"]),
            inputs=dict(d["inputs"]),
            p_calibrated=None if d.get("p_calibrated") is None else float(d["p_calibrated"]),
            calibrator_version=d.get("calibrator_version"),
        )


FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int8]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class ScoreBatch:
    """Scores of N configs of one kind on one snapshot, column by column.

    Row ``i`` is config ``i`` of the compiled group; ``result(i)`` equals what the kind's scalar
    ``score`` returns for that config. Layer arrays are ``(N, n_layers)``, gate codes
    ``(N, n_gates)`` (see ``GATE_STATUSES``), ``side`` is +1/−1/0 and ``tier`` a ``TIERS`` code.
    """

    kind: str
    version: str
    symbol: str
    ts_ms: int
    strategy_ids: Sequence[str]
    config_hashes: Sequence[str]
    layer_names: tuple[str, ...]
    gate_names: tuple[str, ...]
    side: IntArray
    side_allowed: BoolArray
    total: FloatArray
    layer_raw: FloatArray
    layer_raw_max: FloatArray
    layer_score: FloatArray
    layer_max: FloatArray
    gate_status: IntArray
    block_reason: Sequence[str | None]
    tier: IntArray
    is_entry: BoolArray
    is_flip_signal: BoolArray
    missing: Sequence[tuple[str, ...]]
    inputs: Sequence[Mapping[str, float | None]]

    def __len__(self) -> int:
        return len(self.strategy_ids)

    def result(self, i: int) -> ScoreResult:
        """The ``ScoreResult`` of row ``i``."""
        return self.results([i])[0]

    def results(self, rows: Sequence[int] | None = None) -> list[ScoreResult]:
        """``ScoreResult``s of ``rows`` (default: all), in row order."""
        idx = range(len(self)) if rows is None else rows
        side, allowed, total = self.side.tolist(), self.side_allowed.tolist(), self.total.tolist()
        raw, raw_max = self.layer_raw.tolist(), self.layer_raw_max.tolist()
        score, lmax = self.layer_score.tolist(), self.layer_max.tolist()
        gst, tier = self.gate_status.tolist(), self.tier.tolist()
        entry, flip = self.is_entry.tolist(), self.is_flip_signal.tolist()
        lnames, gnames = self.layer_names, self.gate_names
        gate_cache: dict[tuple[tuple[int, ...], str | None], tuple[GateResult, ...]] = {}
        input_views: dict[int, Mapping[str, float | None]] = {}
        out: list[ScoreResult] = []
        for i in idx:
            inp = self.inputs[i]
            view = input_views.get(id(inp))
            if view is None:
                view = input_views[id(inp)] = MappingProxyType(dict(inp))
            reason = self.block_reason[i]
            key = (tuple(gst[i]), reason)
            gates = gate_cache.get(key)
            if gates is None:
                gates = gate_cache[key] = tuple(
                    GateResult(name, GATE_STATUSES[code], reason if code == BLOCKED else None)
                    for name, code in zip(gnames, key[0], strict=True)
                )
            out.append(ScoreResult(
                strategy_id=self.strategy_ids[i],
                kind=self.kind,
                version=self.version,
                config_hash=self.config_hashes[i],
                symbol=self.symbol,
                ts_ms=self.ts_ms,
                side=side_name(side[i]),
                side_allowed=allowed[i],
                total=total[i],
                layers=tuple(map(LayerScore, lnames, raw[i], raw_max[i], score[i], lmax[i])),
                gates=gates,
                block_reason=reason,
                tier=TIERS[tier[i]],
                is_entry=entry[i],
                is_flip_signal=flip[i],
                missing=self.missing[i],
                inputs=view,
            ))
        return out


def _rebuild_score_result(*values: Any) -> ScoreResult:
    """Unpickle a ``ScoreResult`` (``inputs`` read-only again)."""
    r = ScoreResult(*values)
    object.__setattr__(r, "inputs", MappingProxyType(dict(r.inputs)))
    return r
