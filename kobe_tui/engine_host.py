"""The workers that host the engine: the settings and health checks, the first paint from the
files, the runtime's own thread (built, ticked, stopped on every way out), the exchange account's
balances in testnet and live; and the start-up's garbage-collector pause and the cockpit's log."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.widgets import Static
from textual.worker import Worker, WorkerCancelled, WorkerFailed, get_current_worker

from engine.bootstrap import Mode
from engine.exchange.base import Stopping
from kobe_tui.drain import EventDrain
from kobe_tui.messages import (
    AlertRaised,
    ConfigFailed,
    EngineFailed,
    HealthChecked,
    OrderUpdated,
    PositionsChanged,
    RiskChanged,
    SettingsReady,
    StatsReady,
    WalletsChanged,
)
from kobe_tui.state import identity
from kobe_tui.widgets.header import KobeHeader
from kobe_tui.widgets.health import HealthPane
from kobe_tui.widgets.journal import AlertsPane, JournalPane
from kobe_tui.widgets.money import StatsPane, WalletsPane

if TYPE_CHECKING:
    from engine.modes import Settings
    from engine.runtime import Runtime

EXCHANGE_BALANCES_EVERY = 60.0  # seconds between two reads of the exchange account (testnet, live)


class EngineHost(EventDrain):
    """The settings, the first paint and the engine, each in its thread worker."""

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
        health = self.query_one(HealthPane)
        health.show_checks(checks)
        if self._recheck_asked:  # the rows may read as before: say that they were checked
            self._recheck_asked = False
            self.notify(
                f"Health checked again at {self.clock():%H:%M:%S}: {health.border_subtitle}"
            )
        journal = self.query_one(JournalPane)
        if journal.path != settings.data_dir / "trades.jsonl":
            if self.log_file:  # the log follows the data dir the config names
                log_to_file(settings.data_dir)
            journal.path = settings.data_dir / "trades.jsonl"
            journal.load()
        self.load_stats(settings.data_dir, settings.mode.value)
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
        """One mode per process: a reload that would change the mode, exchange, keys, URL or
        data dir is refused; the running settings stay, and the header keeps saying them."""
        assert self.settings is not None
        now = f"{settings.mode.value} on {settings.exchange}"
        running = f"{self.settings.mode.value.upper()} on {self.settings.exchange}"
        text = (
            f"Reload refused: the config or environment now says {now} (or other keys, URL or "
            f"data dir: {settings.data_dir}); "
            f"this cockpit stays {running} until Kobe is restarted"
        )
        self.notify(text, severity="error", timeout=10, markup=False)
        self.query_one(AlertsPane).add(self.clock(), "warning", "reload", text)

    @work(thread=True, exit_on_error=False, exclusive=True, group="stats")
    def load_stats(self, data_dir: Path, mode: str) -> None:
        """The whole journal's statistics: the kept aggregate plus the lines appended since.
        When the money is another mode's, neither they nor the trades are shown as this mode's
        (the wallets pane's alert says whose)."""
        from engine.fsutil import StateError
        from engine.stats import load_stats
        from engine.wallets.runtime import refuse_other_modes_money

        try:
            refuse_other_modes_money(data_dir, mode)
        except StateError:
            self.call_from_thread(lambda: self.query_one(JournalPane).withhold())
            return
        self.post_message(StatsReady(load_stats(data_dir)))

    def on_health_checked(self, message: HealthChecked) -> None:
        self.query_one(HealthPane).show_checks(message.checks)

    def on_stats_ready(self, message: StatsReady) -> None:
        self.query_one(StatsPane).set_stats(message.stats)

    def on_config_failed(self, message: ConfigFailed) -> None:
        self.config_errors = message.lines
        self.exit(return_code=message.code)

    @work(thread=True, exit_on_error=False, group="paint")
    def paint_from_files(self, settings: Settings) -> None:
        self._paint(settings)

    def _paint(self, settings: Settings) -> None:
        """Before the engine: the wallets snapshot and the open orders the journal knows.

        Called from a worker thread; its messages are posted before the engine's first ones.
        """
        from engine.journal import OrderEvent, in_mode, tail_jsonl
        from engine.risk import load_risk_state
        from engine.wallets.runtime import load_view

        # the kill switch as the risk files say (lost or unreadable: TRIPPED), engine or not
        self.post_message(RiskChanged(load_risk_state(settings.data_dir).snap))

        try:
            self.post_message(
                WalletsChanged(
                    load_view(settings.config, settings.data_dir, mode=settings.mode.value)
                )
            )
        except Exception as exc:
            self.post_message(AlertRaised(_alert("error", "wallets", f"wallets snapshot: {exc}")))
        last: dict[str, OrderEvent] = {}
        for record in tail_jsonl(settings.data_dir / "logs" / "orders.jsonl", 2000):
            try:
                event = OrderEvent.from_record(record)
            except (KeyError, ValueError):
                continue
            if in_mode(event, settings.mode.value):  # another mode's are on another venue
                last[event.client_id] = event
        for event in last.values():
            self.post_message(OrderUpdated(event))

    # -- the engine ---------------------------------------------------------------------------

    def start_engine(self, confirmed: bool) -> None:
        """Start the engine, unless one is being built or runs already: ``r`` pressed while it
        starts must not start a second (the first was cancelled, the second refused by the
        first's lock: no engine left)."""
        if any(w.group == "engine" and not w.is_finished for w in self.workers):
            return
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
        from engine.config import ConfigError
        from engine.lock import DataDirBusy

        assert self.settings is not None
        if self.runtime is None:
            self._paint(self.settings)
        try:
            runtime = self._make_runtime(self.settings, confirmed)
            runtime.subscribe(self._forward)
            runtime.build()
        except Stopping:
            return  # quitting while the exchange was being asked (build's retries)
        except DataDirBusy as exc:  # one engine per data dir: refused, as kobe run is
            self.post_message(ConfigFailed([f"kobe-tui: {exc}"], code=1))
            return
        except ConfigError as exc:  # what only an engine needs (a notify channel's variables)
            self.post_message(ConfigFailed(exc.lines))
            return
        except Exception as exc:
            self.post_message(EngineFailed(str(exc)))
            return
        self.runtime = runtime
        resume_gc()
        from engine.health import health_checks  # the data dir exists now: said as it is

        self.post_message(HealthChecked(health_checks(self.settings)))
        if self.settings.mode is not Mode.PAPER:
            self.call_from_thread(self._watch_exchange_balances)
        self.post_message(PositionsChanged.read(runtime))
        # Through the inbox, in order with the engine's own events: a message posted here was
        # drawn after them when the UI was busy, and its "stopped" (the state before the engine
        # runs) stayed in the header for good. The engine says "running" itself, next.
        from engine.runtime import EngineEvent

        self._forward(EngineEvent("risk", runtime.risk_snapshot(), self.clock()))
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
        except Stopping:
            pass  # quitting during an exchange retry's pause: the engine stops there
        except Exception as exc:
            self.post_message(EngineFailed(str(exc)))
        finally:
            runtime.stop()

    def _watch_exchange_balances(self) -> None:
        self.read_exchange_balances()
        self.set_interval(EXCHANGE_BALANCES_EVERY, self.read_exchange_balances)

    def _show_venue(self, health: Any) -> None:
        super()._show_venue(health)
        # the account's figures say they are old while it is down; back, they are read again
        if self.query_one(WalletsPane).venue(health.state):
            self.read_exchange_balances()

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
        if get_current_worker().is_cancelled:
            return  # a newer read replaced this one (the venue came back): it says what is
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
        self.post_message(PositionsChanged.read(self.runtime))

    def exit(self, result: int | None = None, return_code: int = 0, message: Any = None) -> None:
        """Every way out stops the engine first (it finishes its step within a second)."""
        self._stop_engine.set()
        if self.runtime is not None:
            self.runtime.request_stop()
        super().exit(result, return_code, message)

    def shutdown(self) -> None:
        """Quit. What the operator confirmed before (an order placed, a cancel, a close, a trip)
        runs to its end first: ``ctrl+s`` then ``q`` in one packet quit before the order's
        worker had started, and the order was dropped without a word."""
        if self._after_actions(self.shutdown):
            return
        self._stop_engine.set()
        if self.runtime is not None:
            self.runtime.request_stop()
        self.exit(0)

    def _after_actions(self, then: Callable[[], None]) -> bool:
        """True when an action is under way: ``then`` runs once it is done (and what it did
        is drawn: an order it placed is in the orders pane)."""
        busy = [w for w in self.workers if w.group == "action" and not w.is_finished]
        if busy:
            self.notify("Quitting once the action under way is done", timeout=10)
            self._quit_when_done(busy, then)
        return bool(busy)

    @work(exclusive=True, exit_on_error=False, group="quit")
    async def _quit_when_done(self, busy: list[Worker[None]], then: Callable[[], None]) -> None:
        for worker in busy:
            with contextlib.suppress(WorkerFailed, WorkerCancelled):  # said by its own message
                await worker.wait()
        self._drain()
        then()


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
