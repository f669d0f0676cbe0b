"""``kobe``: the engine from the command line.

One module per command group (``health``: keys and health; ``trade``: trade, exits, cancel;
``orders``: orders and positions; ``run``; ``risk``; ``wallets``; ``indexer``; ``notify``;
``stats``), all built on ``engine.cli.shared`` (the context, the exit codes, confirmation), which
imports none of them. The command table below says which commands exist, in the order of
``kobe --help``.

Exit codes everywhere: 0 success; 1 refused or failed (order rejected, check failed, gate closed);
2 bad config or arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from engine.cli import health, indexer, notify, orders, risk, run, stats, trade, wallets
from engine.cli.shared import EXIT_REFUSED, EXIT_USAGE, Context, Handler, UsageError
from engine.config import ConfigError
from engine.exchange.base import ExchangeError, Stopping
from engine.fsutil import StateError, WriteFailed
from engine.logsetup import setup_logging
from engine.modes import GateClosed
from engine.secrets import Secrets, load_env, redact, redacting, silence
from engine.untrusted import MESSAGE_MAX, clean_text

log = logging.getLogger(__name__)

COMMANDS: tuple[Callable[[Any], None], ...] = (
    health.register_keys,
    health.register_health,
    trade.register_trade,
    orders.register_orders,
    orders.register_positions,
    trade.register_exits,
    trade.register_cancel,
    run.register,
    risk.register,
    wallets.register,
    indexer.register,
    notify.register,
    stats.register,
)


# what argparse takes for -5 or -.5, and the exponent and non-finite forms it does not
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$|^-(inf|infinity|nan)$", re.I)


class _Parser(argparse.ArgumentParser):
    """argparse, but a value that reads as a negative number in any of its forms (``-1e5``,
    ``-inf``, ``-nan``) is a value, as ``-5`` is: taken for an option, ``--quote -1e5`` was
    refused as "expected one argument" instead of the number's own problem. (Subparsers are
    built with this class too.)"""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBER


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kobe",
        description="Kobe trading engine (paper by default). Exit: 0 ok, 1 refused, 2 bad input.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log lines")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for register in COMMANDS:
        register(sub)
    return parser


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    clock: Callable[[], datetime] | None = None,
) -> int:
    # whatever a command prints passes redaction by value (a key pasted into an argument)
    out = redacting(sys.stdout if out is None else out)
    err = redacting(sys.stderr if err is None else err)
    # the environment, read once (the settings use it too); its keys are known before argparse
    # echoes a bad argument (a key pasted as the command)
    env = load_env(cwd) if env is None else env
    Secrets.from_env(env)
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
    except UsageError as exc:  # it may echo an argument: shown literally
        print(f"kobe: {clean_text(str(exc), MESSAGE_MAX)}", file=err)
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
    except (KeyboardInterrupt, Stopping):  # ctrl+c, also in an exchange retry's pause
        print("interrupted", file=err)
        return 130
    except Exception as exc:  # a bug: one redacted line; the traceback is logged (kobe -v)
        log.info("internal error in kobe %s", args.command, exc_info=True)
        text = clean_text(redact(str(exc)), MESSAGE_MAX)
        print(f"kobe: internal error ({type(exc).__name__}): {text}", file=err)
        return EXIT_REFUSED


def entrypoint() -> None:
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # `kobe ... | head`: the reader went away; say nothing more
        silence(sys.stdout.fileno())
    sys.exit(code)  # the command's own code: it ran to its end
