from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.lock import DataDirBusy, DataDirLock
from tests.conftest import ROOT


def test_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from engine.lock import DataDirLock; "
            f"DataDirLock(Path({str(tmp_path)!r}), 'kobe run').acquire(); print('held', flush=True); "
            "time.sleep(30)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(DataDirBusy) as info:
            DataDirLock(tmp_path, "kobe trade").acquire()
        assert f"pid {holder.pid} (kobe run)" in str(info.value)
    finally:
        holder.kill()  # SIGKILL: the kernel releases the lock
        holder.wait()
    deadline = time.monotonic() + 5
    while True:
        try:
            with DataDirLock(tmp_path, "kobe trade"):
                break
        except DataDirBusy:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_lock_is_reentrant_after_release(tmp_path: Path) -> None:
    with DataDirLock(tmp_path, "a"):
        pass
    with DataDirLock(tmp_path, "b"):
        assert "(b)" in (tmp_path / "kobe.lock").read_text()
