"""Strict, bounded input (issue 15): every malformed argument and config key exits 2 naming it,
with nothing changed on disk; every ``--help`` works."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.cli import build_parser
from tests.conftest import ROOT, CliRunner, run_kobe

TRADE = ("trade", "--symbol", "BTC/USDT", "--side", "buy", "--yes")


@pytest.mark.parametrize(
    ("args", "flag", "problem"),
    [
        (("--type", "market", "--quote", "1_5"), "--quote", "not a plain decimal number"),
        (("--type", "market", "--quote", "١٥"), "--quote", "not a plain decimal number"),
        (("--type", "market", "--quote", "1e999999999"), "--quote", "not a plain decimal"),
        (("--type", "market", "--quote", "-5"), "--quote", "must be positive"),
        (("--type", "market", "--quote", "0"), "--quote", "must be positive"),
        (("--type", "market", "--quote", "nan"), "--quote", "not a plain decimal number"),
        (("--type", "market", "--quote", "1e13"), "--quote", "must be at most"),
        (("--type", "limit", "--price", "1e-999999", "--quote", "15"), "--price", "not a plain"),
        (("--type", "limit", "--price", "1e-40", "--quote", "15"), "--price", "out of range"),
        (("--type", "market", "--risk", "101", "--sl", "1"), "--risk", "must be at most 100"),
        (("--type", "market", "--quote", "15", "--sl", "-1"), "--sl", "must be positive"),
    ],
)
def test_bad_trade_numbers_exit_2_naming_the_flag(
    cli: CliRunner, workdir: Path, args: tuple[str, ...], flag: str, problem: str
) -> None:
    r = cli(*TRADE, *args)
    assert r.code == 2, r.out + r.err
    assert r.err.startswith(f"kobe: {flag}: ") and problem in r.err
    assert not (workdir / "data").exists()  # nothing sent, nothing written


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (("run", "--headless", "--duration", "nan"), "--duration"),
        (("run", "--headless", "--duration", "inf"), "--duration"),
        (("run", "--headless", "--duration", "1e12"), "--duration"),
        (("run", "--headless", "--duration", "5", "--tick", "-1"), "--tick"),
        (("run", "--headless", "--duration", "5", "--tick", "0"), "--tick"),
        (("run", "--headless", "--ticks", "0"), "--ticks"),
        (("run", "--headless", "--ticks", "1_0"), "--ticks"),
        (("run", "--headless", "--ticks", "2.5"), "--ticks"),
        (("run", "--headless", "--ticks", "٥"), "--ticks"),
        (("run", "--headless", "--ticks", "5", "--seed", "1e99"), "--seed"),
        (("indexer", "scan", "--slots", "0"), "--slots"),
        (("indexer", "scan", "--slots", "-3"), "--slots"),
    ],
)
def test_bad_run_and_scan_arguments_exit_2(
    cli: CliRunner, workdir: Path, argv: tuple[str, ...], flag: str
) -> None:
    r = cli(*argv)
    assert r.code == 2
    assert f"argument {flag}: " in r.err
    assert not (workdir / "data").exists()


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (("run", "--headless", "--ticks", "5", "--seed", "-1"), "--seed: must be at least 0"),
        (("run", "--headless", "--ticks", "-0"), "--ticks: must be at least 1"),
        (("indexer", "scan", "--slots", "0"), "--slots: must be at least 1"),
        (("run", "--headless", "--duration", "0"), "--duration: must be above 0"),
    ],
)
def test_a_number_below_its_minimum_names_the_minimum(
    cli: CliRunner, argv: tuple[str, ...], problem: str
) -> None:
    """`--seed -1` said "must be above -1": true, but it reads as if -1 were fine."""
    r = cli(*argv)
    assert r.code == 2 and f"argument {problem} (got " in r.err, r.err


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[risk]\ncooldown_after_loss_s = 1e30\n", "risk.cooldown_after_loss_s"),
        ("[risk]\ncooldown_after_loss_s = 40000000\n", "risk.cooldown_after_loss_s"),
        ("[strategies.memecoin_farming]\nhold_time_s = 1e20\n", "hold_time_s"),
        ("[finance]\ncapital_usd = 1e999999999\n", "finance.capital_usd"),
        ("[finance]\ncapital_usd = 1e13\n", "finance.capital_usd"),
        ("[risk]\nmax_daily_loss_usd = nan\n", "risk.max_daily_loss_usd"),
        ("[risk]\nmax_daily_loss_usd = inf\n", "risk.max_daily_loss_usd"),
        ('[risk]\nmax_daily_loss_usd = "15"\n', "risk.max_daily_loss_usd"),
        ('[tx_guard]\nhard_disable_send_tx = "no"\n', "tx_guard.hard_disable_send_tx"),
        ("[tx_guard]\nhard_disable_send_tx = 0\n", "tx_guard.hard_disable_send_tx"),
        ("[risk]\nmax_losing_streak = true\n", "risk.max_losing_streak"),
        ('[risk]\nmax_losing_streak = "5"\n', "risk.max_losing_streak"),
        ('[paper]\nseed = "7"\n', "paper.seed"),
        ("[wallet_flows.fees_sweep]\nperiod_s = 1e9\n", "wallet_flows.fees_sweep.period_s"),
        ('symbols = ["BTC/USDT/EUR"]\n', "symbols[0]"),
        ('symbols = ["BTC/USDT", "BTC/USDT"]\n', "symbols"),
        ('symbols = ["DOGE/USDT"]\n', "symbols"),
        ("[rpc]\ntimeout_s = 1e9\n", "rpc.timeout_s"),
        ("[paths]\nmin_free_mb = -1\n", "paths.min_free_mb"),
        ("[router]\nstop_rest_timeout_s = true\n", "router.stop_rest_timeout_s"),
        ('[router]\nstop_rest_timeout_s = "60"\n', "router.stop_rest_timeout_s"),
        ("[router]\nstop_rest_timeout_s = 60.0\n", "router.stop_rest_timeout_s"),
        ("[paper]\nsim_start = 9999-12-31T23:59:59Z\n", "paper.sim_start"),
        ("[paper]\nsim_start = 0001-01-01T00:00:00Z\n", "paper.sim_start"),
        ('[notify]\ndaily_summary_utc = "\u0662\u0661:\u0660\u0660"\n', "notify.daily_summary_utc"),
    ],
)
def test_malformed_config_exits_2_naming_the_key(
    cli: CliRunner, workdir: Path, toml: str, key: str
) -> None:
    (workdir / "kobe.toml").write_text(toml)
    for argv in (("health",), ("run", "--headless", "--ticks", "1"), ("risk", "status")):
        r = cli(*argv)
        assert r.code == 2, (argv, r.out, r.err)
        assert key in r.err and "Traceback" not in r.err
    assert not (workdir / "data").exists()


def test_data_dir_paths_are_checked(cli: CliRunner, workdir: Path) -> None:
    (workdir / "afile").write_text("x")
    for value, problem in (
        (str(workdir / "afile"), "is not a directory"),
        (str(workdir / "afile" / "data"), "is not a directory"),
        ("d" * 4096, "characters long"),
        ("x" * 300, "longer than 255 bytes"),
    ):
        r = cli("risk", "status", env={"KOBE_DATA_DIR": value})
        assert r.code == 2 and r.err.startswith("KOBE_DATA_DIR: ") and problem in r.err
        (workdir / "kobe.toml").write_text(f'[paths]\ndata_dir = "{value}"\n')
        r = cli("run", "--headless", "--ticks", "1")
        assert r.code == 2 and "paths.data_dir: " in r.err  # the path's problem, or its length
        assert problem in r.err or "must be at most 1000 characters" in r.err
        (workdir / "kobe.toml").unlink()


def test_a_lock_that_is_a_directory_or_a_symlink_is_refused(cli: CliRunner, workdir: Path) -> None:
    data = workdir / "data"
    data.mkdir()
    (data / "kobe.lock").mkdir()
    r = cli("run", "--headless", "--ticks", "1")
    assert r.code == 2 and "kobe.lock: the data dir's lock file is not a regular file" in r.err
    (data / "kobe.lock").rmdir()
    precious = workdir / "precious.txt"
    precious.write_text("keep me")
    (data / "kobe.lock").symlink_to(precious)
    for argv in (
        ("run", "--headless", "--ticks", "1"),
        (*TRADE, "--type", "market", "--quote", "15"),
    ):
        r = cli(*argv)
        assert r.code == 2 and "kobe.lock: the data dir's lock file is a symlink" in r.err
    assert precious.read_text() == "keep me"  # never truncated through the link


@pytest.mark.parametrize("kind", ["directory", "symlink"])
def test_an_indexer_scan_lock_that_is_no_regular_file_exits_2(
    cli: CliRunner, workdir: Path, kind: str
) -> None:
    """README, "Data files": `indexer/scan.lock` "refused when it is not a regular file (exit
    2)", never written through (a symlink's target keeps its bytes), nothing asked of the node."""
    lock = workdir / "data" / "indexer" / "scan.lock"
    lock.parent.mkdir(parents=True)
    precious = workdir / "precious.txt"
    precious.write_text("keep me")
    lock.mkdir() if kind == "directory" else lock.symlink_to(precious)
    before = _tree(workdir)
    r = cli("indexer", "scan", env={"RPC_SOLANA_HTTP": "http://127.0.0.1:1"})
    assert r.code == 2, (r.out, r.err)
    assert "scan.lock: " in r.err and ("not a regular file" in r.err or "a symlink" in r.err)
    assert _tree(workdir) == before


