"""PaperExchange and its price sources: rules, fills, fees, OCO, locks, persistence, determinism.

Every expected number is computed from the config, the market rules and the fills the exchange
reports, never typed in. No network; time comes from an injected clock.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.config import PaperConfig
from engine.exchange.base import (
    InsufficientFunds,
    InvalidOrder,
    NotSupported,
    Order,
    OrderNotFound,
    OrderStatus,
    OrderType,
    Side,
    Ticker,
    stop_limit_price,
)
from engine.exchange.paper import (
    PaperBalance,
    PaperEvent,
    PaperExchange,
    PaperStateError,
    load_paper_markets,
)
from engine.exchange.prices import (
    ExchangeTickerSource,
    ManualPrices,
    PriceUnavailable,
    SimSymbol,
    SimulatedFeed,
)
from engine.money import ceil_to_step, floor_to_step
from tests.conftest import ROOT

D = Decimal
T0 = datetime(2026, 1, 1, tzinfo=UTC)
BTC = "BTC/USDT"
ETH = "ETH/USDT"
SOL = "SOL/USDT"
MARKETS = load_paper_markets()
START = {s: m.start_price for s, m in MARKETS.items()}


class Clock:
    """A settable UTC clock."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def step(self, seconds: int = 60) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def config(**overrides: Any) -> PaperConfig:
    values: dict[str, Any] = {"balances": {"USDT": D(1000)}}
    values.update(overrides)
    return PaperConfig(**values)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def manual(clock: Clock) -> ManualPrices:
    return ManualPrices(dict(START), start=clock())


def paper(
    clock: Clock,
    data_dir: Path | None = None,
    prices: ManualPrices | None = None,
    **overrides: Any,
) -> PaperExchange:
    return PaperExchange(config(**overrides), data_dir, clock=clock, prices=prices)


def move(
    ex: PaperExchange, manual: ManualPrices, clock: Clock, symbol: str, price: Decimal
) -> list[PaperEvent]:
    """Set ``symbol``'s price and advance the clock one minute: the events that followed."""
    manual.set(symbol, price)
    return ex.advance(clock.step())


def commission(received: Decimal, pct: Decimal) -> Decimal:
    """Binance's commission on what a trade gives the account: 8 decimals, rounded down."""
    return (received * pct / 100).quantize(D("0.00000001"), ROUND_DOWN)


def total_fees(order: Order) -> Decimal:
    return sum((f.fee for f in order.fills), D(0))


def notional(order: Order) -> Decimal:
    return sum((f.qty * f.price for f in order.fills), D(0))


# ---------------------------------------------------------------------------------------------
# Markets and refusals


def test_shipped_markets_mirror_binance_spot_filters() -> None:
    rules = {s: m.rules for s, m in MARKETS.items()}
    assert {BTC, ETH, SOL} <= set(rules)
    assert (rules[BTC].tick_size, rules[BTC].step_size) == (D("0.01"), D("0.00001"))
    assert (rules[ETH].tick_size, rules[ETH].step_size) == (D("0.01"), D("0.0001"))
    assert (rules[SOL].tick_size, rules[SOL].step_size) == (D("0.01"), D("0.001"))
    for r in rules.values():
        assert r.min_notional == D(5)
        assert r.min_qty == r.step_size
        assert all(isinstance(v, Decimal) for v in (r.tick_size, r.step_size, r.min_qty))


@pytest.mark.parametrize(
    ("symbol", "side", "type", "qty", "price", "needles"),
    [
        (BTC, Side.BUY, OrderType.MARKET, "0.000015", None, ["LOT_SIZE", "0.000015", "0.00001"]),
        (ETH, Side.BUY, OrderType.LIMIT, "0.01", "3400.005", ["PRICE_FILTER", "3400.005", "0.01"]),
        (SOL, Side.BUY, OrderType.LIMIT, "0.0005", "150", ["LOT_SIZE", "0.0005", "0.001"]),
        (BTC, Side.BUY, OrderType.LIMIT, "0.00004", "94000", ["NOTIONAL", "3.76", "5"]),
        (ETH, Side.SELL, OrderType.LIMIT, "-1", "3400", ["quantity must be positive"]),
        (BTC, Side.BUY, OrderType.LIMIT, "0.001", None, ["needs a price"]),
        ("DOGE/USDT", Side.BUY, OrderType.MARKET, "10", None, ["unknown symbol DOGE/USDT"]),
    ],
)
def test_filter_refusals_name_the_filter_and_values(
    clock: Clock,
    symbol: str,
    side: Side,
    type: OrderType,
    qty: str,
    price: str | None,
    needles: list[str],
) -> None:
    ex = paper(clock, balances={"USDT": D(1000), "ETH": D(1)})
    before = ex.balances()
    with pytest.raises(InvalidOrder) as info:
        ex.create_order(symbol, side, type, D(qty), None if price is None else D(price))
    for needle in needles:
        assert needle in info.value.reason
    assert ex.balances() == before
    assert ex.fetch_open_orders() == []


