"""ChannelData framing and the TURN client's data paths, beside aioice.

- encode and decode of one ChannelData message (100-byte payload) per
  call, and of a batch of datagrams laid out in one numpy buffer, per
  datagram;
- the client send path on a bound channel: ``TurnClient.send_to`` then
  ``poll_transmit``, against aioice 0.13's ``TurnClientMixin.send_data``
  on a bound channel (its header ``struct.pack`` and ``_send`` into a
  transport that discards the datagram), driven without an event loop;
- the client receive path: ``handle_data`` of one ChannelData datagram then
  ``poll`` for the ``PeerData`` event, against aioice's
  ``datagram_received`` handing the payload to its receiver.

Both clients are set up without a network. The rice_fast client receives
hand-built responses, and aioice's channel tables are filled in as its
``send_data`` leaves them after a ChannelBind.
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from aioice import turn as aioice_turn
from pytest_benchmark.fixture import BenchmarkFixture

from bench.fields import describe
from rice_fast.stun import (
    IntegrityKey,
    MessageBuilder,
    MessageClass,
    Method,
    message_type,
    parse,
)
from rice_fast.stun.credentials import LongTermCredentials, long_term_key
from rice_fast.stun.transport import TransportType
from rice_fast.turn import (
    channel_data_payload,
    decode_channel_data,
    decode_channel_data_batch,
    encode_channel_data,
    encode_channel_data_batch,
)
from rice_fast.turn.client import TurnClient
from rice_fast.turn.events import ChannelBound, PeerData, TurnEvent

CHANNEL = 0x4000
PAYLOAD = bytes(range(100))
MESSAGE = b"\x40\x00\x00\x64" + PAYLOAD
BATCH_SIZE = 100_000
SERVER = ("192.0.2.1", 3478)
LOCAL = ("192.0.2.10", 50000)
PEER = ("203.0.113.5", 7000)
USER, PASSWORD, REALM = "alice", "wonderland", "example.org"

ENCODE = "ChannelData encode: one 100-byte payload"
DECODE = "ChannelData decode: one 100-byte payload"
ENCODE_BATCH = f"ChannelData encode batch: {BATCH_SIZE:,} 100-byte payloads"
DECODE_BATCH = f"ChannelData decode batch: {BATCH_SIZE:,} datagrams"
SEND_PATH = "TURN client send: 100 bytes on a bound channel"
RECEIVE_PATH = "TURN client receive: 100-byte ChannelData to the application"


# Per call.


def test_encode_rice_fast(benchmark: BenchmarkFixture) -> None:
    describe(benchmark, ENCODE, "rice_fast", target_ns=100)
    assert benchmark(encode_channel_data, CHANNEL, PAYLOAD) == MESSAGE


def _encode_aioice(channel: int, data: bytes) -> bytes:
    # The framing line of aioice.turn.TurnClientMixin.send_data.
    return struct.pack("!HH", channel, len(data)) + data


def test_encode_aioice(benchmark: BenchmarkFixture) -> None:
    describe(benchmark, ENCODE, "aioice")
    assert benchmark(_encode_aioice, CHANNEL, PAYLOAD) == MESSAGE


def test_decode_rice_fast(benchmark: BenchmarkFixture) -> None:
    describe(benchmark, DECODE, "rice_fast", target_ns=100)
    assert benchmark(channel_data_payload, MESSAGE) == (CHANNEL, PAYLOAD)


def test_decode_view_rice_fast(benchmark: BenchmarkFixture) -> None:
    describe(benchmark, DECODE, "rice_fast (memoryview)", target_ns=100)
    channel, payload = benchmark(decode_channel_data, MESSAGE)
    assert (channel, bytes(payload)) == (CHANNEL, PAYLOAD)


def _decode_aioice(data: bytes) -> tuple[int, bytes] | None:
    # The ChannelData branch of aioice.turn.TurnClientMixin.datagram_received.
    if len(data) >= 4 and aioice_turn.is_channel_data(data):
        channel, length = struct.unpack("!HH", data[0:4])
        if len(data) >= length + 4:
            return channel, data[4 : 4 + length]
    return None


def test_decode_aioice(benchmark: BenchmarkFixture) -> None:
    describe(benchmark, DECODE, "aioice")
    assert benchmark(_decode_aioice, MESSAGE) == (CHANNEL, PAYLOAD)


# Per datagram in a batch.


@dataclass(frozen=True, slots=True)
class Batch:
    """Datagrams or payloads back to back in one buffer."""

    buffer: npt.NDArray[np.uint8]
    offsets: npt.NDArray[np.int64]
    lengths: npt.NDArray[np.int64]


def _lay_out(item: bytes, count: int) -> Batch:
    lengths = np.full(count, len(item), np.int64)
    offsets = np.arange(count, dtype=np.int64) * len(item)
    buffer = np.frombuffer(item * count, np.uint8)
    return Batch(buffer, offsets, lengths)


@pytest.fixture(scope="module")
def datagram_batch() -> Batch:
    return _lay_out(MESSAGE, BATCH_SIZE)


@pytest.fixture(scope="module")
def payload_batch() -> Batch:
    return _lay_out(PAYLOAD, BATCH_SIZE)


def test_decode_batch_rice_fast(
    benchmark: BenchmarkFixture, datagram_batch: Batch
) -> None:
    describe(benchmark, DECODE_BATCH, "rice_fast", messages=BATCH_SIZE, target_ns=5)
    channels, offsets, lengths, valid = benchmark(
        decode_channel_data_batch,
        datagram_batch.buffer,
        datagram_batch.offsets,
        datagram_batch.lengths,
    )
    assert bool(valid.all())
    assert bool((channels == CHANNEL).all())
    assert bool((lengths == 100).all())
    assert int(offsets[1]) == len(MESSAGE) + 4


def test_encode_batch_rice_fast(
    benchmark: BenchmarkFixture, payload_batch: Batch
) -> None:
    describe(benchmark, ENCODE_BATCH, "rice_fast", messages=BATCH_SIZE, target_ns=5)
    channels = np.full(BATCH_SIZE, CHANNEL, np.uint16)
    buffer, offsets, lengths = benchmark(
        encode_channel_data_batch,
        channels,
        payload_batch.buffer,
        payload_batch.offsets,
        payload_batch.lengths,
    )
    assert bytes(buffer[: len(MESSAGE)]) == MESSAGE
    assert int(lengths[-1]) == len(MESSAGE)
    assert int(offsets[-1]) == (BATCH_SIZE - 1) * len(MESSAGE)


# The client paths.


def _respond(request: bytes, key: IntegrityKey, build: Any = None) -> bytes:
    message = parse(request)
    builder = MessageBuilder(
        message_type(message.method, MessageClass.SUCCESS), message.transaction_id
    )
    if build is not None:
        build(builder)
    data: bytes = builder.finish(key, fingerprint=True)
    return data


def _bound_rice_fast_client() -> TurnClient:
    """Return a TurnClient with a channel bound to PEER, set up by hand."""
    now = time.monotonic()
    key = IntegrityKey(long_term_key(USER, REALM, PASSWORD))
    client = TurnClient(
        TransportType.UDP, LOCAL, SERVER, LongTermCredentials(USER, PASSWORD, "")
    )
    client.poll(now)
    first = client.poll_transmit(now)
    assert first is not None
    request = parse(first.data)
    challenge = MessageBuilder(
        message_type(Method.ALLOCATE, MessageClass.ERROR), request.transaction_id
    )
    challenge.add_error_code(401, "Unauthenticated")
    challenge.add_realm(REALM)
    challenge.add_nonce("nonce")
    client.handle_data(challenge.finish(), SERVER, now)
    client.poll(now)
    second = client.poll_transmit(now)
    assert second is not None

    def allocation(builder: MessageBuilder) -> None:
        builder.add_xor_relayed_address("192.0.2.1", 49152)
        builder.add_xor_mapped_address(*LOCAL)
        builder.add_lifetime(600)

    client.handle_data(_respond(second.data, key, allocation), SERVER, now)
    client.poll(now)
    client.bind_channel(PEER, now)
    client.poll(now)
    bind = client.poll_transmit(now)
    assert bind is not None
    client.handle_data(_respond(bind.data, key), SERVER, now)
    events = []
    while isinstance(result := client.poll(now), TurnEvent):
        events.append(result)
    assert ChannelBound(PEER, CHANNEL) in events
    while client.poll_transmit(now) is not None:
        pass
    return client


def _send_rice_fast(client: TurnClient, now: float) -> bytes:
    client.send_to(PEER, PAYLOAD, now)
    transmit = client.poll_transmit(now)
    assert transmit is not None
    return transmit.data


def test_send_path_rice_fast(benchmark: BenchmarkFixture) -> None:
    describe(benchmark, SEND_PATH, "rice_fast", target_ratio=1)
    client = _bound_rice_fast_client()
    assert benchmark(_send_rice_fast, client, time.monotonic()) == MESSAGE


class _NullTransport:
    """Stands in for the asyncio transport; keeps the last datagram."""

    last: bytes = b""

    def sendto(self, data: bytes, addr: object = None) -> None:
        self.last = data


def _bound_aioice_client() -> tuple[Any, _NullTransport]:
    protocol: Any = aioice_turn.TurnClientUdpProtocol(SERVER, USER, PASSWORD, 600, 300)
    transport = _NullTransport()
    protocol.transport = transport
    # The state send_data leaves after a successful ChannelBind.
    protocol.channel_to_peer[CHANNEL] = PEER
    protocol.peer_to_channel[PEER] = CHANNEL
    protocol.channel_refresh_at[CHANNEL] = time.time() + 3600
    return protocol, transport


def _send_aioice(protocol: Any, transport: _NullTransport) -> bytes:
    # send_data does not await on a bound channel, so one send() runs it.
    coroutine = protocol.send_data(PAYLOAD, PEER)
    try:
        coroutine.send(None)
    except StopIteration:
        pass
    else:
        raise AssertionError("aioice send_data suspended on a bound channel")
    data: bytes = transport.last
    return data


def test_send_path_aioice(benchmark: BenchmarkFixture) -> None:
    describe(benchmark, SEND_PATH, "aioice")
    protocol, transport = _bound_aioice_client()
    assert benchmark(_send_aioice, protocol, transport) == MESSAGE


def _receive_rice_fast(client: TurnClient, now: float) -> bytes:
    client.handle_data(MESSAGE, SERVER, now)
    event = client.poll(now)
    assert isinstance(event, PeerData)
    return event.data


def test_receive_path_rice_fast(benchmark: BenchmarkFixture) -> None:
    describe(benchmark, RECEIVE_PATH, "rice_fast", target_ratio=1)
    client = _bound_rice_fast_client()
    assert benchmark(_receive_rice_fast, client, time.monotonic()) == PAYLOAD


class _Receiver(asyncio.DatagramProtocol):
    last: bytes = b""

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.last = data


def _receive_aioice(protocol: Any, receiver: _Receiver) -> bytes:
    protocol.datagram_received(MESSAGE, SERVER)
    return receiver.last


def test_receive_path_aioice(benchmark: BenchmarkFixture) -> None:
    describe(benchmark, RECEIVE_PATH, "aioice")
    protocol, _ = _bound_aioice_client()
    receiver = _Receiver()
    protocol.receiver = receiver
    assert benchmark(_receive_aioice, protocol, receiver) == PAYLOAD
