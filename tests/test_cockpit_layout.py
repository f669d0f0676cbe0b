"""Layout rules: columns from content and width (money never cut, free text ends in …), the
header's order of importance at 80 columns, the footer's available actions, the log file."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

import pytest

from engine.logsetup import setup_logging
from kobe_tui.app import log_to_file
from kobe_tui.widgets.columns import Col, fit_columns
from kobe_tui.widgets.header import ORDER, KobeHeader
from kobe_tui.widgets.journal import JournalPane
from tests.cockpit_support import make_app, settle
from tests.test_cockpit_keys import write_trades

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
        [ours] = [h for h in logging.getLogger().handlers if hasattr(h, "target")]
        rotating = ours.target  # type: ignore[attr-defined]
        assert isinstance(rotating, logging.handlers.RotatingFileHandler)
        assert (rotating.maxBytes, rotating.backupCount) == (5_000_000, 3)
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
    assert KobeApp(env={}, cwd=workdir).theme == "textual-dark"


@pytest.mark.parametrize("width", [80, 120])
async def test_the_price_strip_draws_sparklines_from_120_columns(workdir: Path, width: int) -> None:
    from textual.widgets import Sparkline

    from tests.cockpit_support import ticks

    app, clock = make_app(workdir)
    async with app.run_test(size=(width, 24)) as pilot:
        await settle(app, pilot)
        await ticks(app, pilot, clock, 3)
        sparks = [s for s in app.query("#prices Sparkline") if isinstance(s, Sparkline)]
        assert len(sparks) == 3
        assert all(s.display == (width >= 120) for s in sparks)  # at 80: the prices have the room
        strip = app.export_screenshot()
        assert "BTC" in strip and "ETH" in strip and "SOL" in strip


@pytest.mark.parametrize("width", [80, 120])
async def test_the_price_strip_leaves_out_whole_prices_that_do_not_fit(
    workdir: Path, width: int
) -> None:
    from decimal import Decimal

    from textual.widgets import Static

    from kobe_tui.widgets.prices import PriceStrip

    app, _ = make_app(workdir)
    async with app.run_test(size=(width, 24)) as pilot:
        await settle(app, pilot)
        held = {"DOGMEW/USDC": Decimal("0.000104208"), "WIF/USDC": Decimal("2.15")}
        prices = {"BTC/USDT": Decimal("94918.67"), "ETH/USDT": Decimal("3429.63"), **held}
        strip = app.query_one(PriceStrip)
        strip.show({**prices, "SOL/USDT": Decimal("177.49")})
        await pilot.pause()
        labels = [w for w in strip.query(".px-label") if isinstance(w, Static) and w.display]
        assert labels[0].region.x == 0 and len(labels) >= 3
        for label in labels:  # shown whole, or not at all: never a price cut at the edge
            assert label.region.right <= width, str(label.render())
        line = app.export_screenshot()
        assert "+0.00%" in line
        strip.show({"BTC/USDT": Decimal("94918.67")})  # fewer symbols: the first is back whole
        await pilot.pause()
        assert [str(w.render()).split()[0] for w in strip.query(".px-label") if w.display] == [
            "BTC"
        ]


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (160, 50)], ids=["80", "120", "160"])
async def test_the_open_filter_leaves_the_journal_its_whole_width(
    workdir: Path, size: tuple[int, int]
) -> None:
    """The filter box's side margins narrowed the table under it by two cells: a horizontal
    scrollbar, and the reason's end (its …) behind it."""
    from tests.cockpit_support import drain

    write_trades(workdir, 10, {9: "stop-loss: price fell through the stop while the feed lagged"})
    app, _ = make_app(workdir)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        table = app.query_one(JournalPane).table
        await pilot.press("4")
        await pilot.pause()
        before = table.size.width
        await pilot.press("slash", *"stop")
        await drain(app, pilot)
        assert table.row_count == 1
        assert table.size.width == before and not table.show_horizontal_scrollbar
        assert table.virtual_size.width <= table.size.width