def test_below_min_qty_names_the_limit(clock: Clock) -> None:
    markets = dict(MARKETS)
    sol = markets[SOL]
    # a market whose min qty is above its step, as some real markets have
    markets[SOL] = replace(sol, rules=replace(sol.rules, min_qty=D("0.1")))
    ex = PaperExchange(config(), None, clock=clock, markets=markets)
    with pytest.raises(InvalidOrder) as info:
        ex.create_order(SOL, Side.BUY, OrderType.MARKET, D("0.05"))
    assert "LOT_SIZE" in info.value.reason
    assert "below the minimum quantity 0.1" in info.value.reason
    assert "0.05" in info.value.reason


def fmt(value: Decimal) -> str:
    return format(value.normalize(), "f")


def test_market_order_notional_uses_the_last_price(clock: Clock) -> None:
    ex = paper(clock)
    last = ex.fetch_ticker(SOL).last
    qty = D("0.020")  # 0.02 SOL at ~180 is ~3.6 USDT, below 5
    with pytest.raises(InvalidOrder) as info:
        ex.create_order(SOL, Side.BUY, OrderType.MARKET, qty)
    assert f"NOTIONAL: notional {fmt(qty * last)} USDT" in info.value.reason
    assert "minimum notional 5 USDT" in info.value.reason


def test_insufficient_quote_says_need_and_have(clock: Clock) -> None:
    ex = paper(clock, balances={"USDT": D(20)}, slippage_bps=D(0))
    qty = D("0.0005")  # ~47.5 USDT of BTC
    with pytest.raises(InsufficientFunds) as info:
        ex.create_order(BTC, Side.BUY, OrderType.MARKET, qty)
    ask = ex.fetch_ticker(BTC).ask
    assert ask is not None
    need = qty * ask  # the fee comes out of the BTC received
    assert str(info.value) == f"insufficient balance: need {fmt(need)} USDT, have 20"
    assert ex.get_balance("USDT") == D(20)


def test_limit_buy_needs_the_quote_for_its_price_only(clock: Clock) -> None:
    """As on Binance, a buy locks quantity x price: its fee is taken from the base received."""
    cfg = config(balances={"USDT": D(50)}, maker_fee_pct=D("0.02"), taker_fee_pct=D("0.1"))
    ex = PaperExchange(cfg, None, clock=clock)
    qty, price = D("0.0144"), D("3490")
    with pytest.raises(InsufficientFunds) as info:
        ex.create_order(ETH, Side.BUY, OrderType.LIMIT, qty, price)
    assert str(info.value) == f"insufficient balance: need {fmt(qty * price)} USDT, have 50"
    exact = ex.create_order(ETH, Side.BUY, OrderType.LIMIT, D("0.0143"), price)
    assert ex.balance("USDT") == PaperBalance(D(50) - D("0.0143") * price, D("0.0143") * price)
    assert exact.status is OrderStatus.OPEN


def test_selling_more_base_than_held_is_refused(clock: Clock) -> None:
    ex = paper(clock, balances={"USDT": D(1000), "ETH": D("0.5")})
    with pytest.raises(InsufficientFunds, match=r"need 0\.6 ETH, have 0\.5"):
        ex.create_order(ETH, Side.SELL, OrderType.MARKET, D("0.6"))
    with pytest.raises(InsufficientFunds, match=r"need 0\.6 ETH, have 0\.5"):
        ex.create_order(ETH, Side.SELL, OrderType.LIMIT, D("0.6"), D("4000"))
    with pytest.raises(InsufficientFunds, match="SOL"):
        ex.create_order(SOL, Side.SELL, OrderType.MARKET, D("1"))
    assert ex.get_balance("ETH") == D("0.5")


def test_limit_maker_that_would_cross_is_refused(clock: Clock) -> None:
    ex = paper(clock)
    ask = ex.fetch_ticker(ETH).ask
    assert ask is not None
    with pytest.raises(InvalidOrder, match="LIMIT_MAKER: order would immediately match"):
        ex.create_order(ETH, Side.BUY, OrderType.LIMIT_MAKER, D("0.01"), ask)
    resting = ex.create_order(ETH, Side.BUY, OrderType.LIMIT_MAKER, D("0.01"), ask - D(10))
    assert resting.status is OrderStatus.OPEN


def test_stop_leg_only_through_oco(clock: Clock) -> None:
    ex = paper(clock)
    with pytest.raises(NotSupported):
        ex.create_order(BTC, Side.SELL, OrderType.STOP_LOSS_LIMIT, D("0.001"), D("90000"))


def test_duplicate_open_client_id_is_refused(clock: Clock) -> None:
    ex = paper(clock)
    ex.create_order(ETH, Side.BUY, OrderType.LIMIT, D("0.01"), D("3000"), {"client_id": "k-1"})
    with pytest.raises(InvalidOrder, match="duplicate client order id k-1"):
        ex.create_order(ETH, Side.BUY, OrderType.LIMIT, D("0.01"), D("3000"), {"client_id": "k-1"})


