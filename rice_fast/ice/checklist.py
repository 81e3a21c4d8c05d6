"""ICE check lists of many agents in one table, and a pure-Python reference.

Theory of operation: ``CheckListTable`` keeps every candidate pair of every
check list of every agent (one agent per ICE session) in numpy columns,
compiled by Cython in ``rice_fast.ice._checklist``. Candidates enter as
``CandidateArrays``, whose foundations are small integers from a
``FoundationIds`` map, and pairs are referred to by integer ids. One call,
``schedule(now)``, picks the next connectivity check of every agent whose Ta
pacing deadline has passed, so a server can advance thousands of sessions
at once. ``ReferenceCheckListTable`` implements the same rules with plain
Python objects; the property tests hold the two to identical results.

The rules, from RFC 8445 §6.1.2 to §6.1.4 and §7.2.5 and RFC 8838 §10-§12:

- Pairing: a local and a remote candidate pair when they have the same
  component, transport and address family and are both IPv6 link-local or
  both not. Over TCP their types must also match: active with passive,
  passive with active, simultaneous-open with simultaneous-open. A
  reflexive local candidate is replaced by its base, keeping the pair
  priority computed from the original candidate. Of pairs with the same
  local and remote candidate, the one with the highest priority stays.
  Check-list order is
  priority descending, then component, local index and remote index
  ascending. A list keeps at most ``max_pairs`` pairs.
- Initial states (``start``): for each foundation (local and remote
  foundation ids), the first pair by list order, lowest component and
  highest priority becomes WAITING; the others stay FROZEN.
- Trickle: a call forms the pairs of its new candidates by the same rules
  and considers only the first ``max_pairs`` of them. New pairs redundant
  with an existing pair are dropped (a FROZEN or WAITING existing pair takes
  a higher priority from the new one). A full list evicts its
  lowest-priority FAILED pair, else its lowest-priority FROZEN or WAITING
  pair below the new pair's priority, else drops the new pair. After
  ``start`` a new pair is WAITING if it is the first of its foundation in
  the agent or a pair of its foundation SUCCEEDED.
- Choosing a check, for the agent's lists in round-robin order from the one
  after the last checked: the triggered queue first, then the first WAITING
  pair; if the list has none, each FROZEN pair whose foundation has no
  WAITING or IN_PROGRESS pair in the agent is unfrozen in list order and
  the first of them is checked. Lists with nothing to check are skipped.
  After a check the agent waits Ta; an agent with nothing to check goes
  idle until a call changes its pairs.
- A success unfreezes every FROZEN pair of the same foundation in the agent.
"""

from __future__ import annotations

import copy
import enum
import ipaddress
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rice_fast.ice import _checklist
from rice_fast.ice._checklist import (
    DEFAULT_MAX_PAIRS,
    TCP_ACTIVE,
    TCP_NONE,
    TCP_PASSIVE,
    TCP_SO,
    TRANSPORT_TCP,
    TRANSPORT_UDP,
    CheckListCore,
    CheckListError,
)
from rice_fast.ice.candidate import Candidate, CandidateType, TcpType
from rice_fast.stun.transport import Address, TransportType

__all__ = [
    "DEFAULT_MAX_PAIRS",
    "DEFAULT_RTO",
    "DEFAULT_TA",
    "TCP_ACTIVE",
    "TCP_NONE",
    "TCP_PASSIVE",
    "TCP_SO",
    "TRANSPORT_TCP",
    "TRANSPORT_UDP",
    "CheckListError",
    "CheckListState",
    "PairState",
    "CandidateArrays",
    "CheckListTable",
    "FormedPairs",
    "FoundationIds",
    "PairInfo",
    "ReferenceCheckListTable",
    "Retransmits",
    "ScheduledChecks",
    "form_pairs",
]

DEFAULT_TA = 0.05
"""RFC 8445 §14.2: the default pacing interval between checks, in seconds."""

DEFAULT_RTO = 0.5
"""RFC 8445 §14.3: the minimum retransmission timeout of a check, in seconds."""

_MAX_PRIORITY = 2**31 - 1
_MAX_COMPONENT = 256


class PairState(enum.IntEnum):
    """The state of a candidate pair (RFC 8445 §6.1.2.6), as in the ``state`` column."""

    FROZEN = _checklist.FROZEN
    WAITING = _checklist.WAITING
    IN_PROGRESS = _checklist.IN_PROGRESS
    SUCCEEDED = _checklist.SUCCEEDED
    FAILED = _checklist.FAILED


