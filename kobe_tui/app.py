"""``kobe-tui``: the cockpit.

The first frame comes first: the header is painted from a cheap peek at the mode and exchange
(``engine.bootstrap``, no pydantic). The validated settings, the health checks and the panes'
first contents (wallets snapshot, the tail of the trades journal, the open orders the order
journal knows) follow from a thread worker; then the engine (``engine.runtime.Runtime``) runs in
another thread worker. The engine reaches the widgets only through typed messages
(``kobe_tui.messages``); wallet snapshots, prices, risk state and positions coalesce. An engine
error shows as an alert and a red engine state; the cockpit stays up. In live mode the engine
stays stopped until the two-step unlock (``L``).

This module holds the layout: the bindings, the screen's widgets, the panes mounted after the
first frame, and ``main``. ``KobeApp`` stacks the layers below it, each module importing only
those under it: ``state`` (what the cockpit knows), ``drain`` (engine events drawn on the panes),
``engine_host`` (the settings, first paint and engine workers), then ``navigation`` (panes,
filter, help, palette, what is available) and ``actions`` (orders, positions, kill switch, live
unlock, quit) side by side.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import NoReturn

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.driver import Driver
from textual.widgets import Static

from kobe_tui.actions import Actions
from kobe_tui.engine_host import log_to_file, pause_gc_for_startup, resume_gc
from kobe_tui.navigation import Navigation
from kobe_tui.state import PANES
from kobe_tui.terminal_keys import use_back_to_back_keys
from kobe_tui.widgets.footer import KobeFooter
from kobe_tui.widgets.header import KobeHeader
from kobe_tui.widgets.health import HealthBox, HealthPane
from kobe_tui.widgets.journal import AlertsPane, JournalPane
from kobe_tui.widgets.money import EquityPane, RiskPane, StatsPane, WalletsPane
from kobe_tui.widgets.orders import OrdersPane, PositionsPane
from kobe_tui.widgets.prices import PriceStrip

STARTUP_GC_S = 10.0  # the garbage collector is back by then, whatever became of the engine


class KobeApp(Actions, Navigation):
    CSS_PATH = Path(__file__).parent / "kobe.tcss"
    TITLE = "Kobe"
    ENABLE_COMMAND_PALETTE = True
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide"), (160, "-xwide")]

    # The footer shows them in this order, as many as fit whole; at 80 columns only those
    # available now
    BINDINGS = [
        Binding("n", "new_order", "Order", id="order.new"),
        Binding("c", "cancel_order", "Cancel", id="order.cancel"),
        Binding("C", "cancel_all", "Cancel all", key_display="C", id="order.cancel_all"),
        Binding("x", "close_position", "Close", id="position.close"),
        Binding("e", "edit_exits", "Exits", id="position.exits"),
        # priority: the kill switch also from a dialog (a confirmation, the help, the exits,
        # the ticket on a choice), but never while a field takes typing: Textual leaves a
        # printable key to a focused Input (or an open choice list) before any binding
        Binding(
            "k",
            "trip",
            "Kill",
            priority=True,
            tooltip="Kill switch: trip it, also from a dialog, unless a text field has the focus",
            id="risk.trip",
        ),
        # ctrl+t: from anywhere, also while typing (no field types it, an Input binds no ctrl+t)
        Binding(
            "ctrl+t",
            "trip",
            "Kill switch: trip it from anywhere, also while typing in a field",
            show=False,
            priority=True,
            id="risk.trip_anywhere",
        ),
        Binding("K", "reset", "Reset kill", key_display="K", id="risk.reset"),
        Binding("p", "pause", "Pause", id="engine.pause"),
        Binding("p", "resume", "Resume", id="engine.resume"),  # the one shown: as it stands
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("q", "quit_safely", "Quit", id="app.quit"),
        Binding("L", "unlock", "Live", key_display="L", id="live.unlock"),
        Binding("slash", "filter", "Filter", key_display="/", priority=True, id="journal.filter"),
        Binding("pageup", "page_back", "Older trades", show=False, id="journal.older"),
        Binding("pagedown", "page_forward", "Newer trades", show=False, id="journal.newer"),
        Binding("tab", "next_pane", "Next pane", show=False, id="pane.next"),
        Binding("shift+tab", "prev_pane", "Previous pane", show=False, id="pane.prev"),
        *[
            Binding(
                str(i + 1),
                f"show_pane({i})",
                f"Pane {i + 1}: {name}",
                show=False,
                id=f"pane.{name}",
            )
            for i, name in enumerate(PANES)
        ],
        Binding("r", "refresh_health", "Recheck", show=False, id="app.recheck"),
    ]

    def get_driver_class(self) -> type[Driver]:
        """Textual's driver, reading ``escape`` and a key typed right behind it as two keys."""
        return use_back_to_back_keys(super().get_driver_class())

    # -- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield KobeHeader(self.mode, self.exchange, live_locked=self._locked())
        yield PriceStrip()
        yield Static(self._pane_bar(), id="pane-bar")
        yield Container(id="panes")  # filled right after the first frame (the header first)
        yield Static(self._mode_note(), id="mode-note")
        yield KobeFooter(compact=True)

    def on_mount(self) -> None:
        self.call_after_refresh(self._build_panes)
        self.set_timer(STARTUP_GC_S, lambda: None if gc.isenabled() else resume_gc())

    async def _build_panes(self) -> None:
        """The first frame shows the header (mode, exchange); the panes follow at once."""
        data_dir = self._data_dir_guess()
        await self.query_one("#panes", Container).mount_all(
            [
                OrdersPane("orders", 1),  # in the order of the wide grid; keys by number
                PositionsPane("positions", 2),
                WalletsPane("wallets", 3),
                JournalPane("journal", 4, data_dir / "trades.jsonl"),
                RiskPane("risk", 8),
                StatsPane("stats", 9),
                AlertsPane("alerts", 5),
                HealthBox("health", 6),
                EquityPane("equity", 7),
            ]
        )
        self._show_active()
        self.call_after_refresh(self.query_one(JournalPane).load)  # the tail, after the first frame
        if self.settings is not None:
            from engine.health import health_checks

            self._settings_ready(self.settings, health_checks(self.settings))
        else:
            self.query_one(HealthPane).show_loading()
            self.call_after_refresh(self.load_settings)

    def _fatal_error(self) -> None:
        """A crash, printed as Textual does but without the frames' local variables (Textual
        shows them: a frame may hold the environment with its keys, or a signed request), and
        redacted by value as the log is."""
        import io

        from rich.console import Console
        from rich.text import Text
        from rich.traceback import Traceback

        from engine.secrets import redact

        self.bell()
        console = Console(file=io.StringIO(), width=self.console.width, color_system=None)
        console.print(Traceback(show_locals=False, width=None))
        self._exit_renderables.append(Text(redact(console.file.getvalue())))  # type: ignore[attr-defined]
        self._close_messages_no_wait()

    def on_resize(self, event: events.Resize) -> None:
        footer = self.query(KobeFooter)
        if footer:  # at 80 columns the actions take the whole line (ctrl+p is in the help)
            # the new width is the event's: the app's own size is updated after this handler
            footer.first().show_command_palette = event.size.width >= 120
        self.refresh_bindings()  # the footer's choice depends on the width