def test_a_broken_lock_file_never_blocks_an_emergency_trip(cli: CliRunner, workdir: Path) -> None:
    """`kobe risk trip` was refused (exit 2) by a lock file that is a directory: the trip is
    queued all the same (a queued trip is TRIPPED); a reset is still refused."""
    data = workdir / "data"
    data.mkdir()
    (data / "kobe.lock").mkdir()
    r = cli("risk", "trip", "--reason", "panic", "--yes")
    assert r.code == 0 and "queued" in r.out and "not a regular file" in r.err
    status = json.loads(cli("risk", "status", "--json").out)
    assert status["state"] == "TRIPPED"
    r = cli("risk", "reset", "--yes")
    assert r.code == 2 and "not a regular file" in r.err
    (data / "kobe.lock").rmdir()
    assert json.loads(cli("risk", "status", "--json").out)["state"] == "TRIPPED"
    r = cli("risk", "status")
    assert r.code == 0


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    out = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _commands(sub, (*prefix, name))
    return out


COMMANDS = _commands(build_parser())


def test_every_command_is_covered() -> None:
    assert ("wallets",) in COMMANDS and ("risk", "reset") in COMMANDS and len(COMMANDS) > 10


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "kobe")
def test_every_help_works(cli: CliRunner, workdir: Path, command: tuple[str, ...]) -> None:
    r = cli(*command, "--help")
    assert r.code == 0, r.err
    assert r.out.startswith("usage: kobe") and not r.err
    assert not (workdir / "data").exists()


