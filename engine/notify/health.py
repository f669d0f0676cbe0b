"""``kobe health``: one check per channel of ``[notify] channels``.

A channel passes when its variables are set and its last delivery (as the engine saved it in
``<data dir>/notify/status.json``) did not fail. Secret values are never part of a detail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.notify.channels import build_channels
from engine.notify.notifier import read_statuses
from engine.untrusted import clean_text

if TYPE_CHECKING:
    from engine.modes import Check, Settings


def notify_checks(settings: Settings) -> list[Check]:
    from engine.modes import Check

    channels, missing = build_channels(settings.config.notify, settings.env)
    saved = read_statuses(settings.data_dir)
    checks = [
        Check(f"notify {name}", False, f"not configured: {why}") for name, why in missing.items()
    ]
    for channel in channels:
        last = saved.get(channel.name)
        detail = channel.describe()
        ok = True
        if not isinstance(last, dict) or last.get("ok") is None:
            detail += "; no delivery by the engine yet"
        else:
            ok = last.get("ok") is True
            when = clean_text(last.get("at") or "", 40)
            what = clean_text(last.get("detail") or "", 300)
            detail += f"; last delivery {'ok' if ok else 'FAILED'} at {when}: {what}"
        checks.append(Check(f"notify {channel.name}", ok, detail))
    order = [f"notify {name}" for name in settings.config.notify.channels]
    return sorted(checks, key=lambda c: order.index(c.name))
