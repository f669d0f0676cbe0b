"""Proposal validation and the kill-switch state as the router reads it.

``validate_proposal`` lists every reason a proposal cannot go, in words a trader understands.
The kill switch's state lives in ``execution_runtime.json`` under the data dir (the risk engine
writes it); :func:`read_kill_switch` reads it and fails closed: a file that cannot be read blocks
new entries, it never silently opens trading.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
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
from engine.untrusted import clean_message, operator_text

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


def read_kill_switch(data_dir: Path) -> KillSwitch:
    """The kill switch as last persisted; ARMED when no risk engine has run yet.

    Fails closed: a state file that cannot be read blocks new entries.
    """
    snap = load_risk_snapshot(data_dir, lambda: datetime.now(UTC))
    pending = list(iter_jsonl(Path(data_dir) / RISK_COMMANDS_FILE))[snap.commands_done :]
    for record in reversed(pending):  # the latest queued command not applied yet wins
        if record.get("action") == "trip":
            return KillSwitch(
                KillState.TRIPPED, operator_text(record.get("reason") or "manual trip")
            )
        if record.get("action") == "reset":
            break  # a queued reset takes effect only when an engine applies it (audited)
    return KillSwitch(snap.state, snap.reason, snap.since)


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
# The risk engine: safety guards and the kill switch, persisted in execution_runtime.json


RISK_COMMANDS_FILE = "risk_commands.jsonl"


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
    commands_done: int = 0  # lines of risk_commands.jsonl already applied

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
            "commands_done": self.commands_done,
        }

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> RiskSnapshot:
        def dec(v: object) -> Decimal | None:
            return None if v in (None, "") else Decimal(str(v))

        def when(v: object) -> datetime | None:
            return None if not v else datetime.fromisoformat(str(v).replace("Z", "+00:00"))

        def decmap(v: object) -> dict[str, Decimal]:
            return {str(k): Decimal(str(x)) for k, x in v.items()} if isinstance(v, dict) else {}

        streak = raw.get("losing_streak", 0)
        done = raw.get("commands_done", 0)
        return cls(
            state=KillState(str(raw["state"]).upper()),
            reason=clean_message(raw.get("reason") or ""),
            since=when(raw.get("since")),
            peak_equity=dec(raw.get("peak_equity")),
            equity=dec(raw.get("equity")),
            drawdown_pct=dec(raw.get("drawdown_pct")) or Decimal(0),
            losing_streak=int(streak) if isinstance(streak, int | str) else 0,
            day=str(raw.get("day") or ""),
            day_start_equity=dec(raw.get("day_start_equity")),
            pnl_day=dec(raw.get("pnl_day")) or Decimal(0),
            last_loss_at=when(raw.get("last_loss_at")),
            wallet_peaks=decmap(raw.get("wallet_peaks")),
            wallet_drawdown_pct=decmap(raw.get("wallet_drawdown_pct")),
            commands_done=int(done) if isinstance(done, int | str) else 0,
        )


class RiskEngine:
    """Safety guards and the kill switch (ARMED -> WARNING -> TRIPPED).

    * drawdown from peak equity (total; per wallet for display): WARNING at
      ``risk.warning_drawdown_pct``, TRIPPED at ``risk.max_drawdown_pct``;
    * ``risk.max_losing_streak`` losing trades in a row: TRIPPED;
    * equity below ``risk.min_operational_capital_usd``: TRIPPED;
    * realized loss today beyond ``risk.max_daily_loss_usd``: TRIPPED;
    * ``risk.cooldown_after_loss_s`` after a losing trade: new entries wait (not a trip).

    WARNING goes back to ARMED by itself when the drawdown recovers; TRIPPED is left only by an
    operator's reset. The state is persisted atomically in ``execution_runtime.json`` after every
    change, so a tripped switch stays tripped across restarts. Operator commands from another
    process (``kobe risk trip`` while an engine runs) arrive through ``risk_commands.jsonl`` and
    are applied at the next tick.
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
        self.cfg = risk
        self.clock = clock
        self.audit = audit
        self.on_change = on_change
        self._lock = threading.RLock()
        self._replay_trips_only = False
        self.snap = self._load()
        self.apply_commands()

    def _load(self) -> RiskSnapshot:
        snap = load_risk_snapshot(self.data_dir, self.clock)
        missing = snap.commands_done == 0 and not self.path.exists()
        if missing or snap.reason.startswith(f"{RISK_STATE_FILE} unreadable"):
            self._replay_trips_only = True
        return snap

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
                    s.state, s.since = new, now
                    s.reason = (
                        f"drawdown {s.drawdown_pct:.2f}% passed the warning level "
                        f"{self.cfg.warning_drawdown_pct}%"
                        if warn
                        else ""
                    )
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
        s = self.snap
        if s.state is KillState.TRIPPED:
            return
        reason = operator_text(reason)  # no secret, no control character is written
        s.state, s.reason, s.since = KillState.TRIPPED, reason, self.clock()
        log.warning("kill switch TRIPPED (%s): %s", source, reason)
        self._save()
        if self.audit is not None:
            self.audit.record("kill_switch_trip", source, reason=reason)

    def reset(self, source: str) -> None:
        """The operator's explicit reset: back to ARMED, streak and peak start afresh."""
        with self._lock:
            s = self.snap
            previous = s.reason
            s.state, s.reason, s.since = KillState.ARMED, "", self.clock()
            s.losing_streak = 0
            s.peak_equity = s.equity
            s.drawdown_pct = Decimal(0)
            s.last_loss_at = None
            s.wallet_peaks = None
            s.wallet_drawdown_pct = None
            self._save()
            if self.audit is not None:
                self.audit.record("kill_switch_reset", source, previous_reason=previous)

    def apply_commands(self) -> int:
        """Apply operator commands queued by another process; returns how many were new."""
        with self._lock:
            records = list(iter_jsonl(self.commands_path))
            fresh = records[self.snap.commands_done :]
            history = self._replay_trips_only
            self._replay_trips_only = False
            for record in fresh:
                self.snap.commands_done += 1
                action, source = record.get("action"), str(record.get("source") or "cli")
                if history and action == "reset":
                    # the state file was missing or unreadable: its history is replayed for
                    # trips only (fail closed); a past reset is never applied a second time
                    self._save()
                    continue
                if action == "trip":
                    if self.snap.state is KillState.TRIPPED:
                        self._save()
                    self._trip_locked(str(record.get("reason") or "manual trip"), source)
                elif action == "reset":
                    self.reset(source)
                else:
                    log.warning("%s: unknown command %r skipped", self.commands_path, action)
                    self._save()
            return len(fresh)


def load_risk_snapshot(data_dir: Path, clock: Callable[[], datetime]) -> RiskSnapshot:
    """The persisted risk state; unreadable means TRIPPED (fail closed), never a silent reset."""
    path = Path(data_dir) / RISK_STATE_FILE
    if not path.exists():
        return RiskSnapshot()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        return RiskSnapshot.from_json(raw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("%s unreadable (%s): TRIPPED until an operator resets", path, exc)
        return RiskSnapshot(
            state=KillState.TRIPPED, reason=f"{RISK_STATE_FILE} unreadable: {exc}", since=clock()
        )


def queue_risk_command(
    data_dir: Path, action: str, source: str, clock: Callable[[], datetime], **detail: str
) -> None:
    """Queue ``trip`` or ``reset`` for the engine that owns the data dir (flushed, fsynced)."""
    writer = JsonlWriter(Path(data_dir) / RISK_COMMANDS_FILE, fsync=True)
    try:
        writer.append({"ts": clock(), "action": action, "source": source, **detail})
    finally:
        writer.close()


def _drawdown(peak: Decimal | None, value: Decimal) -> Decimal:
    if peak is None or peak <= 0 or value >= peak:
        return Decimal(0)
    return (peak - value) / peak * 100
