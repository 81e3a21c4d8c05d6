"""TCP allocations for TurnServer (RFC 6062).

A TCP allocation relays TCP connections instead of datagrams. The client
keeps its control connection (the one that carried the Allocate) and
opens one data connection per peer connection:

- Outgoing: Connect names a peer. The server emits ``ConnectToPeer`` and
  waits for ``connect_to_peer_result``. The Connect response carries the
  new CONNECTION-ID, or is a 447 when the attempt fails or takes longer
  than ``peer_connect_timeout``.
- Incoming: the I/O layer accepts a connection on the relayed address and
  calls ``handle_peer_connection``. With a permission for the peer's IP
  the server sends a ConnectionAttempt indication with the CONNECTION-ID
  on the control connection; otherwise the connection is refused.
- Either way the client then opens a new TCP or TLS connection to the
  server and sends ConnectionBind with the CONNECTION-ID. The server
  responds through a ``ConnectionBound`` event: the I/O layer writes the
  response and from then on copies bytes between the two connections.
  A connection not bound within ``connection_bind_timeout`` is closed
  (``ClosePeerConnection``).

Unbound connections are limited per allocation and in total; beyond the
limits Connect gets 508 and incoming connections are refused.
"""

from __future__ import annotations

import logging
import secrets

from rice_fast.stun._codec import MessageBuilder, new_transaction_id
from rice_fast.stun._constants import (
    AttributeType,
    ErrorCode,
    MessageClass,
    Method,
    TransportProtocol,
    message_type,
)
from rice_fast.stun.errors import StunParseError
from rice_fast.stun.transport import Address, Transmit, TransportType
from rice_fast.turn._allocations import (
    Allocation,
    ConnectionState,
    PeerConnection,
    family_of,
)
from rice_fast.turn._peer_policy import PeerPolicy
from rice_fast.turn._server_config import DropReason
from rice_fast.turn._server_core import Request, ServerCore
from rice_fast.turn._server_messages import (
    Rejection,
    read_connection_id,
    start_success,
)
from rice_fast.turn.server_events import (
    ClosePeerConnection,
    ConnectionBound,
    ConnectToPeer,
    FiveTuple,
)

__all__ = ["TcpRelay"]

_log = logging.getLogger("rice_fast.turn.server")

_CONNECTION_ATTEMPT = message_type(Method.CONNECTION_ATTEMPT, MessageClass.INDICATION)


