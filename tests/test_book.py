"""The one position book (issue 12): every path books its trades; wallets spend what is free."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.book import PositionBook
from tests.binance_sim import DEFAULT_SYMBOLS, BinanceSim, SymbolSpec
from tests.conftest import CliRunner
from tests.test_ccxt_contract import sim_env

BUY = ["trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15"]


def trades(workdir: Path) -> list[dict[str, Any]]:
    path = workdir / "data" / "trades.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def wallet(cli: CliRunner, wallet_id: str, env: dict[str, str] | None = None) -> Decimal:
    r = cli("wallets", "--json", env=env)
    assert r.code == 0, r.err
    return Decimal(json.loads(r.out)["wallets"][wallet_id]["balance"])


def test_a_cli_trade_whose_stop_fills_in_kobe_run_is_booked_once(
    cli: CliRunner, workdir: Path
) -> None:
    r = cli(*BUY, "--sl", "94900", "--tp", "95200", "--yes", "--json")
    assert r.code == 0, r.err
    cid = json.loads(r.out)["entry"]["client_id"]
    r = cli("positions", "--json")
    assert r.code == 0, r.err
    [pos] = [p for p in json.loads(r.out) if p["symbol"] == "BTC/USDT"]
    # the entry's fee was taken in BTC (Binance: the asset received): 0.1 % of 0.00015
    assert pos["source"] == "cli" and Decimal(pos["qty"]) == Decimal("0.00014985")
    assert sorted(x["type"] for x in pos["exits"]) == ["limit_maker", "stop_loss_limit"]

    r = cli("run", "--headless", "--ticks", "120", "--seed", "1")
    assert r.code == 0, r.err
    btc = [t for t in trades(workdir) if t["symbol"] == "BTC/USDT"]
    assert [t["trade_id"] for t in btc] == [cid]
    assert btc[0]["reason"] == "stop-loss"
    entry_fee = Decimal("0.00015") * Decimal(btc[0]["entry_price"]) / 1000
    # the exits sold what the entry left, rounded down to the step: 0.00014
    exit_fee = Decimal("0.00014") * Decimal(btc[0]["exit_price"]) / 1000
    assert Decimal(btc[0]["fees"]) == pytest.approx(entry_fee + exit_fee)  # both legs
    assert wallet(cli, "cex_binance") < Decimal(20)
    # what the exit could not sell (below the 0.00001 step) stays in the book as dust, at cost
    [dust] = [p for p in json.loads(cli("positions", "--json").out) if p["symbol"] == "BTC/USDT"]
    assert Decimal(dust["qty"]) == Decimal("0.00000985") and dust["protection"] == "dust"
    assert dust["entry_client_id"] == "dust cex_binance binance BTC/USDT buy"
    assert Decimal(dust["cost"]) == Decimal("0.00000985") * Decimal(btc[0]["entry_price"])
    r = cli("exits", dust["entry_client_id"], "--sl", "90000", "--yes")  # never given exits
    assert r.code == 1 and "not open (see kobe positions)" in r.err, r.err
    # README: a sell of what is only Kobe's dust is refused, saying so ("… held by Kobe's dust …")
    sell = ("trade", "--symbol", "BTC/USDT", "--side", "sell", "--type", "market", "--quote", "5")
    r = cli(*sell, "--yes")
    assert r.code == 1 and "no BTC to sell: the 0.00000985 BTC free is held by Kobe's dust" in r.err
    # the stop's fill journaled once more (a sync and a poll both saw it): nothing moves
    journal = workdir / "data" / "logs" / "orders.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    [fill] = [x for x in lines if json.loads(x)["client_id"] == f"{cid}sl" and '"fill"' in x]
    with journal.open("a") as fh:
        fh.write(fill)
    (workdir / "data" / "positions.json").unlink()  # and the book rebuilt from the journal
    [again] = [p for p in json.loads(cli("positions", "--json").out) if p["symbol"] == "BTC/USDT"]
    moves = ("mark", "unrealized_pnl")  # the paper price walks on
    assert {k: v for k, v in again.items() if k not in moves} == {
        k: v for k, v in dust.items() if k not in moves
    }
    # a second start books nothing again
    cli("run", "--headless", "--ticks", "1", "--seed", "1")
    assert [t["trade_id"] for t in trades(workdir) if t["symbol"] == "BTC/USDT"] == [cid]


def test_open_positions_reduce_what_a_wallet_may_spend(cli: CliRunner) -> None:
    assert cli(*BUY, "--yes").code == 0
    r = cli(*BUY, "--yes")
    assert r.code == 1
    assert "cex_binance can spend 5.7" in r.err and "balance 20.00, open 14.2" in r.err


def test_what_is_left_can_still_be_spent_and_no_more(cli: CliRunner) -> None:
    ten = [*BUY[:-1], "10", "--yes"]
    assert cli(*ten).code == 0
    assert cli(*ten).code == 0  # 20 - 9.5 open: 10 still fits
    r = cli(*ten)
    # open: what the two buys cost (their fees were taken in BTC, not from the USDT)
    assert r.code == 1 and "cex_binance can spend 0.99 USDT: balance 20.00, open 19.01" in r.err


def test_a_lost_positions_cache_is_rebuilt_from_the_journal(cli: CliRunner, workdir: Path) -> None:
    assert cli(*BUY, "--sl", "80000", "--tp", "110000", "--yes").code == 0
    before = json.loads(cli("positions", "--json").out)
    for damage in (None, "{}", "[1, 2", '{"version": 4, "mode": "paper", "offset": 99999999}'):
        path = workdir / "data" / "positions.json"
        if damage is None:
            path.unlink()
        else:
            path.write_text(damage)
        after = json.loads(cli("positions", "--json").out)
        assert [(p["symbol"], p["qty"]) for p in after] == [(p["symbol"], p["qty"]) for p in before]
        assert cli(*BUY, "--yes").code == 1  # still counted against the wallet


def test_positions_asks_the_venue_for_its_marks_with_the_data_dir_free(
    cli: CliRunner, workdir: Path
) -> None:
    """The lock only tells whether an engine runs: an engine started while a slow testnet
    answers the mark's ticker is not refused for a read-only command."""
    from engine.lock import DataDirBusy, DataDirLock

    started: list[bool] = []

    def start_an_engine() -> None:
        try:
            with DataDirLock(workdir / "data", "kobe run"):
                started.append(True)
        except DataDirBusy:
            started.append(False)

    with BinanceSim() as sim:
        env = sim_env(sim)
        assert cli(*BUY, "--yes", env=env).code == 0
        for path in ("/api/v3/ticker/24hr", "/api/v3/ticker/price", "/api/v3/ticker/bookTicker"):
            sim.inject("before", method="GET", path=path, action=start_an_engine, times=9)
        r = cli("positions", "--json", env=env)
    assert r.code == 0, r.err
    assert started and all(started), started
    assert [p["mark"] is not None for p in json.loads(r.out)] == [True]


