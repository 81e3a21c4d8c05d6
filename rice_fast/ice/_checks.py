"""The agent's view of its check lists, over the shared check list table.

``CheckLists`` is the one interface the agent uses for pair formation,
pair states, the triggered-check queue, Ta pacing and the valid and
nominated flags. The table itself (``rice_fast.ice.checklist``) stores
candidates and pairs by index in numpy columns; this module keeps the
``Candidate`` objects in the same order and a ``PairRecord`` per pair id
for what the table does not hold: the transaction in flight, the TCP
connection, and the controlled side's pending nomination.

Connectivity-check transactions are timed here, not by the table:
RFC 8445 §14.3 lets the initial RTO grow with the number of checks still
to run, which a per-agent constant cannot express. ``check_schedule``
documents the choice.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from rice_fast.ice.candidate import Candidate, CandidateType, TcpType
from rice_fast.ice.checklist import (
    CandidateArrays,
    CheckListTable,
    FoundationIds,
    PairState,
    ReferenceCheckListTable,
)
from rice_fast.ice.events import CandidatePair, CandidatePairState
from rice_fast.stun import IntegrityKey
from rice_fast.stun.transport import Address, TransportType

if TYPE_CHECKING:
    from rice_fast.ice._paths import TcpConnection
    from rice_fast.ice.stream import Stream

__all__ = [
    "CHECK_MAX_TRANSMISSIONS",
    "CHECK_MAX_RTO",
    "CheckLists",
    "PairRecord",
    "Transaction",
    "TransactionKind",
    "canonical",
    "check_rto",
    "check_schedule",
]

CHECK_MAX_TRANSMISSIONS: Final = 7
"""Transmissions of one check over UDP, the first one included (Rc)."""

CHECK_MAX_RTO: Final = 3.0
"""Cap in seconds on the doubling retransmission interval of a check."""

MIN_RTO: Final = 0.5
"""The floor of the initial RTO of a check (RFC 8445 §14.3)."""

_STATES: Final = {
    PairState.FROZEN: CandidatePairState.FROZEN,
    PairState.WAITING: CandidatePairState.WAITING,
    PairState.IN_PROGRESS: CandidatePairState.IN_PROGRESS,
    PairState.SUCCEEDED: CandidatePairState.SUCCEEDED,
    PairState.FAILED: CandidatePairState.FAILED,
}


@lru_cache(maxsize=4096)
def canonical(address: Address) -> Address:
    """Return ``address`` with its host in canonical IP text, if it is an IP.

    Host names (mDNS names) are kept as they are. The cache makes the
    per-packet cost a dictionary lookup.
    """
    host, port = address[0], address[1]
    try:
        return (str(ipaddress.ip_address(host)), int(port))
    except ValueError:
        return (host, int(port))


def check_rto(ta: float, active_checks: int) -> float:
    """Return the initial RTO of a new check (RFC 8445 §14.3).

    The RFC sets RTO = max(500 ms, Ta * N), where N counts the checks in
    the Waiting and In-Progress states across every check list: the more
    checks share the pacing, the later a retransmission is useful.
    """
    return max(MIN_RTO, ta * active_checks)


def check_schedule(rto: float, reliable: bool) -> tuple[float, ...]:
    """Return the send times of a check, relative to its first transmission,
    followed by its final timeout.

    Over UDP a check is sent CHECK_MAX_TRANSMISSIONS times, the interval
    starting at ``rto`` and doubling up to CHECK_MAX_RTO, and fails one
    capped interval after the last transmission: with RTO 500 ms the sends
    are at 0, 0.5, 1.5, 3.5, 6.5, 9.5 and 12.5 s and the failure at
    15.5 s. This is shorter than the 39.5 s of RFC 8489 §6.2.1 because a
    check only has to outlast the other side's checks, and RFC 8445 §14.3
    leaves the count to the implementation. Over TCP a check is sent once
    and fails at the same total time.
    """
    times = [0.0]
    interval = rto
    for _ in range(CHECK_MAX_TRANSMISSIONS - 1):
        times.append(times[-1] + interval)
        interval = min(interval * 2, CHECK_MAX_RTO)
    timeout = times[-1] + interval
    if reliable:
        return (0.0, timeout)
    times.append(timeout)
    return tuple(times)


class TransactionKind:
    """The purpose of one of the agent's Binding requests."""

    CHECK: Final = 0
    CONSENT: Final = 1


