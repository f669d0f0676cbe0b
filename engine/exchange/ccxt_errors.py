"""ccxt's errors mapped onto Kobe's hierarchy (:mod:`engine.exchange.base`), with retry hints.

ccxt's own classes first; where ccxt falls back to a plain ``ExchangeError`` (Binance with a
custom base URL; Bybit's system error), the exchange's code in the body decides. Every message is
redacted by value and stripped of control characters before it leaves: the exchange's words are
data. ccxt's module is passed in, never imported here (paper mode never loads it).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from engine.exchange.base import (
    AuthenticationError,
    BadAnswer,
    DuplicateClientId,
    ExchangeError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    NetworkError,
    NotSupported,
    OrderNotFound,
    RateLimited,
    RequestTimeout,
)
from engine.exchange.retry import capped_wait, parse_retry_after
from engine.secrets import redact
from engine.untrusted import BadNumber, clean_message, parse_decimal

# Exchange error codes mapped by code where ccxt falls back to a plain ExchangeError (Binance with a
# custom base URL; Bybit's system error, which its docs say to retry).
BINANCE_CODES: dict[int, type[ExchangeError]] = {
    -1003: RateLimited,  # too many requests
    -1013: InvalidOrder,  # filter failure (LOT_SIZE, PRICE_FILTER, NOTIONAL)
    -1111: InvalidOrder,  # precision over the maximum
    -1121: InvalidOrder,  # invalid symbol
    -2010: InsufficientFunds,  # new order rejected (insufficient balance)
    -2011: OrderNotFound,  # cancel rejected: unknown order
    -2013: OrderNotFound,  # order does not exist
    -2014: AuthenticationError,  # API-key format invalid
    -2015: AuthenticationError,  # invalid API-key, IP, or permissions
    -1022: AuthenticationError,  # signature not valid
    -1001: ExchangeUnavailable,  # internal error: disconnected
    -1007: ExchangeUnavailable,  # timeout waiting for the backend: outcome unknown
}
EXCHANGE_CODES: dict[str, dict[int, type[ExchangeError]]] = {
    "binance": BINANCE_CODES,
    "bybit": {10016: ExchangeUnavailable},  # "System error. Please try again later."
    "okx": {},
}

# Codes that say "too many requests" whatever class ccxt gives them (OKX's order rate limit is a
# plain ExchangeError there, Bybit's "too many new orders" an InvalidOrder): nothing was done,
# waited for and asked again, never taken for a refusal or an unknown outcome.
RATE_LIMIT_CODES: dict[str, frozenset[int]] = {
    "binance": frozenset({-1003, -1015}),  # too many requests; too many new orders
    "bybit": frozenset({10006, 10018, 170005, 170222}),
    "okx": frozenset({50011, 50061}),
}

# Codes that say the exchange already holds an order with this client id (its words vary).
DUPLICATE_CODES: dict[str, frozenset[int]] = {
    "binance": frozenset(),  # -2010 "Duplicate order sent.": only its words tell it apart
    "bybit": frozenset({10014, 12141, 110072, 170141}),
    "okx": frozenset({51016}),
}

# The exchange's own code and words in an error body: OKX's per-order sCode/sMsg first (its
# top-level msg only says "All operations failed"), then Bybit's retCode/retMsg, then code/msg.
_CODE_RES = tuple(re.compile(rf'"{name}"\s*:\s*"?(-?\d+)') for name in ("sCode", "retCode", "code"))
_MSG_RES = tuple(
    re.compile(rf'"{name}"\s*:\s*"((?:[^"\\]|\\.)+)"') for name in ("sMsg", "retMsg", "msg")
)
_STATUS_RE = re.compile(r"\b(418|429)\b")


def _first(patterns: tuple[re.Pattern[str], ...], message: str) -> str | None:
    for pattern in patterns:
        found = pattern.search(message)
        if found:
            return found.group(1)
    return None


def _exchange_code(message: str) -> int | None:
    code = _first(_CODE_RES, message)
    return None if code is None else int(code)


def _exchange_reason(message: str) -> str:
    """The exchange's own words from a ccxt message (message and code of a JSON body)."""
    text = _first(_MSG_RES, message)
    if text is None:
        return message
    code = _exchange_code(message)
    return f"{text} ({code})" if code is not None else text


