"""Layout rules: columns from content and width (money never cut, free text ends in …), the
header's order of importance at 80 columns, the footer's available actions, the log file."""

from __future__ import annotations

import html
import logging
import logging.handlers
import re
from fnmatch import fnmatch
from pathlib import Path

import pytest
from rich.text import Text

from engine.logsetup import setup_logging
from kobe_tui.app import log_to_file
from kobe_tui.widgets.columns import Col, fit_columns, fit_rows
from kobe_tui.widgets.header import ORDER, KobeHeader
from kobe_tui.widgets.journal import JournalPane
from kobe_tui.widgets.pane import TablePane
from tests.cockpit_support import make_app, settle, ticks
from tests.test_cockpit_keys import write_trades
from tests.test_data_files import _readme_table

COLS = (
    Col("time", "time", keep=2),
    Col("symbol", "symbol"),
    Col("price", "price"),
    Col("reason", "reason", keep=5, text=True),
)


def test_columns_fit_by_priority_and_text_gives_way_first() -> None:
    content = [5, 8, 9, 40]
    assert fit_columns(COLS, content, 200) == [5, 8, 9, 40]
    # 5+8+9 (+2 each) = 28: the text gets what is left
    assert fit_columns(COLS, content, 50) == [5, 8, 9, 20]
    # too narrow for time + text at its minimum: time (keep 2) goes before the text (keep 5)
    assert fit_columns(COLS, content, 34) == [None, 8, 9, 11]
    # narrower still: the text goes too; prices and symbols never get cut
    assert fit_columns(COLS, content, 20) == [None, 8, 9, None]


def test_an_optional_column_takes_no_room_until_a_row_fills_it() -> None:
    cols = (*COLS[:3], Col("protects", "protects", keep=6, optional=True))
    # nothing to show yet (content 0): left out, so time keeps its place at 32 cells
    assert fit_columns(cols, [5, 8, 9, 0], 32) == [5, 8, 9, None]
    # filled: it outranks time (keep 2), which gives way
    assert fit_columns(cols, [5, 8, 9, 17], 42) == [None, 8, 9, 17]


def test_rows_take_two_lines_only_when_the_kept_columns_do_not_fit_on_one() -> None:
    cols = (
        Col("wallet", "wallet", keep=2, text=True, under="symbol"),
        Col("symbol", "symbol"),
        Col("entry", "entry"),
        Col("mark", "mark", keep=3, under="entry"),
        Col("tp", "TP"),
        Col("sl", "SL", under="tp"),
    )
    content = [11, 8, 9, 9, 6, 6]
    # room for all: one line
    assert fit_rows(cols, content, 70) == ([11, 8, 9, 9, 6, 6], False)
    # the wallet and the mark give way; the prices that stay still fit on one line
    assert fit_rows(cols, content, 37) == ([None, 8, 9, None, 6, 6], False)
    # 36 cells: the SL would be cut; two lines, each column below its own, nothing left out
    # (the wallet, free text, is cut to the symbol's width)
    assert fit_rows(cols, content, 36) == ([None, 8, 9, None, 6, None], True)
    # free text below its column widens it up to its ``least`` where the kept columns still
    # fit on two lines so (the orders pane's owner under the symbol), else it is cut to it
    owner = (
        Col("symbol", "symbol"),
        Col("price", "price"),
        Col("owner", "owner", text=True, least=16, under="symbol"),
    )
    assert fit_rows(owner, [9, 12, 16], 38) == ([16, 12, None], True)
    assert fit_rows(owner, [9, 12, 16], 31) == ([9, 12, None], True)
    # columns with nothing under them never take two lines
    assert fit_rows(COLS, [5, 8, 9, 40], 10) == (fit_columns(COLS, [5, 8, 9, 40], 10), False)


async def test_no_money_column_is_cut_at_120x40(workdir: Path) -> None:
    write_trades(workdir, 60, {59: "stop-loss: price fell through the stop while the feed lagged"})
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        journal = app.query_one(JournalPane)
        table = journal.table
        shown = {str(c.key.value): c for c in table.columns.values()}
        assert {"time", "pair", "pnl", "reason"} <= set(shown)
        for key, column in shown.items():
            if key != "reason":
                assert column.width >= column.content_width, key  # whole, never cut
        reason = str(table.get_cell_at((0, len(shown) - 1)))
        assert reason.startswith("stop-loss")
        lines = app.export_screenshot()
        assert "…" in lines  # the long reason was cut with an ellipsis, not the money


