"""``v51_baseline``: the V5.1 five-layer, 100-point model as implemented (digest §4.2).

Side: CVD fast (30m) and mid (4h) both > 0 → LONG, both < 0 → SHORT; otherwise the fast sign
(LONG if fast > 0, else SHORT) with ``no_direction``: the total is still computed and logged,
but there is no entry and no flip (gate ``cvd_consensus``, reason ``no_direction``).

Raw layers (points for side ``d``):
- direction 45: fast aligned +15, mid aligned +15, P99 flow aligned +15 / no adverse +10 / 0;
- accel: +``accel_bonus`` (5) when ``cvd_accel_30m_per_min2`` is aligned — on top of direction,
  so the total can reach 100 + accel_bonus (this kind is not capped, as in the predecessor);
- crowding 20: LSR (short with > 2.0 or long with < 0.5 → 10; 1.5–2.0 / 0.5–0.67 → 5, the
  design table's middle band; missing 5) + top trader long share (aligned ≥ 55 % → 10,
  adverse ≤ 45 % → 0, else 5; missing 5);
- environment 15: OI change ≥ 3 % → 15, > 0 → 10, else 5; missing 10;
- confirmation 15: fast and mid of the same sign → 15 (duplicates direction, as implemented);
- auxiliary 5: Coinbase premium aligned beyond 0.05 % → 5, within → 2, adverse 0; missing 2.
Each layer contributes ``raw × weight / raw_max``: with the V5.1 weights (45/20/15/15/5) that is
the raw score. Total = ``round(Σ, 1)``. Tiers: light from ``entry_score`` (only when it is below
``standard_score``, as with the original threshold 60), standard from 75, heavy from 85.

Inputs: ``cvd_30m``, ``cvd_4h``, ``large_buy_qty_15m``/``large_sell_qty_15m``,
``cvd_accel_30m_per_min2``, ``long_short_ratio``, ``top_trader_long_ratio``, ``oi_change_pct``,
and the optional extra input ``coinbase_premium`` (the snapshot has none, so the auxiliary layer
normally scores its missing value 2 and lists the input as missing).

Deliberate differences from the predecessor: acceleration per minute² from the snapshot (not a
per-call difference that explodes after a restart); OI change over the snapshot's real horizon
(not since the previous 15 s evaluation); a snapshot without price, ATR or the two CVDs is not
scored (``not_ready:<input>``, total 0, as the V5.4 engine did) because every exit is ATR-based;
flips respect ``direction``; a config carries its symbols and refuses others; the light-tier
bounds and LSR middle band come from the V5.1 design table where the as-implemented notes are
silent.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
from pydantic import Field

from arbray.features.snapshot import FeatureSnapshot
from arbray.scoring.config import (
    DEFAULT_SYMBOLS,
    AtrTargets,
    Direction,
    Extras,
    FrozenModel,
    StrategyConfig,
    StrategyId,
    Symbol,
    WrongSymbolError,
    extra_input,
    flip_rule,
    require_symbol,
    require_symbols,
    side_allowed,
)
from arbray.scoring.registry import StrategyKind, register
from arbray.scoring.result import (
    BLOCKED,
    HEAVY,
    LIGHT,
    NO_TIER,
    NOT_RUN,
    PASSED,
    STANDARD,
    GateResult,
    LayerScore,
    ScoreBatch,
    ScoreResult,
    Tier,
    side_name,
)

from .factory import oi_points, premium_points, top_trader_points

KIND = "v51_baseline"
VERSION = "5.1"
FAST, MID = "cvd_30m", "cvd_4h"
GATE = "cvd_consensus"
RAW_MAX = {
    "direction": 45.0, "accel": 5.0, "crowding": 20.0, "funding_rate": 5.0, "environment": 15.0,
    "confirmation": 15.0, "liquidation": 5.0, "auxiliary": 5.0,
}
V51_LAYERS = ("direction", "accel", "crowding", "environment", "confirmation", "auxiliary")


# ===================================================================== raw layer rules
def p99_points(d: int, buy: float | None, sell: float | None) -> float:
    """P99 flow: aligned inflow 15, no adverse 10, adverse 0; missing 10."""
    if buy is None or sell is None:
        return 10.0
    aligned, adverse = (buy, sell) if d > 0 else (sell, buy)
    return 15.0 if aligned > 0 else 0.0 if adverse > 0 else 10.0


def lsr_points(d: int, lsr: float | None) -> float:
    """Contrarian LSR: > 2.0 (short) / < 0.5 (long) → 10; 1.5–2.0 / 0.5–0.67 → 5; missing 5."""
    if lsr is None:
        return 5.0
    if (d < 0 and lsr > 2.0) or (d > 0 and lsr < 0.5):
        return 10.0
    if (d < 0 and lsr >= 1.5) or (d > 0 and lsr <= 0.67):
        return 5.0
    return 0.0


def fr_points(d: int, fr: float | None, fr_max: float) -> float:
    """V5.2 linear funding layer: ``min(|FR|/max|FR| × 5, 5)`` when favourable, else 0; missing 0."""
    if fr is None or not ((d > 0 and fr < 0) or (d < 0 and fr > 0)):
        return 0.0
    return min(abs(fr) / fr_max * 5, 5.0)


def liq_ratio_points(d: int, liq_long: float, liq_short: float) -> float:
    """V5.2 liquidation gradient on opponent/own liquidated USD: ≥ 2 → 5, ≥ 1.5 → 3, ≥ 1.2 → 1."""
    own, opp = (liq_long, liq_short) if d > 0 else (liq_short, liq_long)
    if own <= 0:
        return 5.0 if opp > 0 else 0.0
    ratio = opp / own
    return 5.0 if ratio >= 2.0 else 3.0 if ratio >= 1.5 else 1.0 if ratio >= 1.2 else 0.0


# ===================================================================== parameters
@dataclass(frozen=True, slots=True)
class LegacyParams:
    """One V5.1/V5.2 config's numbers on one symbol; ``weights`` follow ``layers``."""

    layers: tuple[str, ...]
    weights: tuple[float, ...]
    fr_max_abs: float | None
    liq_min_usd: float | None
    entry_score: float
    standard_score: float
    heavy_score: float
    flip_threshold: float
    direction: Direction


