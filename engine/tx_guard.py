"""The hard guard on chain transactions.

Kobe sends no on-chain transaction today: Solana wallets trade on a paper DEX venue and flows
only move numbers in Kobe's own ledger. Any code that would ever sign or send one must go
through :meth:`TxGuard.send`, which refuses while ``tx_guard.hard_disable_send_tx`` is true (the
default) and refuses anyway unless the live gate is open. A test scans the engine for
transaction-sending calls anywhere but here, so a sender cannot be added around the guard.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from engine.config import TxGuardConfig

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class TxRefused(Exception):
    """An on-chain transaction was refused by the guard; ``reasons`` names every cause."""

    def __init__(self, what: str, reasons: list[str]) -> None:
        self.what = what
        self.reasons = reasons
        super().__init__(f"on-chain transaction refused ({what}): " + "; ".join(reasons))


class TxGuard:
    def __init__(self, cfg: TxGuardConfig, live_gate_open: Callable[[], bool]) -> None:
        self._cfg = cfg
        self._live_gate_open = live_gate_open

    def problems(self) -> list[str]:
        reasons = []
        if self._cfg.hard_disable_send_tx:
            reasons.append("tx_guard.hard_disable_send_tx is true")
        if not self._live_gate_open():
            reasons.append("the live gate is not open")
        return reasons

    def send(self, what: str, tx: T, sender: Callable[[T], R]) -> R:
        """Hand ``tx`` to ``sender`` only when every condition holds; otherwise raise TxRefused."""
        reasons = self.problems()
        if reasons:
            log.warning("on-chain transaction refused (%s): %s", what, "; ".join(reasons))
            raise TxRefused(what, reasons)
        return sender(tx)
