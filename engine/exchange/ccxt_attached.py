"""The TP/SL legs Bybit and OKX hold for an entry they were attached to: found and cancelled.

Kobe sends the prices with the entry (``create_order(..., params={"take_profit", "stop_loss"})``);
the exchange makes the exit orders itself. They are followed by the entry's own ids, and shown as
Kobe's orders with the client ids ``<entry's client id>tp`` / ``...sl``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from functools import partial
from typing import Any

from engine.exchange.base import Order, OrderNotFound, OrderStatus, OrderType
from engine.exchange.ccxt_client import CcxtClient
from engine.exchange.ccxt_parse import ZERO, dec, to_order

# Bybit: the TP/SL orders it made from an entry's attached prices, and where they are listed
BYBIT_ROLES = {"TakeProfit": "tp", "StopLoss": "sl"}
TPSL_FILTER = {"orderFilter": "tpslOrder"}


class CcxtAttachedExits(CcxtClient):
    """A ccxt client that also follows the TP/SL attached to entries (Bybit, OKX)."""

    def fetch_attached_exits(self, symbol: str, entry_id: str, entry_client_id: str) -> list[Order]:
        """The TP/SL attached to one entry, linked by the entry's own ids, as Kobe's orders.

        Bybit names the entry's ``orderLinkId`` on each TP/SL order it made from it
        (``parentOrderLinkId``): armed ones are listed under ``orderFilter=tpslOrder``, fired or
        deactivated ones in the order history. OKX gives the entry its TP/SL algo's id
        (``attachAlgoOrds[].attachAlgoId``): armed, it is a pending algo with that ``algoId``;
        fired, the order it placed carries that ``algoId``, and the other leg went with it. The
        history is read only when an armed leg is missing.
        """
        if not self.capabilities(symbol).attached_tp_sl:
            return []
        self.load_markets()
        return self._read(
            lambda: self._attached_raw(symbol, entry_id, entry_client_id),
            f"look up the exits of {entry_client_id}",
        )

    def _attached_raw(self, symbol: str, entry_id: str, entry_cid: str) -> list[Order]:
        legs: dict[str, Order] = {}
        if self.name == "bybit":
            for armed in (True, False):
                if armed:
                    rows = self._raw(
                        partial(self._ex.fetch_open_orders, symbol, None, None, TPSL_FILTER)
                    )
                elif {"tp", "sl"} <= set(legs):
                    break
                else:
                    rows = self._raw(
                        partial(self._ex.fetch_canceled_and_closed_orders, symbol, None, None, {})
                    )
                for raw in rows:
                    info = raw.get("info") or {}
                    role = BYBIT_ROLES.get(str(info.get("stopOrderType")))
                    if role and info.get("parentOrderLinkId") == entry_cid and role not in legs:
                        legs[role] = self._leg(raw, f"{entry_cid}{role}")
            return [legs[r] for r in sorted(legs)]
        algo = self._attached_algo(symbol, entry_id)
        if algo is None:
            return []
        algo_id, triggers = algo
        params = {"trigger": True, "ordType": "conditional,oco", "algoId": algo_id}
        for raw in self._raw(partial(self._ex.fetch_open_orders, symbol, None, None, params)):
            if (raw.get("info") or {}).get("algoId") == algo_id:
                order = to_order(raw)
                return [
                    replace(order, client_id=f"{entry_cid}{role}", type=OrderType.MARKET,
                            price=None, stop_price=trigger)
                    for role, trigger in sorted(triggers.items())
                ]  # fmt: skip
        history = self._raw(partial(self._ex.fetch_closed_orders, symbol, None, None, {}))
        for raw in history:
            if (raw.get("info") or {}).get("algoId") != algo_id:
                continue
            fired = to_order(raw)
            paid = fired.avg_price or ZERO
            role = min(triggers, key=lambda r: abs(triggers[r] - paid))  # the leg it fired at
            for leg, trigger in sorted(triggers.items()):
                if leg == role:
                    legs[leg] = self._with_fees(
                        replace(fired, client_id=f"{entry_cid}{leg}", stop_price=trigger)
                    )
                else:  # OKX removes the other leg with the fire: it never had an order
                    legs[leg] = replace(
                        fired, client_id=f"{entry_cid}{leg}", status=OrderStatus.CANCELED,
                        filled=ZERO, avg_price=None, fee=ZERO, fee_asset="", fills=(),
                        stop_price=trigger,
                    )  # fmt: skip
            break
        return [legs[r] for r in sorted(legs)]

    def _leg(self, raw: Mapping[str, Any], client_id: str) -> Order:
        order = to_order(raw, client_id)
        return self._with_fees(replace(order, client_id=client_id, type=OrderType.MARKET))

    def _attached_algo(self, symbol: str, entry_id: str) -> tuple[str, dict[str, Decimal]] | None:
        """OKX: the id of the TP/SL algo the entry was given, and its triggers (read once)."""
        known = self._algos.get(entry_id)
        if known is None:
            info = self._find_raw(symbol, order_id=entry_id).get("info") or {}
            for attached in info.get("attachAlgoOrds") or []:
                triggers = {
                    role: price
                    for role, key in (("tp", "tpTriggerPx"), ("sl", "slTriggerPx"))
                    if (price := dec(attached.get(key))) is not None
                }
                if attached.get("attachAlgoId") and triggers:
                    known = (str(attached["attachAlgoId"]), triggers)
                    self._algos[entry_id] = known
                    break
        return known

    def cancel_attached_exits(
        self, symbol: str, entry_id: str, entry_client_id: str
    ) -> list[Order]:
        """Cancel an entry's armed TP/SL: Bybit's orders under ``orderFilter=tpslOrder``, OKX's
        algo with ``cancel-algos`` (both legs are one algo there)."""
        armed = [
            leg
            for leg in self.fetch_attached_exits(symbol, entry_id, entry_client_id)
            if leg.status.is_open
        ]
        if not armed:
            raise OrderNotFound(f"{self.name}: no armed TP/SL for entry {entry_client_id}")

        def cancel() -> None:
            for leg_id in dict.fromkeys(leg.id for leg in armed):  # OKX: one algo, two legs
                params = TPSL_FILTER if self.name == "bybit" else {"trigger": True}
                # gone with its sibling, or fired meanwhile: read below
                with contextlib.suppress(OrderNotFound):
                    self._raw(partial(self._ex.cancel_order, leg_id, symbol, dict(params)))

        self._read(cancel, f"cancel the exits of {entry_client_id}")
        now = {
            leg.client_id: leg
            for leg in self.fetch_attached_exits(symbol, entry_id, entry_client_id)
        }
        return [
            now.get(leg.client_id) or replace(leg, status=OrderStatus.CANCELED) for leg in armed
        ]
