"""The venue for the configured mode: the paper exchange in paper, ccxt in testnet and live.

ccxt is imported only on the testnet/live path, so paper mode never loads it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from engine.config import Mode
from engine.exchange.base import Exchange, ReadOnlyExchange
from engine.modes import Settings, require_gate


def build_exchange(
    settings: Settings,
    *,
    confirmed: bool,
    clock: Callable[[], datetime],
    on_unknown: Callable[[str, str], None] | None = None,
) -> Exchange:
    """Build the exchange for ``settings.mode``; raises GateClosed when the mode may not run.

    Never a silent downgrade: a refused testnet or live request does not fall back to paper.
    """
    require_gate(settings, confirmed)
    if settings.mode is Mode.PAPER:
        from engine.exchange.paper import PaperExchange

        return PaperExchange(settings.config.paper, settings.data_dir, clock=clock)
    from engine.exchange.ccxt_exchange import CcxtExchange

    return CcxtExchange.from_settings(settings, confirmed, on_unknown=on_unknown)


def build_reader(settings: Settings, *, clock: Callable[[], datetime]) -> ReadOnlyExchange:
    """The venue for ``settings.mode`` seen through its reads only (read-only commands).

    Every condition of the gate applies but the live confirmation, which is for sending; the
    object returned has no way to create or cancel an order.
    """
    if settings.mode is Mode.PAPER:
        from engine.exchange.paper import PaperExchange

        return ReadOnlyExchange(
            PaperExchange(settings.config.paper, settings.data_dir, clock=clock)
        )
    from engine.exchange.ccxt_exchange import CcxtExchange

    return CcxtExchange.reader_from_settings(settings)
