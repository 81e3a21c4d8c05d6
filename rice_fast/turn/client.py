"""TurnClient: the client side of TURN (RFC 8656) as a sans-IO state machine.

Theory of operation: the client owns one control connection to the server
(a UDP socket, or a TCP connection with an optional TLS session run in
memory) and, for RFC 6062 TCP allocations, one data connection per peer.
The control connection's ``StunAgent`` runs every transaction:
retransmissions, response matching, and the long-term credential dance of
401 and 438 responses. The client builds the TURN requests, reads their
final outcome from the agent's events and keeps the allocation, the
permission table and the channel table alive with refreshes scheduled from
the granted lifetimes. Application data bypasses the agent: ``send_to``
frames a Send indication or ChannelData at once and queues the transmit.

The client never opens sockets. When it needs one (a new local port after
437, an alternate server over TCP, an RFC 6062 data connection) it reports
``AllocateSocket`` and waits for ``socket_allocated``.
"""

from __future__ import annotations

import logging
import math
import ssl
from collections import deque
from collections.abc import Callable, Sequence

from rice_fast.stun import (
    AttributeType,
    Message,
    MessageBuilder,
    MessageClass,
    Method,
    TransportProtocol,
    message_type,
    new_transaction_id,
    parse,
)
from rice_fast.stun.agent import StunAgent, StunConfig
from rice_fast.stun.attributes import Icmp, XorPeerAddress
from rice_fast.stun.credentials import LongTermCredentials
from rice_fast.stun.errors import StunParseError
from rice_fast.stun.events import StunEvent, TransactionCancelled
from rice_fast.stun.transport import Address, Transmit, TransportType, WaitUntil
from rice_fast.turn import _peer_connections as _peers
from rice_fast.turn import _requests
from rice_fast.turn._address import (
    canonical_address,
    check_family,
    peer_ip,
    same_address,
)
from rice_fast.turn._connection import (
    FrameError,
    ServerConnection,
    new_peer_data,
    new_transmit,
)
from rice_fast.turn._framing import (
    FRAME_CHANNEL_DATA,
    FRAME_STUN,
    channel_data_payload,
    encode_channel_data,
)
from rice_fast.turn._options import (
    AllocationOptions,
    TurnClientStats,
    TurnUsageError,
)
from rice_fast.turn._peer_connections import PeerConnectionTable
from rice_fast.turn._permissions import ChannelTable, PermissionTable
from rice_fast.turn._requests import ClientState
from rice_fast.turn._tls import TlsFailure, TlsSession, default_context
from rice_fast.turn.errors import ChannelDataError
from rice_fast.turn.events import (
    AllocationDeleted,
    AllocationFailed,
    PeerConnectFailed,
    PeerData,
    PeerDisconnected,
    PeerIcmp,
    TurnEvent,
)

__all__ = [
    "AllocationOptions",
    "TurnClient",
    "TurnClientStats",
    "TurnUsageError",
    "canonical_address",
]

_log = logging.getLogger(__name__)

_SEND_INDICATION = message_type(Method.SEND, MessageClass.INDICATION)
_CONNECTION_BIND_REQUEST = message_type(
    Method.CONNECTION_BIND, MessageClass.REQUEST
).to_bytes(2, "big")
# Bound on the event passes of one poll; each pass normally ends the work.
_MAX_AGENT_PASSES = 8
_ALLOCATED = ClientState.ALLOCATED
_CLOSED = ClientState.CLOSED
_UDP = TransportType.UDP


