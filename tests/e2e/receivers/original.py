"""The original product's two receivers, as its documentation shows them, run for real:
its Express handler (node, tests/e2e/receivers/express_receiver.js) and its Python
``verify_signature`` in an HTTP handler. Each records whether it verified every delivery."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess
import threading
from pathlib import Path

from tests.receivers import ThreadedReceiver

HERE = Path(__file__).resolve().parent


# ---- from the original documentation ----------------------------------------------------------
def verify_signature(body: bytes, secret: str, signature: str) -> bool:
    """Проверить подпись вебхука."""
    expected = "sha256=" + hmac.new(
        secret.encode(),
        body,
        hashlib.sha256,
    ).hexdigest()
    return hmac.compare_digest(expected, signature)
# -----------------------------------------------------------------------------------------------


class ExpressReceiver:
    """``node express_receiver.js``: one verdict per request, read from its output."""

    def __init__(self, secret: str) -> None:
        node = shutil.which("node")
        assert node, "node is needed to run the original's Express receiver"
        self.proc = subprocess.Popen([node, str(HERE / "express_receiver.js"), secret],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        port = json.loads(self.proc.stdout.readline())["port"]
        self.url = f"http://127.0.0.1:{port}/callback"
        self.verdicts: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.verdicts.append(json.loads(line))

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class PythonReceiver(ThreadedReceiver):
    """The original's FastAPI handler, on the standard library's HTTP server."""

    def __init__(self, secret: str) -> None:
        self.verdicts: list[dict] = []
        self.secret = secret
        super().__init__(self._respond)

    def _respond(self, headers, body: bytes) -> int:
        sig = headers.get("X-Webhook-Signature", "")
        verified = verify_signature(body, self.secret, sig)
        data = json.loads(body) if verified else {}
        self.verdicts.append({"uid": data.get("uid"), "status": data.get("status"),
                              "verified": verified, "body": body})
        return 200 if verified else 401
