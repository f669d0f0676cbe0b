"""ExecutionEngine: risk first, positions and closed trades from the journal, halt and flatten."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from engine.audit import AuditLog
from engine.config import KobeConfig, PaperConfig, RiskConfig, RouterConfig
from engine.exchange.base import OrderType, Side
from engine.exchange.paper import PaperExchange
from engine.exchange.prices import ManualPrices
from engine.execution import ExecutionEngine
from engine.journal import OrderJournal
from engine.proposal import Proposal, Refused, Sizing, Source
from engine.risk import KillState, RiskEngine
from engine.router import Router, StaticWallets
from engine.trades import ClosedTrade, TradeStore, pnl_summary
from engine.wallets.runtime import WalletManager

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Rig:
    def __init__(self, tmp: Path, **risk: object) -> None:
        self.tmp = tmp
        self.now = T0
        self.prices = ManualPrices({"SOL/USDT": Decimal(100), "BTC/USDT": Decimal(95000)}, start=T0)
        cfg = PaperConfig(balances={"USDT": Decimal(1000)}, slippage_bps=Decimal(0))
        self.exchange = PaperExchange(cfg, tmp, clock=self.clock, prices=self.prices)
        self.audit = AuditLog(tmp, self.clock)
        risk_cfg = RiskConfig(**{"min_operational_capital_usd": Decimal(0), **risk})  # type: ignore[arg-type]
        self.risk = RiskEngine(tmp, risk_cfg, self.clock, audit=self.audit)
        self.router = Router(
            self.exchange,
            OrderJournal(tmp),
            data_dir=tmp,
            mode="paper",
            exchange_name="binance",
            risk=risk_cfg,
            wallets=StaticWallets({"cex_binance": Decimal(100)}),
            clock=self.clock,
            maker_fee_pct=Decimal("0.1"),
            taker_fee_pct=Decimal("0.1"),
            audit=self.audit,
            # no slippage on this venue: a market buy is sized for what its book walk costs
            settings=RouterConfig(market_slippage_bps=Decimal(0)),
        )
        self.wallets = WalletManager.from_config(KobeConfig(), tmp, clock=self.clock)
        self.closed: list[ClosedTrade] = []
        self.alerts: list[tuple[str, str]] = []
        self.engine = ExecutionEngine(
            {"binance": self.router},
            self.risk,
            TradeStore(tmp),
            data_dir=tmp,
            clock=self.clock,
            venue_of_wallet=lambda w: "binance",
            wallets=self.wallets,
            on_closed=self.closed.append,
            on_alert=lambda sev, msg: self.alerts.append((sev, msg)),
        )

    def clock(self) -> datetime:
        return self.now

    def move(self, symbol: str, price: str) -> None:
        self.now += timedelta(seconds=60)
        self.prices.set(symbol, Decimal(price))
        for ev in self.exchange.advance(self.now):
            self.router.on_order_update(ev.kind, ev.order, ev.reason)
        self.engine.poll()


def entry(source: Source = Source.STRATEGY, **kw: object) -> Proposal:
    base: dict[str, object] = dict(
        symbol="SOL/USDT",
        side=Side.BUY,
        entry_type=OrderType.MARKET,
        sizing=Sizing.QUOTE,
        amount=Decimal(15),
        wallet="cex_binance",
        source=source,
        stop_loss=Decimal(95),
        take_profit=Decimal(110),
        strategy="test" if source is Source.STRATEGY else "",
        reason="scenario",
    )
    base.update(kw)
    return Proposal(**base)  # type: ignore[arg-type]


def test_a_take_profit_closes_the_trade_everywhere(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    placed = rig.engine.submit(entry())
    [pos] = rig.engine.positions()
    # held: what the entry filled, less its fee taken in SOL (Binance: the asset received)
    assert placed.entry.fee_asset == "SOL"
    assert pos.strategy == "test" and pos.qty == placed.entry.filled - placed.entry.fee
    rig.move("SOL/USDT", "111")
    [trade] = rig.closed
    assert trade.trade_id == placed.entry.client_id and trade.reason
    assert trade.exit_price == Decimal(110)
    expected = (trade.exit_price - trade.entry_price) * trade.qty - trade.fees
    assert trade.pnl == expected and trade.pnl > 0
    assert rig.engine.positions() == []
    assert pnl_summary(tmp_path / "trades.jsonl").by_wallet == {"cex_binance": trade.pnl}
    assert rig.wallets.balances()["cex_binance"] != Decimal(20)  # the wallet manager booked it
    assert rig.risk.snapshot().losing_streak == 0


def test_losing_streak_trips_by_itself_and_blocks_every_source(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_losing_streak=2, max_daily_loss_usd=Decimal(0))
    for _ in range(2):
        rig.engine.submit(entry())
        rig.move("SOL/USDT", "94")  # the stop-loss leg fills
        rig.move("SOL/USDT", "100")
    assert [t.pnl < 0 for t in rig.closed] == [True, True]
    assert rig.risk.kill_switch().state is KillState.TRIPPED
    for source in Source:
        with pytest.raises(Refused, match="kill switch is TRIPPED: 2 losing trades in a row"):
            rig.engine.submit(entry(source))


def test_halt_keeps_protective_exits_working(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.engine.submit(entry())
    rig.risk.trip("manual: test", "cli")
    # tripped, yet the stop-loss still protects the position (94.8: through the stop at 95, above
    # its limit 94.52; a gap below the limit rests there, as on Binance)
    rig.move("SOL/USDT", "94.8")
    assert len(rig.closed) == 1 and rig.closed[0].reason
    assert rig.engine.positions() == []


def test_flatten_closes_only_what_kobe_opened(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.engine.submit(entry())
    rig.engine.submit(
        entry(
            entry_type=OrderType.LIMIT,
            price=Decimal(90),
            stop_loss=Decimal(85),
            take_profit=Decimal(99),
        )
    )
    # an order the operator placed by hand on the venue, not through Kobe
    outside = rig.exchange.create_order(
        "BTC/USDT",
        Side.BUY,
        OrderType.LIMIT,
        Decimal("0.0001"),
        Decimal(80000),
        {"client_id": "mine-1"},
    )
    done = rig.engine.flatten("kill switch tripped (flatten)")
    assert any(d.startswith("cancelled entry") for d in done)
    assert any(d.startswith("closed") for d in done)
    open_ids = [o.client_id for o in rig.exchange.fetch_open_orders()]
    assert open_ids == [outside.client_id]
    assert rig.engine.positions() == [] and rig.engine.pending() == []
    assert len(rig.closed) == 1 and rig.closed[0].reason == "kill switch tripped (flatten)"


def test_positions_survive_a_restart(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.engine.submit(entry())
    again = Rig(tmp_path)
    [pos] = again.engine.positions()
    assert pos.strategy == "test"
    again.move("SOL/USDT", "111")
    assert len(again.closed) == 1


def test_exchange_errors_become_alerts(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.engine.submit(entry(entry_type=OrderType.LIMIT, price=Decimal(90), stop_loss=Decimal(85)))
    from engine.exchange.base import ExchangeUnavailable

    def broken(*_: object) -> None:
        raise ExchangeUnavailable("503 from the venue")

    rig.router.poll = broken  # type: ignore[method-assign]
    rig.engine.poll()
    assert rig.alerts == [("warning", "binance: 503 from the venue")]


def test_trades_file_lines(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.engine.submit(entry())
    rig.move("SOL/USDT", "111")
    [line] = [json.loads(x) for x in (tmp_path / "trades.jsonl").read_text().splitlines()]
    assert set(line) == {
        "trade_id",
        "opened_at",
        "closed_at",
        "wallet",
        "strategy",
        "symbol",
        "side",
        "qty",
        "entry_price",
        "exit_price",
        "fees",
        "pnl",
        "reason",
        "mode",  # the booking engine's (live's money is never mixed with play money)
    }
    assert line["closed_at"].endswith("Z") and line["strategy"] == "test"