class CheckListState(enum.StrEnum):
    """The state of a check list (RFC 8445 §6.1.2.1)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


_LIST_STATES = {
    _checklist.LIST_RUNNING: CheckListState.RUNNING,
    _checklist.LIST_COMPLETED: CheckListState.COMPLETED,
    _checklist.LIST_FAILED: CheckListState.FAILED,
}


# Candidates as arrays


class FoundationIds:
    """Map the foundation strings of one agent to small integers.

    Local and remote foundations are separate namespaces, because the two
    agents choose theirs independently.
    """

    __slots__ = ("_local", "_remote")

    def __init__(self) -> None:
        self._local: dict[str, int] = {}
        self._remote: dict[str, int] = {}

    def local(self, foundation: str) -> int:
        """Return the id of a local foundation, adding it if new."""
        return self._local.setdefault(foundation, len(self._local))

    def remote(self, foundation: str) -> int:
        """Return the id of a remote foundation, adding it if new."""
        return self._remote.setdefault(foundation, len(self._remote))


def _column_of(
    name: str, value: npt.ArrayLike, dtype: type[np.generic], size: int
) -> npt.NDArray[np.generic]:
    array = np.asarray(value)
    if array.ndim == 0:
        array = np.full(size, array)
    if array.shape != (size,):
        raise CheckListError(
            f"candidate column {name!r} has shape {array.shape}, expected ({size},)"
        )
    if array.size and not np.can_cast(array.dtype, np.int64) and dtype is not np.bool_:
        raise CheckListError(f"candidate column {name!r} has dtype {array.dtype}")
    return array


def _check_range(
    name: str, array: npt.NDArray[np.generic], low: int, high: int
) -> None:
    wide = array.astype(np.int64)
    bad = np.flatnonzero((wide < low) | (wide > high))
    if bad.size:
        index = int(bad[0])
        raise CheckListError(
            f"candidate {index} has {name} {int(wide[index])}, expected {low} to {high}"
        )


@dataclass(frozen=True, slots=True)
class CandidateArrays:
    """Candidates as columns, one entry per candidate.

    ``transport`` is ``TRANSPORT_UDP`` or ``TRANSPORT_TCP``. ``tcp_type`` is
    ``TCP_NONE`` for UDP and ``TCP_ACTIVE``, ``TCP_PASSIVE`` or ``TCP_SO`` for
    TCP. ``family`` is 4, 6, or 0 for a host name not resolved yet, and such
    a candidate is never paired. ``link_local`` marks IPv6 link-local
    addresses. ``base`` (local candidates only) is the index of the
    candidate's base among the check list's local candidates, or -1 for a
    candidate that is its own base (host and relayed).
    """

    component: npt.NDArray[np.uint16]
    transport: npt.NDArray[np.uint8]
    tcp_type: npt.NDArray[np.uint8]
    family: npt.NDArray[np.uint8]
    link_local: npt.NDArray[np.bool_]
    priority: npt.NDArray[np.uint32]
    foundation: npt.NDArray[np.int32]
    base: npt.NDArray[np.int32]

    def __len__(self) -> int:
        return int(self.priority.shape[0])

    @classmethod
    def build(
        cls,
        *,
        component: npt.ArrayLike,
        priority: npt.ArrayLike,
        foundation: npt.ArrayLike,
        transport: npt.ArrayLike = TRANSPORT_UDP,
        tcp_type: npt.ArrayLike = TCP_NONE,
        family: npt.ArrayLike = 4,
        link_local: npt.ArrayLike = False,
        base: npt.ArrayLike = -1,
    ) -> CandidateArrays:
        """Check and convert the columns; scalars apply to every candidate.

        Raises:
            CheckListError: a column has the wrong length or a value is out
                of range. The ranges are: component 1 to 256, priority 1 to
                2**31 - 1, foundation 0 or more, base -1 or more, family 0,
                4 or 6, and a TCP type with TCP only.
        """
        size = int(np.asarray(priority).size)
        columns = {
            "component": _column_of("component", component, np.uint16, size),
            "transport": _column_of("transport", transport, np.uint8, size),
            "tcp_type": _column_of("tcp_type", tcp_type, np.uint8, size),
            "family": _column_of("family", family, np.uint8, size),
            "priority": _column_of("priority", priority, np.uint32, size),
            "foundation": _column_of("foundation", foundation, np.int32, size),
            "base": _column_of("base", base, np.int32, size),
        }
        _check_range("component", columns["component"], 1, _MAX_COMPONENT)
        _check_range("transport", columns["transport"], TRANSPORT_UDP, TRANSPORT_TCP)
        _check_range("tcp_type", columns["tcp_type"], TCP_NONE, TCP_SO)
        _check_range("priority", columns["priority"], 1, _MAX_PRIORITY)
        _check_range("foundation", columns["foundation"], 0, 2**31 - 1)
        _check_range("base", columns["base"], -1, 2**31 - 1)
        families = columns["family"].astype(np.int64)
        bad = np.flatnonzero((families != 0) & (families != 4) & (families != 6))
        if bad.size:
            index = int(bad[0])
            raise CheckListError(
                f"candidate {index} has family {int(families[index])},"
                " expected 0, 4 or 6"
            )
        is_tcp = columns["transport"].astype(np.int64) == TRANSPORT_TCP
        has_type = columns["tcp_type"].astype(np.int64) != TCP_NONE
        bad = np.flatnonzero(is_tcp != has_type)
        if bad.size:
            index = int(bad[0])
            raise CheckListError(
                f"candidate {index} has transport {int(columns['transport'][index])}"
                f" with tcp_type {int(columns['tcp_type'][index])}: TCP needs a TCP"
                " type and UDP none"
            )
        links = np.asarray(link_local)
        if links.ndim == 0:
            links = np.full(size, links)
        if links.shape != (size,):
            raise CheckListError(
                f"candidate column 'link_local' has shape {links.shape},"
                f" expected ({size},)"
            )
        return cls(
            component=columns["component"].astype(np.uint16),
            transport=columns["transport"].astype(np.uint8),
            tcp_type=columns["tcp_type"].astype(np.uint8),
            family=columns["family"].astype(np.uint8),
            link_local=links.astype(np.bool_),
            priority=columns["priority"].astype(np.uint32),
            foundation=columns["foundation"].astype(np.int32),
            base=columns["base"].astype(np.int32),
        )

    @classmethod
    def from_candidates(
        cls,
        candidates: Sequence[Candidate],
        foundations: FoundationIds,
        *,
        local: bool,
        existing: Sequence[Candidate] = (),
    ) -> CandidateArrays:
        """Convert ``Candidate`` values, in order, to columns.

        A local server- or peer-reflexive candidate gets as base the host or
        relayed candidate, among ``existing`` and ``candidates``, that has
        its ``base_address`` (else its ``related_address``) and the same
        component and transport. ``existing`` are the list's local
        candidates added before, and base indexes count them first. Without
        such a candidate the base is -1.

        Raises:
            CheckListError: a candidate uses TLS, which ICE never pairs.
        """
        everything = [*existing, *candidates]
        offset = len(existing)
        rows: list[tuple[int, int, int, int, bool, int, int, int]] = []
        for index, candidate in enumerate(candidates):
            transport = _TRANSPORT_CODES.get(candidate.transport)
            if transport is None:
                raise CheckListError(
                    f"candidate {index} has transport {candidate.transport.value},"
                    " expected udp or tcp"
                )
            family, link_local = _family_of(candidate.address)
            if local:
                foundation = foundations.local(candidate.foundation)
                base = _base_index(candidate, everything, offset + index)
            else:
                foundation = foundations.remote(candidate.foundation)
                base = -1
            tcp_type = TCP_NONE
            if candidate.tcp_type is not None:
                tcp_type = _TCP_TYPE_CODES[candidate.tcp_type]
            rows.append(
                (
                    candidate.component,
                    transport,
                    tcp_type,
                    family,
                    link_local,
                    candidate.priority,
                    foundation,
                    base,
                )
            )
        columns = list(zip(*rows, strict=True)) if rows else [()] * 8
        return cls.build(
            component=np.array(columns[0], np.uint16),
            transport=np.array(columns[1], np.uint8),
            tcp_type=np.array(columns[2], np.uint8),
            family=np.array(columns[3], np.uint8),
            link_local=np.array(columns[4], np.bool_),
            priority=np.array(columns[5], np.uint32),
            foundation=np.array(columns[6], np.int32),
            base=np.array(columns[7], np.int32),
        )


_TRANSPORT_CODES = {TransportType.UDP: TRANSPORT_UDP, TransportType.TCP: TRANSPORT_TCP}
_TCP_TYPE_CODES = {
    TcpType.ACTIVE: TCP_ACTIVE,
    TcpType.PASSIVE: TCP_PASSIVE,
    TcpType.SIMULTANEOUS_OPEN: TCP_SO,
}


def _ip_of(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _family_of(address: Address) -> tuple[int, bool]:
    ip = _ip_of(address[0])
    if ip is None:
        return 0, False
    return ip.version, ip.version == 6 and ip.is_link_local


def _same_address(a: Address, b: Address) -> bool:
    ip_a = _ip_of(a[0])
    ip_b = _ip_of(b[0])
    if ip_a is None or ip_b is None:
        return a == b
    return ip_a == ip_b and a[1] == b[1]


def _base_index(candidate: Candidate, everything: Sequence[Candidate], own: int) -> int:
    if candidate.type not in (
        CandidateType.SERVER_REFLEXIVE,
        CandidateType.PEER_REFLEXIVE,
    ):
        return -1
    address = candidate.base_address or candidate.related_address
    if address is None:
        return -1
    for index, other in enumerate(everything):
        if (
            index != own
            and other.type in (CandidateType.HOST, CandidateType.RELAYED)
            and other.component == candidate.component
            and other.transport is candidate.transport
            and _same_address(other.address, address)
        ):
            return index
    return -1


# Results


@dataclass(frozen=True, slots=True)
class FormedPairs:
    """The pairs of one check list in check-list order, from ``form_pairs``."""

    local: npt.NDArray[np.int32]
    remote: npt.NDArray[np.int32]
    priority: npt.NDArray[np.uint64]
    component: npt.NDArray[np.uint16]

    def __len__(self) -> int:
        return int(self.local.shape[0])


@dataclass(frozen=True, slots=True)
class ScheduledChecks:
    """The checks to send now, one entry per agent that has one."""

    agents: npt.NDArray[np.int32]
    lists: npt.NDArray[np.int32]
    pairs: npt.NDArray[np.int32]

    def __len__(self) -> int:
        return int(self.pairs.shape[0])


@dataclass(frozen=True, slots=True)
class Retransmits:
    """Pairs whose check to resend now, and pairs whose check just timed out."""

    retransmit: npt.NDArray[np.int32]
    timed_out: npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True)
class PairInfo:
    """A snapshot of one candidate pair's columns."""

    pair_id: int
    list_id: int
    agent_id: int
    component: int
    local: int
    remote: int
    local_foundation: int
    remote_foundation: int
    local_priority: int
    remote_priority: int
    priority: int
    state: PairState
    valid: bool
    nominated: bool
    use_candidate: bool
    queued: bool
    deadline: float
    retransmits: int


