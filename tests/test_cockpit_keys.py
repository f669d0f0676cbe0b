"""Every documented key, driven with Textual's pilot against the real engine in paper mode."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.text import Text
from textual import events
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.renderables.sparkline import Sparkline as SparklineRenderable
from textual.widgets import Input, Label, Select, Sparkline, Static

from engine.config import RiskConfig
from engine.risk import RiskEngine
from engine.runtime import SimClock
from engine.trades import ClosedTrade, TradeStore
from kobe_tui.app import PANES, KobeApp
from kobe_tui.screens.confirm import ConfirmScreen
from kobe_tui.screens.ticket import OrderTicket
from kobe_tui.widgets.header import KobeHeader
from kobe_tui.widgets.journal import AlertsPane, JournalPane
from kobe_tui.widgets.money import EquityPane, WalletsPane
from kobe_tui.widgets.orders import OrdersPane
from tests.binance_sim import DEFAULT_SYMBOLS, BinanceSim, SymbolSpec
from tests.cockpit_support import drain, make_app, plain, settle, ticks
from tests.test_cockpit import _buy_with_oco, _fill_ticket


def write_trades(workdir: Path, n: int, special: dict[int, str] | None = None) -> None:
    """``n`` closed trades, one a minute; trade ``i`` has reason ``special[i]`` when given.
    The risk engine's files first, as an engine leaves them (a journal of trades without
    them is a lost risk state: the kill switch starts TRIPPED)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    RiskEngine(workdir / "data", RiskConfig(), lambda: start).close()
    store = TradeStore(workdir / "data")
    for i in range(n):
        reason = (special or {}).get(i, "take-profit hit")
        store.append(
            ClosedTrade(
                trade_id=f"t{i:05d}",
                opened_at=start + timedelta(minutes=i),
                closed_at=start + timedelta(minutes=i, seconds=30),
                wallet="cex_binance",
                strategy="manual",
                symbol="BTC/USDT",
                side="buy",
                qty=Decimal("0.001"),
                entry_price=Decimal("95000"),
                exit_price=Decimal("95100"),
                fees=Decimal("0.19"),
                pnl=Decimal("-0.5") if reason == "stop-loss" else Decimal("0.1"),
                reason=reason,
            )
        )
    store.close()


def shown_ids(journal: JournalPane) -> list[str]:
    table = journal.table
    return [str(table.coordinate_to_cell_key((r, 0)).row_key.value) for r in range(table.row_count)]


async def test_r_says_that_the_health_checks_ran_again(workdir: Path) -> None:
    """``r`` ran the checks again, but with nothing changed no row did, and nothing said the
    key had done anything. It now says when, and the result."""
    app, clock = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert not [n for n in app._notifications if "Health" in n.message]
        await pilot.press("r")
        await settle(app, pilot, engine=False)
        said = [n.message for n in app._notifications if "Health" in n.message]
        assert said == [f"Health checked again at {clock():%H:%M:%S}: all checks pass"], said


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_tab_and_shift_tab_cycle_every_pane(workdir: Path, size: tuple[int, int]) -> None:
    app, _ = make_app(workdir)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        seen = []
        for _ in PANES:
            await pilot.press("tab")
            seen.append(app.active_pane)
        assert seen == [1, 2, 3, 4, 5, 6, 7, 8, 0]
        await pilot.press("shift+tab")
        assert app.active_pane == len(PANES) - 1
        await pilot.press("tab", "tab", "tab")  # to 3 (wallets): its table has the focus
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "wallets-table"
        if size == (80, 24):  # one pane at a time: the active one
            shown = [p for p in PANES if app.query_one(f"#{p}").display]
            assert shown == ["wallets"]


async def test_pageup_pagedown_page_the_journal_with_the_focus_in_its_table(
    workdir: Path,
) -> None:
    write_trades(workdir, 120)
    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        journal = app.query_one(JournalPane)
        await pilot.press("4")
        await pilot.pause()
        assert app.focused is journal.table
        assert shown_ids(journal)[0] == "t00119"  # newest first
        await pilot.press("pageup")
        await pilot.pause()
        assert journal.page == 1 and shown_ids(journal)[0] == "t00069"
        await pilot.press("pageup", "pageup")  # the last page holds the oldest; no further
        await pilot.pause()
        assert journal.page == 2 and shown_ids(journal)[-1] == "t00000"
        await pilot.press("pagedown", "pagedown")
        await pilot.pause()
        assert journal.page == 0 and shown_ids(journal)[0] == "t00119"


async def test_the_filter_searches_the_whole_journal_newest_first(workdir: Path) -> None:
    stops = {3: "stop-loss", 40: "stop-loss", 77: "stop-loss", 150: "stop-loss", 290: "stop-loss"}
    write_trades(workdir, 300, stops)
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        journal = app.query_one(JournalPane)
        await pilot.press("slash")
        for ch in "stop-loss":
            await pilot.press(ch if ch != "-" else "minus")
        await drain(app, pilot)
        # four of the five are older than the 50-row window: all are found, newest first
        assert shown_ids(journal) == ["t00290", "t00150", "t00077", "t00040", "t00003"]
        box = app.query_one("#journal-filter", Input)
        await pilot.press("escape")  # no filter, the latest window, the focus in the table
        await drain(app, pilot)
        assert not box.display and box.value == "" and app.focused is journal.table
        assert len(shown_ids(journal)) == JournalPane.WINDOW


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_a_filter_typed_fast_lands_in_the_box_not_on_the_keys(
    workdir: Path, size: tuple[int, int]
) -> None:
    """ "/kek" in one packet: the box took the focus after the keys behind "/" had gone to the
    table focused before, so `k` tripped the kill switch and `p` (in "/pepe") paused the
    engine, and the box stayed empty. The keys behind "/" are the box's; a "/" typed in the
    box is a character (BTC/USDT)."""
    write_trades(workdir, 60, {7: "kekpepe rug"})
    app, _ = make_app(workdir)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        await pilot.press("1")  # the focus in another pane's table
        await pilot.pause()
        await burst(app, "slash", *"kekpepe")
        await drain(app, pilot)
        box = app.query_one("#journal-filter", Input)
        assert box.value == "kekpepe" and app.focused is box
        assert app.risk_state == "ARMED" and app.engine_state == "running"
        assert shown_ids(app.query_one(JournalPane)) == ["t00007"]
        await pilot.press("escape")
        await drain(app, pilot)
        await burst(app, "slash", *"BTC", "slash", *"USDT")
        await drain(app, pilot)
        assert box.value == "BTC/USDT"
        assert len(shown_ids(app.query_one(JournalPane))) == JournalPane.WINDOW
        await pilot.press("escape")
        ticket = await open_ticket(app, pilot)  # in a dialog's field, "/" is typed too
        price = ticket.query_one("#price", Input)
        ticket.set_focus(price)
        await burst(app, "1", "slash", "2")
        await drain(app, pilot)
        assert price.value == "1/2" and app.screen is ticket


async def test_the_palette_lists_every_action_and_quit_asks_like_q(workdir: Path) -> None:
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        wanted_titles = ("Order", "Cancel", "Cancel all", "Close", "Kill switch: trip", "Pause")
        for wanted in (*wanted_titles, "Kill switch: reset"):
            assert wanted in titles
        assert titles.count("Quit") == 1  # ours, not Textual's quit-at-once
        await _fill_ticket(pilot, app, symbol="ETH/USDT", type="limit", price="3000", amount="12")
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert app.query_one(OrdersPane).orders
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        for ch in "Quit":
            await pilot.press(ch)
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "Quit with 1 open order?" in app.screen.question
        await pilot.press("escape")
        await pilot.pause()
        assert app.is_running
        await pilot.press("ctrl+q")  # Textual's own quit key asks the same question
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)


