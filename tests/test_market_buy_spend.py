"""A market buy never spends more than it may (README "A market buy never spends more than it
may"): it is sized for a fill up to ``router.market_slippage_bps`` above the ask (on paper, more
where the paper book needs more), so ``--quote X`` spends at most X and a buy capped at what the
wallet can fund (balance minus open, its cap, the account's free quote) stays within it. A fill
worse than that is alerted, naming the wallet and the overspend.

On the real paper venue (the router, and ``kobe trade``) and over the real ccxt against the
Binance simulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.book import PositionBook
from engine.config import RouterConfig
from engine.exchange.base import OrderType, Side
from engine.proposal import Proposal, Refused, Sizing, Source
from engine.router import Placement
from tests import test_router as router_tests
from tests.binance_sim import DEFAULT_SYMBOLS, BinanceSim
from tests.conftest import CliRunner
from tests.test_book import BNB_MARKET
from tests.test_ccxt_contract import sim_env

D = Decimal
BUY_BTC = ["trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market"]


class Rig(router_tests.Rig):
    """The router on the real paper exchange (5 bps of slippage, a book of about 1 000 000 USDT a
    level, 1 bp apart), its wallets' open amounts from the real position book, alerts kept."""

    def __init__(
        self,
        tmp: Path,
        *,
        wallet: str = "1000",
        cap: str | None = None,
        usdt: str = "100000",
        allowance: str = "20",
    ) -> None:
        super().__init__(
            tmp,
            wallets={"cex_binance": D(wallet)},
            caps=None if cap is None else {"cex_binance": D(cap)},
            balances={"USDT": D(usdt)},
            slippage_bps=D(5),
            settings=RouterConfig(market_slippage_bps=D(allowance)),
        )
        book = PositionBook(tmp, "paper")
        self.router.committed = book.committed
        self.router.listeners.append(lambda _event: book.catch_up())
        self.book = book
        self.alerts: list[tuple[str, str, str]] = []
        self.router.on_alert = lambda *alert: self.alerts.append(alert)


def buy(amount: str, sizing: Sizing = Sizing.QUOTE, **kw: Any) -> Proposal:
    return Proposal(
        symbol="BTC/USDT",
        side=Side.BUY,
        entry_type=OrderType.MARKET,
        sizing=sizing,
        amount=D(amount),
        wallet="cex_binance",
        source=Source.CLI,
        **kw,
    )


def spent(placed: Placement) -> Decimal:
    """The quote the entry's fill took (a buy's fee is taken in the base asset)."""
    e = placed.entry
    assert e.avg_price is not None and e.filled > 0
    return e.filled * e.avg_price


@pytest.mark.parametrize("allowance", ["20", "0"])
def test_a_quote_as_large_as_the_wallet_is_never_overspent(tmp_path: Path, allowance: str) -> None:
    """19.955 at an ask of 95000 was 0.00021 BTC, filled 5 bps worse: 19.959975 spent."""
    rig = Rig(tmp_path, wallet="19.955", allowance=allowance)
    placed = rig.router.submit(buy("19.955"))
    assert spent(placed) <= D("19.955")
    assert placed.plan.qty == D("0.00020")
    assert rig.book.committed("cex_binance") <= D("19.955")
    bps = "20" if allowance == "20" else "5"  # no less than the paper venue's own slippage
    assert f"sized for up to {bps} bps slippage: spends at most" in "\n".join(placed.plan.lines())
    assert rig.alerts == []


def test_a_large_order_is_sized_for_the_paper_book_it_walks(tmp_path: Path) -> None:
    """README: on paper a larger order that would walk further is sized for that instead."""
    rig = Rig(tmp_path, wallet="4000000", usdt="4000000", allowance="0")
    placed = rig.router.submit(buy("3000000"))
    assert placed.plan.slippage_bps is not None and placed.plan.slippage_bps > 5
    assert spent(placed) <= D(3000000)
    assert placed.entry.avg_price is not None
    worse = (placed.entry.avg_price / D(95000) - 1) * 10_000
    assert worse > 5  # it did walk the book: more than paper.slippage_bps
    assert worse <= placed.plan.slippage_bps


