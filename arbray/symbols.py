"""Declarative per-symbol reference data: price/qty precision and USD thresholds.

Thresholds are expressed in USD, never in coin units, so that a large trade means the same
economic size on every symbol (fixes the predecessor's shared 50/100-coin floors, digest §3.4).
Unknown symbols fall back to ``DEFAULT_SPEC``; their price/qty precision is then inferred from the
data (see ``arbray.features.trades``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """Reference data for one USD-M perpetual.

    ``price_decimals``/``qty_decimals`` are the exchange's tick and step precision (None: infer
    from the data). ``p99_floor_usd`` floors the large-trade threshold (P99 of trade size);
    ``whale_usd`` is the notional from which a trade counts as whale flow; ``min_notional_usd`` is
    the exchange's smallest order notional (Binance USD-M: 5 USDT on most perpetuals).
    """

    symbol: str
    price_decimals: int | None = None
    qty_decimals: int | None = None
    p99_floor_usd: float = 25_000.0
    whale_usd: float = 50_000.0
    min_notional_usd: float = 5.0


# Predecessor P99 floors were 10 BTC and 100 coins for everything else (digest §3.4); BTC's is
# kept at its USD value near $60k, the others restated in USD by liquidity tier.
SYMBOL_TABLE: dict[str, SymbolSpec] = {
    s.symbol: s
    for s in (
        SymbolSpec("BTCUSDT", 1, 3, p99_floor_usd=600_000, whale_usd=100_000),
        SymbolSpec("ETHUSDT", 2, 3, p99_floor_usd=300_000, whale_usd=100_000),
        SymbolSpec("SOLUSDT", 2, 0, p99_floor_usd=60_000, whale_usd=50_000),
        SymbolSpec("XRPUSDT", 4, 1, p99_floor_usd=60_000, whale_usd=50_000),
        SymbolSpec("BNBUSDT", 2, 2, p99_floor_usd=60_000, whale_usd=50_000),
        SymbolSpec("DOGEUSDT", 5, 0, p99_floor_usd=50_000, whale_usd=50_000),
    )
}

DEFAULT_SPEC = SymbolSpec("*")


def spec_for(symbol: str) -> SymbolSpec:
    """The table entry for ``symbol``, or the default thresholds with inferred precision."""
    spec = SYMBOL_TABLE.get(symbol)
    if spec is not None:
        return spec
    return replace(DEFAULT_SPEC, symbol=symbol)
