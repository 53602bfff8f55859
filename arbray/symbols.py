"""Declarative per-symbol reference data: price/qty precision and USD thresholds.

Thresholds are expressed in USD, never in coin units, so that a large trade means the same
economic size on every symbol (fixes the predecessor's shared 50/100-coin floors, digest §3.4).
Unknown symbols fall back to ``DEFAULT_SPEC``; their price/qty precision is then inferred from the
data (see ``arbray.features.trades``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """Reference data for one USD-M perpetual.

    ``price_decimals``/``qty_decimals`` are the exchange's tick and step precision (None: infer
    from the data). ``p95_floor_usd``/``p99_floor_usd`` floor the large-trade thresholds;
    ``whale_usd`` is the notional from which a trade counts as whale flow.
    """

    symbol: str
    price_decimals: int | None = None
    qty_decimals: int | None = None
    p95_floor_usd: float = 10_000.0
    p99_floor_usd: float = 25_000.0
    whale_usd: float = 50_000.0


# Predecessor floors were BTC 5/10 coins and 50/100 coins for everything else (digest §3.4);
# BTC's are kept at their USD value near $60k, the others restated in USD by liquidity tier.
SYMBOL_TABLE: dict[str, SymbolSpec] = {
    s.symbol: s
    for s in (
        SymbolSpec("BTCUSDT", 1, 3, p95_floor_usd=300_000, p99_floor_usd=600_000, whale_usd=100_000),
        SymbolSpec("ETHUSDT", 2, 3, p95_floor_usd=150_000, p99_floor_usd=300_000, whale_usd=100_000),
        SymbolSpec("SOLUSDT", 2, 0, p95_floor_usd=25_000, p99_floor_usd=60_000, whale_usd=50_000),
        SymbolSpec("XRPUSDT", 4, 1, p95_floor_usd=25_000, p99_floor_usd=60_000, whale_usd=50_000),
        SymbolSpec("BNBUSDT", 2, 2, p95_floor_usd=25_000, p99_floor_usd=60_000, whale_usd=50_000),
        SymbolSpec("DOGEUSDT", 5, 0, p95_floor_usd=20_000, p99_floor_usd=50_000, whale_usd=50_000),
    )
}

DEFAULT_SPEC = SymbolSpec("*")


def spec_for(symbol: str) -> SymbolSpec:
    """The table entry for ``symbol``, or the default thresholds with inferred precision."""
    spec = SYMBOL_TABLE.get(symbol)
    if spec is not None:
        return spec
    return SymbolSpec(
        symbol,
        p95_floor_usd=DEFAULT_SPEC.p95_floor_usd,
        p99_floor_usd=DEFAULT_SPEC.p99_floor_usd,
        whale_usd=DEFAULT_SPEC.whale_usd,
    )
