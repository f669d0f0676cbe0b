"""kill -9 at chosen writes of a real ``kobe run`` (and ``kobe trade``), then a restart: nothing
lost, doubled or made less safe (the invariants: ``tests/crash_harness.py``; the long sweep over
every write: ``bench/crash_sweep.py``)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from engine.exchange.base import OrderType, Side
from engine.journal import OrderEvent
from tests.binance_sim import BinanceSim
from tests.crash_harness import (
    append_point,
    check_invariants,
    killed_at,
    kobe,
    kobe_child,
    tripped,
    write_points,
)
from tests.test_ccxt_contract import sim_env
from tests.test_ccxt_contract_v5 import VENUES
from tests.test_ccxt_contract_v5 import sim_env as v5_env
from tests.test_router import Rig
from tests.test_trade_testnet_v5 import trade_args

RUN = ["run", "--headless", "--ticks", "100", "--seed", "7"]
RESTART = ["run", "--headless", "--ticks", "5", "--seed", "7"]
TRADE = [
    "trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15",
    "--sl", "90000", "--tp", "100000", "--yes",
]  # fmt: skip


@dataclass
class Traced:
    points: list[str]  # the data file of each write of RUN, in order
    orders: list[dict[str, object]]  # the order journal RUN leaves
    trades: list[dict[str, object]]


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Traced:
    work = tmp_path_factory.mktemp("traced")
    points = write_points(work, RUN)
    data = work / "data"

    def lines(name: str) -> list[dict[str, object]]:
        return [json.loads(x) for x in (data / name).read_text().splitlines()]

    return Traced(points, lines("logs/orders.jsonl"), lines("trades.jsonl"))


def crash_then_restart(workdir: Path, at: int, argv: list[str] = RUN) -> list[str]:
    assert killed_at(workdir, argv, at)
    was_tripped = tripped(workdir)
    restart = kobe_child(workdir, RESTART)
    assert restart.returncode == 0, restart.stderr
    return check_invariants(workdir, tripped_before=was_tripped)


def orders_of(workdir: Path) -> list[dict[str, object]]:
    text = (workdir / "data" / "logs" / "orders.jsonl").read_text()
    return [json.loads(x) for x in text.splitlines()]


def test_a_kill_after_an_ack_that_says_filled_books_the_fill_at_the_next_start(
    traced: Traced, tmp_path: Path
) -> None:
    # an exit sold at market: its `ack` already says filled; the kill comes before the `fill`
    n = next(
        i
        for i, (ack, fill) in enumerate(zip(traced.orders, traced.orders[1:], strict=False), start=1)
        if ack["event"] == "ack" and ack["status"] == "filled" and fill["event"] == "fill"
        and str(ack["client_id"]).endswith("cx")
    )  # fmt: skip
    cid = traced.orders[n - 1]["client_id"]
    at = append_point(traced.points, "logs/orders.jsonl", len(traced.orders), n + 1)
    assert killed_at(tmp_path, RUN, at)
    assert [(e["event"], e["client_id"]) for e in orders_of(tmp_path)][-1] == ("ack", cid)
    restart = kobe_child(tmp_path, RESTART)
    assert restart.returncode == 0, restart.stderr
    events = [e["event"] for e in orders_of(tmp_path) if e["client_id"] == cid]
    assert events.count("fill") == 1  # looked up and journaled once; the exit not sent again
    assert events.count("intent") == 1
    assert check_invariants(tmp_path, tripped_before=False) == []


def test_a_kill_between_the_jsonl_line_and_its_csv_row_writes_the_row_at_the_next_start(
    traced: Traced, tmp_path: Path
) -> None:
    n = 5  # the 5th event: its JSONL line written, its CSV row (after the header) not
    at = append_point(traced.points, "logs/orders.csv", len(traced.orders) + 1, n + 1)
    assert killed_at(tmp_path, RUN, at)
    logs = tmp_path / "data" / "logs"
    assert len(orders_of(tmp_path)) == n
    assert len((logs / "orders.csv").read_text().splitlines()) == n  # the header and n - 1
    restart = kobe_child(tmp_path, RESTART)
    assert restart.returncode == 0, restart.stderr
    assert check_invariants(tmp_path, tripped_before=False) == []


def test_a_trade_handed_on_again_after_a_kill_counts_once_in_the_risk_engine(
    traced: Traced, tmp_path: Path
) -> None:
    # killed after the wallets and the risk engine had the losing trade, before trades.jsonl
    n = next(i for i, t in enumerate(traced.trades, start=1) if str(t["pnl"]).startswith("-"))
    at = append_point(traced.points, "trades.jsonl", len(traced.trades), n)
    assert crash_then_restart(tmp_path, at) == []  # the restart books it once, everywhere
    risk = json.loads((tmp_path / "data" / "execution_runtime.json").read_text())
    assert risk["losing_streak"] >= 1


@pytest.mark.parametrize("tenth", range(2, 10, 2))
def test_a_kill_anywhere_in_a_run_loses_and_doubles_nothing(
    traced: Traced, tmp_path: Path, tenth: int
) -> None:
    at = len(traced.points) * tenth // 10
    assert crash_then_restart(tmp_path, at) == [], traced.points[at - 1]


def test_a_kill_at_each_order_event_of_kobe_trade_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    template = tmp_path / "template"
    template.mkdir()
    assert (
        kobe_child(template, ["run", "--headless", "--ticks", "3", "--seed", "7"]).returncode == 0
    )
    count = tmp_path / "count"
    shutil.copytree(template, count)
    points = write_points(count, TRADE)
    # before each line of the order journal: intent, send, ack, fill, the exits' (every write:
    # bench/crash_sweep.py --scenario trade-market)
    for at in (k for k, path in enumerate(points, start=1) if path == "logs/orders.jsonl"):
        work = tmp_path / f"k{at}"
        shutil.copytree(template, work)
        assert crash_then_restart(work, at, TRADE) == [], (at, points[at - 1])


def test_testnet_a_kill_before_the_csv_row_of_an_exit_ack_writes_it_as_journaled(
    tmp_path: Path,
) -> None:
    # ccxt reports the OCO legs' fills as "0.0": the missing row says so too, like its line
    count = tmp_path / "count"
    count.mkdir()
    with BinanceSim() as sim:
        points = write_points(count, TRADE, sim_env(sim))
    orders = orders_of(count)
    assert orders[-1]["event"] == "ack" and orders[-1]["filled"] == "0.0"
    at = append_point(points, "logs/orders.csv", len(orders) + 1, len(orders) + 1)
    work = tmp_path / "work"
    work.mkdir()
    with BinanceSim() as sim:
        env = sim_env(sim)
        assert killed_at(work, TRADE, at, env)
        assert kobe(work, "orders", env=env)[0] == 0  # a start: the journal opens
        assert check_invariants(work, tripped_before=False, env=env) == []
        assert len(sim.orders) == 3  # the entry and its OCO, once


def test_testnet_a_kill_around_exits_the_exchange_refused_leaves_the_position_guarded(
    tmp_path: Path,
) -> None:
    """Bybit fills the entry and refuses the TP/SL made from it; kill -9 between the fill and
    the exits' fallback, then an engine: the position is guarded (never UNPROTECTED), nothing
    is lost or sent twice."""
    bybit = VENUES["bybit"]
    args = trade_args(bybit)
    count = tmp_path / "count"
    count.mkdir()
    with bybit.make() as sim:
        sim.book.exits_refused = 1
        points = write_points(count, args, v5_env(bybit, sim))
    journal = [k for k, path in enumerate(points, start=1) if path == "logs/orders.jsonl"]
    last_watch = max(k for k, path in enumerate(points, start=1) if path == "watchdog.json")
    # once the entry filled: before each leg's line, before the watchdog's fallback
    for at in sorted({*journal[-2:], last_watch}):
        work = tmp_path / f"k{at}"
        work.mkdir()
        with bybit.make() as sim:
            sim.book.exits_refused = 1
            env = v5_env(bybit, sim)
            assert killed_at(work, args, at, env)
            engine = ["run", "--headless", "--duration", "1", "--tick", "0.4"]
            restart = kobe_child(work, engine, env=env)
            assert restart.returncode == 0, restart.stderr
            assert check_invariants(work, tripped_before=False, env=env) == [], (at, points[at - 1])
            assert sim.orders_created <= 1  # the entry at most once (killed before it: none)


def test_an_exit_id_sent_again_has_its_fill_journaled_after_a_restart(tmp_path: Path) -> None:
    # the first sell under the cx id filled a part and ended; the second, under the same id,
    # filled less than that before the process died at its `ack`: the next start books it
    rig = Rig(tmp_path, balances={"USDT": Decimal(1000), "BTC": Decimal(1)})
    cid = "kobe1n1cx"

    def journal(kind: str, qty: str, filled: str, status: str) -> None:
        event = OrderEvent(
            ts=rig.clock(), mode="paper", exchange="binance", event=kind, client_id=cid,
            exchange_id=None, symbol="BTC/USDT", side="sell", type="market", qty=Decimal(qty),
            price=None, filled=Decimal(filled), avg_price=None, fee=Decimal(0), fee_asset="",
            status=status, wallet="cex_binance", source="strategy", reason="",
        )  # fmt: skip
        rig.journal.append(event)

    journal("intent", "0.0003", "0", "new")
    journal("partial_fill", "0.0003", "0.0002", "expired")
    journal("cancel", "0.0003", "0.0002", "expired")
    journal("intent", "0.0001", "0", "new")
    sent = rig.exchange.create_order(
        "BTC/USDT", Side.SELL, OrderType.MARKET, Decimal("0.0001"), None, {"client_id": cid}
    )
    rig.router._journal_order("ack", sent, "cex_binance", "strategy", "")  # then kill -9
    restarted = Rig(tmp_path, balances={"USDT": Decimal(1000), "BTC": Decimal(1)})
    restarted.router.reconcile()
    fills = [e for e in restarted.lines() if e["client_id"] == cid and e["event"] == "fill"]
    assert [e["filled"] for e in fills] == ["0.0001"]


def test_a_kill_after_a_copied_entry_went_out_never_copies_the_leader_twice(
    traced: Traced, tmp_path: Path
) -> None:
    # the strategies' state of the tick before was all a restart had: it copied again
    n = next(
        i
        for i, e in enumerate(traced.orders, start=1)
        if e["event"] == "intent" and e["strategy"] == "copy_trading"
    )
    at = append_point(traced.points, "logs/orders.jsonl", len(traced.orders), n + 1)
    assert crash_then_restart(tmp_path, at) == []  # "a signal entered twice" among them


def test_a_kill_before_a_copy_exit_went_out_sends_it_after_the_restart(
    traced: Traced, tmp_path: Path
) -> None:
    # the leader's sell was taken (the strategies' state says so) but the process died before
    # the exit's intent: the adopted position is closed at the next tick, not held for ever
    copies = {e["client_id"] for e in traced.orders if e["strategy"] == "copy_trading"}
    n, exit_ = next(
        (i, e)
        for i, e in enumerate(traced.orders, start=1)
        if e["event"] == "intent" and str(e["client_id"])[:-2] in copies
        and "sold" in str(e["reason"])
    )  # fmt: skip
    at = append_point(traced.points, "logs/orders.jsonl", len(traced.orders), n)
    assert crash_then_restart(tmp_path, at) == []
    entry = str(exit_["client_id"])[:-2]
    held = json.loads(kobe(tmp_path, "positions", "--json")[1])
    assert entry not in {p["entry_client_id"] for p in held}
    assert [e["event"] for e in orders_of(tmp_path) if e["client_id"] == exit_["client_id"]][
        -1
    ] == "fill"
