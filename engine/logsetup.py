"""Logging for the CLI and the cockpit: stderr or a file, with secret redaction always on."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from engine.secrets import RedactingFilter, install_log_redaction

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_ours: list[logging.Handler] = []


def setup_logging(level: int = logging.WARNING, file: Path | None = None) -> None:
    """Send log records to stderr (or ``file``); calling it again replaces Kobe's handler."""
    install_log_redaction()
    root = logging.getLogger()
    root.setLevel(level)
    while _ours:
        root.removeHandler(_ours.pop())
    target: logging.Handler
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        target = logging.FileHandler(file, encoding="utf-8")
    else:
        target = logging.StreamHandler(sys.stderr)
    target.setFormatter(logging.Formatter(FORMAT))
    target.addFilter(RedactingFilter())
    root.addHandler(target)
    _ours.append(target)