def test_float_is_not_money(clock: Clock) -> None:
    ex = paper(clock)
    with pytest.raises(TypeError, match="float is not money"):
        ex.create_order(ETH, Side.BUY, OrderType.MARKET, 0.01)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Market orders, fees, slippage, the synthetic book


def test_buy_then_sell_moves_balances_fees_and_position(clock: Clock) -> None:
    cfg = config(taker_fee_pct=D("0.075"))
    ex = PaperExchange(cfg, None, clock=clock)
    qty = D("0.0100")
    buy = ex.create_order(ETH, Side.BUY, OrderType.MARKET, qty)
    assert buy.status is OrderStatus.FILLED and buy.filled == qty
    # Binance spot: the commission is in the asset received (ETH for a buy), 8 decimals
    assert buy.fee_asset == "ETH" and all(f.fee_asset == "ETH" for f in buy.fills)
    assert buy.fee == commission(qty, cfg.taker_fee_pct) == total_fees(buy) == D("0.0000075")
    held = qty - buy.fee
    assert ex.get_balance("ETH") == held
    assert ex.get_balance("USDT") == D(1000) - notional(buy)
    [position] = ex.fetch_positions()
    assert (position.symbol, position.qty, position.entry_price) == (ETH, held, buy.avg_price)

    sold = floor_to_step(held, MARKETS[ETH].rules.step_size)
    sell = ex.create_order(ETH, Side.SELL, OrderType.MARKET, sold)
    assert sell.fee_asset == "USDT"
    assert sell.fee == commission(notional(sell), cfg.taker_fee_pct)
    assert sell.fee == sell.fee.quantize(D("0.00000001"))  # never more than 8 decimals
    assert ex.get_balance("ETH") == held - sold  # the dust the fee left behind the step
    expected = D(1000) - notional(buy) + notional(sell) - sell.fee
    assert ex.get_balance("USDT") == expected
    # the round trip cost the spread plus two fees
    assert sell.avg_price is not None and buy.avg_price is not None
    assert sell.avg_price < buy.avg_price


def test_position_entry_is_the_weighted_average(clock: Clock, manual: ManualPrices) -> None:
    fees = {"maker_fee_pct": D(0), "taker_fee_pct": D(0)}
    ex = paper(clock, prices=manual, balances={"USDT": D(10_000)}, **fees)
    a = ex.create_order(SOL, Side.BUY, OrderType.MARKET, D("1"))
    move(ex, manual, clock, SOL, D("200"))
    b = ex.create_order(SOL, Side.BUY, OrderType.MARKET, D("3"))
    [position] = ex.fetch_positions(SOL)
    expected = (notional(a) + notional(b)) / D(4)
    assert position.qty == D(4)
    assert position.entry_price == expected.quantize(D("0.00000001"))


def test_market_fill_is_the_price_plus_slippage(clock: Clock) -> None:
    for bps in (D(0), D(5), D(25)):
        ex = paper(clock, slippage_bps=bps, balances={"USDT": D(1000), "ETH": D(1)})
        last = ex.fetch_ticker(ETH).last
        tick = MARKETS[ETH].rules.tick_size
        buy = ex.create_order(ETH, Side.BUY, OrderType.MARKET, D("0.01"))
        assert buy.avg_price == ceil_to_step(last * (1 + bps / 10_000), tick)
        sell = ex.create_order(ETH, Side.SELL, OrderType.MARKET, D("0.01"))
        assert sell.avg_price == floor_to_step(last * (1 - bps / 10_000), tick)


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_ten_times_larger_market_order_fills_strictly_worse(clock: Clock, side: Side) -> None:
    balances = {"USDT": D(10_000_000), "BTC": D(100)}
    small_ex = paper(clock, balances=balances)
    large_ex = paper(clock, balances=balances)  # same seed, same moment: the same book
    small = small_ex.create_order(BTC, side, OrderType.MARKET, D("0.1"))
    large = large_ex.create_order(BTC, side, OrderType.MARKET, D("1.0"))
    assert small.filled * 10 == large.filled
    assert small.avg_price is not None and large.avg_price is not None
    if side is Side.BUY:
        assert large.avg_price > small.avg_price
    else:
        assert large.avg_price < small.avg_price
    # the large order walked several levels, each one worse than the one before
    prices = [f.price for f in large.fills]
    assert len(prices) >= 2
    assert prices == sorted(prices, reverse=side is Side.SELL)
    assert len(set(prices)) == len(prices)


def test_the_book_is_seeded(clock: Clock) -> None:
    def fills(seed: int) -> list[tuple[Decimal, Decimal]]:
        ex = paper(clock, seed=seed, balances={"USDT": D(10_000_000)})
        order = ex.create_order(BTC, Side.BUY, OrderType.MARKET, D("2"))
        return [(f.price, f.qty) for f in order.fills]

    assert fills(7) == fills(7)
    assert fills(7) != fills(8)


