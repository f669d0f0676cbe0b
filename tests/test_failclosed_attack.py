"""What an attack on the data dir found (every file, in each state, deleted, emptied, cut,
garbage, wrong shape, absurd numbers, a directory, a symlink; then every command): each case
below ended in an internal error or a less safe Kobe before its fix."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from engine.fsutil import inject_write_fault
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


def test_a_snapshot_time_no_clock_of_kobe_writes_is_a_damaged_file_named_by_kobe_run(
    cli: CliRunner, traded: Path
) -> None:
    """The simulated clock starts after the wallets snapshot's time: a naive one was a
    TypeError, one in 9999 overflowed the clock after the run."""
    path = traded / "wallets_runtime.json"
    doc = json.loads(path.read_text())
    for when in ("2026-06-01T00:00:00", "9999-12-31T23:59:00Z"):
        doc["time"] = when
        path.write_text(json.dumps(doc))
        before = data_bytes(traded)
        r = cli("run", "--headless", "--ticks", "2")
        assert r.code == 1 and "internal error" not in r.err, r.err
        assert "wallets_runtime.json is damaged (time: a time" in r.err
        assert data_bytes(traded) == before


def test_an_order_event_at_a_time_out_of_range_is_a_skipped_line(
    cli: CliRunner, traded: Path
) -> None:
    journal = traded / "logs" / "orders.jsonl"
    last = json.loads(journal.read_bytes().splitlines()[-1])
    with open(journal, "a") as fh:
        fh.write(json.dumps({**last, "ts": "9999-12-31T23:59:00Z"}) + "\n")
    (traded / "positions.json").unlink()  # the book rebuilt from the journal skips it too
    r = cli("run", "--headless", "--ticks", "2")
    assert r.code == 0, r.err
    assert "9999-12-31" not in r.out  # the simulated clock did not start there


def _rewrite_times(path: Path, when: str) -> None:
    text = path.read_text()
    path.write_text(re.sub(r'"(\d{4}-\d\d-\d\dT[\d:.]+)(Z|\+00:00)"', f'"{when}"', text))


@pytest.mark.parametrize("when", ["2026-06-01T00:00:00", "9999-12-31T23:59:00Z"])
def test_times_no_clock_of_kobe_writes_in_a_cache_rebuild_it(
    cli: CliRunner, traded: Path, when: str
) -> None:
    """positions.json with naive times was an internal error in every command."""
    _rewrite_times(traded / "positions.json", when)
    for argv in (("positions", "--json"), (*BUY, "--yes"), ("run", "--headless", "--ticks", "1")):
        r = cli(*argv)
        assert r.code == 0 and "internal error" not in r.err, (argv, r.err)


@pytest.mark.parametrize("when", ["2026-06-01T00:00:00", "9999-12-31T23:59:00Z"])
def test_times_no_clock_of_kobe_writes_in_the_wallets_are_refused_naming_the_file(
    cli: CliRunner, traded: Path, when: str
) -> None:
    """The wallet ledger's last time, naive, was an internal error when written back."""
    path = traded / "wallets_runtime.json"
    doc = json.loads(path.read_text())
    doc["state"]["last_time"] = when
    path.write_text(json.dumps(doc))
    for argv in ((*BUY, "--yes"), ("run", "--headless", "--ticks", "1"), ("wallets", "--json")):
        r = cli(*argv)
        assert r.code == 1 and "internal error" not in r.err, (argv, r.err)
        assert "wallets_runtime.json is damaged (last_time: a time" in r.err, r.err


WATCHED = ("--sl", "90000", "--tp", "100000", "--yes")


@pytest.fixture
def watched(cli: CliRunner, workdir: Path) -> Path:
    """A position guarded by the local watchdog, its item in watchdog.json."""
    (workdir / "kobe.toml").write_text('[router]\nexits = "watchdog"\n')
    assert cli(*BUY, *WATCHED).code == 0
    return workdir / "data" / "watchdog.json"


