"""What happened: the trades journal (a bounded window with paging and a filter) and the alerts."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from engine.untrusted import MESSAGE_MAX, clean_text
from kobe_tui.widgets.columns import Col
from kobe_tui.widgets.formatting import PlainInput, literal, num, px, signed
from kobe_tui.widgets.pane import Pane, TablePane

if TYPE_CHECKING:
    from engine.runtime import AlertEvent
    from engine.trades import ClosedTrade


def _day_hhmm(moment: datetime) -> str:
    return moment.strftime("%m-%d %H:%M")


class JournalPane(TablePane):
    """The trades journal: a bounded window read from the tail of ``trades.jsonl``, with paging
    back (``pageup`` / ``pagedown``, also with the focus in the table) and a filter (``/``) that
    searches the whole file from its end, newest first, in a worker, keeping one window."""

    TITLE = "Trades journal"
    EMPTY = "No closed trades yet"
    WINDOW = 50
    COLUMNS = (
        Col("time", "time"),
        Col("pair", "pair"),
        Col("side", "side", keep=3),
        Col("qty", "qty", keep=4),
        Col("notional", "notional", keep=2),
        Col("pnl", "PnL"),
        Col("reason", "reason", keep=5, text=True),
    )

    def __init__(self, pane_id: str, number: int, path: Path) -> None:
        super().__init__(pane_id, number)
        self.path = path
        self.page = 0
        self.filter_text = ""
        self.searching = False
        self.trades: list[ClosedTrade] = []  # the window, oldest first
        self.withheld = False  # the data dir's trades are another mode's: none shown

    BINDINGS = [
        Binding("escape", "close_filter", "Close the filter", show=False, id="journal.close")
    ]

    def compose(self) -> ComposeResult:
        yield PlainInput(
            placeholder="filter: symbol, wallet, strategy, reason (escape: none)",
            compact=True,
            id="journal-filter",
        )
        yield from super().compose()

    def action_close_filter(self) -> None:
        """``escape``: no filter, the latest window, the focus back in the table."""
        box = self.query_one("#journal-filter", Input)
        box.display = False
        box.value = ""
        self.set_filter("")
        self.focus_body()

    def on_mount(self) -> None:
        # (TablePane.on_mount runs too: Textual calls each class's handler in the MRO)
        box = self.query_one("#journal-filter", Input)
        box.display = False
        box.cursor_blink = False

    def withhold(self) -> None:
        """The data dir's money is another mode's: its trades are not shown as this mode's."""
        self.withheld = True
        self.trades = []
        self._draw()
        self.show_empty(True, "Not shown: the trades here are another mode's (see the alerts)")

    def load(self) -> None:
        """The window for the current page: the file's tail, or the filter's matches."""
        if self.withheld:
            return
        if self.filter_text:
            self.searching = True
            self._subtitle()
            self.search(self.filter_text, self.page)
            return
        from engine.journal import tail_jsonl
        from engine.trades import ClosedTrade

        want = (self.page + 1) * self.WINDOW
        records = tail_jsonl(self.path, want)
        window = records[: max(0, len(records) - self.page * self.WINDOW)][-self.WINDOW :]
        if not window and self.page:
            self.page -= 1  # no older trades: stay on the last page
            return
        self.trades = []
        for record in window:
            try:
                self.trades.append(ClosedTrade.from_record(record))
            except (KeyError, TypeError, ValueError, ArithmeticError):
                continue  # a damaged record: not shown, never a crash at start
        self._draw()

    @work(thread=True, exclusive=True, group="journal-search", exit_on_error=False)
    def search(self, needle: str, page: int) -> None:
        from engine.trades import search_trades

        worker = get_current_worker()
        found = search_trades(
            self.path,
            needle,
            skip=page * self.WINDOW,
            limit=self.WINDOW,
            stop=lambda: worker.is_cancelled,
        )
        if not worker.is_cancelled:
            self.app.call_from_thread(self._found, needle, page, found)

    def _found(self, needle: str, page: int, found: list[ClosedTrade]) -> None:
        if (needle, page) != (self.filter_text, self.page):
            return  # the filter or the page changed meanwhile: a newer search is on its way
        self.searching = False
        if not found and page:
            self.page -= 1  # nothing older matches: stay on the last page
            self._subtitle()
            return
        self.trades = list(reversed(found))
        self._draw()

    def add(self, trade: ClosedTrade) -> None:
        self.add_many([trade])

    def add_many(self, trades: list[ClosedTrade]) -> None:
        if self.page != 0:
            return  # paging back: the live tail does not move the window
        self.trades = [*self.trades, *trades][-self.WINDOW :]
        self._draw()

    def _draw(self) -> None:
        from engine.trades import trade_matches

        needle = self.filter_text.lower()
        self.set_rows(
            [
                (
                    t.trade_id,
                    (
                        _day_hhmm(t.closed_at),
                        t.symbol,
                        t.side,
                        px(t.qty),
                        num(t.notional, 2),
                        signed(t.pnl),
                        literal(t.reason, MESSAGE_MAX),
                    ),
                )
                for t in reversed(self.trades)  # newest first
                if not needle or trade_matches(t, needle)
            ]
        )
        self._subtitle()
        empty = "No trades match the filter" if needle else self.EMPTY
        self.show_empty(self.table.row_count == 0, empty)

    def _subtitle(self) -> None:
        page = f"page {self.page + 1}" if self.page else "latest"
        filt = f", filter '{clean_text(self.filter_text, 40)}'" if self.filter_text else ""
        busy = ", searching…" if self.searching else ""
        self.border_subtitle = escape(f"{page}{filt}{busy}")

    def page_back(self) -> bool:
        self.page += 1
        self.load()
        return True

    def page_forward(self) -> bool:
        if self.page > 0:
            self.page -= 1
            self.load()
        return True

    def set_filter(self, text: str) -> None:
        text = text.strip()
        if text == self.filter_text:
            return
        self.filter_text, self.page = text, 0
        self.load()


