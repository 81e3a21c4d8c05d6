"""Check scheduling: foundations across streams, Ta pacing, retransmits, zero copy."""

from __future__ import annotations

import itertools
import random

from rice_fast.ice import (
    Agent,
    Candidate,
    CandidatePairState,
    CandidateType,
    DataReceived,
)
from rice_fast.stun import TransportType, WaitUntil, is_stun, parse
from tests.ice.sim import Network, SimAgent, connect

UDP = TransportType.UDP


def remote(port: int, foundation: str = "r1") -> Candidate:
    return Candidate(
        foundation=foundation,
        component=1,
        transport=UDP,
        priority=2_130_706_431,
        address=("203.0.113.5", port),
        type=CandidateType.HOST,
    )


def run_agent(agent: Agent, until: float) -> list[tuple[float, bytes]]:
    """Poll one agent alone (no peer) and return (time, data) of its transmits."""
    now = 0.0
    sent: list[tuple[float, bytes]] = []
    for _ in range(100_000):
        result = agent.poll(now)
        while (transmit := agent.poll_transmit(now)) is not None:
            sent.append((now, transmit.data))
        if isinstance(result, WaitUntil):
            if result.deadline > until:
                return sent
            now = max(now, result.deadline)
        elif result is None:
            return sent
    raise AssertionError("the agent did not settle")


def test_second_stream_waits_for_the_first_streams_foundation() -> None:
    agent = Agent(True, rng=random.Random(1))
    streams = [agent.add_stream() for _ in range(2)]
    for index, stream in enumerate(streams):
        stream.add_component().add_local_socket(UDP, ("192.0.2.1", 5000 + index))
        stream.gather_candidates(0.0)
    for index, stream in enumerate(streams):
        stream.set_remote_credentials("abcd", "p" * 22)
        stream.add_remote_candidate(remote(6000 + index))
    while not isinstance(agent.poll(0.0), WaitUntil):
        pass
    # Both pairs have the same foundation (same local and remote foundation):
    # RFC 8445 §6.1.2.6 unfreezes it in the first check list only.
    first = [state for _, state in streams[0].candidate_pairs()]
    second = [state for _, state in streams[1].candidate_pairs()]
    assert first == [CandidatePairState.IN_PROGRESS]
    assert second == [CandidatePairState.FROZEN]


def test_new_checks_are_paced_by_ta() -> None:
    agent = Agent(True, ta=0.02, rng=random.Random(2))
    stream = agent.add_stream()
    stream.add_component().add_local_socket(UDP, ("192.0.2.1", 5000))
    stream.gather_candidates(0.0)
    stream.set_remote_credentials("abcd", "p" * 22)
    for port in range(6000, 6010):
        stream.add_remote_candidate(remote(port, foundation=f"f{port}"))
    sent = run_agent(agent, 0.4)
    firsts: dict[bytes, float] = {}
    for time, data in sent:
        if is_stun(data):
            firsts.setdefault(parse(data).transaction_id, time)
    times = sorted(firsts.values())
    assert len(times) == 10
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= 0.02 - 1e-9


def test_check_retransmission_schedule() -> None:
    agent = Agent(True, rng=random.Random(3))
    stream = agent.add_stream()
    stream.add_component().add_local_socket(UDP, ("192.0.2.1", 5000))
    stream.gather_candidates(0.0)
    stream.set_remote_credentials("abcd", "p" * 22)
    stream.add_remote_candidate(remote(6000))
    sent = run_agent(agent, 30.0)
    times = [time for time, data in sent if is_stun(data)]
    # RTO 500 ms, doubling up to 3 s, 7 transmissions (see check_schedule).
    assert times == [0.0, 0.5, 1.5, 3.5, 6.5, 9.5, 12.5]
    assert agent.stats.check_timeouts == 1
    assert [s for _, s in stream.candidate_pairs()] == [CandidatePairState.FAILED]


def test_udp_data_is_returned_without_copying() -> None:
    network = Network(131)
    a = SimAgent(network, "a", Agent(True, rng=random.Random(4)), ["192.0.2.1"])
    b = SimAgent(network, "b", Agent(False, rng=random.Random(5)), ["192.0.2.2"])
    a.add_udp("192.0.2.1")
    b.add_udp("192.0.2.2")
    connect(a, b)
    payload = bytes(range(200))
    transmit = a.stream.component(1).send(payload, network.now)
    assert transmit.data is payload
    received = b.agent.handle_data(
        UDP, transmit.destination, transmit.source, payload, network.now
    )
    assert isinstance(received, DataReceived)
    assert received.data is payload
    assert (received.stream_id, received.component_id) == (b.stream.id, 1)
