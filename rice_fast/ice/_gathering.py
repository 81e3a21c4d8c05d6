"""Candidate gathering: host, server-reflexive and relayed candidates.

Theory of operation. Each socket a component gets yields a host candidate
at once. For every UDP socket the agent queues one STUN Binding request to
each STUN server of the socket's address family, and one TurnClient per
UDP TURN server; for TURN over TCP or TLS it queues one allocation per
component and server, which starts by asking the caller for a connection
(``AllocateSocket``). Queued requests leave one per Ta, sharing the pacing
of the connectivity checks (RFC 8445 §5.1.1 and §14).

A STUN success yields a server-reflexive candidate, and a TURN allocation
a relayed candidate for each relayed address plus a server-reflexive one
from its XOR-MAPPED-ADDRESS. A candidate with the same address and base as
one already gathered is redundant and dropped (RFC 8445 §5.1.3). A server
that fails or times out ends only its own task: a component's gathering
completes when every task ended, whatever their outcome.

STUN Binding to a server uses ``GATHER_STUN_CONFIG``: seven transmissions
at 0, 0.5, 1.5, 2.5, 3.5, 4.5 and 5.5 s and a timeout at 7.5 s. That is
shorter than the 39.5 s of RFC 8489, so that one dead server does not hold
up the end of gathering for long, and keeps the RFC's seven tries for
lossy links.
"""

from __future__ import annotations

import logging
import math
import ssl
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from rice_fast.ice._checks import canonical
from rice_fast.ice._paths import LocalSocket, RelayEndpoint
from rice_fast.ice.candidate import (
    Candidate,
    CandidateType,
    candidate_priority,
    compute_foundation,
    default_type_preference,
)
from rice_fast.ice.events import AllocateSocket
from rice_fast.stun import Method
from rice_fast.stun.agent import StunAgent, StunConfig
from rice_fast.stun.credentials import LongTermCredentials
from rice_fast.stun.events import (
    StunEvent,
    TransactionSucceeded,
)
from rice_fast.stun.transport import Address, TransportType, WaitUntil
from rice_fast.turn.client import TurnClient
from rice_fast.turn.errors import TurnError
from rice_fast.turn.events import (
    AllocateSocket as TurnAllocateSocket,
)
from rice_fast.turn.events import (
    AllocationCreated,
    AllocationDeleted,
    AllocationFailed,
    PeerData,
    TurnEvent,
)

if TYPE_CHECKING:
    from rice_fast.ice.agent import Agent
    from rice_fast.ice.component import Component

__all__ = ["GATHER_STUN_CONFIG", "Gatherer", "TurnConfig"]

_log = logging.getLogger(__name__)

GATHER_STUN_CONFIG: Final = StunConfig(
    rto=0.5, max_transmissions=7, final_wait_factor=4, max_rto=1.0
)
"""Retransmissions of the Binding requests to STUN servers (7.5 s timeout)."""

# Local preference offsets of relayed candidates by the transport to the
# TURN server: UDP ranks first, then TCP, then TLS (RFC 8445 §5.1.2.1 lets
# the local preference express such a choice).
_RELAY_TRANSPORT_RANK: Final = {
    TransportType.UDP: 0,
    TransportType.TCP: 1,
    TransportType.TLS: 2,
}


@dataclass(frozen=True, slots=True, repr=False)
class TurnConfig:
    """A TURN server to allocate relayed candidates from.

    ``transport`` is how the agent reaches the server: UDP (over the
    component's UDP sockets), TCP or TLS (over a connection the caller
    opens on ``AllocateSocket``). The relayed candidates are UDP either
    way. ``server_hostname`` and ``ssl_context`` are for TLS: the name to
    check the certificate against (default: the server's IP address) and
    the context (default: system CAs with host name checks).
    """

    server: Address
    username: str
    password: str
    transport: TransportType = TransportType.UDP
    server_hostname: str | None = None
    ssl_context: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "server", canonical(self.server))
        if self.transport not in _RELAY_TRANSPORT_RANK:
            raise ValueError(
                f"TURN transport {self.transport!r} is not UDP, TCP or TLS"
            )

    def __repr__(self) -> str:
        return (
            f"TurnConfig(server={self.server!r}, username={self.username!r}, "
            f"password=<hidden>, transport={self.transport.name})"
        )


