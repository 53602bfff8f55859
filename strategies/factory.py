"""``factory``: the V5.4 ``evaluate_factory_strategy`` model (digest §4.6, §8.2–§8.3), exactly.

Four raw layers (direction 55, crowding 25, environment 15, auxiliary 5) scaled by the record's
weights, five gates in order (volatility, CVD resonance, whale, OBI, spot–perp), total
``round(min(sum, 100), 1)``, and 0 whenever a gate blocks. The engine here is shared with the
``v53`` kinds, which use it with fixed layer maxima and per-symbol gate tables.

Inputs from ``FeatureSnapshot``: CVD fast/slow = ``cvd_<window>`` (or a caller-computed window,
see ``arbray.scoring.config.Extras``); ATR/price = ``atr_pct_5m``; P99 flow = ``large_buy_qty_15m``
/ ``large_sell_qty_15m``; acceleration = ``cvd_accel_30m_per_min2`` (the predecessor also took it
from its 30m window); whale flow = ``whale_flow_15m``; OBI = ``obi_10``; spot–perp =
``spot_perp_div``; LSR = ``long_short_ratio``; top trader = ``top_trader_long_ratio``; OI change =
``oi_change_pct``. The snapshot has no Coinbase premium: the auxiliary layer uses the extra input
``coinbase_premium`` when a caller supplies it and otherwise scores its documented "missing" 2.

Missing inputs: price or ATR missing/zero, or a CVD window missing, means the snapshot is not
ready (the predecessor's early exit): total 0, no side, block reason ``not_ready:<input>``. A
missing layer input scores that layer's documented missing value (P99 flow 10, LSR 7, top trader
5, OI 10, premium 2, no accel bonus, no OBI bonus). A veto gate (whale, OBI, spot–perp) vetoes
only on evidence, so a missing input passes it. Every missing input a config uses is listed in
``ScoreResult.missing``. ``whale_flow_15m`` is None when no trade reached the whale size in 15 min:
that is zero flow (digest §3.6), not missing data.

Deliberate differences from the predecessor:
- gate parameters come from the config only, so 0 is a real value (no ``x or default``);
  omitted thresholds are filled from ``arbray.scoring.gates`` when the config is validated, so the
  hash covers the values actually used, and no later migration overwrites them;
- OBI and spot–perp divergence of exactly 0.0 are values (the predecessor fell back to a DB
  reading when they were 0); None is missing;
- slow windows beyond 4h (8h/12h/24h) are real windows, not silently capped at 4h;
- acceleration is per minute² from the snapshot, not a per-call difference;
- OI change is over the snapshot's real horizon, not since the previous evaluation;
- a flip signal requires the side to be allowed by ``direction`` (the predecessor flipped anyway);
- a config carries its symbol; scoring another symbol's snapshot raises ``WrongSymbolError``
  and the evaluator never calls it;
- the ALT whale veto tests the USD sum of adverse P99 trades in 15 min against the threshold
  (the snapshot carries the sum, not each trade): identical to the predecessor's "any adverse
  P99 trade ≥ threshold" whenever ``large_trade_qty × price`` ≥ the threshold, which holds for
  every default in the gate table, because the snapshot's P99 floors are in USD;
- ``warming_up_24h`` does not stop scoring (P99 inputs are None until the 24h quantile is
  ready and then score their missing values); only price/ATR/CVD readiness does;
- the unused cooldown and the informational regime label are not computed here (cooldowns
  belong to the position manager).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from arbray.features.snapshot import FeatureSnapshot
from arbray.scoring.config import (
    Direction,
    Extras,
    FastWindow,
    SlowWindow,
    StrategyConfig,
    Symbol,
    WrongSymbolError,
    cvd_for,
    cvd_input_name,
    extra_input,
    flip_rule,
    require_symbol,
    require_symbols,
    side_allowed,
)
from arbray.scoring.gates import GATE_ENABLED_DEFAULTS, GATE_NAMES, GATE_THRESHOLD_FIELDS, WhaleMode, gate_defaults
from arbray.scoring.registry import StrategyKind, register
from arbray.scoring.result import (
    BLOCKED,
    DISABLED,
    HEAVY,
    NO_TIER,
    NOT_RUN,
    PASSED,
    STANDARD,
    GateResult,
    GateStatus,
    LayerScore,
    ScoreBatch,
    ScoreResult,
    side_name,
)

KIND = "factory"
VERSION = "5.4"
LAYER_NAMES = ("direction", "crowding", "environment", "auxiliary")
RAW_MAX = (55.0, 25.0, 15.0, 5.0)


# ===================================================================== weights → layer maxima
def layer_maxima(w_dir: float, w_env: float, w_aux: float, w_mom: float) -> tuple[float, float, float, float]:
    """Scaled maxima (direction, crowding, environment, auxiliary) from the four record weights.

    ``norm = 100/Σw``; momentum merges into direction: ``w_dir_eff = (w_dir + w_mom)·norm``;
    direction gets 55/80 of it and crowding 25/80; environment and auxiliary get their own weight.
    55/25/15/5 → 41.25/18.75/25/15; 38/32/28/2 → 27.5/12.5/32/28.
    """
    norm = 100 / (w_dir + w_env + w_aux + w_mom)
    w_dir_eff = (w_dir + w_mom) * norm
    return w_dir_eff * 55 / 80, w_dir_eff * 25 / 80, w_env * norm, w_aux * norm


def scale_layer(raw: float, raw_max: float, scaled_max: float) -> float:
    """``min(max(raw, 0)/raw_max · scaled_max, scaled_max)``."""
    return min(max(raw, 0.0) / raw_max * scaled_max, scaled_max)


# ===================================================================== engine parameters
@dataclass(frozen=True, slots=True)
class EngineParams:
    """Everything the factory engine needs for one config on one symbol."""

    fast_window: str
    slow_window: str
    vol_enabled: bool
    vol_atr_pct_min: float
    cvd_enabled: bool
    whale_enabled: bool
    whale_mode: WhaleMode
    whale_usd_threshold: float
    whale_flow_pct: float
    obi_enabled: bool
    obi_threshold: float
    spot_perp_enabled: bool
    spot_perp_threshold: float
    layer_max: tuple[float, float, float, float]
    accel_independent: bool
    min_direction_score: float
    obi_scoring: bool
    obi_strong_threshold: float
    obi_weak_threshold: float
    obi_strong_score: float
    obi_weak_score: float
    entry_score: float
    flip_threshold: float
    direction: Direction


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a result belongs to."""

    kind: str
    version: str
    strategy_id: str
    config_hash: str


