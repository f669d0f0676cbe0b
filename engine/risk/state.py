"""The kill switch's state on disk, as the router, ``kobe risk`` and the risk engine read it.

The state comes from ``risk_journal.jsonl`` (append-only, fsynced, sequenced);
``execution_runtime.json`` is its cache. :func:`read_kill_switch` reads them and fails closed: a
lost or damaged file blocks new entries, it never silently opens trading.

Files (under the data dir):

- ``risk_journal.jsonl``: the source of truth. Append-only, fsynced, one line per kill-switch
  transition (``armed``, ``warning``, ``trip``, ``reset``) or applied operator command
  (``command``, with the command's id), each with a sequence number ``seq``.
- ``execution_runtime.json``: a cache (drawdown, peak, streak, day figures, and the ``seq`` of the
  last journal line it includes), rewritten atomically after every change.
- ``risk_commands.jsonl``: operator commands queued by another process, each with its own id.
  A command is pending until the journal says its id was applied: ids never come from the
  file's length, so a lost or emptied commands file cannot hide a later trip.

Losing a file only makes Kobe safer: a missing or unreadable cache while any history exists, or
a journal behind the cache, means TRIPPED ("state lost ..."), until an operator resets it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from engine.fsutil import StateError
from engine.journal import JsonlWriter, iter_jsonl
from engine.jsonutil import dumps
from engine.untrusted import clean_message, clean_text, operator_text, parse_decimal, parse_utc

RISK_STATE_FILE = "execution_runtime.json"


class KillState(StrEnum):
    ARMED = "ARMED"
    WARNING = "WARNING"
    TRIPPED = "TRIPPED"


@dataclass(frozen=True)
class KillSwitch:
    state: KillState
    reason: str = ""
    since: datetime | None = None

    @property
    def tripped(self) -> bool:
        return self.state is KillState.TRIPPED


RISK_COMMANDS_FILE = "risk_commands.jsonl"
RISK_JOURNAL_FILE = "risk_journal.jsonl"
# files whose content proves that Kobe has run on this data dir before
HISTORY_FILES = (
    RISK_JOURNAL_FILE,
    RISK_COMMANDS_FILE,
    "audit.jsonl",
    "logs/orders.jsonl",
    "trades.jsonl",  # closed trades: their losses counted in the lost cache
    "wallet_flows.jsonl",
)
STATE_LOST = "state lost"
# an operator's trip whose flatten was not confirmed (no terminal, or answered no): it blocks
# entries like any trip, and no engine flattens it whatever risk.on_trip says
NOT_FLATTENED = "manual, not flattened"


ZERO = Decimal(0)
# what every version of Kobe wrote in execution_runtime.json: the limits' figures and the state
_ALWAYS_WRITTEN = (
    "state",
    "peak_equity",
    "equity",
    "drawdown_pct",
    "losing_streak",
    "day",
    "day_start_equity",
    "pnl_day",
    "last_loss_at",
)


@dataclass
class RiskSnapshot:
    """What ``execution_runtime.json`` holds, and what ``kobe risk status`` and the cockpit show."""

    state: KillState = KillState.ARMED
    reason: str = ""
    since: datetime | None = None
    peak_equity: Decimal | None = None
    equity: Decimal | None = None
    drawdown_pct: Decimal = Decimal(0)
    losing_streak: int = 0
    day: str = ""
    day_start_equity: Decimal | None = None
    pnl_day: Decimal = Decimal(0)
    last_loss_at: datetime | None = None
    wallet_peaks: dict[str, Decimal] | None = None
    wallet_drawdown_pct: dict[str, Decimal] | None = None
    seq: int = 0  # the last risk_journal.jsonl line this snapshot includes
    legacy_commands_done: int = 0  # older snapshots counted applied commands by line
    # the last closed trades counted (ids), written with the figures they moved: a trade
    # handed on again after a crash (before trades.jsonl recorded it) is not counted twice
    trades: tuple[str, ...] = ()
    # a TRIPPED cache without its figures (already the safe state): they are counted again
    figures_missing: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "reason": self.reason,
            "since": self.since,
            "peak_equity": self.peak_equity,
            "equity": self.equity,
            "drawdown_pct": self.drawdown_pct,
            "losing_streak": self.losing_streak,
            "day": self.day,
            "day_start_equity": self.day_start_equity,
            "pnl_day": self.pnl_day,
            "last_loss_at": self.last_loss_at,
            "wallet_peaks": self.wallet_peaks or {},
            "wallet_drawdown_pct": self.wallet_drawdown_pct or {},
            "seq": self.seq,
            "trades": list(self.trades),
        }

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> RiskSnapshot:
        """Raises ValueError (naming the key) on anything that is not what Kobe writes."""

        def dec(key: str, minimum: Decimal | None = None) -> Decimal | None:
            v = raw.get(key)
            if v in (None, ""):
                return None
            number = parse_decimal(v, key, minimum=minimum)
            if minimum is not None and number.is_signed():  # -0: no clock of Kobe's wrote it
                raise ValueError(f"{key}: negative")
            return number

        def when(key: str) -> datetime | None:
            v = raw.get(key)
            return parse_utc(v, key) if v else None

        def day() -> str:  # a day that is not one would restart today's loss from zero
            v = raw.get("day") or ""
            if v and (not isinstance(v, str) or date.fromisoformat(v).isoformat() != v):
                raise ValueError(f"day: not a date (got {clean_text(v)})")
            return str(v)

        def decmap(key: str) -> dict[str, Decimal]:
            v = raw.get(key) or {}
            if not isinstance(v, dict):
                raise ValueError(f"{key}: not an object")
            return {str(k): parse_decimal(x, f"{key}.{k}") for k, x in v.items()}

        def count(key: str) -> int:
            v = raw.get(key, 0)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{key}: not a count")
            return v

        if "state" not in raw:
            raise ValueError("state: missing")
        state = KillState(str(raw["state"]).upper())
        missing = [key for key in _ALWAYS_WRITTEN if key not in raw]
        if missing and state is not KillState.TRIPPED:  # its limits would restart from zero
            raise ValueError(f"{missing[0]}: missing")
        trades = raw.get("trades") or []
        if not isinstance(trades, list):
            raise ValueError("trades: not a list")
        return cls(
            state=state,
            reason=str(raw.get("reason") or ""),
            since=when("since"),
            peak_equity=dec("peak_equity", ZERO),
            equity=dec("equity", ZERO),
            drawdown_pct=dec("drawdown_pct", ZERO) or ZERO,
            losing_streak=count("losing_streak"),
            day=day(),
            day_start_equity=dec("day_start_equity", ZERO),
            pnl_day=dec("pnl_day") or Decimal(0),
            last_loss_at=when("last_loss_at"),
            wallet_peaks=decmap("wallet_peaks"),
            wallet_drawdown_pct=decmap("wallet_drawdown_pct"),
            seq=count("seq"),
            legacy_commands_done=count("commands_done"),
            trades=tuple(clean_text(t) for t in trades),
            figures_missing=bool(missing),
        )


@dataclass(frozen=True)
class RiskCommand:
    """One line of ``risk_commands.jsonl``: ``trip`` (with a reason) or ``reset``."""

    id: str
    action: str
    source: str
    reason: str
    ts: str

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> RiskCommand:
        cid = record.get("id")
        if not cid:  # older lines had no id: one derived from the line itself
            cid = "legacy-" + hashlib.sha256(dumps(dict(record)).encode()).hexdigest()[:16]
        return cls(
            id=clean_text(cid),
            action=clean_text(record.get("action") or ""),
            source=clean_text(record.get("source") or "cli"),
            reason=operator_text(record.get("reason") or ""),
            ts=clean_text(record.get("ts") or ""),
        )


@dataclass
class RiskState:
    """The risk state as the files give it, before anything is applied or written."""

    snap: RiskSnapshot
    applied: set[str]  # ids of commands the journal has applied
    pending: list[RiskCommand]  # queued commands not applied yet, oldest first
    lost: str  # why the state is lost ("" when it is not)
    # the cache could not be read, or a TRIPPED one held no figures: they (today's loss, the
    # streak, the last loss) are to be counted again from trades.jsonl, never restarted at zero
    recount: bool = False


def _has_history(data_dir: Path) -> bool:
    for name in HISTORY_FILES:
        try:
            if (data_dir / name).stat().st_size > 0:
                return True
        except OSError:
            continue
    return False


def _read_snapshot(path: Path) -> tuple[RiskSnapshot | None, str]:
    """The cached snapshot, or None and what is wrong with it ("" when it is simply absent)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, ""
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{path.name} unreadable: {exc}"
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        return RiskSnapshot.from_json(raw), ""
    except (ValueError, TypeError, RecursionError) as exc:  # [[[[ nested past the stack too
        return None, f"{path.name} unreadable: {clean_message(exc)}"


