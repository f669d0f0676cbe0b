"""The README's CLI claims, checked against what the commands do: the command table names every
option each command has (and none it lacks), and the worked examples print what they show."""

from __future__ import annotations

import argparse
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.cli import build_parser
from engine.cli.run import DEFAULT_TICK_S
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


def _usages() -> dict[tuple[str, ...], set[str]]:
    """Each command of the README's command table (``("risk", "trip")``) with the flags its
    usage there shows."""
    table = [line for line in _section("## The CLI").splitlines() if line.startswith("| `kobe ")]
    usages = {}
    for line in table:
        for usage in re.findall(r"`kobe ([^`]+)`", line.split(" | ")[0]):
            path = []
            for word in usage.split():
                if not re.fullmatch(r"[a-z]+", word):
                    break
                path.append(word)
            usages[tuple(path)] = set(re.findall(r"--[a-z][a-z-]*", usage))
    return usages


def test_the_command_table_names_every_option_of_every_command() -> None:
    usages = _usages()
    for path, documented in usages.items():
        flags = _flags(_subparser(build_parser(), list(path)))
        assert documented == flags, (path, flags ^ documented)
    assert set(usages) == set(_leaves(build_parser()))


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


def _shape(command: str) -> Any:
    """The JSON shape the command table shows for ``kobe <command>``, nested: ``{a, b: {c}}``
    is ``{"a": None, "b": {"c": None}}``, ``[{...}]`` a list of them, and ``{id: {...}}`` an
    object keyed by ids."""
    row = next(
        line
        for line in _section("## The CLI").splitlines()
        if line.startswith(f"| `kobe {command}")
    )
    shape = re.search(r"`(\[?\{.*\}\]?)`", row.split(" | ", 1)[1])
    assert shape is not None, row
    tokens = re.findall(r"[{}\[\],:]|[^{}\[\],:\s]+", shape.group(1))

    def value(pos: int) -> tuple[Any, int]:
        if tokens[pos] == "[":
            inner, pos = value(pos + 1)
            return [inner], pos + 1  # past "]"
        shape: dict[str, Any] = {}
        pos += 1  # past "{"
        while tokens[pos] != "}":
            key, pos = tokens[pos], pos + 1
            shape[key] = None
            if tokens[pos] == ":":
                shape[key], pos = value(pos + 1)
            pos += tokens[pos] == ","
        return shape, pos + 1

    return value(0)[0]


def _matches(out: Any, shape: Any, where: str) -> None:
    if isinstance(shape, list):
        assert isinstance(out, list) and out, where
        for item in out:
            _matches(item, shape[0], f"{where}[]")
    elif list(shape) == ["id"]:  # keyed by ids
        assert isinstance(out, dict) and out, where
        for key, item in out.items():
            _matches(item, shape["id"], f"{where}.{key}")
    else:
        assert list(out) == list(shape), where
        for key, inner in shape.items():
            if inner is not None:
                _matches(out[key], inner, f"{where}.{key}")


def test_the_json_shapes_in_the_command_table(cli: CliRunner) -> None:
    """The shapes the table shows, nested ones too (a position's exits, each wallet)."""
    buy = "trade --symbol BTC/USDT --side buy --type market --quote 15 --sl 90000 --tp 99000"
    trade = cli(*buy.split(), "--yes")
    assert trade.code == 0, trade.err
    commands = ("orders", "positions", "risk status", "wallets", "stats")
    extra = {"risk status": {"queued": None}}  # the queued commands: in "The kill switch"
    for command in commands:
        out = json.loads(cli(*command.split(), "--json").out)
        shape = _shape(command)
        _matches(out, shape | extra.get(command, {}) if isinstance(shape, dict) else shape, command)


def _model_keys(model: Any, prefix: str = "") -> set[str]:
    """Every key of a config model, dotted (``risk.max_drawdown_pct``); a field that is a
    table of its own (``[strategies.dex]``) gives its keys, not its name."""
    from pydantic import BaseModel

    found = set()
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            found |= _model_keys(kind, f"{prefix}{name}.")
        else:
            found.add(prefix + name)
    return found


