"""The paper venue: an in-process exchange with a real exchange's rules (no network, no ccxt).

- :mod:`.markets`: the markets, their default price source and the filters every order meets.
- :mod:`.orderbook`: the synthetic order book orders meet.
- :mod:`.orders`: what the venue keeps of an order; the balances and events it reports.
- :mod:`.account`: balances, locks, entry prices, orders, fees and fills.
- :mod:`.state`: the state file, ``<data_dir>/paper/state.json``.
- :mod:`.exchange`: :class:`PaperExchange`, the :class:`~engine.exchange.base.Exchange` itself.

Each module imports only those above it in this list; this package's names are re-exported here.
"""

from engine.exchange.paper.exchange import PaperExchange
from engine.exchange.paper.markets import (
    BookParams,
    PaperMarket,
    PercentPriceBySide,
    load_paper_markets,
)
from engine.exchange.paper.orders import PaperBalance, PaperEvent
from engine.exchange.paper.state import PaperStateError

__all__ = [
    "BookParams",
    "PaperBalance",
    "PaperEvent",
    "PaperExchange",
    "PaperMarket",
    "PaperStateError",
    "PercentPriceBySide",
    "load_paper_markets",
]
