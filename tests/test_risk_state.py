"""The kill switch only gets safer when a file is lost (issue 15): journal, lost state, commands."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from engine.audit import AuditLog
from engine.config import RiskConfig
from engine.journal import iter_jsonl
from engine.jsonutil import dumps
from engine.lock import DataDirLock
from engine.risk import KillState, RiskEngine, RiskSnapshot, load_risk_state, read_kill_switch
from tests.conftest import ROOT, CliRunner

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
BUY = ("trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15")


def clock() -> datetime:
    return T0


def tripped_by_a_loss(data: Path) -> None:
    """What the issue's repro did: one losing trade with max_losing_streak = 1."""
    cfg = RiskConfig(max_losing_streak=1, min_operational_capital_usd=Decimal(0))
    audit = AuditLog(data, clock)
    engine = RiskEngine(data, cfg, clock, audit=audit)
    engine.on_trade_closed(Decimal("-1"))
    assert engine.kill_switch().tripped
    engine.close()
    audit.close()


def status(cli: CliRunner) -> dict[str, object]:
    r = cli("risk", "status", "--json")
    assert r.code == 0, r.err
    result: dict[str, object] = json.loads(r.out)
    return result


def buys_after(orders: Path, offset: int) -> list[dict[str, object]]:
    raw = orders.read_bytes()[offset:] if orders.exists() else b""
    return [json.loads(x) for x in raw.splitlines() if b'"side": "buy"' in x]


def test_deleting_the_snapshot_after_a_trip_keeps_it_tripped(cli: CliRunner, workdir: Path) -> None:
    data = workdir / "data"
    tripped_by_a_loss(data)
    (data / "execution_runtime.json").unlink()
    s = status(cli)
    assert s["state"] == "TRIPPED"
    assert str(s["reason"]).startswith("state lost: execution_runtime.json is missing")
    orders = data / "logs" / "orders.jsonl"
    r = cli("run", "--headless", "--ticks", "20")
    assert r.code == 0, r.err
    assert "TRIPPED" in r.out and "state lost" in r.out  # the alert says so
    assert buys_after(orders, 0) == []  # no new entry
    r = cli(*BUY, "--yes")
    assert r.code == 1 and "kill switch is TRIPPED: state lost" in r.err


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_a_lost_commands_file_never_swallows_a_trip(
    cli: CliRunner, workdir: Path, how: str
) -> None:
    data = workdir / "data"
    assert cli("risk", "trip", "--reason", "drill").code == 0
    assert cli("risk", "reset", "--yes").code == 0
    commands = data / "risk_commands.jsonl"
    if how == "deleted":
        commands.unlink()
    else:
        commands.write_bytes(b"")
    r = cli("risk", "trip", "--reason", "REAL EMERGENCY")
    assert r.code == 0 and "TRIPPED (manual: REAL EMERGENCY)" in r.out
    assert status(cli)["state"] == "TRIPPED"
    r = cli(*BUY, "--yes")
    assert r.code == 1 and "kill switch is TRIPPED: manual: REAL EMERGENCY" in r.err


def test_a_lost_commands_file_with_an_engine_running(cli: CliRunner, workdir: Path) -> None:
    from engine.modes import resolve_settings
    from engine.runtime import Runtime, SimClock

    data = workdir / "data"
    assert cli("risk", "trip", "--reason", "drill").code == 0
    assert cli("risk", "reset", "--yes").code == 0
    (data / "risk_commands.jsonl").unlink()
    settings = resolve_settings({}, workdir)
    sim = SimClock(settings.config.paper.sim_start)
    runtime = Runtime(settings, clock=sim)
    runtime.build()
    try:
        r = cli("risk", "trip", "--reason", "REAL EMERGENCY")
        assert r.code == 0 and "queued" in r.out
        s = status(cli)
        assert s["state"] == "TRIPPED"  # refused from now on
        assert [q["action"] for q in s["queued"]] == ["trip"]  # type: ignore[index, union-attr]
        sim.advance(60)
        runtime.tick()
        assert runtime.risk_snapshot().state is KillState.TRIPPED
        assert runtime.risk_snapshot().reason == "manual: REAL EMERGENCY"
    finally:
        runtime.stop()
    assert status(cli)["queued"] == []


