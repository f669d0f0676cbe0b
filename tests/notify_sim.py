"""A local stand-in for Telegram's Bot API (``sendMessage``) and a webhook receiver, on 127.0.0.1.

Scripted failures: ``fail(n, status, retry_after=None)`` answers the next ``n`` requests of a path
with that status (Telegram's JSON error body; ``retry_after`` in ``parameters`` and as the
``Retry-After`` header). Every attempt is recorded; ``messages`` holds what was accepted.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "123456789:AAcanaryTokenCANARY-7f3a9c-DO-NOT-PRINT"
CHAT = "-100424242"
HOOK_KEY = "hook-key-CANARY-7f3a9c-DO-NOT-PRINT"


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    raw: bytes
    headers: dict[str, str]
    at: float
    status: int


@dataclass
class NotifySim:
    attempts: list[Received] = field(default_factory=list)
    plan: dict[str, list[tuple[int, float | None]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hook_url(self) -> str:
        return f"{self.base}/hook/CANARY-7f3a9c-DO-NOT-PRINT"

    def fail(self, n: int, status: int, retry_after: float | None = None, path: str = "tg") -> None:
        with self.lock:
            self.plan.setdefault(path, []).extend([(status, retry_after)] * n)

    def down(self, path: str = "tg") -> None:
        self.fail(10_000, 502, path=path)

    def up(self, path: str = "tg") -> None:
        with self.lock:
            self.plan[path] = []

    def delivered(self, kind: str = "tg") -> list[Received]:
        with self.lock:
            return [
                a
                for a in self.attempts
                if a.status == 200 and (a.path.startswith("/bot") == (kind == "tg"))
            ]

    def texts(self) -> list[str]:
        return [str(a.body["text"]) for a in self.delivered("tg")]

    def wait_for(self, n: int, kind: str = "tg", timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.delivered(kind)
            if len(got) >= n:
                return got
            time.sleep(0.02)
        raise AssertionError(f"{len(self.delivered(kind))} delivered, expected {n}")

    def env(self, channels: str = "telegram") -> dict[str, str]:
        env = {"KOBE_TELEGRAM_API_URL": self.base}
        if "telegram" in channels:
            env |= {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": CHAT}
        if "webhook" in channels:
            env |= {"KOBE_WEBHOOK_URL": self.hook_url, "KOBE_WEBHOOK_SECRET": HOOK_KEY}
        return env


def _handler(sim: NotifySim) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = self.path
            key = "tg" if path.startswith("/bot") else "hook"
            with sim.lock:
                planned = sim.plan.get(key) or []
                status, retry_after = planned.pop(0) if planned else (200, None)
            if key == "tg" and path != f"/bot{TOKEN}/sendMessage":
                status = 401
            body = json.loads(raw) if raw else {}
            with sim.lock:
                sim.attempts.append(
                    Received(path, body, raw, dict(self.headers), time.monotonic(), status)
                )
            if status == 200:
                reply: dict[str, Any] = {"ok": True, "result": {"message_id": len(sim.attempts)}}
            else:
                reply = {"ok": False, "error_code": status, "description": f"error {status}"}
                if retry_after is not None:
                    reply["parameters"] = {"retry_after": retry_after}
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if retry_after is not None:
                self.send_header("Retry-After", str(retry_after))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def notify_sim() -> Iterator[NotifySim]:
    sim = NotifySim()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(sim))
    sim.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sim
    finally:
        server.shutdown()
        server.server_close()