def _inputs(snap: FeatureSnapshot, layers: tuple[str, ...], extras: Extras | None) -> dict[str, float | None]:
    out: dict[str, float | None] = {
        "price": snap.price, "atr_pct_5m": snap.atr_pct_5m, FAST: snap.cvd_30m, MID: snap.cvd_4h,
        "large_buy_qty_15m": snap.large_buy_qty_15m, "large_sell_qty_15m": snap.large_sell_qty_15m,
        "cvd_accel_30m_per_min2": snap.cvd_accel_30m_per_min2, "long_short_ratio": snap.long_short_ratio,
        "top_trader_long_ratio": snap.top_trader_long_ratio, "oi_change_pct": snap.oi_change_pct,
        "coinbase_premium": extra_input(extras, "coinbase_premium"),
    }
    if "funding_rate" in layers:
        out["funding_rate"] = snap.funding_rate
        out["liq_long_usd_5m"] = snap.liq_long_usd_5m
        out["liq_short_usd_5m"] = snap.liq_short_usd_5m
    return out


def _side(fast: float, mid: float) -> tuple[int, bool]:
    if fast > 0 and mid > 0:
        return 1, True
    if fast < 0 and mid < 0:
        return -1, True
    return (1 if fast > 0 else -1), False


def _tier(total: float, p: LegacyParams) -> Tier:
    return "heavy" if total >= p.heavy_score else "standard" if total >= p.standard_score else "light"


def _not_ready(snap: FeatureSnapshot) -> str | None:
    if snap.price is None or snap.price <= 0:
        return "not_ready:price"
    if snap.atr_pct_5m is None or snap.atr_pct_5m <= 0:
        return "not_ready:atr_pct_5m"
    if snap.cvd_30m is None:
        return "not_ready:" + FAST
    if snap.cvd_4h is None:
        return "not_ready:" + MID
    return None


