"""Router: a proposal becomes a sized entry plus its protective exits, every step journaled.

``plan`` computes the ``OrderPlan`` (what will be sent: quantity, notional, fee estimate, risk,
how the exits are protected) without sending anything. ``execute`` sends it:

1. the intent is journaled (and fsynced) before the order is sent;
2. the entry goes out with our client id; a timeout or 5xx is an *unknown* outcome, not a failure;
3. the exits: a native OCO where the venue has one (Binance spot), TP/SL attached to the entry
   where ccxt supports it (Bybit, OKX), otherwise the local watchdog (``engine.watchdog``), which
   is persisted before the entry is sent so that a crash at any point can be resumed.

``reconcile`` runs at start: intents whose outcome is unknown are looked up by client id and their
real state journaled; orders on the exchange that the journal does not know are reported as
external and never touched; exits whose entry filled while the program was down are placed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from engine.audit import AuditLog
from engine.config import RiskConfig, RouterConfig
from engine.exchange.base import (
    AuthenticationError,
    Exchange,
    ExchangeError,
    ExchangeReader,
    InsufficientFunds,
    InvalidOrder,
    MarketRules,
    NotSupported,
    Order,
    OrderNotFound,
    OrderStatus,
    OrderType,
    Side,
    stop_limit_price,
)
from engine.journal import OrderEvent, OrderJournal
from engine.money import floor_to_step, round_price
from engine.proposal import Proposal, Refused, Sizing, Source
from engine.risk import KillSwitch, read_kill_switch, validate_proposal
from engine.watchdog import ExitPlan, Watchdog, WatchItem, WatchState

log = logging.getLogger(__name__)

ZERO = Decimal(0)
MAX_BACKOFF_S = 300  # a refused exit is tried again at most this far apart
REFUSALS = (InvalidOrder, InsufficientFunds, AuthenticationError, NotSupported)  # definite "no"
RECONCILE_TAIL = 5000  # order events read back at start (a tail, never the whole journal)
KEEP_FINISHED = 5000  # finished orders remembered in memory (for "already filled" messages)


class WalletBook(Protocol):
    """What the router needs of the sub-wallets: a balance and an optional cap, in quote units."""

    def balance(self, wallet_id: str) -> Decimal: ...

    def cap(self, wallet_id: str) -> Decimal | None: ...

    def venue_problem(self, wallet_id: str, exchange_name: str) -> str | None:
        """Why this wallet cannot trade on ``exchange_name`` (wrong chain, not a trading role)."""
        ...


class StaticWallets:
    """A fixed wallet book (tests, and commands run before any wallet snapshot exists)."""

    def __init__(self, balances: dict[str, Decimal], caps: dict[str, Decimal] | None = None):
        self._balances = dict(balances)
        self._caps = dict(caps or {})

    def balance(self, wallet_id: str) -> Decimal:
        return self._balances[wallet_id]

    def cap(self, wallet_id: str) -> Decimal | None:
        return self._caps.get(wallet_id)

    def venue_problem(self, wallet_id: str, exchange_name: str) -> str | None:
        return None


class ClientIds:
    """Client order ids: ``kobe<ms since epoch, base 36>n<n>``; deterministic for a given clock.

    Letters and digits only, at most 32 characters (OKX's rule, the strictest of the three), and
    always ending in a digit: an exit's id is its entry's id plus ``tp``, ``sl`` or ``cx`` (and an
    OCO list's, ``oco``), so an exit names the position it closes.
    """

    def __init__(self, clock: Callable[[], datetime], prefix: str = "kobe") -> None:
        self._clock = clock
        self._prefix = prefix
        self._n = 0

    def next(self) -> str:
        self._n += 1
        ms = int(self._clock().timestamp() * 1000)
        return f"{self._prefix}{_base36(ms)}n{self._n}"

    def resume_after(self, used: Iterable[str]) -> None:
        """Number on after the ids a previous run used (the journal's tail), as a run that never
        stopped would: a restart continues the same ids."""
        for cid in used:
            _, sep, n = (entry_of(cid) or cid).rpartition("n")
            if sep and n.isdigit():
                self._n = max(self._n, int(n))


EXIT_SUFFIXES = ("tp", "sl", "cx")


def entry_of(client_id: str) -> str | None:
    """The entry's client id when ``client_id`` is one of its exits (``<entry><tp|sl|cx>``)."""
    for suffix in EXIT_SUFFIXES:
        if client_id.endswith(suffix):
            base = client_id[: -len(suffix)]
            if base[-1:].isdigit():
                return base
    return None


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def _source_of(value: str) -> Source:
    try:
        return Source(value)
    except ValueError:
        return Source.STRATEGY


def _log_alert(severity: str, code: str, message: str) -> None:
    log.warning("%s (%s): %s", severity, code, message)


def _is_open(status: str) -> bool:
    try:
        return OrderStatus(status).is_open
    except ValueError:
        return False


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")


@dataclass(frozen=True)
class OrderPlan:
    proposal: Proposal
    market: MarketRules
    qty: Decimal
    entry_price: Decimal  # the limit price, or the reference price of a market entry
    notional: Decimal
    fee_estimate: Decimal
    risk_amount: Decimal | None  # loss if the stop-loss is hit, both fees included
    exits: ExitPlan
    notes: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        p, m = self.proposal, self.market
        price = "market" if p.entry_type is OrderType.MARKET else f"limit {_fmt(self.entry_price)}"
        out = [
            f"{p.side.value.upper()} {_fmt(self.qty)} {m.base} {p.symbol} {price}"
            f" (wallet {p.wallet}, source {p.source.value})",
            f"  notional ~{self.notional.quantize(Decimal('0.01'))} {m.quote}"
            f" at {_fmt(self.entry_price)}; fees ~{self.fee_estimate.quantize(Decimal('0.0001'))}"
            f" {m.quote}",
        ]
        if self.risk_amount is not None:
            out.append(
                f"  risk to stop-loss ~{self.risk_amount.quantize(Decimal('0.01'))} {m.quote}"
            )
        legs = []
        if p.take_profit is not None:
            legs.append(f"TP {_fmt(p.take_profit)}")
        if p.stop_loss is not None:
            legs.append(f"SL {_fmt(p.stop_loss)}")
        if legs:
            how = {
                ExitPlan.OCO: "native OCO on the exchange",
                ExitPlan.ATTACHED: "attached to the entry on the exchange",
                ExitPlan.WATCHDOG: "local watchdog (watched only while kobe run or kobe-tui runs)",
                ExitPlan.NONE: "none",
            }[self.exits]
            out.append(f"  exits: {', '.join(legs)} via {how}")
        else:
            out.append("  exits: none (no TP/SL given)")
        out += [f"  note: {n}" for n in self.notes]
        return out


@dataclass(frozen=True)
class Placement:
    plan: OrderPlan
    entry: Order
    exits: tuple[Order, ...] = ()
    watch: WatchItem | None = None
    notes: tuple[str, ...] = field(default=())


@dataclass
class ReconcileReport:
    resolved: list[str] = field(
        default_factory=list
    )  # client ids whose unknown outcome was settled
    external: list[Order] = field(default_factory=list)  # on the exchange, unknown to the journal
    exits_placed: list[str] = field(default_factory=list)  # entries whose exits were placed/resumed
    would: list[str] = field(default_factory=list)  # what a read-only review did not send


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
        self.watchdog = Watchdog(watchdog_dir or self.data_dir)
        self._last: dict[str, OrderEvent] | None = None  # last event per client id
        self._filled: dict[str, Decimal] = {}  # the most journaled as filled, per client id
        self._seen_open: set[str] = set()  # client ids sync just saw open; poll need not ask
        self.listeners: list[Callable[[OrderEvent], None]] = []  # told of every journaled event
        # told of what needs the operator (severity, code, message); the engine makes alerts
        self.on_alert: Callable[[str, str, str], None] = _log_alert
        self._fee_rates: dict[str, Decimal | None] = {}  # client id -> its third-asset fee's rate

    def journal_state(self) -> dict[str, OrderEvent]:
        """The last event per client id: read from the journal's tail once, then kept current."""
        if self._last is None:
            self._last = {}
            for event in self.journal.tail(RECONCILE_TAIL):
                if event.exchange == self.exchange_name:  # a journal may serve several venues
                    self._last[event.client_id] = event
                    if event.event in ("fill", "partial_fill"):
                        self._filled[event.client_id] = event.filled
        return self._last

    def sync(self) -> int:
        """Journal what happened on the exchange to orders the journal has as open.

        The paper venues report fills as events; a real exchange is asked: an order Kobe has as
        open that is no longer in the open orders is looked up and its fill or cancel journaled.
        Returns how many orders changed.
        """
        tracked = [
            (cid, event)
            for cid, event in self.journal_state().items()
            if event.event in ("ack", "partial_fill") and OrderStatus(event.status).is_open
        ]
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
        changed = 0
        for cid, event in tracked:
            current = open_now.get(cid) or attached.get(cid)
            if current is None and self._attached_leg(cid, event.symbol):
                continue  # not found by the entry's ids this time: asked again next tick
            if current is None:
                current = self.exchange.fetch_order_by_client_id(cid, event.symbol)
                if current is None:
                    continue
            if current.filled == event.filled and current.status.value == event.status:
                continue
            if current.filled > event.filled:
                self._journal_fill(current, event.wallet, event.source)
            if current.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
                self._journal_order(
                    "cancel", current, event.wallet, event.source, "on the exchange"
                )
            changed += 1
        return changed

    def _attached_leg(self, cid: str, symbol: str) -> bool:
        """A TP/SL leg the exchange made from an entry's attached prices: on a venue that
        attaches them, Kobe never sends a ``tp``/``sl`` leg itself."""
        return cid[-2:] in ("tp", "sl") and self.exchange.capabilities(symbol).attached_tp_sl

    def _held_legs(self, tracked: Iterable[tuple[str, OrderEvent]]) -> list[Order]:
        """The exchange's current view of the attached TP/SL among ``tracked`` (client id and
        last event of orders Kobe has as open): one read per entry."""
        entries = {
            (entry_of(cid) or "", event.symbol)
            for cid, event in tracked
            if self._attached_leg(cid, event.symbol)
        }
        return [leg for e, symbol in sorted(entries) for leg in self._attached_legs(symbol, e)]

    def _attached_legs(self, symbol: str, entry_cid: str) -> list[Order]:
        entry = self.journal_state().get(entry_cid)
        if entry is None or not entry.exchange_id:
            return []
        return self.exchange.fetch_attached_exits(symbol, entry.exchange_id, entry_cid)

    def _settle_unknown(self, report: ReconcileReport) -> list[tuple[str, Order | None]]:
        """Intents whose outcome is unknown: looked up by client id, their real state journaled.

        Returns each settled client id with the order found (None: never reached the exchange).
        """
        settled: list[tuple[str, Order | None]] = []
        for cid, event in list(self.journal_state().items()):
            if event.event not in ("intent", "unknown"):
                continue
            found = self._look_up(cid, event, "at start-up")
            settled.append((cid, found))
            report.resolved.append(cid)
        return settled

    def _look_up(self, cid: str, event: OrderEvent, when: str) -> Order | None:
        """An order whose send was not answered, looked up by client id: what is found is
        journaled (``ack`` and its fill), or ``reject`` when the exchange never had it."""
        found = self.exchange.fetch_order_by_client_id(cid, event.symbol)
        if found is None:
            self._journal(
                "reject",
                cid,
                None,
                event.symbol,
                Side(event.side),
                OrderType(event.type),
                event.qty,
                event.price,
                status="rejected",
                wallet=event.wallet,
                source=event.source,
                reason=f"not on the exchange: never sent (looked up {when})",
            )
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
            if self._exits_live(item.entry_client_id):
                return None
            return (
                f"entry {item.entry_client_id} ({item.side.value} {_fmt(entry.filled)} "
                f"{item.symbol}) filled: its exits ({item.exits.value}) would be placed"
            )
        if item.state is WatchState.WATCHING:
            price = self.exchange.fetch_ticker(item.symbol).last
            leg = item.touched(price)
            if leg is not None and not self._exits_live(item.entry_client_id):
                return (
                    f"{leg.replace('_', '-')} of {item.entry_client_id} touched at "
                    f"{_fmt(price)}: the watchdog would {item.side.opposite.value} "
                    f"{_fmt(item.qty)} {item.symbol} at market"
                )
        return None

    def open_orders(self) -> list[tuple[Order, str, str]]:
        """Open orders with the wallet and source the journal knows (``external`` otherwise)."""
        last = self.journal_state()
        held = [
            (cid, e)
            for cid, e in last.items()
            if e.event in ("ack", "partial_fill") and _is_open(e.status)
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

    def net_qty(self, symbol: str, entry: Order) -> Decimal:
        """What a filled entry left in hand: a buy's fee paid in the base asset is not ours."""
        qty = entry.filled
        if entry.side is Side.BUY and entry.fee_asset == self.exchange.market(symbol).base:
            qty = self.exchange.amount_to_precision(symbol, qty - entry.fee)
        return qty

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
            elif leg.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED) and _is_open(
                last.status
            ):
                self._journal_order("cancel", leg, entry.wallet, entry.source, "its sibling fired")
            if leg.filled > (last.filled if last is not None else 0):
                self._journal_fill(leg, entry.wallet, entry.source)
        return legs

    def _exits_live(self, entry_cid: str) -> bool:
        """True when the exchange has confirmed an exit of ``entry_cid``: one resting (acked,
        open), partly filled, or filled. An intent alone proves nothing: the send may have
        failed, so it never counts as cover."""
        state = self.journal_state()
        for suffix in EXIT_SUFFIXES:
            event = state.get(f"{entry_cid}{suffix}")
            if event is None:
                continue
            if event.event in ("fill", "partial_fill"):
                return True
            if event.event == "ack" and _is_open(event.status):
                return True
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
        """A fee charged in a third asset (BNB on Binance): its price in the quote asset, from
        the exchange's ticker of FEE/QUOTE, read once per order and journaled with each of its
        events (the book replays it, never the network). None for a fee in the base or the
        quote asset; None with an alert when no price can be had: that fee is not counted as 0
        silently."""
        if o.fee <= 0 or not o.fee_asset:
            return None
        base, _, quote = o.symbol.partition("/")
        if o.fee_asset in (base, quote):
            return None
        if o.client_id in self._fee_rates:
            return self._fee_rates[o.client_id]
        pair = f"{o.fee_asset}/{quote}"
        rate: Decimal | None = None
        try:
            last = self.exchange.fetch_ticker(pair).last
            if not last.is_finite() or last <= 0:
                raise ExchangeError(f"{pair}: no usable last price ({last})")
            rate = last
        except ExchangeError as exc:
            self.on_alert(
                "error",
                "fee_unpriced",
                f"{o.symbol} order {o.client_id}: its fee {_fmt(o.fee)} {o.fee_asset} cannot be "
                f"converted to {quote} (no {pair} price: {exc}); it is left out of the trade's "
                f"fees and shown apart (kobe positions: fees_unpriced)",
            )
        self._fee_rates[o.client_id] = rate
        return rate

    def _journal_fill(self, o: Order, wallet: str, source: str, reason: str = "") -> None:
        """Journal ``o``'s fill once: a fill already journaled (same cumulative quantity, found
        again by a look-up, a sync or a restart) is not written twice."""
        self.journal_state()
        if o.filled <= 0 or o.filled <= self._filled.get(o.client_id, ZERO):
            return
        kind = "fill" if o.filled >= o.qty else "partial_fill"
        self._journal_order(kind, o, wallet, source, reason)


class Router(RouterView):
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
        # quote a wallet already has in open positions and working entries (the position book)
        self.committed: Callable[[str], Decimal] = lambda wallet: ZERO
        self.on_dust: Callable[[str], None] = lambda entry_cid: None  # a position too small

    # -----------------------------------------------------------------------------------------
    # Plan

    def plan(self, proposal: Proposal) -> OrderPlan:
        """Validate and size ``proposal``; raises :class:`Refused` with every reason."""
        p = proposal
        try:
            market: MarketRules | None = self.exchange.market(p.symbol)
        except InvalidOrder:
            market = None
        reference: Decimal | None = p.price
        base_held: Decimal | None = None
        if market is not None:
            if p.entry_type is OrderType.MARKET:
                t = self.exchange.fetch_ticker(p.symbol)
                side_price = t.ask if p.side is Side.BUY else t.bid
                reference = side_price if side_price is not None else t.last
            base_held = self.exchange.get_balance(market.base)
        reasons = validate_proposal(
            p,
            market=market,
            reference_price=reference,
            risk=self.risk,
            kill_switch=self.kill_switch(),
            mode_problems=self.mode_problems(),
            base_held=base_held,
        )
        try:
            wallet_balance = self.wallets.balance(p.wallet)
        except KeyError:
            reasons.append(f"unknown wallet {p.wallet}")
            wallet_balance = ZERO
        else:
            problem = self.wallets.venue_problem(p.wallet, self.exchange_name)
            if problem:
                reasons.append(problem)
        if reasons:
            raise Refused(reasons)
        assert market is not None and reference is not None and base_held is not None
        return self._size(p, market, reference, wallet_balance, base_held)

    def _size(
        self,
        p: Proposal,
        m: MarketRules,
        ref: Decimal,
        wallet_balance: Decimal,
        base_held: Decimal,
    ) -> OrderPlan:
        notes: list[str] = []
        quote_free = self.exchange.get_balance(m.quote)
        cap = self.wallets.cap(p.wallet)
        factor = self.size_factor()
        if p.side is Side.BUY:
            committed = self.committed(p.wallet)
            available = max(ZERO, wallet_balance - committed)
            room = max(ZERO, cap - committed) if cap is not None else available
            fundable = min(available, quote_free, room)
            if p.sizing is Sizing.QUOTE:
                need = p.amount
                if need > available:
                    if committed > 0:
                        raise Refused(
                            [
                                f"insufficient balance: need {_fmt(need)} {m.quote}; "
                                f"{p.wallet} can spend {_money(available)} {m.quote}: balance "
                                f"{_money(wallet_balance)}, open {_money(committed)}"
                            ]
                        )
                    raise Refused(
                        [
                            f"insufficient balance: need {_fmt(need)} {m.quote}, "
                            f"wallet {p.wallet} has {_fmt(wallet_balance)}"
                        ]
                    )
                if cap is not None and committed + need > cap:
                    raise Refused(
                        [
                            f"{_fmt(need)} {m.quote} would lift wallet {p.wallet}'s exposure to "
                            f"{_money(committed + need)} {m.quote}, over its cap {_fmt(cap)} "
                            f"(open {_money(committed)})"
                        ]
                    )
                if need > quote_free:
                    raise Refused(
                        [
                            f"insufficient balance: need {_fmt(need)} {m.quote}, the "
                            f"{self.exchange_name} account has {_fmt(quote_free)} free"
                        ]
                    )
                raw_qty = need / ref
            else:
                assert p.stop_loss is not None
                risk_cash = wallet_balance * p.amount / 100 * factor
                raw_qty = risk_cash / abs(ref - p.stop_loss)
                if raw_qty * ref > fundable:
                    raw_qty = fundable / ref
                    notes.append(f"size capped at {_fmt(fundable)} {m.quote} (balance or cap)")
        else:
            if p.sizing is Sizing.QUOTE:
                raw_qty = p.amount / ref
                if raw_qty > base_held:
                    raise Refused(
                        [
                            f"insufficient balance: need {_fmt(raw_qty.quantize(m.step_size))} "
                            f"{m.base}, you hold {_fmt(base_held)}"
                        ]
                    )
            else:
                assert p.stop_loss is not None
                risk_cash = wallet_balance * p.amount / 100 * factor
                raw_qty = min(risk_cash / abs(ref - p.stop_loss), base_held)
        if factor != 1 and p.sizing is Sizing.RISK:
            notes.append(f"risk scaled by {_fmt(factor)} (kill switch in WARNING)")
        # Rounded once, here, from the market's step and tick, for every venue (paper and ccxt
        # get identical numbers and refuse anything else): quantities down to the step; a buy's
        # prices down and a sell's up, never past the operator's. The exits are on the other side.
        qty = floor_to_step(raw_qty, m.step_size)
        price = ref
        if p.entry_type is OrderType.LIMIT:
            price = round_price(ref, m.tick_size, buy=p.side is Side.BUY)
        exit_buy = p.side is Side.SELL
        p = replace(
            p,
            price=price if p.entry_type is OrderType.LIMIT else p.price,
            stop_loss=None
            if p.stop_loss is None
            else round_price(p.stop_loss, m.tick_size, buy=exit_buy),
            take_profit=None
            if p.take_profit is None
            else round_price(p.take_profit, m.tick_size, buy=exit_buy),
        )
        if qty <= 0:
            raise Refused(
                [
                    f"quantity rounds to zero at step {_fmt(m.step_size)} {m.base} "
                    f"(computed {raw_qty:.8f})"
                ]
            )
        if qty < m.min_qty:
            raise Refused(
                [f"quantity {_fmt(qty)} {m.base} is below the minimum {_fmt(m.min_qty)} {m.base}"]
            )
        notional = qty * price
        if notional < m.min_notional:
            raise Refused(
                [
                    f"order value {notional.quantize(Decimal('0.01'))} {m.quote} is below the "
                    f"exchange minimum {_fmt(m.min_notional)} {m.quote}"
                ]
            )
        rate = self.taker_fee if p.entry_type is OrderType.MARKET else self.maker_fee
        fee = notional * rate
        self._check_exits_fit(p, m, qty, rate)
        risk_amount = None
        if p.stop_loss is not None:
            risk_amount = qty * abs(price - p.stop_loss) + fee + qty * p.stop_loss * self.taker_fee
        return OrderPlan(
            proposal=p,
            market=m,
            qty=qty,
            entry_price=price,
            notional=notional,
            fee_estimate=fee,
            risk_amount=risk_amount,
            exits=self._exit_plan(p),
            notes=tuple(notes),
        )

    def _check_exits_fit(self, p: Proposal, m: MarketRules, qty: Decimal, rate: Decimal) -> None:
        """Refuse an entry whose exits could not be placed: what a buy leaves in hand (its fee
        may be taken in the base asset), rounded down to the step, must meet the venue's
        minimum quantity and value at the lowest exit price."""
        legs = [x for x in (p.stop_loss, p.take_profit) if x is not None]
        if p.side is not Side.BUY or not legs:
            return
        held = self.exchange.amount_to_precision(p.symbol, qty - qty * rate)
        if p.stop_loss is not None:  # the stop leg sells at its limit, below the stop
            legs.append(self._stop_limit(m, Side.SELL, p.stop_loss))
        lowest = min(legs)
        if held < m.min_qty or held * lowest < m.min_notional:
            raise Refused(
                [
                    f"its exits could not be placed: {_fmt(held)} {m.base} left after fees is "
                    f"{_money(held * lowest)} {m.quote} at {_fmt(lowest)}, below the exchange "
                    f"minimum {_fmt(m.min_notional)} {m.quote} (or {_fmt(m.min_qty)} {m.base}); "
                    "buy a little more"
                ]
            )

    def _stop_limit(self, m: MarketRules, side: Side, stop: Decimal) -> Decimal:
        """The limit of a stop leg, from ``router.stop_limit_offset_pct``: the same on every venue."""
        return stop_limit_price(m, side, stop, self.settings.stop_limit_offset_pct / 100)

    def _exit_plan(self, p: Proposal) -> ExitPlan:
        if p.take_profit is None and p.stop_loss is None:
            return ExitPlan.NONE
        if self.exits_policy == "watchdog":
            return ExitPlan.WATCHDOG
        caps = self.exchange.capabilities(p.symbol)
        if caps.native_oco and p.take_profit is not None and p.stop_loss is not None:
            return ExitPlan.OCO
        if caps.attached_tp_sl and (caps.attached_on_market or p.entry_type is OrderType.LIMIT):
            return ExitPlan.ATTACHED
        return ExitPlan.WATCHDOG

    # -----------------------------------------------------------------------------------------
    # Execute

    def submit(self, proposal: Proposal) -> Placement:
        return self.execute(self.plan(proposal))

    def execute(self, plan: OrderPlan) -> Placement:
        p = plan.proposal
        ks = self.kill_switch()  # again: it may have tripped since the plan was shown
        if ks.tripped:
            raise Refused([f"kill switch is TRIPPED: {ks.reason or 'no reason given'}"])
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
        self._inflight[cid] = (p, plan)
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
            self._journal_plan(
                "unknown", cid, plan, status="unknown", reason=f"outcome unknown: {exc}"
            )
            self._audit_order(p, cid, None, f"outcome unknown: {exc}")
            raise
        finally:
            self._inflight.pop(cid, None)
        self._journal_order("ack", order, p.wallet, p.source.value, p.reason)
        self._journal_fill(order, p.wallet, p.source.value)
        self._audit_order(p, cid, order.id, "placed")
        exits: tuple[Order, ...] = ()
        notes: list[str] = []
        if watch is not None:
            recorded = self.watchdog.update(cid, entry_id=order.id)
            watch = recorded
            if order.status is OrderStatus.FILLED:
                try:
                    exits, watch = self._place_exits(recorded, order)
                except REFUSALS as exc:
                    watch = self._fall_back_to_watchdog(recorded, order, exc)
                    notes.append(
                        f"ENTRY FILLED, EXCHANGE EXITS NOT PLACED ({exc}): the local watchdog "
                        "now guards TP/SL, only while `kobe run` or `kobe-tui` is running"
                    )
                except ExchangeError as exc:  # they may exist: looked up, never sent twice
                    notes.append(
                        f"ENTRY FILLED, EXITS' OUTCOME UNKNOWN ({exc}): they are looked up by "
                        "client id at the next poll (kobe run, the cockpit, kobe trade/cancel)"
                    )
            if plan.exits is ExitPlan.WATCHDOG:
                notes.append(
                    "exits are watched locally: only while `kobe run` or `kobe-tui` is running"
                )
        return Placement(plan, order, exits, watch, tuple(notes))

    def _place_exits(
        self, item: WatchItem, entry: Order
    ) -> tuple[tuple[Order, ...], WatchItem | None]:
        """The entry filled: put its exits in place. Returns the exit orders and the new item.

        Never twice: if the journal shows exits already sent for this entry (a crash came
        between the send and the bookkeeping), the item is dropped instead.
        """
        self._settle_exits(item.entry_client_id, item.symbol)
        if self._exits_live(item.entry_client_id):
            self.watchdog.remove(item.entry_client_id)
            return (), None
        return self._send_exits(item, self.net_qty(item.symbol, entry))

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
            legs = self._journal_attached(item.symbol, item.entry_client_id, "confirmed")
            if not legs:
                raise InvalidOrder(
                    f"{self.exchange_name} shows no TP/SL attached to entry {item.entry_client_id}"
                )
            self.watchdog.remove(item.entry_client_id)
            return legs, None
        exit_side = item.side.opposite
        if exit_side is Side.SELL:
            base = self.exchange.market(item.symbol).base
            qty = self.exchange.amount_to_precision(
                item.symbol, min(qty, self.exchange.get_balance(base))
            )
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

    def _fall_back_to_watchdog(self, item: WatchItem, entry: Order, exc: Exception) -> WatchItem:
        self.on_alert(
            "warning",
            "exits_fallback",
            f"entry {item.entry_client_id} ({item.symbol}) filled but its exits could not be "
            f"placed ({exc}): the local watchdog guards it, only while an engine runs",
        )
        return self.watchdog.update(
            item.entry_client_id,
            qty=self.net_qty(item.symbol, entry),
            exits=ExitPlan.WATCHDOG,
            state=WatchState.WATCHING,
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
        )
        self.watchdog.add(item)  # the cover during the gap, persisted before anything moves
        for order in self.exchange.fetch_open_orders(last.symbol):
            if entry_of(order.client_id) == entry_cid and order.client_id[-2:] in ("tp", "sl"):
                with contextlib.suppress(OrderNotFound):  # its OCO sibling went with a leg
                    self.cancel(order.id, source)
        held = self.journal_state()
        if any(
            _is_open(held[f"{entry_cid}{leg}"].status)
            for leg in ("tp", "sl")
            if f"{entry_cid}{leg}" in held and self._attached_leg(f"{entry_cid}{leg}", last.symbol)
        ):
            with contextlib.suppress(OrderNotFound):  # fired or gone meanwhile: sync journals it
                self._cancel_attached(entry_cid, last.symbol, source)
        if plan is ExitPlan.WATCHDOG:
            return (), item
        return self._send_exits(item, qty)

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

    # -----------------------------------------------------------------------------------------
    # Poll: pending entries and the local watchdog

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
                        try:
                            exits, _ = self._place_exits(item, entry)
                        except REFUSALS as exc:
                            self._fall_back_to_watchdog(item, entry, exc)
                            raise
                        sent += exits
                    elif not entry.status.is_open:
                        self.watchdog.remove(item.entry_client_id)
                elif item.state is WatchState.WATCHING:
                    if item.retry_at is not None and self.clock() < item.retry_at:
                        continue  # a refused exit waits out its backoff
                    price = prices.get(item.symbol)
                    if price is None:
                        price = prices[item.symbol] = self.exchange.fetch_ticker(item.symbol).last
                    leg = item.touched(price)
                    if leg is not None:
                        self._settle_exits(item.entry_client_id, item.symbol)
                        if self._exits_live(item.entry_client_id):
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
            if e.event not in ("ack", "partial_fill") or not _is_open(e.status) or e.price is None:
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
                self.cancel(e.exchange_id or cid, _source_of(e.source))
            self._resting.pop(cid, None)
            after = self.journal_state().get(cid)
            if after is None or after.event != "cancel":
                continue
            remaining = after.qty - after.filled
            if remaining <= 0:
                continue
            reason = (
                f"stop {cid} rested at its limit {_fmt(limit)} after a gap (price "
                f"{_fmt(price)}): sold at market (local watchdog)"
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
        dust = self._dust(item.symbol, item.qty, price)
        if dust is not None:
            self.watchdog.remove(cid)
            self.on_alert(
                "warning",
                "dust",
                f"{item.symbol} {_fmt(item.qty)} ({item.wallet}, entry {cid}) is dust: {dust}; "
                "it is not sold and no longer watched",
            )
            self.on_dust(cid)
            return None
        try:
            order = self._fire(item, leg, price)
        except REFUSALS as exc:
            attempts = item.attempts + 1
            wait = min(MAX_BACKOFF_S, 2**attempts)
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
                    f"{item.symbol} {_fmt(item.qty)} ({item.wallet}, entry {cid}): the "
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

    def _dust(self, symbol: str, qty: Decimal, price: Decimal) -> str | None:
        """Why ``qty`` can never be sold on this venue (below its minimum quantity once on the
        step), or None. A value below the minimum notional is not dust: the price may come
        back, so such an exit is refused, backed off and alerted like any refusal."""
        m = self.exchange.market(symbol)
        sellable = self.exchange.amount_to_precision(symbol, qty)
        if sellable < m.min_qty or sellable <= 0:
            return f"below the minimum quantity {_fmt(m.min_qty)} {m.base}"
        return None

    def _fire(self, item: WatchItem, leg: str, price: Decimal) -> Order:
        reason = f"{leg.replace('_', '-')} touched at {_fmt(price)} (local watchdog)"
        suffix = "tp" if leg == "take_profit" else "sl"
        order = self.send_exit(
            item.entry_client_id,
            suffix,
            item.symbol,
            item.side.opposite,
            item.qty,
            item.wallet,
            item.source,
            reason,
        )
        self.watchdog.remove(item.entry_client_id)  # the sibling leg is dropped with it
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
        """Close (part of) a position at market; the client id is ``<entry id><suffix>``."""
        cid = f"{entry_cid}{suffix}"
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
        except (InvalidOrder, InsufficientFunds, AuthenticationError, NotSupported) as exc:
            self._journal(
                "reject",
                cid,
                None,
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

    # -----------------------------------------------------------------------------------------
    # Reconcile, list, cancel

    def reconcile(self) -> ReconcileReport:
        """At start: outcomes settled, external orders listed, pending exits placed and the
        watchdog advanced (this sends: only in a session that passed the gate)."""
        report = ReconcileReport()
        for cid, found in self._settle_unknown(report):
            item = self.watchdog.get(cid)
            if found is None:
                self.watchdog.remove(cid)
            elif item is not None and not item.entry_id:
                self.watchdog.update(cid, entry_id=found.id)
        for item in self.watchdog.items():
            if item.state is not WatchState.PENDING_ENTRY and self._exits_live(
                item.entry_client_id
            ):
                self.watchdog.remove(item.entry_client_id)  # its exit went out before a crash
        self.sync()  # fills and cancels that happened while no engine ran
        report.external = self._external()
        before = {i.entry_client_id for i in self.watchdog.items()}
        self.poll()
        after = {i.entry_client_id for i in self.watchdog.items()}
        report.exits_placed = sorted(before - after)
        for order in report.external:
            log.warning(
                "external order on %s: %s %s %s %s (not Kobe's; left alone)",
                self.exchange_name,
                order.id,
                order.side.value,
                order.qty,
                order.symbol,
            )
        return report

    def paper_reset(self) -> str | None:
        """A paper account that started over (its state dir was deleted) while the journal has
        orders the old account acknowledged: each order the journal has as open is journaled as
        cancelled (``paper account reset``), never left dangling. Returns what to tell the
        operator, or None. Orders never sent (a lone ``intent``) are left to reconciliation."""
        noted = getattr(self.exchange, "start_over_noted", None)
        if not getattr(self.exchange, "fresh_account", False) or noted is None:
            return None
        state = self.journal_state()
        noted()
        if not any(e.event not in ("intent", "unknown", "reject") for e in state.values()):
            return None  # a new data dir, or nothing the old account knew
        gone = []
        for cid, e in list(state.items()):
            if e.event in ("fill", "cancel", "reject", "intent", "unknown"):
                continue
            self._journal(
                "cancel", cid, e.exchange_id, e.symbol, Side(e.side), OrderType(e.type), e.qty,
                e.price, status="canceled", wallet=e.wallet, source=e.source,
                reason="paper account reset", filled=e.filled, avg_price=e.avg_price,
            )  # fmt: skip
            self.watchdog.remove(cid)
            gone.append(cid)
        return (
            f"{self.exchange_name}: the paper account starts over from the configured balances "
            f"(its state file was missing); {len(gone)} open order(s) of the old account "
            "journaled as cancelled (paper account reset)"
        )

    def cancel(self, ref: str, source: Source) -> Order:
        """Cancel by exchange id or client id. Unknown or already finished: OrderNotFound, saying which."""
        last = self.journal_state()
        event = last.get(ref) or next((e for e in last.values() if e.exchange_id == ref), None)
        if (
            event is not None
            and self._attached_leg(event.client_id, event.symbol)
            and _is_open(event.status)
        ):
            entry_cid = entry_of(event.client_id) or ""
            legs = self._cancel_attached(entry_cid, event.symbol, source)
            return next(leg for leg in legs if leg.client_id == event.client_id)
        for order in self.exchange.fetch_open_orders():
            if ref in (order.id, order.client_id):
                break
        else:
            last = self.journal_state()
            event = last.get(ref) or next((e for e in last.values() if e.exchange_id == ref), None)
            if event is None:
                raise OrderNotFound(f"order {ref}: unknown (not open on {self.exchange_name})")
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
        self._journal_order(
            "cancel", cancelled, wallet, source.value, f"cancelled by operator ({source.value})"
        )
        try:
            self._settle_sibling(cancelled, wallet, source.value)
        except ExchangeError as exc:  # the sibling's state is settled by the next sync
            log.warning("cancel %s: its OCO sibling not looked up yet: %s", order.client_id, exc)
        if self.watchdog.get(order.client_id) is not None and cancelled.filled == 0:
            self.watchdog.remove(order.client_id)
        return cancelled

    def _cancel_attached(self, entry_cid: str, symbol: str, source: Source) -> list[Order]:
        """Cancel the TP/SL the exchange holds for ``entry_cid`` (both legs: the pair goes as
        one), audited and journaled."""
        entry = self.journal_state().get(entry_cid)
        if entry is None or not entry.exchange_id:
            raise OrderNotFound(f"position {entry_cid}: unknown entry")
        audit = {"order_id": entry.exchange_id, "client_id": f"{entry_cid}tp+sl", "symbol": symbol}
        try:
            legs = self.exchange.cancel_attached_exits(symbol, entry.exchange_id, entry_cid)
        except ExchangeError as exc:
            self._audit_send("cancel", source.value, **audit, outcome=f"failed: {exc}")
            raise
        self._audit_send("cancel", source.value, **audit, outcome="cancelled")
        for leg in legs:
            before = self.journal_state().get(leg.client_id)
            if leg.filled > (before.filled if before is not None else 0):
                self._journal_fill(leg, entry.wallet, entry.source)  # fired meanwhile
            if not leg.status.is_open:
                self._journal_order(
                    "cancel", leg, entry.wallet, source.value,
                    f"cancelled by operator ({source.value})",
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

    # -----------------------------------------------------------------------------------------
    # Journal helpers

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
