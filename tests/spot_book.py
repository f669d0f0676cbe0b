"""A spot account and order book shared by the Bybit and OKX simulators.

Balances move on fills (fees: a buy pays in the base asset, a sell in the quote asset, as on both
exchanges); resting limit orders lock what they would spend; attached TP/SL become two protective
exit triggers once the entry fills, holding the bought quantity (Bybit and OKX both occupy the asset
of a spot TP/SL), and the first to trigger sells at market and cancels the other.

Rules are enforced, not assumed: quantity step and minimum, maximum, price tick, minimum order
value, funds, duplicate client ids and the side of the TP/SL triggers. A refusal is a
:class:`Refusal` with a ``kind``; each simulator words it with its exchange's own code and message.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import parse_qsl

from tests.sim_core import SimServer

ZERO = Decimal(0)


class Refusal(Exception):
    """kind: insufficient, qty_min, qty_max, qty_step, price_tick, notional, duplicate, tpsl,
    tpsl_market, not_found, not_open, bad_symbol, bad_param."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Instrument:
    id: str  # BTCUSDT (Bybit), BTC-USDT (OKX)
    base: str
    quote: str
    price: Decimal
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal


def instruments(sep: str, min_notional: Decimal = Decimal(5)) -> tuple[Instrument, ...]:
    """BTC, ETH and SOL against USDT; ``sep`` joins the ids the exchange's way."""
    rows = (
        ("BTC", "95000", "0.01", "0.00001", "100"),
        ("ETH", "3500", "0.01", "0.0001", "5000"),
        ("SOL", "180", "0.01", "0.001", "90000"),
    )
    return tuple(
        Instrument(
            f"{base}{sep}USDT",
            base,
            "USDT",
            Decimal(price),
            Decimal(tick),
            Decimal(step),
            Decimal(step),
            Decimal(max_qty),
            min_notional,
        )
        for base, price, tick, step, max_qty in rows
    )


@dataclass
class Execution:
    exec_id: str
    order_id: str
    client_id: str
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_asset: str
    time_ms: int
    maker: bool


@dataclass
class SpotOrder:
    order_id: str
    client_id: str
    symbol: str
    side: str  # buy / sell
    type: str  # market / limit
    qty: Decimal
    price: Decimal  # the limit; 0 for market
    status: str  # open / filled / canceled / untriggered / triggered / deactivated / rejected
    created_ms: int
    updated_ms: int
    executed: Decimal = ZERO
    value: Decimal = ZERO  # cumulative quote
    fee: Decimal = ZERO
    fee_asset: str = ""
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    role: str = ""  # "" an order; "tp" / "sl" a protective exit trigger of ``parent``
    parent: str = ""
    trigger: Decimal = ZERO  # the trigger price of a tp/sl exit
    executions: list[Execution] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    @property
    def avg(self) -> Decimal:
        return (self.value / self.executed) if self.executed else ZERO