# ===================================================================== scalar engine
def evaluate(snap: FeatureSnapshot, p: LegacyParams, kind: str, version: str, strategy_id: str, config_hash: str,
             extras: Extras | None) -> ScoreResult:
    """Score one V5.1/V5.2 config on one snapshot."""
    inputs = _inputs(snap, p.layers, extras)
    missing = tuple(k for k, v in inputs.items() if v is None)
    reason = _not_ready(snap)
    fast, mid = snap.cvd_30m, snap.cvd_4h
    if reason is not None or fast is None or mid is None:
        return ScoreResult(
            strategy_id=strategy_id, kind=kind, version=version, config_hash=config_hash, symbol=snap.symbol,
            ts_ms=snap.ts_ms, side=None, side_allowed=False, total=0.0,
            layers=tuple(LayerScore(n, 0.0, RAW_MAX[n], 0.0, w) for n, w in zip(p.layers, p.weights, strict=True)),
            gates=(GateResult(GATE, "not_run"),), block_reason=reason, tier=None, is_entry=False,
            is_flip_signal=False, missing=missing, inputs=inputs,
        )
    d, consensus = _side(fast, mid)
    accel = snap.cvd_accel_30m_per_min2
    raw = {
        "direction": (15.0 if fast * d > 0 else 0.0) + (15.0 if mid * d > 0 else 0.0)
        + p99_points(d, snap.large_buy_qty_15m, snap.large_sell_qty_15m),
        "accel": 5.0 if accel is not None and accel * d > 0 else 0.0,
        "crowding": lsr_points(d, snap.long_short_ratio) + top_trader_points(d, snap.top_trader_long_ratio),
        "environment": oi_points(snap.oi_change_pct),
        "confirmation": 15.0 if consensus else 0.0,
        "auxiliary": premium_points(d, inputs["coinbase_premium"]),
    }
    if p.fr_max_abs is not None and p.liq_min_usd is not None:
        raw["funding_rate"] = fr_points(d, snap.funding_rate, p.fr_max_abs)
        liq_total = snap.liq_long_usd_5m + snap.liq_short_usd_5m
        raw["liquidation"] = (liq_ratio_points(d, snap.liq_long_usd_5m, snap.liq_short_usd_5m)
                              if liq_total >= p.liq_min_usd else 0.0)
    layers = tuple(LayerScore(n, raw[n], RAW_MAX[n], raw[n] * w / RAW_MAX[n], w)
                   for n, w in zip(p.layers, p.weights, strict=True))
    s = 0.0
    for lay in layers:
        s += lay.score
    total = round(s, 1)
    allowed = side_allowed(p.direction, d)
    ok = consensus and allowed
    is_entry = ok and total >= p.entry_score
    return ScoreResult(
        strategy_id=strategy_id, kind=kind, version=version, config_hash=config_hash, symbol=snap.symbol,
        ts_ms=snap.ts_ms, side=side_name(d), side_allowed=allowed, total=total, layers=layers,
        gates=(GateResult(GATE, "passed") if consensus else GateResult(GATE, "blocked", "no_direction"),),
        block_reason=None if consensus else "no_direction",
        tier=_tier(total, p) if is_entry else None, is_entry=is_entry,
        is_flip_signal=ok and total >= p.flip_threshold, missing=missing, inputs=inputs,
    )


# ===================================================================== vectorised engine
@dataclass(frozen=True)
class LegacyBatch:
    """N V5.1/V5.2 configs of one kind as arrays (one symbol)."""

    kind: str
    version: str
    symbol: str
    layers: tuple[str, ...]
    strategy_ids: tuple[str, ...]
    config_hashes: tuple[str, ...]
    weights: np.ndarray[Any, np.dtype[np.float64]]
    fr_max_abs: np.ndarray[Any, np.dtype[np.float64]] | None
    liq_min_usd: np.ndarray[Any, np.dtype[np.float64]] | None
    entry_score: np.ndarray[Any, np.dtype[np.float64]]
    standard_score: np.ndarray[Any, np.dtype[np.float64]]
    heavy_score: np.ndarray[Any, np.dtype[np.float64]]
    flip_threshold: np.ndarray[Any, np.dtype[np.float64]]
    allow_long: np.ndarray[Any, np.dtype[np.bool_]]
    allow_short: np.ndarray[Any, np.dtype[np.bool_]]


def compile_params(kind: str, version: str, symbol: str, ids: Sequence[str], hashes: Sequence[str],
                   params: Sequence[LegacyParams]) -> LegacyBatch:
    """Turn N configs' numbers into arrays, once, for ``evaluate_batch``."""
    layers = params[0].layers if params else ()
    with_v52 = all(p.fr_max_abs is not None for p in params) and bool(params)

    def arr(field: str) -> np.ndarray[Any, np.dtype[np.float64]]:
        return np.array([getattr(p, field) for p in params], dtype=np.float64)

    return LegacyBatch(
        kind=kind, version=version, symbol=symbol, layers=layers, strategy_ids=tuple(ids),
        config_hashes=tuple(hashes),
        weights=np.array([p.weights for p in params], dtype=np.float64).reshape(len(params), len(layers)),
        fr_max_abs=arr("fr_max_abs") if with_v52 else None, liq_min_usd=arr("liq_min_usd") if with_v52 else None,
        entry_score=arr("entry_score"),
        standard_score=arr("standard_score"), heavy_score=arr("heavy_score"), flip_threshold=arr("flip_threshold"),
        allow_long=np.array([side_allowed(p.direction, 1) for p in params], dtype=np.bool_),
        allow_short=np.array([side_allowed(p.direction, -1) for p in params], dtype=np.bool_),
    )


