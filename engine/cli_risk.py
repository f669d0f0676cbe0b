"""``kobe risk status|trip|reset``: the kill switch from the command line."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine.audit import AuditLog
from engine.cli import EXIT_OK, EXIT_REFUSED, Context, UsageError
from engine.cli_trade import confirm, require_terminal_or_yes
from engine.lock import DataDirBusy, DataDirLock
from engine.risk import RiskEngine, RiskSnapshot, load_risk_snapshot, queue_risk_command
from engine.untrusted import operator_text


def _status(ctx: Context) -> RiskSnapshot:
    """Read-only: no queued command is applied and nothing is written."""
    return load_risk_snapshot(ctx.settings.data_dir, ctx.clock)


def cmd_status(ctx: Context) -> int:
    s = _status(ctx)
    data = {
        "state": s.state.value,
        "reason": s.reason,
        "since": s.since,
        "peak_equity": s.peak_equity,
        "drawdown_pct": s.drawdown_pct.quantize(_CENT) if s.drawdown_pct else s.drawdown_pct,
        "losing_streak": s.losing_streak,
    }
    if ctx.args.json:
        ctx.json(data)
        return EXIT_OK
    ctx.print(f"kill switch: {s.state.value}" + (f" ({s.reason})" if s.reason else ""))
    if s.since is not None:
        ctx.print(f"since:       {data['since']:%Y-%m-%d %H:%M:%S} UTC")
    ctx.print(f"peak equity: {s.peak_equity if s.peak_equity is not None else '-'}")
    ctx.print(f"drawdown:    {data['drawdown_pct']}%")
    ctx.print(f"losing streak: {s.losing_streak}")
    return EXIT_OK


def _apply(ctx: Context, action: str, **detail: str) -> int:
    """Queue the command; apply it now if no engine holds the data dir, else the engine will."""
    settings = ctx.settings
    queue_risk_command(settings.data_dir, action, "cli", ctx.clock, **detail)
    try:
        with DataDirLock(settings.data_dir, f"kobe risk {action}"):
            audit = AuditLog(settings.data_dir, ctx.clock)
            try:
                engine = RiskEngine(settings.data_dir, settings.config.risk, ctx.clock, audit=audit)
            finally:
                audit.close()
            snap = engine.snapshot()
            ctx.print(
                f"kill switch: {snap.state.value}" + (f" ({snap.reason})" if snap.reason else "")
            )
    except DataDirBusy as exc:
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
    if settings.config.risk.on_trip == "flatten" and not confirm(
        ctx,
        "on_trip is flatten: trip, cancel Kobe's open entries and close its positions at market?",
    ):
        ctx.print("not tripped")
        return EXIT_REFUSED
    return _apply(ctx, "trip", reason=f"manual: {reason}")


def cmd_reset(ctx: Context) -> int:
    require_terminal_or_yes(ctx)
    s = _status(ctx)
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
