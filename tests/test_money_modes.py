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


def refusal(data: Path, mode: str) -> str:
    """What the wallet manager of an engine in ``mode`` says refusing ``data``'s money; it
    writes nothing."""
    before = contents(data)
    with pytest.raises(WalletStateError) as info:
        manager(data, Clock(), mode=mode)
    assert contents(data) == before
    return str(info.value)


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
    said = refusal(tmp_path, mode)
    assert f"{tmp_path / SNAP} holds money recorded in {recorded}; this engine runs in live" in said
    assert "KOBE_DATA_DIR=data-live" in said


@pytest.mark.parametrize("mode", ["paper", "testnet"])
def test_play_modes_refuse_live_money_and_write_nothing(tmp_path: Path, mode: str) -> None:
    money_in(tmp_path, "live")
    said = refusal(tmp_path, mode)
    assert f"holds money recorded in live; this engine runs in {mode}" in said
    assert f"KOBE_DATA_DIR=data-{mode}" in said
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


def restamp_all(data: Path, said: object = ...) -> None:
    """Every money record's mode replaced by ``said`` (left out: the key removed)."""

    def restamp(record: dict[str, object]) -> dict[str, object]:
        if said is ...:
            del record["mode"]
        else:
            record["mode"] = said
        return record

    doc = json.loads((data / SNAP).read_text())
    restamp(doc["state"])
    (data / SNAP).write_text(json.dumps(doc))
    for name in (FLOWS, "trades.jsonl"):
        lines = (data / name).read_text().splitlines()
        text = "".join(json.dumps(restamp(json.loads(line))) + "\n" for line in lines)
        (data / name).write_text(text)


def test_money_with_no_mode_is_not_live(tmp_path: Path) -> None:
    """Records from before modes were recorded: their mode is not known. Live refuses them;
    paper takes them and stamps its mode from then on."""
    money_in(tmp_path, "paper")
    restamp_all(tmp_path)
    with pytest.raises(WalletStateError) as info:
        manager(tmp_path, Clock(), mode="live")
    assert "holds money records with no mode; this engine runs in live" in str(info.value)
    with manager(tmp_path, Clock(), mode="paper") as m:
        m.write_snapshot(T0)
    assert json.loads((tmp_path / SNAP).read_text())["state"]["mode"] == "paper"


@pytest.mark.parametrize("said", ["LIVE", " live", "", 5, None, ["live"]], ids=repr)
@pytest.mark.parametrize("mode", ["paper", "testnet", "live"])
def test_a_damaged_mode_is_refused_by_every_mode(tmp_path: Path, said: object, mode: str) -> None:
    """A mode that is there but is not one of Kobe's is damage, not an old record: whose money
    it is cannot be known. Before, paper took live's money whose modes read ``"LIVE"`` and
    booked its play trades into it (``kobe run`` exit 0, the ledger rewritten as paper's)."""
    money_in(tmp_path, "live")
    restamp_all(tmp_path, said)
    text = refusal(tmp_path, mode)
    assert f"{tmp_path / SNAP} holds money records with a damaged mode" in text
    assert "Nothing was written" in text and "restore it from a backup" in text
    (tmp_path / SNAP).unlink()  # the snapshot lost: the journals still say no
    text = refusal(tmp_path, mode)
    assert f"{tmp_path / FLOWS} holds money records with a damaged mode" in text


def test_kobe_wallets_in_live_does_not_show_papers_money_as_lives(
    cli: CliRunner, workdir: Path
) -> None:
    money_in(workdir / "data", "paper")
    r = cli("wallets", env={"KOBE_MODE": "live"})
    assert r.code == 1, r.out + r.err
    assert "holds money recorded in paper; this engine runs in live" in r.err
    assert cli("wallets").code == 0


@pytest.mark.parametrize(("recorded", "mode"), [("paper", "live"), ("live", "testnet")])
def test_kobe_stats_does_not_show_another_modes_trades_as_this_modes(
    cli: CliRunner, workdir: Path, recorded: str, mode: str
) -> None:
    """Before, `kobe stats` in live summed paper's trades (PnL, win rate) as live's."""
    money_in(workdir / "data", recorded)
    r = cli("stats", "--json", env={"KOBE_MODE": mode})
    assert r.code == 1 and r.out == "", r.out + r.err
    assert f"holds money recorded in {recorded}; this engine runs in {mode}" in r.err
    r = cli("stats", "--json", env={"KOBE_MODE": recorded})
    assert r.code == 0 and json.loads(r.out)["total"]["trades"] == 1, r.out + r.err


