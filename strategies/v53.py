"""``v53``, ``v53_middle``, ``v53_fast``: the V5.3 four-layer model with per-symbol gates (digest §4.4).

Layers: direction 55 (CVD resonance 30 + P99 flow 20/10/0 + accel 5), crowding 25 (LSR 15 +
top trader 10), environment 15 (OI), auxiliary 5 (Coinbase premium); total ≤ 100; any gate
block → total 0. Gates per symbol from ``arbray.scoring.gates`` (volatility floor, CVD
resonance, whale, OBI, spot–perp; spot–perp off by default as in the V5.4 engine). Windows:
``v53`` 30m/4h, ``v53_middle`` 15m/1h, ``v53_fast`` 5m/30m with the accel-independent direction
path (accel aligned and an aligned P99 trade → at least ``min_direction_score``) and the OBI
bonus in the environment layer. Tiers: standard at ``entry_score`` (75), heavy at
``flip_threshold`` (85).

In the predecessor these names were scored by the V5.4 engine (``evaluate_factory_strategy``),
whose exact layer rules are used here (``arbray.strategies.factory``) with the V5.3 design's
layer maxima 55/25/15/5 unscaled. Deliberate difference: the V5.4 migration stored these three
strategies with factory weights 55/25/15/5, which the factory scaling turns into
41.25/18.75/25/15; that variant is a ``factory`` config, not these kinds. All bug fixes listed
in ``arbray.strategies.factory`` apply (0 thresholds honoured, OBI 0.0 is a value, flips respect
``direction``, wrong symbols refused, per-minute acceleration, real OI horizon). The fast
variant is selected by kind, not by a name ending in "fast".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, model_validator

from arbray.features.snapshot import FeatureSnapshot
from arbray.scoring.config import (
    DEFAULT_SYMBOLS,
    AtrTargets,
    Extras,
    FrozenModel,
    StrategyConfig,
    StrategyId,
    Symbol,
    flip_rule,
    require_symbol,
    require_symbols,
)
from arbray.scoring.gates import GATE_ENABLED_DEFAULTS, GateThresholds, gate_defaults
from arbray.scoring.registry import StrategyKind, register
from arbray.scoring.result import ScoreBatch, ScoreResult

from .factory import EngineBatch, EngineParams, Identity, compile_params, evaluate, evaluate_batch

VERSION = "5.3"
V53_LAYER_MAX = (55.0, 25.0, 15.0, 5.0)


class AccelIndependent(FrozenModel):
    """The fast variant's direction path that does not need CVD resonance."""

    enabled: bool = True
    min_direction_score: float = Field(35, ge=0, le=55, description="direction raw floor when it applies")


class ObiScoring(FrozenModel):
    """The fast variant's OBI bonus on the environment layer."""

    enabled: bool = True
    strong_threshold: float = Field(0.30, ge=0, le=1)
    weak_threshold: float = Field(0.15, ge=0, le=1)
    strong_score: float = Field(5, ge=0, le=15)
    weak_score: float = Field(3, ge=0, le=15)

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        out: list[tuple[tuple[str, ...], str]] = []
        if self.weak_threshold > self.strong_threshold:
            out.append((("weak_threshold", "strong_threshold"), "weak_threshold must not exceed strong_threshold"))
        if self.weak_score > self.strong_score:
            out.append((("weak_score", "strong_score"), "weak_score must not exceed strong_score"))
        return out


def fill_symbol_gates(data: Any) -> Any:
    """Complete ``symbol_gates`` for every configured symbol from the gate table."""
    if not isinstance(data, dict):
        return data
    symbols = data.get("symbols", DEFAULT_SYMBOLS)
    given = data.get("symbol_gates", {})
    if not isinstance(symbols, list | tuple) or not isinstance(given, dict):
        return data
    gates: dict[Any, Any] = {}
    for sym in symbols:
        if not isinstance(sym, str):
            return data
        own = given.get(sym, {})
        if isinstance(own, GateThresholds):
            own = own.model_dump()
        gates[sym] = {**gate_defaults(sym).model_dump(), **own} if isinstance(own, dict) else own
    gates.update({k: v for k, v in given.items() if k not in gates})
    return {**data, "symbol_gates": gates}


