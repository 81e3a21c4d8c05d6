"""``TurnConnection``: a sans-IO ``TurnClient`` run over asyncio sockets.

Theory of operation: the connection owns the client's sockets, keyed by
local address: the control socket (UDP, or a TCP connection that carries
TLS inside the client) and, for RFC 6062 allocations, one TCP connection
per peer. Every read goes to ``TurnClient.handle_data`` with the socket's
local address. Then the driver polls the client for events until it
returns a deadline, writes every ``Transmit`` to the socket named by its
source address and arms its one timer at the deadline. The clock given to
the client as ``now`` is ``loop.time()``. Events resolve the futures of the
awaitable calls (``create_permission`` waits for ``PermissionCreated``)
and ``AllocateSocket`` makes the driver open the requested socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, TypeVar

from rice_fast.io._address import (
    Address,
    format_address,
    parse_address,
    resolve_address,
)
from rice_fast.io._tcp import sockname
from rice_fast.io._timer import DeadlineTimer
from rice_fast.io._udp import DatagramProtocol
from rice_fast.io.errors import StunConnectionError, StunErrorResponse, StunIOError
from rice_fast.stun.agent import StunConfig
from rice_fast.stun.credentials import LongTermCredentials
from rice_fast.stun.transport import Transmit, TransportType, WaitUntil
from rice_fast.turn.client import AllocationOptions, TurnClient, canonical_address
from rice_fast.turn.events import (
    AllocateSocket,
    AllocationCreated,
    AllocationDeleted,
    AllocationFailed,
    ChannelBindFailed,
    ChannelBound,
    PeerConnected,
    PeerConnectFailed,
    PeerData,
    PeerDisconnected,
    PermissionCreated,
    PermissionFailed,
    ServerRedirected,
    SocketPurpose,
    TurnEvent,
)

__all__ = ["TurnConnection"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

DEFAULT_PORT = 3478
# Received peer data kept for recv_from; beyond this the oldest is dropped.
_QUEUE_LIMIT = 4096
# Bound on poll rounds per input, as in the STUN driver.
_MAX_ROUNDS = 1000


class _StreamProtocol(asyncio.Protocol):
    """A TCP connection that hands every read to ``on_data`` unframed."""

    def __init__(
        self,
        on_data: Callable[[_StreamProtocol, bytes], None],
        on_closed: Callable[[_StreamProtocol, str | None], None],
    ) -> None:
        self._on_data = on_data
        self._on_closed = on_closed
        self.transport: asyncio.Transport | None = None
        self.local_address: Address = ("", 0)
        self.remote_address: Address = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.local_address = sockname(transport.get_extra_info("sockname"))
        self.remote_address = sockname(transport.get_extra_info("peername"))

    def data_received(self, data: bytes) -> None:
        self._on_data(self, data)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_closed(self, None if exc is None else str(exc))

    def sendto(self, data: bytes, destination: Address) -> None:
        """Write ``data``; the destination is the connection's peer."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        """Close the connection."""
        if self.transport is not None:
            self.transport.close()


_Endpoint = DatagramProtocol | _StreamProtocol


class _Router:
    """Routes socket callbacks to the connection, by the socket's local address.

    The first socket opens before the ``TurnConnection`` exists, because the
    client needs its local address. Reads that arrive before ``connection``
    is set are dropped, and there are none: the server sends nothing before
    the first request.
    """

    def __init__(self) -> None:
        self.connection: TurnConnection | None = None

    def data(self, local: Address, data: bytes, source: Address | None) -> None:
        if self.connection is not None:
            self.connection._on_data(local, data, source)

    def closed(self, local: Address, reason: str | None) -> None:
        if self.connection is not None:
            self.connection._on_socket_closed(local, reason)


def _source_ip_for(server: Address) -> str:
    """Return the local IP the kernel routes to ``server`` (sends nothing)."""
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect(server)
        return str(probe.getsockname()[0])


class _Opener:
    """What ``TurnConnection.connect`` returns: await it or use ``async with``."""

    def __init__(self, factory: Callable[[], Awaitable[TurnConnection]]) -> None:
        self._factory = factory
        self._connection: TurnConnection | None = None

    def __await__(self) -> Generator[Any, None, TurnConnection]:
        return self._factory().__await__()

    async def __aenter__(self) -> TurnConnection:
        self._connection = await self._factory()
        return self._connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._connection is not None:
            await self._connection.close()