# ===================================================================== scalar layer rules
def p99_flow(d: int, buy: float | None, sell: float | None) -> tuple[float, bool]:
    """(points, aligned): 20 if an aligned P99 trade in 15 min, else 10 if no adverse one, else 0."""
    if buy is None or sell is None:
        return 10.0, False
    aligned, adverse = (buy, sell) if d > 0 else (sell, buy)
    if aligned > 0:
        return 20.0, True
    return (0.0 if adverse > 0 else 10.0), False


def lsr_points(d: int, lsr: float | None) -> float:
    """Contrarian long/short ratio: 15 / 10 / 7 / 0; missing 7."""
    if lsr is None:
        return 7.0
    if (d < 0 and lsr > 2.0) or (d > 0 and lsr < 0.5):
        return 15.0
    if (d < 0 and lsr > 1.5) or (d > 0 and lsr < 0.7):
        return 10.0
    if (d < 0 and lsr > 1.0) or (d > 0 and lsr < 1.0):
        return 7.0
    return 0.0


def top_trader_points(d: int, tt: float | None) -> float:
    """Top-trader long share: aligned ≥ 55 % → 10, adverse → 0, else 5; missing 5."""
    if tt is None:
        return 5.0
    if d > 0:
        return 10.0 if tt >= 0.55 else 0.0 if tt <= 0.45 else 5.0
    return 10.0 if tt <= 0.45 else 0.0 if tt >= 0.55 else 5.0


def oi_points(oi_change: float | None) -> float:
    """OI change over the snapshot's horizon: ≥ 3 % → 15, > 0 → 10, else 5; missing 10."""
    if oi_change is None:
        return 10.0
    return 15.0 if oi_change >= 0.03 else 10.0 if oi_change > 0 else 5.0


def premium_points(d: int, cp: float | None) -> float:
    """Coinbase premium: aligned beyond ±0.05 % → 5, within → 2, adverse → 0; missing 2."""
    if cp is None:
        return 2.0
    if abs(cp) <= 0.0005:
        return 2.0
    return 5.0 if cp * d > 0 else 0.0


def obi_bonus(p: EngineParams, d: int, obi: float | None) -> float:
    """The fast variant's OBI bonus when OBI is aligned with the side."""
    if obi is None or obi * d <= 0:
        return 0.0
    if abs(obi) >= p.obi_strong_threshold:
        return p.obi_strong_score
    if abs(obi) >= p.obi_weak_threshold:
        return p.obi_weak_score
    return 0.0


