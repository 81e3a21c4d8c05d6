"""StunServer on its own, and StunAgent against StunServer in-process.

The in-process network moves every transmit from one side to the other at
the same virtual time, so a whole exchange with its 401 or 438 retries
runs in one ``exchange`` call.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rice_fast.stun import Message, MessageBuilder, Method, parse
from rice_fast.stun._constants import (
    AttributeType,
    ErrorCode,
    MessageClass,
    message_type,
)
from rice_fast.stun.agent import StunAgent, StunConfig
from rice_fast.stun.attributes import Software, UnknownAttribute
from rice_fast.stun.auth import (
    AuthResult,
    LongTermAuthenticator,
    ShortTermAuthenticator,
)
from rice_fast.stun.credentials import (
    NO_FEATURES,
    LongTermCredentials,
    NonceIssuer,
    PasswordAlgorithm,
    SecurityFeatures,
    ShortTermCredentials,
    userhash,
)
from rice_fast.stun.events import (
    StunEvent,
    TransactionFailed,
    TransactionSucceeded,
    TransactionTimedOut,
)
from rice_fast.stun.server import UNAUTHENTICATED_ALLOWANCE, StunServer
from rice_fast.stun.transport import Address, TransportType, WaitUntil

CLIENT: Address = ("192.0.2.10", 50000)
SERVER: Address = ("192.0.2.1", 3478)
REALM = "example.org"
USERS = {"alice": "alice-password", "bob": "bob-password"}
ALICE = LongTermCredentials("alice", "alice-password", REALM)
LONG_SOFTWARE = "rice-fast test server " + "x" * 100


def request(
    method: int = Method.BINDING,
    *,
    attributes: tuple[tuple[int, bytes], ...] = (),
    fingerprint: bool = True,
    message_class: int = MessageClass.REQUEST,
) -> bytes:
    builder = MessageBuilder(message_type(method, message_class), b"\x07" * 12)
    for attr_type, value in attributes:
        builder.add(attr_type, value)
    data: bytes = builder.finish(None, fingerprint=fingerprint)
    return data


def answer(
    server: StunServer,
    data: bytes,
    *,
    transport: TransportType = TransportType.UDP,
    remote: Address = CLIENT,
    now: float = 0.0,
) -> Message | None:
    """Feed one message to the server and return its single response."""
    server.handle_data(transport, SERVER, remote, data, now)
    transmit = server.poll_transmit(now)
    if transmit is None:
        return None
    assert server.poll_transmit(now) is None
    assert transmit.transport is transport
    assert transmit.source == SERVER
    assert transmit.destination == remote
    return parse(transmit.data)


class Network:
    """Carries transmits between one agent and one server, and records them."""

    def __init__(self, agent: StunAgent, server: StunServer) -> None:
        self.agent = agent
        self.server = server
        self.requests: list[Message] = []
        self.responses: list[Message] = []

    def exchange(self, now: float) -> list[StunEvent]:
        """Deliver everything queued at ``now``; return the agent's events."""
        for _ in range(50):
            moved = False
            while (transmit := self.agent.poll_transmit(now)) is not None:
                moved = True
                self.requests.append(parse(transmit.data))
                self.server.handle_data(
                    transmit.transport,
                    transmit.destination,
                    transmit.source,
                    transmit.data,
                    now,
                )
            while (transmit := self.server.poll_transmit(now)) is not None:
                moved = True
                self.responses.append(parse(transmit.data))
                self.agent.handle_data(transmit.data, transmit.source, now)
            if not moved:
                break
        found: list[StunEvent] = []
        while True:
            result = self.agent.poll(now)
            if result is None or isinstance(result, WaitUntil):
                return found
            found.append(result)


def network(
    authenticator: LongTermAuthenticator | ShortTermAuthenticator | None = None,
    *,
    transport: TransportType = TransportType.UDP,
    config: StunConfig | None = None,
    software: str | None = None,
) -> Network:
    agent = StunAgent(transport, CLIENT, config=config)
    return Network(agent, StunServer(authenticator=authenticator, software=software))


def long_term_server(**kwargs: object) -> LongTermAuthenticator:
    return LongTermAuthenticator(REALM, USERS, **kwargs)  # type: ignore[arg-type]


