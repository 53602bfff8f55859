"""REST reply parsing (bad rows counted by reason), open-interest alignment and the universe filter."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from arbray.screener.backfill import (
    Series,
    align_open_interest,
    closed_rows,
    funding_until,
    oi_samples_for,
    parse_funding,
    parse_klines,
    parse_open_interest,
)
from arbray.screener.synth import synthetic_universe, write_feather_universe
from arbray.screener.universe import universe_from_exchange_info, universe_from_kline_dir

pytestmark = pytest.mark.unit
P = 300_000


def row(i: int, **over: object) -> list[object]:
    r: list[object] = [i * P, "10.0", "11.0", "9.0", "10.5", "100", i * P + P - 1, "1000", 7, "40", "400", "0"]
    for k, v in over.items():
        r[int(k[1:])] = v
    return r


def test_bad_kline_rows_are_counted_and_dropped() -> None:
    rej: Counter[str] = Counter()
    rows = [row(0), row(1, c2="8.0"), row(2, c1="-1"), row(3, c9="101"), row(4, c0=4 * P + 5),
            "junk", row(5, c5="x"), row(6), row(6), row(7, c6=1)]
    b = parse_klines("5m", rows, rej)
    assert b.open_ms.tolist() == [0, 6 * P]
    assert rej == Counter({"klines:inconsistent_ohlc": 1, "klines:nonpositive_price": 1,
                           "klines:taker_buy_above_volume": 1, "klines:bad_open_time": 2, "klines:bad_row": 1,
                           "klines:bad_value": 1, "klines:out_of_order": 1})
    assert len(parse_klines("5m", {"code": -1121}, rej)) == 0 and rej["klines:not_a_list"] == 1
    assert b.taker_buy.tolist() == [40.0, 40.0] and b.trades.tolist() == [7, 7]


def test_closed_rows_drop_the_newest_unless_the_streams_passed_its_end() -> None:
    b = parse_klines("5m", [row(i) for i in range(4)], Counter())
    assert closed_rows(b, None).open_ms.tolist() == [0, P, 2 * P]
    assert len(closed_rows(b, 4 * P - 1)) == 3 and len(closed_rows(b, 4 * P)) == 4


def test_samples_parse_and_align_to_bar_closes() -> None:
    rej: Counter[str] = Counter()
    oi = parse_open_interest([{"timestamp": t * P, "sumOpenInterest": str(1000 + t)} for t in range(1, 80)]
                             + [{"timestamp": 5, "sumOpenInterest": "-1"}, {"nope": 1}], rej)
    assert len(oi) == 79 and rej == Counter({"open_interest:bad_value": 1, "open_interest:bad_row": 1})
    opens = np.arange(0, 70, dtype=np.int64) * P
    a = align_open_interest(opens, P, oi)
    assert a is not None and a[0] == 1001.0 and a[-1] == 1070.0
    assert align_open_interest(opens, P, Series(oi.ts_ms[-10:], oi.value[-10:])) is None  # < 50 bars covered
    assert align_open_interest(opens, P, None) is None
    f = parse_funding([{"fundingTime": 3, "fundingRate": "0.0001"}, {"fundingTime": 9, "fundingRate": "-0.0002"}],
                      rej)
    assert funding_until(f, 5) is not None and funding_until(f, 5).tolist() == [0.0001]  # type: ignore[union-attr]
    assert funding_until(f, 2) is None and f.value.tolist() == [0.0001, -0.0002]
    assert oi_samples_for(300, "5m", "5m") == 301 and oi_samples_for(300, "1h", "5m") == 500


def test_universe_keeps_trading_usdt_perpetuals_and_says_what_it_dropped(tmp_path: Path) -> None:
    doc = {"symbols": [
        {"symbol": "BTCUSDT", "contractType": "PERPETUAL", "status": "TRADING", "quoteAsset": "USDT"},
        {"symbol": "ETHUSDT", "contractType": "PERPETUAL", "status": "TRADING", "quoteAsset": "USDT"},
        {"symbol": "BTCUSDC", "contractType": "PERPETUAL", "status": "TRADING", "quoteAsset": "USDC"},
        {"symbol": "BTCUSDT_250627", "contractType": "CURRENT_QUARTER", "status": "TRADING", "quoteAsset": "USDT"},
        {"symbol": "OLDUSDT", "contractType": "PERPETUAL", "status": "SETTLING", "quoteAsset": "USDT"},
        {"contractType": "PERPETUAL"}, "junk"]}
    u = universe_from_exchange_info(doc)
    assert u.symbols == ("BTCUSDT", "ETHUSDT") and len(u) == 2
    assert u.excluded == {"malformed": 2, "not_perpetual": 1, "not_trading": 1, "quote_USDC": 1}
    with pytest.raises(ValueError, match="not an exchangeInfo"):
        universe_from_exchange_info({"rateLimits": []})
    write_feather_universe(tmp_path / "k", synthetic_universe(4))
    assert universe_from_kline_dir(tmp_path / "k").symbols == ("BTCUSDT", "ETHUSDT", "SYN0002USDT", "SYN0003USDT")
    with pytest.raises(FileNotFoundError):
        universe_from_kline_dir(tmp_path / "none")