def main(argv: list[str] | None = None) -> None:
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            """A refused argument is echoed redacted (a key pasted there by mistake); the
            keys are read for it only then, the first frame does without."""
            from engine.secrets import Secrets, load_env, redact

            Secrets.from_env(load_env())
            super().error(redact(message))

    parser = Parser(
        prog="kobe-tui",
        description=(
            "Kobe's cockpit: the engine with its panes, from the keyboard (? shows the keys). "
            "It reads kobe.toml, .env and KOBE_* like kobe; paper by default. "
            "Exit: 0 ok, 1 refused, 2 bad config."
        ),
    )
    parser.parse_args(argv)  # --help prints this and exits 0; anything else exits 2
    app = KobeApp(log_file=True)
    if not app.mode_named:  # no frame says a mode the config does not: its errors, exit 2
        from engine.config import ConfigError
        from engine.modes import resolve_settings

        try:
            resolve_settings(app._env, app._cwd)
        except ConfigError as exc:
            print("\n".join(exc.lines), file=sys.stderr)
            sys.exit(2)
    log_to_file(app._data_dir_guess())
    pause_gc_for_startup()
    app.run()  # it returns once the engine's thread has stopped (and saved)
    lines, code = ending(app)
    for line in lines:
        print(line, file=sys.stderr)
    sys.exit(code)


def ending(app: KobeApp) -> tuple[list[str], int]:
    """What ``kobe-tui`` prints as it ends, and its exit code. A save the disk refused as the
    engine stopped (the paper account, the caches) is said, and is no success: exit 1."""
    lines, code = list(app.config_errors), app.return_code or 0
    failure = app.runtime.close_failure if app.runtime is not None else None
    if failure is not None:
        lines.append(f"kobe-tui: {failure}")
        code = code or 1
    return lines, code
