"""``kobe.lock``: one engine per data dir.

A running engine (``kobe run``, the cockpit) holds an exclusive ``flock`` on the data dir itself
for its whole life; ``<data_dir>/kobe.lock`` names the holder (pid and command). ``kobe trade`` and
``kobe cancel`` take the same lock for the duration of the command, so they refuse while an
engine runs rather than race it. The kernel drops the lock when the process dies, even on SIGKILL.
The lock is on the directory, not on the file: a lock file deleted while an engine runs (a
clean-up) would let the next process create a new one, lock that, and run beside the engine.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from pathlib import Path
from types import TracebackType

from engine.config import ConfigError
from engine.fsutil import make_dirs, writing

LOCK_NAME = "kobe.lock"


class DataDirBusy(Exception):
    """Another process holds the data dir. Exit code 1."""

    def __init__(self, path: Path, holder: str, rule: str = "one engine per data dir") -> None:
        self.path = path
        self.holder = holder
        super().__init__(f"{path} is held by {holder}: {rule}")


class DataDirLock:
    """The lock of a directory: the data dir's (one engine), or another one's with its own
    ``name`` for the file that names the holder and ``rule`` for the refusal (the indexer's)."""

    def __init__(
        self,
        data_dir: Path,
        what: str | None = None,
        *,
        name: str = LOCK_NAME,
        rule: str = "one engine per data dir",
    ) -> None:
        self.path = Path(data_dir) / name
        self.rule = rule
        self.what = what or " ".join([Path(sys.argv[0]).name, *sys.argv[1:2]])
        self._fd: int | None = None
        self._dir_fd: int | None = None

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
            make_dirs(self.path.parent)
            dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(dir_fd)
            raise DataDirBusy(self.path, self._holder(), self.rule) from None
        try:
            with writing(self.path):
                # O_NOFOLLOW: a symlink swapped in meanwhile is refused, its target never truncated
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
                try:
                    # written, then cut to its length: a reader never finds it empty meanwhile
                    said = f"pid {os.getpid()} ({self.what})\n".encode()
                    os.pwrite(fd, said, 0)
                    os.ftruncate(fd, len(said))
                except BaseException:
                    os.close(fd)
                    raise
        except BaseException:
            os.close(dir_fd)  # closing drops the lock
            raise
        self._fd, self._dir_fd = fd, dir_fd
        return self

    def _holder(self, wait_s: float = 0.5) -> str:
        """Who holds the data dir, as its lock file says (never created or written here).

        The holder names itself just after it takes the lock: a refusal in that instant waits
        for the name (at most ``wait_s``) rather than say "another process" at once."""
        deadline = time.monotonic() + wait_s
        while (said := self._said()) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return said or "another process"

    def _said(self) -> str | None:
        """The lock file's text, or None when it is absent, empty or unreadable."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:  # deleted while the engine runs: it still holds the data dir
            return None
        try:
            return os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or None
        except OSError:
            return None
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None and self._dir_fd is not None:
            with contextlib.suppress(OSError):  # a full disk must not hide the release
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            fcntl.flock(self._dir_fd, fcntl.LOCK_UN)
            os.close(self._dir_fd)
            self._fd = self._dir_fd = None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
