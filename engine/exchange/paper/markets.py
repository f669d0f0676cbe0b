"""The paper venue's markets, their default price source and the filters every order meets.

Markets and their filters come from ``engine/data/paper_markets.json`` (Binance spot's
PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, PERCENT_PRICE_BY_SIDE, NOTIONAL, MAX_NUM_ORDERS and
MAX_NUM_ALGO_ORDERS values); orders breaking them are
refused with :class:`InvalidOrder` naming the filter and the values, exactly where Binance would
refuse (-1013). Nothing is rounded here: a quantity off the step or a price off the tick is
refused (the router rounds, once, for every venue). A market order's NOTIONAL is checked on the
average price, as Binance checks it, not on what it fills at; paper's average price is the last
price (Binance's: the average of the last 5 minutes' trades).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from engine.config import PaperConfig
from engine.exchange.base import Exchange, InvalidOrder, MarketRules, Side, check_precision
from engine.exchange.prices import (
    ExchangeTickerSource,
    PriceSource,
    SimSymbol,
    SimulatedFeed,
    TickerFetch,
)
from engine.untrusted import parse_decimal

MARKETS_FILE = "paper_markets.json"
MAX_OPEN_ORDERS = 100_000  # the bound of a market file's order counts
HUNDRED = Decimal(100)  # percent: the fees, the book's depth spread


def fmt(value: Decimal) -> str:
    """A decimal for a message: no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


@dataclass(frozen=True)
class BookParams:
    """The shape of a market's synthetic order book."""

    level_quote: Decimal  # quote held by one level (on average)
    level_gap_bps: Decimal  # distance between consecutive levels


@dataclass(frozen=True)
class PercentPriceBySide:
    """Binance's PERCENT_PRICE_BY_SIDE: a buy's price must lie between ``bid_down`` and
    ``bid_up`` times the average price, a sell's between ``ask_down`` and ``ask_up`` times it."""

    bid_up: Decimal = Decimal(5)
    bid_down: Decimal = Decimal("0.2")
    ask_up: Decimal = Decimal(5)
    ask_down: Decimal = Decimal("0.2")


@dataclass(frozen=True)
class OrderLimits:
    """Binance's limits beyond the step, the tick and the minimums; None: not enforced (a market
    made at run time, on the paper DEX venue, has none)."""

    min_price: Decimal | None = None  # PRICE_FILTER minPrice: a price or stop price
    max_price: Decimal | None = None  # PRICE_FILTER maxPrice
    max_notional: Decimal | None = None  # NOTIONAL maxNotional: limit orders only
    market_max_qty: Decimal | None = None  # MARKET_LOT_SIZE maxQty: market orders
    max_num_orders: int | None = None  # MAX_NUM_ORDERS: open orders on the symbol (OCO: two)
    max_num_algo_orders: int | None = None  # MAX_NUM_ALGO_ORDERS: open stop orders (OCO: one)


@dataclass(frozen=True)
class PaperMarket:
    rules: MarketRules
    start_price: Decimal
    annual_volatility: Decimal
    book: BookParams
    percent_price: PercentPriceBySide = PercentPriceBySide()
    limits: OrderLimits = OrderLimits()


def _numbers(symbol: str, market: Mapping[str, Any]) -> Callable[..., Decimal]:
    """A reader of one market's numbers: finite, bounded, positive (or at least 0)."""

    def num(key: str, value: object = None, *, positive: bool = True) -> Decimal:
        raw = market[key] if value is None else value
        return parse_decimal(raw, f"{symbol}.{key}", positive=positive, minimum=Decimal(0))

    return num


