"""The libnice 0.1.21 peer harness, proved against aioice 0.13 on loopback.

aioice runs in-process as the stand-in for rice_fast's agent; libnice runs
as ``tests/interop/peers/libnice_peer.py`` under Debian's Python. TCP
candidates (RFC 6544) are proved libnice to libnice, because aioice has no
ICE-TCP, and the TURN relay option through coturn 4.6.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.interop.harness import (
    connect_agent_to_peer,
    connect_peers,
    libnice_peer_argv,
    start_peer,
)
from tests.interop.peers.python_peer import AioiceAgent, candidate_address

if TYPE_CHECKING:
    from tests.conftest import CoturnServer

pytestmark = pytest.mark.interop

TIMEOUT = 10.0


@pytest.mark.parametrize("libnice_role", ["controlling", "controlled"])
async def test_libnice_aioice_udp(
    tmp_path: Path,
    libnice_role: str,
    record_connect_time: Callable[[str, float], None],
) -> None:
    agent = AioiceAgent(controlling=libnice_role == "controlled")
    try:
        async with start_peer(
            "libnice", libnice_peer_argv(libnice_role), tmp_path
        ) as peer:
            connected = await connect_agent_to_peer(agent, peer, timeout=TIMEOUT)
            greeting = await asyncio.wait_for(agent.recv(), TIMEOUT)
            await agent.send(b"ping from aioice")
            echoed = await asyncio.wait_for(agent.recv(), TIMEOUT)
            received = await peer.wait_for("data", timeout=TIMEOUT)
    finally:
        await agent.close()
    record_connect_time(f"libnice {libnice_role} / aioice udp", connected.seconds)

    assert greeting == b"hello from libnice"
    assert echoed == b"ping from aioice"
    assert received["data"] == "ping from aioice"
    assert connected.agent_pair is not None
    assert connected.peer_pair is not None
    agent_local = candidate_address(connected.agent_pair.local)
    agent_remote = candidate_address(connected.agent_pair.remote)
    peer_local = candidate_address(connected.peer_pair["local"])
    peer_remote = candidate_address(connected.peer_pair["remote"])
    assert agent_local.transport == "udp"
    assert peer_local.transport == "udp"
    assert (peer_local.host, peer_local.port) == (agent_remote.host, agent_remote.port)
    assert (peer_remote.host, peer_remote.port) == (agent_local.host, agent_local.port)
    assert agent_local.host == "127.0.0.1"


async def test_libnice_tcp_candidates(
    tmp_path: Path, record_connect_time: Callable[[str, float], None]
) -> None:
    controlling = libnice_peer_argv("controlling", transport="tcp", greeting="ping A")
    controlled = libnice_peer_argv(
        "controlled", transport="tcp", greeting="ping B", echo=False
    )
    async with (
        start_peer("libnice-a", controlling, tmp_path) as first,
        start_peer("libnice-b", controlled, tmp_path) as second,
    ):
        first_local = await first.local_description(timeout=TIMEOUT)
        seconds = await connect_peers(first, second, timeout=TIMEOUT)
        echoed = await first.wait_for("data", timeout=TIMEOUT)
        received = await second.wait_for(
            "data", timeout=TIMEOUT, match=lambda m: m["data"] == "ping B"
        )
        selected = await first.wait_for("selected", timeout=TIMEOUT)
    record_connect_time("libnice / libnice tcp", seconds)

    local_transports = {candidate_address(c).transport for c in first_local.candidates}
    assert local_transports == {"tcp"}
    assert any("tcptype active" in c for c in first_local.candidates)
    assert any("tcptype passive" in c for c in first_local.candidates)
    assert candidate_address(selected["local"]).transport == "tcp"
    assert candidate_address(selected["remote"]).transport == "tcp"
    assert echoed["data"] == "ping B"
    assert received["data"] == "ping B"


@pytest.mark.parametrize("turn_transport", ["udp", "tcp"])
async def test_libnice_relay_through_coturn(
    tmp_path: Path,
    coturn: CoturnServer,
    turn_transport: str,
    record_connect_time: Callable[[str, float], None],
) -> None:
    argv = libnice_peer_argv(
        "controlling",
        turn=coturn.address(),
        turn_user=coturn.user,
        turn_password=coturn.password,
        turn_transport=turn_transport,
        force_relay=True,
    )
    agent = AioiceAgent(controlling=False)
    try:
        async with start_peer("libnice", argv, tmp_path) as peer:
            libnice_local = await peer.local_description(timeout=TIMEOUT)
            connected = await connect_agent_to_peer(agent, peer, timeout=TIMEOUT)
            greeting = await asyncio.wait_for(agent.recv(), TIMEOUT)
            await agent.send(b"ping through the relay")
            echoed = await asyncio.wait_for(agent.recv(), TIMEOUT)
    finally:
        await agent.close()
    record_connect_time(
        f"libnice relay over {turn_transport} / aioice", connected.seconds
    )

    relayed = [candidate_address(line) for line in libnice_local.candidates]
    assert relayed
    assert {candidate.type for candidate in relayed} == {"relay"}
    low, high = coturn.relay_ports
    assert all(low <= candidate.port <= high for candidate in relayed)
    assert connected.peer_pair is not None
    assert candidate_address(connected.peer_pair["local"]).type == "relay"
    assert greeting == b"hello from libnice"
    assert echoed == b"ping through the relay"
