"""``kobe indexer scan --slots N`` and ``kobe indexer status [--json]``: the read-only Solana
indexer. The endpoint is ``RPC_SOLANA_HTTP`` (a secret: never printed)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine.cli.shared import EXIT_OK, EXIT_REFUSED, Context, UsageError, number_arg
from engine.exchange.base import ExchangeError
from engine.exchange.retry import RetryPolicy
from engine.indexer.indexer import IndexerState
from engine.indexer.rpc import BadRpcUrl, SolanaRpc
from engine.indexer.setup import INDEXER_DIR, RPC_VAR, make_indexer, make_rpc
from engine.lock import DataDirBusy

__all__ = ["INDEXER_DIR", "RPC_VAR", "make_indexer", "make_rpc", "register"]

SCAN_RETRY = RetryPolicy()  # the exchange layer's defaults: 5 attempts, 30 s at most
STATUS_RETRY = RetryPolicy(max_attempts=2, max_total_s=5.0)  # status answers quickly
MAX_SLOTS = 10_000  # slots one scan may read


def register(sub: Any) -> None:
    p = sub.add_parser("indexer", help="the read-only Solana indexer (scan, status)")
    isub = p.add_subparsers(dest="indexer_command", metavar="ACTION")
    isub.required = True
    s = isub.add_parser("scan", help="index up to N recent slots after the last one indexed")
    s.add_argument(
        "--slots",
        type=number_arg(maximum=Decimal(MAX_SLOTS), integer=True),
        default=50,
        help=f"at most this many slots, 1 to {MAX_SLOTS} (default 50)",
    )
    s.set_defaults(handler=cmd_scan)
    st = isub.add_parser("status", help="last slot indexed, lines written, endpoint and lag")
    st.add_argument("--json", action="store_true")
    st.set_defaults(handler=cmd_status)


def _rpc(ctx: Context, policy: RetryPolicy) -> SolanaRpc | None:
    """The client; a malformed ``RPC_SOLANA_HTTP`` is bad config (exit 2), not a node down."""
    try:
        return make_rpc(ctx.settings, policy)
    except BadRpcUrl as exc:
        raise UsageError(str(exc)) from None


def cmd_scan(ctx: Context) -> int:
    s = ctx.settings
    rpc = _rpc(ctx, SCAN_RETRY)
    if rpc is None:
        print(
            f"kobe: indexer scan: {RPC_VAR} is not set (the Solana JSON-RPC endpoint)", file=ctx.err
        )
        return EXIT_REFUSED
    indexer = make_indexer(s, rpc)
    try:
        result = indexer.scan(ctx.args.slots)  # ExchangeError: exit 1 in main, already redacted
    except DataDirBusy as exc:  # another scan (or an engine following new slots) is under way
        print(f"kobe indexer scan: {exc}", file=ctx.err)
        return EXIT_REFUSED
    if result.first_slot is None:
        ctx.print(f"nothing new: already at slot {result.current_slot}")
        return EXIT_OK
    ctx.print(
        f"slots {result.first_slot}..{result.last_slot} ({result.slots} read, "
        f"{result.skipped} skipped, {result.malformed} malformed): "
        f"{result.candidates} candidates, {result.swaps} swaps written "
        f"({result.mint_tos} mint-to, {result.transfers} transfers seen); "
        f"current slot {result.current_slot}"
    )
    return EXIT_OK


def cmd_status(ctx: Context) -> int:
    s = ctx.settings
    directory = s.data_dir / INDEXER_DIR
    rpc = _rpc(ctx, STATUS_RETRY)
    state = (
        make_indexer(s, rpc).load_state()
        if rpc is not None
        else IndexerState.load(directory / "state.json")
    )
    report: dict[str, Any] = {
        "indexer_dir": s.display_path(directory),
        "last_slot": state.last_slot,
        "lines_written": state.lines_written,
        "pending_mints": len(state.pending),
        "candidates": len(state.known),
        "endpoint": {"set": rpc is not None},
    }
    code = EXIT_OK
    if rpc is not None:
        try:
            current = rpc.get_slot()
        except ExchangeError as exc:
            report["endpoint"].update(reachable=False, error=str(exc))
            code = EXIT_REFUSED
        else:
            lag = None if state.last_slot is None else current - state.last_slot
            report["endpoint"].update(reachable=True, current_slot=current, slot_lag=lag)
    if ctx.args.json:
        ctx.json(report)
        return code
    ctx.print(f"indexer dir:   {report['indexer_dir']}")
    ctx.print(f"last slot:     {state.last_slot if state.last_slot is not None else 'none yet'}")
    ctx.print(f"lines written: {state.lines_written}")
    ctx.print(f"candidates:    {len(state.known)} ({len(state.pending)} new mints not yet priced)")
    endpoint = report["endpoint"]
    if rpc is None:
        ctx.print(f"endpoint:      {RPC_VAR} not set")
    elif endpoint["reachable"]:
        lag = endpoint["slot_lag"]
        ctx.print(
            f"endpoint:      reachable, current slot {endpoint['current_slot']}, "
            f"lag {lag if lag is not None else 'n/a'} slots"
        )
    else:
        ctx.print(f"endpoint:      unreachable: {endpoint['error']}")
    return code
