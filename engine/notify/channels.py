"""The channels a note goes out on: Telegram's Bot API (``sendMessage``) and a signed JSON webhook.

Outbound only: Kobe never reads what the chat says. One call of :meth:`Channel.send` is one HTTP
attempt; it raises the exchange layer's errors so that :func:`engine.exchange.retry.
call_with_retries` (tenacity) can retry it: :class:`RateLimited` (429, with Telegram's
``retry_after`` or the webhook's ``Retry-After``), :class:`ExchangeUnavailable` (5xx),
:class:`NetworkError` (connection, timeout); :class:`DeliveryError` for what retrying cannot fix
(a bad token, an unknown chat).

The bot token, the chat id, the webhook URL and its key are :class:`~engine.secrets.Secret`\\ s:
registered for log redaction and never put in an error, a status or a log line.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from engine.config import NotifyConfig
from engine.exchange.base import ExchangeError, ExchangeUnavailable, RateLimited
from engine.exchange.retry import parse_retry_after
from engine.http_post import BadEndpoint, Endpoint, Reply
from engine.http_post import post as http_post
from engine.jsonutil import dumps
from engine.notify.notes import Note, telegram_text
from engine.secrets import Secret, redact, register_secret_values, secret_parts
from engine.untrusted import clean_text

TELEGRAM_API = "https://api.telegram.org"
TELEGRAM_MAX_CHARS = 4096  # Telegram's limit for one message's text
SIGNATURE_HEADER = "X-Kobe-Signature"
MIN_WEBHOOK_KEY = 16  # characters of KOBE_WEBHOOK_SECRET
_TOKEN = re.compile(r"\d{1,20}:[A-Za-z0-9_-]{20,100}")
_CHAT = re.compile(r"-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31}")


class DeliveryError(ExchangeError):
    """The channel refused the message for a reason retrying will not fix."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _endpoint(value: str, problem: str) -> Endpoint:
    """``value`` as a URL a request can go to (the port in range, no space or control
    character), or ValueError(``problem``): refused at the start rather than at every send."""
    try:
        return Endpoint(value)
    except BadEndpoint as exc:  # its message never holds the URL
        raise ValueError(f"{problem}: {exc}") from None


def check_telegram_api_url(value: str) -> str:
    """``KOBE_TELEGRAM_API_URL``: a local stand-in's base URL; loopback only."""
    endpoint = _endpoint(value, "must be http://127.0.0.1:PORT (loopback only: a local stand-in)")
    if not is_loopback(endpoint.host):
        raise ValueError("must be http://127.0.0.1:PORT (loopback only: a local stand-in)")
    return value.rstrip("/")


def check_webhook_url(value: str) -> str:
    """``KOBE_WEBHOOK_URL``: https anywhere, plain http only to this machine."""
    problem = "must be https://... (http:// only to 127.0.0.1, ::1 or localhost)"
    endpoint = _endpoint(value, problem)
    if not (endpoint.https or is_loopback(endpoint.host)):
        raise ValueError(problem)
    return value


def env_problems(notify: NotifyConfig, env: Mapping[str, str]) -> list[str]:
    """Malformed notification variables, one line each (exit 2). Secret values are never shown;
    a variable that is missing is not a problem here (``kobe health`` says so)."""
    problems: list[str] = []
    api = env.get("KOBE_TELEGRAM_API_URL", "")
    if api:
        try:
            check_telegram_api_url(api)
        except ValueError as exc:
            try:  # only the host: a pasted URL may hold a token
                host = urlsplit(api).hostname or ""
            except ValueError:
                host = ""
            problems.append(f"KOBE_TELEGRAM_API_URL: {exc} (got host {clean_text(host, 60)!r})")
    if "telegram" in notify.channels:
        token, chat = env.get("TELEGRAM_BOT_TOKEN", ""), env.get("TELEGRAM_CHAT_ID", "")
        if token and not _TOKEN.fullmatch(token):
            problems.append(
                "TELEGRAM_BOT_TOKEN: must look like 123456789:AA... (the token @BotFather "
                "gave; its value is not shown)"
            )
        if chat and not _CHAT.fullmatch(chat):
            problems.append(
                "TELEGRAM_CHAT_ID: must be a chat number (e.g. -1001234567890) or @channelname "
                "(its value is not shown)"
            )
    url, key = env.get("KOBE_WEBHOOK_URL", ""), env.get("KOBE_WEBHOOK_SECRET", "")
    if "webhook" in notify.channels and url:
        try:
            check_webhook_url(url)
        except ValueError as exc:
            problems.append(f"KOBE_WEBHOOK_URL: {exc} (its value is not shown)")
    if "webhook" in notify.channels and key and len(key.strip()) < MIN_WEBHOOK_KEY:
        problems.append(  # a short key is guessed, and under 4 characters not even redacted
            f"KOBE_WEBHOOK_SECRET: must be at least {MIN_WEBHOOK_KEY} characters, not blank "
            "(e.g. openssl rand -hex 32; its value is not shown)"
        )
    return problems


