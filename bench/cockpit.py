"""Cockpit benchmark: first frame with a million-line journal, memory, key latency under load.

1. First frame. Process start to the cockpit's ``Ready`` event (headless, paper, a fresh
   interpreter each run, as in ``bench/startup.py``) on a data dir whose ``trades.jsonl`` has
   ``--lines`` lines, against the same with an empty data dir; runs interleaved, medians. Also,
   in the child: peak RSS (``VmHWM``) and bytes read (``rchar`` of ``/proc/self/io``) at the
   first frame, and again once the engine worker has built the runtime and runs (so a late
   whole-file read would show), and the journal rows shown once the engine runs.
2. Key-press-to-screen latency. In process (``App.run_test``, headless), the real engine built in
   paper (simulated clock, no automatic ticks). A thread feeds ``app._forward`` (the real
   engine-to-UI path) with ``EngineEvent`` objects built from real engine types at ``--rate`` per
   second for ``--seconds``; meanwhile keys ``3`` / ``1`` (switch pane) are sent through the
   driver like a terminal's keys. Latency: from sending the key to the first frame the screen
   composes (``App._display``) after the pane action ran. Baseline: the same with no traffic.
   Also: messages posted vs handled per type (``can_replace`` coalescing), and the UI's backlog
   when the traffic stops.

    python bench/cockpit.py [--lines N] [--runs N] [--seconds S] [--rate R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# -- 1. first frame -----------------------------------------------------------------------------

CHILD = """
import json, resource, sys, time

def probe():
    rchar = -1
    try:
        with open("/proc/self/io") as fh:
            for line in fh:
                if line.startswith("rchar:"):
                    rchar = int(line.split()[1])
    except OSError:
        pass
    hwm = -1  # VmHWM: this process's peak RSS (ru_maxrss keeps the parent's across exec)
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return hwm, rchar

from kobe_tui.app import KobeApp, pause_gc_for_startup
from kobe_tui.widgets.journal import JournalPane
from kobe_tui.widgets.money import StatsPane

class Bench(KobeApp):
    def on_ready(self) -> None:
        self.stamp, self.cpu = time.time(), time.process_time()
        self.ready = probe()
        self.rows = 0  # the panes (and the journal's tail) come in the frames after the first
        self.engine = None
        self.set_interval(0.02, self.poll)

    def poll(self) -> None:  # then the complete screen: engine running, journal and stats shown
        up = self.runtime is not None and self.engine_state in ("running", "paused")
        up = up and self.query_one(StatsPane).stats is not None
        if up or self.engine_state == "error" or time.time() - self.stamp > 60:
            if self.engine is None:
                self.rows = self.query_one(JournalPane).table.row_count
                self.engine = (time.time(), probe(), self.engine_state, time.process_time())
                self.exit()

