"""Scenarios: TCP candidates (RFC 6544) with RFC 4571 framing."""

from __future__ import annotations

import random

from rice_fast.ice import (
    Agent,
    CandidateType,
    Closed,
    ComponentState,
    RemoveSocket,
    SelectedPair,
    TcpType,
)
from rice_fast.stun import TransportType
from tests.ice.sim import Network, SimAgent, connect


def tcp_pair(
    seed: int, a_types: tuple[TcpType, ...], b_types: tuple[TcpType, ...]
) -> tuple[Network, SimAgent, SimAgent]:
    network = Network(seed)
    a = SimAgent(network, "a", Agent(True, rng=random.Random(seed)), ["192.0.2.1"])
    b = SimAgent(network, "b", Agent(False, rng=random.Random(seed + 1)), ["192.0.2.2"])
    for tcp_type in a_types:
        a.add_tcp("192.0.2.1", tcp_type)
    for tcp_type in b_types:
        b.add_tcp("192.0.2.2", tcp_type)
    return network, a, b


def test_tcp_active_to_passive_connects_with_framing() -> None:
    network, a, b = tcp_pair(81, (TcpType.ACTIVE,), (TcpType.PASSIVE,))
    connect(a, b)
    assert a.connected()
    assert b.connected()
    assert len(a.allocate_requests) == 1
    request = a.allocate_requests[0]
    assert request.transport is TransportType.TCP
    assert request.source == ("192.0.2.1", 0)
    selected_a = a.selected()
    selected_b = b.selected()
    assert selected_a is not None and selected_b is not None
    assert selected_a.pair.local.tcp_type is TcpType.ACTIVE
    assert selected_a.pair.remote.tcp_type is TcpType.PASSIVE
    # b learnt a's connection address as a peer-reflexive active candidate.
    assert selected_b.pair.remote.type is CandidateType.PEER_REFLEXIVE
    assert selected_b.pair.remote.tcp_type is TcpType.ACTIVE

    # Every TCP transmit is whole RFC 4571 frames: 2-byte length, packet.
    for _, transmit in network.sent:
        if transmit.transport is TransportType.TCP:
            data = transmit.data
            offset = 0
            while offset < len(data):
                size = int.from_bytes(data[offset : offset + 2], "big")
                packet = data[offset + 2 : offset + 2 + size]
                assert len(packet) == size
                offset += 2 + size
            assert offset == len(data)

    big = bytes(range(256)) * 20
    a.send(big)
    a.send(b"second")
    b.send(b"reply")
    network.run(network.now + 1.0)
    assert [d for _, _, d in b.received] == [big, b"second"]
    assert [d for _, _, d in a.received] == [b"reply"]


def test_tcp_both_directions_available() -> None:
    _network, a, b = tcp_pair(
        82, (TcpType.ACTIVE, TcpType.PASSIVE), (TcpType.ACTIVE, TcpType.PASSIVE)
    )
    connect(a, b)
    assert a.connected()
    assert b.connected()
    # Both agents opened connections toward the other's passive candidate.
    assert a.allocate_requests and b.allocate_requests


def test_tcp_refused_connection_fails_the_component() -> None:
    network, a, b = tcp_pair(83, (TcpType.ACTIVE,), (TcpType.PASSIVE,))
    # b's listener disappears: every connection attempt is refused.
    network._listeners.clear()
    connect(a, b, until=60.0)
    assert a.state() is ComponentState.FAILED


def test_tcp_connection_closed_fails_selected_pair() -> None:
    network, a, b = tcp_pair(84, (TcpType.ACTIVE,), (TcpType.PASSIVE,))
    connect(a, b)
    selected = a.selected()
    assert selected is not None
    request = a.allocate_requests[0]
    local = next(
        t.source
        for _, t in network.sent
        if t.transport is TransportType.TCP and t.destination == request.destination
    )
    network.close_tcp(local, request.destination)
    network.run(network.now + 1.0)
    assert b.state() is ComponentState.FAILED


def test_close_removes_requested_tcp_connections() -> None:
    network, a, b = tcp_pair(85, (TcpType.ACTIVE,), (TcpType.PASSIVE,))
    connect(a, b)
    a.agent.close(network.now)
    network.run(network.now + 1.0)
    removed = [e for _, e in a.events if isinstance(e, RemoveSocket)]
    assert len(removed) == 1
    assert removed[0].destination == a.allocate_requests[0].destination
    assert any(isinstance(e, Closed) for _, e in a.events)
    assert b.closed_connections


def test_tcp_restart_reuses_the_connection() -> None:
    network, a, b = tcp_pair(86, (TcpType.ACTIVE,), (TcpType.PASSIVE,))
    connect(a, b)
    assert len(a.allocate_requests) == 1
    restart_time = network.now

    def restart() -> None:
        a.stream.restart(network.now)
        b.stream.restart(network.now)
        a.signal_credentials()
        b.signal_credentials()

    network.at(restart_time, restart)
    network.run(restart_time + 5.0)
    reselected = [
        t for t, e in a.events if isinstance(e, SelectedPair) and t > restart_time
    ]
    assert reselected, "the restart selected no new pair"
    # The check of the new ICE generation went over the open connection.
    assert len(a.allocate_requests) == 1
    a.send(b"after restart")
    network.run(network.now + 1.0)
    assert [d for _, _, d in b.received] == [b"after restart"]
