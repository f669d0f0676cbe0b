"""``kobe trade`` in testnet against the Binance-compatible simulator on 127.0.0.1, driven
through the real ccxt: exactly one entry and one OCO, whatever faults come first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.router import entry_of
from tests.binance_sim import BinanceSim, SimOrder
from tests.conftest import CliRunner
from tests.test_ccxt_contract import sim_env

TRADE = [
    "trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15",
    "--sl", "90000", "--tp", "100000", "--yes", "--json",
]  # fmt: skip


@pytest.fixture
def sim() -> Iterator[BinanceSim]:
    with BinanceSim() as s:
        yield s


@pytest.fixture
def fast(workdir: Path) -> dict[str, str]:
    """A config with a short client timeout, so a lost answer costs a fraction of a second."""
    (workdir / "kobe.toml").write_text("[exchange]\ntimeout_ms = 400\n")
    return {}


def placed(sim: BinanceSim) -> tuple[list[SimOrder], list[SimOrder]]:
    entries = [o for o in sim.orders.values() if o.list_id == -1]
    legs = [o for o in sim.orders.values() if o.list_id != -1]
    return entries, legs


def test_exactly_one_entry_and_one_oco(
    cli: CliRunner, sim: BinanceSim, fast: dict[str, str]
) -> None:
    r = cli(*TRADE, env=sim_env(sim))
    assert r.code == 0, r.err
    out = json.loads(r.out)
    entries, legs = placed(sim)
    assert len(entries) == 1 and len(legs) == 2
    cid = out["entry"]["client_id"]
    assert {o.client_id for o in legs} == {f"{cid}tp", f"{cid}sl"}
    assert all(entry_of(x["client_id"]) == cid for x in out["exits"])
    assert out["plan"]["exits"] == "native_oco"


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "late", "delay": 1.0, "method": "POST", "path": "/api/v3/order"},
        {"kind": "drop", "method": "POST", "path": "/api/v3/order"},
        {
            "kind": "status",
            "status": 503,
            "body": "Service Unavailable",
            "method": "POST",
            "path": "/api/v3/order",
        },
        {
            "kind": "status",
            "status": 429,
            "retry_after": 0.2,
            "method": "POST",
            "path": "/api/v3/order",
        },
    ],
    ids=["timeout-after-accept", "connection-lost-after-accept", "503", "429"],
)
def test_faults_never_double_the_entry(
    cli: CliRunner, sim: BinanceSim, fast: dict[str, str], workdir: Path, fault: dict[str, object]
) -> None:
    kind = str(fault.pop("kind"))
    sim.inject(kind, **fault)  # type: ignore[arg-type]
    r = cli(*TRADE, env=sim_env(sim))
    assert r.code == 0, r.err
    entries, legs = placed(sim)
    assert len(entries) == 1, "one fault must never create two orders"
    assert len(legs) == 2
    events = [
        json.loads(x)["event"]
        for x in (workdir / "data" / "logs" / "orders.jsonl").read_text().splitlines()
    ]
    if kind in ("late", "drop"):
        assert events[:2] == ["intent", "unknown"]  # journaled as unknown, then looked up


def test_wrong_keys_end_in_an_authentication_error_and_no_order(
    cli: CliRunner, sim: BinanceSim, fast: dict[str, str]
) -> None:
    r = cli(*TRADE, env=sim_env(sim, BINANCE_SECRET="not-the-secret-at-all"))
    assert r.code == 1
    assert "uthentication" in r.err
    assert sim.orders_created == 0
    assert "not-the-secret-at-all" not in r.err + r.out


def test_kobe_run_with_keys_the_exchange_refuses_does_not_start(
    cli: CliRunner, sim: BinanceSim, fast: dict[str, str], workdir: Path
) -> None:
    """An engine whose keys the exchange refuses could neither trade nor protect a position:
    it ran on (the unsigned ping answered), said 'done' and exited 0. It stops at its start."""
    r = cli("run", "--headless", "--ticks", "2", env=sim_env(sim, BINANCE_SECRET="wrong" * 8))
    assert r.code == 1, r.out
    assert "kobe run: the engine did not start: binance: authentication failed" in r.err
    assert "engine running" not in r.out and "done:" not in r.out
    assert "wrong" * 8 not in r.out + r.err
    assert sim.orders_created == 0


def test_a_symbol_the_exchange_does_not_list_is_refused_naming_it(
    cli: CliRunner, sim: BinanceSim, workdir: Path
) -> None:
    (workdir / "kobe.toml").write_text('symbols = ["BTC/USDT", "DOGE/USDT"]\n')
    for argv in (TRADE, ["run", "--headless", "--ticks", "3"]):
        r = cli(*argv, env=sim_env(sim))
        assert r.code == 2, r.err
        assert "symbols: DOGE/USDT has no spot market on binance (testnet)" in r.err
    assert sim.orders_created == 0


def test_symbols_are_checked_from_the_markets_already_loaded_not_per_tick(
    cli: CliRunner, sim: BinanceSim, workdir: Path
) -> None:
    (workdir / "kobe.toml").write_text('symbols = ["BTC/USDT", "ETH/USDT"]\n')
    r = cli("run", "--headless", "--ticks", "5", env=sim_env(sim))
    assert r.code == 0, r.err
    assert sim.count("GET", "/api/v3/exchangeInfo") == 1
