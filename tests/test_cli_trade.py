"""``kobe trade`` / ``orders`` / ``cancel`` / ``risk`` end to end, in paper mode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.journal import read_csv_rows
from tests.conftest import ROOT, CliRunner

BUY = ["trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15"]
EXITS = ["--sl", "80000", "--tp", "110000"]


def journal(workdir: Path) -> list[dict[str, Any]]:
    path = workdir / "data" / "logs" / "orders.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_paper_trade_places_entry_and_oco_and_journals_both_files(
    cli: CliRunner, workdir: Path
) -> None:
    r = cli(*BUY, *EXITS, "--yes")
    assert r.code == 0, r.err
    assert "[PAPER on binance] plan:" in r.out
    assert "BUY 0.00015 BTC BTC/USDT market (wallet cex_binance, source cli)" in r.out
    assert "exits: TP 110000, SL 80000 via native OCO" in r.out
    lines = journal(workdir)
    rows = read_csv_rows(workdir / "data" / "logs" / "orders.csv")
    assert [(x["event"], x["client_id"]) for x in lines] == [
        (x["event"], x["client_id"]) for x in rows
    ]
    assert [x["event"] for x in lines] == [
        "intent",
        "ack",
        "fill",
        "intent",
        "intent",
        "ack",
        "ack",
    ]
    orders = json.loads(cli("orders", "--json").out)
    assert sorted(o["type"] for o in orders) == ["limit_maker", "stop_loss_limit"]
    assert set(orders[0]) == {
        "id",
        "client_id",
        "symbol",
        "side",
        "type",
        "qty",
        "price",
        "filled",
        "status",
        "created_at",
        "wallet",
        "source",
    }
    assert orders[0]["created_at"].endswith("Z") and orders[0]["wallet"] == "cex_binance"
    audit = [json.loads(x) for x in (workdir / "data" / "audit.jsonl").read_text().splitlines()]
    assert [(a["action"], a["source"], a["outcome"]) for a in audit] == [
        ("order", "cli", "placed"),
        ("exit_order", "cli", "placed"),  # every order sent is audited, exits too
    ]


def test_orders_empty_is_an_empty_array(cli: CliRunner) -> None:
    r = cli("orders", "--json")
    assert r.code == 0 and json.loads(r.out) == []
    assert cli("orders").out.strip() == "No open orders"


def test_limit_then_cancel_by_client_id(cli: CliRunner, workdir: Path) -> None:
    r = cli(
        "trade",
        "--symbol",
        "ETH/USDT",
        "--side",
        "buy",
        "--type",
        "limit",
        "--price",
        "3000",
        "--quote",
        "12",
        "--yes",
        "--json",
    )
    assert r.code == 0, r.err
    entry = json.loads(r.out)["entry"]
    assert entry["status"] == "open"
    r = cli("cancel", entry["client_id"], "--yes")
    assert r.code == 0 and f"cancelled {entry['id']}" in r.out
    assert json.loads(cli("orders", "--json").out) == []
    r = cli("cancel", entry["id"], "--yes")
    assert r.code == 1 and f"order {entry['id']}: not open (last known state: canceled)" in r.err
    r = cli("cancel", "nope-123", "--yes")
    assert r.code == 1 and "order nope-123: unknown" in r.err
    assert journal(workdir)[-1]["event"] == "cancel"


def test_cancel_all_confirmed(cli: CliRunner) -> None:
    for price in ("3000", "3010"):
        cli(
            "trade",
            "--symbol",
            "ETH/USDT",
            "--side",
            "buy",
            "--type",
            "limit",
            "--price",
            price,
            "--quote",
            "6",
            "--yes",
        )
    assert len(json.loads(cli("orders", "--json").out)) == 2
    assert cli("cancel", "--all").code == 2  # no terminal, no --yes: nothing cancelled
    assert len(json.loads(cli("orders", "--json").out)) == 2
    assert cli("cancel", "--all", "--yes").code == 0
    assert json.loads(cli("orders", "--json").out) == []


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (
            [*BUY[:-2], "--quote", "50", "--yes"],
            "insufficient balance: need 50 USDT, wallet cex_binance has 20",
        ),
        ([*BUY, "--sl", "99999999", "--yes"], "stop-loss 99999999 must be below the entry"),
        (  # README: above risk.max_risk_per_trade_pct it is refused, never cut down
            [*BUY[:-2], "--risk", "5", "--sl", "90000", "--yes"],
            "risk 5% is above the per-trade cap 2% (risk.max_risk_per_trade_pct)",
        ),
        (
            [*BUY, "--wallet", "sniper_sol", "--yes"],
            "wallet sniper_sol trades on the Solana DEX venue, not on binance",
        ),
        ([*BUY, "--wallet", "vault", "--yes"], "wallet vault (vault) may not trade"),
        (
            [
                "trade",
                "--symbol",
                "BTC/USDT",
                "--side",
                "sell",
                "--type",
                "market",
                "--quote",
                "15",
                "--yes",
            ],
            "short selling is refused",
        ),
    ],
)
def test_refusals_exit_1_with_the_reason(cli: CliRunner, argv: list[str], needle: str) -> None:
    r = cli(*argv)
    assert r.code == 1, (r.out, r.err)
    assert needle in r.err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([*BUY, "--price", "5", "--yes"], "--price: only for limit orders"),
        (
            ["trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--yes"],
            "exactly one of --quote AMOUNT or --risk PCT",
        ),
        ([*BUY[:-2], "--risk", "1", "--yes"], "--risk needs --sl"),
        ([*BUY[:-2], "--quote", "abc", "--yes"], "--quote: not a plain decimal number (got 'abc')"),
        (
            ["trade", "--symbol", "BTC/USDT", "--side", "long", "--type", "market", "--quote", "5"],
            "--side: must be buy or sell",
        ),
        (BUY, "no terminal to confirm on: pass --yes"),
        (
            ["trade", "--symbol", "DOGE/USDT", "--side", "buy", "--type", "market", "--quote", "15",
             "--yes"],
            "--symbol: DOGE/USDT has no spot market on binance (paper)",
        ),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2_and_write_nothing(
    cli: CliRunner, workdir: Path, argv: list[str], needle: str
) -> None:
    r = cli(*argv)
    assert r.code == 2, (r.out, r.err)
    assert needle in r.err
    assert not (workdir / "data").exists()


def test_trade_from_a_toml_file(cli: CliRunner, workdir: Path) -> None:
    (workdir / "t.toml").write_text(
        'symbol = "ETH/USDT"\nside = "buy"\ntype = "limit"\nprice = 3000\nquote = 10\n'
    )
    r = cli("trade", "--file", str(workdir / "t.toml"), "--yes", "--json")
    assert r.code == 0, r.err
    assert Decimal(json.loads(r.out)["entry"]["price"]) == 3000
    (workdir / "bad.toml").write_text('symbol = "ETH/USDT"\nsize = 3\n')
    assert "unknown key(s) size" in cli("trade", "--file", str(workdir / "bad.toml"), "--yes").err


def test_a_json_trade_file_with_the_readmes_fields_and_flags_overriding_it(
    cli: CliRunner, workdir: Path
) -> None:
    """README: "`--file` reads the same fields (`symbol`, `side`, ...) from a TOML or JSON file;
    flags override it"."""
    import re

    from engine.cli.trade import TRADE_KEYS

    readme = " ".join((ROOT / "README.md").read_text().split())
    listed = re.search(r"`--file` reads the same fields \(([^)]*)\) from a TOML or JSON", readme)
    assert listed is not None and tuple(re.findall(r"`(\w+)`", listed.group(1))) == TRADE_KEYS
    trade = {"symbol": "ETH/USDT", "side": "buy", "type": "limit", "price": "3000", "quote": "10"}
    trade |= {"sl": "2900", "tp": "3300", "wallet": "cex_binance", "reason": "from a file"}
    (workdir / "t.json").write_text(json.dumps(trade))
    r = cli("trade", "--file", str(workdir / "t.json"), "--price", "2990", "--yes", "--json")
    assert r.code == 0, r.err
    entry = json.loads(r.out)["entry"]
    assert Decimal(entry["price"]) == 2990  # the flag, not the file
    [intent] = [
        json.loads(line)
        for line in (workdir / "data" / "logs" / "orders.jsonl").read_text().splitlines()
        if '"intent"' in line and '"limit"' in line
    ]
    assert (intent["symbol"], intent["wallet"], intent["reason"]) == (
        "ETH/USDT",
        "cex_binance",
        "from a file",
    )


