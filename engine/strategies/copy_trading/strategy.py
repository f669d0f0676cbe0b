"""Copy trading: mirror a leader's trades, scaled to the copy wallet, within limits.

Each poll of the feed, in order: the feed's price updates are applied, then each leader trade:

- a BUY is copied for ``min(size_usd x scale, max_trade_usd)`` when: its symbol is in
  ``allowed_symbols``; it is at most ``max_trade_age_s`` old by the engine's clock (nor that
  far ahead of it); we do not already mirror that leader's position in it; fewer than
  ``max_open_positions`` are pending or open; the size is at least ``min_trade_usd``; and the
  current price is not more than ``max_slippage_pct`` above the leader's fill (only an adverse
  move counts: a price below the leader's is better for a buy). Otherwise it is skipped, with the
  reason logged and kept in ``skipped``.
- a SELL closes the position mirroring that leader's position in the symbol (an exit is never
  skipped for slippage or age). A sell while our entry is still pending closes it as soon as it fills.

The current price is the last price update for the symbol, or the leader's own price when the
feed has given none yet (nothing to compare against: the trade is copied).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.config import CopyTradingConfig
from engine.exchange.base import Side
from engine.exchange.prices import aware_utc
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
)
from engine.strategies.copy_trading.feed import LeaderFeed, LeaderTrade, PriceUpdate
from engine.untrusted import parse_decimal

log = logging.getLogger(__name__)

NAME = "copy_trading"
SEEN_IDS_KEPT = 10_000
SKIPS_KEPT = 100
ANY_LEADER = "*"  # the key of an adopted position: closed by any leader's sell of its symbol


@dataclass(frozen=True)
class Skip:
    time: datetime
    trade_id: str
    symbol: str
    reason: str


class CopyTrading(Strategy):
    def __init__(self, config: CopyTradingConfig, feed: LeaderFeed) -> None:
        self.name = NAME
        self.wallet = config.wallet
        self.config = config
        self.feed = feed
        self.book = PositionBook(NAME)
        self._allowed = frozenset(config.allowed_symbols)
        self._prices: dict[str, Decimal] = {}  # allowed or held symbols only
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._exit_after_fill: dict[str, str] = {}  # ref -> the leader's sell that closes it
        # ref -> why it is being closed: saved with the leader's sell marked seen, so a restart
        # before the exit went out sends it (the position is adopted open again)
        self._closing: dict[str, str] = {}
        self._leaders: dict[str, str] = {}  # ref -> its key, from a saved state (for adopt)
        self.skipped: deque[Skip] = deque(maxlen=SKIPS_KEPT)
        self.last_signal: Signal | None = None

    def state(self) -> dict[str, Any]:
        return {
            "feed": self.feed.state(),
            "prices": {s: str(p) for s, p in sorted(self._prices.items())},
            "seen": list(self._seen_order),
            "exit_after_fill": dict(self._exit_after_fill),
            "closing": dict(self._closing),
            "leaders": {p.ref: p.key for p in self.book.all()},  # whose position each mirrors
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.feed.restore(state["feed"])
        self._prices = {
            str(s): parse_decimal(p, s, positive=True) for s, p in state["prices"].items()
        }
        self._seen_order = deque(str(t) for t in state["seen"])
        self._seen = set(self._seen_order)
        self._exit_after_fill = {str(r): str(t) for r, t in dict(state["exit_after_fill"]).items()}
        self._closing = {str(r): str(t) for r, t in dict(state.get("closing", {})).items()}
        self._leaders = {str(r): str(k) for r, k in dict(state.get("leaders", {})).items()}

    # -- the tick -----------------------------------------------------------------------------

    def tick(self, now: datetime) -> list[Signal]:
        now = aware_utc(now)
        events = self.feed.poll(now)
        observed: set[str] = set()
        trades: list[LeaderTrade] = []
        for e in events:
            if isinstance(e, PriceUpdate):
                if self._tracked(e.symbol):
                    self._prices[e.symbol] = e.price
                observed.add(e.symbol)
            else:
                trades.append(e)
        signals = self._pending_exits(now)
        for t in trades:
            if t.id in self._seen:
                log.debug("%s: leader trade %s seen before: ignored", NAME, t.id)
                continue
            self._remember(t.id)
            signal = self._buy(t, now) if t.side is Side.BUY else None
            if t.side is Side.SELL:
                signals += self._sell(t, now)
            if signal is not None:
                signals.append(signal)
        for t in trades:  # a trade is a price observation where the feed gave no price
            if t.symbol not in observed and self._tracked(t.symbol):
                self._prices[t.symbol] = t.price
        if signals:
            self.last_signal = signals[-1]
        return signals

    def drain_problems(self) -> list[str]:
        return self.feed.problems.drain()

    def _tracked(self, symbol: str) -> bool:
        return symbol in self._allowed or symbol in self.book.symbols()

    def _remember(self, trade_id: str) -> None:
        self._seen.add(trade_id)
        self._seen_order.append(trade_id)
        while len(self._seen_order) > SEEN_IDS_KEPT:
            self._seen.discard(self._seen_order.popleft())

    def _skip(self, t: LeaderTrade, now: datetime, reason: str) -> None:
        self.skipped.append(Skip(now, t.id, t.symbol, reason))
        log.info("%s: leader %s %s %s skipped: %s", NAME, t.leader, t.id, t.symbol, reason)

    @staticmethod
    def _key(t: LeaderTrade) -> str:
        return f"{t.leader}|{t.symbol}"

    def _buy(self, t: LeaderTrade, now: datetime) -> Signal | None:
        cfg = self.config
        if t.symbol not in self._allowed:
            self._skip(t, now, f"{t.symbol} is not in allowed_symbols")
            return None
        age = (now - aware_utc(t.time)).total_seconds()
        if abs(age) > cfg.max_trade_age_s:  # a backlog, a stalled feed, or a skewed clock
            when = f"{age:.0f} s old" if age > 0 else f"dated {-age:.0f} s ahead of the clock"
            self._skip(
                t, now, f"the leader's trade is {when} (max_trade_age_s {cfg.max_trade_age_s})"
            )
            return None
        key = self._key(t)
        if any(p.key == key for p in self.book.all()):
            self._skip(t, now, f"already mirroring {t.leader}'s position in {t.symbol}")
            return None
        if len(self.book) >= cfg.max_open_positions:
            self._skip(t, now, f"max_open_positions ({cfg.max_open_positions}) reached")
            return None
        size = min(t.size_usd * cfg.scale, cfg.max_trade_usd)
        if size < cfg.min_trade_usd:
            self._skip(
                t, now, f"scaled size {_f(size)} USD is below min_trade_usd {_f(cfg.min_trade_usd)}"
            )
            return None
        current = self._prices.get(t.symbol, t.price)
        adverse = (current - t.price) / t.price * HUNDRED
        if adverse > cfg.max_slippage_pct:
            self._skip(
                t,
                now,
                f"price {_f(current)} is {adverse:.2f}% above the leader's {_f(t.price)} "
                f"(max_slippage_pct {_f(cfg.max_slippage_pct)})",
            )
            return None
        self._prices.setdefault(t.symbol, current)
        ref = self.book.new_ref()
        self.book.opened(
            StrategyPosition(
                ref=ref,
                symbol=t.symbol,
                state=PositionState.PENDING,
                size_usd=size,
                signalled_at=now,
                key=key,
            )
        )
        return Signal(
            strategy=NAME,
            wallet=self.wallet,
            symbol=t.symbol,
            action=SignalAction.ENTER,
            side=Side.BUY,
            size_hint=size,
            reason=(
                f"copy {t.leader} {t.id}: buy {t.symbol} {_f(t.size_usd)} USD at {_f(t.price)} "
                f"(x{_f(cfg.scale)}, cap {_f(cfg.max_trade_usd)} USD)"
            ),
            time=now,
            ref=ref,
        )

    def _sell(self, t: LeaderTrade, now: datetime) -> list[Signal]:
        keys = {self._key(t), f"{ANY_LEADER}|{t.symbol}"}
        out = []
        for pos in self.book.all():
            if pos.key not in keys:
                continue
            if pos.state is PositionState.PENDING:
                self._exit_after_fill[pos.ref] = t.id
            elif pos.state is PositionState.OPEN:
                out.append(self._exit(pos, now, f"leader {t.leader} sold {t.symbol} ({t.id})"))
        return out

    def _pending_exits(self, now: datetime) -> list[Signal]:
        out = []
        for ref, trade_id in list(self._exit_after_fill.items()):
            pos = self.book.get(ref)
            if pos is None:
                del self._exit_after_fill[ref]
            elif pos.state is PositionState.OPEN:
                del self._exit_after_fill[ref]
                out.append(
                    self._exit(pos, now, f"the leader sold before our entry filled ({trade_id})")
                )
        for ref, reason in list(self._closing.items()):
            pos = self.book.get(ref)
            if pos is None:
                del self._closing[ref]
            elif pos.state is PositionState.OPEN:  # adopted after a restart: not sent yet
                out.append(self._exit(pos, now, reason))
        return out

    def _exit(self, pos: StrategyPosition, now: datetime, reason: str) -> Signal:
        self.book.closing(pos.ref)
        self._closing[pos.ref] = reason
        price = self._prices.get(pos.symbol) or pos.entry_price or Decimal(0)
        return exit_signal(NAME, self.wallet, pos, price, now, reason)

    # -- outcomes -----------------------------------------------------------------------------

    def on_entry_filled(self, ref: str, price: Decimal, qty: Decimal, now: datetime) -> None:
        self.book.filled(ref, price, qty, aware_utc(now))

    def adopt(
        self, ref: str, symbol: str, entry_price: Decimal, qty: Decimal, opened_at: datetime
    ) -> None:
        """Watch a position from an earlier run again: the leader it mirrors when the saved state
        says; otherwise the next sell of ``symbol`` by any leader closes it."""
        key = self._leaders.get(ref, f"{ANY_LEADER}|{symbol}")
        self.book.adopt(StrategyPosition.adopted(ref, symbol, entry_price, qty, opened_at, key=key))
        self._prices.setdefault(symbol, entry_price)

    def on_entry_failed(self, ref: str, reason: str) -> None:
        self.book.failed(ref, reason)
        self._exit_after_fill.pop(ref, None)

    def on_exit_failed(self, ref: str, reason: str) -> None:
        self.book.exit_failed(ref, reason)
        self._closing.pop(ref, None)

    def on_position_closed(self, ref: str, exit_price: Decimal, now: datetime) -> None:
        self._forget(ref, self.book.closed(ref, exit_price))

    def on_position_dust(self, ref: str) -> None:
        self._forget(ref, self.book.dropped(ref))

    def _forget(self, ref: str, pos: StrategyPosition | None) -> None:
        self._exit_after_fill.pop(ref, None)
        self._closing.pop(ref, None)
        if pos is not None and not self._tracked(pos.symbol):
            self._prices.pop(pos.symbol, None)

    # -- for the venue and the UI -------------------------------------------------------------

    def prices(self) -> dict[str, Decimal]:
        return dict(sorted(self._prices.items()))

    def markets(self) -> list[DexMarket]:
        return [DexMarket(s, p) for s, p in sorted(self._prices.items())]

    def positions(self) -> list[StrategyPosition]:
        return self.book.all()


def _f(value: Decimal) -> str:
    return format(value.normalize(), "f")
