"""``ats_v2``: the screener's 10+1-factor model as a Strategy kind over ``FeatureSnapshot`` plus klines.

Scores come from ``arbray.screener.models.ats_v2`` — the same function ``arbray screen`` ranks with —
so on the same bars the kind's signed score equals the screener's. Inputs:

- kline factors of the symbol's own bars of ``timeframe`` (5m or 1h) from ``extras``, named
  ``ats_<tf>_<factor>`` and computed by ``arbray.screener.live.kline_extras`` (EMA gap in ATRs,
  momentum z, CVD imbalance from taker-buy volume, relative volume, trigger bar, R², slope sign, KER,
  OI change, correlation to BTC/ETH);
- from the snapshot (V2 factors): funding ``funding_rate``; basis ``1/(1 + spot_perp_div) − 1`` (mark
  over spot); liquidity L from ``spread_bps`` and the top-``obi_levels`` depth notional
  ``(depth_bid_qty_10 + depth_ask_qty_10) × price`` (the screener's files use ±1 % of mid instead);
  liquidation skew Q from ``liq_long_usd_5m``/``liq_short_usd_5m`` when ``liquidation_feed`` is on.

A missing input leaves its factor out (its weight leaves the normalising sum) and is listed in
``ScoreResult.missing``; hybrid mode runs V1 when the order book or the liquidation feed is absent.
No kline factor at all → ``not_ready:<timeframe>_klines``. Gate ``coverage``: the factors present must
carry at least ``min_coverage`` of the active table's weight. Side = sign of the score, total =
|score| (0–100), entry at ``entry_score`` (tier standard), flip and tier heavy at ``flip_threshold``.
Layers: every factor of both tables plus F, raw = the factor's score (±100 or 0–100), score = its
contribution towards the side (Σ over the table = |score| before F), F's score = what F added.
``inputs`` holds every value read plus the model's signed ``score`` and ``probability_up``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field

from arbray.features.snapshot import FeatureSnapshot
from arbray.scoring.config import (
    AtrTargets,
    Extras,
    StrategyConfig,
    StrategyId,
    Symbol,
    flip_rule,
    require_symbol,
    require_symbols,
    side_allowed,
)
from arbray.scoring.registry import StrategyKind, register
from arbray.scoring.result import (
    GATE_STATUSES,
    NO_TIER,
    TIERS,
    GateResult,
    LayerScore,
    ScoreBatch,
    ScoreResult,
    side_name,
)
from arbray.screener.live import KLINE_FACTORS, extra_name
from arbray.screener.models import UNSIGNED, V1_WEIGHTS, V2_WEIGHTS, AtsConfig, ats_v2

NAME = "ats_v2"
VERSION = "2.0"
LAYER_NAMES: tuple[str, ...] = ("T", "M", "C", "C+", "V", "V+", "S", "O", "O+", "E", "L", "B", "Q", "I", "F")
GATE_NAMES: tuple[str, ...] = ("coverage",)

FACTOR_INPUTS: dict[str, tuple[str, ...]] = {
    "T": ("ema_gap_atr",), "M": ("momentum_z",), "C": ("cvd_imbalance",), "C+": ("cvd_imbalance",),
    "V": ("rel_volume",), "V+": ("rel_volume", "trigger_bar"), "S": ("r2",), "O": ("oi_change", "norm_slope"),
    "O+": ("oi_change", "norm_slope"), "E": ("ker",), "I": ("corr_btc", "corr_eth"),
    "F": ("cvd_imbalance", "momentum_z"),
    "L": ("spread_bps", "depth_bid_qty_10", "depth_ask_qty_10", "price"),
    "B": ("spot_perp_div", "funding_rate"), "Q": ("liquidations",),
}
"""What each factor reads: kline factors (from ``extras``) or snapshot fields / the liquidation feed."""


def _weights_rule(name: str, table: dict[str, float], allowed: dict[str, float]) -> list[tuple[tuple[str, ...], str]]:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        return [((name,), f"{name} has factors outside {sorted(allowed)}: {unknown}")]
    if not any(w > 0 for w in table.values()):
        return [((name,), f"{name} needs a positive weight")]
    return []


class AtsV2Config(StrategyConfig):
    """``ats_v2`` as a strategy: factor tables, mode, thresholds and the model's scales."""

    kind: Literal["ats_v2"] = "ats_v2"
    strategy_id: StrategyId = "ats_v2"
    symbols: tuple[Symbol, ...] = Field(("BTCUSDT",), min_length=1, description="symbols this strategy scores")
    timeframe: Literal["5m", "1h"] = Field("5m", description="whose kline factors are read (ats_<tf>_*)")
    mode: Literal["v1", "v2", "hybrid"] = Field("hybrid", description="hybrid: V2 when book and liquidations exist")
    v1_weights: dict[str, float] = Field(default_factory=lambda: dict(V1_WEIGHTS),
                                         description="V1 table (T M C V S O E); F modulates")
    v2_weights: dict[str, float] = Field(default_factory=lambda: dict(V2_WEIGHTS),
                                         description="V2 table (T M C+ V+ S O+ E L B Q I)")
    entry_score: float = Field(40.0, ge=1, le=100, description="|score| that opens (tier standard)")
    flip_threshold: float = Field(60.0, ge=1, le=100, description="|score| that flips; also the heavy tier")
    min_coverage: float = Field(0.6, ge=0, le=1, description="share of the table's weight that must be present")
    liquidation_feed: bool = Field(True, description="the snapshot's liquidation sums come from a forceOrder "
                                                     "stream (else Q is missing)")
    temperature: float = Field(20.0, gt=0, le=1000, description="P(up) = 1/(1+exp(−score/temperature))")
    f_gain: float = Field(0.2, ge=0, le=1, description="F scales |score| by up to ±f_gain")
    oi_scale: float = Field(0.05, gt=0, le=10, description="OI change giving tanh(1) of the O/O+ score")
    basis_scale: float = Field(0.002, gt=0, le=1, description="basis term scale of B")
    funding_scale: float = Field(0.0003, gt=0, le=1, description="funding term scale of B")
    spread_ok_bps: float = Field(10.0, gt=0, le=10_000, description="L: spread at which the spread half is 0")
    depth_full_usd: float = Field(1_000_000.0, gt=0, description="L: depth notional earning the depth half")
    tp_sl: AtrTargets = Field(default_factory=AtrTargets, description="exits as multiples of the 5m ATR")
    timeout_minutes: int = Field(60, ge=30, le=1440)

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        out: list[tuple[tuple[str, ...], str]] = []
        if len(set(self.symbols)) != len(self.symbols):
            out.append((("symbols",), "symbols must be unique"))
        out += _weights_rule("v1_weights", self.v1_weights, V1_WEIGHTS)
        out += _weights_rule("v2_weights", self.v2_weights, V2_WEIGHTS)
        if any(w < 0 for w in (*self.v1_weights.values(), *self.v2_weights.values())):
            out.append((("v1_weights", "v2_weights"), "weights must be >= 0"))
        out += flip_rule(self.entry_score, self.flip_threshold)
        return out

    @property
    def applies_to(self) -> tuple[str, ...]:
        return self.symbols

    def model_config_for_screener(self) -> AtsConfig:
        """The screener model's settings this config implies."""
        return AtsConfig(mode=self.mode, temperature=self.temperature, f_gain=self.f_gain, oi_scale=self.oi_scale,
                         basis_scale=self.basis_scale, funding_scale=self.funding_scale,
                         spread_ok_bps=self.spread_ok_bps, depth_full_usd=self.depth_full_usd)