def form_pairs(
    local: CandidateArrays,
    remote: CandidateArrays,
    *,
    controlling: bool,
    max_pairs: int = DEFAULT_MAX_PAIRS,
) -> FormedPairs:
    """Form, prune and sort the pairs of one check list (RFC 8445 §6.1.2.2-§6.1.2.5).

    Raises:
        CheckListError: a column has the wrong length or a base is invalid.
    """
    arrays = _checklist.form_pairs(
        local, remote, controlling=controlling, max_pairs=max_pairs
    )
    return FormedPairs(*arrays)


# The compiled table


class CheckListTable(CheckListCore):
    """The check lists of many ICE agents in numpy columns.

    Call order: ``add_agent``; ``add_list`` for each data stream; ``start``;
    then, whenever ``next_wakeup()`` has passed, ``schedule(now)`` and send
    the returned checks (and ``poll_retransmits(now)`` if this table times
    the checks). Report outcomes with ``mark_succeeded``, ``mark_failed``,
    ``set_valid`` and ``set_nominated``, incoming checks with ``trigger``,
    and trickled candidates with ``add_local_candidates`` and
    ``add_remote_candidates``. Ids of removed agents, lists and pairs are
    reused by later additions.
    """

    def schedule(self, now: float) -> ScheduledChecks:
        """Pick the next check of every agent whose pacing deadline has passed."""
        return ScheduledChecks(*self.schedule_arrays(now))

    def poll_retransmits(
        self,
        now: float,
        *,
        max_transmissions: int = 7,
        final_wait_factor: float = 16.0,
        reliable_timeout: float = 39.5,
    ) -> Retransmits:
        """Advance the check retransmission timers (RFC 8489 §6.2.1).

        Raises:
            CheckListError: a parameter is out of range.
        """
        return Retransmits(
            *self.poll_retransmits_arrays(
                now,
                max_transmissions=max_transmissions,
                final_wait_factor=final_wait_factor,
                reliable_timeout=reliable_timeout,
            )
        )

    def list_state(self, list_id: int, components: int) -> CheckListState:
        """Return the list's state for a data stream of ``components`` components.

        Raises:
            CheckListError: the list is not found or ``components`` is below 1.
        """
        return _LIST_STATES[self.list_state_code(list_id, components)]

    def pair(self, pair_id: int) -> PairInfo:
        """Return a snapshot of the pair.

        Raises:
            CheckListError: the pair is not found.
        """
        row = self.pair_row(pair_id)
        return PairInfo(*row[:11], PairState(row[11]), *row[12:])