async def test_the_palette_shows_each_pane_by_its_name(workdir: Path) -> None:
    """Walked in tmux: the palette's one pane entry, ``Show a pane (1-9)``, showed pane 1
    only, and ``risk``, ``stats``, ``journal`` found nothing. Each pane is listed, by its
    number and name, and shows that pane as its key does."""
    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        for number, name in enumerate(PANES, start=1):
            await commands[f"Pane {number}: {name}"].callback()  # type: ignore[misc]
            await pilot.pause()
            assert app.query_one(f"#{name}").display, name  # at 80x24 one pane at a time
            shown = [p for p in PANES if app.query_one(f"#{p}").display]
            assert shown == [name], shown


async def test_the_palette_runs_the_kill_switch_like_k(workdir: Path) -> None:
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        # found as a trader types it: "trip", "kill", "switch"
        commands = list(app.get_system_commands(app.screen))
        for word in ("trip", "kill", "switch"):
            assert "Kill switch: trip" in [c.title for c in commands if word in c.title.lower()]
        [kill] = [c for c in commands if c.title == "Kill switch: trip"]
        await kill.callback()  # type: ignore[misc]
        await settle(app, pilot)
        assert app.risk_state == "TRIPPED"
        commands = list(app.get_system_commands(app.screen))
        [reset] = [c for c in commands if c.title == "Kill switch: reset"]
        await reset.callback()  # type: ignore[misc]
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)  # the same confirmation as K


async def test_k_trips_from_a_dialog_unless_a_text_field_has_the_focus(workdir: Path) -> None:
    """``k`` did nothing while a dialog was open. It now trips from a dialog whose focus takes
    no typing (the help, a confirmation, the ticket on a choice); in a text field it is a
    character, never a trip; ``ctrl+t`` trips from anywhere, a field focused too."""
    from kobe_tui.screens.help import HelpScreen

    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:

        async def reset() -> None:
            assert app.runtime is not None
            app.runtime.reset_kill_switch("test")
            await settle(app, pilot)
            assert app.risk_state != "TRIPPED"

        await settle(app, pilot)
        ticket = await _fill_ticket(pilot, app, symbol="ETH/USDT", amount="12")
        amount = ticket.query_one("#amount", Input)
        assert ticket.focused is amount
        await burst(app, "k")
        await settle(app, pilot)
        assert amount.value == "12k" and app.risk_state != "TRIPPED"  # typed, not a trip
        await burst(app, "ctrl+t")
        await settle(app, pilot)
        assert app.risk_state == "TRIPPED" and amount.value == "12k"
        assert app.screen is ticket  # the dialog stays, its fields as they were
        await reset()
        ticket.query_one("#symbol").focus()
        await pilot.pause()
        await burst(app, "k")  # on a choice: no typing there
        await settle(app, pilot)
        assert app.risk_state == "TRIPPED" and app.screen is ticket
        await pilot.press("escape")
        await reset()
        for opener, dialog in (("question_mark", HelpScreen), ("C", ConfirmScreen)):
            if opener == "C":  # a confirmation, about an open order
                await _fill_ticket(
                    pilot, app, symbol="ETH/USDT", type="limit", price="3000", amount="12"
                )
                await pilot.press("ctrl+s")
                await settle(app, pilot)
            await pilot.press(opener)
            await pilot.pause()
            assert isinstance(app.screen, dialog)
            await burst(app, "k")
            await settle(app, pilot)
            assert app.risk_state == "TRIPPED" and isinstance(app.screen, dialog)
            await pilot.press("escape")  # the dialog's own answer, still the safe one
            await settle(app, pilot)
            assert app.screen is app.screen_stack[0]
            await reset()
        assert app.query_one(OrdersPane).orders  # the confirmation was not answered by k


async def test_k_with_on_trip_flatten_trips_at_once_and_asks_only_about_the_flatten(
    workdir: Path,
) -> None:
    """As ``kobe risk trip`` does: the brake is never held back by a question; the question
    (asked once, also for "k k" in one packet) is whether to flatten too. No keeps the position
    and its exits; k asks again while that trip holds, and Flatten then closes it."""
    (workdir / "kobe.toml").write_text('[risk]\non_trip = "flatten"\n')
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        ticket = await _fill_ticket(pilot, app, symbol="ETH/USDT", amount="12")
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert app.runtime is not None
        assert ticket is not app.screen and len(app.runtime.positions()) == 1
        await burst(app, "k", "k")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmScreen) and len(app.screen_stack) == 2
        assert app.risk_state == "TRIPPED"  # before any answer
        assert app.runtime.risk_snapshot().reason.startswith("manual, not flattened")
        await pilot.press("enter")  # the default: Trip only
        await settle(app, pilot)
        assert app.screen is app.screen_stack[0] and len(app.runtime.positions()) == 1
        await pilot.press("k")  # the flatten can still be confirmed: k asks again
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(app, pilot)
        assert app.runtime.positions() == []  # flattened
        snap = app.runtime.risk_snapshot()
        assert snap.state.value == "TRIPPED" and snap.reason == "manual: tripped from the cockpit"


async def test_l_is_available_in_paper_and_says_what_live_needs(workdir: Path) -> None:
    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert app.check_action("unlock", ()) is True
        await pilot.press("L")
        await pilot.pause()
        alerts = app.query_one(AlertsPane).alerts
        assert "mode is paper, not live" in alerts[0][3]
        assert "ALLOW_LIVE is not 1" in alerts[0][3]


async def burst(app: KobeApp, *keys: str) -> None:
    """Keys handed to the app back to back, with no wait between them (as SSH bundles them)."""
    driver = app._driver
    assert driver is not None
    for key in keys:
        char = key if len(key) == 1 else {"slash": "/", "space": " "}.get(key)
        event = events.Key(key, char)
        event.set_sender(app)
        driver.send_message(event)


async def open_ticket(app: KobeApp, pilot: Any) -> OrderTicket:
    await settle(app, pilot)
    await pilot.press("n")
    await pilot.pause()
    ticket = app.screen
    assert isinstance(ticket, OrderTicket)
    return ticket


async def test_a_key_burst_lands_in_the_right_fields_of_the_ticket(workdir: Path) -> None:
    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        ticket = await open_ticket(app, pilot)
        # from the first field, in one packet: to the amount, erase "15", type 6, tab, the
        # stop-loss, tab, the take-profit (tab and the editing keys act on arrival)
        await burst(app, *["tab"] * 5, "backspace", "backspace", "6", "tab", *"93000")
        await burst(app, "tab", *"98000", "left", "left", "delete", "1")
        await drain(app, pilot)
        values: dict[str, Any] = {
            w: ticket.query_one(f"#{w}", Input).value for w in ("amount", "sl", "tp")
        }
        assert values == {"amount": "6", "sl": "93000", "tp": "98010"}


