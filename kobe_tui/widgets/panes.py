"""The cockpit's panes. Tables update in place by row key; empty states say what is going on."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Sparkline, Static
from textual.worker import get_current_worker

from engine.untrusted import MESSAGE_MAX, NAME_MAX, clean_text

if TYPE_CHECKING:
    from engine.config import FinanceConfig, RiskConfig
    from engine.execution import Position
    from engine.journal import OrderEvent
    from engine.risk import RiskSnapshot
    from engine.runtime import AlertEvent
    from engine.stats import TradeStats
    from engine.trades import ClosedTrade
    from engine.wallets.snapshot import WalletsSnapshot


def _num(value: Decimal | None, places: int | None = None) -> str:
    if value is None:
        return "—"
    if places is not None:
        return f"{value.quantize(Decimal(1).scaleb(-places)):,}"
    text = format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _px(value: Decimal | None) -> str:
    """A price or quantity, short: 6 significant digits below 1, 4 decimals at most above."""
    if value is None:
        return "—"
    if value == 0:
        return "0"
    mag = abs(value)
    if mag >= 1000:
        text = f"{value.quantize(Decimal('0.01')):,}".rstrip("0").rstrip(".")
    elif mag >= 1:
        text = format(value.quantize(Decimal("0.0001")), "f").rstrip("0").rstrip(".")
    else:
        places = 6 - value.adjusted() - 1
        text = format(value.quantize(Decimal(1).scaleb(-places)), "f").rstrip("0").rstrip(".")
    return text


SHORT_TYPES = {"limit_maker": "TP", "stop_loss_limit": "SL"}


def literal(value: object, limit: int = MESSAGE_MAX) -> Text:
    """Text from a journal, a feed, an alert or an exchange, shown as it is: no markup is
    parsed (``oops [/]`` and ``[bold red]`` are characters) and no control character passes."""
    return value if isinstance(value, Text) else Text(clean_text(value, limit))


def literal_lines(text: str) -> Text:
    """Several lines of such text (a plan, a refusal): each line shown literally."""
    return Text("\n".join(clean_text(line, MESSAGE_MAX) for line in text.split("\n")[:50]))


def _signed(value: Decimal) -> Text:
    q = value.quantize(Decimal("0.01"))
    style = "green" if q > 0 else ("red" if q < 0 else "")
    return Text(f"{q:+,}", style=style)


def _hhmm(moment: datetime) -> str:
    return moment.strftime("%H:%M")


def _day_hhmm(moment: datetime) -> str:
    return moment.strftime("%m-%d %H:%M")


@dataclass(frozen=True)
class Col:
    """A table column. ``text`` columns (free text) truncate with an ellipsis; the others (prices,
    quantities, money, ids, times) always show whole. When the pane is too narrow, the columns
    with the lowest ``keep`` go first (``keep`` 9: never dropped). An ``optional`` column is left
    out until a row has something to show in it."""

    key: str
    label: str
    keep: int = 9
    text: bool = False
    least: int = 8  # a free-text column narrower than this is left out instead
    optional: bool = False


def fit_columns(cols: tuple[Col, ...], content: list[int], avail: int) -> list[int | None]:
    """Each column's width for ``avail`` cells (None: dropped). Whole columns first, by priority;
    free text shares what is left, never wider than its content. Cells have one space each side."""
    shown = [i for i in range(len(cols)) if content[i]]  # 0: an optional column, still empty

    def need(i: int) -> int:
        return (min(content[i], cols[i].least) if cols[i].text else content[i]) + 2

    while len(shown) > 1 and sum(need(i) for i in shown) > avail:
        droppable = [i for i in shown if cols[i].keep < 9]
        if not droppable:
            break
        shown.remove(min(droppable, key=lambda i: (cols[i].keep, -i)))
    widths: list[int | None] = [None] * len(cols)
    texts = [i for i in shown if cols[i].text]
    left = avail - sum(content[i] + 2 for i in shown if not cols[i].text) - 2 * len(texts)
    for n, i in enumerate(texts):
        share = left // (len(texts) - n)
        widths[i] = max(min(content[i], share), min(content[i], cols[i].least))
        left -= widths[i] or 0
    for i in shown:
        if not cols[i].text:
            widths[i] = content[i]
    return widths


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
        """Focus the pane's table; a pane without one takes the focus away from the others."""
        tables = self.query(DataTable)
        if tables:
            tables.first().focus()
        else:
            self.screen.set_focus(None)


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
    """A table whose column widths come from the content and the pane's width (``fit_columns``).
    Rows are kept by key with every column's cell, so a resize can show or drop a column."""

    COLUMNS: tuple[Col, ...] = ()

    def __init__(self, pane_id: str, number: int) -> None:
        super().__init__(pane_id, number)
        self._rows: dict[str, tuple[Text, ...]] = {}
        self._content = [0 if c.optional else cell_len(c.label) for c in self.COLUMNS]
        self._widths: list[int | None] = list(self._content)
        self._avail = 0

    def on_mount(self) -> None:
        # The table joins the screen right after the first frame: that frame costs less, and
        # rows that arrive before are kept by the (not yet mounted) table all the same.
        self._table = PaneTable(self, cursor_type="row", zebra_stripes=False, id=f"{self.id}-table")
        self._add_columns()
        self.show_empty(True)
        self.call_after_refresh(self._mount_table)

    def _add_columns(self) -> None:
        for col, width in zip(self.COLUMNS, self._widths, strict=True):
            if width is not None:
                self._table.add_column(col.label, key=col.key, width=width)

    def _mount_table(self) -> None:
        if self.is_attached and not self._table.is_attached:  # not while the app is closing
            self.mount(self._table)

    def focus_body(self) -> None:
        if self._table.is_attached:
            self._table.focus()
        else:  # not mounted yet (the first frame): focus it once it is
            self.call_after_refresh(self._table.focus)

    def on_resize(self) -> None:
        self._avail = max(0, self.content_size.width - 1)  # one cell for the scrollbar
        self._fit()

    def _fit(self) -> None:
        widths = fit_columns(self.COLUMNS, self._content, self._avail or 10**6)
        if widths == self._widths:
            return
        self._widths = widths
        table = self.table
        row = table.cursor_row
        table.clear(columns=True)
        self._add_columns()
        for key, cells in self._rows.items():
            table.add_row(*self._visible(cells), key=key)
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))

    def _visible(self, cells: tuple[Text, ...]) -> list[Text]:
        return [c for c, w in zip(cells, self._widths, strict=True) if w is not None]

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
            for col, value, width in zip(self.COLUMNS, row, self._widths, strict=True):
                if width is not None:
                    table.update_cell(key, col.key, value)
        else:
            table.add_row(*self._visible(row), key=key)
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

    def _grow(self, i: int, cell: Text) -> None:
        """Column ``i`` as wide as ``cell`` (and never narrower than its label)."""
        self._content[i] = max(cell.cell_len, cell_len(self.COLUMNS[i].label))

    def drop(self, key: str) -> None:
        self._rows.pop(key, None)
        table = self.table
        if key in table.rows:
            table.remove_row(key)
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


