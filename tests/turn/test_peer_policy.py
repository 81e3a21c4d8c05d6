"""PeerPolicy: the default denied ranges, embedded IPv4 forms and overrides."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rice_fast.turn._peer_policy import DEFAULT_DENIED, PeerPolicy

DENIED_BY_DEFAULT = [
    "0.0.0.0",
    "0.1.2.3",
    "127.0.0.1",
    "127.255.255.254",
    "169.254.0.1",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.0.1",
    "192.168.255.255",
    "100.64.0.1",
    "100.127.255.255",
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "::",
    "::1",
    "fe80::1",
    "febf::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "ff0e::101",
    # IPv4-mapped forms of denied IPv4 addresses.
    "::ffff:127.0.0.1",
    "::ffff:10.1.2.3",
    "::ffff:192.168.1.1",
    "::ffff:0.0.0.0",
    # NAT64 well-known prefix forms (RFC 6052) of denied IPv4 addresses.
    "64:ff9b::7f00:1",
    "64:ff9b::10.0.0.1",
    "64:ff9b::a9fe:101",
    "64:ff9b::100.64.0.1",
]

# Documentation and public ranges, and the edges just outside denied ones.
ALLOWED_BY_DEFAULT = [
    "192.0.2.1",
    "198.51.100.7",
    "203.0.113.200",
    "8.8.8.8",
    "1.0.0.0",
    "9.255.255.255",
    "11.0.0.0",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.167.255.255",
    "192.169.0.0",
    "223.255.255.255",
    "2001:db8::1",
    "2606:4700::1111",
    "::ffff:192.0.2.1",
    "64:ff9b::c000:201",
]


@pytest.mark.parametrize("host", DENIED_BY_DEFAULT)
def test_default_policy_denies(host: str) -> None:
    assert not PeerPolicy().is_allowed(host)


@pytest.mark.parametrize("host", ALLOWED_BY_DEFAULT)
def test_default_policy_allows(host: str) -> None:
    assert PeerPolicy().is_allowed(host)


def test_deprecated_site_local_denied() -> None:
    assert not PeerPolicy().is_allowed("fec0::1")


def test_allow_wins_over_deny() -> None:
    policy = PeerPolicy(allow=["127.0.0.1/32"])
    assert policy.is_allowed("127.0.0.1")
    assert not policy.is_allowed("127.0.0.2")
    assert not policy.is_allowed("10.0.0.1")


def test_allowed_ipv4_allows_its_mapped_form() -> None:
    policy = PeerPolicy(allow=["127.0.0.0/8"])
    assert policy.is_allowed("::ffff:127.0.0.1")
    assert policy.is_allowed("64:ff9b::7f00:1")


def test_allowed_ipv6_network() -> None:
    policy = PeerPolicy(allow=["::1/128", "fd00::/8"])
    assert policy.is_allowed("::1")
    assert policy.is_allowed("fd00::5")
    assert not policy.is_allowed("fc00::5")


def test_empty_deny_allows_everything() -> None:
    policy = PeerPolicy(deny=[])
    for host in DENIED_BY_DEFAULT:
        assert policy.is_allowed(host)


def test_custom_deny_replaces_defaults() -> None:
    policy = PeerPolicy(deny=["192.0.2.0/24"])
    assert not policy.is_allowed("192.0.2.1")
    assert not policy.is_allowed("::ffff:192.0.2.1")
    assert policy.is_allowed("10.0.0.1")


def test_network_objects_accepted() -> None:
    policy = PeerPolicy(deny=[ipaddress.ip_network("198.51.100.0/24")])
    assert not policy.is_allowed("198.51.100.1")


@pytest.mark.parametrize(
    "host", ["example.org", "", "1.2.3", "fe80::1%eth0", "::ffff:1.2.3.4.5"]
)
def test_non_addresses_never_allowed(host: str) -> None:
    assert not PeerPolicy(deny=[]).is_allowed(host)


def test_invalid_entry_raises() -> None:
    with pytest.raises(ValueError, match=re.escape("'10.0.0.1/8'")):
        PeerPolicy(deny=["10.0.0.1/8"])
    with pytest.raises(ValueError, match="not a network"):
        PeerPolicy(allow=["not-a-network"])


def test_single_string_raises() -> None:
    with pytest.raises(TypeError, match="list of networks"):
        PeerPolicy(allow="127.0.0.1/32")


def test_default_networks_listed() -> None:
    policy = PeerPolicy()
    assert [str(n) for n in policy.deny] == list(DEFAULT_DENIED)
    assert policy.allow == ()
    assert "127.0.0.0/8" in repr(policy)


@given(st.ip_addresses(v=4))
def test_mapped_and_nat64_forms_match_ipv4(address: ipaddress.IPv4Address) -> None:
    policy = PeerPolicy()
    mapped = ipaddress.IPv6Address(0xFFFF_0000_0000 | int(address))
    nat64 = ipaddress.IPv6Address((0x0064FF9B << 96) | int(address))
    expected = policy.is_allowed(str(address))
    assert policy.is_allowed(str(mapped)) == expected
    assert policy.is_allowed(str(nat64)) == expected
