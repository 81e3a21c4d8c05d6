"""Choosing interface addresses for host candidates."""

from __future__ import annotations

import pytest

from rice_fast.io import interface_addresses

TABLE = [
    ("lo", "127.0.0.1", 8),
    ("lo", "::1", 128),
    ("eth0", "192.0.2.10", 24),
    ("eth0", "2001:db8::10", 64),
    ("eth0", "fe80::1", 64),
    ("wlan0", "169.254.3.4", 16),
    ("docker0", "172.17.0.1", 16),
    ("veth1a2b", "fe80::2", 64),
    ("wg0", "10.8.0.2", 24),
]


def _addresses(**filters: object) -> list[str]:
    return [e.address for e in interface_addresses(table=TABLE, **filters)]  # type: ignore[arg-type]


def test_default_skips_loopback_link_local_virtual() -> None:
    assert _addresses() == ["192.0.2.10", "2001:db8::10"]


@pytest.mark.parametrize(
    ("flag", "extra"),
    [
        ("loopback", ["127.0.0.1", "::1"]),
        ("link_local", ["fe80::1", "169.254.3.4"]),
        ("virtual", ["172.17.0.1", "10.8.0.2"]),
    ],
)
def test_each_kind_included_on_request(flag: str, extra: list[str]) -> None:
    found = _addresses(**{flag: True})
    for address in extra:
        assert address in found
    assert "192.0.2.10" in found


def test_families_and_interface_lists() -> None:
    assert _addresses(ipv6=False) == ["192.0.2.10"]
    assert _addresses(ipv4=False) == ["2001:db8::10"]
    assert _addresses(loopback=True, interfaces=["lo"]) == ["127.0.0.1", "::1"]
    assert _addresses(exclude_interfaces=["eth0"]) == []


def test_classification_fields() -> None:
    entries = interface_addresses(
        table=TABLE, loopback=True, link_local=True, virtual=True
    )
    by_address = {e.address: e for e in entries}
    assert by_address["127.0.0.1"].loopback
    assert by_address["fe80::1"].link_local
    assert by_address["fe80::1"].ip_version == 6
    assert by_address["172.17.0.1"].virtual
    assert not by_address["192.0.2.10"].virtual


def test_host_table_has_loopback() -> None:
    # Reads this machine's interface table; no socket is opened.
    found = interface_addresses(loopback=True, interfaces=["lo"])
    assert "127.0.0.1" in [entry.address for entry in found]