app = Bench()  # exactly what kobe-tui's main() builds and does
pause_gc_for_startup()
app.run(headless=True, size=(120, 40))
t, probe_engine, state, cpu_engine = app.engine
print(json.dumps({
    "t": app.stamp, "rss": app.ready[0], "rchar": app.ready[1], "rows": app.rows,
    "t_engine": t, "rss_engine": probe_engine[0], "rchar_engine": probe_engine[1],
    "state": state, "cpu": app.cpu, "cpu_engine": cpu_engine,
}))
"""

# One line of trades.jsonl as TradeStore writes it: ClosedTrade.to_record() and the mode.
TEMPLATE = (
    '{"trade_id": "kobe%sn%d", "opened_at": "%s", "closed_at": "%s", "wallet": "%s", '
    '"strategy": "%s", "symbol": "%s", "side": "%s", "qty": "%s", "entry_price": "%s", '
    '"exit_price": "%s", "fees": "%s", "pnl": "%s", "reason": "%s", "mode": "paper"}\n'
)
VARIANTS = [  # wallet, strategy, symbol, side, qty, entry, exit, fees, pnl, reason
    (
        "cex_binance",
        "momentum",
        "BTC/USDT",
        "buy",
        "0.00016",
        "94210.55",
        "94980.1",
        "0.030",
        "0.0931",
        "take profit",
    ),
    (
        "cex_bybit",
        "mean_revert",
        "ETH/USDT",
        "sell",
        "0.0042",
        "3512.4",
        "3530.9",
        "0.0296",
        "-0.1073",
        "stop loss",
    ),
    (
        "sniper_sol",
        "memecoin",
        "BONK/SOL",
        "buy",
        "1250000",
        "0.0000231",
        "0.0000262",
        "0.061",
        "3.81",
        "take profit (trailing)",
    ),
    (
        "copy_sol",
        "copy",
        "SOL/USDT",
        "buy",
        "0.11",
        "181.2",
        "179.05",
        "0.0398",
        "-0.2763",
        "leader exited",
    ),
    (
        "cex_okx",
        "manual",
        "SOL/USDT",
        "sell",
        "0.08",
        "182.7",
        "180.1",
        "0.0290",
        "0.179",
        "closed by operator (cockpit)",
    ),
]


def write_trades(path: Path, lines: int) -> None:
    """``lines`` realistic ClosedTrade records, by formatting a template (seconds, not minutes)."""
    start = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    gm, ft = time.gmtime, time.strftime
    chunk = 50_000
    with open(path, "w", encoding="utf-8") as fh:
        for lo in range(0, lines, chunk):
            out = []
            for i in range(lo, min(lines, lo + chunk)):
                t = start + i * 37
                v = VARIANTS[i % len(VARIANTS)]
                out.append(
                    TEMPLATE
                    % (format(int(t * 1000), "x"), i, ft(fmt, gm(t - 600)), ft(fmt, gm(t)), *v)
                )
            fh.write("".join(out))


def check_trades(path: Path) -> None:
    """The generated lines parse as the engine's ClosedTrade and have its exact fields."""
    from dataclasses import fields

    from engine.journal import tail_jsonl
    from engine.trades import ClosedTrade

    for record in tail_jsonl(path, len(VARIANTS)):
        trade = ClosedTrade.from_record(record)
        assert set(record) == {f.name for f in fields(ClosedTrade)} | {"mode"}, record
        assert ClosedTrade.from_record(json.loads(json.dumps(trade.to_record(), default=str)))


KEPT = ("trades.jsonl", "stats_cache.json", "execution_runtime.json", "risk_journal.jsonl")


def reset_data(data: Path) -> None:
    """Everything the previous run left, except the journal under test, the statistics'
    aggregate that goes with it (``stats_cache.json``, kept current by every reader) and the
    risk engine's files (a journal of trades without them is a lost risk state: TRIPPED)."""
    data.mkdir(parents=True, exist_ok=True)
    for p in data.iterdir():
        if p.name in KEPT:
            continue
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


def first_frame(cwd: Path) -> dict[str, Any]:
    reset_data(cwd / "data")
    from bench.startup import child_env

    env = child_env()
    env["PYTHONPATH"] = str(ROOT)
    start = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=cwd, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data["t"] -= start
    data["t_engine"] -= start
    return data