async def test_a_row_that_is_gone_no_longer_widens_its_columns(workdir: Path) -> None:
    """A market entry shows for a moment ("market", "sending") and fills: its cells kept the
    columns wide after its row was gone, and at 120x40 that pushed "protects" out of the orders
    pane for the rest of the session, with room to spare (now it is never left out: the
    entry's wider cells widen the columns, until it is gone)."""
    from kobe_tui.widgets.orders import OrdersPane

    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        orders = app.query_one(OrdersPane)

        def shown() -> list[tuple[str, int]]:
            return [(str(c.label), c.width) for c in orders.table.columns.values()]

        leg = ("12:00", "BTC/USDT", "SELL", "SL", "0.0002", "93,000", "0", "open")
        orders.upsert("leg", (*leg, "long @ 95,023.92", "cockpit"))
        await pilot.pause()
        before = shown()
        assert ("price\nprotects", len("long @ 95,023.92")) in before
        entry = ("12:00", "BTC/USDT", "BUY", "market", "0.00021", "95,000", "0", "sending")
        orders.upsert("entry", (*entry, "", "cockpit"))
        await pilot.pause()
        assert shown() != before  # wider for the entry's cells
        orders.drop("entry")
        await pilot.pause()
        assert shown() == before


async def test_header_keeps_the_most_important_items_at_80_columns(workdir: Path) -> None:
    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        header = app.query_one(KobeHeader)
        header.set_unprotected(2)
        header.set_venue("degraded", "binance: 429 too many requests, retry in 10 s", 812)
        header.set_engine("stopped (locked)")
        await pilot.pause()
        shown = [k for k in ORDER if header.item(k)]
        assert shown[:4] == ["mode", "risk-state", "unprotected", "venue-state"]
        assert shown == list(ORDER[: len(shown)])  # what drops, drops from the end
        assert header.item("venue-state") == " venue degraded 812ms "  # its short form
        assert "UNPROTECTED 2" in header.item("unprotected")
        line = str(header.render())
        assert len(line) <= 80 and line.startswith(" PAPER  ARMED  UNPROTECTED 2 ")
        header.set_unprotected(0)
        await pilot.pause()
        assert header.item("unprotected") == "" and "UNPROTECTED" not in str(header.render())


async def test_footer_at_80_columns_shows_what_can_be_done_now(workdir: Path) -> None:
    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        footer_keys = [k.key for k in app.query("FooterKey")]
        assert footer_keys[:3] == ["n", "k", "p"]  # nothing to cancel or close: not offered
        assert {"q", "question_mark", "L"} <= set(footer_keys)
        assert "K" not in footer_keys


