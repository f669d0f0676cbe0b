"""Paper rehearses the exchange (ARCHITECTURE.md 5b, invariant 7; issue 13).

The same proposals go, through the same router code, to the paper exchange and to the Binance
simulator (``tests/binance_sim.py``) through ``CcxtExchange``: the real ccxt, signing and sending
HTTP to 127.0.0.1. Same prices, the same book, the same 0.1 % fee. The simulator holds Binance
spot's rules as its API documents them (LOT_SIZE, PRICE_FILTER, PERCENT_PRICE_BY_SIDE, NOTIONAL
with a market order's on the average price, commission per trade in the asset received at 8
decimals, a book with depth), so the comparison is against the exchange's rules, not against
paper's idea of them.

Per proposal and per field: accepted, refusal (which rule), quantity, limit price, fee asset, fee
amount, filled quantity, average price, and the exit quantity (the OCO legs placed after a filled
buy). Slippage 0: every field agrees on every proposal. With the shipped slippage
(``paper.slippage_bps``, market orders only) only a market order's average price and what is
derived from it (its notional, a sell's fee in the quote) may differ; that run is checked too.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest

from engine.config import KobeConfig, PaperConfig
from engine.exchange.base import Exchange, InvalidOrder, OrderType, Side
from engine.exchange.ccxt_exchange import CcxtExchange
from engine.exchange.paper import PaperExchange, load_paper_markets
from engine.exchange.prices import ManualPrices
from engine.journal import OrderJournal
from engine.proposal import Proposal, Refused, Sizing, Source
from engine.risk import RiskEngine
from engine.router import Router, StaticWallets
from engine.secrets import Secret
from tests.binance_sim import API_KEY, API_SECRET, BinanceSim, SymbolSpec

D = Decimal
T0 = datetime(2026, 1, 1, tzinfo=UTC)
FEE_PCT = D("0.1")
MARKETS = load_paper_markets()
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
BALANCES = {"USDT": D(1_000_000), "BTC": D(2), "ETH": D(20), "SOL": D(500)}
BOOK_DEPTH = 60  # levels copied to the simulator: far more than a 500 USDT order reaches
PROPOSALS = 264
# What each venue says, by rule (paper's words, Binance's words): the first that matches.
RULES = {
    "MAX_NUM_ALGO_ORDERS": ("MAX_NUM_ALGO_ORDERS",),
    "PERCENT_PRICE_BY_SIDE": ("PERCENT_PRICE_BY_SIDE",),
    "PRICE_FILTER": ("PRICE_FILTER",),
    "LOT_SIZE": ("LOT_SIZE",),
    "NOTIONAL": ("NOTIONAL",),
    "insufficient balance": ("insufficient",),
    "OCO prices out of order": ("prices are not in order", "relationship of the prices"),
}
FIELDS = (
    "accepted",
    "refusal",
    "qty",
    "price",
    "fee_asset",
    "fee",
    "filled",
    "avg_price",
    "exit_qty",
)


def refusal(text: str) -> str:
    """Which rule refused: the filter a venue named (each says it in its own words), or the
    router's own reason (the same code on both sides, word for word)."""
    if "refused the order" in text or "EXITS NOT PLACED" in text:
        found = [r for r, words in RULES.items() if any(w.lower() in text.lower() for w in words)]
        return "venue: " + (found[0] if found else text)
    return text


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    refusal: str = ""
    qty: Decimal | None = None
    price: Decimal | None = None
    fee_asset: str = ""
    fee: Decimal | None = None
    filled: Decimal | None = None
    avg_price: Decimal | None = None  # cost / filled: compared at 8 decimals
    exit_qty: tuple[Decimal, ...] | str = ()


def outcome(router: Router, proposal: Proposal) -> Outcome:
    try:
        placed = router.submit(proposal)
    except Refused as exc:
        return Outcome(False, "; ".join(refusal(r) for r in exc.reasons))
    entry = placed.entry
    avg = entry.avg_price
    exits: tuple[Decimal, ...] | str = tuple(o.qty for o in placed.exits)
    if any("EXITS NOT PLACED" in n for n in placed.notes):
        exits = "; ".join(refusal(n) for n in placed.notes)
    return Outcome(
        True,
        qty=entry.qty,
        price=entry.price,
        fee_asset=entry.fee_asset if entry.filled else "",
        fee=entry.fee,
        filled=entry.filled,
        avg_price=None if avg is None else avg.quantize(D("0.00000001"), ROUND_HALF_EVEN),
        exit_qty=exits,
    )


