"""``kobe.lock``: one engine per data dir.

A running engine (``kobe run``, the cockpit) holds an exclusive ``flock`` on ``<data_dir>/kobe.lock``
for its whole life; the lock file names the holder (pid and command). ``kobe trade`` and
``kobe cancel`` take the same lock for the duration of the command, so they refuse while an
engine runs rather than race it. The kernel drops the lock when the process dies, even on SIGKILL.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from pathlib import Path
from types import TracebackType

from engine.config import ConfigError
from engine.fsutil import writing

LOCK_NAME = "kobe.lock"


class DataDirBusy(Exception):
    """Another process holds the data dir. Exit code 1."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path = path
        self.holder = holder
        super().__init__(f"{path} is held by {holder}: one engine per data dir")


class DataDirLock:
    def __init__(self, data_dir: Path, what: str | None = None) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self.what = what or " ".join([Path(sys.argv[0]).name, *sys.argv[1:2]])
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        if self.path.is_symlink() or (self.path.exists() and not self.path.is_file()):
            kind = "a symlink" if self.path.is_symlink() else "not a regular file"
            raise ConfigError(
                [
                    f"{self.path}: the data dir's lock file is {kind}; Kobe never writes through "
                    "it: remove it (no engine is using it) and start again"
                ]
            )
        with writing(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_NOFOLLOW: a symlink swapped in meanwhile is refused, its target never truncated
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = (
                    os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
                )
            finally:
                os.close(fd)
            raise DataDirBusy(self.path, holder) from None
        try:
            with writing(self.path):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()} ({self.what})\n".encode(), 0)
        except BaseException:
            os.close(fd)  # closing drops the lock
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):  # a full disk must not hide the release
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