class TurnClient:
    """One TURN allocation, driven by the caller's sockets and clock.

    Call order: create the client with the local address of a socket
    already connected (TCP, TLS) or bound (UDP) toward ``server``. Call
    ``poll(now)`` until it returns ``WaitUntil`` or None, handling each
    event. Then call ``poll_transmit(now)`` until it returns None, and send
    each ``Transmit`` from the socket whose local address is
    ``Transmit.source``.
    Feed every datagram or stream read to ``handle_data(data, source, now,
    local=...)``, call ``poll`` and ``poll_transmit`` again after every
    input and when the ``WaitUntil`` deadline passes. The first ``poll``
    starts the TLS handshake or the Allocate request.

    ``poll`` returns None when nothing is scheduled: the client is closed
    (after ``AllocationFailed`` or ``AllocationDeleted``) or waits for
    ``socket_allocated``. Network input never raises; it is dropped and
    counted in ``stats``. API misuse raises ``TurnUsageError``.

    ``ssl_context`` is used over TLS; the default checks the certificate
    chain against the system CAs and the host name, which is
    ``server_hostname`` or else the server's IP address.
    """

    def __init__(
        self,
        transport: TransportType,
        local_address: Address,
        server: Address,
        credentials: LongTermCredentials,
        *,
        options: AllocationOptions | None = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        stun_config: StunConfig | None = None,
        software: str | None = None,
    ) -> None:
        if not isinstance(transport, TransportType):
            raise TurnUsageError(f"transport {transport!r} is not a TransportType")
        if not isinstance(credentials, LongTermCredentials):
            raise TurnUsageError(
                "credentials must be LongTermCredentials (TURN uses the long-term "
                f"mechanism), got {type(credentials).__name__}"
            )
        self._options = options if options is not None else AllocationOptions()
        if (
            self._options.relay_transport == TransportProtocol.TCP
            and transport is TransportType.UDP
        ):
            raise TurnUsageError(
                "a TCP allocation (RFC 6062) needs a TCP or TLS control "
                "connection, not UDP"
            )
        self._transport = transport
        self._server = canonical_address(server, "server")
        self._credentials = credentials
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname or self._server[0]
        self._explicit_hostname = server_hostname is not None
        self._stun_config = stun_config
        self._software = software

        self._state = ClientState.IDLE
        self._connections: dict[Address, ServerConnection] = {}
        self._control = self._open_connection(local_address, self._server)
        self._requests: dict[bytes, _requests.Request] = {}
        self._events: deque[TurnEvent] = deque()
        self._transmits: deque[Transmit] = deque()
        self._permissions = PermissionTable()
        self._channels = ChannelTable()
        self._peer_connections = PeerConnectionTable()
        self._stats: dict[str, int] = dict.fromkeys(TurnClientStats.__slots__, 0)
        # Whether the control agent may hold events though it has no
        # transaction pending (a response or a cancellation just finished one).
        self._agent_events = False
        self._wait = WaitUntil(math.inf)
        # Counters of the per-packet paths, kept out of the dict for speed.
        self._channel_data_sent = 0
        self._stream_data_sent = 0
        self._data_received = 0
        # The channel table updates these dicts in place; the data paths
        # read them directly.
        self._bound_by_peer = self._channels.bound_by_peer
        self._peer_by_channel = self._channels.peer_by_number
        self._stream = transport.reliable
        self.allocation = _requests.AllocationState()
        self._handlers: dict[
            _requests.Kind,
            Callable[[_requests.Request, StunEvent, float], None],
        ] = _requests.handlers(self)

    # Properties.

    @property
    def transport(self) -> TransportType:
        """The transport of the control connection."""
        return self._transport

    @property
    def server(self) -> Address:
        """The server in use, which changes after a 300 Try Alternate."""
        return self._server

    @property
    def local_address(self) -> Address:
        """The local address of the control connection."""
        return self._control.local

    @property
    def options(self) -> AllocationOptions:
        """The options of the Allocate request."""
        return self._options

    @property
    def relayed_addresses(self) -> tuple[Address, ...]:
        """The relayed addresses of the current allocation, empty before."""
        return self.allocation.relayed

    @property
    def mapped_address(self) -> Address | None:
        """The server-reflexive address from the Allocate response."""
        return self.allocation.mapped

    @property
    def allocated(self) -> bool:
        """Whether an allocation exists and can carry data."""
        return self._state is ClientState.ALLOCATED

    @property
    def closed(self) -> bool:
        """Whether the client reached its final event."""
        return self._state is ClientState.CLOSED

    @property
    def stats(self) -> TurnClientStats:
        """A snapshot of the counters."""
        counters = dict(self._stats)
        counters["channel_data_sent"] = self._channel_data_sent
        counters["data_sent"] = (
            self._channel_data_sent
            + self._stream_data_sent
            + counters["send_indications"]
        )
        counters["data_received"] = self._data_received
        return TurnClientStats(**counters)

    def channel_of(self, peer: Address) -> int | None:
        """Return the channel number bound to ``peer``, or None."""
        return self._channels.bound_by_peer.get(canonical_address(peer))

    def has_permission(self, peer: Address | str) -> bool:
        """Return whether the server confirmed a permission for the peer IP."""
        entry = self._permissions.get(self._peer_ip(peer))
        return entry is not None and entry.installed

    # Control: permissions, channels, TCP peers, deletion.

    def create_permission(self, peer: Address | str, now: float) -> None:
        """Install a permission for the peer's IP address (any port).

        The permission is refreshed every 240 s until ``remove_permission``
        and reported by ``PermissionCreated`` or ``PermissionFailed``.
        Raises ``TurnUsageError`` for a peer that is not an IP address, of a
        family the allocation does not relay, or on a closed client.
        """
        ip = self._peer_ip(peer)
        self._check_open("create_permission")
        self._check_family(ip)
        self._permissions.add(ip, now)
        self._service(now)

    def remove_permission(self, peer: Address | str) -> None:
        """Stop refreshing the permission; the server drops it within 300 s."""
        self._permissions.remove(self._peer_ip(peer))

    def bind_channel(self, peer: Address, now: float) -> int:
        """Bind a channel to ``peer`` and return its number.

        Data to ``peer`` goes as ChannelData once ``ChannelBound`` is
        reported, and as Send indications before. The binding, and the
        permission it installs, are refreshed until ``unbind_channel``.
        Binding the same peer again returns the same number, also within
        300 s after an expiry. Raises ``TurnUsageError`` for a TCP
        allocation, an invalid peer or when all 4096 numbers are in use.
        """
        peer = canonical_address(peer)
        self._check_open("bind_channel")
        if self._options.relay_transport == TransportProtocol.TCP:
            raise TurnUsageError(
                "a TCP allocation (RFC 6062) has no channels; use connect(peer)"
            )
        self._check_family(peer[0])
        try:
            entry = self._channels.bind(peer, now)
        except LookupError as exc:
            raise TurnUsageError(f"cannot bind a channel to {peer}: {exc}") from None
        self._service(now)
        return entry.number

    def unbind_channel(self, peer: Address) -> None:
        """Stop refreshing the channel of ``peer``; it expires within 600 s.

        The permission it installed stops being refreshed too, unless
        ``create_permission`` asked for it.
        """
        peer = canonical_address(peer)
        self._channels.unbind(peer)
        entry = self._permissions.get(peer[0])
        others = any(
            c.peer[0] == peer[0] and c.wanted for c in self._channels.entries()
        )
        if entry is not None and not entry.requested and not others:
            self._permissions.remove(peer[0])

    def connect(self, peer: Address, now: float) -> None:
        """Open a TCP connection from the relay to ``peer`` (RFC 6062 §4.3).

        On success the client reports ``AllocateSocket`` for the data
        connection, then ``PeerConnected``; on failure ``PeerConnectFailed``.
        Raises ``TurnUsageError`` unless the allocation is a TCP allocation
        and ready.
        """
        peer = canonical_address(peer)
        if self._options.relay_transport != TransportProtocol.TCP:
            raise TurnUsageError(
                "connect needs a TCP allocation: create the client with "
                "AllocationOptions(relay_transport=TransportProtocol.TCP)"
            )
        self._check_ready("connect")
        self._check_family(peer[0])
        self._send_request(
            self._control,
            Method.CONNECT,
            _requests.Kind.CONNECT,
            peer,
            [XorPeerAddress(peer)],
            now,
        )

    def refresh(self, now: float) -> None:
        """Refresh the allocation now instead of at the scheduled time.

        Does nothing while a Refresh is in flight or when no allocation
        exists. The outcome is ``AllocationRefreshed``, or a re-allocation
        when the server responds with 437.
        """
        state = self.allocation
        if self._state is ClientState.ALLOCATED and not state.refresh_in_flight:
            _requests.send_refresh(self, now)

    def delete(self, now: float) -> None:
        """Delete the allocation: Refresh with LIFETIME 0 (RFC 8656 §8).

        Ends with ``AllocationDeleted``. Refreshes stop at once. Calling it
        again, or on a closed client, does nothing.
        """
        if self._state in (ClientState.CLOSED, ClientState.DELETING):
            return
        self._cancel_requests(keep=())
        if self._state is not ClientState.ALLOCATED:
            self._finish(AllocationDeleted(confirmed=False))
            return
        self._state = ClientState.DELETING
        _requests.send_refresh(self, now, delete=True)

    # Sockets.

    def socket_allocated(
        self, local_address: Address, now: float, *, connection_id: int | None = None
    ) -> None:
        """Hand over the socket that ``AllocateSocket`` asked for.

        ``local_address`` is the new socket's address. For a data
        connection pass the event's ``connection_id``. Raises
        ``TurnUsageError`` when no socket was requested.
        """
        if connection_id is not None:
            _peers.socket_allocated(self, local_address, connection_id, now)
            return
        if self._state is not ClientState.WAITING_SOCKET:
            raise TurnUsageError(
                f"socket_allocated({local_address}) without an AllocateSocket "
                f"request; the client is {self._state.value}"
            )
        old = self._control
        self._connections.pop(old.local, None)
        self._control = self._open_connection(local_address, self._server)
        self._state = ClientState.ALLOCATING
        self._start_connection(self._control)
        _requests.send_allocate(self, now)

    def socket_failed(
        self, now: float, *, connection_id: int | None = None, reason: str = ""
    ) -> None:
        """Report that the socket ``AllocateSocket`` asked for cannot be made."""
        detail = f": {reason}" if reason else ""
        if connection_id is not None:
            record = self._peer_connections.get(connection_id)
            if record is not None:
                _peers.drop(self, record)
                self._events.append(
                    PeerConnectFailed(
                        record.peer,
                        connection_id,
                        0,
                        f"no data connection to the server{detail}",
                    )
                )
            return
        if self._state is ClientState.WAITING_SOCKET:
            self._finish(
                AllocationFailed(0, f"no new socket for the allocation{detail}")
            )

    def connection_closed(
        self, local_address: Address, now: float, reason: str = ""
    ) -> None:
        """Report that the TCP or TLS connection at ``local_address`` closed."""
        conn = self._connections.pop(local_address, None)
        if conn is None:
            return
        if conn.buffered:
            self._stats["dropped_truncated_frames"] += 1
        detail = reason or "closed by the server"
        if conn is self._control:
            if self._state is ClientState.DELETING:
                self._finish(AllocationDeleted(confirmed=False))
            elif self._state not in (ClientState.CLOSED, ClientState.WAITING_SOCKET):
                self._finish(
                    AllocationFailed(0, f"the control connection closed: {detail}")
                )
            return
        record = self._peer_connections.of_connection(conn)
        if record is not None:
            _peers.drop(self, record)
            self._events.append(
                PeerDisconnected(record.peer, record.connection_id, detail)
            )

    # Data.

    def send_to(self, peer: Address, data: bytes, now: float) -> None:
        """Send ``data`` to ``peer`` through the relay.

        Uses ChannelData on a bound channel, else a Send indication, or the
        peer's data connection for a TCP allocation. During a re-allocation
        the data is dropped and counted. Raises ``TurnUsageError`` when the
        peer has no permission, channel or data connection, or the
        allocation is not ready.
        """
        channel = self._bound_by_peer.get(peer)
        if channel is not None and self._state is _ALLOCATED:
            conn = self._control
            payload = encode_channel_data(channel, data, self._stream)
            if conn.tls is None:
                self._transmits.append(
                    new_transmit(conn.transport, conn.local, conn.server, payload)
                )
            else:
                self._queue(conn, payload)
            self._channel_data_sent += 1
            return
        self._send_slow(canonical_address(peer), data)

    def _send_slow(self, peer: Address, data: bytes) -> None:
        if self._state is not ClientState.ALLOCATED:
            if self._state in (ClientState.WAITING_SOCKET, ClientState.ALLOCATING) and (
                self.allocation.created
            ):
                self._stats["dropped_while_reallocating"] += 1
                return
            self._check_ready("send_to")
        if self._options.relay_transport == TransportProtocol.TCP:
            stream = self._peer_connections.stream_to(peer)
            if stream is None:
                raise TurnUsageError(
                    f"no data connection to {peer}; call connect(peer) or wait for "
                    "the peer to connect"
                )
            self._queue(stream, data)
            self._stream_data_sent += 1
            return
        channel = self._bound_by_peer.get(peer)
        if channel is not None:
            self._queue(self._control, encode_channel_data(channel, data, self._stream))
            self._channel_data_sent += 1
            return
        if peer[0] not in self._permissions and self._channels.by_peer(peer) is None:
            raise TurnUsageError(
                f"no permission for peer {peer[0]}; call create_permission(peer) "
                "or bind_channel(peer) first"
            )
        builder = MessageBuilder(_SEND_INDICATION, new_transaction_id())
        builder.add_xor_peer_address(peer[0], peer[1])
        builder.add_data(data)
        self._queue(self._control, builder.finish())
        self._stats["send_indications"] += 1

    # Input.

    def handle_data(
        self, data: bytes, source: Address, now: float, *, local: Address | None = None
    ) -> None:
        """Consume one datagram or stream read from the server.

        ``local`` is the local address of the socket it arrived on; None
        means the control connection. Bytes from another source than the
        server, or on a socket the client no longer uses, are dropped and
        counted. Never raises for the content of ``data``.
        """
        if self._state is _CLOSED:
            return
        conn = self._control if local is None else self._connections.get(local)
        if conn is None:
            self._stats["dropped_unknown_socket"] += 1
            return
        if source != conn.server and not same_address(source, conn.server):
            self._stats["dropped_wrong_source"] += 1
            _log.debug(
                "dropped %d bytes from %s: not the TURN server", len(data), source
            )
            return
        if conn.transport is _UDP:
            if not data or data[0] & 0xC0 != 0x40:
                self._on_stun(conn, data, now)
                return
            # ChannelData, the per-packet path, inlined from _on_channel_data.
            try:
                channel, payload = channel_data_payload(data)
            except ChannelDataError as exc:
                self._stats["dropped_malformed_channel_data"] += 1
                _log.debug("dropped malformed ChannelData: %s", exc)
                return
            peer = self._peer_by_channel.get(channel)
            if peer is None:
                self._stats["dropped_unknown_channel"] += 1
                _log.debug("dropped ChannelData on unbound channel 0x%04x", channel)
                return
            self._data_received += 1
            self._events.append(new_peer_data(peer, payload))
            return
        try:
            for kind, frame in conn.frames(data):
                if kind == FRAME_CHANNEL_DATA:
                    self._on_channel_data(frame)
                elif kind == FRAME_STUN:
                    self._on_stun(conn, frame, now)
                else:
                    _peers.on_stream(self, conn, frame)
        except TlsFailure as exc:
            self._connection_failed(conn, str(exc))
        except FrameError as exc:
            self._stats["dropped_framing_errors"] += 1
            self._connection_failed(conn, f"invalid stream from the server: {exc}")
        self._flush_tls(conn)

    def _on_channel_data(self, frame: bytes) -> None:
        try:
            channel, payload = channel_data_payload(frame)
        except ChannelDataError as exc:
            self._stats["dropped_malformed_channel_data"] += 1
            _log.debug("dropped malformed ChannelData: %s", exc)
            return
        peer = self._peer_by_channel.get(channel)
        if peer is None:
            self._stats["dropped_unknown_channel"] += 1
            _log.debug("dropped ChannelData on unbound channel 0x%04x", channel)
            return
        self._data_received += 1
        self._events.append(new_peer_data(peer, payload))

    def _on_stun(self, conn: ServerConnection, frame: bytes, now: float) -> None:
        if len(frame) >= 2 and frame[0] & 0x01:
            # Success and error responses have the C1 class bit (0x0100) set.
            conn.agent.handle_data(frame, conn.server, now)
            self._agent_events = True
            return
        try:
            message = parse(frame)
            if message.has_fingerprint and not message.check_fingerprint():
                raise StunParseError("FINGERPRINT does not match", 0)
            if message.method == Method.DATA and message.is_indication:
                self._on_data_indication(message)
            elif (
                message.method == Method.CONNECTION_ATTEMPT and not message.is_response
            ):
                _peers.on_connection_attempt(self, conn, message)
            else:
                self._stats["dropped_unexpected_message"] += 1
                _log.debug("dropped unexpected STUN message %r", message)
        except StunParseError as exc:
            self._stats["dropped_malformed_stun"] += 1
            _log.debug("dropped malformed STUN message from the server: %s", exc)

    def _on_data_indication(self, message: Message) -> None:
        peer = message.xor_peer_address()
        if peer is None:
            raise StunParseError("Data indication without XOR-PEER-ADDRESS", 0)
        if peer[0] not in self._permissions:
            # RFC 8656 §11.4: drop data from an address the client believes
            # has no permission.
            self._stats["dropped_without_permission"] += 1
            _log.debug("dropped a Data indication from %s: no permission", peer)
            return
        icmp = message.raw(AttributeType.ICMP)
        if icmp is not None:
            # RFC 8656 §11.6: the relay forwards an ICMP error from the peer.
            attribute = Icmp.decode(icmp, message.transaction_id)
            self._events.append(
                PeerIcmp(
                    peer, attribute.icmp_type, attribute.icmp_code, attribute.error_data
                )
            )
            return
        payload = message.data_attribute()
        if payload is None:
            raise StunParseError("Data indication without DATA or ICMP", 0)
        self._data_received += 1
        self._events.append(PeerData(peer, payload))

    # Output.

    def poll(self, now: float) -> TurnEvent | WaitUntil | None:
        """Advance timers and return the next event or the next deadline.

        Returns events while any is queued, then ``WaitUntil`` with the
        earliest timer, or None when nothing is scheduled.
        """
        events = self._events
        if events:
            # Queued events go first; the timers run on the call that
            # finds the queue empty, before it returns the deadline.
            return events.popleft()
        if self._state is ClientState.IDLE:
            self._begin(now)
        timers = _requests.next_deadline(self)
        if now >= timers:
            _requests.fire_timers(self, now)
        deadline = self._poll_agents(now)
        if events:
            return events.popleft()
        if self._state is _CLOSED:
            return None
        timers = _requests.next_deadline(self)
        if timers < deadline:
            deadline = timers
        if deadline == math.inf:
            return None
        wait = self._wait
        if wait.deadline != deadline:
            # WaitUntil is immutable, so the same object serves every poll
            # until the deadline moves.
            wait = self._wait = WaitUntil(deadline)
        return wait

    def poll_transmit(self, now: float) -> Transmit | None:
        """Return the next message to send, or None."""
        transmits = self._transmits
        control = self._control
        # Requests go out before queued data, so that a Send indication
        # queued just after its CreatePermission does not reach the server
        # first and get dropped for want of a permission. Over TLS the
        # queue contains ciphertext whose order is fixed, so it goes first.
        requests_first = (
            control.tls is None
            and self._state is not ClientState.IDLE
            and bool(control.agent.pending_transactions())
        )
        if transmits and not requests_first:
            return transmits.popleft()
        if self._state is ClientState.IDLE:
            self._begin(now)
        if not control.agent.pending_transactions():
            # Only a pending transaction has transmissions: a finished one
            # drops those not yet returned, and the client sends no
            # indications through the agent.
            return None
        while (transmit := control.agent.poll_transmit(now)) is not None:
            conn = control
            if transmit.data[:2] == _CONNECTION_BIND_REQUEST:
                bind = self._peer_connections.connection_for_bind(transmit.data)
                conn = bind or control
            if conn is control and control.tls is None:
                return transmit
            self._queue(conn, transmit.data)
            if transmits:
                return transmits.popleft()
        if transmits:
            return transmits.popleft()
        return None

    # Internals shared with the request handlers in _requests.

    def _open_connection(self, local: Address, server: Address) -> ServerConnection:
        conn = self._new_connection(local, server, data_connection=False)
        self._connections[conn.local] = conn
        return conn

    def _new_connection(
        self, local: Address, server: Address, *, data_connection: bool
    ) -> ServerConnection:
        local = (str(local[0]), int(local[1]))
        if data_connection:
            # RFC 6062 §4.3: the ConnectionBind must carry the credentials
            # and nonce of the control connection. coturn 4.6 does not send
            # a 401 for it, so the control connection's agent runs it and
            # the client routes its bytes to the data connection.
            agent = self._control.agent
        else:
            agent = StunAgent(
                self._transport,
                local,
                config=self._stun_config,
                software=self._software,
            )
        tls = None
        if self._transport is TransportType.TLS:
            context = self._ssl_context if self._ssl_context else default_context()
            tls = TlsSession(context, self._server_hostname)
        return ServerConnection(
            self._transport, local, server, agent, tls, data_connection=data_connection
        )

    def _start_connection(self, conn: ServerConnection) -> None:
        if conn.tls is not None:
            try:
                conn.tls.start()
            except TlsFailure as exc:
                self._connection_failed(conn, str(exc))
            self._flush_tls(conn)

    def _begin(self, now: float) -> None:
        self._state = ClientState.ALLOCATING
        self._start_connection(self._control)
        if self._state is ClientState.ALLOCATING:
            _requests.send_allocate(self, now)

    def _send_request(
        self,
        conn: ServerConnection,
        method: int,
        kind: _requests.Kind,
        target: object,
        attributes: Sequence[object],
        now: float,
    ) -> bytes:
        transaction_id = conn.agent.send_request(
            method,
            conn.server,
            now,
            attributes=attributes,
            credentials=self._credentials,
        )
        self._requests[transaction_id] = _requests.Request(kind, conn, target)
        return transaction_id

    def _poll_agents(self, now: float) -> float:
        """Handle the control agent's events; return its next deadline.

        A handler may replace the control connection (a redirect), so
        passes repeat until one handles no event.
        """
        deadline = math.inf
        if not self._agent_events and not self._control.agent.pending_transactions():
            # Nothing can come out of an idle agent; skipping it keeps the
            # poll that ends each burst of input cheap.
            return deadline
        self._agent_events = False
        for _ in range(_MAX_AGENT_PASSES):
            deadline = math.inf
            handled = False
            while True:
                result = self._control.agent.poll(now)
                if isinstance(result, StunEvent):
                    self._on_stun_event(result, now)
                    handled = True
                    continue
                if isinstance(result, WaitUntil):
                    deadline = result.deadline
                break
            if not handled:
                break
        return deadline

    def _on_stun_event(self, event: StunEvent, now: float) -> None:
        request = self._requests.pop(event.transaction_id, None)
        if request is None or isinstance(event, TransactionCancelled):
            return
        if self._state is ClientState.CLOSED:
            return
        self._handlers[request.kind](request, event, now)

    def _service(self, now: float) -> None:
        if now >= _requests.next_deadline(self):
            _requests.fire_timers(self, now)

    def _cancel_requests(self, keep: Sequence[_requests.Kind]) -> None:
        for transaction_id, request in list(self._requests.items()):
            if request.kind in keep:
                continue
            del self._requests[transaction_id]
            request.conn.agent.cancel(transaction_id)
            self._agent_events = True

    def _queue(self, conn: ServerConnection, data: bytes) -> None:
        if conn.tls is not None:
            try:
                data = conn.wrap(data)
            except TlsFailure as exc:
                self._connection_failed(conn, str(exc))
                return
            if not data:
                return
        self._transmits.append(
            new_transmit(conn.transport, conn.local, conn.server, data)
        )

    def _flush_tls(self, conn: ServerConnection) -> None:
        output = conn.take_tls_output()
        if output:
            self._transmits.append(
                Transmit(conn.transport, conn.local, conn.server, output)
            )

    def _connection_failed(self, conn: ServerConnection, reason: str) -> None:
        _log.debug("connection %s to %s failed: %s", conn.local, conn.server, reason)
        if conn is self._control:
            if self._state is ClientState.DELETING:
                self._finish(AllocationDeleted(confirmed=False))
            else:
                self._finish(AllocationFailed(0, reason))
            return
        record = self._peer_connections.of_connection(conn)
        if record is not None:
            _peers.drop(self, record)
            self._events.append(
                PeerConnectFailed(record.peer, record.connection_id, 0, reason)
            )

    def _finish(self, event: TurnEvent) -> None:
        """Queue the final event, cancel every request and close TLS."""
        if self._state is ClientState.CLOSED:
            return
        self._cancel_requests(keep=())
        self._state = ClientState.CLOSED
        for conn in self._connections.values():
            if conn.tls is not None and not conn.tls.closed:
                conn.tls.close()
                self._flush_tls(conn)
        self._events.append(event)

    def _check_open(self, operation: str) -> None:
        if self._state in (ClientState.CLOSED, ClientState.DELETING):
            raise TurnUsageError(
                f"{operation} on a TURN client that is {self._state.value}; "
                "create a new client"
            )

    def _check_ready(self, operation: str) -> None:
        self._check_open(operation)
        if self._state is not ClientState.ALLOCATED:
            raise TurnUsageError(
                f"{operation} before the allocation exists; wait for AllocationCreated"
            )

    def _peer_ip(self, peer: Address | str) -> str:
        return peer_ip(peer)

    def _check_family(self, ip: str) -> None:
        check_family(ip, self.allocation.relayed, self._options.families)
