"""Read-only commands hold a venue that cannot send (issue 14, item 1).

`kobe orders` used to build a full trading session (`confirmed = ... or not writes`) whose start-up
reconciliation placed pending exits and fired watchdog sells, in live too, without
`--confirm-live` and without an audit line. Now it holds a :class:`ReadOnlyExchange`: no method
to create or cancel, and for ccxt an HTTP layer that refuses anything but GET. It says what a
sending session would do instead.
"""

from __future__ import annotations

import decimal
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from engine.exchange.base import Exchange, ExchangeReader, NotSupported, ReadOnlyExchange
from engine.exchange.factory import build_reader
from engine.modes import GateClosed, resolve_settings
from tests.binance_sim import BinanceSim
from tests.conftest import CliRunner
from tests.test_ccxt_contract import sim_env

SEND_METHODS = ("create_order", "create_oco", "cancel_order")
LIMIT_BUY = [
    "trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "limit", "--price", "90000",
    "--quote", "15", "--sl", "80000", "--tp", "120000", "--yes", "--json",
]  # fmt: skip


@pytest.fixture
def sim() -> Iterator[BinanceSim]:
    with BinanceSim() as s:
        yield s


def sends(sim: BinanceSim) -> list[tuple[str, str]]:
    return [(m, p) for m, p in sim.requests if m != "GET"]


def audit_lines(workdir: Path) -> list[dict[str, object]]:
    path = workdir / "data" / "audit.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_a_read_only_venue_has_no_way_to_send(workdir: Path) -> None:
    reader = build_reader(resolve_settings({}, workdir), clock=lambda: datetime.now(UTC))
    try:
        assert isinstance(reader, ReadOnlyExchange) and isinstance(reader, ExchangeReader)
        assert not isinstance(reader, Exchange)
        for name in SEND_METHODS:
            assert not hasattr(reader, name), name
        assert reader.get_balance("USDT") > 0  # the reads work
    finally:
        reader.close()


def test_the_ccxt_reader_refuses_any_request_but_get_before_the_network(
    sim: BinanceSim, workdir: Path
) -> None:
    reader = build_reader(resolve_settings(sim_env(sim), workdir), clock=lambda: datetime.now(UTC))
    try:
        assert reader.get_balance("USDT") > 0
        inner = reader._ReadOnlyExchange__venue  # type: ignore[attr-defined]
        # ccxt's precision helpers change the thread's decimal context: keep it to this test
        with decimal.localcontext():
            with pytest.raises(NotSupported, match="read-only client: POST refused"):
                inner.ccxt.create_order("BTC/USDT", "market", "buy", 0.001)
            with pytest.raises(NotSupported, match="DELETE refused"):
                inner.ccxt.cancel_order("1", "BTC/USDT")
    finally:
        reader.close()
    assert sends(sim) == []


def test_a_live_reader_needs_the_gate_but_not_the_confirmation(workdir: Path) -> None:
    env = {
        "KOBE_MODE": "live",
        "ALLOW_LIVE": "1",
        "BINANCE_KEY": "k" * 64,
        "BINANCE_SECRET": "s" * 64,
    }
    reader = build_reader(resolve_settings(env, workdir), clock=lambda: datetime.now(UTC))
    inner = reader._ReadOnlyExchange__venue  # type: ignore[attr-defined]
    assert inner.read_only and not inner.sandbox
    with pytest.raises(NotSupported, match="POST refused"):  # refused before any connection
        inner.ccxt.fetch("https://api.binance.com/api/v3/order", "POST", {}, "")
    with pytest.raises(GateClosed) as info:
        build_reader(
            resolve_settings({**env, "ALLOW_LIVE": "0"}, workdir), clock=lambda: datetime.now(UTC)
        )
    assert "ALLOW_LIVE is not 1" in info.value.reasons
    assert not any("confirm" in r for r in info.value.reasons)


def test_kobe_orders_says_what_it_would_send_and_sends_nothing(
    cli: CliRunner, sim: BinanceSim, workdir: Path
) -> None:
    env = sim_env(sim)
    r = cli(*LIMIT_BUY, env=env)
    assert r.code == 0, r.err
    entry = json.loads(r.out)["entry"]
    assert entry["status"] == "open" and sim.count("POST", "/api/v3/orderList/oco") == 0
    sim.fill(int(entry["id"]))  # the entry fills while no engine runs: its OCO is now due
    before_sends, before_audit = len(sends(sim)), len(audit_lines(workdir))

    r = cli("orders", "--json", env=env)
    assert r.code == 0, r.err
    assert json.loads(r.out) == []
    assert f"entry {entry['client_id']} (buy" in r.err and "would be placed" in r.err
    assert "not sent by this read-only command" in r.err
    assert len(sends(sim)) == before_sends, "a read-only command sent a request"
    assert len(audit_lines(workdir)) == before_audit

    # the next command that may send places the OCO, and audits it
    r = cli("cancel", "--all", "--yes", env=env)
    assert r.code == 0, r.err
    assert sim.count("POST", "/api/v3/orderList/oco") == 1
    exits = [a for a in audit_lines(workdir) if a["action"] == "exit_order"]
    assert [(a["type"], a["outcome"]) for a in exits] == [("oco", "placed")]


def test_kobe_orders_leaves_a_touched_watchdog_stop_to_a_sending_session(
    cli: CliRunner, sim: BinanceSim, workdir: Path
) -> None:
    (workdir / "kobe.toml").write_text('[router]\nexits = "watchdog"\n')
    env = sim_env(sim)
    r = cli(*LIMIT_BUY[:6], "market", *LIMIT_BUY[9:], env=env)  # a market buy, watched exits
    assert r.code == 0, r.err
    assert json.loads(r.out)["plan"]["exits"] == "watchdog"
    sim.set_price("BTCUSDT", Decimal(79000))  # through the stop-loss
    before = len(sends(sim))
    r = cli("orders", env=env)
    assert r.code == 0, r.err
    assert "stop-loss of" in r.err and "the watchdog would sell" in r.err
    assert len(sends(sim)) == before
    r = cli("cancel", "--all", "--yes", env=env)  # a sending session fires it
    assert r.code == 0, r.err
    assert len(sends(sim)) == before + 1
    fired = [a for a in audit_lines(workdir) if a["action"] == "exit_order"]
    assert len(fired) == 1 and fired[0]["side"] == "sell" and fired[0]["outcome"] == "placed"
