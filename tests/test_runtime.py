"""The Runtime and ``kobe run --headless``: determinism, pause, stop, one engine per data dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from engine.agent import AgentEngine, build_agent
from engine.journal import iter_jsonl
from engine.modes import resolve_settings
from engine.runtime import EngineEvent, Runtime, SimClock
from engine.trades import pnl_summary
from tests.conftest import ROOT, CliRunner


def test_same_seed_same_trades_byte_for_byte(cli: CliRunner, tmp_path: Path) -> None:
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        d.mkdir()
        r = cli("run", "--headless", "--ticks", "500", "--seed", "7", cwd=d)
        assert r.code == 0, r.err
        assert "Solana wallets trade on a simulated paper DEX venue" in r.out
    a, b = (d / "data" / "trades.jsonl" for d in dirs)
    assert a.read_bytes() == b.read_bytes()
    trades = list(iter_jsonl(a))
    assert len(trades) >= 5  # the shipped config closes at least five trades in 500 ticks
    assert {t["strategy"] for t in trades} == {"memecoin_farming", "copy_trading"}
    snap = json.loads((dirs[0] / "data" / "wallets_runtime.json").read_text())
    assert Decimal(snap["equity_total_usd"]) != Decimal(150)  # the wallets moved
    # money is conserved: the wallets hold the capital plus every trade's PnL after fees
    total = sum(Decimal(w["balance"]) for w in snap["wallets"].values())
    assert total == Decimal(150) + pnl_summary(a).total
    assert (dirs[0] / "data" / "logs" / "orders.jsonl").read_bytes() == (
        dirs[1] / "data" / "logs" / "orders.jsonl"
    ).read_bytes()


def test_a_different_seed_gives_different_trades(cli: CliRunner, tmp_path: Path) -> None:
    for name, seed in (("a", "1"), ("b", "2")):
        (tmp_path / name).mkdir()
        assert (
            cli("run", "--headless", "--ticks", "200", "--seed", seed, cwd=tmp_path / name).code
            == 0
        )
    assert (tmp_path / "a/data/trades.jsonl").read_bytes() != (
        tmp_path / "b/data/trades.jsonl"
    ).read_bytes()


def _runtime(workdir: Path) -> tuple[Runtime, SimClock, list[EngineEvent]]:
    settings = resolve_settings({}, workdir)
    clock = SimClock(settings.config.paper.sim_start)
    runtime = Runtime(settings, clock=clock, tick_seconds=60, agent_factory=build_agent)
    events: list[EngineEvent] = []
    runtime.subscribe(events.append)
    runtime.build()
    return runtime, clock, events


def test_pause_stops_new_entries_but_exits_keep_working(workdir: Path) -> None:
    runtime, clock, events = _runtime(workdir)
    try:
        for _ in range(60):
            clock.advance(60)
            runtime.tick()
        assert runtime.positions()  # something is open
        runtime.pause()
        seen = len(events)
        for _ in range(200):
            clock.advance(60)
            runtime.tick()
        during = [e.payload for e in events[seen:] if e.kind == "order"]
        entries = [o for o in during if o.event == "intent" and o.client_id[-1].isdigit()]
        assert entries == []  # no new entry while paused
        assert [e for e in events[seen:] if e.kind == "trade"]  # positions still closed
        runtime.resume()
        for _ in range(100):
            clock.advance(60)
            runtime.tick()
        after = [e.payload for e in events if e.kind == "order"][-200:]
        assert any(o.event == "intent" and o.client_id[-1].isdigit() for o in after)
    finally:
        runtime.stop()


def test_one_engine_per_data_dir(cli: CliRunner, workdir: Path) -> None:
    runtime, _, _ = _runtime(workdir)
    try:
        r = cli("run", "--headless", "--ticks", "5")
        assert r.code == 1 and f"pid {os.getpid()} (kobe engine)" in r.err
        r = cli(
            "trade",
            "--symbol",
            "BTC/USDT",
            "--side",
            "buy",
            "--type",
            "market",
            "--quote",
            "15",
            "--yes",
        )
        assert r.code == 1 and "one engine per data dir" in r.err
    finally:
        runtime.stop()


def test_kobe_risk_trip_is_obeyed_by_a_running_engine_within_one_tick(
    cli: CliRunner, workdir: Path
) -> None:
    runtime, clock, events = _runtime(workdir)
    try:
        clock.advance(60)
        runtime.tick()
        assert cli("risk", "trip", "--reason", "from another terminal").code == 0
        clock.advance(60)
        runtime.tick()
        assert runtime.risk_snapshot().state.value == "TRIPPED"
        assert any(e.kind == "alert" and "TRIPPED" in e.payload.message for e in events)
    finally:
        runtime.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_finishes_the_step_and_leaves_complete_journals(
    workdir: Path, sig: signal.Signals
) -> None:
    """README: "SIGINT / SIGTERM finish the current step"; ctrl+c (SIGINT) is no exit 130 for
    `kobe run`: it "finishes its step and exits 0"."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from engine.cli import entrypoint; entrypoint()",
         "run", "--headless", "--duration", "60", "--tick", "0.01"],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until the engine ticks
        if "engine running" in line:
            break
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    orders = workdir / "data" / "logs" / "orders.jsonl"
    assert proc.returncode == 0, err
    assert f"signal {sig.name}: finishing the current step" in err
    for path in (orders, workdir / "data" / "audit.jsonl", workdir / "data" / "wallet_flows.jsonl"):
        if path.exists():
            raw = path.read_bytes()
            assert raw == b"" or raw.endswith(b"\n"), path  # no torn last line
            for line in raw.splitlines():
                json.loads(line)
    assert not (workdir / "data" / "kobe.lock").read_text()  # released
    assert (workdir / "data" / "wallets_runtime.json").exists()  # it did run


