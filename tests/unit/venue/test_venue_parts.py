"""Venue client parts without a network: config safety, credentials, wire ids, payload parsing."""

from __future__ import annotations

import os
import pickle
import secrets
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from arbray.execution.venue import Order
from arbray.venue import BinanceCredentials, BinanceVenue, BinanceVenueConfig, ClientIdMap, CredentialsError, wire_id
from arbray.venue.binance import PRODUCTION_REST, TESTNET_REST, is_production_url
from arbray.venue.client_ids import WIRE_ID, parse_engine_id
from arbray.venue.events import PayloadError, parse_order_trade_update, parse_rest_order

pytestmark = pytest.mark.unit


def test_production_is_refused_without_the_flag() -> None:
    with pytest.raises(ValidationError, match="allow_production"):
        BinanceVenueConfig.production()
    with pytest.raises(ValidationError, match="allow_production"):
        BinanceVenueConfig(rest_base=TESTNET_REST, ws_base="wss://fstream.binance.com")
    cfg = BinanceVenueConfig.production(allow_production=True)
    assert cfg.is_production and cfg.rest_base == PRODUCTION_REST
    assert not BinanceVenueConfig.testnet().is_production
    assert not BinanceVenueConfig(rest_base="http://127.0.0.1:1", ws_base="ws://127.0.0.1:1").is_production
    assert is_production_url("https://fapi-mm.binance.com") and not is_production_url("https://testnet.binancefuture.com")
    # a config built around validation still cannot reach production
    sneaky = BinanceVenueConfig.model_construct(rest_base=PRODUCTION_REST, ws_base="wss://fstream.binance.com",
                                                allow_production=False)
    with pytest.raises(ValueError, match="allow_production"):
        BinanceVenue(sneaky, BinanceCredentials("k" * 16, "s" * 16))


def test_credentials_from_env_and_file_never_show_the_secret(tmp_path: Path) -> None:
    key, secret = secrets.token_hex(32), secrets.token_hex(32)
    creds = BinanceCredentials.from_env({"BINANCE_API_KEY": key, "BINANCE_API_SECRET": secret})
    assert creds.api_key == key and creds.secret_equals(secret)
    assert secret not in repr(creds) and secret not in str(creds) and key not in repr(creds)
    with pytest.raises(TypeError):
        pickle.dumps(creds)
    with pytest.raises(CredentialsError, match="BINANCE_API_SECRET"):
        BinanceCredentials.from_env({"BINANCE_API_KEY": key})
    p = tmp_path / "binance.json"
    p.write_text(f'{{"api_key": "{key}", "api_secret": "{secret}"}}')
    os.chmod(p, 0o600)
    assert BinanceCredentials.from_file(p).secret_equals(secret)
    env_file = tmp_path / "binance.env"
    env_file.write_text(f"# testnet\nBINANCE_API_KEY={key}\nBINANCE_API_SECRET='{secret}'\n")
    os.chmod(env_file, 0o600)
    assert BinanceCredentials.from_file(env_file).secret_equals(secret)
    os.chmod(env_file, 0o644)
    with pytest.raises(CredentialsError, match="chmod 600") as e:
        BinanceCredentials.from_file(env_file)
    assert secret not in str(e.value)
    bad = tmp_path / "bad.env"
    bad.write_text(f"BINANCE_API_KEY={key}\nOTHER={secret}\n")
    os.chmod(bad, 0o600)
    with pytest.raises(CredentialsError) as e:
        BinanceCredentials.from_file(bad)
    assert secret not in str(e.value)


