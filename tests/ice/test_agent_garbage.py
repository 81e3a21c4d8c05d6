"""Remote garbage is dropped, counted and logged at DEBUG, never raised."""

from __future__ import annotations

import logging
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rice_fast.ice import Agent, TcpType
from rice_fast.stun import (
    IntegrityKey,
    MessageBuilder,
    TransportType,
    new_transaction_id,
)
from rice_fast.stun._constants import MessageClass, Method, message_type
from rice_fast.stun.credentials import short_term_key
from tests.ice.sim import Network, SimAgent, connect

REQUEST = message_type(Method.BINDING, MessageClass.REQUEST)
SUCCESS = message_type(Method.BINDING, MessageClass.SUCCESS)
STRANGER = ("192.0.2.99", 7000)


def connected_pair() -> tuple[Network, SimAgent, SimAgent]:
    network = Network(121)
    a = SimAgent(network, "a", Agent(True, rng=random.Random(1)), ["192.0.2.1"])
    b = SimAgent(network, "b", Agent(False, rng=random.Random(2)), ["192.0.2.2"])
    a.add_udp("192.0.2.1")
    b.add_udp("192.0.2.2")
    connect(a, b)
    assert a.connected()
    assert b.connected()
    return network, a, b


def request(
    username: str | None, password: str | None, *, fingerprint: bool = True
) -> bytes:
    builder = MessageBuilder(REQUEST, new_transaction_id())
    if username is not None:
        builder.add_username(username)
    builder.add_priority(1000)
    builder.add_ice_controlling(1)
    key = None if password is None else IntegrityKey(short_term_key(password))
    data: bytes = builder.finish(key, fingerprint=fingerprint)
    return data


def feed(agent: SimAgent, data: bytes, remote: tuple[str, int] = STRANGER) -> None:
    local = agent.udp_addresses[0]
    assert (
        agent.agent.handle_data(
            TransportType.UDP, local, remote, data, agent.network.now
        )
        is None
    )


def test_garbage_is_counted_by_reason(caplog: pytest.LogCaptureFixture) -> None:
    network, a, b = connected_pair()
    ufrag = b.stream.local_credentials.ufrag
    password = b.stream.local_credentials.pwd
    caplog.set_level(logging.DEBUG, logger="rice_fast.ice")

    feed(b, request("nosuch:abcd", "x" * 22))
    feed(b, request(f"{ufrag}:abcd", "wrong-password-wrong-pw"))
    feed(b, request(f"{ufrag}:abcd", None))
    feed(b, b"\x80 not STUN, from nobody")
    bad_fingerprint = bytearray(request(f"{ufrag}:abcd", password))
    bad_fingerprint[-1] ^= 0xFF
    feed(b, bytes(bad_fingerprint))
    truncated = bytearray(request(f"{ufrag}:abcd", password))
    truncated[3] = 200  # the length no longer matches: looks like data
    feed(b, bytes(truncated))
    response = MessageBuilder(SUCCESS, new_transaction_id())
    response.add_xor_mapped_address("192.0.2.2", 1)
    feed(b, response.finish(fingerprint=True))
    allocate = MessageBuilder(
        message_type(Method.ALLOCATE, MessageClass.REQUEST), new_transaction_id()
    )
    feed(b, allocate.finish(fingerprint=True))
    assert (
        b.agent.handle_data(
            TransportType.UDP, ("192.0.2.2", 1), STRANGER, b"x", network.now
        )
        is None
    )

    stats = b.agent.stats
    assert stats.dropped_unknown_username == 1
    assert stats.dropped_bad_integrity == 1
    assert stats.dropped_unauthenticated == 1
    assert stats.dropped_bad_fingerprint == 1
    assert stats.dropped_unroutable_data == 2
    assert stats.dropped_unknown_transaction == 1
    assert stats.dropped_not_binding == 1
    assert stats.dropped_unknown_socket == 1
    drops = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert drops and all(r.levelno == logging.DEBUG for r in drops)
    assert password not in caplog.text

    network.run(network.now + 10.0)
    assert a.connected()
    assert b.connected()


def test_malformed_attribute_is_dropped() -> None:
    _network, _a, b = connected_pair()
    ufrag = b.stream.local_credentials.ufrag
    builder = MessageBuilder(REQUEST, new_transaction_id())
    builder.add(0x0006, b"\xff\xfe" + ufrag.encode())  # USERNAME, not UTF-8
    feed(b, builder.finish(fingerprint=True))
    assert b.agent.stats.dropped_malformed == 1


def test_request_for_another_stream_on_this_socket_is_dropped() -> None:
    agent = Agent(False, rng=random.Random(3))
    first = agent.add_stream()
    first.add_component().add_local_socket(TransportType.UDP, ("192.0.2.5", 1000))
    second = agent.add_stream()
    second.add_component().add_local_socket(TransportType.UDP, ("192.0.2.5", 1001))
    credentials = second.local_credentials
    data = request(f"{credentials.ufrag}:abcd", credentials.pwd)
    agent.handle_data(TransportType.UDP, ("192.0.2.5", 1000), STRANGER, data, 0.0)
    assert agent.stats.dropped_wrong_stream == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_random_bytes_never_raise(data: bytes, stun_header: bool) -> None:
    agent = Agent(False, rng=random.Random(4))
    stream = agent.add_stream()
    component = stream.add_component()
    component.add_local_socket(TransportType.UDP, ("192.0.2.5", 1000))
    component.add_local_socket(TransportType.TCP, ("192.0.2.5", 1001), TcpType.PASSIVE)
    stream.gather_candidates(0.0)
    stream.set_remote_credentials("abcd", "p" * 22)
    if stun_header and len(data) >= 20:
        # A valid header with the magic cookie sends the bytes through
        # the STUN parser rather than the data path.
        length = (len(data) - 20) & ~3
        data = (
            b"\x00\x01"
            + length.to_bytes(2, "big")
            + b"\x21\x12\xa4\x42"
            + data[8 : 20 + length]
        )
    agent.handle_data(TransportType.UDP, ("192.0.2.5", 1000), STRANGER, data, 0.0)
    agent.handle_data(TransportType.TCP, ("192.0.2.5", 1001), STRANGER, data, 0.0)
    for _ in range(3):
        agent.poll(0.1)
    while agent.poll_transmit(0.1) is not None:
        pass
