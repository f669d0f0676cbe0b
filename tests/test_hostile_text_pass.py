"""A systematic pass over where outside text enters: a lone surrogate (a JSON ``"\\ud800"``, or a
byte that is not UTF-8 in an argument, which Python reads as ``\\udcff``) and the Unicode line
separators in feeds, RPC replies, notes and operator text; a trade file or kobe.toml nested past
the parser's stack; an invisible character in a refused name; journal text that ``kobe stats``
prints. Each is cleaned where it enters or refused naming the field, and nothing stops."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from rich.text import Text

from engine.indexer.rpc import RpcError
from engine.notify.channels import TelegramChannel, WebhookChannel
from engine.notify.notes import Note
from engine.notify.outbox import Outbox
from engine.runtime import EngineState
from engine.secrets import Secret
from engine.untrusted import BadNumber, clean_text, parse_decimal, shown
from kobe_tui.widgets.journal import JournalPane
from kobe_tui.widgets.money import StatsPane
from tests.cockpit_support import make_app, settle
from tests.conftest import CliRunner, Result
from tests.test_cockpit_untrusted import trade_record
from tests.test_rpc_hardening import HostileNode, node, reply  # noqa: F401 - the fixture
from tests.test_untrusted_paths import copy_runtime, leader_line

SURROGATE = "\\ud800"  # as JSON writes it: json.loads makes a lone surrogate of it
BROKEN = "r\udcffr\u2028x"  # an argument with the byte 0xff and a line separator in it


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("a\ud800b", "ab"), ("a\udcffb", "ab"), ("x\u2028y\u2029z", "x y z"), ("\r\n\t", "  ")],
)
def test_clean_text_drops_surrogates_and_folds_every_line_break(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean
    clean_text(raw).encode("utf-8")  # writable to any journal


def test_a_refused_value_is_quoted_with_what_cannot_be_seen_escaped() -> None:
    assert shown("cex_binance\u200b") == "'cex_binance\\u200b'"
    assert shown("\x1b[2J\nx") == "'\\x1b[2J\\nx'"
    assert shown("y" * 100) == repr("y" * 39 + "…")


def test_a_leader_name_with_a_lone_surrogate_never_stops_the_engine(workdir: Path) -> None:
    runtime, clock, _events, feed = copy_runtime(workdir)
    try:
        runtime.mark_running()
        runtime.tick()
        feed.parent.mkdir(parents=True, exist_ok=True)
        with feed.open("a") as fh:  # raised UnicodeEncodeError saving the strategies' state
            fh.write(leader_line("t-1", leader="NAME").replace("NAME", f"a{SURROGATE}b\\u2028c"))
        for _ in range(3):
            clock.advance(60)
            runtime.tick()
        assert runtime.status().state is EngineState.RUNNING and not runtime.failure
        orders = (runtime.settings.data_dir / "logs" / "orders.jsonl").read_text("utf-8")
        assert "copy ab c t-1" in orders
    finally:
        runtime.stop()


def test_a_reason_typed_with_a_byte_that_is_not_utf8_is_journaled_cleaned(
    cli: CliRunner, workdir: Path
) -> None:
    r = cli(
        "trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15",
        "--reason", BROKEN, "--yes",
    )  # fmt: skip
    assert r.code == 0, r.err  # was: internal error (UnicodeEncodeError), exit 1
    orders = (workdir / "data" / "logs" / "orders.jsonl").read_text("utf-8")
    assert '"reason": "rr x"' in orders


def test_a_trip_reason_with_a_byte_that_is_not_utf8_trips_the_switch(
    cli: CliRunner, workdir: Path
) -> None:
    r = cli("risk", "trip", "--reason", BROKEN)
    assert r.code == 0, r.err
    r = cli("risk", "status")
    assert "TRIPPED" in r.out and "rr x" in r.out, r.out


def test_an_rpc_error_with_a_lone_surrogate_is_shown_cleaned_by_kobe_health(
    node: tuple[HostileNode, str],  # noqa: F811 - the fixture
    cli: CliRunner,
) -> None:
    state, url = node
    error = {"code": -32000, "message": "bad \ud800 \u2028forged"}  # sent as JSON escapes
    state.behaviour = reply({"error": error})
    r = cli("health", env={"RPC_SOLANA_HTTP": url})
    assert r.code == 1
    assert "solana rpc: unreachable: getSlot: JSON-RPC error -32000: bad   forged" in r.out
    r.out.encode("utf-8")  # a terminal's stdout would have raised UnicodeEncodeError


def test_a_note_with_a_lone_surrogate_goes_out_on_both_channels_and_the_outbox(
    workdir: Path,
) -> None:
    note = Note.make(
        "engine_error", "error", datetime(2026, 1, 1, tzinfo=UTC), "paper", "Engine error",
        "bad \ud800 <b>x</b>\u2028forged", symbol="WIF\udcff/USDC",
    )  # fmt: skip
    webhook = WebhookChannel(Secret("http://127.0.0.1:9/hook"), Secret("k" * 32))
    body = json.loads(webhook.payload([note]))  # raised UnicodeEncodeError
    assert body["notes"][0]["detail"] == "bad  <b>x</b> forged"
    text = TelegramChannel(Secret("1:" + "a" * 30), Secret("-100")).payload([note]).decode()
    assert "bad  &lt;b&gt;x&lt;/b&gt; forged" in text and "WIF/USDC" in text
    outbox = Outbox(workdir, ["webhook"])
    try:
        assert outbox.add(note)
    finally:
        outbox.close()


@pytest.mark.parametrize(
    ("name", "text"),
    [("t.json", "[" * 30_000 + "]" * 30_000), ("t.toml", "a = " + "{b=" * 2000 + "1" + "}" * 2000)],
    ids=["json", "toml"],
)
def test_a_trade_file_nested_past_the_parser_exits_2(
    cli: CliRunner, workdir: Path, name: str, text: str
) -> None:
    (workdir / name).write_text(text)
    r = cli("trade", "--file", str(workdir / name), "--yes")
    assert r.code == 2, r.err  # was: internal error (RecursionError), exit 1
    assert r.err.startswith("kobe: --file: ") and "nested too deep" in r.err
    assert not (workdir / "data").exists()


def test_a_kobe_toml_nested_past_the_parser_exits_2(cli: CliRunner, workdir: Path) -> None:
    (workdir / "kobe.toml").write_text("a = " + "[" * 2000 + "]" * 2000 + "\n")
    r = cli("health")
    assert r.code == 2, r.err
    assert r.err.startswith("kobe.toml: TOML nested too deep")
    assert not (workdir / "data").exists()


@pytest.mark.parametrize(
    ("args", "problem", "typed"),
    [
        (
            ("--symbol", "BTC\u200b/USDT"),
            "--symbol: BTC/USDT has no spot market on binance (paper)",
            "'BTC\\u200b/USDT'",
        ),
        (
            ("--symbol", "BTC/USDT", "--wallet", "cex_binance\u202e"),
            "--wallet: unknown wallet cex_binance (wallets: ",
            "'cex_binance\\u202e'",
        ),
    ],
    ids=["symbol", "wallet"],
)
def test_a_name_refused_for_an_invisible_character_says_so(
    cli: CliRunner, workdir: Path, args: tuple[str, ...], problem: str, typed: str
) -> None:
    """It read `unknown wallet cex_binance (wallets: …, cex_binance, …)`."""
    r = cli("trade", "--side", "buy", "--type", "market", "--quote", "15", "--yes", *args)
    assert r.code == 2 and r.err.startswith(f"kobe: {problem}"), r.err
    assert r.err.endswith(f" (as typed: {typed})\n"), r.err
    assert not (workdir / "data").exists()


HOSTILE_NAME = "\x1b]0;owned\x07evil\r\nkill switch RESET \ud800\u2028x"


def hostile_trades(workdir: Path) -> None:
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    record = trade_record("t-1", f"leader {HOSTILE_NAME} sold")
    record |= {"strategy": HOSTILE_NAME, "wallet": "copy_sol\x1b[2J"}
    (data / "trades.jsonl").write_text(json.dumps(record) + "\n")


def test_kobe_stats_prints_journal_text_literally(cli: CliRunner, workdir: Path) -> None:
    hostile_trades(workdir)
    r = cli("stats")
    assert r.code == 0, r.err
    assert "]0;ownedevil" in r.out and "copy_sol[2J" in r.out  # names cut to their column
    assert not {"\x1b", "\x07", "\r", "\ud800", "\u2028"} & set(r.out)


async def test_the_cockpit_shows_surrogates_and_separators_in_the_journal_cleaned(
    workdir: Path,
) -> None:
    hostile_trades(workdir)
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert app.engine_state == "running"
        reason = app.query_one(JournalPane).row_cells("t-1")[6]
        assert isinstance(reason, Text)
        assert reason.plain.startswith("leader ]0;ownedevil kill switch RESET  x sold")
        stats = app.query_one(StatsPane)
        names = {cells[0].plain for cells in stats._rows.values()}
        assert "s ]0;ownedevil kill switch RESET  x" in names and "w copy_sol[2J" in names


BOMB = "[" * 100_000 + "]" * 100_000 + "\n"  # JSON nested past the parser's stack


def traded(cli: CliRunner, workdir: Path) -> Path:
    r = cli(
        "trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15",
        "--sl", "90000", "--tp", "99000", "--yes",
    )  # fmt: skip
    assert r.code == 0, r.err
    return workdir / "data"


def test_a_nested_bomb_in_the_risk_state_still_lets_the_operator_trip(
    cli: CliRunner, workdir: Path
) -> None:
    """The emergency brake failed with an internal error (RecursionError), exit 1."""
    data = traded(cli, workdir)
    (data / "execution_runtime.json").write_text(BOMB)
    r = cli("risk", "trip", "--reason", "brake", "--yes")
    assert r.code == 0, r.err
    r = cli("risk", "status")
    assert r.code == 0 and "TRIPPED" in r.out, r.out + r.err


@pytest.mark.parametrize("journal", ["logs/orders.jsonl", "trades.jsonl"])
def test_a_nested_bomb_line_in_a_journal_is_skipped_by_the_readers(
    cli: CliRunner, workdir: Path, journal: str
) -> None:
    data = traded(cli, workdir)
    with (data / journal).open("a") as fh:
        fh.write(BOMB)
    for command in ("orders", "positions", "stats"):
        r = cli(command)
        assert r.code == 0, (command, r.err)
        assert "RecursionError" not in r.err
    assert "BTC/USDT" in cli("positions").out  # the lines around it are read


def test_a_nested_bomb_as_the_paper_account_is_named_not_an_internal_error(
    cli: CliRunner, workdir: Path
) -> None:
    data = traded(cli, workdir)
    (data / "paper" / "state.json").write_text(BOMB)
    r = cli("orders")
    assert r.code == 1 and "paper state" in r.err and "unreadable" in r.err, r.err
    assert "internal error" not in r.err


def test_a_reply_of_millions_of_tiny_values_is_refused_before_it_is_parsed(
    node: tuple[HostileNode, str],  # noqa: F811 - the fixture
) -> None:
    """README, "Solana indexer": 2,000,000 JSON values, strings and containers at most. 63 MB of `[],`
    parsed to 20 million lists: 1.6 GB and 16 s of the engine's tick."""
    from engine.exchange.retry import RetryPolicy
    from engine.indexer.rpc import MAX_JSON_VALUES, SolanaRpc

    state, url = node
    rpc = SolanaRpc(Secret(url), policy=RetryPolicy(max_attempts=1, max_total_s=5.0))
    for lists, refused in ((1_000_001, True), (990_000, False)):  # each `[],` counts twice
        body = b'{"jsonrpc":"2.0","id":1,"result":{"transactions":[' + b"[]," * lists + b"[]]}}"
        state.behaviour = reply({}, raw=body)
        if refused:
            with pytest.raises(RpcError, match=f"more than {MAX_JSON_VALUES} JSON values"):
                rpc.get_block(5)
        else:
            assert rpc.get_block(5) is not None  # a large block still reads


