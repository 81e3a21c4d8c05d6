"""``serve_stun``: a sans-IO ``StunServer`` on a UDP socket and a TCP listener.

TCP connections are bounded in two ways, because any client can open
them: a connection that sends no complete STUN message for
``tcp_idle_timeout`` seconds is closed, and at most ``max_tcp_connections``
are open at once, so a connection beyond that is closed as soon as it is
accepted. The service runs its own accept loop, so that a failing
``accept`` (EMFILE when the process runs out of file descriptors) is
retried after a short pause and logged at most once per second.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import socket
from dataclasses import dataclass
from types import TracebackType

from rice_fast.io._address import Address, format_address
from rice_fast.io._tcp import StreamProtocol, sockname
from rice_fast.io._udp import DatagramProtocol
from rice_fast.stun.auth import Authenticator
from rice_fast.stun.server import StunServer
from rice_fast.stun.transport import TransportType

__all__ = [
    "DEFAULT_MAX_TCP_CONNECTIONS",
    "DEFAULT_TCP_IDLE_TIMEOUT",
    "StunService",
    "serve_stun",
]

logger = logging.getLogger(__name__)

DEFAULT_TCP_IDLE_TIMEOUT = 30.0
"""Seconds a TCP connection may go without a complete STUN message."""
DEFAULT_MAX_TCP_CONNECTIONS = 1024
"""TCP connections open at once; more are closed as soon as accepted."""

# With port 0, UDP picks a free port and TCP then binds the same number.
# Another program may hold that TCP port, so this many UDP ports are tried.
_SAME_PORT_ATTEMPTS = 20

_LISTEN_BACKLOG = 128
# After a failed accept, the pending connection stays in the kernel's
# queue, so an immediate retry fails the same way.
_ACCEPT_RETRY_DELAY = 0.1
_LOG_INTERVAL = 1.0
# accept() errors that concern one connection that went away, not the
# listener: the next accept can succeed at once.
_ACCEPT_SKIP_ERRNOS = frozenset(
    {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR, errno.EAGAIN}
)


class _Throttle:
    """Let one message through per interval and count the rest."""

    __slots__ = ("_interval", "_next", "_suppressed")

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next = -math.inf
        self._suppressed = 0

    def allow(self, now: float) -> int | None:
        """Return None to stay quiet, else how many were suppressed before."""
        if now < self._next:
            self._suppressed += 1
            return None
        suppressed = self._suppressed
        self._suppressed = 0
        self._next = now + self._interval
        return suppressed


def _repeats(suppressed: int) -> str:
    if not suppressed:
        return ""
    return f" ({suppressed} more since the last report)"


@dataclass(slots=True, eq=False)
class _TcpConnection:
    protocol: StreamProtocol
    last_frame: float
    idle_timer: asyncio.TimerHandle | None = None


class StunService:
    """A running Binding server; ``serve_stun`` creates it.

    ``udp_address`` and ``tcp_address`` are the bound addresses (None for
    a transport that is off) and ``server`` is the sans-IO ``StunServer``,
    for its statistics. The TCP counters: ``closed_not_stun`` counts the
    connections closed because the client sent bytes that cannot be STUN,
    ``closed_idle`` those closed by the idle timeout, ``refused_connections``
    those closed at once because ``max_tcp_connections`` were open, and
    ``accept_errors`` the failed ``accept`` calls. ``close()`` stops
    listening and closes every TCP connection, and ``await wait_closed()``
    waits until all sockets are closed.
    """

    def __init__(
        self,
        server: StunServer,
        *,
        tcp_idle_timeout: float | None = DEFAULT_TCP_IDLE_TIMEOUT,
        max_tcp_connections: int = DEFAULT_MAX_TCP_CONNECTIONS,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.server = server
        self.udp_address: Address | None = None
        self.tcp_address: Address | None = None
        self.tcp_idle_timeout = tcp_idle_timeout
        self.max_tcp_connections = max_tcp_connections
        self._udp: DatagramProtocol | None = None
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._connections: dict[tuple[Address, Address], _TcpConnection] = {}
        self._closing = False
        self._all_closed = asyncio.Event()
        self._accept_error_log = _Throttle(_LOG_INTERVAL)
        self._refused_log = _Throttle(_LOG_INTERVAL)
        self.closed_not_stun = 0
        self.closed_idle = 0
        self.refused_connections = 0
        self.accept_errors = 0

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
        listener = self._listener
        if self._accept_task is not None and not self._accept_task.done():
            # The listener is closed once the task has removed its reader,
            # so that the file descriptor is not reused while registered.
            self._accept_task.cancel()
            if listener is not None:
                self._accept_task.add_done_callback(lambda _: listener.close())
        elif listener is not None:
            listener.close()
        for connection in list(self._connections.values()):
            connection.protocol.close()
        if self._udp is not None:
            self._udp.close()
        self._check_closed()

    async def wait_closed(self) -> None:
        """Wait until ``close()`` has closed every socket."""
        if self._accept_task is not None:
            await asyncio.gather(self._accept_task, return_exceptions=True)
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

    async def _accept_loop(self, listener: socket.socket) -> None:
        """Accept connections until ``close()`` cancels this task."""
        loop = self._loop
        local = format_address(self.tcp_address or ("", 0))
        while not self._closing:
            try:
                client, remote = await loop.sock_accept(listener)
            except OSError as exc:
                if self._closing:
                    return
                if exc.errno in _ACCEPT_SKIP_ERRNOS:
                    continue
                self.accept_errors += 1
                suppressed = self._accept_error_log.allow(loop.time())
                if suppressed is not None:
                    logger.error(
                        "accepting a TCP connection on %s failed, retrying: %s%s",
                        local,
                        exc.strerror or exc,
                        _repeats(suppressed),
                    )
                await asyncio.sleep(_ACCEPT_RETRY_DELAY)
                continue
            if self._closing:
                client.close()
                return
            if len(self._connections) >= self.max_tcp_connections:
                client.close()
                self._refuse(remote)
                continue
            try:
                await loop.connect_accepted_socket(self._new_protocol, client)
            except OSError as exc:
                client.close()
                logger.debug("dropped an accepted TCP connection: %s", exc)

    def _new_protocol(self) -> StreamProtocol:
        return StreamProtocol(
            self._on_message,
            self._on_connection_closed,
            self._on_connected,
            # Any client can send garbage; INFO keeps it out of warnings.
            framing_log_level=logging.INFO,
        )

    def _refuse(self, remote: object) -> None:
        self.refused_connections += 1
        suppressed = self._refused_log.allow(self._loop.time())
        if suppressed is None:
            return
        try:
            peer = format_address(sockname(remote))
        except ValueError:
            peer = repr(remote)
        logger.warning(
            "closed the TCP connection from %s at once: %d connections are "
            "open, which is max_tcp_connections%s",
            peer,
            len(self._connections),
            _repeats(suppressed),
        )

    def _on_connected(self, connection: StreamProtocol) -> None:
        if self._closing:
            connection.close()
            return
        key = (connection.local_address, connection.remote_address)
        record = _TcpConnection(connection, self._loop.time())
        self._connections[key] = record
        self._arm_idle_timer(record)
        logger.debug(
            "TCP connection from %s to %s",
            format_address(connection.remote_address),
            format_address(connection.local_address),
        )

    def _arm_idle_timer(self, record: _TcpConnection) -> None:
        if self.tcp_idle_timeout is None:
            return
        record.idle_timer = self._loop.call_at(
            record.last_frame + self.tcp_idle_timeout, self._check_idle, record
        )

    def _check_idle(self, record: _TcpConnection) -> None:
        # A complete message only moves ``last_frame``, and the timer is
        # re-armed here, so there is no timer churn per message.
        record.idle_timer = None
        connection = record.protocol
        key = (connection.local_address, connection.remote_address)
        if self._connections.get(key) is not record or self.tcp_idle_timeout is None:
            return
        if self._loop.time() - record.last_frame < self.tcp_idle_timeout:
            self._arm_idle_timer(record)
            return
        self.closed_idle += 1
        logger.debug(
            "closing the TCP connection with %s: no complete STUN message for %g s",
            format_address(connection.remote_address),
            self.tcp_idle_timeout,
        )
        connection.close(
            f"no complete STUN message for {self.tcp_idle_timeout:g} s (idle timeout)"
        )

    def _on_message(self, connection: StreamProtocol, data: bytes) -> None:
        now = self._loop.time()
        record = self._connections.get(
            (connection.local_address, connection.remote_address)
        )
        if record is not None:
            record.last_frame = now
        self.server.handle_data(
            TransportType.TCP,
            connection.local_address,
            connection.remote_address,
            data,
            now,
        )
        self._drain()

    def _on_connection_closed(
        self, connection: StreamProtocol, reason: str | None
    ) -> None:
        key = (connection.local_address, connection.remote_address)
        record = self._connections.get(key)
        if record is not None and record.protocol is connection:
            del self._connections[key]
            if record.idle_timer is not None:
                record.idle_timer.cancel()
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
            record = self._connections.get((transmit.source, transmit.destination))
            if record is None:
                logger.debug(
                    "dropping a response to %s: its TCP connection is closed",
                    format_address(transmit.destination),
                )
                continue
            record.protocol.write(transmit.data)

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

    def _bind_tcp(self, address: Address) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind(address)
            listener.listen(_LISTEN_BACKLOG)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self.tcp_address = sockname(listener.getsockname())
        self._accept_task = self._loop.create_task(self._accept_loop(listener))

    async def _bind(self, listen: Address, udp: bool, tcp: bool) -> None:
        if not udp:
            self._bind_tcp(listen)
            return
        attempts = _SAME_PORT_ATTEMPTS if tcp and listen[1] == 0 else 1
        for attempt in range(attempts):
            await self._bind_udp(listen)
            if not tcp:
                return
            assert self.udp_address is not None
            try:
                self._bind_tcp((listen[0], self.udp_address[1]))
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
    tcp_idle_timeout: float | None = DEFAULT_TCP_IDLE_TIMEOUT,
    max_tcp_connections: int = DEFAULT_MAX_TCP_CONNECTIONS,
) -> StunService:
    """Start a STUN Binding server on ``listen`` over UDP and TCP.

    ``listen`` is a numeric ``(host, port)``; with port 0 both transports
    share one ephemeral port. ``software`` is sent as SOFTWARE and
    ``authenticator``, when given, checks the credentials of every request
    (``LongTermAuthenticator`` or ``ShortTermAuthenticator``). A TCP
    connection that sends no complete message for ``tcp_idle_timeout``
    seconds is closed (None turns the timeout off), and at most
    ``max_tcp_connections`` are open at once. Raises ``OSError`` when a
    socket cannot be bound, and ``ValueError`` when both transports are
    off or a setting is out of range.
    """
    if not udp and not tcp:
        raise ValueError("serve_stun needs udp, tcp or both to be true")
    if tcp_idle_timeout is not None and (
        isinstance(tcp_idle_timeout, bool)
        or not isinstance(tcp_idle_timeout, int | float)
        or not math.isfinite(tcp_idle_timeout)
        or tcp_idle_timeout <= 0
    ):
        raise ValueError(
            "tcp_idle_timeout must be a finite, positive number of seconds or "
            f"None, got {tcp_idle_timeout!r}"
        )
    if (
        isinstance(max_tcp_connections, bool)
        or not isinstance(max_tcp_connections, int)
        or max_tcp_connections < 1
    ):
        raise ValueError(
            f"max_tcp_connections must be an int of at least 1, got "
            f"{max_tcp_connections!r}"
        )
    service = StunService(
        StunServer(software=software, authenticator=authenticator),
        tcp_idle_timeout=tcp_idle_timeout,
        max_tcp_connections=max_tcp_connections,
    )
    try:
        await service._bind(listen, udp, tcp)
    except BaseException:
        service.close()
        await service.wait_closed()
        raise
    return service
