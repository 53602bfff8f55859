"""SymbolStateCore places boundaries and builds snapshots exactly as the replay engine does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arbray.clock import ManualClock
from arbray.features.snapshot import FeatureSnapshot
from arbray.marketdata.events import TradeBatch
from arbray.marketdata.parser import BinanceParser
from arbray.replay.engine import ReplayEngine
from arbray.replay.readers import open_input
from arbray.runtime.symbol_state import SymbolStateConfig, SymbolStateCore, TradeSlice

pytestmark = pytest.mark.unit

BUNDLED = Path(__file__).resolve().parents[3] / "arbray" / "data" / "btcusdt_20240719.gz"


class Collect:
    def __init__(self) -> None:
        self.snaps: list[FeatureSnapshot] = []
        self.batches: list[TradeSlice] = []
        self.order: list[str] = []

    def trades(self, batch: TradeSlice) -> None:
        self.batches.append(batch)
        self.order.append("t")

    def boundary(self, snap: FeatureSnapshot, extras: dict[str, float | None], trigger_recv_ns: int) -> None:
        self.snaps.append(snap)
        self.order.append("b")


def _feed_file(core: SymbolStateCore, path: Path, clock: ManualClock) -> None:
    parser = BinanceParser(core, core.rejects)
    for _, _, payload in open_input(path, 15_000):
        assert isinstance(payload, tuple)
        obj, recv_ns, hint = payload
        clock.set(recv_ns // 1_000_000)
        parser.feed_obj(obj, recv_ns, hint)
        core.tick()


def test_boundaries_and_snapshots_equal_the_replay_engine() -> None:
    expected: list[FeatureSnapshot] = []
    ReplayEngine(15_000, expected.append).run([open_input(BUNDLED, 15_000)])
    out, clock = Collect(), ManualClock(0)
    core = SymbolStateCore(["BTCUSDT"], out, SymbolStateConfig(timer_boundaries=False), clock)
    _feed_file(core, BUNDLED, clock)
    # the replay engine closes with one extra snapshot after the last message (end of file); a live
    # stream has no end, so every other snapshot must match field for field
    assert len(expected) == len(out.snaps) + 1
    assert [s.to_dict() for s in out.snaps] == [s.to_dict() for s in expected[:-1]]


def test_trades_leave_in_order_before_their_boundary_and_exactly_once() -> None:
    out, clock = Collect(), ManualClock(0)
    core = SymbolStateCore(["BTCUSDT"], out, SymbolStateConfig(timer_boundaries=False, batch_ms=50), clock)
    _feed_file(core, BUNDLED, clock)
    core.flush()
    ids = np.concatenate([b.trade_id for b in out.batches])
    assert ids.shape[0] == core.symbols["BTCUSDT"].features.stats["trades"]
    assert np.all(np.diff(ids) == 1)  # the bundled recording has no id gap
    # a batch handed out before boundary k holds only trades stamped before it
    b, t = 0, 0
    for item in out.order:
        if item == "b":
            b += 1
        else:
            if b < len(out.snaps):
                assert out.batches[t].ts_ms.max() < out.snaps[b].ts_ms
            t += 1
    assert len(out.batches) > len(out.snaps)  # batched between boundaries, not only at them


def test_trigger_level_flushes_at_once() -> None:
    out, clock = Collect(), ManualClock(1_000)
    core = SymbolStateCore(["BTCUSDT"], out, SymbolStateConfig(timer_boundaries=False, batch_ms=10_000), clock)
    sink = core.route("BTCUSDT")
    sink.on_trade(1_000, 100.0, 1.0, False, 1, "agg", 0)
    sink.on_trade(1_001, 100.5, 1.0, False, 2, "agg", 0)
    assert out.batches == []
    core.set_triggers("BTCUSDT", 99.0, 101.0)
    sink.on_trade(1_002, 101.0, 1.0, True, 3, "agg", 0)
    assert [len(b) for b in out.batches] == [3]


def test_quiet_symbol_gets_its_boundary_on_the_wall_clock() -> None:
    out, clock = Collect(), ManualClock(1_000)
    core = SymbolStateCore(["BTCUSDT"], out, SymbolStateConfig(every_ms=1_000, boundary_grace_ms=200), clock)
    core.route("BTCUSDT").on_trade(1_000, 100.0, 1.0, False, 1, "agg", 0)
    clock.set(2_100)
    core.tick()
    assert out.snaps == []
    clock.set(3_250)
    core.tick()
    assert [s.ts_ms for s in out.snaps] == [2_000, 3_000]
    core.route("BTCUSDT").on_trade(3_500, 100.0, 1.0, False, 2, "agg", 0)
    core.route("BTCUSDT").on_trade(4_000, 100.0, 1.0, False, 3, "agg", 0)
    assert [s.ts_ms for s in out.snaps] == [2_000, 3_000, 4_000]


def test_a_restart_re_emits_every_boundary_after_the_last_applied_one_from_the_journal() -> None:
    expected: list[FeatureSnapshot] = []
    ReplayEngine(15_000, expected.append).run([open_input(BUNDLED, 15_000)])
    out, clock = Collect(), ManualClock(0)
    core = SymbolStateCore(["BTCUSDT"], out, SymbolStateConfig(timer_boundaries=False), clock)
    _feed_file(core, BUNDLED, clock)
    core.flush()
    journal = TradeBatch(  # what the journal holds: every trade
        "BTCUSDT", np.concatenate([b.to_batch().rows for b in out.batches]), "agg")
    applied = expected[7].ts_ms  # the PositionManager had applied 8 boundaries when the SymbolState died
    again, clock2 = Collect(), ManualClock(0)
    core2 = SymbolStateCore(["BTCUSDT"], again, SymbolStateConfig(timer_boundaries=False), clock2)
    core2.warm_up("BTCUSDT", None, journal, last_boundary_ms=applied)
    ts = [s.ts_ms for s in again.snaps]
    assert ts == [s.ts_ms for s in expected[8:len(ts) + 8]] and len(ts) >= 10
    # trade-derived features equal the uninterrupted run's at every re-emitted boundary
    fields = ("cvd_5m", "cvd_usd_1h", "vwap_30m", "buy_vol_1m", "trade_count_1m", "p99_qty_24h", "price")
    for snap, ref in zip(again.snaps, expected[8:], strict=False):
        assert [getattr(snap, f) for f in fields] == [getattr(ref, f) for f in fields]


def test_boundaries_wait_while_trades_are_being_gap_filled() -> None:
    out, clock = Collect(), ManualClock(1_000)
    core = SymbolStateCore(["BTCUSDT"], out, SymbolStateConfig(every_ms=1_000, timer_boundaries=False), clock)
    pending = {"on": False}
    core.gap_pending = lambda symbol: pending["on"]
    sink = core.route("BTCUSDT")
    sink.on_trade(1_000, 100.0, 1.0, False, 1, "agg", 0)
    pending["on"] = True  # trade 2.. are missing; a later bookTicker must not close the window without them
    sink.on_book_ticker(10, 3_500, 99.0, 1.0, 101.0, 1.0, 0)
    assert out.snaps == []
    sink.on_trade(1_500, 100.0, 2.0, False, 2, "agg", 0)  # the REST fill
    sink.on_trade(2_500, 100.0, 3.0, True, 3, "agg", 0)
    pending["on"] = False
    sink.on_book_ticker(11, 3_600, 99.0, 1.0, 101.0, 1.0, 0)
    assert [(s.ts_ms, s.trade_count_1m) for s in out.snaps] == [(2_000, 2), (3_000, 3)]
