"""The health pane: the same checks as ``kobe health``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable

from kobe_tui.widgets.formatting import counted, literal
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
        self._warning: dict[str, bool] = {}  # passes, but the operator should act
        self._cells: dict[str, tuple[Text, Text, Text]] = {}  # by check, to refit on resize
        self._widths = (0, 0)

    def on_mount(self) -> None:
        self._columns()

    def _columns(self) -> None:
        """The check's name whole; the detail (free text) takes the rest and ends in … when it
        is longer (it ran on behind a horizontal scrollbar, cut with no sign)."""
        name = max((c[1].cell_len for c in self._cells.values()), default=5)
        detail = max(self.size.width - 1 - (4 + 2) - (name + 2) - 2, 8)  # 1: the scrollbar
        if (name, detail) == self._widths:
            return
        self._widths = (name, detail)
        self.clear(columns=True)
        self.add_column("", key="state", width=4)
        self.add_column("check", key="name", width=name)
        self.add_column("detail", key="detail", width=detail)
        for key, cells in self._cells.items():
            self.add_row(*cells, key=key)

    def on_resize(self) -> None:
        self._columns()

    def _put(self, key: str, cells: tuple[Text, Text, Text]) -> None:
        cells[2].no_wrap, cells[2].overflow = True, "ellipsis"
        new = key not in self._cells
        self._cells[key] = cells
        if cells[1].cell_len > self._widths[0]:
            self._columns()  # every row again, the name's column as wide as the longest
        elif new:
            self.add_row(*cells, key=key)
        else:
            for column, value in zip(("state", "name", "detail"), cells, strict=True):
                self.update_cell(key, column, value)

    def show_loading(self) -> None:
        self._put("…", (Text("…"), Text("checking"), Text("reading kobe.toml and keys")))
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
        if "…" in self._cells:
            del self._cells["…"]
            self.remove_row("…")
        for check in checks:
            self._failing[check.name] = not check.ok
            self._warning[check.name] = check.ok and check.warning
            state = Text("ok", style="bold green") if check.ok else Text("FAIL", style="bold red")
            if check.ok and check.warning:
                state = Text("warn", style="bold yellow")
            self._put(check.name, (state, literal(check.name), literal(check.detail)))
        failing = sum(self._failing.values())  # every row, not only the ones just updated
        warnings = sum(self._warning.values())  # a "warn" row under "all checks pass" alone
        passing = "all checks pass" + (f", {counted(warnings, 'warning')}" if warnings else "")
        # on the pane's box: the table has no border of its own, and a check may be scrolled
        # out of sight (at 120x40 the fifth)
        for widget in (self, self.parent):
            if widget is not None:
                widget.border_subtitle = passing if not failing else f"{failing} failing"
                widget.set_class(bool(failing), "failing")


class HealthBox(Pane):
    """The health pane's box (pane 6): the checks' table under the pane's title."""

    TITLE = "Health"
    EMPTY = ""

    def compose(self) -> ComposeResult:
        yield HealthPane()