def test_ctrl_c_while_the_exchange_is_down_stops_at_once_without_a_traceback(
    workdir: Path,
) -> None:
    """kobe run against an exchange answering 503: ctrl+c ends the retries' pauses at once (a
    Stopping escaped main as a traceback when it came during the start's market load)."""
    from tests import binance_sim
    from tests.test_ccxt_contract import sim_env
    from tests.test_request_budget import FINANCE

    (workdir / "kobe.toml").write_text(FINANCE)
    with binance_sim.BinanceSim() as sim:
        env = sim_env(sim, PATH=os.environ.get("PATH", ""), PYTHONPATH=str(ROOT))
        argv = [sys.executable, "-c", "from engine.cli import entrypoint; entrypoint()", "run",
                "--headless", "--duration", "60", "--tick", "1"]  # fmt: skip

        def interrupt(proc: subprocess.Popen[str]) -> None:
            asked = time.monotonic()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
            assert time.monotonic() - asked < 2, err
            assert proc.returncode in (0, 130) and "Traceback" not in err, err

        down = {"status": 503, "body": "Service Unavailable", "times": 10_000}
        sim.inject(**down)  # down from the start: in the market load's retries
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
        proc = subprocess.Popen(argv, cwd=workdir, env=env, **pipes)
        time.sleep(1.5)
        interrupt(proc)
        sim.faults.clear()  # up at the start, then down: in a tick's retries
        proc = subprocess.Popen(argv, cwd=workdir, env=env, **pipes)
        assert proc.stdout is not None
        for line in proc.stdout:
            if "engine running" in line:
                break
        sim.inject(**down)
        time.sleep(3)
        interrupt(proc)


def test_equity_is_marked_to_market_and_the_unprotected_entries_are_emitted(workdir: Path) -> None:
    runtime, clock, events = _runtime(workdir)
    try:
        for _ in range(60):
            clock.advance(60)
            runtime.tick()
        held = runtime.positions()
        assert held  # the strategies hold positions
        [wallets] = [e.payload for e in events if e.kind == "wallets"][-1:]
        ledger = runtime.wallets.snapshot()
        unrealized, by_wallet = runtime.execution.unrealized(runtime._prices())
        assert unrealized != 0
        assert wallets.equity_total_usd == ledger.equity_total_usd + unrealized
        w = held[0].wallet
        assert wallets.wallet(w).balance == ledger.wallet(w).balance + by_wallet[w]
        emitted = [e.payload for e in events if e.kind == "unprotected"]  # by entry
        unprotected = tuple(p.entry_client_id for p in runtime.execution.unprotected())
        assert emitted and emitted[-1] == unprotected
    finally:
        runtime.stop()


