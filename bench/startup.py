"""Startup benchmark: process start to the cockpit's first painted frame, in paper mode.

Baseline, measured in the same run: a bare Textual app with a header, a table and a footer.
Both run headless in a fresh interpreter; the time is taken from just before the process is
spawned to the app's ``Ready`` event (the DOM is ready and the first frame has been displayed).
Also reports whether ``ccxt`` had been imported by then (it must not be, in paper).

    python bench/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

KOBE = """
import sys, time, json
from kobe_tui.app import KobeApp, pause_gc_for_startup

class Bench(KobeApp):
    def on_ready(self) -> None:
        self.stamp, self.cpu = time.time(), time.process_time()
        self.exit()

app = Bench()  # exactly what kobe-tui's main() builds and does
pause_gc_for_startup()
app.run(headless=True, size=(120, 40))
print(json.dumps({"t": app.stamp, "ccxt": "ccxt" in sys.modules, "cpu": app.cpu}))
"""

BARE = """
import sys, time, json
from textual.app import App
from textual.widgets import DataTable, Footer, Header

class Bare(App):
    def compose(self):
        yield Header()
        yield DataTable()
        yield Footer()
    def on_mount(self) -> None:
        t = self.query_one(DataTable)
        t.add_columns("check", "detail")
        t.add_row("config", "ok")
    def on_ready(self) -> None:
        self.stamp, self.cpu = time.time(), time.process_time()
        self.exit()

app = Bare()
app.run(headless=True, size=(120, 40))
print(json.dumps({"t": app.stamp, "ccxt": "ccxt" in sys.modules, "cpu": app.cpu}))
"""


def child_env() -> dict[str, str]:
    """The environment of a measured child: no Kobe settings, and Python's bytecode cache on, as
    an installed Kobe has it (textual's is, from pip): with ``PYTHONDONTWRITEBYTECODE`` set,
    every start would compile Kobe's own sources again (about 150 ms more here)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOBE_", "EXCHANGE"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def measure(code: str, cwd: Path) -> tuple[float, bool, float]:
    """Seconds from spawn to the first frame, whether ccxt was imported, and the CPU seconds
    (user + system) the process had used by then: on a shared machine the CPU time tells the
    work apart from the wait for a core."""
    env = child_env()
    start = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return data["t"] - start, bool(data["ccxt"]), data["cpu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        measure(BARE, cwd)  # warm the OS file cache for both
        measure(KOBE, cwd)
        bare, kobe, bare_cpu, kobe_cpu, ccxt_seen = [], [], [], [], False
        for _ in range(args.runs):  # interleaved, so drift hits both alike
            t, _, cpu = measure(BARE, cwd)
            bare.append(t)
            bare_cpu.append(cpu)
            t, seen, cpu = measure(KOBE, cwd)
            kobe.append(t)
            kobe_cpu.append(cpu)
            ccxt_seen = ccxt_seen or seen
    b, k = statistics.median(bare), statistics.median(kobe)
    bc, kc = statistics.median(bare_cpu), statistics.median(kobe_cpu)
    print(f"runs: {args.runs} each, medians")
    print(f"bare Textual app (header, table, footer): {b * 1000:7.1f} ms  (CPU {bc * 1000:.1f} ms)")
    print(f"kobe-tui first frame (paper):             {k * 1000:7.1f} ms  (CPU {kc * 1000:.1f} ms)")
    print(f"ratio kobe/bare: {k / b:.2f}  (target <= 1.30); in CPU time: {kc / bc:.2f}")
    print(f"ccxt imported before first frame: {'YES' if ccxt_seen else 'no'}  (target: no)")


if __name__ == "__main__":
    main()