@dataclass(slots=True, eq=False)
class Transaction:
    """One Binding request of the agent, from first send to its outcome.

    ``controlling`` is the role the request carried, which decides what a
    487 response means (RFC 8445 §7.2.5.1). ``priority`` is the PRIORITY
    sent, the priority of a peer-reflexive candidate learnt from the
    response (§7.2.5.3.1). ``schedule`` lists the remaining send times
    and, last, the final timeout, all absolute.
    """

    transaction_id: bytes
    kind: int
    pair: PairRecord | None
    request: bytes
    key: IntegrityKey
    controlling: bool
    use_candidate: bool
    priority: int
    started: float
    schedule: list[float]
    transmissions: int = 0
    timer_generation: int = 0
    retransmit: bool = True
    done: bool = False
    consent_path: object | None = None

    @property
    def next_deadline(self) -> float:
        """The next send time, or the final timeout once all are sent."""
        return self.schedule[0]


@dataclass(slots=True, eq=False)
class PairRecord:
    """What the agent keeps about one pair id of the table.

    ``base`` is the canonical address the pair's checks and data leave
    from: the socket of a host candidate, the base of a peer-reflexive
    one, the relayed address of a relayed one, and for TCP the listening
    address (passive, simultaneous-open) or ``(IP, 9)`` (active).
    """

    pair_id: int
    list_id: int
    stream: Stream
    local: Candidate
    remote: Candidate
    local_index: int
    remote_index: int
    base: Address
    public: CandidatePair = field(init=False)
    transaction: Transaction | None = None
    connection: TcpConnection | None = None
    connecting: bool = False
    nominate_on_success: bool = False
    nomination: int | None = None
    nomination_attempts: int = 1
    valid_pair: PairRecord | None = None
    received_check: bool = False

    def __post_init__(self) -> None:
        self.public = CandidatePair(self.local, self.remote)

    @property
    def component_id(self) -> int:
        """The component both candidates belong to."""
        return self.local.component

    @property
    def transport(self) -> TransportType:
        """UDP or TCP, the transport of both candidates."""
        return self.local.transport


def base_of(candidate: Candidate) -> Address:
    """Return the canonical address a local candidate sends from."""
    if candidate.type is CandidateType.RELAYED:
        return canonical(candidate.address)
    base = candidate.base_address
    return canonical(base if base is not None else candidate.address)


