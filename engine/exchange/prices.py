"""Price sources for the in-process venues: a seeded simulated feed (the default), the public
tickers of a real exchange, and a manual source (tests, and venues fed by another component).

A source holds one current price per symbol and a time. It moves only when told to:
``advance(now)``, with ``now`` coming from the caller's injected clock, so a run on a simulated
clock is reproducible. Prices are ``Decimal`` on the market's tick; no float ever holds a price.
"""

from __future__ import annotations

import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from engine.exchange.base import Exchange, ExchangeError, ExchangeUnavailable, Ticker
from engine.money import round_to_tick
from engine.untrusted import parse_decimal

log = logging.getLogger(__name__)

SECONDS_PER_YEAR = Decimal(365 * 24 * 3600)

# Irwin-Hall: the sum of 12 uniforms on [0, 1) minus 6 has mean 0 and variance 1, a close and
# bounded (+-6 sigma) stand-in for a normal draw, computed from integers only (no float).
_UNIFORM_RESOLUTION = 1_000_000
_IRWIN_HALL_TERMS = 12


class PriceUnavailable(ExchangeUnavailable):
    """No price for a symbol: unknown to the source, or not fetched yet."""


def aware_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive time is refused (the engine's times are aware)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the engine's times are timezone-aware UTC")
    return moment.astimezone(UTC)


def prices_state(kind: str, time: datetime, prices: Mapping[str, Decimal]) -> dict[str, Any]:
    """The JSON-ready state of a source that holds one price per symbol (sorted: stable bytes)."""
    return {
        "kind": kind,
        "time": time.isoformat(),
        "prices": {symbol: str(price) for symbol, price in sorted(prices.items())},
    }


def rng_state(rng: random.Random) -> dict[str, Any]:
    """A seeded generator's state, JSON-ready (so a restart continues the same sequence)."""
    version, internal, _gauss_next = rng.getstate()
    return {"version": version, "internal": list(internal), "gauss_next": None}


def restore_rng(rng: random.Random, state: Mapping[str, Any]) -> None:
    """Back from :func:`rng_state`; KeyError / TypeError / ValueError when it is not one."""
    rng.setstate((int(state["version"]), tuple(int(x) for x in state["internal"]), None))


def walk_state(kind: str, rng: random.Random, time: datetime | None, seq: int) -> dict[str, Any]:
    """What every seeded stub saves: its kind, random state, the time it reached, its counter."""
    return {
        "kind": kind,
        "rng": rng_state(rng),
        "time": None if time is None else time.isoformat(),
        "seq": seq,
    }


# A seeded stub walks at most this many steps to catch up with ``now``; older ones are skipped. A
# cockpit on the wall clock opened after a simulated run (``kobe run --ticks`` starts at
# paper.sim_start) was months behind: its first tick walked every minute in between, for minutes.
STUB_CATCH_UP = 60


def catch_up_from(time: datetime, now: datetime, step: timedelta) -> datetime:
    """Where a stub at ``time`` resumes its walk towards ``now``: on its grid of ``step``s, at
    most :data:`STUB_CATCH_UP` steps before ``now``."""
    behind = (now - time) // step
    return time + max(behind - STUB_CATCH_UP, 0) * step


def restore_walk(
    state: Mapping[str, Any], kind: str, rng: random.Random
) -> tuple[datetime | None, int]:
    """Back from :func:`walk_state`: the generator is restored; returns ``(time, seq)``."""
    if state.get("kind") != kind:
        raise ValueError(f"a {state.get('kind')!r} state, not {kind!r}")
    restore_rng(rng, state["rng"])
    time = state["time"]
    return (None if time is None else aware_utc(datetime.fromisoformat(str(time)))), int(
        state["seq"]
    )


def read_prices_state(
    state: Mapping[str, Any], kind: str, label: str
) -> tuple[datetime, dict[str, Decimal]]:
    """``(time, prices)`` back from :func:`prices_state`; ``ValueError`` naming ``label``."""
    try:
        if state["kind"] != kind:
            raise ValueError(f"a {state['kind']!r} feed state, not {kind!r}")
        time = aware_utc(datetime.fromisoformat(str(state["time"])))
        prices = {str(k): parse_decimal(v, k, positive=True) for k, v in state["prices"].items()}
    except (KeyError, TypeError, AttributeError, ArithmeticError) as exc:
        raise ValueError(f"unreadable {label} state: {exc!r}") from None
    return time, prices


class PriceSource(ABC):
    """One current price per symbol, moved forward by :meth:`advance`."""

    kind: str

    @abstractmethod
    def symbols(self) -> tuple[str, ...]: ...

    @abstractmethod
    def price(self, symbol: str) -> Decimal:
        """The current price of ``symbol``; :class:`PriceUnavailable` when there is none."""

    @property
    @abstractmethod
    def time(self) -> datetime:
        """When the current prices were set (UTC)."""

    @abstractmethod
    def advance(self, now: datetime) -> dict[str, Decimal]:
        """Move the prices to ``now`` and return them. A ``now`` not after :attr:`time` is a no-op."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """Enough (JSON-ready: strings and ints) to continue exactly where this source is."""

    @abstractmethod
    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state`; raises ``ValueError`` on a state it cannot read."""

    def prices(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for symbol in self.symbols():
            try:
                out[symbol] = self.price(symbol)
            except PriceUnavailable:
                continue
        return out


# ---------------------------------------------------------------------------------------------
# Simulated


@dataclass(frozen=True)
class SimSymbol:
    """How one symbol moves in the simulated feed."""

    start_price: Decimal
    tick_size: Decimal
    annual_volatility: Decimal  # e.g. 0.55 for 55 % a year


class SimulatedFeed(PriceSource):
    """A geometric random walk per symbol, deterministic for a given seed and call sequence.

    Each :meth:`advance` to a later ``now`` moves every symbol by one step whose standard deviation
    is ``annual_volatility * sqrt(elapsed / one year)``; the new price is rounded to the tick and
    never goes below one tick. Symbols move in sorted order, so the draws do not depend on dict
    order. The RNG is a ``random.Random`` (injected, or built from ``seed``), never the global one.
    """

    kind = "simulated"

    def __init__(
        self,
        specs: Mapping[str, SimSymbol],
        *,
        start: datetime,
        seed: int = 0,
        rng: random.Random | None = None,
    ) -> None:
        if not specs:
            raise ValueError("the simulated feed needs at least one symbol")
        self._specs = dict(sorted(specs.items()))
        self._rng = rng if rng is not None else random.Random(seed)
        self._time = aware_utc(start)
        self._prices = {
            symbol: max(round_to_tick(spec.start_price, spec.tick_size), spec.tick_size)
            for symbol, spec in self._specs.items()
        }

    def symbols(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def price(self, symbol: str) -> Decimal:
        try:
            return self._prices[symbol]
        except KeyError:
            raise PriceUnavailable(f"no simulated price for {symbol}") from None

    @property
    def time(self) -> datetime:
        return self._time

    def _standard_draw(self) -> Decimal:
        total = sum(self._rng.randrange(_UNIFORM_RESOLUTION) for _ in range(_IRWIN_HALL_TERMS))
        return Decimal(total) / Decimal(_UNIFORM_RESOLUTION) - Decimal(_IRWIN_HALL_TERMS) / 2

    def advance(self, now: datetime) -> dict[str, Decimal]:
        now = aware_utc(now)
        if now <= self._time:
            return dict(self._prices)
        delta = now - self._time
        elapsed = Decimal(delta.days * 86_400 + delta.seconds) + Decimal(delta.microseconds) / (
            Decimal(1_000_000)
        )
        horizon = (elapsed / SECONDS_PER_YEAR).sqrt()
        for symbol, spec in self._specs.items():
            sigma = spec.annual_volatility * horizon
            z = self._standard_draw()
            factor = (sigma * z - sigma * sigma / 2).exp()
            moved = round_to_tick(self._prices[symbol] * factor, spec.tick_size)
            self._prices[symbol] = max(moved, spec.tick_size)
        self._time = now
        return dict(self._prices)

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "time": self._time.isoformat(),
            "prices": {symbol: str(price) for symbol, price in self._prices.items()},
            "rng": rng_state(self._rng),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        try:
            if state["kind"] != self.kind:
                raise ValueError(f"a {state['kind']!r} feed state, not {self.kind!r}")
            time = aware_utc(datetime.fromisoformat(state["time"]))
            prices = {
                str(k): parse_decimal(v, k, positive=True) for k, v in state["prices"].items()
            }
            restore_rng(self._rng, state["rng"])
        except (KeyError, TypeError, AttributeError, ArithmeticError) as exc:
            raise ValueError(f"unreadable simulated feed state: {exc!r}") from None
        self._time = time
        for symbol, price in prices.items():
            if symbol in self._prices:
                self._prices[symbol] = price


# ---------------------------------------------------------------------------------------------
# Exchange tickers


TickerFetch = Callable[[str], Ticker]


class ExchangeTickerSource(PriceSource):
    """Prices from a real exchange's public tickers (``price_source = "exchange"``).

    ``fetch`` is an :class:`Exchange` (its ``fetch_ticker`` is used) or any callable returning a
    :class:`Ticker`. Each :meth:`advance` fetches every symbol once; a fetch that fails keeps the
    last price and is logged, so a network hiccup does not stop the paper account.
    """

    kind = "exchange"

    def __init__(
        self,
        fetch: Exchange | TickerFetch,
        symbols: Iterable[str],
        *,
        tick_sizes: Mapping[str, Decimal] | None = None,
        start: datetime,
    ) -> None:
        self._fetch: TickerFetch = fetch.fetch_ticker if isinstance(fetch, Exchange) else fetch
        self._symbols = tuple(sorted(symbols))
        self._ticks = dict(tick_sizes or {})
        self._time = aware_utc(start)
        self._prices: dict[str, Decimal] = {}

    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    def price(self, symbol: str) -> Decimal:
        if symbol not in self._symbols:
            raise PriceUnavailable(f"{symbol} is not followed by the ticker source")
        if symbol not in self._prices:
            self._fetch_one(symbol)
        try:
            return self._prices[symbol]
        except KeyError:
            raise PriceUnavailable(f"no ticker yet for {symbol}") from None

    @property
    def time(self) -> datetime:
        return self._time

    def _fetch_one(self, symbol: str) -> None:
        try:
            ticker = self._fetch(symbol)
        except ExchangeError as exc:
            log.warning("ticker %s: %s (keeping the last price)", symbol, exc)
            return
        last = ticker.last
        tick = self._ticks.get(symbol)
        if tick is not None:
            last = max(round_to_tick(last, tick), tick)
        self._prices[symbol] = last

    def advance(self, now: datetime) -> dict[str, Decimal]:
        now = aware_utc(now)
        if now <= self._time and self._prices:
            return dict(self._prices)
        for symbol in self._symbols:
            self._fetch_one(symbol)
        self._time = max(now, self._time)
        return dict(self._prices)

    def state(self) -> dict[str, Any]:
        return prices_state(self.kind, self._time, self._prices)

    def restore(self, state: Mapping[str, Any]) -> None:
        time, prices = read_prices_state(state, self.kind, "ticker source")
        self._time = time
        self._prices.update({s: p for s, p in prices.items() if s in self._symbols})


# ---------------------------------------------------------------------------------------------
# Manual


class ManualPrices(PriceSource):
    """Prices set by hand (:meth:`set`): tests, and venues whose prices come from elsewhere."""

    kind = "manual"

    def __init__(self, prices: Mapping[str, Decimal], *, start: datetime) -> None:
        self._prices = dict(prices)
        self._pending: dict[str, Decimal] = {}
        self._time = aware_utc(start)

    def symbols(self) -> tuple[str, ...]:
        return tuple(sorted(self._prices))

    def set(self, symbol: str, price: Decimal) -> None:
        """Take ``price`` at the next :meth:`advance` (a symbol not seen before takes it now)."""
        if isinstance(price, float):
            raise TypeError("float is not money: pass a str or a Decimal")
        if symbol in self._prices:
            self._pending[symbol] = price
        else:
            self._prices[symbol] = price

    def price(self, symbol: str) -> Decimal:
        try:
            return self._prices[symbol]
        except KeyError:
            raise PriceUnavailable(f"no price set for {symbol}") from None

    @property
    def time(self) -> datetime:
        return self._time

    def advance(self, now: datetime) -> dict[str, Decimal]:
        now = aware_utc(now)
        self._prices.update(self._pending)
        self._pending.clear()
        self._time = max(now, self._time)
        return dict(self._prices)

    label = "manual price"

    def state(self) -> dict[str, Any]:
        return prices_state(self.kind, self._time, self._prices)

    def restore(self, state: Mapping[str, Any]) -> None:
        time, prices = read_prices_state(state, self.kind, self.label)
        self._time = time
        self._prices.update(prices)
