"""``BinanceVenue`` against the simulator over loopback HTTP + WebSocket.

Order types, the GTX reject, partial fills, a cancel that loses to a fill, a dropped user stream,
listen-key expiry and keep-alive, reconciliation after a restart, -1015 backoff, an injected -1007
whose order did execute, funding, and secrets kept out of reprs and logs. The market is paused
where a test needs a fixed book; the counterparty's market orders (``sim.sweep``) make fills happen.
"""

from __future__ import annotations

import json
import logging

import pytest

from arbray.execution.venue import Fill, FundingCharge, Order
from arbray.sim.faults import FaultConfig
from arbray.sim.server import SimServerConfig
from arbray.sim.trading_api import TradingApiConfig
from arbray.venue import BinanceVenue
from tests.integration.test_venue_harness import BTC, Recorder, run, running_sim, settle, wait_until

pytestmark = pytest.mark.integration
S = "strat_a"


def oid(n: int, role: str = "EM", strategy: str = S) -> str:
    return f"{strategy}-{BTC}-{n}-{role}"


async def started(venue: BinanceVenue, rec: Recorder) -> BinanceVenue:
    venue.connect(rec)
    await venue.start()
    return venue


def test_order_kinds_gtx_reject_partial_fills_and_cancel() -> None:
    async def body() -> None:
        async with running_sim(paused=True) as sim:
            rec = Recorder()
            venue = await started(sim.venue(), rec)
            try:
                bid, ask = sim.best()
                ask_qty = sim.exchange.best_ask(BTC)[1]  # type: ignore[index]
                # market → taker fill(s) to zero
                venue.submit(Order(oid(1, "ET"), S, BTC, 1, 0.005, "market"), 0)
                # post-only at the ask would cross → the paper venue's reason
                venue.submit(Order(oid(2), S, BTC, 1, 0.005, "limit", ask, post_only=True), 0)
                # a GTC limit through two ask levels: two taker fills, the rest rests
                qty = round(ask_qty + 0.5, 3)
                venue.submit(Order(oid(3, "XG"), S, BTC, 1, qty + 0.2, "limit", ask + 0.1), 0)
                # post-only below the bid rests
                venue.submit(Order(oid(4), S, BTC, 1, 0.004, "limit", bid - 20, post_only=True), 0)
                await settle(venue)
                await wait_until(lambda: sum(f.qty for f in rec.fills(oid(1, "ET"))) >= 0.005, what="market fill")
                (mf,) = rec.fills(oid(1, "ET"))
                assert mf.liquidity == "taker" and mf.remaining == 0.0
                assert mf.fee == pytest.approx(mf.qty * mf.price * 5e-4)
                (rej,) = rec.updates(oid(2), "rejected")
                assert rej.reason == "post_only_would_cross" and not rec.fills(oid(2))
                await wait_until(lambda: len(rec.fills(oid(3, "XG"))) >= 2, what="partial taker fills")
                partial = rec.fills(oid(3, "XG"))
                assert all(f.remaining > 0 for f in partial) and partial[0].price < partial[1].price
                assert rec.updates(oid(4), "accepted")
                # cancel both resting orders: each ends canceled, with its filled quantity
                venue.cancel(oid(3, "XG"), 0)
                venue.cancel(oid(4), 0)
                venue.cancel(oid(4), 0)  # a second request is a no-op
                await settle(venue)
                await wait_until(lambda: len(rec.updates(status="canceled")) == 2, what="cancels")
                (c3,) = rec.updates(oid(3, "XG"), "canceled")
                assert c3.filled == pytest.approx(sum(f.qty for f in partial))
                assert sim.engine.open_orders(sim.key) == []
                # the venue delivered exactly the exchange's trades
                trades = sim.engine.user_trades(sim.key, BTC)
                assert len(rec.fills()) == len(trades)
            finally:
                await venue.stop()

    run(body())


