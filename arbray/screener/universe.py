"""The screener's universe: USD-M perpetuals that trade in USDT, from ``exchangeInfo`` or a kline folder.

From ``GET /fapi/v1/exchangeInfo`` (Binance or the simulator, through ``BinanceRest``) a symbol is kept
when ``contractType`` is ``PERPETUAL``, ``status`` is ``TRADING`` and ``quoteAsset`` is the quote
(``USDT``); every other entry is counted by the reason it was left out (``not_perpetual``,
``not_trading``, ``quote_<asset>``, ``malformed``), so a filtered universe says what it dropped. From a
folder, the symbols are those of its freqtrade kline files (``arbray.screener.data``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arbray.feeds.rest import BinanceRest
from arbray.screener.backfill import EXCHANGE_INFO
from arbray.screener.data import _KLINE_NAME


@dataclass(frozen=True)
class Universe:
    """Symbols to scan (sorted), where they came from, and what was left out by reason."""

    symbols: tuple[str, ...]
    source: str
    excluded: dict[str, int]

    def __len__(self) -> int:
        return len(self.symbols)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "symbols": len(self.symbols), "excluded": dict(self.excluded)}


def universe_from_exchange_info(doc: Any, quote: str = "USDT", source: str = "exchangeInfo") -> Universe:
    """The TRADING ``quote``-margined perpetuals of an ``exchangeInfo`` document (see the module doc)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("symbols"), list):
        raise ValueError(f"{source}: not an exchangeInfo document (no 'symbols' list)")
    keep: set[str] = set()
    excluded: Counter[str] = Counter()
    for item in doc["symbols"]:
        if not isinstance(item, dict) or not isinstance(item.get("symbol"), str) or not item["symbol"]:
            excluded["malformed"] += 1
        elif item.get("contractType") != "PERPETUAL":
            excluded["not_perpetual"] += 1
        elif item.get("status") != "TRADING":
            excluded["not_trading"] += 1
        elif item.get("quoteAsset") != quote:
            excluded[f"quote_{item.get('quoteAsset')}"] += 1
        else:
            keep.add(item["symbol"].upper())
    return Universe(tuple(sorted(keep)), source, dict(sorted(excluded.items())))


async def fetch_universe(rest: BinanceRest, quote: str = "USDT") -> Universe:
    """``exchangeInfo`` from ``rest``'s base URL, filtered (weight 1)."""
    doc = await rest.get(EXCHANGE_INFO)
    return universe_from_exchange_info(doc, quote, source=f"{rest.config.base_url}{EXCHANGE_INFO}")


def universe_from_kline_dir(folder: Path) -> Universe:
    """The symbols of the ``*-futures.feather`` kline files under ``folder`` (recursively)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"kline folder not found: {folder}")
    names = {m["base"] + m["quote"] for p in folder.rglob("*-futures.feather") if (m := _KLINE_NAME.match(p.name))}
    return Universe(tuple(sorted(names)), str(folder), {})
