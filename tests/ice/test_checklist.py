"""Unit tests of the check-list table, run on the compiled table and the reference.

The scenarios follow RFC 8445 §6.1.2 to §6.1.4 and §7.2.5, RFC 8838 §12 and
RFC 8489 §6.2.1; each test names the section it checks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from rice_fast.ice.candidate import Candidate, CandidateType, TcpType, pair_priority
from rice_fast.ice.checklist import (
    TCP_ACTIVE,
    TCP_NONE,
    TCP_PASSIVE,
    TCP_SO,
    TRANSPORT_TCP,
    TRANSPORT_UDP,
    CandidateArrays,
    CheckListError,
    CheckListState,
    CheckListTable,
    FoundationIds,
    PairState,
    ReferenceCheckListTable,
    form_pairs,
)
from rice_fast.ice.errors import IceError
from rice_fast.stun.transport import TransportType

Table = CheckListTable | ReferenceCheckListTable

HOST = 2130706431  # type preference 126, local preference 65535, component 1
SRFLX = 1694498815  # type preference 100
RELAY = 16777215  # type preference 0


@pytest.fixture(
    params=[CheckListTable, ReferenceCheckListTable], ids=["fast", "reference"]
)
def table_class(request: pytest.FixtureRequest) -> type[Table]:
    cls: type[Table] = request.param
    return cls


@pytest.fixture
def table(table_class: type[Table]) -> Table:
    return table_class()


def arrays(
    priorities: Sequence[int],
    *,
    component: int | Sequence[int] = 1,
    foundation: int | Sequence[int] = 0,
    transport: int | Sequence[int] = TRANSPORT_UDP,
    tcp_type: int | Sequence[int] = TCP_NONE,
    family: int | Sequence[int] = 4,
    link_local: bool | Sequence[bool] = False,
    base: int | Sequence[int] = -1,
) -> CandidateArrays:
    return CandidateArrays.build(
        component=np.asarray(component),
        priority=np.asarray(priorities),
        foundation=np.asarray(foundation),
        transport=np.asarray(transport),
        tcp_type=np.asarray(tcp_type),
        family=np.asarray(family),
        link_local=np.asarray(link_local),
        base=np.asarray(base),
    )


def states(table: Table, check_list: int) -> list[PairState]:
    return [table.pair(p).state for p in table.pairs(check_list)]


def keys(table: Table, check_list: int) -> list[tuple[int, int]]:
    return [
        (table.pair(p).local, table.pair(p).remote) for p in table.pairs(check_list)
    ]


# Pair formation (RFC 8445 §6.1.2.2 to §6.1.2.5)


def test_priority_matches_rfc_formula(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    check_list = table.add_list(agent, arrays([HOST, 5]), arrays([7, SRFLX]))
    for pair_id in table.pairs(check_list):
        pair = table.pair(pair_id)
        assert pair.priority == pair_priority(pair.local_priority, pair.remote_priority)
    table.set_role(agent, False)
    for pair_id in table.pairs(check_list):
        pair = table.pair(pair_id)
        assert pair.priority == pair_priority(pair.remote_priority, pair.local_priority)


def test_pairs_need_same_component_and_family(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    local = arrays([HOST, HOST - 1, HOST - 2], component=[1, 2, 1], family=[4, 4, 6])
    remote = arrays([HOST, HOST - 1], component=[1, 2], family=[4, 4])
    check_list = table.add_list(agent, local, remote)
    assert keys(table, check_list) == [(0, 0), (1, 1)]


def test_link_local_pairs_only_with_link_local(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    local = arrays([HOST, HOST - 1], family=6, link_local=[True, False])
    remote = arrays([HOST, HOST - 1], family=6, link_local=[False, True])
    check_list = table.add_list(agent, local, remote)
    assert sorted(keys(table, check_list)) == [(0, 1), (1, 0)]


def test_unresolved_family_never_pairs(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    check_list = table.add_list(agent, arrays([HOST]), arrays([HOST], family=0))
    assert keys(table, check_list) == []


def test_tcp_types_pair_by_rfc6544(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    tcp_types = [TCP_ACTIVE, TCP_PASSIVE, TCP_SO]
    local = arrays(
        [HOST, HOST - 1, HOST - 2], transport=TRANSPORT_TCP, tcp_type=tcp_types
    )
    remote = arrays(
        [SRFLX, SRFLX - 1, SRFLX - 2], transport=TRANSPORT_TCP, tcp_type=tcp_types
    )
    check_list = table.add_list(agent, local, remote)
    # RFC 6544 §6.2: active-passive, passive-active, so-so.
    assert sorted(keys(table, check_list)) == [(0, 1), (1, 0), (2, 2)]


def test_udp_never_pairs_with_tcp(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    local = arrays([HOST], transport=TRANSPORT_TCP, tcp_type=TCP_PASSIVE)
    check_list = table.add_list(agent, local, arrays([HOST]))
    assert keys(table, check_list) == []


def test_srflx_replaced_by_base_and_pruned(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    # Local 1 is a server-reflexive candidate whose base is local 0.
    local = arrays([HOST, SRFLX], foundation=[0, 1], base=[-1, 0])
    remote = arrays([HOST, SRFLX], foundation=[0, 1])
    check_list = table.add_list(agent, local, remote)
    pairs = [table.pair(p) for p in table.pairs(check_list)]
    assert [(p.local, p.remote) for p in pairs] == [(0, 0), (0, 1)]
    # The host pairs have the higher priorities, so they are the ones kept.
    assert [p.local_foundation for p in pairs] == [0, 0]
    assert [p.local_priority for p in pairs] == [HOST, HOST]


def test_replaced_pair_keeps_its_own_priority(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    # A reflexive candidate with a higher priority than its base: its pair,
    # sent from the base, keeps the reflexive priority and foundation.
    local = arrays([100, HOST], foundation=[0, 1], base=[-1, 0])
    check_list = table.add_list(agent, local, arrays([HOST]))
    (pair_id,) = table.pairs(check_list)
    pair = table.pair(pair_id)
    assert (pair.local, pair.local_priority, pair.local_foundation) == (0, HOST, 1)


def test_order_is_priority_then_component(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    local = arrays([HOST, HOST], component=[2, 1])
    remote = arrays([HOST, HOST], component=[2, 1])
    check_list = table.add_list(agent, local, remote)
    pairs = [table.pair(p) for p in table.pairs(check_list)]
    assert pairs[0].priority == pairs[1].priority
    assert [p.component for p in pairs] == [1, 2]


def test_max_pairs_drops_lowest_priority(table_class: type[Table]) -> None:
    table = table_class(max_pairs=3)
    agent = table.add_agent(controlling=True)
    local = arrays([HOST, SRFLX])
    remote = arrays([HOST, SRFLX, RELAY])
    check_list = table.add_list(agent, local, remote)
    assert table.pair_count == 3
    full = form_pairs(local, remote, controlling=True)
    assert len(full) == 6
    kept = [table.pair(p).priority for p in table.pairs(check_list)]
    assert kept == full.priority[:3].tolist()


def test_agent_max_pairs_overrides_table(table: Table) -> None:
    agent = table.add_agent(controlling=True, max_pairs=1)
    check_list = table.add_list(agent, arrays([HOST, SRFLX]), arrays([HOST]))
    assert keys(table, check_list) == [(0, 0)]


def test_form_pairs_50_by_50_is_sorted() -> None:
    rng = np.random.default_rng(7)
    local = arrays(rng.integers(1, 2**31 - 1, 50).tolist(), foundation=list(range(50)))
    remote = arrays(rng.integers(1, 2**31 - 1, 50).tolist(), foundation=list(range(50)))
    formed = form_pairs(local, remote, controlling=False)
    assert len(formed) == 100
    assert np.all(np.diff(formed.priority.astype(np.float64)) <= 0)


# Initial states (RFC 8445 §6.1.2.6)


def test_initial_states_rfc8445_table_1(table: Table) -> None:
    # Three check lists m1, m2, m3. Each local foundation fN pairs with one
    # remote candidate, so the pair foundations are f1 to f5 as in Table 1.
    agent = table.add_agent(controlling=True)
    m1 = table.add_list(
        agent, arrays([300, 200, 100], foundation=[1, 2, 3]), arrays([HOST])
    )
    m2 = table.add_list(
        agent, arrays([400, 300, 200, 100], foundation=[1, 2, 3, 4]), arrays([HOST])
    )
    m3 = table.add_list(agent, arrays([200, 100], foundation=[1, 5]), arrays([HOST]))
    for check_list in (m1, m2, m3):
        assert all(s is PairState.FROZEN for s in states(table, check_list))
    table.start(agent, 0.0)
    W, F = PairState.WAITING, PairState.FROZEN
    assert states(table, m1) == [W, W, W]
    assert states(table, m2) == [F, F, F, W]
    assert states(table, m3) == [F, W]


def test_initial_state_prefers_lowest_component(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    # Same foundation: the component 2 pair has the higher priority, but
    # the component 1 pair is unfrozen.
    local = arrays([HOST, 100], component=[2, 1])
    remote = arrays([HOST, HOST], component=[2, 1])
    check_list = table.add_list(agent, local, remote)
    table.start(agent, 0.0)
    pairs = [table.pair(p) for p in table.pairs(check_list)]
    assert [(p.component, p.state) for p in pairs] == [
        (2, PairState.FROZEN),
        (1, PairState.WAITING),
    ]


def test_initial_state_highest_priority_within_component(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    check_list = table.add_list(agent, arrays([HOST, HOST - 10]), arrays([HOST]))
    table.start(agent, 0.0)
    assert states(table, check_list) == [PairState.WAITING, PairState.FROZEN]


# Trickle (RFC 8838 §12)


def trickle_lists(table: Table) -> list[int]:
    """The check lists of RFC 8838 Figure 2: s1 to s4, foundations f1 to f4."""
    agent = table.add_agent(controlling=True)
    rows = [[1, 2, 3], [1, 2, 3, 4], [1], [1]]
    lists = []
    for foundations in rows:
        priorities = [1000 - 10 * f for f in foundations]
        local = arrays(priorities, foundation=foundations)
        lists.append(table.add_list(agent, local, arrays([HOST])))
    table.start(agent, 0.0)
    return lists


def test_trickle_rule_1_first_of_foundation(table: Table) -> None:
    s1 = trickle_lists(table)[0]
    (new,) = table.add_local_candidates(s1, arrays([500], foundation=5))
    assert table.pair(new).state is PairState.WAITING


def test_trickle_rule_2_foundation_succeeded(table: Table) -> None:
    s1, s2 = trickle_lists(table)[:2]
    (first,) = table.add_local_candidates(s1, arrays([500], foundation=5))
    table.mark_succeeded(first)
    (second,) = table.add_local_candidates(s2, arrays([500], foundation=5))
    assert table.pair(second).state is PairState.WAITING


def test_trickle_rule_3_otherwise_frozen(table: Table) -> None:
    s3 = trickle_lists(table)[2]
    (new,) = table.add_local_candidates(s3, arrays([500], foundation=3))
    assert table.pair(new).state is PairState.FROZEN


def test_success_unfreezes_foundation_in_all_lists(table: Table) -> None:
    # RFC 8838 Figure 4 and RFC 8445 §7.2.5.3.3.
    s1, s2, s3, s4 = trickle_lists(table)
    first = int(table.pairs(s1)[0])
    assert table.pair(first).local_foundation == 1
    table.mark_succeeded(first)
    for check_list in (s2, s3, s4):
        f1 = next(table.pair(p) for p in table.pairs(check_list))
        assert f1.local_foundation == 1
        assert f1.state is PairState.WAITING
    # Other foundations stay frozen.
    assert states(table, s2)[1:3] == [PairState.FROZEN, PairState.FROZEN]


def test_failure_leaves_foundation_frozen(table: Table) -> None:
    s1, _, s3, _ = trickle_lists(table)
    table.mark_failed(int(table.pairs(s1)[0]))
    assert states(table, s3) == [PairState.FROZEN]


def test_trickled_remote_forms_only_new_pairs(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    check_list = table.add_list(agent, arrays([HOST, SRFLX]), arrays([HOST]))
    before = table.pairs(check_list).tolist()
    new = table.add_remote_candidates(check_list, arrays([SRFLX]))
    assert sorted(keys(table, check_list)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [table.pair(p).remote for p in new] == [1, 1]
    assert set(before) <= set(table.pairs(check_list).tolist())
    assert table.candidate_count(check_list) == (2, 2)


def test_trickled_srflx_redundant_with_host_pair(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    check_list = table.add_list(agent, arrays([HOST]), arrays([HOST]))
    new = table.add_local_candidates(check_list, arrays([SRFLX], base=0))
    assert new.tolist() == []
    assert keys(table, check_list) == [(0, 0)]


def test_trickle_into_full_list_evicts_failed_first(table_class: type[Table]) -> None:
    table = table_class(max_pairs=2)
    agent = table.add_agent(controlling=True)
    check_list = table.add_list(agent, arrays([HOST]), arrays([HOST, SRFLX]))
    high, low = table.pairs(check_list).tolist()
    table.mark_failed(high)
    (new,) = table.add_remote_candidates(check_list, arrays([RELAY]))
    # The failed pair's id is free again, so the new pair may reuse it.
    assert keys(table, check_list) == [(0, 1), (0, 2)]
    assert table.pairs(check_list).tolist() == [low, new]


def test_trickle_into_full_list_evicts_lower_priority(table_class: type[Table]) -> None:
    table = table_class(max_pairs=2)
    agent = table.add_agent(controlling=True)
    check_list = table.add_list(agent, arrays([HOST]), arrays([SRFLX, RELAY]))
    (new,) = table.add_remote_candidates(check_list, arrays([HOST]))
    assert keys(table, check_list) == [(0, 2), (0, 0)]
    assert table.pairs(check_list)[0] == new
    # A lower-priority newcomer than every pair is dropped.
    assert table.add_remote_candidates(check_list, arrays([1])).tolist() == []


def test_unpaired_candidates_never_pair_later(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    check_list = table.add_list(agent, arrays([HOST]), arrays([HOST]))
    assert (
        table.add_remote_candidates(check_list, arrays([100]), pair=False).tolist()
        == []
    )
    assert table.add_local_candidates(check_list, arrays([200])).tolist() != []
    assert (1, 1) not in keys(table, check_list)
    assert (0, 1) not in keys(table, check_list)


def test_add_pair_with_peer_reflexive_remote(table: Table) -> None:
    # RFC 8445 §7.3.1.3 and §7.3.1.4: a prflx remote learned from a request
    # is stored unpaired, then checked through a triggered check.
    agent = table.add_agent(controlling=False)
    check_list = table.add_list(agent, arrays([HOST]), arrays([HOST]))
    table.start(agent, 0.0)
    table.add_remote_candidates(check_list, arrays([SRFLX]), pair=False)
    pair_id = table.add_pair(check_list, 0, 1)
    assert table.add_pair(check_list, 0, 1) == pair_id
    assert table.find_pair(check_list, 0, 1) == pair_id
    assert table.pair(pair_id).state is PairState.WAITING
    assert table.trigger(pair_id)
    assert table.next_check(agent, 0.0) == (check_list, pair_id)


def test_add_pair_rejects_unpairable(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    check_list = table.add_list(agent, arrays([HOST]), arrays([HOST], component=2))
    with pytest.raises(CheckListError, match="cannot be paired"):
        table.add_pair(check_list, 0, 0)
    with pytest.raises(CheckListError, match="not found"):
        table.add_pair(check_list, 0, 5)


# Choosing checks (RFC 8445 §6.1.4.2)


def test_checks_in_priority_order(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    local = arrays([HOST, SRFLX, RELAY], foundation=[0, 1, 2])
    check_list = table.add_list(agent, local, arrays([HOST]))
    table.start(agent, 0.0)
    order = table.pairs(check_list).tolist()
    chosen = [table.next_check(agent, 0.05 * i) for i in range(3)]
    assert chosen == [(check_list, p) for p in order]
    assert all(s is PairState.IN_PROGRESS for s in states(table, check_list))


def test_triggered_check_goes_first(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    local = arrays([HOST, SRFLX, RELAY], foundation=[0, 1, 2])
    check_list = table.add_list(agent, local, arrays([HOST]))
    table.start(agent, 0.0)
    lowest = int(table.pairs(check_list)[-1])
    assert table.trigger(lowest)
    assert table.queue(check_list).tolist() == [lowest]
    assert table.next_check(agent, 0.0) == (check_list, lowest)
    assert table.queue(check_list).tolist() == []


def test_trigger_fifo_and_no_duplicates(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    local = arrays([HOST, SRFLX, RELAY], foundation=[0, 1, 2])
    check_list = table.add_list(agent, local, arrays([HOST]))
    a, _, c = table.pairs(check_list).tolist()
    table.trigger(c)
    table.trigger(a)
    table.trigger(c)
    assert table.queue(check_list).tolist() == [c, a]
    assert table.pair(c).queued


def test_trigger_succeeded_pair_only_to_nominate(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    check_list = table.add_list(agent, arrays([HOST]), arrays([HOST]))
    (pair_id,) = table.pairs(check_list).tolist()
    table.mark_succeeded(pair_id)
    assert not table.trigger(pair_id)
    assert table.pair(pair_id).state is PairState.SUCCEEDED
    assert table.trigger(pair_id, nominate=True)
    pair = table.pair(pair_id)
    assert pair.state is PairState.WAITING
    assert pair.use_candidate


def test_trigger_in_progress_pair_rechecks(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    check_list = table.add_list(agent, arrays([HOST]), arrays([HOST]))
    table.start(agent, 0.0)
    (pair_id,) = table.pairs(check_list).tolist()
    assert table.next_check(agent, 0.0) == (check_list, pair_id)
    assert table.trigger(pair_id)
    assert table.pair(pair_id).state is PairState.WAITING
    assert table.next_check(agent, 0.05) == (check_list, pair_id)


def test_unfreeze_when_no_waiting_pair(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    # Two pairs of foundation (0, 0) and one of (1, 0).
    local = arrays([HOST, HOST - 1, SRFLX], foundation=[0, 0, 1])
    check_list = table.add_list(agent, local, arrays([HOST]))
    table.start(agent, 0.0)
    first, second, third = table.pairs(check_list).tolist()
    assert states(table, check_list) == [
        PairState.WAITING,
        PairState.FROZEN,
        PairState.WAITING,
    ]
    assert table.next_check(agent, 0.0) == (check_list, first)
    assert table.next_check(agent, 0.05) == (check_list, third)
    # Foundation (0, 0) has a check in progress, so the frozen pair waits.
    assert table.next_check(agent, 0.1) is None
    assert table.next_deadline(agent) == math.inf
    table.mark_failed(first)
    assert table.next_check(agent, 0.15) == (check_list, second)


def test_unfreeze_one_pair_per_foundation(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    local = arrays([HOST, HOST - 1, SRFLX], foundation=[0, 0, 1])
    check_list = table.add_list(agent, local, arrays([HOST]))
    first, second, third = table.pairs(check_list).tolist()
    # Checks before start: every pair frozen, nothing in progress.
    table.start(agent, 0.0)
    table.mark_failed(first)
    table.mark_failed(third)
    assert table.next_check(agent, 0.0) == (check_list, second)


def test_lists_take_turns(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    audio = table.add_list(
        agent, arrays([HOST, SRFLX], foundation=[0, 1]), arrays([HOST])
    )
    video = table.add_list(
        agent, arrays([HOST, SRFLX], foundation=[2, 3]), arrays([HOST])
    )
    table.start(agent, 0.0)
    chosen = [table.next_check(agent, 0.05 * i) for i in range(4)]
    assert [c[0] for c in chosen if c] == [audio, video, audio, video]


def test_list_without_check_is_skipped(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    first = table.add_list(agent, arrays([HOST]), arrays([HOST]))
    second = table.add_list(
        agent, arrays([HOST, SRFLX], foundation=[1, 2]), arrays([HOST])
    )
    table.start(agent, 0.0)
    assert table.next_check(agent, 0.0) == (first, int(table.pairs(first)[0]))
    assert table.next_check(agent, 0.05) is not None
    # The first list has nothing left; the second list is tried at once.
    picked = table.next_check(agent, 0.1)
    assert picked is not None
    assert picked[0] == second


def test_stopped_list_gets_no_checks(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    check_list = table.add_list(agent, arrays([HOST]), arrays([HOST]))
    table.start(agent, 0.0)
    table.set_running(check_list, False)
    assert not table.is_running(check_list)
    assert table.next_check(agent, 0.0) is None
    table.set_running(check_list, True)
    assert table.next_check(agent, 0.0) is not None


def test_ta_paces_checks(table: Table) -> None:
    agent = table.add_agent(controlling=True, ta=0.02)
    local = arrays([HOST, SRFLX], foundation=[0, 1])
    table.add_list(agent, local, arrays([HOST]))
    assert table.next_check(agent, 0.0) is None  # not started
    assert table.next_deadline(agent) == math.inf
    table.start(agent, 1.0)
    assert table.next_deadline(agent) == 1.0
    assert table.next_check(agent, 1.0) is not None
    assert table.next_deadline(agent) == pytest.approx(1.02)
    assert table.next_check(agent, 1.01) is None
    assert table.next_check(agent, 1.02) is not None


def test_record_transaction_delays_next_check(table: Table) -> None:
    agent = table.add_agent(controlling=True, ta=0.05)
    table.add_list(agent, arrays([HOST]), arrays([HOST]))
    table.record_transaction(agent, 0.0)
    table.start(agent, 0.01)
    assert table.next_deadline(agent) == pytest.approx(0.05)
    assert table.next_check(agent, 0.03) is None
    assert table.next_check(agent, 0.05) is not None


def test_idle_agent_wakes_on_trigger(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    check_list = table.add_list(agent, arrays([HOST]), arrays([HOST]))
    table.start(agent, 0.0)
    (pair_id,) = table.pairs(check_list).tolist()
    assert table.next_check(agent, 0.0) is not None
    table.mark_failed(pair_id)
    assert table.next_check(agent, 0.05) is None
    assert table.next_deadline(agent) == math.inf
    table.trigger(pair_id)
    assert table.next_deadline(agent) == pytest.approx(0.05)
    assert table.next_check(agent, 0.06) == (check_list, pair_id)


def test_schedule_one_check_per_agent(table: Table) -> None:
    agents = []
    for _ in range(5):
        agent = table.add_agent(controlling=True)
        local = arrays([HOST, SRFLX], foundation=[0, 1])
        table.add_list(agent, local, arrays([HOST]))
        table.start(agent, 0.0)
        agents.append(agent)
    first = table.schedule(0.0)
    assert first.agents.tolist() == agents
    assert len(first) == 5
    assert [table.list_agent(lst) for lst in first.lists] == agents
    assert len(table.schedule(0.01)) == 0
    second = table.schedule(0.05)
    assert len(second) == 5
    assert set(second.pairs.tolist()).isdisjoint(first.pairs.tolist())
    assert len(table.schedule(1.0)) == 0
    assert table.next_wakeup() == pytest.approx(0.5)


# Role change (RFC 8445 §7.2.5.1)


def test_role_change_reorders_pairs(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    local = arrays([10, 20], component=[1, 2], foundation=[0, 1])
    remote = arrays([20, 10], component=[1, 2], foundation=[0, 1])
    check_list = table.add_list(agent, local, remote)
    pairs = {key: table.find_pair(check_list, *key) for key in [(0, 0), (1, 1)]}
    # Controlling: G is the local priority, so (20, 10) gets the +1.
    assert keys(table, check_list)[0] == (1, 1)
    table.set_role(agent, False)
    assert not table.is_controlling(agent)
    assert keys(table, check_list)[0] == (0, 0)
    assert table.pair(pairs[0, 0]).priority == pair_priority(20, 10)


# Retransmissions (RFC 8489 §6.2.1)


def test_retransmit_schedule_rfc8489(table: Table) -> None:
    # RFC 8489 §6.2.1: with an RTO of 500 ms a request is sent at 0, 500,
    # 1500, 3500, 7500, 15500 and 31500 ms and times out at 39500 ms.
    agent = table.add_agent(controlling=True, rto=0.5)
    check_list = table.add_list(agent, arrays([HOST]), arrays([HOST]))
    table.start(agent, 0.0)
    (pair_id,) = table.pairs(check_list).tolist()
    assert table.next_check(agent, 0.0) == (check_list, pair_id)
    sends = []
    now = 0.0
    while table.pair(pair_id).state is PairState.IN_PROGRESS:
        now = table.pair(pair_id).deadline
        result = table.poll_retransmits(now)
        if result.retransmit.tolist() == [pair_id]:
            sends.append(now)
        else:
            assert result.timed_out.tolist() == [pair_id]
    assert sends == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert now == 39.5
    assert table.pair(pair_id).state is PairState.FAILED
    assert table.pair(pair_id).retransmits == 6


def test_tcp_check_times_out_without_resend(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    local = arrays([HOST], transport=TRANSPORT_TCP, tcp_type=TCP_ACTIVE)
    remote = arrays([HOST], transport=TRANSPORT_TCP, tcp_type=TCP_PASSIVE)
    check_list = table.add_list(agent, local, remote)
    table.start(agent, 0.0)
    (pair_id,) = table.pairs(check_list).tolist()
    table.next_check(agent, 0.0)
    assert table.poll_retransmits(0.5).retransmit.tolist() == []
    assert table.pair(pair_id).deadline == 39.5
    assert table.poll_retransmits(39.5).timed_out.tolist() == [pair_id]


def test_retransmit_parameters_checked(table: Table) -> None:
    with pytest.raises(CheckListError, match="max_transmissions"):
        table.poll_retransmits(0.0, max_transmissions=0)


# Check list state (RFC 8445 §6.1.2.1, §7.2.5.4)


def test_list_state_transitions(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    local = arrays([HOST, HOST - 1], component=[1, 2])
    remote = arrays([HOST, HOST - 1], component=[1, 2])
    check_list = table.add_list(agent, local, remote)
    one, two = table.pairs(check_list).tolist()
    assert table.list_state(check_list, 2) is CheckListState.RUNNING
    table.mark_succeeded(one)
    table.set_valid(one)
    table.mark_failed(two)
    assert table.list_state(check_list, 2) is CheckListState.FAILED
    assert table.list_state(check_list, 1) is CheckListState.RUNNING
    table.set_nominated(one)
    assert table.list_state(check_list, 1) is CheckListState.COMPLETED
    assert table.list_state(check_list, 1) == "completed"


def test_empty_list_is_running(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    check_list = table.add_list(agent, arrays([]), arrays([]))
    assert table.list_state(check_list, 1) is CheckListState.RUNNING


# Removal and ids


def test_remove_list_and_reuse_ids(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    first = table.add_list(agent, arrays([HOST]), arrays([HOST]))
    second = table.add_list(agent, arrays([HOST]), arrays([HOST]))
    table.start(agent, 0.0)
    table.remove_list(first)
    assert table.lists(agent).tolist() == [second]
    with pytest.raises(CheckListError, match="not found"):
        table.pairs(first)
    assert table.next_check(agent, 0.0) == (second, int(table.pairs(second)[0]))
    again = table.add_list(agent, arrays([HOST]), arrays([HOST]))
    assert again == first
    assert table.list_count == 2


def test_remove_component_stops_pairing(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    local = arrays([HOST, HOST - 1], component=[1, 2])
    remote = arrays([HOST, HOST - 1], component=[1, 2])
    check_list = table.add_list(agent, local, remote)
    table.remove_component(check_list, 2)
    assert [table.pair(p).component for p in table.pairs(check_list)] == [1]
    assert (
        table.add_remote_candidates(check_list, arrays([5], component=2)).tolist() == []
    )


def test_remove_agent_removes_everything(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    other = table.add_agent(controlling=False)
    check_list = table.add_list(agent, arrays([HOST]), arrays([HOST]))
    table.add_list(other, arrays([HOST]), arrays([HOST]))
    table.remove_agent(agent)
    assert (table.agent_count, table.list_count, table.pair_count) == (1, 1, 1)
    with pytest.raises(CheckListError, match="not found"):
        table.lists(agent)
    with pytest.raises(CheckListError, match="not found"):
        table.pairs(check_list)


def test_unknown_ids_raise(table: Table) -> None:
    with pytest.raises(CheckListError, match="agent 3 not found"):
        table.start(3, 0.0)
    with pytest.raises(CheckListError, match="check list 0 not found"):
        table.remove_list(0)
    with pytest.raises(CheckListError, match="candidate pair -1 not found"):
        table.mark_succeeded(-1)


def test_error_is_ice_value_error() -> None:
    assert issubclass(CheckListError, IceError)
    assert issubclass(CheckListError, ValueError)


def test_copy_is_independent(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    check_list = table.add_list(agent, arrays([HOST]), arrays([HOST]))
    table.start(agent, 0.0)
    snapshot = table.copy()
    assert type(snapshot) is type(table)
    table.next_check(agent, 0.0)
    assert states(table, check_list) == [PairState.IN_PROGRESS]
    assert states(snapshot, check_list) == [PairState.WAITING]


def test_columns_match_pairs(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    check_list = table.add_list(agent, arrays([HOST, SRFLX]), arrays([HOST]))
    state = table.column("state")
    in_use = table.column("in_use")
    priority = table.column("priority")
    assert in_use.dtype == np.bool_
    assert priority.dtype == np.uint64
    for pair_id in table.pairs(check_list):
        assert in_use[pair_id]
        assert state[pair_id] == PairState.FROZEN
        assert priority[pair_id] == table.pair(pair_id).priority
    with pytest.raises(CheckListError, match="not found"):
        table.column("bogus")


def test_fast_columns_are_read_only() -> None:
    table = CheckListTable()
    agent = table.add_agent(controlling=True)
    table.add_list(agent, arrays([HOST]), arrays([HOST]))
    with pytest.raises(ValueError, match="read-only"):
        table.column("state")[0] = 3


# Candidate arrays


def test_build_rejects_bad_values() -> None:
    with pytest.raises(CheckListError, match="priority 0"):
        arrays([0])
    with pytest.raises(CheckListError, match="component 300"):
        arrays([HOST], component=300)
    with pytest.raises(CheckListError, match="family 5"):
        arrays([HOST], family=5)
    with pytest.raises(CheckListError, match="TCP needs a TCP type"):
        arrays([HOST], transport=TRANSPORT_TCP)
    with pytest.raises(CheckListError, match="shape"):
        arrays([HOST, HOST], component=[1, 1, 1])


def test_invalid_base_rejected(table: Table) -> None:
    agent = table.add_agent(controlling=True)
    with pytest.raises(CheckListError, match="base 5"):
        table.add_list(agent, arrays([HOST], base=5), arrays([HOST]))
    with pytest.raises(CheckListError, match="itself a reflexive"):
        table.add_list(agent, arrays([HOST, SRFLX, SRFLX], base=[-1, 0, 1]), arrays([]))


def test_from_candidates_finds_base_and_family() -> None:
    host = Candidate(
        "1", 1, TransportType.UDP, HOST, ("192.0.2.10", 5000), CandidateType.HOST
    )
    srflx = Candidate(
        "2",
        1,
        TransportType.UDP,
        SRFLX,
        ("203.0.113.5", 6000),
        CandidateType.SERVER_REFLEXIVE,
        related_address=("192.0.2.10", 5000),
    )
    link = Candidate(
        "3", 1, TransportType.UDP, HOST - 5, ("fe80::1%eth0", 5001), CandidateType.HOST
    )
    tcp = Candidate(
        "4",
        1,
        TransportType.TCP,
        HOST - 9,
        ("192.0.2.10", 9),
        CandidateType.HOST,
        tcp_type=TcpType.ACTIVE,
    )
    foundations = FoundationIds()
    local = CandidateArrays.from_candidates(
        [host, srflx, link, tcp], foundations, local=True
    )
    assert local.base.tolist() == [-1, 0, -1, -1]
    assert local.family.tolist() == [4, 4, 6, 4]
    assert local.link_local.tolist() == [False, False, True, False]
    assert local.foundation.tolist() == [0, 1, 2, 3]
    assert local.transport.tolist() == [TRANSPORT_UDP] * 3 + [TRANSPORT_TCP]
    assert local.tcp_type.tolist() == [TCP_NONE] * 3 + [TCP_ACTIVE]
    mdns = Candidate(
        "1", 1, TransportType.UDP, HOST, ("abc.local", 5000), CandidateType.HOST
    )
    remote = CandidateArrays.from_candidates([mdns], foundations, local=False)
    assert remote.family.tolist() == [0]
    assert remote.foundation.tolist() == [0]
    # A trickled srflx finds its base among the candidates added before.
    later = CandidateArrays.from_candidates(
        [srflx], foundations, local=True, existing=[host, link]
    )
    assert later.base.tolist() == [0]
    assert later.foundation.tolist() == [1]


def test_from_candidates_rejects_tls() -> None:
    tls = Candidate(
        "1", 1, TransportType.UDP, HOST, ("192.0.2.1", 1), CandidateType.HOST
    )
    object.__setattr__(tls, "transport", TransportType.TLS)
    with pytest.raises(CheckListError, match="tls"):
        CandidateArrays.from_candidates([tls], FoundationIds(), local=True)


def test_foundation_ids_are_per_side() -> None:
    foundations = FoundationIds()
    assert foundations.local("abc") == 0
    assert foundations.remote("xyz") == 0
    assert foundations.local("def") == 1
    assert foundations.local("abc") == 0
