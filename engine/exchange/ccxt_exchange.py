"""``CcxtExchange``: one adapter over ccxt for binance, bybit and okx.

- ccxt is imported lazily, inside the adapter: importing this module never loads it, so paper mode
  never pays for it (tests/test_layering.py).
- Testnet through ccxt's sandbox mode; live only through :meth:`CcxtExchange.from_settings`, which
  runs the live gate (:func:`engine.modes.require_gate`) first. Paper mode is not this class's
  business (:class:`engine.exchange.paper.PaperExchange`).
- A base-URL override (``KOBE_EXCHANGE_URL`` / ``exchange.api_url``) replaces the scheme and host of
  every REST URL ccxt knows for the exchange, applied *after* ``set_sandbox_mode`` (which would undo
  it). Checked end to end for Binance spot against ``tests/binance_sim.py``.
- No rounding at send time: the router rounds once, from the market's step and tick, for every
  venue; a quantity off the step or a price off the tick is refused here (:class:`InvalidOrder`,
  as Binance's -1013), never truncated silently. ccxt's ``amount_to_precision`` /
  ``price_to_precision`` stay available as helpers. Market rules from ccxt's market data; every
  result typed with ``Decimal`` fields; every ccxt error mapped onto the hierarchy of
  :mod:`engine.exchange.base`.
- ccxt's rate limiter stays on; ccxt's own retries (``maxRetriesOnFailure``) stay off: retries live
  in :mod:`engine.exchange.retry`, which never re-sends an order blindly.
- Keys are :class:`engine.secrets.Secret` values, revealed only when handed to ccxt; error
  messages are redacted by value before they leave the adapter.
"""

from __future__ import annotations

import contextlib
import decimal
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from engine.config import EXCHANGES, Mode, check_api_url
from engine.exchange.base import (
    AuthenticationError,
    Capabilities,
    Exchange,
    ExchangeError,
    ExchangeUnavailable,
    Fill,
    InsufficientFunds,
    InvalidOrder,
    MarketRules,
    NetworkError,
    NotSupported,
    OcoResult,
    Order,
    OrderNotFound,
    OrderStatus,
    OrderType,
    Position,
    RateLimited,
    ReadOnlyExchange,
    RequestTimeout,
    Side,
    Ticker,
    check_precision,
    stop_limit_price,
)
from engine.exchange.retry import (
    RetryPolicy,
    UnknownHook,
    call_with_retries,
    place_order_once,
)
from engine.modes import GateClosed, Settings, require_gate
from engine.secrets import Secret, redact, register_secret_values
from engine.untrusted import BadNumber, clean_message, parse_decimal

log = logging.getLogger(__name__)

T = TypeVar("T")

ZERO = Decimal(0)

# Exchange error codes mapped by code where ccxt falls back to a plain ExchangeError (Binance with a
# custom base URL; Bybit's system error, which its docs say to retry).
BINANCE_CODES: dict[int, type[ExchangeError]] = {
    -1003: RateLimited,  # too many requests
    -1013: InvalidOrder,  # filter failure (LOT_SIZE, PRICE_FILTER, NOTIONAL)
    -1111: InvalidOrder,  # precision over the maximum
    -1121: InvalidOrder,  # invalid symbol
    -2010: InsufficientFunds,  # new order rejected (insufficient balance)
    -2011: OrderNotFound,  # cancel rejected: unknown order
    -2013: OrderNotFound,  # order does not exist
    -2014: AuthenticationError,  # API-key format invalid
    -2015: AuthenticationError,  # invalid API-key, IP, or permissions
    -1022: AuthenticationError,  # signature not valid
    -1001: ExchangeUnavailable,  # internal error: disconnected
    -1007: ExchangeUnavailable,  # timeout waiting for the backend: outcome unknown
}
EXCHANGE_CODES: dict[str, dict[int, type[ExchangeError]]] = {
    "binance": BINANCE_CODES,
    "bybit": {10016: ExchangeUnavailable},  # "System error. Please try again later."
    "okx": {},
}

# The exchange's own code and words in an error body: OKX's per-order sCode/sMsg first (its
# top-level msg only says "All operations failed"), then Bybit's retCode/retMsg, then code/msg.
_CODE_RES = tuple(re.compile(rf'"{name}"\s*:\s*"?(-?\d+)') for name in ("sCode", "retCode", "code"))
_MSG_RES = tuple(
    re.compile(rf'"{name}"\s*:\s*"((?:[^"\\]|\\.)+)"') for name in ("sMsg", "retMsg", "msg")
)
_STATUS_RE = re.compile(r"\b(418|429)\b")

STATUS_MAP = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}

CAPABILITIES = {
    "binance": Capabilities(native_oco=True, attached_tp_sl=False),
    # Bybit v5: "Spot Limit order supports take profit, stop loss" (ccxt refuses a market one)
    "bybit": Capabilities(native_oco=False, attached_tp_sl=True, attached_on_market=False),
    "okx": Capabilities(native_oco=False, attached_tp_sl=True),
}

# Bybit: the TP/SL orders it made from an entry's attached prices, and where they are listed
BYBIT_ROLES = {"TakeProfit": "tp", "StopLoss": "sl"}
TPSL_FILTER = {"orderFilter": "tpslOrder"}

# The exchange's own name for the client order id, where ccxt wants it raw.
CLIENT_ID_PARAM = {"binance": "origClientOrderId", "bybit": "orderLinkId", "okx": "clOrdId"}

# A token only from_settings hands out, after the live gate passed.
_LIVE_GATE_PASSED = object()


