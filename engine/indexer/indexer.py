"""The read-only Solana indexer: recent slots to ``<data dir>/indexer/events.jsonl``.

:meth:`Indexer.scan` reads at most ``n`` slots, from the slot after the last one indexed (on the
first run: the current slot minus ``n`` plus one) up to the current slot, and normalizes each
``jsonParsed`` block:

- SPL-token (and token-2022) ``initializeMint`` / ``initializeMint2``: a new mint, remembered as
  pending until it is first priced; ``mintTo`` / ``mintToChecked`` and ``transfer`` /
  ``transferChecked`` are counted (the strategy needs no line for them).
- Transactions that touch a configured program id (``[indexer] program_ids``, the AMMs and
  launchpads) and succeeded: the fee payer's pre/post token-balance deltas. One token moving one
  way and the quote the other way is a swap; its price is the quote delta over the token delta,
  the quote being the USDC mint, or SOL (lamports, fee put back, plus wrapped SOL) at
  ``sol_price_usd`` when that is set. Liquidity is twice the pool's quote balance after the swap
  (the quote held by owners other than the fee payer).

The first priced swap of a pending mint writes a ``candidate`` line; later swaps of a candidate
write ``swap`` lines, in the format :class:`~engine.strategies.memecoin_farming.providers.
OnchainDryRunProvider` reads (with ``slot``, ``signature`` and ``time``, ISO-8601 with ``Z``).
The lines of one slot are written together, flushed and fsynced, then the state
(``state.json``: last slot, lines written, pending and known mints) is replaced atomically.

Idempotent: slots at or below the last slot indexed are never read again, and on start the last
slot found in ``events.jsonl`` counts as indexed too (a crash between the lines and the state
never duplicates them). A skipped slot is passed over; a malformed block, or one whose reply the
client refuses (over its size, values or nesting caps), is skipped with a log line. Nothing is ever sent: the indexer only reads.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

from engine.fsutil import atomic_write_text
from engine.indexer.rpc import ReplyRefused, SolanaRpc
from engine.journal import JsonlWriter, tail_jsonl
from engine.jsonutil import dumps, iso_utc
from engine.lock import DataDirLock
from engine.untrusted import BadNumber, clean_message, parse_decimal

log = logging.getLogger(__name__)

EVENTS_FILE = "events.jsonl"
STATE_FILE = "state.json"
SCAN_LOCK = "scan.lock"  # names the scan under way (the lock is on the directory)
WSOL_MINT = "So11111111111111111111111111111111111111112"
TOKEN_PROGRAMS = ("spl-token", "spl-token-2022")
LAMPORTS_PER_SOL = Decimal(1_000_000_000)
MAX_TRACKED_MINTS = 5_000  # pending and known mints kept in the state, oldest dropped first
PRICE_DIGITS = 12
MAX_KEY_CHARS = 100  # a base58 mint is 32-44 characters, a signature 64-88


class MalformedBlock(ValueError):
    """A block that does not have the getBlock jsonParsed shape."""


# ---------------------------------------------------------------------------------------------
# Normalized events


@dataclass(frozen=True)
class NewMint:
    mint: str
    signature: str


@dataclass(frozen=True)
class Swap:
    mint: str
    price_usd: Decimal
    amount_usd: Decimal
    liquidity_usd: Decimal | None
    signature: str


@dataclass
class BlockEvents:
    slot: int
    time: datetime
    events: list[NewMint | Swap] = field(default_factory=list)
    mint_tos: int = 0
    transfers: int = 0


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedBlock(f"{what} is not an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedBlock(f"{what} is not a list")
    return value


def _key(value: Any, what: str) -> str:
    """A mint or a signature as the node renders it (base58): ASCII letters and digits, at most
    ``MAX_KEY_CHARS``; anything else is no key and the block is malformed (the text never
    reaches the files)."""
    text = value if isinstance(value, str) else ""
    if 0 < len(text) <= MAX_KEY_CHARS and text.isascii() and text.isalnum():
        return text
    raise MalformedBlock(f"{what} is not a base58 key")


def _dec(value: Any, what: str) -> Decimal:
    """A bounded number from the node's reply (:func:`engine.untrusted.parse_decimal`)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MalformedBlock(f"{what} is not a number")
    try:
        return parse_decimal(value, what)
    except BadNumber as exc:
        raise MalformedBlock(str(exc)) from None


