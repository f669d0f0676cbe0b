"""RuntimeParts: the runtime's state, how it is built (venues, routers, risk, wallets, the
indexer) and how it reacts (alerts, venue health, trips, closed trades, dust)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.audit import AuditLog
from engine.config import ConfigError
from engine.exchange.base import AuthenticationError, Exchange, ExchangeError, Stopping
from engine.exchange.factory import build_exchange
from engine.exchange.retry import RetryPolicy, placing
from engine.execution import ExecutionEngine
from engine.fsutil import WriteFailed, free_space_check
from engine.indexer.indexer import Indexer
from engine.journal import DEX_MODE, OrderJournal
from engine.lock import DataDirLock
from engine.modes import Settings, gate_problems
from engine.notify import ChannelStatus, Notifier
from engine.notify.channels import engine_problems
from engine.risk import NOT_FLATTENED, STATE_LOST, KillSwitch, RiskEngine, RiskSnapshot
from engine.router import ClientIds, Router
from engine.runtime_types import (
    Agent,
    AlertEvent,
    EngineEvent,
    EngineState,
    RuntimeStatus,
    VenueHealth,
    VenueParts,
    wall_clock,
)
from engine.secrets import redact
from engine.trades import ClosedTrade, TradeStore
from engine.untrusted import clean_message
from engine.wallet_book import LedgerWallets
from engine.wallets.runtime import WalletManager

log = logging.getLogger(__name__)


DEFAULT_TICK_SECONDS = 60


RESUME_IDS_TAIL = 200  # journal lines read at start to number client ids on


class RuntimeParts:
    """The parts :class:`engine.runtime.Runtime` runs, built once, and its reactions."""

    def __init__(
        self,
        settings: Settings,
        *,
        confirmed: bool = False,
        clock: Callable[[], datetime] | None = None,
        tick_seconds: float = DEFAULT_TICK_SECONDS,
        agent_factory: Callable[[RuntimeParts], Agent | None] | None = None,
    ) -> None:
        self.settings = settings
        self.confirmed = confirmed
        self.clock: Callable[[], datetime] = clock or wall_clock
        self.tick_seconds = tick_seconds
        self._agent_factory = agent_factory
        self._subscribers: list[Callable[[EngineEvent], None]] = []
        self._lock = threading.RLock()
        self._state_lock = threading.RLock()  # the engine's state word, apart from the ticks
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._paused = False
        self._built = False
        self._ticks = 0
        # a trip is its time and reason: a confirmed trip replacing an unconfirmed one (or a lost
        # state's) in the same second is a new one
        self._flattened_trip: tuple[datetime | None, str] | None = None
        self._announced_trip: tuple[datetime | None, str] | None = None  # the alert's trip
        self._low_disk = False
        self._state = EngineState.STOPPED
        self._error = ""
        self.venues: dict[str, VenueParts] = {}
        self.agent: Agent | None = None
        self.failure = ""  # the error that stopped the engine, kept after stop()
        self.close_failure: WriteFailed | None = None  # the first save refused at the stop
        self.indexer: Indexer | None = None  # follows new slots each tick (``[indexer] enabled``)
        self._health: VenueHealth | None = None  # a real exchange's state (testnet, live)
        # testnet, live: this tick's ticker of each symbol held on a real venue, per venue, and
        # when each symbol last had one (a position without this tick's price is unmarked)
        self._venue_marks: dict[str, dict[str, Decimal]] = {}
        self._marked_at: dict[str, datetime] = {}
        # testnet, live: the last price of each configured symbol Kobe holds nothing in, for
        # the price strip only (never a mark: a position is marked from this tick's ticker),
        # and when it was read; None: that read failed (no current price, none is shown)
        self._strip: dict[str, tuple[datetime, Decimal | None]] = {}

    def subscribe(self, callback: Callable[[EngineEvent], None]) -> None:
        self._subscribers.append(callback)

    def _emit(self, kind: str, payload: Any) -> None:
        event = EngineEvent(kind, payload, self.clock())
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:  # a subscriber's bug must not stop the engine
                log.exception("runtime: subscriber failed on %s", kind)

    def _alert(self, severity: str, code: str, message: str) -> None:
        self._emit("alert", AlertEvent(severity, code, clean_message(message)))

    def _set_state(self, state: EngineState, error: str = "") -> None:
        with self._state_lock:
            self._state, self._error = state, clean_message(error)
            self._emit("state", self.status())

    def build(self) -> None:
        """Lock the data dir and build everything. Raises GateClosed / DataDirBusy / ConfigError."""
        if self._built:
            return
        s = self.settings
        problems = gate_problems(s, self.confirmed)
        if problems:
            from engine.modes import GateClosed

            raise GateClosed(s.mode, problems)
        notify_problems = engine_problems(s.config.notify, s.env)
        if notify_problems:  # before the lock: nothing is written
            raise ConfigError(notify_problems)
        self._lock_file = DataDirLock(s.data_dir, "kobe engine").acquire()
        try:
            self._build_parts()
        except BaseException:
            self._lock_file.release()
            raise
        self._built = True

    def _build_parts(self) -> None:
        s = self.settings
        cfg = s.config
        data = s.data_dir
        # the wallets first: damaged money, or live's money and another mode's, is refused
        # before anything is opened or written (:mod:`engine.wallets.modes`)
        self.wallets = WalletManager.from_config(cfg, data, clock=self.clock, mode=s.mode.value)
        # the venue first: a config it refuses (a symbol the exchange lacks: exit 2) leaves the
        # data dir as it was, before any journal or state file is opened
        holder: list[Router] = []
        cex = build_exchange(
            s,
            confirmed=self.confirmed,
            clock=self.clock,
            on_unknown=lambda cid, reason: holder[0].on_unknown(cid, reason) if holder else None,
            retry=RetryPolicy(sleep=self._pause),  # a stop ends a retry's pause at once
        )
        self.audit = AuditLog(data, self.clock)
        self.notifier = Notifier.attach(  # Telegram / webhook; started once everything is built
            s, self.subscribe, venue_of_wallet=self.venue_of_wallet, on_status=self._on_notify
        )
        self.risk = RiskEngine(
            data, cfg.risk, self.clock, audit=self.audit, on_change=self._on_risk
        )
        self.trades = TradeStore(data, s.mode.value)
        ids = ClientIds(self.clock)
        book = _LiveWallets(self)
        self.journal = OrderJournal(
            data
        )  # one journal for every venue (``exchange`` tells them apart)
        ids.resume_after(e.client_id for e in self.journal.tail(RESUME_IDS_TAIL))
        cex_router = self._router(cex, s.exchange, book, ids)
        holder.append(cex_router)
        self.venues[s.exchange] = VenueParts(s.exchange, cex, cex_router)
        self.indexer = self._build_indexer()
        self.agent = self._agent_factory(self) if self._agent_factory is not None else None
        dex = self.agent.dex_venue() if self.agent is not None else None
        if dex is not None:
            dex_router = self._router(dex, "dex", book, ids, mode=DEX_MODE)
            self.venues["dex"] = VenueParts("dex", dex, dex_router)
        self.execution = ExecutionEngine(
            {name: v.router for name, v in self.venues.items()},
            self.risk,
            self.trades,
            data_dir=data,
            clock=self.clock,
            venue_of_wallet=self.venue_of_wallet,
            wallets=self.wallets,
            on_closed=self._on_closed,
            on_dust=self._on_dust,
            on_alert=lambda sev, msg: self._alert(sev, "execution", msg),
        )
        self.wallets.ledger.committed = self.execution.book.committed
        if self.agent is not None:
            self.agent.adopt_positions(self.execution)
        if self.risk.kill_switch().tripped:
            self._announce_trip()
        for venue in self.venues.values():
            venue.router.listeners.append(lambda e: self._emit("order", e))
            reset = venue.router.paper_reset()
            if reset is not None:
                self._alert("warning", "paper_reset", reset)
            try:
                report = venue.router.reconcile()
            except AuthenticationError:
                raise  # keys the exchange refuses: no engine can trade or protect with them
            except ExchangeError as exc:
                self._alert("error", "reconcile", f"{venue.name}: reconcile failed: {exc}")
                continue
            for order in report.external:
                self._alert(
                    "warning",
                    "external_order",
                    f"{venue.name}: order {order.id} ({order.side.value} {order.qty} "
                    f"{order.symbol}) is not Kobe's: shown, never touched",
                )
        ks = self.risk.kill_switch()
        # a trip no engine could flatten (kobe risk trip); never a trip that only says the
        # risk files were lost or damaged: that blocks entries, it is no order to sell
        if ks.tripped and not ks.reason.startswith(STATE_LOST):
            self._flatten_if_asked()
        self.notifier.start()

    def _pause(self, seconds: float) -> None:
        """The exchange's retry pauses: cut short, and the step unwound, by a stop (quitting
        the cockpit with the exchange down took 4 s: the engine slept in a backoff). Never
        while an order is being placed: that protocol runs to its end (see ``placing``)."""
        if placing():
            time.sleep(seconds)
        elif self._stop.wait(seconds):
            raise Stopping

    def _build_indexer(self) -> Indexer | None:
        """The indexer that follows new slots, when enabled and the endpoint is set."""
        from engine.indexer.setup import FOLLOW_BUDGET_S, FOLLOW_RETRY, make_indexer, make_rpc

        if not self.settings.config.indexer.enabled:
            return None
        try:
            rpc = make_rpc(self.settings, FOLLOW_RETRY, FOLLOW_BUDGET_S)
        except ExchangeError as exc:
            self._alert("error", "indexer", f"indexer: not following new slots: {exc}")
            return None
        if rpc is None:
            self._alert("warning", "indexer", "indexer: enabled, but RPC_SOLANA_HTTP is not set")
            return None
        return make_indexer(self.settings, rpc)

    def _follow_indexer(self) -> None:
        if self.indexer is None:
            return
        from engine.indexer.setup import FOLLOW_BUDGET_S

        try:
            self.indexer.scan(
                self.settings.config.indexer.slots_per_tick, FOLLOW_BUDGET_S, "kobe engine"
            )
        except Exception as exc:  # the node's trouble (or a scan under way) must not stop it
            log.warning("indexer: scan failed: %s", redact(str(exc)))
            self._alert("warning", "indexer", f"indexer: {redact(str(exc))}")

    def _router(
        self,
        exchange: Exchange,
        name: str,
        book: LedgerWallets | _LiveWallets,
        ids: ClientIds,
        mode: str | None = None,
    ) -> Router:
        s = self.settings
        cfg = s.config
        return Router(
            exchange,
            self.journal,
            data_dir=s.data_dir,
            mode=mode or s.mode.value,
            exchange_name=name,
            risk=cfg.risk,
            wallets=book,
            clock=self.clock,
            maker_fee_pct=cfg.paper.maker_fee_pct,
            taker_fee_pct=cfg.paper.taker_fee_pct,
            mode_problems=lambda: gate_problems(s, self.confirmed),
            exits_policy=cfg.router.exits,
            audit=self.audit,
            ids=ids,
            kill_switch=self.risk.entry_switch,
            watchdog_dir=s.data_dir / "dex" if name == "dex" else s.data_dir,
            settings=cfg.router,
        )

    def venue_of_wallet(self, wallet_id: str) -> str:
        return self.settings.config.finance.venue_of(wallet_id)

    @property
    def venue_health(self) -> VenueHealth | None:
        """The exchange's state as the engine's last calls found it (testnet, live; else None)."""
        return self._health

    def _venue_health(self, health: VenueHealth) -> None:
        self._health = health
        self._emit("venue", health)

    def _venue_failed(self, exc: ExchangeError, now: datetime) -> None:
        from engine.exchange.base import ExchangeUnavailable, NetworkError

        # the strip's prices are no longer current: none is shown as if it were, and each
        # symbol is read again at the first tick the venue answers
        self._strip.clear()

        if isinstance(exc, NetworkError | ExchangeUnavailable):
            before = self._health
            since = before.since if before is not None and before.state == "down" else now
            self._venue_health(VenueHealth("down", str(exc), since))
        else:
            self._venue_health(VenueHealth("degraded", str(exc)))

    def _check_free_space(self) -> None:
        """A warning when the data dir's disk falls below ``paths.min_free_mb`` (once per fall)."""
        ok, detail = free_space_check(
            self.settings.data_dir, self.settings.config.paths.min_free_mb
        )
        if not ok and not self._low_disk:
            self._alert("warning", "disk_space", f"low disk space: {detail}")
        self._low_disk = not ok

    def _apply_risk_commands(self) -> None:
        before = self.risk.kill_switch()
        self.risk.apply_commands()
        after = self.risk.kill_switch()
        if after.tripped and (not before.tripped or _trip(after) != _trip(before)):
            self._after_trip()  # a new trip (also one taking a lost state's place)

    def _after_trip(self) -> None:
        """A new trip: its alert, then the flatten if asked; once per trip, whichever path
        sees it first (the tick that tripped, the operator's key, a queued command)."""
        if self._announce_trip():
            self._flatten_if_asked()

    def _announce_trip(self) -> bool:
        """The critical alert of the current trip, raised once (False: it was already)."""
        ks = self.risk.kill_switch()
        if self._announced_trip == _trip(ks):
            return False
        self._announced_trip = _trip(ks)
        self._alert("critical", "kill_switch", f"kill switch TRIPPED: {ks.reason}")
        return True

    def _flatten_if_asked(self) -> None:
        """With ``on_trip = "flatten"``: close what Kobe opened, once per trip (never a trip whose
        flatten the operator did not confirm)."""
        ks = self.risk.kill_switch()
        if ks.reason.startswith(NOT_FLATTENED):
            return
        if self.settings.config.risk.on_trip == "flatten" and self._flattened_trip != _trip(ks):
            self._flattened_trip = _trip(ks)
            done = self.execution.flatten(f"kill switch tripped (flatten): {ks.reason}")
            self._alert("warning", "flatten", "flatten: " + ("; ".join(done) or "nothing open"))

    def _on_notify(self, status: ChannelStatus) -> None:
        self._emit("notify", status)  # the cockpit's health pane shows the last delivery error

    def _on_risk(self, snap: RiskSnapshot) -> None:
        self._emit("risk", snap)

    def _on_closed(self, trade: ClosedTrade) -> None:
        if self.agent is not None:
            self.agent.on_trade_closed(trade)
        self._emit("trade", trade)

    def _on_dust(self, entry_cid: str) -> None:
        """A position became dust: the strategy that held it gets its slot back now."""
        if self.agent is not None:
            self.agent.on_position_dust(entry_cid)

    def status(self) -> RuntimeStatus:
        return RuntimeStatus(
            self._state,
            self.settings.mode,
            self.settings.exchange,
            self._ticks,
            self.clock() if self._built else None,
            self._error,
        )


class _LiveWallets:
    """The router's wallet book, read from the running wallet manager (not from files)."""

    def __init__(self, runtime: RuntimeParts) -> None:
        self.runtime = runtime

    def _book(self) -> LedgerWallets:
        r = self.runtime
        return LedgerWallets(r.wallets.snapshot(), r.settings.config.finance)

    def balance(self, wallet_id: str) -> Decimal:
        return self._book().balance(wallet_id)

    def cap(self, wallet_id: str) -> Decimal | None:
        return self._book().cap(wallet_id)

    def venue_problem(self, wallet_id: str, exchange_name: str) -> str | None:
        book = self._book()
        view = book.snapshot.wallet(wallet_id)
        if view.chain == "solana" and exchange_name == "dex":
            if wallet_id not in book.finance.risk_wallets:
                return f"wallet {wallet_id} may not trade: it is not in finance.risk_wallets"
            return None
        return book.venue_problem(wallet_id, exchange_name)


def _trip(ks: KillSwitch) -> tuple[datetime | None, str]:
    return ks.since, ks.reason
