"""``e``: new TP/SL for a position. The new exits are in place (or the local watchdog covers
the gap) before the old ones are gone; an empty field keeps that leg's price."""

from __future__ import annotations

from decimal import Decimal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from engine.untrusted import BadNumber, parse_decimal
from kobe_tui.screens.form import FormScreen
from kobe_tui.widgets.formatting import PlainInput, px


class ExitsScreen(FormScreen[tuple[Decimal | None, Decimal | None] | None]):
    """Returns ``(tp, sl)`` (None: keep that leg), or None when cancelled (the default)."""

    BINDINGS = [Binding("escape", "cancel", "Back", id="exits.back")]

    def __init__(self, title: str, take_profit: Decimal | None, stop_loss: Decimal | None) -> None:
        super().__init__()
        self.title_text = title
        self.old = (take_profit, stop_loss)

    def compose(self) -> ComposeResult:
        with Vertical(id="exits-box", classes="modal-box"):
            yield Static(self.title_text, id="exits-title", markup=False)
            # each field named beside it: typed in, a placeholder no longer says which is which
            with Grid(id="exits-grid"):
                names = (("tp", "take-profit"), ("sl", "stop-loss"))
                for (field, name), now in zip(names, self.old, strict=True):
                    yield Label(name)
                    now_text = f"now {px(now)}" if now else "none now"
                    yield PlainInput(placeholder=now_text, id=field)
            yield Static("", id="exits-error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Back", id="back", variant="primary")
                yield Button("Replace exits", id="save", variant="warning")
            yield Static("enter: replace   empty: keep   escape: back", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#tp", Input).focus()

    def _value(self, field: str) -> Decimal | None:
        text = self.query_one(f"#{field}", Input).value.strip()
        if not text:
            return None
        return parse_decimal(text, field, positive=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "save":
            self.dismiss(None)
            return
        try:
            tp, sl = self._value("tp"), self._value("sl")
        except BadNumber as exc:
            self.query_one("#exits-error", Static).update(str(exc))
            return
        if tp is None and sl is None:
            self.query_one("#exits-error", Static).update("give a new TP, a new SL, or both")
            return
        self.dismiss((tp, sl))

    def on_input_submitted(self) -> None:
        self.query_one("#save", Button).press()

    def action_cancel(self) -> None:
        self.dismiss(None)
