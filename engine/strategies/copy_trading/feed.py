"""The leader's trades (and market prices), from a JSONL file that is tailed, or a seeded stub.

The leader feed's line format (one JSON object per line; numbers as JSON numbers or strings;
``time`` ISO-8601 with a ``Z``; other keys are ignored)::

    {"kind": "trade", "id": "t-1001", "leader": "whale1", "symbol": "WIF/USDC", "side": "buy",
     "price": "2.15", "size_usd": "120", "time": "2026-01-01T00:05:00Z"}
    {"kind": "trade", "id": "t-1002", "leader": "whale1", "symbol": "WIF/USDC", "side": "sell",
     "price": "2.31", "size_usd": "129", "time": "2026-01-01T00:45:00Z"}
    {"kind": "price", "symbol": "WIF/USDC", "price": "2.17", "time": "2026-01-01T00:06:00Z"}

- ``kind`` is ``trade`` (the default when absent) or ``price`` (a market price observation).
- A trade needs ``id`` (unique: a repeated id is ignored), ``symbol`` (``WIF`` or ``WIF/USDC``),
  ``side`` (``buy`` opens, ``sell`` closes the leader's whole position in that symbol),
  ``price`` (the leader's fill price) and ``size_usd`` (or ``qty``, then size = qty x price).
  ``leader`` is optional (``leader`` by default).
- A line missing a field or of the wrong form (a number out of bounds, ``1e-999999999``) is
  skipped with a log line and one alert; a torn last line waits until it is complete (see
  :mod:`engine.strategies.tail`). Text is cleaned and capped where it is read
  (:mod:`engine.untrusted`): no control characters, 200 characters at most.
"""

from __future__ import annotations

import json
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.exchange.base import Side
from engine.exchange.prices import aware_utc, catch_up_from, restore_walk, walk_state
from engine.fsutil import atomic_write_text
from engine.money import ZERO
from engine.strategies.base import TICK_SECONDS, significant
from engine.strategies.tail import (
    BadRecord,
    JsonlTail,
    dex_symbol,
    opt_dec_field,
    price_field,
    str_field,
    time_field,
)
from engine.untrusted import Problems, parse_decimal, shown

log = logging.getLogger(__name__)

BPS = 10_000


@dataclass(frozen=True)
class LeaderTrade:
    id: str
    leader: str
    symbol: str
    side: Side
    price: Decimal
    size_usd: Decimal
    time: datetime


@dataclass(frozen=True)
class PriceUpdate:
    symbol: str
    price: Decimal
    time: datetime


FeedEvent = LeaderTrade | PriceUpdate


