"""TurnServer: the server side of TURN (RFC 8656, RFC 6156, RFC 6062), without I/O.

Theory of operation: the I/O layer feeds every message from a client and
every datagram from a peer into the server, which responds to requests,
relays data and keeps the allocation, permission and channel tables. It
requests from the I/O layer, through events, what it cannot do itself: bind
relay sockets and, for TCP allocations, open and join TCP connections.

Each client message is one UDP datagram, or one frame cut from a TCP or
TLS stream by ``StreamDeframer`` (a whole STUN message, or a ChannelData
message with or without its padding). Its first byte selects the path:
0x00-0x03 is STUN, 0x40-0x7F ChannelData (RFC 5766 clients bind channels up to 0x7FFF);
anything else is dropped.

Requests are checked in this order, and the first failure decides the
response:

1. Methods other than Binding and the TURN methods get 400.
2. Unknown comprehension-required attributes get 420. DONT-FRAGMENT is
   one of them, because relay sockets here do not set the DF bit.
   A Binding request then gets XOR-MAPPED-ADDRESS, without
   authentication.
3. A retransmitted Allocate (the transaction id of the Allocate that
   created the allocation on this 5-tuple) gets the cached response, and
   one whose allocation is still being set up is ignored.
4. ``LongTermAuthenticator`` checks the credentials: 401 or 438 with
   REALM, NONCE and PASSWORD-ALGORITHMS, or 400. These responses carry
   nothing else (no SOFTWARE), so a response to an unauthenticated request
   is never more than ``unauthenticated_overhead`` bytes larger than the
   request; anything larger is dropped.
5. Allocate on a 5-tuple that has an allocation gets 437. Any other
   request without an allocation gets 437, and with an allocation owned
   by another user 441. ConnectionBind is the exception, because it
   arrives on a new connection.
6. The method's own checks (400, 403, 440, 442, 443, 446, 486, 508).

Every response to an authenticated request carries MESSAGE-INTEGRITY or
MESSAGE-INTEGRITY-SHA256, as the request did, and FINGERPRINT.

Nonces are bound to the client's IP address and not its port, so that the
ConnectionBind on an RFC 6062 data connection, which comes from a new
port, can reuse the nonce of the control connection.
"""

from __future__ import annotations

import logging
from typing import Final

from rice_fast.stun._codec import Message, MessageBuilder, new_transaction_id, parse
from rice_fast.stun._constants import (
    AttributeType,
    ErrorCode,
    MessageClass,
    Method,
    TransportProtocol,
    message_type,
)
from rice_fast.stun.attributes import KNOWN_ATTRIBUTES
from rice_fast.stun.auth import LongTermAuthenticator
from rice_fast.stun.errors import StunBuildError, StunParseError
from rice_fast.stun.transport import Address, Transmit, TransportType, WaitUntil
from rice_fast.turn._allocations import (
    Allocation,
    Channel,
    ChannelCooloff,
    FiveTupleKey,
    PeerConnection,
    PendingAllocation,
    Permission,
    Reservation,
    Signer,
    family_of,
)
from rice_fast.turn._framing import channel_data_payload, encode_channel_data
from rice_fast.turn._peer_policy import DEFAULT_DENIED, PeerPolicy
from rice_fast.turn._server_allocate import AllocateHandler
from rice_fast.turn._server_config import DropReason, TurnServerConfig, TurnServerStats
from rice_fast.turn._server_core import Request, ServerCore
from rice_fast.turn._server_messages import (
    Rejection,
    read_channel_number,
    read_peers,
    start_success,
)
from rice_fast.turn._server_tcp import TcpRelay
from rice_fast.turn.errors import ChannelDataError
from rice_fast.turn.server_events import TurnServerEvent

__all__ = [
    "DEFAULT_DENIED",
    "DropReason",
    "PeerPolicy",
    "TurnServer",
    "TurnServerConfig",
    "TurnServerStats",
]

_log = logging.getLogger(__name__)

