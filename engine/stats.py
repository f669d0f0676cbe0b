"""Trade statistics over the whole ``trades.jsonl``: per strategy, per wallet and per day, the
number of trades, the win rate, PnL after fees, fees, the best and the worst trade.

The aggregate is kept in ``stats_cache.json`` (atomic) with the byte offset of the journal it
covers and the bytes just before that offset: the next reader streams only the lines appended
since. A cache that does not match the journal (rewritten, truncated, damaged) is rebuilt from
the start: it is a cache, never a source of truth. Memory stays bounded by the number of
strategies, wallets and days, whatever the journal's length.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.fsutil import atomic_write_text
from engine.journal import open_journal
from engine.trades import TRADES_FILE, ClosedTrade
from engine.untrusted import clean_text, parse_decimal

log = logging.getLogger(__name__)

CACHE_FILE = "stats_cache.json"
CACHE_VERSION = 1
FINGERPRINT = 64  # bytes before the offset that must still be there


@dataclass
class Bucket:
    trades: int = 0
    wins: int = 0
    pnl: Decimal = Decimal(0)  # after fees
    fees: Decimal = Decimal(0)
    best: Decimal | None = None
    worst: Decimal | None = None

    def add(self, pnl: Decimal, fees: Decimal) -> None:
        self.trades += 1
        self.wins += pnl > 0
        self.pnl += pnl
        self.fees += fees
        self.best = pnl if self.best is None else max(self.best, pnl)
        self.worst = pnl if self.worst is None else min(self.worst, pnl)

    @property
    def win_rate_pct(self) -> Decimal:
        if not self.trades:
            return Decimal(0)
        return (Decimal(self.wins) * 100 / self.trades).quantize(Decimal("0.1"))

    def to_json(self) -> dict[str, Any]:
        return {
            "trades": self.trades,
            "wins": self.wins,
            "win_rate_pct": str(self.win_rate_pct),
            "pnl": str(self.pnl),
            "fees": str(self.fees),
            "best": None if self.best is None else str(self.best),
            "worst": None if self.worst is None else str(self.worst),
        }

    @classmethod
    def from_json(cls, r: dict[str, Any]) -> Bucket:
        def dec(v: Any, name: str) -> Decimal | None:
            return None if v is None else parse_decimal(v, name)

        return cls(
            int(r["trades"]),
            int(r["wins"]),
            parse_decimal(r["pnl"], "pnl"),
            parse_decimal(r["fees"], "fees"),
            dec(r.get("best"), "best"),
            dec(r.get("worst"), "worst"),
        )


@dataclass
class TradeStats:
    total: Bucket = field(default_factory=Bucket)
    by_strategy: dict[str, Bucket] = field(default_factory=dict)
    by_wallet: dict[str, Bucket] = field(default_factory=dict)
    by_day: dict[str, Bucket] = field(default_factory=dict)  # UTC date of the close
    offset: int = 0  # bytes of trades.jsonl covered

    def add(self, t: ClosedTrade) -> None:
        self.add_values(t.strategy, t.wallet, t.closed_at.date().isoformat(), t.pnl, t.fees)

    def add_record(self, r: dict[str, Any]) -> None:
        """A line of the journal, reading only the fields the figures need (fast on a long
        journal); the day is the UTC date the close time starts with."""
        day = str(r["closed_at"])[:10]
        date.fromisoformat(day)  # a bad time is a bad line
        pnl, fees = parse_decimal(r["pnl"], "pnl"), parse_decimal(r["fees"], "fees")  # bounded
        self.add_values(str(r["strategy"]), str(r["wallet"]), day, pnl, fees)

    def add_values(self, strategy: str, wallet: str, day: str, pnl: Decimal, fees: Decimal) -> None:
        self.total.add(pnl, fees)
        for group, key in (
            (self.by_strategy, strategy),
            (self.by_wallet, wallet),
            (self.by_day, day),
        ):
            bucket = group.get(key)
            if bucket is None:  # a name first seen: cleaned, as `kobe stats` and the cockpit
                # show it (an escape in a damaged line retitled the terminal, a CR forged a row)
                bucket = group.setdefault(clean_text(key), Bucket())
            bucket.add(pnl, fees)

    def to_json(self) -> dict[str, Any]:
        def groups(d: dict[str, Bucket]) -> dict[str, Any]:
            return {k: d[k].to_json() for k in sorted(d)}

        return {
            "total": self.total.to_json(),
            "by_strategy": groups(self.by_strategy),
            "by_wallet": groups(self.by_wallet),
            "by_day": groups(self.by_day),
        }

    @classmethod
    def from_json(cls, r: dict[str, Any], offset: int) -> TradeStats:
        def groups(d: dict[str, Any]) -> dict[str, Bucket]:
            return {clean_text(k): Bucket.from_json(v) for k, v in d.items()}

        return cls(
            Bucket.from_json(r["total"]),
            groups(r["by_strategy"]),
            groups(r["by_wallet"]),
            groups(r["by_day"]),
            offset,
        )


def _cached(cache: Path, journal: Path) -> tuple[TradeStats, bytes] | None:
    try:
        raw = json.loads(cache.read_text(encoding="utf-8"))
        if raw.get("version") != CACHE_VERSION:
            return None
        offset = int(raw["offset"])
        stats = TradeStats.from_json(raw["stats"], offset)
        mark = bytes.fromhex(str(raw["fingerprint"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ArithmeticError):
        return None
    return stats, mark


def _fingerprint(fh: Any, offset: int) -> bytes:
    start = max(0, offset - FINGERPRINT)
    fh.seek(start)
    data: bytes = fh.read(offset - start)
    return data


def load_stats(data_dir: Path, *, save: bool = True) -> TradeStats:
    """The statistics of the whole journal: the cache plus the lines appended since."""
    journal = Path(data_dir) / TRADES_FILE
    cache = Path(data_dir) / CACHE_FILE
    if not journal.exists():
        return TradeStats()
    with open_journal(journal) as fh:  # one that cannot be opened is named, never a traceback
        size = fh.seek(0, 2)
        found = _cached(cache, journal)
        stats = TradeStats()
        if found is not None:
            cached, mark = found
            if cached.offset <= size and _fingerprint(fh, cached.offset) == mark:
                stats = cached
        if stats.offset == size:
            return stats
        fh.seek(stats.offset)
        offset = stats.offset
        for line in fh:
            if not line.endswith(b"\n"):
                break  # torn (or still being written): counted once it is complete
            offset += len(line)
            try:
                stats.add_record(json.loads(line))
            except (ValueError, KeyError, TypeError, ArithmeticError, RecursionError):
                if line.strip():
                    log.warning("%s: skipped a bad line at byte %d", journal, offset - len(line))
        stats.offset = offset
        mark = _fingerprint(fh, offset)
    if save:
        try:
            record = {
                "version": CACHE_VERSION,
                "offset": offset,
                "fingerprint": mark.hex(),
                "stats": stats.to_json(),
            }
            atomic_write_text(cache, json.dumps(record))
        except OSError as exc:  # a cache: the figures stand without it
            log.warning("stats cache not written: %s", exc)
    return stats
