"""Property tests: the compiled check-list table against the pure-Python reference.

Hypothesis draws random candidate sets and random sequences of operations
(agents, lists, trickled candidates, checks, outcomes, removals, role
changes, time passing) and applies each operation to a ``CheckListTable``
and a ``ReferenceCheckListTable``. After every step the two must have
returned the same value (or raised the same error) and must hold the same
pairs, in the same order, with the same states, flags and deadlines.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rice_fast.ice.checklist import (
    TCP_ACTIVE,
    TCP_NONE,
    TCP_PASSIVE,
    TCP_SO,
    TRANSPORT_TCP,
    TRANSPORT_UDP,
    CandidateArrays,
    CheckListError,
    CheckListTable,
    PairState,
    ReferenceCheckListTable,
    Retransmits,
    ScheduledChecks,
    form_pairs,
)

Table = CheckListTable | ReferenceCheckListTable

# No deadline: the tests check behaviour, never timing.
property_settings = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# A few fixed priorities make equal pair priorities, and so the tie-breaks,
# common; random ones cover the rest of the range.
PRIORITIES = st.one_of(
    st.sampled_from([1, 2, 100, 2130706431, 1694498815, 16777215]),
    st.integers(1, 2**31 - 1),
)
# Mostly UDP and IPv4, so that most drawn candidates can pair.
TRANSPORTS = st.sampled_from(
    [
        *[(TRANSPORT_UDP, TCP_NONE)] * 6,
        (TRANSPORT_TCP, TCP_ACTIVE),
        (TRANSPORT_TCP, TCP_PASSIVE),
        (TRANSPORT_TCP, TCP_SO),
    ]
)


@st.composite
def candidate_arrays(
    draw: st.DrawFn,
    *,
    own_base: list[bool] | None,
    min_size: int = 0,
    max_size: int = 6,
) -> tuple[CandidateArrays, list[bool]]:
    """Draw candidates. ``own_base`` lists the existing local ones (None: remote).

    Returns the arrays and, for local candidates, whether each new one is
    its own base. A reflexive candidate's base is an existing or earlier
    candidate that is its own base.
    """
    size = draw(st.integers(min_size, max_size))
    rows = []
    flags: list[bool] = []
    known = [] if own_base is None else list(own_base)
    for _ in range(size):
        transport, tcp_type = draw(TRANSPORTS)
        family = draw(st.sampled_from([4, 4, 4, 4, 6, 6, 0]))
        link_local = family == 6 and draw(st.integers(0, 3)) == 0
        base = -1
        if own_base is not None:
            bases = [i for i, own in enumerate(known) if own]
            reflexive = draw(st.booleans())
            if bases and reflexive:
                base = draw(st.sampled_from(bases))
            known.append(base < 0)
            flags.append(base < 0)
        rows.append(
            (
                draw(st.integers(1, 2)),
                transport,
                tcp_type,
                family,
                link_local,
                draw(PRIORITIES),
                draw(st.integers(0, 3)),
                base,
            )
        )
    columns = list(zip(*rows, strict=True)) if rows else [()] * 8
    arrays = CandidateArrays.build(
        component=np.array(columns[0], np.uint16),
        transport=np.array(columns[1], np.uint8),
        tcp_type=np.array(columns[2], np.uint8),
        family=np.array(columns[3], np.uint8),
        link_local=np.array(columns[4], np.bool_),
        priority=np.array(columns[5], np.uint32),
        foundation=np.array(columns[6], np.int32),
        base=np.array(columns[7], np.int32),
    )
    return arrays, flags


def plain(value: Any) -> Any:
    """Turn arrays and result records into comparable Python values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, ScheduledChecks):
        return (
            "scheduled",
            value.agents.tolist(),
            value.lists.tolist(),
            value.pairs.tolist(),
        )
    if isinstance(value, Retransmits):
        return ("retransmits", value.retransmit.tolist(), value.timed_out.tolist())
    if isinstance(value, tuple):
        return tuple(plain(item) for item in value)
    return value


def outcome(call: Callable[[], Any]) -> Any:
    try:
        return ("ok", plain(call()))
    except CheckListError as error:
        return ("error", str(error))


