"""Notification channels against a hostile or broken endpoint on 127.0.0.1: redirects, replies
that are huge, drip or break HTTP, absurd ``retry_after`` values, a certificate that does not
verify. A note is confirmed only when the configured endpoint itself answered 2xx, the sender
thread never dies, and the token never leaves for another host."""

from __future__ import annotations

import contextlib
import html
import json
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.exchange.base import ExchangeError, NetworkError, RateLimited, RequestTimeout
from engine.modes import resolve_settings
from engine.notify import Note, Notifier
from engine.notify.channels import Channel, TelegramChannel, WebhookChannel
from engine.secrets import Secret
from tests.conftest import CANARY, ROOT, CliRunner
from tests.notify_sim import CHAT, HOOK_KEY, TOKEN
from tests.test_notify import FAST, files_text

Behaviour = Callable[[BaseHTTPRequestHandler], None]
NOTE = Note.make("test", "info", datetime(2026, 1, 1, tzinfo=UTC), "paper", "hello")


def answer(status: int, reply: object, **headers: str) -> Behaviour:
    """A behaviour that answers ``status`` with ``reply`` as JSON (bytes: as they are)."""

    def send(handler: BaseHTTPRequestHandler) -> None:
        data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
        handler.send_response(status)
        for name, value in (headers | {"Content-Length": str(len(data))}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    return send


ok = answer(200, {"ok": True, "result": {"message_id": 1}})


class Endpoint:
    def __init__(self) -> None:
        self.behaviours: list[Behaviour] = []  # one per request, then ``ok``
        self.requests: list[tuple[str, str]] = []
        self.bodies: list[bytes] = []
        self.url = ""

    def next(self) -> Behaviour:
        return self.behaviours.pop(0) if self.behaviours else ok


@contextlib.contextmanager
def endpoint(tls: tuple[Path, Path] | None = None) -> Iterator[Endpoint]:
    state = Endpoint()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.requests.append((self.command, self.path))
            state.bodies.append(body)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                state.next()(self)

        do_POST = do_GET = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    state.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hostile() -> Iterator[Endpoint]:
    with endpoint() as e:
        yield e


@pytest.fixture
def elsewhere() -> Iterator[Endpoint]:
    with endpoint() as e:
        yield e


def channels(base: str, timeout_s: float = 2.0) -> list[Channel]:
    return [
        TelegramChannel(Secret(TOKEN), Secret(CHAT), base, timeout_s=timeout_s),
        WebhookChannel(Secret(f"{base}/hook/x"), Secret(HOOK_KEY), timeout_s=timeout_s),
    ]


def send(channel: Channel) -> None:
    channel.send(channel.payload([NOTE]))


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed_nor_taken_for_a_delivery(
    hostile: Endpoint, elsewhere: Endpoint, status: int
) -> None:
    def redirect(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", f"{elsewhere.url}/bot{TOKEN}/sendMessage")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    for channel in channels(hostile.url):
        hostile.behaviours = [redirect]
        with pytest.raises(ExchangeError, match=f"HTTP {status}") as caught:
            send(channel)
        assert TOKEN not in str(caught.value) and HOOK_KEY not in str(caught.value)
    assert elsewhere.requests == []


def test_a_huge_reply_is_never_held(hostile: Endpoint) -> None:
    def announced(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(300 * 1024 * 1024))
        handler.end_headers()
        handler.wfile.write(b"{")

    def flood(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Connection", "close")  # no length: read until the end
        handler.end_headers()
        for _ in range(64):
            handler.wfile.write(b" " * 65536)

    telegram, webhook = channels(hostile.url)
    for behaviour in (announced, flood):
        hostile.behaviours = [behaviour]
        with pytest.raises(ExchangeError, match="larger than"):
            send(telegram)  # its answer says whether the message went: unread, it did not
        hostile.behaviours = [behaviour]
        send(webhook)  # a 2xx is the receipt: the body past the cap is not read, nor needed


def drip_headers(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
    for _ in range(100):  # one header line every 0.1 s: each read is quick, the whole is not
        handler.wfile.write(b"X-Slow: 1\r\n")
        handler.wfile.flush()
        time.sleep(0.1)


def drip_body(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "100")
    handler.end_headers()
    for _ in range(100):
        handler.wfile.write(b" ")
        handler.wfile.flush()
        time.sleep(0.1)


@pytest.mark.parametrize("drip", [drip_headers, drip_body])
def test_a_reply_that_drips_is_cut_at_the_deadline(hostile: Endpoint, drip: Behaviour) -> None:
    telegram, webhook = channels(hostile.url, timeout_s=1.0)
    for channel in (telegram, webhook) if drip is drip_headers else (telegram,):
        hostile.behaviours = [drip]
        started = time.monotonic()
        with pytest.raises(RequestTimeout, match="no answer within 1s"):
            send(channel)
        assert time.monotonic() - started < 2.5


def test_a_slow_name_lookup_does_not_lift_the_deadline(
    hostile: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline cuts the connection's socket; while the name is being looked up there is no
    socket yet, so a deadline passed then was never enforced again: a reply that dripped after a
    slow lookup held the sender for as long as it dripped."""
    lookup = socket.getaddrinfo

    def slow_lookup(*args: Any, **kwargs: Any) -> Any:
        time.sleep(1.2)  # a resolver slower than the whole deadline
        return lookup(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_lookup)
    telegram, webhook = channels(hostile.url, timeout_s=1.0)
    for channel in (telegram, webhook):
        hostile.behaviours = [drip_headers]
        started = time.monotonic()
        with pytest.raises(RequestTimeout, match="no answer within 1s"):
            send(channel)
        assert time.monotonic() - started < 3.0


def truncated(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.write(b'{"ok": tr')
    handler.close_connection = True


def garbled(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.write(b"NOT HTTP AT ALL\r\n\r\n")
    handler.close_connection = True


json_bomb = answer(200, b"[" * 200_000 + b"]" * 200_000)


def test_a_json_bomb_from_telegram_is_a_refusal_not_a_traceback(hostile: Endpoint) -> None:
    hostile.behaviours = [json_bomb]
    with pytest.raises(ExchangeError, match="not ok"):
        send(channels(hostile.url)[0])


@pytest.mark.parametrize("behaviour", [truncated, garbled])
def test_a_reply_that_breaks_http_is_a_network_error(
    hostile: Endpoint, behaviour: Behaviour
) -> None:
    telegram, webhook = channels(hostile.url)  # the webhook reads the status only
    for channel in (telegram, webhook) if behaviour is garbled else (telegram,):
        hostile.behaviours = [behaviour]
        with pytest.raises(NetworkError) as caught:
            send(channel)
        assert TOKEN not in str(caught.value)


def test_the_sender_survives_a_broken_reply_and_delivers_on_the_retry(
    workdir: Path, hostile: Endpoint
) -> None:
    (workdir / "kobe.toml").write_text(
        '[notify]\nchannels = ["telegram"]\nevents = ["entry_filled"]\n'
    )
    env = {"KOBE_TELEGRAM_API_URL": hostile.url, "TELEGRAM_BOT_TOKEN": TOKEN}
    settings = resolve_settings(env | {"TELEGRAM_CHAT_ID": CHAT}, workdir)
    hostile.behaviours = [truncated, garbled]
    notifier = Notifier.for_settings(settings, policy=FAST)
    notifier.start()
    worker = notifier.workers[0]

    def answered(n: int, ok: bool = True) -> None:
        deadline = time.monotonic() + 10
        while len(hostile.requests) < n or worker.status.ok is not ok:
            assert time.monotonic() < deadline, (hostile.requests, worker.status)
            time.sleep(0.05)

    try:
        worker.offer(NOTE)
        answered(3)  # two broken replies, retried, then delivered
        hostile.behaviours = [json_bomb]
        worker.offer(replace(NOTE, id="second"))  # refused: dropped, the sender lives on
        answered(4, ok=False)
        worker.offer(replace(NOTE, id="third"))
        answered(5)
    finally:
        notifier.close()


@pytest.mark.parametrize(
    ("given", "waits"),
    [(100_000, 3600.0), (2.5, 2.5), ("1e400", None), ("-5", None), ("soon", None), ("NaN", None)],
)
def test_retry_after_from_the_channel_is_bounded(
    hostile: Endpoint, given: object, waits: float | None
) -> None:
    reply = {"ok": False, "description": "Too Many Requests", "parameters": {"retry_after": given}}
    limited = answer(429, reply, **{"Retry-After": str(given)})

    for channel in channels(hostile.url):
        hostile.behaviours = [limited]
        with pytest.raises(RateLimited) as caught:
            send(channel)
        assert caught.value.retry_after == waits


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_a_certificate_that_does_not_verify_is_never_sent_to(
    self_signed: tuple[Path, Path],
) -> None:
    with endpoint(tls=self_signed) as tls:
        hook = WebhookChannel(Secret(f"{tls.url}/hook/x"), Secret(HOOK_KEY), timeout_s=2.0)
        with pytest.raises(NetworkError, match=r"(?i)certificate") as caught:
            send(hook)
        assert tls.requests == [] and HOOK_KEY not in str(caught.value)


def test_a_reply_echoing_the_token_never_shows_it(hostile: Endpoint) -> None:
    hostile.behaviours = [answer(400, {"ok": False, "description": f"bad bot {TOKEN}"})]
    with pytest.raises(ExchangeError) as caught:
        send(channels(hostile.url)[0])
    assert "bad bot ***" in str(caught.value) and TOKEN not in str(caught.value)


def test_nothing_listens_is_a_network_error_without_the_token() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for channel in channels(f"http://127.0.0.1:{port}"):
        with pytest.raises(NetworkError) as caught:
            send(channel)
        assert TOKEN not in str(caught.value)


def test_a_trip_delivered_long_ago_is_not_announced_again_after_many_other_notes(
    workdir: Path,
) -> None:
    from engine.notify.outbox import KEEP_DONE, Outbox

    trip = Note.make(
        "kill_switch", "critical", NOTE.time, "paper", "Kill switch TRIPPED", "drawdown",
        note_id="kill_switch:TRIPPED:2026-01-01T00:00:00Z",
    )  # fmt: skip
    box = Outbox(workdir, ["telegram"])
    for item in [trip] + [replace(NOTE, id=f"error-{i}") for i in range(KEEP_DONE + 50)]:
        assert box.add(item)
        box.confirm([item.id], "telegram")
    box.close()
    again = Outbox(workdir, ["telegram"])  # the next start: the switch is still tripped
    assert again.known(trip.id) and not again.add(trip)
    assert not again.known("error-0")  # the others are forgotten, oldest first
    again.close()


def test_an_error_page_echoing_the_path_shows_no_part_of_the_token(hostile: Endpoint) -> None:
    def not_found(handler: BaseHTTPRequestHandler) -> None:
        echo = f"Not Found: {'x' * 120} {handler.path}"  # the cap falls inside the token
        answer(404, {"ok": False, "error_code": 404, "description": echo})(handler)

    hostile.behaviours = [not_found]
    with pytest.raises(ExchangeError) as caught:
        send(channels(hostile.url)[0])
    secret_part = TOKEN.split(":")[1]
    assert secret_part[:8] not in str(caught.value), str(caught.value)


@pytest.mark.parametrize(
    "damaged",
    [
        '{"op": "add", "note": null}',
        '{"op": "add", "note": "text"}',
        '{"op": "add", "note": [1, 2]}',
        '{"op": "add", "note": {"id": "x", "kind": "engine_error", "severity": "error", '
        '"time": "9999-12-31T23:59:59-23:59", "mode": "PAPER", "title": "t"}}',
        '{"op": "sent", "id": ["x"], "channel": {"a": 1}}',
    ],
)
def test_a_damaged_outbox_line_is_skipped_and_the_rest_kept(workdir: Path, damaged: str) -> None:
    from engine.notify.outbox import OUTBOX_FILE, Outbox

    kept = Note.make("engine_error", "error", NOTE.time, "paper", "kept", note_id="kept")
    path = workdir / OUTBOX_FILE
    path.parent.mkdir(parents=True)
    good = json.dumps({"op": "add", "note": kept.to_json()})
    path.write_text(damaged + "\n" + good + "\n")
    box = Outbox(workdir, ["telegram"])
    assert [n.id for n in box.pending("telegram")][-1] == "kept"
    box.close()


def test_an_endpoint_echoing_the_token_every_way_leaks_it_nowhere(
    hostile: Endpoint, workdir: Path, cli: CliRunner
) -> None:
    def echo_everything(handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        half = path.partition(":")[2]  # the token's secret half alone (the bot id is public)
        description = f"{path} {quote(path, safe='')} {json.dumps(path)} {half} " + "z" * 100 + path
        answer(400, {"ok": False, "description": description}, **{"X-Echo": path})(handler)

    hostile.behaviours = [echo_everything] * 50
    (workdir / "kobe.toml").write_text('[notify]\nchannels = ["telegram", "webhook"]\n')
    env = {
        "KOBE_TELEGRAM_API_URL": hostile.url, "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_CHAT_ID": CHAT, "KOBE_WEBHOOK_URL": f"{hostile.url}/hook/{CANARY}",
        "KOBE_WEBHOOK_SECRET": HOOK_KEY,
    }  # fmt: skip
    results = [
        cli("-vv", "notify", "test", env=env),
        cli("-vv", "notify", "test", "--json", env=env),
        cli("-vv", "run", "--headless", "--ticks", "3", env=env),
        cli("-vv", "health", env=env),
    ]
    assert results[0].code != 0 and "FAIL  telegram: HTTP 400" in results[0].out
    secret = TOKEN.split(":")[1]
    seen = "".join(r.out + r.err for r in results) + files_text(workdir)
    for piece in (secret[:8], quote(secret), CANARY, HOOK_KEY, CHAT):
        assert piece not in seen


def test_a_telegram_url_pasted_with_its_token_is_refused_without_echoing_it(
    workdir: Path, cli: CliRunner
) -> None:
    (workdir / "kobe.toml").write_text('[notify]\nchannels = ["telegram"]\n')
    env = {
        "KOBE_TELEGRAM_API_URL": f"https://api.telegram.org/bot{TOKEN}/sendMessage",
        "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": CHAT,
    }  # fmt: skip
    result = cli("health", env=env)
    assert result.code == 2 and "KOBE_TELEGRAM_API_URL" in result.out + result.err
    assert "api.telegram.org" in result.out + result.err  # what is wrong: the host
    assert TOKEN.split(":")[1][:6] not in result.out + result.err
    env["KOBE_TELEGRAM_API_URL"] = f"http://[::1/bot{TOKEN}"  # not even a URL
    result = cli("health", env=env)
    assert result.code == 2 and "Traceback" not in result.err
    assert TOKEN.split(":")[1][:6] not in result.out + result.err


SENDER = """
import sys, time
from datetime import UTC, datetime
from pathlib import Path
from engine.modes import resolve_settings
from engine.notify import Note, Notifier

workdir, url = Path(sys.argv[1]), sys.argv[2]
env = {"KOBE_WEBHOOK_URL": url, "KOBE_WEBHOOK_SECRET": sys.argv[3]}
notifier = Notifier.for_settings(resolve_settings(env, workdir))
notifier.start()
for i in range(60):
    t = datetime(2026, 1, 1, tzinfo=UTC)
    notifier.publish(Note.make("engine_error", "error", t, "paper", "Engine error", f"e{i}",
                               note_id=f"n{i:02d}"))
print("published", flush=True)
time.sleep(120)
"""


def test_a_kill_9_mid_delivery_of_a_full_outbox_loses_nothing_and_repeats_one_batch_at_most(
    workdir: Path, hostile: Endpoint
) -> None:
    from engine.notify.sender import BATCH_MAX

    def slow_ok(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(0.3)
        ok(handler)

    (workdir / "kobe.toml").write_text(
        '[notify]\nchannels = ["webhook"]\nevents = ["engine_error"]\n'
    )
    hostile.behaviours = [slow_ok] * 1000
    hook = f"{hostile.url}/hook/x"
    proc = subprocess.Popen(
        [sys.executable, "-c", SENDER, str(workdir), hook, HOOK_KEY],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while len(hostile.requests) < 2:  # one batch confirmed, the next one in flight
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
            time.sleep(0.01)
    finally:
        proc.kill()  # kill -9
        proc.communicate(timeout=30)

    def received() -> list[str]:
        return [n["id"] for b in hostile.bodies for n in json.loads(b)["notes"]]

    hostile.behaviours = []
    settings = resolve_settings(
        {"KOBE_WEBHOOK_URL": hook, "KOBE_WEBHOOK_SECRET": HOOK_KEY}, workdir
    )
    for _ in range(2):  # the restart delivers the rest; a second one has nothing left to send
        notifier = Notifier.for_settings(settings, policy=FAST)
        notifier.start()
        deadline = time.monotonic() + 20
        while len(set(received())) < 60:
            assert time.monotonic() < deadline, sorted(set(received()))
            time.sleep(0.05)
        time.sleep(0.3)
        notifier.close()
    ids = received()
    assert sorted(set(ids)) == [f"n{i:02d}" for i in range(60)]  # nothing lost
    assert len(ids) - 60 <= BATCH_MAX  # only the batch in flight at the kill went twice


def test_a_note_the_channel_refuses_does_not_hold_back_the_others(
    workdir: Path, hostile: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message refused for what it holds (a 400) was refused again with every later note
    coalesced into it: the outbox note stayed first in each batch, so a kill-switch trip never
    went out and every ordinary note was dropped. The batch is now split: the rest go, the
    refused outbox note is kept and tried again later (the chat may take it then)."""
    from engine.notify import sender

    monkeypatch.setattr(sender, "ASIDE_S", 2.0)

    def refuse_poison(handler: BaseHTTPRequestHandler) -> None:
        if b"POISON" in hostile.bodies[-1]:
            answer(400, {"ok": False, "description": "Bad Request: can't parse entities"})(handler)
        else:
            ok(handler)

    def delivered() -> str:
        return "".join(json.loads(b)["text"] for b in hostile.bodies if b"POISON" not in b)

    hostile.behaviours = [refuse_poison] * 100
    (workdir / "kobe.toml").write_text('[notify]\nchannels = ["telegram"]\n')
    env = {"KOBE_TELEGRAM_API_URL": hostile.url, "TELEGRAM_BOT_TOKEN": TOKEN}
    notifier = Notifier.for_settings(resolve_settings(env | {"TELEGRAM_CHAT_ID": CHAT}, workdir))
    notifier.workers[0].policy = replace(notifier.workers[0].policy, base_delay_s=0.01)
    t = NOTE.time
    poison = Note.make("protection_lost", "critical", t, "paper", "Protection lost", "POISON")
    trip = Note.make(
        "kill_switch", "critical", t, "paper", "Kill switch TRIPPED", "drawdown",
        note_id="kill_switch:TRIPPED:2026-01-01T00:00:00Z",
    )  # fmt: skip
    for item in (poison, Note.make("entry_filled", "info", t, "paper", "Entry filled"), trip):
        notifier.publish(item)  # one batch: the sender starts after them
    notifier.start()
    try:
        deadline = time.monotonic() + 10
        while not ("Kill switch TRIPPED" in delivered() and "Entry filled" in delivered()):
            assert time.monotonic() < deadline, [b[:300] for b in hostile.bodies]
            time.sleep(0.05)
        assert notifier.outbox is not None  # the refused note is kept, set aside a while
        assert [n.id for n in notifier.outbox.pending("telegram")] == [poison.id]
        hostile.behaviours = []  # now the chat takes it: it goes at the next try
        deadline = time.monotonic() + 10
        while notifier.outbox.pending("telegram"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        notifier.close()


_TELEGRAM_MARKUP = re.compile(r"</?b>|&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")


@settings(max_examples=300, deadline=None)
@given(
    detail=st.text(max_size=3000),
    symbol=st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
)
def test_text_from_outside_arrives_literally_on_both_channels(detail: str, symbol: str) -> None:
    """Whatever an exchange, a feed or an operator writes (markup, entities, control characters,
    ANSI escapes, quotes, very long lines): Telegram gets only Kobe's <b> tags and the entities
    its HTML mode knows, and reads back exactly the cleaned text; the webhook's JSON holds it as
    a string, nothing more."""
    note = Note.make(
        "engine_error", "error", NOTE.time, "paper", "Engine error", detail, symbol=symbol
    )
    assert len(note.detail) <= 1000 and not any(
        ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in note.detail
    )
    text = channels("http://127.0.0.1:1")[0].payload([note]).decode()
    bare = _TELEGRAM_MARKUP.sub("", text)
    assert not set("<>&") & set(bare)  # no markup of the sender's own
    assert html.unescape(re.sub(r"</?b>", "", text)) == note.plain()
    hook = json.loads(channels("http://127.0.0.1:1")[1].payload([note]))
    (sent,) = hook["notes"]
    assert (sent["detail"], sent["fields"].get("symbol", "")) == (
        note.detail,
        note.fields.get("symbol", ""),
    )
    assert set(hook) == {"source", "notes"}
