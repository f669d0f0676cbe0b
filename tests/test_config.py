from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from engine.config import (
    ConfigError,
    KobeConfig,
    Mode,
    config_to_toml,
    load_config_file,
    parse_config,
    save_config,
)
from engine.modes import BUILTIN_DEFAULTS, resolve_settings
from engine.secrets import load_env
from tests.conftest import ROOT, CliRunner


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.lines


def test_shipped_file_equals_builtin_defaults() -> None:
    shipped = load_config_file(ROOT / "kobe.toml")
    assert shipped == KobeConfig()
    assert shipped.mode is Mode.PAPER


def test_partial_file_inherits_the_rest() -> None:
    cfg = parse_config("[risk]\nmax_losing_streak = 3\n")
    assert cfg.risk.max_losing_streak == 3
    assert cfg.risk.max_drawdown_pct == KobeConfig().risk.max_drawdown_pct
    assert cfg.symbols == KobeConfig().symbols


def test_numbers_are_decimals_not_floats() -> None:
    cfg = parse_config("[paper]\nmaker_fee_pct = 0.1\n")
    assert isinstance(cfg.paper.maker_fee_pct, Decimal)
    assert cfg.paper.maker_fee_pct == Decimal("0.1")


def test_bad_value_names_key_problem_and_value() -> None:
    assert errors_of("[risk]\nmax_drawdown_pct = 140\n") == [
        "kobe.toml: risk.max_drawdown_pct: must be between 0 and 100 (got 140)"
    ]


def test_unknown_keys_refused_one_line_each() -> None:
    lines = errors_of('colour = "red"\n[risk]\nmax_drawdon_pct = 10\n')
    assert "kobe.toml: colour: unknown key (got 'red')" in lines
    assert "kobe.toml: risk.max_drawdon_pct: unknown key (got 10)" in lines
    assert len(lines) == 2


def test_every_problem_reported_not_just_the_first() -> None:
    lines = errors_of('mode = "moon"\n[exchange]\nname = "kraken"\n[paper]\nseed = "x"\n')
    assert len(lines) == 3
    assert lines[0].startswith("kobe.toml: mode: must be 'paper', 'testnet' or 'live'")
    assert "(got 'moon')" in lines[0]
    assert lines[1].startswith("kobe.toml: exchange.name: must be 'binance', 'bybit' or 'okx'")
    assert lines[2].startswith("kobe.toml: paper.seed:")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('symbols = ["btc-usdt"]', "symbols[0]: must look like BASE/QUOTE"),
        ("[paper]\nsim_start = 2026-01-01T00:00:00", "paper.sim_start: must carry a timezone"),
        ('[exchange]\napi_url = "localhost"', "exchange.api_url: must be scheme://host:port"),
        ("[risk]\nwarning_drawdown_pct = 30", "risk: warning_drawdown_pct (30) must be below"),
        ("[paper]\nbalances = { USDT = -5 }", "paper.balances.USDT: must not be negative"),
        ("[router]\ndefault_quote_usd = 0", "router.default_quote_usd: must be greater than 0"),
    ],
)
def test_refusals_name_the_key(text: str, needle: str) -> None:
    lines = errors_of(text)
    assert any(needle in line for line in lines), lines


def test_toml_syntax_error_names_the_line() -> None:
    lines = errors_of('mode = "paper"\n[risk\nmax_losing_streak = 2\n')
    assert len(lines) == 1
    assert "TOML syntax error" in lines[0]
    assert "line 2" in lines[0]


def test_no_file_gives_builtin_defaults(workdir: Path) -> None:
    s = resolve_settings({}, workdir)
    assert s.config_source == BUILTIN_DEFAULTS
    assert s.mode is Mode.PAPER
    assert s.data_dir == workdir / "data"


