"""Memory does not grow with history: what the order path remembers of closed trades is
bounded, and what safety needs of them still works past that bound (nothing booked twice)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import bookkeeper
from engine.book import POSITIONS_FILE, PositionBook
from engine.bookkeeper import Bookkeeper
from engine.trades import TRADES_FILE, TradeStore
from tests.test_execution import Rig, entry

KEPT = 3


def trade(rig: Rig) -> None:
    """One trade through the whole order path: an entry with its exits, closed at market."""
    placed = rig.engine.submit(entry())
    rig.move("SOL/USDT", "101")
    rig.engine.close_position(placed.entry.client_id, "test")
    rig.move("SOL/USDT", "100")


def test_the_trade_ids_the_bookkeeper_remembers_do_not_grow_with_the_closed_trades(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bookkeeper, "BOOKED_KEPT", KEPT)
    rig = Rig(tmp_path)
    remembered = []
    for _ in range(6 * KEPT):
        trade(rig)
        remembered.append(len(rig.engine.keeper._booked))
    assert len(rig.closed) == 6 * KEPT  # every trade closed and booked
    assert len((tmp_path / TRADES_FILE).read_text().splitlines()) == 6 * KEPT  # all on disk
    assert max(remembered) <= 2 * KEPT, remembered  # the first three rounds' ids were let go


def test_a_book_rebuilt_after_more_trades_than_remembered_books_none_of_them_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bookkeeper, "BOOKED_KEPT", KEPT)
    rig = Rig(tmp_path)
    for _ in range(4 * KEPT):
        trade(rig)
    rig.engine.keeper.close()
    trades = (tmp_path / TRADES_FILE).read_bytes()
    (tmp_path / POSITIONS_FILE).unlink()  # the cache lost: the whole journal is replayed
    keeper = Bookkeeper(PositionBook(tmp_path, "paper"), trades=TradeStore(tmp_path))
    assert keeper.book.rebuilt
    assert keeper.catch_up() == []  # every replayed close was found in trades.jsonl
    assert (tmp_path / TRADES_FILE).read_bytes() == trades
    assert len(keeper._booked) <= 2 * KEPT  # and that whole file is not kept in memory after
