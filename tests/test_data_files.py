"""Every data file has a rule (issue 15): a damaged file is named and refused, never a traceback
or a silent reset; deleting ``paper/`` starts the paper account over, and says so."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.journal import iter_jsonl
from tests.conftest import ROOT, CliRunner

DAMAGE = {
    "empty": b"",
    "torn": b'{"items": [',
    "list": b"[]",
    "null": b"null",
    "string": b'"x"',
    "not utf-8": b"\xff\xfe\x00",
    "wrong shapes": (
        b'{"items": [1], "positions": {"a": 1}, "links": [1], "state": [], '
        b'"memecoin_farming": [1], "copy_trading": {"feed": 1}}'
    ),
}
# money and the paper accounts refuse to start; the caches not rebuilt yet are named with their
# problem (positions.json is rebuilt from the order journal by the position book, and so are
# agent_state.json's links: tests/test_book.py)
FILES = [
    "strategies_state.json",
    "watchdog.json",
    "dex/watchdog.json",
    "dex/markets.json",
    "wallets_runtime.json",
    "paper/state.json",
    "dex/state.json",
]


def _readme_table() -> list[list[str]]:
    """The rows of the README's "Data files" table: file(s), what, missing, damaged."""
    section = (ROOT / "README.md").read_text().split("\n## Data files\n", 1)[1]
    rows = [line for line in section.split("\n## ", 1)[0].splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def test_the_files_the_readme_says_are_refused_when_damaged_are_those_tested() -> None:
    refused = [
        name
        for files, _what, _missing, damaged in _readme_table()
        if damaged == "refused, naming the file (exit 1)"
        for name in re.findall(r"`([^`]+)`", files)
    ]
    assert sorted(refused) == sorted(FILES)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data dir after a short run (positions, links, watchdogs, wallets, both paper venues)."""
    from engine.cli import main

    work = tmp_path_factory.mktemp("ran")
    assert main(["run", "--headless", "--ticks", "120"], env={}, cwd=work) == 0
    yield work


def copy_of(ran: Path, workdir: Path) -> Path:
    shutil.rmtree(workdir)
    shutil.copytree(ran, workdir)
    return workdir / "data"


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_file_is_named_never_a_traceback(
    cli: CliRunner, workdir: Path, ran: Path, name: str, damage: str
) -> None:
    data = copy_of(ran, workdir)
    path = data / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(DAMAGE[damage])
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file() and p.name != "kobe.lock"}
    r = cli("run", "--headless", "--ticks", "2")
    assert r.code == 1, r.out + r.err
    assert name.split("/")[-1] in r.err and "Traceback" not in r.err
    assert path.read_bytes() == DAMAGE[damage]  # nothing reset or overwritten
    for p, content in before.items():
        if p.suffix == ".json":
            assert p.read_bytes() == content, p


def test_a_wallets_snapshot_holding_a_list_is_refused_by_every_command(
    cli: CliRunner, workdir: Path, ran: Path
) -> None:
    data = copy_of(ran, workdir)
    (data / "wallets_runtime.json").write_text("[]")
    for argv in (("run", "--headless", "--ticks", "1"), ("wallets", "--json")):
        r = cli(*argv)
        assert r.code == 1 and "wallets_runtime.json is damaged" in r.err, argv


@pytest.mark.parametrize("how", ["deleted", "emptied", "a line lost"])
def test_lost_wallet_movements_are_refused(
    cli: CliRunner, workdir: Path, ran: Path, how: str
) -> None:
    data = copy_of(ran, workdir)
    flows = data / "wallet_flows.jsonl"
    lines = flows.read_bytes().splitlines(keepends=True)
    snap_seq = json.loads((data / "wallets_runtime.json").read_text())["state"]["seq"]
    assert len(lines) >= 3 and snap_seq == len(lines)
    if how == "deleted":
        flows.unlink()
    elif how == "emptied":
        flows.write_bytes(b"")
    else:  # a line after an older snapshot's seq is lost: the replay would miss money
        snap = json.loads((data / "wallets_runtime.json").read_text())
        snap["state"]["seq"] = 1
        (data / "wallets_runtime.json").write_text(json.dumps(snap))
        del lines[1]
        flows.write_bytes(b"".join(lines))
    r = cli("wallets", "--json")
    assert r.code == 1 and "wallet_flows.jsonl is damaged" in r.err
    assert cli("run", "--headless", "--ticks", "1").code == 1


def test_a_deleted_wallets_snapshot_is_rebuilt_exactly_from_its_journal(
    cli: CliRunner, workdir: Path, ran: Path
) -> None:
    data = copy_of(ran, workdir)
    before = json.loads(cli("wallets", "--json").out)
    (data / "wallets_runtime.json").unlink()
    after = json.loads(cli("wallets", "--json").out)
    assert {k: v["balance"] for k, v in after["wallets"].items()} == {
        k: v["balance"] for k, v in before["wallets"].items()
    }


LIMIT = ("trade", "--symbol", "ETH/USDT", "--side", "buy", "--type", "limit", "--price", "1000")


def test_deleting_paper_starts_the_account_over_and_cancels_its_orders(
    cli: CliRunner, workdir: Path
) -> None:
    r = cli(*LIMIT, "--quote", "6", "--yes", "--json")
    assert r.code == 0, r.err
    cid = json.loads(r.out)["entry"]["client_id"]
    shutil.rmtree(workdir / "data" / "paper")
    r = cli("orders", "--json")  # read only: it shows the new account, and says nothing yet
    assert r.code == 0 and json.loads(r.out) == []
    r = cli(*LIMIT, "--quote", "6", "--yes")  # the next trading session says so
    assert r.code == 0 and "the paper account starts over" in r.err and "1 open order(s)" in r.err
    events = list(iter_jsonl(workdir / "data" / "logs" / "orders.jsonl"))
    cancel = next(e for e in events if e["client_id"] == cid and e["event"] == "cancel")
    assert cancel["reason"] == "paper account reset"
    r = cli(*LIMIT, "--quote", "6", "--yes")  # said once
    assert r.code == 0 and "starts over" not in r.err


def test_rm_r_data_dex_starts_the_dex_account_over_and_cancels_its_orders(
    cli: CliRunner, workdir: Path
) -> None:
    """README: "`rm -r data/dex` starts it over" (the paper DEX account, 30 + 30 = 60 USDC),
    saying so and journaling the old account's open orders as cancelled."""
    assert cli("run", "--headless", "--ticks", "60").code == 0  # strategies' exits rest there
    data = workdir / "data"
    orders = json.loads((data / "dex" / "state.json").read_text())["orders"]
    held = [o for o in orders if o["status"] in ("open", "partially_filled")]
    assert held, "the run left DEX orders open"
    shutil.rmtree(data / "dex")
    r = cli("run", "--headless", "--ticks", "1")
    assert r.code == 0, r.err
    assert "paper_reset: dex: the paper account starts over" in r.out
    cancels = [e for e in iter_jsonl(data / "logs" / "orders.jsonl") if e["event"] == "cancel"]
    assert len([e for e in cancels if e["reason"] == "paper account reset"]) == len(held)
    assert (data / "dex" / "state.json").exists()


BUY = ("trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "7")


@pytest.mark.parametrize("how", ["deleted", "emptied", "cut short", "cut, then written again"])
def test_a_lost_order_journal_never_frees_the_money_its_positions_hold(
    cli: CliRunner, workdir: Path, how: str
) -> None:
    assert cli(*BUY, "--yes").code == 0
    assert cli(*BUY, "--yes").code == 0
    assert cli(*BUY, "--yes").code == 1  # cex_binance (20) holds two positions of ~7
    data = workdir / "data"
    journal = data / "logs" / "orders.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    if how == "deleted":
        journal.unlink()
    elif how == "emptied":
        journal.write_bytes(b"")
    elif how == "cut short":
        journal.write_bytes(b"".join(lines[: len(lines) // 2]))
    else:  # a later command appended to the cut journal: it is as long as before, or longer
        journal.write_bytes(b"".join(lines[: len(lines) // 2] + lines))
    cache = (data / "positions.json").read_bytes()
    for argv in ((*BUY, "--yes"), ("positions", "--json"), ("run", "--headless", "--ticks", "1")):
        r = cli(*argv)
        assert r.code == 1 and "orders.jsonl" in r.err and "Traceback" not in r.err, argv
    assert (data / "positions.json").read_bytes() == cache  # nothing overwritten
    # the operator's way out, said in the message: rebuild the book from what is left
    assert "positions.json" in r.err
    (data / "positions.json").unlink()
    assert cli("positions", "--json").code == 0


def test_a_lost_watchdog_file_shows_its_position_unprotected_with_a_critical_alert(
    cli: CliRunner, workdir: Path
) -> None:
    """README, "Data files": `watchdog.json` missing: "none watched: a position left without an
    exit is shown UNPROTECTED, with a critical alert" (never silently taken as covered)."""
    [row] = [r for r in _readme_table() if r[0] == "`watchdog.json`, `dex/watchdog.json`"]
    assert row[2].startswith("none watched: a position left without an exit is shown UNPROTECTED")
    (workdir / "kobe.toml").write_text('[router]\nexits = "watchdog"\n')
    assert cli(*BUY, "--sl", "90000", "--tp", "100000", "--yes").code == 0
    [before] = json.loads(cli("positions", "--json").out)
    assert before["protection"] == "watchdog (needs a running engine)"
    (workdir / "data" / "watchdog.json").unlink()
    [after] = json.loads(cli("positions", "--json").out)
    assert after["protection"] == "UNPROTECTED"
    r = cli("run", "--headless", "--ticks", "1")
    assert r.code == 0, r.err
    alerts = [line for line in r.out.splitlines() if "alert  CRITICAL" in line]
    assert len(alerts) == 1 and after["entry_client_id"] in alerts[0]
    assert "is UNPROTECTED" in alerts[0]


def test_a_lost_dex_markets_file_is_refused_while_the_dex_account_holds_orders_on_them(
    cli: CliRunner, workdir: Path
) -> None:
    """README, "Data files": `dex/markets.json` missing: "the DEX account refuses if it holds
    orders on them" (exit 1, nothing reset)."""
    [row] = [r for r in _readme_table() if r[0] == "`dex/markets.json`"]
    assert row[2] == "the DEX account refuses if it holds orders on them"
    assert cli("run", "--headless", "--ticks", "10").code == 0
    state = workdir / "data" / "dex" / "state.json"
    assert json.loads(state.read_text())["orders"]  # the strategies' exits rest on the DEX
    before = state.read_bytes()
    (workdir / "data" / "dex" / "markets.json").unlink()
    r = cli("run", "--headless", "--ticks", "1")
    assert r.code == 1 and "not a paper market" in r.err and "was not reset" in r.err
    assert state.read_bytes() == before


def test_every_file_kobe_writes_has_its_row_in_the_readme_table(
    cli: CliRunner, workdir: Path
) -> None:
    """README, "Data files": "Everything lives under the data dir ... Each file has one loader
    and one rule": a session that trades with locally watched exits, runs both strategies on a
    copy feed from a file, reads its statistics and trips the switch writes no file the table
    leaves out."""
    from fnmatch import fnmatch

    (workdir / "kobe.toml").write_text(
        '[router]\nexits = "watchdog"\n[strategies.copy_trading.feed]\nkind = "jsonl"\n'
    )
    buy = "trade --symbol BTC/USDT --side buy --type market --quote 15 --sl 90000 --tp 99000"
    assert cli(*buy.split(), "--yes").code == 0
    assert cli("run", "--headless", "--ticks", "100").code == 0  # trades close
    assert cli("stats").code == 0 and cli("risk", "trip", "--reason", "test").code == 0
    data = workdir / "data"
    written = sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.is_file())
    named = [n for row in _readme_table() for n in re.findall(r"`([^`]+)`", row[0])]
    assert len(named) == len(set(named)), named  # one row a file: its one rule
    assert {"watchdog.json", "copy/*.offset", "stats_cache.json"} <= set(named)
    assert {"watchdog.json", "stats_cache.json", "risk_commands.jsonl"} <= set(written), written
    assert [f for f in written if not any(fnmatch(f, n) for n in named)] == []
