"""Retry policies (tenacity) for exchange calls, and order placement that never doubles an order.

Reads (balances, tickers, order look-ups, cancels) are retried on :class:`RateLimited`,
:class:`ExchangeUnavailable` and :class:`NetworkError` (which covers :class:`RequestTimeout`), with
exponential backoff and jitter, honouring the exchange's ``Retry-After`` on 429/418, bounded in
attempts and in total time. A ``Retry-After`` (or a 418 ban) longer than what is left of the budget
fails at once, saying why and how long the exchange asked to wait. Every retry is logged with its
reason. Authentication and invalid-order errors are never retried.

Writes: :func:`place_order_once` never re-sends an order blindly. The order carries a client order
id from before its first attempt; after a timeout, a network error or a 5xx the outcome is unknown,
not failed: the ``on_unknown`` hook is told (the journal writes an ``unknown`` event), the order is
looked up by its client id, and it is sent again only when the exchange does not have it.

Sleep, clock and randomness are injectable, so tests run in milliseconds.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type

from engine.exchange.base import (
    ExchangeError,
    ExchangeUnavailable,
    NetworkError,
    OrderOutcomeUnknown,
    RateLimited,
)
from engine.untrusted import BadNumber, parse_decimal

log = logging.getLogger(__name__)

T = TypeVar("T")

# What a read may retry. RequestTimeout is a NetworkError.
RETRYABLE: tuple[type[ExchangeError], ...] = (RateLimited, ExchangeUnavailable, NetworkError)

# The hook told of a write whose outcome is unknown: (client order id, reason).
UnknownHook = Callable[[str, str], None]

MAX_RETRY_AFTER_S = Decimal(3600)


def parse_retry_after(value: object, epoch_s: Callable[[], float] = time.time) -> Decimal | None:
    """A server's ``Retry-After`` (or Telegram's ``retry_after``) in seconds, from outside: a
    bounded number (:func:`engine.untrusted.parse_decimal`; a fraction too), or an HTTP date (the
    wait until then on the wall clock ``epoch_s``; one passed is no wait). Waited at most an hour:
    a longer wait is waited as an hour, then the server is asked again. None when it is neither
    (a negative or non-finite number, text): the caller backs off instead."""
    try:
        return capped_wait(parse_decimal(value, "retry_after", minimum=Decimal(0)))
    except BadNumber:
        pass
    try:
        until = parsedate_to_datetime(str(value)[:64])
        if until.tzinfo is None:  # "-0000": a time in UTC, its source unknown
            until = until.replace(tzinfo=UTC)
        return capped_wait(Decimal(str(until.timestamp())) - Decimal(str(epoch_s())))
    except (TypeError, ValueError, IndexError, OverflowError, ArithmeticError):
        return None


def capped_wait(seconds: Decimal) -> Decimal:
    """A wait the server asked for, from 0 (a moment passed) to :data:`MAX_RETRY_AFTER_S`."""
    return min(max(seconds, Decimal(0)), MAX_RETRY_AFTER_S)


_PLACING = threading.local()


def placing() -> bool:
    """True inside :func:`place_order_once` on this thread: its pauses (a look-up's delay, the
    wait for a first request's window to pass) are never cut short, not even by a stop; cutting
    one would leave an order whose first request may still land, settled as never sent."""
    return bool(getattr(_PLACING, "depth", 0))


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. ``sleep``, ``clock`` and ``rand`` are injectable for tests."""

    max_attempts: int = 5  # first try included
    max_total_s: float = 30.0  # total time budget, sleeps included
    base_delay_s: float = 0.5  # first backoff; doubles each attempt
    max_delay_s: float = 8.0  # cap of one backoff
    jitter_s: float = 0.25  # up to this much added to each backoff, at random
    lookup_delay_s: float = 0.5  # pause before looking up an order whose outcome is unknown
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    rand: Callable[[], float] = field(default=random.random, compare=False)

    def backoff(self, attempt: int) -> float:
        """The pause after failed attempt number ``attempt`` (1-based), jitter included."""
        delay = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return delay + self.jitter_s * self.rand()

    def wait_for(self, exc: BaseException | None, attempt: int) -> float:
        """The exchange's ``Retry-After`` when it gave one, never less than the backoff: a
        hint of 0 (or a reset time already past, or no number) never makes the retries a burst
        of requests into the limit just hit."""
        backoff = self.backoff(attempt)
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return max(backoff, float(exc.retry_after))
        return backoff


def describe(exc: BaseException) -> str:
    """A short reason for logs and journals: the error type and its message."""
    return f"{type(exc).__name__}: {exc}"


def _beyond_budget(exc: RateLimited, wait: float, left: float) -> RateLimited:
    what = "IP banned (418)" if exc.banned else "rate limited (429)"
    return RateLimited(
        f"{what}: the exchange asks to wait {wait:g}s, more than the {max(left, 0.0):.3g}s left "
        f"of the retry budget; giving up ({exc})",
        retry_after=exc.retry_after,
        banned=exc.banned,
    )


def _fails_at_once(exc: BaseException | None) -> bool:
    """A 418 ban with no ``Retry-After``: no wait is known to be enough."""
    return isinstance(exc, RateLimited) and exc.banned and exc.retry_after is None


def call_with_retries(fn: Callable[[], T], what: str, policy: RetryPolicy) -> T:
    """Call ``fn`` (a read), retrying transient errors under ``policy``; other errors propagate."""
    start = policy.clock()
    verdict: dict[str, RateLimited] = {}

    def stop(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome is not None else None
        if state.attempt_number >= policy.max_attempts or _fails_at_once(exc):
            return True
        left = policy.max_total_s - (policy.clock() - start)
        wait = state.upcoming_sleep
        if wait > left:
            if isinstance(exc, RateLimited):
                verdict["error"] = _beyond_budget(exc, wait, left)
            return True
        return False

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return policy.wait_for(exc, state.attempt_number)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "%s: %s; retry %d of %d in %.3fs",
            what,
            describe(exc) if exc is not None else "failed",
            state.attempt_number,
            policy.max_attempts - 1,
            state.upcoming_sleep,
        )

    retrying = Retrying(
        sleep=policy.sleep,
        stop=stop,
        wait=wait,
        retry=retry_if_exception_type(RETRYABLE),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(fn)
    except RateLimited as exc:
        if "error" in verdict:
            log.warning("%s: %s", what, verdict["error"])
            raise verdict["error"] from exc
        raise
    except RETRYABLE as exc:
        log.warning("%s: giving up: %s", what, describe(exc))
        raise


def _after_the_window(
    lookup: Callable[[], T | None],
    client_id: str,
    policy: RetryPolicy,
    what: str,
    exc: ExchangeError,
    reason: str,
    sent_at: float,
    start: float,
    resend_after_s: float,
) -> T | None:
    """Once the exchange can no longer accept the request sent at ``sent_at``, the order
    looked up again (None: it was never placed). Raises ``exc`` when that is beyond the budget."""
    dead_in = max(0.0, resend_after_s - (policy.clock() - sent_at))
    left = policy.max_total_s - (policy.clock() - start)
    if dead_in > left:
        log.warning(
            "%s %s: not sent again: the first request could still reach the exchange for "
            "%.1fs, more than the %.1fs left of the budget (%s)",
            what,
            client_id,
            dead_in,
            max(left, 0.0),
            reason,
        )
        raise exc
    log.warning(
        "%s %s: not found yet; looked up again in %.1fs, once the first request can no longer land",
        what,
        client_id,
        dead_in,
    )
    if dead_in > 0:
        policy.sleep(dead_in)
    return _look_up(lookup, client_id, policy, exc, reason)


def _look_up(
    lookup: Callable[[], T | None],
    client_id: str,
    policy: RetryPolicy,
    exc: ExchangeError,
    reason: str,
) -> T | None:
    """The order by its client id (reads retried); the look-up failing: the outcome stays
    unknown (:class:`OrderOutcomeUnknown`), and nothing is sent again."""
    try:
        return call_with_retries(lookup, f"look up order {client_id}", policy)
    except ExchangeError as look_exc:
        raise OrderOutcomeUnknown(
            client_id, f"{reason}; look-up failed: {describe(look_exc)}"
        ) from exc


def place_order_once(
    send: Callable[[], T],
    lookup: Callable[[], T | None],
    client_id: str,
    policy: RetryPolicy,
    on_unknown: UnknownHook | None = None,
    what: str = "create order",
    resend_after_s: float = 0.0,
) -> T:
    """Send an order so that no fault can create it twice.

    ``send`` places the order with ``client_id`` already set; ``lookup`` returns the exchange's
    order with that client id, or None when it has none.

    - Rate limited (429/418): the exchange refused the request, nothing was placed; wait
      (``Retry-After``) and send again, within the budget.
    - Timeout, network error, 5xx: the outcome is unknown. ``on_unknown(client_id, reason)`` is
      called, the order is looked up (reads retried); found: it is returned; absent: sent again
      (same client id), within the budget; the look-up itself failing: :class:`OrderOutcomeUnknown`.
      Sent again only once the first request can no longer land: ``resend_after_s`` after it was
      sent (the exchange's receive window, which refuses an older request, plus a margin), the
      order is looked up once more; a window longer than the budget left: not sent again.
    - Anything else (authentication, invalid order, insufficient funds): raised at once.
    """
    _PLACING.depth = getattr(_PLACING, "depth", 0) + 1
    try:
        return _place(send, lookup, client_id, policy, on_unknown, what, resend_after_s)
    finally:
        _PLACING.depth -= 1


def _place(
    send: Callable[[], T],
    lookup: Callable[[], T | None],
    client_id: str,
    policy: RetryPolicy,
    on_unknown: UnknownHook | None,
    what: str,
    resend_after_s: float,
) -> T:
    start = policy.clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return send()
        except RateLimited as exc:
            if attempt >= policy.max_attempts or _fails_at_once(exc):
                log.warning("%s %s: giving up: %s", what, client_id, describe(exc))
                raise
            wait = policy.wait_for(exc, attempt)
            left = policy.max_total_s - (policy.clock() - start)
            if wait > left:
                error = _beyond_budget(exc, wait, left)
                log.warning("%s %s: %s", what, client_id, error)
                raise error from exc
            log.warning(
                "%s %s: %s (not placed); retry %d of %d in %.3fs",
                what,
                client_id,
                describe(exc),
                attempt,
                policy.max_attempts - 1,
                wait,
            )
            policy.sleep(wait)
        except (NetworkError, ExchangeUnavailable) as exc:
            # the request was signed at the latest now (a lock, the rate limiter or a slow
            # connection may have held it before): its window is counted from here
            sent_at = policy.clock()
            reason = describe(exc)
            log.warning("%s %s: outcome unknown (%s); looking it up", what, client_id, reason)
            if on_unknown is not None:
                on_unknown(client_id, reason)
            if policy.lookup_delay_s > 0:
                policy.sleep(policy.lookup_delay_s)
            looked_at = policy.clock()
            found = _look_up(lookup, client_id, policy, exc, reason)
            if found is None and looked_at - sent_at < resend_after_s:
                # asked while the first request could still land: asked again once it cannot
                found = _after_the_window(
                    lookup, client_id, policy, what, exc, reason, sent_at, start, resend_after_s
                )
            if found is not None:
                log.warning("%s %s: the exchange has it; not sending again", what, client_id)
                return found
            wait = policy.backoff(attempt)
            left = policy.max_total_s - (policy.clock() - start)
            if attempt >= policy.max_attempts or wait > left:
                log.warning(
                    "%s %s: not placed (the exchange has no such order); giving up: %s",
                    what,
                    client_id,
                    reason,
                )
                raise
            log.warning(
                "%s %s: the exchange has no such order; sending again (attempt %d of %d) in %.3fs",
                what,
                client_id,
                attempt + 1,
                policy.max_attempts,
                wait,
            )
            policy.sleep(wait)
