"""The strategies' feeds against hostile lines: a line too long to hold, a time at the edge of
the calendar. Each bad line is skipped with one problem; the good lines around it are read and
acted on, and memory stays bounded."""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.runtime import EngineState
from engine.strategies.copy_trading.feed import JsonlLeaderFeed, LeaderTrade
from engine.strategies.memecoin_farming.providers import OnchainDryRunProvider
from engine.strategies.tail import JsonlTail

NOW = datetime(2026, 1, 1, 1, tzinfo=UTC)


def trade(n: int, **over: object) -> str:
    record = {
        "kind": "trade", "id": f"t-{n}", "leader": "whale", "symbol": "WIF/USDC", "side": "buy",
        "price": "2.15", "size_usd": "120", "time": "2026-01-01T00:05:00Z",
    } | over  # fmt: skip
    return json.dumps(record) + "\n"


def test_a_line_too_long_to_hold_is_skipped_without_holding_it(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    with path.open("w") as fh:
        fh.write('{"n": 1}\n{"name": "')
        for _ in range(40):  # 40 MB in one line
            fh.write("x" * 1024 * 1024)
        fh.write('"}\n{"n": 2}\n')
    tail = JsonlTail(path)
    tracemalloc.start()
    try:
        records = [r for _ in range(5) for r in tail.read()]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert records == [{"n": 1}, {"n": 2}]
    assert peak < 16 * 1024 * 1024, peak
    assert tail.skipped == 1 and tail.offset == path.stat().st_size
    assert "longer than 4194304 bytes" in tail.problems.drain()[0]


def test_a_long_line_still_being_written_waits_then_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text('{"a": "' + "y" * 200_000)  # torn: no newline yet
    tail = JsonlTail(path, max_bytes=64 * 1024, max_line=100_000)
    assert tail.read() == [] and tail.offset == 0 and tail.skipped == 0
    with path.open("a") as fh:
        fh.write('"}\n{"n": 3}\n')
    assert [r for _ in range(2) for r in tail.read()] == [{"n": 3}]
    assert tail.skipped == 1


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"])
def test_a_time_at_the_edge_of_the_calendar_skips_that_trade_only(
    tmp_path: Path, when: str
) -> None:
    path = tmp_path / "leader.jsonl"
    path.write_text(trade(1) + trade(2, time=when) + trade(3))
    feed = JsonlLeaderFeed(path)
    events = feed.poll(NOW)
    assert [e.id for e in events if isinstance(e, LeaderTrade)] == ["t-1", "t-3"]
    assert feed.skipped == 1 and len(feed.problems.drain()) == 1


def test_an_indexer_line_with_an_edge_time_skips_that_line_only(tmp_path: Path) -> None:
    line = {
        "kind": "candidate", "symbol": "BONK", "price_usd": "0.0000231",
        "liquidity_usd": "52000", "volume_usd": "8000", "time": "2026-01-01T00:00:00Z",
    }  # fmt: skip
    lines = [line | {"mint": "m1"}, line | {"mint": "m2", "time": "0001-01-01T00:00:00+01:00"}]
    lines.append(line | {"mint": "m3", "symbol": "WIF"})
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    provider = OnchainDryRunProvider(tmp_path)
    provider.update(NOW)
    assert [c.mint for c in provider.candidates()] == ["m1", "m3"]
    assert provider.lines_skipped == 1


@pytest.mark.parametrize("price", ["1e-30", "1e30"])
def test_a_price_within_the_parser_but_outside_any_market_is_skipped_and_the_engine_runs_on(
    workdir: Path, price: str
) -> None:
    from tests.test_untrusted_paths import alerts, copy_runtime, leader_line

    runtime, clock, events, feed = copy_runtime(workdir)
    try:
        runtime.mark_running()
        runtime.tick()
        feed.parent.mkdir(parents=True, exist_ok=True)
        with feed.open("a") as fh:
            fh.write(leader_line("t-extreme", price=price))
        for _ in range(3):
            clock.advance(60)
            runtime.tick()  # raised decimal.InvalidOperation from the paper DEX's fill
        with feed.open("a") as fh:
            fh.write(leader_line("t-good", side="sell") + leader_line("t-good-2"))
        for _ in range(3):
            clock.advance(60)
            runtime.tick()
        feed_alerts = [a for a in alerts(events) if a.code == "feed"]
        assert len(feed_alerts) == 1 and "'price'" in feed_alerts[0].message
        assert runtime.status().state is EngineState.RUNNING and not runtime.failure
        orders = (runtime.settings.data_dir / "logs" / "orders.jsonl").read_text()
        assert "t-extreme" not in orders and "copy whale1 t-good-2" in orders
    finally:
        runtime.stop()


@pytest.mark.parametrize("price", ["1e-30", "1e30"])
def test_an_indexed_candidate_priced_outside_any_market_is_skipped(
    tmp_path: Path, price: str
) -> None:
    line = {
        "kind": "candidate", "mint": "m1", "symbol": "BONK", "price_usd": price,
        "liquidity_usd": "52000", "volume_usd": "8000", "time": "2026-01-01T00:00:00Z",
    }  # fmt: skip
    (tmp_path / "events.jsonl").write_text(json.dumps(line) + "\n")
    provider = OnchainDryRunProvider(tmp_path)
    provider.update(NOW)
    assert provider.candidates() == [] and provider.lines_skipped == 1
    assert "'price_usd'" in provider.problems.drain()[0]
