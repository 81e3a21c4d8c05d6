# cython: freethreading_compatible=False
"""ICE check lists of many agents in one table of numpy columns.

Theory of operation: every candidate pair of every check list is one slot in
a set of numpy columns (state, priority, foundations, deadlines...). A check
list is a singly linked chain of slots in check-list order (priority
descending, then component, local index and remote index ascending), held
in the ``next`` column, and its triggered-check FIFO is a second chain in
the ``queue_next`` column. An agent (one ICE session) owns a chain of check
lists in the order they were added, which is its check-list set order.
Agents, lists and pairs live in slots that are reused after removal.

Because all state is in columns, one call can walk every agent of the table:
``schedule`` picks the next check for each agent whose Ta pacing deadline
has passed, and ``poll_retransmits`` walks every pair in progress. Both run
one C loop without creating a Python object per pair.

The rules are those of RFC 8445 §6.1.2 to §6.1.4 and §7.2.5, with the
trickle additions of RFC 8838 §10 to §12; ``rice_fast.ice.checklist`` holds a
pure-Python reference of the same rules and documents them.
"""

import numpy as np

from libc.math cimport INFINITY, ldexp
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, qsort

from rice_fast.ice.errors import IceError


class CheckListError(IceError, ValueError):
    """An unknown or removed agent, list or pair id, or invalid candidate arrays."""


cdef enum:
    ST_FROZEN = 0
    ST_WAITING = 1
    ST_IN_PROGRESS = 2
    ST_SUCCEEDED = 3
    ST_FAILED = 4

cdef enum:
    TR_UDP = 0
    TR_TCP = 1

cdef enum:
    TT_NONE = 0
    TT_ACTIVE = 1
    TT_PASSIVE = 2
    TT_SO = 3

cdef enum:
    LS_RUNNING = 0
    LS_COMPLETED = 1
    LS_FAILED = 2

FROZEN = ST_FROZEN
WAITING = ST_WAITING
IN_PROGRESS = ST_IN_PROGRESS
SUCCEEDED = ST_SUCCEEDED
FAILED = ST_FAILED
TRANSPORT_UDP = TR_UDP
TRANSPORT_TCP = TR_TCP
TCP_NONE = TT_NONE
TCP_ACTIVE = TT_ACTIVE
TCP_PASSIVE = TT_PASSIVE
TCP_SO = TT_SO
LIST_RUNNING = LS_RUNNING
LIST_COMPLETED = LS_COMPLETED
LIST_FAILED = LS_FAILED
DEFAULT_MAX_PAIRS = 100

cdef int32_t NONE = -1

# Column names and dtypes. Flags are uint8 here and exposed as bool views.
_PAIR_COLUMNS = (
    ("list_id", np.int32),
    ("agent_id", np.int32),
    ("component", np.uint16),
    ("local", np.int32),
    ("remote", np.int32),
    ("local_foundation", np.int32),
    ("remote_foundation", np.int32),
    ("local_priority", np.uint32),
    ("remote_priority", np.uint32),
    ("priority", np.uint64),
    ("state", np.uint8),
    ("valid", np.uint8),
    ("nominated", np.uint8),
    ("use_candidate", np.uint8),
    ("queued", np.uint8),
    ("transport", np.uint8),
    ("deadline", np.float64),
    ("check_started", np.float64),
    ("rto", np.float64),
    ("retransmits", np.uint8),
    ("in_use", np.uint8),
    ("next", np.int32),
    ("queue_next", np.int32),
)
_PAIR_FLAGS = frozenset({"valid", "nominated", "use_candidate", "queued", "in_use"})

_LIST_COLUMNS = (
    ("agent", np.int32),
    ("in_use", np.uint8),
    ("running", np.uint8),
    ("position", np.int32),
    ("head", np.int32),
    ("count", np.int32),
    ("queue_head", np.int32),
    ("queue_tail", np.int32),
    ("next", np.int32),
)

_AGENT_COLUMNS = (
    ("in_use", np.uint8),
    ("controlling", np.uint8),
    ("started", np.uint8),
    ("idle", np.uint8),
    ("ta", np.float64),
    ("rto", np.float64),
    ("next_check", np.float64),
    ("head", np.int32),
    ("tail", np.int32),
    ("cursor", np.int32),
    ("list_count", np.int32),
    ("list_sequence", np.int32),
    ("max_pairs", np.int32),
    ("next", np.int32),
)

# Candidate columns as stored per check list, with their dtypes.
_CANDIDATE_FIELDS = (
    ("component", np.uint16),
    ("transport", np.uint8),
    ("tcp_type", np.uint8),
    ("family", np.uint8),
    ("link_local", np.uint8),
    ("priority", np.uint32),
    ("foundation", np.int32),
)


ctypedef struct Side:
    Py_ssize_t size
    const uint16_t *component
    const uint8_t *transport
    const uint8_t *tcp_type
    const uint8_t *family
    const uint8_t *link_local
    const uint32_t *priority
    const int32_t *foundation
    const int32_t *base
    const uint8_t *pairable


ctypedef struct Formed:
    uint64_t priority
    int32_t local
    int32_t remote
    int32_t original
    uint16_t component


cdef inline uint64_t _pair_priority(
    uint32_t local, uint32_t remote, bint controlling
) noexcept nogil:
    # RFC 8445 §6.1.2.3: with G the controlling agent's candidate priority
    # and D the controlled agent's, 2^32*MIN(G,D) + 2*MAX(G,D) + (G>D?1:0).
    cdef uint64_t g = local if controlling else remote
    cdef uint64_t d = remote if controlling else local
    if g > d:
        return (d << 32) + 2 * g + 1
    return (g << 32) + 2 * d


cdef inline bint _can_pair(
    const Side *lo, Py_ssize_t i, const Side *re, Py_ssize_t j
) noexcept nogil:
    cdef uint8_t lt, rt
    if lo.component[i] != re.component[j]:
        return False
    if lo.transport[i] != re.transport[j]:
        return False
    # RFC 8445 §6.1.2.2: same address family, and an IPv6 link-local
    # address pairs only with another link-local address. Family 0 (a name
    # not resolved yet) pairs with nothing.
    if lo.family[i] == 0 or lo.family[i] != re.family[j]:
        return False
    if lo.link_local[i] != re.link_local[j]:
        return False
    if lo.transport[i] == TR_TCP:
        # RFC 6544 §6.2: active pairs with passive, passive with active and
        # simultaneous-open with simultaneous-open.
        lt = lo.tcp_type[i]
        rt = re.tcp_type[j]
        if lt == TT_ACTIVE:
            return rt == TT_PASSIVE
        if lt == TT_PASSIVE:
            return rt == TT_ACTIVE
        if lt == TT_SO:
            return rt == TT_SO
        return False
    return True


cdef int _formed_order(const void *a, const void *b) noexcept nogil:
    cdef const Formed *x = <const Formed *>a
    cdef const Formed *y = <const Formed *>b
    if x.priority != y.priority:
        return -1 if x.priority > y.priority else 1
    if x.component != y.component:
        return -1 if x.component < y.component else 1
    if x.local != y.local:
        return -1 if x.local < y.local else 1
    if x.remote != y.remote:
        return -1 if x.remote < y.remote else 1
    if x.original != y.original:
        return -1 if x.original < y.original else 1
    return 0