async def test_the_footer_follows_the_terminal_when_it_is_resized(workdir: Path) -> None:
    """Resized from 80 to 120 columns, the footer left out `^p palette`; back at 80 it showed
    it, crowding the actions: it followed the size before the resize (the app's size is
    updated after its resize handler)."""
    from kobe_tui.widgets.footer import KobeFooter

    app, _ = make_app(workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        footer = app.query_one(KobeFooter)
        for width, palette in ((120, True), (160, True), (80, False), (120, True)):
            await pilot.resize_terminal(width, 40)
            await pilot.pause()
            assert footer.show_command_palette is palette, width
            shown = [k.has_class("-command-palette") for k in app.query("FooterKey")]
            assert any(shown) is palette, width


@pytest.mark.parametrize("width", [80, 120])
async def test_the_footer_shows_whole_keys_only_the_ones_available_now_first(
    workdir: Path, width: int
) -> None:
    """At 80 columns with orders and positions open, Textual's footer cropped its row at the
    edge: the last key read `C` without its label (`Cancel all`). Keys that do not fit are left
    out whole, from the end; cancel-all comes right after cancel."""
    from textual.widgets._footer import FooterKey

    from kobe_tui.widgets.footer import key_width

    app, clock = make_app(workdir)
    async with app.run_test(size=(width, 24)) as pilot:
        await settle(app, pilot)
        await ticks(app, pilot, clock, 60)  # the seeded session holds positions with exits
        assert app._targets == (True, True)
        await pilot.pause()
        keys = [k for k in app.query(FooterKey) if not k.has_class("-command-palette")]
        shown = [k.key for k in keys]
        assert shown[:6] == ["n", "c", "C", "x", "e", "k"]
        for key in keys:
            assert key.region.right <= width, key.key  # none runs past the screen's edge
            assert key.region.width == key_width(key) - 1  # each whole: key, space, label
        line = app.export_screenshot()
        assert "Cancel all" in html.unescape(line).replace("\xa0", " ")
        if width == 80:
            assert len(shown) < len([b for b in app.BINDINGS if getattr(b, "show", True)])
        else:  # greyed, never left out: everything fits, and so does ctrl+p
            assert shown[-1] == "slash" and app.query(".-command-palette")


def test_a_failing_calls_retries_every_tick_collapse_into_one_line(tmp_path: Path) -> None:
    """During an outage each tick wrote the same five lines (four retries, then giving up);
    they differ by the retry's count and pause, so nothing collapsed: 350 KB an hour."""
    try:
        log_to_file(tmp_path)
        log = logging.getLogger("engine.exchange.retry")
        log.warning("binance: starting")
        for tick in range(20):
            for n in range(1, 5):
                log.warning("binance: fetch_ticker: 503; retry %d of 4 in %.3fs", n, n * 0.5 + tick)
            log.warning("binance: fetch_ticker: giving up: 503")
        log.warning("binance: fetch_ticker: 503; retry 1 of 4 in 0.500s")  # a round cut short
        log.warning("binance: back")
        lines = (tmp_path / "logs" / "cockpit.log").read_text().splitlines()
        assert len(lines) == 1 + 5 + 1 + 2, lines  # the first round whole, then its count
        assert "retry 1 of 4 in 0.500s" in lines[1] and "retry 4 of 4" in lines[4]
        assert lines[6].endswith("giving up: 503 (the last 5 lines repeated 19 times)")
        assert "retry 1 of 4" in lines[7] and lines[8].endswith("binance: back")
    finally:
        setup_logging(logging.WARNING)


def test_the_cockpit_logs_to_a_rotating_file_and_repeats_collapse(tmp_path: Path) -> None:
    try:
        log_to_file(tmp_path)
        log = logging.getLogger("engine.exchange.retry")
        for _ in range(50):
            log.warning("binance: network error (connection refused)")
        log.warning("binance: back")
        text = (tmp_path / "logs" / "cockpit.log").read_text()
        lines = text.splitlines()
        assert len(lines) == 3, lines
        assert "(repeated 49 times)" in lines[1] and "back" in lines[2]
        log.warning("binance: down again")
        log.warning("binance: down again")  # a line said twice: "repeated once", not "1 times"
        log.warning("binance: back")
        lines = (tmp_path / "logs" / "cockpit.log").read_text().splitlines()
        assert lines[-1].endswith("binance: down again (repeated once)"), lines
        [ours] = [h for h in logging.getLogger().handlers if hasattr(h, "target")]
        rotating = ours.target  # type: ignore[attr-defined]
        assert isinstance(rotating, logging.handlers.RotatingFileHandler)
        assert (rotating.maxBytes, rotating.backupCount) == (5_000_000, 3)
        rotating.doRollover()  # README's "Data files" table names the log and its old files
        named = [n for row in _readme_table() for n in re.findall(r"`([^`]+)`", row[0])]
        written = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()]
        assert written == ["logs/cockpit.log.1"], written  # the new one opens at its next line
        written.append("logs/cockpit.log")
        assert all(any(fnmatch(f, n) for n in named) for f in written), (written, named)
    finally:
        setup_logging(logging.WARNING)


