"""Crash injection: ``kill -9`` a real ``kobe`` process at its k-th write of a data file, start
again, and check that nothing was lost, doubled or made less safe.

The kill point is deterministic: the child process installs a write fault through the test seam
of ``engine.fsutil`` (``inject_write_fault``, which runs before every write of a data file: each
journal append, each atomic snapshot, the CSV rows) and sends itself SIGKILL before its k-th
write. Nothing of this is in the engine: only the child started here reads ``at``.

Used by ``tests/test_crash_points.py`` (a few points, under a minute) and by
``bench/crash_sweep.py`` (every point of a run, or a sample).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from engine.cli import main

ROOT = Path(__file__).resolve().parent.parent

# the child: counts the writes of data files and dies (SIGKILL) just before the ``at``-th one;
# with ``at`` 0 it runs through and writes the path of each write, one a line, to ``trace``
CHILD = """
import os, signal, sys
from engine import fsutil
at, trace, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
seen = []
def fault(path):
    seen.append(str(path))
    if len(seen) == at:
        os.kill(os.getpid(), signal.SIGKILL)
fsutil.inject_write_fault(fault)
from engine.cli import main
try:
    code = main(argv)
finally:
    if trace:
        with open(trace, "w", encoding="utf-8") as fh:
            fh.write("".join(p + "\\n" for p in seen))