cdef void _select_first(Formed *items, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """Move the first ``k`` items in check-list order to ``items[:k]`` (quickselect)."""
    cdef Py_ssize_t low = 0, high = n - 1, i, j, nth = k - 1
    cdef Formed pivot, swap
    while high > low:
        pivot = items[low + (high - low) // 2]
        i = low
        j = high
        while i <= j:
            while _formed_order(&items[i], &pivot) < 0:
                i += 1
            while _formed_order(&pivot, &items[j]) < 0:
                j -= 1
            if i <= j:
                swap = items[i]
                items[i] = items[j]
                items[j] = swap
                i += 1
                j -= 1
        if nth <= j:
            high = j
        elif nth >= i:
            low = i
        else:
            return


cdef Py_ssize_t _form(
    const Side *lo,
    const Side *re,
    bint controlling,
    Py_ssize_t local_start,
    Py_ssize_t remote_start,
    Py_ssize_t limit,
    Formed *out,
    int32_t *best,
) noexcept nogil:
    """Fill ``out`` with the pruned pairs in check-list order; return their count.

    Only pairs with a local index at least ``local_start`` or a remote index
    at least ``remote_start`` are formed (the new candidates of a trickle
    call), and at most ``limit`` of them are kept. ``out`` has room for
    every combination and ``best`` for ``lo.size * re.size`` indexes.
    """
    cdef Py_ssize_t i, j, n = 0, key
    cdef int32_t local, slot
    cdef uint64_t priority
    for i in range(lo.size * re.size):
        best[i] = NONE
    for i in range(lo.size):
        if lo.pairable != NULL and not lo.pairable[i]:
            continue
        # RFC 8445 §6.1.2.4: a reflexive local candidate is replaced by its
        # base, and the pair keeps the priority computed from the original.
        local = lo.base[i] if lo.base[i] >= 0 else <int32_t>i
        for j in range(re.size):
            if i < local_start and j < remote_start:
                continue
            if re.pairable != NULL and not re.pairable[j]:
                continue
            if not _can_pair(lo, i, re, j):
                continue
            priority = _pair_priority(lo.priority[i], re.priority[j], controlling)
            # Pairs with the same local (after replacement) and remote are
            # redundant: keep the highest priority, and on a tie the lowest
            # original local index, which came first.
            key = local * re.size + j
            slot = best[key]
            if slot == NONE:
                best[key] = <int32_t>n
                out[n].priority = priority
                out[n].local = local
                out[n].remote = <int32_t>j
                out[n].original = <int32_t>i
                out[n].component = lo.component[i]
                n += 1
            elif priority > out[slot].priority:
                out[slot].priority = priority
                out[slot].original = <int32_t>i
    if n > limit:
        _select_first(out, n, limit)
        n = limit
    if n > 1:
        qsort(out, n, sizeof(Formed), _formed_order)
    return n


cdef object _column(object source, str name, object dtype, Py_ssize_t size):
    """Return ``source.<name>`` as a C-contiguous array of ``dtype``."""
    value = getattr(source, name)
    array = np.ascontiguousarray(value, dtype=dtype)
    if array.ndim != 1 or array.shape[0] != size:
        raise CheckListError(
            f"candidate column {name!r} has shape {array.shape}, expected ({size},)"
        )
    return array


cdef Py_ssize_t _size_of(object source) except -1:
    return len(getattr(source, "priority"))


cdef class _Candidates:
    """The stored local or remote candidates of one check list."""

    cdef public object component, transport, tcp_type, family, link_local
    cdef public object priority, foundation, base, pairable
    cdef public Py_ssize_t size
    cdef bint local

    def __cinit__(self, bint local):
        self.local = local
        self.size = 0

    cdef void clear(self):
        for name, dtype in _CANDIDATE_FIELDS:
            setattr(self, name, np.zeros(0, dtype))
        self.base = np.zeros(0, np.int32)
        self.pairable = np.zeros(0, np.uint8)
        self.size = 0

    cdef _Candidates copy(self):
        # The arrays are never written in place (append and remove_component
        # replace them), so copies share them.
        cdef _Candidates other = _Candidates(self.local)
        for name, _ in _CANDIDATE_FIELDS:
            setattr(other, name, getattr(self, name))
        other.base = self.base
        other.pairable = self.pairable
        other.size = self.size
        return other

    cdef Py_ssize_t append(self, object source, bint pairable) except -1:
        """Append the candidates of ``source``; return the first new index."""
        cdef Py_ssize_t size = _size_of(source)
        cdef Py_ssize_t start = self.size
        cdef Py_ssize_t total = start + size
        cdef Py_ssize_t i, b
        columns = {}
        for name, dtype in _CANDIDATE_FIELDS:
            columns[name] = _column(source, name, dtype, size)
        if self.local:
            base = _column(source, "base", np.int32, size)
        else:
            base = np.full(size, -1, np.int32)
        cdef const int32_t[::1] new_base = base
        cdef const int32_t[::1] old_base = self.base
        for i in range(size):
            b = new_base[i]
            if b < -1 or b >= total:
                raise CheckListError(
                    f"local candidate {start + i} has base {b}, expected -1 or an"
                    f" index below {total}"
                )
            if b < 0 or b == start + i:
                continue
            # A base is a host or relayed candidate, which is its own base.
            if b < start:
                if old_base[b] >= 0 and old_base[b] != b:
                    raise CheckListError(
                        f"local candidate {start + i} has base {b}, which is itself"
                        f" a reflexive candidate"
                    )
            elif new_base[b - start] >= 0 and new_base[b - start] != b:
                raise CheckListError(
                    f"local candidate {start + i} has base {b}, which is itself"
                    f" a reflexive candidate"
                )
        for name, _ in _CANDIDATE_FIELDS:
            setattr(self, name, np.concatenate((getattr(self, name), columns[name])))
        self.base = np.concatenate((self.base, base))
        self.pairable = np.concatenate(
            (self.pairable, np.full(size, 1 if pairable else 0, np.uint8))
        )
        self.size = total
        return start

    cdef void fill(self, Side *side):
        side.size = self.size
        side.component = _u16(self.component)
        side.transport = _u8(self.transport)
        side.tcp_type = _u8(self.tcp_type)
        side.family = _u8(self.family)
        side.link_local = _u8(self.link_local)
        side.priority = _u32(self.priority)
        side.foundation = _i32(self.foundation)
        side.base = _i32(self.base)
        side.pairable = _u8(self.pairable)


cdef _Candidates _new_candidates(bint local):
    cdef _Candidates store = _Candidates(local)
    store.clear()
    return store


# Raw pointers into arrays that the caller keeps alive. An empty array has
# no element, so its pointer is NULL and is never dereferenced.

cdef uint8_t *_u8(object array):
    cdef uint8_t[::1] view = array
    return &view[0] if view.shape[0] else NULL


cdef uint16_t *_u16(object array):
    cdef uint16_t[::1] view = array
    return &view[0] if view.shape[0] else NULL


cdef int32_t *_i32(object array):
    cdef int32_t[::1] view = array
    return &view[0] if view.shape[0] else NULL


cdef uint32_t *_u32(object array):
    cdef uint32_t[::1] view = array
    return &view[0] if view.shape[0] else NULL


cdef uint64_t *_u64(object array):
    cdef uint64_t[::1] view = array
    return &view[0] if view.shape[0] else NULL


cdef double *_f64(object array):
    cdef double[::1] view = array
    return &view[0] if view.shape[0] else NULL


cdef object _new_columns(tuple spec, Py_ssize_t capacity):
    return {name: np.zeros(capacity, dtype) for name, dtype in spec}


cdef object _grown(dict columns, Py_ssize_t capacity):
    grown = {}
    for name, array in columns.items():
        bigger = np.zeros(capacity, array.dtype)
        bigger[: array.shape[0]] = array
        grown[name] = bigger
    return grown


def form_pairs(
    object local,
    object remote,
    *,
    bint controlling,
    int max_pairs=DEFAULT_MAX_PAIRS,
):
    """Form, prune and sort the pairs of one check list (RFC 8445 §6.1.2.2-§6.1.2.5).

    ``local`` and ``remote`` are candidate arrays (objects with the
    ``CandidateArrays`` columns). Returns the arrays ``(local, remote,
    priority, component)`` of at most ``max_pairs`` pairs in check-list
    order, with reflexive local candidates replaced by their base.

    Raises:
        CheckListError: a column has the wrong length or a base is invalid.
    """
    if max_pairs < 0:
        raise CheckListError(f"max_pairs is {max_pairs}, expected 0 or more")
    cdef _Candidates lo = _new_candidates(True)
    cdef _Candidates re = _new_candidates(False)
    lo.append(local, True)
    re.append(remote, True)
    cdef Side ls, rs
    lo.fill(&ls)
    re.fill(&rs)
    cdef Py_ssize_t total = ls.size * rs.size
    cdef Formed *formed = <Formed *>malloc(max(total, 1) * sizeof(Formed))
    cdef int32_t *best = <int32_t *>malloc(max(total, 1) * sizeof(int32_t))
    if formed == NULL or best == NULL:
        free(formed)
        free(best)
        raise MemoryError()
    cdef Py_ssize_t n, i
    with nogil:
        n = _form(&ls, &rs, controlling, 0, 0, max_pairs, formed, best)
    free(best)
    out_local = np.empty(n, np.int32)
    out_remote = np.empty(n, np.int32)
    out_priority = np.empty(n, np.uint64)
    out_component = np.empty(n, np.uint16)
    cdef int32_t[::1] ol = out_local
    cdef int32_t[::1] orr = out_remote
    cdef uint64_t[::1] op = out_priority
    cdef uint16_t[::1] oc = out_component
    for i in range(n):
        ol[i] = formed[i].local
        orr[i] = formed[i].remote
        op[i] = formed[i].priority
        oc[i] = formed[i].component
    free(formed)
    return out_local, out_remote, out_priority, out_component


cdef class CheckListCore:
    """The check lists of many ICE agents, stored as numpy columns.

    Call order: ``add_agent``, ``add_list`` for each data stream, ``start``;
    then ``schedule(now)`` (or ``next_check``) whenever ``next_wakeup()``
    passes, reporting outcomes with ``mark_succeeded``/``mark_failed``,
    ``trigger`` for incoming checks, and ``add_*_candidates`` for trickle.
    """

    cdef dict _pairs, _lists, _agents
    cdef list _local_candidates, _remote_candidates
    cdef readonly int default_max_pairs
    cdef Py_ssize_t pair_capacity, pair_slots, list_capacity, list_slots
    cdef Py_ssize_t agent_capacity, agent_slots
    cdef int32_t free_pair, free_list, free_agent
    cdef Py_ssize_t live_pairs, live_lists, live_agents

    cdef int32_t *p_list
    cdef int32_t *p_agent
    cdef uint16_t *p_component
    cdef int32_t *p_local
    cdef int32_t *p_remote
    cdef int32_t *p_lfound
    cdef int32_t *p_rfound
    cdef uint32_t *p_lprio
    cdef uint32_t *p_rprio
    cdef uint64_t *p_priority
    cdef uint8_t *p_state
    cdef uint8_t *p_valid
    cdef uint8_t *p_nominated
    cdef uint8_t *p_use_candidate
    cdef uint8_t *p_queued
    cdef uint8_t *p_transport
    cdef double *p_deadline
    cdef double *p_started
    cdef double *p_rto
    cdef uint8_t *p_retransmits
    cdef uint8_t *p_in_use
    cdef int32_t *p_next
    cdef int32_t *p_qnext

    cdef int32_t *l_agent
    cdef uint8_t *l_in_use
    cdef uint8_t *l_running
    cdef int32_t *l_position
    cdef int32_t *l_head
    cdef int32_t *l_count
    cdef int32_t *l_qhead
    cdef int32_t *l_qtail
    cdef int32_t *l_next

    cdef uint8_t *a_in_use
    cdef uint8_t *a_controlling
    cdef uint8_t *a_started
    cdef uint8_t *a_idle
    cdef double *a_ta
    cdef double *a_rto
    cdef double *a_next_check
    cdef int32_t *a_head
    cdef int32_t *a_tail
    cdef int32_t *a_cursor
    cdef int32_t *a_list_count
    cdef int32_t *a_list_sequence
    cdef int32_t *a_max_pairs
    cdef int32_t *a_next

    def __cinit__(self, *args, **kwargs):
        self.default_max_pairs = DEFAULT_MAX_PAIRS
        self.pair_capacity = 64
        self.list_capacity = 16
        self.agent_capacity = 16
        self.pair_slots = 0
        self.list_slots = 0
        self.agent_slots = 0
        self.free_pair = NONE
        self.free_list = NONE
        self.free_agent = NONE
        self.live_pairs = 0
        self.live_lists = 0
        self.live_agents = 0
        self._pairs = _new_columns(_PAIR_COLUMNS, self.pair_capacity)
        self._lists = _new_columns(_LIST_COLUMNS, self.list_capacity)
        self._agents = _new_columns(_AGENT_COLUMNS, self.agent_capacity)
        self._local_candidates = []
        self._remote_candidates = []
        self._bind()

    def __init__(self, *, int max_pairs=DEFAULT_MAX_PAIRS):
        if max_pairs < 1:
            raise CheckListError(f"max_pairs is {max_pairs}, expected 1 or more")
        self.default_max_pairs = max_pairs

    cdef void _bind(self):
        p = self._pairs
        self.p_list = _i32(p["list_id"])
        self.p_agent = _i32(p["agent_id"])
        self.p_component = _u16(p["component"])
        self.p_local = _i32(p["local"])
        self.p_remote = _i32(p["remote"])
        self.p_lfound = _i32(p["local_foundation"])
        self.p_rfound = _i32(p["remote_foundation"])
        self.p_lprio = _u32(p["local_priority"])
        self.p_rprio = _u32(p["remote_priority"])
        self.p_priority = _u64(p["priority"])
        self.p_state = _u8(p["state"])
        self.p_valid = _u8(p["valid"])
        self.p_nominated = _u8(p["nominated"])
        self.p_use_candidate = _u8(p["use_candidate"])
        self.p_queued = _u8(p["queued"])
        self.p_transport = _u8(p["transport"])
        self.p_deadline = _f64(p["deadline"])
        self.p_started = _f64(p["check_started"])
        self.p_rto = _f64(p["rto"])
        self.p_retransmits = _u8(p["retransmits"])
        self.p_in_use = _u8(p["in_use"])
        self.p_next = _i32(p["next"])
        self.p_qnext = _i32(p["queue_next"])
        lc = self._lists
        self.l_agent = _i32(lc["agent"])
        self.l_in_use = _u8(lc["in_use"])
        self.l_running = _u8(lc["running"])
        self.l_position = _i32(lc["position"])
        self.l_head = _i32(lc["head"])
        self.l_count = _i32(lc["count"])
        self.l_qhead = _i32(lc["queue_head"])
        self.l_qtail = _i32(lc["queue_tail"])
        self.l_next = _i32(lc["next"])
        a = self._agents
        self.a_in_use = _u8(a["in_use"])
        self.a_controlling = _u8(a["controlling"])
        self.a_started = _u8(a["started"])
        self.a_idle = _u8(a["idle"])
        self.a_ta = _f64(a["ta"])
        self.a_rto = _f64(a["rto"])
        self.a_next_check = _f64(a["next_check"])
        self.a_head = _i32(a["head"])
        self.a_tail = _i32(a["tail"])
        self.a_cursor = _i32(a["cursor"])
        self.a_list_count = _i32(a["list_count"])
        self.a_list_sequence = _i32(a["list_sequence"])
        self.a_max_pairs = _i32(a["max_pairs"])
        self.a_next = _i32(a["next"])

    # Slot allocation

    cdef int32_t _alloc_pair(self) except -1:
        cdef int32_t slot
        if self.free_pair != NONE:
            slot = self.free_pair
            self.free_pair = self.p_next[slot]
        else:
            if self.pair_slots == self.pair_capacity:
                self.pair_capacity *= 2
                self._pairs = _grown(self._pairs, self.pair_capacity)
                self._bind()
            slot = <int32_t>self.pair_slots
            self.pair_slots += 1
        self.live_pairs += 1
        return slot

    cdef void _free_pair(self, int32_t p) noexcept:
        self.p_in_use[p] = 0
        self.p_queued[p] = 0
        self.p_next[p] = self.free_pair
        self.free_pair = p
        self.live_pairs -= 1

    cdef int32_t _alloc_list(self) except -1:
        cdef int32_t slot
        if self.free_list != NONE:
            slot = self.free_list
            self.free_list = self.l_next[slot]
        else:
            if self.list_slots == self.list_capacity:
                self.list_capacity *= 2
                self._lists = _grown(self._lists, self.list_capacity)
                self._bind()
            slot = <int32_t>self.list_slots
            self.list_slots += 1
            self._local_candidates.append(None)
            self._remote_candidates.append(None)
        self.live_lists += 1
        return slot

    cdef int32_t _alloc_agent(self) except -1:
        cdef int32_t slot
        if self.free_agent != NONE:
            slot = self.free_agent
            self.free_agent = self.a_next[slot]
        else:
            if self.agent_slots == self.agent_capacity:
                self.agent_capacity *= 2
                self._agents = _grown(self._agents, self.agent_capacity)
                self._bind()
            slot = <int32_t>self.agent_slots
            self.agent_slots += 1
        self.live_agents += 1
        return slot

    # Id checks

    cdef int32_t _agent_id(self, object agent_id) except -1:
        cdef Py_ssize_t a = agent_id
        if a < 0 or a >= self.agent_slots or not self.a_in_use[a]:
            raise CheckListError(f"agent {agent_id} not found")
        return <int32_t>a

    cdef int32_t _list_id(self, object list_id) except -1:
        cdef Py_ssize_t cl = list_id
        if cl < 0 or cl >= self.list_slots or not self.l_in_use[cl]:
            raise CheckListError(f"check list {list_id} not found")
        return <int32_t>cl

    cdef int32_t _pair_id(self, object pair_id) except -1:
        cdef Py_ssize_t p = pair_id
        if p < 0 or p >= self.pair_slots or not self.p_in_use[p]:
            raise CheckListError(f"candidate pair {pair_id} not found")
        return <int32_t>p

    # Ordering helpers

    cdef inline bint _before(self, int32_t a, int32_t b) noexcept nogil:
        """Whether pair ``a`` comes before pair ``b`` in check-list order."""
        if self.p_priority[a] != self.p_priority[b]:
            return self.p_priority[a] > self.p_priority[b]
        if self.p_component[a] != self.p_component[b]:
            return self.p_component[a] < self.p_component[b]
        if self.p_local[a] != self.p_local[b]:
            return self.p_local[a] < self.p_local[b]
        return self.p_remote[a] < self.p_remote[b]

    cdef inline bint _first_of_foundation(self, int32_t a, int32_t b) noexcept nogil:
        """Whether ``a`` comes before ``b`` by list order, component, priority."""
        cdef int32_t la = self.l_position[self.p_list[a]]
        cdef int32_t lb = self.l_position[self.p_list[b]]
        if la != lb:
            return la < lb
        if self.p_component[a] != self.p_component[b]:
            return self.p_component[a] < self.p_component[b]
        return self._before(a, b)

    cdef inline bint _same_foundation(self, int32_t a, int32_t b) noexcept nogil:
        return (
            self.p_lfound[a] == self.p_lfound[b]
            and self.p_rfound[a] == self.p_rfound[b]
        )

    cdef void _link_sorted(self, int32_t cl, int32_t p) noexcept nogil:
        cdef int32_t prev = NONE
        cdef int32_t cur = self.l_head[cl]
        while cur != NONE and self._before(cur, p):
            prev = cur
            cur = self.p_next[cur]
        self.p_next[p] = cur
        if prev == NONE:
            self.l_head[cl] = p
        else:
            self.p_next[prev] = p

    cdef void _unlink(self, int32_t cl, int32_t p) noexcept nogil:
        cdef int32_t prev = NONE
        cdef int32_t cur = self.l_head[cl]
        while cur != NONE and cur != p:
            prev = cur
            cur = self.p_next[cur]
        if cur == NONE:
            return
        if prev == NONE:
            self.l_head[cl] = self.p_next[p]
        else:
            self.p_next[prev] = self.p_next[p]
        self.p_next[p] = NONE

    cdef void _unqueue(self, int32_t cl, int32_t p) noexcept nogil:
        cdef int32_t prev = NONE
        cdef int32_t cur = self.l_qhead[cl]
        if not self.p_queued[p]:
            return
        while cur != NONE and cur != p:
            prev = cur
            cur = self.p_qnext[cur]
        if cur == NONE:
            return
        if prev == NONE:
            self.l_qhead[cl] = self.p_qnext[p]
        else:
            self.p_qnext[prev] = self.p_qnext[p]
        if self.l_qtail[cl] == p:
            self.l_qtail[cl] = prev
        self.p_qnext[p] = NONE
        self.p_queued[p] = 0

    cdef void _remove_pair(self, int32_t p) noexcept:
        cdef int32_t cl = self.p_list[p]
        self._unqueue(cl, p)
        self._unlink(cl, p)
        self.l_count[cl] -= 1
        self._free_pair(p)

    cdef void _resort(self, int32_t cl):
        cdef int32_t n = self.l_count[cl]
        cdef int32_t *rows
        cdef int32_t p, i, j, key
        if n < 2:
            return
        rows = <int32_t *>malloc(n * sizeof(int32_t))
        if rows == NULL:
            raise MemoryError()
        i = 0
        p = self.l_head[cl]
        while p != NONE:
            rows[i] = p
            i += 1
            p = self.p_next[p]
        # Insertion sort: lists hold at most a few hundred pairs, mostly in
        # order already, since a role change moves priorities by one.
        for i in range(1, n):
            key = rows[i]
            j = i - 1
            while j >= 0 and self._before(key, rows[j]):
                rows[j + 1] = rows[j]
                j -= 1
            rows[j + 1] = key
        self.l_head[cl] = rows[0]
        for i in range(n - 1):
            self.p_next[rows[i]] = rows[i + 1]
        self.p_next[rows[n - 1]] = NONE
        free(rows)

    # Foundation rules over all lists of one agent

    cdef bint _foundation_busy(self, int32_t a, int32_t p) noexcept nogil:
        """Whether a pair of ``p``'s foundation is WAITING or IN_PROGRESS."""
        cdef int32_t cl = self.a_head[a]
        cdef int32_t q
        while cl != NONE:
            q = self.l_head[cl]
            while q != NONE:
                if (
                    (self.p_state[q] == ST_WAITING or self.p_state[q] == ST_IN_PROGRESS)
                    and self._same_foundation(p, q)
                ):
                    return True
                q = self.p_next[q]
            cl = self.l_next[cl]
        return False

    cdef uint8_t _trickled_state(self, int32_t a, int32_t p) noexcept nogil:
        """RFC 8838 §12: the state of a pair added after checks started."""
        cdef int32_t cl = self.a_head[a]
        cdef int32_t q
        cdef bint first = True
        while cl != NONE:
            q = self.l_head[cl]
            while q != NONE:
                if q != p and self._same_foundation(p, q):
                    if self.p_state[q] == ST_SUCCEEDED:
                        return ST_WAITING
                    if self._first_of_foundation(q, p):
                        first = False
                q = self.p_next[q]
            cl = self.l_next[cl]
        return ST_WAITING if first else ST_FROZEN

    cdef void _unfreeze_foundation(self, int32_t a, int32_t p) noexcept nogil:
        cdef int32_t cl = self.a_head[a]
        cdef int32_t q
        while cl != NONE:
            q = self.l_head[cl]
            while q != NONE:
                if self.p_state[q] == ST_FROZEN and self._same_foundation(p, q):
                    self.p_state[q] = ST_WAITING
                q = self.p_next[q]
            cl = self.l_next[cl]

    # Choosing checks

    cdef int32_t _choose(self, int32_t a, int32_t cl) noexcept nogil:
        """RFC 8445 §6.1.4.2 steps 1 to 3 for list ``cl``; -1 if no check."""
        cdef int32_t p
        cdef bint waiting = False
        while self.l_qhead[cl] != NONE:
            p = self.l_qhead[cl]
            self.l_qhead[cl] = self.p_qnext[p]
            if self.l_qhead[cl] == NONE:
                self.l_qtail[cl] = NONE
            self.p_qnext[p] = NONE
            self.p_queued[p] = 0
            if self.p_state[p] == ST_WAITING:
                return p
        p = self.l_head[cl]
        while p != NONE:
            if self.p_state[p] == ST_WAITING:
                return p
            p = self.p_next[p]
        # No WAITING pair: unfreeze, in check-list order, each FROZEN pair
        # whose foundation has no WAITING or IN_PROGRESS pair in the agent.
        # Unfreezing one pair makes its foundation busy, so at most one pair
        # per foundation is unfrozen.
        p = self.l_head[cl]
        while p != NONE:
            if self.p_state[p] == ST_FROZEN and not self._foundation_busy(a, p):
                self.p_state[p] = ST_WAITING
                waiting = True
            p = self.p_next[p]
        if not waiting:
            return NONE
        p = self.l_head[cl]
        while p != NONE:
            if self.p_state[p] == ST_WAITING:
                return p
            p = self.p_next[p]
        return NONE

    cdef int32_t _agent_next(
        self, int32_t a, double now, int32_t *list_out
    ) noexcept nogil:
        cdef int32_t cl, p, remaining
        if not self.a_started[a] or self.a_idle[a] or now < self.a_next_check[a]:
            return NONE
        # Each list once, from the cursor round to the list before it.
        remaining = self.a_list_count[a]
        cl = self.a_cursor[a]
        if cl == NONE:
            cl = self.a_head[a]
        while remaining > 0:
            remaining -= 1
            if self.l_running[cl]:
                p = self._choose(a, cl)
                if p != NONE:
                    self.p_state[p] = ST_IN_PROGRESS
                    self.p_retransmits[p] = 0
                    self.p_started[p] = now
                    self.p_rto[p] = self.a_rto[a]
                    self.p_deadline[p] = now + self.a_rto[a]
                    self.a_cursor[a] = self.l_next[cl]
                    self.a_next_check[a] = now + self.a_ta[a]
                    list_out[0] = cl
                    return p
            cl = self.l_next[cl]
            if cl == NONE:
                cl = self.a_head[a]
        self.a_idle[a] = 1
        return NONE

    # Agents

    def add_agent(
        self,
        *,
        bint controlling,
        double ta=0.05,
        double rto=0.5,
        object max_pairs=None,
    ):
        """Add an agent (one ICE session) and return its id.

        ``ta`` is the pacing interval between checks (RFC 8445 §14.2) and
        ``rto`` the initial retransmission timeout of a check, both in
        seconds. ``max_pairs`` limits each of its check lists (the table's
        default when None).

        NOTE: RFC 8445 §6.1.2.5 limits the pairs of the whole check-list set
        and trims every list evenly. Here the limit applies to each list, so
        an agent with several lists should pass a smaller ``max_pairs``.

        Raises:
            CheckListError: ``ta``, ``rto`` or ``max_pairs`` is out of range.
        """
        cdef int limit = self.default_max_pairs if max_pairs is None else max_pairs
        if not ta > 0.0 or ta == INFINITY:
            raise CheckListError(f"ta is {ta}, expected a positive number of seconds")
        if not rto > 0.0 or rto == INFINITY:
            raise CheckListError(f"rto is {rto}, expected a positive number of seconds")
        if limit < 1:
            raise CheckListError(f"max_pairs is {limit}, expected 1 or more")
        cdef int32_t a = self._alloc_agent()
        self.a_in_use[a] = 1
        self.a_controlling[a] = controlling
        self.a_started[a] = 0
        self.a_idle[a] = 0
        self.a_ta[a] = ta
        self.a_rto[a] = rto
        # Stays -inf until start or record_transaction sets a pacing time.
        self.a_next_check[a] = -INFINITY
        self.a_head[a] = NONE
        self.a_tail[a] = NONE
        self.a_cursor[a] = NONE
        self.a_list_count[a] = 0
        self.a_list_sequence[a] = 0
        self.a_max_pairs[a] = limit
        self.a_next[a] = NONE
        return a

    def remove_agent(self, agent_id):
        """Remove an agent with its check lists and pairs.

        Raises:
            CheckListError: the agent is not found.
        """
        cdef int32_t a = self._agent_id(agent_id)
        while self.a_head[a] != NONE:
            self._drop_list(self.a_head[a])
        self.a_in_use[a] = 0
        self.a_next[a] = self.free_agent
        self.free_agent = a
        self.live_agents -= 1

    def set_role(self, agent_id, bint controlling):
        """Set the agent's role and recompute its pair priorities (RFC 8445 §7.2.5.1).

        Raises:
            CheckListError: the agent is not found.
        """
        cdef int32_t a = self._agent_id(agent_id)
        cdef int32_t cl, p
        self.a_controlling[a] = controlling
        cl = self.a_head[a]
        while cl != NONE:
            p = self.l_head[cl]
            while p != NONE:
                self.p_priority[p] = _pair_priority(
                    self.p_lprio[p], self.p_rprio[p], controlling
                )
                p = self.p_next[p]
            self._resort(cl)
            cl = self.l_next[cl]
        self.a_idle[a] = 0

    def is_controlling(self, agent_id):
        """Whether the agent has the controlling role."""
        return bool(self.a_controlling[self._agent_id(agent_id)])

    def start(self, agent_id, double now):
        """Set the initial pair states of the agent (RFC 8445 §6.1.2.6).

        For each foundation, the first pair by list order, lowest component
        and highest priority becomes WAITING if it is FROZEN. The first
        check is due at ``now``.

        Raises:
            CheckListError: the agent is not found.
        """
        cdef int32_t a = self._agent_id(agent_id)
        cdef int32_t cl, p, lq, q
        cdef bint first
        cl = self.a_head[a]
        while cl != NONE:
            p = self.l_head[cl]
            while p != NONE:
                if self.p_state[p] == ST_FROZEN:
                    first = True
                    lq = self.a_head[a]
                    while lq != NONE and first:
                        q = self.l_head[lq]
                        while q != NONE:
                            if (
                                q != p
                                and self._same_foundation(p, q)
                                and self._first_of_foundation(q, p)
                            ):
                                first = False
                                break
                            q = self.p_next[q]
                        lq = self.l_next[lq]
                    if first:
                        self.p_state[p] = ST_WAITING
                p = self.p_next[p]
            cl = self.l_next[cl]
        self.a_started[a] = 1
        self.a_idle[a] = 0
        if self.a_next_check[a] < now:
            self.a_next_check[a] = now

    def record_transaction(self, agent_id, double now):
        """Delay the agent's next check by Ta after another paced transaction.

        Raises:
            CheckListError: the agent is not found.
        """
        cdef int32_t a = self._agent_id(agent_id)
        cdef double due = now + self.a_ta[a]
        if self.a_next_check[a] < due:
            self.a_next_check[a] = due

    def next_deadline(self, agent_id):
        """Return when the agent's next check is due (``math.inf`` if none)."""
        cdef int32_t a = self._agent_id(agent_id)
        if not self.a_started[a] or self.a_idle[a]:
            return INFINITY
        return self.a_next_check[a]

    def next_wakeup(self):
        """Return the earliest check or retransmission deadline of the table."""
        cdef double best = INFINITY
        cdef Py_ssize_t i
        with nogil:
            for i in range(self.agent_slots):
                if (
                    self.a_in_use[i]
                    and self.a_started[i]
                    and not self.a_idle[i]
                    and self.a_next_check[i] < best
                ):
                    best = self.a_next_check[i]
            for i in range(self.pair_slots):
                if (
                    self.p_in_use[i]
                    and self.p_state[i] == ST_IN_PROGRESS
                    and self.p_deadline[i] < best
                ):
                    best = self.p_deadline[i]
        return best

    # Check lists

    def add_list(self, agent_id, object local, object remote):
        """Add a check list to the agent, form its pairs and return its id.

        Raises:
            CheckListError: the agent is not found or the arrays are invalid.
        """
        cdef int32_t a = self._agent_id(agent_id)
        cdef _Candidates lo = _new_candidates(True)
        cdef _Candidates re = _new_candidates(False)
        lo.append(local, True)
        re.append(remote, True)
        cdef int32_t cl = self._alloc_list()
        self.l_agent[cl] = a
        self.l_in_use[cl] = 1
        self.l_running[cl] = 1
        self.l_position[cl] = self.a_list_sequence[a]
        self.a_list_sequence[a] += 1
        self.l_head[cl] = NONE
        self.l_count[cl] = 0
        self.l_qhead[cl] = NONE
        self.l_qtail[cl] = NONE
        self.l_next[cl] = NONE
        if self.a_tail[a] == NONE:
            self.a_head[a] = cl
        else:
            self.l_next[self.a_tail[a]] = cl
        self.a_tail[a] = cl
        self.a_list_count[a] += 1
        self._local_candidates[cl] = lo
        self._remote_candidates[cl] = re
        self._pair_new(cl, 0, 0)
        return cl

    cdef void _drop_list(self, int32_t cl):
        cdef int32_t a = self.l_agent[cl]
        cdef int32_t prev = NONE
        cdef int32_t cur = self.a_head[a]
        cdef int32_t p, following
        p = self.l_head[cl]
        while p != NONE:
            following = self.p_next[p]
            self._free_pair(p)
            p = following
        while cur != cl:
            prev = cur
            cur = self.l_next[cur]
        if prev == NONE:
            self.a_head[a] = self.l_next[cl]
        else:
            self.l_next[prev] = self.l_next[cl]
        if self.a_tail[a] == cl:
            self.a_tail[a] = prev
        if self.a_cursor[a] == cl:
            self.a_cursor[a] = self.l_next[cl]
        self.a_list_count[a] -= 1
        self.a_idle[a] = 0
        self.l_in_use[cl] = 0
        self.l_head[cl] = NONE
        self.l_count[cl] = 0
        self.l_next[cl] = self.free_list
        self.free_list = cl
        self._local_candidates[cl] = None
        self._remote_candidates[cl] = None
        self.live_lists -= 1

    def remove_list(self, list_id):
        """Remove a check list and its pairs (its session or stream closed).

        Raises:
            CheckListError: the list is not found.
        """
        self._drop_list(self._list_id(list_id))

    def remove_component(self, list_id, int component):
        """Remove the list's pairs of ``component``; its candidates stop pairing.

        Raises:
            CheckListError: the list is not found.
        """
        cdef int32_t cl = self._list_id(list_id)
        cdef int32_t p, following
        p = self.l_head[cl]
        while p != NONE:
            following = self.p_next[p]
            if self.p_component[p] == component:
                self._remove_pair(p)
            p = following
        for store in (self._local_candidates[cl], self._remote_candidates[cl]):
            kept = store.component != component
            store.pairable = (store.pairable & kept).astype(np.uint8)
        self.a_idle[self.l_agent[cl]] = 0

    def set_running(self, list_id, bint running):
        """Include the list in scheduling or leave it out (Completed or Failed).

        Raises:
            CheckListError: the list is not found.
        """
        cdef int32_t cl = self._list_id(list_id)
        self.l_running[cl] = running
        self.a_idle[self.l_agent[cl]] = 0

    def add_local_candidates(self, list_id, object candidates, *, bint pair=True):
        """Append local candidates to the list and form their new pairs.

        Returns the ids of the new pairs in check-list order.

        Raises:
            CheckListError: the list is not found or the arrays are invalid.
        """
        cdef int32_t cl = self._list_id(list_id)
        cdef _Candidates lo = self._local_candidates[cl]
        cdef Py_ssize_t start = lo.append(candidates, pair)
        if not pair:
            return np.zeros(0, np.int32)
        return self._pair_new(cl, start, self._remote_candidates[cl].size)

    def add_remote_candidates(self, list_id, object candidates, *, bint pair=True):
        """Append remote candidates to the list and form their new pairs.

        Returns the ids of the new pairs in check-list order.

        Raises:
            CheckListError: the list is not found or the arrays are invalid.
        """
        cdef int32_t cl = self._list_id(list_id)
        cdef _Candidates re = self._remote_candidates[cl]
        cdef Py_ssize_t start = re.append(candidates, pair)
        if not pair:
            return np.zeros(0, np.int32)
        return self._pair_new(cl, self._local_candidates[cl].size, start)

    cdef object _pair_new(
        self, int32_t cl, Py_ssize_t local_start, Py_ssize_t remote_start
    ):
        cdef _Candidates lo = self._local_candidates[cl]
        cdef _Candidates re = self._remote_candidates[cl]
        cdef Side ls, rs
        lo.fill(&ls)
        re.fill(&rs)
        cdef int32_t a = self.l_agent[cl]
        cdef Py_ssize_t total = ls.size * rs.size
        cdef Formed *formed = <Formed *>malloc(max(total, 1) * sizeof(Formed))
        cdef int32_t *index = <int32_t *>malloc(max(total, 1) * sizeof(int32_t))
        if formed == NULL or index == NULL:
            free(formed)
            free(index)
            raise MemoryError()
        cdef Py_ssize_t n, i
        cdef int32_t p
        cdef bint blocked = False
        n = _form(
            &ls,
            &rs,
            self.a_controlling[a],
            local_start,
            remote_start,
            self.a_max_pairs[a],
            formed,
            index,
        )
        # Reuse the buffer as an index of the pairs already in the list by
        # (local, remote); the new pairs never collide with each other.
        for i in range(total):
            index[i] = NONE
        p = self.l_head[cl]
        while p != NONE:
            index[self.p_local[p] * rs.size + self.p_remote[p]] = p
            p = self.p_next[p]
        added = np.empty(n, np.int32)
        cdef int32_t[::1] out = added
        cdef Py_ssize_t count = 0
        try:
            for i in range(n):
                p = self._insert(cl, &formed[i], &ls, &rs, index, &blocked)
                if p != NONE:
                    out[count] = p
                    count += 1
        finally:
            free(formed)
            free(index)
        self.a_idle[a] = 0
        return added[:count]

    cdef int32_t _insert(
        self,
        int32_t cl,
        const Formed *f,
        const Side *ls,
        const Side *rs,
        int32_t *index,
        bint *blocked,
    ) except -2:
        """Insert one formed pair (RFC 8838 §10 and §11); return its id or -1.

        ``index`` maps (local, remote) to the list's earlier pairs.
        ``blocked`` is set once a full list had nothing to evict for this
        priority, so nothing is evictable for the lower ones after it.
        """
        cdef int32_t a = self.l_agent[cl]
        cdef int32_t victim
        cdef int32_t original = f.original
        cdef int32_t q = index[f.local * rs.size + f.remote]
        if q != NONE:
            # Redundant with an existing pair: only a FROZEN or WAITING pair
            # may take over the higher priority of the new one.
            # NOTE: RFC 8838 §11 rule 4.A (a trickled remote candidate with the
            # address of a known peer-reflexive one takes over its pair) is
            # left to the caller: the table compares candidates by index only.
            if (
                (self.p_state[q] == ST_FROZEN or self.p_state[q] == ST_WAITING)
                and f.priority > self.p_priority[q]
            ):
                self.p_lprio[q] = ls.priority[original]
                self.p_lfound[q] = ls.foundation[original]
                self.p_priority[q] = f.priority
                self._unlink(cl, q)
                self._link_sorted(cl, q)
            return NONE
        if self.l_count[cl] >= self.a_max_pairs[a]:
            if blocked[0]:
                return NONE
            victim = self._eviction_victim(cl, f.priority)
            if victim == NONE:
                blocked[0] = True
                return NONE
            index[self.p_local[victim] * rs.size + self.p_remote[victim]] = NONE
            self._remove_pair(victim)
        cdef int32_t p = self._alloc_pair()
        self.p_list[p] = cl
        self.p_agent[p] = a
        self.p_component[p] = f.component
        self.p_local[p] = f.local
        self.p_remote[p] = f.remote
        self.p_lfound[p] = ls.foundation[original]
        self.p_rfound[p] = rs.foundation[f.remote]
        self.p_lprio[p] = ls.priority[original]
        self.p_rprio[p] = rs.priority[f.remote]
        self.p_priority[p] = f.priority
        self.p_transport[p] = ls.transport[original]
        self._init_pair(p)
        self._link_sorted(cl, p)
        self.l_count[cl] += 1
        if self.a_started[a]:
            self.p_state[p] = self._trickled_state(a, p)
        return p

    cdef void _init_pair(self, int32_t p) noexcept:
        self.p_state[p] = ST_FROZEN
        self.p_valid[p] = 0
        self.p_nominated[p] = 0
        self.p_use_candidate[p] = 0
        self.p_queued[p] = 0
        self.p_deadline[p] = INFINITY
        self.p_started[p] = INFINITY
        self.p_rto[p] = 0.0
        self.p_retransmits[p] = 0
        self.p_in_use[p] = 1
        self.p_next[p] = NONE
        self.p_qnext[p] = NONE

    cdef int32_t _eviction_victim(self, int32_t cl, uint64_t priority) noexcept:
        # RFC 8838 §10: make room by discarding a FAILED pair first, else a
        # pair of lower priority than the new one. Pairs with a check in
        # flight or a result (IN_PROGRESS, SUCCEEDED) are kept. The lowest
        # priority candidate of each kind goes first.
        cdef int32_t failed = NONE
        cdef int32_t lower = NONE
        cdef int32_t q = self.l_head[cl]
        while q != NONE:
            if self.p_state[q] == ST_FAILED:
                failed = q
            elif (
                (self.p_state[q] == ST_FROZEN or self.p_state[q] == ST_WAITING)
                and self.p_priority[q] < priority
            ):
                lower = q
            q = self.p_next[q]
        return failed if failed != NONE else lower

    def add_pair(self, list_id, int local, int remote, *, int state=ST_WAITING):
        """Add the pair of two stored candidates as it is; return its id.

        No base replacement, pruning or limit applies: this is for triggered
        checks to peer-reflexive remote candidates and for valid pairs with a
        peer-reflexive local candidate (RFC 8445 §7.2.5.3.2, §7.3.1.4). An
        existing pair of the same candidates is returned unchanged.

        Raises:
            CheckListError: the list, a candidate or the state is invalid,
                or the candidates cannot be paired.
        """
        cdef int32_t cl = self._list_id(list_id)
        cdef _Candidates lo = self._local_candidates[cl]
        cdef _Candidates re = self._remote_candidates[cl]
        cdef Side ls, rs
        if state < ST_FROZEN or state > ST_FAILED:
            raise CheckListError(f"pair state {state} is invalid, expected 0 to 4")
        if local < 0 or local >= lo.size:
            raise CheckListError(f"local candidate {local} not found in list {cl}")
        if remote < 0 or remote >= re.size:
            raise CheckListError(f"remote candidate {remote} not found in list {cl}")
        lo.fill(&ls)
        re.fill(&rs)
        if not _can_pair(&ls, local, &rs, remote):
            raise CheckListError(
                f"local candidate {local} and remote candidate {remote} cannot be"
                " paired: component, transport, address family or TCP type differ"
            )
        cdef int32_t q = self.l_head[cl]
        while q != NONE:
            if self.p_local[q] == local and self.p_remote[q] == remote:
                return q
            q = self.p_next[q]
        cdef int32_t a = self.l_agent[cl]
        cdef int32_t p = self._alloc_pair()
        self.p_list[p] = cl
        self.p_agent[p] = a
        self.p_component[p] = ls.component[local]
        self.p_local[p] = local
        self.p_remote[p] = remote
        self.p_lfound[p] = ls.foundation[local]
        self.p_rfound[p] = rs.foundation[remote]
        self.p_lprio[p] = ls.priority[local]
        self.p_rprio[p] = rs.priority[remote]
        self.p_priority[p] = _pair_priority(
            ls.priority[local], rs.priority[remote], self.a_controlling[a]
        )
        self.p_transport[p] = ls.transport[local]
        self._init_pair(p)
        self.p_state[p] = state
        self._link_sorted(cl, p)
        self.l_count[cl] += 1
        self.a_idle[a] = 0
        return p

    def find_pair(self, list_id, int local, int remote):
        """Return the id of the list's pair of these candidates, or -1."""
        cdef int32_t cl = self._list_id(list_id)
        cdef int32_t q = self.l_head[cl]
        while q != NONE:
            if self.p_local[q] == local and self.p_remote[q] == remote:
                return q
            q = self.p_next[q]
        return NONE

    def pairs(self, list_id):
        """Return the list's pair ids in check-list order (int32 array)."""
        cdef int32_t cl = self._list_id(list_id)
        result = np.empty(self.l_count[cl], np.int32)
        cdef int32_t[::1] out = result
        cdef int32_t p = self.l_head[cl]
        cdef Py_ssize_t i = 0
        while p != NONE:
            out[i] = p
            i += 1
            p = self.p_next[p]
        return result

    def queue(self, list_id):
        """Return the pair ids in the list's triggered-check queue, first out first."""
        cdef int32_t cl = self._list_id(list_id)
        items = []
        cdef int32_t p = self.l_qhead[cl]
        while p != NONE:
            items.append(p)
            p = self.p_qnext[p]
        return np.array(items, np.int32)

    def lists(self, agent_id):
        """Return the agent's list ids in check-list-set order (int32 array)."""
        cdef int32_t a = self._agent_id(agent_id)
        result = np.empty(self.a_list_count[a], np.int32)
        cdef int32_t[::1] out = result
        cdef int32_t cl = self.a_head[a]
        cdef Py_ssize_t i = 0
        while cl != NONE:
            out[i] = cl
            i += 1
            cl = self.l_next[cl]
        return result

    def list_agent(self, list_id):
        """Return the id of the agent that owns the list."""
        return self.l_agent[self._list_id(list_id)]

    def is_running(self, list_id):
        """Whether the list takes part in scheduling."""
        return bool(self.l_running[self._list_id(list_id)])

    def candidate_count(self, list_id):
        """Return the numbers of stored ``(local, remote)`` candidates of the list."""
        cdef int32_t cl = self._list_id(list_id)
        return self._local_candidates[cl].size, self._remote_candidates[cl].size

    def list_state_code(self, list_id, int components):
        """Return 0 (running), 1 (completed) or 2 (failed) for the list.

        RFC 8445 §6.1.2.1 and §7.2.5.4: completed when each component 1 to
        ``components`` has a valid nominated pair; failed when every pair is
        SUCCEEDED or FAILED and a component has no valid pair. A list without
        pairs is running.
        """
        cdef int32_t cl = self._list_id(list_id)
        cdef int32_t p
        cdef int c
        cdef bint done = True, all_nominated = True, all_valid = True
        cdef bint has_valid, has_nominated
        if components < 1:
            raise CheckListError(f"components is {components}, expected 1 or more")
        if self.l_head[cl] == NONE:
            return LS_RUNNING
        p = self.l_head[cl]
        while p != NONE:
            if self.p_state[p] != ST_SUCCEEDED and self.p_state[p] != ST_FAILED:
                done = False
            p = self.p_next[p]
        for c in range(1, components + 1):
            has_valid = False
            has_nominated = False
            p = self.l_head[cl]
            while p != NONE:
                if self.p_component[p] == c and self.p_valid[p]:
                    has_valid = True
                    if self.p_nominated[p]:
                        has_nominated = True
                p = self.p_next[p]
            all_valid = all_valid and has_valid
            all_nominated = all_nominated and has_nominated
        if all_nominated:
            return LS_COMPLETED
        if done and not all_valid:
            return LS_FAILED
        return LS_RUNNING

    # Checks

    def next_check(self, agent_id, double now):
        """Pick the agent's next check (RFC 8445 §6.1.4.2), or None.

        Returns ``(list_id, pair_id)``; the pair is now IN_PROGRESS and the
        agent's next check is due Ta later. None when the check is not due
        yet or no list has a pair to check.

        Raises:
            CheckListError: the agent is not found.
        """
        cdef int32_t a = self._agent_id(agent_id)
        cdef int32_t cl = NONE
        cdef int32_t p = self._agent_next(a, now, &cl)
        if p == NONE:
            return None
        return cl, p

    def schedule_arrays(self, double now):
        """Run ``next_check`` for every agent; return (agents, lists, pairs) arrays."""
        cdef Py_ssize_t size = self.live_agents
        agents = np.empty(size, np.int32)
        lists = np.empty(size, np.int32)
        pairs = np.empty(size, np.int32)
        cdef int32_t[::1] oa = agents
        cdef int32_t[::1] ol = lists
        cdef int32_t[::1] op = pairs
        cdef Py_ssize_t i, n = 0
        cdef int32_t p, cl
        with nogil:
            for i in range(self.agent_slots):
                if not self.a_in_use[i]:
                    continue
                p = self._agent_next(<int32_t>i, now, &cl)
                if p != NONE:
                    oa[n] = <int32_t>i
                    ol[n] = cl
                    op[n] = p
                    n += 1
        return agents[:n], lists[:n], pairs[:n]

    def trigger(self, pair_id, *, bint nominate=False):
        """Queue a triggered check of the pair (RFC 8445 §7.3.1.4, §7.2.5.1).

        A SUCCEEDED pair is left alone unless ``nominate`` is set. Otherwise
        the pair becomes WAITING and joins the end of its list's queue unless
        it is queued already; ``nominate`` also sets its ``use_candidate``
        flag. Returns whether the pair was queued. Cancelling an IN_PROGRESS
        transaction of the pair is up to the caller.

        Raises:
            CheckListError: the pair is not found.
        """
        cdef int32_t p = self._pair_id(pair_id)
        cdef int32_t cl = self.p_list[p]
        if self.p_state[p] == ST_SUCCEEDED and not nominate:
            return False
        self.p_state[p] = ST_WAITING
        if nominate:
            self.p_use_candidate[p] = 1
        if not self.p_queued[p]:
            self.p_queued[p] = 1
            self.p_qnext[p] = NONE
            if self.l_qtail[cl] == NONE:
                self.l_qhead[cl] = p
            else:
                self.p_qnext[self.l_qtail[cl]] = p
            self.l_qtail[cl] = p
        self.a_idle[self.p_agent[p]] = 0
        return True

    def mark_succeeded(self, pair_id):
        """Set the pair SUCCEEDED and unfreeze its foundation (RFC 8445 §7.2.5.3.3).

        Every FROZEN pair with the same foundation in any list of the agent
        becomes WAITING.

        Raises:
            CheckListError: the pair is not found.
        """
        cdef int32_t p = self._pair_id(pair_id)
        self.p_state[p] = ST_SUCCEEDED
        self.p_deadline[p] = INFINITY
        self._unfreeze_foundation(self.p_agent[p], p)
        self.a_idle[self.p_agent[p]] = 0

    def mark_failed(self, pair_id):
        """Set the pair FAILED (RFC 8445 §7.2.5.2); other pairs keep their states.

        Raises:
            CheckListError: the pair is not found.
        """
        cdef int32_t p = self._pair_id(pair_id)
        self.p_state[p] = ST_FAILED
        self.p_deadline[p] = INFINITY
        self.a_idle[self.p_agent[p]] = 0

    def set_valid(self, pair_id, bint valid=True):
        """Set or clear the pair's valid flag (it is in the valid list)."""
        self.p_valid[self._pair_id(pair_id)] = valid

    def set_nominated(self, pair_id, bint nominated=True):
        """Set or clear the pair's nominated flag."""
        self.p_nominated[self._pair_id(pair_id)] = nominated

    def set_use_candidate(self, pair_id, bint value):
        """Set or clear whether the pair's checks carry USE-CANDIDATE."""
        self.p_use_candidate[self._pair_id(pair_id)] = value

    def poll_retransmits_arrays(
        self,
        double now,
        *,
        int max_transmissions=7,
        double final_wait_factor=16.0,
        double reliable_timeout=39.5,
    ):
        """Advance the retransmission timers of every pair in progress.

        RFC 8489 §6.2.1: over UDP a check is sent up to ``max_transmissions``
        times, the waits doubling from the pair's RTO, and fails
        ``final_wait_factor`` RTOs after the last transmission. Over TCP it
        is never resent and fails ``reliable_timeout`` seconds after it
        started. Returns ``(retransmit, timed_out)`` int32 arrays of pair
        ids; timed-out pairs are now FAILED (RFC 8445 §7.2.5.2.3).

        Raises:
            CheckListError: a parameter is out of range.
        """
        if max_transmissions < 1 or max_transmissions > 255:
            raise CheckListError(
                f"max_transmissions is {max_transmissions}, expected 1 to 255"
            )
        if not final_wait_factor > 0.0:
            raise CheckListError(
                f"final_wait_factor is {final_wait_factor}, expected a positive number"
            )
        if not reliable_timeout > 0.0:
            raise CheckListError(
                f"reliable_timeout is {reliable_timeout}, expected a positive number"
            )
        resend = []
        failed = []
        cdef Py_ssize_t i
        cdef int32_t p
        cdef int sent
        cdef double wait
        for i in range(self.pair_slots):
            p = <int32_t>i
            if not self.p_in_use[p] or self.p_state[p] != ST_IN_PROGRESS:
                continue
            if self.p_deadline[p] > now:
                continue
            if self.p_transport[p] == TR_TCP:
                if now >= self.p_started[p] + reliable_timeout:
                    self._time_out(p)
                    failed.append(p)
                else:
                    self.p_deadline[p] = self.p_started[p] + reliable_timeout
                continue
            sent = self.p_retransmits[p] + 1
            if sent >= max_transmissions:
                self._time_out(p)
                failed.append(p)
                continue
            self.p_retransmits[p] = sent
            if sent + 1 >= max_transmissions:
                wait = self.p_rto[p] * final_wait_factor
            else:
                wait = ldexp(self.p_rto[p], sent)
            self.p_deadline[p] = now + wait
            resend.append(p)
        return np.array(resend, np.int32), np.array(failed, np.int32)

    cdef void _time_out(self, int32_t p) noexcept:
        self.p_state[p] = ST_FAILED
        self.p_deadline[p] = INFINITY
        self.a_idle[self.p_agent[p]] = 0

    # Inspection

    @property
    def pair_count(self):
        """Number of live pairs in the table."""
        return self.live_pairs

    @property
    def list_count(self):
        """Number of live check lists in the table."""
        return self.live_lists

    @property
    def agent_count(self):
        """Number of live agents in the table."""
        return self.live_agents

    def column(self, str name):
        """Return a read-only view of a pair column over all pair slots.

        The view is valid until the next call that adds pairs; ``in_use``
        marks the live slots.

        Raises:
            CheckListError: there is no such column.
        """
        if name not in self._pairs or name in ("next", "queue_next"):
            raise CheckListError(f"pair column {name!r} not found")
        view = self._pairs[name][: self.pair_slots]
        if name in _PAIR_FLAGS:
            view = view.view(np.bool_)
        else:
            view = view.view()
        view.flags.writeable = False
        return view

    def pair_row(self, pair_id):
        """Return the pair's fields as a tuple in ``PairInfo`` order.

        Raises:
            CheckListError: the pair is not found.
        """
        cdef int32_t p = self._pair_id(pair_id)
        return (
            p,
            self.p_list[p],
            self.p_agent[p],
            self.p_component[p],
            self.p_local[p],
            self.p_remote[p],
            self.p_lfound[p],
            self.p_rfound[p],
            self.p_lprio[p],
            self.p_rprio[p],
            self.p_priority[p],
            self.p_state[p],
            bool(self.p_valid[p]),
            bool(self.p_nominated[p]),
            bool(self.p_use_candidate[p]),
            bool(self.p_queued[p]),
            self.p_deadline[p],
            self.p_retransmits[p],
        )

    def pair_state(self, pair_id):
        """Return the pair's state code (0 to 4)."""
        return self.p_state[self._pair_id(pair_id)]

    def copy(self):
        """Return an independent copy of the table."""
        cls = type(self)
        cdef CheckListCore other = cls.__new__(cls)
        other.default_max_pairs = self.default_max_pairs
        other.pair_capacity = self.pair_capacity
        other.pair_slots = self.pair_slots
        other.list_capacity = self.list_capacity
        other.list_slots = self.list_slots
        other.agent_capacity = self.agent_capacity
        other.agent_slots = self.agent_slots
        other.free_pair = self.free_pair
        other.free_list = self.free_list
        other.free_agent = self.free_agent
        other.live_pairs = self.live_pairs
        other.live_lists = self.live_lists
        other.live_agents = self.live_agents
        other._pairs = {name: array.copy() for name, array in self._pairs.items()}
        other._lists = {name: array.copy() for name, array in self._lists.items()}
        other._agents = {name: array.copy() for name, array in self._agents.items()}
        other._local_candidates = [
            None if store is None else (<_Candidates>store).copy()
            for store in self._local_candidates
        ]
        other._remote_candidates = [
            None if store is None else (<_Candidates>store).copy()
            for store in self._remote_candidates
        ]
        other._bind()
        return other