def _shipped_keys() -> set[str]:
    """Every key the shipped kobe.toml sets or shows commented out (``# starting_balance = 60``),
    dotted, down to the tables the config models define (a value such as ``balances = {...}`` or
    ``[finance.risk_wallets]`` is one key)."""
    import tomllib

    from engine.config import KobeConfig

    text = (ROOT / "kobe.toml").read_text()
    tables = {
        k.rsplit(".", i)[0] for k in _model_keys(KobeConfig) for i in range(1, k.count(".") + 1)
    }

    def walk(data: dict[str, Any], prefix: str) -> set[str]:
        keys = set()
        for name, value in data.items():
            key = prefix + name
            keys |= walk(value, f"{key}.") if key in tables else {key}
        return keys

    keys = walk(tomllib.loads(text), "")
    table = ""
    for line in text.splitlines():
        header = re.match(r"\[([\w.]+)\]", line)
        table = f"{header.group(1)}." if header else table
        commented = re.match(r"#\s*(\w+)\s*=", line)
        if commented:
            keys.add(table + commented.group(1))
    return keys


def test_every_config_section_and_key_is_documented() -> None:
    """README: "Sections: `mode`, `symbols`, `[exchange]`, ...; the shipped file documents each
    key": every key of every table, nested ones too, is in the shipped kobe.toml (set, or shown
    commented out), and the file holds no key the config does not know."""
    from engine.config import KobeConfig

    listed = re.search(r"Sections: (.*?); the shipped file documents each key", README, re.S)
    assert listed is not None
    sections = [s.strip("`[]") for s in re.findall(r"`[^`]+`", listed.group(1))]
    assert sections == list(KobeConfig.model_fields)
    shipped, known = _shipped_keys(), _model_keys(KobeConfig)
    assert not known - shipped, f"keys the shipped kobe.toml does not document: {known - shipped}"
    assert not shipped - known, f"keys in the shipped kobe.toml the config lacks: {shipped - known}"
    assert "strategies.dex.starting_balance" in shipped  # the commented-out one counts


def test_every_config_key_the_readme_names_exists() -> None:
    """A key the README names (`risk.on_trip`, `[notify] channels`, `[strategies.dex]`) is a key
    or a table of the config: a renamed key cannot leave the README pointing at nothing."""
    from engine.config import KobeConfig

    keys = _model_keys(KobeConfig)
    tables = {k.rsplit(".", i)[0] for k in keys for i in range(1, k.count(".") + 1)}
    sections = "|".join(KobeConfig.model_fields)
    dotted = re.findall(rf"`((?:{sections})(?:\.[a-z_]+)+)`", README)
    named = [d for d in dotted if not d.endswith((".jsonl", ".json"))]  # wallet_flows.jsonl
    named += [f"{t}.{k}" for t, k in re.findall(r"`\[([a-z_.]+)\] ([a-z_]+)", README)]
    named += re.findall(r"`\[([a-z_][a-z_.]*)\]`", README)
    assert len(named) > 30
    assert not [n for n in named if n not in keys | tables]


def _default(dotted: str) -> Any:
    from engine.config import KobeConfig

    value: Any = KobeConfig()
    for name in dotted.split("."):
        value = getattr(value, name)
    return value


def _number(text: str) -> Decimal:
    return Decimal(text.replace(" ", "").replace(",", ""))


def _paragraph(start: str, end: str) -> str:
    return README.split(start, 1)[1].split(end, 1)[0]


