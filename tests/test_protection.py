"""Protective exits never vanish silently (issue 13, items 1 and 3)."""

from __future__ import annotations

import io
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from engine.exchange.base import OrderType, Side
from engine.money import floor_to_step
from engine.position import UNPROTECTED, ExitOrder, Position, protection
from engine.proposal import Source
from engine.watchdog import WatchState
from tests.conftest import ROOT, CliRunner
from tests.test_execution import T0, Rig, entry

README = (ROOT / "README.md").read_text()


def test_a_stop_loss_is_not_dropped_when_the_oco_fails_the_watchdog_closes_at_the_stop(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    placed = rig.engine.submit(
        entry(
            entry_type=OrderType.LIMIT,
            price=Decimal(95),  # rests below the price of 100
            stop_loss=Decimal(90),
            take_profit=Decimal(200),
        )
    )
    cid = placed.entry.client_id
    assert placed.entry.status.is_open
    rig.move("SOL/USDT", "60")  # gaps through the limit and the stop: the OCO is refused
    assert any("could not be placed" in m and "watchdog guards it" in m for _, m in rig.alerts)
    rig.move("SOL/USDT", "61")
    rig.move("SOL/USDT", "62")
    assert [t.trade_id for t in rig.closed] == [cid], "the position must be closed at its stop"
    assert "stop-loss touched" in rig.closed[0].reason
    assert rig.engine.positions() == []
    assert rig.router.watchdog.get(cid) is None


def test_a_refused_exit_backs_off_with_one_alert(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    (tmp_path / "kobe.toml").write_text("")
    rig.router.exits_policy = "watchdog"
    placed = rig.engine.submit(entry())
    cid = placed.entry.client_id
    assert rig.router.watchdog.get(cid).state is WatchState.WATCHING  # type: ignore[union-attr]
    # the SOL is gone from the account (sold by hand): every sell is refused
    sol = floor_to_step(rig.exchange.get_balance("SOL"), Decimal("0.001"))  # on the step
    rig.exchange.create_order(
        "SOL/USDT", Side.SELL, OrderType.MARKET, sol, None, {"client_id": "x1"}
    )
    for _ in range(30):  # 30 minutes below the stop
        rig.move("SOL/USDT", "94")
    refused = [m for _, m in rig.alerts if "exit was refused" in m]
    assert len(refused) == 1 and "insufficient" in refused[0].lower()
    sells = [e for e in rig.router.journal_state().values() if e.client_id == f"{cid}sl"]
    intents = sum(1 for _ in sells)
    assert intents <= 1  # one index entry per client id: count the journal instead
    lines = [e for e in rig.router.journal.events() if e.client_id == f"{cid}sl"]
    attempts = sum(1 for e in lines if e.event == "intent")
    assert 3 <= attempts <= 12, attempts  # backed off: far fewer than one per tick
    assert rig.router.watchdog.get(cid).attempts == attempts  # type: ignore[union-attr]


def test_cancelling_an_oco_leg_leaves_the_position_unprotected_and_says_so(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    placed = rig.engine.submit(entry())
    [pos] = rig.engine.positions()
    assert rig.engine.protection(pos) == "exchange"
    sl = next(o for o in placed.exits if o.client_id.endswith("sl"))
    rig.router.cancel(sl.id, Source.COCKPIT)  # Binance cancels the OCO as a whole
    rig.engine.poll()
    [lost] = rig.engine.unprotected()
    assert lost.entry_client_id == placed.entry.client_id
    critical = [m for sev, m in rig.alerts if sev == "critical" and "UNPROTECTED" in m]
    assert len(critical) == 1 and "SOL/USDT" in critical[0]
    rig.engine.poll()
    assert len([m for sev, m in rig.alerts if "UNPROTECTED" in m]) == 1  # once per episode


def test_a_position_too_small_to_sell_is_dust_flagged_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.router.exits_policy = "watchdog"
    placed = rig.engine.submit(entry())
    cid = placed.entry.client_id
    rig.router.watchdog.update(cid, qty=Decimal("0.0009"))  # a remainder below 0.001 SOL
    rig.move("SOL/USDT", "94")  # the stop is touched: nothing can be sold
    rig.move("SOL/USDT", "94")
    dust = [m for _, m in rig.alerts if "is dust" in m]
    assert len(dust) == 1 and "below the minimum quantity 0.001 SOL" in dust[0]
    assert rig.engine.positions() == [] and [p.entry_client_id for p in rig.engine.book.dust()] == [
        cid
    ]
    assert rig.router.watchdog.get(cid) is None


def test_a_gap_below_the_minimum_value_is_not_dust_it_is_retried(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.router.exits_policy = "watchdog"
    placed = rig.engine.submit(entry(amount=Decimal(6)))  # 0.059 SOL
    cid = placed.entry.client_id
    rig.move("SOL/USDT", "80")  # worth 4.7 USDT: below the 5 USDT minimum, refused
    assert [m for _, m in rig.alerts if "is dust" in m] == []
    refused = [m for sev, m in rig.alerts if sev == "critical" and "exit was refused" in m]
    assert len(refused) == 1
    assert rig.router.watchdog.get(cid) is not None  # still watched
    for _ in range(10):
        rig.move("SOL/USDT", "100")  # the price comes back over the minimum value
        rig.move("SOL/USDT", "94")  # and the stop is touched again: the sell goes through
        if rig.closed:
            break
    assert [t.trade_id for t in rig.closed] == [cid]


BUY = ["trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15"]


def _open_exits(cli: CliRunner) -> dict[str, dict[str, object]]:
    rows = json.loads(cli("orders", "--json").out)
    return {str(o["client_id"])[-2:]: o for o in rows}


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_cancel_of_one_leg_names_the_position_and_prints_every_order_cancelled(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = cli(*BUY, "--sl", "93000", "--tp", "99000", "--yes", "--json")
    assert r.code == 0, r.err
    cid = json.loads(r.out)["entry"]["client_id"]
    sl = _open_exits(cli)["sl"]
    monkeypatch.setattr("sys.stdin", _Terminal("\n"))  # the operator just presses enter
    r = cli("cancel", str(sl["id"]))
    assert r.code == 1 and "nothing cancelled" in r.out  # the default answer is No
    q = r.out.splitlines()[0]
    assert q.startswith("Cancel the exits of position BTC/USDT 0.00014985 (TP 99000, SL 93000)?")
    assert "It will be unprotected. [y/N]" in q
    assert set(_open_exits(cli)) == {"tp", "sl"}
    r = cli("cancel", str(sl["id"]), "--yes")
    assert r.code == 0, r.err
    assert f"({cid}sl)" in r.out and f"({cid}tp): its OCO sibling" in r.out
    assert "is now UNPROTECTED" in r.err and f"kobe exits {cid}" in r.err
    assert _open_exits(cli) == {}
    [pos] = json.loads(cli("positions", "--json").out)
    assert pos["exits"] and all(x["status"] == "canceled" for x in pos["exits"])
    assert pos["protection"] == "UNPROTECTED"


def test_kobe_exits_replaces_the_pair_and_the_position_stays_covered(cli: CliRunner) -> None:
    r = cli(*BUY, "--sl", "93000", "--tp", "99000", "--yes", "--json")
    cid = json.loads(r.out)["entry"]["client_id"]
    r = cli("exits", cid, "--sl", "92000", "--tp", "98000", "--yes")
    assert r.code == 0, r.err
    legs = _open_exits(cli)
    assert {k: str(v["price"]) for k, v in legs.items()}["tp"] == "98000"
    assert set(legs) == {"tp", "sl"}
    [pos] = json.loads(cli("positions", "--json").out)
    live = [x for x in pos["exits"] if x["status"] == "open"]
    assert len(live) == 2 and pos["protection"] == "exchange"
    r = cli("exits", "nosuchentry", "--sl", "1", "--yes")
    assert r.code == 1 and "not open" in r.err
    r = cli("exits", cid, "--yes")
    assert r.code == 2


def test_kobe_exits_that_the_exchange_refuses_leave_the_watchdog_covering(
    cli: CliRunner, workdir: Path
) -> None:
    r = cli(*BUY, "--sl", "93000", "--tp", "99000", "--yes", "--json")
    cid = json.loads(r.out)["entry"]["client_id"]
    r = cli("exits", cid, "--sl", "92000", "--tp", "500000", "--yes")  # outside the price band
    assert r.code == 1 and "the local watchdog covers the position" in r.err
    items = json.loads((workdir / "data" / "watchdog.json").read_text())["items"]
    assert [(i["entry_client_id"], i["state"], i["take_profit"]) for i in items] == [
        (cid, "watching", "500000")
    ]
    r = cli("positions", "--json")
    assert r.code == 0 and _open_exits(cli) == {}
    [pos] = json.loads(r.out)
    assert pos["protection"] == "watchdog (needs a running engine)"


def test_kobe_exits_the_market_has_passed_are_refused_before_anything_moves(
    cli: CliRunner, workdir: Path
) -> None:
    """A take-profit below a long's last price (or a stop-loss above it, as when the two are
    swapped): the exchange refused the pair, and the watchdog, given the new prices first,
    sold the position at market at its next look. Refused now; the old exits stay."""
    r = cli(*BUY, "--sl", "93000", "--tp", "99000", "--yes", "--json")
    cid = json.loads(r.out)["entry"]["client_id"]
    r = cli("exits", cid, "--sl", "96000", "--tp", "94000", "--yes")
    assert r.code == 1
    assert "take-profit 94000 must be above the last price 95000 for a buy" in r.err
    assert "stop-loss 96000 must be below the last price 95000 for a buy" in r.err
    legs = _open_exits(cli)
    assert set(legs) == {"tp", "sl"} and str(legs["tp"]["price"]) == "99000"
    watched = workdir / "data" / "watchdog.json"
    assert not watched.exists() or json.loads(watched.read_text())["items"] == []
    [pos] = json.loads(cli("positions", "--json").out)
    assert pos["protection"] == "exchange"


def test_a_stop_that_rests_at_its_limit_after_a_gap_is_sold_at_market(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    placed = rig.engine.submit(entry())  # SL 95 (its limit 94.52), TP 110
    cid = placed.entry.client_id
    rig.move("SOL/USDT", "94.4")  # the stop triggers, but no bid is at or above its limit
    assert rig.closed == [] and rig.engine.positions()  # resting, not yet past the timeout
    rig.move("SOL/USDT", "94.4")  # 60 s later: router.stop_rest_timeout_s
    [trade] = rig.closed
    assert trade.trade_id == cid and "rested at its limit 94.52" in trade.reason
    alerts = [m for sev, m in rig.alerts if sev == "critical" and "rested at its limit" in m]
    assert len(alerts) == 1
    said = re.search(r"\(`(stop … rested at its limit … after a gap[^`]*)`\)", README)
    assert said is not None  # the README's words, "…" for what varies
    assert re.search(".*".join(map(re.escape, said.group(1).split("…"))) + "$", alerts[0])


def test_a_stop_gapped_far_past_its_limit_is_sold_at_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    placed = rig.engine.submit(entry())
    rig.move("SOL/USDT", "80")  # 15 % past the limit: more than router.stop_rest_distance_pct
    assert [t.trade_id for t in rig.closed] == [placed.entry.client_id]
    assert Decimal(79) < rig.closed[0].exit_price <= Decimal(80)


def test_kobe_exits_with_only_a_new_tp_keeps_the_stop_loss(cli: CliRunner) -> None:
    r = cli(*BUY, "--sl", "93000", "--tp", "99000", "--yes", "--json")
    cid = json.loads(r.out)["entry"]["client_id"]
    r = cli("exits", cid, "--tp", "98000", "--yes")
    assert r.code == 0, r.err
    legs = {k: str(v["price"]) for k, v in _open_exits(cli).items()}
    assert legs["tp"] == "98000" and "sl" in legs  # the stop-loss is still there
    [pos] = json.loads(cli("positions", "--json").out)
    assert pos["protection"] == "exchange"


@pytest.mark.parametrize(
    "live,filled,cover",
    [
        (("tp", "sl"), "0", "exchange"),
        (("sl",), "0", "exchange"),
        (("tp",), "0", UNPROTECTED),
        # an OCO's take-profit selling: its stop ended by the exchange (Binance), no cover
        (("tp",), "0.0005", UNPROTECTED),
    ],
)
def test_a_take_profit_alone_does_not_cover_a_position_opened_with_a_stop(
    live: tuple[str, ...], filled: str, cover: str
) -> None:
    exits = tuple(
        ExitOrder(
            f"kobe1n1{leg}", "market", None, "open" if leg in live else "rejected", Decimal(filled)
        )
        for leg in ("tp", "sl")
    )
    pos = Position(
        "kobe1n1", "bybit", "BTC/USDT", Side.BUY, Decimal("0.001"), Decimal(95000), Decimal(0),
        "cex_bybit", "", T0, Decimal(100000), Decimal(90000), False, exits=exits,
    )  # fmt: skip
    assert protection(pos, None, attached=True, engine_running=False) == cover