# The server alone.


def test_binding_success_udp() -> None:
    server = StunServer()

    response = answer(server, request(fingerprint=False))

    assert response is not None
    assert response.is_success
    assert response.method == Method.BINDING
    assert response.transaction_id == b"\x07" * 12
    assert response.xor_mapped_address() == CLIENT
    assert response.check_fingerprint()
    assert response.attribute_types() == [
        AttributeType.XOR_MAPPED_ADDRESS,
        AttributeType.FINGERPRINT,
    ]
    assert server.stats.requests == 1
    assert server.stats.success_responses == 1


def test_binding_success_ipv6() -> None:
    server = StunServer()
    remote = ("2001:db8::5", 61000)

    response = answer(server, request(), remote=remote)

    assert response is not None
    assert response.xor_mapped_address() == remote


@pytest.mark.parametrize("transport", [TransportType.TCP, TransportType.TLS])
def test_fingerprint_follows_request_over_tcp(transport: TransportType) -> None:
    server = StunServer()

    plain = answer(server, request(fingerprint=False), transport=transport)
    signed = answer(server, request(fingerprint=True), transport=transport)

    assert plain is not None
    assert signed is not None
    assert not plain.has_fingerprint
    assert signed.check_fingerprint()


def test_software_included_when_small() -> None:
    server = StunServer(software="rice")

    response = answer(server, request())

    assert response is not None
    assert response.software() == "rice"


def test_unknown_comprehension_required_gets_420() -> None:
    server = StunServer()
    data = request(attributes=((0x0031, b"abcd"), (0x0033, b""), (0x0031, b"ef")))

    response = answer(server, data)

    assert response is not None
    assert response.is_error
    assert response.error_code() == (420, "Unknown Attribute")
    assert response.unknown_attributes() == [0x0031, 0x0033]
    assert server.stats.unknown_attributes == 1
    assert server.stats.error_responses == 1


def test_unknown_comprehension_optional_ignored() -> None:
    server = StunServer()

    response = answer(server, request(attributes=((0x8031, b"abcd"),)))

    assert response is not None
    assert response.is_success


def test_known_attributes_configurable() -> None:
    server = StunServer(known_attributes={0x0031})

    response = answer(server, request(attributes=((0x0031, b"abcd"),)))

    assert response is not None
    assert response.is_success


def test_unserved_method_gets_400() -> None:
    server = StunServer()

    response = answer(server, request(Method.ALLOCATE))

    assert response is not None
    assert response.method == Method.ALLOCATE
    assert response.error_code() == (400, "Bad Request")
    assert server.stats.bad_requests == 1


def test_indications_and_responses_ignored() -> None:
    server = StunServer()

    assert answer(server, request(message_class=MessageClass.INDICATION)) is None
    assert answer(server, request(message_class=MessageClass.SUCCESS)) is None
    assert answer(server, request(message_class=MessageClass.ERROR)) is None

    assert server.stats.ignored_indications == 1
    assert server.stats.ignored_responses == 2
    assert server.stats.requests == 0


def test_malformed_dropped_and_counted() -> None:
    server = StunServer()
    bad_fingerprint = bytearray(request())
    bad_fingerprint[-1] ^= 1

    assert answer(server, b"") is None
    assert answer(server, b"\x00\x01\x00\x00" + b"\x00" * 16) is None
    assert answer(server, request()[:-2]) is None
    assert answer(server, bytes(bad_fingerprint)) is None

    assert server.stats.dropped_malformed == 3
    assert server.stats.dropped_bad_fingerprint == 1
    assert server.stats.requests == 0


def test_transmit_queue_bounded() -> None:
    server = StunServer(max_queued_transmits=2)

    for _ in range(3):
        server.handle_data(TransportType.UDP, SERVER, CLIENT, request(), 0.0)

    assert server.poll_transmit(0.0) is not None
    assert server.poll_transmit(0.0) is not None
    assert server.poll_transmit(0.0) is None
    assert server.stats.dropped_queue_full == 1


def test_software_too_long_rejected() -> None:
    with pytest.raises(ValueError, match="software"):
        StunServer(software="x" * 128)


# Amplification: a response to an unauthenticated request carries only the
# required attributes, plus SOFTWARE when the response stays within the
# request size plus UNAUTHENTICATED_ALLOWANCE bytes.

