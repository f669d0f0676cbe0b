"""Decimal helpers. Money is ``Decimal``, never float.

Venues reached through ccxt round with ccxt's own precision helpers; these are for the in-process
venues (paper CEX, paper DEX), which never import ccxt.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal

ZERO = Decimal(0)


def D(value: object) -> Decimal:
    """A Decimal from an int, a str or a Decimal. Floats are refused: they are not money."""
    if isinstance(value, float):
        raise TypeError("float is not money: pass a str or a Decimal")
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Round down to a multiple of ``step`` (quantities: never buy more than asked)."""
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def ceil_to_step(value: Decimal, step: Decimal) -> Decimal:
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_UP) * step


def round_to_tick(value: Decimal, tick: Decimal) -> Decimal:
    """Round to the nearest multiple of ``tick`` (prices)."""
    if tick <= 0:
        return value
    return (value / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick


def is_multiple(value: Decimal, step: Decimal) -> bool:
    return step <= 0 or (value % step) == 0


def quantize_usd(value: Decimal) -> Decimal:
    """Cents, for display and ledgers kept in USD."""
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
