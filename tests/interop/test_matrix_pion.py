"""rice_fast's ICE agent and relay against pion (pion/ice v2, pion/turn v2).

The Go peer in ``tests/interop/peers/pion_peer`` is built offline once per
session; rice_fast's ``IceConnection`` runs in-process behind
``RiceFastAgent``. The scenarios: UDP host candidates in both roles, pion
relaying through ``rice-fast relay`` in both roles, rice_fast's agent
relaying through ``rice-fast relay``, and pion's TURN client allocating on
``rice-fast relay`` and echoing through it. Data goes both ways in the
ICE scenarios: pion sends a greeting, and rice_fast's datagram comes back
in pion's echo.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

from tests.interop.harness import (
    Connected,
    PeerProcess,
    connect_agent_to_peer,
    pion_peer_argv,
    pion_turn_client_argv,
    start_peer,
)
from tests.interop.peers.python_peer import (
    CandidateAddress,
    RiceFastAgent,
    candidate_address,
)

if TYPE_CHECKING:
    from tests.conftest import Address
    from tests.interop.conftest import RiceRelay, ScenarioRecorder

pytestmark = pytest.mark.interop

TIMEOUT = 10.0
GREETING = b"hello from pion"
PING = b"ping from rice_fast"
TURN_USER = "alice"
TURN_PASSWORD = "wonderland"
ROLES = ["controlling", "controlled"]


def other_role(role: str) -> str:
    """Return the ICE role of the other side."""
    return "controlled" if role == "controlling" else "controlling"


async def exchange_data(agent: RiceFastAgent, peer: PeerProcess) -> list[bytes]:
    """Receive pion's greeting, send a ping, and receive pion's echo of it."""
    greeting = await asyncio.wait_for(agent.recv(), TIMEOUT)
    await agent.send(PING)
    echoed = await asyncio.wait_for(agent.recv(), TIMEOUT)
    received = await peer.wait_for("data", timeout=TIMEOUT)
    return [greeting, echoed, str(received["data"]).encode()]


def selected_addresses(
    connected: Connected,
) -> tuple[CandidateAddress, CandidateAddress, CandidateAddress, CandidateAddress]:
    """Return rice_fast's local and remote, then pion's local and remote."""
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
    assert ours_local.transport == theirs_local.transport == "udp"


@pytest.mark.parametrize("rice_role", ROLES)
async def test_pion_udp(
    tmp_path: Path,
    pion_peer_binary: Path,
    rice_role: str,
    interop_result: ScenarioRecorder,
) -> None:
    interop_result.describe("pion", "UDP host candidates", rice_role, "udp")
    argv = pion_peer_argv(pion_peer_binary, other_role(rice_role))
    agent = RiceFastAgent(controlling=rice_role == "controlling")
    try:
        async with start_peer("pion", argv, tmp_path) as peer:
            connected = await connect_agent_to_peer(agent, peer, timeout=TIMEOUT)
            interop_result.connected(connected.seconds)
            data = await exchange_data(agent, peer)
    finally:
        await agent.close()

    assert data == [GREETING, PING, PING]
    assert_same_pair(connected)
    ours_local, _, theirs_local, _ = selected_addresses(connected)
    assert ours_local.type == "host"
    assert theirs_local.type == "host"
    assert theirs_local.host == "127.0.0.1"


@pytest.mark.parametrize("rice_role", ROLES)
async def test_pion_relayed_through_rice_relay(
    tmp_path: Path,
    pion_peer_binary: Path,
    rice_role: str,
    rice_relay: Callable[..., RiceRelay],
    interop_result: ScenarioRecorder,
) -> None:
    """pion gathers and uses only a relayed candidate on ``rice-fast relay``."""
    interop_result.describe(
        "pion", "pion relayed through rice-fast relay", rice_role, "udp via TURN"
    )
    relay = rice_relay("--allow-peer", "127.0.0.1/32")
    host, port = relay.address
    argv = pion_peer_argv(
        pion_peer_binary,
        other_role(rice_role),
        turn_url=f"turn:{host}:{port}?transport=udp",
        turn_user=TURN_USER,
        turn_password=TURN_PASSWORD,
        relay_only=True,
    )
    agent = RiceFastAgent(controlling=rice_role == "controlling")
    try:
        async with start_peer("pion", argv, tmp_path) as peer:
            pion_local = await peer.local_description(timeout=TIMEOUT)
            connected = await connect_agent_to_peer(agent, peer, timeout=TIMEOUT)
            interop_result.connected(connected.seconds)
            data = await exchange_data(agent, peer)
    finally:
        await agent.close()

    assert data == [GREETING, PING, PING]
    relayed = [candidate_address(line) for line in pion_local.candidates]
    low, high = relay.relay_ports
    assert relayed
    assert {candidate.type for candidate in relayed} == {"relay"}
    assert all(low <= candidate.port <= high for candidate in relayed)
    assert_same_pair(connected)
    _, ours_remote, theirs_local, _ = selected_addresses(connected)
    assert theirs_local.type == "relay"
    assert low <= ours_remote.port <= high


@pytest.mark.parametrize("rice_role", ROLES)
async def test_rice_fast_relayed_to_pion(
    tmp_path: Path,
    pion_peer_binary: Path,
    rice_role: str,
    rice_relay: Callable[..., RiceRelay],
    interop_result: ScenarioRecorder,
) -> None:
    """rice_fast's agent relays through ``rice-fast relay``; pion has host candidates.

    rice_fast's host socket is on ::1 and pion gathers only 127.0.0.1, so
    the only path is the IPv4 relayed address that rice_fast allocates
    over its IPv6 connection to the relay (RFC 6156).
    """
    interop_result.describe(
        "pion", "rice_fast relayed through rice-fast relay", rice_role, "udp via TURN"
    )
    relay = rice_relay("--allow-peer", "127.0.0.1/32", host="::1")
    argv = pion_peer_argv(pion_peer_binary, other_role(rice_role))
    agent = RiceFastAgent(
        controlling=rice_role == "controlling",
        addresses=("::1",),
        turn_server=relay.address,
        turn_user=TURN_USER,
        turn_password=TURN_PASSWORD,
        relay_only=True,
    )
    try:
        async with start_peer("pion", argv, tmp_path) as peer:
            connected = await connect_agent_to_peer(agent, peer, timeout=TIMEOUT)
            interop_result.connected(connected.seconds)
            data = await exchange_data(agent, peer)
    finally:
        await agent.close()

    assert data == [GREETING, PING, PING]
    assert_same_pair(connected)
    ours_local, _, theirs_local, _ = selected_addresses(connected)
    low, high = relay.relay_ports
    assert ours_local.type == "relay"
    assert ours_local.host == "127.0.0.1"
    assert low <= ours_local.port <= high
    assert theirs_local.type == "host"


class _Echo(asyncio.DatagramProtocol):
    """A UDP echo server that records where each datagram came from."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.sources: list[Address] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.sources.append(addr)
        if self.transport is not None:
            self.transport.sendto(data, addr)