def test_positions_are_readable_while_an_engine_holds_the_data_dir(
    cli: CliRunner, workdir: Path
) -> None:
    from engine.lock import DataDirLock

    assert cli(*BUY, "--yes").code == 0
    with DataDirLock(workdir / "data", "kobe run"):
        r = cli("positions", "--json")
    assert r.code == 0, r.err
    [pos] = json.loads(r.out)
    assert pos["mark"] is None and "no mark prices" in r.err


@pytest.fixture
def sim() -> Any:
    with BinanceSim() as s:
        yield s


def test_testnet_the_take_profit_filling_on_the_exchange_is_booked_with_both_fees(
    cli: CliRunner, sim: BinanceSim, workdir: Path
) -> None:
    env = sim_env(sim)
    r = cli(*BUY, "--sl", "90000", "--tp", "100000", "--yes", "--json", env=env)
    assert r.code == 0, r.err
    out = json.loads(r.out)
    tp = next(x for x in out["exits"] if x["client_id"].endswith("tp"))
    sim.fill(int(tp["id"]))  # the take-profit fills while Kobe is not running
    r = cli("cancel", "--all", "--yes", env=env)  # any sending start syncs and books it
    assert r.code == 0, r.err
    [t] = trades(workdir)
    assert t["trade_id"] == out["entry"]["client_id"] and t["reason"] == "take-profit"
    assert Decimal(t["exit_price"]) == Decimal(100000)
    events = [
        json.loads(x) for x in (workdir / "data" / "logs" / "orders.jsonl").read_text().splitlines()
    ]
    [exit_fill] = [e for e in events if e["client_id"].endswith("tp") and e["event"] == "fill"]
    exit_fee = Decimal(t["qty"]) * Decimal(100000) / 1000  # 0.1 % of the proceeds, in USDT
    assert exit_fill["fee_asset"] == "USDT" and Decimal(exit_fill["fee"]) == exit_fee
    [entry_fill] = [e for e in events if e["client_id"] == t["trade_id"] and e["event"] == "fill"]
    entry_fee = Decimal(entry_fill["fee"]) * Decimal(entry_fill["avg_price"])  # BTC, at its price
    assert Decimal(t["fees"]) == entry_fee + exit_fee  # both legs
    assert wallet(cli, "cex_binance", env) > Decimal(20)