def load_risk_state(data_dir: Path) -> RiskState:
    """Read the journal, the cached snapshot and the queued commands; never writes.

    The journal's last transition sets the switch (the snapshot may lag it by one crash). The
    state is lost (TRIPPED) when the snapshot is missing while history exists, unreadable, or
    ahead of the journal (the journal was deleted or truncated).
    """
    data_dir = Path(data_dir)
    applied: set[str] = set()
    last_seq = 0
    last: dict[str, object] | None = None
    unreadable = ""  # a journal that cannot be opened (a directory, no permission): lost
    out_of_order = ""
    try:
        for record in iter_jsonl(data_dir / RISK_JOURNAL_FILE):
            seq = record.get("seq")
            if not isinstance(seq, int) or isinstance(seq, bool):
                continue  # no line Kobe wrote: skipped, as a torn one
            # lines follow one another: a gap is a lost line (a trip, maybe), a step back is
            # another journal's lines; either way the last transition read is not the switch.
            # The first line written after a lost state starts afresh (``resync``): that trip
            # (state lost) and what follows it are the switch again.
            if record.get("resync") is True:
                out_of_order = ""
            elif seq != last_seq + 1 and not out_of_order:
                out_of_order = (
                    f"{RISK_JOURNAL_FILE}: line {seq} follows line {last_seq} "
                    "(a line is lost, or lines are out of order)"
                )
            last_seq = max(last_seq, seq)
            if record.get("event") == "command":
                applied.add(str(record.get("id")))
            elif record.get("event") in _TRANSITIONS:
                last = record
    except StateError as exc:
        unreadable = f"{RISK_JOURNAL_FILE} unreadable: {clean_message(exc)}"
    snap, problem = _read_snapshot(data_dir / RISK_STATE_FILE)
    lost = unreadable or out_of_order or problem
    recount = snap is None
    figures_missing = snap is not None and snap.figures_missing
    if snap is None:
        if not problem and (last_seq or _has_history(data_dir)):
            lost = f"{RISK_STATE_FILE} is missing"
        snap = RiskSnapshot()
    elif snap.seq > last_seq:
        lost = (
            f"{RISK_JOURNAL_FILE} is missing or truncated "
            f"(the snapshot includes line {snap.seq}, the journal ends at {last_seq})"
        )
    if last is not None and not lost:
        try:
            snap.state = KillState(str(last.get("state")))
        except ValueError:
            lost = f"{RISK_JOURNAL_FILE}: line {last.get('seq')} has no valid state"
        snap.reason = clean_message(last.get("reason") or "")
        snap.since = _when(last.get("ts")) or snap.since
    snap.seq = max(snap.seq, last_seq)
    try:
        commands = [RiskCommand.from_record(r) for r in iter_jsonl(data_dir / RISK_COMMANDS_FILE)]
    except StateError as exc:  # a queued trip may be in it: lost
        commands, lost = [], lost or f"{RISK_COMMANDS_FILE} unreadable: {clean_message(exc)}"
    if not last_seq and snap.legacy_commands_done:  # before the journal: by line count
        applied |= {c.id for c in commands[: snap.legacy_commands_done]}
    pending = [c for c in commands if c.id not in applied]
    if lost:
        snap.state, snap.reason = KillState.TRIPPED, f"{STATE_LOST}: {lost}"
    return RiskState(
        snap, applied, pending, lost, recount=figures_missing or (recount and bool(lost))
    )


