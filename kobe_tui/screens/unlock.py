"""``L``: the live unlock, in two distinct steps. Escape at either step leaves everything locked.

Step 1 states the exchange, the account's balances and what will change; its default is Cancel,
and Continue is offered only once the balances have been read (an account Kobe cannot read is
an account it cannot trade safely). Step 2 asks the operator to type a phrase shown on screen.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from kobe_tui.widgets.formatting import PlainInput, literal_lines

BalancesFetcher = Callable[[], dict[str, Decimal]]


class UnlockStep1(ModalScreen[bool]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="unlock1.cancel")]

    def __init__(self, exchange: str, fetch_balances: BalancesFetcher) -> None:
        super().__init__()
        self.exchange = exchange
        self.fetch_balances = fetch_balances

    def compose(self) -> ComposeResult:
        with Vertical(id="unlock1-box", classes="modal-box danger"):
            yield Static("Unlock LIVE trading — step 1 of 2", classes="modal-title")
            yield Static(
                f"Exchange: {self.exchange} (live account, real money)\n\n"
                "What will change: the engine starts in LIVE mode. Manual orders and the kill "
                "switch act on this account; every order goes through the risk engine and the "
                "journal. Solana wallets stay simulated (no transaction is ever sent).",
                id="unlock1-text",
            )
            yield Static("Balances: loading…", id="unlock1-balances")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button("Continue", id="continue", variant="error", disabled=True)
            yield Static("escape: stay locked", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()  # the safe answer is the default
        self.load()

    @work(thread=True, exit_on_error=False, group="unlock-balances")
    def load(self) -> None:
        try:
            balances = self.fetch_balances()
        except Exception as exc:  # shown, never a crash; and live stays locked
            text = f"Balances: could not be read ({exc}).\nLive cannot be unlocked until they can."
            self.app.call_from_thread(self._show, text, False)
            return
        rows = [f"  {asset:<6} {amount}" for asset, amount in sorted(balances.items()) if amount]
        text = "Balances:\n" + ("\n".join(rows) if rows else "  (empty account)")
        self.app.call_from_thread(self._show, text, True)

    def _show(self, text: str, readable: bool) -> None:
        self.query_one("#unlock1-balances", Static).update(literal_lines(text))
        self.query_one("#continue", Button).disabled = not readable

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "continue" and not event.button.disabled)

    def action_cancel(self) -> None:
        self.dismiss(False)


class UnlockStep2(ModalScreen[bool]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="unlock2.cancel")]

    def __init__(self, phrase: str) -> None:
        super().__init__()
        self.phrase = phrase

    def compose(self) -> ComposeResult:
        with Vertical(id="unlock2-box", classes="modal-box danger"):
            yield Static("Unlock LIVE trading — step 2 of 2", classes="modal-title")
            yield Static(
                f"Type this phrase exactly to unlock:\n\n    {self.phrase}\n", id="unlock2-text"
            )
            yield PlainInput(placeholder=self.phrase, id="phrase")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button("Unlock live", id="unlock", variant="error", disabled=True)
            yield Static("escape: stay locked", classes="hint")

    def on_mount(self) -> None:
        phrase = self.query_one("#phrase", Input)
        phrase.cursor_blink = False  # no blink: it costs bandwidth over SSH
        phrase.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#unlock", Button).disabled = event.value != self.phrase

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value == self.phrase:
            self.dismiss(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        typed = self.query_one("#phrase", Input).value
        self.dismiss(event.button.id == "unlock" and typed == self.phrase)

    def action_cancel(self) -> None:
        self.dismiss(False)