def test_kobe_tui_help_prints_usage_and_does_not_start(workdir: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", "from kobe_tui.app import main; main()", "--help"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: kobe-tui") and "\x1b[" not in proc.stdout
    assert not (workdir / "data").exists()  # no engine, no cockpit


def test_kobe_tui_echoes_a_key_pasted_as_an_argument_as_stars(workdir: Path) -> None:
    key = "PastedKey" + "z8" * 16
    (workdir / ".env").write_text(f"BINANCE_SECRET={key}\n")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", "from kobe_tui.app import main; main()", key],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "unrecognized arguments: ***" in proc.stderr and key not in proc.stderr


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("t.json", b"\xff\xfe{}", "not UTF-8 text"),
        ("t.toml", b"x" * 70_000, "larger than 65536 bytes"),
        ("t.json", b'{"symbol": ["BTC/USDT"], "side": "buy", "type": "market", "quote": 15}',
         "symbol: must be a string"),
        ("t.toml", b'symbol = "BTC/USDT"\nside = "buy"\ntype = "market"\nquote = 15\nwallet = 5\n',
         "wallet: must be a string"),
        ("t.toml", b'symbol = "BTC/USDT"\nside = "buy"\ntype = "market"\nquote = 15\n'
         b"reason = {a = 1}\n", "reason: must be a string"),
        ("t.json", b'{"symbol": "BTC/USDT", "side": true, "type": "market", "quote": 15}',
         "side: must be a string"),
    ],
    ids=["not-utf8", "too-large", "symbol-list", "wallet-int", "reason-table", "side-bool"],
)  # fmt: skip
def test_a_bad_trade_file_exits_2_naming_the_problem(
    cli: CliRunner, workdir: Path, name: str, content: bytes, problem: str
) -> None:
    """--file is read as text of bounded size, and its fields have the flags' types: a wrong one
    is named, never turned into a string and sent (a list as a symbol, a table as a reason)."""
    path = workdir / name
    path.write_bytes(content)
    r = cli("trade", "--file", str(path), "--yes")
    assert r.code == 2, (r.out, r.err)
    assert r.err.startswith("kobe: --file: ") and problem in r.err, r.err
    assert "Traceback" not in r.err
    assert not (workdir / "data").exists()


def test_a_trade_file_that_never_ends_is_refused(cli: CliRunner, workdir: Path) -> None:
    r = cli("trade", "--file", "/dev/zero", "--yes")
    assert r.code == 2 and "larger than 65536 bytes" in r.err
    assert not (workdir / "data").exists()


@pytest.mark.parametrize("name", ["KOBE_DATA_DIR", "KOBE_CONFIG"])
@pytest.mark.parametrize("bad", ["x\x1b[31mRED", "x\nfake line", "x\u202etxt"])
def test_paths_from_the_environment_with_control_characters_exit_2(
    cli: CliRunner, workdir: Path, name: str, bad: str
) -> None:
    """Like config strings: a path in KOBE_DATA_DIR or KOBE_CONFIG is shown by `kobe health`
    and `kobe run`, so an escape sequence or a line break in it is refused, not printed."""
    (workdir / bad).write_text("")  # KOBE_CONFIG: a file of that name exists
    r = cli("health", env={name: str(workdir / bad)})
    assert r.code == 2, (r.out, r.err)
    assert r.err.startswith(f"{name}: must not contain control characters")
    assert "\x1b" not in r.out + r.err and "\nfake" not in r.out + r.err
    assert not (workdir / "data").exists()


