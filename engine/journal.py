"""Append-only journals: JSONL (and CSV for the order journal), flushed line by line.

Writers append one complete line per record and flush it (optionally fsync) before returning, so a
record that a caller has been told is written survives a crash of the process. A crash mid-write
leaves at most one torn line: on reopening, the writer first ends it with a newline so the next
record starts clean, and readers skip any line that does not parse, with a log line saying so.

Readers stream (one line at a time) or read the last N records by seeking from the end of the
file, never loading a whole journal.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import IO, Any, BinaryIO

from engine.fsutil import (
    REPAIR_OR_RESTORE,
    append_all,
    damaged,
    keep_aside,
    make_dirs,
    writing,
)
from engine.jsonutil import dumps, iso_utc
from engine.untrusted import csv_cell, operator_text, parse_decimal, parse_utc

log = logging.getLogger(__name__)

ZERO = Decimal(0)
ORDER_EVENTS = ("intent", "ack", "reject", "cancel", "partial_fill", "fill", "unknown")


class JsonlWriter:
    """Appends one JSON object per line; each append is flushed (and fsynced when asked)."""

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._lock = threading.Lock()
        with writing(self.path):
            make_dirs(self.path.parent)
            self._fh: BinaryIO = open(self.path, "ab", buffering=0)  # noqa: SIM115 - held open
            _end_torn_line(self.path, self._fh)

    def append(self, record: Mapping[str, Any], *, fsync: bool | None = None) -> None:
        line = (dumps(dict(record)) + "\n").encode("utf-8")
        with self._lock, writing(self.path):
            append_all(self._fh, line)
            if self.fsync if fsync is None else fsync:
                os.fsync(self._fh.fileno())

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()


def _end_torn_line(path: Path, fh: BinaryIO) -> None:
    """If the file ends mid-line (a crash mid-write), end that line so new records start clean."""
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb") as reader:
        reader.seek(size - 1)
        last = reader.read(1)
    if last != b"\n":
        log.warning("%s: torn last line (crash mid-write); it is kept and skipped by readers", path)
        fh.write(b"\n")
        fh.flush()


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Every record, streaming; lines that do not parse (a torn line) are skipped and logged."""
    if not Path(path).exists():
        return
    with open_journal(path) as fh:
        for number, raw in enumerate(fh, start=1):
            record = _parse(raw, path, number)
            if record is not None:
                yield record


def open_journal(path: Path) -> BinaryIO:
    """``path`` opened for reading; one that exists but cannot be read (a directory, no
    permission) is a :class:`~engine.fsutil.StateError` naming it, never an internal error."""
    try:
        return open(path, "rb")
    except OSError as exc:
        raise damaged(Path(path), exc, REPAIR_OR_RESTORE) from None


def _parse(raw: bytes, path: Path, number: int | None) -> dict[str, Any] | None:
    text = raw.strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):  # a few KB of [[[[ nest too deep
        where = f"line {number}" if number is not None else "a line"
        log.warning("%s: %s is not a complete record (torn write?): skipped", path, where)
        return None
    if not isinstance(value, dict):
        log.warning("%s: a line is not a JSON object: skipped", path)
        return None
    return value


def tail_jsonl(path: Path, n: int, *, block: int = 64 * 1024) -> list[dict[str, Any]]:
    """The last ``n`` parseable records, oldest first, read by seeking back from the end."""
    path = Path(path)
    if n <= 0 or not path.exists():
        return []
    records: list[dict[str, Any]] = []
    with open_journal(path) as fh:
        for raw in reverse_lines(fh, block=block):
            record = _parse(raw, path, None)
            if record is not None:
                records.append(record)
                if len(records) == n:
                    break
    records.reverse()
    return records


def reverse_lines(fh: IO[bytes], *, block: int = 64 * 1024) -> Iterator[bytes]:
    """Complete lines from the end of a file backwards, reading ``block`` bytes at a time.

    A last line without its newline is torn (or still being written): it is not a record yet.
    """
    end = fh.seek(0, os.SEEK_END)
    if end == 0:
        return
    pos = end
    pending = b""
    first = True
    while pos > 0:
        step = min(block, pos)
        pos -= step
        fh.seek(pos)
        pending = fh.read(step) + pending
        parts = pending.split(b"\n")
        pending = parts[0]  # may be the tail of an earlier line: keep it for the next block
        complete = parts[1:]
        if first and complete:
            complete.pop()  # "" after the final newline, or the torn fragment
            first = False
        for raw in reversed(complete):
            if raw.strip():
                yield raw
    if pending.strip() and not first:
        yield pending


