"""The TURN relay process: sockets, timers and the compiled forwarding path.

Theory of operation: ``RelayServer`` owns every socket and drives one
sans-IO ``TurnServer``. UDP listening and relay sockets are registered
with the compiled ``RelayEngine`` and with the event loop's reader
callbacks. When one is readable the engine reads a batch with recvmmsg,
forwards the datagrams that match a route (ChannelData from a client on a
bound channel, and datagrams from that channel's peer) with sendmmsg, and
returns the rest, which go to the ``TurnServer``. The relay mirrors the
server's channel and permission events into the engine's routes, so a
route exists exactly while a channel is bound and its peer has a
permission. TCP and TLS clients go through the ``TurnServer`` for every
frame; RFC 6062 peer connections are spliced in Python.

Client-bound and peer-bound transmits from the ``TurnServer`` are grouped
by socket and sent with one sendmmsg per socket after each batch, so
Python is entered once per batch, not once per datagram.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
import ssl
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Final

from rice_fast.io._address import bound_address
from rice_fast.io._relay import (
    SOCKET_LISTENER,
    SOCKET_RELAY,
    RelayEngine,
    send_datagrams,
)
from rice_fast.stun._constants import AddressFamily, TransportProtocol
from rice_fast.stun.transport import Address, Transmit, TransportType, WaitUntil
from rice_fast.turn._address import family_of
from rice_fast.turn._framing import StreamDeframer
from rice_fast.turn._server_config import TurnServerConfig
from rice_fast.turn.errors import FramingError
from rice_fast.turn.server import TurnServer
from rice_fast.turn.server_events import (
    AllocateRelaySocket,
    ChannelBound,
    ChannelExpired,
    ClosePeerConnection,
    ConnectionBound,
    ConnectToPeer,
    FiveTuple,
    PermissionExpired,
    PermissionInstalled,
    RelaySocketReleased,
)

__all__ = ["RelayConfig", "RelayServer", "RelayStats"]

_log = logging.getLogger(__name__)

_SOCKET_BUFFER: Final = 4 * 1024 * 1024
_PORT_ATTEMPTS: Final = 64


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """Settings of a relay process.

    ``listen`` are the UDP and TCP listening addresses (port 0 picks a free
    port), ``tls_listen`` the TLS ones, served with ``tls_context``.
    ``relay_ips`` are the addresses relay sockets bind to, one per family;
    by default the listening hosts. Relay ports are drawn at random from
    ``min_port``..``max_port``. ``reuse_port`` sets SO_REUSEPORT on the
    listening sockets so that worker processes share them. ``batch`` is
    the number of datagrams read per recvmmsg call.
    """

    turn: TurnServerConfig
    listen: tuple[Address, ...] = (("127.0.0.1", 3478),)
    udp: bool = True
    tcp: bool = True
    tls_listen: tuple[Address, ...] = ()
    tls_context: ssl.SSLContext | None = None
    relay_ips: tuple[str, ...] = ()
    min_port: int = 49152
    max_port: int = 65535
    reuse_port: bool = False
    batch: int = 64

    def __post_init__(self) -> None:
        if not 1 <= self.min_port <= self.max_port <= 65535:
            raise ValueError(
                f"relay port range {self.min_port}..{self.max_port} is invalid; "
                "use 1 <= min_port <= max_port <= 65535"
            )
        if self.tls_listen and self.tls_context is None:
            raise ValueError("tls_listen needs a tls_context with a certificate")
        if not (self.udp or self.tcp or self.tls_listen):
            raise ValueError("enable at least one of udp, tcp and tls_listen")


@dataclass(slots=True)
class RelayStats:
    """Counters of the relay process beyond those of ``TurnServer``."""

    fast_to_peers: int = 0
    fast_to_clients: int = 0
    datagrams_received: int = 0
    datagrams_to_server: int = 0
    truncated: int = 0
    send_errors: int = 0
    relay_sockets: int = 0
    relay_bind_failures: int = 0
    tcp_connections: int = 0
    framing_errors: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def _socket_family(family: AddressFamily) -> socket.AddressFamily:
    return socket.AF_INET6 if family == AddressFamily.IPV6 else socket.AF_INET


class _StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection from a client, framed or spliced raw."""

    def __init__(self, relay: RelayServer, transport_type: TransportType) -> None:
        self._relay = relay
        self._type = transport_type
        self._deframer = StreamDeframer()
        self.transport: asyncio.Transport | None = None
        self.local: Address = ("", 0)
        self.remote: Address = ("", 0)
        self.spliced_to: _PeerConnection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sockname = transport.get_extra_info("sockname")
        peername = transport.get_extra_info("peername")
        self.local = (sockname[0], sockname[1])
        self.remote = (peername[0], peername[1])
        self._relay._streams[(self._type, self.local, self.remote)] = self
        self._relay.stats.tcp_connections += 1
        _log.debug("%s connection from %s", self._type.value, self.remote)

    def data_received(self, data: bytes) -> None:
        if self.spliced_to is not None:
            self.spliced_to.write(data)
            return
        self._deframer.feed(data)
        relay = self._relay
        now = relay.now()
        while self.spliced_to is None:
            try:
                frame = self._deframer.next_frame()
            except FramingError as exc:
                relay.stats.framing_errors += 1
                _log.info(
                    "closing %s connection from %s: %s",
                    self._type.value,
                    self.remote,
                    exc,
                )
                if self.transport is not None:
                    self.transport.close()
                return
            if frame is None:
                break
            relay._server.handle_client_data(
                self._type, self.local, self.remote, frame[1], now
            )
            relay._service(now)
        if self.spliced_to is not None:
            rest = self._deframer.take_buffered()
            if rest:
                self.spliced_to.write(rest)

    def connection_lost(self, exc: Exception | None) -> None:
        relay = self._relay
        relay._streams.pop((self._type, self.local, self.remote), None)
        if self.spliced_to is not None:
            self.spliced_to.close()
            return
        now = relay.now()
        relay._server.handle_client_closed(self._type, self.local, self.remote, now)
        relay._service(now)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _PeerConnection(asyncio.Protocol):
    """An RFC 6062 TCP connection between a relayed address and a peer."""

    def __init__(self, relay: RelayServer, relayed: Address) -> None:
        self._relay = relay
        self.relayed = relayed
        self.connection_id: int | None = None
        self.transport: asyncio.Transport | None = None
        self.peer: Address = ("", 0)
        self.client: _StreamConnection | None = None
        self._pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peername = transport.get_extra_info("peername")
        self.peer = (peername[0], peername[1])

    def data_received(self, data: bytes) -> None:
        if self.client is not None:
            self.client.write(data)
        else:
            self._pending.append(data)

    def splice(self, client: _StreamConnection) -> None:
        self.client = client
        client.spliced_to = self
        for chunk in self._pending:
            client.write(chunk)
        self._pending.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        relay = self._relay
        if self.connection_id is not None:
            relay._peer_connections.pop(self.connection_id, None)
            relay._server.handle_peer_connection_closed(self.connection_id, relay.now())
            relay._service(relay.now())
        if self.client is not None:
            self.client.close()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class RelayServer:
    """A TURN relay on real sockets, for one process.

    Call order: ``await start()``, then the relay runs on the event loop
    until ``close()`` and ``await wait_closed()``. ``addresses`` lists the
    bound listening addresses by transport once started.
    """

    def __init__(self, config: RelayConfig) -> None:
        turn = config.turn
        if turn.unix_time_offset == 0.0:
            turn = replace(turn, unix_time_offset=time.time() - time.monotonic())
        self._config = config
        self._server = TurnServer(turn)
        self._engine = RelayEngine(batch=config.batch)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stats = RelayStats()
        self.addresses: dict[TransportType, list[Address]] = defaultdict(list)
        self._udp_listeners: dict[Address, socket.socket] = {}
        self._relay_sockets: dict[Address, socket.socket] = {}
        self._tcp_relays: dict[Address, asyncio.Server] = {}
        self._servers: list[asyncio.Server] = []
        self._streams: dict[
            tuple[TransportType, Address, Address], _StreamConnection
        ] = {}
        self._peer_connections: dict[int, _PeerConnection] = {}
        self._unbound_peer_connections: dict[int, _PeerConnection] = {}
        self._channels: dict[tuple[Address, Address], tuple[FiveTuple, int]] = {}
        self._permissions: set[tuple[Address, str]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._closed = asyncio.Event()
        self._random = random.SystemRandom()

    @property
    def server(self) -> TurnServer:
        """The sans-IO TURN server this relay drives."""
        return self._server

    @property
    def engine(self) -> RelayEngine:
        """The compiled forwarding path."""
        return self._engine

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    async def start(self) -> None:
        """Bind every listener and start serving."""
        self._loop = asyncio.get_running_loop()
        config = self._config
        for host, port in config.listen:
            if config.udp:
                port = self._open_udp_listener(host, port)
            if config.tcp:
                server = await self._loop.create_server(
                    lambda: _StreamConnection(self, TransportType.TCP),
                    host,
                    port,
                    reuse_port=config.reuse_port or None,
                    reuse_address=True,
                )
                self._servers.append(server)
                for sock in server.sockets:
                    self.addresses[TransportType.TCP].append(bound_address(sock))
        for host, port in config.tls_listen:
            server = await self._loop.create_server(
                lambda: _StreamConnection(self, TransportType.TLS),
                host,
                port,
                ssl=config.tls_context,
                reuse_port=config.reuse_port or None,
                reuse_address=True,
            )
            self._servers.append(server)
            for sock in server.sockets:
                self.addresses[TransportType.TLS].append(bound_address(sock))
        _log.info(
            "relay started: %s",
            ", ".join(
                f"{kind.value} {host}:{port}"
                for kind, bound in self.addresses.items()
                for host, port in bound
            ),
        )

    def _open_udp_listener(self, host: str, port: int) -> int:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            # No SO_REUSEADDR: on UDP it lets a second process bind the same
            # port and take its datagrams. Workers share it with SO_REUSEPORT.
            if self._config.reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self._grow_buffers(sock)
            sock.bind((host, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        address = bound_address(sock)
        self._udp_listeners[address] = sock
        self._engine.add_socket(sock.fileno(), SOCKET_LISTENER)
        assert self._loop is not None
        self._loop.add_reader(sock.fileno(), self._on_listener_readable, sock, address)
        self.addresses[TransportType.UDP].append(address)
        return address[1]

    @staticmethod
    def _grow_buffers(sock: socket.socket) -> None:
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
            except OSError as exc:
                _log.debug("could not grow socket buffer: %s", exc)

    # Input.

    def _on_listener_readable(self, sock: socket.socket, local: Address) -> None:
        slow = self._engine.process(sock.fileno())
        if slow is None:
            return
        now = self.now()
        handle = self._server.handle_client_data
        udp = TransportType.UDP
        for data, remote in slow:
            handle(udp, local, remote, data, now)
        self.stats.datagrams_to_server += len(slow)
        self._service(now)

    def _on_relay_readable(self, sock: socket.socket, relayed: Address) -> None:
        slow = self._engine.process(sock.fileno())
        if slow is None:
            return
        now = self.now()
        handle = self._server.handle_peer_data
        for data, peer in slow:
            handle(relayed, peer, data, now)
        self.stats.datagrams_to_server += len(slow)
        self._service(now)

    def _on_timer(self) -> None:
        self._timer = None
        self._deadline = None
        self._service(self.now())

    # Output.

    def _service(self, now: float) -> None:
        """Handle the server's events, send its transmits, re-arm the timer."""
        server = self._server
        deadline: float | None = None
        while True:
            result = server.poll(now)
            if result is None:
                break
            if isinstance(result, WaitUntil):
                deadline = result.deadline
                break
            self._handle_event(result, now)
        self._send_transmits(now)
        self._arm(deadline)

    def _send_transmits(self, now: float) -> None:
        batches: dict[socket.socket, list[tuple[bytes, Address]]] = {}
        poll_transmit = self._server.poll_transmit
        while (transmit := poll_transmit(now)) is not None:
            if transmit.transport == TransportType.UDP:
                sock = self._udp_listeners.get(
                    transmit.source
                ) or self._relay_sockets.get(transmit.source)
                if sock is None:
                    _log.debug("no socket for transmit from %s", transmit.source)
                    continue
                batches.setdefault(sock, []).append(
                    (transmit.data, transmit.destination)
                )
            else:
                self._send_stream(transmit)
        for sock, items in batches.items():
            sent = send_datagrams(sock.fileno(), items)
            if sent < len(items):
                self.stats.send_errors += len(items) - sent
                self._send_slowly(sock, items[sent:])

    def _send_slowly(
        self, sock: socket.socket, items: list[tuple[bytes, Address]]
    ) -> None:
        # sendmmsg stops at the first datagram the kernel rejects; send the
        # rest one by one so that one unreachable peer does not hold up others.
        for data, destination in items:
            try:
                sock.sendto(data, destination)
            except OSError as exc:
                _log.debug("sendto %s failed: %s", destination, exc)

    def _send_stream(self, transmit: Transmit) -> None:
        stream = self._streams.get(
            (transmit.transport, transmit.source, transmit.destination)
        )
        if stream is None:
            _log.debug("no connection for transmit to %s", transmit.destination)
            return
        stream.write(transmit.data)

    def _arm(self, deadline: float | None) -> None:
        if deadline == self._deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = deadline
        if deadline is not None:
            assert self._loop is not None
            self._timer = self._loop.call_at(deadline, self._on_timer)

    # Events.

    def _handle_event(self, event: object, now: float) -> None:
        if isinstance(event, AllocateRelaySocket):
            self._allocate(event, now)
        elif isinstance(event, RelaySocketReleased):
            self._release(event.relayed, event.transport)
        elif isinstance(event, PermissionInstalled):
            self._permissions.add((event.relayed, event.peer_ip))
            self._update_routes(event.relayed, event.peer_ip)
        elif isinstance(event, PermissionExpired):
            self._permissions.discard((event.relayed, event.peer_ip))
            self._update_routes(event.relayed, event.peer_ip)
        elif isinstance(event, ChannelBound):
            self._channels[(event.relayed, event.peer)] = (
                event.five_tuple,
                event.channel,
            )
            self._update_routes(event.relayed, event.peer[0])
        elif isinstance(event, ChannelExpired):
            self._remove_route(
                event.relayed, event.peer, event.five_tuple, event.channel
            )
            self._channels.pop((event.relayed, event.peer), None)
        elif isinstance(event, ConnectToPeer):
            self._connect_to_peer(event)
        elif isinstance(event, ConnectionBound):
            self._bind_connection(event)
        elif isinstance(event, ClosePeerConnection):
            connection = self._peer_connections.pop(event.connection_id, None)
            if connection is not None:
                connection.close()

    def _update_routes(self, relayed: Address, peer_ip: str) -> None:
        permitted = (relayed, peer_ip) in self._permissions
        for (channel_relayed, peer), (five_tuple, channel) in self._channels.items():
            if channel_relayed != relayed or peer[0] != peer_ip:
                continue
            if permitted:
                self._install_route(relayed, peer, five_tuple, channel)
            else:
                self._remove_route(relayed, peer, five_tuple, channel)

    def _install_route(
        self, relayed: Address, peer: Address, five_tuple: FiveTuple, channel: int
    ) -> None:
        if five_tuple.transport != TransportType.UDP:
            return
        listener = self._udp_listeners.get(five_tuple.local)
        relay = self._relay_sockets.get(relayed)
        if listener is None or relay is None:
            return
        engine = self._engine
        engine.set_route(
            listener.fileno(), five_tuple.remote, channel, relay.fileno(), peer, 0
        )
        engine.set_route(
            relay.fileno(), peer, 0, listener.fileno(), five_tuple.remote, channel
        )

    def _remove_route(
        self, relayed: Address, peer: Address, five_tuple: FiveTuple, channel: int
    ) -> None:
        if five_tuple.transport != TransportType.UDP:
            return
        listener = self._udp_listeners.get(five_tuple.local)
        relay = self._relay_sockets.get(relayed)
        if listener is not None:
            self._engine.remove_route(listener.fileno(), five_tuple.remote, channel)
        if relay is not None:
            self._engine.remove_route(relay.fileno(), peer, 0)

    # Relay sockets.

    def _relay_host(self, family: AddressFamily, five_tuple: FiveTuple) -> str | None:
        for host in self._config.relay_ips:
            if family_of(host) == family:
                return host
        for host, _ in self._config.listen:
            if family_of(host) == family:
                return host
        if family_of(five_tuple.local[0]) == family:
            return five_tuple.local[0]
        return None

    def _allocate(self, event: AllocateRelaySocket, now: float) -> None:
        host = self._relay_host(event.family, event.five_tuple)
        relayed: Address | None = None
        if host is not None:
            if event.transport == TransportProtocol.UDP:
                relayed = self._bind_udp_relay(host, event)
            else:
                relayed = self._bind_tcp_relay(host, event)
        if relayed is None:
            self.stats.relay_bind_failures += 1
            _log.warning(
                "could not bind a relay socket for %s (family %s)",
                event.five_tuple.remote,
                event.family.name,
            )
        self._server.allocate_relay_socket_result(event.request_id, relayed, now)

    def _candidate_ports(self, event: AllocateRelaySocket) -> Iterator[int]:
        # Drawn one at a time: the first port is usually free, and each
        # SystemRandom draw reads the OS random source.
        if event.reservation is not None:
            yield event.reservation[1]
            return
        low, high = self._config.min_port, self._config.max_port
        for _ in range(_PORT_ATTEMPTS):
            port = self._random.randint(low, high)
            if event.even_port:
                port = port - (port % 2) if port - (port % 2) >= low else port + 1
            yield port

    def _bind_udp_relay(self, host: str, event: AllocateRelaySocket) -> Address | None:
        family = _socket_family(event.family)
        for port in self._candidate_ports(event):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                self._grow_buffers(sock)
                sock.bind((host, port))
                sock.setblocking(False)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    continue
                _log.warning("binding a relay socket on %s failed: %s", host, exc)
                return None
            relayed = bound_address(sock)
            self._relay_sockets[relayed] = sock
            self._engine.add_socket(sock.fileno(), SOCKET_RELAY)
            assert self._loop is not None
            self._loop.add_reader(sock.fileno(), self._on_relay_readable, sock, relayed)
            self.stats.relay_sockets += 1
            return relayed
        return None

    def _bind_tcp_relay(self, host: str, event: AllocateRelaySocket) -> Address | None:
        family = _socket_family(event.family)
        for port in self._candidate_ports(event):
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                # SO_REUSEPORT lets Connect open outgoing connections from the
                # same relayed address while it listens (RFC 6062 §5.2).
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind((host, port))
                sock.listen(64)
                sock.setblocking(False)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    continue
                _log.warning("binding a TCP relay socket on %s failed: %s", host, exc)
                return None
            relayed = bound_address(sock)
            assert self._loop is not None
            task = self._loop.create_task(self._serve_tcp_relay(sock, relayed))
            task.add_done_callback(_log_task_error)
            self.stats.relay_sockets += 1
            return relayed
        return None

    async def _serve_tcp_relay(self, sock: socket.socket, relayed: Address) -> None:
        assert self._loop is not None

        def factory() -> _PeerConnection:
            return _AcceptedPeer(self, relayed)

        server = await self._loop.create_server(factory, sock=sock)
        self._tcp_relays[relayed] = server

    def _release(self, relayed: Address, transport: TransportProtocol) -> None:
        sock = self._relay_sockets.pop(relayed, None)
        if sock is not None:
            assert self._loop is not None
            self._loop.remove_reader(sock.fileno())
            self._engine.remove_socket(sock.fileno())
            sock.close()
        server = self._tcp_relays.pop(relayed, None)
        if server is not None:
            server.close()

    # RFC 6062 TCP relaying.

    def _accepted_peer(self, connection: _PeerConnection) -> None:
        now = self.now()
        connection_id = self._server.handle_peer_connection(
            connection.relayed, connection.peer, now
        )
        if connection_id is None:
            connection.close()
        else:
            connection.connection_id = connection_id
            self._peer_connections[connection_id] = connection
        self._service(now)

    def _connect_to_peer(self, event: ConnectToPeer) -> None:
        assert self._loop is not None
        task = self._loop.create_task(self._open_peer_connection(event))
        task.add_done_callback(_log_task_error)

    async def _open_peer_connection(self, event: ConnectToPeer) -> None:
        assert self._loop is not None
        family = socket.AF_INET6 if ":" in event.relayed[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        connected = False
        connection = _PeerConnection(self, event.relayed)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(event.relayed)
            sock.setblocking(False)
            await asyncio.wait_for(self._loop.sock_connect(sock, event.peer), 30.0)
            await self._loop.create_connection(lambda: connection, sock=sock)
            connection.connection_id = event.connection_id
            self._peer_connections[event.connection_id] = connection
            connected = True
        except (OSError, TimeoutError) as exc:
            _log.info(
                "connecting %s to peer %s failed: %s", event.relayed, event.peer, exc
            )
            sock.close()
        now = self.now()
        self._server.connect_to_peer_result(event.connection_id, connected, now)
        self._service(now)

    def _bind_connection(self, event: ConnectionBound) -> None:
        five = event.data_connection
        stream = self._streams.get((five.transport, five.local, five.remote))
        peer = self._peer_connections.get(event.connection_id)
        if stream is None or peer is None:
            _log.info(
                "data connection for peer connection %d is gone", event.connection_id
            )
            if peer is not None:
                peer.close()
            if stream is not None:
                stream.close()
            return
        stream.write(event.response)
        peer.splice(stream)

    # Shutdown.

    def close(self) -> None:
        """Stop serving and close every socket."""
        loop = self._loop
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for sock in [*self._udp_listeners.values(), *self._relay_sockets.values()]:
            if loop is not None:
                loop.remove_reader(sock.fileno())
            self._engine.remove_socket(sock.fileno())
            sock.close()
        self._udp_listeners.clear()
        self._relay_sockets.clear()
        for server in [*self._servers, *self._tcp_relays.values()]:
            server.close()
        for stream in list(self._streams.values()):
            stream.close()
        for connection in list(self._peer_connections.values()):
            connection.close()
        self._closed.set()
        _log.info("relay stopped")

    async def wait_closed(self) -> None:
        await self._closed.wait()
        for server in self._servers:
            await server.wait_closed()

    def counters(self) -> dict[str, int]:
        """Return the relay's and the server's counters as one flat mapping."""
        engine = self._engine
        stats = self._server.stats
        result = {
            "allocations": stats.allocations,
            "permissions": stats.permissions,
            "channels": stats.channels,
            "allocations_created": stats.allocations_created,
            "requests": stats.requests,
            "error_responses": sum(stats.error_responses.values()),
            "server_packets_to_peer": stats.packets_to_peer,
            "server_packets_to_client": stats.packets_to_client,
            "fast_packets_to_peer": engine.forwarded_to_peers,
            "fast_packets_to_client": engine.forwarded_to_clients,
            "datagrams_received": engine.received,
            "datagrams_to_server": engine.to_python,
            "truncated": engine.truncated,
            "send_errors": engine.send_errors + self.stats.send_errors,
            "routes": engine.routes,
            "relay_sockets": len(self._relay_sockets),
            "tcp_connections": len(self._streams),
            "framing_errors": self.stats.framing_errors,
            "dropped": sum(stats.dropped.values()),
        }
        return result


class _AcceptedPeer(_PeerConnection):
    """A peer connection accepted on a TCP relayed address."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._relay._accepted_peer(self)


def _log_task_error(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("relay task failed", exc_info=task.exception())


Factory = Callable[[], asyncio.Protocol]
