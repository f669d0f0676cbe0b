"""A trader's day on one data dir, from several processes: ``kobe run --headless`` runs while
other terminals trade, cancel, trip and read; then ``kill -9`` at a seeded random moment, a
restart, and the invariants of ``tests/crash_harness.py`` (nothing lost, doubled or made less
safe). The kill points here are wall-clock moments, with other processes at work, where
``tests/test_crash_points.py`` kills one process alone at chosen writes."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.cockpit_support import make_app
from tests.crash_harness import check_invariants, child_env, kobe, kobe_child, tripped

KOBE_MAIN = "import sys; from engine.cli import main; sys.exit(main())"
RESTART = ["run", "--headless", "--ticks", "5", "--seed", "7"]
BUSY = "(kobe engine): one engine per data dir"

# what a trader types while the engine runs, and what the README says each does then
REFUSED = [  # exit 1 naming the engine that holds the data dir, nothing sent
    ["trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "10", "--yes"],
    [
        "trade", "--symbol", "ETH/USDT", "--side", "buy", "--type", "market", "--quote", "12",
        "--sl", "1000", "--tp", "9000", "--yes",
    ],
    ["cancel", "--all", "--yes"],
    ["orders", "--json"],
    ["exits", "E1", "--tp", "100000", "--yes"],
]  # fmt: skip
READ = [["positions", "--json"], ["stats", "--json"], ["wallets", "--json"]]
TRIP = ["risk", "trip", "--reason", "operator", "--yes"]


def start_engine(workdir: Path, *argv: str) -> subprocess.Popen[str]:
    """``kobe ARGV`` in a child process, once it holds the data dir; its output goes to files
    (a pipe nobody reads would stop it at its first full buffer)."""
    out, err = (workdir.parent / "engine.out"), (workdir.parent / "engine.err")
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", KOBE_MAIN, *argv],
            cwd=workdir,
            env=child_env(),
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    lock = workdir / "data" / "kobe.lock"
    deadline = time.monotonic() + 30
    while not (lock.exists() and "kobe engine" in lock.read_text()):
        assert proc.poll() is None, finish(workdir, proc)
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return proc


def finish(workdir: Path, engine: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    """The engine's stdout and stderr once it has ended."""
    engine.wait(timeout=timeout)
    return tuple(  # type: ignore[return-value]
        (workdir.parent / f"engine.{x}").read_text() for x in ("out", "err")
    )


def sources(workdir: Path) -> set[str]:
    path = workdir / "data" / "logs" / "orders.jsonl"
    lines = path.read_bytes().splitlines() if path.exists() else []
    return {json.loads(x)["source"] for x in lines if x.strip()}


def money_after(workdir: Path) -> tuple[Decimal, Decimal]:
    """The wallets' total, and the capital plus every booked trade's PnL after fees."""
    from engine.config import load_config_file

    capital = load_config_file(None).finance.capital_usd
    path = workdir / "data" / "trades.jsonl"
    lines = path.read_bytes().splitlines() if path.exists() else []
    pnl = sum((Decimal(json.loads(x)["pnl"]) for x in lines if x.strip()), Decimal(0))
    wallets = json.loads(kobe(workdir, "wallets", "--json")[1])["wallets"]
    return sum((Decimal(w["balance"]) for w in wallets.values()), Decimal(0)), capital + pnl


def operator(workdir: Path, rng: random.Random, engine: subprocess.Popen[str]) -> bool:
    """One command typed while the engine runs; True when it was a trip (queued)."""
    argv = rng.choice([*REFUSED, *READ, TRIP])
    code, out, err = kobe(workdir, *argv)
    if engine.poll() is not None:
        return argv == TRIP and code == 0  # it may have ended meanwhile: nothing to hold it to
    if argv in REFUSED:
        assert code == 1 and BUSY in err, (argv, code, err)
    elif argv == TRIP:
        assert code == 0 and "queued:" in out and "new entries are refused" in out, (out, err)
        return True
    else:
        assert code == 0, (argv, err)
        json.loads(out)
    return False


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_kill_9_of_an_engine_at_work_beside_other_terminals_loses_and_doubles_nothing(
    workdir: Path, seed: int
) -> None:
    rng = random.Random(seed)
    engine = start_engine(workdir, "run", "--headless", "--ticks", "400", "--seed", str(seed))
    queued_trip = False
    kill_at = time.monotonic() + rng.uniform(0.2, 3.0)
    while time.monotonic() < kill_at and engine.poll() is None:
        queued_trip |= operator(workdir, rng, engine)
    engine.kill()
    engine.wait()
    was_tripped = tripped(workdir) or queued_trip
    restart = kobe_child(workdir, RESTART)
    assert restart.returncode == 0, restart.stderr
    assert check_invariants(workdir, tripped_before=was_tripped) == []
    total, expected = money_after(workdir)
    assert total == expected  # exact: Decimal, no cent lost or made
    assert "cli" not in sources(workdir)  # no refused command sent anything


