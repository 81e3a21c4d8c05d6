"""Scenario: many ICE sessions on one UDP port through a Demultiplexer (an SFU)."""

from __future__ import annotations

import random

import pytest

from rice_fast.ice import (
    Agent,
    ComponentState,
    Demultiplexer,
    IceUsageError,
    SelectedPair,
)
from rice_fast.stun import MessageBuilder, TransportType, new_transaction_id
from rice_fast.stun._constants import MessageClass, Method, message_type
from tests.ice.sim import Network, SimAgent, SimDemux

SERVER = ("203.0.113.50", 3478)


def sfu(
    network: Network, clients: int, *, lite: bool
) -> tuple[SimDemux, list[Agent], list[SimAgent]]:
    node = SimDemux(network, SERVER)
    servers: list[Agent] = []
    peers: list[SimAgent] = []
    for index in range(clients):
        server = Agent(False, lite=lite, rng=random.Random(1000 + index))
        stream = server.add_stream()
        stream.add_component().add_local_socket(TransportType.UDP, SERVER)
        stream.gather_candidates(network.now)
        node.demux.add_agent(server)
        servers.append(server)
        client = SimAgent(
            network,
            f"client{index}",
            Agent(True, rng=random.Random(2000 + index)),
            [f"192.0.2.{index + 1}"],
        )
        client.add_udp(f"192.0.2.{index + 1}")
        client.stream.gather_candidates(network.now)
        if lite:
            client.agent.set_remote_lite(True)
        peers.append(client)
    network.run(0.01)
    for server, client in zip(servers, peers, strict=True):
        server_stream = server.streams[0]
        local = server_stream.local_credentials
        client.stream.set_remote_credentials(local.ufrag, local.pwd)
        for candidate in server_stream.local_candidates:
            client.stream.add_remote_candidate(candidate)
        remote = client.stream.local_credentials
        server_stream.set_remote_credentials(remote.ufrag, remote.pwd)
        for candidate in client.stream.local_candidates:
            server_stream.add_remote_candidate(candidate)
        node.demux.wake(server)
    return node, servers, peers


@pytest.mark.parametrize("lite", [True, False])
def test_many_agents_share_one_socket(lite: bool) -> None:
    network = Network(111)
    node, servers, clients = sfu(network, 5, lite=lite)
    network.run(20.0, stop=lambda: all(c.connected() for c in clients))
    assert all(c.connected() for c in clients)
    for server in servers:
        assert server.streams[0].component(1).state is ComponentState.CONNECTED
    for index, client in enumerate(clients):
        client.send(f"from client {index}".encode())
    network.run(network.now + 1.0)
    by_agent = {id(agent): data for _, agent, data in node.received}
    for index, server in enumerate(servers):
        assert by_agent[id(server)] == f"from client {index}".encode()
        selected = [
            e for _, a, e in node.events if a is server and isinstance(e, SelectedPair)
        ]
        assert selected[-1].pair.remote.address[0] == f"192.0.2.{index + 1}"
    # Replies go back through each server agent's own selected pair.
    for index, server in enumerate(servers):
        transmit = (
            server.streams[0].component(1).send(f"to {index}".encode(), network.now)
        )
        network.send(transmit)
    network.run(network.now + 1.0)
    for index, client in enumerate(clients):
        assert [d for _, _, d in client.received] == [f"to {index}".encode()]
    stats = node.demux.stats
    assert stats.routed_by_ufrag > 0
    assert stats.routed_by_address >= len(clients)
    if not lite:
        assert stats.routed_by_transaction > 0


def test_demux_drops_unknown_ufrag_and_unroutable_data() -> None:
    network = Network(112)
    node, _servers, clients = sfu(network, 2, lite=True)
    network.run(10.0, stop=lambda: all(c.connected() for c in clients))
    builder = MessageBuilder(
        message_type(Method.BINDING, MessageClass.REQUEST), new_transaction_id()
    )
    builder.add_username("nosuchufrag:x")
    request = builder.finish(fingerprint=True)
    assert (
        node.demux.handle_data(
            TransportType.UDP, SERVER, ("192.0.2.200", 5000), request, network.now
        )
        is None
    )
    assert (
        node.demux.handle_data(
            TransportType.UDP, SERVER, ("192.0.2.200", 5000), b"\x80junk", network.now
        )
        is None
    )
    stats = node.demux.stats
    assert stats.dropped_unknown_ufrag == 1
    assert stats.dropped_unroutable == 1


def test_demux_follows_ice_restart() -> None:
    network = Network(113)
    node, servers, clients = sfu(network, 1, lite=True)
    network.run(10.0, stop=lambda: all(c.connected() for c in clients))
    server = servers[0]
    old = server.streams[0].local_credentials.ufrag
    server.streams[0].restart(network.now)
    new = server.streams[0].local_credentials.ufrag
    demux = node.demux
    assert new in demux._ufrags and old in demux._ufrags
    server.streams[0].restart(network.now)
    assert old not in demux._ufrags


def test_demux_rejects_duplicate_agent() -> None:
    demux = Demultiplexer()
    agent = Agent(False, rng=random.Random(5))
    agent.add_stream()
    demux.add_agent(agent)
    with pytest.raises(IceUsageError):
        demux.add_agent(agent)
    demux.remove_agent(agent)
    assert demux.agents == ()
