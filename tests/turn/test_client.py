"""TurnClient on a virtual clock against a scripted server.

Each test answers the client's requests by hand with responses built by
``ScriptedServer`` (see conftest.py): a 401 challenge first, then signed
success or error responses. Time is the harness's float clock, moved with
``advance`` or to the client's own deadline.
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rice_fast.stun import (
    AddressFamily,
    AttributeType,
    ErrorCode,
    MessageBuilder,
    MessageClass,
    Method,
    TransportProtocol,
    message_type,
    new_transaction_id,
    parse,
)
from rice_fast.stun.transport import TransportType
from rice_fast.turn import encode_channel_data
from rice_fast.turn._options import refresh_delay
from rice_fast.turn.client import AllocationOptions, TurnClient, TurnUsageError
from rice_fast.turn.events import (
    AllocateSocket,
    AllocationCreated,
    AllocationDeleted,
    AllocationFailed,
    AllocationRefreshed,
    ChannelBindFailed,
    ChannelBound,
    ChannelExpired,
    PeerConnected,
    PeerConnectFailed,
    PeerData,
    PeerDisconnected,
    PeerIcmp,
    PermissionCreated,
    PermissionExpired,
    PermissionFailed,
    ServerRedirected,
    SocketPurpose,
    TurnEvent,
)

if TYPE_CHECKING:
    from tests.turn.conftest import Certificate, ClientHarness, MemoryTlsServer

    Harness = Callable[..., ClientHarness]

LOCAL = ("192.0.2.10", 50000)
SERVER = ("192.0.2.1", 3478)
RELAYED = ("192.0.2.1", 49152)
PEER = ("203.0.113.5", 7000)
PEER_OTHER_PORT = ("203.0.113.5", 7001)
PEER_B = ("203.0.113.9", 8000)
PEER6 = ("2001:db8::5", 7000)


def of_type(events: list[TurnEvent], kind: type[TurnEvent]) -> list[TurnEvent]:
    return [e for e in events if isinstance(e, kind)]


def allocated(harness: Harness, **kwargs: object) -> ClientHarness:
    h = harness(**kwargs)
    events = h.allocate()
    assert of_type(events, AllocationCreated)
    return h


# Allocate.


def test_allocate_answers_401_challenge(harness: Harness) -> None:
    h = harness()

    first = h.request(Method.ALLOCATE)
    assert first.raw(AttributeType.REQUESTED_TRANSPORT) == b"\x11\x00\x00\x00"
    assert first.username() is None
    h.feed(h.server.challenge(first))
    second = h.request(Method.ALLOCATE)
    h.feed(h.server.allocate_success(second, lifetime=600))
    events = h.events()

    assert second.transaction_id != first.transaction_id
    assert h.server.verify(second)
    assert events == [
        AllocationCreated(
            relayed_addresses=(RELAYED,),
            mapped_address=("198.51.100.7", 61000),
            lifetime=600,
            local_address=LOCAL,
        )
    ]
    assert h.client.allocated
    assert h.client.relayed_addresses == (RELAYED,)


def test_allocate_wrong_credentials_fails_with_401(harness: Harness) -> None:
    h = harness()
    first = h.request(Method.ALLOCATE)
    h.feed(h.server.challenge(first))
    second = h.request(Method.ALLOCATE)

    h.feed(h.server.challenge(second))
    events = h.events()

    assert len(events) == 1
    assert isinstance(events[0], AllocationFailed)
    assert events[0].code == 401
    assert h.client.closed
    assert h.client.poll(h.now) is None


def test_allocate_quota_reached_fails_with_486(harness: Harness) -> None:
    h = harness()
    first = h.request(Method.ALLOCATE)
    h.feed(h.server.challenge(first))
    second = h.request(Method.ALLOCATE)

    h.feed(h.server.error(second, 486, "Allocation Quota Reached"))
    events = h.events()

    assert events == [AllocationFailed(486, "Allocation Quota Reached")]


def test_allocate_timeout_reports_code_zero(harness: Harness) -> None:
    h = harness()
    h.request(Method.ALLOCATE)

    for _ in range(10):
        h.advance_to_deadline()
        events = h.events()
        h.transmits()
        if events:
            break

    assert len(events) == 1
    assert isinstance(events[0], AllocationFailed)
    assert events[0].code == 0
    assert "timed out" in events[0].reason


def test_allocate_options_become_attributes(harness: Harness) -> None:
    token = bytes(range(8))
    cases: list[tuple[AllocationOptions, dict[int, bytes]]] = [
        (
            AllocationOptions(address_family=AddressFamily.IPV6, lifetime=1200),
            {
                AttributeType.REQUESTED_ADDRESS_FAMILY: b"\x02\x00\x00\x00",
                AttributeType.LIFETIME: struct.pack("!I", 1200),
            },
        ),
        (
            AllocationOptions(dual_stack=True),
            {
                AttributeType.ADDITIONAL_ADDRESS_FAMILY: b"\x02\x00\x00\x00",
                0x8032: b"\x02\x00\x00\x00",
            },
        ),
        (
            AllocationOptions(dont_fragment=True, even_port=True),
            {AttributeType.DONT_FRAGMENT: b"", AttributeType.EVEN_PORT: b"\x80"},
        ),
        (
            AllocationOptions(reservation_token=token),
            {AttributeType.RESERVATION_TOKEN: token},
        ),
    ]
    for options, expected in cases:
        h = harness(options=options)
        request = h.request(Method.ALLOCATE)
        for attr_type, value in expected.items():
            assert request.raw(attr_type) == value, (options, hex(attr_type))


def test_allocate_tcp_relay_requests_protocol_6(harness: Harness) -> None:
    options = AllocationOptions(relay_transport=TransportProtocol.TCP)
    h = harness(TransportType.TCP, options)

    request = h.request(Method.ALLOCATE)

    assert request.raw(AttributeType.REQUESTED_TRANSPORT) == b"\x06\x00\x00\x00"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dual_stack": True, "address_family": AddressFamily.IPV4}, "dual_stack"),
        ({"dual_stack": True, "even_port": True}, "dual_stack"),
        ({"reservation_token": bytes(8), "even_port": True}, "reservation_token"),
        ({"reservation_token": b"short"}, "8 bytes"),
        ({"lifetime": 0}, "lifetime"),
        (
            {"relay_transport": TransportProtocol.TCP, "dont_fragment": True},
            "TCP allocation",
        ),
    ],
)
def test_allocation_options_reject_invalid(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(TurnUsageError, match=message):
        AllocationOptions(**kwargs)  # type: ignore[arg-type]


def test_tcp_relay_over_udp_rejected() -> None:
    from rice_fast.stun.credentials import LongTermCredentials

    options = AllocationOptions(relay_transport=TransportProtocol.TCP)
    with pytest.raises(TurnUsageError, match="TCP or TLS control connection"):
        TurnClient(
            TransportType.UDP,
            LOCAL,
            SERVER,
            LongTermCredentials("u", "p", ""),
            options=options,
        )


def test_dual_allocation_reports_both_and_address_error(harness: Harness) -> None:
    h = harness(options=AllocationOptions(dual_stack=True))
    relayed6 = ("2001:db8::1", 49153)

    def address_error(builder: MessageBuilder) -> None:
        builder.add(0x8033, b"\x02\x00\x05\x08Insufficient Capacity")

    events = h.allocate(relayed=(relayed6, RELAYED), extra=address_error)

    created = of_type(events, AllocationCreated)[0]
    assert isinstance(created, AllocationCreated)
    assert created.relayed_addresses == (RELAYED, relayed6)
    assert created.address_error == (2, 508, "Insufficient Capacity")


def test_reservation_token_reported(harness: Harness) -> None:
    h = harness(options=AllocationOptions(even_port=True))
    token = b"\x01\x02\x03\x04\x05\x06\x07\x08"

    def with_token(builder: MessageBuilder) -> None:
        builder.add(AttributeType.RESERVATION_TOKEN, token)

    events = h.allocate(extra=with_token)

    created = of_type(events, AllocationCreated)[0]
    assert isinstance(created, AllocationCreated)
    assert created.reservation_token == token


def test_unknown_dont_fragment_retried_without(harness: Harness) -> None:
    h = harness(options=AllocationOptions(dont_fragment=True))
    first = h.request(Method.ALLOCATE)
    h.feed(h.server.challenge(first))
    second = h.request(Method.ALLOCATE)

    def unknown(builder: MessageBuilder) -> None:
        builder.add_unknown_attributes([AttributeType.DONT_FRAGMENT])

    h.feed(h.server.error(second, 420, "Unknown Attribute", unknown))
    third = h.request(Method.ALLOCATE)
    h.feed(h.server.allocate_success(third))
    events = h.events()

    assert second.has(AttributeType.DONT_FRAGMENT)
    assert not third.has(AttributeType.DONT_FRAGMENT)
    assert of_type(events, AllocationCreated)


# 300 Try Alternate.


def _alternate(address: tuple[str, int]) -> Callable[[MessageBuilder], None]:
    def build(builder: MessageBuilder) -> None:
        builder.add_address(AttributeType.ALTERNATE_SERVER, *address)

    return build


def test_try_alternate_followed_once_over_udp(harness: Harness) -> None:
    h = harness()
    alternate = ("192.0.2.2", 3478)
    first = h.request(Method.ALLOCATE)
    h.feed(h.server.error(first, 300, "Try Alternate", _alternate(alternate)))
    events = h.events()
    transmits = h.transmits()

    assert events == [ServerRedirected(alternate)]
    assert [t.destination for t in transmits] == [alternate]
    assert h.client.server == alternate

    again = parse(transmits[0].data)
    h.client.handle_data(
        h.server.error(again, 300, "Try Alternate", _alternate(("192.0.2.3", 3478))),
        alternate,
        h.now,
    )
    events = h.events()

    assert len(events) == 1
    assert isinstance(events[0], AllocationFailed)
    assert events[0].code == 300


def test_try_alternate_over_tcp_asks_for_socket(harness: Harness) -> None:
    h = harness(TransportType.TCP)
    alternate = ("192.0.2.2", 3478)
    first = h.request(Method.ALLOCATE)

    h.feed(h.server.error(first, 300, "Try Alternate", _alternate(alternate)))
    events = h.events()

    assert events == [
        ServerRedirected(alternate),
        AllocateSocket(SocketPurpose.ALTERNATE_SERVER, TransportType.TCP, alternate),
    ]
    h.client.socket_allocated(("192.0.2.10", 50001), h.now)
    transmits = h.transmits()
    assert [(t.source, t.destination) for t in transmits] == [
        (("192.0.2.10", 50001), alternate)
    ]


# Refresh.


@pytest.mark.parametrize(
    ("lifetime", "delay"),
    [(600, 480.0), (3600, 2880.0), (300, 240.0), (100, 50.0), (30, 15.0)],
)
def test_refresh_delay(lifetime: int, delay: float) -> None:
    assert refresh_delay(lifetime) == delay


def test_refresh_scheduled_from_granted_lifetime(harness: Harness) -> None:
    h = allocated(harness)
    start = h.now

    assert h.deadline == start + 480
    h.now = start + 479
    assert h.messages() == []
    h.now = start + 480
    refresh = h.request(Method.REFRESH)
    assert refresh.has_integrity
    assert not refresh.has(AttributeType.LIFETIME)

    # A shorter grant moves the next refresh earlier.
    h.feed(h.server.success(refresh, lambda b: b.add_lifetime(100)))
    events = h.events()

    assert events == [AllocationRefreshed(100)]
    assert h.deadline == start + 480 + 50


def test_refresh_carries_requested_lifetime(harness: Harness) -> None:
    h = harness(options=AllocationOptions(lifetime=900))
    h.allocate(lifetime=900)
    h.advance_to_deadline()

    refresh = h.request(Method.REFRESH)

    assert refresh.lifetime() == 900


def test_refresh_now_on_request(harness: Harness) -> None:
    h = allocated(harness)

    h.client.refresh(h.now)
    refresh = h.request(Method.REFRESH)
    h.client.refresh(h.now)

    assert refresh.has_integrity
    assert h.messages() == []


def test_refresh_retried_after_timeout_until_expiry(harness: Harness) -> None:
    h = allocated(harness)
    start = h.now
    h.now = start + 480
    h.request(Method.REFRESH)

    # No response: the UDP schedule runs out after 39.5 s, then the client
    # retries 5 s later.
    h.now = start + 480 + 39.5
    assert h.events() == []
    h.now = start + 480 + 39.5 + 5
    retry = h.request(Method.REFRESH)
    h.feed(h.server.success(retry, lambda b: b.add_lifetime(600)))

    assert h.events() == [AllocationRefreshed(600)]


def test_allocation_expires_without_refresh(harness: Harness) -> None:
    h = allocated(harness)
    start = h.now
    expired: list[TurnEvent] = []
    while not expired and h.now < start + 700:
        h.advance(1)
        h.transmits()
        expired = of_type(h.events(), AllocationFailed)

    assert len(expired) == 1
    assert isinstance(expired[0], AllocationFailed)
    assert "expired" in expired[0].reason
    assert h.now == start + 600


def test_stale_nonce_retried_with_new_nonce(harness: Harness) -> None:
    h = allocated(harness)
    h.client.refresh(h.now)
    refresh = h.request(Method.REFRESH)

    h.server.nonce = "nonce-2"
    h.feed(h.server.challenge(refresh, code=438))
    retried = h.request(Method.REFRESH)
    h.feed(h.server.success(retried, lambda b: b.add_lifetime(600)))

    assert retried.nonce() == "nonce-2"
    assert h.server.verify(retried)
    assert h.events() == [AllocationRefreshed(600)]


def test_stale_nonce_retry_count_resets_after_success(harness: Harness) -> None:
    h = allocated(harness)
    for round_number in range(3):
        h.client.refresh(h.now)
        request = h.request(Method.REFRESH)
        # Two 438s in a row per request: the limit is two retries per
        # transaction, so each refresh still succeeds.
        for stale in range(2):
            h.server.nonce = f"nonce-{round_number}-{stale}"
            h.feed(h.server.challenge(request, code=438))
            request = h.request(Method.REFRESH)
        h.feed(h.server.success(request, lambda b: b.add_lifetime(600)))
        assert h.events() == [AllocationRefreshed(600)], round_number


def test_stale_nonce_beyond_retries_fails_request(harness: Harness) -> None:
    h = allocated(harness)
    h.client.refresh(h.now)
    request = h.request(Method.REFRESH)
    for stale in range(2):
        h.server.nonce = f"stale-{stale}"
        h.feed(h.server.challenge(request, code=438))
        request = h.request(Method.REFRESH)

    h.server.nonce = "stale-last"
    h.feed(h.server.challenge(request, code=438))

    assert h.events() == []
    assert h.client.allocated
    # The agent forgets a nonce it gave up on, so the retry starts over.
    h.advance(5)
    assert h.request(Method.REFRESH).method == Method.REFRESH


# Delete.


def test_delete_sends_lifetime_zero(harness: Harness) -> None:
    h = allocated(harness)

    h.client.delete(h.now)
    request = h.request(Method.REFRESH)
    h.feed(h.server.success(request, lambda b: b.add_lifetime(0)))

    assert request.lifetime() == 0
    assert h.events() == [AllocationDeleted(confirmed=True)]
    assert h.client.closed


def test_delete_after_allocation_gone_is_confirmed(harness: Harness) -> None:
    h = allocated(harness)

    h.client.delete(h.now)
    request = h.request(Method.REFRESH)
    h.feed(h.server.error(request, 437, "Allocation Mismatch"))

    assert h.events() == [AllocationDeleted(confirmed=True)]


def test_delete_before_allocation_is_unconfirmed(harness: Harness) -> None:
    h = harness()
    h.request(Method.ALLOCATE)

    h.client.delete(h.now)

    assert h.events() == [AllocationDeleted(confirmed=False)]
    assert h.messages() == []


def test_delete_stops_refreshes(harness: Harness) -> None:
    h = allocated(harness)
    h.client.create_permission(PEER, h.now)
    h.messages()

    h.client.delete(h.now)
    request = h.request(Method.REFRESH)
    later = []
    events: list[TurnEvent] = []
    for _ in range(500):
        h.advance(1)
        later += h.messages()
        events += h.events()

    assert request.lifetime() == 0
    # Only retransmissions of the deleting Refresh, until it times out.
    assert later
    assert all(m.transaction_id == request.transaction_id for m in later)
    assert events == [AllocationDeleted(confirmed=False)]


# Permissions.


def test_permission_created_and_refreshed(harness: Harness) -> None:
    h = allocated(harness)
    start = h.now

    h.client.create_permission(PEER, h.now)
    request = h.request(Method.CREATE_PERMISSION)
    h.feed(h.server.success(request))

    assert request.xor_peer_address() == (PEER[0], 0)
    assert h.events() == [PermissionCreated(PEER[0])]
    assert h.client.has_permission(PEER_OTHER_PORT)

    h.now = start + 239
    assert h.messages() == []
    h.now = start + 240
    refresh = h.request(Method.CREATE_PERMISSION)
    h.feed(h.server.success(refresh))
    assert refresh.xor_peer_address() == (PEER[0], 0)
    assert h.events() == []


def test_permission_keyed_by_ip(harness: Harness) -> None:
    h = allocated(harness)
    h.client.create_permission(PEER, h.now)
    h.feed(h.server.success(h.request(Method.CREATE_PERMISSION)))
    h.events()

    h.client.create_permission(PEER_OTHER_PORT, h.now)
    h.client.create_permission(PEER[0], h.now)

    assert h.messages() == []


def test_permission_before_allocation_sent_after(harness: Harness) -> None:
    h = harness()
    h.client.create_permission(PEER, h.now)

    events = h.allocate()
    request = h.request(Method.CREATE_PERMISSION)

    assert of_type(events, AllocationCreated)
    assert request.xor_peer_address() == (PEER[0], 0)


def test_permission_expires_after_remove(harness: Harness) -> None:
    h = allocated(harness)
    start = h.now
    h.client.create_permission(PEER, h.now)
    h.feed(h.server.success(h.request(Method.CREATE_PERMISSION)))
    h.events()

    h.client.remove_permission(PEER)
    h.now = start + 299
    assert h.messages() == []
    h.now = start + 300

    assert h.events() == [PermissionExpired(PEER[0])]
    assert not h.client.has_permission(PEER)


def test_permission_forbidden_reported(harness: Harness) -> None:
    h = allocated(harness)

    h.client.create_permission(PEER, h.now)
    request = h.request(Method.CREATE_PERMISSION)
    h.feed(h.server.error(request, 403, "Forbidden"))

    assert h.events() == [PermissionFailed(PEER[0], 403, "Forbidden")]
    with pytest.raises(TurnUsageError, match="no permission"):
        h.client.send_to(PEER, b"x", h.now)


def test_permission_refresh_timeout_retried(harness: Harness) -> None:
    h = allocated(harness)
    start = h.now
    h.client.create_permission(PEER, h.now)
    h.feed(h.server.success(h.request(Method.CREATE_PERMISSION)))
    h.events()

    h.now = start + 240
    h.request(Method.CREATE_PERMISSION)
    h.now = start + 240 + 39.5
    assert h.events() == []
    h.now = start + 240 + 44.5
    retry = h.request(Method.CREATE_PERMISSION)
    h.feed(h.server.success(retry))

    assert h.events() == []
    assert h.client.has_permission(PEER)


def test_permission_for_wrong_family_rejected(harness: Harness) -> None:
    h = allocated(harness)

    with pytest.raises(TurnUsageError, match="IPV6"):
        h.client.create_permission(PEER6, h.now)


def test_permission_for_host_name_rejected(harness: Harness) -> None:
    h = allocated(harness)

    with pytest.raises(TurnUsageError, match="IP address"):
        h.client.create_permission(("peer.example", 1), h.now)


# Channels.


def _bind(h: ClientHarness, peer: tuple[str, int]) -> int:
    number = h.client.bind_channel(peer, h.now)
    request = h.request(Method.CHANNEL_BIND)
    assert request.channel_number() == number
    assert request.xor_peer_address() == peer
    h.feed(h.server.success(request))
    return number


def test_channel_bound_installs_permission(harness: Harness) -> None:
    h = allocated(harness)

    number = _bind(h, PEER)

    assert number == 0x4000
    assert h.events() == [PermissionCreated(PEER[0]), ChannelBound(PEER, 0x4000)]
    assert h.client.channel_of(PEER) == 0x4000
    assert h.client.has_permission(PEER)


def test_channel_and_permission_refresh_schedule(harness: Harness) -> None:
    h = allocated(harness)
    start = h.now
    _bind(h, PEER)
    h.events()

    sent: list[tuple[float, int]] = []
    while h.now < start + 1100:
        h.advance(1)
        for message in h.messages():
            sent.append((h.now - start, message.method))
            h.feed(h.server.success(message, lambda b: b.add_lifetime(600)))
        h.events()

    permissions = [t for t, m in sent if m == Method.CREATE_PERMISSION]
    channels = [t for t, m in sent if m == Method.CHANNEL_BIND]
    refreshes = [t for t, m in sent if m == Method.REFRESH]
    # The permission from the ChannelBind at 0 is refreshed at 240; the
    # ChannelBind refresh at 540 refreshes it too, which moves the next
    # CreatePermission to 780.
    assert permissions == [240.0, 480.0, 780.0, 1020.0]
    assert channels == [540.0, 1080.0]
    assert refreshes == [480.0, 960.0]


def test_channel_rebind_same_peer_returns_same_number(harness: Harness) -> None:
    h = allocated(harness)
    number = _bind(h, PEER)
    h.events()

    assert h.client.bind_channel(PEER, h.now) == number
    assert h.messages() == []


def test_channel_numbers_distinct_per_peer(harness: Harness) -> None:
    h = allocated(harness)

    first = _bind(h, PEER)
    second = _bind(h, PEER_OTHER_PORT)

    assert (first, second) == (0x4000, 0x4001)


def test_channel_expiry_then_rebind_reuses_number(harness: Harness) -> None:
    h = allocated(harness)
    start = h.now
    _bind(h, PEER)
    h.events()
    h.client.unbind_channel(PEER)

    expired: list[TurnEvent] = []
    while h.now < start + 600:
        h.advance(10)
        for message in h.messages():
            h.feed(h.server.success(message, lambda b: b.add_lifetime(600)))
        expired += of_type(h.events(), ChannelExpired)

    assert expired == [ChannelExpired(PEER, 0x4000)]
    assert h.client.channel_of(PEER) is None
    # Within 300 s of the expiry the number is kept for this peer only.
    assert h.client.bind_channel(PEER_B, h.now) == 0x4001
    assert h.client.bind_channel(PEER, h.now) == 0x4000
    requests = [m for m in h.messages() if m.method == Method.CHANNEL_BIND]
    for request in requests:
        h.feed(h.server.success(request))
    bound = of_type(h.events(), ChannelBound)
    assert ChannelBound(PEER, 0x4000) in bound


def test_channel_bind_failure_frees_number(harness: Harness) -> None:
    h = allocated(harness)

    number = h.client.bind_channel(PEER, h.now)
    request = h.request(Method.CHANNEL_BIND)
    h.feed(h.server.error(request, 400, "Bad Request"))

    assert h.events() == [ChannelBindFailed(PEER, number, 400, "Bad Request")]
    assert h.client.bind_channel(PEER_B, h.now) == number


def test_channel_on_tcp_allocation_rejected(harness: Harness) -> None:
    options = AllocationOptions(relay_transport=TransportProtocol.TCP)
    h = harness(TransportType.TCP, options)
    h.allocate()

    with pytest.raises(TurnUsageError, match="no channels"):
        h.client.bind_channel(PEER, h.now)


# Data.


def test_send_indication_before_channel(harness: Harness) -> None:
    h = allocated(harness)
    h.client.create_permission(PEER, h.now)
    h.messages()

    h.client.send_to(PEER, b"hello", h.now)
    transmits = h.transmits()

    assert len(transmits) == 1
    message = parse(transmits[0].data)
    assert message.method == Method.SEND
    assert message.is_indication
    assert message.xor_peer_address() == PEER
    assert message.data_attribute() == b"hello"
    assert h.client.stats.send_indications == 1


def test_channel_data_once_bound(harness: Harness) -> None:
    h = allocated(harness)
    _bind(h, PEER)
    h.events()

    h.client.send_to(PEER, b"hello", h.now)
    transmits = h.transmits()

    assert [t.data for t in transmits] == [b"\x40\x00\x00\x05hello"]
    assert transmits[0].destination == SERVER
    assert transmits[0].source == LOCAL


def test_channel_data_padded_over_tcp(harness: Harness) -> None:
    h = harness(TransportType.TCP)
    h.allocate()
    _bind(h, PEER)
    h.events()

    h.client.send_to(PEER, b"x" * 13, h.now)
    transmits = h.transmits()

    assert [t.data for t in transmits] == [b"\x40\x00\x00\x0d" + b"x" * 13 + bytes(3)]


def test_send_without_permission_rejected(harness: Harness) -> None:
    h = allocated(harness)

    with pytest.raises(TurnUsageError, match=r"no permission for peer 203\.0\.113\.5"):
        h.client.send_to(PEER, b"x", h.now)


def test_send_before_allocation_rejected(harness: Harness) -> None:
    h = harness()

    with pytest.raises(TurnUsageError, match="before the allocation exists"):
        h.client.send_to(PEER, b"x", h.now)


def _data_indication(peer: tuple[str, int], payload: bytes) -> bytes:
    builder = MessageBuilder(
        message_type(Method.DATA, MessageClass.INDICATION), new_transaction_id()
    )
    builder.add_xor_peer_address(*peer)
    builder.add_data(payload)
    data: bytes = builder.finish(fingerprint=True)
    return data


def test_data_indication_becomes_peer_data(harness: Harness) -> None:
    h = allocated(harness)
    h.client.create_permission(PEER, h.now)
    h.messages()

    h.feed(_data_indication(PEER, b"from peer"))

    assert h.events() == [PeerData(PEER, b"from peer")]


def test_data_indication_without_permission_dropped(harness: Harness) -> None:
    h = allocated(harness)

    h.feed(_data_indication(PEER, b"from a stranger"))

    assert h.events() == []
    assert h.client.stats.dropped_without_permission == 1


def test_data_indication_with_icmp_reported(harness: Harness) -> None:
    h = allocated(harness)
    h.client.create_permission(PEER, h.now)
    h.messages()
    builder = MessageBuilder(
        message_type(Method.DATA, MessageClass.INDICATION), new_transaction_id()
    )
    builder.add_xor_peer_address(*PEER)
    # ICMPv4 type 3 code 4 (fragmentation needed), next-hop MTU 1280.
    builder.add(AttributeType.ICMP, b"\x00\x00\x03\x04" + struct.pack("!I", 1280))

    h.feed(builder.finish(fingerprint=True))

    assert h.events() == [PeerIcmp(PEER, 3, 4, 1280)]


def test_channel_data_becomes_peer_data(harness: Harness) -> None:
    h = allocated(harness)
    _bind(h, PEER)
    h.events()

    # UDP may carry padding after the payload; it is ignored.
    h.feed(encode_channel_data(0x4000, b"abc", stream=True))

    assert h.events() == [PeerData(PEER, b"abc")]


def test_bad_input_dropped_and_counted(harness: Harness) -> None:
    h = allocated(harness)
    _bind(h, PEER)
    h.events()

    h.feed(b"\x40\x00\x00\x10short")
    h.feed(encode_channel_data(0x4123, b"unbound"))
    h.feed(b"\x00\x01\x00\x00garbage-not-stun")
    h.feed(_data_indication(PEER, b"x")[:-4] + b"\x00\x00\x00\x00")
    h.client.handle_data(_data_indication(PEER, b"x"), ("192.0.2.99", 3478), h.now)
    h.client.handle_data(b"x", SERVER, h.now, local=("192.0.2.10", 1))
    stats = h.client.stats

    assert h.events() == []
    assert stats.dropped_malformed_channel_data == 1
    assert stats.dropped_unknown_channel == 1
    assert stats.dropped_malformed_stun == 2
    assert stats.dropped_wrong_source == 1
    assert stats.dropped_unknown_socket == 1


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_handle_data_never_raises(harness: Harness, chunks: list[bytes]) -> None:
    for transport in (TransportType.UDP, TransportType.TCP):
        h = harness(transport)
        h.transmits()
        for chunk in chunks:
            h.feed(chunk)
            h.events()


# 437 Allocation Mismatch.


def test_mismatch_reallocates_from_new_socket(harness: Harness) -> None:
    h = allocated(harness)
    _bind(h, PEER)
    h.client.create_permission(PEER_B, h.now)
    h.feed(h.server.success(h.request(Method.CREATE_PERMISSION)))
    h.events()

    h.client.refresh(h.now)
    refresh = h.request(Method.REFRESH)
    h.feed(h.server.error(refresh, 437, "Allocation Mismatch"))
    events = h.events()

    assert events == [
        AllocateSocket(SocketPurpose.REALLOCATE, TransportType.UDP, SERVER)
    ]
    assert not h.client.allocated
    h.client.send_to(PEER, b"lost", h.now)
    assert h.client.stats.dropped_while_reallocating == 1

    new_local = ("192.0.2.10", 50002)
    h.client.socket_allocated(new_local, h.now)
    transmits = h.transmits()
    assert [t.source for t in transmits] == [new_local]
    allocate = parse(transmits[0].data)
    # The agent of the new socket starts without the old nonce.
    h.feed(h.server.challenge(allocate), local=new_local)
    second = h.request(Method.ALLOCATE)
    new_relayed = ("192.0.2.1", 49999)
    h.feed(h.server.allocate_success(second, relayed=[new_relayed]), local=new_local)
    events = h.events()

    created = of_type(events, AllocationCreated)
    assert created == [
        AllocationCreated(
            relayed_addresses=(new_relayed,),
            mapped_address=("198.51.100.7", 61000),
            lifetime=600,
            local_address=new_local,
        )
    ]
    reinstalled = {m.method for m in h.messages()}
    assert reinstalled == {Method.CHANNEL_BIND, Method.CREATE_PERMISSION}
    assert h.client.stats.reallocations == 1


def test_mismatch_on_allocate_asks_for_socket(harness: Harness) -> None:
    h = harness()
    first = h.request(Method.ALLOCATE)
    h.feed(h.server.challenge(first))
    second = h.request(Method.ALLOCATE)

    h.feed(h.server.error(second, 437, "Allocation Mismatch"))

    assert h.events() == [
        AllocateSocket(SocketPurpose.REALLOCATE, TransportType.UDP, SERVER)
    ]


def test_mismatch_gives_up_after_three_reallocations(harness: Harness) -> None:
    h = harness()
    for attempt in range(4):
        first = h.request(Method.ALLOCATE)
        h.feed(h.server.challenge(first), local=h.client.local_address)
        second = h.request(Method.ALLOCATE)
        h.feed(
            h.server.error(second, 437, "Allocation Mismatch"),
            local=h.client.local_address,
        )
        events = h.events()
        if attempt < 3:
            assert len(of_type(events, AllocateSocket)) == 1
            h.client.socket_allocated(("192.0.2.10", 50010 + attempt), h.now)

    assert len(events) == 1
    assert isinstance(events[0], AllocationFailed)
    assert events[0].code == ErrorCode.ALLOCATION_MISMATCH


def test_socket_failed_ends_allocation(harness: Harness) -> None:
    h = allocated(harness)
    h.client.refresh(h.now)
    h.feed(h.server.error(h.request(Method.REFRESH), 437, "Allocation Mismatch"))
    h.events()

    h.client.socket_failed(h.now, reason="no ports left")

    events = h.events()
    assert len(events) == 1
    assert isinstance(events[0], AllocationFailed)
    assert "no ports left" in events[0].reason


def test_socket_allocated_without_request_rejected(harness: Harness) -> None:
    h = allocated(harness)

    with pytest.raises(TurnUsageError, match="without an AllocateSocket"):
        h.client.socket_allocated(("192.0.2.10", 1), h.now)


# TCP stream handling.


def test_tcp_frames_split_and_joined(harness: Harness) -> None:
    h = harness(TransportType.TCP)
    h.client.create_permission(PEER, h.now)
    first = h.request(Method.ALLOCATE)
    challenge = h.server.challenge(first)

    for index in range(len(challenge)):
        h.feed(challenge[index : index + 1])
    second = h.request(Method.ALLOCATE)
    response = h.server.allocate_success(second)
    indication = _data_indication(PEER, b"early")
    joined = response + indication
    h.feed(joined[:7])
    h.feed(joined[7:])

    events = h.events()
    assert of_type(events, AllocationCreated)
    assert of_type(events, PeerData) == [PeerData(PEER, b"early")]


def test_tcp_truncated_frame_counted_on_close(harness: Harness) -> None:
    h = harness(TransportType.TCP)
    h.allocate()

    h.feed(_data_indication(PEER, b"cut")[:10])
    h.client.connection_closed(LOCAL, h.now, "reset")

    events = h.events()
    assert h.client.stats.dropped_truncated_frames == 1
    assert len(events) == 1
    assert isinstance(events[0], AllocationFailed)
    assert "control connection closed" in events[0].reason


def test_tcp_framing_error_ends_allocation(harness: Harness) -> None:
    h = harness(TransportType.TCP)
    h.allocate()

    h.feed(b"\xff\xff\xff\xff")

    events = h.events()
    assert h.client.stats.dropped_framing_errors == 1
    assert len(events) == 1
    assert isinstance(events[0], AllocationFailed)


# RFC 6062.


def _tcp_allocated(harness: Harness) -> ClientHarness:
    options = AllocationOptions(relay_transport=TransportProtocol.TCP)
    h = harness(TransportType.TCP, options)
    h.allocate()
    h.client.create_permission(PEER, h.now)
    h.feed(h.server.success(h.request(Method.CREATE_PERMISSION)))
    h.events()
    return h


def _connection_id(value: int) -> Callable[[MessageBuilder], None]:
    def build(builder: MessageBuilder) -> None:
        builder.add_u32(AttributeType.CONNECTION_ID, value)

    return build


def test_connect_binds_data_connection(harness: Harness) -> None:
    h = _tcp_allocated(harness)

    h.client.connect(PEER, h.now)
    connect = h.request(Method.CONNECT)
    h.feed(h.server.success(connect, _connection_id(77)))
    events = h.events()

    assert connect.xor_peer_address() == PEER
    assert events == [
        AllocateSocket(
            SocketPurpose.PEER_CONNECTION,
            TransportType.TCP,
            SERVER,
            connection_id=77,
            peer=PEER,
        )
    ]
    data_local = ("192.0.2.10", 50100)
    h.client.socket_allocated(data_local, h.now, connection_id=77)
    frames = h.frames()
    assert [source for source, _ in frames] == [data_local]
    bind = parse(frames[0][1])
    assert bind.method == Method.CONNECTION_BIND
    assert h.server.verify(bind)

    # The peer's first bytes follow the response in the same read.
    h.feed(h.server.success(bind) + b"raw peer bytes", local=data_local)
    events = h.events()
    assert events == [
        PeerConnected(PEER, 77, data_local),
        PeerData(PEER, b"raw peer bytes"),
    ]

    h.client.send_to(PEER, b"to peer", h.now)
    transmits = h.transmits()
    assert [(t.source, t.data) for t in transmits] == [(data_local, b"to peer")]

    h.feed(b"\x00\x01 more, not STUN", local=data_local)
    assert h.events() == [PeerData(PEER, b"\x00\x01 more, not STUN")]

    h.client.connection_closed(data_local, h.now, "peer closed")
    assert h.events() == [PeerDisconnected(PEER, 77, "peer closed")]
    with pytest.raises(TurnUsageError, match="no data connection"):
        h.client.send_to(PEER, b"x", h.now)


def test_connection_attempt_asks_for_socket(harness: Harness) -> None:
    h = _tcp_allocated(harness)
    builder = MessageBuilder(
        message_type(Method.CONNECTION_ATTEMPT, MessageClass.INDICATION),
        new_transaction_id(),
    )
    builder.add_xor_peer_address(*PEER)
    builder.add_u32(AttributeType.CONNECTION_ID, 9)

    h.feed(builder.finish(fingerprint=True))
    events = h.events()

    assert events == [
        AllocateSocket(
            SocketPurpose.PEER_CONNECTION,
            TransportType.TCP,
            SERVER,
            connection_id=9,
            peer=PEER,
        )
    ]


def test_connect_failure_reported(harness: Harness) -> None:
    h = _tcp_allocated(harness)

    h.client.connect(PEER, h.now)
    connect = h.request(Method.CONNECT)
    h.feed(h.server.error(connect, 447, "Connection Timeout or Failure"))

    assert h.events() == [
        PeerConnectFailed(PEER, None, 447, "Connection Timeout or Failure")
    ]


def test_connection_bind_failure_reported(harness: Harness) -> None:
    h = _tcp_allocated(harness)
    h.client.connect(PEER, h.now)
    h.feed(h.server.success(h.request(Method.CONNECT), _connection_id(5)))
    h.events()
    data_local = ("192.0.2.10", 50101)
    h.client.socket_allocated(data_local, h.now, connection_id=5)
    bind = parse(h.frames()[0][1])

    h.feed(h.server.error(bind, 400, "Bad Request"), local=data_local)

    assert h.events() == [PeerConnectFailed(PEER, 5, 400, "Bad Request")]


def test_connect_on_udp_allocation_rejected(harness: Harness) -> None:
    h = allocated(harness)

    with pytest.raises(TurnUsageError, match="TCP allocation"):
        h.client.connect(PEER, h.now)


# TLS in memory.


def test_tls_allocation_in_memory(
    harness: Harness,
    tls_certificate: Certificate,
    tls_server: Callable[[], MemoryTlsServer],
) -> None:
    server = tls_server()
    h = harness(
        TransportType.TLS,
        tls_server=server,
        ssl_context=tls_certificate.client_context(),
        server_hostname="localhost",
    )

    events = h.allocate()
    _bind(h, PEER)
    h.events()
    h.client.send_to(PEER, b"x" * 5, h.now)
    frames = h.frames()

    assert of_type(events, AllocationCreated)
    assert server.established
    # The deframer strips the stream padding of ChannelData.
    assert [f for _, f in frames] == [b"\x40\x00\x00\x05xxxxx"]


def test_tls_wrong_host_name_fails(
    harness: Harness,
    tls_certificate: Certificate,
    tls_server: Callable[[], MemoryTlsServer],
) -> None:
    server = tls_server()
    h = harness(
        TransportType.TLS,
        tls_server=server,
        ssl_context=tls_certificate.client_context(),
        server_hostname="other.example",
    )

    h.frames()
    events = h.events()

    assert len(events) == 1
    assert isinstance(events[0], AllocationFailed)
    assert "certificate verification failed" in events[0].reason


def test_tls_default_context_checks_certificate() -> None:
    from rice_fast.turn._tls import default_context

    context = default_context()

    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_create_permission_sent_before_queued_send(harness: Harness) -> None:
    h = allocated(harness)

    h.client.create_permission(PEER, h.now)
    h.client.send_to(PEER, b"first datagram", h.now)
    sent = h.messages()

    # The server drops a Send indication that arrives before the permission,
    # so the request must reach the wire first.
    assert [(m.method, m.is_request) for m in sent] == [
        (Method.CREATE_PERMISSION, True),
        (Method.SEND, False),
    ]
