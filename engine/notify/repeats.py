"""Repeats collapsed: one note for what happens every tick, not one message a tick.

An error every tick (a venue down, each tick every 5 s) or a kill switch that flips WARNING ↔
ARMED every tick around a threshold would buzz the trader's phone 720 times an hour. Here:

- the first occurrence of a note always goes out at once; only a repeat within
  :data:`WINDOW` of it is held: counted, its latest text kept;
- when the window ends, one note says it: ``Engine error (reconcile) (repeated 719 times since
  00:05 UTC)`` with the latest text, and a new window starts; a window with no repeat ends it
  (the next occurrence is a first again);
- only what can come every tick is held (:data:`HELD_KINDS`: engine errors, lost protection,
  the kill switch, finance alerts); a fill or a close is a trade of its own. Never held: a
  kill-switch TRIP (it first releases what the switch held: that summary goes just before it, so
  the last word is the trip), an engine stop (it releases everything first); :meth:`Repeats.
  flush` releases everything when the notifier closes;
- bounded: at most :data:`MAX_EPISODES` notes tracked; a new one past that releases the oldest
  (its count said early, never lost).

What counts as the same note (:func:`repeat_key`):

- the kill switch: its state alone (the reason's figures move every tick: ``drawdown 8.01%``,
  ``8.02%``). A state's first occurrence in a window goes out at once (WARNING, then ARMED
  again), the flips after it are held and said as ``Kill switch ARMED (flipped 718 times since
  00:05 UTC: ARMED 359, WARNING 359)``: the summary's title is the state now;
- a critical note (lost protection): the same kind, title, fields and text, exactly. Its figures
  tell one position from another (its quantity, its entry), and a second position losing its
  cover must go out at once;
- any other note: the same kind, severity, title and fields, and the same text once every
  number in it is read as ``#`` (a latency, a count, a timestamp, an HTTP status vary from one
  tick's error to the next: the same outage). A number here is a date and time, or digits
  standing alone, with a unit (``503``, ``8.01%``, ``1200ms``, ``12:00:05``); digits joined to a
  letter, or to a name by ``-`` or ``_``, are part of a name or an id (``kobe-e-12``,
  ``1000PEPE``, ``v3``) and still tell notes apart, and so does a number its words name an id:
  right after ``order``, ``id`` (or a name ending in ``Id``: ``orderId=``) or ``#`` (``order
  8123 refused``, ``id: 8124``, ``#8125``), so two orders' refusals are two notes. A long run
  of digits alone is not taken for an id: an epoch time in a request's URL (``timestamp=
  1796089770057``) changes every tick. The summary shows the latest text, so what was merged
  is not hidden.

The engine's clock decides (each note's time, each event's): no timer thread. Held notes live in
memory: a crash loses, for each note held, its count (at most one window's), its latest text and,
for the kill switch, the flips held (the last message may name the state before the last flip);
never a first occurrence, which went out (through the outbox for the durable kinds) when it
happened, nor a trip, which is never held. Persisting each repeat would cost an fsynced outbox
line per repeat, every tick, for a figure that tells how often, not what.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from engine.notify.notes import SEVERITIES, Note

WINDOW = timedelta(minutes=10)
MAX_EPISODES = 256
# what can come every tick; a fill or a close is a trade of its own, never a repeat
HELD_KINDS = ("engine_error", "protection_lost", "kill_switch", "finance_alert")
KILL_SWITCH = "kill_switch"
# a time (2026-11-30T23:05:00Z) or a number standing alone, with its unit (503, 8.01%, 1200ms,
# 12:00:05, -5), not digits within a name or id (kobe-e-12, 1000PEPE, v3, o17)
_TIME = re.compile(r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?")
_NUMBER = re.compile(
    r"(?<![A-Za-z0-9_])(?<![A-Za-z0-9_]-)\d+(?:[.,:]\d+)*(?i:ms|s|m|h|d|[kmg]?b)?(?![A-Za-z0-9_-])"
)
# what names the number after it as an id (order 8123, id: 8124, orderId=8125, #8126): kept
_ID_BEFORE = re.compile(r"(?:\b(?:[Oo]rder|[Ii][Dd])\b|[a-z](?:Id|ID)|#)[\s:=#\"']*$")

Key = tuple[str, ...]


def is_trip(note: Note) -> bool:
    return note.kind == KILL_SWITCH and note.severity == "critical"


def repeat_key(note: Note) -> Key:
    """What makes two notes the same (the module's docstring says why)."""
    if note.kind == KILL_SWITCH:
        return (KILL_SWITCH,)
    exact = note.severity == "critical"
    detail = note.detail if exact else _NUMBER.sub(_volatile, _TIME.sub("#", note.detail))
    return (note.kind, note.severity, note.title, repr(sorted(note.fields.items())), detail)


def _volatile(m: re.Match[str]) -> str:
    """A number read as ``#``, unless its words name it an id (an order's: two orders' refusals
    are two notes)."""
    return m[0] if _ID_BEFORE.search(m.string, max(0, m.start() - 24), m.start()) else "#"


def _worse(a: str, b: str) -> str:
    return max(a, b, key=SEVERITIES.index)


@dataclass
class _Episode:
    since: datetime  # the window's start: the first occurrence, or the last summary
    seen: set[str] = field(default_factory=set)  # variants sent at once (kill switch: states)
    held: Counter[str] = field(default_factory=Counter)
    last: Note | None = None  # the latest held note
    worst: str = "info"  # the highest severity held

    def hold(self, note: Note, variant: str) -> None:
        self.held[variant] += 1
        self.last = note
        self.worst = _worse(self.worst, note.severity)

    def summary(self, at: datetime) -> Note | None:
        """The held repeats in one note (None: nothing held); the window starts again at ``at``."""
        last, held, since, worst = self.last, self.held, self.since, self.worst
        self.since, self.held, self.last, self.worst = at, Counter(), None, "info"
        if last is None:
            return None
        total = sum(held.values())
        times = f"{total} time{'s' if total != 1 else ''} since {since:%H:%M} UTC"
        if len(held) > 1:
            each = ", ".join(f"{variant} {n}" for variant, n in sorted(held.items()))
            title = f"{last.title} (flipped {times}: {each})"
        else:
            title = f"{last.title} (repeated {times})"
        return Note.make(last.kind, worst, at, last.mode, title, last.detail, **last.fields)


class Repeats:
    """The notifier's filter (see the module's docstring). Thread-safe; no I/O."""

    def __init__(self, window: timedelta = WINDOW, max_episodes: int = MAX_EPISODES) -> None:
        self.window = window
        self.max_episodes = max_episodes
        self._episodes: dict[Key, _Episode] = {}  # oldest first
        self._now: datetime | None = None
        self._lock = threading.Lock()

    def admit(self, note: Note) -> list[Note]:
        """What goes out now for ``note``: the summaries due, then ``note`` itself unless it is
        a repeat, held."""
        with self._lock:
            out = self._due(note.time)
            if note.kind == "engine_stopped":  # the last word: everything held goes before it
                return out + self._release(list(self._episodes)) + [note]
            if is_trip(note):  # the switch's flips go before the trip, never after it
                return out + self._release([(KILL_SWITCH,)]) + [note]
            if note.kind not in HELD_KINDS:
                return [*out, note]
            key = repeat_key(note)
            variant = note.title.removeprefix("Kill switch ") if note.kind == KILL_SWITCH else ""
            episode = self._episodes.get(key)
            if episode is None:
                if len(self._episodes) >= self.max_episodes:  # the oldest is said early
                    out += self._release([next(iter(self._episodes))])
                episode = self._episodes[key] = _Episode(self._now or note.time)
            if variant not in episode.seen:
                episode.seen.add(variant)
                return [*out, note]
            episode.hold(note, variant)
            return out

    def due(self, now: datetime) -> list[Note]:
        """The summaries whose window ended by ``now`` (the engine's clock)."""
        with self._lock:
            return self._due(now)

    def flush(self) -> list[Note]:
        """Everything held, said now (the notifier closes)."""
        with self._lock:
            return self._release(list(self._episodes))

    def __len__(self) -> int:
        return len(self._episodes)

    def _due(self, t: datetime) -> list[Note]:
        now = self._now = t if self._now is None else max(self._now, t)
        out: list[Note] = []
        for key, episode in list(self._episodes.items()):
            if now - episode.since < self.window:
                continue
            summary = episode.summary(now)
            if summary is None:
                del self._episodes[key]  # a window without a repeat: the episode is over
            else:
                out.append(summary)
        return out

    def _release(self, keys: list[Key]) -> list[Note]:
        out: list[Note] = []
        for key in keys:
            episode = self._episodes.pop(key, None)
            if episode is not None and self._now is not None:
                summary = episode.summary(self._now)
                if summary is not None:
                    out.append(summary)
        return out
