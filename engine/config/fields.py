"""The config's field types: bounded numbers, percents, UTC times, symbols, wallet ids, the
loopback-only exchange URL, and ``Section``, the base of every section (unknown keys refused,
frozen, no control characters in any string). Every section module builds on these."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Strict,
    field_validator,
)

from engine.untrusted import MESSAGE_MAX, BadNumber, clean_text, parse_decimal

ExchangeName = Literal["binance", "bybit", "okx"]


def between(lo: int, hi: int) -> Callable[[Decimal], Decimal]:
    def check(value: Decimal) -> Decimal:
        if not (Decimal(lo) <= value <= Decimal(hi)):
            raise ValueError(f"must be between {lo} and {hi}")
        return value

    return check


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a timezone (write it with a Z, e.g. 2026-01-01T00:00:00Z)")
    return value.astimezone(UTC)


def _symbol(value: str) -> str:
    if clean_text(value, MESSAGE_MAX) != value:
        return value  # control characters: Section._plain_text says so, for every string
    parts = value.split("/")
    if len(parts) != 2 or not all(p.isascii() and p.isalnum() and p.isupper() for p in parts):
        raise ValueError("must look like BASE/QUOTE in capitals, e.g. BTC/USDT")
    return value


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP (127.0.0.0/8, ::1): this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def no_duplicates(values: list[str]) -> list[str]:
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        raise ValueError(f"names {', '.join(twice)} more than once")
    return values


def check_api_url(value: str) -> str:
    """An exchange API base: empty (none) or ``scheme://host:port`` on a loopback address.

    It exists to reach a local simulator: the keys are sent wherever it points, so it may not
    point anywhere else (a ``.env`` dropped in the working directory cannot send them away).
    """
    if value == "":
        return value
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or port is None
        or parts.username is not None
        or parts.path not in ("", "/")
    ):
        raise ValueError("must be scheme://host:port, e.g. http://127.0.0.1:8080")
    if not is_loopback(parts.hostname):
        raise ValueError(
            "must be a loopback address (127.0.0.1, ::1 or localhost): it is for a local "
            "simulator, and the API keys are sent wherever it points"
        )
    return value.rstrip("/")


YEAR_S = 365 * 24 * 3600  # the longest duration a config may hold
MAX_SEED = 2**63 - 1
MAX_NUMBER = Decimal(10) ** 12  # money and every other number: at most 10^12
Int = Annotated[int, Strict()]  # an integer, never a string, a float or a boolean


def _number(value: object) -> Decimal:
    """A config number: an integer or a decimal, never a string or a boolean; finite, bounded."""
    if isinstance(value, bool | str):
        kind = "a boolean" if isinstance(value, bool) else "a string"
        raise ValueError(f"must be a number, not {kind}")
    try:
        return parse_decimal(value, "value", minimum=-MAX_NUMBER, maximum=MAX_NUMBER)
    except BadNumber as exc:
        raise ValueError(exc.problem) from None


Number = Annotated[Decimal, BeforeValidator(_number)]
Percent = Annotated[Number, AfterValidator(between(0, 100))]
PositiveDecimal = Annotated[Number, AfterValidator(_positive)]
NonNegativeDecimal = Annotated[Number, AfterValidator(_non_negative)]
UtcDatetime = Annotated[datetime, AfterValidator(_aware_utc)]
Symbol = Annotated[str, AfterValidator(_symbol)]
ApiUrl = Annotated[str, AfterValidator(check_api_url)]


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _texts(v)]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in (*_texts(k), *_texts(v))]
    return []


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @field_validator("*", mode="after")
    @classmethod
    def _plain_text(cls, value: Any) -> Any:
        """Config strings are shown on screen and in journals: no control characters (an
        escape sequence, a line break), at most 1,000 characters."""
        for text in _texts(value):
            if len(text) > MESSAGE_MAX:
                raise ValueError(f"must be at most {MESSAGE_MAX} characters")
            if clean_text(text, MESSAGE_MAX) != text:
                raise ValueError("must not contain control characters")
        return value


WalletChain = Literal["solana", "binance", "bybit", "okx", "offchain"]
WalletRole = Literal["trading", "fees", "buffer", "profits", "vault", "reserve"]


def _wallet_id(value: str) -> str:
    if not value or not all(
        c.isascii() and (c.islower() or c.isdigit() or c == "_") for c in value
    ):
        raise ValueError("must be lower-case letters, digits and _, e.g. sniper_sol")
    return value


WalletId = Annotated[str, AfterValidator(_wallet_id)]


def usd_text(value: Decimal) -> str:
    return f"{value.normalize():f}"