def low_vol_reason(atr_pct: float, vol_min: float) -> str:
    return f"low_vol({atr_pct:.6g}<{vol_min:.6g})"


def whale_flow_reason(flow: float) -> str:
    return f"whale_flow_adverse({flow:.6g})"


def whale_adverse_reason(usd: float) -> str:
    return f"whale_adverse(>${usd / 1000:g}k)"


# ===================================================================== inputs
def _inputs(snap: FeatureSnapshot, p: EngineParams, extras: Extras | None) -> dict[str, float | None]:
    return {
        "price": snap.price,
        "atr_pct_5m": snap.atr_pct_5m,
        cvd_input_name(p.fast_window): cvd_for(snap, p.fast_window, extras),
        cvd_input_name(p.slow_window): cvd_for(snap, p.slow_window, extras),
        "large_buy_qty_15m": snap.large_buy_qty_15m,
        "large_sell_qty_15m": snap.large_sell_qty_15m,
        "cvd_accel_30m_per_min2": snap.cvd_accel_30m_per_min2,
        "whale_flow_15m": snap.whale_flow_15m,
        "obi_10": snap.obi_10,
        "spot_perp_div": snap.spot_perp_div,
        "long_short_ratio": snap.long_short_ratio,
        "top_trader_long_ratio": snap.top_trader_long_ratio,
        "oi_change_pct": snap.oi_change_pct,
        "coinbase_premium": extra_input(extras, "coinbase_premium"),
    }


def _missing(inputs: dict[str, float | None], obi_used: bool, spd_used: bool) -> tuple[str, ...]:
    return tuple(
        k for k, v in inputs.items()
        if v is None and k != "whale_flow_15m" and (obi_used or k != "obi_10") and (spd_used or k != "spot_perp_div")
    )


def _not_ready_reason(snap: FeatureSnapshot, fast: float | None, slow: float | None, p: EngineParams) -> str | None:
    if snap.price is None or snap.price <= 0:
        return "not_ready:price"
    if snap.atr_pct_5m is None or snap.atr_pct_5m <= 0:
        return "not_ready:atr_pct_5m"
    if fast is None:
        return "not_ready:" + cvd_input_name(p.fast_window)
    if slow is None:
        return "not_ready:" + cvd_input_name(p.slow_window)
    return None