def test_kill_switch_blocks_trade_until_reset(cli: CliRunner, workdir: Path) -> None:
    assert cli("risk", "trip", "--reason", "X").code == 0
    r = cli(*BUY, "--yes")
    assert r.code == 1 and "kill switch is TRIPPED: manual: X" in r.err
    assert cli("risk", "reset", "--yes").code == 0
    assert cli(*BUY, "--yes").code == 0
    actions = [
        json.loads(x)["action"] for x in (workdir / "data" / "audit.jsonl").read_text().splitlines()
    ]
    assert actions == ["kill_switch_trip", "kill_switch_reset", "order"]


def test_live_without_every_condition_is_refused_naming_them(cli: CliRunner, workdir: Path) -> None:
    r = cli(
        *BUY,
        "--yes",
        env={"KOBE_MODE": "live", "BINANCE_KEY": "k" * 12, "BINANCE_SECRET": "s" * 12},
    )
    assert r.code == 1
    assert "ALLOW_LIVE is not 1" in r.err and "--confirm-live" in r.err
    assert not (workdir / "data").exists()  # nothing ran in paper instead


def test_a_running_engine_holds_the_data_dir(cli: CliRunner, workdir: Path) -> None:
    from engine.lock import DataDirLock

    with DataDirLock(workdir / "data", "kobe run"):
        r = cli(*BUY, "--yes")
    assert r.code == 1 and f"pid {os.getpid()} (kobe run)" in r.err


