"""Peak RSS of one ``SolanaRpc.get_block`` against a local node serving a hostile reply.

Each kind runs in a fresh interpreter; the reply is built by a first child and served by a second
(their memory is not counted), and the measuring process prints its peak RSS (``ru_maxrss``)
before and after the call, the time, and what the client did with the reply:

- ``keys``: 45 MB of distinct short keys (``{"0000001":"ab",...}``), 9 million values;
- ``keys-max``, ``lists-max``: distinct keys, or ``[],[],...``, just under ``MAX_JSON_VALUES``;
- ``big``: one 60 MB string (the byte cap's own cost);
- ``heavy``: a heavy mainnet block in ``jsonParsed`` (1,000 swaps, 1,500 votes).

    python bench/rpc_reply.py [KIND ...]   (all of them by default)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("keys", "keys-max", "lists-max", "big", "heavy")
SERVER = """
import http.server, sys
data = open(sys.argv[1], 'rb').read()
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers['Content-Length']))
        self.send_response(200)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a): pass
s = http.server.HTTPServer(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def reply(kind: str) -> bytes:
    if kind == "keys":
        inner = b"{" + b",".join(b'"%07x":"ab"' % i for i in range(2_990_000)) + b"}"
    elif kind == "keys-max":
        inner = b"{" + b",".join(b'"%07x":"ab"' % i for i in range(666_000)) + b"}"
    elif kind == "lists-max":
        inner = b"[" + b",".join([b"[]"] * 999_000) + b"]"
    elif kind == "big":
        inner = b'"' + b"a" * 60_000_000 + b'"'
    elif kind == "heavy":
        sys.path.insert(0, str(ROOT))
        from tests.test_rpc_hardening import SWAP, VOTE

        block = {"blockTime": 1767225600, "transactions": [SWAP] * 1000 + [VOTE] * 1500}
        inner = json.dumps(block).encode()
    else:
        raise SystemExit(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    return b'{"jsonrpc":"2.0","id":1,"result":' + inner + b"}"


def measure(kind: str, path: Path) -> str:
    sys.path.insert(0, str(ROOT))
    from engine.exchange.retry import RetryPolicy
    from engine.indexer.rpc import SolanaRpc, json_values
    from engine.secrets import Secret

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        rpc = SolanaRpc(
            Secret(f"http://127.0.0.1:{port}/"),
            timeout_s=60,
            policy=RetryPolicy(max_attempts=1, max_total_s=60),
        )
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        try:
            rpc.get_block(5)
            outcome = "parsed"
        except Exception as exc:  # what the client refused, and why
            outcome = f"refused: {exc}"[:90]
        took = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    finally:
        server.kill()
        server.wait()
    with path.open("rb") as fh:
        values = json_values(fh.read())
    return (
        f"{kind:10} {path.stat().st_size / 1e6:5.1f} MB {values:>10,} values  peak RSS "
        f"{peak / 1024:4.0f} MB (before the call {before / 1024:3.0f})  {took:5.2f} s  {outcome}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("kinds", nargs="*", metavar="KIND", help=f"{', '.join(KINDS)} (all)")
    parser.add_argument("--build", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if unknown := sorted(set(args.kinds) - set(KINDS)):
        parser.error(f"unknown kind {', '.join(unknown)}; kinds: {', '.join(KINDS)}")
    if args.build:
        Path(args.build[1]).write_bytes(reply(args.build[0]))
        return
    if args.measure:
        print(measure(args.measure[0], Path(args.measure[1])), flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds or KINDS:
            path = Path(tmp) / f"{kind}.json"
            me = [sys.executable, __file__]
            subprocess.run([*me, "--build", kind, str(path)], check=True)
            subprocess.run([*me, "--measure", kind, str(path)], check=True, env=os.environ)
            path.unlink()


if __name__ == "__main__":
    main()
