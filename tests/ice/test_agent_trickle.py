"""Scenarios: trickle ICE (RFC 8838) and ICE restart (RFC 8445 §9)."""

from __future__ import annotations

import random

from rice_fast.ice import (
    Agent,
    Candidate,
    CandidateType,
    ComponentState,
    ComponentStateChange,
    SelectedPair,
)
from rice_fast.stun import TransportType
from tests.ice.sim import Network, SimAgent, connect, pair_up

BOGUS = Candidate(
    foundation="bogus",
    component=1,
    transport=TransportType.UDP,
    priority=2_000_000_000,
    address=("203.0.113.77", 4000),
    type=CandidateType.HOST,
)


def trickle_pair(seed: int) -> tuple[Network, SimAgent, SimAgent]:
    network = Network(seed)
    network.add_silent_host(BOGUS.address[0])
    a = SimAgent(
        network, "a", Agent(True, trickle=True, rng=random.Random(seed)), ["192.0.2.1"]
    )
    b = SimAgent(
        network,
        "b",
        Agent(False, trickle=True, rng=random.Random(seed + 1)),
        ["192.0.2.2"],
    )
    a.add_udp("192.0.2.1")
    b.add_udp("192.0.2.2")
    return network, a, b


def failed_at(agent: SimAgent) -> float | None:
    for time, event in agent.events:
        if (
            isinstance(event, ComponentStateChange)
            and event.state is ComponentState.FAILED
        ):
            return time
    return None


def test_trickle_late_candidate_connects_without_failing_first() -> None:
    network, a, b = trickle_pair(61)
    # Nothing useful reaches either side for 20 s; a only has a bogus
    # candidate, whose checks fail after 15.5 s. Without end-of-candidates
    # the check list must not fail, and the late candidates still connect.
    a.candidate_delays[a.udp_addresses[0]] = 20.0
    b.candidate_delays[b.udp_addresses[0]] = 20.0
    a.end_delay = b.end_delay = 25.0
    pair_up(a, b)
    network.at(0.1, lambda: a.stream.add_remote_candidate(BOGUS))
    network.run(19.0)
    assert a.state() is ComponentState.CONNECTING
    assert a.agent.stats.check_timeouts >= 1
    network.run(40.0, stop=lambda: a.connected() and b.connected())
    assert a.connected()
    assert b.connected()
    assert failed_at(a) is None
    assert network.now > 20.0


def test_end_of_candidates_lets_the_list_fail() -> None:
    network, a, b = trickle_pair(62)
    a.candidate_delays[a.udp_addresses[0]] = 100.0
    b.candidate_delays[b.udp_addresses[0]] = 100.0
    pair_up(a, b)
    network.at(0.1, lambda: a.stream.add_remote_candidate(BOGUS))
    b.end_delay = 30.0
    network.run(60.0, stop=lambda: a.state() is ComponentState.FAILED)
    failed = failed_at(a)
    assert failed is not None
    # The only pair failed at about 15.6 s, but the list failed only once
    # end-of-candidates arrived, 30 s after b finished gathering.
    assert failed >= 30.0
    assert a.stream.checklist_state == "failed"


def test_ice_restart_keeps_data_flowing() -> None:
    network, a, b = trickle_pair(63)
    connect(a, b)
    assert a.connected()
    assert b.connected()
    old_ufrag = a.stream.local_credentials.ufrag
    sent: list[bytes] = []

    def pump(count: int) -> None:
        data = f"packet {count}".encode()
        sent.append(data)
        a.send(data)
        if count < 60:
            network.at(network.now + 0.1, lambda: pump(count + 1))

    pump(0)
    network.run(network.now + 2.0)

    def restart() -> None:
        a.stream.restart(network.now)
        b.stream.restart(network.now)
        a.signal_credentials()
        b.signal_credentials()

    restart_time = network.now
    network.at(restart_time, restart)
    network.run(network.now + 6.0)

    assert a.stream.local_credentials.ufrag != old_ufrag
    assert [d for _, _, d in b.received] == sent
    assert ComponentState.FAILED not in a.states()
    assert ComponentState.FAILED not in b.states()
    later = [t for t, e in a.events if isinstance(e, SelectedPair) and t > restart_time]
    assert later, "the restart selected no new pair"
    assert a.stream.checklist_state == "completed"
    assert b.stream.checklist_state == "completed"
