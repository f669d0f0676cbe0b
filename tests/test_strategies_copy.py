"""Copy trading: tailing a leader feed being written (torn lines across ticks), scaling and caps,
slippage and allowed-symbol skips, leader exits closing the mirror, the seeded stub leader."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from engine.config import CopyTradingConfig
from engine.strategies.base import TICK_SECONDS, PositionState, Signal, SignalAction
from engine.strategies.copy_trading import (
    CopyTrading,
    JsonlLeaderFeed,
    LeaderTrade,
    PriceUpdate,
    StubLeaderFeed,
)
from engine.strategies.tail import JsonlTail

D = Decimal
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(tick: int) -> datetime:
    return T0 + timedelta(seconds=TICK_SECONDS * tick)


def config(**kw: object) -> CopyTradingConfig:
    return CopyTradingConfig.model_validate(kw)


def trade(
    id: str,
    side: str = "buy",
    symbol: str = "WIF/USDC",
    price: str = "2",
    size: str = "100",
    **kw: object,
) -> str:
    record: dict[str, object] = {
        "kind": "trade",
        "id": id,
        "leader": "whale1",
        "symbol": symbol,
        "side": side,
        "price": price,
        "size_usd": size,
        "time": "2026-01-01T00:00:00Z",
    }
    record.update(kw)
    return json.dumps(record) + "\n"


def price_line(symbol: str, price: str) -> str:
    return (
        json.dumps(
            {"kind": "price", "symbol": symbol, "price": price, "time": "2026-01-01T00:00:00Z"}
        )
        + "\n"
    )


@pytest.fixture
def feed_path(tmp_path: Path) -> Path:
    return tmp_path / "copy" / "leader.jsonl"


def strategy(path: Path, **kw: object) -> CopyTrading:
    return CopyTrading(config(**kw), JsonlLeaderFeed(path))


def append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)


# -- the tail ----------------------------------------------------------------------------------


def test_tail_reads_complete_lines_once_and_waits_for_a_torn_one(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    tail = JsonlTail(path)
    assert tail.read() == []  # no file yet
    path.write_bytes(b'{"a": 1}\n{"b": 2.5}\n{"c":')
    first = tail.read()
    assert first == [{"a": 1}, {"b": D("2.5")}]  # numbers are Decimal, never float
    assert tail.offset == len(b'{"a": 1}\n{"b": 2.5}\n')
    assert tail.read() == []  # the torn line waits
    with path.open("ab") as fh:
        fh.write(b' 3}\n[1, 2]\n{"d": 4}\n')
    assert tail.read() == [{"c": 3}, {"d": 4}]  # a non-object line is skipped
    assert tail.skipped == 1
    assert tail.offset == path.stat().st_size


def test_tail_reads_a_backlog_in_bounded_chunks_and_restarts_after_truncation(
    tmp_path: Path,
) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(100)))
    tail = JsonlTail(path, max_bytes=64)
    seen: list[object] = []
    for _ in range(100):
        seen += [r["n"] for r in tail.read()]
    assert seen == list(range(100))
    path.write_text('{"n": "again"}\n')  # replaced by a shorter file
    assert tail.read() == [{"n": "again"}]


def test_tail_resumes_from_a_given_offset(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text('{"n": 1}\n{"n": 2}\n')
    assert JsonlTail(path, offset=len('{"n": 1}\n')).read() == [{"n": 2}]


# -- the JSONL leader feed, tailed while it is written -----------------------------------------


def test_feed_tailed_across_ticks_with_a_torn_line(feed_path: Path) -> None:
    s = strategy(feed_path)
    assert s.tick(at(0)) == []  # the file does not exist yet
    append(feed_path, trade("t1"))
    [enter] = s.tick(at(1))
    assert enter.action is SignalAction.ENTER and enter.symbol == "WIF/USDC"
    assert enter.wallet == "copy_sol" and enter.strategy == "copy_trading"
    assert enter.size_hint == D(5)  # 100 x 0.05
    assert enter.ref == "copy_trading-000001" and "copy whale1 t1" in enter.reason
    s.on_entry_filled(enter.ref, D("2.01"), D("2.4875"), at(1))
    half = trade("t2", side="sell", price="2.2")
    append(feed_path, half[:25])  # the leader's exit, half written
    assert s.tick(at(2)) == []
    assert isinstance(s.feed, JsonlLeaderFeed) and s.feed.offset == len(trade("t1"))
    append(feed_path, half[25:])
    [exit_] = s.tick(at(3))
    assert exit_.action is SignalAction.EXIT and exit_.ref == enter.ref
    assert exit_.qty == D("2.4875") and exit_.side.value == "sell"
    assert exit_.reason == "leader whale1 sold WIF/USDC (t2)"
    s.on_position_closed(exit_.ref, D("2.19"), at(3))
    assert s.positions() == []
    assert s.tick(at(4)) == []  # nothing is read twice


def test_scaling_caps_and_min_size(feed_path: Path) -> None:
    s = strategy(
        feed_path, scale=Decimal("0.1"), max_trade_usd=6, min_trade_usd=2, max_open_positions=5
    )
    append(feed_path, trade("a", symbol="WIF/USDC", size="30"))  # 3 USD
    append(feed_path, trade("b", symbol="JUP/USDC", size="1000"))  # 100 -> capped at 6
    append(feed_path, trade("c", symbol="BONK/USDC", size="15"))  # 1.5 < min 2
    signals = s.tick(at(1))
    assert [(x.symbol, x.size_hint) for x in signals] == [
        ("WIF/USDC", D("3.0")),
        ("JUP/USDC", D(6)),
    ]
    [skip] = list(s.skipped)
    assert skip.trade_id == "c" and "scaled size 1.5 USD is below min_trade_usd 2" in skip.reason


def test_slippage_beyond_the_max_is_skipped_with_its_reason(feed_path: Path) -> None:
    s = strategy(feed_path, max_slippage_pct=5)
    append(feed_path, price_line("WIF/USDC", "2.12"))
    append(feed_path, trade("far", price="2.00"))  # the price is 6 % above the leader's fill
    assert s.tick(at(1)) == []
    [skip] = list(s.skipped)
    assert skip.trade_id == "far" and skip.symbol == "WIF/USDC"
    assert skip.reason == "price 2.12 is 6.00% above the leader's 2 (max_slippage_pct 5)"
    append(feed_path, trade("near", price="2.05"))  # 3.4 % above: within
    append(feed_path, trade("better", symbol="JUP/USDC", price="1"))
    append(feed_path, price_line("JUP/USDC", "0.80"))  # 20 % below the fill: better for a buy
    signals = s.tick(at(2))
    assert [x.symbol for x in signals] == ["WIF/USDC", "JUP/USDC"]
    # the latest observation of each: JUP's price line; WIF's leader trade (no price line this time)
    assert s.prices() == {"JUP/USDC": D("0.80"), "WIF/USDC": D("2.05")}


def test_a_stale_or_future_dated_buy_is_skipped_but_a_stale_sell_still_closes(
    feed_path: Path,
) -> None:
    """A backlog read after a restart copied hours-old buys at today's price."""
    s = strategy(feed_path, max_trade_age_s=300, max_open_positions=5)
    now = T0 + timedelta(hours=3)
    old, ahead = T0 + timedelta(hours=2), now + timedelta(minutes=10)
    append(feed_path, trade("old", time=old.isoformat().replace("+00:00", "Z")))
    append(feed_path, trade("ahead", symbol="JUP/USDC", time=ahead.isoformat()))
    fresh = (now - timedelta(seconds=300)).isoformat()  # at the limit: copied
    append(feed_path, trade("fresh", symbol="BONK/USDC", time=fresh))
    [enter] = s.tick(now)
    assert enter.symbol == "BONK/USDC"
    assert [(k.trade_id, k.reason) for k in s.skipped] == [
        ("old", "the leader's trade is 3600 s old (max_trade_age_s 300)"),
        ("ahead", "the leader's trade is dated 600 s ahead of the clock (max_trade_age_s 300)"),
    ]
    s.on_entry_filled(enter.ref, D("2"), D("2.5"), now)
    append(feed_path, trade("sold", side="sell", symbol="BONK/USDC", time=old.isoformat()))
    [exit_] = s.tick(now + timedelta(hours=1))
    assert exit_.action is SignalAction.EXIT and exit_.ref == enter.ref


