"""ICE check lists: pair formation beside aioice, and one scheduling pass.

Pair formation takes 50 local and 50 remote host candidates (one component,
UDP, IPv4), so every one of the 2,500 combinations pairs. rice_fast forms,
prunes, sorts and keeps the best 100 pairs. For aioice this times what its
``Connection.connect`` does: ``_pair_remote_candidate`` for each remote
candidate, then ``sort_check_list``. aioice neither prunes nor limits the
list. ``extra_info["messages"]`` is 1, so times are per call.

The scheduling pass runs ``CheckListTable.schedule`` once over 10,000
agents, each with one check list of 4 pairs (two components of two pairs),
all due at the same time, so the pass picks 10,000 checks. aioice has no
counterpart: each of its connections schedules its own checks in an
asyncio task.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from aioice import Candidate as AioiceCandidate
from aioice import Connection
from pytest_benchmark.fixture import BenchmarkFixture

from bench.fields import describe
from rice_fast.ice.checklist import (
    CandidateArrays,
    CheckListTable,
    ReferenceCheckListTable,
    form_pairs,
)

CANDIDATES = 50
SESSIONS = 10_000
FORM = "form, prune and sort pairs of 50 x 50 candidates"
SCHEDULE = "schedule one check for each of 10,000 sessions of 4 pairs"


def priorities(seed: int) -> list[int]:
    """Distinct host-like priorities: type preference 126, varied local ones."""
    rng = np.random.default_rng(seed)
    local_preferences = rng.choice(65536, CANDIDATES, replace=False)
    return [(126 << 24) + (int(p) << 8) + 255 for p in local_preferences]


LOCAL_PRIORITIES = priorities(1)
REMOTE_PRIORITIES = priorities(2)


def candidate_arrays(priority_list: list[int]) -> CandidateArrays:
    return CandidateArrays.build(
        component=1,
        priority=np.array(priority_list, np.uint32),
        foundation=np.arange(len(priority_list), dtype=np.int32),
    )


@pytest.fixture(scope="module")
def local() -> CandidateArrays:
    return candidate_arrays(LOCAL_PRIORITIES)


@pytest.fixture(scope="module")
def remote() -> CandidateArrays:
    return candidate_arrays(REMOTE_PRIORITIES)


def test_form_pairs_rice_fast(
    benchmark: BenchmarkFixture, local: CandidateArrays, remote: CandidateArrays
) -> None:
    describe(benchmark, FORM, "rice_fast form_pairs", target_ns=300_000)
    formed = benchmark(form_pairs, local, remote, controlling=True)
    assert len(formed) == 100


def test_form_pairs_rice_fast_table(
    benchmark: BenchmarkFixture, local: CandidateArrays, remote: CandidateArrays
) -> None:
    describe(benchmark, FORM, "rice_fast CheckListTable.add_list + remove_list")
    table = CheckListTable()
    agent = table.add_agent(controlling=True)

    def add_and_remove() -> int:
        check_list = table.add_list(agent, local, remote)
        count = len(table.pairs(check_list))
        table.remove_list(check_list)
        return count

    assert benchmark(add_and_remove) == 100


def test_form_pairs_reference(
    benchmark: BenchmarkFixture, local: CandidateArrays, remote: CandidateArrays
) -> None:
    describe(benchmark, FORM, "rice_fast ReferenceCheckListTable (pure Python)")
    table = ReferenceCheckListTable()
    agent = table.add_agent(controlling=True)

    def add_and_remove() -> int:
        check_list = table.add_list(agent, local, remote)
        count = len(table.pairs(check_list))
        table.remove_list(check_list)
        return count

    assert benchmark(add_and_remove) == 100


class FakeProtocol:
    """What ``Connection._pair_remote_candidate`` reads of a StunProtocol."""

    def __init__(self, local_candidate: AioiceCandidate) -> None:
        self.local_candidate = local_candidate


def aioice_candidates(priority_list: list[int], network: str) -> list[AioiceCandidate]:
    return [
        AioiceCandidate(
            foundation=str(index),
            component=1,
            transport="udp",
            priority=priority,
            host=f"{network}.{index + 1}",
            port=40000 + index,
            type="host",
        )
        for index, priority in enumerate(priority_list)
    ]


def test_form_pairs_aioice(benchmark: BenchmarkFixture) -> None:
    describe(benchmark, FORM, "aioice _pair_remote_candidate + sort_check_list")
    connection = Connection(ice_controlling=True)
    protocols: list[Any] = [
        FakeProtocol(c) for c in aioice_candidates(LOCAL_PRIORITIES, "192.0.2")
    ]
    connection._protocols = protocols
    remotes = aioice_candidates(REMOTE_PRIORITIES, "198.51.100")

    def pair_and_sort() -> int:
        connection._check_list = []
        for remote_candidate in remotes:
            connection._pair_remote_candidate(remote_candidate)
        connection.sort_check_list()
        return len(connection._check_list)

    assert benchmark(pair_and_sort) == CANDIDATES * CANDIDATES


def many_sessions() -> CheckListTable:
    """Build 10,000 started agents, each with components 1 and 2 of two pairs."""
    table = CheckListTable()
    local = CandidateArrays.build(
        component=np.array([1, 1, 2, 2], np.uint16),
        priority=np.array([2130706431, 16777215, 2130706430, 16777214], np.uint32),
        foundation=np.array([0, 1, 0, 1], np.int32),
    )
    remote = CandidateArrays.build(
        component=np.array([1, 2], np.uint16),
        priority=np.array([2130706431, 2130706430], np.uint32),
        foundation=np.array([0, 0], np.int32),
    )
    for _ in range(SESSIONS):
        agent = table.add_agent(controlling=False)
        table.add_list(agent, local, remote)
        table.start(agent, 0.0)
    assert table.pair_count == 4 * SESSIONS
    return table


def test_schedule_rice_fast(benchmark: BenchmarkFixture) -> None:
    describe(
        benchmark, SCHEDULE, "rice_fast CheckListTable.schedule", target_ns=2_000_000
    )
    template = many_sessions()

    def fresh_table() -> tuple[tuple[CheckListTable], dict[str, Any]]:
        return (template.copy(),), {}

    def one_pass(table: CheckListTable) -> int:
        return len(table.schedule(1.0))

    # pytest-benchmark's pedantic() has no annotations.
    checks = benchmark.pedantic(  # type: ignore[no-untyped-call]
        one_pass, setup=fresh_table, rounds=20, iterations=1
    )
    assert checks == SESSIONS