@dataclass(slots=True, eq=False)
class _StunTask:
    socket: LocalSocket
    server: Address


@dataclass(slots=True, eq=False)
class _TurnTask:
    relay: RelayEndpoint


def _family(host: str) -> int:
    return 6 if ":" in host else 4


class Gatherer:
    """Runs the STUN and TURN gathering tasks of one agent."""

    def __init__(
        self,
        agent: Agent,
        stun_servers: tuple[Address, ...],
        turn_servers: tuple[TurnConfig, ...],
    ) -> None:
        self._agent = agent
        self.stun_servers = stun_servers
        self.turn_servers = turn_servers
        self._queue: deque[_StunTask | _TurnTask] = deque()
        self._stun_tasks: dict[bytes, _StunTask] = {}
        self._stun_agents: list[StunAgent] = []
        self.relays: list[RelayEndpoint] = []
        self._deadlines: dict[int, float] = {}

    # Starting tasks.

    def start_socket(self, socket: LocalSocket) -> None:
        """Queue the STUN and UDP TURN tasks of a new UDP socket."""
        if socket.transport is not TransportType.UDP:
            return
        component = socket.component
        family = _family(socket.address[0])
        for server in self.stun_servers:
            if _family(server[0]) == family:
                component._gathering_pending += 1
                self._queue.append(_StunTask(socket, server))
        for config in self.turn_servers:
            if (
                config.transport is TransportType.UDP
                and _family(config.server[0]) == family
            ):
                relay = RelayEndpoint(config, component, None, socket.address, socket)
                component._gathering_pending += 1
                self.relays.append(relay)
                self._queue.append(_TurnTask(relay))

    def start_component(self, component: Component) -> None:
        """Queue the TCP and TLS TURN tasks of a component.

        Each uses the first host address of the server's family as the
        local side of its connection.
        """
        for config in self.turn_servers:
            if config.transport is TransportType.UDP:
                continue
            family = _family(config.server[0])
            local_ip = None
            for socket in component._sockets:
                if _family(socket.address[0]) == family:
                    local_ip = socket.address[0]
                    break
            if local_ip is None:
                continue
            relay = RelayEndpoint(config, component, None, (local_ip, 0), None)
            component._gathering_pending += 1
            self.relays.append(relay)
            self._queue.append(_TurnTask(relay))

    @property
    def has_queued(self) -> bool:
        """Whether a task waits for its Ta slot."""
        return bool(self._queue)

    def start_next(self, now: float) -> None:
        """Start the first queued task; the caller paces the calls."""
        task = self._queue.popleft()
        agent = self._agent
        if isinstance(task, _StunTask):
            socket = task.socket
            stun = socket.stun
            if stun is None:
                stun = socket.stun = StunAgent(
                    TransportType.UDP, socket.address, config=GATHER_STUN_CONFIG
                )
                self._stun_agents.append(stun)
            transaction_id = stun.send_request(Method.BINDING, task.server, now)
            self._stun_tasks[transaction_id] = task
            agent._stun_transactions[transaction_id] = stun
            self._drain_stun(stun, now)
            return

        relay = task.relay
        config = relay.config
        if config.transport is TransportType.UDP:
            assert relay.local is not None
            self._open_turn(relay, TransportType.UDP, relay.local, now)
            return

        component = relay.component
        assert relay.local is not None
        key = (component.stream_id, component.id, relay.local, config.server)
        agent._pending_sockets[key] = relay
        agent._emit(
            AllocateSocket(
                component.stream_id,
                component.id,
                TransportType.TCP,
                relay.local,
                config.server,
            )
        )

    def socket_result(
        self, relay: RelayEndpoint, local: Address | None, now: float
    ) -> None:
        """Take the caller's result for the AllocateSocket of a TURN task."""
        if local is None:
            _log.debug("no connection to TURN server %s", relay.config.server)
            self._task_done(relay.component)
            relay.pending = False
            relay.closed = True
            return
        self._open_turn(relay, relay.config.transport, canonical(local), now)

    def _open_turn(
        self, relay: RelayEndpoint, transport: TransportType, local: Address, now: float
    ) -> None:
        agent = self._agent
        config = relay.config
        credentials = LongTermCredentials(config.username, config.password, "")
        try:
            turn = TurnClient(
                transport,
                local,
                config.server,
                credentials,
                ssl_context=config.ssl_context,
                server_hostname=config.server_hostname,
            )
        except (TurnError, ValueError) as exc:
            _log.debug("cannot start TURN client for %s: %s", config.server, exc)
            relay.pending = False
            relay.closed = True
            self._task_done(relay.component)
            return
        relay.turn = turn
        relay.local = local
        agent._turn_routes[(local, config.server)] = relay
        self.poll_relay(relay, now)

    # Results.

    def handle_stun(
        self, stun: StunAgent, data: bytes, remote: Address, now: float
    ) -> None:
        """Feed a response from a STUN server to the socket's StunAgent."""
        stun.handle_data(data, remote, now)
        self._drain_stun(stun, now)

    def poll_all(self, now: float) -> float:
        """Advance every StunAgent and TurnClient; return the next deadline."""
        deadline = math.inf
        for stun in self._stun_agents:
            deadline = min(deadline, self._drain_stun(stun, now))
        for relay in self.relays:
            if relay.turn is not None and not relay.closed:
                deadline = min(deadline, self.poll_relay(relay, now))
        return deadline

    def _drain_stun(self, stun: StunAgent, now: float) -> float:
        agent = self._agent
        deadline = math.inf
        while True:
            result = stun.poll(now)
            if isinstance(result, StunEvent):
                self._on_stun_event(result, now)
                continue
            if isinstance(result, WaitUntil):
                deadline = result.deadline
            break
        while (transmit := stun.poll_transmit(now)) is not None:
            agent._transmits.append(transmit)
        return deadline

    def _on_stun_event(self, event: StunEvent, now: float) -> None:
        task = self._stun_tasks.pop(event.transaction_id, None)
        self._agent._stun_transactions.pop(event.transaction_id, None)
        if task is None:
            return
        component = task.socket.component
        if isinstance(event, TransactionSucceeded):
            mapped = event.response.xor_mapped_address()
            if mapped is None:
                mapped = event.response.address(0x0001)
            if mapped is not None:
                self._add_srflx(task.socket, canonical(mapped), task.server)
        else:
            _log.debug("STUN server %s gave no mapping: %s", task.server, event)
        self._task_done(component)

    def poll_relay(self, relay: RelayEndpoint, now: float) -> float:
        """Drain a TurnClient's events and transmits; return its deadline."""
        turn = relay.turn
        if turn is None:
            return math.inf
        agent = self._agent
        deadline = math.inf
        while True:
            result = turn.poll(now)
            if isinstance(result, TurnEvent):
                self._on_turn_event(relay, result, now)
                continue
            if isinstance(result, WaitUntil):
                deadline = result.deadline
            break
        agent._drain_turn(relay, now)
        if turn.closed and not relay.closed:
            relay.closed = True
        return deadline

    def _on_turn_event(
        self, relay: RelayEndpoint, event: TurnEvent, now: float
    ) -> None:
        agent = self._agent
        if isinstance(event, PeerData):
            agent._on_relay_data(relay, canonical(event.peer), event.data, now)
            return
        if isinstance(event, AllocationCreated):
            self._add_relayed(relay, event, now)
            return
        if isinstance(event, AllocationFailed | AllocationDeleted):
            _log.debug("TURN allocation at %s ended: %s", relay.config.server, event)
            relay.closed = True
            if relay.pending:
                relay.pending = False
                self._task_done(relay.component)
            elif not agent._closing:
                agent._session.relay_lost(relay, now)
            return
        if isinstance(event, TurnAllocateSocket):
            # NOTE: a TURN client that needs a new local socket (after 437,
            # or a redirect to TCP) is not supported; its gathering fails.
            assert relay.turn is not None
            relay.turn.socket_failed(now, reason="not supported by the ICE agent")
            return

    # Candidates.

    def _add_srflx(self, socket: LocalSocket, mapped: Address, server: Address) -> None:
        host = socket.candidate
        base = canonical(host.address)
        component = socket.component
        if mapped == base:
            self._agent._stats["reflexive_same_as_base"] += 1
            return
        for existing in component._candidates:
            if (
                canonical(existing.address) == mapped
                and existing.transport is host.transport
                and canonical(existing.base_address or existing.address) == base
            ):
                return
        local_preference = self._unique_preference(
            component, CandidateType.SERVER_REFLEXIVE, host
        )
        candidate = Candidate(
            foundation=compute_foundation(
                CandidateType.SERVER_REFLEXIVE, base[0], server, TransportType.UDP
            ),
            component=component.id,
            transport=TransportType.UDP,
            priority=candidate_priority(
                default_type_preference(CandidateType.SERVER_REFLEXIVE),
                local_preference,
                component.id,
            ),
            address=mapped,
            type=CandidateType.SERVER_REFLEXIVE,
            related_address=base,
            base_address=base,
        )
        self._agent._session.add_gathered(component, candidate, table=False)

    def _add_relayed(
        self, relay: RelayEndpoint, event: AllocationCreated, now: float
    ) -> None:
        agent = self._agent
        component = relay.component
        config = relay.config
        assert relay.local is not None
        base_ip = relay.local[0]
        transport = (
            TransportType.UDP
            if config.transport is TransportType.UDP
            else TransportType.TCP
        )
        mapped = (
            None if event.mapped_address is None else canonical(event.mapped_address)
        )
        rank = _RELAY_TRANSPORT_RANK[config.transport]

        for relayed in event.relayed_addresses:
            address = canonical(relayed)
            index = len(relay.candidates) + sum(len(r.candidates) for r in self.relays)
            local_preference = max(0, 0xFFFF - rank * 1024 - index)
            candidate = Candidate(
                foundation=compute_foundation(
                    CandidateType.RELAYED, base_ip, config.server, transport
                ),
                component=component.id,
                transport=TransportType.UDP,
                priority=candidate_priority(
                    default_type_preference(CandidateType.RELAYED),
                    local_preference,
                    component.id,
                ),
                address=address,
                type=CandidateType.RELAYED,
                related_address=mapped,
                base_address=address,
            )
            relay.candidates.append(candidate)
            agent._relays[address] = relay
            agent._session.add_gathered(component, candidate, table=True)

        if mapped is not None and relay.socket is not None:
            self._add_srflx(relay.socket, mapped, config.server)
        relay.pending = False
        self._task_done(component)

    def _unique_preference(
        self, component: Component, type: CandidateType, host: Candidate
    ) -> int:
        preference = (host.priority >> 8) & 0xFFFF
        used = {
            (c.priority >> 8) & 0xFFFF for c in component._candidates if c.type is type
        }
        while preference in used and preference > 0:
            preference -= 1
        return preference

    def _task_done(self, component: Component) -> None:
        component._gathering_pending -= 1
        self._agent._session.check_gathering_complete(component)

    # Closing.

    def close(self, now: float) -> None:
        """Drop queued tasks and delete every TURN allocation."""
        self._queue.clear()
        for relay in self.relays:
            if relay.pending:
                relay.pending = False
                self._task_done(relay.component)
            if relay.turn is not None and not relay.closed:
                relay.turn.delete(now)
                self.poll_relay(relay, now)

    @property
    def open_relays(self) -> int:
        """TURN clients that have not reached their final event."""
        return sum(1 for r in self.relays if r.turn is not None and not r.turn.closed)
