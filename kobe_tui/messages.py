"""Typed messages from the engine thread to the UI (the only way engine results reach widgets).

The engine thread calls ``App.post_message`` (thread-safe); high-rate messages (wallet snapshots,
prices, risk state, positions) say ``can_replace`` so a burst collapses to the newest.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from engine.execution import Position
    from engine.health import Check
    from engine.journal import OrderEvent
    from engine.modes import Settings
    from engine.risk import RiskSnapshot
    from engine.runtime import AlertEvent, Runtime, RuntimeStatus
    from engine.stats import TradeStats
    from engine.trades import ClosedTrade
    from engine.wallets.snapshot import WalletsSnapshot


class SettingsReady(Message):
    """The validated settings and their health checks."""

    def __init__(self, settings: Settings, checks: list[Check]) -> None:
        super().__init__()
        self.settings = settings
        self.checks = checks


class HealthChecked(Message):
    """The health checks run again (the engine has built what they read: the data dir)."""

    def __init__(self, checks: list[Check]) -> None:
        super().__init__()
        self.checks = checks


class StatsReady(Message):
    """The whole trades journal's statistics (``engine.stats``), read in a worker."""

    def __init__(self, stats: TradeStats) -> None:
        super().__init__()
        self.stats = stats


class ConfigFailed(Message):
    """The cockpit cannot run: one line per problem, printed on exit with ``code`` (2: the
    config or the environment was refused; 1: another process holds the data dir)."""

    def __init__(self, lines: list[str], code: int = 2) -> None:
        super().__init__()
        self.lines = lines
        self.code = code


class _Replaceable(Message):
    def can_replace(self, message: Message) -> bool:
        return type(message) is type(self)


class WalletsChanged(_Replaceable):
    def __init__(self, snapshot: WalletsSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class PricesChanged(_Replaceable):
    def __init__(self, prices: dict[str, Decimal]) -> None:
        super().__init__()
        self.prices = prices


class RiskChanged(_Replaceable):
    def __init__(self, snapshot: RiskSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class PositionsChanged(_Replaceable):
    """The positions held, and the dust (shown as dust, never as a position)."""

    def __init__(self, positions: list[Position], dust: list[Position]) -> None:
        super().__init__()
        self.positions = positions
        self.dust = dust

    @classmethod
    def read(cls, runtime: Runtime) -> PositionsChanged:
        return cls(runtime.positions(), runtime.dust())


class EngineStateChanged(_Replaceable):
    def __init__(self, status: RuntimeStatus) -> None:
        super().__init__()
        self.status = status


class OrderUpdated(Message):
    def __init__(self, event: OrderEvent) -> None:
        super().__init__()
        self.event = event


class TradeClosed(Message):
    def __init__(self, trade: ClosedTrade) -> None:
        super().__init__()
        self.trade = trade


class AlertRaised(Message):
    def __init__(self, alert: AlertEvent) -> None:
        super().__init__()
        self.alert = alert


class EngineFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class EngineBatch(_Replaceable):
    """Engine events are waiting in the app's inbox. One pending at a time: the UI drains the
    inbox in one go (at most every 250 ms), so a burst of events costs a few redraws."""


class ActionDone(Message):
    """A manual action (order, cancel, close, kill switch) finished: what to tell the trader."""

    def __init__(self, text: str, *, error: bool = False, result: Any = None) -> None:
        super().__init__()
        self.text = text
        self.error = error
        self.result = result