# ---------------------------------------------------------------------------------------------
# HTTP


MAX_REPLY_BYTES = 1024 * 1024  # Telegram answers sendMessage in a few hundred bytes


def post(
    url: Secret,
    body: bytes,
    headers: Mapping[str, str],
    timeout_s: float,
    what: str,
    *,
    status_only: bool = False,
) -> Reply:
    """One POST (:func:`engine.http_post.post`: a total deadline, a size cap, no redirect
    followed). Failures raise NetworkError / RequestTimeout naming ``what`` (never the URL); an
    HTTP error status (a 3xx too) is returned as a :class:`Reply`. ``status_only``: the body is
    not read (the status is the receipt: a 2xx with a huge body is still a delivery)."""
    try:
        endpoint = Endpoint(url.get_secret_value())
    except BadEndpoint as exc:
        raise DeliveryError(f"{what}: the URL is {exc}") from None
    return http_post(
        endpoint,
        body,
        headers,
        timeout_s=timeout_s,
        max_bytes=MAX_REPLY_BYTES,
        what=what,
        status_only=status_only,
    )


def _raise_for(reply: Reply, what: str, retry_after: Decimal | None, description: str) -> None:
    if 200 <= reply.status < 300:
        return
    why = f"{what}: HTTP {reply.status}" + (f": {description}" if description else "")
    if reply.status == 429:
        wait = float(retry_after) if retry_after is not None else None
        raise RateLimited(
            why + (f" (retry after {retry_after}s)" if wait is not None else ""), retry_after=wait
        )
    if reply.status >= 500:
        raise ExchangeUnavailable(why)
    raise DeliveryError(why)


# ---------------------------------------------------------------------------------------------
# Channels


class Channel:
    """A place notes go. ``payload`` renders a burst; ``send`` is one attempt."""

    name = ""
    max_chars = 0  # the most one payload may hold
    min_interval_s = 1.0  # between two sends

    def payload(self, notes: Sequence[Note]) -> bytes:
        raise NotImplementedError

    def fits(self, notes: Sequence[Note]) -> bool:
        return len(self.payload(notes)) <= self.max_chars

    def send(self, payload: bytes) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class TelegramChannel(Channel):
    """``sendMessage`` with ``parse_mode=HTML``; about one message a second per chat."""

    name = "telegram"
    max_chars = TELEGRAM_MAX_CHARS

    def __init__(
        self, token: Secret, chat_id: Secret, api_url: str = TELEGRAM_API, timeout_s: float = 10.0
    ) -> None:
        register_secret_values(
            [
                *secret_parts("TELEGRAM_BOT_TOKEN", token.get_secret_value()),
                chat_id.get_secret_value(),
            ]
        )
        self._token = token
        self._chat = chat_id
        self.api_url = api_url.rstrip("/")
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"TelegramChannel(api={self.api_url})"

    def payload(self, notes: Sequence[Note]) -> bytes:
        return telegram_text(notes).encode("utf-8")

    def fits(self, notes: Sequence[Note]) -> bool:
        return len(telegram_text(notes)) <= self.max_chars  # Telegram counts characters

    def send(self, payload: bytes) -> None:
        url = Secret(f"{self.api_url}/bot{self._token.get_secret_value()}/sendMessage")
        body = json.dumps(
            {
                "chat_id": self._chat.get_secret_value(),
                "text": payload.decode("utf-8"),
                "parse_mode": "HTML",
                "disable_web_page_preview": True,
            }
        ).encode("utf-8")
        reply = post(url, body, {"Content-Type": "application/json"}, self.timeout_s, "telegram")
        data: Any = None
        with contextlib.suppress(ValueError, UnicodeDecodeError, RecursionError):
            data = json.loads(reply.body)
        data = data if isinstance(data, dict) else {}
        params = data.get("parameters")
        retry_after = (
            parse_retry_after(params.get("retry_after")) if isinstance(params, dict) else None
        )
        if retry_after is None:
            retry_after = parse_retry_after(reply.headers.get("Retry-After"))
        description = clean_text(
            redact(str(data.get("description") or "")), 160
        )  # redact, then cut
        _raise_for(reply, "telegram", retry_after, description)
        if data.get("ok") is not True:
            raise DeliveryError(f"telegram: the reply is not ok: {description or 'no description'}")

    def describe(self) -> str:
        where = "api.telegram.org" if self.api_url == TELEGRAM_API else self.api_url
        return f"bot token and chat set; {where}"