def test_every_default_the_readme_states_is_the_configs() -> None:
    """A number the README gives a key, `router.stop_rest_timeout_s` (60 s), `entry_size_usd`
    (5), `min_liquidity_usd` 10 000, is the built-in default (which is the shipped file's)."""
    from engine.config import KobeConfig

    keys = _model_keys(KobeConfig)
    number = r"\(?(?:default )?(\d[\d ]*(?:\.\d+)?)(?![\d.])"
    dotted = rf"`((?:{'|'.join(KobeConfig.model_fields)})(?:\.[a-z_]+)+)`"
    claims = re.findall(rf"{dotted}\s+{number}", README)
    for start, end, prefix in (
        ("**Memecoin farming**", "Candidates come from", "strategies.memecoin_farming."),
        ("**Copy trading**", "The feed", "strategies.copy_trading."),
        ("**The DEX venue**", "## ", "strategies.dex."),
        ("Following new slots", "- Health", "indexer."),
    ):
        for key, value in re.findall(rf"`(\w+)`\s+{number}", _paragraph(start, end)):
            [dotted] = [k for k in keys if k.startswith(prefix) and k.endswith(f".{key}")]
            claims.append((dotted, value))
    assert len(claims) >= 25, claims
    for key, value in claims:
        assert key in keys, key
        assert Decimal(str(_default(key))) == _number(value), (key, value, _default(key))
    assert "`quote_asset` (USDC)" in README and _default("strategies.dex.quote_asset") == "USDC"
    assert re.search(r'with `"halt"` \(the\s+default\)', README)
    assert _default("risk.on_trip") == "halt"
    assert "Off as shipped (`[notify] channels = []`)" in README
    assert _default("notify.channels") == []
    tick = re.search(r"one step every `--tick` seconds \(default (\d+);", README)
    assert tick is not None and _number(tick.group(1)) == DEFAULT_TICK_S
    slots = re.search(
        r"`kobe indexer scan \[--slots N\]`: reads at most N slots \(default (\d+)\)", README
    )
    scan = _subparser(build_parser(), ["indexer", "scan"])
    assert slots is not None and scan.get_default("slots") == int(slots.group(1))


def test_the_wallets_and_flows_the_readme_describes_are_the_shipped_ones() -> None:
    """README, "Wallets": LIVE_150 puts 150 USD over ten wallets (`sniper_sol` 30 ...), and the
    flows' periods, thresholds and shares."""
    text = " ".join(_paragraph("The shipped profile,", "Sub-wallets are bookkeeping").split())
    m = re.search(r"puts (\d+) USD over (\w+) wallets: (.*) at (\d+) each \((\w+)\)", text)
    assert m is not None, text
    capital, count, listed, each, chain = m.groups()
    assert _default("finance.capital_usd") == _number(capital) and count == "ten"
    shown = {w: _number(v) for w, v in re.findall(r"`(\w+)` (\d+)", listed)}
    shown |= {w: _number(each) for w in re.findall(r"`(\w+)`(?!\s*\d)", listed.split("and")[-1])}
    wallets = {w.id: w for w in _default("finance.wallets")}
    assert {w: v.allocation_usd for w, v in wallets.items()} == shown
    assert all(wallets[w].chain == chain for w in ("buffer", "profits", "vault", "reserve"))
    flows = " ".join(_paragraph("What moves money:", "Each rule has").split())
    periods = {"every 5 min": 300, "hourly": 3600, "daily": 86400}
    for rule, when in re.findall(r"`(\w+)` \(([a-z 0-9]+)\):", flows)[:3]:
        assert _default(f"wallet_flows.{rule}.period_s") == periods[when], rule
    sweep = re.search(r"reached (\d+) USD gives (\d+) % of it, half to `profits` and half", flows)
    assert sweep is not None
    assert _default("wallet_flows.profits_sweep.threshold_usd") == _number(sweep.group(1))
    assert _default("wallet_flows.profits_sweep.share_pct") == _number(sweep.group(2))
    assert _default("wallet_flows.profits_sweep.vault_share_pct") == 50  # half and half
    comp = re.search(
        r"`compounding` \(daily\): (\d+) % of what `profits` holds above (\d+) USD", flows
    )
    assert comp is not None
    assert _default("wallet_flows.compounding.share_pct") == _number(comp.group(1))
    assert _default("wallet_flows.compounding.threshold_usd") == _number(comp.group(2))


