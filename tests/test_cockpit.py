"""The cockpit driven by keys, with Textual's pilot, against the real engine in paper mode."""

from __future__ import annotations

import errno
import json
import time
from decimal import Decimal
from pathlib import Path

import pytest
from textual.widgets import Input, Select, Static

from engine.fsutil import inject_write_fault
from engine.modes import Settings
from engine.runtime import Runtime
from kobe_tui.app import KobeApp, ending
from kobe_tui.screens.confirm import ConfirmScreen
from kobe_tui.screens.ticket import OrderTicket
from kobe_tui.screens.unlock import UnlockStep1, UnlockStep2
from kobe_tui.widgets.header import KobeHeader
from kobe_tui.widgets.health import HealthPane
from kobe_tui.widgets.journal import JournalPane
from kobe_tui.widgets.orders import OrdersPane
from tests.cockpit_support import drain, make_app, plain, settle, ticks

LIVE_ENV = {
    "KOBE_MODE": "live",
    "ALLOW_LIVE": "1",
    "BINANCE_KEY": "k" * 16,
    "BINANCE_SECRET": "s" * 16,
}


def journal_events(workdir: Path) -> list[dict[str, str]]:
    path = workdir / "data" / "logs" / "orders.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


async def test_first_frame_then_settings_from_a_worker(workdir: Path) -> None:
    (workdir / "kobe.toml").write_text('mode = "testnet"\n[exchange]\nname = "okx"\n')
    app = KobeApp(env={}, cwd=workdir, autostart=False)
    assert app.settings is None  # nothing validated before the first frame
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.query_one(KobeHeader).item("mode").strip() == "TESTNET"
        await settle(app, pilot, engine=False)
        assert app.settings is not None
        pane = app.query_one(HealthPane)
        assert "keys present" in pane.rows and "…" not in pane.rows
        assert pane.has_class("failing")  # no okx keys: testnet cannot run


@pytest.mark.parametrize("mode", ["testnet", "paper"])
async def test_the_health_box_says_how_many_checks_fail_on_its_border(
    workdir: Path, mode: str
) -> None:
    """At 120x40 the health pane shows four of its checks (the rest scroll): its box's border
    says how many fail, in words, so a failing check out of sight is never a silent one. The
    count was set on the table inside, which has no border: it was never drawn."""
    from kobe_tui.widgets.health import HealthBox
    from tests.test_orders_pane import drawn

    (workdir / "kobe.toml").write_text(f'mode = "{mode}"\n[exchange]\nname = "okx"\n')
    app = KobeApp(env={}, cwd=workdir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot, engine=False)
        box = app.query_one(HealthBox)
        bottom = drawn(app, box)[-1]  # type: ignore[arg-type]
        table = app.query_one(HealthPane)
        failing = sum(table.get_cell(k, "state").plain == "FAIL" for k in table.rows)
        want = f"{failing} failing" if failing else "all checks pass"
        assert want in bottom, bottom
        assert (mode == "testnet") == (failing > 0) == box.has_class("failing")


async def test_health_says_the_data_dir_as_it_is_once_the_engine_has_made_it(
    workdir: Path,
) -> None:
    """The checks ran before the engine made the data dir, and their `./data: writable,
    created on first use` stayed for the whole session: they run again once it is built."""
    assert not (workdir / "data").exists()
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert app.runtime is not None and (workdir / "data").is_dir()
        await drain(app, pilot)
        pane = app.query_one(HealthPane)
        detail = pane.get_row("data dir writable")[-1].plain
        assert detail.endswith("is writable"), detail


