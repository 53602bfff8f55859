"""RiskGuardCore: system-wide rules, operator switches, persistence."""

from __future__ import annotations

import pytest

from arbray.clock import ManualClock
from arbray.runtime.risk_guard import DAY_MS, RiskGuardConfig, RiskGuardCore

pytestmark = pytest.mark.unit


def guard(**cfg: object) -> tuple[RiskGuardCore, ManualClock]:
    clock = ManualClock(10 * DAY_MS)
    return RiskGuardCore({"BTCUSDT": "ss0", "ETHUSDT": "ss1"}, RiskGuardConfig(**cfg), clock), clock  # type: ignore[arg-type]


def beat(g: RiskGuardCore, clock: ManualClock, src: str, sym: str, age_ms: int = 0) -> None:
    g.on_heartbeat(src, {sym: {"last_message_ms": clock.now_ms() - age_ms}})


def test_symbols_without_heartbeat_or_fresh_data_are_blocked_not_the_whole_system() -> None:
    g, clock = guard(stale_data_ms=5_000, heartbeat_timeout_ms=3_000)
    p = g.evaluate()
    assert p.state == "ACTIVE"
    assert dict(p.blocked_symbols) == {"BTCUSDT": "no heartbeat from ss0", "ETHUSDT": "no heartbeat from ss1"}
    beat(g, clock, "ss0", "BTCUSDT")
    g.on_heartbeat("ss1", {"ETHUSDT": {"last_message_ms": None}})
    assert dict(g.evaluate().blocked_symbols) == {"ETHUSDT": "no market data yet"}
    beat(g, clock, "ss1", "ETHUSDT", age_ms=6_000)
    assert dict(g.evaluate().blocked_symbols) == {"ETHUSDT": "market data 6000 ms old"}
    clock.set(clock.now_ms() + 3_001)  # ss0 falls silent
    assert "BTCUSDT" in dict(g.evaluate().blocked_symbols)


def test_replays_do_not_require_wall_clock_freshness() -> None:
    g, _ = guard(require_fresh_data=False)
    g.on_heartbeat("ss0", {"BTCUSDT": {"last_message_ms": None}})
    g.on_heartbeat("ss1", {"ETHUSDT": {"last_message_ms": 0}})
    assert g.evaluate().blocked_symbols == ()


def test_switches_block_halt_flatten_once_and_resume() -> None:
    g, _ = guard()
    g.command("block_new", "maintenance", "api:ops")
    p = g.evaluate()
    assert p.state == "REDUCING" and p.reasons == ("block_new: block-new: maintenance",)
    g.command("emergency_close", "flash crash", "api:ops")
    p = g.evaluate()
    assert p.state == "HALTED" and p.flatten_seq == 1
    assert g.evaluate().flatten_seq == 1  # flatten once per command, not per evaluation
    g.command("resume", "", "api:ops")
    p = g.evaluate()
    assert p.state == "ACTIVE" and p.flatten_seq == 1
    assert [h.get("event") for h in g.history if "event" in h] == [
        "command:block_new", "command:emergency_close", "command:resume"]


def test_portfolio_daily_loss_halts_until_the_next_utc_day() -> None:
    g, clock = guard(daily_loss_limit_r=-3.0)
    now = clock.now_ms()
    for _ in range(3):
        g.on_trade_closed("s", -1.0, now)
    assert g.evaluate().state == "HALTED"
    clock.set(now + DAY_MS)
    assert g.evaluate().state == "ACTIVE"


def test_venue_errors_in_a_window_reduce() -> None:
    g, clock = guard(max_venue_errors=3, venue_error_window_ms=10_000)
    for _ in range(3):
        g.on_venue_error("timeout")
    assert g.evaluate().state == "REDUCING"
    clock.set(clock.now_ms() + 10_001)
    assert g.evaluate().state == "ACTIVE"


def test_kill_persists_and_ends_when_the_strategy_is_resumed_in_the_journal() -> None:
    g, _ = guard()
    g.kill("eager", "runaway", "api:ops")
    state = g.to_state()
    restored, _ = guard()
    restored.from_state(state)
    assert dict(restored.evaluate().killed) == {"eager": "runaway"}
    assert not restored.on_resumed("eager", state["killed_ms"]["eager"] - 1)  # a resume before the kill
    assert restored.on_resumed("eager", state["killed_ms"]["eager"] + 1)
    assert restored.evaluate().killed == ()
