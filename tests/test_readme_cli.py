"""The README's CLI claims, checked against what the commands do: the command table names every
option each command has (and none it lacks), and the worked examples print what they show."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest

from engine.cli import build_parser
from tests.conftest import ROOT, CliRunner

README = (ROOT / "README.md").read_text()


# the read-only commands besides `kobe keys` (which some checks run with --ping)
READ_ONLY = (
    ("health",),
    ("orders",),
    ("positions",),
    ("wallets",),
    ("risk", "status"),
    ("stats",),
    ("indexer", "status"),
)


def _section(title: str) -> str:
    return README.split(f"\n{title}\n", 1)[1].split("\n## ", 1)[0]


def _subparser(parser: argparse.ArgumentParser, path: list[str]) -> argparse.ArgumentParser:
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {
        o for a in parser._actions for o in a.option_strings if o.startswith("--") and o != "--help"
    }


def test_the_command_table_names_every_option_of_every_command() -> None:
    table = [line for line in _section("## The CLI").splitlines() if line.startswith("| `kobe ")]
    seen = set()
    for line in table:
        for usage in re.findall(r"`kobe ([^`]+)`", line.split(" | ")[0]):
            path = []
            for word in usage.split():
                if not re.fullmatch(r"[a-z]+", word):
                    break
                path.append(word)
            parser = _subparser(build_parser(), path)
            documented = set(re.findall(r"--[a-z][a-z-]*", usage))
            assert documented == _flags(parser), (usage, _flags(parser) ^ documented)
            seen.add(" ".join(path))
    assert seen == {" ".join(c) for c in _leaves(build_parser())}


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every runnable command: ``("keys",)``, ``("risk", "status")``, ..."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [path]
    return [leaf for name, p in subs[0].choices.items() for leaf in _leaves(p, (*path, name))]


def _example(command: str) -> list[str]:
    """The lines the README shows under ``$ <command>`` in a code block."""
    block = README.split(f"```\n$ {command}\n", 1)[1].split("```", 1)[0]
    return block.splitlines()


def test_the_config_error_example(cli: CliRunner, workdir: Path) -> None:
    (workdir / "kobe.toml").write_text("[risk]\nmax_drawdown_pct = 140\nbogus = 1\n")
    r = cli("health")
    assert r.code == 2 and r.out == ""
    assert r.err.splitlines() == _example("kobe health")
    assert sorted(p.name for p in workdir.iterdir()) == ["kobe.toml"]  # nothing written


def test_the_live_health_example(cli: CliRunner, workdir: Path) -> None:
    """Run where the README runs it: no kobe.toml (built-in defaults), no keys, ./data."""
    r = cli("health", env={"KOBE_MODE": "live"})
    assert r.code == 1  # exit 0 only when every check passes
    assert r.out.splitlines() == _example("KOBE_MODE=live kobe health")


def test_the_trade_example(cli: CliRunner) -> None:
    command = (
        "kobe trade --symbol BTC/USDT --side buy --type market --quote 15 --sl 90000 "
        "--tp 100000 --yes"
    )
    r = cli(*command.split()[1:])
    assert r.code == 0, r.err

    def ids(lines: list[str]) -> list[str]:  # client ids come from the clock
        return [re.sub(r"\bkobe[0-9a-z]+n1(tp|sl)?\b", r"kobe<id>n1\1", line) for line in lines]

    assert ids(r.out.splitlines()) == ids(_example(command))


def test_the_wallets_example(cli: CliRunner, workdir: Path) -> None:
    r = cli("wallets")
    assert r.code == 0
    shown = [line for line in _example("kobe wallets") if line.strip() != "..."]
    lines = r.out.splitlines()
    assert [line for line in lines if line in shown] == shown  # the same lines, in order
    assert not (workdir / "data").exists()  # it writes nothing


def test_the_seeded_run_claim(cli: CliRunner, workdir: Path) -> None:
    """ "With `--seed 7` the shipped config closes 8 trades in its first 91 ticks, then its kill
    switch trips on 5 losing trades in a row"."""
    claim = re.search(
        r"With `--seed 7` the shipped config closes (\d+)\s+trades in its first (\d+) ticks, "
        r"then its kill switch trips on (\d+) losing trades in a row",
        README,
    )
    assert claim is not None
    trades, ticks, streak = (int(x) for x in claim.groups())
    (workdir / "kobe.toml").write_text((ROOT / "kobe.toml").read_text())
    r = cli("run", "--headless", "--ticks", str(ticks - 1), "--seed", "7")
    assert r.code == 0, r.err
    assert "TRIPPED" not in r.out
    r = cli("run", "--headless", "--ticks", "1", "--seed", "7")  # resumes: tick number `ticks`
    assert r.code == 0, r.err
    assert f"TRIPPED ({streak} losing trades in a row" in r.out
    closed = (workdir / "data" / "trades.jsonl").read_text().splitlines()
    assert len(closed) == trades


