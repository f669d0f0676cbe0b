"""An OKX v5 spot REST simulator (demo trading) for contract tests: real HTTP, real signatures.

It speaks what the real ccxt asks of OKX's v5 API for spot trading in cash mode with Kobe's
settings (found by running it): server time, spot instruments, tickers, the trading account's
balance, ``trade/order`` (place, with ``clOrdId`` and ``attachAlgoOrds``; look up by ``ordId`` or
``clOrdId``), ``trade/cancel-order``, ``trade/orders-pending``, ``trade/orders-history``,
``trade/fills`` (and ``fills-history``, which ccxt reads) and ``trade/orders-algo-pending`` (where the attached TP/SL wait once the entry
filled).

Private requests are checked the way OKX documents it: ``OK-ACCESS-KEY``, ``OK-ACCESS-PASSPHRASE``,
``OK-ACCESS-TIMESTAMP`` (ISO-8601, within 30 s of the server's clock; an ``expTime`` header, when
sent, is the request's own deadline) and ``OK-ACCESS-SIGN``, the
base64 HMAC-SHA256 of timestamp + method + request path (with its query) + body; demo keys answer
only with the ``x-simulated-trading: 1`` header. Errors: OKX's ``code``/``msg``, and for an order
the per-order ``sCode``/``sMsg`` under ``code`` 1. Spot rules enforced (:mod:`tests.spot_book`):
``tdMode`` cash, lot size, minimum size, tick, funds, duplicate ``clOrdId``; attached TP/SL on the
right side of the price (a buy's take-profit above it, its stop-loss below).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tests.sim_core import ApiError
from tests.spot_book import Execution, Instrument, Refusal, SpotOrder, SpotSim, instruments

API_KEY = "okx-sim-key-5b2e"
API_SECRET = "okx-sim-secret-8f7e6d5c4b3a"
PASSPHRASE = "okx-sim-passphrase-1"

ORDER = "/api/v5/trade/order"
CANCEL = "/api/v5/trade/cancel-order"
PENDING = "/api/v5/trade/orders-pending"
HISTORY = "/api/v5/trade/orders-history"
ALGO_PENDING = "/api/v5/trade/orders-algo-pending"
CANCEL_ALGOS = "/api/v5/trade/cancel-algos"  # body: a list of {algoId, instId}
ALGO = "/api/v5/trade/order-algo"  # one algo by algoId, whatever its state (armed, fired, gone)
BALANCE = "/api/v5/account/balance"
TICKER = "/api/v5/market/ticker"

PUBLIC = {"/api/v5/public/time", "/api/v5/public/instruments", TICKER, "/api/v5/market/tickers"}

# OKX's sCode/code (v5 error codes) for each refusal of the book.
CODES: dict[str, tuple[str, str]] = {
    "insufficient": ("51008", "Order failed. Insufficient USDT balance in account."),
    "qty_min": ("51020", "Order amount should be greater than the min available amount."),
    "qty_max": ("51004", "Order amount exceeds current tier limit."),
    "qty_step": ("51121", "Order count should be the integer multiples of the lot size."),
    "price_tick": ("51000", "Parameter px error"),
    "notional": ("51020", "Order amount should be greater than the min available amount."),
    "duplicate": ("51016", "Duplicated client order ID"),
    "not_found": ("51603", "Order does not exist"),
    "not_open": ("51402", "Cancellation failed as the order is already completed."),
    "bad_symbol": ("51001", "Instrument ID does not exist."),
    "bad_param": ("51000", "Parameter error"),
}
TPSL_CODES = {  # (entry side, leg on the wrong side of the price) -> OKX's own words
    ("buy", "takeProfit"): ("51279", "TP trigger price cannot be lower than the last price."),
    ("buy", "stopLoss"): ("51280", "SL trigger price cannot be higher than the last price."),
    ("sell", "takeProfit"): ("51277", "TP trigger price cannot be higher than the last price."),
    ("sell", "stopLoss"): ("51278", "SL trigger price cannot be lower than the last price."),
}

STATE = {"open": "live", "filled": "filled", "canceled": "canceled"}


def okx_signature(secret: str, payload: str) -> str:
    """Base64 HMAC-SHA256 of ``payload`` (timestamp + method + request path + body)."""
    digest = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _s(value: Decimal | None) -> str:
    return "" if value is None else format(value.normalize(), "f")


class OkxSim(SpotSim):
    def __init__(
        self,
        api_key: str = API_KEY,
        secret: str = API_SECRET,
        passphrase: str = PASSPHRASE,
        balances: dict[str, Decimal] | None = None,
        symbols: tuple[Instrument, ...] | None = None,
        clock_offset_ms: int = 0,
        demo: bool = True,
    ) -> None:
        # OKX's spot instruments carry a minimum size, no minimum order value
        super().__init__(
            symbols or instruments("-", min_notional=Decimal(0)), balances, clock_offset_ms
        )
        self.api_key = api_key
        self.secret = secret
        self.passphrase = passphrase
        self.demo = demo

    # -- the wire -------------------------------------------------------------------------------

    def error_answer(self, exc: ApiError) -> str:
        if isinstance(exc.code, tuple):  # a per-order refusal: code 1 and the order's sCode
            s_code, s_msg = exc.code
            data = [{"ordId": "", "clOrdId": "", "tag": "", "sCode": s_code, "sMsg": s_msg}]
            return json.dumps({"code": "1", "msg": exc.msg, "data": data})
        return json.dumps({"code": str(exc.code), "msg": exc.msg, "data": []})

    def _auth(self, method: str, path: str, query: str, body: str, headers: Any) -> None:
        key = headers.get("OK-ACCESS-KEY") or ""
        sign = headers.get("OK-ACCESS-SIGN") or ""
        stamp = headers.get("OK-ACCESS-TIMESTAMP") or ""
        passphrase = headers.get("OK-ACCESS-PASSPHRASE")
        if not key:
            raise ApiError(401, 50103, 'Request header "OK-ACCESS-KEY" cannot be empty.')
        if key != self.api_key:
            raise ApiError(401, 50111, "Invalid OK-ACCESS-KEY.")
        if not passphrase:
            raise ApiError(401, 50104, 'Request header "OK-ACCESS-PASSPHRASE" cannot be empty.')
        if passphrase != self.passphrase:
            raise ApiError(401, 50105, 'Request header "OK-ACCESS-PASSPHRASE" incorrect.')
        if self.demo and headers.get("x-simulated-trading") != "1":
            raise ApiError(401, 50101, "APIKey does not match current environment.")
        try:
            when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        except ValueError:
            raise ApiError(401, 50112, "Invalid OK-ACCESS-TIMESTAMP.") from None
        if abs(when.timestamp() * 1000 - self.now_ms()) > 30_000:
            raise ApiError(401, 50102, "Timestamp request expired.")
        deadline = headers.get("expTime")  # an order request's own deadline, when it has one
        if deadline and int(deadline) < self.now_ms():
            raise ApiError(401, 50102, "Timestamp request expired.")
        request_path = path + ("?" + query if query else "")
        payload = stamp + method + request_path + body
        if not hmac.compare_digest(okx_signature(self.secret, payload), sign):
            raise ApiError(401, 50113, "Invalid signature.")

    def dispatch(self, method: str, path: str, query: str, body: str, headers: Any) -> Any:
        if path not in PUBLIC:
            self._auth(method, path, query, body, headers)
        if path == CANCEL_ALGOS and method == "POST":
            with self._lock:
                return {"code": "0", "msg": "", "data": self._cancel_algos(json.loads(body))}
        params = self.params(method, query, body)
        with self._lock:
            try:
                data = self._route(method, path, params)
            except Refusal as refusal:
                if refusal.kind == "tpsl":
                    side, leg = refusal.detail.split(":", 1)
                    code, msg = TPSL_CODES[(side, leg)]
                else:
                    code, msg = CODES[refusal.kind]
                if method == "POST":  # an order refused: code 1, its own sCode
                    raise ApiError(200, (code, msg), "All operations failed") from None
                raise ApiError(200, code, msg) from None
        return {"code": "0", "msg": "", "data": data}

    def _route(self, method: str, path: str, p: dict[str, Any]) -> Any:
        if path == "/api/v5/public/time":
            return [{"ts": str(self.now_ms())}]
        if path == "/api/v5/public/instruments":
            if p.get("instType") != "SPOT":
                raise Refusal("bad_param", f"instType {p.get('instType')} (the simulator is spot)")
            return [self._instrument(s) for s in self.book.specs.values()]
        if path == TICKER:
            return [self._ticker(self.book.spec(str(p.get("instId", ""))))]
        if path == "/api/v5/market/tickers":
            return [self._ticker(s) for s in self.book.specs.values()]
        if path == BALANCE:
            return [self._balance()]
        if path == ORDER and method == "POST":
            return [self._place(p)]
        if path == ORDER:
            return [self._order_json(self._find(p))]
        if path == CANCEL and method == "POST":
            order = self._find(p)
            self.book.cancel(order)
            return [self._ack(order)]
        if path == PENDING:
            return self._orders(p, lambda o: o.status == "open")
        if path == HISTORY:
            return self._orders(p, lambda o: o.status in ("filled", "canceled"))
        if path == ALGO_PENDING:
            return self._algos(p)
        if path == ALGO:
            return [self._algo(p)]
        if path in ("/api/v5/trade/fills", "/api/v5/trade/fills-history"):  # 3 days, 3 months
            return self._fills(p)
        raise ApiError(404, 50000, f"no such endpoint {method} {path}")

    # -- endpoints ------------------------------------------------------------------------------

    @staticmethod
    def _instrument(s: Instrument) -> dict[str, Any]:
        return {
            "instType": "SPOT",
            "instId": s.id,
            "instFamily": "",
            "uly": "",
            "baseCcy": s.base,
            "quoteCcy": s.quote,
            "settleCcy": "",
            "ctVal": "",
            "ctMult": "",
            "ctValCcy": "",
            "optType": "",
            "stk": "",
            "listTime": "1606468572000",
            "expTime": "",
            "lever": "",
            "tickSz": _s(s.tick),
            "lotSz": _s(s.step),
            "minSz": _s(s.min_qty),
            "ctType": "",
            "alias": "",
            "state": "live",
            "maxLmtSz": _s(s.max_qty),
            "maxMktSz": _s(s.max_qty),
            "maxLmtAmt": "20000000",
            "maxMktAmt": "1000000",
        }

    def _ticker(self, s: Instrument) -> dict[str, Any]:
        last = self.book.prices[s.id]
        return {
            "instType": "SPOT",
            "instId": s.id,
            "last": _s(last),
            "lastSz": "0.1",
            "askPx": _s(last + s.tick),
            "askSz": "1",
            "bidPx": _s(last - s.tick),
            "bidSz": "1",
            "open24h": _s(last),
            "high24h": _s(last),
            "low24h": _s(last),
            "volCcy24h": _s(last * 100),
            "vol24h": "100",
            "sodUtc0": _s(last),
            "sodUtc8": _s(last),
            "ts": str(self.now_ms()),
        }

    def _balance(self) -> dict[str, Any]:
        details = []
        for asset in sorted(set(self.book.balances) | set(self.book.locked)):
            free = self.book.free(asset)
            frozen = self.book.locked.get(asset, Decimal(0))
            details.append(
                {
                    "ccy": asset,
                    "eq": _s(free + frozen),
                    "cashBal": _s(free + frozen),
                    "availBal": _s(free),
                    "frozenBal": _s(frozen),
                    "ordFrozen": _s(frozen),
                    "uTime": str(self.now_ms()),
                }
            )
        return {"totalEq": "", "uTime": str(self.now_ms()), "details": details}

    def _place(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("tdMode") != "cash":
            raise Refusal("bad_param", f"tdMode {p.get('tdMode')} (spot trades in cash mode)")
        type_ = str(p.get("ordType", ""))
        if type_ == "market" and p.get("side") == "buy" and p.get("tgtCcy") != "base_ccy":
            raise Refusal("bad_param", "tgtCcy (the simulator takes base quantities)")
        tp = sl = None
        for algo in p.get("attachAlgoOrds") or []:
            for name in ("tpOrdPx", "slOrdPx"):
                if name in algo and algo[name] != "-1":
                    raise Refusal("bad_param", f"{name} (the simulator takes market exits)")
            tp = Decimal(algo["tpTriggerPx"]) if algo.get("tpTriggerPx") else tp
            sl = Decimal(algo["slTriggerPx"]) if algo.get("slTriggerPx") else sl
        side = str(p.get("side", ""))
        try:
            order = self.book.place(
                str(p.get("instId", "")),
                side,
                type_,
                Decimal(str(p.get("sz", "0"))),
                Decimal(p["px"]) if p.get("px") else None,
                str(p.get("clOrdId") or ""),
                tp,
                sl,
            )
        except Refusal as refusal:
            if refusal.kind != "tpsl":
                raise
            leg = "takeProfit" if "takeProfit" in refusal.detail else "stopLoss"
            raise Refusal("tpsl", f"{side}:{leg}") from None
        return self._ack(order)

    def _algo(self, p: dict[str, Any]) -> dict[str, Any]:
        """An attached TP/SL algo by ``algoId``: ``live`` while armed, ``effective`` once a leg
        fired (``ordIdList`` names the order it placed, ``actualSide`` which leg), ``canceled``,
        or ``order_failed`` when the exchange refused it as the entry filled."""
        legs = {leg.role: leg for leg in self.book.exits(str(p.get("algoId", ""))[1:])}
        if not legs or p.get("algoId", "")[:1] != "a":
            raise Refusal("not_found", str(p.get("algoId")))
        first = next(iter(legs.values()))
        fired = [leg for leg in legs.values() if leg.status in ("triggered", "filled")]
        state = "effective" if fired else {
            "untriggered": "live", "rejected": "order_failed"
        }.get(first.status, "canceled")  # fmt: skip
        tp, sl = legs.get("tp"), legs.get("sl")
        return {
            "instType": "SPOT",
            "instId": first.symbol,
            "algoId": p["algoId"],
            "algoClOrdId": "",
            "ordType": "oco" if tp and sl else "conditional",
            "side": first.side,
            "sz": _s(first.qty),
            "tdMode": "cash",
            "state": state,
            "actualSide": fired[0].role if fired else "",
            "ordId": fired[0].order_id if fired else "",
            "ordIdList": [fired[0].order_id] if fired else [],
            "tpTriggerPx": _s(tp.trigger) if tp else "",
            "tpOrdPx": "-1" if tp else "",
            "slTriggerPx": _s(sl.trigger) if sl else "",
            "slOrdPx": "-1" if sl else "",
            "cTime": str(first.created_ms),
            "uTime": str(first.updated_ms),
        }

    def _cancel_algos(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Cancel TP/SL algos by ``algoId``: an entry's attached pair goes as one."""
        answers = []
        for item in items:
            parent = str(item.get("algoId", ""))[1:]
            legs = (
                [o for o in self.book.exits(parent) if o.status == "untriggered"] if parent else []
            )
            if not legs or legs[0].symbol != item.get("instId"):
                code, msg = CODES["not_found"]
                answers.append({"algoId": item.get("algoId"), "sCode": str(code), "sMsg": msg})
                continue
            self.book.cancel(legs[0])
            answers.append({"algoId": item["algoId"], "algoClOrdId": "", "sCode": "0", "sMsg": ""})
        return answers

    def _ack(self, order: SpotOrder) -> dict[str, Any]:
        return {
            "ordId": order.order_id,
            "clOrdId": order.client_id,
            "tag": "",
            "ts": str(self.now_ms()),
            "sCode": "0",
            "sMsg": "Order placed",
        }

    def _find(self, p: dict[str, Any]) -> SpotOrder:
        order = self.book.find(str(p.get("ordId") or ""), str(p.get("clOrdId") or ""))
        # an armed TP/SL is an algo, not an order; the order a fired one placed is a plain one
        armed = order.role and order.status in (
            "untriggered",
            "deactivated",
            "canceled",
            "rejected",
        )
        if armed or order.symbol != p.get("instId"):
            raise Refusal("not_found", str(p.get("ordId") or p.get("clOrdId")))
        return order

    def _orders(self, p: dict[str, Any], keep: Callable[[SpotOrder], bool]) -> list[Any]:
        rows = [
            self._order_json(o)
            for o in sorted(self.book.entries() + self._fired(), key=lambda o: -int(o.order_id))
            if keep(o) and p.get("instId") in (None, o.symbol)
        ]
        # one page, newest first: "limit ... The maximum is 100; The default is 100"
        return rows[: min(max(int(p.get("limit") or 100), 1), 100)]

    def _fired(self) -> list[SpotOrder]:
        """A triggered TP/SL becomes an ordinary market order (OKX links it by algoId)."""
        return [o for o in self.book.exits() if o.status == "filled"]

    def _order_json(self, o: SpotOrder) -> dict[str, Any]:
        attached = []
        if o.take_profit is not None or o.stop_loss is not None:
            attached.append(
                {
                    "attachAlgoId": f"a{o.order_id}",
                    "attachAlgoClOrdId": "",
                    "tpTriggerPx": _s(o.take_profit),
                    "tpTriggerPxType": "last",
                    "tpOrdPx": "-1" if o.take_profit is not None else "",
                    "slTriggerPx": _s(o.stop_loss),
                    "slTriggerPxType": "last",
                    "slOrdPx": "-1" if o.stop_loss is not None else "",
                }
            )
        return {
            "instType": "SPOT",
            "instId": o.symbol,
            "tgtCcy": "base_ccy" if o.type == "market" and o.side == "buy" else "",
            "ccy": "",
            "ordId": o.order_id,
            "clOrdId": o.client_id,
            "algoId": f"a{o.parent}" if o.role else "",
            "tag": "",
            "px": _s(o.price) if o.type == "limit" else "",
            "sz": _s(o.qty),
            "pnl": "0",
            "ordType": o.type,
            "side": o.side,
            "posSide": "net",
            "tdMode": "cash",
            "accFillSz": _s(o.executed),
            "fillPx": _s(o.executions[-1].price) if o.executions else "",
            "tradeId": o.executions[-1].exec_id if o.executions else "",
            "fillSz": _s(o.executions[-1].qty) if o.executions else "",
            "fillTime": str(o.executions[-1].time_ms) if o.executions else "",
            "avgPx": _s(o.avg) if o.executed else "",
            "state": STATE.get(o.status, "filled"),
            "lever": "",
            "attachAlgoOrds": attached,
            "feeCcy": o.fee_asset,
            "fee": _s(-o.fee) if o.fee else "0",  # OKX: a charged fee is negative
            "rebateCcy": "",
            "rebate": "0",
            "category": "normal",
            "uTime": str(o.updated_ms),
            "cTime": str(o.created_ms),
        }

    def _algos(self, p: dict[str, Any]) -> list[Any]:
        """Armed TP/SL of filled entries, one ``oco`` (or ``conditional``) algo per entry."""
        rows = []
        parents = {leg.parent for leg in self.book.exits() if leg.status == "untriggered"}
        for parent in sorted(parents):
            legs = {leg.role: leg for leg in self.book.exits(parent)}
            first = next(iter(legs.values()))
            if p.get("instId") not in (None, first.symbol):
                continue
            tp, sl = legs.get("tp"), legs.get("sl")
            rows.append(
                {
                    "instType": "SPOT",
                    "instId": first.symbol,
                    "algoId": f"a{parent}",
                    "algoClOrdId": "",
                    "ordType": "oco" if tp and sl else "conditional",
                    "side": first.side,
                    "sz": _s(first.qty),
                    "tdMode": "cash",
                    "state": "live",
                    "tpTriggerPx": _s(tp.trigger) if tp else "",
                    "tpOrdPx": "-1" if tp else "",
                    "slTriggerPx": _s(sl.trigger) if sl else "",
                    "slOrdPx": "-1" if sl else "",
                    "cTime": str(first.created_ms),
                }
            )
        return rows

    def _fills(self, p: dict[str, Any]) -> list[Any]:
        return [
            self._fill_json(e)
            for e in reversed(self.book.executions)
            if p.get("instId") in (None, e.symbol) and p.get("ordId") in (None, e.order_id)
        ]

    @staticmethod
    def _fill_json(e: Execution) -> dict[str, Any]:
        return {
            "instType": "SPOT",
            "instId": e.symbol,
            "tradeId": e.exec_id,
            "ordId": e.order_id,
            "clOrdId": e.client_id,
            "billId": e.exec_id,
            "tag": "",
            "fillPx": _s(e.price),
            "fillSz": _s(e.qty),
            "side": e.side,
            "posSide": "net",
            "execType": "M" if e.maker else "T",
            "feeCcy": e.fee_asset,
            "fee": _s(-e.fee),
            "ts": str(e.time_ms),
            "fillTime": str(e.time_ms),
        }