# The pure-Python reference


@dataclass(slots=True)
class _Candidate:
    component: int
    transport: int
    tcp_type: int
    family: int
    link_local: bool
    priority: int
    foundation: int
    base: int
    pairable: bool


@dataclass(slots=True, eq=False)
class _Pair:
    pair_id: int
    list_id: int
    agent_id: int
    component: int
    local: int
    remote: int
    local_foundation: int
    remote_foundation: int
    local_priority: int
    remote_priority: int
    priority: int
    transport: int
    state: int = PairState.FROZEN
    valid: bool = False
    nominated: bool = False
    use_candidate: bool = False
    queued: bool = False
    deadline: float = math.inf
    check_started: float = math.inf
    rto: float = 0.0
    retransmits: int = 0

    def order_key(self) -> tuple[int, int, int, int]:
        return (-self.priority, self.component, self.local, self.remote)

    def foundation(self) -> tuple[int, int]:
        return (self.local_foundation, self.remote_foundation)


@dataclass(slots=True, eq=False)
class _List:
    list_id: int
    agent_id: int
    position: int
    running: bool = True
    pairs: list[_Pair] = field(default_factory=list)
    queue: deque[_Pair] = field(default_factory=deque)
    local: list[_Candidate] = field(default_factory=list)
    remote: list[_Candidate] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Agent:
    agent_id: int
    controlling: bool
    ta: float
    rto: float
    max_pairs: int
    started: bool = False
    idle: bool = False
    next_check: float = -math.inf
    lists: list[_List] = field(default_factory=list)
    cursor: _List | None = None
    list_sequence: int = 0


_COLUMN_DTYPES: dict[str, type[np.generic]] = {
    "list_id": np.int32,
    "agent_id": np.int32,
    "component": np.uint16,
    "local": np.int32,
    "remote": np.int32,
    "local_foundation": np.int32,
    "remote_foundation": np.int32,
    "local_priority": np.uint32,
    "remote_priority": np.uint32,
    "priority": np.uint64,
    "state": np.uint8,
    "valid": np.bool_,
    "nominated": np.bool_,
    "use_candidate": np.bool_,
    "queued": np.bool_,
    "transport": np.uint8,
    "deadline": np.float64,
    "check_started": np.float64,
    "rto": np.float64,
    "retransmits": np.uint8,
}


def _priority(local: int, remote: int, controlling: bool) -> int:
    g, d = (local, remote) if controlling else (remote, local)
    return (min(g, d) << 32) + 2 * max(g, d) + (1 if g > d else 0)


def _can_pair(local: _Candidate, remote: _Candidate) -> bool:
    if local.component != remote.component or local.transport != remote.transport:
        return False
    if local.family == 0 or local.family != remote.family:
        return False
    if local.link_local != remote.link_local:
        return False
    if local.transport == TRANSPORT_TCP:
        matches = {TCP_ACTIVE: TCP_PASSIVE, TCP_PASSIVE: TCP_ACTIVE, TCP_SO: TCP_SO}
        return matches.get(local.tcp_type) == remote.tcp_type
    return True


def _candidates(
    arrays: CandidateArrays, *, local: bool, pairable: bool
) -> list[_Candidate]:
    result = []
    for i in range(len(arrays)):
        result.append(
            _Candidate(
                component=int(arrays.component[i]),
                transport=int(arrays.transport[i]),
                tcp_type=int(arrays.tcp_type[i]),
                family=int(arrays.family[i]),
                link_local=bool(arrays.link_local[i]),
                priority=int(arrays.priority[i]),
                foundation=int(arrays.foundation[i]),
                base=int(arrays.base[i]) if local else -1,
                pairable=pairable,
            )
        )
    return result


def _check_bases(existing: list[_Candidate], new: list[_Candidate]) -> None:
    everything = existing + new
    for offset, candidate in enumerate(new):
        index = len(existing) + offset
        base = candidate.base
        if base < -1 or base >= len(everything):
            raise CheckListError(
                f"local candidate {index} has base {base}, expected -1 or an index"
                f" below {len(everything)}"
            )
        if base < 0 or base == index:
            continue
        if everything[base].base not in (-1, base):
            raise CheckListError(
                f"local candidate {index} has base {base}, which is itself a"
                " reflexive candidate"
            )


@dataclass(frozen=True, slots=True)
class _Formed:
    priority: int
    component: int
    local: int
    remote: int
    original: int


def _form_reference(
    local: list[_Candidate],
    remote: list[_Candidate],
    controlling: bool,
    local_start: int,
    remote_start: int,
) -> list[_Formed]:
    formed = []
    for i, lc in enumerate(local):
        if not lc.pairable:
            continue
        base = lc.base if lc.base >= 0 else i
        for j, rc in enumerate(remote):
            if i < local_start and j < remote_start:
                continue
            if not rc.pairable or not _can_pair(lc, rc):
                continue
            priority = _priority(lc.priority, rc.priority, controlling)
            formed.append(_Formed(priority, lc.component, base, j, i))
    formed.sort(key=lambda f: (-f.priority, f.component, f.local, f.remote, f.original))
    seen: set[tuple[int, int]] = set()
    kept = []
    for item in formed:
        if (item.local, item.remote) in seen:
            continue
        seen.add((item.local, item.remote))
        kept.append(item)
    return kept


