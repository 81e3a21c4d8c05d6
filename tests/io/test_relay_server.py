"""RelayServer in-process on loopback sockets: security defaults and routes.

Each test starts a ``RelayServer`` on 127.0.0.1 with short lifetimes where
it needs them, and talks to it with TURN requests built by hand, so that
every error response reaches the test as it was sent. The peer is a UDP
socket of the test on 127.0.0.1. Waits for an expiry poll the relay's
counters under a deadline instead of sleeping for a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

from rice_fast.io._relay_server import RelayConfig, RelayServer
from rice_fast.stun import (
    IntegrityKey,
    Message,
    MessageBuilder,
    MessageClass,
    Method,
    TransportProtocol,
    long_term_key,
    message_type,
    new_transaction_id,
    parse,
)
from rice_fast.stun.transport import Address, TransportType
from rice_fast.turn import encode_channel_data
from rice_fast.turn._peer_policy import PeerPolicy
from rice_fast.turn._server_config import TurnServerConfig

USER = "alice"
PASSWORD = "wonderland"
REALM = "rice-fast.test"
CHANNEL = 0x4001
REQUEST_TIMEOUT = 2.0
RETRANSMIT_INTERVAL = 0.5
EXPIRY_TIMEOUT = 5.0
LOOPBACK_PEERS = PeerPolicy(allow=["127.0.0.1/32"])


@contextlib.asynccontextmanager
async def running_relay(**turn: Any) -> AsyncIterator[RelayServer]:
    """Run a RelayServer on 127.0.0.1 with ``turn`` as TurnServerConfig fields."""
    from tests.conftest import free_ports

    low = free_ports(("127.0.0.1",), count=50)
    config = RelayConfig(
        turn=TurnServerConfig(realm=REALM, users={USER: PASSWORD}, **turn),
        listen=(("127.0.0.1", 0),),
        tcp=False,
        relay_ips=("127.0.0.1",),
        min_port=low,
        max_port=low + 49,
    )
    relay = RelayServer(config)
    await relay.start()
    try:
        yield relay
    finally:
        relay.close()
        await relay.wait_closed()


class Endpoint(asyncio.DatagramProtocol):
    """A UDP socket on 127.0.0.1 that queues STUN and other datagrams apart."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.stun: asyncio.Queue[bytes] = asyncio.Queue()
        self.data: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()

    @classmethod
    async def open(cls) -> Endpoint:
        loop = asyncio.get_running_loop()
        _, endpoint = await loop.create_datagram_endpoint(
            cls, local_addr=("127.0.0.1", 0)
        )
        return endpoint

    @property
    def address(self) -> Address:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return (host, port)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if data and data[0] <= 0x03:
            self.stun.put_nowait(data)
        else:
            self.data.put_nowait((data, addr))

    def sendto(self, data: bytes, destination: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, destination)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class TurnTestClient:
    """TURN requests by hand over one UDP socket; returns every response.

    ``request`` sends the request without credentials first when it has
    no nonce yet, takes REALM and NONCE from the 401, and sends it again
    signed with the long-term key. A 438 is returned to the caller, who
    may call ``request`` again: the new NONCE is kept.
    """

    def __init__(self, endpoint: Endpoint, server: Address, password: str) -> None:
        self.endpoint = endpoint
        self.server = server
        self.password = password
        self.nonce: str | None = None
        self.key: IntegrityKey | None = None

    @classmethod
    async def open(cls, relay: RelayServer, password: str = PASSWORD) -> TurnTestClient:
        server = relay.addresses[TransportType.UDP][0]
        return cls(await Endpoint.open(), server, password)

    async def transact(self, data: bytes, transaction_id: bytes) -> Message:
        """Send ``data`` until a response with ``transaction_id`` arrives."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REQUEST_TIMEOUT
        while loop.time() < deadline:
            self.endpoint.sendto(data, self.server)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RETRANSMIT_INTERVAL):
                    while True:
                        response = parse(await self.endpoint.stun.get())
                        if response.transaction_id == transaction_id:
                            return response
        raise AssertionError(
            f"no response to request type {data[:2].hex()} within {REQUEST_TIMEOUT} s"
        )

    async def request(
        self, method: Method, build: Callable[[MessageBuilder], None] | None = None
    ) -> Message:
        """Send an authenticated ``method`` request and return the final response."""
        request_type = message_type(method, MessageClass.REQUEST)
        if self.nonce is None:
            transaction_id = new_transaction_id()
            builder = MessageBuilder(request_type, transaction_id)
            if build is not None:
                build(builder)
            challenge = await self.transact(builder.finish(), transaction_id)
            assert challenge.error_code() is not None, "request without credentials"
            self._learn(challenge)
        transaction_id = new_transaction_id()
        builder = MessageBuilder(request_type, transaction_id)
        if build is not None:
            build(builder)
        assert self.nonce is not None
        builder.add_username(USER)
        builder.add_realm(REALM)
        builder.add_nonce(self.nonce)
        data = builder.finish(self.key, fingerprint=True)
        response = await self.transact(data, transaction_id)
        self._learn(response)
        return response

    def _learn(self, response: Message) -> None:
        nonce = response.nonce()
        if nonce is not None:
            self.nonce = nonce
        realm = response.realm() or REALM
        self.key = IntegrityKey(long_term_key(USER, realm, self.password))

    async def allocate(self, lifetime: int | None = None) -> Message:
        def build(builder: MessageBuilder) -> None:
            builder.add_requested_transport(TransportProtocol.UDP)
            if lifetime is not None:
                builder.add_lifetime(lifetime)

        return await self.request(Method.ALLOCATE, build)

    async def refresh(self, lifetime: int) -> Message:
        return await self.request(
            Method.REFRESH, lambda builder: builder.add_lifetime(lifetime)
        )

    async def create_permission(self, peer: Address) -> Message:
        return await self.request(
            Method.CREATE_PERMISSION,
            lambda builder: builder.add_xor_peer_address(*peer),
        )

    async def channel_bind(self, peer: Address, channel: int = CHANNEL) -> Message:
        def build(builder: MessageBuilder) -> None:
            builder.add_channel_number(channel)
            builder.add_xor_peer_address(*peer)

        return await self.request(Method.CHANNEL_BIND, build)

    def send_channel_data(self, payload: bytes, channel: int = CHANNEL) -> None:
        self.endpoint.sendto(encode_channel_data(channel, payload), self.server)

    def close(self) -> None:
        self.endpoint.close()


def error_code(response: Message) -> int | None:
    error = response.error_code()
    return None if error is None else error[0]


async def wait_for_counter(
    relay: RelayServer, name: str, expected: int, timeout: float = EXPIRY_TIMEOUT
) -> None:
    """Wait until ``relay.counters()[name]`` equals ``expected``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while relay.counters()[name] != expected:
        if loop.time() > deadline:
            raise AssertionError(
                f"counter {name} is {relay.counters()[name]}, expected {expected} "
                f"within {timeout} s"
            )
        await asyncio.sleep(0.05)