def _limits(symbol: str, market: Mapping[str, Any]) -> OrderLimits:
    """A market's optional limits: each absent key is a limit not enforced."""
    num = _numbers(symbol, market)

    def opt(key: str) -> Decimal | None:
        return None if market.get(key) is None else num(key)

    def count(key: str) -> int | None:
        value = opt(key)
        if value is not None and (value != value.to_integral_value() or value > MAX_OPEN_ORDERS):
            raise ValueError(f"{symbol}.{key}: must be a whole number up to {MAX_OPEN_ORDERS}")
        return None if value is None else int(value)

    return OrderLimits(
        min_price=opt("min_price"),
        max_price=opt("max_price"),
        max_notional=opt("max_notional"),
        market_max_qty=opt("market_max_qty"),
        max_num_orders=count("max_num_orders"),
        max_num_algo_orders=count("max_num_algo_orders"),
    )


def load_paper_markets(path: Path | None = None) -> dict[str, PaperMarket]:
    """The markets shipped with the project (or those of ``path``), keyed by symbol."""
    if path is None:
        text = resources.files("engine").joinpath("data", MARKETS_FILE).read_text("utf-8")
        source = f"engine/data/{MARKETS_FILE}"
    else:
        text = path.read_text("utf-8")
        source = str(path)
    try:
        raw = json.loads(text, parse_float=Decimal)
        out: dict[str, PaperMarket] = {}
        for symbol, m in raw["markets"].items():
            num = _numbers(symbol, m)
            max_qty = m.get("max_qty")
            limits = _limits(symbol, m)
            rules = MarketRules(
                symbol=symbol,
                base=str(m["base"]),
                quote=str(m["quote"]),
                tick_size=num("tick_size"),
                step_size=num("step_size"),
                min_qty=num("min_qty", positive=False),
                min_notional=num("min_notional", positive=False),
                max_qty=None if max_qty is None else num("max_qty"),
                max_stop_orders=limits.max_num_algo_orders,
            )
            out[symbol] = PaperMarket(
                rules=rules,
                start_price=num("start_price"),
                annual_volatility=num("annual_volatility", positive=False),
                book=BookParams(num("book_level_quote"), num("book_level_gap_bps")),
                percent_price=PercentPriceBySide(
                    **{
                        k: num("percent_price_by_side", v)
                        for k, v in m.get("percent_price_by_side", {}).items()
                    }
                ),
                limits=limits,
            )
    except (KeyError, TypeError, ValueError, ArithmeticError, RecursionError) as exc:
        raise ValueError(f"{source}: bad market file: {exc!r}") from None
    return out


def default_prices(
    config: PaperConfig,
    markets: Mapping[str, PaperMarket],
    tickers: Exchange | TickerFetch | None,
    *,
    start: datetime,
) -> PriceSource:
    """The source ``paper.price_source`` names for ``markets``: the seeded random walk, or the
    ``tickers`` of an exchange (an :class:`Exchange` or a callable returning a ticker)."""
    if config.price_source == "exchange":
        if tickers is None:
            raise ValueError(
                "paper.price_source = 'exchange' needs a ticker source "
                "(pass tickers=<an Exchange or a callable returning a Ticker>)"
            )
        ticks = {s: m.rules.tick_size for s, m in markets.items()}
        return ExchangeTickerSource(tickers, markets, tick_sizes=ticks, start=start)
    specs = {
        s: SimSymbol(m.start_price, m.rules.tick_size, m.annual_volatility)
        for s, m in markets.items()
    }
    return SimulatedFeed(specs, start=start, seed=config.seed)


# ---------------------------------------------------------------------------------------------
# Filters