def test_status_shows_queued_commands(cli: CliRunner, workdir: Path) -> None:
    data = workdir / "data"
    assert cli("risk", "status").code == 0
    with DataDirLock(data, "kobe run"):
        assert "queued" in cli("risk", "trip", "--reason", "later").out
        r = cli("risk", "status")
    assert r.code == 0
    assert "kill switch: TRIPPED (manual: later)" in r.out
    assert "queued:      trip (manual: later)" in r.out and "not applied yet" in r.out


@pytest.mark.parametrize(
    "damage",
    [
        b"{torn",
        b"[]",
        b'{"state": "ARMED", "peak_equity": "1e999999999"}',
        b'{"state": "ARMED", "losing_streak": "x"}',
        b'{"state": "ARMED", "wallet_peaks": [1]}',
        b"\xff\xfe not utf-8",
    ],
)
def test_a_damaged_snapshot_trips_and_an_operator_can_reset_it(
    cli: CliRunner, workdir: Path, damage: bytes
) -> None:
    data = workdir / "data"
    data.mkdir()
    (data / "execution_runtime.json").write_bytes(damage)
    s = status(cli)
    assert s["state"] == "TRIPPED" and "execution_runtime.json unreadable" in str(s["reason"])
    r = cli("risk", "reset", "--yes")
    assert r.code == 0, r.out + r.err
    assert "ARMED" in r.out
    assert status(cli)["state"] == "ARMED"
    audit = [a["action"] for a in iter_jsonl(data / "audit.jsonl")]
    assert audit == ["kill_switch_trip", "kill_switch_reset"]  # the lost state, then the reset
    assert cli(*BUY, "--yes").code == 0  # trading again


def test_a_missing_snapshot_is_lost_only_when_history_exists(cli: CliRunner, workdir: Path) -> None:
    assert status(cli)["state"] == "ARMED"  # a fresh data dir
    data = workdir / "data"
    assert cli(*BUY, "--yes").code == 0
    (data / "execution_runtime.json").unlink()
    s = status(cli)
    assert s["state"] == "TRIPPED" and "state lost" in str(s["reason"])
    r = cli("risk", "reset", "--yes")
    assert r.code == 0 and "ARMED" in r.out


@pytest.mark.parametrize(
    "name",
    [
        "audit.jsonl",
        "logs/orders.jsonl",
        "risk_commands.jsonl",
        "trades.jsonl",  # the other history files deleted too: the trades still say Kobe ran
        "wallet_flows.jsonl",
    ],
)
def test_any_history_file_makes_a_missing_snapshot_a_lost_state(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"ts": "2026-03-01T12:00:00Z"}\n')
    assert read_kill_switch(tmp_path).tripped
    path.write_text("")  # an empty file is no history
    assert read_kill_switch(tmp_path).state is KillState.ARMED


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_a_lost_journal_trips(tmp_path: Path, how: str) -> None:
    cfg = RiskConfig(min_operational_capital_usd=Decimal(0))
    engine = RiskEngine(tmp_path, cfg, clock)
    engine.trip("one", "cli")
    engine.reset("cli")
    engine.close()
    journal = tmp_path / "risk_journal.jsonl"
    if how == "deleted":
        journal.unlink()
    else:
        journal.write_bytes(journal.read_bytes().splitlines(keepends=True)[0])
    again = RiskEngine(tmp_path, cfg, clock)
    assert again.kill_switch().tripped
    assert "risk_journal.jsonl is missing or truncated" in again.kill_switch().reason
    again.close()


