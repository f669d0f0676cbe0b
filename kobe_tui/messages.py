"""Typed messages from workers to the UI (the only way engine results reach widgets)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from engine.modes import Check, Settings


class SettingsReady(Message):
    """The validated settings and their health checks."""

    def __init__(self, settings: Settings, checks: list[Check]) -> None:
        super().__init__()
        self.settings = settings
        self.checks = checks


class ConfigFailed(Message):
    """The config or the environment was refused: one line per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines
