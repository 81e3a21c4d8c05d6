"""A seeded discrete-event network simulator for ICE agent tests.

The simulator has a virtual clock, one seeded ``random.Random`` for every
random choice (loss, duplication, jitter, NAT ports, TCP segmenting), and
a step cap that turns a livelock into a test failure.

Topology: the public internet and any number of private networks, each
behind one NAT. A node (an ICE agent, a STUN server, a TURN server) has
IP addresses in one network. A packet to an address in the sender's own
network is delivered directly; a packet leaving a private network gets its
source rewritten by the NAT, and a packet to a NAT's public address is
translated back if a mapping exists and the NAT's filtering lets it in.
NATs map endpoint-independently ("eim") or per destination address and
port ("apdm"), and filter endpoint-independently ("eif"), per address
("adf") or per address and port ("apdf"), as RFC 4787 names them.

Links apply loss, duplication, reordering and delay to UDP. TCP is
reliable and ordered but each send is cut into random segments, so the
RFC 4571 and TURN deframers see partial and merged frames.

``SimAgent`` drives an ``Agent`` (opening TCP connections on
``AllocateSocket``, recording events and data) and can signal
credentials and candidates to a peer, trickled or all at once.
``connect`` runs two agents until both components are connected.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import random
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

from rice_fast.ice import (
    Agent,
    AllocateSocket,
    Candidate,
    ComponentState,
    ComponentStateChange,
    DataReceived,
    Demultiplexer,
    GatheredCandidate,
    GatheringComplete,
    IceEvent,
    RemoveSocket,
    SelectedPair,
    Stream,
    TcpType,
)
from rice_fast.stun import StunServer, Transmit, TransportType, WaitUntil
from rice_fast.turn import StreamDeframer, TurnServer, TurnServerConfig
from rice_fast.turn.server_events import AllocateRelaySocket, RelaySocketReleased

Address = tuple[str, int]

__all__ = [
    "Link",
    "Nat",
    "Network",
    "SimAgent",
    "SimDemux",
    "SimStunServer",
    "SimTurnServer",
    "StepLimitExceeded",
    "connect",
]


class StepLimitExceeded(AssertionError):
    """The simulation ran more steps than its cap: a livelock or runaway test."""


@dataclass(slots=True)
class Link:
    """UDP impairments: loss, duplication and reordering probabilities, delay.

    ``delay`` is the one-way delay in seconds, plus up to ``jitter``. A
    reordered packet gets ``reorder_delay`` more, so later packets pass it.
    """

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.01
    jitter: float = 0.0
    reorder_delay: float = 0.03


@dataclass(slots=True)
class Nat:
    """A NAT in front of one private network (RFC 4787 behaviours)."""

    public_ip: str
    mapping: str = "eim"
    filtering: str = "apdf"
    outbound_allow: frozenset[str] | None = None
    _next_port: itertools.count[int] = field(
        default_factory=lambda: itertools.count(40000)
    )
    _out: dict[tuple[str, Address, Address | None], int] = field(default_factory=dict)
    _in: dict[tuple[str, int], tuple[Address, set[Address]]] = field(
        default_factory=dict
    )

    def outbound(
        self, transport: str, source: Address, destination: Address
    ) -> Address | None:
        """Return the public source for a packet leaving the network."""
        if (
            self.outbound_allow is not None
            and destination[0] not in self.outbound_allow
        ):
            return None
        key = (transport, source, destination if self.mapping == "apdm" else None)
        port = self._out.get(key)
        if port is None:
            port = next(self._next_port)
            self._out[key] = port
            self._in[(transport, port)] = (source, set())
        self._in[(transport, port)][1].add(destination)
        return (self.public_ip, port)

    def inbound(self, transport: str, source: Address, port: int) -> Address | None:
        """Return the private destination of a packet to ``port``, or None."""
        entry = self._in.get((transport, port))
        if entry is None:
            return None
        private, contacted = entry
        if self.filtering == "adf" and not any(c[0] == source[0] for c in contacted):
            return None
        if self.filtering == "apdf" and source not in contacted:
            return None
        return private


class Node:
    """Something with addresses that takes packets and has timers."""

    network: Network

    def service(self, now: float) -> float:
        """Poll the node's state machines, send what they queued; return a deadline."""
        raise NotImplementedError

    def receive(
        self,
        transport: TransportType,
        local: Address,
        remote: Address,
        data: bytes,
        now: float,
    ) -> None:
        """Take one datagram or TCP segment."""
        raise NotImplementedError

    def tcp_closed(self, local: Address, remote: Address, now: float) -> None:
        """Learn that a TCP connection closed."""


