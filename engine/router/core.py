"""RouterCore: the sending router's state, cancels, and its journal and audit lines."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from engine.audit import AuditLog
from engine.config import RiskConfig, RouterConfig
from engine.exchange.base import (
    Exchange,
    ExchangeError,
    Order,
    OrderNotFound,
    OrderStatus,
    OrderType,
    Side,
)
from engine.journal import OrderEvent, OrderJournal
from engine.proposal import Proposal, Source
from engine.risk import KillSwitch, read_kill_switch
from engine.router.orders import (
    ZERO,
    ClientIds,
    OrderPlan,
    WalletBook,
    entry_of,
    is_open_status,
    log,
)
from engine.router.pending import UNSETTLED, is_entry, outcome_unknown
from engine.router.spend import overspent
from engine.router.view import RouterView
from engine.watchdog import WatchItem


class RouterCore(RouterView):
    """The one order path: plan, send (entry and exits), watch, cancel; every step journaled
    and every send audited. It holds an :class:`Exchange`, which only the gate builds."""

    exchange: Exchange

    def __init__(
        self,
        exchange: Exchange,
        journal: OrderJournal,
        *,
        data_dir: Path,
        mode: str,
        exchange_name: str,
        risk: RiskConfig,
        wallets: WalletBook,
        clock: Callable[[], datetime],
        maker_fee_pct: Decimal,
        taker_fee_pct: Decimal,
        mode_problems: Callable[[], list[str]] = list,
        exits_policy: str = "auto",
        size_factor: Callable[[], Decimal] = lambda: Decimal(1),
        audit: AuditLog | None = None,
        ids: ClientIds | None = None,
        kill_switch: Callable[[], KillSwitch] | None = None,
        watchdog_dir: Path | None = None,
        settings: RouterConfig | None = None,
    ) -> None:
        super().__init__(
            exchange,
            journal,
            data_dir=data_dir,
            mode=mode,
            exchange_name=exchange_name,
            clock=clock,
            audit=audit,
            watchdog_dir=watchdog_dir,
        )
        self.risk = risk
        self.wallets = wallets
        self.maker_fee = maker_fee_pct / 100
        self.taker_fee = taker_fee_pct / 100
        self.mode_problems = mode_problems
        self.exits_policy = exits_policy
        self.size_factor = size_factor
        self.ids = ids or ClientIds(clock)
        self.kill_switch = kill_switch or (lambda: read_kill_switch(self.data_dir))
        self._inflight: dict[str, tuple[Proposal, OrderPlan]] = {}
        self.settings = settings or RouterConfig()
        self._resting: dict[str, datetime] = {}  # stop legs seen resting past their limit
        self._lone_failing: set[str] = set()  # entries whose lone exit's cancel failed (alerted)
        self._overspent_said: dict[str, str] = {}  # an entry being sent: its overspend alert
        # quote a wallet already has in open positions and working entries (the position book)
        self.committed: Callable[[str], Decimal] = lambda wallet: ZERO
        self.dust_committed: Callable[[str], Decimal] = lambda wallet: ZERO  # its dust's part
        self.on_buy_fill = self._buy_filled
        self.on_dust: Callable[[str], None] = lambda entry_cid: None  # a position too small
        # base an asset's open positions and dust hold, no exit locking it (the book)
        self.held_by_positions: Callable[[str], tuple[Decimal, Decimal]] = lambda a: (ZERO, ZERO)
        # the wallet's dust a full exit sells with it: (wallet, symbol, entry client id) (the book)
        self.foldable_dust: Callable[[str, str, str], Decimal] = lambda w, s, e: ZERO

    def _buy_filled(self, event: OrderEvent) -> None:
        """A buy entry's fill was journaled: its wallet is checked (:func:`overspent`), with
        one alert per fill. A fill with the order's answer says how far above the ask it was
        sized for, and the message is its note under ``kobe trade``."""
        sized = self._inflight.get(event.client_id)
        plan = sized[1] if sized is not None else None
        message = overspent(event, plan, self.wallets, self.committed(event.wallet))
        if message is not None:
            self.on_alert("warning", "wallet_overspent", message)
            if plan is not None:
                self._overspent_said[event.client_id] = message

    def cancel(self, ref: str, source: Source, why: str = "") -> Order:
        """Cancel by exchange id or client id. Unknown or already finished: OrderNotFound, saying which.
        ``why``: the journal's reason when Kobe cancels of itself (not the operator)."""
        last = self.journal_state()
        event = last.get(ref) or next((e for e in last.values() if e.exchange_id == ref), None)
        if (
            event is not None
            and self._attached_leg(event.client_id, event.symbol)
            and is_open_status(event.status)
        ):
            entry_cid = entry_of(event.client_id) or ""
            legs = self._cancel_attached(entry_cid, event.symbol, source, why)
            return next(leg for leg in legs if leg.client_id == event.client_id)
        for order in self.exchange.fetch_open_orders():
            if ref in (order.id, order.client_id):
                break
        else:
            last = self.journal_state()
            event = last.get(ref) or next((e for e in last.values() if e.exchange_id == ref), None)
            if event is None:
                raise OrderNotFound(f"order {ref}: unknown (not open on {self.exchange_name})")
            if event.event in UNSETTLED and is_entry(event.client_id):
                raise OrderNotFound(
                    f"{outcome_unknown(event.client_id, event)}; it is not open on "
                    f"{self.exchange_name} now: nothing was cancelled"
                )
            raise OrderNotFound(
                f"order {ref}: not open (last known state: {event.status or event.event})"
            )
        last = self.journal_state()
        event = last.get(order.client_id)
        wallet = event.wallet if event else ""
        audit = {"order_id": order.id, "client_id": order.client_id, "symbol": order.symbol}
        try:
            cancelled = self.exchange.cancel_order(order.id, order.symbol)
        except ExchangeError as exc:
            self._audit_send("cancel", source.value, **audit, outcome=f"failed: {exc}")
            raise
        self._audit_send("cancel", source.value, **audit, outcome="cancelled")
        why = why or f"cancelled by operator ({source.value})"
        self._journal_order("cancel", cancelled, wallet, source.value, why)
        try:
            self._settle_sibling(cancelled, wallet, source.value)
        except ExchangeError as exc:  # the sibling's state is settled by the next sync
            log.warning("cancel %s: its OCO sibling not looked up yet: %s", order.client_id, exc)
        if self.watchdog.get(order.client_id) is not None and cancelled.filled == 0:
            self.watchdog.remove(order.client_id)
        return cancelled

    def cancel_armed_legs(self, entry_cid: str, symbol: str, source: Source) -> None:
        """Cancel the TP/SL the exchange holds for ``entry_cid`` if the journal has one armed:
        not every venue lists them among its open orders (OKX's algo orders), so a close or a
        replace that cancelled only what it lists left them to sell the position again."""
        held = self.journal_state()
        if any(
            is_open_status(held[f"{entry_cid}{leg}"].status)
            for leg in ("tp", "sl")
            if f"{entry_cid}{leg}" in held and self._attached_leg(f"{entry_cid}{leg}", symbol)
        ):
            with contextlib.suppress(OrderNotFound):  # fired or gone meanwhile: sync journals it
                self._cancel_attached(entry_cid, symbol, source)

    def _cancel_attached(
        self, entry_cid: str, symbol: str, source: Source, why: str = ""
    ) -> list[Order]:
        """Cancel the TP/SL the exchange holds for ``entry_cid`` (both legs: the pair goes as
        one), audited and journaled; ``why``: the journal's reason when Kobe cancels them of
        itself (not the operator)."""
        entry = self.journal_state().get(entry_cid)
        if entry is None or not entry.exchange_id:
            raise OrderNotFound(f"position {entry_cid}: unknown entry")
        audit = {"order_id": entry.exchange_id, "client_id": f"{entry_cid}tp+sl", "symbol": symbol}
        try:
            ref = self._attached_ref(entry_cid)
            legs = self.exchange.cancel_attached_exits(
                symbol, entry.exchange_id, entry_cid, ref.leg_ids if ref else None
            )
        except ExchangeError as exc:
            self._audit_send("cancel", source.value, **audit, outcome=f"failed: {exc}")
            raise
        self._audit_send("cancel", source.value, **audit, outcome="cancelled")
        for leg in legs:
            before = self.journal_state().get(leg.client_id)
            if leg.filled > (before.filled if before is not None else 0):
                self._journal_fill(leg, entry.wallet, entry.source)  # fired meanwhile
            now = self.journal_state().get(leg.client_id)
            if leg.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED) and (
                now is None or now.event != "cancel"  # not a leg that filled, nor twice
            ):
                self._journal_order(
                    "cancel", leg, entry.wallet, source.value,
                    why or f"cancelled by operator ({source.value})",
                )  # fmt: skip
        return legs

    def _settle_sibling(self, leg: Order, wallet: str, source: str) -> None:
        """An OCO leg was cancelled: its sibling went with it on the venue; journal that too."""
        entry = entry_of(leg.client_id)
        if entry is None or leg.client_id[-2:] not in ("tp", "sl"):
            return
        sibling = entry + ("sl" if leg.client_id.endswith("tp") else "tp")
        last = self.journal_state().get(sibling)
        if last is None or last.event in ("fill", "cancel", "reject"):
            return
        found = self.exchange.fetch_order_by_client_id(sibling, leg.symbol)
        if found is not None and found.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
            self._journal_order("cancel", found, wallet, source, "its OCO sibling was cancelled")

    def _journal_plan(
        self, kind: str, cid: str, plan: OrderPlan, *, status: str, reason: str
    ) -> None:
        """An event of a proposal's entry, before the exchange has told us anything about it."""
        p = plan.proposal
        price = plan.entry_price if p.entry_type is OrderType.LIMIT else None
        self._journal(
            kind,
            cid,
            None,
            p.symbol,
            p.side,
            p.entry_type,
            plan.qty,
            price,
            status=status,
            wallet=p.wallet,
            source=p.source.value,
            reason=reason,
            strategy=p.strategy,
            ref=p.ref,
        )

    def _journal_reject(self, cid: str, p: Proposal, plan: OrderPlan, reason: str) -> None:
        self._journal_plan("reject", cid, plan, status="rejected", reason=reason)

    def _audit_order(self, p: Proposal, cid: str, exchange_id: str | None, outcome: str) -> None:
        self._audit_send(
            "order",
            p.source.value,
            client_id=cid,
            order_id=exchange_id,
            symbol=p.symbol,
            side=p.side.value,
            type=p.entry_type.value,
            wallet=p.wallet,
            outcome=outcome,
        )

    def _audit_exit(
        self,
        cid: str,
        order_id: str | None,
        symbol: str,
        side: Side,
        qty: Decimal,
        wallet: str,
        source: str,
        outcome: str,
    ) -> None:
        self._audit_send(
            "exit_order",
            source,
            client_id=cid,
            order_id=order_id,
            symbol=symbol,
            side=side.value,
            type=OrderType.MARKET.value,
            qty=qty,
            wallet=wallet,
            outcome=outcome,
        )

    def _audit_send(self, action: str, source: str, **fields: object) -> None:
        """Every order or cancel sent, by any path, is in ``audit.jsonl``."""
        if self.audit is not None:
            self.audit.record(action, source, **fields)

    def guard_locally(self, item: WatchItem) -> None:
        """Put (back) a position under the local watchdog, e.g. after its exits were cancelled."""
        self.watchdog.add(item)

    def on_unknown(self, client_id: str, reason: str) -> None:
        """The adapter's hook: a write's outcome is unknown (timeout, 5xx); it looks it up next.

        Journaled (and fsynced) at once, so a crash before the lookup is settled at start-up.
        """
        inflight = self._inflight.get(client_id)
        if inflight is None:
            log.warning("outcome unknown for %s (%s)", client_id, reason)
            return
        _, plan = inflight
        self._journal_plan(
            "unknown",
            client_id,
            plan,
            status="unknown",
            reason=f"outcome unknown: {reason}; looking it up by client id",
        )