def test_the_environment_variables_the_readme_names_are_those_of_env_example() -> None:
    """README: ".env.example, which lists every variable with a comment": the variables the
    README names are the file's, both ways."""
    example = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    named = set(re.findall(r"\b(?:[A-Z][A-Z0-9]*_[A-Z0-9_]*[A-Z0-9]|EXCHANGE)\b", README))
    not_variables = {  # exchange words, a profile and a constant named in the README
        "LIMIT_MAKER", "LOT_SIZE", "PENDING_NEW", "PERCENT_PRICE_BY_SIDE", "PRICE_FILTER",
        "STOP_LOSS_LIMIT", "LIVE_150", "TICK_SECONDS", "MARKET_LOT_SIZE", "MAX_NUM_ORDERS",
        "MAX_NUM_ALGO_ORDERS", "MAX_FUTURE_SKEW_S",
        "KOBE_CONTRACT_TESTS",  # the manual contract tests' switch, read by pytest, not by Kobe
    }  # fmt: skip
    assert named - not_variables == example


def test_commands_that_need_the_data_dir_name_the_engine_that_holds_it(
    cli: CliRunner, workdir: Path
) -> None:
    """README: "while an engine holds `data/kobe.lock`, `kobe trade`, `orders` and `cancel`
    exit 1 naming the process that holds it" (and a second `run`, and `exits`; a second
    `kobe-tui`: tests/test_cockpit.py)."""
    import os

    from engine.lock import DataDirLock

    with DataDirLock(workdir / "data", "kobe run"):
        for argv in (
            "trade --symbol BTC/USDT --side buy --type market --quote 15 --yes",
            "orders",
            "cancel --all --yes",
            "exits kobe1 --tp 1 --yes",
            "run --headless --ticks 1",
        ):
            r = cli(*argv.split())
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


def test_a_sell_of_what_kobes_positions_hold_is_refused_as_the_readme_says(cli: CliRunner) -> None:
    """README, "Positions and money": "base a position holds (and no exit on the exchange locks)
    is refused as `no BTC to sell: … held by Kobe's open positions`; close that position
    instead" (a sell entry would have sold the position from under its book)."""
    said = re.search(r"refused as\s+`(no BTC to sell: )… (held by Kobe's open positions)`", README)
    assert said is not None
    buy = "trade --symbol BTC/USDT --side buy --type market --quote 15 --yes"
    assert cli(*buy.split()).code == 0  # no TP/SL: nothing locks the BTC on the exchange
    [before] = json.loads(cli("positions", "--json").out)
    r = cli(*buy.replace("buy", "sell").replace("15", "10").split())
    assert r.code == 1
    assert re.search(f"{said.group(1)}.*{said.group(2)}", r.err), r.err
    assert "close a position instead" in r.err
    [after] = json.loads(cli("positions", "--json").out)
    assert after["qty"] == before["qty"]  # nothing sold


def test_every_command_the_table_gives_confirm_live_refuses_live_without_it(
    cli: CliRunner, workdir: Path
) -> None:
    """README: live needs "an explicit confirmation (`--confirm-live` on the CLI ...)": each
    command whose usage in the table has `--confirm-live` refuses live without it (exit 1, naming
    it, nothing written), every other condition of the gate met; `kobe risk trip` never needs it."""
    table = [line for line in _section("## The CLI").splitlines() if line.startswith("| `kobe ")]
    usages = [line.split(" | ")[0] for line in table]
    needing = {usage.split()[2] for usage in usages if "--confirm-live" in usage}
    argv = {
        "trade": "--symbol BTC/USDT --side buy --type market --quote 15 --yes",
        "cancel": "--all --yes",
        "exits": "kobe1 --tp 1 --yes",
        "run": "--headless --ticks 1",
    }
    assert needing == set(argv)
    live = {"KOBE_MODE": "live", "ALLOW_LIVE": "1", "BINANCE_KEY": "k" * 64}
    live["BINANCE_SECRET"] = "s" * 64
    for command, args in argv.items():
        r = cli(command, *args.split(), env=live)
        assert r.code == 1 and "pass --confirm-live" in r.err, (command, r.err)
        assert not (workdir / "data").exists(), command
    r = cli("risk", "trip", "--reason", "stop", env={"KOBE_MODE": "live"})  # no condition met
    assert r.code == 0 and "TRIPPED" in r.out


