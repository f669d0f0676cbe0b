"""The router on the real paper exchange: sizing, rounding, exits (OCO, attached, watchdog),
every refusal, and the journal's lines after each path."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.audit import AuditLog
from engine.config import KobeConfig, PaperConfig, RouterConfig
from engine.exchange.base import Capabilities, MarketRules, Order, OrderStatus, OrderType, Side
from engine.exchange.paper import BookParams, PaperExchange, PaperMarket
from engine.exchange.prices import ManualPrices
from engine.journal import OrderJournal
from engine.money import floor_to_step
from engine.proposal import Proposal, Refused, Sizing, Source
from engine.risk import RiskEngine
from engine.router import Router, StaticWallets
from engine.watchdog import ExitPlan, WatchItem, WatchState

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def market(symbol: str, step: str, tick: str, min_notional: str, price: str) -> PaperMarket:
    base, quote = symbol.split("/")
    rules = MarketRules(
        symbol=symbol,
        base=base,
        quote=quote,
        tick_size=Decimal(tick),
        step_size=Decimal(step),
        min_qty=Decimal(step),
        min_notional=Decimal(min_notional),
    )
    return PaperMarket(
        rules, Decimal(price), Decimal("0.5"), BookParams(Decimal(10**6), Decimal(1))
    )


MARKETS = {
    "BTC/USDT": market("BTC/USDT", "0.00001", "0.01", "5", "95000"),
    "TST/USDT": market("TST/USDT", "0.001", "0.01", "5", "100"),
}


class Rig:
    def __init__(
        self,
        tmp: Path,
        *,
        exits: str = "auto",
        wallets: dict[str, Decimal] | None = None,
        caps: dict[str, Decimal] | None = None,
        balances: dict[str, Decimal] | None = None,
        exchange_cls: type[PaperExchange] = PaperExchange,
        slippage_bps: Decimal = Decimal(0),
        settings: RouterConfig | None = None,
    ) -> None:
        self.tmp = tmp
        self.clock = Clock()
        self.prices = ManualPrices({s: m.start_price for s, m in MARKETS.items()}, start=T0)
        cfg = PaperConfig(balances=balances or {"USDT": Decimal(1000)}, slippage_bps=slippage_bps)
        self.exchange = exchange_cls(
            cfg, tmp, clock=self.clock, prices=self.prices, markets=MARKETS
        )
        self.journal = OrderJournal(tmp)
        self.audit = AuditLog(tmp, self.clock)
        # the risk engine's first start writes its state: from then on, losing it trips
        RiskEngine(tmp, KobeConfig().risk, self.clock).close()
        self.router = Router(
            self.exchange,
            self.journal,
            data_dir=tmp,
            mode="paper",
            exchange_name="binance",
            risk=KobeConfig().risk,
            wallets=StaticWallets(wallets or {"cex_binance": Decimal(200)}, caps),
            clock=self.clock,
            maker_fee_pct=Decimal("0.1"),
            taker_fee_pct=Decimal("0.1"),
            exits_policy=exits,
            audit=self.audit,
            settings=settings,
        )

    def lines(self) -> list[dict[str, Any]]:
        path = self.tmp / "logs" / "orders.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines()]

    def events(self) -> list[tuple[str, str]]:
        return [(r["event"], r["client_id"]) for r in self.lines()]

    def move(self, symbol: str, price: str) -> None:
        self.clock.now += timedelta(seconds=1)
        self.prices.set(symbol, Decimal(price))
        for ev in self.exchange.advance(self.clock.now):
            self.router.on_order_update(ev.kind, ev.order, ev.reason)


def buy(**kw: Any) -> Proposal:
    base: dict[str, Any] = dict(
        symbol="BTC/USDT",
        side=Side.BUY,
        entry_type=OrderType.MARKET,
        sizing=Sizing.QUOTE,
        amount=Decimal(15),
        wallet="cex_binance",
        source=Source.CLI,
        stop_loss=Decimal(90000),
        take_profit=Decimal(100000),
        reason="test",
    )
    base.update(kw)
    return Proposal(**base)


def test_plan_sends_nothing_and_names_what_would_be_sent(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    plan = rig.router.plan(buy())
    assert plan.qty == Decimal("0.00015")  # 15 / 95000 = 0.000157.. rounded down to the step
    assert plan.notional == Decimal("14.25")
    assert plan.fee_estimate == Decimal("0.01425")
    assert plan.exits is ExitPlan.OCO
    assert plan.risk_amount is not None and plan.risk_amount > Decimal("0.75")
    text = "\n".join(plan.lines())
    assert "BUY 0.00015 BTC BTC/USDT market" in text and "native OCO" in text
    assert rig.exchange.fetch_open_orders() == []
    assert not (tmp_path / "logs" / "orders.jsonl").read_text()


def test_market_buy_with_native_oco(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    placed = rig.router.submit(buy())
    assert placed.entry.status is OrderStatus.FILLED
    assert [o.type for o in placed.exits] == [OrderType.LIMIT_MAKER, OrderType.STOP_LOSS_LIMIT]
    cid = placed.entry.client_id
    assert rig.events() == [
        ("intent", cid),
        ("ack", cid),
        ("fill", cid),
        ("intent", f"{cid}tp"),
        ("intent", f"{cid}sl"),
        ("ack", f"{cid}tp"),
        ("ack", f"{cid}sl"),
    ]
    open_ids = {o.client_id for o in rig.exchange.fetch_open_orders()}
    assert open_ids == {f"{cid}tp", f"{cid}sl"}
    # the take-profit fills: its sibling is cancelled, both journaled
    rig.move("BTC/USDT", "100500")
    tail = rig.events()[-2:]
    assert ("fill", f"{cid}tp") in tail and ("cancel", f"{cid}sl") in tail
    assert rig.exchange.fetch_open_orders() == []
    assert rig.router.watchdog.items() == []
    audit = rig.audit.tail(5)
    assert [(a["action"], a["client_id"]) for a in audit] == [
        ("order", cid),
        ("exit_order", f"{cid}oco"),
    ]


def test_intent_is_on_disk_before_the_order_is_sent(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    class Spy(PaperExchange):
        def create_order(self, *a: Any, **kw: Any) -> Order:
            path = tmp_path / "logs" / "orders.jsonl"
            seen.append([json.loads(x)["event"] for x in path.read_text().splitlines()])
            return super().create_order(*a, **kw)

    rig = Rig(tmp_path, exchange_cls=Spy)
    rig.router.submit(buy(stop_loss=None, take_profit=None))
    assert seen == [["intent"]]


@pytest.mark.parametrize(
    ("path", "expected"),
    [(["101", "106"], "take_profit"), (["99", "94"], "stop_loss"), (["101", "99", "102"], None)],
)
def test_local_watchdog(tmp_path: Path, path: list[str], expected: str | None) -> None:
    rig = Rig(tmp_path, exits="watchdog")
    placed = rig.router.submit(
        buy(symbol="TST/USDT", amount=Decimal(50), stop_loss=Decimal(95), take_profit=Decimal(105))
    )
    assert placed.plan.exits is ExitPlan.WATCHDOG
    assert placed.watch is not None and placed.watch.state is WatchState.WATCHING
    assert "only while `kobe run` or `kobe-tui` is running" in placed.notes[0]
    assert rig.exchange.fetch_open_orders() == []  # nothing rests on the venue
    held_before = rig.exchange.get_balance("TST")
    sent: list[Order] = []
    for price in path:
        rig.move("TST/USDT", price)
        sent += rig.router.poll()
    if expected is None:
        assert sent == [] and len(rig.router.watchdog.items()) == 1
        assert rig.exchange.get_balance("TST") == held_before
        return
    assert len(sent) == 1 and sent[0].side is Side.SELL and sent[0].status is OrderStatus.FILLED
    # what the entry left in hand: its fee was taken in TST (Binance: the asset received)
    assert placed.entry.fee_asset == "TST"
    assert sent[0].qty == placed.entry.filled - Decimal("0.001") == Decimal("0.498")
    assert rig.router.watchdog.items() == []  # the sibling leg is gone with it
    last = rig.lines()[-3:]
    assert [r["event"] for r in last] == ["intent", "ack", "fill"]
    assert expected.replace("_", "-") + " touched at" in last[0]["reason"]
    # a restart resumes nothing more: the exit was sent once
    again = Rig(tmp_path, exits="watchdog")
    assert again.router.watchdog.items() == []


def test_watchdog_state_survives_a_restart(tmp_path: Path) -> None:
    rig = Rig(tmp_path, exits="watchdog")
    rig.router.submit(
        buy(symbol="TST/USDT", amount=Decimal(50), stop_loss=Decimal(95), take_profit=Decimal(105))
    )
    rig.journal.close()
    again = Rig(tmp_path, exits="watchdog")
    items = again.router.watchdog.items()
    assert len(items) == 1 and items[0].state is WatchState.WATCHING
    again.move("TST/USDT", "94")
    assert len(again.router.poll()) == 1


def test_attached_tp_sl_where_the_venue_supports_it(tmp_path: Path) -> None:
    params_seen: list[dict[str, Any]] = []

    class Attaching(PaperExchange):
        def capabilities(self, symbol: str) -> Capabilities:
            return Capabilities(native_oco=False, attached_tp_sl=True)

        def create_order(self, *a: Any, **kw: Any) -> Order:
            params_seen.append(dict(a[5] if len(a) > 5 else kw.get("params") or {}))
            return super().create_order(*a, **kw)

    rig = Rig(tmp_path, exchange_cls=Attaching)
    placed = rig.router.submit(buy())
    assert placed.plan.exits is ExitPlan.ATTACHED
    assert params_seen[0]["take_profit"] == Decimal(100000)
    assert params_seen[0]["stop_loss"] == Decimal(90000)
    # this venue took the prices but shows no TP/SL for the entry: never assumed held, nor
    # assumed absent (it may list them late): the local watchdog guards the position, reads
    # them again each tick, and says so
    [item] = rig.router.watchdog.items()
    assert item.exits is ExitPlan.ATTACHED and item.state is WatchState.WATCHING
    assert any("EXITS NOT CONFIRMED YET" in n for n in placed.notes)


def test_attached_tp_sl_confirmed_on_the_venue_are_journaled_as_the_cover(
    tmp_path: Path,
) -> None:
    class Holding(PaperExchange):
        def capabilities(self, symbol: str) -> Capabilities:
            return Capabilities(native_oco=False, attached_tp_sl=True)

        def fetch_attached_exits(
            self, symbol: str, entry_id: str, cid: str, leg_ids: Any = None
        ) -> list[Order]:
            entry = self.fetch_order(entry_id, symbol)
            return [
                replace(entry, id=f"{entry_id}{leg}", client_id=f"{cid}{leg}", side=Side.SELL,
                        filled=Decimal(0), avg_price=None, status=OrderStatus.OPEN,
                        stop_price=price, fee=Decimal(0), fee_asset="", fills=())
                for leg, price in (("sl", Decimal(90000)), ("tp", Decimal(100000)))
            ]  # fmt: skip

    rig = Rig(tmp_path, exchange_cls=Holding)
    placed = rig.router.submit(buy())
    cid = placed.entry.client_id
    assert rig.router.watchdog.items() == []  # confirmed on the exchange
    assert [o.client_id for o in placed.exits] == [f"{cid}sl", f"{cid}tp"]
    state = rig.router.journal_state()
    assert state[f"{cid}tp"].event == "ack" and state[f"{cid}tp"].status == "open"
    assert rig.router._exits_live(cid)


def test_limit_entry_waits_then_places_its_oco(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    placed = rig.router.submit(
        buy(
            symbol="TST/USDT",
            entry_type=OrderType.LIMIT,
            price=Decimal(99),
            amount=Decimal(50),
            stop_loss=Decimal(95),
            take_profit=Decimal(105),
        )
    )
    assert placed.entry.status is OrderStatus.OPEN and placed.exits == ()
    assert placed.watch is not None and placed.watch.state is WatchState.PENDING_ENTRY
    rig.move("TST/USDT", "98.5")
    rig.router.poll()
    kinds = {o.client_id: o.type for o in rig.exchange.fetch_open_orders()}
    cid = placed.entry.client_id
    assert kinds == {f"{cid}tp": OrderType.LIMIT_MAKER, f"{cid}sl": OrderType.STOP_LOSS_LIMIT}


def test_sell_of_a_held_asset_and_no_short(tmp_path: Path) -> None:
    rig = Rig(tmp_path, balances={"USDT": Decimal(1000), "TST": Decimal(2)})
    placed = rig.router.submit(
        buy(
            symbol="TST/USDT", side=Side.SELL, amount=Decimal(100), stop_loss=None, take_profit=None
        )
    )
    assert placed.entry.side is Side.SELL and placed.entry.filled == Decimal("1.000")
    with pytest.raises(Refused, match="need 2 TST, you hold 1"):
        rig.router.plan(
            buy(
                symbol="TST/USDT",
                side=Side.SELL,
                amount=Decimal(200),
                stop_loss=None,
                take_profit=None,
            )
        )
    bare = Rig(tmp_path / "bare")
    with pytest.raises(Refused, match="short selling is refused on a spot market"):
        bare.router.plan(buy(side=Side.SELL, stop_loss=None, take_profit=None))


@pytest.mark.parametrize(
    ("proposal", "needle"),
    [
        (buy(amount=Decimal(50)), "insufficient balance: need 50 USDT, wallet cex_binance has 20"),
        (
            buy(symbol="TST/USDT", amount=Decimal("4.99"), stop_loss=None, take_profit=None),
            "order value 4.90 USDT is below the exchange minimum 5 USDT",
        ),
        (
            buy(amount=Decimal("0.5"), stop_loss=None, take_profit=None),
            "quantity rounds to zero at step 0.00001 BTC",
        ),
        (buy(wallet="nope"), "unknown wallet nope"),
    ],
)
def test_sizing_refusals(tmp_path: Path, proposal: Proposal, needle: str) -> None:
    rig = Rig(tmp_path, wallets={"cex_binance": Decimal(20)})
    with pytest.raises(Refused) as info:
        rig.router.plan(proposal)
    assert any(needle in r for r in info.value.reasons), info.value.reasons


def test_cap_and_exchange_balance_refusals(tmp_path: Path) -> None:
    rig = Rig(tmp_path, caps={"cex_binance": Decimal(10)})
    with pytest.raises(
        Refused,
        match=r"15 USDT would lift wallet cex_binance's exposure to 15\.00 USDT, over its cap 10",
    ):
        rig.router.plan(buy())
    poor = Rig(tmp_path / "p", balances={"USDT": Decimal(12)})
    with pytest.raises(Refused, match="the binance account has 12 free"):
        poor.router.plan(buy())


def test_risk_sizing_uses_the_stop_distance_and_rounds_down(tmp_path: Path) -> None:
    rig = Rig(tmp_path, wallets={"cex_binance": Decimal(1000)})
    plan = rig.router.plan(
        buy(
            symbol="TST/USDT",
            sizing=Sizing.RISK,
            amount=Decimal(1),
            stop_loss=Decimal(97),
            take_profit=Decimal(110),
        )
    )
    # risk 1% of 1000 = 10 USDT over a 3.00 stop distance = 3.333.. -> 3.333 at step 0.001
    assert plan.qty == Decimal("3.333")
    assert plan.entry_price == Decimal(100)


def test_limit_price_rounds_to_the_tick(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    plan = rig.router.plan(
        buy(
            symbol="TST/USDT",
            entry_type=OrderType.LIMIT,
            price=Decimal("99.4567"),
            amount=Decimal(20),
            stop_loss=None,
            take_profit=None,
        )
    )
    assert plan.entry_price == Decimal("99.45")  # a buy rounds down: never above the limit
    assert plan.proposal.price == plan.entry_price
    assert plan.qty * plan.entry_price <= Decimal(20)


@pytest.mark.parametrize(
    ("side", "price", "stop_loss", "take_profit", "expected"),
    [
        # a half tick: the buy rounds down, the sell up, never past the operator's price; a
        # buy's exits are sells (up), a sell's are buys (down)
        (Side.BUY, "61800.005", "60000.005", "63000.005", ("61800", "60000.01", "63000.01")),
        (Side.SELL, "61800.005", "63000.005", "60000.005", ("61800.01", "63000.00", "60000.00")),
        (Side.BUY, "61800.009", None, None, ("61800", None, None)),
        (Side.SELL, "61800.001", None, None, ("61800.01", None, None)),
        (Side.BUY, "61800.01", None, None, ("61800.01", None, None)),  # on the tick: kept
    ],
)
def test_prices_round_once_in_the_router_by_side(
    tmp_path: Path,
    side: Side,
    price: str,
    stop_loss: str | None,
    take_profit: str | None,
    expected: tuple[str, str | None, str | None],
) -> None:
    """Rounding happens here, from the market's tick, once: the venues receive exactly these
    numbers (and refuse any other). The exits are on the other side of the entry."""
    rig = Rig(tmp_path, balances={"USDT": Decimal(1000), "BTC": Decimal(1)})
    rig.move("BTC/USDT", "61800")
    plan = rig.router.plan(
        buy(
            symbol="BTC/USDT",
            side=side,
            entry_type=OrderType.LIMIT,
            price=Decimal(price),
            amount=Decimal(50),
            stop_loss=None if stop_loss is None else Decimal(stop_loss),
            take_profit=None if take_profit is None else Decimal(take_profit),
        )
    )
    p = plan.proposal
    got = (plan.entry_price, p.stop_loss, p.take_profit)
    assert got == tuple(None if x is None else Decimal(x) for x in expected)
    assert plan.qty == floor_to_step(Decimal(50) / plan.entry_price, Decimal("0.00001"))


def test_rejected_by_the_venue_is_journaled(tmp_path: Path) -> None:
    rig = Rig(tmp_path, balances={"USDT": Decimal(1000)})
    plan = rig.router.plan(buy(stop_loss=None, take_profit=None))
    rig.exchange._account.free["USDT"] = Decimal(1)  # the account changed between plan and send
    with pytest.raises(Refused, match="binance refused the order"):
        rig.router.execute(plan)
    assert [r["event"] for r in rig.lines()] == ["intent", "reject"]


def test_cancel_by_either_id_and_unknown_or_done_named(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    placed = rig.router.submit(
        buy(
            symbol="TST/USDT",
            entry_type=OrderType.LIMIT,
            price=Decimal(90),
            amount=Decimal(20),
            stop_loss=None,
            take_profit=None,
        )
    )
    done = rig.router.cancel(placed.entry.client_id, Source.CLI)
    assert done.status is OrderStatus.CANCELED
    assert rig.lines()[-1]["event"] == "cancel"
    from engine.exchange.base import OrderNotFound

    with pytest.raises(OrderNotFound, match="not open"):
        rig.router.cancel(placed.entry.id, Source.CLI)
    with pytest.raises(OrderNotFound, match="unknown"):
        rig.router.cancel("12345", Source.CLI)
    assert rig.audit.tail(1)[0]["action"] == "cancel"


def test_reconcile_settles_an_intent_never_sent(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.router._journal(
        "intent",
        "kobecrash1",
        None,
        "BTC/USDT",
        Side.BUY,
        OrderType.MARKET,
        Decimal("0.0001"),
        None,
        status="new",
        wallet="cex_binance",
        source="cli",
        reason="x",
    )
    rig.journal.close()
    again = Rig(tmp_path)
    report = again.router.reconcile()
    assert report.resolved == ["kobecrash1"]
    assert again.lines()[-1]["event"] == "reject"
    assert "never sent" in again.lines()[-1]["reason"]
    assert again.router.reconcile().resolved == []  # settled once


def test_crash_between_ack_and_bookkeeping_still_places_the_exits(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    plan = rig.router.plan(
        buy(symbol="TST/USDT", amount=Decimal(50), stop_loss=Decimal(95), take_profit=Decimal(105))
    )
    cid = "kobecrash7"
    order = rig.exchange.create_order(
        "TST/USDT", Side.BUY, OrderType.MARKET, plan.qty, None, {"client_id": cid}
    )
    rig.router._journal("intent", cid, None, "TST/USDT", Side.BUY, OrderType.MARKET, plan.qty, None,
                        status="new", wallet="cex_binance", source="cli", reason="x")  # fmt: skip
    rig.router._journal_order("ack", order, "cex_binance", "cli", "x")
    rig.router.watchdog.add(
        WatchItem(
            cid,
            "",
            "TST/USDT",
            Side.BUY,
            plan.qty,
            Decimal(105),
            Decimal(95),
            "cex_binance",
            "cli",
            ExitPlan.OCO,
            WatchState.PENDING_ENTRY,
        )
    )
    rig.journal.close()
    again = Rig(tmp_path)
    again.router.reconcile()
    legs = sorted(o.client_id for o in again.exchange.fetch_open_orders())
    assert legs == [f"{cid}sl", f"{cid}tp"]
    assert again.router.watchdog.items() == []


def test_crash_after_the_oco_was_sent_never_sends_a_second_one(tmp_path: Path) -> None:
    rig = Rig(tmp_path, balances={"USDT": Decimal(1000), "TST": Decimal(10)})
    placed = rig.router.submit(
        buy(symbol="TST/USDT", amount=Decimal(50), stop_loss=Decimal(95), take_profit=Decimal(105))
    )
    cid = placed.entry.client_id
    # the process died after the OCO was sent but before its watch item was dropped
    rig.router.watchdog.add(
        WatchItem(
            cid,
            placed.entry.id,
            "TST/USDT",
            Side.BUY,
            placed.entry.filled,
            Decimal(105),
            Decimal(95),
            "cex_binance",
            "cli",
            ExitPlan.OCO,
            WatchState.PENDING_ENTRY,
        )
    )
    rig.journal.close()
    again = Rig(tmp_path, balances={"USDT": Decimal(1000), "TST": Decimal(10)})
    again.router.reconcile()
    again.move("TST/USDT", "106")  # the take-profit fills
    again.move("TST/USDT", "100")
    again.router.poll()
    assert again.router.watchdog.items() == []
    assert again.exchange.fetch_open_orders() == []  # no second OCO selling the trader's own TST
    # the trader's 10 TST are untouched: only what the entry left (net of its TST fee) was sold
    assert again.exchange.get_balance("TST") == Decimal(10) + placed.entry.filled - (
        placed.entry.fee
    ) - again.router.net_qty("TST/USDT", placed.entry)
    assert again.exchange.get_balance("TST") < Decimal("10.001")


def test_execute_rechecks_the_kill_switch(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    plan = rig.router.plan(buy())
    (tmp_path / "execution_runtime.json").write_text(
        '{"state": "TRIPPED", "reason": "manual: now"}'
    )
    with pytest.raises(Refused, match="kill switch is TRIPPED: manual: now"):
        rig.router.execute(plan)
    assert not (tmp_path / "logs" / "orders.jsonl").read_text()  # nothing sent, nothing journaled