def test_wire_ids_are_deterministic_valid_and_reversible() -> None:
    long_id = "momentum_breakout_v53_fast-ETHUSDT-1234-T1F"
    w = wire_id(long_id)
    assert w == wire_id(long_id) and WIRE_ID.match(w) and len(w) <= 36 and w.startswith("ab-")
    assert wire_id("s1-BTCUSDT-3-EM") == "s1-BTCUSDT-3-EM"  # already valid: sent unchanged
    assert wire_id("ab-looks-hashed") != "ab-looks-hashed"  # never confused with a hashed id
    assert wire_id("has space-BTCUSDT-1-EM").startswith("ab-")
    ids = ClientIdMap()
    ids.learn([long_id, "s1-BTCUSDT-3-EM"])
    fresh = ClientIdMap()  # a new process rebuilds the same map from the ids the engine knows
    fresh.learn([long_id])
    assert ids.engine(w) == fresh.engine(w) == long_id and fresh.engine("foreign") is None
    assert len({wire_id(f"s-BTCUSDT-{i}-EM{j}" * 3) for i in range(300) for j in range(3)}) == 900
    assert parse_engine_id(long_id) == ("momentum_breakout_v53_fast", "ETHUSDT")
    assert parse_engine_id("a-b-c-SOLUSDT-7-SL1") == ("a-b-c", "SOLUSDT")
    assert parse_engine_id("not an engine id") is None


def test_order_trade_update_parsing_is_strict() -> None:
    msg = {"e": "ORDER_TRADE_UPDATE", "E": 2, "T": 1, "o": {
        "s": "BTCUSDT", "c": "abc", "S": "SELL", "o": "LIMIT", "f": "GTX", "q": "0.010", "p": "60000.0",
        "ap": "60000.0", "sp": "0", "x": "TRADE", "X": "PARTIALLY_FILLED", "i": 7, "l": "0.004", "z": "0.004",
        "L": "60000.0", "N": "USDT", "n": "0.048", "T": 1, "t": 99, "m": True, "R": True, "rp": "1.5"}}
    u = parse_order_trade_update(msg)
    assert (u.side, u.last_qty, u.cum_qty, u.trade_id, u.maker, u.commission) == (-1, 0.004, 0.004, 99, True, 0.048)
    for broken, reason in ((dict(msg["o"], S="UP"), "bad_side"), (dict(msg["o"], z="NaN"), "bad_z"),
                           (dict(msg["o"], i=True), "bad_i"), ({k: v for k, v in msg["o"].items() if k != "c"},
                                                                "missing_c")):
        with pytest.raises(PayloadError) as e:
            parse_order_trade_update({**msg, "o": broken})
        assert e.value.reason == reason
    ro = parse_rest_order({"symbol": "BTCUSDT", "clientOrderId": "x", "orderId": 3, "side": "BUY",
                           "status": "EXPIRED", "origQty": "1", "executedQty": "0.5", "price": "0", "type": "MARKET"})
    assert ro.terminal and ro.executed_qty == 0.5


def test_order_params_map_the_machine_order_kinds() -> None:
    venue = BinanceVenue(BinanceVenueConfig(rest_base="http://127.0.0.1:9", ws_base="ws://127.0.0.1:9"),
                         BinanceCredentials("k" * 16, "s" * 16))
    venue._filters["BTCUSDT"] = (Decimal("0.1"), Decimal("0.001"))
    gtx = venue._order_params(Order("s-BTCUSDT-1-EM", "s", "BTCUSDT", 1, 0.30000000000000004, "limit", 60000.1,
                                    post_only=True))
    assert gtx == {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.300", "newClientOrderId": "s-BTCUSDT-1-EM",
                   "newOrderRespType": "RESULT", "type": "LIMIT", "price": "60000.1", "timeInForce": "GTX"}
    gtc = venue._order_params(Order("s-BTCUSDT-1-T1", "s", "BTCUSDT", -1, 0.3, "limit", 60100.0, reduce_only=True))
    assert gtc["timeInForce"] == "GTC" and gtc["reduceOnly"] == "true" and gtc["side"] == "SELL"
    mkt = venue._order_params(Order("s-BTCUSDT-1-SL", "s", "BTCUSDT", -1, 0.3, "market", reduce_only=True))
    assert mkt["type"] == "MARKET" and "price" not in mkt and "timeInForce" not in mkt
