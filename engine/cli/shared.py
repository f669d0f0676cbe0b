"""What every ``kobe`` command shares: the context, the exit codes, number flags, confirmation.

Exit codes everywhere: 0 success; 1 refused or failed (order rejected, check failed, gate closed);
2 bad config or arguments. This module imports none of the command modules.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from engine.jsonutil import dumps
from engine.modes import Settings, resolve_settings
from engine.untrusted import BadNumber, parse_decimal, shown

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad arguments found after parsing (exit 2)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class Context:
    """What a command gets: parsed args, settings, and where to write."""

    def __init__(
        self,
        args: argparse.Namespace,
        env: Mapping[str, str] | None,
        cwd: Path | None,
        out: TextIO,
        err: TextIO,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.args = args
        self.clock: Callable[[], datetime] = clock or utc_now
        self._env = env
        self._cwd = cwd
        self.out = out
        self.err = err
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = resolve_settings(self._env, self._cwd)
        return self._settings

    def print(self, text: str = "") -> None:
        print(text, file=self.out)

    def json(self, obj: Any) -> None:
        print(dumps(obj, indent=2), file=self.out)


Handler = Callable[[Context], int]


def number_arg(
    *, minimum: Decimal = Decimal(0), maximum: Decimal, integer: bool = False
) -> Callable[[str], Any]:
    """An argparse ``type``: a plain ASCII decimal (no ``_``, no other digits, finite, bounded)
    above ``minimum`` and at most ``maximum``; an ``int`` when ``integer``. A bad value exits 2
    naming the flag (argparse adds it)."""

    def parse(text: str) -> Decimal | int:
        try:
            value = parse_decimal(text, "value", maximum=maximum)
        except BadNumber as exc:
            raise argparse.ArgumentTypeError(f"{exc.problem} (got {shown(text)})") from None
        if value <= minimum:  # a whole number's lowest value, said as such
            least = f"must be at least {minimum + 1}" if integer else f"must be above {minimum}"
            raise argparse.ArgumentTypeError(f"{least} (got {text!r})")
        if integer:
            if value != value.to_integral_value():
                raise argparse.ArgumentTypeError(f"must be a whole number (got {text!r})")
            return int(value)
        return value

    return parse


def require_terminal_or_yes(ctx: Context) -> None:
    """Checked before anything is opened: without --yes a command must be able to ask."""
    if getattr(ctx.args, "yes", False):
        return
    stdin = sys.stdin
    if stdin is None or not stdin.isatty():
        raise UsageError("no terminal to confirm on: pass --yes to confirm")


def confirm(ctx: Context, question: str) -> bool:
    """Ask on the terminal; no terminal and no --yes is a usage error (exit 2)."""
    if getattr(ctx.args, "yes", False):
        return True
    require_terminal_or_yes(ctx)
    print(f"{question} [y/N] ", end="", file=ctx.out, flush=True)
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")