@pytest.mark.parametrize("path", sorted(_leaves(build_parser())), ids=" ".join)
def test_each_commands_help_shows_the_flags_the_readme_gives_it(
    cli: CliRunner, workdir: Path, path: tuple[str, ...]
) -> None:
    """README: "Every command has `--help`": `kobe <command> --help` exits 0, writes nothing,
    and its usage line offers the flags the command table shows for it, no more, no fewer."""
    r = cli(*path, "--help")
    assert r.code == 0 and r.err == "", r.err
    usage = r.out.split("\n\n", 1)[0]
    assert usage.startswith(f"usage: kobe {' '.join(path)} "), usage
    assert set(re.findall(r"--[a-z][a-z-]*", usage)) - {"--help"} == _usages()[path]
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize("group", ["", "risk", "indexer", "notify"])
def test_each_command_groups_help_lists_the_commands_the_readme_gives(
    cli: CliRunner, group: str
) -> None:
    """`kobe --help`, `kobe risk --help`, ...: exit 0 and list the commands of the table (and
    `kobe --help` the `-v` the README gives for INFO lines, `-vv` for DEBUG)."""
    path = group.split()
    r = cli(*path, "--help")
    assert r.code == 0, r.err
    listed = set(re.findall(r"^ {4}([a-z]+) ", r.out, re.M))
    assert listed == {p[len(path)] for p in _usages() if list(p[: len(path)]) == path}
    if not group:
        assert "-v, --verbose" in r.out and "kobe -v COMMAND" in README and "`-vv`" in README


@pytest.mark.parametrize("path", sorted(_leaves(build_parser())), ids=" ".join)
def test_an_unknown_flag_exits_2_for_every_command(
    cli: CliRunner, workdir: Path, path: tuple[str, ...]
) -> None:
    """README: "Exit codes everywhere: ... 2 bad config or arguments", nothing written."""
    required = {("exits",): ["kobe1"], ("risk", "trip"): ["--reason", "x"]}
    r = cli(*path, *required.get(path, []), "--no-such-flag")
    assert r.code == 2 and "--no-such-flag" in r.err, r.err
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        ("run --ticks 1", "run needs --headless"),
        ("run --headless", "give exactly one of --ticks N or --duration SECONDS"),
        ("run --headless --ticks 1 --duration 5", "give exactly one of --ticks N or --duration"),
        ("cancel --yes", "give an order ID"),
        ("exits kobe1 --yes", "give --tp P, --sl P or both"),
        ("risk trip --yes", "--reason"),
    ],
)
def test_the_usages_the_table_shows_are_enforced(
    cli: CliRunner, workdir: Path, argv: str, said: str
) -> None:
    """The table's usages: `run --headless (--ticks N | --duration SECONDS)`, `cancel ID|--all`,
    `exits POSITION [--tp P] [--sl P]` (one at least), `risk trip --reason TEXT`: anything else
    is a bad argument, exit 2, nothing written."""
    r = cli(*argv.split())
    assert r.code == 2 and said in r.err, r.err
    assert list(workdir.iterdir()) == []


def _protections() -> set[str]:
    """Every `protection` engine.position.protection() can answer (its return values)."""
    import inspect

    from engine.position import UNPROTECTED, protection

    returns = re.findall(r"return (.*)", inspect.getsource(protection))
    return {v for r in returns for v in re.findall(r'"([^"]+)"', r)} | {UNPROTECTED}