class TurnConnection:
    """A TURN allocation on asyncio sockets.

    Open it with ``async with TurnConnection.connect(server, credentials,
    transport="udp") as turn:`` (or ``turn = await
    TurnConnection.connect(...)`` and ``await turn.close()``). Closing
    deletes the allocation. ``client`` is the sans-IO ``TurnClient`` for
    its statistics and finer control. Errors are the ``rice_fast.io``
    errors: ``StunErrorResponse`` with the ERROR-CODE of a rejected
    request, ``StunConnectionError`` for a failed socket, TLS session or a
    lost allocation, and ``TimeoutError`` when a call's ``timeout`` runs
    out.
    """

    def __init__(
        self, client: TurnClient, transport: TransportType, router: _Router
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.client = client
        self.transport = transport
        self._router = router
        router.connection = self
        self._timer = DeadlineTimer(self._loop, self._process)
        self._endpoints: dict[Address, _Endpoint] = {}
        self._allocated: asyncio.Future[AllocationCreated] = self._loop.create_future()
        self._allocation = AllocationCreated((), None, 0, client.local_address)
        self._deleted: asyncio.Future[bool] = self._loop.create_future()
        self._permission_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._channel_waiters: dict[Address, list[asyncio.Future[int]]] = {}
        self._connect_waiters: dict[Address, list[asyncio.Future[Address]]] = {}
        self._accepted: asyncio.Queue[Address] = asyncio.Queue()
        self._received: deque[tuple[bytes, Address]] = deque()
        self._receive_ready = asyncio.Event()
        self._peer_sockets: dict[int, _Endpoint] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._failure: StunIOError | None = None
        self.dropped_received = 0
        """Peer datagrams dropped because ``recv_from`` fell behind."""

    # Opening.

    @classmethod
    def connect(
        cls,
        server: Address | str,
        credentials: LongTermCredentials,
        *,
        transport: TransportType | str = "udp",
        options: AllocationOptions | None = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        local_address: Address | None = None,
        timeout: float | None = 10.0,
        stun_config: StunConfig | None = None,
        software: str | None = None,
    ) -> _Opener:
        """Connect to ``server`` and allocate; use with ``await`` or ``async with``.

        ``server`` is ``(host, port)`` or text such as ``"turn.example:3478"``
        (port 3478 when missing). A host name resolves to its first IPv4
        address, so give a literal address for an IPv6 server. ``transport``
        is "udp", "tcp" or "tls". Over TLS the certificate and host name are
        checked with ``ssl_context`` (default: the system CAs) against
        ``server_hostname`` (default: the host in ``server``). ``timeout``
        bounds the connection and the Allocate, in seconds.
        """
        kind = TransportType(transport)

        async def open_connection() -> TurnConnection:
            return await cls._open(
                server,
                credentials,
                kind,
                options,
                ssl_context,
                server_hostname,
                local_address,
                timeout,
                stun_config,
                software,
            )

        return _Opener(open_connection)

    @classmethod
    async def _open(
        cls,
        server: Address | str,
        credentials: LongTermCredentials,
        kind: TransportType,
        options: AllocationOptions | None,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
        local_address: Address | None,
        timeout: float | None,
        stun_config: StunConfig | None,
        software: str | None,
    ) -> TurnConnection:
        if isinstance(server, str):
            server = parse_address(server, default_port=DEFAULT_PORT)
        hostname = server_hostname
        if hostname is None and kind is TransportType.TLS:
            hostname = server[0]
        socktype = (
            socket.SOCK_DGRAM if kind is TransportType.UDP else socket.SOCK_STREAM
        )
        try:
            _, numeric = await resolve_address(server, socktype=socktype)
        except OSError as exc:
            raise StunConnectionError(
                f"cannot resolve TURN server {format_address(server)}: {exc}",
                server=server,
                transport=kind.value,
            ) from exc
        router = _Router()
        connection: TurnConnection | None = None
        endpoint: _Endpoint | None = None
        try:
            async with asyncio.timeout(timeout):
                endpoint = await cls._open_endpoint(
                    router, kind, numeric, local_address
                )
                client = TurnClient(
                    kind,
                    endpoint.local_address,
                    numeric,
                    credentials,
                    options=options,
                    ssl_context=ssl_context,
                    server_hostname=hostname,
                    stun_config=stun_config,
                    software=software,
                )
                connection = cls(client, kind, router)
                connection._endpoints[endpoint.local_address] = endpoint
                connection._process()
                await asyncio.shield(connection._allocated)
        except TimeoutError:
            if connection is not None:
                connection._close_sockets()
            elif endpoint is not None:
                endpoint.close()
            raise TimeoutError(
                f"TURN allocation on {format_address(numeric)} over {kind.value} "
                f"did not complete within {timeout:g} s"
            ) from None
        except BaseException:
            if connection is not None:
                connection._close_sockets()
            elif endpoint is not None:
                endpoint.close()
            raise
        return connection

    @staticmethod
    async def _open_endpoint(
        router: _Router,
        kind: TransportType,
        server: Address,
        local_address: Address | None,
    ) -> _Endpoint:
        """Bind a UDP socket or connect a TCP socket toward ``server``."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        try:
            if kind is TransportType.UDP:
                if local_address is None:
                    local_address = (_source_ip_for(server), 0)
                box: list[DatagramProtocol] = []

                def on_datagram(data: bytes, source: Address) -> None:
                    if box:
                        router.data(box[0].local_address, data, source)

                def on_closed(reason: str | None) -> None:
                    if box:
                        router.closed(box[0].local_address, reason)

                _, datagram = await loop.create_datagram_endpoint(
                    lambda: DatagramProtocol(on_datagram, on_closed),
                    local_addr=local_address,
                )
                box.append(datagram)
                return datagram
            _, stream = await loop.create_connection(
                lambda: _StreamProtocol(
                    lambda proto, data: router.data(proto.local_address, data, None),
                    lambda proto, reason: router.closed(proto.local_address, reason),
                ),
                server[0],
                server[1],
                family=family,
                local_addr=local_address,
            )
        except OSError as exc:
            raise StunConnectionError(
                f"cannot open a {kind.value} socket to TURN server "
                f"{format_address(server)}: {exc.strerror or exc}",
                server=server,
                transport=kind.value,
            ) from exc
        return stream

    # Properties.

    @property
    def allocation(self) -> AllocationCreated:
        """The ``AllocationCreated`` event of the current allocation.

        It carries the relayed and mapped addresses, the granted lifetime,
        the RESERVATION-TOKEN of an EVEN-PORT request and the
        ADDRESS-ERROR-CODE of a partial dual allocation. A re-allocation
        after 437 replaces it.
        """
        return self._allocation

    @property
    def relayed_addresses(self) -> tuple[Address, ...]:
        """The relayed addresses of the allocation."""
        return self.client.relayed_addresses

    @property
    def relayed_address(self) -> Address:
        """The first relayed address (the IPv4 one of a dual allocation)."""
        return self.client.relayed_addresses[0]

    @property
    def mapped_address(self) -> Address | None:
        """The server-reflexive address from the Allocate response."""
        return self.client.mapped_address

    @property
    def server(self) -> Address:
        """The server in use."""
        return self.client.server

    @property
    def deletion_confirmed(self) -> bool | None:
        """After ``close``: whether the server confirmed the delete.

        None before the client reached its final event; False when the
        delete timed out or the allocation had failed, in which case the
        server drops it when its lifetime ends.
        """
        if not self._deleted.done():
            return None
        return self._deleted.result()

    # Operations.

    async def create_permission(
        self, peer: Address | str, *, timeout: float | None = 10.0
    ) -> None:
        """Install a permission for the peer's IP and wait for the server."""
        self._check()
        ip = canonical_address((peer, 0) if isinstance(peer, str) else peer)[0]
        future: asyncio.Future[None] = self._loop.create_future()
        self._permission_waiters.setdefault(ip, []).append(future)
        if self.client.has_permission(ip):
            future.set_result(None)
        self.client.create_permission(ip, self._loop.time())
        self._process()
        await self._wait(future, timeout, f"CreatePermission for {ip}")

    async def bind_channel(self, peer: Address, *, timeout: float | None = 10.0) -> int:
        """Bind a channel to ``peer`` and return its number once bound."""
        self._check()
        peer = canonical_address(peer)
        future: asyncio.Future[int] = self._loop.create_future()
        self._channel_waiters.setdefault(peer, []).append(future)
        number = self.client.bind_channel(peer, self._loop.time())
        if self.client.channel_of(peer) == number:
            future.set_result(number)
        self._process()
        return await self._wait(future, timeout, f"ChannelBind to {peer}")

    def send_to(self, peer: Address, data: bytes) -> None:
        """Send ``data`` to ``peer`` (ChannelData once a channel is bound)."""
        self._check()
        self.client.send_to(peer, data, self._loop.time())
        self._drain()

    async def recv_from(self, *, timeout: float | None = None) -> tuple[bytes, Address]:
        """Return the next ``(data, peer)`` that arrived through the relay."""
        async with asyncio.timeout(timeout):
            while not self._received:
                self._check()
                self._receive_ready.clear()
                await self._receive_ready.wait()
        return self._received.popleft()

    async def connect_peer(
        self, peer: Address, *, timeout: float | None = 10.0
    ) -> Address:
        """RFC 6062: open a TCP connection to ``peer`` through the relay.

        Returns the local address of the data connection once it is bound;
        ``send_to`` and ``recv_from`` then carry the peer's byte stream.
        """
        self._check()
        peer = canonical_address(peer)
        future: asyncio.Future[Address] = self._loop.create_future()
        self._connect_waiters.setdefault(peer, []).append(future)
        self.client.connect(peer, self._loop.time())
        self._process()
        return await self._wait(future, timeout, f"Connect to {peer}")

    async def accept_peer(self, *, timeout: float | None = None) -> Address:
        """RFC 6062: wait for a peer that connected to the relayed address."""
        async with asyncio.timeout(timeout):
            return await self._accepted.get()

    async def close(self, *, timeout: float = 5.0) -> None:
        """Delete the allocation (Refresh LIFETIME 0), then close the sockets."""
        if not self.client.closed:
            self.client.delete(self._loop.time())
            self._process()
        if not self._deleted.done():
            # The final event arrives when the Refresh completes or times out.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self._deleted)
        self._close_sockets()
        for task in list(self._tasks):
            task.cancel()

    async def __aenter__(self) -> TurnConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # Driving the client.

    def _on_data(self, local: Address, data: bytes, source: Address | None) -> None:
        if source is None:
            source = self.client.server
        self.client.handle_data(data, source, self._loop.time(), local=local)
        self._process()

    def _on_socket_closed(self, local: Address, reason: str | None) -> None:
        endpoint = self._endpoints.pop(local, None)
        if endpoint is None:
            return
        if isinstance(endpoint, _StreamProtocol):
            self.client.connection_closed(local, self._loop.time(), reason or "")
        self._process()

    def _process(self) -> None:
        """Poll events, drain transmits and re-arm the timer."""
        now = self._loop.time()
        deadline: float | None = None
        for _ in range(_MAX_ROUNDS):
            result = self.client.poll(now)
            if isinstance(result, TurnEvent):
                self._dispatch(result)
                continue
            deadline = result.deadline if isinstance(result, WaitUntil) else None
            if not self._drain():
                break
        else:
            logger.warning("TURN client still had work after %d rounds", _MAX_ROUNDS)
            deadline = now
        self._timer.arm(deadline)

    def _drain(self) -> bool:
        sent = False
        now = self._loop.time()
        while (transmit := self.client.poll_transmit(now)) is not None:
            self._send(transmit)
            sent = True
        return sent

    def _send(self, transmit: Transmit) -> None:
        endpoint = self._endpoints.get(transmit.source)
        if endpoint is None:
            logger.debug(
                "dropping a transmit from %s: that socket is closed",
                format_address(transmit.source),
            )
            return
        endpoint.sendto(transmit.data, transmit.destination)

    def _dispatch(self, event: TurnEvent) -> None:
        if isinstance(event, PeerData):
            if len(self._received) >= _QUEUE_LIMIT:
                self._received.popleft()
                self.dropped_received += 1
            self._received.append((event.data, event.peer))
            self._receive_ready.set()
        elif isinstance(event, AllocationCreated):
            logger.info(
                "TURN allocation on %s: relayed %s",
                format_address(self.client.server),
                ", ".join(format_address(a) for a in event.relayed_addresses),
            )
            self._allocation = event
            if not self._allocated.done():
                self._allocated.set_result(event)
        elif isinstance(event, PermissionCreated):
            self._resolve(self._permission_waiters.pop(event.peer_ip, []), None)
        elif isinstance(event, PermissionFailed):
            error = self._error(event.code, event.reason, "CreatePermission")
            self._fail(self._permission_waiters.pop(event.peer_ip, []), error)
        elif isinstance(event, ChannelBound):
            self._resolve(self._channel_waiters.pop(event.peer, []), event.channel)
        elif isinstance(event, ChannelBindFailed):
            error = self._error(event.code, event.reason, "ChannelBind")
            self._fail(self._channel_waiters.pop(event.peer, []), error)
        elif isinstance(event, AllocateSocket):
            self._spawn(self._allocate_socket(event))
        elif isinstance(event, PeerConnected):
            waiters = self._connect_waiters.pop(event.peer, [])
            if waiters:
                self._resolve(waiters, event.local_address)
            else:
                self._accepted.put_nowait(event.peer)
        elif isinstance(event, PeerConnectFailed):
            self._close_peer_socket(event.connection_id)
            error = self._error(event.code, event.reason, "Connect")
            self._fail(self._connect_waiters.pop(event.peer, []), error)
        elif isinstance(event, PeerDisconnected):
            self._close_peer_socket(event.connection_id)
        elif isinstance(event, ServerRedirected):
            logger.info("TURN server redirected to %s", format_address(event.server))
        elif isinstance(event, AllocationDeleted):
            self._terminate(
                StunConnectionError(
                    "the TURN allocation was deleted",
                    server=self.client.server,
                    transport=self.transport.value,
                )
            )
            if not self._deleted.done():
                self._deleted.set_result(event.confirmed)
        elif isinstance(event, AllocationFailed):
            # A failure before the allocation exists is raised by connect;
            # a lost allocation surfaces only on the next call, so log it.
            level = logging.WARNING if self._allocated.done() else logging.DEBUG
            logger.log(
                level,
                "TURN allocation on %s failed: %d %s",
                format_address(self.client.server),
                event.code,
                event.reason,
            )
            self._terminate(self._error(event.code, event.reason, "Allocate"))
            if not self._deleted.done():
                self._deleted.set_result(False)
        else:
            logger.debug("TURN event %r", event)

    def _error(self, code: int, reason: str, method: str) -> StunIOError:
        if code:
            return StunErrorResponse(
                code,
                reason,
                server=self.client.server,
                transport=self.transport.value,
                method=method,
            )
        return StunConnectionError(
            f"{method} failed: {reason}",
            server=self.client.server,
            transport=self.transport.value,
        )

    def _terminate(self, error: StunIOError) -> None:
        self._failure = error
        if not self._allocated.done():
            self._allocated.set_exception(error)
            self._allocated.exception()
        for permission_waiters in self._permission_waiters.values():
            self._fail(permission_waiters, error)
        for channel_waiters in self._channel_waiters.values():
            self._fail(channel_waiters, error)
        for connect_waiters in self._connect_waiters.values():
            self._fail(connect_waiters, error)
        self._permission_waiters.clear()
        self._channel_waiters.clear()
        self._connect_waiters.clear()
        self._receive_ready.set()

    @staticmethod
    def _resolve(waiters: list[asyncio.Future[Any]], value: object) -> None:
        for future in waiters:
            if not future.done():
                future.set_result(value)

    @staticmethod
    def _fail(waiters: list[asyncio.Future[Any]], error: BaseException) -> None:
        for future in waiters:
            if not future.done():
                future.set_exception(error)

    async def _wait(
        self, future: asyncio.Future[_T], timeout: float | None, what: str
    ) -> _T:
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            if future.done() and not future.cancelled():
                raise
            raise TimeoutError(
                f"{what} on TURN server {format_address(self.client.server)} did "
                f"not complete within {timeout} s"
            ) from None

    def _check(self) -> None:
        if self._failure is not None and not self._received:
            raise self._failure

    # Sockets requested by the client.

    def _spawn(self, coroutine: Any) -> None:
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _allocate_socket(self, event: AllocateSocket) -> None:
        client = self.client
        connection_id = event.connection_id
        try:
            endpoint = await self._open_endpoint(
                self._router, event.transport, event.server, None
            )
        except StunConnectionError as exc:
            logger.warning("cannot open the socket the TURN client asked for: %s", exc)
            client.socket_failed(
                self._loop.time(), connection_id=connection_id, reason=str(exc)
            )
            self._process()
            return
        if client.closed:
            endpoint.close()
            return
        old = client.local_address
        self._endpoints[endpoint.local_address] = endpoint
        if connection_id is not None:
            self._peer_sockets[connection_id] = endpoint
        client.socket_allocated(
            endpoint.local_address, self._loop.time(), connection_id=connection_id
        )
        if event.purpose is not SocketPurpose.PEER_CONNECTION:
            previous = self._endpoints.pop(old, None)
            if previous is not None:
                previous.close()
        self._process()

    def _close_peer_socket(self, connection_id: int | None) -> None:
        if connection_id is None:
            return
        endpoint = self._peer_sockets.pop(connection_id, None)
        if endpoint is not None:
            self._endpoints.pop(endpoint.local_address, None)
            endpoint.close()

    def _close_sockets(self) -> None:
        self._timer.cancel()
        for endpoint in list(self._endpoints.values()):
            endpoint.close()
        self._endpoints.clear()
        self._peer_sockets.clear()