def odd(rng: random.Random, value: Decimal) -> Decimal:
    """A price as an operator types it: often off the tick, sometimes half a tick off."""
    return value.quantize(D("0.01")) + rng.choice(
        [D(0), D("0.005"), D("0.001"), D("0.009"), D("0.0049"), D(rng.randint(1, 99)) / 10_000]
    )


def proposals(seed: int = 13) -> list[Proposal]:
    """Market and limit, buy and sell, three symbols, quotes from 1 to 500 (many at the
    minimum notional and at a step's edge), odd prices, exits on some buys (spot: a long's)."""
    rng = random.Random(seed)
    out = []
    for i in range(PROPOSALS):
        symbol = SYMBOLS[i % 3]
        rules, mid = MARKETS[symbol].rules, MARKETS[symbol].start_price
        side = Side.BUY if rng.random() < 0.6 else Side.SELL
        entry_type = OrderType.LIMIT if rng.random() < 0.5 else OrderType.MARKET
        kind = rng.random()
        if kind < 0.3:  # around the minimum notional
            quote = rules.min_notional + D(rng.choice([-1, 0, 1, 2, 3, 5, 8, 13, 30])) / 100
        elif kind < 0.5:  # a step's edge: a whole number of steps, give or take a hair
            steps = rng.randint(1, int(D(500) / (mid * rules.step_size)))
            quote = (D(steps) * rules.step_size * mid + D(rng.choice([-1, 0, 1])) / 10**6).max(D(1))
        else:
            quote = D(rng.randint(100, 50_000)) / 100
        quote = quote.quantize(D("0.000001"))
        price = None
        reference = mid
        if entry_type is OrderType.LIMIT:
            factor = rng.choice(
                ["0.15", "0.5", "0.9", "0.97", "0.999", "1", "1.0004", "1.003", "1.05", "5.5"]
            )
            price = odd(rng, mid * D(factor))
            reference = price
        stop_loss = take_profit = None
        if side is Side.BUY and rng.random() < 0.5:
            stop_loss = odd(rng, reference * D(rng.choice(["0.9", "0.97", "0.995"])))
            take_profit = odd(rng, reference * D(rng.choice(["1.01", "1.05", "1.3"])))
        out.append(
            Proposal(
                symbol=symbol,
                side=side,
                entry_type=entry_type,
                sizing=Sizing.QUOTE,
                amount=quote,
                wallet="cex_binance",
                source=Source.CLI,
                price=price,
                stop_loss=stop_loss,
                take_profit=take_profit,
                reason=f"fidelity {i}",
            )
        )
    return out


def router_for(exchange: Exchange, data_dir: Path, mode: str) -> Router:
    data_dir.mkdir(parents=True, exist_ok=True)
    # the risk engine's first start writes its state: from then on, losing it trips
    RiskEngine(data_dir, KobeConfig().risk, lambda: T0).close()
    return Router(
        exchange,
        OrderJournal(data_dir),
        data_dir=data_dir,
        mode=mode,
        exchange_name="binance",
        risk=KobeConfig().risk,
        wallets=StaticWallets({"cex_binance": D(10**9)}),
        clock=lambda: T0,
        maker_fee_pct=FEE_PCT,
        taker_fee_pct=FEE_PCT,
    )


def paper_exchange(
    slippage_bps: Decimal,
    balances: dict[str, Decimal] | None = None,
    maker_fee_pct: Decimal = FEE_PCT,
) -> PaperExchange:
    cfg = PaperConfig(
        balances=BALANCES if balances is None else balances,
        maker_fee_pct=maker_fee_pct,
        taker_fee_pct=FEE_PCT,
        slippage_bps=slippage_bps,
    )
    prices = ManualPrices({s: m.start_price for s, m in MARKETS.items()}, start=T0)
    return PaperExchange(cfg, None, clock=lambda: T0, prices=prices)


