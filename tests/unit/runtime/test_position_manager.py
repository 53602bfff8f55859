"""The runtime's in-process pipeline (SymbolState → scoring → PositionManager) equals the backtest.

Parity by construction: the same trades and snapshots reach the same ``Trader`` in the same order,
whether from a replay (backtest) or from live sinks and numbered items (runtime).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from arbray.backtest.engine import Backtest, BacktestConfig
from arbray.backtest.stats import trade_record
from arbray.clock import ManualClock
from arbray.execution.trader import TradingConfig
from arbray.features.snapshot import FeatureSnapshot
from arbray.marketdata.parser import BinanceParser
from arbray.replay.readers import Record
from arbray.runtime.journal import decode_item, encode_item
from arbray.runtime.position_manager import (
    BoundaryItem,
    Item,
    Permission,
    PermissionItem,
    PositionManagerConfig,
    PositionManagerCore,
    Sequencer,
    TradesItem,
    replay,
)
from arbray.runtime.scoring import ScoringCore
from arbray.runtime.strategies import LiveStrategy, live_uuid
from arbray.runtime.symbol_state import SymbolStateConfig, SymbolStateCore, TradeSlice
from arbray.scoring.presets import load_presets
from tests.unit.backtest.synth import synth_trades

pytestmark = pytest.mark.unit


def agg_records(symbol: str, seed: int, hours: int = 3, per_s: int = 5) -> list[Record]:
    ts, px, qty, sell = synth_trades(hours=hours, per_s=per_s, seed=seed)
    out: list[Record] = []
    for k in range(ts.shape[0]):
        obj = {"e": "aggTrade", "E": int(ts[k]) + 3, "s": symbol, "a": k + 1, "p": f"{px[k]:.1f}",
               "q": f"{qty[k]:.3f}", "f": k, "l": k, "T": int(ts[k]), "m": bool(sell[k])}
        out.append((int(ts[k]), k, (obj, int(ts[k]) * 1_000_000 + 5_000_000, None)))
    return out


class Pipeline:
    """SymbolState outputs numbered per symbol, scored at each boundary, sequenced into the PM."""

    def __init__(self, symbols: list[str], strategies: list[Any], ordering: str) -> None:
        live = [LiveStrategy(c.strategy_id, live_uuid(c.strategy_id), "running", c, 10_000.0, 10_000.0)
                for c in strategies]
        self.pm = PositionManagerCore("t1", PositionManagerConfig(ordering=ordering, trading=TradingConfig()), live)
        self.log: list[Item] = [PermissionItem(Permission("ACTIVE"))]
        self.pm.apply(self.log[0])
        self.scoring = ScoringCore(strategies)
        self.seq = dict.fromkeys(symbols, 0)
        self.seqr = Sequencer(symbols, ordering)  # type: ignore[arg-type]
        self.outputs: list[Any] = []
        self.clock = ManualClock(0)
        self.core = SymbolStateCore(symbols, self, SymbolStateConfig(timer_boundaries=False), self.clock)

    def _push(self, item: TradesItem | BoundaryItem) -> None:
        self.seqr.push(item)
        for ready in self.seqr.ready():
            self.log.append(ready)
            self.outputs.append(self.pm.apply(ready))

    def trades(self, batch: TradeSlice) -> None:
        self.seq[batch.symbol] += 1
        self._push(TradesItem(batch.symbol, self.seq[batch.symbol], batch))

    def boundary(self, snap: FeatureSnapshot, extras: dict[str, float | None], trigger_recv_ns: int) -> None:
        _, actionable = self.scoring.score(snap, extras)
        self.seq[snap.symbol] += 1
        self._push(BoundaryItem(snap.symbol, self.seq[snap.symbol], snap, tuple(actionable), trigger_recv_ns))

    def run(self, records: Iterator[Record]) -> None:
        parser = BinanceParser(self.core, self.core.rejects)
        for _, _, payload in records:
            assert isinstance(payload, tuple)
            obj, recv_ns, hint = payload
            self.clock.set(recv_ns // 1_000_000)
            parser.feed_obj(obj, recv_ns, hint)
            self.core.tick()


def _merged(*streams: list[Record]) -> list[Record]:
    return sorted((r for s in streams for r in s), key=lambda r: (r[0], r[1]))


def _backtest(records: list[Record], strategies: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    bt = Backtest(strategies, BacktestConfig())
    res = bt.run([iter(records)])
    last_b = max(s["ts_ms"] for s in res.signals) if res.signals else 0
    return res.signals, [trade_record(m) for m in res.machines()], last_b


def _key_trade(t: dict[str, Any]) -> tuple[Any, ...]:
    return (t["strategy_id"], t["symbol"], t["entry_ts_ms"], t["exit_ts_ms"], t["exit_reason"],
            round(t["entry_price"], 8), round(t["exit_price"], 8), round(t["qty"], 8), round(t["net_r"], 9))


@pytest.mark.parametrize("ordering", ["arrival", "boundary"])
def test_single_symbol_runtime_equals_backtest(ordering: str) -> None:
    strategies = [c for c in load_presets() if "BTCUSDT" in c.applies_to]
    recs = agg_records("BTCUSDT", seed=3)
    signals, trades, _ = _backtest(recs, strategies)
    p = Pipeline(["BTCUSDT"], strategies, ordering)
    p.run(iter(recs))
    out_signals = [s for o in p.outputs for s in o.signals]
    out_trades = [t.detail for o in p.outputs for t in o.trades]
    assert trades, "the synthetic session must trade for the comparison to mean anything"
    final_b = max(s.ts_ms for s in out_signals) if out_signals else 0
    bt_sig = [(s["ts_ms"], s["strategy_id"], s["side"], s["action"]) for s in signals if s["ts_ms"] <= final_b]
    rt_sig = [(s.ts_ms, s.strategy_id, s.side, s.action) for s in out_signals]
    assert len(bt_sig) == len(rt_sig)
    assert [x[0] for x in bt_sig] == [x[0] for x in rt_sig]
    assert [x[2:] for x in bt_sig] == [x[2:] for x in rt_sig]
    horizon = p.pm.last_boundary["BTCUSDT"]  # boundary ordering applies trades only up to the last boundary
    closed_rt = {_key_trade(t) for t in out_trades if t is not None and t["exit_ts_ms"] < horizon}
    closed_bt = {_key_trade(t) for t in trades if t["exit_ts_ms"] < horizon}
    assert closed_rt == closed_bt


def test_two_symbols_in_boundary_order_equal_backtest_even_for_shared_accounts() -> None:
    strategies = [c for c in load_presets() if c.strategy_id in ("v51_baseline", "v53", "BTC_CVD15mx1h_TPbalanced")]
    btc = agg_records("BTCUSDT", seed=5, hours=2)
    eth = agg_records("ETHUSDT", seed=6, hours=2)
    merged = _merged(btc, eth)
    _, trades, _ = _backtest(merged, strategies)
    p = Pipeline(["BTCUSDT", "ETHUSDT"], strategies, "boundary")
    p.run(iter(merged))
    out_trades = [t.detail for o in p.outputs for t in o.trades]
    horizon = min(s.next_b or 0 for s in p.core.symbols.values()) - 15_000
    assert {_key_trade(t) for t in out_trades if t is not None and t["exit_ts_ms"] < horizon} == {
        _key_trade(t) for t in trades if t["exit_ts_ms"] < horizon}
    assert trades


def test_replaying_the_input_log_rebuilds_the_same_state() -> None:
    strategies = [c for c in load_presets() if "BTCUSDT" in c.applies_to]
    p = Pipeline(["BTCUSDT"], strategies, "arrival")
    recs = agg_records("BTCUSDT", seed=3, hours=2)
    p.run(iter(recs))
    live = list(p.pm.live.values())
    fresh = PositionManagerCore("t1", p.pm.config, live)
    rows = [encode_item(k + 1, item, 0) for k, item in enumerate(p.log)]  # through the input log's encoding
    fresh.replaying = True  # as the service replays: the paper venue still takes every order (it is state)
    replay(fresh, [decode_item(r) for r in rows])
    fresh.replaying = False
    assert fresh.accounts() == p.pm.accounts()
    assert fresh.positions() == p.pm.positions()
    assert fresh.stream_positions() == p.pm.stream_positions()
    for sid, ex in p.pm.trader.executors.items():
        assert fresh.trader.executors[sid].state() == ex.state()


def test_duplicates_and_out_of_order_items_change_nothing() -> None:
    strategies = [c for c in load_presets() if "BTCUSDT" in c.applies_to][:4]
    p = Pipeline(["BTCUSDT"], strategies, "arrival")
    p.run(iter(agg_records("BTCUSDT", seed=3, hours=2)))
    items = [i for i in p.log if isinstance(i, TradesItem | BoundaryItem)]
    live = list(p.pm.live.values())
    fresh = PositionManagerCore("t1", p.pm.config, live)
    fresh.apply(PermissionItem(Permission("ACTIVE")))
    seq = Sequencer(["BTCUSDT"], "arrival")
    rng = np.random.default_rng(0)
    k = 0
    while k < len(items):  # deliver in shuffled windows of 5 with every window sent twice
        window = items[k:k + 5]
        for idx in list(rng.permutation(len(window))) * 2:
            seq.push(window[idx])
        for ready in seq.ready():
            fresh.apply(ready)
        k += 5
    assert seq.duplicates == len(items)
    assert fresh.accounts() == p.pm.accounts()
    # a resent trade batch (same trades, new sequence number) is dropped by trade id
    batch = next(i for i in items if isinstance(i, TradesItem))
    fresh.apply(TradesItem("BTCUSDT", 10**9, batch.batch))
    assert fresh.counters["duplicate_trades_dropped"] == len(batch.batch)