AMPLIFICATION_CASES: list[tuple[str, bytes, Address]] = [
    ("minimal", request(fingerprint=False), CLIENT),
    ("minimal ipv6", request(fingerprint=False), ("2001:db8::5", 61000)),
    ("fingerprint", request(), CLIENT),
    ("unknown attribute", request(attributes=((0x0031, b""),)), CLIENT),
    ("unserved method", request(Method.ALLOCATE, fingerprint=False), CLIENT),
    ("padded", request(attributes=((0x8031, b"p" * 160),)), CLIENT),
]


@pytest.mark.parametrize(
    ("data", "remote"),
    [(data, remote) for _, data, remote in AMPLIFICATION_CASES],
    ids=[name for name, _, _ in AMPLIFICATION_CASES],
)
def test_amplification_bound(data: bytes, remote: Address) -> None:
    bare = answer(StunServer(), data, remote=remote)
    chatty = answer(StunServer(software=LONG_SOFTWARE), data, remote=remote)
    assert bare is not None
    assert chatty is not None

    assert chatty.size <= max(len(data) + UNAUTHENTICATED_ALLOWANCE, bare.size)
    if chatty.has(AttributeType.SOFTWARE):
        assert chatty.size <= len(data) + UNAUTHENTICATED_ALLOWANCE
    else:
        assert chatty.size == bare.size


def test_amplification_minimal_request_sizes() -> None:
    server = StunServer(software=LONG_SOFTWARE)

    ipv4 = answer(server, request(fingerprint=False))
    ipv6 = answer(server, request(fingerprint=False), remote=("2001:db8::5", 1))

    # Header 20, XOR-MAPPED-ADDRESS 12 or 24, FINGERPRINT 8.
    assert ipv4 is not None
    assert ipv6 is not None
    assert ipv4.size == 40
    assert ipv6.size == 52


def test_amplification_software_kept_for_large_request() -> None:
    server = StunServer(software=LONG_SOFTWARE)

    response = answer(server, request(attributes=((0x8031, b"p" * 160),)))

    assert response is not None
    assert response.software() == LONG_SOFTWARE


def test_amplification_challenge_without_software() -> None:
    server = StunServer(software=LONG_SOFTWARE, authenticator=long_term_server())
    data = request(fingerprint=False)

    response = answer(server, data)

    assert response is not None
    assert response.error_code() == (401, "Unauthenticated")
    assert not response.has(AttributeType.SOFTWARE)
    # Required: ERROR-CODE, REALM, NONCE, PASSWORD-ALGORITHMS, FINGERPRINT.
    assert response.attribute_types() == [
        AttributeType.ERROR_CODE,
        AttributeType.REALM,
        AttributeType.NONCE,
        AttributeType.PASSWORD_ALGORITHMS,
        AttributeType.FINGERPRINT,
    ]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_server_garbage_never_raises(data: bytes) -> None:
    servers = [
        StunServer(software="rice", authenticator=long_term_server()),
        StunServer(authenticator=ShortTermAuthenticator({"a:b": "password"})),
        StunServer(),
    ]

    for server in servers:
        server.handle_data(TransportType.UDP, SERVER, CLIENT, data, 0.0)
        server.poll_transmit(0.0)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_server_mutated_request_never_raises(data: st.DataObject) -> None:
    server = StunServer(software="rice", authenticator=long_term_server())
    net = network(long_term_server())
    net.agent.send_request(Method.BINDING, SERVER, 0.0, credentials=ALICE)
    net.exchange(0.0)
    signed = bytearray(net.requests[-1].data)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(signed) - 1))
        signed[index] = data.draw(st.integers(0, 255))

    server.handle_data(TransportType.UDP, SERVER, CLIENT, bytes(signed), 0.0)
    server.poll_transmit(0.0)


# StunAgent against StunServer.


def test_open_binding_round_trip() -> None:
    net = network(software="rice")
    transaction_id = net.agent.send_request(Method.BINDING, SERVER, 0.0)

    (event,) = net.exchange(0.0)

    assert isinstance(event, TransactionSucceeded)
    assert event.transaction_id == transaction_id
    assert event.response.xor_mapped_address() == CLIENT
    assert event.response.software() == "rice"


