"""The paper DEX venue: markets added at run time from the strategies, prices from their feeds,
fees and slippage from config, persistence under <data dir>/dex/, and a whole headless-like
session of both shipped strategies on it (>= 5 closed trades in 500 ticks, money conserved)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from engine.config import DexConfig, KobeConfig, PaperConfig, parse_config
from engine.exchange.base import InvalidOrder, OrderStatus, OrderType, Side
from engine.exchange.dex import (
    DEX_VENUE,
    SIMULATED_NOTICE,
    DexPaperExchange,
    build_dex_venue,
    dex_market,
    starting_balance,
    sync_dex_venue,
)
from engine.exchange.paper import PaperExchange, PaperStateError, load_paper_markets
from engine.exchange.prices import ManualPrices
from engine.money import floor_to_step, is_multiple
from engine.strategies import TICK_SECONDS, DexMarket, Signal, Strategy, build_strategies

D = Decimal
T0 = datetime(2026, 1, 1, tzinfo=UTC)
BONK = "BONK/USDC"
WIF = "WIF/USDC"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def step(self, seconds: int = TICK_SECONDS) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class FeedOnly(Strategy):
    """A strategy that only offers markets and prices (set by the test)."""

    name = "feed_only"
    wallet = "sniper_sol"

    def __init__(self, prices: dict[str, str]) -> None:
        self.quotes = {s: D(p) for s, p in prices.items()}

    def tick(self, now: datetime) -> list[Signal]:
        return []

    def on_entry_filled(self, ref: str, price: Decimal, qty: Decimal, now: datetime) -> None:
        pass

    def on_entry_failed(self, ref: str, reason: str) -> None:
        pass

    def on_position_closed(self, ref: str, exit_price: Decimal, now: datetime) -> None:
        pass

    def on_position_dust(self, ref: str) -> None:
        pass

    def prices(self) -> dict[str, Decimal]:
        return dict(self.quotes)

    def markets(self) -> list[DexMarket]:
        return [DexMarket(s, p) for s, p in sorted(self.quotes.items())]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def held_on_step(v: PaperExchange, symbol: str) -> Decimal:
    market = v.market(symbol)
    return floor_to_step(v.get_balance(market.base), market.step_size)


def venue(tmp_path: Path | None, clock: Clock, text: str = "") -> DexPaperExchange:
    return build_dex_venue(parse_config(text), tmp_path, clock)


# -- building ----------------------------------------------------------------------------------


def test_built_from_config_with_the_strategy_wallets_allocation(
    tmp_path: Path, clock: Clock
) -> None:
    v = venue(tmp_path, clock)
    assert isinstance(v, PaperExchange) and v.name == DEX_VENUE == "dex_paper"
    assert v.load_markets() == {}
    assert v.get_balance("USDC") == D(60)  # sniper_sol 30 + copy_sol 30
    assert starting_balance(KobeConfig()) == D(60)
    other = venue(None, clock, "[strategies.dex]\nstarting_balance = 250\n")
    assert other.get_balance("USDC") == D(250)
    assert "SIMULATED" in SIMULATED_NOTICE and "no transaction is ever sent" in SIMULATED_NOTICE


def test_market_rules_suit_memecoins() -> None:
    cfg = DexConfig()
    bonk = dex_market(BONK, D("0.0000231"), cfg).rules
    assert (bonk.base, bonk.quote) == ("BONK", "USDC")
    assert bonk.tick_size == D("1E-14") and bonk.step_size == D(10) and bonk.min_qty == D(10)
    assert bonk.min_notional == cfg.min_notional_usd
    wif = dex_market(WIF, D("2.15"), cfg).rules
    assert wif.tick_size == D("1E-9") and wif.step_size == D("0.0001")
    with pytest.raises(ValueError):
        dex_market(BONK, D(0), cfg)


# -- markets appearing at run time, prices from the feed ---------------------------------------


def test_sync_adds_markets_and_fills_at_the_fed_prices(tmp_path: Path, clock: Clock) -> None:
    v = venue(tmp_path, clock)
    feed = FeedOnly({BONK: "0.0000231"})
    assert sync_dex_venue(v, [feed], clock.now) == []
    assert set(v.load_markets()) == {BONK}
    assert v.fetch_ticker(BONK).last == D("0.0000231")
    qty = D(200_000)
    buy = v.create_order(BONK, Side.BUY, OrderType.MARKET, qty)
    cfg = DexConfig()
    assert buy.status is OrderStatus.FILLED and buy.filled == qty
    assert buy.avg_price is not None
    first_level = D("0.0000231") * (1 + cfg.slippage_bps / 10_000)
    assert buy.avg_price >= first_level > D("0.0000231")  # slippage from config
    # fee from config, in the asset received (a buy pays in BONK), 8 decimals
    assert buy.fee_asset == "BONK" and buy.fee == qty * cfg.fee_pct / 100
    assert v.get_balance("USDC") == D(60) - buy.avg_price * qty
    assert v.get_balance("BONK") == qty - buy.fee
    # the feed moves; the next sync moves the venue
    feed.quotes[BONK] = D("0.0000300")
    clock.step()
    sync_dex_venue(v, [feed], clock.now)
    assert v.fetch_ticker(BONK).last == D("0.0000300")
    sell = v.create_order(BONK, Side.SELL, OrderType.MARKET, held_on_step(v, BONK))
    assert sell.avg_price is not None and sell.avg_price < D("0.0000300")
    assert sell.fee_asset == "USDC"
    assert v.get_balance("BONK") == 0


def test_a_new_market_appears_mid_session_and_min_notional_applies(clock: Clock) -> None:
    v = venue(None, clock)
    feed = FeedOnly({BONK: "0.0000231"})
    sync_dex_venue(v, [feed], clock.now)
    feed.quotes[WIF] = D("2.15")
    clock.step()
    sync_dex_venue(v, [feed], clock.now)
    assert set(v.load_markets()) == {BONK, WIF}
    with pytest.raises(InvalidOrder, match="NOTIONAL"):
        v.create_order(WIF, Side.BUY, OrderType.MARKET, D("0.1"))  # 0.215 USDC < 1


def test_protective_oco_triggers_on_the_fed_price(clock: Clock) -> None:
    v = venue(None, clock)
    feed = FeedOnly({WIF: "2.00"})
    sync_dex_venue(v, [feed], clock.now)
    v.create_order(WIF, Side.BUY, OrderType.MARKET, D(5))
    held = held_on_step(v, WIF)  # what the WIF fee left
    oco = v.create_oco(WIF, Side.SELL, held, take_profit=D("2.3"), stop_loss=D("1.8"))
    feed.quotes[WIF] = D("2.31")
    clock.step()
    events = sync_dex_venue(v, [feed], clock.now)
    kinds = [(e.kind, e.order.client_id) for e in events]
    assert ("fill", oco.take_profit.client_id) in kinds
    assert ("cancel", oco.stop_loss.client_id) in kinds


def test_unused_markets_are_forgotten_but_not_while_held(tmp_path: Path, clock: Clock) -> None:
    v = venue(tmp_path, clock)
    feed = FeedOnly({BONK: "0.0000231", WIF: "2.00"})
    sync_dex_venue(v, [feed], clock.now)
    v.create_order(WIF, Side.BUY, OrderType.MARKET, D(3))
    feed.quotes.clear()
    clock.step()
    sync_dex_venue(v, [feed], clock.now)
    assert set(v.load_markets()) == {WIF}  # BONK unused: gone; WIF still held
    assert WIF in load_paper_markets(tmp_path / "dex" / "markets.json")
    assert BONK not in v.prices.symbols()


def test_state_and_markets_survive_a_restart(tmp_path: Path, clock: Clock) -> None:
    v = venue(tmp_path, clock)
    feed = FeedOnly({WIF: "2.00"})
    sync_dex_venue(v, [feed], clock.now)
    v.create_order(WIF, Side.BUY, OrderType.MARKET, D(5))
    resting = v.create_order(WIF, Side.SELL, OrderType.LIMIT, held_on_step(v, WIF), D("2.5"))
    balances = v.balances()
    v.close()
    assert (tmp_path / "dex" / "state.json").exists()
    assert not (tmp_path / "paper").exists()  # the CEX paper account is not touched
    again = venue(tmp_path, clock)
    assert again.balances() == balances
    assert again.fetch_ticker(WIF).last == D("2.00")
    assert [o.id for o in again.fetch_open_orders(WIF)] == [resting.id]
    feed.quotes[WIF] = D("2.6")
    clock.step()
    events = sync_dex_venue(again, [feed], clock.now)
    assert [e.kind for e in events] == ["fill"]


def test_a_damaged_markets_file_is_not_reset(tmp_path: Path, clock: Clock) -> None:
    (tmp_path / "dex").mkdir()
    (tmp_path / "dex" / "markets.json").write_text("{not json")
    with pytest.raises(PaperStateError, match="was not reset"):
        venue(tmp_path, clock)


# -- the small additions to PaperExchange ------------------------------------------------------


def test_paper_exchange_add_and_remove_market(clock: Clock) -> None:
    prices = ManualPrices({}, start=T0)
    cfg = PaperConfig(balances={"USDC": D(100)}, maker_fee_pct=D(0), taker_fee_pct=D(0))
    ex = PaperExchange(cfg, None, clock=clock, prices=prices, markets={})
    assert ex.name == "paper"
    market = dex_market(WIF, D(2), DexConfig())
    prices.set(WIF, D(2))
    assert ex.add_market(market) is True
    assert ex.add_market(market) is False  # known: unchanged
    ex.create_order(WIF, Side.BUY, OrderType.MARKET, D(5))
    assert ex.remove_market(WIF) is False  # WIF held
    ex.create_order(WIF, Side.SELL, OrderType.LIMIT, D(5), D(3))
    assert ex.remove_market(WIF) is False  # an open order on it
    ex.cancel_order(ex.fetch_open_orders(WIF)[0].id, WIF)
    ex.create_order(WIF, Side.SELL, OrderType.MARKET, D(5))
    assert ex.remove_market(WIF) is True
    assert ex.load_markets() == {} and "WIF" not in ex.balances()
    assert ex.remove_market(WIF) is False  # unknown


def test_paper_exchange_state_dir_and_name(tmp_path: Path, clock: Clock) -> None:
    ex = PaperExchange(PaperConfig(), tmp_path, clock=clock, state_dir="elsewhere", name="other")
    assert ex.name == "other" and ex.state_path == tmp_path / "elsewhere" / "state.json"
    assert PaperExchange(PaperConfig(), tmp_path, clock=clock).name == "paper"


# -- a whole session of the shipped strategies on the venue ------------------------------------


def session(
    data_dir: Path, ticks: int = 500
) -> tuple[list[tuple[str, str, Decimal]], DexPaperExchange, Decimal]:
    """Both shipped strategies on the DEX venue, one tick = TICK_SECONDS, fills at market."""
    cfg = KobeConfig()
    clock = Clock()
    v = build_dex_venue(cfg, data_dir, clock)
    strategies = build_strategies(cfg.strategies, data_dir)
    held: dict[str, tuple[Decimal, Decimal]] = {}
    closed: list[tuple[str, str, Decimal]] = []
    cash = D(0)  # every USDC flow of the fills
    for i in range(ticks):
        clock.now = T0 + timedelta(seconds=TICK_SECONDS * i)
        signals = [(s, sig) for s in strategies for sig in s.tick(clock.now)]
        sync_dex_venue(v, strategies, clock.now)
        for strategy, sig in signals:
            if sig.is_entry:
                ask = v.fetch_ticker(sig.symbol).ask
                assert ask is not None
                qty = floor_to_step(sig.size_hint / ask, v.market(sig.symbol).step_size)
                o = v.create_order(sig.symbol, Side.BUY, OrderType.MARKET, qty)
                assert o.avg_price is not None
                assert o.fee_asset == v.market(sig.symbol).base  # the fee is taken in the coin
                cash -= o.avg_price * o.filled
                net = floor_to_step(o.filled - o.fee, v.market(sig.symbol).step_size)
                held[sig.ref] = (net, o.avg_price * o.filled)
                strategy.on_entry_filled(sig.ref, o.avg_price, net, clock.now)
            else:
                qty, cost = held.pop(sig.ref)
                assert sig.qty == qty
                o = v.create_order(sig.symbol, Side.SELL, OrderType.MARKET, qty)
                assert o.avg_price is not None
                cash += o.avg_price * o.filled - o.fee
                closed.append((strategy.name, sig.ref, o.avg_price * o.filled - o.fee - cost))
                strategy.on_position_closed(sig.ref, o.avg_price, clock.now)
    return closed, v, cash


def test_shipped_strategies_close_trades_on_the_dex_venue_and_conserve_money(
    tmp_path: Path,
) -> None:
    closed, v, cash = session(tmp_path / "a")
    assert len(closed) >= 5
    assert {name for name, _, _ in closed} == {"memecoin_farming", "copy_trading"}
    assert any(pnl > 0 for *_, pnl in closed) and any(pnl < 0 for *_, pnl in closed)
    assert v.balance("USDC").total == D(60) + cash  # every USDC is accounted for
    assert all(b.total >= 0 for b in v.balances().values())
    again, _, _ = session(tmp_path / "b")
    assert again == closed  # same seeds, same clock: the same trades
    state_a = (tmp_path / "a" / "dex" / "state.json").read_text()
    assert state_a == (tmp_path / "b" / "dex" / "state.json").read_text()


def test_entry_hints_are_on_the_dex_tick_so_protective_exits_are_accepted(clock: Clock) -> None:
    cfg = KobeConfig()
    v = build_dex_venue(cfg, None, clock)
    strategies = build_strategies(cfg.strategies, Path("unused"))
    checked = 0
    for i in range(300):
        clock.now = T0 + timedelta(seconds=TICK_SECONDS * i)
        signals = [sig for s in strategies for sig in s.tick(clock.now)]
        sync_dex_venue(v, strategies, clock.now)
        for sig in signals:
            if sig.is_entry and sig.take_profit is not None and sig.stop_loss is not None:
                tick = v.market(sig.symbol).tick_size
                assert is_multiple(sig.take_profit, tick) and is_multiple(sig.stop_loss, tick)
                checked += 1
                strategies[0].on_entry_failed(sig.ref, "only checked")  # frees the slot
    assert checked >= 5


def test_book_level_quote_usd_sets_how_deep_a_market_buy_walks(tmp_path: Path) -> None:
    """`[strategies.dex] book_level_quote_usd` is the depth of one book level: the same market
    buy of about 39 USDC fills on the first level of the shipped 2 000 USDC book, and walks
    several of a 5 USDC one, at a worse average price."""
    fills = []
    for depth in ("2000", "5"):
        clock = Clock()
        v = venue(tmp_path / depth, clock, f"[strategies.dex]\nbook_level_quote_usd = {depth}\n")
        sync_dex_venue(v, [FeedOnly({BONK: "0.0000231"})], clock.now)
        buy = v.create_order(BONK, Side.BUY, OrderType.MARKET, D(1_700_000))
        assert buy.status is OrderStatus.FILLED and buy.avg_price is not None
        fills.append(buy.avg_price)
    first_level = D("0.0000231") * (1 + DexConfig().slippage_bps / 10_000)
    assert fills[0] <= first_level * D("1.0001") < fills[1]
