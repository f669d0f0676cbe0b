"""Crash-safe file writing: atomic replace for snapshots, flushed appends for journals."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one.

    Temp file in the same directory, fsync, rename over the target, fsync the directory.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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


def dir_writable(directory: Path, label: str | None = None) -> tuple[bool, str]:
    """Whether ``directory`` can be written, without leaving anything behind.

    An existing directory is probed with a temp file that is removed at once; a missing one is
    judged by its nearest existing parent (the engine creates it on first use).
    """
    directory = Path(directory)
    name = label or str(directory)
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
    return True, f"{name} will be created"


class StateError(Exception):
    """A state file on disk cannot be restored. Nothing was reset or overwritten. Exit code 1."""


# the remedy for a cache the engine cannot rebuild yet
REPAIR_OR_RESTORE = "repair it or restore it from a backup"

# what a damaged file can raise while it is decoded and its records rebuilt
DAMAGE = (OSError, ValueError, KeyError, TypeError, AttributeError, ArithmeticError, IndexError)


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