@pytest.mark.parametrize("kind", ["late", "drop"], ids=["timeout-after-accept", "lost-reply"])
def test_a_lost_reply_journals_one_fill_with_its_fee_and_sizes_the_oco_to_what_is_held(
    cli: CliRunner, sim: BinanceSim, workdir: Path, kind: str
) -> None:
    (workdir / "kobe.toml").write_text("[exchange]\ntimeout_ms = 400\n")
    sim.inject(kind, delay=1.0, method="POST", path="/api/v3/order")  # type: ignore[arg-type]
    r = cli(*BUY, "--sl", "90000", "--tp", "100000", "--yes", "--json", env=sim_env(sim))
    assert r.code == 0, r.err
    cid = json.loads(r.out)["entry"]["client_id"]
    events = [
        json.loads(x) for x in (workdir / "data" / "logs" / "orders.jsonl").read_text().splitlines()
    ]
    fills = [e for e in events if e["client_id"] == cid and e["event"] == "fill"]
    assert len(fills) == 1, [e["event"] for e in events if e["client_id"] == cid]
    assert fills[0]["fee_asset"] == "BTC" and Decimal(fills[0]["fee"]) > 0
    held = Decimal(fills[0]["filled"]) - Decimal(fills[0]["fee"])
    legs = [o for o in sim.orders.values() if o.list_id != -1]
    assert len(legs) == 2
    assert all(o.qty <= held for o in legs), (held, [o.qty for o in legs])
    assert sim.count("POST", "/api/v3/orderList/oco") == 1


def test_an_entry_whose_exits_would_be_below_the_minimum_is_refused_up_front(
    cli: CliRunner, workdir: Path
) -> None:
    r = cli(*BUY[:-1], "6", "--sl", "80000", "--tp", "110000", "--yes")
    assert r.code == 1
    assert (
        "its exits could not be placed: 0.00005 BTC left after fees is 3.98 USDT at 79600" in r.err
    )  # the stop leg's limit
    assert (workdir / "data" / "logs" / "orders.jsonl").read_text() == ""  # nothing sent
    assert cli(*BUY[:-1], "6", "--yes").code == 0  # without exits the same size is fine


def test_strategy_links_rebuild_from_the_journal_when_agent_state_is_lost(
    cli: CliRunner, workdir: Path
) -> None:
    assert cli("run", "--headless", "--ticks", "60", "--seed", "7").code == 0
    state = workdir / "data" / "agent_state.json"
    links = json.loads(state.read_text())["links"]
    assert links, "the seeded run should leave strategy positions open"
    state.unlink()
    (workdir / "data" / "positions.json").unlink()
    assert cli("run", "--headless", "--ticks", "1", "--seed", "7").code == 0
    rebuilt = json.loads(state.read_text())["links"]
    still_open = {p["entry_client_id"] for p in json.loads(cli("positions", "--json").out)}
    kept = {cid: link for cid, link in links.items() if cid in still_open}
    assert kept, "some strategy positions should still be open"
    assert {cid: rebuilt.get(cid) for cid in kept} == kept


