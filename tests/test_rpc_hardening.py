"""The Solana RPC client against a hostile node on 127.0.0.1 (issue 14): a total deadline per
call, a reply size cap, a nesting cap, sane slots, read-only methods only, no URL in errors."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from engine.exchange.base import RequestTimeout
from engine.exchange.retry import RetryPolicy
from engine.indexer import SolanaRpc
from engine.indexer.rpc import NotReadOnly, RpcError
from engine.secrets import Secret
from tests.conftest import CANARY, CliRunner

Behaviour = Callable[[BaseHTTPRequestHandler, dict[str, Any]], None]


class HostileNode:
    def __init__(self) -> None:
        self.behaviour: Behaviour = reply({"result": 1})
        self.methods: list[str] = []
        self.auth: list[str | None] = []


def reply(payload: Any, raw: bytes | None = None) -> Behaviour:
    def send(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        data = (
            raw if raw is not None else json.dumps({"jsonrpc": "2.0", "id": 1, **payload}).encode()
        )
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return send


@pytest.fixture
def node() -> Iterator[tuple[HostileNode, str]]:
    state = HostileNode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            state.methods.append(body.get("method"))
            state.auth.append(self.headers.get("Authorization"))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                state.behaviour(self, body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/{CANARY}-rpc-token/"
    finally:
        server.shutdown()
        server.server_close()


def client(url: str, **kw: Any) -> SolanaRpc:
    return SolanaRpc(Secret(url), policy=RetryPolicy(max_attempts=1, max_total_s=1.0), **kw)


@pytest.mark.parametrize(
    "method",
    ["sendTransaction", "send" + "RawTransaction", "requestAirdrop", "simulateTransaction", "x"],
)
def test_a_transaction_can_never_be_sent_through_the_client(
    node: tuple[HostileNode, str], method: str
) -> None:
    state, url = node
    with pytest.raises(NotReadOnly, match="refused: this client sends only read-only"):
        client(url).call(method, ["AQAB...signed-tx-base64"])
    assert state.methods == []  # nothing reached the node


def test_a_node_that_drips_bytes_is_cut_at_the_total_deadline(
    node: tuple[HostileNode, str],
) -> None:
    state, url = node

    def drip(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        data = json.dumps({"jsonrpc": "2.0", "id": 1, "result": 5}).encode()
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        for byte in data:  # one byte every 0.2 s: each read is quick, the whole is not
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.2)

    state.behaviour = drip
    started = time.monotonic()
    with pytest.raises(RequestTimeout, match="no answer within 1s"):
        client(url, timeout_s=1.0).get_slot()
    assert time.monotonic() - started < 2.5


def test_a_reply_over_the_size_cap_is_refused_without_holding_it(
    node: tuple[HostileNode, str],
) -> None:
    state, url = node

    def flood(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        handler.send_response(200)
        handler.send_header("Connection", "close")  # no Content-Length: read until the end
        handler.end_headers()
        handler.wfile.write(b'{"jsonrpc": "2.0", "id": 1, "result": "')
        for _ in range(64):
            handler.wfile.write(b"x" * 65536)

    state.behaviour = flood
    with pytest.raises(RpcError, match="larger than 1048576 bytes"):
        client(url, max_bytes=1024 * 1024).get_slot()

    def announced(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(300 * 1024 * 1024))
        handler.end_headers()
        handler.wfile.write(b"{")

    state.behaviour = announced  # announced too large: refused before reading
    with pytest.raises(RpcError, match="larger than"):
        client(url, max_bytes=1024 * 1024).get_slot()


# One jsonParsed swap (18 accounts, 5 instructions, 6 inner transfers, 30 log lines, 4 + 4 token
# balances) and one vote, in the shape getBlock returns them.
KEY = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"
ACCOUNT = {"pubkey": KEY, "signer": False, "source": "transaction", "writable": True}
TOKEN_BALANCE = {
    "accountIndex": 3,
    "mint": KEY,
    "owner": KEY,
    "programId": KEY,
    "uiTokenAmount": {"amount": "123", "decimals": 6, "uiAmount": 0.000123, "uiAmountString": "0.000123"},
}  # fmt: skip
TRANSFER = {
    "parsed": {"info": {"amount": "1000", "authority": KEY, "destination": KEY, "source": KEY}, "type": "transfer"},
    "program": "spl-token", "programId": KEY, "stackHeight": 2,
}  # fmt: skip
SWAP = {
    "meta": {
        "computeUnitsConsumed": 85000, "err": None, "fee": 5000,
        "innerInstructions": [{"index": 2, "instructions": [TRANSFER] * 6}],
        "loadedAddresses": {"readonly": [], "writable": []},
        "logMessages": [f"Program {KEY} consumed 4645 of 200000 compute units"] * 30,
        "preBalances": [2039280] * 18, "postBalances": [2039280] * 18,
        "preTokenBalances": [TOKEN_BALANCE] * 4, "postTokenBalances": [TOKEN_BALANCE] * 4,
        "rewards": [], "status": {"Ok": None},
    },
    "transaction": {
        "message": {
            "accountKeys": [ACCOUNT] * 18, "addressTableLookups": [], "recentBlockhash": KEY,
            "instructions": [{"accounts": [KEY] * 10, "data": "3Bxs4h24hBtQy9rw", "programId": KEY, "stackHeight": None}] * 5,
        },
        "signatures": ["5" * 88],
    },
    "version": 0,
}  # fmt: skip
VOTE = {
    "meta": {"err": None, "fee": 5000, "innerInstructions": [], "logMessages": ["Program Vote111 invoke [1]", "Program Vote111 success"],
             "preBalances": [1, 2, 3], "postBalances": [1, 2, 3], "preTokenBalances": [], "postTokenBalances": [], "rewards": [], "status": {"Ok": None}},
    "transaction": {
        "message": {
            "accountKeys": [ACCOUNT] * 3, "recentBlockhash": KEY,
            "instructions": [{"parsed": {"info": {"vote": {"hash": KEY, "slots": [1, 2, 3, 4], "timestamp": 1767225600}, "voteAccount": KEY, "voteAuthority": KEY}, "type": "vote"}, "program": "vote", "programId": KEY, "stackHeight": None}],
        },
        "signatures": ["5" * 88],
    },
    "version": "legacy",
}  # fmt: skip


def test_a_reply_of_distinct_short_keys_is_refused_before_it_is_parsed(
    node: tuple[HostileNode, str],
) -> None:
    """Keys were not counted: 10 MB of `{"0000001":"ab",...}` passed the count (one value a pair)
    and parsed to 140 MB (45 MB of them to 750 MB). Strings count now, keys included; a heavy
    mainnet block still reads (README, "Solana indexer")."""
    from engine.indexer.rpc import MAX_JSON_VALUES, ReplyRefused, json_values

    state, url = node
    pairs = MAX_JSON_VALUES // 3 + 10  # a comma and two strings a pair
    keys = b",".join(b'"%07x":"ab"' % i for i in range(pairs))
    state.behaviour = reply({}, raw=b'{"jsonrpc":"2.0","id":1,"result":{' + keys + b"}}")
    with pytest.raises(ReplyRefused, match=f"more than {MAX_JSON_VALUES} JSON values"):
        client(url).get_block(5)

    heavy = {"blockTime": 1767225600, "transactions": [SWAP] * 1000 + [VOTE] * 1500}
    counted = json_values(json.dumps({"jsonrpc": "2.0", "id": 1, "result": heavy}).encode())
    assert 1_000_000 < counted < MAX_JSON_VALUES / 1.5  # room to spare
    state.behaviour = reply({"result": heavy})
    assert len(client(url, timeout_s=30).get_block(5)["transactions"]) == 2500


@pytest.mark.parametrize("depth", [100, 200_000])
def test_a_json_bomb_is_an_error_not_a_traceback(node: tuple[HostileNode, str], depth: int) -> None:
    state, url = node
    bomb = b'{"jsonrpc": "2.0", "id": 1, "result": ' + b"[" * depth + b"]" * depth + b"}"
    state.behaviour = reply({}, raw=bomb)
    with pytest.raises(RpcError, match="nests deeper than 64"):
        client(url).get_slot()


def test_kobe_health_with_a_json_bomb_says_so_and_exits_1(
    node: tuple[HostileNode, str], cli: CliRunner
) -> None:
    state, url = node
    state.behaviour = reply({}, raw=b"[" * 100_000 + b"]" * 100_000)
    result = cli("health", env={"RPC_SOLANA_HTTP": url})
    assert result.code == 1
    assert "nests deeper" in result.out
    assert "Traceback" not in result.out + result.err and CANARY not in result.out + result.err


def test_kobe_health_asks_a_silent_node_once_for_3_s_at_most(
    node: tuple[HostileNode, str], cli: CliRunner
) -> None:
    """README, "Solana indexer": the `solana rpc` check asks "`getSlot` (one attempt, 3 s at
    most)": a node that never answers costs kobe health 3 s, not a retry budget."""
    state, url = node
    state.behaviour = lambda handler, body: time.sleep(6)
    started = time.monotonic()
    result = cli("health", env={"RPC_SOLANA_HTTP": url})
    took = time.monotonic() - started
    assert result.code == 1 and "FAIL  solana rpc: unreachable" in result.out
    assert 2.9 < took < 4.5, took
    assert state.methods == ["getSlot"]  # one attempt