def evaluate_batch(snap: FeatureSnapshot, b: LegacyBatch, extras: Extras | None) -> ScoreBatch:
    """Score every config of ``b`` on ``snap``: raw layers once, weights and thresholds as arrays."""
    if snap.symbol != b.symbol:
        raise WrongSymbolError(f"configs compiled for {b.symbol} cannot score a {snap.symbol} snapshot")
    n, nl = len(b.strategy_ids), len(b.layers)
    inputs = _inputs(snap, b.layers, extras)
    missing = tuple(k for k, v in inputs.items() if v is None)
    raw_max = np.array([RAW_MAX[name] for name in b.layers])
    reason = _not_ready(snap)
    fast, mid = snap.cvd_30m, snap.cvd_4h
    if reason is not None or fast is None or mid is None:
        zeros = np.zeros((n, nl))
        none = np.zeros(n, dtype=np.bool_)
        return ScoreBatch(
            kind=b.kind, version=b.version, symbol=snap.symbol, ts_ms=snap.ts_ms, strategy_ids=b.strategy_ids,
            config_hashes=b.config_hashes, layer_names=b.layers, gate_names=(GATE,),
            side=np.zeros(n, dtype=np.int8), side_allowed=none, total=np.zeros(n), layer_raw=zeros,
            layer_raw_max=np.broadcast_to(raw_max, (n, nl)).copy(), layer_score=zeros.copy(),
            layer_max=b.weights.copy(), gate_status=np.full((n, 1), NOT_RUN, dtype=np.int8),
            block_reason=[reason] * n, tier=np.zeros(n, dtype=np.int8), is_entry=none, is_flip_signal=none.copy(),
            missing=[missing] * n, inputs=[inputs] * n,
        )
    d, consensus = _side(fast, mid)
    accel = snap.cvd_accel_30m_per_min2
    raw_cols: dict[str, np.ndarray[Any, np.dtype[np.float64]] | float] = {
        "direction": (15.0 if fast * d > 0 else 0.0) + (15.0 if mid * d > 0 else 0.0)
        + p99_points(d, snap.large_buy_qty_15m, snap.large_sell_qty_15m),
        "accel": 5.0 if accel is not None and accel * d > 0 else 0.0,
        "crowding": lsr_points(d, snap.long_short_ratio) + top_trader_points(d, snap.top_trader_long_ratio),
        "environment": oi_points(snap.oi_change_pct),
        "confirmation": 15.0 if consensus else 0.0,
        "auxiliary": premium_points(d, inputs["coinbase_premium"]),
    }
    if b.fr_max_abs is not None and b.liq_min_usd is not None:
        fr = snap.funding_rate
        if fr is not None and ((d > 0 and fr < 0) or (d < 0 and fr > 0)):
            raw_cols["funding_rate"] = np.minimum(abs(fr) / b.fr_max_abs * 5, 5.0)
        else:
            raw_cols["funding_rate"] = 0.0
        liq_total = snap.liq_long_usd_5m + snap.liq_short_usd_5m
        raw_cols["liquidation"] = np.where(
            liq_total >= b.liq_min_usd, liq_ratio_points(d, snap.liq_long_usd_5m, snap.liq_short_usd_5m), 0.0)
    raw = np.empty((n, nl))
    for k, name in enumerate(b.layers):
        raw[:, k] = raw_cols[name]
    scores = raw * b.weights / raw_max
    s = np.zeros(n)
    for k in range(nl):
        s = s + scores[:, k]
    total = np.array([round(x, 1) for x in s.tolist()], dtype=np.float64)
    allowed = b.allow_long if d > 0 else b.allow_short
    ok = allowed & consensus
    is_entry = ok & (total >= b.entry_score)
    tier = np.where(total >= b.heavy_score, HEAVY, np.where(total >= b.standard_score, STANDARD, LIGHT))
    block = None if consensus else "no_direction"
    return ScoreBatch(
        kind=b.kind, version=b.version, symbol=snap.symbol, ts_ms=snap.ts_ms, strategy_ids=b.strategy_ids,
        config_hashes=b.config_hashes, layer_names=b.layers, gate_names=(GATE,),
        side=np.full(n, d, dtype=np.int8), side_allowed=allowed.copy(), total=total, layer_raw=raw,
        layer_raw_max=np.broadcast_to(raw_max, (n, nl)).copy(), layer_score=scores, layer_max=b.weights.copy(),
        gate_status=np.full((n, 1), PASSED if consensus else BLOCKED, dtype=np.int8), block_reason=[block] * n,
        tier=np.where(is_entry, tier, NO_TIER).astype(np.int8), is_entry=is_entry,
        is_flip_signal=ok & (total >= b.flip_threshold), missing=[missing] * n, inputs=[inputs] * n,
    )


