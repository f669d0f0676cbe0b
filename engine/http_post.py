"""One HTTP POST to a host that is not trusted (standard library only), shared by the Solana RPC
client and the notification channels.

- A total deadline: connect, headers and body together, so a server that drips bytes cannot hold
  the caller past ``timeout_s``.
- A size cap on the reply: announced too large it is refused before reading, and a body without
  a length is cut as soon as it passes the cap.
- Redirects are never followed (a 3xx is returned as it is): a request that carries a token in its
  URL or a signed body goes to the one host configured, and a redirect is never taken for a
  delivery.
- Transport failures are :class:`NetworkError` / :class:`RequestTimeout` naming ``what``, never the
  URL; a reply that breaks HTTP (a garbled status line, a body shorter than announced) too.

The URL often embeds a token: :class:`Endpoint` checks it once and refuses a malformed one without
echoing it; credentials in it (``user:token@host``) are sent as HTTP basic auth, never to name
resolution.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from urllib.parse import unquote, urlsplit

from engine.exchange.base import ExchangeError, NetworkError, RequestTimeout
from engine.secrets import redact, register_secret_values
from engine.untrusted import clean_message


class BadEndpoint(ValueError):
    """The URL is not ``http(s)://host[:port]/path`` (the message never holds it)."""


class ReplyTooLarge(ExchangeError):
    """The reply is larger than the cap."""


class Endpoint:
    """The URL's parts, checked once; a bad URL is refused without echoing it."""

    def __init__(self, url: str) -> None:
        bad = BadEndpoint("not an http:// or https:// URL of the form scheme://host[:port]/path")
        # HTTP sends the request line and Host in ASCII: a name goes in its xn-- form, a path
        # percent-encoded; anything else could never be sent
        if not url.isascii() or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
            raise bad
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise bad from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise bad
        self.https = parts.scheme.lower() == "https"
        self.host = parts.hostname
        self.port = port or (443 if self.https else 80)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.auth: str | None = None
        if parts.username is not None:
            user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            register_secret_values([user_pass, unquote(parts.password or "")])
            self.auth = "Basic " + base64.b64encode(user_pass.encode()).decode()
            register_secret_values([self.auth])


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Message
    body: bytes


def post(
    endpoint: Endpoint,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout_s: float,
    max_bytes: int,
    what: str,
    status_only: bool = False,
) -> Reply:
    """One POST within ``timeout_s`` in all; any status is returned (3xx included, not followed).
    Raises :class:`RequestTimeout`, :class:`NetworkError` or :class:`ReplyTooLarge`.
    ``status_only``: the body is not read at all (the caller needs only the status)."""
    ep = endpoint
    deadline = time.monotonic() + timeout_s
    conn_class = http.client.HTTPSConnection if ep.https else http.client.HTTPConnection
    conn = conn_class(ep.host, ep.port, timeout=timeout_s)
    expired = threading.Event()

    def cut() -> None:  # the deadline: wake a read blocked on a server that drips bytes
        expired.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(timeout_s, cut)
    timer.daemon = True
    timer.start()
    sent = dict(headers)
    if ep.auth:
        sent["Authorization"] = ep.auth
    too_large = ReplyTooLarge(f"{what}: the reply is larger than {max_bytes} bytes")
    try:
        conn.connect()
        if expired.is_set():  # the name lookup (no socket to cut yet) outlasted the deadline
            raise TimeoutError
        conn.request("POST", ep.target, body=body, headers=sent)
        response = conn.getresponse()
        length = response.getheader("Content-Length")
        if expired.is_set():  # the deadline cut the headers short
            raise TimeoutError
        if status_only:
            return Reply(response.status, response.headers, b"")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = response.read1(64 * 1024)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise too_large
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise TimeoutError
        if expired.is_set():
            raise TimeoutError
        if response.length:  # closed before the length it announced: a cut reply
            raise http.client.IncompleteRead(b"", response.length)
        return Reply(response.status, response.headers, b"".join(chunks))
    except ReplyTooLarge:
        raise
    except TimeoutError:
        raise RequestTimeout(f"{what}: no answer within {timeout_s:g}s") from None
    except (http.client.HTTPException, OSError, ValueError) as exc:
        if expired.is_set():
            raise RequestTimeout(f"{what}: no answer within {timeout_s:g}s") from None
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else ""
        if not why and isinstance(exc, OSError) and exc.args:  # TLS errors carry no strerror
            why = str(exc.args[-1])
        raise NetworkError(
            f"{what}: {type(exc).__name__} {clean_message(redact(why))[:200]}".rstrip()
        ) from None
    finally:
        timer.cancel()
        conn.close()