# ---------------------------------------------------------------------------------------------
# Limit orders: resting, crossing, partial fills, locked funds, maker fees


def test_limit_rests_until_crossed_then_fills_at_its_price_with_maker_fee(
    clock: Clock, manual: ManualPrices
) -> None:
    cfg = config(maker_fee_pct=D("0.02"), taker_fee_pct=D("0.1"))
    ex = PaperExchange(cfg, None, clock=clock, prices=manual)
    limit = START[ETH] - D(100)
    qty = D("0.05")
    order = ex.create_order(ETH, Side.BUY, OrderType.LIMIT, qty, limit)
    assert order.status is OrderStatus.OPEN and order.filled == 0

    assert move(ex, manual, clock, ETH, limit + D("0.01")) == []  # not crossed yet
    assert ex.fetch_order(order.id, ETH).status is OrderStatus.OPEN

    events = move(ex, manual, clock, ETH, limit)
    [event] = events
    assert event.kind == "fill" and event.fill is not None
    assert event.fill.price == limit and event.fill.qty == qty
    assert event.fill.fee == commission(qty, cfg.maker_fee_pct)
    assert event.fill.fee_asset == "ETH"
    assert ex.fetch_open_orders() == []
    assert ex.get_balance("ETH") == qty - event.fill.fee
    assert ex.get_balance("USDT") == D(1000) - qty * limit
    assert ex.balance("USDT").locked == 0


def test_marketable_limit_takes_up_to_its_limit_and_rests_the_rest(clock: Clock) -> None:
    ex = paper(clock, balances={"USDT": D(10_000_000)})
    ticker = ex.fetch_ticker(BTC)
    assert ticker.ask is not None
    limit = ticker.ask  # only the first level is at or below the limit
    order = ex.create_order(BTC, Side.BUY, OrderType.LIMIT, D(5), limit)
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert 0 < order.filled < D(5)
    assert {f.price for f in order.fills} == {limit}
    assert order.fee == commission(order.filled, config().taker_fee_pct)  # it took: taker
    assert [o.id for o in ex.fetch_open_orders()] == [order.id]


def test_large_resting_limit_fills_in_parts(clock: Clock, manual: ManualPrices) -> None:
    ex = paper(clock, prices=manual, balances={"USDT": D(1_000_000)})
    limit = START[BTC] - D(1000)
    qty = D(3)
    order = ex.create_order(BTC, Side.BUY, OrderType.LIMIT, qty, limit)
    events: list[PaperEvent] = []
    for _ in range(50):
        events += move(ex, manual, clock, BTC, limit)  # the price sits on the limit
        if ex.fetch_order(order.id, BTC).status is OrderStatus.FILLED:
            break
    kinds = [e.kind for e in events]
    assert len(events) >= 2
    assert kinds[-1] == "fill" and set(kinds[:-1]) == {"partial_fill"}
    assert sum((e.fill.qty for e in events if e.fill), D(0)) == qty
    assert {e.fill.price for e in events if e.fill} == {limit}
    # between parts the order shows as partially filled with its lock shrinking
    assert events[0].order.status is OrderStatus.PARTIALLY_FILLED
    assert 0 < events[0].order.filled < qty
    fees = sum((e.fill.fee for e in events if e.fill), D(0))
    assert fees == sum(
        (commission(e.fill.qty, config().maker_fee_pct) for e in events if e.fill), D(0)
    )
    assert ex.get_balance("USDT") == D(1_000_000) - qty * limit
    assert ex.get_balance("BTC") == qty - fees
    assert ex.balance("USDT").locked == 0


def test_resting_orders_lock_funds_and_cancel_releases_them(clock: Clock) -> None:
    cfg = config(balances={"USDT": D(1000), "SOL": D(2)})
    ex = PaperExchange(cfg, None, clock=clock)
    price, qty = D("150.00"), D("2.000")
    buy = ex.create_order(SOL, Side.BUY, OrderType.LIMIT, qty, price)
    lock = qty * price
    assert ex.balance("USDT").free == D(1000) - lock
    assert ex.balance("USDT").locked == lock
    sell = ex.create_order(SOL, Side.SELL, OrderType.LIMIT, D("1.5"), D("250"))
    assert ex.balance("SOL").free == D("0.5") and ex.balance("SOL").locked == D("1.5")
    # locked base cannot be sold twice
    with pytest.raises(InsufficientFunds, match=r"need 1 SOL, have 0\.5"):
        ex.create_order(SOL, Side.SELL, OrderType.MARKET, D("1.000"))
    # nor locked quote spent twice: 900 USDT would fit in 1000, not in what is left free
    with pytest.raises(InsufficientFunds, match=f"have {fmt(D(1000) - lock)}$"):
        ex.create_order(SOL, Side.BUY, OrderType.LIMIT, qty * 3, price)

    cancelled = ex.cancel_order(buy.id, SOL)
    assert cancelled.status is OrderStatus.CANCELED
    assert ex.balance("USDT") == PaperBalance(D(1000), D(0))
    ex.cancel_order(sell.client_id, SOL)  # by client id too
    assert ex.balance("SOL").free == D(2) and ex.balance("SOL").locked == 0


