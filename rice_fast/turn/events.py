"""Events a TurnClient reports from ``poll``.

Every event is a frozen, slotted dataclass deriving from ``TurnEvent``.
Error codes are the STUN ERROR-CODE numbers (RFC 8489 §14.8, RFC 8656
§19); code 0 means that no error response arrived: the request timed out,
the connection failed or the client gave up locally, and ``reason``
describes the cause.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rice_fast.stun.transport import Address, TransportType

__all__ = [
    "AllocateSocket",
    "AllocationCreated",
    "AllocationDeleted",
    "AllocationFailed",
    "AllocationRefreshed",
    "ChannelBindFailed",
    "ChannelBound",
    "ChannelExpired",
    "PeerConnectFailed",
    "PeerConnected",
    "PeerData",
    "PeerDisconnected",
    "PeerIcmp",
    "PermissionCreated",
    "PermissionExpired",
    "PermissionFailed",
    "ServerRedirected",
    "SocketPurpose",
    "TurnEvent",
]


@dataclass(frozen=True, slots=True)
class TurnEvent:
    """Base class of the TurnClient events."""


@dataclass(frozen=True, slots=True)
class AllocationCreated(TurnEvent):
    """The server granted an allocation, or a new one after a 437.

    ``relayed_addresses`` has one address, or two for a dual-stack
    allocation (RFC 8656 §7.1), sorted IPv4 first. ``mapped_address`` is the
    client's server-reflexive address from XOR-MAPPED-ADDRESS, and
    ``lifetime`` the granted lifetime in seconds. ``reservation_token`` is
    the RESERVATION-TOKEN the server returned for an EVEN-PORT request with
    the R bit. ``address_error`` is ``(family, code, reason)`` from
    ADDRESS-ERROR-CODE when one family of a dual-stack request was refused.
    ``local_address`` is the socket the allocation belongs to, which
    changes after a re-allocation.
    """

    relayed_addresses: tuple[Address, ...]
    mapped_address: Address | None
    lifetime: int
    local_address: Address
    reservation_token: bytes | None = None
    address_error: tuple[int, int, str] | None = None


@dataclass(frozen=True, slots=True)
class AllocationRefreshed(TurnEvent):
    """A Refresh succeeded; ``lifetime`` is the newly granted lifetime (s)."""

    lifetime: int


@dataclass(frozen=True, slots=True)
class AllocationFailed(TurnEvent):
    """The allocation could not be created or was lost. This event is final.

    Examples: 401 for credentials the server rejects, 486 when the user's
    quota is reached, 437 after too many re-allocations, 0 with a reason
    for a timeout, a failed TLS handshake or a closed control connection.
    """

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class AllocationDeleted(TurnEvent):
    """``delete`` finished: the server confirmed or the request ended.

    ``confirmed`` is false when the Refresh with LIFETIME 0 timed out or
    failed, in which case the allocation expires on the server by itself.
    This event is final.
    """

    confirmed: bool


class SocketPurpose(enum.Enum):
    """Why the client asks its caller for a new socket."""

    REALLOCATE = "reallocate"
    """The server reported 437: allocate again from a new local port."""

    ALTERNATE_SERVER = "alternate-server"
    """A 300 over TCP or TLS: connect to the alternate server."""

    PEER_CONNECTION = "peer-connection"
    """RFC 6062: a data connection to the server for one TCP peer."""


@dataclass(frozen=True, slots=True)
class AllocateSocket(TurnEvent):
    """The client needs a new socket to ``server``, which the caller opens.

    Over UDP the caller binds a new socket (same address family, new
    port). Over TCP and TLS it opens a new TCP connection to ``server``,
    and the TLS session runs inside the client. The caller then calls
    ``TurnClient.socket_allocated(local_address, now, connection_id=...)``
    with the new socket's local address, or ``socket_failed`` when it
    cannot. ``connection_id`` and ``peer`` are set for
    ``SocketPurpose.PEER_CONNECTION``; pass the same ``connection_id``
    back. After a ``REALLOCATE`` or ``ALTERNATE_SERVER`` socket is in
    place, the client no longer uses the old socket and the caller closes
    it.
    """

    purpose: SocketPurpose
    transport: TransportType
    server: Address
    connection_id: int | None = None
    peer: Address | None = None


@dataclass(frozen=True, slots=True)
class ServerRedirected(TurnEvent):
    """A 300 Try Alternate moved the client to ``server`` (RFC 8489 §10)."""

    server: Address


@dataclass(frozen=True, slots=True)
class PermissionCreated(TurnEvent):
    """The server installed a permission for ``peer_ip`` (any port)."""

    peer_ip: str


@dataclass(frozen=True, slots=True)
class PermissionFailed(TurnEvent):
    """A CreatePermission for ``peer_ip`` failed (403, 443, 508, timeout...).

    The permission stays usable until its expiry if an earlier request
    installed it.
    """

    peer_ip: str
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class PermissionExpired(TurnEvent):
    """The permission for ``peer_ip`` reached its 300 s lifetime unrefreshed."""

    peer_ip: str


@dataclass(frozen=True, slots=True)
class ChannelBound(TurnEvent):
    """``channel`` is bound to ``peer``; data now goes as ChannelData."""

    peer: Address
    channel: int


@dataclass(frozen=True, slots=True)
class ChannelBindFailed(TurnEvent):
    """A ChannelBind of ``channel`` to ``peer`` failed."""

    peer: Address
    channel: int
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ChannelExpired(TurnEvent):
    """The binding of ``channel`` to ``peer`` reached its 600 s lifetime."""

    peer: Address
    channel: int


@dataclass(frozen=True, slots=True)
class PeerData(TurnEvent):
    """Application data that ``peer`` sent to the relayed address.

    From a Data indication or ChannelData on a UDP allocation, or from the
    data connection of a TCP allocation (RFC 6062), where ``data`` is one
    read of the byte stream and message boundaries are not preserved.
    """

    peer: Address
    data: bytes


@dataclass(frozen=True, slots=True)
class PeerIcmp(TurnEvent):
    """An ICMP error about traffic to ``peer``, relayed in a Data indication.

    RFC 8656 §11.6 and §18.13: ``icmp_type`` and ``icmp_code`` are those of
    the ICMP (or ICMPv6) packet the relay received; ``error_data`` is the
    next-hop MTU for "fragmentation needed" and "packet too big", else 0.
    """

    peer: Address
    icmp_type: int
    icmp_code: int
    error_data: int


@dataclass(frozen=True, slots=True)
class PeerConnected(TurnEvent):
    """RFC 6062: the data connection for ``peer`` is bound and carries data.

    ``local_address`` is the data connection's local address, the source
    of its transmits.
    """

    peer: Address
    connection_id: int
    local_address: Address


@dataclass(frozen=True, slots=True)
class PeerConnectFailed(TurnEvent):
    """RFC 6062: a Connect or ConnectionBind for ``peer`` failed.

    ``connection_id`` is None when the Connect request itself failed (for
    example 447 when the peer refused the TCP connection).
    """

    peer: Address
    connection_id: int | None
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class PeerDisconnected(TurnEvent):
    """RFC 6062: the data connection for ``peer`` closed."""

    peer: Address
    connection_id: int
    reason: str
