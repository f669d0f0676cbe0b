"""``PaperExchange``: the :class:`Exchange` interface in-process, with a real exchange's rules.

No network, no ccxt. What it does:

- Markets and their filters come from ``engine/data/paper_markets.json`` (Binance spot's
  PRICE_FILTER, LOT_SIZE, PERCENT_PRICE_BY_SIDE and NOTIONAL values); orders breaking them are
  refused with :class:`InvalidOrder` naming the filter and the values, exactly where Binance
  would refuse (-1013). Nothing is rounded here: a quantity off the step or a price off the tick
  is refused (the router rounds, once, for every venue). A market order's NOTIONAL is checked on
  the average (last) price, as Binance checks it, not on what it fills at.
- Prices come from a :class:`PriceSource` (a seeded random walk by default). They move only in
  :meth:`PaperExchange.advance`, which then matches resting orders and returns what happened.
- A market order walks a synthetic order book built around the price: the first level sits at
  the price (on the tick), each further level ``book_level_gap_bps`` further, each holding about
  ``book_level_quote`` of quote (a seeded 50-150 % of it). A bigger order reaches deeper levels
  and gets a worse average price; a market order also fills ``paper.slippage_bps`` worse than
  each level (latency, impact), and only a market order: the ticker's bid and ask, limit orders
  and stops meet the book as it is, so sizing, crossing and fills of limits are the exchange's. The book is drawn from the seed, the symbol, the
  feed time and the price, so it is the same for the same run and changes as prices move.
- A limit order that crosses the book on arrival takes what it can as a taker (never beyond its
  limit); the rest rests. A resting order fills, as a maker and at its own price, when the price
  reaches it; each :meth:`advance` it fills at most the liquidity of the book levels it crosses
  (at least the first level), so a large order fills in parts.
- Fees, as Binance spot charges them: ``maker_fee_pct`` / ``taker_fee_pct`` of what each fill
  gives the account, in the asset received (a buy pays in the base asset, a sell in the quote),
  rounded down to 8 decimals per fill.
- Funds of resting orders are locked (the free balance goes down at once): a buy locks its
  quantity times its price (its fee comes out of what it receives). Spot only: selling more than
  held, or buying more than the free quote pays for, raises :class:`InsufficientFunds`.
- OCO (:meth:`PaperExchange.create_oco`): a LIMIT_MAKER take-profit and a STOP_LOSS_LIMIT leg
  sharing one lock. When the stop triggers, the take-profit is cancelled and the stop becomes a
  limit order at its limit price: it takes what the book offers down to that limit and rests
  there for the rest, as Binance's does when the price gaps through it (the watchdog deals with
  a stop that rests). A fill of the take-profit cancels the stop.
- State (balances, orders, entry prices, counters, the feed and its RNG) is written atomically to
  ``<data_dir>/paper/state.json`` after every change and read back on construction. An
  unreadable file raises :class:`PaperStateError`: the paper account is never silently reset.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from importlib import resources
from itertools import count, islice
from pathlib import Path
from typing import Any, Literal

from engine.config import PaperConfig
from engine.exchange.base import (
    Capabilities,
    Exchange,
    Fill,
    InsufficientFunds,
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
    check_precision,
    stop_limit_price,
)
from engine.exchange.prices import (
    ExchangeTickerSource,
    PriceSource,
    SimSymbol,
    SimulatedFeed,
    TickerFetch,
    aware_utc,
)
from engine.fsutil import StateError, atomic_write_text
from engine.jsonutil import dumps
from engine.money import ZERO, D, ceil_to_step, floor_to_step, round_to_tick

log = logging.getLogger(__name__)

STATE_VERSION = 1
STATE_DIR = "paper"
STATE_FILE = "state.json"
MARKETS_FILE = "paper_markets.json"
CLOSED_ORDERS_KEPT = 1000  # closed orders kept for lookups; open orders are always kept
BPS = Decimal(10_000)
HUNDRED = Decimal(100)
ENTRY_PRECISION = Decimal("0.00000001")
FEE_PRECISION = Decimal("0.00000001")  # Binance's commission precision (8 decimals)

EventKind = Literal["partial_fill", "fill", "cancel"]


class PaperStateError(StateError):
    """The paper account's state file cannot be read. Nothing was reset or overwritten."""


# ---------------------------------------------------------------------------------------------
# Markets


@dataclass(frozen=True)
class BookParams:
    """The shape of a market's synthetic order book."""

    level_quote: Decimal  # quote held by one level (on average)
    level_gap_bps: Decimal  # distance between consecutive levels


