"""Crash-safe file writing: atomic replace for snapshots, flushed appends for journals.

Every write of a data file goes through :func:`writing`, which turns an ``OSError`` (a full disk,
an unwritable directory, a file size limit) into :class:`WriteFailed`: one message naming the
path and what was not written; the engine stops cleanly and the CLI exits 1. Tests simulate a
full disk through the same seam (:func:`inject_write_fault`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO


class WriteFailed(OSError):
    """A data file could not be written (full disk, unwritable). Nothing half-done is left that
    a reader would take for a record; the engine stops. Exit code 1.

    An ``OSError`` still, with the original errno: code that degrades on purpose when a write
    fails (the notification outbox) keeps doing so.
    """

    def __init__(self, path: Path, exc: OSError) -> None:
        self.path = Path(path)
        what = _WHAT.get(self.path.name, "Kobe's state")
        reason = exc.strerror or str(exc) or type(exc).__name__
        self.message = (
            f"cannot write {self.path} ({reason}): {what} was not written; Kobe stopped so that "
            "nothing runs unrecorded. Free space or fix the permissions, then start again"
        )
        super().__init__(exc.errno, reason, str(self.path))

    def __str__(self) -> str:
        return self.message


_WHAT = {
    "orders.jsonl": "an order event",
    "orders.csv": "an order event",
    "trades.jsonl": "a closed trade",
    "wallets_runtime.json": "the wallets snapshot",
    "wallet_flows.jsonl": "a wallet movement",
    "execution_runtime.json": "the risk state",
    "risk_journal.jsonl": "a kill-switch transition",
    "risk_commands.jsonl": "a kill-switch command",
    "audit.jsonl": "an operator action",
    "state.json": "the paper account",
    "positions.json": "the position book's cache",
    "agent_state.json": "the strategies' links to their positions",
    "watchdog.json": "the locally watched exits",
    "kobe.lock": "the data dir's lock",
}

_write_fault: Callable[[Path], None] | None = None

log = logging.getLogger(__name__)


def close_all(closers: Iterable[Callable[[], object]]) -> WriteFailed | None:
    """Run every closer, even after one could not write; the first such failure is returned
    (the later ones are logged: the disk that refused one refuses the next)."""
    first: WriteFailed | None = None
    for close in closers:
        try:
            close()
        except WriteFailed as exc:
            log.info("while closing: %s", exc)
            first = first or exc
    return first


def inject_write_fault(fault: Callable[[Path], None] | None) -> None:
    """Tests: ``fault(path)`` runs before every write of a data file; raising
    ``OSError(errno.ENOSPC, ...)`` there is a full disk. None removes it."""
    global _write_fault
    _write_fault = fault


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Around every write of a data file: an OSError becomes :class:`WriteFailed`."""
    try:
        if _write_fault is not None:
            _write_fault(Path(path))
        yield
    except WriteFailed:
        raise
    except OSError as exc:
        raise WriteFailed(path, exc) from None


def append_all(fh: BinaryIO, data: bytes) -> None:
    """Write all of ``data`` to an unbuffered file (a raw write may take only part of it).

    Unbuffered, so that a failed write leaves nothing in a buffer for a later flush to add.
    """
    view = memoryview(data)
    while view:
        written = fh.write(view)
        if not written:
            raise OSError(errno.ENOSPC, "nothing written")
        view = view[written:]


