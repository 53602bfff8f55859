"""The shared Binance tables: request costs, sliding-window rate limiting, error actions, signing."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbray.binance.errors import ERRORS, action_for, error_body
from arbray.binance.signing import sign, signed_query, verify
from arbray.binance.weights import RATE_LIMITS, RateLimiter, UnknownEndpoint, request_cost

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("limit", "weight"), [(5, 2), (50, 2), (100, 5), (500, 10), (1000, 20)])
def test_depth_weight_steps_with_limit(limit: int, weight: int) -> None:
    assert request_cost("GET", "/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": limit}) == {"weight": weight}


@pytest.mark.parametrize(("limit", "weight"), [(1, 1), (99, 1), (100, 2), (499, 2), (500, 5), (1000, 5), (1500, 10)])
def test_kline_weight_steps_with_limit(limit: int, weight: int) -> None:
    assert request_cost("GET", "/fapi/v1/klines", {"symbol": "BTCUSDT", "limit": limit}) == {"weight": weight}


def test_costs_by_symbol_presence_and_pool() -> None:
    assert request_cost("GET", "/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"}) == {"weight": 1}
    assert request_cost("GET", "/fapi/v1/premiumIndex", {}) == {"weight": 10}
    assert request_cost("GET", "/fapi/v1/aggTrades", {"symbol": "BTCUSDT", "fromId": 5}) == {"weight": 20}
    assert request_cost("GET", "/futures/data/openInterestHist", {"symbol": "BTCUSDT"}) == {"futures_data": 1}
    assert request_cost("POST", "/fapi/v1/order", {"symbol": "BTCUSDT"}) == {"orders": 1}
    assert request_cost("GET", "/api/v3/ticker/price", {"symbol": "BTCUSDT"}) == {"spot_weight": 2}
    with pytest.raises(UnknownEndpoint):
        request_cost("GET", "/fapi/v9/nothing")


def test_rate_limiter_waits_for_the_oldest_weight_to_expire() -> None:
    rl = RateLimiter()
    cost = request_cost("GET", "/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 1000})  # 20
    for k in range(120):  # 120 × 20 = 2,400: the whole minute's budget
        assert rl.wait_ms(cost, 1_000 + k) == 0
        rl.charge(cost, 1_000 + k)
    assert rl.wait_ms(cost, 2_000) == 1_000 + 60_000 - 2_000  # until the first one leaves the window
    assert rl.wait_ms(cost, 61_000) == 0
    assert rl.used("weight", 60_000, 61_000) == 2_380


def test_order_limits_have_two_windows() -> None:
    rl = RateLimiter()
    order = {"orders": 1}
    for k in range(300):
        rl.charge(order, k)
    assert rl.wait_ms(order, 500) == 10_000 - 500  # the 10 s window is full
    assert rl.wait_ms(order, 10_000) == 0


def test_observed_exchange_usage_is_a_floor() -> None:
    rl = RateLimiter()
    rl.observe({"X-MBX-USED-WEIGHT-1M": "2390"}, 5_000)
    assert rl.used("weight", 60_000, 5_000) == 2_390
    assert rl.wait_ms({"weight": 20}, 5_000) == 60_000
    assert rl.wait_ms({"weight": 5}, 5_000) == 0
    assert rl.used("weight", 60_000, 65_000) == 0


@given(st.lists(st.tuples(st.integers(0, 5_000), st.sampled_from([1, 2, 5, 10, 20])), max_size=300))
def test_no_window_ever_exceeds_its_limit_when_the_limiter_is_obeyed(reqs: list[tuple[int, int]]) -> None:
    rl = RateLimiter()
    sent: list[tuple[int, int]] = []
    now = 0
    for gap, w in reqs:
        now += gap
        now += rl.wait_ms({"weight": w}, now)
        rl.charge({"weight": w}, now)
        sent.append((now, w))
    lim = next(x for x in RATE_LIMITS if x.pool == "weight")
    for t, _ in sent:
        assert sum(w for s, w in sent if t - lim.interval_ms < s <= t) <= lim.limit


def test_error_actions() -> None:
    assert action_for(-5022, 400) == "reject"
    assert action_for(-1007, 408) == "reconcile"
    assert action_for(-1006, 500) == "reconcile"
    assert action_for(-1015, 429) == "backoff"
    assert action_for(None, 418) == "backoff"
    assert action_for(None, 503) == "reconcile"
    assert action_for(None, 502) == "retry"
    assert action_for(-4116, 400) == "duplicate"
    assert error_body(-1003, 2400) == {"code": -1003, "msg": ERRORS[-1003].message % 2400}


def test_signing_matches_binance_example() -> None:
    # The worked example in Binance's USD-M "SIGNED endpoint examples" (HMAC keys published for the docs).
    secret = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
    query = ("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC&recvWindow=5000"
             "&timestamp=1591702613943")
    assert sign(secret, query) == "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
    assert verify(secret, f"{query}&signature={sign(secret, query)}")
    assert not verify(secret, f"{query}&signature={'0' * 64}")


def test_signed_query_appends_timestamp_and_signature_last() -> None:
    q = signed_query("s3cret", {"symbol": "BTCUSDT", "reduceOnly": True, "price": None}, 123, 5_000)
    head, sig = q.split("&signature=")
    assert head == "symbol=BTCUSDT&reduceOnly=true&recvWindow=5000&timestamp=123"
    assert sig == hmac.new(b"s3cret", head.encode(), hashlib.sha256).hexdigest()
