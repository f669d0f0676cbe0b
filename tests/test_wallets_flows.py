"""The flows engine: each rule's trigger and non-trigger, idempotence, nothing below zero, alerts."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.config import KobeConfig
from engine.wallets.flows import FEES_PAID, MARKET, Ledger, Movement, TradeRefused
from engine.wallets.runtime import WalletManager
from tests.test_wallets_support import T0, TIGHT, Clock, cfg_from, manager

D = Decimal


def journal(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "wallet_flows.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def rules_moved(data_dir: Path) -> list[tuple[str, str, str, str]]:
    return [(j["rule"], j["from"], j["to"], j["amount"]) for j in journal(data_dir)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def m(tmp_path: Path, clock: Clock) -> WalletManager:
    return manager(tmp_path, clock)


def total(m: WalletManager) -> Decimal:
    return sum(m.balances().values(), D(0))


# -- trades ------------------------------------------------------------------------------------


def test_a_winning_trade_credits_the_trading_wallet_and_fees_come_from_the_fees_buffer(
    m: WalletManager, tmp_path: Path
) -> None:
    assert m.on_trade_closed("sniper_sol", D("2.50"), D("0.30"), trade_id="T1") is True
    b = m.balances()
    assert b["sniper_sol"] == D("32.50")
    assert b["fees_sol"] == D("9.70")
    assert total(m) == D(150) + D("2.50") - D("0.30")
    assert rules_moved(tmp_path) == [
        ("trade_pnl", MARKET, "sniper_sol", "2.50"),
        ("trade_fees", "fees_sol", FEES_PAID, "0.30"),
    ]
    lines = journal(tmp_path)
    assert [j["seq"] for j in lines] == [1, 2]
    assert {j["op"] for j in lines} == {"trade:T1"}
    assert all(j["time"] == "2026-01-01T00:00:00Z" and j["reason"] for j in lines)
    snap = m.snapshot()
    assert snap.wallet("sniper_sol").pnl_day == D("2.50")
    assert snap.wallet("fees_sol").pnl_day == D("-0.30")
    assert snap.pnl_day == D("2.20")


def test_a_losing_trade_debits_the_trading_wallet(m: WalletManager, tmp_path: Path) -> None:
    m.on_trade_closed("cex_binance", D("-4"), D(0), trade_id="L1")
    assert m.balances()["cex_binance"] == D(16)
    assert rules_moved(tmp_path) == [("trade_pnl", "cex_binance", MARKET, "4")]


def test_the_same_trade_twice_moves_nothing_twice(m: WalletManager, tmp_path: Path) -> None:
    assert m.on_trade_closed("copy_sol", D(3), D("0.1"), trade_id="T9")
    before = m.balances()
    assert m.on_trade_closed("copy_sol", D(3), D("0.1"), trade_id="T9") is False
    assert m.balances() == before
    assert len(journal(tmp_path)) == 2


def test_fees_the_buffer_cannot_cover_are_paid_by_the_trading_wallet(tmp_path: Path) -> None:
    clock = Clock()
    m = manager(tmp_path, clock)
    m.on_trade_closed("sniper_sol", D(0), D(12), trade_id="F1")
    b = m.balances()
    assert b["fees_sol"] == 0
    assert b["sniper_sol"] == D(28)
    assert rules_moved(tmp_path)[-1] == ("trade_fees", "sniper_sol", FEES_PAID, "2")


@pytest.mark.parametrize(
    ("wallet", "pnl", "fees", "needle"),
    [
        ("vault", D(1), D(0), "wallet 'vault' may not trade"),
        ("nowhere", D(1), D(0), "wallet 'nowhere' may not trade"),
        ("cex_okx", D(1), D(-1), "fees_usd must not be negative"),
    ],
)
def test_bad_input_is_refused_moves_nothing_and_can_come_again_corrected(
    m: WalletManager, tmp_path: Path, wallet: str, pnl: Decimal, fees: Decimal, needle: str
) -> None:
    before = m.balances()
    with pytest.raises(TradeRefused, match=re.escape(needle)):
        m.on_trade_closed(wallet, pnl, fees, trade_id="X")
    assert m.balances() == before
    assert journal(tmp_path) == []
    assert m.on_trade_closed("cex_okx", D(1), D(0), trade_id="X")


@pytest.mark.parametrize(
    ("pnl", "fees", "needle"),
    [
        (D("-10.01"), D(0), "trade X: loss 10.01 USD exceeds wallet cex_okx balance 10 USD"),
        (D(-5), D(16), "trade X: fees 16 USD exceed what fees_sol (10) and cex_okx (5) hold"),
    ],
)
def test_a_trade_that_would_go_below_zero_is_refused_journaled_and_stays_refused(
    m: WalletManager, tmp_path: Path, pnl: Decimal, fees: Decimal, needle: str
) -> None:
    before = m.balances()
    with pytest.raises(TradeRefused, match=re.escape(needle)):
        m.on_trade_closed("cex_okx", pnl, fees, trade_id="X")
    assert m.balances() == before
    [line] = journal(tmp_path)
    assert (line["rule"], line["from"], line["amount"], line["reason"]) == (
        "trade_refused",
        "cex_okx",
        "0",
        needle,
    )
    m.on_trade_closed("cex_okx", D(50), D(0), trade_id="Y")
    # the same trade again, now that the wallet could pay: still the refused trade, not booked
    assert m.on_trade_closed("cex_okx", pnl, fees, trade_id="X") is False
    assert m.balances()["cex_okx"] == D(60)


def test_a_float_is_not_money(m: WalletManager) -> None:
    with pytest.raises(TradeRefused, match="finite Decimal"):
        m.on_trade_closed("cex_okx", 1.5, D(0), trade_id="F")  # type: ignore[arg-type]


# -- fees_sweep --------------------------------------------------------------------------------


def test_fees_sweep_tops_the_buffer_up_to_target_when_below_min(
    m: WalletManager, clock: Clock, tmp_path: Path
) -> None:
    m.on_trade_closed("sniper_sol", D(1), D("6.5"), trade_id="T1")  # fees_sol 10 -> 3.5
    moves = m.run_periodic_tasks(clock.step(minutes=5))
    assert [(x.rule, x.source, x.destination, x.amount) for x in moves] == [
        ("fees_sweep", "buffer", "fees_sol", D("6.5"))
    ]
    assert m.balances()["fees_sol"] == D(10)
    assert m.balances()["buffer"] == D("3.5")
    line = journal(tmp_path)[-1]
    assert (line["rule"], line["from"], line["to"], line["amount"]) == (
        "fees_sweep",
        "buffer",
        "fees_sol",
        "6.5",
    )
    assert "below min 5" in line["reason"]


def test_fees_sweep_does_nothing_while_the_buffer_is_between_min_and_max(
    m: WalletManager, clock: Clock
) -> None:
    m.on_trade_closed("sniper_sol", D(1), D("4.9"), trade_id="T1")  # fees_sol 5.1 >= min 5
    assert m.run_periodic_tasks(clock.step(minutes=5)) == ()
    assert m.balances()["fees_sol"] == D("5.1")


def test_fees_sweep_sends_the_excess_above_max_to_its_destination(tmp_path: Path) -> None:
    cfg = cfg_from(
        "[finance]\nwallets = [\n"
        '{ id = "sniper_sol", chain = "solana", role = "trading", allocation_usd = 30 },\n'
        '{ id = "copy_sol", chain = "solana", role = "trading", allocation_usd = 30 },\n'
        '{ id = "gas", chain = "solana", role = "fees", allocation_usd = 22 },\n'
        '{ id = "pool", chain = "offchain", role = "buffer", allocation_usd = 8 },\n'
        '{ id = "gains", chain = "offchain", role = "profits", allocation_usd = 30 },\n'
        '{ id = "safe", chain = "offchain", role = "vault", allocation_usd = 30 },\n]\n'
        "[finance.risk_wallets]\nsniper_sol = { max_usd = 100 }\ncopy_sol = { max_usd = 100 }\n"
        '[finance.fees_policy]\nwallet = "gas"\n'
        "[finance.policies]\nmax_equity_at_risk_pct = 80\nrole_max_pct = {}\n"
        '[wallet_flows.fees_sweep]\nsource = "pool"\ndestination = "pool"\n'
        "[wallet_flows.profits_sweep]\n"
        'source = ["sniper_sol", "copy_sol"]\ndestination = "gains"\nvault = "safe"\n'
        "[wallet_flows.compounding]\n"
        'source = "gains"\ndestination = ["sniper_sol", "copy_sol"]\nthreshold_usd = 100\n'
    )
    m = manager(tmp_path, Clock(), cfg)
    moves = m.run_periodic_tasks(T0)
    assert [(x.rule, x.source, x.destination, x.amount) for x in moves] == [
        ("fees_sweep", "gas", "pool", D(7))
    ]
    assert m.balances()["gas"] == D(15)


def test_fees_sweep_never_takes_the_source_below_zero(m: WalletManager, clock: Clock) -> None:
    m.on_trade_closed("sniper_sol", D(0), D(9), trade_id="A")  # fees_sol 1
    m.run_periodic_tasks(clock.step(minutes=5))  # buffer 10 -> 1, fees_sol 10
    m.on_trade_closed("sniper_sol", D(0), D(8), trade_id="B")  # fees_sol 2
    moves = m.run_periodic_tasks(clock.step(minutes=5))
    assert [(x.source, x.amount) for x in moves] == [("buffer", D(1))]
    assert "buffer holds 1.00" in moves[0].reason
    b = m.balances()
    assert (b["buffer"], b["fees_sol"]) == (D(0), D(3))
    assert "fees_buffer_low" in {a.code for a in m.alerts()}


def test_a_period_rule_runs_once_per_period_a_tick_rule_every_tick(tmp_path: Path) -> None:
    clock = Clock()
    m = manager(tmp_path / "p", clock)
    m.on_trade_closed("sniper_sol", D(0), D(6), trade_id="A")  # fees_sol 4
    assert len(m.run_periodic_tasks(clock.step(minutes=1))) == 1  # first tick of its period
    m.on_trade_closed("sniper_sol", D(0), D(6), trade_id="B")
    assert m.run_periodic_tasks(clock.step(minutes=1)) == ()  # same 5-minute period
    assert len(m.run_periodic_tasks(clock.step(minutes=3))) == 1  # next period

    def fees_moves(moves: tuple[Movement, ...]) -> int:
        return len([x for x in moves if x.rule == "fees_sweep"])

    t = manager(tmp_path / "t", clock := Clock(), cfg_from(TIGHT))  # fees_sweep: trigger tick
    t.on_trade_closed("sniper_sol", D(0), D(6), trade_id="A")
    assert fees_moves(t.run_periodic_tasks(clock.step(seconds=1))) == 1
    t.on_trade_closed("sniper_sol", D(0), D(6), trade_id="B")
    assert fees_moves(t.run_periodic_tasks(clock.step(seconds=1))) == 1


def test_the_same_tick_twice_or_an_older_tick_moves_nothing(m: WalletManager, clock: Clock) -> None:
    m.on_trade_closed("sniper_sol", D(0), D(6), trade_id="A")
    now = clock.step(minutes=7)
    assert m.run_periodic_tasks(now)
    m.on_trade_closed("sniper_sol", D(0), D(6), trade_id="B")
    assert m.run_periodic_tasks(now) == ()
    assert m.run_periodic_tasks(now - timedelta(minutes=6)) == ()


def test_wallet_flows_disabled_moves_nothing_but_trades_still_count(tmp_path: Path) -> None:
    m = manager(tmp_path, clock := Clock(), cfg_from("[wallet_flows]\nenabled = false\n"))
    m.on_trade_closed("sniper_sol", D(20), D(8), trade_id="A")
    assert m.run_periodic_tasks(clock.step(days=2)) == ()
    assert m.balances()["sniper_sol"] == D(50)


# -- profits_sweep -----------------------------------------------------------------------------


def test_profits_sweep_takes_a_share_of_profit_above_the_threshold(
    m: WalletManager, clock: Clock
) -> None:
    m.run_periodic_tasks(clock.step(minutes=1))  # the day's compounding: nothing over 10
    m.on_trade_closed("copy_sol", D(8), D(0), trade_id="W")
    m.on_trade_closed("cex_okx", D(-8), D(0), trade_id="L")
    moves = m.run_periodic_tasks(clock.step(hours=1))
    assert [(x.rule, x.source, x.destination, x.amount) for x in moves] == [
        ("profits_sweep", "copy_sol", "vault", D(2)),
        ("profits_sweep", "copy_sol", "profits", D(2)),
    ]
    b = m.balances()
    assert (b["copy_sol"], b["vault"], b["profits"]) == (D(34), D(12), D(12))
    assert b["cex_okx"] == D(2)  # a loss is not swept
    # swept: the next period has nothing new to sweep
    assert m.run_periodic_tasks(clock.step(hours=1)) == ()


def test_profits_sweep_leaves_profit_below_the_threshold(m: WalletManager, clock: Clock) -> None:
    m.on_trade_closed("copy_sol", D("4.99"), D(0), trade_id="W")
    assert m.run_periodic_tasks(clock.step(hours=1)) == ()
    assert m.balances()["copy_sol"] == D("34.99")


def test_profits_sweep_makes_a_wallet_earn_its_losses_back_first(
    m: WalletManager, clock: Clock
) -> None:
    m.on_trade_closed("cex_binance", D(-6), D(0), trade_id="L")
    m.on_trade_closed("cex_binance", D(8), D(0), trade_id="W")  # net +2 since the last sweep
    assert m.run_periodic_tasks(clock.step(hours=1)) == ()
    m.on_trade_closed("cex_binance", D(4), D(0), trade_id="W2")  # net +6
    moves = m.run_periodic_tasks(clock.step(hours=1))
    assert sum((x.amount for x in moves), D(0)) == D(3)


# -- compounding -------------------------------------------------------------------------------


def test_compounding_puts_a_share_of_the_excess_back_by_allocation(
    m: WalletManager, clock: Clock
) -> None:
    for w in ("sniper_sol", "copy_sol", "cex_binance", "cex_bybit", "cex_okx"):
        m.on_trade_closed(w, D(8), D(0), trade_id=f"W-{w}")
    moves = m.run_periodic_tasks(clock.step(hours=1))
    swept = [x for x in moves if x.rule == "profits_sweep"]
    assert sum((x.amount for x in swept if x.destination == "profits"), D(0)) == D(10)
    comp = {x.destination: x.amount for x in moves if x.rule == "compounding"}
    # profits 20: 50 % of (20 - 10) = 5, split 30:30:20:10:10
    assert comp == {
        "sniper_sol": D("1.5"),
        "copy_sol": D("1.5"),
        "cex_binance": D(1),
        "cex_bybit": D("0.5"),
        "cex_okx": D("0.5"),
    }
    assert all(x.source == "profits" for x in moves if x.rule == "compounding")
    assert m.balances()["profits"] == D(15)
    # once a day: later ticks the same day leave the profits alone
    assert [x for x in m.run_periodic_tasks(clock.step(hours=5)) if x.rule == "compounding"] == []


def test_compounding_stays_within_caps_and_leaves_the_rest_in_its_source(
    tmp_path: Path,
) -> None:
    tight = cfg_from(TIGHT)
    m = manager(tmp_path, clock := Clock(), tight)
    m.on_trade_closed("copy_sol", D(30), D(0), trade_id="C")  # copy 60: above its cap of 33
    moves = m.run_periodic_tasks(clock.step(minutes=30))
    profits_in = sum((x.amount for x in moves if x.destination == "profits"), D(0))
    comp = {x.destination: x for x in moves if x.rule == "compounding"}
    b = m.balances()
    eq = sum(b.values(), D(0))
    assert "copy_sol" not in comp  # over its cap: no room
    assert b["sniper_sol"] == tight.finance.cap_usd("sniper_sol", eq) == D(33)
    assert "sniper_sol has room for 3.00 under its caps" in comp["sniper_sol"].reason
    for w in comp:
        cap = tight.finance.cap_usd(w, eq)
        assert cap is not None and b[w] <= cap
    at_risk = sum((b[w] for w in tight.finance.risk_wallets if w != "copy_sol"), D(0))
    assert at_risk <= eq * D(70) / 100
    compounded = sum((x.amount for x in comp.values()), D(0))
    assert b["profits"] == D(10) + profits_in - compounded > D(2)


def test_compounding_does_nothing_at_or_below_its_threshold(m: WalletManager, clock: Clock) -> None:
    assert m.balances()["profits"] == D(10)  # LIVE_150 starts exactly at the threshold
    assert m.run_periodic_tasks(clock.step(hours=1)) == ()
    assert m.run_periodic_tasks(clock.step(days=1)) == ()
    m.on_trade_closed("copy_sol", D(5), D(0), trade_id="W")  # swept: 1.25 to profits
    moves = m.run_periodic_tasks(clock.step(days=1))
    assert sum((x.amount for x in moves if x.rule == "compounding"), D(0)) == D("0.60")


# -- alerts and the day ------------------------------------------------------------------------


def codes(m: WalletManager) -> set[str]:
    return {a.code for a in m.alerts()}


def test_no_alert_on_the_shipped_allocation(m: WalletManager) -> None:
    assert m.alerts() == []


def test_alert_fees_buffer_below_min(m: WalletManager) -> None:
    m.on_trade_closed("sniper_sol", D(0), D("4.99"), trade_id="A")
    assert "fees_buffer_low" not in codes(m)
    m.on_trade_closed("sniper_sol", D(0), D("0.02"), trade_id="B")
    alert = next(a for a in m.alerts() if a.code == "fees_buffer_low")
    assert alert.severity == "warning"
    assert "fees_sol holds 4.99 USD, below its min (5 USD)" in alert.message


def test_alert_fees_over_their_cap_of_equity(m: WalletManager) -> None:
    m.on_trade_closed("sniper_sol", D(0), D("2.9"), trade_id="A")
    assert "fees_over_cap" not in codes(m)  # 2.9 < 2 % of 147.1
    m.on_trade_closed("sniper_sol", D(0), D("0.2"), trade_id="B")
    alert = next(a for a in m.alerts() if a.code == "fees_over_cap")
    assert "fees paid today 3.10 USD" in alert.message and "cap of 2 %" in alert.message


def test_alert_a_risk_wallet_over_its_cap(m: WalletManager) -> None:
    m.on_trade_closed("cex_bybit", D(5), D(0), trade_id="A")  # 15 = its max_usd
    assert "risk_wallet_over_cap" not in codes(m)
    m.on_trade_closed("cex_bybit", D(1), D(0), trade_id="B")
    alert = next(a for a in m.alerts() if a.code == "risk_wallet_over_cap")
    assert "cex_bybit holds 16.00 USD, above its cap (15.00 USD)" in alert.message


def test_the_readme_lists_every_finance_alert_code() -> None:
    from engine.wallets import snapshot
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    listed = readme.split("Finance alerts (severity, code, message):", 1)[1].split("\n\n", 1)[0]
    known = {v for k, v in vars(snapshot).items() if k.isupper() and isinstance(v, str)}
    listed = re.sub(r"\([^()]*\)", "", listed)  # the codes, less what each one means
    assert set(re.findall(r"`([a-z_]+)`", listed)) == known


def test_alert_the_risk_wallets_together_over_their_share_of_equity(m: WalletManager) -> None:
    """README, "Wallets": `equity_at_risk_over_cap` (the risk wallets together above
    `policies.max_equity_at_risk_pct` of equity)."""
    for i, (wallet, win) in enumerate(
        [
            ("sniper_sol", 15),
            ("copy_sol", 15),
            ("cex_binance", 10),
            ("cex_bybit", 5),
            ("cex_okx", 5),
        ]
    ):
        m.on_trade_closed(wallet, D(win), D(0), trade_id=f"T{i}")  # each at its own cap
    assert "equity_at_risk_over_cap" not in codes(m)  # 150 of 200: exactly 75 %
    m.on_trade_closed("sniper_sol", D(1), D(0), trade_id="X")
    alert = next(a for a in m.alerts() if a.code == "equity_at_risk_over_cap")
    assert alert.severity == "warning"
    assert "risk wallets hold 151.00 USD" in alert.message
    assert "above max_equity_at_risk_pct (75 %)" in alert.message


def test_alert_equity_below_the_minimum_operational_capital(m: WalletManager) -> None:
    m.on_trade_closed("sniper_sol", D(-30), D(0), trade_id="A")
    m.on_trade_closed("copy_sol", D(-20), D(0), trade_id="B")
    assert "equity_below_min" not in codes(m)  # exactly 100
    m.on_trade_closed("copy_sol", D("-0.01"), D(0), trade_id="C")
    first = m.alerts()[0]
    assert (first.severity, first.code) == ("critical", "equity_below_min")
    assert "99.99 USD is below the minimum operational capital (100 USD)" in first.message


def test_pnl_day_starts_again_each_utc_day(m: WalletManager, clock: Clock) -> None:
    clock.now = T0 + timedelta(hours=23)
    m.on_trade_closed("sniper_sol", D(2), D("0.5"), trade_id="A")
    assert m.snapshot().pnl_day == D("1.5")
    clock.step(hours=2)
    assert m.snapshot().pnl_day == 0  # a new day, before anything happened in it
    m.on_trade_closed("sniper_sol", D(1), D(0), trade_id="B")
    snap = m.snapshot()
    assert snap.pnl_day == D(1)
    assert snap.wallet("fees_sol").pnl_day == 0


def test_equity_moves_only_by_pnl_and_fees_never_by_flows(m: WalletManager, clock: Clock) -> None:
    m.on_trade_closed("copy_sol", D(40), D("0.5"), trade_id="W")
    before = total(m)
    moved = m.run_periodic_tasks(clock.step(days=1))
    assert moved  # sweeps and compounding ran
    assert total(m) == before == D(150) + D(40) - D("0.5")


def test_ledger_is_pure_and_planning_changes_nothing() -> None:
    cfg = KobeConfig()
    led = Ledger(cfg.finance, cfg.wallet_flows)
    before = dict(led.balances)
    op = led.plan_trade("T", "sniper_sol", D(5), D(1), T0)
    assert op is not None and led.balances == before
    led.apply(op)
    assert led.balances["sniper_sol"] == D(35) and led.knows_trade("T")
    assert led.plan_trade("T", "sniper_sol", D(5), D(1), T0) is None


def test_a_wallet_cap_of_its_own_bounds_what_flows_put_in(tmp_path: Path) -> None:
    rows = [
        f'{{ id = "{w.id}", chain = "{w.chain}", role = "{w.role}", allocation_usd = '
        f"{w.allocation_usd}{', max_usd = 11' if w.id == 'vault' else ''} }}"
        for w in KobeConfig().finance.wallets
    ]
    cfg = cfg_from("[finance]\nwallets = [\n" + ",\n".join(rows) + "\n]\n")
    assert cfg.finance.wallet("vault").max_usd == D(11)
    m = manager(tmp_path, clock := Clock(), cfg)
    m.run_periodic_tasks(clock.step(minutes=1))  # the day's compounding: nothing over 10
    m.on_trade_closed("copy_sol", D(12), D(0), trade_id="W")
    moves = m.run_periodic_tasks(clock.step(hours=1))
    to_vault = [x for x in moves if x.destination == "vault"]
    assert [x.amount for x in to_vault] == [D(1)]  # wanted 3, room for 1
    assert "vault has room for 1.00 under its caps" in to_vault[0].reason
    b = m.balances()
    assert (b["vault"], b["profits"], b["copy_sol"]) == (D(11), D(13), D(38))


def test_a_win_that_leaves_a_wallet_over_its_cap_is_swept_back_under_it(
    m: WalletManager, clock: Clock
) -> None:
    m.run_periodic_tasks(clock.step(minutes=1))
    # 30 + 40 = 70 against a cap of 45: half the profit (20) would leave it at 50, still over
    m.on_trade_closed("sniper_sol", D(40), D(0), trade_id="BIG")
    cap = m.ledger.cap("sniper_sol")
    assert cap is not None and m.balances()["sniper_sol"] > cap
    moves = m.run_periodic_tasks(clock.step(hours=1))
    swept = [(x.rule, x.source, x.amount) for x in moves if x.source == "sniper_sol"]
    assert [r for r, _, _ in swept] == ["profits_sweep", "profits_sweep"]  # vault, profits
    assert m.balances()["sniper_sol"] <= cap
    assert any("over its cap" in x.reason for x in moves)


def test_the_over_cap_sweep_never_takes_what_open_positions_hold(
    m: WalletManager, clock: Clock
) -> None:
    m.run_periodic_tasks(clock.step(minutes=1))
    m.on_trade_closed("sniper_sol", D(15), D(0), trade_id="W1")  # 45: at its cap
    m.ledger.committed = lambda w: D(45) if w == "sniper_sol" else D(0)  # all of it is open
    m.on_trade_closed("copy_sol", D(-29), D(0), trade_id="L1")  # equity falls: the cap too
    m.on_trade_closed("cex_binance", D(-19), D(0), trade_id="L2")
    cap = m.ledger.cap("sniper_sol")
    assert cap is not None and m.balances()["sniper_sol"] > cap
    moves = m.run_periodic_tasks(clock.step(hours=1))
    assert not [x for x in moves if x.source == "sniper_sol" and "over its cap" in x.reason]
    m.on_trade_closed("sniper_sol", D(-40), D(0), trade_id="L3")  # the position's loss is paid
    assert m.balances()["sniper_sol"] == D(5)