def test_cancel_of_filled_cancelled_or_unknown_says_which(
    clock: Clock, manual: ManualPrices
) -> None:
    ex = paper(clock, prices=manual)
    filled = ex.create_order(ETH, Side.BUY, OrderType.MARKET, D("0.01"))
    with pytest.raises(OrderNotFound, match=f"order {filled.id} is already filled"):
        ex.cancel_order(filled.id, ETH)
    resting = ex.create_order(ETH, Side.BUY, OrderType.LIMIT, D("0.01"), D("3000"))
    ex.cancel_order(resting.id, ETH)
    with pytest.raises(OrderNotFound, match=f"order {resting.id} is already canceled"):
        ex.cancel_order(resting.id, ETH)
    with pytest.raises(OrderNotFound, match="order 999 is unknown on ETH/USDT"):
        ex.cancel_order("999", ETH)
    with pytest.raises(OrderNotFound, match="unknown"):
        ex.fetch_order("999", ETH)


def test_client_ids_given_or_generated_deterministically(clock: Clock) -> None:
    ex = paper(clock, seed=11)
    a = ex.create_order(ETH, Side.BUY, OrderType.LIMIT, D("0.01"), D("3000"))
    b = ex.create_order(ETH, Side.BUY, OrderType.LIMIT, D("0.01"), D("3000"), {"client_id": "x"})
    with pytest.raises(InsufficientFunds):  # a refused order uses up no id
        ex.create_order(ETH, Side.BUY, OrderType.LIMIT, D(1), D("3000"))
    c = ex.create_order(ETH, Side.BUY, OrderType.LIMIT, D("0.01"), D("3000"))
    assert (a.client_id, b.client_id, c.client_id) == ("paper-11-000001", "x", "paper-11-000002")
    found = ex.fetch_order_by_client_id("x", ETH)
    assert found is not None and found.id == b.id
    assert ex.fetch_order_by_client_id("x", BTC) is None
    assert ex.fetch_order_by_client_id("nope", ETH) is None
    assert a.created_at == clock() and a.created_at.tzinfo is not None


# ---------------------------------------------------------------------------------------------
# OCO


def oco_setup(clock: Clock, manual: ManualPrices) -> tuple[PaperExchange, Decimal]:
    ex = paper(clock, prices=manual, balances={"USDT": D(0), "BTC": D("1")})
    return ex, D("1.00000")


def test_oco_capabilities_and_lock(clock: Clock, manual: ManualPrices) -> None:
    ex, qty = oco_setup(clock, manual)
    caps = ex.capabilities(BTC)
    assert caps.native_oco is True and caps.attached_tp_sl is False
    oco = ex.create_oco(BTC, Side.SELL, qty, D(100_000), D(90_000), {"client_id": "exit-1"})
    assert oco.take_profit.type is OrderType.LIMIT_MAKER
    assert oco.stop_loss.type is OrderType.STOP_LOSS_LIMIT
    assert oco.stop_loss.stop_price == D(90_000)
    assert oco.take_profit.list_id == oco.stop_loss.list_id == oco.list_id
    assert (oco.take_profit.client_id, oco.stop_loss.client_id) == ("exit-1-tp", "exit-1-sl")
    assert ex.balance("BTC").free == 0 and ex.balance("BTC").locked == qty  # one lock for both


def test_oco_prices_out_of_order_are_refused(clock: Clock, manual: ManualPrices) -> None:
    ex, qty = oco_setup(clock, manual)
    with pytest.raises(InvalidOrder, match="OCO: the prices are not in order"):
        ex.create_oco(BTC, Side.SELL, qty, D(90_000), D(100_000))
    with pytest.raises(InsufficientFunds):
        ex.create_oco(BTC, Side.SELL, qty * 2, D(100_000), D(90_000))
    assert ex.fetch_open_orders() == []


def test_oco_take_profit_path_cancels_the_stop(clock: Clock, manual: ManualPrices) -> None:
    ex, qty = oco_setup(clock, manual)
    oco = ex.create_oco(BTC, Side.SELL, qty, D(100_000), D(90_000))
    assert move(ex, manual, clock, BTC, D(99_999)) == []
    events = move(ex, manual, clock, BTC, D(100_000))
    cancel = [e for e in events if e.kind == "cancel"]
    assert [e.order.id for e in cancel] == [oco.stop_loss.id]
    assert "other leg" in cancel[0].reason
    assert ex.fetch_order(oco.stop_loss.id, BTC).status is OrderStatus.EXPIRED  # as Binance's
    for _ in range(50):
        if ex.fetch_order(oco.take_profit.id, BTC).status is OrderStatus.FILLED:
            break
        events += move(ex, manual, clock, BTC, D(100_000))
    tp = ex.fetch_order(oco.take_profit.id, BTC)
    assert tp.status is OrderStatus.FILLED
    assert ex.balance("BTC").total == 0
    maker = config().maker_fee_pct / 100
    assert ex.get_balance("USDT") == qty * D(100_000) * (1 - maker)
    assert ex.fetch_open_orders() == []


