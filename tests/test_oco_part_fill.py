"""An OCO's take-profit that fills in part: Binance (and the paper venue, which copies it) ends
the stop leg at once, and the take-profit rests for the rest with no stop behind it. Kobe
cancels that rest and the local watchdog guards TP and SL for what is not sold: when the price
falls through the stop the rest is sold once, and the trade is booked once with both parts."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.exchange.base import ExchangeError, Order, OrderType, Side
from engine.proposal import Proposal, Sizing, Source
from engine.router.watching import LONE_TP
from engine.runtime import EngineEvent, Runtime, SimClock
from tests import binance_sim, test_mark_to_market
from tests.conftest import ROOT, CliRunner
from tests.test_book_properties import _kobe_sol, _thin_book
from tests.test_execution import Rig, entry

engine = test_mark_to_market.engine
README = (ROOT / "README.md").read_text()


def _journal(data_dir: Path, cid: str) -> list[dict[str, Any]]:
    lines = (data_dir / "logs" / "orders.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["client_id"].startswith(cid)]


def _part_filled(rig: Rig) -> tuple[str, Order, Decimal]:
    """An OCO (SOL at 100: TP 110, SL 95) whose take-profit sells a part on a thin book: the
    exchange ends the stop. Returns the entry's client id, the take-profit and that part."""
    placed = rig.engine.submit(entry())
    tp = placed.exits[0]
    _thin_book(rig, "0.1")  # a resting order fills in parts
    rig.move("SOL/USDT", "110")
    part = rig.exchange.fetch_order(tp.id, "SOL/USDT").filled
    assert 0 < part < tp.qty
    return placed.entry.client_id, tp, part


def _sold_once_at_the_stop(rig: Rig, cid: str, tp: Order, part: Decimal) -> None:
    """The price falls through the stop: the rest is sold once, the trade booked once with
    both parts, and the money is all there."""
    _thin_book(rig, "12000")
    rig.move("SOL/USDT", "94")
    rig.move("SOL/USDT", "93")
    sells = [r for r in _journal(rig.tmp, cid) if r["event"] == "intent" and r["side"] == "sell"]
    assert [(r["type"], Decimal(r["qty"])) for r in sells if r["type"] == "market"] == [
        ("market", tp.qty - part)
    ]  # the rest, sold once
    [trade] = rig.closed
    assert trade.trade_id == cid and trade.qty == tp.qty  # both parts, in one trade
    assert [t.trade_id for t in rig.engine.trades.tail(10)] == [cid]
    assert rig.engine.positions() == [] and rig.router.watchdog.get(cid) is None
    usdt, sol = rig.exchange.balance("USDT"), rig.exchange.balance("SOL")
    assert sol.free + sol.locked == _kobe_sol(rig)  # what is left is the book's dust
    dust = sum((p.cost for p in rig.engine.book.dust()), Decimal(0))
    assert usdt.free + usdt.locked == Decimal(1000) + trade.pnl - dust  # money conserved


def test_on_paper_the_rest_of_a_part_filled_take_profit_is_sold_at_its_stop(
    tmp_path: Path, cli: CliRunner
) -> None:
    rig = Rig(tmp_path)
    cid, tp, part = _part_filled(rig)
    rig.move("SOL/USDT", "100")
    tp_now = rig.exchange.fetch_order(tp.id, "SOL/USDT")
    assert tp_now.status.value == "canceled" and tp_now.filled == part  # its rest cancelled
    [pos] = rig.engine.positions()
    assert rig.engine.protection(pos) == "watchdog"  # not "exchange": nothing there stops it
    item = rig.router.watchdog.get(cid)
    assert item is not None and item.qty == tp.qty - part and not item.replaces
    shown = cli("positions", "--json", env={"KOBE_DATA_DIR": str(tmp_path)})
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)[0]["protection"] == "watchdog (needs a running engine)"
    [alert] = [m for sev, m in rig.alerts if "its stop was ended by the exchange" in m]
    assert f"sold {part} of {tp.qty}" in alert and "the local watchdog guards" in alert
    cancels = [r for r in _journal(tmp_path, f"{cid}tp") if r["event"] == "cancel"]
    assert [r["reason"] for r in cancels] == [LONE_TP]
    assert LONE_TP in " ".join(README.split())
    _sold_once_at_the_stop(rig, cid, tp, part)