@dataclass
class Model:
    """What the test tracks itself: live ids and the local base flags."""

    agents: list[int] = field(default_factory=list)
    lists: list[int] = field(default_factory=list)
    own_base: dict[int, list[bool]] = field(default_factory=dict)
    local: dict[int, list[tuple[int, ...]]] = field(default_factory=dict)
    remote: dict[int, list[tuple[int, ...]]] = field(default_factory=dict)
    now: float = 0.0

    def forget(self, check_list: int) -> None:
        self.lists.remove(check_list)
        del self.own_base[check_list]
        del self.local[check_list]
        del self.remote[check_list]


def pairing_keys(arrays: CandidateArrays) -> list[tuple[int, ...]]:
    """Per candidate, the fields that decide whether two candidates pair."""
    return [
        (
            int(arrays.component[i]),
            int(arrays.transport[i]),
            int(arrays.tcp_type[i]),
            int(arrays.family[i]),
            int(arrays.link_local[i]),
        )
        for i in range(len(arrays))
    ]


def keys_pair(local: tuple[int, ...], remote: tuple[int, ...]) -> bool:
    if local[0] != remote[0] or local[1] != remote[1] or local[3] == 0:
        return False
    if local[3] != remote[3] or local[4] != remote[4]:
        return False
    if local[1] == TRANSPORT_TCP:
        tcp = {(TCP_ACTIVE, TCP_PASSIVE), (TCP_PASSIVE, TCP_ACTIVE), (TCP_SO, TCP_SO)}
        return (local[2], remote[2]) in tcp
    return True


def snapshot(table: Table, model: Model) -> dict[object, object]:
    state: dict[object, object] = {
        "counts": (table.pair_count, table.list_count, table.agent_count),
        "wakeup": table.next_wakeup(),
    }
    for agent in model.agents:
        state["agent", agent] = (
            table.lists(agent).tolist(),
            table.next_deadline(agent),
            table.is_controlling(agent),
        )
    for check_list in model.lists:
        pairs = table.pairs(check_list).tolist()
        state["list", check_list] = (
            pairs,
            table.queue(check_list).tolist(),
            table.is_running(check_list),
            table.candidate_count(check_list),
            table.list_agent(check_list),
            table.list_state(check_list, 2),
        )
        for pair in pairs:
            state["pair", pair] = table.pair(pair)
    return state