def _enumerations() -> dict[str, tuple[str, str, set[str]]]:
    """Lists of values the README gives: where (from, to) and the code's values."""
    from typing import get_args

    from engine.cli.trade import TRADE_KEYS
    from engine.config.sections import NOTIFY_EVENTS, NotifySeverity
    from engine.config.strategies import CopyFeedConfig, MemecoinProviderConfig
    from engine.journal import ORDER_EVENTS
    from engine.proposal import Source

    def kinds(model: Any) -> set[str]:
        return set(get_args(model.model_fields["kind"].annotation))

    return {
        "notify events": ("`events` chooses what goes out: ", "`min_severity`", set(NOTIFY_EVENTS)),
        "severities": ("`min_severity` (", ")", set(get_args(NotifySeverity))),
        "protection": ("shows each position's `protection`: ", ".\n", _protections()),
        "journal events": ("| `event` | ", "|\n", set(ORDER_EVENTS)),
        "sources": ("| `wallet`, `source` | sub-wallet; ", "|\n", {*Source, "external"}),
        "provider kinds": (
            "Candidates come from `[...provider]`:",
            "**Copy trading**",
            kinds(MemecoinProviderConfig),
        ),
        "copy feed kinds": ("The feed (`[...feed]`) is ", ": the file", kinds(CopyFeedConfig)),
        "trade file fields": ("`--file` reads the same fields (", ") from", set(TRADE_KEYS)),
    }


@pytest.mark.parametrize("name", list(_enumerations()))
def test_each_list_of_values_the_readme_gives_is_the_codes(name: str) -> None:
    """The values the README lists (notify events and severities, a position's protection, the
    journal's events and sources, the feeds' kinds) are those the code has, both ways: a value
    added to the code cannot go unmentioned, nor a removed one stay documented. A listed value
    is a `value` that opens the text or a line, or follows a comma, `or`, `/`, `;` or `-`, and
    is followed by another, an aside in brackets, or the end."""
    start, end, values = _enumerations()[name]
    text = README.split(start, 1)[1].split(end, 1)[0]
    item = r'(?:^|[,;/-]\s+|or\s+)`(?:kind = )?"?([^`"]+)"?`(?=\s*(?:[,:.|/(]|or\b|$))'
    listed = re.findall(item, text, re.M)
    if "`" not in text:  # a plain list: "(info, warning, error, critical)"
        listed = text.split(", ")
    assert {" ".join(v.split()) for v in listed} == values


def test_every_kobe_command_line_in_the_readme_names_a_command_and_its_flags() -> None:
    """Anywhere in the README, `kobe risk trip --reason`, `kobe keys --ping`, `kobe risk`: the
    command exists and each flag shown is one of its own."""
    snippets = re.findall(r"`kobe ([^`]+)`", README)
    assert len(snippets) > 80
    top = build_parser()
    for snippet in snippets:
        parser, words = top, snippet.replace("/", " ").replace(":", " ").split()
        if words[0] == "-v":  # `kobe -v COMMAND`
            continue
        while words and any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            if words[0] not in sub.choices:
                assert parser is not top, snippet  # a group with no command: `kobe risk`
                break
            parser = sub.choices[words.pop(0)]
        assert set(re.findall(r"--[a-z][a-z-]*", snippet)) <= _flags(parser), snippet


def test_keys_lists_the_solana_endpoints_as_set_or_missing(cli: CliRunner) -> None:
    """README: "`RPC_SOLANA_WS` (a websocket endpoint) is held as a secret the same way and
    listed by `kobe keys`", as `RPC_SOLANA_HTTP` is: `set` or `missing`, never the URL."""
    url = "https://node.example/?api-key=TOKEN123"
    shown = json.loads(cli("keys", "--json", env={"RPC_SOLANA_WS": url}).out)["variables"]
    assert (shown["RPC_SOLANA_HTTP"], shown["RPC_SOLANA_WS"]) == ("missing", "set")
    text = cli("keys", env={"RPC_SOLANA_WS": url, "RPC_SOLANA_HTTP": url})
    assert text.code == 0 and "TOKEN123" not in text.out + text.err
    assert re.search(r"RPC_SOLANA_WS\s+set", text.out)


