"""``trades.jsonl``: one line per closed trade; readers that stream over it.

A trade is an entry and the exit that closed it: open and close times, wallet, strategy, symbol,
side, quantity, entry and exit prices, fees (both legs), realized PnL (after fees) and reason.
PnL per wallet, per strategy and per day is computed by streaming over the lines (constant
memory); start-up never re-reads it: today's PnL lives in the wallets snapshot.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.journal import JsonlWriter, _parse, iter_jsonl, open_journal, reverse_lines, tail_jsonl
from engine.untrusted import parse_decimal, parse_utc

TRADES_FILE = "trades.jsonl"


@dataclass(frozen=True)
class ClosedTrade:
    trade_id: str  # the entry's client id: unique, and the key of idempotence downstream
    opened_at: datetime
    closed_at: datetime
    wallet: str
    strategy: str  # the strategy's name, or "manual"
    symbol: str
    side: str  # the entry's side: buy = a long that was sold
    qty: Decimal
    entry_price: Decimal
    exit_price: Decimal
    fees: Decimal  # quote currency, both legs
    pnl: Decimal  # realized, after fees, in quote currency
    reason: str

    @property
    def notional(self) -> Decimal:
        return self.qty * self.entry_price

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> ClosedTrade:
        def when(v: Any) -> datetime:
            return parse_utc(v, "time")

        return cls(
            trade_id=str(r["trade_id"]),
            opened_at=when(r["opened_at"]),
            closed_at=when(r["closed_at"]),
            wallet=str(r["wallet"]),
            strategy=str(r["strategy"]),
            symbol=str(r["symbol"]),
            side=str(r["side"]),
            # bounded and finite (a damaged line with NaN stopped the cockpit): BadNumber, a
            # ValueError, and the readers skip the line
            qty=parse_decimal(r["qty"], "qty"),
            entry_price=parse_decimal(r["entry_price"], "entry_price"),
            exit_price=parse_decimal(r["exit_price"], "exit_price"),
            fees=parse_decimal(r["fees"], "fees"),
            pnl=parse_decimal(r["pnl"], "pnl"),
            reason=str(r.get("reason") or ""),
        )


class TradeStore:
    """``trades.jsonl``'s writer; each line says the mode of the engine that booked it (live's
    money is never mixed with play money: :mod:`engine.wallets.modes`)."""

    def __init__(self, data_dir: Path, mode: str = "paper") -> None:
        self.path = Path(data_dir) / TRADES_FILE
        self.mode = mode
        self._writer = JsonlWriter(self.path)

    def append(self, trade: ClosedTrade) -> None:
        self._writer.append({**trade.to_record(), "mode": self.mode})

    def tail(self, n: int) -> list[ClosedTrade]:
        return [ClosedTrade.from_record(r) for r in tail_jsonl(self.path, n)]

    def close(self) -> None:
        self._writer.close()


def iter_trades(path: Path) -> Iterator[ClosedTrade]:
    for record in iter_jsonl(path):
        yield ClosedTrade.from_record(record)


@dataclass
class PnlSummary:
    by_wallet: dict[str, Decimal]
    by_strategy: dict[str, Decimal]
    by_day: dict[str, Decimal]  # UTC date of the close
    trades: int
    total: Decimal


def pnl_summary(path: Path) -> PnlSummary:
    """Realized PnL per wallet, per strategy and per day, streaming over ``trades.jsonl``."""
    wallet: dict[str, Decimal] = defaultdict(Decimal)
    strategy: dict[str, Decimal] = defaultdict(Decimal)
    day: dict[str, Decimal] = defaultdict(Decimal)
    count, total = 0, Decimal(0)
    for t in iter_trades(path):
        wallet[t.wallet] += t.pnl
        strategy[t.strategy] += t.pnl
        day[t.closed_at.date().isoformat()] += t.pnl
        count += 1
        total += t.pnl
    return PnlSummary(dict(wallet), dict(strategy), dict(day), count, total)


def trades_backwards(
    path: Path, keep: Callable[[bytes], bool] | None = None
) -> Iterator[ClosedTrade | None]:
    """Each line of ``trades.jsonl`` from its end: its trade, or None (not a readable trade, or
    a line ``keep`` turned down before it was parsed)."""
    if not path.exists():
        return
    with open_journal(path) as fh:
        for raw in reverse_lines(fh):
            record = _parse(raw, path, None) if keep is None or keep(raw) else None
            try:
                yield None if record is None else ClosedTrade.from_record(record)
            except (KeyError, ValueError, ArithmeticError):
                yield None


def trade_matches(trade: ClosedTrade, needle: str) -> bool:
    """The journal filter: ``needle`` (lower case) in the symbol, wallet, strategy or reason."""
    return needle in f"{trade.symbol} {trade.wallet} {trade.strategy} {trade.reason}".lower()


def search_trades(
    path: Path,
    needle: str,
    *,
    skip: int,
    limit: int,
    stop: Callable[[], bool] = lambda: False,
) -> list[ClosedTrade]:
    """The whole journal, newest first, streamed from its end: the trades matching ``needle``
    after the first ``skip`` matches, at most ``limit`` (bounded memory, whatever the file).
    ``stop`` is asked every 4096 lines (a newer search replaces this one)."""
    needle = needle.strip().lower()
    raw_needle = needle.encode() if needle.isascii() else b""  # a cheap test before parsing
    found: list[ClosedTrade] = []
    keep = (lambda raw: raw_needle in raw.lower()) if raw_needle else None
    for n, trade in enumerate(trades_backwards(path, keep)):
        if n % 4096 == 4095 and stop():
            break
        if trade is None or not trade_matches(trade, needle):
            continue
        if skip:
            skip -= 1
            continue
        found.append(trade)
        if len(found) >= limit:
            break
    return found