# ---------------------------------------------------------------------------------------------
# The order journal


@dataclass(frozen=True)
class OrderEvent:
    """One order event. The same fields, in this order, in orders.jsonl and orders.csv."""

    ts: datetime
    mode: str
    exchange: str
    event: str  # one of ORDER_EVENTS
    client_id: str
    exchange_id: str | None
    symbol: str
    side: str
    type: str
    qty: Decimal
    price: Decimal | None
    filled: Decimal
    avg_price: Decimal | None
    fee: Decimal
    fee_asset: str
    status: str
    wallet: str
    source: str
    reason: str
    strategy: str = ""  # an entry's strategy (intents), so the position book can rebuild links
    ref: str = ""  # the strategy's reference for the position
    # a fee charged in a third asset (BNB): its price in the quote asset, read once at the fill
    # and journaled with it, so that a replay books the same fees without the network
    fee_rate: Decimal | None = None

    def __post_init__(self) -> None:
        if self.event not in ORDER_EVENTS:
            raise ValueError(f"unknown order event {self.event!r}")
        if self.ts.tzinfo is None:
            raise ValueError("order event time must be timezone-aware UTC")
        if self.reason:  # free text (an operator's --reason, an exchange's words): kept as data
            object.__setattr__(self, "reason", operator_text(self.reason))

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> OrderEvent:
        def dec(value: Any, name: str) -> Decimal | None:
            return None if value in (None, "") else parse_decimal(value, name, minimum=ZERO)

        def fee(value: Any) -> Decimal:  # signed: the adapters journal a rebate as it comes
            return ZERO if value in (None, "") else parse_decimal(value, "fee")

        return cls(
            ts=parse_utc(record["ts"], "ts"),
            mode=str(record["mode"]),
            exchange=str(record["exchange"]),
            event=str(record["event"]),
            client_id=str(record["client_id"]),
            exchange_id=record.get("exchange_id") or None,
            symbol=str(record["symbol"]),
            side=str(record["side"]),
            type=str(record["type"]),
            qty=dec(record["qty"], "qty") or ZERO,
            price=dec(record.get("price"), "price"),
            filled=dec(record.get("filled"), "filled") or ZERO,
            avg_price=dec(record.get("avg_price"), "avg_price"),
            fee=fee(record.get("fee")),
            fee_asset=str(record.get("fee_asset") or ""),
            status=str(record.get("status") or ""),
            wallet=str(record.get("wallet") or ""),
            source=str(record.get("source") or ""),
            reason=str(record.get("reason") or ""),
            strategy=str(record.get("strategy") or ""),
            ref=str(record.get("ref") or ""),
            fee_rate=dec(record.get("fee_rate"), "fee_rate"),
        )


ORDER_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(OrderEvent))


DEX_MODE = "paper"  # the DEX venue is the same paper account in every mode: journaled so


def in_mode(event: OrderEvent, mode: str) -> bool:
    """Whether ``event`` is an order of a session in ``mode``. One data dir may serve paper,
    then testnet, then live: each mode's venue is another account (the paper account, the
    exchange's testnet, the real exchange), so an order journaled in one mode is never looked
    up, shown, watched or booked in another. The DEX venue is the same paper account in every
    mode (journaled as :data:`DEX_MODE`), so its orders count in all. A line without a mode is no order
    event (every version of Kobe wrote one): every reader skips it, logged, in any mode."""
    return event.mode == mode or event.exchange == "dex"


def read_event(record: object, path: Path) -> OrderEvent | None:
    """The order event of one parsed line, or None (logged) when it is not one: a line of the
    wrong shape, or a number that is not finite, bounded and non-negative, is skipped."""
    try:
        if not isinstance(record, dict):
            raise ValueError("not an object")
        return OrderEvent.from_record(record)
    except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
        log.warning("%s: a record cannot be read (%s): skipped", path, exc)
        return None


