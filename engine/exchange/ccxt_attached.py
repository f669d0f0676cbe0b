"""The TP/SL legs Bybit and OKX hold for an entry they were attached to: found and cancelled.

Kobe sends the prices with the entry (``create_order(..., params={"take_profit", "stop_loss"})``);
the exchange makes the exit orders itself. They are followed by the entry's own ids, and shown as
Kobe's orders with the client ids ``<entry's client id>tp`` / ``...sl``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from functools import partial
from typing import Any

from engine.exchange.base import (
    AttachedRef,
    AuthenticationError,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    NotSupported,
    Order,
    OrderNotFound,
    OrderStatus,
    OrderType,
)
from engine.exchange.ccxt_client import CcxtClient
from engine.exchange.ccxt_parse import ZERO, dec, to_order

# Bybit: the TP/SL orders it made from an entry's attached prices, and where they are listed
BYBIT_ROLES = {"TakeProfit": "tp", "StopLoss": "sl"}
TPSL_FILTER = {"orderFilter": "tpslOrder"}
ARMED_PAGE = 50  # Bybit's largest page of open orders


def _gone(like: Order, client_id: str, stop_price: Decimal | None, id: str = "") -> Order:
    """A leg the exchange removed (with its sibling's fire, or a cancel): nothing filled."""
    return replace(
        like, client_id=client_id, status=OrderStatus.CANCELED, filled=ZERO, avg_price=None,
        fee=ZERO, fee_asset="", fills=(), stop_price=stop_price, id=id or like.id,
    )  # fmt: skip


def _okx_triggers(row: Mapping[str, Any]) -> dict[str, Decimal]:
    """OKX: the take-profit and stop-loss triggers a row names (an entry's ``attachAlgoOrds``
    item, an algo); a leg with no trigger is not there."""
    return {
        role: price
        for role, key in (("tp", "tpTriggerPx"), ("sl", "slTriggerPx"))
        if (price := dec(row.get(key))) is not None
    }


class CcxtAttachedExits(CcxtClient):
    """A ccxt client that also follows the TP/SL attached to entries (Bybit, OKX)."""

    def fetch_attached_exits(
        self,
        symbol: str,
        entry_id: str,
        entry_client_id: str,
        leg_ids: Mapping[str, str] | None = None,
    ) -> list[Order]:
        ref = AttachedRef(entry_id, entry_client_id, dict(leg_ids or {}))
        return self.fetch_attached_exits_of(symbol, [ref]).get(entry_client_id, [])

    def fetch_attached_exits_of(
        self, symbol: str, refs: Sequence[AttachedRef]
    ) -> dict[str, list[Order]]:
        """The TP/SL attached to entries on ``symbol``, linked by each entry's own ids, as
        Kobe's orders; the list of armed legs is read once for all of them.

        Bybit names the entry's ``orderLinkId`` on each TP/SL order it made from it
        (``parentOrderLinkId``): armed ones are listed under ``orderFilter=tpslOrder`` (a page of
        50); a leg not there is asked for by its own id (history, then armed). OKX gives the
        entry its TP/SL algo's id (``attachAlgoOrds[].attachAlgoId``): armed, it is a pending
        algo; otherwise the algo itself (``order-algo``) says what became of it: the order a
        fired leg placed (``ordIdList``, ``actualSide``), or cancelled. Never a scan of the
        symbol's history beyond one page: a leg is found by an id wherever it is.
        """
        if not refs or not self.capabilities(symbol).attached_tp_sl:
            return {}
        self.load_markets()
        read = self._bybit_legs if self.name == "bybit" else self._okx_legs
        try:
            return self._read(lambda: read(symbol, refs), f"look up the exits on {symbol}")
        except (InvalidOrder, InsufficientFunds, AuthenticationError, NotSupported) as exc:
            # a read the exchange refused (a retCode / sCode on it) says nothing of the exits:
            # never their refusal, which would hand the position to the watchdog while the
            # exchange still holds its TP/SL (two sells at the stop)
            raise ExchangeError(
                f"{self.name}: reading the TP/SL on {symbol} failed, their state is unknown: {exc}"
            ) from exc

    def _bybit_legs(self, symbol: str, refs: Sequence[AttachedRef]) -> dict[str, list[Order]]:
        armed: list[Any] = self._raw(
            partial(self._ex.fetch_open_orders, symbol, None, ARMED_PAGE, dict(TPSL_FILTER))
        )
        history: list[Any] | None = None  # the first page, only for legs never confirmed
        out: dict[str, list[Order]] = {}
        for ref in refs:
            cid = ref.entry_client_id
            legs = self._bybit_match(armed, cid, {})
            for role, leg_id in sorted(ref.leg_ids.items()):
                if role not in legs:  # known: asked for by its own id, wherever it is
                    legs = self._bybit_match(self._bybit_by_id(symbol, leg_id), cid, legs)
            if not ref.leg_ids and len(legs) < 2:
                if history is None:
                    history = self._raw(
                        partial(self._ex.fetch_canceled_and_closed_orders, symbol, None, None, {})
                    )
                legs = self._bybit_match(history, cid, legs)
            fired = [leg for leg in legs.values() if leg.status is OrderStatus.FILLED]
            for role in ref.leg_ids:
                if role not in legs and fired:  # gone from every list once its sibling fired
                    legs[role] = _gone(fired[0], f"{cid}{role}", None, id=ref.leg_ids[role])
            out[cid] = [legs[r] for r in sorted(legs)]
        return out

    def _bybit_match(
        self, rows: list[Any], entry_cid: str, legs: dict[str, Order]
    ) -> dict[str, Order]:
        """``legs`` with the rows that are TP/SL orders made from ``entry_cid``'s prices."""
        legs = dict(legs)
        for raw in rows:
            info = raw.get("info") or {}
            role = BYBIT_ROLES.get(str(info.get("stopOrderType")))
            if role and info.get("parentOrderLinkId") == entry_cid and role not in legs:
                legs[role] = self._leg(raw, f"{entry_cid}{role}")
        return legs

    def _bybit_by_id(self, symbol: str, order_id: str) -> list[Any]:
        for name, params in (
            ("fetch_canceled_and_closed_orders", {"orderId": order_id}),
            ("fetch_open_orders", {"orderId": order_id, **TPSL_FILTER}),
        ):
            fetch: Callable[..., list[Any]] = getattr(self._ex, name)
            found = self._raw(partial(fetch, symbol, None, None, params))
            if found:
                return found
        return []

    def _okx_legs(self, symbol: str, refs: Sequence[AttachedRef]) -> dict[str, list[Order]]:
        armed: dict[str, Any] | None = None
        out: dict[str, list[Order]] = {}
        for ref in refs:
            cid = ref.entry_client_id
            algo = self._attached_algo(symbol, ref.entry_id)
            if algo is None:
                out[cid] = []
                continue
            algo_id, triggers = algo
            if armed is None:  # one read for every entry on the symbol
                params = {"trigger": True, "ordType": "conditional,oco"}
                rows = self._raw(partial(self._ex.fetch_open_orders, symbol, None, None, params))
                armed = {str((r.get("info") or {}).get("algoId")): r for r in rows}
            if algo_id in armed:
                out[cid] = self._okx_armed(armed[algo_id], cid, triggers)
                continue
            # not armed (or past the page): the algo itself says what became of it
            algo_raw = self._raw(partial(self._ex.fetch_order, algo_id, symbol, {"trigger": True}))
            out[cid] = self._okx_after(symbol, algo_raw, cid, triggers)
        return out

    @staticmethod
    def _okx_armed(raw: Mapping[str, Any], cid: str, asked: dict[str, Decimal]) -> list[Order]:
        """The legs an armed algo holds, at the triggers it lists itself; a leg the entry was
        sent with that the algo no longer lists (dropped, or amended away) is gone: a
        take-profit alone is no stop, whatever was asked."""
        order = replace(to_order(raw), type=OrderType.MARKET, price=None)
        held = _okx_triggers(raw.get("info") or {})
        legs = {
            role: replace(order, client_id=f"{cid}{role}", status=OrderStatus.OPEN,
                          filled=ZERO, stop_price=trigger)
            for role, trigger in held.items()
        }  # fmt: skip
        for role, trigger in asked.items():
            if role not in held:
                legs[role] = _gone(order, f"{cid}{role}", trigger)
        return [legs[role] for role in sorted(legs)]

    def _okx_after(
        self, symbol: str, algo: Mapping[str, Any], cid: str, triggers: dict[str, Decimal]
    ) -> list[Order]:
        info = algo.get("info") or {}
        state = str(info.get("state") or "")
        if state in ("live", "pause"):
            return self._okx_armed(algo, cid, triggers)
        placed = [str(x) for x in info.get("ordIdList") or [] if x] or (
            [str(info["ordId"])] if info.get("ordId") else []
        )
        if not placed:
            if state not in ("canceled", "order_failed"):
                return []  # nothing to say yet: asked again next tick
            algo_order = replace(to_order(algo), type=OrderType.MARKET, price=None)
            return [_gone(algo_order, f"{cid}{r}", t) for r, t in sorted(triggers.items())]
        fired = self._with_fees(to_order(self._find_raw(symbol, order_id=placed[0])))
        role = str(info.get("actualSide") or "")
        if role not in triggers:  # not said: the leg whose trigger the fill is nearest
            paid = fired.avg_price or ZERO
            role = min(triggers, key=lambda r: abs(triggers[r] - paid))
        legs = []
        for leg, trigger in sorted(triggers.items()):
            if leg == role:
                legs.append(replace(fired, client_id=f"{cid}{leg}", stop_price=trigger))
            else:  # OKX removes the other leg with the fire: it never had an order
                legs.append(_gone(fired, f"{cid}{leg}", trigger))
        return legs

    def _leg(self, raw: Mapping[str, Any], client_id: str) -> Order:
        order = to_order(raw, client_id)
        return self._with_fees(replace(order, client_id=client_id, type=OrderType.MARKET))

    def _attached_algo(self, symbol: str, entry_id: str) -> tuple[str, dict[str, Decimal]] | None:
        """OKX: the id of the TP/SL algo the entry was given, and its triggers (read once)."""
        known = self._algos.get(entry_id)
        if known is None:
            info = self._find_raw(symbol, order_id=entry_id).get("info") or {}
            for attached in info.get("attachAlgoOrds") or []:
                triggers = _okx_triggers(attached)
                if attached.get("attachAlgoId") and triggers:
                    known = (str(attached["attachAlgoId"]), triggers)
                    self._algos[entry_id] = known
                    break
        return known

    def cancel_attached_exits(
        self,
        symbol: str,
        entry_id: str,
        entry_client_id: str,
        leg_ids: Mapping[str, str] | None = None,
    ) -> list[Order]:
        """Cancel an entry's armed TP/SL: Bybit's orders under ``orderFilter=tpslOrder``, OKX's
        algo with ``cancel-algos`` (both legs are one algo there)."""
        armed = [
            leg
            for leg in self.fetch_attached_exits(symbol, entry_id, entry_client_id, leg_ids)
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
            for leg in self.fetch_attached_exits(symbol, entry_id, entry_client_id, leg_ids)
        }
        return [
            now.get(leg.client_id) or replace(leg, status=OrderStatus.CANCELED) for leg in armed
        ]
