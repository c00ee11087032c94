"""One HTTP attempt of a webhook delivery, and what it gave in our own words.

The recorded error names the kind of failure only (timeout, refused, DNS, TLS, HTTP status):
exception texts are never kept, because aiohttp's can quote what the target answered (pointed at
the NATS port, the whole INFO banner with the server's id and version).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import time

import aiohttp
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from contracts.webhook_targets import address_refusal
from services.notifier.schedule import Outcome, retry_after_seconds

log = structlog.get_logger("notifier")


class TargetRefused(OSError):
    """The URL's host is, or resolves only to, an address deliveries may not reach."""


class PolicyResolver(AbstractResolver):
    """Resolves names like aiohttp's default resolver, then drops the addresses deliveries may not
    reach: the connection is made to an address that was checked (no DNS rebinding in between)."""

    def __init__(self, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self._allow_private = allow_private
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed, refusals = [], []
        for result in results:
            why = address_refusal(ipaddress.ip_address(result["host"]), self._allow_private)
            (refusals if why else allowed).append(why or result)
        if not allowed:
            raise TargetRefused(f"target refused: the host resolves to {refusals[0]}")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def _literal_refusal(url: str, allow_private: bool) -> str | None:
    """aiohttp does not resolve literal addresses, so those are checked here."""
    host = URL(url).raw_host or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    why = address_refusal(address, allow_private)
    return f"target refused: {why}" if why else None


def describe(exc: BaseException, timeout: float) -> str:
    """A failed attempt in our own words; the exception's text (which may quote the target) is dropped."""
    if isinstance(exc, TargetRefused):
        return str(exc)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return str(exc.os_error) if isinstance(exc.os_error, TargetRefused) else "DNS lookup failed"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate verification failed"
    if isinstance(exc, (aiohttp.ClientSSLError, aiohttp.ClientConnectorSSLError)):
        return "TLS error"
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return f"timeout after {timeout:g} s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        code = getattr(exc.os_error, "errno", None)
        if code == errno.ECONNREFUSED:
            return "connection refused"
        if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "host unreachable"
        return "connection failed"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed without a response"
    if isinstance(exc, (aiohttp.ClientResponseError, aiohttp.ClientPayloadError)):
        return "invalid HTTP response"
    if isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
        return "invalid URL"
    if isinstance(exc, (aiohttp.ClientOSError, ConnectionError)):
        return "connection error"
    return f"request failed ({type(exc).__name__})"


async def post(http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], *,
               timeout: float, allow_private: bool) -> tuple[Outcome, float]:
    """POST ``body`` once; the outcome and the attempt's duration in milliseconds.

    The reply's body is never read (the connection is dropped instead), redirects are not
    followed, and the whole attempt — connecting included — is bounded by ``timeout``.
    """
    started = time.perf_counter()
    try:
        refusal = _literal_refusal(url, allow_private)
        if refusal:
            outcome = Outcome(delivered=False, error=refusal)
        else:
            async with http.post(url, data=body, headers=headers, allow_redirects=False,
                                 timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                status = response.status
                delivered = 200 <= status < 300
                outcome = Outcome(
                    delivered=delivered, status_code=status, error=None if delivered else f"HTTP {status}",
                    retry_after=retry_after_seconds(status, response.headers.get("Retry-After")),
                )
    except Exception as exc:  # recorded as the attempt's outcome (in our words), then retried
        if not isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError)):
            log.warning("webhook_attempt_unexpected_error", error_type=type(exc).__name__)
        outcome = Outcome(delivered=False, error=describe(exc, timeout))
    return outcome, round((time.perf_counter() - started) * 1000, 1)


def client_session(allow_private: bool) -> aiohttp.ClientSession:
    """The notifier's HTTP client: the target policy in its resolver, no connection limit of its
    own (the scheduler bounds attempts per receiver and in all), no proxy from the environment."""
    connector = aiohttp.TCPConnector(resolver=PolicyResolver(allow_private), limit=0, ttl_dns_cache=10)
    return aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False)
