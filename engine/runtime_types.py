"""The runtime's types: engine state and events, the simulated clock, the agent it drives,
a venue's parts and health, the status it reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from engine.config import Mode
from engine.exchange.base import Exchange
from engine.execution import ExecutionEngine
from engine.router import Router
from engine.trades import ClosedTrade


class EngineState(StrEnum):
    STOPPED = "stopped"
    RUNNING = "running"
    PAUSED = "paused"
    LOCKED = "locked"  # live, waiting for the operator's unlock
    ERROR = "error"


@dataclass(frozen=True)
class EngineEvent:
    """What the engine tells its subscribers. ``kind`` says what ``payload`` is."""

    kind: str  # order | trade | wallets | risk | alert | state | prices | venue | error | notify
    payload: Any
    time: datetime


@dataclass(frozen=True)
class AlertEvent:
    severity: str  # info | warning | critical | error
    code: str
    message: str


class SimClock:
    """A simulated clock: it moves only when told to (``kobe run --ticks``: never sleeps)."""

    def __init__(self, start: datetime) -> None:
        self.now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)


def wall_clock() -> datetime:
    return datetime.now(UTC)


class Agent(Protocol):
    """The strategies' side of the engine (``engine.agent.AgentEngine``)."""

    def tick(self, now: datetime, execution: ExecutionEngine, paused: bool) -> None: ...

    def on_trade_closed(self, trade: ClosedTrade) -> None: ...

    def on_position_dust(self, entry_cid: str) -> None: ...

    def dex_venue(self) -> Exchange | None: ...

    def before_venues(self, now: datetime) -> None: ...

    def adopt_positions(self, execution: ExecutionEngine) -> None: ...

    def status(self) -> dict[str, Any]: ...


@dataclass
class VenueParts:
    name: str
    exchange: Exchange
    router: Router


@dataclass(frozen=True)
class VenueHealth:
    """A real exchange's state, as the last calls found it (testnet and live)."""

    state: str  # ok | degraded (it answers with errors) | down (it cannot be reached)
    error: str = ""
    since: datetime | None = None  # down since
    latency_ms: int | None = None  # the last call's round trip


@dataclass
class RuntimeStatus:
    state: EngineState
    mode: Mode
    exchange: str
    ticks: int
    now: datetime | None
    error: str = ""
    notes: list[str] = field(default_factory=list)
