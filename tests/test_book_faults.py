"""Faults the review found in the position book and the exits, kept as regression tests:
a kill -9 between the cache and the trade record, a re-sent exit id, a close while the entry
still works, exits whose outcome was lost, a gap below the minimum value, a cancel whose
sibling look-up fails."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from decimal import Decimal as D
from pathlib import Path

import pytest

from engine.book import PositionBook
from engine.bookkeeper import Bookkeeper
from engine.exchange.base import ExchangeUnavailable, OrderOutcomeUnknown, OrderType, Side
from engine.journal import OrderEvent, OrderJournal
from engine.proposal import Refused, Source
from engine.trades import TradeStore
from tests.test_execution import Rig, entry

T = datetime(2026, 1, 1, tzinfo=UTC)


def ev(kind, cid, *, side="buy", qty="1", filled="0", avg=None, status="open", type_="market"):
    return OrderEvent(
        ts=T,
        mode="paper",
        exchange="binance",
        event=kind,
        client_id=cid,
        exchange_id="1",
        symbol="BTC/USDT",
        side=side,
        type=type_,
        qty=D(qty),
        price=None,
        filled=D(filled),
        avg_price=None if avg is None else D(avg),
        fee=D(0),
        fee_asset="USDT",
        status=status,
        wallet="cex_binance",
        source="cli",
        reason="",
    )


class Crash(BaseException):
    pass


class CrashingTrades(TradeStore):
    def append(self, trade):  # the process dies here (kill -9) after the book saved its cache
        raise Crash()


def test_a_kill_between_the_cache_and_the_trade_record_never_loses_the_trade(
    tmp_path: Path,
) -> None:
    j = OrderJournal(tmp_path)
    for e in (
        ev("intent", "kobe1A1", status="new"),
        ev("fill", "kobe1A1", filled="1", avg="100", status="filled"),
        ev("intent", "kobe1A1cx", side="sell", status="new"),
    ):
        j.append(e)
    k = Bookkeeper(PositionBook(tmp_path, "paper"), trades=TradeStore(tmp_path))
    k.catch_up()
    assert [p.entry_client_id for p in k.book.positions()] == ["kobe1A1"]
    j.append(ev("fill", "kobe1A1cx", side="sell", filled="1", avg="110", status="filled"))
    k2 = Bookkeeper(PositionBook(tmp_path, "paper"), trades=CrashingTrades(tmp_path))
    with pytest.raises(Crash):
        k2.catch_up()
    # restart
    k3 = Bookkeeper(PositionBook(tmp_path, "paper"), trades=TradeStore(tmp_path))
    booked = k3.catch_up()
    on_disk = (
        (tmp_path / "trades.jsonl").read_text() if (tmp_path / "trades.jsonl").exists() else ""
    )
    assert booked or on_disk, "the closed trade is in neither trades.jsonl nor booked at restart"


def test_a_re_sent_exit_id_counts_both_orders_fills(tmp_path: Path) -> None:
    b = PositionBook(tmp_path, "paper")
    for e in (
        ev("intent", "kobe1B1", qty="10", status="new"),
        ev("fill", "kobe1B1", qty="10", filled="10", avg="100", status="filled"),
        ev("intent", "kobe1B1cx", side="sell", qty="10", status="new"),
        # a market exit that only partly filled (thin book, EXPIRED / IOC remainder)
        ev("cancel", "kobe1B1cx", side="sell", qty="10", filled="4", avg="99", status="expired"),
        # the operator presses x again: close_position sends <entry>cx again for the 6 left
        ev("intent", "kobe1B1cx", side="sell", qty="6", status="new"),
        ev("fill", "kobe1B1cx", side="sell", qty="6", filled="6", avg="98", status="filled"),
    ):
        b.apply(e)
    p = b.get("kobe1B1")
    assert p is None, f"position still open with qty {p.qty} though all was sold"


def test_a_close_while_the_entry_still_works_is_booked_when_the_entry_ends(tmp_path: Path) -> None:
    b = PositionBook(tmp_path, "paper")
    closed = []
    for e in (
        ev("intent", "kobe1C1", qty="10", status="new", type_="limit"),
        ev("ack", "kobe1C1", qty="10", status="open", type_="limit"),
        ev(
            "partial_fill",
            "kobe1C1",
            qty="10",
            filled="4",
            avg="100",
            status="partially_filled",
            type_="limit",
        ),
        ev("intent", "kobe1C1cx", side="sell", qty="4", status="new"),
        ev("fill", "kobe1C1cx", side="sell", qty="4", filled="4", avg="110", status="filled"),
        ev("cancel", "kobe1C1", qty="10", filled="4", avg="100", status="canceled", type_="limit"),
    ):
        t = b.apply(e)
        if t:
            closed.append(t)
    assert closed, "a round trip (+40 USDT) is never booked; the position lingers with qty 0"


def test_an_oco_whose_outcome_was_lost_is_looked_up_never_doubled_by_the_watchdog(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    # the operator also holds 1 SOL of their own on this account (not Kobe's)
    rig.exchange.create_order(
        "SOL/USDT", Side.BUY, OrderType.MARKET, Decimal(1), None, {"client_id": "mine1"}
    )
    own = rig.exchange.get_balance("SOL")
    real = rig.exchange.create_oco

    def placed_but_answer_lost(*a, **kw):
        real(*a, **kw)  # Binance placed it; the answer (and the look-up) were lost
        raise OrderOutcomeUnknown("x", "timeout; look-up failed")

    rig.exchange.create_oco = placed_but_answer_lost  # type: ignore[method-assign]
    rig.engine.submit(entry())  # market buy 15 USDT, SL 95, TP 110
    rig.exchange.create_oco = real  # type: ignore[method-assign]
    # a real exchange: no fill events pushed; the engine polls (sync + watchdog)
    rig.now += timedelta(seconds=60)
    rig.prices.set("SOL/USDT", Decimal("94"))
    rig.exchange.advance(rig.now)  # the OCO's stop triggers and fills on the exchange
    rig.engine.poll()  # the watchdog sees 94 <= 95 and sells at market too
    left = rig.exchange.get_balance("SOL")
    assert left >= own - Decimal("0.001"), (
        "the exit was sold twice: the operator's own SOL was sold"
    )


def test_a_watchdog_exit_whose_outcome_was_lost_is_not_sent_again(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.exchange.create_order(
        "SOL/USDT", Side.BUY, OrderType.MARKET, Decimal(1), None, {"client_id": "mine1"}
    )
    own = Decimal(1)
    rig.router.exits_policy = "watchdog"
    rig.engine.submit(entry())
    real = rig.exchange.create_order
    calls = []

    def lost_answer(*a, **kw):
        order = real(*a, **kw)
        calls.append(order.client_id)
        if len(calls) == 1:  # the sell went through; its answer and the look-up were lost
            raise OrderOutcomeUnknown(order.client_id, "timeout; look-up failed")
        return order

    rig.exchange.create_order = lost_answer  # type: ignore[method-assign]
    rig.move("SOL/USDT", "94")
    rig.move("SOL/USDT", "94")
    assert rig.exchange.get_balance("SOL") >= own - Decimal("0.001"), "the stop sold twice"


def test_a_gap_below_the_minimum_value_keeps_the_position_and_sells_later(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.router.exits_policy = "watchdog"
    rig.engine.submit(entry(amount=Decimal(6), stop_loss=Decimal(95), take_profit=Decimal(110)))
    assert len(rig.engine.positions()) == 1
    rig.move("SOL/USDT", "80")  # a 20% candle gaps through the stop: 0.059 SOL = 4.72 < 5 USDT
    for p in ("60", "40", "20"):
        rig.move("SOL/USDT", p)
    assert rig.engine.positions(), "a position worth 4.72 USDT (sellable above 84.8) is abandoned"


def test_a_cancel_whose_sibling_lookup_fails_is_still_audited(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    placed = rig.engine.submit(entry())
    tp = next(o for o in placed.exits if o.client_id.endswith("tp"))
    real = rig.exchange.fetch_order_by_client_id

    def flaky(cid, symbol):
        raise ExchangeUnavailable("503 on the look-up")

    rig.exchange.fetch_order_by_client_id = flaky  # type: ignore[method-assign]
    rig.router.cancel(tp.id, Source.CLI)  # the sibling look-up failing does not undo it
    rig.exchange.fetch_order_by_client_id = real  # type: ignore[method-assign]
    audit = tmp_path / "logs" / "audit.jsonl"
    if not audit.exists():
        audit = next(tmp_path.rglob("audit.jsonl"))
    lines = [x for x in audit.read_text().splitlines() if '"cancel"' in x]
    assert lines, "the cancel was sent (the OCO is gone) but audit.jsonl has no record of it"


def test_the_cache_is_written_in_batches_and_a_stale_one_replays_exactly(tmp_path: Path) -> None:
    j = OrderJournal(tmp_path)
    keeper = Bookkeeper(PositionBook(tmp_path, "paper"), trades=TradeStore(tmp_path))
    j.append(ev("intent", "kobe1D1", status="new"))
    keeper.catch_up()
    cache = tmp_path / "positions.json"
    assert not cache.exists()  # nothing closed, a few bytes of journal: no write yet
    j.append(ev("fill", "kobe1D1", filled="1", avg="100", status="filled"))
    keeper.catch_up()
    fresh = PositionBook(tmp_path, "paper", read_only=True)
    fresh.catch_up()  # no cache: the journal alone gives the same book
    assert fresh.get("kobe1D1") == keeper.book.get("kobe1D1")
    keeper.close()  # closing writes it
    assert json.loads(cache.read_text())["offset"] == keeper.book.state.offset


def test_a_sell_entry_never_takes_what_kobes_own_positions_hold(tmp_path: Path) -> None:
    # spot: a sell entry sells base the account holds; the SOL of a position Kobe holds (here
    # guarded by the local watchdog, so not locked on the exchange) is not the operator's to
    # sell: selling it would leave the book with a position the account no longer holds
    rig = Rig(tmp_path)
    rig.router.exits_policy = "watchdog"
    rig.engine.submit(entry(Source.CLI))
    [pos] = rig.engine.positions()
    sell = entry(Source.CLI, side=Side.SELL, amount=D(5), stop_loss=None, take_profit=None)
    with pytest.raises(Refused, match="Kobe's open positions"):
        rig.engine.submit(sell)
    assert rig.exchange.get_balance("SOL") == pos.qty  # untouched: the position is all there
    rig.move("SOL/USDT", "94")  # its stop: the watchdog sells the whole position
    [trade] = rig.closed
    assert trade.qty == rig.router.exchange.amount_to_precision("SOL/USDT", pos.qty)


def test_an_exit_that_sells_more_than_the_position_held_books_only_the_position(
    tmp_path: Path,
) -> None:
    # e.g. a stop that filled while the watchdog's market sell went out too: the second sell
    # took other base the account held. The trade is the position's: its quantity and the
    # proceeds of that quantity, at the exit's price, never the whole fill's proceeds.
    b = PositionBook(tmp_path, "paper")
    trades = []
    for e in (
        ev("intent", "kobe1E1", qty="1", status="new"),
        ev("fill", "kobe1E1", qty="1", filled="1", avg="100", status="filled"),
        ev("intent", "kobe1E1cx", side="sell", qty="2", status="new"),
        ev("fill", "kobe1E1cx", side="sell", qty="2", filled="2", avg="110", status="filled"),
    ):
        t = b.apply(e)
        if t:
            trades.append(t)
    [trade] = trades
    assert trade.qty == D(1)
    assert trade.exit_price == D(110)
    assert trade.pnl == D(10)  # (110 - 100) x 1, no fee in these events


def test_a_trade_with_fees_in_base_quote_and_a_third_asset_matches_a_hand_computation(
    tmp_path: Path,
) -> None:
    # buy 1 BTC at 100, fee 0.001 BTC (base): 0.999 held. Sold in two orders: 0.5 at 110
    # (fee 0.055 USDT, quote), then 0.499 at 90 (fee 0.0001 BNB, a third asset, at 600 USDT)
    b = PositionBook(tmp_path, "paper")
    trades = []
    for e in (
        ev("intent", "kobe1F1", status="new"),
        replace(
            ev("fill", "kobe1F1", filled="1", avg="100", status="filled"),
            fee=D("0.001"),
            fee_asset="BTC",
        ),
        ev("intent", "kobe1F1tp", side="sell", qty="0.999", status="new"),
        replace(
            ev("cancel", "kobe1F1tp", side="sell", qty="0.999", filled="0.5", avg="110"),
            fee=D("0.055"),
            status="canceled",
        ),
        ev("intent", "kobe1F1cx", side="sell", qty="0.499", status="new"),
        replace(
            ev("fill", "kobe1F1cx", side="sell", qty="0.499", filled="0.499", avg="90"),
            fee=D("0.0001"),
            fee_asset="BNB",
            fee_rate=D(600),
            status="filled",
        ),
    ):
        t = b.apply(e)
        if t:
            trades.append(t)
    [trade] = trades
    spent = D(1) * D(100)  # the quote the entry cost
    received = D("0.5") * D(110) + D("0.499") * D(90)
    fees_out = D("0.055") + D("0.0001") * D(600)
    assert trade.pnl == received - fees_out - spent == D("-0.205")
    assert trade.fees == D("0.001") * D(100) + fees_out  # both legs, in USDT
    assert trade.qty == D("0.999")


def test_an_entry_filled_in_parts_at_two_prices_books_its_base_fee_as_charged(
    tmp_path: Path,
) -> None:
    # 0.5 BTC at 100 (fee 0.0005 BTC), then 0.5 more at 102 (fee 0.0005 BTC): 101 USDT spent,
    # 0.999 BTC held; all sold at 110 with no fee. Hand: 0.999 x 110 - 101 = 8.89
    b = PositionBook(tmp_path, "paper")
    trades = []
    btc = {"fee_asset": "BTC"}
    for e in (
        ev("intent", "kobe1G1", qty="1", status="new", type_="limit"),
        replace(
            ev("partial_fill", "kobe1G1", filled="0.5", avg="100", status="partially_filled"),
            fee=D("0.0005"),
            **btc,
        ),
        replace(
            ev("fill", "kobe1G1", filled="1", avg="101", status="filled"), fee=D("0.001"), **btc
        ),
        ev("intent", "kobe1G1cx", side="sell", qty="0.999", status="new"),
        ev("fill", "kobe1G1cx", side="sell", qty="0.999", filled="0.999", avg="110"),
    ):
        t = b.apply(replace(e, status="filled") if e.client_id.endswith("cx") else e)
        if t:
            trades.append(t)
    [trade] = trades
    assert trade.pnl == D("0.999") * D(110) - D(101) == D("8.89")
    assert trade.fees == D("0.0005") * D(100) + D("0.0005") * D(102)


def _close_while_the_entry_works(tmp_path: Path, more: list[OrderEvent]) -> PositionBook:
    """A limit buy partly filled (4 BTC, its fee 0.004 BTC taken in BTC); its close sold the
    3.99 a step of 0.01 allows and filled while the entry was still working; then ``more``."""
    b = PositionBook(tmp_path, "paper")
    fee = {"fee": D("0.004"), "fee_asset": "BTC"}
    for e in (
        ev("intent", "kobe1H1", qty="10", status="new", type_="limit"),
        replace(
            ev("partial_fill", "kobe1H1", qty="10", filled="4", avg="100", status="open"), **fee
        ),
        ev("intent", "kobe1H1cx", side="sell", qty="3.99", status="new"),
        ev("fill", "kobe1H1cx", side="sell", qty="3.99", filled="3.99", avg="110", status="filled"),
        *more,
    ):
        b.apply(e)
    return b


def test_a_close_while_the_entry_works_leaves_its_dust_when_the_entry_ends(
    tmp_path: Path,
) -> None:
    """The entry's cancel came after its close had filled: the position (0.006 BTC left, below
    one step) stayed open with no exit and its trade was never booked."""
    fee = {"fee": D("0.004"), "fee_asset": "BTC"}
    cancel = ev("cancel", "kobe1H1", qty="10", filled="4", avg="100", status="canceled")
    b = _close_while_the_entry_works(tmp_path, [])
    trade = b.apply(replace(cancel, **fee))
    assert trade is not None and trade.qty == D("3.99")
    assert b.positions() == [] and [p.qty for p in b.dust()] == [D("0.006")]


def test_an_entry_that_filled_more_after_its_close_stays_open(tmp_path: Path) -> None:
    """What the entry bought after its close was sized is held, not dust."""
    fee = {"fee": D("0.006"), "fee_asset": "BTC"}
    b = _close_while_the_entry_works(
        tmp_path,
        [
            replace(
                ev("partial_fill", "kobe1H1", qty="10", filled="6", avg="100", status="open"),
                **fee,
            ),
            replace(ev("cancel", "kobe1H1", qty="10", filled="6", status="canceled"), **fee),
        ],
    )
    [held] = b.positions()
    assert held.qty == D("2.004") and b.dust() == []


def test_a_trade_whose_exit_still_sells_its_dust_stays_in_equity_until_booked(
    tmp_path: Path,
) -> None:
    """Unrealized PnL counts what a trade's exits sold before it closes (c7b3731). An exit
    sized with the wallet's dust sold the position's own and still works for the dust: the
    position holds nothing, is not closed yet, and its whole PnL (100 USDT) left equity until
    the exit ended, then came back with the close: a drop and a jump the risk engine saw."""
    rig = Rig(tmp_path)
    book = rig.engine.book
    for e in (  # an earlier trade leaves 0.5 BTC of dust at 100
        ev("intent", "kobe1D1", qty="10", status="new"),
        ev("fill", "kobe1D1", qty="10", filled="10", avg="100", status="filled"),
        ev("intent", "kobe1D1cx", side="sell", qty="9.5", status="new"),
        ev("fill", "kobe1D1cx", side="sell", qty="9.5", filled="9.5", avg="100", status="filled"),
        ev("intent", "kobe1E1", qty="10", status="new"),
        ev("fill", "kobe1E1", qty="10", filled="10", avg="100", status="filled"),
        ev("intent", "kobe1E1tp", side="sell", qty="10.5", status="new", type_="limit"),
    ):
        book.apply(e)
    marks = {"BTC/USDT": D(110)}
    before, _ = rig.engine.unrealized(marks)
    assert before == 100 + 5  # the position's own, and the dust's 0.5 at its mark (+10)
    partly = ev("partial_fill", "kobe1E1tp", side="sell", qty="10.5", filled="10", avg="110")
    book.apply(replace(partly, status="partially_filled", type="limit"))
    during, _ = rig.engine.unrealized(marks)
    assert during == before  # the trade's own is sold; its PnL is not booked yet
    done = ev("fill", "kobe1E1tp", side="sell", qty="10.5", filled="10.5", avg="110")
    trade = book.apply(replace(done, status="filled", type="limit"))
    # the dust's 0.5 sold at +10 was in equity at its mark already: no jump at the close
    assert trade is not None and trade.pnl == during
    assert rig.engine.unrealized(marks) == (0, {})
