"""The sender: one daemon thread per channel, off the engine's thread; the engine never waits.

Each channel has a bounded queue. :meth:`ChannelWorker.offer` never blocks: when the queue is full
(an outage longer than the queue) the note is dropped and counted; once the channel is back and
the backlog delivered, one note says how many were dropped, of which kinds.

The worker sends the outbox's notes first (kill switch, lost protection, engine errors), then the
queue's, coalescing whatever waits into one message (as much as the channel takes in one go).
Sends are spaced by a rate limiter (Telegram: one message a second per chat, 30 a second in
all); each send is retried by :func:`engine.exchange.retry.call_with_retries` (tenacity), which
waits what a 429's ``retry_after`` asks. When that fails too, the batch is kept and tried again
after a pause (the ``retry_after``, or a growing backoff). A refusal that retrying cannot fix (a
4xx) splits a coalesced message: its notes go one by one until one is delivered, so that one
note refused for what it holds does not hold back the others; a note refused alone is dropped,
or, from the outbox, kept there and tried again every :data:`ASIDE_S` seconds and at the next
start.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from engine.exchange.base import ExchangeError, RateLimited
from engine.exchange.retry import RetryPolicy, call_with_retries
from engine.jsonutil import iso_utc
from engine.notify.channels import Channel, DeliveryError
from engine.notify.notes import Note
from engine.notify.outbox import Outbox
from engine.secrets import redact

log = logging.getLogger(__name__)

# Retries of one send: a few attempts within half a minute; a longer 429 waits outside it.
NOTIFY_RETRY = RetryPolicy(max_attempts=4, max_total_s=30.0, base_delay_s=1.0, max_delay_s=8.0)
TELEGRAM_OVERALL_PER_S = 30
BATCH_MAX = 20  # notes in one message at most
MAX_PAUSE_S = 60.0  # between two failed rounds
ASIDE_S = 600.0  # an outbox note refused alone is tried again after this (a chat unblocks a bot)


def deliver(
    channel: Channel,
    notes: Sequence[Note],
    policy: RetryPolicy,
    on_error: Callable[[ExchangeError], None] | None = None,
) -> None:
    """Send ``notes`` as one message, retrying what can be retried; raises ExchangeError.
    ``on_error`` hears of every failed attempt (the health pane shows it before the retries end)."""
    payload = channel.payload(notes)

    def attempt() -> None:
        try:
            channel.send(payload)
        except ExchangeError as exc:
            if on_error is not None:
                on_error(exc)
            raise

    call_with_retries(attempt, f"notify {channel.name}", policy)


@dataclass(frozen=True)
class ChannelStatus:
    """The last delivery of a channel: ``ok`` None when nothing was tried yet."""

    channel: str
    ok: bool | None
    detail: str
    at: datetime | None = None

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "detail": self.detail, "at": iso_utc(self.at) if self.at else None}


class RateLimiter:
    """At most one send per ``per_chat_s`` to one chat and ``overall_per_s`` sends a second."""

    def __init__(
        self,
        per_chat_s: float,
        overall_per_s: int = TELEGRAM_OVERALL_PER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_chat_s = per_chat_s
        self.overall_per_s = overall_per_s
        self.clock = clock
        self._last: dict[str, float] = {}
        self._recent: deque[float] = deque()
        self._lock = threading.Lock()

    def reserve(self, chat: str) -> float:
        """Take the next free slot for ``chat``: how many seconds to wait before sending."""
        with self._lock:
            now = self.clock()
            at = max(now, self._last.get(chat, now - self.per_chat_s) + self.per_chat_s)
            while self._recent and self._recent[0] <= at - 1.0:
                self._recent.popleft()
            if len(self._recent) >= self.overall_per_s:
                at = max(at, self._recent[0] + 1.0)
            self._last[chat] = at
            self._recent.append(at)
            return at - now


class ChannelWorker:
    def __init__(
        self,
        channel: Channel,
        outbox: Outbox,
        queue_size: int,
        mode: str,
        *,
        policy: RetryPolicy = NOTIFY_RETRY,
        wall_clock: Callable[[], datetime],
        on_status: Callable[[ChannelStatus], None],
    ) -> None:
        self.channel = channel
        self.name = channel.name
        self.outbox = outbox
        self.mode = mode
        self.queue: queue.Queue[Note] = queue.Queue(queue_size)
        self.wall_clock = wall_clock
        self.on_status = on_status
        self._carry: list[Note] = []  # taken from the queue, not delivered yet
        self._dropped: Counter[str] = Counter()
        self._full: set[str] = set()  # what was full: "queue (100)", "outbox (500)"
        self._single = False  # a coalesced message was refused: one note a message, to find which
        self._aside: set[str] = set()  # outbox notes refused alone: tried again after ASIDE_S
        self._aside_at = 0.0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._halt = threading.Event()  # set when closing takes too long: sleeps end at once
        self._thread: threading.Thread | None = None
        self.policy = replace(policy, sleep=self._pause)
        self.limiter = RateLimiter(channel.min_interval_s, clock=policy.clock)
        self.status = ChannelStatus(self.name, None, "nothing sent yet")

    def _pause(self, seconds: float) -> None:
        self._halt.wait(seconds)

    # -- the engine's side (never blocks) -----------------------------------------------------

    def offer(self, note: Note) -> None:
        try:
            self.queue.put_nowait(note)
        except queue.Full:
            self.count_dropped(note.kind, f"queue ({self.queue.maxsize})")
        self._wake.set()

    def count_dropped(self, kind: str, full: str) -> None:
        """A note of ``kind`` not taken because ``full`` (``"queue (100)"``) is: counted, and
        said in one note once the channel is back."""
        with self._lock:
            first = not self._dropped
            self._dropped[kind] += 1
            self._full.add(full)
        if first:
            log.warning(
                "notify %s: the %s is full: notes are dropped and counted until it drains",
                self.name,
                full,
            )

    def wake(self) -> None:
        self._wake.set()

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"kobe-notify-{self.name}", daemon=True
        )
        self._thread.start()

    def begin_close(self) -> None:
        self._closing.set()
        self._wake.set()

    def close(self, timeout: float) -> None:
        """Deliver what waits within ``timeout`` seconds (one more try if it was failing), then
        stop. Outbox notes left over are delivered by the next start."""
        self.begin_close()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._halt.set()  # sleeps end now; an HTTP call in flight ends with its timeout
                self._thread.join(0.2)
        left = len(self._carry) + self.queue.qsize()
        if left:
            log.warning("notify %s: %d note(s) not delivered at shutdown", self.name, left)

    # -- the worker thread --------------------------------------------------------------------

    def _has_work(self) -> bool:
        with self._lock:
            dropped = bool(self._dropped)
        return bool(self._carry or dropped or not self.queue.empty() or self._durable())

    def _durable(self) -> list[Note]:
        if self._aside and self.policy.clock() - self._aside_at >= ASIDE_S:
            self._aside.clear()
        return [n for n in self.outbox.pending(self.name) if n.id not in self._aside]

    def _dropped_note(self) -> Note | None:
        with self._lock:
            counts, self._dropped = self._dropped, Counter()
            full, self._full = self._full, set()
        if not counts:
            return None
        what = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        return Note.make(
            "dropped",
            "warning",
            self.wall_clock(),
            self.mode,
            f"{sum(counts.values())} notifications dropped",
            f"the {' and the '.join(sorted(full))} {'were' if len(full) > 1 else 'was'} full "
            f"while {self.name} could not be reached: {what}",
        )

    def _batch(self) -> tuple[list[Note], int]:
        """The next message's notes (outbox first) and how many of them are outbox notes."""
        durable = self._durable()
        if not self._carry and self.queue.empty():  # the backlog is out: say what was dropped
            dropped = self._dropped_note()
            if dropped is not None:
                self._carry.append(dropped)
        while len(self._carry) < BATCH_MAX:
            try:
                self._carry.append(self.queue.get_nowait())
            except queue.Empty:
                break
        batch: list[Note] = []
        most = 1 if self._single else BATCH_MAX
        for note in [*durable, *self._carry]:
            if batch and (len(batch) >= most or not self.channel.fits([*batch, note])):
                break
            batch.append(note)
        return batch, min(len(durable), len(batch))

    def _run(self) -> None:
        failures = 0
        while True:
            if not self._has_work():
                if self._closing.is_set():
                    return
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            self._halt.wait(self.limiter.reserve(self.name))  # meanwhile more notes coalesce
            batch, n_durable = self._batch()
            try:
                deliver(self.channel, batch, self.policy, self._attempt_failed)
            except ExchangeError as exc:
                failures += 1
                pause = self._failed(batch, n_durable, exc, failures)
                if self._closing.is_set():
                    return  # failed while closing: the outbox keeps its notes for the next start
                self._closing.wait(pause)  # a close ends the pause: one more try, then stop
                continue
            failures = 0
            self._single = False
            self.outbox.confirm([n.id for n in batch[:n_durable]], self.name)
            del self._carry[: len(batch) - n_durable]
            self._set_status(True, f"delivered {len(batch)} note(s)")

    def _attempt_failed(self, exc: ExchangeError) -> None:
        self._set_status(False, f"delivery failed: {redact(str(exc))}")

    def _failed(
        self, batch: list[Note], n_durable: int, exc: ExchangeError, failures: int
    ) -> float:
        """Record the failure; drop what cannot be delivered; how long to pause."""
        reason = redact(str(exc))
        if isinstance(exc, DeliveryError) and len(batch) > 1:
            self._single = True  # one note may be what is refused: the others must not wait
            log.warning("notify %s: refused (%s): its notes go one by one", self.name, reason)
            return 0.0
        if isinstance(exc, DeliveryError):
            if n_durable:
                self._aside.add(batch[0].id)
                self._aside_at = self.policy.clock()
            else:
                del self._carry[:1]
            log.warning(
                "notify %s: refused (%s): %s",
                self.name,
                reason,
                f"kept in the outbox, tried again in {ASIDE_S:g}s" if n_durable else "dropped",
            )
            return min(MAX_PAUSE_S, self.policy.base_delay_s * 60)
        log.warning(
            "notify %s: %s; %d note(s) kept for the next try", self.name, reason, len(batch)
        )
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return min(float(exc.retry_after), MAX_PAUSE_S * 60.0)
        return min(MAX_PAUSE_S, self.policy.base_delay_s * 2.0**failures)

    def _set_status(self, ok: bool, detail: str) -> None:
        self.status = ChannelStatus(self.name, ok, detail, self.wall_clock())
        try:
            self.on_status(self.status)
        except Exception:  # a listener's bug must not stop the sender
            log.exception("notify %s: status listener failed", self.name)