def retry_after(headers: Any, epoch_s: Callable[[], float]) -> float | None:
    """The exchange's retry hint in the last answer's ``headers``, in seconds: ``Retry-After``
    (Binance; seconds or an HTTP date, :func:`parse_retry_after`), or Bybit's
    ``X-Bapi-Limit-Reset-Timestamp`` (when the limit resets, in epoch milliseconds, read against
    the wall clock ``epoch_s``). Outside data: at most an hour; None (Kobe's own backoff) for
    anything it cannot read."""
    try:
        found = {str(k).lower(): v for k, v in (headers or {}).items()}
    except AttributeError:
        return None
    wait: Decimal | None = None
    if "retry-after" in found:
        wait = parse_retry_after(found["retry-after"], epoch_s)
    elif "x-bapi-limit-reset-timestamp" in found:
        with contextlib.suppress(BadNumber):
            reset_ms = parse_decimal(
                found["x-bapi-limit-reset-timestamp"], "reset", minimum=Decimal(0)
            )
            wait = capped_wait(reset_ms / 1000 - Decimal(str(epoch_s())))
    return None if wait is None else float(wait)


def map_error(
    exc: Exception, ccxt: Any, name: str, wait: Callable[[], float | None]
) -> ExchangeError:
    """``exc``, raised by ccxt (the module ``ccxt``) for exchange ``name``, as Kobe's error;
    ``wait`` reads the exchange's retry hint (:func:`retry_after`) when a limit was hit."""
    message = clean_message(redact(str(exc)))  # the exchange's words are data
    reason = _exchange_reason(message)
    code = _exchange_code(message)
    limited = code is not None and code in RATE_LIMIT_CODES[name]
    if limited or isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        if code in (-2015, -2014, -1022):  # ccxt calls a later -2015 a ban; it is the key
            return AuthenticationError(f"{name}: {reason}")
        found = _STATUS_RE.search(message)
        status = found.group(1) if found else None
        banned = status == "418"
        hint = wait()
        what = {"418": "IP banned (418)", "429": "rate limited (429)"}.get(
            status or "", "rate limited"
        )
        said = f": {reason}" if _first(_MSG_RES, message) else ""
        after = f", Retry-After {hint:g}s" if hint is not None else ""
        return RateLimited(f"{name}: {what}{said}{after}", retry_after=hint, banned=banned)
    if isinstance(exc, ccxt.RequestTimeout):
        return RequestTimeout(f"{name}: request timed out ({message})")
    if isinstance(exc, ccxt.ExchangeNotAvailable):
        return ExchangeUnavailable(f"{name}: exchange unavailable ({message})")
    if isinstance(exc, ccxt.InvalidNonce):
        return ExchangeError(f"{name}: clock out of sync with the exchange: {reason}")
    if isinstance(exc, ccxt.NetworkError):
        return NetworkError(f"{name}: network error ({message})")
    if isinstance(exc, ccxt.AuthenticationError):
        return AuthenticationError(f"{name}: authentication failed: {reason}")
    if isinstance(exc, ccxt.ExchangeError) and (
        (code is not None and code in DUPLICATE_CODES[name]) or "duplicate" in reason.lower()
    ):
        return DuplicateClientId(f"{name}: {reason}")
    if isinstance(exc, ccxt.InsufficientFunds):
        return InsufficientFunds(f"{name}: insufficient funds: {reason}")
    if isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFound(f"{name}: order not found: {reason}")
    if isinstance(exc, ccxt.NotSupported):
        return NotSupported(f"{name}: {reason}")
    if isinstance(exc, ccxt.InvalidOrder | ccxt.BadRequest | ccxt.BadSymbol):
        return InvalidOrder(f"{name}: {reason}")
    kind = EXCHANGE_CODES[name].get(code) if code is not None else None
    if kind is not None:
        if kind is InvalidOrder:
            return InvalidOrder(f"{name}: {reason}")
        if kind is RateLimited:
            return RateLimited(f"{name}: {reason}", retry_after=wait())
        return kind(f"{name}: {reason}")
    if isinstance(exc, ccxt.OperationFailed):  # ccxt's transient kind (e.g. a JSON 5xx)
        return ExchangeUnavailable(f"{name}: exchange unavailable ({message})")
    if code is None and type(exc) is ccxt.ExchangeError:  # neither a success nor a refusal
        return BadAnswer(f"{name}: an answer Kobe cannot read ({message})")
    return ExchangeError(f"{name}: {reason}")
