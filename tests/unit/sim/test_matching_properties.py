"""Property tests of the matching engine's accounting and order lifecycle over random sessions.

Random orders of every type from two accounts, cancels, model taker flow, hidden prints, book
refreshes, mark moves and funding; after each session: wallet = initial + realised − fees −
funding (exactly, from the events), position = Σ signed fills, realised PnL agrees with the cash
flows, no order both filled and canceled, and every order ends in exactly one terminal state.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbray.sim.matching import TERMINAL, MatchingConfig, MatchingEngine, OrderError
from tests.unit.sim.test_matching_book import BTC, LevelBook, Spec

pytestmark = pytest.mark.unit
KEYS = ("acct-a", "acct-b")
START = Decimal("1000")

place = st.tuples(st.just("place"), st.sampled_from(KEYS), st.sampled_from(("BUY", "SELL")),
                  st.sampled_from(("MARKET", "GTC", "IOC", "FOK", "GTX")), st.integers(1, 3000),
                  st.integers(-4, 4), st.sampled_from((False, False, False, True)))
cancel = st.tuples(st.just("cancel"), st.sampled_from(KEYS), st.integers(0, 10))
taker = st.tuples(st.just("taker"), st.booleans(), st.integers(1, 4000))
hidden = st.tuples(st.just("print"), st.integers(-5, 5), st.integers(1, 2000), st.booleans())
refresh = st.tuples(st.just("refresh"), st.integers(-20, 20), st.integers(100, 2000))
funding = st.tuples(st.just("funding"), st.integers(-30, 30))
ops = st.lists(st.one_of(place, place, place, cancel, taker, hidden, refresh, funding), min_size=10, max_size=80)


def _run(session: list[tuple[Any, ...]]) -> tuple[MatchingEngine, dict[str, list[dict[str, Any]]]]:
    book = LevelBook({BTC: Spec(0.1, 0.001)})
    book.ladder(BTC, 100.0, 100.1, 0.5)
    engine = MatchingEngine(book, MatchingConfig(initial_balance=float(START), default_leverage=50))
    events: dict[str, list[dict[str, Any]]] = {}
    for k in KEYS:
        engine.add_account(k, "secret-" + k)
        events[k] = []
        engine.subscribe(k, events[k].append)
    mid = 1000  # ticks of 0.1 around 100.0
    for op in session:
        book.clock.set(book.clock.now_ms() + 100)
        kind = op[0]
        if kind == "place":
            _, key, side, how, lots, off, reduce_only = op
            params = {"symbol": BTC, "side": side, "quantity": f"{Decimal(lots) / 1000}"}
            if reduce_only:
                params["reduceOnly"] = "true"
            if how == "MARKET":
                params["type"] = "MARKET"
            else:
                params.update(type="LIMIT", timeInForce=how, price=f"{Decimal(mid + off) / 10}")
            with contextlib.suppress(OrderError):
                engine.new_order(key, params)
        elif kind == "cancel":
            _, key, idx = op
            open_ = engine.open_orders(key)
            if open_:
                engine.cancel_order(key, BTC, order_id=open_[idx % len(open_)]["orderId"])
        elif kind == "taker":
            _, is_buy, lots = op
            book.take(BTC, is_buy, lots / 1000, None)
        elif kind == "print":
            _, off, lots, buyer_maker = op
            book.print_trade(BTC, (mid + off) / 10, lots / 1000, buyer_maker)
        elif kind == "refresh":
            _, move, lots = op
            mid = max(900, min(1100, mid + move))
            book.bids[BTC].clear()
            book.asks[BTC].clear()
            book.ladder(BTC, mid / 10, (mid + 1) / 10, lots / 1000)
            book.marks[BTC] = (mid + 0.5) / 10
        elif kind == "funding":
            book.settle(BTC, op[1] / 100_000)
    for k in KEYS:
        engine.cancel_all(k, BTC)
    return engine, events


@settings(max_examples=150, deadline=None)
@given(ops)
def test_accounting_and_lifecycle_invariants(session: list[tuple[Any, ...]]) -> None:
    engine, events = _run(session)
    for key in KEYS:
        acct = engine.accounts[key]
        rp = fees = funding = Decimal(0)
        lots = 0
        cash = Decimal(0)
        history: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for ev in events[key]:
            if ev["e"] == "ORDER_TRADE_UPDATE":
                o = ev["o"]
                history[o["i"]].append(o)
                if o["x"] == "TRADE":
                    rp += Decimal(o["rp"])
                    fees += Decimal(o.get("n", "0"))
                    sign = 1 if o["S"] == "BUY" else -1
                    q = Decimal(o["l"])
                    lots += sign * int(q * 1000)
                    cash -= sign * q * Decimal(o["L"])
            elif ev["a"]["m"] == "FUNDING_FEE":
                funding -= Decimal(ev["a"]["B"][0]["bc"])
        # wallet = initial + realised − fees − funding, exactly
        assert acct.wallet == START + rp - fees - funding
        # position = Σ signed fills, and the last ACCOUNT_UPDATE says the same
        pos = acct.positions.get(BTC)
        assert (pos.lots if pos else 0) == lots
        orders_updates = [e["a"] for e in events[key] if e["e"] == "ACCOUNT_UPDATE" and e["a"]["P"]]
        if orders_updates:
            assert Decimal(orders_updates[-1]["P"][0]["pa"]) == Decimal(lots) / 1000
        # realised PnL = cash flows + the open position valued at its entry (8-place rounding per fill)
        entry = pos.entry if pos else Decimal(0)
        n_fills = sum(1 for h in history.values() for o in h if o["x"] == "TRADE")
        assert abs(rp - (cash + Decimal(lots) / 1000 * entry)) <= Decimal("1e-8") * (n_fills + 1)
        # lifecycle: NEW first, cumulative quantities consistent, exactly one terminal state at the end
        for oid, h in history.items():
            assert h[0]["x"] == "NEW"
            terminal = [o["X"] for o in h if o["X"] in TERMINAL]
            assert len(terminal) == 1, (oid, [o["X"] for o in h])
            assert h[-1]["X"] in TERMINAL  # nothing after the terminal event
            assert not ({"FILLED"} <= set(terminal) and {"CANCELED"} <= set(terminal))
            z = [Decimal(o["z"]) for o in h]
            assert z == sorted(z) and z[-1] == sum(Decimal(o["l"]) for o in h if o["x"] == "TRADE")
            assert (h[-1]["X"] == "FILLED") == (z[-1] == Decimal(h[-1]["q"]))
        assert not acct.open_orders