def run_cockpit(workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``kobe-tui`` in ``workdir`` with only ``env`` set (no terminal: it reads no keys)."""
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "TERM": "xterm"}
    return subprocess.run(
        [sys.executable, "-c", "from kobe_tui.app import main; main()"],
        cwd=workdir, env={**base, **env}, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"KOBE_MODE": "bogus"}, "KOBE_MODE: must be one of paper, testnet, live"),
        ({"KOBE_EXCHANGE_URL": "http://example.com:80"}, "KOBE_EXCHANGE_URL: must be a loopback"),
    ],
)
def test_kobe_tui_with_a_bad_config_exits_2_and_writes_nothing(
    workdir: Path, env: dict[str, str], problem: str
) -> None:
    """The cockpit paints before it validates, but a refused config leaves no trace on disk:
    its log file is created by the first line it logs, not at start."""
    proc = run_cockpit(workdir, env)
    assert proc.returncode == 2, proc.stderr[-500:]
    assert problem in proc.stderr and "Traceback" not in proc.stderr
    assert list(workdir.iterdir()) == []  # no data dir, no logs/cockpit.log


@pytest.mark.parametrize(
    ("env", "toml", "problem"),
    [
        ({"KOBE_MODE": "livee"}, None, "KOBE_MODE: must be one of paper, testnet, live"),
        ({}, 'mode = "live"\n[exchange\n', "kobe.toml: TOML syntax error"),
        ({"KOBE_CONFIG": "gone.toml"}, None, "gone.toml"),
        # .env (which may set KOBE_MODE=live) cannot be read: kobe.toml's paper is not the mode
        ({}, b"KOBE_MODE=live\xff\n", ".env: not UTF-8"),
        # an exchange Kobe does not have: a frame would name binance, the default, meanwhile
        ({"EXCHANGE": "kraken"}, None, "EXCHANGE: must be one of binance, bybit, okx"),
        ({}, '[exchange]\nname = "kraken"\n', "kraken"),
    ],
    ids=[
        "bad-mode",
        "damaged-toml",
        "missing-config",
        "unreadable-dotenv",
        "bad-exchange-env",
        "bad-exchange-toml",
    ],
)
def test_kobe_tui_never_draws_a_mode_it_cannot_name(
    workdir: Path, env: dict[str, str], toml: str | bytes | None, problem: str
) -> None:
    """With a mode it could not read, the first frame said PAPER until the config's errors came
    back: a live config with a typo was shown as paper. Now it stops before any frame; so it does
    with an exchange it does not have (the frame named the default, binance)."""
    if isinstance(toml, bytes):  # not kobe.toml: .env
        (workdir / ".env").write_bytes(toml)
    elif toml is not None:
        (workdir / "kobe.toml").write_text(toml)
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "TERM": "xterm"}
    screen, tty = pty.openpty()  # a terminal, as over SSH: Textual draws its frames into it
    proc = subprocess.Popen(
        [sys.executable, "-c", "from kobe_tui.app import main; main()"],
        cwd=workdir, env={**base, **env}, stdin=tty, stdout=tty, stderr=tty,
    )  # fmt: skip
    os.close(tty)
    drawn = b""  # Textual draws on stderr; the errors follow
    with contextlib.suppress(OSError):  # EIO once the child has closed its end
        while chunk := os.read(screen, 65536):
            drawn += chunk
    os.close(screen)
    proc.wait(timeout=60)
    assert proc.returncode == 2 and problem.encode() in drawn, drawn[-500:]
    assert b"PAPER" not in drawn and b"LIVE" not in drawn  # no frame claimed a mode


def test_a_dotenv_that_is_not_utf8_exits_2_naming_it(workdir: Path) -> None:
    (workdir / ".env").write_bytes(b"KOBE_MODE=\xff\xfe\n")
    r = run_kobe("health", cwd=workdir)
    assert r.code == 2, r.err
    assert r.err.startswith(".env: not UTF-8 text") and "Traceback" not in r.err
    proc = run_cockpit(workdir, {})
    assert proc.returncode == 2 and ".env: not UTF-8 text" in proc.stderr, proc.stderr[-500:]
    assert sorted(p.name for p in workdir.iterdir()) == [".env"]


@pytest.mark.parametrize(
    "argv",
    [
        ("run", "--headless", "--ticks", "1"),
        ("trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15",
         "--yes"),
        ("cancel", "--all", "--yes"),
    ],
    ids=["run", "trade", "cancel"],
)  # fmt: skip
def test_a_symbol_the_exchange_lacks_exits_2_before_any_state_is_written(
    cli: CliRunner, workdir: Path, argv: tuple[str, ...]
) -> None:
    """README: in testnet and live an unknown symbol "exits 2 naming it ..., nothing sent"; and
    like every bad config it leaves the data dir as it was (only the lock is taken)."""
    from tests.binance_sim import BinanceSim
    from tests.test_ccxt_contract import sim_env

    (workdir / "kobe.toml").write_text('symbols = ["BTC/USDT", "DOGE/USDT"]\n')
    with BinanceSim() as sim:
        r = cli(*argv, env=sim_env(sim))
        assert [m for m, _ in sim.requests if m != "GET"] == []
    assert r.code == 2, (r.out, r.err)
    assert r.err.startswith("symbols: DOGE/USDT has no spot market on binance (testnet)")
    assert [p.name for p in (workdir / "data").iterdir()] == ["kobe.lock"]


def test_exchange_prices_in_paper_are_refused_not_a_traceback(
    cli: CliRunner, workdir: Path
) -> None:
    """`paper.price_source = "exchange"` has no ticker source wired to the paper venue: every
    paper command died with a ValueError traceback. It is refused like any bad value."""
    (workdir / "kobe.toml").write_text('[paper]\nprice_source = "exchange"\n')
    for argv in (
        ("health",),
        ("run", "--headless", "--ticks", "1"),
        ("orders",),
        (*TRADE, "--type", "market", "--quote", "15"),
    ):
        r = cli(*argv)
        assert r.code == 2, (argv, r.out, r.err)
        assert r.err.startswith("paper.price_source: ") and "Traceback" not in r.err
    assert not (workdir / "data").exists()


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("--symbol", "DOGE/USDT"), "--symbol: DOGE/USDT has no spot market on binance (paper)"),
        (("--symbol", "BTC/USDT\x1b[2J"), "--symbol: BTC/USDT[2J has no spot market"),
        (("--symbol", "BTC/USDT", "--wallet", "nosuch"), "--wallet: unknown wallet nosuch"),
    ],
)
def test_a_symbol_or_wallet_that_does_not_exist_exits_2(
    cli: CliRunner, workdir: Path, args: tuple[str, ...], problem: str
) -> None:
    """A name that names nothing is a bad argument (exit 2, nothing written), like a bad number;
    a wallet that exists but may not trade here is a refusal (exit 1)."""
    r = cli("trade", "--side", "buy", "--type", "market", "--quote", "15", "--yes", *args)
    assert r.code == 2, (r.out, r.err)
    assert r.err.startswith(f"kobe: {problem}"), r.err
    assert "\x1b" not in r.err
    assert not (workdir / "data").exists()


def test_a_symbol_the_exchange_lacks_in_testnet_exits_2_and_sends_nothing(
    cli: CliRunner,
) -> None:
    from tests.binance_sim import BinanceSim
    from tests.test_ccxt_contract import sim_env

    with BinanceSim() as sim:
        r = cli(*TRADE, "--type", "market", "--quote", "15", env=sim_env(sim))
        assert r.code == 0, r.err  # BTC/USDT is one of its markets
        sent = len([m for m, _ in sim.requests if m != "GET"])
        argv = ("trade", "--symbol", "DOGE/USDT", "--side", "buy", "--type", "market")
        r = cli(*argv, "--quote", "15", "--yes", env=sim_env(sim))
        assert len([m for m, _ in sim.requests if m != "GET"]) == sent
    assert r.code == 2 and r.err.startswith(
        "kobe: --symbol: DOGE/USDT has no spot market on binance (testnet)"
    ), r.err


@pytest.mark.parametrize("argv", [("cancel",), ("exits", "--tp", "5")], ids=["cancel", "exits"])
def test_an_id_argument_is_shown_literally(cli: CliRunner, argv: tuple[str, ...]) -> None:
    """`kobe cancel ID` and `kobe exits POSITION` echo the id they could not find: an escape
    sequence or a line break in it is stripped, never written to the terminal."""
    r = cli(*argv, "x\x1b[31my\nforged", "--yes")
    assert r.code == 1, r.err
    assert "x[31my forged" in r.err
    assert "\x1b" not in r.err and "\nforged" not in r.err


def test_a_trade_file_path_is_shown_literally(cli: CliRunner, workdir: Path) -> None:
    r = cli("trade", "--file", str(workdir / "x\x1b[31my\nforged"), "--yes")
    assert r.code == 2 and "cannot read" in r.err
    assert "\x1b" not in r.err and "\nforged" not in r.err


def test_kobe_config_naming_a_directory_says_so(cli: CliRunner, workdir: Path) -> None:
    r = cli("health", env={"KOBE_CONFIG": str(workdir)})
    assert r.code == 2 and r.err.startswith("KOBE_CONFIG: not a regular file (got "), r.err


def test_tick_is_refused_with_ticks_not_ignored(cli: CliRunner, workdir: Path) -> None:
    """`--ticks` runs on a simulated clock, one minute of market time a step: a `--tick` beside
    it was silently ignored, as `--price` on a market order is not."""
    r = cli("run", "--headless", "--ticks", "5", "--tick", "1")
    assert r.code == 2 and "--tick: only with --duration" in r.err, r.err
    assert not (workdir / "data").exists()


def test_an_unexpected_error_is_one_redacted_line_not_a_traceback(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in a command (an exception no handler expects) ends with one line naming it, exit
    1, its text redacted of every known secret; the traceback is logged, shown with -v."""
    from engine.cli import health

    secret = "CANARY-unexpected-7Qx9"

    def broken(ctx: Any) -> int:
        assert ctx.settings.secrets.is_set("BINANCE_KEY")  # a command reads its settings first
        raise RuntimeError(f"boom near {secret}")

    monkeypatch.setattr(health, "cmd_keys", broken)
    r = cli("keys", env={"BINANCE_KEY": secret, "BINANCE_SECRET": "s" * 20})
    assert r.code == 1
    assert r.err == "kobe: internal error (RuntimeError): boom near ***\n"


@pytest.mark.parametrize(
    ("argv", "env", "code"),
    [
        (["stats"], {}, 0),
        (["wallets"], {}, 0),
        (["health"], {"KOBE_MODE": "testnet"}, 1),  # a failing check: its code, not 0
    ],
)
def test_a_reader_that_went_away_is_no_internal_error_and_keeps_the_exit_code(
    workdir: Path, argv: list[str], env: dict[str, str], code: int
) -> None:
    """``kobe health | head -1``: the reader closed the pipe before kobe wrote. Where a write
    reached the pipe during the command, that printed ``kobe: internal error
    (BrokenPipeError)``, exit 1, and cut the command short where it was; where it reached it
    at the end, kobe exited 0 whatever the command said (a failing health check read as
    passed). Now the command runs to its end, unheard, with its own exit code and nothing on
    stderr."""
    child_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **env}
    child_env["KOBE_DATA_DIR"] = str(workdir / "data")
    (workdir / "data").mkdir()
    trade = {
        "trade_id": "kobe1", "opened_at": "2026-01-01T00:06:00Z", "wallet": "sniper_sol",
        "closed_at": "2026-01-01T00:36:00Z", "strategy": "memecoin_farming", "side": "buy",
        "symbol": "YOLPUM/USDC", "qty": "87.66", "entry_price": "0.0570657853", "fees": "0.02",
        "exit_price": "0.0552055849", "pnl": "-0.19", "reason": "hold time reached",
    }  # fmt: skip
    (workdir / "data" / "trades.jsonl").write_text(json.dumps(trade) + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from engine.cli import entrypoint; entrypoint()", *argv],
        cwd=workdir, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line
    assert proc.wait(timeout=120) == code
    assert proc.stderr.read() == b""


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and directory (None) under ``root``, by relative path."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def used_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working dir whose data dir has history: a position with its OCO exits open, a closed
    trade, the wallets snapshot, the journals, the paper account and the risk files."""
    from engine.cli import main

    work = tmp_path_factory.mktemp("used")

    def kobe(*argv: str) -> None:
        err = io.StringIO()
        assert main(list(argv), env={}, cwd=work, out=io.StringIO(), err=err) == 0, err.getvalue()

    kobe(*TRADE, "--type", "market", "--quote", "7", "--sl", "90000", "--tp", "99000")
    kobe(*TRADE, "--type", "limit", "--price", "94000", "--quote", "6")
    kobe("run", "--headless", "--ticks", "3", "--seed", "7")
    kobe("risk", "trip", "--reason", "audit", "--yes")
    kobe("risk", "reset", "--yes")
    return work


BUY = (*TRADE, "--type", "market")
RUN = ("run", "--headless")
TOO_MANY_DIGITS = "15." + "1" * 41
RPC_URL = "the Solana RPC endpoint (RPC_SOLANA_HTTP) is not an http:// or https:// URL"
NOTIFY = '[notify]\nchannels = ["telegram", "webhook"]\n'
# (argv, environment, kobe.toml, what the error says: the field and the problem). Secrets'
# values are unlike any word: once read, a value is redacted from all later output in the process
BAD_INPUT: list[tuple[tuple[str, ...], dict[str, str], str | None, str]] = [
    ((*BUY, "--quote", ""), {}, None, "--quote: not a plain decimal number (got '')"),
    ((*BUY, "--quote", "-1e5"), {}, None, "--quote: must be positive (got '-1e5')"),
    ((*BUY, "--quote", "-inf"), {}, None, "--quote: not a plain decimal number (got '-inf')"),
    ((*BUY, "--quote", "inf"), {}, None, "--quote: not a plain decimal number (got 'inf')"),
    ((*BUY, "--quote", "NaN"), {}, None, "--quote: not a plain decimal number (got 'NaN')"),
    ((*BUY, "--quote", "1e999"), {}, None, "--quote: out of range (got '1e999')"),
    ((*BUY, "--quote", TOO_MANY_DIGITS), {}, None, "--quote: too many digits"),
    ((*BUY, "--quote", "15", "--risk", "1"), {}, None, "--risk: not allowed with argument --quote"),
    ((*BUY,), {}, None, "give exactly one of --quote AMOUNT or --risk PCT"),
    ((*BUY, "--quote", "15", "--price", "9e4"), {}, None, "--price: only for limit orders"),
    ((*TRADE, "--type", "limit", "--quote", "15"), {}, None, "--price: required for a limit"),
    ((*TRADE, "--type", "stop", "--quote", "15"), {}, None, "--type: must be market or limit"),
    (("trade", "--symbol", "BTC/USDT", "--side", "short", "--type", "market", "--quote", "15",
      "--yes"), {}, None, "--side: must be buy or sell (got 'short')"),
    ((*BUY, "--risk", "1"), {}, None, "--risk needs --sl"),
    ((*BUY, "--risk", "-0.5", "--sl", "9e4"), {}, None, "--risk: must be positive"),
    ((*BUY, "--risk", "100.5", "--sl", "9e4"), {}, None, "--risk: must be at most 100"),
    ((*BUY, "--quote", "15", "--sl", "-1"), {}, None, "--sl: must be positive (got '-1')"),
    ((*BUY, "--quote", "15", "--tp", ""), {}, None, "--tp: not a plain decimal number"),
    ((*BUY, "--quote", "15", "--wallet", "nosuch"), {}, None, "--wallet: unknown wallet nosuch"),
    ((*BUY, "--quote", "15", "--wallet", ""), {}, None, "--wallet: must not be empty"),
    (("trade", "--symbol", "DOGE/USDT", "--side", "buy", "--type", "market", "--quote", "15",
      "--yes"), {}, None, "--symbol: DOGE/USDT has no spot market on binance (paper)"),
    ((*BUY, "--quote", "15", "--file", "nope.toml"), {}, None, "--file: cannot read nope.toml"),
    (("trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15"),
     {}, None, "pass --yes"),
    ((*BUY, "--quote", "15", "--bogus"), {}, None, "unrecognized arguments: --bogus"),
    ((*BUY, "--quote", "15"), {"EXCHANGE": "kraken"}, None, "EXCHANGE: must be one of binance"),
    ((*BUY, "--quote", "15"), {"KOBE_MODE": "Paper"}, None, "KOBE_MODE: must be one of paper"),
    ((*BUY, "--quote", "15"), {"KOBE_EXCHANGE_URL": "http://127.0.0.1"}, None,
     "KOBE_EXCHANGE_URL: must be scheme://host:port"),
    ((*BUY, "--quote", "15"), {}, "[risk]\nmax_drawdown_pct = 140\n",
     "risk.max_drawdown_pct: must be between 0 and 100 (got 140)"),
    (("exits", "kobe1", "--tp", "nan", "--yes"), {}, None, "--tp: not a plain decimal number"),
    (("exits", "kobe1", "--sl", "-1e3", "--yes"), {}, None, "--sl: must be positive"),
    (("exits", "kobe1", "--sl", "1e999", "--yes"), {}, None, "--sl: out of range"),
    (("exits", "kobe1", "--yes"), {}, None, "give --tp P, --sl P or both"),
    (("cancel", "kobe1", "--all", "--yes"), {}, None, "give an order ID or --all, not both"),
    (("cancel", "", "--yes"), {}, None, "give an order ID"),
    (("cancel", " ", "--yes"), {}, None, "give an order ID"),
    (("exits", " ", "--tp", "99000", "--yes"), {}, None, "POSITION: must not be empty"),
    (("trade", "--file", "", "--yes"), {}, None, "--file: must not be empty"),
    (("trade", "--symbol", " ", "--side", "buy", "--type", "market", "--quote", "15", "--yes"),
     {}, None, "missing --symbol"),
    (("cancel", "--all"), {}, None, "pass --yes"),
    ((*RUN, "--ticks", "-1"), {}, None, "--ticks: must be at least 1 (got '-1')"),
    ((*RUN, "--ticks", ""), {}, None, "--ticks: not a plain decimal number"),
    ((*RUN, "--ticks", "2.5"), {}, None, "--ticks: "),
    ((*RUN, "--ticks", "1e999"), {}, None, "--ticks: out of range"),
    ((*RUN, "--ticks", "99999999999"), {}, None, "--ticks: must be at most"),
    ((*RUN, "--duration", "inf"), {}, None, "--duration: not a plain decimal number"),
    ((*RUN, "--duration", "-5"), {}, None, "--duration: must be above 0"),
    ((*RUN, "--ticks", "1", "--seed", "-inf"), {}, None, "--seed: not a plain decimal number"),
    ((*RUN, "--ticks", "1", "--seed", "-1"), {}, None, "--seed: must be at least 0"),
    ((*RUN, "--duration", "5", "--tick", "nan"), {}, None, "--tick: not a plain decimal"),
    ((*RUN, "--ticks", "1", "--tick", "1"), {}, None, "--tick: only with --duration"),
    (("run", "--ticks", "1"), {}, None, "run needs --headless"),
    ((*RUN, "--ticks", "1"), {"KOBE_MODE": "bogus"}, None, "KOBE_MODE: must be one of paper"),
    ((*RUN, "--ticks", "1"), {}, 'symbols = ["DOGE/USDT"]\n', "symbols"),
    ((*RUN, "--ticks", "1"), {}, "[risk]\nbogus = 1\n", "risk.bogus: unknown key (got 1)"),
    (("risk", "trip", "--reason", " ", "--yes"), {}, None, "--reason: must not be empty"),
    (("risk", "reset"), {}, None, "pass --yes"),
    (("risk", "status"), {"EXCHANGE": "kraken"}, None, "EXCHANGE: must be one of binance"),
    (("indexer", "scan", "--slots", "nan"), {}, None, "--slots: not a plain decimal number"),
    (("indexer", "scan", "--slots", "-1"), {}, None, "--slots: must be at least 1"),
    (("indexer", "scan", "--slots", "1e999"), {}, None, "--slots: out of range"),
    (("indexer", "scan"), {"RPC_SOLANA_HTTP": "http://127.0.0.1:port/"}, None, RPC_URL),
    (("indexer", "status"), {"RPC_SOLANA_HTTP": "http://a b/"}, None, RPC_URL),
    (("notify", "test"), {"TELEGRAM_BOT_TOKEN": "n0t-A-t0ken", "TELEGRAM_CHAT_ID": "1"},
     NOTIFY, "TELEGRAM_BOT_TOKEN: must look like"),
    (("notify", "test"), {"KOBE_WEBHOOK_URL": "http://hook.invalid/", "KOBE_WEBHOOK_SECRET":
     "Qz" * 10}, NOTIFY, "KOBE_WEBHOOK_URL: must be https://"),
    ((*RUN, "--ticks", "1"), {"KOBE_WEBHOOK_URL": "https://hook.invalid/", "KOBE_WEBHOOK_SECRET":
     "Qz7k"}, NOTIFY, "KOBE_WEBHOOK_SECRET: must be at least 16 characters"),
    ((*RUN, "--ticks", "1"), {"KOBE_CONFIG": "gone.toml"}, None, "KOBE_CONFIG: file not found"),
    ((*RUN, "--ticks", "1"), {"KOBE_DATA_DIR": "kobe.toml"}, "", "KOBE_DATA_DIR: "),
    (("health",), {"KOBE_MODE": "livee"}, None, "KOBE_MODE: must be one of paper"),
    (("wallets",), {}, "[finance]\ncapital_usd = -1\n", "finance.capital_usd"),
    (("orders", "extra"), {}, None, "unrecognized arguments: extra"),
    (("bogus",), {}, None, "invalid choice: 'bogus'"),
    (("risk",), {}, None, "the following arguments are required: ACTION"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "env", "toml", "said"),
    BAD_INPUT,
    ids=[f"{i}-{' '.join(a)[:40]}" for i, (a, *_) in enumerate(BAD_INPUT)],
)
def test_bad_input_on_a_used_data_dir_exits_2_naming_it_and_changes_nothing(
    cli: CliRunner,
    workdir: Path,
    used_data_dir: Path,
    argv: tuple[str, ...],
    env: dict[str, str],
    toml: str | None,
    said: str,
) -> None:
    """README: "2 bad config or arguments"; a refusal names the field and its problem, and
    nothing on disk changes: every file under the working dir (the data dir with its history,
    journals, snapshots, paper account and lock) has the same bytes after, and no file comes or
    goes. A fresh dir is not enough: a command may write a snapshot it only rewrites."""
    shutil.copytree(used_data_dir, workdir, dirs_exist_ok=True)
    if toml is not None:
        (workdir / "kobe.toml").write_text(toml)
    before = _tree(workdir)
    assert "data/logs/orders.jsonl" in before and "data/paper/state.json" in before
    r = cli(*argv, env=env)
    assert r.code == 2, (r.out, r.err)
    assert said in r.err and "Traceback" not in r.err, r.err
    assert _tree(workdir) == before


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"KOBE_MODE": "bogus"}, "KOBE_MODE: must be one of paper, testnet, live"),
        ({"EXCHANGE": "kraken"}, "EXCHANGE: must be one of binance, bybit, okx"),
        ({"KOBE_EXCHANGE_URL": "http://example.com:80"}, "KOBE_EXCHANGE_URL: must be a loopback"),
        ({"KOBE_CONFIG": "gone.toml"}, "KOBE_CONFIG: file not found"),
    ],
)
def test_kobe_tui_with_bad_config_on_a_used_data_dir_exits_2_and_changes_nothing(
    workdir: Path, used_data_dir: Path, env: dict[str, str], said: str
) -> None:
    """The cockpit's side of the table above: exit 2 naming the variable, and the data dir it
    would have opened (snapshots, journals, the paper account, the lock) byte for byte as it
    was; no log file either."""
    shutil.copytree(used_data_dir, workdir, dirs_exist_ok=True)
    before = _tree(workdir)
    proc = run_cockpit(workdir, env)
    assert proc.returncode == 2, proc.stderr[-500:]
    assert said in proc.stderr and "Traceback" not in proc.stderr
    assert _tree(workdir) == before
