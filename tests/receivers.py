"""A real HTTP endpoint for webhook deliveries, on the standard library's threaded HTTP server."""

from __future__ import annotations

import threading
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class ThreadedReceiver:
    """Answers each POST to ``url`` with the status ``respond(headers, body)`` returns (called on
    the server's request threads) and an empty body, until ``close()``."""

    def __init__(self, respond: Callable[[Message, bytes], int], path: str = "/callback") -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(respond(self.headers, body))
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
