"""The paper account's state file: ``<data_dir>/paper/state.json``.

State (balances, orders, entry prices, counters, the feed and its RNG) is written atomically
after every change and read back on construction. An unreadable file raises
:class:`PaperStateError`: the paper account is never silently reset.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.exchange.paper.account import PaperAccount
from engine.exchange.paper.markets import PaperMarket
from engine.exchange.paper.orders import OrderRecord
from engine.exchange.prices import PriceSource
from engine.fsutil import StateError, atomic_write_text
from engine.jsonutil import dumps
from engine.money import ZERO
from engine.untrusted import parse_decimal

log = logging.getLogger(__name__)

STATE_VERSION = 1
STATE_DIR = "paper"
STATE_FILE = "state.json"


class PaperStateError(StateError):
    """The paper account's state file cannot be read. Nothing was reset or overwritten."""


def state_path(data_dir: Path | None, state_dir: str = STATE_DIR) -> Path | None:
    """Where the state of the venue kept under ``<data_dir>/<state_dir>/`` lives (None: memory)."""
    return None if data_dir is None else Path(data_dir) / state_dir / STATE_FILE


def write_state(path: Path, account: PaperAccount, *, fresh: bool, prices: PriceSource) -> None:
    a = account
    assets = sorted(set(a.free) | set(a.locked))
    state: dict[str, Any] = {
        "version": STATE_VERSION,
        "fresh": fresh,
        "seed": a.seed,
        "counters": {"order": a.order_seq, "client": a.client_seq, "list": a.list_seq},
        "balances": {
            x: {"free": a.free.get(x, ZERO), "locked": a.locked.get(x, ZERO)} for x in assets
        },
        "entry_prices": dict(sorted(a.entry.items())),
        "orders": [r.to_json() for r in a.orders.values()],
        "feed": prices.state(),
    }
    atomic_write_text(path, dumps(state, indent=1) + "\n")


def read_state(
    path: Path, account: PaperAccount, markets: Mapping[str, PaperMarket], prices: PriceSource
) -> bool:
    """Restore ``account`` and ``prices`` from ``path``; whether the account is still fresh.

    On :class:`PaperStateError` the account is as it was.
    """

    def broken(problem: str) -> PaperStateError:
        return PaperStateError(
            f"paper state {path} is unreadable ({problem}); the paper account was not reset: "
            f"repair the file, or delete {path.parent} to start again from the configured "
            f"balances"
        )

    def amount(value: object, name: str) -> Decimal:
        return parse_decimal(value, name, minimum=ZERO)

    try:
        raw = json.loads(path.read_text("utf-8"), parse_float=Decimal)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise broken(str(exc)) from None
    if not isinstance(raw, dict):
        raise broken("not a JSON object")
    if raw.get("version") != STATE_VERSION:
        raise broken(f"version {raw.get('version')!r}, expected {STATE_VERSION}")
    try:
        counters = raw["counters"]
        order_seq, client_seq = int(counters["order"]), int(counters["client"])
        list_seq = int(counters["list"])
        free = {str(a): amount(b["free"], f"{a}.free") for a, b in raw["balances"].items()}
        locked = {str(a): amount(b["locked"], f"{a}.locked") for a, b in raw["balances"].items()}
        entry = {str(a): amount(p, f"entry_prices.{a}") for a, p in raw["entry_prices"].items()}
        orders = [OrderRecord.from_json(o) for o in raw["orders"]]
        feed = raw["feed"]
        feed_kind = feed["kind"]
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        raise broken(f"bad field: {exc!r}") from None
    for rec in orders:
        if rec.status.is_open and rec.symbol not in markets:
            raise broken(f"open order {rec.id} is on {rec.symbol}, not a paper market")
    held: dict[str, Decimal] = {}
    for rec in orders:
        if rec.reserved:
            held[rec.reserve_asset] = held.get(rec.reserve_asset, ZERO) + rec.reserved
    for asset in set(held) | set(locked):
        if held.get(asset, ZERO) != locked.get(asset, ZERO):
            raise broken(
                f"{asset} locked {locked.get(asset, ZERO)} but the open orders hold "
                f"{held.get(asset, ZERO)}"
            )
    if feed_kind == prices.kind:
        try:
            prices.restore(feed)
        except ValueError as exc:
            raise broken(str(exc)) from None
    else:
        log.warning(
            "paper state %s: prices were from a %r source, now %r: starting prices afresh",
            path,
            feed_kind,
            prices.kind,
        )
    account.free, account.locked, account.entry = free, locked, entry
    account.orders = {rec.id: rec for rec in orders}
    account.order_seq, account.client_seq, account.list_seq = order_seq, client_seq, list_seq
    return raw.get("fresh") is True
