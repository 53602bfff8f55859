"""Screening models over the factor library: the ``ats_v2`` 10+1-factor score and the short-grid GSS.

Both map the raw factors of ``arbray.screener.factors`` (one value per symbol) to a score per symbol
with an explanation. A factor whose input is missing is left out: its weight is dropped from the
normalising sum and its name is listed in ``missing`` — it is never replaced by a neutral constant
(the original V2 code scored an empty order book as 50 and a hard-coded spot price as a 0.1 % basis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Scores = dict[str, float | None]


def _num(x: float) -> float | None:
    """A finite float, or None for NaN/inf (JSON-safe: NaN is reported as null)."""
    return float(x) if math.isfinite(x) else None


def _clip(x: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, x))


@dataclass
class ModelResult:
    """One symbol's model output: the score used for ranking, component scores and what was missing."""

    symbol: str
    score: float | None
    components: Scores
    missing: list[str]
    explanation: str
    extra: dict[str, float | str | None] = field(default_factory=dict)
    excluded: str | None = None


# ─────────────────────────────────────────── ats_v2 ───────────────────────────────────────────

V1_WEIGHTS: dict[str, float] = {"T": 25, "M": 15, "C": 20, "V": 15, "S": 10, "O": 20, "E": 10}
"""V1 (7+1): the document's weights, total 115; F is a modulator, not weighted."""

V2_WEIGHTS: dict[str, float] = {"T": 25, "M": 15, "C+": 20, "V+": 15, "S": 10, "O+": 20, "E": 10,
                                "L": 20, "B": 15, "Q": 10, "I": 10}
"""V2 (10+1): V1 with C→C+, O→O+, V→V+ and the new L, B, Q, I. The table sums to 170 although the
document states 160 (÷1.6); arbray divides by the weights actually used, so ±100 stays the bound."""

UNSIGNED = frozenset({"V", "V+", "S", "E", "L", "I"})
"""Quality factors scored 0–100: they enter as (x − 50)·2 in the direction of the signed factors."""

_FACTOR_INPUT: dict[str, str] = {"C": "taker_buy", "C+": "taker_buy", "O": "open_interest", "O+": "open_interest",
                                 "L": "order_book", "Q": "liquidations", "B": "spot_close+funding",
                                 "I": "btc_reference+eth_reference"}