def test_resting_order_fills_in_parts_as_maker() -> None:
    async def body() -> None:
        async with running_sim(paused=True) as sim:
            rec = Recorder()
            venue = await started(sim.venue(), rec)
            try:
                bid, _ = sim.best()
                price = round(bid - 1.0, 1)  # ten ticks down: the bids above and at it queue ahead
                venue.submit(Order(oid(1), S, BTC, 1, 0.05, "limit", price, post_only=True), 0)
                await settle(venue)
                await wait_until(lambda: bool(rec.updates(oid(1), "accepted")), what="accepted")
                depth = sim.exchange.depth(BTC, 1000)
                above = sum(float(q) for p, q in depth["bids"] if float(p) >= price)
                next_level = next(float(q) for p, q in depth["bids"] if float(p) < price)
                sim.sweep("SELL", round(above + min(0.02, next_level), 3))  # prints through our price: part fills
                await wait_until(lambda: bool(rec.fills(oid(1))), what="first maker fill")
                first = rec.fills(oid(1))
                assert first[0].liquidity == "maker" and first[0].price == price and first[-1].remaining > 0
                sim.sweep("SELL", 1.0)
                await wait_until(lambda: rec.fills(oid(1))[-1].remaining == 0.0, what="the rest")
                assert sum(f.qty for f in rec.fills(oid(1))) == pytest.approx(0.05)
                assert all(f.fee == pytest.approx(f.qty * price * 2e-4) for f in rec.fills(oid(1)))
            finally:
                await venue.stop()

    run(body())


def test_cancel_that_loses_to_a_fill() -> None:
    async def body() -> None:
        async with running_sim(paused=True) as sim:
            rec = Recorder()
            venue = await started(sim.venue(), rec)
            try:
                bid, _ = sim.best()
                venue.submit(Order(oid(1), S, BTC, 1, 0.01, "limit", bid, post_only=True), 0)
                await settle(venue)
                sim.sweep("SELL", 10.0)  # the exchange fills it ...
                venue.cancel(oid(1), 0)  # ... before our cancel arrives
                await settle(venue)
                await wait_until(lambda: bool(rec.updates(oid(1), "cancel_rejected")), what="cancel_rejected")
                events = [e for e in rec.of(oid(1)) if not (hasattr(e, "status") and e.status == "accepted")]
                assert isinstance(events[-1], type(rec.updates(oid(1), "cancel_rejected")[0]))
                fills = [e for e in events if isinstance(e, Fill)]
                assert fills and fills[-1].remaining == 0.0 and sum(f.qty for f in fills) == pytest.approx(0.01)
                assert events.index(fills[-1]) < len(events) - 1  # every fill before the lost race
                assert not rec.updates(oid(1), "canceled")
                assert rec.updates(oid(1), "cancel_rejected")[0].filled == pytest.approx(0.01)
            finally:
                await venue.stop()

    run(body())


def test_dropped_user_stream_loses_and_duplicates_no_fill() -> None:
    async def body() -> None:
        async with running_sim(paused=True) as sim:
            rec = Recorder()
            venue = await started(sim.venue(), rec)
            try:
                bid, _ = sim.best()
                for n, off in ((1, 0.0), (2, 0.5)):
                    venue.submit(Order(oid(n), S, BTC, 1, 0.02, "limit", round(bid - off, 1), post_only=True), 0)
                await settle(venue)
                await wait_until(lambda: len(rec.updates(status="accepted")) == 2, what="accepted")
                sim.sweep("SELL", 2.0)  # some fills arrive on the live stream ...
                await wait_until(lambda: bool(rec.fills()), what="a streamed fill")
                dropped = await sim.server.disconnect_all("test_drop")
                assert dropped >= 1
                sim.sweep("SELL", 30.0)  # ... the rest happen while the stream is down
                await wait_until(lambda: venue.stats()["counters"].get("reconnects", 0) >= 1, what="reconnect")
                await settle(venue)
                await wait_until(lambda: sum(f.qty for f in rec.fills()) >= 0.04 - 1e-9, timeout_s=10,
                                 what="all fills recovered")
                trades = sim.engine.user_trades(sim.key, BTC)
                assert len(rec.fills()) == len(trades)  # none lost, none twice
                assert sorted(f.qty for f in rec.fills()) == sorted(float(t["qty"]) for t in trades)
                for n in (1, 2):
                    assert [f.remaining for f in rec.fills(oid(n))][-1] == 0.0
                c = venue.stats()["counters"]
                assert c.get("recover:reconnect", 0) >= 1
            finally:
                await venue.stop()

    run(body())


def test_listen_key_expiry_renews_the_key_and_the_stream() -> None:
    async def body() -> None:
        cfg = TradingApiConfig(listen_key_validity_ms=600, expiry_check_ms=20)
        async with running_sim(api=cfg) as sim:
            rec = Recorder()
            venue = await started(sim.venue(keepalive_interval_s=600), rec)
            try:
                await wait_until(lambda: venue.stats()["counters"].get("listen_key_expired", 0) >= 1, 5,
                                 "listenKeyExpired")
                await wait_until(lambda: venue.stats()["counters"].get("listen_keys", 0) >= 2
                                 and venue.stats()["connected"], 5, "a new key and a reconnect")
                # the stream works again: a fill still arrives
                venue.submit(Order(oid(1, "ET"), S, BTC, 1, 0.003, "market"), 0)
                await settle(venue)
                await wait_until(lambda: bool(rec.fills(oid(1, "ET"))), what="fill after renewal")
                assert sim.api.counters["listen_keys_expired"] >= 1
            finally:
                await venue.stop()

    run(body())


