"""What applies to every request, the fast status read included: request ids, CORS, OPTIONS.

It wraps the whole gateway (the fast path and Litestar alike), so nothing bypasses it:

- ``X-Request-ID``: a client's own (if it looks like an id) or a new one, echoed in the answer
  and bound into the logs of that request.
- CORS, only for the origins ``AEROVISION_CORS_ORIGINS`` names (``*`` for any): off by default,
  since a page on any website could otherwise read a local gateway's tasks through the browser.
- ``OPTIONS``: the methods a path answers, from the whole route table (Litestar's own answer lists
  only the handlers registered first at a path).
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Any, Awaitable, Callable, Iterable

Asgi = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
_CORS_MAX_AGE = b"600"
# Where the request id travels to the handlers (which bind it into their logs; the fast path logs
# nothing, so binding it here would cost every status read ~5 µs for nothing).
REQUEST_ID_KEY = "aerovision.request_id"


def request_ids() -> Callable[[], bytes]:
    """Ids unique across processes and restarts: a random prefix and a counter (cheaper per
    request than fresh random bytes)."""
    prefix, counter = os.urandom(6).hex().encode(), itertools.count(1)
    return lambda: b"%s-%x" % (prefix, next(counter))


def _pattern(path: str) -> re.Pattern[str]:
    """A Litestar path (``/a/{b:str}/{c:path}``) as a regex of the paths it matches."""
    out, pos = "", 0
    for m in re.finditer(r"{(\w+):(\w+)}", path):
        out += re.escape(path[pos:m.start()]) + (".+" if m.group(2) == "path" else "[^/]+")
        pos = m.end()
    return re.compile(out + re.escape(path[pos:]))


class AllowedMethods:
    """Which methods each path answers; exact paths win over patterns, as in Litestar's routing."""

    def __init__(self, routes: Iterable[tuple[str, Iterable[str]]]) -> None:
        self._exact: dict[str, set[str]] = {}
        self._patterns: list[tuple[re.Pattern[str], set[str]]] = []
        for path, methods in routes:
            wanted = {m for m in methods if m != "HEAD"} | {"OPTIONS"}
            if "{" in path:
                self._patterns.append((_pattern(path), wanted))
            else:
                self._exact.setdefault(path, set()).update(wanted)

    def __call__(self, path: str) -> set[str] | None:
        if path in self._exact:
            return self._exact[path]
        found = [methods for pattern, methods in self._patterns if pattern.fullmatch(path)]
        return set().union(*found) if found else None


class Cors:
    def __init__(self, origins: str) -> None:
        listed = {o.strip().rstrip("/") for o in origins.split(",") if o.strip()}
        self.any = "*" in listed
        self.origins = {o.encode() for o in listed if o != "*"}

    def allows(self, origin: bytes) -> bool:
        return self.any or origin in self.origins


def wrap(app: Asgi, allowed: AllowedMethods, cors_origins: str = "") -> Asgi:
    """``app`` with request ids, CORS (when configured) and OPTIONS answered for every route."""
    cors = Cors(cors_origins)

    new_id = request_ids()

    async def edge(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        given = origin = wanted_method = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value
            elif name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                wanted_method = value
        request_id = given if given is not None and _REQUEST_ID.fullmatch(given) else new_id()
        scope[REQUEST_ID_KEY] = request_id
        extra = [(b"x-request-id", request_id)]
        if origin is not None and cors.allows(origin):
            extra += [(b"access-control-allow-origin", b"*" if cors.any else origin),
                      (b"access-control-expose-headers", b"x-request-id, retry-after, content-length")]
            if not cors.any:
                extra.append((b"vary", b"Origin"))
        if scope["method"] == "OPTIONS":
            methods = allowed(scope["path"])
            if methods is not None:
                listed = ", ".join(sorted(methods)).encode()
                answer = [(b"allow", listed), *extra]
                if len(extra) > 1 and wanted_method is not None:  # a CORS preflight from an allowed origin
                    requested = dict(scope["headers"]).get(b"access-control-request-headers", b"content-type")
                    answer += [(b"access-control-allow-methods", listed),
                               (b"access-control-allow-headers", requested),
                               (b"access-control-max-age", _CORS_MAX_AGE)]
                await send({"type": "http.response.start", "status": 204, "headers": answer})
                await send({"type": "http.response.body", "body": b""})
                return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers")
                if isinstance(headers, list):
                    headers.extend(extra)
                else:
                    message = {**message, "headers": [*(headers or ()), *extra]}
            await send(message)

        await app(scope, receive, send_with_headers)

    return edge