class LeaderFeed(ABC):
    kind: str

    def __init__(self) -> None:
        self.problems = Problems()  # bad lines skipped: the engine shows each as an alert

    @abstractmethod
    def poll(self, now: datetime) -> list[FeedEvent]:
        """What happened since the last poll, in order."""

    def state(self) -> dict[str, Any]:
        """What a restart needs to continue; empty when a file holds it (the jsonl offset)."""
        return {}

    def restore(self, state: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Back from :meth:`state`."""


def parse_feed_record(record: dict[str, Any], quote: str) -> FeedEvent:
    """One feed line as an event; :class:`BadRecord` says what is wrong with it."""
    kind = record.get("kind", "trade")
    symbol = dex_symbol(str_field(record, "symbol"), quote)
    price = price_field(record, "price")
    time = time_field(record)
    if kind == "price":
        return PriceUpdate(symbol, price, time)
    if kind != "trade":
        raise BadRecord(f"'kind' must be 'trade' or 'price' (got {shown(kind)})")
    side_text = record.get("side")
    if side_text not in ("buy", "sell"):
        raise BadRecord(f"'side' must be 'buy' or 'sell' (got {shown(side_text)})")
    size = opt_dec_field(record, "size_usd")
    if size is None:
        qty = opt_dec_field(record, "qty")
        if qty is None:
            raise BadRecord("a trade needs 'size_usd' or 'qty'")
        size = qty * price
    if size <= 0:
        raise BadRecord(f"the trade's size must be positive (got {size})")
    return LeaderTrade(
        id=str_field(record, "id"),
        leader=str_field(record, "leader", "leader"),
        symbol=symbol,
        side=Side(side_text),
        price=price,
        size_usd=size,
        time=time,
    )


class JsonlLeaderFeed(LeaderFeed):
    """Tails ``path`` (which may not exist yet); each poll returns the lines appended since."""

    kind = "jsonl"

    def __init__(
        self, path: Path, *, quote: str = "USDC", offset: int = 0, state_path: Path | None = None
    ) -> None:
        """``state_path`` keeps the offset across restarts (atomic). With one and no saved
        offset yet, the feed starts at the file's current end: a copy trader acts on trades
        appended from now on, never on a backlog of stale ones, and never twice after a restart.
        """
        super().__init__()
        self.state_path = state_path
        if state_path is not None:
            offset = _saved_offset(state_path, path)
        self.tail = JsonlTail(path, offset=offset, problems=self.problems)
        self._quote = quote
        self.skipped = 0
        self._saved = -1
        self._save()  # at the first start too: lines added while Kobe is stopped are not lost

    def _save(self) -> None:
        if self.state_path is not None and self.tail.offset != self._saved:
            atomic_write_text(self.state_path, json.dumps({"offset": self.tail.offset}) + "\n")
            self._saved = self.tail.offset

    @property
    def path(self) -> Path:
        return self.tail.path

    @property
    def offset(self) -> int:
        """Bytes of the file read so far (complete lines only)."""
        return self.tail.offset

    def poll(self, now: datetime) -> list[FeedEvent]:
        out: list[FeedEvent] = []
        for record in self.tail.read():
            try:
                out.append(parse_feed_record(record, self._quote))
            except BadRecord as exc:
                self.skipped += 1
                log.warning("%s: leader feed line skipped: %s", self.path.name, exc)
                self.problems.add(f"{self.path.name}: leader feed line skipped: {exc}")
        self._save()
        return out


def _saved_offset(state_path: Path, feed: Path) -> int:
    if state_path.exists():
        try:
            offset = json.loads(state_path.read_text(encoding="utf-8"))["offset"]
            if type(offset) is not int or offset < 0:
                raise ValueError(f"offset {shown(offset)} is not a byte count")
            return offset
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            log.warning("%s unreadable (%s): the leader feed starts at its end", state_path, exc)
    return feed.stat().st_size if feed.exists() else 0


# ---------------------------------------------------------------------------------------------
# stub

STUB_MARKETS: dict[str, Decimal] = {
    "BONK/USDC": Decimal("0.0000215"),
    "JUP/USDC": Decimal("0.95"),
    "MEW/USDC": Decimal("0.0085"),  # not in the default allowed_symbols: skipped when led
    "POPCAT/USDC": Decimal("0.85"),
    "WIF/USDC": Decimal("2.15"),
}
STUB_LEADER = "stub_leader"
STUB_VOL_BPS = 150  # each step a symbol moves by up to this much
STUB_OPEN_PER_MILLE = 150  # chance per step that the leader opens a position
STUB_MAX_LEADER_POSITIONS = 3
STUB_LEADER_PRICE_BPS = 800  # the leader's fill is up to this far from the market price
STUB_SIZE_USD = (50, 300)
STUB_HOLD_STEPS = (15, 45)


class StubLeaderFeed(LeaderFeed):
    """A seeded leader: deterministic for a seed and the times polled (steps of ``step_s``).

    Every step each symbol's price moves (a fair random walk: no drift), a price update is
    emitted for each, positions whose time is up are sold, and now and then a new one is bought,
    at a fill up to 8 % from the market (so some are beyond the follower's max slippage).
    """

    kind = "stub"

    def __init__(
        self,
        *,
        seed: int = 0,
        rng: random.Random | None = None,
        step_s: int = TICK_SECONDS,
        markets: dict[str, Decimal] | None = None,
    ) -> None:
        super().__init__()
        self._rng = rng if rng is not None else random.Random(seed)
        self._step = timedelta(seconds=step_s)
        self._prices = dict(sorted((markets or STUB_MARKETS).items()))
        self._held: dict[str, int] = {}  # symbol -> steps left
        self._time: datetime | None = None
        self._seq = 0

    def poll(self, now: datetime) -> list[FeedEvent]:
        now = aware_utc(now)
        if self._time is None:
            self._time = now
            return [PriceUpdate(s, p, now) for s, p in self._prices.items()]
        out: list[FeedEvent] = []
        self._time = catch_up_from(self._time, now, self._step)
        while self._time + self._step <= now:
            self._time += self._step
            out += self._one_step(self._time)
        return out

    def state(self) -> dict[str, Any]:
        return {
            **walk_state(self.kind, self._rng, self._time, self._seq),
            "prices": {s: str(p) for s, p in self._prices.items()},
            "held": dict(self._held),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        prices = {str(s): parse_decimal(p, s, positive=True) for s, p in state["prices"].items()}
        held = {str(s): int(parse_decimal(n, s, minimum=ZERO)) for s, n in state["held"].items()}
        self._time, self._seq = restore_walk(state, self.kind, self._rng)
        self._prices, self._held = dict(sorted(prices.items())), held

    def _trade(
        self, symbol: str, side: Side, price: Decimal, size: Decimal, t: datetime
    ) -> LeaderTrade:
        self._seq += 1
        return LeaderTrade(f"stub-{self._seq:06d}", STUB_LEADER, symbol, side, price, size, t)

    def _one_step(self, t: datetime) -> list[FeedEvent]:
        out: list[FeedEvent] = []
        for symbol, price in self._prices.items():
            bps = self._rng.randrange(-STUB_VOL_BPS, STUB_VOL_BPS + 1)  # no drift: fair in mean
            self._prices[symbol] = significant(price * (BPS + bps) / BPS)
            out.append(PriceUpdate(symbol, self._prices[symbol], t))
        for symbol in sorted(self._held):
            self._held[symbol] -= 1
            if self._held[symbol] <= 0:
                del self._held[symbol]
                size = Decimal(self._rng.randrange(STUB_SIZE_USD[0], STUB_SIZE_USD[1] + 1))
                out.append(self._trade(symbol, Side.SELL, self._prices[symbol], size, t))
        free = [s for s in self._prices if s not in self._held]
        if (
            free
            and len(self._held) < STUB_MAX_LEADER_POSITIONS
            and self._rng.randrange(1000) < STUB_OPEN_PER_MILLE
        ):
            symbol = free[self._rng.randrange(len(free))]
            off = self._rng.randrange(-STUB_LEADER_PRICE_BPS, STUB_LEADER_PRICE_BPS + 1)
            price = significant(self._prices[symbol] * (BPS + off) / BPS)
            size = Decimal(self._rng.randrange(STUB_SIZE_USD[0], STUB_SIZE_USD[1] + 1))
            self._held[symbol] = self._rng.randrange(STUB_HOLD_STEPS[0], STUB_HOLD_STEPS[1] + 1)
            out.append(self._trade(symbol, Side.BUY, price, size, t))
        return out