def _shape(command: str) -> list[str]:
    """The top-level keys of the JSON shape the command table shows for ``kobe <command>``."""
    row = next(
        line
        for line in _section("## The CLI").splitlines()
        if line.startswith(f"| `kobe {command}")
    )
    shape = re.search(r"`\[?\{(.*)\}\]?`", row.split(" | ", 1)[1])
    assert shape is not None, row
    text = shape.group(1)
    while re.search(r"[\[{][^\[\]{}]*[\]}]", text):  # drop nested shapes, innermost first
        text = re.sub(r"[\[{][^\[\]{}]*[\]}]", "", text)
    return [part.split(":")[0].strip() for part in text.split(",")]


def test_the_json_shapes_in_the_command_table(cli: CliRunner) -> None:
    buy = "trade --symbol BTC/USDT --side buy --type market --quote 15 --sl 90000 --tp 99000"
    trade = cli(*buy.split(), "--yes")
    assert trade.code == 0, trade.err
    outputs = {
        "orders": json.loads(cli("orders", "--json").out)[0],
        "positions": json.loads(cli("positions", "--json").out)[0],
        "risk status": json.loads(cli("risk", "status", "--json").out),
        "wallets": json.loads(cli("wallets", "--json").out),
        "stats": json.loads(cli("stats", "--json").out),
    }
    extra = {"risk status": ["queued"]}  # the queued commands: in "The kill switch"
    for command, out in outputs.items():
        assert list(out) == _shape(command) + extra.get(command, []), command


def test_every_config_section_and_key_is_documented() -> None:
    """README: "Sections: `mode`, `symbols`, `[exchange]`, ...; the shipped file documents each
    key" (a key is documented where the shipped kobe.toml sets it, or shows it commented out)."""
    from pydantic import BaseModel

    from engine.config import KobeConfig

    listed = re.search(r"Sections: (.*?); the shipped file documents each key", README, re.S)
    assert listed is not None
    sections = [s.strip("`[]") for s in re.findall(r"`[^`]+`", listed.group(1))]
    assert sections == list(KobeConfig.model_fields)
    shipped = (ROOT / "kobe.toml").read_text()

    def keys(model: type[BaseModel]) -> set[str]:
        found = set()
        for name, field in model.model_fields.items():
            found.add(name)
            kind = field.annotation
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                found |= keys(kind)
        return found

    undocumented = sorted(k for k in keys(KobeConfig) if not re.search(rf"\b{k}\b", shipped))
    assert not undocumented


def test_every_variable_of_env_example_is_in_the_readme() -> None:
    from engine.secrets import SECRET_VARS, SWITCH_VARS

    missing = sorted(v for v in (*SECRET_VARS, *SWITCH_VARS) if not re.search(rf"\b{v}\b", README))
    assert not missing


def test_commands_that_need_the_data_dir_name_the_engine_that_holds_it(
    cli: CliRunner, workdir: Path
) -> None:
    """README: "while an engine holds `data/kobe.lock`, `kobe trade`, `orders` and `cancel`
    exit 1 naming the process that holds it" (and a second `run`, and `exits`)."""
    import os

    from engine.lock import DataDirLock

    with DataDirLock(workdir / "data", "kobe run"):
        for argv in (
            ("orders",),
            ("cancel", "--all", "--yes"),
            ("exits", "kobe1", "--tp", "1", "--yes"),
            ("run", "--headless", "--ticks", "1"),
        ):
            r = cli(*argv)
            assert r.code == 1 and f"pid {os.getpid()} (kobe run)" in r.err, (argv, r.err)


def test_cancel_of_an_unknown_order_exits_1_saying_which(cli: CliRunner) -> None:
    r = cli("cancel", "no-such-order", "--yes")
    assert r.code == 1 and "no-such-order" in r.err and "unknown" in r.err


def test_risk_status_exits_0_in_every_state(cli: CliRunner) -> None:
    assert cli("risk", "status").code == 0  # ARMED
    assert cli("risk", "trip", "--reason", "test").code == 0
    r = cli("risk", "status", "--json")
    assert r.code == 0 and json.loads(r.out)["state"] == "TRIPPED"


