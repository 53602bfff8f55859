"""The one declarative table of per-symbol gate defaults (digest §4.4 and §8.2, V5.4b).

Rows are the predecessor's code values: the V5.3 unified ``symbol_gates`` and the V5.4b
per-symbol defaults agree (vol / whale USD / whale flow / OBI / spot–perp):
BTC .002/100000/.5/.30/.003, ETH .003/50000/.5/.35/.005, SOL .004/20000/.5/.45/.008,
XRP .0025/30000/.5/.40/.006, any other symbol .002/50000/.5/.35/.005 (the factory API defaults).
The whale gate works on whale flow for BTC (the "BTC track") and on large orders elsewhere; that
predecessor special case is the ``whale_mode`` column here instead of a name test.

Bounds start at 0 on purpose: the predecessor's ``x or default`` made a configured 0 fall back
to the default (digest §10.3); here 0 is a legitimate, honoured value.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from arbray.scoring.config import FrozenModel

WhaleMode = Literal["flow", "large_order"]
GATE_NAMES: tuple[str, ...] = ("volatility", "cvd_resonance", "whale", "obi", "spot_perp")
GATE_THRESHOLD_FIELDS: tuple[str, ...] = (
    "vol_atr_pct_min", "whale_mode", "whale_usd_threshold", "whale_flow_pct", "obi_threshold",
    "spot_perp_threshold",
)


class GateThresholds(FrozenModel):
    """Thresholds of the five gates for one symbol."""

    vol_atr_pct_min: float = Field(0.002, ge=0, le=0.02, description="block if ATR(5m)/price is below")
    whale_mode: WhaleMode = Field(
        "large_order",
        description="flow: veto on the snapshot's whale_flow_15m (trades >= the symbol's whale size in "
        "arbray.symbols); large_order: veto on adverse P99 trades worth >= whale_usd_threshold",
    )
    whale_usd_threshold: float = Field(50_000, ge=0, le=1_000_000, description="large_order: USD size that counts")
    whale_flow_pct: float = Field(0.5, ge=0, le=1, description="flow: veto if the flow ratio is this adverse")
    obi_threshold: float = Field(0.35, ge=0, le=0.9, description="veto if OBI(10) is this adverse")
    spot_perp_threshold: float = Field(0.005, ge=0, le=0.01, description="veto if spot–perp divergence is this adverse")


SYMBOL_GATE_DEFAULTS: dict[str, GateThresholds] = {
    "BTCUSDT": GateThresholds(vol_atr_pct_min=0.002, whale_mode="flow", whale_usd_threshold=100_000,
                              whale_flow_pct=0.5, obi_threshold=0.30, spot_perp_threshold=0.003),
    "ETHUSDT": GateThresholds(vol_atr_pct_min=0.003, whale_mode="large_order", whale_usd_threshold=50_000,
                              whale_flow_pct=0.5, obi_threshold=0.35, spot_perp_threshold=0.005),
    "SOLUSDT": GateThresholds(vol_atr_pct_min=0.004, whale_mode="large_order", whale_usd_threshold=20_000,
                              whale_flow_pct=0.5, obi_threshold=0.45, spot_perp_threshold=0.008),
    "XRPUSDT": GateThresholds(vol_atr_pct_min=0.0025, whale_mode="large_order", whale_usd_threshold=30_000,
                              whale_flow_pct=0.5, obi_threshold=0.40, spot_perp_threshold=0.006),
}
DEFAULT_GATES = GateThresholds()
"""Any symbol without a row: the factory API defaults."""

GATE_ENABLED_DEFAULTS: dict[str, bool] = {
    "volatility": True, "cvd_resonance": True, "whale": True, "obi": True, "spot_perp": False,
}
"""Gate switches by default: every gate on except spot–perp (digest §4.6, §8.2)."""


def gate_defaults(symbol: str) -> GateThresholds:
    """The default gate thresholds for ``symbol``."""
    return SYMBOL_GATE_DEFAULTS.get(symbol, DEFAULT_GATES)