def test_keepalive_keeps_the_stream_alive() -> None:
    async def body() -> None:
        cfg = TradingApiConfig(listen_key_validity_ms=1_500, expiry_check_ms=20)
        async with running_sim(api=cfg) as sim:
            venue = await started(sim.venue(keepalive_interval_s=0.2), Recorder())
            try:  # 15 keep-alives take 3 s, twice the key's validity
                await wait_until(lambda: venue.stats()["counters"].get("keepalives", 0) >= 15, 10, "keep-alives")
                assert venue.stats()["counters"].get("listen_key_expired", 0) == 0
                assert sim.api.counters["listen_keys_expired"] == 0
            finally:
                await venue.stop()

    run(body())


def test_reconciliation_finds_an_order_placed_before_a_restart() -> None:
    async def body() -> None:
        async with running_sim(paused=True) as sim:
            bid, _ = sim.best()
            first = await started(sim.venue(), Recorder())
            resting = Order(oid(1), S, BTC, 1, 0.01, "limit", round(bid - 2, 1), post_only=True)
            first.submit(resting, 0)
            first.submit(Order(oid(2, "ET"), S, BTC, 1, 0.004, "market"), 0)
            await settle(first)
            await first.stop()  # the process dies; the resting order stays on the exchange

            rec = Recorder()
            second = await started(sim.venue(), rec)
            try:
                blind = await second.reconcile([])  # the engine has not rebuilt its log yet
                assert [u.client_id for u in blind.unknown] == [oid(1)]  # short ids travel unchanged
                assert blind.positions == {BTC: pytest.approx(0.004)}
                assert blind.position_diffs == {BTC: (pytest.approx(0.004), 0.0)}
                report = await second.reconcile([oid(1), oid(2, "ET"), oid(3)], expected_positions={BTC: 0.004})
                assert report.unknown == () and report.lost == (oid(3),)
                assert report.finished == {oid(2, "ET"): "FILLED"} and report.clean is False
                assert report.position_diffs == {}
                second.submit(resting, 0)  # the replayed machine sends it again: a no-op
                await settle(second)
                assert len(sim.orders_with_client_id(oid(1))) == 1
                sim.sweep("SELL", 40.0)  # its fill reaches the new instance, booked to the right strategy
                await wait_until(lambda: bool(rec.fills(oid(1))), what="fill of the adopted order")
                assert rec.fills(oid(1))[-1].account == S and rec.fills(oid(1))[-1].remaining == 0.0
            finally:
                await second.stop()

    run(body())


def test_reconcile_with_engine_fill_state_delivers_what_was_missed() -> None:
    async def body() -> None:
        async with running_sim(paused=True) as sim:
            bid, _ = sim.best()
            first = await started(sim.venue(), Recorder())
            first.submit(Order(oid(1), S, BTC, 1, 0.01, "limit", round(bid - 0.3, 1), post_only=True), 0)
            await settle(first)
            await first.stop()
            sim.sweep("SELL", 30.0)  # filled while no venue was running
            rec = Recorder()
            second = await started(sim.venue(), rec)
            try:
                report = await second.reconcile({oid(1): 0.0})
                assert report.recovered_fills >= 1 and report.finished == {oid(1): "FILLED"}
                assert sum(f.qty for f in rec.fills(oid(1))) == pytest.approx(0.01)
                assert rec.fills(oid(1))[-1].remaining == 0.0
            finally:
                await second.stop()

    run(body())