def test_symbols_outside_the_allowed_list_are_skipped(feed_path: Path) -> None:
    s = strategy(feed_path, allowed_symbols=["WIF/USDC"])
    append(feed_path, trade("x", symbol="MEW/USDC") + trade("y", symbol="WIF"))  # WIF -> WIF/USDC
    [signal] = s.tick(at(1))
    assert signal.symbol == "WIF/USDC"
    [skip] = list(s.skipped)
    assert skip.reason == "MEW/USDC is not in allowed_symbols"
    assert "MEW/USDC" not in s.prices()
    nothing = strategy(feed_path.with_name("other.jsonl"), allowed_symbols=[])
    append(feed_path.with_name("other.jsonl"), trade("z"))
    assert nothing.tick(at(1)) == []  # an empty list copies nothing


def test_one_mirror_per_leader_position_and_max_open_positions(feed_path: Path) -> None:
    s = strategy(feed_path, max_open_positions=2)
    append(feed_path, trade("1", symbol="WIF/USDC") + trade("2", symbol="WIF/USDC"))
    append(feed_path, trade("3", symbol="JUP/USDC") + trade("4", symbol="BONK/USDC"))
    append(feed_path, trade("3", symbol="POPCAT/USDC"))  # a repeated id is ignored
    signals = s.tick(at(1))
    assert [x.symbol for x in signals] == ["WIF/USDC", "JUP/USDC"]
    reasons = [k.reason for k in s.skipped]
    assert reasons == [
        "already mirroring whale1's position in WIF/USDC",
        "max_open_positions (2) reached",
    ]


