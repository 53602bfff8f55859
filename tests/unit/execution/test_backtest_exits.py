"""Every exit path with hand-computed R and fee values (1R = 10 000 × 2 % = 200 USDT).

Setup: BTCUSDT long at 50 000, ATR 50, sl_atr_multiplier 2 → risk distance 100, size
200 / 100 = 2.000 BTC; TP1 = 50 075 (0.75R), TP2 = 50 150 (1.5R); fees maker 2 bps, taker 5 bps.
Taker entry: 2 × 50 000 × 0.0005 = 50.00 USDT of fees.
"""

from __future__ import annotations

import pytest

from arbray.execution.account import Position
from arbray.execution.executor import StrategyRules
from arbray.execution.machine import ExecutionConfig, Phase
from tests.unit.execution.harness import SYM, TAKER, Harness

pytestmark = pytest.mark.unit


def opened() -> Harness:
    h = Harness(cfg=TAKER)
    assert h.signal(0) == "entry"
    h.trade(1, 50_000.0)
    m = h.machine
    assert m.phase == Phase.POSITION_OPEN
    assert (m.pos.qty, m.pos.avg_entry, m.sl) == (2.0, 50_000.0, 49_900.0)
    assert [(g.price, g.qty) for g in m.legs] == [(50_075.0, 1.0), (50_150.0, 1.0)]
    assert m.pos.fees == pytest.approx(50.0)
    return h


def closed(h: Harness) -> Position:
    assert not h.ex.machines, "position should be closed"
    return h.ex.account.closed[-1]


def test_tp1_then_tp2_is_tp() -> None:
    h = opened()
    h.trade(10, 50_100.0)  # strictly through TP1: maker fill 1.0 @ 50 075, fee 10.015
    m = h.machine
    assert m.tp1_done and m.sl == 50_000.0  # stop moved to break-even
    h.trade(20, 50_200.0)  # through TP2: maker fill 1.0 @ 50 150, fee 10.03
    p = closed(h)
    assert p.exit_reason == "tp"
    assert p.price_pnl == pytest.approx(75 + 150)
    assert p.fees == pytest.approx(50 + 10.015 + 10.03)
    assert p.net_pnl == pytest.approx(154.955)
    assert p.r(p.net_pnl) == pytest.approx(0.774775)
    assert h.ex.account.balance == pytest.approx(10_154.955)
    assert p.tp_maker_qty == 2.0


def test_sl_before_tp1_is_taker() -> None:
    h = opened()
    h.trade(10, 49_890.0)  # through the stop: cancel TPs, then taker 2.0 @ 49 890, fee 49.89
    p = closed(h)
    assert p.exit_reason == "sl"
    assert p.price_pnl == pytest.approx(-220.0)
    assert p.fees == pytest.approx(99.89)
    assert p.r(p.net_pnl) == pytest.approx(-1.59945)
    assert all(f.liquidity == "taker" for f in p.fills)


def test_sl_at_breakeven_after_tp1() -> None:
    h = opened()
    h.trade(10, 50_100.0)
    h.trade(20, 50_000.0)  # back to entry: break-even stop, taker 1.0 @ 50 000, fee 25
    p = closed(h)
    assert p.exit_reason == "sl_be"
    assert p.price_pnl == pytest.approx(75.0)
    assert p.fees == pytest.approx(50 + 10.015 + 25)
    assert p.r(p.net_pnl) == pytest.approx(-0.050075)


def test_fee_aware_breakeven_stop_sits_in_profit() -> None:
    h = Harness(cfg=ExecutionConfig(maker_entry=False, breakeven_offset_bps=10))
    h.signal(0)
    h.trade(1, 50_000.0)
    h.trade(10, 50_100.0)
    assert h.machine.sl == 50_050.0  # 50 000 × (1 + 10 bps)
    h.trade(20, 50_040.0)
    p = closed(h)
    assert p.exit_reason == "sl_be"
    assert p.price_pnl == pytest.approx(75 + 40)


def test_timeout_exits_maker_at_mid() -> None:
    h = Harness(rules=StrategyRules(timeout_ms=60_000), cfg=TAKER)
    h.signal(0)
    h.trade(1, 50_000.0)
    h.trade(60_001, 50_010.0)  # timeout: TPs cancelled, post-only sell at 50 010
    m = h.machine
    assert m.phase == Phase.TIMEOUT_PENDING
    h.trade(60_100, 50_020.0)  # strictly through: maker fill 2.0 @ 50 010, fee 20.004
    p = closed(h)
    assert p.exit_reason == "timeout"
    assert p.price_pnl == pytest.approx(20.0)
    assert p.fees == pytest.approx(50 + 20.004)


