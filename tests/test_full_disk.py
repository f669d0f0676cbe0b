"""A full disk or an unwritable data dir (issue 15): a clean stop naming the path and what was not
written, exit 1, journals intact, no traceback; a start on a full disk refuses cleanly."""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.fsutil import inject_write_fault
from tests.conftest import ROOT, CliRunner


def check_intact(data: Path) -> None:
    """Every journal line but a torn last one parses; every snapshot parses."""
    for path in data.rglob("*.jsonl"):
        raw = path.read_bytes()
        lines = raw.split(b"\n")
        if not raw.endswith(b"\n"):
            lines = lines[:-1]  # a torn last line: readers skip it, the writer ends it
        for line in lines:
            if line.strip():
                json.loads(line)
    for path in data.rglob("*.json"):
        json.loads(path.read_text())


def run_limited(workdir: Path, limit: int, *argv: str) -> subprocess.CompletedProcess[str]:
    """``kobe`` in a child whose files may not grow past ``limit`` bytes (RLIMIT_FSIZE)."""

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no truncated .pyc left behind by the limit
    return subprocess.run(
        [sys.executable, "-c", "import sys; from engine.cli import entrypoint; entrypoint()", *argv],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=120,
        preexec_fn=limit_files,
    )  # fmt: skip


def test_the_disk_fills_mid_run(workdir: Path) -> None:
    proc = run_limited(workdir, 30_000, "run", "--headless", "--ticks", "3000")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, proc.stderr  # one message
    assert lines[0].startswith("kobe: cannot write ") and "File too large" in lines[0]
    assert "was not written; Kobe stopped" in lines[0]
    data = workdir / "data"
    check_intact(data)
    assert not (data / "kobe.lock").read_text()  # released
    # room again: the next start continues from intact journals
    proc = run_limited(workdir, resource.RLIM_INFINITY, "run", "--headless", "--ticks", "5")
    assert proc.returncode == 0, proc.stderr


def test_a_start_on_a_full_disk_refuses_cleanly(cli: CliRunner, workdir: Path) -> None:
    assert cli("run", "--headless", "--ticks", "30").code == 0
    data = workdir / "data"
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file() and p.name != "kobe.lock"}
    proc = run_limited(workdir, 0, "run", "--headless", "--ticks", "5")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("kobe: cannot write ") and "File too large" in proc.stderr
    after = {p: p.read_bytes() for p in data.rglob("*") if p.is_file() and p.name != "kobe.lock"}
    assert after == before  # nothing changed


@pytest.fixture
def full_disk_after() -> Iterator[list[int]]:
    """ENOSPC from the write seam once ``budget[0]`` writes have been made."""
    budget = [0]

    def fault(path: Path) -> None:
        if budget[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        budget[0] -= 1

    inject_write_fault(fault)
    yield budget
    inject_write_fault(None)


@pytest.mark.parametrize("writes", [0, 5, 60, 400])
def test_enospc_at_any_write_stops_cleanly(
    cli: CliRunner, workdir: Path, full_disk_after: list[int], writes: int
) -> None:
    full_disk_after[0] = writes
    r = cli("run", "--headless", "--ticks", "200")
    assert r.code == 1
    assert r.err.startswith("kobe: cannot write ") and "No space left on device" in r.err
    assert len(r.err.strip().splitlines()) == 1
    full_disk_after[0] = 10**9
    if (workdir / "data").exists():
        check_intact(workdir / "data")
    assert cli("run", "--headless", "--ticks", "5").code == 0  # it starts again


def test_trade_on_a_full_disk_refuses_with_the_path(
    cli: CliRunner, workdir: Path, full_disk_after: list[int]
) -> None:
    full_disk_after[0] = 10**9
    assert cli("risk", "status").code == 0
    assert cli("orders").code == 0
    full_disk_after[0] = 0
    r = cli(
        "trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15", "--yes"
    )  # fmt: skip
    assert r.code == 1 and r.err.startswith("kobe: cannot write ")


def test_low_free_space_fails_health_and_alerts(cli: CliRunner, workdir: Path) -> None:
    (workdir / "kobe.toml").write_text("[paths]\nmin_free_mb = 10000000\n")
    r = cli("health")
    assert r.code == 1 and "FAIL  data dir free space: " in r.out
    assert "(floor 10000000 MB, paths.min_free_mb)" in r.out
    r = cli("run", "--headless", "--ticks", "3")
    assert r.code == 0
    alerts = [x for x in r.out.splitlines() if "disk_space" in x]
    assert len(alerts) == 1 and "low disk space" in alerts[0]  # once, not every tick
    (workdir / "kobe.toml").write_text("[paths]\nmin_free_mb = 0\n")
    assert cli("health").code == 0