def test_kobe_config_picks_another_file(workdir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text('mode = "testnet"\n[exchange]\nname = "okx"\n')
    (workdir / "kobe.toml").write_text('mode = "paper"\n')
    s = resolve_settings({"KOBE_CONFIG": str(other)}, workdir)
    assert (s.mode, s.exchange) == (Mode.TESTNET, "okx")


def test_kobe_config_missing_file_exits_2(cli: CliRunner, workdir: Path) -> None:
    r = cli("health", env={"KOBE_CONFIG": "nope.toml"})
    assert r.code == 2
    assert "KOBE_CONFIG: file not found (got 'nope.toml')" in r.err


def test_env_overrides_mode_exchange_and_data_dir(workdir: Path, tmp_path: Path) -> None:
    (workdir / "kobe.toml").write_text('mode = "paper"\n[paths]\ndata_dir = "d1"\n')
    s = resolve_settings(
        {"KOBE_MODE": "testnet", "EXCHANGE": "bybit", "KOBE_DATA_DIR": str(tmp_path / "d2")},
        workdir,
    )
    assert s.mode is Mode.TESTNET
    assert s.exchange == "bybit"
    assert s.data_dir == tmp_path / "d2"
    assert resolve_settings({}, workdir).data_dir == workdir / "d1"


def test_dotenv_is_read_and_environment_wins(workdir: Path) -> None:
    (workdir / ".env").write_text("KOBE_MODE=testnet\nEXCHANGE=okx\n")
    env = load_env(workdir, environ={"EXCHANGE": "bybit"})
    assert env["KOBE_MODE"] == "testnet"  # from .env
    assert env["EXCHANGE"] == "bybit"  # the environment wins over .env
    settings = resolve_settings(env, workdir)
    assert (settings.mode, settings.exchange) == (Mode.TESTNET, "bybit")


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("KOBE_MODE", "moon", "KOBE_MODE: must be one of paper, testnet, live (got 'moon')"),
        ("EXCHANGE", "kraken", "EXCHANGE: must be one of binance, bybit, okx (got 'kraken')"),
        ("KOBE_EXCHANGE_URL", "ftp://x", "KOBE_EXCHANGE_URL: must be scheme://host:port"),
    ],
)
def test_bad_environment_exits_2(cli: CliRunner, var: str, value: str, needle: str) -> None:
    r = cli("health", env={var: value})
    assert r.code == 2
    assert needle in r.err


def test_malformed_config_exits_2_and_writes_nothing(cli: CliRunner, workdir: Path) -> None:
    (workdir / "kobe.toml").write_text("[risk]\nmax_drawdown_pct = 140\nbogus = 1\n")
    before = sorted(p.name for p in workdir.iterdir())
    r = cli("health")
    assert r.code == 2
    assert "kobe.toml: risk.max_drawdown_pct: must be between 0 and 100 (got 140)" in r.err
    assert "kobe.toml: risk.bogus: unknown key (got 1)" in r.err
    assert r.out == ""
    assert sorted(p.name for p in workdir.iterdir()) == before


def test_save_is_atomic_and_round_trips(tmp_path: Path) -> None:
    target = tmp_path / "kobe.toml"
    target.write_text("old contents\n")
    cfg = parse_config('mode = "testnet"\n[risk]\nmax_losing_streak = 2\n')
    save_config(cfg, target)
    assert load_config_file(target) == cfg
    assert [p.name for p in tmp_path.iterdir()] == ["kobe.toml"]  # no temp file left behind


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_save_refuses_a_config_that_would_not_load(tmp_path: Path) -> None:
    target = tmp_path / "kobe.toml"
    target.write_text("keep me\n")
    bad = KobeConfig.model_construct(mode="moon")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        save_config(bad, target)
    assert target.read_text() == "keep me\n"


def test_defaults_serialise_to_loadable_toml() -> None:
    assert parse_config(config_to_toml(KobeConfig())) == KobeConfig()


@pytest.mark.parametrize(
    ("var", "toml", "values", "read"),
    [
        ("KOBE_MODE", 'mode = "{}"\n', ("paper", "testnet", "live"), "mode"),
        ("EXCHANGE", '[exchange]\nname = "{}"\n', ("binance", "bybit", "okx"), "exchange"),
        ("KOBE_DATA_DIR", '[paths]\ndata_dir = "{}"\n', ("d1", "d2", "d3"), "data_dir"),
        (
            "KOBE_EXCHANGE_URL",
            '[exchange]\napi_url = "{}"\n',
            ("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"),
            "api_url",
        ),
    ],
)
def test_each_override_wins_over_dotenv_which_wins_over_kobe_toml(
    workdir: Path, var: str, toml: str, values: tuple[str, str, str], read: str
) -> None:
    """README: "Precedence: environment > `.env` (current directory) > `kobe.toml`", for each
    override it names."""
    in_toml, in_dotenv, in_env = values

    def resolved(environ: dict[str, str]) -> str:
        value = getattr(resolve_settings(load_env(workdir, environ=environ), workdir), read)
        return str(getattr(value, "value", value))

    (workdir / "kobe.toml").write_text(toml.format(in_toml))
    assert resolved({}).endswith(in_toml)
    (workdir / ".env").write_text(f"{var}={in_dotenv}\n")
    assert resolved({}).endswith(in_dotenv)
    assert resolved({var: in_env}).endswith(in_env)


def test_an_exchange_url_is_ignored_in_paper(cli: CliRunner) -> None:
    """README: `KOBE_EXCHANGE_URL` is "ignored in paper": a paper trade with it pointing at a
    port nobody listens on fills on the paper exchange."""
    buy = "trade --symbol BTC/USDT --side buy --type market --quote 15 --yes"
    r = cli(*buy.split(), env={"KOBE_EXCHANGE_URL": "http://127.0.0.1:9"})
    assert r.code == 0 and r.out.startswith("[PAPER on binance]"), r.err
    assert "filled" in r.out