def test_a_trade_file_that_is_a_fifo_nobody_writes_to_is_refused_not_waited_for(
    cli: CliRunner, workdir: Path
) -> None:
    """`kobe trade --file FIFO` waited in `open` for a writer for good."""
    fifo = workdir / "t.toml"
    os.mkfifo(fifo)
    results: list[Result] = []
    runner = threading.Thread(target=lambda: results.append(cli("trade", "--file", str(fifo))))
    runner.start()
    runner.join(10)
    hung = runner.is_alive()
    if hung:  # a writer comes and goes: the open returns, the read ends
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        runner.join(10)
    assert not hung
    assert results[0].code == 2 and "--file: " in results[0].err and "empty" in results[0].err
    assert not (workdir / "data").exists()


@pytest.mark.parametrize("raw", ["0e-9999", "0E+9999", Decimal("0E-999999999"), Decimal("-0E+99")])
def test_a_zero_with_an_absurd_exponent_is_out_of_range(raw: object) -> None:
    """It passed as zero: a feed or TOML float `0e-999999999` (read as Decimal) that reached a
    fixed-point format would have been written as a gigabyte of zeros."""
    with pytest.raises(BadNumber, match="out of range"):
        parse_decimal(raw, "liquidity_usd")
    assert parse_decimal("0.00000000", "fee") == 0 and parse_decimal("-0", "pnl") == 0


