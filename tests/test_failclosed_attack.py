"""What an attack on the data dir found (every file, in each state, deleted, emptied, cut,
garbage, wrong shape, absurd numbers, a directory, a symlink; then every command): each case
below ended in an internal error or a less safe Kobe before its fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CliRunner

BUY = ("trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "7")


def data_bytes(data: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(data)): p.read_bytes()
        for p in data.rglob("*")
        if p.is_file() and p.name != "kobe.lock"
    }


@pytest.fixture
def traded(cli: CliRunner, workdir: Path) -> Path:
    """A data dir after a short run and a CLI trade with exits."""
    assert cli("run", "--headless", "--ticks", "5").code == 0
    assert cli(*BUY, "--sl", "90000", "--tp", "100000", "--yes").code == 0
    return workdir / "data"


def test_lines_of_the_wrong_shape_at_the_end_of_the_order_journal_are_skipped_by_kobe_run(
    cli: CliRunner, traded: Path
) -> None:
    """The simulated clock starts after the journal's last event: a last line that is JSON but
    no order event (no ``ts``) was a KeyError."""
    with open(traded / "logs" / "orders.jsonl", "ab") as fh:
        fh.write(b'[1, 2]\n{"seq": 1, "event": "trip"}\n"x"\n')
    r = cli("run", "--headless", "--ticks", "2")
    assert r.code == 0, r.err


@pytest.mark.parametrize(
    ("name", "when"),
    [
        ("wallets_runtime.json", "2026-06-01T00:00:00"),  # no timezone: a TypeError
        ("wallets_runtime.json", "9999-12-31T23:59:00Z"),  # the clock overflowed after a run
        ("logs/orders.jsonl", "9999-12-31T23:59:00Z"),
    ],
)
def test_a_recorded_time_no_clock_of_kobe_can_write_is_a_damaged_file_named_by_kobe_run(
    cli: CliRunner, traded: Path, name: str, when: str
) -> None:
    path = traded / name
    if name.endswith(".json"):
        doc = json.loads(path.read_text())
        doc["time"] = when
        path.write_text(json.dumps(doc))
    else:
        last = json.loads(path.read_bytes().splitlines()[-1])
        with open(path, "a") as fh:
            fh.write(json.dumps({**last, "ts": when}) + "\n")
    before = data_bytes(traded)
    r = cli("run", "--headless", "--ticks", "2")
    assert r.code == 1, r.err
    assert "internal error" not in r.err
    assert f"{name} is damaged (a recorded time not UTC or out of range" in r.err
    assert data_bytes(traded) == before


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("losing_streak", None),  # left out: {"state": "ARMED"} was read as a streak of 0
        ("pnl_day", None),
        ("last_loss_at", None),
        ("peak_equity", "-0"),  # a lost peak: the drawdown limit starts again
        ("drawdown_pct", "-5"),
    ],
)
def test_a_risk_cache_that_loses_a_limits_figure_trips_the_switch(
    cli: CliRunner, traded: Path, key: str, value: str | None
) -> None:
    """A valid JSON cache of the wrong shape must not restart a limit (losing streak, today's
    loss, cooldown, peak) from zero: it is a damaged cache, and the switch trips."""
    path = traded / "execution_runtime.json"
    doc = json.loads(path.read_text())
    if value is None:
        del doc[key]
    else:
        doc[key] = value
    path.write_text(json.dumps(doc))
    status = json.loads(cli("risk", "status", "--json").out)
    assert status["state"] == "TRIPPED" and "state lost" in status["reason"], status
    assert key in status["reason"]
    assert cli(*BUY, "--yes").code == 1
