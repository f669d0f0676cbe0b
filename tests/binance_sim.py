"""A small Binance spot REST simulator for contract tests: real HTTP on 127.0.0.1, real signatures.

It speaks the subset of Binance's spot API that ``CcxtExchange`` uses (exchange info, account,
order create/query/cancel, open orders, tickers, time, ping, OCO order list), checks API keys and
HMAC-SHA256 signatures the way Binance does, keeps balances and orders, counts the orders it
created, and injects faults on demand (:meth:`BinanceSim.inject`).

The exchange's rules, as Binance spot documents them: filters LOT_SIZE, PRICE_FILTER,
PERCENT_PRICE_BY_SIDE (a limit price against the average price) and NOTIONAL (a market order's
on the average price, not its fill price), each refused with -1013 "Filter failure: <NAME>";
commission per trade in the asset received (base for a buy, quote for a sell), rounded down to 8
decimals, or in a third asset when asked (``commission_asset="BNB"``: paying fees in BNB); an order book with depth (:meth:`BinanceSim.set_book`) that market orders and crossing
limits walk, the rest of a limit resting at its price.

Nothing here imports the engine: it is the other side of the wire.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import parse_qsl

from tests.sim_core import ApiError, Fault, SimServer

API_KEY = "sim-key-4f1c2a9e7b"
API_SECRET = "sim-secret-9d8e7f6a5b4c3d2e1f0a"

SIGNED_PATHS = {
    "/api/v3/account",
    "/api/v3/order",
    "/api/v3/openOrders",
    "/api/v3/orderList/oco",
    "/api/v3/myTrades",
    "/sapi/v1/account/apiRestrictions",
}

# Binance's error codes used here.
ERR_UNKNOWN = -1000
ERR_TIMESTAMP = -1021
ERR_SIGNATURE = -1022
ERR_FILTER = -1013
ERR_MANDATORY = -1102
ERR_BAD_SYMBOL = -1121
ERR_REJECTED = -2010
ERR_CANCEL_REJECTED = -2011
ERR_NO_SUCH_ORDER = -2013
ERR_KEY_FORMAT = -2014
ERR_KEY_INVALID = -2015


def binance_signature(secret: str, payload: str) -> str:
    """HMAC-SHA256 of ``payload`` (query string then body, as sent) keyed by ``secret``, in hex."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _fmt(value: Decimal) -> str:
    return f"{value:.8f}"


@dataclass(frozen=True)
class SymbolSpec:
    symbol: str  # BTCUSDT
    base: str
    quote: str
    price: Decimal
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    min_notional: Decimal
    max_qty: Decimal = Decimal(9000)
    bid_up: Decimal = Decimal(5)  # PERCENT_PRICE_BY_SIDE multipliers
    bid_down: Decimal = Decimal("0.2")
    ask_up: Decimal = Decimal(5)
    ask_down: Decimal = Decimal("0.2")
    # None: the filter is not listed (disabled), as on a symbol that has no such filter
    market_max_qty: Decimal | None = None  # MARKET_LOT_SIZE maxQty (its minQty and step: 0)
    min_price: Decimal | None = None  # PRICE_FILTER minPrice; None: the tick
    max_price: Decimal = Decimal(1_000_000)  # PRICE_FILTER maxPrice
    max_notional: Decimal = Decimal(9_000_000)  # NOTIONAL maxNotional (applyMaxToMarket: false)
    max_num_orders: int | None = None  # MAX_NUM_ORDERS: open orders on the symbol
    max_num_algo_orders: int | None = None  # MAX_NUM_ALGO_ORDERS: open stop orders on it


Level = tuple[Decimal, Decimal]  # (price, qty)

COMMISSION = Decimal("0.00000001")  # commission precision: 8 decimals
# the "algo" orders MAX_NUM_ALGO_ORDERS counts (Binance's filters documentation)
ALGO_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")