def bench_first_frame(lines: int, runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="kobe-bench-") as tmp:
        empty, big = Path(tmp) / "empty", Path(tmp) / "million"
        (empty / "data").mkdir(parents=True)
        (big / "data").mkdir(parents=True)
        trades = big / "data" / "trades.jsonl"
        t0 = time.perf_counter()
        from engine.config import RiskConfig
        from engine.risk import RiskEngine

        RiskEngine(big / "data", RiskConfig(), lambda: datetime.now(UTC)).close()  # as an
        write_trades(trades, lines)  # engine that journaled those trades leaves them
        took = time.perf_counter() - t0
        check_trades(trades)
        size = trades.stat().st_size
        print(f"trades.jsonl: {lines:,} lines, {size / 1e6:,.0f} MB, written in {took:.1f} s")
        from bench.startup import BARE, measure

        t0 = time.perf_counter()
        first_frame(empty)  # warm the interpreter's caches for both
        first_frame(big)  # (the first reader of the big journal builds its statistics)
        print(
            f"first start on the big journal (statistics built): {time.perf_counter() - t0:.1f} s"
        )
        measure(BARE, empty)
        res: dict[str, list[dict[str, Any]]] = {"empty": [], "big": []}
        bare: list[float] = []
        bare_cpu: list[float] = []
        for _ in range(runs):  # interleaved, so drift hits both alike
            t, _, cpu = measure(BARE, empty)
            bare.append(t)
            bare_cpu.append(cpu)
            res["empty"].append(first_frame(empty))
            res["big"].append(first_frame(big))

    def med(case: str, key: str) -> float:
        return statistics.median(r[key] for r in res[case])

    def mx(case: str, key: str) -> float:
        return max(r[key] for r in res[case])

    e, b = med("empty", "t"), med("big", "t")
    print(f"\n[1] first frame, paper, headless 120x40: {runs} runs each, interleaved, medians")
    print(f"  {'':32}{'empty data dir':>16}{f'{lines:,}-line journal':>24}")
    print(f"  {'first frame (spawn -> Ready)':32}{e * 1000:13.1f} ms{b * 1000:21.1f} ms")
    print(
        f"  {'complete screen (spawn -> run)':32}{med('empty', 't_engine') * 1000:13.1f} ms"
        f"{med('big', 't_engine') * 1000:21.1f} ms"
    )
    b0 = statistics.median(bare)
    print(f"  {'bare Textual app, first frame':32}{b0 * 1000:13.1f} ms")
    print(
        f"  {'peak RSS at first frame':32}{med('empty', 'rss') / 1024:13.1f} MB"
        f"{med('big', 'rss') / 1024:21.1f} MB"
    )
    print(
        f"  {'peak RSS, engine running':32}{med('empty', 'rss_engine') / 1024:13.1f} MB"
        f"{med('big', 'rss_engine') / 1024:21.1f} MB"
    )
    print(
        f"  {'bytes read to first frame':32}{med('empty', 'rchar') / 1e6:13.1f} MB"
        f"{med('big', 'rchar') / 1e6:21.1f} MB"
    )
    print(
        f"  {'bytes read, engine running':32}{med('empty', 'rchar_engine') / 1e6:13.1f} MB"
        f"{med('big', 'rchar_engine') / 1e6:21.1f} MB"
    )
    print(
        f"  {'journal rows, engine running':32}{mx('empty', 'rows'):16.0f}{mx('big', 'rows'):24.0f}"
    )
    states = {r["state"] for case in res.values() for r in case}
    print(f"  ratio big/empty first frame: {b / e:.2f}   engine states seen: {sorted(states)}")
    ce, cb = med("empty", "t_engine"), med("big", "t_engine")
    print(f"  ratio complete screen / bare first frame: {ce / b0:.2f} (target <= 1.6)")
    c0 = statistics.median(bare_cpu)  # the work, apart from the wait for a shared core
    print(
        f"  CPU (user + system): bare first frame {c0 * 1000:.0f} ms; kobe first frame "
        f"{med('empty', 'cpu') * 1000:.0f} ms ({med('empty', 'cpu') / c0:.2f}), complete screen "
        f"{med('empty', 'cpu_engine') * 1000:.0f} ms ({med('empty', 'cpu_engine') / c0:.2f})"
    )
    print(f"  ratio complete screen big/empty: {cb / ce:.2f} (target <= 1.1)")


# -- 2. key-press-to-screen latency under engine traffic ----------------------------------------

# Per 100 engine events (seeded shuffle: realistic interleaving, not same-type runs).
MIX = {"prices": 40, "order": 30, "wallets": 15, "risk": 5, "alert": 8, "trade": 2}