def test_timeout_falls_back_to_taker_after_grace() -> None:
    h = Harness(rules=StrategyRules(timeout_ms=60_000), cfg=ExecutionConfig(maker_entry=False, timeout_grace_ms=5_000))
    h.signal(0)
    h.trade(1, 50_000.0)
    h.trade(60_001, 50_010.0)
    h.trade(65_001, 50_005.0)  # grace over: cancel the maker exit, taker 2.0 @ 50 005, fee 50.005
    p = closed(h)
    assert p.exit_reason == "timeout"
    assert p.price_pnl == pytest.approx(10.0)
    assert p.fees == pytest.approx(100.005)
    assert "Phase.TIMEOUT_PENDING" not in str(h.machine.transitions)
    assert [t[1] for t in h.machine.transitions][-3:] == ["TIMEOUT_PENDING", "EXIT_TAKER", "CLOSED"]


def test_flip_closes_by_taker_and_reenters() -> None:
    h = opened()
    h.trade(5, 50_050.0)
    assert h.signal(10, side=-1, score=85.0) == "flip"  # ≥ flip_threshold 80
    p = closed_first(h)
    assert p.exit_reason == "flip"
    assert p.price_pnl == pytest.approx(100.0)  # taker 2.0 @ 50 050
    m = h.ex.machines[SYM]
    assert m.pos.side == -1 and h.ex.flips == 1


def closed_first(h: Harness) -> Position:
    return h.ex.account.closed[0]


def test_flip_respects_direction_restriction() -> None:
    h = Harness(rules=StrategyRules(direction="long_only"), cfg=TAKER)
    h.signal(0)
    h.trade(1, 50_000.0)
    assert h.signal(10, side=-1, score=90.0) == "flip"
    assert h.ex.account.closed[0].exit_reason == "flip"
    assert SYM not in h.ex.machines  # closed, but no short re-entry


def test_reverse_signal_below_flip_threshold_is_ignored() -> None:
    h = opened()
    assert h.signal(10, side=-1, score=79.0) == "busy"
    assert h.machine.phase == Phase.POSITION_OPEN


def test_tp_taker_fallback_after_trade_through_timeout() -> None:
    h = opened()
    h.trade(10, 50_075.0)  # touches TP1 without trading through: no maker fill, cross recorded
    h.trade(2_011, 50_080.0, qty=0.1)  # 2 s later (tp_timeout_ms): a 0.1 maker fill, then cancel + taker
    m = h.machine
    leg = m.legs[0]
    assert leg.fallback and leg.state == "done"
    assert m.tp1_done and m.phase == Phase.POSITION_OPEN
    assert (m.pos.tp_maker_qty, m.pos.tp_taker_qty) == pytest.approx((0.1, 0.9))
    # 0.1 × 75 + 0.9 × 80 price PnL realised so far; fees 50 + 0.1 × 50 075 × 2 bps + 0.9 × 50 080 × 5 bps
    assert m.pos.price_pnl == pytest.approx(7.5 + 72.0)
    assert m.pos.fees == pytest.approx(50 + 1.0015 + 22.536)


def test_cooldown_and_max_open_positions() -> None:
    h = Harness(rules=StrategyRules(cooldown_ms=60_000, max_open_positions=1), cfg=TAKER)
    h.signal(0)
    h.trade(1, 50_000.0)
    h.trade(2, 49_890.0)  # stopped out
    assert h.signal(30_000) == "cooldown"
    assert h.signal(61_000) == "entry"


def test_size_respects_step_and_min_notional() -> None:
    h = Harness(cfg=TAKER)
    assert h.signal(0, atr=33.0) == "entry"  # 200 / 66 = 3.0303… → 3.030 BTC
    assert h.machine.target == 3.03
    h2 = Harness(rules=StrategyRules(initial_balance=1.0), cfg=TAKER)
    assert h2.signal(0) == "below_min_size"  # 0.02 / 100 → 0.000 BTC


def test_tier_scales_size_but_not_r() -> None:
    h = Harness(cfg=TAKER)
    h.signal(0, tier="heavy")  # 1.5 × 2.0 BTC
    h.trade(1, 50_000.0)
    h.trade(2, 49_890.0)
    p = closed(h)
    assert p.entry_qty == 3.0 and p.risk_usd == 200.0
    assert p.r(p.price_pnl) == pytest.approx(-330.0 / 200.0)  # R is per 1R, the tier carries the size


def test_entry_respects_the_direction_restriction() -> None:
    h = Harness(rules=StrategyRules(direction="long_only"), cfg=TAKER)
    assert h.signal(0, side=-1) == "side_not_allowed"
    assert h.signal(1, side=1) == "entry"


def test_one_r_follows_the_balance() -> None:
    h = Harness(cfg=TAKER)
    h.ex.account.add_balance(5_000.0)  # 15 000 × 2 % = 300 → 3.0 BTC for a 100 stop
    h.signal(0)
    assert h.machine.pos.risk_usd == 300.0 and h.machine.target == 3.0
