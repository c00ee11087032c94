"""Which webhook targets are accepted, and how URLs are shown."""

from __future__ import annotations

import ipaddress

import pytest

from contracts.webhook_targets import address_refusal, private_targets_allowed, redact_url, url_problem


@pytest.mark.parametrize("address", [
    "169.254.169.254", "169.254.0.1", "fe80::1", "fe80::1%eth0", "0.0.0.0", "0.1.2.3", "::", "224.0.0.1",
    "239.255.255.250", "ff02::1", "255.255.255.255", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe",
    "2002:a9fe:a9fe::1", "fd00:ec2::254", "100.100.100.200",
])
def test_link_local_metadata_unspecified_and_multicast_are_always_refused(address):
    assert address_refusal(ipaddress.ip_address(address), allow_private=True) is not None


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.10", "fd12::1",
                                     "100.64.0.1", "::ffff:127.0.0.1"])
def test_loopback_and_private_are_allowed_unless_denied(address):
    ip = ipaddress.ip_address(address)
    assert address_refusal(ip, allow_private=True) is None
    assert "AEROVISION_WEBHOOK_PRIVATE_TARGETS=deny" in address_refusal(ip, allow_private=False)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "8.8.8.8"])
def test_public_addresses_are_allowed_in_both_modes(address):
    ip = ipaddress.ip_address(address)
    assert address_refusal(ip, allow_private=True) is None and address_refusal(ip, allow_private=False) is None


@pytest.mark.parametrize("url", [
    "https://your-server.com/callback", "http://127.0.0.1:8080/hook", "http://[::1]:9000/x?a=b#f",
    "https://user:pass@example.com/x", "http://exämple.com/ü", "HTTP://EXAMPLE.COM", "http://a_b.example.com/",
    "http://localhost:3000/cb",
])
def test_good_urls(url):
    assert url_problem(url, allow_private=True) is None


@pytest.mark.parametrize("url,kind", [
    ("ftp://example.com/x", "url_scheme"), ("javascript:alert(1)", "url_scheme"), ("example.com/x", "url_scheme"),
    ("http://", "url_parsing"), ("http:///path", "url_parsing"), ("http://exa mple.com", "url_parsing"),
    ("http://example.com/a b", "url_parsing"), ("http://example.com/\n", "url_parsing"),
    ("http://example.com/\x00", "url_parsing"), ("http://example.com:99999/", "url_parsing"),
    ("http://example.com:port/", "url_parsing"), ("http://[::1/", "url_parsing"), ("http://exa$mple.com/", "url_parsing"),
    ("http://" + "a" * 64 + ".com/", "url_parsing"), ("http://169.254.169.254/latest/meta-data", "value_error"),
    ("http://[fe80::1]/", "value_error"), ("http://0.0.0.0:8080/", "value_error"), ("http://224.0.0.1/", "value_error"),
    ("http://example.com/" + "a" * 2048, "string_too_long"),
])
def test_bad_urls(url, kind):
    problem = url_problem(url, allow_private=True)
    assert problem is not None and problem[0] == kind, problem


def test_private_targets_denied_at_registration():
    for url in ("http://127.0.0.1/", "http://10.0.0.1/", "http://localhost:80/", "http://api.localhost/"):
        assert url_problem(url, allow_private=False)[0] == "value_error"
    assert url_problem("https://example.com/", allow_private=False) is None
    assert private_targets_allowed(None) and private_targets_allowed("ALLOW") and not private_targets_allowed("deny")
    with pytest.raises(ValueError):
        private_targets_allowed("maybe")


@pytest.mark.parametrize("url,shown", [
    ("https://user:pass@example.com/x?q=1", "https://example.com/x?q=1"),
    ("http://apikey@example.com:8080/", "http://example.com:8080/"),
    ("http://a@b:c@d@example.com/p@q", "http://example.com/p@q"),
    ("https://example.com/p@q", "https://example.com/p@q"),
    ("http://example.com/x", "http://example.com/x"),
])
def test_urls_are_shown_without_credentials(url, shown):
    assert redact_url(url) == shown


def test_urls_registered_before_the_limit_are_shown_cut():
    assert len(redact_url("http://x/" + "a" * 700_000)) == 2048 + 3
