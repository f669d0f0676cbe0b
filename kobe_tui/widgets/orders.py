"""The trading panes: open orders and positions (the position book's)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from rich.text import Text

from kobe_tui.widgets.columns import Col
from kobe_tui.widgets.formatting import px, signed
from kobe_tui.widgets.pane import TablePane

if TYPE_CHECKING:
    from engine.execution import Position
    from engine.journal import OrderEvent


SHORT_TYPES = {"limit_maker": "TP", "stop_loss_limit": "SL"}


def _hhmm(moment: datetime) -> str:
    return moment.strftime("%H:%M")


class OrdersPane(TablePane):
    TITLE = "Open orders"
    EMPTY = "No open orders"
    COLUMNS = (
        # Never left out: the symbol, side, type, quantity, price, the position an exit
        # protects and the order's owner (its strategy, or the cockpit, the cli). Where they do
        # not fit on one line, each row takes two, as the positions pane's: the owner under the
        # symbol, the type under the side, what the exit protects under its price.
        Col("time", "time", keep=2),
        Col("symbol", "symbol"),
        Col("side", "side"),
        Col("type", "type", under="side"),
        Col("qty", "qty"),
        Col("price", "price"),
        Col("filled", "filled", keep=4),
        Col("status", "status", keep=5),
        Col("protects", "protects", optional=True, under="price"),
        Col("source", "owner", text=True, least=16, under="symbol"),
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
        price = e.price
        if position is not None and e.client_id != position.entry_client_id:
            protects = position_label(position)
            if e.type == "stop_loss_limit" and position.stop_loss is not None:
                price = position.stop_loss  # its trigger, the price a trader set (not its limit)
        self.upsert(
            e.client_id,
            (
                _hhmm(e.ts),
                e.symbol,
                side,
                SHORT_TYPES.get(e.type, e.type),
                px(e.qty),
                px(price),
                px(e.filled),
                status,
                protects,
                owner or e.source,
            ),
        )

    def selected(self) -> OrderEvent | None:
        key = self.selected_key()
        return self.orders.get(key) if key is not None else None


def position_label(p: Position) -> str:
    """A position named short, the way a trader reads it: ``long @ 95,047.50`` (the symbol is
    the order's own; the side and entry price tell two positions in one symbol apart). The
    entry as the positions pane shows it (``fixed``), so the two read the same."""
    held = "long" if p.side.value == "buy" else "short"
    return f"{held} @ {px(p.entry_price, fixed=True)}"


class PositionsPane(TablePane):
    TITLE = "Positions"
    EMPTY = "No open positions"
    COLUMNS = (
        # Never left out: the symbol, quantity, entry, uPnL and what protects the position (TP,
        # SL). Where they do not fit on one line (a third of 160 columns), each row takes two:
        # the wallet under the symbol, the uPnL under the quantity, the mark under the entry,
        # the SL under the TP. On one line the wallet and the mark (also in the price strip) go.
        Col("wallet", "wallet", keep=2, text=True, under="symbol"),
        Col("symbol", "symbol"),
        Col("qty", "qty"),
        Col("entry", "entry"),
        Col("mark", "mark", keep=3, under="entry"),
        Col("upnl", "uPnL", under="qty"),
        Col("tp", "TP"),
        Col("sl", "SL", under="tp"),
    )

    def __init__(self, pane_id: str, number: int) -> None:
        super().__init__(pane_id, number)
        self.positions: dict[str, Position] = {}
        # what a trade left below the venue's minimums: shown as dust (its value at the mark),
        # never as an open position to close or protect
        self.dust: dict[str, Position] = {}
        self.marks: dict[str, Decimal] = {}
        self._by_order: dict[str, Position] = {}  # entry's and exits' client ids -> position
        # entries whose TP/SL nothing covers now (no live exit, no watchdog item): their TP and
        # SL read "lost", never the prices as if something still held them
        self.unprotected: frozenset[str] = frozenset()

    def show(self, positions: Iterable[Position], dust: Iterable[Position] = ()) -> None:
        fresh = {p.entry_client_id: p for p in positions}
        fresh_dust = {p.entry_client_id: p for p in dust}
        for key in [*self.positions, *self.dust]:
            if key not in fresh and key not in fresh_dust:
                self.drop(key)
        self.positions, self.dust = fresh, fresh_dust
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

    def set_unprotected(self, entries: Iterable[str]) -> None:
        entries = frozenset(entries)
        if entries != self.unprotected:
            self.unprotected = entries
            self._draw()

    def _draw(self) -> None:
        for key, p in [*self.positions.items(), *self.dust.items()]:
            mark = self.marks.get(p.symbol)
            upnl: Text | str = "—"
            if mark is not None and p.entry_price is not None:
                upnl = signed(p.unrealized(mark))
            tp: Text | str = "dust" if p.dust else px(p.take_profit)  # (no exit: too small)
            sl: Text | str = "" if p.dust else px(p.stop_loss)
            if key in self.unprotected:
                tp, sl = (
                    (Text("lost", style="bold red") if p.take_profit else "—"),
                    (Text("lost", style="bold red") if p.stop_loss else "—"),
                )
            self.upsert(
                key,
                (
                    p.wallet,
                    p.symbol,
                    px(p.qty),
                    px(p.entry_price, fixed=True),  # as its mark beside it: 95,000.00, not 95,000
                    px(mark, fixed=True),
                    upnl,
                    tp,
                    sl,
                ),
            )

    def selected(self) -> Position | None:
        """The open position selected; None on a dust row (see :meth:`selected_dust`)."""
        key = self.selected_key()
        return self.positions.get(key) if key is not None else None

    def selected_dust(self) -> Position | None:
        key = self.selected_key()
        return self.dust.get(key) if key is not None else None
