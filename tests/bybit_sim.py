"""A Bybit v5 spot REST simulator for contract tests: real HTTP on 127.0.0.1, real signatures.

It speaks what the real ccxt asks of Bybit's v5 API for spot trading with Kobe's settings (found by
running it): server time, spot instruments, tickers, the API key's and the account's info (ccxt
asks whether the account is unified), the unified wallet balance, ``order/create`` (with
``orderLinkId`` and attached ``takeProfit`` / ``stopLoss``), ``order/cancel``, ``order/realtime``
(open orders), ``order/history`` (closed ones) and ``execution/list``. Order lists come one page
at a time, newest first, ``limit`` 20 unless asked (at most 50), as the v5 docs say of both.

Private requests are checked the way Bybit documents it: ``X-BAPI-API-KEY``, ``X-BAPI-TIMESTAMP``,
``X-BAPI-RECV-WINDOW`` and ``X-BAPI-SIGN``, the hex HMAC-SHA256 of timestamp + key + recv window +
the query string (GET) or the JSON body (POST). Errors carry Bybit's ``retCode``/``retMsg`` in an
HTTP 200 answer, as Bybit sends them. Spot rules enforced (:mod:`tests.spot_book`): lot size, tick,
minimum order value, funds, duplicate ``orderLinkId``; TP/SL attached only to limit orders (the v5
docs: "Spot Limit order supports take profit, stop loss"), a buy's take-profit above its price and
its stop-loss below.

Rate limits: :meth:`BybitSim.rate_limit` answers ``retCode`` 10006 with Bybit's
``X-Bapi-Limit-Reset-Timestamp`` header, its documented retry hint.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from decimal import Decimal
from typing import Any

from tests.sim_core import ApiError
from tests.spot_book import Execution, Instrument, Refusal, SpotOrder, SpotSim, instruments

API_KEY = "bybit-sim-key-7c1d"
API_SECRET = "bybit-sim-secret-3e9a0b7c6d5e"

ORDER_CREATE = "/v5/order/create"
ORDER_CANCEL = "/v5/order/cancel"
ORDER_REALTIME = "/v5/order/realtime"
ORDER_HISTORY = "/v5/order/history"
WALLET = "/v5/account/wallet-balance"
TICKERS = "/v5/market/tickers"

PUBLIC = {"/v5/market/time", "/v5/market/instruments-info", TICKERS}

# Bybit's retCodes (v5 error codes page) for each refusal of the book.
CODES: dict[str, tuple[int, str]] = {
    "insufficient": (170131, "Insufficient balance."),
    "qty_min": (170136, "Order quantity lower than the minimum."),
    "qty_max": (170135, "Order quantity too large."),
    "qty_step": (170137, "Order volume decimal too long."),
    "price_tick": (170134, "Order price decimal too long."),
    "notional": (170140, "Order value exceeded lower limit."),
    "duplicate": (170141, "Duplicate clientOrderId."),
    "tpsl": (170130, "Data sent for parameter is not valid."),
    "tpsl_market": (170130, "Data sent for parameter is not valid."),
    "not_found": (170213, "Order does not exist."),
    "not_open": (170213, "Order does not exist."),
    "bad_symbol": (170121, "Invalid symbol."),
    "bad_param": (10001, "params error"),
}

STATUS = {
    "open": "New",
    "filled": "Filled",
    "canceled": "Cancelled",
    "untriggered": "Untriggered",
    "triggered": "Triggered",
    "deactivated": "Deactivated",
    "rejected": "Rejected",
}


def bybit_signature(secret: str, payload: str) -> str:
    """Hex HMAC-SHA256 of ``payload`` (timestamp + key + recv window + query or body)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _s(value: Decimal | None) -> str:
    return "" if value is None else format(value.normalize(), "f")