class Driver:
    """Apply each drawn operation to both tables and compare."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data
        self.fast = CheckListTable(max_pairs=data.draw(st.integers(1, 12)))
        self.reference = ReferenceCheckListTable(max_pairs=self.fast.default_max_pairs)
        self.model = Model()

    def both(self, name: str, *args: Any, **kwargs: Any) -> Any:
        fast = outcome(lambda: getattr(self.fast, name)(*args, **kwargs))
        reference = outcome(lambda: getattr(self.reference, name)(*args, **kwargs))
        assert fast == reference, f"{name}{args}{kwargs}"
        return fast

    def pick(self, items: list[int]) -> int:
        # Now and then an id that is not (or no longer) live, to compare errors.
        if not items or self.data.draw(st.integers(0, 19)) == 0:
            return self.data.draw(st.integers(-1, 40))
        return self.data.draw(st.sampled_from(items))

    def live_pairs(self) -> list[int]:
        return sorted(
            int(p) for lst in self.model.lists for p in self.reference.pairs(lst)
        )

    def step(self) -> None:
        model = self.model
        model.now += self.data.draw(st.sampled_from([0.0, 0.01, 0.05, 0.2, 1.0, 10.0]))
        kinds = ["add_agent", "schedule"]
        if model.agents:
            kinds += ["add_list"] * 4 + ["start"] * 3 + ["schedule", "next_check"] * 4
            kinds += ["set_role", "record"]
        if model.lists:
            kinds += ["add_remote", "add_local"] * 3 + ["add_pair"] * 2
            kinds += ["set_running", "remove_component"]
        if self.live_pairs():
            kinds += ["trigger", "succeed", "fail", "retransmit"] * 3 + ["flag"] * 2
        # Removals are rare, so that tables grow.
        if self.data.draw(st.integers(0, 29)) == 0:
            kinds = ["remove_list", "remove_agent"] if model.lists else kinds
        kind = self.data.draw(st.sampled_from(kinds))
        getattr(self, "op_" + kind)()
        assert snapshot(self.fast, model) == snapshot(self.reference, model)

    def op_add_agent(self) -> None:
        controlling = self.data.draw(st.booleans())
        ta = self.data.draw(st.sampled_from([0.05, 0.02, 0.5]))
        max_pairs = self.data.draw(st.one_of(st.none(), st.integers(1, 8)))
        result = self.both(
            "add_agent", controlling=controlling, ta=ta, max_pairs=max_pairs
        )
        self.model.agents.append(result[1])

    def op_add_list(self) -> None:
        agent = self.pick(self.model.agents)
        local, flags = self.data.draw(candidate_arrays(own_base=[], min_size=2))
        remote, _ = self.data.draw(candidate_arrays(own_base=None, min_size=2))
        result = self.both("add_list", agent, local, remote)
        if result[0] == "ok":
            self.model.lists.append(result[1])
            self.model.own_base[result[1]] = flags
            self.model.local[result[1]] = pairing_keys(local)
            self.model.remote[result[1]] = pairing_keys(remote)

    def op_start(self) -> None:
        self.both("start", self.pick(self.model.agents), self.model.now)

    def op_schedule(self) -> None:
        self.both("schedule", self.model.now)

    def op_next_check(self) -> None:
        self.both("next_check", self.pick(self.model.agents), self.model.now)

    def op_add_remote(self) -> None:
        check_list = self.pick(self.model.lists)
        remote, _ = self.data.draw(candidate_arrays(own_base=None, max_size=3))
        pair = self.data.draw(st.booleans())
        result = self.both("add_remote_candidates", check_list, remote, pair=pair)
        if result[0] == "ok":
            self.model.remote[check_list] += pairing_keys(remote)

    def op_add_local(self) -> None:
        check_list = self.pick(self.model.lists)
        existing = self.model.own_base.get(check_list, [])
        local, flags = self.data.draw(candidate_arrays(own_base=existing, max_size=3))
        pair = self.data.draw(st.booleans())
        result = self.both("add_local_candidates", check_list, local, pair=pair)
        if result[0] == "ok":
            self.model.own_base[check_list] = existing + flags
            self.model.local[check_list] += pairing_keys(local)

    def op_add_pair(self) -> None:
        check_list = self.pick(self.model.lists)
        local_keys = self.model.local.get(check_list, [])
        remote_keys = self.model.remote.get(check_list, [])
        choices = [
            (i, j)
            for i, lk in enumerate(local_keys)
            for j, rk in enumerate(remote_keys)
            if keys_pair(lk, rk)
        ]
        pick_pairable = self.data.draw(st.integers(0, 4)) > 0
        if choices and pick_pairable:
            local, remote = self.data.draw(st.sampled_from(choices))
        else:
            local = self.data.draw(st.integers(-1, 8))
            remote = self.data.draw(st.integers(-1, 8))
        state = self.data.draw(st.sampled_from(list(PairState)))
        self.both("add_pair", check_list, local, remote, state=state)

    def op_remove_component(self) -> None:
        check_list = self.pick(self.model.lists)
        self.both("remove_component", check_list, self.data.draw(st.integers(1, 2)))

    def op_set_running(self) -> None:
        check_list = self.pick(self.model.lists)
        self.both("set_running", check_list, self.data.draw(st.booleans()))

    def op_remove_list(self) -> None:
        check_list = self.pick(self.model.lists)
        result = self.both("remove_list", check_list)
        if result[0] == "ok":
            self.model.forget(check_list)

    def op_remove_agent(self) -> None:
        agent = self.pick(self.model.agents)
        owned = [lst for lst in self.model.lists if self._owner(lst) == agent]
        result = self.both("remove_agent", agent)
        if result[0] == "ok":
            self.model.agents.remove(agent)
            for check_list in owned:
                self.model.forget(check_list)

    def _owner(self, check_list: int) -> int:
        return self.reference.list_agent(check_list)

    def op_trigger(self) -> None:
        pair = self.pick(self.live_pairs())
        self.both("trigger", pair, nominate=self.data.draw(st.booleans()))

    def op_succeed(self) -> None:
        self.both("mark_succeeded", self.pick(self.live_pairs()))

    def op_fail(self) -> None:
        self.both("mark_failed", self.pick(self.live_pairs()))

    def op_flag(self) -> None:
        name = self.data.draw(st.sampled_from(["set_valid", "set_nominated"]))
        self.both(name, self.pick(self.live_pairs()), self.data.draw(st.booleans()))

    def op_retransmit(self) -> None:
        transmissions = self.data.draw(st.integers(1, 7))
        self.both(
            "poll_retransmits",
            self.model.now,
            max_transmissions=transmissions,
            reliable_timeout=self.data.draw(st.sampled_from([1.0, 39.5])),
        )

    def op_set_role(self) -> None:
        agent = self.pick(self.model.agents)
        self.both("set_role", agent, self.data.draw(st.booleans()))

    def op_record(self) -> None:
        self.both("record_transaction", self.pick(self.model.agents), self.model.now)


@property_settings
@given(st.data())
def test_table_matches_reference(data: st.DataObject) -> None:
    driver = Driver(data)
    for _ in range(40):
        driver.step()


@property_settings
@given(st.data())
def test_copy_matches_reference(data: st.DataObject) -> None:
    driver = Driver(data)
    for _ in range(15):
        driver.step()
    driver.fast = driver.fast.copy()
    driver.reference = driver.reference.copy()
    for _ in range(15):
        driver.step()


@property_settings
@given(
    candidate_arrays(own_base=[]),
    candidate_arrays(own_base=None),
    st.booleans(),
    st.integers(0, 40),
)
def test_form_pairs_rules(
    local_draw: tuple[CandidateArrays, list[bool]],
    remote_draw: tuple[CandidateArrays, list[bool]],
    controlling: bool,
    max_pairs: int,
) -> None:
    local, _ = local_draw
    remote, _ = remote_draw
    formed = form_pairs(local, remote, controlling=controlling, max_pairs=max_pairs)

    # Check each rule against a brute force over every combination.
    expected: dict[tuple[int, int], int] = {}
    for i in range(len(local)):
        base = int(local.base[i]) if local.base[i] >= 0 else i
        for j in range(len(remote)):
            if not compatible(local, i, remote, j):
                continue
            priority = rfc_pair_priority(
                int(local.priority[i]), int(remote.priority[j]), controlling
            )
            key = (base, j)
            expected[key] = max(expected.get(key, 0), priority)
    ranked = sorted(
        expected.items(),
        key=lambda item: (-item[1], int(remote.component[item[0][1]]), item[0]),
    )[:max_pairs]
    assert formed.local.tolist() == [key[0] for key, _ in ranked]
    assert formed.remote.tolist() == [key[1] for key, _ in ranked]
    assert formed.priority.tolist() == [priority for _, priority in ranked]

    # The table forms the same pairs, all FROZEN before start.
    for table_class in (CheckListTable, ReferenceCheckListTable):
        table = table_class(max_pairs=max(max_pairs, 1))
        agent = table.add_agent(controlling=controlling)
        check_list = table.add_list(agent, local, remote)
        pairs = [table.pair(p) for p in table.pairs(check_list)]
        if max_pairs:
            assert [(p.local, p.remote) for p in pairs] == [key for key, _ in ranked]
        assert all(p.state is PairState.FROZEN for p in pairs)


def compatible(local: CandidateArrays, i: int, remote: CandidateArrays, j: int) -> bool:
    """RFC 8445 §6.1.2.2 and RFC 6544 §6.2, written out independently."""
    if local.component[i] != remote.component[j]:
        return False
    if local.transport[i] != remote.transport[j]:
        return False
    if local.family[i] == 0 or local.family[i] != remote.family[j]:
        return False
    if bool(local.link_local[i]) != bool(remote.link_local[j]):
        return False
    if local.transport[i] == TRANSPORT_TCP:
        pair = (int(local.tcp_type[i]), int(remote.tcp_type[j]))
        return pair in {
            (TCP_ACTIVE, TCP_PASSIVE),
            (TCP_PASSIVE, TCP_ACTIVE),
            (TCP_SO, TCP_SO),
        }
    return True


def rfc_pair_priority(local: int, remote: int, controlling: bool) -> int:
    g, d = (local, remote) if controlling else (remote, local)
    return 2**32 * min(g, d) + 2 * max(g, d) + (1 if g > d else 0)


def test_empty_table_never_wakes() -> None:
    table = CheckListTable()
    assert table.next_wakeup() == math.inf