def make_dirs(directory: Path) -> None:
    """``directory`` and any parent missing, each made private (0700, as ``kobe health``
    advises): the data dir holds the whole trading history. One that exists keeps its mode."""
    missing: list[Path] = []
    while not directory.exists() and not directory.is_symlink() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another writer
            path.mkdir(mode=0o700)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one.

    Temp file in the same directory, fsync, rename over the target, fsync the directory.
    """
    path = Path(path)
    with writing(path):
        make_dirs(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_dir(directory: Path) -> None:
    """Make a rename durable. Not every platform can open a directory: tolerate that."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def free_space_check(directory: Path, floor_mb: int) -> tuple[bool, str]:
    """Whether the disk of ``directory`` (or its nearest existing parent) has ``floor_mb`` free."""
    probe = Path(directory)
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError as exc:
        return False, f"{directory}: free space unknown ({exc.strerror or exc})"
    free_mb = free // (1024 * 1024)
    if free_mb >= floor_mb:  # no figure when fine: the cockpit's health pane does not change
        return True, f"at least {floor_mb} MB free (paths.min_free_mb)"
    where = f"{free_mb} MB free on the disk of {directory}"
    return False, f"{where} (floor {floor_mb} MB, paths.min_free_mb)"


def dir_writable(directory: Path, label: str | None = None) -> tuple[bool, str]:
    """Whether ``directory`` can be written, without leaving anything behind.

    An existing directory is probed with a temp file that is removed at once; a missing one is
    judged by its nearest existing parent (the engine creates it on first use). The detail stays
    true after the engine has created it: a pane that shows it later does not lie.
    """
    directory = Path(directory)
    name = label or str(directory)
    if _write_fault is not None:
        try:
            _write_fault(directory)
        except OSError as exc:
            return False, f"{name}: {exc.strerror or exc}"
    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            return False, f"{name}: no existing parent"
        probe = probe.parent
    if not probe.is_dir():
        return False, f"{name}: {probe.name} is not a directory"
    try:
        fd, tmp = tempfile.mkstemp(prefix=".kobe-probe-", dir=probe)
    except OSError as exc:
        return False, f"{name}: {exc.strerror or exc}"
    os.close(fd)
    os.unlink(tmp)
    if probe == directory:
        return True, f"{name} is writable"
    return True, f"{name}: writable, created on first use"


class StateError(Exception):
    """A state file on disk cannot be restored. Nothing was reset or overwritten. Exit code 1."""


# the remedy for a cache the engine cannot rebuild yet
REPAIR_OR_RESTORE = "repair it or restore it from a backup"

# what a damaged file can raise while it is decoded and its records rebuilt
DAMAGE = (
    OSError,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    ArithmeticError,
    IndexError,
    RecursionError,  # JSON nested past the parser's stack: a few KB of [[[[
)


def damaged(
    path: Path, exc: BaseException, remedy: str, error: type[StateError] = StateError
) -> StateError:
    """The error for a file that cannot be read back: names the file, the problem, the remedy."""
    problem = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
    return error(
        f"{path} is damaged ({problem[:300] or type(exc).__name__}); nothing was reset or "
        f"overwritten: {remedy}"
    )


@contextlib.contextmanager
def reading(path: Path, remedy: str, error: type[StateError] = StateError) -> Iterator[None]:
    """Turn any error met while reading ``path`` into a :class:`StateError` naming the file."""
    try:
        yield
    except DAMAGE as exc:
        raise damaged(path, exc, remedy, error) from None


def keep_aside(path: Path) -> Path:
    """Rename ``path`` to the first free ``<stem>.<n><suffix>`` beside it (``orders.1.csv``,
    ``agent_state.1.json``): kept for the operator, out of the way of a new file."""
    path = Path(path)
    n = 1
    while (old := path.with_name(f"{path.stem}.{n}{path.suffix}")).exists():
        n += 1
    with writing(path):
        path.rename(old)
    fsync_dir(path.parent)
    return old


def read_json_object(
    path: Path, remedy: str, error: type[StateError] = StateError
) -> dict[str, Any] | None:
    """The JSON object in ``path`` (None when there is no file); StateError when it is damaged."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except DAMAGE as exc:
        raise damaged(path, exc, remedy, error) from None
    if not isinstance(raw, dict):
        problem = ValueError(f"a JSON {type(raw).__name__}, not an object")
        raise damaged(path, problem, remedy, error)
    return raw
