"""What the cockpit knows and is told at start: the settings (or the cheap peek at the mode and
exchange before them), the injected clock and factories, the engine's and the kill switch's
state as shown, and the drain's inbox. The layers above (the event drain, the engine host, the
keys and the app's layout) build on it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App

from engine.bootstrap import Mode, load_env, peek

if TYPE_CHECKING:
    from engine.modes import Settings
    from engine.runtime import Runtime

    RuntimeFactory = Callable[[Settings, bool], Runtime]

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


def wall_clock() -> datetime:
    return datetime.now(UTC)


class CockpitState(App[int]):
    """The cockpit's state and what it derives from the mode; no widget is touched here."""

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
        # 16 colours (TERM=xterm, some SSH setups): the terminal's own ANSI palette; not with
        # NO_COLOR, whose greys come from the theme's RGB colours: ANSI ones have none, and
        # every text was black on black
        sixteen = self.console.color_system in ("standard", "windows") and not self.no_color
        self.theme = "ansi-dark" if sixteen else "textual-dark"
        self.animation_level = "none"  # no animations: they cost bandwidth over SSH
        self.settings = settings
        self.config_errors: list[str] = []
        self.mode_named = True
        self._cwd = Path.cwd() if cwd is None else cwd
        self._env = env if env is not None else load_env(self._cwd)  # keeps what came from .env
        if settings is not None:
            self.mode, self.exchange = settings.mode, settings.exchange
        else:
            mode, self.exchange = peek(self._env, self._cwd)
            self.mode_named = mode is not None  # main() stops before the first frame if not
            self.mode = mode or Mode.PAPER
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
        self.risk_reason = ""  # why it is TRIPPED (a trip whose flatten is still to confirm)
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
        self._recheck_asked = False  # r: say when the checks ran again (the rows may not change)

    def _locked(self) -> bool:
        return self.mode is Mode.LIVE and not self.live_unlocked

    def _data_dir_guess(self) -> Path:
        if self.settings is not None:
            return self.settings.data_dir
        raw = self._env.get("KOBE_DATA_DIR") or "data"
        path = Path(raw)
        return path if path.is_absolute() else self._cwd / path

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


def identity(settings: Settings) -> tuple[object, ...]:
    """What one process never changes: mode, exchange, the keys (and their marking), URL, and
    the data dir (the engine's book and lock: a reload that moved it showed another data
    dir's trades beside the engine's orders, and sent the audit of an unlock there)."""
    keys = tuple(settings.secrets.get(name) for name in settings.key_vars)
    return (
        settings.mode,
        settings.exchange,
        settings.api_url,
        keys,
        settings.testnet_flag_set(),
        settings.data_dir.resolve(),
    )
