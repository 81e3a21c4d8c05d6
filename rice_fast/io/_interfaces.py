"""Choose the local addresses an ICE agent gathers host candidates on.

``interface_addresses`` lists the host's interface addresses (through the
``ifaddr`` package, which reads getifaddrs on Linux) and filters out the
kinds an application usually does not want to offer: loopback,
link-local, and addresses of virtual interfaces such as container
bridges and VPN tunnels. It only reads the interface table; it opens no
socket and sends nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import ifaddr

__all__ = ["VIRTUAL_PREFIXES", "InterfaceAddress", "interface_addresses"]

# Interface name prefixes of Linux virtual devices: container bridges and
# veth pairs, libvirt, VPN tunnels and WireGuard.
VIRTUAL_PREFIXES: tuple[str, ...] = (
    "docker",
    "br-",
    "veth",
    "virbr",
    "vnet",
    "lxc",
    "lxd",
    "cni",
    "flannel",
    "cali",
    "tun",
    "tap",
    "wg",
    "zt",
    "tailscale",
)


@dataclass(frozen=True, slots=True)
class InterfaceAddress:
    """One address of one network interface."""

    interface: str
    address: str
    prefix_length: int
    loopback: bool
    link_local: bool
    virtual: bool

    @property
    def ip_version(self) -> int:
        """4 or 6."""
        return 6 if ":" in self.address else 4


def _classify(name: str, address: str, prefix: int) -> InterfaceAddress:
    parsed = ipaddress.ip_address(address)
    return InterfaceAddress(
        interface=name,
        address=address,
        prefix_length=prefix,
        loopback=parsed.is_loopback,
        link_local=parsed.is_link_local,
        virtual=name.startswith(VIRTUAL_PREFIXES),
    )


def _adapters() -> Iterable[tuple[str, str, int]]:
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, tuple):
                # IPv6: (address, flowinfo, scope id); the zone is kept
                # apart from the address text, as candidates carry it.
                yield adapter.nice_name, ip.ip[0], ip.network_prefix
            else:
                yield adapter.nice_name, ip.ip, ip.network_prefix


def interface_addresses(
    *,
    loopback: bool = False,
    link_local: bool = False,
    virtual: bool = False,
    ipv4: bool = True,
    ipv6: bool = True,
    interfaces: Sequence[str] | None = None,
    exclude_interfaces: Sequence[str] = (),
    table: Iterable[tuple[str, str, int]] | None = None,
) -> list[InterfaceAddress]:
    """Return the host's interface addresses that pass the filters.

    Loopback, link-local and virtual-interface addresses are left out
    unless asked for. ``interfaces`` keeps only the named interfaces and
    ``exclude_interfaces`` drops some. ``table`` replaces the host's
    interface table with ``(interface, address, prefix length)`` rows, for
    tests. Addresses come in the table's order, IPv4 before IPv6 within
    an interface as getifaddrs reports them.
    """
    rows = _adapters() if table is None else table
    result: list[InterfaceAddress] = []
    for name, address, prefix in rows:
        if interfaces is not None and name not in interfaces:
            continue
        if name in exclude_interfaces:
            continue
        entry = _classify(name, address, prefix)
        if entry.loopback and not loopback:
            continue
        if entry.link_local and not link_local:
            continue
        if entry.virtual and not virtual:
            continue
        if entry.ip_version == 4 and not ipv4:
            continue
        if entry.ip_version == 6 and not ipv6:
            continue
        result.append(entry)
    return result
