"""Secrets from the environment and ``.env``; a type that never prints its value; log redaction.

Precedence: the process environment wins over ``.env`` in the current directory
(:func:`engine.bootstrap.load_env`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO, cast
from urllib.parse import quote, quote_plus

from pydantic import SecretStr

from engine.bootstrap import load_env

__all__ = ["REDACTED", "Secret", "Secrets", "load_env", "redact"]

REDACTED = "***"

# Every variable Kobe reads from the environment, with what it is for (.env.example lists them).
SECRET_VARS: dict[str, str] = {
    "BINANCE_KEY": "Binance API key",
    "BINANCE_SECRET": "Binance API secret",
    "BYBIT_KEY": "Bybit API key",
    "BYBIT_SECRET": "Bybit API secret",
    "OKX_KEY": "OKX API key",
    "OKX_SECRET": "OKX API secret",
    "OKX_PASSWORD": "OKX API passphrase",
    "RPC_SOLANA_HTTP": "Solana JSON-RPC HTTP endpoint (often embeds a token)",
    "RPC_SOLANA_WS": "Solana JSON-RPC websocket endpoint (often embeds a token)",
    "TELEGRAM_BOT_TOKEN": "Telegram bot token (from @BotFather) for notifications",
    "TELEGRAM_CHAT_ID": "Telegram chat the notifications go to",
    "KOBE_WEBHOOK_URL": "URL notifications are POSTed to as JSON (https; http only to loopback)",
    "KOBE_WEBHOOK_SECRET": "key of the HMAC-SHA256 signature of each webhook body",
}
SWITCH_VARS: dict[str, str] = {
    "EXCHANGE": "binance, bybit or okx (overrides exchange.name in kobe.toml)",
    "BINANCE_TESTNET": "1 marks the Binance keys as testnet keys",
    "BYBIT_TESTNET": "1 marks the Bybit keys as testnet keys",
    "OKX_TESTNET": "1 marks the OKX keys as testnet keys",
    "ALLOW_LIVE": "1 allows live trading (one of the live gate's conditions)",
    "KOBE_MODE": "paper, testnet or live (overrides mode in kobe.toml)",
    "KOBE_CONFIG": "path of the config file to read instead of ./kobe.toml",
    "KOBE_DATA_DIR": "where journals and snapshots go (overrides paths.data_dir)",
    "KOBE_EXCHANGE_URL": "scheme://host:port of the exchange API (a local simulator); not in live",
    "KOBE_TELEGRAM_API_URL": "base URL of a local Telegram Bot API stand-in (loopback only)",
}

# Which variables an exchange needs.
EXCHANGE_KEY_VARS: dict[str, tuple[str, ...]] = {
    "binance": ("BINANCE_KEY", "BINANCE_SECRET"),
    "bybit": ("BYBIT_KEY", "BYBIT_SECRET"),
    "okx": ("OKX_KEY", "OKX_SECRET", "OKX_PASSWORD"),
}


def secret_parts(name: str, value: str) -> list[str]:
    """What of the variable ``name`` is secret on its own: the value, and for a Telegram bot
    token (``<bot id>:<secret>``) also the part after the colon, which a reply or an error page
    may echo without the bot id."""
    if name == "TELEGRAM_BOT_TOKEN" and ":" in value:
        return [value, value.partition(":")[2]]
    return [value]


class Secret(SecretStr):
    """A string that shows ``**********`` in str, repr, format, logs and pydantic dumps.

    The value is read only with :meth:`get_secret_value`, at the one place that sends it.
    """

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True)
class Secrets:
    """The secret variables that are set, each as a :class:`Secret`."""

    values: Mapping[str, Secret]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Secrets:
        # blank (spaces, a tab) is no key: the live gate's "keys present" must not pass on one
        found = {name: Secret(env[name]) for name in SECRET_VARS if env.get(name, "").strip()}
        secrets = cls(found)
        register_secret_values(
            part for name, s in found.items() for part in secret_parts(name, s.get_secret_value())
        )
        return secrets

    def get(self, name: str) -> Secret | None:
        return self.values.get(name)

    def is_set(self, name: str) -> bool:
        return name in self.values

    def __repr__(self) -> str:
        return f"Secrets(set={sorted(self.values)})"


# ---------------------------------------------------------------------------------------------
# Log redaction, by value. Installed as a log-record factory so that it covers every logger and
# every handler, including a library's own DEBUG lines with a key inside a URL.

_lock = threading.Lock()
_known: set[str] = set()
_installed = False
_MIN_LEN = 4  # shorter values would redact ordinary words
_CASED_LEN = 16  # long enough that its other case is no ordinary word either


def secret_forms(value: str) -> set[str]:
    """``value`` and the forms other libraries print it in: repr-escaped (a dict in a debug
    line), JSON-escaped (a request body), URL-encoded (a query string or a URL)."""
    forms = {
        value,
        repr(value)[1:-1],
        value.encode("unicode_escape").decode("ascii"),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        # a byte that is not UTF-8 (read from the environment as a lone surrogate) is sent as it
        # came, so it is URL-encoded that way too; strict encoding raised at every start
        quote(value, safe="", errors="surrogateescape"),
        quote(value, errors="surrogateescape"),
        quote_plus(value, errors="surrogateescape"),
    }
    if len(value) >= _CASED_LEN:  # echoed upper-cased (a symbol argument)
        forms |= {value.upper(), value.lower()}
    return {f for f in forms if len(f) >= _MIN_LEN}


def register_secret_values(values: Iterable[str]) -> None:
    with _lock:
        for value in values:
            if value and len(value) >= _MIN_LEN:
                _known.update(secret_forms(value))
    install_log_redaction()


class RedactingStream(io.TextIOBase):
    """A command's output stream: every write goes through :func:`redact`, so no known key
    reaches the terminal whatever the command prints (an argument the operator pasted a key
    into, echoed back in a refusal; a library's message)."""

    def __init__(self, inner: TextIO) -> None:
        super().__init__()
        self._inner = inner
        self._gone = False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                self._inner.write(redact(text))
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._inner.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        """The reader went away (``kobe … | head``): the command goes on unheard and ends with
        its own exit code (a ``kobe cancel --all`` is not cut short by the pipe), and what is
        still buffered goes nowhere instead of failing again at exit."""
        self._gone = True
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            silence(self._inner.fileno())

    def isatty(self) -> bool:
        return self._inner.isatty()

    def fileno(self) -> int:
        return self._inner.fileno()

    def close(self) -> None:
        """Nothing: the stream it writes to is not its own to close, nor to flush when it is
        collected (after ``kobe … | head`` went away, that flush would raise)."""


def silence(fd: int) -> None:
    """``fd`` writes nowhere from now on (its reader went away)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def redacting(stream: TextIO) -> TextIO:
    return cast(TextIO, RedactingStream(stream))


def redact(text: str) -> str:
    """``text`` with every known secret value, in each of its :func:`secret_forms`, replaced by
    ``***`` (longest first)."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: keep the raw parts, redacted
        message = f"{record.msg} {record.args}"
    clean = redact(message)
    if clean != message or record.args:
        record.msg = clean
        record.args = None
    if record.exc_info and record.exc_info[0] is not None:
        text = logging.Formatter().formatException(record.exc_info)
        record.exc_text = redact(text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def install_log_redaction() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _redact_record(record)
        return record

    logging.setLogRecordFactory(factory)


class RedactingFilter(logging.Filter):
    """The same redaction as a handler filter, for handlers that receive foreign records."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True
