"""Races between processes on one data dir, and between the engine's thread and the operator's
(real ``kobe`` processes; the engine and its lock as the cockpit and ``kobe run`` hold them)."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from engine.exchange.base import OrderType, Side
from engine.proposal import Proposal, Refused, Sizing, Source
from tests.conftest import CliRunner, run_kobe
from tests.test_runtime import _runtime

KOBE_MAIN = "import sys; from engine.cli import main; sys.exit(main())"
TRADE = ("trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "10")


def journal_text(workdir: Path) -> str:
    path = workdir / "data" / "logs" / "orders.jsonl"
    return path.read_text() if path.exists() else ""


def order_events(workdir: Path) -> list[str]:
    return [json.loads(line)["event"] for line in journal_text(workdir).splitlines()]


class Prompted:
    """``kobe`` on a terminal (a pty), stopped at its question until :meth:`answer`."""

    def __init__(self, workdir: Path, *argv: str) -> None:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", KOBE_MAIN, *argv],
            cwd=workdir,
            env=env,
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.close(slave)
        assert self.proc.stdout is not None
        seen = b""
        deadline = time.monotonic() + 60
        while b"[y/N]" not in seen:
            assert time.monotonic() < deadline, seen
            ready, _, _ = select.select([self.proc.stdout], [], [], 1)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                assert chunk, seen  # it ended before asking
                seen += chunk
        self.shown = seen.decode()

    def answer(self, text: str) -> tuple[int, str, str]:
        os.write(self.master, text.encode() + b"\n")
        out, err = self.proc.communicate(timeout=60)
        os.close(self.master)
        return self.proc.returncode, self.shown + out.decode(), err.decode()


def test_a_trip_queued_while_kobe_trade_asks_refuses_the_order(workdir: Path) -> None:
    """``kobe risk trip`` from another terminal while ``kobe trade`` holds the data dir at its
    question is queued, saying "new entries are refused from now on": the answer "y" that
    follows must not send the order (it did: the session's switch never read the queue)."""
    trade = Prompted(workdir, *TRADE)
    assert "Send this order?" in trade.shown
    trip = run_kobe("risk", "trip", "--reason", "stop now", cwd=workdir)
    assert trip.code == 0 and "new entries are refused from now on" in trip.out
    code, out, err = trade.answer("y")
    assert code == 1, out + err
    assert "kill switch is TRIPPED: manual: stop now" in err
    assert order_events(workdir) == []  # nothing sent, nothing journaled
    # the next command that opens the data dir applies the trip (audited), and it holds
    status = run_kobe("risk", "status", "--json", cwd=workdir)
    assert json.loads(status.out)["state"] == "TRIPPED"


def test_a_trip_queued_while_an_engine_runs_refuses_entries_before_its_next_tick(
    cli: CliRunner, workdir: Path
) -> None:
    """Between two ticks (5 s by default), a cockpit order after ``kobe risk trip`` was queued
    went out: the engine applied the queue only at its next tick."""
    runtime, clock, _ = _runtime(workdir)
    try:
        clock.advance(60)
        runtime.tick()
        assert cli("risk", "trip", "--reason", "from another terminal").code == 0
        proposal = Proposal(
            symbol="BTC/USDT",
            side=Side.BUY,
            entry_type=OrderType.MARKET,
            sizing=Sizing.QUOTE,
            amount=Decimal(10),
            wallet="cex_binance",
            source=Source.COCKPIT,
        )
        with pytest.raises(Refused, match="kill switch is TRIPPED: manual: from another terminal"):
            runtime.submit(proposal)
        assert "cockpit" not in journal_text(workdir)  # nothing of the order was sent
    finally:
        runtime.stop()


class Cockpit:
    """``kobe-tui`` on a terminal of its own (a pty), as a trader starts it over SSH."""

    def __init__(self, workdir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
        env["TERM"] = "xterm-256color"
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from kobe_tui.app import main; main()"],
            cwd=workdir,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
        )
        os.close(slave)
        self.screen = b""

    def read(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the cockpit closed its terminal
                    return
                if not chunk:
                    return
                self.screen += chunk
            elif self.proc.poll() is not None:
                return

    def wait(self, seconds: float = 30) -> int:
        self.read(seconds)
        code = self.proc.wait(timeout=seconds)
        os.close(self.master)
        return code


def lock_holder(workdir: Path) -> str:
    path = workdir / "data" / "kobe.lock"
    return path.read_text() if path.exists() else ""


def test_a_second_cockpit_on_the_data_dir_exits_1_naming_the_first(workdir: Path) -> None:
    """kobe-tui started twice: the second stayed up with an engine error and exited 0 when
    quit. It is refused like a second ``kobe run``: exit 1, naming the engine that holds the
    data dir; the first runs on, and quits cleanly."""
    first = Cockpit(workdir)
    cockpits = [first]
    try:
        deadline = time.monotonic() + 60
        while "kobe engine" not in lock_holder(workdir):
            assert time.monotonic() < deadline and first.proc.poll() is None
            first.read(0.2)
        second = Cockpit(workdir)
        cockpits.append(second)
        assert second.wait() == 1
        said = second.screen.decode("utf-8", "replace")
        assert f"is held by pid {first.proc.pid} (kobe engine): one engine per data dir" in said
        assert first.proc.poll() is None  # untouched
        os.write(first.master, b"q")
        assert first.wait() == 0
        assert lock_holder(workdir) == ""  # released
    finally:
        for cockpit in cockpits:
            if cockpit.proc.poll() is None:
                cockpit.proc.kill()
                cockpit.proc.wait()


@pytest.mark.parametrize("answer", ["y", "n", "", "ctrl+c"])
def test_kobe_trade_asks_on_a_terminal_and_only_yes_sends(workdir: Path, answer: str) -> None:
    """README: "It asks before sending"; No is the default (enter), and ctrl+c at the question
    exits 130 ("Exit codes"), with nothing sent."""
    trade = Prompted(workdir, *TRADE)
    assert trade.shown.rstrip().endswith("Send this order? [y/N]"), trade.shown
    if answer == "ctrl+c":
        trade.proc.send_signal(signal.SIGINT)
        _, err = trade.proc.communicate(timeout=60)
        os.close(trade.master)
        assert trade.proc.returncode == 130 and err.decode().strip() == "interrupted"
    else:
        code, out, err = trade.answer(answer)
        assert code == (0 if answer == "y" else 1), out + err
    events = order_events(workdir)
    assert events == (["intent", "ack", "fill"] if answer == "y" else []), events
