"""``RiskEngine``: the safety guards and the kill switch's transitions, journaled before the
snapshot that includes them (the files: ``engine.risk.state``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from engine.audit import AuditLog
from engine.config import RiskConfig
from engine.fsutil import atomic_write_text
from engine.journal import JsonlWriter, iter_jsonl
from engine.jsonutil import dumps, iso_utc
from engine.proposal import Source
from engine.risk.state import (
    NOT_FLATTENED,
    RISK_COMMANDS_FILE,
    RISK_JOURNAL_FILE,
    RISK_STATE_FILE,
    STATE_LOST,
    KillState,
    KillSwitch,
    RiskCommand,
    RiskSnapshot,
    load_risk_state,
    queued_trip,
)
from engine.trades import TRADES_FILE, trades_backwards
from engine.untrusted import operator_text

log = logging.getLogger("engine.risk")  # the name its log lines had before the split

KEEP_TRADE_IDS = 20  # closed trades remembered as counted (a crash re-hands on at most one)
# WARNING clears only once the drawdown is back below 90 % of its level (9 % for a 10 % warning):
# a drawdown hovering at the level would otherwise flip the switch, journal a line and raise an
# alert every tick
WARNING_CLEARS_AT = Decimal("0.9")


class RiskEngine:
    """Safety guards and the kill switch (ARMED -> WARNING -> TRIPPED).

    * drawdown from peak equity (total; per wallet for display): WARNING at
      ``risk.warning_drawdown_pct``, TRIPPED at ``risk.max_drawdown_pct``;
    * ``risk.max_losing_streak`` losing trades in a row: TRIPPED;
    * equity below ``risk.min_operational_capital_usd``: TRIPPED;
    * realized loss today beyond ``risk.max_daily_loss_usd``: TRIPPED;
    * ``risk.cooldown_after_loss_s`` after a losing trade: new entries wait (not a trip).

    WARNING goes back to ARMED by itself when the drawdown recovers below 90 % of the warning
    level (hysteresis: no flip-flop around the level); TRIPPED is left only by an
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
        self._resync = bool(state.lost)
        if state.recount:
            self._recount_from_trades()
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

    def _recount_from_trades(self) -> None:
        """The lost cache held today's realized loss, the losing streak and the last loss: they
        are counted again from ``trades.jsonl`` (read from its end, as far as today and the
        streak reach), so that a lost file never restarts a limit. An operator's reset still
        starts the streak and the cooldown afresh, as every reset does."""
        s = self.snap
        today = self.clock().date()
        s.day, s.pnl_day, s.losing_streak, s.last_loss_at = today.isoformat(), Decimal(0), 0, None
        streak = True
        counted: list[str] = []  # so that a trade handed on again is not counted twice
        for trade in trades_backwards(self.data_dir / TRADES_FILE):
            if trade is None:
                continue
            if len(counted) < KEEP_TRADE_IDS:
                counted.append(trade.trade_id)
            sweep = trade.strategy == Source.DUST_SWEEP  # no trading decision: not in a streak
            streak = streak and (sweep or trade.pnl < 0)
            if streak and not sweep:
                s.losing_streak += 1
                s.last_loss_at = s.last_loss_at or trade.closed_at
            if trade.closed_at.date() == today:
                s.pnl_day += trade.pnl
            elif not streak:
                break
        s.trades = tuple(reversed(counted))
        log.warning(
            "risk figures counted again from %s: realized today %s, losing streak %d",
            TRADES_FILE,
            s.pnl_day,
            s.losing_streak,
        )

    def _record(self, event: str, ts: datetime | None = None, **detail: object) -> None:
        """One journal line (fsynced) before the snapshot that includes it."""
        self.snap.seq += 1
        line = {"seq": self.snap.seq, "ts": ts or self.clock(), "event": event, **detail}
        if self._resync:  # after a lost state: the numbering may jump here, and that is known
            line["resync"], self._resync = True, False
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

    def entry_switch(self) -> KillSwitch:
        """The switch a new entry must pass, at the moment it is sent: a trip queued by another
        process (``kobe risk trip`` while this one holds the data dir) and not applied yet
        counts as TRIPPED, so it blocks entries at once, not from the next tick (or never, for
        a ``kobe trade`` waiting at its question)."""
        with self._lock:
            return queued_trip(self.pending_commands()) or self.kill_switch()

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
                level = self.cfg.warning_drawdown_pct
                if s.state is KillState.WARNING:
                    level *= WARNING_CLEARS_AT
                warn = s.drawdown_pct >= level
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

    def on_trade_closed(self, pnl: Decimal, trade_id: str = "", streak: bool = True) -> None:
        """A closed trade's realized PnL (after fees): losing streak, daily loss, cooldown.

        Once per ``trade_id``: a trade the bookkeeper hands on again (a crash came after this
        and before ``trades.jsonl`` recorded it) moves nothing the second time. ``streak``
        False (a dust sweep, no trading decision): its PnL counts for today, but it neither
        lengthens the losing streak nor ends it, and starts no cooldown."""
        with self._lock:
            now = self.clock()
            s = self.snap
            if trade_id:
                if trade_id in s.trades:
                    return
                s.trades = (*s.trades[-(KEEP_TRADE_IDS - 1) :], trade_id)
            day = now.date().isoformat()
            if s.day != day:
                s.day, s.day_start_equity, s.pnl_day = day, s.equity, Decimal(0)
            s.pnl_day += pnl
            if streak and pnl < 0:
                s.losing_streak += 1
                s.last_loss_at = now
            elif streak:
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
        # tripped already: kept, unless only because the risk files were lost, or by an operator
        # who did not confirm the flatten; a real trip (the operator's, a limit's) then takes its
        # place, so its reason and on_trip apply
        held = self.snap.reason
        replaceable = held.startswith(STATE_LOST) or (
            held.startswith(NOT_FLATTENED) and not reason.startswith(NOT_FLATTENED)
        )
        if self.snap.state is KillState.TRIPPED and not replaceable:
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
                # its effect first (transition, snapshot, audit), then the line saying it was
                # applied: a kill in between applies it again at the next start (a trip or a
                # reset twice changes nothing more), never a command marked done and not done
                if command.action == "trip":
                    self._trip_locked(command.reason or "manual trip", command.source)
                    self._record_command(command, "applied")
                elif command.action == "reset":
                    self._reset_locked(command.source)
                    self._record_command(command, "applied")
                else:
                    log.warning(
                        "%s: unknown command %r skipped", self.commands_path, command.action
                    )
                    self._record_command(command, "skipped: unknown action")
                    self._save()
            return len(fresh)


def _drawdown(peak: Decimal | None, value: Decimal) -> Decimal:
    if peak is None or peak <= 0 or value >= peak:
        return Decimal(0)
    return (peak - value) / peak * 100
