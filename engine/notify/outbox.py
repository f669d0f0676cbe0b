"""The outbox: notes that must not be lost (kill switch, lost protection, engine errors).

``<data dir>/notify/outbox.jsonl`` is append-only, one JSON object per line, fsynced:

- ``{"op": "add", "note": {...}}``: a note to deliver, with its id;
- ``{"op": "sent", "id": ..., "channel": "telegram"}``: that channel confirmed it (HTTP 2xx);
- ``{"op": "done", "id": ...}``: every channel confirmed it (written by compaction).

At start the file is read (it is small), a torn last line skipped, and rewritten atomically with
only what is still pending plus the ids of the last :data:`KEEP_DONE` delivered notes, and always
the latest kill-switch note's (so the same kill-switch trip is never announced twice, however many
other notes were delivered since); a long run compacts it the same way every
:data:`COMPACT_AFTER` appended lines. Delivery is at least once: a crash between the
channel's answer and the ``sent`` line sends it again; once ``sent`` is on disk it is never resent.

When the disk is full (or the file cannot be written), the note is kept in memory and sent
directly: it is only lost if the process dies before delivering it.

It is bounded: with :data:`MAX_PENDING` notes undelivered (an error every tick through a long
outage), a new note is refused, counted and said by the "dropped" note, except a kill-switch trip,
which is always taken; the kill switch's notes are sent before any other note.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

from engine.fsutil import atomic_write_text, make_dirs
from engine.journal import iter_jsonl
from engine.jsonutil import dumps
from engine.notify.notes import Note

log = logging.getLogger(__name__)

OUTBOX_FILE = Path("notify") / "outbox.jsonl"
KEEP_DONE = 200
COMPACT_AFTER = 1000  # lines appended since the last compaction
KILL_SWITCH = "kill_switch:"  # the id prefix of the kill switch's notes
TRIP = KILL_SWITCH + "TRIPPED:"  # a trip: always taken
MAX_PENDING = 500  # notes not delivered yet; past it only a trip is taken (an outage stays small)


class Outbox:
    def __init__(self, data_dir: Path, channels: Sequence[str]) -> None:
        self.path = Path(data_dir) / OUTBOX_FILE
        self.channels = tuple(channels)
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, Note] = OrderedDict()
        self._sent: dict[str, set[str]] = {}
        self._volatile: set[str] = set()  # pending ids that are only in memory (disk full)
        self._done: OrderedDict[str, None] = OrderedDict()
        self._fd: int | None = None
        self._torn = False  # the last append failed midway: start the next one on a new line
        self._closed = False
        self._appended = 0
        self._load()
        self._compact()

    # -- reading ------------------------------------------------------------------------------

    def _load(self) -> None:
        if not self.path.is_file():  # absent, or not a regular file: nothing to restore
            return
        for record in iter_jsonl(self.path):
            op, note_id = record.get("op"), str(record.get("id") or "")
            if op == "add":
                try:
                    note = Note.from_json(record["note"])
                except (KeyError, TypeError, ValueError) as exc:
                    log.warning("%s: a note skipped: %s", self.path, exc)
                    continue
                if note.id not in self._done:
                    self._pending[note.id] = note
            elif op == "sent":
                self._sent.setdefault(note_id, set()).add(str(record.get("channel")))
            elif op == "done":
                self._mark_done(note_id)
        for note_id in list(self._pending):
            if self._all_sent(note_id):
                self._mark_done(note_id)

    def _all_sent(self, note_id: str) -> bool:
        return set(self.channels) <= self._sent.get(note_id, set())

    def _mark_done(self, note_id: str) -> None:
        self._pending.pop(note_id, None)
        self._sent.pop(note_id, None)
        self._volatile.discard(note_id)
        self._done[note_id] = None
        self._done.move_to_end(note_id)
        while len(self._done) > KEEP_DONE:
            oldest, _ = self._done.popitem(last=False)
            if oldest.startswith(KILL_SWITCH) and not any(
                i.startswith(KILL_SWITCH) for i in self._done
            ):  # the switch's latest change: said once, however many notes came after it
                self._done[oldest] = None

    def _compact(self) -> None:
        lines: list[dict[str, object]] = [{"op": "done", "id": i} for i in self._done]
        for note_id, note in self._pending.items():
            lines.append({"op": "add", "note": note.to_json()})
            lines += [
                {"op": "sent", "id": note_id, "channel": c}
                for c in sorted(self._sent.get(note_id, ()))
            ]
        if not lines and not self.path.exists():
            return
        try:
            atomic_write_text(self.path, "".join(dumps(line) + "\n" for line in lines))
        except OSError as exc:  # the disk is full: appends will say so, notes go directly
            log.warning("%s: not compacted: %s", self.path, exc.strerror or exc)
            return
        self._appended = 0
        if self._fd is not None:  # appends go to the new file
            os.close(self._fd)
            self._fd = None

    # -- writing ------------------------------------------------------------------------------

    def _append(self, records: Iterable[dict[str, object]]) -> bool:
        data = "".join(dumps(r) + "\n" for r in records).encode("utf-8")
        if self._closed:  # a sender that outlived close(): the next start sends it again
            return False
        try:
            if self._fd is None:
                make_dirs(self.path.parent)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            if self._torn:
                data = b"\n" + data
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(28, "short write")
            os.fsync(self._fd)
        except OSError as exc:
            self._torn = True
            log.warning("%s: cannot append (%s)", self.path, exc.strerror or exc)
            return False
        self._torn = False
        self._appended += data.count(b"\n")
        return True

    def known(self, note_id: str) -> bool:
        """Pending or delivered already (the outbox never takes the same id twice)."""
        with self._lock:
            return note_id in self._pending or note_id in self._done

    def has_room(self, note: Note) -> bool:
        """Below :data:`MAX_PENDING` undelivered notes; a kill-switch trip always has room (a
        trip needs a reset to end, so trips cannot pile up; a WARNING that flaps could)."""
        with self._lock:
            return len(self._pending) < MAX_PENDING or note.id.startswith(TRIP)

    def add(self, note: Note) -> bool:
        """Keep ``note`` until every channel confirms it. False: already known, or not written
        (disk full): then it is kept in memory and sent directly."""
        with self._lock:
            if note.id in self._pending or note.id in self._done:
                return False
            self._pending[note.id] = note
            if self._append([{"op": "add", "note": note.to_json()}]):
                return True
            self._volatile.add(note.id)
            return False

    def pending(self, channel: str) -> list[Note]:
        """Notes ``channel`` has not confirmed yet, oldest first, the kill switch's before the
        others (in their own order: the last one says the switch's state now)."""
        with self._lock:
            notes = [n for i, n in self._pending.items() if channel not in self._sent.get(i, set())]
        return sorted(notes, key=lambda n: not n.id.startswith(KILL_SWITCH))

    def confirm(self, note_ids: Iterable[str], channel: str) -> None:
        """``channel`` delivered these notes: never sent to it again."""
        with self._lock:
            ids = [i for i in note_ids if i in self._pending]
            on_disk = [i for i in ids if i not in self._volatile]
            if on_disk:
                self._append({"op": "sent", "id": i, "channel": channel} for i in on_disk)
            for i in ids:
                self._sent.setdefault(i, set()).add(channel)
                if self._all_sent(i):
                    self._mark_done(i)
            if self._appended >= COMPACT_AFTER:  # a long run keeps the file small too
                self._compact()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