DEFAULT_SYMBOLS = (
    SymbolSpec(
        "BTCUSDT",
        "BTC",
        "USDT",
        Decimal("95000"),
        Decimal("0.01"),
        Decimal("0.00001"),
        Decimal("0.00001"),
        Decimal(5),
    ),
    SymbolSpec(
        "ETHUSDT",
        "ETH",
        "USDT",
        Decimal("3500"),
        Decimal("0.01"),
        Decimal("0.0001"),
        Decimal("0.0001"),
        Decimal(5),
    ),
    SymbolSpec(
        "SOLUSDT",
        "SOL",
        "USDT",
        Decimal("180"),
        Decimal("0.01"),
        Decimal("0.001"),
        Decimal("0.001"),
        Decimal(5),
    ),
)


@dataclass
class SimOrder:
    order_id: int
    client_id: str
    symbol: str
    side: str  # BUY / SELL
    type: str  # MARKET / LIMIT / LIMIT_MAKER / STOP_LOSS_LIMIT
    qty: Decimal
    price: Decimal
    stop_price: Decimal
    status: str
    executed: Decimal
    quote: Decimal
    time_ms: int
    list_id: int = -1
    fills: list[dict[str, str]] = field(default_factory=list)
    makers: list[bool] = field(default_factory=list)  # per fill: a maker's (at rest) or a taker's

    def as_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": self.list_id,
            "clientOrderId": self.client_id,
            "price": _fmt(self.price),
            "origQty": _fmt(self.qty),
            "executedQty": _fmt(self.executed),
            "cummulativeQuoteQty": _fmt(self.quote),
            "status": self.status,
            "timeInForce": "GTC",
            "type": self.type,
            "side": self.side,
            "stopPrice": _fmt(self.stop_price),
            "icebergQty": "0.00000000",
            "time": self.time_ms,
            "updateTime": self.time_ms,
            "isWorking": self.status in ("NEW", "PARTIALLY_FILLED"),
            "workingTime": self.time_ms,
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "NONE",
        }

    def as_ack(self) -> dict[str, Any]:
        data = self.as_json()
        data["transactTime"] = self.time_ms
        data["fills"] = self.fills
        return data


