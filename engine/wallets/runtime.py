"""The wallet runtime manager: flows engine + journal + snapshot, and restart.

``on_trade_closed`` books a closed trade; ``on_tick`` runs the rules that are due and writes
``wallets_runtime.json`` atomically. Every movement is journaled in ``wallet_flows.jsonl`` before
it is applied. On start the manager loads the snapshot and replays the journal lines written after
it (read from the end of the file, back to the snapshot's ``seq``), so a restart neither loses nor
repeats a movement. Idempotence: a trade id is booked once (among the last ``remember_trades``
trades); a rule runs at most once per period, and a tick at a time already seen does nothing.

The snapshot file holds the documented fields (``profile_id``, ``equity_total_usd``, ``pnl_day``,
``wallets``, ``alerts``) plus ``time`` and a ``state`` object the manager restores from.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

from engine.config import FinanceConfig, KobeConfig, WalletFlowsConfig
from engine.fsutil import (
    DAMAGE,
    StateError,
    atomic_write_text,
    damaged,
    read_json_object,
    reading,
)
from engine.jsonutil import dumps, iso_utc
from engine.money import ZERO
from engine.trades import TRADES_FILE
from engine.untrusted import parse_decimal, parse_utc
from engine.wallets.flowlog import FILENAME as FLOWS_FILENAME
from engine.wallets.flowlog import FlowLog, read_tail
from engine.wallets.flows import Ledger, Movement, Op, TradeRefused
from engine.wallets.modes import money_mode_problem
from engine.wallets.snapshot import Alert, WalletsSnapshot, build_snapshot, finance_alerts

log = logging.getLogger(__name__)

RUNTIME_FILENAME = "wallets_runtime.json"
MONEY_REMEDY = (
    "restore the wallet files (wallets_runtime.json, wallet_flows.jsonl) from a backup, or move "
    "the data dir away to start from the config's allocation"
)
STATE_VERSION = 1

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class WalletStateError(StateError):
    """The files on disk cannot be restored for this config (exit 1 on the CLI)."""


def refuse_other_modes_money(data_dir: Path, mode: str) -> None:
    """Raise :class:`WalletStateError` when live's money and another mode's would mix: an
    engine in ``mode`` on ``data_dir``'s money files (:mod:`engine.wallets.modes`). Reads only."""
    journals = [data_dir / FLOWS_FILENAME, data_dir / TRADES_FILE]
    with reading(data_dir, MONEY_REMEDY, WalletStateError):
        problem = money_mode_problem(mode, data_dir / RUNTIME_FILENAME, journals)
    if problem:
        raise WalletStateError(problem)