# ===================================================================== scalar engine
def evaluate(snap: FeatureSnapshot, p: EngineParams, ident: Identity, extras: Extras | None) -> ScoreResult:
    """Score one config, line by line as digest §4.6 describes."""
    inputs = _inputs(snap, p, extras)
    missing = _missing(inputs, p.obi_enabled or p.obi_scoring, p.spot_perp_enabled)
    fast = cvd_for(snap, p.fast_window, extras)
    slow = cvd_for(snap, p.slow_window, extras)
    price, atr_pct = snap.price, snap.atr_pct_5m
    if price is None or price <= 0 or atr_pct is None or atr_pct <= 0 or fast is None or slow is None:
        return ScoreResult(
            strategy_id=ident.strategy_id, kind=ident.kind, version=ident.version, config_hash=ident.config_hash,
            symbol=snap.symbol, ts_ms=snap.ts_ms, side=None, side_allowed=False, total=0.0,
            layers=tuple(LayerScore(n, 0.0, rm, 0.0, mx) for n, rm, mx in zip(LAYER_NAMES, RAW_MAX, p.layer_max,
                                                                                strict=True)),
            gates=tuple(GateResult(n, "not_run") for n in GATE_NAMES),
            block_reason=_not_ready_reason(snap, fast, slow, p), tier=None, is_entry=False, is_flip_signal=False,
            missing=missing, inputs=inputs,
        )

    # CVD resonance decides the side.
    if fast > 0 and slow > 0:
        d, resonance, consensus = 1, 30.0, True
    elif fast < 0 and slow < 0:
        d, resonance, consensus = -1, 30.0, True
    else:
        d, resonance, consensus = (1 if fast > 0 else -1), 0.0, False

    buy, sell = snap.large_buy_qty_15m, snap.large_sell_qty_15m
    obi, div = snap.obi_10, snap.spot_perp_div

    # Gates, in order; each runs only if no earlier gate blocked.
    statuses: list[GateStatus] = []
    reason: str | None = None

    def gate(enabled: bool, block: str | None) -> None:
        nonlocal reason
        if reason is not None:
            statuses.append("not_run")
        elif not enabled:
            statuses.append("disabled")
        elif block is not None:
            statuses.append("blocked")
            reason = block
        else:
            statuses.append("passed")

    gate(p.vol_enabled, low_vol_reason(atr_pct, p.vol_atr_pct_min) if atr_pct < p.vol_atr_pct_min else None)
    gate(p.cvd_enabled, None if consensus else "no_direction_consensus")
    whale_block: str | None = None
    if p.whale_mode == "flow":
        flow = snap.whale_flow_15m
        if flow is not None and ((d > 0 and flow < -p.whale_flow_pct) or (d < 0 and flow > p.whale_flow_pct)):
            whale_block = whale_flow_reason(flow)
    elif buy is not None and sell is not None:
        aligned_q, adverse_q = (buy, sell) if d > 0 else (sell, buy)
        adverse = adverse_q > 0 and adverse_q * price >= p.whale_usd_threshold
        aligned = aligned_q > 0 and aligned_q * price >= p.whale_usd_threshold
        if adverse and not aligned:
            whale_block = whale_adverse_reason(p.whale_usd_threshold)
    gate(p.whale_enabled, whale_block)
    obi_veto = obi is not None and ((d > 0 and obi < -p.obi_threshold) or (d < 0 and obi > p.obi_threshold))
    gate(p.obi_enabled, "obi_veto" if obi_veto else None)
    spd_veto = div is not None and ((d > 0 and div < -p.spot_perp_threshold) or (d < 0 and div > p.spot_perp_threshold))
    gate(p.spot_perp_enabled, "spd_veto" if spd_veto else None)

    # Raw layers.
    flow_pts, p99_aligned = p99_flow(d, buy, sell)
    accel = snap.cvd_accel_30m_per_min2
    accel_aligned = accel is not None and accel * d > 0
    accel_pts = 5.0 if accel_aligned else 0.0
    direction = min(resonance + flow_pts + accel_pts, 55.0)
    if p.accel_independent and accel_aligned and p99_aligned:
        direction = max(direction, p.min_direction_score)
    crowding = min(lsr_points(d, snap.long_short_ratio) + top_trader_points(d, snap.top_trader_long_ratio), 25.0)
    env_raw = oi_points(snap.oi_change_pct)
    # fast variant: OI rescaled to 10 plus the OBI bonus, capped at 15
    environment = min(round(env_raw / 15 * 10) + obi_bonus(p, d, obi), 15.0) if p.obi_scoring else env_raw
    auxiliary = premium_points(d, inputs["coinbase_premium"])

    raws = (direction, crowding, environment, auxiliary)
    scores = tuple(scale_layer(r, rm, mx) for r, rm, mx in zip(raws, RAW_MAX, p.layer_max, strict=True))
    total = 0.0 if reason is not None else round(min(scores[0] + scores[1] + scores[2] + scores[3], 100.0), 1)
    allowed = side_allowed(p.direction, d)
    ok = reason is None and allowed
    is_entry = ok and total >= p.entry_score
    return ScoreResult(
        strategy_id=ident.strategy_id, kind=ident.kind, version=ident.version, config_hash=ident.config_hash,
        symbol=snap.symbol, ts_ms=snap.ts_ms, side=side_name(d), side_allowed=allowed, total=total,
        layers=tuple(LayerScore(n, r, rm, s, mx)
                     for n, r, rm, s, mx in zip(LAYER_NAMES, raws, RAW_MAX, scores, p.layer_max, strict=True)),
        gates=tuple(GateResult(n, st, reason if st == "blocked" else None)
                    for n, st in zip(GATE_NAMES, statuses, strict=True)),
        block_reason=reason,
        tier=("heavy" if total >= p.flip_threshold else "standard") if is_entry else None,
        is_entry=is_entry, is_flip_signal=ok and total >= p.flip_threshold, missing=missing, inputs=inputs,
    )


# ===================================================================== vectorised engine
@dataclass(frozen=True)
class EngineBatch:
    """N configs' engine parameters as arrays (one symbol)."""

    kind: str
    version: str
    symbol: str
    strategy_ids: tuple[str, ...]
    config_hashes: tuple[str, ...]
    params: tuple[EngineParams, ...]
    windows: tuple[str, ...]
    fast_idx: np.ndarray[Any, np.dtype[np.intp]]
    slow_idx: np.ndarray[Any, np.dtype[np.intp]]
    arrays: dict[str, np.ndarray[Any, Any]]
    layer_max: np.ndarray[Any, np.dtype[np.float64]]
    obi_used: tuple[bool, ...]
    spd_used: tuple[bool, ...]