def _set_item(path: Path, **changes: object) -> None:
    doc = json.loads(path.read_text())
    doc["items"][0].update(changes)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("when", ["2026-06-01T00:00:00", "9999-12-31T23:59:00Z"])
def test_a_watchdog_backoff_at_a_time_no_clock_writes_is_refused_naming_the_file(
    cli: CliRunner, watched: Path, when: str
) -> None:
    _set_item(watched, retry_at=when, attempts=1)
    r = cli("run", "--headless", "--ticks", "1")
    assert r.code == 1 and "internal error" not in r.err, r.err
    assert "watchdog.json is damaged (retry_at: a time" in r.err


def test_a_watchdog_backoff_further_than_any_kobe_sets_never_holds_the_stop(
    cli: CliRunner, watched: Path
) -> None:
    """A retry_at decades ahead (a damaged file; or written on another clock) held the
    watchdog's stop until then: the position looked guarded and was not."""
    _set_item(watched, retry_at="2150-01-01T00:00:00Z", attempts=1, stop_loss="200000")
    r = cli("run", "--headless", "--ticks", "1")
    assert r.code == 0, r.err
    assert "stop-loss touched" in r.out and "trade  closed BTC/USDT" in r.out, r.out


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("losing_streak", None),  # left out: {"state": "ARMED"} was read as a streak of 0
        ("pnl_day", None),
        ("last_loss_at", None),
        ("peak_equity", "-0"),  # a lost peak: the drawdown limit starts again
        ("drawdown_pct", "-5"),
        ("day", "someday"),  # not today: today's loss would start again from zero
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


@pytest.mark.parametrize("how", ["deleted", "tripped, its figures left out"])
def test_a_lost_risk_cache_keeps_todays_loss_and_the_streak_counted_from_the_trades(
    cli: CliRunner, workdir: Path, how: str
) -> None:
    """The cache alone held today's realized loss, the losing streak and the last loss: lost,
    they restarted from zero, and after the operator's reset of "state lost" Kobe could lose
    a whole max_daily_loss_usd again the same day. They are counted again from trades.jsonl.
    A TRIPPED cache without its figures is already the safe state: it keeps its reason."""
    from engine.config import RiskConfig
    from engine.risk import KillState, RiskEngine

    (workdir / "kobe.toml").write_text(
        "[risk]\nmax_losing_streak = 50\nmax_daily_loss_usd = 1000\n"
    )
    assert cli("run", "--headless", "--ticks", "60", "--seed", "7").code == 0
    data = workdir / "data"
    before = json.loads((data / "execution_runtime.json").read_text())
    assert Decimal(before["pnl_day"]) < 0 and before["losing_streak"] >= 1  # the run lost
    if how == "deleted":
        (data / "execution_runtime.json").unlink()
    else:
        (data / "execution_runtime.json").write_text('{"state": "TRIPPED", "reason": "manual: x"}')
    now = datetime.fromisoformat(before["last_loss_at"].replace("Z", "+00:00")) + timedelta(hours=1)
    engine = RiskEngine(data, RiskConfig(max_daily_loss_usd=Decimal(1000)), lambda: now)
    try:
        s = engine.snap
        assert s.state is KillState.TRIPPED
        assert s.reason == "manual: x" if how != "deleted" else "state lost" in s.reason
        assert s.pnl_day == Decimal(before["pnl_day"])
        assert s.losing_streak == before["losing_streak"]
        assert s.last_loss_at == now - timedelta(hours=1)
        last = json.loads((data / "trades.jsonl").read_bytes().splitlines()[-1])
        assert s.trades[-1] == last["trade_id"]  # handed on again after a crash: counted once
        engine.reset("cli")  # the operator opens it: today's loss still counts
        assert engine.snap.pnl_day == Decimal(before["pnl_day"])
    finally:
        engine.close()


