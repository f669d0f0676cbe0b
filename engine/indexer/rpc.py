"""A minimal Solana JSON-RPC client over HTTP (standard library only): ``getSlot``, ``getBlock``.

Read-only: it has no method that sends a transaction. Calls are retried under the exchange layer's
discipline (:func:`engine.exchange.retry.call_with_retries`): 429 (honouring ``Retry-After``), 5xx
and network errors back off, bounded in attempts and time; other errors are raised at once.

The endpoint URL often embeds a token: it is held as a :class:`~engine.secrets.Secret`, registered
for log redaction, and never put in a message, a log line or an exception.
"""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.request
from typing import Any

from engine.exchange.base import (
    ExchangeError,
    ExchangeUnavailable,
    NetworkError,
    RateLimited,
    RequestTimeout,
)
from engine.exchange.retry import RetryPolicy, call_with_retries
from engine.secrets import REDACTED, Secret, redact, register_secret_values

# getBlock: "Slot N was skipped, or missing due to ledger jump to recent snapshot" (-32007) and
# "Slot N was skipped, or missing in long-term storage" (-32009).
SKIPPED_SLOT_CODES = (-32007, -32009)
RATE_LIMIT_CODES = (-32005, 429)  # some providers say "rate limited" in the JSON-RPC error


class RpcError(ExchangeError):
    """The node answered with an error that retrying would not fix (or a reply that is not
    JSON-RPC). ``code`` is the JSON-RPC error code when there is one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class SlotSkipped(RpcError):
    """The slot has no block (skipped, or missing from the node's storage)."""


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(float(value.strip()), 0.0)
    except ValueError:
        return None  # an HTTP date: fall back to the backoff


class SolanaRpc:
    """JSON-RPC over HTTP POST. ``policy`` makes retries (and their sleeps) injectable."""

    def __init__(
        self, url: Secret, *, timeout_s: float = 10.0, policy: RetryPolicy | None = None
    ) -> None:
        self._url = url
        self.timeout_s = timeout_s
        self.policy = policy or RetryPolicy()
        self._ids = itertools.count(1)
        register_secret_values([url.get_secret_value()])
        scheme = url.get_secret_value().partition("://")[0].lower()
        if scheme not in ("http", "https"):
            raise RpcError("the Solana RPC endpoint is not an http:// or https:// URL")

    def __repr__(self) -> str:
        return f"SolanaRpc(url={REDACTED})"

    def _clean(self, text: str) -> str:
        url = self._url.get_secret_value()
        if url:
            text = text.replace(url, REDACTED)
        return redact(text)

    def _post(self, method: str, params: list[Any]) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        request = urllib.request.Request(
            self._url.get_secret_value(),
            data=json.dumps(body).encode("utf-8"),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            exc.close()
            if status == 429:
                raise RateLimited(f"{method}: HTTP 429", retry_after=retry_after) from None
            if status >= 500:
                raise ExchangeUnavailable(f"{method}: HTTP {status}") from None
            raise RpcError(f"{method}: HTTP {status}") from None
        except TimeoutError:
            raise RequestTimeout(f"{method}: no answer within {self.timeout_s:g}s") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise RequestTimeout(f"{method}: no answer within {self.timeout_s:g}s") from None
            raise NetworkError(f"{method}: {self._clean(str(exc.reason))}") from None
        except (ConnectionError, OSError) as exc:
            raise NetworkError(f"{method}: {self._clean(type(exc).__name__)}") from None
        try:
            reply = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise RpcError(f"{method}: the reply is not JSON") from None
        if not isinstance(reply, dict):
            raise RpcError(f"{method}: the reply is not a JSON-RPC object")
        error = reply.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            text = error.get("message", "") if isinstance(error, dict) else str(error)
            message = f"{method}: JSON-RPC error {code}: {self._clean(str(text))[:200]}"
            if code in SKIPPED_SLOT_CODES:
                raise SlotSkipped(message, code)
            if code in RATE_LIMIT_CODES:
                raise RateLimited(message)
            raise RpcError(message, code if isinstance(code, int) else None)
        if "result" not in reply:
            raise RpcError(f"{method}: the reply has no result")
        return reply["result"]

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        """One JSON-RPC call, retried under the policy."""
        return call_with_retries(lambda: self._post(method, params or []), method, self.policy)

    def get_slot(self) -> int:
        slot = self.call("getSlot", [{"commitment": "confirmed"}])
        if isinstance(slot, bool) or not isinstance(slot, int):
            raise RpcError(f"getSlot: not a slot number ({type(slot).__name__})")
        return slot

    def get_block(self, slot: int) -> dict[str, Any] | None:
        """The block in ``jsonParsed`` encoding, or None when the slot was skipped."""
        options = {
            "encoding": "jsonParsed",
            "maxSupportedTransactionVersion": 0,
            "transactionDetails": "full",
            "rewards": False,
            "commitment": "confirmed",
        }
        try:
            block = self.call("getBlock", [slot, options])
        except SlotSkipped:
            return None
        if block is None:
            return None
        if not isinstance(block, dict):
            raise RpcError(f"getBlock {slot}: not a block ({type(block).__name__})")
        return block