# ===================================================================== config
class V51Weights(FrozenModel):
    """Layer maxima of V5.1 (they sum to 100; the accel bonus is on top)."""

    direction: int = Field(45, ge=0, le=100)
    crowding: int = Field(20, ge=0, le=100)
    environment: int = Field(15, ge=0, le=100)
    confirmation: int = Field(15, ge=0, le=100)
    auxiliary: int = Field(5, ge=0, le=100)

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        names = tuple(type(self).model_fields)
        total = sum(getattr(self, n) for n in names)
        return [] if total == 100 else [(names, f"weights must sum to 100, got {total}")]


class LegacyConfig(StrategyConfig):
    """Fields shared by ``v51_baseline`` and ``v52_8signals``."""

    symbols: tuple[Symbol, ...] = Field(DEFAULT_SYMBOLS, min_length=1, description="symbols this strategy scores")
    entry_score: int = Field(75, ge=50, le=100, description="the predecessor's threshold (60, later 75)")
    standard_score: int = Field(75, ge=50, le=100, description="standard tier from here; light tier below")
    heavy_score: int = Field(85, ge=50, le=105, description="heavy tier from here")
    flip_threshold: int = Field(75, ge=50, le=105, description="reverse score to flip")
    timeout_minutes: int = Field(60, ge=30, le=1440)

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        out: list[tuple[tuple[str, ...], str]] = []
        if len(set(self.symbols)) != len(self.symbols):
            out.append((("symbols",), "symbols must be unique"))
        if not self.entry_score <= self.standard_score <= self.heavy_score:
            out.append((("entry_score", "standard_score", "heavy_score"),
                        "need entry_score <= standard_score <= heavy_score"))
        out += flip_rule(self.entry_score, self.flip_threshold)
        return out

    @property
    def applies_to(self) -> tuple[str, ...]:
        return self.symbols

    @abstractmethod
    def params(self, symbol: str) -> LegacyParams:
        """This config's scoring parameters for ``symbol`` (each kind defines its layers)."""


class V51Config(LegacyConfig):
    """A ``v51_baseline`` strategy (the V5.1 JSON, digest §4.2)."""

    kind: Literal["v51_baseline"] = "v51_baseline"
    strategy_id: StrategyId = "v51_baseline"
    weights: V51Weights = Field(default_factory=V51Weights)
    accel_bonus: float = Field(5, ge=0, le=10, description="points for an aligned CVD acceleration")
    tp_sl: AtrTargets = Field(
        default_factory=lambda: AtrTargets(sl_multiplier=1.4, tp1_multiplier=1.05, tp2_multiplier=2.1),
        description="ATR(5m) multiples; the predecessor's 2.0/1.5/3.0 on 0.7 × ATR",
    )

    def params(self, symbol: str) -> LegacyParams:
        """The numbers this config scores with on ``symbol``."""
        w = self.weights
        return LegacyParams(
            layers=V51_LAYERS,
            weights=tuple(float(x) for x in (w.direction, self.accel_bonus, w.crowding, w.environment,
                                             w.confirmation, w.auxiliary)),
            fr_max_abs=None, liq_min_usd=None, entry_score=self.entry_score, standard_score=self.standard_score,
            heavy_score=self.heavy_score, flip_threshold=self.flip_threshold, direction=self.direction,
        )


LegacyT = TypeVar("LegacyT", bound=LegacyConfig)


def legacy_kind(kind: str, version: str, config_type: type[LegacyT]) -> StrategyKind[LegacyT, LegacyBatch]:
    """The registry entry of a V5.1-family kind: one ``evaluate`` for single configs, one
    ``evaluate_batch`` for compiled arrays, CVD windows 30m/4h (shared by ``v52_8signals``)."""

    def score(snap: FeatureSnapshot, cfg: LegacyT, extras: Extras | None = None) -> ScoreResult:
        require_symbol(cfg, snap)
        return evaluate(snap, cfg.params(snap.symbol), kind, version, cfg.strategy_id, cfg.config_hash, extras)

    def compile_configs(configs: Sequence[LegacyT], symbol: str) -> LegacyBatch:
        require_symbols(configs, symbol)
        return compile_params(kind, version, symbol, [c.strategy_id for c in configs],
                              [c.config_hash for c in configs], [c.params(symbol) for c in configs])

    return StrategyKind(
        name=kind, version=version, config_type=config_type, capped=False, score=score, compile=compile_configs,
        score_batch=evaluate_batch, windows=lambda c: ("30m", "4h"),
    )


V51 = legacy_kind(KIND, VERSION, V51Config)
register(V51)