def check_filters(
    market: PaperMarket,
    average: Decimal,
    side: Side,
    qty: Decimal,
    price: Decimal | None,
    notional_price: Decimal,
    stop: Decimal | None = None,
) -> None:
    """Binance's filters, in its order: LOT_SIZE, MARKET_LOT_SIZE (a market order, ``price``
    None), PRICE_FILTER (tick, then range), PERCENT_PRICE_BY_SIDE (on a limit price, against the
    ``average`` price), NOTIONAL (at ``notional_price``; its maximum on a limit order only)."""
    rules, limits = market.rules, market.limits
    if not qty.is_finite() or qty <= 0:
        raise InvalidOrder(f"quantity must be positive (got {qty})")
    prices = tuple(p for p in (price, stop) if p is not None)
    for p in prices:
        if not p.is_finite() or p <= 0:
            raise InvalidOrder(f"price must be positive (got {p})")
    if qty < rules.min_qty:
        raise InvalidOrder(
            f"LOT_SIZE: quantity {fmt(qty)} is below the minimum quantity "
            f"{fmt(rules.min_qty)} ({rules.symbol})"
        )
    _at_most(market, "LOT_SIZE: quantity", qty, rules.max_qty)
    if price is None:
        _at_most(market, "MARKET_LOT_SIZE: a market order's quantity", qty, limits.market_max_qty)
    check_precision(rules, qty, prices)
    for p in prices:
        check_price_range(market, p)
    if price is not None:
        check_percent_price(market, average, side, price)
    notional = qty * notional_price
    if notional < rules.min_notional:
        raise InvalidOrder(
            f"NOTIONAL: notional {fmt(notional)} {rules.quote} "
            f"({fmt(qty)} x {fmt(notional_price)}) is below the minimum notional "
            f"{fmt(rules.min_notional)} {rules.quote} ({rules.symbol})"
        )
    if price is not None:  # a market order's has no maximum (applyMaxToMarket false)
        _at_most(market, f"NOTIONAL: notional ({rules.quote})", notional, limits.max_notional)


def _at_most(market: PaperMarket, what: str, value: Decimal, most: Decimal | int | None) -> None:
    """Refuse ``value`` above ``most`` (None: no maximum); ``what`` names the filter and value."""
    if most is not None and value > most:
        raise InvalidOrder(
            f"{what} {fmt(value)} is above the maximum {fmt(Decimal(most))} ({market.rules.symbol})"
        )


def check_price_range(market: PaperMarket, price: Decimal) -> None:
    """PRICE_FILTER's minPrice and maxPrice (its tickSize: :func:`check_precision`)."""
    low, high = market.limits.min_price, market.limits.max_price
    if (low is not None and price < low) or (high is not None and price > high):
        raise InvalidOrder(
            f"PRICE_FILTER: price {fmt(price)} is outside {fmt(low or Decimal(0))}-"
            f"{fmt(high) if high is not None else 'any'} ({market.rules.symbol})"
        )


def check_open_orders(market: PaperMarket, open_orders: int, open_stops: int, stop: bool) -> None:
    """MAX_NUM_ORDERS and MAX_NUM_ALGO_ORDERS, for a new order (``stop``: an OCO, two orders and
    one stop) on a symbol that holds ``open_orders`` open orders, ``open_stops`` of them stops."""
    limits = market.limits
    orders, stops = open_orders + (2 if stop else 1), open_stops + (1 if stop else 0)
    what = "MAX_NUM_ORDERS: open orders with this one (an OCO is two)"
    _at_most(market, what, Decimal(orders), limits.max_num_orders)
    what = "MAX_NUM_ALGO_ORDERS: open stop orders with this one (an OCO's stop-loss is one)"
    _at_most(market, what, Decimal(stops), limits.max_num_algo_orders)


def check_percent_price(market: PaperMarket, average: Decimal, side: Side, price: Decimal) -> None:
    rules, band = market.rules, market.percent_price
    up, down = (band.bid_up, band.bid_down) if side is Side.BUY else (band.ask_up, band.ask_down)
    low, high = average * down, average * up
    if not low <= price <= high:
        raise InvalidOrder(
            f"PERCENT_PRICE_BY_SIDE: a {side.value} price {fmt(price)} must lie between "
            f"{fmt(low)} and {fmt(high)} ({fmt(down)}x-{fmt(up)}x the average price "
            f"{fmt(average)}, {rules.symbol})"
        )