def _when(value: object) -> datetime | None:
    try:
        return parse_utc(value, "ts")
    except ValueError:
        return None


_TRANSITIONS = ("armed", "warning", "trip", "reset")


def read_kill_switch(data_dir: Path) -> KillSwitch:
    """The kill switch as the files give it; ARMED only when no risk engine has run yet.

    Fails closed: a lost or unreadable state, or a queued trip not applied yet, is TRIPPED.
    """
    state = load_risk_state(data_dir)
    snap = state.snap
    return queued_trip(state.pending) or KillSwitch(snap.state, snap.reason, snap.since)


def queued_trip(pending: Sequence[RiskCommand]) -> KillSwitch | None:
    """TRIPPED when the latest of the queued commands not applied yet is a trip: a queued trip
    blocks new entries from the moment it is written, before an engine applies it."""
    for command in reversed(pending):  # the latest queued command not applied yet wins
        if command.action == "trip":
            return KillSwitch(KillState.TRIPPED, command.reason or "manual trip")
        if command.action == "reset":
            break  # a queued reset takes effect only when an engine applies it (audited)
    return None


def queue_risk_command(
    data_dir: Path, action: str, source: str, clock: Callable[[], datetime], **detail: str
) -> str:
    """Queue ``trip`` or ``reset`` for the engine that owns the data dir (flushed, fsynced).

    Returns the command's id: unique, never derived from the file's length.
    """
    command_id = uuid.uuid4().hex
    writer = JsonlWriter(Path(data_dir) / RISK_COMMANDS_FILE, fsync=True)
    try:
        writer.append(
            {"id": command_id, "ts": clock(), "action": action, "source": source, **detail}
        )
    finally:
        writer.close()
    return command_id
