"""A position of the book, its exit orders, and what covers it (``protection``)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from decimal import Context, Decimal
from typing import Any

from engine.exchange.base import Side
from engine.journal import OrderEvent
from engine.untrusted import parse_decimal, parse_utc
from engine.watchdog import WatchItem, WatchState

log = logging.getLogger(__name__)


ZERO = Decimal(0)


FILL_EVENTS = ("partial_fill", "fill", "cancel", "reject")  # events that carry a final filled


@dataclass(frozen=True)
class ExitOrder:
    client_id: str
    type: str
    price: Decimal | None
    status: str
    filled: Decimal = ZERO
    # the entry's fill when this exit filled completely: an entry that ends later with no more
    # filled leaves only what the exit could not sell (dust)
    entry_filled: Decimal | None = None


@dataclass(frozen=True)
class Position:
    """A position Kobe opened: an entry that filled (``qty`` > 0), or one still pending."""

    entry_client_id: str
    venue: str
    symbol: str
    side: Side
    qty: Decimal  # held now: filled (net of a base-asset fee) minus what the exits sold
    entry_price: Decimal | None  # average fill price of the entry
    entry_fee: Decimal  # quote currency
    wallet: str
    strategy: str
    opened_at: datetime
    take_profit: Decimal | None
    stop_loss: Decimal | None
    pending: bool  # the entry order is still working (open, or partly filled)
    source: str = ""
    ref: str = ""  # the strategy's reference for it (from the entry's intent)
    ordered: Decimal = ZERO  # the entry order's quantity
    limit: Decimal | None = None  # the entry's limit price (None: market)
    filled: Decimal = ZERO  # the entry's gross fill
    exit_qty: Decimal = ZERO  # sold by exits so far
    exit_value: Decimal = ZERO  # their proceeds, quote
    exit_fees: Decimal = ZERO  # their fees, quote
    exits: tuple[ExitOrder, ...] = ()
    dust: bool = False  # too small to sell on its venue: flagged once, never retried
    # fees charged in a third asset whose price in the quote asset could not be had at the
    # fill (the router alerted): kept apart in their own asset, never counted as 0 silently
    fees_unpriced: Decimal = ZERO
    fees_unpriced_asset: str = ""
    # the quote ``qty`` cost when it is not qty x entry_price: dust gathered from trades at
    # several prices (their average price has no exact Decimal; the cost of the pieces has)
    cost_basis: Decimal | None = None
    # the wallet's dust in this symbol that its exits sold with it (a full exit is sized from
    # what is in hand plus that dust, so the dust of one trade goes with the next), at its cost
    dust_sold: Decimal = ZERO
    dust_cost: Decimal = ZERO

    @property
    def cost(self) -> Decimal:
        """Quote tied up in what is still held (at the entry price), plus its entry fee."""
        if self.cost_basis is not None:
            return self.cost_basis
        if self.entry_price is None or self.filled <= 0:
            return ZERO
        held = self.qty * self.entry_price
        return held + self.entry_fee * (self.qty / self.filled if self.filled else 1)

    @property
    def locked(self) -> Decimal:
        """Quote a working buy entry still holds on the exchange (its unfilled part)."""
        if not self.pending or self.side is not Side.BUY:
            return ZERO
        price = self.limit if self.limit is not None else (self.entry_price or ZERO)
        return max(ZERO, self.ordered - self.filled) * price

    def unrealized(self, mark: Decimal) -> Decimal:
        """What the trade would book if what it holds were sold at ``mark`` now (before that
        sale's fee): the gain on what it holds, plus what its exits sold already, less its
        fees paid. The ledger books a trade at its close, so this is its part of equity until
        then, and equity neither jumps nor drops when it closes (the last exit's fee aside)."""
        if self.entry_price is None:
            return ZERO
        sign = Decimal(1) if self.side is Side.BUY else Decimal(-1)
        held = self.cost_basis if self.cost_basis is not None else self.entry_price * self.qty
        sold = self.entry_price * (self.exit_qty - self.dust_sold) + self.dust_cost
        value = mark * self.qty + self.exit_value
        return sign * (value - held - sold) - self.entry_fee - self.exit_fees

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["exits"] = [asdict(x) for x in self.exits]
        return record

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> Position:
        def dec(v: Any, name: str) -> Decimal | None:
            return None if v is None else parse_decimal(v, name, minimum=ZERO)

        def d0(v: Any, name: str) -> Decimal:
            return ZERO if v is None else parse_decimal(v, name, minimum=ZERO)

        return cls(
            entry_client_id=str(r["entry_client_id"]),
            venue=str(r["venue"]),
            symbol=str(r["symbol"]),
            side=Side(r["side"]),
            qty=d0(r["qty"], "qty"),
            entry_price=dec(r.get("entry_price"), "entry_price"),
            entry_fee=d0(r.get("entry_fee"), "entry_fee"),
            wallet=str(r["wallet"]),
            strategy=str(r["strategy"]),
            opened_at=parse_utc(r["opened_at"], "opened_at"),
            take_profit=dec(r.get("take_profit"), "take_profit"),
            stop_loss=dec(r.get("stop_loss"), "stop_loss"),
            pending=bool(r.get("pending")),
            source=str(r.get("source") or ""),
            ref=str(r.get("ref") or ""),
            ordered=d0(r.get("ordered"), "ordered"),
            limit=dec(r.get("limit"), "limit"),
            filled=d0(r.get("filled"), "filled"),
            exit_qty=d0(r.get("exit_qty"), "exit_qty"),
            exit_value=d0(r.get("exit_value"), "exit_value"),
            exit_fees=d0(r.get("exit_fees"), "exit_fees"),
            dust=bool(r.get("dust")),
            fees_unpriced=d0(r.get("fees_unpriced"), "fees_unpriced"),
            fees_unpriced_asset=str(r.get("fees_unpriced_asset") or ""),
            cost_basis=dec(r.get("cost_basis"), "cost_basis"),
            dust_sold=d0(r.get("dust_sold"), "dust_sold"),
            dust_cost=d0(r.get("dust_cost"), "dust_cost"),
            exits=tuple(
                ExitOrder(
                    client_id=str(x["client_id"]),
                    type=str(x["type"]),
                    price=dec(x.get("price"), "exits.price"),
                    status=str(x["status"]),
                    filled=d0(x.get("filled"), "exits.filled"),
                    entry_filled=dec(x.get("entry_filled"), "exits.entry_filled"),
                )
                for x in r.get("exits", [])
            ),
        )


CENT = Decimal("0.01")


def dust_worth_saying(pos: Position) -> bool:
    """Dust that cost at least a cent of its quote: said at its close and shown in the cockpit.
    Less (a DEX token's last decimals, after nearly every trade) is listed by `kobe positions`."""
    return pos.cost >= CENT


def dust_key(pos: Position) -> str:
    """Where a wallet's dust in one symbol gathers: a key no order has (client ids have no
    spaces), so an exit's event journaled again finds nothing to move."""
    return dust_key_of(pos.wallet, pos.venue, pos.symbol, pos.side)


def dust_key_of(wallet: str, venue: str, symbol: str, side: Side) -> str:
    return f"dust {wallet} {venue} {symbol} {side.value}"


def gathered(pos: Position, old: Position | None) -> Position:
    """``old`` dust (or none) with what ``pos``'s full exit left: its cost is the pieces' cost,
    exact; its price their average, shown."""
    assert pos.entry_price is not None
    qty, cost = pos.qty, pos.qty * pos.entry_price
    if old is not None:
        qty, cost = qty + old.qty, cost + old.cost
    return replace(
        pos,
        entry_client_id=dust_key(pos),
        qty=qty,
        entry_price=shown_price(cost / qty),  # shown; the cost is exact
        cost_basis=cost,
        entry_fee=ZERO,  # each trade counted its whole entry fee
        filled=qty,
        ordered=qty,
        limit=None,
        opened_at=old.opened_at if old is not None else pos.opened_at,
        take_profit=None,
        stop_loss=None,
        ref="",
        exit_qty=ZERO,
        exit_value=ZERO,
        exit_fees=ZERO,
        exits=(),
        fees_unpriced=ZERO,
        dust=True,
    )


COST_EXP = Decimal("1e-12")  # a share of dust's cost, rounded (the rest keeps the difference)


def split_dust(line: Position, qty: Decimal) -> tuple[Position | None, Decimal, Decimal]:
    """Up to ``qty`` taken from the dust ``line``: (what is left of it, None if nothing, the
    quantity taken, its cost). The two costs add up to the line's, exactly."""
    take = min(qty, line.qty)
    if take == line.qty:
        return None, take, line.cost
    cost = (line.cost * take / line.qty).quantize(COST_EXP)
    left, left_cost = line.qty - take, line.cost - cost
    rest = replace(
        line,
        qty=left,
        filled=left,
        ordered=left,
        cost_basis=left_cost,
        entry_price=shown_price(left_cost / left),  # shown; the cost is exact
    )
    return rest, take, cost


def take_dust(
    positions: dict[str, Position], pos: Position, qty: Decimal
) -> tuple[Decimal, Decimal]:
    """An exit of ``pos`` (a buy) that sold ``qty`` more than it held sold its wallet's dust
    in that symbol (its full exit is sized with it, see :func:`foldable_dust`): up to ``qty`` of
    that dust moves from ``positions`` to the trade, at its cost. Returns (quantity, cost)."""
    if qty <= 0 or pos.side is not Side.BUY or pos.dust:
        return ZERO, ZERO
    key = dust_key(pos)
    line = positions.get(key)
    if line is None or line.qty <= 0:
        return ZERO, ZERO
    left, take, cost = split_dust(line, qty)
    if left is None:
        del positions[key]
    else:
        positions[key] = left
    return take, cost


def foldable_dust(
    positions: dict[str, Position], venue: str, wallet: str, symbol: str, entry_cid: str
) -> Decimal:
    """The dust of ``wallet`` in ``symbol`` on ``venue`` that a full exit of the buy
    ``entry_cid`` sells with it (the dust of each trade then goes with the next, instead of
    gathering for good): all of it, unless another of the wallet's positions in that symbol
    holds some, or its entry has bought some and still works, or its exit still works (it may
    be selling the dust it was sized with): two exits must never count the same dust. An entry
    that has bought nothing yet (a limit resting far from the price, maybe for days) has no
    exit that could sell it: it does not keep the dust from the others'."""
    line = positions.get(dust_key_of(wallet, venue, symbol, Side.BUY))
    if line is None or line.qty <= 0:
        return ZERO
    others = [
        p
        for p in positions.values()
        if p.wallet == wallet
        and p.venue == venue
        and p.symbol == symbol
        and not p.dust
        and p.entry_client_id != entry_cid
        and (p.qty > 0 or (p.pending and p.filled > 0) or still_selling(p))
    ]
    return ZERO if others else line.qty


def still_selling(pos: Position) -> bool:
    """An exit of ``pos`` has sold a part and is still working: one sized with the dust goes on
    selling it once the position's own is sold."""
    return any(is_live(x.status) and x.filled > 0 for x in pos.exits)


def shown_price(price: Decimal) -> Decimal:
    """An average price as a record shows it: past 18 significant digits (an average that has
    no exact Decimal), rounded to 18, with no trailing zeros; a shorter one as it is."""
    if len(price.as_tuple().digits) <= 18:
        return price
    short = Context(prec=18).create_decimal(price).normalize()
    return short.quantize(Decimal(1)) if short.as_tuple().exponent > 0 else short  # type: ignore[operator]


def base_of(symbol: str) -> str:
    return symbol.split("/", 1)[0]


def _fee_in_quote(e: OrderEvent, fee: Decimal, price: Decimal | None) -> Decimal | None:
    """``fee`` (part of ``e``'s) in the quote asset: a fee in the base asset at the price of
    the fills it was charged on (``price``; else the order's average), one in a third asset
    (BNB) at the rate journaled with the fill, one in the quote asset as it is. None: a third
    asset with no rate (not convertible)."""
    base, _, quote = e.symbol.partition("/")
    price = price if price is not None else e.avg_price
    if e.fee_asset == base and price is not None:
        return fee * price
    if e.fee_asset in ("", base, quote) or fee <= 0:
        return fee
    return None if e.fee_rate is None else fee * e.fee_rate


def with_fee(
    pos: Position, e: OrderEvent, fee: Decimal, *, entry: bool, price: Decimal | None = None
) -> Position:
    """``pos`` with ``fee`` (of event ``e``, charged on fills at ``price``) booked on its entry
    or exit leg, in the quote asset; a fee that cannot be converted is kept apart, in its own
    asset, and logged."""
    in_quote = _fee_in_quote(e, fee, price)
    if in_quote is not None:
        if entry:
            return replace(pos, entry_fee=pos.entry_fee + in_quote)
        return replace(pos, exit_fees=pos.exit_fees + in_quote)
    log.warning(
        "%s: fee %s %s has no price in the quote asset: not counted in the trade's fees",
        e.client_id,
        fee,
        e.fee_asset,
    )
    return replace(pos, fees_unpriced=pos.fees_unpriced + fee, fees_unpriced_asset=e.fee_asset)


def leg_reason(client_id: str) -> str:
    if client_id.endswith("tp"):
        return "take-profit"
    if client_id.endswith("sl"):
        return "stop-loss"
    return "closed"


UNPROTECTED = "UNPROTECTED"


def protection(
    pos: Position, watch: WatchItem | None, *, attached: bool, engine_running: bool
) -> str:
    """What covers ``pos`` now, in words; ``UNPROTECTED`` when it was opened with a TP or SL
    and nothing covers it (no live exit on the exchange, no armed watchdog item)."""
    if pos.dust:
        return "dust"
    live = [x for x in pos.exits if is_live(x.status)]
    if live and (pos.stop_loss is None or any(not x.client_id.endswith("tp") for x in live)):
        # a take-profit alone is no cover for a position with a stop, selling or not (its stop
        # refused, or ended by the exchange when the take-profit filled in part)
        return "exchange"
    if watch is not None and watch.state is WatchState.WATCHING:
        return "watchdog" if engine_running else "watchdog (needs a running engine)"
    if watch is not None and watch.state is WatchState.PENDING_ENTRY:
        return "exits after the entry fills"
    if pos.take_profit is None and pos.stop_loss is None and not pos.exits:
        return "no exits (operator's choice)"
    if attached and not pos.exits:
        return "exchange (attached to the entry)"
    return UNPROTECTED


def is_live(status: str) -> bool:
    return status in ("open", "partially_filled")


def dec_or_none(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))