class OrdersPane(TablePane):
    TITLE = "Open orders"
    EMPTY = "No open orders"
    COLUMNS = (
        Col("time", "time", keep=2),
        Col("symbol", "symbol"),
        Col("side", "side"),
        Col("type", "type"),
        Col("qty", "qty"),
        Col("price", "price"),
        Col("filled", "filled", keep=4),
        Col("status", "status", keep=5),
        Col("protects", "protects", keep=6, optional=True),
        Col("source", "owner", keep=3, text=True),
    )

    def __init__(self, pane_id: str, number: int) -> None:
        super().__init__(pane_id, number)
        self.orders: dict[str, OrderEvent] = {}  # client id -> last event, open ones only

    def apply(self, e: OrderEvent, position: Position | None = None) -> None:
        """One journal event: the row is added, updated or dropped by the order's client id.
        ``position``: the position book's position the order opened or, for an exit (a TP/SL
        leg, an OCO), the one it protects, when known. The owner is the position's strategy
        for a strategy's order (else the order's source: cockpit, cli, …)."""
        terminal = e.event in ("fill", "cancel", "reject") or e.status in (
            "filled",
            "canceled",
            "rejected",
            "expired",
        )
        if terminal:
            self.orders.pop(e.client_id, None)
            self.drop(e.client_id)
            return
        self.orders[e.client_id] = e
        side = Text(e.side.upper(), style="green" if e.side == "buy" else "red")
        status = {"unknown": "UNKNOWN", "intent": "sending"}.get(e.event, e.status)
        owner = position.strategy if position is not None and e.source == "strategy" else ""
        protects = ""
        if position is not None and e.client_id != position.entry_client_id:
            protects = position_label(position)
        self.upsert(
            e.client_id,
            (
                _hhmm(e.ts),
                e.symbol,
                side,
                SHORT_TYPES.get(e.type, e.type),
                _px(e.qty),
                _px(e.price),
                _px(e.filled),
                status,
                protects,
                owner or e.source,
            ),
        )

    def selected(self) -> OrderEvent | None:
        key = self.selected_key()
        return self.orders.get(key) if key is not None else None


