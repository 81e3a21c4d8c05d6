"""Scenarios: agents behind NATs, server-reflexive and peer-reflexive candidates."""

from __future__ import annotations

import random

from rice_fast.ice import Agent, CandidateType, ComponentState, GatheredCandidate
from tests.ice.sim import Nat, Network, SimAgent, SimStunServer, connect

STUN = ("203.0.113.10", 3478)


def gathered_types(agent: SimAgent) -> list[CandidateType]:
    return [
        e.candidate.type for _, e in agent.events if isinstance(e, GatheredCandidate)
    ]


def test_nat_srflx_connects() -> None:
    network = Network(7)
    SimStunServer(network, STUN)
    network.add_nat("lan-a", Nat("198.51.100.1", mapping="eim", filtering="apdf"))
    network.add_nat("lan-b", Nat("198.51.100.2", mapping="eim", filtering="adf"))
    a = SimAgent(
        network,
        "a",
        Agent(True, stun_servers=[STUN], rng=random.Random(1)),
        ["10.0.1.2"],
        realm="lan-a",
    )
    b = SimAgent(
        network,
        "b",
        Agent(False, stun_servers=[STUN], rng=random.Random(2)),
        ["10.0.2.2"],
        realm="lan-b",
    )
    a.add_udp("10.0.1.2")
    b.add_udp("10.0.2.2")
    connect(a, b)

    assert CandidateType.SERVER_REFLEXIVE in gathered_types(a)
    assert CandidateType.SERVER_REFLEXIVE in gathered_types(b)
    assert a.state() is ComponentState.CONNECTED
    assert b.state() is ComponentState.CONNECTED
    selected = a.selected()
    assert selected is not None
    # Each side selects the other's public mapping.
    assert selected.pair.remote.address[0] == "198.51.100.2"

    a.send(b"through the NATs")
    network.run(network.now + 1.0)
    assert [d for _, _, d in b.received] == [b"through the NATs"]


def test_srflx_gathering_survives_a_dead_stun_server() -> None:
    network = Network(8)
    SimStunServer(network, STUN)
    dead = ("203.0.113.99", 3478)
    network.add_silent_host(dead[0])
    network.add_nat("lan-a", Nat("198.51.100.1"))
    a = SimAgent(
        network,
        "a",
        Agent(True, stun_servers=[dead, STUN], rng=random.Random(3)),
        ["10.0.1.2"],
        realm="lan-a",
    )
    a.add_udp("10.0.1.2")
    a.stream.gather_candidates(0.0)
    network.run(20.0, stop=lambda: a.stream.component(1).gathering_complete)
    assert a.stream.component(1).gathering_complete
    assert gathered_types(a) == [CandidateType.HOST, CandidateType.SERVER_REFLEXIVE]
    # The dead server ends only its own task, after the 7.5 s timeout.
    assert 7.0 < network.now < 9.0


def test_prflx_on_both_sides() -> None:
    # Behind address-and-port-dependent mapping (symmetric) NATs, the
    # server-reflexive address is useless for the peer; the working pair
    # uses addresses learnt from checks: a local peer-reflexive candidate
    # from the response and a remote one from the request.
    network = Network(11)
    SimStunServer(network, STUN)
    network.add_nat("lan-a", Nat("198.51.100.1", mapping="apdm", filtering="eif"))
    network.add_nat("lan-b", Nat("198.51.100.2", mapping="eim", filtering="adf"))
    a = SimAgent(
        network,
        "a",
        Agent(True, stun_servers=[STUN], rng=random.Random(4)),
        ["10.0.1.2"],
        realm="lan-a",
    )
    b = SimAgent(
        network,
        "b",
        Agent(False, stun_servers=[STUN], rng=random.Random(5)),
        ["10.0.2.2"],
        realm="lan-b",
    )
    a.add_udp("10.0.1.2")
    b.add_udp("10.0.2.2")
    connect(a, b)
    assert a.connected()
    assert b.connected()
    selected_a = a.selected()
    selected_b = b.selected()
    assert selected_a is not None and selected_b is not None
    # a's check to b's srflx leaves a's NAT on a new mapping: b learns it
    # as a remote prflx, and a learns the same mapping as a local prflx.
    assert selected_b.pair.remote.type is CandidateType.PEER_REFLEXIVE
    assert selected_a.pair.local.type is CandidateType.PEER_REFLEXIVE
    assert selected_a.pair.local.address == selected_b.pair.remote.address
    base = selected_a.pair.local.base_address
    assert base is not None
    assert base[0] == "10.0.1.2"
    # prflx candidates are never signalled.
    assert CandidateType.PEER_REFLEXIVE not in gathered_types(a)
    assert CandidateType.PEER_REFLEXIVE not in gathered_types(b)