class TcpRelay:
    """Connect, ConnectionBind and ConnectionAttempt, and their timers."""

    def __init__(self, core: ServerCore, policy: PeerPolicy) -> None:
        self._core = core
        self._policy = policy

    def connect(self, request: Request, allocation: Allocation, now: float) -> None:
        """Start an outgoing peer connection for a Connect request."""
        core = self._core
        if allocation.transport is not TransportProtocol.TCP:
            core.reject(request, Rejection.of(ErrorCode.BAD_REQUEST, "UDP allocation"))
            return
        try:
            peer = request.message.xor_peer_address()
        except StunParseError:
            peer = None
        if peer is None or peer[1] == 0:
            rejection = Rejection.of(ErrorCode.BAD_REQUEST, "XOR-PEER-ADDRESS")
            core.reject(request, rejection)
            return
        relayed = allocation.relayed.get(family_of(peer[0]))
        if relayed is None:
            core.reject(request, Rejection.of(ErrorCode.PEER_ADDRESS_FAMILY_MISMATCH))
            return
        if not self._policy.is_allowed(peer[0]):
            core.reject(request, Rejection.of(ErrorCode.FORBIDDEN, peer[0]))
            return
        if peer in allocation.connected_peers:
            core.reject(request, Rejection.of(ErrorCode.CONNECTION_ALREADY_EXISTS))
            return
        if not self._has_room(allocation):
            rejection = Rejection.of(
                ErrorCode.INSUFFICIENT_CAPACITY, "too many pending connections"
            )
            core.reject(request, rejection)
            return

        expires = now + core.config.peer_connect_timeout
        connection = PeerConnection(
            allocation,
            self._new_connection_id(),
            peer,
            ConnectionState.CONNECTING,
            expires,
        )
        connection.transaction_id = request.message.transaction_id
        connection.signer = request.signer
        core.table.add_connection(connection)
        core.emit(ConnectToPeer(connection.connection_id, relayed, peer))
        _log.debug(
            "allocation %d connecting to %s as connection %d",
            allocation.allocation_id,
            peer,
            connection.connection_id,
        )

    def connect_result(self, connection_id: int, connected: bool, now: float) -> None:
        """Send the Connect response once the attempt has ended."""
        core = self._core
        connection = core.table.connections.get(connection_id)
        if connection is None:
            if connected:
                # The Connect failed already (it timed out or its allocation
                # went away), so the new connection has no use.
                core.emit(ClosePeerConnection(connection_id))
            return
        if connection.state is not ConnectionState.CONNECTING:
            _log.debug("connection %d has a result already", connection_id)
            return
        if not connected:
            core.table.drop_connection(connection, notify=False)
            self._fail_connect(connection)
            return

        connection.state = ConnectionState.AWAITING_BIND
        connection.expires = now + core.config.connection_bind_timeout
        core.timers.schedule(connection)
        assert connection.transaction_id is not None
        assert connection.signer is not None
        builder = start_success(Method.CONNECT, connection.transaction_id)
        builder.add_u32(AttributeType.CONNECTION_ID, connection_id)
        core.send_success(connection.allocation.key, builder, connection.signer)

    def accept(self, relayed: Address, peer: Address, now: float) -> int | None:
        """Take an incoming peer connection; see ``TurnServer``."""
        core = self._core
        allocation = core.table.tcp_relays.get(relayed)
        if allocation is None:
            core.drop(DropReason.UNKNOWN_RELAY, peer, f"TCP connection to {relayed}")
            return None
        permission = allocation.permissions.get(peer[0])
        if permission is None or permission.expires <= now:
            core.drop(DropReason.NO_PERMISSION, peer, f"TCP connection to {relayed}")
            return None
        if peer in allocation.connected_peers or not self._has_room(allocation):
            core.drop(DropReason.QUEUE_FULL, peer, "too many pending connections")
            return None

        expires = now + core.config.connection_bind_timeout
        connection = PeerConnection(
            allocation,
            self._new_connection_id(),
            peer,
            ConnectionState.AWAITING_BIND,
            expires,
        )
        core.table.add_connection(connection)

        builder = MessageBuilder(_CONNECTION_ATTEMPT, new_transaction_id())
        builder.add_xor_peer_address(peer[0], peer[1])
        builder.add_u32(AttributeType.CONNECTION_ID, connection.connection_id)
        data: bytes = builder.finish(None, fingerprint=True)
        key = allocation.key
        core.transmit(Transmit(key[0], key[1], key[2], data))
        _log.debug(
            "allocation %d accepted %s as connection %d",
            allocation.allocation_id,
            peer,
            connection.connection_id,
        )
        return connection.connection_id

    def closed(self, connection_id: int, now: float) -> None:
        """Forget a peer connection that the I/O layer saw close."""
        table = self._core.table
        connection = table.connections.get(connection_id)
        if connection is None:
            return
        table.drop_connection(connection, notify=False)
        if connection.state is ConnectionState.CONNECTING:
            self._fail_connect(connection)

    def timed_out(self, connection: PeerConnection, now: float) -> None:
        """Close a connection that was not set up or not bound in time."""
        self._core.table.drop_connection(connection, notify=True)
        if connection.state is ConnectionState.CONNECTING:
            self._fail_connect(connection)
        else:
            _log.debug("connection %d was not bound in time", connection.connection_id)

    def connection_bind(
        self, request: Request, allocation: Allocation | None, now: float
    ) -> None:
        """Bind a new client data connection to a peer connection (RFC 6062 §5.4)."""
        core = self._core
        if request.transport is TransportType.UDP:
            rejection = Rejection.of(ErrorCode.BAD_REQUEST, "ConnectionBind over UDP")
            core.reject(request, rejection)
            return
        if allocation is not None:
            rejection = Rejection.of(
                ErrorCode.BAD_REQUEST, "ConnectionBind on a control connection"
            )
            core.reject(request, rejection)
            return
        connection_id = read_connection_id(request.message)
        if isinstance(connection_id, Rejection):
            core.reject(request, connection_id)
            return
        connection = core.table.connections.get(connection_id)
        if connection is None or connection.state is not ConnectionState.AWAITING_BIND:
            rejection = Rejection.of(ErrorCode.BAD_REQUEST, "unknown CONNECTION-ID")
            core.reject(request, rejection)
            return
        owner = connection.allocation
        if owner.username != request.signer.username:
            core.reject(request, Rejection.of(ErrorCode.WRONG_CREDENTIALS))
            return

        core.table.bind_connection(connection, request.key)
        builder = start_success(Method.CONNECTION_BIND, request.message.transaction_id)
        response = core.sign(builder, request.signer)
        core.counters.success_responses += 1
        relayed = owner.relayed[family_of(connection.peer[0])]
        data_connection = FiveTuple(request.transport, request.local, request.remote)
        core.emit(
            ConnectionBound(
                connection_id, data_connection, relayed, connection.peer, response
            )
        )
        _log.debug(
            "connection %d bound to data connection %s",
            connection_id,
            request.remote,
        )

    def _fail_connect(self, connection: PeerConnection) -> None:
        assert connection.transaction_id is not None
        assert connection.signer is not None
        self._core.send_error(
            connection.allocation.key,
            Method.CONNECT,
            connection.transaction_id,
            connection.signer,
            Rejection.of(ErrorCode.CONNECTION_TIMEOUT_OR_FAILURE),
        )

    def _has_room(self, allocation: Allocation) -> bool:
        config = self._core.config
        if self._core.table.pending_connection_count >= config.max_pending_connections:
            return False
        pending = allocation.pending_connections()
        return pending < config.max_pending_connections_per_allocation

    def _new_connection_id(self) -> int:
        connections = self._core.table.connections
        while True:
            candidate = secrets.randbits(32)
            if candidate and candidate not in connections:
                return candidate