def binance_venue(sim: BinanceSim) -> CcxtExchange:
    """Binance through the real ccxt, at the simulator (testnet mode, its base URL)."""
    return CcxtExchange(
        "binance",
        api_key=Secret(API_KEY),
        secret=Secret(API_SECRET),
        sandbox=True,
        api_url=sim.url,
        ccxt_config={"rateLimit": 1},  # the limiter stays on; 1 ms apart keeps the test fast
    )


@contextmanager
def fidelity_sim(
    balances: dict[str, Decimal] | None = None,
    depth: int = BOOK_DEPTH,
    maker_fee_pct: Decimal = FEE_PCT,
) -> Iterator[BinanceSim]:
    """The exchange: Binance's filters with the paper market file's values, the same book (its
    first ``depth`` levels), the same ``balances``, the same fees (taker ``FEE_PCT``)."""
    specs = tuple(
        SymbolSpec(
            symbol.replace("/", ""),
            m.rules.base,
            m.rules.quote,
            m.start_price,
            m.rules.tick_size,
            m.rules.step_size,
            m.rules.min_qty,
            m.rules.min_notional,
            max_qty=m.rules.max_qty or D(9000),
            bid_up=m.percent_price.bid_up,
            bid_down=m.percent_price.bid_down,
            ask_up=m.percent_price.ask_up,
            ask_down=m.percent_price.ask_down,
            min_price=m.limits.min_price,
            max_price=m.limits.max_price or D(1_000_000),
            market_max_qty=m.limits.market_max_qty,
            max_notional=m.limits.max_notional or D(9_000_000),
            max_num_orders=m.limits.max_num_orders,
            max_num_algo_orders=m.limits.max_num_algo_orders,
        )
        for symbol, m in MARKETS.items()
    )
    funds = dict(BALANCES if balances is None else balances)
    fees = {"fee_rate": FEE_PCT / 100, "maker_fee_rate": maker_fee_pct / 100}
    with BinanceSim(balances=funds, symbols=specs, **fees) as server:
        book = paper_exchange(D(0))  # the market as it is: no slippage
        for symbol in SYMBOLS:
            bids, asks = book.order_book(symbol, depth)
            server.set_book(symbol.replace("/", ""), bids, asks)
        yield server


@pytest.fixture
def sim() -> Iterator[BinanceSim]:
    with fidelity_sim() as server:
        yield server


Pairs = list[tuple[Outcome, Outcome]]


def run_both(
    sim: BinanceSim, tmp_path: Path, slippage_bps: Decimal
) -> tuple[Pairs, dict[str, Decimal], dict[str, Decimal]]:
    """Every proposal on both venues, in order; then both accounts' totals per asset."""
    paper = paper_exchange(slippage_bps)
    binance = binance_venue(sim)
    try:
        on_paper = router_for(paper, tmp_path / "paper", "paper")
        on_binance = router_for(binance, tmp_path / "binance", "testnet")
        pairs = []
        for p in proposals():
            pairs.append((outcome(on_paper, p), outcome(on_binance, p)))
            if "MAX_NUM_ALGO_ORDERS" in pairs[-1][0].refusal:  # refused before it was sent:
                for router in (on_paper, on_binance):  # the operator frees a slot on both
                    open_now = router.exchange.fetch_open_orders(p.symbol)
                    for stop in [o for o in open_now if o.stop_price is not None][:1]:
                        router.cancel(stop.id, Source.CLI)
        on_paper_totals = {a: b.total for a, b in paper.balances().items() if b.total}
        assets = set(on_paper_totals) | set(sim.balances)
        on_sim = {a: sim.balances.get(a, D(0)) + sim.locked.get(a, D(0)) for a in assets}
        return pairs, on_paper_totals, {a: v for a, v in on_sim.items() if v}
    finally:
        binance.close()


def agreement(pairs: list[tuple[Outcome, Outcome]], fields: tuple[str, ...]) -> dict[str, float]:
    return {
        f: 100 * sum(getattr(a, f) == getattr(b, f) for a, b in pairs) / len(pairs) for f in fields
    }