_FLOAT_FIELDS = ("vol_atr_pct_min", "whale_usd_threshold", "whale_flow_pct", "obi_threshold", "spot_perp_threshold",
                 "min_direction_score", "obi_strong_threshold", "obi_weak_threshold", "obi_strong_score",
                 "obi_weak_score", "entry_score", "flip_threshold")
_BOOL_FIELDS = ("vol_enabled", "cvd_enabled", "whale_enabled", "obi_enabled", "spot_perp_enabled",
                "accel_independent", "obi_scoring")


def compile_params(kind: str, version: str, symbol: str, ids: Sequence[str], hashes: Sequence[str],
                   params: Sequence[EngineParams]) -> EngineBatch:
    """Turn N configs' parameters into arrays, once, for ``evaluate_batch``."""
    windows = tuple(sorted({p.fast_window for p in params} | {p.slow_window for p in params}))
    pos = {w: i for i, w in enumerate(windows)}
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for f in _FLOAT_FIELDS:
        arrays[f] = np.array([getattr(p, f) for p in params], dtype=np.float64)
    for f in _BOOL_FIELDS:
        arrays[f] = np.array([getattr(p, f) for p in params], dtype=np.bool_)
    arrays["flow_mode"] = np.array([p.whale_mode == "flow" for p in params], dtype=np.bool_)
    arrays["allow_long"] = np.array([side_allowed(p.direction, 1) for p in params], dtype=np.bool_)
    arrays["allow_short"] = np.array([side_allowed(p.direction, -1) for p in params], dtype=np.bool_)
    return EngineBatch(
        kind=kind, version=version, symbol=symbol, strategy_ids=tuple(ids), config_hashes=tuple(hashes),
        params=tuple(params), windows=windows,
        fast_idx=np.array([pos[p.fast_window] for p in params], dtype=np.intp),
        slow_idx=np.array([pos[p.slow_window] for p in params], dtype=np.intp),
        arrays=arrays,
        layer_max=np.array([p.layer_max for p in params], dtype=np.float64).reshape(len(params), 4),
        obi_used=tuple(p.obi_enabled or p.obi_scoring for p in params),
        spd_used=tuple(p.spot_perp_enabled for p in params),
    )


def _f(x: float | None) -> float:
    return np.nan if x is None else x