_UDP: Final = TransportType.UDP
_TURN_METHODS: Final = frozenset(
    (
        Method.ALLOCATE,
        Method.REFRESH,
        Method.CREATE_PERMISSION,
        Method.CHANNEL_BIND,
        Method.CONNECT,
        Method.CONNECTION_BIND,
    )
)
# DONT-FRAGMENT is left out, so that requests and Send indications with it
# are treated as having an unknown comprehension-required attribute, as
# RFC 8656 §7.2 and §11.2 ask of a server that cannot set the DF bit.
_KNOWN: Final = KNOWN_ATTRIBUTES - {AttributeType.DONT_FRAGMENT}
_DATA_INDICATION: Final = message_type(Method.DATA, MessageClass.INDICATION)


class TurnServer:
    """A TURN server's protocol logic, driven by the caller's I/O and clock.

    Call order:

    1. Feed input: ``handle_client_data`` for each datagram or deframed
       TCP/TLS frame from a client, ``handle_peer_data`` for each datagram
       that arrives on a UDP relay socket, ``handle_client_closed`` when a
       client's TCP or TLS connection closes, and the results of the
       server's requests: ``allocate_relay_socket_result``, and for TCP
       allocations ``connect_to_peer_result``, ``handle_peer_connection``
       and ``handle_peer_connection_closed``.
    2. ``poll(now)`` until it returns a ``WaitUntil`` or None: it expires
       what is due and returns the next event (see ``server_events``).
    3. ``poll_transmit(now)`` until it returns None, sending each
       ``Transmit``. Client-bound ones go out on the listening socket or
       connection given by ``transport`` and ``source``; peer-bound ones
       have ``source`` set to the relayed address to send from.
    4. Sleep until the ``WaitUntil`` deadline or new input.

    Peer addresses passed in must use the canonical text form of
    ``server_events`` (an IPv4 peer on a dual-stack relay socket as
    ``1.2.3.4``, not ``::ffff:1.2.3.4``) so that they match permissions.
    ChannelData and Send indications are relayed only while the peer's IP
    address has a permission, in both directions.
    """

    def __init__(self, config: TurnServerConfig) -> None:
        core = ServerCore(config)
        self._core = core
        self._config = config
        self._table = core.table
        self._counters = core.counters
        self._timers = core.timers
        self._policy = config.peer_policy
        self._allocations = AllocateHandler(core)
        self._tcp = TcpRelay(core, config.peer_policy)

    # Properties.

    @property
    def config(self) -> TurnServerConfig:
        """The settings this server was created with."""
        return self._config

    @property
    def authenticator(self) -> LongTermAuthenticator:
        """The long-term credential checker in use."""
        return self._core.authenticator

    @property
    def unauthenticated_overhead(self) -> int:
        """Bytes by which a response to an unauthenticated request may exceed it.

        The largest such response is the 401 to a 20-byte request: it adds
        24 bytes of ERROR-CODE, 4 plus the padded realm for REALM, 4 plus
        the padded nonce for NONCE and 4 plus 4 per algorithm for
        PASSWORD-ALGORITHMS. FINGERPRINT appears only when the request has
        one too. With the default 45-character nonce, both password
        algorithms and a realm of 9 to 12 bytes that is 104 bytes.
        """
        return self._core.unauthenticated_overhead

    @property
    def stats(self) -> TurnServerStats:
        """A snapshot of the counters."""
        return self._counters.snapshot()

    # Input.

    def handle_client_data(
        self,
        transport: TransportType,
        local: Address,
        remote: Address,
        data: bytes,
        now: float,
    ) -> None:
        """Process one message from a client.

        ``data`` is a UDP datagram, or over TCP and TLS one frame as
        ``StreamDeframer`` returns it. ``local`` is the server address it
        arrived on and ``remote`` the client's address. Never raises for
        the content of ``data``.
        """
        try:
            if not data:
                self._core.drop(DropReason.NOT_STUN, remote, "empty message")
                return
            first = data[0]
            if 0x40 <= first <= 0x7F:
                self._channel_data_from_client((transport, local, remote), data, now)
            elif first <= 0x03:
                self._stun_from_client(transport, local, remote, data, now)
            else:
                detail = f"first byte {first:#04x}"
                self._core.drop(DropReason.NOT_STUN, remote, detail)
        except Exception:
            # A bug must not stop the server: count it and keep going.
            self._counters.dropped[DropReason.INTERNAL_ERROR] += 1
            _log.exception("internal error on a message from %s; dropped it", remote)

    def handle_peer_data(
        self, relayed: Address, peer: Address, data: bytes, now: float
    ) -> None:
        """Relay a datagram that ``peer`` sent to the UDP relay socket ``relayed``.

        Sent to the client as ChannelData when a channel is bound to the
        peer, else as a Data indication, and dropped without a permission
        for the peer's IP address. Never raises for the content of ``data``.
        """
        try:
            self._peer_datagram(relayed, peer, data, now)
        except Exception:
            self._counters.dropped[DropReason.INTERNAL_ERROR] += 1
            _log.exception("internal error on a datagram from %s; dropped it", peer)

    def handle_client_closed(
        self, transport: TransportType, local: Address, remote: Address, now: float
    ) -> None:
        """Forget a client's closed TCP or TLS connection.

        An allocation on it is deleted, an Allocate on it that still waits
        for its relay socket is abandoned, and an RFC 6062 data connection
        takes its peer connection with it (``ClosePeerConnection``).
        """
        key: FiveTupleKey = (transport, local, remote)
        table = self._table
        allocation = table.by_five_tuple.get(key)
        if allocation is not None:
            table.remove(allocation, expired=False)
        pending = table.pending.get(key)
        if pending is not None:
            self._allocations.abandon(pending)
        connection = table.data_connections.get(key)
        if connection is not None:
            table.drop_connection(connection, notify=True)

    def allocate_relay_socket_result(
        self, request_id: int, relayed: Address | None, now: float
    ) -> None:
        """Report the result of an ``AllocateRelaySocket``: the address, or None.

        The Allocate response goes out once every family of the request is
        has a result. A result for a request that already failed releases the
        socket again (``RelaySocketReleased``). Raises ``ValueError`` for a
        request id that was never issued or already has a result, and for an
        address of the wrong family.
        """
        self._allocations.relay_socket_result(request_id, relayed, now)

    def connect_to_peer_result(
        self, connection_id: int, connected: bool, now: float
    ) -> None:
        """Report the result of a ``ConnectToPeer``: whether the connection is up.

        A success that comes after the Connect failed draws a
        ``ClosePeerConnection``.
        """
        self._tcp.connect_result(connection_id, connected, now)

    def handle_peer_connection(
        self, relayed: Address, peer: Address, now: float
    ) -> int | None:
        """Take a TCP connection that ``peer`` opened to a TCP relayed address.

        Returns the connection id, announced to the client in a
        ConnectionAttempt indication (RFC 6062 §5.3): keep the connection,
        and buffer what the peer sends, until ``ConnectionBound`` or
        ``ClosePeerConnection``. Returns None when the connection must be
        closed: no TCP allocation at ``relayed``, no permission for the
        peer's IP address, or too many unbound connections.
        """
        return self._tcp.accept(relayed, peer, now)

    def handle_peer_connection_closed(self, connection_id: int, now: float) -> None:
        """Forget a peer TCP connection that closed or could not be opened.

        The I/O layer closes the client data connection bound to it.
        """
        self._tcp.closed(connection_id, now)

    def handle_timeout(self, now: float) -> None:
        """Expire every allocation, permission, channel and timer due by ``now``."""
        table = self._table
        pop_due = self._timers.pop_due
        cooloff = self._config.channel_cooloff
        while (item := pop_due(now)) is not None:
            if isinstance(item, Permission):
                table.expire_permission(item)
            elif isinstance(item, Channel):
                table.expire_channel(item, item.expires + cooloff)
            elif isinstance(item, Allocation):
                table.remove(item, expired=True)
            elif isinstance(item, ChannelCooloff):
                table.end_cooloff(item)
            elif isinstance(item, PendingAllocation):
                self._allocations.timed_out(item, now)
            elif isinstance(item, PeerConnection):
                self._tcp.timed_out(item, now)
            elif isinstance(item, Reservation):
                table.expire_reservation(item)

    # Output.

    def poll(self, now: float) -> TurnServerEvent | WaitUntil | None:
        """Run due timers, then return the next event or the next deadline.

        Returns None when there is neither an event nor a timer.
        """
        self.handle_timeout(now)
        events = self._core.events
        if events:
            return events.popleft()
        deadline = self._timers.next_deadline()
        if deadline is None:
            return None
        return WaitUntil(deadline)

    def poll_transmit(self, now: float) -> Transmit | None:
        """Return the next message to send, or None."""
        transmits = self._core.transmits
        if not transmits:
            return None
        return transmits.popleft()

    # Relaying.

    def _channel_data_from_client(
        self, key: FiveTupleKey, data: bytes, now: float
    ) -> None:
        core = self._core
        allocation = self._table.by_five_tuple.get(key)
        if allocation is None:
            core.drop(DropReason.NO_ALLOCATION, key[2], "ChannelData")
            return
        try:
            number, payload = channel_data_payload(data)
        except ChannelDataError as exc:
            core.drop(DropReason.MALFORMED, key[2], str(exc))
            return
        channel = allocation.channels.get(number)
        if channel is None or channel.expires <= now:
            core.drop(DropReason.NO_CHANNEL, key[2], f"channel {number:#06x}")
            return
        peer = channel.peer
        # NOTE: RFC 8656 §12.6 needs only the bound channel here. Requiring
        # the permission too matches the peer-to-client check of §11.3.
        permission = allocation.permissions.get(peer[0])
        if permission is None or permission.expires <= now:
            core.drop(DropReason.NO_PERMISSION, key[2], f"ChannelData to {peer}")
            return
        core.transmit(Transmit(_UDP, channel.relayed, peer, payload))
        counters = self._counters
        counters.packets_to_peer += 1
        counters.bytes_to_peer += len(payload)

    def _send_indication(self, key: FiveTupleKey, message: Message, now: float) -> None:
        core = self._core
        remote = key[2]
        allocation = self._table.by_five_tuple.get(key)
        if allocation is None:
            core.drop(DropReason.NO_ALLOCATION, remote, "Send indication")
            return
        if allocation.transport is TransportProtocol.TCP:
            core.drop(DropReason.TCP_ALLOCATION, remote, "Send indication")
            return
        if message.unknown_comprehension_required(_KNOWN):
            # RFC 8489 §6.3: an indication with an unknown
            # comprehension-required attribute is discarded.
            core.drop(DropReason.UNKNOWN_ATTRIBUTE, remote, "Send indication")
            return
        try:
            peer = message.xor_peer_address()
            payload = message.data_attribute()
        except StunParseError as exc:
            core.drop(DropReason.MALFORMED, remote, str(exc))
            return
        if peer is None or payload is None or peer[1] == 0:
            core.drop(DropReason.MALFORMED, remote, "Send needs a peer and DATA")
            return
        relayed = allocation.relayed.get(family_of(peer[0]))
        if relayed is None:
            core.drop(DropReason.FAMILY_MISMATCH, remote, f"Send to {peer}")
            return
        permission = allocation.permissions.get(peer[0])
        if permission is None or permission.expires <= now:
            core.drop(DropReason.NO_PERMISSION, remote, f"Send to {peer}")
            return
        core.transmit(Transmit(_UDP, relayed, peer, payload))
        counters = self._counters
        counters.packets_to_peer += 1
        counters.bytes_to_peer += len(payload)

    def _peer_datagram(
        self, relayed: Address, peer: Address, data: bytes, now: float
    ) -> None:
        core = self._core
        allocation = self._table.udp_relays.get(relayed)
        if allocation is None:
            core.drop(DropReason.UNKNOWN_RELAY, peer, f"to {relayed}")
            return
        permission = allocation.permissions.get(peer[0])
        if permission is None or permission.expires <= now:
            core.drop(DropReason.NO_PERMISSION, peer, f"to {relayed}")
            return
        five_tuple = allocation.five_tuple
        channel = allocation.channel_peers.get(peer)
        try:
            if channel is not None and channel.expires > now:
                stream = five_tuple.transport is not _UDP
                message = encode_channel_data(channel.number, data, stream)
            else:
                builder = MessageBuilder(_DATA_INDICATION, new_transaction_id())
                builder.add_xor_peer_address(peer[0], peer[1])
                builder.add_data(data)
                message = builder.finish()
        except (ChannelDataError, StunBuildError) as exc:
            core.drop(DropReason.TOO_LARGE, peer, str(exc))
            return
        core.transmit(
            Transmit(five_tuple.transport, five_tuple.local, five_tuple.remote, message)
        )
        counters = self._counters
        counters.packets_to_client += 1
        counters.bytes_to_client += len(data)

    # STUN messages.

    def _stun_from_client(
        self,
        transport: TransportType,
        local: Address,
        remote: Address,
        data: bytes,
        now: float,
    ) -> None:
        core = self._core
        key: FiveTupleKey = (transport, local, remote)
        data_connections = self._table.data_connections
        if data_connections and key in data_connections:
            core.drop(DropReason.DATA_CONNECTION, remote, "connection is bound")
            return
        try:
            message = parse(data)
        except StunParseError as exc:
            core.drop(DropReason.MALFORMED, remote, str(exc))
            return
        if message.has_fingerprint and not message.check_fingerprint():
            core.drop(DropReason.BAD_FINGERPRINT, remote, "FINGERPRINT mismatch")
            return
        if message.is_request:
            self._counters.requests += 1
            try:
                self._request(transport, local, remote, message, now)
            except StunParseError as exc:
                core.drop(DropReason.MALFORMED, remote, str(exc))
        elif message.is_indication:
            if message.method == Method.SEND:
                self._send_indication(key, message, now)
            else:
                detail = f"indication method {message.method:#05x}"
                core.drop(DropReason.UNKNOWN_INDICATION, remote, detail)
        else:
            core.drop(DropReason.RESPONSE, remote, "responses are not expected")

    def _request(
        self,
        transport: TransportType,
        local: Address,
        remote: Address,
        message: Message,
        now: float,
    ) -> None:
        core = self._core
        method = message.method
        _log.debug("request %#05x from %s %s", method, transport.value, remote)
        if method != Method.BINDING and method not in _TURN_METHODS:
            rejection = Rejection.of(ErrorCode.BAD_REQUEST, "method not served")
            core.unsigned_error(transport, local, remote, message, rejection)
            return
        unknown = message.unknown_comprehension_required(_KNOWN)
        if unknown:
            rejection = Rejection.of(ErrorCode.UNKNOWN_ATTRIBUTE)
            core.unsigned_error(transport, local, remote, message, rejection, unknown)
            return
        if method == Method.BINDING:
            builder = start_success(method, message.transaction_id)
            builder.add_xor_mapped_address(remote[0], remote[1])
            core.unsigned(transport, local, remote, message, builder, success=True)
            return

        key: FiveTupleKey = (transport, local, remote)
        allocation = self._table.by_five_tuple.get(key)
        if method == Method.ALLOCATE and self._is_retransmission(
            key, allocation, message
        ):
            return

        core.credentials.unix_now = now + self._config.unix_time_offset
        result = core.authenticator.authenticate(message, (remote[0], 0), now)
        if not result.accepted:
            core.challenge(transport, local, remote, message, result)
            return
        assert result.username is not None and result.key is not None
        signer = Signer(result.username, result.key, result.use_sha256)
        request = Request(transport, local, remote, message, signer)

        if method == Method.CONNECTION_BIND:
            self._tcp.connection_bind(request, allocation, now)
        elif method == Method.ALLOCATE:
            self._allocations.allocate(request, allocation, now)
        elif allocation is None:
            core.reject(request, Rejection.of(ErrorCode.ALLOCATION_MISMATCH))
        elif allocation.username != signer.username:
            core.reject(request, Rejection.of(ErrorCode.WRONG_CREDENTIALS))
        elif method == Method.REFRESH:
            self._allocations.refresh(request, allocation, now)
        elif method == Method.CREATE_PERMISSION:
            self._create_permission(request, allocation, now)
        elif method == Method.CHANNEL_BIND:
            self._channel_bind(request, allocation, now)
        else:
            self._tcp.connect(request, allocation, now)

    def _is_retransmission(
        self, key: FiveTupleKey, allocation: Allocation | None, message: Message
    ) -> bool:
        """Resend the cached response to a retransmitted Allocate; True if sent.

        RFC 8656 §7.2: the Allocate that created the allocation on this
        5-tuple gets its original response again, not a 437.
        """
        transaction_id = message.transaction_id
        if allocation is not None and allocation.transaction_id == transaction_id:
            _log.debug("cached Allocate response to %s", key[2])
            self._counters.success_responses += 1
            self._core.transmit(Transmit(key[0], key[1], key[2], allocation.response))
            return True
        pending = self._table.pending.get(key)
        if pending is not None and pending.transaction_id == transaction_id:
            _log.debug("Allocate from %s still waits for its relay socket", key[2])
            return True
        return False

    # CreatePermission (RFC 8656 §10.2).

    def _create_permission(
        self, request: Request, allocation: Allocation, now: float
    ) -> None:
        core = self._core
        peers = read_peers(request.message)
        if isinstance(peers, Rejection):
            core.reject(request, peers)
            return
        targets: dict[str, Address] = {}
        for host, _port in peers:
            relayed = allocation.relayed.get(family_of(host))
            if relayed is None:
                rejection = Rejection.of(ErrorCode.PEER_ADDRESS_FAMILY_MISMATCH)
                core.reject(request, rejection)
                return
            if not self._policy.is_allowed(host):
                core.reject(request, Rejection.of(ErrorCode.FORBIDDEN, host))
                return
            targets[host] = relayed
        added = sum(1 for host in targets if host not in allocation.permissions)
        if len(allocation.permissions) + added > self._config.max_permissions:
            rejection = Rejection.of(ErrorCode.INSUFFICIENT_CAPACITY, "permissions")
            core.reject(request, rejection)
            return

        # Every peer passed its checks, so all permissions are installed.
        expires = now + self._config.permission_lifetime
        for host, relayed in targets.items():
            self._table.install_permission(allocation, host, relayed, expires)
        transaction_id = request.message.transaction_id
        core.reply(request, start_success(Method.CREATE_PERMISSION, transaction_id))

    # ChannelBind (RFC 8656 §12.2).

    def _channel_bind(
        self, request: Request, allocation: Allocation, now: float
    ) -> None:
        core = self._core
        message = request.message
        if allocation.transport is TransportProtocol.TCP:
            core.reject(request, Rejection.of(ErrorCode.BAD_REQUEST, "TCP allocation"))
            return
        number = read_channel_number(message)
        if isinstance(number, Rejection):
            core.reject(request, number)
            return
        try:
            peer = message.xor_peer_address()
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
        table = self._table
        conflict = table.channel_conflict(allocation, number, peer)
        if conflict is not None:
            core.reject(request, Rejection.of(ErrorCode.BAD_REQUEST, conflict))
            return
        config = self._config
        if (
            number not in allocation.channels
            and len(allocation.channels) >= config.max_channels
        ) or (
            peer[0] not in allocation.permissions
            and len(allocation.permissions) >= config.max_permissions
        ):
            rejection = Rejection.of(ErrorCode.INSUFFICIENT_CAPACITY, "channels")
            core.reject(request, rejection)
            return

        # A channel binding installs or refreshes the peer's permission too.
        table.bind_channel(
            allocation, number, peer, relayed, now + config.channel_lifetime
        )
        table.install_permission(
            allocation, peer[0], relayed, now + config.permission_lifetime
        )
        transaction_id = message.transaction_id
        core.reply(request, start_success(Method.CHANNEL_BIND, transaction_id))