@pytest.mark.parametrize(
    "damage", [b"{not json", b"[]", b'{"links": {"x": 1}}', b"\xff\xfe"], ids=str
)
def test_a_damaged_agent_state_is_kept_aside_and_the_links_rebuilt_from_the_journal(
    cli: CliRunner, workdir: Path, damage: bytes
) -> None:
    assert cli("run", "--headless", "--ticks", "60", "--seed", "7").code == 0
    state = workdir / "data" / "agent_state.json"
    links = json.loads(state.read_text())["links"]
    assert links, "the seeded run should leave strategy positions open"
    state.write_bytes(damage)
    r = cli("run", "--headless", "--ticks", "1", "--seed", "7")
    assert r.code == 0, r.err
    assert "agent_state.json is damaged" in r.out and "kept as agent_state.1.json" in r.out
    assert (workdir / "data" / "agent_state.1.json").read_bytes() == damage
    rebuilt = json.loads(state.read_text())["links"]
    still_open = {p["entry_client_id"] for p in json.loads(cli("positions", "--json").out)}
    kept = {cid: link for cid, link in links.items() if cid in still_open}
    assert kept, "some strategy positions should still be open"
    assert {cid: rebuilt.get(cid) for cid in kept} == kept


def test_a_damaged_agent_state_the_journal_cannot_replace_still_refuses_to_start(
    cli: CliRunner, workdir: Path
) -> None:
    assert cli("run", "--headless", "--ticks", "60", "--seed", "7").code == 0
    data = workdir / "data"
    journal = data / "logs" / "orders.jsonl"
    records = [json.loads(x) for x in journal.read_text().splitlines()]
    for record in records:  # an older journal: its intents did not name the strategy's ref
        record["ref"] = ""
    journal.write_text("".join(json.dumps(r) + "\n" for r in records))
    (data / "positions.json").unlink()
    (data / "agent_state.json").write_text("{not json")
    r = cli("run", "--headless", "--ticks", "1", "--seed", "7")
    assert r.code == 1
    assert "agent_state.json is damaged" in r.err and "cannot relink" in r.err
    assert (data / "agent_state.json").read_text() == "{not json"  # untouched
    assert not (data / "agent_state.1.json").exists()


def test_an_orders_csv_with_old_columns_is_kept_aside_not_mixed(
    cli: CliRunner, workdir: Path
) -> None:
    logs = workdir / "data" / "logs"
    logs.mkdir(parents=True)
    (logs / "orders.csv").write_text("ts,mode,exchange\n2026-01-01T00:00:00Z,paper,binance\n")
    assert cli(*BUY, "--yes").code == 0
    assert (logs / "orders.1.csv").read_text().startswith("ts,mode,exchange\n")
    header = (logs / "orders.csv").read_text().splitlines()[0]
    assert header.endswith(",reason,strategy,ref,fee_rate")


BNB_MARKET = SymbolSpec(
    "BNBUSDT", "BNB", "USDT", Decimal(600), Decimal("0.01"), Decimal("0.001"), Decimal("0.001"),
    Decimal(5),
)  # fmt: skip


