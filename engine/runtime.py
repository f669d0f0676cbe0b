"""Runtime: builds the whole engine from the settings and runs it, for ``kobe run`` and the cockpit.

One object owns: the data-dir lock, the CEX venue of the mode (paper or ccxt) and the paper DEX
venue of the Solana wallets, their routers and journal, the wallet manager, the risk engine, the
execution engine, the trade store and the agent (strategies). ``tick()`` is one step:

1. operator commands queued for the risk engine are applied (``kobe risk trip`` from another
   process is obeyed here, within one tick); a trip with ``on_trip = "flatten"`` flattens once;
   with ``[indexer] enabled`` and ``RPC_SOLANA_HTTP`` set, the indexer scans at most
   ``slots_per_tick`` new slots (an error is an alert, never a crash);
2. the venues move to ``now`` (the paper venues fill resting orders) and their events are
   journaled; pending entries and locally watched exits are handled;
3. unless paused, the agent's strategies run and their signals become proposals (exits are
   always allowed: pausing stops new entries only);
4. the wallet flows run and the wallets snapshot is written; the risk engine sees the equity.

Everything the UI needs arrives as :class:`EngineEvent` through :meth:`subscribe` callbacks
(called on the engine's thread: the cockpit forwards them with ``post_message``). Manual actions
(proposals, cancels, closes, kill switch) take the same lock as a tick, so they never interleave
with one. ``stop()`` finishes the current step and closes every journal.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from engine.audit import AuditLog
from engine.config import Mode
from engine.exchange.base import Exchange, ExchangeError, Order
from engine.exchange.factory import build_exchange
from engine.execution import ExecutionEngine, Position
from engine.fsutil import WriteFailed, free_space_check
from engine.indexer.indexer import Indexer
from engine.journal import OrderJournal
from engine.lock import DataDirLock
from engine.modes import Settings, gate_problems
from engine.notify import ChannelStatus, Notifier
from engine.proposal import Proposal, Source
from engine.risk import KillState, RiskEngine, RiskSnapshot
from engine.router import ClientIds, OrderPlan, Placement, Router
from engine.secrets import redact
from engine.trades import ClosedTrade, TradeStore
from engine.untrusted import clean_message
from engine.wallet_book import LedgerWallets
from engine.wallets.runtime import WalletManager
from engine.wallets.snapshot import WalletsSnapshot

log = logging.getLogger(__name__)

DEFAULT_TICK_SECONDS = 60
RESUME_IDS_TAIL = 200  # journal lines read at start to number client ids on


class EngineState(StrEnum):
    STOPPED = "stopped"
    RUNNING = "running"
    PAUSED = "paused"
    LOCKED = "locked"  # live, waiting for the operator's unlock
    ERROR = "error"


@dataclass(frozen=True)
class EngineEvent:
    """What the engine tells its subscribers. ``kind`` says what ``payload`` is."""

    kind: str  # order | trade | wallets | risk | alert | state | prices | venue | error | notify
    payload: Any
    time: datetime


@dataclass(frozen=True)
class AlertEvent:
    severity: str  # info | warning | critical | error
    code: str
    message: str


class SimClock:
    """A simulated clock: it moves only when told to (``kobe run --ticks``: never sleeps)."""

    def __init__(self, start: datetime) -> None:
        self.now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)


def wall_clock() -> datetime:
    return datetime.now(UTC)


class Agent(Protocol):
    """The strategies' side of the engine (``engine.agent.AgentEngine``)."""

    def tick(self, now: datetime, execution: ExecutionEngine, paused: bool) -> None: ...

    def on_trade_closed(self, trade: ClosedTrade) -> None: ...

    def on_position_dust(self, entry_cid: str) -> None: ...

    def dex_venue(self) -> Exchange | None: ...

    def before_venues(self, now: datetime) -> None: ...

    def adopt_positions(self, execution: ExecutionEngine) -> None: ...

    def status(self) -> dict[str, Any]: ...


@dataclass
class _Venue:
    name: str
    exchange: Exchange
    router: Router


@dataclass(frozen=True)
class VenueHealth:
    """A real exchange's state, as the last calls found it (testnet and live)."""

    state: str  # ok | degraded (it answers with errors) | down (it cannot be reached)
    error: str = ""
    since: datetime | None = None  # down since
    latency_ms: int | None = None  # the last call's round trip


