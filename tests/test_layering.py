"""The engine never imports the UI; ccxt is imported lazily (paper mode never loads it)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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


def test_the_cli_in_paper_mode_does_not_import_ccxt(tmp_path: Path) -> None:
    """README: "Paper mode never imports ccxt": a trade, the read-only commands and a run."""
    commands = [
        ["health"],
        ["trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15",
         "--sl", "90000", "--tp", "100000", "--yes"],
        ["orders"], ["positions"], ["wallets"], ["cancel", "--all", "--yes"],
        ["run", "--headless", "--ticks", "5"],
    ]  # fmt: skip
    code = (
        "import sys, io; from engine.cli import main\n"
        f"codes = [main(argv, env={{}}, out=io.StringIO()) for argv in {commands!r}]\n"
        "print(codes, 'ccxt' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{[0] * len(commands)} False"


# ---------------------------------------------------------------------------------------------
# The import graph of engine/ and kobe_tui/, read from the source with ast: every import counts,
# at module level, inside functions and under TYPE_CHECKING (a circle that only closes at run
# time, or only for the type checker, still tangles the layers). Relative imports are resolved,
# and ``from pkg import module`` points at the module. The implicit import of a module's parent
# packages is not an edge: a package's ``__init__`` re-exporting its own modules is no circle.

PACKAGES = ("engine", "kobe_tui")
UI_PACKAGES = ("textual", "rich", "kobe_tui")
MAX_LINES = 500


def module_files(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    files = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join(parts)] = path
    return files


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every dotted name ``module`` imports; ``from x import y`` gives ``x.y``."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            yield from (f"{target}.{alias.name}" for alias in node.names)


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """module -> the modules of ``packages`` it imports (a name resolves to the longest
    module it starts with: ``engine.config.KobeConfig`` is ``engine.config``)."""
    files = module_files(root, packages)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        edges = set()
        for name in imported_names(module, path):
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != module:
                edges.add(name)
        graph[module] = edges
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(circles)


def describe(circle: list[str], graph: dict[str, set[str]]) -> str:
    inside = set(circle)
    return "; ".join(f"{m} -> {', '.join(sorted(graph[m] & inside))}" for m in circle)


def test_no_import_circle_in_engine_or_kobe_tui() -> None:
    graph = import_graph(ROOT)
    assert len(graph) > 60  # the walk really found the modules
    circles = import_circles(graph)
    assert not circles, "import circles:\n" + "\n".join(describe(c, graph) for c in circles)


def test_the_engine_imports_no_ui_not_even_lazily_or_for_types() -> None:
    offenders = []
    for module, path in module_files(ROOT, ("engine",)).items():
        for name in imported_names(module, path):
            if name.split(".")[0] in UI_PACKAGES:
                offenders.append(f"{module}: {name}")
    assert not offenders


def test_the_circle_finder_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The check above can fail: circles through a function-level import, a TYPE_CHECKING
    import, a relative import and ``from pkg import module`` are all found; a package that
    re-exports its own modules is not a circle."""
    pkg = tmp_path / "engine"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "def f():\n    from engine import b\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from engine.a import f\n",
        "c.py": "from .sub import d\n",
        "sub/__init__.py": "from engine.sub.d import X\n",
        "sub/d.py": "X = 1\nfrom ..c import *\n",
        "e.py": "import engine.sub\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text, encoding="utf-8")
    graph = import_graph(tmp_path, ("engine",))
    assert graph["engine.c"] == {"engine.sub.d"}
    assert graph["engine.e"] == {"engine.sub"}
    assert import_circles(graph) == [["engine.a", "engine.b"], ["engine.c", "engine.sub.d"]]


def test_no_module_over_500_lines() -> None:
    sizes = {
        m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in module_files(ROOT).items()
    }
    over = {m: n for m, n in sorted(sizes.items()) if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: {over}"
