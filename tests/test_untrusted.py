"""The one place outside text and numbers are made safe (engine.untrusted)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.untrusted import BadNumber, clean_message, clean_text, csv_cell, parse_decimal


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("oops [/]", "oops [/]"),  # markup is kept as text; the screen escapes it
        ("\x1b[31mLIVE\x1b[0m", "[31mLIVE[0m"),  # no escape byte survives
        ("a\r\nkill switch RESET", "a kill switch RESET"),  # no forged log line
        ("bell\x07\x9bC1", "bellC1"),
        ("rtl\u202eevil\u200b", "rtlevil"),  # bidi override and zero-width space
        ("\tname", " name"),
    ],
)
def test_clean_text_strips_what_drives_a_terminal(raw: str, shown: str) -> None:
    assert clean_text(raw) == shown


def test_clean_text_caps_the_length() -> None:
    assert clean_text("x" * 20_000_000) == "x" * 199 + "…"
    assert len(clean_message("y" * 5000)) == 1000
    assert clean_text("short") == "short"


@pytest.mark.parametrize(
    "raw",
    ["1e-999999999", "NaN", "inf", "-Infinity", "1_5", "١٥", "0x10", "", " ", "1e31", "5,0", True],
)
def test_parse_decimal_refuses_what_is_not_a_plain_bounded_number(raw: object) -> None:
    with pytest.raises(BadNumber) as info:
        parse_decimal(raw, "price")
    assert str(info.value).startswith("price: ")


def test_parse_decimal_accepts_plain_numbers_and_checks_bounds() -> None:
    assert parse_decimal("95134.70", "price") == Decimal("95134.70")
    assert parse_decimal(0.1, "qty") == Decimal("0.1")
    assert parse_decimal(15, "quote") == Decimal(15)
    assert parse_decimal("1e-8", "qty") == Decimal("1e-8")
    with pytest.raises(BadNumber, match="must be positive"):
        parse_decimal("-5", "quote", positive=True)
    with pytest.raises(BadNumber, match="must be positive"):
        parse_decimal("0", "quote", positive=True)
    with pytest.raises(BadNumber, match="at most 100"):
        parse_decimal("140", "risk", maximum=Decimal(100))
    with pytest.raises(BadNumber, match="too many digits"):
        parse_decimal("1." + "1" * 45, "x")


def test_csv_cell_neutralises_formulas_but_keeps_negative_numbers() -> None:
    assert csv_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell("+cmd") == "'+cmd"
    assert csv_cell("-0.25") == "-0.25"
    assert csv_cell("plain") == "plain"


def test_numbers_in_exchange_replies_go_through_the_bounded_parser() -> None:
    from engine.exchange.base import ExchangeError
    from engine.exchange.ccxt_parse import dec

    assert dec("95000.10") == Decimal("95000.10") and dec(0.1) == Decimal("0.1")
    assert dec(None) is None and dec("") is None
    for bad in ("1e-999999999", "NaN", "Infinity", "1_5"):
        with pytest.raises(ExchangeError, match="the exchange answered a number Kobe refuses"):
            dec(bad)


def test_the_limits_the_readme_gives_are_the_limits_at_their_edge() -> None:
    """README, "Outside text and numbers": "(200 characters for names and symbols, 1,000 for
    reasons and messages ...)", "at most 40 digits and an exponent within ±30"."""
    import re

    from tests.conftest import ROOT

    readme = " ".join((ROOT / "README.md").read_text().split())
    caps = re.search(r"\((\d+) characters for names and symbols, ([\d,]+) for reasons", readme)
    digits = re.search(r"at most (\d+) digits and an exponent within ±(\d+)", readme)
    assert caps is not None and digits is not None
    name, message = int(caps.group(1)), int(caps.group(2).replace(",", ""))
    assert clean_text("x" * name) == "x" * name and len(clean_text("x" * (name + 1))) == name
    assert clean_message("y" * message) == "y" * message
    assert len(clean_message("y" * (message + 1))) == message
    most, exponent = int(digits.group(1)), int(digits.group(2))
    assert parse_decimal("0." + "9" * most, "x") == Decimal("0." + "9" * most)
    with pytest.raises(BadNumber, match="too many digits"):
        parse_decimal("0." + "9" * (most + 1), "x")
    for sign in ("", "-"):
        assert parse_decimal(f"1e{sign}{exponent}", "x") == Decimal(f"1e{sign}{exponent}")
        with pytest.raises(BadNumber):
            parse_decimal(f"1e{sign}{exponent + 1}", "x")