def _csv_cell(value: Any) -> str:
    """A CSV cell; text a spreadsheet would run as a formula is neutralised (``'=...``)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return iso_utc(value)
    return csv_cell(str(value))


def _csv_row(record: Mapping[str, Any]) -> list[str]:
    return [_csv_cell(record.get(name)) for name in ORDER_FIELDS]


class OrderJournal:
    """``logs/orders.jsonl`` and ``logs/orders.csv`` under the data dir, written together.

    ``fsync_intents`` (default on) makes every ``intent`` durable before the order is sent.
    """

    def __init__(self, data_dir: Path, *, fsync_intents: bool = True) -> None:
        logs = Path(data_dir) / "logs"
        self.jsonl_path = logs / "orders.jsonl"
        self.csv_path = logs / "orders.csv"
        self.fsync_intents = fsync_intents
        self._jsonl = JsonlWriter(self.jsonl_path)
        with writing(self.csv_path):
            make_dirs(logs)
            _retire_old_csv(self.csv_path)
            self._csv: BinaryIO = open(self.csv_path, "ab", buffering=0)  # noqa: SIM115 - held open
            _end_torn_line(self.csv_path, self._csv)
        if self.csv_path.stat().st_size == 0:
            self._write_csv_row(list(ORDER_FIELDS), fsync=False)
        self._lock = threading.Lock()
        self._catch_up_csv()

    def _catch_up_csv(self) -> None:
        """Each event goes to ``orders.jsonl`` first, then to ``orders.csv``: a crash between
        the two appends leaves the last event without its CSV row. It is written now, so the
        two journals hold the same events (only that one row can be missing: nothing is
        written after it until this start)."""
        # from the lines as written (a number read back may print otherwise: 0.0 and 0)
        want = [_csv_row(r) for r in tail_jsonl(self.jsonl_path, 2)]
        if not want:
            return
        with open(self.csv_path, "rb") as fh:
            lines = [raw.decode("utf-8", "replace") for raw in islice(reverse_lines(fh), 2)]
        try:
            have = [row for row in csv.reader(reversed(lines)) if row != list(ORDER_FIELDS)]
        except csv.Error as exc:  # a line no writer of ours made (over the field limit)
            log.warning("%s: the last rows cannot be read (%s): not caught up", self.csv_path, exc)
            return
        if have[-1:] == want[-1:] or have[-1:] != want[-2:-1]:
            return  # in step, or a CSV that does not follow this journal (started anew)
        log.warning("%s: the last order event had no row (crash mid-write): written", self.csv_path)
        self._write_csv_row(want[-1], fsync=True)

    def _write_csv_row(self, row: list[str], *, fsync: bool) -> None:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerow(row)
        with writing(self.csv_path):
            append_all(self._csv, text.getvalue().encode("utf-8"))
            if fsync:
                os.fsync(self._csv.fileno())

    def append(self, event: OrderEvent) -> None:
        durable = self.fsync_intents and event.event in ("intent", "unknown")
        record = event.to_record()
        with self._lock:
            self._jsonl.append(record, fsync=durable)
            self._write_csv_row(_csv_row(record), fsync=durable)

    def tail(self, n: int) -> list[OrderEvent]:
        records = (read_event(r, self.jsonl_path) for r in tail_jsonl(self.jsonl_path, n))
        return [e for e in records if e is not None]

    def events(self) -> Iterator[OrderEvent]:
        for record in iter_jsonl(self.jsonl_path):
            event = read_event(record, self.jsonl_path)
            if event is not None:
                yield event

    def close(self) -> None:
        self._jsonl.close()
        if not self._csv.closed:
            self._csv.close()


def _retire_old_csv(path: Path) -> None:
    """A CSV written with other columns (an older version) is kept under a new name, and a new
    file starts with today's header: one file never mixes two layouts."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        try:
            header = next(csv.reader(fh), None)
        except csv.Error:  # not a header of ours (a line over the field limit)
            header = None
    if header == list(ORDER_FIELDS):
        return
    old = keep_aside(path)
    log.warning("%s: written with other columns; kept as %s, a new file starts", path, old.name)


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """The CSV journal's rows (for tests and spreadsheets); rows of the wrong width are skipped."""
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return []
        return [dict(zip(header, row, strict=True)) for row in reader if len(row) == len(header)]