@dataclass(slots=True)
class _Connection:
    """One direction-agnostic TCP connection between two node sockets."""

    a: Address
    a_remote: Address
    b: Address
    node_a: Node
    node_b: Node
    b_listen: Address
    time_a: float = 0.0
    time_b: float = 0.0
    open: bool = True


class Network:
    """The simulated networks, clock and event queue (see the module docstring)."""

    def __init__(self, seed: int = 1, *, max_steps: int = 200_000) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.steps = 0
        self.max_steps = max_steps
        self.default_link = Link()
        self.links: dict[frozenset[str], Link] = {}
        self.nats: dict[str, Nat] = {}
        self._nat_by_ip: dict[str, Nat] = {}
        self.realm_of: dict[str, str] = {}
        self.nodes: list[Node] = []
        self._udp: dict[Address, Node] = {}
        self._listeners: dict[Address, Node] = {}
        self._connections: dict[tuple[Address, Address], _Connection] = {}
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._ports = itertools.count(50000)
        self.delivered: list[tuple[TransportType, Address, Address]] = []
        self.sent: list[tuple[float, Transmit]] = []
        self.dropped = 0

    # Topology.

    def add_nat(self, realm: str, nat: Nat) -> Nat:
        """Put the private network ``realm`` behind ``nat``."""
        self.nats[realm] = nat
        self._nat_by_ip[nat.public_ip] = nat
        self.realm_of[nat.public_ip] = "public"
        return nat

    def add_node(self, node: Node, ips: Iterable[str], realm: str = "public") -> None:
        """Attach a node with its IP addresses to a network."""
        node.network = self
        for ip in ips:
            self.realm_of[str(ipaddress.ip_address(ip))] = realm
        self.nodes.append(node)

    def add_silent_host(self, ip: str, realm: str = "public") -> None:
        """Make ``ip`` routable with nothing behind it: packets vanish."""
        self.realm_of[ip] = realm

    def bind_udp(self, node: Node, address: Address) -> Address:
        """Bind a UDP socket; port 0 picks a free one."""
        if address[1] == 0:
            address = (address[0], next(self._ports))
        if address in self._udp:
            raise ValueError(f"UDP {address} is taken")
        self._udp[address] = node
        return address

    def unbind_udp(self, address: Address) -> None:
        """Close a UDP socket."""
        self._udp.pop(address, None)

    def listen_tcp(self, node: Node, address: Address) -> None:
        """Open a TCP listening socket."""
        self._listeners[address] = node

    def link(self, a: str, b: str) -> Link:
        """Return the link between two IPs, creating a copy of the default."""
        key = frozenset((a, b))
        link = self.links.get(key)
        if link is None:
            link = self.links[key] = Link(
                **{
                    name: getattr(self.default_link, name)
                    for name in (
                        "loss",
                        "duplicate",
                        "reorder",
                        "delay",
                        "jitter",
                        "reorder_delay",
                    )
                }
            )
        return link

    # Scheduling.

    def at(self, time: float, action: Callable[[], None]) -> None:
        """Run ``action`` at virtual ``time``."""
        heapq.heappush(self._queue, (time, next(self._seq), action))

    def run(
        self,
        until: float,
        *,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        """Advance the clock to ``until`` or until ``stop()`` is true.

        Raises ``StepLimitExceeded`` past ``max_steps`` steps.
        """
        while True:
            self.steps += 1
            if self.steps > self.max_steps:
                raise StepLimitExceeded(
                    f"simulation exceeded {self.max_steps} steps at t={self.now:.3f}"
                )
            deadline = float("inf")
            for node in list(self.nodes):
                deadline = min(deadline, node.service(self.now))
            if stop is not None and stop():
                return
            if self._queue:
                deadline = min(deadline, self._queue[0][0])
            if deadline > until:
                self.now = max(self.now, until)
                return
            self.now = max(self.now, deadline)
            while self._queue and self._queue[0][0] <= self.now:
                _, _, action = heapq.heappop(self._queue)
                action()

    # UDP.

    def send(self, transmit: Transmit) -> None:
        """Route one transmit from a node into the network; ``sent`` keeps it."""
        self.sent.append((self.now, transmit))
        if transmit.transport is TransportType.UDP:
            self._send_udp(transmit.source, transmit.destination, transmit.data)
        else:
            self.send_tcp(transmit.source, transmit.destination, transmit.data)

    def _translate(
        self, transport: str, source: Address, destination: Address
    ) -> tuple[Address, Address] | None:
        """Apply NATs on the way from ``source`` to ``destination``, or drop."""
        src_realm = self.realm_of.get(source[0])
        dst_realm = self.realm_of.get(destination[0])
        if src_realm is None or dst_realm is None:
            return None
        if src_realm == dst_realm and dst_realm != "public":
            return source, destination
        if dst_realm != "public":
            return None
        if src_realm != "public":
            mapped = self.nats[src_realm].outbound(transport, source, destination)
            if mapped is None:
                return None
            source = mapped
        nat = self._nat_by_ip.get(destination[0])
        if nat is not None:
            private = nat.inbound(transport, source, destination[1])
            if private is None:
                return None
            destination = private
        return source, destination

    def _send_udp(self, source: Address, destination: Address, data: bytes) -> None:
        translated = self._translate("udp", source, destination)
        if translated is None:
            self.dropped += 1
            return
        src, dst = translated
        link = self.link(source[0], destination[0])
        rng = self.rng
        if rng.random() < link.loss:
            self.dropped += 1
            return
        copies = 2 if rng.random() < link.duplicate else 1
        for _ in range(copies):
            delay = link.delay + rng.random() * link.jitter
            if rng.random() < link.reorder:
                delay += link.reorder_delay
            self.at(self.now + delay, partial(self._deliver_udp, src, dst, data))

    def _deliver_udp(self, source: Address, destination: Address, data: bytes) -> None:
        node = self._udp.get(destination)
        if node is None:
            self.dropped += 1
            return
        self.delivered.append((TransportType.UDP, source, destination))
        node.receive(TransportType.UDP, destination, source, data, self.now)

    # TCP.

    def connect_tcp(
        self,
        node: Node,
        source_ip: str,
        destination: Address,
        done: Callable[[Address | None], None],
    ) -> None:
        """Open a connection; ``done`` gets the local address, or None."""
        local = (source_ip, next(self._ports))
        translated = self._translate("tcp", local, destination)
        link = self.link(source_ip, destination[0])
        if translated is None:
            self.at(self.now + 2 * link.delay, lambda: done(None))
            return
        public_source, private_destination = translated
        listener = self._listeners.get(private_destination)
        if listener is None:
            self.at(self.now + 2 * link.delay, lambda: done(None))
            return
        connection = _Connection(
            local, destination, public_source, node, listener, private_destination
        )
        self._connections[(local, destination)] = connection
        self._connections[(private_destination, public_source)] = connection
        connection.time_a = connection.time_b = self.now + 2 * link.delay
        self.at(connection.time_a, lambda: done(local))

    def _deliver_tcp(
        self, node: Node, local: Address, remote: Address, data: bytes
    ) -> None:
        node.receive(TransportType.TCP, local, remote, data, self.now)

    def close_tcp(self, local: Address, remote: Address) -> None:
        """Close a connection from one end and notify the other end."""
        connection = self._connections.get((local, remote))
        if connection is None or not connection.open:
            return
        connection.open = False
        if connection.a == local:
            other, other_local, other_remote = (
                connection.node_b,
                connection.b_listen,
                connection.b,
            )
        else:
            other, other_local, other_remote = (
                connection.node_a,
                connection.a,
                connection.a_remote,
            )
        self.at(
            self.now + 0.01,
            lambda: other.tcp_closed(other_local, other_remote, self.now),
        )

    def send_tcp(self, source: Address, destination: Address, data: bytes) -> None:
        """Send bytes on a connection, cut into random segments, in order."""
        connection = self._connections.get((source, destination))
        if connection is None or not connection.open:
            self.dropped += 1
            return
        link = self.link(source[0], destination[0])
        if source == connection.a:
            node, local, remote = connection.node_b, connection.b_listen, connection.b
            start = max(connection.time_b, self.now + link.delay)
        else:
            node, local, remote = connection.node_a, connection.a, connection.a_remote
            start = max(connection.time_a, self.now + link.delay)
        offset = 0
        time = start
        while offset < len(data):
            size = self.rng.randint(1, max(1, len(data)))
            chunk = data[offset : offset + size]
            offset += size
            self.at(time, partial(self._deliver_tcp, node, local, remote, chunk))
            time += 0.0001
        if source == connection.a:
            connection.time_b = time
        else:
            connection.time_a = time


# Nodes.


class SimStunServer(Node):
    """A ``StunServer`` that responds to Binding requests on one UDP address."""

    def __init__(self, network: Network, address: Address) -> None:
        self.server = StunServer()
        network.add_node(self, [address[0]])
        self.address = network.bind_udp(self, address)

    def service(self, now: float) -> float:
        while (transmit := self.server.poll_transmit(now)) is not None:
            self.network.send(transmit)
        return float("inf")

    def receive(
        self,
        transport: TransportType,
        local: Address,
        remote: Address,
        data: bytes,
        now: float,
    ) -> None:
        self.server.handle_data(transport, local, remote, data, now)


class _TlsSession:
    """The server end of one TLS connection, run through memory BIOs."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)

    def receive(self, data: bytes) -> bytes:
        self.incoming.write(data)
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            return b""
        chunks = []
        while True:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


class SimTurnServer(Node):
    """A ``TurnServer`` on one IP: UDP and TCP on ``address``, TLS on port 5349.

    TLS is terminated here with ``tls_context`` (a server context), so the
    TurnServer sees deframed TURN messages as it would behind a TLS proxy.
    """

    def __init__(
        self,
        network: Network,
        address: Address,
        users: dict[str, str],
        *,
        realm: str = "sim.test",
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.server = TurnServer(TurnServerConfig(realm=realm, users=users))
        network.add_node(self, [address[0]])
        self.address = network.bind_udp(self, address)
        network.listen_tcp(self, address)
        self.tls_address = (address[0], 5349)
        self._tls_context = tls_context
        self._tls: dict[tuple[Address, Address], _TlsSession] = {}
        if tls_context is not None:
            network.listen_tcp(self, self.tls_address)
        self._relays: set[Address] = set()
        self._deframers: dict[tuple[Address, Address], StreamDeframer] = {}

    def service(self, now: float) -> float:
        server = self.server
        deadline = float("inf")
        while True:
            result = server.poll(now)
            if isinstance(result, AllocateRelaySocket):
                relayed = self.network.bind_udp(self, (self.address[0], 0))
                self._relays.add(relayed)
                server.allocate_relay_socket_result(result.request_id, relayed, now)
                continue
            if isinstance(result, RelaySocketReleased):
                self._relays.discard(result.relayed)
                self.network.unbind_udp(result.relayed)
                continue
            if isinstance(result, WaitUntil):
                deadline = result.deadline
                break
            if result is None:
                break
        while (transmit := server.poll_transmit(now)) is not None:
            session = self._tls.get((transmit.source, transmit.destination))
            if session is not None:
                session.tls.write(transmit.data)
                self.network.send_tcp(
                    transmit.source, transmit.destination, session.outgoing.read()
                )
            else:
                self.network.send(transmit)
        return deadline

    def receive(
        self,
        transport: TransportType,
        local: Address,
        remote: Address,
        data: bytes,
        now: float,
    ) -> None:
        if transport is TransportType.UDP and local in self._relays:
            self.server.handle_peer_data(local, remote, data, now)
            return
        if transport is TransportType.UDP:
            self.server.handle_client_data(transport, local, remote, data, now)
            return
        kind = TransportType.TCP
        if local == self.tls_address and self._tls_context is not None:
            kind = TransportType.TLS
            session = self._tls.get((local, remote))
            if session is None:
                session = self._tls[(local, remote)] = _TlsSession(self._tls_context)
            data = session.receive(data)
            handshake = session.outgoing.read()
            if handshake:
                self.network.send_tcp(local, remote, handshake)
        deframer = self._deframers.setdefault((local, remote), StreamDeframer())
        for _, frame in deframer.frames_from(data):
            self.server.handle_client_data(kind, local, remote, frame, now)

    def tcp_closed(self, local: Address, remote: Address, now: float) -> None:
        kind = TransportType.TLS if local == self.tls_address else TransportType.TCP
        self.server.handle_client_closed(kind, local, remote, now)


class SimAgent(Node):
    """An ``Agent`` in the network, with one stream, and its recorded history.

    ``events`` keeps every event with its time, ``received`` every piece
    of application data. With ``peer`` and ``signalling`` set, local
    credentials and candidates reach the peer after ``signal_delay``:
    "trickle" forwards each candidate as it is gathered and then
    end-of-candidates, "batch" sends them all once gathering completes.
    """

    def __init__(
        self,
        network: Network,
        name: str,
        agent: Agent,
        ips: Iterable[str],
        *,
        realm: str = "public",
        components: int = 1,
    ) -> None:
        self.name = name
        self.agent = agent
        ips = list(ips)
        network.add_node(self, ips, realm)
        self.stream: Stream = agent.add_stream()
        for _ in range(components):
            self.stream.add_component()
        self.events: list[tuple[float, IceEvent]] = []
        self.received: list[tuple[float, int, bytes]] = []
        self.peer: SimAgent | None = None
        self.signalling = "trickle"
        self.signal_delay = 0.05
        self.deadline = float("-inf")
        self.allocate_requests: list[AllocateSocket] = []
        self.removed_sockets: list[RemoveSocket] = []
        self.closed_connections: list[tuple[Address, Address]] = []
        self._pending_candidates: list[Candidate] = []
        self.candidate_delays: dict[Address, float] = {}
        self.udp_addresses: list[Address] = []
        self.end_delay = 0.0
        self.paused = False

    # Sockets.

    def add_udp(self, ip: str, port: int = 0, component: int = 1) -> Address:
        """Bind a UDP socket and give it to a component."""
        address = self.network.bind_udp(self, (ip, port))
        self.stream.component(component).add_local_socket(TransportType.UDP, address)
        self.udp_addresses.append(address)
        return address

    def add_tcp(
        self, ip: str, tcp_type: TcpType, port: int = 0, component: int = 1
    ) -> Address:
        """Give a component a TCP candidate (listening unless active)."""
        if tcp_type is TcpType.ACTIVE:
            address = (ip, 9)
        else:
            address = (ip, port or next(self.network._ports))
            self.network.listen_tcp(self, address)
        self.stream.component(component).add_local_socket(
            TransportType.TCP, address, tcp_type
        )
        return address

    # Driving the agent.

    def service(self, now: float) -> float:
        if self.paused:
            return float("inf")
        agent = self.agent
        deadline = float("inf")
        while True:
            result = agent.poll(now)
            if isinstance(result, IceEvent):
                self._on_event(result, now)
                continue
            if isinstance(result, WaitUntil):
                deadline = result.deadline
            break
        while (transmit := agent.poll_transmit(now)) is not None:
            self.network.send(transmit)
        self.deadline = max(deadline, now) if deadline != float("inf") else deadline
        return self.deadline

    def receive(
        self,
        transport: TransportType,
        local: Address,
        remote: Address,
        data: bytes,
        now: float,
    ) -> None:
        if self.paused:
            return
        received = self.agent.handle_data(transport, local, remote, data, now)
        if received is not None:
            self.received.append((now, received.component_id, received.data))

    def tcp_closed(self, local: Address, remote: Address, now: float) -> None:
        self.closed_connections.append((local, remote))
        self.agent.connection_closed(TransportType.TCP, local, remote, now)

    def send(self, data: bytes, component: int = 1) -> None:
        """Send application data on a component's selected pair."""
        transmit = self.stream.component(component).send(data, self.network.now)
        self.network.send(transmit)

    def _connected(self, event: AllocateSocket, local: Address | None) -> None:
        self.agent.socket_allocated(
            event.stream_id,
            event.component_id,
            event.transport,
            event.source,
            event.destination,
            local,
            self.network.now,
        )

    def _on_event(self, event: IceEvent, now: float) -> None:
        self.events.append((now, event))
        if isinstance(event, DataReceived):
            self.received.append((now, event.component_id, event.data))
        elif isinstance(event, AllocateSocket):
            self.allocate_requests.append(event)
            self.network.connect_tcp(
                self,
                event.source[0],
                event.destination,
                partial(self._connected, event),
            )
        elif isinstance(event, RemoveSocket):
            self.removed_sockets.append(event)
            self.network.close_tcp(event.source, event.destination)
        elif isinstance(event, GatheredCandidate):
            self._signal_candidate(event.candidate)
        elif isinstance(event, GatheringComplete) and all(
            c.gathering_complete for c in self.stream.components
        ):
            self._signal_end()

    # Signalling.

    def signal_credentials(self) -> None:
        """Send the current local credentials to the peer (after the delay)."""
        peer = self.peer
        if peer is None:
            return
        credentials = self.stream.local_credentials
        network = self.network
        network.at(
            network.now + self.signal_delay,
            lambda: peer.stream.set_remote_credentials(
                credentials.ufrag, credentials.pwd
            ),
        )

    def _signal_candidate(self, candidate: Candidate) -> None:
        peer = self.peer
        if peer is None:
            return
        if self.signalling == "trickle":
            network = self.network
            generation = self.stream.local_credentials
            extra = self.candidate_delays.get(candidate.address, 0.0)
            network.at(
                network.now + self.signal_delay + extra,
                lambda: self._deliver_candidate(peer, candidate, generation.ufrag),
            )
        elif self.signalling == "batch":
            self._pending_candidates.append(candidate)

    def _deliver_candidate(
        self, peer: SimAgent, candidate: Candidate, ufrag: str
    ) -> None:
        remote = peer.stream.remote_credentials
        if remote is None or remote.ufrag != ufrag:
            # Stale candidate of an earlier ICE generation.
            return
        peer.stream.add_remote_candidate(candidate)

    def _signal_end(self) -> None:
        peer = self.peer
        if peer is None:
            return
        network = self.network
        credentials = self.stream.local_credentials
        if self.signalling == "trickle":
            network.at(
                network.now + self.signal_delay + self.end_delay,
                lambda: self._deliver_end(peer, credentials.ufrag),
            )
        elif self.signalling == "batch":
            candidates, self._pending_candidates = self._pending_candidates, []

            def deliver() -> None:
                peer.stream.set_remote_credentials(credentials.ufrag, credentials.pwd)
                for candidate in candidates:
                    peer.stream.add_remote_candidate(candidate)

            network.at(network.now + self.signal_delay, deliver)

    def _deliver_end(self, peer: SimAgent, ufrag: str) -> None:
        remote = peer.stream.remote_credentials
        if remote is None or remote.ufrag != ufrag:
            return
        if peer.agent.trickle:
            peer.stream.end_of_remote_candidates()

    # Queries.

    def state(self, component: int = 1) -> ComponentState:
        """The component's current state."""
        return self.stream.component(component).state

    def selected(self, component: int = 1) -> SelectedPair | None:
        """The last SelectedPair event of a component, or None."""
        for _, event in reversed(self.events):
            if isinstance(event, SelectedPair) and event.component_id == component:
                return event
        return None

    def states(self, component: int = 1) -> list[ComponentState]:
        """Every state the component went through, in order."""
        return [
            e.state
            for _, e in self.events
            if isinstance(e, ComponentStateChange) and e.component_id == component
        ]

    def connected(self) -> bool:
        """Whether every component is connected."""
        return all(c.state is ComponentState.CONNECTED for c in self.stream.components)

    def finished(self) -> bool:
        """Whether every component is connected or failed."""
        return all(
            c.state in (ComponentState.CONNECTED, ComponentState.FAILED)
            for c in self.stream.components
        )


class SimDemux(Node):
    """Many agents behind one UDP socket, routed by a ``Demultiplexer``."""

    def __init__(self, network: Network, address: Address) -> None:
        self.demux = Demultiplexer()
        network.add_node(self, [address[0]])
        self.address = network.bind_udp(self, address)
        self.events: list[tuple[float, Agent, IceEvent]] = []
        self.received: list[tuple[float, Agent, bytes]] = []

    def service(self, now: float) -> float:
        demux = self.demux
        deadline = float("inf")
        while True:
            result = demux.poll(now)
            if isinstance(result, tuple):
                self.events.append((now, result[0], result[1]))
                continue
            if isinstance(result, WaitUntil):
                deadline = max(result.deadline, now)
            break
        while (transmit := demux.poll_transmit(now)) is not None:
            self.network.send(transmit)
        return deadline

    def receive(
        self,
        transport: TransportType,
        local: Address,
        remote: Address,
        data: bytes,
        now: float,
    ) -> None:
        routed = self.demux.handle_data(transport, local, remote, data, now)
        if routed is not None:
            self.received.append((now, routed[0], routed[1].data))


def pair_up(a: SimAgent, b: SimAgent, *, signalling: str = "trickle") -> None:
    """Make two SimAgents each other's peer and start signalling and gathering."""
    a.peer, b.peer = b, a
    a.signalling = b.signalling = signalling
    now = a.network.now
    if signalling == "trickle":
        a.signal_credentials()
        b.signal_credentials()
    a.stream.gather_candidates(now)
    b.stream.gather_candidates(now)


def connect(
    a: SimAgent,
    b: SimAgent,
    *,
    until: float = 30.0,
    signalling: str = "trickle",
) -> None:
    """Pair two agents and run until both are connected or failed, or ``until``."""
    pair_up(a, b, signalling=signalling)
    a.network.run(until, stop=lambda: a.finished() and b.finished())
