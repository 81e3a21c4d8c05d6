"""ChannelData framing and the STUN/ChannelData stream deframer."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rice_fast.turn._framing import (
    FRAME_CHANNEL_DATA,
    FRAME_STUN,
    StreamDeframer,
    channel_data_payload,
    decode_channel_data,
    decode_channel_data_batch,
    encode_channel_data,
    encode_channel_data_batch,
    encode_channel_data_into,
    is_channel_data,
)

from rice_fast.stun import MessageBuilder, new_transaction_id
from rice_fast.turn.errors import ChannelDataError, FramingError


def test_encode_udp_has_no_padding() -> None:
    data = encode_channel_data(0x4001, b"x" * 13)
    assert data == b"\x40\x01\x00\x0d" + b"x" * 13


def test_encode_stream_pads_with_zeros() -> None:
    data = encode_channel_data(0x4001, b"x" * 13, stream=True)
    assert len(data) == 20
    assert data[2:4] == b"\x00\x0d"
    assert data[17:] == b"\x00\x00\x00"


@pytest.mark.parametrize("channel", [0, 0x3FFF, 0x8000, 0xFFFF])
def test_encode_rejects_channel_outside_range(channel: int) -> None:
    with pytest.raises(ChannelDataError, match=r"outside 0x4000\.\.0x7fff"):
        encode_channel_data(channel, b"")


@pytest.mark.parametrize("channel", [0x5000, 0x7FFF])
def test_rfc5766_channel_range_accepted(channel: int) -> None:
    data = encode_channel_data(channel, b"old")
    assert channel_data_payload(data) == (channel, b"old")


def test_encode_rejects_oversized_payload() -> None:
    with pytest.raises(ChannelDataError, match="exceeds 65535"):
        encode_channel_data(0x4000, bytes(0x10000))


def test_encode_into_caller_buffer() -> None:
    buffer = bytearray(32)
    written = encode_channel_data_into(buffer, 4, 0x4FFF, b"abc", stream=True)
    assert written == 8
    assert bytes(buffer[4:12]) == b"\x4f\xff\x00\x03abc\x00"


def test_encode_into_overflow_raises() -> None:
    with pytest.raises(ChannelDataError, match="do not fit"):
        encode_channel_data_into(bytearray(6), 0, 0x4000, b"abc")


def test_decode_returns_view_without_copy() -> None:
    data = bytearray(encode_channel_data(0x4002, b"hello"))
    channel, payload = decode_channel_data(data)
    assert channel == 0x4002
    assert bytes(payload) == b"hello"
    data[4] = ord("j")
    assert bytes(payload) == b"jello"


def test_decode_ignores_udp_padding() -> None:
    channel, payload = channel_data_payload(b"\x40\x00\x00\x02ab\x00\x00")
    assert channel == 0x4000
    assert payload == b"ab"


@pytest.mark.parametrize(
    ("data", "reason", "offset"),
    [
        (b"\x40\x00\x00", "shorter than its 4-byte header", 3),
        (b"\x00\x01\x00\x00", "first two bits are not 01", 0),
        (b"\x80\x01\x00\x00", "first two bits are not 01", 0),
        (b"\x40\x00\x00\x05abcd", "length field exceeds the data", 2),
    ],
)
def test_decode_rejects_malformed(data: bytes, reason: str, offset: int) -> None:
    with pytest.raises(ChannelDataError) as info:
        channel_data_payload(data)
    assert reason in info.value.reason
    assert info.value.offset == offset
    with pytest.raises(ChannelDataError):
        decode_channel_data(data)
    assert not is_channel_data(data)


@given(st.binary(max_size=80))
def test_decoders_raise_only_channel_data_error(data: bytes) -> None:
    for decoder in (channel_data_payload, decode_channel_data):
        with contextlib.suppress(ChannelDataError):
            decoder(data)


@given(st.integers(0x4000, 0x4FFF), st.binary(max_size=300), st.booleans())
def test_round_trip(channel: int, payload: bytes, stream: bool) -> None:
    data = encode_channel_data(channel, payload, stream=stream)
    assert channel_data_payload(data) == (channel, payload)
    assert len(data) % 4 == 0 or not stream


def _datagrams(items: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    buffer = np.frombuffer(b"".join(items), dtype=np.uint8).copy()
    lengths = np.array([len(item) for item in items], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    return buffer, offsets, lengths


@given(
    st.lists(
        st.one_of(
            st.tuples(st.integers(0x4000, 0x4FFF), st.binary(max_size=40)).map(
                lambda cp: encode_channel_data(cp[0], cp[1])
            ),
            st.binary(max_size=24),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_batch_decode_matches_single(items: list[bytes]) -> None:
    buffer, offsets, lengths = _datagrams(items)
    channels, payload_offsets, payload_lengths, valid = decode_channel_data_batch(
        buffer, offsets, lengths
    )
    for i, item in enumerate(items):
        try:
            channel, payload = channel_data_payload(item)
        except ChannelDataError:
            assert not valid[i]
            assert channels[i] == 0
            continue
        assert valid[i]
        assert channels[i] == channel
        start = int(payload_offsets[i])
        assert buffer[start : start + int(payload_lengths[i])].tobytes() == payload


def test_batch_decode_rejects_out_of_bounds_entry() -> None:
    buffer = np.zeros(8, dtype=np.uint8)
    offsets = np.array([0, 6], dtype=np.int64)
    lengths = np.array([4, 4], dtype=np.int64)
    with pytest.raises(ValueError, match="datagram 1"):
        decode_channel_data_batch(buffer, offsets, lengths)


def test_batch_decode_rejects_wrong_dtype() -> None:
    buffer = np.zeros(8, dtype=np.uint8)
    with pytest.raises(ValueError):
        decode_channel_data_batch(
            buffer, np.zeros(1, dtype=np.float64), np.zeros(1, dtype=np.int64)
        )


@given(
    st.lists(st.tuples(st.integers(0x4000, 0x4FFF), st.binary(max_size=40))),
    st.booleans(),
)
def test_batch_encode_matches_single(
    items: list[tuple[int, bytes]], stream: bool
) -> None:
    channels = np.array([c for c, _ in items], dtype=np.uint16)
    payloads, offsets, lengths = _datagrams([p for _, p in items] or [b""])
    if not items:
        offsets = offsets[:0]
        lengths = lengths[:0]
    out, out_offsets, out_lengths = encode_channel_data_batch(
        channels, payloads, offsets, lengths, stream=stream
    )
    for i, (channel, payload) in enumerate(items):
        start = int(out_offsets[i])
        encoded = out[start : start + int(out_lengths[i])].tobytes()
        assert encoded == encode_channel_data(channel, payload, stream=stream)


def _stun_message(size: int) -> bytes:
    builder = MessageBuilder(0x0017, new_transaction_id())
    builder.add(0x0013, b"d" * size)
    result: bytes = builder.finish()
    return result


def test_deframer_forwards_13_consumes_16() -> None:
    deframer = StreamDeframer()
    frame = encode_channel_data(0x4000, b"z" * 13, stream=True)
    assert len(frame) == 20
    frames = deframer.frames_from(frame)
    assert frames == [(FRAME_CHANNEL_DATA, frame[:17])]
    assert deframer.buffered == 0


def test_deframer_partial_and_several_frames() -> None:
    stun = _stun_message(10)
    channel = encode_channel_data(0x4321, b"abcde", stream=True)
    stream = stun + channel + stun + channel
    deframer = StreamDeframer()
    collected: list[tuple[int, bytes]] = []
    for i in range(0, len(stream), 7):
        collected.extend(deframer.frames_from(stream[i : i + 7]))
    assert collected == [
        (FRAME_STUN, stun),
        (FRAME_CHANNEL_DATA, channel[:9]),
        (FRAME_STUN, stun),
        (FRAME_CHANNEL_DATA, channel[:9]),
    ]
    assert deframer.frames == 4


def test_deframer_waits_for_padding() -> None:
    deframer = StreamDeframer()
    frame = encode_channel_data(0x4000, b"abc", stream=True)
    assert deframer.frames_from(frame[:7]) == []
    assert deframer.frames_from(frame[7:]) == [(FRAME_CHANNEL_DATA, frame[:7])]


def test_deframer_handles_maximum_lengths() -> None:
    deframer = StreamDeframer()
    channel = encode_channel_data(0x4000, bytes(0xFFFF), stream=True)
    assert len(channel) == 0xFFFF + 4 + 1
    stun = _stun_message(0xFFFF - 4 - 3)
    assert len(stun) == 0xFFFF + 20 - 3
    frames = deframer.frames_from(channel + stun)
    assert [kind for kind, _ in frames] == [FRAME_CHANNEL_DATA, FRAME_STUN]
    assert len(frames[0][1]) == 0xFFFF + 4
    assert frames[1][1] == stun


def test_deframer_rejects_garbage_and_stays_broken() -> None:
    deframer = StreamDeframer()
    deframer.feed(b"\xff\x00\x00\x00")
    with pytest.raises(FramingError, match="neither STUN nor ChannelData"):
        deframer.next_frame()
    assert deframer.error is not None
    with pytest.raises(FramingError):
        deframer.next_frame()


def test_deframer_rejects_stun_without_cookie() -> None:
    deframer = StreamDeframer()
    deframer.feed(bytes(20))
    with pytest.raises(FramingError, match="magic cookie"):
        deframer.next_frame()


@given(st.lists(st.binary(max_size=50), max_size=10))
def test_deframer_raises_only_framing_error(chunks: list[bytes]) -> None:
    deframer = StreamDeframer()
    try:
        for chunk in chunks:
            deframer.frames_from(chunk)
    except FramingError:
        pass


def test_deframer_take_buffered_returns_rest() -> None:
    deframer = StreamDeframer()
    stun = _stun_message(4)
    deframer.feed(stun + b"raw bytes")
    assert deframer.next_frame() == (FRAME_STUN, stun)
    assert deframer.take_buffered() == b"raw bytes"
    assert deframer.buffered == 0
    assert deframer.take_buffered() == b""
