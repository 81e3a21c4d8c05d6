"""Which peer addresses a TURN server relays to.

A TURN server that relays to any address lets its clients reach the
server's own host, its private networks and its neighbours' link-local
addresses from outside. ``PeerPolicy`` denies those ranges by default.
The server checks the policy for every peer named in CreatePermission,
ChannelBind and Connect (403 when denied). Send indications and peer data
need no check of their own, because they are relayed only under a
permission, and a permission exists only for an allowed address.

The rule is: an address in an ``allow`` network is allowed; otherwise an
address in a ``deny`` network is denied; everything else is allowed. An
IPv6 address that embeds an IPv4 address (IPv4-mapped ``::ffff:0:0/96``
and the NAT64 well-known prefix ``64:ff9b::/96``) is judged by both
forms, so ``::ffff:127.0.0.1`` and ``64:ff9b::a00:1`` are denied like
``127.0.0.1`` and ``10.0.0.1``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final, TypeAlias

__all__ = ["DEFAULT_DENIED", "PeerPolicy"]

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_DENIED: Final[tuple[str, ...]] = (
    # IPv4: "this network", loopback, link-local and the private ranges.
    "0.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    # Shared address space of carrier-grade NAT (RFC 6598).
    "100.64.0.0/10",
    # Multicast, and the reserved block that contains 255.255.255.255.
    "224.0.0.0/4",
    "240.0.0.0/4",
    # IPv6: unspecified, loopback, link-local, deprecated site-local,
    # unique local and multicast.
    "::/128",
    "::1/128",
    "fe80::/10",
    "fec0::/10",
    "fc00::/7",
    "ff00::/8",
)
"""Networks that ``PeerPolicy()`` denies unless an ``allow`` entry covers them."""

_MAPPED: Final = ipaddress.IPv6Network("::ffff:0:0/96")
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def _networks(entries: Iterable[str | Network], name: str) -> tuple[Network, ...]:
    if isinstance(entries, str):
        raise TypeError(f"{name} must be a list of networks, not one string")
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry))
        except ValueError as exc:
            raise ValueError(
                f"{name} entry {entry!r} is not a network in CIDR notation "
                f"with its host bits zero, such as 10.0.0.0/8: {exc}"
            ) from None
    return tuple(networks)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in _MAPPED or address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


class PeerPolicy:
    """Allow and deny lists of peer networks, in CIDR notation.

    ``deny`` defaults to ``DEFAULT_DENIED``; pass an empty list to deny
    nothing. ``allow`` entries win over ``deny`` entries, so
    ``PeerPolicy(allow=["127.0.0.1/32"])`` keeps every default and admits
    loopback peers on 127.0.0.1, as a test relay needs.

    Raises ``ValueError`` for an entry that is not a network.
    """

    __slots__ = ("_allow", "_deny")

    def __init__(
        self,
        *,
        allow: Iterable[str | Network] = (),
        deny: Iterable[str | Network] | None = None,
    ) -> None:
        self._allow = _networks(allow, "allow")
        self._deny = _networks(DEFAULT_DENIED if deny is None else deny, "deny")

    @property
    def allow(self) -> tuple[Network, ...]:
        """The networks allowed even when a ``deny`` entry covers them."""
        return self._allow

    @property
    def deny(self) -> tuple[Network, ...]:
        """The networks denied unless an ``allow`` entry covers them."""
        return self._deny

    def is_allowed(self, host: str) -> bool:
        """Return whether peers at IP address ``host`` may be relayed to.

        Text that is not an IP address (a host name, an IPv6 zone) is
        never allowed.
        """
        if "%" in host:
            # ipaddress accepts IPv6 zones, which no STUN address carries.
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False

        forms: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
        if isinstance(address, ipaddress.IPv6Address):
            embedded = _embedded_ipv4(address)
            if embedded is not None:
                forms.append(embedded)

        if any(form in network for form in forms for network in self._allow):
            return True
        return not any(form in network for form in forms for network in self._deny)

    def __repr__(self) -> str:
        allow = [str(n) for n in self._allow]
        deny = [str(n) for n in self._deny]
        return f"PeerPolicy(allow={allow!r}, deny={deny!r})"
