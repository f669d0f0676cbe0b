"""JSON for output and journals: decimals as strings, times ISO-8601 UTC with ``Z``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with a ``Z``; a naive time is refused (the engine's times are aware)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the engine's times are timezone-aware UTC")
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if type(value).__name__ in ("Secret", "SecretStr"):  # no pydantic import on this path
        return str(value)  # the mask, never the value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(obj: Any, *, indent: int | None = None) -> str:
    return json.dumps(obj, default=_default, indent=indent, ensure_ascii=False)