def test_oco_stop_loss_path_cancels_the_take_profit(clock: Clock, manual: ManualPrices) -> None:
    ex, qty = oco_setup(clock, manual)
    oco = ex.create_oco(BTC, Side.SELL, qty, D(100_000), D(90_000))
    limit = stop_limit_price(MARKETS[BTC].rules, Side.SELL, D(90_000))
    assert oco.stop_loss.price == limit == D("89550.00")  # 0.5 % below the stop, by default
    assert move(ex, manual, clock, BTC, D("90000.01")) == []
    events = move(ex, manual, clock, BTC, D(89_900))  # through the stop, above its limit
    assert events[0].kind == "cancel" and events[0].order.id == oco.take_profit.id
    fills = [e.fill for e in events if e.fill is not None]
    assert events[-1].kind == "fill"
    sl = ex.fetch_order(oco.stop_loss.id, BTC)
    assert sl.status is OrderStatus.FILLED and sl.filled == qty
    assert ex.fetch_order(oco.take_profit.id, BTC).status is OrderStatus.EXPIRED
    assert ex.balance("BTC").total == 0
    taker = config().taker_fee_pct
    assert ex.get_balance("USDT") == sum(
        (f.qty * f.price - commission(f.qty * f.price, taker) for f in fills), D(0)
    )
    assert all(limit <= f.price <= D(89_900) for f in fills)  # the bids, never below the limit


def test_stop_loss_limit_rests_at_its_limit_after_a_gap(clock: Clock, manual: ManualPrices) -> None:
    """Binance: a triggered STOP_LOSS_LIMIT is a limit order; when the price gaps through its
    limit it does not fill at once, it rests at the limit until the price comes back."""
    ex, qty = oco_setup(clock, manual)
    oco = ex.create_oco(
        BTC, Side.SELL, qty, D(100_000), D(90_000), {"stop_limit_price": D("89800.00")}
    )
    assert oco.stop_loss.price == D("89800.00") and oco.stop_loss.stop_price == D(90_000)
    events = move(ex, manual, clock, BTC, D(89_000))  # gaps through the stop and its limit
    assert [(e.kind, e.order.id) for e in events] == [("cancel", oco.take_profit.id)]
    sl = ex.fetch_order(oco.stop_loss.id, BTC)
    assert sl.status is OrderStatus.OPEN and sl.filled == 0
    assert ex.balance("BTC") == PaperBalance(D(0), qty)  # still locked, nothing sold
    assert move(ex, manual, clock, BTC, D("89799.99")) == []  # below the limit: still resting
    assert move(ex, manual, clock, BTC, D(90_500)) != []  # not re-triggered: it fills as a limit
    sl = ex.fetch_order(oco.stop_loss.id, BTC)
    assert {f.price for f in sl.fills} == {D("89800.00")}  # at its limit, as a maker
    assert sl.fee == sum(
        (commission(f.qty * f.price, config().maker_fee_pct) for f in sl.fills), D(0)
    )


def test_cancelling_one_oco_leg_cancels_the_list(clock: Clock, manual: ManualPrices) -> None:
    ex, qty = oco_setup(clock, manual)
    oco = ex.create_oco(BTC, Side.SELL, qty, D(100_000), D(90_000))
    ex.cancel_order(oco.stop_loss.id, BTC)
    assert ex.fetch_order(oco.take_profit.id, BTC).status is OrderStatus.CANCELED
    assert ex.balance("BTC").free == qty and ex.balance("BTC").locked == 0


# ---------------------------------------------------------------------------------------------
# Persistence


def scripted_session(ex: PaperExchange, clock: Clock) -> None:
    ex.create_order(ETH, Side.BUY, OrderType.MARKET, D("0.05"))
    ex.create_order(SOL, Side.BUY, OrderType.LIMIT, D("0.5"), D("170"), {"client_id": "dip"})
    for _ in range(30):
        ex.advance(clock.step())
    ex.create_order(ETH, Side.SELL, OrderType.LIMIT, D("0.02"), D("3600"))


