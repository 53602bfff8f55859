"""Snapshot and config builders shared by the scoring and strategy tests."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from hypothesis import strategies as st

from arbray.features.snapshot import FeatureSnapshot
from arbray.scoring.config import StrategyConfig
from arbray.scoring.registry import parse_config

_BASE: dict[str, Any] = {f.name: None for f in fields(FeatureSnapshot)}
_BASE.update(
    symbol="BTCUSDT", ts_ms=1_723_161_600_000, price=60_000.0, last_trade_ts_ms=1_723_161_599_000,
    cvd_5m=10.0, cvd_15m=20.0, cvd_30m=50.0, cvd_1h=80.0, cvd_4h=200.0, cvd_24h=-500.0,
    trade_count_1m=100, atr_5m=180.0, atr_pct_5m=0.003, atr_percentile_5m=55.0,
    large_trade_qty=10.0, large_trades_15m=1, large_buy_qty_15m=12.0, large_sell_qty_15m=0.0,
    whale_flow_15m=0.2, whale_trades_15m=3, cvd_slope_30m_per_min=1.0, cvd_accel_30m_per_min2=3.0,
    obi_10=0.1, spot_perp_div=0.0005, funding_rate=-0.00002, oi_change_pct=0.01, oi_change_horizon_min=15.0,
    long_short_ratio=0.6, top_trader_long_ratio=0.58, liq_long_usd_5m=100_000.0, liq_short_usd_5m=700_000.0,
    book_state="synced", quality=(),
)
BASE_SNAPSHOT = FeatureSnapshot(**_BASE)
"""A ready BTCUSDT snapshot: LONG on every window pair except 24h, aligned P99 and acceleration."""


def snap(**kw: Any) -> FeatureSnapshot:
    """``BASE_SNAPSHOT`` with fields replaced; ``atr_pct_5m`` follows ``atr_5m``/``price`` unless given."""
    s = replace(BASE_SNAPSHOT, **kw)
    if "atr_pct_5m" not in kw and ("atr_5m" in kw or "price" in kw):
        s = replace(s, atr_pct_5m=s.atr_5m / s.price if s.atr_5m is not None and s.price else None)
    return s


def config(kind: str = "factory", **kw: Any) -> StrategyConfig:
    """A config of ``kind`` validated through the registry (factory configs default to BTCUSDT)."""
    data: dict[str, Any] = {"kind": kind, "strategy_id": "t"}
    if kind == "factory":
        data["symbol"] = "BTCUSDT"
    data.update(kw)
    return parse_config(data)


# ------------------------------------------------------------------ hypothesis strategies
def _opt(s: st.SearchStrategy[float]) -> st.SearchStrategy[float | None]:
    return st.one_of(st.none(), s)


def _signed(lim: float) -> st.SearchStrategy[float]:
    return st.one_of(st.sampled_from([0.0, lim / 10, -lim / 10]),
                     st.floats(-lim, lim, allow_nan=False, allow_infinity=False))


@st.composite
def snapshots(draw: st.DrawFn, symbol: str = "BTCUSDT") -> FeatureSnapshot:
    """Snapshots with every scored input varied, including None, 0.0 and threshold values."""
    price = draw(st.sampled_from([60_000.0, 3_000.0, 0.5, 150.0]))
    atr_pct = draw(_opt(st.sampled_from([0.0, 0.0001, 0.002, 0.0025, 0.003, 0.004, 0.01])))
    cvd = {f"cvd_{w}": draw(_opt(_signed(500.0))) for w in ("5m", "15m", "30m", "1h", "4h", "24h")}
    large = draw(st.booleans())
    return snap(
        symbol=symbol, price=draw(st.sampled_from([price, price, price, None])),
        atr_5m=None if atr_pct is None else atr_pct * price, atr_pct_5m=atr_pct,
        **cvd,
        large_buy_qty_15m=draw(st.sampled_from([0.0, 0.0, 5.0, 50.0, 500.0])) if large else None,
        large_sell_qty_15m=draw(st.sampled_from([0.0, 0.0, 5.0, 50.0, 500.0])) if large else None,
        cvd_accel_30m_per_min2=draw(_opt(_signed(50.0))),
        whale_flow_15m=draw(_opt(st.sampled_from([-1.0, -0.6, -0.5, -0.2, 0.0, 0.2, 0.5, 0.6, 1.0]))),
        obi_10=draw(_opt(st.sampled_from([-0.5, -0.45, -0.35, -0.3, -0.15, 0.0, 0.1, 0.15, 0.3, 0.35, 0.5]))),
        spot_perp_div=draw(_opt(st.sampled_from([-0.01, -0.005, -0.003, 0.0, 0.003, 0.005, 0.01]))),
        funding_rate=draw(_opt(st.sampled_from([-0.001, -0.0001, -0.00002, 0.0, 0.00002, 0.0001, 0.001]))),
        oi_change_pct=draw(_opt(st.sampled_from([-0.02, 0.0, 0.01, 0.03, 0.05]))),
        long_short_ratio=draw(_opt(st.sampled_from([0.4, 0.5, 0.6, 0.67, 0.7, 0.9, 1.0, 1.2, 1.5, 1.8, 2.0, 2.5]))),
        top_trader_long_ratio=draw(_opt(st.sampled_from([0.4, 0.45, 0.5, 0.55, 0.6]))),
        liq_long_usd_5m=draw(st.sampled_from([0.0, 100_000.0, 300_000.0, 600_000.0])),
        liq_short_usd_5m=draw(st.sampled_from([0.0, 150_000.0, 360_000.0, 700_000.0])),
    )


WINDOW_PAIRS = [("5m", "30m"), ("5m", "1h"), ("15m", "1h"), ("15m", "4h"), ("30m", "1h"), ("30m", "4h"),
                ("30m", "24h"), ("15m", "8h")]


@st.composite
def factory_dicts(draw: st.DrawFn, symbol: str = "BTCUSDT") -> dict[str, Any]:
    """Valid factory config mappings."""
    w_mom = draw(st.integers(0, 20))
    w_aux = draw(st.integers(0, 40))
    w_env = draw(st.integers(5, 60))
    w_dir = 100 - w_mom - w_aux - w_env
    if not 10 <= w_dir <= 80:
        w_env = 25
        w_dir = 100 - w_mom - w_aux - w_env
    entry = draw(st.integers(60, 95))
    fast, slow = draw(st.sampled_from(WINDOW_PAIRS))
    tp1 = draw(st.sampled_from([0.3, 0.75, 1.0, 1.5]))
    return {
        "kind": "factory", "strategy_id": f"f{draw(st.integers(0, 10**6))}", "symbol": symbol,
        "direction": draw(st.sampled_from(["both", "long_only", "short_only"])),
        "cvd_fast_window": fast, "cvd_slow_window": slow,
        "weight_direction": w_dir, "weight_env": w_env, "weight_aux": w_aux, "weight_momentum": w_mom,
        "entry_score": entry, "flip_threshold": draw(st.integers(entry, 95)),
        "gate_vol_enabled": draw(st.booleans()), "vol_atr_pct_min": draw(st.sampled_from([0.0, 0.002, 0.003])),
        "gate_cvd_enabled": draw(st.booleans()), "gate_whale_enabled": draw(st.booleans()),
        "whale_mode": draw(st.sampled_from(["flow", "large_order"])),
        "whale_usd_threshold": draw(st.sampled_from([0.0, 20_000.0, 100_000.0, 1_000_000.0])),
        "whale_flow_pct": draw(st.sampled_from([0.0, 0.2, 0.5])),
        "gate_obi_enabled": draw(st.booleans()), "obi_threshold": draw(st.sampled_from([0.0, 0.3, 0.35])),
        "gate_spot_perp_enabled": draw(st.booleans()),
        "spot_perp_threshold": draw(st.sampled_from([0.0, 0.003, 0.005])),
        "tp1_ratio": tp1, "tp2_ratio": tp1 + 0.5,
    }


@st.composite
def v53_dicts(draw: st.DrawFn, kind: str = "v53") -> dict[str, Any]:
    """Valid v53/v53_middle/v53_fast config mappings."""
    entry = draw(st.integers(60, 95))
    d: dict[str, Any] = {
        "kind": kind, "strategy_id": f"{kind}_{draw(st.integers(0, 10**6))}",
        "direction": draw(st.sampled_from(["both", "long_only", "short_only"])),
        "entry_score": entry, "flip_threshold": draw(st.integers(entry, 95)),
        "gate_vol_enabled": draw(st.booleans()), "gate_cvd_enabled": draw(st.booleans()),
        "gate_whale_enabled": draw(st.booleans()), "gate_obi_enabled": draw(st.booleans()),
        "gate_spot_perp_enabled": draw(st.booleans()),
        "symbol_gates": {"BTCUSDT": {"obi_threshold": draw(st.sampled_from([0.0, 0.3, 0.5])),
                                     "whale_mode": draw(st.sampled_from(["flow", "large_order"]))}},
    }
    if kind == "v53_fast":
        d["accel_independent"] = {"enabled": draw(st.booleans()),
                                  "min_direction_score": draw(st.sampled_from([0, 35, 50]))}
        d["obi_scoring"] = {"enabled": draw(st.booleans()), "strong_threshold": 0.3, "weak_threshold": 0.15,
                            "strong_score": draw(st.sampled_from([5, 15])), "weak_score": 3}
    return d


@st.composite
def legacy_dicts(draw: st.DrawFn, kind: str = "v51_baseline") -> dict[str, Any]:
    """Valid v51_baseline/v52_8signals config mappings."""
    entry = draw(st.integers(50, 80))
    std = draw(st.integers(entry, 85))
    d: dict[str, Any] = {
        "kind": kind, "strategy_id": f"{kind}_{draw(st.integers(0, 10**6))}",
        "direction": draw(st.sampled_from(["both", "long_only", "short_only"])),
        "entry_score": entry, "standard_score": std, "heavy_score": draw(st.integers(std, 100)),
        "flip_threshold": draw(st.integers(entry, 100)), "accel_bonus": draw(st.sampled_from([0, 2.5, 5])),
    }
    if kind == "v52_8signals":
        d["fr_max_abs"] = {"BTCUSDT": draw(st.sampled_from([0.000046, 0.0001, 0.001]))}
        d["liq_min_usd"] = {"BTCUSDT": draw(st.sampled_from([0.0, 500_000.0, 2_000_000.0]))}
    return d