def test_short_term_round_trip() -> None:
    credentials = ShortTermCredentials("server:client", "ice-password-1234")
    net = network(ShortTermAuthenticator({"server:client": "ice-password-1234"}))

    net.agent.send_request(Method.BINDING, SERVER, 0.0, credentials=credentials)
    (event,) = net.exchange(0.0)

    assert isinstance(event, TransactionSucceeded)
    assert event.response.has_message_integrity
    assert event.response.check_integrity(credentials.key)


def test_short_term_wrong_password_udp_times_out() -> None:
    credentials = ShortTermCredentials("server:client", "wrong")
    net = network(ShortTermAuthenticator({"server:client": "ice-password-1234"}))

    net.agent.send_request(Method.BINDING, SERVER, 0.0, credentials=credentials)
    assert net.exchange(0.0) == []

    # RFC 8489 §9.1.4: the unsigned 401 is discarded over UDP.
    assert net.responses[0].error_code() == (401, "Unauthenticated")
    assert net.agent.stats.dropped_bad_integrity == 1
    assert isinstance(net.exchange(39.5)[0], TransactionTimedOut)


def test_short_term_wrong_password_tcp_fails() -> None:
    credentials = ShortTermCredentials("server:client", "wrong")
    net = network(
        ShortTermAuthenticator({"server:client": "ice-password-1234"}),
        transport=TransportType.TCP,
    )

    net.agent.send_request(Method.BINDING, SERVER, 0.0, credentials=credentials)
    (event,) = net.exchange(0.0)

    assert isinstance(event, TransactionFailed)
    assert event.code == 401


def test_long_term_sha256_round_trip() -> None:
    net = network(long_term_server())
    transaction_id = net.agent.send_request(
        Method.BINDING, SERVER, 0.0, credentials=ALICE
    )

    (event,) = net.exchange(0.0)

    assert isinstance(event, TransactionSucceeded)
    assert event.transaction_id == transaction_id
    first, retry = net.requests
    assert not first.has_integrity
    assert not first.has(AttributeType.USERNAME)
    assert retry.username() == "alice"
    assert retry.realm() == REALM
    assert retry.has_message_integrity_sha256
    assert not retry.has_message_integrity
    assert retry.raw(AttributeType.PASSWORD_ALGORITHM) == b"\x00\x02\x00\x00"
    assert retry.raw(AttributeType.PASSWORD_ALGORITHMS) == net.responses[0].raw(
        AttributeType.PASSWORD_ALGORITHMS
    )
    assert retry.transaction_id != first.transaction_id
    assert event.response.has_message_integrity_sha256
    assert net.agent.stats.auth_retries == 1


def test_long_term_sha256_userhash_round_trip() -> None:
    net = network(long_term_server(username_anonymity=True))

    net.agent.send_request(Method.BINDING, SERVER, 0.0, credentials=ALICE)
    (event,) = net.exchange(0.0)

    assert isinstance(event, TransactionSucceeded)
    retry = net.requests[1]
    assert not retry.has(AttributeType.USERNAME)
    assert retry.raw(AttributeType.USERHASH) == userhash("alice", REALM)
    assert retry.has_message_integrity_sha256


def test_long_term_md5_offer_round_trip() -> None:
    net = network(long_term_server(algorithms=(PasswordAlgorithm.MD5,)))

    net.agent.send_request(Method.BINDING, SERVER, 0.0, credentials=ALICE)
    (event,) = net.exchange(0.0)

    assert isinstance(event, TransactionSucceeded)
    retry = net.requests[1]
    assert retry.has_message_integrity
    assert not retry.has_message_integrity_sha256
    assert retry.raw(AttributeType.PASSWORD_ALGORITHM) == b"\x00\x01\x00\x00"
    assert event.response.has_message_integrity


