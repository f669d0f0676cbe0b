"""Notifications (issue 18): a local Telegram Bot API stand-in and a webhook receiver on 127.0.0.1.

Delivery, 429 with retry_after, 5xx retries, an outage longer than the queue, restarts with the
outbox, a full disk, `kobe run` / `kobe notify test` / `kobe health`, and a canary token that
never shows anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.config import Mode
from engine.exchange.retry import RetryPolicy
from engine.modes import resolve_settings
from engine.notify import Note, Notifier
from engine.notify.channels import TelegramChannel
from engine.notify.outbox import OUTBOX_FILE
from engine.risk import KillState, RiskSnapshot
from engine.runtime import AlertEvent, EngineEvent, EngineState, RuntimeStatus
from engine.secrets import Secret
from engine.wallets.runtime import Alert, load_view
from tests.conftest import CANARY, ROOT, CliRunner
from tests.notify_sim import CHAT, HOOK_KEY, TOKEN, NotifySim, notify_sim
from tests.test_book_faults import ev

FAST = RetryPolicy(max_attempts=3, max_total_s=5.0, base_delay_s=0.01, max_delay_s=0.05)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TRIP_TOML = """
[notify]
channels = ["telegram"]
events = ["kill_switch"]
[risk]
min_operational_capital_usd = 10000   # equity 150: the kill switch trips at the first tick
"""


@pytest.fixture
def sim() -> Iterator[NotifySim]:
    with notify_sim() as s:
        yield s


def write_toml(workdir: Path, text: str) -> None:
    (workdir / "kobe.toml").write_text(text)


def notifier(
    workdir: Path, sim: NotifySim, toml: str, channels: str = "telegram", **kw: object
) -> Notifier:
    write_toml(workdir, toml)
    settings = resolve_settings(sim.env(channels), workdir)
    n = Notifier.for_settings(settings, policy=kw.pop("policy", FAST), **kw)
    n.start()
    return n


def note(kind: str = "entry_filled", detail: str = "", n: int = 0, severity: str = "info") -> Note:
    return Note.make(
        kind, severity, T0, "paper", "Entry filled", detail,
        venue="binance", wallet="cex_binance", symbol="BTC/USDT", side="BUY", qty=str(n + 1), price="95000",
    )  # fmt: skip


def strip_tags(text: str) -> str:
    return re.sub(r"<[^>]+>", "", text)


def no_canary_in(*texts: str) -> None:
    for text in texts:
        assert CANARY not in text and CHAT not in text and TOKEN not in text


def files_text(root: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------
# config and environment


def test_shipped_config_has_no_channel_and_paper_stays_offline(workdir: Path) -> None:
    settings = resolve_settings({}, workdir)
    assert settings.config.notify.channels == []
    assert settings.config.notify.heartbeat_hours == 0
    n = Notifier.for_settings(settings)
    assert n.workers == [] and n.outbox is None  # nothing to start, nothing written
    n.start()
    n.publish(note())
    n.close()
    assert not (workdir / "data").exists()


def test_bad_notify_keys_exit_2_one_line_each_and_nothing_written(
    cli: CliRunner, workdir: Path
) -> None:
    write_toml(
        workdir,
        '[notify]\nchannels = ["sms"]\nevents = ["fills"]\ndaily_summary_utc = "25:00"\n'
        "heartbeat_hours = -1\nqueue_size = 0\ncolour = true\n",
    )
    r = cli("health")
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 6
    for key in ("channels[0]", "events[0]", "daily_summary_utc", "heartbeat_hours", "queue_size"):
        assert any(f"notify.{key}:" in line for line in lines), key
    assert "kobe.toml: notify.colour: unknown key (got true)" in lines
    assert "must be HH:MM in UTC" in r.err
    assert not (workdir / "data").exists()


def test_an_engine_with_a_listed_channel_not_set_up_does_not_start(
    cli: CliRunner, workdir: Path, sim: NotifySim
) -> None:
    """Notifications asked for but impossible: the engine refuses to start (exit 2, naming the
    variables, nothing written) instead of running silent; health and notify test say why."""
    write_toml(workdir, '[notify]\nchannels = ["telegram", "webhook"]\n')
    only_telegram = sim.env("telegram")
    r = cli("run", "--headless", "--ticks", "2", env=only_telegram)
    assert r.code == 2, r.out + r.err
    assert (
        'notify.channels: "webhook" is listed but KOBE_WEBHOOK_URL and KOBE_WEBHOOK_SECRET are '
        "not set" in r.err
    )
    assert not (workdir / "data").exists()
    assert "FAIL  webhook: not configured" in cli("notify", "test", env=only_telegram).out
    assert cli("run", "--headless", "--ticks", "2", env=sim.env("telegram webhook")).code == 0


def test_urls_outside_loopback_are_refused_without_showing_secrets(
    cli: CliRunner, workdir: Path
) -> None:
    write_toml(workdir, '[notify]\nchannels = ["telegram", "webhook"]\n')
    r = cli(
        "health",
        env={
            "KOBE_TELEGRAM_API_URL": "https://api.example.com",
            "KOBE_WEBHOOK_URL": f"http://hooks.example.com/{CANARY}",
            "TELEGRAM_BOT_TOKEN": f"x{CANARY}",
            "TELEGRAM_CHAT_ID": f"chat{CANARY}",
        },
    )
    assert r.code == 2
    assert "KOBE_TELEGRAM_API_URL: must be http://127.0.0.1:PORT (loopback only" in r.err
    assert "KOBE_WEBHOOK_URL: must be https://... (http:// only to 127.0.0.1" in r.err
    assert "TELEGRAM_BOT_TOKEN: must look like" in r.err
    assert "TELEGRAM_CHAT_ID: must be a chat number" in r.err
    assert CANARY not in r.out + r.err
    # https anywhere and http to loopback are fine
    ok = cli("health", env={"KOBE_WEBHOOK_URL": "https://hooks.example.com/x"})
    assert ok.code != 2


@pytest.mark.parametrize("key", ["k1", "short-key", " " * 20])
def test_a_webhook_key_too_short_to_sign_or_to_redact_exits_2(
    cli: CliRunner, workdir: Path, key: str
) -> None:
    """A key of a few characters is guessed, and one under 4 is not even redacted from logs."""
    write_toml(workdir, '[notify]\nchannels = ["webhook"]\n')
    env = {"KOBE_WEBHOOK_URL": "https://hooks.example.com/x", "KOBE_WEBHOOK_SECRET": key}
    r = cli("health", env=env)
    assert r.code == 2 and "KOBE_WEBHOOK_SECRET: must be at least 16 characters" in r.err
    assert not (workdir / "data").exists()


def test_a_webhook_url_no_request_could_use_exits_2_without_showing_it(
    cli: CliRunner, workdir: Path
) -> None:
    write_toml(workdir, '[notify]\nchannels = ["webhook"]\n')
    env = {"KOBE_WEBHOOK_URL": f"https://hooks.example.com:99999/{CANARY}"}
    for command in (("health",), ("run", "--headless", "--ticks", "1")):
        r = cli(*command, env=env | {"KOBE_WEBHOOK_SECRET": HOOK_KEY})
        assert r.code == 2 and "KOBE_WEBHOOK_URL: " in r.err, r.err
        assert CANARY not in r.out + r.err
    assert not (workdir / "data").exists()


@pytest.mark.parametrize(
    ("url", "webhook_ok", "telegram_ok"),
    [
        ("https://hooks.example.com/x", True, False),
        ("http://hooks.example.com/x", False, False),
        ("http://127.0.0.1:8080/x", True, True),
        ("http://127.9.9.9:8080", True, True),
        ("http://[::1]:8080/x", True, True),
        ("http://localhost:8080", True, True),
        ("ftp://127.0.0.1/x", False, False),
        ("127.0.0.1:8080", False, False),
        # that no request could ever go to: refused at the start, not at every send
        ("https://hooks.example.com:99999/x", False, False),
        ("http://127.0.0.1:99999", False, False),
        ("https://hooks.example.com:abc/x", False, False),
        ("https://hooks example.com/x", False, False),
        ("https://hooks.example.com/a b", False, False),
        ("http://127.0.0.1:8080/a\tb", False, False),
        ("http://127.0.0.1:8080/café", False, False),  # HTTP sends ASCII: percent-encode it
        ("https://exämple.com/x", False, False),  # a name in its xn-- form
    ],
)
def test_which_urls_are_accepted(url: str, webhook_ok: bool, telegram_ok: bool) -> None:
    from engine.notify.channels import check_telegram_api_url, check_webhook_url

    for check, ok in ((check_webhook_url, webhook_ok), (check_telegram_api_url, telegram_ok)):
        if ok:
            check(url)
        else:
            with pytest.raises(ValueError):
                check(url)


# ---------------------------------------------------------------------------------------------
# delivery


def test_delivery_starts_with_the_mode_and_escapes_outside_text(
    workdir: Path, sim: NotifySim
) -> None:
    n = notifier(workdir, sim, '[notify]\nchannels = ["telegram"]\n')
    try:
        n.publish(note(detail="<script>alert(1)</script> & \x1b[31mred\x07\n<b>x"))
        (got,) = sim.wait_for(1)
    finally:
        n.close()
    text = got.body["text"]
    assert got.body["parse_mode"] == "HTML" and got.body["chat_id"] == CHAT
    assert text.startswith(
        "<b>PAPER</b> | binance | cex_binance | BTC/USDT | BUY | qty 1 | @ 95000"
    )
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; [31mred &lt;b&gt;x" in text
    assert "\x1b" not in text and "\x07" not in text and "<script>" not in text


@pytest.mark.parametrize(
    ("status", "times", "retry_after", "seen", "gap"),
    [
        (429, 1, 1, [429, 200], 1.0),  # Telegram's retry_after is waited, not less
        (500, 2, None, [500, 500, 200], 0.0),  # 5xx: retried with a backoff
    ],
)
def test_a_refused_send_is_retried_and_delivered_once(
    workdir: Path,
    sim: NotifySim,
    status: int,
    times: int,
    retry_after: float | None,
    seen: list[int],
    gap: float,
) -> None:
    sim.fail(times, status, retry_after=retry_after)
    n = notifier(workdir, sim, '[notify]\nchannels = ["telegram"]\n')
    try:
        n.publish(note())
        sim.wait_for(1)
    finally:
        n.close()
    assert [a.status for a in sim.attempts] == seen
    assert sim.attempts[1].at - sim.attempts[0].at >= gap
    assert len(sim.texts()) == 1


def test_a_burst_is_coalesced_into_few_messages(workdir: Path, sim: NotifySim) -> None:
    n = notifier(workdir, sim, '[notify]\nchannels = ["telegram"]\n')
    try:
        for i in range(12):
            n.publish(note(n=i))
        deadline = time.monotonic() + 10
        while (
            sum(t.count("Entry filled") for t in sim.texts()) < 12 and time.monotonic() < deadline
        ):
            time.sleep(0.05)
    finally:
        n.close()
    texts = sim.texts()
    assert sum(t.count("Entry filled") for t in texts) == 12
    assert len(texts) <= 2  # not twelve messages at one a second
    assert all(t.startswith("<b>PAPER</b>") for t in texts)


def test_rate_limit_one_message_a_second_per_chat() -> None:
    from engine.notify.sender import RateLimiter

    now = [100.0]
    limiter = RateLimiter(1.0, overall_per_s=30, clock=lambda: now[0])
    assert limiter.reserve("chat") == 0
    assert limiter.reserve("chat") == pytest.approx(1.0)
    assert limiter.reserve("chat") == pytest.approx(2.0)
    burst = RateLimiter(0.0, overall_per_s=30, clock=lambda: now[0])
    waits = [burst.reserve(f"c{i}") for i in range(31)]
    assert waits[:30] == [0] * 30 and waits[30] == pytest.approx(1.0)


def test_an_outage_longer_than_the_queue_drops_and_says_so_in_one_note(
    workdir: Path, sim: NotifySim
) -> None:
    sim.down()
    n = notifier(workdir, sim, '[notify]\nchannels = ["telegram"]\nqueue_size = 5\n')
    try:
        for i in range(40):
            n.publish(note(n=i))
        deadline = time.monotonic() + 5
        while len(sim.attempts) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        sim.up()
        deadline = time.monotonic() + 10
        while not any("dropped" in t for t in sim.texts()) and time.monotonic() < deadline:
            time.sleep(0.05)  # the notice comes once the backlog is out
    finally:
        n.close()
    texts = sim.texts()
    notices = [t for t in texts if "notifications dropped" in t]
    assert len(notices) == 1
    dropped = int(re.search(r"(\d+) notifications dropped", notices[0]).group(1))  # type: ignore[union-attr]
    assert f"{dropped} entry_filled" in notices[0] and "queue (5) was full" in notices[0]
    delivered = sum(t.count("Entry filled") for t in texts)
    assert dropped > 0 and delivered + dropped == 40


def test_the_engine_never_waits_on_a_channel_that_hangs(workdir: Path) -> None:
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(1)  # accepts connections, never answers
    try:
        env = {
            "KOBE_TELEGRAM_API_URL": f"http://127.0.0.1:{hang.getsockname()[1]}",
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_CHAT_ID": CHAT,
        }
        write_toml(workdir, '[notify]\nchannels = ["telegram"]\nqueue_size = 10\n')
        n = Notifier.for_settings(resolve_settings(env, workdir), policy=FAST)
        n.start()
        start = time.perf_counter()
        for i in range(500):
            n.publish(note(n=i))
        n.publish(note("engine_error", "boom", severity="error"))
        elapsed = time.perf_counter() - start
        worker = n.workers[0]  # the queue stays bounded: what does not fit is counted, dropped
        assert worker.queue.qsize() <= 10 and sum(worker._dropped.values()) > 0
        start = time.perf_counter()
        n.close()
        closing = time.perf_counter() - start
    finally:
        hang.close()
    # far below the channel's 10 s HTTP timeout, which waiting on it once would take (the
    # margins are for a loaded machine: this is no speed test)
    assert elapsed < 5  # 501 notes, one outbox append among them
    assert 1.4 < closing < 5  # queued notes get 1.5 s at a stop (and a last 0.2 s), not more
    assert "boom" in (workdir / "data" / OUTBOX_FILE).read_text()  # kept for the next start


# ---------------------------------------------------------------------------------------------
# the outbox


OUTBOX_TOML = '[notify]\nchannels = ["telegram"]\n'


def test_outbox_notes_survive_a_restart_and_are_sent_once(workdir: Path, sim: NotifySim) -> None:
    sim.down()
    first = notifier(workdir, sim, OUTBOX_TOML)
    first.close_timeout_s = 0.3
    first.publish(note("engine_error", "venue down", severity="error"))
    first.publish(note(detail="a fill"))  # README: ordinary notes wait in memory only
    deadline = time.monotonic() + 5
    while not sim.attempts and time.monotonic() < deadline:
        time.sleep(0.02)
    first.close()
    assert sim.texts() == []
    assert (workdir / "data" / OUTBOX_FILE).read_text().count('"op": "add"') == 1
    sim.up()
    second = notifier(workdir, sim, OUTBOX_TOML)
    sim.wait_for(1)
    second.publish(note("engine_error", "venue down", severity="error"))  # the same note again
    second.close()
    third = notifier(workdir, sim, OUTBOX_TOML)
    time.sleep(0.3)
    third.close()
    texts = sim.texts()
    assert len(texts) == 1 and "venue down" in texts[0] and "a fill" not in texts[0]


def test_the_outbox_is_bounded_but_a_trip_is_always_kept_and_goes_first(
    workdir: Path, sim: NotifySim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A different error every tick during a long outage (the same one repeated is held before
    the outbox: tests/test_notify_repeats.py): the outbox stops growing at its cap (what it
    refuses is counted and said), yet a kill-switch trip is always taken, and sent first."""
    from engine.notify import outbox

    monkeypatch.setattr(outbox, "MAX_PENDING", 30)
    sim.down()
    n = notifier(workdir, sim, OUTBOX_TOML)
    try:
        for i in range(100):  # an error every tick, each its own (an order id tells them apart)
            n.publish(note("engine_error", f"venue down, order o{i}", severity="error"))
        trip = Note.make(
            "kill_switch", "critical", T0, "paper", "Kill switch TRIPPED", "drawdown 21%",
            note_id="kill_switch:TRIPPED:2026-01-01T00:00:00Z", venue="binance",
        )  # fmt: skip
        n.publish(trip)
        assert n.outbox is not None and len(n.outbox.pending("telegram")) == 31
        reset, again = (
            replace(trip, id=f"kill_switch:{state}:2026-01-01T00:0{i}:00Z", title=f"Kill {state}")
            for i, state in ((1, "ARMED"), (2, "TRIPPED"))
        )
        n.publish(reset)  # the cap refuses it: an ARMED (or a WARNING) may flap every tick
        n.publish(again)
        assert [x.id for x in n.outbox.pending("telegram")][:2] == [trip.id, again.id]
        assert (workdir / "data" / OUTBOX_FILE).read_text().count('"op": "add"') == 32
        sim.up()
        deadline = time.monotonic() + 15
        while not any("dropped" in t for t in sim.texts()) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        n.close()
    texts = sim.texts()
    at = [i for i, t in enumerate(texts) if "Kill switch TRIPPED" in t]
    last_error = [i for i, t in enumerate(texts) if "venue down, order o29" in t]
    # the message in flight when it came aside, the trip goes first, before the older errors
    assert at[0] <= 1 and at[0] < last_error[0], texts
    assert sum(t.count("venue down, order o") for t in texts) == 30
    (notice,) = [t for t in texts if "notifications dropped" in t]
    assert "71 notifications dropped" in notice and "70 engine_error, 1 kill_switch" in notice


