"""Address helpers of the TURN client: canonical text, comparison, family."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

from rice_fast.stun import AddressFamily
from rice_fast.stun.transport import Address
from rice_fast.turn._options import TurnUsageError

__all__ = [
    "canonical_address",
    "check_family",
    "family_of",
    "peer_ip",
    "same_address",
]


def canonical_address(address: Address, name: str = "peer") -> Address:
    """Return ``address`` with its host in canonical text form.

    Peers and servers are compared by their address tuples, so "::0001"
    and "::1" must become the same text. Raises ``TurnUsageError`` when the
    host is not an IP address literal or the port is outside 0..65535.
    """
    try:
        host, port = address
        ip = ipaddress.ip_address(host)
    except (TypeError, ValueError):
        raise TurnUsageError(
            f"{name} {address!r} is not an (IP address, port) pair; TURN peers "
            "and servers are given by IP address"
        ) from None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 0xFFFF:
        raise TurnUsageError(f"{name} port {port!r} is not in 0..65535")
    return (str(ip), port)


def same_address(a: Address, b: Address) -> bool:
    """Return whether two addresses name the same IP address and port."""
    if a[1] != b[1]:
        return False
    if a[0] == b[0]:
        return True
    try:
        return ipaddress.ip_address(a[0]) == ipaddress.ip_address(b[0])
    except ValueError:
        return False


def family_of(host: str) -> AddressFamily:
    """Return the family of an IP address in text form."""
    return AddressFamily.IPV6 if ":" in host else AddressFamily.IPV4


def peer_ip(peer: Address | str) -> str:
    """Return the canonical IP text of a peer given as an address or an IP."""
    if isinstance(peer, str):
        return canonical_address((peer, 0))[0]
    return canonical_address(peer)[0]


def check_family(
    ip: str, relayed: Collection[Address], requested: Collection[AddressFamily]
) -> None:
    """Raise ``TurnUsageError`` unless the allocation relays ``ip``'s family.

    RFC 8656 §10.2: a peer of a family without a relayed address draws 443
    (Peer Address Family Mismatch), so the client refuses it up front.
    ``relayed`` decides once the allocation exists, ``requested`` before.
    """
    family = family_of(ip)
    families = {family_of(a[0]) for a in relayed} if relayed else set(requested)
    if family not in families:
        names = " and ".join(sorted(f.name for f in families))
        raise TurnUsageError(
            f"peer {ip} is {family.name} but the allocation relays {names}; "
            "allocate with AllocationOptions(address_family=...) or dual_stack=True"
        )
