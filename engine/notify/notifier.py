"""The notifier: engine events in, notes out to the channel workers.

It is a subscriber of the runtime's event stream (:meth:`engine.runtime.Runtime.subscribe`) and
turns, on the engine's thread and without any I/O but an outbox append:

- an order event ``fill`` of an entry into ``entry_filled``;
- a closed trade into ``exit_filled`` (or ``stop_loss`` when its stop-loss closed it), with PnL;
- a change of the kill switch (risk events) into ``kill_switch``, once per change: its id is the
  state and the time it changed, so a restart never announces the same trip twice, and a trip made
  while no engine ran is announced at the next start;
- a critical alert (or one whose code starts with ``protection``) into ``protection_lost``; an
  ``error`` alert into ``engine_error``; the engine's ``error`` state into ``engine_error`` and
  its ``stopped`` state into ``engine_stopped``;
- a finance alert that was not active at the previous tick into ``finance_alert``;
- the first tick at or after ``daily_summary_utc`` into ``daily_summary``, and every
  ``heartbeat_hours`` a heartbeat (both on the engine's clock: a stuck engine sends neither).

``kill_switch``, ``protection_lost`` and ``engine_error`` go through the outbox; the others
through each channel's bounded queue. Before either, :class:`~engine.notify.repeats.Repeats`
holds what repeats within a window (an error every tick) and says it once, with its count.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.exchange.retry import RetryPolicy
from engine.fsutil import atomic_write_text
from engine.jsonutil import dumps, iso_utc
from engine.notify import outbox
from engine.notify.channels import Channel, build_channels
from engine.notify.notes import Note, severity_at_least
from engine.notify.outbox import Outbox
from engine.notify.repeats import WINDOW as REPEAT_WINDOW
from engine.notify.repeats import Repeats
from engine.notify.sender import NOTIFY_RETRY, ChannelStatus, ChannelWorker
from engine.risk import KillState, RiskSnapshot
from engine.router import entry_of, sweep_of

if TYPE_CHECKING:
    from engine.modes import Settings
    from engine.runtime_types import EngineEvent

log = logging.getLogger(__name__)

DURABLE = ("kill_switch", "protection_lost", "engine_error")  # through the outbox
SCHEDULED = ("daily_summary", "heartbeat")  # sent whatever min_severity says
STATUS_FILE = Path("notify") / "status.json"
_KILL = {
    KillState.TRIPPED: ("critical", "Kill switch TRIPPED"),
    KillState.WARNING: ("warning", "Kill switch WARNING"),
    KillState.ARMED: ("info", "Kill switch ARMED"),
}


def _num(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


def _pnl(value: Decimal) -> str:
    return f"{value:+.4f}"


def utc_now() -> datetime:
    return datetime.now(UTC)


class Notifier:
    """No channel configured: every method is a no-op (paper runs stay offline)."""

    def __init__(
        self,
        settings: Settings,
        channels: list[Channel],
        missing: dict[str, str] | None = None,
        *,
        venue_of_wallet: Callable[[str], str] | None = None,
        on_status: Callable[[ChannelStatus], None] | None = None,
        wall_clock: Callable[[], datetime] = utc_now,
        policy: RetryPolicy = NOTIFY_RETRY,
        close_timeout_s: float = 1.5,
        repeat_window: timedelta = REPEAT_WINDOW,
    ) -> None:
        self.cfg = settings.config.notify
        self.mode = settings.mode.value.upper()
        self.venue = settings.exchange
        self.data_dir = settings.data_dir
        self.venue_of_wallet = venue_of_wallet or (lambda wallet: "")
        self.on_status = on_status
        self.wall_clock = wall_clock
        self.close_timeout_s = close_timeout_s
        self.statuses: dict[str, ChannelStatus] = {
            name: ChannelStatus(name, False, f"not configured: {why}")
            for name, why in (missing or {}).items()
        }
        self._status_lock = threading.Lock()
        self.outbox = Outbox(self.data_dir, [c.name for c in channels]) if channels else None
        self.workers = [
            ChannelWorker(
                c,
                self.outbox,
                self.cfg.queue_size,
                self.mode,
                policy=policy,
                wall_clock=wall_clock,
                on_status=self._status_changed,
            )
            for c in channels
            if self.outbox is not None
        ]
        for w in self.workers:
            self.statuses[w.name] = w.status
        self.repeats = Repeats(repeat_window)
        self._kill: KillState | None = None
        self._risk: RiskSnapshot | None = None
        self._finance: set[str] = set()
        self._last_tick: datetime | None = None
        self._next_heartbeat: datetime | None = None

    @classmethod
    def for_settings(cls, settings: Settings, **kwargs: Any) -> Notifier:
        """The channels of ``[notify]`` whose variables are set; the others are logged."""
        timeout = float(settings.config.exchange.timeout_ms) / 1000
        channels, missing = build_channels(settings.config.notify, settings.env, timeout)
        for name, why in missing.items():
            log.warning("notify %s: listed in [notify] channels but %s", name, why)
        return cls(settings, channels, missing, **kwargs)

    @classmethod
    def attach(
        cls,
        settings: Settings,
        subscribe: Callable[[Callable[[EngineEvent], None]], None],
        **kwargs: Any,
    ) -> Notifier:
        """A notifier subscribed to a runtime's events (started by :meth:`start`)."""
        notifier = cls.for_settings(settings, **kwargs)
        if notifier.workers:
            subscribe(notifier.on_event)
        return notifier

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> None:
        for w in self.workers:
            w.start()
        for status in list(self.statuses.values()):
            if status.ok is False and self.on_status is not None:
                self.on_status(status)  # a listed channel that is not configured

    def close(self) -> None:
        """Stop the senders: what is queued gets ``close_timeout_s`` seconds in all to go out
        (every channel at once); the outbox keeps its notes for the next start."""
        for held in self.repeats.flush():  # the repeats held: said, never lost
            self._dispatch(held)
        deadline = time.monotonic() + self.close_timeout_s
        for w in self.workers:
            w.begin_close()
        for w in self.workers:
            w.close(max(0.0, deadline - time.monotonic()))
        if self.outbox is not None:
            self.outbox.close()

    def _status_changed(self, status: ChannelStatus) -> None:
        with self._status_lock:
            self.statuses[status.channel] = status
            record = {name: s.to_json() for name, s in self.statuses.items()}
            try:
                atomic_write_text(self.data_dir / STATUS_FILE, dumps(record, indent=1) + "\n")
            except OSError as exc:
                log.warning("notify: status not saved: %s", exc.strerror or exc)
        if self.on_status is not None:
            self.on_status(status)

    # -- notes in -----------------------------------------------------------------------------

    def publish(self, note: Note) -> None:
        """Hand ``note`` to the channels if ``[notify]`` wants it. Never blocks on the network."""
        if not self.workers:
            return
        if note.kind in self.cfg.events or note.kind == "heartbeat":
            wanted = note.kind in SCHEDULED or severity_at_least(
                note.severity, self.cfg.min_severity
            )
        else:
            wanted = False
        if not wanted or self.outbox is None:
            return
        if note.kind in DURABLE and self.outbox.known(note.id):
            return  # said already (a restart sees the same kill-switch change again)
        for out in self.repeats.admit(note):  # a repeat is held, counted, said later
            self._dispatch(out)

    def _dispatch(self, note: Note) -> None:
        if self.outbox is None:
            return
        if note.kind in DURABLE:
            if not self.outbox.has_room(note):
                for w in self.workers:
                    w.count_dropped(note.kind, f"outbox ({outbox.MAX_PENDING})")
                return
            self.outbox.add(note)  # on disk; in memory only when the disk is full
            for w in self.workers:
                w.wake()
            return
        for w in self.workers:
            w.offer(note)

    def on_event(self, event: EngineEvent) -> None:
        """The runtime's subscriber (the engine's thread)."""
        for due in self.repeats.due(event.time):  # a window ended: its repeats said
            self._dispatch(due)
        for note in self.notes_for(event):
            self.publish(note)

    def notes_for(self, event: EngineEvent) -> list[Note]:
        kind, p, t = event.kind, event.payload, event.time
        if (
            kind == "order"
            and p.event == "fill"
            and entry_of(p.client_id) is None
            and sweep_of(p.client_id) is None  # a dust sweep: told once booked, as a trade
        ):
            return [
                self._note(
                    "entry_filled",
                    "info",
                    t,
                    "Entry filled",
                    p.reason,
                    venue=p.exchange,
                    wallet=p.wallet,
                    symbol=p.symbol,
                    side=p.side.upper(),
                    qty=_num(p.filled),
                    price=_num(p.avg_price),
                )
            ]
        if kind == "trade":
            stop = "stop" in p.reason.lower()
            return [
                self._note(
                    "stop_loss" if stop else "exit_filled",
                    "warning" if stop else "info",
                    t,
                    "Stop-loss hit" if stop else "Position closed",
                    p.reason,
                    venue=self.venue_of_wallet(p.wallet),
                    wallet=p.wallet,
                    symbol=p.symbol,
                    side=p.side.upper(),
                    qty=_num(p.qty),
                    price=_num(p.exit_price),
                    pnl=_pnl(p.pnl),
                )
            ]
        if kind == "alert":
            return self._alert_notes(p.severity, p.code, p.message, t)
        if kind == "risk" and isinstance(p, RiskSnapshot):
            self._risk = p
            return self._kill_notes(p)
        if kind == "state":
            state = p.state.value
            if state == "error":
                return [self._note("engine_error", "error", t, "Engine error", p.error)]
            if state == "stopped":
                return [self._note("engine_stopped", "info", t, "Engine stopped", "")]
            return []
        if kind == "wallets":
            return self._finance_notes(p, t) + self._scheduled(p, t)
        return []

    def _note(
        self,
        kind: str,
        severity: str,
        t: datetime,
        title: str,
        detail: object,
        **values: str | None,
    ) -> Note:
        values.setdefault("venue", self.venue)
        return Note.make(kind, severity, t, self.mode, title, detail, **values)

    def _alert_notes(self, severity: str, code: str, message: str, t: datetime) -> list[Note]:
        if code in ("kill_switch", "engine"):  # said by the risk and state events
            return []
        if code.startswith("protection") or severity == "critical":
            return [self._note("protection_lost", "critical", t, "Protection lost", message)]
        if severity == "error":
            return [self._note("engine_error", "error", t, f"Engine error ({code})", message)]
        return []

    def _kill_notes(self, snap: RiskSnapshot) -> list[Note]:
        previous, self._kill = self._kill, snap.state
        if snap.since is None or snap.state is previous:
            return []
        if snap.state is KillState.ARMED and previous is None:
            return []  # a start with the switch armed: nothing changed
        severity, title = _KILL[snap.state]
        note_id = f"kill_switch:{snap.state.value}:{iso_utc(snap.since)}"
        return [
            Note.make(
                "kill_switch",
                severity,
                snap.since,
                self.mode,
                title,
                snap.reason,
                note_id=note_id,
                venue=self.venue,
            )
        ]

    def _finance_notes(self, snap: Any, t: datetime) -> list[Note]:
        active = {a.code: a for a in snap.alerts}
        fresh = [a for code, a in active.items() if code not in self._finance]
        self._finance = set(active)
        return [
            self._note("finance_alert", a.severity, t, "Finance alert", a.message) for a in fresh
        ]

    def _scheduled(self, snap: Any, t: datetime) -> list[Note]:
        previous, self._last_tick = self._last_tick, t
        notes: list[Note] = []
        hour, minute = (int(x) for x in self.cfg.daily_summary_utc.split(":"))
        at = t.astimezone(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)
        if previous is not None and previous < at <= t:
            kill = self._risk.state.value if self._risk is not None else "unknown"
            notes.append(
                self._note(
                    "daily_summary",
                    "info",
                    t,
                    f"Daily summary {t.date().isoformat()}",
                    f"equity {snap.equity_total_usd:.2f} USD; kill switch {kill}",
                    pnl=_pnl(snap.pnl_day),
                )
            )
        hours = self.cfg.heartbeat_hours
        if hours:
            if self._next_heartbeat is None:
                self._next_heartbeat = t + timedelta(hours=hours)
            elif t >= self._next_heartbeat:
                self._next_heartbeat = t + timedelta(hours=hours)
                notes.append(
                    self._note(
                        "heartbeat",
                        "info",
                        t,
                        "Heartbeat: the engine is running",
                        f"equity {snap.equity_total_usd:.2f} USD; next in {hours} h",
                    )
                )
        return notes


# ---------------------------------------------------------------------------------------------
# What ``kobe health`` shows


def read_statuses(data_dir: Path) -> dict[str, dict[str, Any]]:
    """The last delivery of each channel, as the engine saved it ({} when unknown)."""
    path = Path(data_dir) / STATUS_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return raw if isinstance(raw, dict) else {}
