"""The cockpit's panes. Tables update in place by row key; empty states say what is going on."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Sparkline, Static

from engine.untrusted import MESSAGE_MAX, NAME_MAX, clean_text

if TYPE_CHECKING:
    from engine.execution import Position
    from engine.journal import OrderEvent
    from engine.runtime import AlertEvent
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


def _cell(value: Text | str) -> Text:
    return literal(value, NAME_MAX)


def _signed(value: Decimal) -> Text:
    q = value.quantize(Decimal("0.01"))
    style = "green" if q > 0 else ("red" if q < 0 else "")
    return Text(f"{q:+,}", style=style)


def _hhmm(moment: datetime) -> str:
    return moment.strftime("%H:%M")


def _day_hhmm(moment: datetime) -> str:
    return moment.strftime("%m-%d %H:%M")


class Pane(Vertical):
    """A titled box with a table (or another body) and an empty-state line."""

    can_focus = False
    TITLE = ""
    EMPTY = ""

    def __init__(self, pane_id: str, number: int) -> None:
        super().__init__(id=pane_id, classes="pane")
        self.number = number
        self.border_title = f"{number} {self.TITLE}"

    def compose(self) -> ComposeResult:
        yield Static(self.EMPTY, classes="empty")

    def show_empty(self, empty: bool, text: str | None = None) -> None:
        note = self.query_one(".empty", Static)
        if text is not None:
            note.update(text)
        note.display = empty

    def focus_body(self) -> None:
        tables = self.query(DataTable)
        if tables:
            tables.first().focus()
        else:  # not mounted yet (the first frame): focus it once it is
            self.call_after_refresh(lambda: [t.focus() for t in self.query(DataTable)[:1]])


class TablePane(Pane):
    COLUMNS: tuple[tuple[str, str], ...] = ()
    WIDTHS: tuple[int, ...] = ()  # fixed widths: the layout never depends on update order

    def compose(self) -> ComposeResult:
        yield Static(self.EMPTY, classes="empty")

    def on_mount(self) -> None:
        # The table joins the screen right after the first frame: that frame costs less, and
        # rows that arrive before are kept by the (not yet mounted) table all the same.
        table: DataTable[Text | str] = DataTable(
            cursor_type="row", zebra_stripes=False, id=f"{self.id}-table"
        )
        widths = self.WIDTHS or (None,) * len(self.COLUMNS)
        for (key, label), width in zip(self.COLUMNS, widths, strict=True):
            table.add_column(label, key=key, width=width)
        self._table = table
        self.show_empty(table.row_count == 0)
        self.call_after_refresh(self._mount_table)

    def _mount_table(self) -> None:
        if self.is_attached and not self._table.is_attached:  # not while the app is closing
            self.mount(self._table)

    @property
    def table(self) -> DataTable[Text | str]:
        return self._table

    def show_empty(self, empty: bool, text: str | None = None) -> None:
        super().show_empty(empty, text)
        self.table.display = not empty  # an empty box says what is going on, no bare header

    def upsert(self, key: str, cells: tuple[Text | str, ...]) -> None:
        cells = tuple(_cell(c) for c in cells)  # a DataTable parses a str cell as markup
        table = self.table
        if key in table.rows:
            for (col, _), value in zip(self.COLUMNS, cells, strict=True):
                table.update_cell(key, col, value)
        else:
            table.add_row(*cells, key=key)
        self.show_empty(table.row_count == 0)

    def drop(self, key: str) -> None:
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
        ("time", "time"),
        ("symbol", "symbol"),
        ("side", "side"),
        ("type", "type"),
        ("qty", "qty"),
        ("price", "price"),
        ("filled", "filled"),
        ("status", "status"),
    )
    WIDTHS = (5, 12, 4, 6, 9, 10, 7, 8)

    def __init__(self, pane_id: str, number: int) -> None:
        super().__init__(pane_id, number)
        self.orders: dict[str, OrderEvent] = {}  # client id -> last event, open ones only

    def apply(self, e: OrderEvent) -> None:
        """One journal event: the row is added, updated or dropped by the order's client id."""
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
            ),
        )

    def selected(self) -> OrderEvent | None:
        key = self.selected_key()
        return self.orders.get(key) if key is not None else None