@dataclass(frozen=True)
class _Inputs:
    """Everything one snapshot offers the model: raw factors, missing inputs, the values read."""

    factors: dict[str, float]
    missing_inputs: list[str]
    values: dict[str, float | None]


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def read_inputs(snap: FeatureSnapshot, cfg: AtsV2Config, extras: Extras | None) -> _Inputs:
    """Raw factors in the screener's names, the screener-style missing inputs, and every value read."""
    values: dict[str, float | None] = {}
    f: dict[str, float] = {}
    missing: set[str] = set()
    for factor, needs in KLINE_FACTORS.items():
        v = None if extras is None else extras.get(extra_name(cfg.timeframe, factor))
        values[factor] = v
        f[factor] = _nan(v)
        if v is None:
            missing.add(needs)
    price = snap.price
    depth = (snap.depth_bid_qty_10 + snap.depth_ask_qty_10) * price \
        if snap.depth_bid_qty_10 is not None and snap.depth_ask_qty_10 is not None and price else None
    values.update(price=price, spread_bps=snap.spread_bps, depth_bid_qty_10=snap.depth_bid_qty_10,
                  depth_ask_qty_10=snap.depth_ask_qty_10, funding_rate=snap.funding_rate,
                  spot_perp_div=snap.spot_perp_div)
    f["spread_bps"], f["depth_usd"] = _nan(snap.spread_bps), _nan(depth)
    if snap.spread_bps is None or depth is None:
        missing.add("order_book")
    f["funding_last"] = _nan(snap.funding_rate)
    if snap.funding_rate is None:
        missing.add("funding")
    div = snap.spot_perp_div
    f["basis"] = 1.0 / (1.0 + div) - 1.0 if div is not None and div > -1.0 else math.nan
    if not math.isfinite(f["basis"]):
        missing.add("spot_close")
    if cfg.liquidation_feed:
        long_usd, short_usd = snap.liq_long_usd_5m, snap.liq_short_usd_5m
        tot = long_usd + short_usd
        f["liq_skew"] = (short_usd - long_usd) / tot if tot > 0 else 0.0  # no liquidation: no skew (observed)
        values["liquidations"] = tot
    else:
        f["liq_skew"] = math.nan
        values["liquidations"] = None
        missing.add("liquidations")
    return _Inputs(f, sorted(missing), values)