@pytest.mark.parametrize("action", ["trip", "reset"])
def test_kill_9_at_each_write_of_kobe_risk_never_marks_a_command_done_that_was_not(
    cli: CliRunner, workdir: Path, action: str
) -> None:
    """The queued command was journaled as applied before its transition: a kill in between
    left the trip marked done and the switch ARMED (and a reset done without its audit line).
    Now its effect comes first: a kill anywhere leaves it queued, applied at the next start."""
    from tests.crash_harness import killed_at, write_points

    assert cli(*BUY, "--yes").code == 0
    if action == "reset":
        assert cli("risk", "trip", "--reason", "before", "--yes").code == 0
    argv = ["risk", action, "--yes", *(["--reason", "SWEPT"] if action == "trip" else [])]
    origin = workdir.parent / "origin"
    shutil.copytree(workdir, origin)
    points = write_points(workdir, argv)
    queued = points.index("risk_commands.jsonl", points.index("risk_commands.jsonl") + 1)
    for at in range(queued + 2, len(points) + 1):  # every write after the command is queued
        shutil.rmtree(workdir)
        shutil.copytree(origin, workdir)
        assert killed_at(workdir, argv, at)
        assert cli("run", "--headless", "--ticks", "1").code in (0, 1)  # applies the queue
        status = json.loads(cli("risk", "status", "--json").out)
        audit = (workdir / "data" / "audit.jsonl").read_text()
        if action == "trip":
            assert status["state"] == "TRIPPED" and "SWEPT" in status["reason"], (at, status)
            assert cli(*BUY, "--yes").code == 1
        else:
            assert status["state"] == "ARMED", (at, status)
            assert '"kill_switch_reset"' in audit, at


@pytest.fixture
def disk_full_from() -> Iterator[list[object]]:
    """ENOSPC from the write seam for every write from the ``n``-th (``[n, paths written]``)."""
    state: list[object] = [10**9, []]

    def fault(path: Path) -> None:
        seen = state[1]
        assert isinstance(seen, list)
        seen.append(str(path))
        if len(seen) > int(str(state[0])):
            raise OSError(errno.ENOSPC, "No space left on device")

    inject_write_fault(fault)
    yield state
    inject_write_fault(None)


TRADE_EXITS = (
    "trade", "--symbol", "ETH/USDT", "--side", "buy", "--type", "market", "--quote", "7",
    "--sl", "3100", "--tp", "4000", "--yes",
)  # fmt: skip


def test_a_full_disk_names_the_first_record_it_refused_not_a_later_save(
    cli: CliRunner, workdir: Path, disk_full_from: list[object]
) -> None:
    """The trading session wrote its caches at the end even after the disk refused an order
    event, and the message named the last of those (`the wallets snapshot was not written`)
    instead of the order event that was lost."""
    assert cli(*TRADE_EXITS).code == 0
    seen = disk_full_from[1]
    assert isinstance(seen, list)
    points = list(seen)
    shutil.rmtree(workdir / "data")
    checked = 0
    for at, path in enumerate(points):
        if not path.endswith(("orders.jsonl", "orders.csv")) or at < 3:
            continue
        shutil.rmtree(workdir / "data", ignore_errors=True)
        disk_full_from[0], disk_full_from[1] = at, []
        r = cli(*TRADE_EXITS)
        assert r.code == 1, r.err
        assert r.err.startswith(f"kobe: cannot write {path} "), (at, r.err)
        assert "an order event was not written" in r.err
        checked += 1
    assert checked >= 4


def test_a_run_whose_last_save_is_refused_does_not_end_with_done(
    cli: CliRunner, workdir: Path, disk_full_from: list[object]
) -> None:
    """The paper account is saved as the engine stops: refused there, Kobe printed `done` and
    exited 0, with the account's last state not written."""
    assert cli("run", "--headless", "--ticks", "5").code == 0
    shutil.copytree(workdir / "data", workdir.parent / "before")
    seen = disk_full_from[1]
    assert isinstance(seen, list)
    seen.clear()
    assert cli("run", "--headless", "--ticks", "5").code == 0
    last = max(i for i, p in enumerate(seen) if p.endswith("paper/state.json"))
    shutil.rmtree(workdir / "data")
    shutil.copytree(workdir.parent / "before", workdir / "data")
    disk_full_from[0], disk_full_from[1] = last, []
    r = cli("run", "--headless", "--ticks", "5")
    assert r.code == 1 and "done:" not in r.out, r.out
    assert "paper/state.json" in r.err and "the paper account was not written" in r.err