def journal(workdir: Path) -> list[dict[str, Any]]:
    path = workdir / "data" / "logs" / "orders.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_testnet_fees_paid_in_bnb_are_booked_in_usdt_at_the_bnb_price_and_replay_offline(
    cli: CliRunner, workdir: Path
) -> None:
    balances = {"USDT": Decimal(10_000), "BNB": Decimal(1)}
    symbols = (*DEFAULT_SYMBOLS, BNB_MARKET)
    with BinanceSim(balances=balances, symbols=symbols, commission_asset="BNB") as sim:
        env = sim_env(sim)
        r = cli(*BUY, "--sl", "90000", "--tp", "100000", "--yes", "--json", env=env)
        assert r.code == 0, r.err
        out = json.loads(r.out)
        tp = next(x for x in out["exits"] if x["client_id"].endswith("tp"))
        sim.set_price("BNBUSDT", Decimal(650))  # BNB moved before the exit filled
        sim.fill(int(tp["id"]))
        r = cli("cancel", "--all", "--yes", env=env)  # a sending start syncs and books it
        assert r.code == 0, r.err
    cid = out["entry"]["client_id"]
    events = journal(workdir)
    [entry] = [e for e in events if e["client_id"] == cid and e["event"] == "fill"]
    [exit_] = [e for e in events if e["client_id"] == f"{cid}tp" and e["event"] == "fill"]
    # each fill carries the BNB/USDT price read at it: a replay needs no network
    assert (entry["fee_asset"], Decimal(entry["fee_rate"])) == ("BNB", 600)
    assert (exit_["fee_asset"], Decimal(exit_["fee_rate"])) == ("BNB", 650)
    # nothing was taken in BTC: the exits sell the whole fill
    assert Decimal(exit_["filled"]) == Decimal(entry["filled"]) == Decimal("0.00015")
    [t] = trades(workdir)
    fees = Decimal(entry["fee"]) * Decimal(entry["fee_rate"]) + Decimal(exit_["fee"]) * Decimal(
        exit_["fee_rate"]
    )
    assert Decimal(t["fees"]) == fees
    # 0.1 % of each leg's notional (the BNB commission is rounded down to 8 decimals)
    notional = Decimal("0.00015") * (Decimal(95000) + Decimal(100000))
    assert Decimal(0) <= notional / 1000 - fees < Decimal("0.0001")
    assert Decimal(t["pnl"]) == Decimal("0.00015") * 5000 - fees

    # the simulator is gone: the book rebuilt from the journal alone books the same trade
    (workdir / "data" / "positions.json").unlink(missing_ok=True)
    [again] = PositionBook(workdir / "data", "testnet", read_only=True).catch_up()
    assert (again.fees, again.pnl) == (Decimal(t["fees"]), Decimal(t["pnl"]))


def test_a_bnb_fee_with_no_bnb_price_is_alerted_and_shown_apart_never_booked_as_zero(
    cli: CliRunner, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    balances = {"USDT": Decimal(10_000), "BNB": Decimal(1)}
    with BinanceSim(balances=balances, commission_asset="BNB") as sim:  # no BNB/USDT market
        r = cli(*BUY, "--sl", "90000", "--tp", "100000", "--yes", "--json", env=sim_env(sim))
        assert r.code == 0, r.err
        cid = json.loads(r.out)["entry"]["client_id"]
        [pos] = json.loads(cli("positions", "--json", env=sim_env(sim)).out)
    assert "fee_unpriced" in caplog.text and "no BNB/USDT price" in caplog.text
    [entry] = [e for e in journal(workdir) if e["client_id"] == cid and e["event"] == "fill"]
    assert entry["fee_asset"] == "BNB" and entry["fee_rate"] is None
    assert pos["fees"] == "0" and pos["fees_unpriced"] == f"{Decimal(entry['fee'])} BNB"


def test_a_loss_booked_when_a_command_starts_is_what_its_order_may_spend_after(
    cli: CliRunner, sim: BinanceSim, workdir: Path
) -> None:
    # the stop fills while Kobe is not running; the next `kobe trade` books that loss at its
    # start (reconciliation) and must then size against the wallet as it is after the loss
    env = sim_env(sim)
    r = cli(*BUY, "--sl", "90000", "--tp", "100000", "--yes", "--json", env=env)
    assert r.code == 0, r.err
    sl = next(x for x in json.loads(r.out)["exits"] if x["client_id"].endswith("sl"))
    sim.fill(int(sl["id"]))
    r = cli(*BUY[:-1], "20", "--yes", env=env)  # all the wallet had before the loss
    [t] = trades(workdir)
    assert Decimal(t["pnl"]) < 0  # the stop-loss was booked by this command's start
    left = wallet(cli, "cex_binance", env)
    assert left < Decimal(20)
    assert r.code == 1, r.out
    # the balance after the loss, less the dust the stop could not sell (still held, at cost):
    # named as dust, not counted as an open position the trader would look for
    assert f"cex_binance can spend {left - Decimal('0.94'):.2f} USDT: balance {left:.2f}" in r.err
    assert "open 0.00 (+ dust 0.94)" in r.err
