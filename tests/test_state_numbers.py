"""Numbers in Kobe's own files go through the bounded parser too: a damaged file holding NaN, a
negative quantity or a 20-digit retry count is refused naming the file (or, in a journal, the line
is skipped with a log line), never a traceback, a hang or a position of negative size."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from engine.fsutil import StateError
from engine.watchdog import WATCHDOG_FILE, Watchdog
from tests.conftest import CliRunner

ITEM = {
    "entry_client_id": "kobeabc",
    "entry_id": "5",
    "symbol": "SOL/USDT",
    "side": "buy",
    "qty": "0.038",
    "take_profit": "300",
    "stop_loss": "160",
    "wallet": "cex_binance",
    "source": "cli",
    "exits": "watchdog",
    "state": "watching",
    "attempts": 0,
    "retry_at": None,
    "last_error": "",
    "replaces": False,
    "mode": "paper",
}


def test_a_sound_watchdog_item_loads(tmp_path: Path) -> None:
    (tmp_path / WATCHDOG_FILE).write_text(json.dumps({"items": [ITEM]}))
    assert [i.entry_client_id for i in Watchdog(tmp_path, "paper").items()] == ["kobeabc"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        # 2**attempts is the backoff: a 20-digit count would hang the engine at the next refusal
        ("attempts", "99999999999999999999"),
        ("attempts", -1),
        ("attempts", 1.5),
        ("qty", "-5"),
        ("qty", "NaN"),
        ("qty", "1e999"),
        ("take_profit", "-5"),
        ("stop_loss", "Infinity"),
    ],
)
def test_absurd_numbers_in_the_watchdog_are_refused_naming_the_file(
    tmp_path: Path, key: str, value: object
) -> None:
    (tmp_path / WATCHDOG_FILE).write_text(json.dumps({"items": [{**ITEM, key: value}]}))
    with pytest.raises(StateError, match=re.escape(WATCHDOG_FILE)):
        Watchdog(tmp_path, "paper")


BUY = ("trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "7")


def set_in_file(path: Path, where: tuple[object, ...], value: object) -> None:
    """Damage one value of a JSON file, found by its keys and indexes."""
    doc = json.loads(path.read_text())
    node: Any = doc
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        *((f, v) for f in ("filled", "qty", "avg_price") for v in ("NaN", "-5", "1e999")),
        *(("fee", v) for v in ("NaN", "1e999", "Infinity")),  # a fee is signed (a rebate)
    ],
)
def test_an_absurd_number_in_the_order_journal_is_a_skipped_line(
    cli: CliRunner, workdir: Path, field: str, value: str
) -> None:
    assert cli(*BUY, "--yes").code == 0
    journal = workdir / "data" / "logs" / "orders.jsonl"
    before = json.loads(cli("positions", "--json").out)
    fill = [json.loads(line) for line in journal.read_text().splitlines()][-1]
    assert fill["event"] == "fill"
    (workdir / "data" / "positions.json").unlink()  # the book is rebuilt from the whole journal
    with journal.open("a") as fh:
        fh.write(json.dumps({**fill, field: value}) + "\n")
    for argv in (("positions", "--json"), ("orders", "--json"), ("cancel", "--all", "--yes")):
        r = cli(*argv)
        assert "Traceback" not in r.err and r.code in (0, 1), (argv, r.err)
    assert json.loads(cli("positions", "--json").out) == before
    r = cli("run", "--headless", "--ticks", "1")
    assert r.code == 0, r.err


MARKET = {
    "base": "BTC",
    "quote": "USDT",
    "tick_size": "0.01",
    "step_size": "0.00001",
    "min_qty": "0.00001",
    "max_qty": "9000",
    "min_notional": "5",
    "start_price": "95000",
    "annual_volatility": "0.55",
    "book_level_quote": "40000",
    "book_level_gap_bps": "1",
}


@pytest.mark.parametrize("value", ["NaN", "-5", "1e999", "0"])
@pytest.mark.parametrize("key", ["tick_size", "start_price", "book_level_quote"])
def test_absurd_numbers_in_the_dex_markets_are_refused_naming_the_file(
    tmp_path: Path, key: str, value: str
) -> None:
    from engine.exchange.dex import load_dex_markets
    from engine.exchange.paper import PaperStateError

    path = tmp_path / "dex" / "markets.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"markets": {"BTC/USDT": MARKET}}))
    assert load_dex_markets(tmp_path)["BTC/USDT"].start_price == 95000
    path.write_text(json.dumps({"markets": {"BTC/USDT": {**MARKET, key: value}}}))
    with pytest.raises(PaperStateError, match=r"markets\.json"):
        load_dex_markets(tmp_path)


@pytest.mark.parametrize("value", ["-100000", "-1", "NaN", "1e999"])
@pytest.mark.parametrize("field", ["qty", "entry_price", "filled", "entry_fee"])
def test_an_absurd_number_in_the_positions_cache_rebuilds_the_book(
    cli: CliRunner, workdir: Path, field: str, value: str
) -> None:
    """A negative price or quantity in the cache made a position's cost negative: its wallet
    could spend more than its balance (a 30 USDT buy from a 20 USDT wallet filled)."""
    assert cli(*BUY, "--yes").code == 0
    assert cli(*BUY, "--yes").code == 0
    before = json.loads(cli("positions", "--json").out)
    path = workdir / "data" / "positions.json"
    cache = json.loads(path.read_text())
    for pos in cache["positions"]:
        pos[field] = value
    path.write_text(json.dumps(cache))
    r = cli(*BUY[:-1], "30", "--yes")  # more than the wallet's 20
    assert r.code == 1 and "Traceback" not in r.err
    assert "can spend 6.69 USDT: balance 20.00, open 13.31" in r.err
    assert json.loads(cli("positions", "--json").out) == before


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("balances", "USDT", "free"), "NaN"),
        (("balances", "USDT", "free"), "-5"),
        (("balances", "BTC", "locked"), "1e999"),
        (("entry_prices", "BTC"), "-3"),
        (("feed", "prices", "BTC/USDT"), "-1"),
        (("feed", "prices", "BTC/USDT"), "NaN"),
        (("orders", 0, "qty"), "NaN"),
        (("orders", 0, "fills", 0, "price"), "-95000"),
    ],
)
def test_absurd_numbers_in_the_paper_account_are_refused_naming_the_file(
    cli: CliRunner, workdir: Path, where: tuple[object, ...], value: str
) -> None:
    """NaN in a balance or a feed price was an internal error naming no file; a negative
    balance or price was taken as is (the account 'had -5 free')."""
    assert cli(*BUY, "--sl", "90000", "--tp", "100000", "--yes").code == 0
    path = workdir / "data" / "paper" / "state.json"
    set_in_file(path, where, value)
    damaged = path.read_bytes()
    for argv in ((*BUY, "--yes"), ("orders",), ("run", "--headless", "--ticks", "1")):
        r = cli(*argv)
        assert r.code == 1 and "state.json is unreadable" in r.err, (argv, r.err)
    assert path.read_bytes() == damaged


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("balances", "NaN"),
        ("balances", "-5"),
        ("balances", "1e999"),
        ("fees_day", "NaN"),
        ("fees_paid_usd", "-1"),
        ("realized_pnl_usd", "Infinity"),
    ],
)
def test_absurd_numbers_in_the_wallets_snapshot_are_refused_naming_the_file(
    cli: CliRunner, workdir: Path, key: str, value: str
) -> None:
    """NaN in one balance was an internal error naming no file; -5 gave a wallet a negative
    balance, shown and counted in the equity."""
    assert cli("run", "--headless", "--ticks", "1").code == 0
    path = workdir / "data" / "wallets_runtime.json"
    doc = json.loads(path.read_text())
    if key == "balances":
        doc["state"]["balances"]["cex_binance"] = value
    else:
        doc["state"][key] = value
    path.write_text(json.dumps(doc))
    for argv in (("wallets",), (*BUY, "--yes"), ("run", "--headless", "--ticks", "1")):
        r = cli(*argv)
        assert r.code == 1 and "wallets_runtime.json is damaged" in r.err, (argv, r.err)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("memecoin_farming", "provider", "coins", 0, "price_usd"), "NaN"),
        (("memecoin_farming", "provider", "coins", 0, "vol_bps"), 10**20),
        (("copy_trading", "feed", "prices", "WIF/USDC"), "-2"),
        (("copy_trading", "feed", "held"), {"JUP/USDC": -7}),
        (("copy_trading", "prices"), {"WIF/USDC": "1e999"}),
    ],
)
def test_absurd_numbers_in_the_strategies_state_are_refused_naming_the_file(
    cli: CliRunner, workdir: Path, where: tuple[object, ...], value: object
) -> None:
    """NaN in a stub coin's price stopped the engine at its first tick on a decimal error
    naming no file; a 20-digit volatility or a negative price ran on."""
    assert cli("run", "--headless", "--ticks", "30").code == 0
    path = workdir / "data" / "strategies_state.json"
    set_in_file(path, where, value)
    r = cli("run", "--headless", "--ticks", "1")
    assert r.code == 1 and "strategies_state.json" in r.err, r.err
