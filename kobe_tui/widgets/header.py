"""The header: the mode by word and colour, the exchange, the engine state."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Static

from engine.bootstrap import Mode

MODE_WORD = {Mode.PAPER: "PAPER", Mode.TESTNET: "TESTNET", Mode.LIVE: "LIVE"}


class KobeHeader(Horizontal):
    """One line: ``KOBE │ PAPER │ binance │ engine: idle``. The mode is readable without colour."""

    engine_state: reactive[str] = reactive("idle")

    def __init__(self, mode: Mode, exchange: str, *, live_locked: bool = False) -> None:
        super().__init__(id="header")
        self.mode = mode
        self.exchange = exchange
        self.live_locked = live_locked

    def mode_text(self) -> str:
        word = MODE_WORD[self.mode]
        if self.mode is Mode.LIVE and self.live_locked:
            return f" {word} — LOCKED "
        return f" {word} "

    def set_mode(self, mode: Mode, exchange: str, *, live_locked: bool) -> None:
        self.mode, self.exchange, self.live_locked = mode, exchange, live_locked
        badge = self.query_one("#mode", Static)
        badge.update(self.mode_text())
        badge.set_classes(f"mode-{mode.value}")
        self.query_one("#exchange", Static).update(f" {exchange} ")

    def compose(self) -> ComposeResult:
        yield Static(" KOBE ", id="brand")
        yield Static(self.mode_text(), id="mode", classes=f"mode-{self.mode.value}")
        yield Static(f" {self.exchange} ", id="exchange")
        yield Static(f" engine: {self.engine_state} ", id="engine-state")

    def watch_engine_state(self, state: str) -> None:
        for widget in self.query("#engine-state").results(Static):
            widget.update(f" engine: {state} ")
