"""The paper DEX venue: where the Solana wallets (``sniper_sol``, ``copy_sol``) trade, in EVERY mode.

Kobe sends no chain transaction (the tx guard stays shut): Solana trades are SIMULATED here, on a
:class:`PaperExchange` named ``dex_paper`` (no ccxt, no network), with the same rules as the paper
CEX venue (filters, a synthetic order book, fees, locks, OCO, atomic persistence).

- Markets appear at run time: the strategies' candidates (``BONK/USDC``-style symbols), each
  with a tick of 10 significant digits of its first price, a step worth about a thousandth
  of the min notional, and ``strategies.dex.min_notional_usd`` (see :func:`dex_market`).
- Prices come from the strategies' own feeds (:meth:`Strategy.prices`), set each tick on a
  :class:`DexPrices` source; fees (``fee_pct``, maker and taker alike) and the book's shape
  (``slippage_bps``, ``book_level_quote_usd``, ``book_level_gap_bps``) from ``[strategies.dex]``.
- The account starts with ``strategies.dex.starting_balance`` of the quote asset (USDC), or by
  default the allocation of the strategies' wallets (sniper_sol 30 + copy_sol 30 = 60 USDC).
- State: ``<data dir>/dex/state.json`` (the paper account) and ``<data dir>/dex/markets.json``
  (the markets added so far, same form as ``engine/data/paper_markets.json``), both atomic.

Each engine tick, after ticking the strategies and before executing their signals, call
:func:`sync_dex_venue`: it adds the markets the strategies need, feeds their prices, advances the
venue (matching resting orders: returns their events to journal) and forgets markets no longer
used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.config import DexConfig, KobeConfig, PaperConfig
from engine.exchange.base import MarketRules
from engine.exchange.paper import (
    BookParams,
    PaperEvent,
    PaperExchange,
    PaperMarket,
    PaperStateError,
    load_paper_markets,
)
from engine.exchange.prices import ManualPrices, PriceUnavailable, aware_utc
from engine.fsutil import DAMAGE, atomic_write_text
from engine.jsonutil import dumps
from engine.strategies.base import DexMarket, Strategy

log = logging.getLogger(__name__)

DEX_VENUE = "dex_paper"
DEX_STATE_DIR = "dex"
DEX_MARKETS_FILE = "markets.json"
# a new market's tick: this many significant digits of its first price, fine enough that the
# strategies' 6-digit TP/SL hints stay on tick unless the price falls a thousandfold
PRICE_DIGITS = 10
SIMULATED_NOTICE = (
    "Solana trades are SIMULATED on the paper DEX venue (dex_paper) in every mode: "
    "no transaction is ever sent"
)


class DexPrices(ManualPrices):
    """Prices set from outside (the strategies' feeds), one per market of the DEX venue.

    :meth:`set` takes effect at the next :meth:`advance` (a new symbol at once), so orders between
    two ticks see one consistent price; :meth:`discard` forgets a symbol whose market is gone.
    """

    kind = "dex"
    label = "DEX price"

    def __init__(self, prices: Mapping[str, Decimal] | None = None, *, start: datetime) -> None:
        super().__init__(dict(prices or {}), start=start)

    def set(self, symbol: str, price: Decimal) -> None:
        if not isinstance(price, Decimal):
            raise TypeError(f"a price must be a Decimal (got {type(price).__name__})")
        if not price.is_finite() or price <= 0:
            raise ValueError(f"a price must be positive (got {price} for {symbol})")
        super().set(symbol, price)

    def discard(self, symbol: str) -> None:
        self._prices.pop(symbol, None)
        self._pending.pop(symbol, None)

    def price(self, symbol: str) -> Decimal:
        try:
            return self._prices[symbol]
        except KeyError:
            raise PriceUnavailable(f"no DEX price for {symbol}") from None


def dex_market(symbol: str, price: Decimal, cfg: DexConfig) -> PaperMarket:
    """The rules of a new DEX market whose price is now ``price``.

    tick: ``PRICE_DIGITS`` significant digits of ``price`` (0.0000231 -> 1E-14);
    step: a power of ten worth at most a thousandth of the min notional at ``price``
    (BONK at 0.0000231 -> 10 tokens; WIF at 2.15 -> 0.0001); min quantity: one step.
    """
    if not price.is_finite() or price <= 0:
        raise ValueError(f"{symbol}: a market needs a positive price (got {price})")
    base, sep, quote = symbol.partition("/")
    if not sep or not base or not quote:
        raise ValueError(f"{symbol}: a DEX symbol is BASE/QUOTE")
    tick = Decimal(1).scaleb(price.adjusted() - PRICE_DIGITS + 1)
    step = Decimal(1).scaleb((cfg.min_notional_usd / 1000 / price).adjusted())
    rules = MarketRules(
        symbol=symbol,
        base=base,
        quote=quote,
        tick_size=tick,
        step_size=step,
        min_qty=step,
        min_notional=cfg.min_notional_usd,
    )
    book = BookParams(cfg.book_level_quote_usd, cfg.book_level_gap_bps)
    return PaperMarket(rules=rules, start_price=price, annual_volatility=Decimal(0), book=book)


def _market_record(m: PaperMarket) -> dict[str, Any]:
    r = m.rules
    return {
        "base": r.base,
        "quote": r.quote,
        "tick_size": r.tick_size,
        "step_size": r.step_size,
        "min_qty": r.min_qty,
        "min_notional": r.min_notional,
        "start_price": m.start_price,
        "annual_volatility": m.annual_volatility,
        "book_level_quote": m.book.level_quote,
        "book_level_gap_bps": m.book.level_gap_bps,
    }


def starting_balance(config: KobeConfig) -> Decimal:
    """``strategies.dex.starting_balance``, else the allocation of the strategies' wallets."""
    s = config.strategies
    if s.dex.starting_balance is not None:
        return s.dex.starting_balance
    finance = config.finance
    wallets = sorted({s.memecoin_farming.wallet, s.copy_trading.wallet})
    total = Decimal(0)
    for wallet in wallets:
        if wallet in finance.wallet_ids:
            total += finance.wallet(wallet).allocation(finance.capital_usd)
    return total


class DexPaperExchange(PaperExchange):
    """A :class:`PaperExchange` whose markets and prices come from the strategies."""

    def __init__(
        self,
        config: DexConfig,
        paper: PaperConfig,
        data_dir: Path | None,
        *,
        clock: Callable[[], datetime],
        markets: Mapping[str, PaperMarket] | None = None,
    ) -> None:
        self.dex_config = config
        self.dex_prices = DexPrices(start=aware_utc(clock()))
        self.markets_path = (
            None if data_dir is None else Path(data_dir) / DEX_STATE_DIR / DEX_MARKETS_FILE
        )
        super().__init__(
            paper,
            data_dir,
            clock=clock,
            prices=self.dex_prices,
            markets=dict(markets or {}),
            state_dir=DEX_STATE_DIR,
            name=DEX_VENUE,
        )

    def _write_markets(self, markets: Mapping[str, PaperMarket]) -> None:
        if self.markets_path is None:
            return
        body = {
            "venue": DEX_VENUE,
            "markets": {s: _market_record(m) for s, m in sorted(markets.items())},
        }
        atomic_write_text(self.markets_path, dumps(body, indent=1) + "\n")

    def add_dex_market(self, market: DexMarket) -> bool:
        """Add ``market`` (rules from :func:`dex_market`) with its price; False if known."""
        if market.symbol in self.load_markets():
            return False
        paper_market = dex_market(market.symbol, market.price, self.dex_config)
        # the markets file first: a restart must know every market an open order is on
        self._write_markets({**self.paper_markets(), market.symbol: paper_market})
        self.dex_prices.set(market.symbol, market.price)
        return self.add_market(paper_market)

    def sync(self, strategies: Iterable[Strategy], now: datetime) -> list[PaperEvent]:
        """Markets and prices from ``strategies``, then :meth:`advance` to ``now`` (its events)."""
        strategies = list(strategies)
        quote = self.dex_config.quote_asset
        wanted: dict[str, DexMarket] = {}
        for strategy in strategies:
            for m in strategy.markets():
                if m.quote != quote:
                    log.warning(
                        "%s: market %s is not quoted in %s: not added",
                        strategy.name,
                        m.symbol,
                        quote,
                    )
                    continue
                wanted.setdefault(m.symbol, m)
        for symbol in sorted(wanted):
            self.add_dex_market(wanted[symbol])
        known = self.load_markets()
        for strategy in strategies:
            for symbol, price in sorted(strategy.prices().items()):
                if symbol in known and price > 0:
                    self.dex_prices.set(symbol, price)
        events = self.advance(now)
        removed = False
        for symbol in sorted(known):
            if symbol not in wanted and self.remove_market(symbol):
                self.dex_prices.discard(symbol)
                removed = True
        if removed:
            self._write_markets(self.paper_markets())
            self.save()
        return events


def load_dex_markets(data_dir: Path) -> dict[str, PaperMarket]:
    """The markets a previous run added (none on a fresh data dir)."""
    path = Path(data_dir) / DEX_STATE_DIR / DEX_MARKETS_FILE
    if not path.exists():
        return {}
    try:
        return load_paper_markets(path)
    except DAMAGE as exc:
        raise PaperStateError(
            f"DEX markets {path} are unreadable ({exc}); the paper DEX account was not reset: "
            f"repair the file, or delete {path.parent} to start again"
        ) from None


def build_dex_venue(
    config: KobeConfig, data_dir: Path | None, clock: Callable[[], datetime]
) -> DexPaperExchange:
    """The paper DEX venue of ``config``, persisted under ``<data_dir>/dex/`` (None: in memory)."""
    dex = config.strategies.dex
    paper = PaperConfig(
        quote_asset=dex.quote_asset,
        balances={dex.quote_asset: starting_balance(config)},
        maker_fee_pct=dex.fee_pct,
        taker_fee_pct=dex.fee_pct,
        slippage_bps=dex.slippage_bps,
        price_source="simulated",  # unused: prices come from the strategies (DexPrices)
        seed=config.paper.seed,
        sim_start=config.paper.sim_start,
    )
    markets = load_dex_markets(data_dir) if data_dir is not None else {}
    return DexPaperExchange(dex, paper, data_dir, clock=clock, markets=markets)


def sync_dex_venue(
    venue: DexPaperExchange, strategies: Iterable[Strategy], now: datetime
) -> list[PaperEvent]:
    """Once per tick, after the strategies' ``tick`` and before executing their signals."""
    return venue.sync(strategies, now)
