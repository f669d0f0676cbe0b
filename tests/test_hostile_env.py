"""A careless operator's environment: a secret pasted into the wrong setting is never echoed in
the refusal; a variable set twice in ``.env`` is refused, not guessed (the last one would have
opened the live gate)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from engine.bootstrap import load_env
from engine.cli import main
from tests.conftest import CliRunner, Result

KEY = "SECRETKEY123-pasted-7d1e"
SECRET = "SECRETSECRET456-pasted-0b9c"
LIVE_KEYS = {"BINANCE_KEY": KEY, "BINANCE_SECRET": SECRET}


def kobe_with_dotenv(workdir: Path, environ: dict[str, str], *argv: str) -> Result:
    """``kobe`` in-process as the entry point runs it: the process environment over ``.env``."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), env=load_env(workdir, environ), cwd=workdir, out=out, err=err)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.mark.parametrize(
    ("variable", "env", "toml"),
    [
        ("KOBE_EXCHANGE_URL", {"KOBE_EXCHANGE_URL": f"http://{KEY}@127.0.0.1:1"}, ""),
        ("KOBE_MODE", {"KOBE_MODE": KEY}, ""),
        ("EXCHANGE", {"EXCHANGE": SECRET}, ""),
        ("exchange.api_secret", {}, f'[exchange]\napi_secret = "{SECRET}"\n'),
    ],
)
def test_a_secret_pasted_into_another_setting_is_never_echoed(
    cli: CliRunner, workdir: Path, variable: str, env: dict[str, str], toml: str
) -> None:
    if toml:
        (workdir / "kobe.toml").write_text(toml)
    for argv in (["health"], ["keys"], ["trade", "--help"], ["orders"]):
        r = cli(*argv, env={"KOBE_MODE": "testnet", "BINANCE_TESTNET": "1", **LIVE_KEYS, **env})
        assert KEY not in r.out + r.err and SECRET not in r.out + r.err, (argv, r.err)
        if argv != ["trade", "--help"]:
            assert r.code == 2 and variable in r.err, r.err


@pytest.mark.parametrize(
    "dotenv",
    [
        "ALLOW_LIVE=0\nALLOW_LIVE=1\n",
        "ALLOW_LIVE=1\nBINANCE_TESTNET=1\nexport BINANCE_TESTNET=0\n",
        "KOBE_MODE=paper\nALLOW_LIVE=1\nKOBE_MODE=live\n",
    ],
)
def test_a_variable_set_twice_in_dotenv_is_refused_not_guessed(workdir: Path, dotenv: str) -> None:
    (workdir / ".env").write_text(dotenv)
    env = {"KOBE_MODE": "live", **LIVE_KEYS}
    twice = next(
        n for n in ("ALLOW_LIVE", "BINANCE_TESTNET", "KOBE_MODE") if dotenv.count(f"{n}=") > 1
    )
    for argv in (
        ["health"],
        ["trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15",
         "--yes", "--confirm-live"],
        ["run", "--headless", "--ticks", "1", "--confirm-live"],
    ):  # fmt: skip
        r = kobe_with_dotenv(workdir, env, *argv)
        assert r.code == 2, r.err
        assert f".env: '{twice}' is set more than once" in r.err
    assert not (workdir / "data").exists()  # nothing written


def test_a_dotenv_without_repeats_still_counts(workdir: Path) -> None:
    (workdir / ".env").write_text("# live\nALLOW_LIVE=1\nexport BINANCE_TESTNET=0\n")
    r = kobe_with_dotenv(workdir, {"KOBE_MODE": "live", **LIVE_KEYS}, "keys")  # no network
    assert r.code == 0, r.err
    assert re.search(r"ALLOW_LIVE +set\n", r.out), r.out


@pytest.mark.parametrize("blank", [" ", "\t", "  \n"])
def test_a_blank_key_is_missing_for_the_live_gate(cli: CliRunner, blank: str) -> None:
    env = {"KOBE_MODE": "live", "ALLOW_LIVE": "1", "BINANCE_KEY": blank, "BINANCE_SECRET": SECRET}
    r = cli("trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15",
            "--yes", "--confirm-live", env=env)  # fmt: skip
    assert r.code == 1 and "binance keys missing: BINANCE_KEY\n" in r.err, r.err
    r = cli("keys", env=env)
    assert re.search(r"BINANCE_KEY +missing", r.out), r.out


@pytest.mark.parametrize("broken", ["a directory", "a dangling symlink"])
@pytest.mark.parametrize("name", ["kobe.toml", ".env"])
def test_a_config_file_that_is_not_a_file_is_refused_not_skipped(
    workdir: Path, name: str, broken: str
) -> None:
    """A kobe.toml (its risk limits) or .env (a testnet marking) that cannot be read is no
    reason to run on the built-in defaults instead: exit 2 naming it."""
    path = workdir / name
    if broken == "a directory":
        path.mkdir()
    else:
        path.symlink_to(workdir / "moved" / name)
    for argv in (["health"], ["trade", "--symbol", "BTC/USDT", "--side", "buy", "--type",
                              "market", "--quote", "6", "--yes"]):  # fmt: skip
        r = kobe_with_dotenv(workdir, {}, *argv)
        assert r.code == 2, (argv, r.out, r.err)
        assert f"{name}: not a regular file" in r.err
    assert not (workdir / "data").exists()