class WebhookChannel(Channel):
    """A JSON POST signed with HMAC-SHA256 of the body: ``X-Kobe-Signature: sha256=<hex>``."""

    name = "webhook"
    max_chars = 256 * 1024
    min_interval_s = 0.2

    def __init__(self, url: Secret, key: Secret, timeout_s: float = 10.0) -> None:
        register_secret_values([url.get_secret_value(), key.get_secret_value()])
        self._url = url
        self._key = key
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return "WebhookChannel(url=***)"

    def payload(self, notes: Sequence[Note]) -> bytes:
        body = {"source": "kobe", "notes": [n.to_json() | {"text": n.plain()} for n in notes]}
        return dumps(body).encode("utf-8")

    def signature(self, payload: bytes) -> str:
        digest = hmac.new(self._key.get_secret_value().encode(), payload, hashlib.sha256)
        return f"sha256={digest.hexdigest()}"

    def send(self, payload: bytes) -> None:
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: self.signature(payload)}
        reply = post(self._url, payload, headers, self.timeout_s, "webhook", status_only=True)
        retry_after = parse_retry_after(reply.headers.get("Retry-After"))
        _raise_for(reply, "webhook", retry_after, "")

    def describe(self) -> str:
        return "URL and signing key set"


_NEEDS = {
    "telegram": ("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID"),
    "webhook": ("KOBE_WEBHOOK_URL", "KOBE_WEBHOOK_SECRET"),
}


def missing_variables(notify: NotifyConfig, env: Mapping[str, str]) -> dict[str, str]:
    """For each channel of ``[notify] channels`` that cannot send, what is missing
    (``{"telegram": "TELEGRAM_CHAT_ID is not set"}``)."""
    missing: dict[str, str] = {}
    for name in notify.channels:
        absent = [var for var in _NEEDS[name] if not env.get(var)]
        if absent:
            missing[name] = f"{' and '.join(absent)} {'is' if len(absent) == 1 else 'are'} not set"
    return missing


def engine_problems(notify: NotifyConfig, env: Mapping[str, str]) -> list[str]:
    """Why an engine may not start (exit 2): a channel listed that cannot send would leave the
    trader believing alerts reach them. ``kobe health`` and ``kobe notify test`` still run."""
    return [
        f'notify.channels: "{name}" is listed but {why} (in the environment or .env); set '
        f"{'it' if ' is ' in why else 'them'}, or remove it from [notify] channels"
        for name, why in missing_variables(notify, env).items()
    ]


def build_channels(
    notify: NotifyConfig, env: Mapping[str, str], timeout_s: float = 10.0
) -> tuple[list[Channel], dict[str, str]]:
    """The channels of ``[notify] channels`` whose variables are set, and for the others what is
    missing (:func:`missing_variables`)."""
    channels: list[Channel] = []
    missing = missing_variables(notify, env)
    for name in notify.channels:
        if name in missing:
            continue
        first, second = (Secret(env[var]) for var in _NEEDS[name])
        if name == "telegram":
            api = env.get("KOBE_TELEGRAM_API_URL") or TELEGRAM_API
            channels.append(TelegramChannel(first, second, api, timeout_s))
        else:
            channels.append(WebhookChannel(first, second, timeout_s))
    return channels, missing