def position_label(p: Position) -> str:
    """A position named short, the way a trader reads it: ``long @ 95,047.5`` (the symbol is
    the order's own; the side and entry price tell two positions in one symbol apart)."""
    held = "long" if p.side.value == "buy" else "short"
    return f"{held} @ {_px(p.entry_price)}"


class PositionsPane(TablePane):
    TITLE = "Positions"
    EMPTY = "No open positions"
    COLUMNS = (
        Col("wallet", "wallet", keep=2, text=True),
        Col("symbol", "symbol"),
        Col("qty", "qty"),
        Col("entry", "entry", keep=5),
        Col("mark", "mark", keep=6),
        Col("upnl", "uPnL"),
        Col("tpsl", "TP / SL", keep=4),
    )

    def __init__(self, pane_id: str, number: int) -> None:
        super().__init__(pane_id, number)
        self.positions: dict[str, Position] = {}
        self.marks: dict[str, Decimal] = {}
        self._by_order: dict[str, Position] = {}  # entry's and exits' client ids -> position

    def show(self, positions: Iterable[Position]) -> None:
        fresh = {p.entry_client_id: p for p in positions}
        for key in list(self.positions):
            if key not in fresh:
                self.drop(key)
        self.positions = fresh
        self._by_order = {
            cid: p
            for p in fresh.values()
            for cid in (p.entry_client_id, *(x.client_id for x in p.exits))
        }
        self._draw()

    def of_order(self, client_id: str) -> Position | None:
        """The position an order opened or protects: its entry or one of its exits (the book's
        ``exits``; an exit the book has not listed yet is named after its entry)."""
        found = self._by_order.get(client_id)
        if found is not None or not self.positions:
            return found
        from engine.router import entry_of

        return self.positions.get(entry_of(client_id) or "")

    def mark(self, prices: dict[str, Decimal]) -> None:
        """The engine's prices of this tick. A symbol left out (a real venue's ticker that
        failed) shows no mark and no uPnL, never the last one as if it were current."""
        self.marks = dict(prices)
        self._draw()

    def _draw(self) -> None:
        for key, p in self.positions.items():
            mark = self.marks.get(p.symbol)
            upnl: Text | str = "—"
            if mark is not None and p.entry_price is not None:
                sign = 1 if p.side.value == "buy" else -1
                upnl = _signed((mark - p.entry_price) * p.qty * sign)
            tpsl = f"{_px(p.take_profit)} / {_px(p.stop_loss)}"
            self.upsert(
                key,
                (p.wallet, p.symbol, _px(p.qty), _px(p.entry_price), _px(mark), upnl, tpsl),
            )

    def selected(self) -> Position | None:
        key = self.selected_key()
        return self.positions.get(key) if key is not None else None