def test_too_many_orders_backs_off_and_resends() -> None:
    async def body() -> None:
        # 3 new orders per 10 s: orders 4 and 5 get 429/-1015 and are resent after Retry-After (~10 s).
        # The market runs (at 1x its clock is the wall clock, so no timestamp resyncs add to the count).
        server = SimServerConfig(orders_per_10s=3, ban_after_429s=1000)
        async with running_sim(server=server) as sim:
            rec = Recorder()
            venue = await started(sim.venue(), rec)
            try:
                bid, _ = sim.best()
                ids = [oid(n) for n in range(1, 6)]
                for n, cid in enumerate(ids):
                    venue.submit(Order(cid, S, BTC, 1, 0.002, "limit", round(bid - 300 - n * 0.1, 1),
                                       post_only=True), 0)
                await wait_until(lambda: len(rec.updates(status="accepted")) == len(ids), 20, "all accepted")
                assert not rec.updates(status="rejected")
                assert venue.rest.counters["backoffs"] >= 1 and venue.rest.counters["error:-1015"] >= 1
                assert all(len(sim.orders_with_client_id(c)) == 1 for c in ids)
                assert sim.server.counts["rest_429:orders"] >= 1
            finally:
                await venue.stop()

    run(body(), 40)


def test_injected_timeout_whose_order_executed_gives_exactly_one_order() -> None:
    async def body() -> None:
        async with running_sim(paused=True) as sim:
            rec = Recorder()
            venue = await started(sim.venue(), rec)
            try:
                sim.server.faults.replace(FaultConfig(order_reject_rate=1.0, order_reject_codes=(-1007,)))
                venue.submit(Order(oid(1, "ET"), S, BTC, 1, 0.005, "market"), 0)
                bid, _ = sim.best()
                venue.submit(Order(oid(2), S, BTC, 1, 0.005, "limit", round(bid - 5, 1), post_only=True), 0)
                await settle(venue)
                await wait_until(lambda: bool(rec.fills(oid(1, "ET"))), what="the executed order's fill")
                assert sim.api.counters["fault:-1007"] == 2
                for cid in (oid(1, "ET"), oid(2)):
                    assert len(sim.orders_with_client_id(cid)) == 1  # reconciled, never resent
                    assert not rec.updates(cid, "rejected")
                assert sum(f.qty for f in rec.fills(oid(1, "ET"))) == pytest.approx(0.005)
                assert rec.updates(oid(2), "accepted")
                assert venue.stats()["counters"]["resolved_placed"] == 2
                # -2010: refused, nothing on the exchange, rejected with its name
                sim.server.faults.replace(FaultConfig(order_reject_rate=1.0, order_reject_codes=(-2010,)))
                venue.submit(Order(oid(3, "ET"), S, BTC, 1, 0.005, "market"), 0)
                await settle(venue)
                assert rec.updates(oid(3, "ET"), "rejected")[0].reason == "new_order_rejected"
                assert sim.orders_with_client_id(oid(3, "ET")) == []
                # -1008 (busy) is retried with the same client id; once the server recovers it is placed once
                sim.server.faults.replace(FaultConfig(order_reject_rate=1.0, order_reject_codes=(-1008,)))
                venue.submit(Order(oid(4, "ET"), S, BTC, 1, 0.005, "market"), 0)
                await wait_until(lambda: venue.stats()["counters"].get("order_retries", 0) >= 1, what="a retry")
                sim.server.faults.replace(FaultConfig())
                await settle(venue)
                await wait_until(lambda: bool(rec.fills(oid(4, "ET"))), what="placed after the retry")
                assert len(sim.orders_with_client_id(oid(4, "ET"))) == 1
            finally:
                await venue.stop()

    run(body())


def test_funding_settlement_becomes_funding_charges_per_strategy() -> None:
    async def body() -> None:
        async with running_sim(paused=True) as sim:
            rec = Recorder()
            venue = await started(sim.venue(), rec)
            try:
                venue.submit(Order(oid(1, "ET", "long_a"), "long_a", BTC, 1, 0.03, "market"), 0)
                venue.submit(Order(oid(1, "ET", "short_b"), "short_b", BTC, -1, 0.01, "market"), 0)
                await settle(venue)
                await wait_until(lambda: len(rec.fills()) >= 2 and all(
                    f.remaining == 0 for f in rec.fills()[-2:]), what="entries")
                mark, rate = sim.exchange.mark_price(BTC), 0.0001
                ts = sim.exchange.now_ms()
                sim.engine.on_funding(BTC, ts, rate, mark)  # the exchange's settlement callback
                await wait_until(lambda: len([e for e in rec.events if isinstance(e, FundingCharge)]) == 2,
                                 what="funding charges")
                charges = {e.account: e for e in rec.events if isinstance(e, FundingCharge)}
                income = sim.engine.income_rows(sim.key, income_type="FUNDING_FEE")
                assert len(income) == 1
                total = -float(income[0]["income"])
                assert charges["long_a"].amount + charges["short_b"].amount == pytest.approx(total, abs=1e-7)
                assert charges["long_a"].amount > 0 > charges["short_b"].amount
                assert charges["long_a"].position_qty == pytest.approx(0.03)
            finally:
                await venue.stop()

    run(body())


