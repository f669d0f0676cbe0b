"""Live money is never mixed with play money in one data dir (:mod:`engine.wallets.modes`).

Before, the wallets' ledger and ``trades.jsonl`` carried no mode. A data dir used for weeks in
paper and then in live started live's ledger from paper's balances: a paper profit sized live
orders with money that does not exist, a paper win ended a live losing streak, and live's trades
were booked into paper's ledger. Now each record says its mode; live refuses another mode's money
(or money with no mode), paper and testnet refuse live's, and a lost file lets no mode in.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from engine.config import KobeConfig
from engine.trades import ClosedTrade, TradeStore
from engine.wallets.runtime import WalletStateError, load_view
from tests.conftest import CliRunner
from tests.test_process_races import files
from tests.test_wallets_support import T0, Clock, manager

D = Decimal
FLOWS = "wallet_flows.jsonl"
SNAP = "wallets_runtime.json"


def money_in(data: Path, mode: str) -> None:
    """A ledger with a trade, a tick and a snapshot, and a line in ``trades.jsonl``: ``mode``'s."""
    clock = Clock()
    with manager(data, clock, mode=mode) as m:
        m.on_trade_closed("sniper_sol", D(6), D("0.4"), trade_id="A")
        m.on_tick(clock.step(minutes=5))
    store = TradeStore(data, mode)
    store.append(
        ClosedTrade(
            "A",
            T0,
            T0,
            "sniper_sol",
            "manual",
            "BTC/USDT",
            "buy",
            D(1),
            D(1),
            D(7),
            D(0),
            D(6),
            "tp",
        )
    )
    store.close()


def contents(data: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in data.iterdir() if p.is_file()}


def test_every_money_record_says_its_mode(tmp_path: Path) -> None:
    money_in(tmp_path, "testnet")
    assert json.loads((tmp_path / SNAP).read_text())["state"]["mode"] == "testnet"
    flows = [json.loads(line) for line in (tmp_path / FLOWS).read_text().splitlines()]
    assert flows and {line["mode"] for line in flows} == {"testnet"}
    [trade] = [json.loads(line) for line in (tmp_path / "trades.jsonl").read_text().splitlines()]
    assert trade["mode"] == "testnet"
    assert ClosedTrade.from_record(trade).trade_id == "A"  # readers take the line as before


@pytest.mark.parametrize(("recorded", "mode"), [("paper", "live"), ("testnet", "live")])
def test_live_refuses_play_money_and_writes_nothing(
    tmp_path: Path, recorded: str, mode: str
) -> None:
    money_in(tmp_path, recorded)
    before = contents(tmp_path)
    with pytest.raises(WalletStateError) as info:
        manager(tmp_path, Clock(), mode=mode)
    said = str(info.value)
    assert f"{tmp_path / SNAP} holds money recorded in {recorded}; this engine runs in live" in said
    assert "KOBE_DATA_DIR=data-live" in said
    assert contents(tmp_path) == before


@pytest.mark.parametrize("mode", ["paper", "testnet"])
def test_play_modes_refuse_live_money_and_write_nothing(tmp_path: Path, mode: str) -> None:
    money_in(tmp_path, "live")
    before = contents(tmp_path)
    with pytest.raises(WalletStateError) as info:
        manager(tmp_path, Clock(), mode=mode)
    assert f"holds money recorded in live; this engine runs in {mode}" in str(info.value)
    assert f"KOBE_DATA_DIR=data-{mode}" in str(info.value)
    assert contents(tmp_path) == before
    with manager(tmp_path, Clock(), mode="live") as m:  # live's own money: as it was
        assert m.balances()["sniper_sol"] > 0


def test_paper_and_testnet_share_their_play_money(tmp_path: Path) -> None:
    money_in(tmp_path, "paper")
    with manager(tmp_path, Clock(), mode="testnet") as m:
        balance = m.balances()["sniper_sol"]
        m.write_snapshot(T0)
    with manager(tmp_path, Clock(), mode="paper") as m:
        assert m.balances()["sniper_sol"] == balance


@pytest.mark.parametrize(
    ("lost", "named"), [((SNAP,), FLOWS), ((SNAP, FLOWS), "trades.jsonl")], ids=["snap", "both"]
)
def test_a_lost_file_lets_no_mode_in(tmp_path: Path, lost: tuple[str, ...], named: str) -> None:
    """The snapshot is a cache: deleted, the journals still say whose money it is."""
    money_in(tmp_path, "paper")
    for name in lost:
        (tmp_path / name).unlink()
    with pytest.raises(WalletStateError) as info:
        manager(tmp_path, Clock(), mode="live")
    assert f"{tmp_path / named} holds money recorded in paper" in str(info.value)


@pytest.mark.parametrize("said", [None, "LIVE", " live", 5, ["live"]], ids=str)
def test_money_with_no_mode_or_a_damaged_one_is_not_live(tmp_path: Path, said: object) -> None:
    """Records from before modes were recorded, or with a mode that is not one: their mode is
    not known. Live refuses them; paper takes them and stamps its mode from then on."""
    money_in(tmp_path, "paper")

    def restamp(record: dict[str, object]) -> dict[str, object]:
        if said is None:
            del record["mode"]
        else:
            record["mode"] = said
        return record

    doc = json.loads((tmp_path / SNAP).read_text())
    restamp(doc["state"])
    (tmp_path / SNAP).write_text(json.dumps(doc))
    for name in (FLOWS, "trades.jsonl"):
        lines = (tmp_path / name).read_text().splitlines()
        text = "".join(json.dumps(restamp(json.loads(line))) + "\n" for line in lines)
        (tmp_path / name).write_text(text)
    with pytest.raises(WalletStateError) as info:
        manager(tmp_path, Clock(), mode="live")
    assert "holds money records with no mode; this engine runs in live" in str(info.value)
    with manager(tmp_path, Clock(), mode="paper") as m:
        m.write_snapshot(T0)
    assert json.loads((tmp_path / SNAP).read_text())["state"]["mode"] == "paper"