def score(snap: FeatureSnapshot, cfg: AtsV2Config, extras: Extras | None = None) -> ScoreResult:
    """Score one config on one snapshot (see the module doc)."""
    require_symbol(cfg, snap)
    inp = read_inputs(snap, cfg, extras)
    res = ats_v2(snap.symbol, inp.factors, inp.missing_inputs, cfg.model_config_for_screener(),
                 cfg.v1_weights, cfg.v2_weights)
    mode = str(res.extra["mode"])
    weights = cfg.v2_weights if mode == "v2" else cfg.v1_weights
    used = [k for k, w in weights.items() if w > 0]
    if cfg.mode == "hybrid" and mode == "v1":
        used += ["L", "Q"]  # why hybrid fell back to V1
    missing = tuple(sorted({extra_name(cfg.timeframe, name) if name in KLINE_FACTORS else name
                            for k in (*used, "F") for name in FACTOR_INPUTS[k] if inp.values.get(name) is None}))
    inputs = {**{extra_name(cfg.timeframe, k): inp.values[k] for k in KLINE_FACTORS},
              **{k: v for k, v in inp.values.items() if k not in KLINE_FACTORS},
              "score": res.score, "probability_up": _float_or_none(res.extra.get("probability_up"))}
    if res.score is None:
        return _result(cfg, snap, side=None, side_allowed=False, total=0.0,
                           layers=tuple(LayerScore(n, 0.0, 100.0, 0.0, 0.0) for n in LAYER_NAMES),
                           gates=(GateResult("coverage", "not_run"),),
                           block_reason=f"not_ready:{cfg.timeframe}_klines", tier=None, is_entry=False,
                           is_flip_signal=False, missing=missing, inputs=inputs)
    d = 1 if res.score > 0 else -1 if res.score < 0 else 0
    comps = res.components
    present = {k: w for k, w in weights.items() if w > 0 and comps.get(k) is not None}
    total_w = sum(present.values())
    coverage = total_w / sum(w for w in weights.values() if w > 0)
    directional = sum(w * (comps[k] or 0.0) for k, w in present.items() if k not in UNSIGNED)
    dir_sign = 1.0 if directional > 0 else -1.0 if directional < 0 else 0.0
    layers: list[LayerScore] = []
    pre = 0.0
    for name in LAYER_NAMES[:-1]:
        x = comps.get(name)
        w = present.get(name)
        if x is None or w is None:
            layers.append(LayerScore(name, 0.0 if x is None else x, 100.0, 0.0, 0.0))
            continue
        xp = (x - 50.0) * 2.0 * dir_sign if name in UNSIGNED else x
        contrib = w * xp / total_w * d
        pre += contrib
        layers.append(LayerScore(name, x, 100.0, contrib, 100.0 * w / total_w))
    total = abs(res.score)
    layers.append(LayerScore("F", comps.get("F") or 0.0, 100.0, total - pre, 100.0 * cfg.f_gain))
    blocked = coverage < cfg.min_coverage
    reason = f"coverage {coverage:.2f} < {cfg.min_coverage:.2f}" if blocked else None
    allowed = side_allowed(cfg.direction, d)
    ok = not blocked and allowed
    is_entry = ok and total >= cfg.entry_score
    return _result(cfg, snap, side=side_name(d), side_allowed=allowed, total=total, layers=tuple(layers),
                       gates=(GateResult("coverage", "blocked" if blocked else "passed", reason),),
                       block_reason=reason, tier=("heavy" if total >= cfg.flip_threshold else "standard")
                       if is_entry else None, is_entry=is_entry,
                       is_flip_signal=ok and total >= cfg.flip_threshold, missing=missing, inputs=inputs)


