"""The synthetic order book a paper market's orders meet.

A market order walks a synthetic order book built around the price: the first level sits at the
price (on the tick), each further level ``book_level_gap_bps`` further, each holding about
``book_level_quote`` of quote (a seeded 50-150 % of it). A bigger order reaches deeper levels and
gets a worse average price; a market order also fills ``paper.slippage_bps`` worse than each
level (latency, impact), and only a market order: the ticker's bid and ask, limit orders and
stops meet the book as it is, so sizing, crossing and fills of limits are the exchange's. The
book is drawn from the seed, the symbol, the feed time and the price, so it is the same for the
same run and changes as prices move.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from itertools import count

from engine.exchange.base import Side
from engine.exchange.paper.markets import HUNDRED, PaperMarket
from engine.money import BPS, ZERO, ceil_to_step, floor_to_step

Level = tuple[Decimal, Decimal]  # (price, qty)


def book_levels(
    market: PaperMarket,
    taker: Side,
    *,
    mid: Decimal,
    seed: int,
    time: datetime,
    slippage: Decimal | None = None,
) -> Iterator[Level]:
    """(price, qty) levels a ``taker`` order meets around ``mid``: asks upward for a buy, bids
    downward.

    ``slippage`` (a fraction): as a market order meets them, each level that much worse (the same
    quantities). The ticker, limit orders and stops see the book as it is (None).
    """
    tick, step = market.rules.tick_size, market.rules.step_size
    rng = random.Random(f"{seed}|{market.rules.symbol}|{taker.value}|{time.isoformat()}|{mid}")
    previous: Decimal | None = None
    for i in count():
        offset = Decimal(i) * market.book.level_gap_bps / BPS
        if taker is Side.BUY:
            price = ceil_to_step(mid * (1 + offset), tick)
            if previous is not None and price <= previous:
                price = previous + tick
        else:
            price = floor_to_step(mid * (1 - offset), tick)
            if previous is not None and price >= previous:
                price = previous - tick
            price = max(price, tick)
        previous = price
        depth = market.book.level_quote * Decimal(rng.randint(50, 150)) / HUNDRED
        qty = max(floor_to_step(depth / price, step), step)
        if slippage is not None and taker is Side.BUY:
            price = ceil_to_step(price * (1 + slippage), tick)
        elif slippage is not None:
            price = max(floor_to_step(price * (1 - slippage), tick), tick)
        yield price, qty


def walk(levels: Iterable[Level], taker: Side, qty: Decimal, limit: Decimal | None) -> list[Level]:
    """The (price, qty) parts a taker order of ``qty`` gets from ``levels``, never beyond
    ``limit``."""
    parts: list[Level] = []
    left = qty
    for price, depth in levels:
        if limit is not None and (price > limit if taker is Side.BUY else price < limit):
            break
        take = min(left, depth)
        parts.append((price, take))
        left -= take
        if left <= 0:
            break
    return parts


def crossing_liquidity(levels: Iterable[Level], taker: Side, price: Decimal) -> Decimal:
    """What a resting limit order at ``price`` can fill this step: the ``levels`` it crosses
    (at least the first), those a taker order on its side would meet."""
    total = ZERO
    for i, (level, depth) in enumerate(levels):
        crosses = level <= price if taker is Side.BUY else level >= price
        if i > 0 and not crosses:
            break
        total += depth
    return total


def taker_need(side: Side, parts: list[Level]) -> Decimal:
    """What a taker fill of ``parts`` costs: quote for a buy (its fee comes out of the base it
    receives), base for a sell."""
    if side is Side.BUY:
        return sum((q * p for p, q in parts), ZERO)
    return sum((q for _, q in parts), ZERO)
