"""The local watchdog's poll: pending entries, touched exits, resting stops, dust."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import datetime, timedelta
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
from engine.journal import OrderEvent
from engine.money import floor_to_step
from engine.router.exits import Exits
from engine.router.orders import (
    MAX_BACKOFF_S,
    REFUSALS,
    ZERO,
    entry_of,
    fmt_qty,
    is_open_status,
    log,
    source_of,
)
from engine.watchdog import ExitPlan, WatchItem, WatchState

LONE_TP = (
    "cancelled by Kobe: its stop was ended by the exchange after a part fill; the local "
    "watchdog guards the rest"
)


class Watching(Exits):
    """Each poll: entries that filled get their exits, touched exits fire, with backoff."""

    def poll(self, prices: dict[str, Decimal] | None = None) -> list[Order]:
        """Advance pending entries and fire watched exits. Returns the exit orders sent."""
        sent: list[Order] = []
        prices = dict(prices or {})  # a ticker read once per symbol per poll, shared by its items
        seen_open, self._seen_open = self._seen_open, set()
        for item in self.watchdog.items():
            try:
                if item.state is WatchState.PENDING_ENTRY and not item.entry_id:
                    found = self.exchange.fetch_order_by_client_id(
                        item.entry_client_id, item.symbol
                    )
                    if found is None:
                        last = self.journal_state().get(item.entry_client_id)
                        if last is None or last.event == "reject":
                            self.watchdog.remove(item.entry_client_id)
                        continue
                    item = self.watchdog.update(item.entry_client_id, entry_id=found.id)
                if item.entry_client_id in seen_open:
                    continue  # still resting: this tick's sync saw it among the open orders
                if item.state is WatchState.PENDING_ENTRY and item.entry_id:
                    entry = self.exchange.fetch_order(item.entry_id, item.symbol)
                    if entry.status is OrderStatus.FILLED or (
                        entry.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED)
                        and entry.filled > 0
                    ):
                        self._journal_fill(entry, item.wallet, item.source)
                        in_hand = self._full_exit(item, entry)
                        try:
                            exits, _ = self._place_exits(item, in_hand)
                        except REFUSALS as exc:
                            self._fall_back_to_watchdog(item, in_hand, exc)
                            raise
                        except ExchangeError:
                            self._watch_meanwhile(item, in_hand)
                            raise
                        sent += exits
                    elif not entry.status.is_open and entry.status is not OrderStatus.UNKNOWN:
                        self.watchdog.remove(item.entry_client_id)  # ended with nothing filled
                elif item.state is WatchState.WATCHING:
                    if item.replaces:  # `kobe exits` was interrupted (or a lone take-profit
                        item, why = self._lone_rest(item)  # is to go): its cancel, again
                        exits, _ = self._replace_old_exits(item, source_of(item.source), why)
                        sent += exits
                        continue
                    if item.exits is ExitPlan.ATTACHED:
                        try:
                            held = self._attached_cover(item, "found")
                        except REFUSALS as exc:  # dropped by the exchange: the watchdog's now
                            unsold = item.qty - self._exits_filled(item.entry_client_id)
                            item = self._fall_back_to_watchdog(item, max(unsold, ZERO), exc)
                            held = ()
                        if held:
                            self.watchdog.remove(item.entry_client_id)  # the exchange holds them
                            continue
                    elif item.exits is ExitPlan.OCO and not _waiting(
                        item.oco_retry_at, self.clock()
                    ):
                        # unanswered, or refused and its backoff over: sent again
                        try:
                            exits, left = self._place_exits(item, item.qty)
                        except ExchangeError as exc:  # refused, or unanswered (looked up
                            # before the next send): again after a backoff, a try either way
                            item = self._fall_back_to_watchdog(item, item.qty, exc)
                        else:
                            sent += exits
                            if left is None:
                                if item.oco_attempts:
                                    self.on_alert(
                                        "info", "exits_fallback",
                                        f"entry {item.entry_client_id} ({item.symbol}): its OCO "
                                        f"is placed after {item.oco_attempts} refusal(s); the "
                                        "exchange holds its exits, the watchdog hands over",
                                    )  # fmt: skip
                                continue
                    if _waiting(item.retry_at, self.clock()):
                        continue  # a refused exit waits out its backoff
                    price = prices.get(item.symbol)
                    if price is None:
                        price = prices[item.symbol] = self.exchange.fetch_ticker(item.symbol).last
                    leg = item.touched(price)
                    if leg is not None:
                        self._settle_exits(item.entry_client_id, item.symbol)
                        if self._exits_live(item.entry_client_id, item.stop_loss):
                            self.watchdog.remove(item.entry_client_id)  # confirmed on the venue
                            continue
                        fired = self._fire_or_back_off(item, leg, price)
                        if fired is not None:
                            sent.append(fired)
            except ExchangeError as exc:
                log.warning("watchdog: %s %s: %s", item.symbol, item.entry_client_id, exc)
        try:
            sent += self._sell_resting_stops(prices)
        except ExchangeError as exc:
            log.warning("watchdog: resting stops: %s", exc)
        return sent

    def guard_lone_take_profit(self, item: WatchItem) -> None:
        """``item``'s position has its take-profit resting while its stop leg is gone, ended by
        the exchange (Binance ends an OCO's other leg at the take-profit's first part fill): the
        rest has no stop. As for a lone take-profit on Bybit/OKX, Kobe cancels it and the local
        watchdog guards TP and SL for what it has not sold. Until the exchange confirms that
        cancel, each poll tries it again and nothing is sold (a sale by both would sell twice)."""
        self.watchdog.add(
            replace(item, exits=ExitPlan.WATCHDOG, state=WatchState.WATCHING, replaces=True)
        )
        tp = self.journal_state()[f"{item.entry_client_id}tp"]
        self.on_alert(
            "critical", "exits_fallback",
            f"position {item.symbol} {item.entry_client_id}: its stop was ended by the exchange "
            f"after its take-profit sold {fmt_qty(tp.filled)} of {fmt_qty(tp.qty)}; Kobe cancels "
            "the take-profit's rest and the local watchdog guards TP and SL for what it has not "
            "sold (only while an engine runs)",
        )  # fmt: skip

    def _lone_rest(self, item: WatchItem) -> tuple[WatchItem, str]:
        """For a take-profit left without its stop (:meth:`guard_lone_take_profit`): the item
        sized to what it has not sold, by the journal's latest word (each try: it may sell
        more until its cancel goes through), and its cancel's reason; "" for any other item."""
        state, cid = self.journal_state(), item.entry_client_id
        tp, sl = state.get(f"{cid}tp"), state.get(f"{cid}sl")
        if item.exits is not ExitPlan.WATCHDOG or tp is None or sl is None or sl.event != "cancel":
            return item, ""
        return self.watchdog.update(cid, qty=max(tp.qty - tp.filled, ZERO)), LONE_TP

    def _sell_resting_stops(self, prices: dict[str, Decimal]) -> list[Order]:
        """A stop-limit that triggered in a gap rests at its limit, unfilled, while the price
        runs away: once it has rested ``stop_rest_timeout_s`` or the price is
        ``stop_rest_distance_pct`` past its limit, it is cancelled and sold at market."""
        sent: list[Order] = []
        now = self.clock()
        cfg = self.settings
        for cid, e in list(self.journal_state().items()):
            if not cid.endswith("sl") or e.type != OrderType.STOP_LOSS_LIMIT.value:
                continue
            if (
                e.event not in ("ack", "partial_fill")
                or not is_open_status(e.status)
                or e.price is None
            ):
                self._resting.pop(cid, None)
                continue
            price = prices.get(e.symbol)
            if price is None:
                price = prices[e.symbol] = self.exchange.fetch_ticker(e.symbol).last
            limit = e.price
            past = price < limit if e.side == Side.SELL.value else price > limit
            if not past:
                self._resting.pop(cid, None)
                continue
            since = self._resting.setdefault(cid, now)
            distance = abs(limit - price) / limit * 100
            if now - since < timedelta(seconds=cfg.stop_rest_timeout_s) and (
                distance < cfg.stop_rest_distance_pct
            ):
                continue
            entry_cid = entry_of(cid)
            assert entry_cid is not None
            with contextlib.suppress(OrderNotFound):  # filled or gone meanwhile: settled below
                self.cancel(e.exchange_id or cid, source_of(e.source))
            self._resting.pop(cid, None)
            after = self.journal_state().get(cid)
            if after is None or after.event != "cancel":
                continue
            remaining = after.qty - after.filled
            if remaining <= 0:
                continue
            reason = (
                f"stop {cid} rested at its limit {fmt_qty(limit)} after a gap (price "
                f"{fmt_qty(price)}): sold at market (local watchdog)"
            )
            order = self.send_exit(
                entry_cid, "cx", e.symbol, Side(e.side), remaining, e.wallet, e.source, reason
            )
            self.on_alert("critical", "stop_rested", f"{e.symbol}: {reason}")
            sent.append(order)
        return sent

    def _fire_or_back_off(self, item: WatchItem, leg: str, price: Decimal) -> Order | None:
        """Send the watched exit; a refusal backs off exponentially (capped at 5 minutes) with
        one alert per episode; a position too small to sell is dust: flagged once, not retried.
        """
        cid = item.entry_client_id
        dust = self._dust(item.symbol, item.qty)
        if dust is not None:
            self._drop_dust(cid, item.symbol, item.wallet, item.qty, dust)
            return None
        try:
            order = self._fire(item, leg, price)
        except REFUSALS as exc:
            attempts = item.attempts + 1
            wait = min(MAX_BACKOFF_S, 2 ** min(attempts, 20))  # a long episode: no huge power
            self.watchdog.update(
                cid,
                attempts=attempts,
                retry_at=self.clock() + timedelta(seconds=wait),
                last_error=str(exc),
            )
            if attempts == 1:
                self.on_alert(
                    "critical",
                    "exit_refused",
                    f"{item.symbol} {fmt_qty(item.qty)} ({item.wallet}, entry {cid}): the "
                    f"{leg.replace('_', '-')} exit was refused: {exc}; retrying with backoff "
                    "(up to every 5 minutes) until it goes through",
                )
            return None
        if item.attempts:
            self.on_alert(
                "info",
                "exit_refused",
                f"{item.symbol} {cid}: the exit went through after {item.attempts} refusal(s)",
            )
        return order

    def settle_dust(self, cid: str, symbol: str, wallet: str, qty: Decimal) -> bool:
        """A position nothing covers that can never be sold is dust (a book rebuilt from the
        journal no longer knows it was): True when it is."""
        try:
            why = self._dust(symbol, qty)
        except ExchangeError:  # its market cannot be read now: asked again at the next check
            return False
        if why is not None:
            self._drop_dust(cid, symbol, wallet, qty, why)
        return why is not None

    def _drop_dust(self, cid: str, symbol: str, wallet: str, qty: Decimal, why: str) -> None:
        """``qty`` of entry ``cid`` can never be sold: no longer watched, and the book holds it
        as dust (no exit, nothing to protect, never flattened)."""
        self.watchdog.remove(cid)
        self.on_alert(
            "warning",
            "dust",
            f"{symbol} {fmt_qty(qty)} ({wallet}, entry {cid}) is dust: {why}; "
            "it is not sold and no longer watched",
        )
        self.on_dust(cid)

    def _dust(self, symbol: str, qty: Decimal) -> str | None:
        """Why ``qty`` can never be sold on this venue (below its minimum quantity once on the
        step), or None. A value below the minimum notional is not dust: the price may come
        back, so such an exit is refused, backed off and alerted like any refusal."""
        m = self.exchange.market(symbol)
        sellable = self.exchange.amount_to_precision(symbol, qty)
        if sellable < m.min_qty or sellable <= 0:
            return f"below the minimum quantity {fmt_qty(m.min_qty)} {m.base}"
        return None

    def _fire(self, item: WatchItem, leg: str, price: Decimal) -> Order:
        reason = f"{leg.replace('_', '-')} touched at {fmt_qty(price)} (local watchdog)"
        suffix = "tp" if leg == "take_profit" else "sl"
        # an id whose order already sold a part (of a thin book) is taken: Bybit and OKX refuse
        # it for a new order, so the rest goes under the entry's other exit id where it can; so
        # is one the exchange said an earlier order holds (a sale that sold nothing, refused as
        # a duplicate of it: see send_exit)
        for choice in (suffix, "cx"):
            used = self.journal_state().get(f"{item.entry_client_id}{choice}")
            if used is None or (used.filled <= 0 and not _held_by_earlier(used)):
                suffix = choice
                break
        qty = self._sellable(item.symbol, item.side.opposite, item.qty)
        order = self.send_exit(
            item.entry_client_id,
            suffix,
            item.symbol,
            item.side.opposite,
            qty,
            item.wallet,
            item.source,
            reason,
        )
        left = floor_to_step(qty - order.filled, self.exchange.market(item.symbol).step_size)
        if order.status.is_open or left <= 0:
            self.watchdog.remove(item.entry_client_id)  # the sibling leg is dropped with it
            return order
        dust = self._dust(item.symbol, left)
        if dust is not None:  # the part it could not sell can never be sold
            self._drop_dust(item.entry_client_id, item.symbol, item.wallet, left, dust)
            return order
        # it ended with a part filled (a thin book: expired, or cancelled): the rest stays guarded
        self.watchdog.update(item.entry_client_id, qty=left)
        self.on_alert(
            "critical",
            "exit_partly_filled",
            f"{item.symbol} {item.entry_client_id}: the {leg.replace('_', '-')} exit sold only "
            f"{fmt_qty(order.filled)} of {fmt_qty(item.qty)} ({order.status.value}); the local "
            f"watchdog still guards the other {fmt_qty(left)} and sells it at the next touch",
        )
        return order

    def send_exit(
        self,
        entry_cid: str,
        suffix: str,
        symbol: str,
        side: Side,
        qty: Decimal,
        wallet: str,
        source: str,
        reason: str,
    ) -> Order:
        """Close (part of) a position at market; the client id is ``<entry id><suffix>``. An
        id an earlier order holds on the exchange is refused there as a duplicate, and the
        look-up by that id finds that order: never taken for this sale, a refusal."""
        cid = f"{entry_cid}{suffix}"
        before = self.journal_state().get(cid)
        taken = before.exchange_id if before is not None else None
        held_by: str | None = None
        self._journal(
            "intent",
            cid,
            None,
            symbol,
            side,
            OrderType.MARKET,
            qty,
            None,
            status="new",
            wallet=wallet,
            source=source,
            reason=reason,
        )
        try:
            order = self.exchange.create_order(
                symbol, side, OrderType.MARKET, qty, None, {"client_id": cid}
            )
            if taken is not None and order.id == taken:
                held_by = taken
                raise InvalidOrder(
                    f"{self.exchange_name} holds client id {cid} for an earlier order {order.id} "
                    f"({order.status.value}, {fmt_qty(order.filled)} sold): this sale not sent"
                )
        except (InvalidOrder, InsufficientFunds, AuthenticationError, NotSupported) as exc:
            self._journal(
                "reject",
                cid,
                held_by,  # the earlier order holding the id: taken (see _fire)
                symbol,
                side,
                OrderType.MARKET,
                qty,
                None,
                status="rejected",
                wallet=wallet,
                source=source,
                reason=str(exc),
            )
            self._audit_exit(cid, None, symbol, side, qty, wallet, source, f"rejected: {exc}")
            raise
        except ExchangeError as exc:
            self._journal(
                "unknown",
                cid,
                None,
                symbol,
                side,
                OrderType.MARKET,
                qty,
                None,
                status="unknown",
                wallet=wallet,
                source=source,
                reason=f"outcome unknown: {exc}; looked up before any new exit",
            )
            self._audit_exit(cid, None, symbol, side, qty, wallet, source, f"unknown: {exc}")
            raise
        self._journal_order("ack", order, wallet, source, reason)
        self._audit_exit(cid, order.id, symbol, side, qty, wallet, source, "placed")
        self._journal_fill(order, wallet, source, reason)
        return order


def _held_by_earlier(event: OrderEvent) -> bool:
    """A sale refused because the exchange holds its client id for an earlier order (that
    order's id journaled with the refusal)."""
    return event.event == "reject" and bool(event.exchange_id)


def _waiting(at: datetime | None, now: datetime) -> bool:
    """A refused exit (or OCO) waits out its backoff until ``at``; a time further ahead than
    the longest backoff is no wait Kobe set (a damaged file, the clock set back since): never
    an exit held for it."""
    return at is not None and now < at <= now + timedelta(seconds=MAX_BACKOFF_S)
