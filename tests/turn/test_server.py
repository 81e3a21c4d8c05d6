"""TurnServer: full request flows on a virtual clock, one rule per test.

A ``Harness`` plays the I/O layer: it feeds the server, reports loopback
addresses for ``AllocateRelaySocket`` (unless a test reports them
itself), and collects events and transmits. ``Client`` builds requests
with ``MessageBuilder`` and signs them as an RFC 8489 client does (or as
an RFC 5389 client, with MD5 and MESSAGE-INTEGRITY). Nothing here touches
a socket; time is a plain float.
"""

from __future__ import annotations

import itertools
import logging
import struct
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rice_fast.turn._framing import channel_data_payload, encode_channel_data

from rice_fast.stun import (
    AddressFamily,
    AttributeType,
    IntegrityKey,
    Message,
    MessageBuilder,
    MessageClass,
    Method,
    TransportProtocol,
    message_type,
    new_transaction_id,
    parse,
)
from rice_fast.stun.attributes import AddressErrorCode
from rice_fast.stun.credentials import (
    LongTermCredentials,
    PasswordAlgorithm,
    long_term_key,
    rest_api_password,
    rest_api_username,
    userhash,
)
from rice_fast.stun.transport import Address, Transmit, TransportType, WaitUntil
from rice_fast.turn import events as client_events
from rice_fast.turn._peer_policy import PeerPolicy
from rice_fast.turn._server_config import DropReason, TurnServerConfig
from rice_fast.turn.client import TurnClient
from rice_fast.turn.events import TurnEvent
from rice_fast.turn.server import TurnServer
from rice_fast.turn.server_events import (
    AllocateRelaySocket,
    AllocationCreated,
    AllocationDeleted,
    AllocationExpired,
    ChannelBound,
    ChannelExpired,
    ClosePeerConnection,
    ConnectionBound,
    ConnectToPeer,
    FiveTuple,
    PermissionExpired,
    PermissionInstalled,
    RelaySocketReleased,
    TurnServerEvent,
)

REALM = "example.org"
USERS = {"alice": "alice-password", "bob": "bob-password"}
SERVER: Address = ("127.0.0.1", 3478)
CLIENT: Address = ("127.0.0.1", 50000)
PEER: Address = ("127.0.0.1", 60000)
PEER2: Address = ("127.0.0.2", 60001)
PEER6: Address = ("::1", 60002)
UDP = TransportType.UDP
TCP = TransportType.TCP
TLS = TransportType.TLS
REST_SECRET = b"rest-api-secret-for-tests"

E = TypeVar("E", bound=TurnServerEvent)
C = TypeVar("C", bound=TurnEvent)


def make_config(**overrides: object) -> TurnServerConfig:
    settings: dict[str, object] = {
        "realm": REALM,
        "users": USERS,
        "peer_policy": PeerPolicy(allow=["127.0.0.0/8", "::1/128"]),
        "nonce_secret": b"nonce-secret-for-tests!!",
    }
    settings.update(overrides)
    return TurnServerConfig(**settings)  # type: ignore[arg-type]


def request_type(method: int) -> int:
    return message_type(method, MessageClass.REQUEST)


class Harness:
    """The I/O layer around one TurnServer, with a virtual clock."""

    def __init__(
        self,
        config: TurnServerConfig | None = None,
        *,
        answer_sockets: bool = True,
        failing_families: tuple[AddressFamily, ...] = (),
    ) -> None:
        self.server = TurnServer(config or make_config())
        self.now = 0.0
        self.answer_sockets = answer_sockets
        self.failing_families = failing_families
        self.events: list[TurnServerEvent] = []
        self.transmits: list[Transmit] = []
        self._ports = itertools.count(49152, 2)

    def pump(self) -> None:
        server = self.server
        while True:
            event = server.poll(self.now)
            if event is None or isinstance(event, WaitUntil):
                break
            self.events.append(event)
            if isinstance(event, AllocateRelaySocket) and self.answer_sockets:
                server.allocate_relay_socket_result(
                    event.request_id, self.relay_address(event), self.now
                )
        while (transmit := server.poll_transmit(self.now)) is not None:
            self.transmits.append(transmit)

    def relay_address(self, event: AllocateRelaySocket) -> Address | None:
        if event.family in self.failing_families:
            return None
        if event.reservation is not None:
            return event.reservation
        host = "::1" if event.family is AddressFamily.IPV6 else "127.0.0.1"
        return (host, next(self._ports))

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.pump()

    def from_client(
        self,
        data: bytes,
        *,
        transport: TransportType = UDP,
        remote: Address = CLIENT,
        local: Address = SERVER,
    ) -> list[Transmit]:
        self.server.handle_client_data(transport, local, remote, data, self.now)
        self.pump()
        return self.take_transmits()

    def from_peer(self, relayed: Address, peer: Address, data: bytes) -> list[Transmit]:
        self.server.handle_peer_data(relayed, peer, data, self.now)
        self.pump()
        return self.take_transmits()

    def take_transmits(self) -> list[Transmit]:
        taken, self.transmits = self.transmits, []
        return taken

    def take(self, kind: type[E]) -> list[E]:
        found = [e for e in self.events if isinstance(e, kind)]
        self.events = [e for e in self.events if not isinstance(e, kind)]
        return found


class Client:
    """Builds and signs requests as one client on one 5-tuple."""

    def __init__(
        self,
        harness: Harness,
        username: str = "alice",
        password: str | None = None,
        *,
        transport: TransportType = UDP,
        remote: Address = CLIENT,
        sha256: bool = True,
        use_userhash: bool = False,
    ) -> None:
        self.harness = harness
        self.username = username
        self.password = USERS.get(username, "") if password is None else password
        self.transport = transport
        self.remote = remote
        self.sha256 = sha256
        self.use_userhash = use_userhash
        self.nonce: str | None = None
        self.offer: bytes | None = None
        self.realm = REALM
        algorithm = PasswordAlgorithm.SHA256 if sha256 else PasswordAlgorithm.MD5
        self.key = IntegrityKey(
            long_term_key(self.username, REALM, self.password, algorithm)
        )

    def build(
        self,
        method: int,
        add: Callable[[MessageBuilder], None] | None = None,
        *,
        transaction_id: bytes | None = None,
        sign: bool = True,
        message_class: int = MessageClass.REQUEST,
    ) -> bytes:
        builder = MessageBuilder(
            message_type(method, message_class), transaction_id or new_transaction_id()
        )
        if add is not None:
            add(builder)
        if not sign:
            data: bytes = builder.finish(fingerprint=True)
            return data
        assert self.nonce is not None
        if self.use_userhash:
            builder.add(AttributeType.USERHASH, userhash(self.username, self.realm))
        else:
            builder.add_username(self.username)
        builder.add_realm(self.realm)
        builder.add_nonce(self.nonce)
        if self.sha256:
            assert self.offer is not None
            builder.add(AttributeType.PASSWORD_ALGORITHMS, self.offer)
            builder.add(AttributeType.PASSWORD_ALGORITHM, struct.pack("!HH", 2, 0))
        signed: bytes = builder.finish(self.key, sha256=self.sha256, fingerprint=True)
        return signed

    def send(self, data: bytes) -> list[Transmit]:
        return self.harness.from_client(
            data, transport=self.transport, remote=self.remote
        )

    def exchange(self, data: bytes) -> Message | None:
        transaction_id = parse(data).transaction_id
        for transmit in self.send(data):
            if transmit.destination != self.remote:
                continue
            message = parse(transmit.data)
            if message.is_response and message.transaction_id == transaction_id:
                return message
        return None

    def learn_nonce(self) -> Message:
        response = self.exchange(self.build(Method.REFRESH, sign=False))
        assert response is not None
        assert response.error_code() == (401, "Unauthenticated")
        self.remember_challenge(response)
        return response

    def remember_challenge(self, response: Message) -> None:
        self.nonce = response.nonce()
        self.realm = response.realm() or self.realm
        self.offer = response.raw(AttributeType.PASSWORD_ALGORITHMS)

    def request(
        self,
        method: int,
        add: Callable[[MessageBuilder], None] | None = None,
        *,
        transaction_id: bytes | None = None,
    ) -> Message:
        if self.nonce is None:
            self.learn_nonce()
        data = self.build(method, add, transaction_id=transaction_id)
        response = self.exchange(data)
        assert response is not None, "no response"
        if response.error_code() == (438, "Stale Nonce"):
            self.remember_challenge(response)
            response = self.exchange(self.build(method, add))
            assert response is not None, "no response after 438"
        return response

    def verify(self, response: Message) -> None:
        """Assert that a response is signed like the request and fingerprinted."""
        assert response.has_fingerprint
        assert response.check_fingerprint()
        if self.sha256:
            assert response.has_message_integrity_sha256
            assert not response.has_message_integrity
        else:
            assert response.has_message_integrity
            assert not response.has_message_integrity_sha256
        assert response.check_integrity(self.key)

    def allocate(
        self, add: Callable[[MessageBuilder], None] | None = None, **kwargs: object
    ) -> Message:
        def attributes(builder: MessageBuilder) -> None:
            builder.add_requested_transport(TransportProtocol.UDP)
            if add is not None:
                add(builder)

        return self.request(Method.ALLOCATE, attributes, **kwargs)  # type: ignore[arg-type]

    def permit(self, *peers: Address) -> Message:
        def attributes(builder: MessageBuilder) -> None:
            for host, port in peers:
                builder.add_xor_peer_address(host, port)

        return self.request(Method.CREATE_PERMISSION, attributes)

    def bind(self, channel: int, peer: Address) -> Message:
        def attributes(builder: MessageBuilder) -> None:
            builder.add_channel_number(channel)
            builder.add_xor_peer_address(peer[0], peer[1])

        return self.request(Method.CHANNEL_BIND, attributes)

    def refresh(
        self, lifetime: int | None = None, family: AddressFamily | None = None
    ) -> Message:
        def attributes(builder: MessageBuilder) -> None:
            if lifetime is not None:
                builder.add_lifetime(lifetime)
            if family is not None:
                builder.add(
                    AttributeType.REQUESTED_ADDRESS_FAMILY, bytes((family, 0, 0, 0))
                )

        return self.request(Method.REFRESH, attributes)

    def send_indication(self, peer: Address, data: bytes) -> list[Transmit]:
        def attributes(builder: MessageBuilder) -> None:
            builder.add_xor_peer_address(peer[0], peer[1])
            builder.add_data(data)

        message = self.build(
            Method.SEND,
            attributes,
            sign=False,
            message_class=MessageClass.INDICATION,
        )
        return self.send(message)


