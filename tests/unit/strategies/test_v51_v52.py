"""Golden cases for v51_baseline and v52_8signals (digest §4.2–§4.3, as implemented)."""

from __future__ import annotations

import pytest

from arbray.scoring.registry import get_kind
from arbray.scoring.result import ScoreResult
from tests.unit.scoring.helpers import BASE_SNAPSHOT, config, snap

pytestmark = pytest.mark.unit


def run(kind: str, s: object = BASE_SNAPSHOT, extras: dict[str, float | None] | None = None,
        **kw: object) -> ScoreResult:
    return get_kind(kind).score(s, config(kind, **kw), extras)  # type: ignore[arg-type]


def test_golden_v51() -> None:
    """fast 50 and mid 200 → LONG. Direction 15 + 15 + P99 aligned 15 = 45; accel +5;
    crowding LSR 0.6 (0.5–0.67) 5 + top trader 0.58 → 10 = 15; OI +1 % → 10; confirmation 15;
    premium missing 2. Total 92 → heavy, flip."""
    r = run("v51_baseline")
    assert {lay.name: lay.score for lay in r.layers} == {
        "direction": 45.0, "accel": 5.0, "crowding": 15.0, "environment": 10.0, "confirmation": 15.0,
        "auxiliary": 2.0}
    assert (r.total, r.side, r.tier, r.is_entry, r.is_flip_signal) == (92.0, "LONG", "heavy", True, True)
    assert r.gates[0].name == "cvd_consensus" and r.gates[0].status == "passed"


def test_v51_is_not_capped() -> None:
    """Everything aligned: 45 + 5 + 20 + 15 + 15 + 5 = 105 (the accel bonus sits on top)."""
    r = run("v51_baseline", snap(long_short_ratio=0.4, top_trader_long_ratio=0.6, oi_change_pct=0.05),
            {"coinbase_premium": 0.001})
    assert r.total == 105.0 and not get_kind("v51_baseline").capped


def test_v51_no_direction_keeps_the_score_but_never_enters() -> None:
    """mid −200: side = fast sign (LONG); direction 15 + 0 + 15 = 30; accel 5; crowding 15;
    OI 10; confirmation 0; premium 2 → 62, logged with block reason no_direction."""
    r = run("v51_baseline", snap(cvd_4h=-200.0), entry_score=60, flip_threshold=60)
    assert (r.total, r.side, r.block_reason) == (62.0, "LONG", "no_direction")
    assert not r.is_entry and not r.is_flip_signal and r.gates[0].status == "blocked"


@pytest.mark.parametrize(("extra", "entry", "expected"), [
    # direction 40 (P99 none) + 0 + crowding 10 + OI 5 + confirmation 15 + premium adverse 0 = 70
    ({}, 60, ("light", True)), ({}, 75, (None, False)),
    # + accel aligned 5 = 75: the standard boundary
    ({"cvd_accel_30m_per_min2": 3.0}, 75, ("standard", True)),
    # P99 aligned (+5) and OI +1 % (+5) + accel = 85: the heavy boundary
    ({"cvd_accel_30m_per_min2": 3.0, "large_buy_qty_15m": 1.0, "oi_change_pct": 0.01}, 75, ("heavy", True)),
])
def test_v51_tier_boundaries(extra: dict[str, float], entry: int, expected: tuple[str | None, bool]) -> None:
    s = snap(**{"large_buy_qty_15m": 0.0, "cvd_accel_30m_per_min2": -3.0, "long_short_ratio": 1.0,
                "top_trader_long_ratio": 0.58, "oi_change_pct": -0.01, **extra})
    r = run("v51_baseline", s, {"coinbase_premium": -0.001}, entry_score=entry)
    assert (r.tier, r.is_entry) == expected
    assert r.total in (70.0, 75.0, 85.0)


def test_golden_v52() -> None:
    """Direction 45·40/45 = 40; accel weight 0; crowding 15·18/20 = 13.5; FR −0.002 % favourable
    for a long: min(0.00002/0.000046 × 5, 5) = 2.1739; OI 10·12/15 = 8; confirmation 15;
    liquidations 800k ≥ 500k, short/long = 7 ≥ 2 → 5; premium 2. Total 85.67 → 85.7."""
    r = run("v52_8signals")
    scores = {lay.name: lay.score for lay in r.layers}
    assert scores == {"direction": 40.0, "accel": 0.0, "crowding": 13.5,
                      "funding_rate": pytest.approx(0.00002 / 0.000046 * 5), "environment": 8.0,
                      "confirmation": 15.0, "liquidation": 5.0, "auxiliary": 2.0}
    assert sum(lay.max for lay in r.layers) == 100.0
    assert (r.total, r.tier, r.is_flip_signal) == (85.7, "heavy", True)


@pytest.mark.parametrize(("fr", "raw"), [(0.00002, 0.0), (-0.001, 5.0), (None, 0.0), (0.0, 0.0)])
def test_v52_funding_layer(fr: float | None, raw: float) -> None:
    """Unfavourable funding scores 0, not a penalty; extreme favourable funding caps at 5."""
    r = run("v52_8signals", snap(funding_rate=fr))
    assert r.layer("funding_rate").raw == raw
    assert ("funding_rate" in r.missing) == (fr is None)


@pytest.mark.parametrize(("long_usd", "short_usd", "raw"), [
    (300_000.0, 360_000.0, 1.0), (300_000.0, 450_000.0, 3.0), (300_000.0, 600_000.0, 5.0),
    (300_000.0, 350_000.0, 0.0), (100_000.0, 150_000.0, 0.0), (0.0, 600_000.0, 5.0),
])
def test_v52_liquidation_layer(long_usd: float, short_usd: float, raw: float) -> None:
    """Ratio short/long for a long: ≥ 2 → 5, ≥ 1.5 → 3, ≥ 1.2 → 1; below BTC's $500k total → 0."""
    r = run("v52_8signals", snap(liq_long_usd_5m=long_usd, liq_short_usd_5m=short_usd))
    assert r.layer("liquidation").raw == raw


def test_v52_short_side_uses_long_liquidations() -> None:
    s = snap(cvd_30m=-50.0, cvd_4h=-200.0, liq_long_usd_5m=700_000.0, liq_short_usd_5m=100_000.0,
             funding_rate=0.0001)
    r = run("v52_8signals", s)
    assert r.side == "SHORT" and r.layer("liquidation").raw == 5.0 and r.layer("funding_rate").raw == 5.0


def test_legacy_flip_respects_direction() -> None:
    r = run("v52_8signals", direction="short_only")
    assert r.total == 85.7 and not r.is_flip_signal and not r.is_entry