def test_state_survives_a_restart(clock: Clock, tmp_path: Path) -> None:
    ex = paper(clock, data_dir=tmp_path)
    scripted_session(ex, clock)
    state_file = tmp_path / "paper" / "state.json"
    assert state_file.is_file()
    assert [p.name for p in state_file.parent.iterdir()] == ["state.json"]  # no temp left

    # a new instance, even with other configured balances, continues the same account
    again = paper(clock, data_dir=tmp_path, balances={"USDT": D(99)})
    assert again.balances() == ex.balances()
    assert again.fetch_open_orders() == ex.fetch_open_orders()
    assert again.fetch_positions() == ex.fetch_positions()
    assert again.prices.prices() == ex.prices.prices()
    assert again.fetch_order_by_client_id("dip", SOL) == ex.fetch_order_by_client_id("dip", SOL)

    # and continues deterministically: same prices and the same next ids
    t = clock.step()
    assert again.advance(t) == ex.advance(t)
    assert again.prices.prices() == ex.prices.prices()
    a = ex.create_order(ETH, Side.BUY, OrderType.MARKET, D("0.01"))
    b = again.create_order(ETH, Side.BUY, OrderType.MARKET, D("0.01"))
    assert (a.id, a.client_id, a.fills) == (b.id, b.client_id, b.fills)


