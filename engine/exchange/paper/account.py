"""The paper account: balances, locks and entry prices, its orders and their counters.

- Fees, as Binance spot charges them: ``maker_fee_pct`` / ``taker_fee_pct`` of what each fill
  gives the account, in the asset received (a buy pays in the base asset, a sell in the quote),
  rounded down to 8 decimals per fill.
- Funds of resting orders are locked (the free balance goes down at once): a buy locks its
  quantity times its price (its fee comes out of what it receives); once part of it has filled
  at a better price, only the rest's quantity times its price. Spot only: selling more than
  held, or buying more than the free quote pays for, raises :class:`InsufficientFunds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from engine.exchange.base import (
    Fill,
    InsufficientFunds,
    InvalidOrder,
    MarketRules,
    Order,
    OrderStatus,
    OrderType,
    Side,
)
from engine.exchange.paper.markets import fmt
from engine.exchange.paper.orders import OrderRecord, PaperBalance
from engine.money import ZERO, D

CLOSED_ORDERS_KEPT = 1000  # closed orders kept for lookups; open orders are always kept
ENTRY_PRECISION = Decimal("0.00000001")
FEE_PRECISION = Decimal("0.00000001")  # Binance's commission precision (8 decimals)


class PaperAccount:
    """What the paper venue holds for its one account. Not thread-safe: the exchange locks."""

    def __init__(
        self,
        balances: Mapping[str, Decimal],
        *,
        seed: int,
        maker_rate: Decimal,
        taker_rate: Decimal,
    ) -> None:
        self.seed = seed
        self.maker_rate = maker_rate
        self.taker_rate = taker_rate
        self.free: dict[str, Decimal] = {a: D(v) for a, v in balances.items()}
        self.locked: dict[str, Decimal] = {}
        self.entry: dict[str, Decimal] = {}  # base asset -> average entry price (quote)
        self.orders: dict[str, OrderRecord] = {}
        self.order_seq = 0
        self.client_seq = 0
        self.list_seq = 0

    # -- balances -----------------------------------------------------------------------------

    def holding(self, asset: str) -> Decimal:
        return self.free.get(asset, ZERO) + self.locked.get(asset, ZERO)

    def balance(self, asset: str) -> PaperBalance:
        return PaperBalance(self.free.get(asset, ZERO), self.locked.get(asset, ZERO))

    def balances(self) -> dict[str, PaperBalance]:
        return {a: self.balance(a) for a in sorted(set(self.free) | set(self.locked))}

    def check_funds(self, asset: str, need: Decimal) -> None:
        have = self.free.get(asset, ZERO)
        if need > have:
            raise InsufficientFunds(
                f"insufficient balance: need {fmt(need)} {asset}, have {fmt(have)}"
            )

    def forget_asset(self, asset: str) -> None:
        """Drop a zero balance of ``asset`` and its entry price (no market trades it any more)."""
        for book in (self.free, self.locked):
            if book.get(asset) == 0:
                del book[asset]
        self.entry.pop(asset, None)

    # -- orders -------------------------------------------------------------------------------

    def client_id(self, params: Mapping[str, Any] | None) -> str:
        """The ``client_id`` of ``params``, else the next of this seed's; refused while an open
        order has it."""
        given = (params or {}).get("client_id")
        if given:
            client_id = str(given)
        else:
            self.client_seq += 1
            client_id = f"paper-{self.seed}-{self.client_seq:06d}"
        for rec in self.orders.values():
            if rec.client_id == client_id and rec.status.is_open:
                raise InvalidOrder(f"duplicate client order id {client_id} (order {rec.id})")
        return client_id

    def oco_client_ids(self, params: Mapping[str, Any]) -> tuple[str, str]:
        """The legs' client ids: ``tp_client_id`` / ``sl_client_id``, else the list's
        ``client_id`` with ``-tp``/``-sl`` suffixes, else the next of this seed's."""
        list_client = str(params.get("client_id") or "")
        tp_client = str(params.get("tp_client_id") or (f"{list_client}-tp" if list_client else ""))
        sl_client = str(params.get("sl_client_id") or (f"{list_client}-sl" if list_client else ""))
        tp_id = self.client_id({"client_id": tp_client})
        sl_id = self.client_id({"client_id": sl_client})
        if tp_id == sl_id:
            raise InvalidOrder(f"duplicate client order id {tp_id} for both OCO legs")
        return tp_id, sl_id

    def new_order(
        self,
        client_id: str,
        rules: MarketRules,
        side: Side,
        type: OrderType,
        qty: Decimal,
        price: Decimal | None,
        now: datetime,
    ) -> OrderRecord:
        self.order_seq += 1
        return OrderRecord(
            id=str(self.order_seq),
            client_id=client_id,
            symbol=rules.symbol,
            side=side,
            type=type,
            qty=qty,
            price=price,
            created_at=now,
            fee_asset=rules.base if side is Side.BUY else rules.quote,
        )

    def new_list_id(self) -> str:
        self.list_seq += 1
        return str(self.list_seq)

    def find(self, id: str, symbol: str) -> OrderRecord | None:
        rec = self.orders.get(id)
        if rec is None:  # the CLI accepts a client id too
            matches = [r for r in self.orders.values() if r.client_id == id]
            rec = matches[-1] if matches else None
        if rec is None or rec.symbol != symbol:
            return None
        return rec

    def open_orders(self, symbol: str | None = None) -> list[OrderRecord]:
        return [
            r
            for r in self.orders.values()
            if r.status.is_open and (symbol is None or r.symbol == symbol)
        ]

    def open_counts(self, symbol: str) -> tuple[int, int]:
        """The open orders on ``symbol``, and how many of them are stops (algo orders)."""
        held = self.open_orders(symbol)
        return len(held), sum(r.type is OrderType.STOP_LOSS_LIMIT for r in held)

    def last_by_client_id(self, client_id: str, symbol: str) -> Order | None:
        found = [r for r in self.orders.values() if r.client_id == client_id and r.symbol == symbol]
        return found[-1].order() if found else None

    def legs(self, rec: OrderRecord) -> list[OrderRecord]:
        if rec.list_id is None:
            return [rec]
        return [r for r in self.orders.values() if r.list_id == rec.list_id]

    def cancel_list(self, rec: OrderRecord) -> None:
        """Cancel ``rec``, and the other leg when it is an OCO leg, releasing their locks."""
        for leg in self.legs(rec):
            if leg.status.is_open:
                self.release(leg)
                leg.status = OrderStatus.CANCELED

    def first_fill_of_list(self, rec: OrderRecord) -> list[OrderRecord]:
        """OCO: before the first fill of one leg (or its stop's trigger), end the other, whose
        lock passes to this leg; the legs ended. They end EXPIRED, as Binance ends the other
        order of a list (a cancel gives CANCELED)."""
        if rec.list_id is None or rec.filled > 0:
            return []
        cancelled = []
        for other in self.legs(rec):
            if other is rec or not other.status.is_open:
                continue
            if other.reserved and other.reserve_asset == rec.reserve_asset:
                rec.reserved += other.reserved
                other.reserved = ZERO
            self.release(other)
            other.status = OrderStatus.EXPIRED
            cancelled.append(other)
        return cancelled

    def trim(self) -> None:
        if len(self.orders) <= 2 * CLOSED_ORDERS_KEPT:
            return  # amortized: trim in batches, not on every step
        closed = [k for k, r in self.orders.items() if not r.status.is_open]
        for key in closed[: max(0, len(closed) - CLOSED_ORDERS_KEPT)]:
            del self.orders[key]

    # -- locks and fills ----------------------------------------------------------------------

    def lock_funds(self, rec: OrderRecord, asset: str, amount: Decimal) -> None:
        self.free[asset] = self.free.get(asset, ZERO) - amount
        self.locked[asset] = self.locked.get(asset, ZERO) + amount
        rec.reserve_asset = asset
        rec.reserved += amount

    @staticmethod
    def _tidy(amount: Decimal) -> Decimal:
        """A plain ``0`` for any zero (``0E-8`` is equal, but reads badly in the state file)."""
        return ZERO if amount == 0 else amount

    def release(self, rec: OrderRecord) -> None:
        if rec.reserved:
            asset = rec.reserve_asset
            self.locked[asset] = self._tidy(self.locked.get(asset, ZERO) - rec.reserved)
            self.free[asset] = self.free.get(asset, ZERO) + rec.reserved
            rec.reserved = ZERO

    def _debit(self, rec: OrderRecord, asset: str, amount: Decimal) -> None:
        """Take ``amount`` of ``asset``: from the order's lock first, the rest from free."""
        use = min(rec.reserved, amount) if rec.reserve_asset == asset else ZERO
        if use:
            rec.reserved = self._tidy(rec.reserved - use)
            self.locked[asset] = self._tidy(self.locked.get(asset, ZERO) - use)
        if amount - use:
            self.free[asset] = self.free.get(asset, ZERO) - (amount - use)

    def settle(
        self,
        rec: OrderRecord,
        rules: MarketRules,
        qty: Decimal,
        price: Decimal,
        maker: bool,
        now: datetime,
    ) -> Fill:
        """Fill ``qty`` of ``rec`` at ``price``: move the funds, charge the fee, book the fill."""
        notional = qty * price
        received = qty if rec.side is Side.BUY else notional
        rate = self.maker_rate if maker else self.taker_rate
        fee = (received * rate).quantize(FEE_PRECISION, ROUND_DOWN)
        if rec.side is Side.BUY:
            held = self.holding(rules.base)
            self._debit(rec, rules.quote, notional)
            self.free[rules.base] = self.free.get(rules.base, ZERO) + qty - fee
            if held <= 0:
                self.entry[rules.base] = price
            elif rules.base in self.entry:
                avg = (self.entry[rules.base] * held + notional) / (held + qty)
                self.entry[rules.base] = avg.quantize(ENTRY_PRECISION)
        else:
            self._debit(rec, rules.base, qty)
            self.free[rules.quote] = self.free.get(rules.quote, ZERO) + notional - fee
            if self.holding(rules.base) <= 0:
                self.entry.pop(rules.base, None)
        rec.filled += qty
        rec.cost += notional
        rec.fee += fee
        fill = Fill(
            order_id=rec.id,
            client_id=rec.client_id,
            symbol=rec.symbol,
            side=rec.side,
            qty=qty,
            price=price,
            fee=fee,
            fee_asset=rec.fee_asset,
            time=now,
        )
        rec.fills.append(fill)
        if rec.filled >= rec.qty:
            rec.status = OrderStatus.FILLED
            self.release(rec)
        else:
            rec.status = OrderStatus.PARTIALLY_FILLED
            self._hold_only_the_rest(rec, rules)
        return fill

    def _hold_only_the_rest(self, rec: OrderRecord, rules: MarketRules) -> None:
        """A buy that filled below its limit (a crossing limit taking better levels) holds the
        rest's quantity times its limit, no more: the difference is free at once, as on Binance."""
        if rec.side is not Side.BUY or rec.price is None or rec.reserve_asset != rules.quote:
            return
        excess = rec.reserved - rec.remaining * rec.price
        if excess > 0:
            rec.reserved -= excess
            self.locked[rules.quote] = self._tidy(self.locked.get(rules.quote, ZERO) - excess)
            self.free[rules.quote] = self.free.get(rules.quote, ZERO) + excess