class WalletsPane(TablePane):
    TITLE = "Wallets"
    EMPTY = "No wallet snapshot yet"
    COLUMNS = (
        Col("wallet", "wallet"),
        Col("chain", "chain", keep=2),
        Col("role", "role", keep=1, text=True),
        Col("balance", "balance"),
        Col("pct", "% eq", keep=3),
        Col("pnl", "pnl day"),
    )

    def compose(self) -> ComposeResult:
        yield from super().compose()
        yield Static("", id="wallets-exchange")

    def on_mount(self) -> None:
        self.query_one("#wallets-exchange", Static).display = False

    def show_exchange(
        self, exchange: str, when: datetime, balances: dict[str, Decimal] | str
    ) -> None:
        """Testnet and live: the exchange account's own balances, beside Kobe's ledger (the
        table); a string says why they could not be read."""
        line = self.query_one("#wallets-exchange", Static)
        text = Text(f"{exchange} account {when:%H:%M}: ", style="bold")
        if isinstance(balances, str):
            text.append(f"could not be read ({balances})", style="red")
        else:
            text.append("  ".join(f"{a} {_px(v)}" for a, v in sorted(balances.items())) or "empty")
        line.update(text)
        line.display = True

    def show(self, snap: WalletsSnapshot) -> None:
        for w in snap.wallets:
            self.upsert(
                w.id,
                (
                    w.id,
                    w.chain,
                    w.role,
                    _num(w.balance, 2),
                    _num(w.pct_equity, 2),
                    _signed(w.pnl_day),
                ),
            )


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

    BINDINGS = [
        Binding("escape", "close_filter", "Close the filter", show=False, id="journal.close")
    ]

    def compose(self) -> ComposeResult:
        yield Input(
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

    def load(self) -> None:
        """The window for the current page: the file's tail, or the filter's matches."""
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
                        _px(t.qty),
                        _num(t.notional, 2),
                        _signed(t.pnl),
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
        self.alerts: deque[tuple[datetime, str, str, str]] = deque(maxlen=self.KEEP)

    def compose(self) -> ComposeResult:
        yield Static(self.EMPTY, classes="empty")
        yield Static("", id="alerts-body")

    def on_mount(self) -> None:
        self.show_empty(True)

    def add(self, when: datetime, severity: str, code: str, message: str) -> None:
        self.alerts.appendleft((when, severity, code, message))  # newest first
        self._draw()

    def add_event(self, when: datetime, alert: AlertEvent, *, draw: bool = True) -> None:
        self.alerts.appendleft((when, alert.severity, alert.code, alert.message))
        if draw:
            self._draw()

    def redraw(self) -> None:
        self._draw()

    def set_finance(self, when: datetime, alerts: Iterable[tuple[str, str, str]]) -> None:
        """Finance alerts are a state, not events: shown while active, replaced each snapshot."""
        kept = [a for a in self.alerts if not a[2].startswith("finance:")]
        fresh = [(when, sev, f"finance:{code}", msg) for sev, code, msg in alerts]
        self.alerts = deque([*fresh, *kept], maxlen=self.KEEP)
        self._draw()

    def _draw(self) -> None:
        lines = Text()
        styles = {"critical": "bold red", "error": "red", "warning": "yellow", "info": ""}
        for when, severity, _code, message in list(self.alerts)[:30]:
            if lines:
                lines.append("\n")
            lines.append(f"{when:%H:%M} ", style="dim")
            lines.append(f"{severity.upper():<8} ", style=styles.get(severity, ""))
            lines.append(clean_text(message, MESSAGE_MAX))
        self.query_one("#alerts-body", Static).update(lines, layout=False)  # a fixed box
        self.show_empty(not self.alerts)


class EquityPane(Pane):
    TITLE = "Equity"
    EMPTY = "Equity appears once the engine has ticked"
    KEEP = 240

    def __init__(self, pane_id: str, number: int) -> None:
        super().__init__(pane_id, number)
        self.points: deque[Decimal] = deque(maxlen=self.KEEP)

    def compose(self) -> ComposeResult:
        yield Static(self.EMPTY, classes="empty")
        yield Sparkline([], id="equity-line")
        yield Static("", id="equity-range")

    def on_mount(self) -> None:
        self.show_empty(True)

    def add_many(self, points: list[Decimal]) -> None:
        """Points from ticks drawn in one batch: kept, without drawing each one."""
        for equity in points:
            if not (self.points and self.points[-1] == equity and len(self.points) > 1):
                self.points.append(equity)

    def add(self, equity: Decimal) -> None:
        self.add_many([equity])
        self.query_one(Sparkline).data = [float(p) for p in self.points]  # drawing only
        lo, hi = min(self.points), max(self.points)
        self.query_one("#equity-range", Static).update(  # one line: no layout
            f"now {_num(equity, 2)}  low {_num(lo, 2)}  high {_num(hi, 2)}  ({len(self.points)} ticks)",
            layout=False,
        )
        self.show_empty(False)


class RiskPane(Pane):
    """The risk engine at a glance: each figure against its limit, the profile and the caps."""

    TITLE = "Risk"
    EMPTY = "Risk state appears once the engine runs"

    def compose(self) -> ComposeResult:
        yield Static(self.EMPTY, classes="empty")
        yield Static("", id="risk-body")

    def on_mount(self) -> None:
        self.show_empty(True)

    def show(self, snap: RiskSnapshot, risk: RiskConfig, finance: FinanceConfig) -> None:
        body = Text()
        state = snap.state.value
        body.append("kill switch   ")
        body.append(state, style={"TRIPPED": "bold red", "WARNING": "bold yellow"}.get(state, ""))
        if snap.reason:
            body.append(f"  {snap.reason}")
        loss = -snap.pnl_day if snap.pnl_day < 0 else Decimal(0)
        cooldown = "none"
        if risk.cooldown_after_loss_s and snap.last_loss_at is not None:
            until = snap.last_loss_at + timedelta(seconds=risk.cooldown_after_loss_s)
            cooldown = f"to {until:%H:%M:%S}" if until > self.app_clock() else "over"
        rows = (
            (
                "drawdown",
                f"{_num(snap.drawdown_pct, 2)}%",
                f"warn {_num(risk.warning_drawdown_pct)}% max {_num(risk.max_drawdown_pct)}%",
            ),
            ("peak equity", _num(snap.peak_equity, 2), "(drawdown from there)"),
            ("losing streak", str(snap.losing_streak), f"max {risk.max_losing_streak}"),
            ("today's loss", _num(loss, 2), f"max {_num(risk.max_daily_loss_usd, 2)}"),
            ("cooldown", cooldown, f"{risk.cooldown_after_loss_s} s after loss"),
        )
        for name, value, limit in rows:
            body.append(f"\n{name:<13} {value:<14} {limit}")
        caps = ", ".join(f"{w} {_num(c.max_usd)}" for w, c in finance.risk_wallets.items())
        body.append(f"\nprofile       {finance.profile_id}, capital {_num(finance.capital_usd)}")
        body.append(f"\ncaps          {caps}")
        body.append(
            f"\non trip       {risk.on_trip}, max risk/trade {risk.max_risk_per_trade_pct}%"
        )
        self.query_one("#risk-body", Static).update(body, layout=False)  # a fixed box
        self.show_empty(False)

    def app_clock(self) -> datetime:
        clock = getattr(self.app, "clock", None)
        return clock() if clock is not None else datetime.now(UTC)


class StatsPane(TablePane):
    """The whole journal's statistics (``kobe stats``), kept current with each closed trade."""

    TITLE = "Stats"
    EMPTY = "No closed trades yet"
    COLUMNS = (
        Col("name", "s:trategy w:allet", text=True, least=16),
        Col("trades", "trades"),
        Col("win", "win %", keep=4),
        Col("pnl", "PnL"),
        Col("fees", "fees", keep=3),
        Col("best", "best", keep=2),
        Col("worst", "worst", keep=2),
    )

    def __init__(self, pane_id: str, number: int) -> None:
        super().__init__(pane_id, number)
        self.stats: TradeStats | None = None

    def set_stats(self, stats: TradeStats) -> None:
        self.stats = stats
        self._draw()

    def add_many(self, trades: list[ClosedTrade]) -> None:
        if self.stats is None:
            return  # still reading the journal: these trades are in it
        for t in trades:
            self.stats.add(t)
        self._draw()

    def _draw(self) -> None:
        stats = self.stats
        if stats is None:
            return
        groups = [("all trades", stats.total)]  # s: strategy, w: wallet, d: the last day
        groups += [(f"s:{k}", b) for k, b in sorted(stats.by_strategy.items())]
        groups += [(f"w:{k}", b) for k, b in sorted(stats.by_wallet.items())]
        today = max(stats.by_day, default=None)
        if today is not None:
            groups.append((f"d:{today}", stats.by_day[today]))
        for name, b in groups:
            self.upsert(
                name,
                (
                    name,
                    str(b.trades),
                    _num(b.win_rate_pct, 1),
                    _signed(b.pnl),
                    _num(b.fees, 2),
                    _num(b.best, 2),
                    _num(b.worst, 2),
                ),
            )
        self.border_subtitle = f"{stats.total.trades:,} trades"


def _slug(symbol: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in symbol.lower())


class PriceStrip(Horizontal):
    """Each traded symbol: the last price, the change since the session began, a sparkline."""

    KEEP = 120

    def __init__(self) -> None:
        super().__init__(id="prices")
        self.first: dict[str, Decimal] = {}
        self.history: dict[str, deque[float]] = {}
        self.widths: dict[str, int] = {}
        self.shown: set[str] = set()

    def show(self, prices: dict[str, Decimal], *, record: bool = True) -> None:
        """``record``: new prices (a point on each sparkline); else only the symbols shown."""
        for symbol, price in prices.items():
            slug = _slug(symbol)
            if symbol not in self.first:
                self.first[symbol] = price
                self.history[symbol] = deque(maxlen=self.KEEP)
                self.mount(
                    Static("", id=f"px-{slug}", classes="px-label"),
                    Sparkline([], id=f"spark-{slug}", classes="px-spark"),
                )
            elif not record:
                continue
            self.history[symbol].append(float(price))  # drawing only; the label is Decimal
            first = self.first[symbol]
            change = (price - first) / first * 100 if first else Decimal(0)
            label = Text(f" {symbol.split('/')[0]} {_px(price)} ")
            label.append(
                f"{change:+.2f}%", style="green" if change > 0 else "red" if change < 0 else ""
            )
            widget = self.query_one(f"#px-{slug}", Static)
            widths = self.widths.get(symbol)
            self.widths[symbol] = label.cell_len
            widget.update(label, layout=widths != label.cell_len)  # a layout only if it grew
            self.query_one(f"#spark-{slug}", Sparkline).data = list(self.history[symbol])
        if set(prices) != self.shown:  # a symbol no longer traded or held leaves the strip
            self.shown = set(prices)
            for symbol in self.first:
                slug = _slug(symbol)
                for widget in self.query(f"#px-{slug}, #spark-{slug}"):
                    widget.display = symbol in self.shown