def test_a_position_left_as_dust_frees_its_slot_for_the_next_leader_trade(
    feed_path: Path,
) -> None:
    s = strategy(feed_path, max_open_positions=1)
    append(feed_path, trade("1", symbol="WIF/USDC"))
    [enter] = s.tick(at(1))
    s.on_entry_filled(enter.ref, D(2), D(50), at(1))
    append(feed_path, trade("2", symbol="JUP/USDC"))
    assert s.tick(at(2)) == []  # the one slot is taken
    s.on_position_dust(enter.ref)  # what is left of WIF cannot be sold: no longer ours
    append(feed_path, trade("3", symbol="JUP/USDC"))
    assert [x.symbol for x in s.tick(at(3))] == ["JUP/USDC"]
    assert s.book.counts.closed == 0  # dust is not a closed trade


def test_a_sell_while_the_entry_is_pending_closes_it_once_filled(feed_path: Path) -> None:
    s = strategy(feed_path)
    append(feed_path, trade("in") + trade("out", side="sell"))
    [enter] = s.tick(at(1))
    assert s.positions()[0].state is PositionState.PENDING
    s.on_entry_filled(enter.ref, D(2), D("2.5"), at(1))
    [exit_] = s.tick(at(2))
    assert exit_.ref == enter.ref and "before our entry filled (out)" in exit_.reason


def test_failed_entry_and_sell_without_a_mirror(feed_path: Path) -> None:
    s = strategy(feed_path)
    append(feed_path, trade("in"))
    [enter] = s.tick(at(1))
    s.on_entry_failed(enter.ref, "insufficient balance")
    append(feed_path, trade("out", side="sell"))
    assert s.tick(at(2)) == [] and s.positions() == []


def test_bad_lines_are_skipped(feed_path: Path) -> None:
    s = strategy(feed_path)
    append(feed_path, trade("no-price", price="-1"))
    append(feed_path, trade("no-side", side="short"))
    append(
        feed_path,
        json.dumps(
            {
                "id": "no-size",
                "symbol": "WIF",
                "side": "buy",
                "price": "2",
                "time": "2026-01-01T00:00:00Z",
            }
        )
        + "\n",
    )
    append(feed_path, trade("naive", time="2026-01-01T00:00:00"))
    append(feed_path, trade("qty", size_usd=None, qty="50"))  # size = qty x price = 100
    [signal] = s.tick(at(1))
    assert signal.size_hint == D(5)
    assert isinstance(s.feed, JsonlLeaderFeed) and s.feed.skipped == 4


# -- the stub leader ---------------------------------------------------------------------------


def drive(s: CopyTrading, ticks: int) -> list[tuple[int, Signal]]:
    out = []
    for i in range(ticks):
        now = at(i)
        for sig in s.tick(now):
            out.append((i, sig))
            price = s.prices()[sig.symbol]
            if sig.action is SignalAction.ENTER:
                s.on_entry_filled(sig.ref, price, sig.size_hint / price, now)
            else:
                s.on_position_closed(sig.ref, price, now)
    return out


def test_stub_leader_is_deterministic_and_mirrors_entries_and_exits() -> None:
    def session(seed: int) -> tuple[list[tuple[int, Signal]], list[str]]:
        s = CopyTrading(config(), StubLeaderFeed(rng=random.Random(seed)))
        return drive(s, 500), [k.reason for k in s.skipped]

    signals, skips = session(7)
    assert (signals, skips) == session(7)
    assert signals != session(8)[0]
    entries = [x for _, x in signals if x.action is SignalAction.ENTER]
    exits = [x for _, x in signals if x.action is SignalAction.EXIT]
    assert len(entries) >= 10 and len(exits) >= 10
    assert {x.ref for x in exits} <= {x.ref for x in entries}
    assert all(x.size_hint <= D(6) for x in entries)
    assert any("not in allowed_symbols" in r for r in skips)
    assert any("max_slippage_pct" in r for r in skips)


