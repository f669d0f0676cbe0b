"""The health pane: the same checks as ``kobe health``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable

from kobe_tui.widgets.formatting import literal
from kobe_tui.widgets.pane import Pane

if TYPE_CHECKING:
    from engine.health import Check
    from engine.notify import ChannelStatus


class HealthPane(DataTable[Text]):
    BORDER_TITLE = "Health"

    def __init__(self) -> None:
        super().__init__(
            id="health-table", cursor_type="none", zebra_stripes=False, show_cursor=False
        )
        self.border_title = "Health"
        self._failing: dict[str, bool] = {}

    def on_mount(self) -> None:
        self.add_column("", key="state", width=4)
        self.add_column("check", key="name")
        self.add_column("detail", key="detail")

    def show_loading(self) -> None:
        self.add_row(Text("…"), Text("checking"), Text("reading kobe.toml and keys"), key="…")
        self.border_subtitle = "checking"

    def show_deliveries(self, statuses: list[ChannelStatus]) -> None:
        """The running engine's notification channels: the last delivery (its error, if any)."""
        from engine.health import Check

        checks = []
        for s in statuses:
            when = f" at {s.at:%H:%M:%S}" if s.at is not None else ""
            checks.append(Check(f"notify {s.channel}", s.ok is not False, f"{s.detail}{when}"))
        self.show_checks(checks)

    def show_checks(self, checks: list[Check]) -> None:
        """Update rows in place by the check's name; add the ones not shown yet."""
        if "…" in self.rows:
            self.remove_row("…")
        for check in checks:
            self._failing[check.name] = not check.ok
            state = Text("ok", style="bold green") if check.ok else Text("FAIL", style="bold red")
            if check.ok and check.warning:
                state = Text("warn", style="bold yellow")
            cells = (state, literal(check.name), literal(check.detail))
            if check.name in self.rows:
                for column, value in zip(("state", "name", "detail"), cells, strict=True):
                    self.update_cell(check.name, column, value)
            else:
                self.add_row(*cells, key=check.name)
        failing = sum(self._failing.values())  # every row, not only the ones just updated
        self.border_subtitle = "all checks pass" if not failing else f"{failing} failing"
        self.set_class(bool(failing), "failing")


class HealthBox(Pane):
    """The health pane's box (pane 6): the checks' table under the pane's title."""

    TITLE = "Health"
    EMPTY = ""

    def compose(self) -> ComposeResult:
        yield HealthPane()
