"""The one ``Exchange`` interface, its typed results (Decimal fields) and its error hierarchy.

Two kinds of venue implement it: the in-process ``PaperExchange`` and the ``CcxtExchange`` adapter
(binance, bybit, okx). Callers never see a raw ccxt dict or a ccxt exception.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from engine.money import ceil_to_step, floor_to_step, is_multiple


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP_LOSS_LIMIT = "stop_loss_limit"  # an OCO's stop leg
    LIMIT_MAKER = "limit_maker"  # an OCO's take-profit leg


class OrderStatus(StrEnum):
    OPEN = "open"  # accepted, resting, nothing filled yet
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # outcome not known yet (timeout, 5xx): look it up, never re-send blindly

    @property
    def is_open(self) -> bool:
        return self is OrderStatus.OPEN or self is OrderStatus.PARTIALLY_FILLED


@dataclass(frozen=True)
class MarketRules:
    """A market's trading rules, from the exchange's own market data."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal  # price increment
    step_size: Decimal  # quantity increment
    min_qty: Decimal
    min_notional: Decimal  # min price * qty, in quote
    max_qty: Decimal | None = None
    spot: bool = True
    # Binance's MAX_NUM_ALGO_ORDERS: open stop orders on the symbol (an OCO's stop leg is one);
    # None where the venue states no such limit
    max_stop_orders: int | None = None


@dataclass(frozen=True)
class Capabilities:
    """What the venue can do for protective exits, and how late an order's request may land."""

    native_oco: bool  # one order list: take-profit + stop-loss, one cancels the other
    attached_tp_sl: bool  # TP/SL attached to the entry order (Bybit, OKX through ccxt)
    attached_on_market: bool = True  # ... to a market entry too (not on Bybit spot: limit only)
    landing_window_s: float = 0.0  # an unanswered order may still be placed this long (0: paper)


@dataclass(frozen=True)
class Ticker:
    symbol: str
    last: Decimal
    bid: Decimal | None
    ask: Decimal | None
    time: datetime


@dataclass(frozen=True)
class Fill:
    order_id: str
    client_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    time: datetime


@dataclass(frozen=True)
class Order:
    id: str  # the exchange's id
    client_id: str  # ours, set before the first attempt
    symbol: str
    side: Side
    type: OrderType
    qty: Decimal
    price: Decimal | None  # limit price; None for market
    filled: Decimal
    avg_price: Decimal | None
    status: OrderStatus
    created_at: datetime
    fee: Decimal = Decimal(0)
    fee_asset: str = ""
    stop_price: Decimal | None = None
    list_id: str | None = None  # the OCO it belongs to
    fills: tuple[Fill, ...] = field(default=(), compare=False)

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled


@dataclass(frozen=True)
class AttachedRef:
    """An entry whose TP/SL the exchange holds: its ids, and its legs' ids once known."""

    entry_id: str
    entry_client_id: str
    leg_ids: Mapping[str, str] = field(default_factory=dict)  # "tp"/"sl" -> exchange id


@dataclass(frozen=True)
class OcoResult:
    """A native OCO: the take-profit leg and the stop-loss leg, one cancels the other."""

    list_id: str
    take_profit: Order
    stop_loss: Order


@dataclass(frozen=True)
class Position:
    """Spot: the base asset held for a symbol, with its average entry price when known."""

    symbol: str
    qty: Decimal
    entry_price: Decimal | None


# ---------------------------------------------------------------------------------------------
# Errors


class ExchangeError(Exception):
    """Base of every error an exchange adapter raises."""


class AuthenticationError(ExchangeError):
    """Wrong or missing key, bad signature, or no permission. Never retried."""


class InsufficientFunds(ExchangeError):
    """The account cannot fund the order."""