def test_a_torn_outbox_line_is_skipped(workdir: Path, sim: NotifySim) -> None:
    path = workdir / "data" / OUTBOX_FILE
    path.parent.mkdir(parents=True)
    good = json.dumps(
        {"op": "add", "note": note("engine_error", "kept", severity="error").to_json()}
    )
    path.write_text(good + "\n" + '{"op": "add", "note": {"id": "x", "ki')
    n = notifier(workdir, sim, OUTBOX_TOML)
    try:
        sim.wait_for(1)
    finally:
        n.close()
    assert "kept" in sim.texts()[0]


def test_the_outbox_stays_small_and_remembers_what_it_delivered(workdir: Path) -> None:
    from engine.notify.outbox import KEEP_DONE, Outbox

    box = Outbox(workdir, ["telegram", "webhook"])
    notes = [note("engine_error", f"error {i}", severity="error") for i in range(700)]
    for item in notes:
        assert box.add(item)
        box.confirm([item.id], "telegram")
        assert box.pending("telegram") == [] and box.pending("webhook") == [item]
        box.confirm([item.id], "webhook")
    assert not box.add(notes[-1])  # delivered: never taken again
    box.close()
    lines = (workdir / OUTBOX_FILE).read_text().splitlines()
    assert len(lines) < KEEP_DONE + 1000  # compacted while running, not 2100 lines
    again = Outbox(workdir, ["telegram", "webhook"])
    assert again.pending("telegram") == [] and again.known(notes[-1].id)
    assert len((workdir / OUTBOX_FILE).read_text().splitlines()) == KEEP_DONE
    again.close()


