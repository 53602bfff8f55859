"""Entry state-machine transitions, races, the paper fill model and crash-and-replay."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbray.clock import ManualClock
from arbray.execution.executor import StrategyExecutor, StrategyRules, replay
from arbray.execution.machine import ExecutionConfig, Phase
from arbray.execution.paper import PaperVenue, PaperVenueConfig
from arbray.execution.venue import Fill, Order, OrderUpdate
from tests.unit.execution.harness import SYM, TAKER, Harness

pytestmark = pytest.mark.unit


def phases(h: Harness) -> list[str]:
    return [p for _, p in h.machine.transitions]


def test_maker_entry_fills_fully() -> None:
    h = Harness()
    h.signal(0)  # no book: post-only buy one tick under the signal price, 49 999.9
    assert h.machine.phase == Phase.ENTRY_PENDING_MAKER
    h.trade(100, 49_999.0, qty=5.0)
    m = h.machine
    assert m.phase == Phase.POSITION_OPEN and m.pos.avg_entry == 49_999.9
    assert m.pos.entry_maker_qty == 2.0
    assert m.pos.fees == pytest.approx(2 * 49_999.9 * 0.0002)


def test_maker_entry_inside_spread_with_book() -> None:
    h = Harness()
    h.venue.set_book(SYM, [(49_999.0, 3.0)], [(50_001.0, 3.0)])
    h.signal(0, bid=49_999.0, ask=50_001.0)  # min(mid 50 000, bid + 1 tick) = 49 999.1
    assert h.venue.is_working("s1-BTCUSDT-1-EM")
    h.trade(10, 49_999.0, qty=5.0)
    assert h.machine.pos.avg_entry == 49_999.1


def test_partial_fill_then_timeout_then_taker_remainder() -> None:
    h = Harness()
    h.signal(0)
    h.trade(100, 49_999.0, qty=0.5)  # partial maker fill 0.5 @ 49 999.9
    assert h.machine.phase == Phase.ENTRY_PENDING_MAKER and h.machine.pos.qty == 0.5
    h.trade(4_000, 50_001.0, qty=0.01)  # entry_timeout_ms: cancel → slippage 0.2 bps ≤ 5 → taker 1.5 @ 50 001
    m = h.machine
    assert phases(h) == ["ENTRY_PENDING_MAKER", "ENTRY_CANCELING", "ENTRY_FALLBACK_TAKER", "POSITION_OPEN"]
    assert m.entry_timed_out and m.pos.qty == 2.0
    assert m.pos.avg_entry == pytest.approx((0.5 * 49_999.9 + 1.5 * 50_001.0) / 2)
    assert m.pos.fees == pytest.approx(0.5 * 49_999.9 * 0.0002 + 1.5 * 50_001.0 * 0.0005)


def test_timeout_beyond_slippage_cap_keeps_partial_fill() -> None:
    h = Harness()
    h.signal(0)
    h.trade(100, 49_999.0, qty=0.5)
    h.trade(4_000, 50_040.0, qty=0.01)  # 8 bps away > 5 bps cap: keep 0.5
    m = h.machine
    assert m.phase == Phase.POSITION_OPEN and m.pos.qty == 0.5
    assert [(g.qty) for g in m.legs] == [0.25, 0.25]


def test_timeout_without_fill_beyond_cap_expires() -> None:
    h = Harness()
    h.signal(0)
    h.trade(4_000, 50_100.0)
    assert h.ex.finished[-1].pos.exit_reason == "entry_expired"
    assert not h.ex.account.closed and h.ex.account.balance == 10_000.0


def test_post_only_reject_goes_to_taker_fallback() -> None:
    h = Harness(venue_cfg=PaperVenueConfig(latency_ms=10, slippage_bps=0.0))
    h.signal(0, bid=49_999.0, ask=50_001.0)  # maker buy at 49 999.1, arrives at t=10
    h.venue.set_book(SYM, [(49_998.0, 1.0)], [(49_999.0, 1.5), (49_999.5, 5.0)])  # the ask dropped under it
    h.tick(10)  # reject: post_only_would_cross → taker 2.0 walks the asks
    h.tick(20)
    m = h.machine
    assert phases(h)[:3] == ["ENTRY_PENDING_MAKER", "ENTRY_FALLBACK_TAKER", "POSITION_OPEN"]
    assert m.pos.avg_entry == pytest.approx((1.5 * 49_999.0 + 0.5 * 49_999.5) / 2)
    assert m.pos.entry_maker_qty == 0.0


def test_cancel_racing_a_fill_keeps_the_fill_and_sends_no_taker() -> None:
    h = Harness(venue_cfg=PaperVenueConfig(latency_ms=50, slippage_bps=0.0))
    h.signal(0)
    h.trade(60, 50_000.0)  # order arrives (t=50) and rests at 49 999.9
    h.tick(4_050)  # deadline: cancel sent, arrives at 4 100
    assert h.machine.phase == Phase.ENTRY_CANCELING
    h.trade(4_080, 49_990.0, qty=5.0)  # fills completely before the cancel lands
    h.tick(4_100)  # cancel_rejected (not working) → open with the full size, no taker
    m = h.machine
    assert m.phase == Phase.POSITION_OPEN and m.pos.qty == 2.0
    assert "s1-BTCUSDT-1-ET" not in m.orders


def test_tp_fill_racing_an_exit_cancel_is_not_closed_twice() -> None:
    h = Harness(cfg=TAKER, venue_cfg=PaperVenueConfig(latency_ms=50, slippage_bps=0.0))
    h.signal(0)
    h.trade(60, 50_000.0)
    h.trade(200, 50_000.0)  # TP orders arrive and rest
    h.trade(300, 49_880.0)  # SL: cancels sent (arrive 350)
    h.trade(320, 50_200.0, qty=5.0)  # both TPs fill before the cancels land
    h.tick(350)
    p = h.ex.account.closed[-1]
    assert p.exit_reason == "sl" and p.qty == 0.0 and p.exit_qty == 2.0  # the SL path, closed by the TP fills
    assert "s1-BTCUSDT-1-SL" not in h.ex.finished[-1].orders  # nothing left to take: no double close
    assert h.venue.position("s1", SYM) == 0.0


def test_queue_mode_waits_for_the_queue_ahead() -> None:
    v = PaperVenue(PaperVenueConfig(fill_model="queue"))
    fills: list[Fill] = []
    v.connect(lambda e: fills.append(e) if isinstance(e, Fill) else None)
    v.set_book(SYM, [(100.0, 3.0)], [(100.1, 1.0)])
    v.submit(Order("a", "acc", SYM, 1, 1.0, "limit", 100.0, post_only=True), 0)
    v.advance(SYM, 0)
    v.on_trade(SYM, 1, 100.0, 2.0)  # 3 ahead → 1 ahead, nothing for us
    assert not fills
    v.on_trade(SYM, 2, 100.0, 1.5)  # 1 ahead consumed, 0.5 for us
    v.on_trade(SYM, 3, 99.9, 4.0)  # through: the remaining 0.5
    assert [(f.qty, f.price, f.liquidity) for f in fills] == [(0.5, 100.0, "maker"), (0.5, 100.0, "maker")]


def test_through_mode_needs_a_strict_trade_through() -> None:
    v = PaperVenue()
    fills: list[Fill] = []
    v.connect(lambda e: fills.append(e) if isinstance(e, Fill) else None)
    v.set_last(SYM, 100.5)
    v.submit(Order("a", "acc", SYM, 1, 1.0, "limit", 100.0, post_only=True), 0)
    v.on_trade(SYM, 1, 100.0, 5.0)
    assert not fills
    v.on_trade(SYM, 2, 99.9, 5.0)
    assert fills[0].price == 100.0 and fills[0].fee == pytest.approx(100.0 * 0.0002)


def test_negative_maker_fee_is_a_rebate_and_funding_is_charged_at_settlement() -> None:
    v = PaperVenue(PaperVenueConfig(maker_fee=-0.0001))
    events: list[object] = []
    v.connect(events.append)
    v.set_last(SYM, 100.5)
    v.submit(Order("a", "acc", SYM, 1, 2.0, "limit", 100.0, post_only=True), 0)
    v.on_trade(SYM, 1, 99.0, 5.0)
    fill = events[-1]
    assert isinstance(fill, Fill) and fill.fee == pytest.approx(-0.02)
    eight_h = 8 * 3_600_000
    v.on_funding(SYM, eight_h - 1, 100.0, 0.0001)
    v.on_funding(SYM, eight_h + 5, 101.0, 0.0001)  # crossed a settlement: long pays 2 × 101 × 0.0001
    charge = events[-1]
    assert charge.amount == pytest.approx(0.0202) and charge.ts_ms == eight_h  # type: ignore[attr-defined]


def test_duplicate_client_ids_are_ignored() -> None:
    v = PaperVenue()
    fills: list[Fill] = []
    v.connect(lambda e: fills.append(e) if isinstance(e, Fill) else None)
    v.set_last(SYM, 100.0)
    o = Order("x", "acc", SYM, 1, 1.0, "market")
    v.submit(o, 0)
    v.submit(o, 0)
    v.advance(SYM, 0)
    v.submit(o, 1)
    v.advance(SYM, 1)
    assert len(fills) == 1


PATH = [(1_000 * i + 1, p) for i, p in enumerate(
    [50_000, 49_999, 50_010, 50_060, 50_080, 50_100, 50_040, 50_120, 50_090, 50_160, 50_000, 49_950])]


def run_path(h: Harness, path: list[tuple[int, float]]) -> None:
    for ts, p in path:
        h.trade(ts, float(p), qty=5.0)
        h.tick(ts + 50)


def test_crash_and_replay_of_the_event_log_gives_the_same_end_state() -> None:
    cfg_v = PaperVenueConfig(latency_ms=20, slippage_bps=0.0)
    ref = Harness(venue_cfg=cfg_v)
    ref.signal(0)
    run_path(ref, PATH)
    assert ref.ex.account.closed  # the path opens and closes a position

    live = Harness(venue_cfg=cfg_v)
    live.signal(0)
    run_path(live, PATH[:5])  # ... the process dies here
    clock = ManualClock(0)
    reborn = StrategyExecutor("s1", StrategyRules(), ExecutionConfig(), live.venue, clock)
    replay(live.ex.log, reborn, clock.set)
    assert reborn.state() == live.ex.state()
    live.venue.connect(reborn.on_event)  # resubmits were no-ops; now continue on the same venue
    live.ex, live.clock = reborn, clock
    run_path(live, PATH[5:])
    assert live.ex.state() == ref.ex.state()


@settings(max_examples=60, deadline=None)
@given(
    moves=st.lists(st.integers(min_value=-40, max_value=40), min_size=3, max_size=40),
    maker=st.booleans(),
    latency=st.integers(min_value=0, max_value=300),
    rate=st.floats(min_value=-0.0005, max_value=0.0005),
)
def test_realised_pnl_is_fills_minus_fees_minus_funding(moves: list[int], maker: bool, latency: int,
                                                        rate: float) -> None:
    h = Harness(rules=StrategyRules(timeout_ms=60_000), cfg=ExecutionConfig(maker_entry=maker, maker_tp=maker),
                venue_cfg=PaperVenueConfig(latency_ms=latency, slippage_bps=1.0))
    h.signal(0)
    price = 50_000.0
    for i, mv in enumerate(moves):
        ts = 1 + i * 3_000
        price += mv * 2.5
        h.trade(ts, price, qty=1.3)
        h.venue.on_funding(SYM, i * 4 * 3_600_000, price, rate)
        h.tick(ts + 1_000)
    h.trade(400_000, price, qty=1.3)
    h.tick(410_000)
    h.tick(420_000)
    for p in h.ex.account.closed:
        cash = sum(-f.side * f.qty * f.price for f in p.fills)
        fees = sum(f.fee for f in p.fills)
        assert p.net_pnl == pytest.approx(cash - fees - p.funding, abs=1e-6)
    acc = h.ex.account
    assert acc.balance == pytest.approx(10_000 + sum(p.net_pnl for p in acc.closed), abs=1e-6)
    assert not h.ex.machines  # the 60 s timeout closed whatever opened


def test_min_fill_ratio_opens_on_a_large_partial_fill() -> None:
    h = Harness(cfg=ExecutionConfig(min_fill_ratio=0.7))
    h.signal(0)
    h.trade(100, 49_999.0, qty=1.5)  # 1.5 of 2.0 ≥ 70 %: cancel the rest and open with 1.5
    m = h.machine
    assert phases(h) == ["ENTRY_PENDING_MAKER", "ENTRY_CANCELING", "POSITION_OPEN"]
    assert m.pos.qty == 1.5 and [g.qty for g in m.legs] == [0.75, 0.75]


def test_close_all_exits_every_position_by_taker_with_reason_risk() -> None:
    h = Harness(cfg=TAKER)
    h.signal(0)
    h.trade(1, 50_000.0)
    h.clock.set(10)
    h.ex.close_all("risk")
    h.venue.advance(SYM, 10)
    p = h.ex.account.closed[-1]
    assert p.exit_reason == "risk" and p.qty == 0.0
    assert [t for _, t in h.ex.finished[-1].transitions][-3:] == ["EXIT_CANCELING", "EXIT_TAKER", "CLOSED"]


def test_risk_gate_refuses_entries_but_not_exits() -> None:
    from arbray.risk.rules import RiskEngine

    h = Harness(cfg=TAKER)
    risk = RiskEngine(clock=h.clock)
    risk.on_data(0)
    h.ex.gate = risk.gate
    h.signal(0)
    h.trade(1, 50_000.0)
    risk.kill()
    assert risk.allows("reduce") == (True, None)
    h.trade(2, 49_890.0)  # the stop still executes while HALTED
    assert h.ex.account.closed[-1].exit_reason == "sl"
    out = h.signal(3)
    assert out is not None and out.startswith("risk:HALTED")


def test_exit_during_a_partially_filled_entry_closes_what_was_filled() -> None:
    h = Harness()
    h.signal(0)
    h.trade(100, 49_999.0, qty=0.5)  # 0.5 filled, the rest still resting
    h.clock.set(200)
    h.ex.close_all("risk")  # cancel the entry, then take the 0.5 back
    h.venue.advance(SYM, 200)
    p = h.ex.account.closed[-1]
    assert p.exit_reason == "risk" and p.entry_qty == 0.5 and p.qty == 0.0 and p.opened_ms is None
    assert not h.ex.machines


def test_stop_during_the_maker_timeout_exit_goes_taker() -> None:
    h = Harness(rules=StrategyRules(timeout_ms=60_000), cfg=TAKER)
    h.signal(0)
    h.trade(1, 50_000.0)
    h.trade(60_001, 50_010.0)
    assert h.machine.phase == Phase.TIMEOUT_PENDING
    h.trade(60_100, 49_880.0)  # through the stop: cancel the maker exit, taker 2.0 @ 49 880
    p = h.ex.account.closed[-1]
    assert p.exit_reason == "sl" and p.price_pnl == pytest.approx(-240.0)
    assert [t for _, t in h.ex.finished[-1].transitions][-4:] == [
        "TIMEOUT_PENDING", "EXIT_CANCELING", "EXIT_TAKER", "CLOSED"]


class RejectFirstStop(PaperVenue):
    """A venue that rejects the first stop-loss order (e.g. an exchange hiccup)."""

    def _arrive(self, w, t):  # type: ignore[no-untyped-def]
        if w.order.client_id.endswith("-SL"):
            self._done(w)
            self._emit(OrderUpdate(w.order.client_id, w.order.account, "rejected", 0.0, "busy", t))
            return
        super()._arrive(w, t)


def test_a_rejected_stop_is_sent_again_on_the_next_trade() -> None:
    h = Harness(cfg=TAKER)
    h.venue = RejectFirstStop(PaperVenueConfig(slippage_bps=0.0))
    h.ex.venue = h.venue
    h.venue.connect(h.ex.on_event)
    h.venue.set_last(SYM, 50_000.0)
    h.signal(0)
    h.trade(1, 50_000.0)
    h.trade(2, 49_890.0)  # SL rejected
    m = h.machine
    assert m.phase == Phase.EXIT_TAKER and m.exit_retry
    h.trade(3, 49_880.0)  # retried as SL1
    p = h.ex.account.closed[-1]
    assert p.exit_reason == "sl" and "s1-BTCUSDT-1-SL1" in h.ex.finished[-1].orders
    assert p.price_pnl == pytest.approx(-240.0)