def _dec(value: Any) -> Decimal | None:
    """A Decimal from what ccxt returns (str, int or float; never through binary), through the
    one bounded parser for outside numbers. A value that is not a plain, finite, bounded number
    fails the call (ExchangeError) rather than becoming zero."""
    if value is None or value == "":
        return None
    try:
        return parse_decimal(value, "exchange reply")
    except BadNumber as exc:
        raise ExchangeError(f"the exchange answered a number Kobe refuses: {exc}") from None


def _dec0(value: Any) -> Decimal:
    found = _dec(value)
    return ZERO if found is None else found


def _wire(value: Decimal) -> str:
    """A decimal as sent: plain digits, never an exponent."""
    return format(value, "f")


def _utc_ms(value: Any) -> datetime:
    if isinstance(value, int | float) and value > 0:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    return datetime.now(UTC)


def new_client_id() -> str:
    """A client order id every venue accepts (alphanumeric, at most 32 characters)."""
    return "kobe" + uuid.uuid4().hex[:24]


def rewrite_base_url(url: str, base: str) -> str:
    """``url`` with its scheme and host replaced by ``base``'s (its path is kept)."""
    target = urlsplit(base)
    parts = urlsplit(url)
    return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, parts.fragment))


def _first(patterns: tuple[re.Pattern[str], ...], message: str) -> str | None:
    for pattern in patterns:
        found = pattern.search(message)
        if found:
            return found.group(1)
    return None


def _exchange_code(message: str) -> int | None:
    code = _first(_CODE_RES, message)
    return None if code is None else int(code)


def _exchange_reason(message: str) -> str:
    """The exchange's own words from a ccxt message (message and code of a JSON body)."""
    text = _first(_MSG_RES, message)
    if text is None:
        return message
    code = _exchange_code(message)
    return f"{text} ({code})" if code is not None else text