def test_a_risk_buy_capped_at_the_wallet_cap_stays_within_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path, wallet="1000", cap="19.955")
    placed = rig.router.submit(buy("2", Sizing.RISK, stop_loss=D(94000), take_profit=D(100000)))
    assert "size capped at 19.955 USDT (balance or cap)" in placed.plan.notes
    assert spent(placed) <= D("19.955")
    assert rig.book.committed("cex_binance") <= D("19.955")


def test_a_risk_buy_capped_at_the_accounts_free_quote_fills_within_it(tmp_path: Path) -> None:
    """The paper account holds 19.955 USDT: sized from the ask alone the fill needed more and
    the venue refused it."""
    rig = Rig(tmp_path, wallet="1000", usdt="19.955")
    placed = rig.router.submit(buy("2", Sizing.RISK, stop_loss=D(94000)))
    assert placed.entry.filled == placed.plan.qty == D("0.00020")
    assert spent(placed) <= D("19.955")


def test_not_one_step_fits_names_the_wallet_what_it_may_spend_and_the_allowance(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, wallet="20")
    with pytest.raises(Refused) as exc:
        rig.router.plan(buy("0.95"))  # one step at the ask, not with 20 bps on top
    assert exc.value.reasons == [
        "quantity rounds to zero at step 0.00001 BTC (computed 0.00000998): wallet cex_binance "
        "may spend 0.95 USDT on it, sized for up to 20 bps slippage above the ask 95000, and "
        "one step costs up to 0.9519 USDT"
    ]


def test_a_fill_worse_than_the_allowance_is_alerted_naming_the_wallet(tmp_path: Path) -> None:
    """The price moved between the plan shown and the send: the fill is 5 % above the ask the
    plan was sized at, and the wallet has more open than its balance. Nothing is negative (the
    wallet has nothing left to spend), and the operator is told."""
    rig = Rig(tmp_path, wallet="19.955")
    plan = rig.router.plan(buy("19.955"))
    rig.move("BTC/USDT", "100000")
    placed = rig.router.execute(plan)
    over = rig.book.committed("cex_binance") - D("19.955")
    assert over > 0
    [(severity, code, message)] = rig.alerts
    assert (severity, code) == ("warning", "wallet_overspent")
    assert message.startswith(f"wallet cex_binance overspent by {over.normalize():f} USDT: ")
    assert "bps above the ask 95000 (sized for up to 20 bps)" in message
    assert message.endswith("against its balance of 19.955 USDT")
    assert message in placed.notes  # kobe trade prints it
    with pytest.raises(Refused, match=r"cex_binance can spend 0\.00 USDT"):
        rig.router.plan(buy("5"))


# -- kobe trade, paper --------------------------------------------------------------------------


def fills(workdir: Path) -> list[dict[str, Any]]:
    path = workdir / "data" / "logs" / "orders.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    return [x for x in lines if x["event"] == "fill"]


def quote_spent(fill: dict[str, Any]) -> Decimal:
    return D(fill["filled"]) * D(fill["avg_price"])


def test_kobe_trade_quote_spends_at_most_the_quote(cli: CliRunner, workdir: Path) -> None:
    r = cli(*BUY_BTC, "--quote", "19.955", "--yes")
    assert r.code == 0, r.err
    [fill] = fills(workdir)
    assert quote_spent(fill) <= D("19.955")
    assert "BUY 0.00020 BTC BTC/USDT market" in r.out
    assert "  sized for up to 20 bps slippage: spends at most 19.038 USDT" in r.out


