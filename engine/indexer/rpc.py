"""A minimal Solana JSON-RPC client over HTTP (standard library only): ``getSlot``, ``getBlock``.

Read-only by construction: :meth:`SolanaRpc.call` sends only the methods in
:data:`READ_ONLY_METHODS`; a method that sends a transaction, signs or airdrops is refused
before anything leaves (the tx guard's structural half). Calls are retried under the exchange
layer's discipline (:func:`engine.exchange.retry.call_with_retries`): 429 (honouring
``Retry-After``), 5xx and network errors back off, bounded in attempts and time; other errors are
raised at once.

The node's reply is outside data: each call is one :func:`engine.http_post.post` (a total
deadline, so a node that drips bytes cannot hold it; a size cap; no redirect followed), the reply
has a nesting cap and a cap on the values it holds (counted before it is parsed, so a small reply
cannot become gigabytes of Python objects), slot numbers are checked for sense, and its error text
is cleaned and capped.

The endpoint URL often embeds a token: it is held as a :class:`~engine.secrets.Secret`, registered
for log redaction, and never put in a message, a log line or an exception. Credentials in it
(``user:token@host``) are sent as HTTP basic auth, never to name resolution.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from engine.exchange.base import (
    ExchangeError,
    ExchangeUnavailable,
    RateLimited,
)
from engine.exchange.retry import RetryPolicy, call_with_retries, parse_retry_after
from engine.http_post import BadEndpoint, Endpoint, ReplyTooLarge, post
from engine.secrets import REDACTED, Secret, redact, register_secret_values
from engine.untrusted import clean_message

# getBlock: "Slot N was skipped, or missing due to ledger jump to recent snapshot" (-32007) and
# "Slot N was skipped, or missing in long-term storage" (-32009).
SKIPPED_SLOT_CODES = (-32007, -32009)
RATE_LIMIT_CODES = (-32005, 429)  # some providers say "rate limited" in the JSON-RPC error

# The only methods this client sends: reads. Anything else (a transaction, an airdrop,
# simulateTransaction with sigVerify...) is refused before a byte leaves.
READ_ONLY_METHODS = frozenset(
    {"getSlot", "getBlock", "getBlockHeight", "getHealth", "getVersion", "getGenesisHash"}
)
MAX_REPLY_BYTES = 64 * 1024 * 1024  # a full jsonParsed block is a few MB
MAX_JSON_DEPTH = 64  # a jsonParsed block nests about 10 deep
# JSON values, strings (keys included) and containers in one reply, counted before it is parsed
# from its commas, opening brackets and quotes: each becomes a Python object of 30 to 100 bytes
# whatever its length in the reply. 63 MB of [],[],[] made 20 million lists (1.6 GB and 16 s of
# the engine's tick); 45 MB of distinct short keys ({"0000001":"ab",...}, uncounted before) made
# 750 MB. A jsonParsed transaction counts about 600 (a vote about 80), so a heavy mainnet block
# (about 1,000 transactions and 1,500 votes) counts under 800,000: 2,000,000 leaves it room and
# holds the worst reply (distinct keys, about 80 bytes each) to about 160 MB once parsed.
MAX_JSON_VALUES = 2_000_000
MAX_SLOT = 10**12  # Solana makes ~2.5 slots a second: 10^12 is thousands of years away


class RpcError(ExchangeError):
    """The node answered with an error that retrying would not fix (or a reply that is not
    JSON-RPC). ``code`` is the JSON-RPC error code when there is one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class SlotSkipped(RpcError):
    """The slot has no block (skipped, or missing from the node's storage)."""


class ReplyRefused(RpcError):
    """The reply passed a cap (its size, its values, its nesting): asking again gets the same."""


class BadRpcUrl(RpcError):
    """``RPC_SOLANA_HTTP`` is no URL a request could use: bad config, not a failing node."""


class NotReadOnly(RpcError):
    """A method this read-only client never sends (a transaction, a signature, an airdrop)."""


def _too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the parsed reply nests deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def json_values(raw: bytes) -> int:
    """An upper bound of the values, strings and containers ``raw`` parses to, without parsing
    it: one per comma and opening bracket, one per two quotes (an escaped quote counts too,
    which can only overcount)."""
    return raw.count(b",") + raw.count(b"[") + raw.count(b"{") + raw.count(b'"') // 2


