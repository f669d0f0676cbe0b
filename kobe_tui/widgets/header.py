"""The header: the mode, the kill switch, unprotected positions, the venue, the engine, equity,
today's PnL and the exchange, in that order of importance.

Every state is a word first (``PAPER``, ``LIVE — LOCKED``, ``TRIPPED``, ``DOWN``), colour second,
so it reads the same in 16 colours or none. When the terminal is narrow, whole items drop from the
end (never a word cut in half), an item first trying its short form: at 80 columns the mode and
the kill switch always stay. One line of text, redrawn in place: an update costs no layout.
"""

from __future__ import annotations

from decimal import Decimal

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import Static

from engine.bootstrap import Mode
from engine.untrusted import clean_text
from kobe_tui.widgets.formatting import quantized

MODE_WORD = {Mode.PAPER: "PAPER", Mode.TESTNET: "TESTNET", Mode.LIVE: "LIVE"}
# left to right, most important first; the last ones drop first when the width runs out
ORDER = (
    "mode",
    "risk-state",
    "unprotected",
    "venue-state",
    "engine-state",
    "hdr-equity",
    "hdr-pnl",
    "exchange",
    "brand",
)
ALARM = "bold white on red"
CAUTION = "bold black on yellow"
MODE_STYLE = {Mode.PAPER: "bold black on green", Mode.TESTNET: CAUTION, Mode.LIVE: ALARM}


def money(value: Decimal | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    q = quantized(value, Decimal("0.01"))
    return f"{q:+,}" if signed else f"{q:,}"


class KobeHeader(Static):
    def __init__(self, mode: Mode, exchange: str, *, live_locked: bool = False) -> None:
        super().__init__(id="header")
        self.mode = mode
        self.exchange = exchange
        self.live_locked = live_locked
        self.texts: dict[str, str] = dict.fromkeys(ORDER, "")
        self.short: dict[str, str] = {}
        self.styles_of: dict[str, str] = {}
        self.shown: dict[str, str] = {}  # what the last fit shows, per item
        self.texts.update(
            {
                "risk-state": " risk — ",
                "engine-state": " engine: starting ",
                "hdr-equity": " eq — ",
                "hdr-pnl": " pnl — ",
                "brand": " KOBE ",
            }
        )
        self.styles_of["brand"] = "bold"
        self.set_mode(mode, exchange, live_locked=live_locked)

    def item(self, key: str) -> str:
        """The item as shown now ("" when it is hidden)."""
        return self.shown.get(key, "")

    def mode_text(self) -> str:
        word = MODE_WORD[self.mode]
        if self.mode is Mode.LIVE and self.live_locked:
            return f" {word} — LOCKED "
        return f" {word} "

    def on_resize(self) -> None:
        self._fit()

    def _set(self, key: str, text: str, style: str = "", short: str = "") -> None:
        """``short``: the item's shorter form, used when the full one does not fit."""
        if (self.texts[key], self.styles_of.get(key, ""), self.short.get(key, "")) == (
            text,
            style,
            short,
        ):
            return
        self.texts[key], self.styles_of[key], self.short[key] = text, style, short
        self._fit()

    def _fit(self) -> None:
        """Whole items, in order, while they fit (in their short form if need be); the rest,
        from the end, are hidden."""
        room = self.size.width or 10**6
        line = Text(no_wrap=True, overflow="crop")
        shown: dict[str, str] = {}
        for key in ORDER:
            full, short = self.texts[key], self.short.get(key, "")
            chosen = next(
                (t for t in (full, short) if t and line.cell_len + cell_len(t) <= room), ""
            )
            if full and not chosen:
                break
            if chosen:
                line.append(chosen, style=self.styles_of.get(key, ""))  # literal, never markup
                shown[key] = chosen
        self.shown = shown
        self.update(line, layout=False)

    def set_mode(self, mode: Mode, exchange: str, *, live_locked: bool) -> None:
        self.mode, self.exchange, self.live_locked = mode, exchange, live_locked
        locked = mode is Mode.LIVE and live_locked
        self._set("mode", self.mode_text(), CAUTION if locked else MODE_STYLE[mode])
        self._set("exchange", f" {exchange} ")

    def set_money(self, equity: Decimal, pnl_day: Decimal) -> None:
        self._set("hdr-equity", f" eq {money(equity)} ")
        pnl = quantized(pnl_day, Decimal("0.01"))  # what is shown: -0.004 is +0.00, no loss
        style = "green" if pnl > 0 else "red" if pnl < 0 else ""
        self._set("hdr-pnl", f" pnl {money(pnl, signed=True)} ", style)

    def set_risk(self, state: str) -> None:
        style = {"TRIPPED": ALARM, "WARNING": CAUTION}.get(state, "")
        self._set("risk-state", f" {state} ", style)

    def set_unprotected(self, count: int | None) -> None:
        """Positions with no live exit on the exchange and no armed watchdog (the position
        book's figure, through the Runtime); hidden at 0 or unknown."""
        self._set("unprotected", f" UNPROTECTED {count} " if count else "", ALARM)

    def set_venue(self, state: str, detail: str = "", latency_ms: int | None = None) -> None:
        """The exchange's state in testnet and live: ``ok``, ``degraded: <error>``,
        ``DOWN since hh:mm``; and the last call's latency."""
        if not state:
            self._set("venue-state", "")
            return
        word = {"ok": "ok", "degraded": "degraded", "down": "DOWN"}.get(state, state)
        text = f"{word}: {clean_text(detail, 40)}" if detail else word  # an exchange's error
        lat = f" {latency_ms}ms" if latency_ms is not None and state != "down" else ""
        style = {"down": ALARM, "degraded": CAUTION}.get(state, "")
        short = f" venue {word}{lat} " if state != "down" else ""  # "DOWN since" is short
        self._set("venue-state", f" venue {text}{lat} ", style, short)

    def set_engine(self, state: str) -> None:
        state = clean_text(state, 60)  # an error's text, shown literally
        word = "".join(ch for ch in state.split()[0].lower() if ch.isalnum())
        style = {"error": ALARM, "paused": "bold yellow"}.get(word, "dim")
        self._set("engine-state", f" engine: {state} ", style, f" engine: {state.split()[0]} ")