async def test_a_fields_line_editing_keys_act_on_arrival_in_a_burst(workdir: Path) -> None:
    """Walked in tmux: in the amount, ``ctrl+u 6 tab 93000 tab 97000`` in one packet left the
    take-profit empty: ctrl+u (erase the line) went round late and erased the field focused
    by then, the take-profit, with its 97000. The terminal's other line-editing keys (ctrl+w
    a word, ctrl+k to the end, ctrl+a / ctrl+e to the start / end) hit the wrong field alike."""
    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        ticket = await open_ticket(app, pilot)
        await burst(app, *["tab"] * 5, "ctrl+u", "6", "tab", *"93000", "tab", *"97000")
        await burst(app, "shift+tab", "ctrl+e", "ctrl+w", "1", "ctrl+a", "9", "tab")
        await burst(app, "shift+tab", "shift+tab", "ctrl+a", "ctrl+k", "7", "tab", "tab")
        await drain(app, pilot)
        values: dict[str, Any] = {
            w: ticket.query_one(f"#{w}", Input).value for w in ("amount", "sl", "tp")
        }
        assert values == {"amount": "7", "sl": "91", "tp": "97000"}


async def type_limit_order(
    app: KobeApp, pilot: Any, price: str, amount: str, sl: str, tp: str
) -> OrderTicket:
    """`n` and a limit buy typed right behind it, back to back (one SSH packet)."""
    await burst(app, "n", "tab", "tab", "right", "tab", *price, "tab", "tab")
    await burst(app, "backspace", "backspace", *amount, "tab", *sl, "tab", *tp)
    await drain(app, pilot)
    ticket = app.screen
    assert isinstance(ticket, OrderTicket)
    return ticket


async def test_the_keys_typed_right_behind_n_land_in_the_tickets_fields(workdir: Path) -> None:
    """`n` and the order typed behind it in one packet (a trader who knows the ticket): the
    keys went to the main screen while the ticket was being built (tab moved the pane, the
    digits showed panes 7, 6, 1 and 2), the ticket opened on its defaults (market, 15, no
    SL/TP), and ctrl+s placed a market order instead of the limit order typed."""
    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        ticket = await type_limit_order(app, pilot, "76000", "12", "70000", "90000")
        values = {
            w: ticket.query_one(f"#{w}", Input).value for w in ("price", "amount", "sl", "tp")
        }
        assert values == {"price": "76000", "amount": "12", "sl": "70000", "tp": "90000"}
        assert ticket.query_one("#type", Select).value == "limit"
        assert app.active_pane == 0  # no key reached the panes behind the ticket


async def test_the_ticket_with_its_longest_plan_fits_80x24(workdir: Path) -> None:
    """A limit order with SL and TP at 80x24: the plan's five lines (its first wrapped) pushed
    the ticket past the screen; it scrolled, and its last line (tab, ctrl+s, escape) was out
    of sight."""
    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        ticket = await type_limit_order(app, pilot, "90000", "12", "85000", "99000")
        for _ in range(50):  # the fields' last change, then its plan
            plan = str(ticket.query_one("#plan", Static).render())
            if plan.startswith("Plan:"):
                break
            await drain(app, pilot)
        assert "exits: TP 99000, SL 85000" in plan and "risk to stop-loss" in plan
        box = ticket.query_one("#ticket-box")
        assert box.max_scroll_y == 0
        hint = ticket.query_one(".hint", Static)
        assert hint.region.bottom <= 24 and hint.region.height == 1
        assert ticket.query_one("#place").region.bottom <= 24


async def test_the_keys_behind_an_e_that_opens_nothing_go_on_at_once(workdir: Path) -> None:
    """The keys typed behind `e` wait for its dialog; with no position selected it opens none
    and they go on, in their order: pane 4, then the filter's box with `kek` in it (a `k`
    there is a character, the kill switch stays armed)."""
    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await burst(app, "e", "4", "slash", *"kek")
        await drain(app, pilot)
        assert app.screen is app.screen_stack[0]
        assert app.active_pane == PANES.index("journal")
        assert app.query_one("#journal-filter", Input).value == "kek"
        assert app.risk_state == "ARMED"


def buy_eth_without_exits(cli: Any) -> None:
    """An ETH position bought from the CLI at market, 15 USDT, with no TP or SL."""
    r = cli(
        "trade", "--symbol", "ETH/USDT", "--side", "buy", "--type", "market", "--quote", "15",
        "--yes",
    )  # fmt: skip
    assert r.code == 0, r.err


async def test_the_new_exits_fields_say_which_is_which(workdir: Path, cli: Any) -> None:
    """The dialog's two fields had only their placeholders to name them: once typed in, nothing
    said which price was the TP and which the SL; and for a position with no exits the
    placeholders read `take-profit (now None)`."""
    from kobe_tui.screens.exits import ExitsScreen
    from kobe_tui.widgets.orders import PositionsPane

    buy_eth_without_exits(cli)
    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        await pilot.pause()
        assert app.query_one(PositionsPane).selected() is not None
        await burst(app, "e", *"3900", "tab", *"3000")
        await drain(app, pilot)
        dialog = app.screen
        assert isinstance(dialog, ExitsScreen)
        for field, name in (("tp", "take-profit"), ("sl", "stop-loss")):
            box = dialog.query_one(f"#{field}", Input)
            assert "None" not in str(box.placeholder) and box.value
            [label] = [w for w in dialog.query(Label) if str(w.render()) == name]
            assert label.region.y == box.region.y and label.region.right <= box.region.x


async def test_new_exits_the_market_has_passed_are_refused_not_fired(
    workdir: Path, cli: Any
) -> None:
    """`e` on a long ETH position at ~4,500 with TP 4400 and SL 4600 (typed the wrong way
    round): the exchange refused the OCO, but the local watchdog, covering with the new prices
    first, saw its take-profit touched and sold the position at market at once. Refused now,
    before anything moves: the position stays, with the exits it had."""
    import json

    from kobe_tui.screens.exits import ExitsScreen

    buy_eth_without_exits(cli)
    app, clock = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await ticks(app, pilot, clock, 1)
        assert app.runtime is not None
        [pos] = [p for p in app.runtime.positions() if not p.dust]
        price = app._last_prices["ETH/USDT"]
        wrong_tp, wrong_sl = int(price * Decimal("0.98")), int(price * Decimal("1.02"))
        await pilot.press("2")
        await burst(app, "e", *str(wrong_tp), "tab", *str(wrong_sl), "enter")
        await settle(app, pilot)
        assert not isinstance(app.screen, ExitsScreen)
        await ticks(app, pilot, clock, 2)
        held = [p for p in app.runtime.positions() if not p.dust]
        assert [p.entry_client_id for p in held] == [pos.entry_client_id]
        assert held[0].take_profit is None and held[0].stop_loss is None
        trades = workdir / "data" / "trades.jsonl"
        assert not trades.exists() or trades.read_text().strip() == ""
        watched = workdir / "data" / "watchdog.json"
        assert not watched.exists() or json.loads(watched.read_text())["items"] == []
        alert = app.query_one(AlertsPane).alerts[0][3]
        assert f"take-profit {wrong_tp} must be above the last price" in alert
        assert f"stop-loss {wrong_sl} must be below the last price" in alert
        assert "watchdog covers" not in alert


