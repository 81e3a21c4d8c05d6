"""rice_fast's ICE agent and relay against libnice 0.1.21 on loopback.

rice_fast's ``IceConnection`` runs in-process behind ``RiceFastAgent``;
libnice runs as ``tests/interop/peers/libnice_peer.py`` under Debian's
Python. The scenarios: UDP host candidates in both roles, TCP candidates
(RFC 6544) in both roles, and relayed candidates, with libnice relaying
through ``rice-fast relay`` or coturn 4.6, or rice_fast's agent relaying
through either. Data goes both ways in every scenario: libnice sends a
greeting, and rice_fast's datagram comes back in libnice's echo.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.interop.harness import (
    Connected,
    PeerProcess,
    connect_agent_to_peer,
    libnice_peer_argv,
    start_peer,
)
from tests.interop.peers.python_peer import (
    CandidateAddress,
    RiceFastAgent,
    candidate_address,
)

if TYPE_CHECKING:
    from tests.conftest import CoturnServer
    from tests.interop.conftest import RiceRelay, ScenarioRecorder

pytestmark = pytest.mark.interop

TIMEOUT = 10.0
GREETING = b"hello from libnice"
TURN_USER = "alice"
TURN_PASSWORD = "wonderland"
ROLES = ["controlling", "controlled"]


def other_role(role: str) -> str:
    """Return the ICE role of the other side."""
    return "controlled" if role == "controlling" else "controlling"


async def exchange_data(agent: RiceFastAgent, peer: PeerProcess) -> list[bytes]:
    """Receive libnice's greeting, send a ping, and receive libnice's echo of it."""
    greeting = await asyncio.wait_for(agent.recv(), TIMEOUT)
    await agent.send(b"ping from rice_fast")
    echoed = await asyncio.wait_for(agent.recv(), TIMEOUT)
    received = await peer.wait_for("data", timeout=TIMEOUT)
    return [greeting, echoed, str(received["data"]).encode()]


def selected_addresses(
    connected: Connected,
) -> tuple[CandidateAddress, CandidateAddress, CandidateAddress, CandidateAddress]:
    """Return rice_fast's local and remote, then libnice's local and remote."""
    assert connected.agent_pair is not None
    assert connected.peer_pair is not None
    return (
        candidate_address(connected.agent_pair.local),
        candidate_address(connected.agent_pair.remote),
        candidate_address(connected.peer_pair["local"]),
        candidate_address(connected.peer_pair["remote"]),
    )


def assert_same_pair(connected: Connected) -> None:
    """Assert that both sides selected the same two transport addresses."""
    ours_local, ours_remote, theirs_local, theirs_remote = selected_addresses(connected)
    assert (theirs_local.host, theirs_local.port) == (
        ours_remote.host,
        ours_remote.port,
    )
    assert (theirs_remote.host, theirs_remote.port) == (
        ours_local.host,
        ours_local.port,
    )
    assert ours_local.transport == theirs_local.transport


@pytest.mark.parametrize("rice_role", ROLES)
async def test_libnice_udp(
    tmp_path: Path, rice_role: str, interop_result: ScenarioRecorder
) -> None:
    interop_result.describe("libnice", "UDP host candidates", rice_role, "udp")
    agent = RiceFastAgent(controlling=rice_role == "controlling")
    argv = libnice_peer_argv(other_role(rice_role))
    try:
        async with start_peer("libnice", argv, tmp_path) as peer:
            connected = await connect_agent_to_peer(agent, peer, timeout=TIMEOUT)
            interop_result.connected(connected.seconds)
            data = await exchange_data(agent, peer)
    finally:
        await agent.close()

    assert data == [GREETING, b"ping from rice_fast", b"ping from rice_fast"]
    assert_same_pair(connected)
    ours_local, ours_remote, _, _ = selected_addresses(connected)
    assert ours_local.transport == "udp"
    assert ours_local.host == "127.0.0.1"
    assert ours_remote.host == "127.0.0.1"


@pytest.mark.parametrize("rice_role", ROLES)
async def test_libnice_tcp_candidates(
    tmp_path: Path, rice_role: str, interop_result: ScenarioRecorder
) -> None:
    interop_result.describe("libnice", "TCP candidates (RFC 6544)", rice_role, "tcp")
    agent = RiceFastAgent(controlling=rice_role == "controlling", tcp=True)
    argv = libnice_peer_argv(other_role(rice_role), transport="tcp")
    try:
        async with start_peer("libnice", argv, tmp_path) as peer:
            libnice_local = await peer.local_description(timeout=TIMEOUT)
            connected = await connect_agent_to_peer(agent, peer, timeout=TIMEOUT)
            interop_result.connected(connected.seconds)
            data = await exchange_data(agent, peer)
    finally:
        await agent.close()

    assert data == [GREETING, b"ping from rice_fast", b"ping from rice_fast"]
    assert {candidate_address(c).transport for c in libnice_local.candidates} == {"tcp"}
    assert connected.agent_pair is not None
    assert connected.peer_pair is not None
    ours_local, ours_remote, theirs_local, theirs_remote = selected_addresses(connected)
    assert ours_local.transport == "tcp"
    assert ours_remote.transport == "tcp"
    assert theirs_local.transport == "tcp"
    # One side's active candidate connected to the other's passive one, so
    # the remote candidate that names the listener matches exactly.
    ours_type = tcp_type(connected.agent_pair.local)
    assert {ours_type, tcp_type(connected.peer_pair["local"])} == {
        "active",
        "passive",
    }
    if ours_type == "passive":
        assert (theirs_remote.host, theirs_remote.port) == (
            ours_local.host,
            ours_local.port,
        )
    else:
        assert (ours_remote.host, ours_remote.port) == (
            theirs_local.host,
            theirs_local.port,
        )


def tcp_type(line: str) -> str | None:
    """Return the ``tcptype`` of an SDP candidate value, or None."""
    fields = line.split()
    if "tcptype" not in fields[:-1]:
        return None
    return fields[fields.index("tcptype") + 1]


def relay_server(
    name: str,
    rice_relay: Callable[..., RiceRelay],
    coturn_factory: Callable[..., CoturnServer],
) -> tuple[tuple[str, int], tuple[int, int]]:
    """Start the named TURN server; return its address and relay port range."""
    if name == "rice-fast relay":
        relay = rice_relay("--allow-peer", "127.0.0.1/32")
        return relay.address, relay.relay_ports
    coturn = coturn_factory()
    return coturn.address(), coturn.relay_ports


@pytest.mark.parametrize("turn_transport", ["udp", "tcp"])
@pytest.mark.parametrize("server", ["rice-fast relay", "coturn"])
async def test_libnice_relayed(
    tmp_path: Path,
    server: str,
    turn_transport: str,
    rice_relay: Callable[..., RiceRelay],
    coturn_factory: Callable[..., CoturnServer],
    interop_result: ScenarioRecorder,
) -> None:
    """libnice gathers and uses only relayed candidates; rice_fast has host ones."""
    role = "controlled"
    interop_result.describe(
        "libnice",
        f"libnice relayed through {server}",
        role,
        f"udp via TURN over {turn_transport}",
    )
    address, (low, high) = relay_server(server, rice_relay, coturn_factory)
    argv = libnice_peer_argv(
        other_role(role),
        turn=address,
        turn_user=TURN_USER,
        turn_password=TURN_PASSWORD,
        turn_transport=turn_transport,
        force_relay=True,
    )
    agent = RiceFastAgent(controlling=role == "controlling")
    try:
        async with start_peer("libnice", argv, tmp_path) as peer:
            libnice_local = await peer.local_description(timeout=TIMEOUT)
            connected = await connect_agent_to_peer(agent, peer, timeout=TIMEOUT)
            interop_result.connected(connected.seconds)
            data = await exchange_data(agent, peer)
    finally:
        await agent.close()

    assert data == [GREETING, b"ping from rice_fast", b"ping from rice_fast"]
    relayed = [candidate_address(line) for line in libnice_local.candidates]
    assert relayed
    assert {candidate.type for candidate in relayed} == {"relay"}
    assert all(low <= candidate.port <= high for candidate in relayed)
    assert_same_pair(connected)
    _, ours_remote, theirs_local, _ = selected_addresses(connected)
    assert theirs_local.type == "relay"
    assert low <= ours_remote.port <= high


@pytest.mark.parametrize("turn_transport", ["udp", "tcp"])
@pytest.mark.parametrize("server", ["rice-fast relay", "coturn"])
async def test_rice_fast_relayed(
    tmp_path: Path,
    server: str,
    turn_transport: str,
    rice_relay: Callable[..., RiceRelay],
    coturn_factory: Callable[..., CoturnServer],
    interop_result: ScenarioRecorder,
) -> None:
    """rice_fast's agent relays through a TURN server; libnice has host candidates.

    rice_fast's host socket is on ::1 and libnice gathers only 127.0.0.1,
    so no host pair forms, and the only path is the IPv4 relayed address
    that rice_fast allocates over its IPv6 connection to the server
    (RFC 6156).
    """
    role = "controlling"
    interop_result.describe(
        "libnice",
        f"rice_fast relayed through {server}",
        role,
        f"udp via TURN over {turn_transport}",
    )
    if server == "rice-fast relay":
        relay = rice_relay("--allow-peer", "127.0.0.1/32", host="::1")
        address, (low, high) = relay.address, relay.relay_ports
    else:
        turnserver = coturn_factory()
        address, (low, high) = turnserver.address(ipv6=True), turnserver.relay_ports
    agent = RiceFastAgent(
        controlling=role == "controlling",
        addresses=("::1",),
        turn_server=address,
        turn_user=TURN_USER,
        turn_password=TURN_PASSWORD,
        turn_transport=turn_transport,
        relay_only=True,
    )
    argv = libnice_peer_argv(other_role(role))
    try:
        async with start_peer("libnice", argv, tmp_path) as peer:
            connected = await connect_agent_to_peer(agent, peer, timeout=TIMEOUT)
            interop_result.connected(connected.seconds)
            data = await exchange_data(agent, peer)
    finally:
        await agent.close()

    assert data == [GREETING, b"ping from rice_fast", b"ping from rice_fast"]
    assert_same_pair(connected)
    ours_local, _, theirs_local, theirs_remote = selected_addresses(connected)
    assert ours_local.type == "relay"
    assert ours_local.host == "127.0.0.1"
    assert low <= ours_local.port <= high
    assert theirs_local.type == "host"
    assert theirs_remote.port == ours_local.port
