"""The overspend check of a buy's fill, wherever the fill is learned (the order's answer, a
poll, a sync, a look-up at start, ``kobe orders``)."""

from __future__ import annotations

from decimal import Decimal

from engine.journal import OrderEvent
from engine.money import BPS
from engine.router.orders import EIGHT, ZERO, OrderPlan, WalletBook, fmt_plain


def overspent(
    event: OrderEvent, plan: OrderPlan | None, wallets: WalletBook, committed: Decimal
) -> str | None:
    """A buy that filled worse than it was sized for (beyond the venue's slippage allowance,
    or a limit buy whose wallet shrank before it filled) can leave its wallet with more open
    (``committed``, the book's, this fill included) than its balance or cap: nothing goes
    negative (the next buy finds nothing to spend), but the operator is told. The message
    naming the wallet and the overspend, or None when the wallet is within its limits. A fee
    paid in a third asset (BNB) is no quote spent: it is left out. ``plan``: what the entry was
    sized for, when known (the fill came with the order's answer)."""
    quote = event.symbol.partition("/")[2]
    try:
        limit, what = wallets.balance(event.wallet), "balance"
        cap = wallets.cap(event.wallet)
    except KeyError:  # not a wallet of this book (an old journal's line): nothing to check
        return None
    if cap is not None and cap < limit:
        limit, what = cap, "cap"
    open_ = committed - (event.fee * event.fee_rate if event.fee_rate is not None else ZERO)
    if open_ <= limit:
        return None
    filled, avg = "", event.avg_price
    if avg is not None:
        filled = f" at {fmt_plain(avg.quantize(EIGHT))}"
        if plan is not None and plan.slippage_bps is not None:
            worse = (avg / plan.entry_price - 1) * BPS
            filled += (
                f", {worse.quantize(Decimal('0.1'))} bps above the "
                f"ask {fmt_plain(plan.entry_price)} (sized for up to "
                f"{fmt_plain(plan.slippage_bps)} bps)"
            )
    return (
        f"wallet {event.wallet} overspent by {fmt_plain((open_ - limit).quantize(EIGHT))} "
        f"{quote}: {event.symbol} entry {event.client_id} filled{filled}; it has "
        f"{fmt_plain(open_.quantize(EIGHT))} {quote} open against "
        f"its {what} of {fmt_plain(limit)} {quote}"
    )