class PositionsPane(TablePane):
    TITLE = "Positions"
    EMPTY = "No open positions"
    COLUMNS = (
        ("wallet", "wallet"),
        ("symbol", "symbol"),
        ("qty", "qty"),
        ("entry", "entry"),
        ("mark", "mark"),
        ("upnl", "uPnL"),
        ("tpsl", "TP / SL"),
    )
    WIDTHS = (11, 12, 9, 10, 10, 7, 21)

    def __init__(self, pane_id: str, number: int) -> None:
        super().__init__(pane_id, number)
        self.positions: dict[str, Position] = {}
        self.marks: dict[str, Decimal] = {}

    def show(self, positions: Iterable[Position]) -> None:
        fresh = {p.entry_client_id: p for p in positions}
        for key in list(self.positions):
            if key not in fresh:
                self.drop(key)
        self.positions = fresh
        self._draw()

    def mark(self, prices: dict[str, Decimal]) -> None:
        self.marks.update(prices)
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
        ("wallet", "wallet"),
        ("chain", "chain"),
        ("role", "role"),
        ("balance", "balance"),
        ("pct", "% eq"),
        ("pnl", "pnl day"),
    )
    WIDTHS = (11, 8, 8, 8, 6, 7)

    def __init__(self, pane_id: str, number: int) -> None:
        super().__init__(pane_id, number)
        self._shown: dict[str, tuple[Decimal, Decimal, Decimal]] = {}

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
    back (``pageup`` / ``pagedown``) and a filter (``/``). Never the whole file."""

    TITLE = "Trades journal"
    EMPTY = "No closed trades yet"
    WINDOW = 50
    COLUMNS = (
        ("time", "time"),
        ("pair", "pair"),
        ("side", "side"),
        ("qty", "qty"),
        ("notional", "notional"),
        ("pnl", "PnL"),
        ("reason", "reason"),
    )
    WIDTHS = (11, 12, 4, 9, 8, 7, 30)

    def __init__(self, pane_id: str, number: int, path: Path) -> None:
        super().__init__(pane_id, number)
        self.path = path
        self.page = 0
        self.filter_text = ""
        self.trades: list[ClosedTrade] = []

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter: symbol, wallet, strategy, reason", id="journal-filter")
        yield from super().compose()

    def on_mount(self) -> None:
        # (TablePane.on_mount runs too: Textual calls each class's handler in the MRO)
        box = self.query_one("#journal-filter", Input)
        box.display = False
        box.cursor_blink = False

    def load(self) -> None:
        """Read the window for the current page from the tail of the file."""
        from engine.journal import tail_jsonl
        from engine.trades import ClosedTrade

        want = (self.page + 1) * self.WINDOW
        records = tail_jsonl(self.path, want)
        window = records[: max(0, len(records) - self.page * self.WINDOW)][-self.WINDOW :]
        self.trades = []
        for record in window:
            try:
                self.trades.append(ClosedTrade.from_record(record))
            except (KeyError, TypeError, ValueError, ArithmeticError):
                continue  # a damaged record: not shown, never a crash at start
        self._draw()

    def add(self, trade: ClosedTrade) -> None:
        self.add_many([trade])

    def add_many(self, trades: list[ClosedTrade]) -> None:
        if self.page != 0:
            return  # paging back: the live tail does not move the window
        self.trades = [*self.trades, *trades][-self.WINDOW :]
        self._draw()

    def _draw(self) -> None:
        table = self.table
        table.clear()
        needle = self.filter_text.lower()
        shown = 0
        for t in reversed(self.trades):  # newest first
            text = f"{t.symbol} {t.wallet} {t.strategy} {t.reason}".lower()
            if needle and needle not in text:
                continue
            table.add_row(
                _day_hhmm(t.closed_at),
                _cell(t.symbol),
                _cell(t.side),
                _px(t.qty),
                _num(t.notional, 2),
                _signed(t.pnl),
                literal(t.reason, 40),
                key=t.trade_id,
            )
            shown += 1
        page = f"page {self.page + 1}" if self.page else "latest"
        filt = f", filter '{escape(clean_text(self.filter_text, 40))}'" if self.filter_text else ""
        self.border_subtitle = f"{page}{filt}"
        empty = "No trades match the filter" if needle and self.trades else self.EMPTY
        self.show_empty(shown == 0, empty)

    def page_back(self) -> None:
        self.page += 1
        self.load()
        if not self.trades:
            self.page -= 1
            self.load()

    def page_forward(self) -> None:
        if self.page > 0:
            self.page -= 1
            self.load()

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        self._draw()


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
        self.query_one("#alerts-body", Static).update(lines)
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
        self.query_one("#equity-range", Static).update(
            f"now {_num(equity, 2)}  low {_num(lo, 2)}  high {_num(hi, 2)}  ({len(self.points)} ticks)"
        )
        self.show_empty(False)