def test_a_number_argument_with_an_invisible_character_is_quoted_as_typed(
    cli: CliRunner,
) -> None:
    """It read `--ticks: not a plain decimal number (got '5')`."""
    r = cli("run", "--headless", "--ticks", "5\u200b")
    assert r.code == 2
    assert "--ticks: not a plain decimal number (got '5\\u200b')" in r.err, r.err


def test_an_external_orders_client_id_from_the_exchange_is_printed_literally(
    cli: CliRunner,
) -> None:
    """`kobe orders` printed an external order's client id as the exchange sent it: an escape
    retitled the terminal and a CR/LF forged a line of its own."""
    from tests.binance_sim import BinanceSim
    from tests.test_ccxt_contract import sim_env

    with BinanceSim() as sim:
        sim._new_order(
            {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.001",
             "price": "50000", "timeInForce": "GTC",
             "newClientOrderId": "\x1b]0;owned\x07x\r\nFORGED [bold]"}
        )  # fmt: skip
        r = cli("orders", env=sim_env(sim))
    assert r.code == 0, r.err
    assert "]0;ownedx FORGED [bold]  BTC/USDT" in r.out, r.out
    assert not {"\x1b", "\x07", "\r"} & set(r.out + r.err) and r.out.count("\n") == 1


@pytest.mark.parametrize("name", ["BINANCE_KEY", "RPC_SOLANA_HTTP", "KOBE_WEBHOOK_URL"])
def test_a_secret_with_a_byte_that_is_not_utf8_is_refused_naming_it(
    cli: CliRunner, workdir: Path, name: str
) -> None:
    """Every kobe command died at its start with a traceback (UnicodeEncodeError while learning
    the forms to redact the value in)."""
    value = "http://127.0.0.1:1/tok\udcffen-12345"  # what Python reads for the byte 0xff
    r = cli("health", env={name: value})
    assert (
        r.code == 2 and r.err == f"{name}: not UTF-8 text (a stray byte; its value is not shown)\n"
    )
    assert cli("--help", env={name: value}).code == 0
    assert not (workdir / "data").exists()