def test_a_strategy_position_that_becomes_dust_frees_its_slot_in_the_same_run(
    workdir: Path,
) -> None:
    runtime, clock, _ = _runtime(workdir)
    try:
        held: dict[str, str] = {}  # strategy -> an entry client id it holds
        for _ in range(400):
            clock.advance(60)
            runtime.tick()
            for p in runtime.positions():
                held.setdefault(p.strategy, p.entry_client_id)
            if {"memecoin_farming", "copy_trading"} <= held.keys():
                break
        assert {"memecoin_farming", "copy_trading"} <= held.keys()
        agent = runtime.agent
        assert isinstance(agent, AgentEngine)
        router = runtime.venues["dex"].router
        for name in ("memecoin_farming", "copy_trading"):
            strategy = agent.strategies[name]
            [pos] = [p for p in runtime.positions() if p.entry_client_id == held[name]]
            refs = {p.ref for p in strategy.positions()}
            assert pos.ref in refs
            # what the router does when its watchdog finds the position too small to sell
            # (tests/test_protection.py drives that finding itself)
            router.on_dust(pos.entry_client_id)
            assert pos.ref not in {p.ref for p in strategy.positions()}  # the slot is free
            assert len(strategy.positions()) == len(refs) - 1
            assert held[name] in {p.entry_client_id for p in runtime.execution.book.dust()}
        saved = json.loads((workdir / "data" / "agent_state.json").read_text())["links"]
        assert not set(held.values()) & set(saved)
    finally:
        runtime.stop()


def test_a_trip_by_the_risk_engine_itself_flattens_when_on_trip_is_flatten(workdir: Path) -> None:
    # on_trip applies to every trip, not only to `kobe risk trip`: the losing streak (or the
    # drawdown, or the daily loss) found by the risk engine during a tick flattens too
    (workdir / "kobe.toml").write_text('[risk]\non_trip = "flatten"\nmax_losing_streak = 1\n')
    runtime, clock, events = _runtime(workdir)
    try:
        for _ in range(400):
            clock.advance(60)
            runtime.tick()
            if runtime.risk_snapshot().state.value == "TRIPPED":
                break
        assert runtime.risk_snapshot().state.value == "TRIPPED"
        assert "losing trades in a row" in runtime.risk_snapshot().reason
        clock.advance(60)
        runtime.tick()
        assert runtime.positions() == []  # closed at market, as on_trip = "flatten" says
        assert any(e.kind == "alert" and e.payload.message.startswith("flatten:") for e in events)
    finally:
        runtime.stop()


def _one_position_with_flatten_on_trip(cli: CliRunner, workdir: Path) -> None:
    (workdir / "kobe.toml").write_text('[risk]\non_trip = "flatten"\n')
    buy = ["--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15"]
    assert cli("trade", *buy, "--yes").code == 0


def _the_next_engine_flattens(workdir: Path) -> None:
    runtime, _, events = _runtime(workdir)
    try:
        assert runtime.positions() == []
        assert any(
            e.kind == "alert" and e.payload.message.startswith("flatten: closed") for e in events
        )
    finally:
        runtime.stop()


def _a_confirmed_trip_is_flattened_by_the_next_engine(
    cli: CliRunner, workdir: Path, reason: str
) -> None:
    r = cli("risk", "trip", "--reason", reason, "--yes")
    assert r.code == 0 and "closed when an engine starts" in r.out
    _the_next_engine_flattens(workdir)


def _flatten_alerts(events: list[EngineEvent]) -> list[EngineEvent]:
    return [e for e in events if e.kind == "alert" and e.payload.message.startswith("flatten:")]


