"""Connectivity checks: sending them, responding to them, reading the responses.

Theory of operation. A check is a Binding request with USERNAME
"remote-ufrag:local-ufrag", PRIORITY, ICE-CONTROLLING or ICE-CONTROLLED
with the tie-breaker, USE-CANDIDATE when it nominates, MESSAGE-INTEGRITY
keyed with the peer's password, and FINGERPRINT (RFC 8445 §7.2.2). The
check list table picks which pair to check under Ta pacing; this module
builds the request, matches the response, and applies RFC 8445 §7.2.5: a
response must come back on the route the request used, a 487 flips the
role if the request carried the role the agent still has, and a success
makes a valid pair from the XOR-MAPPED-ADDRESS (a new local
peer-reflexive candidate when the address is unknown).

Requests from the peer are checked for the local ufrag before the colon
and for integrity with the local password; anything else is dropped and
counted. A valid request gets its response on the route it came in on, after
the role conflict rules of §7.3.1.1. It may teach a remote peer-reflexive
candidate (§7.3.1.3), queues a triggered check on its pair (§7.3.1.4),
and with USE-CANDIDATE nominates the pair on the controlled side
(§7.3.1.5), at once when the pair's own check already succeeded, else
when it does.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from rice_fast.ice._checks import (
    PairRecord,
    Transaction,
    TransactionKind,
    canonical,
    check_rto,
    check_schedule,
    is_passive_local,
)
from rice_fast.ice._paths import Route
from rice_fast.ice.candidate import (
    Candidate,
    CandidateType,
    TcpType,
    candidate_priority,
    compute_foundation,
    default_type_preference,
)
from rice_fast.ice.checklist import PairState
from rice_fast.ice.events import CandidatePairState
from rice_fast.ice.stream import EarlyCheck
from rice_fast.stun import IntegrityKey, Message, MessageBuilder, new_transaction_id
from rice_fast.stun._constants import ErrorCode, MessageClass, Method, message_type

if TYPE_CHECKING:
    from rice_fast.ice.agent import Agent
    from rice_fast.ice.component import Component
    from rice_fast.ice.stream import Credentials, Stream

__all__ = ["NOMINATION_ATTRIBUTE", "Checker"]

_log = logging.getLogger(__name__)

_BINDING_REQUEST: Final = message_type(Method.BINDING, MessageClass.REQUEST)
_BINDING_SUCCESS: Final = message_type(Method.BINDING, MessageClass.SUCCESS)
_BINDING_ERROR: Final = message_type(Method.BINDING, MessageClass.ERROR)

NOMINATION_ATTRIBUTE: Final = 0xC001
"""NOMINATION of the ICE renomination draft (draft-thatcher-ice-renomination).

