"""Paper against Binance, rule by rule, where the proposals of ``test_paper_fidelity`` never reach.

The same order goes to the paper exchange and, through the real ccxt, to ``tests/binance_sim.py``
(the market file's values, the same book, the same balances), and both must answer alike: accepted
or refused, by the same rule (the filter Binance names, "Filter failure: <NAME>", -1013), with the
same quantity, price, status, fill and fee; and their balances, free and locked, must be the same
after every step. The rules are Binance's documented filters: NOTIONAL's maxNotional (limit orders
only: applyMaxToMarket false), MARKET_LOT_SIZE, MAX_NUM_ORDERS (an OCO is two orders) and
MAX_NUM_ALGO_ORDERS (an OCO's STOP_LOSS_LIMIT is one algo order; its LIMIT_MAKER is none).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest

from engine.exchange.base import Exchange, ExchangeError, OrderStatus, OrderType, Side
from engine.exchange.ccxt_exchange import CcxtExchange
from engine.exchange.paper import PaperExchange
from engine.exchange.prices import ManualPrices
from engine.money import floor_to_step
from tests.binance_sim import BinanceSim
from tests.test_paper_fidelity import FEE_PCT, MARKETS, binance_venue, fidelity_sim, paper_exchange

D = Decimal
RICH = {"USDT": D(10**9), "BTC": D(1000), "ETH": D(10_000), "SOL": D(10**6)}
MAKER_PCT = D("0.075")  # the taker's: FEE_PCT, 0.1
DEEP = 400  # book levels copied to the simulator: a 95 BTC market order reaches ~230
FILTERS = (
    "PRICE_FILTER",
    "PERCENT_PRICE_BY_SIDE",
    "LOT_SIZE",
    "MARKET_LOT_SIZE",
    "NOTIONAL",
    "MAX_NUM_ORDERS",
    "MAX_NUM_ALGO_ORDERS",
)
Venues = tuple[PaperExchange, CcxtExchange, BinanceSim]


@pytest.fixture
def venues() -> Iterator[Venues]:
    """Both venues with the same balances, book and fees: a maker pays less than a taker."""
    with fidelity_sim(RICH, depth=DEEP, maker_fee_pct=MAKER_PCT) as sim:
        binance = binance_venue(sim)
        try:
            yield paper_exchange(D(0), RICH, maker_fee_pct=MAKER_PCT), binance, sim
        finally:
            binance.close()


def rule(text: str) -> str:
    """The filter a refusal names (the longest: MARKET_LOT_SIZE, not LOT_SIZE), an OCO's prices
    out of order (each venue in its words), an order already ended, else the text itself."""
    named = [f for f in FILTERS if f in text]
    if named:
        return max(named, key=len)
    if "prices are not in order" in text or "relationship of the prices" in text:
        return "OCO prices"
    return "already filled" if "already filled" in text else text


def attempt(venue: Exchange, call: Callable[[Exchange], Any]) -> tuple[Any, ...]:
    """What ``venue`` says to ``call``: the refusal's kind and rule, or the order as placed."""
    try:
        placed = call(venue)
    except ExchangeError as exc:
        return (type(exc).__name__, rule(str(exc)))
    if not hasattr(placed, "filled"):  # an OCO: its legs
        legs = (placed.take_profit, placed.stop_loss)
        return ("accepted", *((o.type, o.qty, o.price, o.stop_price, o.status) for o in legs))
    avg = (
        None if placed.avg_price is None else placed.avg_price.quantize(D("1E-8"), ROUND_HALF_EVEN)
    )
    fee_asset = placed.fee_asset if placed.filled else ""
    said = (placed.qty, placed.price, placed.status, placed.filled, avg, fee_asset, placed.fee)
    return ("accepted", *said)


def alike(venues: Venues, call: Callable[[Exchange], Any]) -> tuple[Any, ...]:
    """``call`` on both venues: the same answer, and the same balances after it."""
    paper, binance, sim = venues
    said = attempt(paper, call), attempt(binance, call)
    assert said[0] == said[1]
    assert balances(paper) == balances(sim)
    return said[0]