class V53BaseConfig(StrategyConfig):
    """Fields shared by the three V5.3 variants."""

    symbols: tuple[Symbol, ...] = Field(DEFAULT_SYMBOLS, min_length=1, description="symbols this strategy scores")
    cvd_fast_window: str = Field(description="fixed by the variant")
    cvd_slow_window: str = Field(description="fixed by the variant")
    entry_score: int = Field(75, ge=60, le=95, description="open threshold (standard tier)")
    flip_threshold: int = Field(85, ge=60, le=95, description="reverse score to flip; also the heavy tier")
    gate_vol_enabled: bool = GATE_ENABLED_DEFAULTS["volatility"]
    gate_cvd_enabled: bool = GATE_ENABLED_DEFAULTS["cvd_resonance"]
    gate_whale_enabled: bool = GATE_ENABLED_DEFAULTS["whale"]
    gate_obi_enabled: bool = GATE_ENABLED_DEFAULTS["obi"]
    gate_spot_perp_enabled: bool = GATE_ENABLED_DEFAULTS["spot_perp"]
    symbol_gates: dict[Symbol, GateThresholds] = Field(
        default_factory=dict, description="per-symbol thresholds; omitted symbols/keys come from the gate table"
    )
    tp_sl: AtrTargets = Field(default_factory=AtrTargets, description="legacy ATR exits (loader default 2/1.5/3)")
    timeout_minutes: int = Field(60, ge=30, le=1440)

    @model_validator(mode="before")
    @classmethod
    def _gate_table(cls, data: Any) -> Any:
        return fill_symbol_gates(data)

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        out: list[tuple[tuple[str, ...], str]] = []
        if len(set(self.symbols)) != len(self.symbols):
            out.append((("symbols",), "symbols must be unique"))
        extra = sorted(set(self.symbol_gates) - set(self.symbols))
        if extra:
            out.append((("symbol_gates",), f"symbol_gates has symbols not in symbols: {extra}"))
        out += flip_rule(self.entry_score, self.flip_threshold)
        return out

    @property
    def applies_to(self) -> tuple[str, ...]:
        return self.symbols

    @property
    def windows(self) -> tuple[str, str]:
        """(fast, slow) CVD windows of the variant."""
        return self.cvd_fast_window, self.cvd_slow_window

    def _fast_extras(self) -> tuple[AccelIndependent | None, ObiScoring | None]:
        return None, None

    def engine_params(self, symbol: str) -> EngineParams:
        """Engine parameters of this config on ``symbol``."""
        g = self.symbol_gates[symbol]
        ai, obs = self._fast_extras()
        fast, slow = self.windows
        return EngineParams(
            fast_window=fast, slow_window=slow,
            vol_enabled=self.gate_vol_enabled, vol_atr_pct_min=g.vol_atr_pct_min,
            cvd_enabled=self.gate_cvd_enabled, whale_enabled=self.gate_whale_enabled, whale_mode=g.whale_mode,
            whale_usd_threshold=g.whale_usd_threshold, whale_flow_pct=g.whale_flow_pct,
            obi_enabled=self.gate_obi_enabled, obi_threshold=g.obi_threshold,
            spot_perp_enabled=self.gate_spot_perp_enabled, spot_perp_threshold=g.spot_perp_threshold,
            layer_max=V53_LAYER_MAX,
            accel_independent=ai is not None and ai.enabled,
            min_direction_score=ai.min_direction_score if ai is not None else 0.0,
            obi_scoring=obs is not None and obs.enabled,
            obi_strong_threshold=obs.strong_threshold if obs is not None else 0.0,
            obi_weak_threshold=obs.weak_threshold if obs is not None else 0.0,
            obi_strong_score=obs.strong_score if obs is not None else 0.0,
            obi_weak_score=obs.weak_score if obs is not None else 0.0,
            entry_score=float(self.entry_score), flip_threshold=float(self.flip_threshold), direction=self.direction,
        )


class V53Config(V53BaseConfig):
    """``v53``: CVD 30m/4h."""

    kind: Literal["v53"] = "v53"
    strategy_id: StrategyId = "v53"
    cvd_fast_window: Literal["30m"] = "30m"
    cvd_slow_window: Literal["4h"] = "4h"


class V53MiddleConfig(V53BaseConfig):
    """``v53_middle``: CVD 15m/1h."""

    kind: Literal["v53_middle"] = "v53_middle"
    strategy_id: StrategyId = "v53_middle"
    cvd_fast_window: Literal["15m"] = "15m"
    cvd_slow_window: Literal["1h"] = "1h"


class V53FastConfig(V53BaseConfig):
    """``v53_fast``: CVD 5m/30m, accel-independent direction path and OBI bonus."""

    kind: Literal["v53_fast"] = "v53_fast"
    strategy_id: StrategyId = "v53_fast"
    cvd_fast_window: Literal["5m"] = "5m"
    cvd_slow_window: Literal["30m"] = "30m"
    accel_independent: AccelIndependent = Field(default_factory=AccelIndependent)
    obi_scoring: ObiScoring = Field(default_factory=ObiScoring)

    def _fast_extras(self) -> tuple[AccelIndependent | None, ObiScoring | None]:
        return self.accel_independent, self.obi_scoring


def _make_kind(name: str, config_type: type[V53BaseConfig]) -> StrategyKind[Any, EngineBatch]:
    def score(snap: FeatureSnapshot, cfg: V53BaseConfig, extras: Extras | None = None) -> ScoreResult:
        require_symbol(cfg, snap)
        return evaluate(snap, cfg.engine_params(snap.symbol), Identity(name, VERSION, cfg.strategy_id,
                                                                        cfg.config_hash), extras)

    def compile_configs(configs: Sequence[V53BaseConfig], symbol: str) -> EngineBatch:
        require_symbols(configs, symbol)
        return compile_params(name, VERSION, symbol, [c.strategy_id for c in configs],
                              [c.config_hash for c in configs], [c.engine_params(symbol) for c in configs])

    def score_batch(snap: FeatureSnapshot, batch: EngineBatch, extras: Extras | None = None) -> ScoreBatch:
        return evaluate_batch(snap, batch, extras)

    return register(StrategyKind(
        name=name, version=VERSION, config_type=config_type, capped=True, score=score,
        compile=compile_configs, score_batch=score_batch, windows=lambda c: c.windows,
    ))


V53 = _make_kind("v53", V53Config)
V53_MIDDLE = _make_kind("v53_middle", V53MiddleConfig)
V53_FAST = _make_kind("v53_fast", V53FastConfig)