def test_paper_and_binance_agree_on_every_field(sim: BinanceSim, tmp_path: Path) -> None:
    pairs, on_paper, on_binance = run_both(sim, tmp_path, D(0))
    assert len(pairs) >= 200
    outcomes = [a for a, _ in pairs]
    # the proposals reach every path: fills, resting limits, OCOs, refusals of each kind
    assert sum(o.accepted for o in outcomes) >= 100
    assert sum(o.accepted and o.filled == o.qty for o in outcomes) >= 50
    assert sum(o.accepted and o.filled == 0 for o in outcomes) >= 20
    assert sum(isinstance(o.exit_qty, tuple) and len(o.exit_qty) == 2 for o in outcomes) >= 10
    assert {o.fee_asset for o in outcomes if o.fee_asset} == {"BTC", "ETH", "SOL", "USDT"}
    # an exit below NOTIONAL at its stop leg's limit, and a sixth OCO on a symbol (Binance's
    # MAX_NUM_ALGO_ORDERS: five stop orders open at most), are refused up front with their
    # entry, by the router: what is left is a gap the OCO itself refuses
    for kind in (
        "PERCENT_PRICE_BY_SIDE",
        "below the exchange minimum",
        "exits could not",
        "MAX_NUM_ALGO_ORDERS",
    ):
        assert any(kind in o.refusal for o in outcomes), kind
    exit_refusals = {o.exit_qty for o in outcomes if isinstance(o.exit_qty, str)}
    assert exit_refusals == {"venue: OCO prices out of order"}
    score = agreement(pairs, FIELDS)
    differing = [(i, a, b) for i, (a, b) in enumerate(pairs) if a != b]
    assert score == dict.fromkeys(FIELDS, 100.0), (score, differing[:5])
    assert on_paper == on_binance  # every fill, fee and lock alike, to the last decimal


def test_with_the_shipped_slippage_only_market_prices_differ(
    sim: BinanceSim, tmp_path: Path
) -> None:
    shipped = PaperConfig().slippage_bps
    assert shipped > 0
    pairs, _, _ = run_both(sim, tmp_path, shipped)
    same = ("accepted", "refusal", "qty", "price", "fee_asset", "filled", "exit_qty")
    assert agreement(pairs, same) == dict.fromkeys(same, 100.0)
    limits = [(a, b) for a, b in pairs if a.accepted and a.price is not None]
    assert all(a == b for a, b in limits)  # a limit meets the book as it is
    markets = [(a, b) for a, b in pairs if a.accepted and a.price is None]
    assert markets
    for a, b in markets:
        assert a.avg_price is not None and b.avg_price is not None
        worse = a.avg_price > b.avg_price if a.fee_asset != "USDT" else a.avg_price < b.avg_price
        assert worse  # paper fills a market order worse than the book, never better
        if a.fee_asset == "USDT":  # a sell's fee is on its (lower) proceeds
            assert a.fee is not None and b.fee is not None and a.fee <= b.fee
        else:  # a buy's is on its quantity: the same
            assert a.fee == b.fee


@pytest.mark.parametrize(
    ("symbol", "qty", "price", "rule"),
    [
        ("BTC/USDT", "0.000105", None, "LOT_SIZE"),
        ("ETH/USDT", "0.01234", "3400", "LOT_SIZE"),
        ("SOL/USDT", "0.5", "61800.005", "PRICE_FILTER"),
        ("BTC/USDT", "0.0001", "61800.005", "PRICE_FILTER"),
        ("SOL/USDT", "0.5", "179.999", "PRICE_FILTER"),
        ("SOL/USDT", "0.5", "1000.00", "PERCENT_PRICE_BY_SIDE"),
        ("ETH/USDT", "0.0001", "3400", "NOTIONAL"),
    ],
)
def test_both_venues_refuse_what_the_router_did_not_round(
    sim: BinanceSim, symbol: str, qty: str, price: str | None, rule: str
) -> None:
    """Neither venue rounds at send time: a value off the step or tick is refused by both,
    for the same rule, and the ccxt adapter refuses it before anything is sent."""
    paper = paper_exchange(D(0))
    binance = binance_venue(sim)
    type_ = OrderType.MARKET if price is None else OrderType.LIMIT
    limit = None if price is None else D(price)
    try:
        said = []
        for venue in (paper, binance):
            with pytest.raises(InvalidOrder) as info:
                venue.create_order(symbol, Side.BUY, type_, D(qty), limit)
            said.append(refusal(f"binance refused the order: {info.value}"))
        assert said == [f"venue: {rule}"] * 2
        assert sim.orders_created == 0
    finally:
        binance.close()
