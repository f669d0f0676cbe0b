"""``kobe run --headless``: the engine without the UI, one line per event on stdout."""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from types import FrameType
from typing import Any

from engine.cli.shared import EXIT_OK, EXIT_REFUSED, Context, UsageError, number_arg
from engine.config import MAX_SEED, YEAR_S
from engine.exchange.base import AuthenticationError
from engine.fsutil import REPAIR_OR_RESTORE, reading
from engine.journal import OrderEvent, read_event, tail_jsonl
from engine.jsonutil import iso_utc
from engine.lock import DataDirBusy
from engine.modes import Settings
from engine.risk import RiskSnapshot
from engine.runtime import Runtime
from engine.runtime_types import AlertEvent, EngineEvent, RuntimeStatus, SimClock
from engine.trades import ClosedTrade
from engine.untrusted import parse_utc
from engine.wallets.snapshot import WalletsSnapshot

SIM_TICK_SECONDS = 60  # one simulated tick = one minute of market time
MAX_TICKS = 10_000_000


def last_recorded_time(settings: Settings) -> datetime | None:
    """The latest time the data dir has recorded (order journal tail, wallets snapshot).

    A snapshot's time that no clock of Kobe's writes (no timezone, out of range) is a damaged
    file, named: the simulated clock would start there.
    """
    times: list[datetime] = []
    journal = settings.data_dir / "logs" / "orders.jsonl"
    for record in reversed(tail_jsonl(journal, 16)):  # the last line readers do not skip
        event = read_event(record, journal)
        if event is not None:
            times.append(event.ts)
            break
    snapshot = settings.data_dir / "wallets_runtime.json"
    try:  # a damaged snapshot is refused, naming it, by the wallet manager
        raw = json.loads(snapshot.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        raw = None
    if isinstance(raw, dict) and raw.get("time"):
        with reading(snapshot, REPAIR_OR_RESTORE):
            times.append(parse_utc(raw["time"], "time"))
    return max(times) if times else None


def with_seed(settings: Settings, seed: int | None) -> Settings:
    """The settings with every seed (paper feed, strategies) replaced by ``seed``."""
    if seed is None:
        return settings
    from engine.agent import reseed

    cfg = settings.config
    cfg = cfg.model_copy(update={"paper": cfg.paper.model_copy(update={"seed": seed})})
    return dataclasses.replace(settings, config=reseed(cfg, seed))


def describe(event: EngineEvent) -> str | None:
    """One line for an event; None for the high-rate ones that would flood the log."""
    p = event.payload
    when = iso_utc(event.time)
    if event.kind == "order" and isinstance(p, OrderEvent):
        price = f" @ {p.avg_price or p.price}" if (p.avg_price or p.price) else ""
        why = f" ({p.reason})" if p.reason else ""
        return (
            f"{when} order  {p.event:<12} {p.exchange:<7} {p.client_id} {p.side} {p.qty} "
            f"{p.symbol}{price} {p.wallet}{why}"
        )
    if event.kind == "trade" and isinstance(p, ClosedTrade):
        return (
            f"{when} trade  closed {p.symbol} {p.wallet} {p.strategy} qty {p.qty} "
            f"{p.entry_price} -> {p.exit_price} pnl {p.pnl.quantize(Decimal('0.0001'))} ({p.reason})"
        )
    if event.kind == "alert" and isinstance(p, AlertEvent):
        return f"{when} alert  {p.severity.upper()} {p.code}: {p.message}"
    if event.kind == "risk" and isinstance(p, RiskSnapshot):
        return f"{when} risk   {p.state.value}" + (f" ({p.reason})" if p.reason else "")
    if event.kind == "state" and isinstance(p, RuntimeStatus):
        return f"{when} engine {p.state.value}" + (f": {p.error}" if p.error else "")
    return None  # prices and wallet snapshots: every tick


DEFAULT_TICK_S = 5  # --duration: seconds between two wall-clock ticks


def cmd_run(ctx: Context) -> int:
    args = ctx.args
    if not args.headless:
        raise UsageError("run needs --headless (the cockpit is kobe-tui)")
    if (args.ticks is None) == (args.duration is None):
        raise UsageError("give exactly one of --ticks N or --duration SECONDS")
    if args.ticks is not None and args.tick is not None:
        raise UsageError("--tick: only with --duration (--ticks steps one simulated minute)")
    settings = with_seed(ctx.settings, args.seed)
    from engine.agent import build_agent

    clock: Callable[[], Any]
    if args.ticks is not None:
        # a simulated clock never runs backwards over a data dir that already has a history
        start = max(
            settings.config.paper.sim_start,
            last_recorded_time(settings) or datetime.min.replace(tzinfo=UTC),
        )
        sim = SimClock(start)
        clock = sim
        tick_seconds: float = SIM_TICK_SECONDS
    else:
        clock = ctx.clock
        tick_seconds = float(args.tick if args.tick is not None else DEFAULT_TICK_S)
    runtime = Runtime(
        settings,
        confirmed=args.confirm_live,
        clock=clock,
        tick_seconds=tick_seconds,
        agent_factory=build_agent,
    )
    last_wallets: list[WalletsSnapshot] = []
    risk_state: list[str] = []
    broken: list[bool] = []
    finance_alerts: set[str] = set()  # codes shown: once while each lasts

    def on_event(event: EngineEvent) -> None:
        if runtime.stopping and broken:
            return
        if isinstance(event.payload, WalletsSnapshot):
            last_wallets[:] = [event.payload]
            active = {a.code for a in event.payload.alerts}
            for a in event.payload.alerts:
                if a.code not in finance_alerts:
                    show(f"{iso_utc(event.time)} alert  {a.severity.upper()} {a.code}: {a.message}")
            finance_alerts.clear()
            finance_alerts.update(active)
        if isinstance(event.payload, RiskSnapshot):
            key = f"{event.payload.state.value}|{event.payload.reason}"
            if risk_state == [key]:
                return  # one line per change of state, not one per tick
            risk_state[:] = [key]
        line = describe(event)
        if line is not None:
            show(line)

    def show(line: str) -> None:
        try:
            print(line, file=ctx.out, flush=True)
        except BrokenPipeError:  # `kobe run ... | head`: stop cleanly, journals complete
            broken.append(True)
            runtime.request_stop()

    runtime.subscribe(on_event)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        print(f"signal {signal.Signals(signum).name}: finishing the current step", file=ctx.err)
        runtime.request_stop()

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for sig in previous:
            signal.signal(sig, on_signal)
    except ValueError:  # not the main thread (tests): no handlers
        previous = {}
    try:
        try:
            runtime.build()
        except DataDirBusy as exc:
            print(f"kobe run: {exc}", file=ctx.err)
            return EXIT_REFUSED
        except AuthenticationError as exc:
            print(f"kobe run: the engine did not start: {exc}", file=ctx.err)
            return EXIT_REFUSED
        s = settings
        print(
            f"kobe run: {s.mode.value} on {s.exchange}; data {s.data_dir}; "
            "Solana wallets trade on a simulated paper DEX venue (no transaction is ever sent)",
            file=ctx.out,
            flush=True,
        )
        if args.ticks is not None:
            runtime.run_ticks(args.ticks, advance=lambda: sim.advance(SIM_TICK_SECONDS))
        else:
            deadline = time.monotonic() + float(args.duration)
            runtime.run_forever(lambda: time.monotonic() >= deadline)
    finally:
        runtime.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if runtime.close_failure is not None:  # the last saves failed: never "done" with exit 0
        raise runtime.close_failure
    if runtime.failure:  # the engine stopped on an error: say so, and not with exit 0
        print(f"kobe run: the engine stopped on an error: {runtime.failure}", file=ctx.err)
        return EXIT_REFUSED
    if last_wallets and not broken:
        w = last_wallets[0]
        print(
            f"done: {runtime.status().ticks} ticks; equity {w.equity_total_usd:.2f} USD, "
            f"pnl today {w.pnl_day:.2f}",
            file=ctx.out,
        )
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run the engine: kobe run --headless (--ticks N | --duration S)")
    p.add_argument("--headless", action="store_true", help="without the cockpit")
    p.add_argument(
        "--ticks",
        type=number_arg(maximum=Decimal(MAX_TICKS), integer=True),
        help="N ticks on a simulated clock from paper.sim_start",
    )
    p.add_argument(
        "--duration",
        type=number_arg(maximum=Decimal(YEAR_S)),
        help="run for SECONDS on the wall clock (at most a year)",
    )
    p.add_argument(
        "--tick",
        type=number_arg(maximum=Decimal(86_400)),
        help=f"seconds between wall-clock ticks (default {DEFAULT_TICK_S}; with --duration)",
    )
    p.add_argument(
        "--seed",
        type=number_arg(minimum=Decimal(-1), maximum=Decimal(MAX_SEED), integer=True),
        help="replace every seed (paper feed, strategies)",
    )
    p.add_argument("--confirm-live", action="store_true", help="the explicit live confirmation")
    p.set_defaults(handler=cmd_run)