class _Slots:
    """Integer ids reused last-freed first, as the compiled table reuses slots."""

    __slots__ = ("_free", "_next")

    def __init__(self) -> None:
        self._free: list[int] = []
        self._next = 0

    def take(self) -> int:
        if self._free:
            return self._free.pop()
        self._next += 1
        return self._next - 1

    def give(self, slot: int) -> None:
        self._free.append(slot)

    @property
    def used(self) -> int:
        return self._next


class ReferenceCheckListTable:
    """The rules of ``CheckListTable`` written plainly, for tests.

    It has the same methods and results, ids included, but keeps pairs in
    Python objects, so it is slow.
    """

    def __init__(self, *, max_pairs: int = DEFAULT_MAX_PAIRS) -> None:
        if max_pairs < 1:
            raise CheckListError(f"max_pairs is {max_pairs}, expected 1 or more")
        self.default_max_pairs = max_pairs
        self._agents: dict[int, _Agent] = {}
        self._lists: dict[int, _List] = {}
        self._pairs: dict[int, _Pair] = {}
        self._agent_slots = _Slots()
        self._list_slots = _Slots()
        self._pair_slots = _Slots()

    # Lookups

    def _agent(self, agent_id: int) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise CheckListError(f"agent {agent_id} not found")
        return agent

    def _list(self, list_id: int) -> _List:
        check_list = self._lists.get(list_id)
        if check_list is None:
            raise CheckListError(f"check list {list_id} not found")
        return check_list

    def _pair(self, pair_id: int) -> _Pair:
        pair = self._pairs.get(pair_id)
        if pair is None:
            raise CheckListError(f"candidate pair {pair_id} not found")
        return pair

    def _agent_pairs(self, agent: _Agent) -> Iterable[_Pair]:
        for check_list in agent.lists:
            yield from check_list.pairs

    def _first_of_foundation(self, a: _Pair, b: _Pair) -> bool:
        position_a = self._lists[a.list_id].position
        position_b = self._lists[b.list_id].position
        key_a = (position_a, a.component, *a.order_key())
        key_b = (position_b, b.component, *b.order_key())
        return key_a < key_b

    # Agents

    def add_agent(
        self,
        *,
        controlling: bool,
        ta: float = DEFAULT_TA,
        rto: float = DEFAULT_RTO,
        max_pairs: int | None = None,
    ) -> int:
        """Add an agent and return its id (see ``CheckListTable``)."""
        limit = self.default_max_pairs if max_pairs is None else max_pairs
        if not (0 < ta < math.inf):
            raise CheckListError(f"ta is {ta}, expected a positive number of seconds")
        if not (0 < rto < math.inf):
            raise CheckListError(f"rto is {rto}, expected a positive number of seconds")
        if limit < 1:
            raise CheckListError(f"max_pairs is {limit}, expected 1 or more")
        agent_id = self._agent_slots.take()
        self._agents[agent_id] = _Agent(agent_id, controlling, ta, rto, limit)
        return agent_id

    def remove_agent(self, agent_id: int) -> None:
        """Remove an agent with its lists and pairs."""
        agent = self._agent(agent_id)
        while agent.lists:
            self._drop_list(agent.lists[0])
        del self._agents[agent_id]
        self._agent_slots.give(agent_id)

    def set_role(self, agent_id: int, controlling: bool) -> None:
        """Set the role and recompute the agent's pair priorities."""
        agent = self._agent(agent_id)
        agent.controlling = controlling
        for check_list in agent.lists:
            for pair in check_list.pairs:
                pair.priority = _priority(
                    pair.local_priority, pair.remote_priority, controlling
                )
            check_list.pairs.sort(key=_Pair.order_key)
        agent.idle = False

    def is_controlling(self, agent_id: int) -> bool:
        """Whether the agent has the controlling role."""
        return self._agent(agent_id).controlling

    def start(self, agent_id: int, now: float) -> None:
        """Set the initial pair states of the agent (RFC 8445 §6.1.2.6)."""
        agent = self._agent(agent_id)
        for pair in list(self._agent_pairs(agent)):
            if pair.state != PairState.FROZEN:
                continue
            first = not any(
                other is not pair
                and other.foundation() == pair.foundation()
                and self._first_of_foundation(other, pair)
                for other in self._agent_pairs(agent)
            )
            if first:
                pair.state = PairState.WAITING
        agent.started = True
        agent.idle = False
        agent.next_check = max(agent.next_check, now)

    def record_transaction(self, agent_id: int, now: float) -> None:
        """Delay the agent's next check by Ta after another paced transaction."""
        agent = self._agent(agent_id)
        agent.next_check = max(agent.next_check, now + agent.ta)

    def next_deadline(self, agent_id: int) -> float:
        """Return when the agent's next check is due (``math.inf`` if none)."""
        agent = self._agent(agent_id)
        if not agent.started or agent.idle:
            return math.inf
        return agent.next_check

    def next_wakeup(self) -> float:
        """Return the earliest check or retransmission deadline of the table."""
        best = math.inf
        for agent in self._agents.values():
            if agent.started and not agent.idle:
                best = min(best, agent.next_check)
        for pair in self._pairs.values():
            if pair.state == PairState.IN_PROGRESS:
                best = min(best, pair.deadline)
        return best

    # Check lists

    def add_list(
        self, agent_id: int, local: CandidateArrays, remote: CandidateArrays
    ) -> int:
        """Add a check list, form its pairs and return its id."""
        agent = self._agent(agent_id)
        local_candidates = _candidates(local, local=True, pairable=True)
        remote_candidates = _candidates(remote, local=False, pairable=True)
        _check_bases([], local_candidates)
        list_id = self._list_slots.take()
        check_list = _List(list_id, agent_id, agent.list_sequence)
        agent.list_sequence += 1
        check_list.local = local_candidates
        check_list.remote = remote_candidates
        agent.lists.append(check_list)
        self._lists[list_id] = check_list
        self._pair_new(check_list, 0, 0)
        return list_id

    def _drop_list(self, check_list: _List) -> None:
        agent = self._agents[check_list.agent_id]
        for pair in check_list.pairs:
            self._free_pair(pair)
        index = agent.lists.index(check_list)
        if agent.cursor is check_list:
            following = agent.lists[index + 1] if index + 1 < len(agent.lists) else None
            agent.cursor = following
        del agent.lists[index]
        agent.idle = False
        del self._lists[check_list.list_id]
        self._list_slots.give(check_list.list_id)

    def _free_pair(self, pair: _Pair) -> None:
        del self._pairs[pair.pair_id]
        self._pair_slots.give(pair.pair_id)

    def _remove_pair(self, pair: _Pair) -> None:
        check_list = self._lists[pair.list_id]
        if pair.queued:
            check_list.queue.remove(pair)
            pair.queued = False
        check_list.pairs.remove(pair)
        self._free_pair(pair)

    def remove_list(self, list_id: int) -> None:
        """Remove a check list and its pairs."""
        self._drop_list(self._list(list_id))

    def remove_component(self, list_id: int, component: int) -> None:
        """Remove the list's pairs of ``component``; its candidates stop pairing."""
        check_list = self._list(list_id)
        for pair in list(check_list.pairs):
            if pair.component == component:
                self._remove_pair(pair)
        for candidate in (*check_list.local, *check_list.remote):
            if candidate.component == component:
                candidate.pairable = False
        self._agents[check_list.agent_id].idle = False

    def set_running(self, list_id: int, running: bool) -> None:
        """Include the list in scheduling or leave it out."""
        check_list = self._list(list_id)
        check_list.running = running
        self._agents[check_list.agent_id].idle = False

    def add_local_candidates(
        self, list_id: int, candidates: CandidateArrays, *, pair: bool = True
    ) -> npt.NDArray[np.int32]:
        """Append local candidates and form their new pairs."""
        check_list = self._list(list_id)
        new = _candidates(candidates, local=True, pairable=pair)
        _check_bases(check_list.local, new)
        start = len(check_list.local)
        check_list.local.extend(new)
        if not pair:
            return np.zeros(0, np.int32)
        return self._pair_new(check_list, start, len(check_list.remote))

    def add_remote_candidates(
        self, list_id: int, candidates: CandidateArrays, *, pair: bool = True
    ) -> npt.NDArray[np.int32]:
        """Append remote candidates and form their new pairs."""
        check_list = self._list(list_id)
        new = _candidates(candidates, local=False, pairable=pair)
        start = len(check_list.remote)
        check_list.remote.extend(new)
        if not pair:
            return np.zeros(0, np.int32)
        return self._pair_new(check_list, len(check_list.local), start)

    def _pair_new(
        self, check_list: _List, local_start: int, remote_start: int
    ) -> npt.NDArray[np.int32]:
        agent = self._agents[check_list.agent_id]
        formed = _form_reference(
            check_list.local,
            check_list.remote,
            agent.controlling,
            local_start,
            remote_start,
        )[: agent.max_pairs]
        added = []
        for item in formed:
            pair_id = self._insert(check_list, agent, item)
            if pair_id >= 0:
                added.append(pair_id)
        agent.idle = False
        return np.array(added, np.int32)

    def _insert(self, check_list: _List, agent: _Agent, item: _Formed) -> int:
        original = check_list.local[item.original]
        for existing in check_list.pairs:
            if existing.local == item.local and existing.remote == item.remote:
                if (
                    existing.state in (PairState.FROZEN, PairState.WAITING)
                    and item.priority > existing.priority
                ):
                    existing.local_priority = original.priority
                    existing.local_foundation = original.foundation
                    existing.priority = item.priority
                    check_list.pairs.sort(key=_Pair.order_key)
                return -1
        if len(check_list.pairs) >= agent.max_pairs:
            failed = [p for p in check_list.pairs if p.state == PairState.FAILED]
            lower = [
                p
                for p in check_list.pairs
                if p.state in (PairState.FROZEN, PairState.WAITING)
                and p.priority < item.priority
            ]
            if failed:
                self._remove_pair(failed[-1])
            elif lower:
                self._remove_pair(lower[-1])
            else:
                return -1
        remote = check_list.remote[item.remote]
        pair = _Pair(
            pair_id=self._pair_slots.take(),
            list_id=check_list.list_id,
            agent_id=agent.agent_id,
            component=item.component,
            local=item.local,
            remote=item.remote,
            local_foundation=original.foundation,
            remote_foundation=remote.foundation,
            local_priority=original.priority,
            remote_priority=remote.priority,
            priority=item.priority,
            transport=original.transport,
        )
        self._pairs[pair.pair_id] = pair
        check_list.pairs.append(pair)
        check_list.pairs.sort(key=_Pair.order_key)
        if agent.started:
            pair.state = self._trickled_state(agent, pair)
        return pair.pair_id

    def _trickled_state(self, agent: _Agent, pair: _Pair) -> int:
        first = True
        for other in self._agent_pairs(agent):
            if other is pair or other.foundation() != pair.foundation():
                continue
            if other.state == PairState.SUCCEEDED:
                return PairState.WAITING
            if self._first_of_foundation(other, pair):
                first = False
        return PairState.WAITING if first else PairState.FROZEN

    def add_pair(
        self, list_id: int, local: int, remote: int, *, state: int = PairState.WAITING
    ) -> int:
        """Add the pair of two stored candidates as it is; return its id."""
        check_list = self._list(list_id)
        if not PairState.FROZEN <= state <= PairState.FAILED:
            raise CheckListError(f"pair state {state} is invalid, expected 0 to 4")
        if not 0 <= local < len(check_list.local):
            raise CheckListError(f"local candidate {local} not found in list {list_id}")
        if not 0 <= remote < len(check_list.remote):
            raise CheckListError(
                f"remote candidate {remote} not found in list {list_id}"
            )
        lc = check_list.local[local]
        rc = check_list.remote[remote]
        if not _can_pair(lc, rc):
            raise CheckListError(
                f"local candidate {local} and remote candidate {remote} cannot be"
                " paired: component, transport, address family or TCP type differ"
            )
        existing = self.find_pair(list_id, local, remote)
        if existing >= 0:
            return existing
        agent = self._agents[check_list.agent_id]
        pair = _Pair(
            pair_id=self._pair_slots.take(),
            list_id=list_id,
            agent_id=agent.agent_id,
            component=lc.component,
            local=local,
            remote=remote,
            local_foundation=lc.foundation,
            remote_foundation=rc.foundation,
            local_priority=lc.priority,
            remote_priority=rc.priority,
            priority=_priority(lc.priority, rc.priority, agent.controlling),
            transport=lc.transport,
            state=state,
        )
        self._pairs[pair.pair_id] = pair
        check_list.pairs.append(pair)
        check_list.pairs.sort(key=_Pair.order_key)
        agent.idle = False
        return pair.pair_id

    def find_pair(self, list_id: int, local: int, remote: int) -> int:
        """Return the id of the list's pair of these candidates, or -1."""
        for pair in self._list(list_id).pairs:
            if pair.local == local and pair.remote == remote:
                return pair.pair_id
        return -1

    def pairs(self, list_id: int) -> npt.NDArray[np.int32]:
        """Return the list's pair ids in check-list order."""
        return np.array([p.pair_id for p in self._list(list_id).pairs], np.int32)

    def queue(self, list_id: int) -> npt.NDArray[np.int32]:
        """Return the pair ids in the list's triggered-check queue."""
        return np.array([p.pair_id for p in self._list(list_id).queue], np.int32)

    def lists(self, agent_id: int) -> npt.NDArray[np.int32]:
        """Return the agent's list ids in check-list-set order."""
        return np.array([c.list_id for c in self._agent(agent_id).lists], np.int32)

    def list_agent(self, list_id: int) -> int:
        """Return the id of the agent that owns the list."""
        return self._list(list_id).agent_id

    def is_running(self, list_id: int) -> bool:
        """Whether the list takes part in scheduling."""
        return self._list(list_id).running

    def candidate_count(self, list_id: int) -> tuple[int, int]:
        """Return the numbers of stored ``(local, remote)`` candidates."""
        check_list = self._list(list_id)
        return len(check_list.local), len(check_list.remote)

    def list_state(self, list_id: int, components: int) -> CheckListState:
        """Return the list's state (RFC 8445 §6.1.2.1, §7.2.5.4)."""
        check_list = self._list(list_id)
        if components < 1:
            raise CheckListError(f"components is {components}, expected 1 or more")
        if not check_list.pairs:
            return CheckListState.RUNNING
        done = all(
            p.state in (PairState.SUCCEEDED, PairState.FAILED) for p in check_list.pairs
        )
        wanted = range(1, components + 1)
        valid = {p.component for p in check_list.pairs if p.valid}
        nominated = {p.component for p in check_list.pairs if p.valid and p.nominated}
        if all(c in nominated for c in wanted):
            return CheckListState.COMPLETED
        if done and not all(c in valid for c in wanted):
            return CheckListState.FAILED
        return CheckListState.RUNNING

    # Checks

    def _choose(self, agent: _Agent, check_list: _List) -> _Pair | None:
        while check_list.queue:
            pair = check_list.queue.popleft()
            pair.queued = False
            if pair.state == PairState.WAITING:
                return pair
        for pair in check_list.pairs:
            if pair.state == PairState.WAITING:
                return pair
        unfrozen = None
        for pair in check_list.pairs:
            if pair.state != PairState.FROZEN:
                continue
            busy = any(
                other.foundation() == pair.foundation()
                and other.state in (PairState.WAITING, PairState.IN_PROGRESS)
                for other in self._agent_pairs(agent)
            )
            if not busy:
                pair.state = PairState.WAITING
                if unfrozen is None:
                    unfrozen = pair
        return unfrozen

    def next_check(self, agent_id: int, now: float) -> tuple[int, int] | None:
        """Pick the agent's next check (RFC 8445 §6.1.4.2), or None."""
        agent = self._agent(agent_id)
        if not agent.started or agent.idle or now < agent.next_check:
            return None
        if agent.lists:
            start = 0
            if agent.cursor is not None:
                start = agent.lists.index(agent.cursor)
            count = len(agent.lists)
            for step in range(count):
                index = (start + step) % count
                check_list = agent.lists[index]
                if not check_list.running:
                    continue
                pair = self._choose(agent, check_list)
                if pair is None:
                    continue
                pair.state = PairState.IN_PROGRESS
                pair.retransmits = 0
                pair.check_started = now
                pair.rto = agent.rto
                pair.deadline = now + agent.rto
                following = index + 1
                agent.cursor = agent.lists[following] if following < count else None
                agent.next_check = now + agent.ta
                return check_list.list_id, pair.pair_id
        agent.idle = True
        return None

    def schedule(self, now: float) -> ScheduledChecks:
        """Run ``next_check`` for every agent, in id order."""
        chosen = []
        for agent_id in sorted(self._agents):
            picked = self.next_check(agent_id, now)
            if picked is not None:
                chosen.append((agent_id, *picked))
        columns = list(zip(*chosen, strict=True)) if chosen else [(), (), ()]
        return ScheduledChecks(*(np.array(c, np.int32) for c in columns))

    def trigger(self, pair_id: int, *, nominate: bool = False) -> bool:
        """Queue a triggered check of the pair (RFC 8445 §7.3.1.4)."""
        pair = self._pair(pair_id)
        if pair.state == PairState.SUCCEEDED and not nominate:
            return False
        pair.state = PairState.WAITING
        if nominate:
            pair.use_candidate = True
        if not pair.queued:
            pair.queued = True
            self._lists[pair.list_id].queue.append(pair)
        self._agents[pair.agent_id].idle = False
        return True

    def mark_succeeded(self, pair_id: int) -> None:
        """Set the pair SUCCEEDED and unfreeze its foundation (RFC 8445 §7.2.5.3.3)."""
        pair = self._pair(pair_id)
        pair.state = PairState.SUCCEEDED
        pair.deadline = math.inf
        agent = self._agents[pair.agent_id]
        for other in self._agent_pairs(agent):
            if (
                other.state == PairState.FROZEN
                and other.foundation() == pair.foundation()
            ):
                other.state = PairState.WAITING
        agent.idle = False

    def mark_failed(self, pair_id: int) -> None:
        """Set the pair FAILED; other pairs keep their states."""
        pair = self._pair(pair_id)
        pair.state = PairState.FAILED
        pair.deadline = math.inf
        self._agents[pair.agent_id].idle = False

    def set_valid(self, pair_id: int, valid: bool = True) -> None:
        """Set or clear the pair's valid flag."""
        self._pair(pair_id).valid = valid

    def set_nominated(self, pair_id: int, nominated: bool = True) -> None:
        """Set or clear the pair's nominated flag."""
        self._pair(pair_id).nominated = nominated

    def set_use_candidate(self, pair_id: int, value: bool) -> None:
        """Set or clear whether the pair's checks carry USE-CANDIDATE."""
        self._pair(pair_id).use_candidate = value

    def poll_retransmits(
        self,
        now: float,
        *,
        max_transmissions: int = 7,
        final_wait_factor: float = 16.0,
        reliable_timeout: float = 39.5,
    ) -> Retransmits:
        """Advance the check retransmission timers (RFC 8489 §6.2.1)."""
        if not 1 <= max_transmissions <= 255:
            raise CheckListError(
                f"max_transmissions is {max_transmissions}, expected 1 to 255"
            )
        if not final_wait_factor > 0:
            raise CheckListError(
                f"final_wait_factor is {final_wait_factor}, expected a positive number"
            )
        if not reliable_timeout > 0:
            raise CheckListError(
                f"reliable_timeout is {reliable_timeout}, expected a positive number"
            )
        resend = []
        failed = []
        for pair_id in sorted(self._pairs):
            pair = self._pairs[pair_id]
            if pair.state != PairState.IN_PROGRESS or pair.deadline > now:
                continue
            if pair.transport == TRANSPORT_TCP:
                if now >= pair.check_started + reliable_timeout:
                    self._time_out(pair)
                    failed.append(pair_id)
                else:
                    pair.deadline = pair.check_started + reliable_timeout
                continue
            sent = pair.retransmits + 1
            if sent >= max_transmissions:
                self._time_out(pair)
                failed.append(pair_id)
                continue
            pair.retransmits = sent
            if sent + 1 >= max_transmissions:
                wait = pair.rto * final_wait_factor
            else:
                wait = pair.rto * 2.0**sent
            pair.deadline = now + wait
            resend.append(pair_id)
        return Retransmits(np.array(resend, np.int32), np.array(failed, np.int32))

    def _time_out(self, pair: _Pair) -> None:
        pair.state = PairState.FAILED
        pair.deadline = math.inf
        self._agents[pair.agent_id].idle = False

    # Inspection

    @property
    def pair_count(self) -> int:
        """Number of live pairs."""
        return len(self._pairs)

    @property
    def list_count(self) -> int:
        """Number of live check lists."""
        return len(self._lists)

    @property
    def agent_count(self) -> int:
        """Number of live agents."""
        return len(self._agents)

    def pair(self, pair_id: int) -> PairInfo:
        """Return a snapshot of the pair."""
        p = self._pair(pair_id)
        return PairInfo(
            pair_id=p.pair_id,
            list_id=p.list_id,
            agent_id=p.agent_id,
            component=p.component,
            local=p.local,
            remote=p.remote,
            local_foundation=p.local_foundation,
            remote_foundation=p.remote_foundation,
            local_priority=p.local_priority,
            remote_priority=p.remote_priority,
            priority=p.priority,
            state=PairState(p.state),
            valid=p.valid,
            nominated=p.nominated,
            use_candidate=p.use_candidate,
            queued=p.queued,
            deadline=p.deadline,
            retransmits=p.retransmits,
        )

    def pair_state(self, pair_id: int) -> int:
        """Return the pair's state code."""
        return int(self._pair(pair_id).state)

    def column(self, name: str) -> npt.NDArray[np.generic]:
        """Return a pair column over all pair slots (``in_use`` marks live ones)."""
        size = self._pair_slots.used
        if name == "in_use":
            values = np.zeros(size, np.bool_)
            values[list(self._pairs)] = True
            return values
        dtype = _COLUMN_DTYPES.get(name)
        if dtype is None:
            raise CheckListError(f"pair column {name!r} not found")
        values = np.zeros(size, dtype)
        for pair_id, pair in self._pairs.items():
            values[pair_id] = getattr(pair, name)
        return values

    def copy(self) -> ReferenceCheckListTable:
        """Return an independent copy of the table."""
        return copy.deepcopy(self)
