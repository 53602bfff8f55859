"""Declarative fee schedule: maker/taker rates per venue tier (fractions of notional).

Rates are Binance USD-M perpetual tiers in USDT-margined contracts; a negative maker rate is a
rebate and is allowed everywhere fees are applied.
"""

from __future__ import annotations

from typing import NamedTuple


class FeeRates(NamedTuple):
    """Maker and taker fee as a fraction of fill notional (0.0002 = 2 bps)."""

    maker: float
    taker: float


FEE_SCHEDULE: dict[str, FeeRates] = {
    "binance_usdm_vip0": FeeRates(0.0002, 0.0005),
    "binance_usdm_vip0_bnb": FeeRates(0.00018, 0.00045),
    "binance_usdm_vip1": FeeRates(0.00016, 0.0004),
    "binance_usdm_vip2": FeeRates(0.00014, 0.00035),
    "binance_usdm_vip3": FeeRates(0.00012, 0.00032),
    "binance_usdm_vip9": FeeRates(0.0, 0.00017),
    "predecessor_paper": FeeRates(0.0005, 0.0005),
    "zero": FeeRates(0.0, 0.0),
}
DEFAULT_FEE_TIER = "binance_usdm_vip0"


def fee_rates(tier: str = DEFAULT_FEE_TIER) -> FeeRates:
    """The rates of ``tier`` (KeyError names the known tiers)."""
    try:
        return FEE_SCHEDULE[tier]
    except KeyError:
        raise KeyError(f"unknown fee tier {tier!r}; known: {', '.join(sorted(FEE_SCHEDULE))}") from None
