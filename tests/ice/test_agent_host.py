"""Scenario: two agents connect over host UDP candidates, in both roles."""

from __future__ import annotations

import random

import pytest

from rice_fast.ice import Agent, CandidateType, ComponentState
from tests.ice.sim import Network, SimAgent, connect


def make_pair(seed: int = 1, **options: object) -> tuple[Network, SimAgent, SimAgent]:
    network = Network(seed)
    a = SimAgent(
        network,
        "a",
        Agent(True, rng=random.Random(seed * 2), **options),  # type: ignore[arg-type]
        ["192.0.2.1"],
    )
    b = SimAgent(
        network,
        "b",
        Agent(False, rng=random.Random(seed * 2 + 1), **options),  # type: ignore[arg-type]
        ["192.0.2.2"],
    )
    a.add_udp("192.0.2.1")
    b.add_udp("192.0.2.2")
    return network, a, b


@pytest.mark.parametrize("trickle", [True, False])
def test_host_udp_connects(trickle: bool) -> None:
    _network, a, b = make_pair(trickle=trickle)
    connect(a, b, signalling="trickle" if trickle else "batch")
    assert a.state() is ComponentState.CONNECTED
    assert b.state() is ComponentState.CONNECTED
    selected_a = a.selected()
    selected_b = b.selected()
    assert selected_a is not None and selected_b is not None
    assert selected_a.pair.local.type is CandidateType.HOST
    assert selected_a.pair.remote.address == selected_b.pair.local.address
    assert a.states() == [ComponentState.CONNECTING, ComponentState.CONNECTED]
    assert b.states() == [ComponentState.CONNECTING, ComponentState.CONNECTED]


def test_host_udp_data_both_ways() -> None:
    network, a, b = make_pair()
    connect(a, b)
    a.send(b"hello from a")
    b.send(b"hello from b")
    network.run(network.now + 1.0)
    assert [d for _, _, d in b.received] == [b"hello from a"]
    assert [d for _, _, d in a.received] == [b"hello from b"]


def test_controlled_side_starts_first() -> None:
    _network, a, b = make_pair(seed=3)
    # The controlled agent gathers and signals first; roles stay as given.
    connect(b, a)
    assert a.agent.controlling
    assert not b.agent.controlling
    assert a.connected()
    assert b.connected()