class SolanaRpc:
    """JSON-RPC over HTTP POST. ``policy`` makes retries (and their sleeps) injectable.

    ``timeout_s`` is the total time one call may take (one attempt; retries have their own
    bound in ``policy``); ``max_bytes`` caps the reply.
    """

    def __init__(
        self,
        url: Secret,
        *,
        timeout_s: float = 10.0,
        policy: RetryPolicy | None = None,
        max_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        self._url = url
        self.timeout_s = timeout_s
        self.policy = policy or RetryPolicy()
        self.max_bytes = max_bytes
        self._ids = itertools.count(1)
        register_secret_values([url.get_secret_value()])
        try:
            self._endpoint = Endpoint(url.get_secret_value())
        except BadEndpoint:
            raise BadRpcUrl(
                "the Solana RPC endpoint (RPC_SOLANA_HTTP) is not an http:// or https:// URL "
                "of the form scheme://host[:port]/path"
            ) from None

    def __repr__(self) -> str:
        return f"SolanaRpc(url={REDACTED})"

    def _clean(self, text: str) -> str:
        url = self._url.get_secret_value()
        if url:
            text = text.replace(url, REDACTED)
        return clean_message(redact(text))

    def _post(self, method: str, params: list[Any]) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        try:
            got = post(
                self._endpoint,
                json.dumps(body).encode("utf-8"),
                headers,
                timeout_s=self.timeout_s,
                max_bytes=self.max_bytes,
                what=method,
            )
        except ReplyTooLarge as exc:
            raise ReplyRefused(str(exc)) from None
        status, retry_after, raw = got.status, got.headers.get("Retry-After"), got.body
        if status == 429:
            wait = parse_retry_after(retry_after)
            raise RateLimited(
                f"{method}: HTTP 429", retry_after=None if wait is None else float(wait)
            )
        if status >= 500:
            raise ExchangeUnavailable(f"{method}: HTTP {status}")
        if status >= 300:
            raise RpcError(f"{method}: HTTP {status}")
        if json_values(raw) > MAX_JSON_VALUES:
            raise ReplyRefused(f"{method}: the reply holds more than {MAX_JSON_VALUES} JSON values")
        try:
            reply = json.loads(raw)
        except RecursionError:
            raise ReplyRefused(f"{method}: the reply nests deeper than {MAX_JSON_DEPTH}") from None
        except (ValueError, UnicodeDecodeError):
            raise RpcError(f"{method}: the reply is not JSON") from None
        if not isinstance(reply, dict):
            raise RpcError(f"{method}: the reply is not a JSON-RPC object")
        if _too_deep(reply):
            raise ReplyRefused(f"{method}: the reply nests deeper than {MAX_JSON_DEPTH}")
        error = reply.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            code = code if isinstance(code, int) and not isinstance(code, bool) else None
            text = error.get("message", "") if isinstance(error, dict) else error
            message = f"{method}: JSON-RPC error {code}: {self._clean(str(text))[:200]}"
            if code in SKIPPED_SLOT_CODES:
                raise SlotSkipped(message, code)
            if code in RATE_LIMIT_CODES:
                raise RateLimited(message)
            raise RpcError(message, code)
        if "result" not in reply:
            raise RpcError(f"{method}: the reply has no result")
        return reply["result"]

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        """One read-only JSON-RPC call, retried under the policy. Any method not in
        :data:`READ_ONLY_METHODS` raises :class:`NotReadOnly` and sends nothing."""
        if method not in READ_ONLY_METHODS:
            raise NotReadOnly(
                f"{clean_message(method)[:60]}: refused: this client sends only read-only "
                "methods (no transaction is ever sent or signed)"
            )
        return call_with_retries(lambda: self._post(method, params or []), method, self.policy)

    def get_slot(self) -> int:
        slot = self.call("getSlot", [{"commitment": "confirmed"}])
        if isinstance(slot, bool) or not isinstance(slot, int):
            raise RpcError(f"getSlot: not a slot number ({type(slot).__name__})")
        if not 0 <= slot <= MAX_SLOT:
            raise RpcError(f"getSlot: {str(slot)[:24]} is not a plausible slot number")
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
