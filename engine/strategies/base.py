"""What every strategy shares: the ``Signal`` it emits, the ``Strategy`` interface the agent drives,
and the small position book both strategies keep.

The contract with the engine (the AgentEngine, issue 7), once per engine tick, in this order:

1. ``signals = strategy.tick(now)`` for every strategy, ``now`` from the injected clock;
2. ``engine.exchange.dex.sync_dex_venue(venue, strategies, now)``: the DEX venue learns the
   markets the strategies need (:meth:`Strategy.markets`) and their prices (:meth:`Strategy.prices`);
3. each entry signal becomes a :class:`~engine.proposal.Proposal` (:func:`signal_to_proposal`),
   each exit signal closes the position its ``ref`` names; the outcome is told back to the
   strategy: :meth:`Strategy.on_entry_filled` / :meth:`Strategy.on_entry_failed` /
   :meth:`Strategy.on_exit_failed` / :meth:`Strategy.on_position_closed` (also when the position
   was closed by something else: a protective exit on the venue, the kill switch's flatten) /
   :meth:`Strategy.on_position_dust` (what is left is too small to sell: the slot is free).

A strategy never places an order itself and never touches a chain: Solana trades are simulated on
the paper DEX venue in every mode.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from engine.exchange.base import OrderType, Side
from engine.exchange.prices import aware_utc
from engine.proposal import Proposal, Sizing, Source

log = logging.getLogger(__name__)

# The engine tick the strategies' defaults are tuned for: one tick = 60 s of (simulated) time.
# ``kobe run --headless --ticks N`` should step its simulated clock by this much per tick. The
# stub feeds move in steps of this length too, whatever the caller's tick (they catch up).
TICK_SECONDS = 60

ZERO = Decimal(0)
HUNDRED = Decimal(100)
ZERO_OFFSET = timedelta(0)


class SignalAction(StrEnum):
    ENTER = "enter"
    EXIT = "exit"


def _check_decimal(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, Decimal):
        raise TypeError(f"Signal.{name} must be a Decimal (got {type(value).__name__})")


@dataclass(frozen=True, kw_only=True)
class Signal:
    """What a strategy wants done. Money is ``Decimal``; ``time`` is timezone-aware UTC.

    ``ref`` is the strategy's stable id of the position: the entry opens it, the exit names it.
    ``size_hint`` is a quote amount (USD(C)): what to spend on an entry, about what an exit is worth.
    ``qty`` (exits) is the base quantity the strategy believes it holds (from the entry's fill).
    ``stop_loss`` / ``take_profit`` are price hints for the entry's protective exits; the strategy
    also watches them on its own feed and emits the exit itself.
    """

    strategy: str
    wallet: str
    symbol: str
    action: SignalAction
    side: Side
    size_hint: Decimal
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    reason: str
    time: datetime
    ref: str
    qty: Decimal | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "action", SignalAction(self.action))
        object.__setattr__(self, "side", Side(self.side))
        _check_decimal("size_hint", self.size_hint)
        _check_decimal("stop_loss", self.stop_loss, optional=True)
        _check_decimal("take_profit", self.take_profit, optional=True)
        _check_decimal("qty", self.qty, optional=True)
        if self.time.tzinfo is None or self.time.utcoffset() != ZERO_OFFSET:
            raise ValueError("Signal.time must be timezone-aware UTC")
        if not self.ref:
            raise ValueError("Signal.ref must name the position")

    @property
    def is_entry(self) -> bool:
        return self.action is SignalAction.ENTER

    def describe(self) -> str:
        """One line for logs: ``enter buy WIF/USDC 5 USD (ref copy_trading-000001): reason``."""
        size = format(self.size_hint.normalize(), "f")
        qty = "" if self.qty is None else f" qty {format(self.qty.normalize(), 'f')}"
        return (
            f"{self.strategy}/{self.wallet}: {self.action.value} {self.side.value} {self.symbol} "
            f"{size} USD{qty} (ref {self.ref}): {self.reason}"
        )


def signal_to_proposal(signal: Signal, *, with_exits: bool = True) -> Proposal:
    """An entry signal as a :class:`Proposal`: a market order for ``size_hint`` of quote.

    ``with_exits`` copies the stop-loss / take-profit hints (the router then places protective
    exits on the venue as well); pass False to leave exits to the strategy alone.
    """
    if signal.action is not SignalAction.ENTER:
        raise ValueError(f"only an entry signal becomes a proposal (got {signal.action.value})")
    return Proposal(
        symbol=signal.symbol,
        side=signal.side,
        entry_type=OrderType.MARKET,
        sizing=Sizing.QUOTE,
        amount=signal.size_hint,
        wallet=signal.wallet,
        source=Source.STRATEGY,
        stop_loss=signal.stop_loss if with_exits else None,
        take_profit=signal.take_profit if with_exits else None,
        reason=signal.reason,
        strategy=signal.strategy,
        ref=signal.ref,
    )


@dataclass(frozen=True)
class DexMarket:
    """A market a strategy needs on the DEX venue; ``price`` is a reference for its tick/step."""

    symbol: str  # BASE/QUOTE, e.g. BONK/USDC
    price: Decimal

    @property
    def base(self) -> str:
        return self.symbol.partition("/")[0]

    @property
    def quote(self) -> str:
        return self.symbol.partition("/")[2]


# ---------------------------------------------------------------------------------------------
# The interface


class Strategy(ABC):
    """One strategy. The engine calls :meth:`tick` once per tick and reports outcomes back."""

    name: str
    wallet: str

    @abstractmethod
    def tick(self, now: datetime) -> list[Signal]:
        """Advance to ``now`` (the injected clock's time) and return what should be done."""

    @abstractmethod
    def on_entry_filled(self, ref: str, price: Decimal, qty: Decimal, now: datetime) -> None:
        """The entry ``ref`` filled: ``qty`` base at average ``price``."""

    @abstractmethod
    def on_entry_failed(self, ref: str, reason: str) -> None:
        """The entry ``ref`` was refused or failed; nothing is held."""

    def on_exit_failed(self, ref: str, reason: str) -> None:  # noqa: B027 - optional hook
        """The exit of ``ref`` was refused or failed; the position is still held."""

    def adopt(  # noqa: B027 - optional hook
        self, ref: str, symbol: str, entry_price: Decimal, qty: Decimal, opened_at: datetime
    ) -> None:
        """A position this strategy opened in an earlier run (the engine's persisted positions):
        watch it again for its exit. The strategies' own state is in memory only."""

    @abstractmethod
    def on_position_closed(self, ref: str, exit_price: Decimal, now: datetime) -> None:
        """The position ``ref`` is closed (by the strategy's exit or anything else)."""

    @abstractmethod
    def on_position_dust(self, ref: str) -> None:
        """The position ``ref`` is too small to sell on its venue (dust): it stays in the
        engine's book, shown, but is no longer this strategy's: its slot is free."""

    @abstractmethod
    def prices(self) -> dict[str, Decimal]:
        """Current prices of the symbols this strategy trades (fed to the DEX venue)."""

    @abstractmethod
    def markets(self) -> list[DexMarket]:
        """The DEX markets this strategy needs now (positions held, candidates it may enter)."""

    def positions(self) -> list[StrategyPosition]:
        """The strategy's positions (pending, open, closing); empty by default."""
        return []

    def drain_problems(self) -> list[str]:
        """Bad records its feed skipped since the last call (the engine alerts each once)."""
        return []

    def state(self) -> dict[str, Any]:
        """What a restart needs to continue where this run stopped (its feed's state included),
        JSON-ready; its positions come back through :meth:`adopt`."""
        return {}

    def restore(self, state: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Back from :meth:`state` (raises KeyError / TypeError / ValueError when damaged)."""


# ---------------------------------------------------------------------------------------------
# The position book both strategies keep


class PositionState(StrEnum):
    PENDING = "pending"  # entry signal emitted, no fill reported yet
    OPEN = "open"  # filled: watched for its exit
    CLOSING = "closing"  # exit signal emitted


@dataclass(frozen=True)
class StrategyPosition:
    ref: str
    symbol: str
    state: PositionState
    size_usd: Decimal
    signalled_at: datetime
    entry_price: Decimal | None = None
    qty: Decimal = ZERO
    opened_at: datetime | None = None
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    key: str = ""  # what the strategy matches exits on (a leader's position, a mint)

    @classmethod
    def adopted(
        cls,
        ref: str,
        symbol: str,
        entry_price: Decimal,
        qty: Decimal,
        opened_at: datetime,
        take_profit: Decimal | None = None,
        stop_loss: Decimal | None = None,
        key: str = "",
    ) -> StrategyPosition:
        """An open position from an earlier run, watched again."""
        opened = aware_utc(opened_at)
        return cls(
            ref=ref,
            symbol=symbol,
            state=PositionState.OPEN,
            size_usd=entry_price * qty,
            signalled_at=opened,
            entry_price=entry_price,
            qty=qty,
            opened_at=opened,
            take_profit=take_profit,
            stop_loss=stop_loss,
            key=key,
        )


def exit_signal(
    strategy: str, wallet: str, pos: StrategyPosition, price: Decimal, now: datetime, reason: str
) -> Signal:
    """The signal that sells ``pos`` in full, sized at ``price``."""
    return Signal(
        strategy=strategy,
        wallet=wallet,
        symbol=pos.symbol,
        action=SignalAction.EXIT,
        side=Side.SELL,
        size_hint=pos.qty * price,
        reason=reason,
        time=now,
        ref=pos.ref,
        qty=pos.qty,
    )


@dataclass
class ClosedCounts:
    entries: int = 0  # entry signals emitted
    filled: int = 0
    failed: int = 0
    closed: int = 0
    wins: int = 0  # closed above the entry price
    losses: int = 0


class PositionBook:
    """Positions by ``ref``: bounded by the strategy's max open positions, never by history."""

    def __init__(self, strategy: str) -> None:
        self.strategy = strategy
        self._by_ref: dict[str, StrategyPosition] = {}
        self._seq = 0
        self.counts = ClosedCounts()

    def new_ref(self) -> str:
        self._seq += 1
        return f"{self.strategy}-{self._seq:06d}"

    def __len__(self) -> int:
        return len(self._by_ref)

    def __contains__(self, ref: object) -> bool:
        return ref in self._by_ref

    def get(self, ref: str) -> StrategyPosition | None:
        return self._by_ref.get(ref)

    def all(self) -> list[StrategyPosition]:
        return list(self._by_ref.values())

    def symbols(self) -> set[str]:
        return {p.symbol for p in self._by_ref.values()}

    def adopt(self, pos: StrategyPosition) -> None:
        """A position from an earlier run; later refs never reuse its number."""
        self._by_ref[pos.ref] = pos
        prefix = f"{self.strategy}-"
        if pos.ref.startswith(prefix) and pos.ref[len(prefix) :].isdigit():
            self._seq = max(self._seq, int(pos.ref[len(prefix) :]))

    def opened(self, pos: StrategyPosition) -> None:
        self._by_ref[pos.ref] = pos
        self.counts.entries += 1

    def update(self, pos: StrategyPosition) -> None:
        self._by_ref[pos.ref] = pos

    def filled(
        self,
        ref: str,
        price: Decimal,
        qty: Decimal,
        now: datetime,
        take_profit: Decimal | None = None,
        stop_loss: Decimal | None = None,
    ) -> StrategyPosition | None:
        pos = self._by_ref.get(ref)
        if pos is None:
            log.warning("%s: fill for unknown position %s ignored", self.strategy, ref)
            return None
        if pos.state is PositionState.PENDING:
            self.counts.filled += 1
        pos = replace(
            pos,
            state=PositionState.OPEN if pos.state is PositionState.PENDING else pos.state,
            entry_price=price,
            qty=qty,
            opened_at=pos.opened_at or now,
            take_profit=take_profit,
            stop_loss=stop_loss,
        )
        self._by_ref[ref] = pos
        return pos

    def failed(self, ref: str, reason: str) -> StrategyPosition | None:
        pos = self._by_ref.pop(ref, None)
        if pos is not None:
            self.counts.failed += 1
            log.info("%s: entry %s %s failed: %s", self.strategy, ref, pos.symbol, reason)
        return pos

    def exit_failed(self, ref: str, reason: str) -> None:
        pos = self._by_ref.get(ref)
        if pos is not None and pos.state is PositionState.CLOSING:
            self._by_ref[ref] = replace(pos, state=PositionState.OPEN)
            log.info(
                "%s: exit %s %s failed (will retry): %s", self.strategy, ref, pos.symbol, reason
            )

    def closing(self, ref: str) -> None:
        pos = self._by_ref[ref]
        self._by_ref[ref] = replace(pos, state=PositionState.CLOSING)

    def dropped(self, ref: str) -> StrategyPosition | None:
        """``ref`` left as dust: forgotten without counting as a closed trade."""
        pos = self._by_ref.pop(ref, None)
        if pos is not None:
            log.info("%s: %s %s is dust: its slot is free", self.strategy, ref, pos.symbol)
        return pos

    def closed(self, ref: str, exit_price: Decimal) -> StrategyPosition | None:
        pos = self._by_ref.pop(ref, None)
        if pos is None:
            return None
        self.counts.closed += 1
        if pos.entry_price is not None and exit_price > pos.entry_price:
            self.counts.wins += 1
        elif pos.entry_price is not None and exit_price < pos.entry_price:
            self.counts.losses += 1
        return pos


def pct_of(price: Decimal, pct: Decimal) -> Decimal:
    return price * pct / HUNDRED


def significant(value: Decimal, digits: int = 6) -> Decimal:
    """``value`` rounded to ``digits`` significant digits (memecoin prices span 12 decades)."""
    if value == 0 or not value.is_finite():
        return value
    quantum = Decimal(1).scaleb(value.adjusted() - digits + 1)
    return value.quantize(quantum)
