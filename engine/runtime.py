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
import threading
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from engine.exchange.base import ExchangeError, Order, Stopping
from engine.execution import Position
from engine.fsutil import WriteFailed, close_all
from engine.position import dust_worth_saying
from engine.proposal import Proposal, Source
from engine.risk import RiskSnapshot
from engine.router import OrderPlan, Placement
from engine.runtime_parts import RuntimeParts, log
from engine.runtime_types import (
    AlertEvent,
    EngineEvent,
    EngineState,
    RuntimeStatus,
    SimClock,
    VenueHealth,
    VenueParts,
    wall_clock,
)
from engine.secrets import redact
from engine.untrusted import clean_message
from engine.wallets.snapshot import Alert as WalletAlert
from engine.wallets.snapshot import WalletsSnapshot

STRIP_EVERY_S = 30  # testnet, live: a configured symbol with no position, priced this often


class Runtime(RuntimeParts):
    """The engine: ticks the venues, the strategies and the risk engine; the cockpit and the CLI
    ask it through these methods."""

    def tick(self) -> None:
        """One step of the engine (see the module docstring)."""
        with self._lock:
            now = self.clock()
            self._apply_risk_commands()
            armed = not self.risk.kill_switch().tripped
            self._check_free_space()
            self._follow_indexer()
            if self.agent is not None:
                self.agent.before_venues(now)
            self._venue_marks = {}
            for venue in self.venues.values():
                if venue.name == "dex" and self.agent is not None:
                    continue  # the agent moved it, with the strategies' prices
                advance = getattr(venue.exchange, "advance", None)
                try:
                    if advance is None:  # a real exchange: is it there, and what happened
                        ms = venue.exchange.ping()  # to our orders (one light call a tick)
                        venue.router.sync()
                        self._venue_health(VenueHealth("ok", latency_ms=int(ms)))
                        self._venue_marks[venue.name] = self._read_marks(venue, now)
                        self._read_strip(venue, now)
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
            # the watchdog reuses those tickers; paused or tripped, no dust is swept: a sale
            # the trader did not ask for while trading is stopped (exits keep working)
            self.execution.poll(self._venue_marks, paused=self._paused)
            if self.agent is not None:
                self.agent.tick(now, self.execution, self._paused)
            snapshot = self.wallets.on_tick(now)
            prices = self._prices()
            marked = self._marked_to_market(snapshot, prices)
            self.risk.on_equity(marked.equity_total_usd, {w.id: w.balance for w in marked.wallets})
            if armed and self.risk.kill_switch().tripped:  # the risk engine tripped it this tick
                self._after_trip()
            self._ticks += 1
            self._emit("wallets", marked)
            shown = {s: price for s, (_, price) in self._strip.items() if price is not None}
            self._emit("prices", {**shown, **prices})
            unprotected = self.execution.unprotected()  # their entries' client ids
            self._emit("unprotected", tuple(p.entry_client_id for p in unprotected))

    def _read_marks(self, venue: VenueParts, now: datetime) -> dict[str, Decimal]:
        """Testnet, live: one ticker per symbol Kobe holds a position in on ``venue`` (the
        request budget's ticker row). A symbol whose ticker fails stays unmarked this tick."""
        marks: dict[str, Decimal] = {}
        for symbol in sorted(
            {p.symbol for p in self.execution.positions() if p.venue == venue.name}
        ):
            try:
                marks[symbol] = venue.exchange.fetch_ticker(symbol).last
            except ExchangeError as exc:
                log.warning("%s: no price for %s: %s", venue.name, symbol, redact(str(exc)))
                continue
            self._marked_at[symbol] = now
        return marks

    def _read_strip(self, venue: VenueParts, now: datetime) -> None:
        """Testnet, live: the configured symbols Kobe holds nothing in, one ticker each at most
        every ``STRIP_EVERY_S``, for the price strip; a held one is marked every tick. A read
        that fails leaves the symbol with no price (the strip shows it stale) until the next
        read, ``STRIP_EVERY_S`` later."""
        # held: every symbol Kobe holds a position in, marked or not (a failed mark is never
        # replaced by a strip price, and is not read twice)
        held = {p.symbol for p in self.execution.positions() if p.venue == venue.name}
        for symbol in self.settings.config.symbols:
            if symbol in held:
                self._strip.pop(symbol, None)
                continue
            last = self._strip.get(symbol)
            if last is not None and (now - last[0]).total_seconds() < STRIP_EVERY_S:
                continue
            try:
                self._strip[symbol] = (now, venue.exchange.fetch_ticker(symbol).last)
            except ExchangeError as exc:
                self._strip[symbol] = (now, None)  # its last price is no longer current
                log.warning("%s: no price for %s: %s", venue.name, symbol, redact(str(exc)))

    def _unmarked(self, prices: dict[str, Decimal]) -> WalletAlert | None:
        """Positions on a real venue with no price this tick: their unrealized PnL is left out
        of equity (never guessed), and an alert says which and since when."""
        real = {n for n, v in self.venues.items() if getattr(v.exchange, "advance", None) is None}
        missing = sorted(
            {p.symbol for p in self.execution.positions() if p.venue in real}.difference(prices)
        )
        if not missing:
            return None
        named = ", ".join(
            f"{s} since {self._marked_at[s]:%H:%M}" if s in self._marked_at else f"{s} (none yet)"
            for s in missing
        )
        return WalletAlert(
            "warning",
            "unmarked",
            f"no price for {named}: equity counts {'it' if len(missing) == 1 else 'them'} at "
            "the entry price (no gain or loss guessed)",
        )

    def _marked_to_market(
        self, snapshot: WalletsSnapshot, prices: dict[str, Decimal]
    ) -> WalletsSnapshot:
        """The ledger plus the open positions' unrealized PnL at the last prices: what the
        header shows and what the risk engine's drawdown is measured on. A position on a real
        venue without this tick's price adds nothing and raises the ``unmarked`` alert."""
        unmarked = self._unmarked(prices)
        if unmarked is not None:
            snapshot = dataclasses.replace(snapshot, alerts=(*snapshot.alerts, unmarked))
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
            out.update(self._venue_marks.get(venue.name, {}))
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
        except Stopping:
            return False  # asked to stop in a retry's pause: the step ends there
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
                if self._stop.is_set():
                    break  # a stop, not an error
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
        failed = close_all([*closers, self.audit.close, self.notifier.close])
        # a run that ended well but could not save (the paper account at its stop) is no
        # success: the caller reports it (a failure that stopped the engine is reported once)
        self.close_failure = self.close_failure or failed
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

    def pause(self) -> None:
        """No new entries from the strategies' next step on. It never waits for the tick under
        way (the cockpit's ``p`` froze the screen, ``q`` with it, while a tick waited for a
        slow exchange)."""
        self._set_paused(True)

    def resume(self) -> None:
        self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        with self._state_lock:
            self._paused = paused
            if self._state in (EngineState.RUNNING, EngineState.PAUSED):  # never over an error
                self._set_state(EngineState.PAUSED if paused else EngineState.RUNNING)

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
                    return venue.router.cancel(ref, source, cover_part=True)
            return self.venues[self.settings.exchange].router.cancel(ref, source, cover_part=True)

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
        """The operator's trip: the switch trips at once, not after the tick under way, whose
        entries still to come are then refused; the alert and the flatten (if asked) follow
        under the engine's lock, once."""
        self.risk.trip(reason, source)
        with self._lock:
            self._after_trip()

    def reset_kill_switch(self, source: str) -> None:
        with self._lock:
            self.risk.reset(source)

    def open_orders(self) -> list[tuple[Order, str, str]]:
        with self._lock:
            out: list[tuple[Order, str, str]] = []
            for venue in self.venues.values():
                out += venue.router.open_orders()
            return out

    def positions(self) -> list[Position]:
        with self._lock:
            return self.execution.positions()

    def dust(self) -> list[Position]:
        """What Kobe holds below the venue's minimums worth a cent or more: no open position,
        shown apart (see :func:`engine.position.dust_worth_saying`)."""
        with self._lock:
            return [p for p in self.execution.book.dust() if dust_worth_saying(p)]

    def wallets_snapshot(self) -> WalletsSnapshot:
        with self._lock:
            return self.wallets.snapshot()

    def risk_snapshot(self) -> RiskSnapshot:
        return self.risk.snapshot()

    def exchange_balances(self) -> dict[str, Decimal]:
        """The CEX account's balances of the quote asset and the symbols' bases (a real
        exchange: testnet or live); the cockpit shows them beside Kobe's ledger. The quote
        asset first (what funds an order), then the bases by name."""
        cfg = self.settings.config
        quote = cfg.paper.quote_asset
        assets = [quote, *sorted({s.split("/")[0] for s in cfg.symbols} - {quote})]
        with self._lock:
            exchange = self.venues[self.settings.exchange].exchange
            return exchange.get_balances(assets)


__all__ = [
    "AlertEvent",
    "EngineEvent",
    "EngineState",
    "Runtime",
    "RuntimeStatus",
    "SimClock",
    "VenueHealth",
    "wall_clock",
]
