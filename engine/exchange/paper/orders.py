"""What the paper venue keeps of an order, and the results particular to the paper venue."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from engine.exchange.base import Fill, Order, OrderStatus, OrderType, Side
from engine.exchange.prices import aware_utc
from engine.money import ZERO
from engine.untrusted import parse_decimal

EventKind = Literal["partial_fill", "fill", "cancel"]


@dataclass(frozen=True)
class PaperBalance:
    free: Decimal
    locked: Decimal  # held by resting orders

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass(frozen=True)
class PaperEvent:
    """Something that happened to an order during :meth:`PaperExchange.advance`.

    ``kind`` uses the journal's event names: ``partial_fill``, ``fill`` (the order is now fully
    filled) or ``cancel`` (e.g. the other leg of an OCO filled; ``reason`` says why).
    """

    kind: EventKind
    order: Order
    fill: Fill | None = None
    reason: str = ""


@dataclass
class OrderRecord:
    """An order as the paper venue keeps it (mutable); :meth:`order` is the public view."""

    id: str
    client_id: str
    symbol: str
    side: Side
    type: OrderType
    qty: Decimal
    price: Decimal | None
    created_at: datetime
    status: OrderStatus = OrderStatus.OPEN
    stop_price: Decimal | None = None
    list_id: str | None = None
    triggered: bool = False  # a stop leg whose stop was hit: now a limit order at its price
    filled: Decimal = ZERO
    cost: Decimal = ZERO  # sum of qty * price over the fills
    fee: Decimal = ZERO
    fee_asset: str = ""
    reserve_asset: str = ""
    reserved: Decimal = ZERO  # what this order still holds locked
    fills: list[Fill] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled

    def order(self) -> Order:
        return Order(
            id=self.id,
            client_id=self.client_id,
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            qty=self.qty,
            price=self.price,
            filled=self.filled,
            avg_price=(self.cost / self.filled) if self.filled else None,
            status=self.status,
            created_at=self.created_at,
            fee=self.fee,
            fee_asset=self.fee_asset,
            stop_price=self.stop_price,
            list_id=self.list_id,
            fills=tuple(self.fills),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "client_id": self.client_id,
            "symbol": self.symbol,
            "side": self.side,
            "type": self.type,
            "qty": self.qty,
            "price": self.price,
            "created_at": self.created_at,
            "status": self.status,
            "stop_price": self.stop_price,
            "list_id": self.list_id,
            "triggered": self.triggered,
            "filled": self.filled,
            "cost": self.cost,
            "fee": self.fee,
            "fee_asset": self.fee_asset,
            "reserve_asset": self.reserve_asset,
            "reserved": self.reserved,
            "fills": [
                {
                    "qty": f.qty,
                    "price": f.price,
                    "fee": f.fee,
                    "fee_asset": f.fee_asset,
                    "time": f.time,
                }
                for f in self.fills
            ],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> OrderRecord:
        def opt(key: str) -> Decimal | None:
            value = raw.get(key)
            return None if value is None else parse_decimal(value, key, positive=True)

        rec = cls(
            id=str(raw["id"]),
            client_id=str(raw["client_id"]),
            symbol=str(raw["symbol"]),
            side=Side(raw["side"]),
            type=OrderType(raw["type"]),
            qty=parse_decimal(raw["qty"], "qty", minimum=ZERO),
            price=opt("price"),
            created_at=read_time(raw["created_at"]),
            status=OrderStatus(raw["status"]),
            stop_price=opt("stop_price"),
            list_id=None if raw.get("list_id") is None else str(raw["list_id"]),
            triggered=bool(raw.get("triggered", False)),
            filled=parse_decimal(raw["filled"], "filled", minimum=ZERO),
            cost=parse_decimal(raw["cost"], "cost", minimum=ZERO),
            fee=parse_decimal(raw["fee"], "fee", minimum=ZERO),
            fee_asset=str(raw["fee_asset"]),
            reserve_asset=str(raw["reserve_asset"]),
            reserved=parse_decimal(raw["reserved"], "reserved", minimum=ZERO),
        )
        for f in raw["fills"]:
            rec.fills.append(
                Fill(
                    order_id=rec.id,
                    client_id=rec.client_id,
                    symbol=rec.symbol,
                    side=rec.side,
                    qty=parse_decimal(f["qty"], "fills.qty", minimum=ZERO),
                    price=parse_decimal(f["price"], "fills.price", minimum=ZERO),
                    fee=parse_decimal(f["fee"], "fills.fee", minimum=ZERO),
                    fee_asset=str(f["fee_asset"]),
                    time=read_time(f["time"]),
                )
            )
        return rec


def read_time(value: Any) -> datetime:
    return aware_utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
