"""A trade proposal: what a strategy signal, a cockpit ticket and ``kobe trade`` all become.

One path for orders: every proposal goes through the same validation (``engine.risk``), sizing
and placement (``engine.router``) and journal.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from engine.exchange.base import OrderType, Side


class Sizing(StrEnum):
    QUOTE = "quote"  # spend this much quote currency (e.g. 15 USDT)
    RISK = "risk"  # risk this percent of the wallet's balance between entry and stop-loss


class Source(StrEnum):
    STRATEGY = "strategy"
    COCKPIT = "cockpit"
    CLI = "cli"
    DUST_SWEEP = "dust sweep"  # Kobe's own sale of a wallet's dust (engine.router.sweeping)

    @property
    def manual(self) -> bool:
        return self is not Source.STRATEGY


@dataclass(frozen=True)
class Proposal:
    symbol: str
    side: Side
    entry_type: OrderType  # market or limit
    sizing: Sizing
    amount: Decimal  # quote amount, or risk percent (0-100) of the wallet's balance
    wallet: str
    source: Source
    price: Decimal | None = None  # limit price (limit entries only)
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    reason: str = ""
    strategy: str = ""
    ref: str = ""  # the strategy's own reference for the position (a signal's ``ref``)


class Refused(Exception):
    """A proposal that will not be sent, with reasons a person understands. Exit code 1."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("; ".join(reasons))
