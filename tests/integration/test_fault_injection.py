"""Injected faults in a real recording: a resync or a counted reject, never a wrong book or a crash."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from arbray.features.snapshot import FeatureSnapshot
from arbray.replay.engine import ReplayEngine, ReplaySummary
from arbray.replay.readers import open_input

pytestmark = pytest.mark.integration


def lines_of(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as fh:
        return fh.read().splitlines(keepends=True)


def run(
    tmp_path: Path, lines: list[bytes], name: str = "btcusdt_20240808.gz"
) -> tuple[ReplaySummary, list[FeatureSnapshot]]:
    f = tmp_path / name
    with gzip.open(f, "wb") as fh:
        fh.writelines(lines)
    snaps: list[FeatureSnapshot] = []
    summary = ReplayEngine(15_000, snaps.append).run([open_input(f, 15_000)])
    return summary, snaps


@pytest.fixture(scope="module")
def clean(real_data: Path) -> list[bytes]:
    return lines_of(real_data / "hftbacktest" / "usdm" / "btcusdt_20240808.gz")


def depth_indices(lines: list[bytes]) -> list[int]:
    return [i for i, ln in enumerate(lines) if b"depthUpdate" in ln]


def test_dropped_depth_message_resyncs_and_clears_the_book(tmp_path: Path, clean: list[bytes]) -> None:
    ref_summary, ref = run(tmp_path, clean)
    k = depth_indices(clean)[len(depth_indices(clean)) // 2]
    summary, snaps = run(tmp_path, clean[:k] + clean[k + 1 :])
    assert summary.book_resyncs == {"BTCUSDT": 1} and ref_summary.book_resyncs == {"BTCUSDT": 0}
    broke = False
    for a, b in zip(ref, snaps, strict=True):
        if b.book_state == "resyncing":
            broke = True
            assert "book_resyncing" in b.quality and b.obi_10 is None  # no depth features from a broken book
        else:
            assert not broke and b == a  # before the fault, identical to the clean run
    assert broke


def test_duplicate_depth_and_trade_messages_are_counted_and_change_nothing(tmp_path: Path, clean: list[bytes]) -> None:
    _, ref = run(tmp_path, clean)
    j = next(i for i, ln in enumerate(clean) if b'"e":"trade"' in ln and i > 5000)
    k = next(i for i in depth_indices(clean) if i > j + 100)
    faulty = [*clean[: j + 1], clean[j], *clean[j + 1 : k + 1], clean[k], *clean[k + 1 :]]
    summary, snaps = run(tmp_path, faulty)
    assert summary.rejected["trade:duplicate_or_out_of_order_id"] == 1
    assert summary.book_resyncs == {"BTCUSDT": 0}
    assert snaps == ref


def test_malformed_and_hostile_lines_are_counted(tmp_path: Path, clean: list[bytes]) -> None:
    _, ref = run(tmp_path, clean)
    bad = [
        b"1723161255030314667 {this is not json\n",
        b"not-a-timestamp {}\n",
        b'1723161255030314667 {"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":1,'
        b'"p":"NaN","q":"1","m":true}}\n',
        b'1723161255030314667 {"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":1,'
        b'"p":"100","q":"-3","m":true}}\n',
        b'1723161255030314667 {"stream":"btcusdt@x","data":{"e":"mystery"}}\n',
    ]
    faulty = clean[:3000] + bad + clean[3000:]
    summary, snaps = run(tmp_path, faulty)
    assert summary.rejected == {
        "malformed_json": 2,
        "trade:nonpositive_or_nan_price": 1,
        "trade:nonpositive_or_nan_qty": 1,
        "unknown_event:mystery": 1,
    }
    assert snaps == ref