def _result(cfg: AtsV2Config, snap: FeatureSnapshot, **fields: Any) -> ScoreResult:
    return ScoreResult(strategy_id=cfg.strategy_id, kind=NAME, version=VERSION, config_hash=cfg.config_hash,
                       symbol=snap.symbol, ts_ms=snap.ts_ms, **fields)


def _float_or_none(x: Any) -> float | None:
    return None if x is None else float(x)


@dataclass(frozen=True)
class Compiled:
    """A group of ``ats_v2`` configs for one symbol."""

    symbol: str
    configs: tuple[AtsV2Config, ...]


def compile_configs(configs: Sequence[AtsV2Config], symbol: str) -> Compiled:
    """Check the configs carry ``symbol``; the model itself has no per-config arrays to precompute."""
    require_symbols(configs, symbol)
    return Compiled(symbol, tuple(configs))


def score_batch(snap: FeatureSnapshot, compiled: Compiled, extras: Extras | None = None) -> ScoreBatch:
    """Every config of the group on ``snap`` as one ``ScoreBatch`` (rows equal the scalar ``score``)."""
    return to_batch(snap, [score(snap, c, extras) for c in compiled.configs])


def to_batch(snap: FeatureSnapshot, results: Sequence[ScoreResult]) -> ScoreBatch:
    """``ScoreResult``s of one kind on one snapshot as ``ScoreBatch`` columns."""
    n = len(results)
    codes = {s: i for i, s in enumerate(GATE_STATUSES)}
    tiers = {t: i for i, t in enumerate(TIERS)}

    def layer_col(attr: str) -> np.ndarray:
        return np.array([[getattr(lay, attr) for lay in r.layers] for r in results], np.float64).reshape(
            n, len(LAYER_NAMES))

    return ScoreBatch(
        kind=NAME, version=VERSION, symbol=snap.symbol, ts_ms=snap.ts_ms,
        strategy_ids=[r.strategy_id for r in results], config_hashes=[r.config_hash for r in results],
        layer_names=LAYER_NAMES, gate_names=GATE_NAMES,
        side=np.array([1 if r.side == "LONG" else -1 if r.side == "SHORT" else 0 for r in results], np.int8),
        side_allowed=np.array([r.side_allowed for r in results], np.bool_),
        total=np.array([r.total for r in results], np.float64),
        layer_raw=layer_col("raw"), layer_raw_max=layer_col("raw_max"), layer_score=layer_col("score"),
        layer_max=layer_col("max"),
        gate_status=np.array([[codes[g.status] for g in r.gates] for r in results], np.int8).reshape(
            n, len(GATE_NAMES)),
        block_reason=[r.block_reason for r in results],
        tier=np.array([tiers.get(r.tier, NO_TIER) for r in results], np.int8),
        is_entry=np.array([r.is_entry for r in results], np.bool_),
        is_flip_signal=np.array([r.is_flip_signal for r in results], np.bool_),
        missing=[r.missing for r in results], inputs=[r.inputs for r in results],
    )


ATS_V2: StrategyKind[AtsV2Config, Compiled] = register(StrategyKind(
    name=NAME, version=VERSION, config_type=AtsV2Config, capped=True, score=score, compile=compile_configs,
    score_batch=score_batch, windows=lambda c: (),
))