class AtsConfig(BaseModel):
    """``ats_v2`` settings: mode, sigmoid temperature and the F modulator gain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["v1", "v2", "hybrid"] = "hybrid"
    temperature: float = Field(20.0, gt=0, description="P(up) = 1/(1+exp(−score/temperature))")
    f_gain: float = Field(0.2, ge=0, le=1, description="F scales |score| by up to ±f_gain")
    oi_scale: float = Field(0.05, gt=0, description="OI change giving tanh(1) of the O/O+ score")
    basis_scale: float = Field(0.002, gt=0, description="basis giving half of tanh's argument 1 in B")
    funding_scale: float = Field(0.0003, gt=0, description="funding rate giving half of tanh's argument 1 in B")
    spread_ok_bps: float = Field(10.0, gt=0, description="L: spread at which the spread half scores 0")
    depth_full_usd: float = Field(1_000_000.0, gt=0, description="L: ±1 % depth at which the depth half scores 50")


def ats_factor_scores(f: dict[str, float], cfg: AtsConfig) -> Scores:
    """The 10+1 factor scores from raw factors (NaN where an input is missing).

    T = 100·tanh(ema_gap_atr/2)            M = 100·tanh(momentum_z/2)        C = C+ = 100·cvd_imbalance
    V = 100·rv/(1+rv)   V+ = 100 on a trigger bar else V                     S = 100·R²   E = 100·KER
    O = 100·tanh(oi_change/oi_scale)·sign(slope)
    O+ = ±100·tanh(|oi_change|/oi_scale), + for price↑ (OI↑ new longs; OI↓ short covering at half), − for price↓
    L = 50·max(0, 1 − spread/spread_ok) + 50·min(1, depth/depth_full)
    B = −100·tanh(basis/(2·basis_scale) + funding/(2·funding_scale))  (crowded longs → bearish)
    Q = 100·liq_skew   I = 100·(1 − max |ρ| to BTC/ETH)   F = (C − M)/2
    """
    nan = math.nan
    slope_sign = math.copysign(1.0, f["norm_slope"]) if math.isfinite(f["norm_slope"]) and f["norm_slope"] else 0.0
    rv = f["rel_volume"]
    v = 100.0 * rv / (1.0 + rv) if math.isfinite(rv) else nan
    oi = f["oi_change"]
    o = 100.0 * math.tanh(oi / cfg.oi_scale) * slope_sign if math.isfinite(oi) else nan
    if math.isfinite(oi):
        mag = 100.0 * math.tanh(abs(oi) / cfg.oi_scale) * (1.0 if oi >= 0 else 0.5)
        o_plus = mag * slope_sign
    else:
        o_plus = nan
    c = 100.0 * f["cvd_imbalance"]
    m = 100.0 * math.tanh(f["momentum_z"] / 2.0)
    if math.isfinite(f["spread_bps"]) and math.isfinite(f["depth_usd"]):
        liq = (50.0 * max(0.0, 1.0 - f["spread_bps"] / cfg.spread_ok_bps)
               + 50.0 * min(1.0, f["depth_usd"] / cfg.depth_full_usd))
    else:
        liq = nan
    b = -100.0 * math.tanh(f["basis"] / (2 * cfg.basis_scale) + f["funding_last"] / (2 * cfg.funding_scale))
    corrs = [abs(f[k]) for k in ("corr_btc", "corr_eth") if math.isfinite(f[k])]
    trig = f["trigger_bar"]
    raw = {
        "T": 100.0 * math.tanh(f["ema_gap_atr"] / 2.0), "M": m, "C": c, "C+": c, "V": v,
        "V+": (100.0 if trig == 1.0 else v) if math.isfinite(trig) else nan, "S": 100.0 * f["r2"], "O": o,
        "O+": o_plus, "E": 100.0 * f["ker"], "L": liq, "B": b, "Q": 100.0 * f["liq_skew"],
        "I": 100.0 * (1.0 - max(corrs)) if corrs else nan, "F": (c - m) / 2.0,
    }
    return {k: _num(x) for k, x in raw.items()}


def ats_combine(scores: Scores, weights: dict[str, float], f_gain: float) -> tuple[float | None, list[str]]:
    """Weighted score in ±100 and the factors left out.

    dir = sign(Σ w·x over signed factors); unsigned x enters as (x − 50)·2·dir; score = Σ w·x' / Σ w over
    present factors; then F modulates: score·(1 + f_gain·F/100·sign(score)), clipped to ±100.
    """
    present = {k: scores[k] for k in weights if scores.get(k) is not None}
    left_out = [k for k in weights if k not in present]
    if not present:
        return None, left_out
    directional = sum(weights[k] * x for k, x in present.items() if k not in UNSIGNED and x is not None)
    d = math.copysign(1.0, directional) if directional else 0.0
    total = sum(weights[k] for k in present)
    acc = sum(weights[k] * ((x - 50.0) * 2.0 * d if k in UNSIGNED else x) for k, x in present.items() if x is not None)
    score = acc / total
    f = scores.get("F")
    if f is not None and score:
        score = score * (1.0 + f_gain * f / 100.0 * math.copysign(1.0, score))
    return _clip(score, -100.0, 100.0), left_out


def _inputs_of(factor: str, missing_inputs: list[str]) -> list[str]:
    """The missing inputs that made ``factor`` uncomputable, or ``FACTOR undefined`` for OHLCV-only factors."""
    wanted = _FACTOR_INPUT.get(factor, "").split("+")
    found = [i for i in wanted if i in missing_inputs]
    return found or [f"{factor} undefined"]


def probability(score: float, temperature: float) -> float:
    """Sigmoid mapping P(up) = 1/(1 + exp(−score/temperature)); 0.5 at score 0."""
    return 1.0 / (1.0 + math.exp(-score / temperature))


def ats_v2(symbol: str, f: dict[str, float], missing_inputs: list[str], cfg: AtsConfig,
           v1_weights: dict[str, float] | None = None, v2_weights: dict[str, float] | None = None) -> ModelResult:
    """Score one symbol: V1, V2, or hybrid (V2 when order book and liquidations exist, else V1).

    ``v1_weights``/``v2_weights`` replace the document's tables (the ``ats_v2`` Strategy kind's config)."""
    scores = ats_factor_scores(f, cfg)
    has_micro = "order_book" not in missing_inputs and "liquidations" not in missing_inputs
    mode = cfg.mode if cfg.mode != "hybrid" else ("v2" if has_micro else "v1")
    weights = (v2_weights or V2_WEIGHTS) if mode == "v2" else (v1_weights or V1_WEIGHTS)
    score, left_out = ats_combine(scores, weights, cfg.f_gain)
    missing_set = {i for k in left_out for i in _inputs_of(k, missing_inputs)}
    if scores["F"] is None:
        missing_set |= set(_inputs_of("C", missing_inputs))
    if mode == "v1" and cfg.mode == "hybrid":
        missing_set |= {"order_book", "liquidations"} & set(missing_inputs)
    missing = sorted(missing_set)
    p = probability(score, cfg.temperature) if score is not None else None
    used = ", ".join(f"{k} {scores[k]:+.0f}" for k in weights if scores.get(k) is not None)
    direction = "long" if (score or 0) > 0 else "short" if (score or 0) < 0 else "flat"
    text = (f"{mode.upper()} score {score:+.1f} → P(up) {p:.2f} ({direction}); {used}"
            if score is not None and p is not None else f"{mode.upper()}: no factor could be computed")
    if scores["F"] is not None:
        text += f"; F {scores['F']:+.0f}"
    if cfg.mode == "hybrid" and mode == "v1":
        text = "hybrid→" + text
    if left_out:
        text += f"; left out {', '.join(left_out)}"
    if missing:
        text += f"; missing {', '.join(missing)}"
    return ModelResult(symbol, score, scores, missing, text,
                       extra={"mode": mode, "probability_up": p, "rank_key": abs(score) if score is not None else None})


# ───────────────────────────────────────── short grid ─────────────────────────────────────────


class ShortGridConfig(BaseModel):
    """Short-grid screen (GSS) settings: dimension weights, scales and filters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    w_volatility: float = Field(0.40, ge=0)
    w_trend: float = Field(0.35, ge=0)
    w_micro: float = Field(0.25, ge=0)
    natr_daily_target_pct: float = Field(5.0, gt=0, description="daily NATR (%) that earns the full volatility score")
    hurst_full: float = Field(0.35, description="H at or below which the Hurst score is 100")
    hurst_zero: float = Field(0.65, description="H at or above which the Hurst score is 0")
    funding_scale: float = Field(0.0005, gt=0, description="funding per settlement that moves the score by 50")
    ovr_full: float = Field(1.0, gt=0, description="OVR that earns the full crowding score")
    min_bars: int = Field(300, ge=30, description="the document skips symbols with fewer than 300 bars")
    min_quote_volume: float = Field(100_000.0, ge=0, description="USDT traded over the regression window")