def test_secrets_stay_out_of_reprs_errors_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        async with running_sim(paused=True) as sim:
            venue = sim.venue()
            rec = Recorder()
            venue.connect(rec)
            with caplog.at_level(logging.DEBUG):
                await venue.start()
                _, ask = sim.best()
                venue.submit(Order(oid(1), S, BTC, 1, 0.005, "limit", ask, post_only=True), 0)  # a reject
                venue.submit(Order(oid(2, "ET"), S, BTC, 1, 0.005, "market"), 0)
                sim.server.faults.replace(FaultConfig(order_reject_rate=1.0, order_reject_codes=(-1007,)))
                venue.submit(Order(oid(3, "ET"), S, BTC, 1, 0.005, "market"), 0)
                await settle(venue)
                await venue.stop()
            texts = [r.getMessage() for r in caplog.records] + [repr(venue), repr(venue.config),
                                                                repr(venue.rest.credentials), json.dumps(venue.stats())]
            assert any("POST /fapi/v1/order" in t for t in texts)
            for t in texts:
                assert sim.secret not in t

    run(body())


def test_malformed_user_event_is_counted_and_its_fill_recovered_by_rest() -> None:
    async def body() -> None:
        async with running_sim(paused=True) as sim:
            rec = Recorder()
            venue = await started(sim.venue(), rec)
            real = venue._on_message
            corrupted: list[str] = []

            def lossy(text: str) -> None:  # the wire mangles the first fill event
                if '"x":"TRADE"' in text and not corrupted:
                    corrupted.append(text)
                    text = text[: len(text) // 2]
                real(text)

            venue._on_message = lossy  # type: ignore[method-assign]
            try:
                bid, _ = sim.best()
                venue.submit(Order(oid(1), S, BTC, 1, 0.01, "limit", bid, post_only=True), 0)
                await settle(venue)
                sim.sweep("SELL", 10.0)
                await wait_until(lambda: sum(f.qty for f in rec.fills(oid(1))) >= 0.01 - 1e-12, what="recovered")
                await settle(venue)
                c = venue.stats()["counters"]
                assert corrupted and c["bad_messages:json"] == 1 and c["recover:malformed"] == 1
                assert len(rec.fills(oid(1))) == len(sim.engine.user_trades(sim.key, BTC))
            finally:
                await venue.stop()

    run(body())


def test_periodic_reconciliation_reports_a_clean_venue() -> None:
    async def body() -> None:
        async with running_sim() as sim:
            venue = await started(sim.venue(reconcile_interval_s=0.2), Recorder())
            try:
                bid, _ = sim.best()
                venue.submit(Order(oid(1), S, BTC, 1, 0.01, "limit", round(bid - 300, 1), post_only=True), 0)
                await settle(venue)
                n = venue.stats()["counters"]["reconciles"]  # the start-up one and perhaps a periodic one
                await wait_until(lambda: venue.stats()["counters"]["reconciles"] >= n + 2, 5, "periodic reconciles")
                report = venue.last_report
                assert report is not None and report.clean
                assert [o.engine_id for o in report.open_orders] == [oid(1)]
            finally:
                await venue.stop()

    run(body())


def test_a_timed_out_post_that_never_executed_is_sent_again_once() -> None:
    async def body() -> None:
        async with running_sim(paused=True) as sim:
            rec = Recorder()
            venue = await started(sim.venue(request_timeout_s=0.3, query_attempts=5), rec)
            try:
                # the server holds every REST answer past the client's timeout, without executing it
                sim.server.faults.replace(FaultConfig(rest_timeout_rate=1.0, rest_timeout_s=0.6))
                venue.submit(Order(oid(1, "ET"), S, BTC, 1, 0.004, "market"), 0)
                await wait_until(lambda: venue.rest.counters["timeouts"] >= 1, what="a timed-out POST")
                sim.server.faults.replace(FaultConfig())
                await settle(venue)
                await wait_until(lambda: bool(rec.fills(oid(1, "ET"))), what="the order placed after all")
                assert len(sim.orders_with_client_id(oid(1, "ET"))) == 1
                c = venue.stats()["counters"]
                assert c["resolve:reconcile"] >= 1 and c.get("resolved_not_placed", 0) >= 1
                assert sum(f.qty for f in rec.fills(oid(1, "ET"))) == pytest.approx(0.004)
            finally:
                await venue.stop()

    run(body())
