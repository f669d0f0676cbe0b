"""Tail a JSONL file that another process appends to: new complete lines, each once.

- Keeps its byte offset: each :meth:`JsonlTail.read` returns the records appended since the last.
- A torn last line (no newline yet: still being written) is not read: it waits, and the offset
  stays before it, until the line is complete.
- A file that does not exist yet is not an error: nothing is read until it appears.
- A file that shrank (replaced or truncated) is read again from the start, with a log line.
- Numbers are parsed as ``Decimal`` (never float); a complete line that is not a JSON object is
  skipped with a log line.
- One read takes at most ``max_bytes`` (plus the rest of a line): a large backlog is read over
  several ticks, and nothing but the current line is ever held in memory.
- A line longer than ``max_line`` bytes (4 MB; a feed line is a few hundred bytes, and a longer
  one still has its fields capped) is skipped with a log line, without ever being held whole: a
  1 GB line costs no more memory than a 4 MB one.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from engine.untrusted import NAME_MAX, BadNumber, Problems, clean_text, parse_decimal, shown

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 1024 * 1024
MAX_LINE_BYTES = 4 * 1024 * 1024


class JsonlTail:
    def __init__(
        self,
        path: Path,
        *,
        offset: int = 0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_line: int = MAX_LINE_BYTES,
        problems: Problems | None = None,
    ) -> None:
        self.path = Path(path)
        self.offset = offset
        self.max_bytes = max_bytes
        self.max_line = max_line
        self.skipped = 0  # complete lines that were not JSON objects
        self.problems = problems if problems is not None else Problems()

    def read(self) -> list[dict[str, Any]]:
        """The records of the complete lines appended since the last read, in file order."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self.offset:
            log.warning(
                "%s: the file shrank (%d bytes, was read to %d): reading it from the start",
                self.path,
                size,
                self.offset,
            )
            self.offset = 0
        if size == self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read(self.max_bytes)
            end = chunk.rfind(b"\n")
            while end < 0 and len(chunk) < size - self.offset:  # one line longer than max_bytes
                if len(chunk) > self.max_line:
                    self._skip_long_line(fh)
                    return []  # the lines after it: at the next read
                more = fh.read(self.max_bytes)
                if not more:
                    break
                chunk += more
                end = chunk.rfind(b"\n")
        if end < 0:
            return []  # only a torn line: wait for its newline
        complete = chunk[: end + 1]
        first_line = self.offset
        self.offset += len(complete)
        records = []
        for raw in complete.split(b"\n"):
            if len(raw) > self.max_line:
                self._skip(f"the line at byte {first_line} is longer than {self.max_line} bytes")
                record = None
            else:
                record = self._parse(raw, first_line)
            if record is not None:
                records.append(record)
            first_line += len(raw) + 1
        return records

    def _skip_long_line(self, fh: BinaryIO) -> None:
        """Past the line at the offset, too long to hold, when its newline has come: scanned for
        in blocks, never held whole. Torn still: the offset stays and it is scanned again."""
        while block := fh.read(self.max_bytes):
            newline = block.find(b"\n")
            if newline >= 0:
                self._skip(f"the line at byte {self.offset} is longer than {self.max_line} bytes")
                self.offset = fh.tell() - len(block) + newline + 1
                return

    def _parse(self, raw: bytes, at: int) -> dict[str, Any] | None:
        text = raw.strip()
        if not text:
            return None
        try:
            value = json.loads(text, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError, RecursionError):
            self._skip(f"the line at byte {at} is not JSON: skipped")
            return None
        if not isinstance(value, dict):
            self._skip(f"the line at byte {at} is not a JSON object: skipped")
            return None
        return value

    def _skip(self, what: str) -> None:
        self.skipped += 1
        log.warning("%s: %s", self.path, what)
        self.problems.add(f"{self.path.name}: {what}")


# ---------------------------------------------------------------------------------------------
# Reading fields of a record


class BadRecord(ValueError):
    """A record missing a field, or with a field of the wrong form."""


def dec_field(record: dict[str, Any], key: str) -> Decimal:
    """A bounded Decimal from a JSON number or string (:func:`engine.untrusted.parse_decimal`;
    never a float: see :class:`JsonlTail`)."""
    value = record.get(key)
    if value is None:
        raise BadRecord(f"{key!r} is missing")
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise BadRecord(f"{key!r} must be a number or a numeric string (got {shown(value)})")
    try:
        return parse_decimal(value, repr(key))
    except BadNumber as exc:
        raise BadRecord(str(exc)) from None


# A price from a feed must be one a market can hold: the paper DEX sizes, fills and charges fees
# in 8 decimals, and 1e-30 made its fill raise (the engine stopped) while 1e30 bought a dust
# position that could never be sold. 1e-12 is the stub market's own floor.
PRICE_MIN = Decimal("1e-12")
PRICE_MAX = Decimal("1e12")


def price_field(record: dict[str, Any], key: str) -> Decimal:
    """A price in USD from a feed: :func:`dec_field`, within ``PRICE_MIN`` .. ``PRICE_MAX``."""
    price = dec_field(record, key)
    if not PRICE_MIN <= price <= PRICE_MAX:
        raise BadRecord(f"{key!r} must be between {PRICE_MIN} and {PRICE_MAX} (got {price})")
    return price


def opt_dec_field(record: dict[str, Any], key: str) -> Decimal | None:
    return None if record.get(key) is None else dec_field(record, key)


def time_field(record: dict[str, Any], key: str = "time") -> datetime:
    """An ISO-8601 time with a zone (``2026-01-01T00:05:00Z``), in UTC."""
    value = record.get(key)
    if not isinstance(value, str) or len(value) > 64:
        raise BadRecord(f"{key!r} must be an ISO-8601 time string (got {shown(value)})")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRecord(f"{key!r} is not an ISO-8601 time (got {shown(value)})") from None
    if moment.tzinfo is None:
        raise BadRecord(f"{key!r} has no time zone (got {shown(value)}); write it with a Z")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset past the calendar's edge
        raise BadRecord(f"{key!r} is out of range (got {shown(value)})") from None


def str_field(record: dict[str, Any], key: str, default: str | None = None) -> str:
    """A non-empty string, cleaned and capped (:func:`engine.untrusted.clean_text`)."""
    value = record.get(key, default)
    text = clean_text(value, NAME_MAX) if isinstance(value, str) else ""
    if not text.strip():
        raise BadRecord(f"{key!r} must be a non-empty string (got {shown(value)})")
    return text


def dex_symbol(value: str, quote: str) -> str:
    """``BONK`` or ``BONK/USDC`` as ``BONK/USDC``; anything but capitals and digits is refused."""
    base, sep, q = value.partition("/")
    q = q if sep else quote
    for part in (base, q):
        if (
            not part
            or len(part) > 40
            or not part.isascii()
            or not all(c.isupper() or c.isdigit() for c in part)
        ):
            raise BadRecord(f"symbol must be BASE or BASE/QUOTE in capitals (got {shown(value)})")
    return f"{base}/{q}"