def _the_next_engine_keeps_the_position(workdir: Path) -> None:
    """The switch is TRIPPED, and the next engine flattens nothing: the position stays."""
    runtime, _, events = _runtime(workdir)
    try:
        assert runtime.risk_snapshot().state.value == "TRIPPED"
        assert len(runtime.positions()) == 1 and not _flatten_alerts(events)
    finally:
        runtime.stop()


def test_a_trip_applied_while_no_engine_ran_is_flattened_when_the_engine_starts(
    cli: CliRunner, workdir: Path
) -> None:
    # `kobe risk trip` with no engine running trips at once, but only an engine can close:
    # with on_trip = "flatten" the next engine closes what Kobe holds as it starts
    _one_position_with_flatten_on_trip(cli, workdir)
    _a_confirmed_trip_is_flattened_by_the_next_engine(cli, workdir, "closing time")


def test_a_trip_that_only_says_the_risk_files_were_lost_never_flattens(
    cli: CliRunner, workdir: Path
) -> None:
    # a damaged file trips the switch (entries blocked) but is no order to sell at market
    _one_position_with_flatten_on_trip(cli, workdir)
    (workdir / "data" / "execution_runtime.json").write_text("{garbage")
    _the_next_engine_keeps_the_position(workdir)


def test_an_operators_flatten_trip_after_a_lost_state_trip_flattens(
    cli: CliRunner, workdir: Path
) -> None:
    """A trip on a switch tripped only by a lost state was a no-op: its reason stayed "state
    lost", so the operator's confirmed flatten never happened, though the CLI said it would."""
    _one_position_with_flatten_on_trip(cli, workdir)
    (workdir / "data" / "execution_runtime.json").write_text("{garbage")
    runtime, _, _ = _runtime(workdir)  # state lost: TRIPPED, nothing flattened
    assert len(runtime.positions()) == 1
    runtime.stop()
    r = cli("risk", "trip", "--reason", "panic", "--yes")
    assert r.code == 0 and "closed when an engine starts" in r.out
    status = json.loads(cli("risk", "status", "--json").out)
    assert status["state"] == "TRIPPED" and status["reason"] == "manual: panic"
    _the_next_engine_flattens(workdir)


def test_a_trip_with_no_terminal_to_confirm_the_flatten_on_still_trips_and_never_flattens(
    cli: CliRunner, workdir: Path
) -> None:
    """`kobe risk trip` with on_trip = "flatten", no terminal and no --yes (a script, a cron
    job) exited 2 and left the switch ARMED: the emergency brake refused for want of a
    confirmation that only the flatten needs. Now it trips (entries blocked) and flattens
    nothing, saying so; a later confirmed trip takes its place and the next engine flattens."""
    _one_position_with_flatten_on_trip(cli, workdir)
    r = cli("risk", "trip", "--reason", "from a script")
    assert r.code == 0 and "not flattened" in r.out and "closed when an engine starts" not in r.out
    status = json.loads(cli("risk", "status", "--json").out)
    assert status["state"] == "TRIPPED" and status["reason"].endswith("from a script")
    buy = ["--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "6", "--yes"]
    refused = cli("trade", *buy)
    assert refused.code == 1 and "kill switch" in refused.err  # new entries are blocked
    _the_next_engine_keeps_the_position(workdir)
    _a_confirmed_trip_is_flattened_by_the_next_engine(cli, workdir, "panic")


def test_a_queued_trip_whose_flatten_was_not_confirmed_is_not_flattened_by_the_engine(
    cli: CliRunner, workdir: Path
) -> None:
    _one_position_with_flatten_on_trip(cli, workdir)
    runtime, clock, events = _runtime(workdir)
    try:
        r = cli("risk", "trip", "--reason", "from a script")  # queued for the running engine
        assert r.code == 0 and "queued" in r.out and "not flattened" in r.out
        clock.advance(60)
        runtime.tick()
        assert runtime.risk_snapshot().state.value == "TRIPPED"
        assert len(runtime.positions()) == 1 and not _flatten_alerts(events)
    finally:
        runtime.stop()
