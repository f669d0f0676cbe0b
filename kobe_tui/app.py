"""``kobe-tui``: the cockpit.

The first frame comes first: the header is painted from a cheap peek at the mode and exchange
(``engine.bootstrap``, no pydantic). The validated settings, the health checks and the panes'
first contents (wallets snapshot, the tail of the trades journal, the open orders the order
journal knows) follow from a thread worker; then the engine (``engine.runtime.Runtime``) runs in
another thread worker. The engine reaches the widgets only through typed messages
(``kobe_tui.messages``); wallet snapshots, prices, risk state and positions coalesce. An engine
error shows as an alert and a red engine state; the cockpit stays up. In live mode the engine
stays stopped until the two-step unlock (``L``).
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Container
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import get_current_worker

from engine.bootstrap import Mode, load_env, peek
from kobe_tui.messages import (
    ActionDone,
    AlertRaised,
    ConfigFailed,
    EngineBatch,
    EngineFailed,
    EngineStateChanged,
    OrderUpdated,
    PositionsChanged,
    PricesChanged,
    RiskChanged,
    SettingsReady,
    StatsReady,
    TradeClosed,
    WalletsChanged,
)
from kobe_tui.widgets.footer import KobeFooter
from kobe_tui.widgets.header import KobeHeader
from kobe_tui.widgets.health import HealthBox, HealthPane
from kobe_tui.widgets.journal import AlertsPane, JournalPane
from kobe_tui.widgets.money import EquityPane, RiskPane, StatsPane, WalletsPane
from kobe_tui.widgets.orders import OrdersPane, PositionsPane
from kobe_tui.widgets.pane import Pane
from kobe_tui.widgets.prices import PriceStrip


def ConfirmScreen(question: str, *, yes: str = "Yes") -> Any:
    """The confirmation modal, imported when first needed (not for the first frame)."""
    from kobe_tui.screens.confirm import ConfirmScreen as Screen

    return Screen(question, yes=yes)


if TYPE_CHECKING:
    from engine.modes import Settings
    from engine.proposal import Proposal
    from engine.runtime import EngineEvent, Runtime

    RuntimeFactory = Callable[[Settings, bool], Runtime]

DRAIN_EVERY = 0.25  # seconds: the most often engine events are drawn (4 a second)
STARTUP_GC_S = 10.0  # the garbage collector is back by then, whatever became of the engine
EXCHANGE_BALANCES_EVERY = 60.0  # seconds between two reads of the exchange account (testnet, live)
PANES = (
    "orders",
    "positions",
    "wallets",
    "journal",
    "alerts",
    "health",
    "equity",
    "risk",
    "stats",
)
ENGINE_ACTIONS = {
    "new_order",
    "cancel_order",
    "cancel_all",
    "close_position",
    "edit_exits",
    "trip",
    "reset",
    "pause",
}


def wall_clock() -> datetime:
    return datetime.now(UTC)


class KobeApp(App[int]):
    CSS_PATH = Path(__file__).parent / "kobe.tcss"
    TITLE = "Kobe"
    ENABLE_COMMAND_PALETTE = True
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide"), (160, "-xwide")]

    # The footer shows them in this order; at 80 columns only those available now
    BINDINGS = [
        Binding("n", "new_order", "Order", id="order.new"),
        Binding("c", "cancel_order", "Cancel", id="order.cancel"),
        Binding("x", "close_position", "Close", id="position.close"),
        Binding("e", "edit_exits", "Exits", id="position.exits"),
        Binding("k", "trip", "Kill", id="risk.trip"),
        Binding("K", "reset", "Reset kill", key_display="K", id="risk.reset"),
        Binding("p", "pause", "Pause", id="engine.pause"),
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("q", "quit_safely", "Quit", id="app.quit"),
        Binding("L", "unlock", "Live", key_display="L", id="live.unlock"),
        Binding("slash", "filter", "Filter", key_display="/", id="journal.filter"),
        Binding("C", "cancel_all", "Cancel all", key_display="C", id="order.cancel_all"),
        Binding("pageup", "page_back", "Older trades", show=False, id="journal.older"),
        Binding("pagedown", "page_forward", "Newer trades", show=False, id="journal.newer"),
        Binding("tab", "next_pane", "Next pane", show=False, id="pane.next"),
        Binding("shift+tab", "prev_pane", "Previous pane", show=False, id="pane.prev"),
        *[
            Binding(
                str(i + 1),
                f"show_pane({i})",
                f"Pane {i + 1}: {name}",
                show=False,
                id=f"pane.{name}",
            )
            for i, name in enumerate(PANES)
        ],
        Binding("r", "refresh_health", "Recheck", show=False, id="app.recheck"),
    ]

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        clock: Callable[[], datetime] | None = None,
        tick_seconds: float = 5.0,
        autostart: bool = True,
        autotick: bool = True,
        runtime_factory: RuntimeFactory | None = None,
        balances_fetcher: Callable[[Settings], dict[str, Decimal]] | None = None,
        log_file: bool = False,
    ) -> None:
        super().__init__()
        # 16 colours (TERM=xterm, some SSH setups): the terminal's own ANSI palette
        sixteen = self.console.color_system in ("standard", "windows")
        self.theme = "ansi-dark" if sixteen else "textual-dark"
        self.animation_level = "none"  # no animations: they cost bandwidth over SSH
        self.settings = settings
        self.config_errors: list[str] = []
        self._cwd = Path.cwd() if cwd is None else cwd
        self._env = env if env is not None else load_env(self._cwd)  # keeps what came from .env
        if settings is not None:
            self.mode, self.exchange = settings.mode, settings.exchange
        else:
            self.mode, self.exchange = peek(self._env, self._cwd)
        self.clock = clock or wall_clock
        self.tick_seconds = tick_seconds
        self.autostart = autostart
        self.autotick = autotick
        self.runtime_factory = runtime_factory
        self.balances_fetcher = balances_fetcher
        self.log_file = log_file  # main(): logging goes to <data dir>/logs/cockpit.log
        self.runtime: Runtime | None = None
        self.live_unlocked = False
        self.engine_state = "starting"
        self.risk_state = "ARMED"
        self.active_pane = 0
        self._stop_engine = threading.Event()
        self._inbox_lock = threading.Lock()
        self._inbox: dict[str, Any] = {}
        self._wake_pending = False
        self._drain_scheduled = False
        self._last_drain = 0.0  # the last drain, or the last key that deferred one
        self._drawn_at = 0.0  # the last drain
        self._risk_shown = False
        self._engine_shown: tuple[str, str] = ("", "")
        # mode, exchange, keys and URL, fixed by the first settings: no reload changes them
        self._identity: tuple[object, ...] | None = None if settings is None else identity(settings)
        self._targets = (False, False)  # open orders, open positions: what the footer offers
        self._last_prices: dict[str, Decimal] = {}

    # -- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield KobeHeader(self.mode, self.exchange, live_locked=self._locked())
        yield PriceStrip()
        yield Static(self._pane_bar(), id="pane-bar")
        yield Container(id="panes")  # filled right after the first frame (the header first)
        yield Static(self._mode_note(), id="mode-note")
        yield KobeFooter(compact=True)

    def _locked(self) -> bool:
        return self.mode is Mode.LIVE and not self.live_unlocked

    def _data_dir_guess(self) -> Path:
        if self.settings is not None:
            return self.settings.data_dir
        raw = self._env.get("KOBE_DATA_DIR") or "data"
        path = Path(raw)
        return path if path.is_absolute() else self._cwd / path

    def _pane_bar(self) -> str:
        parts = []
        for i, name in enumerate(PANES):
            if i == self.active_pane:
                parts.append(f"[reverse] {i + 1} {name.capitalize()} [/]")
            else:
                parts.append(f" {i + 1} {name[:3].capitalize()} ")
        return "".join(parts)

    def _mode_note(self) -> str:
        if self.mode is Mode.PAPER:
            return "PAPER: simulated prices and fills; Solana trades on a paper DEX venue."
        if self.mode is Mode.TESTNET:
            return (
                f"TESTNET: orders go to the {self.exchange} testnet. Solana trades are simulated."
            )
        if self._locked():
            return "LIVE is LOCKED: the engine is stopped until the live unlock (L), in 2 steps."
        return f"LIVE on {self.exchange}: real money. Solana trades are simulated."

    def on_mount(self) -> None:
        self.call_after_refresh(self._build_panes)
        self.set_timer(STARTUP_GC_S, lambda: None if gc.isenabled() else resume_gc())

    async def _build_panes(self) -> None:
        """The first frame shows the header (mode, exchange); the panes follow at once."""
        data_dir = self._data_dir_guess()
        await self.query_one("#panes", Container).mount_all(
            [
                OrdersPane("orders", 1),  # in the order of the wide grid; keys by number
                PositionsPane("positions", 2),
                WalletsPane("wallets", 3),
                JournalPane("journal", 4, data_dir / "trades.jsonl"),
                RiskPane("risk", 8),
                StatsPane("stats", 9),
                AlertsPane("alerts", 5),
                HealthBox("health", 6),
                EquityPane("equity", 7),
            ]
        )
        self._show_active()
        self.call_after_refresh(self.query_one(JournalPane).load)  # the tail, after the first frame
        if self.settings is not None:
            from engine.health import health_checks

            self._settings_ready(self.settings, health_checks(self.settings))
        else:
            self.query_one(HealthPane).show_loading()
            self.call_after_refresh(self.load_settings)

    # -- settings -----------------------------------------------------------------------------

    @work(thread=True, exit_on_error=False, exclusive=True, group="settings")
    def load_settings(self) -> None:
        """Validate the config and run the health checks off the UI thread."""
        from engine.config import ConfigError
        from engine.health import health_checks
        from engine.modes import resolve_settings

        try:
            settings = resolve_settings(self._env, self._cwd)
        except ConfigError as exc:
            self.post_message(ConfigFailed(exc.lines))
            return
        self.post_message(SettingsReady(settings, health_checks(settings)))

    def on_settings_ready(self, message: SettingsReady) -> None:
        self._settings_ready(message.settings, message.checks)

    def _settings_ready(self, settings: Settings, checks: list[Any]) -> None:
        fixed = self._identity
        if fixed is not None and identity(settings) != fixed:
            self._refuse_reload(settings)
            return
        self._identity = identity(settings)
        first = self.settings is None or self.runtime is None
        self.settings = settings
        header = self.query_one(KobeHeader)
        if (settings.mode, settings.exchange) != (header.mode, header.exchange):
            self.mode, self.exchange = settings.mode, settings.exchange
            header.set_mode(self.mode, self.exchange, live_locked=self._locked())
            self.query_one("#mode-note", Static).update(self._mode_note())
        self.query_one(HealthPane).show_checks(checks)
        journal = self.query_one(JournalPane)
        if journal.path != settings.data_dir / "trades.jsonl":
            if self.log_file:  # the log follows the data dir the config names
                log_to_file(settings.data_dir)
            journal.path = settings.data_dir / "trades.jsonl"
            journal.load()
        self.load_stats(settings.data_dir)
        if first:
            if self._locked():
                self._set_engine("locked")
                self.paint_from_files(settings)
            elif self.autostart:
                self.start_engine(confirmed=False)  # it paints from the files first
            else:
                self._set_engine("stopped")
                self.paint_from_files(settings)

    def _refuse_reload(self, settings: Settings) -> None:
        """One mode per process: a reload that would change the mode, exchange, keys or URL
        is refused; the running settings stay, and the header keeps saying them."""
        assert self.settings is not None
        now = f"{settings.mode.value} on {settings.exchange}"
        running = f"{self.settings.mode.value.upper()} on {self.settings.exchange}"
        text = (
            f"Reload refused: the config or environment now says {now} (or other keys or URL); "
            f"this cockpit stays {running} until Kobe is restarted"
        )
        self.notify(text, severity="error", timeout=10, markup=False)
        self.query_one(AlertsPane).add(self.clock(), "warning", "reload", text)

    @work(thread=True, exit_on_error=False, exclusive=True, group="stats")
    def load_stats(self, data_dir: Path) -> None:
        """The whole journal's statistics: the kept aggregate plus the lines appended since."""
        from engine.stats import load_stats

        self.post_message(StatsReady(load_stats(data_dir)))

    def on_stats_ready(self, message: StatsReady) -> None:
        self.query_one(StatsPane).set_stats(message.stats)

    def on_config_failed(self, message: ConfigFailed) -> None:
        self.config_errors = message.lines
        self.exit(return_code=2)

    @work(thread=True, exit_on_error=False, group="paint")
    def paint_from_files(self, settings: Settings) -> None:
        self._paint(settings)

    def _paint(self, settings: Settings) -> None:
        """Before the engine: the wallets snapshot and the open orders the journal knows.

        Called from a worker thread; its messages are posted before the engine's first ones.
        """
        from engine.journal import OrderEvent, tail_jsonl
        from engine.risk import load_risk_state
        from engine.wallets.runtime import load_view

        # the kill switch as the risk files say (lost or unreadable: TRIPPED), engine or not
        self.post_message(RiskChanged(load_risk_state(settings.data_dir).snap))

        try:
            self.post_message(WalletsChanged(load_view(settings.config, settings.data_dir)))
        except Exception as exc:
            self.post_message(AlertRaised(_alert("error", "wallets", f"wallets snapshot: {exc}")))
        last: dict[str, OrderEvent] = {}
        for record in tail_jsonl(settings.data_dir / "logs" / "orders.jsonl", 2000):
            try:
                event = OrderEvent.from_record(record)
            except (KeyError, ValueError):
                continue
            last[event.client_id] = event
        for event in last.values():
            self.post_message(OrderUpdated(event))

    # -- the engine ---------------------------------------------------------------------------

    def start_engine(self, confirmed: bool) -> None:
        self._stop_engine.clear()
        self._set_engine("starting")
        self.run_engine(confirmed)

    def _make_runtime(self, settings: Settings, confirmed: bool) -> Runtime:
        if self.runtime_factory is not None:
            return self.runtime_factory(settings, confirmed)
        from engine.agent import build_agent
        from engine.runtime import Runtime

        return Runtime(
            settings,
            confirmed=confirmed,
            clock=self.clock,
            tick_seconds=int(self.tick_seconds) or 1,
            agent_factory=build_agent,
        )

    @work(thread=True, exit_on_error=False, exclusive=True, group="engine")
    def run_engine(self, confirmed: bool) -> None:
        """Build the runtime and tick it until the cockpit quits (or forever in tests)."""
        assert self.settings is not None
        if self.runtime is None:
            self._paint(self.settings)
        try:
            runtime = self._make_runtime(self.settings, confirmed)
            runtime.subscribe(self._forward)
            runtime.build()
        except Exception as exc:
            self.post_message(EngineFailed(str(exc)))
            return
        self.runtime = runtime
        resume_gc()
        if self.settings.mode is not Mode.PAPER:
            self.call_from_thread(self._watch_exchange_balances)
        self.post_message(PositionsChanged(runtime.positions()))
        self.post_message(RiskChanged(runtime.risk_snapshot()))
        self.post_message(EngineStateChanged(runtime.status()))
        worker = get_current_worker()

        def stopping() -> bool:  # quitting (or Textual cancelling the worker at exit)
            return self._stop_engine.is_set() or worker.is_cancelled

        try:
            if self.autotick:
                runtime.run_forever(stopping)
            else:
                runtime.mark_running()
                while not stopping():
                    self._stop_engine.wait(0.05)
        except Exception as exc:
            self.post_message(EngineFailed(str(exc)))
        finally:
            runtime.stop()

    def _watch_exchange_balances(self) -> None:
        self.read_exchange_balances()
        self.set_interval(EXCHANGE_BALANCES_EVERY, self.read_exchange_balances)

    @work(thread=True, exit_on_error=False, exclusive=True, group="exchange-balances")
    def read_exchange_balances(self) -> None:
        """Testnet and live: the exchange account's balances, for the wallets pane."""
        runtime = self.runtime
        if runtime is None:
            return
        try:
            found: dict[str, Decimal] | str = runtime.exchange_balances()
        except Exception as exc:  # the venue's state says the rest (header)
            found = str(exc)
        self.call_from_thread(
            self.query_one(WalletsPane).show_exchange, self.exchange, self.clock(), found
        )

    def step(self, n: int = 1, advance: Callable[[], None] | None = None) -> None:
        """Tests and benchmarks: ``n`` engine ticks now (the engine thread does not tick)."""
        assert self.runtime is not None
        for _ in range(n):
            if advance is not None:
                advance()
            self.runtime.tick()
        self._drain()  # on the UI thread: draw what the ticks produced, now
        self.post_message(PositionsChanged(self.runtime.positions()))

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
        if "unprotected" in inbox:  # the position book's count (fed through the Runtime)
            self.query_one(KobeHeader).set_unprotected(inbox["unprotected"])
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
            self.post_message(PositionsChanged(self.runtime.positions()))

    def on_positions_changed(self, message: PositionsChanged) -> None:
        self.query_one(PositionsPane).show(message.positions)
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
        strip.show({s: prices[s] for s in traded if s in prices}, record=record)

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

    # -- keys: availability -------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Unavailable actions are greyed out; at 80 columns they leave the footer, so what
        can be done now comes first. ``L`` is always available: it says what live needs."""
        unavailable = None if self.size.width >= 120 else False
        ready = self.runtime is not None and self.engine_state in ("running", "paused")
        if action in ENGINE_ACTIONS and not ready:
            return unavailable
        if action == "reset" and self.risk_state != "TRIPPED":
            return unavailable
        if action == "trip" and self.risk_state == "TRIPPED":
            return unavailable
        if action in ("cancel_order", "cancel_all") and not self._has("orders"):
            return unavailable
        if action in ("close_position", "edit_exits") and not self._has("positions"):
            return unavailable
        return True

    def _has(self, what: str) -> bool:
        pane = self.query(OrdersPane if what == "orders" else PositionsPane)
        if not pane:
            return False
        found = pane.first()
        return bool(found.orders if isinstance(found, OrdersPane) else found.positions)

    def on_resize(self) -> None:
        footer = self.query(KobeFooter)
        if footer:  # at 80 columns the actions take the whole line (ctrl+p is in the help)
            footer.first().show_command_palette = self.size.width >= 120
        self.refresh_bindings()  # the footer's choice depends on the width

    # -- keys: panes --------------------------------------------------------------------------

    def _show_active(self) -> None:
        self._last_drain = time.monotonic()  # the key's frame first; engine events wait a beat
        for i, name in enumerate(PANES):
            self.query_one(f"#{name}", Pane).set_class(i == self.active_pane, "-active")
        self.query_one("#pane-bar", Static).update(self._pane_bar(), layout=False)
        self.query_one(f"#{PANES[self.active_pane]}", Pane).focus_body()

    def action_show_pane(self, index: int) -> None:
        self.active_pane = index % len(PANES)
        self._show_active()

    def action_next_pane(self) -> None:
        self.action_show_pane(self.active_pane + 1)

    def action_prev_pane(self) -> None:
        self.action_show_pane(self.active_pane - 1)

    def action_focus_next(self) -> None:
        """``tab``: on the main screen the next pane (at every size); in a dialog the next field."""
        if self.screen is self.screen_stack[0]:
            self.action_next_pane()
        else:
            super().action_focus_next()

    def action_focus_previous(self) -> None:
        if self.screen is self.screen_stack[0]:
            self.action_prev_pane()
        else:
            super().action_focus_previous()

    def action_filter(self) -> None:
        from textual.widgets import Input

        self.action_show_pane(PANES.index("journal"))
        box = self.query_one("#journal-filter", Input)
        box.display = True
        box.focus()

    def on_input_changed(self, event: Any) -> None:
        if getattr(event.input, "id", "") == "journal-filter":
            self.query_one(JournalPane).set_filter(event.value)

    def on_input_submitted(self, event: Any) -> None:
        if getattr(event.input, "id", "") == "journal-filter":
            self.query_one(JournalPane).focus_body()

    def action_page_back(self) -> None:
        self.query_one(JournalPane).page_back()

    def action_page_forward(self) -> None:
        self.query_one(JournalPane).page_forward()

    def action_refresh_health(self) -> None:
        self.load_settings()

    def action_help(self) -> None:
        rows: list[tuple[str, str]] = []
        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and not binding.key.isdigit():
                rows.append((binding.key_display or binding.key, binding.description))
        rows.append(("1-9", "Show pane: " + ", ".join(PANES)))
        rows.append(("escape", "Back / close a dialog (the safe answer)"))
        rows.append(("ctrl+p", "Command palette: every action"))
        from kobe_tui.screens.help import HelpScreen

        self.push_screen(HelpScreen(rows))

    # -- the command palette: every Kobe action, through the same path as its key -----------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            if binding.key.isdigit() and binding.key != "1":
                continue
            action = "show_pane(0)" if binding.key == "1" else binding.action
            title = "Show a pane (1-9)" if binding.key == "1" else binding.description
            key = binding.key_display or binding.key
            yield SystemCommand(title, f"key {key}", partial(self._palette_run, action, title))
        for command in super().get_system_commands(screen):
            if command.title != "Quit":  # ours asks first when orders are open (``q``)
                yield command

    async def _palette_run(self, action: str, title: str) -> None:
        name = action.split("(")[0]
        if not self.check_action(name, ()):
            self.notify(f"{title}: not available now", severity="warning")
            return
        await self.run_action(action)

    async def action_quit(self) -> None:
        """``ctrl+q`` and the palette's Quit: the same question as ``q``."""
        self.action_quit_safely()

    # -- keys: trading ------------------------------------------------------------------------

    def action_new_order(self) -> None:
        from kobe_tui.screens.ticket import OrderTicket

        runtime, settings = self.runtime, self.settings
        if runtime is None or settings is None:
            return
        finance = settings.config.finance
        wallets = [w for w in finance.wallet_ids if w in finance.risk_wallets]
        default = f"cex_{settings.exchange}"
        ticket = OrderTicket(
            list(settings.config.symbols),
            wallets,
            default if default in wallets else wallets[0],
            runtime.plan,
        )
        self.push_screen(ticket, self._ticket_done)

    def _ticket_done(self, proposal: Proposal | None) -> None:
        if proposal is not None:
            self.submit_order(proposal)

    @work(thread=True, exit_on_error=False, group="action")
    def submit_order(self, proposal: Proposal) -> None:
        from engine.exchange.base import ExchangeError
        from engine.proposal import Refused

        assert self.runtime is not None
        try:
            placed = self.runtime.submit(proposal)
        except Refused as exc:
            self.post_message(ActionDone("Refused: " + "; ".join(exc.reasons), error=True))
            return
        except ExchangeError as exc:
            self.post_message(ActionDone(f"Order outcome unknown: {exc}", error=True))
            return
        e = placed.entry
        notes = "".join(f" — {n}" for n in placed.notes)
        self.post_message(
            ActionDone(
                f"Order {e.id} {e.side.value.upper()} {e.qty} {e.symbol}: {e.status.value}{notes}",
                result=placed,
            )
        )
        self.post_message(PositionsChanged(self.runtime.positions()))

    def action_cancel_order(self) -> None:
        order = self.query_one(OrdersPane).selected()
        if order is None:
            self.notify("Select an order in the orders pane (1) first", severity="warning")
            return
        price = f" @ {order.price}" if order.price is not None else ""
        question = f"Cancel order {order.exchange_id or order.client_id} {order.side.upper()} {order.qty} {order.symbol}{price}?"
        ref = order.client_id
        from engine.router import entry_of

        entry_cid = entry_of(ref)
        held = self.query_one(PositionsPane).positions.get(entry_cid) if entry_cid else None
        if held is not None and ref[-2:] in ("tp", "sl"):  # one leg cancels the pair
            legs = ", ".join(
                f"{name} {value}"
                for name, value in (("TP", held.take_profit), ("SL", held.stop_loss))
                if value is not None
            )
            question = (
                f"Cancel the exits of position {held.symbol} {held.qty}"
                + (f" ({legs})" if legs else "")
                + "? It will be unprotected."
            )

        def done(yes: bool | None) -> None:
            if yes:
                self.cancel_orders([ref])

        self.push_screen(ConfirmScreen(question, yes="Cancel order"), done)

    def action_cancel_all(self) -> None:
        orders = list(self.query_one(OrdersPane).orders.values())
        if not orders:
            self.notify("No open orders")
            return
        question = f"Cancel all {len(orders)} open orders of Kobe's? Protective exits among them leave their positions unprotected."

        def done(yes: bool | None) -> None:
            if yes:
                self.cancel_orders([o.client_id for o in orders])

        self.push_screen(ConfirmScreen(question, yes="Cancel all"), done)

    @work(thread=True, exit_on_error=False, group="action")
    def cancel_orders(self, refs: list[str]) -> None:
        from engine.exchange.base import ExchangeError
        from engine.proposal import Source

        assert self.runtime is not None
        for ref in refs:
            try:
                done = self.runtime.cancel(ref, Source.COCKPIT)
                self.post_message(ActionDone(f"Cancelled {done.id} ({done.client_id})"))
            except ExchangeError as exc:
                self.post_message(ActionDone(str(exc), error=True))

    def action_close_position(self) -> None:
        pos = self.query_one(PositionsPane).selected()
        if pos is None:
            self.notify("Select a position in the positions pane (2) first", severity="warning")
            return
        question = (
            f"Close {pos.symbol} {pos.qty} ({pos.wallet}) at market? Its TP/SL are cancelled first."
        )
        cid = pos.entry_client_id

        def done(yes: bool | None) -> None:
            if yes:
                self.close_position(cid)

        self.push_screen(ConfirmScreen(question, yes="Close at market"), done)

    def action_edit_exits(self) -> None:
        from kobe_tui.screens.exits import ExitsScreen

        pos = self.query_one(PositionsPane).selected()
        if pos is None:
            self.notify("Select a position in the positions pane (2) first", severity="warning")
            return
        title = f"New exits for {pos.symbol} {pos.qty} ({pos.wallet})"
        cid = pos.entry_client_id

        def done(result: tuple[Decimal | None, Decimal | None] | None) -> None:
            if result is not None:
                self.replace_exits(cid, *result)

        self.push_screen(ExitsScreen(title, pos.take_profit, pos.stop_loss), done)

    @work(thread=True, exit_on_error=False, group="action")
    def replace_exits(self, cid: str, tp: Decimal | None, sl: Decimal | None) -> None:
        from engine.exchange.base import ExchangeError
        from engine.proposal import Refused

        assert self.runtime is not None
        try:
            cover = self.runtime.replace_exits(cid, tp, sl)
        except (ExchangeError, Refused) as exc:
            self.post_message(
                ActionDone(
                    f"New exits not placed ({exc}): the local watchdog covers {cid} "
                    "while the engine runs",
                    error=True,
                )
            )
            return
        self.post_message(ActionDone(f"Exits of {cid} replaced: {cover}"))
        self.post_message(PositionsChanged(self.runtime.positions()))

    @work(thread=True, exit_on_error=False, group="action")
    def close_position(self, cid: str) -> None:
        from engine.exchange.base import ExchangeError

        assert self.runtime is not None
        try:
            order = self.runtime.close_position(cid, "closed by operator (cockpit)")
        except ExchangeError as exc:
            self.post_message(ActionDone(f"Close failed: {exc}", error=True))
            return
        text = f"Closed {cid}" if order is not None else f"{cid}: nothing to close"
        self.post_message(ActionDone(text))
        self.post_message(PositionsChanged(self.runtime.positions()))

    def action_trip(self) -> None:
        settings = self.settings
        if settings is not None and settings.config.risk.on_trip == "flatten":
            question = "Trip the kill switch? on_trip is flatten: Kobe's open entries are cancelled and its positions closed at market."

            def done(yes: bool | None) -> None:
                if yes:
                    self.trip_kill_switch()

            self.push_screen(ConfirmScreen(question, yes="Trip and flatten"), done)
        else:
            self.trip_kill_switch()

    @work(thread=True, exit_on_error=False, group="action")
    def trip_kill_switch(self) -> None:
        assert self.runtime is not None
        self.runtime.trip("manual: tripped from the cockpit", "cockpit")
        self.post_message(ActionDone("Kill switch TRIPPED: new entries are blocked"))

    def action_reset(self) -> None:
        assert self.runtime is not None
        snap = self.runtime.risk_snapshot()
        question = f"Reset the kill switch (TRIPPED: {snap.reason})? New entries will be allowed again. This is audited."

        def done(yes: bool | None) -> None:
            if yes:
                self.reset_kill_switch()

        self.push_screen(ConfirmScreen(question, yes="Reset"), done)

    @work(thread=True, exit_on_error=False, group="action")
    def reset_kill_switch(self) -> None:
        assert self.runtime is not None
        self.runtime.reset_kill_switch("cockpit")
        self.post_message(ActionDone("Kill switch reset (ARMED)"))

    def action_pause(self) -> None:
        if self.runtime is None:
            return
        if self.runtime.paused:
            self.runtime.resume()
            self.notify("Engine resumed")
        else:
            self.runtime.pause()
            self.notify("Engine paused: no new entries; protective exits keep working")

    # -- keys: live unlock --------------------------------------------------------------------

    def action_unlock(self) -> None:
        from engine.modes import live_gate_problems

        settings = self.settings
        if settings is None:
            return
        if self.mode is Mode.LIVE and self.live_unlocked:
            self.notify(f"LIVE is unlocked: the engine trades on {self.exchange} with real money")
            return
        problems = [p for p in live_gate_problems(settings, confirmed=True)]
        if problems:
            title = "Live unlock refused" if self.mode is Mode.LIVE else "Live needs"
            self.notify(
                f"{title}:\n" + "\n".join(f"- {p}" for p in problems),
                severity="error",
                timeout=10,
                markup=False,
            )
            self.query_one(AlertsPane).add(
                self.clock(),
                "warning",
                "live_unlock",
                "live unlock refused: " + "; ".join(problems),
            )
            return
        from kobe_tui.screens.unlock import UnlockStep1

        self.push_screen(UnlockStep1(settings.exchange, self._fetch_balances), self._unlock_step2)

    def _fetch_balances(self) -> dict[str, Decimal]:
        settings = self.settings
        assert settings is not None
        if self.balances_fetcher is not None:
            return self.balances_fetcher(settings)
        from engine.exchange.ccxt_exchange import CcxtExchange

        exchange = CcxtExchange.reader_from_settings(settings)  # reads only, sends never
        try:
            quote = settings.config.paper.quote_asset
            assets = {quote, *(s.split("/")[0] for s in settings.config.symbols)}
            return {a: exchange.get_balance(a) for a in sorted(assets)}
        finally:
            exchange.close()

    def _unlock_step2(self, go: bool | None) -> None:
        if not go:
            self.notify("Live stays locked")
            return
        from kobe_tui.screens.unlock import UnlockStep2

        phrase = f"UNLOCK {self.exchange.upper()} LIVE"
        self.push_screen(UnlockStep2(phrase), self._unlock_done)

    def _unlock_done(self, go: bool | None) -> None:
        if not go:
            self.notify("Live stays locked")
            return
        settings = self.settings
        assert settings is not None
        from engine.audit import AuditLog

        audit = AuditLog(settings.data_dir, self.clock)
        try:
            audit.record("live_unlock", "cockpit", exchange=settings.exchange)
        finally:
            audit.close()
        self.live_unlocked = True
        self.query_one(KobeHeader).set_mode(self.mode, self.exchange, live_locked=False)
        self.query_one("#mode-note", Static).update(self._mode_note())
        self.start_engine(confirmed=True)

    # -- quitting -----------------------------------------------------------------------------

    def action_quit_safely(self) -> None:
        orders = self.query_one(OrdersPane).orders
        if orders:
            question = f"Quit with {len(orders)} open orders? They stay on the exchange; exits watched locally are not watched while Kobe is closed."

            def done(yes: bool | None) -> None:
                if yes:
                    self.shutdown()

            self.push_screen(ConfirmScreen(question, yes="Quit"), done)
        else:
            self.shutdown()

    def exit(self, result: int | None = None, return_code: int = 0, message: Any = None) -> None:
        """Every way out stops the engine first (it finishes its step within a second)."""
        self._stop_engine.set()
        if self.runtime is not None:
            self.runtime.request_stop()
        super().exit(result, return_code, message)

    def shutdown(self) -> None:
        self._stop_engine.set()
        if self.runtime is not None:
            self.runtime.request_stop()
        self.exit(0)


