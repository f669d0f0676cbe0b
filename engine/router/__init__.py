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

from engine.exchange.base import (
    Order,
    OrderType,
    Side,
)
from engine.proposal import Proposal, Source
from engine.router.orders import (
    EXIT_SUFFIXES,
    SWEEP,
    ClientIds,
    OrderPlan,
    Placement,
    ReconcileReport,
    StaticWallets,
    WalletBook,
    entry_of,
    log,
    sweep_of,
)
from engine.router.pending import follow
from engine.router.sweeping import Sweeping
from engine.router.view import RouterView
from engine.watchdog import WatchState


class Router(Sweeping):
    """The one order path: plan, send (entry and exits), watch, cancel; every step journaled
    and every send audited. It holds an :class:`Exchange`, which only the gate builds."""

    def submit(self, proposal: Proposal) -> Placement:
        return self.execute(self.plan(proposal))

    def cancel(self, ref: str, source: Source, why: str = "", *, cover_part: bool = False) -> Order:
        """Cancel by exchange id or client id. ``cover_part`` (an operator's cancel): an entry
        cancelled with a part filled gets its exits for that part at once (or the local
        watchdog guards it), not at the next engine's start: the part is held now, and its
        entry will never fill more. A close or a flatten cancels without: it sells the part."""
        cancelled = super().cancel(ref, source, why)
        item = self.watchdog.get(cancelled.client_id)
        pending = item is not None and item.state is WatchState.PENDING_ENTRY
        if cover_part and pending and cancelled.filled > 0:
            self._seen_open.discard(cancelled.client_id)  # open when the session began
            self.poll()
        return cancelled

    def reconcile(self) -> ReconcileReport:
        """At start: outcomes settled, external orders listed, pending exits placed and the
        watchdog advanced (this sends: only in a session that passed the gate)."""
        report = ReconcileReport()
        for cid, found in self._settle_unknown(report):
            follow(self.watchdog, cid, found)
        for item in self.watchdog.items():
            if (
                item.state is not WatchState.PENDING_ENTRY
                and not item.replaces  # the old exits are live until `kobe exits` cancels them
                and self._exits_live(item.entry_client_id, item.stop_loss)
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


__all__ = [
    "EXIT_SUFFIXES",
    "SWEEP",
    "ClientIds",
    "OrderPlan",
    "Placement",
    "ReconcileReport",
    "Router",
    "RouterView",
    "StaticWallets",
    "WalletBook",
    "entry_of",
    "sweep_of",
]