def relayed_of(response: Message) -> Address:
    relayed = response.xor_relayed_address()
    assert relayed is not None
    return relayed


def all_relayed(response: Message) -> list[Address]:
    return [
        parse_xor(response, value)
        for value in response.raw_all(AttributeType.XOR_RELAYED_ADDRESS)
    ]


def parse_xor(message: Message, value: bytes) -> Address:
    from rice_fast.stun.attributes import XorRelayedAddress

    return XorRelayedAddress.decode(value, message.transaction_id).address


def family_attribute(attr_type: int, family: int) -> Callable[[MessageBuilder], None]:
    def add(builder: MessageBuilder) -> None:
        builder.add(attr_type, bytes((family, 0, 0, 0)))

    return add


@pytest.fixture
def harness() -> Harness:
    return Harness()


@pytest.fixture
def alice(harness: Harness) -> Client:
    return Client(harness)


@pytest.fixture
def allocated(harness: Harness, alice: Client) -> Iterator[Address]:
    response = alice.allocate()
    assert response.is_success, response.error_code()
    yield relayed_of(response)


# Binding and unauthenticated requests


def test_binding_answered_without_credentials(harness: Harness) -> None:
    request = Client(harness).build(Method.BINDING, sign=False)
    (transmit,) = harness.from_client(request)
    response = parse(transmit.data)
    assert response.is_success
    assert response.xor_mapped_address() == CLIENT
    assert transmit.source == SERVER
    assert transmit.destination == CLIENT


def test_allocate_without_credentials_gets_401(harness: Harness) -> None:
    harness = Harness(make_config(software="rice-fast test"))
    client = Client(harness)
    response = client.exchange(
        client.build(
            Method.ALLOCATE,
            lambda b: b.add_requested_transport(TransportProtocol.UDP),
            sign=False,
        )
    )
    assert response is not None
    assert response.error_code() == (401, "Unauthenticated")
    assert response.realm() == REALM
    assert response.nonce() is not None
    assert response.has(AttributeType.PASSWORD_ALGORITHMS)
    assert not response.has(AttributeType.SOFTWARE)
    assert not response.has_integrity


def test_401_carries_only_challenge_attributes(harness: Harness) -> None:
    client = Client(harness)
    response = client.learn_nonce()
    assert response.attribute_types() == [
        AttributeType.ERROR_CODE,
        AttributeType.REALM,
        AttributeType.NONCE,
        AttributeType.PASSWORD_ALGORITHMS,
        AttributeType.FINGERPRINT,
    ]


def test_unknown_method_gets_400(harness: Harness) -> None:
    client = Client(harness)
    (transmit,) = client.send(client.build(0x0F0, sign=False))
    assert parse(transmit.data).error_code() == (400, "Bad Request: method not served")


def test_dont_fragment_gets_420(harness: Harness, alice: Client) -> None:
    response = alice.allocate(lambda b: b.add(AttributeType.DONT_FRAGMENT, b""))
    assert response.error_code() is not None
    assert response.error_code()[0] == 420  # type: ignore[index]
    assert response.unknown_attributes() == [AttributeType.DONT_FRAGMENT]


def test_responses_from_clients_dropped(harness: Harness) -> None:
    client = Client(harness)
    message = client.build(
        Method.BINDING, sign=False, message_class=MessageClass.SUCCESS
    )
    assert client.send(message) == []
    assert harness.server.stats.dropped[DropReason.RESPONSE] == 1


# Allocate


def test_allocate_success_response(harness: Harness) -> None:
    harness = Harness(make_config(software="rice-fast test"))
    client = Client(harness)
    response = client.allocate()
    assert response.is_success
    client.verify(response)
    relayed = relayed_of(response)
    assert relayed[0] == "127.0.0.1"
    assert response.lifetime() == 600
    assert response.xor_mapped_address() == CLIENT
    assert response.software() == "rice-fast test"

    (created,) = harness.take(AllocationCreated)
    assert created.five_tuple == FiveTuple(UDP, SERVER, CLIENT)
    assert created.username == "alice"
    assert created.relayed == (relayed,)
    assert created.transport is TransportProtocol.UDP
    assert created.lifetime == 600
    stats = harness.server.stats
    assert stats.allocations == 1
    assert stats.allocations_created == 1


def test_allocate_asks_for_relay_socket(harness: Harness, alice: Client) -> None:
    alice.allocate()
    (event,) = harness.take(AllocateRelaySocket)
    assert event.family is AddressFamily.IPV4
    assert event.transport is TransportProtocol.UDP
    assert not event.even_port
    assert not event.reserve_next
    assert event.reservation is None
    assert event.five_tuple == FiveTuple(UDP, SERVER, CLIENT)


def test_md5_client_gets_message_integrity(harness: Harness) -> None:
    client = Client(harness, sha256=False)
    response = client.allocate()
    assert response.is_success
    client.verify(response)


def test_userhash_client_allocates(harness: Harness) -> None:
    client = Client(harness, use_userhash=True)
    response = client.allocate()
    assert response.is_success
    client.verify(response)
    (created,) = harness.take(AllocationCreated)
    assert created.username == "alice"


def test_wrong_password_gets_401(harness: Harness) -> None:
    client = Client(harness, password="not-the-password")
    response = client.allocate()
    assert response.error_code() == (401, "Unauthenticated")
    assert harness.server.stats.allocations == 0


def test_unknown_user_gets_401(harness: Harness) -> None:
    client = Client(harness, "mallory", "whatever")
    assert client.allocate().error_code() == (401, "Unauthenticated")


def test_expired_nonce_gets_438(harness: Harness, alice: Client) -> None:
    alice.learn_nonce()
    harness.advance(601.0)
    request = alice.build(
        Method.ALLOCATE, lambda b: b.add_requested_transport(TransportProtocol.UDP)
    )
    response = alice.exchange(request)
    assert response is not None
    assert response.error_code() == (438, "Stale Nonce")
    assert response.nonce() != alice.nonce
    assert not response.has_integrity
    # A retry with the new nonce succeeds.
    assert alice.allocate().is_success


def test_retransmitted_allocate_gets_cached_response(
    harness: Harness, alice: Client
) -> None:
    alice.learn_nonce()
    request = alice.build(
        Method.ALLOCATE, lambda b: b.add_requested_transport(TransportProtocol.UDP)
    )
    (first,) = alice.send(request)
    (second,) = alice.send(request)
    assert second.data == first.data
    assert len(harness.take(AllocationCreated)) == 1
    assert len(harness.take(AllocateRelaySocket)) == 1


