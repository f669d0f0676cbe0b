"""``kobe``: the engine from the command line.

Exit codes everywhere: 0 success; 1 refused or failed (order rejected, check failed, gate closed);
2 bad config or arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from engine.config import ConfigError, Mode
from engine.exchange.base import ExchangeError
from engine.fsutil import StateError, WriteFailed
from engine.jsonutil import dumps
from engine.logsetup import setup_logging
from engine.modes import (
    Check,
    GateClosed,
    Settings,
    gate_problems,
    health_checks,
    permission_checks,
    resolve_settings,
)
from engine.secrets import EXCHANGE_KEY_VARS
from engine.untrusted import BadNumber, clean_text, parse_decimal

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad arguments found after parsing (exit 2)."""


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
            raise argparse.ArgumentTypeError(
                f"{exc.problem} (got {clean_text(text, 40)!r})"
            ) from None
        if value <= minimum:
            raise argparse.ArgumentTypeError(f"must be above {minimum} (got {text!r})")
        if integer:
            if value != value.to_integral_value():
                raise argparse.ArgumentTypeError(f"must be a whole number (got {text!r})")
            return int(value)
        return value

    return parse


def utc_now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------
# keys, health


def expected_vars(settings: Settings) -> list[str]:
    names = [*EXCHANGE_KEY_VARS[settings.exchange], settings.testnet_flag]
    if settings.mode is Mode.LIVE:
        names.append("ALLOW_LIVE")
    names += ["RPC_SOLANA_HTTP", "RPC_SOLANA_WS"]
    return names


def ping_exchange(settings: Settings) -> tuple[bool, str]:
    """``kobe keys --ping``: the exchange's time endpoint, through the gate (GateClosed: exit 1).

    Paper never touches the network (nor imports ccxt). Read-only, so live needs every condition
    of the gate except ``--confirm-live``.
    """
    if settings.mode is Mode.PAPER:
        return True, "paper: no network"
    from engine.exchange.base import ExchangeError
    from engine.exchange.ccxt_exchange import CcxtExchange
    from engine.exchange.retry import RetryPolicy

    policy = RetryPolicy(max_attempts=2, max_total_s=10.0)
    exchange = CcxtExchange.reader_from_settings(settings, retry=policy)
    where = settings.api_url or ("testnet" if settings.mode is Mode.TESTNET else "live")
    try:
        ms = exchange.ping()
    except ExchangeError as exc:
        return False, f"{settings.exchange} ({where}): ping failed: {exc}"
    finally:
        exchange.close()
    return True, f"{settings.exchange} ({where}): time endpoint answered in {ms:.0f} ms"


def withdraw_check(settings: Settings) -> Check:
    """Testnet and live: whether the API key may withdraw (a key for Kobe needs only trading).

    A warning, not a failure: Kobe never withdraws, but a key that can is worth more to a thief.
    """
    from engine.exchange.base import ExchangeError
    from engine.exchange.ccxt_exchange import CcxtExchange
    from engine.exchange.retry import RetryPolicy

    policy = RetryPolicy(max_attempts=2, max_total_s=10.0)
    try:
        exchange = CcxtExchange.reader_from_settings(settings, retry=policy)  # reads only
    except GateClosed:
        return Check("key withdrawals", True, "not checked: the keys cannot be used in this mode")
    try:
        can = exchange.can_withdraw()
    except ExchangeError as exc:
        return Check("key withdrawals", True, f"could not be read: {exc}", warning=True)
    finally:
        exchange.close()
    if can is None:
        detail = f"{settings.exchange} does not report it here: check the key's permissions"
        return Check("key withdrawals", True, detail, warning=True)
    if can:
        detail = "this API key may withdraw funds: give Kobe a key without withdrawal permission"
        return Check("key withdrawals", True, detail, warning=True)
    return Check("key withdrawals", True, "this API key cannot withdraw")


def key_checks(settings: Settings) -> list[Check]:
    """``kobe keys --ping``: the warnings about where the keys are and what they may do."""
    if settings.mode is Mode.PAPER:
        return []
    return [*permission_checks(settings), withdraw_check(settings)]


