"""The router's shared parts: client ids, exit suffixes, plans, placements and reports,
the wallets it asks, and the figures' formatting."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_UP, Decimal
from typing import Protocol

from engine.audit import AuditLog
from engine.exchange.base import (
    AuthenticationError,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    MarketRules,
    NotSupported,
    Order,
    OrderStatus,
    OrderType,
)
from engine.journal import OrderEvent
from engine.proposal import Proposal, Source
from engine.untrusted import parse_utc
from engine.watchdog import ExitPlan, WatchItem

log = logging.getLogger(__name__)


ZERO = Decimal(0)


MAX_BACKOFF_S = 300  # a refused exit is tried again at most this far apart


OCO_FIRST_WAIT_S = 30  # a refused OCO is sent again after this, then twice as long each time
OCO_TRIES = 8  # sends of a refused OCO at most (about 22 minutes), then the watchdog keeps it


REFUSALS = (InvalidOrder, InsufficientFunds, AuthenticationError, NotSupported)  # definite "no"


class LoneLegLive(ExchangeError):
    """One attached exit armed without its refused sibling could not be cancelled yet."""


LONE_AUDIT_TAIL = 2000  # audit.jsonl lines read back for a lone leg's cancels (one a poll)


def lone_cancels(audit: AuditLog | None, state: dict[str, OrderEvent], entry_cid: str) -> int:
    """How many cancels of ``entry_cid``'s attached pair ``audit.jsonl`` holds since the order
    journal (``state``) saw one of its legs refused or removed: this episode, the try just made
    included. More than one: an earlier try, by this engine or one before a restart, raised
    the alert. No audit log, a lost or damaged one, a time it cannot read: fewer are counted
    and the alert is raised again (fail closed), never suppressed."""
    ended = [
        e.ts
        for leg in ("tp", "sl")
        if (e := state.get(f"{entry_cid}{leg}")) is not None and not is_open_status(e.status)
    ]
    if audit is None or not ended:
        return 0
    tried = 0
    for row in audit.tail(LONE_AUDIT_TAIL):
        if row.get("action") == "cancel" and row.get("client_id") == f"{entry_cid}tp+sl":
            with contextlib.suppress(ValueError):
                tried += parse_utc(row.get("ts"), "ts") >= max(ended)
    return tried


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
        return f"{self._prefix}{base36(ms)}n{self._n}"

    def resume_after(self, used: Iterable[str]) -> None:
        """Number on after the ids a previous run used (the journal's tail), as a run that never
        stopped would: a restart continues the same ids."""
        for cid in used:
            _, sep, n = (entry_of(cid) or sweep_of(cid) or cid).rpartition("n")
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


SWEEP_SUFFIX = "ds"  # a dust sweep's client id: a fresh id plus this (it closes no entry)
SWEEP = Source.DUST_SWEEP.value  # its journal source, and the strategy of the trade it books


def sweep_of(client_id: str) -> str | None:
    """The fresh id under a dust sweep's client id (``<id>ds``), or None: not a sweep."""
    base = client_id[: -len(SWEEP_SUFFIX)]
    return base if client_id.endswith(SWEEP_SUFFIX) and base[-1:].isdigit() else None


def base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def source_of(value: str) -> Source:
    try:
        return Source(value)
    except ValueError:
        return Source.STRATEGY


def log_alert(severity: str, code: str, message: str) -> None:
    log.warning("%s (%s): %s", severity, code, message)


def is_open_status(status: str) -> bool:
    try:
        return OrderStatus(status).is_open
    except ValueError:
        return False


def fmt_money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def fmt_qty(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")


EIGHT = Decimal("0.00000001")  # quote amounts and prices in a message: 8 decimals at most


FEE_PLACES = Decimal("0.0001")  # a plan's fees and the most a buy spends, in the quote


def fmt_plain(value: Decimal) -> str:
    """No exponent, no trailing zeros (a product of a step and a price)."""
    return format(value.normalize(), "f")


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
    slippage_bps: Decimal | None = None  # a market buy: the slippage above the ask it is sized for
    spend_max: Decimal | None = None  # a buy: the most its fill spends within that allowance

    def lines(self) -> list[str]:
        p, m = self.proposal, self.market
        price = (
            "market" if p.entry_type is OrderType.MARKET else f"limit {fmt_qty(self.entry_price)}"
        )
        out = [
            f"{p.side.value.upper()} {fmt_qty(self.qty)} {m.base} {p.symbol} {price}"
            f" (wallet {p.wallet}, source {p.source.value})",
            f"  notional ~{self.notional.quantize(Decimal('0.01'))} {m.quote}"
            f" at {fmt_qty(self.entry_price)}; fees ~{self.fee_estimate.quantize(FEE_PLACES)}"
            f" {m.quote}",
        ]
        if self.slippage_bps is not None and self.spend_max is not None:
            out.append(
                f"  sized for up to {fmt_qty(self.slippage_bps)} bps slippage: "
                f"spends at most {fmt_plain(self.spend_max.quantize(FEE_PLACES, ROUND_UP))}"
                f" {m.quote}"
            )
        if self.risk_amount is not None:
            out.append(
                f"  risk to stop-loss ~{self.risk_amount.quantize(Decimal('0.01'))} {m.quote}"
            )
        legs = []
        if p.take_profit is not None:
            legs.append(f"TP {fmt_qty(p.take_profit)}")
        if p.stop_loss is not None:
            legs.append(f"SL {fmt_qty(p.stop_loss)}")
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