def test_a_full_disk_sends_outbox_notes_directly(workdir: Path, sim: NotifySim) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    path = workdir / "data" / OUTBOX_FILE
    path.parent.mkdir(parents=True)
    path.symlink_to("/dev/full")  # every write fails with ENOSPC
    n = notifier(workdir, sim, OUTBOX_TOML)
    try:
        n.publish(note("kill_switch", "drawdown", severity="critical"))
        sim.wait_for(1)
    finally:
        n.close()
    assert "drawdown" in sim.texts()[0]


# ---------------------------------------------------------------------------------------------
# the engine: kobe run


def test_a_kill_switch_trip_in_kobe_run_sends_one_message_starting_with_the_mode(
    cli: CliRunner, workdir: Path, sim: NotifySim, caplog: pytest.LogCaptureFixture
) -> None:
    write_toml(workdir, TRIP_TOML)
    sim.fail(1, 429, retry_after=1)
    caplog.set_level(logging.DEBUG)
    r = cli("run", "--headless", "--ticks", "5", env=sim.env())
    assert r.code == 0, r.err
    assert "risk   TRIPPED" in r.out
    texts = sim.texts()
    assert len(texts) == 1
    assert strip_tags(texts[0]).startswith(
        "PAPER | binance\nCRITICAL Kill switch TRIPPED: equity 150"
    )
    first, second = sim.attempts
    assert first.status == 429 and second.at - first.at >= 1.0  # the 429 delayed it
    # a second run: the switch is still tripped, nothing new to say
    assert cli("run", "--headless", "--ticks", "2", env=sim.env()).code == 0
    assert len(sim.texts()) == 1
    no_canary_in(r.out, r.err, caplog.text, files_text(workdir / "data"))


