"""``kobe keys [--ping]`` and ``kobe health``: which variables are set, and the health checks."""

from __future__ import annotations

from typing import Any

from engine.cli.shared import EXIT_OK, EXIT_REFUSED, Context
from engine.config import Mode
from engine.health import health_checks, key_checks, withdraw_check
from engine.modes import Settings, gate_problems
from engine.secrets import EXCHANGE_KEY_VARS


def expected_vars(settings: Settings) -> list[str]:
    names = [*EXCHANGE_KEY_VARS[settings.exchange], settings.testnet_flag]
    if settings.mode is Mode.LIVE:
        names.append("ALLOW_LIVE")
    names += ["RPC_SOLANA_HTTP", "RPC_SOLANA_WS"]
    return names


def ping_exchange(settings: Settings) -> tuple[bool, str]:
    """``kobe keys --ping``: the exchange's time endpoint, through the gate (GateClosed: exit 1).

    Paper never touches the network (nor imports ccxt). Read-only, so live needs every condition
    of the gate except ``--confirm-live``.
    """
    if settings.mode is Mode.PAPER:
        return True, "paper: no network"
    from engine.exchange.base import ExchangeError
    from engine.exchange.ccxt_exchange import CcxtExchange
    from engine.exchange.retry import RetryPolicy

    policy = RetryPolicy(max_attempts=2, max_total_s=10.0)
    exchange = CcxtExchange.reader_from_settings(settings, retry=policy)
    where = settings.api_url or ("testnet" if settings.mode is Mode.TESTNET else "live")
    try:
        ms = exchange.ping()
    except ExchangeError as exc:
        return False, f"{settings.exchange} ({where}): ping failed: {exc}"
    finally:
        exchange.close()
    return True, f"{settings.exchange} ({where}): time endpoint answered in {ms:.0f} ms"


def _state(settings: Settings, name: str) -> str:
    """``set`` or ``missing``; a switch that counts only as ``1`` says so when it is not."""
    value = settings.env.get(name, "")
    if not value.strip():  # blank is no value (the gate counts a blank key as missing)
        return "missing"
    if name == "ALLOW_LIVE" and value != "1":
        return "set, not 1: ignored"
    if name == settings.testnet_flag and value != "1":  # live refuses any marking but 0
        return "set, not 1: no testnet marking" + (", live refuses it" if value != "0" else "")
    return "set"


def cmd_keys(ctx: Context) -> int:
    s = ctx.settings
    status = {name: _state(s, name) for name in expected_vars(s)}
    ping = ping_exchange(s) if getattr(ctx.args, "ping", False) else None
    warnings = [c for c in key_checks(s) if c.warning] if ping is not None else []
    code = EXIT_OK if ping is None or ping[0] else EXIT_REFUSED
    if ctx.args.json:
        report: dict[str, Any] = {"exchange": s.exchange, "mode": s.mode.value, "variables": status}
        if ping is not None:
            report["ping"] = {"ok": ping[0], "detail": ping[1]}
            report["warnings"] = [f"{c.name}: {c.detail}" for c in warnings]
        ctx.json(report)
        return code
    ctx.print(f"exchange: {s.exchange}")
    ctx.print(f"mode:     {s.mode.value}")
    width = max(len(n) for n in status)
    for name, state in status.items():
        ctx.print(f"  {name:<{width}}  {state}")
    if ping is not None:
        ctx.print(f"ping:     {ping[1]}")
    for c in warnings:
        ctx.print(f"warning:  {c.name}: {c.detail}")
    return code


def cmd_health(ctx: Context) -> int:
    s = ctx.settings
    checks = health_checks(s)
    if s.mode is not Mode.PAPER and not gate_problems(s, confirmed=True):
        checks.append(withdraw_check(s))
    all_ok = all(c.ok for c in checks)
    if ctx.args.json:
        ctx.json(
            {
                "mode": s.mode.value,
                "exchange": s.exchange,
                "ok": all_ok,
                "checks": [
                    {"name": c.name, "ok": c.ok, "detail": c.detail, "warning": c.warning}
                    for c in checks
                ],
            }
        )
    else:
        ctx.print(f"mode: {s.mode.value}   exchange: {s.exchange}")
        for c in checks:
            state = "FAIL" if not c.ok else "warn" if c.warning else "ok  "
            ctx.print(f"  {state}  {c.name}: {c.detail}")
        ctx.print("healthy" if all_ok else "NOT healthy")
    return EXIT_OK if all_ok else EXIT_REFUSED


def register_keys(sub: Any) -> None:
    p = sub.add_parser("keys", help="which key variables are set (never their values)")
    p.add_argument("--ping", action="store_true", help="ping the exchange's time endpoint")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_keys)


def register_health(sub: Any) -> None:
    p = sub.add_parser("health", help="checks for the configured mode; exit 0 only if all pass")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_health)
