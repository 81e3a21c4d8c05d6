"""Events that a TurnServer hands to the I/O layer that drives it.

Two kinds of event come out of ``TurnServer.poll``:

- Requests for work that a sans-IO server cannot do itself: bind a relay
  socket (``AllocateRelaySocket``), close one (``RelaySocketReleased``), and
  for TCP allocations (RFC 6062) open or close a TCP connection to a peer
  (``ConnectToPeer``, ``ClosePeerConnection``) or join a client's data
  connection to a peer connection (``ConnectionBound``).
- Changes to the allocation, permission and channel tables
  (``AllocationCreated`` ... ``ChannelExpired``). A relay that forwards
  ChannelData and peer datagrams in compiled code mirrors these into its
  own table; TurnServer forwards correctly without that mirror too.

Addresses are ``(host, port)`` tuples in canonical text form: IPv4 as a
dotted quad and IPv6 as ``socket.inet_ntop`` writes it, without a zone.
"""

from __future__ import annotations

from dataclasses import dataclass

from rice_fast.stun._constants import AddressFamily, TransportProtocol
from rice_fast.stun.transport import Address, TransportType

__all__ = [
    "FiveTuple",
    "TurnServerEvent",
    "AllocateRelaySocket",
    "RelaySocketReleased",
    "AllocationCreated",
    "AllocationExpired",
    "AllocationDeleted",
    "PermissionInstalled",
    "PermissionExpired",
    "ChannelBound",
    "ChannelExpired",
    "ConnectToPeer",
    "ConnectionBound",
    "ClosePeerConnection",
]


@dataclass(frozen=True, slots=True)
class FiveTuple:
    """The client side of an allocation: transport, server address, client address.

    ``local`` is the server's listening address that the client sent to,
    and ``remote`` the client's address as the server receives it. Together
    with the transport they identify the allocation.
    """

    transport: TransportType
    local: Address
    remote: Address


@dataclass(frozen=True, slots=True)
class TurnServerEvent:
    """Base class of the events that ``TurnServer.poll`` returns."""


@dataclass(frozen=True, slots=True)
class AllocateRelaySocket(TurnServerEvent):
    """Bind a relay socket, then call ``allocate_relay_socket_result``.

    The Allocate success response is sent only after the result arrives,
    so the I/O layer may bind asynchronously. Report the bound address, or
    None when no socket could be bound. Without a result the request fails
    after ``TurnServerConfig.relay_socket_timeout``.

    ``family`` is the address family of the relayed address and
    ``transport`` its protocol: UDP, or TCP for an RFC 6062 allocation,
    where the socket listens for peer connections. With ``even_port`` the
    port must be even (RFC 8656 §7.2 EVEN-PORT). With ``reserve_next`` the
    next port up must be held as well, for a later Allocate that redeems
    the reservation token; report None if it cannot be held. When
    ``reservation`` is set it is the address that an earlier
    ``reserve_next`` held: use the socket held there as the relay socket.
    ``five_tuple`` is the requesting client, for logs and per-client
    policies.
    """

    request_id: int
    family: AddressFamily
    transport: TransportProtocol
    even_port: bool
    reserve_next: bool
    reservation: Address | None
    five_tuple: FiveTuple


@dataclass(frozen=True, slots=True)
class RelaySocketReleased(TurnServerEvent):
    """Close the relay socket, or drop the held reservation, at ``relayed``.

    Emitted when an allocation or one family of a dual allocation goes
    away, when a reservation expires unused, and for a socket whose
    ``allocate_relay_socket_result`` came after the request had failed.
    """

    relayed: Address
    transport: TransportProtocol


@dataclass(frozen=True, slots=True)
class AllocationCreated(TurnServerEvent):
    """An allocation exists from now on; the success response is queued.

    ``relayed`` lists the relayed addresses, IPv4 first. ``lifetime`` is
    the granted lifetime in seconds and ``allocation_id`` the number that
    the server's log lines use for this allocation.
    """

    five_tuple: FiveTuple
    username: str
    relayed: tuple[Address, ...]
    transport: TransportProtocol
    lifetime: int
    allocation_id: int


@dataclass(frozen=True, slots=True)
class AllocationExpired(TurnServerEvent):
    """The allocation reached the end of its lifetime without a refresh.

    Its permissions and channels were reported expired just before, and
    ``RelaySocketReleased`` follows for each relayed address.
    """

    five_tuple: FiveTuple
    username: str
    relayed: tuple[Address, ...]
    allocation_id: int


@dataclass(frozen=True, slots=True)
class AllocationDeleted(TurnServerEvent):
    """The allocation was deleted before its expiry.

    The causes are a Refresh with LIFETIME 0 or the close of the client's
    TCP or TLS connection. As with ``AllocationExpired``, expiry events for
    its permissions and channels come first and ``RelaySocketReleased``
    events follow.
    """

    five_tuple: FiveTuple
    username: str
    relayed: tuple[Address, ...]
    allocation_id: int


@dataclass(frozen=True, slots=True)
class PermissionInstalled(TurnServerEvent):
    """Peers at ``peer_ip`` may now exchange data through ``relayed``.

    Emitted when a permission is created, not when it is refreshed.
    """

    relayed: Address
    peer_ip: str
    five_tuple: FiveTuple


@dataclass(frozen=True, slots=True)
class PermissionExpired(TurnServerEvent):
    """The permission for ``peer_ip`` on ``relayed`` no longer exists.

    Data to and from that IP address stops, including ChannelData on
    channels bound to it, until a new permission is installed.
    """

    relayed: Address
    peer_ip: str
    five_tuple: FiveTuple


@dataclass(frozen=True, slots=True)
class ChannelBound(TurnServerEvent):
    """``channel`` of the allocation on ``five_tuple`` now carries ``peer``.

    Emitted when a channel is bound, not when it is refreshed. Data flows
    only while a permission for the peer's IP address exists as well.
    """

    five_tuple: FiveTuple
    channel: int
    peer: Address
    relayed: Address


@dataclass(frozen=True, slots=True)
class ChannelExpired(TurnServerEvent):
    """The channel binding no longer exists; drop ChannelData on it."""

    five_tuple: FiveTuple
    channel: int
    peer: Address
    relayed: Address


@dataclass(frozen=True, slots=True)
class ConnectToPeer(TurnServerEvent):
    """Open a TCP connection from ``relayed`` to ``peer`` (RFC 6062 Connect).

    Report the outcome with ``connect_to_peer_result(connection_id,
    connected, now)``. Without it within ``TurnServerConfig.peer_connect_timeout`` the
    server fails the Connect request with 447 and emits
    ``ClosePeerConnection``.
    """

    connection_id: int
    relayed: Address
    peer: Address


@dataclass(frozen=True, slots=True)
class ConnectionBound(TurnServerEvent):
    """A client data connection is bound to a peer connection (RFC 6062).

    Write ``response`` (the ConnectionBind success response) to the data
    connection ``data_connection`` first, then relay bytes unchanged in
    both directions between it and the peer connection ``connection_id``,
    including any bytes the peer sent before this event. Pass nothing
    more from that data connection to the server.
    """

    connection_id: int
    data_connection: FiveTuple
    relayed: Address
    peer: Address
    response: bytes


@dataclass(frozen=True, slots=True)
class ClosePeerConnection(TurnServerEvent):
    """Close the peer TCP connection ``connection_id`` and its data connection.

    Emitted when the client did not bind the connection in time, when its
    allocation went away, or when the client's data connection closed.
    """

    connection_id: int
