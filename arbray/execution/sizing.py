"""Exchange precision: tick, step and minimum notional, and risk-based position sizing.

Prices and quantities are snapped on integer grids (ticks, lots) so that sizes are exact and the
same in every process; a size whose notional is below the symbol's minimum is refused (None).
"""

from __future__ import annotations

import math

from arbray.symbols import SymbolSpec

_DEFAULT_PRICE_DECIMALS = 2
_DEFAULT_QTY_DECIMALS = 3
_EPS = 1e-9


def tick_size(spec: SymbolSpec) -> float:
    """Price increment of ``spec`` (0.01 when the precision is unknown)."""
    return 10.0 ** -(spec.price_decimals if spec.price_decimals is not None else _DEFAULT_PRICE_DECIMALS)


def step_size(spec: SymbolSpec) -> float:
    """Quantity increment of ``spec`` (0.001 when the precision is unknown)."""
    return 10.0 ** -(spec.qty_decimals if spec.qty_decimals is not None else _DEFAULT_QTY_DECIMALS)


def _decimals(x: float) -> int:
    return max(0, round(-math.log10(x)))


def floor_to(value: float, step: float) -> float:
    """``value`` rounded down onto the ``step`` grid (with a tolerance for binary noise)."""
    return round(math.floor(value / step + _EPS) * step, _decimals(step))


def round_to(value: float, step: float) -> float:
    """``value`` rounded to the nearest point of the ``step`` grid."""
    return round(round(value / step) * step, _decimals(step))


def passive_price(price: float, tick: float, side: int) -> float:
    """``price`` snapped to the tick grid on the passive side: down for a buy, up for a sell."""
    if side > 0:
        return floor_to(price, tick)
    return round(math.ceil(price / tick - _EPS) * tick, _decimals(tick))


def position_size(risk_usd: float, risk_distance: float, price: float, spec: SymbolSpec,
                  multiplier: float = 1.0) -> float | None:
    """Contracts so that a stop ``risk_distance`` away loses ``risk_usd × multiplier``.

    Rounded down to the step size; None when the rounded size is zero or its notional at
    ``price`` is below the symbol's minimum notional.
    """
    if risk_distance <= 0 or price <= 0 or risk_usd <= 0:
        return None
    qty = floor_to(risk_usd * multiplier / risk_distance, step_size(spec))
    if qty <= 0 or qty * price < spec.min_notional_usd:
        return None
    return qty