async def test_a_key_burst_lands_in_the_right_fields_of_the_new_exits(workdir: Path) -> None:
    """`e`, then "99000 tab 92000" in one packet: the new exits' dialog gave tab no priority,
    so the take-profit read 9900092000 and the stop-loss stayed empty."""
    from kobe_tui.screens.exits import ExitsScreen

    app, clock = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await ticks(app, pilot, clock, 60)  # the seeded session holds positions with exits
        await pilot.press("2")
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ExitsScreen)
        await burst(app, *"99000", "tab", *"92000", "backspace", "1")
        await drain(app, pilot)
        values = {w: dialog.query_one(f"#{w}", Input).value for w in ("tp", "sl")}
        assert values == {"tp": "99000", "sl": "92001"}
        await pilot.press("escape")
        await pilot.pause()
        # and typed right behind `e`, in the same packet: the keys went to the panes behind
        # (9 showed the stats pane) while the dialog was being built
        await burst(app, "e", *"99000", "tab", *"92000")
        await drain(app, pilot)
        dialog = app.screen
        assert isinstance(dialog, ExitsScreen)
        values = {w: dialog.query_one(f"#{w}", Input).value for w in ("tp", "sl")}
        assert values == {"tp": "99000", "sl": "92000"}
        assert app.active_pane == PANES.index("positions")


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_p_pauses_and_resumes_and_the_footer_says_which(
    workdir: Path, size: tuple[int, int]
) -> None:
    """`p` had no test; paused, the footer still offered `p Pause`."""
    from textual.widgets._footer import FooterKey

    app, clock = make_app(workdir)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)

        def offered() -> list[str]:
            return [k.description for k in app.query(FooterKey) if k.key == "p"]

        assert offered() == ["Pause"]
        await pilot.press("p")
        await ticks(app, pilot, clock, 1)
        assert app.runtime is not None and app.runtime.paused
        assert "engine: paused" in app.query_one(KobeHeader).item("engine-state")
        assert offered() == ["Resume"]
        await pilot.press("p")
        await ticks(app, pilot, clock, 1)
        assert not app.runtime.paused and app.engine_state == "running"
        assert offered() == ["Pause"]


async def test_the_mode_stays_in_sight_under_every_dialog(workdir: Path) -> None:
    """README: "Dialogs (order ticket, confirmations, unlock, help) leave the header's line in
    sight: the mode is always visible" (and the new exits), at 80x24."""
    from kobe_tui.screens.exits import ExitsScreen
    from kobe_tui.screens.help import HelpScreen
    from kobe_tui.screens.unlock import UnlockStep1, UnlockStep2
    from tests.test_cockpit import LIVE_ENV

    async def in_sight(app: KobeApp, pilot: Pilot[Any], dialog: type, mode: str) -> None:
        await settle(app, pilot, engine=False)
        assert isinstance(app.screen, dialog)
        boxes = list(app.screen.query(".modal-box, #help-box"))
        assert boxes and min(box.region.y for box in boxes) >= 1  # row 0 is the header's
        assert app.query_one(KobeHeader).item("mode").strip() == mode
        # centred as every dialog (the new exits sat against the left edge, over the pane's
        # border, walked in tmux)
        for box in boxes:
            left, right = box.region.x, app.size.width - box.region.right
            assert abs(left - right) <= 1, (dialog.__name__, left, right)

    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await _fill_ticket(pilot, app, symbol="BTC/USDT", amount="12", sl="90000", tp="99000")
        await in_sight(app, pilot, OrderTicket, "PAPER")
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        for keys, dialog in ((["question_mark"], HelpScreen), (["2", "e"], ExitsScreen)):
            await pilot.press(*keys)
            await in_sight(app, pilot, dialog, "PAPER")
            await pilot.press("escape")
        await pilot.press("k")
        await settle(app, pilot)
        await pilot.press("K")
        await in_sight(app, pilot, ConfirmScreen, "PAPER")
    (workdir / "live").mkdir()
    app, _ = make_app(workdir / "live", LIVE_ENV, balances={"USDT": Decimal(100)})
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("L")
        await in_sight(app, pilot, UnlockStep1, "LIVE — LOCKED")
        await pilot.click("#continue")
        await in_sight(app, pilot, UnlockStep2, "LIVE — LOCKED")


@asynccontextmanager
async def cockpit_on_testnet(
    workdir: Path,
    size: tuple[int, int],
    symbols: tuple[SymbolSpec, ...] = DEFAULT_SYMBOLS,
    balances: dict[str, Decimal] | None = None,
) -> AsyncIterator[tuple[KobeApp, Pilot[Any], SimClock, BinanceSim]]:
    """The cockpit in testnet against the Binance simulator, settled, after one tick; trading
    ``symbols`` (the simulator's markets) when they are not the shipped ones."""
    from tests.test_ccxt_contract import sim_env

    traded = [f"{s.base}/{s.quote}" for s in symbols]
    toml = "" if symbols == DEFAULT_SYMBOLS else f"symbols = {json.dumps(traded)}\n"
    (workdir / "kobe.toml").write_text(toml + "[exchange]\ntimeout_ms = 400\n")
    with BinanceSim(symbols=symbols, balances=balances) as sim:
        app, clock = make_app(workdir, sim_env(sim))
        async with app.run_test(size=size) as pilot:
            await settle(app, pilot)
            assert app.runtime is not None, app.engine_state
            await ticks(app, pilot, clock, 1)
            yield app, pilot, clock, sim


async def test_wallets_show_the_account_balances_as_the_exchange_states_them(
    workdir: Path,
) -> None:
    """After a testnet buy of 0.00015 BTC the account line still read ``BTC 1`` (rounded to
    4 decimals): what the trader bought never showed beside Kobe's ledger. Every decimal
    the exchange states is shown, and the figures are named for what they are (free)."""
    async with cockpit_on_testnet(workdir, (120, 40)) as (app, pilot, _clock, sim):
        sim.balances.update(BTC=Decimal("1.00000985"), USDT=Decimal("9985.75000"))
        app.read_exchange_balances()
        for _ in range(100):
            await pilot.pause(0.05)
            account = plain(app.query_one("#wallets-exchange", Static))
            if "9,985" in account or "9985" in account:
                break
        assert "free" in account
        assert "BTC 1.00000985" in account and "USDT 9,985.75" in account, account
        # at the pane's width each asset stays on one line with its figure (it read
        # "… SOL" then "0  USDT 9,985.75" on the next line)
        line = app.query_one("#wallets-exchange", Static)
        shown = plain(line, line.content_region.width).splitlines()
        for pair in ("BTC 1.00000985", "ETH 0", "SOL 0", "USDT 9,985.75"):
            assert any(pair in row for row in shown), shown


async def test_testnet_header_states_the_venue_and_wallets_show_the_account(
    workdir: Path,
) -> None:
    async with cockpit_on_testnet(workdir, (160, 50)) as (app, pilot, clock, sim):
        venue = app.query_one(KobeHeader).item("venue-state")
        assert "venue ok" in venue and "ms" in venue
        line = app.query_one("#wallets-exchange", Static)
        account = plain(line)
        assert "USDT 10,000" in account
        # whose and when, in the pane's bottom border (a line more for the wallets)
        assert str(app.query_one(WalletsPane).border_subtitle).startswith("binance account ")
        # under Kobe's ledger (it was above the table's header), its text in line with
        # the table's cells (it was against the pane's border)
        table = app.query_one(WalletsPane).table
        assert line.region.y >= table.region.bottom
        assert line.content_region.x == table.region.x + table.cell_padding
        sim.inject(status=503, body="Service Unavailable", times=1000)  # unreachable
        await ticks(app, pilot, clock, 1)
        venue = app.query_one(KobeHeader).item("venue-state")
        assert f"venue DOWN: since {clock():%H:%M}" in venue
        alerts = [a[3] for a in app.query_one(AlertsPane).alerts]
        assert any(a.startswith("binance: ") for a in alerts)
        assert not any("binance: binance:" in a for a in alerts)


