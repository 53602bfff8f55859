"""A real ``StrategyExecutor`` trading on the simulator through ``BinanceVenue``.

The executor's clock is the exchange's market clock and it sees every public trade (``on_price``);
the venue carries its orders over signed REST and brings fills back over the user stream. The
market is paused and a counterparty's market orders move it, so each step is deterministic: a
post-only maker entry fills, the post-only reduce-only TP legs (or a taker stop) close the
position, and the executor's books agree with the exchange's to the cent.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from arbray.execution.executor import Signal, StrategyExecutor, StrategyRules
from arbray.execution.machine import ExecutionConfig, Phase
from arbray.venue import BinanceVenue
from tests.integration.test_venue_harness import BTC, Sim, run, running_sim, settle, wait_until

pytestmark = pytest.mark.integration
SID = "maker_tp"


def _through(sim: Sim, side: str, price: float, extra: float = 0.2) -> float:
    """Counterparty quantity that prints through ``price`` (every level up to it, plus ``extra``)."""
    book = sim.exchange.depth(BTC, 1000)
    levels = book["asks"] if side == "BUY" else book["bids"]
    near = sum(float(q) for p, q in levels if (float(p) <= price if side == "BUY" else float(p) >= price))
    return round(near + extra, 3)


async def _entered(sim: Sim) -> tuple[StrategyExecutor, BinanceVenue]:
    venue = sim.venue()
    rules = StrategyRules(initial_balance=10_000, risk_fraction=1e-5, sl_atr_multiplier=2.0, tp1_r=0.75,
                          tp2_r=1.5, use_tiers=False, timeout_ms=3_600_000)
    cfg = ExecutionConfig(entry_offset_ticks=1, entry_timeout_ms=600_000, tp_timeout_ms=600_000)
    ex = StrategyExecutor(SID, rules, cfg, venue, sim.exchange, spec_of=lambda s: venue.specs[s])
    venue.connect(ex.on_event)
    sim.exchange.on_trade(lambda s, ts, p, q, m: ex.on_price(s, p))
    await venue.start()
    bid, ask = sim.best()
    sig = Signal(SID, BTC, sim.exchange.now_ms(), 1, 90.0, None, True, False, atr=0.5, price=(bid + ask) / 2,
                 bid=bid, ask=ask)
    assert ex.on_signal(sig) == "entry"
    m = ex.machines[BTC]
    assert m.phase == Phase.ENTRY_PENDING_MAKER and m.target == pytest.approx(0.1)
    await settle(venue)
    (em,) = sim.engine.open_orders(sim.key, BTC)
    assert em["timeInForce"] == "GTX" and float(em["price"]) == bid  # inside the spread, passive
    sim.sweep("SELL", _through(sim, "SELL", bid))  # a seller trades through the bid: the entry fills as maker
    await wait_until(lambda: m.phase == Phase.POSITION_OPEN and len(sim.engine.open_orders(sim.key, BTC)) == 2,
                     what="position open with both TP legs resting")
    await settle(venue)
    assert m.pos.entry_qty == pytest.approx(0.1) and m.pos.entry_maker_qty == pytest.approx(0.1)
    tps = sorted(sim.engine.open_orders(sim.key, BTC), key=lambda o: float(o["price"]))
    assert [o["timeInForce"] for o in tps] == ["GTX", "GTX"] and all(o["reduceOnly"] for o in tps)
    return ex, venue


def _books_agree(sim: Sim, ex: StrategyExecutor) -> None:
    trades = sim.engine.user_trades(sim.key, BTC)
    realized = sum(Decimal(t["realizedPnl"]) for t in trades)
    fees = sum(Decimal(t["commission"]) for t in trades)
    assert ex.account.realised == pytest.approx(float(realized), abs=1e-9)
    assert ex.account.fees == pytest.approx(float(fees), abs=1e-9)
    funding = sum(Decimal(i["income"]) for i in sim.engine.income_rows(sim.key, income_type="FUNDING_FEE"))
    assert sim.engine.accounts[sim.key].wallet == Decimal("100000") + realized - fees + funding
    (pos,) = sim.engine.position_payloads(sim.key, BTC)
    assert float(pos["positionAmt"]) == 0.0 and sim.engine.open_orders(sim.key) == []


def test_maker_entry_then_both_take_profits_as_maker() -> None:
    async def body() -> None:
        async with running_sim(paused=True) as sim:
            ex, venue = await _entered(sim)
            try:
                m = ex.machines[BTC]
                t2 = max(leg.price for leg in m.legs)
                sim.sweep("BUY", _through(sim, "BUY", t2))  # a buyer lifts the asks through both TP prices
                await wait_until(lambda: not ex.machines, what="position closed")
                pos = ex.finished[0].pos
                assert pos.exit_reason == "tp" and pos.tp_maker_qty == pytest.approx(0.1) and pos.tp_taker_qty == 0
                assert pos.price_pnl > 0  # (fees exceed a 1-USD risk distance on 0.1 BTC; that is fine)
                _books_agree(sim, ex)
            finally:
                await venue.stop()

    run(body())


def test_maker_entry_then_taker_stop_loss() -> None:
    async def body() -> None:
        async with running_sim(paused=True) as sim:
            ex, venue = await _entered(sim)
            try:
                m = ex.machines[BTC]
                sim.sweep("SELL", _through(sim, "SELL", m.sl - 0.1))  # the market falls through the stop
                await wait_until(lambda: not ex.machines, what="stopped out")
                pos = ex.finished[0].pos
                assert pos.exit_reason == "sl" and pos.exit_qty == pytest.approx(0.1) and pos.price_pnl < 0
                assert "EXIT_CANCELING" in [p for _, p in ex.finished[0].transitions]  # TPs canceled first
                _books_agree(sim, ex)
            finally:
                await venue.stop()

    run(body())


def test_positions_on_a_running_market_close_and_the_books_agree() -> None:
    async def body() -> None:
        async with running_sim(speed=10.0) as sim:
            venue = sim.venue()
            rules = StrategyRules(initial_balance=10_000, risk_fraction=1e-5, sl_atr_multiplier=2.0, tp1_r=0.75,
                                  tp2_r=1.5, use_tiers=False, timeout_ms=60_000)
            ex = StrategyExecutor("live", rules, ExecutionConfig(), venue, sim.exchange,
                                  spec_of=lambda s: venue.specs[s])
            venue.connect(ex.on_event)
            sim.exchange.on_trade(lambda s, ts, p, q, m: ex.on_price(s, p))
            await venue.start()
            try:
                for i in range(4):
                    bid, ask = sim.best()
                    sig = Signal("live", BTC, sim.exchange.now_ms(), 1 if i % 2 == 0 else -1, 90.0, None, True, False,
                                 atr=0.5, price=(bid + ask) / 2, bid=bid, ask=ask)
                    assert ex.on_signal(sig) == "entry"
                    await wait_until(lambda: not ex.machines, 20, f"position {i} closed")
                assert [m.phase for m in ex.finished] == [Phase.CLOSED] * 4
                assert all(m.pos.exit_reason in ("tp", "sl", "sl_be", "timeout") for m in ex.finished)
                await settle(venue)
                _books_agree(sim, ex)
                assert venue.stats()["counters"].get("duplicate_fills", 0) == 0
            finally:
                await venue.stop()

    run(body(), 90)