def test_a_restart_during_an_outage_still_delivers_the_trip_once(
    cli: CliRunner, workdir: Path, sim: NotifySim
) -> None:
    write_toml(workdir, TRIP_TOML)
    sim.down()
    assert cli("run", "--headless", "--ticks", "3", env=sim.env()).code == 0
    assert sim.texts() == [] and sim.attempts
    assert cli("run", "--headless", "--ticks", "2", env=sim.env()).code == 0  # still down
    assert sim.texts() == []
    sim.up()
    assert cli("run", "--headless", "--ticks", "2", env=sim.env()).code == 0
    assert cli("run", "--headless", "--ticks", "2", env=sim.env()).code == 0
    texts = sim.texts()
    assert len(texts) == 1 and "Kill switch TRIPPED" in texts[0]


def test_a_crash_during_an_outage_still_delivers_the_trip_once(
    cli: CliRunner, workdir: Path, sim: NotifySim
) -> None:
    write_toml(workdir, TRIP_TOML)
    sim.down()
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **sim.env()}
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from engine.cli import entrypoint; entrypoint()",
         "run", "--headless", "--duration", "60", "--tick", "0.05"],
        cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    outbox = workdir / "data" / OUTBOX_FILE
    try:
        deadline = time.monotonic() + 30
        while not (outbox.exists() and sim.attempts):  # the trip is on disk, Telegram is down
            assert time.monotonic() < deadline and proc.poll() is None, "no trip"
            time.sleep(0.05)
    finally:
        proc.kill()  # a crash: no clean stop
        _, err = proc.communicate(timeout=30)
    assert sim.texts() == []
    no_canary_in(err)
    sim.up()
    assert cli("run", "--headless", "--ticks", "2", env=sim.env()).code == 0
    assert cli("run", "--headless", "--ticks", "2", env=sim.env()).code == 0
    texts = sim.texts()
    assert len(texts) == 1 and strip_tags(texts[0]).startswith("PAPER | binance\nCRITICAL Kill")


