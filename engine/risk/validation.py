"""``validate_proposal``: every reason a proposal cannot go, in words a trader understands."""

from __future__ import annotations

from decimal import Decimal

from engine.config import RiskConfig
from engine.exchange.base import MarketRules, OrderType, Side
from engine.proposal import Proposal, Sizing
from engine.risk.state import KillSwitch


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f")


def exits_in_order(
    side: Side,
    stop_loss: Decimal | None,
    take_profit: Decimal | None,
    price: Decimal,
    what: str,
) -> list[str]:
    """Why exits are on the wrong side of ``price`` (``what`` names it: the entry, the last
    price): a buy's stop-loss must be below it and its take-profit above; a sell's the other
    way round. Empty when they are in order."""
    reasons: list[str] = []
    long = side is Side.BUY
    if (
        stop_loss is not None
        and stop_loss > 0
        and (stop_loss >= price if long else stop_loss <= price)
    ):
        where = "below" if long else "above"
        reasons.append(
            f"stop-loss {_fmt(stop_loss)} must be {where} {what} {_fmt(price)} for a {side.value}"
        )
    if (
        take_profit is not None
        and take_profit > 0
        and (take_profit <= price if long else take_profit >= price)
    ):
        where = "above" if long else "below"
        reasons.append(
            f"take-profit {_fmt(take_profit)} must be {where} {what} {_fmt(price)} "
            f"for a {side.value}"
        )
    return reasons


def validate_proposal(
    proposal: Proposal,
    *,
    market: MarketRules | None,
    reference_price: Decimal | None,
    risk: RiskConfig,
    kill_switch: KillSwitch,
    mode_problems: list[str],
    base_held: Decimal | None = None,
) -> list[str]:
    """Every reason ``proposal`` cannot be sent; empty when it may go on to sizing.

    ``reference_price`` is the limit price or, for a market entry, the current price.
    ``base_held`` is the free base-asset balance (for sells on a spot market).
    """
    p = proposal
    reasons: list[str] = []
    if kill_switch.tripped:
        reasons.append(f"kill switch is TRIPPED: {kill_switch.reason or 'no reason given'}")
    reasons += [f"mode not allowed: {problem}" for problem in mode_problems]
    if market is None:
        reasons.append(f"unknown symbol {p.symbol}")
    if p.entry_type not in (OrderType.MARKET, OrderType.LIMIT):
        reasons.append(f"entry type must be market or limit (got {p.entry_type.value})")
    if p.entry_type is OrderType.LIMIT and p.price is None:
        reasons.append("a limit entry needs a price")
    if p.entry_type is OrderType.MARKET and p.price is not None:
        reasons.append("a price is only for limit entries")
    for name, value in (
        ("price", p.price),
        ("stop-loss", p.stop_loss),
        ("take-profit", p.take_profit),
    ):
        if value is not None and value <= 0:
            reasons.append(f"{name} must be positive (got {_fmt(value)})")
    if p.amount <= 0:
        what = "quote amount" if p.sizing is Sizing.QUOTE else "risk percent"
        reasons.append(f"{what} must be positive (got {_fmt(p.amount)})")
    if p.sizing is Sizing.RISK:
        if p.stop_loss is None:
            reasons.append("risk sizing needs a stop-loss (the distance to it sets the size)")
        if p.amount > risk.max_risk_per_trade_pct:
            reasons.append(
                f"risk {_fmt(p.amount)}% is above the per-trade cap "
                f"{_fmt(risk.max_risk_per_trade_pct)}% (risk.max_risk_per_trade_pct)"
            )
    entry = reference_price
    if entry is not None and entry > 0:
        reasons += exits_in_order(p.side, p.stop_loss, p.take_profit, entry, "the entry")
    if market is not None and market.spot and p.side is Side.SELL:
        held = base_held if base_held is not None else Decimal(0)
        if held <= 0:
            reasons.append(
                f"short selling is refused on a spot market: you hold no {market.base} to sell"
            )
    return reasons
