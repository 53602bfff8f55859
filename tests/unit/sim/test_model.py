"""The market model and its recording: determinism, the depth chain, book vs bookTicker, funding,
liquidations in a crash and the alt's beta to BTC."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from arbray.sim.model import HOUR_MS, MarketModelConfig
from arbray.sim.recording import generate

pytestmark = pytest.mark.unit


def _messages(path: Path) -> list[Any]:
    with gzip.open(path, "rb") as fh:
        return [orjson.loads(line.partition(b" ")[2]) for line in fh]


def test_same_seed_gives_a_byte_identical_file(tmp_path: Path) -> None:
    cfg = MarketModelConfig(symbols=("BTCUSDT", "ETHUSDT"), hours=0.01, seed=7, rate_scale=0.3)
    generate(cfg, tmp_path / "a.gz")
    generate(cfg, tmp_path / "b.gz")
    generate(cfg.model_copy(update={"seed": 8}), tmp_path / "c.gz")
    a = (tmp_path / "a.gz").read_bytes()
    assert a == (tmp_path / "b.gz").read_bytes()
    assert a != (tmp_path / "c.gz").read_bytes()


def test_depth_chain_is_gap_free_and_the_book_matches_book_ticker(tmp_path: Path) -> None:
    cfg = MarketModelConfig(symbols=("BTCUSDT", "ETHUSDT"), hours=0.02, seed=3)
    generate(cfg, tmp_path / "s.gz")
    books: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    snap_id: dict[str, int] = {}
    last_u: dict[str, int] = {}
    ticker: dict[str, dict[str, Any]] = {}
    checked = 0
    for msg in _messages(tmp_path / "s.gz"):
        if "lastUpdateId" in msg:
            sym = msg["symbol"]
            books[sym] = ({p: float(q) for p, q in msg["bids"]}, {p: float(q) for p, q in msg["asks"]})
            snap_id[sym] = msg["lastUpdateId"]
            continue
        d = msg["data"]
        if d["e"] == "bookTicker":
            assert d["u"] >= ticker.get(d["s"], {"u": 0})["u"]
            ticker[d["s"]] = d
        elif d["e"] == "depthUpdate":
            sym = d["s"]
            if sym in last_u:
                assert d["pu"] == last_u[sym] and d["U"] == last_u[sym] + 1
            else:
                assert d["U"] <= snap_id[sym] <= d["u"]
            last_u[sym] = d["u"]
            bids, asks = books[sym]
            for side, levels in ((bids, d["b"]), (asks, d["a"])):
                for p, q in levels:
                    if float(q) == 0.0:
                        side.pop(p, None)
                    else:
                        side[p] = float(q)
            bb = max(bids, key=float)
            ba = min(asks, key=float)
            assert float(bb) < float(ba)
            t = ticker[sym]
            assert t["u"] <= d["u"]
            assert (t["b"], float(t["B"]), t["a"], float(t["A"])) == (bb, bids[bb], ba, asks[ba])
            checked += 1
    assert checked > 100 and set(last_u) == {"BTCUSDT", "ETHUSDT"}


def test_funding_settles_every_eight_hours(tmp_path: Path) -> None:
    cfg = MarketModelConfig(hours=16.5, step_ms=5000, rate_scale=0.003, seed=2, max_levels=40,
                            refill_levels=2, vol_per_min=0.0002)
    model, _ = generate(cfg, tmp_path / "f.txt")
    times = [t for t, _ in model.stats["BTCUSDT"].funding]
    assert len(times) == 2
    assert all(t % (8 * HOUR_MS) == 0 for t in times)
    assert np.all(np.diff(times) == 8 * HOUR_MS)
    marks = [m["data"] for m in _messages_plain(tmp_path / "f.txt") if m.get("stream", "").endswith("@markPrice@1s")]
    next_times = {d["T"] for d in marks}
    assert sorted(next_times) == [*times, times[-1] + 8 * HOUR_MS]


def _messages_plain(path: Path) -> list[Any]:
    with path.open("rb") as fh:
        return [orjson.loads(line.partition(b" ")[2]) for line in fh]


def test_a_crash_produces_liquidations(tmp_path: Path) -> None:
    cfg = MarketModelConfig(hours=0.12, initial_regime="crash", crash_mean_minutes=10_000, rate_scale=0.2,
                            seed=5)
    model, _ = generate(cfg, tmp_path / "c.gz")
    st = model.stats["BTCUSDT"]
    forced = [m["data"] for m in _messages(tmp_path / "c.gz") if m.get("stream") == "btcusdt@forceOrder"]
    assert st.liquidations > 0 and len(forced) == st.force_orders > 0
    assert all(d["o"]["S"] == "SELL" for d in forced)
    assert st.open_interest[-1][1] < cfg.spec("BTCUSDT").open_interest


def test_alt_returns_follow_btc_with_the_configured_beta(tmp_path: Path) -> None:
    cfg = MarketModelConfig(symbols=("BTCUSDT", "ETHUSDT"), hours=2, step_ms=1000, rate_scale=0.01, seed=11,
                            refill_levels=4, calm_to_crash_per_hour=0.0)
    generate(cfg, tmp_path / "b.gz")
    mids: dict[str, dict[int, float]] = {"BTCUSDT": {}, "ETHUSDT": {}}
    for m in _messages(tmp_path / "b.gz"):
        d = m.get("data")
        if d and d["e"] == "bookTicker":
            mids[d["s"]][d["T"] // 60_000] = (float(d["b"]) + float(d["a"])) / 2
    minutes = sorted(set(mids["BTCUSDT"]) & set(mids["ETHUSDT"]))
    btc = np.diff(np.log([mids["BTCUSDT"][k] for k in minutes]))
    eth = np.diff(np.log([mids["ETHUSDT"][k] for k in minutes]))
    beta = float(np.cov(btc, eth)[0, 1] / np.var(btc, ddof=1))
    assert abs(beta - cfg.spec("ETHUSDT").beta) < 0.25
    assert np.corrcoef(btc, eth)[0, 1] > 0.6
