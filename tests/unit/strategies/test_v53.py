"""Golden cases for v53, v53_middle and v53_fast (digest §4.4 with the §4.6 layer rules)."""

from __future__ import annotations

import pytest

from arbray.scoring.registry import get_kind
from arbray.scoring.result import ScoreResult
from tests.unit.scoring.helpers import BASE_SNAPSHOT, config, snap

pytestmark = pytest.mark.unit


def run(kind: str, s: object = BASE_SNAPSHOT, **kw: object) -> ScoreResult:
    c = config(kind, **kw)
    return get_kind(kind).score(s, c, None)  # type: ignore[arg-type]


def test_golden_v53_and_middle() -> None:
    """30m/4h (and 15m/1h): LONG with resonance 30, P99 20, accel 5 → 55; LSR 0.6 → 10 and
    top trader 0.58 → 10 → 20; OI +1 % → 10; premium missing → 2. Unscaled: 87.0 → heavy (≥ 85)."""
    for kind in ("v53", "v53_middle"):
        r = run(kind)
        assert [lay.raw for lay in r.layers] == [55.0, 20.0, 10.0, 2.0]
        assert [lay.score for lay in r.layers] == [55.0, 20.0, 10.0, 2.0]
        assert [lay.max for lay in r.layers] == [55.0, 25.0, 15.0, 5.0]
        assert (r.total, r.tier, r.is_entry, r.is_flip_signal) == (87.0, "heavy", True, True)
        assert r.kind == kind and r.version == "5.3"


def test_variant_windows() -> None:
    s = snap(cvd_30m=-50.0)  # v53 (30m/4h) and v53_fast (5m/30m) lose resonance; v53_middle (15m/1h) keeps it
    assert run("v53", s).block_reason == "no_direction_consensus"
    assert run("v53_fast", s).block_reason == "no_direction_consensus"
    assert run("v53_middle", s).gate_passed
    assert run("v53_middle").inputs.keys() >= {"cvd_15m", "cvd_1h"}


def test_golden_v53_fast_obi_bonus() -> None:
    """Environment = round(OI raw/15 × 10) + OBI bonus (aligned |OBI| ≥ .30 → 5, ≥ .15 → 3), ≤ 15.
    OI +1 % → raw 10 → round(6.67) = 7. Totals 55 + 20 + env + 2."""
    cases = [(0.1, 7.0, 84.0, "standard"), (0.15, 10.0, 87.0, "heavy"), (0.3, 12.0, 89.0, "heavy"),
             (-0.2, 7.0, 84.0, "standard")]
    for obi, env, total, tier in cases:
        r = run("v53_fast", snap(obi_10=obi))
        assert (r.layer("environment").raw, r.total, r.tier) == (env, total, tier)
    r = run("v53_fast", snap(obi_10=0.3, oi_change_pct=0.05),
            obi_scoring={"strong_score": 15, "weak_score": 3})
    assert r.layer("environment").raw == 15.0  # min(10 + 15, 15)
    assert run("v53_fast", snap(oi_change_pct=-0.01, obi_10=None)).layer("environment").raw == 3.0  # round(3.33)
    assert run("v53", snap(obi_10=0.35)).layer("environment").raw == 10.0  # no bonus outside v53_fast


def test_golden_v53_fast_accel_independent_path() -> None:
    """5m +10 / 30m −50: no resonance, side LONG (fast > 0): 0 + P99 20 + accel 5 = 25, raised to
    min_direction_score 35 because accel and a P99 trade are aligned. With the CVD gate off the
    total is 35 + 20 + 7 + 2 = 64; without the path 25 → 54."""
    s = snap(cvd_30m=-50.0)
    r = run("v53_fast", s, gate_cvd_enabled=False)
    assert (r.layer("direction").raw, r.total) == (35.0, 64.0)
    r = run("v53_fast", s, gate_cvd_enabled=False, accel_independent={"enabled": False})
    assert (r.layer("direction").raw, r.total) == (25.0, 54.0)
    r = run("v53_fast", snap(cvd_30m=-50.0, large_buy_qty_15m=0.0), gate_cvd_enabled=False)
    assert r.layer("direction").raw == 15.0  # no aligned P99 trade: 10 + 5
    r = run("v53_fast", s)
    assert r.layer("direction").raw == 35.0 and r.total == 0.0 and r.block_reason == "no_direction_consensus"


