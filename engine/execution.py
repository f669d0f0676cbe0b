"""ExecutionEngine: every proposal and exit passes here, between the risk engine and the routers.

* ``submit``: the risk engine is asked first (a tripped kill switch or a cooldown blocks every new
  entry, from any source, with its reason); then the router of the proposal's venue plans, sizes
  and places it.
* Positions and closed trades are derived from the order journal's own events (each router tells
  its listeners of every event it journals): an entry's fill opens a position; the fill of one of
  its exits (``<entry id>tp``, ``sl``, or ``cx`` for a close Kobe sent at market) closes it. A
  closed trade goes to ``trades.jsonl``, to the wallet manager (``on_trade_closed``) and to the risk
  engine; the strategies and the UI hear of it through ``on_closed``.
* ``close_position`` (the cockpit's ``x``, a strategy's exit, the kill switch's flatten) cancels
  the exits resting on the exchange and sells at market. ``flatten`` does that for every position
  Kobe opened and cancels its open entries; it never touches anything Kobe did not open.
* Exchange errors become alerts (``on_alert``), never crashes.

Open positions are persisted atomically in ``positions.json`` so a restart knows them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from engine.exchange.base import ExchangeError, Order, OrderNotFound, Side
from engine.fsutil import atomic_write_text
from engine.journal import OrderEvent
from engine.jsonutil import dumps
from engine.proposal import Proposal, Refused, Source
from engine.risk import RiskEngine
from engine.router import OrderPlan, Placement, Router, entry_of
from engine.trades import ClosedTrade, TradeStore
from engine.watchdog import ExitPlan, WatchItem, WatchState

log = logging.getLogger(__name__)

POSITIONS_FILE = "positions.json"


@dataclass(frozen=True)
class Position:
    """A position Kobe opened: an entry that filled (``qty`` > 0), or one still pending."""

    entry_client_id: str
    venue: str
    symbol: str
    side: Side
    qty: Decimal  # filled so far
    entry_price: Decimal | None
    entry_fee: Decimal
    wallet: str
    strategy: str
    opened_at: datetime
    take_profit: Decimal | None
    stop_loss: Decimal | None
    pending: bool  # the entry has not finished filling

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> Position:
        def dec(v: Any) -> Decimal | None:
            return None if v is None else Decimal(str(v))

        return cls(
            entry_client_id=str(r["entry_client_id"]),
            venue=str(r["venue"]),
            symbol=str(r["symbol"]),
            side=Side(r["side"]),
            qty=Decimal(str(r["qty"])),
            entry_price=dec(r.get("entry_price")),
            entry_fee=Decimal(str(r.get("entry_fee") or 0)),
            wallet=str(r["wallet"]),
            strategy=str(r["strategy"]),
            opened_at=datetime.fromisoformat(str(r["opened_at"]).replace("Z", "+00:00")),
            take_profit=dec(r.get("take_profit")),
            stop_loss=dec(r.get("stop_loss")),
            pending=bool(r.get("pending")),
        )


class WalletSink(Protocol):
    """What the execution engine needs of the wallet manager."""

    def on_trade_closed(
        self, wallet_id: str, pnl_usd: Decimal, fees_usd: Decimal, *, trade_id: str
    ) -> bool: ...


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
    ) -> None:
        self.routers = routers
        self.risk = risk
        self.trades = trades
        self.wallets = wallets
        self.clock = clock
        self.venue_of_wallet = venue_of_wallet
        self.on_closed = on_closed
        self.on_alert = on_alert
        self.path = Path(data_dir) / POSITIONS_FILE
        self._lock = threading.RLock()
        self._positions: dict[str, Position] = {}
        if self.path.exists():
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            for record in raw.get("positions", []):
                pos = Position.from_record(record)
                self._positions[pos.entry_client_id] = pos
        for venue, router in routers.items():
            router.size_factor = risk.size_factor
            router.listeners.append(self._listener(venue))

    # -- reading ------------------------------------------------------------------------------

    def positions(self) -> list[Position]:
        with self._lock:
            return [p for p in self._positions.values() if not p.pending]

    def pending(self) -> list[Position]:
        with self._lock:
            return [p for p in self._positions.values() if p.pending]

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
            cid = placement.entry.client_id
            if cid in self._positions:
                self._positions[cid] = replace(
                    self._positions[cid],
                    take_profit=proposal.take_profit,
                    stop_loss=proposal.stop_loss,
                    strategy=proposal.strategy or "manual",
                )
                self._save()
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
            entry_cid = entry_of(e.client_id)
            if entry_cid is None:
                self._on_entry_event(venue, e)
            elif e.event == "fill":
                self._on_exit_fill(entry_cid, e)

    def _on_entry_event(self, venue: str, e: OrderEvent) -> None:
        cid = e.client_id
        if e.event == "intent":
            self._positions[cid] = Position(
                entry_client_id=cid,
                venue=venue,
                symbol=e.symbol,
                side=Side(e.side),
                qty=Decimal(0),
                entry_price=None,
                entry_fee=Decimal(0),
                wallet=e.wallet,
                strategy="manual",  # set from the proposal as soon as execute returns
                opened_at=e.ts,
                take_profit=None,
                stop_loss=None,
                pending=True,
            )
            self._save()
            return
        pos = self._positions.get(cid)
        if pos is None:
            return
        if e.event in ("fill", "partial_fill"):
            self._positions[cid] = replace(
                pos,
                qty=_net_of_base_fee(e),
                entry_price=e.avg_price,
                entry_fee=_fee_in_quote(e),
                opened_at=e.ts if pos.qty == 0 else pos.opened_at,
                pending=e.event == "partial_fill",
            )
            self._save()
        elif e.event in ("reject", "cancel"):
            if e.filled > 0:
                self._positions[cid] = replace(
                    pos,
                    qty=_net_of_base_fee(e),
                    entry_price=e.avg_price,
                    entry_fee=_fee_in_quote(e),
                    pending=False,
                )
            else:
                del self._positions[cid]
            self._save()

    def _on_exit_fill(self, entry_cid: str, e: OrderEvent) -> None:
        pos = self._positions.pop(entry_cid, None)
        if pos is None or pos.entry_price is None or e.avg_price is None:
            return
        sign = Decimal(1) if pos.side is Side.BUY else Decimal(-1)
        qty = min(e.filled, pos.qty)
        fees = pos.entry_fee + _fee_in_quote(e)  # both in quote currency
        pnl = sign * (e.avg_price - pos.entry_price) * qty - fees
        trade = ClosedTrade(
            trade_id=entry_cid,
            opened_at=pos.opened_at,
            closed_at=e.ts,
            wallet=pos.wallet,
            strategy=pos.strategy,
            symbol=pos.symbol,
            side=pos.side.value,
            qty=qty,
            entry_price=pos.entry_price,
            exit_price=e.avg_price,
            fees=fees,
            pnl=pnl,
            reason=e.reason or _leg_reason(e.client_id),
        )
        self._save()
        self.trades.append(trade)
        if self.wallets is not None:
            try:
                # the wallet manager books the gross PnL and pays the fees from the fees wallet
                self.wallets.on_trade_closed(pos.wallet, pnl + fees, fees, trade_id=entry_cid)
            except ValueError as exc:
                self._alert("error", f"wallet {pos.wallet}: trade {entry_cid} not booked: {exc}")
        self.risk.on_trade_closed(pnl)
        if self.on_closed is not None:
            self.on_closed(trade)

    # -- exits --------------------------------------------------------------------------------

    def close_position(self, entry_cid: str, reason: str) -> Order | None:
        """Cancel its resting exits and sell at market. None when there is nothing to close."""
        with self._lock:
            pos = self._positions.get(entry_cid)
        if pos is None or pos.pending or pos.qty <= 0:
            return None
        router = self.routers[pos.venue]
        for order in router.exchange.fetch_open_orders(pos.symbol):
            if entry_of(order.client_id) == entry_cid:
                with contextlib.suppress(OrderNotFound):  # an OCO sibling goes with its leg
                    router.cancel(order.id, _source(pos))
        router.watchdog.remove(entry_cid)
        qty = router.exchange.amount_to_precision(pos.symbol, pos.qty)
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

    def flatten(self, reason: str) -> list[str]:
        """Cancel Kobe's open entries and close Kobe's positions at market. Never others'."""
        done: list[str] = []
        for pos in self.pending():
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

    def poll(self, prices: dict[str, dict[str, Decimal]] | None = None) -> None:
        """Each router: pending entries, local watchdog exits. Errors become alerts."""
        for venue, router in self.routers.items():
            try:
                router.poll((prices or {}).get(venue))
            except ExchangeError as exc:
                self._alert("warning", f"{venue}: {exc}")

    # -- helpers ------------------------------------------------------------------------------

    def _alert(self, severity: str, message: str) -> None:
        log.warning("%s", message)
        if self.on_alert is not None:
            self.on_alert(severity, message)

    def _save(self) -> None:
        items = [p.to_record() for p in self._positions.values()]
        atomic_write_text(self.path, dumps({"positions": items}, indent=1) + "\n")


def _base(symbol: str) -> str:
    return symbol.split("/", 1)[0]


def _fee_in_quote(e: OrderEvent) -> Decimal:
    """A fee paid in the base asset (a buy on Binance) valued at the fill's price."""
    if e.fee_asset == _base(e.symbol) and e.avg_price is not None:
        return e.fee * e.avg_price
    return e.fee


def _net_of_base_fee(e: OrderEvent) -> Decimal:
    """What a buy left in hand when its fee was taken in the base asset."""
    if e.side == Side.BUY.value and e.fee_asset == _base(e.symbol):
        return e.filled - e.fee
    return e.filled


def _source(pos: Position) -> Source:
    return Source.STRATEGY if pos.strategy != "manual" else Source.COCKPIT


def _leg_reason(client_id: str) -> str:
    if client_id.endswith("tp"):
        return "take-profit"
    if client_id.endswith("sl"):
        return "stop-loss"
    return "closed"


__all__ = ["ExecutionEngine", "Position", "entry_of"]
