"""The connection under ``CcxtExchange``: one ccxt client, built only through the gate.

- ccxt is imported lazily, inside the constructor: importing this module never loads it, so paper
  mode never pays for it (tests/test_layering.py).
- Testnet through ccxt's sandbox mode; live only through :meth:`CcxtClient.from_settings`, which
  runs the live gate (:func:`engine.modes.require_gate`) first. Paper mode is not this class's
  business (:class:`engine.exchange.paper.PaperExchange`).
- A base-URL override (``KOBE_EXCHANGE_URL`` / ``exchange.api_url``) replaces the scheme and host of
  every REST URL ccxt knows for the exchange, applied *after* ``set_sandbox_mode`` (which would undo
  it). Checked end to end for Binance spot against ``tests/binance_sim.py``.
- ccxt's rate limiter stays on; ccxt's own retries (``maxRetriesOnFailure``) stay off: retries live
  in :mod:`engine.exchange.retry`, which never re-sends an order blindly.
- Keys are :class:`engine.secrets.Secret` values, revealed only when handed to ccxt; ccxt's errors
  leave as Kobe's (:mod:`engine.exchange.ccxt_errors`), redacted by value.
- An answer Kobe cannot read (not JSON, which ccxt would pass on as text and read as "nothing";
  the wrong shape; another order than the one asked for) is :class:`BadAnswer`, never an empty
  list, a zero balance or "no such order".
- One call at a time, and the order look-ups every write and the attached exits build on.
"""

from __future__ import annotations

import decimal
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import partial
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

from engine.config import EXCHANGES, Mode, check_api_url
from engine.exchange.base import (
    BadAnswer,
    Capabilities,
    Exchange,
    ExchangeError,
    MarketRules,
    NotSupported,
    Order,
    OrderNotFound,
    ReadOnlyExchange,
)
from engine.exchange.ccxt_errors import map_error, retry_after
from engine.exchange.ccxt_parse import to_order, with_trade_fees
from engine.exchange.retry import RetryPolicy, UnknownHook, call_with_retries
from engine.modes import GateClosed, Settings, require_gate
from engine.secrets import Secret, redact, register_secret_values
from engine.untrusted import clean_text

T = TypeVar("T")

log = logging.getLogger(__name__)

# How long a signed request may take to reach the exchange and still be accepted: Binance's and
# Bybit's receive window (sent with every signed request), OKX's ``expTime`` (sent with each
# order request). An order whose outcome is unknown is sent again only once its first request
# is older than this plus a margin for the clocks (counted from when its failure came back):
# never two orders from one late request.
RECV_WINDOW_MS = 5_000
RESEND_AFTER_S = RECV_WINDOW_MS / 1000 + 2  # 2 s: Binance takes a stamp 1 s ahead of its clock

# How long after its last ``unknown`` line an entry's request may still be placed: its send
# may go on (sent again under the same client id) for the retry budget, and the last request
# lands within the receive window. Before then, "no such order" is not "never placed".
LANDING_WINDOW_S = RetryPolicy.max_total_s + RESEND_AFTER_S

CAPABILITIES = {
    "binance": Capabilities(
        native_oco=True, attached_tp_sl=False, landing_window_s=LANDING_WINDOW_S
    ),
    # Bybit v5: "Spot Limit order supports take profit, stop loss" (ccxt refuses a market one)
    "bybit": Capabilities(
        native_oco=False,
        attached_tp_sl=True,
        attached_on_market=False,
        landing_window_s=LANDING_WINDOW_S,
    ),
    "okx": Capabilities(native_oco=False, attached_tp_sl=True, landing_window_s=LANDING_WINDOW_S),
}

ORDER_PATHS = ("/trade/order", "/trade/order-algo")  # OKX: the requests that place an order

# A token only from_settings hands out, after the live gate passed.
_LIVE_GATE_PASSED = object()


def new_client_id() -> str:
    """A client order id every venue accepts (alphanumeric, at most 32 characters)."""
    return "kobe" + uuid.uuid4().hex[:24]


def rewrite_base_url(url: str, base: str) -> str:
    """``url`` with its scheme and host replaced by ``base``'s (its path is kept)."""
    target = urlsplit(base)
    parts = urlsplit(url)
    return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, parts.fragment))


