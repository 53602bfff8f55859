"""One test per risk rule: the state change, its reason, and what is still allowed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from arbray.clock import ManualClock
from arbray.risk.rules import MINUTE_MS, RiskConfig, RiskEngine, TradingState

pytestmark = pytest.mark.unit
T0 = 1_700_000_000_000


def engine(**cfg: float) -> tuple[RiskEngine, ManualClock]:
    clock = ManualClock(T0)
    r = RiskEngine(RiskConfig(**cfg), clock)  # type: ignore[arg-type]
    r.on_data(T0)
    r.on_balance(10_000.0, 200.0)
    return r, clock


def assert_only_reducing_allowed(r: RiskEngine) -> None:
    assert r.allows("new", 1_000.0)[0] is False
    assert r.allows("reduce") == (True, None)
    assert r.allows("cancel") == (True, None)


def test_active_by_default() -> None:
    r, _ = engine()
    d = r.evaluate()
    assert d.state == TradingState.ACTIVE and d.reasons == () and not d.close_all
    assert r.allows("new", 1_000.0) == (True, None)


def test_daily_loss_halts_and_closes_all() -> None:
    r, _ = engine()
    for _ in range(2):
        r.on_close("p", -2.0)
    assert r.evaluate().state == TradingState.ACTIVE
    r.on_close("p", -1.5)  # −5.5R today
    d = r.evaluate()
    assert d.state == TradingState.HALTED and d.close_all
    assert d.reasons[0].startswith("daily_loss:")
    assert_only_reducing_allowed(r)


def test_daily_loss_resets_on_the_next_utc_day() -> None:
    r, clock = engine()
    r.on_close("p", -6.0)
    assert r.evaluate().state == TradingState.HALTED
    clock.set((T0 // 86_400_000 + 1) * 86_400_000 + 1)
    r.on_data(clock.now_ms())
    assert r.evaluate().state == TradingState.ACTIVE


def test_consecutive_losses_pause_sixty_minutes() -> None:
    r, clock = engine(daily_loss_limit_r=-50)
    for _ in range(5):
        r.on_close("p", -0.5)
    d = r.evaluate()
    assert d.state == TradingState.REDUCING and not d.close_all
    assert d.reasons[0].startswith("consecutive_losses:")
    assert_only_reducing_allowed(r)
    clock.set(T0 + 60 * MINUTE_MS)
    r.on_data(clock.now_ms())
    assert r.evaluate().state == TradingState.ACTIVE


def test_a_win_resets_the_loss_streak() -> None:
    r, _ = engine(daily_loss_limit_r=-50)
    for pnl in (-1, -1, -1, -1, 0.5, -1):
        r.on_close("p", pnl)
    assert r.evaluate().state == TradingState.ACTIVE


def test_stale_data_blocks_new_entries() -> None:
    r, clock = engine()
    clock.set(T0 + 30_001)
    d = r.evaluate()
    assert d.state == TradingState.REDUCING and d.reasons == ("stale_data: market data older than 30000 ms",)
    assert_only_reducing_allowed(r)
    r.on_data(T0 + 30_000)
    assert r.evaluate().state == TradingState.ACTIVE


def test_balance_below_two_r_rejects() -> None:
    r, _ = engine()
    r.on_balance(390.0, 200.0)
    d = r.evaluate()
    assert d.state == TradingState.REDUCING and d.reasons[0].startswith("low_balance:")
    assert_only_reducing_allowed(r)


def test_hold_time_alert_then_force_close() -> None:
    r, clock = engine()
    r.on_position("p1", T0, 10_000.0)
    clock.set(T0 + 45 * MINUTE_MS)
    r.on_data(clock.now_ms())
    d = r.evaluate()
    assert d.hold_alerts == ("p1",) and d.force_close == () and d.state == TradingState.ACTIVE
    clock.set(T0 + 70 * MINUTE_MS)
    r.on_data(clock.now_ms())
    d = r.evaluate()
    assert d.force_close == ("p1",) and d.hold_alerts == ()


def test_max_notional_per_order_and_total() -> None:
    r, _ = engine(max_order_notional=100_000, max_total_notional=150_000)
    assert r.allows("new", 100_001.0) == (False, "max_order_notional: 100001 > 100000")
    r.on_position("p1", T0, 100_000.0)
    ok, why = r.allows("new", 60_000.0)
    assert not ok and why is not None and why.startswith("max_total_notional:")
    assert r.evaluate().state == TradingState.ACTIVE  # per-order limits refuse orders, not the state
    r.on_position("p2", T0, 60_000.0)  # e.g. a fill beyond the limit
    d = r.evaluate()
    assert d.state == TradingState.REDUCING and d.reasons[0].startswith("total_notional:")
    assert_only_reducing_allowed(r)


def test_order_submit_rate() -> None:
    r, clock = engine(max_orders_per_window=3, order_rate_window_ms=1_000)
    for _ in range(3):
        r.on_submit()
    d = r.evaluate()
    assert d.state == TradingState.REDUCING and d.reasons[0].startswith("order_rate:")
    assert_only_reducing_allowed(r)
    clock.set(T0 + 1_000)
    r.on_data(clock.now_ms())
    assert r.evaluate().state == TradingState.ACTIVE


def test_manual_kill_switch_halts_and_resume_clears_it() -> None:
    r, _ = engine()
    r.kill()
    d = r.evaluate()
    assert d.state == TradingState.HALTED and d.close_all and d.reasons == ("kill_switch: manual kill switch",)
    assert_only_reducing_allowed(r)
    r.resume()
    assert r.evaluate().state == TradingState.ACTIVE


def test_manual_block_new() -> None:
    r, _ = engine()
    r.set_block_new(True)
    d = r.evaluate()
    assert d.state == TradingState.REDUCING and not d.close_all
    assert_only_reducing_allowed(r)
    assert [h[1] for h in r.history] == ["REDUCING"]


def test_most_severe_rule_wins_and_all_reasons_are_listed() -> None:
    r, clock = engine()
    r.set_block_new(True)
    r.kill()
    clock.set(T0 + 60_000)
    d = r.evaluate()
    assert d.state == TradingState.HALTED
    assert [x.split(":")[0] for x in d.reasons] == ["kill_switch", "stale_data", "block_new"]


def test_config_cross_field_rules() -> None:
    with pytest.raises(ValidationError, match="force close must come after"):
        RiskConfig(hold_alert_ms=70 * MINUTE_MS, hold_force_close_ms=45 * MINUTE_MS)


def test_engine_requires_an_injected_clock() -> None:
    with pytest.raises(ValueError, match="clock"):
        RiskEngine(RiskConfig())