def test_kobe_trade_json_says_what_slippage_the_plan_was_sized_for(cli: CliRunner) -> None:
    r = cli(*BUY_BTC, "--quote", "6", "--yes", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["plan"]["slippage_bps"] == "20"
    r = cli(*BUY_BTC[:-1], "limit", "--price", "90000", "--quote", "6", "--yes", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["plan"]["slippage_bps"] is None  # a limit buy pays its limit


def test_kobe_trade_spends_no_more_than_a_wallet_with_an_open_order_can(
    cli: CliRunner, workdir: Path
) -> None:
    """An open limit buy holds 5.747 of cex_binance's 20: it can spend 14.253, and a market buy
    of all of it (0.00015 BTC from the ask alone, 14.257125 at the fill) stays within it."""
    limit = ["trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "limit"]
    r = cli(*limit, "--price", "82100", "--quote", "5.747", "--yes")
    assert r.code == 0, r.err
    r = cli(*BUY_BTC, "--quote", "14.253", "--yes")
    assert r.code == 0, r.err
    [fill] = fills(workdir)
    assert quote_spent(fill) <= D("14.253")
    positions = json.loads(cli("positions", "--json").out)
    opened = sum(D(p["cost"]) for p in positions) + D("5.747")
    assert opened <= 20


def test_kobe_trade_refusal_when_not_one_step_fits(cli: CliRunner) -> None:
    r = cli(*BUY_BTC, "--quote", "0.5", "--yes")
    assert r.code == 1
    assert (
        "quantity rounds to zero at step 0.00001 BTC (computed 0.00000525): wallet cex_binance may "
        "spend 0.5 USDT on it, sized for up to 20 bps slippage above the ask 95000, and one step "
        "costs up to 0.9519 USDT"
    ) in r.err


# -- kobe trade over the real ccxt, against the Binance simulator -----------------------------


@pytest.fixture
def sim() -> Iterator[BinanceSim]:
    with BinanceSim() as s:
        yield s


def sim_spent(sim: BinanceSim) -> Decimal:
    [entry] = [o for o in sim.orders.values() if o.list_id == -1]
    return entry.quote


def test_binance_market_buy_is_sized_for_the_configured_allowance(
    cli: CliRunner, sim: BinanceSim
) -> None:
    """The book's best ask holds one step less than the order: the rest fills 100 above it
    (about 5 bps on average), within the 20 bps the router sizes for."""
    sim.set_book("BTCUSDT", [(D(94990), D(1))], [(D(95000), D("0.0001")), (D(95100), D(1))])
    r = cli(*BUY_BTC, "--quote", "19.955", "--yes", env=sim_env(sim))
    assert r.code == 0, r.err
    assert sim_spent(sim) <= D("19.955")
    assert "sized for up to 20 bps slippage: spends at most" in r.out


def test_the_most_a_buy_spends_reads_as_money(cli: CliRunner, sim: BinanceSim) -> None:
    """At a testnet ask of 95,000.01 the plan read ``spends at most 19.038002004 USDT``: the
    bound, rounded up (so it stays a bound) to the plan's fee precision."""
    r = cli(*BUY_BTC, "--quote", "19.955", "--yes", env=sim_env(sim))
    assert r.code == 0, r.err
    assert "  sized for up to 20 bps slippage: spends at most 19.0381 USDT" in r.out, r.out
    assert sim_spent(sim) <= D("19.0381")


def test_binance_fill_beyond_the_allowance_is_alerted(
    cli: CliRunner, sim: BinanceSim, workdir: Path
) -> None:
    (workdir / "kobe.toml").write_text("[router]\nmarket_slippage_bps = 5\n")
    sim.set_book("BTCUSDT", [(D(94990), D(1))], [(D(95000), D("0.0001")), (D(100000), D(1))])
    r = cli(*BUY_BTC, "--quote", "20", "--yes", env=sim_env(sim))
    assert r.code == 0, r.err
    assert "sized for up to 5 bps slippage: spends at most" in r.out
    assert sim_spent(sim) == D("20.5")  # 0.0001 at 95000, 0.00011 at 100000
    # README: the note (and the alert) as the README shows it; what is open counts the fee
    assert ("note: wallet cex_binance overspent by 0.4999795 USDT: BTC/USDT entry kobe") in r.out
    assert (
        "filled at 97619.04761905, 275.7 bps above the ask 95000 (sized for up to 5 bps); it "
        "has 20.4999795 USDT open against its balance of 20 USDT\n"
    ) in r.out


# -- a buy's fill learned later: checked where it is booked, once ------------------------------


def test_a_limit_buy_whose_fill_comes_later_is_checked_once(tmp_path: Path) -> None:
    """Paper: a limit buy rests; the wallet's balance falls meanwhile (a loss elsewhere); the
    fill, learned from the venue a minute later, leaves the wallet over its balance: one alert,
    however often the router syncs and polls after it."""
    rig = Rig(tmp_path, wallet="1000")
    placed = rig.router.submit(
        Proposal(
            symbol="BTC/USDT", side=Side.BUY, entry_type=OrderType.LIMIT, sizing=Sizing.QUOTE,
            amount=D(19), price=D(94000), wallet="cex_binance", source=Source.CLI,
        )
    )  # fmt: skip
    cid = placed.entry.client_id
    assert placed.entry.status.is_open and rig.alerts == []
    rig.router.wallets = router_tests.StaticWallets({"cex_binance": D(10)})
    rig.move("BTC/USDT", "94000")  # the market comes down to the limit: it fills
    open_ = rig.book.committed("cex_binance")
    [(severity, code, message)] = rig.alerts
    assert (severity, code) == ("warning", "wallet_overspent")
    assert message == (
        f"wallet cex_binance overspent by {(open_ - 10).normalize():f} USDT: BTC/USDT entry {cid} "
        f"filled at 94000; it has {open_.normalize():f} USDT open against its balance of 10 USDT"
    )
    rig.router.sync()
    rig.router.poll()
    rig.move("BTC/USDT", "94100")
    assert len(rig.alerts) == 1


@pytest.mark.parametrize("first", ["run", "orders"])
def test_binance_fill_learned_at_the_next_start_is_alerted_once(
    cli: CliRunner, sim: BinanceSim, workdir: Path, caplog: pytest.LogCaptureFixture, first: str
) -> None:
    """The market buy's answer is lost and every look-up fails: ``kobe trade`` ends with its
    outcome unknown. The next start (``kobe run``, or ``kobe orders``, which only reads the
    venue) finds it filled far above the ask and says so, once: never again after it."""
    (workdir / "kobe.toml").write_text(
        "[exchange]\ntimeout_ms = 400\n[router]\nmarket_slippage_bps = 5\n"
    )
    sim.set_book("BTCUSDT", [(D(94990), D(1))], [(D(95000), D("0.0001")), (D(100000), D(1))])
    sim.inject("late", delay=0.6, method="POST", path="/api/v3/order")
    sim.inject(status=503, body="Service Unavailable", method="GET", path="/api/v3/order",
               times=40, query="origClientOrderId")  # fmt: skip
    r = cli(*BUY_BTC, "--quote", "20", "--yes", env=sim_env(sim))
    assert r.code != 0 and "outcome unknown" in r.err, r.err
    sim.faults.clear()
    run = ["run", "--headless", "--duration", "0.8", "--tick", "0.4"]
    caplog.clear()
    r = cli(*(run if first == "run" else ["orders"]), env=sim_env(sim))
    assert r.code == 0, r.err
    lines = r.out.splitlines() if first == "run" else caplog.messages  # orders: a log line
    said = [line for line in lines if "overspent" in line]
    assert len(said) == 1, said
    assert "wallet cex_binance overspent by 0.4999795 USDT: BTC/USDT entry kobe" in said[0]
    assert said[0].endswith(
        "filled at 97619.04761905; it has 20.4999795 USDT open against its balance of 20 USDT"
    )
    caplog.clear()
    r = cli(*run, env=sim_env(sim))
    assert r.code == 0, r.err
    assert [m for m in r.out.splitlines() + caplog.messages if "overspent" in m] == []


def test_a_bnb_fee_is_no_overspend_of_a_wallet_spent_to_the_last_cent(
    cli: CliRunner, workdir: Path
) -> None:
    """The fee is paid in BNB, not from the wallet's quote: 20 USDT spent of 20 is not an
    overspend of the fee's 0.02 USDT."""
    (workdir / "kobe.toml").write_text("[router]\nmarket_slippage_bps = 0\n")
    balances = {"USDT": D(10_000), "BNB": D(1)}
    symbols = (*DEFAULT_SYMBOLS, BNB_MARKET)
    with BinanceSim(balances=balances, symbols=symbols, commission_asset="BNB") as server:
        server.set_price("BTCUSDT", D(100000))
        server.set_book("BTCUSDT", [(D(99990), D(1))], [(D(100000), D(1))])
        r = cli(*BUY_BTC, "--quote", "20", "--yes", env=sim_env(server))
        assert r.code == 0, r.err
        assert sim_spent(server) == D(20)
        [fill] = fills(workdir)
        assert fill["fee_asset"] == "BNB" and D(fill["fee"]) > 0
        assert "overspent" not in r.out + r.err
