"""Each exchange's documented request limits for the calls Kobe makes: one table, read by the tests
that count the engine's requests per tick and by README.md's "Request budget" (kept equal to it by
tests/test_request_budget.py).

- Binance spot: one pool of request *weight* per IP, 6 000 a minute; each call weighs what the API
  docs say (``GET /api/v3/openOrders`` weighs 6 with a symbol, 80 without one).
- Bybit v5 (unified account, spot): a limit per endpoint per UID per second; public market data
  600 requests per 5 s per IP.
- OKX v5: a limit per endpoint per 2 s (per user ID for private calls, per IP for public ones).

What the engine does each tick (``Runtime.tick``): ``Router.sync`` asks for the open orders of each
symbol Kobe has open orders on (none when nothing is open) and looks up, by client id, an order that
left them; ``Runtime`` reads one ticker per symbol Kobe holds a position in (its mark), which
``Router.poll`` reuses, reading a pending entry with exits by id and a ticker per other watched
symbol.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """``cost`` counted against ``limit`` per ``window_s`` seconds.

    ``pool`` is the name of the budget the cost counts against: Binance's one weight pool, or the
    endpoint itself where each endpoint has its own limit (Bybit, OKX).
    """

    cost: int
    limit: int
    window_s: int
    pool: str


def _binance(weight: int) -> Limit:
    return Limit(weight, 6000, 60, "weight")


def _own(limit: int, window_s: int) -> Limit:
    return Limit(1, limit, window_s, "")


# (exchange, "METHOD /path", qualifier) -> Limit. The qualifier tells apart one endpoint's costs
# (Binance: with or without a symbol); "" when there is one cost.
REQUEST_BUDGET: dict[tuple[str, str, str], Limit] = {
    ("binance", "GET /api/v3/openOrders", "symbol"): _binance(6),
    ("binance", "GET /api/v3/openOrders", "all"): _binance(80),
    ("binance", "GET /api/v3/order", ""): _binance(4),
    ("binance", "POST /api/v3/order", ""): _binance(1),
    ("binance", "DELETE /api/v3/order", ""): _binance(1),
    ("binance", "POST /api/v3/orderList/oco", ""): _binance(1),
    ("binance", "GET /api/v3/account", ""): _binance(20),
    ("binance", "GET /api/v3/ticker/24hr", "symbol"): _binance(2),
    ("binance", "GET /api/v3/exchangeInfo", ""): _binance(20),
    ("binance", "GET /api/v3/time", ""): _binance(1),
    ("bybit", "GET /v5/order/realtime", ""): _own(50, 1),
    ("bybit", "GET /v5/order/history", ""): _own(50, 1),
    ("bybit", "GET /v5/execution/list", ""): _own(50, 1),
    ("bybit", "POST /v5/order/create", ""): _own(20, 1),
    ("bybit", "POST /v5/order/cancel", ""): _own(20, 1),
    ("bybit", "GET /v5/account/wallet-balance", ""): _own(50, 1),
    ("bybit", "GET /v5/account/info", ""): _own(50, 1),
    ("bybit", "GET /v5/user/query-api", ""): _own(10, 1),
    ("bybit", "GET /v5/market/tickers", ""): _own(600, 5),
    ("bybit", "GET /v5/market/instruments-info", ""): _own(600, 5),
    ("bybit", "GET /v5/market/time", ""): _own(600, 5),
    ("okx", "GET /api/v5/trade/orders-pending", ""): _own(60, 2),
    ("okx", "GET /api/v5/trade/order", ""): _own(60, 2),
    ("okx", "POST /api/v5/trade/order", ""): _own(60, 2),
    ("okx", "POST /api/v5/trade/cancel-order", ""): _own(60, 2),
    ("okx", "GET /api/v5/trade/orders-history", ""): _own(40, 2),
    ("okx", "GET /api/v5/trade/fills", ""): _own(60, 2),
    ("okx", "GET /api/v5/trade/fills-history", ""): _own(10, 2),
    ("okx", "GET /api/v5/trade/orders-algo-pending", ""): _own(20, 2),
    ("okx", "GET /api/v5/trade/order-algo", ""): _own(20, 2),
    ("okx", "POST /api/v5/trade/cancel-algos", ""): _own(20, 2),
    ("okx", "GET /api/v5/account/balance", ""): _own(10, 2),
    ("okx", "GET /api/v5/market/ticker", ""): _own(20, 2),
    ("okx", "GET /api/v5/public/instruments", ""): _own(20, 2),
    ("okx", "GET /api/v5/public/time", ""): _own(10, 2),
}


def usage(exchange: str, requests: list[tuple[str, str, str]], seconds: float) -> dict[str, float]:
    """The share (0–1) of each budget that ``requests`` — ``(method, path, qualifier)`` — spent
    in ``seconds``, each per its own window (Binance's weight per minute; Bybit's and OKX's
    requests per endpoint per its window). A request the table does not know: KeyError."""
    spent: dict[str, float] = {}
    for method, path, qualifier in requests:
        endpoint = f"{method} {path}"
        limit = REQUEST_BUDGET[(exchange, endpoint, qualifier)]
        pool = limit.pool or endpoint
        per_window = limit.cost * limit.window_s / seconds
        spent[pool] = spent.get(pool, 0.0) + per_window / limit.limit
    return spent
