"""RFC 6062 peer connections of a TurnClient: one record per CONNECTION-ID.

RFC 6062 §4.3 and §4.4: a Connect success response or a ConnectionAttempt
from the server names a peer TCP connection by CONNECTION-ID. The client
then opens a data connection to the server and sends ConnectionBind with
that id on it. After the success response the data connection carries the
peer's bytes and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rice_fast.stun import (
    AttributeType,
    Message,
    MessageBuilder,
    MessageClass,
    Method,
    TransportProtocol,
    message_type,
    parse,
)
from rice_fast.stun.attributes import ConnectionId
from rice_fast.stun.errors import StunParseError
from rice_fast.stun.transport import Address
from rice_fast.turn._connection import ServerConnection
from rice_fast.turn._options import TurnUsageError
from rice_fast.turn.events import (
    AllocateSocket,
    PeerConnected,
    PeerConnectFailed,
    PeerData,
    SocketPurpose,
)

if TYPE_CHECKING:
    from rice_fast.turn.client import TurnClient

__all__ = [
    "PeerConnection",
    "PeerConnectionTable",
    "bound",
    "drop",
    "failed",
    "on_connection_attempt",
    "on_stream",
    "request_socket",
    "socket_allocated",
]


@dataclass(slots=True, eq=False)
class PeerConnection:
    """One peer TCP connection, from its CONNECTION-ID to its data socket.

    ``conn`` is None until the caller hands over the data socket;
    ``bind_transaction`` is the ConnectionBind in flight.
    """

    connection_id: int
    peer: Address
    conn: ServerConnection | None = None
    bound: bool = False
    bind_transaction: bytes | None = None


class PeerConnectionTable:
    """Peer connections by CONNECTION-ID, and the bound ones by peer."""

    __slots__ = ("_by_id", "_by_peer")

    def __init__(self) -> None:
        self._by_id: dict[int, PeerConnection] = {}
        self._by_peer: dict[Address, PeerConnection] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, connection_id: int, peer: Address) -> PeerConnection | None:
        """Record a new peer connection; None when the id is known already."""
        if connection_id in self._by_id:
            return None
        record = self._by_id[connection_id] = PeerConnection(connection_id, peer)
        return record

    def get(self, connection_id: int) -> PeerConnection | None:
        """Return the record of ``connection_id``, or None."""
        return self._by_id.get(connection_id)

    def of_connection(self, conn: ServerConnection) -> PeerConnection | None:
        """Return the record whose data connection is ``conn``, or None."""
        for record in self._by_id.values():
            if record.conn is conn:
                return record
        return None

    def stream_to(self, peer: Address) -> ServerConnection | None:
        """Return the bound data connection to ``peer``, or None."""
        record = self._by_peer.get(peer)
        return None if record is None else record.conn

    def mark_bound(self, record: PeerConnection) -> None:
        """Record a ConnectionBind success: data to the peer may flow."""
        record.bound = True
        record.bind_transaction = None
        self._by_peer[record.peer] = record

    def remove(self, record: PeerConnection) -> None:
        """Forget ``record``."""
        self._by_id.pop(record.connection_id, None)
        if self._by_peer.get(record.peer) is record:
            del self._by_peer[record.peer]

    def connection_for_bind(self, request: bytes) -> ServerConnection | None:
        """Return the data connection that a ConnectionBind request is for."""
        try:
            attribute = parse(request).get(AttributeType.CONNECTION_ID)
        except StunParseError:
            return None
        if not isinstance(attribute, ConnectionId):
            return None
        record = self._by_id.get(attribute.connection_id)
        return None if record is None else record.conn


# What the client does with peer connections. These functions work on the
# client's state, as the request handlers in _requests do.


def request_socket(client: TurnClient, connection_id: int, peer: Address) -> None:
    """Record a peer connection and ask the caller for its data socket."""
    if client._peer_connections.add(connection_id, peer) is None:
        return
    client._events.append(
        AllocateSocket(
            SocketPurpose.PEER_CONNECTION,
            client.transport,
            client.server,
            connection_id=connection_id,
            peer=peer,
        )
    )


def socket_allocated(
    client: TurnClient, local: Address, connection_id: int, now: float
) -> None:
    """Open the data connection and send ConnectionBind on it (RFC 6062 §4.3)."""
    from rice_fast.turn._requests import Kind

    record = client._peer_connections.get(connection_id)
    if record is None or record.conn is not None:
        raise TurnUsageError(
            f"socket_allocated for connection id {connection_id}, which the "
            "client did not request"
        )
    conn = client._new_connection(local, client.server, data_connection=True)
    record.conn = conn
    client._connections[conn.local] = conn
    client._start_connection(conn)
    # The control connection's agent runs the request (see _new_connection);
    # poll_transmit routes its bytes to this data connection.
    record.bind_transaction = client._send_request(
        client._control,
        Method.CONNECTION_BIND,
        Kind.CONNECTION_BIND,
        connection_id,
        [ConnectionId(connection_id)],
        now,
    )


def bound(client: TurnClient, connection_id: int) -> None:
    """Switch the data connection of ``connection_id`` to raw bytes."""
    record = client._peer_connections.get(connection_id)
    if record is None or record.conn is None:
        return
    client._peer_connections.mark_bound(record)
    held = record.conn.bind_succeeded()
    client._events.append(PeerConnected(record.peer, connection_id, record.conn.local))
    if held:
        client._data_received += 1
        client._events.append(PeerData(record.peer, held))


def failed(client: TurnClient, connection_id: int, code: int, reason: str) -> None:
    """Forget the data connection of ``connection_id`` after a failure."""
    record = client._peer_connections.get(connection_id)
    if record is None:
        return
    record.bind_transaction = None
    drop(client, record)
    client._events.append(PeerConnectFailed(record.peer, connection_id, code, reason))


def drop(client: TurnClient, record: PeerConnection) -> None:
    """Forget ``record``, cancelling its ConnectionBind if one is in flight."""
    if record.bind_transaction is not None:
        client._requests.pop(record.bind_transaction, None)
        client._control.agent.cancel(record.bind_transaction)
        client._agent_events = True
        record.bind_transaction = None
    client._peer_connections.remove(record)
    if record.conn is not None:
        client._connections.pop(record.conn.local, None)


def on_connection_attempt(
    client: TurnClient, conn: ServerConnection, message: Message
) -> None:
    """RFC 6062 §4.4: a peer connected to the relayed address.

    Raises ``StunParseError`` for a message without XOR-PEER-ADDRESS or
    CONNECTION-ID, which the caller counts and drops.
    """
    peer = message.xor_peer_address()
    attribute = message.get(AttributeType.CONNECTION_ID)
    if peer is None or not isinstance(attribute, ConnectionId):
        raise StunParseError(
            "ConnectionAttempt without XOR-PEER-ADDRESS or CONNECTION-ID", 0
        )
    if message.is_request:
        # RFC 6062 defines an indication; a server that sends a request
        # gets a success response.
        builder = MessageBuilder(
            message_type(Method.CONNECTION_ATTEMPT, MessageClass.SUCCESS),
            message.transaction_id,
        )
        client._queue(conn, builder.finish(fingerprint=True))
    if client.options.relay_transport != TransportProtocol.TCP:
        client._stats["dropped_unexpected_message"] += 1
        return
    request_socket(client, attribute.connection_id, peer)


def on_stream(client: TurnClient, conn: ServerConnection, chunk: bytes) -> None:
    """Report bytes read from a bound data connection as ``PeerData``."""
    record = client._peer_connections.of_connection(conn)
    if record is None or not chunk:
        return
    client._data_received += 1
    client._events.append(PeerData(record.peer, chunk))