@pytest.mark.parametrize("how", ["a trip line lost", "an older journal appended"])
def test_a_risk_journal_with_a_line_lost_or_out_of_order_trips_and_can_be_reset(
    cli: CliRunner, traded: Path, how: str
) -> None:
    """The switch was the journal's last transition in file order: with the operator's trip
    lost from the middle (or an older copy of the journal appended after it) it read ARMED,
    and a trade went out. Lines are numbered one after another: a gap or a step back is a
    lost state (TRIPPED); the operator's reset opens it for good."""
    journal = traded / "risk_journal.jsonl"
    assert cli("risk", "trip", "--reason", "first", "--yes").code == 0
    older = journal.read_bytes()
    assert cli("risk", "reset", "--yes").code == 0
    assert cli("risk", "trip", "--reason", "REAL EMERGENCY", "--yes").code == 0
    lines = journal.read_bytes().splitlines(keepends=True)
    if how == "a trip line lost":
        journal.write_bytes(b"".join(x for x in lines if b"REAL EMERGENCY" not in x))
    else:
        journal.write_bytes(b"".join(lines) + older)
    status = json.loads(cli("risk", "status", "--json").out)
    assert status["state"] == "TRIPPED" and "state lost" in status["reason"], status
    assert "a line is lost, or lines are out of order" in status["reason"]
    assert cli(*BUY, "--yes").code == 1
    assert cli("risk", "reset", "--yes").code == 0
    for _ in range(2):  # and stays open
        assert json.loads(cli("risk", "status", "--json").out)["state"] == "ARMED"
    assert cli(*BUY, "--yes").code == 0


def test_kobe_trades_racing_on_one_data_dir_never_double_book(workdir: Path) -> None:
    """Three `kobe trade` at once for a wallet that funds two: the data dir's lock lets one
    through at a time (the others are refused naming the holder, or come after it and see its
    position); every entry is journaled once and booked once, never more than the wallet funds."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    main = "import sys; from engine.cli import main; sys.exit(main())"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", main, *BUY, "--yes"],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    for code, err in results:
        assert code == 0 or "insufficient balance" in err or "is held by pid" in err, err
    filled = sum(code == 0 for code, _ in results)
    assert 1 <= filled <= 2, results
    events = [
        json.loads(x) for x in (workdir / "data" / "logs" / "orders.jsonl").read_text().splitlines()
    ]
    intents = [e["client_id"] for e in events if e["event"] == "intent"]
    assert len(intents) == len(set(intents)) == filled
    out, err = io.StringIO(), io.StringIO()
    from engine.cli import main as kobe

    assert kobe(["positions", "--json"], env={}, cwd=workdir, out=out, err=err) == 0
    assert sorted(p["entry_client_id"] for p in json.loads(out.getvalue())) == sorted(intents)


@pytest.mark.parametrize(
    "damage",
    [
        "{}",  # read as nothing watched: the position lost its guard without the lost file's alert
        '{"state": "ARMED"}',
        {"stop_loss": "-0"},  # a stop at zero is never touched: guarded in name only
        {"stop_loss": "0"},
        {"take_profit": "0"},
    ],
)
def test_a_watchdog_file_of_the_wrong_shape_is_refused_naming_it(
    cli: CliRunner, watched: Path, damage: object
) -> None:
    if isinstance(damage, str):
        watched.write_text(damage)
    else:
        assert isinstance(damage, dict)
        _set_item(watched, **damage)
    before = watched.read_bytes()
    for argv in (("positions", "--json"), ("run", "--headless", "--ticks", "1")):
        r = cli(*argv)
        assert r.code == 1 and "internal error" not in r.err, (argv, r.err)
        assert "watchdog.json is damaged" in r.err
    assert watched.read_bytes() == before
