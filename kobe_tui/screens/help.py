"""``?``: every key the cockpit answers to."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="help.close"),
        Binding("question_mark", "dismiss", "Close", show=False, id="help.close2"),
        Binding("q", "dismiss", "Close", show=False, id="help.close3"),
    ]

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        # two columns: a description too long for the box wraps under itself, not under the keys
        keys = Table.grid(padding=(0, 2), pad_edge=True)
        keys.add_column(no_wrap=True)
        keys.add_column()
        for key, desc in self.rows:
            keys.add_row(Text(key), Text(desc))
        # It scrolls (the keys of a focused scroll view: up, down, pageup, pagedown): at 80x24
        # every key does not fit, and the last ones (escape, ctrl+p) were cut
        with VerticalScroll(id="help-box") as box:
            box.border_title = "Keys"
            box.border_subtitle = "↑↓ scroll  escape closes"
            yield Static(keys, id="help-body")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
