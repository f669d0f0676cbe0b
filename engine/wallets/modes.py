"""Live money is never mixed with play money in one data dir.

The wallets' ledger (``wallets_runtime.json``, ``wallet_flows.jsonl``) and ``trades.jsonl`` record
the mode of the engine that wrote each of them. Paper and testnet may share a data dir (both are
play money: a trader practises in paper, then tries the testnet). Live may not share with either:
a paper profit in the ledger would size a live order with money that does not exist, a paper win
would end a live losing streak, and a live trade booked into a paper ledger would leave live's
own records. So a live engine refuses a data dir whose last money records are another mode's, or
carry no mode (written before Kobe recorded it: their mode is not known), and a paper or testnet
engine refuses a data dir whose money records are live's. A record whose mode is there but is not
one of Kobe's (``"LIVE"``, ``5``) is damage: every mode refuses it (whose money it is cannot be
known; a paper engine took live's money that way). Nothing is written when it refuses:
the engine and ``kobe trade`` check right after taking the data dir's lock, before the exchange
or any journal is opened, and the wallet manager checks again on every start (its
``WalletStateError``: exit 1 on the CLI).

The mode of each file is read from its last record (the snapshot's ``state.mode``, the last line
of each journal); a deleted snapshot leaves the journals to say it, so no lost file lets a mode in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.bootstrap import Mode
from engine.journal import tail_jsonl

LIVE = Mode.LIVE.value


DAMAGED = "damaged"  # a record's mode that is there but is not one of Kobe's


def recorded_mode(record: Any) -> str | None:
    """A record's ``mode``: one of Kobe's modes, None when it has none (written before modes
    were recorded), :data:`DAMAGED` when it has one that is not a mode."""
    if not isinstance(record, dict) or "mode" not in record:
        return None
    mode = record["mode"]
    return mode if mode in tuple(Mode) else DAMAGED


def _snapshot_mode(path: Path) -> tuple[str | None, bool]:
    """(the snapshot's ``state.mode``, whether it holds a ledger). A damaged one holds none
    here: the wallet manager refuses it, naming the damage."""
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None, False
    state = doc.get("state") if isinstance(doc, dict) else None
    return recorded_mode(state), isinstance(state, dict)


def money_mode_problem(mode: str, snapshot: Path, journals: list[Path]) -> str | None:
    """Why an engine in ``mode`` may not book on these money files, or None.

    One of them live and the other not: refused; a damaged mode: refused in every mode.
    ``snapshot``: the wallets snapshot (its ``state.mode``); ``journals``: the flows journal and
    ``trades.jsonl`` (their last readable line's ``mode``). A file that is absent or holds no
    record says nothing.
    """
    found = [(snapshot, *_snapshot_mode(snapshot))]
    for path in journals:
        last = tail_jsonl(path, 1)
        found.append((path, recorded_mode(last[-1]) if last else None, bool(last)))
    for path, recorded, present in found:
        if present and recorded == DAMAGED:
            return (
                f"{path} holds money records with a damaged mode (not paper, testnet or live): "
                "whose money it is cannot be known. Nothing was written. Repair its last "
                "record's mode or restore it from a backup"
            )
        if not present or (mode == LIVE) == (recorded == LIVE):
            continue
        said = f"money recorded in {recorded}" if recorded else "money records with no mode"
        why = (
            "live books only live's money"
            if mode == LIVE
            else "live's money is never mixed with play money"
        )
        other = "data-live" if mode == LIVE else f"data-{mode}"
        return (
            f"{path} holds {said}; this engine runs in {mode}: {why}. Nothing was written. "
            f"Give {mode} its own data dir (KOBE_DATA_DIR={other}, or paths.data_dir in kobe.toml)"
        )
    return None
