"""The asyncio ICE runner on real loopback sockets, alone and against aioice."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import aioice
import aioice.ice
import pytest

from rice_fast.ice import Candidate, CandidateType, TurnConfig
from rice_fast.io import RelayConfig, RelayServer
from rice_fast.io._ice import IceConnection
from rice_fast.stun.transport import Address, TransportType
from rice_fast.turn import PeerPolicy, TurnServerConfig

if TYPE_CHECKING:
    from tests.conftest import CoturnServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def loopback_aioice(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # aioice skips loopback when gathering; give it 127.0.0.1 only, so it
    # never touches the machine's real addresses.
    monkeypatch.setattr(
        aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    )
    yield


class _Relay:
    def __init__(self, server: RelayServer, password: str) -> None:
        self.server = server
        self.password = password

    @property
    def address(self) -> Address:
        return self.server.addresses[TransportType.UDP][0]

    def turn_config(self) -> TurnConfig:
        return TurnConfig(self.address, "user", self.password)


@contextlib.asynccontextmanager
async def _embedded_relay() -> AsyncIterator[_Relay]:
    password = secrets.token_urlsafe(12)
    server = RelayServer(
        RelayConfig(
            turn=TurnServerConfig(
                realm="test",
                users={"user": password},
                peer_policy=PeerPolicy(allow=["127.0.0.0/8"]),
            ),
            listen=(("127.0.0.1", 0),),
        )
    )
    await server.start()
    try:
        yield _Relay(server, password)
    finally:
        server.close()
        await server.wait_closed()


async def _pair_up(
    left: IceConnection, right: IceConnection, *, relay_only: bool = False
) -> None:
    offers = await asyncio.gather(left.gather(), right.gather())
    signalled = [
        [c for c in o.candidates if not relay_only or c.type is CandidateType.RELAYED]
        for o in offers
    ]
    left.set_remote(offers[1].ufrag, offers[1].pwd, signalled[1])
    right.set_remote(offers[0].ufrag, offers[0].pwd, signalled[0])
    await asyncio.gather(left.connected(), right.connected())


async def _exchange(left: IceConnection, right: IceConnection) -> None:
    for i in range(5):
        left.send(b"to right %d" % i)
        assert await right.recv() == b"to right %d" % i
        right.send(b"to left %d" % i)
        assert await left.recv() == b"to left %d" % i


async def test_two_runners_connect_over_udp() -> None:
    left = await IceConnection.create(controlling=True)
    right = await IceConnection.create(controlling=False)
    try:
        await _pair_up(left, right)
        pair = left.selected_pair()
        assert pair is not None
        assert pair.local.transport is TransportType.UDP
        await _exchange(left, right)
    finally:
        await left.close()
        await right.close()
    assert not left._udp
    assert not right._udp


async def test_two_runners_connect_over_tcp() -> None:
    left = await IceConnection.create(controlling=True, udp=False, tcp=True)
    right = await IceConnection.create(controlling=False, udp=False, tcp=True)
    try:
        await _pair_up(left, right)
        pair = left.selected_pair()
        assert pair is not None
        assert pair.local.transport is TransportType.TCP
        await _exchange(left, right)
    finally:
        await left.close()
        await right.close()


async def test_runners_gather_relayed_and_connect_through_relay() -> None:
    async with _embedded_relay() as relay:
        await _through_relay(relay)


async def _through_relay(relay: _Relay) -> None:
    left = await IceConnection.create(
        controlling=True,
        stun_servers=[relay.address],
        turn_servers=[relay.turn_config()],
    )
    right = await IceConnection.create(
        controlling=False,
        stun_servers=[relay.address],
        turn_servers=[relay.turn_config()],
    )
    try:
        await _pair_up(left, right, relay_only=True)
        pair = left.selected_pair()
        assert pair is not None
        assert pair.remote.type is CandidateType.RELAYED
        await _exchange(left, right)
        counters = relay.server.counters()
        assert counters["allocations"] == 2
    finally:
        await left.close()
        await right.close()
    # Closing deletes both allocations on the relay.
    for _ in range(50):
        if relay.server.counters()["allocations"] == 0:
            break
        await asyncio.sleep(0.02)
    assert relay.server.counters()["allocations"] == 0


def _to_aioice(candidate: Candidate) -> aioice.Candidate:
    return aioice.Candidate.from_sdp(candidate.to_sdp().removeprefix("candidate:"))


def _from_aioice(candidate: aioice.Candidate) -> Candidate:
    return Candidate.from_sdp("candidate:" + candidate.to_sdp())


@pytest.mark.interop
@pytest.mark.parametrize("rice_controlling", [True, False])
async def test_aioice_peer_over_udp(
    loopback_aioice: None, rice_controlling: bool
) -> None:
    ours = await IceConnection.create(controlling=rice_controlling)
    theirs = aioice.Connection(ice_controlling=not rice_controlling, components=1)
    try:
        offer = await ours.gather()
        await theirs.gather_candidates()
        theirs.remote_username = offer.ufrag
        theirs.remote_password = offer.pwd
        for candidate in offer.candidates:
            await theirs.add_remote_candidate(_to_aioice(candidate))
        await theirs.add_remote_candidate(None)
        ours.set_remote(
            theirs.local_username,
            theirs.local_password,
            [_from_aioice(c) for c in theirs.local_candidates],
        )
        await asyncio.gather(ours.connected(), theirs.connect())

        ours.send(b"hello aioice")
        assert await theirs.recv() == b"hello aioice"
        await theirs.send(b"hello rice_fast")
        assert await ours.recv() == b"hello rice_fast"
        pair = ours.selected_pair()
        assert pair is not None
        assert pair.local.address[0] == "127.0.0.1"
    finally:
        await theirs.close()
        await ours.close()


@pytest.mark.interop
@pytest.mark.parametrize("rice_controlling", [True, False])
async def test_aioice_peer_with_relayed_candidates(
    loopback_aioice: None, rice_controlling: bool, coturn: CoturnServer
) -> None:
    server = coturn.address()
    username = coturn.user
    password = coturn.password
    ours = await IceConnection.create(
        controlling=rice_controlling,
        turn_servers=[TurnConfig(server, username, password)],
    )
    theirs = aioice.Connection(
        ice_controlling=not rice_controlling,
        components=1,
        turn_server=server,
        turn_username=username,
        turn_password=password,
    )
    try:
        offer = await ours.gather()
        await theirs.gather_candidates()
        relayed = [c for c in offer.candidates if c.type is CandidateType.RELAYED]
        assert relayed, "rice_fast gathered no relayed candidate from coturn"
        theirs_relayed = [c for c in theirs.local_candidates if c.type == "relay"]
        assert theirs_relayed, "aioice gathered no relayed candidate from coturn"
        theirs.remote_username = offer.ufrag
        theirs.remote_password = offer.pwd
        for candidate in relayed:
            await theirs.add_remote_candidate(_to_aioice(candidate))
        await theirs.add_remote_candidate(None)
        ours.set_remote(
            theirs.local_username,
            theirs.local_password,
            [_from_aioice(c) for c in theirs_relayed],
        )
        await asyncio.gather(ours.connected(), theirs.connect())

        ours.send(b"through coturn")
        assert await theirs.recv() == b"through coturn"
        await theirs.send(b"and back")
        assert await ours.recv() == b"and back"
    finally:
        await theirs.close()
        await ours.close()


async def test_tcp_bulk_send_with_drain() -> None:
    left = await IceConnection.create(controlling=True, udp=False, tcp=True)
    right = await IceConnection.create(controlling=False, udp=False, tcp=True)
    try:
        await _pair_up(left, right)
        chunk = bytes(1200)
        for _ in range(500):
            left.send(chunk)
            await left.drain()
        received = 0
        while received < 500:
            assert await right.recv() == chunk
            received += 1
    finally:
        await left.close()
        await right.close()


async def test_unread_data_is_dropped_and_counted() -> None:
    left = await IceConnection.create(controlling=True)
    right = await IceConnection.create(controlling=False)
    try:
        await _pair_up(left, right)
        for i in range(1100):
            left.send(b"%d" % i)
            if i % 100 == 0:
                await asyncio.sleep(0.01)
        for _ in range(100):
            if right.dropped_data + right._queues[1].qsize() >= 1100:
                break
            await asyncio.sleep(0.01)
        assert right._queues[1].qsize() == 1024
        # Loopback rarely loses a datagram, but the kernel may; every one
        # that reached the runner beyond the queue's 1024 is counted.
        assert 0 < right.dropped_data <= 1100 - 1024
    finally:
        await left.close()
        await right.close()