def cmd_keys(ctx: Context) -> int:
    s = ctx.settings
    status = {name: ("set" if s.env.get(name) else "missing") for name in expected_vars(s)}
    ping = ping_exchange(s) if getattr(ctx.args, "ping", False) else None
    warnings = [c for c in key_checks(s) if c.warning] if ping is not None else []
    code = EXIT_OK if ping is None or ping[0] else EXIT_REFUSED
    if ctx.args.json:
        report: dict[str, Any] = {"exchange": s.exchange, "mode": s.mode.value, "variables": status}
        if ping is not None:
            report["ping"] = {"ok": ping[0], "detail": ping[1]}
            report["warnings"] = [f"{c.name}: {c.detail}" for c in warnings]
        ctx.json(report)
        return code
    ctx.print(f"exchange: {s.exchange}")
    ctx.print(f"mode:     {s.mode.value}")
    width = max(len(n) for n in status)
    for name, state in status.items():
        ctx.print(f"  {name:<{width}}  {state}")
    if ping is not None:
        ctx.print(f"ping:     {ping[1]}")
    for c in warnings:
        ctx.print(f"warning:  {c.name}: {c.detail}")
    return code


def cmd_health(ctx: Context) -> int:
    s = ctx.settings
    checks = health_checks(s)
    if s.mode is not Mode.PAPER and not gate_problems(s, confirmed=True):
        checks.append(withdraw_check(s))
    all_ok = all(c.ok for c in checks)
    if ctx.args.json:
        ctx.json(
            {
                "mode": s.mode.value,
                "exchange": s.exchange,
                "ok": all_ok,
                "checks": [
                    {"name": c.name, "ok": c.ok, "detail": c.detail, "warning": c.warning}
                    for c in checks
                ],
            }
        )
    else:
        ctx.print(f"mode: {s.mode.value}   exchange: {s.exchange}")
        for c in checks:
            state = "FAIL" if not c.ok else "warn" if c.warning else "ok  "
            ctx.print(f"  {state}  {c.name}: {c.detail}")
        ctx.print("healthy" if all_ok else "NOT healthy")
    return EXIT_OK if all_ok else EXIT_REFUSED


# ---------------------------------------------------------------------------------------------
# Parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kobe",
        description="Kobe trading engine (paper by default). Exit: 0 ok, 1 refused, 2 bad input.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log lines")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("keys", help="which key variables are set (never their values)")
    p.add_argument("--ping", action="store_true", help="ping the exchange's time endpoint")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_keys)

    p = sub.add_parser("health", help="checks for the configured mode; exit 0 only if all pass")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_health)

    # imported here: these modules build on this one
    from engine import (
        cli_indexer,
        cli_notify,
        cli_risk,
        cli_run,
        cli_stats,
        cli_trade,
        cli_wallets,
    )

    cli_trade.register(sub)
    cli_run.register(sub)
    cli_risk.register(sub)
    cli_wallets.register(sub)
    cli_indexer.register(sub)
    cli_notify.register(sub)
    cli_stats.register(sub)
    return parser


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    clock: Callable[[], datetime] | None = None,
) -> int:
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    parser = build_parser()
    try:  # argparse writes its usage, help and errors to the command's streams
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad arguments (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    setup_logging(logging.WARNING - 10 * min(args.verbose, 2))
    ctx = Context(args, env, cwd, out, err, clock)
    handler: Handler = args.handler
    try:
        return handler(ctx)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=err)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"kobe: {exc}", file=err)
        return EXIT_USAGE
    except (StateError, WriteFailed) as exc:
        print(f"kobe: {exc}", file=err)
        return EXIT_REFUSED
    except ExchangeError as exc:  # already redacted by the adapter
        print(f"kobe: {exc}", file=err)
        return EXIT_REFUSED
    except GateClosed as exc:
        print(f"{exc.mode.value} refused:", file=err)
        for reason in exc.reasons:
            print(f"  - {reason}", file=err)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return 130


def entrypoint() -> None:
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `kobe ... | head`: the reader went away; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)