async def test_r_counts_the_warnings_it_shows(workdir: Path) -> None:
    """Walked in tmux (live, locked): after ``r`` the pane showed ``warn  data dir private
    ./data can be read by other users`` while its title and the note said ``all checks
    pass``, and nothing more. They count the warnings now."""
    async with cockpit_on_testnet(workdir, (120, 40)) as (app, pilot, clock, _sim):
        (workdir / "data").chmod(0o755)  # readable by others: the check warns
        await pilot.press("r")
        await settle(app, pilot, engine=False)
        said = [n.message for n in app._notifications if "Health" in n.message]
        wanted = f"Health checked again at {clock():%H:%M:%S}: all checks pass, 1 warning"
        assert said == [wanted], said


async def test_a_cancel_the_exchange_refuses_says_which_cancel_failed(workdir: Path) -> None:
    """Walked in tmux with the exchange down: a confirmed cancel ended, half a minute later,
    in an alert reading only ``binance: network error (binance GET …/openOrders…)``, which
    never said that the cancel had failed, nor which order it was. It names both now."""
    async with cockpit_on_testnet(workdir, (120, 40)) as (app, pilot, _clock, sim):
        await _fill_ticket(pilot, app, symbol="BTC/USDT", type="limit", price="90000", amount="12")
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        [order] = app.query_one(OrdersPane).orders.values()
        refused = {"code": -1100, "msg": "Illegal characters found in a parameter."}
        sim.inject(status=400, body=refused, method="DELETE", path="/api/v3/order", times=10)
        await pilot.press("1", "c")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(app, pilot)
        [alert] = [a[3] for a in app.query_one(AlertsPane).alerts if "Illegal" in a[3]]
        assert alert.startswith(f"Cancel {order.exchange_id} failed: binance: "), alert
        assert order.client_id in app.query_one(OrdersPane).orders  # still open


async def test_the_ticket_says_at_once_that_sizing_waits_for_a_venue_that_is_down(
    workdir: Path,
) -> None:
    """With the exchange down the ticket showed a bare `sizing…` for 20 s (the plan needs a
    price and waits out the retries); it now says why at once, and the plan follows when the
    exchange answers again."""
    async with cockpit_on_testnet(workdir, (120, 40)) as (app, pilot, clock, sim):
        sim.inject(status=503, body="Service Unavailable", times=1000)
        await ticks(app, pilot, clock, 1)
        await pilot.press("n")
        await pilot.pause()
        ticket = app.screen
        assert isinstance(ticket, OrderTicket)
        await burst(app, *"12")  # the amount: a plan is asked for
        for _ in range(20):
            await pilot.pause()
        plan = str(ticket.query_one("#plan", Static).render())
        assert "sizing…" in plan
        assert f"binance is DOWN since {clock():%H:%M}: the plan needs its price" in plan
        with sim._lock:
            sim.faults.clear()  # the exchange is back: the plan comes
        for _ in range(600):
            await pilot.pause(0.05)
            plan = str(ticket.query_one("#plan", Static).render())
            if "sizing…" not in plan:
                break
        assert "Plan:" in plan and "DOWN" not in plan, plan


async def test_live_unlock_refuses_to_continue_when_balances_cannot_be_read(
    workdir: Path,
) -> None:
    from kobe_tui.screens.unlock import UnlockStep1, UnlockStep2
    from tests.test_cockpit import LIVE_ENV

    def unreadable(settings: object) -> dict[str, Decimal]:
        raise ConnectionError("binance: network error (connection refused)")

    app, _ = make_app(workdir, LIVE_ENV)
    app.balances_fetcher = unreadable
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("L")
        await settle(app, pilot, engine=False)
        step1 = app.screen
        assert isinstance(step1, UnlockStep1)
        text = str(step1.query_one("#unlock1-balances", Static).render())
        assert "could not be read" in text and "cannot be unlocked" in text
        assert step1.query_one("#continue").disabled
        # the engine has not run: the header showed no venue at all; it says what the read found
        venue = app.query_one(KobeHeader).item("venue-state")
        assert f"venue DOWN: since {app.clock():%H:%M}" in venue
        await pilot.click("#continue")
        await pilot.pause()
        assert not isinstance(app.screen, UnlockStep2) and app._locked()


async def test_orders_name_the_strategy_that_owns_them(workdir: Path) -> None:
    app, clock = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await ticks(app, pilot, clock, 60)  # before the fair market's losing streak trips
        orders = app.query_one(OrdersPane)
        strategy_orders = [k for k, e in orders.orders.items() if e.source == "strategy"]
        assert strategy_orders  # the seeded session leaves exits open
        owners = {str(orders._rows[k][-1]) for k in strategy_orders}
        assert owners <= {"memecoin_farming", "copy_trading"}, owners


async def test_a_stop_loss_leg_is_listed_at_its_trigger(workdir: Path) -> None:
    """The orders pane listed a stop-loss leg at its limit (0.5 % beyond the stop): a trader who
    set the stop at 93,000 read 92,535. It shows the trigger, the price the position's SL is."""
    from kobe_tui.widgets.formatting import px
    from kobe_tui.widgets.orders import PositionsPane

    app, clock = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await ticks(app, pilot, clock, 60)  # the seeded session leaves exits open
        orders = app.query_one(OrdersPane)
        positions = app.query_one(PositionsPane)
        stops = [e for e in orders.orders.values() if e.type == "stop_loss_limit"]
        assert stops
        for e in stops:
            position = positions.of_order(e.client_id)
            assert position is not None and position.stop_loss is not None
            assert e.price is not None and e.price != position.stop_loss  # its limit
            price = orders.row_cells(e.client_id)[5]
            assert str(price) == px(position.stop_loss)


async def test_questions_name_a_quantity_without_trailing_zeros(workdir: Path) -> None:
    """`x` asked "Close YOLPUM/USDC 87.66030000 (sniper_sol) at market?": the position book's
    quantity as stored, where the panes show 87.6603 (and `q` asked "Quit with 1 open
    orders?")."""
    from kobe_tui.screens.exits import ExitsScreen
    from kobe_tui.widgets.orders import PositionsPane

    app, clock = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await ticks(app, pilot, clock, 60)  # the seeded session holds positions
        pos = app.query_one(PositionsPane).selected()
        assert pos is not None and str(pos.qty).endswith("0")  # as the book stores it
        qty = str(pos.qty).rstrip("0").rstrip(".")
        await pilot.press("2", "x")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question.startswith(f"Close {pos.symbol} {qty} ({pos.wallet}) ")
        await pilot.press("escape", "e")
        await pilot.pause()
        assert isinstance(app.screen, ExitsScreen)
        assert app.screen.title_text == f"New exits for {pos.symbol} {qty} ({pos.wallet})"
        await pilot.press("escape", "C")  # and a count with its noun in the plural
        await pilot.pause()
        n = len(app.query_one(OrdersPane).orders)
        assert isinstance(app.screen, ConfirmScreen) and n > 1
        assert app.screen.question.startswith(f"Cancel all {n} open orders of Kobe's? ")


