"""The keys that move around and what is offered now: which actions are available
(``check_action``), the panes (numbers, ``tab``), the journal's filter and pages, the help and
the command palette (every action, through the same path as its key)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import partial
from typing import Any

from textual import events
from textual.app import SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from kobe_tui.engine_host import EngineHost
from kobe_tui.screens.form import FormScreen
from kobe_tui.state import PANES
from kobe_tui.widgets.journal import JournalPane
from kobe_tui.widgets.pane import Pane

FORM_KEYS = ("n", "e")  # the keys of new_order and edit_exits: each opens a form
HOLD_MAX_S = 2.0  # keys held for a form that never opened go on after this, whatever happened

ENGINE_ACTIONS = {
    "new_order",
    "cancel_order",
    "cancel_all",
    "close_position",
    "edit_exits",
    "trip",
    "reset",
    "pause",
    "resume",
}


# the palette's titles where the footer's one word is not what a trader types: searching "trip"
# or "kill switch" found nothing ("Kill", "Reset kill")
PALETTE_TITLES = {"trip": "Kill switch: trip", "reset": "Kill switch: reset"}


class Navigation(EngineHost):
    """Moving between panes, the journal's filter and pages, help, the palette."""

    # -- keys typed right behind n or e -------------------------------------------------------

    _held: list[events.Key] | None = None  # the keys behind n / e, while they wait
    _opener: events.Key | None = None  # that n / e, on its way through the panes to its binding

    async def on_event(self, event: events.Event) -> None:
        """``n`` and the order typed behind it in one packet (``n tab tab right tab 76000``):
        the keys behind went to the panes while the ticket was being built (tab moved the
        pane, the digits showed panes 7 and 6) and the ticket kept its defaults. From ``n`` or
        ``e`` on the main screen, the keys that follow wait: ``n`` goes its usual way, in its
        turn behind the keys before it (``c n``: the confirmation's No), then they go on once
        the form it opened has a field focused, or at once if it opened none. ``ctrl+t`` (trip
        from anywhere) never waits."""
        if isinstance(event, events.Key):
            if not event.is_forwarded:
                if self._held is not None and event.key != "ctrl+t":
                    self._held.append(events.Key(event.key, event.character))
                    return
                if event.key in FORM_KEYS and self._opens_form_now():
                    self._held, self._opener = [], event
                    self.set_timer(HOLD_MAX_S, partial(self._release_held, self._held))
            elif event is self._opener:  # n / e back from the panes: its binding runs now
                await super().on_event(event)
                self._opener = None
                top = self.screen
                if not isinstance(top, FormScreen) or top.ready:  # else: on its Ready
                    await self._release_held()
                return
        await super().on_event(event)

    def _opens_form_now(self) -> bool:
        from textual.widgets import Input

        return self.screen is self.screen_stack[0] and not isinstance(self.focused, Input)

    async def on_form_screen_ready(self) -> None:
        if self._opener is None:
            await self._release_held()

    async def _release_held(self, which: list[events.Key] | None = None) -> None:
        """The keys held go on, in their order, before any key that comes after."""
        if which is not None and which is not self._held:
            return  # the timer of an n whose keys went on already
        held, self._held, self._opener = self._held or [], None, None
        for key in held:
            await self.on_event(key)

    # -- keys: availability -------------------------------------------------------------------

    def _flatten_to_confirm(self) -> bool:
        """TRIPPED by an operator who did not confirm the flatten ``on_trip`` asks for: ``k``
        asks again (and trips nothing twice)."""
        from engine.risk.state import NOT_FLATTENED

        flatten = self.settings is not None and self.settings.config.risk.on_trip == "flatten"
        return flatten and self.risk_reason.startswith(NOT_FLATTENED)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Unavailable actions are greyed out; at 80 columns they leave the footer, so what
        can be done now comes first. ``L`` is always available: it says what live needs."""
        unavailable = None if self.size.width >= 120 else False
        ready = self.runtime is not None and self.engine_state in ("running", "paused")
        paused = self.runtime is not None and self.runtime.paused
        if action == "resume" and not paused:  # `p` is one of the two, at every width
            return False
        if action in ENGINE_ACTIONS and not ready:
            return unavailable
        if action == "pause" and paused:
            return False
        if action == "reset" and self.risk_state != "TRIPPED":
            return unavailable
        if action == "trip" and self.risk_state == "TRIPPED" and not self._flatten_to_confirm():
            return unavailable
        if action in ("cancel_order", "cancel_all") and not self._has("orders"):
            return unavailable
        if action in ("close_position", "edit_exits") and not self._has("positions"):
            return unavailable
        return True

    # -- keys: panes --------------------------------------------------------------------------

    def _pane_bar(self) -> str:
        parts = []
        for i, name in enumerate(PANES):
            if i == self.active_pane:
                parts.append(f"[reverse] {i + 1} {name.capitalize()} [/]")
            else:
                parts.append(f" {i + 1} {name[:3].capitalize()} ")
        return "".join(parts)

    def _show_active(self) -> None:
        self._last_drain = time.monotonic()  # the key's frame first; engine events wait a beat
        for i, name in enumerate(PANES):
            self.query_one(f"#{name}", Pane).set_class(i == self.active_pane, "-active")
        self.query_one("#pane-bar", Static).update(self._pane_bar(), layout=False)
        self.query_one(f"#{PANES[self.active_pane]}", Pane).focus_body()

    def action_show_pane(self, index: int) -> None:
        self.active_pane = index % len(PANES)
        self._show_active()

    def action_next_pane(self) -> None:
        self.action_show_pane(self.active_pane + 1)

    def action_prev_pane(self) -> None:
        self.action_show_pane(self.active_pane - 1)

    def action_focus_next(self) -> None:
        """``tab``: on the main screen the next pane (at every size); in a dialog the next field."""
        if self.screen is self.screen_stack[0]:
            self.action_next_pane()
        else:
            super().action_focus_next()

    def action_focus_previous(self) -> None:
        if self.screen is self.screen_stack[0]:
            self.action_prev_pane()
        else:
            super().action_focus_previous()

    def action_filter(self) -> None:
        """``/`` (a priority key: handled when it arrives). The keys typed right behind it go
        into the filter's box: they went to the table focused before, where ``/pepe`` paused
        the engine (``p``) and ``/kek`` tripped the kill switch (``k``). A ``/`` typed in a
        field (the box itself, the ticket) is the field's."""
        from textual.actions import SkipAction
        from textual.widgets import Input

        if self.screen is not self.screen_stack[0] or isinstance(self.focused, Input):
            raise SkipAction()
        self.action_show_pane(PANES.index("journal"))
        box = self.query_one("#journal-filter", Input)
        box.display = True
        self.screen.set_focus(box)  # at once: the keys queued behind "/" are the box's

    def on_input_changed(self, event: Any) -> None:
        if getattr(event.input, "id", "") == "journal-filter":
            self.query_one(JournalPane).set_filter(event.value)

    def on_input_submitted(self, event: Any) -> None:
        if getattr(event.input, "id", "") == "journal-filter":
            self.query_one(JournalPane).focus_body()

    def action_page_back(self) -> None:
        self.query_one(JournalPane).page_back()

    def action_page_forward(self) -> None:
        self.query_one(JournalPane).page_forward()

    def action_refresh_health(self) -> None:
        self._recheck_asked = True
        self.load_settings()

    def action_help(self) -> None:
        rows: list[tuple[str, str]] = []
        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and not binding.key.isdigit():
                key = binding.key_display or binding.key
                if rows and rows[-1][0] == key:  # one key, two actions (p: pause / resume)
                    rows[-1] = (key, f"{rows[-1][1]} / {binding.description.lower()}")
                else:  # where a key works, when the footer's word does not say it all
                    rows.append((key, binding.tooltip or binding.description))
        rows.append(("1-9", "Show pane: " + ", ".join(PANES)))
        rows.append(("escape", "Back / close a dialog (the safe answer)"))
        rows.append(("ctrl+p", "Command palette: every action"))
        from kobe_tui.screens.help import HelpScreen

        self.push_screen(HelpScreen(rows))

    # -- the command palette: every Kobe action, through the same path as its key -----------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        listed: set[str] = set()
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            if binding.action in listed:
                continue  # one entry an action (the kill switch: k and ctrl+t)
            listed.add(binding.action)
            # each pane by its number and name ("Pane 8: risk"): one entry for all showed
            # pane 1 only, and "risk" or "stats" found nothing
            title, action = binding.description, binding.action
            title = PALETTE_TITLES.get(action, title)  # the footer's word, or a fuller one
            key = binding.key_display or binding.key
            yield SystemCommand(title, f"key {key}", partial(self._palette_run, action, title))
        for command in super().get_system_commands(screen):
            if command.title != "Quit":  # ours asks first when orders are open (``q``)
                yield command

    async def _palette_run(self, action: str, title: str) -> None:
        name = action.split("(")[0]
        if not self.check_action(name, ()):
            self.notify(f"{title}: not available now", severity="warning")
            return
        await self.run_action(action)
