"""``n``: the order ticket. It validates as you type and shows the sized plan, or the refusal,
before anything can be sent; "Place" is enabled only when the plan stands."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from textual import on, work
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Button, Input, Label, Select, Static

from engine.exchange.base import OrderType, Side
from engine.proposal import Proposal, Refused, Sizing, Source
from kobe_tui.screens.form import FormScreen
from kobe_tui.widgets.formatting import PlainInput, literal_lines

if TYPE_CHECKING:
    from engine.router import OrderPlan

Planner = Callable[[Proposal], "OrderPlan"]


class TicketInput(PlainInput):
    """A field of the ticket. A field takes the printable keys before the screen's bindings;
    once ``ctrl+s`` or ``escape`` is on its way (``leaving``), it leaves them to the screen, so
    that ``q`` right behind (``ctrl+s q`` in one packet) reaches the ticket's ``q``."""

    def check_consume_key(self, key: str, character: str | None) -> bool:
        leaving = isinstance(self.screen, OrderTicket) and self.screen.leaving
        return not leaving and super().check_consume_key(key, character)


class OrderTicket(FormScreen[Proposal | None]):
    BINDINGS = [
        # Priority, for the same reason as the form's tab: "ctrl+s 5" in one packet typed the
        # 5 into the focused field before ctrl+s reached the screen (amount 15 became 155): the
        # plan shown was thrown away, the order not placed, and a second ctrl+s sent 155.
        # Escape too, so that the two keep the order they were typed in ("escape ctrl+s" is
        # a cancel, never an order)
        Binding("escape", "cancel", "Cancel", priority=True, id="ticket.cancel"),
        Binding("ctrl+s", "place", "Place order", priority=True, id="ticket.place"),
        # "ctrl+s q" in one packet: the q went into a field of the closing ticket and was lost
        Binding("q", "quit_behind", "Quit", show=False, priority=True, id="ticket.quit"),
    ]

    def __init__(
        self,
        symbols: list[str],
        wallets: list[str],
        wallet: str,
        planner: Planner,
        waiting: Callable[[Proposal], str | None] = lambda proposal: None,
        amount: str = "15",
    ) -> None:
        super().__init__()
        self.amount = amount  # the quote amount to start from (router.default_quote_usd)
        self.symbols = symbols
        self.wallets = wallets
        self.default_wallet = wallet
        self.planner = planner
        self.waiting = waiting  # why the plan may take long (the venue is down), said at once
        self.choices = {  # each choice's values, in the order of its list
            "symbol": symbols,
            "side": ["buy", "sell"],
            "type": ["market", "limit"],
            "sizing": ["quote", "risk"],
            "wallet": wallets,
        }
        self.proposal: Proposal | None = None
        self.plan_ok = False
        self.closing = False  # placed or cancelled: later keys of the packet change nothing
        self.leaving = False  # ctrl+s or escape on its way (queued behind the field's keys)
        self.quit_behind = False  # and a q right behind it: the main screen's q once closed

    def compose(self) -> ComposeResult:
        with Vertical(id="ticket-box", classes="modal-box") as box:
            # the title in the border, and the plan right under the fields: with a limit
            # order's plan (five lines) the whole ticket still fits 80x24, its last line too
            box.border_title = "New order"
            with Grid(id="ticket-grid"):
                yield Label("symbol")
                yield Select(
                    [(s, s) for s in self.symbols],
                    value=self.symbols[0],
                    allow_blank=False,
                    compact=True,
                    id="symbol",
                )
                yield Label("side")
                yield Select(
                    [("buy", "buy"), ("sell", "sell")],
                    value="buy",
                    allow_blank=False,
                    compact=True,
                    id="side",
                )
                yield Label("type")
                yield Select(
                    [("market", "market"), ("limit", "limit")],
                    value="market",
                    allow_blank=False,
                    compact=True,
                    id="type",
                )
                yield Label("price")
                yield TicketInput(placeholder="limit only", compact=True, id="price")
                yield Label("size")
                yield Select(
                    [("quote amount", "quote"), ("risk % of wallet", "risk")],
                    value="quote",
                    allow_blank=False,
                    compact=True,
                    id="sizing",
                )
                yield Label("amount")
                yield TicketInput(value=self.amount, compact=True, id="amount")
                yield Label("stop-loss")
                yield TicketInput(placeholder="needed for risk %", compact=True, id="sl")
                yield Label("take-profit")
                yield TicketInput(placeholder="optional", compact=True, id="tp")
                yield Label("wallet")
                yield Select(
                    [(w, w) for w in self.wallets],
                    value=self.default_wallet,
                    allow_blank=False,
                    compact=True,
                    id="wallet",
                )
            yield Static("", id="plan")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button("Place order", id="place", variant="warning", disabled=True)
            yield Static(
                "tab: next field   ←/→: change a choice   ctrl+s: place   escape: cancel",
                classes="hint",
            )

    def on_mount(self) -> None:
        for box in self.query(Input):
            box.cursor_blink = False  # no blink: it costs bandwidth over SSH
        self.refresh_plan()

    # -- reading the form ---------------------------------------------------------------------

    def _value(self, widget_id: str) -> str:
        widget = self.query_one(f"#{widget_id}")
        if isinstance(widget, Select):
            return str(widget.value)
        assert isinstance(widget, Input)
        return widget.value.strip()

    def _decimal(
        self, widget_id: str, problems: list[str], required: bool = False
    ) -> Decimal | None:
        text = self._value(widget_id)
        if not text:
            if required:
                problems.append(f"{widget_id}: required")
            return None
        try:
            value = Decimal(text)
        except InvalidOperation:
            problems.append(f"{widget_id}: not a number ({text!r})")
            return None
        if not value.is_finite():
            problems.append(f"{widget_id}: not a number ({text!r})")
            return None
        return value

    def build(self) -> tuple[Proposal | None, list[str]]:
        problems: list[str] = []
        kind = OrderType(self._value("type"))
        price = self._decimal("price", problems, required=kind is OrderType.LIMIT)
        if kind is OrderType.MARKET and price is not None:
            problems.append("price: only for limit orders (clear it, or choose limit)")
        amount = self._decimal("amount", problems, required=True)
        sl = self._decimal("sl", problems)
        tp = self._decimal("tp", problems)
        sizing = Sizing(self._value("sizing"))
        if sizing is Sizing.RISK and sl is None and not problems:
            problems.append("stop-loss: required for risk sizing")
        if problems or amount is None:
            return None, problems
        return (
            Proposal(
                symbol=self._value("symbol"),
                side=Side(self._value("side")),
                entry_type=kind,
                sizing=sizing,
                amount=amount,
                wallet=self._value("wallet"),
                source=Source.COCKPIT,
                price=price,
                stop_loss=sl,
                take_profit=tp,
                reason="manual order (cockpit)",
            ),
            [],
        )

    # -- live validation ----------------------------------------------------------------------

    @on(Input.Changed)
    @on(Select.Changed)
    def _changed(self) -> None:
        self.refresh_plan()

    def refresh_plan(self) -> None:
        self.plan_ok = False
        self.query_one("#place", Button).disabled = True
        proposal, problems = self.build()
        self.proposal = proposal
        if proposal is None:
            self._show(["Fix:", *problems], ok=False)
            return
        why = self.waiting(proposal)
        self._show(["sizing…", *([why] if why else [])], ok=False)
        self.compute(proposal)

    @work(thread=True, exclusive=True, group="ticket-plan", exit_on_error=False)
    def compute(self, proposal: Proposal) -> None:
        try:
            plan = self.planner(proposal)
        except Refused as exc:
            self.app.call_from_thread(self._result, proposal, ["Refused:", *exc.reasons], False)
            return
        except Exception as exc:  # an exchange error while sizing: say it, never crash
            self.app.call_from_thread(self._result, proposal, [f"Cannot size now: {exc}"], False)
            return
        self.app.call_from_thread(self._result, proposal, ["Plan:", *plan.lines()], True)

    def _result(self, proposal: Proposal, lines: list[str], ok: bool) -> None:
        if proposal is not self.proposal:
            return  # the form changed meanwhile: a newer plan is on its way
        self.plan_ok = ok
        self.query_one("#place", Button).disabled = not ok
        self._show(lines, ok=ok)

    def _show(self, lines: list[str], ok: bool) -> None:
        plan = self.query_one("#plan", Static)
        plan.update(literal_lines("\n".join(lines)))  # refusals quote exchange text
        plan.set_class(not ok, "-refused")

    # -- actions ------------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "place":
            self.action_place()
        else:
            self.action_cancel()

    def action_place(self) -> None:
        """``ctrl+s`` acts as it arrives, queued behind the keys the focused field has still to
        take: it places the plan shown only if it is the plan of what the fields then hold
        ("12" then ctrl+s in one packet: the plan shown is for the old amount, nothing is
        placed). Keys behind it land in the closed ticket, never in a field of the order."""
        self.leaving = True
        self._in_order(self._place)

    def _place(self) -> None:
        proposal, _ = self.build()
        shown = self.proposal
        if not self.closing and self.plan_ok and shown is not None and proposal == shown:
            self._close(shown)
        if not self.closing:  # nothing placed: the ticket stays, a q behind it is dropped
            self.leaving = self.quit_behind = False

    def action_cancel(self) -> None:
        """``escape``: an open choice list closes; otherwise the ticket, nothing placed."""
        for choice in self.query(Select):
            if choice.expanded:
                choice.expanded = False
                choice.focus()
                return
        self.leaving = True
        self._in_order(lambda: self._close(None))

    def action_quit_behind(self) -> None:
        """``q`` right behind ``ctrl+s`` or ``escape`` (``ctrl+s q`` in one packet, as SSH
        bundles them) is the main screen's ``q`` once the ticket has closed: the cockpit
        quits, after the order is placed, asking first when orders are open. Anywhere else
        a ``q`` is the focused field's."""
        if self.closing:
            self.app.call_later(self.app.action_quit)  # after the ticket's result is taken
        elif self.leaving:
            self.quit_behind = True
        else:
            raise SkipAction()

    def _in_order(self, then: Callable[[], None]) -> None:
        """Run ``then`` once the focused field has taken the keys typed before this one."""
        field = self.focused
        if isinstance(field, Input):
            field.call_later(then)
        else:
            then()

    def _close(self, result: Proposal | None) -> None:
        if not self.closing:  # once: a second dismiss would take the screen under it
            self.closing = True
            self.dismiss(result)  # its result is taken before what is queued after this
            if self.quit_behind:
                self.app.call_later(self.app.action_quit)
