"""Decimal helpers. Money is ``Decimal``, never float.

The router rounds every quantity and price once, with these and the market's step and tick, for
every venue (paper and ccxt alike): the venues then receive identical numbers and refuse values
that are not on the step or tick, as Binance does.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal

ZERO = Decimal(0)
BPS = Decimal(10_000)  # basis points: slippage, the paper book's level gaps


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


def round_to_tick(value: Decimal, tick: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Round to the nearest multiple of ``tick`` (prices); a half tick by ``rounding``."""
    if tick <= 0:
        return value
    return (value / tick).to_integral_value(rounding=rounding) * tick


def round_price(value: Decimal, tick: Decimal, *, buy: bool) -> Decimal:
    """A limit price on the tick, never past the operator's: a buy rounds down (it never pays
    more than asked), a sell rounds up (it never sells for less)."""
    return floor_to_step(value, tick) if buy else ceil_to_step(value, tick)


def is_multiple(value: Decimal, step: Decimal) -> bool:
    return step <= 0 or (value % step) == 0


def quantize_usd(value: Decimal) -> Decimal:
    """Cents, for display and ledgers kept in USD."""
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
