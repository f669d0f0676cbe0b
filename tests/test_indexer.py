"""The read-only Solana indexer against a local JSON-RPC node (127.0.0.1) serving blocks built
here in the getBlock ``jsonParsed`` shape: candidates and swaps written, idempotence, rate limits,
skipped slots, a malformed block, a restart mid-range, the endpoint never shown, and the memecoin
strategy reading what the indexer wrote."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from engine.agent import build_agent
from engine.cli import indexer as cli_indexer
from engine.config import MemecoinFarmingConfig
from engine.exchange.base import ExchangeUnavailable
from engine.exchange.retry import RetryPolicy
from engine.health import Check, health_checks
from engine.indexer import Indexer, SolanaRpc
from engine.indexer import setup as indexer_setup
from engine.modes import resolve_settings
from engine.runtime import EngineEvent, Runtime, SimClock
from engine.secrets import Secret
from engine.strategies.base import SignalAction
from engine.strategies.memecoin_farming import MemecoinFarming, OnchainDryRunProvider
from tests.conftest import CANARY, CliRunner

D = Decimal
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
AMM = "AmmProgram111111111111111111111111111111111"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
MEME = "Meme1111111111111111111111111111111111111111"
OLD = "Old11111111111111111111111111111111111111111"
TRADER = "Trader1111111111111111111111111111111111111"
POOL = "Pool111111111111111111111111111111111111111"
FIRST, CURRENT = 100, 110


# -- blocks in the getBlock jsonParsed shape ---------------------------------------------------


def balance(index: int, mint: str, owner: str, ui: str, decimals: int = 6) -> dict[str, Any]:
    amount = D(ui)
    return {
        "accountIndex": index,
        "mint": mint,
        "owner": owner,
        "programId": TOKEN_PROGRAM,
        "uiTokenAmount": {
            "amount": str(int(amount.scaleb(decimals))),
            "decimals": decimals,
            "uiAmount": float(amount),
            "uiAmountString": ui,
        },
    }


def token_ix(kind: str, **info: Any) -> dict[str, Any]:
    return {
        "program": "spl-token",
        "programId": TOKEN_PROGRAM,
        "parsed": {"type": kind, "info": info},
        "stackHeight": None,
    }


def tx(
    signature: str,
    instructions: list[dict[str, Any]],
    *,
    keys: tuple[str, ...] = (TRADER,),
    pre: list[dict[str, Any]] | None = None,
    post: list[dict[str, Any]] | None = None,
    inner: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "transaction": {
            "signatures": [signature],
            "message": {
                "accountKeys": [
                    {"pubkey": k, "signer": i == 0, "writable": True, "source": "transaction"}
                    for i, k in enumerate(keys)
                ],
                "instructions": instructions,
                "recentBlockhash": "Hash1111111111111111111111111111111111111111",
            },
        },
        "meta": {
            "err": None,
            "status": {"Ok": None},
            "fee": 5000,
            "preBalances": [10_000_000_000] * len(keys),
            "postBalances": [9_999_995_000] + [10_000_000_000] * (len(keys) - 1),
            "preTokenBalances": pre or [],
            "postTokenBalances": post or [],
            "innerInstructions": inner or [],
            "logMessages": [],
        },
        "version": 0,
    }


def swap_tx(signature: str, mint: str, usdc_in: str, tokens_out: str, pool_usdc: str) -> Any:
    """The trader pays ``usdc_in`` USDC to the pool and receives ``tokens_out`` of ``mint``."""
    pool_before = str(D(pool_usdc) - D(usdc_in))
    amm_ix = {"programId": AMM, "accounts": [TRADER, POOL], "data": "3Bxs4h24hBtQy9rw"}
    return tx(
        signature,
        [amm_ix],
        keys=(TRADER, POOL, AMM),
        pre=[
            balance(3, USDC, TRADER, "100000"),
            balance(4, mint, TRADER, "0"),
            balance(5, USDC, POOL, pool_before),
        ],
        post=[
            balance(3, USDC, TRADER, str(D(100000) - D(usdc_in))),
            balance(4, mint, TRADER, tokens_out),
            balance(5, USDC, POOL, pool_usdc),
        ],
        inner=[
            {
                "index": 0,
                "instructions": [
                    token_ix("transfer", source="a", destination="b", amount="1", authority="c")
                ],
            }
        ],
    )


def block(slot: int, *transactions: dict[str, Any]) -> dict[str, Any]:
    return {
        "blockHeight": slot - 10,
        "blockTime": int((T0 + timedelta(seconds=slot)).timestamp()),
        "blockhash": f"Block{slot}",
        "parentSlot": slot - 1,
        "previousBlockhash": f"Block{slot - 1}",
        "transactions": list(transactions),
    }


def chain() -> dict[int, Any]:
    """Slots 100..110: a mint created (101), priced (103), skipped (104), swapped (105, 108)."""
    blocks: dict[int, Any] = {s: block(s) for s in range(FIRST, CURRENT + 1)}
    blocks[101] = block(101, tx("SigCreate", [token_ix("initializeMint2", mint=MEME, decimals=6)]))
    blocks[102] = block(102, swap_tx("SigOld", OLD, "100", "1000", "9000"))  # not a new token
    blocks[103] = block(103, swap_tx("SigBuy1", MEME, "5000", "200000000", "30000"))
    blocks[104] = "skipped"
    blocks[105] = block(105, swap_tx("SigBuy2", MEME, "2000", "76000000", "32000"))
    blocks[106] = block(
        106,
        tx("SigMint", [token_ix("mintTo", mint=MEME, account="x", amount="5", mintAuthority="y")]),
    )
    blocks[108] = block(108, swap_tx("SigBuy3", MEME, "1000", "37000000", "33000"))
    return blocks


# -- the local JSON-RPC node -------------------------------------------------------------------


class Node:
    def __init__(self) -> None:
        self.blocks = chain()
        self.current = CURRENT
        self.fail: list[tuple[int, dict[str, str]]] = []  # (HTTP status, headers), served first
        self.fail_slots: dict[int, int] = {}  # getBlock of this slot: always this HTTP status
        self.block_delay_s = 0.0  # each getBlock answers this late (a slow node)
        self.requests: list[tuple[str, dict[str, Any]]] = []  # (path, body)
        self.lock = threading.Lock()

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            self.requests.append((path, body))
            if self.fail:
                status, headers = self.fail.pop(0)
                return status, headers, {"error": "busy"}
        rid, method, params = body.get("id"), body.get("method"), body.get("params") or []
        if method == "getSlot":
            return 200, {}, {"jsonrpc": "2.0", "id": rid, "result": self.current}
        if method == "getBlock":
            time.sleep(self.block_delay_s)
            slot = params[0]
            if slot in self.fail_slots:
                return self.fail_slots[slot], {}, {"error": "down"}
            found = self.blocks.get(slot)
            if found == "skipped" or found is None:
                message = f"Slot {slot} was skipped, or missing in long-term storage"
                error = {"code": -32009, "message": message}
                return 200, {}, {"jsonrpc": "2.0", "id": rid, "error": error}
            return 200, {}, {"jsonrpc": "2.0", "id": rid, "result": found}
        error = {"code": -32601, "message": "Method not found"}
        return 200, {}, {"jsonrpc": "2.0", "id": rid, "error": error}


def serve(node: Node) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            status, headers, reply = node.answer(self.path, body)
            data = json.dumps(reply).encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{CANARY}-rpc-token/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def node() -> Node:
    return Node()


@pytest.fixture
def url(node: Node) -> Iterator[str]:
    yield from serve(node)


def fast(sleeps: list[float] | None = None, attempts: int = 4) -> RetryPolicy:
    record = sleeps if sleeps is not None else []
    return RetryPolicy(
        max_attempts=attempts,
        max_total_s=5.0,
        base_delay_s=0.001,
        max_delay_s=0.002,
        jitter_s=0.0,
        sleep=record.append,
    )


def indexer(url: str, directory: Path, policy: RetryPolicy | None = None) -> Indexer:
    rpc = SolanaRpc(Secret(url), timeout_s=5.0, policy=policy or fast())
    return Indexer(rpc, directory, program_ids=[AMM], usdc_mint=USDC)


def lines(directory: Path) -> list[dict[str, Any]]:
    path = directory / "events.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


# -- tests -------------------------------------------------------------------------------------


def test_a_scan_writes_candidates_and_swaps_and_a_second_adds_none(
    node: Node, url: str, tmp_path: Path
) -> None:
    d = tmp_path / "indexer"
    result = indexer(url, d).scan(50)
    # the first scan starts 50 slots back; the node has no block before 100 (skipped, like 104)
    assert (result.first_slot, result.last_slot, result.slots) == (CURRENT - 49, CURRENT, 50)
    assert (result.candidates, result.swaps, result.skipped, result.malformed) == (1, 2, 40, 0)
    assert result.mint_tos == 1 and result.transfers == 4  # the four swaps' inner transfers
    candidate, swap1, swap2 = lines(d)
    assert candidate == {
        "kind": "candidate",
        "mint": MEME,
        "slot": 103,
        "signature": "SigBuy1",
        "symbol": "MEME1111",
        "price_usd": "0.000025",
        "liquidity_usd": "60000",
        "volume_usd": "5000",
        "time": "2026-01-01T00:01:43Z",
    }
    assert swap1["kind"] == "swap" and swap1["slot"] == 105 and swap1["signature"] == "SigBuy2"
    assert swap1["price_usd"] == "0.0000263157894737"  # 2000 / 76 000 000, 12 significant digits
    assert swap1["amount_usd"] == "2000" and swap1["liquidity_usd"] == "64000"
    assert swap2["slot"] == 108
    state = json.loads((d / "state.json").read_text())
    assert state["last_slot"] == CURRENT and state["lines_written"] == 3
    # getBlock asked for what the indexer parses
    params = next(b["params"] for _, b in node.requests if b["method"] == "getBlock")
    assert (
        params[1]["encoding"] == "jsonParsed" and params[1]["maxSupportedTransactionVersion"] == 0
    )
    assert params[1]["transactionDetails"] == "full" and params[1]["rewards"] is False

    again = indexer(url, d).scan(50)
    assert again.first_slot is None and lines(d) == [candidate, swap1, swap2]
    node.current = CURRENT + 2  # two new empty slots: read, nothing added
    more = indexer(url, d).scan(50)
    assert (more.first_slot, more.last_slot) == (CURRENT + 1, CURRENT + 2)
    assert len(lines(d)) == 3


def test_the_first_scan_starts_n_slots_back_and_reads_at_most_n(url: str, tmp_path: Path) -> None:
    d = tmp_path / "indexer"
    result = indexer(url, d).scan(4)
    assert (result.first_slot, result.last_slot) == (107, 110)
    assert [x["slot"] for x in lines(d)] == []  # 108's swap is of a mint never seen created


def test_rate_limits_are_retried_honouring_retry_after(
    node: Node, url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node.fail = [(429, {"Retry-After": "0.25"}), (429, {}), (503, {})]
    sleeps: list[float] = []
    with caplog.at_level(logging.WARNING):
        result = indexer(url, tmp_path / "indexer", fast(sleeps)).scan(50)
    assert result.candidates == 1
    assert sleeps == [0.25, 0.002, 0.002]  # Retry-After, then the backoff (capped)
    assert "getSlot: RateLimited: getSlot: HTTP 429; retry 1 of 3" in caplog.text
    assert CANARY not in caplog.text


def test_a_malformed_block_is_skipped_with_a_log_line(
    node: Node, url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node.blocks[102] = {"blockTime": 5, "transactions": "not a list"}
    node.blocks[103] = block(103, {"transaction": {"signatures": ["S"]}, "meta": {}})
    node.blocks[105] = block(105, swap_tx("SigBuy1", MEME, "5000", "200000000", "30000"))
    with caplog.at_level(logging.WARNING):
        result = indexer(url, tmp_path / "indexer").scan(50)
    assert result.malformed == 2 and result.last_slot == CURRENT
    assert "slot 102: malformed block skipped: transactions is not a list" in caplog.text
    assert "slot 103: malformed block skipped" in caplog.text
    assert [x["slot"] for x in lines(tmp_path / "indexer")] == [105, 108]


def test_a_block_whose_reply_passes_a_cap_is_skipped_not_stalled_on(
    node: Node, url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The client refuses such a reply the same way at every ask: the scan stopped there, and
    every later scan asked for that slot again, for good."""
    from engine.indexer.rpc import MAX_JSON_VALUES

    node.blocks[102] = {f"{i:07x}": "ab" for i in range(MAX_JSON_VALUES // 3 + 10)}
    node.blocks[103] = block(103, swap_tx("SigBuy1", MEME, "5000", "200000000", "30000"))
    with caplog.at_level(logging.WARNING):
        result = indexer(url, tmp_path / "indexer").scan(50)
    assert result.malformed == 1 and result.last_slot == CURRENT
    assert "slot 102: block refused, skipped: getBlock: the reply holds more than" in caplog.text
    assert [x["slot"] for x in lines(tmp_path / "indexer")][:1] == [103]


def test_a_restart_mid_range_resumes_without_duplicates(
    node: Node, url: str, tmp_path: Path
) -> None:
    clean = tmp_path / "clean"
    indexer(url, clean).scan(50)
    d = tmp_path / "indexer"
    node.fail_slots[106] = 500  # the node fails mid-range, past the retry budget
    with pytest.raises(ExchangeUnavailable):
        indexer(url, d, fast(attempts=2)).scan(50)
    assert json.loads((d / "state.json").read_text())["last_slot"] == 105
    del node.fail_slots[106]
    resumed = indexer(url, d).scan(50)
    assert resumed.first_slot == 106
    assert lines(d) == lines(clean)
    # a crash after the lines were written, before the state: the file's last slot counts
    state = json.loads((d / "state.json").read_text())
    state["last_slot"] = 104
    (d / "state.json").write_text(json.dumps(state))
    node.current = CURRENT + 1
    assert indexer(url, d).scan(50).first_slot == 109  # after 108, the last slot in the file
    assert lines(d) == lines(clean)


def write_config(workdir: Path) -> None:
    (workdir / "kobe.toml").write_text(f'[indexer]\nprogram_ids = ["{AMM}"]\n')


def test_cli_scan_and_status_never_show_the_endpoint(
    cli: CliRunner,
    workdir: Path,
    url: str,
    node: Node,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli_indexer, "SCAN_RETRY", fast())
    monkeypatch.setattr(cli_indexer, "STATUS_RETRY", fast(attempts=2))
    write_config(workdir)
    env = {"RPC_SOLANA_HTTP": url}
    with caplog.at_level(logging.DEBUG):
        scan = cli("indexer", "scan", "--slots", "50", env=env)
        assert scan.code == 0, scan.err
        assert "1 candidates, 2 swaps written" in scan.out
        again = cli("indexer", "scan", "--slots", "50", env=env)
        assert again.code == 0 and "nothing new" in again.out
        node.current = CURRENT + 5
        status = cli("indexer", "status", "--json", env=env)
        text = cli("indexer", "status", env=env)
        node.fail = [(500, {})] * 10
        down = cli("indexer", "status", env=env)
        scan_down = cli("indexer", "scan", "--slots", "5", env=env)
        refused = cli("indexer", "status", env={"RPC_SOLANA_HTTP": f"http://127.0.0.1:1/{CANARY}"})
        not_url = cli("indexer", "scan", "--slots", "5", env={"RPC_SOLANA_HTTP": f"x{CANARY}"})
    report = json.loads(status.out)
    assert status.code == 0 and report["last_slot"] == CURRENT and report["lines_written"] == 3
    assert report["endpoint"] == {
        "set": True,
        "reachable": True,
        "current_slot": CURRENT + 5,
        "slot_lag": 5,
    }
    assert "lag 5 slots" in text.out
    assert down.code == 1 and "unreachable" in down.out
    assert scan_down.code == 1 and "HTTP 500" in scan_down.err
    assert refused.code == 1 and "unreachable" in refused.out
    assert not_url.code == 2 and "not an http:// or https:// URL" in not_url.err  # bad config
    for r in (scan, again, status, text, down, scan_down, refused, not_url):
        assert CANARY not in r.out + r.err
        assert "127.0.0.1" not in r.out + r.err
    assert CANARY not in caplog.text
    assert (workdir / "data" / "indexer" / "events.jsonl").exists()


def test_cli_without_the_endpoint(cli: CliRunner, workdir: Path) -> None:
    scan = cli("indexer", "scan", "--slots", "5")
    assert scan.code == 1 and "RPC_SOLANA_HTTP is not set" in scan.err
    status = cli("indexer", "status", "--json")
    assert status.code == 0
    assert json.loads(status.out)["endpoint"] == {"set": False}


def test_the_memecoin_strategy_reads_what_the_indexer_wrote(
    url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    indexer(url, tmp_path / "indexer").scan(50)
    cfg = MemecoinFarmingConfig.model_validate({"provider": {"kind": "onchain_dry_run"}})
    provider = OnchainDryRunProvider(tmp_path / "indexer")
    strategy = MemecoinFarming(cfg, provider)
    with caplog.at_level(logging.INFO):
        assert strategy.tick(T0 + timedelta(minutes=5)) == []  # a dry run sends nothing
    assert provider.lines_skipped == 0
    [meme] = provider.candidates()
    assert meme.symbol == "MEME1111/USDC" and meme.volume_usd == D(8000)
    assert meme.first_price_usd == D("0.000025") and meme.slot == 108
    [would] = list(strategy.would_send)
    assert would.action is SignalAction.ENTER and would.symbol == "MEME1111/USDC"
    assert "would send memecoin_farming" in caplog.text


# -- provider "onchain", following new slots, the health check ----------------------------------


def _runtime_at(workdir: Path, env: dict[str, str]) -> tuple[Runtime, SimClock, list[EngineEvent]]:
    settings = resolve_settings(env, workdir)
    clock = SimClock(settings.config.paper.sim_start)
    runtime = Runtime(settings, clock=clock, tick_seconds=60, agent_factory=build_agent)
    events: list[EngineEvent] = []
    runtime.subscribe(events.append)
    runtime.build()
    return runtime, clock, events


def test_the_onchain_provider_trades_indexed_candidates_on_the_paper_dex(
    url: str, workdir: Path
) -> None:
    indexer(url, workdir / "data" / "indexer").scan(50)  # what `kobe indexer scan` writes
    (workdir / "kobe.toml").write_text(
        '[strategies.memecoin_farming.provider]\nkind = "onchain"\n'
    )  # nothing else: the shipped defaults do the rest
    runtime, clock, _ = _runtime_at(workdir, {})
    try:
        for _ in range(10):
            clock.advance(60)
            runtime.tick()
    finally:
        runtime.stop()
    journal = [json.loads(x) for x in (workdir / "data/logs/orders.jsonl").read_text().splitlines()]
    dex = [r for r in journal if r.get("exchange") == "dex" and r.get("symbol") == "MEME1111/USDC"]
    assert dex, journal[:5]
    assert any(r.get("side") == "buy" for r in dex)


def _follow_config(workdir: Path, slots: int) -> None:
    (workdir / "kobe.toml").write_text(
        f'[indexer]\nenabled = true\nslots_per_tick = {slots}\nprogram_ids = ["{AMM}"]\n'
    )


def test_the_runtime_follows_new_slots_a_bounded_number_each_tick(
    node: Node,
    url: str,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(indexer_setup, "FOLLOW_RETRY", fast(attempts=2))
    _follow_config(workdir, 3)
    node.current = FIRST
    d = workdir / "data" / "indexer"
    runtime, clock, events = _runtime_at(workdir, {"RPC_SOLANA_HTTP": url})
    try:
        assert runtime.indexer is not None
        clock.advance(60)
        runtime.tick()  # the first scan: the last 3 slots, 98..100
        assert json.loads((d / "state.json").read_text())["last_slot"] == FIRST
        node.current = CURRENT
        clock.advance(60)
        runtime.tick()  # 101..103: at most 3 slots a tick; the candidate is written
        assert json.loads((d / "state.json").read_text())["last_slot"] == 103
        assert [x["kind"] for x in lines(d)] == ["candidate"]
        for _ in range(3):
            clock.advance(60)
            runtime.tick()
        assert json.loads((d / "state.json").read_text())["last_slot"] == CURRENT
        assert [x["slot"] for x in lines(d)] == [103, 105, 108]
        node.current = CURRENT + 1
        node.fail = [(500, {})] * 10  # the node is down: an alert, never a crash
        with caplog.at_level(logging.WARNING):
            clock.advance(60)
            runtime.tick()
        alerts = [e.payload for e in events if e.kind == "alert" and e.payload.code == "indexer"]
        assert alerts and "HTTP 500" in alerts[-1].message
        node.fail = []
        clock.advance(60)
        runtime.tick()  # back: it resumes
        assert json.loads((d / "state.json").read_text())["last_slot"] == CURRENT + 1
    finally:
        runtime.stop()
    for e in events:
        assert CANARY not in str(e.payload)
    assert CANARY not in caplog.text


def test_the_runtime_does_not_follow_when_disabled_or_without_the_endpoint(
    url: str, workdir: Path
) -> None:
    runtime, _, _ = _runtime_at(workdir, {"RPC_SOLANA_HTTP": url})  # [indexer] enabled = false
    try:
        assert runtime.indexer is None
    finally:
        runtime.stop()
    _follow_config(workdir, 5)
    runtime, clock, events = _runtime_at(workdir, {})
    try:
        assert runtime.indexer is None
        clock.advance(60)
        runtime.tick()
    finally:
        runtime.stop()
    assert any(
        e.kind == "alert" and "RPC_SOLANA_HTTP is not set" in e.payload.message for e in events
    )
    assert not (workdir / "data" / "indexer").exists()


def _rpc_check(env: dict[str, str], workdir: Path) -> Check | None:
    checks = health_checks(resolve_settings(env, workdir))
    return next((c for c in checks if c.name == "solana rpc"), None)


def test_the_health_check_shows_the_endpoint_and_the_slot_lag(
    node: Node, url: str, workdir: Path
) -> None:
    assert _rpc_check({}, workdir) is None  # only when RPC_SOLANA_HTTP is set
    check = _rpc_check({"RPC_SOLANA_HTTP": url}, workdir)
    assert check is not None and check.ok
    assert check.detail == f"reachable: slot {CURRENT}, nothing indexed yet"
    indexer(url, workdir / "data" / "indexer").scan(50)
    node.current = CURRENT + 7
    check = _rpc_check({"RPC_SOLANA_HTTP": url}, workdir)
    assert check is not None and check.ok
    assert check.detail == f"reachable: slot {CURRENT + 7}, indexer at {CURRENT} (lag 7 slots)"
    assert CANARY not in check.detail and "127.0.0.1" not in check.detail


def test_the_health_check_fails_with_a_reason_and_never_shows_the_url(workdir: Path) -> None:
    closed = f"http://127.0.0.1:1/{CANARY}-rpc-token/"
    check = _rpc_check({"RPC_SOLANA_HTTP": closed}, workdir)
    assert check is not None and not check.ok
    assert check.detail.startswith("unreachable: getSlot:")
    not_url = _rpc_check({"RPC_SOLANA_HTTP": f"ftp{CANARY}"}, workdir)
    assert not_url is not None and not not_url.ok and "not an http" in not_url.detail
    for c in (check, not_url):
        assert CANARY not in c.detail and "127.0.0.1" not in c.detail


def test_a_hostile_nodes_text_neither_forges_a_log_line_nor_reaches_the_files(
    node: Node, url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "\x1b[2J\n2026-01-01 WARNING engine.risk: kill switch RESET"
    node.blocks[101] = block(
        101, tx("SigCreate", [token_ix("initializeMint2", mint=MEME, decimals=6)])
    )
    node.blocks[102] = block(
        102, tx("SigX", [{"program": "spl-token", "parsed": {"type": forged}}])
    )
    huge_mint = "\x1b[31m[bold]" + "A" * 1_000_000
    node.blocks[103] = block(
        103, tx("SigEvil", [token_ix("initializeMint", mint=huge_mint, decimals=6)])
    )
    node.blocks[105] = block(105, swap_tx("Sig\nForged", MEME, "5000", "200000000", "30000"))
    with caplog.at_level(logging.WARNING):
        result = indexer(url, tmp_path / "indexer").scan(50)
    assert result.malformed == 3
    assert "\x1b" not in caplog.text and "kill switch RESET" in caplog.text  # said, on its line
    assert not any(line.startswith("2026-01-01") for line in caplog.text.splitlines())
    written = (tmp_path / "indexer" / "events.jsonl").read_text()
    state = (tmp_path / "indexer" / "state.json").read_text()
    assert "AAAA" not in written + state and "Forged" not in written
    assert [x["slot"] for x in lines(tmp_path / "indexer")] == [108]  # 108 swaps the known MEME


def test_a_slow_node_holds_an_engine_tick_for_the_follow_budget_only(
    node: Node, url: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexer_setup, "FOLLOW_RETRY", fast(attempts=2))
    monkeypatch.setattr(indexer_setup, "FOLLOW_BUDGET_S", 0.5)
    _follow_config(workdir, 20)
    node.block_delay_s = 0.2  # each slot answers, slowly: 20 slots would hold the tick 4 s
    d = workdir / "data" / "indexer"
    runtime, clock, _ = _runtime_at(workdir, {"RPC_SOLANA_HTTP": url})
    try:
        clock.advance(60)
        started = time.monotonic()
        runtime.tick()  # the watchdog and the exits wait for this tick
        assert time.monotonic() - started < 1.5
        first = json.loads((d / "state.json").read_text())["last_slot"]
        assert CURRENT - 19 <= first < CURRENT - 10
        clock.advance(60)
        runtime.tick()  # the next tick goes on where it stopped
        assert json.loads((d / "state.json").read_text())["last_slot"] > first
    finally:
        runtime.stop()


@pytest.mark.parametrize("sol_price", ["0", "150"])
def test_sol_price_usd_prices_a_swap_paid_in_sol(sol_price: str) -> None:
    """`[indexer] sol_price_usd`: "prices SOL-quoted swaps (USD per SOL); 0: not priced". The
    trader pays 2 SOL to the pool for 1 000 000 tokens."""
    from engine.indexer.indexer import Swap, normalize_block

    amm_ix = {"programId": AMM, "accounts": [TRADER, POOL], "data": "3Bxs4h24hBtQy9rw"}
    paid = tx(
        "SigSol",
        [amm_ix],
        keys=(TRADER, POOL, AMM),
        pre=[balance(4, MEME, TRADER, "0")],
        post=[balance(4, MEME, TRADER, "1000000")],
    )
    paid["meta"]["postBalances"][0] = 10_000_000_000 - 2_000_000_000 - 5000  # 2 SOL and the fee
    found = normalize_block(100, block(100, paid), [AMM], USDC, D(sol_price)).events
    swaps = [e for e in found if isinstance(e, Swap)]
    if sol_price == "0":
        assert swaps == []
    else:
        [swap] = swaps
        assert (swap.mint, swap.amount_usd) == (MEME, D("300.00"))
        assert swap.price_usd == D("0.0003")  # 300 USD for 1 000 000 tokens


def test_two_scans_at_once_write_each_event_once(node: Node, url: str, workdir: Path) -> None:
    """Two ``kobe indexer scan`` at once (cron and a trader, or a scan beside an engine that
    follows new slots) both read from the same last slot and appended the same lines twice:
    two writers on ``events.jsonl``. One scan at a time: the second exits 1 naming the first."""
    import subprocess
    import sys

    from tests.crash_harness import child_env

    write_config(workdir)
    node.block_delay_s = 0.02  # 50 slots: about a second each, so the two overlap
    argv = ["indexer", "scan", "--slots", "50"]
    main = "import sys; from engine.cli import main; sys.exit(main())"
    scans = [
        subprocess.Popen(
            [sys.executable, "-c", main, *argv],
            cwd=workdir,
            env=child_env({"RPC_SOLANA_HTTP": url}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    ended = sorted((p.communicate(timeout=60)[1], p.returncode)[::-1] for p in scans)
    d = workdir / "data" / "indexer"
    assert [x["signature"] for x in lines(d)] == ["SigBuy1", "SigBuy2", "SigBuy3"]
    assert json.loads((d / "state.json").read_text())["lines_written"] == 3
    assert [code for code, _ in ended] == [0, 1], ended
    assert "scan.lock is held by pid" in ended[1][1] and "one indexer scan at a time" in ended[1][1]
    assert CANARY not in ended[1][1]


def test_an_engine_that_finds_a_scan_under_way_alerts_and_follows_at_its_next_tick(
    node: Node, url: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.indexer.indexer import SCAN_LOCK
    from engine.lock import DataDirLock

    monkeypatch.setattr(indexer_setup, "FOLLOW_RETRY", fast(attempts=2))
    _follow_config(workdir, 50)
    d = workdir / "data" / "indexer"
    runtime, clock, events = _runtime_at(workdir, {"RPC_SOLANA_HTTP": url})
    try:
        scan = DataDirLock(d, "kobe indexer scan", name=SCAN_LOCK).acquire()
        clock.advance(60)
        runtime.tick()
        alerts = [e.payload for e in events if e.kind == "alert" and e.payload.code == "indexer"]
        assert alerts and "one indexer scan at a time" in alerts[-1].message
        assert "(kobe indexer scan)" in alerts[-1].message
        assert lines(d) == []
        scan.release()
        clock.advance(60)
        runtime.tick()
        assert [x["signature"] for x in lines(d)] == ["SigBuy1", "SigBuy2", "SigBuy3"]
    finally:
        runtime.stop()
