"""Local protective exits: watched by Kobe where the venue has neither native OCO nor attached TP/SL.

Each item is a position Kobe opened with a take-profit and/or a stop-loss. While the engine runs,
every price update is checked: when the take-profit or the stop-loss is touched, the router sends
the exit at market and the other leg is dropped (its sibling is "cancelled"). Items also wait for a
limit entry to fill before their exits are placed. The list is persisted atomically in
``<data_dir>/watchdog.json`` so a restart resumes it.

One file serves every mode of a data dir (paper, then testnet, then live): each item carries the
mode it was armed in, and a session sees and acts on its own mode's items only; the others are
kept as they are. An item without a mode (written before items carried one) belongs to the mode
whose order journal has its entry (:meth:`Watchdog.adopt`); until one does, no mode acts on it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from engine.exchange.base import Side
from engine.fsutil import REPAIR_OR_RESTORE, atomic_write_text, read_json_object, reading
from engine.jsonutil import dumps
from engine.untrusted import parse_decimal, parse_utc, shown

log = logging.getLogger(__name__)

WATCHDOG_FILE = "watchdog.json"
MAX_ATTEMPTS = 10**9  # refused exits in a row, as read back from the file


class WatchState(StrEnum):
    PENDING_ENTRY = "pending_entry"  # the entry has not filled yet; exits wait for it
    WATCHING = "watching"  # Kobe watches the price and sends the exit itself
    EXCHANGE_EXITS = "exchange_exits"  # a native OCO / attached exits rest on the exchange


class ExitPlan(StrEnum):
    OCO = "native_oco"
    ATTACHED = "attached"
    WATCHDOG = "watchdog"
    NONE = "none"


@dataclass(frozen=True)
class WatchItem:
    entry_client_id: str
    entry_id: str
    symbol: str
    side: Side  # the entry's side: buy opens a long, whose exits sell
    qty: Decimal  # quantity the exits close (the filled entry quantity, net of base fees)
    take_profit: Decimal | None
    stop_loss: Decimal | None
    wallet: str
    source: str
    exits: ExitPlan
    state: WatchState
    attempts: int = 0  # exits refused in a row (this episode)
    retry_at: datetime | None = None  # no new attempt before this time (backoff)
    last_error: str = ""
    replaces: bool = False  # the position's old exits are still to be cancelled (kobe exits)
    oco_attempts: int = 0  # native OCO sends refused so far (tried again with backoff)
    oco_retry_at: datetime | None = None  # no new OCO send before this time
    mode: str = ""  # the mode it was armed in ("": written before items carried one)

    def touched(self, price: Decimal) -> str | None:
        """``take_profit`` or ``stop_loss`` when ``price`` touches that leg, else None."""
        long = self.side is Side.BUY
        if self.take_profit is not None and (
            price >= self.take_profit if long else price <= self.take_profit
        ):
            return "take_profit"
        if self.stop_loss is not None and (
            price <= self.stop_loss if long else price >= self.stop_loss
        ):
            return "stop_loss"
        return None

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, raw: dict[str, Any]) -> WatchItem:
        def dec(v: Any, name: str) -> Decimal | None:  # a price of 0 is never touched (a stop)
            return None if v is None else parse_decimal(v, name, positive=True)

        def count(name: str) -> int:
            value = raw.get(name) or 0
            if type(value) is not int or not 0 <= value <= MAX_ATTEMPTS:
                raise ValueError(f"{name}: not a count from 0 to {MAX_ATTEMPTS}: {shown(value)}")
            return value

        def when(name: str) -> datetime | None:
            value = raw.get(name)
            return parse_utc(value, name) if value else None

        return cls(
            entry_client_id=str(raw["entry_client_id"]),
            entry_id=str(raw["entry_id"]),
            symbol=str(raw["symbol"]),
            side=Side(raw["side"]),
            qty=parse_decimal(raw["qty"], "qty", minimum=Decimal(0)),
            take_profit=dec(raw.get("take_profit"), "take_profit"),
            stop_loss=dec(raw.get("stop_loss"), "stop_loss"),
            wallet=str(raw["wallet"]),
            source=str(raw["source"]),
            exits=ExitPlan(raw["exits"]),
            state=WatchState(raw["state"]),
            attempts=count("attempts"),
            retry_at=when("retry_at"),
            last_error=str(raw.get("last_error") or ""),
            replaces=raw.get("replaces") is True,
            oco_attempts=count("oco_attempts"),
            oco_retry_at=when("oco_retry_at"),
            mode=str(raw.get("mode") or ""),
        )


class Watchdog:
    """The items of ``mode`` in ``<data_dir>/watchdog.json``; the other modes' are kept apart,
    never shown nor acted on, and written back as they are."""

    def __init__(self, data_dir: Path, mode: str) -> None:
        self.path = Path(data_dir) / WATCHDOG_FILE
        self.mode = mode
        self._lock = threading.Lock()
        self._items: dict[str, WatchItem] = {}
        self._others: list[WatchItem] = []  # other modes' items, and those of no mode yet
        raw = read_json_object(self.path, REPAIR_OR_RESTORE)
        with reading(self.path, REPAIR_OR_RESTORE):
            # a file without its items is damaged: read as none watched, a position would lose
            # its guard without the alert a deleted file gives
            for record in [] if raw is None else raw["items"]:
                item = WatchItem.from_record(record)
                if item.mode == mode:
                    self._items[item.entry_client_id] = item
                else:
                    self._others.append(item)

    def adopt(self, entries: Collection[str]) -> None:
        """Items without a mode whose entry is among ``entries`` (client ids this mode's order
        journal holds) become this mode's, written so. Client ids are unique in a data dir, so
        the journal tells which mode armed such an item; the others stay as they are, logged."""
        with self._lock:
            mine = [i for i in self._others if not i.mode and i.entry_client_id in entries]
            if mine:
                self._others = [i for i in self._others if i not in mine]
                self._items.update({i.entry_client_id: replace(i, mode=self.mode) for i in mine})
                self._save()
            left = [i.entry_client_id for i in self._others if not i.mode]
        if left:
            log.warning(
                "%s: %d item(s) of no mode whose entry %s's order journal does not hold, kept "
                "and not acted on: %s",
                self.path, len(left), self.mode, ", ".join(shown(cid) for cid in left),
            )  # fmt: skip

    def unmarked(self) -> list[str]:
        """Entry ids of the items no mode has adopted yet (none acts on them)."""
        with self._lock:
            return [i.entry_client_id for i in self._others if not i.mode]

    def _save(self) -> None:
        items = [i.to_record() for i in [*self._others, *self._items.values()]]
        atomic_write_text(self.path, dumps({"items": items}, indent=1) + "\n")

    def add(self, item: WatchItem) -> None:
        with self._lock:
            self._items[item.entry_client_id] = replace(item, mode=self.mode)
            self._save()

    def update(self, entry_client_id: str, **changes: Any) -> WatchItem:
        with self._lock:
            item = replace(self._items[entry_client_id], **changes)
            self._items[entry_client_id] = item
            self._save()
            return item

    def remove(self, entry_client_id: str) -> None:
        with self._lock:
            if self._items.pop(entry_client_id, None) is not None:
                self._save()

    def items(self) -> list[WatchItem]:
        with self._lock:
            return list(self._items.values())

    def get(self, entry_client_id: str) -> WatchItem | None:
        with self._lock:
            return self._items.get(entry_client_id)