class AlertsPane(Pane):
    TITLE = "Alerts"
    EMPTY = "No alerts"
    KEEP = 200

    def __init__(self, pane_id: str, number: int) -> None:
        super().__init__(pane_id, number)
        # newest first: (time, severity, code, message, how many times in a row)
        self.alerts: deque[tuple[datetime, str, str, str, int]] = deque(maxlen=self.KEEP)

    def compose(self) -> ComposeResult:
        yield Static(self.EMPTY, classes="empty")
        yield Static("", id="alerts-body")

    def on_mount(self) -> None:
        self.show_empty(True)

    def add(self, when: datetime, severity: str, code: str, message: str) -> None:
        self._push(when, severity, code, message)
        self._draw()

    def add_event(self, when: datetime, alert: AlertEvent, *, draw: bool = True) -> None:
        self._push(when, alert.severity, alert.code, alert.message)
        if draw:
            self._draw()

    def _push(self, when: datetime, severity: str, code: str, message: str) -> None:
        """The same alert as the last one (finance states aside: they are redrawn every tick)
        is one line with its count and its latest time: an exchange down for an hour is one
        line, not one a tick."""
        count = 1
        for i, last in enumerate(self.alerts):
            if last[2].startswith("finance:"):
                continue
            if last[1:4] == (severity, code, message):
                del self.alerts[i]
                count = last[4] + 1
            break
        self.alerts.appendleft((when, severity, code, message, count))

    def redraw(self) -> None:
        self._draw()

    def set_finance(self, when: datetime, alerts: Iterable[tuple[str, str, str]]) -> None:
        """Finance alerts are a state, not events: shown while active, replaced each snapshot."""
        kept = [a for a in self.alerts if not a[2].startswith("finance:")]
        fresh = [(when, sev, f"finance:{code}", msg, 1) for sev, code, msg in alerts]
        self.alerts = deque([*fresh, *kept], maxlen=self.KEEP)
        self._draw()

    def _draw(self) -> None:
        # three columns: a message too long for the pane wraps under itself, not under the time
        lines = Table.grid(padding=(0, 1))
        lines.add_column(no_wrap=True)
        lines.add_column(no_wrap=True, width=8)
        lines.add_column()
        styles = {"critical": "bold red", "error": "red", "warning": "yellow", "info": ""}
        for when, severity, _code, message, count in list(self.alerts)[:30]:
            text = Text(clean_text(message, MESSAGE_MAX))
            if count > 1:
                text.append(f" ({count} times)", style="bold")
            lines.add_row(
                Text(f"{when:%H:%M}", style="dim"),
                Text(severity.upper(), style=styles.get(severity, "")),
                text,
            )
        self.query_one("#alerts-body", Static).update(lines, layout=False)  # a fixed box
        self.show_empty(not self.alerts)