class BinanceSim(SimServer):
    """The simulator. ``with BinanceSim() as sim:`` starts it; ``sim.url`` is its base."""

    def __init__(
        self,
        api_key: str = API_KEY,
        secret: str = API_SECRET,
        balances: dict[str, Decimal] | None = None,
        symbols: tuple[SymbolSpec, ...] = DEFAULT_SYMBOLS,
        fee_rate: Decimal = Decimal("0.001"),
        clock_offset_ms: int = 0,
        maker_fee_rate: Decimal | None = None,
        commission_asset: str = "",
        commission_asset_price: Decimal = Decimal(600),
    ) -> None:
        super().__init__(clock_offset_ms)
        self.api_key = api_key
        self.secret = secret
        self.balances: dict[str, Decimal] = dict(
            balances if balances is not None else {"USDT": Decimal(10_000), "BTC": Decimal(1)}
        )
        self.locked: dict[str, Decimal] = {}
        self.symbols = {s.symbol: s for s in symbols}
        self.prices = {s.symbol: s.price for s in symbols}
        self.avg_prices: dict[str, Decimal] = {}  # /api/v3/avgPrice; the last price when unset
        self.books: dict[str, tuple[list[Level], list[Level]]] = {}  # symbol -> (bids, asks)
        self.fee_rate = fee_rate  # taker
        self.maker_fee_rate = fee_rate if maker_fee_rate is None else maker_fee_rate
        # pay fees in a third asset (BNB on Binance), valued at its market's price (a symbol
        # <asset><quote> among ``symbols``), else at ``commission_asset_price``
        self.commission_asset = commission_asset
        self.commission_asset_price = commission_asset_price
        self.orders: dict[int, SimOrder] = {}
        self.orders_created = 0
        self.can_withdraw = False  # the key's restrictions (GET /sapi/v1/account/apiRestrictions)
        self._ids = itertools.count(1001)
        self._list_ids = itertools.count(1)
        self._oco_locks: set[int] = set()

    # -- test controls --------------------------------------------------------------------------

    def fill(self, order_id: int) -> None:
        """Fill a resting order completely at its limit price (as if the market crossed it)."""
        with self._lock:
            order = self.orders[order_id]
            self._unlock(order)
            self._execute(order, order.price)

    def fill_part(self, order_id: int, qty: Decimal) -> None:
        """Fill ``qty`` of a resting order at its limit price; the rest keeps working."""
        with self._lock:
            order = self.orders[order_id]
            self._unlock(order)
            self._trade(order, order.price, qty, maker=True)
            spec = self.symbols[order.symbol]
            self._reserve(*self._need(spec, order.side, order.qty - order.executed, order.price))

    def set_price(self, symbol: str, price: Decimal) -> None:
        with self._lock:
            self.prices[symbol] = price

    def set_book(self, symbol: str, bids: list[Level], asks: list[Level]) -> None:
        """The liquidity takers meet: bids best first (downward), asks best first (upward).

        It stands for the book an order meets when it arrives and is not depleted by it (each
        order meets the same book until the next ``set_book``). Without one, everything fills
        at the last price.
        """
        with self._lock:
            self.books[symbol] = (list(bids), list(asks))

    def avg_price(self, symbol: str) -> Decimal:
        """The average price PERCENT_PRICE_BY_SIDE and a market order's NOTIONAL are checked on."""
        return self.avg_prices.get(symbol, self.prices[symbol])

    def open_orders(self) -> list[SimOrder]:
        with self._lock:
            return [o for o in self.orders.values() if o.status in ("NEW", "PARTIALLY_FILLED")]

    # -- request handling -----------------------------------------------------------------------

    def dispatch(self, method: str, path: str, query: str, body: str, headers: Any) -> Any:
        if path in SIGNED_PATHS:
            params = self.authenticate(headers, query, body)
        else:
            params = dict(parse_qsl(query, keep_blank_values=True))
        return self.route(method, path, params)

    def authenticate(self, headers: Any, query: str, body: str) -> dict[str, str]:
        key = headers.get("X-MBX-APIKEY")
        if not key:
            raise ApiError(401, ERR_KEY_FORMAT, "API-key format invalid.")
        if key != self.api_key:
            raise ApiError(401, ERR_KEY_INVALID, "Invalid API-key, IP, or permissions for action.")
        total = query + body
        payload, sep, signature = total.rpartition("&signature=")
        if not sep:
            raise ApiError(400, ERR_MANDATORY, "Mandatory parameter 'signature' was not sent.")
        # The signature covers the query string and the body exactly as sent, minus itself.
        if query and body and query.endswith("&signature=" + signature):
            payload = query[: -len("&signature=" + signature)] + body
        expected = binance_signature(self.secret, payload)
        if not hmac.compare_digest(expected, signature):
            raise ApiError(400, ERR_SIGNATURE, "Signature for this request is not valid.")
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        stamp = int(params.get("timestamp", "0"))
        window = int(params.get("recvWindow", "5000"))
        server = self.now_ms()
        if stamp >= server + 1000 or server - stamp > window:
            raise ApiError(
                400,
                ERR_TIMESTAMP,
                "Timestamp for this request was 1000ms ahead of the server's time.",
            )
        return params

    def route(self, method: str, path: str, params: dict[str, str]) -> Any:
        with self._lock:
            if path == "/api/v3/ping":
                return {}
            if path == "/api/v3/time":
                return {"serverTime": self.now_ms()}
            if path == "/api/v3/exchangeInfo":
                return self._exchange_info()
            if path in ("/api/v3/ticker/24hr", "/api/v3/ticker/price", "/api/v3/ticker/bookTicker"):
                return self._ticker(path, params)
            if path == "/api/v3/account":
                return self._account()
            if path == "/sapi/v1/account/apiRestrictions" and method == "GET":
                return {
                    "ipRestrict": False,
                    "createTime": 1_700_000_000_000,
                    "enableReading": True,
                    "enableSpotAndMarginTrading": True,
                    "enableWithdrawals": self.can_withdraw,
                    "enableInternalTransfer": False,
                    "permitsUniversalTransfer": False,
                    "enableMargin": False,
                    "enableFutures": False,
                    "enableVanillaOptions": False,
                }
            if path == "/api/v3/openOrders":
                symbol = params.get("symbol")
                return [o.as_json() for o in self.open_orders() if symbol in (None, o.symbol)]
            if path == "/api/v3/order" and method == "POST":
                return self._new_order(params).as_ack()
            if path == "/api/v3/order" and method == "GET":
                return self._find(params, ERR_NO_SUCH_ORDER, "Order does not exist.").as_json()
            if path == "/api/v3/order" and method == "DELETE":
                return self._cancel(params).as_json()
            if path == "/api/v3/orderList/oco" and method == "POST":
                return self._new_oco(params)
            if path == "/api/v3/myTrades" and method == "GET":
                return self._my_trades(params)
        raise ApiError(404, ERR_UNKNOWN, f"no such endpoint {method} {path}")

    # -- the exchange ---------------------------------------------------------------------------

    def _exchange_info(self) -> dict[str, Any]:
        symbols = []
        for s in self.symbols.values():
            symbols.append(
                {
                    "symbol": s.symbol,
                    "status": "TRADING",
                    "baseAsset": s.base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": s.quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": [
                        "LIMIT",
                        "LIMIT_MAKER",
                        "MARKET",
                        "STOP_LOSS",
                        "STOP_LOSS_LIMIT",
                        "TAKE_PROFIT",
                        "TAKE_PROFIT_LIMIT",
                    ],
                    "icebergAllowed": True,
                    "ocoAllowed": True,
                    "otoAllowed": True,
                    "quoteOrderQtyMarketAllowed": True,
                    "allowTrailingStop": True,
                    "cancelReplaceAllowed": True,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": _fmt(s.tick if s.min_price is None else s.min_price),
                            "maxPrice": _fmt(s.max_price),
                            "tickSize": _fmt(s.tick),
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": _fmt(s.min_qty),
                            "maxQty": _fmt(s.max_qty),
                            "stepSize": _fmt(s.step),
                        },
                        {
                            "filterType": "PERCENT_PRICE_BY_SIDE",
                            "bidMultiplierUp": _fmt(s.bid_up),
                            "bidMultiplierDown": _fmt(s.bid_down),
                            "askMultiplierUp": _fmt(s.ask_up),
                            "askMultiplierDown": _fmt(s.ask_down),
                            "avgPriceMins": 5,
                        },
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": _fmt(s.min_notional),
                            "applyMinToMarket": True,
                            "maxNotional": _fmt(s.max_notional),
                            "applyMaxToMarket": False,
                            "avgPriceMins": 5,
                        },
                        *self._optional_filters(s),
                    ],
                    "permissions": [],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                    "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_MAKER"],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    @staticmethod
    def _optional_filters(s: SymbolSpec) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if s.market_max_qty is not None:
            out.append(
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": _fmt(Decimal(0)),
                    "maxQty": _fmt(s.market_max_qty),
                    "stepSize": _fmt(Decimal(0)),
                }
            )
        if s.max_num_orders is not None:
            out.append({"filterType": "MAX_NUM_ORDERS", "maxNumOrders": s.max_num_orders})
        if s.max_num_algo_orders is not None:
            out.append(
                {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": s.max_num_algo_orders}
            )
        return out

    def _spec(self, params: dict[str, str]) -> SymbolSpec:
        spec = self.symbols.get(params.get("symbol", ""))
        if spec is None:
            raise ApiError(400, ERR_BAD_SYMBOL, "Invalid symbol.")
        return spec

    def _ticker(self, path: str, params: dict[str, str]) -> Any:
        specs = [self._spec(params)] if "symbol" in params else list(self.symbols.values())
        out = []
        for s in specs:
            p = self.prices[s.symbol]
            bid, ask = p - s.tick, p + s.tick
            if s.symbol in self.books:
                bids, asks = self.books[s.symbol]
                bid, ask = bids[0][0], asks[0][0]
            if path.endswith("/price"):
                out.append({"symbol": s.symbol, "price": _fmt(p)})
            elif path.endswith("/bookTicker"):
                out.append(
                    {
                        "symbol": s.symbol,
                        "bidPrice": _fmt(bid),
                        "bidQty": "1.00000000",
                        "askPrice": _fmt(ask),
                        "askQty": "1.00000000",
                    }
                )
            else:
                now = self.now_ms()
                out.append(
                    {
                        "symbol": s.symbol,
                        "priceChange": "0.00000000",
                        "priceChangePercent": "0.000",
                        "weightedAvgPrice": _fmt(p),
                        "prevClosePrice": _fmt(p),
                        "lastPrice": _fmt(p),
                        "lastQty": "0.10000000",
                        "bidPrice": _fmt(bid),
                        "bidQty": "1.00000000",
                        "askPrice": _fmt(ask),
                        "askQty": "1.00000000",
                        "openPrice": _fmt(p),
                        "highPrice": _fmt(p),
                        "lowPrice": _fmt(p),
                        "volume": "100.00000000",
                        "quoteVolume": _fmt(p * 100),
                        "openTime": now - 86_400_000,
                        "closeTime": now,
                        "firstId": 1,
                        "lastId": 100,
                        "count": 100,
                    }
                )
        return out[0] if "symbol" in params else out

    def _account(self) -> dict[str, Any]:
        assets = sorted(set(self.balances) | set(self.locked))
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "canTrade": True,
            "canWithdraw": False,
            "canDeposit": False,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "updateTime": self.now_ms(),
            "accountType": "SPOT",
            "balances": [
                {
                    "asset": a,
                    "free": _fmt(self.balances.get(a, Decimal(0))),
                    "locked": _fmt(self.locked.get(a, Decimal(0))),
                }
                for a in assets
            ],
            "permissions": ["SPOT"],
            "uid": 1,
        }

    def _check_filters(
        self,
        spec: SymbolSpec,
        side: str,
        qty: Decimal,
        price: Decimal | None,
        stop: Decimal | None = None,
    ) -> None:
        """LOT_SIZE, MARKET_LOT_SIZE (a market order's quantity), PRICE_FILTER (price and stop
        price), PERCENT_PRICE_BY_SIDE (a limit price against the average price), NOTIONAL (at the
        limit price, up to maxNotional; a market order at the average price, its minimum only),
        then the open orders the order adds: MAX_NUM_ORDERS (an OCO adds two) and
        MAX_NUM_ALGO_ORDERS (its STOP_LOSS_LIMIT leg)."""
        if qty < spec.min_qty or qty > spec.max_qty or (qty % spec.step) != 0:
            raise ApiError(400, ERR_FILTER, "Filter failure: LOT_SIZE")
        if price is None and spec.market_max_qty is not None and qty > spec.market_max_qty:
            raise ApiError(400, ERR_FILTER, "Filter failure: MARKET_LOT_SIZE")
        low = spec.tick if spec.min_price is None else spec.min_price
        for p in (price, stop):
            if p is not None and (p < low or p > spec.max_price or (p % spec.tick) != 0):
                raise ApiError(400, ERR_FILTER, "Filter failure: PRICE_FILTER")
        avg = self.avg_price(spec.symbol)
        if price is not None:
            up, down = (
                (spec.bid_up, spec.bid_down) if side == "BUY" else (spec.ask_up, spec.ask_down)
            )
            if not avg * down <= price <= avg * up:
                raise ApiError(400, ERR_FILTER, "Filter failure: PERCENT_PRICE_BY_SIDE")
        if qty * (avg if price is None else price) < spec.min_notional:
            raise ApiError(400, ERR_FILTER, "Filter failure: NOTIONAL")
        if price is not None and qty * price > spec.max_notional:
            raise ApiError(400, ERR_FILTER, "Filter failure: NOTIONAL")

    def _check_open_orders(self, spec: SymbolSpec, orders: int, algo: int) -> None:
        """MAX_NUM_ORDERS and MAX_NUM_ALGO_ORDERS with ``orders`` more open orders on the symbol,
        ``algo`` of them stop orders."""
        open_ = [o for o in self.open_orders() if o.symbol == spec.symbol]
        stops = [o for o in open_ if o.type in ALGO_TYPES]
        if spec.max_num_orders is not None and len(open_) + orders > spec.max_num_orders:
            raise ApiError(400, ERR_FILTER, "Filter failure: MAX_NUM_ORDERS")
        if spec.max_num_algo_orders is not None and len(stops) + algo > spec.max_num_algo_orders:
            raise ApiError(400, ERR_FILTER, "Filter failure: MAX_NUM_ALGO_ORDERS")

    def _walk(self, symbol: str, side: str, qty: Decimal, limit: Decimal | None) -> list[Level]:
        """The (price, qty) parts a taker of ``qty`` gets from the book, never beyond ``limit``."""
        if symbol not in self.books:
            last = self.prices[symbol]
            beyond = limit is not None and (last > limit if side == "BUY" else last < limit)
            return [] if beyond else [(last, qty)]
        bids, asks = self.books[symbol]
        parts: list[Level] = []
        left = qty
        for price, depth in asks if side == "BUY" else bids:
            if limit is not None and (price > limit if side == "BUY" else price < limit):
                break
            take = min(left, depth)
            parts.append((price, take))
            left -= take
            if left <= 0:
                break
        return parts

    def _need(
        self, spec: SymbolSpec, side: str, qty: Decimal, price: Decimal
    ) -> tuple[str, Decimal]:
        return (spec.quote, qty * price) if side == "BUY" else (spec.base, qty)

    def _reserve(self, asset: str, amount: Decimal) -> None:
        if self.balances.get(asset, Decimal(0)) < amount:
            raise ApiError(
                400, ERR_REJECTED, "Account has insufficient balance for requested action."
            )
        self.balances[asset] = self.balances.get(asset, Decimal(0)) - amount
        self.locked[asset] = self.locked.get(asset, Decimal(0)) + amount

    def _unlock(self, order: SimOrder) -> None:
        if order.status not in ("NEW", "PARTIALLY_FILLED") or order.type == "MARKET":
            return
        spec = self.symbols[order.symbol]
        if order.list_id != -1:  # an OCO locks its quantity once, for the whole list
            if order.list_id in self._oco_locks:
                self._oco_locks.discard(order.list_id)
                self.locked[spec.base] -= order.qty
                self.balances[spec.base] = self.balances.get(spec.base, Decimal(0)) + order.qty
                return
            if order.executed == 0:  # the other leg: the list's lock went with the one that
                return  # filled, which holds its rest as its own (fill_part)
        asset, amount = self._need(spec, order.side, order.qty - order.executed, order.price)
        self.locked[asset] -= amount
        self.balances[asset] = self.balances.get(asset, Decimal(0)) + amount

    def _execute(self, order: SimOrder, price: Decimal, maker: bool = True) -> None:
        self._trade(order, price, order.qty - order.executed, maker)

    def _trade(self, order: SimOrder, price: Decimal, qty: Decimal, maker: bool) -> None:
        """One trade of ``qty`` at ``price``; the commission is charged in the asset received."""
        spec = self.symbols[order.symbol]
        cost = qty * price
        rate = self.maker_fee_rate if maker else self.fee_rate
        if self.commission_asset:  # in the third asset; the trade itself moves in full
            fee_asset = self.commission_asset
            value = self.prices.get(f"{fee_asset}{spec.quote}", self.commission_asset_price)
            fee = (cost * rate / value).quantize(COMMISSION, ROUND_DOWN)
            self.balances[fee_asset] = self.balances.get(fee_asset, Decimal(0)) - fee
            sign = Decimal(1) if order.side == "BUY" else Decimal(-1)
            self.balances[spec.quote] = self.balances.get(spec.quote, Decimal(0)) - sign * cost
            self.balances[spec.base] = self.balances.get(spec.base, Decimal(0)) + sign * qty
        elif order.side == "BUY":
            fee = (qty * rate).quantize(COMMISSION, ROUND_DOWN)
            self.balances[spec.quote] = self.balances.get(spec.quote, Decimal(0)) - cost
            self.balances[spec.base] = self.balances.get(spec.base, Decimal(0)) + qty - fee
            fee_asset = spec.base
        else:
            fee = (cost * rate).quantize(COMMISSION, ROUND_DOWN)
            self.balances[spec.base] = self.balances.get(spec.base, Decimal(0)) - qty
            self.balances[spec.quote] = self.balances.get(spec.quote, Decimal(0)) + cost - fee
            fee_asset = spec.quote
        order.executed += qty
        order.quote += cost
        order.status = "FILLED" if order.executed >= order.qty else "PARTIALLY_FILLED"
        order.makers.append(maker)
        order.fills.append(
            {
                "price": _fmt(price),
                "qty": _fmt(qty),
                "commission": _fmt(fee),
                "commissionAsset": fee_asset,
                "tradeId": order.order_id * 100 + len(order.fills),
            }
        )
        if order.list_id != -1:  # one leg filled: the other is cancelled
            for other in self.orders.values():
                if other.list_id == order.list_id and other is not order:
                    other.status = "EXPIRED"

    def _my_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """GET /api/v3/myTrades (symbol, optional orderId): the account's trades, as charged."""
        spec = self._spec(params)
        order_id = params.get("orderId")
        out = []
        for o in self.orders.values():
            if o.symbol != spec.symbol or (order_id is not None and str(o.order_id) != order_id):
                continue
            for n, f in enumerate(o.fills):
                out.append(
                    {
                        "symbol": o.symbol,
                        "id": o.order_id * 100 + n,
                        "orderId": o.order_id,
                        "orderListId": o.list_id,
                        "price": f["price"],
                        "qty": f["qty"],
                        "quoteQty": _fmt(Decimal(f["price"]) * Decimal(f["qty"])),
                        "commission": f["commission"],
                        "commissionAsset": f["commissionAsset"],
                        "time": o.time_ms,
                        "isBuyer": o.side == "BUY",
                        "isMaker": o.makers[n],
                        "isBestMatch": True,
                    }
                )
        return out

    def _new_order(self, params: dict[str, str]) -> SimOrder:
        spec = self._spec(params)
        side = params.get("side", "")
        type_ = params.get("type", "")
        if side not in ("BUY", "SELL") or type_ not in ("MARKET", "LIMIT"):
            raise ApiError(400, ERR_UNKNOWN, f"unsupported order {side} {type_}")
        client_id = params.get("newClientOrderId") or f"sim-{next(self._ids)}"
        for other in self.orders.values():
            if other.client_id == client_id and other.status in ("NEW", "PARTIALLY_FILLED"):
                raise ApiError(400, ERR_REJECTED, "Duplicate order sent.")
        last = self.prices[spec.symbol]
        limit: Decimal | None = None
        if type_ == "MARKET":
            if "quoteOrderQty" in params:
                qty = (Decimal(params["quoteOrderQty"]) / last).quantize(spec.step, ROUND_DOWN)
            else:
                qty = Decimal(params.get("quantity", "0"))
        else:
            qty = Decimal(params.get("quantity", "0"))
            limit = Decimal(params.get("price", "0"))
        self._check_filters(spec, side, qty, limit)
        if limit is not None:  # a market order is never left open
            self._check_open_orders(spec, 1, 0)
        parts = self._walk(spec.symbol, side, qty, limit)
        if limit is None:
            spend = sum((p * q for p, q in parts), Decimal(0))
            asset, amount = (spec.quote, spend) if side == "BUY" else (spec.base, qty)
        else:
            asset, amount = self._need(spec, side, qty, limit)
        if self.balances.get(asset, Decimal(0)) < amount:
            raise ApiError(
                400, ERR_REJECTED, "Account has insufficient balance for requested action."
            )
        order = SimOrder(
            order_id=next(self._ids),
            client_id=client_id,
            symbol=spec.symbol,
            side=side,
            type=type_,
            qty=qty,
            price=Decimal(0) if limit is None else limit,
            stop_price=Decimal(0),
            status="NEW",
            executed=Decimal(0),
            quote=Decimal(0),
            time_ms=self.now_ms(),
        )
        self.orders[order.order_id] = order
        self.orders_created += 1
        for p, q in parts:  # what crosses the book, as a taker
            self._trade(order, p, q, maker=False)
        if limit is None:
            if order.executed < order.qty:  # the book ran out: the rest expires
                order.status = "EXPIRED"
        elif order.executed < order.qty:  # the rest rests at its limit
            self._reserve(asset, self._need(spec, side, order.qty - order.executed, limit)[1])
        return order

    def _find(self, params: dict[str, str], code: int, msg: str) -> SimOrder:
        self._spec(params)
        if "orderId" in params:
            found = self.orders.get(int(params["orderId"]))
            if found is not None and found.symbol == params["symbol"]:
                return found
        elif "origClientOrderId" in params:
            cid = params["origClientOrderId"]
            matches = [o for o in self.orders.values() if o.client_id == cid]
            if matches:
                return matches[-1]
        else:
            raise ApiError(
                400, ERR_MANDATORY, "Param 'origClientOrderId' or 'orderId' must be sent."
            )
        raise ApiError(400, code, msg)

    def _cancel(self, params: dict[str, str]) -> SimOrder:
        order = self._find(params, ERR_CANCEL_REJECTED, "Unknown order sent.")
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise ApiError(400, ERR_CANCEL_REJECTED, "Unknown order sent.")
        self._unlock(order)
        order.status = "CANCELED"
        if order.list_id != -1:
            for other in self.orders.values():
                if other.list_id == order.list_id and other.status == "NEW":
                    other.status = "CANCELED"
        return order

    def _new_oco(self, params: dict[str, str]) -> dict[str, Any]:
        spec = self._spec(params)
        side = params.get("side", "")
        qty = Decimal(params.get("quantity", "0"))
        above_type = params.get("aboveType", "")
        below_type = params.get("belowType", "")
        if side != "SELL" or above_type != "LIMIT_MAKER" or below_type != "STOP_LOSS_LIMIT":
            raise ApiError(400, ERR_UNKNOWN, "simulator: only SELL LIMIT_MAKER / STOP_LOSS_LIMIT")
        tp = Decimal(params.get("abovePrice", "0"))
        sl_price = Decimal(params.get("belowPrice", "0"))
        sl_stop = Decimal(params.get("belowStopPrice", "0"))
        last = self.prices[spec.symbol]
        if not (sl_stop < last < tp):
            raise ApiError(
                400, ERR_REJECTED, "The relationship of the prices for the orders is not correct."
            )
        self._check_filters(spec, side, qty, tp)
        self._check_filters(spec, side, qty, sl_price, sl_stop)
        self._check_open_orders(spec, 2, 1)  # two orders, one of them a stop
        self._reserve(spec.base, qty)
        list_id = next(self._list_ids)
        self._oco_locks.add(list_id)
        now = self.now_ms()
        legs = []
        for type_, price, stop, cid in (
            ("STOP_LOSS_LIMIT", sl_price, sl_stop, params.get("belowClientOrderId")),
            ("LIMIT_MAKER", tp, Decimal(0), params.get("aboveClientOrderId")),
        ):
            order = SimOrder(
                order_id=next(self._ids),
                client_id=cid or f"sim-{list_id}-{type_.lower()}",
                symbol=spec.symbol,
                side=side,
                type=type_,
                qty=qty,
                price=price,
                stop_price=stop,
                status="NEW",
                executed=Decimal(0),
                quote=Decimal(0),
                time_ms=now,
                list_id=list_id,
            )
            self.orders[order.order_id] = order
            self.orders_created += 1
            legs.append(order)
        return {
            "orderListId": list_id,
            "contingencyType": "OCO",
            "listStatusType": "EXEC_STARTED",
            "listOrderStatus": "EXECUTING",
            "listClientOrderId": params.get("listClientOrderId") or f"list-{list_id}",
            "transactionTime": now,
            "symbol": spec.symbol,
            "orders": [
                {"symbol": o.symbol, "orderId": o.order_id, "clientOrderId": o.client_id}
                for o in legs
            ],
            "orderReports": [o.as_ack() for o in legs],
        }

    def fault_log(self) -> Iterator[Fault]:
        with self._lock:
            yield from list(self.faults)
