"""Scenarios: role conflicts, regular, aggressive and renomination, ICE-lite."""

from __future__ import annotations

import random

from rice_fast.ice import Agent, ComponentState, SelectedPair
from rice_fast.stun import AttributeType, TransportType, is_stun, parse
from tests.ice.sim import Network, SimAgent, connect, pair_up

NOMINATION = 0xC001


def two_agents(
    seed: int,
    a_options: dict[str, object],
    b_options: dict[str, object],
    *,
    a_controlling: bool = True,
    b_controlling: bool = False,
    b_ips: tuple[str, ...] = ("192.0.2.2",),
) -> tuple[Network, SimAgent, SimAgent]:
    network = Network(seed)
    a = SimAgent(
        network,
        "a",
        Agent(a_controlling, rng=random.Random(seed), **a_options),  # type: ignore[arg-type]
        ["192.0.2.1"],
    )
    b = SimAgent(
        network,
        "b",
        Agent(b_controlling, rng=random.Random(seed + 100), **b_options),  # type: ignore[arg-type]
        list(b_ips),
    )
    a.add_udp("192.0.2.1")
    for ip in b_ips:
        b.add_udp(ip)
    return network, a, b


def binding_requests(
    network: Network, source_ip: str
) -> list[tuple[float, bytes, bool]]:
    """(time, transaction id, USE-CANDIDATE) of each request from ``source_ip``."""
    requests = []
    for time, transmit in network.sent:
        data = transmit.data
        if (
            transmit.transport is not TransportType.UDP
            or transmit.source[0] != source_ip
        ):
            continue
        if not is_stun(data):
            continue
        message = parse(data)
        if message.is_request:
            requests.append((time, message.transaction_id, message.use_candidate()))
    return requests


def selections(agent: SimAgent) -> list[SelectedPair]:
    return [e for _, e in agent.events if isinstance(e, SelectedPair)]


# Role conflicts.


def test_role_conflict_both_controlling_resolved_on_request() -> None:
    _network, a, b = two_agents(
        31, {"tie_breaker": 200}, {"tie_breaker": 100}, b_controlling=True
    )
    # b learns a's credentials late, so a's checks reach b first: b gets
    # ICE-CONTROLLING with a larger tie-breaker and switches (§7.3.1.1).
    a.signal_delay = 0.3
    b.signal_delay = 0.01
    connect(a, b)
    assert a.agent.controlling
    assert not b.agent.controlling
    assert a.connected()
    assert b.connected()


def test_role_conflict_both_controlling_resolved_by_487() -> None:
    _network, a, b = two_agents(
        32, {"tie_breaker": 200}, {"tie_breaker": 100}, b_controlling=True
    )
    # b checks first: a keeps its role and responds with 487, and b switches
    # when it reads the 487 to a request that carried ICE-CONTROLLING.
    a.signal_delay = 0.01
    b.signal_delay = 0.5
    connect(a, b)
    assert a.agent.stats.role_conflicts_sent >= 1
    assert b.agent.stats.role_conflicts_sent == 0
    assert a.agent.controlling
    assert not b.agent.controlling
    assert a.connected()
    assert b.connected()


def test_role_conflict_both_controlled() -> None:
    _network, a, b = two_agents(
        33, {"tie_breaker": 100}, {"tie_breaker": 200}, a_controlling=False
    )
    # Both controlled: the larger tie-breaker (b) takes the controlling role.
    connect(a, b)
    assert b.agent.controlling
    assert not a.agent.controlling
    assert a.connected()
    assert b.connected()


def test_role_conflict_both_controlled_resolved_by_487() -> None:
    _network, a, b = two_agents(
        34, {"tie_breaker": 200}, {"tie_breaker": 100}, a_controlling=False
    )
    # a checks first with ICE-CONTROLLED and the larger tie-breaker: b
    # keeps its role and responds with 487, and a takes the controlling role
    # when it reads the 487 to a request that carried ICE-CONTROLLED.
    a.signal_delay = 0.5
    b.signal_delay = 0.01
    connect(a, b)
    assert b.agent.stats.role_conflicts_sent >= 1
    assert a.agent.controlling
    assert not b.agent.controlling
    assert a.connected()
    assert b.connected()


# Nomination.


def test_regular_nomination_sends_one_nominating_check() -> None:
    network, a, b = two_agents(41, {}, {})
    connect(a, b)
    requests = binding_requests(network, "192.0.2.1")
    nominating = [(time, tid) for time, tid, use in requests if use]
    assert nominating, "the controlling agent never nominated"
    first_nomination = nominating[0][0]
    assert any(not use and time < first_nomination for time, _, use in requests)
    assert len({tid for _, tid in nominating}) == 1
    assert len(selections(a)) == 1
    assert len(selections(b)) == 1


def test_aggressive_nomination_accepted_by_controlled_side() -> None:
    network, a, b = two_agents(
        42, {"aggressive_nomination": True}, {}, b_ips=("192.0.2.2", "192.0.2.3")
    )
    connect(a, b)
    network.run(network.now + 2.0)
    requests = binding_requests(network, "192.0.2.1")
    assert requests and all(use for _, _, use in requests)
    final_a = selections(a)[-1].pair
    final_b = selections(b)[-1].pair
    assert final_a.local.address == final_b.remote.address
    assert final_a.remote.address == final_b.local.address
    # The controlled side ends on the highest-priority nominated pair.
    best = max(b.stream.component(1).local_candidates, key=lambda c: c.priority)
    assert final_b.local.address == best.address


def test_renomination_switches_the_controlled_side() -> None:
    network, a, b = two_agents(
        43,
        {"renomination": True},
        {},
        b_ips=("192.0.2.2", "192.0.2.3"),
    )
    # b's best candidate (its first socket) reaches a late, so a first
    # nominates the pair to b's second address, then renominates.
    first_address = b.udp_addresses[0]
    b.candidate_delays[first_address] = 3.0
    pair_up(a, b)
    network.run(10.0)
    assert a.connected()
    assert b.connected()
    chosen = [s.pair.local.address for s in selections(b)]
    assert len(chosen) == 2
    assert chosen[-1] == first_address
    nominated = []
    for _, transmit in network.sent:
        if transmit.source[0] == "192.0.2.1" and is_stun(transmit.data):
            message = parse(transmit.data)
            raw = message.raw(NOMINATION)
            if message.is_request and raw is not None:
                nominated.append(int.from_bytes(raw, "big"))
    assert sorted(set(nominated)) == [1, 2]


# ICE-lite.


def test_full_agent_connects_to_lite_agent() -> None:
    network, a, b = two_agents(51, {}, {"lite": True})
    a.agent.set_remote_lite(True)
    connect(a, b)
    assert a.connected()
    assert b.connected()
    assert b.agent.stats.checks_sent == 0
    assert b.agent.stats.responses_sent >= 1
    a.send(b"to lite")
    b.send(b"from lite")
    network.run(network.now + 1.0)
    assert [d for _, _, d in b.received] == [b"to lite"]
    assert [d for _, _, d in a.received] == [b"from lite"]


def test_full_controlled_agent_takes_control_against_lite() -> None:
    _network, a, b = two_agents(52, {}, {"lite": True}, a_controlling=False)
    a.agent.set_remote_lite(True)
    assert a.agent.controlling
    connect(a, b)
    assert a.connected()
    assert b.connected()
    assert b.state() is ComponentState.CONNECTED
    assert AttributeType.USE_CANDIDATE  # the lite side saw a nomination
