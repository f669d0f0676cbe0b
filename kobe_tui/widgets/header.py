"""The header: mode (word and colour), exchange, equity, today's PnL, kill switch, engine state.

Every state is a word first (``PAPER``, ``LIVE — LOCKED``, ``TRIPPED``, ``error``), colour second,
so it reads the same in 16 colours or none.
"""

from __future__ import annotations

from decimal import Decimal

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from engine.bootstrap import Mode
from engine.untrusted import clean_text

MODE_WORD = {Mode.PAPER: "PAPER", Mode.TESTNET: "TESTNET", Mode.LIVE: "LIVE"}


def money(value: Decimal | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    q = value.quantize(Decimal("0.01"))
    return f"{q:+,}" if signed else f"{q:,}"


class KobeHeader(Horizontal):
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

    def compose(self) -> ComposeResult:
        yield Static(" KOBE ", id="brand")
        yield Static(self.mode_text(), id="mode", classes=self._mode_classes())
        yield Static(f" {self.exchange} ", id="exchange")
        yield Static(" eq — ", id="hdr-equity")
        yield Static(" pnl — ", id="hdr-pnl")
        yield Static(" risk — ", id="risk-state")
        yield Static(" engine: starting ", id="engine-state")

    def _mode_classes(self) -> str:
        locked = " -locked" if self.mode is Mode.LIVE and self.live_locked else ""
        return f"mode-{self.mode.value}{locked}"

    def set_mode(self, mode: Mode, exchange: str, *, live_locked: bool) -> None:
        self.mode, self.exchange, self.live_locked = mode, exchange, live_locked
        badge = self.query_one("#mode", Static)
        badge.update(self.mode_text())
        badge.set_classes(self._mode_classes())
        self.query_one("#exchange", Static).update(f" {exchange} ")

    def set_money(self, equity: Decimal, pnl_day: Decimal) -> None:
        self.query_one("#hdr-equity", Static).update(f" eq {money(equity)} ")
        pnl = self.query_one("#hdr-pnl", Static)
        pnl.update(f" pnl {money(pnl_day, signed=True)} ")
        pnl.set_class(pnl_day < 0, "-loss")
        pnl.set_class(pnl_day > 0, "-gain")

    def set_risk(self, state: str) -> None:
        widget = self.query_one("#risk-state", Static)
        widget.update(f" {state} ")
        widget.set_classes(f"risk-{state.lower()}")

    def set_engine(self, state: str) -> None:
        widget = self.query_one("#engine-state", Static)
        widget.update(Text(f" engine: {clean_text(state, 60)} "))  # an error's text, literally
        word = "".join(ch for ch in state.split()[0].lower() if ch.isalnum())
        widget.set_classes(f"engine-{word}")
