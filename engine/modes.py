"""Resolved settings (config + environment) and the live gate (the health checks: ``engine.health``).

Nothing here downgrades or upgrades a mode: the mode asked for is the mode checked, and a refusal
names every unmet condition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.bootstrap import Env
from engine.config import (
    EXCHANGES,
    ConfigError,
    KobeConfig,
    Mode,
    check_api_url,
    config_path,
    load_config_file,
)
from engine.secrets import EXCHANGE_KEY_VARS, SECRET_VARS, Secrets, load_env, redact
from engine.untrusted import clean_text

BUILTIN_DEFAULTS = "built-in defaults"


@dataclass(frozen=True)
class Settings:
    """Everything the engine needs to know about where and how it runs."""

    config: KobeConfig
    config_source: str  # the file read, or BUILTIN_DEFAULTS
    mode: Mode
    exchange: str
    data_dir: Path
    cwd: Path
    api_url: str  # "" when none
    env: Mapping[str, str] = field(repr=False)
    secrets: Secrets = field(repr=False)

    @property
    def testnet_flag(self) -> str:
        return f"{self.exchange.upper()}_TESTNET"

    @property
    def key_vars(self) -> tuple[str, ...]:
        return EXCHANGE_KEY_VARS[self.exchange]

    def display_path(self, path: Path) -> str:
        """``path`` relative to the working directory when it is inside it (stable on screen)."""
        try:
            return "./" + str(path.relative_to(self.cwd))
        except ValueError:
            return str(path)

    def missing_keys(self) -> list[str]:
        return [name for name in self.key_vars if not self.secrets.is_set(name)]

    def testnet_flag_set(self) -> bool:
        """``<EX>_TESTNET=1``, wherever it came from (live refuses it from anywhere)."""
        return self.env.get(self.testnet_flag) == "1"

    def testnet_flag_raised(self) -> bool:
        """``<EX>_TESTNET`` set to anything but empty or ``0``: live takes it as a testnet
        marking (``true`` or ``yes`` meant one), so a slip never passes testnet keys as live."""
        return self.env.get(self.testnet_flag, "") not in ("", "0")

    def marking_ignored(self) -> bool:
        """The marking came from ``.env`` but a key came from the process environment: the
        marking does not apply to keys it did not come with."""
        from_dotenv: frozenset[str] = getattr(self.env, "from_dotenv", frozenset())
        return (
            self.testnet_flag_set()
            and self.testnet_flag in from_dotenv
            and any(self.secrets.is_set(k) and k not in from_dotenv for k in self.key_vars)
        )

    def keys_marked_testnet(self) -> bool:
        """The keys are marked as testnet keys (what testnet needs)."""
        return self.testnet_flag_set() and not self.marking_ignored()

    def allow_live(self) -> bool:
        return self.env.get("ALLOW_LIVE") == "1"


NAME_MAX = 255  # bytes in one path component (Linux, macOS)
PATH_MAX = 4096  # bytes in a whole path (Linux)


def data_dir_problem(data_dir: Path) -> str:
    """Why ``data_dir`` cannot be Kobe's data dir ("" when it can): checked before any use."""
    text = str(data_dir)
    shown = text if len(text) <= 80 else text[:60] + "…"
    if len(text.encode("utf-8", "surrogateescape")) >= PATH_MAX:
        return f"the path is {len(text)} characters long, the system allows {PATH_MAX - 1}"
    if any(len(part.encode("utf-8", "surrogateescape")) > NAME_MAX for part in data_dir.parts):
        return f"a folder name in {shown} is longer than {NAME_MAX} bytes"
    try:
        probe = data_dir
        while not probe.exists() and not probe.is_symlink() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir():
            return f"{shown}: {probe} is not a directory"
    except OSError as exc:
        return f"{shown}: {exc.strerror or exc}"
    return ""


