"""Repeats collapsed (engine/notify/repeats.py): an error every tick, or a kill switch flipping
WARNING <-> ARMED every tick, is one message at once and then one a window with its count, never
a message a tick; a trip, lost protection and an engine stop are never delayed; nothing is lost.

The engine's clock is the events' times (no sleep decides anything); delivery goes to the local
Bot API stand-in on 127.0.0.1.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from engine.modes import resolve_settings
from engine.notify import Note, Notifier
from engine.notify.outbox import OUTBOX_FILE
from engine.notify.repeats import MAX_EPISODES, Repeats, repeat_key
from engine.risk import KillState, RiskSnapshot
from engine.runtime import AlertEvent, EngineEvent
from tests.notify_sim import NotifySim, notify_sim
from tests.test_notify import FAST, T0, note, write_toml

TICK = timedelta(seconds=5)
TOML = '[notify]\nchannels = ["telegram"]\n'
REPEATED = re.compile(r"\((?:repeated|flipped) (\d+) times? since (\d\d:\d\d) UTC")


@pytest.fixture
def sim() -> Iterator[NotifySim]:
    with notify_sim() as s:
        yield s


def start(workdir: Path, sim: NotifySim) -> Notifier:
    write_toml(workdir, TOML)
    n = Notifier.for_settings(resolve_settings(sim.env(), workdir), policy=FAST)
    n.start()
    return n


def alert(n: Notifier, i: int, message: str, severity: str = "error") -> None:
    n.on_event(EngineEvent("alert", AlertEvent(severity, "reconcile", message), T0 + i * TICK))


def counts(titles: list[str]) -> list[int]:
    return [int(m.group(1)) for t in titles for m in REPEATED.finditer(t)]


def test_an_engine_error_every_tick_for_an_hour_is_one_message_then_one_a_window(
    workdir: Path, sim: NotifySim
) -> None:
    """720 ticks of the same venue outage (its latency changes every tick): the first goes out
    at once, then one note every 10 minutes says how many came, with the latest text."""
    n = start(workdir, sim)
    try:
        alert(n, 0, "binance: reconcile failed: HTTP 503 after 1000 ms")
        (first,) = sim.wait_for(1)  # at once, before any other tick
        for i in range(1, 720):
            alert(n, i, f"binance: reconcile failed: HTTP 50{i % 3} after {1000 + i} ms")
    finally:
        n.close()  # what is held is said at the stop
    sim.wait_for(2)
    texts = sim.texts()
    said = "\n\n".join(texts).split("\n\n")
    errors = [s for s in said if "Engine error (reconcile)" in s]
    assert "HTTP 503 after 1000 ms" in first.body["text"]
    assert len(errors) == 7  # was 720 (500 to the outbox, the rest dropped)
    assert counts(errors) == [119, 120, 120, 120, 120, 120]
    assert 1 + sum(counts(errors)) == 720  # nothing lost: every repeat counted
    assert [m.group(2) for m in REPEATED.finditer("".join(errors))] == [
        "00:00", "00:10", "00:20", "00:30", "00:40", "00:50",
    ]  # fmt: skip
    assert errors[-1].endswith("binance: reconcile failed: HTTP 502 after 1719 ms")  # the latest
    assert len(texts) <= 7


def test_a_kill_switch_flipping_every_tick_is_summarised_and_a_trip_goes_out_at_once(
    workdir: Path, sim: NotifySim
) -> None:
    """WARNING <-> ARMED every tick around a threshold (the risk engine has no hysteresis): each
    state's first goes out at once, the flips are summarised, the title saying the state now; a
    trip is never held, and the flips it ends are said just before it."""
    sim.down()  # what goes out stays in the outbox, in its order
    n = start(workdir, sim)
    try:

        def risk(i: int, state: KillState) -> None:
            when = T0 + i * TICK
            snap = RiskSnapshot(state, f"drawdown {8 + i / 1000}% (warn 8%)", when)
            n.on_event(EngineEvent("risk", snap, when))

        def titles() -> list[str]:
            assert n.outbox is not None
            return [x.title for x in n.outbox.pending("telegram")]

        risk(0, KillState.ARMED)  # a start, armed: nothing
        risk(1, KillState.WARNING)
        risk(2, KillState.ARMED)
        assert titles() == ["Kill switch WARNING", "Kill switch ARMED"]  # at once, each
        for i in range(3, 181):
            risk(i, KillState.WARNING if i % 2 else KillState.ARMED)
        risk(181, KillState.TRIPPED)
        assert titles() == [
            "Kill switch WARNING",
            "Kill switch ARMED",
            "Kill switch ARMED (flipped 118 times since 00:00 UTC: ARMED 59, WARNING 59)",
            "Kill switch ARMED (flipped 60 times since 00:10 UTC: ARMED 30, WARNING 30)",
            "Kill switch TRIPPED",  # at once, the last word
        ]
        risk(182, KillState.ARMED)  # reset
        risk(183, KillState.TRIPPED)  # and tripped again, within the window: at once too
        assert titles()[-2:] == ["Kill switch ARMED", "Kill switch TRIPPED"]
    finally:
        n.close_timeout_s = 0.2
        n.close()


def _lost(cid: str, qty: str) -> str:
    return (
        f"position BTC/USDT {qty} (cex_binance, entry {cid}) is UNPROTECTED: no live exit on "
        "the exchange and no watchdog item (exits: none); set new exits (kobe exits) or close it"
    )


def test_lost_protection_of_another_position_goes_out_at_once(workdir: Path) -> None:
    """A critical note is held only when repeated exactly: its figures name the position."""
    write_toml(workdir, "")
    m = Notifier.for_settings(resolve_settings({}, workdir))  # notes_for: the real mapping
    r = Repeats()

    def admit(i: int, message: str, severity: str = "critical") -> list[Note]:
        event = EngineEvent("alert", AlertEvent(severity, "execution", message), T0 + i * TICK)
        (lost,) = m.notes_for(event)
        return r.admit(lost)

    assert len(admit(0, _lost("kb1a7", "0.5"))) == 1
    assert len(admit(1, _lost("kb2a7", "0.5"))) == 1  # another entry: another position
    assert len(admit(2, _lost("kb1a7", "0.7"))) == 1  # another quantity
    assert admit(3, _lost("kb1a7", "0.5")) == []  # the same, again: held
    # engine errors: a number alone is a figure (merged); digits in an id tell errors apart
    assert len(admit(4, "bookkeeping failed for kobe-e-1: HTTP 503", "error")) == 1
    assert len(admit(5, "bookkeeping failed for kobe-e-2: HTTP 503", "error")) == 1
    assert admit(6, "bookkeeping failed for kobe-e-2: HTTP 502", "error") == []
    (held, *more) = r.flush()
    assert held.severity == "critical" and held.kind == "protection_lost"
    assert held.title == "Protection lost (repeated 1 time since 00:00 UTC)"
    assert held.detail == _lost("kb1a7", "0.5")
    assert [x.detail for x in more] == ["bookkeeping failed for kobe-e-2: HTTP 502"]


def test_fills_and_an_engine_stop_are_never_held_and_a_stop_says_what_was() -> None:
    r = Repeats()
    fill = note()
    assert r.admit(fill) == [fill] and r.admit(fill) == [fill]  # each fill its own trade
    error = note("engine_error", "venue down", severity="error")
    assert r.admit(error) == [error] and r.admit(error) == []
    stopped = Note.make("engine_stopped", "info", T0, "paper", "Engine stopped")
    summary, last = r.admit(stopped)
    assert last is stopped and "(repeated 1 time since 00:00 UTC)" in summary.title
    assert len(r) == 0


def test_memory_is_bounded_and_what_is_pushed_out_is_said_not_lost() -> None:
    r = Repeats()
    out: list[Note] = []
    for i in range(3 * MAX_EPISODES):
        e = note("engine_error", f"order o{i} refused", severity="error")
        out += r.admit(e) + r.admit(e)  # each its own error, then a repeat
        assert len(r) <= MAX_EPISODES
    out += r.flush()
    firsts = [x for x in out if "repeated" not in x.title]
    assert len(firsts) == 3 * MAX_EPISODES and sum(counts([x.title for x in out])) == len(firsts)


def test_held_repeats_at_a_stop_go_through_the_outbox_and_survive_a_restart(
    workdir: Path, sim: NotifySim
) -> None:
    """At-least-once is unchanged: the first went to the outbox at once; what was held is written
    there at the stop, and the next start delivers it, once."""
    sim.down()
    n = start(workdir, sim)
    n.close_timeout_s = 0.2
    for i in range(4):
        alert(n, i, "binance: reconcile failed: HTTP 503")
    n.close()
    on_disk = (workdir / "data" / OUTBOX_FILE).read_text()
    assert on_disk.count('"op": "add"') == 2 and "(repeated 3 times since 00:00 UTC)" in on_disk
    sim.up()
    again = start(workdir, sim)
    try:
        sim.wait_for(1)
        deadline = time.monotonic() + 5
        while "repeated" not in "".join(sim.texts()) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        again.close()
    text = "".join(sim.texts())
    assert text.count("Engine error (reconcile)") == 2 and text.count("repeated 3 times") == 1


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("HTTP 503 after 1000 ms", "HTTP 502 after 1200 ms", True),
        ("no answer within 1.5s (took 1200ms)", "no answer within 2s (took 980ms)", True),
        ("stale since 2026-11-30T23:05:00Z", "stale since 2026-11-30T23:05:05.250Z", True),
        ("at 12:00:05, 1,234.5 USD short", "at 12:00:10, 1,300 USD short", True),
        ("drawdown -5.2%", "drawdown -6%", True),
        ("order kobe-e-12 refused", "order kobe-e-13 refused", False),
        ("1000PEPE/USDT: no market", "10000PEPE/USDT: no market", False),
        ("api v3 down", "api v4 down", False),
        ("order o17 refused", "order o18 refused", False),
        # an id is the number its words name one: right after order, id (orderId=) or #
        ("order 8123 refused", "order 8124 refused", False),
        ("Order: 8123 refused (HTTP 400)", "Order: 8124 refused (HTTP 400)", False),
        ("cancel of id 77 failed", "cancel of id 78 failed", False),
        ('{"orderId": 8123, "code": -2011}', '{"orderId": 8124, "code": -2011}', False),
        ("leg #8123 gone", "leg #8124 gone", False),
        ("order #8123: HTTP 503 after 1000 ms", "order #8123: HTTP 502 after 1200 ms", True),
        ("paid 5 USDT too much", "paid 6 USDT too much", True),  # an amount, not an id
        # an epoch time in a request's URL changes every tick: a long number is no id
        (
            "GET /api/v3/openOrders?timestamp=1796089770057 timed out",
            "GET /api/v3/openOrders?timestamp=1796089775061 timed out",
            True,
        ),
    ],
)
def test_what_counts_as_the_same_engine_error(a: str, b: str, same: bool) -> None:
    first, second = (note("engine_error", text, severity="error") for text in (a, b))
    assert (repeat_key(first) == repeat_key(second)) is same
    critical = [note("protection_lost", text, severity="critical") for text in (a, b)]
    assert (repeat_key(critical[0]) == repeat_key(critical[1])) is (a == b)  # exact only


def test_two_orders_refused_are_two_notes_sent_at_once() -> None:
    """Order 8123 refused, then order 8124: plain-digit exchange ids were read as a number
    that varies, the second refusal held as a repeat of the first for up to 10 minutes."""
    r = Repeats()
    first, second = (
        note("engine_error", f"order {i} refused: -2010", severity="error") for i in (8123, 8124)
    )
    assert r.admit(first) == [first] and r.admit(second) == [second]


def test_a_crash_loses_the_held_count_never_a_first_occurrence(
    workdir: Path, sim: NotifySim
) -> None:
    """README: held repeats live in memory. A crash (no stop: what is on disk survives) loses
    their count and their latest text; their first went out through the outbox, and after the
    restart the next occurrence is a first again, sent at once."""
    sim.down()
    n = start(workdir, sim)
    for i in range(4):
        alert(n, i, f"binance: reconcile failed: HTTP 50{i}")
    for w in n.workers:  # the process dies: its senders stop, nothing more is written
        w.close(0.2)
    assert n.outbox is not None
    n.outbox.close()
    on_disk = (workdir / "data" / OUTBOX_FILE).read_text()
    assert on_disk.count('"op": "add"') == 1 and "repeated" not in on_disk
    sim.up()
    again = start(workdir, sim)
    try:
        alert(again, 200, "binance: reconcile failed: HTTP 503")  # still down after the restart
        deadline = time.monotonic() + 5
        while "".join(sim.texts()).count("Engine error") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        again.close()
    text = "".join(sim.texts())
    assert "HTTP 500" in text and "HTTP 503" in text  # the first, and the first after the restart
    assert text.count("Engine error (reconcile)") == 2
    assert "repeated" not in text and "HTTP 501" not in text and "HTTP 502" not in text


def test_only_what_can_come_every_tick_is_held() -> None:
    r = Repeats()
    for kind in ("entry_filled", "exit_filled", "stop_loss", "daily_summary", "heartbeat"):
        n = note(kind)
        assert r.admit(n) == [n] and r.admit(n) == [n], kind
    for kind in ("engine_error", "protection_lost", "finance_alert", "kill_switch"):
        n = note(kind, severity="warning")
        assert r.admit(n) == [n] and r.admit(n) == [], kind
