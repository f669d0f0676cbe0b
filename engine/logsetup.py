"""Logging for the CLI and the cockpit: stderr or a file, with secret redaction always on."""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from collections import deque
from io import TextIOWrapper
from pathlib import Path

from engine.fsutil import make_dirs
from engine.secrets import RedactingFilter, install_log_redaction

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_ours: list[logging.Handler] = []


# a retry's pause (random): the same failure's lines differ by it alone
_RETRY_PAUSE = re.compile(r"(retry \d+ of \d+) in [\d.]+s")
CYCLE_MAX = 8  # the longest run of lines that collapses when it comes again and again


class CollapseRepeats(logging.Handler):
    """The same message again and again (a network warning every tick) is one line, then one
    line with the count when another message comes (or at close). So is the same run of up to
    ``CYCLE_MAX`` lines (a failing call's retries, then its giving up, every tick): it is
    written once, then once more as a line with the count. Lines that differ only by a retry's
    random pause (``retry 2 of 4 in 1.027s``) are the same line here."""

    def __init__(self, target: logging.Handler) -> None:
        super().__init__()
        self.target = target
        self._seen: deque[tuple[str, int, str]] = deque(maxlen=CYCLE_MAX)  # the lines written
        self._cycle: list[tuple[str, int, str]] = []  # the run coming again, while it does
        self._held: list[logging.LogRecord] = []  # its lines so far this time round
        self._last_record: logging.LogRecord | None = None
        self._repeats = 0

    def emit(self, record: logging.LogRecord) -> None:
        key = (record.name, record.levelno, _RETRY_PAUSE.sub(r"\1", record.getMessage()))
        if self._cycle:
            if key == self._cycle[len(self._held)]:
                self._hold(record)
                return
            self._flush_repeats()
        seen = list(self._seen)
        for period in range(1, len(seen) + 1):
            if seen[-period] == key:  # that run starts again
                self._cycle = seen[-period:]
                self._hold(record)
                return
        self._write(record, key)

    def _hold(self, record: logging.LogRecord) -> None:
        self._held.append(record)
        if len(self._held) == len(self._cycle):  # once more round: counted, not written
            self._repeats += 1
            self._last_record, self._held = record, []

    def _write(self, record: logging.LogRecord, key: tuple[str, int, str]) -> None:
        self._seen.append(key)
        self.target.handle(record)

    def _flush_repeats(self) -> None:
        if self._repeats and self._last_record is not None:
            last = self._last_record
            summary = logging.makeLogRecord(last.__dict__)
            lines = len(self._cycle)
            what = "repeated" if lines == 1 else f"the last {lines} lines repeated"
            times = "once" if self._repeats == 1 else f"{self._repeats} times"
            summary.msg, summary.args = f"{last.getMessage()} ({what} {times})", ()
            self.target.handle(summary)
        held, cycle = self._held, self._cycle
        self._cycle, self._held, self._repeats = [], [], 0
        for record, key in zip(held, cycle, strict=False):  # a round cut short: as they came
            self._write(record, key)

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
        make_dirs(Path(self.baseFilename).parent)
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
        make_dirs(file.parent)
        target = logging.FileHandler(file, encoding="utf-8")
    else:
        target = logging.StreamHandler(sys.stderr)
    target.setFormatter(logging.Formatter(FORMAT))
    target.addFilter(RedactingFilter())
    handler = CollapseRepeats(target)
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    _ours.append(handler)