def risk_text(app: KobeApp, width: int = 200) -> str:
    """The risk pane's lines, as plain text, at ``width`` cells."""
    return plain(app.query_one("#risk-body", Static), width)


async def test_the_risk_pane_shows_each_figure_against_its_limit(workdir: Path) -> None:
    (workdir / "kobe.toml").write_text(
        "[risk]\nmax_losing_streak = 4\nmax_daily_loss_usd = 12\ncooldown_after_loss_s = 600\n"
    )
    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("k")
        await settle(app, pilot)
        await pilot.press("8")
        await pilot.pause()
        body = risk_text(app)
        assert "kill switch   TRIPPED  manual: tripped from the cockpit" in body
        assert "max 4" in body and "max 12.00" in body and "600 s after loss" in body
        assert "warn 10% max 20%" in body
        assert "profile       LIVE_150, capital 150" in body
        assert "cex_binance 30" in body  # the wallets' caps


async def test_the_stats_pane_shows_the_figures_of_kobe_stats(workdir: Path) -> None:
    """Pane 9 against ``kobe stats`` for the same data dir: in total, per strategy (``s``),
    per wallet (``w``) and for the last day; its title counts the trades in words (walked
    in tmux, one closed trade read ``1 trades``)."""
    from engine.stats import load_stats
    from kobe_tui.widgets.money import StatsPane

    write_trades(workdir, 1)
    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("9")
        await pilot.pause()
        pane = app.query_one(StatsPane)
        assert pane.border_subtitle == "1 trade"
        stats = load_stats(workdir / "data")
        day = max(stats.by_day)
        for key, figures in (
            ("all trades", stats.total),
            ("s manual", stats.by_strategy["manual"]),
            ("w cex_binance", stats.by_wallet["cex_binance"]),
            (str(day), stats.by_day[day]),
        ):
            shown = [str(c) for c in pane.row_cells(key)]
            assert shown == [key, "1", "100.0", "+0.10", "0.19", "0.10", "0.10"], shown
            assert (figures.trades, figures.pnl, figures.fees) == (
                1,
                Decimal("0.1"),
                Decimal("0.19"),
            )


async def test_the_risk_pane_at_160x50_wraps_under_the_values_never_a_figure(
    workdir: Path,
) -> None:
    """In the 160-column grid the drawdown's line wrapped: `peak` at its end and the peak's
    figure alone on the next line, under the names; the caps' line too. The peak has its own
    line; what is still too long wraps under the values (a reason takes one line, cut)."""
    app, clock = make_app(workdir)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(app, pilot)
        await ticks(app, pilot, clock, 1)  # a peak
        await pilot.press("k")  # a reason
        await settle(app, pilot)
        width = app.query_one("#risk-body", Static).content_size.width
        assert 40 < width < 56
        lines = risk_text(app, width).splitlines()
        names = ("kill switch", "drawdown", "losing streak", "today's loss", "cooldown")
        names += ("peak equity", "profile", "caps", "on trip")
        assert [line[:13].strip() for line in lines if line[:13].strip()] == list(names)
        for line in lines:  # a continuation starts under the values
            assert line[:13].strip() in names or line.startswith(" " * 14), line
        [drawdown] = [line for line in lines if line.startswith("drawdown")]
        assert drawdown.split()[1:] == ["0.00%", "warn", "10%", "max", "20%"]
        [peak] = [line for line in lines if line.startswith("peak equity")]
        assert peak.split()[2] == "150.00"
        assert len(lines) > len(names)  # something did wrap (the caps), under the values


@pytest.mark.parametrize("size", [(120, 40), (160, 50)], ids=["120x40", "160x50"])
async def test_a_long_kill_switch_reason_never_pushes_the_figures_out_of_the_risk_pane(
    workdir: Path, size: tuple[int, int]
) -> None:
    """An operator's reason of 350 characters (`kobe risk trip --reason`, with markup and
    escapes) wrapped over 14 lines of the risk pane: at 160x50 only the drawdown was left in
    sight, at 120x40 none of the figures. It takes one line, cut with …, shown literally;
    the alerts pane and `kobe risk status` give it whole."""
    app, _ = make_app(workdir)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        assert app.runtime is not None
        app.runtime.trip("[red]x[/] \x1b[31mRED\x1b[0m " + "very long reason " * 20, "cli")
        app.step(1)
        await settle(app, pilot)
        width = app.query_one("#risk-body", Static).content_size.width
        height = app.query_one("#risk-scroll").size.height
        seen = risk_text(app, width).splitlines()[:height]
        assert seen[0].startswith("kill switch   TRIPPED  [red]x[/] [31mRED[0m ")
        assert seen[0].rstrip().endswith("…") and len(seen[0].rstrip()) <= width
        assert [line[:13].strip() for line in seen[1:4]] == [
            "drawdown",
            "losing streak",
            "today's loss",
        ]


async def test_locked_live_shows_the_kill_switch_from_its_file(workdir: Path) -> None:
    from tests.test_cockpit import LIVE_ENV

    (workdir / "data").mkdir()
    (workdir / "data" / "execution_runtime.json").write_text("{damaged")
    app, _ = make_app(workdir, LIVE_ENV)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await drain(app, pilot)
        assert app.engine_state == "locked"
        header = app.query_one(KobeHeader)
        assert header.item("mode") == " LIVE — LOCKED " and header.item("risk-state") == " TRIPPED "
        body = risk_text(app)
        assert "execution_runtime.json unreadable" in body


async def test_the_price_strip_shows_each_traded_symbol_and_its_change(workdir: Path) -> None:
    from textual.widgets import Sparkline

    from kobe_tui.widgets.prices import PriceStrip

    app, clock = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await ticks(app, pilot, clock, 1)
        assert app.settings is not None
        symbols = list(app.settings.config.symbols)
        labels = [str(w.render()) for w in app.query(".px-label") if w.display]
        assert [x.split()[0] for x in labels[: len(symbols)]] == [s.split("/")[0] for s in symbols]
        btc = app._last_prices["BTC/USDT"]
        # a symbol's first price: its sparkline drew a full-height block, a jump that never was
        strip = app.query_one(PriceStrip)
        strip.show({"DOGE/USDT": Decimal("0.1")}, app.clock())
        await pilot.pause()
        assert "█" not in "".join(bars(app.query_one("#spark-doge-usdt", Sparkline), 6))
        app._show_prices({**app._last_prices, "BTC/USDT": btc * Decimal("1.01")})
        await pilot.pause()
        label = str(app.query_one("#px-btc-usdt", Static).render())
        assert label.endswith("+1.00%")
        assert len(app.query_one("#spark-btc-usdt", Sparkline).data or []) == 2
        # no price this tick (the venue down: its ticker failed): BTC left the strip while the
        # others stayed; it stays, with no price rather than its last one
        app._show_prices({s: p for s, p in app._last_prices.items() if s != "BTC/USDT"})
        await pilot.pause()
        label_widget = app.query_one("#px-btc-usdt", Static)
        assert str(label_widget.render()).split() == ["BTC", "—", "since", f"{clock():%H:%M}"]
        assert label_widget.display and not label_widget.has_class("-gone")
        assert len(app.query_one("#spark-btc-usdt", Sparkline).data or []) == 2
        app._show_prices({**app._last_prices, "BTC/USDT": btc})
        await pilot.pause()
        assert str(label_widget.render()).endswith("+0.00%")


