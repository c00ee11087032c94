"""Which webhook URLs are accepted, which addresses a delivery may reach, and how URLs are shown.

Pure rules shared by the gateway (at registration, for literal addresses) and the notifier (at
delivery, on every address a name resolves to): one place, so both refuse the same targets.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from contracts.api import WEBHOOK_URL_MAX_LENGTH

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Refused whatever the settings: no receiver lives there, and the cloud metadata services do.
_ALWAYS_REFUSED: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.ip_network(net), why) for net, why in (
        ("0.0.0.0/8", "an unspecified address"),
        ("169.254.0.0/16", "a link-local address (where cloud metadata services answer)"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("100.100.100.200/32", "a cloud metadata address"),
        ("::/128", "an unspecified address"),
        ("fe80::/10", "a link-local address"),
        ("ff00::/8", "a multicast address"),
        ("fd00:ec2::254/128", "a cloud metadata address"),
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_PRIVATE = "a loopback or private address (refused: AEROVISION_WEBHOOK_PRIVATE_TARGETS=deny)"
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f\s]")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#]*@")


def _embedded_ipv4(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4), else the address itself."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if ip.sixtofour is not None:
            return ip.sixtofour
    return ip


def private_targets_allowed(raw: str | None) -> bool:
    """``AEROVISION_WEBHOOK_PRIVATE_TARGETS``: "allow" (the default) or "deny"."""
    value = (raw or "allow").strip().lower()
    if value not in ("allow", "deny"):
        raise ValueError(f"AEROVISION_WEBHOOK_PRIVATE_TARGETS must be 'allow' or 'deny', not {raw!r}")
    return value == "allow"


def address_refusal(ip: IPAddress, allow_private: bool) -> str | None:
    """Why a delivery may not connect to ``ip`` ("a link-local address"...), or None if it may."""
    ip = _embedded_ipv4(ip)
    for network, why in _ALWAYS_REFUSED:
        if ip.version == network.version and ip in network:
            return why
    if not allow_private and not ip.is_global:
        return _PRIVATE
    return None


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def url_problem(url: str, allow_private: bool) -> tuple[str, str] | None:
    """Registration check of a webhook URL: ``(type, msg)`` in pydantic's words, or None if fine.

    Names are only checked for their form here: what they resolve to is checked at each delivery.
    """
    if len(url) > WEBHOOK_URL_MAX_LENGTH:
        return "string_too_long", f"String should have at most {WEBHOOK_URL_MAX_LENGTH} characters"
    if _CONTROL_OR_SPACE.search(url):
        return "url_parsing", "Input should be a valid URL, whitespace and control characters are not allowed"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 -- raises ValueError for a port out of range or not a number
    except ValueError:
        return "url_parsing", "Input should be a valid URL, invalid authority"
    if parts.scheme.lower() not in ("http", "https"):
        return "url_scheme", "URL scheme should be 'http' or 'https'"
    if not host:
        return "url_parsing", "Input should be a valid URL, empty host"
    address = _literal_address(host)
    if address is None:
        try:
            ascii_host = host.rstrip(".").encode("idna").decode("ascii")
        except UnicodeError:
            return "url_parsing", "Input should be a valid URL, invalid international domain name"
        if len(ascii_host) > 253 or not all(_HOST_LABEL.match(label) for label in ascii_host.split(".")):
            return "url_parsing", "Input should be a valid URL, invalid domain character"
        if not allow_private and (ascii_host == "localhost" or ascii_host.endswith(".localhost")):
            return "value_error", f"Value error, webhook target {host} is {_PRIVATE}"
        return None
    why = address_refusal(address, allow_private)
    return ("value_error", f"Value error, webhook target {host} is {why}") if why else None


def redact_url(url: str) -> str:
    """The URL as shown to clients and in events: no ``user:password@``, at most the URL limit."""
    shown = _USERINFO.sub(r"\1", url, count=1)
    if len(shown) > WEBHOOK_URL_MAX_LENGTH:  # registrations from before the limit existed
        shown = shown[:WEBHOOK_URL_MAX_LENGTH] + "..."
    return shown
