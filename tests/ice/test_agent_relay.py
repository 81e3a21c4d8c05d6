"""Scenarios: relayed candidates through rice_fast's own TurnServer in the sim."""

from __future__ import annotations

import random
import ssl
import subprocess
from pathlib import Path

import pytest

from rice_fast.ice import (
    Agent,
    CandidateType,
    ComponentState,
    GatheredCandidate,
    TurnConfig,
)
from rice_fast.stun import TransportType
from tests.ice.sim import Nat, Network, SimAgent, SimTurnServer, connect

TURN = ("203.0.113.20", 3478)
USERS = {"alice": "secret-a", "bob": "secret-b"}


def gathered(agent: SimAgent, kind: CandidateType) -> list[GatheredCandidate]:
    return [
        e
        for _, e in agent.events
        if isinstance(e, GatheredCandidate) and e.candidate.type is kind
    ]


def relay_pair(
    seed: int,
    transport: TransportType = TransportType.UDP,
    *,
    server_context: ssl.SSLContext | None = None,
    client_context: ssl.SSLContext | None = None,
) -> tuple[Network, SimAgent, SimAgent, SimTurnServer]:
    network = Network(seed)
    turn = SimTurnServer(network, TURN, USERS, tls_context=server_context)
    server = turn.tls_address if transport is TransportType.TLS else TURN
    # Each NAT lets traffic out to the TURN server only, so every path
    # between the agents goes through the relay.
    allow = frozenset({TURN[0]})
    network.add_nat("lan-a", Nat("198.51.100.1", mapping="apdm", outbound_allow=allow))
    network.add_nat("lan-b", Nat("198.51.100.2", mapping="apdm", outbound_allow=allow))
    a = SimAgent(
        network,
        "a",
        Agent(
            True,
            turn_servers=[
                TurnConfig(
                    server,
                    "alice",
                    "secret-a",
                    transport=transport,
                    ssl_context=client_context,
                )
            ],
            rng=random.Random(seed),
        ),
        ["10.0.1.2"],
        realm="lan-a",
    )
    b = SimAgent(
        network,
        "b",
        Agent(
            False,
            turn_servers=[
                TurnConfig(
                    server,
                    "bob",
                    "secret-b",
                    transport=transport,
                    ssl_context=client_context,
                )
            ],
            rng=random.Random(seed + 1),
        ),
        ["10.0.2.2"],
        realm="lan-b",
    )
    a.add_udp("10.0.1.2")
    b.add_udp("10.0.2.2")
    return network, a, b, turn


def test_relayed_only_connects() -> None:
    network, a, b, turn = relay_pair(21)
    connect(a, b)
    assert gathered(a, CandidateType.RELAYED)
    assert gathered(b, CandidateType.RELAYED)
    assert a.state() is ComponentState.CONNECTED
    assert b.state() is ComponentState.CONNECTED
    selected_a = a.selected()
    selected_b = b.selected()
    assert selected_a is not None and selected_b is not None
    types = {
        selected_a.pair.local.type,
        selected_a.pair.remote.type,
        selected_b.pair.local.type,
        selected_b.pair.remote.type,
    }
    assert CandidateType.RELAYED in types

    a.send(b"via the relay")
    b.send(b"and back")
    network.run(network.now + 1.0)
    later = network.now
    relayed_side = a if selected_a.pair.local.type is CandidateType.RELAYED else b
    relayed_side.send(b"once the channel is bound")
    network.run(network.now + 1.0)
    to_server = [
        t.data for time, t in network.sent if time >= later and t.destination == TURN
    ]
    # After ChannelBind, data leaves as ChannelData (first byte 0x40-0x4F).
    assert any(0x40 <= data[0] <= 0x4F for data in to_server)
    assert [d for _, _, d in b.received][:1] == [b"via the relay"]
    assert [d for _, _, d in a.received][:1] == [b"and back"]
    assert turn.server.stats.allocations >= 1


def test_relayed_over_tcp_to_the_server() -> None:
    network, a, b, _ = relay_pair(22, TransportType.TCP)
    connect(a, b)
    assert a.connected()
    assert b.connected()
    # The agents asked for the TCP connections to the TURN server.
    assert any(r.destination == TURN for r in a.allocate_requests)
    a.send(b"x" * 1000)
    network.run(network.now + 1.0)
    assert [d for _, _, d in b.received] == [b"x" * 1000]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for the TURN server's IP address."""
    directory = tmp_path_factory.mktemp("tls")
    cert = directory / "cert.pem"
    key = directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=turn.sim.test",
            "-addext", f"subjectAltName=IP:{TURN[0]}",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_relayed_over_tls_to_the_server(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    network, a, b, _ = relay_pair(
        24,
        TransportType.TLS,
        server_context=server_context,
        client_context=client_context,
    )
    connect(a, b)
    assert gathered(a, CandidateType.RELAYED)
    assert a.connected()
    assert b.connected()
    messages = [f"message {n}".encode() for n in range(20)]
    for message in messages:
        a.send(message)
    network.run(network.now + 2.0)
    assert [d for _, _, d in b.received] == messages


def test_turn_server_with_bad_credentials_ends_only_its_gathering() -> None:
    network = Network(23)
    SimTurnServer(network, TURN, USERS)
    agent = Agent(
        True,
        turn_servers=[
            TurnConfig(TURN, "alice", "wrong-password"),
            TurnConfig(("203.0.113.21", 3478), "alice", "secret-a"),
        ],
        rng=random.Random(9),
    )
    network.add_silent_host("203.0.113.21")
    a = SimAgent(network, "a", agent, ["192.0.2.1"])
    a.add_udp("192.0.2.1")
    a.stream.gather_candidates(0.0)
    network.run(60.0, stop=lambda: a.stream.component(1).gathering_complete)
    assert a.stream.component(1).gathering_complete
    assert not gathered(a, CandidateType.RELAYED)
    assert [e.candidate.type for e in gathered(a, CandidateType.HOST)] == [
        CandidateType.HOST
    ]
