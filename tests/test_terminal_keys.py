"""``escape`` and the key typed right behind it, in one read of the terminal (kobe_tui/terminal_keys.py).

Over SSH, keys typed fast arrive in one packet. Textual's parser read ``ESC ^S`` (escape, then
ctrl+s) as ctrl+s alone: the order ticket the trader had just cancelled was placed. These tests
feed the bytes a terminal sends: to the parser, and to the real cockpit in a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kobe_tui.terminal_keys import BackToBackParser
from tests.conftest import ROOT


def keys(data: str) -> list[str]:
    parser = BackToBackParser()
    events = list(parser.feed(data))
    time.sleep(0.15)  # past the parser's wait for the rest of an escape sequence
    events += list(parser.tick())
    return [e.key for e in events]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("data", "want"),
    [
        ("\x1b\x13", ["escape", "ctrl+s"]),  # Textual: ctrl+s (the escape lost)
        ("\x1bq", ["escape", "q"]),  # Textual: alt+q, a q typed into the field
        ("\x1b\t", ["escape", "tab"]),  # Textual: shift+tab
        ("\x1b\r", ["escape", "enter"]),  # Textual: enter (the escape lost)
        ("\x1b", ["escape"]),
        ("\x1b\x1b", ["escape", "escape"]),
        ("\x1b[Z", ["shift+tab"]),  # a terminal's sequences are read as before
        ("\x1b[A", ["up"]),
        ("\x1bOP", ["f1"]),
        ("\x1b[1;3D", ["alt+left"]),
        ("\x1bP", ["escape", "P"]),  # a sequence's start: after the parser's wait, still two
        ("\x1b]", ["escape", "right_square_bracket"]),
        ("6\t93000", ["6", "tab", "9", "3", "0", "0", "0"]),
    ],
    ids=repr,
)
def test_escape_and_the_key_behind_it_are_two_keys(data: str, want: list[str]) -> None:
    assert keys(data) == want


def test_the_cockpit_reads_its_terminal_with_that_parser(tmp_path: Path) -> None:
    from textual.drivers import linux_driver

    from kobe_tui.app import KobeApp

    assert issubclass(KobeApp(env={}, cwd=tmp_path).driver_class, linux_driver.LinuxDriver)
    assert linux_driver.XTermParser is BackToBackParser


def _read_until(fd: int, marker: bytes, seen: bytearray, timeout: float = 60) -> bool:
    end = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO once the child has closed its end: nothing more will come
                return marker in seen
            if not chunk:
                return marker in seen
            seen += chunk
    return marker in seen


def test_escape_then_ctrl_s_in_one_packet_places_nothing(workdir: Path) -> None:
    """In a terminal, as over SSH: ``n`` (the ticket, with its plan), then ``escape`` and
    ``ctrl+s`` in one write. The escape cancels the ticket; no order is journaled."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "TERM": "xterm-256color"}
    screen, tty = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from kobe_tui.app import main; main()"],
        cwd=workdir, env=env, stdin=tty, stdout=tty, stderr=tty,
    )  # fmt: skip
    os.close(tty)
    seen = bytearray()
    try:
        assert _read_until(screen, b"engine: running", seen), bytes(seen[-2000:])
        os.write(screen, b"n")
        assert _read_until(screen, b"notional", seen), bytes(seen[-2000:])  # the plan shown
        os.write(screen, b"\x1b\x13")  # escape, ctrl+s: one packet
        _read_until(screen, b"\x00never", seen, timeout=2)  # its frames read, as a terminal does
        os.write(screen, b"q")  # no open order: quits at once
        _read_until(screen, b"\x00never", seen, timeout=30)  # to the end of its output
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(screen)
    journal = workdir / "data" / "logs" / "orders.jsonl"
    events = (
        [json.loads(line) for line in journal.read_text().splitlines()] if journal.exists() else []
    )
    assert [e for e in events if e.get("event") == "intent"] == [], events