def test_retransmission_after_refresh_still_cached(
    harness: Harness, alice: Client
) -> None:
    alice.learn_nonce()
    transaction_id = new_transaction_id()
    first = alice.allocate(transaction_id=transaction_id)
    assert alice.refresh(1200).is_success
    again = alice.allocate(transaction_id=transaction_id)
    assert again.data == first.data


def test_second_allocate_on_same_five_tuple_gets_437(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    response = alice.allocate()
    assert response.error_code() == (437, "Allocation Mismatch")
    alice.verify(response)


def test_refresh_without_allocation_gets_437(harness: Harness, alice: Client) -> None:
    response = alice.refresh(600)
    assert response.error_code() == (437, "Allocation Mismatch")
    alice.verify(response)


@pytest.mark.parametrize(
    "method",
    [Method.REFRESH, Method.CREATE_PERMISSION, Method.CHANNEL_BIND, Method.CONNECT],
)
def test_requests_without_allocation_get_437(
    harness: Harness, alice: Client, method: int
) -> None:
    def attributes(builder: MessageBuilder) -> None:
        if method == Method.CHANNEL_BIND:
            builder.add_channel_number(0x4000)
        builder.add_xor_peer_address(*PEER)

    assert alice.request(method, attributes).error_code() == (
        437,
        "Allocation Mismatch",
    )


def test_other_user_on_allocation_gets_441(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    bob = Client(harness, "bob")
    response = bob.refresh(600)
    assert response.error_code() == (441, "Wrong Credentials")
    bob.verify(response)
    assert bob.permit(PEER).error_code() == (441, "Wrong Credentials")
    assert harness.server.stats.allocations == 1


def test_requested_transport_missing_gets_400(harness: Harness, alice: Client) -> None:
    response = alice.request(Method.ALLOCATE)
    assert response.error_code() == (400, "Bad Request: REQUESTED-TRANSPORT is missing")


def test_unsupported_transport_gets_442(harness: Harness, alice: Client) -> None:
    response = alice.request(Method.ALLOCATE, lambda b: b.add_requested_transport(99))
    assert response.error_code() == (442, "Unsupported Transport Protocol")


def test_tcp_allocation_over_udp_gets_400(harness: Harness, alice: Client) -> None:
    response = alice.request(
        Method.ALLOCATE, lambda b: b.add_requested_transport(TransportProtocol.TCP)
    )
    code = response.error_code()
    assert code is not None
    assert code[0] == 400


def test_quota_per_user_gets_486(harness: Harness) -> None:
    harness = Harness(make_config(max_allocations_per_user=1))
    first = Client(harness)
    assert first.allocate().is_success
    second = Client(harness, remote=("127.0.0.1", 50001))
    assert second.allocate().error_code() == (486, "Allocation Quota Reached")
    # Another user is not limited by alice's quota.
    bob = Client(harness, "bob", remote=("127.0.0.1", 50002))
    assert bob.allocate().is_success
    # Deleting the allocation gives the quota back.
    assert first.refresh(0).is_success
    assert second.allocate().is_success


def test_total_quota_gets_486(harness: Harness) -> None:
    harness = Harness(make_config(max_allocations=1))
    assert Client(harness).allocate().is_success
    bob = Client(harness, "bob", remote=("127.0.0.1", 50001))
    assert bob.allocate().error_code() == (486, "Allocation Quota Reached")


# Lifetimes


@pytest.mark.parametrize(
    ("requested", "granted"),
    [(None, 600), (30, 600), (600, 600), (1800, 1800), (3600, 3600), (99999, 3600)],
)
def test_allocate_lifetime_clamped(
    harness: Harness, alice: Client, requested: int | None, granted: int
) -> None:
    def add(builder: MessageBuilder) -> None:
        if requested is not None:
            builder.add_lifetime(requested)

    assert alice.allocate(add).lifetime() == granted


def test_configured_lifetime_bounds(harness: Harness) -> None:
    harness = Harness(make_config(default_lifetime=300, max_lifetime=900))
    client = Client(harness)
    assert client.allocate(lambda b: b.add_lifetime(60)).lifetime() == 300
    assert client.refresh(5000).lifetime() == 900
    assert client.refresh().lifetime() == 300


def test_allocation_expires(harness: Harness, allocated: Address) -> None:
    harness.advance(599.0)
    assert harness.take(AllocationExpired) == []
    harness.advance(2.0)
    (expired,) = harness.take(AllocationExpired)
    assert expired.relayed == (allocated,)
    (released,) = harness.take(RelaySocketReleased)
    assert released.relayed == allocated
    assert harness.server.stats.allocations == 0
    assert harness.server.stats.allocations_expired == 1
    assert harness.from_peer(allocated, PEER, b"late") == []


def test_refresh_extends_lifetime(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    harness.advance(500.0)
    assert alice.refresh(600).lifetime() == 600
    harness.advance(599.0)
    assert harness.take(AllocationExpired) == []
    harness.advance(2.0)
    assert len(harness.take(AllocationExpired)) == 1


def test_refresh_can_shorten_lifetime(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    alice.refresh(3600)
    harness.advance(100.0)
    alice.refresh(600)
    harness.advance(601.0)
    assert len(harness.take(AllocationExpired)) == 1


def test_refresh_zero_deletes_at_once(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    alice.permit(PEER)
    response = alice.refresh(0)
    assert response.is_success
    assert response.lifetime() == 0
    alice.verify(response)
    (deleted,) = harness.take(AllocationDeleted)
    assert deleted.relayed == (allocated,)
    (expired,) = harness.take(PermissionExpired)
    assert expired.peer_ip == PEER[0]
    (released,) = harness.take(RelaySocketReleased)
    assert released.relayed == allocated
    assert harness.server.stats.allocations_deleted == 1
    assert alice.refresh(600).error_code() == (437, "Allocation Mismatch")
    # The 5-tuple is free for a new allocation.
    assert alice.allocate().is_success


def test_table_events_come_before_socket_release(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    alice.bind(0x4000, PEER)
    harness.events.clear()
    alice.refresh(0)
    kinds = [type(e) for e in harness.events]
    assert kinds == [
        ChannelExpired,
        PermissionExpired,
        AllocationDeleted,
        RelaySocketReleased,
    ]


def test_poll_reports_next_deadline(harness: Harness, allocated: Address) -> None:
    result = harness.server.poll(harness.now)
    assert isinstance(result, WaitUntil)
    assert result.deadline == pytest.approx(600.0)


def test_poll_returns_none_when_idle(harness: Harness) -> None:
    assert harness.server.poll(0.0) is None


# Permissions and data


def test_create_permission_with_several_peers(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    response = alice.permit(PEER, PEER2)
    assert response.is_success
    alice.verify(response)
    installed = harness.take(PermissionInstalled)
    assert [(e.relayed, e.peer_ip) for e in installed] == [
        (allocated, PEER[0]),
        (allocated, PEER2[0]),
    ]
    assert harness.server.stats.permissions == 2


def test_refreshed_permission_emits_nothing(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    alice.permit(PEER)
    harness.take(PermissionInstalled)
    alice.permit(PEER)
    assert harness.take(PermissionInstalled) == []


def test_peer_data_becomes_data_indication(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    alice.permit(PEER)
    (transmit,) = harness.from_peer(allocated, PEER, b"hello client")
    assert transmit.destination == CLIENT
    assert transmit.source == SERVER
    assert transmit.transport is UDP
    message = parse(transmit.data)
    assert message.is_indication
    assert message.method == Method.DATA
    assert message.xor_peer_address() == PEER
    assert message.data_attribute() == b"hello client"


def test_peer_data_without_permission_dropped(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    alice.permit(PEER)
    assert harness.from_peer(allocated, PEER2, b"stranger") == []
    assert harness.server.stats.dropped[DropReason.NO_PERMISSION] == 1


def test_permission_ignores_peer_port(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    alice.permit(PEER)
    other_port = (PEER[0], 1234)
    assert len(harness.from_peer(allocated, other_port, b"x")) == 1


def test_send_indication_relayed(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    alice.permit(PEER)
    (transmit,) = alice.send_indication(PEER, b"hello peer")
    assert transmit.source == allocated
    assert transmit.destination == PEER
    assert transmit.transport is UDP
    assert transmit.data == b"hello peer"


def test_send_without_permission_dropped(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    assert alice.send_indication(PEER, b"x") == []
    assert harness.server.stats.dropped[DropReason.NO_PERMISSION] == 1


def test_send_without_allocation_dropped(harness: Harness, alice: Client) -> None:
    assert alice.send_indication(PEER, b"x") == []
    assert harness.server.stats.dropped[DropReason.NO_ALLOCATION] == 1


def test_send_with_dont_fragment_dropped(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    alice.permit(PEER)

    def attributes(builder: MessageBuilder) -> None:
        builder.add_xor_peer_address(*PEER)
        builder.add_data(b"x")
        builder.add(AttributeType.DONT_FRAGMENT, b"")

    message = alice.build(
        Method.SEND, attributes, sign=False, message_class=MessageClass.INDICATION
    )
    assert alice.send(message) == []
    assert harness.server.stats.dropped[DropReason.UNKNOWN_ATTRIBUTE] == 1


def test_permission_expires(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    alice.permit(PEER)
    harness.advance(299.0)
    assert harness.take(PermissionExpired) == []
    assert len(harness.from_peer(allocated, PEER, b"x")) == 1
    harness.advance(2.0)
    (expired,) = harness.take(PermissionExpired)
    assert expired.peer_ip == PEER[0]
    assert expired.relayed == allocated
    assert harness.from_peer(allocated, PEER, b"x") == []
    assert alice.send_indication(PEER, b"x") == []


def test_permission_refresh_keeps_it(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    alice.permit(PEER)
    harness.advance(250.0)
    alice.permit(PEER)
    harness.advance(250.0)
    assert harness.take(PermissionExpired) == []
    harness.advance(51.0)
    assert len(harness.take(PermissionExpired)) == 1


def test_create_permission_without_peer_gets_400(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    response = alice.request(Method.CREATE_PERMISSION)
    assert response.error_code() == (400, "Bad Request: XOR-PEER-ADDRESS is missing")


def test_create_permission_family_mismatch_gets_443(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    response = alice.permit(PEER6)
    assert response.error_code() == (443, "Peer Address Family Mismatch")


@pytest.mark.parametrize(
    "peer",
    [
        ("10.0.0.1", 1),
        ("192.168.1.1", 1),
        ("172.16.0.1", 1),
        ("100.64.0.1", 1),
        ("169.254.1.1", 1),
        ("0.0.0.0", 1),
        ("224.0.0.1", 1),
        ("255.255.255.255", 1),
    ],
)
def test_create_permission_denied_peer_gets_403(
    harness: Harness, alice: Client, allocated: Address, peer: Address
) -> None:
    code = alice.permit(peer).error_code()
    assert code is not None
    assert code[0] == 403


def test_loopback_denied_by_default_policy() -> None:
    harness = Harness(make_config(peer_policy=PeerPolicy()))
    client = Client(harness)
    client.allocate()
    code = client.permit(PEER).error_code()
    assert code is not None
    assert code[0] == 403


def test_one_denied_peer_installs_nothing(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    code = alice.permit(PEER, ("10.1.2.3", 9)).error_code()
    assert code is not None
    assert code[0] == 403
    assert harness.take(PermissionInstalled) == []
    assert harness.server.stats.permissions == 0


def test_permission_limit_gets_508(harness: Harness) -> None:
    harness = Harness(make_config(max_permissions=1))
    client = Client(harness)
    client.allocate()
    assert client.permit(PEER).is_success
    code = client.permit(PEER2).error_code()
    assert code is not None
    assert code[0] == 508


# Channels


def test_channel_bind_and_channel_data(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    response = alice.bind(0x4001, PEER)
    assert response.is_success
    alice.verify(response)
    (bound,) = harness.take(ChannelBound)
    assert bound == ChannelBound(
        FiveTuple(UDP, SERVER, CLIENT), 0x4001, PEER, allocated
    )
    (installed,) = harness.take(PermissionInstalled)
    assert installed.peer_ip == PEER[0]

    (to_peer,) = alice.send(encode_channel_data(0x4001, b"over channel"))
    assert to_peer.source == allocated
    assert to_peer.destination == PEER
    assert to_peer.data == b"over channel"

    (to_client,) = harness.from_peer(allocated, PEER, b"back")
    assert channel_data_payload(to_client.data) == (0x4001, b"back")
    assert to_client.data == encode_channel_data(0x4001, b"back")


def test_channel_number_bound_to_other_peer_gets_400(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    alice.bind(0x4001, PEER)
    response = alice.bind(0x4001, PEER2)
    assert response.error_code() == (
        400,
        "Bad Request: channel number is bound to another peer",
    )


def test_peer_bound_to_other_channel_gets_400(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    alice.bind(0x4001, PEER)
    response = alice.bind(0x4002, PEER)
    assert response.error_code() == (
        400,
        "Bad Request: peer is bound to another channel number",
    )


def test_same_binding_refresh_succeeds(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    alice.refresh(3600)
    alice.bind(0x4001, PEER)
    harness.take(ChannelBound)
    harness.advance(500.0)
    assert alice.bind(0x4001, PEER).is_success
    assert harness.take(ChannelBound) == []
    harness.advance(500.0)
    assert harness.take(ChannelExpired) == []


@pytest.mark.parametrize("channel", [0x0000, 0x3FFF, 0x8000, 0xFFFF])
def test_channel_number_out_of_range_gets_400(
    harness: Harness, alice: Client, allocated: Address, channel: int
) -> None:
    response = alice.bind(channel, PEER)
    assert response.error_code() == (
        400,
        "Bad Request: CHANNEL-NUMBER is outside 0x4000..0x7FFF",
    )


@pytest.mark.parametrize("channel", [0x5000, 0x7FFF])
def test_rfc5766_channel_number_accepted(
    harness: Harness, alice: Client, allocated: Address, channel: int
) -> None:
    response = alice.bind(channel, PEER)
    assert response.is_success
    assert len(harness.take(ChannelBound)) == 1

    (to_peer,) = alice.send(encode_channel_data(channel, b"old range"))
    assert to_peer.destination == PEER
    assert to_peer.data == b"old range"
    (to_client,) = harness.from_peer(allocated, PEER, b"back")
    assert channel_data_payload(to_client.data) == (channel, b"back")


def test_channel_bind_without_number_gets_400(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    response = alice.request(
        Method.CHANNEL_BIND, lambda b: b.add_xor_peer_address(*PEER)
    )
    assert response.error_code() == (400, "Bad Request: CHANNEL-NUMBER is missing")


def test_channel_bind_without_peer_gets_400(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    response = alice.request(
        Method.CHANNEL_BIND, lambda b: b.add_channel_number(0x4000)
    )
    code = response.error_code()
    assert code is not None
    assert code[0] == 400


def test_channel_bind_denied_peer_gets_403(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    code = alice.bind(0x4000, ("192.168.0.10", 5000)).error_code()
    assert code is not None
    assert code[0] == 403


def test_channel_limit_gets_508(harness: Harness) -> None:
    harness = Harness(make_config(max_channels=1))
    client = Client(harness)
    client.allocate()
    assert client.bind(0x4000, PEER).is_success
    code = client.bind(0x4001, PEER2).error_code()
    assert code is not None
    assert code[0] == 508


def test_channel_expires_then_cools_off(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    alice.refresh(3600)
    alice.bind(0x4001, PEER)
    alice.permit(PEER2)
    harness.advance(601.0)
    (expired,) = harness.take(ChannelExpired)
    assert expired.channel == 0x4001
    assert expired.peer == PEER
    assert alice.send(encode_channel_data(0x4001, b"x")) == []
    assert harness.server.stats.dropped[DropReason.NO_CHANNEL] == 1

    # For 5 minutes the number is kept for its old peer, and the peer for
    # its old number.
    harness.advance(100.0)
    code = alice.bind(0x4001, PEER2).error_code()
    assert code is not None
    assert code[0] == 400
    code = alice.bind(0x4002, PEER).error_code()
    assert code is not None
    assert code[0] == 400
    harness.advance(201.0)
    assert alice.bind(0x4001, PEER2).is_success


def test_expired_channel_rebinds_to_same_peer(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    alice.refresh(3600)
    alice.bind(0x4001, PEER)
    harness.advance(601.0)
    harness.take(ChannelBound)
    assert alice.bind(0x4001, PEER).is_success
    assert len(harness.take(ChannelBound)) == 1


def test_channel_data_needs_permission(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    alice.bind(0x4001, PEER)
    harness.advance(301.0)
    assert harness.take(PermissionExpired) != []
    assert alice.send(encode_channel_data(0x4001, b"x")) == []
    assert harness.from_peer(allocated, PEER, b"y") == []
    assert harness.server.stats.dropped[DropReason.NO_PERMISSION] == 2
    alice.permit(PEER)
    assert len(alice.send(encode_channel_data(0x4001, b"x"))) == 1


def test_channel_data_on_unbound_channel_dropped(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    assert alice.send(encode_channel_data(0x4005, b"x")) == []
    assert harness.server.stats.dropped[DropReason.NO_CHANNEL] == 1


def test_channel_data_without_allocation_dropped(harness: Harness) -> None:
    assert harness.from_client(encode_channel_data(0x4000, b"x")) == []
    assert harness.server.stats.dropped[DropReason.NO_ALLOCATION] == 1


def test_truncated_channel_data_dropped(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    alice.bind(0x4001, PEER)
    truncated = encode_channel_data(0x4001, b"12345678")[:-2]
    assert alice.send(truncated) == []
    assert harness.server.stats.dropped[DropReason.MALFORMED] == 1


# Address families (RFC 6156, RFC 8656 §7.2)


def test_ipv6_allocation(harness: Harness, alice: Client) -> None:
    response = alice.allocate(
        family_attribute(AttributeType.REQUESTED_ADDRESS_FAMILY, AddressFamily.IPV6)
    )
    assert response.is_success
    assert relayed_of(response)[0] == "::1"
    (event,) = harness.take(AllocateRelaySocket)
    assert event.family is AddressFamily.IPV6
    assert alice.permit(PEER6).is_success
    assert alice.permit(PEER).error_code() == (443, "Peer Address Family Mismatch")


def test_dual_allocation(harness: Harness, alice: Client) -> None:
    response = alice.allocate(
        family_attribute(AttributeType.ADDITIONAL_ADDRESS_FAMILY, AddressFamily.IPV6)
    )
    assert response.is_success
    relayed = all_relayed(response)
    assert [host for host, _ in relayed] == ["127.0.0.1", "::1"]
    assert not response.has(AttributeType.ADDRESS_ERROR_CODE)
    (created,) = harness.take(AllocationCreated)
    assert created.relayed == tuple(relayed)

    # Each peer is served from the relayed address of its family.
    assert alice.permit(PEER, PEER6).is_success
    (to_v4,) = alice.send_indication(PEER, b"4")
    (to_v6,) = alice.send_indication(PEER6, b"6")
    assert to_v4.source == relayed[0]
    assert to_v6.source == relayed[1]
    assert len(harness.from_peer(relayed[1], PEER6, b"from v6")) == 1


def test_dual_allocation_with_failed_family(harness: Harness) -> None:
    harness = Harness(failing_families=(AddressFamily.IPV6,))
    client = Client(harness)
    response = client.allocate(
        family_attribute(AttributeType.ADDITIONAL_ADDRESS_FAMILY, AddressFamily.IPV6)
    )
    assert response.is_success
    assert [host for host, _ in all_relayed(response)] == ["127.0.0.1"]
    error = response.get(AttributeType.ADDRESS_ERROR_CODE)
    assert isinstance(error, AddressErrorCode)
    assert error.family == AddressFamily.IPV6
    assert error.code == 508


def test_dual_allocation_without_ipv6_relay(harness: Harness) -> None:
    harness = Harness(make_config(relay_families=frozenset({AddressFamily.IPV4})))
    client = Client(harness)
    response = client.allocate(
        family_attribute(AttributeType.ADDITIONAL_ADDRESS_FAMILY, AddressFamily.IPV6)
    )
    assert response.is_success
    error = response.get(AttributeType.ADDRESS_ERROR_CODE)
    assert isinstance(error, AddressErrorCode)
    assert error.family == AddressFamily.IPV6
    assert error.code == 440
    assert len(harness.take(AllocateRelaySocket)) == 1


def test_all_families_failing_gets_508(harness: Harness) -> None:
    harness = Harness(failing_families=(AddressFamily.IPV4, AddressFamily.IPV6))
    client = Client(harness)
    code = client.allocate().error_code()
    assert code is not None
    assert code[0] == 508
    assert harness.server.stats.allocations == 0
    # The quota taken by the failed request is given back.
    assert harness.server._table.per_user == {}


def test_unsupported_requested_family_gets_440(harness: Harness) -> None:
    harness = Harness(make_config(relay_families=frozenset({AddressFamily.IPV4})))
    client = Client(harness)
    response = client.allocate(
        family_attribute(AttributeType.REQUESTED_ADDRESS_FAMILY, AddressFamily.IPV6)
    )
    assert response.error_code() == (440, "Address Family not Supported")


def test_unknown_requested_family_gets_440(harness: Harness, alice: Client) -> None:
    response = alice.allocate(
        family_attribute(AttributeType.REQUESTED_ADDRESS_FAMILY, 0x03)
    )
    assert response.error_code() == (440, "Address Family not Supported")


def test_both_family_attributes_get_400(harness: Harness, alice: Client) -> None:
    def add(builder: MessageBuilder) -> None:
        family_attribute(AttributeType.REQUESTED_ADDRESS_FAMILY, 1)(builder)
        family_attribute(AttributeType.ADDITIONAL_ADDRESS_FAMILY, 2)(builder)

    code = alice.allocate(add).error_code()
    assert code is not None
    assert code[0] == 400


def test_additional_family_ipv4_gets_400(harness: Harness, alice: Client) -> None:
    response = alice.allocate(
        family_attribute(AttributeType.ADDITIONAL_ADDRESS_FAMILY, AddressFamily.IPV4)
    )
    assert response.error_code() == (
        400,
        "Bad Request: ADDITIONAL-ADDRESS-FAMILY must be IPv6",
    )


def test_refresh_family_mismatch_gets_443(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    response = alice.refresh(600, AddressFamily.IPV6)
    assert response.error_code() == (443, "Peer Address Family Mismatch")


def test_refresh_zero_with_family_keeps_other_family(
    harness: Harness, alice: Client
) -> None:
    response = alice.allocate(
        family_attribute(AttributeType.ADDITIONAL_ADDRESS_FAMILY, AddressFamily.IPV6)
    )
    v4, v6 = all_relayed(response)
    alice.permit(PEER6)
    assert alice.refresh(0, AddressFamily.IPV6).is_success
    (released,) = harness.take(RelaySocketReleased)
    assert released.relayed == v6
    assert harness.take(AllocationDeleted) == []
    assert harness.take(PermissionExpired)[0].peer_ip == PEER6[0]
    assert alice.refresh(600).is_success
    assert alice.permit(PEER6).error_code() == (443, "Peer Address Family Mismatch")
    assert alice.permit(PEER).is_success
    assert v4[0] == "127.0.0.1"


# The relay socket handshake


def test_allocate_response_waits_for_socket(harness: Harness) -> None:
    harness = Harness(answer_sockets=False)
    client = Client(harness)
    client.learn_nonce()
    request = client.build(
        Method.ALLOCATE, lambda b: b.add_requested_transport(TransportProtocol.UDP)
    )
    assert client.send(request) == []
    (event,) = harness.take(AllocateRelaySocket)

    # A retransmission while waiting is ignored, another request finds
    # no allocation yet.
    assert client.send(request) == []
    assert client.refresh(600).error_code() == (437, "Allocation Mismatch")

    harness.server.allocate_relay_socket_result(
        event.request_id, ("127.0.0.1", 40000), harness.now
    )
    harness.pump()
    (transmit,) = harness.take_transmits()
    response = parse(transmit.data)
    assert response.is_success
    assert response.transaction_id == parse(request).transaction_id
    assert relayed_of(response) == ("127.0.0.1", 40000)
    client.verify(response)


def test_relay_socket_timeout_gets_508(harness: Harness) -> None:
    harness = Harness(answer_sockets=False)
    client = Client(harness)
    client.learn_nonce()
    request = client.build(
        Method.ALLOCATE, lambda b: b.add_requested_transport(TransportProtocol.UDP)
    )
    client.send(request)
    (event,) = harness.take(AllocateRelaySocket)
    harness.advance(10.5)
    (transmit,) = harness.take_transmits()
    code = parse(transmit.data).error_code()
    assert code is not None
    assert code[0] == 508

    # A socket bound after the deadline is released again.
    harness.server.allocate_relay_socket_result(
        event.request_id, ("127.0.0.1", 40000), harness.now
    )
    harness.pump()
    (released,) = harness.take(RelaySocketReleased)
    assert released.relayed == ("127.0.0.1", 40000)


def test_unknown_relay_request_id_raises(harness: Harness) -> None:
    with pytest.raises(ValueError, match="unknown or has a result already"):
        harness.server.allocate_relay_socket_result(12345, None, 0.0)


def test_wrong_family_result_raises(harness: Harness) -> None:
    harness = Harness(answer_sockets=False)
    client = Client(harness)
    client.learn_nonce()
    client.send(
        client.build(
            Method.ALLOCATE, lambda b: b.add_requested_transport(TransportProtocol.UDP)
        )
    )
    (event,) = harness.take(AllocateRelaySocket)
    with pytest.raises(ValueError, match="is for IPV4"):
        harness.server.allocate_relay_socket_result(
            event.request_id, ("::1", 4000), harness.now
        )


def test_closed_client_abandons_pending_allocate(harness: Harness) -> None:
    harness = Harness(answer_sockets=False)
    client = Client(harness, transport=TCP)
    client.learn_nonce()
    client.send(
        client.build(
            Method.ALLOCATE, lambda b: b.add_requested_transport(TransportProtocol.UDP)
        )
    )
    (event,) = harness.take(AllocateRelaySocket)
    harness.server.handle_client_closed(TCP, SERVER, CLIENT, harness.now)
    harness.server.allocate_relay_socket_result(
        event.request_id, ("127.0.0.1", 40000), harness.now
    )
    harness.pump()
    (released,) = harness.take(RelaySocketReleased)
    assert released.relayed == ("127.0.0.1", 40000)
    assert harness.take_transmits() == []
    assert harness.server.stats.allocations == 0


# EVEN-PORT and RESERVATION-TOKEN


def test_even_port_reserve_returns_token(harness: Harness, alice: Client) -> None:
    response = alice.allocate(lambda b: b.add(AttributeType.EVEN_PORT, b"\x80"))
    assert response.is_success
    token = response.raw(AttributeType.RESERVATION_TOKEN)
    assert token is not None
    assert len(token) == 8
    (event,) = harness.take(AllocateRelaySocket)
    assert event.even_port
    assert event.reserve_next
    host, port = relayed_of(response)

    bob = Client(harness, "bob", remote=("127.0.0.1", 50001))
    second = bob.allocate(lambda b: b.add(AttributeType.RESERVATION_TOKEN, token))
    assert second.is_success
    (redeem,) = harness.take(AllocateRelaySocket)
    assert redeem.reservation == (host, port + 1)
    assert relayed_of(second) == (host, port + 1)

    # A token works once.
    carol = Client(harness, "bob", remote=("127.0.0.1", 50002))
    code = carol.allocate(
        lambda b: b.add(AttributeType.RESERVATION_TOKEN, token)
    ).error_code()
    assert code is not None
    assert code[0] == 508


def test_unused_reservation_released(harness: Harness, alice: Client) -> None:
    response = alice.allocate(lambda b: b.add(AttributeType.EVEN_PORT, b"\x80"))
    host, port = relayed_of(response)
    harness.advance(31.0)
    (released,) = harness.take(RelaySocketReleased)
    assert released.relayed == (host, port + 1)


def test_even_port_without_reserve(harness: Harness, alice: Client) -> None:
    response = alice.allocate(lambda b: b.add(AttributeType.EVEN_PORT, b"\x00"))
    assert response.is_success
    assert not response.has(AttributeType.RESERVATION_TOKEN)
    (event,) = harness.take(AllocateRelaySocket)
    assert event.even_port
    assert not event.reserve_next


def test_token_with_even_port_gets_400(harness: Harness, alice: Client) -> None:
    def add(builder: MessageBuilder) -> None:
        builder.add(AttributeType.EVEN_PORT, b"\x00")
        builder.add(AttributeType.RESERVATION_TOKEN, b"12345678")

    code = alice.allocate(add).error_code()
    assert code is not None
    assert code[0] == 400


def test_reserve_with_dual_family_gets_400(harness: Harness, alice: Client) -> None:
    def add(builder: MessageBuilder) -> None:
        builder.add(AttributeType.EVEN_PORT, b"\x80")
        family_attribute(AttributeType.ADDITIONAL_ADDRESS_FAMILY, 2)(builder)

    code = alice.allocate(add).error_code()
    assert code is not None
    assert code[0] == 400


# TURN REST API credentials


def rest_harness(offset: float = 1_700_000_000.0) -> Harness:
    return Harness(
        make_config(users=None, rest_api_secret=REST_SECRET, unix_time_offset=offset)
    )


def test_rest_api_credentials_accepted() -> None:
    harness = rest_harness()
    username = rest_api_username("carol", 1_700_000_600)
    client = Client(harness, username, rest_api_password(REST_SECRET, username))
    response = client.allocate()
    assert response.is_success
    client.verify(response)
    (created,) = harness.take(AllocationCreated)
    assert created.username == username


def test_rest_api_expired_username_gets_401() -> None:
    harness = rest_harness()
    username = rest_api_username("carol", 1_699_999_999)
    client = Client(harness, username, rest_api_password(REST_SECRET, username))
    assert client.allocate().error_code() == (401, "Unauthenticated")


def test_rest_api_username_expires_with_clock() -> None:
    harness = rest_harness()
    username = rest_api_username("carol", 1_700_000_100)
    client = Client(harness, username, rest_api_password(REST_SECRET, username))
    assert client.allocate().is_success
    harness.advance(101.0)
    assert client.refresh(600).error_code() == (401, "Unauthenticated")


def test_rest_api_wrong_password_gets_401() -> None:
    harness = rest_harness()
    username = rest_api_username("carol", 1_700_000_600)
    client = Client(harness, username, rest_api_password(b"other secret", username))
    assert client.allocate().error_code() == (401, "Unauthenticated")


def test_rest_api_and_user_table_together() -> None:
    harness = Harness(
        make_config(rest_api_secret=REST_SECRET, unix_time_offset=1_700_000_000.0)
    )
    assert Client(harness).allocate().is_success
    username = rest_api_username("carol", 1_700_000_600)
    rest = Client(
        harness,
        username,
        rest_api_password(REST_SECRET, username),
        remote=("127.0.0.1", 50001),
    )
    assert rest.allocate().is_success


def test_config_without_credentials_raises() -> None:
    with pytest.raises(ValueError, match="needs credentials"):
        TurnServerConfig(realm=REALM)


# Amplification bound


def test_unauthenticated_overhead_value(harness: Harness) -> None:
    # 24 (ERROR-CODE) + 16 (REALM "example.org") + 52 (NONCE of 45
    # characters) + 12 (PASSWORD-ALGORITHMS with two entries).
    assert harness.server.unauthenticated_overhead == 104


def unauthenticated_requests() -> list[bytes]:
    requests = []
    for method in (
        Method.ALLOCATE,
        Method.REFRESH,
        Method.CREATE_PERMISSION,
        Method.CHANNEL_BIND,
        Method.BINDING,
        Method.CONNECT,
        Method.CONNECTION_BIND,
        0x0F0,
    ):
        for fingerprint in (False, True):
            builder = MessageBuilder(request_type(method), new_transaction_id())
            requests.append(builder.finish(fingerprint=fingerprint))
    builder = MessageBuilder(request_type(Method.ALLOCATE), new_transaction_id())
    builder.add(0x7777, b"")
    builder.add(0x7778, b"")
    requests.append(builder.finish())
    builder = MessageBuilder(request_type(Method.ALLOCATE), new_transaction_id())
    builder.add_username("nobody")
    builder.add_realm(REALM)
    builder.add_nonce("stale")
    requests.append(builder.finish(IntegrityKey(b"k" * 16)))
    return requests


@pytest.mark.parametrize("transport", [UDP, TCP])
def test_unauthenticated_responses_within_bound(
    harness: Harness, transport: TransportType
) -> None:
    remote6 = ("::1", 50000)
    bound = harness.server.unauthenticated_overhead
    for remote in (CLIENT, remote6):
        for request in unauthenticated_requests():
            for transmit in harness.from_client(
                request, transport=transport, remote=remote
            ):
                assert len(transmit.data) <= len(request) + bound
                response = parse(transmit.data)
                assert not response.has(AttributeType.SOFTWARE)


def test_long_realm_overhead_grows_with_realm() -> None:
    realm = "r" * 100
    harness = Harness(make_config(realm=realm))
    assert harness.server.unauthenticated_overhead == 104 - 12 + 100
    request = MessageBuilder(request_type(Method.ALLOCATE), new_transaction_id())
    data = request.finish()
    (transmit,) = harness.from_client(data)
    assert len(transmit.data) <= len(data) + harness.server.unauthenticated_overhead


# Garbage input


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=200), tcp=st.booleans())
def test_garbage_never_raises(data: bytes, tcp: bool) -> None:
    harness = Harness()
    transport = TCP if tcp else UDP
    harness.server.handle_client_data(transport, SERVER, CLIENT, data, 0.0)
    harness.server.handle_peer_data(("127.0.0.1", 49152), PEER, data, 0.0)
    harness.pump()
    assert harness.server.stats.dropped.get(DropReason.INTERNAL_ERROR, 0) == 0


def channel_bind_attributes(builder: MessageBuilder) -> None:
    builder.add_channel_number(0x4000)
    builder.add_xor_peer_address(*PEER)


def send_attributes(builder: MessageBuilder) -> None:
    builder.add_xor_peer_address(*PEER)
    builder.add_data(b"x")


def valid_messages() -> list[bytes]:
    harness = Harness()
    client = Client(harness)
    client.nonce = "obMatJos2AAACfixed-nonce-for-fuzzing"
    client.offer = b"\x00\x02\x00\x00\x00\x01\x00\x00"
    messages = [
        client.build(
            Method.ALLOCATE, lambda b: b.add_requested_transport(TransportProtocol.UDP)
        ),
        client.build(Method.CREATE_PERMISSION, lambda b: b.add_xor_peer_address(*PEER)),
        client.build(Method.CHANNEL_BIND, channel_bind_attributes),
        client.build(
            Method.SEND,
            send_attributes,
            sign=False,
            message_class=MessageClass.INDICATION,
        ),
        encode_channel_data(0x4000, b"payload"),
    ]
    return messages


VALID_MESSAGES = valid_messages()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(0, len(VALID_MESSAGES) - 1),
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 400),
)
def test_mutated_messages_never_raise(
    index: int, flips: list[tuple[int, int]], cut: int
) -> None:
    harness = Harness()
    client = Client(harness)
    client.allocate()
    client.bind(0x4000, PEER)
    data = bytearray(VALID_MESSAGES[index])
    for position, value in flips:
        if position < len(data):
            data[position] = value
    mutated = bytes(data[: max(cut, 1)])
    harness.server.handle_client_data(UDP, SERVER, CLIENT, mutated, harness.now)
    harness.server.handle_client_data(TCP, SERVER, CLIENT, mutated, harness.now)
    harness.pump()
    assert harness.server.stats.dropped.get(DropReason.INTERNAL_ERROR, 0) == 0


# Counters and logs


def test_relay_counters(harness: Harness, alice: Client, allocated: Address) -> None:
    alice.bind(0x4000, PEER)
    alice.permit(PEER2)
    alice.send(encode_channel_data(0x4000, b"12345"))
    alice.send_indication(PEER2, b"123")
    harness.from_peer(allocated, PEER, b"1234567")
    harness.from_peer(allocated, ("127.0.0.9", 1), b"dropped")
    stats = harness.server.stats
    assert stats.packets_to_peer == 2
    assert stats.bytes_to_peer == 8
    assert stats.packets_to_client == 1
    assert stats.bytes_to_client == 7
    assert stats.channels == 1
    assert stats.permissions == 2
    assert stats.dropped == {DropReason.NO_PERMISSION: 1}
    assert stats.error_responses[401] == 1


def test_logs_name_allocation_not_password(
    harness: Harness, alice: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="rice_fast")
    alice.allocate()
    alice.refresh(0)
    created = [r for r in caplog.records if "created" in r.getMessage()]
    deleted = [r for r in caplog.records if "deleted" in r.getMessage()]
    assert created[0].levelno == logging.INFO
    assert "allocation 1 created" in created[0].getMessage()
    assert deleted[0].levelno == logging.INFO
    assert "allocation 1 deleted" in deleted[0].getMessage()
    for record in caplog.records:
        assert USERS["alice"] not in record.getMessage()


# TCP and TLS client transports


@pytest.mark.parametrize("transport", [TCP, TLS])
def test_allocate_over_stream_transport(
    harness: Harness, transport: TransportType
) -> None:
    client = Client(harness, transport=transport)
    response = client.allocate()
    assert response.is_success
    relayed = relayed_of(response)
    client.bind(0x4000, PEER)
    (transmit,) = harness.from_peer(relayed, PEER, b"abcde")
    assert transmit.transport is transport
    # Over streams ChannelData is padded to a multiple of 4 bytes.
    assert transmit.data == encode_channel_data(0x4000, b"abcde", stream=True)
    assert len(transmit.data) == 12
    (to_peer,) = client.send(encode_channel_data(0x4000, b"abcde", stream=True))
    assert to_peer.data == b"abcde"


def test_closed_connection_deletes_allocation(harness: Harness) -> None:
    client = Client(harness, transport=TCP)
    relayed = relayed_of(client.allocate())
    harness.server.handle_client_closed(TCP, SERVER, CLIENT, harness.now)
    harness.pump()
    (deleted,) = harness.take(AllocationDeleted)
    assert deleted.relayed == (relayed,)
    assert harness.server.stats.allocations == 0


# RFC 6062 TCP allocations


def tcp_allocation(harness: Harness) -> tuple[Client, Address]:
    client = Client(harness, transport=TCP)
    response = client.request(
        Method.ALLOCATE, lambda b: b.add_requested_transport(TransportProtocol.TCP)
    )
    assert response.is_success, response.error_code()
    return client, relayed_of(response)


def connect(client: Client, peer: Address) -> bytes:
    client_request = client.build(
        Method.CONNECT, lambda b: b.add_xor_peer_address(peer[0], peer[1])
    )
    assert client.send(client_request) == []
    return parse(client_request).transaction_id


def connection_bind(
    harness: Harness, connection_id: int, remote: Address, username: str = "alice"
) -> tuple[Client, list[Transmit]]:
    data_client = Client(harness, username, transport=TCP, remote=remote)
    data_client.learn_nonce()
    request = data_client.build(
        Method.CONNECTION_BIND,
        lambda b: b.add_u32(AttributeType.CONNECTION_ID, connection_id),
    )
    return data_client, data_client.send(request)


def test_tcp_allocation_asks_for_tcp_socket(harness: Harness) -> None:
    tcp_allocation(harness)
    (event,) = harness.take(AllocateRelaySocket)
    assert event.transport is TransportProtocol.TCP
    (created,) = harness.take(AllocationCreated)
    assert created.transport is TransportProtocol.TCP


def test_tcp_connect_and_bind(harness: Harness) -> None:
    client, relayed = tcp_allocation(harness)
    transaction_id = connect(client, PEER)
    (request,) = harness.take(ConnectToPeer)
    assert request.relayed == relayed
    assert request.peer == PEER

    harness.server.connect_to_peer_result(request.connection_id, True, harness.now)
    harness.pump()
    (transmit,) = harness.take_transmits()
    response = parse(transmit.data)
    assert response.is_success
    assert response.transaction_id == transaction_id
    client.verify(response)
    raw = response.raw(AttributeType.CONNECTION_ID)
    assert raw is not None
    assert int.from_bytes(raw, "big") == request.connection_id

    data_remote = ("127.0.0.1", 50100)
    data_client, transmits = connection_bind(
        harness, request.connection_id, data_remote
    )
    assert transmits == []
    (bound,) = harness.take(ConnectionBound)
    assert bound.connection_id == request.connection_id
    assert bound.data_connection == FiveTuple(TCP, SERVER, data_remote)
    assert bound.peer == PEER
    assert bound.relayed == relayed
    bind_response = parse(bound.response)
    assert bind_response.is_success
    assert bind_response.method == Method.CONNECTION_BIND
    data_client.verify(bind_response)

    # The data connection carries raw bytes from now on.
    assert data_client.send(b"\x00\x01 application bytes") == []
    assert harness.server.stats.dropped[DropReason.DATA_CONNECTION] == 1


def test_tcp_connect_failure_gets_447(harness: Harness) -> None:
    client, _ = tcp_allocation(harness)
    connect(client, PEER)
    (request,) = harness.take(ConnectToPeer)
    harness.server.connect_to_peer_result(request.connection_id, False, harness.now)
    harness.pump()
    (transmit,) = harness.take_transmits()
    assert parse(transmit.data).error_code() == (
        447,
        "Connection Timeout or Failure",
    )


def test_tcp_connect_timeout_gets_447(harness: Harness) -> None:
    client, _ = tcp_allocation(harness)
    connect(client, PEER)
    (request,) = harness.take(ConnectToPeer)
    harness.advance(31.0)
    (transmit,) = harness.take_transmits()
    code = parse(transmit.data).error_code()
    assert code is not None
    assert code[0] == 447
    (closed,) = harness.take(ClosePeerConnection)
    assert closed.connection_id == request.connection_id
    # A late success is closed at once.
    harness.server.connect_to_peer_result(request.connection_id, True, harness.now)
    harness.pump()
    assert len(harness.take(ClosePeerConnection)) == 1


def test_tcp_connect_twice_gets_446(harness: Harness) -> None:
    client, _ = tcp_allocation(harness)
    connect(client, PEER)
    response = client.request(Method.CONNECT, lambda b: b.add_xor_peer_address(*PEER))
    assert response.error_code() == (446, "Connection Already Exists")


def test_tcp_connect_denied_peer_gets_403(harness: Harness) -> None:
    client, _ = tcp_allocation(harness)
    response = client.request(
        Method.CONNECT, lambda b: b.add_xor_peer_address("10.0.0.5", 80)
    )
    code = response.error_code()
    assert code is not None
    assert code[0] == 403


def test_connect_on_udp_allocation_gets_400(
    harness: Harness, alice: Client, allocated: Address
) -> None:
    code = alice.request(
        Method.CONNECT, lambda b: b.add_xor_peer_address(*PEER)
    ).error_code()
    assert code is not None
    assert code[0] == 400


def test_channel_bind_on_tcp_allocation_gets_400(harness: Harness) -> None:
    client, _ = tcp_allocation(harness)
    code = client.bind(0x4000, PEER).error_code()
    assert code is not None
    assert code[0] == 400


def test_incoming_peer_connection(harness: Harness) -> None:
    client, relayed = tcp_allocation(harness)
    assert harness.server.handle_peer_connection(relayed, PEER, harness.now) is None
    client.permit(PEER)
    connection_id = harness.server.handle_peer_connection(relayed, PEER, harness.now)
    assert connection_id is not None
    harness.pump()
    (transmit,) = harness.take_transmits()
    assert transmit.destination == CLIENT
    attempt = parse(transmit.data)
    assert attempt.is_indication
    assert attempt.method == Method.CONNECTION_ATTEMPT
    assert attempt.xor_peer_address() == PEER
    raw = attempt.raw(AttributeType.CONNECTION_ID)
    assert raw is not None
    assert int.from_bytes(raw, "big") == connection_id

    connection_bind(harness, connection_id, ("127.0.0.1", 50100))
    (bound,) = harness.take(ConnectionBound)
    assert bound.peer == PEER


def test_unbound_connection_closed_after_timeout(harness: Harness) -> None:
    client, relayed = tcp_allocation(harness)
    client.permit(PEER)
    connection_id = harness.server.handle_peer_connection(relayed, PEER, harness.now)
    harness.advance(31.0)
    (closed,) = harness.take(ClosePeerConnection)
    assert closed.connection_id == connection_id
    _, transmits = connection_bind(harness, connection_id or 0, ("127.0.0.1", 50100))
    code = parse(transmits[0].data).error_code()
    assert code == (400, "Bad Request: unknown CONNECTION-ID")


def test_connection_bind_by_other_user_gets_441(harness: Harness) -> None:
    client, relayed = tcp_allocation(harness)
    client.permit(PEER)
    connection_id = harness.server.handle_peer_connection(relayed, PEER, harness.now)
    assert connection_id is not None
    _, transmits = connection_bind(harness, connection_id, ("127.0.0.1", 50100), "bob")
    assert parse(transmits[0].data).error_code() == (441, "Wrong Credentials")


def test_connection_bind_on_control_connection_gets_400(harness: Harness) -> None:
    client, relayed = tcp_allocation(harness)
    client.permit(PEER)
    connection_id = harness.server.handle_peer_connection(relayed, PEER, harness.now)
    assert connection_id is not None
    harness.pump()
    harness.take_transmits()
    response = client.request(
        Method.CONNECTION_BIND,
        lambda b: b.add_u32(AttributeType.CONNECTION_ID, connection_id),
    )
    assert response.error_code() == (
        400,
        "Bad Request: ConnectionBind on a control connection",
    )


def test_pending_connection_limit(harness: Harness) -> None:
    harness = Harness(make_config(max_pending_connections_per_allocation=2))
    client, relayed = tcp_allocation(harness)
    client.permit(PEER)
    server = harness.server
    assert server.handle_peer_connection(relayed, ("127.0.0.1", 1), 0.0) is not None
    assert server.handle_peer_connection(relayed, ("127.0.0.1", 2), 0.0) is not None
    assert server.handle_peer_connection(relayed, ("127.0.0.1", 3), 0.0) is None
    response = client.request(Method.CONNECT, lambda b: b.add_xor_peer_address(*PEER2))
    code = response.error_code()
    assert code is not None
    assert code[0] == 508


def test_closing_control_connection_closes_peer_connections(
    harness: Harness,
) -> None:
    client, relayed = tcp_allocation(harness)
    client.permit(PEER)
    connection_id = harness.server.handle_peer_connection(relayed, PEER, harness.now)
    assert connection_id is not None
    connection_bind(harness, connection_id, ("127.0.0.1", 50100))
    harness.server.handle_client_closed(TCP, SERVER, CLIENT, harness.now)
    harness.pump()
    (closed,) = harness.take(ClosePeerConnection)
    assert closed.connection_id == connection_id
    assert len(harness.take(AllocationDeleted)) == 1
    assert harness.server.stats.peer_connections == 0


def test_closing_data_connection_closes_peer_connection(harness: Harness) -> None:
    client, relayed = tcp_allocation(harness)
    client.permit(PEER)
    connection_id = harness.server.handle_peer_connection(relayed, PEER, harness.now)
    assert connection_id is not None
    data_remote = ("127.0.0.1", 50100)
    connection_bind(harness, connection_id, data_remote)
    harness.server.handle_client_closed(TCP, SERVER, data_remote, harness.now)
    harness.pump()
    (closed,) = harness.take(ClosePeerConnection)
    assert closed.connection_id == connection_id
    assert harness.server.stats.allocations == 1


# With the library's own TurnClient


class ClientPair:
    """A TurnClient and the TurnServer harness, stepped until both are idle."""

    def __init__(self, harness: Harness, client: TurnClient) -> None:
        self.harness = harness
        self.client = client
        self.client_events: list[TurnEvent] = []
        self.to_peers: list[Transmit] = []

    def run(self) -> None:
        harness, client = self.harness, self.client
        for _ in range(100):
            progressed = False
            while True:
                event = client.poll(harness.now)
                if event is None or isinstance(event, WaitUntil):
                    break
                self.client_events.append(event)
                progressed = True
            while (transmit := client.poll_transmit(harness.now)) is not None:
                harness.server.handle_client_data(
                    UDP,
                    transmit.destination,
                    transmit.source,
                    transmit.data,
                    harness.now,
                )
                progressed = True
            harness.pump()
            for transmit in harness.take_transmits():
                if transmit.destination == CLIENT:
                    client.handle_data(transmit.data, transmit.source, harness.now)
                    progressed = True
                else:
                    self.to_peers.append(transmit)
            if not progressed:
                return
        raise AssertionError("client and server did not settle in 100 steps")

    def take(self, kind: type[C]) -> list[C]:
        found = [e for e in self.client_events if isinstance(e, kind)]
        self.client_events = [e for e in self.client_events if not isinstance(e, kind)]
        return found


def test_turn_client_full_flow(harness: Harness) -> None:
    credentials = LongTermCredentials("alice", USERS["alice"], REALM)
    pair = ClientPair(harness, TurnClient(UDP, CLIENT, SERVER, credentials))
    pair.run()
    (created,) = pair.take(client_events.AllocationCreated)
    (relayed,) = created.relayed_addresses
    assert created.lifetime == 600
    assert harness.server.stats.allocations == 1

    # Send indications until a channel is bound, then ChannelData.
    pair.client.create_permission(PEER, harness.now)
    pair.run()
    assert pair.take(client_events.PermissionCreated) != []
    pair.client.send_to(PEER, b"via Send", harness.now)
    pair.run()
    (sent,) = pair.to_peers
    assert (sent.source, sent.destination, sent.data) == (relayed, PEER, b"via Send")

    harness.server.handle_peer_data(relayed, PEER, b"via Data", harness.now)
    pair.run()
    (received,) = pair.take(client_events.PeerData)
    assert (received.peer, received.data) == (PEER, b"via Data")

    channel = pair.client.bind_channel(PEER, harness.now)
    pair.run()
    (bound,) = harness.take(ChannelBound)
    assert bound.channel == channel
    pair.to_peers.clear()
    pair.client.send_to(PEER, b"via channel", harness.now)
    pair.run()
    (sent,) = pair.to_peers
    assert sent.data == b"via channel"
    assert harness.server.stats.packets_to_peer == 2

    harness.server.handle_peer_data(relayed, PEER, b"channel back", harness.now)
    pair.run()
    (received,) = pair.take(client_events.PeerData)
    assert received.data == b"channel back"

    # The client's refreshes keep everything alive past the lifetimes.
    for _ in range(20):
        harness.now += 60.0
        pair.run()
    assert harness.take(AllocationExpired) == []
    assert harness.take(ChannelExpired) == []
    assert harness.take(PermissionExpired) == []

    pair.client.delete(harness.now)
    pair.run()
    assert len(harness.take(AllocationDeleted)) == 1