def test_an_absurd_slot_is_refused_and_the_indexer_state_is_not_moved(
    node: tuple[HostileNode, str], tmp_path: Path
) -> None:
    from engine.indexer import Indexer

    state, url = node
    state.behaviour = reply({"result": 10**30})
    indexer = Indexer(client(url), tmp_path, program_ids=["amm"], usdc_mint="usdc")
    with pytest.raises(RpcError, match="not a plausible slot number"):
        indexer.scan(5)
    assert indexer.load_state().last_slot is None
    state.behaviour = reply({"result": -1})
    with pytest.raises(RpcError, match="not a plausible slot number"):
        client(url).get_slot()


def test_the_nodes_error_text_is_cleaned(node: tuple[HostileNode, str]) -> None:
    state, url = node
    message = "\x1b]0;owned\x07[bold red]bad[/]\r\n2026 kill switch RESET " + "y" * 5000
    state.behaviour = reply({"error": {"code": -32000, "message": message}})
    with pytest.raises(RpcError) as info:
        client(url).get_slot()
    text = str(info.value)
    assert "\x1b" not in text and "\r" not in text and "\n" not in text
    assert "[bold red]bad[/]" in text and len(text) < 400


@pytest.mark.parametrize(
    "bad",
    [
        f"http://127.0.0.1:80/{CANARY} token",  # a space
        f"http://127.0.0.1:port/{CANARY}",  # a port that is not a number
        f"http://[{CANARY}/",  # not even a URL
        f"ftp://127.0.0.1/{CANARY}",
    ],
)
def test_a_bad_url_is_refused_without_echoing_it(
    bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(RpcError) as info:
        client(bad).get_slot()
    assert CANARY not in str(info.value) and "127.0.0.1" not in str(info.value)
    assert CANARY not in caplog.text


def test_credentials_in_the_url_go_as_basic_auth_never_to_name_resolution(
    node: tuple[HostileNode, str],
) -> None:
    state, url = node
    with_user = url.replace("http://", f"http://user:{CANARY}@")
    assert client(with_user).get_slot() == 1  # resolved 127.0.0.1, not "user:...@127.0.0.1"
    expected = "Basic " + base64.b64encode(f"user:{CANARY}".encode()).decode()
    assert state.auth == [expected]


def test_health_of_a_bad_url_never_shows_it(cli: CliRunner) -> None:
    for bad in (f"http://127.0.0.1:x/{CANARY}", f"http://user:{CANARY}@127.0.0.1:1 /"):
        result = cli("health", env={"RPC_SOLANA_HTTP": bad})
        assert result.code == 1
        assert CANARY not in result.out + result.err


def first_then(first: Behaviour, result: Any) -> Behaviour:
    """``first`` for the first request, then a reply with ``result``."""
    calls: list[int] = []

    def send(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        calls.append(1)
        (first if len(calls) == 1 else reply({"result": result}))(handler, body)

    return send


@pytest.mark.parametrize("given", ["nan", "inf", "-3", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_a_retry_after_unreadable_or_past_waits_at_most_the_backoff(
    node: tuple[HostileNode, str], given: str
) -> None:
    state, url = node

    def limited(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        handler.send_response(429)
        handler.send_header("Retry-After", given)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    state.behaviour = first_then(limited, 7)
    slept: list[float] = []
    policy = RetryPolicy(max_attempts=2, max_total_s=5.0, base_delay_s=0.01, sleep=slept.append)
    assert SolanaRpc(Secret(url), policy=policy).get_slot() == 7
    assert len(slept) == 1 and 0 <= slept[0] < 1


def test_a_reply_cut_before_its_length_is_a_network_error_and_retried(
    node: tuple[HostileNode, str],
) -> None:
    state, url = node

    def cut(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "500")
        handler.end_headers()
        handler.wfile.write(b'{"jsonrpc": "2.0", "id": 1, "res')
        handler.close_connection = True

    state.behaviour = first_then(cut, 9)
    policy = RetryPolicy(max_attempts=2, max_total_s=5.0, base_delay_s=0.01)
    assert SolanaRpc(Secret(url), policy=policy).get_slot() == 9
