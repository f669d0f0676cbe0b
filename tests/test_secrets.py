"""Secrets never show: not in output, logs, exceptions or the cockpit."""

from __future__ import annotations

import io
import json
import logging
import pickle
from pathlib import Path

import pytest
from pydantic import BaseModel

from engine.cli import main
from engine.modes import GateClosed, require_gate, resolve_settings
from engine.secrets import REDACTED, RedactingFilter, Secret, Secrets, redact
from kobe_tui.app import KobeApp
from tests.conftest import CANARY, canary_env, run_kobe


def test_secret_type_never_prints_its_value() -> None:
    s = Secret("hunter2-very-secret")
    shown = [str(s), repr(s), f"{s}", f"{s!r}", f"{s:>30}", "%s" % s, f"{s}"]  # noqa: UP031
    assert all("hunter2" not in text for text in shown)
    assert s.get_secret_value() == "hunter2-very-secret"

    class Holder(BaseModel):
        key: Secret

    h = Holder(key=s)
    assert "hunter2" not in h.model_dump_json()
    assert "hunter2" not in repr(h.model_dump())
    assert "hunter2" not in repr(h)
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_secrets_repr_names_only_which_are_set() -> None:
    secrets = Secrets.from_env({"BINANCE_KEY": "value-of-the-key"})
    assert repr(secrets) == "Secrets(set=['BINANCE_KEY'])"


def _capture(logger_name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger, stream


def test_log_redaction_by_value_in_any_logger() -> None:
    value = "zq-LIBRARY-KEY-9931"
    Secrets.from_env({"BYBIT_SECRET": value})
    logger, stream = _capture("some.library.http")
    # a library logging a URL with the key inside it, at DEBUG, with %-args and without
    logger.debug("GET https://api.example/v5?apiKey=%s&x=1", value)
    logger.debug(f"headers={{'X-KEY': '{value}'}}")
    try:
        raise RuntimeError(f"signature rejected for {value}")
    except RuntimeError:
        logger.exception("request failed")
    text = stream.getvalue()
    assert value not in text
    assert text.count(REDACTED) >= 3
    assert "apiKey=***&x=1" in text


def test_redacting_filter_on_a_foreign_record() -> None:
    value = "zq-FOREIGN-7781"
    Secrets.from_env({"OKX_PASSWORD": value})
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "pw=%s", (value,), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == "pw=***"
    assert redact(f"a {value} b") == "a *** b"


def test_exception_texts_carry_no_secret(workdir: Path) -> None:
    env = {"KOBE_MODE": "live", **canary_env()}
    settings = resolve_settings(env, workdir)
    with pytest.raises(GateClosed) as info:
        require_gate(settings, confirmed=False)
    assert CANARY not in str(info.value)
    assert CANARY not in repr(settings)
    assert CANARY not in repr(settings.secrets)


@pytest.mark.parametrize("mode", ["paper", "testnet", "live"])
def test_canary_in_no_cli_output_or_log(workdir: Path, mode: str) -> None:
    env = {"KOBE_MODE": mode, "ALLOW_LIVE": "1", **canary_env()}
    outputs = []
    for argv in (
        ["-vv", "keys"],
        ["-vv", "keys", "--json"],
        ["-vv", "health"],
        ["-vv", "health", "--json"],
    ):
        r = run_kobe(*argv, env=env, cwd=workdir)
        assert r.code in (0, 1), r.err
        outputs += [r.out, r.err]
        if argv[-1] == "--json":
            json.loads(r.out)
    joined = "\n".join(outputs)
    assert "BINANCE_KEY" in joined  # the names are shown ...
    assert CANARY not in joined  # ... never the values
    for path in workdir.rglob("*"):
        if path.is_file():
            assert CANARY not in path.read_text(errors="replace"), path


def test_a_key_pasted_into_an_argument_is_never_echoed(workdir: Path) -> None:
    """A refusal names the argument it refuses; when that argument is a key pasted in the wrong
    place (the clipboard held it), it shows as *** (also upper-cased, as a symbol is)."""
    env = canary_env()
    key = env["BINANCE_SECRET"]
    buy = ["trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15"]
    for argv in (
        [*buy, "--wallet", key, "--yes"],
        [*buy[:2], key, *buy[3:], "--yes"],
        [*buy[:-1], key, "--yes"],
        ["cancel", key, "--yes"],
        ["exits", key, "--sl", "90000", "--yes"],
        [key],  # argparse's own refusals too
        ["keys", key],
    ):
        r = run_kobe(*argv, env=env, cwd=workdir)
        assert r.code in (1, 2), (argv, r.out, r.err)
        said = r.out + r.err
        assert "***" in said, (argv, said)
        assert key not in said and key.upper() not in said and CANARY not in said, said


@pytest.mark.parametrize("mode", ["paper", "testnet", "live"])
async def test_canary_in_no_cockpit_screen(workdir: Path, mode: str) -> None:
    env = {"KOBE_MODE": mode, "ALLOW_LIVE": "1", **canary_env()}
    app = KobeApp(resolve_settings(env, workdir))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        main_svg = app.export_screenshot()
        await pilot.press("question_mark")
        await pilot.pause()
        help_svg = app.export_screenshot()
    assert "Health" in main_svg
    assert CANARY not in main_svg and CANARY not in help_svg


def test_escaped_forms_of_a_secret_are_redacted_in_ccxt_debug_lines(tmp_path: Path) -> None:
    """OKX's passphrase with a backslash: ccxt's -vv line prints the headers dict, where it is
    repr-escaped; JSON-escaped and URL-encoded forms are redacted as well."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import quote

    from engine.exchange.ccxt_exchange import CcxtExchange
    from engine.logsetup import setup_logging

    class Okx(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data: object = [{"ts": str(int(time.time() * 1000))}] if "time" in self.path else []
            body = json.dumps({"code": "0", "data": data}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Okx)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    password = f'pa\\ss"w0rd-{CANARY}/é+&'
    log_file = tmp_path / "kobe.log"
    setup_logging(logging.DEBUG, file=log_file)
    try:
        exchange = CcxtExchange(
            "okx",
            api_key=Secret(f"key-{CANARY}"),
            secret=Secret(f"secret-{CANARY}"),
            password=Secret(password),
            api_url=f"http://127.0.0.1:{server.server_address[1]}",
        )
        exchange.ccxt.fetch_balance()  # a private call: ccxt logs its headers at DEBUG
        logging.getLogger("test").debug("body %s", json.dumps({"passphrase": password}))
        logging.getLogger("test").debug("query ?p=%s", quote(password))
        exchange.close()
    finally:
        setup_logging(logging.WARNING)
        server.shutdown()
        server.server_close()
    text = log_file.read_text()
    assert "OK-ACCESS-PASSPHRASE': '***'" in text  # the line is there, its value is not
    assert CANARY not in text
    assert "w0rd" not in text


def test_a_command_whose_reader_went_away_runs_to_its_end(workdir: Path) -> None:
    """A write that meets a closed pipe in the middle of a command (``kobe … | head``) raised
    out of it as an internal error, cutting it short wherever it was (``cancel --all`` half
    done). The output stream now drops what cannot be written and the command goes on."""

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    err = io.StringIO()
    code = main(["wallets"], env={}, cwd=workdir, out=ClosedPipe(), err=err)
    assert code == 0 and err.getvalue() == ""