async def test_pion_turn_client_on_rice_relay(
    tmp_path: Path,
    pion_peer_binary: Path,
    rice_relay: Callable[..., RiceRelay],
    interop_result: ScenarioRecorder,
) -> None:
    """pion's TURN client allocates on ``rice-fast relay`` and echoes through it."""
    interop_result.describe(
        "pion",
        "pion TURN client allocates and echoes on rice-fast relay",
        "TURN server",
        "udp",
    )
    relay = rice_relay("--allow-peer", "127.0.0.1/32")
    loop = asyncio.get_running_loop()
    transport, echo = await loop.create_datagram_endpoint(
        _Echo, local_addr=("127.0.0.1", 0)
    )
    echo_address: Address = transport.get_extra_info("sockname")[:2]
    argv = pion_turn_client_argv(
        pion_peer_binary,
        relay.address,
        echo_address,
        user=TURN_USER,
        password=TURN_PASSWORD,
        count=3,
        message="relayed by rice-fast",
    )
    try:
        async with start_peer("pion-turn-client", argv, tmp_path) as client:
            # Timed from the start of the process to the allocation.
            started = time.monotonic()
            allocated = await client.wait_for("allocated", timeout=TIMEOUT)
            interop_result.connected(time.monotonic() - started)
            done = await client.wait_for("done", timeout=TIMEOUT)
    finally:
        transport.close()
    counters = relay.counters()

    relayed_host, _, relayed_port = allocated["relayed"].rpartition(":")
    low, high = relay.relay_ports
    assert relayed_host == "127.0.0.1"
    assert low <= int(relayed_port) <= high
    assert done["received"] == 3
    data = [m for m in client.messages if m["type"] == "data"]
    assert [m["data"] for m in data] == ["relayed by rice-fast"] * 3
    assert {m["from"] for m in data} == {f"{echo_address[0]}:{echo_address[1]}"}
    assert set(echo.sources) == {("127.0.0.1", int(relayed_port))}
    assert counters["allocations_created"] == 1
    to_peer = counters["server_packets_to_peer"] + counters["fast_packets_to_peer"]
    to_client = (
        counters["server_packets_to_client"] + counters["fast_packets_to_client"]
    )
    assert to_peer >= 3
    assert to_client >= 3