def test_long_term_rfc5389_server_round_trip() -> None:
    # No nonce cookie: the agent uses MD5 and MESSAGE-INTEGRITY without
    # PASSWORD-ALGORITHM(S), as RFC 5389 servers such as coturn expect.
    authenticator = long_term_server(
        algorithms=(PasswordAlgorithm.MD5,),
        nonce_issuer=NonceIssuer(features=NO_FEATURES),
    )
    net = network(authenticator)

    net.agent.send_request(Method.BINDING, SERVER, 0.0, credentials=ALICE)
    (event,) = net.exchange(0.0)

    assert isinstance(event, TransactionSucceeded)
    assert not net.responses[0].has(AttributeType.PASSWORD_ALGORITHMS)
    retry = net.requests[1]
    assert retry.username() == "alice"
    assert retry.has_message_integrity
    assert not retry.has(AttributeType.PASSWORD_ALGORITHM)
    assert not retry.has(AttributeType.PASSWORD_ALGORITHMS)


def test_long_term_realm_differs_from_credentials() -> None:
    credentials = LongTermCredentials("alice", "alice-password", "other.example")
    net = network(long_term_server())

    net.agent.send_request(Method.BINDING, SERVER, 0.0, credentials=credentials)
    (event,) = net.exchange(0.0)

    # The key is derived with the realm from the challenge.
    assert isinstance(event, TransactionSucceeded)


def test_long_term_challenge_remembered() -> None:
    net = network(long_term_server())
    net.agent.send_request(Method.BINDING, SERVER, 0.0, credentials=ALICE)
    net.exchange(0.0)

    net.agent.send_request(Method.BINDING, SERVER, 1.0, credentials=ALICE)
    (event,) = net.exchange(1.0)

    assert isinstance(event, TransactionSucceeded)
    assert len(net.requests) == 3
    assert net.requests[2].has_message_integrity_sha256
    assert net.server.stats.unauthenticated == 1
    assert net.agent.stats.auth_retries == 1


def test_long_term_stale_nonce_retried() -> None:
    issuer = NonceIssuer(lifetime=10.0, features=SecurityFeatures.PASSWORD_ALGORITHMS)
    net = network(long_term_server(nonce_issuer=issuer))
    net.agent.send_request(Method.BINDING, SERVER, 0.0, credentials=ALICE)
    net.exchange(0.0)

    transaction_id = net.agent.send_request(
        Method.BINDING, SERVER, 20.0, credentials=ALICE
    )
    (event,) = net.exchange(20.0)

    assert isinstance(event, TransactionSucceeded)
    assert event.transaction_id == transaction_id
    assert net.responses[2].error_code() == (438, "Stale Nonce")
    assert net.requests[3].nonce() == net.responses[2].nonce()
    assert net.server.stats.stale_nonces == 1
    assert net.agent.stats.auth_retries == 2


class AlwaysStale:
    """An authenticator that answers every request with 438."""

    def __init__(self) -> None:
        self.inner = long_term_server()

    def authenticate(
        self, message: Message, remote: tuple[str, int], now: float
    ) -> AuthResult:
        return self.inner.challenge(ErrorCode.STALE_NONCE, remote, now)


def test_long_term_auth_retries_bounded() -> None:
    net = Network(
        StunAgent(TransportType.UDP, CLIENT, config=StunConfig(max_auth_retries=3)),
        StunServer(authenticator=AlwaysStale()),
    )

    net.agent.send_request(Method.BINDING, SERVER, 0.0, credentials=ALICE)
    (event,) = net.exchange(0.0)

    assert isinstance(event, TransactionFailed)
    assert event.code == 438
    assert len(net.requests) == 4
    assert net.agent.stats.auth_retries == 3


def test_long_term_wrong_password_fails_401() -> None:
    wrong = LongTermCredentials("alice", "not-the-password", REALM)
    net = network(long_term_server())

    transaction_id = net.agent.send_request(
        Method.BINDING, SERVER, 0.0, credentials=wrong
    )
    (event,) = net.exchange(0.0)

    assert isinstance(event, TransactionFailed)
    assert event.transaction_id == transaction_id
    assert event.code == 401
    assert len(net.requests) == 2
    assert net.agent.pending_transactions() == 0


def test_long_term_wrong_password_with_cached_challenge() -> None:
    net = network(long_term_server())
    net.agent.send_request(Method.BINDING, SERVER, 0.0, credentials=ALICE)
    net.exchange(0.0)
    wrong = LongTermCredentials("alice", "not-the-password", REALM)

    net.agent.send_request(Method.BINDING, SERVER, 1.0, credentials=wrong)
    (event,) = net.exchange(1.0)

    # The cached nonce may be the reason for a 401, so one retry is made.
    assert isinstance(event, TransactionFailed)
    assert event.code == 401
    assert len(net.requests) == 4


