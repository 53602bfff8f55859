"""The simulator's matching engine: order types, filters, queue model, fees, PnL, funding, events."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from arbray.sim.matching import MatchingConfig, MatchingEngine, OrderError
from arbray.sim.trading_api import sim_credentials, trading_extension
from tests.unit.sim.test_matching_book import BTC, LevelBook, Spec

pytestmark = pytest.mark.unit
ETH = "ETHUSDT"
K1, K2 = "key-one", "key-two"

# Every ORDER_TRADE_UPDATE "o" field of anchors §7.6 (n/N only when there is a commission).
OTU_FIELDS = {"s", "c", "S", "o", "f", "q", "p", "ap", "sp", "x", "X", "i", "l", "z", "L", "T", "t", "b", "a", "m",
              "R", "wt", "ot", "ps", "cp", "rp"}


class Rig:
    """An engine over a LevelBook with two accounts and their recorded user events."""

    def __init__(self, tick: float = 0.1, step: float = 0.001, balance: float = 100_000.0, **cfg: Any) -> None:
        self.book = LevelBook({BTC: Spec(tick, step), ETH: Spec(0.01, 0.001)})
        self.book.ladder(BTC, 100.0, 100.1, 1.0)
        self.book.ladder(ETH, 10.0, 10.01, 10.0)
        self.engine = MatchingEngine(self.book, MatchingConfig(initial_balance=balance, **cfg))
        self.events: dict[str, list[dict[str, Any]]] = {K1: [], K2: []}
        for k in (K1, K2):
            self.engine.add_account(k, "s3cr3t-" + k)
            self.engine.subscribe(k, self.events[k].append)

    def order(self, key: str = K1, **params: Any) -> dict[str, Any]:
        p = {"symbol": BTC, "newOrderRespType": "RESULT"}
        p.update({k: str(v) for k, v in params.items()})
        return self.engine.new_order(key, p)

    def otu(self, key: str = K1) -> list[dict[str, Any]]:
        return [e["o"] for e in self.events[key] if e["e"] == "ORDER_TRADE_UPDATE"]

    def acct_updates(self, key: str = K1) -> list[dict[str, Any]]:
        return [e["a"] for e in self.events[key] if e["e"] == "ACCOUNT_UPDATE"]

    def wallet(self, key: str = K1) -> Decimal:
        return self.engine.accounts[key].wallet


def code_of(fn: Any) -> int:
    with pytest.raises(OrderError) as e:
        fn()
    return e.value.code


def test_resting_gtc_acks_new_and_queues_behind_the_displayed_level() -> None:
    rig = Rig()
    r = rig.order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.5", price="100.0",
                  newClientOrderId="bid-1")
    assert r["status"] == "NEW" and r["executedQty"] == "0.000" and r["clientOrderId"] == "bid-1"
    order = rig.engine.accounts[K1].open_orders[(BTC, r["orderId"])]
    assert order.queue_ahead == 1000  # 1.0 BTC displayed at 100.0 was there first
    (ev,) = rig.otu()
    assert ev["x"] == ev["X"] == "NEW" and set(ev) >= OTU_FIELDS and "n" not in ev
    assert ev["b"] == "50.00000000" and ev["a"] == "0.00000000"
    # prints at the price consume the queue first: 0.6 + 0.4 clear it, the next 0.3 fills us
    rig.book.print_trade(BTC, 100.0, 0.6, True)
    rig.book.print_trade(BTC, 100.0, 0.4, True)
    assert order.filled_lots == 0 and order.queue_ahead == 0
    rig.book.print_trade(BTC, 100.0, 0.3, True)
    assert order.filled_lots == 300 and order.status == "PARTIALLY_FILLED"
    # a print through the price fills the rest at our own price, as maker
    rig.book.print_trade(BTC, 99.9, 5.0, True)
    fills = [e for e in rig.otu() if e["x"] == "TRADE"]
    assert [(f["l"], f["L"], f["m"], f["X"]) for f in fills] == [
        ("0.300", "100.0", True, "PARTIALLY_FILLED"), ("0.200", "100.0", True, "FILLED")]
    assert fills[-1]["z"] == "0.500" and fills[-1]["ap"] == "100.0000"
    # maker commission 0.02 % of 30 and of 20 USDT
    assert [f["n"] for f in fills] == ["0.00600000", "0.00400000"] and fills[0]["N"] == "USDT"


def test_buy_prints_do_not_fill_resting_bids() -> None:
    rig = Rig()
    rig.order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.1", price="100.0")
    rig.book.print_trade(BTC, 99.0, 1.0, False)  # a taker BUY printing low cannot hit our bid
    assert all(e["x"] != "TRADE" for e in rig.otu())


def test_crossing_gtc_takes_up_to_its_limit_and_rests_the_rest() -> None:
    rig = Rig()
    r = rig.order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="2.5", price="100.2")
    assert r["status"] == "PARTIALLY_FILLED" and r["executedQty"] == "2.000"
    assert r["avgPrice"] == "100.1500"
    fills = [e for e in rig.otu() if e["x"] == "TRADE"]
    assert [(f["L"], f["l"], f["m"]) for f in fills] == [("100.1", "1.000", False), ("100.2", "1.000", False)]
    assert fills[0]["n"] == "0.05005000"  # taker 0.05 % of 100.1
    rest = rig.engine.open_orders(K1, BTC)
    assert len(rest) == 1 and rest[0]["status"] == "PARTIALLY_FILLED" and rest[0]["price"] == "100.2"
    pos = rig.acct_updates()[-1]["P"][0]
    assert pos["pa"] == "2.000" and pos["ep"] == "100.150000" and rig.acct_updates()[-1]["m"] == "ORDER"


def test_market_walks_the_book_and_expires_what_cannot_fill() -> None:
    rig = Rig()
    r = rig.order(side="SELL", type="MARKET", quantity="6")  # 5 levels of 1.0 on the bid
    assert r["status"] == "EXPIRED" and r["executedQty"] == "5.000" and r["type"] == "MARKET"
    assert [e["x"] for e in rig.otu()] == ["NEW"] + ["TRADE"] * 5 + ["EXPIRED"]
    assert rig.book.best_bid(BTC) is None


def test_ioc_fills_what_it_can_then_expires() -> None:
    rig = Rig()
    r = rig.order(side="BUY", type="LIMIT", timeInForce="IOC", quantity="1.5", price="100.1")
    assert r["status"] == "EXPIRED" and r["executedQty"] == "1.000"
    assert not rig.engine.open_orders(K1)


def test_fok_fills_fully_or_is_rejected() -> None:
    rig = Rig()
    assert code_of(lambda: rig.order(side="BUY", type="LIMIT", timeInForce="FOK", quantity="2.5",
                                     price="100.2")) == -5021
    assert rig.otu() == [] and rig.book.best_ask(BTC) == (100.1, 1.0)  # nothing happened
    r = rig.order(side="BUY", type="LIMIT", timeInForce="FOK", quantity="2", price="100.2")
    assert r["status"] == "FILLED" and r["executedQty"] == "2.000"


def test_gtx_that_would_cross_is_rejected_and_one_that_would_not_rests() -> None:
    rig = Rig()
    assert code_of(lambda: rig.order(side="BUY", type="LIMIT", timeInForce="GTX", quantity="1",
                                     price="100.1")) == -5022
    assert code_of(lambda: rig.order(side="SELL", type="LIMIT", timeInForce="GTX", quantity="1",
                                     price="100.0")) == -5022
    r = rig.order(side="BUY", type="LIMIT", timeInForce="GTX", quantity="1", price="100.0")
    assert r["status"] == "NEW" and r["timeInForce"] == "GTX"


@pytest.mark.parametrize(("params", "code"), [
    ({"price": "100.05"}, -1111),           # more decimals than the tick
    ({"quantity": "0.0001"}, -1111),        # more decimals than the step
    ({"quantity": "0"}, -4003),
    ({"quantity": "abc"}, -1102),
    ({"price": "-1"}, -4001),
    ({"quantity": "0.01"}, -4164),          # 1 USDT < 5 USDT minimum notional
    ({"symbol": "NOPEUSDT"}, -1121),
    ({"side": "UP"}, -1117),
    ({"type": "STOP"}, -1116),
    ({"timeInForce": "GTD"}, -1115),
    ({"newClientOrderId": "has space"}, -4015),
    ({"newClientOrderId": "x" * 37}, -4015),
    ({"positionSide": "LONG"}, -4061),
    ({"newOrderRespType": "FULL"}, -1136),
    ({"reduceOnly": "maybe"}, -1130),
])
def test_filters_and_parameters(params: dict[str, str], code: int) -> None:
    rig = Rig()
    base = {"side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.1", "price": "99.0"}
    base.update(params)
    assert code_of(lambda: rig.order(**base)) == code


def test_tick_and_step_that_are_not_powers_of_ten() -> None:
    rig = Rig(tick=0.5, step=0.002)
    rig.book.ladder(BTC, 100.0, 100.5, 1.0)
    base = {"side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.1", "price": "99.0"}
    assert code_of(lambda: rig.order(**{**base, "price": "99.3"})) == -4014
    assert code_of(lambda: rig.order(**{**base, "quantity": "0.101"})) == -4023
    assert rig.order(**base)["status"] == "NEW"


def test_client_order_id_is_unique_among_open_orders_only() -> None:
    rig = Rig()
    base = {"side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.1", "price": "99.0",
            "newClientOrderId": "abc.:/_-XYZ"}
    first = rig.order(**base)
    assert code_of(lambda: rig.order(**base)) == -4116
    rig.engine.cancel_order(K1, BTC, client_id="abc.:/_-XYZ")
    second = rig.order(**base)  # Binance: unique among open orders, so a finished id may come back
    assert second["orderId"] != first["orderId"]
    assert rig.engine.query_order(K1, BTC, client_id="abc.:/_-XYZ")["orderId"] == second["orderId"]
    assert rig.engine.query_order(K1, BTC, order_id=first["orderId"])["status"] == "CANCELED"


def test_cancel_open_filled_and_unknown() -> None:
    rig = Rig()
    r = rig.order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.1", price="99.0")
    c = rig.engine.cancel_order(K1, BTC, order_id=r["orderId"])
    assert c["status"] == "CANCELED" and rig.otu()[-1]["x"] == "CANCELED"
    assert code_of(lambda: rig.engine.cancel_order(K1, BTC, order_id=r["orderId"])) == -2011
    m = rig.order(side="BUY", type="MARKET", quantity="0.1")
    assert m["status"] == "FILLED"
    assert code_of(lambda: rig.engine.cancel_order(K1, BTC, order_id=m["orderId"])) == -2011  # lost the race
    assert code_of(lambda: rig.engine.cancel_order(K1, BTC, client_id="never-sent")) == -2011
    assert code_of(lambda: rig.engine.query_order(K1, BTC, client_id="never-sent")) == -2013
    assert code_of(lambda: rig.engine.cancel_order(K1, BTC)) == -1102
    assert code_of(lambda: rig.engine.cancel_order("nobody", BTC, order_id=1)) == -2015


def test_cancel_all_open_orders_of_a_symbol() -> None:
    rig = Rig()
    for px in ("99.0", "99.1", "99.2"):
        rig.order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.1", price=px)
    rig.order(symbol=ETH, side="BUY", type="LIMIT", timeInForce="GTC", quantity="1", price="9.00")
    assert rig.engine.cancel_all(K1, BTC) == 3
    assert [o["symbol"] for o in rig.engine.open_orders(K1)] == [ETH]


def test_reduce_only_rules() -> None:
    rig = Rig()
    base = {"side": "SELL", "type": "MARKET", "quantity": "0.5", "reduceOnly": "true"}
    assert code_of(lambda: rig.order(**base)) == -2022  # flat
    rig.order(side="BUY", type="MARKET", quantity="0.3")
    assert code_of(lambda: rig.order(**{**base, "side": "BUY"})) == -2022  # would increase a long
    r = rig.order(**base)  # 0.5 against a 0.3 long: only 0.3 executes, the rest expires
    assert r["status"] == "EXPIRED" and r["executedQty"] == "0.300"
    assert rig.engine.accounts[K1].positions[BTC].lots == 0
    # reduce-only orders below the notional minimum are allowed
    rig.order(side="BUY", type="MARKET", quantity="0.1")
    tp = rig.order(side="SELL", type="LIMIT", timeInForce="GTX", quantity="0.1", price="101.0", reduceOnly="true")
    tp2 = rig.order(side="SELL", type="LIMIT", timeInForce="GTX", quantity="0.01", price="102.0", reduceOnly="true")
    assert tp["status"] == tp2["status"] == "NEW"
    rig.book.print_trade(BTC, 101.1, 1.0, False)  # fills the 0.1 TP: flat, so the other TP expires
    assert rig.engine.query_order(K1, BTC, order_id=tp["orderId"])["status"] == "FILLED"
    assert rig.engine.query_order(K1, BTC, order_id=tp2["orderId"])["status"] == "EXPIRED"


def test_initial_margin_check() -> None:
    rig = Rig(balance=100.0)  # 20x: 2,000 USDT of notional at most
    assert code_of(lambda: rig.order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="21",
                                     price="99.0")) == -2019
    rig.order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="15", price="99.0")  # 74.25 margin
    assert code_of(lambda: rig.order(side="SELL", type="LIMIT", timeInForce="GTC", quantity="6",
                                     price="101.0")) == -2019
    rig.engine.set_leverage(K1, BTC, 50)
    rig.order(side="SELL", type="LIMIT", timeInForce="GTC", quantity="6", price="101.0")
    assert code_of(lambda: rig.engine.set_leverage(K1, BTC, 0)) == -4028


def test_realised_pnl_commissions_and_wallet() -> None:
    rig = Rig(step=0.001)
    rig.order(side="BUY", type="MARKET", quantity="1")          # 1 @ 100.1, taker fee 0.05005
    rig.book.ladder(BTC, 110.0, 110.1, 1.0)
    r = rig.order(side="SELL", type="MARKET", quantity="1")     # 1 @ 110.0 (best bid), fee 0.055
    assert r["status"] == "FILLED"
    sell = [e for e in rig.otu() if e["x"] == "TRADE"][-1]
    assert sell["rp"] == "9.90000000" and sell["n"] == "0.05500000"
    assert rig.wallet() == Decimal("100000") + Decimal("9.9") - Decimal("0.05005") - Decimal("0.055")
    trades = rig.engine.user_trades(K1, BTC)
    assert [t["realizedPnl"] for t in trades] == ["0.00000000", "9.90000000"]
    kinds = [i["incomeType"] for i in rig.engine.income_rows(K1)]
    assert kinds == ["COMMISSION", "REALIZED_PNL", "COMMISSION"]


def test_position_flip_realises_the_closed_part_and_reopens_at_the_fill() -> None:
    rig = Rig()
    rig.order(side="BUY", type="MARKET", quantity="0.5")          # long 0.5 @ 100.1
    rig.order(side="SELL", type="MARKET", quantity="1.5")         # 1.0 @ 100.0, 0.5 @ 99.9
    pos = rig.engine.accounts[K1].positions[BTC]
    assert pos.lots == -1000 and rig.acct_updates()[-1]["P"][0]["pa"] == "-1.000"
    realised = sum(Decimal(t["realizedPnl"]) for t in rig.engine.user_trades(K1, BTC))
    assert realised == Decimal("-0.05")  # (100.0 - 100.1) * 0.5


def test_funding_settles_on_positions_with_balance_only_account_update() -> None:
    rig = Rig()
    rig.order(side="BUY", type="MARKET", quantity="2")
    rig.order(K2, side="SELL", type="MARKET", quantity="1")
    rig.book.marks[BTC] = 100.0
    w1, w2 = rig.wallet(K1), rig.wallet(K2)
    rig.book.settle(BTC, 0.0001)
    assert rig.wallet(K1) == w1 - Decimal("0.02") and rig.wallet(K2) == w2 + Decimal("0.01")
    up = rig.acct_updates(K1)[-1]
    assert up["m"] == "FUNDING_FEE" and up["P"] == [] and up["B"][0]["bc"] == "-0.02000000"
    assert rig.engine.income_rows(K2, income_type="FUNDING_FEE")[0]["income"] == "0.01000000"


def test_own_taker_prints_never_fill_own_resting_orders_but_fill_others() -> None:
    rig = Rig()
    mine = rig.order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.2", price="99.8")
    theirs = rig.order(K2, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.2", price="99.8")
    rig.order(side="SELL", type="MARKET", quantity="4")  # sweeps 100.0, 99.9, 99.8 (queue 1.0), 99.7 ...
    assert rig.engine.query_order(K1, BTC, order_id=mine["orderId"])["executedQty"] == "0.000"
    assert rig.engine.query_order(K2, BTC, order_id=theirs["orderId"])["status"] == "FILLED"


def test_views_balance_account_and_positions() -> None:
    rig = Rig()
    rig.order(side="BUY", type="MARKET", quantity="1")
    rig.order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="1", price="90.0")
    rig.book.marks[BTC] = 101.1
    (bal,) = rig.engine.balance_payloads(K1)
    assert bal["asset"] == "USDT" and Decimal(bal["crossUnPnl"]) == Decimal("1.0")
    v2 = rig.engine.position_payloads(K1)
    assert {p["symbol"] for p in v2} == {BTC, ETH} and v2[0]["positionAmt"] == "1.000"
    v3 = rig.engine.position_payloads(K1, version=3)
    assert [p["symbol"] for p in v3] == [BTC] and v3[0]["openOrderInitialMargin"] == "4.50000000"
    acct = rig.engine.account_payload(K1)
    assert acct["assets"][0]["walletBalance"] == bal["balance"] and len(acct["positions"]) == 2
    assert Decimal(acct["availableBalance"]) == Decimal(bal["availableBalance"])


def test_simulator_account_from_the_environment_or_generated() -> None:
    book = LevelBook({BTC: Spec(0.1, 0.001)})
    api, info = trading_extension(book, env={"ARBRAY_SIM_API_KEY": "k" * 20, "ARBRAY_SIM_API_SECRET": "s" * 40})
    assert info == {"api_key": "k" * 20, "balance": "100000.00000000", "asset": "USDT",
                    "api_secret_from": "ARBRAY_SIM_API_SECRET"}
    assert api.engine.accounts["k" * 20].secret.get_secret_value() == "s" * 40
    assert "s" * 40 not in repr(api.engine.accounts["k" * 20])
    api2, info2 = trading_extension(LevelBook({BTC: Spec(0.1, 0.001)}), env={})
    assert len(info2["api_key"]) == len(info2["api_secret"]) == 64 and info2["api_key"] != info2["api_secret"]
    assert api2.engine.accounts[info2["api_key"]].secret.get_secret_value() == info2["api_secret"]
    k1, s1, generated = sim_credentials({})
    assert generated and (k1, s1) != sim_credentials({})[:2]