def test_while_the_take_profits_cancel_fails_nothing_is_sold_and_it_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = Rig(tmp_path)
    real = rig.exchange.cancel_order

    def down(id: str, symbol: str) -> Order:
        raise ExchangeError("binance: 503 service unavailable")

    monkeypatch.setattr(rig.exchange, "cancel_order", down)
    cid, tp, part = _part_filled(rig)
    rig.move("SOL/USDT", "94")  # through the stop, the take-profit still resting
    rig.move("SOL/USDT", "94")
    assert rig.exchange.fetch_order(tp.id, "SOL/USDT").status.is_open
    assert not [r for r in _journal(tmp_path, cid) if r["side"] == "sell" and r["type"] == "market"]
    [pos] = rig.engine.positions()
    assert rig.engine.protection(pos) == "watchdog"  # guarded, the take-profit no cover
    item = rig.router.watchdog.get(cid)
    assert item is not None and item.replaces  # its cancel still to go
    monkeypatch.setattr(rig.exchange, "cancel_order", real)
    _sold_once_at_the_stop(rig, cid, tp, part)


def test_over_ccxt_the_rest_of_a_part_filled_take_profit_is_sold_at_its_stop(
    engine: tuple[Any, Runtime, SimClock, list[EngineEvent]], cli: CliRunner
) -> None:
    """Binance expires the other leg of an OCO at a leg's first part fill (the simulator too)."""
    sim, runtime, clock, _ = engine
    runtime.tick()
    usdt_before = sim.balances["USDT"]
    placed = runtime.submit(
        Proposal(
            symbol="ETH/USDT", side=Side.BUY, entry_type=OrderType.MARKET, sizing=Sizing.QUOTE,
            amount=Decimal(20), wallet="cex_binance", source=Source.COCKPIT,
            stop_loss=Decimal(3000), take_profit=Decimal(4000),
        )
    )  # fmt: skip
    cid = placed.entry.client_id
    [tp] = [o for o in sim.orders.values() if o.client_id == f"{cid}tp"]
    [sl] = [o for o in sim.orders.values() if o.client_id == f"{cid}sl"]
    part = Decimal("0.002")
    sim.fill_part(tp.order_id, part)
    assert sl.status == "EXPIRED"
    clock.advance(5)
    runtime.tick()  # the part and the stop's end found; the take-profit's rest cancelled
    assert tp.status == "CANCELED" and tp.executed == part
    env = {
        "KOBE_MODE": "testnet", "EXCHANGE": "binance", "KOBE_EXCHANGE_URL": sim.url,
        "BINANCE_KEY": binance_sim.API_KEY, "BINANCE_SECRET": binance_sim.API_SECRET,
        "BINANCE_TESTNET": "1",
    }  # fmt: skip
    shown = cli("positions", "--json", env=env)
    assert shown.code == 0, shown.err
    assert [p["protection"] for p in json.loads(shown.out)] == ["watchdog"]

    sim.set_price("ETHUSDT", Decimal(2900))  # through the stop
    for _ in range(3):
        clock.advance(5)
        runtime.tick()
    markets = [o for o in sim.orders.values() if o.side == "SELL" and o.type == "MARKET"]
    assert [(o.client_id, o.qty, o.status) for o in markets] == [
        (f"{cid}sl", tp.qty - part, "FILLED")
    ]  # the rest, sold once
    [trade] = [t for t in runtime.execution.trades.tail(10) if t.trade_id == cid]
    assert trade.qty == tp.qty and runtime.positions() == []
    dust = sum((p.cost for p in runtime.execution.book.dust()), Decimal(0))
    assert sim.balances["USDT"] == usdt_before + trade.pnl - dust  # money conserved