@dataclass
class RuntimeStatus:
    state: EngineState
    mode: Mode
    exchange: str
    ticks: int
    now: datetime | None
    error: str = ""
    notes: list[str] = field(default_factory=list)


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        confirmed: bool = False,
        clock: Callable[[], datetime] | None = None,
        tick_seconds: float = DEFAULT_TICK_SECONDS,
        agent_factory: Callable[[Runtime], Agent | None] | None = None,
    ) -> None:
        self.settings = settings
        self.confirmed = confirmed
        self.clock: Callable[[], datetime] = clock or wall_clock
        self.tick_seconds = tick_seconds
        self._agent_factory = agent_factory
        self._subscribers: list[Callable[[EngineEvent], None]] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._paused = False
        self._built = False
        self._ticks = 0
        self._flattened_trip: datetime | None = None
        self._low_disk = False
        self._state = EngineState.STOPPED
        self._error = ""
        self.venues: dict[str, _Venue] = {}
        self.agent: Agent | None = None
        self.failure = ""  # the error that stopped the engine, kept after stop()
        self.indexer: Indexer | None = None  # follows new slots each tick (``[indexer] enabled``)
        self._health: VenueHealth | None = None  # a real exchange's state (testnet, live)

    # -- events -------------------------------------------------------------------------------

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
        self._state, self._error = state, clean_message(error)
        self._emit("state", self.status())

    # -- building -----------------------------------------------------------------------------

    def build(self) -> None:
        """Lock the data dir and build everything. Raises GateClosed / DataDirBusy / ConfigError."""
        if self._built:
            return
        s = self.settings
        problems = gate_problems(s, self.confirmed)
        if problems:
            from engine.modes import GateClosed

            raise GateClosed(s.mode, problems)
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
        self.audit = AuditLog(data, self.clock)
        self.notifier = Notifier.attach(  # Telegram / webhook; started once everything is built
            s, self.subscribe, venue_of_wallet=self.venue_of_wallet, on_status=self._on_notify
        )
        self.risk = RiskEngine(
            data, cfg.risk, self.clock, audit=self.audit, on_change=self._on_risk
        )
        self.wallets = WalletManager.from_config(cfg, data, clock=self.clock)
        self.trades = TradeStore(data)
        ids = ClientIds(self.clock)
        holder: list[Router] = []
        cex = build_exchange(
            s,
            confirmed=self.confirmed,
            clock=self.clock,
            on_unknown=lambda cid, reason: holder[0].on_unknown(cid, reason) if holder else None,
        )
        book = _LiveWallets(self)
        self.journal = OrderJournal(
            data
        )  # one journal for every venue (``exchange`` tells them apart)
        ids.resume_after(e.client_id for e in self.journal.tail(RESUME_IDS_TAIL))
        cex_router = self._router(cex, s.exchange, book, ids)
        holder.append(cex_router)
        self.venues[s.exchange] = _Venue(s.exchange, cex, cex_router)
        self.indexer = self._build_indexer()
        self.agent = self._agent_factory(self) if self._agent_factory is not None else None
        dex = self.agent.dex_venue() if self.agent is not None else None
        if dex is not None:
            dex_router = self._router(dex, "dex", book, ids, mode="paper")
            self.venues["dex"] = _Venue("dex", dex, dex_router)
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
            self._alert(
                "critical", "kill_switch", f"kill switch TRIPPED: {self.risk.kill_switch().reason}"
            )
        for venue in self.venues.values():
            venue.router.listeners.append(lambda e: self._emit("order", e))
            reset = venue.router.paper_reset()
            if reset is not None:
                self._alert("warning", "paper_reset", reset)
            try:
                report = venue.router.reconcile()
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
        self.notifier.start()

    def _build_indexer(self) -> Indexer | None:
        """The indexer that follows new slots, when enabled and the endpoint is set."""
        from engine.indexer.setup import FOLLOW_RETRY, make_indexer, make_rpc

        if not self.settings.config.indexer.enabled:
            return None
        try:
            rpc = make_rpc(self.settings, FOLLOW_RETRY)
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
        try:
            self.indexer.scan(self.settings.config.indexer.slots_per_tick)
        except Exception as exc:  # the node's trouble must not stop the engine
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
            kill_switch=self.risk.kill_switch,
            watchdog_dir=s.data_dir / "dex" if name == "dex" else s.data_dir,
            settings=cfg.router,
        )

    def venue_of_wallet(self, wallet_id: str) -> str:
        chain = self.settings.config.finance.wallet(wallet_id).chain
        return "dex" if chain == "solana" else chain

    # -- running ------------------------------------------------------------------------------

    def tick(self) -> None:
        """One step of the engine (see the module docstring)."""
        with self._lock:
            now = self.clock()
            self._apply_risk_commands()
            self._check_free_space()
            self._follow_indexer()
            if self.agent is not None:
                self.agent.before_venues(now)
            for venue in self.venues.values():
                if venue.name == "dex" and self.agent is not None:
                    continue  # the agent moved it, with the strategies' prices
                advance = getattr(venue.exchange, "advance", None)
                try:
                    if advance is None:  # a real exchange: is it there, and what happened
                        ms = venue.exchange.ping()  # to our orders (one light call a tick)
                        venue.router.sync()
                        self._venue_health(VenueHealth("ok", latency_ms=int(ms)))
                        continue
                    events = advance(now)
                except ExchangeError as exc:
                    text = str(exc)  # the adapter's errors already name the exchange
                    if not text.startswith(f"{venue.name}:"):
                        text = f"{venue.name}: {text}"
                    self._alert("warning", "venue", text)
                    if advance is None:
                        self._venue_failed(exc, now)
                    continue
                for ev in events:
                    venue.router.on_order_update(ev.kind, ev.order, ev.reason)
            self.execution.poll()
            if self.agent is not None:
                self.agent.tick(now, self.execution, self._paused)
            snapshot = self.wallets.on_tick(now)
            prices = self._prices()
            marked = self._marked_to_market(snapshot, prices)
            self.risk.on_equity(marked.equity_total_usd, {w.id: w.balance for w in marked.wallets})
            self._ticks += 1
            self._emit("wallets", marked)
            self._emit("prices", prices)
            self._emit("unprotected", len(self.execution.unprotected()))

    def _marked_to_market(
        self, snapshot: WalletsSnapshot, prices: dict[str, Decimal]
    ) -> WalletsSnapshot:
        """The ledger plus the open positions' unrealized PnL at the last prices: what the
        header shows and what the risk engine's drawdown is measured on."""
        total, by_wallet = self.execution.unrealized(prices)
        if not by_wallet:
            return snapshot
        equity = snapshot.equity_total_usd + total
        wallets = []
        for w in snapshot.wallets:
            balance = w.balance + by_wallet.get(w.id, Decimal(0))
            pct = (balance / equity * 100).quantize(Decimal("0.01")) if equity else w.pct_equity
            wallets.append(
                dataclasses.replace(
                    w,
                    balance=balance,
                    pct_equity=pct,
                    pnl_day=w.pnl_day + by_wallet.get(w.id, Decimal(0)),
                )
            )
        return dataclasses.replace(
            snapshot,
            equity_total_usd=equity,
            pnl_day=snapshot.pnl_day + total,
            wallets=tuple(wallets),
        )

    def _prices(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for venue in self.venues.values():
            prices = getattr(venue.exchange, "prices", None)
            if prices is not None:
                out.update(prices.prices())
        return out

    def run_ticks(self, n: int, advance: Callable[[], None] | None = None) -> None:
        """``n`` ticks back to back (a simulated clock: ``advance`` moves it between ticks)."""
        self.build()
        self._set_state(EngineState.PAUSED if self._paused else EngineState.RUNNING)
        for _ in range(n):
            if self._stop.is_set():
                break
            if advance is not None:
                advance()
            if not self._guarded_tick():
                return
        self._set_state(EngineState.STOPPED)

    def _guarded_tick(self) -> bool:
        """One tick; an error stops the engine in the ERROR state, with an alert (False)."""
        try:
            self.tick()
        except WriteFailed:
            self._set_state(EngineState.ERROR, "a data file could not be written")
            raise  # a clean stop: the caller reports the path and what was not written
        except Exception as exc:
            log.exception("engine tick failed")
            self.failure = clean_message(exc)
            self._set_state(EngineState.ERROR, self.failure)
            self._alert("error", "engine", f"engine error: {exc}")
            return False
        return True

    def start(self) -> None:
        """Run in a background thread, one tick every ``tick_seconds`` of the wall clock."""
        self.build()
        self._thread = threading.Thread(target=self._loop, name="kobe-engine", daemon=True)
        self._thread.start()

    def run_forever(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Tick on the wall clock until stopped (the calling thread; ``kobe run --duration``)."""
        self.build()
        self._set_state(EngineState.PAUSED if self._paused else EngineState.RUNNING)
        while not self._stop.is_set() and not should_stop():
            if not self._guarded_tick():
                return
            deadline = time.monotonic() + self.tick_seconds
            while not self._stop.is_set() and not should_stop():  # honour a stop within 0.1 s
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._stop.wait(min(left, 0.1))
        self._set_state(EngineState.STOPPED)

    def _loop(self) -> None:
        self.run_forever()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the current step, then close every journal and release the lock."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        with self._lock:
            self.close()

    def close(self) -> None:
        if not self._built:
            return
        closers = [v.exchange.close for v in self.venues.values()]
        closers += [self.execution.keeper.save]  # the position book's cache, up to date
        closers += [self.journal.close, self.trades.close, self.wallets.close, self.risk.close]
        # the notifier last: a moment for what is queued (the outbox keeps the rest); locked
        for close in [*closers, self.audit.close, self.notifier.close]:
            try:
                close()
            except WriteFailed as exc:  # the failure that stopped the engine is reported once
                log.info("while closing: %s", exc)
        self._lock_file.release()
        self._built = False
        if self._state is not EngineState.STOPPED:
            self._set_state(EngineState.STOPPED)

    def mark_running(self) -> None:
        """Driven from outside (tests, the cockpit's step): say so to the subscribers."""
        self._set_state(EngineState.PAUSED if self._paused else EngineState.RUNNING)

    def request_stop(self) -> None:
        """Ask the loop to stop after the current step (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- operator actions (any thread) --------------------------------------------------------

    def pause(self) -> None:
        with self._lock:
            self._paused = True
            self._set_state(EngineState.PAUSED)

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            self._set_state(EngineState.RUNNING)

    @property
    def paused(self) -> bool:
        return self._paused

    def plan(self, proposal: Proposal) -> OrderPlan:
        with self._lock:
            return self.execution.plan(proposal)

    def submit(self, proposal: Proposal) -> Placement:
        with self._lock:
            return self.execution.submit(proposal)

    def cancel(self, ref: str, source: Source) -> Order:
        with self._lock:
            for venue in self.venues.values():
                if any(ref in (o.id, o.client_id) for o in venue.exchange.fetch_open_orders()):
                    return venue.router.cancel(ref, source)
            return self.venues[self.settings.exchange].router.cancel(ref, source)

    def close_position(self, entry_cid: str, reason: str) -> Order | None:
        with self._lock:
            return self.execution.close_position(entry_cid, reason)

    def replace_exits(
        self, entry_cid: str, take_profit: Decimal | None, stop_loss: Decimal | None
    ) -> str:
        """New TP/SL for a position (None keeps a leg's price); what now covers it, in words."""
        with self._lock:
            return self.execution.replace_exits(entry_cid, take_profit, stop_loss, Source.COCKPIT)

    def trip(self, reason: str, source: str) -> None:
        with self._lock:
            self.risk.trip(reason, source)
            self._after_trip()

    def reset_kill_switch(self, source: str) -> None:
        with self._lock:
            self.risk.reset(source)

    # -- reading (any thread) -----------------------------------------------------------------

    def status(self) -> RuntimeStatus:
        return RuntimeStatus(
            self._state,
            self.settings.mode,
            self.settings.exchange,
            self._ticks,
            self.clock() if self._built else None,
            self._error,
        )

    def open_orders(self) -> list[tuple[Order, str, str]]:
        with self._lock:
            out: list[tuple[Order, str, str]] = []
            for venue in self.venues.values():
                out += venue.router.open_orders()
            return out

    def positions(self) -> list[Position]:
        with self._lock:
            return self.execution.positions()

    def wallets_snapshot(self) -> WalletsSnapshot:
        with self._lock:
            return self.wallets.snapshot()

    def risk_snapshot(self) -> RiskSnapshot:
        return self.risk.snapshot()

    def exchange_balances(self) -> dict[str, Decimal]:
        """The CEX account's balances of the quote asset and the symbols' bases (a real
        exchange: testnet or live); the cockpit shows them beside Kobe's ledger."""
        cfg = self.settings.config
        assets = sorted({cfg.paper.quote_asset, *(s.split("/")[0] for s in cfg.symbols)})
        with self._lock:
            exchange = self.venues[self.settings.exchange].exchange
            return {a: exchange.get_balance(a) for a in assets}

    # -- internals ----------------------------------------------------------------------------

    def _venue_health(self, health: VenueHealth) -> None:
        self._health = health
        self._emit("venue", health)

    def _venue_failed(self, exc: ExchangeError, now: datetime) -> None:
        from engine.exchange.base import ExchangeUnavailable, NetworkError

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
        before = self.risk.kill_switch().state
        self.risk.apply_commands()
        if before is not KillState.TRIPPED and self.risk.kill_switch().tripped:
            self._after_trip()

    def _after_trip(self) -> None:
        ks = self.risk.kill_switch()
        self._alert("critical", "kill_switch", f"kill switch TRIPPED: {ks.reason}")
        if self.settings.config.risk.on_trip == "flatten" and self._flattened_trip != ks.since:
            self._flattened_trip = ks.since
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


class _LiveWallets:
    """The router's wallet book, read from the running wallet manager (not from files)."""

    def __init__(self, runtime: Runtime) -> None:
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