def balances(venue: PaperExchange | BinanceSim) -> dict[str, tuple[Decimal, Decimal]]:
    """(free, locked) per asset, zeros left out."""
    if isinstance(venue, PaperExchange):
        held = {a: (b.free, b.locked) for a, b in venue.balances().items()}
    else:
        assets = set(venue.balances) | set(venue.locked)
        held = {a: (venue.balances.get(a, D(0)), venue.locked.get(a, D(0))) for a in assets}
    return {
        a: (free.normalize(), locked.normalize())
        for a, (free, locked) in held.items()
        if free or locked
    }


def order(symbol: str, side: Side, type_: OrderType, qty: str, price: str | None = None) -> Any:
    limit = None if price is None else D(price)
    return lambda v: v.create_order(symbol, side, type_, D(qty), limit)


def oco(symbol: str, qty: str, tp: str, sl: str) -> Any:
    return lambda v: v.create_oco(symbol, Side.SELL, D(qty), D(tp), D(sl))


BUY, SELL, LIMIT, MARKET = Side.BUY, Side.SELL, OrderType.LIMIT, OrderType.MARKET


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        # NOTIONAL's maximum (9,000,000 USDT) holds for limit orders...
        (order("BTC/USDT", BUY, LIMIT, "95", "95000"), ("InvalidOrder", "NOTIONAL")),
        (order("BTC/USDT", SELL, LIMIT, "100", "95000"), ("InvalidOrder", "NOTIONAL")),
        (order("BTC/USDT", BUY, LIMIT, "94", "90000"), "accepted"),
        # ... not for market orders (applyMaxToMarket false): 95 BTC walk ~230 levels
        (order("BTC/USDT", BUY, MARKET, "95"), "accepted"),
        # MARKET_LOT_SIZE: a market order's quantity, not a limit order's
        (order("BTC/USDT", BUY, MARKET, "100.00001"), ("InvalidOrder", "MARKET_LOT_SIZE")),
        (order("SOL/USDT", SELL, MARKET, "40000.001"), ("InvalidOrder", "MARKET_LOT_SIZE")),
        (order("SOL/USDT", SELL, LIMIT, "40000.001", "181"), "accepted"),
        (order("ETH/USDT", BUY, MARKET, "2000"), "accepted"),
        # a limit sell that crosses: takes the bids down to its limit, rests the rest
        (order("SOL/USDT", SELL, LIMIT, "200", "179.9"), "accepted"),
        # PRICE_FILTER's maximum (BTC: 1,000,000) comes before the band around the average
        (order("BTC/USDT", BUY, LIMIT, "0.0001", "1000000.01"), ("InvalidOrder", "PRICE_FILTER")),
        (
            order("BTC/USDT", BUY, LIMIT, "0.0001", "1000000"),
            ("InvalidOrder", "PERCENT_PRICE_BY_SIDE"),
        ),
        (order("SOL/USDT", SELL, LIMIT, "1", "10000.01"), ("InvalidOrder", "PRICE_FILTER")),
        # LOT_SIZE still comes first
        (order("BTC/USDT", BUY, MARKET, "9000.00001"), ("InvalidOrder", "LOT_SIZE")),
        # too small: below the minimum quantity, or the minimum notional (a market order's on
        # the average price)
        (order("BTC/USDT", BUY, MARKET, "0.000001"), ("InvalidOrder", "LOT_SIZE")),
        (order("BTC/USDT", SELL, MARKET, "0.00005"), ("InvalidOrder", "NOTIONAL")),
        (order("BTC/USDT", SELL, MARKET, "0.00006"), "accepted"),
        (order("ETH/USDT", BUY, LIMIT, "0.0014", "3500"), ("InvalidOrder", "NOTIONAL")),
        # an OCO sell: take-profit above the last price (180), stop-loss below it
        (oco("SOL/USDT", "1", "180", "170"), ("InvalidOrder", "OCO prices")),
        (oco("SOL/USDT", "1", "190", "180"), ("InvalidOrder", "OCO prices")),
        (oco("SOL/USDT", "1", "170", "190"), ("InvalidOrder", "OCO prices")),
        (oco("SOL/USDT", "0.02", "200", "170"), ("InvalidOrder", "NOTIONAL")),  # 3.38 at its limit
        (oco("SOL/USDT", "0.03", "200", "170"), "accepted"),
    ],
)
def test_an_order_is_refused_or_filled_alike(
    venues: Venues, call: Callable[[Exchange], Any], expected: Any
) -> None:
    said = alike(venues, call)
    assert (said[0] if expected == "accepted" else said) == expected


