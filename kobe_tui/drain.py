"""The event drain: engine events reach the panes. The engine thread's events go to a
thread-safe inbox; one coalesced ``EngineBatch`` message wakes the UI, which draws the inbox at
most every ``DRAIN_EVERY`` seconds. The typed messages the workers post are drawn here too."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from textual import work

from kobe_tui.messages import (
    ActionDone,
    AlertRaised,
    EngineBatch,
    EngineFailed,
    EngineStateChanged,
    OrderUpdated,
    PositionsChanged,
    PricesChanged,
    RiskChanged,
    TradeClosed,
    WalletsChanged,
)
from kobe_tui.state import CockpitState
from kobe_tui.widgets.header import KobeHeader
from kobe_tui.widgets.health import HealthPane
from kobe_tui.widgets.journal import AlertsPane, JournalPane
from kobe_tui.widgets.money import EquityPane, RiskPane, StatsPane, WalletsPane
from kobe_tui.widgets.orders import OrdersPane, PositionsPane
from kobe_tui.widgets.prices import PriceStrip

if TYPE_CHECKING:
    from engine.runtime import EngineEvent

DRAIN_EVERY = 0.25  # seconds: the most often engine events are drawn (4 a second)


class EventDrain(CockpitState):
    """Engine events and the workers' messages, drawn on the panes (UI thread only)."""

    def _forward(self, event: EngineEvent) -> None:
        """Engine thread → UI. Events go to a thread-safe inbox; one ``EngineBatch`` message
        (coalesced) wakes the UI, which drains the inbox: lists for orders, trades and alerts,
        only the latest for wallets, prices, risk, state and positions."""
        kind, payload = event.kind, event.payload
        with self._inbox_lock:
            if kind in ("order", "trade", "alert"):
                self._inbox.setdefault(kind, []).append(payload)
                if kind == "order" and payload.event in ("fill", "partial_fill"):
                    self._inbox["positions"] = True
            elif kind == "notify":  # a channel's last delivery (one per channel)
                self._inbox.setdefault("notify", {})[payload.channel] = payload
            elif kind in ("wallets", "prices", "risk", "state", "venue", "unprotected"):
                self._inbox[kind] = payload
                if kind == "wallets":  # the equity line keeps every tick's point
                    self._inbox.setdefault("equity", []).append(payload.equity_total_usd)
            wake = not self._wake_pending
            self._wake_pending = True
        if wake:
            self.post_message(EngineBatch())

    def on_engine_batch(self, message: EngineBatch) -> None:
        if not self._drain_scheduled:
            self._drain_when_due()

    def _drain_when_due(self) -> None:
        """Drain now, or when ``DRAIN_EVERY`` has passed since the last drain (or key press)."""
        now = time.monotonic()
        wait = self._last_drain + DRAIN_EVERY - now
        if wait > 0.005 and now - self._drawn_at < 4 * DRAIN_EVERY:  # keys never starve it
            self._drain_scheduled = True
            self.set_timer(wait, self._drain_when_due)
            return
        self._drain()

    def _drain(self) -> None:
        if not self.query(OrdersPane):  # the panes mount after the first frame: wait for them
            self._drain_scheduled = True
            self.set_timer(DRAIN_EVERY, self._drain_when_due)
            return
        self._drain_scheduled = False
        self._last_drain = self._drawn_at = time.monotonic()
        with self._inbox_lock:
            inbox, self._inbox = self._inbox, {}
            self._wake_pending = False
        if not inbox:
            return
        trades = inbox.get("trade", [])
        if inbox.get("positions") or trades:
            self.read_positions()  # off the UI thread: a tick may hold the engine's lock
        orders = self.query_one(OrdersPane)
        for event in inbox.get("order", []):
            orders.apply(event, self._position_of(event))
        if trades:
            self.query_one(JournalPane).add_many(trades)
            self.query_one(StatsPane).add_many(trades)
        alerts = self.query_one(AlertsPane)
        for alert in inbox.get("alert", []):
            alerts.add_event(self.clock(), alert, draw=False)
        if "wallets" in inbox:
            self.query_one(EquityPane).add_many(inbox.get("equity", [])[:-1])
            self._show_wallets(inbox["wallets"])  # the last point, and the alerts pane too
        elif inbox.get("alert"):
            alerts.redraw()
        if "prices" in inbox:
            self.query_one(PositionsPane).mark(inbox["prices"])
            self._show_prices(inbox["prices"])
        if "venue" in inbox:
            self._show_venue(inbox["venue"])
        if "unprotected" in inbox:  # the position book's, by entry (fed through the Runtime)
            self.query_one(KobeHeader).set_unprotected(len(inbox["unprotected"]))
            self.query_one(PositionsPane).set_unprotected(inbox["unprotected"])
        if "risk" in inbox:
            self._show_risk(inbox["risk"])
        if "notify" in inbox:
            self.query_one(HealthPane).show_deliveries(list(inbox["notify"].values()))
        if "state" in inbox:
            status = inbox["state"]
            self._set_engine(status.state.value, status.error)
        self._refresh_targets()

    # -- messages -----------------------------------------------------------------------------

    def on_order_updated(self, message: OrderUpdated) -> None:
        self.query_one(OrdersPane).apply(message.event, self._position_of(message.event))

    def _position_of(self, e: Any) -> Any:
        """The position an order opened or protects (its owner, and what an exit covers)."""
        return self.query_one(PositionsPane).of_order(e.client_id)

    def on_trade_closed(self, message: TradeClosed) -> None:
        self.query_one(JournalPane).add(message.trade)

    @work(thread=True, exit_on_error=False, exclusive=True, group="positions")
    def read_positions(self) -> None:
        if self.runtime is not None:
            self.post_message(PositionsChanged.read(self.runtime))

    def on_positions_changed(self, message: PositionsChanged) -> None:
        self.query_one(PositionsPane).show(message.positions, message.dust)
        orders = self.query_one(OrdersPane)
        for event in list(orders.orders.values()):  # owners and protected positions, now known
            orders.apply(event, self._position_of(event))
        self._show_prices(self._last_prices, record=False)  # the strip follows what is held
        self._refresh_targets()

    def _refresh_targets(self) -> None:
        """Cancel / close are offered only with something to act on; the footer is rebuilt
        only when that changes."""
        targets = (self._has("orders"), self._has("positions"))
        if targets != self._targets:
            self._targets = targets
            self.refresh_bindings()

    def on_prices_changed(self, message: PricesChanged) -> None:
        self.query_one(PositionsPane).mark(message.prices)
        self._show_prices(message.prices)

    def _show_prices(self, prices: dict[str, Decimal], *, record: bool = True) -> None:
        """The price strip: the configured symbols, then those Kobe holds a position in."""
        self._last_prices = prices
        traded = list(self.settings.config.symbols) if self.settings is not None else []
        held = sorted({p.symbol for p in self.query_one(PositionsPane).positions.values()})
        traded += [s for s in held if s not in traded]
        strip = self.query_one(PriceStrip)
        # None: no price now
        strip.show({s: prices.get(s) for s in traded}, self.clock(), record=record)

    def _show_venue(self, health: Any) -> None:
        detail = health.error
        if health.state == "down" and health.since is not None:
            detail = f"since {health.since:%H:%M}"
        self.query_one(KobeHeader).set_venue(health.state, detail, health.latency_ms)

    def on_wallets_changed(self, message: WalletsChanged) -> None:
        self._show_wallets(message.snapshot)

    def _show_wallets(self, snap: Any) -> None:
        self.query_one(WalletsPane).show(snap)
        self.query_one(KobeHeader).set_money(snap.equity_total_usd, snap.pnl_day)
        self.query_one(EquityPane).add(snap.equity_total_usd)
        when = snap.time or self.clock()
        self.query_one(AlertsPane).set_finance(
            when, [(a.severity, a.code, a.message) for a in snap.alerts]
        )

    def on_risk_changed(self, message: RiskChanged) -> None:
        self._show_risk(message.snapshot)

    def _show_risk(self, snap: Any) -> None:
        if self.settings is not None:
            config = self.settings.config
            self.query_one(RiskPane).show(snap, config.risk, config.finance)
        if snap.reason != self.risk_reason:
            self.risk_reason = snap.reason
            self.refresh_bindings()  # a trip not flattened offers k (flatten) again
        if snap.state.value == self.risk_state and self._risk_shown:
            return  # nothing to redraw: the state is what the header says
        self._risk_shown = True
        self.risk_state = snap.state.value
        self.query_one(KobeHeader).set_risk(snap.state.value)
        self.refresh_bindings()

    def on_alert_raised(self, message: AlertRaised) -> None:
        self.query_one(AlertsPane).add_event(self.clock(), message.alert)

    def on_engine_state_changed(self, message: EngineStateChanged) -> None:
        self._set_engine(message.status.state.value, message.status.error)

    def on_engine_failed(self, message: EngineFailed) -> None:
        self._set_engine("error", message.error)
        self.query_one(AlertsPane).add(
            self.clock(), "error", "engine", f"engine error: {message.error}"
        )

    def on_action_done(self, message: ActionDone) -> None:
        self.notify(
            message.text,
            severity="error" if message.error else "information",
            timeout=6,
            markup=False,  # exchange and engine text, shown literally
        )
        if message.error:
            self.query_one(AlertsPane).add(self.clock(), "warning", "action", message.text)

    def _set_engine(self, state: str, error: str = "") -> None:
        if (state, error) == self._engine_shown:
            return
        self._engine_shown = (state, error)
        self.engine_state = state
        label = state if not error else f"error: {error[:40]}"
        if state == "locked":
            label = "stopped (locked)"
        self.query_one(KobeHeader).set_engine(label)
        self.refresh_bindings()

    def _has(self, what: str) -> bool:
        pane = self.query(OrdersPane if what == "orders" else PositionsPane)
        if not pane:
            return False
        found = pane.first()
        return bool(found.orders if isinstance(found, OrdersPane) else found.positions)