def _probe_app_class() -> Any:
    from textual import events

    from kobe_tui import messages as m
    from kobe_tui.app import KobeApp

    tracked = (
        m.OrderUpdated,
        m.PositionsChanged,
        m.PricesChanged,
        m.WalletsChanged,
        m.RiskChanged,
        m.AlertRaised,
        m.TradeClosed,
        m.EngineBatch,
    )

    class Probe(KobeApp):
        """KobeApp plus counters. Handlers here run besides KobeApp's (Textual walks the MRO)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.posted: Counter[str] = Counter()
            self.handled: Counter[str] = Counter()
            self.counting = False
            self._count_lock = threading.Lock()
            self.acted_at: float | None = None
            self.frame_at: float | None = None
            self.frames = 0
            self.busy: Counter[str] = Counter()  # seconds spent handling, per message type

        async def _on_message(self, message: Any) -> None:
            began = time.perf_counter()
            await super()._on_message(message)
            if self.counting and isinstance(message, tracked):
                self.busy[type(message).__name__] += time.perf_counter() - began

        def post_message(self, message: Any) -> bool:
            if self.counting and isinstance(message, tracked):
                with self._count_lock:
                    self.posted[type(message).__name__] += 1
            return super().post_message(message)

        def _count(self, message: Any) -> None:
            if self.counting:
                self.handled[type(message).__name__] += 1

        on_order_updated = on_positions_changed = on_prices_changed = _count  # type: ignore[assignment]
        on_wallets_changed = on_risk_changed = on_alert_raised = on_trade_closed = _count  # type: ignore[assignment]
        on_engine_batch = _count  # type: ignore[assignment]

        def action_show_pane(self, index: int) -> None:
            super().action_show_pane(index)
            self.acted_at, self.frame_at = time.perf_counter(), None

        def _display(self, screen: Any, renderable: Any) -> None:
            if renderable is not None and not self._batch_count:
                self.frames += 1
                if self.acted_at is not None and self.frame_at is None:
                    self.frame_at = time.perf_counter()
            super()._display(screen, renderable)

        def send_key(self, key: str) -> None:
            assert self._driver is not None
            self._driver.send_message(events.Key(key, key))  # as a terminal's key arrives

    return Probe


class Feeder(threading.Thread):
    """Engine-like events at ``rate`` per second through the app's real forwarding path."""

    def __init__(self, app: Any, rate: int, seconds: float) -> None:
        super().__init__(name="bench-feeder", daemon=True)
        from engine.journal import OrderEvent
        from engine.runtime import AlertEvent, EngineEvent
        from engine.trades import ClosedTrade

        self.app, self.rate, self.seconds = app, rate, seconds
        self.sent = 0
        self.elapsed = 0.0
        self.stop_flag = threading.Event()
        runtime = app.runtime
        kinds = [k for k, n in MIX.items() for _ in range(n)]
        random.Random(7).shuffle(kinds)
        self.kinds = kinds
        self.wallets = runtime.wallets_snapshot()
        self.risk = runtime.risk_snapshot()
        self.prices = runtime._prices() or {"BTC/USDT": Decimal("95000")}
        self._Event, self._Order, self._Alert, self._Trade = (
            EngineEvent,
            OrderEvent,
            AlertEvent,
            ClosedTrade,
        )
        self.t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def event(self, i: int) -> Any:
        kind = self.kinds[i % len(self.kinds)]
        now = self.t0 + timedelta(milliseconds=i)
        if kind == "prices":
            bump = Decimal(i % 97) / 100
            payload: Any = {s: p + bump for s, p in self.prices.items()}
        elif kind == "order":
            n = i % 20  # twenty open orders updated in place
            payload = self._Order(
                ts=now,
                mode="paper",
                exchange="binance",
                event="ack" if (i // 20) % 2 == 0 else "partial_fill",
                client_id=f"kobebench{n}",
                exchange_id=str(8000 + n),
                symbol="BTC/USDT",
                side="buy" if n % 2 else "sell",
                type="limit",
                qty=Decimal("0.010"),
                price=Decimal("95000") - n,
                filled=Decimal("0.001") * ((i // 20) % 5),
                avg_price=None,
                fee=Decimal(0),
                fee_asset="USDT",
                status="open",
                wallet="cex_binance",
                source="bench",
                reason="",
            )
        elif kind == "wallets":
            payload = self.wallets
        elif kind == "risk":
            payload = self.risk
        elif kind == "alert":
            payload = self._Alert("warning", "bench", f"bench alert {i}")
        else:
            payload = self._Trade(
                trade_id=f"kobebenchtrade{i}",
                opened_at=now - timedelta(minutes=5),
                closed_at=now,
                wallet="cex_binance",
                strategy="momentum",
                symbol="BTC/USDT",
                side="buy",
                qty=Decimal("0.0002"),
                entry_price=Decimal("95000"),
                exit_price=Decimal("95100"),
                fees=Decimal("0.038"),
                pnl=Decimal("-0.018"),
                reason="take profit",
            )
        return self._Event(kind, payload, now)

    def run(self) -> None:
        start = time.perf_counter()
        total = int(self.rate * self.seconds)
        while self.sent < total and not self.stop_flag.is_set():
            due = start + self.sent / self.rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(min(wait, 0.005))
                continue
            self.app._forward(self.event(self.sent))  # the engine thread's call
            self.sent += 1
        self.elapsed = time.perf_counter() - start


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _latency(rate: int, seconds: float, size: tuple[int, int]) -> dict[str, Any]:
    from textual.screen import Screen

    Probe = _probe_app_class()
    spent = {"updates": 0, "layouts": 0, "seconds": 0.0}
    original_update, original_layout = Screen._on_timer_update, Screen._refresh_layout

    def timed_update(self: Any) -> None:  # the screen's frame: layout, compose, display
        began = time.perf_counter()
        original_update(self)
        spent["updates"] += 1
        spent["seconds"] += time.perf_counter() - began

    def counted_layout(self: Any, *args: Any, **kwargs: Any) -> None:
        spent["layouts"] += 1
        original_layout(self, *args, **kwargs)

    Screen._on_timer_update = timed_update  # type: ignore[method-assign]
    Screen._refresh_layout = counted_layout  # type: ignore[method-assign]
    try:
        return await _latency_run(Probe, spent, rate, seconds, size)
    finally:
        Screen._on_timer_update = original_update  # type: ignore[method-assign]
        Screen._refresh_layout = original_layout  # type: ignore[method-assign]


async def _latency_run(
    Probe: Any, spent: dict[str, Any], rate: int, seconds: float, size: tuple[int, int]
) -> dict[str, Any]:
    from engine.agent import build_agent
    from engine.modes import Settings, resolve_settings
    from engine.runtime import Runtime, SimClock
    from tests.cockpit_support import settle

    with tempfile.TemporaryDirectory(prefix="kobe-bench-", ignore_cleanup_errors=True) as tmp:
        workdir = Path(tmp)
        settings = resolve_settings({}, workdir)
        clock = SimClock(settings.config.paper.sim_start)

        def factory(s: Settings, confirmed: bool) -> Runtime:
            return Runtime(
                s, confirmed=confirmed, clock=clock, tick_seconds=60, agent_factory=build_agent
            )

        app = Probe(
            settings, clock=clock, autotick=False, runtime_factory=factory, balances_fetcher=None
        )
        out: dict[str, Any] = {}
        async with app.run_test(headless=True, size=size) as pilot:
            await settle(app, pilot)
            app.step(3, advance=lambda: clock.advance(60))  # a few real ticks: state to show
            await settle(app, pilot)
            feeder = Feeder(app, rate, seconds) if rate else None
            app.counting = True
            for k in spent:
                spent[k] = 0
            rng = random.Random(11)
            lat: list[float] = []
            timeouts = 0
            start = time.perf_counter()
            if feeder is not None:
                feeder.start()
            key = "3"
            while time.perf_counter() - start < seconds:
                app.acted_at = app.frame_at = None
                sent = time.perf_counter()
                app.send_key(key)
                while app.frame_at is None and time.perf_counter() - sent < 5.0:
                    await asyncio.sleep(0.0005)
                if app.frame_at is None:
                    timeouts += 1
                    lat.append(5.0)
                else:
                    lat.append(app.frame_at - sent)
                key = "1" if key == "3" else "3"
                await asyncio.sleep(rng.uniform(0.02, 0.06))  # a person's pace, spread out
            backlog = app._message_queue.qsize()
            drain_start = time.perf_counter()
            if feeder is not None:
                feeder.stop_flag.set()
                feeder.join()
            while app._message_queue.qsize() > 0 and time.perf_counter() - drain_start < 60:
                await asyncio.sleep(0.005)
            drained = time.perf_counter() - drain_start
            frames = dict(spent)
            await pilot.pause()
            out = {
                "lat": lat,
                "timeouts": timeouts,
                "sent": feeder.sent if feeder else 0,
                "feed_s": feeder.elapsed if feeder else 0.0,
                "posted": dict(app.posted),
                "handled": dict(app.handled),
                "busy": dict(app.busy),
                "backlog": backlog,
                "drain_s": drained,
                "screen": frames,
                "frames": app.frames,
            }
            app.counting = False
    return out


def bench_latency(rate: int, seconds: float, size: tuple[int, int]) -> None:
    base = asyncio.run(_latency(0, seconds, size))
    load = asyncio.run(_latency(rate, seconds, size))
    print(
        f"\n[2] key press ('3'/'1' switch pane) to the next composed frame, headless "
        f"{size[0]}x{size[1]}, {seconds:g} s each"
    )
    print(f"  {'':34}{'p50':>10}{'p90':>10}{'p99':>10}{'max':>10}{'presses':>9}")
    for name, r in (("no engine traffic (baseline)", base), (f"engine at {rate:,} events/s", load)):
        v = [x * 1000 for x in r["lat"]]
        print(
            f"  {name:34}{_pct(v, 0.5):8.1f}ms{_pct(v, 0.9):8.1f}ms{_pct(v, 0.99):8.1f}ms"
            f"{max(v):8.1f}ms{len(v):9d}"
            + (f"  ({r['timeouts']} timed out at 5 s)" if r["timeouts"] else "")
        )
    mix = ", ".join(f"{k} {n}%" for k, n in MIX.items())
    achieved = load["sent"] / load["feed_s"] if load["feed_s"] else 0.0
    print(
        f"  engine events sent through app._forward: {load['sent']:,} in {load['feed_s']:.1f} s"
        f" ({achieved:,.0f}/s); mix: {mix}"
    )
    print(
        f"  {'message':20}{'posted':>10}{'handled':>10}{'coalesced':>11}"
        f"{'UI time':>10}{'per msg':>10}"
    )
    posted, handled, busy = load["posted"], load["handled"], load["busy"]
    for name in sorted(posted):
        p, h, b = posted[name], handled.get(name, 0), busy.get(name, 0.0)
        each = b / h * 1e6 if h else 0.0
        print(f"  {name:20}{p:10,}{h:10,}{p - h:11,}{b:9.2f}s{each:8.0f}us")
    tp, th, tb = sum(posted.values()), sum(handled.values()), sum(busy.values())
    print(f"  {'total':20}{tp:10,}{th:10,}{tp - th:11,}{tb:9.2f}s")
    print(
        f"  app queue when the presses ended: {load['backlog']:,} messages; "
        f"drained {load['drain_s']:.2f} s after the feed stopped"
    )
    for name, r in (("baseline", base), ("under load", load)):
        sc = r["screen"]
        each = sc["seconds"] / sc["updates"] * 1000 if sc["updates"] else 0.0
        print(
            f"  screen updates ({name}): {sc['updates']:,} ({r['frames']:,} frames displayed), "
            f"{sc['layouts']:,} full layouts, {sc['seconds']:.2f} s, {each:.1f} ms each"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--size", default="80x24", help="terminal size for [2], e.g. 120x40")
    parser.add_argument("--skip", choices=("frame", "latency"), help="skip one part")
    args = parser.parse_args()
    w, h = (int(x) for x in args.size.lower().split("x"))
    began = time.perf_counter()
    if args.skip != "frame":
        bench_first_frame(args.lines, args.runs)
    if args.skip != "latency":
        bench_latency(args.rate, args.seconds, (w, h))
    print(f"\ntotal bench time: {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
