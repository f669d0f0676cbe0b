"""The boxes every pane is built on: a titled pane with an empty-state line, and a table pane
whose rows update in place by key and whose columns fit the pane's width."""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from engine.untrusted import NAME_MAX
from kobe_tui.widgets.columns import Col, fit_rows
from kobe_tui.widgets.formatting import literal


class Pane(Vertical):
    """A titled box with a table (or another body) and an empty-state line."""

    can_focus = False
    TITLE = ""
    EMPTY = ""

    def __init__(self, pane_id: str, number: int) -> None:
        super().__init__(id=pane_id, classes="pane")
        self._empty_text = self.EMPTY
        self.number = number
        self.border_title = f"{number} {self.TITLE}"

    def compose(self) -> ComposeResult:
        yield Static(self.EMPTY, classes="empty")

    def show_empty(self, empty: bool, text: str | None = None) -> None:
        note = self.query_one(".empty", Static)
        if text is not None and text != self._empty_text:
            self._empty_text = text
            note.update(text)
        if note.display != empty:
            note.display = empty

    def focus_body(self) -> None:
        """Focus the pane's table; a pane without one takes the focus away from the others.
        At once, not after the keys already queued (``focus()`` waits its turn): the keys of a
        burst behind a pane's key go to the pane shown."""
        tables = self.query(DataTable)
        self.screen.set_focus(tables.first() if tables else None)


