"""A careless operator or a broken disk against the journals: a journal that is a directory (or
cannot be opened), an order CSV with a line too long for the csv module. Kobe names the file and
refuses (exit 1), or trips the kill switch; never an ``internal error``, never less safe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CliRunner

TRADE = ["trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15"]
EXITS = ["--sl", "90000", "--tp", "100000", "--yes"]


@pytest.fixture
def history(cli: CliRunner, workdir: Path) -> Path:
    """A data dir with a position, a run, a trip and a reset behind it."""
    assert cli(*TRADE, *EXITS).code == 0
    assert cli("run", "--headless", "--ticks", "3").code == 0
    assert cli("risk", "trip", "--reason", "drill").code == 0
    assert cli("risk", "reset", "--yes").code == 0
    return workdir / "data"


def replace_with_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "x").write_text("not a journal")


@pytest.mark.parametrize("name", ["risk_journal.jsonl", "risk_commands.jsonl"])
def test_an_unreadable_risk_file_trips_the_switch_and_refuses_to_trade(
    cli: CliRunner, history: Path, name: str
) -> None:
    replace_with_directory(history / name)
    r = cli("risk", "status", "--json")
    assert r.code == 0, r.err  # exit 0 in every state
    status = json.loads(r.out)
    assert status["state"] == "TRIPPED" and "state lost" in status["reason"]
    assert name in status["reason"]
    for argv in ([*TRADE, "--yes"], ["run", "--headless", "--ticks", "2"]):
        r = cli(*argv)
        assert r.code == 1, r.err
        assert "internal error" not in r.err and name in r.err, r.err


@pytest.mark.parametrize(
    ("name", "commands"),
    [
        (
            "logs/orders.jsonl",
            (
                [*TRADE, "--yes"],
                ["run", "--headless", "--ticks", "2"],
                ["positions", "--json"],  # the position book reads it too
                ["orders", "--json"],
            ),
        ),
        ("trades.jsonl", (["stats"], ["stats", "--json"])),
    ],
)
def test_a_journal_that_is_a_directory_is_named_by_every_command(
    cli: CliRunner, history: Path, name: str, commands: tuple[list[str], ...]
) -> None:
    replace_with_directory(history / name)
    for argv in commands:
        r = cli(*argv)
        assert r.code == 1 and "internal error" not in r.err, r.err
        assert name.split("/")[-1] in r.err


@pytest.mark.parametrize("where", ["last line", "whole file"])
def test_an_order_csv_with_a_huge_line_never_stops_kobe(
    cli: CliRunner, workdir: Path, where: str
) -> None:
    small = [*TRADE[:-1], "6", "--yes"]
    assert cli(*small).code == 0
    csv_path = workdir / "data" / "logs" / "orders.csv"
    jsonl = workdir / "data" / "logs" / "orders.jsonl"
    huge = b"A" * (1024 * 1024)  # over the csv module's field limit (131072)
    if where == "last line":
        csv_path.write_bytes(csv_path.read_bytes() + huge + b"\n")
    else:
        csv_path.write_bytes(huge)
    events = len(jsonl.read_bytes().splitlines())
    r = cli(*small)
    assert r.code == 0 and "internal error" not in r.err, r.err
    assert len(jsonl.read_bytes().splitlines()) > events  # the order was journaled
    r = cli("run", "--headless", "--ticks", "2")
    assert r.code == 0, r.err


def data_bytes(data: Path) -> dict[str, bytes]:
    return {str(p.relative_to(data)): p.read_bytes() for p in data.rglob("*") if p.is_file()}


def test_read_only_commands_leave_a_lost_paper_account_as_they_found_it(
    cli: CliRunner, workdir: Path
) -> None:
    """The read-only venue over the paper account has no way to change it, and no reason to
    write it back: a lost paper/state.json stays lost for the next sending session to say so."""
    assert cli(*TRADE[:-1], "6", "--yes").code == 0
    data = workdir / "data"
    (data / "paper" / "state.json").unlink()
    before = data_bytes(data)
    for argv in (["orders", "--json"], ["positions", "--json"], ["wallets"], ["risk", "status"]):
        r = cli(*argv)
        assert r.code == 0, (argv, r.err)
        assert data_bytes(data) == before, argv
    r = cli(*TRADE[:-1], "6", "--yes")  # the next sending session still sees the account lost
    assert "paper account starts over" in r.err, r.err
