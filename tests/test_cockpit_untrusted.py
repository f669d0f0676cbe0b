"""The cockpit shows outside text literally and keeps the mode it started in (issue 14), with
Textual's pilot against the real engine."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text
from textual import events
from textual.widgets import Input, Static

from engine.modes import Settings, resolve_settings
from engine.runtime import Runtime, SimClock
from engine.secrets import register_secret_values
from kobe_tui.app import KobeApp
from kobe_tui.messages import EngineFailed
from kobe_tui.screens.confirm import ConfirmScreen
from kobe_tui.screens.ticket import OrderTicket
from kobe_tui.widgets.header import KobeHeader
from kobe_tui.widgets.journal import JournalPane
from tests.cockpit_support import drain, make_app, plain, settle

HOSTILE = "oops [/] [bold red]x \x1b[31mLIVE\x1b[0m \x1b]0;owned\x07\x1b[2J"


def shown(widget: Static) -> str:
    return plain(widget, 500)


def trade_record(trade_id: str, reason: str, symbol: str = "WIF/USDC") -> dict[str, str]:
    return {
        "trade_id": trade_id,
        "opened_at": "2026-01-01T00:00:00Z",
        "closed_at": "2026-01-01T00:05:00Z",
        "wallet": "copy_sol",
        "strategy": "copy_trading",
        "symbol": symbol,
        "side": "buy",
        "qty": "10",
        "entry_price": "2",
        "exit_price": "2.1",
        "fees": "0.01",
        "pnl": "0.99",
        "reason": reason,
    }


async def test_a_hostile_leader_name_in_trades_jsonl_shows_literally_and_the_cockpit_starts(
    workdir: Path,
) -> None:
    data = workdir / "data"
    data.mkdir()
    lines = [
        json.dumps(trade_record("t-1", f"leader {HOSTILE} sold WIF")),
        json.dumps(trade_record("t-2", "fine", symbol="[/]")),
        json.dumps({**trade_record("t-3", "bad"), "qty": "ten"}),  # damaged: skipped
    ]
    (data / "trades.jsonl").write_text("\n".join(lines) + "\n")
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert app.engine_state == "running"
        journal = app.query_one(JournalPane)
        reason = journal.row_cells("t-1")[6]  # (a narrow pane may leave the column out)
        assert isinstance(reason, Text)
        assert reason.plain.startswith("leader oops [/] [bold red]x [31mLIVE")
        assert not reason.spans  # "[bold red]" is characters, not a style
        assert "\x1b" not in reason.plain and "\x07" not in reason.plain
        assert journal.row_cells("t-2")[1].plain == "[/]"
        assert journal.table.get_row("t-2")[1].plain == "[/]"  # shown: the pair column
        assert "t-3" not in journal.table.rows
        assert app.query_one(KobeHeader).item("mode").strip() == "PAPER"


async def test_a_kill_switch_reason_with_markup_shows_literally_on_reset(workdir: Path) -> None:
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert app.runtime is not None
        app.runtime.trip(f"x [/] {HOSTILE}", "cli")
        app.step(1)
        await settle(app, pilot)
        assert "TRIPPED" in app.query_one(KobeHeader).item("risk-state")
        alerts = shown(app.query_one("#alerts-body", Static))
        assert "kill switch TRIPPED: x [/] oops [/] [bold red]x [31mLIVE" in alerts
        await pilot.press("K")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        question = shown(app.screen.query_one("#confirm-question", Static))
        assert "(TRIPPED: x [/] oops [/] [bold red]x" in question
        await pilot.press("escape")
        await pilot.pause()
        app.post_message(EngineFailed("boom [/] [bold]"))
        await settle(app, pilot)
        assert "error: boom [/] [bold]" in app.query_one(KobeHeader).item("engine-state")


PASTED = "ab\x1b[2J\x1b]0;pwned\x07\u202eZ\u200b [red]x[/]"  # a bracketed paste: any bytes


async def _paste(app: KobeApp, pilot: object, box: Input, text: str) -> str:
    """``text`` pasted into ``box``: the characters the field then draws on the terminal."""
    box.focus()
    box.post_message(events.Paste(text))
    await drain(app, pilot)  # type: ignore[arg-type]
    return "".join(segment.text for segment in box.render_line(0))


async def test_text_pasted_into_a_field_cannot_drive_the_terminal(workdir: Path) -> None:
    """Textual draws a field's characters as they are: a paste put ESC [2J (the screen cleared),
    an OSC (the terminal retitled) and a bidi override on the terminal, from the ticket's
    fields, the journal's filter (and its border), the new exits and the unlock phrase."""
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, OrderTicket)
        amount = app.screen.query_one("#amount", Input)
        drawn = await _paste(app, pilot, amount, PASTED)
        assert amount.value == "15ab[2J]0;pwnedZ [red]x[/]"  # markup stays characters
        for ch in "\x1b\x07\u202e\u200b":
            assert ch not in drawn
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("3", "slash")
        await pilot.pause()
        journal = app.query_one(JournalPane)
        box = journal.query_one("#journal-filter", Input)
        drawn = await _paste(app, pilot, box, PASTED * 200)
        assert "\x1b" not in drawn + str(journal.border_subtitle) and len(box.value) <= 1000


