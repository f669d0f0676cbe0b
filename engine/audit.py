"""``audit.jsonl``: every operator action (manual orders, cancels, live unlock, kill switch)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.journal import JsonlWriter, tail_jsonl

AUDIT_FILE = "audit.jsonl"


class AuditLog:
    def __init__(self, data_dir: Path, clock: Callable[[], datetime]) -> None:
        self.path = Path(data_dir) / AUDIT_FILE
        self._clock = clock
        self._writer = JsonlWriter(self.path, fsync=True)

    def record(self, action: str, source: str, **detail: Any) -> None:
        self._writer.append({"ts": self._clock(), "action": action, "source": source, **detail})

    def tail(self, n: int) -> list[dict[str, Any]]:
        return tail_jsonl(self.path, n)

    def close(self) -> None:
        self._writer.close()
