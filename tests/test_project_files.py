"""Files a user relies on: .env.example lists every variable; .gitignore keeps secrets out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.secrets import SECRET_VARS, SWITCH_VARS
from tests.conftest import ROOT


def test_env_example_lists_every_variable_with_a_comment_and_no_value() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    assigned = {}
    for i, line in enumerate(lines):
        m = re.fullmatch(r"([A-Z_]+)=(.*)", line)
        if m:
            assigned[m.group(1)] = m.group(2)
            assert lines[i - 1].startswith("#"), f"{m.group(1)} has no comment above it"
    assert set(assigned) == set(SECRET_VARS) | set(SWITCH_VARS)
    assert all(value == "" for value in assigned.values())


def test_gitignore_covers_secrets_and_journals() -> None:
    entries = set((ROOT / ".gitignore").read_text().split())
    assert {".env", "*.key", "*.pem", "logs/", "data/", "*.csv", "*.jsonl"} <= entries


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make run" in readme
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")


def test_the_readme_names_only_modules_that_exist() -> None:
    """Module references in the README (``engine/...`` paths and the Layout block) stay true
    when modules move."""
    readme = (ROOT / "README.md").read_text()
    paths = set(re.findall(r"`((?:engine|kobe_tui)/[\w/.]*)`", readme))
    layout = readme.split("## Layout", 1)[1].split("```")[1]
    folder = inner = ""
    for line in layout.splitlines():
        top = re.match(r"(\S+/)\s", line)
        entry = re.match(r"  (\S+)\s", line)
        if top:
            folder = inner = top.group(1)
            paths.add(folder)
            continue
        if entry:
            inner = folder + entry.group(1)
            paths.add(inner)
        if inner.endswith("/"):  # a package: the modules its lines name
            paths |= {inner + name for name in re.findall(r"\b(\w+\.py)\b", line)}
    assert len(paths) > 20
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"the README names modules that do not exist: {missing}"


def test_the_readme_names_only_tests_and_benches_that_exist() -> None:
    """The README points to tests and benches by path (`tests/test_paper_fidelity.py`,
    `python bench/crash_sweep.py`, `tests/test_contract_manual.py::test_...`): each is there."""
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"\b((?:tests|bench)/\w+\.py)(?:::(\w+))?", readme))
    assert len(named) > 20
    for path, test in sorted(named):
        assert (ROOT / path).is_file(), path
        if test:
            assert re.search(rf"^def {test}\(", (ROOT / path).read_text(), re.M), (path, test)


def test_the_bench_command_lines_in_the_readme_parse() -> None:
    """`python bench/cockpit.py --skip latency --runs 5`, `bench/startup.py --runs 9`, ...: each
    bench the README runs takes the options it is shown with (values checked by its parser)."""
    import subprocess
    import sys

    readme = (ROOT / "README.md").read_text()
    lines = set(re.findall(r"`(?:python )?bench/(\w+)\.py((?: --[\w-]+(?: \w+)?)*)`", readme))
    assert len(lines) >= 5, lines
    for script, args in sorted(lines):
        argv = [sys.executable, str(ROOT / "bench" / f"{script}.py"), *args.split()]
        shown = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, (script, args, shown.stderr)
        for flag in re.findall(r"--[\w-]+", args):
            assert f"[{flag} " in shown.stdout or f"[{flag}]" in shown.stdout, (script, flag)


@pytest.mark.parametrize(
    "argv",
    ["router.py --n 5", "runtime.py --ticks 3 --trades 4", "wallets.py --trades 20 --runs 1"],
    ids=lambda a: a.split()[0],
)
def test_the_quick_benches_run_to_their_figures(argv: str, tmp_path: Path) -> None:
    """README: "Figures printed by the scripts under `bench/` (`make bench` runs them all)":
    `bench/router.py` stopped at its first order (its kill switch tripped: risk state lost) and
    `bench/runtime.py` at its memory run (a risk limit the config refuses); a tiny run of each
    must print its figures."""
    import subprocess
    import sys

    script, *args = argv.split()
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"\d+ (?:/s|trades/s)", done.stdout), done.stdout


def test_the_two_programs_and_the_python_the_readme_names() -> None:
    """README: "Both need only `python3` (3.11+) ... `.venv/bin/kobe` and `.venv/bin/kobe-tui`
    are the two programs": the package installs those two, each a function that exists."""
    import importlib
    import tomllib

    readme = (ROOT / "README.md").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    version = re.search(r"`python3` \((\d+\.\d+)\+\)", readme)
    assert version is not None and project["requires-python"] == f">={version.group(1)}"
    scripts = project["scripts"]
    assert set(scripts) == {"kobe", "kobe-tui"}
    assert all(f"`.venv/bin/{name}`" in readme for name in scripts)
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target


def test_make_run_and_make_test_do_what_the_readme_says() -> None:
    """README: `make run` starts the cockpit (kobe-tui); `make test` runs `ruff check`, `ruff
    format --check`, `mypy --strict engine` and `pytest`; `make bench` runs every bench."""
    make = (ROOT / "Makefile").read_text()

    def recipe(target: str) -> list[str]:
        block = re.search(rf"^{target}:([^\n]*)\n((?:\t[^\n]*\n)*)", make, re.M)
        assert block is not None, target
        deps = [d for d in block.group(1).split() if d != "$(STAMP)"]
        lines = [line.strip().replace("$(BIN)/", "") for line in block.group(2).splitlines()]
        return [step for dep in deps for step in recipe(dep)] + lines

    assert recipe("run") == ["kobe-tui"]
    steps = ["ruff check .", "ruff format --check .", "mypy --strict engine", "pytest"]
    assert recipe("test") == steps
    benches = sorted(p.name for p in (ROOT / "bench").glob("*.py") if p.name != "crash_sweep.py")
    assert sorted(s.split("bench/")[1] for s in recipe("bench")) == benches


def test_the_pytest_command_lines_in_the_readme_parse() -> None:
    """README: `.venv/bin/pytest tests/test_snapshots.py --snapshot-update` and
    `.venv/bin/pytest -m contract tests/test_contract_manual.py`: the option and the marker
    exist (an unknown marker would select nothing, silently)."""
    import subprocess
    import sys

    readme = (ROOT / "README.md").read_text()
    assert "`.venv/bin/pytest tests/test_snapshots.py --snapshot-update`" in readme
    assert ".venv/bin/pytest -m contract tests/test_contract_manual.py" in readme
    pytest_ = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    shown = subprocess.run([*pytest_, "--help"], capture_output=True, text=True, cwd=ROOT)
    assert "--snapshot-update" in shown.stdout
    markers = subprocess.run([*pytest_, "--markers"], capture_output=True, text=True, cwd=ROOT)
    assert "@pytest.mark.contract:" in markers.stdout
