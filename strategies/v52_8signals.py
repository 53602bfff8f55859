"""``v52_8signals``: V5.1 plus the funding-rate and liquidation layers, as implemented (digest §4.3).

Seven layers summing to 100 — direction 40, crowding 18, funding rate 5, environment 12,
confirmation 15, liquidation 5, auxiliary 5 — with accel bonus 0. The V5.1 raw layers
(``arbray.strategies.v51_baseline``) contribute ``raw × weight / raw_max``: the digest gives only
the V5.2 layer maxima, so proportional scaling of the V5.1 raw points is the reading used here.
New layers:
- funding rate (``funding_rate``): ``min(|FR| / max|FR| × 5, 5)`` when favourable (long with
  FR < 0, short with FR > 0), else 0 — no penalty; missing 0;
- liquidation (``liq_long_usd_5m``/``liq_short_usd_5m``): ratio opponent/own liquidated USD
  → ≥ 2.0: 5, ≥ 1.5: 3, ≥ 1.2: 1, else 0, only when the 5-min total reaches the symbol's
  minimum (BTC 500k, ETH 200k, XRP/SOL 100k USD from the V5.2 task spec); an own side of 0 with
  liquidations on the other side counts as an infinite ratio.

Deliberate differences: the historical maximum |FR| is a per-symbol config value
(``fr_max_abs``, defaults from the digest's observed maxima, 0.0001 for other symbols — the
predecessor's default) instead of an hourly DB query, so a score depends only on the snapshot
and the config. Every V5.1 difference (see ``v51_baseline``) applies.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from arbray.scoring.config import (
    DEFAULT_SYMBOLS,
    AtrTargets,
    FrozenModel,
    StrategyId,
    Symbol,
)
from arbray.scoring.registry import register

from .v51_baseline import (
    LegacyConfig,
    LegacyParams,
    legacy_kind,
)

KIND = "v52_8signals"
VERSION = "5.2"
V52_LAYERS = ("direction", "accel", "crowding", "funding_rate", "environment", "confirmation", "liquidation",
              "auxiliary")

FR_MAX_ABS_DEFAULTS: dict[str, float] = {
    "BTCUSDT": 0.000046, "ETHUSDT": 0.000095, "XRPUSDT": 0.00022, "SOLUSDT": 0.00022,
}
"""Historical max |funding rate| per symbol (digest §4.3: 0.0046 %, 0.0095 %, 0.022 %, 0.022 %)."""
FR_MAX_ABS_DEFAULT = 0.0001
LIQ_MIN_USD_DEFAULTS: dict[str, float] = {
    "BTCUSDT": 500_000, "ETHUSDT": 200_000, "XRPUSDT": 100_000, "SOLUSDT": 100_000,
}
"""Minimum 5-min liquidated USD before the liquidation layer scores (V5.2 task spec)."""
LIQ_MIN_USD_DEFAULT = 100_000.0


class V52Weights(FrozenModel):
    """Layer maxima of V5.2 as implemented (sum 100)."""

    direction: int = Field(40, ge=0, le=100)
    crowding: int = Field(18, ge=0, le=100)
    funding_rate: int = Field(5, ge=0, le=100)
    environment: int = Field(12, ge=0, le=100)
    confirmation: int = Field(15, ge=0, le=100)
    liquidation: int = Field(5, ge=0, le=100)
    auxiliary: int = Field(5, ge=0, le=100)

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        names = tuple(type(self).model_fields)
        total = sum(getattr(self, n) for n in names)
        return [] if total == 100 else [(names, f"weights must sum to 100, got {total}")]


def _fill_per_symbol(data: Any) -> Any:
    """Complete ``fr_max_abs`` and ``liq_min_usd`` for every configured symbol from the defaults."""
    if not isinstance(data, dict):
        return data
    symbols = data.get("symbols", DEFAULT_SYMBOLS)
    if not isinstance(symbols, list | tuple) or not all(isinstance(s, str) for s in symbols):
        return data
    out = dict(data)
    for key, table, default in (("fr_max_abs", FR_MAX_ABS_DEFAULTS, FR_MAX_ABS_DEFAULT),
                                ("liq_min_usd", LIQ_MIN_USD_DEFAULTS, LIQ_MIN_USD_DEFAULT)):
        given = data.get(key, {})
        if isinstance(given, dict):
            out[key] = {**{s: table.get(s, default) for s in symbols}, **given}
    return out


class V52Config(LegacyConfig):
    """A ``v52_8signals`` strategy (the V5.2 JSON, digest §4.3)."""

    kind: Literal["v52_8signals"] = "v52_8signals"
    strategy_id: StrategyId = "v52_8signals"
    weights: V52Weights = Field(default_factory=V52Weights)
    accel_bonus: float = Field(0, ge=0, le=10, description="points for an aligned CVD acceleration")
    fr_max_abs: dict[Symbol, float] = Field(default_factory=dict, description="historical max |FR| per symbol")
    liq_min_usd: dict[Symbol, float] = Field(default_factory=dict, description="5-min liquidation USD floor")
    tp_sl: AtrTargets = Field(
        default_factory=lambda: AtrTargets(sl_multiplier=2.1, tp1_multiplier=1.4, tp2_multiplier=3.15),
        description="ATR(5m) multiples; the predecessor's 3.0/2.0/4.5 on 0.7 × ATR",
    )

    @model_validator(mode="before")
    @classmethod
    def _per_symbol(cls, data: Any) -> Any:
        return _fill_per_symbol(data)

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        out = super()._rule_violations()
        for key in ("fr_max_abs", "liq_min_usd"):
            table: dict[str, float] = getattr(self, key)
            if set(table) != set(self.symbols):
                out.append(((key,), f"{key} must have exactly the configured symbols"))
        if any(v <= 0 for v in self.fr_max_abs.values()):
            out.append((("fr_max_abs",), "fr_max_abs values must be > 0"))
        if any(v < 0 for v in self.liq_min_usd.values()):
            out.append((("liq_min_usd",), "liq_min_usd values must be >= 0"))
        return out

    def params(self, symbol: str) -> LegacyParams:
        """The numbers this config scores with on ``symbol``."""
        w = self.weights
        return LegacyParams(
            layers=V52_LAYERS,
            weights=tuple(float(x) for x in (w.direction, self.accel_bonus, w.crowding, w.funding_rate,
                                             w.environment, w.confirmation, w.liquidation, w.auxiliary)),
            fr_max_abs=self.fr_max_abs[symbol], liq_min_usd=self.liq_min_usd[symbol],
            entry_score=self.entry_score, standard_score=self.standard_score, heavy_score=self.heavy_score,
            flip_threshold=self.flip_threshold, direction=self.direction,
        )


V52 = legacy_kind(KIND, VERSION, V52Config)
register(V52)