def test_a_torn_state_file_is_an_error_not_a_reset(clock: Clock, tmp_path: Path) -> None:
    ex = paper(clock, data_dir=tmp_path)
    scripted_session(ex, clock)
    state_file = tmp_path / "paper" / "state.json"
    text = state_file.read_text()
    torn = text[: len(text) // 2]
    state_file.write_text(torn)
    with pytest.raises(PaperStateError) as info:
        paper(clock, data_dir=tmp_path)
    message = str(info.value)
    assert str(state_file) in message and "not reset" in message and "delete" in message
    assert state_file.read_text() == torn  # left alone for the operator


def test_inconsistent_locks_are_refused(clock: Clock, tmp_path: Path) -> None:
    ex = paper(clock, data_dir=tmp_path)
    ex.create_order(ETH, Side.BUY, OrderType.LIMIT, D("0.1"), D("3000"))
    state_file = tmp_path / "paper" / "state.json"
    lock = str(ex.balance("USDT").locked)
    state_file.write_text(state_file.read_text().replace(f'"locked": "{lock}"', '"locked": "0"'))
    with pytest.raises(PaperStateError, match="USDT locked 0 but the open orders hold"):
        paper(clock, data_dir=tmp_path)


# ---------------------------------------------------------------------------------------------
# Determinism and the price sources


def test_same_seed_same_run_byte_for_byte(tmp_path: Path) -> None:
    files = []
    for name in ("a", "b"):
        clock = Clock()
        ex = paper(clock, data_dir=tmp_path / name)
        scripted_session(ex, clock)
        files.append((tmp_path / name / "paper" / "state.json").read_bytes())
    assert files[0] == files[1]

    clock = Clock()
    other = paper(clock, seed=8)
    scripted_session(other, clock)
    assert other.prices.prices() != paper(Clock(), data_dir=tmp_path / "a").prices.prices()


def test_simulated_feed_is_on_tick_and_realistically_volatile() -> None:
    spec = SimSymbol(D(95_000), D("0.01"), D("0.55"))
    feed = SimulatedFeed({BTC: spec}, start=T0, seed=3)
    same = SimulatedFeed({BTC: spec}, start=T0, rng=random.Random(3))
    minutes = 5000
    returns = []
    previous = feed.price(BTC)
    for i in range(1, minutes + 1):
        now = T0 + timedelta(minutes=i)
        assert feed.advance(now) == same.advance(now)
        price = feed.price(BTC)
        assert price % spec.tick_size == 0 and isinstance(price, Decimal)
        returns.append((price / previous).ln())
        previous = price
    mean = sum(returns, D(0)) / len(returns)
    var = sum(((r - mean) ** 2 for r in returns), D(0)) / (len(returns) - 1)
    annualised = (var * 365 * 24 * 60).sqrt()
    assert abs(annualised - spec.annual_volatility) < spec.annual_volatility * D("0.1")
    # a time that is not later is a no-op
    assert feed.advance(T0) == {BTC: previous}


def test_feed_state_round_trips() -> None:
    spec = {BTC: SimSymbol(D(95_000), D("0.01"), D("0.55"))}
    a = SimulatedFeed(spec, start=T0, seed=1)
    a.advance(T0 + timedelta(minutes=5))
    b = SimulatedFeed(spec, start=T0, seed=99)
    b.restore(a.state())
    later = T0 + timedelta(minutes=9)
    assert a.advance(later) == b.advance(later)
    with pytest.raises(ValueError):
        b.restore({"kind": "simulated", "time": "yesterday", "prices": {}, "rng": {}})


def test_naive_times_are_refused(clock: Clock) -> None:
    ex = paper(clock)
    with pytest.raises(ValueError, match="naive"):
        ex.advance(datetime(2026, 1, 2))  # naive on purpose


def ticker_fetch(prices: dict[str, Decimal]) -> Callable[[str], Ticker]:
    def fetch(symbol: str) -> Ticker:
        if symbol not in prices:
            from engine.exchange.base import NetworkError

            raise NetworkError(f"no route to {symbol}")
        return Ticker(symbol, prices[symbol], None, None, T0)

    return fetch


def test_exchange_ticker_price_source(clock: Clock) -> None:
    live = {BTC: D("101234.567"), ETH: D("3333.33"), SOL: D("150.5")}
    cfg = config(price_source="exchange", slippage_bps=D(0))
    ex = PaperExchange(cfg, None, clock=clock, tickers=ticker_fetch(live))
    assert ex.fetch_ticker(BTC).last == D("101234.57")  # on the market's tick
    order = ex.create_order(ETH, Side.BUY, OrderType.MARKET, D("0.01"))
    assert order.avg_price == live[ETH]

    live[ETH] = D("3400")
    ex.advance(clock.step())
    assert ex.fetch_ticker(ETH).last == D("3400")
    del live[SOL]  # a failed fetch keeps the last price
    ex.advance(clock.step())
    assert ex.fetch_ticker(SOL).last == D("150.5")

    with pytest.raises(ValueError, match="needs a ticker source"):
        PaperExchange(cfg, None, clock=clock)


def test_ticker_source_without_a_price_says_so() -> None:
    source = ExchangeTickerSource(ticker_fetch({}), [BTC], start=T0)
    with pytest.raises(PriceUnavailable, match=BTC):
        source.price(BTC)
    with pytest.raises(PriceUnavailable):
        source.price("XRP/USDT")


def test_paper_never_imports_ccxt() -> None:
    code = (
        "import sys\n"
        "import engine.exchange.paper, engine.exchange.prices\n"
        "assert 'ccxt' not in sys.modules, 'ccxt imported'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------------------------
# Binance's rules the router relies on


def test_slippage_is_for_market_orders_only(clock: Clock) -> None:
    """The ticker, and limits crossing the book, see the book as it is (as on the exchange);
    only a market order fills ``slippage_bps`` worse."""
    plain = paper(clock, slippage_bps=D(0), balances={"USDT": D(10_000)})
    slipped = paper(clock, slippage_bps=D(25), balances={"USDT": D(10_000)})
    assert slipped.fetch_ticker(ETH) == plain.fetch_ticker(ETH)
    ask = plain.fetch_ticker(ETH).ask
    assert ask is not None
    a = plain.create_order(ETH, Side.BUY, OrderType.LIMIT, D("0.01"), ask)
    b = slipped.create_order(ETH, Side.BUY, OrderType.LIMIT, D("0.01"), ask)
    assert (a.filled, a.avg_price) == (b.filled, b.avg_price) == (D("0.01"), ask)
    c = slipped.create_order(ETH, Side.BUY, OrderType.MARKET, D("0.01"))
    tick = MARKETS[ETH].rules.tick_size
    assert c.avg_price == ceil_to_step(ask * (1 + D(25) / 10_000), tick)


def test_an_exit_below_the_minimum_notional_is_refused(clock: Clock, manual: ManualPrices) -> None:
    """What a buy of 5.01 USDT leaves after its fee in the base asset is worth less than 5 at
    the stop's limit: Binance refuses such an OCO (NOTIONAL, -1013), and so does paper."""
    ex = paper(clock, prices=manual)
    price = START[SOL]
    qty = D("0.028")  # 5.04 USDT at 180
    buy = ex.create_order(SOL, Side.BUY, OrderType.MARKET, qty)
    held = floor_to_step(ex.get_balance("SOL"), MARKETS[SOL].rules.step_size)
    assert held == D("0.027") < qty
    with pytest.raises(InvalidOrder, match="NOTIONAL: notional") as info:
        ex.create_oco(SOL, Side.SELL, held, price + D(20), price - D(10))
    assert "minimum notional 5 USDT" in info.value.reason
    assert ex.fetch_open_orders() == [] and buy.fee_asset == "SOL"


def test_values_off_the_step_or_tick_are_refused(clock: Clock) -> None:
    ex = paper(clock)
    with pytest.raises(InvalidOrder, match=r"LOT_SIZE: quantity 0\.012345 is not a multiple"):
        ex.create_order(ETH, Side.BUY, OrderType.LIMIT, D("0.012345"), D("3000"))
    with pytest.raises(InvalidOrder, match=r"PRICE_FILTER: price 3000\.005 is not a multiple"):
        ex.create_order(ETH, Side.BUY, OrderType.LIMIT, D("0.01"), D("3000.005"))
    with pytest.raises(InvalidOrder, match=r"PERCENT_PRICE_BY_SIDE: a buy price 699\.99"):
        ex.create_order(ETH, Side.BUY, OrderType.LIMIT, D("0.01"), D("699.99"))
    assert ex.fetch_open_orders() == []


def test_readme_example_a_buy_of_001_eth_holds_000999(clock: Clock) -> None:
    ex = paper(clock)  # the shipped fees
    buy = ex.create_order(ETH, Side.BUY, OrderType.MARKET, D("0.01"))
    assert (buy.fee, buy.fee_asset) == (D("0.00001"), "ETH")
    assert ex.get_balance("ETH") == D("0.00999")
