"""An entry whose outcome is unknown holds new entries on its symbol until it is found.

The trader whose `kobe trade` ended "outcome unknown" and who sends it again must not end with
twice the position: before any new entry on the same venue, mode and symbol (the one order path:
`kobe trade`, the cockpit's ticket, the strategies), the unanswered entry is looked up by its
client id. Found: booked, and the new entry judged on its own merits. Not told (the exchange
unreachable, or no such order while its request may still be placed): the new entry is refused,
naming it, and nothing is sent. Another symbol, exits, closes and the watchdog's stop-loss are
never held. What holds an entry is the order journal: a kill -9, a restart or a lost snapshot
cannot lift it.

The real ccxt drives Kobe against the exchanges' simulators on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from engine.exchange.base import ExchangeError, OrderType, Side
from engine.journal import OrderEvent
from engine.modes import resolve_settings
from engine.proposal import Proposal, Refused, Sizing, Source
from engine.router.pending import pending_entries
from engine.runtime import Runtime, SimClock
from tests import test_exchange_codes as codes
from tests import test_venue_faults as faults
from tests.binance_sim import BinanceSim
from tests.conftest import ROOT, CliRunner, held
from tests.test_ccxt_contract import sim_env
from tests.test_cli_trade import CRASH
from tests.test_request_budget import FINANCE

name = faults.name  # the fixtures: each test so marked runs against Binance's, Bybit's and OKX's
sim = faults.sim
default_env = faults.default_env

BTC = "BTC/USDT"
ENTRY = "/api/v3/order"  # where Binance places an order (and looks one up, by GET)
FAST = "[exchange]\ntimeout_ms = 400\n"
# the trade of test_venue_faults: 15 of the wallet's 20 USDT, with its TP/SL
TRADE = faults.TRADE
# the same without exits, a smaller amount (two would fit the wallet), on any symbol
SMALL = ["trade", "--side", "buy", "--type", "market", "--quote", "6", "--yes"]


def small(symbol: str = BTC) -> list[str]:
    return [*SMALL, "--symbol", symbol]


def journal(workdir: Path) -> list[dict[str, Any]]:
    return faults._journal(workdir)


def answer_lost(sim: BinanceSim, lookups: int = 5) -> None:
    """The entry is placed, its answer comes too late (400 ms timeout), and the next
    ``lookups`` look-ups by client id fail: each look-up retries 5 times."""
    sim.inject("late", delay=0.6, method="POST", path=ENTRY)
    lookups_down(sim, lookups)


def lookups_down(sim: BinanceSim, times: int = 400) -> None:
    sim.inject(
        status=503, body="Service Unavailable", method="GET", path=ENTRY, times=times,
        query="origClientOrderId",
    )  # fmt: skip


def entries_sent(sim: BinanceSim) -> int:
    return sim.count("POST", ENTRY)


def kobe(workdir: Path, *argv: str, env: dict[str, str], at: datetime) -> tuple[int, str]:
    """``kobe`` in-process on a clock set to ``at``: (exit code, stderr)."""
    out, err = StringIO(), StringIO()
    code = main(list(argv), env=env, cwd=workdir, out=out, err=err, clock=lambda: at)
    return code, err.getvalue()


def unknown_entry_left(cli: CliRunner, workdir: Path, sim: BinanceSim) -> list[dict[str, Any]]:
    """A small BTC/USDT entry placed whose answer is lost, and the exchange asked about it in
    vain from then on: the journal's events (``intent``, ``unknown``)."""
    answer_lost(sim, lookups=400)
    assert cli(*small(), env=sim_env(sim)).code == 1
    return journal(workdir)


def assert_refused_naming(err: str, entry: dict[str, Any]) -> None:
    """The refusal names the unanswered entry's client id, symbol and when it was sent, and what
    the operator can do."""
    assert "refused:" in err, err
    said = f"{entry['symbol']} entry {entry['client_id']} (buy"
    assert said in err, err
    sent = datetime.fromisoformat(entry["ts"].replace("Z", "+00:00"))
    assert f"sent {sent:%Y-%m-%d %H:%M:%S}Z" in err, err
    assert "no known outcome" in err and "`kobe orders` looks it up again" in err, err
    assert "journaled as never sent" in err, err


