"""An llmhost-like process for tests of "is another llmhost running": a program named
`llmhost`, started as `llmhost serve`, answering GET /healthz as llmhost/api/admin.py does
(`{"status": "ok"}`, no key) on a free loopback port. What is real: the process, its
command line, the socket it listens on and the HTTP answer; no model, no GPU.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SERVER = """\
import http.server, sys

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"status":"ok"}' if self.path == "/healthz" else b'{"error":{}}'
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
print(server.server_address[1], flush=True)  # the port: the parent waits for this line
server.serve_forever()
"""


@dataclass(frozen=True)
class FakeLlmhost:
    pid: int
    port: int


@contextmanager
def fake_llmhost(directory: Path) -> Iterator[FakeLlmhost]:
    program = directory / "llmhost"
    program.write_text(SERVER)
    process = subprocess.Popen([sys.executable, str(program), "serve"], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())  # printed once it listens
        yield FakeLlmhost(process.pid, port)
    finally:
        process.kill()
        process.wait(timeout=30)
