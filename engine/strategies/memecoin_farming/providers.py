"""Where memecoin candidates and their prices come from.

``MemecoinDataProvider`` is the interface; three providers implement it:

- ``StubRandomProvider`` (``provider.kind = "stub_random"``): offline and deterministic. A seeded
  ``random.Random`` (injected, never the global one) makes candidates appear over time, with a
  liquidity, a volume that grows, and a price that moves every step as a fair random walk (no
  drift) with its own volatility; :meth:`state` / :meth:`restore` let a restart continue it. It moves in fixed steps of ``step_s`` seconds (catching up to the
  time it is given), so the same seed and the same times give the same candidates and prices
  whatever the caller's tick. Money is drawn as integers (``randrange``), never as floats.
- ``OnchainDryRunProvider`` (``provider.kind = "onchain_dry_run"``): reads the indexer's JSONL
  files under ``<data dir>/indexer/`` (every ``*.jsonl`` there, tailed as they grow; see
  :mod:`engine.strategies.tail`). ``dry_run`` is True: the strategy logs the signals it would send
  and returns none. The lines it reads (other keys are ignored; numbers may be JSON numbers or
  strings; ``time`` is ISO-8601 with a ``Z``)::

    {"kind": "candidate", "mint": "<address>", "symbol": "BONK", "price_usd": "0.0000231",
     "liquidity_usd": "52000", "volume_usd": "8000", "slot": 312345678,
     "time": "2026-01-01T00:00:00Z"}
    {"kind": "swap", "mint": "<address>", "price_usd": "0.0000240", "amount_usd": "350",
     "liquidity_usd": "53000", "slot": 312345690, "time": "2026-01-01T00:00:07Z"}

  ``symbol`` is the token's ticker (``BONK``) or a pair (``BONK/USDC``, which must be quoted in
  the DEX quote asset); ``volume_usd`` and ``liquidity_usd`` are optional on a swap; a swap adds
  ``amount_usd`` to the candidate's volume and sets its price. A swap of an unknown mint, or a
  line missing a field, is skipped with a log line.
- ``OnchainProvider`` (``provider.kind = "onchain"``): the same files, read by the same code
  (:class:`IndexerFilesProvider`), but ``dry_run`` is False: the strategy's signals are sent and
  traded on the paper DEX venue like the stub's.

Both forget a candidate not updated for ``CANDIDATE_LIFETIME_S`` unless the strategy holds it
(``keep``), so nothing grows with history.
"""

from __future__ import annotations

import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.exchange.prices import aware_utc, catch_up_from, restore_walk, walk_state
from engine.money import ZERO
from engine.strategies.base import TICK_SECONDS, significant
from engine.strategies.memecoin_farming.candidates import Candidate
from engine.strategies.tail import (
    BadRecord,
    JsonlTail,
    dec_field,
    dex_symbol,
    opt_dec_field,
    price_field,
    str_field,
    time_field,
)
from engine.untrusted import Problems, parse_decimal, shown

log = logging.getLogger(__name__)

CANDIDATE_LIFETIME_S = 4 * 3600
BPS = 10_000


