"""Text and numbers from outside Kobe: one place where they are made safe to hold and to show.

Everything that comes from outside (feeds, RPC replies, exchange messages, symbols, operator
reasons, config strings, CLI arguments) passes through here where it enters:

- :func:`clean_text` strips control characters (C0, C1, DEL, the Unicode format characters that
  reorder or hide text, and lone surrogates, which no file or terminal can encode), folds line
  breaks (the Unicode line and paragraph separators too) and tabs to spaces, and caps the length.
  What is left is shown literally: the cockpit escapes markup or uses ``rich.text.Text``.
- :func:`parse_decimal` parses a number with bounds: finite, ASCII digits only (no ``_``, no
  Arabic-Indic digits), a bounded exponent and number of digits, and an optional range.
- :func:`parse_utc` parses a time read back from a file: ISO-8601, with its timezone, in range.
- :func:`csv_cell` neutralises a spreadsheet formula in a CSV cell.
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

NAME_MAX = 200  # names, symbols, ids
MESSAGE_MAX = 1000  # reasons, error messages, free text

# C0 controls, DEL, C1 controls
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# line breaks, the Unicode line and paragraph separators included, and tabs: one space each
_BREAKS = re.compile(r"\r\n|[\r\n\t\u2028\u2029]")
# Unicode categories dropped: format characters (bidi overrides, zero-width) and surrogates (a
# JSON "\ud800" or a byte that is not UTF-8 in an argument; writing one raises UnicodeEncodeError)
_DROPPED = frozenset({"Cf", "Cs"})
# a plain decimal in ASCII: sign, digits, optional point, optional exponent
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,4})?", re.ASCII)
MAX_DIGITS = 40  # significant digits in a number from outside
MAX_EXPONENT = 30  # |adjusted exponent|: 1e-30 .. 1e30


class BadNumber(ValueError):
    """A number from outside that is not a plain, finite, bounded decimal."""

    def __init__(self, field: str, problem: str, value: object) -> None:
        super().__init__(f"{field}: {problem} (got {shown(value)})")
        self.field = field
        self.problem = problem


def clean_text(value: object, limit: int = NAME_MAX) -> str:
    """``value`` as text that cannot drive a terminal: no control or format characters, capped.

    Line breaks and tabs become spaces (a feed line cannot forge a log line); text longer than
    ``limit`` characters is cut and ends with ``…``.
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit * 4:  # do not scan megabytes to keep 200 characters
        text = text[: limit * 4]
    text = _CONTROL.sub("", _BREAKS.sub(" ", text))
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _DROPPED)
    if len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return text


def clean_message(value: object) -> str:
    """A reason or a message from outside: :func:`clean_text` with the longer cap."""
    return clean_text(value, MESSAGE_MAX)


def operator_text(value: object) -> str:
    """Free text an operator typed (a kill-switch reason): known secrets redacted, then cleaned,
    before it is written anywhere."""
    from engine.secrets import redact  # here: the cockpit's first frame needs no pydantic

    return clean_message(redact(value if isinstance(value, str) else str(value)))


def shown(value: object, limit: int = 40) -> str:
    """A bad value quoted in an error message: redacted, short (a 20 MB field stays out) and
    quoted by ``repr``, which writes every character that cannot be seen or that drives a
    terminal as an escape (``'cex_binance\\u200b'``, ``'\\x1b[2J'``): the value refused never
    reads as one that would pass. Redacted before it is cut: a key's first 40 characters are no
    longer it."""
    from engine.secrets import redact  # here: it imports pydantic, the first frame does without

    text = redact(value if isinstance(value, str) else repr(value))
    return repr(text if len(text) <= limit else text[: max(0, limit - 1)] + "…")


