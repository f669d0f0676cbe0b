"""Keys typed back to back: an ``escape`` followed by another key in the same read stays two keys.

A terminal sends ``escape`` as the byte ESC, and Alt+key as ESC then the key. Textual's parser
takes ESC and the next byte in one read for Alt+key, and for a control key it then drops the
ESC altogether: ``escape`` then ``ctrl+s`` typed fast over SSH (one packet, ``ESC ^S``) arrived
as ``ctrl+s`` alone, and placed the order the trader had just cancelled; ``escape`` then ``q``
typed the ``q`` into the ticket's field. Kobe binds no Alt key, so here ESC followed by a single
key (not one that starts a terminal's sequences, such as ``[``) is ``escape``, then that key.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual import events
from textual._xterm_parser import XTermParser
from textual.driver import Driver
from textual.drivers import linux_driver

ESC = "\x1b"
# what begins a terminal's sequences after ESC (CSI, SS3, OSC, DCS, APC, PM, SOS, ST): left to
# Textual, which waits for the rest (typed, they still end as escape and the key, after its wait);
# ESC ESC is two escapes
SEQUENCE_STARTS = "[O]P_^X\\" + ESC


class BackToBackParser(XTermParser):
    def _sequence_to_key_events(self, sequence: str, alt: bool = False) -> Iterable[events.Key]:
        if len(sequence) == 2 and sequence[0] == ESC and sequence[1] not in SEQUENCE_STARTS:
            sequence, alt = sequence[1], True  # the whole of it: ESC, then one key
        if alt:
            yield events.Key("escape", ESC)
        yield from super()._sequence_to_key_events(sequence)


def use_back_to_back_keys(driver: type[Driver]) -> type[Driver]:
    """``driver``, its terminal input read by :class:`BackToBackParser` (Linux and macOS: the
    driver that reads a terminal's bytes; the others are left as they are)."""
    if issubclass(driver, linux_driver.LinuxDriver):
        linux_driver.XTermParser = BackToBackParser  # type: ignore[misc]
    return driver
