"""Proposal validation and the kill-switch state as the router reads it.

``validate_proposal`` lists every reason a proposal cannot go, in words a trader understands.
The kill switch's state comes from ``risk_journal.jsonl`` (append-only, fsynced, sequenced);
``execution_runtime.json`` is its cache. :func:`read_kill_switch` reads them and fails closed: a
lost or damaged file blocks new entries, it never silently opens trading.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from engine.audit import AuditLog
from engine.config import RiskConfig
from engine.exchange.base import MarketRules, OrderType, Side
from engine.fsutil import atomic_write_text
from engine.journal import JsonlWriter, iter_jsonl
from engine.jsonutil import dumps, iso_utc
from engine.proposal import Proposal, Sizing
from engine.untrusted import clean_message, clean_text, operator_text, parse_decimal

log = logging.getLogger(__name__)

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


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f")


def validate_proposal(
    proposal: Proposal,
    *,
    market: MarketRules | None,
    reference_price: Decimal | None,
    risk: RiskConfig,
    kill_switch: KillSwitch,
    mode_problems: list[str],
    base_held: Decimal | None = None,
) -> list[str]:
    """Every reason ``proposal`` cannot be sent; empty when it may go on to sizing.

    ``reference_price`` is the limit price or, for a market entry, the current price.
    ``base_held`` is the free base-asset balance (for sells on a spot market).
    """
    p = proposal
    reasons: list[str] = []
    if kill_switch.tripped:
        reasons.append(f"kill switch is TRIPPED: {kill_switch.reason or 'no reason given'}")
    reasons += [f"mode not allowed: {problem}" for problem in mode_problems]
    if market is None:
        reasons.append(f"unknown symbol {p.symbol}")
    if p.entry_type not in (OrderType.MARKET, OrderType.LIMIT):
        reasons.append(f"entry type must be market or limit (got {p.entry_type.value})")
    if p.entry_type is OrderType.LIMIT and p.price is None:
        reasons.append("a limit entry needs a price")
    if p.entry_type is OrderType.MARKET and p.price is not None:
        reasons.append("a price is only for limit entries")
    for name, value in (
        ("price", p.price),
        ("stop-loss", p.stop_loss),
        ("take-profit", p.take_profit),
    ):
        if value is not None and value <= 0:
            reasons.append(f"{name} must be positive (got {_fmt(value)})")
    if p.amount <= 0:
        what = "quote amount" if p.sizing is Sizing.QUOTE else "risk percent"
        reasons.append(f"{what} must be positive (got {_fmt(p.amount)})")
    if p.sizing is Sizing.RISK:
        if p.stop_loss is None:
            reasons.append("risk sizing needs a stop-loss (the distance to it sets the size)")
        if p.amount > risk.max_risk_per_trade_pct:
            reasons.append(
                f"risk {_fmt(p.amount)}% is above the per-trade cap "
                f"{_fmt(risk.max_risk_per_trade_pct)}% (risk.max_risk_per_trade_pct)"
            )
    entry = reference_price
    if entry is not None and entry > 0:
        long = p.side is Side.BUY
        if p.stop_loss is not None and p.stop_loss > 0:
            if long and p.stop_loss >= entry:
                reasons.append(
                    f"stop-loss {_fmt(p.stop_loss)} must be below the entry {_fmt(entry)} for a buy"
                )
            if not long and p.stop_loss <= entry:
                reasons.append(
                    f"stop-loss {_fmt(p.stop_loss)} must be above the entry {_fmt(entry)} for a sell"
                )
        if p.take_profit is not None and p.take_profit > 0:
            if long and p.take_profit <= entry:
                reasons.append(
                    f"take-profit {_fmt(p.take_profit)} must be above the entry {_fmt(entry)} "
                    "for a buy"
                )
            if not long and p.take_profit >= entry:
                reasons.append(
                    f"take-profit {_fmt(p.take_profit)} must be below the entry {_fmt(entry)} "
                    "for a sell"
                )
    if market is not None and market.spot and p.side is Side.SELL:
        held = base_held if base_held is not None else Decimal(0)
        if held <= 0:
            reasons.append(
                f"short selling is refused on a spot market: you hold no {market.base} to sell"
            )
    return reasons


# ---------------------------------------------------------------------------------------------
# The risk engine: safety guards and the kill switch.
#
# Files (under the data dir):
# - ``risk_journal.jsonl``: the source of truth. Append-only, fsynced, one line per kill-switch
#   transition (``armed``, ``warning``, ``trip``, ``reset``) or applied operator command
#   (``command``, with the command's id), each with a sequence number ``seq``.
# - ``execution_runtime.json``: a cache (drawdown, peak, streak, day figures, and the ``seq`` of the
#   last journal line it includes), rewritten atomically after every change.
# - ``risk_commands.jsonl``: operator commands queued by another process, each with its own id.
#   A command is pending until the journal says its id was applied: ids never come from the
#   file's length, so a lost or emptied commands file cannot hide a later trip.
#
# Losing a file only makes Kobe safer: a missing or unreadable cache while any history exists, or
# a journal behind the cache, means TRIPPED ("state lost ..."), until an operator resets it.


RISK_COMMANDS_FILE = "risk_commands.jsonl"
RISK_JOURNAL_FILE = "risk_journal.jsonl"
# files whose content proves that Kobe has run on this data dir before
HISTORY_FILES = (RISK_JOURNAL_FILE, RISK_COMMANDS_FILE, "audit.jsonl", "logs/orders.jsonl")
STATE_LOST = "state lost"


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
        }

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> RiskSnapshot:
        """Raises ValueError (naming the key) on anything that is not what Kobe writes."""

        def dec(key: str) -> Decimal | None:
            v = raw.get(key)
            return None if v in (None, "") else parse_decimal(v, key)

        def when(key: str) -> datetime | None:
            v = raw.get(key)
            if not v:
                return None
            moment = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
            if moment.tzinfo is None:
                raise ValueError(f"{key}: not a UTC time")
            return moment

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
        return cls(
            state=KillState(str(raw["state"]).upper()),
            reason=str(raw.get("reason") or ""),
            since=when("since"),
            peak_equity=dec("peak_equity"),
            equity=dec("equity"),
            drawdown_pct=dec("drawdown_pct") or Decimal(0),
            losing_streak=count("losing_streak"),
            day=str(raw.get("day") or ""),
            day_start_equity=dec("day_start_equity"),
            pnl_day=dec("pnl_day") or Decimal(0),
            last_loss_at=when("last_loss_at"),
            wallet_peaks=decmap("wallet_peaks"),
            wallet_drawdown_pct=decmap("wallet_drawdown_pct"),
            seq=count("seq"),
            legacy_commands_done=count("commands_done"),
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
    except (ValueError, TypeError) as exc:
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
    for record in iter_jsonl(data_dir / RISK_JOURNAL_FILE):
        seq = record.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            last_seq = max(last_seq, seq)
        if record.get("event") == "command":
            applied.add(str(record.get("id")))
        elif record.get("event") in _TRANSITIONS:
            last = record
    snap, problem = _read_snapshot(data_dir / RISK_STATE_FILE)
    lost = problem
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
    commands = [RiskCommand.from_record(r) for r in iter_jsonl(data_dir / RISK_COMMANDS_FILE)]
    if not last_seq and snap.legacy_commands_done:  # before the journal: by line count
        applied |= {c.id for c in commands[: snap.legacy_commands_done]}
    pending = [c for c in commands if c.id not in applied]
    if lost:
        snap.state, snap.reason = KillState.TRIPPED, f"{STATE_LOST}: {lost}"
    return RiskState(snap, applied, pending, lost)


def _when(value: object) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


_TRANSITIONS = ("armed", "warning", "trip", "reset")


def read_kill_switch(data_dir: Path) -> KillSwitch:
    """The kill switch as the files give it; ARMED only when no risk engine has run yet.

    Fails closed: a lost or unreadable state, or a queued trip not applied yet, is TRIPPED.
    """
    state = load_risk_state(data_dir)
    snap = state.snap
    for command in reversed(state.pending):  # the latest queued command not applied yet wins
        if command.action == "trip":
            return KillSwitch(KillState.TRIPPED, command.reason or "manual trip")
        if command.action == "reset":
            break  # a queued reset takes effect only when an engine applies it (audited)
    return KillSwitch(snap.state, snap.reason, snap.since)


class RiskEngine:
    """Safety guards and the kill switch (ARMED -> WARNING -> TRIPPED).

    * drawdown from peak equity (total; per wallet for display): WARNING at
      ``risk.warning_drawdown_pct``, TRIPPED at ``risk.max_drawdown_pct``;
    * ``risk.max_losing_streak`` losing trades in a row: TRIPPED;
    * equity below ``risk.min_operational_capital_usd``: TRIPPED;
    * realized loss today beyond ``risk.max_daily_loss_usd``: TRIPPED;
    * ``risk.cooldown_after_loss_s`` after a losing trade: new entries wait (not a trip).

    WARNING goes back to ARMED by itself when the drawdown recovers; TRIPPED is left only by an
    operator's reset. Every transition is journaled (fsynced) before the snapshot is rewritten,
    so a tripped switch stays tripped across restarts and crashes. Operator commands from another
    process (``kobe risk trip`` while an engine runs) arrive through ``risk_commands.jsonl`` and
    are applied at the next tick. A lost state trips at start (journaled and audited).
    """

    def __init__(
        self,
        data_dir: Path,
        risk: RiskConfig,
        clock: Callable[[], datetime],
        *,
        audit: AuditLog | None = None,
        on_change: Callable[[RiskSnapshot], None] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / RISK_STATE_FILE
        self.commands_path = self.data_dir / RISK_COMMANDS_FILE
        self.journal_path = self.data_dir / RISK_JOURNAL_FILE
        self.cfg = risk
        self.clock = clock
        self.audit = audit
        self.on_change: Callable[[RiskSnapshot], None] | None = None  # told from the first change
        self._lock = threading.RLock()
        state = load_risk_state(self.data_dir)
        self.snap = state.snap
        self._applied = state.applied
        self._journal = JsonlWriter(self.journal_path, fsync=True)
        if state.lost:
            log.error("risk state lost (%s): TRIPPED until an operator resets", state.lost)
            # commands queued before the loss are consumed: trips change nothing (already
            # tripped), and a past reset is never applied a second time
            trips = [c.reason for c in state.pending if c.action == "trip"]
            for command in state.pending:
                self._record_command(command, "skipped: state lost")
            self.snap.state = KillState.ARMED  # so that the trip below is a transition
            reason = "; ".join([*reversed(trips), self.snap.reason])  # a queued trip's reason first
            self._trip_locked(reason, "risk")
        elif not self.path.exists():
            self._save()  # from the first start on, a missing snapshot means a lost state
        self.apply_commands()
        self.on_change = on_change

    def close(self) -> None:
        self._journal.close()

    def _record(self, event: str, ts: datetime | None = None, **detail: object) -> None:
        """One journal line (fsynced) before the snapshot that includes it."""
        self.snap.seq += 1
        line = {"seq": self.snap.seq, "ts": ts or self.clock(), "event": event, **detail}
        self._journal.append(line)

    def _record_command(self, command: RiskCommand, outcome: str) -> None:
        self._record("command", id=command.id, action=command.action, outcome=outcome)
        self._applied.add(command.id)

    def _transition(self, state: KillState, reason: str, source: str, event: str) -> None:
        s = self.snap
        s.state, s.reason, s.since = state, reason, self.clock()
        # the line's time is the switch's "since": a restart gives the same one (notes dedupe)
        self._record(event, s.since, state=state.value, reason=reason, source=source)

    def _save(self) -> None:
        atomic_write_text(self.path, dumps(self.snap.to_json(), indent=2) + "\n")
        if self.on_change is not None:
            self.on_change(self.snapshot())

    # -- reading ------------------------------------------------------------------------------

    def snapshot(self) -> RiskSnapshot:
        with self._lock:
            return replace(self.snap)

    def kill_switch(self) -> KillSwitch:
        with self._lock:
            return KillSwitch(self.snap.state, self.snap.reason, self.snap.since)

    def size_factor(self) -> Decimal:
        """Risk-based sizing is scaled down while the switch is in WARNING."""
        with self._lock:
            return (
                self.cfg.warning_size_factor if self.snap.state is KillState.WARNING else Decimal(1)
            )

    def entry_block(self, now: datetime | None = None) -> str | None:
        """Why a new entry may not go now (tripped, or cooling down after a loss), or None."""
        with self._lock:
            if self.snap.state is KillState.TRIPPED:
                return f"kill switch is TRIPPED: {self.snap.reason}"
            cooldown = self.cfg.cooldown_after_loss_s
            last = self.snap.last_loss_at
            if cooldown and last is not None:
                moment = now or self.clock()
                until = last + timedelta(seconds=cooldown)
                if moment < until:
                    return f"cooling down after a loss until {iso_utc(until)}"
            return None

    # -- feeding ------------------------------------------------------------------------------

    def on_equity(self, total: Decimal, wallets: Mapping[str, Decimal] | None = None) -> None:
        """New equity figures (from the wallet snapshot): drawdown, capital and day guards."""
        with self._lock:
            now = self.clock()
            s = self.snap
            day = now.date().isoformat()
            if s.day != day:
                s.day, s.day_start_equity, s.pnl_day = day, total, Decimal(0)
            s.equity = total
            s.peak_equity = total if s.peak_equity is None else max(s.peak_equity, total)
            s.drawdown_pct = _drawdown(s.peak_equity, total)
            peaks = dict(s.wallet_peaks or {})
            dds: dict[str, Decimal] = {}
            for wallet, value in (wallets or {}).items():
                peaks[wallet] = max(peaks.get(wallet, value), value)
                dds[wallet] = _drawdown(peaks[wallet], value)
            s.wallet_peaks, s.wallet_drawdown_pct = peaks, dds
            if s.state is not KillState.TRIPPED:
                if s.drawdown_pct >= self.cfg.max_drawdown_pct:
                    self._trip_locked(
                        f"drawdown {s.drawdown_pct:.2f}% from peak {s.peak_equity} reached the "
                        f"critical {self.cfg.max_drawdown_pct}%",
                        "risk",
                    )
                    return
                if total < self.cfg.min_operational_capital_usd:
                    self._trip_locked(
                        f"equity {total} is below the minimum operational capital "
                        f"{self.cfg.min_operational_capital_usd}",
                        "risk",
                    )
                    return
                warn = s.drawdown_pct >= self.cfg.warning_drawdown_pct
                new = KillState.WARNING if warn else KillState.ARMED
                if new is not s.state:
                    reason = (
                        f"drawdown {s.drawdown_pct:.2f}% passed the warning level "
                        f"{self.cfg.warning_drawdown_pct}%"
                        if warn
                        else ""
                    )
                    self._transition(new, reason, "risk", new.value.lower())
            self._save()

    def on_trade_closed(self, pnl: Decimal) -> None:
        """A closed trade's realized PnL (after fees): losing streak, daily loss, cooldown."""
        with self._lock:
            now = self.clock()
            s = self.snap
            day = now.date().isoformat()
            if s.day != day:
                s.day, s.day_start_equity, s.pnl_day = day, s.equity, Decimal(0)
            s.pnl_day += pnl
            if pnl < 0:
                s.losing_streak += 1
                s.last_loss_at = now
            else:
                s.losing_streak = 0
            if s.state is not KillState.TRIPPED:
                if s.losing_streak >= self.cfg.max_losing_streak:
                    self._trip_locked(
                        f"{s.losing_streak} losing trades in a row "
                        f"(max_losing_streak {self.cfg.max_losing_streak})",
                        "risk",
                    )
                    return
                limit = self.cfg.max_daily_loss_usd
                if limit > 0 and -s.pnl_day >= limit:
                    self._trip_locked(
                        f"realized loss today {-s.pnl_day} reached max_daily_loss_usd {limit}",
                        "risk",
                    )
                    return
            self._save()

    # -- operator -----------------------------------------------------------------------------

    def trip(self, reason: str, source: str) -> None:
        with self._lock:
            self._trip_locked(reason, source)

    def _trip_locked(self, reason: str, source: str) -> None:
        if self.snap.state is KillState.TRIPPED:
            self._save()
            return
        reason = operator_text(reason)  # no secret, no control character is written
        self._transition(KillState.TRIPPED, reason, source, "trip")
        log.warning("kill switch TRIPPED (%s): %s", source, reason)
        self._save()
        if self.audit is not None:
            self.audit.record("kill_switch_trip", source, reason=reason)

    def reset(self, source: str) -> None:
        """The operator's explicit reset: back to ARMED, streak and peak start afresh."""
        with self._lock:
            self._reset_locked(source)

    def _reset_locked(self, source: str) -> None:
        s = self.snap
        previous = s.reason
        self._transition(KillState.ARMED, "", source, "reset")
        s.losing_streak = 0
        s.peak_equity = s.equity
        s.drawdown_pct = Decimal(0)
        s.last_loss_at = None
        s.wallet_peaks = None
        s.wallet_drawdown_pct = None
        self._save()
        if self.audit is not None:
            self.audit.record("kill_switch_reset", source, previous_reason=previous)

    def pending_commands(self) -> list[RiskCommand]:
        """Queued commands this engine has not applied yet (read from the commands file)."""
        with self._lock:
            commands = (RiskCommand.from_record(r) for r in iter_jsonl(self.commands_path))
            return [c for c in commands if c.id not in self._applied]

    def apply_commands(self) -> int:
        """Apply operator commands queued by another process; returns how many were new."""
        with self._lock:
            fresh = self.pending_commands()
            for command in fresh:
                if command.action == "trip":
                    self._record_command(command, "applied")
                    self._trip_locked(command.reason or "manual trip", command.source)
                elif command.action == "reset":
                    self._record_command(command, "applied")
                    self._reset_locked(command.source)
                else:
                    log.warning(
                        "%s: unknown command %r skipped", self.commands_path, command.action
                    )
                    self._record_command(command, "skipped: unknown action")
                    self._save()
            return len(fresh)


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


def _drawdown(peak: Decimal | None, value: Decimal) -> Decimal:
    if peak is None or peak <= 0 or value >= peak:
        return Decimal(0)
    return (peak - value) / peak * 100
