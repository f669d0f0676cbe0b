from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from engine.journal import (
    ORDER_FIELDS,
    JsonlWriter,
    OrderEvent,
    OrderJournal,
    iter_jsonl,
    read_csv_rows,
    tail_jsonl,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(n: int, kind: str = "intent") -> OrderEvent:
    return OrderEvent(
        ts=T0,
        mode="paper",
        exchange="binance",
        event=kind,
        client_id=f"kobe-{n}",
        exchange_id=None if kind == "intent" else str(1000 + n),
        symbol="BTC/USDT",
        side="buy",
        type="limit",
        qty=Decimal("0.00100"),
        price=Decimal("95000.00"),
        filled=Decimal(0),
        avg_price=None,
        fee=Decimal(0),
        fee_asset="USDT",
        status="open",
        wallet="cex_binance",
        source="cli",
        reason="test",
    )


def test_same_fields_in_jsonl_and_csv(tmp_path: Path) -> None:
    j = OrderJournal(tmp_path)
    j.append(event(1))
    j.append(event(1, "ack"))
    j.close()
    lines = (tmp_path / "logs" / "orders.jsonl").read_text().splitlines()
    rows = read_csv_rows(tmp_path / "logs" / "orders.csv")
    assert [tuple(json.loads(line)) for line in lines] == [ORDER_FIELDS] * 2
    assert [tuple(r) for r in rows] == [ORDER_FIELDS] * 2
    first = json.loads(lines[0])
    assert first["ts"] == "2026-01-01T00:00:00Z"
    assert first["qty"] == "0.00100"  # decimals as strings, exactly
    assert first["exchange_id"] is None and rows[0]["exchange_id"] == ""
    assert rows[1]["event"] == "ack" and rows[1]["exchange_id"] == "1001"
    assert [e.event for e in OrderJournal(tmp_path).events()] == ["intent", "ack"]


def test_event_round_trips(tmp_path: Path) -> None:
    j = OrderJournal(tmp_path)
    j.append(event(7, "ack"))
    assert j.tail(1) == [event(7, "ack")]


def test_unknown_event_names_and_naive_times_refused() -> None:
    with pytest.raises(ValueError, match="unknown order event"):
        event(1, "exploded")
    with pytest.raises(ValueError, match="timezone-aware"):
        OrderEvent(**{**event(1).to_record(), "ts": datetime(2026, 1, 1)})


def test_torn_last_line_is_skipped_by_readers_and_ended_by_writers(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3, "b": "tor')
    assert [r["a"] for r in iter_jsonl(path)] == [1, 2]
    assert [r["a"] for r in tail_jsonl(path, 5)] == [1, 2]
    assert [r["a"] for r in tail_jsonl(path, 1)] == [2]
    w = JsonlWriter(path)
    w.append({"a": 4})
    w.close()
    assert [r["a"] for r in iter_jsonl(path)] == [1, 2, 4]
    assert [r["a"] for r in tail_jsonl(path, 2)] == [2, 4]


def test_torn_csv_line_does_not_corrupt_the_next_row(tmp_path: Path) -> None:
    j = OrderJournal(tmp_path)
    j.append(event(1))
    j.close()
    csv_path = tmp_path / "logs" / "orders.csv"
    with open(csv_path, "ab") as fh:
        fh.write(b"2026-01-01T00:00:00Z,paper,bin")
    j = OrderJournal(tmp_path)
    j.append(event(2))
    j.close()
    rows = read_csv_rows(csv_path)
    assert [r["client_id"] for r in rows] == ["kobe-1", "kobe-2"]


@pytest.mark.parametrize("block", [7, 64, 4096])
def test_tail_reads_from_the_end_across_block_boundaries(tmp_path: Path, block: int) -> None:
    path = tmp_path / "big.jsonl"
    w = JsonlWriter(path)
    for i in range(500):
        w.append({"i": i, "pad": "x" * (i % 13)})
    w.close()
    assert [r["i"] for r in tail_jsonl(path, 3, block=block)] == [497, 498, 499]
    assert [r["i"] for r in tail_jsonl(path, 600, block=block)] == list(range(500))
    assert tail_jsonl(path, 0) == []
    assert tail_jsonl(tmp_path / "missing.jsonl", 3) == []


def test_tail_does_not_read_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as fh:
        fh.write(b"this is not json and would fail to parse\n" * 200_000)  # ~8 MB of junk
        fh.write(b'{"last": 1}\n{"last": 2}\n')
    # the junk at the start is never reached (it would be logged and skipped if it were)
    assert [r["last"] for r in tail_jsonl(path, 2, block=1024)] == [1, 2]


def test_garbage_in_the_middle_is_skipped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"a": 1}\nnot json\n[1,2]\n{"a": 2}\n')
    assert [r["a"] for r in iter_jsonl(path)] == [1, 2]
    assert "line 2 is not a complete record" in caplog.text


def test_the_readmes_field_table_names_every_field_and_event_of_the_journal() -> None:
    """README, "The order journal": its table of fields is the journal's columns, both ways, and
    its `event` row names every event kind."""
    import re

    from engine.journal import ORDER_EVENTS
    from tests.conftest import ROOT

    section = (ROOT / "README.md").read_text().split("\n### The order journal\n", 1)[1]
    rows = [line for line in section.split("\n###", 1)[0].splitlines() if line.startswith("| `")]
    named = {f for row in rows for f in re.findall(r"`(\w+)`", row.split(" | ")[0])}
    assert named == set(ORDER_FIELDS)
    [events] = [row.split(" | ")[1] for row in rows if row.startswith("| `event` |")]
    assert re.findall(r"`(\w+)`", events) == list(ORDER_EVENTS)
