"""Per-symbol kline inputs for the screener and the universe they come from.

Optional extra columns ``taker_buy_volume`` (Binance kline field 9, base asset) and ``open_interest``
(base asset, sampled at each bar's close) are read when a file carries them.

A ``SymbolKlines`` holds one symbol's bars (oldest first) plus the optional inputs some factors
need: taker-buy volume (CVD), open-interest history (OVR, O), funding settlements (B/funding),
and V2-only order-book and liquidation summaries. An input that is absent stays ``None`` and the
factors that need it come out NaN and listed as missing — nothing is filled with a constant.

The universe comes from a folder of freqtrade-style Feather files (``BTC_USDT_USDT-5m-futures.feather``;
columns ``date, open, high, low, close, volume``) or from a Binance ``exchangeInfo``-style JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow.feather as feather

_KLINE_NAME = re.compile(r"^(?P<base>[0-9A-Z]+)_(?P<quote>[A-Z]+)_[A-Z]+-(?P<tf>\d+[mhdw])-futures\.feather$")
_FUNDING_NAME = re.compile(r"^(?P<base>[0-9A-Z]+)_(?P<quote>[A-Z]+)_[A-Z]+-\d+[mhdw]-funding_rate\.feather$")


@dataclass(frozen=True)
class BookSummary:
    """Order-book liquidity from a depth snapshot: spread (bps) and notional within ±1 % of mid (USDT)."""

    spread_bps: float
    depth_usd: float


@dataclass(frozen=True)
class LiquidationSummary:
    """Liquidated notional (USDT) over the look-back: long positions liquidated vs short positions."""

    long_usd: float
    short_usd: float


@dataclass(frozen=True)
class SymbolKlines:
    """One symbol's bars (oldest first, equal length arrays) and its optional extra inputs."""

    symbol: str
    timeframe: str
    ts_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    taker_buy: np.ndarray | None = None
    open_interest: np.ndarray | None = None
    funding: np.ndarray | None = None
    spot_close: float | None = None
    book: BookSummary | None = None
    liquidations: LiquidationSummary | None = None

    @property
    def key(self) -> str:
        """``SYMBOL@timeframe``: a folder may hold the same symbol at several timeframes."""
        return f"{self.symbol}@{self.timeframe}"

    @property
    def bars(self) -> int:
        return int(self.close.shape[0])

    def tail(self, n: int) -> SymbolKlines:
        """The last ``n`` bars (and the open-interest samples aligned with them)."""
        oi = self.open_interest[-n:] if self.open_interest is not None else None
        tb = self.taker_buy[-n:] if self.taker_buy is not None else None
        return SymbolKlines(self.symbol, self.timeframe, self.ts_ms[-n:], self.open[-n:], self.high[-n:],
                            self.low[-n:], self.close[-n:], self.volume[-n:], tb, oi, self.funding,
                            self.spot_close, self.book, self.liquidations)


def read_feather_klines(path: Path, max_bars: int | None = None) -> SymbolKlines:
    """One ``*-futures.feather`` file as ``SymbolKlines`` (the last ``max_bars`` bars if given)."""
    m = _KLINE_NAME.match(path.name)
    if m is None:
        raise ValueError(f"{path.name}: not a freqtrade futures kline file (BASE_QUOTE_QUOTE-TF-futures.feather)")
    table = feather.read_table(path)
    start = max(0, table.num_rows - max_bars) if max_bars else 0
    table = table.slice(start)
    ts = table.column("date").cast("int64").to_numpy()
    unit = str(table.schema.field("date").type.unit)
    ts_ms = ts // {"s": 1, "ms": 1, "us": 1_000, "ns": 1_000_000}[unit] * (1_000 if unit == "s" else 1)
    col = {name: table.column(name).to_numpy().astype(np.float64)
           for name in ("open", "high", "low", "close", "volume")}
    optional = {name: table.column(name).to_numpy().astype(np.float64)
                for name in ("taker_buy_volume", "open_interest") if name in table.column_names}
    funding_path = path.parent.parent / "funding"
    funding = read_funding(funding_path, m["base"] + m["quote"], int(ts_ms[-1])) if funding_path.is_dir() else None
    return SymbolKlines(m["base"] + m["quote"], m["tf"], ts_ms.astype(np.int64), col["open"], col["high"],
                        col["low"], col["close"], col["volume"], taker_buy=optional.get("taker_buy_volume"),
                        open_interest=optional.get("open_interest"), funding=funding)


def read_funding(folder: Path, symbol: str, until_ms: int) -> np.ndarray | None:
    """Funding settlements (rate per interval, in ``open``) up to ``until_ms`` from the freqtrade folder."""
    best: np.ndarray | None = None
    for path in sorted(folder.glob("*-funding_rate.feather")):
        m = _FUNDING_NAME.match(path.name)
        if m is None or m["base"] + m["quote"] != symbol:
            continue
        table = feather.read_table(path)
        ts = table.column("date").cast("int64").to_numpy()
        unit = str(table.schema.field("date").type.unit)
        ts_ms = ts // {"s": 1, "ms": 1, "us": 1_000, "ns": 1_000_000}[unit] * (1_000 if unit == "s" else 1)
        rates = table.column("open").to_numpy().astype(np.float64)[ts_ms <= until_ms]
        if rates.size and (best is None or rates.size > best.size):
            best = rates
    return best


def load_kline_dir(folder: Path, max_bars: int | None = None, symbols: set[str] | None = None) -> list[SymbolKlines]:
    """Every ``*-futures.feather`` under ``folder`` (recursively), optionally only ``symbols``."""
    if not folder.is_dir():
        raise FileNotFoundError(f"kline folder not found: {folder}")
    out = []
    for path in sorted(folder.rglob("*-futures.feather")):
        m = _KLINE_NAME.match(path.name)
        if m is None or (symbols is not None and m["base"] + m["quote"] not in symbols):
            continue
        out.append(read_feather_klines(path, max_bars))
    return out


def load_exchange_info(path: Path) -> set[str]:
    """Symbols from an ``exchangeInfo`` JSON (``{"symbols": [...]}``) or a plain JSON list of names.

    From ``exchangeInfo`` only ``PERPETUAL`` contracts in ``TRADING`` status are kept (when those fields exist).
    """
    doc = orjson.loads(path.read_bytes())
    items = doc["symbols"] if isinstance(doc, dict) else doc
    out: set[str] = set()
    for item in items:
        if isinstance(item, str):
            out.add(item.upper())
        elif item.get("contractType", "PERPETUAL") == "PERPETUAL" and item.get("status", "TRADING") == "TRADING":
            out.add(str(item["symbol"]).upper())
    return out