def test_kobe_wallets_in_live_does_not_show_papers_money_as_lives(
    cli: CliRunner, workdir: Path
) -> None:
    money_in(workdir / "data", "paper")
    r = cli("wallets", env={"KOBE_MODE": "live"})
    assert r.code == 1, r.out + r.err
    assert "holds money recorded in paper; this engine runs in live" in r.err
    assert cli("wallets").code == 0


def test_kobe_run_in_paper_refuses_lives_money_and_changes_nothing(
    cli: CliRunner, workdir: Path
) -> None:
    money_in(workdir / "data", "live")
    before = files(workdir)
    r = cli("run", "--headless", "--ticks", "3", "--seed", "7")
    assert r.code == 1, r.out + r.err
    assert "holds money recorded in live; this engine runs in paper" in r.err
    after = files(workdir)
    assert after.pop("kobe.lock") == b""  # the lock, taken and let go: names no holder
    assert after == before


def test_a_read_only_view_refuses_too(tmp_path: Path) -> None:
    """``kobe wallets``, ``kobe orders`` and the cockpit's first paint read the ledger without
    writing: another mode's money is not shown as this mode's either."""
    money_in(tmp_path, "live")
    with pytest.raises(WalletStateError, match="money recorded in live; this engine runs in paper"):
        load_view(KobeConfig(), tmp_path)
    assert load_view(KobeConfig(), tmp_path, mode="live").equity_total_usd > 0


def test_kobe_trade_in_live_refuses_paper_money_before_any_exchange_call(
    cli: CliRunner, workdir: Path
) -> None:
    """Every live condition met: the refusal comes before the exchange is built (no network
    in this test, none needed) and before any journal line."""
    from tests.test_gate import live_env

    money_in(workdir / "data", "paper")
    before = files(workdir)
    buy = ("trade", "--symbol", "BTC/USDT", "--side", "buy", "--quote", "10", "--type", "market")
    buy += ("--sl", "90000", "--tp", "99000", "--yes")
    r = cli(*buy, "--confirm-live", env=live_env(True, True, "live"))
    assert r.code == 1, r.out + r.err
    assert "holds money recorded in paper; this engine runs in live" in r.err
    after = files(workdir)
    assert after.pop("kobe.lock") == b""
    assert after == before


async def test_the_cockpit_in_paper_on_lives_money_says_so_and_books_nothing(
    workdir: Path,
) -> None:
    """The cockpit's first paint and its engine read the same rule: neither shows live's money
    as paper's, the engine does not start, the alert says why, no file changes."""
    from kobe_tui.widgets.journal import AlertsPane
    from tests.cockpit_support import make_app, settle

    money_in(workdir / "data", "live")
    before = files(workdir)
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert app.engine_state == "error" and app.runtime is None
        said = [a[3] for a in app.query_one(AlertsPane).alerts]
        assert any("money recorded in live; this engine runs in paper" in a for a in said), said
    after = files(workdir)
    after.pop("kobe.lock", None)
    assert after == before


def moves(data: Path, rule: str) -> list[tuple[str, str, Decimal]]:
    lines = [json.loads(line) for line in (data / FLOWS).read_text().splitlines()]
    return [(x["from"], x["to"], D(x["amount"])) for x in lines if x["rule"] == rule]


@pytest.mark.parametrize("mode", ["testnet", "live"])
def test_simulated_dex_money_and_the_exchanges_never_flow_into_each_other(
    tmp_path: Path, mode: str
) -> None:
    """The Solana wallets trade on the paper DEX venue in every mode. In testnet and live a
    simulated profit of ``sniper_sol`` went to ``profits`` and the daily compounding gave part of
    it to ``cex_binance``: an order on the exchange sized with money that exists only in the
    simulation (and real profit compounded into the simulation). Each side keeps its own."""
    from datetime import timedelta

    clock = Clock()
    with manager(tmp_path, clock, mode=mode) as m:
        m.on_trade_closed("sniper_sol", D(40), D(0), trade_id="SIM")
        m.on_trade_closed("cex_binance", D(12), D(0), trade_id="REAL")
        m.on_tick(clock.step(hours=1))
        swept = moves(tmp_path, "profits_sweep")
        assert {src for src, _, _ in swept} == {"cex_binance"}, swept
        assert m.balances()["sniper_sol"] == D(70)  # its 30 and its simulated 40: all its own
        m.on_trade_closed("cex_bybit", D(60), D(0), trade_id="REAL2")
        m.on_tick(clock.step(hours=1))
        m.on_tick(clock.step(days=1) - timedelta(0))
        compounded = moves(tmp_path, "compounding")
        assert compounded and {dst for _, dst, _ in compounded} == {
            "cex_binance",
            "cex_bybit",
            "cex_okx",
        }, compounded


def test_in_paper_every_wallet_is_simulated_alike_and_the_rules_are_as_before(
    tmp_path: Path,
) -> None:
    clock = Clock()
    with manager(tmp_path, clock) as m:
        m.on_trade_closed("sniper_sol", D(40), D(0), trade_id="SIM")
        m.on_tick(clock.step(hours=1))
    assert {src for src, _, _ in moves(tmp_path, "profits_sweep")} == {"sniper_sol"}
