"""RouterView: a venue and the order journal, read (no sending)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from engine.audit import AuditLog
from engine.exchange.base import (
    AttachedRef,
    ExchangeError,
    ExchangeReader,
    Order,
    OrderStatus,
    OrderType,
    Side,
)
from engine.journal import OrderEvent, OrderJournal, in_mode
from engine.router.fee_rate import fee_rate, third_asset
from engine.router.orders import (
    EXIT_SUFFIXES,
    KEEP_FINISHED,
    RECONCILE_TAIL,
    ZERO,
    ReconcileReport,
    entry_of,
    fmt_qty,
    is_open_status,
    log_alert,
)
from engine.router.pending import (
    UNSETTLED,
    Undetermined,
    beyond_the_tail,
    cannot_tell,
    not_found_yet,
)
from engine.watchdog import Watchdog, WatchItem, WatchState


class RouterView:
    """A venue and the order journal, read: what is open, what happened, what would be done.

    It holds an :class:`ExchangeReader` and no sending method: read-only commands (``kobe orders``)
    work through this, and say what reconciliation *would* send (:meth:`review`) instead of
    sending it. It may journal what it reads (an outcome found, a fill). :class:`Router` adds the
    sending.
    """

    def __init__(
        self,
        exchange: ExchangeReader,
        journal: OrderJournal,
        *,
        data_dir: Path,
        mode: str,
        exchange_name: str,
        clock: Callable[[], datetime],
        audit: AuditLog | None = None,
        watchdog_dir: Path | None = None,
    ) -> None:
        self.exchange = exchange
        self.journal = journal
        self.data_dir = Path(data_dir)
        self.mode = mode
        self.exchange_name = exchange_name
        self.clock = clock
        self.audit = audit
        self.watchdog = Watchdog(watchdog_dir or self.data_dir, mode)
        self._last: dict[str, OrderEvent] | None = None  # last event per client id
        self._filled: dict[str, Decimal] = {}  # the most journaled as filled, per client id
        self._seen_open: set[str] = set()  # client ids sync just saw open; poll need not ask
        self.stops_listed: list[Order] = []  # the stop orders open as the last sync listed them
        self.listeners: list[Callable[[OrderEvent], None]] = []  # told of every journaled event
        # told of what needs the operator (severity, code, message); the engine makes alerts
        self.on_alert: Callable[[str, str, str], None] = log_alert
        self._fee_rates: dict[str, Decimal | None] = {}  # client id -> its third-asset fee's rate
        # told of each buy entry's fill journaled: its wallet is checked (engine.router.spend)
        self.on_buy_fill: Callable[[OrderEvent], None] = lambda event: None
        self.undetermined = Undetermined()  # entries whose last look-up could not tell
        # the last event of each order of a position the book holds (it reads the whole
        # journal): those older than the tail read here are followed all the same
        self.book_working: Callable[[], Iterable[OrderEvent]] = list
        if self.watchdog.unmarked():  # items armed before they carried their mode
            self.watchdog.adopt(self.journal_state())

    def journal_state(self) -> dict[str, OrderEvent]:
        """The last event per client id: read from the journal's tail once, then kept current."""
        if self._last is None:
            self._last = {}
            for event in self.journal.tail(RECONCILE_TAIL):
                # a journal may serve several venues, and modes: only this session's count
                if event.exchange == self.exchange_name and in_mode(event, self.mode):
                    self._last[event.client_id] = event
                    if event.event in ("fill", "partial_fill"):
                        self._filled[event.client_id] = event.filled
                    elif event.event == "intent":  # a re-sent exit: its fills start over
                        self._filled.pop(event.client_id, None)
            self.follow_book(self.book_working)
        return self._last

    def follow_book(self, working: Callable[[], Iterable[OrderEvent]]) -> None:
        """The orders of the book's positions, in :meth:`journal_state` where its tail lacks
        them (:func:`~engine.router.pending.beyond_the_tail`)."""
        self.book_working = working
        if self._last is not None:
            beyond_the_tail(self._last, self._filled, working(), self.exchange_name, self.mode)

    def sync(self) -> int:
        """Journal what happened on the exchange to orders the journal has as open.

        The paper venues report fills as events; a real exchange is asked: an order Kobe has as
        open that is no longer in the open orders is looked up and its fill or cancel journaled.
        Returns how many orders changed.
        """
        tracked = [(cid, e) for cid, e in self.journal_state().items() if self._unsettled(cid, e)]
        # one open-orders call per symbol Kobe has orders on: the cheap form on every exchange
        # (Binance weighs a call without a symbol 80, with one 6); none at all when nothing is open
        open_now = {
            o.client_id: o
            for symbol in sorted({event.symbol for _, event in tracked})
            for o in self.exchange.fetch_open_orders(symbol)
        }
        # TP/SL the exchange holds for an entry (Bybit, OKX) are read by the entry's ids
        attached = {leg.client_id: leg for leg in self._held_legs(tracked)}
        open_now.update({cid: leg for cid, leg in attached.items() if leg.status.is_open})
        self._seen_open = set(open_now)
        self.stops_listed = [o for o in open_now.values() if o.stop_price is not None]
        changed = 0
        for cid, event in tracked:
            current = open_now.get(cid) or attached.get(cid)
            if current is None and self._attached_leg(cid, event.symbol):
                continue  # not found by the entry's ids this time: asked again next tick
            if current is None:
                current = self.exchange.fetch_order_by_client_id(cid, event.symbol)
                if current is None:
                    continue
            if (
                current.filled <= self._filled.get(cid, ZERO)
                and current.status.value == event.status
                and current.status.is_open
            ):
                continue
            self._journal_fill(current, event.wallet, event.source)  # once: by its cumulative
            now = self.journal_state().get(cid)
            if current.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED) and (
                now is None or now.event != "cancel"  # its end journaled with its fill
            ):
                self._journal_order(
                    "cancel", current, event.wallet, event.source, "on the exchange"
                )
            changed += 1
        return changed

    def _unsettled(self, cid: str, event: OrderEvent) -> bool:
        """Whether ``cid``'s last event leaves it to be followed on the exchange: open (a status
        Kobe has no word for, ``unknown``, is never taken for finished), or ended without its
        end in the journal: a kill -9 between an ``ack`` that said filled (or cancelled) and
        the ``fill`` (or ``cancel``) line after it, or between a part fill and the order's end."""
        if event.event not in ("ack", "partial_fill"):
            return False
        status = OrderStatus(event.status)
        if status is OrderStatus.UNKNOWN or status.is_open:
            return True
        if status is OrderStatus.FILLED:
            return event.filled > self._filled.get(cid, ZERO)
        return status in (OrderStatus.CANCELED, OrderStatus.EXPIRED)

    def _attached_leg(self, cid: str, symbol: str) -> bool:
        """A TP/SL leg the exchange made from an entry's attached prices: on a venue that
        attaches them, Kobe never sends a ``tp``/``sl`` leg itself."""
        return cid[-2:] in ("tp", "sl") and self.exchange.capabilities(symbol).attached_tp_sl

    def _held_legs(self, tracked: Iterable[tuple[str, OrderEvent]]) -> list[Order]:
        """The exchange's current view of the attached TP/SL among ``tracked`` (client id and
        last event of orders Kobe has as open): one read per symbol, for all its entries."""
        by_symbol: dict[str, dict[str, AttachedRef]] = {}
        for cid, event in tracked:
            entry_cid = entry_of(cid) or ""
            if self._attached_leg(cid, event.symbol) and (ref := self._attached_ref(entry_cid)):
                by_symbol.setdefault(event.symbol, {})[entry_cid] = ref
        legs: list[Order] = []
        for symbol, refs in sorted(by_symbol.items()):
            found = self.exchange.fetch_attached_exits_of(symbol, list(refs.values()))
            legs += [leg for cid in sorted(found) for leg in found[cid]]
        return legs

    def _attached_ref(self, entry_cid: str) -> AttachedRef | None:
        """The entry's ids, and its legs' exchange ids as journaled (once confirmed)."""
        state = self.journal_state()
        entry = state.get(entry_cid)
        if entry is None or not entry.exchange_id:
            return None
        legs = {
            role: str(leg.exchange_id)
            for role in ("tp", "sl")
            if (leg := state.get(f"{entry_cid}{role}")) is not None and leg.exchange_id
        }
        return AttachedRef(entry.exchange_id, entry_cid, legs)

    def _attached_legs(self, symbol: str, entry_cid: str) -> list[Order]:
        ref = self._attached_ref(entry_cid)
        if ref is None:
            return []
        return self.exchange.fetch_attached_exits(symbol, ref.entry_id, entry_cid, ref.leg_ids)

    def _settle_unknown(self, report: ReconcileReport) -> list[tuple[str, Order | None]]:
        """Intents whose outcome is unknown: looked up by client id, their real state journaled.

        Returns each settled client id with the order found (None: never reached the exchange);
        an entry the look-up cannot tell stays unknown, holding new entries on its symbol."""
        settled: list[tuple[str, Order | None]] = []
        for cid, event in [(c, e) for c, e in self.journal_state().items() if e.event in UNSETTLED]:
            try:
                found = self._look_up(cid, event, "at start-up")
            except ExchangeError as exc:
                if not cannot_tell(cid, exc):
                    raise  # an exit's (looked up again before any send for it), or keys refused
                said = self.undetermined.note(cid, event, self.clock(), exc, self.exchange)
                self.on_alert("error", "outcome_unknown", said)
                continue
            settled.append((cid, found))
            report.resolved.append(cid)
        return settled

    def _look_up(self, cid: str, event: OrderEvent, when: str) -> Order | None:
        """An order whose send was not answered, looked up by client id: what is found is
        journaled (``ack`` and its fill), or ``reject`` when the exchange never had it."""
        found = self.exchange.fetch_order_by_client_id(cid, event.symbol)
        if found is None and (early := not_found_yet(cid, event, self.exchange, self.clock())):
            raise early  # an entry whose request may still be placed: not "never placed" yet
        if found is None:
            self._journal(
                "reject", cid, None, event.symbol, Side(event.side), OrderType(event.type),
                event.qty, event.price, status="rejected", wallet=event.wallet,
                source=event.source, reason=f"not on the exchange: never sent (looked up {when})",
            )  # fmt: skip
        else:
            self._journal_order("ack", found, event.wallet, event.source, f"found {when}")
            self._journal_fill(found, event.wallet, event.source)
        return found

    def _external(self) -> list[Order]:
        """Open orders on the exchange that are not Kobe's (not in the journal nor watched)."""
        known = set(self.journal_state()) | {i.entry_client_id for i in self.watchdog.items()}
        external = []
        for order in self.exchange.fetch_open_orders():
            base_id = entry_of(order.client_id) or ""
            if order.client_id not in known and base_id not in known:
                external.append(order)
        return external

    def review(self) -> ReconcileReport:
        """Reconciliation without sending: outcomes settled in the journal, external orders
        listed, and what a sending session would do (``report.would``), sent never."""
        report = ReconcileReport()
        self._settle_unknown(report)
        self.sync()  # fills and cancels that happened while no engine ran
        report.external = self._external()
        for item in self.watchdog.items():
            try:
                what = self._would(item)
            except ExchangeError as exc:
                what = f"{item.symbol} {item.entry_client_id}: could not be checked ({exc})"
            if what:
                report.would.append(what)
        return report

    def _would(self, item: WatchItem) -> str | None:
        """What :meth:`Router.poll` would send for ``item`` now, in words; None: nothing."""
        if item.state is WatchState.PENDING_ENTRY:
            entry = (
                self.exchange.fetch_order(item.entry_id, item.symbol)
                if item.entry_id
                else self.exchange.fetch_order_by_client_id(item.entry_client_id, item.symbol)
            )
            if entry is None or entry.filled <= 0 or entry.status.is_open:
                return None
            if self._exits_live(item.entry_client_id, item.stop_loss):
                return None
            return (
                f"entry {item.entry_client_id} ({item.side.value} {fmt_qty(entry.filled)} "
                f"{item.symbol}) filled: its exits ({item.exits.value}) would be placed"
            )
        if item.state is WatchState.WATCHING:
            price = self.exchange.fetch_ticker(item.symbol).last
            leg = item.touched(price)
            if leg is not None and not self._exits_live(item.entry_client_id, item.stop_loss):
                return (
                    f"{leg.replace('_', '-')} of {item.entry_client_id} touched at "
                    f"{fmt_qty(price)}: the watchdog would {item.side.opposite.value} "
                    f"{fmt_qty(item.qty)} {item.symbol} at market"
                )
        return None

    def open_orders(self) -> list[tuple[Order, str, str]]:
        """Open orders with the wallet and source the journal knows (``external`` otherwise)."""
        last = self.journal_state()
        held = [
            (cid, e)
            for cid, e in last.items()
            if e.event in ("ack", "partial_fill") and is_open_status(e.status)
        ]
        out = []
        orders = self.exchange.fetch_open_orders()
        for order in orders + [leg for leg in self._held_legs(held) if leg.status.is_open]:
            event = last.get(order.client_id)
            if event is None:
                out.append((order, "", "external"))
            else:
                out.append((order, event.wallet, event.source))
        return out

    def on_order_update(self, kind: str, order: Order, reason: str = "") -> None:
        """Journal a fill or cancel that happened on the venue (e.g. a resting order filled)."""
        event = self.journal_state().get(order.client_id)
        wallet = event.wallet if event else ""
        source = event.source if event else "external"
        self._journal_order(kind, order, wallet, source, reason)

    def net_qty(self, symbol: str, entry: Order, dust: Decimal = ZERO) -> Decimal:
        """What a filled entry left in hand: a buy's fee paid in the base asset is not ours;
        with a buy's ``dust`` (Kobe's too) added, rounded down to the step."""
        if entry.side is not Side.BUY:
            return entry.filled
        base_fee = entry.fee if entry.fee_asset == self.exchange.market(symbol).base else ZERO
        if not base_fee and not dust:
            return entry.filled
        return self.exchange.amount_to_precision(symbol, entry.filled - base_fee + dust)

    def _journal_attached(self, symbol: str, entry_cid: str, why: str) -> tuple[Order, ...]:
        """The TP/SL the exchange holds for ``entry_cid`` (attached to it), read by the entry's
        ids and journaled under Kobe's ids where they changed: armed (``ack``), fired (their
        fill, booked like any exit) or removed with their sibling (``cancel``)."""
        entry = self.journal_state().get(entry_cid)
        if entry is None:
            return ()
        legs = tuple(self._attached_legs(symbol, entry_cid))
        for leg in legs:
            last = self.journal_state().get(leg.client_id)
            if last is None:
                self._journal_order(
                    "ack", leg, entry.wallet, entry.source, f"attached exit, {why} on the exchange"
                )
            elif leg.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED) and is_open_status(
                last.status
            ):
                self._journal_order("cancel", leg, entry.wallet, entry.source, "its sibling fired")
            if leg.filled > (last.filled if last is not None else 0):
                self._journal_fill(leg, entry.wallet, entry.source)
        return legs

    def _exits_live(self, entry_cid: str, stop_loss: Decimal | None = None) -> bool:
        """True when the exchange has confirmed an exit of ``entry_cid``: one resting (acked,
        open), partly filled, or filled. An intent alone proves nothing: the send may have
        failed, so it never counts as cover. With the position's ``stop_loss``, a take-profit
        resting alone (its stop refused, or ended by the exchange when the take-profit filled in
        part) is no cover either: the stop is the watchdog's until the exchange holds one."""
        state = self.journal_state()
        for suffix in EXIT_SUFFIXES:
            event = state.get(f"{entry_cid}{suffix}")
            if event is None:
                continue
            if event.event == "fill":
                return True
            if event.event in ("ack", "partial_fill") and is_open_status(event.status):
                if suffix == "tp" and stop_loss is not None:  # selling or not: its stop may
                    continue  # be refused, or ended by the exchange at a part fill (an OCO's)
                return True  # a part filled counts while the rest still works, not once it ended
        return False

    # -----------------------------------------------------------------------------------------
    # Journal helpers

    def _journal(
        self,
        kind: str,
        cid: str,
        exchange_id: str | None,
        symbol: str,
        side: Side,
        type_: OrderType,
        qty: Decimal,
        price: Decimal | None,
        *,
        status: str,
        wallet: str,
        source: str,
        reason: str,
        filled: Decimal = ZERO,
        avg_price: Decimal | None = None,
        fee: Decimal = ZERO,
        fee_asset: str = "",
        strategy: str = "",
        ref: str = "",
        fee_rate: Decimal | None = None,
    ) -> None:
        event = OrderEvent(
            ts=self.clock(),
            mode=self.mode,
            exchange=self.exchange_name,
            event=kind,
            client_id=cid,
            exchange_id=exchange_id,
            symbol=symbol,
            side=side.value,
            type=type_.value,
            qty=qty,
            price=price,
            filled=filled,
            avg_price=avg_price,
            fee=fee,
            fee_asset=fee_asset,
            status=status,
            wallet=wallet,
            source=source,
            reason=reason,
            strategy=strategy,
            ref=ref,
            fee_rate=fee_rate,
        )
        self.journal.append(event)
        state = self.journal_state()
        if kind in ("fill", "partial_fill"):
            self._filled[cid] = max(filled, self._filled.get(cid, ZERO))
        elif kind == "intent":  # a new order under this id (a re-sent exit): fills start over
            self._filled.pop(cid, None)
            self._fee_rates.pop(cid, None)
        state.pop(cid, None)
        state[cid] = event  # newest last: the oldest finished orders are forgotten first
        if len(state) > KEEP_FINISHED * 2:
            self._forget_finished(state)
        for listener in self.listeners:
            listener(event)
        if kind in ("fill", "partial_fill") and side is Side.BUY and entry_of(cid) is None:
            self.on_buy_fill(event)  # once per fill, however it was learned

    def _forget_finished(self, state: dict[str, OrderEvent]) -> None:
        """Bound the in-memory index: open and unknown orders stay; old finished ones go."""
        finished = [
            cid
            for cid, e in state.items()
            if e.event in ("fill", "cancel", "reject") and not OrderStatus(e.status).is_open
        ]
        for cid in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del state[cid]
            self._filled.pop(cid, None)
            self._fee_rates.pop(cid, None)

    def _journal_order(self, kind: str, o: Order, wallet: str, source: str, reason: str) -> None:
        self._journal(
            kind,
            o.client_id,
            o.id,
            o.symbol,
            o.side,
            o.type,
            o.qty,
            o.price if o.price is not None else o.stop_price,
            status=o.status.value,
            wallet=wallet,
            source=source,
            reason=reason,
            filled=o.filled,
            avg_price=o.avg_price,
            fee=o.fee,
            fee_asset=o.fee_asset,
            fee_rate=self._fee_rate(o),
        )

    def _fee_rate(self, o: Order) -> Decimal | None:
        """A third-asset fee's rate (:func:`fee_rate`), read once per order."""
        if not third_asset(o):
            return None
        if o.client_id not in self._fee_rates:
            self._fee_rates[o.client_id] = fee_rate(self.exchange, o, self.on_alert)
        return self._fee_rates[o.client_id]

    def _journal_fill(self, o: Order, wallet: str, source: str, reason: str = "") -> None:
        """Journal ``o``'s fill once: a fill already journaled (same cumulative quantity, found
        again by a look-up, a sync or a restart) is not written twice."""
        before = self.journal_state().get(o.client_id)
        if o.filled <= 0 or o.filled <= self._filled.get(o.client_id, ZERO):
            return
        kind = "fill" if o.filled >= o.qty else "partial_fill"
        self._journal_order(kind, o, wallet, source, reason)
        ended = o.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.FILLED)
        if kind == "partial_fill" and ended and (before is None or before.event != "cancel"):
            # it ended with a part filled (a thin book; Bybit's PartiallyFilledCanceled): its
            # end is journaled too, or the book would wait for the rest forever
            self._journal_order(
                "cancel", o, wallet, source,
                f"ended with {fmt_qty(o.filled)} of {fmt_qty(o.qty)} filled ({o.status.value})",
            )  # fmt: skip