LIVE_KEYS = {"ALLOW_LIVE": "1", "BINANCE_KEY": "k" * 16, "BINANCE_SECRET": "s" * 16}


async def test_a_reload_never_changes_the_mode_of_a_live_engine(workdir: Path) -> None:
    (workdir / "kobe.toml").write_text('mode = "live"\n')
    settings = resolve_settings(LIVE_KEYS, workdir)
    clock = SimClock(settings.config.paper.sim_start)
    started: list[tuple[str, bool]] = []

    def factory(s: Settings, confirmed: bool) -> Runtime:
        started.append((s.mode.value, confirmed))
        raise RuntimeError("no live exchange in tests")

    app = KobeApp(
        settings,
        env=LIVE_KEYS,
        cwd=workdir,
        clock=clock,
        autotick=False,
        runtime_factory=factory,
        balances_fetcher=lambda s: {},
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("L")  # the two-step unlock, as a trader does it
        await settle(app, pilot, engine=False)
        await pilot.click("#continue")
        await pilot.pause()
        phrase = app.screen.query_one("#phrase", Input)
        phrase.focus()
        for ch in "UNLOCK BINANCE LIVE":
            await pilot.press(ch if ch != " " else "space")
        await pilot.press("enter")
        await settle(app, pilot)
        assert started == [("live", True)]
        assert app.query_one(KobeHeader).item("mode").strip() == "LIVE"
        (workdir / "kobe.toml").write_text('mode = "paper"\n[exchange]\nname = "okx"\n')
        await pilot.press("r")
        await settle(app, pilot, engine=False)
        assert app.query_one(KobeHeader).item("mode").strip() == "LIVE"
        assert app.query_one(KobeHeader).item("exchange").strip() == "binance"
        assert app.settings is not None and app.settings.mode.value == "live"
        alerts = shown(app.query_one("#alerts-body", Static))
        assert "Reload refused: the config or environment now says paper on okx" in alerts
        assert "stays LIVE on binance until Kobe is restarted" in alerts
        assert started == [("live", True)]  # nothing was started in another mode


async def test_the_health_pane_shows_the_permission_warnings(workdir: Path) -> None:
    import os

    from kobe_tui.widgets.health import HealthPane

    (workdir / ".env").write_text("# no secret here\n")
    os.chmod(workdir / ".env", 0o644)
    env = {"KOBE_MODE": "testnet", "BINANCE_KEY": "k" * 16, "BINANCE_SECRET": "s" * 16}
    app = KobeApp(env=env, cwd=workdir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot, engine=False)
        pane = app.query_one(HealthPane)
        state, _, detail = pane.get_row(".env private")
        assert str(state) == "warn"
        assert "can be read by other users: chmod 600" in str(detail)


async def test_symbols_alike_or_not_ascii_each_get_their_place_in_the_price_strip(
    workdir: Path,
) -> None:
    """The strip named its widgets after the symbol: two held symbols differing only in
    punctuation (A.B/USDC, A-B/USDC, from a feed) got the same name, and the cockpit crashed."""
    from decimal import Decimal

    from textual.widgets import Static

    from kobe_tui.widgets.prices import PriceStrip

    app, _ = make_app(workdir)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(app, pilot)
        strip = app.query_one(PriceStrip)
        strip.show(
            {
                "A.B/USDC": Decimal(1),
                "A-B/USDC": Decimal(2),
                "ÄÖ/USDC": Decimal(3),
                "[bold red]X/USDC": Decimal(4),
            },
            app.clock(),
        )
        await pilot.pause()
        labels = [str(w.render()) for w in strip.query(".px-label") if isinstance(w, Static)]
        assert [x.split()[:2] for x in labels] == [
            ["A.B", "1.00000"],
            ["A-B", "2.00000"],
            ["ÄÖ", "3.00000"],
            ["[bold", "red]X"],
        ]


async def test_absurd_numbers_in_trades_jsonl_never_stop_the_cockpit(workdir: Path) -> None:
    """A damaged journal line with pnl NaN, Infinity or 1e29 stopped the cockpit at start: the
    first two were not refused where the line is read, and no format had the precision for
    the third. Non-finite numbers skip their line; a huge one is shown whole."""
    from kobe_tui.widgets.money import StatsPane

    data = workdir / "data"
    data.mkdir()
    lines = [trade_record("t-ok", "fine")]
    lines += [dict(trade_record(f"t-{v}", v), pnl=v) for v in ("NaN", "Infinity", "-inf")]
    lines += [dict(trade_record("t-huge", "huge"), pnl="1e29", qty="1e29", fees="1e29")]
    (data / "trades.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert app.return_code is None and app.is_running
        journal = app.query_one(JournalPane)
        assert set(journal.table.rows) == {"t-ok", "t-huge"}
        huge = "".join(str(c) for c in journal.row_cells("t-huge"))
        assert "+100,000,000,000,000,000,000,000,000,000.00" in huge
        stats = app.query_one(StatsPane)
        assert stats.stats is not None and stats.stats.total.trades == 2


async def test_a_crash_prints_no_local_variable_and_no_key(workdir: Path) -> None:
    """Textual prints a crash's traceback with each frame's local variables; a frame holding
    the environment would print the keys in it. Kobe's shows the frames and the error only,
    redacted as the log is."""
    key = "CRASHKEY" + "x7" * 16
    register_secret_values([key])

    class Crashing(KobeApp):
        def action_boom(self) -> None:
            env = {"BINANCE_SECRET": local}  # a frame holding the keys
            raise RuntimeError(f"exchange said no to {key} ({len(env)} keys)")

        def _print_error_renderables(self) -> None:
            for renderable in self._exit_renderables:  # what the terminal gets
                console = Console(file=io.StringIO(), width=200, color_system=None)
                console.print(renderable)
                printed.append(console.file.getvalue())  # type: ignore[attr-defined]
            super()._print_error_renderables()

    printed: list[str] = []
    local = "".join(reversed("YLNOLACOL")) + "q9" * 12  # not a word of this file
    app, _ = make_app(workdir)
    app.__class__ = Crashing
    with pytest.raises(RuntimeError):
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(app, pilot)
            app.call_later(app.action_boom)  # type: ignore[attr-defined]
            await pilot.pause()
    said = "".join(printed)
    assert "action_boom" in said and "exchange said no to ***" in said
    assert key not in said and "LOCALONLY" not in said