def _figures() -> dict[str, tuple[Decimal, ...]]:
    """Each figure or limit the README states (its phrase, ``{}`` where a figure stands) and
    the code's value for it, in the README's unit."""
    import inspect
    import json as json_module

    from engine.bookkeeper import BOOKED_KEPT
    from engine.cli.trade import FILE_MAX
    from engine.exchange.ccxt_client import RECV_WINDOW_MS
    from engine.exchange.ccxt_parse import MAX_INCREMENT, MAX_REBATE, MIN_INCREMENT
    from engine.exchange.paper.account import CLOSED_ORDERS_KEPT
    from engine.exchange.prices import STUB_CATCH_UP
    from engine.exchange.retry import MAX_RETRY_AFTER_S, RetryPolicy
    from engine.indexer import rpc
    from engine.indexer.setup import FOLLOW_BUDGET_S, HEALTH_TIMEOUT_S
    from engine.logsetup import CYCLE_MAX
    from engine.notify import channels, outbox, repeats, sender
    from engine.notify.notifier import Notifier
    from engine.router.orders import (
        KEEP_FINISHED,
        MAX_BACKOFF_S,
        OCO_FIRST_WAIT_S,
        OCO_TRIES,
        RECONCILE_TAIL,
    )
    from engine.runtime import STRIP_EVERY_S
    from engine.strategies.base import TICK_SECONDS
    from engine.strategies.memecoin_farming.candidates import MAX_FUTURE_SKEW_S
    from engine.strategies.tail import MAX_LINE_BYTES, PRICE_MAX, PRICE_MIN
    from engine.untrusted import MAX_DIGITS, MAX_EXPONENT, MESSAGE_MAX, NAME_MAX
    from engine.wallets.runtime import WalletManager
    from kobe_tui.app import STARTUP_GC_S
    from kobe_tui.drain import DRAIN_EVERY
    from kobe_tui.engine_host import EXCHANGE_BALANCES_EVERY
    from kobe_tui.widgets.journal import JournalPane

    def default(func: Any, name: str) -> Any:
        return inspect.signature(func).parameters[name].default

    mib, policy = 1024 * 1024, RetryPolicy()
    markets = json_module.loads((ROOT / "engine/data/paper_markets.json").read_text())["markets"]
    [notional] = {m["max_notional"] for m in markets.values()}
    [orders] = {m["max_num_orders"] for m in markets.values()}
    [stops] = {m["max_num_algo_orders"] for m in markets.values()}
    values: dict[str, tuple[Any, ...]] = {
        "strings may not hold control characters and are at most {} characters": (MESSAGE_MAX,),
        "from a TOML or JSON file of at most {} KB": (FILE_MAX / 1024,),
        "({} characters for names and symbols, {} for reasons": (NAME_MAX, MESSAGE_MAX),
        "a feed line over {} MB is skipped": (MAX_LINE_BYTES / mib,),
        "at most {} digits and an exponent within ±{}": (MAX_DIGITS, MAX_EXPONENT),
        "must lie between 10^-{} and 10^{} USD": (-PRICE_MIN.adjusted(), PRICE_MAX.adjusted()),
        "quantity step is outside 10^-{} – 10^{}": (
            -MIN_INCREMENT.adjusted(),
            MAX_INCREMENT.adjusted(),
        ),
        "or a rebate over {} % of it": (MAX_REBATE * 100,),
        "min notional 5 USDT and max {}, a market": (Decimal(notional),),
        "at most {} open orders and {} open stop orders per symbol": (orders, stops),
        "keep at most {} stop orders open per symbol": (stops,),
        "sends it again after {} s, then 1, 2, 4 and 5 minutes (at most {} sends": (
            OCO_FIRST_WAIT_S,
            OCO_TRIES,
        ),
        "retried with exponential backoff, capped at {} minutes": (MAX_BACKOFF_S / 60,),
        "at most {} attempts and {} s in all": (policy.max_attempts, policy.max_total_s),
        "are waited at most an hour": (),
        "every signed request carries a {} s window": (RECV_WINDOW_MS / 1000,),
        "A candidate first seen more than {} s (`MAX_FUTURE_SKEW_S`": (MAX_FUTURE_SKEW_S,),
        "one engine tick = {} s of (simulated) time": (TICK_SECONDS,),
        "a stub walks only the last {} steps": (STUB_CATCH_UP,),
        "every {} s at most, whatever the tick": (STRIP_EVERY_S,),
        "reads the account's balances once a minute": (),
        "one window of {} matches at a time": (JournalPane.WINDOW,),
        "drawn at most {} times a second": (1 / DRAIN_EVERY,),
        "turns it back on; {} s at the latest": (STARTUP_GC_S,),
        "it now keeps the newest {}, and": (BOOKED_KEPT,),
        "the paper exchange's newest {} to 2,000 closed orders": (CLOSED_ORDERS_KEPT,),
        "the router's last event of the newest {} to 10,000 finished": (KEEP_FINISHED,),
        "the wallets' newest {} trade ids": (default(WalletManager, "remember_trades"),),
        "the reply is capped at {} MB, {} levels of nesting": (
            rpc.MAX_REPLY_BYTES / mib,
            rpc.MAX_JSON_DEPTH,
        ),
        "and {} JSON values, strings": (rpc.MAX_JSON_VALUES,),
        "A slot number outside 0 – 10^{} is refused": (len(str(rpc.MAX_SLOT)) - 1,),
        "(one attempt, {} s at most)": (HEALTH_TIMEOUT_S,),
        "no new slot is taken after {} s": (FOLLOW_BUDGET_S,),
        "a run of up to {} lines that comes round again": (CYCLE_MAX,),
        "(at least {} characters, e.g. `openssl rand -hex 32`)": (channels.MIN_WEBHOOK_KEY,),
        "one a second per chat, {} a second in all": (sender.TELEGRAM_OVERALL_PER_S,),
        "a reply over {} MB is refused": (channels.MAX_REPLY_BYTES / mib,),
        "kept there and tried again every {} minutes": (sender.ASIDE_S / 60,),
        "The outbox holds at most {} undelivered notes": (outbox.MAX_PENDING,),
        "stopping the engine gives them {} s to go out": (default(Notifier, "close_timeout_s"),),
        "the same note again within {} minutes is held": (repeats.WINDOW.total_seconds() / 60,),
        "At most {} different notes are tracked": (repeats.MAX_EPISODES,),
        "since its window began (at most {} minutes' worth)": (
            repeats.WINDOW.total_seconds() / 60,
        ),
        "the mode whose journal (its last {} events) holds its entry": (RECONCILE_TAIL,),
    }
    assert MAX_RETRY_AFTER_S == 3600 and EXCHANGE_BALANCES_EVERY == 60  # "an hour", "a minute"
    return {k: tuple(Decimal(str(v)) for v in vs) for k, vs in values.items()}


@pytest.mark.parametrize("phrase", list(_figures()))
def test_each_figure_the_readme_gives_is_the_codes(phrase: str) -> None:
    """A limit or figure the README states ("The outbox holds at most 500 undelivered notes",
    "at most 5 attempts and 30 s in all") is the value the code has: a constant changed in the
    code cannot leave the README promising the old one."""
    text = " ".join(README.split())
    figure = r"(\d(?:[\d,]*\d)?(?:\.\d+)?)"
    pattern = figure.join(re.escape(part) for part in phrase.split("{}"))
    found = re.findall(pattern, text)
    assert found, f"the README no longer says: {phrase}"
    expected = _figures()[phrase]
    for said in found:
        said = said if isinstance(said, tuple) else (said,) if expected else ()
        assert tuple(_number(s) for s in said) == expected, (phrase, said)