def evaluate_batch(snap: FeatureSnapshot, b: EngineBatch, extras: Extras | None) -> ScoreBatch:
    """Score every config of ``b`` on ``snap`` with numpy over the parameter arrays."""
    if snap.symbol != b.symbol:
        raise WrongSymbolError(f"configs compiled for {b.symbol} cannot score a {snap.symbol} snapshot")
    a = b.arrays
    n = len(b.strategy_ids)
    wvals = np.array([_f(cvd_for(snap, w, extras)) for w in b.windows], dtype=np.float64)
    fast = wvals[b.fast_idx]
    slow = wvals[b.slow_idx]
    price, atr_pct = snap.price, snap.atr_pct_5m
    snap_ready = price is not None and price > 0 and atr_pct is not None and atr_pct > 0
    ready = ~np.isnan(fast) & ~np.isnan(slow) & snap_ready
    price_f = _f(price)
    atr_f = _f(atr_pct)

    long_c = (fast > 0) & (slow > 0)
    short_c = (fast < 0) & (slow < 0)
    consensus = long_c | short_c
    d = np.where(long_c, 1, np.where(short_c, -1, np.where(fast > 0, 1, -1))).astype(np.int8)
    dl, ds = d > 0, d < 0
    resonance = np.where(consensus, 30.0, 0.0)

    buy, sell = snap.large_buy_qty_15m, snap.large_sell_qty_15m
    if buy is None or sell is None:
        flow_pts = np.full(n, 10.0)
        p99_aligned = np.zeros(n, dtype=np.bool_)
        aligned_q = adverse_q = np.zeros(n)
    else:
        aligned_q = np.where(dl, buy, sell)
        adverse_q = np.where(dl, sell, buy)
        p99_aligned = aligned_q > 0
        flow_pts = np.where(p99_aligned, 20.0, np.where(adverse_q > 0, 0.0, 10.0))
    accel = snap.cvd_accel_30m_per_min2
    accel_aligned = (accel * d > 0) if accel is not None else np.zeros(n, dtype=np.bool_)
    direction = np.minimum(resonance + flow_pts + np.where(accel_aligned, 5.0, 0.0), 55.0)
    direction = np.where(a["accel_independent"] & accel_aligned & p99_aligned,
                         np.maximum(direction, a["min_direction_score"]), direction)

    lsr = snap.long_short_ratio
    if lsr is None:
        ls = np.full(n, 7.0)
    else:
        ls = np.select([(ds & (lsr > 2.0)) | (dl & (lsr < 0.5)), (ds & (lsr > 1.5)) | (dl & (lsr < 0.7)),
                        (ds & (lsr > 1.0)) | (dl & (lsr < 1.0))], [15.0, 10.0, 7.0], 0.0)
    tt = snap.top_trader_long_ratio
    if tt is None:
        ttp = np.full(n, 5.0)
    else:
        long_tt = 10.0 if tt >= 0.55 else 0.0 if tt <= 0.45 else 5.0
        short_tt = 10.0 if tt <= 0.45 else 0.0 if tt >= 0.55 else 5.0
        ttp = np.where(dl, long_tt, short_tt)
    crowding = np.minimum(ls + ttp, 25.0)

    env_raw = oi_points(snap.oi_change_pct)
    obi = snap.obi_10
    if obi is None:
        bonus = np.zeros(n)
    else:
        aligned_obi = obi * d > 0
        bonus = np.where(aligned_obi & (abs(obi) >= a["obi_strong_threshold"]), a["obi_strong_score"],
                         np.where(aligned_obi & (abs(obi) >= a["obi_weak_threshold"]), a["obi_weak_score"], 0.0))
    environment = np.where(a["obi_scoring"], np.minimum(round(env_raw / 15 * 10) + bonus, 15.0), env_raw)
    cp = extra_input(extras, "coinbase_premium")
    auxiliary = np.where(dl, premium_points(1, cp), premium_points(-1, cp))

    raw = np.stack([direction, crowding, environment, auxiliary], axis=1)
    raw_max = np.broadcast_to(np.array(RAW_MAX), (n, 4))
    mx = b.layer_max
    scores = np.minimum(np.maximum(raw, 0.0) / raw_max * mx, mx)

    # Gates.
    vol_block = atr_f < a["vol_atr_pct_min"]
    flow = snap.whale_flow_15m
    if flow is None:
        flow_block = np.zeros(n, dtype=np.bool_)
    else:
        flow_block = (dl & (flow < -a["whale_flow_pct"])) | (ds & (flow > a["whale_flow_pct"]))
    if buy is None or sell is None:
        large_block = np.zeros(n, dtype=np.bool_)
    else:
        thr = a["whale_usd_threshold"]
        adverse = (adverse_q > 0) & (adverse_q * price_f >= thr)
        large_block = adverse & ~((aligned_q > 0) & (aligned_q * price_f >= thr))
    whale_block = np.where(a["flow_mode"], flow_block, large_block)
    if obi is None:
        obi_block = np.zeros(n, dtype=np.bool_)
    else:
        obi_block = (dl & (obi < -a["obi_threshold"])) | (ds & (obi > a["obi_threshold"]))
    div = snap.spot_perp_div
    if div is None:
        spd_block = np.zeros(n, dtype=np.bool_)
    else:
        spd_block = (dl & (div < -a["spot_perp_threshold"])) | (ds & (div > a["spot_perp_threshold"]))
    enabled = (a["vol_enabled"], a["cvd_enabled"], a["whale_enabled"], a["obi_enabled"], a["spot_perp_enabled"])
    blocks = (vol_block, ~consensus, whale_block, obi_block, spd_block)
    status = np.zeros((n, 5), dtype=np.int8)
    first = np.full(n, -1, dtype=np.int8)
    for g in range(5):
        open_ = ready & (first < 0)
        st = np.where(~enabled[g], DISABLED, np.where(blocks[g], BLOCKED, PASSED))
        status[:, g] = np.where(open_, st, NOT_RUN)
        first = np.where(open_ & enabled[g] & blocks[g], g, first).astype(np.int8)
    blocked = first >= 0

    sums = np.minimum(scores[:, 0] + scores[:, 1] + scores[:, 2] + scores[:, 3], 100.0)
    total = np.array([round(x, 1) for x in sums.tolist()], dtype=np.float64)
    total[blocked | ~ready] = 0.0
    allowed = np.where(dl, a["allow_long"], a["allow_short"]) & ready
    ok = ready & ~blocked & allowed
    is_entry = ok & (total >= a["entry_score"])
    is_flip = ok & (total >= a["flip_threshold"])
    tier = np.where(is_entry, np.where(total >= a["flip_threshold"], HEAVY, STANDARD), NO_TIER).astype(np.int8)
    raw[~ready] = 0.0
    scores[~ready] = 0.0

    reasons: list[str | None] = [None] * n
    for i in np.flatnonzero(blocked).tolist():
        g = int(first[i])
        p = b.params[i]
        if g == 0:
            reasons[i] = low_vol_reason(atr_f, p.vol_atr_pct_min)
        elif g == 1:
            reasons[i] = "no_direction_consensus"
        elif g == 2:
            reasons[i] = whale_flow_reason(flow) if p.whale_mode == "flow" and flow is not None else \
                whale_adverse_reason(p.whale_usd_threshold)
        else:
            reasons[i] = "obi_veto" if g == 3 else "spd_veto"
    inputs_cache: dict[tuple[str, str], dict[str, float | None]] = {}
    missing_cache: dict[tuple[str, str, bool, bool], tuple[str, ...]] = {}
    inputs: list[dict[str, float | None]] = []
    missing: list[tuple[str, ...]] = []
    for i, p in enumerate(b.params):
        wk = (p.fast_window, p.slow_window)
        inp = inputs_cache.get(wk)
        if inp is None:
            inp = inputs_cache[wk] = _inputs(snap, p, extras)
        inputs.append(inp)
        mk = (p.fast_window, p.slow_window, b.obi_used[i], b.spd_used[i])
        miss = missing_cache.get(mk)
        if miss is None:
            miss = missing_cache[mk] = _missing(inp, b.obi_used[i], b.spd_used[i])
        missing.append(miss)
    if not ready.all():
        for i in np.flatnonzero(~ready).tolist():
            p = b.params[i]
            reasons[i] = _not_ready_reason(snap, cvd_for(snap, p.fast_window, extras),
                                           cvd_for(snap, p.slow_window, extras), p)
    return ScoreBatch(
        kind=b.kind, version=b.version, symbol=snap.symbol, ts_ms=snap.ts_ms,
        strategy_ids=b.strategy_ids, config_hashes=b.config_hashes,
        layer_names=LAYER_NAMES, gate_names=GATE_NAMES,
        side=np.where(ready, d, 0).astype(np.int8), side_allowed=allowed, total=total,
        layer_raw=raw, layer_raw_max=np.array(raw_max), layer_score=scores, layer_max=np.array(mx),
        gate_status=status, block_reason=reasons, tier=tier, is_entry=is_entry, is_flip_signal=is_flip,
        missing=missing, inputs=inputs,
    )


