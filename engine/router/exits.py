"""Sending an entry and putting its protective exits in place (OCO, attached, watchdog)."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from decimal import Decimal

from engine.exchange.base import (
    AuthenticationError,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    NotSupported,
    Order,
    OrderNotFound,
    OrderStatus,
    OrderType,
    Side,
)
from engine.money import floor_to_step
from engine.proposal import Refused, Source
from engine.risk import exits_in_order
from engine.router.orders import (
    EXIT_SUFFIXES,
    MAX_BACKOFF_S,
    OCO_FIRST_WAIT_S,
    OCO_TRIES,
    REFUSALS,
    LoneLegLive,
    OrderPlan,
    Placement,
    entry_of,
    is_open_status,
    log,
    lone_cancels,
    source_of,
)
from engine.router.planning import Planning
from engine.watchdog import ExitPlan, WatchItem, WatchState


class Exits(Planning):
    """An entry sent, and its exits placed, confirmed or replaced."""

    def execute(self, plan: OrderPlan) -> Placement:
        p = plan.proposal
        self.recheck(p)  # since the plan was shown: the kill switch, entries gone unknown
        cid = self.ids.next()
        while cid in self.journal_state():  # e.g. a simulated clock started again
            cid = self.ids.next()
        price = plan.entry_price if p.entry_type is OrderType.LIMIT else None
        self._journal_plan("intent", cid, plan, status="new", reason=p.reason)
        watch: WatchItem | None = None
        if plan.exits is not ExitPlan.NONE:
            # persisted before sending: a crash after the send can still resume the exits
            watch = WatchItem(
                entry_client_id=cid,
                entry_id="",
                symbol=p.symbol,
                side=p.side,
                qty=plan.qty,
                take_profit=p.take_profit,
                stop_loss=p.stop_loss,
                wallet=p.wallet,
                source=p.source.value,
                exits=plan.exits,
                state=WatchState.PENDING_ENTRY,
            )
            self.watchdog.add(watch)
        params: dict[str, object] = {"client_id": cid}
        if plan.exits is ExitPlan.ATTACHED:
            params["take_profit"] = p.take_profit
            params["stop_loss"] = p.stop_loss
        self._inflight[cid] = (p, plan)  # also what its fill was sized for (_buy_filled)
        try:
            order = self.exchange.create_order(
                p.symbol, p.side, p.entry_type, plan.qty, price, params
            )
        except (InvalidOrder, InsufficientFunds, AuthenticationError, NotSupported) as exc:
            self._journal_reject(cid, p, plan, str(exc))
            self.watchdog.remove(cid)
            self._audit_order(p, cid, None, f"rejected: {exc}")
            raise Refused([f"{self.exchange_name} refused the order: {exc}"]) from exc
        except ExchangeError as exc:
            if self.journal_state()[cid].event != "unknown":  # else the adapter's hook said it
                self._journal_plan(
                    "unknown", cid, plan, status="unknown", reason=f"outcome unknown: {exc}"
                )
            self._audit_order(p, cid, None, f"outcome unknown: {exc}")
            raise
        else:
            self._journal_order("ack", order, p.wallet, p.source.value, p.reason)
            self._journal_fill(order, p.wallet, p.source.value)
        finally:
            self._inflight.pop(cid, None)
        self._audit_order(p, cid, order.id, "placed")
        exits: tuple[Order, ...] = ()
        notes: list[str] = []
        overspent = self._overspent_said.pop(cid, None)
        if overspent is not None:
            notes.append(overspent)  # kobe trade prints it
        if watch is not None:
            recorded = self.watchdog.update(cid, entry_id=order.id)
            watch = recorded
            if order.status is OrderStatus.FILLED:
                held = self._full_exit(recorded, order)
                try:
                    exits, watch = self._place_exits(recorded, held)
                except REFUSALS as exc:
                    watch = self._fall_back_to_watchdog(recorded, held, exc)
                    again = watch.oco_retry_at is not None
                    notes.append(
                        f"ENTRY FILLED, EXCHANGE EXITS NOT PLACED ({exc}): the local watchdog "
                        "now guards TP/SL, only while `kobe run` or `kobe-tui` is running"
                        + ("; the running engine sends the OCO again with backoff" if again else "")
                    )
                except LoneLegLive as exc:  # its stop refused, its take-profit still armed
                    watch = self._watch_meanwhile(recorded, held)
                    notes.append(f"ENTRY FILLED, EXCHANGE EXITS NOT PLACED: {exc}")
                except ExchangeError as exc:  # they may exist: looked up, never sent twice
                    watch = self._watch_meanwhile(recorded, held)
                    notes.append(
                        f"ENTRY FILLED, EXITS' OUTCOME UNKNOWN ({exc}): they are looked up by "
                        "client id at the next poll (kobe run, the cockpit, kobe trade/cancel), "
                        "and placed if absent; the local watchdog guards TP/SL meanwhile, only "
                        "while `kobe run` or `kobe-tui` is running"
                    )
            listed = any(f"{cid}{leg}" in self.journal_state() for leg in ("tp", "sl"))
            if watch is not None and watch.exits is ExitPlan.ATTACHED and not listed:
                notes.append(
                    f"EXITS NOT CONFIRMED YET: {self.exchange_name} does not list the TP/SL "
                    "attached to the entry yet; the local watchdog guards it (only while `kobe "
                    "run` or `kobe-tui` is running) and looks them up again each tick"
                )
            if plan.exits is ExitPlan.WATCHDOG:
                notes.append(
                    "exits are watched locally: only while `kobe run` or `kobe-tui` is running"
                )
        return Placement(plan, order, exits, watch, tuple(notes))

    def _place_exits(
        self, item: WatchItem, qty: Decimal
    ) -> tuple[tuple[Order, ...], WatchItem | None]:
        """The entry filled (``qty`` in hand): put its exits in place. Returns the exit orders
        and the new item.

        Never twice: if the journal shows exits already sent for this entry (a crash came
        between the send and the bookkeeping), the item is dropped instead.
        """
        self._settle_exits(item.entry_client_id, item.symbol)
        if self._exits_live(item.entry_client_id, item.stop_loss):
            self.watchdog.remove(item.entry_client_id)
            return (), None
        return self._send_exits(item, qty)

    def _full_exit(self, item: WatchItem, entry: Order) -> Decimal:
        """What a full exit of a filled entry sells: what it left in hand plus, for a buy, its
        wallet's dust in that symbol (the part of a step a base-asset fee leaves on most
        trades): the dust of one trade is sold with the next, instead of gathering for good."""
        dust = self.foldable_dust(item.wallet, item.symbol, item.entry_client_id)
        return self.net_qty(item.symbol, entry, dust)  # a sell entry's exit buys: no dust

    def _watch_meanwhile(self, item: WatchItem, qty: Decimal) -> WatchItem:
        """The entry filled and placing its exits got no answer: the local watchdog guards
        ``qty`` until they are found or placed (each poll tries again, never a second send of
        one that reached the exchange), instead of waiting, unguarded, as if the entry had not
        filled."""
        return self.watchdog.update(item.entry_client_id, qty=qty, state=WatchState.WATCHING)

    def _settle_exits(self, entry_cid: str, symbol: str) -> None:
        """Exits whose send was not answered (``intent`` or ``unknown`` last) are looked up by
        client id and their real state journaled, before anything is sent again: an exit that
        reached the exchange is never sent twice."""
        state = self.journal_state()
        for suffix in EXIT_SUFFIXES:
            cid = f"{entry_cid}{suffix}"
            event = state.get(cid)
            if event is None or event.event not in ("intent", "unknown"):
                continue
            self._look_up(cid, event, "before sending again")

    def _send_exits(
        self, item: WatchItem, qty: Decimal
    ) -> tuple[tuple[Order, ...], WatchItem | None]:
        """Put ``item``'s exits for ``qty`` in place: a native OCO, attached exits, or the local
        watchdog. The watchdog item is dropped only once the exchange has confirmed the OCO.

        A sell never asks for more than the account has free of the asset, rounded down to the
        step: what is left below one step stays in the book as dust."""
        if item.exits is ExitPlan.ATTACHED:  # the exchange holds them (and the asset they sell):
            # confirmed by reading them, and journaled
            legs = self._attached_cover(item, "confirmed")
            if legs:
                self.watchdog.remove(item.entry_client_id)
                return legs, None
            # not listed (yet): never taken for a refusal, since the exchange may hold them. The
            # watchdog guards the position meanwhile, and reads them again before it would sell
            self.on_alert(
                "warning",
                "exits_unconfirmed",
                f"entry {item.entry_client_id} ({item.symbol}) filled; {self.exchange_name} does "
                "not list the TP/SL attached to it yet: the local watchdog guards it (while an "
                "engine runs) and looks them up again each tick",
            )
            return (), self.watchdog.update(
                item.entry_client_id, qty=qty, state=WatchState.WATCHING
            )
        exit_side = item.side.opposite
        qty = self._sellable(item.symbol, exit_side, qty)
        if item.exits is ExitPlan.OCO:
            assert item.take_profit is not None and item.stop_loss is not None
            cid = item.entry_client_id
            for leg, leg_price in (("tp", item.take_profit), ("sl", item.stop_loss)):
                self._journal(
                    "intent",
                    f"{cid}{leg}",
                    None,
                    item.symbol,
                    exit_side,
                    OrderType.LIMIT_MAKER if leg == "tp" else OrderType.STOP_LOSS_LIMIT,
                    qty,
                    leg_price,
                    status="new",
                    wallet=item.wallet,
                    source=item.source,
                    reason=f"protective exit ({'take-profit' if leg == 'tp' else 'stop-loss'})",
                )
            audit = {
                "client_id": f"{cid}oco",
                "symbol": item.symbol,
                "side": exit_side.value,
                "type": "oco",
                "qty": qty,
                "wallet": item.wallet,
            }
            try:
                oco = self.exchange.create_oco(
                    item.symbol,
                    exit_side,
                    qty,
                    item.take_profit,
                    item.stop_loss,
                    {
                        "client_id": f"{cid}oco",
                        "tp_client_id": f"{cid}tp",
                        "sl_client_id": f"{cid}sl",
                        "stop_limit_price": self._stop_limit(
                            self.exchange.market(item.symbol), exit_side, item.stop_loss
                        ),
                    },
                )
            except ExchangeError as exc:
                self._audit_send("exit_order", item.source, **audit, outcome=f"failed: {exc}")
                refused = isinstance(exc, REFUSALS)  # a refusal: the legs never existed
                for leg in ("tp", "sl"):  # else the outcome is unknown: looked up before acting
                    self._journal(
                        "reject" if refused else "unknown",
                        f"{cid}{leg}",
                        None,
                        item.symbol,
                        exit_side,
                        OrderType.LIMIT_MAKER if leg == "tp" else OrderType.STOP_LOSS_LIMIT,
                        qty,
                        item.take_profit if leg == "tp" else item.stop_loss,
                        status="rejected" if refused else "unknown",
                        wallet=item.wallet,
                        source=item.source,
                        reason=f"OCO {'refused' if refused else 'outcome unknown'}: {exc}",
                    )
                raise
            for leg_order in (oco.take_profit, oco.stop_loss):
                self._journal_order("ack", leg_order, item.wallet, item.source, "protective exit")
            self._audit_send(
                "exit_order", item.source, **audit, order_id=oco.list_id, outcome="placed"
            )
            self.watchdog.remove(item.entry_client_id)
            return (oco.take_profit, oco.stop_loss), None
        new = self.watchdog.update(item.entry_client_id, qty=qty, state=WatchState.WATCHING)
        return (), new

    def _sellable(self, symbol: str, side: Side, qty: Decimal) -> Decimal:
        """``qty`` as a sell may ask for it: never more than the account has free of the asset
        (the dust a full exit was sized with may have left it), rounded down to the step. A
        balance it cannot read (a malformed answer: a negative amount, a page cut short) never
        keeps an exit from going: ``qty`` is sent and the venue says whether it can."""
        if side is not Side.SELL:
            return qty
        try:
            free = self.exchange.get_balance(self.exchange.market(symbol).base)
        except ExchangeError as exc:
            log.warning("%s: exit of %s sent unchecked: %s", symbol, qty, exc)
            return qty
        sellable = self.exchange.amount_to_precision(symbol, min(qty, free))
        return sellable if sellable > 0 else qty  # none free at all: the venue says why

    def _attached_cover(self, item: WatchItem, why: str) -> tuple[Order, ...]:
        """The TP/SL the exchange made from the entry's attached prices, journaled
        (:meth:`_journal_attached`). They cover the position when one has filled (all of it: a
        part sold is no cover for the rest) or every leg asked for is armed. Legs it refused or
        removed with nothing sold (OKX's ``order_failed``, Bybit's ``Rejected``) are no cover:
        the armed one left (a take-profit without its stop) is cancelled, and
        :class:`InvalidOrder` hands what they did not sell to the local watchdog, as for any
        refused exit. Until the exchange confirms that leg gone (its cancel
        failed or is not seen yet), :class:`LoneLegLive`: the item stays as it is, and the next
        poll reads the legs and tries the cancel again."""
        cid = item.entry_client_id
        legs = self._journal_attached(item.symbol, cid, why)
        state = self.journal_state()
        asked = [r for r, p in (("tp", item.take_profit), ("sl", item.stop_loss)) if p is not None]
        armed = all(
            (e := state.get(f"{cid}{r}")) is not None and is_open_status(e.status) for r in asked
        )
        if not legs or armed or any(leg.status is OrderStatus.FILLED for leg in legs):
            return legs
        states = ", ".join(f"{leg.client_id[-2:]} {leg.status.value}" for leg in legs)
        if any(leg.status.is_open for leg in legs):
            try:
                with contextlib.suppress(OrderNotFound):  # gone meanwhile: read below
                    self._cancel_attached(
                        cid, item.symbol, source_of(item.source),
                        f"cancelled by Kobe: no cover without its sibling ({states}); the local "
                        "watchdog guards the position",
                    )  # fmt: skip
            except ExchangeError as exc:
                raise self._lone_leg(item, states, str(exc)) from exc
            if self._exits_live(cid, item.stop_loss):  # it filled instead of being cancelled
                self._lone_failing.discard(cid)
                return legs
            if self._exits_live(cid):  # still armed, as far as the exchange has said
                raise self._lone_leg(item, states, "not confirmed cancelled yet")
        self._lone_failing.discard(cid)
        raise InvalidOrder(f"{self.exchange_name} does not hold the entry's TP/SL ({states})")

    def _lone_leg(self, item: WatchItem, states: str, why: str) -> LoneLegLive:
        """The armed leg left without its refused sibling could not be cancelled (or its cancel
        is not confirmed yet): the watchdog keeps guarding the position and each poll tries the
        cancel again. It sells nothing meanwhile: the leg may still sell on the exchange, and a
        sale by both would sell the position twice. One alert per episode, also across restarts:
        :func:`lone_cancels` reads the cancels already tried from ``audit.jsonl``."""
        cid = item.entry_client_id
        message = (
            f"entry {cid} ({item.symbol}): the exchange armed one exit without its sibling "
            f"({states}) and it could not be cancelled ({why}): the local watchdog guards the "
            "position and tries the cancel again each poll; nothing is sold until the exchange "
            "confirms that exit gone (or booked if it filled), so never twice"
        )
        if (
            cid not in self._lone_failing
            and lone_cancels(self.audit, self.journal_state(), cid) <= 1
        ):
            self.on_alert("critical", "exit_not_cancelled", message)
        self._lone_failing.add(cid)
        return LoneLegLive(message)

    def _fall_back_to_watchdog(self, item: WatchItem, qty: Decimal, exc: Exception) -> WatchItem:
        """The exchange refused the exits: the local watchdog guards ``qty``. A refused native
        OCO is sent again by later polls, under the same client ids (looked up before any
        re-send: never a second OCO), after ``OCO_FIRST_WAIT_S`` doubling up to 5 minutes, at
        most ``OCO_TRIES`` times; the watchdog hands over once the exchange holds it. A refusal
        no retry can pass (the price now past an exit), or the last try, leaves the position
        to the watchdog for good. One alert when it starts, one when it is given up."""
        cid, symbol = item.entry_client_id, item.symbol
        first = f"entry {cid} ({symbol}) filled but its exits could not be placed ({exc})"
        if item.exits is ExitPlan.OCO:
            tries = item.oco_attempts + 1
            final = self._oco_hopeless(item, exc, tries)
            if final is None:
                wait = min(MAX_BACKOFF_S, OCO_FIRST_WAIT_S * 2 ** (tries - 1))
                if tries == 1:
                    self.on_alert(
                        "warning", "exits_fallback",
                        f"{first}: the local watchdog guards it, only while an engine runs, and "
                        f"the OCO is sent again with backoff (at most {OCO_TRIES} tries)",
                    )  # fmt: skip
                else:
                    log.warning("OCO of %s refused again (try %d): %s", cid, tries, exc)
                return self.watchdog.update(
                    cid, qty=qty, state=WatchState.WATCHING, oco_attempts=tries,
                    oco_retry_at=self.clock() + timedelta(seconds=wait),
                )  # fmt: skip
            if tries > 1:
                first = f"the OCO of entry {cid} ({symbol}) was refused {tries} times ({exc})"
            first += f"; {final}"
        self.on_alert(
            "warning", "exits_fallback",
            f"{first}: the local watchdog guards it, only while an engine runs",
        )  # fmt: skip
        return self.watchdog.update(
            cid, qty=qty, exits=ExitPlan.WATCHDOG, state=WatchState.WATCHING, oco_retry_at=None
        )

    def _oco_hopeless(self, item: WatchItem, exc: Exception, tries: int) -> str | None:
        """Why a refused OCO is not sent again, or None: it may pass later (a balance not
        credited yet, a filter the price may pass again)."""
        if isinstance(exc, NotSupported | AuthenticationError):
            return "not sent again"
        if tries >= OCO_TRIES:
            return "not sent again (the last try)"
        try:
            price = self.exchange.fetch_ticker(item.symbol).last
        except ExchangeError:
            return None  # asked again at the next refusal
        wrong = exits_in_order(item.side, item.stop_loss, item.take_profit, price, "the price")
        return (
            f"not sent again, the price is past its exits ({'; '.join(wrong)})" if wrong else None
        )

    def replace_exits(
        self,
        entry_cid: str,
        qty: Decimal,
        take_profit: Decimal | None,
        stop_loss: Decimal | None,
        source: Source,
    ) -> tuple[tuple[Order, ...], WatchItem | None]:
        """New TP/SL for a position, never leaving it bare: the local watchdog covers it with
        the new prices first (persisted), the old exits are cancelled, then the new ones are
        placed; the watchdog item goes only once the exchange has confirmed them."""
        last = self.journal_state().get(entry_cid)
        if last is None:
            raise OrderNotFound(f"position {entry_cid}: unknown entry")
        if take_profit is None and stop_loss is None:
            raise Refused(["give --tp, --sl or both"])
        side = Side(last.side)
        # prices the market has passed already: the watchdog, covering first, sold at once
        # (a TP typed below a long's price, or TP and SL swapped, closed it at market)
        price = self.exchange.fetch_ticker(last.symbol).last
        wrong = exits_in_order(side, stop_loss, take_profit, price, "the last price")
        if wrong:
            raise Refused([*wrong, "nothing changed: the old exits stay"])
        qty = self.exchange.amount_to_precision(last.symbol, qty)  # what a sell can ask for
        both = take_profit is not None and stop_loss is not None
        oco = both and self.exits_policy != "watchdog"
        plan = (
            ExitPlan.OCO
            if oco and self.exchange.capabilities(last.symbol).native_oco
            else (ExitPlan.WATCHDOG)
        )
        item = WatchItem(
            entry_client_id=entry_cid,
            entry_id=last.exchange_id or "",
            symbol=last.symbol,
            side=side,
            qty=qty,
            take_profit=take_profit,
            stop_loss=stop_loss,
            wallet=last.wallet,
            source=last.source,
            exits=plan,
            state=WatchState.WATCHING,
            replaces=True,
        )
        # the cover during the gap, persisted before anything moves; it says the old exits are
        # still to be cancelled, so an interruption here is resumed, never forgotten
        self.watchdog.add(item)
        return self._replace_old_exits(item, source)

    def _replace_old_exits(
        self, item: WatchItem, source: Source, why: str = ""
    ) -> tuple[tuple[Order, ...], WatchItem | None]:
        """Cancel a position's old exits (its OCO legs, or the pair the exchange holds for
        it), then put the item's new ones in place. Raises on a failed cancel: the item keeps
        ``replaces`` and the next poll tries again. ``why``: the cancel's reason (Kobe's own)."""
        entry_cid, symbol = item.entry_client_id, item.symbol
        sold_before = self._exits_filled(entry_cid)
        for order in self.exchange.fetch_open_orders(symbol):
            if entry_of(order.client_id) == entry_cid and order.client_id[-2:] in ("tp", "sl"):
                with contextlib.suppress(OrderNotFound):  # its OCO sibling went with a leg
                    self.cancel(order.id, source, why)
        self.cancel_armed_legs(entry_cid, symbol, source)
        self.sync()  # an old exit that filled instead of being cancelled ("unknown order")
        sold = self._exits_filled(entry_cid) - sold_before
        if sold > 0 or item.qty <= 0:  # (a lone take-profit that sold all before its cancel)
            market = self.exchange.market(symbol)
            left = floor_to_step(max(item.qty - sold, Decimal(0)), market.step_size)
            if left <= 0 or left < market.min_qty:
                self.watchdog.remove(entry_cid)  # nothing left to sell: never a new sell
                self.on_alert(
                    "warning",
                    "exits_not_replaced",
                    f"position {symbol} {entry_cid}: closed meanwhile by its old exit (it filled "
                    "while it was being cancelled); nothing replaced",
                )
                return (), None
            self.watchdog.update(entry_cid, qty=left)  # the new exits cover what is left
        item = self.watchdog.update(entry_cid, replaces=False)
        if item.exits is ExitPlan.WATCHDOG:
            return (), item
        return self._send_exits(item, item.qty)

    def _exits_filled(self, entry_cid: str) -> Decimal:
        """What the entry's exits have sold so far, as journaled."""
        state = self.journal_state()
        return sum(
            (e.filled for s in EXIT_SUFFIXES if (e := state.get(f"{entry_cid}{s}")) is not None),
            Decimal(0),
        )
