"""The cockpit raced: keys back to back (as SSH bundles them) against the engine's thread, with
Textual's pilot and the real engine in paper mode."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from engine.agent import build_agent
from engine.lock import DataDirLock
from engine.modes import Settings, resolve_settings
from engine.proposal import Proposal
from engine.router import Placement
from engine.runtime import Runtime, SimClock
from kobe_tui.app import KobeApp
from kobe_tui.screens.confirm import ConfirmScreen
from kobe_tui.screens.ticket import OrderTicket
from kobe_tui.widgets.journal import AlertsPane, JournalPane
from kobe_tui.widgets.orders import OrdersPane
from tests.cockpit_support import drain, make_app, settle
from tests.test_cockpit import _buy_with_oco, _fill_ticket, journal_events
from tests.test_cockpit_keys import burst


@contextmanager
def tick_under_way(runtime: Runtime) -> Iterator[None]:
    """The engine's lock held by another thread, as a tick waiting for a slow exchange."""
    held, done = threading.Event(), threading.Event()

    def tick() -> None:
        with runtime._lock:
            held.set()
            done.wait(10)

    thread = threading.Thread(target=tick)
    thread.start()
    held.wait()
    try:
        yield
    finally:
        done.set()
        thread.join()


async def until(condition: Callable[[], object], seconds: float = 3.0) -> bool:
    """Poll ``condition()`` on the UI's loop for at most ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.02)
    return False


async def limit_buy_ticket(app: KobeApp, pilot: Pilot[Any]) -> None:
    """The cockpit settled, and a ticket open for a limit buy of 12 USDT of ETH at 3000."""
    await settle(app, pilot)
    await _fill_ticket(pilot, app, symbol="ETH/USDT", type="limit", price="3000", amount="12")


def trip_alerts(app: KobeApp) -> int:
    """How many times the alerts pane was told the switch tripped (repeats are counted)."""
    return sum(
        count
        for _, _, code, message, count in app.query_one(AlertsPane).alerts
        if code == "kill_switch" and "TRIPPED" in message
    )


async def test_k_mid_tick_trips_at_once_and_alerts_once(workdir: Path) -> None:
    """``k`` while a tick is under way (a slow exchange): the switch trips at once, so the
    entries the tick has still to send are refused; it waited for the tick's end. ``k`` twice
    in one packet is one trip: one alert."""
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        runtime = app.runtime
        assert runtime is not None
        with tick_under_way(runtime):
            await burst(app, "k", "k")
            tripped = await until(lambda: runtime.risk.entry_block() is not None)
            assert tripped, "the trip waited for the tick"
        await settle(app, pilot)
        assert runtime.risk.kill_switch().tripped
        assert trip_alerts(app) == 1


async def test_r_while_the_engine_starts_leaves_one_engine_running(workdir: Path) -> None:
    """``r`` (recheck) while the engine was being built (an exchange's markets loading) started
    a second one: the first was cancelled, the second refused by the first's lock, and the
    cockpit was left with no engine ("held by pid <its own>")."""
    settings = resolve_settings({}, workdir)
    clock = SimClock(settings.config.paper.sim_start)
    built: list[Runtime] = []

    class SlowStart(Runtime):
        def _build_parts(self) -> None:
            time.sleep(0.5)  # the data dir is locked; the venue is being asked
            super()._build_parts()

    def factory(s: Settings, confirmed: bool) -> Runtime:
        runtime = SlowStart(s, confirmed=confirmed, clock=clock, agent_factory=build_agent)
        built.append(runtime)
        return runtime

    app = KobeApp(
        settings, env={}, cwd=workdir, clock=clock, autotick=False, runtime_factory=factory
    )
    async with app.run_test(size=(120, 40)) as pilot:
        assert await until(lambda: built)  # the engine is being built
        await pilot.press("r")
        await settle(app, pilot)
        await asyncio.sleep(0.6)  # what a second start would have met
        await drain(app, pilot)
        assert app.engine_state == "running"
        assert len(built) == 1 and app.runtime is built[0]
        assert not [a for a in app.query_one(AlertsPane).alerts if a[2] == "engine"]


async def test_q_right_after_placing_an_order_places_it_then_quits(workdir: Path) -> None:
    """``q`` right after ``ctrl+s``: the quit stopped the engine while the order's worker had
    not reached it yet (a busy machine), and the order was lost without a word.
    Now the cockpit quits once the order is placed, journaled whole, and the data dir is
    released; asking first, as ``q`` does, when that order is open."""
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await limit_buy_ticket(app, pilot)
        runtime = app.runtime
        assert runtime is not None
        submit = runtime.submit

        def late(proposal: Proposal) -> Placement:
            time.sleep(0.3)  # the worker's thread gets a core late
            return submit(proposal)

        runtime.submit = late  # type: ignore[method-assign]
        await pilot.press("ctrl+s")
        await burst(app, "q")
        # the question counts the order just placed (a limit buy, open)
        assert await until(lambda: isinstance(app.screen, ConfirmScreen))
        assert app.screen.question.startswith("Quit with 1 open order?")
        assert [e["event"] for e in journal_events(workdir)] == ["intent", "ack"]
        await pilot.press("y")
        assert await until(lambda: app.return_code is not None)
    assert [e["event"] for e in journal_events(workdir)] == ["intent", "ack"]
    assert await until(lambda: not runtime._built)  # stopped, after the order
    with DataDirLock(workdir / "data", "test"):
        pass  # the data dir is released


async def test_keys_after_ctrl_s_in_one_packet_never_change_the_order(workdir: Path) -> None:
    """``ctrl+s 5`` in one packet: the 5 was typed into the focused field (amount "125")
    before ctrl+s reached the ticket, the plan shown was thrown away and nothing was placed;
    a second ctrl+s then sent 125. Now the order shown is placed, once, and the 5 changes
    nothing. Keys typed before ctrl+s in the same packet make the plan shown stale: nothing
    is placed until the plan of what was typed is shown."""
    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        ticket = await _fill_ticket(pilot, app, symbol="ETH/USDT", type="limit", price="3000")
        ticket.query_one("#amount").focus()
        await pilot.pause()
        await burst(app, "backspace", "backspace", "6", "ctrl+s")  # amount 15 -> 6, at once
        await settle(app, pilot)
        assert app.screen is ticket and journal_events(workdir) == []  # its plan was not shown
        assert "BUY 0.002 ETH" in str(ticket.query_one("#plan").render())  # 6 USDT at 3000
        await burst(app, "ctrl+s", "5", "ctrl+s")
        await settle(app, pilot)
        events = journal_events(workdir)
        assert [e["event"] for e in events] == ["intent", "ack"]
        assert events[0]["qty"] == "0.002"  # 6 USDT at 3000, as the plan said
        assert app.screen is app.screen_stack[0]


@pytest.mark.parametrize(
    ("keys", "cancelled"),
    [
        (("c", "enter", "y"), False),  # enter on the focused No, then y: it was a Yes
        (("c", "escape", "y"), False),
        (("c", "n", "y"), False),
        (("c", "y", "y"), True),
        (("c", "y", "escape"), True),
        (("c", "tab", "enter", "enter"), True),
    ],
)
async def test_the_first_answer_of_a_packet_counts_and_only_once(
    workdir: Path, keys: tuple[str, ...], cancelled: bool
) -> None:
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await limit_buy_ticket(app, pilot)
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        await pilot.press("1")
        await burst(app, *keys)
        await settle(app, pilot)
        events = [e["event"] for e in journal_events(workdir)]
        assert events == (["intent", "ack", "cancel"] if cancelled else ["intent", "ack"])
        assert app.screen is app.screen_stack[0]  # nothing left open, nothing else closed


async def test_cancel_all_on_an_oco_pair_says_no_error(workdir: Path) -> None:
    """``C`` with a position's TP and SL open: cancelling the TP cancels the pair, and the SL
    was then reported as an error ("not open (last known state: canceled)") with an alert.
    ``C`` pressed twice in one packet asks once."""
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await _buy_with_oco(pilot, app)
        assert len(app.query_one(OrdersPane).orders) == 2
        await burst(app, "C", "C")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and len(app.screen_stack) == 2
        await pilot.press("y")
        await settle(app, pilot)
        cancels = [e["client_id"][-2:] for e in journal_events(workdir) if e["event"] == "cancel"]
        assert sorted(cancels) == ["sl", "tp"]
        assert not [a for a in app.query_one(AlertsPane).alerts if a[2] == "action"]
        assert app.query_one(OrdersPane).orders == {}


async def test_p_mid_tick_pauses_at_once_without_freezing_the_screen(workdir: Path) -> None:
    """``p`` while a tick waited for a slow exchange froze the cockpit (``q`` with it) until
    the tick ended: pausing took the tick's lock on the UI thread."""
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        runtime = app.runtime
        assert runtime is not None
        with tick_under_way(runtime):
            started = time.monotonic()
            await pilot.press("p")
            assert time.monotonic() - started < 2, "the screen waited for the tick"
            assert runtime.paused
            await pilot.press("p")
            assert not runtime.paused  # p p: paused, then resumed, in that order
        await settle(app, pilot)
        assert app.engine_state == "running"


async def test_a_reload_never_moves_the_cockpit_to_another_data_dir(workdir: Path) -> None:
    """``r`` after ``paths.data_dir`` was edited: the cockpit took the new data dir (its
    journal, stats, the live unlock's audit) while its engine traded on the old one."""
    settings = resolve_settings({}, workdir)
    clock = SimClock(settings.config.paper.sim_start)
    app = KobeApp(settings, env={}, cwd=workdir, clock=clock, autotick=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        (workdir / "kobe.toml").write_text('[paths]\ndata_dir = "elsewhere"\n')
        await pilot.press("r")
        await settle(app, pilot)
        assert app.settings is not None and app.settings.data_dir == workdir / "data"
        assert app.query_one(JournalPane).path == workdir / "data" / "trades.jsonl"
        refused = [a[3] for a in app.query_one(AlertsPane).alerts if a[2] == "reload"]
        assert refused and f"data dir: {workdir / 'elsewhere'}" in refused[0]


@pytest.mark.parametrize(
    ("keys", "placed"), [(("escape", "ctrl+s"), False), (("ctrl+s", "escape"), True)]
)
async def test_escape_and_ctrl_s_in_one_packet_keep_their_order(
    workdir: Path, keys: tuple[str, ...], placed: bool
) -> None:
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await limit_buy_ticket(app, pilot)
        await burst(app, *keys)
        await settle(app, pilot)
        events = [e["event"] for e in journal_events(workdir)]
        assert events == (["intent", "ack"] if placed else [])
        assert app.screen is app.screen_stack[0]


@pytest.mark.parametrize(("keys", "placed"), [(("ctrl+s", "q"), True), (("escape", "q"), False)])
async def test_q_behind_the_key_that_closes_the_ticket_quits(
    workdir: Path, keys: tuple[str, ...], placed: bool
) -> None:
    """``ctrl+s q`` in one packet (SSH bundles keys): the order was placed but the q went
    into a field of the closing ticket, and the cockpit stayed. The q is now the main
    screen's: with no order left open (a market buy, filled) the cockpit quits."""
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await _fill_ticket(pilot, app, symbol="ETH/USDT", amount="12")
        await burst(app, *keys)
        assert await until(lambda: app.return_code is not None)
    events = [e["event"] for e in journal_events(workdir)]
    assert events == (["intent", "ack", "fill"] if placed else [])


async def test_ctrl_s_q_with_an_order_left_open_asks_before_quitting(workdir: Path) -> None:
    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await limit_buy_ticket(app, pilot)
        await burst(app, "ctrl+s", "q")
        assert await until(lambda: isinstance(app.screen, ConfirmScreen))
        assert app.screen.question.startswith("Quit with 1 open order?")
        await pilot.press("n")  # the safe answer: Kobe stays, the order with it
        await settle(app, pilot)
        assert app.return_code is None and app.screen is app.screen_stack[0]
        assert len(app.query_one(OrdersPane).orders) == 1


async def test_a_q_typed_in_the_ticket_or_behind_a_refused_ctrl_s_never_quits(
    workdir: Path,
) -> None:
    """A q is the field's (a typo the plan refuses), also right behind a ctrl+s that placed
    nothing (its plan was not the plan shown): the cockpit never quits from the ticket."""
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await limit_buy_ticket(app, pilot)
        ticket = app.screen
        assert isinstance(ticket, OrderTicket)
        ticket.query_one("#amount").focus()
        await pilot.pause()
        await burst(app, "q")
        await settle(app, pilot)
        assert ticket.query_one("#amount", Input).value == "12q"
        await burst(app, "backspace", "3", "ctrl+s", "q")  # 13: not the plan shown yet
        await settle(app, pilot)
        assert app.screen is ticket and app.return_code is None
        assert journal_events(workdir) == []
