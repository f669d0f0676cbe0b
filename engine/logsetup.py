"""Logging for the CLI and the cockpit: stderr or a file, with secret redaction always on."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from io import TextIOWrapper
from pathlib import Path

from engine.secrets import RedactingFilter, install_log_redaction

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_ours: list[logging.Handler] = []


class CollapseRepeats(logging.Handler):
    """The same message again and again (a network warning every tick) is one line, then one
    line with the count when another message comes (or at close)."""

    def __init__(self, target: logging.Handler) -> None:
        super().__init__()
        self.target = target
        self._last: tuple[str, int, str] | None = None
        self._last_record: logging.LogRecord | None = None
        self._repeats = 0

    def emit(self, record: logging.LogRecord) -> None:
        key = (record.name, record.levelno, record.getMessage())
        if key == self._last:
            self._repeats += 1
            self._last_record = record
            return
        self._flush_repeats()
        self._last, self._last_record = key, record
        self.target.handle(record)

    def _flush_repeats(self) -> None:
        if self._repeats and self._last_record is not None:
            last = self._last_record
            summary = logging.makeLogRecord(last.__dict__)
            summary.msg, summary.args = f"{last.getMessage()} (repeated {self._repeats} times)", ()
            self.target.handle(summary)
        self._repeats = 0

    def flush(self) -> None:
        self.target.flush()

    def close(self) -> None:
        self._flush_repeats()
        self.target.close()
        super().close()


class LazyRotatingFile(logging.handlers.RotatingFileHandler):
    """Rotating at 5 MB, 3 old files kept; the file (and its folder) is created by the first
    record, so a start refused for a bad config leaves nothing on disk. A file that cannot be
    written drops the record: it is never drawn over the screen instead."""

    def __init__(self, file: Path) -> None:
        super().__init__(file, maxBytes=5_000_000, backupCount=3, encoding="utf-8", delay=True)

    def _open(self) -> TextIOWrapper:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def setup_logging(
    level: int = logging.WARNING, file: Path | None = None, *, rotate: bool = False
) -> None:
    """Send log records to stderr (or ``file``, rotating at 5 MB with 3 old files kept when
    ``rotate``); repeats collapse; calling it again replaces Kobe's handler."""
    install_log_redaction()
    root = logging.getLogger()
    root.setLevel(level)
    while _ours:
        old = _ours.pop()
        root.removeHandler(old)
        old.close()
    target: logging.Handler
    if file is not None and rotate:
        target = LazyRotatingFile(file)
    elif file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        target = logging.FileHandler(file, encoding="utf-8")
    else:
        target = logging.StreamHandler(sys.stderr)
    target.setFormatter(logging.Formatter(FORMAT))
    target.addFilter(RedactingFilter())
    handler = CollapseRepeats(target)
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    _ours.append(handler)
