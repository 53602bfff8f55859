"""Every real recording reads into the same event model; Binance public-data CSVs too."""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from pathlib import Path

import pytest

from arbray.features.snapshot import FeatureSnapshot
from arbray.replay.engine import MarketState, ReplayEngine
from arbray.replay.readers import UnsupportedInput, open_input, symbol_from_name

pytestmark = pytest.mark.integration


def consume(path: Path) -> MarketState:
    state = MarketState()
    for _, _, payload in open_input(path):
        state.apply(payload)
    for s in state.symbols.values():
        s.flush()
    return state


@pytest.mark.parametrize(
    ("rel", "symbols", "min_trades"),
    [
        ("hftbacktest/usdm/btcusdt_20230404.dat.gz", {"BTCUSDT"}, 2000),
        ("hftbacktest/usdm/ethusdt_20240808.gz", {"ETHUSDT"}, 14000),
        ("cryptofeed/BINANCE_FUTURES_2021-07-22.jsonl.zst", {"SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"}, 80),
        ("cryptofeed/BINANCE_FUTURES_2021-04-17.ws.5.0.zst", {"DENTUSDT", "KSMUSDT", "XMRUSDT", "YFIUSDT"}, 150),
        ("nautilus_trader/tardis_binance-futures_BTCUSDT_trades_2020-02-22.csv.gz", {"BTCUSDT"}, 9999),
    ],
)
def test_real_files_read_without_rejects(real_data: Path, rel: str, symbols: set[str], min_trades: int) -> None:
    state = consume(real_data / rel)
    assert set(state.symbols) == symbols
    assert not state.rejects, state.rejects
    assert sum(s.stats["trades"] for s in state.symbols.values()) >= min_trades


def test_every_hftbacktest_file_reads(hft_files: list[Path]) -> None:
    assert len(hft_files) == 8
    for f in hft_files:
        state = consume(f)
        assert not state.rejects and list(state.symbols) == [symbol_from_name(f)]
        assert state.parser.events["bookTicker"] > 1000 and state.parser.events["depthUpdate"] > 1000


def test_cryptofeed_rest_only_and_tardis_top_of_book(real_data: Path) -> None:
    http = consume(real_data / "cryptofeed" / "BINANCE_FUTURES_2021-04-17.http.4.0.zst")
    assert http.parser.events["depthSnapshot"] == 4 and not http.rejects
    assert consume(real_data / "cryptofeed" / "BINANCE_FUTURES_2021-04-17.0.zst").parser.events == {}
    for name in ("tardis_binance-futures_BTCUSDT_quotes_2020-02-22.csv.gz",
                 "tardis_binance-futures_book_snapshot_25_BTCUSDT.csv"):
        st = consume(real_data / "nautilus_trader" / name)
        bt = st.symbols["BTCUSDT"].book_ticker
        assert bt is not None and bt.bid < bt.ask


def _tardis_rows(real_data: Path) -> list[dict[str, str]]:
    path = real_data / "nautilus_trader" / "tardis_binance-futures_BTCUSDT_trades_2020-02-22.csv.gz"
    with gzip.open(path, "rt") as fh:
        return list(csv.DictReader(fh))


def test_binance_aggtrades_csv_gives_the_same_features_as_tardis(real_data: Path, tmp_path: Path) -> None:
    """The same real trades written as a Binance public-data aggTrades zip replay identically."""
    rows = _tardis_rows(real_data)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time",
                "is_buyer_maker"])
    for r in rows:
        w.writerow([r["id"], r["price"], r["amount"], r["id"], r["id"], int(r["timestamp"]) // 1000,
                    "true" if r["side"] == "sell" else "false"])
    zpath = tmp_path / "BTCUSDT-aggTrades-2020-02-22.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("BTCUSDT-aggTrades-2020-02-22.csv", buf.getvalue())

    def snaps(path: Path) -> list[FeatureSnapshot]:
        out: list[FeatureSnapshot] = []
        ReplayEngine(60_000, out.append).run([open_input(path, 60_000)])
        return out

    a = snaps(zpath)
    b = snaps(real_data / "nautilus_trader" / "tardis_binance-futures_BTCUSDT_trades_2020-02-22.csv.gz")
    assert len(a) == len(b) > 100 and a == b


def test_binance_klines_csv_warms_up_atr(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-5m-2024-01-01.csv"
    lines = ["open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
             "taker_buy_quote_volume,ignore"]
    for k in range(30):
        o = 100 + k
        lines.append(f"{k * 300000},{o},{o + 2},{o - 1},{o + 1},10,{k * 300000 + 299999},1000,5,4,400,0")
    path.write_text("\n".join(lines) + "\n")
    state = consume(path)
    bars = state.symbols["BTCUSDT"].bars_5m
    assert bars.atr is not None and state.symbols["BTCUSDT"].stats["klines_used"] == 30
    assert bars.atr == pytest.approx(3.0)  # every TR is H − L = 3 (gaps are within the range)


def test_unknown_files_fail_clearly(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("hello\n")
    with pytest.raises(UnsupportedInput, match="unrecognised format"):
        open_input(p)
    with pytest.raises(FileNotFoundError):
        open_input(tmp_path / "missing.gz")