async def test_a_change_that_rounds_to_zero_never_reads_as_a_loss(workdir: Path) -> None:
    """BTC a hair under its first price read `-0.00%` in red in the price strip; a uPnL or a
    day's PnL of -0.004 read `-0.00` (the header in red): a loss of nothing."""
    from kobe_tui.widgets.formatting import signed

    app, clock = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await ticks(app, pilot, clock, 1)
        btc = app._last_prices["BTC/USDT"]
        app._show_prices({**app._last_prices, "BTC/USDT": btc * Decimal("0.99999")})
        await pilot.pause()
        assert str(app.query_one("#px-btc-usdt", Static).render()).endswith("+0.00%")
        header = app.query_one(KobeHeader)
        header.set_money(Decimal("150"), Decimal("-0.004"))
        await pilot.pause()
        assert header.item("hdr-pnl") == " pnl +0.00 "
        assert signed(Decimal("-0.004")).plain == "+0.00"


async def test_with_the_exchange_down_no_price_in_the_strip_shows_as_live(workdir: Path) -> None:
    """Testnet with the exchange down: the configured symbols with no position kept their
    last price in the strip as if it were live, while a held one showed `—`. Now each, held
    or not, shows dimmed `—` and the time of its last price; the prices come back with the
    exchange."""
    async with cockpit_on_testnet(workdir, (120, 40)) as (app, pilot, clock, sim):
        await _fill_ticket(pilot, app, symbol="ETH/USDT", amount="20")
        await pilot.press("ctrl+s")
        await ticks(app, pilot, clock, 1)
        assert app.runtime is not None
        assert {p.symbol for p in app.runtime.positions()} == {"ETH/USDT"}  # held
        priced = f"{clock():%H:%M}"
        clock.advance(240)  # a later minute: the time shown is the last price's
        sim.inject(status=503, body="Service Unavailable", times=1000)
        await ticks(app, pilot, clock, 1)
        assert "venue DOWN" in app.query_one(KobeHeader).item("venue-state")

        def labels() -> dict[str, Text]:
            shown = {str(w.id): w.content for w in app.query(".px-label") if w.display}
            assert all(isinstance(t, Text) for t in shown.values())
            return shown  # type: ignore[return-value]

        binance = ("px-btc-usdt", "px-eth-usdt", "px-sol-usdt")  # (the paper DEX is up)
        shown = labels()
        for label in (shown[k] for k in binance):
            assert label.plain.split()[1:] == ["—", "since", priced], label.plain
            assert label.style == "dim"
        with sim._lock:
            sim.faults.clear()  # the exchange is back
        await ticks(app, pilot, clock, 1)
        shown = labels()
        for label in (shown[k] for k in binance):
            assert "—" not in label.plain and label.plain.rstrip().endswith("%")


async def test_a_moving_price_keeps_its_decimals_from_tick_to_tick(workdir: Path) -> None:
    """A price that moved from 94,976.30 to 94,998.18 read `94,976.3` then `94,998.18`: the
    strip and the positions' mark keep the trailing zeros, so the figure keeps its width."""
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        shown = []
        for price in ("94976.30", "94998.18", "95000", "178.2", "2.345678", "0.00002310"):
            app._show_prices({"BTC/USDT": Decimal(price)})
            await pilot.pause()
            shown.append(str(app.query_one("#px-btc-usdt", Static).render()).split()[1])
        assert shown == [
            "94,976.30",
            "94,998.18",
            "95,000.00",
            "178.200",
            "2.34568",
            "0.0000231000",
        ]


async def test_a_position_s_entry_shows_the_decimals_of_its_mark(workdir: Path) -> None:
    """An entry at 95,000 read `95,000` beside its mark `95,000.00` (and 95,134.70 read
    `95,134.7`): the entry takes the mark's format, so the two compare at a glance."""
    from engine.exchange.base import Side
    from engine.position import Position
    from kobe_tui.widgets.orders import PositionsPane

    app, clock = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        pane = app.query_one(PositionsPane)
        held = [
            Position(
                f"e{i}",
                "binance",
                "BTC/USDT",
                Side.BUY,
                Decimal("0.001"),
                Decimal(entry),
                Decimal("0.1"),
                "cex_binance",
                "",
                clock(),
                None,
                None,
                False,
            )
            for i, entry in enumerate(("95000", "95134.70"))
        ]
        pane.show(held)
        pane.mark({"BTC/USDT": Decimal("95100.5")})
        await pilot.pause()
        assert [str(pane.row_cells(f"e{i}")[3]) for i in (0, 1)] == ["95,000.00", "95,134.70"]
        assert str(pane.row_cells("e0")[4]) == "95,100.50"


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_help_shows_every_key_at_every_size(workdir: Path, size: tuple[int, int]) -> None:
    """At 80x24 the help was taller than the screen and could not scroll: its last rows (the
    rest of 1-9, escape, ctrl+p, which the 80-column footer leaves to the help) were cut."""
    from kobe_tui.screens.help import HelpScreen

    app, _ = make_app(workdir)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        box = app.screen.query_one("#help-box")
        assert box.region.y >= 1 and box.region.bottom <= size[1]  # the header stays in sight
        seen = ""
        for _ in range(10):  # what the screen shows, scrolling down with the keys
            seen += html.unescape(app.export_screenshot()).replace("\xa0", " ")
            await pilot.press("pagedown")
            await pilot.pause()
        seen += html.unescape(app.export_screenshot()).replace("\xa0", " ")
        for row in ("pagedown", "shift+tab", "1-9", "equity, risk", "escape", "ctrl+p", "ctrl+t"):
            assert row in seen
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_a_warning_repeated_every_tick_is_one_alert_line_with_its_count(
    workdir: Path,
) -> None:
    """With the exchange down the same warning came every tick, one line each: in a few minutes
    it was all the alerts pane showed. It is one line, with its count and its latest time."""
    from engine.runtime import AlertEvent, EngineEvent

    app, clock = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        pane = app.query_one(AlertsPane)
        pane.add(clock(), "critical", "kill_switch", "kill switch TRIPPED: test")
        down = AlertEvent("warning", "venue", "binance: network error (GET /api/v3/time)")
        for _ in range(3):  # as the engine sends it, between its ticks
            app._forward(EngineEvent("alert", down, clock()))
            await ticks(app, pilot, clock, 1)
        shown = [a for a in pane.alerts if a[2] == "venue"]
        assert len(shown) == 1 and shown[0][4] == 3 and shown[0][0] == clock()
        body = plain(app.query_one("#alerts-body", Static))
        assert body.count("binance: ") == 1 and "(3 times)" in body
        assert "kill switch TRIPPED: test" in body  # still in sight
        # a long line wraps under its message (it wrapped to the pane's edge, under the time)
        narrow = plain(app.query_one("#alerts-body", Static), 40).splitlines()
        assert narrow[0].startswith(f"{clock():%H:%M} WARNING  binance: ")
        assert narrow[1].startswith(" " * 15) and narrow[1].strip()
        app._forward(EngineEvent("alert", AlertEvent("info", "venue", "binance: back"), clock()))
        app._forward(EngineEvent("alert", down, clock()))
        await drain(app, pilot)
        assert [a[4] for a in pane.alerts if a[2] == "venue"] == [1, 1, 3]  # not back to back


