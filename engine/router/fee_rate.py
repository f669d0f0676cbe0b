"""A fee charged in a third asset (BNB on Binance): its price in the quote asset."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from engine.exchange.base import ExchangeError, ExchangeReader, Order
from engine.router.orders import fmt_qty


def third_asset(o: Order) -> bool:
    """Whether ``o`` was charged a fee in neither its base nor its quote asset."""
    return o.fee > 0 and bool(o.fee_asset) and o.fee_asset not in o.symbol.split("/")


def fee_rate(
    exchange: ExchangeReader, o: Order, on_alert: Callable[[str, str, str], None]
) -> Decimal | None:
    """The price of ``o``'s third-asset fee in its quote asset, from the exchange's ticker of
    FEE/QUOTE (the router reads it once per order and journals it with each of its events: the
    book replays it, never the network). None with an alert when no price can be had: that fee
    is not counted as 0 silently."""
    quote = o.symbol.partition("/")[2]
    pair = f"{o.fee_asset}/{quote}"
    try:
        last = exchange.fetch_ticker(pair).last
        if not last.is_finite() or last <= 0:
            raise ExchangeError(f"{pair}: no usable last price ({last})")
        return last
    except ExchangeError as exc:
        on_alert(
            "error",
            "fee_unpriced",
            f"{o.symbol} order {o.client_id}: its fee {fmt_qty(o.fee)} {o.fee_asset} cannot be "
            f"converted to {quote} (no {pair} price: {exc}); it is left out of the trade's "
            f"fees and shown apart (kobe positions: fees_unpriced)",
        )
        return None
