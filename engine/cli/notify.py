"""``kobe notify test``: one message to each channel of ``[notify] channels``, each result said.

The channels are tried at the same time (a thread each): the command takes about the slowest
channel's time, never the sum.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from engine.cli.shared import EXIT_OK, EXIT_REFUSED, Context
from engine.exchange.base import ExchangeError
from engine.exchange.retry import RetryPolicy
from engine.notify.channels import Channel, build_channels
from engine.notify.notes import Note
from engine.notify.sender import deliver
from engine.secrets import redact

TEST_RETRY = RetryPolicy(max_attempts=3, max_total_s=15.0, base_delay_s=1.0)


def _try(channel: Channel, note: Note) -> dict[str, object]:
    """One test message to ``channel`` (its retries included): its result line."""
    try:
        deliver(channel, [note], TEST_RETRY)
    except ExchangeError as exc:
        detail = redact(str(exc)).removeprefix(f"{channel.name}: ")
        return {"channel": channel.name, "ok": False, "detail": detail}
    return {"channel": channel.name, "ok": True, "detail": "delivered"}


def cmd_test(ctx: Context) -> int:
    s = ctx.settings
    notify = s.config.notify
    if not notify.channels:
        message = 'no channel: list "telegram" and/or "webhook" in [notify] channels (kobe.toml)'
        if ctx.args.json:
            ctx.json({"ok": False, "detail": message, "channels": []})
        else:
            ctx.print(message)
        return EXIT_REFUSED
    timeout = float(s.config.exchange.timeout_ms) / 1000
    channels, missing = build_channels(notify, s.env, timeout)
    note = Note.make(
        "test",
        "info",
        ctx.clock(),
        s.mode.value,
        "Test notification",
        "kobe notify test: this channel reaches you",
        venue=s.exchange,
    )
    results = [
        {"channel": n, "ok": False, "detail": f"not configured: {w}"} for n, w in missing.items()
    ]
    if channels:  # all at once: one endpoint that hangs costs its own time, not the others'
        with ThreadPoolExecutor(len(channels), thread_name_prefix="kobe-notify-test") as pool:
            results += pool.map(lambda channel: _try(channel, note), channels)
    order: dict[str, int] = {name: i for i, name in enumerate(notify.channels)}
    results.sort(key=lambda r: order[str(r["channel"])])
    all_ok = all(r["ok"] for r in results)
    if ctx.args.json:
        ctx.json({"ok": all_ok, "channels": results})
    else:
        for r in results:
            ctx.print(f"  {'ok  ' if r['ok'] else 'FAIL'}  {r['channel']}: {r['detail']}")
    return EXIT_OK if all_ok else EXIT_REFUSED


def register(sub: Any) -> None:
    p = sub.add_parser("notify", help="notifications: test the channels of [notify]")
    nsub = p.add_subparsers(dest="notify_command", metavar="ACTION")
    nsub.required = True
    t = nsub.add_parser("test", help="send one message to each configured channel")
    t.add_argument("--json", action="store_true")
    t.set_defaults(handler=cmd_test)
