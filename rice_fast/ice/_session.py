"""Session logic of an agent: setup, nomination, selection and list states.

``Session`` contains what changes the shape of an ICE session rather than
moving bytes. That is sockets and gathered candidates entering the check
lists, remote credentials and candidates, and ICE restart. It is also the
controlling side's nomination decision, pair selection on both sides, and
the check list and component states that follow from them.

Nomination (RFC 8445 §8.1.1): a controlling agent using regular
nomination nominates the highest-priority valid pair of a component once
no higher-priority pair of that component is still waiting or in
progress, or ``nomination_timeout`` after the component's first valid
pair, whichever comes first. It nominates by sending a new check on the
valid pair with USE-CANDIDATE; the pair is selected when that check
succeeds.

Selection on the controlled side (and on an ICE-lite agent) follows the
first nomination. A later nomination of another pair replaces it when it
carries a higher NOMINATION value (renomination), or when neither carries
one and the new pair has the higher priority (aggressive nomination,
RFC 5245 §8.1.1.2). Once a component has a selected pair, its remaining
Frozen and Waiting pairs are set to Failed and in-progress checks stop
retransmitting (RFC 8445 §8.1.2), except on a controlling agent with
renomination, which keeps checking for a better pair.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Final

from rice_fast.ice._checks import (
    MIN_RTO,
    PairRecord,
    Transaction,
    TransactionKind,
    canonical,
    check_schedule,
    is_passive_local,
)
from rice_fast.ice._conncheck import prflx_priority
from rice_fast.ice._consent import SelectedPath
from rice_fast.ice._paths import LocalSocket, Route, RouteKind
from rice_fast.ice.candidate import (
    Candidate,
    CandidateType,
    TcpType,
    candidate_priority,
    compute_foundation,
    default_type_preference,
    tcp_local_preference,
)
from rice_fast.ice.component import Component, IceUsageError, check_socket_address
from rice_fast.ice.events import (
    CandidatePair,
    CandidatePairState,
    ComponentState,
    ComponentStateChange,
    ConsentLost,
    GatheredCandidate,
    GatheringComplete,
    SelectedPair,
)
from rice_fast.ice.stream import Credentials, Stream, generate_credentials
from rice_fast.stun.transport import Address, TransportType
from rice_fast.turn.errors import TurnError

if TYPE_CHECKING:
    from rice_fast.ice._paths import RelayEndpoint
    from rice_fast.ice.agent import Agent

__all__ = ["Session"]

_log = logging.getLogger(__name__)

PASSIVE_WAIT: Final = check_schedule(MIN_RTO, reliable=True)[-1]
"""How long a check list with passive TCP candidates waits for the peer's
connections before it may fail: the timeout of one check (15.5 s)."""

NOMINATION_WAIT: Final = 30.0
"""Seconds a controlled agent with valid pairs and no checks left waits for
a nomination after its last progress (a check succeeded or received)."""

_DONE_STATES = (CandidatePairState.SUCCEEDED, CandidatePairState.FAILED)

_ACTIVE_STATES = (
    CandidatePairState.FROZEN,
    CandidatePairState.WAITING,
    CandidatePairState.IN_PROGRESS,
)


class Session:
    """Setup, selection and state logic of one agent (see the module docstring)."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    # Sockets and gathering.

    def add_local_socket(
        self,
        component: Component,
        transport: TransportType,
        address: Address,
        tcp_type: TcpType | None,
        local_preference: int | None,
    ) -> Candidate:
        """Register a socket and make its host candidate (Component API)."""
        agent = self._agent
        agent._check_open("add_local_socket")
        if component._gathering_complete:
            raise IceUsageError(
                f"component {component.id} of stream {component.stream_id} already "
                "completed gathering; add sockets before gathering ends"
            )
        address = check_socket_address(transport, address, tcp_type)
        stream = component._stream
        active_key = (stream.id, component.id, address[0])
        if transport is TransportType.UDP:
            taken = address in agent._udp_sockets
        elif tcp_type is TcpType.ACTIVE:
            taken = active_key in agent._tcp_active
        else:
            taken = address in agent._tcp_listeners
        if taken:
            raise IceUsageError(
                f"a {transport.name} socket at {address} is already added"
            )

        if local_preference is None:
            preference = component._next_local_preference(transport)
        else:
            limit = 0xFFFF if transport is TransportType.UDP else 8191
            if not 0 <= local_preference <= limit:
                raise IceUsageError(
                    f"local_preference {local_preference} is not in 0..{limit}"
                )
            preference = local_preference
        if transport is TransportType.TCP:
            assert tcp_type is not None
            preference = tcp_local_preference(CandidateType.HOST, tcp_type, preference)
        candidate = Candidate(
            foundation=compute_foundation(
                CandidateType.HOST, address[0], None, transport
            ),
            component=component.id,
            transport=transport,
            priority=candidate_priority(
                default_type_preference(CandidateType.HOST, transport, tcp_type),
                preference,
                component.id,
            ),
            address=address,
            type=CandidateType.HOST,
            tcp_type=tcp_type,
            base_address=address,
        )
        socket = LocalSocket(transport, address, tcp_type, component, candidate)
        if transport is TransportType.UDP:
            agent._udp_sockets[address] = socket
        elif tcp_type is TcpType.ACTIVE:
            agent._tcp_active[active_key] = socket
        else:
            agent._tcp_listeners[address] = socket
        component._sockets.append(socket)
        if component._gathering_started:
            self._gather_socket(socket)
            agent._gatherer.start_socket(socket)
            self.check_gathering_complete(component)
        return candidate

    def gather_stream(self, stream: Stream, now: float) -> None:
        """Start gathering for every component of ``stream``."""
        agent = self._agent
        agent._check_open("gather_candidates")
        for component in stream._components:
            component._gathering_started = True
            for socket in component._sockets:
                self._gather_socket(socket)
                agent._gatherer.start_socket(socket)
            agent._gatherer.start_component(component)
            self.check_gathering_complete(component)

    def _gather_socket(self, socket: LocalSocket) -> None:
        self.add_gathered(socket.component, socket.candidate, table=True)

    def add_gathered(
        self, component: Component, candidate: Candidate, *, table: bool
    ) -> None:
        """Report a new local candidate and, for host and relayed, pair it."""
        agent = self._agent
        component._candidates.append(candidate)
        stream = component._stream
        agent._emit(GatheredCandidate(stream.id, candidate))
        if table and not agent._lite:
            _, records = agent._checks.add_local(stream._list_id, candidate)
            self._fail_passive(records)
            stream._dirty = True

    def check_gathering_complete(self, component: Component) -> None:
        """Report ``GatheringComplete`` once every task of the component ended."""
        if (
            component._gathering_started
            and component._gathering_pending <= 0
            and not component._gathering_complete
        ):
            component._gathering_complete = True
            self._agent._emit(GatheringComplete(component.stream_id, component.id))
            component._stream._dirty = True

    def _fail_passive(self, records: list[PairRecord]) -> None:
        # RFC 6544 §6.2: pairs with a local passive candidate are checked
        # only over connections the peer opens, which arrive as new pairs.
        checks = self._agent._checks
        for record in records:
            if is_passive_local(record):
                checks.mark_failed(record)

    # Remote side.

    def set_remote_credentials(self, stream: Stream, credentials: Credentials) -> None:
        """Store the peer's credentials; a change rebuilds the check list."""
        agent = self._agent
        agent._check_open("set_remote_credentials")
        old = stream._remote
        if old is not None:
            if (old.ufrag, old.pwd) == (credentials.ufrag, credentials.pwd):
                return
            _log.debug("stream %d: the peer restarted ICE", stream.id)
            self._rebuild_list(stream)
            stream._remote_candidates = []
            stream._end_of_remote = False
            stream._generation += 1
        stream._remote = credentials
        stream._state = "starting"
        agent._pending_activation.append(stream)

    def activate(self, stream: Stream, now: float) -> None:
        """Let a stream's checks run once it has remote credentials."""
        agent = self._agent
        if stream._remote is None or stream._state not in ("starting", "idle"):
            return
        stream._state = "running"
        stream._running_since = now
        stream._last_progress = now
        if not agent._lite:
            agent._checks.set_running(stream._list_id, True, now)
        for component in stream._components:
            if component._state in (ComponentState.NEW, ComponentState.FAILED):
                self.set_component_state(component, ComponentState.CONNECTING)
        agent._checker.replay_early_checks(stream, now)
        stream._dirty = True

    def add_remote_candidate(self, stream: Stream, candidate: Candidate) -> None:
        """Add a signalled remote candidate and form its pairs."""
        agent = self._agent
        agent._check_open("add_remote_candidate")
        if not isinstance(candidate, Candidate):
            raise IceUsageError(f"{candidate!r} is not a Candidate")
        if not 1 <= candidate.component <= len(stream._components):
            raise IceUsageError(
                f"remote candidate for component {candidate.component}, but stream "
                f"{stream.id} has {len(stream._components)} components"
            )
        if stream._end_of_remote:
            raise IceUsageError(
                f"add_remote_candidate on stream {stream.id} after "
                "end_of_remote_candidates; restart ICE to add more"
            )

        address = canonical(candidate.address)
        if address != candidate.address:
            candidate = dataclasses.replace(candidate, address=address)
        for known in stream._remote_candidates:
            if (
                known.component == candidate.component
                and known.transport is candidate.transport
                and known.address == candidate.address
                and known.tcp_type is candidate.tcp_type
            ):
                return

        stream._remote_candidates.append(candidate)
        if agent._lite:
            return
        _, records = agent._checks.add_remote(stream._list_id, candidate)
        self._fail_passive(records)
        stream._dirty = True

    # Restart.

    def restart_stream(self, stream: Stream, now: float) -> None:
        """ICE restart of one stream (RFC 8445 §9); see ``Stream.restart``."""
        agent = self._agent
        agent._check_open("restart")
        previous = stream._local
        for old in stream._previous_local:
            agent._ufrags.pop(old.ufrag, None)
        stream._previous_local = [previous]
        stream._local = generate_credentials(agent._credential_rng())
        agent._ufrags[stream._local.ufrag] = (stream, stream._local)
        stream._remote = None
        stream._remote_candidates = []
        stream._end_of_remote = False
        stream._early = []
        stream._generation += 1
        stream._state = "idle"
        self._rebuild_list(stream)
        for component in stream._components:
            for candidate in component._candidates:
                agent._emit(GatheredCandidate(stream.id, candidate))
            if component._gathering_complete:
                agent._emit(GatheringComplete(stream.id, component.id))
        agent._notify_ufrags()

    def _rebuild_list(self, stream: Stream) -> None:
        """Replace the stream's check list by one holding only local candidates."""
        agent = self._agent
        checks = agent._checks
        for txn in list(agent._transactions.values()):
            if self._checks_stream(txn, stream):
                agent._finish_transaction(txn)
        for owner in agent._pending_sockets.values():
            if isinstance(owner, PairRecord) and owner.stream is stream:
                owner.connecting = False
        checks.remove_list(stream._list_id)
        stream._list_id = checks.add_list(stream)
        stream._prflx_learnt.clear()
        for component in stream._components:
            component._nominating = None
            component._first_valid_at = None
            for candidate in component._candidates:
                if candidate.type in (CandidateType.HOST, CandidateType.RELAYED):
                    checks.add_local(stream._list_id, candidate)

    # Nomination and selection.

    def evaluate(self, stream: Stream, now: float) -> None:
        """Nominate when it is time, then update the list and component states."""
        if stream._state not in ("running", "completed"):
            return
        self._maybe_nominate(stream, now)
        self._update_state(stream, now)

    def _maybe_nominate(self, stream: Stream, now: float) -> None:
        agent = self._agent
        if not agent._controlling or agent._aggressive or agent._lite:
            return
        checks = agent._checks
        for component in stream._components:
            if component._nominating is not None:
                continue
            current = component._current_selection()
            if current is not None and not agent._renomination:
                continue
            best = None
            pending_higher = False
            for record in checks.pairs(stream._list_id):
                if record.component_id != component.id:
                    continue
                if checks.is_valid(record):
                    if checks.state(record) is not CandidatePairState.FAILED:
                        best = record
                        break
                    continue
                if checks.state(record) in _ACTIVE_STATES and not is_passive_local(
                    record
                ):
                    pending_higher = True
            if best is None:
                continue
            if current is not None:
                route = agent._route_for_pair(best)
                if route == current.route:
                    continue
                if agent._pair_priority(best.public) <= current.pair_priority:
                    continue
            first_valid = component._first_valid_at
            if first_valid is None:
                first_valid = component._first_valid_at = now
            deadline = first_valid + agent._nomination_timeout
            if pending_higher and now < deadline:
                agent._wake_at(deadline)
                continue
            _log.debug(
                "nominating %s -> %s on stream %d component %d",
                best.base,
                best.remote.address,
                stream.id,
                component.id,
            )
            component._nominating = best
            checks.trigger(best, nominate=True)

    def nominated(
        self,
        component: Component,
        record: PairRecord,
        now: float,
        *,
        nomination: int | None,
    ) -> None:
        """Select a nominated valid pair if the selection rules allow it."""
        route = self._agent._route_for_pair(record)
        if route is None:
            return
        self._consider(component, record.public, route, now, nomination, record)

    def nominated_lite(
        self,
        component: Component,
        local: Candidate,
        remote: Candidate,
        route: Route,
        now: float,
        nomination: int | None,
    ) -> None:
        """Select the pair of a nominating check that an ICE-lite agent got."""
        self._consider(
            component, CandidatePair(local, remote), route, now, nomination, None
        )

    def _consider(
        self,
        component: Component,
        pair: CandidatePair,
        route: Route,
        now: float,
        nomination: int | None,
        record: PairRecord | None,
    ) -> None:
        agent = self._agent
        priority = agent._pair_priority(pair)
        current = component._current_selection()
        if current is not None:
            if current.route == route:
                if nomination is not None and (
                    current.nomination is None or nomination > current.nomination
                ):
                    current.nomination = nomination
                return
            if nomination is not None:
                if current.nomination is not None and nomination <= current.nomination:
                    return
            elif current.nomination is not None or priority <= current.pair_priority:
                return
        self._select(component, pair, route, now, nomination, priority, record)

    def _select(
        self,
        component: Component,
        pair: CandidatePair,
        route: Route,
        now: float,
        nomination: int | None,
        priority: int,
        record: PairRecord | None,
    ) -> None:
        agent = self._agent
        stream = component._stream
        remote = stream._remote
        if remote is None:
            return
        old = component._selected
        if old is not None:
            agent._consent.stop(old)

        path = SelectedPath(
            stream=stream,
            component=component,
            pair=pair,
            route=route,
            username=f"{remote.ufrag}:{stream._local.ufrag}",
            remote_key=remote.key,
            priority=prflx_priority(pair.local),
            generation=stream._generation,
            pair_priority=priority,
            nomination=nomination,
            last_sent=now,
            last_consent=now,
        )
        component._selected = path
        component._nominating = None
        agent._consent.start(path, now)
        agent._accept_data(route, component)

        if route.kind is RouteKind.RELAY and route.relay is not None:
            turn = route.relay.turn
            if turn is not None:
                try:
                    turn.bind_channel(route.remote, now)
                except TurnError as exc:
                    _log.debug("no channel to %s: %s", route.remote, exc)
                agent._drain_turn(route.relay, now)

        _log.debug(
            "selected %s -> %s on stream %d component %d",
            route.local,
            route.remote,
            stream.id,
            component.id,
        )
        agent._emit(SelectedPair(stream.id, component.id, pair))
        self.set_component_state(component, ComponentState.CONNECTED)
        if record is not None and not (agent._controlling and agent._renomination):
            # Aggressive nomination keeps checking pairs above the selected
            # one: the controlled side may select the best nominated pair.
            floor = priority if agent._controlling and agent._aggressive else None
            self._stop_checks(stream, component, floor)
        stream._dirty = True

    def _stop_checks(
        self, stream: Stream, component: Component, floor: int | None
    ) -> None:
        """RFC 8445 §8.1.2: no more ordinary checks for a completed component.

        With ``floor`` set, pairs with a higher priority keep their checks.
        """
        checks = self._agent._checks
        for record in list(checks.pairs(stream._list_id)):
            if record.component_id != component.id:
                continue
            if floor is not None and checks.priority(record) > floor:
                continue
            state = checks.state(record)
            if state in (CandidatePairState.FROZEN, CandidatePairState.WAITING):
                checks.mark_failed(record)
            elif (
                state is CandidatePairState.IN_PROGRESS
                and record.transaction is not None
            ):
                record.transaction.retransmit = False

    # States.

    def _update_state(self, stream: Stream, now: float) -> None:
        agent = self._agent
        components = stream._components
        if all(c._current_selection() is not None for c in components):
            if stream._state != "completed":
                stream._state = "completed"
                _log.debug("stream %d: check list completed", stream.id)
            return
        if agent._lite or stream._state != "running":
            return

        # Failure needs every piece of information in and every check done.
        if not all(c._gathering_complete for c in components):
            return
        if agent._trickle and not stream._end_of_remote:
            return
        if any(self._checks_stream(t, stream) for t in agent._transactions.values()):
            return
        for owner in agent._pending_sockets.values():
            if (
                isinstance(owner, PairRecord)
                and owner.stream is stream
                and owner.connecting
            ):
                return

        checks = agent._checks
        records = list(checks.pairs(stream._list_id))
        passive_until = stream._running_since + PASSIVE_WAIT
        if now < passive_until and any(
            is_passive_local(r) and r.connection is None for r in records
        ):
            # The peer may still open a connection to a passive candidate.
            agent._wake_at(passive_until)
            return
        for component in components:
            if component._nominating is not None:
                return
        if records and checks.list_state(stream._list_id, len(components)) != "failed":
            # Valid pairs but no selection. A controlling agent nominates;
            # a controlled one waits, but not for ever once its own checks
            # are done: the peer may have given up.
            if agent._controlling or any(
                checks.state(r) not in _DONE_STATES for r in records
            ):
                return
            give_up = stream._last_progress + NOMINATION_WAIT
            if now < give_up:
                agent._wake_at(give_up)
                return
            _log.debug("stream %d: no nomination from the peer", stream.id)

        stream._state = "failed"
        _log.debug("stream %d: check list failed", stream.id)
        for component in components:
            if component._current_selection() is None:
                self.set_component_state(component, ComponentState.FAILED)

    @staticmethod
    def _checks_stream(txn: Transaction, stream: Stream) -> bool:
        """Return whether ``txn`` is a connectivity check of ``stream``."""
        return (
            txn.kind == TransactionKind.CHECK
            and txn.pair is not None
            and txn.pair.stream is stream
        )

    def set_component_state(self, component: Component, state: ComponentState) -> None:
        """Change a component's state and report the change."""
        if component._set_state(state):
            self._agent._emit(
                ComponentStateChange(component.stream_id, component.id, state)
            )

    def path_lost(self, path: SelectedPath, now: float, *, consent: bool) -> None:
        """Fail a selected path: consent lost, or its connection or allocation gone."""
        agent = self._agent
        path.lost = True
        component = path.component
        stream = path.stream
        if consent:
            agent._emit(ConsentLost(stream.id, component.id, path.pair))
        if component._selected is path:
            self.set_component_state(component, ComponentState.FAILED)
            if path.generation == stream._generation:
                stream._state = "failed"

    def relay_lost(self, relay: RelayEndpoint, now: float) -> None:
        """Fail the pairs and the selected path of a TURN allocation that ended."""
        agent = self._agent
        addresses = {canonical(c.address) for c in relay.candidates}
        checks = agent._checks
        for record in list(checks.records.values()):
            if record.local.type is CandidateType.RELAYED and record.base in addresses:
                txn = record.transaction
                if txn is not None and not txn.done:
                    agent._finish_transaction(txn)
                if checks.state(record) is not CandidatePairState.SUCCEEDED:
                    checks.mark_failed(record)
                record.stream._dirty = True
        for stream in agent._streams.values():
            for component in stream._components:
                path = component._selected
                if path is not None and path.route.relay is relay and not path.lost:
                    agent._consent.stop(path)
                    self.path_lost(path, now, consent=False)
