"""Crash sweep: kill -9 a real ``kobe`` before each of its writes of a data file, restart, check.

For each scenario, a template data dir is prepared, the command under test is traced once (the
data file of every write, in order), then for each kill point k: a copy of the template, the
command killed (SIGKILL) just before its k-th write, ``kobe run --headless --ticks 3`` again,
and the invariants of ``tests/crash_harness.py`` (every fill booked once, no order sent twice,
CSV = JSONL, wallets = allocation + flows and never negative, positions protected, a trip stays
tripped, the losing streak counts each loss once, every read-only command works).

    python bench/crash_sweep.py [--scenario NAME ...] [--every N] [--keep DIR]

Exit 1 when any kill point breaks an invariant (each one printed with its point and file).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import crash_harness as crash
from tests.binance_sim import BinanceSim
from tests.test_ccxt_contract import sim_env

BUY = "trade --symbol BTC/USDT --side buy --type market --quote 15 --yes"
WARM = "run --headless --ticks 3 --seed 7"


@dataclass(frozen=True)
class Scenario:
    setup: tuple[str, ...]  # commands run once in the template, in order
    killed: str  # the command killed at each point
    config: str = ""  # a kobe.toml for the template ("" none: the built-in defaults)
    unprotected_ok: bool = False  # the operator cancelled the exits
    testnet: bool = False  # against the Binance simulator (tests/binance_sim.py), a fresh one each
    only: tuple[str, ...] = ()  # kill only before writes of these files (all when empty)
    flattened: bool = False  # after the restart, Kobe holds nothing on the exchange


SCENARIOS = {
    # the shipped config's strategies on the DEX: entries, OCO exits, hold-time sells, a trip
    "run": Scenario((), "run --headless --ticks 100 --seed 7"),
    "trade-market": Scenario((WARM,), f"{BUY} --sl 90000 --tp 100000"),
    "trade-limit": Scenario(
        (WARM,),
        "trade --symbol BTC/USDT --side buy --type limit --price 94000 --quote 15 "
        "--sl 90000 --tp 100000 --yes",
    ),
    # an OCO on the paper exchange that fills during the run: its fill, its sibling, the trade
    "oco-fills": Scenario((WARM, f"{BUY} --sl 94800 --tp 95300"), "run --headless --ticks 40"),
    "cancel": Scenario((WARM, f"{BUY} --sl 90000 --tp 100000"), "cancel --all --yes", "", True),
    # a queued trip with on_trip = "flatten": the next engine closes the position at market
    # new TP/SL for the position: the watchdog covers it, the old OCO goes, the new one comes
    "exits": Scenario(
        (WARM, f"{BUY} --sl 90000 --tp 100000"), "exits {entry} --tp 99000 --sl 91000 --yes"
    ),
    # testnet through the real ccxt: the entry and its OCO on the simulator, looked up at start
    "testnet-trade": Scenario((), f"{BUY} --sl 90000 --tp 100000", testnet=True),
    # the wallet flows (fees top-ups, compounding) with low thresholds, killed at their writes
    "flows": Scenario(
        (),
        "run --headless --ticks 200 --seed 7",
        "[finance.fees_policy]\nbuffer_min_usd = 9.95\n\n[wallet_flows.profits_sweep]\n"
        "threshold_usd = 0.1\n\n[wallet_flows.compounding]\nperiod_s = 3600\n"
        "threshold_usd = 0.01\n",
        only=("wallet_flows.jsonl", "wallets_runtime.json", "trades.jsonl"),
    ),
    "flatten": Scenario(
        (WARM, f"{BUY} --sl 90000 --tp 100000", "risk trip --reason crash-sweep --yes"),
        "run --headless --ticks 3",
        '[risk]\non_trip = "flatten"\n',
        flattened=True,
    ),
}


@contextlib.contextmanager
def venue(s: Scenario) -> Iterator[tuple[dict[str, str], BinanceSim | None]]:
    """The environment of a scenario's commands, and its simulator (a fresh one) if any."""
    if not s.testnet:
        yield {}, None
        return
    with BinanceSim() as sim:
        yield sim_env(sim), sim


def sweep(name: str, s: Scenario, root: Path, every: int) -> tuple[int, list[str]]:
    template = root / name / "template"
    template.mkdir(parents=True)
    if s.config:
        (template / "kobe.toml").write_text(s.config, encoding="utf-8")
    for command in s.setup:
        proc = crash.kobe_child(template, command.split())
        assert proc.returncode == 0, (command, proc.stderr)
    count = root / name / "count"
    shutil.copytree(template, count)
    killed = s.killed.format(entry=first_entry(template)).split()
    with venue(s) as (env, _):
        points = crash.write_points(count, killed, env)
    failures = []
    tried = 0
    chosen = [k for k, path in enumerate(points, start=1) if not s.only or path in s.only]
    for at in chosen[::every]:
        work = root / name / f"k{at}"
        shutil.copytree(template, work)
        with venue(s) as (env, sim):
            if not crash.killed_at(work, killed, at, env):
                continue  # ended before that write (a run is not byte-for-byte the traced one)
            tried += 1
            problems = restart_and_check(work, s, env, sim)
        if problems:
            failures += [f"{name} k={at} ({points[at - 1]}): {p}" for p in problems]
        else:
            shutil.rmtree(work)
    return tried, failures


def first_entry(workdir: Path) -> str:
    """The client id of the first entry the template's journal holds ("" when none)."""
    path = workdir / "data" / "logs" / "orders.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        record = json.loads(line)
        if record["event"] == "intent" and record["exchange"] == "binance":
            return str(record["client_id"])
    return ""


def restart_and_check(
    work: Path, s: Scenario, env: dict[str, str], sim: BinanceSim | None
) -> list[str]:
    was_tripped = crash.tripped(work)
    restart = crash.kobe_child(work, ["run", "--headless", "--ticks", "3"], env=env)
    if restart.returncode != 0:
        return [f"the restart exits {restart.returncode}: {restart.stderr[-300:]}"]
    problems = crash.check_invariants(
        work, tripped_before=was_tripped, unprotected_ok=s.unprotected_ok, env=env
    )
    if s.flattened:
        held = json.loads(crash.kobe(work, "positions", "--json", env=env)[1])
        problems += [  # the dust a sale leaves (below one step) is not a position to sell
            f"not flattened: {p['entry_client_id']}"
            for p in held
            if p["venue"] != "dex" and p["protection"] != "dust"
        ]
    if sim is not None:
        sent = Counter(o.client_id for o in sim.orders.values())
        problems += [f"the simulator has {n} orders {cid}" for cid, n in sent.items() if n > 1]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", nargs="*", choices=sorted(SCENARIOS), default=None)
    parser.add_argument("--every", type=int, default=1, help="try one kill point in N")
    parser.add_argument("--keep", type=Path, help="work here and keep the failing data dirs")
    parser.add_argument("--only", nargs="*", default=(), help="kill only at writes of these files")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="kobe-crash-"))
    total, failures = 0, []
    for name in args.scenario or sorted(SCENARIOS):
        start = time.monotonic()
        scenario = SCENARIOS[name]
        if args.only:
            scenario = dataclasses.replace(scenario, only=tuple(args.only))
        tried, failed = sweep(name, scenario, root, args.every)
        total += tried
        failures += failed
        took = time.monotonic() - start
        print(
            f"{name:<13} {tried:4d} kill points, {len(failed)} problems, {took:.0f} s", flush=True
        )
        for line in failed:
            print("  " + line, flush=True)
    print(f"total: {total} kill points, {len(failures)} problems")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