def test_an_oco_is_one_algo_order(venues: Venues) -> None:
    """MAX_NUM_ALGO_ORDERS (5 on the symbol): each OCO's stop leg counts one; its take-profit
    (LIMIT_MAKER) and plain limit orders none."""
    limit = MARKETS["SOL/USDT"].limits.max_num_algo_orders
    assert limit == 5
    for _ in range(limit):
        assert alike(venues, oco("SOL/USDT", "1", "200", "170"))[0] == "accepted"
    assert alike(venues, oco("SOL/USDT", "1", "200", "170")) == (
        "InvalidOrder",
        "MAX_NUM_ALGO_ORDERS",
    )
    assert alike(venues, order("SOL/USDT", SELL, LIMIT, "1", "200"))[0] == "accepted"
    assert alike(venues, oco("ETH/USDT", "0.01", "3600", "3400"))[0] == "accepted"  # per symbol
    paper, binance, _ = venues
    for venue in (paper, binance):  # one OCO cancelled: room for one more
        stop = next(o for o in venue.fetch_open_orders("SOL/USDT") if o.stop_price is not None)
        venue.cancel_order(stop.id, "SOL/USDT")
    assert balances(paper) == balances(venues[2])
    assert alike(venues, oco("SOL/USDT", "1", "200", "170"))[0] == "accepted"


def test_an_oco_is_two_orders(venues: Venues) -> None:
    """MAX_NUM_ORDERS (200 on the symbol) counts both legs of an OCO."""
    limit = MARKETS["ETH/USDT"].limits.max_num_orders
    assert limit == 200
    paper, binance, _ = venues
    for venue in (paper, binance):
        for _ in range(limit - 1):
            venue.create_order("ETH/USDT", BUY, LIMIT, D("0.01"), D(3000))
    assert balances(paper) == balances(venues[2])
    assert alike(venues, oco("ETH/USDT", "0.01", "3600", "3400")) == (
        "InvalidOrder",
        "MAX_NUM_ORDERS",
    )
    assert alike(venues, order("ETH/USDT", BUY, LIMIT, "0.01", "3000"))[0] == "accepted"
    assert alike(venues, order("ETH/USDT", BUY, LIMIT, "0.01", "3000")) == (
        "InvalidOrder",
        "MAX_NUM_ORDERS",
    )
    assert alike(venues, order("ETH/USDT", BUY, MARKET, "0.01"))[0] == "accepted"  # never open


