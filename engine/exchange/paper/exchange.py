"""``PaperExchange``: the :class:`Exchange` interface in-process, with a real exchange's rules.

No network, no ccxt. Markets and filters: :mod:`engine.exchange.paper.markets`; the synthetic
order book: :mod:`~engine.exchange.paper.orderbook`; balances, locks and fees:
:mod:`~engine.exchange.paper.account`; the state file: :mod:`~engine.exchange.paper.state`. Here:

- Prices come from a :class:`PriceSource` (a seeded random walk by default). They move only in
  :meth:`PaperExchange.advance`, which then matches resting orders and returns what happened.
- A market order walks the book. A limit order that crosses the book on arrival takes what it
  can as a taker (never beyond its limit); the rest rests. A resting order fills, as a maker and
  at its own price, when the price reaches it; each :meth:`advance` it fills at most the
  liquidity of the book levels it crosses (at least the first level), so a large order fills in
  parts.
- OCO (:meth:`PaperExchange.create_oco`): a LIMIT_MAKER take-profit and a STOP_LOSS_LIMIT leg
  sharing one lock; the first leg to fill or trigger ends the other. A triggered stop becomes a
  limit order at its limit price: it takes what the book offers down to it and rests for the
  rest, as Binance's does when the price gaps through it (the watchdog deals with that).
- Every change is saved at once (:mod:`~engine.exchange.paper.state`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from itertools import islice
from pathlib import Path
from typing import Any

from engine.config import PaperConfig
from engine.exchange.base import (
    Capabilities,
    Exchange,
    Fill,
    InvalidOrder,
    MarketRules,
    NotSupported,
    OcoResult,
    Order,
    OrderNotFound,
    OrderStatus,
    OrderType,
    Position,
    Side,
    Ticker,
    stop_limit_price,
)
from engine.exchange.paper.account import PaperAccount
from engine.exchange.paper.markets import (
    HUNDRED,
    PaperMarket,
    check_filters,
    check_open_orders,
    default_prices,
    fmt,
    load_paper_markets,
)
from engine.exchange.paper.orderbook import (
    Level,
    book_levels,
    crossing_liquidity,
    taker_need,
    walk,
)
from engine.exchange.paper.orders import EventKind, OrderRecord, PaperBalance, PaperEvent
from engine.exchange.paper.state import STATE_DIR, read_state, state_path, write_state
from engine.exchange.prices import PriceSource, TickerFetch, aware_utc
from engine.money import BPS, D, ceil_to_step, floor_to_step, round_to_tick


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PaperExchange(Exchange):
    """An in-process spot exchange with Binance-like rules. See the module docstring."""

    name = "paper"

    def __init__(
        self,
        config: PaperConfig,
        data_dir: Path | None,
        *,
        clock: Callable[[], datetime] | None = None,
        prices: PriceSource | None = None,
        markets: Mapping[str, PaperMarket] | None = None,
        tickers: Exchange | TickerFetch | None = None,
        state_dir: str = STATE_DIR,
        name: str | None = None,
        persist: bool = True,
    ) -> None:
        """``data_dir`` is the engine's data dir (state goes to ``<data_dir>/paper/``); None keeps
        everything in memory. ``clock`` returns the current UTC time (wall clock by default).
        ``prices`` overrides the source chosen by ``config.price_source``; ``tickers`` is what the
        ``exchange`` source reads (an :class:`Exchange` or a callable returning a :class:`Ticker`).
        ``state_dir`` and ``name`` let another venue reuse the simulator (the paper DEX venue:
        ``<data_dir>/dex/``, ``dex_paper``). ``persist=False`` reads the state but never writes
        it (the read-only venue of read-only commands).
        """
        if name is not None:
            self.name = name
        self._clock = clock or _utc_now
        self._lock = threading.RLock()
        self._markets = dict(markets) if markets is not None else load_paper_markets()
        self._seed = config.seed
        self._slippage = config.slippage_bps / BPS
        if prices is None:
            prices = default_prices(config, self._markets, tickers, start=self._now())
        self._prices = prices
        self._account = PaperAccount(
            config.balances,
            seed=self._seed,
            maker_rate=config.maker_fee_pct / HUNDRED,
            taker_rate=config.taker_fee_pct / HUNDRED,
        )
        self._path = state_path(data_dir, state_dir)
        self._persist = persist
        # no state file: the account starts from the configured balances (deleting the state
        # dir is how an operator starts the paper account over). It stays "fresh", saved so,
        # until a trading session has said so (:meth:`start_over_noted`): a read-only command
        # in between does not hide it.
        self.fresh_account = self._path is not None and not self._path.exists()
        if self._path is not None and self._path.exists():
            self.fresh_account = read_state(self._path, self._account, self._markets, self._prices)

    # -- small helpers ------------------------------------------------------------------------

    def _now(self) -> datetime:
        return aware_utc(self._clock())

    @property
    def prices(self) -> PriceSource:
        return self._prices

    @property
    def state_path(self) -> Path | None:
        return self._path

    def _last(self, symbol: str) -> Decimal:
        return self._prices.price(symbol)

    def _book(self, symbol: str, taker: Side, slipped: bool = False) -> Iterator[Level]:
        """The book a ``taker`` order on ``symbol`` meets now; ``slipped`` as a market order
        meets it (:func:`~engine.exchange.paper.orderbook.book_levels`)."""
        return book_levels(
            self._markets[symbol],
            taker,
            mid=self._last(symbol),
            seed=self._seed,
            time=self._prices.time,
            slippage=self._slippage if slipped else None,
        )

    def _walk(self, symbol: str, taker: Side, qty: Decimal, limit: Decimal | None) -> list[Level]:
        """The (price, qty) parts a taker order of ``qty`` gets, never beyond ``limit``; without
        a limit (a market order), with the configured slippage."""
        return walk(self._book(symbol, taker, slipped=limit is None), taker, qty, limit)

    def _settle(
        self, rec: OrderRecord, qty: Decimal, price: Decimal, maker: bool, now: datetime
    ) -> Fill:
        return self._account.settle(rec, self._markets[rec.symbol].rules, qty, price, maker, now)

    # -- Exchange: reads ----------------------------------------------------------------------

    def load_markets(self) -> dict[str, MarketRules]:
        return {symbol: m.rules for symbol, m in self._markets.items()}

    def capabilities(self, symbol: str) -> Capabilities:
        self.market(symbol)
        return Capabilities(native_oco=True, attached_tp_sl=False)

    def get_balance(self, asset: str) -> Decimal:
        with self._lock:
            return self._account.balance(asset).free

    def balance(self, asset: str) -> PaperBalance:
        """Free and locked amounts of ``asset``."""
        with self._lock:
            return self._account.balance(asset)

    def balances(self) -> dict[str, PaperBalance]:
        with self._lock:
            return self._account.balances()

    def fetch_ticker(self, symbol: str) -> Ticker:
        with self._lock:
            self.market(symbol)
            ask = next(self._book(symbol, Side.BUY))[0]
            bid = next(self._book(symbol, Side.SELL))[0]
            return Ticker(symbol, self._last(symbol), bid, ask, self._prices.time)

    def market_buy_slippage_bps(self, symbol: str, quote: Decimal) -> Decimal:
        """What a market buy spending ``quote`` would pay above the ask now, on average, in whole
        bps rounded up: ``paper.slippage_bps`` and the book levels it walks (the price moves only
        in :meth:`advance`, so an order sent before then fills exactly so). Where this is more
        than ``router.market_slippage_bps``, the router sizes for it: paper never overspends."""
        with self._lock:
            self.market(symbol)
            ask = next(self._book(symbol, Side.BUY))[0]
            qty, left = D(0), quote
            for price, depth in self._book(symbol, Side.BUY, slipped=True):
                if depth * price >= left:
                    qty += left / price
                    break
                qty += depth
                left -= depth * price
            paid = quote / qty if qty > 0 else price  # nothing to spend: the first level's
            average = (paid / ask - 1) * BPS
            return ceil_to_step(average.quantize(D("0.000001")), D(1))  # not a last digit's 1e-28

    def order_book(self, symbol: str, depth: int) -> tuple[list[Level], list[Level]]:
        """The first ``depth`` levels of the synthetic book as (price, qty): (bids, asks)."""
        with self._lock:
            self.market(symbol)
            bids = list(islice(self._book(symbol, Side.SELL), depth))
            asks = list(islice(self._book(symbol, Side.BUY), depth))
            return bids, asks

    def fetch_order(self, id: str, symbol: str) -> Order:
        with self._lock:
            rec = self._account.find(id, symbol)
            if rec is None:
                raise OrderNotFound(f"order {id} is unknown on {symbol}")
            return rec.order()

    def fetch_order_by_client_id(self, client_id: str, symbol: str) -> Order | None:
        with self._lock:
            return self._account.last_by_client_id(client_id, symbol)

    def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        with self._lock:
            return [r.order() for r in self._account.open_orders(symbol)]

    def fetch_positions(self, symbol: str | None = None) -> list[Position]:
        with self._lock:
            out = []
            for sym, m in sorted(self._markets.items()):
                if symbol is not None and sym != symbol:
                    continue
                held = self._account.holding(m.rules.base)
                if held > 0:
                    out.append(Position(sym, held, self._account.entry.get(m.rules.base)))
            return out

    def amount_to_precision(self, symbol: str, qty: Decimal) -> Decimal:
        return floor_to_step(qty, self.market(symbol).step_size)

    def price_to_precision(self, symbol: str, price: Decimal) -> Decimal:
        """To the nearest tick, a half tick up, as ccxt rounds a price for the exchange."""
        return round_to_tick(price, self.market(symbol).tick_size, ROUND_HALF_UP)

    def ping(self) -> float:
        return 0.0  # in-process: no network

    # -- markets that appear at run time (the paper DEX venue) --------------------------------

    def paper_markets(self) -> dict[str, PaperMarket]:
        with self._lock:
            return dict(self._markets)

    def add_market(self, market: PaperMarket) -> bool:
        """Add a market seen for the first time; False (nothing changed) when the symbol is known.

        Its price must come from the price source (e.g. :meth:`ManualPrices.set`) before it is
        traded. Markets are not part of the state file: a venue that adds markets keeps them.
        """
        with self._lock:
            symbol = market.rules.symbol
            if symbol in self._markets:
                return False
            self._markets[symbol] = market
            return True

    def remove_market(self, symbol: str) -> bool:
        """Forget a market nothing uses (no open order on it, none of its base asset held).

        False, changing nothing, when it is unknown or in use. A zero balance of its base asset
        is dropped too when no other market trades that asset.
        """
        with self._lock:
            m = self._markets.get(symbol)
            if m is None:
                return False
            if self._account.open_orders(symbol):
                return False
            base = m.rules.base
            if self._account.holding(base) != 0:
                return False
            del self._markets[symbol]
            if not any(base in (o.rules.base, o.rules.quote) for o in self._markets.values()):
                self._account.forget_asset(base)
            self._save()
            return True

    # -- Exchange: writes ---------------------------------------------------------------------

    def create_order(
        self,
        symbol: str,
        side: Side,
        type: OrderType,
        qty: Decimal,
        price: Decimal | None = None,
        params: dict[str, Any] | None = None,
    ) -> Order:
        """Market orders fill at once (walking the book); limit orders take what crosses and
        rest. ``price`` is ignored for a market order. LIMIT_MAKER refuses to cross."""
        with self._lock:
            rules = self.market(symbol)
            side, type, qty = Side(side), OrderType(type), D(qty)
            if type is OrderType.STOP_LOSS_LIMIT:
                raise NotSupported("paper: a stop-loss leg is placed with create_oco")
            if type is not OrderType.MARKET and price is None:
                raise InvalidOrder(f"a {type.value} order needs a price")
            limit = None if type is OrderType.MARKET or price is None else D(price)
            last = self._last(symbol)
            market = self._markets[symbol]
            check_filters(market, last, side, qty, limit, limit if limit is not None else last)
            account = self._account
            if limit is not None:  # a market order is never left open
                check_open_orders(market, *account.open_counts(symbol), stop=False)
            now = self._now()
            if limit is None:
                parts = self._walk(symbol, side, qty, None)
                asset = rules.quote if side is Side.BUY else rules.base
                account.check_funds(asset, taker_need(side, parts))
                client_id = account.client_id(params)
                rec = account.new_order(client_id, rules, side, type, qty, None, now)
                for p, q in parts:
                    self._settle(rec, q, p, maker=False, now=now)
            else:
                first = next(self._book(symbol, side))[0]
                crosses = first <= limit if side is Side.BUY else first >= limit
                if type is OrderType.LIMIT_MAKER and crosses:
                    raise InvalidOrder(
                        f"LIMIT_MAKER: order would immediately match and take "
                        f"({side.value} {fmt(limit)}, best {'ask' if side is Side.BUY else 'bid'}"
                        f" {fmt(first)})"
                    )
                asset, need = (rules.quote, qty * limit) if side is Side.BUY else (rules.base, qty)
                account.check_funds(asset, need)
                client_id = account.client_id(params)
                rec = account.new_order(client_id, rules, side, type, qty, limit, now)
                account.lock_funds(rec, asset, need)
                if crosses:
                    for p, q in self._walk(symbol, side, qty, limit):
                        self._settle(rec, q, p, maker=False, now=now)
            account.orders[rec.id] = rec
            self._save()
            return rec.order()

    def create_oco(
        self,
        symbol: str,
        side: Side,
        qty: Decimal,
        take_profit: Decimal,
        stop_loss: Decimal,
        params: dict[str, Any] | None = None,
    ) -> OcoResult:
        """A take-profit (LIMIT_MAKER at ``take_profit``) and a STOP_LOSS_LIMIT (triggers at
        ``stop_loss``, then a limit order at its limit price) sharing one lock. Params:
        ``client_id`` (the list's; legs get ``-tp``/``-sl`` suffixes), or ``tp_client_id`` /
        ``sl_client_id``; ``stop_limit_price`` (the stop leg's limit; by default
        :func:`engine.exchange.base.stop_limit_price`, as on the ccxt venue)."""
        with self._lock:
            rules = self.market(symbol)
            side, qty = Side(side), D(qty)
            tp, sl = D(take_profit), D(stop_loss)
            p = params or {}
            given = p.get("stop_limit_price")
            sl_limit = stop_limit_price(rules, side, sl) if given is None else D(given)
            last = self._last(symbol)
            market = self._markets[symbol]
            check_filters(market, last, side, qty, tp, tp)
            check_filters(market, last, side, qty, sl_limit, sl_limit, stop=sl)
            ordered = tp > last > sl if side is Side.SELL else tp < last < sl
            if not ordered:
                relation = "above" if side is Side.SELL else "below"
                other = "below" if side is Side.SELL else "above"
                raise InvalidOrder(
                    f"OCO: the prices are not in order for a {side.value}: take-profit "
                    f"{fmt(tp)} must be {relation} the last price {fmt(last)}, and stop-loss "
                    f"{fmt(sl)} {other} it"
                )
            check_open_orders(market, *self._account.open_counts(symbol), stop=True)
            if side is Side.BUY:
                asset, need = rules.quote, qty * max(tp, sl_limit)
            else:
                asset, need = rules.base, qty
            account = self._account
            account.check_funds(asset, need)
            tp_id, sl_id = account.oco_client_ids(p)
            now = self._now()
            list_id = account.new_list_id()
            tp_rec = account.new_order(tp_id, rules, side, OrderType.LIMIT_MAKER, qty, tp, now)
            sl_rec = account.new_order(
                sl_id, rules, side, OrderType.STOP_LOSS_LIMIT, qty, sl_limit, now
            )
            sl_rec.stop_price = sl
            tp_rec.list_id = sl_rec.list_id = list_id
            account.lock_funds(tp_rec, asset, need)  # one lock for the list, held by the TP leg
            sl_rec.reserve_asset = asset
            account.orders[tp_rec.id] = tp_rec
            account.orders[sl_rec.id] = sl_rec
            self._save()
            return OcoResult(list_id, tp_rec.order(), sl_rec.order())

    def cancel_order(self, id: str, symbol: str) -> Order:
        """Cancel by exchange id (or client id). Cancelling an OCO leg cancels the whole list."""
        with self._lock:
            rec = self._account.find(id, symbol)
            if rec is None:
                raise OrderNotFound(f"order {id} is unknown on {symbol}")
            if not rec.status.is_open:
                what = "filled" if rec.status is OrderStatus.FILLED else rec.status.value
                raise OrderNotFound(f"order {id} is already {what}")
            self._account.cancel_list(rec)
            self._save()
            return rec.order()

    # -- time ---------------------------------------------------------------------------------

    def advance(self, now: datetime | None = None) -> list[PaperEvent]:
        """Move prices to ``now`` (the clock's time by default), match resting orders, save.

        Returns the fills and cancels that happened, in order, for the caller to journal.
        """
        with self._lock:
            moment = self._now() if now is None else aware_utc(now)
            self._prices.advance(moment)
            events: list[PaperEvent] = []
            for rec in list(self._account.orders.values()):
                if rec.status.is_open:
                    self._match(rec, moment, events)
            self._account.trim()
            self._save()
            return events

    tick = advance

    def _match(self, rec: OrderRecord, now: datetime, events: list[PaperEvent]) -> None:
        last = self._last(rec.symbol)
        assert rec.price is not None
        if rec.type is OrderType.STOP_LOSS_LIMIT and not rec.triggered:
            assert rec.stop_price is not None
            hit = last <= rec.stop_price if rec.side is Side.SELL else last >= rec.stop_price
            if not hit:
                return
            # triggered: the other leg goes, and the stop is now a limit order at its price: it
            # takes what the book offers up to that limit and rests for the rest
            rec.triggered = True
            self._first_fill_of_list(rec, events)
            for p, q in self._walk(rec.symbol, rec.side, rec.remaining, rec.price):
                self._emit_fill(rec, self._settle(rec, q, p, maker=False, now=now), events)
            return
        crossed = last <= rec.price if rec.side is Side.BUY else last >= rec.price
        if not crossed:
            return
        step = self._markets[rec.symbol].rules.step_size
        # the liquidity a resting buy meets is what a taker buy would meet
        liquidity = crossing_liquidity(self._book(rec.symbol, rec.side), rec.side, rec.price)
        qty = min(rec.remaining, floor_to_step(liquidity, step))
        if qty <= 0:
            return
        self._first_fill_of_list(rec, events)
        self._emit_fill(rec, self._settle(rec, qty, rec.price, maker=True, now=now), events)

    def _emit_fill(self, rec: OrderRecord, fill: Fill, events: list[PaperEvent]) -> None:
        kind: EventKind = "fill" if rec.status is OrderStatus.FILLED else "partial_fill"
        events.append(PaperEvent(kind, rec.order(), fill))

    def _first_fill_of_list(self, rec: OrderRecord, events: list[PaperEvent]) -> None:
        """OCO: the first fill of one leg cancels the other, whose lock passes to this leg."""
        for other in self._account.first_fill_of_list(rec):
            reason = f"oco {rec.list_id}: the other leg (order {rec.id}) filled"
            events.append(PaperEvent("cancel", other.order(), None, reason))

    # -- persistence --------------------------------------------------------------------------

    def _save(self) -> None:
        if self._path is not None and self._persist:
            write_state(self._path, self._account, fresh=self.fresh_account, prices=self._prices)

    def save(self) -> None:
        with self._lock:
            self._save()

    def close(self) -> None:
        self.save()

    def start_over_noted(self) -> None:
        """A trading session has told the operator that this account started over."""
        with self._lock:
            self.fresh_account = False
            self._save()
