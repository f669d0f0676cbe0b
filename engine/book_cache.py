"""The position book's state and its cache, ``positions.json``.

The cache holds the book (positions, what it counted of each order, the last event of each order
of a position it holds, the caller's notes) and the byte offset of ``logs/orders.jsonl`` it
reached, with a digest of the journal's bytes before that offset (``mark``): a journal cut, or
replaced, then written again does not match. It is only a
cache: :class:`engine.book.PositionBook` rebuilds the book from the journal when it cannot be
used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.journal import OrderEvent, in_mode, open_journal
from engine.position import ZERO, Position
from engine.router.orders import entry_of
from engine.untrusted import parse_decimal

POSITIONS_FILE = "positions.json"


CACHE_VERSION = 5  # 5: the last event of each order of a position held (4 had none: rebuilt)
MARK_BYTES = 4096  # of the journal before the cache's offset (several records: their times and ids)


SAVE_EVERY_BYTES = 64 * 1024  # journal read between two cache writes when nothing closes


@dataclass
class OrderSeen:
    """What the book has counted of one order: cumulative filled, fee and proceeds."""

    filled: Decimal = ZERO
    fee: Decimal = ZERO
    value: Decimal = ZERO


@dataclass
class BookState:
    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[str, OrderSeen] = field(default_factory=dict)
    offset: int = 0  # bytes of orders.jsonl applied
    # the last event of each order of a position the book holds (its entry, its exits): the
    # routers read only the journal's tail, and follow the older ones from here
    working: dict[str, OrderEvent] = field(default_factory=dict)

    def follow(self, e: OrderEvent, mode: str) -> None:
        """After ``e`` is applied: kept as its order's last event while the position it belongs
        to is held; every order of a position no longer held is forgotten."""
        if not in_mode(e, mode):
            return
        root = entry_of(e.client_id) or e.client_id
        if root in self.positions:
            self.working[e.client_id] = e
        else:
            for cid in [c for c in self.working if (entry_of(c) or c) == root]:
                del self.working[cid]


def journal_mark(journal_path: Path, offset: int) -> str:
    """A digest of the journal's last bytes before ``offset``: the cache reached this journal
    (a journal cut, or replaced, then written again does not match)."""
    if offset <= 0 or not journal_path.exists():
        return ""
    with open_journal(journal_path) as fh:
        fh.seek(max(0, offset - MARK_BYTES))
        return hashlib.sha256(fh.read(min(offset, MARK_BYTES))).hexdigest()[:32]


def parse_cache(raw: Any, mode: str) -> tuple[BookState, dict[str, dict[str, Any]]]:
    """The book state and the notes a cache record holds. Raises ValueError (or KeyError,
    TypeError) for a record of another version or mode, or one that cannot be read."""
    if not isinstance(raw, dict) or raw.get("version") != CACHE_VERSION:
        raise ValueError("not a position book of this version")
    if raw.get("mode") != mode:
        raise ValueError(f"written in {raw.get('mode')} mode")
    offset = int(raw["offset"])
    positions = {}
    for record in raw["positions"]:
        pos = Position.from_record(record)
        positions[pos.entry_client_id] = pos
    orders = {
        str(cid): OrderSeen(*(parse_decimal(x, f"orders.{cid}", minimum=ZERO) for x in v))
        for cid, v in dict(raw.get("orders", {})).items()
    }
    notes = {str(k): dict(v) for k, v in dict(raw.get("notes", {})).items()}
    working = {e.client_id: e for e in map(OrderEvent.from_record, raw["working"])}
    return BookState(positions, orders, offset, working), notes


def cache_record(
    state: BookState, mode: str, mark: str, notes: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """What ``positions.json`` holds of ``state``."""
    return {
        "version": CACHE_VERSION,
        "mode": mode,
        "offset": state.offset,
        "mark": mark,
        "positions": [p.to_record() for p in state.positions.values()],
        "orders": {
            cid: [str(o.filled), str(o.fee), str(o.value)] for cid, o in state.orders.items()
        },
        "working": [e.to_record() for e in state.working.values()],
        "notes": notes,
    }