class PaneTable(DataTable[Text]):
    """A pane's table. ``pageup`` / ``pagedown`` belong to the pane (the journal pages through
    its file), not to the table's scrolling, when the pane says so."""

    def __init__(self, pane: TablePane, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pane = pane

    def action_page_up(self) -> None:
        if not self.pane.page_back():
            super().action_page_up()

    def action_page_down(self) -> None:
        if not self.pane.page_forward():
            super().action_page_down()


class TablePane(Pane):
    """A table whose column widths come from the content and the pane's width (``fit_rows``).
    Rows are kept by key with every column's cell, so a resize can show or drop a column, or
    put a column on a second line under another (two-line rows)."""

    COLUMNS: tuple[Col, ...] = ()

    def __init__(self, pane_id: str, number: int) -> None:
        super().__init__(pane_id, number)
        self._rows: dict[str, tuple[Text, ...]] = {}
        self._content = self._measure()
        self._widths: list[int | None] = list(self._content)
        self._stacked = False  # two-line rows: each ``under`` column below its column
        keys = [c.key for c in self.COLUMNS]
        self._below: dict[int, int] = {
            keys.index(c.under): i for i, c in enumerate(self.COLUMNS) if c.under
        }
        self._avail = 0

    def on_mount(self) -> None:
        # The table joins the screen right after the first frame: that frame costs less, and
        # rows that arrive before are kept by the (not yet mounted) table all the same.
        self._table = PaneTable(self, cursor_type="row", zebra_stripes=False, id=f"{self.id}-table")
        self._add_columns()
        self.show_empty(True)
        self.call_after_refresh(self._mount_table)

    def _add_columns(self) -> None:
        self._table.header_height = 2 if self._stacked else 1
        self._table.zebra_stripes = self._stacked  # which two lines make a row
        labels = tuple(Text(c.label) for c in self.COLUMNS)
        widths = [w for w in self._widths if w is not None]
        for (key, label), width in zip(self._shown(labels), widths, strict=True):
            self._table.add_column(label, key=key, width=width)

    def _mount_table(self) -> None:
        if self.is_attached and not self._table.is_attached:  # not while the app is closing
            # right under the empty-state line: above what a pane shows below its table (the
            # wallets' exchange account line)
            self.mount(self._table, after=self.query_one(".empty"))

    def focus_body(self) -> None:
        if self._table.is_attached:
            self.screen.set_focus(self._table)
        else:  # not mounted yet (the first frame): focus it once it is
            self.call_after_refresh(self._table.focus)

    def on_resize(self) -> None:
        self._avail = max(0, self.content_size.width - 1)  # one cell for the scrollbar
        self._fit()

    def _fit(self) -> None:
        widths, stacked = fit_rows(self.COLUMNS, self._content, self._avail or 10**6)
        if widths == self._widths and stacked == self._stacked:
            return
        self._widths, self._stacked = widths, stacked
        table = self.table
        row = table.cursor_row
        table.clear(columns=True)
        self._add_columns()
        for key, cells in self._rows.items():
            self._add_row(key, cells)
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))

    def _shown(self, cells: tuple[Text, ...]) -> list[tuple[str, Text]]:
        """The cells on screen, by column key: in two-line rows, a column's cell with the cell
        of the column under it below."""
        out = []
        for i, (col, width) in enumerate(zip(self.COLUMNS, self._widths, strict=True)):
            if width is None:
                continue
            cell = cells[i]
            below = self._below.get(i)
            if self._stacked and below is not None:
                cell = Text("\n").join((cell, cells[below]))
                cell.no_wrap = True
                cell.overflow = "ellipsis" if self.COLUMNS[below].text else cells[i].overflow
            out.append((col.key, cell))
        return out

    def _add_row(self, key: str, cells: tuple[Text, ...]) -> None:
        shown = [cell for _, cell in self._shown(cells)]
        self.table.add_row(*shown, key=key, height=2 if self._stacked else 1)

    @property
    def table(self) -> DataTable[Text]:
        return self._table

    def row_cells(self, key: str) -> tuple[Text, ...]:
        """Every column's cell of a row, shown or left out for the width."""
        return self._rows[key]

    def page_back(self) -> bool:
        return False  # the table scrolls by a page

    def page_forward(self) -> bool:
        return False

    def show_empty(self, empty: bool, text: str | None = None) -> None:
        super().show_empty(empty, text)
        if self.table.display == empty:
            self.table.display = not empty  # an empty box says what is going on, no bare header

    def _cells(self, cells: tuple[Text | str, ...]) -> tuple[Text, ...]:
        """Outside text shown literally (never markup, no control character); free text ends
        in … when cut."""
        out = []
        for col, cell in zip(self.COLUMNS, cells, strict=True):
            text = cell.copy() if isinstance(cell, Text) else literal(cell, NAME_MAX)
            text.no_wrap = True
            text.overflow = "ellipsis" if col.text else "crop"
            out.append(text)
        return tuple(out)

    def upsert(self, key: str, cells: tuple[Text | str, ...]) -> None:
        row = self._cells(cells)
        if self._rows.get(key) == row:
            return
        self._rows[key] = row
        grew = False
        for i, cell in enumerate(row):
            if cell.cell_len > self._content[i]:
                self._grow(i, cell)
                grew = True
        table = self.table
        if grew:
            self._widths = []  # re-fit: a wider price is never cut
            self._fit()
        elif key in table.rows:
            for column, value in self._shown(row):
                table.update_cell(key, column, value)
        else:
            self._add_row(key, row)
        self.show_empty(table.row_count == 0)

    def set_rows(self, rows: list[tuple[str, tuple[Text | str, ...]]]) -> None:
        """Every row at once (the journal's window): the widths are fitted once, not per row."""
        self._rows = {key: self._cells(cells) for key, cells in rows}
        for row in self._rows.values():
            for i, cell in enumerate(row):
                if cell.cell_len > self._content[i]:
                    self._grow(i, cell)
        self._widths = []
        self._fit()
        self.show_empty(self.table.row_count == 0)

    def _measure(self) -> list[int]:
        """Each column's width for the rows held: its widest cell, never narrower than its
        label (an optional column: 0 while no row fills it)."""
        content = [0 if c.optional else cell_len(c.label) for c in self.COLUMNS]
        for row in self._rows.values():
            for i, cell in enumerate(row):
                if cell.cell_len > content[i]:
                    content[i] = max(cell.cell_len, cell_len(self.COLUMNS[i].label))
        return content

    def _grow(self, i: int, cell: Text) -> None:
        """Column ``i`` as wide as ``cell`` (and never narrower than its label)."""
        self._content[i] = max(cell.cell_len, cell_len(self.COLUMNS[i].label))

    def drop(self, key: str) -> None:
        self._rows.pop(key, None)
        table = self.table
        if key in table.rows:
            table.remove_row(key)
        # the columns as wide as what is left: a row that is gone (a market entry, filled at
        # once) no longer widens them, nor pushes a column out of a narrow pane
        content = self._measure()
        if content != self._content:
            self._content = content
            self._widths = []
            self._fit()
        self.show_empty(table.row_count == 0)

    def selected_key(self) -> str | None:
        """The key of the row under the cursor (row 0 is a row, not "nothing")."""
        table = self.table
        if table.row_count == 0:
            return None
        row = table.cursor_row
        if row is None or row < 0 or row >= table.row_count:
            return None
        key = table.coordinate_to_cell_key((row, 0)).row_key.value
        return str(key) if key is not None else None
