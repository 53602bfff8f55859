"""The scan: ranking, shard equivalence, universe files and the synthetic generator round trip."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from arbray.screener.data import load_exchange_info, load_kline_dir
from arbray.screener.scan import References, rank, scan, score_shard, shards
from arbray.screener.synth import synthetic_universe, write_feather_universe

pytestmark = pytest.mark.unit


def test_ranked_and_explained() -> None:
    ranked, excluded = scan(synthetic_universe(40), "short_grid")
    assert excluded == [] and [r["rank"] for r in ranked] == list(range(1, 41))
    scores = [r["score"] for r in ranked]
    assert scores == sorted(scores, reverse=True)
    assert all(r["explanation"].startswith("GSS") for r in ranked)
    btc = next(r for r in ranked if r["symbol"] == "BTCUSDT")
    assert btc["factors"]["corr_btc"] == pytest.approx(1.0)


def test_ats_ranks_by_absolute_score() -> None:
    ranked, _ = scan(synthetic_universe(30), "ats_v2")
    mags = [abs(r["score"]) for r in ranked]
    assert mags == sorted(mags, reverse=True)
    assert all(r["mode"] == "v1" and "order_book" in r["missing"] for r in ranked)


def test_shards_give_the_same_result() -> None:
    u = synthetic_universe(50)
    refs = References.from_universe(u, 300)
    parts = shards(u, 3)
    assert len(parts) == 3 and sum(len(p) for p in parts) == 50
    merged, _ = rank([row for p in parts for row in score_shard(p, "short_grid", refs)])
    whole = scan(u, "short_grid")[0]
    # the same numbers up to summation order (panel size changes how numpy blocks its reductions)
    assert [r["symbol"] for r in merged] == [r["symbol"] for r in whole]
    assert [r["score"] for r in merged] == pytest.approx([r["score"] for r in whole], rel=1e-12)


def test_too_few_bars_are_excluded() -> None:
    ranked, excluded = scan(synthetic_universe(5, bars=200), "short_grid")
    assert ranked == [] and {r["excluded"] for r in excluded} == {"min_bars"}


def test_feather_round_trip_and_exchange_info(tmp_path: Path) -> None:
    u = synthetic_universe(6)
    write_feather_universe(tmp_path / "k", u)
    back = load_kline_dir(tmp_path / "k")
    assert [s.symbol for s in back] == sorted(s.symbol for s in u)
    assert back[0].taker_buy is not None and back[0].open_interest is not None
    info = {"symbols": [{"symbol": "BTCUSDT", "contractType": "PERPETUAL", "status": "TRADING"},
                        {"symbol": "ETHUSDT", "contractType": "CURRENT_QUARTER", "status": "TRADING"},
                        {"symbol": "SYN0002USDT", "contractType": "PERPETUAL", "status": "SETTLING"},
                        {"symbol": "SYN0003USDT", "contractType": "PERPETUAL", "status": "TRADING"}]}
    (tmp_path / "info.json").write_bytes(orjson.dumps(info))
    assert load_exchange_info(tmp_path / "info.json") == {"BTCUSDT", "SYN0003USDT"}
    (tmp_path / "list.json").write_bytes(orjson.dumps(["btcusdt"]))
    assert [s.symbol for s in load_kline_dir(tmp_path / "k", symbols=load_exchange_info(tmp_path / "list.json"))] \
        == ["BTCUSDT"]