CRASH = """
import os, signal, sys
from engine.exchange.paper import PaperExchange
real = PaperExchange.create_order
def crashing(self, *a, **kw):
    if {after}:
        real(self, *a, **kw)
    os.kill(os.getpid(), signal.SIGKILL)
PaperExchange.create_order = crashing
from engine.cli import main
sys.exit(main({argv!r}))
"""


@pytest.mark.parametrize("sent", [True, False], ids=["killed-after-send", "killed-before-send"])
def test_sigkill_between_intent_and_ack_reconciles_without_a_second_order(
    cli: CliRunner, workdir: Path, sent: bool
) -> None:
    code = CRASH.format(after=sent, argv=[*BUY, *EXITS, "--yes"])
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=workdir, env=env, capture_output=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL
    assert [x["event"] for x in journal(workdir)] == ["intent"]
    cid = journal(workdir)[0]["client_id"]
    r = cli("orders", "--json")  # any start reconciles
    assert r.code == 0, r.err
    events = [(x["event"], x["client_id"]) for x in journal(workdir)]
    state = json.loads((workdir / "data" / "paper" / "state.json").read_text())
    entries = [o for o in state["orders"] if o["client_id"] == cid]
    if sent:
        assert len(entries) == 1  # exactly one order, never a second
        assert events[:3] == [("intent", cid), ("ack", cid), ("fill", cid)]
        # a read-only command never sends: it says the exits are due
        assert json.loads(r.out) == [] and "would be placed" in r.err
        r = cli("run", "--headless", "--ticks", "1")  # a sending session places them
        assert r.code == 0, r.err
        mine = [o for o in json.loads(cli("orders", "--json").out) if cid in o["client_id"]]
        assert sorted(o["type"] for o in mine) == ["limit_maker", "stop_loss_limit"]
    else:
        assert entries == []
        assert events == [("intent", cid), ("reject", cid)]
        assert "never sent" in journal(workdir)[-1]["reason"]
    settled = len(journal(workdir))
    cli("orders")
    assert len(journal(workdir)) == settled  # a second start settles nothing twice


@pytest.mark.parametrize(("offset", "limit"), [("0.5", "89550.00"), ("1", "89100.00")])
def test_the_stop_legs_limit_is_stop_limit_offset_pct_beyond_its_stop(
    cli: CliRunner, workdir: Path, offset: str, limit: str
) -> None:
    """kobe.toml's `router.stop_limit_offset_pct`: "a stop leg's limit, this far beyond its
    stop" (README: 0.5 % as shipped)."""
    (workdir / "kobe.toml").write_text(f"[router]\nstop_limit_offset_pct = {offset}\n")
    buy = "trade --symbol BTC/USDT --side buy --type market --quote 15 --sl 90000 --tp 100000"
    assert cli(*buy.split(), "--yes").code == 0
    [stop] = [o for o in json.loads(cli("orders", "--json").out) if o["type"] == "stop_loss_limit"]
    assert stop["price"] == limit
