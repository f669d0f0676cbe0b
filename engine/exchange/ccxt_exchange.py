"""``CcxtExchange``: one adapter over ccxt for binance, bybit and okx (spot).

The adapter is three layers, one module each, each importing only the ones below it:

- :mod:`engine.exchange.ccxt_client`: construction through the live gate, sandbox, base-URL
  override, lazy ccxt import, one call at a time with ccxt's errors mapped onto Kobe's
  (:mod:`engine.exchange.ccxt_errors`), order look-ups by either id;
- :mod:`engine.exchange.ccxt_attached`: the TP/SL legs Bybit and OKX hold for an entry;
- this module: markets, reads and the writes (orders, Binance's OCO, cancels).

ccxt's answers are read into Kobe's types by :mod:`engine.exchange.ccxt_parse`.

No rounding at send time: the router rounds once, from the market's step and tick, for every venue;
a quantity off the step or a price off the tick is refused here (:class:`InvalidOrder`, as
Binance's -1013), never truncated silently. ``amount_to_precision`` rounds down to the step
(below one step: 0, as on paper); ``price_to_precision`` is ccxt's helper. Orders are placed once
(:func:`engine.exchange.retry.place_order_once`): never re-sent blindly.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.exchange.base import (
    BadAnswer,
    DuplicateClientId,
    ExchangeError,
    ExchangeUnavailable,
    InvalidOrder,
    MarketRules,
    NotSupported,
    OcoResult,
    Order,
    OrderNotFound,
    OrderOutcomeUnknown,
    OrderStatus,
    OrderType,
    Position,
    Side,
    Ticker,
    check_precision,
    stop_limit_price,
)
from engine.exchange.ccxt_attached import CcxtAttachedExits
from engine.exchange.ccxt_client import RESEND_AFTER_S
from engine.exchange.ccxt_parse import ZERO, dec, dec0, market_rules, to_order, utc_ms
from engine.exchange.retry import place_order_once
from engine.money import floor_to_step
from engine.untrusted import clean_message, clean_text

log = logging.getLogger(__name__)

# Where the exchange's balance answer lists the balances.
BALANCES_KEY = {"binance": "balances", "bybit": "result", "okx": "data"}

# The exchange's own name for the client order id, where ccxt wants it raw.
CLIENT_ID_PARAM = {"binance": "origClientOrderId", "bybit": "orderLinkId", "okx": "clOrdId"}


def _wire(value: Decimal) -> str:
    """A decimal as sent: plain digits, never an exponent."""
    return format(value, "f")


class CcxtExchange(CcxtAttachedExits):
    """The :class:`Exchange` interface over a ccxt exchange (binance, bybit, okx), spot."""

    # -- markets --------------------------------------------------------------------------------

    def load_markets(self) -> dict[str, MarketRules]:
        if self._rules is None:
            markets: dict[str, Any] = self._read(self._ex.load_markets, "load markets")
            tick_size = self._ex.precisionMode == self._ccxt.TICK_SIZE
            rules, refused = {}, []
            for symbol, m in markets.items():
                if not m.get("spot", True):
                    continue
                try:
                    rules[symbol] = market_rules(m, tick_size)
                except BadAnswer as exc:  # one odd market never stops trading the others
                    refused.append(str(exc))
            if refused:
                log.warning(
                    "%s: %d market(s) left out, their rules refused: %s",
                    self.name, len(refused), "; ".join(refused[:5]),
                )  # fmt: skip
            self._rules = rules
        return self._rules

    def amount_to_precision(self, symbol: str, qty: Decimal) -> Decimal:
        """Down to the market's step, as on paper: below one step is 0 (dust to the router),
        where ccxt's own helper raises."""
        return floor_to_step(qty, self.market(symbol).step_size)

    def price_to_precision(self, symbol: str, price: Decimal) -> Decimal:
        self.load_markets()
        return Decimal(self._raw(lambda: self._ex.price_to_precision(symbol, str(price))))

    # -- reads ----------------------------------------------------------------------------------

    def can_withdraw(self) -> bool | None:
        """Whether the API key may withdraw funds; None when the exchange does not say here.

        Binance reports it in the key's restrictions (``GET /sapi/v1/account/apiRestrictions``,
        ``enableWithdrawals``); its testnet has no such endpoint.
        """
        if self.name != "binance":
            return None
        try:
            data = self._read(self._ex.sapi_get_account_apirestrictions, "API-key restrictions")
        except NotSupported:
            return None
        value = data.get("enableWithdrawals") if isinstance(data, dict) else None
        return value is True or str(value).lower() == "true"

    def ping(self) -> float:
        """The round trip of the call that answered (not the failed attempts, nor the pauses
        between retries), in milliseconds."""
        took: list[float] = []

        def once() -> Any:
            start = time.perf_counter()
            answer = self._ex.fetch_time()
            took.append(time.perf_counter() - start)
            return answer

        self._read(once, "ping")
        return took[-1] * 1000

    def fetch_time(self) -> datetime:
        """The exchange's clock."""
        return utc_ms(self._read(self._ex.fetch_time, "fetch time"))

    def _balance(self) -> dict[str, Any]:
        """The account's balances; an answer without the exchange's list of them (the wrong
        shape, which ccxt reads as an empty account) is :class:`BadAnswer`, never zero."""
        balance: dict[str, Any] = self._read(self._ex.fetch_balance, "fetch balance")
        info = balance.get("info")
        if not isinstance(info, dict) or BALANCES_KEY[self.name] not in info:
            raise BadAnswer(f"{self.name}: the balance answer lists no balances")
        return balance

    def get_balance(self, asset: str) -> Decimal:
        return self.get_balances([asset])[asset]

    def get_balances(self, assets: Iterable[str]) -> dict[str, Decimal]:
        """What is free of each asset. An amount below zero is a malformed answer
        (:class:`BadAnswer`, naming the asset and the field), never an amount to size with."""
        balance = self._balance()
        return {a: self._amount(a, "free", (balance.get(a) or {}).get("free")) for a in assets}

    def _totals(self) -> dict[str, Decimal]:
        totals = self._balance().get("total") or {}
        return {asset: self._amount(asset, "total", v) for asset, v in totals.items()}

    def _amount(self, asset: str, field: str, value: Any) -> Decimal:
        return dec0(value, field=f"{self.name}: balance {clean_text(asset)}.{field}")

    def fetch_ticker(self, symbol: str) -> Ticker:
        self.load_markets()
        t: dict[str, Any] = self._read(lambda: self._ex.fetch_ticker(symbol), "fetch ticker")
        last = dec(t.get("last")) or dec(t.get("close"))
        if last is None:
            raise ExchangeError(f"{self.name}: no last price for {symbol}")
        return Ticker(
            symbol=symbol,
            last=last,
            bid=dec(t.get("bid")),
            ask=dec(t.get("ask")),
            time=utc_ms(t.get("timestamp")),
        )

    def fetch_positions(self, symbol: str | None = None) -> list[Position]:
        """Spot: the base asset held per symbol (free + locked); no entry price from the venue."""
        rules = self.load_markets()
        totals = self._totals()
        if symbol is not None:
            market = self.market(symbol)
            qty = totals.get(market.base, ZERO)
            return [Position(symbol, qty, None)] if qty > 0 else []
        positions = []
        for asset, qty in sorted(totals.items()):
            pair = f"{asset}/{self.quote_asset}"
            if qty > 0 and pair in rules:
                positions.append(Position(pair, qty, None))
        return positions

    def fetch_order(self, id: str, symbol: str) -> Order:
        self.load_markets()
        return self._read(lambda: self._fetch_order_raw(id, symbol), f"fetch order {id}")

    def _fetch_order_raw(self, id: str, symbol: str) -> Order:
        if id.isdigit():
            order = to_order(self._find_raw(symbol, order_id=id))
        else:  # our client id
            order = to_order(self._find_raw(symbol, client_id=id), id)
        return self._with_fees(order)

    def fetch_order_by_client_id(self, client_id: str, symbol: str) -> Order | None:
        self.load_markets()
        return self._read(
            lambda: self._by_client_id_raw(client_id, symbol), f"look up order {client_id}"
        )

    def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        self.load_markets()
        return self._read(
            lambda: [to_order(o) for o in self._ex.fetch_open_orders(symbol)], "fetch open orders"
        )

    # -- writes ---------------------------------------------------------------------------------

    def _item_done(self, answer: Any) -> Any:
        """OKX: a write answered with code 0 (or 2, "partly done") whose item failed (its
        ``sCode`` not 0; ccxt reads only a code 1's items) is that item's failure, mapped as
        ccxt maps it (51008: insufficient funds), never an order with no id. Called inside
        :meth:`_raw`, which maps ccxt's error."""
        info = answer.get("info") if isinstance(answer, dict) else None
        if not isinstance(info, dict):
            return answer
        code = str(info.get("sCode") or "0")
        if self.name == "okx" and code != "0":
            said = f"{self.name} {json.dumps(info)}"
            self._ex.throw_exactly_matched_exception(self._ex.exceptions["exact"], code, said)
            self._ex.throw_broadly_matched_exception(
                self._ex.exceptions["broad"], info.get("sMsg"), said
            )
            raise self._ccxt.ExchangeError(said)
        return answer

    def create_order(
        self,
        symbol: str,
        side: Side,
        type: OrderType,
        qty: Decimal,
        price: Decimal | None = None,
        params: dict[str, Any] | None = None,
    ) -> Order:
        self.load_markets()
        extra = dict(params or {})
        client_id = str(extra.pop("client_id", "") or self._client_ids())
        take_profit = extra.pop("take_profit", None)
        stop_loss = extra.pop("stop_loss", None)
        if extra:
            raise InvalidOrder(f"unknown order parameter(s): {', '.join(sorted(extra))}")
        side, type = Side(side), OrderType(type)
        if (take_profit is not None or stop_loss is not None) and not self.capabilities(
            symbol
        ).attached_tp_sl:
            raise NotSupported(f"{self.name}: no TP/SL attached to an order here")
        if type not in (OrderType.MARKET, OrderType.LIMIT):
            raise NotSupported(f"{self.name}: create_order takes market or limit (got {type})")
        if type is OrderType.LIMIT and price is None:
            raise InvalidOrder("a limit order needs a price")
        amount = Decimal(qty)
        limit = Decimal(price) if type is OrderType.LIMIT and price is not None else None
        attached = tuple(Decimal(p) for p in (take_profit, stop_loss) if p is not None)
        prices = (limit, *attached) if limit is not None else attached
        check_precision(self.market(symbol), amount, prices)
        if take_profit is not None:
            # ccxt's unified params: it builds Bybit's takeProfit / OKX's attachAlgoOrds
            extra["takeProfit"] = {"triggerPrice": _wire(Decimal(take_profit))}
        if stop_loss is not None:
            extra["stopLoss"] = {"triggerPrice": _wire(Decimal(stop_loss))}

        def send() -> Order:
            request = {**extra, "clientOrderId": client_id}
            try:
                data = self._raw(
                    lambda: self._item_done(
                        self._ex.create_order(
                            symbol,
                            type.value,
                            side.value,
                            _wire(amount),
                            None if limit is None else _wire(limit),
                            request,
                        )
                    )
                )
                try:
                    data = self._settled(data, symbol)
                except ExchangeError as exc:  # placed, its state not read: look it up
                    raise ExchangeUnavailable(
                        f"{self.name}: placed; reading it failed: {exc}"
                    ) from exc
            except DuplicateClientId as exc:
                # refused as a duplicate of our own client id: an earlier request landed
                found = self._by_client_id_raw(client_id, symbol)
                if found is None:  # not listed yet: placed as far as anyone knows
                    raise OrderOutcomeUnknown(
                        client_id, f"{exc}; no look-up by that id finds the order yet"
                    ) from exc
                if (found.side, found.qty) != (side, amount):
                    raise  # the id is held by another order (an older one): a refusal
                return found
            return to_order(data, client_id)

        return place_order_once(
            send,
            lambda: self._by_client_id_raw(client_id, symbol),
            client_id,
            self.retry,
            self.on_unknown,
            f"{self.name} {side.value} {amount} {symbol}",
            RESEND_AFTER_S,
        )

    def create_oco(
        self,
        symbol: str,
        side: Side,
        qty: Decimal,
        take_profit: Decimal,
        stop_loss: Decimal,
        params: dict[str, Any] | None = None,
    ) -> OcoResult:
        """Binance's native OCO (``POST /api/v3/orderList/oco``), placed once like any order.

        ``params``: ``client_id`` (the list's client id), ``tp_client_id`` / ``sl_client_id``
        (the legs'; default the list's id plus ``t`` / ``s``), ``stop_limit_price`` (the stop
        leg's limit; by default :func:`engine.exchange.base.stop_limit_price`, as on paper). Any
        other key is refused, never sent. Quantity and prices must already be on the step and
        tick (:class:`InvalidOrder` otherwise, nothing sent).
        """
        if not self.capabilities(symbol).native_oco:
            raise NotSupported(
                f"{self.name} has no native OCO: attach TP/SL to the entry, or watch locally"
            )
        self.load_markets()
        extra = dict(params or {})
        base_id = str(extra.pop("client_id", "") or self._client_ids())[:30]
        tp_id = str(extra.pop("tp_client_id", "") or base_id + "t")
        sl_id = str(extra.pop("sl_client_id", "") or base_id + "s")
        raw_limit = extra.pop("stop_limit_price", None)
        if extra:  # never sign and send a field the exchange does not know
            raise InvalidOrder(f"unknown OCO parameter(s): {', '.join(sorted(extra))}")
        side = Side(side)
        rules = self.market(symbol)
        amount, tp, stop = Decimal(qty), Decimal(take_profit), Decimal(stop_loss)
        if raw_limit is None:
            stop_limit = stop_limit_price(rules, side, stop)
        else:
            stop_limit = Decimal(str(raw_limit))
        check_precision(rules, amount, (tp, stop, stop_limit))
        market = self._ex.market(symbol)
        tp_leg = {"Type": "LIMIT_MAKER", "Price": _wire(tp), "ClientOrderId": tp_id}
        sl_leg = {
            "Type": "STOP_LOSS_LIMIT",
            "Price": _wire(stop_limit),
            "StopPrice": _wire(stop),
            "TimeInForce": "GTC",
            "ClientOrderId": sl_id,
        }
        above, below = (tp_leg, sl_leg) if side is Side.SELL else (sl_leg, tp_leg)
        request: dict[str, Any] = {
            "symbol": market["id"],
            "side": side.value.upper(),
            "quantity": _wire(amount),
            "listClientOrderId": base_id,
            "newOrderRespType": "FULL",
            **{"above" + k: v for k, v in above.items()},
            **{"below" + k: v for k, v in below.items()},
        }

        def send() -> OcoResult:
            data = self._raw(lambda: self._ex.private_post_orderlist_oco(request))

            def legs() -> dict[str, Order]:  # in _raw: an answer of the wrong shape is BadAnswer
                reports = {str(r.get("clientOrderId")): r for r in data.get("orderReports", [])}
                return {
                    cid: to_order(self._ex.parse_order(report, market), cid)
                    for cid, report in reports.items()
                }

            orders = self._raw(legs)
            if tp_id not in orders or sl_id not in orders:  # placed, or not: looked up
                raise BadAnswer(f"{self.name}: OCO answer without both legs: {clean_message(data)}")
            return OcoResult(str(data.get("orderListId")), orders[tp_id], orders[sl_id])

        def lookup() -> OcoResult | None:
            tp_order = self._by_client_id_raw(tp_id, symbol)
            sl_order = self._by_client_id_raw(sl_id, symbol)
            if tp_order is None or sl_order is None:
                return None
            return OcoResult(tp_order.list_id or "", tp_order, sl_order)

        return place_order_once(
            send,
            lookup,
            base_id,
            self.retry,
            self.on_unknown,
            f"{self.name} OCO {symbol}",
            RESEND_AFTER_S,
        )

    def cancel_order(self, id: str, symbol: str) -> Order:
        """Cancel (retried: cancelling is idempotent). Already filled or gone: OrderNotFound."""
        self.load_markets()
        attempts = 0

        def cancel() -> Order:
            nonlocal attempts
            attempts += 1
            if id.isdigit():
                data = self._raw(lambda: self._item_done(self._ex.cancel_order(id, symbol)))
            else:  # our client id
                key = CLIENT_ID_PARAM[self.name]
                data = self._raw(
                    lambda: self._item_done(self._ex.cancel_order(None, symbol, {key: id}))
                )
            return to_order(self._settled(data, symbol))

        try:  # a part it filled: its fees, which the reply does not name (Binance's)
            return self._with_fees(self._read(cancel, f"cancel order {id}"))
        except OrderNotFound as exc:
            try:
                order = self.fetch_order(id, symbol)
            except OrderNotFound:
                raise OrderNotFound(f"{self.name}: no order {id} on {symbol}") from exc
            if order.status is OrderStatus.CANCELED and attempts > 1:
                return order  # an earlier attempt, whose answer was lost, cancelled it
            raise OrderNotFound(
                f"{self.name}: order {id} on {symbol} is already {order.status.value}; "
                "nothing to cancel"
            ) from exc
