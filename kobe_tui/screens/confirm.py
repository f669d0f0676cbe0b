"""A yes/no question that names its target. The default answer is always the safe one (No)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class AnswerButton(Button, inherit_bindings=False):
    """A button whose ``enter`` is the screen's: the answer goes the way ``y`` and ``n`` go,
    in the order the keys came. A button's own press reached the screen one hop later, so
    ``enter`` on the focused No then ``y``, in one packet, was a Yes."""


class ConfirmScreen(ModalScreen[bool]):
    """The first answer counts; the keys count in the order they were typed."""

    BINDINGS = [
        Binding("escape", "answer(False)", "No", id="confirm.no"),
        Binding("n", "answer(False)", "No", show=False, id="confirm.n"),
        Binding("y", "answer(True)", "Yes", show=False, id="confirm.y"),
        Binding("enter", "press_focused", "Answer", show=False, id="confirm.press"),
    ]

    def __init__(
        self, question: str, *, yes: str = "Yes", no: str = "No", danger: bool = True
    ) -> None:
        super().__init__()
        self.question = question
        self.yes_label = yes
        self.no_label = no
        self.danger = danger
        self.answered = False

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="modal-box"):
            yield Static(
                self.question, id="confirm-question", markup=False
            )  # names shown literally
            with Horizontal(classes="buttons"):
                yield AnswerButton(self.no_label, id="no", variant="primary")
                yield AnswerButton(
                    self.yes_label, id="yes", variant="error" if self.danger else "success"
                )
            yield Static(f"y: {self.yes_label}   n / escape: {self.no_label}", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # the safe answer is the default

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_answer(event.button.id == "yes")  # a click

    def action_press_focused(self) -> None:
        focused = self.focused
        if isinstance(focused, Button):
            self.action_answer(focused.id == "yes")

    def action_answer(self, answer: bool) -> None:
        if not self.answered:  # a second answer in the same packet changes nothing
            self.answered = True
            self.dismiss(answer)