def test_a_trip_made_while_no_engine_ran_is_sent_at_the_next_start(
    cli: CliRunner, workdir: Path, sim: NotifySim
) -> None:
    write_toml(workdir, '[notify]\nchannels = ["telegram"]\nevents = ["kill_switch"]\n')
    assert cli("risk", "trip", "--reason", "going to bed <3", env=sim.env()).code == 0
    assert sim.texts() == []  # the CLI sends nothing itself
    assert cli("run", "--headless", "--ticks", "2", env=sim.env()).code == 0
    (text,) = sim.texts()
    assert "Kill switch TRIPPED</b>: manual: going to bed &lt;3" in text


def test_fills_and_exits_of_a_paper_run_reach_both_channels(
    cli: CliRunner, workdir: Path, sim: NotifySim
) -> None:
    write_toml(
        workdir,
        '[notify]\nchannels = ["telegram", "webhook"]\nevents = ["entry_filled", "exit_filled", "stop_loss"]\n',
    )
    r = cli("run", "--headless", "--ticks", "300", env=sim.env("telegram webhook"))
    assert r.code == 0, r.err
    time.sleep(0.1)
    text = "\n\n".join(sim.texts())
    fills = re.findall(r" order  fill +\S+ +(\S+) ", r.out)
    entries = [cid for cid in fills if not re.search(r"\d(tp|sl|cx)$", cid)]
    trades = r.out.count(" trade  closed ")
    assert entries and trades
    assert text.count("Entry filled") == len(entries)
    assert text.count("Position closed") + text.count("Stop-loss hit") == trades
    assert text.count("PnL ") == trades
    for block in text.split("\n\n"):
        assert block.startswith("<b>PAPER</b> | ")
    hooks = sim.delivered("hook")
    assert hooks
    # README: "The webhook receives `{"source": "kobe", "notes": [{id, kind, ...}]}`"
    readme = " ".join((ROOT / "README.md").read_text().split())
    shape = re.search(
        r'The webhook receives `\{"source": "kobe", "notes": \[\{([^}]*)\}\]\}`', readme
    )
    assert shape is not None
    fields = [f.strip() for f in shape.group(1).split(",")]
    for hook in hooks:
        expected = hmac.new(HOOK_KEY.encode(), hook.raw, hashlib.sha256).hexdigest()
        assert hook.headers["X-Kobe-Signature"] == f"sha256={expected}"
        assert list(hook.body) == ["source", "notes"] and hook.body["source"] == "kobe"
        assert all(list(item) == fields for item in hook.body["notes"])
        for item in hook.body["notes"]:
            assert item["mode"] == "PAPER" and item["text"].startswith("PAPER | ")