sys.exit(code)
"""


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


def kobe_child(
    workdir: Path,
    argv: list[str],
    *,
    at: int = 0,
    trace: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``kobe ARGV`` in a child process in ``workdir``, killed before its ``at``-th write."""
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(at), str(trace or ""), *argv],
        cwd=workdir,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_points(workdir: Path, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
    """The data files ``kobe ARGV`` writes, in order, one per write (a run to the end)."""
    trace = workdir.parent / f"{workdir.name}.trace"
    proc = kobe_child(workdir, argv, trace=trace, env=env)
    assert proc.returncode == 0, proc.stderr
    points = trace.read_text(encoding="utf-8").splitlines()
    trace.unlink()
    return [str(Path(p).relative_to(workdir / "data")) for p in points]


def killed_at(workdir: Path, argv: list[str], at: int, env: dict[str, str] | None = None) -> bool:
    """Run ``kobe ARGV`` killed before its ``at``-th write; False when it ended first."""
    proc = kobe_child(workdir, argv, at=at, env=env)
    if proc.returncode == -signal.SIGKILL:
        return True
    assert proc.returncode in (0, 1), proc.stderr
    return False


def kobe(workdir: Path, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``kobe ARGV`` in this process (read-only commands: fast, no interpreter start)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), env=env or {}, cwd=workdir, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------------------------
# The invariants


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.problems.append(what)


def jsonl(path: Path, findings: Findings) -> list[dict[str, object]]:
    """Every line of a journal; a line that does not parse is a finding (a kill -9 between two
    writes tears nothing)."""
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            records.append(json.loads(line))
        except ValueError:
            findings.check(False, f"{path.name}: line {number} is torn")
    return records


def dec(value: object) -> Decimal:
    return Decimal(str(value))


FINAL = ("filled", "canceled", "expired", "rejected")  # an order's status once it has ended


def _entries(orders: list[dict[str, object]]) -> list[tuple[dict[str, object], str]]:
    """Each entry's intent with the last event of its client id."""
    from engine.router import entry_of

    last = {str(r["client_id"]): str(r["event"]) for r in orders}
    return [
        (r, last[str(r["client_id"])])
        for r in orders
        if r["event"] == "intent" and entry_of(str(r["client_id"])) is None
    ]


def check_invariants(
    workdir: Path,
    *,
    tripped_before: bool,
    unprotected_ok: bool = False,
    env: dict[str, str] | None = None,
) -> list[str]:
    """What is wrong with the data dir of ``workdir`` after a crash and a restart ([] if fine)."""
    from engine.book import PositionBook
    from engine.journal import read_csv_rows

    f = Findings()
    data = workdir / "data"
    orders = jsonl(data / "logs" / "orders.jsonl", f)
    trades = jsonl(data / "trades.jsonl", f)
    flows = jsonl(data / "wallet_flows.jsonl", f)
    for name in ("audit.jsonl", "risk_journal.jsonl", "risk_commands.jsonl"):
        jsonl(data / name, f)

    # the CSV journal holds the same events, in the same order
    csv_rows = read_csv_rows(data / "logs" / "orders.csv") if orders else []
    keys = ("event", "client_id", "filled", "status")
    f.check(
        [tuple(str(r[k] or "") for k in keys) for r in orders]
        == [tuple(r[k] for k in keys) for r in csv_rows],
        f"orders.csv ({len(csv_rows)} rows) and orders.jsonl ({len(orders)} records) disagree",
    )

    # no order sent twice: a new intent under a client id only once the order before it under
    # that id has ended (an exit id is reused by `kobe exits` and after a refusal), and on each
    # venue at most one order per client id that has not ended cancelled
    twice = set()
    ended: dict[str, bool] = {}
    for r in orders:
        cid = str(r["client_id"])
        if r["event"] == "intent" and not ended.get(cid, True):
            twice.add(cid)
        ended[cid] = r["event"] in ("fill", "cancel", "reject") or str(r["status"]) in FINAL
    f.check(not twice, f"client ids sent twice: {sorted(twice)}")
    # nor a strategy's entry twice under two ids: one sent entry per signal (its reason names
    # the candidate or the leader's trade), whatever the strategy's own state file says
    signals = Counter(
        (str(r["strategy"]), str(r["reason"]))
        for r, end in _entries(orders)
        if r["strategy"] and end != "reject"
    )
    f.check(
        all(n == 1 for n in signals.values()),
        f"a signal entered twice: {[k for k, n in signals.items() if n > 1]}",
    )
    for venue in ("paper", "dex"):
        state = data / venue / "state.json"
        if state.exists():
            live = Counter(
                o["client_id"]
                for o in json.loads(state.read_text())["orders"]
                if o["status"] not in ("canceled", "expired", "rejected")
            )
            f.check(
                all(n == 1 for n in live.values()),
                f"{venue}: client ids sent twice: {[c for c, n in live.items() if n > 1]}",
            )

    # every fill booked exactly once: the book replayed from the whole journal gives the
    # trades of trades.jsonl (each once) and the positions `kobe positions` shows
    mode = (env or {}).get("KOBE_MODE", "paper")
    replay = PositionBook(data, mode, read_only=True, use_cache=False)
    closed = replay.catch_up(save=False)
    booked = Counter(str(t["trade_id"]) for t in trades)
    f.check(
        all(n == 1 for n in booked.values()),
        f"trades booked twice: {[t for t, n in booked.items() if n > 1]}",
    )
    f.check(
        sorted(booked) == sorted(t.trade_id for t in closed),
        f"trades.jsonl {sorted(booked)} != closed by the journal {sorted(t.trade_id for t in closed)}",
    )
    by_id = {str(t["trade_id"]): t for t in trades}
    for t in closed:
        if t.trade_id in by_id:
            f.check(
                dec(by_id[t.trade_id]["pnl"]) == t.pnl,
                f"trade {t.trade_id}: pnl {by_id[t.trade_id]['pnl']} != journal {t.pnl}",
            )
    code, out, err = kobe(workdir, "positions", "--json", env=env)
    f.check(code == 0, f"kobe positions: exit {code}: {err}")
    shown = json.loads(out) if code == 0 else []
    f.check(
        sorted((p["entry_client_id"], dec(p["qty"])) for p in shown)
        == sorted((p.entry_client_id, p.qty) for p in replay.positions() + replay.dust()),
        "kobe positions differs from the book replayed from the journal",
    )
    for p in shown:  # but after `kobe cancel` of its exits (the operator's choice, said so)
        f.check(
            unprotected_ok or p["protection"] != "UNPROTECTED",
            f"position {p['entry_client_id']} {p['symbol']} is UNPROTECTED after a restart",
        )

    # the venues hold what the book says Kobe holds (never less)
    for venue in ("paper", "dex"):
        state = data / venue / "state.json"
        if not state.exists():
            continue
        balances = json.loads(state.read_text())["balances"]
        held: dict[str, Decimal] = {}
        for p in replay.state.positions.values():
            if p.qty > 0 and (p.venue == "dex") == (venue == "dex"):
                asset = p.symbol.partition("/")[0]
                held[asset] = held.get(asset, Decimal(0)) + p.qty
        for asset, qty in held.items():
            have = sum((dec(v) for v in balances.get(asset, {}).values()), Decimal(0))
            f.check(have >= qty, f"{venue}: book holds {qty} {asset}, the account {have}")

    # wallets: never negative, equal to their allocation plus their flows, each trade once
    code, out, err = kobe(workdir, "wallets", "--json", env=env)
    f.check(code == 0, f"kobe wallets: exit {code}: {err}")
    if code == 0:
        wallets = json.loads(out)["wallets"]
        start = _allocation()
        for wid, w in wallets.items():
            balance = dec(w["balance"])
            f.check(balance >= 0, f"wallet {wid} is negative: {balance}")
            moved = sum((dec(x["amount"]) for x in flows if x["to"] == wid), Decimal(0)) - sum(
                (dec(x["amount"]) for x in flows if x["from"] == wid), Decimal(0)
            )
            f.check(
                balance == start[wid] + moved,
                f"wallet {wid}: balance {balance} != allocation {start[wid]} + flows {moved}",
            )
        legs = Counter(str(x["id"]) for x in flows)
        f.check(all(n == 1 for n in legs.values()), "a wallet flow journaled twice")
        paid = {str(x["op"]).removeprefix("trade:") for x in flows if x["rule"] == "trade_pnl"}
        f.check(paid == set(booked), f"wallets booked {sorted(paid)}, trades {sorted(booked)}")

    # the kill switch: a trip stays; the losing streak counts each losing trade once
    code, out, err = kobe(workdir, "risk", "status", "--json", env=env)
    f.check(code == 0, f"kobe risk status: exit {code}: {err}")
    if code == 0:
        risk = json.loads(out)
        if tripped_before:
            f.check(risk["state"] == "TRIPPED", f"the kill switch was tripped, now {risk['state']}")
        f.check("state lost" not in risk["reason"], f"risk state lost: {risk['reason']}")
        streak = 0
        for t in trades:
            streak = streak + 1 if dec(t["pnl"]) < 0 else 0
        f.check(
            risk["losing_streak"] == streak,
            f"losing streak {risk['losing_streak']}, trades.jsonl ends with {streak} losses",
        )
    code, _, err = kobe(workdir, "orders", "--json", env=env)
    f.check(code == 0, f"kobe orders: exit {code}: {err}")
    return f.problems


def _allocation() -> dict[str, Decimal]:
    from engine.config import load_config_file

    cfg = load_config_file(None)
    return {w.id: w.allocation(cfg.finance.capital_usd) for w in cfg.finance.wallets}


def tripped(workdir: Path) -> bool:
    """Whether the risk journal's last transition is a trip (read before the restart)."""
    last = None
    path = workdir / "data" / "risk_journal.jsonl"
    if path.exists():
        for line in path.read_bytes().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") in ("trip", "reset", "armed", "warning"):
                last = record.get("event")
    return last == "trip"


def append_point(points: list[str], name: str, lines: int, n: int) -> int:
    """The kill point (1-based) just before the ``n``-th line appended to ``name`` in a run whose
    ``points`` (from :func:`write_points`) left ``lines`` lines in it. A journal's writer counts
    one point when it opens, at start, before any line."""
    mine = [k for k, path in enumerate(points, start=1) if path == name]
    opens = len(mine) - lines
    return mine[opens + n - 1]
