"""Shared fixtures: a clean environment and an in-process CLI runner."""

from __future__ import annotations

import decimal
import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main

ROOT = Path(__file__).resolve().parent.parent

# A value that must never be seen anywhere. Each secret variable gets its own variant.
CANARY = "CANARY-7f3a9c-DO-NOT-PRINT"


def canary_env() -> dict[str, str]:
    from engine.secrets import SECRET_VARS

    return {name: f"{CANARY}-{name}" for name in SECRET_VARS}


def held(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`kobe positions --json` rows less the dust a closed trade's exit left (below one step,
    still in the book at its cost)."""
    return [p for p in rows if p["protection"] != "dust"]


@dataclass
class Result:
    code: int
    out: str
    err: str


CliRunner = Callable[..., Result]


@pytest.fixture(autouse=True)
def default_decimal_context() -> Iterator[None]:
    """Each test starts with Python's default decimal context: a test that calls ccxt directly
    (its precision helpers set the thread's rounding and traps) cannot change the arithmetic of
    the tests after it (a snapshot's quantity was off by one in its last digit)."""
    with decimal.localcontext(decimal.Context()):
        yield


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working directory: no kobe.toml, no .env, data dir under it."""
    d = tmp_path / "work"
    d.mkdir()
    return d


@pytest.fixture
def cli(workdir: Path) -> CliRunner:
    """Run ``kobe`` in-process with an explicit environment (never the developer's)."""

    def run(*argv: str, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Result:
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), env=dict(env or {}), cwd=cwd or workdir, out=out, err=err)
        return Result(code, out.getvalue(), err.getvalue())

    return run


def run_kobe(
    *argv: str, env: Mapping[str, str] | None = None, cwd: Path, timeout: float = 60
) -> Result:
    """Run the installed ``kobe`` entry point in a child process."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    base.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())", *argv],
        cwd=cwd,
        env=base,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