class WalletManager:
    """The sub-wallets of one data dir. Thread-safe; the clock is injected (aware UTC)."""

    def __init__(
        self,
        finance: FinanceConfig,
        flows: WalletFlowsConfig,
        data_dir: Path,
        *,
        min_operational_capital_usd: Decimal = ZERO,
        clock: Clock = utc_now,
        remember_trades: int = 4096,
        read_only: bool = False,
        mode: str = "paper",
    ) -> None:
        # testnet, live: the DEX venue's wallets trade simulated beside the exchange's real ones
        simulated = frozenset(
            w.id
            for w in finance.wallets
            if mode != "paper" and w.role == "trading" and finance.venue_of(w.id) == "dex"
        )
        self.ledger = Ledger(finance, flows, remember_trades=remember_trades, simulated=simulated)
        self.mode = mode
        self.data_dir = Path(data_dir)
        self.snapshot_path = self.data_dir / RUNTIME_FILENAME
        self.flows_path = self.data_dir / FLOWS_FILENAME
        self.min_operational_capital_usd = min_operational_capital_usd
        self.read_only = read_only
        self._clock = clock
        self._lock = threading.RLock()
        self._seq = 0
        self._log = None if read_only else FlowLog(self.flows_path, mode)
        self.replayed_ops = 0  # ops restored from the journal on start (after the snapshot)
        self._restore()

    @classmethod
    def from_config(cls, cfg: KobeConfig, data_dir: Path, **kwargs: Any) -> WalletManager:
        return cls(
            cfg.finance,
            cfg.wallet_flows,
            data_dir,
            min_operational_capital_usd=cfg.risk.min_operational_capital_usd,
            **kwargs,
        )

    # -- events ----------------------------------------------------------------------------

    def on_trade_closed(
        self, wallet_id: str, pnl_usd: Decimal, fees_usd: Decimal, *, trade_id: str
    ) -> bool:
        """Book a closed trade. False when ``trade_id`` was settled already (nothing moves).

        Raises :class:`~engine.wallets.flows.TradeRefused` (nothing moves) for a wallet that may
        not trade, bad numbers, or a trade that would take a wallet below zero; the last kind is
        journaled as ``trade_refused`` (amount 0), so the same trade id stays refused.
        """
        with self._lock:
            op = self.ledger.plan_trade(trade_id, wallet_id, pnl_usd, fees_usd, self._now())
            if op is None:
                return False
            self._commit(op)
            if op.refused:
                raise TradeRefused(op.refused)
            return True

    def run_periodic_tasks(self, now: datetime) -> tuple[Movement, ...]:
        """Run the rules due at ``now``; the movements made (none when nothing was due)."""
        with self._lock:
            op = self.ledger.plan_tick(now)
            self._commit(op)
            return op.movements

    def on_tick(self, now: datetime) -> WalletsSnapshot:
        """Run the periodic tasks, then write ``wallets_runtime.json`` atomically."""
        with self._lock:
            self.run_periodic_tasks(now)
            return self.write_snapshot(now)

    # -- reading ---------------------------------------------------------------------------

    def snapshot(self, now: datetime | None = None) -> WalletsSnapshot:
        with self._lock:
            return build_snapshot(self.ledger, self.min_operational_capital_usd, now or self._now())

    def alerts(self) -> list[Alert]:
        return list(self.snapshot().alerts)

    def balances(self) -> dict[str, Decimal]:
        with self._lock:
            return dict(self.ledger.balances)

    @property
    def seq(self) -> int:
        """The seq of the last journal line applied."""
        return self._seq

    # -- files -----------------------------------------------------------------------------

    def write_snapshot(self, now: datetime | None = None) -> WalletsSnapshot:
        with self._lock:
            if self.read_only:
                raise WalletStateError("read-only wallet manager: it writes nothing")
            snap = self.snapshot(now)
            doc = snap.to_dict()
            doc["time"] = snap.time
            doc["state"] = self._state()
            atomic_write_text(self.snapshot_path, dumps(doc) + "\n")
            return snap

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()

    def __enter__(self) -> WalletManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the wallet manager's clock must return timezone-aware UTC time")
        return now.astimezone(UTC)

    def _commit(self, op: Op) -> None:
        """Journal ``op`` (one write, flushed), then apply it."""
        if op.movements:
            if self._log is None:
                raise WalletStateError("read-only wallet manager: it moves nothing")
            self._log.append(op, self._seq + 1)
        self.ledger.apply(op)
        self._seq += len(op.movements)

    def _state(self) -> dict[str, Any]:
        led = self.ledger
        return {
            "version": STATE_VERSION,
            "mode": self.mode,
            "seq": self._seq,
            "day": led.day.isoformat() if led.day else None,
            "last_time": iso_utc(led.last_time) if led.last_time else None,
            "balances": dict(led.balances),
            "pnl_day": dict(led.pnl_day),
            "fees_day": led.fees_day,
            "unswept_profit": dict(led.unswept),
            "realized_pnl_usd": led.realized_pnl,
            "fees_paid_usd": led.fees_paid,
            "marks": dict(led.marks),
            "recent_trades": list(led.recent_trades),
        }

    def _restore(self) -> None:
        refuse_other_modes_money(self.data_dir, self.mode)
        after = 0
        if self.snapshot_path.exists():
            after = self._load_snapshot()
        with reading(self.flows_path, MONEY_REMEDY, WalletStateError):
            tail = read_tail(self.flows_path, after)
        if tail.last_seq < after or tail.gap:
            problem = tail.gap or (
                f"it ends at seq {tail.last_seq}, before the snapshot's {after}"
                if tail.last_seq
                else f"it is missing or empty, and the snapshot includes {after} movements"
            )
            raise WalletStateError(
                f"{self.flows_path} is damaged ({problem}); nothing was reset or overwritten: "
                f"{MONEY_REMEDY}"
            )
        if tail.cut_at is not None and self._log is not None:
            self._log.cut(tail.cut_at)
        for op, _last_seq in tail.ops:
            self.ledger.apply(op)
        self.replayed_ops = len(tail.ops)
        self._seq = max(after, tail.last_seq)
        if tail.ops:
            log.info("wallets: replayed %d op(s) from %s", len(tail.ops), self.flows_path)

    def _load_snapshot(self) -> int:
        path = self.snapshot_path
        doc = read_json_object(path, MONEY_REMEDY, WalletStateError) or {}
        try:
            state = doc["state"]
            if state.get("version") != STATE_VERSION:
                raise WalletStateError(f"{path}: unknown state version {state.get('version')!r}")
            led = self.ledger

            def num(value: object, name: str, *, signed: bool = False) -> Decimal:
                return parse_decimal(value, name, minimum=None if signed else Decimal(0))

            balances = {k: num(v, f"balances.{k}") for k, v in state["balances"].items()}
            if set(balances) != set(led.wallets):
                raise WalletStateError(
                    f"{path}: its wallets ({', '.join(sorted(balances))}) are not the config's "
                    f"({', '.join(sorted(led.wallets))}); use another data dir or the matching "
                    "kobe.toml"
                )
            led.balances = {w: balances[w] for w in led.wallets}
            led.pnl_day = {
                w: num(state["pnl_day"].get(w, "0"), f"pnl_day.{w}", signed=True)
                for w in led.wallets
            }
            led.unswept = {
                w: num(state["unswept_profit"].get(w, "0"), f"unswept_profit.{w}", signed=True)
                for w in led.wallets
            }
            led.fees_day = num(state["fees_day"], "fees_day")
            led.realized_pnl = num(state["realized_pnl_usd"], "realized_pnl_usd", signed=True)
            led.fees_paid = num(state["fees_paid_usd"], "fees_paid_usd")
            led.day = date.fromisoformat(state["day"]) if state["day"] else None
            last = state["last_time"]
            led.last_time = parse_utc(last, "last_time") if last else None
            led.marks = {str(k): int(v) for k, v in state["marks"].items()}
            led.restore_recent([str(t) for t in state["recent_trades"]])
            return int(state["seq"])
        except WalletStateError:
            raise
        except DAMAGE as exc:
            raise damaged(path, exc, MONEY_REMEDY, WalletStateError) from None


def load_view(
    cfg: KobeConfig, data_dir: Path, now: datetime | None = None, *, mode: str = "paper"
) -> WalletsSnapshot:
    """The wallets as the files in ``data_dir`` say (snapshot + journal tail), writing nothing.

    With neither file, the config's allocation. Live's money and another mode's are not shown
    as ``mode``'s: :class:`WalletStateError`, as for a damaged file.
    """
    manager = WalletManager.from_config(cfg, data_dir, read_only=True, mode=mode)
    return manager.snapshot(now)


__all__ = [
    "RUNTIME_FILENAME",
    "Alert",
    "WalletManager",
    "WalletStateError",
    "WalletsSnapshot",
    "finance_alerts",
    "load_view",
    "refuse_other_modes_money",
    "utc_now",
]