class BybitSim(SpotSim):
    def __init__(
        self,
        api_key: str = API_KEY,
        secret: str = API_SECRET,
        balances: dict[str, Decimal] | None = None,
        symbols: tuple[Instrument, ...] | None = None,
        clock_offset_ms: int = 0,
    ) -> None:
        super().__init__(symbols or instruments(""), balances, clock_offset_ms)
        self.api_key = api_key
        self.secret = secret

    # -- test controls --------------------------------------------------------------------------

    def rate_limit(self, path: str, reset_in_ms: int, method: str | None = None) -> None:
        """The next request to ``path`` is refused with 10006 and Bybit's reset-time header."""
        reset = self.now_ms() + reset_in_ms
        self.inject(
            status=200,
            method=method,
            path=path,
            body={"retCode": 10006, "retMsg": "Too many visits!", "result": {}, "time": 0},
            headers={
                "X-Bapi-Limit": "10",
                "X-Bapi-Limit-Status": "0",
                "X-Bapi-Limit-Reset-Timestamp": str(reset),
            },
        )

    # -- the wire -------------------------------------------------------------------------------

    def error_answer(self, exc: ApiError) -> str:
        return json.dumps(
            {
                "retCode": exc.code,
                "retMsg": exc.msg,
                "result": {},
                "retExtInfo": {},
                "time": self.now_ms(),
            }
        )

    def _auth(self, method: str, query: str, body: str, headers: Any) -> None:
        key = headers.get("X-BAPI-API-KEY") or ""
        stamp = headers.get("X-BAPI-TIMESTAMP") or ""
        window = headers.get("X-BAPI-RECV-WINDOW") or "5000"
        sign = headers.get("X-BAPI-SIGN") or ""
        if not key or not stamp or not sign:
            raise ApiError(200, 10003, "API key is invalid.")
        if key != self.api_key:
            raise ApiError(200, 10003, "API key is invalid.")
        payload = stamp + key + window + (body if method == "POST" else query)
        if not hmac.compare_digest(bybit_signature(self.secret, payload), sign):
            raise ApiError(200, 10004, "error sign! origin_string[...]")
        server = self.now_ms()
        if not (server - int(window) <= int(stamp) < server + 1000):
            raise ApiError(
                200,
                10002,
                "invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{stamp}],server_timestamp[{server}],recv_window[{window}]",
            )

    def dispatch(self, method: str, path: str, query: str, body: str, headers: Any) -> Any:
        if path not in PUBLIC:
            self._auth(method, query, body, headers)
        params = self.params(method, query, body)
        with self._lock:
            try:
                result = self._route(method, path, params)
            except Refusal as refusal:
                code, msg = CODES[refusal.kind]
                raise ApiError(200, code, f"{msg} {refusal.detail}".strip()) from None
        return {
            "retCode": 0,
            "retMsg": "OK",
            "result": result,
            "retExtInfo": {},
            "time": self.now_ms(),
        }

    def _route(self, method: str, path: str, p: dict[str, Any]) -> Any:
        if path == "/v5/market/time":
            now = self.now_ms()
            return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}
        if p.get("category", "spot") != "spot" and path != WALLET:
            raise Refusal("bad_param", f"category {p.get('category')} (the simulator is spot)")
        if path == "/v5/market/instruments-info":
            return {"category": "spot", "list": [self._instrument(s) for s in self._specs(p)]}
        if path == TICKERS:
            return {"category": "spot", "list": [self._ticker(s) for s in self._specs(p)]}
        if path == "/v5/user/query-api":
            return {"id": "1", "apiKey": self.api_key, "readOnly": 0, "unified": 0, "uta": 1}
        if path == "/v5/account/info":
            return {"unifiedMarginStatus": 5, "marginMode": "REGULAR_MARGIN"}
        if path == WALLET:
            return {"list": [self._wallet()]}
        if path == ORDER_CREATE and method == "POST":
            return self._create(p)
        if path == ORDER_CANCEL and method == "POST":
            order = self._find(p)
            if order.role and p.get("orderFilter") not in ("tpslOrder", "StopOrder"):
                # a TP/SL order is cancelled under its filter only ("Order by default")
                raise Refusal("not_found", str(p.get("orderId") or p.get("orderLinkId")))
            self.book.cancel(order)
            return {"orderId": order.order_id, "orderLinkId": order.client_id}
        if path == ORDER_REALTIME:
            return self._orders(p, lambda o: o.status in ("open", "untriggered"))
        if path == ORDER_HISTORY:
            return self._orders(p, lambda o: o.status not in ("open", "untriggered"))
        if path == "/v5/execution/list":
            return self._executions(p)
        raise ApiError(404, 10001, f"no such endpoint {method} {path}")

    # -- endpoints ------------------------------------------------------------------------------

    def _specs(self, p: dict[str, Any]) -> list[Instrument]:
        if p.get("symbol"):
            return [self.book.spec(p["symbol"])]
        return list(self.book.specs.values())

    @staticmethod
    def _instrument(s: Instrument) -> dict[str, Any]:
        return {
            "symbol": s.id,
            "baseCoin": s.base,
            "quoteCoin": s.quote,
            "innovation": "0",
            "status": "Trading",
            "marginTrading": "none",
            "lotSizeFilter": {
                "basePrecision": _s(s.step),
                "quotePrecision": "0.00000001",
                "minOrderQty": _s(s.min_qty),
                "maxOrderQty": _s(s.max_qty),
                "minOrderAmt": _s(s.min_notional),
                "maxOrderAmt": "2000000",
            },
            "priceFilter": {"tickSize": _s(s.tick)},
        }

    def _ticker(self, s: Instrument) -> dict[str, Any]:
        last = self.book.prices[s.id]
        return {
            "symbol": s.id,
            "bid1Price": _s(last - s.tick),
            "bid1Size": "1",
            "ask1Price": _s(last + s.tick),
            "ask1Size": "1",
            "lastPrice": _s(last),
            "prevPrice24h": _s(last),
            "price24hPcnt": "0",
            "highPrice24h": _s(last),
            "lowPrice24h": _s(last),
            "turnover24h": _s(last * 100),
            "volume24h": "100",
        }

    def _wallet(self) -> dict[str, Any]:
        coins = []
        for asset in sorted(set(self.book.balances) | set(self.book.locked)):
            free = self.book.free(asset)
            locked = self.book.locked.get(asset, Decimal(0))
            coins.append(
                {
                    "coin": asset,
                    "walletBalance": _s(free + locked),
                    "locked": _s(locked),
                    "equity": _s(free + locked),
                    "usdValue": "",
                    "borrowAmount": "0",
                    "accruedInterest": "0",
                    "totalOrderIM": "0",
                    "totalPositionIM": "0",
                }
            )
        return {"accountType": "UNIFIED", "coin": coins}

    def _create(self, p: dict[str, Any]) -> dict[str, str]:
        side = str(p.get("side", "")).lower()
        type_ = str(p.get("orderType", "")).lower()
        if p.get("marketUnit") == "quoteCoin":
            raise Refusal("bad_param", "marketUnit quoteCoin (the simulator takes base quantities)")
        price = Decimal(p["price"]) if p.get("price") else None
        tp = Decimal(p["takeProfit"]) if p.get("takeProfit") else None
        sl = Decimal(p["stopLoss"]) if p.get("stopLoss") else None
        order = self.book.place(
            str(p.get("symbol", "")),
            side,
            type_,
            Decimal(str(p.get("qty", "0"))),
            price,
            str(p.get("orderLinkId") or ""),
            tp,
            sl,
            attach_on_market=False,
        )
        return {"orderId": order.order_id, "orderLinkId": order.client_id}

    def _find(self, p: dict[str, Any]) -> SpotOrder:
        order = self.book.find(str(p.get("orderId") or ""), str(p.get("orderLinkId") or ""))
        if p.get("symbol") and order.symbol != p["symbol"]:
            raise Refusal("not_found", str(p.get("orderId") or p.get("orderLinkId")))
        return order

    def _orders(self, p: dict[str, Any], keep: Any) -> dict[str, Any]:
        wanted_trigger = p.get("orderFilter") in ("StopOrder", "tpslOrder")
        rows = []
        for o in reversed(list(self.book.orders.values())):
            if p.get("symbol") and o.symbol != p["symbol"]:
                continue
            if p.get("orderId") and o.order_id != p["orderId"]:
                continue
            if p.get("orderLinkId") and o.client_id != p["orderLinkId"]:
                continue
            if bool(o.role) != wanted_trigger and o.status == "untriggered":
                continue  # conditional exits are listed only under orderFilter StopOrder/tpslOrder
            if keep(o):
                rows.append(self._order_json(o))
        # one page, newest first: "limit [1, 50]. Default: 20", the next one by "cursor"
        limit = min(max(int(p.get("limit") or 20), 1), 50)
        start = int(p.get("cursor") or 0)
        more = start + limit < len(rows)
        return {
            "category": "spot",
            "list": rows[start : start + limit],
            "nextPageCursor": str(start + limit) if more else "",
        }

    def _order_json(self, o: SpotOrder) -> dict[str, Any]:
        left = o.qty - o.executed if o.status == "open" else Decimal(0)
        stop_type = {"tp": "TakeProfit", "sl": "StopLoss"}.get(o.role, "")
        return {
            "orderId": o.order_id,
            "orderLinkId": o.client_id,
            # a TP/SL order made from an entry's attached prices names the entry's client id
            "parentOrderLinkId": self.book.orders[o.parent].client_id if o.parent else "",
            "blockTradeId": "",
            "symbol": o.symbol,
            "price": _s(o.price),
            "qty": _s(o.qty),
            "side": o.side.capitalize(),
            "isLeverage": "0",
            "positionIdx": 0,
            "orderStatus": STATUS[o.status],
            "cancelType": "UNKNOWN",
            "rejectReason": "EC_NoError",
            "avgPrice": _s(o.avg) if o.executed else "",
            "leavesQty": _s(left),
            "leavesValue": _s(left * o.price),
            "cumExecQty": _s(o.executed),
            "cumExecValue": _s(o.value),
            "cumExecFee": _s(o.fee),
            "cumFeeDetail": {o.fee_asset: _s(o.fee)} if o.fee_asset else {},
            "timeInForce": "IOC" if o.type == "market" else "GTC",
            "orderType": o.type.capitalize(),
            "stopOrderType": stop_type,
            "orderIv": "",
            "marketUnit": "baseCoin" if o.type == "market" else "",
            "triggerPrice": _s(o.trigger) if o.role else "0",
            "takeProfit": _s(o.take_profit) or "0",
            "stopLoss": _s(o.stop_loss) or "0",
            "tpTriggerBy": "LastPrice" if o.take_profit else "",
            "slTriggerBy": "LastPrice" if o.stop_loss else "",
            "tpLimitPrice": "0",
            "slLimitPrice": "0",
            "triggerDirection": 0,
            "triggerBy": "LastPrice" if o.role else "",
            "lastPriceOnCreated": _s(self.book.prices[o.symbol]),
            "reduceOnly": False,
            "closeOnTrigger": False,
            "placeType": "",
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "createdTime": str(o.created_ms),
            "updatedTime": str(o.updated_ms),
        }

    def _executions(self, p: dict[str, Any]) -> dict[str, Any]:
        rows = [
            self._execution_json(e)
            for e in reversed(self.book.executions)
            if (not p.get("symbol") or e.symbol == p["symbol"])
            and (not p.get("orderId") or e.order_id == p["orderId"])
            and (not p.get("orderLinkId") or e.client_id == p["orderLinkId"])
        ]
        return {"category": "spot", "list": rows, "nextPageCursor": ""}

    @staticmethod
    def _execution_json(e: Execution) -> dict[str, Any]:
        return {
            "symbol": e.symbol,
            "orderId": e.order_id,
            "orderLinkId": e.client_id,
            "side": e.side.capitalize(),
            "orderPrice": _s(e.price),
            "orderQty": _s(e.qty),
            "orderType": "Market",
            "stopOrderType": "",
            "execFee": _s(e.fee),
            "feeCurrency": e.fee_asset,
            "execId": e.exec_id,
            "execPrice": _s(e.price),
            "execQty": _s(e.qty),
            "execType": "Trade",
            "execValue": _s(e.price * e.qty),
            "execTime": str(e.time_ms),
            "isMaker": e.maker,
            "feeRate": "0.001",
            "leavesQty": "0",
            "closedSize": "",
            "seq": 1,
        }