def test_stub_leader_events_are_ordered_prices_then_trades() -> None:
    feed = StubLeaderFeed(seed=1)
    first = feed.poll(T0)
    assert first and all(isinstance(e, PriceUpdate) for e in first)
    events = feed.poll(at(200))
    trades = [e for e in events if isinstance(e, LeaderTrade)]
    assert trades and all(isinstance(t.price, Decimal) for t in trades)
    assert [e.time for e in events] == sorted(e.time for e in events)


def test_a_position_from_an_earlier_run_closes_on_any_leaders_sell(feed_path: Path) -> None:
    s = strategy(feed_path)
    s.adopt("copy_trading-000003", "WIF/USDC", D(2), D("2.5"), at(0))
    append(feed_path, trade("s1", side="sell", leader="someone_else"))
    [exit_] = s.tick(at(1))
    assert exit_.ref == "copy_trading-000003" and exit_.qty == D("2.5")
    append(feed_path, trade("b1"))
    s.on_position_closed(exit_.ref, D(2), at(1))
    [entry] = s.tick(at(2))
    assert entry.ref == "copy_trading-000004"


def test_a_jsonl_feed_never_copies_a_backlog_nor_twice_across_restarts(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from engine.config import CopyTradingConfig
    from engine.strategies.copy_trading import build_feed

    cfg = CopyTradingConfig.model_validate({"feed": {"kind": "jsonl"}})
    feed_file = tmp_path / cfg.feed.path
    feed_file.parent.mkdir(parents=True)

    def line(n: int) -> str:
        return (
            f'{{"kind": "trade", "id": "t-{n}", "symbol": "WIF/USDC", "side": "buy", '
            f'"price": "2.15", "size_usd": "120", "time": "2026-01-01T00:0{n}:00Z"}}\n'
        )

    feed_file.write_text(line(1) + line(2))  # a backlog from before Kobe started
    now = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
    first = build_feed(cfg, tmp_path)
    assert first.poll(now) == []  # stale trades are not copied
    with open(feed_file, "a") as fh:
        fh.write(line(3))
    assert [e.id for e in first.poll(now)] == ["t-3"]  # type: ignore[attr-defined]
    restarted = build_feed(cfg, tmp_path)  # the offset survived
    assert restarted.poll(now) == []
    with open(feed_file, "a") as fh:
        fh.write(line(4))
    assert [e.id for e in restarted.poll(now)] == ["t-4"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("damage", ["", "{torn", '{"offset": -5}', '{"offset": "12"}'])
def test_a_damaged_offset_file_starts_the_feed_at_its_end_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    """README, "Data files": `copy/*.offset` damaged: "the feed starts at its end, with a log
    line" (a leader trade is never copied twice)."""
    from engine.strategies.copy_trading import build_feed

    cfg = CopyTradingConfig.model_validate({"feed": {"kind": "jsonl"}})
    feed_file = tmp_path / cfg.feed.path
    append(feed_file, trade("t1", time="2026-01-01T00:05:00Z"))
    (feed_file.parent / f"{feed_file.name}.offset").write_text(damage)
    feed = build_feed(cfg, tmp_path)
    assert feed.poll(at(6)) == []  # t1 is not read again
    assert "unreadable" in caplog.text and "starts at its end" in caplog.text
    append(feed_file, trade("t2", time="2026-01-01T00:06:00Z"))
    assert [e.id for e in feed.poll(at(6))] == ["t2"]  # type: ignore[attr-defined]


def test_the_readmes_leader_feed_lines_are_copied_as_it_says(feed_path: Path) -> None:
    """README, "Copy trading": the three example lines of a `jsonl` feed: the buy is mirrored at
    `scale` of its size (capped by `max_trade_usd`), the price line is the current price, and the
    leader's sell closes the mirror."""
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    block = readme.split("**Copy trading**", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    buy, price, sell = block.splitlines()
    s = strategy(feed_path)  # the shipped defaults
    assert s.tick(at(0)) == []  # the first start: the feed begins at the file's end
    append(feed_path, f"{buy}\n{price}\n")
    [enter] = s.tick(at(6))  # 00:06, a minute after the leader bought
    shipped = CopyTradingConfig()
    size = min(D(json.loads(buy)["size_usd"]) * shipped.scale, shipped.max_trade_usd)
    assert (enter.action, enter.symbol, enter.size_hint) == (SignalAction.ENTER, "WIF/USDC", size)
    assert "copy whale1 t-1001" in enter.reason
    s.on_entry_filled(enter.ref, D(json.loads(price)["price"]), D("2.7"), at(6))
    append(feed_path, f"{sell}\n")
    [exit_] = s.tick(at(45))
    assert exit_.action is SignalAction.EXIT and exit_.ref == enter.ref
    assert exit_.reason == "leader whale1 sold WIF/USDC (t-1002)"