HOLD = """
import sys, time
from engine.lock import DataDirLock
DataDirLock(sys.argv[1], "kobe engine").acquire()
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with trades, open positions and a tripped switch (a seeded run)."""
    work = tmp_path_factory.mktemp("history")
    done = kobe_child(work, ["run", "--headless", "--ticks", "120", "--seed", "7"])
    assert done.returncode == 0, done.stderr
    return work


@pytest.fixture
def held(history: Path, tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A copy of ``history`` whose data dir another process holds as an engine does (it writes
    nothing itself, so whatever changes on disk was written by the command under test)."""
    workdir = tmp_path / "held"
    shutil.copytree(history, workdir)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(workdir / "data")],
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield workdir, holder.pid
    finally:
        holder.kill()
        holder.wait()


def files(workdir: Path) -> dict[str, bytes]:
    """Every data file but the statistics' cache, which any reader may write (``kobe stats``,
    the cockpit's first frame): atomic, and rebuilt when it does not match the journal."""
    data = workdir / "data"
    return {
        str(p.relative_to(data)): p.read_bytes()
        for p in data.rglob("*")
        if p.is_file() and p.name != "stats_cache.json"
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--headless", "--ticks", "3", "--seed", "7"],
        ["run", "--headless", "--duration", "1", "--tick", "0.1"],
        *REFUSED,
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_a_command_refused_beside_an_engine_exits_1_naming_it_and_writes_nothing(
    held: tuple[Path, int], argv: list[str]
) -> None:
    workdir, pid = held
    before = files(workdir)
    refused = kobe_child(workdir, argv)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"is held by pid {pid} {BUSY}" in refused.stderr
    assert files(workdir) == before  # the lock file still names the engine, too


async def test_the_cockpit_beside_kobe_run_exits_1_naming_it_and_writes_nothing(
    held: tuple[Path, int],
) -> None:
    workdir, pid = held
    before = files(workdir)
    assert await cockpit_refused(workdir, pid)
    assert files(workdir) == before


async def cockpit_refused(workdir: Path, pid: int) -> bool:
    """The cockpit started on ``workdir`` (its pilot) exited 1 naming ``pid`` as the engine."""
    app, _ = make_app(workdir)
    async with app.run_test() as pilot:
        for _ in range(400):
            if app.return_code is not None:
                break
            await pilot.pause(0.01)
    said = f"is held by pid {pid} {BUSY}"
    return app.return_code == 1 and any(said in line for line in app.config_errors)


NO_LIMITS = (  # the engine trades on and on: only the operator's trip stops its entries
    "[risk]\nmax_losing_streak = 10000\nmax_daily_loss_usd = 1000\nmax_drawdown_pct = 90\n"
    "warning_drawdown_pct = 80\nmin_operational_capital_usd = 0\n"
)


def intents_after(workdir: Path, offset: int) -> list[str]:
    """The entries sent after byte ``offset`` of the order journal (exits are not entries)."""
    from engine.router import entry_of

    with (workdir / "data" / "logs" / "orders.jsonl").open("rb") as fh:
        fh.seek(offset)
        tail = [json.loads(x) for x in fh.read().splitlines() if x.strip()]
    return [
        str(r["client_id"])
        for r in tail
        if r["event"] == "intent" and entry_of(str(r["client_id"])) is None
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_trip_from_another_terminal_stops_the_engines_entries_at_once(
    workdir: Path, seed: int
) -> None:
    """README: a trip blocks new entries at once, also a running engine's (it applies it at its
    next tick). Checked on the journal: no entry intent after the trip command returned."""
    (workdir / "kobe.toml").write_text(NO_LIMITS)
    rng = random.Random(seed)
    engine = start_engine(workdir, "run", "--headless", "--ticks", "300", "--seed", str(seed))
    time.sleep(rng.uniform(0.3, 2.0))
    code, out, err = kobe(workdir, *TRIP)
    journal = workdir / "data" / "logs" / "orders.jsonl"
    offset = journal.stat().st_size if journal.exists() else 0
    engine_alive = engine.poll() is None
    _, stderr = finish(workdir, engine)
    assert engine.returncode == 0, stderr
    assert code == 0 and "queued:" in out, err
    assert engine_alive, "the engine ended before the trip: a shorter sleep"
    assert intents_after(workdir, 0), "no entry before the trip: a longer sleep"
    assert intents_after(workdir, offset) == []
    status = json.loads(kobe(workdir, "risk", "status", "--json")[1])
    assert status["state"] == "TRIPPED" and status["reason"] == "manual: operator"


@pytest.mark.parametrize(
    "argv", [["run", "--headless", "--ticks", "3", "--seed", "7"], REFUSED[0]], ids=["run", "trade"]
)
def test_a_lock_file_deleted_under_a_running_engine_lets_no_second_writer_in(
    held: tuple[Path, int], argv: list[str]
) -> None:
    """``rm data/kobe.lock`` (a clean-up script, a trader tidying up) while an engine ran: the
    next ``kobe run`` or ``kobe trade`` created a new lock file, locked it and ran beside the
    engine: two writers on one order journal. The lock is the data dir's, not the file's."""
    workdir, _ = held
    (workdir / "data" / "kobe.lock").unlink()
    before = files(workdir)
    refused = kobe_child(workdir, argv)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "kobe.lock is held by another process: one engine per data dir" in refused.stderr
    assert files(workdir) == before  # the lock file is not made again either


@pytest.mark.parametrize(
    "argv",
    [*READ, ["risk", "status", "--json"], ["health"], ["indexer", "status", "--json"]],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_a_read_beside_an_engine_answers_and_writes_nothing(
    held: tuple[Path, int], argv: list[str]
) -> None:
    """README: positions, stats, wallets and the kill switch's status are readable while an
    engine runs; they write nothing the engine writes (stats only its own cache)."""
    workdir, _ = held
    before = files(workdir)
    code, out, err = kobe(workdir, *argv)
    assert code == 0, err
    assert out.strip()
    assert files(workdir) == before


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_of_kobe_risk_trip_beside_a_running_engine_trips_it_or_leaves_no_trace(
    workdir: Path, seed: int
) -> None:
    """The trip is one fsynced line of ``risk_commands.jsonl``: killed before it, nothing of it
    is left; after it, the running engine applies it. Never a torn line, never an engine error."""
    rng = random.Random(seed)
    engine = start_engine(workdir, "run", "--headless", "--ticks", "200", "--seed", str(seed))
    trip = subprocess.Popen(
        [sys.executable, "-c", KOBE_MAIN, *TRIP],
        cwd=workdir,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(rng.uniform(0.05, 1.0))
    trip.kill()
    trip.wait()
    _, stderr = finish(workdir, engine)
    assert engine.returncode == 0, stderr
    commands = workdir / "data" / "risk_commands.jsonl"
    raw = commands.read_bytes() if commands.exists() else b""
    assert raw == b"" or raw.endswith(b"\n")
    queued = [json.loads(x) for x in raw.splitlines()]
    status = json.loads(kobe(workdir, "risk", "status", "--json")[1])
    assert status["queued"] == []
    if queued:
        assert [c["action"] for c in queued] == ["trip"]
        assert status["state"] == "TRIPPED" and status["reason"] == "manual: operator"
    else:
        assert "manual" not in status["reason"]


def test_two_kobe_run_started_together_on_a_fresh_data_dir_leave_one_runs_journals(
    tmp_path: Path,
) -> None:
    """Both race to create the data dir and its lock: exactly one runs, the other exits 1
    naming the lock; the journals are byte for byte those of the same run alone."""
    run = ["run", "--headless", "--ticks", "60", "--seed", "7"]
    solo, duo = tmp_path / "solo", tmp_path / "duo"
    solo.mkdir()
    duo.mkdir()
    assert kobe_child(solo, run).returncode == 0
    both = [
        subprocess.Popen(
            [sys.executable, "-c", KOBE_MAIN, *run],
            cwd=duo,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    ended = sorted((p.communicate(timeout=60)[1], p.returncode)[::-1] for p in both)
    assert [code for code, _ in ended] == [0, 1], ended
    assert "kobe.lock is held by" in ended[1][1] and BUSY.split(": ")[1] in ended[1][1]
    for name in ("logs/orders.jsonl", "trades.jsonl", "wallet_flows.jsonl", "risk_journal.jsonl"):
        assert (duo / "data" / name).read_bytes() == (solo / "data" / name).read_bytes(), name


async def test_the_cockpit_beside_a_real_kobe_run_exits_1_and_the_engine_runs_on(
    workdir: Path,
) -> None:
    engine = start_engine(workdir, "run", "--headless", "--duration", "4", "--tick", "0.2")
    try:
        assert await cockpit_refused(workdir, engine.pid)
        assert engine.poll() is None  # untouched
        out, err = finish(workdir, engine, 30)
        assert engine.returncode == 0, err
        assert "engine stopped" in out
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()


def test_kobe_wallets_read_while_the_engine_books_is_always_a_whole_state(workdir: Path) -> None:
    """``kobe wallets`` beside an engine that books trades (snapshot and flows journal written
    one after the other): every answer is the capital plus a prefix of the journal's flows in
    and out of the wallets, to the last decimal, and no wallet is ever negative."""
    (workdir / "kobe.toml").write_text(NO_LIMITS)
    engine = start_engine(workdir, "run", "--headless", "--ticks", "200", "--seed", "3")
    totals = []
    while engine.poll() is None:
        code, out, err = kobe(workdir, "wallets", "--json")
        assert code == 0, err
        balances = [Decimal(w["balance"]) for w in json.loads(out)["wallets"].values()]
        assert min(balances) >= 0
        totals.append(sum(balances, Decimal(0)))
    assert finish(workdir, engine)[0]
    outside = ("market", "fees_paid")  # the parties of a flow that are not wallets
    total, prefixes = Decimal(150), {Decimal(150)}
    path = workdir / "data" / "wallet_flows.jsonl"
    for flow in (json.loads(x) for x in path.read_bytes().splitlines()):
        sign = (flow["from"] in outside) - (flow["to"] in outside)
        total += sign * Decimal(flow["amount"])
        prefixes.add(total)
    assert len(prefixes) > 10 and len(totals) > 10  # the engine booked while it was read
    assert [t for t in totals if t not in prefixes] == []


DAY = {
    "buy": [
        "trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15",
        "--sl", "90000", "--tp", "100000", "--yes",
    ],
    "limit": [
        "trade", "--symbol", "ETH/USDT", "--side", "buy", "--type", "limit", "--price", "3000",
        "--quote", "12", "--sl", "2500", "--tp", "4000", "--yes",
    ],
    "cancel": ["cancel", "--all", "--yes"],
    "trip": TRIP,
}  # fmt: skip


@pytest.mark.parametrize("seed", [1, 7])
def test_a_traders_day_of_kills_loses_and_doubles_nothing(workdir: Path, seed: int) -> None:
    """Engines killed at a random moment, trades, cancels and new exits killed at a random
    write, in a seeded order; after a last start, the invariants and the money hold."""
    rng = random.Random(seed)
    cancelled = False
    for step in range(5):
        op = rng.choice(["run", "exits", *DAY])
        if op == "run":
            engine = start_engine(
                workdir, "run", "--headless", "--ticks", "150", "--seed", str(step)
            )
            time.sleep(rng.uniform(0.1, 1.2))
            engine.kill()
            engine.wait()
            continue
        argv = DAY.get(op)
        if op == "exits":
            held = json.loads(kobe(workdir, "positions", "--json")[1])
            cex = [p for p in held if p["venue"] != "dex" and p["protection"] != "dust"]
            if not cex:
                continue
            argv = ["exits", cex[0]["entry_client_id"], "--tp", "99000", "--sl", "91000", "--yes"]
        assert argv is not None
        done = kobe_child(workdir, argv, at=rng.randrange(1, 40))
        assert done.returncode in (0, 1, -9), done.stderr
        cancelled |= op == "cancel"
    status = json.loads(kobe(workdir, "risk", "status", "--json")[1])  # a queued trip counts
    assert kobe_child(workdir, RESTART).returncode == 0
    tripped_before = status["state"] == "TRIPPED"
    assert check_invariants(workdir, tripped_before=tripped_before, unprotected_ok=cancelled) == []
    total, expected = money_after(workdir)
    assert total == expected
