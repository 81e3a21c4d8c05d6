"""The pion peer harness (pion/ice v2, pion/turn v2), proved against aioice.

The Go peer in ``tests/interop/peers/pion_peer`` is built offline from
Debian's Go sources once per session. aioice 0.13 runs in-process as the
stand-in for rice_fast's agent. The relay scenarios use coturn 4.6, and
the TURN client mode sends to a UDP echo socket of the test on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

from tests.interop.harness import (
    connect_agent_to_peer,
    pion_peer_argv,
    pion_turn_client_argv,
    start_peer,
)
from tests.interop.peers.python_peer import AioiceAgent, candidate_address

if TYPE_CHECKING:
    from tests.conftest import Address, CoturnServer

pytestmark = pytest.mark.interop

TIMEOUT = 10.0


class _Echo(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.sources: list[Address] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.sources.append(addr)
        if self.transport is not None:
            self.transport.sendto(data, addr)


@pytest.mark.parametrize("pion_role", ["controlling", "controlled"])
async def test_pion_aioice_udp(
    tmp_path: Path,
    pion_peer_binary: Path,
    pion_role: str,
    record_connect_time: Callable[[str, float], None],
) -> None:
    argv = pion_peer_argv(pion_peer_binary, pion_role)
    agent = AioiceAgent(controlling=pion_role == "controlled")
    try:
        async with start_peer("pion", argv, tmp_path) as peer:
            connected = await connect_agent_to_peer(agent, peer, timeout=TIMEOUT)
            greeting = await asyncio.wait_for(agent.recv(), TIMEOUT)
            await agent.send(b"ping from aioice")
            echoed = await asyncio.wait_for(agent.recv(), TIMEOUT)
            received = await peer.wait_for("data", timeout=TIMEOUT)
    finally:
        await agent.close()
    record_connect_time(f"pion {pion_role} / aioice udp", connected.seconds)

    assert greeting == b"hello from pion"
    assert echoed == b"ping from aioice"
    assert received["data"] == "ping from aioice"
    assert connected.agent_pair is not None
    assert connected.peer_pair is not None
    agent_local = candidate_address(connected.agent_pair.local)
    agent_remote = candidate_address(connected.agent_pair.remote)
    peer_local = candidate_address(connected.peer_pair["local"])
    peer_remote = candidate_address(connected.peer_pair["remote"])
    assert peer_local.transport == "udp"
    assert peer_local.host == "127.0.0.1"
    assert (peer_local.host, peer_local.port) == (agent_remote.host, agent_remote.port)
    assert (peer_remote.host, peer_remote.port) == (agent_local.host, agent_local.port)


async def test_pion_relay_through_coturn(
    tmp_path: Path,
    pion_peer_binary: Path,
    coturn: CoturnServer,
    record_connect_time: Callable[[str, float], None],
) -> None:
    host, port = coturn.address()
    argv = pion_peer_argv(
        pion_peer_binary,
        "controlling",
        turn_url=f"turn:{host}:{port}?transport=udp",
        turn_user=coturn.user,
        turn_password=coturn.password,
        relay_only=True,
    )
    agent = AioiceAgent(controlling=False)
    try:
        async with start_peer("pion", argv, tmp_path) as peer:
            pion_local = await peer.local_description(timeout=TIMEOUT)
            connected = await connect_agent_to_peer(agent, peer, timeout=TIMEOUT)
            greeting = await asyncio.wait_for(agent.recv(), TIMEOUT)
            await agent.send(b"ping through the relay")
            echoed = await asyncio.wait_for(agent.recv(), TIMEOUT)
    finally:
        await agent.close()
    record_connect_time("pion relay / aioice udp", connected.seconds)

    relayed = [candidate_address(line) for line in pion_local.candidates]
    assert relayed
    assert {candidate.type for candidate in relayed} == {"relay"}
    low, high = coturn.relay_ports
    assert all(low <= candidate.port <= high for candidate in relayed)
    assert connected.peer_pair is not None
    assert candidate_address(connected.peer_pair["local"]).type == "relay"
    assert greeting == b"hello from pion"
    assert echoed == b"ping through the relay"


async def test_pion_turn_client_through_coturn(
    tmp_path: Path, pion_peer_binary: Path, coturn: CoturnServer
) -> None:
    loop = asyncio.get_running_loop()
    transport, echo = await loop.create_datagram_endpoint(
        _Echo, local_addr=("127.0.0.1", 0)
    )
    echo_address: Address = transport.get_extra_info("sockname")[:2]
    argv = pion_turn_client_argv(
        pion_peer_binary,
        coturn.address(),
        echo_address,
        user=coturn.user,
        password=coturn.password,
        count=3,
        message="relayed by coturn",
    )
    try:
        async with start_peer("pion-turn-client", argv, tmp_path) as client:
            allocated = await client.wait_for("allocated", timeout=TIMEOUT)
            done = await client.wait_for("done", timeout=TIMEOUT)
    finally:
        transport.close()

    relayed_host, _, relayed_port = allocated["relayed"].rpartition(":")
    low, high = coturn.relay_ports
    assert relayed_host == "127.0.0.1"
    assert low <= int(relayed_port) <= high
    assert done["received"] == 3
    data = [m for m in client.messages if m["type"] == "data"]
    assert [m["data"] for m in data] == ["relayed by coturn"] * 3
    assert {m["from"] for m in data} == {f"{echo_address[0]}:{echo_address[1]}"}
    assert set(echo.sources) == {("127.0.0.1", int(relayed_port))}
