"""The TP/SL Bybit and OKX hold for an entry, dropped or unreadable: never believed, never sold
twice.

- OKX: the TP/SL algo an entry was given holds the take-profit alone (its stop dropped as the
  entry filled, or amended away later). Kobe reads what the algo holds, never what the entry was
  sent with: the position is no longer shown covered by a stop nobody holds; the lone
  take-profit is cancelled, the local watchdog guards both, and the stop sells once. (Bybit's
  legs are separate orders, each listed with its own status: tests/test_attached_exits_faults.py.)
- Bybit and OKX: the read of the armed legs answered with an error code says nothing of them:
  never their refusal (the watchdog would sell beside the exchange's stop).

The real ccxt drives ``kobe`` (testnet mode, ``KOBE_EXCHANGE_URL``) against the simulators on
127.0.0.1 (the test ids carry the exchange's name).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests import okx_sim
from tests import test_ccxt_contract_v5 as contract
from tests import test_trade_testnet_v5 as v5
from tests.conftest import CliRunner
from tests.test_attached_exits_faults import LEGS_READ, journal, place, run, sells, trades
from tests.test_ccxt_contract_v5 import VENUES, Venue, sim_env

OKX = VENUES["okx"]
fast = v5.fast  # the fixture: a short client timeout
venue = contract.venue  # each test taking them runs against Bybit's and OKX's simulators
sim = contract.sim


def _drop_the_stop(server: Any) -> None:
    """The exchange's algo now holds the take-profit alone (``conditional``, no SL trigger)."""
    for order_id, order in list(server.book.orders.items()):
        if order.role == "sl":
            del server.book.orders[order_id]


def _protection(cli: CliRunner, env: dict[str, str]) -> tuple[str, dict[str, str]]:
    [position] = json.loads(cli("positions", "--json", env=env).out)
    return position["protection"], {x["client_id"][-2:]: x["status"] for x in position["exits"]}


@pytest.mark.parametrize("when", ["as-the-entry-fills", "after-the-pair-was-confirmed"])
def test_an_okx_algo_holding_the_take_profit_alone_is_no_stop(
    cli: CliRunner, fast: None, workdir: Path, when: str
) -> None:
    """Before: the legs were the entry's triggers, whatever the algo held: ``kobe positions``
    showed ``protection: exchange`` with the stop ``open`` while no stop existed, and the price
    went through it with nothing sold."""
    with OKX.make() as server:
        env = sim_env(OKX, server)
        if when == "as-the-entry-fills":
            server.inject(
                "before", method="GET", path=okx_sim.ALGO_PENDING,
                action=lambda: _drop_the_stop(server),
            )  # fmt: skip
            out = place(cli, OKX, env)
            assert out["watched"] is True
            assert any("EXCHANGE EXITS NOT PLACED" in n for n in out["notes"]), out["notes"]
        else:
            out = place(cli, OKX, env)
            assert _protection(cli, env) == ("exchange", {"tp": "open", "sl": "open"})
            _drop_the_stop(server)
            run(cli, env)
        cid = out["entry"]["client_id"]
        protection, exits = _protection(cli, env)
        assert protection == "watchdog (needs a running engine)", (protection, exits)
        assert exits["sl"] != "open", exits
        [tp] = server.book.exits()
        assert tp.status == "canceled"  # the lone take-profit, cancelled by Kobe
        cancels = [e for e in journal(workdir) if (e["event"], e["client_id"]) == ("cancel", cid)]
        assert cancels == []  # the entry itself untouched
        server.set_price(OKX.market_id, Decimal(89000))  # through the stop the algo lost
        run(cli, env)
        assert [(o.client_id, o.executed > 0) for o in sells(server)] == [(f"{cid}sl", True)]
        assert len(trades(workdir)) == 1 and Decimal(trades(workdir)[0]["pnl"]) < 0
        run(cli, env)
        assert len(sells(server)) == 1 and server.orders_created == 2  # the entry, one stop


# ---------------------------------------------------------------------------------------------
# The legs' read refused: nothing is known of them, never their refusal


def _refused_read(name: str) -> dict[str, Any]:
    """An error code in an HTTP 200 answer to the read of the armed TP/SL."""
    if name == "bybit":
        return {"retCode": 10001, "retMsg": "params error", "result": {}, "time": 0}
    return {"code": "51000", "msg": "Parameter instId error", "data": []}


@pytest.mark.parametrize("when", ["after-the-fill", "on-a-later-tick"])
def test_a_refused_read_of_the_legs_never_hands_the_position_to_a_second_seller(
    cli: CliRunner, venue: Venue, sim: Any, fast: None, workdir: Path, when: str
) -> None:
    """The exchange answers the read of the armed TP/SL with an error code (a params error,
    HTTP 200). Before: taken for the exchange refusing the exits, the position went to the
    watchdog while the exchange still held its TP/SL, and both sold at the stop: two sells of
    one position. Now: their state is unknown, read again next tick; one sell."""
    env = sim_env(venue, sim)
    path, query = LEGS_READ[venue.name]
    refused = {"status": 200, "body": _refused_read(venue.name), "method": "GET", "path": path}
    if when == "after-the-fill":
        sim.inject(**refused, query=query, times=5)
        out = place(cli, venue, env)
        assert any("OUTCOME UNKNOWN" in n for n in out["notes"]), out["notes"]
    else:
        out = place(cli, venue, env)
        assert _protection(cli, env)[0] == "exchange"
        sim.inject(**refused, query=query, times=5)
        run(cli, env)
    assert {leg.status for leg in sim.book.exits()} == {"untriggered"}  # still armed there
    sim.faults.clear()
    sim.set_price(venue.market_id, Decimal(89000))  # the exchange's stop fires
    run(cli, env)
    run(cli, env)
    assert [o.role for o in sells(sim)] == ["sl"], [(o.client_id, o.role) for o in sells(sim)]
    assert sim.orders_created == 1  # the entry; nothing of Kobe's sold
    assert len(trades(workdir)) == 1 and Decimal(trades(workdir)[0]["pnl"]) < 0
    assert ("fill", f"{out['entry']['client_id']}sl") in {
        (e["event"], e["client_id"]) for e in journal(workdir)
    }