def test_long_term_unknown_user_fails_401() -> None:
    stranger = LongTermCredentials("mallory", "alice-password", REALM)
    net = network(long_term_server())

    net.agent.send_request(Method.BINDING, SERVER, 0.0, credentials=stranger)
    (event,) = net.exchange(0.0)

    assert isinstance(event, TransactionFailed)
    assert event.code == 401


def test_420_through_agent() -> None:
    net = network()

    net.agent.send_request(
        Method.BINDING,
        SERVER,
        0.0,
        attributes=[UnknownAttribute(0x0031, b"abcd"), Software("client")],
    )
    (event,) = net.exchange(0.0)

    assert isinstance(event, TransactionFailed)
    assert event.code == 420
    assert event.response.unknown_attributes() == [0x0031]


def test_420_after_long_term_auth_is_signed() -> None:
    net = network(long_term_server())

    net.agent.send_request(
        Method.BINDING,
        SERVER,
        0.0,
        attributes=[UnknownAttribute(0x0031, b"abcd")],
        credentials=ALICE,
    )
    (event,) = net.exchange(0.0)

    assert isinstance(event, TransactionFailed)
    assert event.code == 420
    assert event.response.has_message_integrity_sha256


@pytest.mark.parametrize("transport", [TransportType.TCP, TransportType.TLS])
def test_long_term_over_reliable_transport(transport: TransportType) -> None:
    net = network(long_term_server(), transport=transport)

    net.agent.send_request(Method.BINDING, SERVER, 0.0, credentials=ALICE)
    (event,) = net.exchange(0.0)

    assert isinstance(event, TransactionSucceeded)
    assert net.agent.stats.retransmits == 0
    assert all(response.has_fingerprint for response in net.responses)


def test_lost_challenge_retransmitted() -> None:
    net = network(long_term_server())
    net.agent.send_request(Method.BINDING, SERVER, 0.0, credentials=ALICE)
    lost = net.agent.poll_transmit(0.0)
    assert lost is not None

    assert net.exchange(0.0) == []
    (event,) = net.exchange(0.5)

    assert isinstance(event, TransactionSucceeded)
    assert net.agent.stats.retransmits == 1


@pytest.mark.parametrize(
    ("arguments", "error", "named"),
    [
        ({"software": b"rice"}, TypeError, "software"),
        ({"software": 5}, TypeError, "software"),
        ({"authenticator": "secret"}, TypeError, "authenticator"),
        ({"authenticator": {"alice": "pw"}}, TypeError, "authenticator"),
        ({"known_attributes": 0x7FFE}, TypeError, "known_attributes"),
        ({"known_attributes": "abc"}, TypeError, "known_attributes"),
        ({"known_attributes": [1.5]}, TypeError, "known_attributes"),
        ({"known_attributes": [0x10000]}, ValueError, "known_attributes"),
        ({"max_queued_transmits": 10.0}, TypeError, "max_queued_transmits"),
        ({"max_queued_transmits": "10"}, TypeError, "max_queued_transmits"),
        ({"max_queued_transmits": 0}, ValueError, "max_queued_transmits"),
    ],
)
def test_server_rejects_wrong_argument(
    arguments: dict[str, object], error: type[Exception], named: str
) -> None:
    with pytest.raises(error, match=named):
        StunServer(**arguments)  # type: ignore[arg-type]


def test_server_accepts_known_attribute_list() -> None:
    server = StunServer(known_attributes=[0x7FFE])

    server.handle_data(
        TransportType.UDP,
        SERVER,
        CLIENT,
        request(attributes=((0x7FFE, b"\x00\x00\x00\x00"),)),
        0.0,
    )

    transmit = server.poll_transmit(0.0)
    assert transmit is not None
    assert parse(transmit.data).is_success


def test_server_handle_data_rejects_text_transport() -> None:
    server = StunServer()

    with pytest.raises(TypeError, match="transport"):
        server.handle_data("udp", SERVER, CLIENT, request(), 0.0)  # type: ignore[arg-type]