# ===================================================================== the factory config
def _fill_gate_defaults(data: Any, symbol_key: str) -> Any:
    """Fill omitted gate thresholds from the per-symbol table for the config's symbol."""
    if not isinstance(data, dict) or not isinstance(data.get(symbol_key), str):
        return data
    row = gate_defaults(data[symbol_key]).model_dump()
    return {**{f: row[f] for f in GATE_THRESHOLD_FIELDS if f not in data}, **data}


class FactoryConfig(StrategyConfig):
    """A V5.4 strategy record (the ``strategies`` table, §8.2, with the API's validation, §8.3).

    Gate thresholds omitted from the input take the gate table's values for ``symbol``;
    ``whale_mode`` (flow for BTC, large orders elsewhere) is that table's column, made explicit.
    Lower bounds of gate thresholds are 0 (the predecessor API rejected some zeros and the
    engine ignored the rest); everything else keeps the API's ranges.
    """

    kind: Literal["factory"] = "factory"
    symbol: Symbol
    cvd_fast_window: FastWindow = "30m"
    cvd_slow_window: SlowWindow = Field("4h", description="30m/1h/4h as the predecessor; 8h/12h/24h are real windows")
    weight_direction: int = Field(55, ge=10, le=80)
    weight_env: int = Field(25, ge=5, le=60)
    weight_aux: int = Field(15, ge=0, le=40)
    weight_momentum: int = Field(5, ge=0, le=20, description="merged into direction when scaling")
    entry_score: int = Field(75, ge=60, le=95)
    gate_vol_enabled: bool = GATE_ENABLED_DEFAULTS["volatility"]
    vol_atr_pct_min: float = Field(0.002, ge=0, le=0.02, description="default: gate table row of the symbol")
    gate_cvd_enabled: bool = GATE_ENABLED_DEFAULTS["cvd_resonance"]
    gate_whale_enabled: bool = GATE_ENABLED_DEFAULTS["whale"]
    whale_mode: WhaleMode = Field("large_order", description="default: gate table row of the symbol")
    whale_usd_threshold: float = Field(50_000, ge=0, le=1_000_000, description="default: gate table row")
    whale_flow_pct: float = Field(0.5, ge=0, le=1, description="default: gate table row of the symbol")
    gate_obi_enabled: bool = GATE_ENABLED_DEFAULTS["obi"]
    obi_threshold: float = Field(0.35, ge=0, le=0.9, description="default: gate table row of the symbol")
    gate_spot_perp_enabled: bool = GATE_ENABLED_DEFAULTS["spot_perp"]
    spot_perp_threshold: float = Field(0.005, ge=0, le=0.01, description="default: gate table row of the symbol")
    sl_atr_multiplier: float = Field(1.5, ge=0.5, le=3.0)
    tp1_ratio: float = Field(0.75, ge=0.3, le=2.0, description="TP1 in R (multiples of the stop distance)")
    tp2_ratio: float = Field(1.5, ge=0.5, le=4.0, description="TP2 in R, beyond TP1")
    timeout_minutes: int = Field(240, ge=30, le=1440)
    flip_threshold: int = Field(80, ge=60, le=95, description="reverse score to flip; also the heavy tier")

    @model_validator(mode="before")
    @classmethod
    def _gate_defaults(cls, data: Any) -> Any:
        return _fill_gate_defaults(data, "symbol")

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        out: list[tuple[tuple[str, ...], str]] = []
        weights = ("weight_direction", "weight_env", "weight_aux", "weight_momentum")
        total = sum(getattr(self, w) for w in weights)
        if total != 100:
            out.append((weights, f"weights must sum to 100, got {total}"))
        out += flip_rule(self.entry_score, self.flip_threshold)
        if self.tp2_ratio <= self.tp1_ratio:
            out.append((("tp1_ratio", "tp2_ratio"),
                        f"tp2_ratio ({self.tp2_ratio}) must be beyond tp1_ratio ({self.tp1_ratio})"))
        return out

    @property
    def applies_to(self) -> tuple[str, ...]:
        return (self.symbol,)

    def engine_params(self) -> EngineParams:
        """The engine parameters of this record."""
        return EngineParams(
            fast_window=self.cvd_fast_window, slow_window=self.cvd_slow_window,
            vol_enabled=self.gate_vol_enabled, vol_atr_pct_min=self.vol_atr_pct_min,
            cvd_enabled=self.gate_cvd_enabled, whale_enabled=self.gate_whale_enabled, whale_mode=self.whale_mode,
            whale_usd_threshold=self.whale_usd_threshold, whale_flow_pct=self.whale_flow_pct,
            obi_enabled=self.gate_obi_enabled, obi_threshold=self.obi_threshold,
            spot_perp_enabled=self.gate_spot_perp_enabled, spot_perp_threshold=self.spot_perp_threshold,
            layer_max=layer_maxima(self.weight_direction, self.weight_env, self.weight_aux, self.weight_momentum),
            accel_independent=False, min_direction_score=0.0,
            obi_scoring=False, obi_strong_threshold=0.0, obi_weak_threshold=0.0, obi_strong_score=0.0,
            obi_weak_score=0.0,
            entry_score=float(self.entry_score), flip_threshold=float(self.flip_threshold), direction=self.direction,
        )


