"""``kobe risk status|trip|reset``: the kill switch from the command line."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine.audit import AuditLog
from engine.cli.shared import (
    EXIT_OK,
    EXIT_REFUSED,
    Context,
    UsageError,
    confirm,
    require_terminal_or_yes,
)
from engine.config import ConfigError
from engine.lock import DataDirBusy, DataDirLock
from engine.risk import (
    NOT_FLATTENED,
    KillState,
    RiskEngine,
    RiskState,
    load_risk_state,
    queue_risk_command,
    read_kill_switch,
)
from engine.router.orders import fmt_money
from engine.untrusted import operator_text


def _status(ctx: Context) -> RiskState:
    """Read-only: no queued command is applied and nothing is written."""
    return load_risk_state(ctx.settings.data_dir)


def cmd_status(ctx: Context) -> int:
    state = _status(ctx)
    s = state.snap
    ks = read_kill_switch(ctx.settings.data_dir)  # a queued trip already blocks entries
    queued = [
        {"id": c.id, "action": c.action, "reason": c.reason, "ts": c.ts, "source": c.source}
        for c in state.pending
    ]
    data = {
        "state": ks.state.value,
        "reason": ks.reason,
        "since": ks.since,
        "peak_equity": s.peak_equity,
        "drawdown_pct": s.drawdown_pct.quantize(_CENT) if s.drawdown_pct else s.drawdown_pct,
        "losing_streak": s.losing_streak,
        "queued": queued,
    }
    if ctx.args.json:
        ctx.json(data)
        return EXIT_OK
    ctx.print(f"kill switch: {ks.state.value}" + (f" ({ks.reason})" if ks.reason else ""))
    if ks.since is not None:
        ctx.print(f"since:       {data['since']:%Y-%m-%d %H:%M:%S} UTC")
    peak = "-" if s.peak_equity is None else f"{fmt_money(s.peak_equity)} USD"  # --json: exact
    ctx.print(f"peak equity: {peak}")
    ctx.print(f"drawdown:    {data['drawdown_pct']}%")
    ctx.print(f"losing streak: {s.losing_streak}")
    for c in state.pending:
        what = c.action + (f" ({c.reason})" if c.reason else "")
        ctx.print(f"queued:      {what} at {c.ts} from {c.source}, not applied yet")
    return EXIT_OK


def _apply(ctx: Context, action: str, flatten: bool = False, **detail: str) -> int:
    """Apply the command now if no engine holds the data dir; otherwise queue it for the engine.

    With the lock, the risk engine is loaded first (a lost state trips there, and commands
    queued before that are consumed), then the command is queued and applied: so an operator's
    reset always opens a trip that came from a lost state, and is audited.
    """
    settings = ctx.settings
    try:
        with DataDirLock(settings.data_dir, f"kobe risk {action}"):
            audit = AuditLog(settings.data_dir, ctx.clock)
            try:
                engine = RiskEngine(settings.data_dir, settings.config.risk, ctx.clock, audit=audit)
                queue_risk_command(settings.data_dir, action, "cli", ctx.clock, **detail)
                engine.apply_commands()
                engine.close()
            finally:
                audit.close()
            snap = engine.snapshot()
            ctx.print(
                f"kill switch: {snap.state.value}" + (f" ({snap.reason})" if snap.reason else "")
            )
            if flatten:
                ctx.print(
                    "on_trip is flatten: no engine is running, so Kobe's open entries and "
                    "positions are closed when an engine starts (kobe run, kobe-tui)"
                )
            ok = (snap.state is KillState.TRIPPED) == (action == "trip")
            return EXIT_OK if ok else EXIT_REFUSED
    except ConfigError as exc:  # a broken lock file: an emergency trip is still queued
        if action != "trip":
            raise
        queue_risk_command(settings.data_dir, action, "cli", ctx.clock, **detail)
        for line in exc.lines:
            print(f"kobe risk trip: {line}", file=ctx.err)
        ctx.print(
            "queued: the trip is in the risk commands, new entries are refused from now on; "
            "it is applied once the lock file is fixed"
        )
    except DataDirBusy as exc:
        queue_risk_command(settings.data_dir, action, "cli", ctx.clock, **detail)
        ctx.print(
            f"queued: {exc.holder} holds the data dir; a running engine applies it within one "
            "tick, otherwise the next command that opens the data dir does"
            + (" (new entries are refused from now on)" if action == "trip" else "")
        )
    return EXIT_OK


def cmd_trip(ctx: Context) -> int:
    settings = ctx.settings  # first: it registers the secrets the reason is redacted of
    reason = operator_text(ctx.args.reason).strip()
    if not reason:
        raise UsageError("--reason: must not be empty")
    flatten = settings.config.risk.on_trip == "flatten" and _confirm_flatten(ctx)
    if settings.config.risk.on_trip == "flatten" and not flatten:
        ctx.print(
            "not flattened: the trip blocks new entries; Kobe's open entries, positions and "
            "their protective exits stay"
        )
        return _apply(ctx, "trip", reason=f"{NOT_FLATTENED}: {reason}")
    return _apply(ctx, "trip", flatten=flatten, reason=f"manual: {reason}")


def _confirm_flatten(ctx: Context) -> bool:
    """The trip itself is never refused for want of a confirmation (it only blocks entries):
    the question is about the flatten, and no terminal to ask on means no flatten."""
    try:
        return confirm(
            ctx,
            "on_trip is flatten: also cancel Kobe's open entries and close its positions at "
            "market? (No: trip only)",
        )
    except UsageError:  # no terminal and no --yes
        ctx.print("no terminal to confirm the flatten on (--yes confirms it)")
        return False


def cmd_reset(ctx: Context) -> int:
    require_terminal_or_yes(ctx)
    s = read_kill_switch(ctx.settings.data_dir)
    question = (
        f"Reset the kill switch (now {s.state.value}" + (f": {s.reason}" if s.reason else "") + ")?"
    )
    if not confirm(ctx, question):
        ctx.print("not reset")
        return EXIT_REFUSED
    return _apply(ctx, "reset")


def register(sub: Any) -> None:
    p = sub.add_parser("risk", help="the kill switch: status, trip, reset")
    rsub = p.add_subparsers(dest="risk_command", metavar="ACTION")
    rsub.required = True
    s = rsub.add_parser("status", help="state, reason, since, peak equity, drawdown, streak")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=cmd_status)
    t = rsub.add_parser("trip", help="trip the kill switch by hand (a running engine obeys)")
    t.add_argument("--reason", required=True)
    t.add_argument("--yes", action="store_true", help="do not ask (with on_trip = flatten)")
    t.set_defaults(handler=cmd_trip)
    r = rsub.add_parser("reset", help="reset a tripped kill switch (audited)")
    r.add_argument("--yes", action="store_true")
    r.set_defaults(handler=cmd_reset)


_CENT = Decimal("0.01")
