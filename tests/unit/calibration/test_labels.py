"""Labels on hand-made price paths, and against a brute-force labeller on random paths (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from arbray.calibration.labels import (
    MINUTE_MS,
    Label,
    LabelConfig,
    LabelEvent,
    LabelSpec,
    PricePath,
    RangeIndex,
    event_atr,
    label_events,
    to_label_event,
)
from tests.unit.calibration.helpers import brute_label

pytestmark = pytest.mark.unit
SPEC = LabelConfig().spec()
T0 = 1_700_000_000_000


def path_of(points: list[tuple[int, float]], covered: int | None = None) -> PricePath:
    return PricePath.from_prices("BTCUSDT", [T0 + t for t, _ in points], [p for _, p in points], "recording",
                                 None if covered is None else T0 + covered)


def one(points: list[tuple[int, float]], side: int = 1, atr: float | None = 10.0, at: int = 60_000,
        spec: LabelSpec = SPEC) -> Label:
    labels, pending = label_events([LabelEvent(7, "BTCUSDT", T0 + at, side, atr)], path_of(points), spec)
    assert not pending
    return labels[0]


def minute_path(prices: list[float], start: int = 0, every: int = 30_000) -> list[tuple[int, float]]:
    return [(start + i * every, p) for i, p in enumerate(prices)]


def test_target_before_stop_long_and_short() -> None:
    # entry 100 (last price before t = 60 s); ATR 10: long target 120, stop 90
    pts = [(0, 100.0), (59999, 100.0), *minute_path([105, 112, 121, 95, 80], start=61000)]
    pts += minute_path([100.0] * 130, start=240_000)
    lab = one(pts)
    assert lab.status == "ok" and lab.entry_price == 100.0
    assert lab.first_hit == "target" and lab.first_hit_ms == T0 + 61_000 + 2 * 30_000
    assert lab.y_binary_30m == 1 and lab.y_binary_60m == 1
    assert lab.mfe_r_60m == pytest.approx(2.1) and lab.mae_r_60m == pytest.approx(2.0)
    short = one(pts, side=-1)  # short target 80, stop 110: the rise to 112 stops it first
    assert short.first_hit == "stop" and short.y_binary_60m == 0 and short.y_binary_30m == 0
    assert short.y_return_60m == pytest.approx(-(100.0 / 100.0 - 1))


def test_target_after_thirty_minutes_counts_only_for_sixty() -> None:
    pts = [(0, 100.0), *minute_path([101.0] * 80, start=60000), (60000 + 40 * MINUTE_MS, 125.0)]
    pts += minute_path([101.0] * 50, start=60_000 + 41 * MINUTE_MS)
    lab = one(sorted(pts))
    assert lab.first_hit == "target" and lab.y_binary_30m == 0 and lab.y_binary_60m == 1
    assert lab.y_return_15m == pytest.approx(0.01)


def test_no_touch_is_a_loss_and_returns_are_signed() -> None:
    pts = [(0, 100.0), *minute_path([100.0 + 0.05 * i for i in range(150)], start=60000)]
    lab = one(pts, side=-1)
    assert lab.status == "ok" and lab.first_hit is None and lab.y_binary_60m == 0
    last_before_60m = max(p for t, p in pts if t < 60_000 + 60 * MINUTE_MS)
    assert lab.y_return_60m == pytest.approx(-(last_before_60m / 100.0 - 1))
    assert lab.mae_r_60m > 0 and lab.mfe_r_60m == 0.0


def test_statuses_without_side_atr_price_or_with_gaps() -> None:
    pts = [(0, 100.0), *minute_path([100.0] * 140, start=60000)]
    no_side = one(pts, side=0)
    assert no_side.status == "no_side" and no_side.y_binary_60m is None and no_side.y_return_60m == 0.0
    assert one(pts, atr=None).status == "no_atr" and one(pts, atr=-1.0).status == "no_atr"
    assert one(pts, at=0).status == "no_price"  # nothing strictly before the event
    gappy = [(0, 100.0), *minute_path([100.0] * 10, start=60_000),
             *minute_path([100.0] * 100, start=60_000 + 20 * MINUTE_MS)]
    assert one(gappy).status == "gap"
    stale = [(0, 100.0), *minute_path([100.0] * 140, start=10 * MINUTE_MS)]
    assert one(stale, at=10 * MINUTE_MS).status == "gap"  # the entry price is 10 minutes old


def test_pending_until_the_data_covers_the_horizon() -> None:
    pts = [(0, 100.0), *minute_path([100.0] * 100, start=60_000)]  # ends ~50 min after the event
    labels, pending = label_events([LabelEvent(1, "BTCUSDT", T0 + 60_000, 1, 10.0)], path_of(pts), SPEC)
    assert labels == [] and pending == [1]


def test_bar_touching_both_barriers_counts_as_the_stop() -> None:
    opens = [T0 + i * MINUTE_MS for i in range(70)]
    hi = [101.0] * 70
    lo = [99.0] * 70
    hi[3], lo[3] = 125.0, 85.0  # one bar spans both barriers
    path = PricePath.from_bars("BTCUSDT", opens, [o + MINUTE_MS - 1 for o in opens], hi, lo, [100.0] * 70)
    labels, _ = label_events([LabelEvent(1, "BTCUSDT", T0 + MINUTE_MS, 1, 10.0)], path, SPEC)
    assert labels[0].first_hit == "stop" and labels[0].y_binary_60m == 0
    assert labels[0].entry_price == 100.0  # close of the bar that closed before the event


def test_events_of_one_snapshot_share_the_work() -> None:
    pts = [(0, 100.0), *minute_path([100.0 + math.sin(i / 5) * 15 for i in range(140)], start=60000)]
    evs = [LabelEvent(i, "BTCUSDT", T0 + 60_000, (1, -1)[i % 2], 10.0) for i in range(6)]
    labels, _ = label_events(evs, path_of(pts), SPEC)
    assert [lab.event_id for lab in labels] == list(range(6))
    assert labels[0]._replace(event_id=0) == labels[2]._replace(event_id=0)
    assert labels[0].y_return_60m == pytest.approx(-labels[1].y_return_60m)


def test_event_atr_and_row_conversion() -> None:
    assert event_atr({"atr_5m": 12.5}, None) == 12.5
    assert event_atr({"atr_5m": None}, {"price": 100.0, "atr_pct_5m": 0.01}) == pytest.approx(1.0)
    assert event_atr(None, {"price": 100.0}) is None
    ev = to_label_event({"id": 3, "symbol": "ETHUSDT", "ts_ms": 5, "side": "SHORT", "features": {"atr_5m": 2.0},
                         "inputs": {}})
    assert ev == LabelEvent(3, "ETHUSDT", 5, -1, 2.0)
    assert to_label_event({"id": 4, "symbol": "X", "ts_ms": 5, "side": None, "features": None}).side == 0
    assert LabelConfig().version == LabelConfig().version != LabelConfig(price_source="mark").version
    with pytest.raises(ValidationError):
        LabelConfig(target_atr=0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=0, max_size=700), st.sampled_from([1, 2, 3, 8, 64]), st.data())
def test_range_index_matches_numpy(values: list[float], block: int, data: st.DataObject) -> None:
    v = np.asarray(values, dtype=np.float64)
    idx = RangeIndex(v, block)
    n = len(values)
    qs = data.draw(st.lists(st.tuples(st.integers(0, n), st.integers(0, n), st.floats(-3.5, 3.5)), min_size=1,
                            max_size=40))
    a = np.asarray([min(x, y) for x, y, _ in qs])
    b = np.asarray([max(x, y) for x, y, _ in qs])
    thr = np.asarray([t for _, _, t in qs])
    got_max, got_first = idx.max(a, b), idx.first_ge(a, b, thr)
    for k, (lo, hi, t) in enumerate(zip(a, b, thr, strict=True)):
        assert got_max[k] == (v[lo:hi].max() if hi > lo else -math.inf)
        hits = np.flatnonzero(v[lo:hi] >= t)
        assert got_first[k] == (lo + int(hits[0]) if hits.size else hi)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, -1]), st.floats(0.2, 3.0))
def test_labels_match_brute_force_on_random_walks(seed: int, side: int, atr: float) -> None:
    rng = np.random.default_rng(seed)
    n = 3_000
    ts = np.cumsum(rng.integers(1, 4_000, n)).astype(np.int64)
    px = 100 + np.cumsum(rng.normal(0, 0.15, n))
    spec = LabelSpec(2.0, 1.0, 300_000)
    path = PricePath.from_prices("X", ts, px, "recording")
    t0 = int(ts[10]) + 1
    if t0 + spec.horizon_ms > ts[-1]:
        return
    lab = label_events([LabelEvent(1, "X", t0, side, atr)], path, spec)[0][0]
    assert lab.status == "ok"
    ref = brute_label(ts.tolist(), px.tolist(), t0, side, atr, spec)
    for k, v in ref.items():
        got = getattr(lab, k)
        assert got == pytest.approx(v) if isinstance(v, float) else got == v, k