def pause_gc_for_startup() -> None:
    """``kobe-tui`` starts with the garbage collector off: start-up allocates hundreds of
    thousands of objects that all live on (widgets, the config's pydantic models, the engine's
    modules), and the collections they trigger only walk them again (about a fifth of the
    start-up's time). :func:`resume_gc` turns it back on once the engine is built, or after
    ``STARTUP_GC_S`` seconds at the latest."""
    gc.disable()


def resume_gc() -> None:
    """Start-up is over: what it built is frozen (later collections skip it: shorter pauses),
    and the collector runs again."""
    gc.freeze()
    gc.enable()


def identity(settings: Settings) -> tuple[object, ...]:
    """What one process never changes: mode, exchange, the keys (and their marking) and URL."""
    keys = tuple(settings.secrets.get(name) for name in settings.key_vars)
    return (settings.mode, settings.exchange, settings.api_url, keys, settings.testnet_flag_set())


def _alert(severity: str, code: str, message: str) -> Any:
    from engine.runtime import AlertEvent

    return AlertEvent(severity, code, message)


def log_to_file(data_dir: Path) -> None:
    """The cockpit logs to ``<data dir>/logs/cockpit.log`` (rotating), never over the screen;
    if that file cannot be opened, the lines are dropped rather than drawn on the screen."""
    import logging

    from engine.logsetup import setup_logging

    try:
        setup_logging(logging.INFO, data_dir / "logs" / "cockpit.log", rotate=True)
    except OSError:
        setup_logging(logging.CRITICAL + 1, Path(os.devnull))


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="kobe-tui",
        description=(
            "Kobe's cockpit: the engine with its panes, from the keyboard (? shows the keys). "
            "It reads kobe.toml, .env and KOBE_* like kobe; paper by default. "
            "Exit: 0 ok, 1 refused, 2 bad config."
        ),
    )
    parser.parse_args(argv)  # --help prints this and exits 0; anything else exits 2
    app = KobeApp(log_file=True)
    log_to_file(app._data_dir_guess())
    pause_gc_for_startup()
    app.run()
    for line in app.config_errors:
        print(line, file=sys.stderr)
    sys.exit(app.return_code or 0)
