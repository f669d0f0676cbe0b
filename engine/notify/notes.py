"""What a notification says, and how each channel shows it.

A :class:`Note` is built where an engine event is turned into a notification: every value from
outside (symbols, wallets, reasons, error messages) has known secrets redacted (an error message
may quote a URL or a key) and passes :func:`engine.untrusted.clean_text` there. Rendering starts
with the mode (PAPER / TESTNET / LIVE), then venue, wallet, symbol, side, quantity, price and PnL
where they apply, then what happened. Telegram gets HTML with every value escaped (``<``, ``>``,
``&``); the webhook gets JSON.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.jsonutil import iso_utc
from engine.secrets import redact
from engine.untrusted import clean_message, clean_text, parse_utc

SEVERITIES = ("info", "warning", "error", "critical")
# the fields a note may carry, in the order they are shown (after the mode)
FIELDS = ("venue", "wallet", "symbol", "side", "qty", "price", "pnl")
_LABELS = {"qty": "qty ", "price": "@ ", "pnl": "PnL "}


@dataclass(frozen=True)
class Note:
    """One notification. ``id`` is stable: the outbox and the channels' receipts use it."""

    id: str
    kind: str  # an event of [notify] events, or heartbeat / dropped / test
    severity: str  # info | warning | error | critical
    time: datetime
    mode: str  # PAPER | TESTNET | LIVE
    title: str  # Kobe's own words
    detail: str = ""  # may come from outside: cleaned
    fields: Mapping[str, str] = field(default_factory=dict)  # cleaned; keys from FIELDS

    @classmethod
    def make(
        cls,
        kind: str,
        severity: str,
        time: datetime,
        mode: str,
        title: str,
        detail: object = "",
        note_id: str | None = None,
        **values: str | None,
    ) -> Note:
        """A note with every outside value redacted (a key quoted by an error message) and
        cleaned; ``values`` are FIELDS (None: left out)."""
        fields = {
            k: clean_text(redact(v), 80) for k, v in values.items() if v is not None and v != ""
        }
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown note fields: {sorted(unknown)}")
        text = clean_message(redact(str(detail))) if detail else ""
        if note_id is None:
            digest = hashlib.sha256(f"{title}|{text}|{sorted(fields.items())}".encode()).hexdigest()
            note_id = f"{kind}:{iso_utc(time)}:{digest[:12]}"
        return cls(note_id, kind, severity, time, mode.upper(), title, text, fields)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity,
            "time": iso_utc(self.time),
            "mode": self.mode,
            "title": self.title,
            "detail": self.detail,
            "fields": dict(self.fields),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Note:
        """A note read back from the outbox (a file: its text is cleaned again); ValueError when it
        is not one."""
        if not isinstance(raw, Mapping):
            raise ValueError("the note is not an object")
        fields = raw.get("fields") or {}
        if not isinstance(fields, dict):
            raise ValueError("fields is not an object")
        severity = str(raw["severity"])
        if severity not in SEVERITIES:
            raise ValueError(f"unknown severity {severity!r}")
        when = parse_utc(raw["time"], "time")
        return cls.make(
            clean_text(raw["kind"], 40),
            severity,
            when,
            clean_text(raw["mode"], 10),
            clean_text(raw["title"]),
            raw.get("detail") or "",
            note_id=clean_text(raw["id"]),
            **{k: v for k, v in fields.items() if k in FIELDS},
        )

    def _parts(self) -> list[str]:
        return [f"{_LABELS.get(k, '')}{self.fields[k]}" for k in FIELDS if k in self.fields]

    def plain(self) -> str:
        """The note as plain text: mode first."""
        head = " | ".join([self.mode, *self._parts()])
        return f"{head}\n{self._what()}" + (f": {self.detail}" if self.detail else "")

    def html(self) -> str:
        """The note in Telegram's HTML: every value escaped, mode first."""
        esc = html.escape
        head = " | ".join([f"<b>{esc(self.mode)}</b>", *(esc(p) for p in self._parts())])
        body = f"<b>{esc(self._what())}</b>" + (f": {esc(self.detail)}" if self.detail else "")
        return f"{head}\n{body}"

    def _what(self) -> str:
        marks = {"critical": "CRITICAL ", "error": "ERROR ", "warning": "WARNING "}
        return marks.get(self.severity, "") + self.title


def telegram_text(notes: Sequence[Note]) -> str:
    """One Telegram message for a burst of notes (each starts with the mode)."""
    return "\n\n".join(n.html() for n in notes)


def severity_at_least(severity: str, minimum: str) -> bool:
    return SEVERITIES.index(severity) >= SEVERITIES.index(minimum)
