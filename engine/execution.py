"""ExecutionEngine: every proposal and exit passes here, between the risk engine and the routers.

* ``submit``: the risk engine is asked first (a tripped kill switch or a cooldown blocks every new
  entry, from any source, with its reason); then the router of the proposal's venue plans, sizes
  and places it.
* Positions and closed trades come from the one position book (:mod:`engine.book`), a function
  of the order journal: each router tells its listeners of every event it journals, and the book
  catches up with the journal. A closed trade is booked once, by the :class:`Bookkeeper`: the
  wallet manager, the risk engine and ``trades.jsonl``; the strategies and the UI hear of it
  through ``on_closed``. ``kobe trade`` and ``kobe cancel`` keep the same book.
* ``close_position`` (the cockpit's ``x``, a strategy's exit, the kill switch's flatten) cancels
  the exits resting on the exchange and sells at market. ``flatten`` does that for every position
  Kobe opened and cancels its open entries; it never touches anything Kobe did not open.
* Exchange errors become alerts (``on_alert``), never crashes.

``positions.json`` is the book's cache; the order journal is the truth.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from engine.book import PositionBook
from engine.bookkeeper import Bookkeeper, WalletSink
from engine.exchange.base import ExchangeError, Order, OrderNotFound, Side
from engine.journal import OrderEvent
from engine.position import UNPROTECTED, Position, is_live, protection
from engine.proposal import Proposal, Refused, Source
from engine.risk import RiskEngine
from engine.router import OrderPlan, Placement, Router, entry_of
from engine.trades import ClosedTrade, TradeStore
from engine.watchdog import ExitPlan, WatchItem, WatchState

log = logging.getLogger(__name__)


class ExecutionEngine:
    def __init__(
        self,
        routers: dict[str, Router],
        risk: RiskEngine,
        trades: TradeStore,
        *,
        data_dir: Path,
        clock: Callable[[], datetime],
        venue_of_wallet: Callable[[str], str],
        wallets: WalletSink | None = None,
        on_closed: Callable[[ClosedTrade], None] | None = None,
        on_alert: Callable[[str, str], None] | None = None,
        mode: str | None = None,
        on_dust: Callable[[str], None] | None = None,
    ) -> None:
        self.routers = routers
        self.risk = risk
        self.trades = trades
        self.wallets = wallets
        self.clock = clock
        self.venue_of_wallet = venue_of_wallet
        self.on_closed = on_closed
        self.on_alert = on_alert
        self.on_dust = on_dust  # told of a position that became dust (the strategies' slots)
        self._lock = threading.RLock()
        mode = mode or next((r.mode for name, r in routers.items() if name != "dex"), "paper")
        self.book = PositionBook(Path(data_dir), mode)
        self.keeper = Bookkeeper(
            self.book,
            trades=trades,
            risk=risk,
            wallets=wallets,
            on_closed=on_closed,
            on_alert=on_alert,
        )
        self.keeper.catch_up()  # what the journal gained while no engine ran (kobe trade, …)
        for venue, router in routers.items():
            router.size_factor = risk.size_factor
            router.listeners.append(self._listener(venue))
            router.committed = self.book.committed
            router.dust_committed = self.book.dust_committed
            router.held_by_positions = functools.partial(self.book.unlocked, router.exchange_name)
            router.foldable_dust = functools.partial(self.book.foldable_dust, router.exchange_name)
            router.follow_book(self.book.working)
            router.on_alert = lambda severity, _code, message: self._alert(severity, message)
            router.on_dust = self._on_dust
        self._unprotected: set[str] = set()

    # -- reading ------------------------------------------------------------------------------

    def positions(self) -> list[Position]:
        with self._lock:
            return self.book.positions()

    def pending(self) -> list[Position]:
        with self._lock:
            return self.book.pending()

    # -- entries ------------------------------------------------------------------------------

    def _router_for(self, proposal: Proposal) -> Router:
        try:
            venue = self.venue_of_wallet(proposal.wallet)
        except KeyError:
            raise Refused([f"unknown wallet {proposal.wallet}"]) from None
        router = self.routers.get(venue)
        if router is None:
            raise Refused([f"wallet {proposal.wallet} trades on {venue}, which is not running"])
        return router

    def plan(self, proposal: Proposal) -> OrderPlan:
        """What would be sent (nothing is): risk first, then the venue's router sizes it."""
        block = self.risk.entry_block(self.clock())
        if block is not None:
            raise Refused([block])
        return self._router_for(proposal).plan(proposal)

    def submit(self, proposal: Proposal) -> Placement:
        """Risk first, then the venue's router. Raises Refused with the reasons."""
        plan = self.plan(proposal)
        placement = self._router_for(proposal).execute(plan)
        with self._lock:
            self.book.annotate(
                placement.entry.client_id,
                strategy=proposal.strategy or "manual",
                take_profit=proposal.take_profit,
                stop_loss=proposal.stop_loss,
            )
        return placement

    # -- the journal's events -----------------------------------------------------------------

    def _listener(self, venue: str) -> Callable[[OrderEvent], None]:
        def listen(event: OrderEvent) -> None:
            try:
                self._on_event(venue, event)
            except Exception as exc:  # a bookkeeping error must not break the order path
                log.exception("execution: event %s %s", event.event, event.client_id)
                self._alert("error", f"bookkeeping failed for {event.client_id}: {exc}")

        return listen

    def _on_event(self, venue: str, e: OrderEvent) -> None:
        with self._lock:
            self.keeper.catch_up()

    # -- exits --------------------------------------------------------------------------------

    def close_position(self, entry_cid: str, reason: str) -> Order | None:
        """Cancel its resting exits and sell at market. None when there is nothing to close."""
        with self._lock:
            pos = self.book.get(entry_cid)
        if pos is None or pos.qty <= 0 or pos.dust:  # dust: below one step, nothing to sell
            return None
        router = self.routers[pos.venue]
        for order in router.exchange.fetch_open_orders(pos.symbol):
            if order.client_id == entry_cid:  # a partly filled entry stops buying first
                with contextlib.suppress(OrderNotFound):
                    router.cancel(order.id, _source(pos))
        for order in router.exchange.fetch_open_orders(pos.symbol):
            if entry_of(order.client_id) == entry_cid:
                with contextlib.suppress(OrderNotFound):  # an OCO sibling goes with its leg
                    router.cancel(order.id, _source(pos))
        router.cancel_armed_legs(entry_cid, pos.symbol, _source(pos))  # unlisted on OKX
        with self._lock:
            pos = self.book.get(entry_cid)  # a leg that fired as it was cancelled sold it
        router.watchdog.remove(entry_cid)
        if pos is None or pos.qty <= 0:
            return None
        qty = router.exchange.amount_to_precision(pos.symbol, pos.qty + self._dust_for(pos))
        source = _source(pos).value
        try:
            return router.send_exit(
                entry_cid, "cx", pos.symbol, pos.side.opposite, qty, pos.wallet, source, reason
            )
        except ExchangeError as exc:
            # its exchange exits are cancelled: the local watchdog guards it from now on
            router.guard_locally(
                WatchItem(
                    entry_client_id=entry_cid,
                    entry_id="",
                    symbol=pos.symbol,
                    side=pos.side,
                    qty=qty,
                    take_profit=pos.take_profit,
                    stop_loss=pos.stop_loss,
                    wallet=pos.wallet,
                    source=source,
                    exits=ExitPlan.WATCHDOG,
                    state=WatchState.WATCHING,
                )
            )
            self._alert(
                "critical", f"close {entry_cid} failed ({exc}): its TP/SL are now watched locally"
            )
            raise

    def _dust_for(self, pos: Position) -> Decimal:
        """The wallet's dust a close of buy ``pos`` sells with it (see
        :meth:`PositionBook.foldable_dust`), as far as the account still has it free: dust the
        operator moved away must not make the close fail."""
        dust = self._foldable(pos)
        if dust <= 0:
            return dust
        exchange = self.routers[pos.venue].exchange
        try:
            free = exchange.get_balance(exchange.market(pos.symbol).base)
        except ExchangeError:  # its exits are cancelled already: the close goes with its own
            return Decimal(0)
        return max(Decimal(0), min(dust, free - pos.qty))

    def _foldable(self, pos: Position) -> Decimal:
        """The wallet's dust a full exit of ``pos`` sells with it (a buy's; see
        :meth:`PositionBook.foldable_dust`)."""
        if pos.side is not Side.BUY:
            return Decimal(0)
        with self._lock:
            return self.book.foldable_dust(pos.venue, pos.wallet, pos.symbol, pos.entry_client_id)

    def replace_exits(
        self,
        entry_cid: str,
        take_profit: Decimal | None,
        stop_loss: Decimal | None,
        source: Source,
    ) -> str:
        """New TP/SL for a held position, never leaving it bare (see ``Router.replace_exits``);
        a leg not given keeps its price. Returns what covers it now."""
        with self._lock:
            pos = self.book.get(entry_cid)
        if pos is None or pos.qty <= 0 or pos.dust:
            raise OrderNotFound(f"position {entry_cid}: not open")
        tp = take_profit if take_profit is not None else pos.take_profit
        sl = stop_loss if stop_loss is not None else pos.stop_loss
        router = self.routers[pos.venue]
        refused = False
        try:
            # sized as its first exits were: with the dust they would have sold (the sell is
            # capped by what the account has free once the old exits are cancelled)
            router.replace_exits(entry_cid, pos.qty + self._foldable(pos), tp, sl, source)
        except Refused:
            refused = True  # before anything moved: the position keeps the exits it had
            raise
        finally:
            if not refused:  # placed, or covered by the watchdog with the new prices
                with self._lock:
                    self.book.annotate(
                        entry_cid, strategy=pos.strategy, take_profit=tp, stop_loss=sl
                    )
        held = self.book.get(entry_cid)
        return self.protection(held) if held is not None else "closed"

    def flatten(self, reason: str) -> list[str]:
        """Cancel Kobe's open entries and close Kobe's positions at market. Never others'."""
        done: list[str] = []
        with self._lock:
            working = [p for p in self.book.state.positions.values() if p.pending]
        for pos in working:
            router = self.routers[pos.venue]
            for order in router.exchange.fetch_open_orders(pos.symbol):
                if order.client_id == pos.entry_client_id:
                    try:
                        router.cancel(order.id, _source(pos))
                        done.append(f"cancelled entry {order.client_id}")
                    except ExchangeError as exc:
                        self._alert("error", f"flatten: cancel {order.client_id}: {exc}")
        for pos in self.positions():
            try:
                if self.close_position(pos.entry_client_id, reason) is not None:
                    done.append(f"closed {pos.entry_client_id}")
            except ExchangeError as exc:
                self._alert("error", f"flatten: close {pos.entry_client_id}: {exc}")
        return done

    def poll(
        self, prices: dict[str, dict[str, Decimal]] | None = None, *, paused: bool = False
    ) -> None:
        """Each router: pending entries, local watchdog exits. Errors become alerts. Then the
        protection of every position is checked. ``paused`` (the engine's), or the kill switch
        tripped when the sweep comes (also by a close booked in this poll): no new dust sweep
        is sent, a sale the trader did not ask for while trading is stopped (one working is
        still followed)."""
        for venue, router in self.routers.items():
            try:
                self._guard_lone_take_profits(venue, router)
                router.poll((prices or {}).get(venue))
            except ExchangeError as exc:
                self._alert("warning", f"{venue}: {exc}")
        self._sweep_dust(prices or {}, not paused and not self.risk.kill_switch().tripped)
        self.check_protection()

    def _sweep_dust(self, prices: dict[str, dict[str, Decimal]], sweep: bool = True) -> None:
        """A wallet's dust that nothing else of the wallet in that symbol can sell now (no
        position, no working entry or exit: :meth:`PositionBook.foldable_dust`) goes to its
        router's dust sweep, which sells it once the venue takes it on its own; a sweep still
        working is followed there instead (:meth:`Router.sweep_dust`)."""
        with self._lock:
            lines = [
                (p, self.book.sweeping(p.venue, p.wallet, p.symbol))
                for p in self.book.dust()
                if p.side is Side.BUY and p.venue in self.routers
            ]
        for line, working in lines:
            with self._lock:
                qty = self.book.foldable_dust(line.venue, line.wallet, line.symbol, "")
            if working is None and (qty <= 0 or not sweep):
                continue
            price = prices.get(line.venue, {}).get(line.symbol)
            try:
                self.routers[line.venue].sweep_dust(line.wallet, line.symbol, qty, working, price)
            except ExchangeError as exc:
                log.warning("dust sweep %s %s: %s", line.wallet, line.symbol, exc)

    def _guard_lone_take_profits(self, venue: str, router: Router) -> None:
        """A position opened with a stop whose take-profit still rests while its stop leg is
        gone, ended by the exchange (Binance ends an OCO's other leg at the take-profit's first
        part fill): nothing would sell the rest at the stop. Its router cancels the take-profit
        and the local watchdog guards the rest (:meth:`Router.guard_lone_take_profit`)."""
        for pos in self.positions():
            legs = {x.client_id[-2:]: x.status for x in pos.exits}
            if (
                pos.venue == venue
                and pos.stop_loss is not None
                and is_live(legs.get("tp", ""))
                and legs.get("sl") in ("canceled", "expired")
                and router.watchdog.get(pos.entry_client_id) is None
            ):
                router.guard_lone_take_profit(
                    WatchItem(
                        entry_client_id=pos.entry_client_id, entry_id="", symbol=pos.symbol,
                        side=pos.side, qty=pos.qty, take_profit=pos.take_profit,
                        stop_loss=pos.stop_loss, wallet=pos.wallet, source=pos.source,
                        exits=ExitPlan.WATCHDOG, state=WatchState.WATCHING,
                    )
                )  # fmt: skip

    # -- protection ---------------------------------------------------------------------------

    def protection(self, pos: Position) -> str:
        router = self.routers.get(pos.venue)
        if router is None:
            return UNPROTECTED
        attached = router.exits_policy != "watchdog" and (
            router.exchange.capabilities(pos.symbol).attached_tp_sl
        )
        watch = router.watchdog.get(pos.entry_client_id)
        return protection(pos, watch, attached=attached, engine_running=True)

    def unrealized(self, marks: dict[str, Decimal]) -> tuple[Decimal, dict[str, Decimal]]:
        """The open positions' unrealized PnL at ``marks`` (symbol -> last price): in all and
        per wallet. What a position holds with no mark counts at its entry price (no gain is
        guessed), its fees and what its exits sold still count. One whose exits sold all it
        held counts until it is booked (an exit still selling the dust it was sized with, its
        entry still working): its PnL is in no ledger before that. Dust counts at the mark where
        there is one (its gain or loss since it was bought), else at its cost."""
        total, by_wallet = Decimal(0), dict[str, Decimal]()
        with self._lock:
            sold = [
                p
                for p in self.book.state.positions.values()
                if p.filled > 0 and p.qty <= 0 and p.exit_qty > 0 and not p.dust
            ]
            dust = [p for p in self.book.dust() if p.symbol in marks]
            for pos in self.book.positions() + sold + dust:
                mark = marks.get(pos.symbol)
                if mark is None:  # (none held: no price needed)
                    mark = pos.entry_price if pos.qty > 0 else Decimal(0)
                value = pos.unrealized(mark) if mark is not None else Decimal(0)
                total += value
                by_wallet[pos.wallet] = by_wallet.get(pos.wallet, Decimal(0)) + value
        return total, by_wallet

    def unprotected(self) -> list[Position]:
        """Positions opened with a TP or SL that nothing covers now."""
        with self._lock:
            return [p for p in self.book.positions() if self.protection(p) == UNPROTECTED]

    def check_protection(self) -> None:
        """One critical alert when a position loses its cover, one note when it has it again.
        One too small to sell is dust instead."""
        now = {p.entry_client_id: p for p in self.unprotected() if not self._settle_dust(p)}
        for cid, pos in now.items():
            if cid not in self._unprotected:
                exits = ", ".join(f"{x.client_id[-2:]} {x.status}" for x in pos.exits) or "none"
                self._alert(
                    "critical",
                    f"position {pos.symbol} {pos.qty} ({pos.wallet}, entry {cid}) is "
                    f"UNPROTECTED: no live exit on the exchange and no watchdog item "
                    f"(exits: {exits}); set new exits (kobe exits) or close it",
                )
        for cid in self._unprotected - set(now):
            pos_now = self.book.get(cid)
            if pos_now is not None and pos_now.qty > 0:
                self._alert("info", f"position {pos_now.symbol} ({cid}) is protected again")
        self._unprotected = set(now)

    def _settle_dust(self, pos: Position) -> bool:
        router = self.routers.get(pos.venue)
        return router is not None and router.settle_dust(
            pos.entry_client_id, pos.symbol, pos.wallet, pos.qty
        )

    def _on_dust(self, entry_cid: str) -> None:
        """The one path for dust: the book flags it, then whoever holds a slot for it hears."""
        with self._lock:
            self.book.mark_dust(entry_cid)
        if self.on_dust is not None:
            self.on_dust(entry_cid)

    # -- helpers ------------------------------------------------------------------------------

    def _alert(self, severity: str, message: str) -> None:
        log.warning("%s", message)
        if self.on_alert is not None:
            self.on_alert(severity, message)


def _source(pos: Position) -> Source:
    return Source.STRATEGY if pos.strategy != "manual" else Source.COCKPIT


__all__ = ["ExecutionEngine", "Position", "entry_of"]
