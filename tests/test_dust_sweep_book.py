"""The dust sweep in the position book: a sale of a wallet's dust under its own client id
(``<id>ds``) takes the dust at its cost and is booked as a trade of its own, once; while it works
no exit Kobe sizes counts that dust (tests/test_dust_sweep_v5.py drives it through the real ccxt)."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from engine.book import POSITIONS_FILE, PositionBook
from engine.bookkeeper import Bookkeeper
from engine.journal import OrderJournal
from engine.trades import TradeStore
from tests.test_book_faults import ev

WHERE = ("binance", "cex_binance", "BTC/USDT")


def dusty(tmp_path: Path) -> tuple[OrderJournal, Bookkeeper]:
    """A trade whose take-profit sold 1 of the 1.5 its entry bought at 100: 0.5 is dust."""
    journal = OrderJournal(tmp_path)
    for e in (
        ev("intent", "kobe1A1", qty="1.5", status="new"),
        ev("fill", "kobe1A1", qty="1.5", filled="1.5", avg="100", status="filled"),
        ev("ack", "kobe1A1tp", side="sell", status="open", type_="limit"),
        ev("fill", "kobe1A1tp", side="sell", filled="1", avg="110", status="filled"),
    ):
        journal.append(e)
    keeper = Bookkeeper(PositionBook(tmp_path, "paper"), trades=TradeStore(tmp_path))
    [trade] = keeper.catch_up()
    assert trade.qty == D(1) and trade.pnl == D(10)
    [line] = keeper.book.dust()
    assert line.qty == D("0.5") and line.cost == D(50)
    return journal, keeper


def test_a_sweep_is_booked_once_as_a_trade_of_its_own_at_the_dusts_cost(tmp_path: Path) -> None:
    journal, keeper = dusty(tmp_path)
    book = keeper.book
    assert book.foldable_dust(*WHERE, "") == D("0.5")
    journal.append(ev("intent", "kobe2A1ds", side="sell", qty="0.4", status="new"))
    assert keeper.catch_up() == []
    # working: the next exit Kobe sizes does not count that dust (two sales of it, never)
    assert book.sweeping(*WHERE) == "kobe2A1ds" and book.foldable_dust(*WHERE, "") == 0
    assert book.positions() == [] and book.pending() == []  # it holds nothing of its own
    fill = ev("fill", "kobe2A1ds", side="sell", qty="0.4", filled="0.4", avg="120")
    journal.append(fill)
    journal.append(fill)  # found again by a look-up: moves nothing twice
    [sweep] = keeper.catch_up()
    assert (sweep.trade_id, sweep.strategy, sweep.reason) == ("kobe2A1ds",) + ("dust sweep",) * 2
    assert sweep.qty == D("0.4") and sweep.entry_price == D(100) and sweep.exit_price == D(120)
    assert sweep.pnl == D(8)  # 0.4 x 120 less the 40 that 0.4 of the dust cost
    [line] = book.dust()
    assert line.qty == D("0.1") and line.cost == D(10)  # the rest stays dust, at its cost
    assert book.committed("cex_binance") == D(10) == book.dust_committed("cex_binance")
    assert book.sweeping(*WHERE) is None and book.foldable_dust(*WHERE, "") == D("0.1")
    # a sweep refused with nothing sold changes nothing
    journal.append(ev("intent", "kobe3A1ds", side="sell", qty="0.1", status="new"))
    journal.append(ev("reject", "kobe3A1ds", side="sell", qty="0.1", status="rejected"))
    assert keeper.catch_up() == []
    assert [p.qty for p in book.dust()] == [D("0.1")] and book.sweeping(*WHERE) is None
    # the book rebuilt from the journal alone: the same dust, and nothing booked again
    (tmp_path / POSITIONS_FILE).unlink()
    again = Bookkeeper(PositionBook(tmp_path, "paper"), trades=TradeStore(tmp_path))
    assert again.catch_up() == []
    assert [(p.qty, p.cost) for p in again.book.dust()] == [(D("0.1"), D(10))]
    assert len((tmp_path / "trades.jsonl").read_text().splitlines()) == 2