def resolve_settings(
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Read the config and apply the environment (env > .env > kobe.toml).

    Raises :class:`ConfigError` (exit 2) naming every bad key or variable.
    """
    base = Path.cwd() if cwd is None else cwd
    merged = load_env(base) if env is None else env if isinstance(env, Env) else dict(env)
    # the secret values are known before any problem is worded: a key pasted into another
    # variable (KOBE_MODE, a URL's user part) or into kobe.toml is never echoed back
    Secrets.from_env(merged)
    try:
        return _resolve_settings(merged, base)
    except ConfigError as exc:
        raise ConfigError([redact(line) for line in exc.lines]) from None


def _utf8(text: str) -> bool:
    """Whether ``text`` is UTF-8 text (the environment reads a stray byte as a lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _resolve_settings(merged: Mapping[str, str], base: Path) -> Settings:
    if getattr(merged, "problems", ()):
        raise ConfigError(list(merged.problems))  # type: ignore[attr-defined]
    for name in SECRET_VARS:  # a stray byte pasted with a key or a URL: no request can carry it
        if not _utf8(merged.get(name, "")):
            raise ConfigError([f"{name}: not UTF-8 text (a stray byte; its value is not shown)"])
    for name in ("KOBE_CONFIG", "KOBE_DATA_DIR"):  # shown on screen, like config strings
        value = merged.get(name, "")
        if clean_text(value, len(value) + 1) != value:
            raise ConfigError([f"{name}: must not contain control characters (got {value!r})"])
    path = config_path(merged, base)
    label = None
    if path is not None:
        label = merged.get("KOBE_CONFIG") or "kobe.toml"
    cfg = load_config_file(path, label)

    problems: list[str] = []
    mode = cfg.mode
    raw_mode = merged.get("KOBE_MODE")
    if raw_mode is not None:
        try:
            mode = Mode(raw_mode)
        except ValueError:
            problems.append(f"KOBE_MODE: must be one of paper, testnet, live (got {raw_mode!r})")

    exchange: str = cfg.exchange.name
    raw_exchange = merged.get("EXCHANGE")
    if raw_exchange is not None:
        if raw_exchange in EXCHANGES:
            exchange = raw_exchange
        else:
            problems.append(f"EXCHANGE: must be one of binance, bybit, okx (got {raw_exchange!r})")

    api_url = cfg.exchange.api_url
    raw_url = merged.get("KOBE_EXCHANGE_URL")
    if raw_url is not None:
        try:
            api_url = check_api_url(raw_url)
        except ValueError as exc:
            problems.append(f"KOBE_EXCHANGE_URL: {exc} (got {raw_url!r})")
    from engine.notify.channels import env_problems  # here: engine.notify builds on this module

    problems += env_problems(cfg.notify, merged)
    if mode is Mode.PAPER:  # the paper venue lists its markets; the others are checked at start
        from engine.exchange.paper import load_paper_markets

        markets = load_paper_markets()
        if cfg.paper.price_source == "exchange":
            problems.append(
                "paper.price_source: 'exchange' is not available: no exchange ticker source is "
                "wired to the paper venue (paper stays offline); use 'simulated'"
            )
        missing = [s for s in cfg.symbols if s not in markets]
        if missing:
            problems.append(
                f"symbols: {', '.join(missing)} has no paper market "
                f"(paper markets: {', '.join(sorted(markets))})"
            )
    if problems:
        raise ConfigError(problems)

    key = "KOBE_DATA_DIR" if merged.get("KOBE_DATA_DIR") else "paths.data_dir"
    data_dir = Path(merged.get("KOBE_DATA_DIR") or cfg.paths.data_dir or "data")
    if not data_dir.is_absolute():
        data_dir = base / data_dir
    problem = data_dir_problem(data_dir)
    if problem:
        raise ConfigError([f"{key}: {problem}"])

    return Settings(
        config=cfg,
        config_source=str(label) if path is not None else BUILTIN_DEFAULTS,
        mode=mode,
        exchange=exchange,
        data_dir=data_dir,
        cwd=base,
        api_url=api_url,
        env=merged,
        secrets=Secrets.from_env(merged),
    )


# ---------------------------------------------------------------------------------------------
# The gate


class GateClosed(Exception):
    """The mode asked for cannot run. ``reasons`` names every unmet condition. Exit code 1."""

    def __init__(self, mode: Mode, reasons: list[str]) -> None:
        self.mode = mode
        self.reasons = reasons
        super().__init__(f"{mode.value} refused: " + "; ".join(reasons))


LIVE_URL_REFUSED = "KOBE_EXCHANGE_URL / exchange.api_url is set: refused in live"


def live_gate_problems(settings: Settings, confirmed: bool) -> list[str]:
    """Every unmet condition of the live gate, whatever the current mode; empty means open.

    Live needs all of: mode live, ``ALLOW_LIVE=1``, the exchange's keys present and not marked
    testnet, no exchange URL, and the operator's explicit confirmation (``--confirm-live``, or
    the cockpit unlock).
    """
    problems: list[str] = []
    if settings.mode is not Mode.LIVE:
        problems.append(f"mode is {settings.mode.value}, not live (kobe.toml mode or KOBE_MODE)")
    if not settings.allow_live():
        problems.append("ALLOW_LIVE is not 1")
    missing = settings.missing_keys()
    if missing:
        problems.append(f"{settings.exchange} keys missing: {', '.join(missing)}")
    if settings.testnet_flag_set():
        problems.append(
            f"{settings.testnet_flag}=1 marks the keys as testnet keys: live needs live keys"
        )
    elif settings.testnet_flag_raised():
        problems.append(
            f"{settings.testnet_flag} is set (not 0): it may mark the keys as testnet keys; "
            "live needs live keys (unset it, or set it to 0)"
        )
    if settings.api_url:
        problems.append(LIVE_URL_REFUSED)
    if not confirmed:
        problems.append("not confirmed: pass --confirm-live (cockpit: unlock live)")
    return problems


def gate_problems(settings: Settings, confirmed: bool) -> list[str]:
    """Every unmet condition for running in ``settings.mode``; empty when it may run.

    ``confirmed`` is the operator's explicit live confirmation (cockpit unlock, ``--confirm-live``).
    """
    mode = settings.mode
    if mode is Mode.PAPER:
        return []
    if mode is Mode.LIVE:
        return live_gate_problems(settings, confirmed)
    problems: list[str] = []
    missing = settings.missing_keys()
    if missing:
        problems.append(f"{settings.exchange} keys missing: {', '.join(missing)}")
    if settings.marking_ignored():
        problems.append(
            f"{settings.testnet_flag}=1 comes from .env but the keys come from the process "
            "environment: the marking does not apply to them (set it where the keys are set)"
        )
    elif not settings.keys_marked_testnet():
        problems.append(
            f"{settings.testnet_flag} is not 1: testnet needs keys marked as testnet keys"
        )
    return problems


def require_gate(settings: Settings, confirmed: bool) -> None:
    problems = gate_problems(settings, confirmed)
    if problems:
        raise GateClosed(settings.mode, problems)
