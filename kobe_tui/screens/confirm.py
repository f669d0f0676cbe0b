"""A yes/no question that names its target. The default answer is always the safe one (No)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("escape", "answer(False)", "No", id="confirm.no"),
        Binding("n", "answer(False)", "No", show=False, id="confirm.n"),
        Binding("y", "answer(True)", "Yes", show=False, id="confirm.y"),
    ]

    def __init__(self, question: str, *, yes: str = "Yes", danger: bool = True) -> None:
        super().__init__()
        self.question = question
        self.yes_label = yes
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="modal-box"):
            yield Static(
                self.question, id="confirm-question", markup=False
            )  # names shown literally
            with Horizontal(classes="buttons"):
                yield Button("No", id="no", variant="primary")
                yield Button(
                    self.yes_label, id="yes", variant="error" if self.danger else "success"
                )
            yield Static("y: yes   n / escape: no", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # the safe answer is the default

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