@dataclass(frozen=True)
class PercentPriceBySide:
    """Binance's PERCENT_PRICE_BY_SIDE: a buy's price must lie between ``bid_down`` and
    ``bid_up`` times the average price, a sell's between ``ask_down`` and ``ask_up`` times it."""

    bid_up: Decimal = Decimal(5)
    bid_down: Decimal = Decimal("0.2")
    ask_up: Decimal = Decimal(5)
    ask_down: Decimal = Decimal("0.2")


@dataclass(frozen=True)
class PaperMarket:
    rules: MarketRules
    start_price: Decimal
    annual_volatility: Decimal
    book: BookParams
    percent_price: PercentPriceBySide = PercentPriceBySide()


def load_paper_markets(path: Path | None = None) -> dict[str, PaperMarket]:
    """The markets shipped with the project (or those of ``path``), keyed by symbol."""
    if path is None:
        text = resources.files("engine").joinpath("data", MARKETS_FILE).read_text("utf-8")
        source = f"engine/data/{MARKETS_FILE}"
    else:
        text = path.read_text("utf-8")
        source = str(path)
    try:
        raw = json.loads(text, parse_float=Decimal)
        out: dict[str, PaperMarket] = {}
        for symbol, m in raw["markets"].items():
            max_qty = m.get("max_qty")
            rules = MarketRules(
                symbol=symbol,
                base=str(m["base"]),
                quote=str(m["quote"]),
                tick_size=D(m["tick_size"]),
                step_size=D(m["step_size"]),
                min_qty=D(m["min_qty"]),
                min_notional=D(m["min_notional"]),
                max_qty=None if max_qty is None else D(max_qty),
            )
            out[symbol] = PaperMarket(
                rules=rules,
                start_price=D(m["start_price"]),
                annual_volatility=D(m["annual_volatility"]),
                book=BookParams(D(m["book_level_quote"]), D(m["book_level_gap_bps"])),
                percent_price=PercentPriceBySide(
                    **{k: D(v) for k, v in m.get("percent_price_by_side", {}).items()}
                ),
            )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise ValueError(f"{source}: bad market file: {exc!r}") from None
    return out


# ---------------------------------------------------------------------------------------------
# Results particular to the paper venue


@dataclass(frozen=True)
class PaperBalance:
    free: Decimal
    locked: Decimal  # held by resting orders

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass(frozen=True)
class PaperEvent:
    """Something that happened to an order during :meth:`PaperExchange.advance`.

    ``kind`` uses the journal's event names: ``partial_fill``, ``fill`` (the order is now fully
    filled) or ``cancel`` (e.g. the other leg of an OCO filled; ``reason`` says why).
    """

    kind: EventKind
    order: Order
    fill: Fill | None = None
    reason: str = ""