def _instructions(tx: dict[str, Any], meta: dict[str, Any]) -> Iterator[dict[str, Any]]:
    message = _obj(tx.get("message"), "transaction.message")
    for ix in _list(message.get("instructions"), "message.instructions"):
        yield _obj(ix, "instruction")
    for inner in _list(meta.get("innerInstructions") or [], "meta.innerInstructions"):
        for ix in _list(_obj(inner, "inner instructions").get("instructions"), "inner"):
            yield _obj(ix, "inner instruction")


def _token_deltas(
    meta: dict[str, Any], owner: str
) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """``owner``'s balance change by mint, and every other owner's balance after, by mint."""
    deltas: dict[str, Decimal] = {}
    others_after: dict[str, Decimal] = {}
    for key, sign in (("preTokenBalances", -1), ("postTokenBalances", 1)):
        for entry in _list(meta.get(key) or [], f"meta.{key}"):
            entry = _obj(entry, key)
            mint = _key(entry.get("mint"), f"{key}: mint")
            amount = _obj(entry.get("uiTokenAmount"), "uiTokenAmount")
            ui = _dec(amount.get("uiAmountString"), "uiAmountString")
            if entry.get("owner") == owner:
                deltas[mint] = deltas.get(mint, Decimal(0)) + sign * ui
            elif sign > 0:
                others_after[mint] = others_after.get(mint, Decimal(0)) + ui
    return deltas, others_after


