"""What ccxt answers, read as Kobe's types: numbers, times, markets, orders and their fills.

Pure functions over ccxt's unified dicts (no ccxt import, no calls): every number through the
one bounded parser for outside numbers (:func:`engine.untrusted.parse_decimal`), every result
typed with ``Decimal`` fields. The bottom of the ccxt adapter's modules: it imports none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from engine.exchange.base import (
    BadAnswer,
    Fill,
    MarketRules,
    Order,
    OrderStatus,
    OrderType,
    Side,
)
from engine.untrusted import BadNumber, clean_text, parse_decimal

log = logging.getLogger(__name__)

ZERO = Decimal(0)
# A rebate (a negative fee) is at most this share of what was traded: maker rebates are a few
# hundredths of a percent where they exist at all.
MAX_REBATE = Decimal("0.01")
# A market's price tick and quantity step: exchanges use 1e-8 to 1000 or so. 1e-30 made the exit
# prices' rounding raise (decimal's 28 digits) once the entry had gone out, a step of 0 made ccxt
# assert: such a market is left out. A tick of 0 is Binance's "no tick" (its filter disabled).
MIN_INCREMENT = Decimal("1e-14")
MAX_INCREMENT = Decimal("1e9")
# Binance's MAX_NUM_ALGO_ORDERS (5 on spot): a whole number of open stop orders, at most this
MAX_STOP_ORDERS = 100_000

STATUS_MAP = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


def dec(value: Any, *, signed: bool = False, field: str = "exchange reply") -> Decimal | None:
    """A Decimal from what ccxt returns (str, int or float; never through binary), through the
    one bounded parser for outside numbers. A value that is not a plain, finite, bounded number,
    or a negative one where only ``signed`` values (fees) may be, fails the call
    (:class:`BadAnswer`, naming ``field``) rather than becoming zero."""
    if value is None or value == "":
        return None
    try:
        return parse_decimal(value, field, minimum=None if signed else ZERO)
    except BadNumber as exc:
        raise BadAnswer(f"the exchange answered a number Kobe refuses: {exc}") from None


def dec0(value: Any, *, signed: bool = False, field: str = "exchange reply") -> Decimal:
    found = dec(value, signed=signed, field=field)
    return ZERO if found is None else found


# An exchange's time in epoch milliseconds: one past 2100 is no time (10^20 ms made the order's
# read raise once the entry had gone out, its exits never placed), taken as none, like a missing one.
MAX_TIME_MS = 4_102_444_800_000


def utc_ms(value: Any) -> datetime:
    if isinstance(value, int | float) and 0 < value <= MAX_TIME_MS:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    return datetime.now(UTC)


def market_rules(m: Mapping[str, Any], tick_size: bool) -> MarketRules:
    """One ccxt market as Kobe's rules; ``tick_size``: ccxt's precision is an increment (its
    ``TICK_SIZE`` mode), else a number of decimal places."""
    precision = m.get("precision") or {}
    limits = m.get("limits") or {}
    amount = limits.get("amount") or {}
    cost = limits.get("cost") or {}

    def increment(value: Any) -> Decimal:
        found = dec(value)
        if found is None:
            return ZERO
        if tick_size:
            return found
        return Decimal(1).scaleb(-int(found))  # decimal places

    step = increment(precision.get("amount"))
    tick = increment(precision.get("price"))
    for what, value, zero_ok in (("tick size", tick, True), ("step size", step, False)):
        if not (MIN_INCREMENT <= value <= MAX_INCREMENT or (zero_ok and value == 0)):
            raise BadAnswer(
                f"{clean_text(m.get('symbol'))}: {what} {value} is outside {MIN_INCREMENT} .. "
                f"{MAX_INCREMENT}{' (or 0: no tick)' if zero_ok else ''}"
            )
    return MarketRules(
        symbol=m["symbol"],
        base=m["base"],
        quote=m["quote"],
        tick_size=tick,
        step_size=step,
        min_qty=dec(amount.get("min")) or step,
        min_notional=dec0(cost.get("min")),
        max_qty=dec(amount.get("max")),
        spot=bool(m.get("spot", True)),
        max_stop_orders=_max_stop_orders(m),
    )


def _max_stop_orders(m: Mapping[str, Any]) -> int | None:
    """Binance's MAX_NUM_ALGO_ORDERS filter of a market (``info.filters``), if it states one:
    how many stop orders may be open on the symbol. A value that is not a whole number from 1
    to :data:`MAX_STOP_ORDERS` leaves the market out (:class:`BadAnswer`)."""
    info = m.get("info")
    filters = info.get("filters") if isinstance(info, Mapping) else None
    for f in filters if isinstance(filters, list) else ():
        if isinstance(f, Mapping) and f.get("filterType") == "MAX_NUM_ALGO_ORDERS":
            what = f"{clean_text(m.get('symbol'))}: MAX_NUM_ALGO_ORDERS maxNumAlgoOrders"
            try:
                value = parse_decimal(
                    f.get("maxNumAlgoOrders"),
                    what,
                    minimum=Decimal(1),
                    maximum=Decimal(MAX_STOP_ORDERS),
                )
            except BadNumber as exc:
                raise BadAnswer(f"the exchange answered a number Kobe refuses: {exc}") from None
            if value != value.to_integral_value():
                raise BadAnswer(f"{what}: {value} is not a whole number")
            return int(value)
    return None


def order_type(o: Mapping[str, Any]) -> OrderType:
    info = o.get("info") or {}
    raw = str(info.get("type") or o.get("type") or "").lower()
    try:
        return OrderType(raw)
    except ValueError:
        return OrderType.MARKET if o.get("type") == "market" else OrderType.LIMIT


def checked_fee(
    fee: Decimal, asset: str, symbol: str, qty: Decimal, price: Decimal | None
) -> Decimal:
    """``fee`` if it can be the fee of ``qty`` of ``symbol`` at ``price``, else :class:`BadAnswer`.

    A fee in the base or the quote asset is at most what was traded in that asset, and a rebate
    (a negative fee) at most :data:`MAX_REBATE` of it; a fee in a third asset (BNB) is never a
    rebate. Exits are sized net of a base-asset fee: a rebate of 0.5 BTC answered for a fill of
    0.00015 BTC made Kobe place exits selling 0.50015 BTC, coins the position never held."""
    base, _, quote = symbol.partition("/")
    traded = qty if asset == base else qty * price if asset == quote and price else None
    if traded is None and fee >= 0:
        return fee
    if traded is None or fee > traded or -fee > traded * MAX_REBATE:
        raise BadAnswer(
            f"the exchange answered a fee of {fee} {asset} for {qty} {symbol}"
            f"{f' at {price}' if price else ''}, which no trade of that size can have"
        )
    return fee


def _fill(
    t: Mapping[str, Any], order_id: str, client_id: str, symbol: str, side: Side, when: Any = None
) -> Fill:
    """One ccxt trade as a fill of the order; ``when``: the order's time, for a trade without."""
    fee = t.get("fee") or {}
    qty = dec0(t.get("amount"))
    price = dec0(t.get("price"))
    if qty > 0 and price <= 0:
        raise BadAnswer(f"the exchange answered a fill of {qty} {symbol} at a price of {price}")
    asset = clean_text(fee.get("currency") or "")
    return Fill(
        order_id=order_id,
        client_id=client_id,
        symbol=symbol,
        side=side,
        qty=qty,
        price=price,
        fee=checked_fee(dec0(fee.get("cost"), signed=True), asset, symbol, qty, price),
        fee_asset=asset,
        time=utc_ms(t.get("timestamp") or when),
    )