async def test_the_risk_pane_shows_every_limit_at_120x40_and_scrolls_to_the_rest(
    workdir: Path,
) -> None:
    """At 120x40 the risk pane has six lines: the cooldown, the profile and the caps were below
    them, out of sight, and nothing scrolled to them."""
    (workdir / "kobe.toml").write_text("[risk]\ncooldown_after_loss_s = 600\n")
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("k")  # a reason: the kill switch's line wraps
        await settle(app, pilot)

        def screen() -> str:
            return html.unescape(app.export_screenshot()).replace("\xa0", " ")

        shown = screen()
        for row in ("TRIPPED", "drawdown", "max 20%", "losing streak", "today's loss"):
            assert row in shown
        assert "600 s after loss" in shown  # the cooldown against its limit
        await pilot.press("8")
        await pilot.press("end")
        await pilot.pause()
        shown = screen()
        assert "LIVE_150, capital 150" in shown and "cex_okx 15" in shown


async def test_the_equity_pane_states_its_time_span(workdir: Path) -> None:
    """It said "(2 ticks)" after nine minutes: equal points in a row are kept once, and the
    count of points was shown as if it were the session's length."""
    app, clock = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        first = clock()  # the first point: the wallets before the engine's first tick
        await ticks(app, pilot, clock, 9)
        line = str(app.query_one("#equity-range", Static).render())
        assert "over 9 min" in line and first < clock()
        assert "ticks" not in line


def bars(line: Sparkline, width: int = 12) -> list[str]:
    """The rows Textual's Sparkline draws for the line's data and summary, top row first."""
    renderable = SparklineRenderable(
        line.data or [], width=width, height=2, summary_function=line.summary_function
    )
    console = Console(width=width, color_system=None)
    with console.capture() as out:
        console.print(renderable)
    return out.get().splitlines()


async def test_the_equity_line_is_on_a_sensible_scale(workdir: Path) -> None:
    """A 0.04 USDT drop on 1,000 was drawn as a full-height cliff: the Sparkline stretches its
    data's low..high over its height. The line is now at least 1 % of equity tall, centred."""
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        pane = app.query_one(EquityPane)
        line = pane.query_one(Sparkline)
        pane.points.clear()
        for equity in ("1000.00", "1000.00", "999.96", "999.96"):
            pane.add(Decimal(equity))
        small = bars(line)
        assert small[0].strip() == ""  # nothing reaches the top row: no cliff
        assert len(set(small[1])) == 1  # the drop is below one step of the bottom row
        pane.points.clear()
        for equity in ("1000", "1000", "950", "950"):  # a real 5 % drop still shows, in full
            pane.add(Decimal(equity))
        big = bars(line)
        assert big[0].startswith("████") and big[0].endswith("    ")  # top of the scale, then
        assert big[1].endswith("▁▁▁▁")  # its bottom
        pane.points.clear()
        pane.add(Decimal("1000"))  # a lone point: a level line, not a full-height block
        assert bars(line)[0].strip() == ""


async def test_a_key_burst_changes_a_choice_with_the_arrows(workdir: Path) -> None:
    """A choice (symbol, side, type, size, wallet) opened a list on enter, mounted later: in a
    burst, the down and enter behind it were lost and a limit order stayed a market one. Left
    and right change the choice on arrival, like the editing keys."""
    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        ticket = await open_ticket(app, pilot)
        # side: sell, then buy again; type: limit; the price in its field
        await burst(app, "tab", "right", "right", "left", "tab", "right", "tab", *"95000")
        await drain(app, pilot)
        values = {w: str(ticket.query_one(f"#{w}").value) for w in ("side", "type", "price")}
        assert values == {"side": "sell", "type": "limit", "price": "95000"}


@pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=["80x24", "160x50"])
async def test_each_digit_shows_its_pane(workdir: Path, size: tuple[int, int]) -> None:
    """README: "`1`–`9` ... show a pane ..., at every size": 1 open orders, 2 positions, 3
    wallets, 4 trades journal, 5 alerts, 6 health, 7 equity, 8 risk, 9 stats. At 80x24 the pane
    shown is that one alone."""
    listed = ["orders", "positions", "wallets", "journal", "alerts", "health", "equity", "risk"]
    assert list(PANES) == [*listed, "stats"]
    app, _ = make_app(workdir)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        for digit in "987654321":
            await pilot.press(digit)
            await pilot.pause()
            assert app.active_pane == int(digit) - 1, digit
            if size == (80, 24):
                shown = [p for p in PANES if app.query_one(f"#{p}").display]
                assert shown == [PANES[int(digit) - 1]], digit


async def test_x_closes_the_selected_position_at_market_after_cancelling_its_exits(
    workdir: Path,
) -> None:
    """README: "`x` | close the selected position at market (its TP/SL are cancelled first),
    confirmed": No keeps it; Yes cancels both legs of its OCO, then sells at market."""
    from kobe_tui.widgets.orders import PositionsPane
    from tests.test_cockpit import journal_events

    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await _buy_with_oco(pilot, app)
        pos = app.query_one(PositionsPane).selected()
        assert pos is not None and len(app.query_one(OrdersPane).orders) == 2
        await pilot.press("2", "x")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")  # No: nothing moves
        await settle(app, pilot)
        assert len(app.query_one(OrdersPane).orders) == 2
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("y")
        await settle(app, pilot)
        cid = pos.entry_client_id
        sent = [(e["client_id"], e["event"]) for e in journal_events(workdir)]
        cancels = [i for i, (c, ev) in enumerate(sent) if ev == "cancel" and c != f"{cid}cx"]
        close = sent.index((f"{cid}cx", "intent"))
        assert sorted(sent[i][0] for i in cancels) == [f"{cid}sl", f"{cid}tp"]
        assert max(cancels) < close  # the exits went first
        assert (f"{cid}cx", "fill") in sent
        assert app.query_one(OrdersPane).orders == {}
        assert not [p for p in app.query_one(PositionsPane).positions if p.protection != "dust"]


async def test_the_ticket_starts_with_the_configured_quote_amount(workdir: Path) -> None:
    """kobe.toml's `router.default_quote_usd` was accepted and read nowhere: the ticket always
    started at 15. It is the amount the ticket starts with, and the plan is sized on it."""
    (workdir / "kobe.toml").write_text("[router]\ndefault_quote_usd = 12.5\n")
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("n")
        await pilot.pause()
        ticket = app.screen
        assert isinstance(ticket, OrderTicket)
        assert ticket.query_one("#amount", Input).value == "12.5"
        await drain(app, pilot)
        assert ticket.proposal is not None and ticket.proposal.amount == Decimal("12.5")


async def test_the_readme_key_table_is_the_keys_help_lists(workdir: Path) -> None:
    """README, "The cockpit": the key table names every key `?` lists, and `?` every key of the
    table (escape, the safe answer of every dialog, is the help's own row)."""
    from kobe_tui.screens.help import HelpScreen
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    table = readme.split("\n| key | action |\n|---|---|\n", 1)[1].split("\n\n", 1)[0]
    first_cells = [row.split(" | ", 1)[0].replace("`1`–`9`", "`1-9`") for row in table.splitlines()]
    documented = {key for cell in first_cells for key in re.findall(r"`([^`]+)`", cell)}
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        listed = {key for key, _ in app.screen.rows}
    assert len(documented) == 20 and documented == listed - {"escape"}