class CheckLists:
    """The check lists of one agent: one table list per data stream.

    Candidates are appended to a list and never removed; ``locals`` and
    ``remotes`` hold them in table order. Only host, relayed and
    peer-reflexive local candidates are stored, because the table would
    replace a server-reflexive one by its base anyway (RFC 8445 §6.1.2.4).
    """

    def __init__(
        self,
        *,
        controlling: bool,
        ta: float,
        max_pairs: int,
        table: CheckListTable | ReferenceCheckListTable | None = None,
    ) -> None:
        self.table: CheckListTable | ReferenceCheckListTable = (
            table if table is not None else CheckListTable(max_pairs=max_pairs)
        )
        self.agent_id = self.table.add_agent(
            controlling=controlling, ta=ta, rto=MIN_RTO, max_pairs=max_pairs
        )
        self.ta = ta
        self.foundations = FoundationIds()
        self.records: dict[int, PairRecord] = {}
        self.locals: dict[int, list[Candidate]] = {}
        self.remotes: dict[int, list[Candidate]] = {}
        self.owners: dict[int, Stream] = {}
        self.started = False

    # Lists.

    def add_list(self, stream: Stream) -> int:
        """Create an empty check list for ``stream`` and return its id."""
        empty = CandidateArrays.from_candidates([], self.foundations, local=True)
        remote = CandidateArrays.from_candidates([], self.foundations, local=False)
        list_id = self.table.add_list(self.agent_id, empty, remote)
        self.table.set_running(list_id, False)
        self.locals[list_id] = []
        self.remotes[list_id] = []
        self.owners[list_id] = stream
        return list_id

    def remove_list(self, list_id: int) -> None:
        """Drop a check list with its candidates, pairs and records."""
        self.table.remove_list(list_id)
        for pair_id in [p for p, r in self.records.items() if r.list_id == list_id]:
            del self.records[pair_id]
        self.locals.pop(list_id, None)
        self.remotes.pop(list_id, None)
        self.owners.pop(list_id, None)

    def set_running(self, list_id: int, running: bool, now: float) -> None:
        """Let the list's pairs be checked, starting the agent on first use."""
        self.table.set_running(list_id, running)
        if running and not self.started:
            self.started = True
            self.table.start(self.agent_id, now)

    def set_role(self, controlling: bool) -> None:
        """Recompute every pair priority for the new role."""
        self.table.set_role(self.agent_id, controlling)

    def remove_agent(self) -> None:
        """Remove the agent and everything it owns from the table."""
        self.table.remove_agent(self.agent_id)
        self.records.clear()
        self.locals.clear()
        self.remotes.clear()
        self.owners.clear()

    # Candidates and pairs.

    def add_local(
        self, list_id: int, candidate: Candidate, *, pair: bool = True
    ) -> tuple[int, list[PairRecord]]:
        """Store a local candidate; return its index and the new pairs."""
        stored = self.locals[list_id]
        index = len(stored)
        arrays = CandidateArrays.from_candidates(
            [candidate], self.foundations, local=True, existing=stored
        )
        new_ids = self.table.add_local_candidates(list_id, arrays, pair=pair)
        stored.append(candidate)
        return index, self._records_for(list_id, new_ids)

    def add_remote(
        self, list_id: int, candidate: Candidate, *, pair: bool = True
    ) -> tuple[int, list[PairRecord]]:
        """Store a remote candidate; return its index and the new pairs."""
        stored = self.remotes[list_id]
        index = len(stored)
        arrays = CandidateArrays.from_candidates(
            [candidate], self.foundations, local=False
        )
        new_ids = self.table.add_remote_candidates(list_id, arrays, pair=pair)
        stored.append(candidate)
        return index, self._records_for(list_id, new_ids)

    def add_pair(
        self,
        list_id: int,
        local_index: int,
        remote_index: int,
        *,
        state: PairState = PairState.WAITING,
    ) -> PairRecord:
        """Return the record of the pair of two stored candidates, adding it."""
        pair_id = self.table.add_pair(list_id, local_index, remote_index, state=state)
        record = self.records.get(pair_id)
        if record is None:
            record = self._new_record(list_id, pair_id, local_index, remote_index)
        return record

    def find(
        self, list_id: int, local_index: int, remote_index: int
    ) -> PairRecord | None:
        """Return the record of an existing pair, or None."""
        pair_id = self.table.find_pair(list_id, local_index, remote_index)
        if pair_id < 0:
            return None
        record = self.records.get(pair_id)
        if record is None:
            record = self._new_record(list_id, pair_id, local_index, remote_index)
        return record

    def pair_count(self, list_id: int) -> int:
        """Return how many pairs the list has."""
        return len(self.table.pairs(list_id))

    def pairs(self, list_id: int) -> Iterator[PairRecord]:
        """Yield the records of a list's pairs in check-list order."""
        for pair_id in self.table.pairs(list_id):
            record = self.records.get(int(pair_id))
            if record is None:
                info = self.table.pair(int(pair_id))
                record = self._new_record(
                    list_id, int(pair_id), info.local, info.remote
                )
            yield record

    def state(self, record: PairRecord) -> CandidatePairState:
        """Return the table state of a pair."""
        return _STATES[PairState(self.table.pair_state(record.pair_id))]

    def priority(self, record: PairRecord) -> int:
        """Return the pair priority for the agent's current role."""
        return int(self.table.pair(record.pair_id).priority)

    def is_valid(self, record: PairRecord) -> bool:
        """Return whether the pair is in the valid list."""
        return bool(self.table.pair(record.pair_id).valid)

    def is_nominated(self, record: PairRecord) -> bool:
        """Return whether the pair is nominated."""
        return bool(self.table.pair(record.pair_id).nominated)

    def use_candidate(self, record: PairRecord) -> bool:
        """Return whether the pair's next check carries USE-CANDIDATE."""
        return bool(self.table.pair(record.pair_id).use_candidate)

    def active_checks(self) -> int:
        """Count the agent's pairs that are Waiting or In-Progress."""
        table = self.table
        mine = table.column("in_use").astype(bool) & (
            table.column("agent_id") == self.agent_id
        )
        state = table.column("state")
        active = (state == PairState.WAITING) | (state == PairState.IN_PROGRESS)
        return int(np.count_nonzero(mine & active))

    # Checks.

    def next_check(self, now: float) -> PairRecord | None:
        """Return the pair to check now under Ta pacing, or None."""
        chosen = self.table.next_check(self.agent_id, now)
        if chosen is None:
            return None
        list_id, pair_id = chosen
        record = self.records.get(pair_id)
        if record is None:
            info = self.table.pair(pair_id)
            record = self._new_record(list_id, pair_id, info.local, info.remote)
        return record

    def next_deadline(self) -> float:
        """When the next paced check may go out; ``math.inf`` if none waits."""
        if not self.started:
            return math.inf
        return float(self.table.next_deadline(self.agent_id))

    def record_transaction(self, now: float) -> None:
        """Count a gathering transaction against the shared Ta pacing."""
        self.table.record_transaction(self.agent_id, now)

    def trigger(self, record: PairRecord, *, nominate: bool = False) -> bool:
        """Queue a triggered check (RFC 8445 §7.3.1.4); see the table's rules."""
        return bool(self.table.trigger(record.pair_id, nominate=nominate))

    def mark_succeeded(self, record: PairRecord) -> None:
        """Set Succeeded and unfreeze the foundation in every list."""
        self.table.mark_succeeded(record.pair_id)

    def mark_failed(self, record: PairRecord) -> None:
        """Set Failed."""
        self.table.mark_failed(record.pair_id)

    def set_valid(self, record: PairRecord, valid: bool = True) -> None:
        """Add the pair to the valid list, or take it out."""
        self.table.set_valid(record.pair_id, valid)

    def set_nominated(self, record: PairRecord, nominated: bool = True) -> None:
        """Set or clear the nominated flag."""
        self.table.set_nominated(record.pair_id, nominated)

    def set_use_candidate(self, record: PairRecord, value: bool) -> None:
        """Set whether the pair's next check carries USE-CANDIDATE."""
        self.table.set_use_candidate(record.pair_id, value)

    def list_state(self, list_id: int, components: int) -> str:
        """Return "running", "completed" or "failed" for a list."""
        return str(self.table.list_state(list_id, components))

    # Internals.

    def _records_for(
        self, list_id: int, pair_ids: Sequence[int] | npt.NDArray[np.int32]
    ) -> list[PairRecord]:
        records = []
        for raw in pair_ids:
            pair_id = int(raw)
            info = self.table.pair(pair_id)
            records.append(self._new_record(list_id, pair_id, info.local, info.remote))
        return records

    def _new_record(
        self, list_id: int, pair_id: int, local_index: int, remote_index: int
    ) -> PairRecord:
        local = self.locals[list_id][local_index]
        remote = self.remotes[list_id][remote_index]
        record = PairRecord(
            pair_id=pair_id,
            list_id=list_id,
            stream=self.owners[list_id],
            local=local,
            remote=remote,
            local_index=local_index,
            remote_index=remote_index,
            base=base_of(local),
        )
        self.records[pair_id] = record
        return record


def is_passive_local(record: PairRecord) -> bool:
    """Return whether the pair's local candidate is a passive TCP candidate.

    RFC 6544 §6.2: an agent never opens a connection from a passive
    candidate, so such a pair is checked only over a connection the peer
    opened, which arrives with a peer-reflexive remote candidate.
    """
    return record.local.tcp_type is TcpType.PASSIVE
