"""``kobe-tui``: the cockpit.

The first frame comes first: the header is painted from a cheap peek at the mode and exchange
(``engine.bootstrap``, no pydantic); the validated settings and the health checks are built right
after, in a thread worker, and reach the widgets only as messages. A config that is refused closes
the cockpit with exit code 2 and its lines on stderr, exactly like ``kobe``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Static

from engine.bootstrap import Mode, load_env, peek
from kobe_tui.messages import ConfigFailed, SettingsReady
from kobe_tui.screens.help import HelpScreen
from kobe_tui.widgets.header import KobeHeader
from kobe_tui.widgets.health import HealthPane

if TYPE_CHECKING:
    from engine.modes import Settings


class KobeApp(App[int]):
    CSS_PATH = Path(__file__).parent / "kobe.tcss"
    TITLE = "Kobe"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("r", "refresh_health", "Recheck", id="app.recheck"),
    ]

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        super().__init__()
        self.theme = "textual-dark"
        self.settings = settings
        self.config_errors: list[str] = []
        self._cwd = Path.cwd() if cwd is None else cwd
        self._env = dict(env) if env is not None else load_env(self._cwd)
        if settings is not None:
            self.mode, self.exchange = settings.mode, settings.exchange
        else:
            self.mode, self.exchange = peek(self._env, self._cwd)

    def compose(self) -> ComposeResult:
        yield KobeHeader(self.mode, self.exchange, live_locked=self.mode is Mode.LIVE)
        yield HealthPane()
        yield Static(self._mode_note(), id="mode-note")
        yield Footer()

    def _mode_note(self) -> str:
        if self.mode is Mode.PAPER:
            return "Paper mode: offline, simulated prices and fills. No order reaches an exchange."
        if self.mode is Mode.TESTNET:
            return f"Testnet mode: orders go to the {self.exchange} testnet. No real money."
        return "LIVE mode is locked: nothing runs until the live unlock (L) is confirmed twice."

    def on_mount(self) -> None:
        if self.settings is not None:
            from engine.modes import health_checks

            self.query_one(HealthPane).show_checks(health_checks(self.settings))
        else:
            self.query_one(HealthPane).show_loading()
            self.call_after_refresh(self.load_settings)

    @work(thread=True, exit_on_error=False, exclusive=True, group="settings")
    def load_settings(self) -> None:
        """Validate the config and run the health checks off the UI thread."""
        from engine.config import ConfigError
        from engine.modes import health_checks, resolve_settings

        try:
            settings = resolve_settings(self._env, self._cwd)
        except ConfigError as exc:
            self.post_message(ConfigFailed(exc.lines))
            return
        self.post_message(SettingsReady(settings, health_checks(settings)))

    def on_settings_ready(self, message: SettingsReady) -> None:
        self.settings = message.settings
        header = self.query_one(KobeHeader)
        if (message.settings.mode, message.settings.exchange) != (self.mode, self.exchange):
            self.mode, self.exchange = message.settings.mode, message.settings.exchange
            header.set_mode(self.mode, self.exchange, live_locked=self.mode is Mode.LIVE)
            self.query_one("#mode-note", Static).update(self._mode_note())
        self.query_one(HealthPane).show_checks(message.checks)

    def on_config_failed(self, message: ConfigFailed) -> None:
        self.config_errors = message.lines
        self.exit(return_code=2)

    def action_refresh_health(self) -> None:
        self.load_settings()

    def action_help(self) -> None:
        rows: list[tuple[str, str]] = []
        for binding in self.BINDINGS:
            if isinstance(binding, Binding):
                rows.append((binding.key_display or binding.key, binding.description))
        rows.append(("ctrl+p", "Command palette: every action"))
        self.push_screen(HelpScreen(rows))


def main() -> None:
    app = KobeApp()
    app.run()
    for line in app.config_errors:
        print(line, file=sys.stderr)
    sys.exit(app.return_code or 0)