class InvalidOrder(ExchangeError):
    """The exchange refused the order itself (filters, precision, min notional). Never retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DuplicateClientId(InvalidOrder):
    """The exchange refused the order because it already holds one with its client id (Binance
    "Duplicate order sent.", Bybit 170141 / 110072 / 10014, OKX 51016): an earlier request of
    the same order may have landed. Never a plain refusal: the order is looked up by that id."""


class OrderNotFound(ExchangeError):
    """No such order (unknown id, or already gone)."""


class RateLimited(ExchangeError):
    """429 or 418: too many requests. ``retry_after`` is the exchange's wait, in seconds."""

    def __init__(self, message: str, retry_after: float | None = None, banned: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.banned = banned


class ExchangeUnavailable(ExchangeError):
    """5xx or maintenance."""


class BadAnswer(ExchangeUnavailable):
    """The exchange answered something Kobe cannot read: not JSON (cut short, an HTML page), the
    wrong shape, a number out of bounds, or another order than the one asked for. What it did is
    not known: a read asks again, a write is looked up by its client id, never sent blindly."""


class NetworkError(ExchangeError):
    """The request did not complete (connection refused, reset)."""


class RequestTimeout(NetworkError):
    """No answer within the client timeout. For a write, the outcome is unknown."""


class NotSupported(ExchangeError):
    """The venue cannot do this (e.g. a native OCO where it has none)."""


class Stopping(BaseException):
    """Raised by an engine's retry pause when the engine is asked to stop: the pause ends at
    once and the step unwinds (a ``BaseException``, like ``KeyboardInterrupt``: no ``except
    Exception`` takes it for an exchange fault). What was sent is journaled already."""


class OrderOutcomeUnknown(ExchangeError):
    """A write whose outcome could not be established even after looking it up."""

    def __init__(self, client_id: str, reason: str) -> None:
        super().__init__(f"order {client_id}: outcome unknown ({reason})")
        self.client_id = client_id
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Rules every venue applies to what it is sent


# The stop-loss leg's limit lies this far beyond its stop unless the caller sets it.
DEFAULT_STOP_LIMIT_OFFSET = Decimal("0.005")


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def check_precision(rules: MarketRules, qty: Decimal, prices: tuple[Decimal, ...] = ()) -> None:
    """Refuse a quantity off the step or a price off the tick, as Binance does (-1013 filter
    failure): the router rounds once, and no venue rounds again at send time."""
    if not is_multiple(qty, rules.step_size):
        raise InvalidOrder(
            f"LOT_SIZE: quantity {_plain(qty)} is not a multiple of the step size "
            f"{_plain(rules.step_size)} ({rules.symbol})"
        )
    for price in prices:
        if not is_multiple(price, rules.tick_size):
            raise InvalidOrder(
                f"PRICE_FILTER: price {_plain(price)} is not a multiple of the tick size "
                f"{_plain(rules.tick_size)} ({rules.symbol})"
            )


def stop_limit_price(
    rules: MarketRules, side: Side, stop: Decimal, offset: Decimal = DEFAULT_STOP_LIMIT_OFFSET
) -> Decimal:
    """The limit of a stop leg: ``offset`` beyond the stop (below it for a sell, above for a
    buy), on the tick and rounded away from the stop, so it is never nearer than asked."""
    if side is Side.SELL:
        return floor_to_step(stop * (1 - offset), rules.tick_size)
    return ceil_to_step(stop * (1 + offset), rules.tick_size)


# ---------------------------------------------------------------------------------------------
# The interface


class ExchangeReader(ABC):
    """What every venue answers without changing anything: markets, balances, orders, prices.

    Read-only commands (``kobe orders``, ``positions``, ``keys --ping``, the unlock's balance
    check) hold only this: a :class:`ReadOnlyExchange`, which has no way to create or cancel.
    """

    name: str

    @abstractmethod
    def load_markets(self) -> dict[str, MarketRules]:
        """Load (once) and return the rules of every market, keyed by unified symbol."""

    def market(self, symbol: str) -> MarketRules:
        markets = self.load_markets()
        try:
            return markets[symbol]
        except KeyError:
            raise InvalidOrder(f"unknown symbol {symbol}") from None

    @abstractmethod
    def capabilities(self, symbol: str) -> Capabilities: ...

    @abstractmethod
    def get_balance(self, asset: str) -> Decimal:
        """The free (available) balance of ``asset``."""

    def get_balances(self, assets: Iterable[str]) -> dict[str, Decimal]:
        """The free balance of each of ``assets`` (a real exchange: from one request)."""
        return {asset: self.get_balance(asset) for asset in assets}

    @abstractmethod
    def fetch_ticker(self, symbol: str) -> Ticker: ...

    @abstractmethod
    def fetch_order(self, id: str, symbol: str) -> Order: ...

    @abstractmethod
    def fetch_order_by_client_id(self, client_id: str, symbol: str) -> Order | None:
        """The order with our client id, or None when the exchange has no such order."""

    @abstractmethod
    def fetch_open_orders(self, symbol: str | None = None) -> list[Order]: ...

    def fetch_attached_exits(
        self,
        symbol: str,
        entry_id: str,
        entry_client_id: str,
        leg_ids: Mapping[str, str] | None = None,
    ) -> list[Order]:
        """The TP/SL the exchange holds for one entry (attached to it when it was placed), as
        orders under Kobe's ids (``<entry>tp``, ``<entry>sl``): armed legs open, a leg that
        fired as the order it placed, a leg its sibling's fire removed as canceled. ``leg_ids``:
        the legs' own exchange ids where known (``tp``/``sl``), looked up by id when they are not
        on the first page of a list. Empty where exits are never attached to entries (paper,
        Binance)."""
        return []

    def fetch_attached_exits_of(
        self, symbol: str, refs: Sequence[AttachedRef]
    ) -> dict[str, list[Order]]:
        """:meth:`fetch_attached_exits` for several entries on one symbol, by entry client id
        (a venue may read its list of armed legs once for all of them)."""
        return {
            r.entry_client_id: self.fetch_attached_exits(
                symbol, r.entry_id, r.entry_client_id, r.leg_ids
            )
            for r in refs
        }

    @abstractmethod
    def fetch_positions(self, symbol: str | None = None) -> list[Position]: ...

    @abstractmethod
    def amount_to_precision(self, symbol: str, qty: Decimal) -> Decimal:
        """``qty`` rounded down to the market's step size (ccxt's helper on ccxt venues)."""

    @abstractmethod
    def price_to_precision(self, symbol: str, price: Decimal) -> Decimal:
        """``price`` rounded to the market's tick size (ccxt's helper on ccxt venues)."""

    @abstractmethod
    def ping(self) -> float:
        """Round trip to the venue's time endpoint, in milliseconds."""

    def can_withdraw(self) -> bool | None:
        """Whether the API key may withdraw funds; None when the venue does not say."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and flush state."""


class Exchange(ExchangeReader):
    """A venue Kobe can trade on: the reads, plus creating and cancelling orders.

    Built only through the gate (:func:`engine.exchange.factory.build_exchange`); every send goes
    through :class:`engine.router.Router`, which journals and audits it.
    """

    @abstractmethod
    def create_order(
        self,
        symbol: str,
        side: Side,
        type: OrderType,
        qty: Decimal,
        price: Decimal | None = None,
        params: dict[str, Any] | None = None,
    ) -> Order:
        """Place an order. ``params['client_id']`` sets our client order id (else one is made).

        Never re-sent blindly: after a timeout or 5xx the order is looked up by client id first.
        """

    def market_buy_slippage_bps(self, symbol: str, quote: Decimal) -> Decimal:
        """How far above the ask, in basis points, the venue knows a market buy spending
        ``quote`` would fill. The router sizes a market buy for this or
        ``router.market_slippage_bps``, whichever is more. A real exchange cannot know (its book
        moves between the ticker and the order): 0, the configured allowance counts."""
        return Decimal(0)

    @abstractmethod
    def create_oco(
        self,
        symbol: str,
        side: Side,
        qty: Decimal,
        take_profit: Decimal,
        stop_loss: Decimal,
        params: dict[str, Any] | None = None,
    ) -> OcoResult:
        """A native OCO exit; raises :class:`NotSupported` where the venue has none."""

    @abstractmethod
    def cancel_order(self, id: str, symbol: str) -> Order:
        """Cancel; an order already filled or gone raises :class:`OrderNotFound` saying so."""

    def cancel_attached_exits(
        self,
        symbol: str,
        entry_id: str,
        entry_client_id: str,
        leg_ids: Mapping[str, str] | None = None,
    ) -> list[Order]:
        """Cancel the armed TP/SL the exchange holds for one entry; returns them, cancelled.
        None armed: :class:`OrderNotFound`."""
        raise NotSupported(f"{self.name}: no TP/SL attached to entries here")


class ReadOnlyExchange(ExchangeReader):
    """A venue seen through its reads only. It has no ``create_order``, ``create_oco`` or
    ``cancel_order``: code that holds one cannot send, whatever it calls.

    The venue inside is built for reading (for ccxt, a client whose HTTP layer refuses anything
    but GET: :meth:`engine.exchange.ccxt_exchange.CcxtExchange.reader_from_settings`).
    """

    __slots__ = ("__venue", "name")

    def __init__(self, venue: ExchangeReader) -> None:
        self.__venue = venue
        self.name = venue.name

    def __repr__(self) -> str:
        return f"ReadOnlyExchange({self.name})"

    def load_markets(self) -> dict[str, MarketRules]:
        return self.__venue.load_markets()

    def capabilities(self, symbol: str) -> Capabilities:
        return self.__venue.capabilities(symbol)

    def get_balance(self, asset: str) -> Decimal:
        return self.__venue.get_balance(asset)

    def get_balances(self, assets: Iterable[str]) -> dict[str, Decimal]:
        return self.__venue.get_balances(assets)

    def fetch_ticker(self, symbol: str) -> Ticker:
        return self.__venue.fetch_ticker(symbol)

    def fetch_order(self, id: str, symbol: str) -> Order:
        return self.__venue.fetch_order(id, symbol)

    def fetch_order_by_client_id(self, client_id: str, symbol: str) -> Order | None:
        return self.__venue.fetch_order_by_client_id(client_id, symbol)

    def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        return self.__venue.fetch_open_orders(symbol)

    def fetch_attached_exits(
        self,
        symbol: str,
        entry_id: str,
        entry_client_id: str,
        leg_ids: Mapping[str, str] | None = None,
    ) -> list[Order]:
        return self.__venue.fetch_attached_exits(symbol, entry_id, entry_client_id, leg_ids)

    def fetch_attached_exits_of(
        self, symbol: str, refs: Sequence[AttachedRef]
    ) -> dict[str, list[Order]]:
        return self.__venue.fetch_attached_exits_of(symbol, refs)

    def fetch_positions(self, symbol: str | None = None) -> list[Position]:
        return self.__venue.fetch_positions(symbol)

    def amount_to_precision(self, symbol: str, qty: Decimal) -> Decimal:
        return self.__venue.amount_to_precision(symbol, qty)

    def price_to_precision(self, symbol: str, price: Decimal) -> Decimal:
        return self.__venue.price_to_precision(symbol, price)

    def ping(self) -> float:
        return self.__venue.ping()

    def can_withdraw(self) -> bool | None:
        return self.__venue.can_withdraw()

    def close(self) -> None:
        self.__venue.close()