A 24-bit counter the controlling side raises with each nomination; the
controlled side switches to the pair with the highest value it has seen.
"""

_PRFLX_PREFERENCE: Final = default_type_preference(CandidateType.PEER_REFLEXIVE)

NOMINATION_ATTEMPTS: Final = 2
"""Nominating checks sent on one valid pair before it counts as failed."""

MAX_REMOTE_PRFLX: Final = 16
"""Remote peer-reflexive candidates that non-nominating requests may teach
per local base, component and ICE generation."""


def prflx_priority(local: Candidate) -> int:
    """Return the PRIORITY a check from ``local`` carries (RFC 8445 §7.1.1).

    It is the priority ``local`` would have as a peer-reflexive candidate:
    the peer-reflexive type preference with the candidate's own local
    preference and component.
    """
    local_preference = (local.priority >> 8) & 0xFFFF
    return candidate_priority(_PRFLX_PREFERENCE, local_preference, local.component)


def read_nomination(message: Message) -> int | None:
    """Return the NOMINATION value of a request, or None."""
    raw = message.raw(NOMINATION_ATTRIBUTE)
    if raw is None or len(raw) != 4:
        return None
    return int.from_bytes(raw, "big") & 0xFFFFFF


class Checker:
    """The connectivity-check half of an agent; see the module docstring."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent
        self._prflx_counter = 0

    # Building messages.

    def build_request(
        self,
        transaction_id: bytes,
        username: str,
        key: IntegrityKey,
        priority: int,
        *,
        use_candidate: bool,
        nomination: int | None = None,
    ) -> bytes:
        """Encode a check (or consent request) for the agent's current role."""
        agent = self._agent
        builder = MessageBuilder(_BINDING_REQUEST, transaction_id)
        builder.add_username(username)
        builder.add_priority(priority)
        if agent._controlling:
            builder.add_ice_controlling(agent._tie_breaker)
        else:
            builder.add_ice_controlled(agent._tie_breaker)
        if use_candidate:
            builder.add_use_candidate()
        if nomination is not None:
            builder.add(
                NOMINATION_ATTRIBUTE, (nomination & 0xFFFFFF).to_bytes(4, "big")
            )
        if agent._software is not None:
            builder.add_software(agent._software)
        data: bytes = builder.finish(key, fingerprint=True)
        return data

    def _respond(
        self, route: Route, request: Message, key: IntegrityKey, now: float
    ) -> None:
        builder = MessageBuilder(_BINDING_SUCCESS, request.transaction_id)
        builder.add_xor_mapped_address(route.remote[0], route.remote[1])
        data: bytes = builder.finish(key, fingerprint=True)
        self._agent._send_route(route, data, now)
        self._agent._stats["responses_sent"] += 1

    def _respond_role_conflict(
        self, route: Route, request: Message, key: IntegrityKey, now: float
    ) -> None:
        builder = MessageBuilder(_BINDING_ERROR, request.transaction_id)
        builder.add_error_code(ErrorCode.ROLE_CONFLICT, ErrorCode.ROLE_CONFLICT.reason)
        data: bytes = builder.finish(key, fingerprint=True)
        self._agent._send_route(route, data, now)
        self._agent._stats["role_conflicts_sent"] += 1

    # Sending checks.

    def start_check(self, record: PairRecord, now: float) -> None:
        """Send the check the table scheduled for ``record``."""
        agent = self._agent
        checks = agent._checks
        stream = record.stream
        remote = stream._remote
        if remote is None or stream._state == "failed":
            checks.mark_failed(record)
            return
        if is_passive_local(record) and record.connection is None:
            # RFC 6544 §6.2: never connect from a passive candidate.
            checks.mark_failed(record)
            return

        old = record.transaction
        if old is not None and not old.done:
            # A triggered check replaces one in flight (RFC 8445 §7.3.1.4);
            # the old one stops retransmitting, but a response still counts.
            old.retransmit = False
        use_candidate = agent._controlling and (
            agent._aggressive or checks.use_candidate(record)
        )
        if checks.use_candidate(record):
            checks.set_use_candidate(record, False)
        nomination = None
        if use_candidate and agent._renomination:
            agent._nomination_counter += 1
            nomination = agent._nomination_counter

        transaction_id = new_transaction_id()
        priority = prflx_priority(record.local)
        username = f"{remote.ufrag}:{stream._local.ufrag}"
        data = self.build_request(
            transaction_id,
            username,
            remote.key,
            priority,
            use_candidate=use_candidate,
            nomination=nomination,
        )
        reliable = record.transport.reliable
        rto = check_rto(agent._ta, checks.active_checks())
        schedule = [now + delay for delay in check_schedule(rto, reliable)[1:]]
        txn = Transaction(
            transaction_id=transaction_id,
            kind=TransactionKind.CHECK,
            pair=record,
            request=data,
            key=remote.key,
            controlling=agent._controlling,
            use_candidate=use_candidate,
            priority=priority,
            started=now,
            schedule=schedule,
            retransmit=not reliable,
        )
        record.transaction = txn
        agent._stats["checks_sent"] += 1
        _log.debug(
            "check %s on stream %d component %d: %s -> %s%s",
            transaction_id.hex(),
            stream.id,
            record.component_id,
            record.base,
            record.remote.address,
            " USE-CANDIDATE" if use_candidate else "",
        )

        route = agent._route_for_pair(record)
        if route is None:
            opens = record.local.tcp_type in (TcpType.ACTIVE, TcpType.SIMULTANEOUS_OPEN)
            if not (opens and agent._request_connection(record, now)):
                checks.mark_failed(record)
                record.transaction = None
                self._check_ended(record, now)
                return
            # RFC 6544 §7.1: an open connection to the peer is reused, else
            # the check goes out once the caller reports the new connection
            # (or fails with the transaction's timeout).
            route = agent._route_for_pair(record)
        agent._start_transaction(txn, route, now)

    def on_timeout(self, txn: Transaction, now: float) -> None:
        """Fail the pair of a check without an acceptable response (§7.2.5.4)."""
        record = txn.pair
        if record is None:
            return
        agent = self._agent
        if record.transaction is txn:
            record.transaction = None
        checks = agent._checks
        if checks.records.get(record.pair_id) is not record:
            return
        if (
            txn.use_candidate
            and agent._controlling
            and record.nomination_attempts < NOMINATION_ATTEMPTS
            and checks.state(record) is CandidatePairState.IN_PROGRESS
        ):
            # A valid pair whose nominating check went unanswered may only
            # have lost packets: nominate it again before giving up on it.
            record.nomination_attempts += 1
            _log.debug(
                "nominating check %s timed out; retrying", txn.transaction_id.hex()
            )
            checks.trigger(record, nominate=True)
            return
        if checks.state(record) is CandidatePairState.IN_PROGRESS:
            checks.mark_failed(record)
        _log.debug("check %s timed out", txn.transaction_id.hex())
        self._check_ended(record, now)

    def _check_ended(self, record: PairRecord, now: float) -> None:
        """Tidy up after a check failed: a failed pair is no longer valid."""
        checks = self._agent._checks
        if (
            checks.records.get(record.pair_id) is record
            and checks.is_valid(record)
            and checks.state(record) is CandidatePairState.FAILED
        ):
            checks.set_valid(record, False)
        component = record.stream.component(record.component_id)
        if component._nominating is record or (
            component._nominating is not None
            and component._nominating.valid_pair is record
        ):
            component._nominating = None
        record.stream._dirty = True

    # Responses.

    def on_response(self, route: Route, message: Message, now: float) -> None:
        """Match a Binding response to its check or consent request."""
        agent = self._agent
        txn = agent._transactions.get(message.transaction_id)
        if txn is None or txn.done or message.method != Method.BINDING:
            agent._drop("unknown_transaction", route, "response to no pending check")
            return
        if not message.check_integrity(txn.key):
            agent._drop("bad_integrity", route, "response fails MESSAGE-INTEGRITY")
            return
        if txn.kind == TransactionKind.CONSENT:
            agent._consent.on_response(txn, route, message, now)
            return

        record = txn.pair
        agent._finish_transaction(txn)
        if record is None or agent._checks.records.get(record.pair_id) is not record:
            return
        if record.transaction is txn:
            record.transaction = None
        checks = agent._checks
        expected = agent._route_for_pair(record)
        if (
            expected is None
            or expected.remote != route.remote
            or expected.local != route.local
            or expected.kind is not route.kind
        ):
            # RFC 8445 §7.2.5.2.1: the addresses are not symmetric.
            _log.debug(
                "response to check %s came from %s on %s, expected %s: pair failed",
                txn.transaction_id.hex(),
                route.remote,
                route.local,
                None if expected is None else expected.remote,
            )
            checks.mark_failed(record)
            self._check_ended(record, now)
            return

        if message.is_error:
            error = message.error_code()
            code = error[0] if error is not None else 0
            if code == ErrorCode.ROLE_CONFLICT:
                # RFC 8445 §7.2.5.1: switch only if the request carried the
                # role the agent still has, then check the pair again.
                if txn.controlling == agent._controlling:
                    agent._set_role(not txn.controlling)
                checks.trigger(record, nominate=txn.use_candidate)
                record.stream._dirty = True
                return
            _log.debug("check %s failed with error %d", txn.transaction_id.hex(), code)
            checks.mark_failed(record)
            self._check_ended(record, now)
            return

        mapped = message.xor_mapped_address()
        if mapped is None:
            checks.mark_failed(record)
            self._check_ended(record, now)
            return
        self._on_success(record, txn, canonical(mapped), route, now)

    def _on_success(
        self,
        record: PairRecord,
        txn: Transaction,
        mapped: tuple[str, int],
        route: Route,
        now: float,
    ) -> None:
        agent = self._agent
        checks = agent._checks
        stream = record.stream
        component = stream.component(record.component_id)
        checks.mark_succeeded(record)

        local_index = self._local_for_mapped(record, mapped, txn.priority)
        if local_index == record.local_index:
            valid = record
        else:
            valid = checks.add_pair(
                record.list_id,
                local_index,
                record.remote_index,
                state=PairState.SUCCEEDED,
            )
            valid.connection = record.connection
            if valid.nomination is None:
                valid.nomination = record.nomination
            valid.nominate_on_success |= record.nominate_on_success
            if checks.state(valid) is not CandidatePairState.SUCCEEDED:
                checks.mark_succeeded(valid)
        record.valid_pair = valid
        checks.set_valid(valid)
        agent._accept_data(route, component)
        if component._first_valid_at is None:
            component._first_valid_at = now
        stream._last_progress = now
        agent._stats["checks_succeeded"] += 1

        nominated = txn.use_candidate and agent._controlling
        if not agent._controlling and (
            record.nominate_on_success or valid.nominate_on_success
        ):
            nominated = True
        if nominated:
            checks.set_nominated(valid)
            nomination = valid.nomination if valid.nomination is not None else None
            agent._session.nominated(component, valid, now, nomination=nomination)
        if component._nominating is record:
            component._nominating = valid if not nominated else None
        stream._dirty = True

    def _local_for_mapped(
        self, record: PairRecord, mapped: tuple[str, int], priority: int
    ) -> int:
        """Return the index of the local candidate the mapped address names.

        Creates a local peer-reflexive candidate when no local candidate of
        the pair's component and transport has that address (§7.2.5.3.1).
        """
        agent = self._agent
        checks = agent._checks
        local = record.local
        if local.tcp_type is TcpType.ACTIVE and mapped[0] == record.base[0]:
            # The port of an active TCP candidate is a placeholder (9), and
            # each connection has its own ephemeral port.
            return record.local_index
        stored = checks.locals[record.list_id]
        for index, candidate in enumerate(stored):
            if (
                candidate.component == local.component
                and candidate.transport is local.transport
                and canonical(candidate.address) == mapped
            ):
                return index
        component = record.stream.component(record.component_id)
        for candidate in component._candidates:
            if (
                candidate.type is CandidateType.SERVER_REFLEXIVE
                and candidate.transport is local.transport
                and canonical(candidate.address) == mapped
                and canonical(candidate.base_address or candidate.address)
                == record.base
            ):
                index, _ = checks.add_local(record.list_id, candidate, pair=False)
                return index
        prflx = Candidate(
            foundation=compute_foundation(
                CandidateType.PEER_REFLEXIVE, record.base[0], None, local.transport
            ),
            component=local.component,
            transport=local.transport,
            priority=priority,
            address=mapped,
            type=CandidateType.PEER_REFLEXIVE,
            related_address=record.base,
            tcp_type=local.tcp_type,
            base_address=record.base,
        )
        _log.debug("learnt local peer-reflexive candidate %s", mapped)
        index, _ = checks.add_local(record.list_id, prflx, pair=False)
        return index

    # Requests.

    def on_request(self, route: Route, message: Message, now: float) -> None:
        """Authenticate a Binding request from the peer, respond, and act on it."""
        agent = self._agent
        username = message.username()
        if username is None or not message.has_integrity:
            agent._drop(
                "unauthenticated", route, "request without USERNAME or integrity"
            )
            return
        local_ufrag, _, _ = username.partition(":")
        entry = agent._ufrags.get(local_ufrag)
        if entry is None:
            agent._drop("unknown_username", route, "USERNAME names no local ufrag")
            return
        stream, credentials = entry
        component = agent._component_of_route(route)
        if component is None or component._stream is not stream:
            agent._drop("wrong_stream", route, "ufrag of another stream or component")
            return
        if not message.check_integrity(credentials.key):
            agent._drop("bad_integrity", route, "request fails MESSAGE-INTEGRITY")
            return

        if not self._resolve_role_conflict(route, message, credentials, now):
            return
        self._respond(route, message, credentials.key, now)
        agent._accept_data(route, component)
        if credentials is not stream._local:
            # A check under the previous generation's credentials: the peer
            # still checks consent of the pair selected before the restart.
            return

        priority = message.priority()
        if priority is None or not 0 < priority < 2**31:
            agent._drop("bad_priority", route, "request without a valid PRIORITY")
            return
        use_candidate = message.use_candidate()
        nomination = read_nomination(message)
        if agent._lite:
            self._lite_request(
                stream, component, route, priority, use_candidate, nomination, now
            )
            return
        if stream._remote is None:
            stream._early.append(
                EarlyCheck(route, component, priority, use_candidate, nomination)
            )
            return
        self.process_request(
            stream, component, route, priority, use_candidate, nomination, now
        )

    def _resolve_role_conflict(
        self, route: Route, message: Message, credentials: Credentials, now: float
    ) -> bool:
        """Apply RFC 8445 §7.3.1.1; return False when the response was a 487."""
        agent = self._agent
        if agent._controlling:
            theirs = message.ice_controlling()
            if theirs is None:
                return True
            if agent._tie_breaker >= theirs:
                self._respond_role_conflict(route, message, credentials.key, now)
                return False
            agent._set_role(False)
            return True
        theirs = message.ice_controlled()
        if theirs is None:
            return True
        if agent._tie_breaker >= theirs:
            agent._set_role(True)
            return True
        self._respond_role_conflict(route, message, credentials.key, now)
        return False

    def process_request(
        self,
        stream: Stream,
        component: Component,
        route: Route,
        priority: int,
        use_candidate: bool,
        nomination: int | None,
        now: float,
    ) -> None:
        """Learn the remote candidate, queue the triggered check, nominate."""
        agent = self._agent
        checks = agent._checks
        if stream._state == "failed":
            return
        completed = component._current_selection() is not None
        if completed and not use_candidate:
            return
        list_id = stream._list_id
        local_index = agent._local_index_for_route(stream, route)
        if local_index is None:
            return
        remote_index = self._remote_for_route(
            stream, component, route, priority, nominating=use_candidate
        )
        if remote_index is None:
            return
        record = checks.find(list_id, local_index, remote_index)
        if record is None:
            if checks.pair_count(list_id) >= agent._max_pairs:
                _log.debug("check list full: no triggered check for %s", route.remote)
                return
            record = checks.add_pair(
                list_id, local_index, remote_index, state=PairState.WAITING
            )
        if route.connection is not None:
            record.connection = route.connection
        record.received_check = True
        stream._last_progress = now

        state = checks.state(record)
        if use_candidate and not agent._controlling:
            if state is CandidatePairState.SUCCEEDED:
                valid = record.valid_pair or record
                checks.set_nominated(valid)
                agent._session.nominated(component, valid, now, nomination=nomination)
                stream._dirty = True
                return
            record.nominate_on_success = True
            record.nomination = nomination
        if state is CandidatePairState.SUCCEEDED:
            return
        if state is CandidatePairState.IN_PROGRESS and record.transaction is not None:
            record.transaction.retransmit = False
        checks.trigger(record)
        stream._dirty = True

    def replay_early_checks(self, stream: Stream, now: float) -> None:
        """Handle the checks that arrived before the remote credentials."""
        early, stream._early = stream._early, []
        for check in early:
            self.process_request(
                stream,
                check.component,
                check.route,
                check.priority,
                check.use_candidate,
                check.nomination,
                now,
            )

    def _remote_for_route(
        self,
        stream: Stream,
        component: Component,
        route: Route,
        priority: int,
        *,
        nominating: bool,
    ) -> int | None:
        """Return the remote candidate index for the request's source address.

        Adds a remote peer-reflexive candidate (RFC 8445 §7.3.1.3) when no
        remote candidate has that address and transport. Requests arriving
        on one local base teach at most MAX_REMOTE_PRFLX of them, unless
        they nominate; past that the result is None.
        """
        checks = self._agent._checks
        transport = route.transport
        for index, candidate in enumerate(checks.remotes[stream._list_id]):
            if (
                candidate.component == component.id
                and candidate.transport is transport
                and candidate.address == route.remote
            ):
                return index
        key = (component.id, route.base)
        learnt = stream._prflx_learnt.get(key, 0)
        if learnt >= MAX_REMOTE_PRFLX and not nominating:
            # Two address-dependent NATs can open a new mapping for every
            # triggered check, so that each check teaches a new candidate.
            # Without a bound, that loop starves every other pair.
            _log.debug("no more remote peer-reflexive candidates for %s", route.remote)
            return None
        stream._prflx_learnt[key] = learnt + 1
        self._prflx_counter += 1
        tcp_type = None
        connection = route.connection
        if connection is not None:
            # Over a connection the peer opened, its candidate is active;
            # over one this agent opened, passive. Simultaneous-open pairs
            # with simultaneous-open.
            if connection.socket.tcp_type is TcpType.SIMULTANEOUS_OPEN:
                tcp_type = TcpType.SIMULTANEOUS_OPEN
            elif connection.requested:
                tcp_type = TcpType.PASSIVE
            else:
                tcp_type = TcpType.ACTIVE
        candidate = Candidate(
            foundation=f"prflx{self._prflx_counter}",
            component=component.id,
            transport=transport,
            priority=priority,
            address=route.remote,
            type=CandidateType.PEER_REFLEXIVE,
            tcp_type=tcp_type,
        )
        _log.debug("learnt remote peer-reflexive candidate %s", route.remote)
        index, _ = checks.add_remote(stream._list_id, candidate, pair=False)
        return index

    def _lite_request(
        self,
        stream: Stream,
        component: Component,
        route: Route,
        priority: int,
        use_candidate: bool,
        nomination: int | None,
        now: float,
    ) -> None:
        """ICE-lite (RFC 8445 §8.2): a nominating check selects its pair at once."""
        if not use_candidate or stream._remote is None:
            return
        agent = self._agent
        local = agent._local_candidate_for_route(route)
        if local is None:
            return
        remote = None
        for candidate in stream._remote_candidates:
            if (
                candidate.component == component.id
                and candidate.transport is route.transport
                and candidate.address == route.remote
            ):
                remote = candidate
                break
        if remote is None:
            self._prflx_counter += 1
            remote = Candidate(
                foundation=f"prflx{self._prflx_counter}",
                component=component.id,
                transport=route.transport,
                priority=priority,
                address=route.remote,
                type=CandidateType.PEER_REFLEXIVE,
                tcp_type=TcpType.ACTIVE if route.connection is not None else None,
            )
        agent._session.nominated_lite(component, local, remote, route, now, nomination)
