"""StunAgent: retransmission schedule, response matching, cancellation, RTT.

Every test runs on a virtual clock: ``now`` is a plain float that the test
advances to the deadlines that ``poll`` returns.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rice_fast.stun import Message, MessageBuilder, Method, parse
from rice_fast.stun._constants import AttributeType, MessageClass, message_type
from rice_fast.stun.agent import StunAgent, StunConfig
from rice_fast.stun.attributes import Priority, Software
from rice_fast.stun.credentials import LongTermCredentials, ShortTermCredentials
from rice_fast.stun.events import (
    StunEvent,
    TransactionCancelled,
    TransactionFailed,
    TransactionSucceeded,
    TransactionTimedOut,
)
from rice_fast.stun.transport import Address, Transmit, TransportType, WaitUntil

LOCAL: Address = ("192.0.2.1", 40000)
SERVER: Address = ("198.51.100.7", 3478)
OTHER: Address = ("198.51.100.8", 3478)
CREDENTIALS = ShortTermCredentials("bob:alice", "a-short-term-password")

# The RFC 8489 §6.2.1 example with the default RTO of 500 ms: seven
# transmissions, then 16 * RTO (8 s) after the last one.
UDP_SCHEDULE = [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
UDP_TIMEOUT = 39.5


def drain(agent: StunAgent, now: float) -> list[Transmit]:
    """Return every transmit the agent has queued."""
    transmits = []
    while (transmit := agent.poll_transmit(now)) is not None:
        transmits.append(transmit)
    return transmits


def events(agent: StunAgent, now: float) -> list[StunEvent]:
    """Return every event ready at ``now``."""
    found: list[StunEvent] = []
    while True:
        result = agent.poll(now)
        if result is None or isinstance(result, WaitUntil):
            return found
        found.append(result)


def run_to_end(
    agent: StunAgent, limit: int = 100
) -> tuple[list[float], float, StunEvent]:
    """Follow WaitUntil deadlines until the first event.

    Returns the send times, the time of the event and the event.
    """
    now = 0.0
    sends: list[float] = []
    for _ in range(limit):
        sends.extend(now for _ in drain(agent, now))
        result = agent.poll(now)
        if isinstance(result, StunEvent):
            return sends, now, result
        assert isinstance(result, WaitUntil), result
        assert result.deadline > now
        now = result.deadline
    raise AssertionError("no event after the step limit")


def response_to(
    request: bytes,
    *,
    message_class: int = MessageClass.SUCCESS,
    key: ShortTermCredentials | None = None,
    error: int | None = None,
    transaction_id: bytes | None = None,
    fingerprint: bool = True,
) -> bytes:
    """Build a response to ``request`` with XOR-MAPPED-ADDRESS of LOCAL."""
    parsed = parse(request)
    builder = MessageBuilder(
        message_type(parsed.method, message_class),
        transaction_id or parsed.transaction_id,
    )
    if error is not None:
        builder.add_error_code(error, "test error")
    else:
        builder.add_xor_mapped_address(*LOCAL)
    data: bytes = builder.finish(
        key.key if key is not None else None, fingerprint=fingerprint
    )
    return data


def test_udp_retransmission_schedule_default() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    transaction_id = agent.send_request(Method.BINDING, SERVER, 0.0)

    sends, at, event = run_to_end(agent)

    assert sends == UDP_SCHEDULE
    assert at == UDP_TIMEOUT
    assert event == TransactionTimedOut(transaction_id, SERVER)
    assert agent.stats.requests_sent == 1
    assert agent.stats.retransmits == 6
    assert agent.stats.timeouts == 1
    assert agent.poll(at) is None


def test_udp_retransmissions_repeat_same_bytes() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0)
    first = drain(agent, 0.0)
    agent.poll(0.5)
    second = drain(agent, 0.5)

    assert len(first) == 1
    assert second == first
    assert first[0].source == LOCAL
    assert first[0].destination == SERVER
    assert first[0].transport is TransportType.UDP


def test_udp_retransmission_schedule_configured() -> None:
    config = StunConfig(rto=0.1, max_transmissions=3, final_wait_factor=4)
    agent = StunAgent(TransportType.UDP, LOCAL, config=config)
    agent.send_request(Method.BINDING, SERVER, 0.0)

    sends, at, event = run_to_end(agent)

    assert sends == pytest.approx([0.0, 0.1, 0.3])
    assert at == pytest.approx(0.7)
    assert isinstance(event, TransactionTimedOut)


def test_udp_schedule_relative_to_start_time() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 100.0)
    drain(agent, 100.0)

    assert agent.poll(100.0) == WaitUntil(100.5)


@pytest.mark.parametrize("transport", [TransportType.TCP, TransportType.TLS])
def test_reliable_single_send_and_timeout(transport: TransportType) -> None:
    agent = StunAgent(transport, LOCAL)
    transaction_id = agent.send_request(Method.BINDING, SERVER, 0.0)

    sends, at, event = run_to_end(agent)

    assert sends == [0.0]
    assert at == 39.5
    assert event == TransactionTimedOut(transaction_id, SERVER)
    assert agent.stats.retransmits == 0


def test_late_poll_times_out_on_time() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    transaction_id = agent.send_request(Method.BINDING, SERVER, 0.0)
    drain(agent, 0.0)

    assert events(agent, UDP_TIMEOUT) == [TransactionTimedOut(transaction_id, SERVER)]
    assert drain(agent, UDP_TIMEOUT) == []


def test_late_poll_sends_one_retransmission() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0)
    drain(agent, 0.0)

    assert len(drain(agent, 5.0)) == 1
    # The next interval (1 s) counts from the late send.
    assert agent.poll(5.0) == WaitUntil(6.0)


def test_poll_before_deadline_waits() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0)
    drain(agent, 0.0)

    assert agent.poll(0.25) == WaitUntil(0.5)
    assert drain(agent, 0.25) == []


def test_poll_idle_returns_none() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)

    assert agent.poll(0.0) is None
    assert agent.poll_transmit(0.0) is None


def test_poll_transmit_fires_due_retransmission() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0)
    drain(agent, 0.0)

    assert len(drain(agent, 0.5)) == 1


def test_earliest_deadline_across_transactions() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0)
    agent.send_request(Method.BINDING, OTHER, 0.2)
    drain(agent, 0.2)

    assert agent.poll(0.2) == WaitUntil(0.5)
    assert agent.poll(0.5) == WaitUntil(0.7)
    assert agent.pending_transactions() == 2


def test_success_response_completes() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    transaction_id = agent.send_request(Method.BINDING, SERVER, 0.0)
    (request,) = drain(agent, 0.0)

    assert agent.handle_data(response_to(request.data), SERVER, 0.05) is None
    (event,) = events(agent, 0.05)

    assert isinstance(event, TransactionSucceeded)
    assert event.transaction_id == transaction_id
    assert event.remote == SERVER
    assert event.rtt == pytest.approx(0.05)
    assert event.response.xor_mapped_address() == LOCAL
    assert agent.poll(0.05) is None
    assert agent.stats.succeeded == 1


def test_error_response_fails() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    transaction_id = agent.send_request(Method.BINDING, SERVER, 0.0)
    (request,) = drain(agent, 0.0)

    agent.handle_data(
        response_to(request.data, message_class=MessageClass.ERROR, error=400),
        SERVER,
        0.1,
    )
    (event,) = events(agent, 0.1)

    assert isinstance(event, TransactionFailed)
    assert event.transaction_id == transaction_id
    assert event.code == 400
    assert event.reason == "test error"
    assert event.remote == SERVER


def test_401_without_credentials_fails() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0)
    (request,) = drain(agent, 0.0)

    agent.handle_data(
        response_to(request.data, message_class=MessageClass.ERROR, error=401),
        SERVER,
        0.1,
    )
    (event,) = events(agent, 0.1)

    assert isinstance(event, TransactionFailed)
    assert event.code == 401
    assert agent.stats.auth_retries == 0


def test_wrong_transaction_id_ignored() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0)
    (request,) = drain(agent, 0.0)

    stray = response_to(request.data, transaction_id=b"\x01" * 12)
    agent.handle_data(stray, SERVER, 0.1)

    assert events(agent, 0.1) == []
    assert agent.stats.dropped_unknown_transaction == 1
    assert agent.pending_transactions() == 1


def test_wrong_method_ignored() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0)
    (request,) = drain(agent, 0.0)
    builder = MessageBuilder(
        message_type(Method.ALLOCATE, MessageClass.SUCCESS),
        parse(request.data).transaction_id,
    )

    agent.handle_data(builder.finish(), SERVER, 0.1)

    assert events(agent, 0.1) == []
    assert agent.stats.dropped_unknown_transaction == 1


def test_response_from_other_address_ignored() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    transaction_id = agent.send_request(Method.BINDING, SERVER, 0.0)
    (request,) = drain(agent, 0.0)
    response = response_to(request.data)

    agent.handle_data(response, OTHER, 0.1)
    agent.handle_data(response, (SERVER[0], SERVER[1] + 1), 0.1)

    assert events(agent, 0.1) == []
    assert agent.stats.dropped_wrong_source == 2

    agent.handle_data(response, SERVER, 0.2)
    (event,) = events(agent, 0.2)
    assert isinstance(event, TransactionSucceeded)
    assert event.transaction_id == transaction_id


def test_ipv6_source_matches_other_spelling() -> None:
    agent = StunAgent(TransportType.UDP, ("::1", 40000))
    agent.send_request(Method.BINDING, ("::1", 3478), 0.0)
    (request,) = drain(agent, 0.0)

    agent.handle_data(response_to(request.data), ("0:0::1", 3478), 0.1)

    assert isinstance(events(agent, 0.1)[0], TransactionSucceeded)


def test_duplicate_response_ignored() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0)
    (request,) = drain(agent, 0.0)
    response = response_to(request.data)

    agent.handle_data(response, SERVER, 0.1)
    agent.handle_data(response, SERVER, 0.1)

    assert len(events(agent, 0.1)) == 1
    assert agent.stats.dropped_unknown_transaction == 1


def test_bad_fingerprint_dropped() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0)
    (request,) = drain(agent, 0.0)
    response = bytearray(response_to(request.data))
    response[-1] ^= 0xFF

    agent.handle_data(bytes(response), SERVER, 0.1)

    assert events(agent, 0.1) == []
    assert agent.stats.dropped_bad_fingerprint == 1


def test_short_term_request_attributes() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL, software="rice-test")
    agent.send_request(
        Method.BINDING,
        SERVER,
        0.0,
        attributes=[Priority(12345)],
        credentials=CREDENTIALS,
    )
    (request,) = drain(agent, 0.0)
    message = parse(request.data)

    assert message.attribute_types() == [
        AttributeType.PRIORITY,
        AttributeType.SOFTWARE,
        AttributeType.USERNAME,
        AttributeType.MESSAGE_INTEGRITY,
        AttributeType.FINGERPRINT,
    ]
    assert message.priority() == 12345
    assert message.username() == "bob:alice"
    assert message.software() == "rice-test"
    assert message.check_integrity(CREDENTIALS.key)
    assert message.check_fingerprint()


def test_request_without_fingerprint() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0, fingerprint=False)
    (request,) = drain(agent, 0.0)

    assert not parse(request.data).has_fingerprint


def test_short_term_response_integrity_checked() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    transaction_id = agent.send_request(
        Method.BINDING, SERVER, 0.0, credentials=CREDENTIALS
    )
    (request,) = drain(agent, 0.0)
    other = ShortTermCredentials("bob:alice", "another-password")

    agent.handle_data(response_to(request.data, key=other), SERVER, 0.1)
    agent.handle_data(response_to(request.data), SERVER, 0.1)
    agent.handle_data(
        response_to(request.data, message_class=MessageClass.ERROR, error=401),
        SERVER,
        0.1,
    )

    assert events(agent, 0.1) == []
    assert agent.stats.dropped_bad_integrity == 3
    assert agent.pending_transactions() == 1

    agent.handle_data(response_to(request.data, key=CREDENTIALS), SERVER, 0.2)
    (event,) = events(agent, 0.2)
    assert isinstance(event, TransactionSucceeded)
    assert event.transaction_id == transaction_id


def test_short_term_bad_integrity_over_tcp_fails() -> None:
    agent = StunAgent(TransportType.TCP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0, credentials=CREDENTIALS)
    (request,) = drain(agent, 0.0)

    agent.handle_data(response_to(request.data), SERVER, 0.1)
    (event,) = events(agent, 0.1)

    assert isinstance(event, TransactionFailed)
    assert event.code == 0
    assert "integrity" in event.reason
    assert agent.stats.dropped_bad_integrity == 1


def test_cancel_reports_and_stops() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    transaction_id = agent.send_request(Method.BINDING, SERVER, 0.0)
    (request,) = drain(agent, 0.0)

    agent.cancel(transaction_id)

    assert events(agent, 0.0) == [TransactionCancelled(transaction_id)]
    assert agent.poll(0.0) is None
    assert drain(agent, 10.0) == []
    agent.handle_data(response_to(request.data), SERVER, 0.1)
    assert events(agent, 0.1) == []
    assert agent.stats.cancelled == 1
    assert agent.stats.dropped_unknown_transaction == 1


def test_cancel_drops_queued_transmission() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    transaction_id = agent.send_request(Method.BINDING, SERVER, 0.0)
    remaining_id = agent.send_request(Method.BINDING, OTHER, 0.0)

    agent.cancel(transaction_id)
    transmits = drain(agent, 0.0)

    assert [t.destination for t in transmits] == [OTHER]
    assert parse(transmits[0].data).transaction_id == remaining_id


def test_cancel_unknown_id_is_ignored() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)

    agent.cancel(b"\x00" * 12)
    agent.cancel_retransmissions(b"\x00" * 12)

    assert agent.poll(0.0) is None


def test_cancel_retransmissions_keeps_timeout() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    transaction_id = agent.send_request(Method.BINDING, SERVER, 0.0)
    drain(agent, 0.0)
    agent.poll(0.5)
    drain(agent, 0.5)

    agent.cancel_retransmissions(transaction_id)

    assert agent.poll(0.5) == WaitUntil(UDP_TIMEOUT)
    assert drain(agent, 20.0) == []
    assert events(agent, UDP_TIMEOUT) == [TransactionTimedOut(transaction_id, SERVER)]
    assert agent.stats.retransmits == 1


def test_cancel_retransmissions_still_completes() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    transaction_id = agent.send_request(Method.BINDING, SERVER, 0.0)
    (request,) = drain(agent, 0.0)
    agent.cancel_retransmissions(transaction_id)

    agent.handle_data(response_to(request.data), SERVER, 5.0)
    (event,) = events(agent, 5.0)

    assert isinstance(event, TransactionSucceeded)
    assert event.rtt == pytest.approx(5.0)


def test_rtt_statistics_rfc6298() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    for start, rtt in ((0.0, 0.1), (1.0, 0.2)):
        agent.send_request(Method.BINDING, SERVER, start)
        (request,) = drain(agent, start)
        agent.handle_data(response_to(request.data), SERVER, start + rtt)
        events(agent, start + rtt)
    stats = agent.stats

    # RFC 6298 §2.2 then §2.3 with alpha = 1/8 and beta = 1/4.
    assert stats.rtt_samples == 2
    assert stats.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.2)
    assert stats.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * 0.1)
    assert stats.rtt_min == pytest.approx(0.1)
    assert stats.rtt_last == pytest.approx(0.2)


def test_rtt_not_sampled_after_retransmission() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0)
    (request,) = drain(agent, 0.0)
    agent.poll(0.5)
    drain(agent, 0.5)

    agent.handle_data(response_to(request.data), SERVER, 0.6)
    (event,) = events(agent, 0.6)

    assert isinstance(event, TransactionSucceeded)
    assert event.rtt == pytest.approx(0.6)
    assert agent.stats.rtt_samples == 0
    assert agent.stats.srtt is None


def test_adaptive_rto_from_srtt() -> None:
    config = StunConfig(adaptive_rto=True, min_rto=0.05)
    agent = StunAgent(TransportType.UDP, LOCAL, config=config)
    agent.send_request(Method.BINDING, SERVER, 0.0)
    (request,) = drain(agent, 0.0)
    agent.handle_data(response_to(request.data), SERVER, 0.1)
    events(agent, 0.1)

    # SRTT 0.1 and RTTVAR 0.05 give RTO = 0.1 + 4 * 0.05.
    assert agent.initial_rto(SERVER, 1.0) == pytest.approx(0.3)
    assert agent.initial_rto(OTHER, 1.0) == 0.5

    agent.send_request(Method.BINDING, SERVER, 1.0)
    drain(agent, 1.0)
    result = agent.poll(1.0)
    assert isinstance(result, WaitUntil)
    assert result.deadline == pytest.approx(1.3)


def test_adaptive_rto_forgotten_when_stale() -> None:
    config = StunConfig(adaptive_rto=True, min_rto=0.05)
    agent = StunAgent(TransportType.UDP, LOCAL, config=config)
    agent.send_request(Method.BINDING, SERVER, 0.0)
    (request,) = drain(agent, 0.0)
    agent.handle_data(response_to(request.data), SERVER, 0.1)
    events(agent, 0.1)

    assert agent.initial_rto(SERVER, 0.1 + 601.0) == 0.5


def test_fixed_rto_by_default() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0)
    (request,) = drain(agent, 0.0)
    agent.handle_data(response_to(request.data), SERVER, 0.01)
    events(agent, 0.01)

    assert agent.initial_rto(SERVER, 1.0) == 0.5


def test_requests_and_indications_returned() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    request = MessageBuilder(
        message_type(Method.BINDING, MessageClass.REQUEST), b"\x02" * 12
    ).finish(fingerprint=True)
    indication = MessageBuilder(
        message_type(Method.BINDING, MessageClass.INDICATION), b"\x03" * 12
    ).finish()

    returned = agent.handle_data(request, SERVER, 0.0)
    assert isinstance(returned, Message)
    assert returned.is_request
    returned = agent.handle_data(indication, SERVER, 0.0)
    assert isinstance(returned, Message)
    assert returned.is_indication


def test_send_indication_sent_once() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)

    agent.send_indication(
        Method.BINDING, SERVER, 0.0, attributes=[Software("keepalive")]
    )
    (transmit,) = drain(agent, 0.0)
    message = parse(transmit.data)

    assert message.is_indication
    assert message.software() == "keepalive"
    assert message.check_fingerprint()
    assert agent.poll(0.0) is None
    assert agent.stats.indications_sent == 1


def test_garbage_dropped_and_counted() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)

    assert agent.handle_data(b"", SERVER, 0.0) is None
    assert agent.handle_data(b"\x00" * 19, SERVER, 0.0) is None
    assert agent.handle_data(b"\xff" * 40, SERVER, 0.0) is None

    assert agent.stats.dropped_malformed == 3


def test_invalid_arguments_raise() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)

    with pytest.raises(ValueError, match="method"):
        agent.send_request(0x1000, SERVER, 0.0)
    with pytest.raises(TypeError, match="credentials"):
        agent.send_request(Method.BINDING, SERVER, 0.0, credentials="pw")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="TransportType"):
        StunAgent("udp", LOCAL)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rto", 0.0),
        ("max_transmissions", 0),
        ("final_wait_factor", -1.0),
        ("reliable_timeout", 0.0),
        ("max_auth_retries", -1),
        ("min_rto", 0.0),
    ],
)
def test_config_rejects_invalid_value(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        StunConfig(**{field: value})  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_never_raises(data: bytes) -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0, credentials=CREDENTIALS)
    drain(agent, 0.0)

    agent.handle_data(data, SERVER, 0.1)
    agent.poll(0.1)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_response_never_raises(data: st.DataObject) -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0)
    (request,) = drain(agent, 0.0)
    response = bytearray(
        response_to(
            request.data,
            message_class=MessageClass.ERROR,
            error=401,
            fingerprint=False,
        )
    )
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(response) - 1))
        response[index] = data.draw(st.integers(0, 255))

    agent.handle_data(bytes(response), SERVER, 0.1)
    agent.poll(0.1)


# Responses the agent must reject, and argument checks


def _challenge(request: bytes, code: int, realm: bytes, nonce: bytes) -> bytes:
    parsed = parse(request)
    builder = MessageBuilder(
        message_type(parsed.method, MessageClass.ERROR), parsed.transaction_id
    )
    builder.add_error_code(code, "challenge")
    builder.add(AttributeType.REALM, realm)
    builder.add(AttributeType.NONCE, nonce)
    data: bytes = builder.finish(None, fingerprint=True)
    return data


def test_success_with_unknown_required_attribute_fails() -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)
    transaction_id = agent.send_request(Method.BINDING, SERVER, 0.0)
    (request,) = drain(agent, 0.0)
    parsed = parse(request.data)
    builder = MessageBuilder(
        message_type(parsed.method, MessageClass.SUCCESS), parsed.transaction_id
    )
    builder.add_xor_mapped_address(*LOCAL)
    builder.add(0x7FFE, b"\x00\x00\x00\x00")

    agent.handle_data(builder.finish(None, fingerprint=True), SERVER, 0.1)

    (event,) = events(agent, 0.1)
    assert isinstance(event, TransactionFailed)
    assert event.transaction_id == transaction_id
    assert event.code == 0
    assert "0x7ffe" in event.reason
    assert "comprehension-required" in event.reason
    assert agent.stats.succeeded == 0
    assert agent.pending_transactions() == 0


def test_401_with_unknown_required_attribute_not_retried() -> None:
    credentials = LongTermCredentials("alice", "alice-password", "")
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0, credentials=credentials)
    (request,) = drain(agent, 0.0)
    parsed = parse(request.data)
    builder = MessageBuilder(
        message_type(parsed.method, MessageClass.ERROR), parsed.transaction_id
    )
    builder.add_error_code(401, "Unauthorized")
    builder.add(AttributeType.REALM, b"example.org")
    builder.add(AttributeType.NONCE, b"nonce-1")
    builder.add(0x7FFE, b"")

    agent.handle_data(builder.finish(None, fingerprint=True), SERVER, 0.1)

    (event,) = events(agent, 0.1)
    assert isinstance(event, TransactionFailed)
    assert event.code == 401
    assert "0x7ffe" in event.reason
    assert drain(agent, 0.1) == []
    assert agent.stats.auth_retries == 0


@pytest.mark.parametrize(
    ("realm", "nonce", "named"),
    [
        (b"example.org", b"n" * 128, "NONCE"),
        (b"example.org", "\u00e9".encode() * 127 + b"n" * 10, "NONCE"),
        (b"r" * 128, b"nonce-1", "REALM"),
        (b"example.org", b"n" * 60_000, "NONCE"),
    ],
    ids=["nonce-128-chars", "nonce-over-763-bytes", "realm-128-chars", "nonce-60k"],
)
@pytest.mark.parametrize("code", [401, 438])
def test_challenge_over_size_limit_not_retried(
    realm: bytes, nonce: bytes, named: str, code: int
) -> None:
    credentials = LongTermCredentials("alice", "alice-password", "")
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0, credentials=credentials)
    (request,) = drain(agent, 0.0)

    agent.handle_data(_challenge(request.data, code, realm, nonce), SERVER, 0.1)

    (event,) = events(agent, 0.1)
    assert isinstance(event, TransactionFailed)
    assert event.code == code
    assert named in event.reason
    assert "RFC 8489" in event.reason
    assert drain(agent, 0.1) == []
    assert agent.stats.auth_retries == 0


def test_challenge_at_size_limit_retried() -> None:
    credentials = LongTermCredentials("alice", "alice-password", "")
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0, credentials=credentials)
    (request,) = drain(agent, 0.0)

    agent.handle_data(
        _challenge(request.data, 401, b"r" * 127, b"n" * 127), SERVER, 0.1
    )

    assert events(agent, 0.1) == []
    (retry,) = drain(agent, 0.1)
    assert parse(retry.data).nonce() == "n" * 127
    assert agent.stats.auth_retries == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rto", math.nan),
        ("rto", math.inf),
        ("rto", -0.5),
        ("max_rto", math.inf),
        ("min_rto", math.nan),
        ("final_wait_factor", math.nan),
        ("final_wait_factor", math.inf),
        ("reliable_timeout", math.inf),
        ("rto_cache_lifetime", math.nan),
        ("rto_cache_lifetime", -1.0),
        ("max_transmissions", 1.5),
        ("max_transmissions", True),
        ("max_auth_retries", 2.0),
        ("rto", "0.5"),
    ],
)
def test_config_rejects_non_finite_and_non_int(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        StunConfig(**{field: value})  # type: ignore[arg-type]


def test_config_accepts_int_seconds() -> None:
    config = StunConfig(rto=1, max_rto=30, reliable_timeout=10)

    assert config.rto == 1


@pytest.mark.parametrize(
    ("destination", "error", "message"),
    [
        (None, TypeError, "tuple"),
        ("127.0.0.1:3478", TypeError, "tuple"),
        (("127.0.0.1", 3478, 0, 0), TypeError, "tuple"),
        ((b"127.0.0.1", 3478), TypeError, "host"),
        (("127.0.0.1", "3478"), TypeError, "port"),
        (("127.0.0.1", 3478.0), TypeError, "port"),
        (("localhost", 3478), ValueError, "not an IP address"),
        (("10.0.0.1\x00.evil", 3478), ValueError, "not an IP address"),
        (("127.0.0.1", 0), ValueError, "1 to 65535"),
        (("127.0.0.1", 65536), ValueError, "1 to 65535"),
        (("::1", -1), ValueError, "1 to 65535"),
    ],
)
def test_send_request_rejects_invalid_destination(
    destination: object, error: type[Exception], message: str
) -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)

    with pytest.raises(error, match=message):
        agent.send_request(Method.BINDING, destination, 0.0)  # type: ignore[arg-type]
    with pytest.raises(error, match=message):
        agent.send_indication(Method.BINDING, destination, 0.0)  # type: ignore[arg-type]
    assert agent.pending_transactions() == 0
    assert drain(agent, 0.0) == []


@pytest.mark.parametrize("now", [math.nan, math.inf, -math.inf])
def test_send_request_rejects_non_finite_now(now: float) -> None:
    agent = StunAgent(TransportType.UDP, LOCAL)

    with pytest.raises(ValueError, match="now"):
        agent.send_request(Method.BINDING, SERVER, now)
    assert agent.pending_transactions() == 0


def test_agent_rejects_wrong_argument_types() -> None:
    with pytest.raises(TypeError, match="software"):
        StunAgent(TransportType.UDP, LOCAL, software=b"rice")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config"):
        StunAgent(TransportType.UDP, LOCAL, config={"rto": 1.0})  # type: ignore[arg-type]


def test_cancel_many_queued_is_linear() -> None:
    # Before cancel was O(1), each cancel copied the whole transmit queue:
    # 20,000 queued requests took minutes. Counted in deque copies, not time.
    agent = StunAgent(TransportType.UDP, LOCAL)
    ids = [agent.send_request(Method.BINDING, SERVER, 0.0) for _ in range(20_000)]
    queue = agent._transmits

    for transaction_id in ids[:-1]:
        agent.cancel(transaction_id)

    assert agent._transmits is queue
    transmits = drain(agent, 0.0)
    assert len(transmits) == 1
    assert parse(transmits[0].data).transaction_id == ids[-1]
    assert agent.stats.cancelled == len(ids) - 1


def test_retry_after_401_drops_queued_first_request() -> None:
    credentials = LongTermCredentials("alice", "alice-password", "")
    agent = StunAgent(TransportType.UDP, LOCAL)
    agent.send_request(Method.BINDING, SERVER, 0.0, credentials=credentials)
    (request,) = drain(agent, 0.0)
    # A retransmission is queued but not drained when the 401 arrives.
    agent.poll(0.5)

    agent.handle_data(
        _challenge(request.data, 401, b"example.org", b"nonce-1"), SERVER, 0.6
    )

    (retry,) = drain(agent, 0.6)
    assert parse(retry.data).transaction_id != parse(request.data).transaction_id
    assert parse(retry.data).realm() == "example.org"