def test_a_limit_that_crosses_locks_only_what_rests(venues: Venues) -> None:
    """A limit buy that takes two ask levels below its limit, as a taker, and rests the rest
    holds the rest's quantity times its limit, no more (what it saved on the better levels is
    free at once); the rest fills in part as a maker, at its limit, for the maker's fee; a
    cancel frees what is left. Both accounts alike after every step."""
    paper, binance, sim = venues
    _, asks = paper.order_book("BTC/USDT", 2)
    (_, first), (limit, second) = asks
    qty = first + second + D("0.5")
    said = alike(venues, order("BTC/USDT", BUY, LIMIT, str(qty), str(limit)))
    taken = first + second
    assert said[3:5] == ("partially_filled", taken)
    assert said[7] == (taken * FEE_PCT / 100).quantize(D("1E-8"), ROUND_DOWN)  # the taker's fee
    assert paper.balance("USDT").locked == D("0.5") * limit
    [resting] = paper.fetch_open_orders("BTC/USDT")
    assert isinstance(paper.prices, ManualPrices)
    paper.prices.set("BTC/USDT", limit)  # the market comes to it: part of the rest fills
    paper.advance(paper.prices.time)
    made = paper.fetch_order(resting.id, "BTC/USDT").filled - taken
    assert 0 < made < D("0.5")
    sim_id = sim.open_orders()[0].order_id
    sim.fill_part(sim_id, made)
    ours = paper.fetch_order(resting.id, "BTC/USDT")
    theirs = binance.fetch_order(str(sim_id), "BTC/USDT")
    maker_fee = (made * MAKER_PCT / 100).quantize(D("1E-8"), ROUND_DOWN)
    assert ours.fills[-1].fee == theirs.fills[-1].fee == maker_fee
    trades = binance.ccxt.fetch_my_trades("BTC/USDT")  # the simulator says who took and made
    assert [t["takerOrMaker"] for t in trades] == ["taker", "taker", "maker"]
    assert (ours.filled, ours.fee, ours.status) == (theirs.filled, theirs.fee, theirs.status)
    assert balances(paper) == balances(sim)
    assert paper.balance("USDT").locked == (qty - taken - made) * limit
    paper.cancel_order(resting.id, "BTC/USDT")
    binance.cancel_order(theirs.id, "BTC/USDT")
    assert balances(paper) == balances(sim)
    assert paper.balance("USDT").locked == 0


def test_an_oco_leg_that_fills_expires_the_other(venues: Venues) -> None:
    """The take-profit fills as a maker, its fee in the quote; the stop-loss ends EXPIRED (as
    Binance ends the other order of a list), not CANCELED (what a cancel gives)."""
    paper, binance, sim = venues
    placed = [
        venue.create_oco("SOL/USDT", SELL, D(2), D(200), D(170)) for venue in (paper, binance)
    ]
    assert isinstance(paper.prices, ManualPrices)
    paper.prices.set("SOL/USDT", D(200))
    paper.advance(paper.prices.time)
    sim.fill(int(placed[1].take_profit.id))
    ends = [
        (
            venue.fetch_order(oco.take_profit.id, "SOL/USDT"),
            venue.fetch_order(oco.stop_loss.id, "SOL/USDT"),
        )
        for venue, oco in zip((paper, binance), placed, strict=True)
    ]
    said = [(tp.status, tp.filled, tp.fee, tp.fee_asset, sl.status, sl.filled) for tp, sl in ends]
    assert (
        said[0]
        == said[1]
        == (OrderStatus.FILLED, D(2), D("0.3"), "USDT", OrderStatus.EXPIRED, D(0))
    )
    assert balances(paper) == balances(sim)


def test_a_filled_order_cannot_be_cancelled(venues: Venues) -> None:
    paper, binance, _ = venues
    ids = [v.create_order("ETH/USDT", BUY, MARKET, D("0.01")).id for v in (paper, binance)]
    said = [
        attempt(v, lambda v, i=i: v.cancel_order(i, "ETH/USDT"))
        for v, i in zip((paper, binance), ids, strict=True)
    ]
    assert said[0] == said[1] == ("OrderNotFound", "already filled")


@pytest.mark.parametrize("qty", ["0.0012399", "0.00001", "0.0000199", "0.00000999", "0", "3"])
def test_a_quantity_rounds_down_to_the_step_alike(venues: Venues, qty: str) -> None:
    """Below one step is 0 on both (the router calls it dust), not an error on one of them."""
    paper, binance, _ = venues
    ours, theirs = (v.amount_to_precision("BTC/USDT", D(qty)) for v in (paper, binance))
    assert ours == theirs == floor_to_step(D(qty), D("0.00001"))


@pytest.mark.parametrize("price", ["61800.005", "61800.004", "61800.015", "95000.126", "180"])
def test_a_price_rounds_to_the_tick_alike(venues: Venues, price: str) -> None:
    """To the nearest tick, a half tick up, as ccxt rounds Binance's prices."""
    paper, binance, _ = venues
    assert paper.price_to_precision("BTC/USDT", D(price)) == binance.price_to_precision(
        "BTC/USDT", D(price)
    )