def test_a_16_colour_terminal_gets_the_ansi_theme(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from textual import constants

    from kobe_tui.app import KobeApp

    monkeypatch.setattr(constants, "COLOR_SYSTEM", "standard")
    assert KobeApp(env={}, cwd=workdir).theme == "ansi-dark"
    monkeypatch.setattr(constants, "COLOR_SYSTEM", "256")
    app = KobeApp(env={}, cwd=workdir)
    assert app.theme == "textual-dark"
    assert app.animation_level == "none"  # README: "runs no animation" (bandwidth over SSH)


def test_16_colours_with_no_color_get_a_theme_that_has_greys(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TERM=xterm-16color with NO_COLOR: NO_COLOR's greys are made from the theme's RGB colours;
    the ANSI theme's have none, and in tmux every text (the mode too) came out black on black."""
    from textual import constants

    from kobe_tui.app import KobeApp

    monkeypatch.setattr(constants, "COLOR_SYSTEM", "standard")
    monkeypatch.setenv("NO_COLOR", "1")
    app = KobeApp(env={}, cwd=workdir)
    assert app.no_color and app.theme == "textual-dark"


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_a_long_health_detail_ends_in_an_ellipsis(
    workdir: Path, size: tuple[int, int]
) -> None:
    """The health pane's detail ran on behind a horizontal scrollbar, cut with no sign."""
    from engine.health import Check
    from kobe_tui.widgets.health import HealthPane

    app, _ = make_app(workdir)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        await pilot.press("6")
        pane = app.query_one(HealthPane)
        long = "binance: BINANCE_KEY, BINANCE_SECRET present; " + "x" * 200 + " END"
        pane.show_checks(
            [Check("keys present", True, long), Check("a much longer check name", True, "ok")]
        )
        await pilot.pause()
        assert not pane.show_horizontal_scrollbar
        assert pane.virtual_size.width <= pane.size.width
        screen = html.unescape(app.export_screenshot()).replace("\xa0", " ")
        assert "binance: BINANCE_KEY" in screen and "…" in screen and "END" not in screen
        widths = {str(c.key.value): c.width for c in pane.columns.values()}
        assert widths["name"] >= len("a much longer check name")  # names whole
        assert str(pane.get_row("keys present")[2]) == long  # the whole text is kept


def shown_whole(pane: TablePane) -> dict[str, str]:
    """A table pane's columns on screen, by key in screen order (in two-line rows, a column then
    the one under it), with the first row's cell; every column but free text whole, and the
    table no wider than its pane (nothing past its edge)."""
    table = pane.table
    assert table.virtual_size.width <= table.scrollable_content_region.width, pane.id
    two = table.header_height == 2
    first = None
    if table.row_count:
        first = pane.row_cells(str(table.coordinate_to_cell_key((0, 0)).row_key.value))
    shown = {}
    for key, column in table.columns.items():
        stack = [c for c in pane.COLUMNS if c.key == key.value]
        stack += [c for c in pane.COLUMNS if two and c.under == key.value]
        for col in stack:
            cell = first[pane.COLUMNS.index(col)] if first is not None else Text(col.label)
            if not col.text:
                assert column.width >= max(cell.cell_len, len(col.label)), (pane.id, col.key)
            shown[col.key] = cell.plain if first is not None else ""
    return shown


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (160, 50)], ids=["80", "120", "160"])
async def test_a_positions_entry_tp_and_sl_show_whole_at_every_width(
    workdir: Path, size: tuple[int, int]
) -> None:
    """At 120 and 160 columns the positions pane left out its TP / SL first: the prices that
    say what protects a position; then, at 160 columns (a third of the screen), its entry
    price. Symbol, quantity, entry, uPnL, TP and SL are never left out now: where they do not
    fit on one line, each row takes two (the wallet under the symbol, the uPnL under the
    quantity, the mark under the entry, the SL under the TP), and nothing gives way. No price
    in the orders or journal panes is cut."""
    from kobe_tui.widgets.formatting import px
    from kobe_tui.widgets.orders import OrdersPane, PositionsPane
    from tests.test_cockpit import _fill_ticket

    write_trades(workdir, 3, {2: "take-profit: the target was reached after a long wait"})
    app, clock = make_app(workdir)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        await _fill_ticket(pilot, app, symbol="BTC/USDT", sl="93000", tp="98000")
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        await ticks(app, pilot, clock, 1)  # a mark and a uPnL, as wide as a trader sees them
        for number, pane_type in (("2", PositionsPane), ("1", OrdersPane), ("4", JournalPane)):
            await pilot.press(number)  # at 80 columns, the pane shown
            await pilot.pause()
            shown = shown_whole(app.query_one(pane_type))
            if pane_type is PositionsPane:
                positions = app.query_one(PositionsPane)
                (position,) = positions.positions.values()
                assert shown["entry"] == px(position.entry_price, fixed=True) != "—"
                assert shown["tp"] == "98,000" and shown["sl"] == "93,000"
                assert shown["upnl"][0] in "+-" and shown["qty"] == px(position.qty)
                one_line = ["wallet", "symbol", "qty", "entry", "mark", "upnl", "tp", "sl"]
                two_lines = ["symbol", "wallet", "qty", "upnl", "entry", "mark", "tp", "sl"]
                expected = {
                    80: one_line,
                    120: [k for k in one_line if k not in ("wallet", "mark")],
                    160: two_lines,
                }
                assert list(shown) == expected[size[0]]
                table = positions.table
                rows = 2 if size[0] == 160 else 1
                assert table.header_height == rows
                assert [r.height for r in table.rows.values()] == [rows]
            if pane_type is OrdersPane:
                assert {"symbol", "side", "qty", "price"} <= set(shown)
            if pane_type is JournalPane:
                assert {"time", "pair", "pnl"} <= set(shown)


async def test_the_header_shows_the_mode_as_a_word_and_a_colour(workdir: Path) -> None:
    """README: "the mode as a word and a colour (`PAPER` green, `TESTNET` amber, `LIVE —
    LOCKED` amber, `LIVE` red)"."""
    from engine.bootstrap import Mode
    from kobe_tui.widgets.header import KobeHeader
    from tests.cockpit_support import make_app, settle
    from tests.conftest import ROOT

    readme = " ".join((ROOT / "README.md").read_text().split())
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        header = app.query_one(KobeHeader)
        for mode, locked, word, colour, named in (
            (Mode.PAPER, False, "PAPER", "on green", "green"),
            (Mode.TESTNET, False, "TESTNET", "on yellow", "amber"),
            (Mode.LIVE, True, "LIVE — LOCKED", "on yellow", "amber"),
            (Mode.LIVE, False, "LIVE", "on red", "red"),
        ):
            assert f"`{word}` {named}" in readme
            header.set_mode(mode, "binance", live_locked=locked)
            assert header.item("mode").strip() == word
            assert header.styles_of["mode"].endswith(colour), word