async def test_the_collector_paused_for_start_up_runs_again(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    import kobe_tui.app as cockpit

    try:
        app, _ = make_app(workdir)
        cockpit.pause_gc_for_startup()  # as main() does
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            assert app.runtime is not None and gc.isenabled()  # the engine is built
        monkeypatch.setattr(cockpit, "STARTUP_GC_S", 0.05)
        app = KobeApp(env={"KOBE_MODE": "live"}, cwd=workdir)  # locked: no engine is built
        cockpit.pause_gc_for_startup()
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            await pilot.pause(0.2)
            assert app.runtime is None and gc.isenabled()  # back all the same
    finally:
        gc.enable()


def test_the_first_frame_needs_no_pydantic() -> None:
    """What the first frame imports (the app, its header and panes) leaves pydantic to the
    settings worker: the config's models cost their time after the header is on screen."""
    import subprocess
    import sys

    code = "import sys, kobe_tui.app; print('pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_refused_config_closes_with_exit_2_and_its_lines(workdir: Path) -> None:
    (workdir / "kobe.toml").write_text("[risk]\nmax_drawdown_pct = 140\n")
    app = KobeApp(env={}, cwd=workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot, engine=False)
    assert app.return_code == 2
    assert app.config_errors == [
        "kobe.toml: risk.max_drawdown_pct: must be between 0 and 100 (got 140)"
    ]


async def test_a_second_cockpit_on_a_held_data_dir_exits_1_naming_the_holder(
    workdir: Path,
) -> None:
    """README: "One engine per data dir: a second `run` (or `trade`, `cancel`, or a second
    `kobe-tui`) exits 1 naming the process that holds `data/kobe.lock`"."""
    import os

    from engine.lock import DataDirLock

    with DataDirLock(workdir / "data", "kobe-tui"):
        app, _ = make_app(workdir)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
    assert app.return_code == 1
    assert any(f"pid {os.getpid()} (kobe-tui)" in line for line in app.config_errors)


async def test_a_listed_notify_channel_not_set_up_closes_with_exit_2(workdir: Path) -> None:
    """README (Notifications): an engine does not start with a channel it cannot send on."""
    (workdir / "kobe.toml").write_text('[notify]\nchannels = ["telegram"]\n')
    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
    assert app.return_code == 2
    assert any(
        line.startswith('notify.channels: "telegram" is listed but TELEGRAM_BOT_TOKEN and')
        for line in app.config_errors
    ), app.config_errors


async def _fill_ticket(pilot, app: KobeApp, **fields: str) -> OrderTicket:  # type: ignore[no-untyped-def]
    await pilot.press("n")
    await pilot.pause()
    ticket = app.screen
    assert isinstance(ticket, OrderTicket)
    for field, value in fields.items():
        widget = ticket.query_one(f"#{field}")
        widget.focus()
        await pilot.pause()
        if isinstance(widget, Select):
            options = [str(v) for _, v in widget._options]  # the order shown to the trader
            await pilot.press("enter")
            for _ in range(options.index(value) - options.index(str(widget.value))):
                await pilot.press("down")
            await pilot.press("enter")
        else:
            assert isinstance(widget, Input)
            await pilot.press("ctrl+a", "backspace")  # clear it as a person would
            widget.value = ""
            for ch in value:
                await pilot.press(ch if ch != "." else "full_stop")
        await pilot.pause()
    await drain(app, pilot)
    return ticket


async def _buy_with_oco(pilot, app: KobeApp) -> None:  # type: ignore[no-untyped-def]
    """A BTC/USDT market buy of 12 USDT from the ticket, its OCO (SL 90000, TP 100000) open."""
    await _fill_ticket(pilot, app, symbol="BTC/USDT", amount="12", sl="90000", tp="100000")
    await pilot.press("ctrl+s")
    await settle(app, pilot)


async def test_place_a_paper_limit_order_then_cancel_it(workdir: Path) -> None:
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        ticket = await _fill_ticket(
            pilot, app, symbol="ETH/USDT", type="limit", price="3000", amount="12"
        )
        plan = str(ticket.query_one("#plan", Static).render())
        assert "Plan:" in plan and "BUY" in plan and "limit 3000" in plan
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        orders = app.query_one(OrdersPane)
        assert len(orders.orders) == 1
        [order] = orders.orders.values()
        assert order.symbol == "ETH/USDT" and order.status == "open"
        assert [e["event"] for e in journal_events(workdir)] == ["intent", "ack"]
        await pilot.press("1")
        await pilot.press("c")
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert (
            f"Cancel order {order.exchange_id} BUY" in confirm.question
            and "ETH/USDT @ 3000" in confirm.question
        )
        await pilot.press("y")
        await settle(app, pilot)
        assert orders.orders == {}
        assert journal_events(workdir)[-1]["event"] == "cancel"
        assert journal_events(workdir)[-1]["source"] == "cockpit"


async def test_cancel_confirmation_defaults_to_no(workdir: Path) -> None:
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await _fill_ticket(pilot, app, symbol="ETH/USDT", type="limit", price="3000", amount="12")
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        await pilot.press("1", "c")
        await pilot.pause()
        await pilot.press("enter")  # the focused button is "No"
        await settle(app, pilot)
        assert len(app.query_one(OrdersPane).orders) == 1


async def test_kill_switch_blocks_a_new_order_with_its_reason(workdir: Path) -> None:
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("k")
        await settle(app, pilot)
        assert "TRIPPED" in app.query_one(KobeHeader).item("risk-state")
        ticket = await _fill_ticket(pilot, app, amount="15")
        plan = str(ticket.query_one("#plan", Static).render())
        assert "kill switch is TRIPPED: manual: tripped from the cockpit" in plan
        assert ticket.query_one("#place").disabled
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("K")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(app, pilot)
        assert "ARMED" in app.query_one(KobeHeader).item("risk-state")
    audit = [
        json.loads(x)["action"] for x in (workdir / "data" / "audit.jsonl").read_text().splitlines()
    ]
    assert audit == ["kill_switch_trip", "kill_switch_reset"]


async def test_engine_ticks_fill_the_panes(workdir: Path) -> None:
    app, clock = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await ticks(app, pilot, clock, 300)
        journal = app.query_one(JournalPane)
        assert journal.trades  # closed trades arrived as messages
        assert journal.table.row_count == len(journal.trades)
        await pilot.press("slash")
        for ch in "copy":
            await pilot.press(ch)
        await pilot.pause()
        rows = journal.table.row_count
        assert 0 < rows < len(journal.trades) or all(
            t.strategy == "copy_trading" for t in journal.trades
        )


async def test_live_unlock_refused_without_allow_live(workdir: Path) -> None:
    env = {k: v for k, v in LIVE_ENV.items() if k != "ALLOW_LIVE"}
    app, _ = make_app(workdir, env)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert app.engine_state == "locked" and app.runtime is None
        assert "LIVE — LOCKED" in app.query_one(KobeHeader).item("mode")
        await pilot.press("L")
        await pilot.pause()
        assert not isinstance(app.screen, UnlockStep1)  # refused at once, with the reason
        alerts = plain(app.query_one("#alerts-body", Static))
        assert "ALLOW_LIVE is not 1" in alerts


async def test_live_unlock_escape_at_either_step_leaves_it_locked(workdir: Path) -> None:
    calls: list[bool] = []

    def factory(settings: Settings, confirmed: bool) -> Runtime:
        calls.append(confirmed)
        raise RuntimeError("no exchange in tests")

    app, _ = make_app(workdir, LIVE_ENV, factory=factory, balances={"USDT": Decimal("1234.5")})
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("L")
        await settle(app, pilot, engine=False)
        assert isinstance(app.screen, UnlockStep1)
        assert "1234.5" in str(app.screen.query_one("#unlock1-balances", Static).render())
        assert app.query_one(KobeHeader).item("venue-state") == " venue ok "  # it answered
        await pilot.press("escape")  # step 1 refused
        await pilot.pause()
        assert app._locked() and calls == []
        await pilot.press("L")
        await settle(app, pilot, engine=False)
        await pilot.press("enter")  # the default button is Cancel
        await pilot.pause()
        assert app._locked() and calls == []
        await pilot.press("L")
        await settle(app, pilot, engine=False)
        await pilot.click("#continue")
        await pilot.pause()
        assert isinstance(app.screen, UnlockStep2)
        for ch in "UNLOCK":
            await pilot.press(ch)
        await pilot.press("escape")  # step 2 refused
        await pilot.pause()
        assert app._locked() and calls == []
        assert "LIVE — LOCKED" in app.query_one(KobeHeader).item("mode")
        # both steps: the engine is asked to start in live, and the unlock is audited
        await pilot.press("L")
        await settle(app, pilot, engine=False)
        await pilot.click("#continue")
        await pilot.pause()
        step2 = app.screen
        assert isinstance(step2, UnlockStep2)
        step2.query_one("#phrase", Input).focus()
        for ch in "UNLOCK BINANCE LIVE":
            await pilot.press(ch if ch != " " else "space")
        await pilot.press("enter")
        await settle(app, pilot)
        assert calls == [True]
        assert app.query_one(KobeHeader).item("mode").strip() == "LIVE"
        assert app.engine_state == "error"  # the factory failed: shown, the cockpit stays up
    audit = [json.loads(x) for x in (workdir / "data" / "audit.jsonl").read_text().splitlines()]
    assert [a["action"] for a in audit] == ["live_unlock"]


async def test_quit_asks_first_when_orders_are_open(workdir: Path) -> None:
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await _fill_ticket(pilot, app, symbol="ETH/USDT", type="limit", price="3000", amount="12")
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        await pilot.press("q")
        await pilot.pause()
        assert (
            isinstance(app.screen, ConfirmScreen)
            and "Quit with 1 open order?" in app.screen.question
        )
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running


async def test_a_save_the_disk_refuses_as_the_engine_stops_is_said_and_exits_1(
    workdir: Path,
) -> None:
    """The paper account is saved as the engine stops, when the cockpit quits: refused there
    (a full disk), kobe-tui ended with exit 0 and only its log knew the account's last state
    was not written."""
    app, clock = make_app(workdir)

    def full(path: Path) -> None:
        if path.name == "state.json" and path.parent.name == "paper":
            raise OSError(errno.ENOSPC, "No space left on device")

    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(app, pilot)
            await ticks(app, pilot, clock, 2)
            assert ending(app) == ([], 0)  # nothing refused yet
            inject_write_fault(full)
            await pilot.press("q")
            await pilot.pause()
        runtime = app.runtime
        assert runtime is not None
        deadline = time.monotonic() + 10  # the engine's thread stops and saves
        while runtime.close_failure is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        inject_write_fault(None)
    lines, code = ending(app)
    assert code == 1
    [line] = lines
    assert line.startswith("kobe-tui: cannot write ") and "paper/state.json" in line, line
    assert "the paper account was not written" in line


async def test_bindings_have_ids_descriptions_and_none_is_priority() -> None:
    """A priority key of the app acts in every dialog too. Exceptions: `/` must move the
    focus to the filter's box when it arrives, before the keys typed behind it are handled as
    commands; it steps aside (SkipAction) in a dialog or a field, where `/` is typed. The kill
    switch's `k` and `ctrl+t` are meant to act in a dialog (`k` not in a text field)."""
    for b in KobeApp.BINDINGS:
        assert getattr(b, "id", None) and getattr(b, "description", None), b
        if getattr(b, "priority", False):
            assert b.key in ("slash", "k", "ctrl+t"), b  # type: ignore[union-attr]


async def test_cancelling_one_exit_leg_names_the_position_it_leaves_unprotected(
    workdir: Path, cli: object
) -> None:
    _buy_with_exits(cli)
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert len(app.query_one(OrdersPane).orders) == 2  # the OCO's two legs
        await pilot.press("1", "c")
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert confirm.question.startswith("Cancel the exits of position BTC/USDT ")
        assert "(TP 99000, SL 93000)? It will be unprotected." in confirm.question
        await pilot.press("enter")  # the default is No
        await settle(app, pilot)
        assert len(app.query_one(OrdersPane).orders) == 2


async def test_each_exit_names_the_position_it_protects(workdir: Path, cli: object) -> None:
    from kobe_tui.widgets.orders import PositionsPane, position_label

    _buy_with_exits(cli)
    r = cli(  # type: ignore[operator]
        "trade", "--symbol", "ETH/USDT", "--side", "buy", "--type", "limit", "--price", "3000",
        "--quote", "5.5", "--yes",
    )  # fmt: skip
    assert r.code == 0, r.err
    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:  # the orders pane on its own
        await settle(app, pilot)
        [pos] = app.query_one(PositionsPane).positions.values()
        orders = app.query_one(OrdersPane)
        column = [c.key for c in OrdersPane.COLUMNS].index("protects")
        shown = {cid: str(orders._rows[cid][column]) for cid in orders.orders}
        legs = {x.client_id for x in pos.exits}
        assert len(legs) == 2 and legs <= set(shown)  # the OCO's two legs, from the book
        label = position_label(pos)
        assert label.startswith("long ") and " @ " in label
        assert {shown[cid] for cid in legs} == {label}, shown
        [entry] = set(shown) - legs  # the resting ETH entry protects nothing
        assert orders.orders[entry].symbol == "ETH/USDT" and shown[entry] == ""
        labels = [str(c.label) for c in orders.table.columns.values()]
        assert "protects" in labels  # a column on screen at this width, not only kept


async def test_a_position_without_this_ticks_price_shows_no_mark(
    workdir: Path, cli: object
) -> None:
    from kobe_tui.widgets.orders import PositionsPane

    _buy_with_exits(cli)
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        pane = app.query_one(PositionsPane)
        [key] = pane.positions
        mark = [c.key for c in PositionsPane.COLUMNS].index("mark")
        pane.mark({"BTC/USDT": Decimal("96000")})
        assert str(pane.row_cells(key)[mark]) == "96,000.00"
        pane.mark({"ETH/USDT": Decimal("3500")})  # a tick whose BTC ticker failed
        assert str(pane.row_cells(key)[mark]) == "—"  # not the last price, as if current
        assert str(pane.row_cells(key)[mark + 1]) == "—"  # nor a uPnL from it


async def test_e_replaces_a_positions_exits_and_keeps_an_omitted_leg(
    workdir: Path, cli: object
) -> None:
    from kobe_tui.screens.exits import ExitsScreen
    from kobe_tui.widgets.orders import PositionsPane

    _buy_with_exits(cli)
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert app.query_one(PositionsPane).positions
        await pilot.press("2", "e")
        await pilot.pause()
        assert isinstance(app.screen, ExitsScreen)
        await pilot.press(*"98000", "enter")  # a new TP; the SL field left empty: kept
        await settle(app, pilot)
        orders = app.runtime.open_orders()  # type: ignore[union-attr]
        prices = {o.client_id[-2:]: o.price for o, _, _ in orders}
        assert prices["tp"] == Decimal(98000)
        assert "sl" in prices  # the stop-loss is still there


def _buy_with_exits(cli: object) -> None:
    """A BTC position placed from the CLI, with its OCO (TP 99000, SL 93000)."""
    r = cli(  # type: ignore[operator]
        "trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15",
        "--sl", "93000", "--tp", "99000", "--yes",
    )  # fmt: skip
    assert r.code == 0, r.err


async def test_the_header_says_running_when_the_ui_catches_up_late(workdir: Path) -> None:
    """The engine says "running" through the batched inbox; the worker also posted the state it
    had just after the build ("stopped"). With the UI busy at start-up (a long journal, many
    alerts) the inbox was drawn first and the stale "stopped" after it: the header said
    "engine: stopped" for good, and every engine key (n, k, p…) was refused."""
    import threading
    import time

    released = threading.Event()

    class SlowStart(Runtime):
        def build(self) -> None:
            super().build()
            app.call_later(released.wait, 5)  # the UI thread is busy…
            time.sleep(0.3)  # …past the drain's interval
            self._alert("info", "test", "built")  # an event: the UI is woken

        def mark_running(self) -> None:
            super().mark_running()
            released.set()  # the UI catches up: every message is waiting

    def factory(s: Settings, confirmed: bool) -> Runtime:
        return SlowStart(s, confirmed=confirmed, clock=clock, tick_seconds=60)

    app, clock = make_app(workdir, factory=factory)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        for _ in range(20):
            await pilot.pause(0.05)
        app._drain()
        await pilot.pause()
        assert app.runtime is not None and app.runtime.status().state.value == "running"
        assert app.engine_state == "running"
        assert app.query_one(KobeHeader).item("engine-state") == " engine: running "


async def test_what_a_close_leaves_below_one_step_is_shown_as_dust(
    workdir: Path, cli: object
) -> None:
    """A close sells 0.00014 BTC of the 0.00014985 held (Binance's fee is in BTC, the step is
    0.00001): the 0.00000985 left (~0.94 USDT) cannot be sold on its own. It went from the
    positions pane without a word (`kobe positions` listed it, the cockpit did not): it is
    shown as dust there, with its value at the mark, and is neither a position nor unprotected."""
    from kobe_tui.widgets.orders import PositionsPane

    _buy_with_exits(cli)
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert len(app.query_one(PositionsPane).positions) == 1
        await pilot.press("2", "x")
        await pilot.pause()
        await pilot.press("y")
        await settle(app, pilot)
        pane = app.query_one(PositionsPane)
        assert pane.positions == {}
        [(key, dust)] = pane.dust.items()
        assert dust.symbol == "BTC/USDT" and dust.qty == Decimal("0.00000985")
        cells = [str(c) for c in pane.row_cells(key)]
        tp = [c.key for c in PositionsPane.COLUMNS].index("tp")
        assert cells[tp] == "dust" and "0.00000985" in cells
        pane.mark({"BTC/USDT": Decimal(96000)})
        upnl = [c.key for c in PositionsPane.COLUMNS].index("upnl")
        assert str(pane.row_cells(key)[upnl]) != "—"  # its value is said, at the mark
        assert app.query_one(KobeHeader).item("unprotected") == ""


async def test_a_position_whose_exits_were_cancelled_shows_them_lost(
    workdir: Path, cli: object
) -> None:
    """Walked in tmux: after `C` cancelled a position's TP/SL, the header said UNPROTECTED 1
    while the positions pane still showed TP 99,000 and SL 93,000, as if they held it. Its TP
    and SL read "lost" while nothing covers it; new exits (`kobe exits`) bring the prices back."""
    from kobe_tui.widgets.orders import PositionsPane

    _buy_with_exits(cli)
    app, clock = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await ticks(app, pilot, clock, 1)
        pane = app.query_one(PositionsPane)
        [key] = pane.positions
        cols = [c.key for c in PositionsPane.COLUMNS]
        tp, sl = cols.index("tp"), cols.index("sl")

        def exits_shown() -> tuple[str, str]:
            cells = pane.row_cells(key)
            return str(cells[tp]), str(cells[sl])

        assert exits_shown() == ("99,000", "93,000")
        await pilot.press("C")
        await pilot.pause()
        await pilot.press("y")
        await settle(app, pilot)
        await ticks(app, pilot, clock, 1)
        assert "UNPROTECTED 1" in app.query_one(KobeHeader).item("unprotected")
        assert exits_shown() == ("lost", "lost")
        await pilot.press("2", "e")  # new exits for it
        await pilot.pause()
        await pilot.press(*"99500", "tab", *"92500", "enter")
        await settle(app, pilot)
        await ticks(app, pilot, clock, 1)
        assert exits_shown() == ("99,500", "92,500")
        assert app.query_one(KobeHeader).item("unprotected") == ""


async def test_x_on_a_dust_row_says_it_is_dust(workdir: Path, cli: object) -> None:
    """With a position and dust in the pane, `x` on the dust row named no target ("select a
    position first"): it says the row is dust, too small to sell, and asks nothing."""
    from kobe_tui.widgets.orders import PositionsPane

    for _ in range(2):
        r = cli(  # type: ignore[operator]
            "trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "8",
            "--sl", "93000", "--tp", "99000", "--yes",
        )  # fmt: skip
        assert r.code == 0, r.err
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("2", "x")
        await pilot.pause()
        await pilot.press("y")  # closes one: its own only (the other is open), dust is left
        await settle(app, pilot)
        pane = app.query_one(PositionsPane)
        assert len(pane.positions) == 1 and len(pane.dust) == 1
        for _ in range(2):
            if pane.selected_dust() is None:
                await pilot.press("down")
        assert pane.selected_dust() is not None
        await pilot.press("x")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        said = [str(n.message) for n in app._notifications]
        assert any("is dust, too small to sell on its own" in m for m in said), said