class CcxtClient(Exchange):
    """One ccxt exchange (binance, bybit, okx), spot: built through the gate, called one call at
    a time with Kobe's errors, and its orders looked up by either id. Markets, reads and orders:
    :class:`engine.exchange.ccxt_exchange.CcxtExchange`."""

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
        # OKX: entry id -> its TP/SL algo's id and triggers (engine.exchange.ccxt_attached)
        self._algos: dict[str, tuple[str, dict[str, Decimal]]] = {}

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
        self._json_only()
        if exchange_id == "okx":
            self._expiring_orders()
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
    ) -> Self:
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
    ) -> Self:
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

    def _json_only(self) -> None:
        """Make the ccxt client refuse an answer that is not JSON (cut short, an HTML page): ccxt
        would hand the text on, and its parsers read text as an empty list or a zero balance."""
        fetch = self._ex.fetch
        name = self.name

        def json_only(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
            answer = fetch(url, method, headers, body)
            if not isinstance(answer, dict | list):
                text = clean_text(redact(str(answer)), 80)
                raise BadAnswer(
                    f"{name}: the answer to {method} {urlsplit(url).path} is not JSON: {text!r}"
                )
            return answer

        self._ex.fetch = json_only

    def _expiring_orders(self) -> None:
        """OKX: each order request carries ``expTime`` (the exchange refuses it once that has
        passed), so an order request is dead after the same window as Binance's and Bybit's,
        not after OKX's 30 s timestamp tolerance. ccxt does not send the header itself."""
        fetch = self._ex.fetch
        ex = self._ex

        def expiring(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
            if method == "POST" and urlsplit(url).path.endswith(ORDER_PATHS):
                headers = {**(headers or {}), "expTime": str(ex.nonce() + RECV_WINDOW_MS)}
            return fetch(url, method, headers, body)

        self._ex.fetch = expiring

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
            "recvWindow": RECV_WINDOW_MS,  # Binance, Bybit (ccxt's Binance default is 10 s)
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

    def capabilities(self, symbol: str) -> Capabilities:
        return CAPABILITIES[self.name]

    def close(self) -> None:
        session = getattr(self._ex, "session", None)
        if session is not None:
            session.close()

    # -- calls ----------------------------------------------------------------------------------

    def _retry_after(self) -> float | None:
        """The retry hint of the exchange's last answer, in seconds (:func:`retry_after`)."""
        return retry_after(getattr(self._ex, "last_response_headers", None), self._epoch_s)

    def _map_error(self, exc: Exception) -> ExchangeError:
        return map_error(exc, self._ccxt, self.name, self._retry_after)

    def _raw(self, fn: Callable[[], T]) -> T:
        """Call ccxt once; ccxt's errors become ours (redacted, with the exchange's reason).

        One call at a time (a ccxt instance and its HTTP session are not thread-safe); the lock is
        not held during retry sleeps.
        """
        # ccxt's precision helpers change the thread's decimal context (rounding, traps): a
        # local copy keeps that from leaking into the engine's own arithmetic
        with self._lock, decimal.localcontext():
            try:
                try:
                    return fn()
                except self._ccxt.InvalidNonce as exc:
                    # the stamp was refused before anything was done (Binance -1021, Bybit
                    # 10002, OKX 50102): our clock drifted since the exchange's time was read;
                    # read it again and ask once more (safe for a write too: it was refused)
                    log.warning(
                        "%s: clock out of sync (%s); reading its time again", self.name, exc
                    )
                    self._ex.load_time_difference()
                    return fn()
            except self._ccxt.BaseError as exc:
                raise self._map_error(exc) from None
            except (
                TypeError,
                ValueError,
                KeyError,
                AttributeError,
                IndexError,
                ArithmeticError,
            ) as exc:
                # ccxt's parsers meeting an answer of the wrong shape
                why = clean_text(redact(f"{type(exc).__name__}: {exc}"), 200)
                raise BadAnswer(f"{self.name}: an answer Kobe cannot read ({why})") from None

    def _read(self, fn: Callable[[], T], what: str) -> T:
        """Call ccxt, retrying transient errors under the read policy."""
        return call_with_retries(lambda: self._raw(fn), f"{self.name} {what}", self.retry)

    # -- order look-ups (single calls: the caller retries) --------------------------------------

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
                    return self._answers(found[0], symbol, order_id, client_id)
            raise OrderNotFound(f"{self.name}: order {order_id or client_id} not found")
        if order_id:
            found = self._raw(lambda: self._ex.fetch_order(order_id, symbol))
        else:
            found = self._raw(
                lambda: self._ex.fetch_order(None, symbol, {"clientOrderId": client_id})
            )
        return self._answers(found, symbol, order_id, client_id)

    def _answers(self, found: Any, symbol: str, order_id: str, client_id: str) -> Any:
        """``found`` when it is the order asked for: of that symbol, and with that client id when
        asked by it (by exchange id, OKX names an order its algo placed by the algo's id); else
        BadAnswer."""
        got = (str(found.get("symbol")), "" if order_id else str(found.get("clientOrderId")))
        if got != (symbol, "" if order_id else client_id):
            raise BadAnswer(
                f"{self.name}: asked for order {order_id or client_id} on {symbol}, the exchange "
                f"answered order {clean_text(got[1] or found.get('id'), 40)} on "
                f"{clean_text(got[0], 40)}"
            )
        return found

    def _with_fees(self, order: Order) -> Order:
        """An order that filled but whose reply names no fee (an order look-up: Binance's has
        no fills) gets its fees from the order's own trades, as charged (asset and amount)."""
        if order.filled <= 0 or order.fee_asset or order.fills:
            return order
        trades: list[Any] = self._raw(lambda: self._ex.fetch_order_trades(order.id, order.symbol))
        return with_trade_fees(order, trades)

    def _by_client_id_raw(self, client_id: str, symbol: str) -> Order | None:
        try:
            data = self._find_raw(symbol, client_id=client_id)
        except OrderNotFound:
            return None
        return self._with_fees(to_order(data, client_id))

    def _settled(self, data: Any, symbol: str) -> Any:
        """A write's answer with its order's state: Bybit and OKX answer only the ids."""
        if data.get("status") is not None and data.get("side") is not None:
            return data
        return self._find_raw(symbol, order_id=str(data.get("id")))
