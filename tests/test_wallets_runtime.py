"""The runtime manager: snapshot, restart (in process and after SIGKILL), torn journals, CLI."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from engine.config import KobeConfig
from engine.fsutil import WriteFailed
from engine.wallets.runtime import WalletManager, WalletStateError
from tests.conftest import ROOT, CliRunner
from tests.test_wallets_support import T0, Clock, cfg_from, manager, run_steps, script

D = Decimal
FLOWS = "wallet_flows.jsonl"
SNAP = "wallets_runtime.json"


def uninterrupted(data_dir: Path) -> WalletManager:
    clock = Clock()
    m = manager(data_dir, clock)
    run_steps(m, clock, script())
    return m


def state_of(m: WalletManager) -> dict[str, Any]:
    led = m.ledger
    return {
        "balances": dict(led.balances),
        "pnl_day": dict(led.pnl_day),
        "unswept": dict(led.unswept),
        "fees_day": led.fees_day,
        "realized": led.realized_pnl,
        "fees_paid": led.fees_paid,
        "marks": dict(led.marks),
        "seq": m.seq,
    }


# -- snapshot ----------------------------------------------------------------------------------


def test_on_tick_writes_the_snapshot_with_every_wallet_chain_role_and_share(
    tmp_path: Path,
) -> None:
    clock = Clock()
    m = manager(tmp_path, clock)
    m.on_trade_closed("sniper_sol", D(6), D("0.4"), trade_id="A")
    snap = m.on_tick(clock.step(minutes=1))
    doc = json.loads((tmp_path / SNAP).read_text())
    assert doc["profile_id"] == "LIVE_150"
    assert D(doc["equity_total_usd"]) == D(150) + D(6) - D("0.4") == snap.equity_total_usd
    assert D(doc["pnl_day"]) == D("5.6")
    assert len(doc["wallets"]) == 10
    cfg = KobeConfig().finance
    for w in cfg.wallets:
        row = doc["wallets"][w.id]
        assert (row["chain"], row["role"]) == (w.chain, w.role)
        assert set(row) == {"chain", "role", "balance", "pct_equity", "pnl_day"}
        assert 0 <= D(row["pct_equity"]) <= 100
    assert sum(D(r["balance"]) for r in doc["wallets"].values()) == D(doc["equity_total_usd"])
    assert abs(sum(D(r["pct_equity"]) for r in doc["wallets"].values()) - 100) <= D("0.05")
    assert doc["time"] == "2026-01-01T00:01:00Z"
    assert doc["state"]["seq"] == m.seq
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_the_snapshot_is_replaced_atomically(tmp_path: Path, monkeypatch: Any) -> None:
    clock = Clock()
    m = manager(tmp_path, clock)
    m.on_tick(clock.step(minutes=1))
    good = (tmp_path / SNAP).read_text()

    def boom(*a: Any, **k: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    m.on_trade_closed("sniper_sol", D(1), D(0), trade_id="A")
    with pytest.raises(WriteFailed, match="the wallets snapshot was not written"):
        m.on_tick(clock.step(minutes=1))
    assert (tmp_path / SNAP).read_text() == good  # the old snapshot, whole
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# -- restart -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 37, 120, 200])
def test_restart_mid_sequence_ends_like_an_uninterrupted_run(tmp_path: Path, cut: int) -> None:
    steps = script()
    whole = uninterrupted(tmp_path / "whole")
    clock = Clock()
    first = manager(tmp_path / "cut", clock)
    run_steps(first, clock, steps[:cut])
    first.close()  # no goodbye snapshot: like a crash after the last flushed line
    again = manager(tmp_path / "cut", clock)
    run_steps(again, clock, steps)  # the caller delivers everything again: nothing twice
    assert state_of(again) == state_of(whole)
    assert (tmp_path / "cut" / FLOWS).read_bytes() == (tmp_path / "whole" / FLOWS).read_bytes()


def test_restart_replays_journal_lines_written_after_the_snapshot(tmp_path: Path) -> None:
    clock = Clock()
    m = manager(tmp_path, clock)
    m.on_tick(clock.step(minutes=1))  # snapshot at seq 0
    m.on_trade_closed("copy_sol", D(7), D("0.5"), trade_id="A")
    m.on_trade_closed("cex_okx", D(-2), D("0.1"), trade_id="B")
    expected = state_of(m)
    m.close()
    again = manager(tmp_path, clock)
    assert again.replayed_ops == 2
    assert state_of(again) == expected
    assert again.on_trade_closed("copy_sol", D(7), D("0.5"), trade_id="A") is False
    assert state_of(again) == expected


def test_restart_after_a_clean_snapshot_reads_no_journal_line_before_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    m = manager(tmp_path, clock)
    m.on_trade_closed("copy_sol", D(7), D("0.5"), trade_id="A")
    m.on_tick(clock.step(minutes=1))
    expected = state_of(m)
    m.close()
    path = tmp_path / FLOWS
    lines = path.read_text().splitlines(keepends=True)
    lines[0] = "garbage that a full read would trip over\n"
    path.write_text("".join(lines))
    with caplog.at_level(logging.WARNING):
        again = manager(tmp_path, clock)
    assert again.replayed_ops == 0
    assert caplog.records == []
    assert state_of(again) == expected


def test_a_torn_last_line_is_skipped_with_a_log_line_and_cut_before_appending(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    m = manager(tmp_path, clock)
    m.on_trade_closed("copy_sol", D(7), D(0), trade_id="A")
    expected = state_of(m)
    m.close()
    path = tmp_path / FLOWS
    whole = path.read_bytes()
    with open(path, "ab") as fh:
        fh.write(b'{"seq": 2, "id": "trade:B#1", "op": "trade:B", "le')
    with caplog.at_level(logging.WARNING):
        again = manager(tmp_path, clock)
    assert state_of(again) == expected
    assert any("torn last line skipped" in r.getMessage() for r in caplog.records)
    # cut at the first append (a start refused later writes nothing), back to whole lines
    assert path.read_bytes() != whole
    again.on_trade_closed("cex_okx", D(1), D(0), trade_id="B")
    assert path.read_bytes().startswith(whole)
    assert [json.loads(x)["seq"] for x in path.read_text().splitlines()] == [1, 2]


@pytest.mark.parametrize("amount", ["NaN", "1e999", "-5", "Infinity"])
def test_a_movement_whose_amount_is_absurd_is_never_replayed(tmp_path: Path, amount: str) -> None:
    """NaN or 1e999 in a journaled movement was a decimal traceback in every command that
    loads the wallets; -5 moved money backwards."""
    clock = Clock()
    m = manager(tmp_path, clock)
    m.on_tick(clock.step(minutes=1))  # snapshot at seq 0
    m.on_trade_closed("copy_sol", D(7), D(0), trade_id="A")
    m.close()
    path = tmp_path / FLOWS
    [line] = [json.loads(x) for x in path.read_text().splitlines()]
    path.write_text(json.dumps({**line, "amount": amount}) + "\n")
    again = manager(tmp_path, clock)
    assert again.replayed_ops == 0
    assert all(b.is_finite() and b >= 0 for b in state_of(again)["balances"].values())


def test_an_op_missing_some_of_its_lines_is_dropped_and_the_trade_can_be_booked_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    m = manager(tmp_path, clock)
    m.on_trade_closed("copy_sol", D(3), D(0), trade_id="A")
    before = state_of(m)
    m.on_trade_closed("copy_sol", D(5), D("0.5"), trade_id="B")  # two lines
    after = state_of(m)
    m.close()
    path = tmp_path / FLOWS
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))  # B's fees line lost: B is incomplete
    with caplog.at_level(logging.WARNING):
        again = manager(tmp_path, clock)
    assert state_of(again) == before
    assert any("op trade:B has 1 of its 2 lines" in r.getMessage() for r in caplog.records)
    assert again.on_trade_closed("copy_sol", D(5), D("0.5"), trade_id="B") is True
    assert state_of(again) == after


def test_the_cli_reader_tolerates_a_torn_tail_and_changes_no_file(
    cli: CliRunner, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = workdir / "data"
    clock = Clock()
    m = manager(data, clock)
    m.on_trade_closed("copy_sol", D(7), D(0), trade_id="A")
    m.close()
    with open(data / FLOWS, "ab") as fh:
        fh.write(b'{"seq": 2, "id": "tr')
    before = (data / FLOWS).read_bytes()
    with caplog.at_level(logging.WARNING):
        r = cli("wallets", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["wallets"]["copy_sol"]["balance"] == "37"
    assert any("torn last line skipped" in x.getMessage() for x in caplog.records)
    assert (data / FLOWS).read_bytes() == before
    assert sorted(p.name for p in data.iterdir()) == [FLOWS]


def test_a_snapshot_from_another_wallet_set_is_refused(tmp_path: Path) -> None:
    clock = Clock()
    manager(tmp_path, clock).on_tick(T0)
    doc = json.loads((tmp_path / SNAP).read_text())
    doc["state"]["balances"]["ghost"] = "1"
    (tmp_path / SNAP).write_text(json.dumps(doc))
    with pytest.raises(WalletStateError, match="are not the config's"):
        manager(tmp_path, clock)


def test_a_naive_clock_is_refused(tmp_path: Path) -> None:
    m = WalletManager.from_config(KobeConfig(), tmp_path, clock=lambda: T0.replace(tzinfo=None))
    with pytest.raises(ValueError, match="timezone-aware"):
        m.on_trade_closed("copy_sol", D(1), D(0), trade_id="A")
    with pytest.raises(ValueError, match="naive"):
        m.run_periodic_tasks(T0.replace(tzinfo=None))


# -- the "Checked by": SIGKILL midway, restart, same wallets ---------------------------


def driver(data_dir: Path, delay: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.test_wallets_support", str(data_dir), delay],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("part", [4, 2])
def test_sigkill_midway_then_restart_ends_with_the_same_wallets(tmp_path: Path, part: int) -> None:
    whole = driver(tmp_path / "whole", "0")
    out, err = whole.communicate(timeout=120)
    assert whole.returncode == 0, err
    expected = json.loads(out.splitlines()[-1])

    steps = len(script())
    killed = driver(tmp_path / "killed", "0.004")
    assert killed.stdout is not None
    done = -1
    for line in killed.stdout:
        done = int(line)
        if done >= steps // part:
            break
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    assert killed.returncode == -signal.SIGKILL
    assert steps // part <= done < steps - 1  # really midway

    again = driver(tmp_path / "killed", "0")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert json.loads(out.splitlines()[-1]) == expected
    assert sum(D(v) for v in expected.values()) != D(150)  # trades really moved money
    a = (tmp_path / "whole" / FLOWS).read_bytes()
    b = (tmp_path / "killed" / FLOWS).read_bytes()
    assert a == b  # no movement lost, none repeated
    snap_a = json.loads((tmp_path / "whole" / SNAP).read_text())
    snap_b = json.loads((tmp_path / "killed" / SNAP).read_text())
    assert snap_a == snap_b


# -- kobe wallets ------------------------------------------------------------------------------


def test_kobe_wallets_json_on_the_shipped_config(cli: CliRunner, workdir: Path) -> None:
    shutil.copy(ROOT / "kobe.toml", workdir / "kobe.toml")
    before = sorted(p.name for p in workdir.rglob("*"))
    r = cli("wallets", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert set(doc) == {"profile_id", "equity_total_usd", "pnl_day", "wallets", "alerts"}
    assert doc["profile_id"] == "LIVE_150"
    assert doc["equity_total_usd"] == "150"
    assert doc["pnl_day"] == "0"
    assert doc["alerts"] == []
    assert len(doc["wallets"]) == 10
    roles = {"trading", "fees", "buffer", "profits", "vault", "reserve"}
    chains = {"solana", "binance", "bybit", "okx", "offchain"}
    for row in doc["wallets"].values():
        assert set(row) == {"chain", "role", "balance", "pct_equity", "pnl_day"}
        assert row["chain"] in chains and row["role"] in roles
        assert all(isinstance(v, str) for v in row.values())  # decimals as strings
    assert sum(D(w["balance"]) for w in doc["wallets"].values()) == D(150)
    assert doc["wallets"]["sniper_sol"]["balance"] == doc["wallets"]["copy_sol"]["balance"] == "30"
    assert doc["wallets"]["sniper_sol"]["pct_equity"] == "20.00"
    assert sorted(p.name for p in workdir.rglob("*")) == before  # it writes nothing


def run_cli(workdir: Path, clock: Clock, *argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), env={}, cwd=workdir, out=out, err=err, clock=clock)
    return code, out.getvalue()


def test_kobe_wallets_shows_the_runtime_state_and_its_alerts(workdir: Path) -> None:
    clock = Clock()
    m = manager(workdir / "data", clock)
    m.on_tick(clock.step(minutes=1))
    m.on_trade_closed("sniper_sol", D(-40) + D(10), D("6"), trade_id="A")  # after the snapshot
    m.close()
    code, out = run_cli(workdir, clock, "wallets", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["wallets"]["sniper_sol"]["balance"] == "0"
    assert D(doc["equity_total_usd"]) == D(114)
    codes = [a["code"] for a in doc["alerts"]]
    assert "fees_buffer_low" in codes and "fees_over_cap" in codes
    assert all(set(a) == {"severity", "code", "message"} for a in doc["alerts"])

    code, text = run_cli(workdir, clock, "wallets")
    assert code == 0
    assert "profile LIVE_150   equity 114.00 USD   pnl today -36.00 USD" in text
    row = next(line.split() for line in text.splitlines() if "sniper_sol" in line)
    assert row == ["sniper_sol", "solana", "trading", "0.00", "0.00", "-30.00"]
    assert "WARNING   fees_buffer_low:" in text

    clock.step(days=1)  # seen on a later day: today's PnL and fees start again
    code, out = run_cli(workdir, clock, "wallets", "--json")
    doc = json.loads(out)
    assert doc["pnl_day"] == "0" and "fees_over_cap" not in [a["code"] for a in doc["alerts"]]


def test_kobe_wallets_on_an_unreadable_snapshot_exits_1(cli: CliRunner, workdir: Path) -> None:
    (workdir / "data").mkdir()
    (workdir / "data" / SNAP).write_text("{not json")
    r = cli("wallets")
    assert r.code == 1
    assert "wallets_runtime.json is damaged" in r.err


def test_kobe_wallets_with_a_bad_finance_config_exits_2(cli: CliRunner, workdir: Path) -> None:
    (workdir / "kobe.toml").write_text("[finance]\ncapital_usd = 160\n")
    r = cli("wallets", "--json")
    assert r.code == 2
    assert "finance: wallets: allocations add up to 150 USD, not capital_usd (160)" in r.err
    assert r.out == ""


def test_a_changed_period_after_a_restart_still_runs_the_rule_on_time(tmp_path: Path) -> None:
    clock = Clock()
    hourly = cfg_from("[wallet_flows.compounding]\nperiod_s = 3600\nthreshold_usd = 0\n")
    m = manager(tmp_path, clock, hourly)
    assert any(x.rule == "compounding" for x in m.run_periodic_tasks(clock.step(hours=5)))
    m.on_tick(clock.now)
    m.close()
    daily = cfg_from("[wallet_flows.compounding]\nperiod_s = 86400\nthreshold_usd = 0\n")
    again = manager(tmp_path, clock, daily)
    assert not any(x.rule == "compounding" for x in again.run_periodic_tasks(clock.step(hours=5)))
    moves = again.run_periodic_tasks(clock.step(days=1))
    assert any(x.rule == "compounding" for x in moves)  # the next day, as configured
