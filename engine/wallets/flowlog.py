"""``wallet_flows.jsonl``: one line per movement, appended and flushed; read back from the tail.

A line::

    {"seq": 12, "id": "trade:T7#1", "op": "trade:T7", "leg": 1, "legs": 2,
     "time": "2026-01-01T00:05:00Z", "rule": "trade_pnl", "from": "market", "to": "sniper_sol",
     "amount": "1.25", "reason": "trade T7 closed on sniper_sol: pnl +1.25", "mode": "paper"}

``mode`` is the mode of the engine that moved the money (:mod:`engine.wallets.modes`; lines
written before Kobe recorded it have none). ``seq`` numbers lines across the file; ``op`` is the
event the movement belongs to (a closed trade or a tick) and ``leg``/``legs`` its place in it. All the lines of one op are written with a single
``write`` and flushed, so a killed process leaves whole ops; a power cut may still tear the end of
the file. Readers read backwards from the end (never the whole file when a snapshot says where
to stop), skip a torn last line and an op missing some of its legs, and say so in the log; the
writer, on start, cuts such a tail off so that new lines never follow a fragment.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, BinaryIO

from engine.fsutil import append_all, make_dirs, writing
from engine.jsonutil import dumps, iso_utc
from engine.untrusted import parse_decimal, parse_utc
from engine.wallets.flows import Movement, Op

log = logging.getLogger(__name__)

FILENAME = "wallet_flows.jsonl"
BLOCK = 64 * 1024


def encode_op(op: Op, first_seq: int, mode: str = "paper") -> bytes:
    """The lines of ``op``, numbered from ``first_seq``, moved by an engine in ``mode``."""
    legs = len(op.movements)
    out = []
    for i, m in enumerate(op.movements, start=1):
        line: dict[str, Any] = {
            "seq": first_seq + i - 1,
            "id": f"{op.id}#{i}",
            "op": op.id,
            "leg": i,
            "legs": legs,
            "time": iso_utc(op.time),
            "rule": m.rule,
            "from": m.source,
            "to": m.destination,
            "amount": m.amount,
            "reason": m.reason,
            "mode": mode,
        }
        out.append(dumps(line))
    return ("\n".join(out) + "\n").encode("utf-8") if out else b""


@dataclass(frozen=True)
class Line:
    seq: int
    op: str
    leg: int
    legs: int
    time: datetime
    movement: Movement
    offset: int


def parse_line(raw: bytes, offset: int) -> Line:
    """One journal line; ValueError when it is not one."""
    try:
        obj = json.loads(raw)
        if not isinstance(obj, dict):
            raise ValueError("not an object")
        time = parse_utc(obj["time"], "time")
        amount = parse_decimal(obj["amount"], "amount", minimum=Decimal(0))
        movement = Movement(
            str(obj["rule"]), str(obj["from"]), str(obj["to"]), amount, str(obj["reason"])
        )
        return Line(
            int(obj["seq"]),
            str(obj["op"]),
            int(obj["leg"]),
            int(obj["legs"]),
            time.astimezone(UTC),
            movement,
            offset,
        )
    except (KeyError, TypeError, InvalidOperation, ValueError, RecursionError) as e:
        raise ValueError(str(e)) from None


def reverse_lines(fh: IO[bytes]) -> Iterator[tuple[int, bytes, bool]]:
    """(offset, line without its newline, terminated) from the last line to the first."""
    size = fh.seek(0, os.SEEK_END)
    if size == 0:
        return
    fh.seek(size - 1)
    terminated = fh.read(1) == b"\n"
    pos = size - 1 if terminated else size
    carry = b""
    while pos > 0:
        step = min(BLOCK, pos)
        pos -= step
        fh.seek(pos)
        data = fh.read(step) + carry
        hi = len(data)
        cut = data.rfind(b"\n", 0, hi)
        while cut != -1:
            yield pos + cut + 1, data[cut + 1 : hi], terminated
            terminated = True
            hi = cut
            cut = data.rfind(b"\n", 0, hi)
        carry = data[:hi]
    yield 0, carry, terminated


@dataclass
class Tail:
    """What the journal holds after a given seq."""

    ops: list[tuple[Op, int]] = field(default_factory=list)  # (op, seq of its last line)
    last_seq: int = 0  # the last seq kept in the file
    cut_at: int | None = None  # offset from which the file holds only a torn or partial tail
    gap: str = ""  # lines missing between the snapshot and the end (the file was damaged)


def read_tail(path: Path, after_seq: int) -> Tail:
    """The whole ops journaled after ``after_seq``, oldest first; torn and partial ends skipped."""
    tail = Tail()
    if not path.exists():
        return tail
    found: list[Line] = []
    with open(path, "rb") as fh:
        for offset, raw, terminated in reverse_lines(fh):
            if not raw.strip():
                continue
            try:
                if not terminated:
                    raise ValueError("no newline at the end")
                line = parse_line(raw, offset)
            except ValueError as exc:
                if not found and tail.last_seq == 0:
                    log.warning("%s: torn last line skipped (offset %d: %s)", path, offset, exc)
                    tail.cut_at = offset
                else:
                    log.warning("%s: unreadable line skipped (offset %d: %s)", path, offset, exc)
                continue
            if tail.last_seq == 0:
                tail.last_seq = line.seq
            if line.seq <= after_seq:
                break
            found.append(line)
    found.reverse()
    expected = after_seq + 1
    for line in found:
        if line.seq != expected:
            tail.gap = f"line seq {expected} is missing (the next readable one is {line.seq})"
            break
        expected += 1
    groups: list[list[Line]] = []
    for line in found:
        if groups and groups[-1][0].op == line.op and line.leg == groups[-1][-1].leg + 1:
            groups[-1].append(line)
        else:
            groups.append([line])
    for i, group in enumerate(groups):
        first = group[0]
        whole = first.leg == 1 and len(group) == first.legs
        if not whole:
            where = "at the end" if i == len(groups) - 1 else "inside the file"
            log.warning(
                "%s: op %s has %d of its %d lines %s: skipped",
                path,
                first.op,
                len(group),
                first.legs,
                where,
            )
            if i == len(groups) - 1:
                tail.cut_at = first.offset
                tail.last_seq = first.seq - 1
            else:
                tail.gap = tail.gap or f"op {first.op} has {len(group)} of its {first.legs} lines"
            continue
        movements = tuple(line.movement for line in group)
        tail.ops.append((Op(first.op, first.time, movements), group[-1].seq))
    return tail


class FlowLog:
    """The writer: one ``write`` per op, flushed; opened lazily, cut back to whole ops first."""

    def __init__(self, path: Path, mode: str = "paper") -> None:
        self.path = path
        self.mode = mode
        self._fh: BinaryIO | None = None
        self._cut_at: int | None = None  # a torn tail to cut before the first append

    def cut(self, offset: int) -> None:
        """Drop a torn or partial tail (found by :func:`read_tail`) before appending again: at
        the first append, so that an engine refused later in its start writes nothing."""
        self._cut_at = offset

    def _cut(self, offset: int) -> None:
        size = self.path.stat().st_size
        log.warning(
            "%s: cutting %d bytes of torn tail at offset %d", self.path, size - offset, offset
        )
        with writing(self.path), open(self.path, "r+b") as fh:
            fh.truncate(offset)
            fh.flush()
            os.fsync(fh.fileno())

    def append(self, op: Op, first_seq: int) -> None:
        data = encode_op(op, first_seq, self.mode)
        if not data:
            return
        with writing(self.path):
            if self._cut_at is not None:
                self._cut(self._cut_at)
                self._cut_at = None
            if self._fh is None:
                make_dirs(self.path.parent)
                self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - held open
            append_all(self._fh, data)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