class SpotBook:
    def __init__(
        self,
        specs: tuple[Instrument, ...],
        balances: dict[str, Decimal] | None,
        now_ms: Callable[[], int],
        fee_rate: Decimal = Decimal("0.001"),
        first_id: int = 1001,
    ) -> None:
        self.specs = {s.id: s for s in specs}
        self.prices = {s.id: s.price for s in specs}
        self.balances: dict[str, Decimal] = dict(
            balances if balances is not None else {"USDT": Decimal(10_000), "BTC": Decimal(1)}
        )
        self.locked: dict[str, Decimal] = {}
        self.orders: dict[str, SpotOrder] = {}
        self.executions: list[Execution] = []
        self.orders_created = 0  # entries the account accepted (never exits)
        self.exits_refused = 0  # a fault: the next entries' TP/SL are refused when they fill
        self.refused_roles = ("tp", "sl")  # which of them
        self.no_bids = 0  # a fault: the next market sells find no bid, end cancelled, unfilled
        self.fee_rate = fee_rate
        self.now_ms = now_ms
        self._ids = itertools.count(first_id)

    # -- look-ups -------------------------------------------------------------------------------

    def spec(self, symbol: str) -> Instrument:
        found = self.specs.get(symbol)
        if found is None:
            raise Refusal("bad_symbol", symbol)
        return found

    def find(self, order_id: str = "", client_id: str = "") -> SpotOrder:
        if order_id:
            found = self.orders.get(order_id)
            if found is not None:
                return found
        elif client_id:
            for order in reversed(list(self.orders.values())):
                if order.client_id == client_id:
                    return order
        raise Refusal("not_found", order_id or client_id)

    def entries(self) -> list[SpotOrder]:
        return [o for o in self.orders.values() if not o.role]

    def exits(self, parent: str = "") -> list[SpotOrder]:
        """The protective exit triggers (of ``parent``'s entry, or all)."""
        return [o for o in self.orders.values() if o.role and parent in ("", o.parent)]

    def free(self, asset: str) -> Decimal:
        return self.balances.get(asset, ZERO)

    # -- orders ---------------------------------------------------------------------------------

    def place(
        self,
        symbol: str,
        side: str,
        type_: str,
        qty: Decimal,
        price: Decimal | None,
        client_id: str,
        take_profit: Decimal | None = None,
        stop_loss: Decimal | None = None,
        attach_on_market: bool = True,
    ) -> SpotOrder:
        spec = self.spec(symbol)
        if side not in ("buy", "sell") or type_ not in ("market", "limit"):
            raise Refusal("bad_param", f"{side} {type_}")
        if client_id and any(o.client_id == client_id for o in self.orders.values()):
            raise Refusal("duplicate", client_id)
        last = self.prices[symbol]
        if type_ == "limit" and (price is None or price <= 0):
            raise Refusal("bad_param", "price")
        at = price if type_ == "limit" and price is not None else last
        self._check(spec, qty, at)
        if type_ == "limit" and at % spec.tick != 0:
            raise Refusal("price_tick", str(at))
        if take_profit is not None or stop_loss is not None:
            if type_ == "market" and not attach_on_market:
                raise Refusal("tpsl_market", "TP/SL only on limit orders")
            self._check_tpsl(spec, side, at, take_profit, stop_loss)
        asset, amount = (spec.quote, qty * at) if side == "buy" else (spec.base, qty)
        if self.free(asset) < amount:
            raise Refusal("insufficient", f"{asset} {self.free(asset)} < {amount}")
        now = self.now_ms()
        order = SpotOrder(
            order_id=str(next(self._ids)),
            client_id=client_id,
            symbol=symbol,
            side=side,
            type=type_,
            qty=qty,
            price=at if type_ == "limit" else ZERO,
            status="open",
            created_ms=now,
            updated_ms=now,
            take_profit=take_profit,
            stop_loss=stop_loss,
        )
        self.orders[order.order_id] = order
        self.orders_created += 1
        crosses = (side == "buy" and at >= last) or (side == "sell" and at <= last)
        if type_ == "market" and side == "sell" and self.no_bids > 0:
            self.no_bids -= 1
            order.status = "canceled"
        elif type_ == "market" or crosses:
            self._execute(order, last, maker=False)
        else:
            self._lock(asset, amount)
        return order

    def cancel(self, order: SpotOrder) -> SpotOrder:
        if order.status not in ("open", "untriggered"):
            raise Refusal("not_open", order.status)
        if order.role:
            self._drop_exits(order.parent, reason="canceled")
        else:
            self._release(order)
            order.status = "canceled"
        order.updated_ms = self.now_ms()
        return order

    def fill(self, order_id: str) -> None:
        """Fill a resting limit order at its price (as if the market crossed it)."""
        order = self.orders[order_id]
        self._release(order)
        self._execute(order, order.price, maker=True)

    def set_price(self, symbol: str, price: Decimal) -> None:
        """The market moves: resting limits that cross fill, then exit triggers fire."""
        self.prices[symbol] = price
        for order in list(self.orders.values()):
            if order.symbol != symbol or not order.is_open or order.role:
                continue
            if (order.side == "buy" and price <= order.price) or (
                order.side == "sell" and price >= order.price
            ):
                self.fill(order.order_id)
        for leg in list(self.orders.values()):
            if leg.symbol != symbol or leg.status != "untriggered":
                continue
            up = leg.side == "sell"  # a sell exit protects a long
            touched = (price >= leg.trigger) if (leg.role == "tp") == up else price <= leg.trigger
            if touched:
                self._trigger(leg, price)

    # -- the account ----------------------------------------------------------------------------

    def _check(self, spec: Instrument, qty: Decimal, price: Decimal) -> None:
        if qty % spec.step != 0:
            raise Refusal("qty_step", str(qty))
        if qty < spec.min_qty:
            raise Refusal("qty_min", str(qty))
        if qty > spec.max_qty:
            raise Refusal("qty_max", str(qty))
        if qty * price < spec.min_notional:
            raise Refusal("notional", str(qty * price))

    def _check_tpsl(
        self,
        spec: Instrument,
        side: str,
        price: Decimal,
        take_profit: Decimal | None,
        stop_loss: Decimal | None,
    ) -> None:
        for name, value in (("takeProfit", take_profit), ("stopLoss", stop_loss)):
            if value is not None and (value <= 0 or value % spec.tick != 0):
                raise Refusal("tpsl", f"{name} {value} is not on the tick {spec.tick}")
        above = (take_profit, "takeProfit") if side == "buy" else (stop_loss, "stopLoss")
        below = (stop_loss, "stopLoss") if side == "buy" else (take_profit, "takeProfit")
        if above[0] is not None and above[0] <= price:
            raise Refusal("tpsl", f"{above[1]} {above[0]} must be above {price}")
        if below[0] is not None and below[0] >= price:
            raise Refusal("tpsl", f"{below[1]} {below[0]} must be below {price}")

    def _lock(self, asset: str, amount: Decimal) -> None:
        self.balances[asset] = self.free(asset) - amount
        self.locked[asset] = self.locked.get(asset, ZERO) + amount

    def _unlock(self, asset: str, amount: Decimal) -> None:
        self.locked[asset] = self.locked.get(asset, ZERO) - amount
        self.balances[asset] = self.free(asset) + amount

    def _release(self, order: SpotOrder) -> None:
        if not order.is_open or order.type == "market":
            return
        spec = self.specs[order.symbol]
        left = order.qty - order.executed
        if order.side == "buy":
            self._unlock(spec.quote, left * order.price)
        else:
            self._unlock(spec.base, left)

    def _execute(self, order: SpotOrder, price: Decimal, *, maker: bool) -> None:
        spec = self.specs[order.symbol]
        qty = order.qty - order.executed
        cost = qty * price
        if order.side == "buy":
            fee = (qty * self.fee_rate).quantize(Decimal("0.00000001"), ROUND_DOWN)
            self.balances[spec.quote] = self.free(spec.quote) - cost
            self.balances[spec.base] = self.free(spec.base) + qty - fee
            fee_asset = spec.base
        else:
            fee = (cost * self.fee_rate).quantize(Decimal("0.00000001"), ROUND_DOWN)
            self.balances[spec.base] = self.free(spec.base) - qty
            self.balances[spec.quote] = self.free(spec.quote) + cost - fee
            fee_asset = spec.quote
        now = self.now_ms()
        execution = Execution(
            exec_id=f"e{order.order_id}-{len(order.executions) + 1}",
            order_id=order.order_id,
            client_id=order.client_id,
            symbol=order.symbol,
            side=order.side,
            price=price,
            qty=qty,
            fee=fee,
            fee_asset=fee_asset,
            time_ms=now,
            maker=maker,
        )
        order.executions.append(execution)
        self.executions.append(execution)
        order.executed += qty
        order.value += cost
        order.fee += fee
        order.fee_asset = fee_asset
        order.status = "filled"
        order.updated_ms = now
        if order.take_profit is not None or order.stop_loss is not None:
            self._arm_exits(order, spec, qty - fee if order.side == "buy" else qty)

    def _arm_exits(self, entry: SpotOrder, spec: Instrument, held: Decimal) -> None:
        """The entry filled: its TP/SL become exit triggers holding the quantity bought."""
        qty = (held / spec.step).to_integral_value(ROUND_DOWN) * spec.step
        side = "sell" if entry.side == "buy" else "buy"
        now = self.now_ms()
        refused = self.refused_roles if self.exits_refused > 0 else ()  # e.g. a stop crossed
        self.exits_refused -= bool(refused)
        armed = {"tp": entry.take_profit, "sl": entry.stop_loss}
        if side == "sell" and any(v is not None for r, v in armed.items() if r not in refused):
            self._lock(spec.base, qty)
        for role, trigger in (("tp", entry.take_profit), ("sl", entry.stop_loss)):
            if trigger is None:
                continue
            leg = SpotOrder(
                order_id=str(next(self._ids)),
                client_id="",
                symbol=entry.symbol,
                side=side,
                type="market",
                qty=qty,
                price=ZERO,
                status="rejected" if role in refused else "untriggered",
                created_ms=now,
                updated_ms=now,
                role=role,
                parent=entry.order_id,
                trigger=trigger,
            )
            self.orders[leg.order_id] = leg

    def _drop_exits(self, parent: str, reason: str) -> None:
        legs = [o for o in self.exits(parent) if o.status == "untriggered"]
        for leg in legs:
            leg.status = reason
            leg.updated_ms = self.now_ms()
        if legs and legs[0].side == "sell":
            self._unlock(self.specs[legs[0].symbol].base, legs[0].qty)

    def _trigger(self, leg: SpotOrder, price: Decimal) -> None:
        self._drop_exits(leg.parent, reason="deactivated")
        leg.status = "triggered"
        self._execute(leg, price, maker=False)


class SpotSim(SimServer):
    """A simulator over a :class:`SpotBook`: the test controls both v5 simulators share."""

    def __init__(
        self,
        specs: tuple[Instrument, ...],
        balances: dict[str, Decimal] | None,
        clock_offset_ms: int,
    ) -> None:
        super().__init__(clock_offset_ms)
        self.book = SpotBook(specs, balances, self.now_ms)

    @property
    def orders_created(self) -> int:
        return self.book.orders_created

    def set_price(self, symbol: str, price: Decimal) -> None:
        with self._lock:
            self.book.set_price(symbol, price)

    def fill(self, order_id: str) -> None:
        with self._lock:
            self.book.fill(order_id)

    @staticmethod
    def params(method: str, query: str, body: str) -> dict[str, Any]:
        """A request's parameters: its query string, and its JSON body on a POST."""
        params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        if method == "POST" and body:
            params.update(json.loads(body))
        return params