class CcxtExchange(Exchange):
    """The :class:`Exchange` interface over a ccxt exchange (binance, bybit, okx), spot."""

    def __init__(
        self,
        exchange_id: str,
        *,
        api_key: Secret | None = None,
        secret: Secret | None = None,
        password: Secret | None = None,
        sandbox: bool = True,
        api_url: str = "",
        timeout_ms: int = 10_000,
        retry: RetryPolicy | None = None,
        on_unknown: UnknownHook | None = None,
        quote_asset: str = "USDT",
        client_ids: Callable[[], str] = new_client_id,
        epoch_s: Callable[[], float] = time.time,  # the wall clock, for an exchange's reset time
        ccxt_config: Mapping[str, Any] | None = None,
        read_only: bool = False,
        _live: object | None = None,
    ) -> None:
        if exchange_id not in EXCHANGES:
            raise ValueError(
                f"exchange must be one of {', '.join(EXCHANGES)} (got {exchange_id!r})"
            )
        if not sandbox and _live is not _LIVE_GATE_PASSED:
            raise GateClosed(
                Mode.LIVE,
                ["live trading goes through CcxtExchange.from_settings (the live gate)"],
            )
        if not sandbox and api_url:
            raise GateClosed(Mode.LIVE, ["KOBE_EXCHANGE_URL / exchange.api_url is refused in live"])
        if api_url:
            check_api_url(api_url)  # loopback only: the keys go wherever it points (ValueError)
        self.name = exchange_id
        self.sandbox = sandbox
        self.api_url = api_url
        self.retry = retry or RetryPolicy()
        self.on_unknown = on_unknown
        self.quote_asset = quote_asset
        self._client_ids = client_ids
        self._epoch_s = epoch_s
        self._rules: dict[str, MarketRules] | None = None
        self._lock = threading.RLock()
        self._algos: dict[str, tuple[str, dict[str, Decimal]]] = {}  # OKX: entry id -> TP/SL algo

        import ccxt  # lazily: paper mode never imports ccxt

        self._ccxt: Any = ccxt
        keys = [s for s in (api_key, secret, password) if s is not None]
        register_secret_values(s.get_secret_value() for s in keys)
        config: dict[str, Any] = {
            "enableRateLimit": True,
            "timeout": timeout_ms,
            "options": self._options(exchange_id),
        }
        if api_key is not None:
            config["apiKey"] = api_key.get_secret_value()
        if secret is not None:
            config["secret"] = secret.get_secret_value()
        if password is not None:
            config["password"] = password.get_secret_value()
        for key, value in (ccxt_config or {}).items():
            if key == "options":
                config["options"] = {**config["options"], **value}
            else:
                config[key] = value
        config["enableRateLimit"] = True  # ccxt's pacing stays on, whatever the caller passed
        self._ex: Any = getattr(ccxt, exchange_id)(config)
        self._ex.options["maxRetriesOnFailure"] = 0  # our layer retries; ccxt's would re-send
        # ccxt's load_markets asks for currencies whenever ``has`` says it can, whatever
        # ``options['fetchCurrencies']`` says (a private call on Bybit and OKX, which a trade-only
        # key is refused): Kobe never uses them
        self._ex.has = {**self._ex.has, "fetchCurrencies": False}
        live_urls = dict(self._ex.urls["api"])
        if sandbox:
            self._ex.set_sandbox_mode(True)
        if api_url:  # after set_sandbox_mode, which copies urls['test'] over urls['api']
            # every endpoint (also those a testnet lacks, e.g. Binance's sapi) goes to the
            # loopback simulator: none is left pointing at a real host
            self._ex.urls["api"] = {**live_urls, **self._ex.urls["api"]}
            self._override_urls(api_url)
        self.read_only = read_only
        if read_only:
            self._refuse_writes()

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        confirmed: bool,
        *,
        retry: RetryPolicy | None = None,
        on_unknown: UnknownHook | None = None,
        timeout_ms: int | None = None,
        ccxt_config: Mapping[str, Any] | None = None,
    ) -> CcxtExchange:
        """The adapter for ``settings`` (testnet or live), after the gate: raises GateClosed.

        ``confirmed`` is the operator's explicit live confirmation (``--confirm-live``, the
        cockpit's unlock). Paper mode has no ccxt exchange: ValueError.
        """
        return cls._through_gate(
            settings,
            confirmed,
            retry=retry,
            on_unknown=on_unknown,
            timeout_ms=timeout_ms,
            ccxt_config=ccxt_config,
            read_only=False,
        )

    @classmethod
    def reader_from_settings(
        cls,
        settings: Settings,
        *,
        retry: RetryPolicy | None = None,
        timeout_ms: int | None = None,
        ccxt_config: Mapping[str, Any] | None = None,
    ) -> ReadOnlyExchange:
        """A client for ``settings`` that can only read: what read-only commands hold.

        Every condition of the gate applies except the operator's live confirmation, which is
        for sending. The ccxt client inside refuses any request but GET at its HTTP layer, and
        the object handed out has no create or cancel method at all.
        """
        return ReadOnlyExchange(
            cls._through_gate(
                settings,
                True,
                retry=retry,
                on_unknown=None,
                timeout_ms=timeout_ms,
                ccxt_config=ccxt_config,
                read_only=True,
            )
        )

    @classmethod
    def _through_gate(
        cls,
        settings: Settings,
        confirmed: bool,
        *,
        retry: RetryPolicy | None,
        on_unknown: UnknownHook | None,
        timeout_ms: int | None,
        ccxt_config: Mapping[str, Any] | None,
        read_only: bool,
    ) -> CcxtExchange:
        if settings.mode is Mode.PAPER:
            raise ValueError("paper mode trades on the paper exchange, not through ccxt")
        require_gate(settings, confirmed)
        names = settings.key_vars
        key, secret = settings.secrets.get(names[0]), settings.secrets.get(names[1])
        password = settings.secrets.get(names[2]) if len(names) > 2 else None
        live = settings.mode is Mode.LIVE
        return cls(
            settings.exchange,
            api_key=key,
            secret=secret,
            password=password,
            sandbox=not live,
            api_url=settings.api_url,
            timeout_ms=timeout_ms or settings.config.exchange.timeout_ms,
            retry=retry,
            on_unknown=on_unknown,
            quote_asset=settings.config.paper.quote_asset,
            ccxt_config=ccxt_config,
            read_only=read_only,
            _live=_LIVE_GATE_PASSED if live else None,
        )

    def _refuse_writes(self) -> None:
        """Make the ccxt client unable to send anything but GET (reads), at its HTTP layer."""
        fetch = self._ex.fetch
        name = self.name

        def get_only(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
            if str(method).upper() != "GET":
                raise NotSupported(f"{name}: read-only client: {method} refused, nothing sent")
            return fetch(url, method, headers, body)

        self._ex.fetch = get_only

    @staticmethod
    def _options(exchange_id: str) -> dict[str, Any]:
        options: dict[str, Any] = {
            "defaultType": "spot",
            "adjustForTimeDifference": True,  # clock drift: ccxt offsets its timestamps
            "maxRetriesOnFailure": 0,
        }
        if exchange_id == "binance":
            options.update(
                {
                    "fetchMarkets": {"types": ["spot"]},
                    "fetchCurrencies": False,
                    "fetchMargins": False,
                    "fetchOpenOrders": {"warnWithoutSymbol": False},
                    "newOrderRespType": {"market": "FULL", "limit": "FULL"},
                }
            )
        else:  # bybit, okx
            options.update({"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False})
        if exchange_id == "okx":
            # one order, one POST /api/v5/trade/order (ccxt's default is a batch of one)
            options["createOrder"] = "privatePostTradeOrder"
        return options

    def _override_urls(self, base: str) -> None:
        """Point every REST URL in ``urls['api']`` at ``base``, keeping each URL's path."""

        def rewrite(node: Any) -> Any:
            if isinstance(node, str):
                return rewrite_base_url(self._ex.implode_hostname(node), base)
            if isinstance(node, dict):
                return {k: rewrite(v) for k, v in node.items()}
            return node

        self._ex.urls["api"] = rewrite(self._ex.urls["api"])

    def __repr__(self) -> str:
        where = "testnet" if self.sandbox else "live"
        return f"CcxtExchange({self.name}, {where}{', ' + self.api_url if self.api_url else ''})"

    @property
    def ccxt(self) -> Any:
        """The underlying ccxt exchange (for diagnostics and tests; never for trading)."""
        return self._ex

    # -- error mapping --------------------------------------------------------------------------

    def _retry_after(self) -> float | None:
        """The exchange's retry hint, in seconds: ``Retry-After`` (Binance), or Bybit's
        ``X-Bapi-Limit-Reset-Timestamp`` (when the limit resets, in epoch milliseconds)."""
        headers = getattr(self._ex, "last_response_headers", None) or {}
        try:
            found = {str(k).lower(): v for k, v in headers.items()}
        except AttributeError:
            return None
        try:
            if "retry-after" in found:
                return max(0.0, float(found["retry-after"]))
            if "x-bapi-limit-reset-timestamp" in found:
                reset_ms = float(found["x-bapi-limit-reset-timestamp"])
                return max(0.0, reset_ms / 1000 - self._epoch_s())
        except (TypeError, ValueError):
            return None
        return None

    def _map_error(self, exc: Exception) -> ExchangeError:
        ccxt = self._ccxt
        message = clean_message(redact(str(exc)))  # the exchange's words are data
        reason = _exchange_reason(message)
        code = _exchange_code(message)
        if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
            if code in (-2015, -2014, -1022):  # ccxt calls a later -2015 a ban; it is the key
                return AuthenticationError(f"{self.name}: {reason}")
            found = _STATUS_RE.search(message)
            status = found.group(1) if found else None
            banned = status == "418"
            wait = self._retry_after()
            what = {"418": "IP banned (418)", "429": "rate limited (429)"}.get(
                status or "", "rate limited"
            )
            said = f": {reason}" if _first(_MSG_RES, message) else ""
            after = f", Retry-After {wait:g}s" if wait is not None else ""
            return RateLimited(f"{self.name}: {what}{said}{after}", retry_after=wait, banned=banned)
        if isinstance(exc, ccxt.RequestTimeout):
            return RequestTimeout(f"{self.name}: request timed out ({message})")
        if isinstance(exc, ccxt.ExchangeNotAvailable):
            return ExchangeUnavailable(f"{self.name}: exchange unavailable ({message})")
        if isinstance(exc, ccxt.InvalidNonce):
            return ExchangeError(f"{self.name}: clock out of sync with the exchange: {reason}")
        if isinstance(exc, ccxt.NetworkError):
            return NetworkError(f"{self.name}: network error ({message})")
        if isinstance(exc, ccxt.AuthenticationError):
            return AuthenticationError(f"{self.name}: authentication failed: {reason}")
        if isinstance(exc, ccxt.InsufficientFunds):
            return InsufficientFunds(f"{self.name}: insufficient funds: {reason}")
        if isinstance(exc, ccxt.OrderNotFound):
            return OrderNotFound(f"{self.name}: order not found: {reason}")
        if isinstance(exc, ccxt.NotSupported):
            return NotSupported(f"{self.name}: {reason}")
        if isinstance(exc, ccxt.InvalidOrder | ccxt.BadRequest | ccxt.BadSymbol):
            return InvalidOrder(f"{self.name}: {reason}")
        kind = EXCHANGE_CODES[self.name].get(code) if code is not None else None
        if kind is not None:
            if kind is InvalidOrder:
                return InvalidOrder(f"{self.name}: {reason}")
            if kind is RateLimited:
                return RateLimited(f"{self.name}: {reason}", retry_after=self._retry_after())
            return kind(f"{self.name}: {reason}")
        if isinstance(exc, ccxt.OperationFailed):  # ccxt's transient kind (e.g. a JSON 5xx)
            return ExchangeUnavailable(f"{self.name}: exchange unavailable ({message})")
        return ExchangeError(f"{self.name}: {reason}")

    def _raw(self, fn: Callable[[], T]) -> T:
        """Call ccxt once; ccxt's errors become ours (redacted, with the exchange's reason).

        One call at a time (a ccxt instance and its HTTP session are not thread-safe); the lock is
        not held during retry sleeps.
        """
        # ccxt's precision helpers change the thread's decimal context (rounding, traps): a
        # local copy keeps that from leaking into the engine's own arithmetic
        with self._lock, decimal.localcontext():
            try:
                return fn()
            except self._ccxt.BaseError as exc:
                raise self._map_error(exc) from None

    def _read(self, fn: Callable[[], T], what: str) -> T:
        """Call ccxt, retrying transient errors under the read policy."""
        return call_with_retries(lambda: self._raw(fn), f"{self.name} {what}", self.retry)

    # -- markets --------------------------------------------------------------------------------

    def load_markets(self) -> dict[str, MarketRules]:
        if self._rules is None:
            markets: dict[str, Any] = self._read(self._ex.load_markets, "load markets")
            self._rules = {
                symbol: self._rules_of(m) for symbol, m in markets.items() if m.get("spot", True)
            }
        return self._rules

    def _rules_of(self, m: Mapping[str, Any]) -> MarketRules:
        precision = m.get("precision") or {}
        limits = m.get("limits") or {}
        amount = limits.get("amount") or {}
        cost = limits.get("cost") or {}

        def increment(value: Any) -> Decimal:
            found = _dec(value)
            if found is None:
                return ZERO
            if self._ex.precisionMode == self._ccxt.TICK_SIZE:
                return found
            return Decimal(1).scaleb(-int(found))  # decimal places

        step = increment(precision.get("amount"))
        return MarketRules(
            symbol=m["symbol"],
            base=m["base"],
            quote=m["quote"],
            tick_size=increment(precision.get("price")),
            step_size=step,
            min_qty=_dec(amount.get("min")) or step,
            min_notional=_dec0(cost.get("min")),
            max_qty=_dec(amount.get("max")),
            spot=bool(m.get("spot", True)),
        )

    def capabilities(self, symbol: str) -> Capabilities:
        return CAPABILITIES[self.name]

    def amount_to_precision(self, symbol: str, qty: Decimal) -> Decimal:
        self.load_markets()
        return Decimal(self._raw(lambda: self._ex.amount_to_precision(symbol, str(qty))))

    def price_to_precision(self, symbol: str, price: Decimal) -> Decimal:
        self.load_markets()
        return Decimal(self._raw(lambda: self._ex.price_to_precision(symbol, str(price))))

    # -- reads ----------------------------------------------------------------------------------

    def can_withdraw(self) -> bool | None:
        """Whether the API key may withdraw funds; None when the exchange does not say here.

        Binance reports it in the key's restrictions (``GET /sapi/v1/account/apiRestrictions``,
        ``enableWithdrawals``); its testnet has no such endpoint.
        """
        if self.name != "binance":
            return None
        try:
            data = self._read(self._ex.sapi_get_account_apirestrictions, "API-key restrictions")
        except NotSupported:
            return None
        value = data.get("enableWithdrawals") if isinstance(data, dict) else None
        return value is True or str(value).lower() == "true"

    def ping(self) -> float:
        start = time.perf_counter()
        self._read(self._ex.fetch_time, "ping")
        return (time.perf_counter() - start) * 1000

    def fetch_time(self) -> datetime:
        """The exchange's clock."""
        return _utc_ms(self._read(self._ex.fetch_time, "fetch time"))

    def get_balance(self, asset: str) -> Decimal:
        balance: dict[str, Any] = self._read(self._ex.fetch_balance, "fetch balance")
        return _dec0((balance.get(asset) or {}).get("free"))

    def _totals(self) -> dict[str, Decimal]:
        balance: dict[str, Any] = self._read(self._ex.fetch_balance, "fetch balance")
        totals = balance.get("total") or {}
        return {asset: _dec0(v) for asset, v in totals.items()}

    def fetch_ticker(self, symbol: str) -> Ticker:
        self.load_markets()
        t: dict[str, Any] = self._read(lambda: self._ex.fetch_ticker(symbol), "fetch ticker")
        last = _dec(t.get("last")) or _dec(t.get("close"))
        if last is None:
            raise ExchangeError(f"{self.name}: no last price for {symbol}")
        return Ticker(
            symbol=symbol,
            last=last,
            bid=_dec(t.get("bid")),
            ask=_dec(t.get("ask")),
            time=_utc_ms(t.get("timestamp")),
        )

    def fetch_positions(self, symbol: str | None = None) -> list[Position]:
        """Spot: the base asset held per symbol (free + locked); no entry price from the venue."""
        rules = self.load_markets()
        totals = self._totals()
        if symbol is not None:
            market = self.market(symbol)
            qty = totals.get(market.base, ZERO)
            return [Position(symbol, qty, None)] if qty > 0 else []
        positions = []
        for asset, qty in sorted(totals.items()):
            pair = f"{asset}/{self.quote_asset}"
            if qty > 0 and pair in rules:
                positions.append(Position(pair, qty, None))
        return positions

    def fetch_order(self, id: str, symbol: str) -> Order:
        self.load_markets()
        return self._read(lambda: self._fetch_order_raw(id, symbol), f"fetch order {id}")

    def _fetch_order_raw(self, id: str, symbol: str) -> Order:
        if id.isdigit():
            order = self._to_order(self._find_raw(symbol, order_id=id))
        else:  # our client id
            order = self._to_order(self._find_raw(symbol, client_id=id), id)
        return self._with_fees(order)

    def _find_raw(self, symbol: str, *, order_id: str = "", client_id: str = "") -> Any:
        """One order by exchange id or client id, the cheapest way the exchange offers.

        Binance and OKX look an order up by either id in one call (ccxt's ``fetch_order``). Bybit
        v5 has no single-order call for a unified account: its open orders
        (``/v5/order/realtime``), then its closed ones (``/v5/order/history``), filtered by
        ``orderId`` or ``orderLinkId``. Not found: OrderNotFound.
        """
        if self.name == "bybit":
            key = {"orderId": order_id} if order_id else {"orderLinkId": client_id}
            for name in ("fetch_open_orders", "fetch_canceled_and_closed_orders"):
                fetch: Callable[..., list[Any]] = getattr(self._ex, name)
                found = self._raw(partial(fetch, symbol, None, None, dict(key)))
                if found:
                    return found[0]
            raise OrderNotFound(f"{self.name}: order {order_id or client_id} not found")
        if order_id:
            return self._raw(lambda: self._ex.fetch_order(order_id, symbol))
        return self._raw(lambda: self._ex.fetch_order(None, symbol, {"clientOrderId": client_id}))

    def _with_fees(self, order: Order) -> Order:
        """An order that filled but whose reply names no fee (an order look-up: Binance's has
        no fills) gets its fees from the order's own trades, as charged (asset and amount)."""
        if order.filled <= 0 or order.fee_asset or order.fills:
            return order
        trades: list[Any] = self._raw(lambda: self._ex.fetch_order_trades(order.id, order.symbol))
        fills = tuple(
            Fill(
                order_id=order.id,
                client_id=order.client_id,
                symbol=order.symbol,
                side=order.side,
                qty=_dec0(t.get("amount")),
                price=_dec0(t.get("price")),
                fee=_dec0((t.get("fee") or {}).get("cost")),
                fee_asset=str((t.get("fee") or {}).get("currency") or ""),
                time=_utc_ms(t.get("timestamp")),
            )
            for t in trades
        )
        if not fills:
            return order
        assets = {f.fee_asset for f in fills if f.fee_asset}
        if len(assets) > 1:
            log.warning("order %s: fees in several assets %s", order.id, sorted(assets))
        asset = next(iter(sorted(assets)), "")
        fee = sum((f.fee for f in fills if f.fee_asset == asset), ZERO)
        return replace(order, fee=fee, fee_asset=asset, fills=fills)

    def _by_client_id_raw(self, client_id: str, symbol: str) -> Order | None:
        try:
            data = self._find_raw(symbol, client_id=client_id)
        except OrderNotFound:
            return None
        return self._with_fees(self._to_order(data, client_id))

    def _settled(self, data: Any, symbol: str) -> Any:
        """A write's answer with its order's state: Bybit and OKX answer only the ids."""
        if data.get("status") is not None and data.get("side") is not None:
            return data
        return self._find_raw(symbol, order_id=str(data.get("id")))

    def fetch_order_by_client_id(self, client_id: str, symbol: str) -> Order | None:
        self.load_markets()
        return self._read(
            lambda: self._by_client_id_raw(client_id, symbol), f"look up order {client_id}"
        )

    def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        self.load_markets()
        data: list[Any] = self._read(
            lambda: self._ex.fetch_open_orders(symbol), "fetch open orders"
        )
        return [self._to_order(o) for o in data]

    def fetch_attached_exits(self, symbol: str, entry_id: str, entry_client_id: str) -> list[Order]:
        """The TP/SL attached to one entry, linked by the entry's own ids, as Kobe's orders.

        Bybit names the entry's ``orderLinkId`` on each TP/SL order it made from it
        (``parentOrderLinkId``): armed ones are listed under ``orderFilter=tpslOrder``, fired or
        deactivated ones in the order history. OKX gives the entry its TP/SL algo's id
        (``attachAlgoOrds[].attachAlgoId``): armed, it is a pending algo with that ``algoId``;
        fired, the order it placed carries that ``algoId``, and the other leg went with it. The
        history is read only when an armed leg is missing.
        """
        if not self.capabilities(symbol).attached_tp_sl:
            return []
        self.load_markets()
        return self._read(
            lambda: self._attached_raw(symbol, entry_id, entry_client_id),
            f"look up the exits of {entry_client_id}",
        )

    def _attached_raw(self, symbol: str, entry_id: str, entry_cid: str) -> list[Order]:
        legs: dict[str, Order] = {}
        if self.name == "bybit":
            for armed in (True, False):
                if armed:
                    rows = self._raw(
                        partial(self._ex.fetch_open_orders, symbol, None, None, TPSL_FILTER)
                    )
                elif {"tp", "sl"} <= set(legs):
                    break
                else:
                    rows = self._raw(
                        partial(self._ex.fetch_canceled_and_closed_orders, symbol, None, None, {})
                    )
                for raw in rows:
                    info = raw.get("info") or {}
                    role = BYBIT_ROLES.get(str(info.get("stopOrderType")))
                    if role and info.get("parentOrderLinkId") == entry_cid and role not in legs:
                        legs[role] = self._leg(raw, f"{entry_cid}{role}")
            return [legs[r] for r in sorted(legs)]
        algo = self._attached_algo(symbol, entry_id)
        if algo is None:
            return []
        algo_id, triggers = algo
        params = {"trigger": True, "ordType": "conditional,oco", "algoId": algo_id}
        for raw in self._raw(partial(self._ex.fetch_open_orders, symbol, None, None, params)):
            if (raw.get("info") or {}).get("algoId") == algo_id:
                order = self._to_order(raw)
                return [
                    replace(order, client_id=f"{entry_cid}{role}", type=OrderType.MARKET,
                            price=None, stop_price=trigger)
                    for role, trigger in sorted(triggers.items())
                ]  # fmt: skip
        history = self._raw(partial(self._ex.fetch_closed_orders, symbol, None, None, {}))
        for raw in history:
            if (raw.get("info") or {}).get("algoId") != algo_id:
                continue
            fired = self._to_order(raw)
            paid = fired.avg_price or ZERO
            role = min(triggers, key=lambda r: abs(triggers[r] - paid))  # the leg it fired at
            for leg, trigger in sorted(triggers.items()):
                if leg == role:
                    legs[leg] = self._with_fees(
                        replace(fired, client_id=f"{entry_cid}{leg}", stop_price=trigger)
                    )
                else:  # OKX removes the other leg with the fire: it never had an order
                    legs[leg] = replace(
                        fired, client_id=f"{entry_cid}{leg}", status=OrderStatus.CANCELED,
                        filled=ZERO, avg_price=None, fee=ZERO, fee_asset="", fills=(),
                        stop_price=trigger,
                    )  # fmt: skip
            break
        return [legs[r] for r in sorted(legs)]

    def _leg(self, raw: Mapping[str, Any], client_id: str) -> Order:
        order = self._to_order(raw, client_id)
        return self._with_fees(replace(order, client_id=client_id, type=OrderType.MARKET))

    def _attached_algo(self, symbol: str, entry_id: str) -> tuple[str, dict[str, Decimal]] | None:
        """OKX: the id of the TP/SL algo the entry was given, and its triggers (read once)."""
        known = self._algos.get(entry_id)
        if known is None:
            info = self._find_raw(symbol, order_id=entry_id).get("info") or {}
            for attached in info.get("attachAlgoOrds") or []:
                triggers = {
                    role: price
                    for role, key in (("tp", "tpTriggerPx"), ("sl", "slTriggerPx"))
                    if (price := _dec(attached.get(key))) is not None
                }
                if attached.get("attachAlgoId") and triggers:
                    known = (str(attached["attachAlgoId"]), triggers)
                    self._algos[entry_id] = known
                    break
        return known

    # -- writes ---------------------------------------------------------------------------------

    def create_order(
        self,
        symbol: str,
        side: Side,
        type: OrderType,
        qty: Decimal,
        price: Decimal | None = None,
        params: dict[str, Any] | None = None,
    ) -> Order:
        self.load_markets()
        extra = dict(params or {})
        client_id = str(extra.pop("client_id", "") or self._client_ids())
        take_profit = extra.pop("take_profit", None)
        stop_loss = extra.pop("stop_loss", None)
        if extra:
            raise InvalidOrder(f"unknown order parameter(s): {', '.join(sorted(extra))}")
        side, type = Side(side), OrderType(type)
        if (take_profit is not None or stop_loss is not None) and not self.capabilities(
            symbol
        ).attached_tp_sl:
            raise NotSupported(f"{self.name}: no TP/SL attached to an order here")
        if type not in (OrderType.MARKET, OrderType.LIMIT):
            raise NotSupported(f"{self.name}: create_order takes market or limit (got {type})")
        if type is OrderType.LIMIT and price is None:
            raise InvalidOrder("a limit order needs a price")
        amount = Decimal(qty)
        limit = Decimal(price) if type is OrderType.LIMIT and price is not None else None
        attached = tuple(Decimal(p) for p in (take_profit, stop_loss) if p is not None)
        prices = (limit, *attached) if limit is not None else attached
        check_precision(self.market(symbol), amount, prices)
        if take_profit is not None:
            # ccxt's unified params: it builds Bybit's takeProfit / OKX's attachAlgoOrds
            extra["takeProfit"] = {"triggerPrice": _wire(Decimal(take_profit))}
        if stop_loss is not None:
            extra["stopLoss"] = {"triggerPrice": _wire(Decimal(stop_loss))}

        def send() -> Order:
            request = {**extra, "clientOrderId": client_id}
            try:
                data = self._raw(
                    lambda: self._ex.create_order(
                        symbol,
                        type.value,
                        side.value,
                        _wire(amount),
                        None if limit is None else _wire(limit),
                        request,
                    )
                )
                try:
                    data = self._settled(data, symbol)
                except ExchangeError as exc:  # placed, its state not read: look it up
                    raise ExchangeUnavailable(
                        f"{self.name}: placed; reading it failed: {exc}"
                    ) from exc
            except (InvalidOrder, InsufficientFunds) as exc:
                # A re-send refused as a duplicate of our own client id: the first one is there
                # (Binance "Duplicate order sent.", Bybit 170141, OKX 51016).
                if "duplicate" not in str(exc).lower():
                    raise
                found = self._by_client_id_raw(client_id, symbol)
                if found is None:
                    raise
                return found
            return self._to_order(data, client_id)

        return place_order_once(
            send,
            lambda: self._by_client_id_raw(client_id, symbol),
            client_id,
            self.retry,
            self.on_unknown,
            f"{self.name} {side.value} {amount} {symbol}",
        )

    def create_oco(
        self,
        symbol: str,
        side: Side,
        qty: Decimal,
        take_profit: Decimal,
        stop_loss: Decimal,
        params: dict[str, Any] | None = None,
    ) -> OcoResult:
        """Binance's native OCO (``POST /api/v3/orderList/oco``), placed once like any order.

        ``params``: ``client_id`` (the list's client id), ``tp_client_id`` / ``sl_client_id``
        (the legs'; default the list's id plus ``t`` / ``s``), ``stop_limit_price`` (the stop
        leg's limit; by default :func:`engine.exchange.base.stop_limit_price`, as on paper). Any
        other key is refused, never sent. Quantity and prices must already be on the step and
        tick (:class:`InvalidOrder` otherwise, nothing sent).
        """
        if not self.capabilities(symbol).native_oco:
            raise NotSupported(
                f"{self.name} has no native OCO: attach TP/SL to the entry, or watch locally"
            )
        self.load_markets()
        extra = dict(params or {})
        base_id = str(extra.pop("client_id", "") or self._client_ids())[:30]
        tp_id = str(extra.pop("tp_client_id", "") or base_id + "t")
        sl_id = str(extra.pop("sl_client_id", "") or base_id + "s")
        raw_limit = extra.pop("stop_limit_price", None)
        if extra:  # never sign and send a field the exchange does not know
            raise InvalidOrder(f"unknown OCO parameter(s): {', '.join(sorted(extra))}")
        side = Side(side)
        rules = self.market(symbol)
        amount, tp, stop = Decimal(qty), Decimal(take_profit), Decimal(stop_loss)
        if raw_limit is None:
            stop_limit = stop_limit_price(rules, side, stop)
        else:
            stop_limit = Decimal(str(raw_limit))
        check_precision(rules, amount, (tp, stop, stop_limit))
        market = self._ex.market(symbol)
        tp_leg = {"Type": "LIMIT_MAKER", "Price": _wire(tp), "ClientOrderId": tp_id}
        sl_leg = {
            "Type": "STOP_LOSS_LIMIT",
            "Price": _wire(stop_limit),
            "StopPrice": _wire(stop),
            "TimeInForce": "GTC",
            "ClientOrderId": sl_id,
        }
        above, below = (tp_leg, sl_leg) if side is Side.SELL else (sl_leg, tp_leg)
        request: dict[str, Any] = {
            "symbol": market["id"],
            "side": side.value.upper(),
            "quantity": _wire(amount),
            "listClientOrderId": base_id,
            "newOrderRespType": "FULL",
            **{"above" + k: v for k, v in above.items()},
            **{"below" + k: v for k, v in below.items()},
        }

        def send() -> OcoResult:
            data = self._raw(lambda: self._ex.private_post_orderlist_oco(request))
            reports = {str(r.get("clientOrderId")): r for r in data.get("orderReports", [])}
            orders: dict[str, Order] = {}
            with decimal.localcontext():  # ccxt's parsing may touch the decimal context
                for cid, report in reports.items():
                    orders[cid] = self._to_order(self._ex.parse_order(report, market), cid)
            if tp_id not in orders or sl_id not in orders:
                raise ExchangeError(
                    f"{self.name}: OCO answer without both legs: {clean_message(data)}"
                )
            return OcoResult(str(data.get("orderListId")), orders[tp_id], orders[sl_id])

        def lookup() -> OcoResult | None:
            tp_order = self._by_client_id_raw(tp_id, symbol)
            sl_order = self._by_client_id_raw(sl_id, symbol)
            if tp_order is None or sl_order is None:
                return None
            return OcoResult(tp_order.list_id or "", tp_order, sl_order)

        return place_order_once(
            send, lookup, base_id, self.retry, self.on_unknown, f"{self.name} OCO {symbol}"
        )

    def cancel_order(self, id: str, symbol: str) -> Order:
        """Cancel (retried: cancelling is idempotent). Already filled or gone: OrderNotFound."""
        self.load_markets()
        attempts = 0

        def cancel() -> Order:
            nonlocal attempts
            attempts += 1
            if id.isdigit():
                data = self._raw(lambda: self._ex.cancel_order(id, symbol))
            else:  # our client id
                key = CLIENT_ID_PARAM[self.name]
                data = self._raw(lambda: self._ex.cancel_order(None, symbol, {key: id}))
            return self._to_order(self._settled(data, symbol))

        try:
            return self._read(cancel, f"cancel order {id}")
        except OrderNotFound as exc:
            try:
                order = self.fetch_order(id, symbol)
            except OrderNotFound:
                raise OrderNotFound(f"{self.name}: no order {id} on {symbol}") from exc
            if order.status is OrderStatus.CANCELED and attempts > 1:
                return order  # an earlier attempt, whose answer was lost, cancelled it
            raise OrderNotFound(
                f"{self.name}: order {id} on {symbol} is already {order.status.value}; "
                "nothing to cancel"
            ) from exc

    def cancel_attached_exits(
        self, symbol: str, entry_id: str, entry_client_id: str
    ) -> list[Order]:
        """Cancel an entry's armed TP/SL: Bybit's orders under ``orderFilter=tpslOrder``, OKX's
        algo with ``cancel-algos`` (both legs are one algo there)."""
        armed = [
            leg
            for leg in self.fetch_attached_exits(symbol, entry_id, entry_client_id)
            if leg.status.is_open
        ]
        if not armed:
            raise OrderNotFound(f"{self.name}: no armed TP/SL for entry {entry_client_id}")

        def cancel() -> None:
            for leg_id in dict.fromkeys(leg.id for leg in armed):  # OKX: one algo, two legs
                params = TPSL_FILTER if self.name == "bybit" else {"trigger": True}
                # gone with its sibling, or fired meanwhile: read below
                with contextlib.suppress(OrderNotFound):
                    self._raw(partial(self._ex.cancel_order, leg_id, symbol, dict(params)))

        self._read(cancel, f"cancel the exits of {entry_client_id}")
        now = {
            leg.client_id: leg
            for leg in self.fetch_attached_exits(symbol, entry_id, entry_client_id)
        }
        return [
            now.get(leg.client_id) or replace(leg, status=OrderStatus.CANCELED) for leg in armed
        ]

    def close(self) -> None:
        session = getattr(self._ex, "session", None)
        if session is not None:
            session.close()

    # -- parsing --------------------------------------------------------------------------------

    def _order_type(self, o: Mapping[str, Any]) -> OrderType:
        info = o.get("info") or {}
        raw = str(info.get("type") or o.get("type") or "").lower()
        try:
            return OrderType(raw)
        except ValueError:
            return OrderType.MARKET if o.get("type") == "market" else OrderType.LIMIT

    def _to_order(self, o: Mapping[str, Any], client_id: str = "") -> Order:
        info = o.get("info") or {}
        qty = _dec0(o.get("amount"))
        filled = _dec0(o.get("filled"))
        status = STATUS_MAP.get(str(o.get("status")), OrderStatus.UNKNOWN)
        if status is OrderStatus.OPEN and filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        type_ = self._order_type(o)
        fee, fee_asset = ZERO, ""
        fees = o.get("fees") or ([o["fee"]] if o.get("fee") else [])
        for f in fees:
            if f and f.get("cost") is not None:
                fee += _dec0(f.get("cost"))
                fee_asset = fee_asset or str(f.get("currency") or "")
        side = Side(str(o.get("side")))
        order_id = str(o.get("id"))
        cid = str(o.get("clientOrderId") or client_id)
        fills = tuple(
            Fill(
                order_id=order_id,
                client_id=cid,
                symbol=str(o.get("symbol")),
                side=side,
                qty=_dec0(t.get("amount")),
                price=_dec0(t.get("price")),
                fee=_dec0((t.get("fee") or {}).get("cost")),
                fee_asset=str((t.get("fee") or {}).get("currency") or ""),
                time=_utc_ms(t.get("timestamp") or o.get("timestamp")),
            )
            for t in (o.get("trades") or [])
        )
        list_id = info.get("orderListId")
        return Order(
            id=order_id,
            client_id=cid,
            symbol=str(o.get("symbol")),
            side=side,
            type=type_,
            qty=qty,
            price=None if type_ is OrderType.MARKET else _dec(o.get("price")),
            filled=filled,
            avg_price=_dec(o.get("average")) if filled > 0 else None,
            status=status,
            created_at=_utc_ms(o.get("timestamp")),
            fee=fee,
            fee_asset=fee_asset,
            stop_price=_dec(o.get("triggerPrice") or o.get("stopPrice")) or None,
            list_id=None if list_id in (None, -1, "-1") else str(list_id),
            fills=fills,
        )
