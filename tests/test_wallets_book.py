"""The wallet book the router sizes orders against: balances from the wallet files, caps, venues."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from engine.modes import Settings, resolve_settings
from engine.wallet_book import LedgerWallets
from engine.wallets.runtime import load_view
from tests.test_wallets_support import Clock, manager


def wallet_book(settings: Settings) -> LedgerWallets:
    """The router's view as a command opens it: the wallet files, read without writing."""
    return LedgerWallets(load_view(settings.config, settings.data_dir), settings.config.finance)


def test_the_book_reads_the_allocation_then_the_runtime_state(workdir: Path) -> None:
    settings = resolve_settings({}, workdir)
    book = wallet_book(settings)
    assert book.balance("cex_binance") == Decimal(20)
    assert book.cap("cex_binance") == Decimal(30)  # risk_wallets.cex_binance.max_usd
    assert book.cap("reserve") is None
    assert not (workdir / "data").exists()  # reading writes nothing

    m = manager(settings.data_dir, Clock())
    m.on_trade_closed("cex_binance", Decimal(-5), Decimal(0), trade_id="A")
    m.close()
    assert wallet_book(settings).balance("cex_binance") == Decimal(15)


def test_the_book_says_which_wallet_may_trade_on_which_venue(workdir: Path) -> None:
    book = wallet_book(resolve_settings({}, workdir))
    assert book.venue_problem("cex_binance", "binance") is None
    assert book.venue_problem("cex_okx", "okx") is None
    problem = book.venue_problem("cex_okx", "binance")
    assert problem is not None and "wallet cex_okx trades on okx, not on binance" in problem
    problem = book.venue_problem("vault", "binance")
    assert problem is not None and "may not trade" in problem
    solana = book.venue_problem("sniper_sol", "binance")
    assert solana is not None and "trades on the Solana DEX venue" in solana
