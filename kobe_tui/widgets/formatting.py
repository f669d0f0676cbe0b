"""Formatting shared by the panes: numbers and prices shown short, outside text shown literally."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, localcontext
from typing import Any

from rich.text import Text
from textual.widgets import Input

from engine.untrusted import MAX_DIGITS, MAX_EXPONENT, MESSAGE_MAX, clean_text


def spark_points(values: Iterable[float]) -> list[float]:
    """A sparkline's data: a lone point twice (Textual's Sparkline draws one point as a
    full-height block, as if the price had shot up; two equal ones draw flat)."""
    data = list(values)
    return data * 2 if len(data) == 1 else data


def counted(n: int, noun: str) -> str:
    """``1 open order``, ``2 open orders``, ``1,000,000 trades``."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def quantized(value: Decimal, step: Decimal) -> Decimal:
    """``value`` to ``step``, with the precision any bounded number needs (the default 28
    digits raised on 1e29 to the cent, from a damaged journal line, and stopped the cockpit).
    What rounds to zero is zero, never ``-0.00`` (a loss of nothing, in red)."""
    with localcontext() as ctx:
        ctx.prec = 2 * (MAX_DIGITS + MAX_EXPONENT)
        return value.quantize(step) + 0


def num(value: Decimal | None, places: int | None = None) -> str:
    if value is None:
        return "—"
    if places is not None:
        return f"{quantized(value, Decimal(1).scaleb(-places)):,}"
    text = format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def exact(value: Decimal) -> str:
    """A balance as the exchange states it: every decimal, grouped, no trailing zeros
    (``1.00000985``, ``9,985.75``)."""
    places = max(0, -value.normalize().as_tuple().exponent)  # type: ignore[operator]
    return f"{quantized(value, Decimal(1).scaleb(-places)):,}"


def px(value: Decimal | None, fixed: bool = False) -> str:
    """A price or quantity, short: 6 significant digits below 1, 4 decimals at most above
    (2 from 1,000). ``fixed``, for a price that moves each tick: 6 significant digits and at
    least 2 decimals, trailing zeros kept, so a symbol keeps its decimals from tick to tick
    (``94,976.30`` then ``94,998.18``, not ``94,976.3``)."""
    if value is None:
        return "—"
    if value == 0:
        return "0"
    mag = abs(value)
    if fixed and mag >= 1:
        places = max(2, 6 - value.adjusted() - 1)
        return f"{quantized(value, Decimal(1).scaleb(-places)):,}"
    if mag >= 1000:
        text = f"{quantized(value, Decimal('0.01')):,}"
    elif mag >= 1:
        text = format(quantized(value, Decimal("0.0001")), "f")
    else:
        places = 6 - value.adjusted() - 1
        text = format(quantized(value, Decimal(1).scaleb(-places)), "f")
    return text if fixed else text.rstrip("0").rstrip(".")


def literal(value: object, limit: int = MESSAGE_MAX) -> Text:
    """Text from a journal, a feed, an alert or an exchange, shown as it is: no markup is
    parsed (``oops [/]`` and ``[bold red]`` are characters) and no control character passes."""
    return value if isinstance(value, Text) else Text(clean_text(value, limit))


def literal_lines(text: str) -> Text:
    """Several lines of such text (a plan, a refusal): each line shown literally."""
    return Text("\n".join(clean_text(line, MESSAGE_MAX) for line in text.split("\n")[:50]))


def signed(value: Decimal, unit: str = "") -> Text:
    """``+1.25``, ``-0.40`` (red), ``+0.00``: to the cent, its sign coloured."""
    q = quantized(value, Decimal("0.01"))
    style = "green" if q > 0 else ("red" if q < 0 else "")
    return Text(f"{q:+,}{unit}", style=style)


class PlainInput(Input):
    """A field that keeps what it is given as :func:`literal` would show it. Textual draws a
    field's characters as they are, and a paste (bracketed: any bytes) put ``ESC [2J`` on the
    terminal, which cleared it, an OSC that retitled it, and bidi overrides, in the ticket's
    fields, the new exits, the unlock phrase and the journal's filter. Capped at
    ``MESSAGE_MAX`` characters (Textual's ``max_length``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", MESSAGE_MAX)
        super().__init__(*args, **kwargs)

    def replace(self, text: str, start: int, end: int) -> None:
        super().replace(clean_text(text, MESSAGE_MAX) if text else text, start, end)
