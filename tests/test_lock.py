from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
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


def test_a_refusal_in_the_instant_before_the_holder_names_itself_waits_for_the_name(
    tmp_path: Path,
) -> None:
    """The holder takes the lock, then writes its name. A second process refused in between
    (two ``kobe indexer scan`` started by one cron line) read an empty or absent file and said
    "held by another process": it waits, briefly, for the name."""
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held, and not named yet
    named = threading.Timer(0.1, (tmp_path / "kobe.lock").write_text, ["pid 4242 (kobe run)\n"])
    named.start()
    try:
        with pytest.raises(DataDirBusy) as info:
            DataDirLock(tmp_path, "kobe trade").acquire()
    finally:
        named.join()
        os.close(dir_fd)
    assert "kobe.lock is held by pid 4242 (kobe run): one engine per data dir" in str(info.value)


def test_a_holder_killed_with_a_longer_name_leaves_no_tail_in_the_next_name(tmp_path: Path) -> None:
    """SIGKILL leaves the holder's name in the file; the next holder writes its own over it and
    cuts the file to its length: no tail of the old name."""
    (tmp_path / "kobe.lock").write_text("pid 99999999 (kobe run --headless --ticks 500)\n")
    with DataDirLock(tmp_path, "b"):
        assert (tmp_path / "kobe.lock").read_text() == f"pid {os.getpid()} (b)\n"
