"""What every exchange simulator shares: an HTTP server on 127.0.0.1, a request log, fault injection.

A simulator subclasses :class:`SimServer` and implements :meth:`SimServer.dispatch` (authenticate,
route, answer) and :meth:`SimServer.error_answer` (how the exchange words an error). The server
records every request (``sim.requests``, ``sim.count``) and consumes injected faults
(:meth:`SimServer.inject`) before the exchange logic sees the request.

Nothing here imports the engine: it is the other side of the wire.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class ApiError(Exception):
    """An error the exchange answers: HTTP ``status``, the exchange's ``code`` and message."""

    def __init__(
        self, status: int, code: object, msg: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = headers or {}


@dataclass
class Fault:
    """One injected fault, consumed by the next ``times`` matching requests.

    kind: ``status`` (answer ``status`` with ``body`` and headers, do nothing else),
    ``slow`` (sleep ``delay`` seconds, then handle the request: a client with a shorter timeout
    has given up by then), ``late`` (handle the request at once, then answer only after ``delay``
    seconds: the order exists, the client timed out), ``drop`` (handle the request, then close the
    connection without answering: the order exists but the client never hears of it),
    ``rewrite`` (handle the request, then answer ``rewrite(answer)`` instead, status 200: a
    truncated, malformed or odd answer to a request the exchange carried out), ``before`` (call
    ``action()``, then handle the request: something happens on the exchange just before, e.g. a
    fill arriving between a cancel and its reply).
    """

    kind: str
    method: str | None
    path: str | None
    times: int = 1
    status: int = 500
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    query: str | None = None  # only requests whose query string contains this
    rewrite: Callable[[str], str] | None = None
    action: Callable[[], None] | None = None

    def matches(self, method: str, path: str, query: str = "") -> bool:
        return (
            (self.method is None or self.method == method)
            and (self.path is None or self.path == path)
            and (self.query is None or self.query in query)
        )


class SimServer:
    """The server half. ``with Sim() as sim:`` starts it; ``sim.url`` is its base."""

    def __init__(self, clock_offset_ms: int = 0) -> None:
        self.clock_offset_ms = clock_offset_ms
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request seen
        self.queries: list[str] = []  # and its query string
        self.faults: list[Fault] = []
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- what a simulator implements ------------------------------------------------------------

    def dispatch(self, method: str, path: str, query: str, body: str, headers: Any) -> Any:
        """Authenticate and answer one request (JSON-able); raise :class:`ApiError` to refuse."""
        raise NotImplementedError

    def error_answer(self, exc: ApiError) -> str:
        """The body of an error answer, worded the way the exchange words it."""
        return json.dumps({"code": exc.code, "msg": exc.msg})

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Any:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls --------------------------------------------------------------------------

    def inject(
        self,
        kind: str = "status",
        *,
        method: str | None = None,
        path: str | None = None,
        times: int = 1,
        status: int = 500,
        body: str | dict[str, Any] = "",
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        query: str | None = None,
        rewrite: Callable[[str], str] | None = None,
        action: Callable[[], None] | None = None,
    ) -> None:
        """Queue a fault for the next ``times`` requests matching ``method`` and ``path``.

        ``inject(status=429, retry_after=1)``, ``inject(status=503, body="Service Unavailable")``,
        ``inject("slow", delay=0.5, method="GET", path=...)``,
        ``inject("late", delay=0.5, method="POST", path=...)``,
        ``inject("drop", method="POST", path=...)``, ``inject(status=400, body={...})``; ``query="orderFilter=tpslOrder"`` narrows it to requests
        whose query string contains that; ``inject("rewrite", rewrite=lambda text: text[:40])``
        answers what the exchange did, cut short; ``inject("before", action=...)`` acts first.
        """
        sent = dict(headers or {})
        if retry_after is not None:
            sent["Retry-After"] = str(retry_after)
        text = json.dumps(body) if isinstance(body, dict) else body
        fault = Fault(kind, method, path, times, status, text, sent, delay, query, rewrite, action)
        with self._lock:
            self.faults.append(fault)

    def count(self, method: str, path: str) -> int:
        with self._lock:
            return sum(1 for m, p in self.requests if m == method and p == path)

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    def take_fault(self, method: str, path: str, query: str = "") -> Fault | None:
        with self._lock:
            self.requests.append((method, path))
            self.queries.append(query)
            for fault in self.faults:
                if fault.matches(method, path, query):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None


def _make_handler(sim: SimServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms ACK stall

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            path, query = parts.path, parts.query
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            fault = sim.take_fault(method, path, query)
            if fault is not None and fault.kind == "status":
                self._send(fault.status, fault.body, fault.headers)
                return
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay)
            if fault is not None and fault.kind == "before" and fault.action is not None:
                fault.action()
            try:
                result = sim.dispatch(method, path, query, body, self.headers)
            except ApiError as exc:
                if fault is not None and fault.kind == "drop":
                    self._drop()
                    return
                self._send(exc.status, sim.error_answer(exc), exc.headers)
                return
            if fault is not None and fault.kind == "drop":
                self._drop()
                return
            if fault is not None and fault.kind == "late":
                time.sleep(fault.delay)
            answer = json.dumps(result)
            if fault is not None and fault.kind == "rewrite" and fault.rewrite is not None:
                answer = fault.rewrite(answer)
            self._send(200, answer)

        def _drop(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)

        def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
            data = body.encode()
            try:
                self.send_response(status)
                is_json = body.startswith(("{", "["))
                self.send_header("Content-Type", "application/json" if is_json else "text/html")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to answer to

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def do_PUT(self) -> None:
            self._handle("PUT")

    return Handler