@dataclass
class _Rec:
    """An order as the paper venue keeps it (mutable); :meth:`order` is the public view."""

    id: str
    client_id: str
    symbol: str
    side: Side
    type: OrderType
    qty: Decimal
    price: Decimal | None
    created_at: datetime
    status: OrderStatus = OrderStatus.OPEN
    stop_price: Decimal | None = None
    list_id: str | None = None
    triggered: bool = False  # a stop leg whose stop was hit: now a limit order at its price
    filled: Decimal = ZERO
    cost: Decimal = ZERO  # sum of qty * price over the fills
    fee: Decimal = ZERO
    fee_asset: str = ""
    reserve_asset: str = ""
    reserved: Decimal = ZERO  # what this order still holds locked
    fills: list[Fill] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled

    def order(self) -> Order:
        return Order(
            id=self.id,
            client_id=self.client_id,
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            qty=self.qty,
            price=self.price,
            filled=self.filled,
            avg_price=(self.cost / self.filled) if self.filled else None,
            status=self.status,
            created_at=self.created_at,
            fee=self.fee,
            fee_asset=self.fee_asset,
            stop_price=self.stop_price,
            list_id=self.list_id,
            fills=tuple(self.fills),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "client_id": self.client_id,
            "symbol": self.symbol,
            "side": self.side,
            "type": self.type,
            "qty": self.qty,
            "price": self.price,
            "created_at": self.created_at,
            "status": self.status,
            "stop_price": self.stop_price,
            "list_id": self.list_id,
            "triggered": self.triggered,
            "filled": self.filled,
            "cost": self.cost,
            "fee": self.fee,
            "fee_asset": self.fee_asset,
            "reserve_asset": self.reserve_asset,
            "reserved": self.reserved,
            "fills": [
                {
                    "qty": f.qty,
                    "price": f.price,
                    "fee": f.fee,
                    "fee_asset": f.fee_asset,
                    "time": f.time,
                }
                for f in self.fills
            ],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> _Rec:
        def opt(key: str) -> Decimal | None:
            value = raw.get(key)
            return None if value is None else Decimal(str(value))

        rec = cls(
            id=str(raw["id"]),
            client_id=str(raw["client_id"]),
            symbol=str(raw["symbol"]),
            side=Side(raw["side"]),
            type=OrderType(raw["type"]),
            qty=Decimal(str(raw["qty"])),
            price=opt("price"),
            created_at=_read_time(raw["created_at"]),
            status=OrderStatus(raw["status"]),
            stop_price=opt("stop_price"),
            list_id=None if raw.get("list_id") is None else str(raw["list_id"]),
            triggered=bool(raw.get("triggered", False)),
            filled=Decimal(str(raw["filled"])),
            cost=Decimal(str(raw["cost"])),
            fee=Decimal(str(raw["fee"])),
            fee_asset=str(raw["fee_asset"]),
            reserve_asset=str(raw["reserve_asset"]),
            reserved=Decimal(str(raw["reserved"])),
        )
        for f in raw["fills"]:
            rec.fills.append(
                Fill(
                    order_id=rec.id,
                    client_id=rec.client_id,
                    symbol=rec.symbol,
                    side=rec.side,
                    qty=Decimal(str(f["qty"])),
                    price=Decimal(str(f["price"])),
                    fee=Decimal(str(f["fee"])),
                    fee_asset=str(f["fee_asset"]),
                    time=_read_time(f["time"]),
                )
            )
        return rec


def _read_time(value: Any) -> datetime:
    return aware_utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def _fmt(value: Decimal) -> str:
    """A decimal for a message: no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return text


def _utc_now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------
# The exchange


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
    ) -> None:
        """``data_dir`` is the engine's data dir (state goes to ``<data_dir>/paper/``); None keeps
        everything in memory. ``clock`` returns the current UTC time (wall clock by default).
        ``prices`` overrides the source chosen by ``config.price_source``; ``tickers`` is what the
        ``exchange`` source reads (an :class:`Exchange` or a callable returning a :class:`Ticker`).
        ``state_dir`` and ``name`` let another venue reuse the simulator (the paper DEX venue:
        ``<data_dir>/dex/``, ``dex_paper``).
        """
        if name is not None:
            self.name = name
        self._config = config
        self._clock = clock or _utc_now
        self._lock = threading.RLock()
        self._markets = dict(markets) if markets is not None else load_paper_markets()
        self._seed = config.seed
        self._maker_rate = config.maker_fee_pct / HUNDRED
        self._taker_rate = config.taker_fee_pct / HUNDRED
        self._slippage = config.slippage_bps / BPS
        self._prices = prices if prices is not None else self._default_prices(tickers)
        self._free: dict[str, Decimal] = {a: D(v) for a, v in config.balances.items()}
        self._locked: dict[str, Decimal] = {}
        self._entry: dict[str, Decimal] = {}  # base asset -> average entry price (quote)
        self._orders: dict[str, _Rec] = {}
        self._order_seq = 0
        self._client_seq = 0
        self._list_seq = 0
        self._path = None if data_dir is None else Path(data_dir) / state_dir / STATE_FILE
        # no state file: the account starts from the configured balances (deleting the state
        # dir is how an operator starts the paper account over). It stays "fresh", saved so,
        # until a trading session has said so (:meth:`start_over_noted`): a read-only command
        # in between does not hide it.
        self.fresh_account = self._path is not None and not self._path.exists()
        if self._path is not None and self._path.exists():
            self._load(self._path)

    def _default_prices(self, tickers: Exchange | TickerFetch | None) -> PriceSource:
        start = self._now()
        if self._config.price_source == "exchange":
            if tickers is None:
                raise ValueError(
                    "paper.price_source = 'exchange' needs a ticker source "
                    "(pass tickers=<an Exchange or a callable returning a Ticker>)"
                )
            ticks = {s: m.rules.tick_size for s, m in self._markets.items()}
            return ExchangeTickerSource(tickers, self._markets, tick_sizes=ticks, start=start)
        specs = {
            s: SimSymbol(m.start_price, m.rules.tick_size, m.annual_volatility)
            for s, m in self._markets.items()
        }
        return SimulatedFeed(specs, start=start, seed=self._seed)

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

    def _fee_rate(self, maker: bool) -> Decimal:
        return self._maker_rate if maker else self._taker_rate

    def _holding(self, asset: str) -> Decimal:
        return self._free.get(asset, ZERO) + self._locked.get(asset, ZERO)

    # -- the synthetic order book -------------------------------------------------------------

    def _book(
        self, symbol: str, taker: Side, slipped: bool = False
    ) -> Iterator[tuple[Decimal, Decimal]]:
        """(price, qty) levels a ``taker`` order meets: asks upward for a buy, bids downward.

        ``slipped``: as a market order meets them, each level ``paper.slippage_bps`` worse (the
        same quantities). The ticker, limit orders and stops see the book as it is.
        """
        m = self._markets[symbol]
        tick, step = m.rules.tick_size, m.rules.step_size
        mid = self._last(symbol)
        seed = f"{self._seed}|{symbol}|{taker.value}|{self._prices.time.isoformat()}|{mid}"
        rng = random.Random(seed)
        previous: Decimal | None = None
        for i in count():
            offset = Decimal(i) * m.book.level_gap_bps / BPS
            if taker is Side.BUY:
                price = ceil_to_step(mid * (1 + offset), tick)
                if previous is not None and price <= previous:
                    price = previous + tick
            else:
                price = floor_to_step(mid * (1 - offset), tick)
                if previous is not None and price >= previous:
                    price = previous - tick
                price = max(price, tick)
            previous = price
            depth = m.book.level_quote * Decimal(rng.randint(50, 150)) / HUNDRED
            qty = max(floor_to_step(depth / price, step), step)
            if slipped and taker is Side.BUY:
                price = ceil_to_step(price * (1 + self._slippage), tick)
            elif slipped:
                price = max(floor_to_step(price * (1 - self._slippage), tick), tick)
            yield price, qty

    def _walk(
        self, symbol: str, taker: Side, qty: Decimal, limit: Decimal | None
    ) -> list[tuple[Decimal, Decimal]]:
        """The (price, qty) parts a taker order of ``qty`` gets, never beyond ``limit``; without
        a limit (a market order), with the configured slippage."""
        parts: list[tuple[Decimal, Decimal]] = []
        left = qty
        for price, depth in self._book(symbol, taker, slipped=limit is None):
            if limit is not None and (price > limit if taker is Side.BUY else price < limit):
                break
            take = min(left, depth)
            parts.append((price, take))
            left -= take
            if left <= 0:
                break
        return parts

    def _crossing_liquidity(self, rec: _Rec) -> Decimal:
        """What a resting limit order can fill this step: the opposite levels it crosses."""
        assert rec.price is not None
        taker = rec.side  # the liquidity a resting buy meets is what a taker buy would meet
        total = ZERO
        for i, (price, depth) in enumerate(self._book(rec.symbol, taker)):
            crosses = price <= rec.price if taker is Side.BUY else price >= rec.price
            if i > 0 and not crosses:
                break
            total += depth
        return total

    # -- checks -------------------------------------------------------------------------------

    def _check_filters(
        self,
        rules: MarketRules,
        side: Side,
        qty: Decimal,
        price: Decimal | None,
        notional_price: Decimal,
        stop: Decimal | None = None,
    ) -> None:
        """Binance's filters, in its order: LOT_SIZE, PRICE_FILTER, PERCENT_PRICE_BY_SIDE (on a
        limit price, against the average price), NOTIONAL (at ``notional_price``)."""
        if not qty.is_finite() or qty <= 0:
            raise InvalidOrder(f"quantity must be positive (got {qty})")
        prices = tuple(p for p in (price, stop) if p is not None)
        for p in prices:
            if not p.is_finite() or p <= 0:
                raise InvalidOrder(f"price must be positive (got {p})")
        if qty < rules.min_qty:
            raise InvalidOrder(
                f"LOT_SIZE: quantity {_fmt(qty)} is below the minimum quantity "
                f"{_fmt(rules.min_qty)} ({rules.symbol})"
            )
        if rules.max_qty is not None and qty > rules.max_qty:
            raise InvalidOrder(
                f"LOT_SIZE: quantity {_fmt(qty)} is above the maximum quantity "
                f"{_fmt(rules.max_qty)} ({rules.symbol})"
            )
        check_precision(rules, qty, prices)
        if price is not None:
            self._check_percent_price(rules, side, price)
        notional = qty * notional_price
        if notional < rules.min_notional:
            raise InvalidOrder(
                f"NOTIONAL: notional {_fmt(notional)} {rules.quote} "
                f"({_fmt(qty)} x {_fmt(notional_price)}) is below the minimum notional "
                f"{_fmt(rules.min_notional)} {rules.quote} ({rules.symbol})"
            )

    def _check_percent_price(self, rules: MarketRules, side: Side, price: Decimal) -> None:
        band = self._markets[rules.symbol].percent_price
        up, down = (
            (band.bid_up, band.bid_down) if side is Side.BUY else (band.ask_up, band.ask_down)
        )
        average = self._last(rules.symbol)
        low, high = average * down, average * up
        if not low <= price <= high:
            raise InvalidOrder(
                f"PERCENT_PRICE_BY_SIDE: a {side.value} price {_fmt(price)} must lie between "
                f"{_fmt(low)} and {_fmt(high)} ({_fmt(down)}x-{_fmt(up)}x the average price "
                f"{_fmt(average)}, {rules.symbol})"
            )

    def _check_funds(self, asset: str, need: Decimal) -> None:
        have = self._free.get(asset, ZERO)
        if need > have:
            raise InsufficientFunds(
                f"insufficient balance: need {_fmt(need)} {asset}, have {_fmt(have)}"
            )

    def _client_id(self, params: Mapping[str, Any] | None, key: str = "client_id") -> str:
        given = (params or {}).get(key)
        if given:
            client_id = str(given)
        else:
            self._client_seq += 1
            client_id = f"paper-{self._seed}-{self._client_seq:06d}"
        self._check_client_id_free(client_id)
        return client_id

    def _check_client_id_free(self, client_id: str) -> None:
        for rec in self._orders.values():
            if rec.client_id == client_id and rec.status.is_open:
                raise InvalidOrder(f"duplicate client order id {client_id} (order {rec.id})")

    def _new_rec(
        self,
        client_id: str,
        rules: MarketRules,
        side: Side,
        type: OrderType,
        qty: Decimal,
        price: Decimal | None,
        now: datetime,
    ) -> _Rec:
        self._order_seq += 1
        return _Rec(
            id=str(self._order_seq),
            client_id=client_id,
            symbol=rules.symbol,
            side=side,
            type=type,
            qty=qty,
            price=price,
            created_at=now,
            fee_asset=rules.base if side is Side.BUY else rules.quote,
        )

    # -- balances -----------------------------------------------------------------------------

    def _lock_funds(self, rec: _Rec, asset: str, amount: Decimal) -> None:
        self._free[asset] = self._free.get(asset, ZERO) - amount
        self._locked[asset] = self._locked.get(asset, ZERO) + amount
        rec.reserve_asset = asset
        rec.reserved += amount

    @staticmethod
    def _tidy(amount: Decimal) -> Decimal:
        """A plain ``0`` for any zero (``0E-8`` is equal, but reads badly in the state file)."""
        return ZERO if amount == 0 else amount

    def _release(self, rec: _Rec) -> None:
        if rec.reserved:
            asset = rec.reserve_asset
            self._locked[asset] = self._tidy(self._locked.get(asset, ZERO) - rec.reserved)
            self._free[asset] = self._free.get(asset, ZERO) + rec.reserved
            rec.reserved = ZERO

    def _debit(self, rec: _Rec, asset: str, amount: Decimal) -> None:
        """Take ``amount`` of ``asset``: from the order's lock first, the rest from free."""
        use = min(rec.reserved, amount) if rec.reserve_asset == asset else ZERO
        if use:
            rec.reserved = self._tidy(rec.reserved - use)
            self._locked[asset] = self._tidy(self._locked.get(asset, ZERO) - use)
        if amount - use:
            self._free[asset] = self._free.get(asset, ZERO) - (amount - use)

    def _settle(self, rec: _Rec, qty: Decimal, price: Decimal, maker: bool, now: datetime) -> Fill:
        rules = self._markets[rec.symbol].rules
        notional = qty * price
        received = qty if rec.side is Side.BUY else notional
        fee = (received * self._fee_rate(maker)).quantize(FEE_PRECISION, ROUND_DOWN)
        if rec.side is Side.BUY:
            held = self._holding(rules.base)
            self._debit(rec, rules.quote, notional)
            self._free[rules.base] = self._free.get(rules.base, ZERO) + qty - fee
            if held <= 0:
                self._entry[rules.base] = price
            elif rules.base in self._entry:
                avg = (self._entry[rules.base] * held + notional) / (held + qty)
                self._entry[rules.base] = avg.quantize(ENTRY_PRECISION)
        else:
            self._debit(rec, rules.base, qty)
            self._free[rules.quote] = self._free.get(rules.quote, ZERO) + notional - fee
            if self._holding(rules.base) <= 0:
                self._entry.pop(rules.base, None)
        rec.filled += qty
        rec.cost += notional
        rec.fee += fee
        fill = Fill(
            order_id=rec.id,
            client_id=rec.client_id,
            symbol=rec.symbol,
            side=rec.side,
            qty=qty,
            price=price,
            fee=fee,
            fee_asset=rec.fee_asset,
            time=now,
        )
        rec.fills.append(fill)
        if rec.filled >= rec.qty:
            rec.status = OrderStatus.FILLED
            self._release(rec)
        else:
            rec.status = OrderStatus.PARTIALLY_FILLED
        return fill

    def _taker_need(self, side: Side, parts: list[tuple[Decimal, Decimal]]) -> Decimal:
        """What a taker fill of ``parts`` costs: quote for a buy (its fee comes out of the base
        it receives), base for a sell."""
        if side is Side.BUY:
            return sum((q * p for p, q in parts), ZERO)
        return sum((q for _, q in parts), ZERO)

    # -- Exchange: reads ----------------------------------------------------------------------

    def load_markets(self) -> dict[str, MarketRules]:
        return {symbol: m.rules for symbol, m in self._markets.items()}

    def capabilities(self, symbol: str) -> Capabilities:
        self.market(symbol)
        return Capabilities(native_oco=True, attached_tp_sl=False)

    def get_balance(self, asset: str) -> Decimal:
        with self._lock:
            return self._free.get(asset, ZERO)

    def balance(self, asset: str) -> PaperBalance:
        """Free and locked amounts of ``asset``."""
        with self._lock:
            return PaperBalance(self._free.get(asset, ZERO), self._locked.get(asset, ZERO))

    def balances(self) -> dict[str, PaperBalance]:
        with self._lock:
            assets = sorted(set(self._free) | set(self._locked))
            return {
                a: PaperBalance(self._free.get(a, ZERO), self._locked.get(a, ZERO)) for a in assets
            }

    def fetch_ticker(self, symbol: str) -> Ticker:
        with self._lock:
            self.market(symbol)
            ask = next(self._book(symbol, Side.BUY))[0]
            bid = next(self._book(symbol, Side.SELL))[0]
            return Ticker(symbol, self._last(symbol), bid, ask, self._prices.time)

    def order_book(
        self, symbol: str, depth: int
    ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """The first ``depth`` levels of the synthetic book as (price, qty): (bids, asks)."""
        with self._lock:
            self.market(symbol)
            bids = list(islice(self._book(symbol, Side.SELL), depth))
            asks = list(islice(self._book(symbol, Side.BUY), depth))
            return bids, asks

    def fetch_order(self, id: str, symbol: str) -> Order:
        with self._lock:
            rec = self._find(id, symbol)
            if rec is None:
                raise OrderNotFound(f"order {id} is unknown on {symbol}")
            return rec.order()

    def fetch_order_by_client_id(self, client_id: str, symbol: str) -> Order | None:
        with self._lock:
            found = [
                r for r in self._orders.values() if r.client_id == client_id and r.symbol == symbol
            ]
            return found[-1].order() if found else None

    def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        with self._lock:
            return [
                r.order()
                for r in self._orders.values()
                if r.status.is_open and (symbol is None or r.symbol == symbol)
            ]

    def fetch_positions(self, symbol: str | None = None) -> list[Position]:
        with self._lock:
            out = []
            for sym, m in sorted(self._markets.items()):
                if symbol is not None and sym != symbol:
                    continue
                held = self._holding(m.rules.base)
                if held > 0:
                    out.append(Position(sym, held, self._entry.get(m.rules.base)))
            return out

    def amount_to_precision(self, symbol: str, qty: Decimal) -> Decimal:
        return floor_to_step(qty, self.market(symbol).step_size)

    def price_to_precision(self, symbol: str, price: Decimal) -> Decimal:
        return round_to_tick(price, self.market(symbol).tick_size)

    def ping(self) -> float:
        return 0.0  # in-process: no network

    def _find(self, id: str, symbol: str) -> _Rec | None:
        rec = self._orders.get(id)
        if rec is None:  # the CLI accepts a client id too
            matches = [r for r in self._orders.values() if r.client_id == id]
            rec = matches[-1] if matches else None
        if rec is None or rec.symbol != symbol:
            return None
        return rec

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
            if any(r.status.is_open and r.symbol == symbol for r in self._orders.values()):
                return False
            base = m.rules.base
            if self._holding(base) != 0:
                return False
            del self._markets[symbol]
            if not any(base in (o.rules.base, o.rules.quote) for o in self._markets.values()):
                for book in (self._free, self._locked):
                    if book.get(base) == 0:
                        del book[base]
                self._entry.pop(base, None)
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
            if type is OrderType.MARKET:
                limit = None
            elif price is None:
                raise InvalidOrder(f"a {type.value} order needs a price")
            else:
                limit = D(price)
            last = self._last(symbol)
            self._check_filters(rules, side, qty, limit, limit if limit is not None else last)
            now = self._now()

            if limit is None:
                parts = self._walk(symbol, side, qty, None)
                asset = rules.quote if side is Side.BUY else rules.base
                self._check_funds(asset, self._taker_need(side, parts))
                client_id = self._client_id(params)
                rec = self._new_rec(client_id, rules, side, type, qty, None, now)
                for p, q in parts:
                    self._settle(rec, q, p, maker=False, now=now)
            else:
                first = next(self._book(symbol, side))[0]
                crosses = first <= limit if side is Side.BUY else first >= limit
                if type is OrderType.LIMIT_MAKER and crosses:
                    raise InvalidOrder(
                        f"LIMIT_MAKER: order would immediately match and take "
                        f"({side.value} {_fmt(limit)}, best {'ask' if side is Side.BUY else 'bid'}"
                        f" {_fmt(first)})"
                    )
                asset, need = (rules.quote, qty * limit) if side is Side.BUY else (rules.base, qty)
                self._check_funds(asset, need)
                client_id = self._client_id(params)
                rec = self._new_rec(client_id, rules, side, type, qty, limit, now)
                self._lock_funds(rec, asset, need)
                if crosses:
                    for p, q in self._walk(symbol, side, qty, limit):
                        self._settle(rec, q, p, maker=False, now=now)
            self._orders[rec.id] = rec
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
            self._check_filters(rules, side, qty, tp, tp)
            self._check_filters(rules, side, qty, sl_limit, sl_limit, stop=sl)
            ordered = tp > last > sl if side is Side.SELL else tp < last < sl
            if not ordered:
                relation = "above" if side is Side.SELL else "below"
                other = "below" if side is Side.SELL else "above"
                raise InvalidOrder(
                    f"OCO: the prices are not in order for a {side.value}: take-profit "
                    f"{_fmt(tp)} must be {relation} the last price {_fmt(last)}, and stop-loss "
                    f"{_fmt(sl)} {other} it"
                )
            if side is Side.BUY:
                asset, need = rules.quote, qty * max(tp, sl_limit)
            else:
                asset, need = rules.base, qty
            self._check_funds(asset, need)
            list_client = str(p.get("client_id") or "")
            tp_client = str(p.get("tp_client_id") or (f"{list_client}-tp" if list_client else ""))
            sl_client = str(p.get("sl_client_id") or (f"{list_client}-sl" if list_client else ""))
            tp_id = self._client_id({"client_id": tp_client})
            sl_id = self._client_id({"client_id": sl_client})
            if tp_id == sl_id:
                raise InvalidOrder(f"duplicate client order id {tp_id} for both OCO legs")
            now = self._now()
            self._list_seq += 1
            list_id = str(self._list_seq)
            tp_rec = self._new_rec(tp_id, rules, side, OrderType.LIMIT_MAKER, qty, tp, now)
            sl_rec = self._new_rec(
                sl_id, rules, side, OrderType.STOP_LOSS_LIMIT, qty, sl_limit, now
            )
            sl_rec.stop_price = sl
            tp_rec.list_id = sl_rec.list_id = list_id
            self._lock_funds(tp_rec, asset, need)  # one lock for the list, held by the TP leg
            sl_rec.reserve_asset = asset
            self._orders[tp_rec.id] = tp_rec
            self._orders[sl_rec.id] = sl_rec
            self._save()
            return OcoResult(list_id, tp_rec.order(), sl_rec.order())

    def cancel_order(self, id: str, symbol: str) -> Order:
        """Cancel by exchange id (or client id). Cancelling an OCO leg cancels the whole list."""
        with self._lock:
            rec = self._find(id, symbol)
            if rec is None:
                raise OrderNotFound(f"order {id} is unknown on {symbol}")
            if not rec.status.is_open:
                what = "filled" if rec.status is OrderStatus.FILLED else rec.status.value
                raise OrderNotFound(f"order {id} is already {what}")
            for leg in self._legs(rec):
                if leg.status.is_open:
                    self._release(leg)
                    leg.status = OrderStatus.CANCELED
            self._save()
            return rec.order()

    def _legs(self, rec: _Rec) -> list[_Rec]:
        if rec.list_id is None:
            return [rec]
        return [r for r in self._orders.values() if r.list_id == rec.list_id]

    # -- time ---------------------------------------------------------------------------------

    def advance(self, now: datetime | None = None) -> list[PaperEvent]:
        """Move prices to ``now`` (the clock's time by default), match resting orders, save.

        Returns the fills and cancels that happened, in order, for the caller to journal.
        """
        with self._lock:
            moment = self._now() if now is None else aware_utc(now)
            self._prices.advance(moment)
            events: list[PaperEvent] = []
            for rec in list(self._orders.values()):
                if rec.status.is_open:
                    self._match(rec, moment, events)
            self._trim()
            self._save()
            return events

    tick = advance

    def _match(self, rec: _Rec, now: datetime, events: list[PaperEvent]) -> None:
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
        qty = min(rec.remaining, floor_to_step(self._crossing_liquidity(rec), step))
        if qty <= 0:
            return
        self._first_fill_of_list(rec, events)
        self._emit_fill(rec, self._settle(rec, qty, rec.price, maker=True, now=now), events)

    def _emit_fill(self, rec: _Rec, fill: Fill, events: list[PaperEvent]) -> None:
        kind: EventKind = "fill" if rec.status is OrderStatus.FILLED else "partial_fill"
        events.append(PaperEvent(kind, rec.order(), fill))

    def _first_fill_of_list(self, rec: _Rec, events: list[PaperEvent]) -> None:
        """OCO: the first fill of one leg cancels the other, whose lock passes to this leg."""
        if rec.list_id is None or rec.filled > 0:
            return
        for other in self._legs(rec):
            if other is rec or not other.status.is_open:
                continue
            if other.reserved and other.reserve_asset == rec.reserve_asset:
                rec.reserved += other.reserved
                other.reserved = ZERO
            self._release(other)
            other.status = OrderStatus.CANCELED
            reason = f"oco {rec.list_id}: the other leg (order {rec.id}) filled"
            events.append(PaperEvent("cancel", other.order(), None, reason))

    # -- persistence --------------------------------------------------------------------------

    def _trim(self) -> None:
        if len(self._orders) <= 2 * CLOSED_ORDERS_KEPT:
            return  # amortized: trim in batches, not on every step
        closed = [k for k, r in self._orders.items() if not r.status.is_open]
        for key in closed[: max(0, len(closed) - CLOSED_ORDERS_KEPT)]:
            del self._orders[key]

    def _state(self) -> dict[str, Any]:
        assets = sorted(set(self._free) | set(self._locked))
        return {
            "version": STATE_VERSION,
            "fresh": self.fresh_account,
            "seed": self._seed,
            "counters": {
                "order": self._order_seq,
                "client": self._client_seq,
                "list": self._list_seq,
            },
            "balances": {
                a: {"free": self._free.get(a, ZERO), "locked": self._locked.get(a, ZERO)}
                for a in assets
            },
            "entry_prices": dict(sorted(self._entry.items())),
            "orders": [r.to_json() for r in self._orders.values()],
            "feed": self._prices.state(),
        }

    def _save(self) -> None:
        if self._path is not None:
            atomic_write_text(self._path, dumps(self._state(), indent=1) + "\n")

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

    def _load(self, path: Path) -> None:
        def broken(problem: str) -> PaperStateError:
            return PaperStateError(
                f"paper state {path} is unreadable ({problem}); the paper account was not reset: "
                f"repair the file, or delete {path.parent} to start again from the configured "
                f"balances"
            )

        try:
            raw = json.loads(path.read_text("utf-8"), parse_float=Decimal)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise broken(str(exc)) from None
        if not isinstance(raw, dict):
            raise broken("not a JSON object")
        if raw.get("version") != STATE_VERSION:
            raise broken(f"version {raw.get('version')!r}, expected {STATE_VERSION}")
        try:
            counters = raw["counters"]
            order_seq, client_seq = int(counters["order"]), int(counters["client"])
            list_seq = int(counters["list"])
            free = {str(a): Decimal(str(b["free"])) for a, b in raw["balances"].items()}
            locked = {str(a): Decimal(str(b["locked"])) for a, b in raw["balances"].items()}
            entry = {str(a): Decimal(str(p)) for a, p in raw["entry_prices"].items()}
            orders = [_Rec.from_json(o) for o in raw["orders"]]
            feed = raw["feed"]
            feed_kind = feed["kind"]
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
            raise broken(f"bad field: {exc!r}") from None
        for rec in orders:
            if rec.status.is_open and rec.symbol not in self._markets:
                raise broken(f"open order {rec.id} is on {rec.symbol}, not a paper market")
        held: dict[str, Decimal] = {}
        for rec in orders:
            if rec.reserved:
                held[rec.reserve_asset] = held.get(rec.reserve_asset, ZERO) + rec.reserved
        for asset in set(held) | set(locked):
            if held.get(asset, ZERO) != locked.get(asset, ZERO):
                raise broken(
                    f"{asset} locked {locked.get(asset, ZERO)} but the open orders hold "
                    f"{held.get(asset, ZERO)}"
                )
        if feed_kind == self._prices.kind:
            try:
                self._prices.restore(feed)
            except ValueError as exc:
                raise broken(str(exc)) from None
        else:
            log.warning(
                "paper state %s: prices were from a %r source, now %r: starting prices afresh",
                path,
                feed_kind,
                self._prices.kind,
            )
        self._free, self._locked, self._entry = free, locked, entry
        self._orders = {rec.id: rec for rec in orders}
        self._order_seq, self._client_seq, self._list_seq = order_seq, client_seq, list_seq
        self.fresh_account = raw.get("fresh") is True