def to_order(o: Mapping[str, Any], client_id: str = "") -> Order:
    """A ccxt order as Kobe's; ``client_id`` stands in when the answer names none."""
    info = o.get("info") or {}
    qty = dec0(o.get("amount"))
    filled = dec0(o.get("filled"))
    if 0 < qty < filled:  # 0.5 BTC answered filled for 0.00015: exits would sell coins not bought
        raise BadAnswer(f"the exchange answered {filled} filled of an order for {qty}")
    status = STATUS_MAP.get(str(o.get("status")), OrderStatus.UNKNOWN)
    if status is OrderStatus.OPEN and filled > 0:
        status = OrderStatus.PARTIALLY_FILLED
    type_ = order_type(o)
    fee, fee_asset = ZERO, ""
    fees = o.get("fees") or ([o["fee"]] if o.get("fee") else [])
    for f in fees:
        if f and f.get("cost") is not None:
            fee += dec0(f.get("cost"), signed=True)
            fee_asset = fee_asset or clean_text(f.get("currency") or "")
    try:
        side = Side(str(o.get("side")))
    except ValueError:
        raise BadAnswer(f"the exchange answered an order whose side is {o.get('side')!r}") from None
    # the exchange's words are data: an external order's client id is printed by `kobe orders`
    # (an escape in it retitled the terminal, a CR/LF forged a line); ccxt names an order of a
    # market it does not list by the exchange's own id for it, whatever its characters
    order_id = clean_text(o.get("id"))
    cid = clean_text(o.get("clientOrderId") or client_id)
    symbol = clean_text(o.get("symbol"))
    fills = tuple(
        _fill(t, order_id, cid, symbol, side, o.get("timestamp")) for t in (o.get("trades") or [])
    )
    list_id = info.get("orderListId")
    avg_price = dec(o.get("average")) if filled > 0 else None
    if avg_price is not None and avg_price <= 0:
        raise BadAnswer(f"the exchange answered {filled} {symbol} filled at a price of {avg_price}")
    price = None if type_ is OrderType.MARKET else dec(o.get("price"))
    fee = checked_fee(fee, fee_asset, symbol, filled, avg_price or price)
    return Order(
        id=order_id,
        client_id=cid,
        symbol=symbol,
        side=side,
        type=type_,
        qty=qty,
        price=price,
        filled=filled,
        avg_price=avg_price,
        status=status,
        created_at=utc_ms(o.get("timestamp")),
        fee=fee,
        fee_asset=fee_asset,
        stop_price=dec(o.get("triggerPrice") or o.get("stopPrice")) or None,
        list_id=None if list_id in (None, -1, "-1") else clean_text(list_id),
        fills=fills,
    )


def with_trade_fees(order: Order, trades: Iterable[Mapping[str, Any]]) -> Order:
    """``order`` with its fills and fees from its own ccxt trades, as charged (asset and
    amount); unchanged when there are none."""
    fills = tuple(_fill(t, order.id, order.client_id, order.symbol, order.side) for t in trades)
    if not fills:
        return order
    traded = sum((f.qty for f in fills), ZERO)
    if traded > order.filled:  # each fill's fee is bounded by its quantity: never beyond the order
        raise BadAnswer(f"the exchange answered trades of {traded} for {order.filled} filled")
    assets = {f.fee_asset for f in fills if f.fee_asset}
    if len(assets) > 1:
        log.warning("order %s: fees in several assets %s", order.id, sorted(assets))
    asset = next(iter(sorted(assets)), "")
    fee = sum((f.fee for f in fills if f.fee_asset == asset), ZERO)
    return replace(order, fee=fee, fee_asset=asset, fills=fills)
