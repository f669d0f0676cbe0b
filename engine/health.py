"""The health checks: ``kobe health``, ``kobe keys --ping`` and the cockpit's health pane.

Each check is a name, a pass or fail, and a detail in words; a warning passes but asks the
operator to act. Nothing here writes, and paper never imports ccxt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.config import Mode
from engine.fsutil import StateError, dir_writable, free_space_check
from engine.modes import LIVE_URL_REFUSED, GateClosed, Settings, gate_problems
from engine.untrusted import clean_text


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False  # passes, but the operator should act (shown as "warn")


def readable_by_others(path: Path) -> bool:
    """Group or other users may read ``path`` (or, for a directory, list or enter it)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & (0o055 if path.is_dir() else 0o044))


def permission_checks(settings: Settings) -> list[Check]:
    """Testnet and live: warn when ``.env`` (the keys) or the data dir can be read by others."""
    checks: list[Check] = []
    for label, path, fix in (
        (".env", settings.cwd / ".env", "chmod 600"),
        ("data dir", settings.data_dir, "chmod 700"),
    ):
        if not path.exists():
            continue
        shown = settings.display_path(path)
        if readable_by_others(path):
            detail = f"{shown} can be read by other users: {fix} {shown}"
            checks.append(Check(f"{label} private", True, detail, warning=True))
        else:
            checks.append(Check(f"{label} private", True, f"{shown}: only its owner can read it"))
    return checks


def notify_checks(settings: Settings) -> list[Check]:
    """One check per channel of ``[notify] channels``.

    A channel passes when its variables are set and its last delivery (as the engine saved it in
    ``<data dir>/notify/status.json``) did not fail. Secret values are never part of a detail.
    """
    from engine.notify.channels import build_channels
    from engine.notify.notifier import read_statuses

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


def withdraw_check(settings: Settings) -> Check:
    """Testnet and live: whether the API key may withdraw (a key for Kobe needs only trading).

    A warning, not a failure: Kobe never withdraws, but a key that can is worth more to a thief.
    """
    from engine.exchange.base import ExchangeError
    from engine.exchange.ccxt_exchange import CcxtExchange
    from engine.exchange.retry import RetryPolicy

    policy = RetryPolicy(max_attempts=2, max_total_s=10.0)
    try:
        exchange = CcxtExchange.reader_from_settings(settings, retry=policy)  # reads only
    except GateClosed:
        return Check("key withdrawals", True, "not checked: the keys cannot be used in this mode")
    try:
        can = exchange.can_withdraw()
    except ExchangeError as exc:
        return Check("key withdrawals", True, f"could not be read: {exc}", warning=True)
    finally:
        exchange.close()
    if can is None:
        detail = f"{settings.exchange} does not report it here: check the key's permissions"
        return Check("key withdrawals", True, detail, warning=True)
    if can:
        detail = "this API key may withdraw funds: give Kobe a key without withdrawal permission"
        return Check("key withdrawals", True, detail, warning=True)
    return Check("key withdrawals", True, "this API key cannot withdraw")


def money_checks(settings: Settings) -> list[Check]:
    """A failed check when the data dir's money is another mode's (or damaged), as the engine
    would refuse it at start (:mod:`engine.wallets.modes`); no row when it is this mode's."""
    from engine.wallets.runtime import refuse_other_modes_money

    try:
        refuse_other_modes_money(settings.data_dir, settings.mode.value)
    except StateError as exc:
        return [Check("data dir money", False, clean_text(str(exc), 600))]
    return []


def key_checks(settings: Settings) -> list[Check]:
    """``kobe keys --ping``: the warnings about where the keys are and what they may do."""
    if settings.mode is Mode.PAPER:
        return []
    return [*permission_checks(settings), withdraw_check(settings)]


def health_checks(settings: Settings) -> list[Check]:
    """The checks for the configured mode. Confirmation is an action, not a health condition.
    With ``RPC_SOLANA_HTTP`` set: "solana rpc" (the endpoint answers; the indexer's slot lag)."""
    checks: list[Check] = [
        Check("config valid", True, f"{settings.config_source}"),
    ]
    mode = settings.mode
    if mode is Mode.PAPER:
        checks.append(Check("mode allowed", True, "paper: offline, simulated fills"))
        checks.append(Check("keys present", True, "not needed in paper"))
    else:
        problems = gate_problems(settings, confirmed=True)
        missing = settings.missing_keys()
        checks.append(
            Check(
                "keys present",
                not missing,
                f"{settings.exchange}: "
                + (("missing " + ", ".join(missing)) if missing else ", ".join(settings.key_vars)),
            )
        )
        if mode is Mode.TESTNET:
            marked = settings.keys_marked_testnet()
            checks.append(
                Check(
                    "testnet keys",
                    marked,
                    f"{settings.testnet_flag}=1"
                    if marked
                    else (
                        f"{settings.testnet_flag}=1 from .env does not apply to keys from "
                        "the environment"
                        if settings.marking_ignored()
                        else f"{settings.testnet_flag} is not 1"
                    ),
                )
            )
        else:
            allow = settings.allow_live()
            checks.append(
                Check("ALLOW_LIVE", allow, "ALLOW_LIVE=1" if allow else "ALLOW_LIVE is not 1")
            )
            marked = settings.testnet_flag_raised()
            checks.append(
                Check(
                    "live keys",
                    not marked,
                    f"{settings.testnet_flag}=1 marks them testnet"
                    if settings.testnet_flag_set()
                    else f"{settings.testnet_flag} is set (not 0): may mark them testnet"
                    if marked
                    else "not testnet",
                )
            )
            if settings.api_url:  # every unmet condition has its line
                checks.append(Check("exchange url", False, LIVE_URL_REFUSED))
        checks.append(
            Check(
                "mode allowed",
                not problems,
                (
                    f"{mode.value} refused: {len(problems)} condition(s) unmet"
                    if problems
                    else f"{mode.value} on {settings.exchange}"
                ),
            )
        )
    ok, detail = dir_writable(settings.data_dir, settings.display_path(settings.data_dir))
    checks.append(Check("data dir writable", ok, detail))
    ok, detail = free_space_check(settings.data_dir, settings.config.paths.min_free_mb)
    checks.append(Check("data dir free space", ok, detail))
    checks += money_checks(settings)
    if mode is not Mode.PAPER:
        checks += permission_checks(settings)
    checks += notify_checks(settings)  # one per channel of [notify] channels (none: no row)
    if settings.secrets.is_set("RPC_SOLANA_HTTP"):
        from engine.indexer.setup import rpc_health

        ok, detail = rpc_health(settings)  # the URL is a secret: never in the detail
        checks.append(Check("solana rpc", ok, detail))
    return checks
