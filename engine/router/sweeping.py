"""The dust sweep: a wallet's dust in a symbol sold on its own once the venue takes it.

Dust is what a full exit leaves below one step (a buy's fee taken in the base asset leaves some
on most trades). An exit Kobe sizes sells it with the position (``Exits._full_exit``), but the
TP/SL Bybit and OKX attach to an entry are sized by the exchange from the entry and never take it:
there the dust grows by up to a step with each trade. Once it is sellable on its own (on the
step, at least the minimum quantity and the minimum order value), and nothing else of the wallet
in that symbol could sell it, the engine sells it at market under a client id of its own
(``<id>ds``), through the same journal as every order: intent (fsynced) first, then the send.
The book books it as a trade of its own (``engine.book``), once, whichever process sees its fill.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from engine.exchange.base import ExchangeError, Order, Side
from engine.router.orders import (
    MAX_BACKOFF_S,
    REFUSALS,
    SWEEP,
    SWEEP_SUFFIX,
    ZERO,
    fmt_qty,
    log,
)
from engine.router.watching import Watching


class Sweeping(Watching):
    """Each poll, the engine hands each sellable wallet's dust to :meth:`sweep_dust`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (wallet, symbol) -> (dust qty, refusals so far, not tried again before); by quantity:
        # a line that grew (another trade's dust) is looked at again at once
        self._sweep_waits: dict[tuple[str, str], tuple[Decimal, int, datetime]] = {}

    def sweep_dust(
        self, wallet: str, symbol: str, qty: Decimal, working: str | None, price: Decimal | None
    ) -> Order | None:
        """Sell ``qty`` of ``wallet``'s dust in ``symbol`` when the venue takes it on its own:
        rounded down to the step by the exchange's precision (the rest stays dust), at least the
        market's minimum quantity and value (at ``price``, the tick's mark, else the ticker),
        and never more than the account has free beyond what Kobe's other positions and dust in
        that coin hold (dust the operator moved away is never taken from theirs). ``working``: a
        sweep of that dust whose end is not journaled yet: it is looked up by client id when its
        send was not answered (never a second sweep beside it), else left to the sync. A refusal is said once (a
        warning) and tried again with backoff, doubling up to 5 minutes; never once a tick."""
        if working is not None:
            last = self.journal_state().get(working)
            if last is not None and last.event in ("intent", "unknown"):
                self._look_up(working, last, "before sweeping again")
            return None
        waits = self._sweep_waits
        now, key = self.clock(), (wallet, symbol)
        qty_before, tries, until = waits.get(key, (Decimal(-1), 0, now))
        if qty == qty_before and now < until <= now + timedelta(seconds=MAX_BACKOFF_S):
            return None
        try:
            market = self.exchange.market(symbol)
            sell = self.exchange.amount_to_precision(symbol, qty)
            if sell <= 0 or sell < market.min_qty:
                return None  # not sellable yet: it waits for more dust
            price = price if price is not None else self.exchange.fetch_ticker(symbol).last
            if sell * price < market.min_notional:  # looked at again when it grows, or in 5 min
                waits[key] = (qty, tries, now + timedelta(seconds=MAX_BACKOFF_S))
                return None
            # what is free and no other of Kobe's positions or dust holds (no exit locks theirs)
            held, dust = self.held_by_positions(market.base)
            free = self.exchange.get_balance(market.base) - held - max(ZERO, dust - qty)
        except ExchangeError:  # a market gone from the venue, a ticker down: not once a tick
            waits[key] = (qty, tries, now + timedelta(seconds=MAX_BACKOFF_S))
            raise
        sell = self.exchange.amount_to_precision(symbol, max(ZERO, min(sell, free)))
        if sell < market.min_qty or sell <= 0:  # moved away by the operator: not Kobe's to chase
            log.warning("%s: dust %s of %s is not free on the account", symbol, qty, wallet)
            waits[key] = (qty, tries, now + timedelta(seconds=MAX_BACKOFF_S))
            return None
        cid = self.ids.next()
        while f"{cid}{SWEEP_SUFFIX}" in self.journal_state():
            cid = self.ids.next()
        reason = (
            f"dust sweep: {fmt_qty(sell)} {market.base} of {wallet}'s dust, left by exits that "
            "do not take it, sold on its own"
        )
        try:
            order = self.send_exit(
                cid, SWEEP_SUFFIX, symbol, Side.SELL, sell, wallet, SWEEP, reason
            )
        except REFUSALS as exc:
            tries += 1
            wait = min(MAX_BACKOFF_S, 2 ** min(tries, 20))
            waits[key] = (qty, tries, now + timedelta(seconds=wait))
            if tries == 1:
                self.on_alert(
                    "warning", "dust_sweep_refused",
                    f"{symbol}: the sale of {fmt_qty(sell)} {market.base} of {wallet}'s dust was "
                    f"refused: {exc}; tried again with backoff (up to every 5 minutes)",
                )  # fmt: skip
            return None
        except ExchangeError:  # journaled unknown: looked up by client id before anything else
            waits.pop(key, None)
            raise
        waits.pop(key, None)
        self.on_alert(
            "info", "dust_sweep",
            f"{symbol}: {fmt_qty(order.filled)} {market.base} of {wallet}'s dust sold "
            f"({order.status.value})" + (f" after {tries} refusal(s)" if tries else ""),
        )  # fmt: skip
        return order
