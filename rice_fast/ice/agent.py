"""Agent: an ICE agent (RFC 8445) as a sans-IO state machine.

Theory of operation. The caller owns every socket and the clock. It gives
each component its sockets, starts gathering, and exchanges credentials
and candidates with the peer over its own signalling. Then it runs the
loop of the package's sans-IO contract: ``handle_data`` for every datagram
or TCP read, ``poll`` until it returns ``WaitUntil`` or None, and
``poll_transmit`` until it returns None. ``poll`` is what sends checks
(one per Ta across all streams), retransmits them, runs consent and
keepalives, nominates, and reports every event.

Input is demultiplexed by its 5-tuple: bytes from a TURN server go to the
TurnClient of that allocation, STUN responses to the transaction that
sent the request (a check, a consent request, or a STUN gathering
request), STUN requests to the stream whose local ufrag starts their
USERNAME, and anything else is application data, accepted only on a route
that a check validated in either direction. Bytes from the network never
raise: they are dropped and counted in ``stats``.

The check lists live in a ``CheckListTable`` (``rice_fast.ice.checklist``),
which may be shared by many agents, so a server scheduling thousands of
sessions forms and orders their pairs in numpy columns.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from rice_fast.ice._checks import CheckLists, Transaction, TransactionKind, canonical
from rice_fast.ice._conncheck import Checker
from rice_fast.ice._consent import Consent, SelectedPath
from rice_fast.ice._gathering import Gatherer, TurnConfig
from rice_fast.ice._paths import LocalSocket, RelayEndpoint, Route, TcpConnection
from rice_fast.ice._routing import AgentRouting, PendingOwner
from rice_fast.ice._session import Session
from rice_fast.ice.candidate import pair_priority
from rice_fast.ice.checklist import CheckListTable, ReferenceCheckListTable
from rice_fast.ice.component import Component, IceUsageError
from rice_fast.ice.events import (
    CandidatePair,
    CandidatePairState,
    Closed,
    DataReceived,
    IceEvent,
    RemoveSocket,
)
from rice_fast.ice.stream import Credentials, Stream, generate_credentials
from rice_fast.stun.agent import StunAgent
from rice_fast.stun.transport import Address, Transmit, TransportType, WaitUntil

__all__ = ["Agent", "AgentStats", "TurnConfig"]

_log = logging.getLogger(__name__)

MIN_TA: Final = 0.005
"""The smallest Ta the agent accepts, in seconds (RFC 8445 §14.2 allows 5 ms)."""

CLOSE_TIMEOUT: Final = 5.0
"""Seconds ``close`` waits for TURN allocations to be deleted."""


_COUNTERS: Final = (
    "checks_sent",
    "checks_succeeded",
    "check_timeouts",
    "retransmits",
    "responses_sent",
    "role_conflicts_sent",
    "keepalives_sent",
    "keepalives_received",
    "data_received",
    "dropped_malformed",
    "dropped_bad_fingerprint",
    "dropped_bad_integrity",
    "dropped_unknown_username",
    "dropped_unauthenticated",
    "dropped_wrong_stream",
    "dropped_bad_priority",
    "dropped_unknown_transaction",
    "dropped_unknown_socket",
    "dropped_unroutable_data",
    "dropped_not_binding",
    "reflexive_same_as_base",
)


@dataclass(frozen=True, slots=True)
class AgentStats:
    """A snapshot of an agent's counters.

    The ``dropped_*`` counters count discarded input. The reasons are
    malformed STUN, a wrong FINGERPRINT or MESSAGE-INTEGRITY, a USERNAME
    with no local ufrag, and requests without credentials or PRIORITY.
    They are also responses to no pending request, bytes on a socket the
    agent does not know, data from an address no check validated, and STUN
    methods other than Binding. ``reflexive_same_as_base`` counts STUN
    responses whose mapped address was the socket's own, as it is without a
    NAT, so no server-reflexive candidate was added (RFC 8445 §5.1.3).
    """

    checks_sent: int = 0
    checks_succeeded: int = 0
    check_timeouts: int = 0
    retransmits: int = 0
    responses_sent: int = 0
    role_conflicts_sent: int = 0
    keepalives_sent: int = 0
    keepalives_received: int = 0
    data_received: int = 0
    dropped_malformed: int = 0
    dropped_bad_fingerprint: int = 0
    dropped_bad_integrity: int = 0
    dropped_unknown_username: int = 0
    dropped_unauthenticated: int = 0
    dropped_wrong_stream: int = 0
    dropped_bad_priority: int = 0
    dropped_unknown_transaction: int = 0
    dropped_unknown_socket: int = 0
    dropped_unroutable_data: int = 0
    dropped_not_binding: int = 0
    reflexive_same_as_base: int = 0


class Agent(AgentRouting):
    """An ICE agent: streams, components, check lists and the poll loop.

    Call order: ``add_stream``, ``Stream.add_component``,
    ``Component.add_local_socket``, ``Stream.gather_candidates(now)``;
    signal the local credentials and candidates; on the peer's,
    ``Stream.set_remote_credentials`` and ``Stream.add_remote_candidate``.
    Then loop: ``handle_data`` for each input, ``poll(now)`` until
    ``WaitUntil`` or None, ``poll_transmit(now)`` until None, and sleep
    until the deadline or the next input. Report the outcome of each
    ``AllocateSocket`` with ``socket_allocated``. ``Component.send`` frames data
    once ``SelectedPair`` is reported.

    ``controlling`` is the initial role; role conflicts may change it
    (``controlling`` property). ``lite`` makes an ICE-lite agent (RFC 8445
    §8.2): host candidates only, no checks of its own, consent off by
    default. ``trickle`` means the peer trickles: a check list fails only
    after ``end_of_remote_candidates``. ``ta`` paces new STUN transactions
    (seconds, at least 0.005). ``max_pairs`` limits each check list.
    ``tie_breaker`` is the 64-bit role-conflict value (random by default).
    ``stun_servers`` are ``(IP, port)`` pairs reached over UDP;
    ``turn_servers`` are ``TurnConfig`` values.

    Beyond RFC 8445 defaults: ``aggressive_nomination`` puts USE-CANDIDATE
    on every check of a controlling agent (RFC 5245 style);
    ``renomination`` lets a controlling agent nominate a better pair later
    with the NOMINATION attribute; ``nomination_timeout`` is how long a
    controlling agent waits for higher-priority checks after its first
    valid pair before nominating; ``consent_freshness`` turns RFC 7675
    consent on or off (default on for full agents). ``rng`` seeds the
    credentials, tie-breaker and consent jitter, for reproducible tests
    only. ``checklist_table`` shares one table between agents.
    """

    def __init__(
        self,
        controlling: bool,
        *,
        lite: bool = False,
        trickle: bool = False,
        ta: float = 0.05,
        max_pairs: int = 100,
        tie_breaker: int | None = None,
        stun_servers: Iterable[Address] = (),
        turn_servers: Iterable[TurnConfig] = (),
        aggressive_nomination: bool = False,
        renomination: bool = False,
        nomination_timeout: float = 1.0,
        consent_freshness: bool | None = None,
        software: str | None = None,
        rng: random.Random | None = None,
        checklist_table: CheckListTable | ReferenceCheckListTable | None = None,
    ) -> None:
        if not ta >= MIN_TA:
            raise IceUsageError(f"ta {ta!r} s is below the minimum of {MIN_TA} s")
        if max_pairs < 1:
            raise IceUsageError(f"max_pairs must be at least 1, got {max_pairs}")
        if nomination_timeout < 0:
            raise IceUsageError(
                f"nomination_timeout must not be negative, got {nomination_timeout}"
            )
        stun = tuple(canonical(s) for s in stun_servers)
        turn = tuple(turn_servers)
        if lite and (stun or turn):
            raise IceUsageError(
                "an ICE-lite agent gathers host candidates only; drop stun_servers "
                "and turn_servers"
            )
        for config in turn:
            if not isinstance(config, TurnConfig):
                raise IceUsageError(f"turn server {config!r} is not a TurnConfig")
        self._rng = rng if rng is not None else random.SystemRandom()
        if tie_breaker is None:
            tie_breaker = self._rng.getrandbits(64)
        if not 0 <= tie_breaker < 2**64:
            raise IceUsageError(f"tie_breaker {tie_breaker} is not a 64-bit value")

        self._controlling = controlling
        self._tie_breaker = tie_breaker
        self._lite = lite
        self._remote_lite = False
        self._trickle = trickle
        self._ta = ta
        self._max_pairs = max_pairs
        self._aggressive = aggressive_nomination
        self._renomination = renomination
        self._nomination_counter = 0
        self._nomination_timeout = nomination_timeout
        self._software = software

        self._checks = CheckLists(
            controlling=controlling, ta=ta, max_pairs=max_pairs, table=checklist_table
        )
        self._checker = Checker(self)
        self._consent = Consent(
            self, enabled=not lite if consent_freshness is None else consent_freshness
        )
        self._gatherer = Gatherer(self, stun, turn)
        self._session = Session(self)

        self._streams: dict[int, Stream] = {}
        self._stream_ids = itertools.count(1)
        self._ufrags: dict[str, tuple[Stream, Credentials]] = {}
        self._ufrag_observer: Callable[[Agent], None] | None = None
        self._udp_sockets: dict[Address, LocalSocket] = {}
        self._tcp_listeners: dict[Address, LocalSocket] = {}
        self._tcp_active: dict[tuple[int, int, str], LocalSocket] = {}
        self._connections: dict[tuple[Address, Address], TcpConnection] = {}
        self._pending_sockets: dict[
            tuple[int, int, Address, Address], PendingOwner
        ] = {}
        self._turn_routes: dict[tuple[Address, Address], RelayEndpoint] = {}
        self._relays: dict[Address, RelayEndpoint] = {}
        self._stun_transactions: dict[bytes, StunAgent] = {}
        self._transactions: dict[bytes, Transaction] = {}
        self._udp_data: dict[tuple[Address, Address], Component] = {}
        self._relay_data: dict[tuple[Address, Address], Component] = {}
        self._relay_deliveries: list[DataReceived] = []
        self._timers: list[tuple[float, int, object, int]] = []
        self._timer_seq = itertools.count()
        self._wakes: set[float] = set()
        self._transmits: deque[Transmit] = deque()
        self._events: deque[IceEvent] = deque()
        self._next_paced = -math.inf
        self._machine_deadline = math.inf
        self._pending_activation: list[Stream] = []
        self._stats: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._closing = False
        self._closed = False
        self._close_deadline = math.inf

    # Properties.

    @property
    def controlling(self) -> bool:
        """Whether the agent is in the controlling role now."""
        return self._controlling

    @property
    def tie_breaker(self) -> int:
        """The 64-bit value sent in ICE-CONTROLLING or ICE-CONTROLLED."""
        return self._tie_breaker

    @property
    def lite(self) -> bool:
        """Whether this is an ICE-lite agent."""
        return self._lite

    @property
    def trickle(self) -> bool:
        """Whether the peer trickles candidates (RFC 8838)."""
        return self._trickle

    @property
    def ta(self) -> float:
        """The pacing interval of new STUN transactions, in seconds."""
        return self._ta

    @property
    def streams(self) -> tuple[Stream, ...]:
        """The streams, in the order they were added."""
        return tuple(self._streams.values())

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closing

    @property
    def stats(self) -> AgentStats:
        """A snapshot of the counters."""
        return AgentStats(**self._stats)

    def stream(self, stream_id: int) -> Stream:
        """Return the stream with this id; raises ``IceUsageError`` if none."""
        stream = self._streams.get(stream_id)
        if stream is None:
            raise IceUsageError(f"no stream with id {stream_id}")
        return stream

    def local_ufrags(self) -> tuple[str, ...]:
        """Return every ufrag the agent accepts checks for, old generations included."""
        return tuple(self._ufrags)

    def set_ufrag_observer(self, observer: Callable[[Agent], None] | None) -> None:
        """Call ``observer(agent)`` whenever ``local_ufrags`` changes.

        ``Demultiplexer`` uses this to keep its routing table current.
        """
        self._ufrag_observer = observer

    # Setup.

    def add_stream(self) -> Stream:
        """Add a data stream with fresh local credentials and return it."""
        self._check_open("add_stream")
        stream_id = next(self._stream_ids)
        credentials = generate_credentials(self._credential_rng())
        stream = Stream(self, stream_id, credentials)
        self._streams[stream_id] = stream
        self._ufrags[credentials.ufrag] = (stream, credentials)
        self._notify_ufrags()
        return stream

    def set_remote_lite(self, lite: bool) -> None:
        """Record whether the peer is ICE-lite (``a=ice-lite``).

        A full agent facing a lite peer takes the controlling role (RFC
        8445 §6.1.1).
        """
        self._remote_lite = lite
        if lite and not self._lite and not self._controlling:
            self._set_role(True)

    def restart(self, now: float) -> None:
        """Restart ICE on every stream (see ``Stream.restart``)."""
        for stream in self._streams.values():
            stream.restart(now)

    def close(self, now: float) -> None:
        """Stop all checks and delete TURN allocations; ``Closed`` follows.

        TCP connections the agent asked for are reported as
        ``RemoveSocket``. Calling it again does nothing.
        """
        if self._closing:
            return
        self._closing = True
        for txn in list(self._transactions.values()):
            self._finish_transaction(txn)
        for stream in self._streams.values():
            for component in stream._components:
                if component._selected is not None:
                    self._consent.stop(component._selected)
        self._gatherer.close(now)
        for connection in self._connections.values():
            if connection.requested and not connection.closed:
                self._emit_remove_socket(connection.socket.component, connection)
        self._close_deadline = now + CLOSE_TIMEOUT

    # Sockets.

    def socket_allocated(
        self,
        stream_id: int,
        component_id: int,
        transport: TransportType,
        source: Address,
        destination: Address,
        local: Address | None,
        now: float,
    ) -> None:
        """Report the outcome of an ``AllocateSocket``: a local address or None.

        ``stream_id``, ``component_id``, ``source`` and ``destination`` are
        those of the event. Raises ``IceUsageError`` when no such request
        is pending.
        """
        key = (stream_id, component_id, canonical(source), canonical(destination))
        owner = self._pending_sockets.pop(key, None)
        if owner is None:
            raise IceUsageError(
                f"socket_allocated for {source} -> {destination} on stream "
                f"{stream_id} component {component_id} without an AllocateSocket"
            )
        if isinstance(owner, RelayEndpoint):
            self._gatherer.socket_result(owner, local, now)
            return
        self._connection_result(owner, key[3], local, now)

    def connection_closed(
        self, transport: TransportType, local: Address, remote: Address, now: float
    ) -> None:
        """Report that a TCP connection closed (by the peer or on error).

        Pairs that used it fail; a selected pair on it fails its component.
        """
        key = (canonical(local), canonical(remote))
        relay = self._turn_routes.get(key)
        if relay is not None and relay.turn is not None:
            relay.turn.connection_closed(key[0], now)
            self._gatherer.poll_relay(relay, now)
            return
        connection = self._connections.pop(key, None)
        if connection is None:
            return
        connection.closed = True
        for record in list(self._checks.records.values()):
            if record.connection is connection:
                txn = record.transaction
                if txn is not None and not txn.done:
                    self._finish_transaction(txn)
                if self._checks.state(record) is not CandidatePairState.SUCCEEDED:
                    self._checks.mark_failed(record)
                record.stream._dirty = True
        for stream in self._streams.values():
            for component in stream._components:
                path = component._selected
                if path is not None and path.route.connection is connection:
                    self._consent.stop(path)
                    self._session.path_lost(path, now, consent=False)

    # Input.

    def handle_data(
        self,
        transport: TransportType,
        local: Address,
        remote: Address,
        data: bytes,
        now: float,
    ) -> DataReceived | None:
        """Consume one datagram or TCP read and return its application data.

        ``local`` is the address of the socket (for TCP, of the
        connection) it arrived on, ``remote`` its source. A UDP datagram of
        application data on a validated route is returned as
        ``DataReceived`` whose ``data`` is the object passed in, uncopied.
        Data that a TURN server relays over UDP is returned the same way,
        as the payload cut out of its ChannelData or Data indication.
        Everything else returns None: STUN is consumed, and data from TCP
        connections arrives as ``DataReceived`` events from ``poll``.
        Never raises for the content of ``data``.
        """
        if self._closed:
            return None
        if transport is TransportType.UDP:
            component = self._udp_data.get((local, remote))
            if component is not None and data and data[0] > 3:
                self._stats["data_received"] += 1
                return DataReceived(component._stream._id, component._id, data)
            return self._handle_udp(canonical(local), canonical(remote), data, now)
        if transport is TransportType.TCP or transport is TransportType.TLS:
            self._handle_stream(canonical(local), canonical(remote), data, now)
            return None
        raise IceUsageError(f"transport {transport!r} is not a TransportType")

    # Output.

    def poll(self, now: float) -> IceEvent | WaitUntil | None:
        """Advance timers and return the next event or the next deadline.

        Returns events while any is queued, then ``WaitUntil`` with the
        earliest deadline, or None when nothing is scheduled (an idle
        agent waiting for input, or a closed one after ``Closed``).
        """
        self._advance(now)
        if self._events:
            return self._events.popleft()
        if self._closed:
            return None
        deadline = self._next_deadline()
        if deadline == math.inf:
            return None
        return WaitUntil(deadline)

    def poll_transmit(self, now: float) -> Transmit | None:
        """Return the next message to send, or None."""
        transmits = self._transmits
        if transmits:
            return transmits.popleft()
        return None

    def _advance(self, now: float) -> None:
        self._machine_deadline = self._gatherer.poll_all(now)
        self._flush_relay_deliveries()
        self._fire_timers(now)
        if not self._closing:
            if self._pending_activation:
                pending, self._pending_activation = self._pending_activation, []
                for stream in pending:
                    self._session.activate(stream, now)
            self._pace(now)
            for stream in self._streams.values():
                if stream._dirty:
                    stream._dirty = False
                    self._session.evaluate(stream, now)
        # Pacing may have started a STUN or TURN transaction: poll the
        # machines again so that their first deadline is known.
        self._machine_deadline = self._gatherer.poll_all(now)
        self._flush_relay_deliveries()
        self._check_closed(now)

    def _flush_relay_deliveries(self) -> None:
        if self._relay_deliveries:
            self._events.extend(self._relay_deliveries)
            self._relay_deliveries.clear()

    def _pace(self, now: float) -> None:
        """Start at most one new STUN transaction, one per Ta (RFC 8445 §14)."""
        if now < self._next_paced:
            return
        if self._gatherer.has_queued:
            self._gatherer.start_next(now)
            self._checks.record_transaction(now)
            self._next_paced = now + self._ta
            return
        if self._lite:
            return
        record = self._checks.next_check(now)
        if record is not None:
            self._checker.start_check(record, now)
            self._next_paced = now + self._ta

    def _next_deadline(self) -> float:
        deadline = min(self._machine_deadline, self._next_timer())
        if self._closing:
            return min(deadline, self._close_deadline)
        if self._pending_activation or any(s._dirty for s in self._streams.values()):
            return -math.inf
        if self._gatherer.has_queued:
            deadline = min(deadline, self._next_paced)
        elif not self._lite:
            paced = self._checks.next_deadline()
            if paced != math.inf:
                deadline = min(deadline, max(paced, self._next_paced))
        return deadline

    # Timers.

    def _wake_at(self, deadline: float) -> None:
        """Re-evaluate every stream at ``deadline`` (nomination and failure waits)."""
        if deadline in self._wakes:
            return
        self._wakes.add(deadline)
        self._push_timer(deadline, None, 0)

    def _push_timer(self, deadline: float, owner: object, generation: int) -> None:
        heapq.heappush(
            self._timers, (deadline, next(self._timer_seq), owner, generation)
        )

    def _next_timer(self) -> float:
        timers = self._timers
        while timers:
            deadline, _, owner, generation = timers[0]
            if isinstance(owner, Transaction):
                if owner.done or owner.timer_generation != generation:
                    heapq.heappop(timers)
                    continue
            elif isinstance(owner, SelectedPath) and (
                owner.stopped or owner.lost or owner.timer_generation != generation
            ):
                heapq.heappop(timers)
                continue
            return deadline
        return math.inf

    def _fire_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, _, owner, generation = heapq.heappop(timers)
            if isinstance(owner, Transaction):
                if not owner.done and owner.timer_generation == generation:
                    self._fire_transaction(owner, now)
            elif isinstance(owner, SelectedPath):
                if owner.timer_generation == generation:
                    self._consent.fire(owner, now)
            else:
                # A wake-up from _wake_at: re-evaluate every stream.
                self._wakes.discard(deadline)
                for stream in self._streams.values():
                    stream._dirty = True

    def _start_transaction(
        self, txn: Transaction, route: Route | None, now: float
    ) -> None:
        """Register a transaction, send it on ``route`` and start its timer.

        A check waiting for its TCP connection has no route yet; its first
        transmission happens in ``socket_allocated``.
        """
        self._transactions[txn.transaction_id] = txn
        if route is not None:
            self._send_route(route, txn.request, now)
            txn.transmissions = 1
        txn.timer_generation += 1
        self._push_timer(txn.schedule[0], txn, txn.timer_generation)

    def _fire_transaction(self, txn: Transaction, now: float) -> None:
        schedule = txn.schedule
        resend = False
        while schedule and schedule[0] <= now:
            schedule.pop(0)
            if not schedule:
                self._finish_transaction(txn)
                if txn.kind == TransactionKind.CHECK:
                    self._stats["check_timeouts"] += 1
                    self._checker.on_timeout(txn, now)
                return
            resend = True
        if resend and txn.retransmit:
            route = self._transaction_route(txn)
            if route is not None:
                self._send_route(route, txn.request, now)
                txn.transmissions += 1
                self._stats["retransmits"] += 1
        txn.timer_generation += 1
        self._push_timer(schedule[0], txn, txn.timer_generation)

    def _transaction_route(self, txn: Transaction) -> Route | None:
        path = txn.consent_path
        if isinstance(path, SelectedPath):
            return path.route
        if txn.pair is None:
            return None
        return self._route_for_pair(txn.pair)

    # Role.

    def _set_role(self, controlling: bool) -> None:
        """Switch role after a role conflict (RFC 8445 §7.3.1.1, §7.2.5.1)."""
        if controlling is self._controlling:
            return
        _log.debug("role changes to %s", "controlling" if controlling else "controlled")
        self._controlling = controlling
        self._checks.set_role(controlling)
        for stream in self._streams.values():
            for component in stream._components:
                path = component._selected
                if path is not None:
                    path.pair_priority = self._pair_priority(path.pair)

    def _pair_priority(self, pair: CandidatePair) -> int:
        local = pair.local.priority
        remote = pair.remote.priority
        if self._controlling:
            return pair_priority(local, remote)
        return pair_priority(remote, local)

    def _credential_rng(self) -> random.Random | None:
        """The seeded generator for credentials in tests, else None (secrets)."""
        return None if isinstance(self._rng, random.SystemRandom) else self._rng

    def _notify_ufrags(self) -> None:
        if self._ufrag_observer is not None:
            self._ufrag_observer(self)

    def _check_open(self, operation: str) -> None:
        if self._closing:
            raise IceUsageError(f"{operation} on a closed agent; create a new Agent")

    def _check_closed(self, now: float) -> None:
        if not self._closing or self._closed:
            return
        if self._gatherer.open_relays and now < self._close_deadline:
            return
        for relay in self._gatherer.relays:
            if (
                relay.socket is None
                and relay.turn is not None
                and relay.local is not None
            ):
                self._emit(
                    RemoveSocket(
                        relay.component.stream_id,
                        relay.component.id,
                        TransportType.TCP,
                        relay.local,
                        relay.config.server,
                    )
                )
        self._closed = True
        self._events.append(Closed())
