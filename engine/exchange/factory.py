"""The venue for the configured mode: the paper exchange in paper, ccxt in testnet and live.

ccxt is imported only on the testnet/live path, so paper mode never loads it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from engine.config import ConfigError, Mode
from engine.exchange.base import Exchange, ExchangeError, ReadOnlyExchange
from engine.exchange.retry import RetryPolicy
from engine.modes import Settings, require_gate

log = logging.getLogger(__name__)


def build_exchange(
    settings: Settings,
    *,
    confirmed: bool,
    clock: Callable[[], datetime],
    on_unknown: Callable[[str, str], None] | None = None,
    retry: RetryPolicy | None = None,
) -> Exchange:
    """Build the exchange for ``settings.mode``; raises GateClosed when the mode may not run.

    Never a silent downgrade: a refused testnet or live request does not fall back to paper.
    """
    require_gate(settings, confirmed)
    if settings.mode is Mode.PAPER:
        from engine.exchange.paper import PaperExchange

        return PaperExchange(settings.config.paper, settings.data_dir, clock=clock)
    from engine.exchange.ccxt_exchange import CcxtExchange

    exchange = CcxtExchange.from_settings(settings, confirmed, on_unknown=on_unknown, retry=retry)
    try:
        check_symbols(exchange, settings)
    except BaseException:
        exchange.close()
        raise
    return exchange


def check_symbols(exchange: Exchange, settings: Settings) -> None:
    """Refuse (ConfigError, exit 2) configured symbols the exchange has no spot market for.

    From the markets the adapter loads once and keeps (the first thing any call needs): no
    request of its own, none per tick. Markets that cannot be loaded now (the exchange is down)
    leave the check to the calls that need them, which refuse an unknown symbol by name."""
    try:
        markets = exchange.load_markets()
    except ExchangeError as exc:
        log.warning("symbols not checked against %s's markets yet: %s", exchange.name, exc)
        return
    missing = [s for s in settings.config.symbols if s not in markets]
    if missing:
        raise ConfigError(
            [
                f"symbols: {', '.join(missing)} has no spot market on {settings.exchange} "
                f"({settings.mode.value}): not among the exchange's {len(markets)} markets"
            ]
        )


def build_reader(settings: Settings, *, clock: Callable[[], datetime]) -> ReadOnlyExchange:
    """The venue for ``settings.mode`` seen through its reads only (read-only commands).

    Every condition of the gate applies but the live confirmation, which is for sending; the
    object returned has no way to create or cancel an order.
    """
    if settings.mode is Mode.PAPER:
        from engine.exchange.paper import PaperExchange

        return ReadOnlyExchange(
            PaperExchange(settings.config.paper, settings.data_dir, clock=clock, persist=False)
        )
    from engine.exchange.ccxt_exchange import CcxtExchange

    return CcxtExchange.reader_from_settings(settings)
