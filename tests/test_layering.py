"""The engine never imports the UI; ccxt is imported lazily (paper mode never loads it)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import importlib, pkgutil, sys
import engine
names = ["engine"]
for info in pkgutil.walk_packages(engine.__path__, "engine."):
    names.append(info.name)
for name in names:
    importlib.import_module(name)
print(len(names))
print("textual" in sys.modules, any(m == "ccxt" or m.startswith("ccxt.") for m in sys.modules))
"""


def test_importing_every_engine_module_never_imports_textual_or_ccxt() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    count, flags = proc.stdout.strip().splitlines()
    assert int(count) >= 8  # the walk really found the modules
    assert flags == "False False"


def test_the_cli_in_paper_mode_does_not_import_ccxt() -> None:
    code = (
        "import sys, io; from engine.cli import main; "
        "main(['health'], env={}, out=io.StringIO()); print('ccxt' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