# ---------------------------------------------------------------------------------------------
# kobe notify test, kobe health


def test_notify_test_reports_each_channel(cli: CliRunner, workdir: Path, sim: NotifySim) -> None:
    write_toml(workdir, '[notify]\nchannels = ["telegram", "webhook"]\n')
    r = cli("notify", "test", env=sim.env("telegram webhook"))
    assert r.code == 0, r.out + r.err
    assert "ok    telegram: delivered" in r.out and "ok    webhook: delivered" in r.out
    assert strip_tags(sim.texts()[0]).startswith("PAPER | binance\nTest notification")
    sim.fail(5, 401, path="hook")
    r = cli("notify", "test", "--json", env=sim.env("telegram webhook"))
    assert r.code == 1
    report = json.loads(r.out)
    assert [c["ok"] for c in report["channels"]] == [True, False]
    assert report["channels"][1]["detail"] == "HTTP 401"
    r = cli("notify", "test", env=sim.env("telegram"))
    assert r.code == 1  # the README's example, line for line
    readme = (ROOT / "README.md").read_text()
    assert (
        r.out.splitlines()
        == readme.split("```\n$ kobe notify test\n")[1].split("```")[0].splitlines()
    )
    no_canary_in(r.out, r.err)


class Hanging:
    """A local endpoint that accepts connections and never answers; it notes when each came."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted: list[float] = []
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed
            self.accepted.append(time.monotonic())
            self.held.append(conn)

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


def test_notify_test_tries_the_channels_at_once_not_one_after_the_other(
    cli: CliRunner, workdir: Path
) -> None:
    """Two endpoints that hang: the command takes about one channel's time (its attempts, each
    cut at the timeout), not the sum."""
    tg, hook = Hanging(), Hanging()
    try:
        write_toml(
            workdir, '[exchange]\ntimeout_ms = 300\n[notify]\nchannels = ["telegram", "webhook"]\n'
        )
        env = {
            "KOBE_TELEGRAM_API_URL": f"http://127.0.0.1:{tg.port}",
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_CHAT_ID": CHAT,
            "KOBE_WEBHOOK_URL": f"http://127.0.0.1:{hook.port}/hook",
            "KOBE_WEBHOOK_SECRET": HOOK_KEY,
        }
        start = time.monotonic()
        r = cli("notify", "test", env=env)
        elapsed = time.monotonic() - start
    finally:
        tg.close()
        hook.close()
    assert r.code == 1
    lines = r.out.splitlines()  # each result, in the order of [notify] channels
    assert lines == [
        "  FAIL  telegram: no answer within 0.3s",
        "  FAIL  webhook: no answer within 0.3s",
    ]
    assert len(tg.accepted) == len(hook.accepted) == 3  # every attempt made, on each
    # both started together (one after the other: the webhook waits for telegram's 3 timeouts
    # and 2 backoffs, over 3 s)
    assert abs(tg.accepted[0] - hook.accepted[0]) < 1.0
    # the whole command: about one channel's time, well under the two channels' times added
    one = [c.accepted[-1] - c.accepted[0] + 0.3 for c in (tg, hook)]
    assert elapsed < 0.75 * sum(one), (elapsed, one)
    no_canary_in(r.out, r.err)


def test_notify_test_without_a_channel_says_how_to_add_one(cli: CliRunner) -> None:
    r = cli("notify", "test")
    assert r.code == 1 and "[notify] channels" in r.out


def test_health_shows_each_channel_and_its_last_delivery(
    cli: CliRunner, workdir: Path, sim: NotifySim, caplog: pytest.LogCaptureFixture
) -> None:
    write_toml(workdir, '[notify]\nchannels = ["telegram", "webhook"]\n')
    r = cli("health", env=sim.env("telegram"))
    assert r.code == 1
    assert "ok    notify telegram: bot token and chat set; http://127.0.0.1" in r.out
    assert "no delivery by the engine yet" in r.out
    assert r.out.index("notify telegram") < r.out.index("notify webhook")  # as listed
    assert "FAIL  notify webhook: not configured: KOBE_WEBHOOK_URL and" in r.out
    sim.down()
    n = notifier(workdir, sim, '[notify]\nchannels = ["telegram"]\n')
    n.publish(note())
    deadline = time.monotonic() + 5
    while n.statuses["telegram"].ok is not False and time.monotonic() < deadline:
        time.sleep(0.02)
    n.close()
    r = cli("health", "--json", env=sim.env("telegram"))
    check = next(c for c in json.loads(r.out)["checks"] if c["name"] == "notify telegram")
    assert check["ok"] is False
    assert "last delivery FAILED at" in check["detail"] and "telegram: HTTP 502" in check["detail"]
    # README, "Data files": notify/status.json missing or damaged: "no delivery by the engine yet"
    for damaged in ("{", "[]"):
        (workdir / "data" / "notify" / "status.json").write_text(damaged)
        r = cli("health", "--json", env=sim.env("telegram"))
        check = next(c for c in json.loads(r.out)["checks"] if c["name"] == "notify telegram")
        assert check["detail"].endswith("; no delivery by the engine yet"), check
    no_canary_in(r.out, r.err, caplog.text)


def test_a_wrong_token_never_shows_the_token(
    workdir: Path, sim: NotifySim, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = Secret(f"999:{CANARY}-{'x' * 10}")
    channel = TelegramChannel(wrong, Secret(CHAT), sim.base, timeout_s=2)
    from engine.exchange.base import ExchangeError
    from engine.notify.sender import deliver

    with pytest.raises(ExchangeError) as info:
        deliver(channel, [note()], FAST)
    assert str(info.value) == "telegram: HTTP 401: error 401"
    no_canary_in(str(info.value), repr(channel), caplog.text)


def test_a_key_inside_an_engine_error_is_never_sent_nor_journaled(
    workdir: Path, sim: NotifySim
) -> None:
    """An error message from outside (an exchange or library error quoting a URL or a key) is
    redacted before it becomes a note: it goes to a chat, a webhook and the outbox on disk."""
    write_toml(workdir, '[notify]\nchannels = ["telegram", "webhook"]\n')
    exchange_secret = f"exsecret-{CANARY}"
    env = sim.env("telegram webhook") | {"BINANCE_SECRET": exchange_secret}
    n = Notifier.for_settings(resolve_settings(env, workdir), policy=FAST)
    sim.down("tg")
    sim.down("hook")
    n.start()
    try:
        message = f"POST {sim.hook_url} failed: bad signature for {exchange_secret}"
        n.on_event(_event("alert", AlertEvent("error", "reconcile", message)))
        time.sleep(0.3)
        on_disk = (workdir / "data" / OUTBOX_FILE).read_text()
        sim.up("tg")
        sim.up("hook")
        (got,) = sim.wait_for(1)
        (hook,) = sim.wait_for(1, "hook")
    finally:
        n.close()
    assert "failed: bad signature for ***" in got.body["text"]
    no_canary_in(got.body["text"], hook.raw.decode(), on_disk, files_text(workdir / "data"))


# ---------------------------------------------------------------------------------------------
# which engine events become which notes (the real payload types of the runtime's events)


def _mapper(workdir: Path, toml: str = "") -> Notifier:
    write_toml(workdir, toml)
    return Notifier.for_settings(resolve_settings({}, workdir))  # no channel: notes_for only


def _event(kind: str, payload: object, when: datetime = T0) -> EngineEvent:
    return EngineEvent(kind, payload, when)


def test_alerts_and_engine_states_become_protection_and_error_notes(workdir: Path) -> None:
    m = _mapper(workdir)
    lost = m.notes_for(_event("alert", AlertEvent("critical", "execution", "close c1 failed")))
    assert [(n.kind, n.severity, n.detail) for n in lost] == [
        ("protection_lost", "critical", "close c1 failed")
    ]
    coded = m.notes_for(_event("alert", AlertEvent("warning", "protection_lost", "BTC naked")))
    assert coded[0].kind == "protection_lost"
    err = m.notes_for(
        _event("alert", AlertEvent("error", "reconcile", "binance: reconcile failed"))
    )
    assert (err[0].kind, err[0].title) == ("engine_error", "Engine error (reconcile)")
    assert m.notes_for(_event("alert", AlertEvent("warning", "venue", "slow"))) == []
    # said once, by the risk and state events
    assert m.notes_for(_event("alert", AlertEvent("critical", "kill_switch", "TRIPPED"))) == []
    assert m.notes_for(_event("alert", AlertEvent("error", "engine", "engine error: x"))) == []
    status = RuntimeStatus(EngineState.ERROR, Mode.PAPER, "binance", 3, T0, "boom")
    (crash,) = m.notes_for(_event("state", status))
    assert (crash.kind, crash.detail) == ("engine_error", "boom")
    stopped = replace(status, state=EngineState.STOPPED, error="")
    assert m.notes_for(_event("state", stopped))[0].kind == "engine_stopped"
    running = replace(status, state=EngineState.RUNNING, error="")
    assert m.notes_for(_event("state", running)) == []


def test_kill_switch_changes_are_said_once_each(workdir: Path) -> None:
    m = _mapper(workdir)
    armed = RiskSnapshot(KillState.ARMED, "", T0)
    assert m.notes_for(_event("risk", armed)) == []  # a start, armed: nothing happened
    tripped = RiskSnapshot(KillState.TRIPPED, "drawdown 21%", T0 + timedelta(minutes=5))
    (trip,) = m.notes_for(_event("risk", tripped))
    assert (trip.kind, trip.severity, trip.id) == (
        "kill_switch",
        "critical",
        "kill_switch:TRIPPED:2026-01-01T00:05:00Z",
    )
    assert m.notes_for(_event("risk", tripped)) == []  # every tick repeats it: said once
    reset = RiskSnapshot(KillState.ARMED, "", T0 + timedelta(minutes=9))
    (back,) = m.notes_for(_event("risk", reset))
    assert (back.title, back.severity) == ("Kill switch ARMED", "info")


def test_a_dust_sweeps_fill_is_no_entry_filled(workdir: Path) -> None:
    """A dust sweep (``<id>ds``) sells: its fill was sent as 'Entry filled ... SELL', which reads
    as a short Kobe opened; it is told once booked, as a closed trade (reason 'dust sweep')."""
    m = _mapper(workdir)
    entry = ev("fill", "kobe1n1", filled="0.001", avg="95000", status="filled")
    (filled,) = m.notes_for(_event("order", entry))
    assert filled.kind == "entry_filled"
    sweep = replace(entry, client_id="kobe1n2ds", side="sell", reason="dust sweep")
    assert m.notes_for(_event("order", sweep)) == []


def test_finance_alerts_once_daily_summary_and_heartbeat_on_the_engine_clock(
    workdir: Path,
) -> None:
    m = _mapper(workdir, '[notify]\ndaily_summary_utc = "00:03"\nheartbeat_hours = 1\n')
    cfg = resolve_settings({}, workdir).config
    snap = load_view(cfg, workdir / "data")
    low = replace(snap, alerts=(Alert("warning", "fees_low", "fees buffer 1 USD < 3"),))

    def kinds(s: object, minute: int) -> list[str]:
        return [n.kind for n in m.notes_for(_event("wallets", s, T0 + timedelta(minutes=minute)))]

    assert kinds(snap, 1) == []
    assert kinds(low, 2) == ["finance_alert"]
    assert kinds(low, 3) == ["daily_summary"]  # 00:02 < 00:03 <= 00:03; the alert is not new
    assert kinds(snap, 4) == []
    assert kinds(low, 5) == ["finance_alert"]  # it came back
    assert kinds(low, 60) == []
    assert kinds(low, 61) == ["heartbeat"]  # an hour after the first tick
    assert kinds(low, 62) == []
    next_day = m.notes_for(_event("wallets", low, T0 + timedelta(days=1, minutes=3)))
    assert [x.kind for x in next_day] == ["daily_summary", "heartbeat"]
    summary = next_day[0]
    assert summary.title == "Daily summary 2026-01-02"
    assert summary.detail == "equity 150.00 USD; kill switch unknown"
    assert summary.fields["pnl"] == "+0.0000"


def test_events_and_min_severity_choose_what_goes_out(workdir: Path, sim: NotifySim) -> None:
    n = notifier(
        workdir,
        sim,
        '[notify]\nchannels = ["telegram"]\nevents = ["entry_filled", "engine_error", '
        '"daily_summary"]\nmin_severity = "error"\n',
    )
    try:
        n.publish(note())  # info: below error
        n.publish(note("exit_filled", severity="error"))  # not in events
        n.publish(note("daily_summary"))  # scheduled: whatever the severity
        n.publish(note("engine_error", "kept", severity="error"))
        deadline = time.monotonic() + 5
        while sum(t.count("<b>PAPER</b>") for t in sim.texts()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
    finally:
        n.close()
    text = "\n\n".join(sim.texts())
    assert text.count("<b>PAPER</b>") == 2 and "kept" in text


# ---------------------------------------------------------------------------------------------
# the cockpit


async def test_the_cockpit_health_pane_shows_the_last_delivery_error(
    workdir: Path, sim: NotifySim
) -> None:
    from kobe_tui.widgets.health import HealthPane
    from tests.cockpit_support import make_app, settle, ticks

    write_toml(workdir, TRIP_TOML)
    sim.down()
    app, clock = make_app(workdir, sim.env())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert app.runtime is not None
        await ticks(app, pilot, clock, 1)  # the kill switch trips: a note for the outbox
        deadline = time.monotonic() + 10
        while app.runtime.notifier.statuses["telegram"].ok is not False:
            assert time.monotonic() < deadline, "no delivery failure reported"
            await pilot.pause(0.05)
        await settle(app, pilot)
        pane = app.query_one(HealthPane)
        state, _, detail = (str(cell) for cell in pane.get_row("notify telegram"))
        assert state == "FAIL"
        assert "delivery failed: telegram: HTTP 502" in detail
        assert pane.has_class("failing")
        assert CANARY not in app.export_screenshot()
        app.runtime.notifier.close_timeout_s = 0.2
