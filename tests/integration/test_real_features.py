"""Features on real recordings equal brute-force recomputation at every evaluation time."""

from __future__ import annotations

import csv
import gzip
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from arbray.features.snapshot import FeatureSnapshot
from arbray.replay.engine import ReplayEngine
from arbray.replay.readers import open_input
from tests.unit.features import brute

pytestmark = pytest.mark.integration
MIN = 60_000


def raw_trades(files: list[Path]) -> list[tuple[int, Decimal, Decimal, bool]]:
    out = []
    for f in files:
        with gzip.open(f, "rb") as fh:
            for line in fh:
                obj = orjson.loads(line.partition(b" ")[2])
                d = obj.get("data", {})
                if d.get("e") == "trade":
                    out.append((d["T"], Decimal(d["p"]), Decimal(d["q"]), d["m"]))
    return out


def replay(files: list[Path], every_ms: int = 15_000) -> list[FeatureSnapshot]:
    return [s for s, _ in replay_counting(files, every_ms)]


def replay_counting(files: list[Path], every_ms: int = 15_000) -> list[tuple[FeatureSnapshot, int]]:
    """Snapshots with the number of trades the engine had ingested when each was taken.

    A snapshot at B covers what had arrived when the first message with time >= B came in; a
    trade stamped before B that arrives after that (another stream ran ahead) is counted in later
    windows at its true time — as in live trading.
    """
    out: list[tuple[FeatureSnapshot, int]] = []
    engine: ReplayEngine

    def keep(s: FeatureSnapshot) -> None:
        out.append((s, engine.state.symbols[s.symbol].stats["trades"]))

    engine = ReplayEngine(every_ms, keep)
    engine.run([open_input(f, every_ms) for f in files])
    return out


@pytest.mark.parametrize("session", [("btcusdt_20240808.gz",), ("ethusdt_20240718.gz", "ethusdt_20240719.gz")])
def test_windows_equal_brute_force_on_real_trades(real_data: Path, session: tuple[str, ...]) -> None:
    files = [real_data / "hftbacktest" / "usdm" / f for f in session]
    all_trades = raw_trades(files)
    snaps = replay_counting(files)
    assert len(snaps) > 20
    late = 0
    for s, ingested in snaps:
        t = s.ts_ms
        trades = all_trades[:ingested]
        late += sum(1 for x in all_trades[ingested:] if x[0] < t)
        for name, minutes in (("5m", 5), ("15m", 15), ("30m", 30), ("1h", 60), ("4h", 240), ("24h", 1440)):
            w = [x for x in trades if t - minutes * MIN <= x[0] < t]
            cvd = sum((q if not m else -q for _, _, q, m in w), Decimal(0))
            usd = sum((p * q if not m else -p * q for _, p, q, m in w), Decimal(0))
            assert getattr(s, f"cvd_{name}") == pytest.approx(float(cvd), abs=1e-9)
            assert getattr(s, f"cvd_usd_{name}") == pytest.approx(float(usd), rel=1e-12, abs=1e-6)
        w30 = [x for x in trades if t - 30 * MIN <= x[0] < t]
        vol = sum((q for _, _, q, _ in w30), Decimal(0))
        assert s.vwap_30m == pytest.approx(float(sum((p * q for _, p, q, _ in w30), Decimal(0)) / vol), rel=1e-13)
        w1 = [x for x in trades if t - MIN <= x[0] < t]
        assert s.buy_vol_1m == pytest.approx(float(sum((q for _, _, q, m in w1 if not m), Decimal(0))), abs=1e-9)
        assert s.sell_vol_1m == pytest.approx(float(sum((q for _, _, q, m in w1 if m), Decimal(0))), abs=1e-9)
        assert s.trade_count_1m == len(w1)
        qs = sorted(q for ts, _, q, _ in trades if t - 1440 * MIN <= ts < t)
        if len(qs) >= 100:
            assert s.p95_qty_24h == float(qs[int(len(qs) * 0.95)])
            assert s.p99_qty_24h == float(qs[int(len(qs) * 0.99)])
        else:
            assert s.p99_qty_24h is None
    print(f"\n{session[0]}: {len(snaps)} snapshots, {late} late trade-snapshot pairs")


def test_atr_on_real_trades_equals_textbook(real_data: Path) -> None:
    """Two hours of real BTCUSDT trades (tardis) → 5m bars → Wilder ATR(14), independently."""
    path = real_data / "nautilus_trader" / "tardis_binance-futures_BTCUSDT_trades_2020-02-22.csv.gz"
    with gzip.open(path, "rt") as fh:
        rows = list(csv.DictReader(fh))
    trades = [(int(r["timestamp"]) // 1000, float(r["price"])) for r in rows]
    snaps = replay([path], every_ms=5 * MIN)
    last = snaps[-1]
    bars = brute.bars(trades, 5 * MIN)
    closed = [b for b in bars if b[0] + 5 * MIN <= last.ts_ms]
    expected = brute.wilder_atr(closed, 14)
    assert expected is not None and len(closed) >= 20
    assert last.atr_5m == pytest.approx(expected, rel=1e-12)
    assert last.atr_pct_5m == pytest.approx(expected / last.price)
    # ATR becomes available exactly when the 14th 5m bar closes, not before
    first = next(s for s in snaps if s.atr_5m is not None)
    assert len([b for b in bars if b[0] + 5 * MIN <= first.ts_ms]) == 14