def as_typed(value: str, limit: int = NAME_MAX) -> str:
    """For a refusal that echoes an argument as :func:`clean_text` shows it (``unknown wallet
    X``): when cleaning changed it, ``" (as typed: 'X')"`` (:func:`shown`), else nothing, so that
    ``cex_binance`` with a zero-width space is not refused under the name of a wallet that
    exists."""
    return "" if clean_text(value, limit) == value else f" (as typed: {shown(value, limit)})"


class Problems:
    """Bad records a reader skipped since the engine last asked: each becomes one alert.

    Bounded: past ``keep`` waiting, further ones are only counted (a flood costs one line more).
    """

    def __init__(self, keep: int = 20) -> None:
        self._items: deque[str] = deque()
        self._keep = keep
        self._dropped = 0

    def add(self, text: str) -> None:
        if len(self._items) < self._keep:
            self._items.append(clean_message(text))
        else:
            self._dropped += 1

    def drain(self) -> list[str]:
        out = list(self._items)
        if self._dropped:
            out.append(f"and {self._dropped} more bad records skipped")
        self._items.clear()
        self._dropped = 0
        return out


def parse_decimal(
    value: object,
    field: str,
    *,
    minimum: Decimal | None = None,
    maximum: Decimal | None = None,
    positive: bool = False,
    allow_zero: bool = True,
) -> Decimal:
    """A bounded ``Decimal`` from a str, an int or a Decimal; raises :class:`BadNumber`.

    Floats are accepted only as their shortest repr (JSON numbers from feeds); bools never.
    """
    if isinstance(value, bool) or value is None:
        raise BadNumber(field, "not a number", value)
    if isinstance(value, Decimal):
        number = value
        if not number.is_finite():
            raise BadNumber(field, "not a finite number", value)
    else:
        text = repr(value) if isinstance(value, float) else str(value).strip()
        if len(text) > MAX_DIGITS + 8 or not _NUMBER.fullmatch(text):
            raise BadNumber(field, "not a plain decimal number", value)
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise BadNumber(field, "not a number", value) from None
    if number != 0:
        if abs(number.adjusted()) > MAX_EXPONENT:
            raise BadNumber(field, "out of range", value)
        if len(number.as_tuple().digits) > MAX_DIGITS:
            raise BadNumber(field, "too many digits", value)
    elif abs(number.adjusted()) > MAX_EXPONENT + MAX_DIGITS:  # 0E-999999999: "f" writes 1 GB
        raise BadNumber(field, "out of range", value)
    if positive and number <= 0:
        raise BadNumber(field, "must be positive", value)
    if not allow_zero and number == 0:
        raise BadNumber(field, "must not be zero", value)
    if minimum is not None and number < minimum:
        raise BadNumber(field, f"must be at least {minimum}", value)
    if maximum is not None and number > maximum:
        raise BadNumber(field, f"must be at most {maximum}", value)
    return number


# the times Kobe's clocks can write (a simulated run starts before 2100 and runs at most 10^7
# minutes): outside it, a backoff or a cooldown added to a time read back overflows
TIME_RANGE = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))


def parse_utc(value: object, field: str) -> datetime:
    """An aware UTC time from ISO-8601 text (``Z`` or an offset); raises ValueError naming the
    field for text that is not a time, a time without a timezone, or one out of TIME_RANGE."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{field}: not a time (got {shown(value)})") from None
    if moment.tzinfo is None:
        raise ValueError(f"{field}: a time without a timezone (got {shown(value)})")
    lo, hi = TIME_RANGE
    try:
        if lo <= moment < hi:
            return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01 at +05:00
        pass
    raise ValueError(f"{field}: a time out of range (got {shown(value)})")


def csv_cell(text: str) -> str:
    """A CSV cell a spreadsheet will not run: a leading ``= + - @`` (or tab/CR) gets a quote.

    Numbers keep their sign: ``-5`` and ``-0.25`` are left as they are.
    """
    if text and text[0] in "=+-@\t\r":
        if _NUMBER.fullmatch(text):
            return text
        return "'" + text
    return text
