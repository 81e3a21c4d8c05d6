"""Run a sans-IO ICE ``Agent`` over real sockets with asyncio.

Theory of operation: ``IceConnection`` owns the UDP sockets, TCP listeners
and TCP connections of one agent with one stream. Readable UDP sockets are
read in a loop until they would block; each datagram goes to
``Agent.handle_data``, and application data that comes back goes to the
component's receive queue. After every input and every timer the runner
polls the agent until it returns a deadline, answers ``AllocateSocket``
by opening the TCP connection, closes connections on ``RemoveSocket``,
sends every transmit, and arms one ``loop.call_at`` timer for the
deadline. The sans-IO clock is ``loop.time()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from rice_fast.ice import (
    Agent,
    AllocateSocket,
    Candidate,
    CandidatePair,
    Closed,
    ComponentState,
    ComponentStateChange,
    ConsentLost,
    DataReceived,
    GatheredCandidate,
    GatheringComplete,
    RemoveSocket,
    SelectedPair,
    TcpType,
    TurnConfig,
)
from rice_fast.io._address import bound_address
from rice_fast.stun.transport import Address, Transmit, TransportType, WaitUntil

__all__ = ["IceConnection", "IceConnectionError", "LocalCredentials"]

_log = logging.getLogger(__name__)

# Datagrams read from one socket per readable callback, so that one busy
# socket cannot starve the others on the loop.
_READS_PER_WAKEUP = 64
_RECEIVE_QUEUE = 1024


class IceConnectionError(Exception):
    """ICE did not connect, or the connection failed or closed."""


@dataclass(frozen=True, slots=True)
class LocalCredentials:
    """The ICE credentials and candidates to signal to the peer."""

    ufrag: str
    pwd: str
    candidates: tuple[Candidate, ...]


class _TcpConnection(asyncio.Protocol):
    def __init__(self, runner: IceConnection, listener: Address | None) -> None:
        self._runner = runner
        self._listener = listener
        self.transport: asyncio.Transport | None = None
        self.local: Address = ("", 0)
        self.remote: Address = ("", 0)
        self.writable = asyncio.Event()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sockname = transport.get_extra_info("sockname")
        peername = transport.get_extra_info("peername")
        self.local = self._listener or (sockname[0], sockname[1])
        self.remote = (peername[0], peername[1])
        self._runner._connections[(self.local, self.remote)] = self

    def data_received(self, data: bytes) -> None:
        runner = self._runner
        now = runner._now()
        runner._agent.handle_data(TransportType.TCP, self.local, self.remote, data, now)
        runner._service(now)

    def connection_lost(self, exc: Exception | None) -> None:
        runner = self._runner
        runner._connections.pop((self.local, self.remote), None)
        if runner._closed:
            return
        now = runner._now()
        runner._agent.connection_closed(TransportType.TCP, self.local, self.remote, now)
        runner._service(now)


class IceConnection:
    """One ICE agent with one stream, driven over asyncio sockets.

    Call order: ``await IceConnection.create(...)``, ``await gather()``,
    signal ``local_credentials()`` to the peer and apply the peer's with
    ``set_remote(...)`` (or trickle with ``add_remote_candidate``), ``await
    connected()``, then ``send`` and ``await recv``, and finally ``await
    close()``, which deletes TURN allocations and closes every socket.
    """

    def __init__(self, agent: Agent, loop: asyncio.AbstractEventLoop) -> None:
        self._agent = agent
        self._loop = loop
        self._stream = agent.add_stream()
        self._udp: dict[Address, socket.socket] = {}
        self._servers: list[asyncio.Server] = []
        self._connections: dict[tuple[Address, Address], _TcpConnection] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._queues: dict[int, asyncio.Queue[bytes]] = {}
        self._states: dict[int, ComponentState] = {}
        self._selected: dict[int, CandidatePair] = {}
        self._gathered: list[Candidate] = []
        self._gathering_done: set[int] = set()
        self._changed = asyncio.Event()
        self._closed = False
        self._close_done = asyncio.Event()
        self.dropped_data = 0
        self.on_candidate: Callable[[Candidate], None] | None = None
        self.started = loop.time()

    @classmethod
    async def create(
        cls,
        *,
        controlling: bool,
        addresses: Sequence[str] = ("127.0.0.1",),
        components: int = 1,
        udp: bool = True,
        tcp: bool = False,
        stun_servers: Iterable[Address] = (),
        turn_servers: Iterable[TurnConfig] = (),
        port_range: tuple[int, int] | None = None,
        trickle: bool = False,
        **agent_options: object,
    ) -> IceConnection:
        """Create the agent and bind its sockets on ``addresses``.

        ``port_range`` is an inclusive range of local ports to bind, or any
        free port by default. ``tcp`` adds passive and active TCP host
        candidates (RFC 6544). Other keyword arguments go to ``Agent``.
        Raises ``OSError`` when a socket cannot be bound.
        """
        if not udp and not tcp:
            raise ValueError("enable at least one of udp and tcp")
        agent = Agent(
            controlling,
            trickle=trickle,
            stun_servers=stun_servers,
            turn_servers=turn_servers,
            **agent_options,  # type: ignore[arg-type]
        )
        runner = cls(agent, asyncio.get_running_loop())
        try:
            for _ in range(components):
                runner._stream.add_component()
            for component in runner._stream.components:
                runner._queues[component.id] = asyncio.Queue(_RECEIVE_QUEUE)
                runner._states[component.id] = ComponentState.NEW
                for host in addresses:
                    if udp:
                        runner._open_udp(component.id, host, port_range)
                    if tcp:
                        await runner._open_tcp_listener(component.id, host, port_range)
                        component.add_local_socket(
                            TransportType.TCP, (host, 9), TcpType.ACTIVE
                        )
        except BaseException:
            runner._close_sockets()
            raise
        return runner

    @property
    def agent(self) -> Agent:
        """The sans-IO agent this runner drives."""
        return self._agent

    def _now(self) -> float:
        return self._loop.time()

    # Sockets.

    def _bind(
        self, sock: socket.socket, host: str, port_range: tuple[int, int] | None
    ) -> None:
        if port_range is None:
            sock.bind((host, 0))
            return
        low, high = port_range
        for port in range(low, high + 1):
            try:
                sock.bind((host, port))
                return
            except OSError:
                continue
        raise OSError(f"no free port in {low}..{high} on {host}")

    def _open_udp(
        self, component_id: int, host: str, port_range: tuple[int, int] | None
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            self._bind(sock, host, port_range)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        local = bound_address(sock)
        self._udp[local] = sock
        self._stream.component(component_id).add_local_socket(TransportType.UDP, local)
        self._loop.add_reader(sock.fileno(), self._on_readable, sock, local)

    async def _open_tcp_listener(
        self, component_id: int, host: str, port_range: tuple[int, int] | None
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._bind(sock, host, port_range)
            sock.listen(16)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        local = bound_address(sock)
        server = await self._loop.create_server(
            lambda: _TcpConnection(self, local), sock=sock
        )
        self._servers.append(server)
        self._stream.component(component_id).add_local_socket(
            TransportType.TCP, local, TcpType.PASSIVE
        )

    def _on_readable(self, sock: socket.socket, local: Address) -> None:
        agent = self._agent
        now = self._now()
        for _ in range(_READS_PER_WAKEUP):
            try:
                data, remote = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                # ICMP errors (port unreachable) surface here on Linux.
                _log.debug("recvfrom on %s failed: %s", local, exc)
                continue
            received = agent.handle_data(
                TransportType.UDP, local, (remote[0], remote[1]), data, now
            )
            if received is not None:
                self._deliver(received)
        self._service(now)

    async def _open_connection(self, event: AllocateSocket) -> None:
        host = event.source[0]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        local: Address | None = None
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.bind((host, 0))
            sock.setblocking(False)
            await asyncio.wait_for(self._loop.sock_connect(sock, event.destination), 10)
            _, protocol = await self._loop.create_connection(
                lambda: _TcpConnection(self, None), sock=sock
            )
            local = protocol.local
        except (OSError, TimeoutError) as exc:
            _log.debug("TCP connection to %s failed: %s", event.destination, exc)
            sock.close()
        if self._closed:
            return
        now = self._now()
        self._agent.socket_allocated(
            event.stream_id,
            event.component_id,
            event.transport,
            event.source,
            event.destination,
            local,
            now,
        )
        self._service(now)

    # The poll loop.

    def _service(self, now: float) -> None:
        agent = self._agent
        deadline: float | None = None
        while True:
            result = agent.poll(now)
            if result is None:
                break
            if isinstance(result, WaitUntil):
                deadline = result.deadline
                break
            self._handle_event(result)
        while (transmit := agent.poll_transmit(now)) is not None:
            self._send(transmit)
        self._arm(deadline)

    def _arm(self, deadline: float | None) -> None:
        if deadline == self._deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._deadline = None
        self._service(self._now())

    def _send(self, transmit: Transmit) -> None:
        if transmit.transport == TransportType.UDP:
            sock = self._udp.get(transmit.source)
            if sock is None:
                _log.debug("no UDP socket at %s for a transmit", transmit.source)
                return
            try:
                sock.sendto(transmit.data, transmit.destination)
            except (BlockingIOError, InterruptedError):
                _log.debug("UDP send buffer full; dropped a datagram")
            except OSError as exc:
                _log.debug("sendto %s failed: %s", transmit.destination, exc)
            return
        connection = self._connections.get((transmit.source, transmit.destination))
        if connection is None or connection.transport is None:
            _log.debug(
                "no TCP connection %s -> %s", transmit.source, transmit.destination
            )
            return
        connection.transport.write(transmit.data)

    def _handle_event(self, event: object) -> None:
        if isinstance(event, DataReceived):
            self._deliver(event)
        elif isinstance(event, GatheredCandidate):
            self._gathered.append(event.candidate)
            if self.on_candidate is not None:
                self.on_candidate(event.candidate)
        elif isinstance(event, GatheringComplete):
            self._gathering_done.add(event.component_id)
            self._changed.set()
        elif isinstance(event, ComponentStateChange):
            self._states[event.component_id] = event.state
            self._changed.set()
        elif isinstance(event, SelectedPair):
            self._selected[event.component_id] = event.pair
            self._changed.set()
        elif isinstance(event, AllocateSocket):
            task = self._loop.create_task(self._open_connection(event))
            task.add_done_callback(_log_failure)
        elif isinstance(event, RemoveSocket):
            connection = self._connections.get((event.source, event.destination))
            if connection is not None and connection.transport is not None:
                connection.transport.close()
        elif isinstance(event, ConsentLost):
            _log.info("consent lost on component %d", event.component_id)
            self._changed.set()
        elif isinstance(event, Closed):
            self._close_done.set()

    def _deliver(self, event: DataReceived) -> None:
        queue = self._queues.get(event.component_id)
        if queue is None:
            return
        try:
            queue.put_nowait(event.data)
        except asyncio.QueueFull:
            # The application is not reading: drop, as a UDP socket would,
            # and count it in dropped_data.
            self.dropped_data += 1

    # Public API.

    async def gather(self, timeout: float = 10.0) -> LocalCredentials:
        """Gather candidates until every component is done; return them."""
        self._stream.gather_candidates(self._now())
        self._service(self._now())
        components = {component.id for component in self._stream.components}
        async with asyncio.timeout(timeout):
            while not components <= self._gathering_done:
                self._changed.clear()
                await self._changed.wait()
        return self.local_credentials()

    def start_gathering(self) -> None:
        """Start gathering without waiting; candidates go to ``on_candidate``."""
        self._stream.gather_candidates(self._now())
        self._service(self._now())

    def local_credentials(self) -> LocalCredentials:
        """Return the local ufrag, password and the candidates gathered so far."""
        credentials = self._stream.local_credentials
        return LocalCredentials(
            credentials.ufrag, credentials.pwd, tuple(self._gathered)
        )

    def set_remote(
        self, ufrag: str, pwd: str, candidates: Iterable[Candidate] = ()
    ) -> None:
        """Apply the peer's credentials and candidates."""
        self._stream.set_remote_credentials(ufrag, pwd)
        for candidate in candidates:
            self._stream.add_remote_candidate(candidate)
        self._service(self._now())

    def add_remote_candidate(self, candidate: Candidate) -> None:
        """Add a candidate the peer trickled."""
        self._stream.add_remote_candidate(candidate)
        self._service(self._now())

    def end_of_remote_candidates(self) -> None:
        """Tell the agent the peer sends no more candidates."""
        self._stream.end_of_remote_candidates()
        self._service(self._now())

    async def connected(self, timeout: float = 30.0) -> dict[int, CandidatePair]:
        """Wait until every component has a selected pair and is connected.

        Raises ``IceConnectionError`` when a component fails, and
        ``TimeoutError`` after ``timeout`` seconds.
        """
        components = {component.id for component in self._stream.components}
        async with asyncio.timeout(timeout):
            while True:
                failed = [
                    c
                    for c in components
                    if self._states.get(c) is ComponentState.FAILED
                ]
                if failed:
                    raise IceConnectionError(
                        f"ICE failed for component(s) {sorted(failed)}: no candidate "
                        "pair passed its connectivity checks"
                    )
                if components <= set(self._selected) and all(
                    self._states.get(c) is ComponentState.CONNECTED for c in components
                ):
                    return dict(self._selected)
                self._changed.clear()
                await self._changed.wait()

    def selected_pair(self, component: int = 1) -> CandidatePair | None:
        """Return the pair that ``send`` uses for ``component``, or None."""
        return self._selected.get(component)

    def send(self, data: bytes, component: int = 1) -> None:
        """Send application data on the selected pair of ``component``.

        Raises ``NotConnectedError`` (from ``rice_fast.ice``) when no pair is
        selected.
        """
        now = self._now()
        transmit = self._stream.component(component).send(data, now)
        self._send(transmit)
        self._service(now)

    async def drain(self) -> None:
        """Wait until every TCP connection's write buffer is below its limit.

        UDP sends never block. Over TCP, call this between sends of bulk
        data so that the kernel and asyncio buffers do not grow without
        bound when the peer reads slowly.
        """
        for connection in list(self._connections.values()):
            await connection.writable.wait()

    async def recv(self, component: int = 1) -> bytes:
        """Return the next application data received on ``component``."""
        return await self._queues[component].get()

    async def close(self, timeout: float = 5.0) -> None:
        """Close the agent (deleting TURN allocations), then every socket."""
        if self._closed:
            return
        now = self._now()
        self._agent.close(now)
        self._service(now)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._close_done.wait()
        self._closed = True
        self._close_sockets()

    def _close_sockets(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for sock in self._udp.values():
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._udp.clear()
        for server in self._servers:
            server.close()
        for connection in list(self._connections.values()):
            if connection.transport is not None:
                connection.transport.close()

    async def __aenter__(self) -> IceConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("ICE socket task failed", exc_info=task.exception())