def _price(quote: Decimal, tokens: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = PRICE_DIGITS
        return +(quote / tokens)


def _swap(
    meta: dict[str, Any], payer: str, signature: str, usdc_mint: str, sol_price_usd: Decimal
) -> Swap | None:
    deltas, others_after = _token_deltas(meta, payer)
    quote_mint = usdc_mint
    quote = deltas.get(usdc_mint, Decimal(0))
    if quote == 0 and sol_price_usd > 0:
        pre = _list(meta.get("preBalances"), "meta.preBalances")
        post = _list(meta.get("postBalances"), "meta.postBalances")
        if not pre or not post:
            raise MalformedBlock("meta.preBalances/postBalances empty")
        fee = _dec(meta.get("fee", 0), "meta.fee")
        lamports = _dec(post[0], "postBalances") - _dec(pre[0], "preBalances") + fee
        sol = lamports / LAMPORTS_PER_SOL + deltas.get(WSOL_MINT, Decimal(0))
        quote = sol * sol_price_usd
        quote_mint = WSOL_MINT
    bases = [
        (mint, delta)
        for mint, delta in deltas.items()
        if mint not in (usdc_mint, WSOL_MINT) and delta != 0
    ]
    if quote == 0 or len(bases) != 1:
        return None  # no quote moved, or not one token against it: not a swap we can price
    mint, tokens = bases[0]
    if (quote > 0) == (tokens > 0):
        return None  # both in or both out: a deposit or a withdrawal, not a swap
    reserve = others_after.get(quote_mint)
    if reserve is not None and quote_mint == WSOL_MINT:
        reserve *= sol_price_usd
    return Swap(
        mint=mint,
        price_usd=_price(abs(quote), abs(tokens)),
        amount_usd=abs(quote).quantize(Decimal("0.01")),
        liquidity_usd=None if reserve is None else (2 * reserve).quantize(Decimal(1)),
        signature=signature,
    )


def normalize_block(
    slot: int,
    block: dict[str, Any],
    program_ids: Sequence[str],
    usdc_mint: str,
    sol_price_usd: Decimal = Decimal(0),
) -> BlockEvents:
    """What the memecoin strategy needs from one ``jsonParsed`` block; MalformedBlock if it is not
    one."""
    block = _obj(block, "block")
    block_time = block.get("blockTime")
    if isinstance(block_time, bool) or not isinstance(block_time, int):
        raise MalformedBlock("no blockTime")
    out = BlockEvents(slot, datetime.fromtimestamp(block_time, UTC))
    programs = set(program_ids)
    for item in _list(block.get("transactions"), "transactions"):
        item = _obj(item, "transaction entry")
        tx = _obj(item.get("transaction"), "transaction")
        meta = _obj(item.get("meta"), "meta")
        signatures = _list(tx.get("signatures"), "signatures")
        if not signatures:
            raise MalformedBlock("transaction without a signature")
        signature = _key(signatures[0], "signature")
        message = _obj(tx.get("message"), "transaction.message")
        keys = [
            _obj(k, "account key").get("pubkey") if isinstance(k, dict) else k
            for k in _list(message.get("accountKeys"), "accountKeys")
        ]
        if not keys or not isinstance(keys[0], str):
            raise MalformedBlock("transaction without a fee payer")
        if meta.get("err") is not None:
            continue  # a failed transaction changed nothing but its fee
        touches = bool(programs.intersection(k for k in keys if isinstance(k, str)))
        for ix in _instructions(tx, meta):
            touches = touches or ix.get("programId") in programs
            if ix.get("program") not in TOKEN_PROGRAMS:
                continue
            parsed = ix.get("parsed")
            if not isinstance(parsed, dict):
                continue
            kind = parsed.get("type")
            info = _obj(parsed.get("info"), f"{kind} info")
            if kind in ("initializeMint", "initializeMint2"):
                out.events.append(NewMint(_key(info.get("mint"), f"{kind} mint"), signature))
            elif kind in ("mintTo", "mintToChecked"):
                out.mint_tos += 1
            elif kind in ("transfer", "transferChecked"):
                out.transfers += 1
        if touches:
            swap = _swap(meta, keys[0], signature, usdc_mint, sol_price_usd)
            if swap is not None:
                out.events.append(swap)
    return out


# ---------------------------------------------------------------------------------------------
# State and the scan


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def symbol_for(mint: str) -> str:
    """A ticker for a mint with no metadata: its first eight characters, in capitals."""
    return "".join(c for c in mint.upper() if c.isascii() and c.isalnum())[:8] or "MINT"


@dataclass
class IndexerState:
    last_slot: int | None = None
    lines_written: int = 0
    pending: dict[str, int] = field(default_factory=dict)  # mint -> slot first seen
    known: dict[str, int] = field(default_factory=dict)  # mint -> slot of its candidate line

    @classmethod
    def load(cls, path: Path) -> IndexerState:
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            last = raw.get("last_slot")
            return cls(
                last_slot=None if last is None else int(last),
                lines_written=int(raw.get("lines_written", 0)),
                pending={str(k): int(v) for k, v in dict(raw.get("pending", {})).items()},
                known={str(k): int(v) for k, v in dict(raw.get("known", {})).items()},
            )
        except (ValueError, TypeError, AttributeError, RecursionError) as exc:
            log.warning("%s: unreadable indexer state (%s); starting afresh", path, exc)
            return cls()

    def save(self, path: Path) -> None:
        for table in (self.pending, self.known):
            for mint in list(table)[: max(len(table) - MAX_TRACKED_MINTS, 0)]:
                del table[mint]
        record = {
            "last_slot": self.last_slot,
            "lines_written": self.lines_written,
            "pending": self.pending,
            "known": self.known,
        }
        atomic_write_text(path, dumps(record, indent=1) + "\n")


@dataclass
class ScanResult:
    current_slot: int
    first_slot: int | None = None  # None: nothing new to scan
    last_slot: int | None = None
    slots: int = 0
    skipped: int = 0
    malformed: int = 0
    candidates: int = 0
    swaps: int = 0
    mint_tos: int = 0
    transfers: int = 0

    @property
    def lines(self) -> int:
        return self.candidates + self.swaps


class Indexer:
    """Scans slots through ``rpc`` into ``directory`` (``<data dir>/indexer``)."""

    def __init__(
        self,
        rpc: SolanaRpc,
        directory: Path,
        *,
        program_ids: Sequence[str] = (),
        usdc_mint: str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
        sol_price_usd: Decimal = Decimal(0),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rpc = rpc
        self.monotonic = monotonic
        self.directory = Path(directory)
        self.program_ids = tuple(program_ids)
        self.usdc_mint = usdc_mint
        self.sol_price_usd = sol_price_usd
        self.events_path = self.directory / EVENTS_FILE
        self.state_path = self.directory / STATE_FILE

    def load_state(self) -> IndexerState:
        state = IndexerState.load(self.state_path)
        tail = tail_jsonl(self.events_path, 1)
        slot = tail[0].get("slot") if tail else None
        if not isinstance(slot, int) or isinstance(slot, bool):
            return state
        if state.last_slot is None or slot > state.last_slot:
            log.warning(
                "indexer: %s holds slot %d, past the state's last slot %s (a crash before "
                "the state was saved): resuming after it",
                EVENTS_FILE,
                slot,
                state.last_slot,
            )
            state.last_slot = slot
        return state

    def scan(
        self, n: int, budget_s: float | None = None, holder: str = "kobe indexer scan"
    ) -> ScanResult:
        """At most ``n`` slots; with ``budget_s``, no new slot is taken once that many seconds
        have passed (the slot in flight ends within the client's own timeout).

        One scan at a time in a directory: two (cron and a trader, a scan beside an engine
        that follows new slots) would both start after the same last slot and append the same
        lines twice. A second one raises :class:`~engine.lock.DataDirBusy` naming ``holder``.
        """
        if n < 1:
            raise ValueError("scan: the number of slots must be at least 1")
        with DataDirLock(self.directory, holder, name=SCAN_LOCK, rule="one indexer scan at a time"):
            return self._scan(n, budget_s)

    def _scan(self, n: int, budget_s: float | None) -> ScanResult:
        deadline = None if budget_s is None else self.monotonic() + budget_s
        state = self.load_state()
        current = self.rpc.get_slot()
        result = ScanResult(current_slot=current)
        first = max(current - n + 1, 0) if state.last_slot is None else state.last_slot + 1
        last = min(current, first + n - 1)
        if first > last:
            return result
        result.first_slot = first
        JsonlWriter(self.events_path).close()  # creates the file and ends a torn last line
        dirty = False
        try:
            with open(self.events_path, "ab") as fh:
                for slot in range(first, last + 1):
                    if deadline is not None and slot > first and self.monotonic() >= deadline:
                        break  # the rest at the next scan
                    lines = self._slot(slot, state, result)
                    state.last_slot = slot
                    result.last_slot = slot
                    result.slots += 1
                    if lines:
                        fh.write("".join(dumps(x) + "\n" for x in lines).encode("utf-8"))
                        fh.flush()
                        os.fsync(fh.fileno())
                        state.lines_written += len(lines)
                        state.save(self.state_path)
                        dirty = False
                    else:
                        dirty = True
        finally:
            if dirty:
                state.save(self.state_path)
        return result

    def _slot(self, slot: int, state: IndexerState, result: ScanResult) -> list[dict[str, Any]]:
        try:
            block = self.rpc.get_block(slot)
        except ReplyRefused as exc:  # the same at every ask: skipped, or the scan stalls here
            result.malformed += 1
            log.warning("indexer: slot %d: block refused, skipped: %s", slot, exc)
            return []
        if block is None:
            result.skipped += 1
            return []
        try:
            events = normalize_block(
                slot, block, self.program_ids, self.usdc_mint, self.sol_price_usd
            )
        except (ValueError, TypeError, KeyError, ArithmeticError, OSError) as exc:
            result.malformed += 1
            why = clean_message(exc)  # the node's own text may be in it
            log.warning("indexer: slot %d: malformed block skipped: %s", slot, why)
            return []
        result.mint_tos += events.mint_tos
        result.transfers += events.transfers
        time = iso_utc(events.time)
        lines: list[dict[str, Any]] = []
        for event in events.events:
            if isinstance(event, NewMint):
                if event.mint not in state.known:
                    state.pending.setdefault(event.mint, slot)
                continue
            common = {"mint": event.mint, "slot": slot, "signature": event.signature}
            liquidity = event.liquidity_usd
            if event.mint in state.known:
                line: dict[str, Any] = {
                    "kind": "swap",
                    **common,
                    "price_usd": _text(event.price_usd),
                    "amount_usd": _text(event.amount_usd),
                }
                if liquidity is not None:
                    line["liquidity_usd"] = _text(liquidity)
                result.swaps += 1
            elif event.mint in state.pending:
                del state.pending[event.mint]
                state.known[event.mint] = slot
                line = {
                    "kind": "candidate",
                    **common,
                    "symbol": symbol_for(event.mint),
                    "price_usd": _text(event.price_usd),
                    "liquidity_usd": _text(liquidity or Decimal(0)),
                    "volume_usd": _text(event.amount_usd),
                }
                result.candidates += 1
            else:
                continue  # a token not launched in the slots indexed: not a new memecoin
            line["time"] = time
            lines.append(line)
        return lines