class MemecoinDataProvider(ABC):
    """Candidates and their current prices, moved forward by :meth:`update`."""

    kind: str
    dry_run: bool = False  # True: the strategy logs its signals and returns none

    def __init__(self) -> None:
        self.problems = Problems()  # bad lines skipped: the engine shows each as an alert

    @abstractmethod
    def update(self, now: datetime, keep: Collection[str] = ()) -> None:
        """Move to ``now``; ``keep`` are symbols the strategy holds (never forgotten)."""

    @abstractmethod
    def candidates(self) -> list[Candidate]:
        """Every candidate known now, by symbol."""

    def candidate(self, symbol: str) -> Candidate | None:
        for c in self.candidates():
            if c.symbol == symbol:
                return c
        return None

    def price(self, symbol: str) -> Decimal | None:
        c = self.candidate(symbol)
        return None if c is None else c.price_usd

    def state(self) -> dict[str, Any]:
        """What a restart needs to continue; empty when the files are the state (the indexer's)."""
        return {}

    def restore(self, state: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Back from :meth:`state`."""


# ---------------------------------------------------------------------------------------------
# stub_random

_SYLLABLES = (
    "BON", "PEP", "MOO", "WIF", "DOG", "CAT", "FRO", "GIG", "SHI", "BAB",
    "KEK", "ZOO", "POP", "MEW", "NUT", "YOL", "SOL", "PUM", "BRR", "HON",
)  # fmt: skip

STUB_INITIAL_CANDIDATES = 3
STUB_SPAWN_PER_MILLE = 300  # chance, per step, that a new candidate appears
STUB_VOL_BPS = (80, 300)  # a candidate's volatility per step, drawn once
STUB_LIQUIDITY_USD = (2_000, 150_000)
STUB_VOLUME_START_USD = (0, 8_000)
STUB_VOLUME_STEP_USD = (0, 1_500)


@dataclass
class _Coin:
    candidate: Candidate
    vol_bps: int
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        c = self.candidate
        return {
            "mint": c.mint,
            "symbol": c.symbol,
            "price_usd": str(c.price_usd),
            "liquidity_usd": str(c.liquidity_usd),
            "volume_usd": str(c.volume_usd),
            "created_at": c.created_at.isoformat(),
            "first_price_usd": None if c.first_price_usd is None else str(c.first_price_usd),
            "vol_bps": self.vol_bps,
            "updated_at": self.updated_at.isoformat(),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> _Coin:
        first = raw["first_price_usd"]
        candidate = Candidate(
            mint=str(raw["mint"]),
            symbol=str(raw["symbol"]),
            price_usd=parse_decimal(raw["price_usd"], "price_usd", positive=True),
            liquidity_usd=parse_decimal(raw["liquidity_usd"], "liquidity_usd", minimum=ZERO),
            volume_usd=parse_decimal(raw["volume_usd"], "volume_usd", minimum=ZERO),
            created_at=aware_utc(datetime.fromisoformat(str(raw["created_at"]))),
            first_price_usd=None if first is None else parse_decimal(first, "first", positive=True),
        )
        updated = aware_utc(datetime.fromisoformat(str(raw["updated_at"])))
        vol_bps = parse_decimal(raw["vol_bps"], "vol_bps", minimum=ZERO, maximum=Decimal(BPS))
        return cls(candidate, int(vol_bps), updated)


class StubRandomProvider(MemecoinDataProvider):
    kind = "stub_random"

    def __init__(
        self,
        *,
        seed: int = 0,
        rng: random.Random | None = None,
        quote: str = "USDC",
        step_s: int = TICK_SECONDS,
    ) -> None:
        super().__init__()
        self._rng = rng if rng is not None else random.Random(seed)
        self._quote = quote
        self._step = timedelta(seconds=step_s)
        self._time: datetime | None = None
        self._coins: dict[str, _Coin] = {}  # by symbol
        self._seq = 0

    def _between(self, bounds: tuple[int, int]) -> int:
        return self._rng.randrange(bounds[0], bounds[1] + 1)

    def _spawn(self, now: datetime) -> None:
        self._seq += 1
        first = _SYLLABLES[self._rng.randrange(len(_SYLLABLES))]
        second = _SYLLABLES[self._rng.randrange(len(_SYLLABLES))]
        base = first + second
        if f"{base}/{self._quote}" in self._coins:
            base = f"{base}{self._seq}"
        mantissa = self._rng.randrange(100_000, 1_000_000)
        price = Decimal(mantissa).scaleb(-self._rng.randrange(5, 11))  # 0.00001 .. 9.99999
        symbol = f"{base}/{self._quote}"
        candidate = Candidate(
            mint=f"stub{self._seq:08d}",
            symbol=symbol,
            price_usd=price,
            liquidity_usd=Decimal(self._between(STUB_LIQUIDITY_USD)),
            volume_usd=Decimal(self._between(STUB_VOLUME_START_USD)),
            created_at=now,
            first_price_usd=price,
        )
        self._coins[symbol] = _Coin(candidate, self._between(STUB_VOL_BPS), now)

    def _move(self, coin: _Coin, now: datetime) -> None:
        c = coin.candidate
        bps = self._rng.randrange(-coin.vol_bps, coin.vol_bps + 1)  # no drift: fair in mean
        price = significant(c.price_usd * (BPS + bps) / BPS)
        liquidity = (c.liquidity_usd * (BPS + self._rng.randrange(-200, 201)) / BPS).quantize(
            Decimal(1)
        )
        volume = c.volume_usd + self._between(STUB_VOLUME_STEP_USD)
        price = max(price, Decimal(1).scaleb(-12))
        coin.candidate = replace(c, price_usd=price, liquidity_usd=liquidity, volume_usd=volume)
        coin.updated_at = now

    def update(self, now: datetime, keep: Collection[str] = ()) -> None:
        now = aware_utc(now)
        if self._time is None:
            self._time = now
            for _ in range(STUB_INITIAL_CANDIDATES):
                self._spawn(now)
            return
        self._time = catch_up_from(self._time, now, self._step)
        while self._time + self._step <= now:
            self._time += self._step
            moment = self._time
            for symbol in sorted(self._coins):
                self._move(self._coins[symbol], moment)
            if self._rng.randrange(1000) < STUB_SPAWN_PER_MILLE:
                self._spawn(moment)
            self._forget(moment, keep)

    def _forget(self, now: datetime, keep: Collection[str]) -> None:
        horizon = timedelta(seconds=CANDIDATE_LIFETIME_S)
        for symbol in [
            s
            for s, coin in self._coins.items()
            if s not in keep and now - coin.candidate.created_at > horizon
        ]:
            del self._coins[symbol]

    def candidates(self) -> list[Candidate]:
        return [self._coins[s].candidate for s in sorted(self._coins)]

    def candidate(self, symbol: str) -> Candidate | None:
        coin = self._coins.get(symbol)
        return None if coin is None else coin.candidate

    def state(self) -> dict[str, Any]:
        """Everything a restart needs to continue the same market (JSON-ready)."""
        return {
            **walk_state(self.kind, self._rng, self._time, self._seq),
            "coins": [self._coins[s].to_json() for s in sorted(self._coins)],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        coins = [_Coin.from_json(raw) for raw in state["coins"]]
        self._time, self._seq = restore_walk(state, self.kind, self._rng)
        self._coins = {coin.candidate.symbol: coin for coin in coins}


# ---------------------------------------------------------------------------------------------
# onchain_dry_run and onchain: the indexer's files


class IndexerFilesProvider(MemecoinDataProvider):
    """Candidates and prices from the indexer's JSONL files (shared by ``onchain_dry_run`` and
    ``onchain``; they differ only in ``dry_run``)."""

    def __init__(self, indexer_dir: Path, *, quote: str = "USDC") -> None:
        super().__init__()
        self.indexer_dir = Path(indexer_dir)
        self._quote = quote
        self._tails: dict[str, JsonlTail] = {}
        self._by_mint: dict[str, Candidate] = {}
        self._seen_at: dict[str, datetime] = {}
        self.lines_read = 0
        self._bad_records = 0

    @property
    def lines_skipped(self) -> int:
        """Lines not used: not JSON objects, or records missing or misusing a field."""
        return self._bad_records + sum(t.skipped for t in self._tails.values())

    def update(self, now: datetime, keep: Collection[str] = ()) -> None:
        now = aware_utc(now)
        if self.indexer_dir.is_dir():
            for path in sorted(self.indexer_dir.glob("*.jsonl")):
                tail = self._tails.get(path.name)
                if tail is None:
                    tail = self._tails[path.name] = JsonlTail(path, problems=self.problems)
                for record in tail.read():
                    self._apply(record, path, now)
        horizon = timedelta(seconds=CANDIDATE_LIFETIME_S)
        for mint in [
            m
            for m, c in self._by_mint.items()
            if c.symbol not in keep and now - self._seen_at[m] > horizon
        ]:
            del self._by_mint[mint]
            del self._seen_at[mint]

    def _apply(self, record: dict[str, object], path: Path, now: datetime) -> None:
        self.lines_read += 1
        kind = record.get("kind")
        try:
            if kind == "candidate":
                self._candidate(record, now)
            elif kind == "swap":
                self._swap(record, now)
            else:
                raise BadRecord(f"'kind' must be 'candidate' or 'swap' (got {shown(kind)})")
        except BadRecord as exc:
            self._bad_records += 1
            log.warning("%s: indexer line skipped: %s", path.name, exc)
            self.problems.add(f"{path.name}: indexer line skipped: {exc}")

    @staticmethod
    def _slot(record: dict[str, object]) -> int | None:
        slot = record.get("slot")
        if slot is None:
            return None
        if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot < 2**63:
            raise BadRecord(f"'slot' must be a slot number (got {shown(slot)})")
        return slot

    def _candidate(self, record: dict[str, object], now: datetime) -> None:
        mint = str_field(record, "mint")
        symbol = dex_symbol(str_field(record, "symbol"), self._quote)
        if not symbol.endswith(f"/{self._quote}"):
            raise BadRecord(f"{symbol} is not quoted in {self._quote}")
        price = price_field(record, "price_usd")
        previous = self._by_mint.get(mint)
        self._by_mint[mint] = Candidate(
            mint=mint,
            symbol=symbol,
            price_usd=price,
            liquidity_usd=dec_field(record, "liquidity_usd"),
            volume_usd=opt_dec_field(record, "volume_usd")
            or (previous.volume_usd if previous else Decimal(0)),
            created_at=previous.created_at if previous else time_field(record),
            first_price_usd=previous.first_price_usd if previous else price,
            slot=self._slot(record),
        )
        self._seen_at[mint] = now

    def _swap(self, record: dict[str, object], now: datetime) -> None:
        mint = str_field(record, "mint")
        c = self._by_mint.get(mint)
        if c is None:
            raise BadRecord(f"swap of unknown mint {shown(mint)}")
        price = price_field(record, "price_usd")
        time_field(record)  # required, checked
        liquidity = opt_dec_field(record, "liquidity_usd")
        amount = opt_dec_field(record, "amount_usd") or Decimal(0)
        self._by_mint[mint] = replace(
            c,
            price_usd=price,
            liquidity_usd=c.liquidity_usd if liquidity is None else liquidity,
            volume_usd=c.volume_usd + amount,
            slot=self._slot(record) or c.slot,
        )
        self._seen_at[mint] = now

    def candidates(self) -> list[Candidate]:
        return sorted(self._by_mint.values(), key=lambda c: (c.symbol, c.mint))


class OnchainDryRunProvider(IndexerFilesProvider):
    """The indexer's candidates; the strategy logs its signals and sends none."""

    kind = "onchain_dry_run"
    dry_run = True


class OnchainProvider(IndexerFilesProvider):
    """The indexer's candidates; the strategy trades them (on the paper DEX venue)."""

    kind = "onchain"
    dry_run = False