# ---------------------------------------------------------------------------------------------
# `kobe trade`, sent again


def test_the_same_trade_sent_again_finds_and_books_the_first_and_places_no_second(
    cli: CliRunner, workdir: Path
) -> None:
    """(a) The entry was placed, its answer lost. The trader sends the same trade again: the
    first is found by its client id and booked (with its exits), and the second, judged on its
    merits, does not fit the wallet beside it: one entry on the exchange, ever."""
    (workdir / "kobe.toml").write_text(FAST)
    with BinanceSim() as sim:
        env = sim_env(sim)
        answer_lost(sim)
        r = cli(*TRADE, env=env)
        assert r.code == 1 and "outcome unknown" in r.err, r.err
        assert "new entries on BTC/USDT are refused" in r.err, r.err
        r = cli(*TRADE, env=env)
        assert r.code == 1 and "cex_binance can spend" in r.err, r.err
        assert entries_sent(sim) == 1
        first = journal(workdir)[0]["client_id"]
        events = [e["event"] for e in journal(workdir) if e["client_id"] == first]
        assert events == ["intent", "unknown", "ack", "fill"], events
        [position] = held(json.loads(cli("positions", "--json", env=env).out))
        assert position["entry_client_id"] == first and position["protection"] == "exchange"


def test_a_trade_while_the_exchange_cannot_tell_is_refused_and_another_symbol_is_not_held(
    cli: CliRunner, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """(b) The exchange still cannot be asked: the same trade is refused, naming the unanswered
    entry, exit 1, nothing sent, the journal unchanged; so is a sell entry on BTC/USDT. (c)
    ETH/USDT is not held by BTC's: the start that cannot look BTC's up goes on, saying so."""
    (workdir / "kobe.toml").write_text(FAST)
    with BinanceSim() as sim:
        env = sim_env(sim)
        before = unknown_entry_left(cli, workdir, sim)
        assert [e["event"] for e in before] == ["intent", "unknown"]
        r = cli(*small(), env=env)
        assert r.code == 1, r.err
        assert_refused_naming(r.err, before[-1])
        assert entries_sent(sim) == 1 and journal(workdir) == before
        r = cli(*small(), "--side", "sell", env=env)  # the account holds 1 BTC of its own
        assert r.code == 1, r.err
        assert_refused_naming(r.err, before[-1])
        caplog.clear()
        r = cli(*small("ETH/USDT"), env=env)
        assert r.code == 0, r.err
        [alert] = [m for m in caplog.messages if "(outcome_unknown)" in m]
        assert alert.startswith("error (outcome_unknown): BTC/USDT entry"), alert
        assert entries_sent(sim) == 2 and sim.orders_created == 2
        assert [e["event"] for e in journal(workdir) if e["symbol"] == BTC] == ["intent", "unknown"]


def test_an_entry_the_exchange_lists_nowhere_yet_holds_the_next_one_on_every_exchange(
    cli: CliRunner, workdir: Path, name: str, sim: Any, default_env: dict[str, str]
) -> None:
    """The exchange answers "duplicate client id" (it holds the order) and its reads do not
    list the order yet. Before: the next `kobe trade` took "no such order" for "never sent" and
    placed a second entry. Now it is refused; once the reads catch up, `kobe orders` finds and
    books the first."""
    (workdir / "kobe.toml").write_text(FAST)
    args = faults.TRADE if name == "binance" else codes.v5_trade_args(codes.v5.VENUES[name])
    code, words = codes._with(name, codes.DUPLICATES)[0]
    body = json.dumps(codes.refusal(name, code, words)[1])
    sim.inject("rewrite", method="POST", path=codes.CREATE[name], rewrite=lambda _: body)
    codes._lagging_lookups(name, sim)
    r = cli(*args, env=default_env)
    assert r.code == 1 and "outcome unknown" in r.err, r.err
    before = journal(workdir)
    r = cli(*args, env=default_env)
    assert r.code == 1, r.err
    assert_refused_naming(r.err, before[-1])
    assert "the exchange has no such order yet" in r.err, r.err
    assert sim.count("POST", codes.CREATE[name]) == 1 and sim.orders_created == 1
    sim.faults.clear()  # the exchange's reads catch up
    assert cli("orders", env=default_env).code == 0
    first = before[0]["client_id"]
    events = [e["event"] for e in journal(workdir) if e["client_id"] == first]
    assert events == ["intent", "unknown", "ack", "fill"], events


def test_an_entry_never_placed_is_journaled_so_once_its_request_can_no_longer_land(
    workdir: Path,
) -> None:
    """The entry's request got a 503 and was never placed; the look-ups failed. While its
    request could still be placed, "no such order" holds the next entry; once it cannot, the
    existing design stands: journaled never sent (``reject``), and the new entry goes."""
    (workdir / "kobe.toml").write_text(FAST)
    now = datetime.now(UTC)
    with BinanceSim() as sim:
        env = sim_env(sim)
        sim.inject(status=503, body="Service Unavailable", method="POST", path=ENTRY)
        lookups_down(sim, 5)
        code, err = kobe(workdir, *small(), env=env, at=now)
        assert code == 1 and "outcome unknown" in err, err
        assert sim.orders_created == 0
        # 37 s: the send's retry budget (30 s), then the receive window and a margin (7 s)
        code, err = kobe(workdir, *small(), env=env, at=now + timedelta(seconds=36))
        assert code == 1 and "the exchange has no such order yet" in err, err
        assert sim.orders_created == 0 and entries_sent(sim) == 1
        code, err = kobe(workdir, *small(), env=env, at=now + timedelta(seconds=38))
        assert code == 0, err
        first = journal(workdir)[0]["client_id"]
        rows = [e for e in journal(workdir) if e["client_id"] == first]
        assert [e["event"] for e in rows] == ["intent", "unknown", "reject"]
        assert "never sent" in rows[-1]["reason"]
        assert sim.orders_created == 1


# ---------------------------------------------------------------------------------------------
# A kill -9 and lost snapshots between the two commands


def test_a_kill_between_the_two_trades_and_lost_snapshots_still_hold_the_next(
    cli: CliRunner, workdir: Path
) -> None:
    """(f) `kobe trade` is killed (SIGKILL) while it looks up its unanswered entry; a trade on
    ETH/USDT writes the data dir's snapshots, which are then deleted: what holds the next BTC
    entry is the order journal."""
    (workdir / "kobe.toml").write_text(FAST)
    with BinanceSim() as sim:
        env = sim_env(sim)
        answer_lost(sim, lookups=400)
        child = {**env, "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [sys.executable, "-c", "from engine.cli import entrypoint; entrypoint()", *small()],
            cwd=workdir, env=child, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            orders = workdir / "data" / "logs" / "orders.jsonl"
            deadline = time.monotonic() + 30
            while '"unknown"' not in (orders.read_text() if orders.exists() else ""):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert cli(*small("ETH/USDT"), env=env).code == 0  # its session writes the snapshots
        data = workdir / "data"
        # every snapshot but the risk engine's, whose loss alone trips the kill switch (and so
        # refuses every entry, whatever else is pending)
        lost = [p for p in data.rglob("*.json") if p.name != "execution_runtime.json"]
        for path in lost:
            path.unlink()
        assert {p.name for p in lost} >= {"positions.json", "wallets_runtime.json"}, lost
        pending = journal(workdir)[1]
        assert (pending["event"], pending["symbol"]) == ("unknown", BTC)
        r = cli(*small(), env=env)
        assert r.code == 1, r.err
        assert_refused_naming(r.err, pending)
        assert entries_sent(sim) == 2 and sim.orders_created == 2  # BTC's first, ETH's


# ---------------------------------------------------------------------------------------------
# `kobe cancel` and `kobe exits` while an entry's outcome is unknown


def assert_said_unknown(err: str, entry: dict[str, Any]) -> None:
    said = f"entry {entry['client_id']} ({entry['symbol']} buy"
    assert said in err and "has no known outcome" in err, err
    assert "it may have filled" in err and "`kobe orders` looks it up again" in err, err


def test_cancel_and_exits_on_an_entry_whose_outcome_is_unknown_send_nothing_and_say_so(
    cli: CliRunner, workdir: Path
) -> None:
    """The exchange still cannot be asked about the entry (it filled there: a market buy). Before,
    `kobe cancel ID` said "not open (last known state: unknown)", `kobe cancel --all` "No open
    orders" and `kobe exits ID` "not open": as if nothing could be held. Each now names the
    entry, says that it may have filled and how it is found; none sends an order or a cancel.
    Once the exchange answers, the next start books the entry and `kobe exits` covers it."""
    (workdir / "kobe.toml").write_text(FAST)
    with BinanceSim() as sim:
        env = sim_env(sim)
        before = unknown_entry_left(cli, workdir, sim)
        entry = before[-1]
        cid = entry["client_id"]
        r = cli("cancel", cid, "--yes", env=env)
        assert r.code == 1, r.out + r.err
        assert_said_unknown(r.err, entry)
        assert "nothing was cancelled" in r.err, r.err
        r = cli("cancel", "--all", "--yes", env=env)
        assert r.code == 0 and "No open orders of Kobe's" in r.out, r.out + r.err
        assert_said_unknown(r.err, entry)
        r = cli("exits", cid, "--sl", "90000", "--yes", env=env)
        assert r.code == 1, r.out + r.err
        assert_said_unknown(r.err, entry)
        assert "no exits were placed" in r.err, r.err
        assert entries_sent(sim) == 1 and sim.count("DELETE", ENTRY) == 0
        assert journal(workdir) == before
        sim.faults.clear()  # the exchange answers again: found at the start, then covered
        r = cli("exits", cid, "--sl", "90000", "--yes", env=env)
        assert r.code == 0, r.out + r.err
        events = [e["event"] for e in journal(workdir) if e["client_id"] == cid]
        assert events == ["intent", "unknown", "ack", "fill"], events
        [position] = held(json.loads(cli("positions", "--json", env=env).out))
        assert position["entry_client_id"] == cid  # its stop (too small to rest) watched
        assert position["protection"].startswith("watchdog") and entries_sent(sim) == 1


# ---------------------------------------------------------------------------------------------
# An entry older than the journal's tail the routers read


def pad_journal(workdir: Path, events: int) -> None:
    """``events`` order events of a paper engine sharing the data dir (paper and testnet may):
    market buys on ETH/USDT, each an intent, an ack and a fill."""
    from engine.journal import OrderJournal

    j = OrderJournal(workdir / "data", fsync_intents=False)
    at = datetime.now(UTC)
    try:
        for n in range(0, events, 3):
            for kind in ("intent", "ack", "fill"):
                filled = Decimal("0.01") if kind == "fill" else Decimal(0)
                event = OrderEvent(
                    ts=at, mode="paper", exchange="binance", event=kind, client_id=f"kobepad{n}",
                    exchange_id=None if kind == "intent" else str(n), symbol="ETH/USDT",
                    side="buy", type="market", qty=Decimal("0.01"), price=None, filled=filled,
                    avg_price=Decimal(3000) if filled else None, fee=Decimal(0), fee_asset="",
                    status="filled" if filled else "new", wallet="cex_binance", source="strategy",
                    reason="",
                )  # fmt: skip
                j.append(event)
    finally:
        j.close()


def test_an_unknown_entry_older_than_the_journal_tail_still_holds_and_is_found(
    cli: CliRunner, workdir: Path
) -> None:
    """The routers read the last 5,000 order events at start (``RECONCILE_TAIL``). An entry
    left unknown before them (here a paper engine on the same data dir journaled 5,000 events
    since) was forgotten: the next BTC entry went out beside it, and no start looked it up.
    The position book reads the whole journal (incrementally): what it has as sent with no
    answer holds the symbol and is looked up as if it were in the tail."""
    from engine.router.orders import RECONCILE_TAIL

    (workdir / "kobe.toml").write_text(FAST)
    with BinanceSim() as sim:
        env = sim_env(sim)
        intent, unknown = unknown_entry_left(cli, workdir, sim)
        assert (intent["event"], unknown["event"]) == ("intent", "unknown")
        pad_journal(workdir, RECONCILE_TAIL + 3)
        r = cli(*small(), env=env)
        assert r.code == 1, r.err
        assert_refused_naming(r.err, unknown)  # its last word, as when it is in the tail
        clock = SimClock(datetime.now(UTC))  # the running engine holds it too
        runtime = Runtime(resolve_settings(env, workdir), clock=clock, tick_seconds=5)
        runtime.build()
        try:
            with pytest.raises(Refused, match=f"entry {intent['client_id']} .* no known outcome"):
                runtime.submit(ticket("6"))
        finally:
            runtime.close()
        assert entries_sent(sim) == 1
        sim.faults.clear()  # the exchange answers again: the next start finds and books it
        assert cli("orders", env=env).code == 0
        cid = intent["client_id"]
        events = [e["event"] for e in journal(workdir) if e["client_id"] == cid]
        assert events == ["intent", "unknown", "ack", "fill"], events
        [position] = held(json.loads(cli("positions", "--json", env=env).out))
        assert position["entry_client_id"] == cid and entries_sent(sim) == 1


def test_exits_older_than_the_journal_tail_are_still_kobes_and_their_fill_closes_the_trade(
    cli: CliRunner, workdir: Path
) -> None:
    """Found by the attack helper: a position's TP/SL placed before the last 5,000 order events
    were, after a restart, "external order ... not Kobe's: left alone": no start followed them,
    so their fill was never journaled and the book never closed the position (and `kobe cancel
    --all` left them). The book keeps the last event of each order of a position it holds; the
    routers follow those the tail lacks."""
    from engine.router.orders import RECONCILE_TAIL

    with BinanceSim() as sim:
        env = sim_env(sim)
        r = cli(*TRADE, env=env)
        assert r.code == 0, r.err
        entry = json.loads(r.out)["entry"]["client_id"]
        pad_journal(workdir, RECONCILE_TAIL + 3)
        r = cli("orders", env=env)
        assert r.code == 0, r.err
        assert "external order" not in r.err, r.err
        assert f"{entry}tp" in r.out and f"{entry}sl" in r.out, r.out
        [tp] = [e for e in journal(workdir) if e["client_id"] == f"{entry}tp" and e["exchange_id"]]
        sim.fill(int(tp["exchange_id"]))  # the take-profit fills on the exchange
        assert cli("orders", env=env).code == 0
        ends = [e["event"] for e in journal(workdir) if e["client_id"] == f"{entry}tp"]
        assert ends[-1] == "fill", ends
        assert cli("run", "--headless", "--ticks", "1", env=env).code == 0  # books it
        trades = (workdir / "data" / "trades.jsonl").read_text().splitlines()
        assert [json.loads(t)["trade_id"] for t in trades] == [entry]
        assert held(json.loads(cli("positions", "--json", env=env).out)) == []


# ---------------------------------------------------------------------------------------------
# Paper


def test_paper_never_holds_an_entry(cli: CliRunner, workdir: Path) -> None:
    """(d) Paper answers every order at once: no outcome is left unknown by a send. The one
    way to leave an entry unanswered, a kill -9 between its intent and its send, is settled by
    the next start (never sent) and the next entry goes as before."""
    argv = [*small(), "--quote", "6"]
    code = CRASH.format(after=False, argv=argv)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=workdir, env=env, capture_output=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL
    r = cli(*small())
    assert r.code == 0, r.err
    events = [e["event"] for e in journal(workdir)]
    assert events == ["intent", "reject", "intent", "ack", "fill"], events


# ---------------------------------------------------------------------------------------------
# The running engine: the cockpit's ticket, a strategy's signal, closes and stops


@pytest.fixture
def engine(workdir: Path) -> Iterator[tuple[BinanceSim, Runtime, SimClock]]:
    # cex_binance: 200 USDT; TP/SL watched locally (the watchdog's stop-loss is Kobe's own send)
    (workdir / "kobe.toml").write_text(FINANCE + FAST + '[router]\nexits = "watchdog"\n')
    with BinanceSim() as sim:
        clock = SimClock(datetime.now(UTC))
        runtime = Runtime(resolve_settings(sim_env(sim), workdir), clock=clock, tick_seconds=5)
        runtime.build()
        try:
            yield sim, runtime, clock
        finally:
            runtime.close()


def ticket(
    amount: str, symbol: str = BTC, source: Source = Source.COCKPIT, **exits: Any
) -> Proposal:
    return Proposal(
        symbol=symbol, side=Side.BUY, entry_type=OrderType.MARKET, sizing=Sizing.QUOTE,
        amount=Decimal(amount), wallet="cex_binance", source=source, **exits,
    )  # fmt: skip


def test_a_ticket_sent_again_in_the_running_engine_books_the_first_and_places_no_second(
    engine: tuple[BinanceSim, Runtime, SimClock],
) -> None:
    """(a) in the cockpit: no start-up reconciliation comes between the two tickets. Before:
    the second was placed at once, beside the first nobody had looked up. Now the first is
    found and booked before the second is planned, which no longer fits the wallet."""
    sim, runtime, _ = engine
    answer_lost(sim)
    with pytest.raises(ExchangeError, match="outcome unknown"):
        runtime.submit(ticket("120"))
    with pytest.raises(Refused, match="cex_binance can spend"):
        runtime.submit(ticket("120"))
    assert entries_sent(sim) == 1
    [position] = runtime.positions()
    assert position.symbol == BTC and position.qty > 0


def test_a_pending_entry_holds_entries_from_every_source_never_a_close_or_a_stop(
    engine: tuple[BinanceSim, Runtime, SimClock],
) -> None:
    """(e) Two BTC positions are held, their TP/SL watched locally; a third BTC entry goes
    unanswered and the exchange cannot be asked about it. A new entry is refused, whether the
    cockpit or a strategy sends it; the stop-loss of one position still sells it, and the
    other still closes."""
    sim, runtime, clock = engine
    first = runtime.submit(ticket("10", stop_loss=Decimal(94000), take_profit=Decimal(99000)))
    second = runtime.submit(ticket("10"))
    answer_lost(sim, lookups=400)
    with pytest.raises(ExchangeError, match="outcome unknown"):
        runtime.submit(ticket("10"))
    sent = entries_sent(sim)
    for source in (Source.COCKPIT, Source.STRATEGY):
        with pytest.raises(Refused, match="no known outcome"):
            runtime.submit(ticket("10", source=source))
    assert entries_sent(sim) == sent
    sim.set_price("BTCUSDT", Decimal(93000))  # through the first position's stop-loss
    clock.advance(5)
    runtime.tick()
    stop = [o for o in sim.orders.values() if o.client_id == f"{first.entry.client_id}sl"]
    assert [o.status for o in stop] == ["FILLED"]
    closed = runtime.close_position(second.entry.client_id, "operator close")
    assert closed is not None and closed.filled > 0
    assert [p.entry_client_id for p in runtime.positions()] == []
    assert entries_sent(sim) == sent + 2  # the stop's sale and the close's, nothing else


# ---------------------------------------------------------------------------------------------
# What holds: this mode's entries on the symbol, never their exits


def test_only_this_modes_unanswered_entries_on_the_symbol_hold_it() -> None:
    def event(cid: str, kind: str, mode: str = "testnet", symbol: str = BTC) -> OrderEvent:
        return OrderEvent(
            ts=datetime(2026, 3, 2, 9, 30, tzinfo=UTC), mode=mode, exchange="binance",
            event=kind, client_id=cid, exchange_id=None, symbol=symbol, side="buy",
            type="market", qty=Decimal("0.0001"), price=None, filled=Decimal(0), avg_price=None,
            fee=Decimal(0), fee_asset="", status=kind, wallet="cex_binance", source="cli",
            reason="",
        )  # fmt: skip

    state = {
        e.client_id: e
        for e in (
            event("kobe1", "unknown"),
            event("kobe2", "intent"),  # a kill -9 before its answer
            event("kobe3", "fill"),
            event("kobe4", "unknown", mode="paper"),
            event("kobe5", "unknown", symbol="ETH/USDT"),
            event("kobe3sl", "unknown"),  # an exit's: never holds an entry
            event("kobe6ds", "unknown"),  # a dust sweep's: no entry either
        )
    }
    assert [cid for cid, _ in pending_entries(state, "testnet", BTC)] == ["kobe1", "kobe2"]
