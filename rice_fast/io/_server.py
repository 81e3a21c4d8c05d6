"""``serve_stun``: a sans-IO ``StunServer`` on a UDP socket and a TCP listener."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from types import TracebackType

from rice_fast.io._address import Address, format_address
from rice_fast.io._tcp import StreamProtocol
from rice_fast.io._udp import DatagramProtocol
from rice_fast.stun.auth import Authenticator
from rice_fast.stun.server import StunServer
from rice_fast.stun.transport import TransportType

__all__ = ["StunService", "serve_stun"]

logger = logging.getLogger(__name__)

# With port 0, UDP picks a free port and TCP then binds the same number.
# Another program may hold that TCP port, so this many UDP ports are tried.
_SAME_PORT_ATTEMPTS = 20


class StunService:
    """A running Binding server; ``serve_stun`` creates it.

    ``udp_address`` and ``tcp_address`` are the bound addresses (None for
    a transport that is off) and ``server`` is the sans-IO ``StunServer``,
    for its statistics. ``closed_not_stun`` counts the TCP connections
    closed because the client sent bytes that cannot be STUN. ``close()``
    stops listening and closes every TCP connection, and ``await
    wait_closed()`` waits until all sockets are closed.
    """

    def __init__(self, server: StunServer) -> None:
        self._loop = asyncio.get_running_loop()
        self.server = server
        self.udp_address: Address | None = None
        self.tcp_address: Address | None = None
        self._udp: DatagramProtocol | None = None
        self._listener: asyncio.Server | None = None
        self._connections: dict[tuple[Address, Address], StreamProtocol] = {}
        self._closing = False
        self._all_closed = asyncio.Event()
        self.closed_not_stun = 0

    @property
    def addresses(self) -> list[tuple[TransportType, Address]]:
        """The bound ``(transport, address)`` pairs, UDP first."""
        bound: list[tuple[TransportType, Address]] = []
        if self.udp_address is not None:
            bound.append((TransportType.UDP, self.udp_address))
        if self.tcp_address is not None:
            bound.append((TransportType.TCP, self.tcp_address))
        return bound

    @property
    def connections(self) -> int:
        """The number of open TCP connections."""
        return len(self._connections)

    def close(self) -> None:
        """Stop listening and close every socket and connection."""
        if self._closing:
            return
        self._closing = True
        if self._listener is not None:
            self._listener.close()
        for connection in list(self._connections.values()):
            connection.close()
        if self._udp is not None:
            self._udp.close()
        self._check_closed()

    async def wait_closed(self) -> None:
        """Wait until ``close()`` has closed every socket."""
        if self._listener is not None:
            await self._listener.wait_closed()
        if self._udp is not None:
            await self._udp.closed
        await self._all_closed.wait()

    async def __aenter__(self) -> StunService:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()

    def _check_closed(self) -> None:
        if self._closing and not self._connections:
            self._all_closed.set()

    # UDP

    def _on_datagram(
        self, protocol: DatagramProtocol, data: bytes, source: Address
    ) -> None:
        self.server.handle_data(
            TransportType.UDP, protocol.local_address, source, data, self._loop.time()
        )
        self._drain()

    # TCP

    def _on_connected(self, connection: StreamProtocol) -> None:
        if self._closing:
            connection.close()
            return
        # NOTE: TCP connections have no idle timeout and no count limit, so
        # clients that connect and stay silent each keep a socket open.
        key = (connection.local_address, connection.remote_address)
        self._connections[key] = connection
        logger.debug(
            "TCP connection from %s to %s",
            format_address(connection.remote_address),
            format_address(connection.local_address),
        )

    def _on_message(self, connection: StreamProtocol, data: bytes) -> None:
        self.server.handle_data(
            TransportType.TCP,
            connection.local_address,
            connection.remote_address,
            data,
            self._loop.time(),
        )
        self._drain()

    def _on_connection_closed(
        self, connection: StreamProtocol, reason: str | None
    ) -> None:
        key = (connection.local_address, connection.remote_address)
        if self._connections.get(key) is connection:
            del self._connections[key]
        if connection.framing_errors:
            self.closed_not_stun += 1
        logger.debug(
            "TCP connection from %s closed%s",
            format_address(connection.remote_address),
            f": {reason}" if reason else "",
        )
        self._check_closed()

    def _drain(self) -> None:
        now = self._loop.time()
        while (transmit := self.server.poll_transmit(now)) is not None:
            if transmit.transport is TransportType.UDP:
                if self._udp is not None:
                    self._udp.sendto(transmit.data, transmit.destination)
                continue
            connection = self._connections.get((transmit.source, transmit.destination))
            if connection is None:
                logger.debug(
                    "dropping a response to %s: its TCP connection is closed",
                    format_address(transmit.destination),
                )
                continue
            connection.write(transmit.data)

    # Start-up

    async def _bind_udp(self, address: Address) -> None:
        endpoint: list[DatagramProtocol] = []

        def on_datagram(data: bytes, source: Address) -> None:
            self._on_datagram(endpoint[0], data, source)

        protocol: DatagramProtocol
        _, protocol = await self._loop.create_datagram_endpoint(
            lambda: DatagramProtocol(on_datagram), local_addr=address
        )
        endpoint.append(protocol)
        self._udp = protocol
        self.udp_address = protocol.local_address

    async def _bind_tcp(self, address: Address) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        listener = await self._loop.create_server(
            lambda: StreamProtocol(
                self._on_message,
                self._on_connection_closed,
                self._on_connected,
                # Any client can send garbage; INFO keeps it out of warnings.
                framing_log_level=logging.INFO,
            ),
            address[0],
            address[1],
            family=family,
            reuse_address=True,
        )
        self._listener = listener
        bound = listener.sockets[0].getsockname()
        self.tcp_address = (str(bound[0]), int(bound[1]))

    async def _bind(self, listen: Address, udp: bool, tcp: bool) -> None:
        if not udp:
            await self._bind_tcp(listen)
            return
        attempts = _SAME_PORT_ATTEMPTS if tcp and listen[1] == 0 else 1
        for attempt in range(attempts):
            await self._bind_udp(listen)
            if not tcp:
                return
            assert self.udp_address is not None
            try:
                await self._bind_tcp((listen[0], self.udp_address[1]))
                return
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or attempt + 1 == attempts:
                    raise
                assert self._udp is not None
                self._udp.close()
                self._udp = None
                self.udp_address = None


async def serve_stun(
    listen: Address,
    *,
    udp: bool = True,
    tcp: bool = True,
    software: str | None = None,
    authenticator: Authenticator | None = None,
) -> StunService:
    """Start a STUN Binding server on ``listen`` over UDP and TCP.

    ``listen`` is a numeric ``(host, port)``; with port 0 both transports
    share one ephemeral port. ``software`` is sent as SOFTWARE and
    ``authenticator``, when given, checks the credentials of every request
    (``LongTermAuthenticator`` or ``ShortTermAuthenticator``). Raises
    ``OSError`` when a socket cannot be bound and ``ValueError`` when both
    transports are off.
    """
    if not udp and not tcp:
        raise ValueError("serve_stun needs udp, tcp or both to be true")
    service = StunService(StunServer(software=software, authenticator=authenticator))
    try:
        await service._bind(listen, udp, tcp)
    except BaseException:
        service.close()
        await service.wait_closed()
        raise
    return service