def timeframe_minutes(tf: str) -> float:
    """Minutes per bar for ``1m``/``5m``/``1h``/``8h``/``1d``/``1w``."""
    unit = {"m": 1, "h": 60, "d": 1_440, "w": 10_080}[tf[-1]]
    return float(int(tf[:-1]) * unit)


def short_grid(symbol: str, timeframe: str, bars: int, f: dict[str, float], missing_inputs: list[str],
               cfg: ShortGridConfig) -> ModelResult:
    """GSS in [0, 100] from three dimensions (weights renormalised over the dimensions present).

    volatility = ½·100·min(1, NATR_day/target) + ½·100·(1 − KER), NATR_day = NATR·√(bars per day)
    trend      = ½·100·clip((H_zero − H)/(H_zero − H_full), 0, 1) + ½·(100·(1 − R²) if slope > 0 else 100)
    micro      = mean of available: funding 100·clip(½ + funding_mean/(2·scale)), crowding 100·min(1, OVR/ovr_full),
                 flow 100·clip(½ − ½·cvd_imbalance)  (net taker selling = bearish CVD divergence on a rise)
    """
    if bars < cfg.min_bars:
        return ModelResult(symbol, None, {}, missing_inputs, f"excluded: {bars} bars < {cfg.min_bars}",
                           excluded="min_bars")
    qv = f["quote_volume"]
    if not (math.isfinite(qv) and qv >= cfg.min_quote_volume):
        return ModelResult(symbol, None, {}, missing_inputs,
                           f"excluded: quote volume {qv:.0f} < {cfg.min_quote_volume:.0f} USDT", excluded="liquidity")
    natr_day = f["natr"] * math.sqrt(1_440.0 / timeframe_minutes(timeframe))
    vol = _mean([100.0 * min(1.0, natr_day / cfg.natr_daily_target_pct) if math.isfinite(natr_day) else None,
                 100.0 * (1.0 - f["ker"]) if math.isfinite(f["ker"]) else None])
    h = f["hurst"]
    span = cfg.hurst_zero - cfg.hurst_full
    hurst_s = 100.0 * _clip((cfg.hurst_zero - h) / span, 0, 1) if math.isfinite(h) else None
    slope_s = ((100.0 * (1.0 - f["r2"]) if f["norm_slope"] > 0 else 100.0)
               if math.isfinite(f["r2"]) and math.isfinite(f["norm_slope"]) else None)
    trend = _mean([hurst_s, slope_s])
    fund_s = (100.0 * _clip(0.5 + f["funding_mean"] / (2 * cfg.funding_scale), 0, 1)
              if math.isfinite(f["funding_mean"]) else None)
    ovr_s = 100.0 * min(1.0, f["ovr"] / cfg.ovr_full) if math.isfinite(f["ovr"]) else None
    flow_s = 100.0 * _clip(0.5 - 0.5 * f["cvd_imbalance"], 0, 1) if math.isfinite(f["cvd_imbalance"]) else None
    micro = _mean([fund_s, ovr_s, flow_s])
    dims = {"volatility": (vol, cfg.w_volatility), "trend": (trend, cfg.w_trend), "micro": (micro, cfg.w_micro)}
    used = {k: (x, w) for k, (x, w) in dims.items() if x is not None and w > 0}
    wsum = sum(w for _, w in used.values())
    gss = sum(x * w for x, w in used.values()) / wsum if wsum > 0 else None
    missing = sorted(set(missing_inputs) & {"funding", "open_interest", "taker_buy"})
    comps: Scores = {"volatility": vol, "trend": trend, "micro": micro, "natr_daily_pct": _num(natr_day),
                     "hurst_score": hurst_s, "slope_score": slope_s, "funding_score": fund_s, "ovr_score": ovr_s,
                     "flow_score": flow_s}
    text = _grid_text(gss, comps, f, missing)
    return ModelResult(symbol, gss, comps, missing, text, extra={"rank_key": gss})


def _mean(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return sum(vals) / len(vals) if vals else None


def _fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None or not math.isfinite(x) else format(x, spec)


def _grid_text(gss: float | None, c: Scores, f: dict[str, float], missing: list[str]) -> str:
    parts = [
        f"GSS {_fmt(gss, '.1f')}",
        f"volatility {_fmt(c['volatility'], '.0f')} (NATR {_fmt(f['natr'], '.3f')}%/bar ≈ "
        f"{_fmt(c['natr_daily_pct'], '.2f')}%/day, KER {_fmt(f['ker'], '.2f')})",
        f"trend {_fmt(c['trend'], '.0f')} (Hurst {_fmt(f['hurst'], '.2f')}, slope "
        f"{_fmt(100 * f['norm_slope'], '+.4f')}%/bar, R² {_fmt(f['r2'], '.2f')})",
        f"micro {_fmt(c['micro'], '.0f')} (funding {_fmt(100 * f['funding_mean'], '+.4f')}%, "
        f"OVR {_fmt(f['ovr'], '.2f')}, CVD imbalance {_fmt(f['cvd_imbalance'], '+.2f')})",
    ]
    text = "; ".join(parts)
    return text + (f"; missing {', '.join(missing)}" if missing else "")
