"""What the cockpit's first frame needs, read cheaply (no pydantic): the mode and the exchange.

The full, validated settings (``engine.modes.resolve_settings``) are built right after the first
frame, in a worker; this module only peeks, with the same precedence (environment > ``.env`` >
``kobe.toml`` > defaults), so the header shows the truth from the very first frame. Anything it
cannot read falls back to the defaults here and is then refused, with its reason, by the full load.
"""

from __future__ import annotations

import io
import os
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import parse_stream


class Mode(StrEnum):
    PAPER = "paper"
    TESTNET = "testnet"
    LIVE = "live"


EXCHANGES: tuple[str, ...] = ("binance", "bybit", "okx")
DEFAULT_EXCHANGE = "binance"


class Env(dict[str, str]):
    """The merged variables; ``from_dotenv`` names those whose value came from ``.env``."""

    from_dotenv: frozenset[str] = frozenset()
    problems: tuple[str, ...] = ()  # why .env could not be read (the full load exits 2 on them)


def load_env(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> Env:
    """The process environment over ``.env`` (current directory). Empty values count as unset.

    ``.env`` is read into a dict with python-dotenv: ``os.environ`` is never modified. The result
    remembers which values came from ``.env`` (a ``<EX>_TESTNET`` marking there never applies to
    keys from the process environment).
    """
    base = Path.cwd() if cwd is None else cwd
    dotenv_vars: dict[str, str] = {}
    problems: tuple[str, ...] = ()
    dotenv = base / ".env"
    if dotenv.is_file():
        try:
            text = dotenv.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            problems = (".env: not UTF-8 text (its values are not read)",)
        except OSError as exc:
            problems = (f".env: cannot read it: {exc.strerror or exc}",)
        else:
            problems = _duplicates(text)
            if not problems:
                values = dotenv_values(stream=io.StringIO(text))
                dotenv_vars = {k: v for k, v in values.items() if v}
    elif dotenv.exists() or dotenv.is_symlink():  # a directory, a dangling link
        problems = (".env: not a regular file (its values are not read)",)
    process = {k: v for k, v in (os.environ if environ is None else environ).items() if v != ""}
    merged = Env({**dotenv_vars, **process})
    merged.from_dotenv = frozenset(k for k in dotenv_vars if k not in process)
    merged.problems = problems
    return merged


def _duplicates(text: str) -> tuple[str, ...]:
    """A variable set twice in ``.env`` (``ALLOW_LIVE=0`` above, ``ALLOW_LIVE=1`` below): which
    one counts is a guess, so none is read and the load refuses, naming the lines."""
    lines: dict[str, list[int]] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.key is not None:
            lines.setdefault(binding.key, []).append(binding.original.line)
    return tuple(
        f".env: {key!r} is set more than once (lines {', '.join(map(str, where))}): keep one "
        "(its values are not read)"
        for key, where in lines.items()
        if len(where) > 1
    )


def peek(env: Mapping[str, str], cwd: Path) -> tuple[Mode | None, str]:
    """Best-effort mode and exchange for the first frame; never raises. The mode is None when
    ``KOBE_MODE`` or kobe.toml names none Kobe has, or kobe.toml cannot be read: no frame may
    claim a mode then, nor when ``.env`` (which may set ``KOBE_MODE``) cannot be read, nor when
    ``EXCHANGE`` or kobe.toml names an exchange Kobe does not have (the frame would name another)."""
    raw: dict[str, object] = {}
    unread = "paper"  # no kobe.toml: the defaults, paper
    chosen = env.get("KOBE_CONFIG", "")
    path = Path(chosen) if chosen else cwd / "kobe.toml"
    if not path.is_absolute():
        path = cwd / path
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:  # the defaults, unless KOBE_CONFIG names a file that is not there
        raw, unread = {}, "" if chosen else unread
    except (OSError, ValueError):  # damaged or unreadable: its mode is unknown
        raw, unread = {}, ""
    mode_text = env.get("KOBE_MODE") or raw.get("mode", unread)
    if getattr(env, "problems", ()) and not env.get("KOBE_MODE"):  # .env's KOBE_MODE is unknown
        mode_text = ""
    try:
        mode: Mode | None = Mode(str(mode_text))
    except ValueError:
        mode = None
    section = raw.get("exchange")
    exchange = env.get("EXCHANGE") or (section.get("name") if isinstance(section, dict) else None)
    if exchange is None:
        exchange = DEFAULT_EXCHANGE
    elif exchange not in EXCHANGES:  # a frame would name an exchange the config does not
        mode, exchange = None, DEFAULT_EXCHANGE
    return mode, str(exchange)
