"""A dialog with fields that keeps up with keys typed fast (over SSH a burst comes in one packet).

``tab`` / ``shift+tab`` move the focus when the key arrives, and the editing keys act on the
field focused then, so ``6 tab 93000`` lands as 6 in one field and 93000 in the next. The keys
typed right behind the key that opens one (``n``, ``e``) wait until a field has the focus
(``Ready``; the app holds them). The order ticket (``n``) and the new exits (``e``) are built
on it."""

from __future__ import annotations

from typing import TypeVar

from textual.binding import Binding
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Select

Result = TypeVar("Result")

EDIT_KEYS = {
    "backspace": "delete_left",
    "delete": "delete_right",
    "left": "cursor_left",
    "right": "cursor_right",
    "home": "home",
    "end": "end",
    # a terminal's line editing, which a trader uses to clear a field (Textual's Input keys)
    "ctrl+u": "delete_left_all",
    "ctrl+k": "delete_right_all",
    "ctrl+w": "delete_left_word",
    "ctrl+a": "home",
    "ctrl+e": "end",
}


class FormScreen(ModalScreen[Result]):
    BINDINGS = [
        # Priority: the focus moves when the key arrives, before the keys behind it are given
        # to a field. Over SSH "6<tab>93000" comes in one packet; without priority, tab was
        # handled after the focused field had taken the digits that follow it (693000).
        Binding("tab", "app.focus_next", "Next field", show=False, priority=True, id="form.next"),
        Binding(
            "shift+tab",
            "app.focus_previous",
            "Previous field",
            show=False,
            priority=True,
            id="form.prev",
        ),
        # Editing keys too: Textual resolves a field's own bindings (backspace = delete left)
        # only once the key has gone round, against the field focused *then*; in a burst
        # ("backspace backspace 6 tab 93000 tab 98000") the deletes landed in the last field.
        # Here they are bound to the field focused on arrival, in order with its typing.
        *[
            Binding(key, f"edit('{action}')", show=False, priority=True, id=f"form.{key}")
            for key, action in EDIT_KEYS.items()
        ],
    ]

    # a choice's values, in the order of its list, by the Select's id (the ticket's choices)
    choices: dict[str, list[str]] = {}

    HOLD_FRAMES = 20  # a form whose first field never takes the focus: ready all the same

    class Ready(Message):
        """To the app: a field has the focus; the keys typed behind ``n`` can go on."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = False

    def on_mount(self) -> None:
        self.call_after_refresh(self._ready, self.HOLD_FRAMES)

    def _ready(self, frames: int) -> None:
        if self.focused is None and frames > 0:
            self.call_after_refresh(self._ready, frames - 1)
        else:
            self.ready = True
            self.app.post_message(self.Ready())  # behind the keys the app has still to see

    def action_edit(self, action: str) -> None:
        """An editing key, for the field focused when the key arrived, queued behind the
        characters that field has still to take (so "98000 left left" moves from the end).
        On a choice, left and right pick the previous or next option at once: its list,
        opened by enter, is mounted later, and the keys of a burst behind it were lost."""
        field = self.focused
        if isinstance(field, Input):
            field.call_later(getattr(field, f"action_{action}"))
        elif isinstance(field, Select) and action in ("cursor_left", "cursor_right"):
            choices = self.choices.get(field.id or "", [])
            if field.value in choices:
                step = 1 if action == "cursor_right" else -1
                field.value = choices[(choices.index(field.value) + step) % len(choices)]
