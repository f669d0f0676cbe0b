"""Memecoin farming: enter young, liquid, traded candidates on a timer; exit on time or TP/SL.

ENTRY: at most one entry per ``entry_interval_s``, while fewer than ``max_open_positions`` are
pending or open: the candidate with the most volume (ties by symbol) among those passing the
filters (min liquidity, min volume, max age) and not entered before, for ``entry_size_usd``.
EXIT: when the provider's price reaches the take-profit (entry + ``tp_pct`` %) or the stop-loss
(entry - ``sl_pct`` %), or after ``hold_time_s`` since the fill; or when the candidate vanished
from the provider (no price: exit at the last known one).

With a dry-run provider (``onchain_dry_run``) nothing is returned: each signal is logged as one
it WOULD send, the entry is taken as filled at the provider's price and the exit as done, so the
log shows the whole life of every would-be trade. ``would_send`` keeps the last ones.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from engine.config import MemecoinFarmingConfig
from engine.exchange.base import Side
from engine.exchange.prices import aware_utc
from engine.money import floor_to_step
from engine.strategies.base import (
    HUNDRED,
    DexMarket,
    PositionBook,
    PositionState,
    Signal,
    SignalAction,
    Strategy,
    StrategyPosition,
    exit_signal,
    significant,
)
from engine.strategies.memecoin_farming.candidates import Candidate, passes
from engine.strategies.memecoin_farming.providers import MemecoinDataProvider
from engine.untrusted import parse_decimal

log = logging.getLogger(__name__)

NAME = "memecoin_farming"
MAX_CANDIDATE_MARKETS = 10  # markets() offers the venue at most this many not-yet-held candidates
WOULD_SEND_KEPT = 100
DRY_RUN_QTY_STEP = Decimal("0.000001")


class MemecoinFarming(Strategy):
    def __init__(self, config: MemecoinFarmingConfig, provider: MemecoinDataProvider) -> None:
        self.name = NAME
        self.wallet = config.wallet
        self.config = config
        self.provider = provider
        self.book = PositionBook(NAME)
        self._entered: set[str] = set()  # mints entered, forgotten with their candidate
        self._last_entry: datetime | None = None
        self._last_price: dict[str, Decimal] = {}  # held symbols: last price seen
        self.would_send: deque[Signal] = deque(maxlen=WOULD_SEND_KEPT)
        self.last_signal: Signal | None = None
        self._now: datetime | None = None

    @property
    def dry_run(self) -> bool:
        return self.provider.dry_run

    def state(self) -> dict[str, Any]:
        return {
            "provider": self.provider.state(),
            "entered": sorted(self._entered),
            "last_entry": None if self._last_entry is None else self._last_entry.isoformat(),
            "last_price": {s: str(p) for s, p in sorted(self._last_price.items())},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.provider.restore(state["provider"])
        last = state["last_entry"]
        self._entered = {str(m) for m in state["entered"]}
        self._last_entry = None if last is None else aware_utc(datetime.fromisoformat(str(last)))
        self._last_price = {
            str(s): parse_decimal(p, s, positive=True) for s, p in state["last_price"].items()
        }

    # -- the tick -----------------------------------------------------------------------------

    def tick(self, now: datetime) -> list[Signal]:
        now = aware_utc(now)
        self._now = now
        self.provider.update(now, keep=self.book.symbols())
        known = {c.mint for c in self.provider.candidates()}
        self._entered &= known
        for symbol in self.book.symbols():
            price = self.provider.price(symbol)
            if price is not None:
                self._last_price[symbol] = price
        signals = self._exits(now)
        entry = self._entry(now)
        if entry is not None:
            signals.append(entry)
        if signals:
            self.last_signal = signals[-1]
        if self.dry_run:
            for s in signals:
                self._pretend(s, now)
            return []
        return signals

    def _exits(self, now: datetime) -> list[Signal]:
        out = []
        hold = timedelta(seconds=self.config.hold_time_s)
        for pos in self.book.all():
            if pos.state is not PositionState.OPEN or pos.entry_price is None:
                continue
            price = self.provider.price(pos.symbol)
            reason = None
            if price is None:
                price = self._last_price.get(pos.symbol, pos.entry_price)
                reason = "the candidate is gone from the provider"
            elif pos.take_profit is not None and price >= pos.take_profit:
                reason = f"take-profit: price {_f(price)} >= {_f(pos.take_profit)}"
            elif pos.stop_loss is not None and price <= pos.stop_loss:
                reason = f"stop-loss: price {_f(price)} <= {_f(pos.stop_loss)}"
            elif pos.opened_at is not None and now - pos.opened_at >= hold:
                reason = f"hold time {self.config.hold_time_s} s reached (price {_f(price)})"
            if reason is None:
                continue
            self.book.closing(pos.ref)
            out.append(exit_signal(NAME, self.wallet, pos, price, now, reason))
        return out

    def _open_count(self) -> int:
        return len(self.book)

    def _entry(self, now: datetime) -> Signal | None:
        cfg = self.config
        if self._open_count() >= cfg.max_open_positions:
            return None
        interval = timedelta(seconds=cfg.entry_interval_s)
        if self._last_entry is not None and now - self._last_entry < interval:
            return None
        choice = self._best(now)
        if choice is None:
            return None
        self._last_entry = now
        self._entered.add(choice.mint)
        ref = self.book.new_ref()
        tp, sl = self._exits_for(choice.price_usd)
        self.book.opened(
            StrategyPosition(
                ref=ref,
                symbol=choice.symbol,
                state=PositionState.PENDING,
                size_usd=cfg.entry_size_usd,
                signalled_at=now,
                take_profit=tp,
                stop_loss=sl,
                key=choice.mint,
            )
        )
        return Signal(
            strategy=NAME,
            wallet=self.wallet,
            symbol=choice.symbol,
            action=SignalAction.ENTER,
            side=Side.BUY,
            size_hint=cfg.entry_size_usd,
            stop_loss=sl,
            take_profit=tp,
            reason=(
                f"candidate {choice.symbol} ({choice.mint}): liquidity {_f(choice.liquidity_usd)} "
                f"USD, volume {_f(choice.volume_usd)} USD, age {choice.age_s(now)} s, price "
                f"{_f(choice.price_usd)}"
            ),
            time=now,
            ref=ref,
        )

    def _best(self, now: datetime) -> Candidate | None:
        held = self.book.symbols()
        ok = [
            c
            for c in self.provider.candidates()
            if c.mint not in self._entered
            and c.symbol not in held
            and passes(c, self.config.filters, now)
        ]
        if not ok:
            return None
        return min(ok, key=lambda c: (-c.volume_usd, c.symbol))

    def _exits_for(self, price: Decimal) -> tuple[Decimal, Decimal]:
        tp = significant(price * (HUNDRED + self.config.tp_pct) / HUNDRED)
        sl = significant(price * (HUNDRED - self.config.sl_pct) / HUNDRED)
        return tp, sl

    # -- dry run ------------------------------------------------------------------------------

    def _pretend(self, s: Signal, now: datetime) -> None:
        self.would_send.append(s)
        log.info("dry run (onchain_dry_run): would send %s", s.describe())
        price = self.provider.price(s.symbol) or self._last_price.get(s.symbol)
        if price is None or price <= 0:
            if s.is_entry:
                self.on_entry_failed(s.ref, "dry run: no price")
            return
        if s.is_entry:
            qty = floor_to_step(s.size_hint / price, DRY_RUN_QTY_STEP)
            self.on_entry_filled(s.ref, price, qty, now)
        else:
            self.on_position_closed(s.ref, price, now)

    # -- outcomes -----------------------------------------------------------------------------

    def on_entry_filled(self, ref: str, price: Decimal, qty: Decimal, now: datetime) -> None:
        tp, sl = self._exits_for(price)
        pos = self.book.filled(ref, price, qty, aware_utc(now), take_profit=tp, stop_loss=sl)
        if pos is not None:
            self._last_price[pos.symbol] = price

    def adopt(
        self, ref: str, symbol: str, entry_price: Decimal, qty: Decimal, opened_at: datetime
    ) -> None:
        """Watch a position from an earlier run again: TP/SL from its entry, hold time from its
        opening; a symbol the provider no longer knows exits at once (at the entry price)."""
        tp, sl = self._exits_for(entry_price)
        position = StrategyPosition.adopted(
            ref, symbol, entry_price, qty, opened_at, take_profit=tp, stop_loss=sl
        )
        self.book.adopt(position)
        self._last_price[symbol] = entry_price

    def on_entry_failed(self, ref: str, reason: str) -> None:
        pos = self.book.failed(ref, reason)
        if pos is not None:
            self._last_price.pop(pos.symbol, None)

    def on_exit_failed(self, ref: str, reason: str) -> None:
        self.book.exit_failed(ref, reason)

    def on_position_dust(self, ref: str) -> None:
        pos = self.book.dropped(ref)
        if pos is not None:
            self._last_price.pop(pos.symbol, None)

    def on_position_closed(self, ref: str, exit_price: Decimal, now: datetime) -> None:
        pos = self.book.closed(ref, exit_price)
        if pos is not None:
            self._last_price.pop(pos.symbol, None)
            log.info(
                "%s: %s %s closed at %s (entry %s)",
                NAME,
                ref,
                pos.symbol,
                _f(exit_price),
                _f(pos.entry_price) if pos.entry_price is not None else "-",
            )

    # -- for the venue and the UI -------------------------------------------------------------

    def prices(self) -> dict[str, Decimal]:
        out = {}
        for m in self.markets():
            out[m.symbol] = m.price
        return out

    def markets(self) -> list[DexMarket]:
        """Held symbols and the best candidates passing the filters; none in a dry run (it never
        trades, so the DEX venue needs no market for it)."""
        if self.dry_run:
            return []
        out: dict[str, DexMarket] = {}
        for symbol in sorted(self.book.symbols()):
            price = self.provider.price(symbol) or self._last_price.get(symbol)
            if price is not None:
                out[symbol] = DexMarket(symbol, price)
        now = self._now
        if now is not None:
            ok = [
                c
                for c in self.provider.candidates()
                if c.symbol not in out and passes(c, self.config.filters, now)
            ]
            ok.sort(key=lambda c: (-c.volume_usd, c.symbol))
            for c in ok[:MAX_CANDIDATE_MARKETS]:
                out[c.symbol] = DexMarket(c.symbol, c.price_usd)
        return [out[s] for s in sorted(out)]

    def drain_problems(self) -> list[str]:
        return self.provider.problems.drain()

    def positions(self) -> list[StrategyPosition]:
        return self.book.all()


def _f(value: Decimal) -> str:
    return format(value.normalize(), "f")
