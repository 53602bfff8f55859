"""Properties of every kind: vectorised == scalar, caps, forced totals on blocks, key-order invariance."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbray.features.snapshot import FeatureSnapshot
from arbray.scoring.config import StrategyConfig
from arbray.scoring.registry import get_kind, parse_config
from tests.unit.scoring.helpers import factory_dicts, legacy_dicts, snapshots, v53_dicts

pytestmark = pytest.mark.unit

KIND_DICTS = st.one_of(
    factory_dicts(), v53_dicts("v53"), v53_dicts("v53_middle"), v53_dicts("v53_fast"),
    legacy_dicts("v51_baseline"), legacy_dicts("v52_8signals"),
)
EXTRAS = st.one_of(st.none(), st.fixed_dictionaries({
    "cvd_8h": st.one_of(st.none(), st.sampled_from([-30.0, 0.0, 30.0])),
    "coinbase_premium": st.one_of(st.none(), st.sampled_from([-0.001, -0.0005, 0.0, 0.0003, 0.0006])),
}))


def _scalar(snap: FeatureSnapshot, cfgs: list[StrategyConfig], extras: Any) -> list[Any]:
    kind = get_kind(cfgs[0].kind)
    return [kind.score(snap, c, extras) for c in cfgs]


def _batch(snap: FeatureSnapshot, cfgs: list[StrategyConfig], extras: Any) -> list[Any]:
    kind = get_kind(cfgs[0].kind)
    return kind.score_batch(snap, kind.compile(cfgs, snap.symbol), extras).results()


@settings(max_examples=150, deadline=None)
@given(kinds=st.sampled_from(["factory", "v53", "v53_middle", "v53_fast", "v51_baseline", "v52_8signals"]),
       data=st.data(), snap=snapshots(), extras=EXTRAS)
def test_vectorised_equals_scalar(kinds: str, data: st.DataObject, snap: FeatureSnapshot, extras: Any) -> None:
    gen = {"factory": factory_dicts(), "v51_baseline": legacy_dicts("v51_baseline"),
           "v52_8signals": legacy_dicts("v52_8signals")}.get(kinds, v53_dicts(kinds))
    dicts = data.draw(st.lists(gen, min_size=1, max_size=12, unique_by=lambda d: d["strategy_id"]))
    cfgs = [parse_config(d) for d in dicts]
    assert _batch(snap, cfgs, extras) == _scalar(snap, cfgs, extras)


@settings(max_examples=200, deadline=None)
@given(d=KIND_DICTS, snap=snapshots(), extras=EXTRAS)
def test_capped_totals_never_exceed_100(d: dict[str, Any], snap: FeatureSnapshot, extras: Any) -> None:
    c = parse_config(d)
    kind = get_kind(c.kind)
    r = kind.score(snap, c, extras)
    assert r.total >= 0
    if kind.capped:
        assert r.total <= 100
    for lay in r.layers:
        assert 0 <= lay.score <= lay.max + 1e-9


@settings(max_examples=200, deadline=None)
@given(d=KIND_DICTS, snap=snapshots(), extras=EXTRAS)
def test_failed_gate_forces_documented_total(d: dict[str, Any], snap: FeatureSnapshot, extras: Any) -> None:
    """Factory and v53: any block (or not ready) → total 0. V5.1/V5.2: no_direction keeps the
    computed total but never enters or flips; not ready → 0."""
    c = parse_config(d)
    r = get_kind(c.kind).score(snap, c, extras)
    if r.block_reason is None:
        assert all(g.status != "blocked" for g in r.gates)
        return
    assert not r.is_entry and not r.is_flip_signal and r.tier is None
    blocked = [g for g in r.gates if g.status == "blocked"]
    if r.block_reason.startswith("not_ready:"):
        assert r.total == 0.0 and r.side is None and not blocked
    elif c.kind in ("v51_baseline", "v52_8signals"):
        assert r.block_reason == "no_direction"
        assert r.total == round(sum(lay.score for lay in r.layers), 1)
    else:
        assert r.total == 0.0
        assert len(blocked) == 1 and blocked[0].reason == r.block_reason
        after = r.gates[r.gates.index(blocked[0]) + 1:]
        assert all(g.status == "not_run" for g in after)


@settings(max_examples=100, deadline=None)
@given(d=KIND_DICTS, snap=snapshots(), seed=st.integers(0, 2**32 - 1))
def test_invariant_to_config_key_order(d: dict[str, Any], snap: FeatureSnapshot, seed: int) -> None:
    def shuffled(x: Any, rng: random.Random) -> Any:
        if not isinstance(x, dict):
            return x
        keys = list(x)
        rng.shuffle(keys)
        return {k: shuffled(x[k], rng) for k in keys}

    a = parse_config(d)
    b = parse_config(shuffled(d, random.Random(seed)))
    assert a == b and a.config_hash == b.config_hash
    kind = get_kind(a.kind)
    assert kind.score(snap, a, None) == kind.score(snap, b, None)


@settings(max_examples=150, deadline=None)
@given(d=KIND_DICTS, snap=snapshots(), direction=st.sampled_from(["long_only", "short_only"]))
def test_entry_and_flip_need_an_allowed_side(d: dict[str, Any], snap: FeatureSnapshot, direction: str) -> None:
    """The side restriction blocks entries and flips (the predecessor let flips through)."""
    c = parse_config({**d, "direction": direction})
    r = get_kind(c.kind).score(snap, c, None)
    if r.side is not None and r.side != ("LONG" if direction == "long_only" else "SHORT"):
        assert not r.side_allowed and not r.is_entry and not r.is_flip_signal
    both = get_kind(c.kind).score(snap, parse_config({**d, "direction": "both"}), None)
    assert (r.total, r.side, r.layers) == (both.total, both.side, both.layers)
