"""What the cockpit's first frame needs, read cheaply (no pydantic): the mode and the exchange.

The full, validated settings (``engine.modes.resolve_settings``) are built right after the first
frame, in a worker; this module only peeks, with the same precedence (environment > ``.env`` >
``kobe.toml`` > defaults), so the header shows the truth from the very first frame. Anything it
cannot read falls back to the defaults here and is then refused, with its reason, by the full load.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

from dotenv import dotenv_values


class Mode(StrEnum):
    PAPER = "paper"
    TESTNET = "testnet"
    LIVE = "live"


EXCHANGES: tuple[str, ...] = ("binance", "bybit", "okx")
DEFAULT_EXCHANGE = "binance"


def load_env(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment over ``.env`` (current directory). Empty values count as unset.

    ``.env`` is read into a dict with python-dotenv: ``os.environ`` is never modified.
    """
    base = Path.cwd() if cwd is None else cwd
    merged: dict[str, str] = {}
    dotenv = base / ".env"
    if dotenv.is_file():
        for key, value in dotenv_values(dotenv).items():
            if value:
                merged[key] = value
    for key, value in (os.environ if environ is None else environ).items():
        merged[key] = value
    return {k: v for k, v in merged.items() if v != ""}


def peek(env: Mapping[str, str], cwd: Path) -> tuple[Mode, str]:
    """Best-effort mode and exchange for the first frame; never raises."""
    raw: dict[str, object] = {}
    chosen = env.get("KOBE_CONFIG", "")
    path = Path(chosen) if chosen else cwd / "kobe.toml"
    if not path.is_absolute():
        path = cwd / path
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raw = {}
    mode_text = env.get("KOBE_MODE") or raw.get("mode") or Mode.PAPER.value
    try:
        mode = Mode(str(mode_text))
    except ValueError:
        mode = Mode.PAPER
    section = raw.get("exchange")
    exchange = env.get("EXCHANGE") or (section.get("name") if isinstance(section, dict) else None)
    if exchange not in EXCHANGES:
        exchange = DEFAULT_EXCHANGE
    return mode, str(exchange)