async def receive_all(
    queue: asyncio.Queue[tuple[bytes, Address]], count: int
) -> list[tuple[bytes, Address]]:
    async with asyncio.timeout(REQUEST_TIMEOUT):
        return [await queue.get() for _ in range(count)]


async def nothing_arrives(queue: asyncio.Queue[tuple[bytes, Address]]) -> bool:
    """Return whether no datagram arrives within 0.3 s."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0.3):
            await queue.get()
            return False
    return True


def port_is_free(address: Address) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(address)
        except OSError:
            return False
    return True


# Security defaults.


async def test_loopback_peer_forbidden_by_default() -> None:
    async with running_relay() as relay:
        client = await TurnTestClient.open(relay)
        peer = await Endpoint.open()
        try:
            allocated = await client.allocate()
            permission = await client.create_permission(peer.address)
            bound = await client.channel_bind(peer.address)
        finally:
            client.close()
            peer.close()

    assert allocated.is_success
    assert error_code(permission) == 403
    assert error_code(bound) == 403
    assert relay.counters()["routes"] == 0


async def test_user_quota_reached_486() -> None:
    async with running_relay(max_allocations_per_user=1) as relay:
        first = await TurnTestClient.open(relay)
        second = await TurnTestClient.open(relay)
        try:
            accepted = await first.allocate()
            rejected = await second.allocate()
        finally:
            first.close()
            second.close()

    assert accepted.is_success
    assert error_code(rejected) == 486
    assert relay.counters()["allocations_created"] == 1


async def test_wrong_password_401() -> None:
    async with running_relay() as relay:
        client = await TurnTestClient.open(relay, password="not the password")
        try:
            response = await client.allocate()
        finally:
            client.close()

    assert error_code(response) == 401
    # A 401 carries REALM and a NONCE to try again with, and no integrity.
    assert response.realm() == REALM
    assert response.nonce()
    assert not response.has_integrity
    assert relay.counters()["allocations"] == 0


async def test_stale_nonce_438_then_success() -> None:
    async with running_relay(nonce_lifetime=0.3) as relay:
        client = await TurnTestClient.open(relay)
        try:
            allocated = await client.allocate()
            first_nonce = client.nonce
            await asyncio.sleep(0.5)
            stale = await client.refresh(600)
            fresh = await client.refresh(600)
        finally:
            client.close()

    assert allocated.is_success
    assert error_code(stale) == 438
    assert stale.nonce() is not None
    assert stale.nonce() != first_nonce
    assert fresh.is_success
    assert fresh.lifetime() == 600


# Lifetimes.


async def test_allocation_expires_after_lifetime() -> None:
    async with running_relay(default_lifetime=1) as relay:
        client = await TurnTestClient.open(relay)
        try:
            allocated = await client.allocate(lifetime=1)
            relayed = allocated.xor_relayed_address()
            assert relayed is not None
            assert relay.counters()["relay_sockets"] == 1

            await wait_for_counter(relay, "allocations", 0)
            after_expiry = await client.refresh(600)
        finally:
            client.close()

        assert relay.counters()["relay_sockets"] == 0
        assert port_is_free(relayed)

    assert allocated.is_success
    assert allocated.lifetime() == 1
    assert error_code(after_expiry) == 437


async def test_refresh_lifetime_zero_frees_port() -> None:
    async with running_relay() as relay:
        client = await TurnTestClient.open(relay)
        try:
            allocated = await client.allocate()
            relayed = allocated.xor_relayed_address()
            assert relayed is not None
            assert not port_is_free(relayed)

            deleted = await client.refresh(0)
        finally:
            client.close()

        counters = relay.counters()
        assert counters["allocations"] == 0
        assert counters["relay_sockets"] == 0
        assert port_is_free(relayed)

    assert deleted.is_success
    assert deleted.lifetime() == 0


# The compiled forwarding path.


async def test_channel_data_takes_fast_path() -> None:
    async with running_relay(peer_policy=LOOPBACK_PEERS) as relay:
        client = await TurnTestClient.open(relay)
        peer = await Endpoint.open()
        try:
            assert (await client.allocate()).is_success
            assert (await client.channel_bind(peer.address)).is_success
            before = relay.counters()
            assert before["routes"] == 2

            for index in range(100):
                client.send_channel_data(b"to peer %d" % index)
            to_peer = await receive_all(peer.data, 100)
            middle = relay.counters()

            relayed = to_peer[0][1]
            for index in range(100):
                peer.sendto(b"to client %d" % index, relayed)
            to_client = await receive_all(client.endpoint.data, 100)
            after = relay.counters()
        finally:
            client.close()
            peer.close()

    assert {data for data, _ in to_peer} == {b"to peer %d" % i for i in range(100)}
    assert middle["fast_packets_to_peer"] - before["fast_packets_to_peer"] == 100
    assert middle["datagrams_to_server"] == before["datagrams_to_server"]
    expected = {encode_channel_data(CHANNEL, b"to client %d" % i) for i in range(100)}
    assert {data for data, _ in to_client} == expected
    assert after["fast_packets_to_client"] - middle["fast_packets_to_client"] == 100
    assert after["datagrams_to_server"] == before["datagrams_to_server"]
    assert after["server_packets_to_peer"] == before["server_packets_to_peer"]


async def test_permission_only_goes_through_server() -> None:
    async with running_relay(peer_policy=LOOPBACK_PEERS) as relay:
        client = await TurnTestClient.open(relay)
        peer = await Endpoint.open()
        try:
            allocated = await client.allocate()
            relayed = allocated.xor_relayed_address()
            assert relayed is not None
            assert (await client.create_permission(peer.address)).is_success
            before = relay.counters()

            for index in range(10):
                peer.sendto(b"indication %d" % index, relayed)
            async with asyncio.timeout(REQUEST_TIMEOUT):
                indications = [
                    parse(await client.endpoint.stun.get()) for _ in range(10)
                ]
            after = relay.counters()
        finally:
            client.close()
            peer.close()

    # Without a channel there is no route, so the TurnServer turns each
    # datagram into a Data indication.
    assert before["routes"] == 0
    assert [m.data_attribute() for m in indications] == [
        b"indication %d" % i for i in range(10)
    ]
    assert after["datagrams_to_server"] - before["datagrams_to_server"] == 10
    assert after["fast_packets_to_client"] == before["fast_packets_to_client"]


async def test_routes_removed_when_channel_expires() -> None:
    async with running_relay(peer_policy=LOOPBACK_PEERS, channel_lifetime=0.5) as relay:
        client = await TurnTestClient.open(relay)
        peer = await Endpoint.open()
        try:
            assert (await client.allocate()).is_success
            assert (await client.channel_bind(peer.address)).is_success
            assert relay.counters()["routes"] == 2

            await wait_for_counter(relay, "channels", 0)
            routes = relay.counters()["routes"]
            before = relay.counters()
            client.send_channel_data(b"after expiry")
            dropped = await nothing_arrives(peer.data)
            after = relay.counters()
        finally:
            client.close()
            peer.close()

    assert routes == 0
    assert dropped
    assert after["fast_packets_to_peer"] == before["fast_packets_to_peer"]
    assert after["datagrams_to_server"] - before["datagrams_to_server"] == 1


async def test_routes_removed_when_permission_expires() -> None:
    async with running_relay(
        peer_policy=LOOPBACK_PEERS, permission_lifetime=0.5
    ) as relay:
        client = await TurnTestClient.open(relay)
        peer = await Endpoint.open()
        try:
            assert (await client.allocate()).is_success
            assert (await client.channel_bind(peer.address)).is_success
            assert relay.counters()["routes"] == 2

            await wait_for_counter(relay, "permissions", 0)
            counters = relay.counters()
            client.send_channel_data(b"after expiry")
            dropped = await nothing_arrives(peer.data)
        finally:
            client.close()
            peer.close()

    # The channel outlives the permission, but nothing may be relayed.
    assert counters["channels"] == 1
    assert counters["routes"] == 0
    assert dropped