@pytest.mark.parametrize(("symbol", "price", "atr_ok", "atr_low", "reason"), [
    ("BTCUSDT", 60_000.0, 120.0, 119.0, "low_vol(0.00198333<0.002)"),
    ("ETHUSDT", 3_000.0, 9.0, 8.7, "low_vol(0.0029<0.003)"),
    ("XRPUSDT", 0.5, 0.00125, 0.0012, "low_vol(0.0024<0.0025)"),
    ("SOLUSDT", 150.0, 0.6, 0.57, "low_vol(0.0038<0.004)"),
])
def test_per_symbol_volatility_floor(symbol: str, price: float, atr_ok: float, atr_low: float, reason: str) -> None:
    ok = snap(symbol=symbol, price=price, atr_5m=atr_ok, large_sell_qty_15m=0.0, whale_flow_15m=0.0)
    assert run("v53", ok).gate("volatility").status == "passed"
    assert run("v53", snap(symbol=symbol, price=price, atr_5m=atr_low)).block_reason == reason


@pytest.mark.parametrize(("symbol", "veto", "ok"), [
    ("BTCUSDT", -0.31, -0.30), ("ETHUSDT", -0.36, -0.35), ("XRPUSDT", -0.41, -0.40), ("SOLUSDT", -0.46, -0.45),
])
def test_per_symbol_obi_veto(symbol: str, veto: float, ok: float) -> None:
    base = {"symbol": symbol, "price": 100.0, "atr_5m": 1.0, "large_sell_qty_15m": 0.0}
    assert run("v53", snap(obi_10=veto, **base)).block_reason == "obi_veto"
    assert run("v53", snap(obi_10=ok, **base)).gate_passed


def test_per_symbol_whale_gate() -> None:
    """BTC vetoes on whale flow beyond ±0.5; SOL on adverse P99 sells worth ≥ $20k."""
    assert run("v53", snap(whale_flow_15m=-0.7)).block_reason == "whale_flow_adverse(-0.7)"
    sol = {"symbol": "SOLUSDT", "price": 150.0, "atr_5m": 1.5, "large_buy_qty_15m": 0.0}
    assert run("v53", snap(large_sell_qty_15m=140.0, **sol)).block_reason == "whale_adverse(>$20k)"
    assert run("v53", snap(large_sell_qty_15m=130.0, **sol)).gate_passed  # $19.5k


def test_symbol_gate_overrides_and_zero() -> None:
    c = config("v53", symbols=["BTCUSDT"], symbol_gates={"BTCUSDT": {"obi_threshold": 0.0}})
    assert c.symbol_gates["BTCUSDT"].obi_threshold == 0.0  # 0 is honoured, other keys from the table
    assert c.symbol_gates["BTCUSDT"].vol_atr_pct_min == 0.002
    assert get_kind("v53").score(snap(obi_10=-0.01), c, None).block_reason == "obi_veto"
    assert get_kind("v53").score(snap(obi_10=0.0), c, None).gate_passed


def test_direction_restriction_blocks_entry_and_flip() -> None:
    r = run("v53", direction="short_only")
    assert r.total == 87.0 and r.side == "LONG" and not r.side_allowed
    assert not r.is_entry and not r.is_flip_signal and r.tier is None
    assert run("v53", direction="long_only").is_flip_signal


def test_tier_boundary_at_entry_and_flip() -> None:
    """Total 87: entry at ≤ 87, heavy and flip at flip_threshold ≤ 87."""
    assert run("v53", entry_score=87, flip_threshold=88).tier == "standard"
    assert run("v53", entry_score=88, flip_threshold=88).tier is None
    r = run("v53", entry_score=80, flip_threshold=87)
    assert r.tier == "heavy" and r.is_flip_signal