def score(snap: FeatureSnapshot, cfg: FactoryConfig, extras: Extras | None = None) -> ScoreResult:
    """Score one factory record on one snapshot of its symbol."""
    require_symbol(cfg, snap)
    return evaluate(snap, cfg.engine_params(), Identity(KIND, VERSION, cfg.strategy_id, cfg.config_hash), extras)


def compile_configs(configs: Sequence[FactoryConfig], symbol: str) -> EngineBatch:
    """Parameter arrays of factory records for ``symbol`` (records of other symbols are refused)."""
    require_symbols(configs, symbol)
    return compile_params(KIND, VERSION, symbol, [c.strategy_id for c in configs], [c.config_hash for c in configs],
                          [c.engine_params() for c in configs])


def score_batch(snap: FeatureSnapshot, batch: EngineBatch, extras: Extras | None = None) -> ScoreBatch:
    """Score compiled records on ``snap`` in one vectorised call."""
    return evaluate_batch(snap, batch, extras)


FACTORY: StrategyKind[FactoryConfig, EngineBatch] = StrategyKind(
    name=KIND, version=VERSION, config_type=FactoryConfig, capped=True, score=score,
    compile=compile_configs, score_batch=score_batch,
    windows=lambda c: (c.cvd_fast_window, c.cvd_slow_window),
)
register(FACTORY)