def test_kobe_health_says_the_money_is_another_modes(cli: CliRunner, workdir: Path) -> None:
    """Before, `kobe health` in live said "healthy" (exit 0) on paper's data dir, where every
    live engine refuses to start."""
    from tests.test_gate import live_env

    money_in(workdir / "data", "paper")
    before = files(workdir)
    r = cli("health", env=live_env(True, True, "live"))
    assert r.code == 1, r.out + r.err
    assert "FAIL  data dir money:" in r.out and "money recorded in paper" in r.out, r.out
    assert files(workdir) == before
    r = cli("health")
    assert r.code == 0 and "data dir money" not in r.out, r.out


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
    from kobe_tui.widgets.journal import AlertsPane, JournalPane
    from kobe_tui.widgets.money import StatsPane
    from tests.cockpit_support import make_app, settle

    money_in(workdir / "data", "live")
    before = files(workdir)
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert app.engine_state == "error" and app.runtime is None
        said = [a[3] for a in app.query_one(AlertsPane).alerts]
        assert any("money recorded in live; this engine runs in paper" in a for a in said), said
        assert app.query_one(StatsPane).stats is None  # live's trades are not paper's
        assert app.query_one(JournalPane).table.row_count == 0
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


BUY = ("trade", "--symbol", "BTC/USDT", "--side", "buy", "--quote", "10", "--type", "market")
BUY += ("--sl", "90000", "--tp", "99000", "--yes")


@pytest.mark.parametrize(
    "argv",
    [("run", "--headless", "--ticks", "1"), BUY, ("cancel", "--all", "--yes")],
    ids=lambda a: a[0],
)
@pytest.mark.parametrize("damage", ["not json", "a directory", "a damaged mode"])
def test_damaged_money_is_refused_before_any_file_is_written(
    cli: CliRunner, workdir: Path, argv: tuple[str, ...], damage: str
) -> None:
    """Before, a damaged wallets snapshot was refused only after the risk engine, the audit log
    and the order journal had written their files (``execution_runtime.json``,
    ``risk_journal.jsonl``, ``audit.jsonl``, ``logs/orders.*``), while the refusal said that
    nothing was written. The wallets are read first now, as the mode check is."""
    data = workdir / "data"
    money_in(data, "paper")
    snap = data / SNAP
    if damage == "not json":
        snap.write_text("{not json")
    elif damage == "a directory":
        snap.unlink()
        snap.mkdir()
    else:
        restamp_all(data, "PAPER")
    before = files(workdir)
    r = cli(*argv)
    assert r.code == 1, r.out + r.err
    assert f"{snap}" in r.err and ("is damaged" in r.err or "damaged mode" in r.err), r.err
    after = files(workdir)
    assert after.pop("kobe.lock") == b""
    assert after == before


@pytest.mark.parametrize(
    "argv",
    [("run", "--headless", "--ticks", "1"), BUY, ("cancel", "--all", "--yes")],
    ids=lambda a: a[0],
)
def test_a_torn_flows_tail_is_cut_only_by_an_engine_that_starts(
    cli: CliRunner, workdir: Path, argv: tuple[str, ...]
) -> None:
    """The wallets are read first, before the venue: a config the venue refuses later (exit 2)
    still leaves the flows journal's torn tail as it was; it is cut at the first movement."""
    from tests.binance_sim import BinanceSim
    from tests.test_ccxt_contract import sim_env

    data = workdir / "data"
    money_in(data, "testnet")
    with open(data / FLOWS, "ab") as fh:
        fh.write(b'{"seq": 9, "id": "trade:B#1", "op": "tr')
    before = files(workdir)
    (workdir / "kobe.toml").write_text('symbols = ["BTC/USDT", "DOGE/USDT"]\n')
    with BinanceSim() as sim:
        r = cli(*argv, env=sim_env(sim))
    assert r.code == 2, (r.out, r.err)
    assert "DOGE/USDT has no spot market" in r.err
    after = files(workdir)
    after.pop("kobe.lock")
    assert after == before
