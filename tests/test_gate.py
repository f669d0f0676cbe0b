"""The live gate: every combination of its conditions; only all of them together open it."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from engine.config import Mode
from engine.modes import (
    GateClosed,
    gate_problems,
    live_gate_problems,
    require_gate,
    resolve_settings,
)
from tests.conftest import CliRunner

KEYS = {"BINANCE_KEY": "k" * 16, "BINANCE_SECRET": "s" * 16}


def live_env(mode_live: bool, allow: bool, keys: str) -> dict[str, str]:
    env: dict[str, str] = {"KOBE_MODE": "live" if mode_live else "paper"}
    if allow:
        env["ALLOW_LIVE"] = "1"
    if keys in ("live", "testnet"):
        env.update(KEYS)
    if keys == "testnet":
        env["BINANCE_TESTNET"] = "1"
    return env


@pytest.mark.parametrize(
    ("mode_live", "allow", "keys", "confirmed"),
    list(
        itertools.product(
            [True, False], [True, False], ["live", "missing", "testnet"], [True, False]
        )
    ),
)
def test_every_combination_of_the_live_gate(
    workdir: Path, mode_live: bool, allow: bool, keys: str, confirmed: bool
) -> None:
    settings = resolve_settings(live_env(mode_live, allow, keys), workdir)
    problems = live_gate_problems(settings, confirmed)
    opens = mode_live and allow and keys == "live" and confirmed
    assert (problems == []) is opens
    # every unmet condition is named, not just the first
    assert any("not live" in p for p in problems) is (not mode_live)
    assert any("ALLOW_LIVE" in p for p in problems) is (not allow)
    assert any("keys missing" in p for p in problems) is (keys == "missing")
    assert any("BINANCE_TESTNET=1" in p for p in problems) is (keys == "testnet")
    assert any("--confirm-live" in p for p in problems) is (not confirmed)
    if mode_live:
        assert gate_problems(settings, confirmed) == problems
        if opens:
            require_gate(settings, confirmed)
        else:
            with pytest.raises(GateClosed) as info:
                require_gate(settings, confirmed)
            assert info.value.reasons == problems
            assert info.value.mode is Mode.LIVE  # never downgraded


@pytest.mark.parametrize("value", ["0", "true", "yes", "01", " 1"])
def test_allow_live_counts_only_when_exactly_1(workdir: Path, value: str) -> None:
    env = {**live_env(True, False, "live"), "ALLOW_LIVE": value}
    problems = live_gate_problems(resolve_settings(env, workdir), confirmed=True)
    assert problems == ["ALLOW_LIVE is not 1"]


@pytest.mark.parametrize("value", ["true", "yes", "01", " 1", "on"])
def test_live_refuses_keys_with_any_testnet_marking_but_0(
    workdir: Path, cli: CliRunner, value: str
) -> None:
    # a marking meant as "yes" (true, yes, on) fails closed in live: testnet keys never pass
    env = {**live_env(True, True, "live"), "BINANCE_TESTNET": value}
    problems = live_gate_problems(resolve_settings(env, workdir), confirmed=True)
    assert problems == [
        "BINANCE_TESTNET is set (not 0): it may mark the keys as testnet keys; live needs "
        "live keys (unset it, or set it to 0)"
    ]
    r = cli("health", env=env)
    assert r.code != 0 and "BINANCE_TESTNET is set (not 0)" in r.out
    zero = {**live_env(True, True, "live"), "BINANCE_TESTNET": "0"}
    assert live_gate_problems(resolve_settings(zero, workdir), confirmed=True) == []


def test_live_refuses_an_exchange_url_override(workdir: Path) -> None:
    env = {**live_env(True, True, "live"), "KOBE_EXCHANGE_URL": "http://127.0.0.1:9"}
    problems = live_gate_problems(resolve_settings(env, workdir), confirmed=True)
    assert problems == ["KOBE_EXCHANGE_URL / exchange.api_url is set: refused in live"]


def test_okx_needs_its_password_too(workdir: Path) -> None:
    env = {"KOBE_MODE": "live", "EXCHANGE": "okx", "ALLOW_LIVE": "1", "OKX_KEY": "a" * 8}
    env["OKX_SECRET"] = "b" * 8
    problems = live_gate_problems(resolve_settings(env, workdir), confirmed=True)
    assert problems == ["okx keys missing: OKX_PASSWORD"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({**KEYS, "BINANCE_TESTNET": "1"}, []),
        (KEYS, ["BINANCE_TESTNET is not 1: testnet needs keys marked as testnet keys"]),
        (
            {"BINANCE_TESTNET": "1"},
            ["binance keys missing: BINANCE_KEY, BINANCE_SECRET"],
        ),
        (
            {},
            [
                "binance keys missing: BINANCE_KEY, BINANCE_SECRET",
                "BINANCE_TESTNET is not 1: testnet needs keys marked as testnet keys",
            ],
        ),
    ],
)
def test_testnet_needs_keys_marked_testnet(
    workdir: Path, env: dict[str, str], expected: list[str]
) -> None:
    settings = resolve_settings({"KOBE_MODE": "testnet", **env}, workdir)
    assert gate_problems(settings, confirmed=False) == expected
    assert settings.mode is Mode.TESTNET


def test_paper_needs_nothing(workdir: Path) -> None:
    assert gate_problems(resolve_settings({}, workdir), confirmed=False) == []


def test_health_in_live_without_allow_live_names_it(cli: CliRunner) -> None:
    r = cli("health", env={"KOBE_MODE": "live", **KEYS})
    assert r.code == 1
    assert "FAIL  ALLOW_LIVE: ALLOW_LIVE is not 1" in r.out
    assert "NOT healthy" in r.out


def test_health_passes_in_paper_and_json_shape(cli: CliRunner) -> None:
    r = cli("health", "--json")
    assert r.code == 0
    data = json.loads(r.out)
    assert data["mode"] == "paper" and data["ok"] is True
    names = [c["name"] for c in data["checks"]]
    assert names == [
        "config valid",
        "mode allowed",
        "keys present",
        "data dir writable",
        "data dir free space",
    ]


def test_health_live_all_conditions_met_passes(cli: CliRunner) -> None:
    r = cli("health", "--json", env={"KOBE_MODE": "live", "ALLOW_LIVE": "1", **KEYS})
    data = json.loads(r.out)
    assert r.code == 0, data
    assert {c["name"]: c["ok"] for c in data["checks"]}["ALLOW_LIVE"] is True


def test_health_fails_when_data_dir_is_not_writable(cli: CliRunner, workdir: Path) -> None:
    import errno

    from engine.fsutil import inject_write_fault

    def read_only(path: Path) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    inject_write_fault(read_only)
    try:
        r = cli("health")
    finally:
        inject_write_fault(None)
    assert r.code == 1
    assert "FAIL  data dir writable: ./data: Read-only file system" in r.out


def test_the_data_dir_check_tells_the_truth_before_and_after_the_dir_exists(
    cli: CliRunner, workdir: Path
) -> None:
    """Before the first run the data dir is missing: its parent is probed, and the detail says
    what stays true once the engine has created it (the cockpit shows it for a whole session)."""

    def detail() -> str:
        r = cli("health", "--json")
        assert r.code == 0, r.err
        checks = {c["name"]: c["detail"] for c in json.loads(r.out)["checks"]}
        return str(checks["data dir writable"])

    assert not (workdir / "data").exists()
    assert detail() == "./data: writable, created on first use"
    assert not (workdir / "data").exists()  # the check created nothing
    assert cli("run", "--headless", "--ticks", "1").code == 0
    assert (workdir / "data").is_dir()
    assert detail() == "./data is writable"
    assert not [p.name for p in (workdir / "data").iterdir() if p.name.startswith(".kobe-probe")]


def test_a_data_dir_under_a_file_is_a_config_error(cli: CliRunner, workdir: Path) -> None:
    blocker = workdir / "file"
    blocker.write_text("x")
    r = cli("health", env={"KOBE_DATA_DIR": str(blocker / "data")})
    assert r.code == 2
    assert r.err.startswith("KOBE_DATA_DIR: ") and "is not a directory" in r.err


def test_keys_lists_set_or_missing(cli: CliRunner) -> None:
    r = cli("keys", "--json", env={"BINANCE_KEY": "abcdefgh"})
    assert r.code == 0
    data = json.loads(r.out)
    assert data["exchange"] == "binance" and data["mode"] == "paper"
    assert data["variables"]["BINANCE_KEY"] == "set"
    assert data["variables"]["BINANCE_SECRET"] == "missing"
    text = cli("keys", env={"BINANCE_KEY": "abcdefgh"}).out
    assert "BINANCE_KEY" in text and "abcdefgh" not in text