def test_the_journal_wins_over_a_stale_snapshot(tmp_path: Path) -> None:
    """A crash between the journal line and the snapshot: the journal's trip holds."""
    cfg = RiskConfig(min_operational_capital_usd=Decimal(0))
    engine = RiskEngine(tmp_path, cfg, clock)
    stale = (tmp_path / "execution_runtime.json").read_bytes()
    engine.trip("drawdown", "risk")
    engine.close()
    (tmp_path / "execution_runtime.json").write_bytes(stale)  # as if the rename never happened
    state = load_risk_state(tmp_path)
    assert state.snap.state is KillState.TRIPPED and state.snap.reason == "drawdown"
    assert not state.lost


CHILD = """
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from engine.config import RiskConfig
from engine.risk import RiskEngine

data = Path(sys.argv[1])
cfg = RiskConfig(min_operational_capital_usd=Decimal(0))
engine = RiskEngine(data, cfg, lambda: datetime.now(UTC))
n = 0
while True:
    n += 1
    engine.trip(f"trip {n}", "test")
    print("tripped", n, flush=True)
    engine.on_equity(Decimal(100 + n))
    engine.reset("test")
    print("reset", n, flush=True)
"""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_at_any_moment_never_arms_a_trip(tmp_path: Path, seed: int) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    stop_after = random.Random(seed).randint(5, 60)
    last = ""
    for n, line in enumerate(proc.stdout):
        last = line.strip()
        if n >= stop_after:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    state = load_risk_state(tmp_path)
    assert not state.lost  # a kill never loses the state
    # the state is the journal's last transition: never older than what the child reported
    number = int(last.split()[1])
    if state.snap.state is KillState.TRIPPED:
        assert int(state.snap.reason.split()[1]) >= number
    else:
        assert state.snap.state is KillState.ARMED
    # the journal is intact: sequence numbers climb by one, any torn line is the last
    seqs = [r["seq"] for r in iter_jsonl(tmp_path / "risk_journal.jsonl")]
    assert seqs == list(range(1, len(seqs) + 1))
    # the snapshot is never behind by more than the line being written, never ahead
    snap_seq = json.loads((tmp_path / "execution_runtime.json").read_text())["seq"]
    assert seqs[-1] - 1 <= snap_seq <= seqs[-1]
    # and deleting the snapshot after the kill trips, whatever the state was
    (tmp_path / "execution_runtime.json").unlink()
    assert read_kill_switch(tmp_path).tripped


def test_since_survives_a_restart_with_a_moving_clock(tmp_path: Path) -> None:
    """The journal's line and the snapshot share one time: a restart shows the same "since"."""
    from datetime import timedelta

    ticks = iter(range(1000))

    def moving() -> datetime:
        return T0 + timedelta(microseconds=next(ticks))

    cfg = RiskConfig(min_operational_capital_usd=Decimal(0))
    engine = RiskEngine(tmp_path, cfg, moving)
    engine.trip("drill", "cli")
    since = engine.kill_switch().since
    engine.close()
    (tmp_path / "execution_runtime.json").write_text(  # an older cache: the journal decides
        dumps(RiskSnapshot(seq=0).to_json())
    )
    assert load_risk_state(tmp_path).snap.since == since


def test_risk_status_shows_the_peak_equity_in_cents_and_json_exactly(
    cli: CliRunner, workdir: Path
) -> None:
    """The peak comes from marked-to-market equity: 150.971228437534950000000 was printed as
    is. The text shows cents, as every other money figure; --json keeps the exact value."""
    data = workdir / "data"
    cfg = RiskConfig(min_operational_capital_usd=Decimal(0))
    audit = AuditLog(data, clock)
    engine = RiskEngine(data, cfg, clock, audit=audit)
    engine.on_equity(Decimal("150.971228437534950000000"), {})
    engine.close()
    audit.close()
    r = cli("risk", "status")
    assert r.code == 0, r.err
    assert "peak equity: 150.97 USD\n" in r.out
    assert Decimal(str(status(cli)["peak_equity"])) == Decimal("150.971228437534950000000")