def test_json_output_writes_decimals_as_strings_and_times_in_utc_with_z(
    cli: CliRunner, workdir: Path
) -> None:
    """README: "`--json` output writes decimals as strings and times as ISO-8601 UTC with `Z`"."""
    (workdir / "kobe.toml").write_text((ROOT / "kobe.toml").read_text())
    assert cli("run", "--headless", "--ticks", "60", "--seed", "7").code == 0
    buy = "trade --symbol BTC/USDT --side buy --type limit --price 94000 --quote 15 --sl 90000"
    trade = cli(*buy.split(), "--yes", "--json")
    assert trade.code == 0, trade.err
    outputs = [trade.out] + [cli(*argv, "--json").out for argv in (("keys",), *READ_ONLY)]
    times = 0

    def check(value: object) -> None:
        nonlocal times
        assert not isinstance(value, float), value
        if isinstance(value, dict):
            for v in value.values():
                check(v)
        elif isinstance(value, list):
            for v in value:
                check(v)
        elif isinstance(value, str) and re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d", value):
            times += 1
            assert value.endswith("Z"), value

    for out in outputs:
        check(json.loads(out, parse_float=float))
    assert times > 3
    assert '"qty": "' in trade.out  # a decimal, as a string


def test_health_in_live_names_every_unmet_condition(cli: CliRunner) -> None:
    """A refusal names every unmet condition: with everything else set, an exchange URL in live
    was only "live refused: 1 condition(s) unmet", named nowhere."""
    env = {
        "KOBE_MODE": "live",
        "ALLOW_LIVE": "1",
        "BINANCE_KEY": "k" * 64,
        "BINANCE_SECRET": "s" * 64,
        "KOBE_EXCHANGE_URL": "http://127.0.0.1:9",
    }
    r = cli("health", "--json", env=env)
    assert r.code == 1
    failed = [c for c in json.loads(r.out)["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["exchange url", "mode allowed"]
    assert "refused in live" in failed[0]["detail"]


def test_verbose_adds_info_then_debug_lines(cli: CliRunner) -> None:
    import logging

    for flags, level in (
        (("-vv",), logging.DEBUG),
        (("-v",), logging.INFO),
        ((), logging.WARNING),  # last: the level the other tests expect
    ):
        assert cli(*flags, "keys").code == 0
        assert logging.getLogger().level == level


def test_read_only_commands_in_live_with_every_condition_hold_only_read_only_clients(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: read-only commands "hold a read-only client that has no way to create or cancel
    an order", in live too with ALLOW_LIVE, live keys and all. Every client a command asks for
    is recorded (and refused before any network); none may be a sending one."""
    from engine.exchange import factory
    from engine.exchange.base import ExchangeError
    from engine.exchange.ccxt_exchange import CcxtExchange

    asked: list[bool] = []

    def through_gate(cls: Any, settings: Any, confirmed: bool, **kw: Any) -> Any:
        asked.append(kw["read_only"])
        raise ExchangeError("test: no network")

    def no_sending_exchange(*a: Any, **kw: Any) -> Any:
        raise AssertionError("a read-only command built a sending exchange")

    monkeypatch.setattr(CcxtExchange, "_through_gate", classmethod(through_gate))
    monkeypatch.setattr(factory, "build_exchange", no_sending_exchange)
    env = {
        "KOBE_MODE": "live",
        "ALLOW_LIVE": "1",
        "BINANCE_KEY": "k" * 64,
        "BINANCE_SECRET": "s" * 64,
    }
    for argv in (("keys", "--ping"), *READ_ONLY):
        r = cli(*argv, env=env)
        assert r.code in (0, 1) and "internal error" not in r.err, (argv, r.err)
    assert asked and all(asked), asked  # keys --ping, health, orders asked: readers only


def test_keys_says_when_a_switch_is_set_but_does_not_count(cli: CliRunner) -> None:
    """ALLOW_LIVE and <EX>_TESTNET count only when exactly 1: `kobe keys` said "set" for
    ALLOW_LIVE=yes, which the gate ignores."""
    env = {"KOBE_MODE": "live", "ALLOW_LIVE": "yes", "BINANCE_TESTNET": "true"}
    data = json.loads(cli("keys", "--json", env=env).out)["variables"]
    assert data["ALLOW_LIVE"] == "set, not 1: ignored"
    assert data["BINANCE_TESTNET"] == "set, not 1: no testnet marking, live refuses it"
    env = {"KOBE_MODE": "live", "BINANCE_TESTNET": "0"}
    data = json.loads(cli("keys", "--json", env=env).out)["variables"]
    assert data["BINANCE_TESTNET"] == "set, not 1: no testnet marking"
    env = {"KOBE_MODE": "live", "ALLOW_LIVE": "1", "BINANCE_TESTNET": "1"}
    data = json.loads(cli("keys", "--json", env=env).out)["variables"]
    assert data["ALLOW_LIVE"] == data["BINANCE_TESTNET"] == "set"
