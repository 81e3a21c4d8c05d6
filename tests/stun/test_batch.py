"""Tests of the batch codec, rice_fast.stun.batch, against a pure-Python model."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rice_fast.stun import (
    MAGIC_COOKIE,
    IntegrityKey,
    MessageBuilder,
    frame_error,
    message_type,
    parse,
)
from rice_fast.stun.batch import (
    Classification,
    DatagramKind,
    check_fingerprint,
    check_integrity,
    classify,
)

MESSAGE_INTEGRITY = 0x0008
MESSAGE_INTEGRITY_SHA256 = 0x001C
FINGERPRINT = 0x8028
INTEGRITY_TYPES = {MESSAGE_INTEGRITY, MESSAGE_INTEGRITY_SHA256, FINGERPRINT}

KEYS = [IntegrityKey(b"first password"), IntegrityKey(b"second"), IntegrityKey(b"")]


# The pure-Python model of the batch codec.


def reference_frame_valid(data: bytes) -> bool:
    """Check STUN framing as RFC 8489 §5 and §14 describe it, in plain Python."""
    if len(data) < 20 or len(data) > 20 + 0xFFFF:
        return False
    if data[0] & 0xC0:
        return False
    (body,) = struct.unpack_from("!H", data, 2)
    if body % 4 or body + 20 != len(data):
        return False
    if struct.unpack_from("!I", data, 4)[0] != MAGIC_COOKIE:
        return False
    pos = 20
    seen_fingerprint = False
    while pos < len(data):
        if seen_fingerprint or pos + 4 > len(data):
            return False
        attr_type, attr_len = struct.unpack_from("!HH", data, pos)
        if pos + 4 + attr_len + (-attr_len % 4) > len(data):
            return False
        if attr_type == MESSAGE_INTEGRITY and attr_len != 20:
            return False
        if attr_type == MESSAGE_INTEGRITY_SHA256 and (
            attr_len < 16 or attr_len > 32 or attr_len % 4
        ):
            return False
        if attr_type == FINGERPRINT:
            if attr_len != 4:
                return False
            seen_fingerprint = True
        pos += 4 + attr_len + (-attr_len % 4)
    return True


@dataclass(frozen=True, slots=True)
class Expected:
    """One datagram's expected classification, field by field."""

    kind: int
    message_class: int = 0
    method: int = 0
    transaction_id_offset: int = -1
    valid: bool = False
    channel: int = 0
    payload_offset: int = -1
    payload_length: int = 0


def reference_classify_one(data: bytes, offset: int) -> Expected:
    """Classify one datagram that starts at ``offset`` in the batch buffer."""
    if len(data) >= 8 and data[0] >> 6 == 0 and data[4:8] == MAGIC_COOKIE.to_bytes(4):
        word = int.from_bytes(data[0:2])
        method = (word & 0x000F) | ((word >> 1) & 0x0070) | ((word >> 2) & 0x0F80)
        message_class = ((word >> 4) & 1) | ((word >> 7) & 2)
        if len(data) < 20:
            return Expected(DatagramKind.STUN, message_class, method)
        return Expected(
            DatagramKind.STUN,
            message_class,
            method,
            transaction_id_offset=offset + 8,
            valid=reference_frame_valid(data),
        )
    if len(data) >= 4 and data[0] >> 6 == 1:
        channel = int.from_bytes(data[0:2])
        length = int.from_bytes(data[2:4])
        if 4 + length > len(data):
            return Expected(DatagramKind.CHANNEL_DATA, channel=channel)
        return Expected(
            DatagramKind.CHANNEL_DATA,
            valid=channel <= 0x7FFF,
            channel=channel,
            payload_offset=offset + 4,
            payload_length=length,
        )
    return Expected(DatagramKind.OTHER)


def reference_integrity(data: bytes, key: IntegrityKey | None) -> bool:
    """Verify integrity the per-message way: parse, then check_integrity."""
    if key is None or frame_error(data) is not None:
        return False
    return parse(data).check_integrity(key)


def reference_fingerprint(data: bytes) -> bool:
    """Verify FINGERPRINT the per-message way: parse, then check_fingerprint."""
    if frame_error(data) is not None:
        return False
    return parse(data).check_fingerprint()


# Batches: datagrams laid out in one buffer with gaps between them.


@dataclass(frozen=True, slots=True)
class Batch:
    """A buffer of datagrams with their offsets and lengths."""

    buffer: npt.NDArray[np.uint8]
    offsets: npt.NDArray[np.int64]
    lengths: npt.NDArray[np.int64]
    datagrams: list[bytes]


def lay_out(datagrams: Sequence[bytes], gaps: Sequence[int]) -> Batch:
    """Place each datagram after ``gaps[i]`` filler bytes; the last ends the buffer."""
    parts: list[bytes] = []
    offsets: list[int] = []
    position = 0
    for index, datagram in enumerate(datagrams):
        gap = gaps[index % len(gaps)] if gaps else 0
        parts.append(b"\xa5" * gap)
        position += gap
        offsets.append(position)
        parts.append(datagram)
        position += len(datagram)
    buffer = np.frombuffer(b"".join(parts), np.uint8)
    return Batch(
        buffer=buffer,
        offsets=np.array(offsets, np.int64),
        lengths=np.array([len(d) for d in datagrams], np.int64),
        datagrams=list(datagrams),
    )


def batch_of(*datagrams: bytes) -> Batch:
    return lay_out(datagrams, [])


def assert_matches_reference(result: Classification, batch: Batch) -> None:
    expected = [
        reference_classify_one(d, int(o))
        for d, o in zip(batch.datagrams, batch.offsets, strict=True)
    ]
    assert result.kind.tolist() == [e.kind for e in expected]
    assert result.message_class.tolist() == [e.message_class for e in expected]
    assert result.method.tolist() == [e.method for e in expected]
    assert result.transaction_id_offset.tolist() == [
        e.transaction_id_offset for e in expected
    ]
    assert result.valid.tolist() == [e.valid for e in expected]
    assert result.channel.tolist() == [e.channel for e in expected]
    assert result.payload_offset.tolist() == [e.payload_offset for e in expected]
    assert result.payload_length.tolist() == [e.payload_length for e in expected]


# Hypothesis strategies for datagrams.

text_attributes = st.sampled_from([0x0006, 0x0014, 0x0015, 0x8022])


@st.composite
def stun_messages(draw: st.DrawFn) -> bytes:
    """Build a STUN message with MessageBuilder: random attributes and tail."""
    method = draw(st.sampled_from([0x001, 0x003, 0x004, 0x008, 0x009, 0xFFF]))
    message_class = draw(st.integers(0, 3))
    builder = MessageBuilder(
        message_type(method, message_class), draw(st.binary(min_size=12, max_size=12))
    )
    for _ in range(draw(st.integers(0, 5))):
        choice = draw(st.integers(0, 4))
        if choice == 0:
            builder.add_text(draw(text_attributes), draw(st.text(max_size=30)))
        elif choice == 1:
            builder.add_priority(draw(st.integers(0, 2**32 - 1)))
        elif choice == 2:
            builder.add_ice_controlling(draw(st.integers(0, 2**64 - 1)))
        elif choice == 3:
            builder.add_use_candidate()
        else:
            builder.add_xor_mapped_address("192.0.2.1", draw(st.integers(0, 65535)))
    key = draw(st.sampled_from([None, *KEYS]))
    if key is not None and draw(st.booleans()):
        builder.add_message_integrity(key)
    if key is not None and draw(st.booleans()):
        builder.add_message_integrity_sha256(key, draw(st.sampled_from([16, 24, 32])))
    result: bytes = builder.finish(fingerprint=draw(st.booleans()))
    return result


# Value sizes at the limits of MESSAGE-INTEGRITY (20), -SHA256 (16..32 in
# steps of 4) and FINGERPRINT (4).
EDGE_SIZES = [0, 4, 5, 16, 18, 20, 21, 28, 32, 33, 36]


@st.composite
def raw_stun_messages(draw: st.DrawFn) -> bytes:
    """Encode a header and random attributes by hand, framing right or not.

    Attribute lengths, padding and the length field may be wrong, and the
    integrity and FINGERPRINT types appear with any length and position.
    """
    body = b""
    for _ in range(draw(st.integers(0, 4))):
        attr_type = draw(
            st.one_of(st.sampled_from(sorted(INTEGRITY_TYPES)), st.integers(0, 0xFFFF))
        )
        size = draw(st.one_of(st.sampled_from(EDGE_SIZES), st.integers(0, 36)))
        value = draw(st.binary(min_size=size, max_size=size))
        padding = b"\x00" * (-len(value) % 4)
        if draw(st.integers(0, 9)) == 0:
            padding = padding[:-1]
        body += struct.pack("!HH", attr_type, len(value)) + value + padding
    length = len(body)
    if draw(st.integers(0, 4)) == 0:
        length = draw(st.integers(0, 0xFFFF))
    first = draw(st.integers(0, 0x3F))
    header = struct.pack(
        "!BBHI", first, draw(st.integers(0, 255)), length, MAGIC_COOKIE
    )
    return header + draw(st.binary(min_size=12, max_size=12)) + body


@st.composite
def channel_data(draw: st.DrawFn) -> bytes:
    """Encode ChannelData with any channel in 0x4000..0x7FFF and any length field."""
    channel = draw(st.integers(0x4000, 0x7FFF))
    payload = draw(st.binary(max_size=40))
    length = len(payload)
    if draw(st.integers(0, 4)) == 0:
        length = draw(st.integers(0, 0xFFFF))
    padding = b"\x00" * draw(st.integers(0, 3))
    return struct.pack("!HH", channel, length) + payload + padding


# Cuts at the header boundaries are the interesting truncations.
HEADER_CUTS = [3, 4, 7, 8, 19, 20, 23, 24]


@st.composite
def damaged(draw: st.DrawFn, source: st.SearchStrategy[bytes]) -> bytes:
    """Truncate a message or flip one byte in it."""
    data = bytearray(draw(source))
    if draw(st.booleans()):
        cut = draw(st.one_of(st.integers(0, len(data)), st.sampled_from(HEADER_CUTS)))
        return bytes(data[:cut])
    if data:
        index = draw(st.integers(0, len(data) - 1))
        data[index] ^= draw(st.integers(1, 255))
    return bytes(data)


datagrams = st.one_of(
    stun_messages(),
    raw_stun_messages(),
    channel_data(),
    damaged(stun_messages()),
    damaged(channel_data()),
    st.binary(max_size=64),
)


# Classification.


def test_classify_binding_request() -> None:
    builder = MessageBuilder(0x0001, bytes(range(12)))
    builder.add_username("user:peer")
    request = builder.finish(KEYS[0], fingerprint=True)
    batch = lay_out([request], [3])

    result = classify(batch.buffer, batch.offsets, batch.lengths)

    assert result.kind.tolist() == [DatagramKind.STUN]
    assert result.message_class.tolist() == [0]
    assert result.method.tolist() == [1]
    assert result.transaction_id_offset.tolist() == [3 + 8]
    assert result.valid.tolist() == [True]
    assert result.channel.tolist() == [0]
    assert result.payload_offset.tolist() == [-1]
    assert result.payload_length.tolist() == [0]


def test_classify_result_dtypes() -> None:
    batch = batch_of(b"\x40\x00\x00\x00")
    result = classify(batch.buffer, batch.offsets, batch.lengths)
    assert result.kind.dtype == np.uint8
    assert result.message_class.dtype == np.uint8
    assert result.method.dtype == np.uint16
    assert result.transaction_id_offset.dtype == np.int64
    assert result.valid.dtype == np.bool_
    assert result.channel.dtype == np.uint16
    assert result.payload_offset.dtype == np.int64
    assert result.payload_length.dtype == np.int32
    assert len(result) == 1


def test_classify_success_response_class() -> None:
    builder = MessageBuilder(message_type(0x001, 2), bytes(12))
    builder.add_xor_mapped_address("198.51.100.7", 40000)
    batch = batch_of(builder.finish(fingerprint=True))
    result = classify(batch.buffer, batch.offsets, batch.lengths)
    assert result.message_class.tolist() == [2]
    assert result.method.tolist() == [1]


def test_classify_channel_data_ranges() -> None:
    batch = batch_of(
        b"\x40\x00\x00\x02hi\x00\x00",  # first channel, padded
        b"\x4f\xff\x00\x01x",  # last channel, unpadded
        b"\x50\x00\x00\x01x",  # RFC 5766 range
        b"\x7f\xff\x00\x00",  # RFC 5766 range, empty payload
        b"\x40\x01\x00\x05abc",  # length field runs past the datagram
        b"\x40\x01\x00",  # shorter than the 4-byte header
    )
    result = classify(batch.buffer, batch.offsets, batch.lengths)
    assert result.kind.tolist() == [2, 2, 2, 2, 2, 0]
    assert result.valid.tolist() == [True, True, True, True, False, False]
    assert result.channel.tolist() == [0x4000, 0x4FFF, 0x5000, 0x7FFF, 0x4001, 0]
    assert result.payload_length.tolist() == [2, 1, 1, 0, 0, 0]
    starts = batch.offsets.tolist()
    assert result.payload_offset.tolist() == [
        starts[0] + 4,
        starts[1] + 4,
        starts[2] + 4,
        starts[3] + 4,
        -1,
        -1,
    ]


def test_classify_short_stun_has_no_transaction_id() -> None:
    header = struct.pack("!HHI", 0x0001, 0, MAGIC_COOKIE) + bytes(12)
    batch = batch_of(header[:8], header[:19], header[:7])
    result = classify(batch.buffer, batch.offsets, batch.lengths)
    assert result.kind.tolist() == [1, 1, 0]
    assert result.transaction_id_offset.tolist() == [-1, -1, -1]
    assert result.valid.tolist() == [False, False, False]


def test_classify_other_kinds() -> None:
    dtls = b"\x16\xfe\xfd" + bytes(10)
    rtp = b"\x80\x60" + bytes(10)
    wrong_cookie = struct.pack("!HHI", 0x0001, 0, 0x2112A443) + bytes(12)
    batch = batch_of(dtls, rtp, wrong_cookie, b"")
    result = classify(batch.buffer, batch.offsets, batch.lengths)
    assert result.kind.tolist() == [0, 0, 0, 0]
    assert result.valid.tolist() == [False] * 4


def test_classify_empty_batch() -> None:
    empty = np.zeros(0, np.int64)
    result = classify(np.zeros(0, np.uint8), empty, empty)
    assert len(result) == 0


def test_classify_zero_length_at_buffer_end() -> None:
    buffer = np.zeros(4, np.uint8)
    result = classify(buffer, np.array([4, 0], np.int64), np.array([0, 4], np.int64))
    assert result.kind.tolist() == [0, 0]


def test_classify_accepts_bytes_buffer() -> None:
    data = b"\x40\x00\x00\x00"
    result = classify(data, np.array([0]), np.array([4]))
    assert result.kind.tolist() == [2]


def test_classify_int32_indices() -> None:
    batch = batch_of(b"\x40\x00\x00\x00", b"junk")
    result = classify(
        batch.buffer, batch.offsets.astype(np.int32), batch.lengths.astype(np.int32)
    )
    assert_matches_reference(result, batch)


def test_classify_into_preallocated() -> None:
    out = Classification.empty(8)
    batch = batch_of(b"\x40\x00\x00\x00", b"junk")
    result = classify(batch.buffer, batch.offsets, batch.lengths, out=out)
    assert len(result) == 2
    assert np.shares_memory(result.kind, out.kind)
    assert_matches_reference(result, batch)


def test_classify_into_exact_size_returns_out() -> None:
    out = Classification.empty(2)
    batch = batch_of(b"\x40\x00\x00\x00", b"junk")
    assert classify(batch.buffer, batch.offsets, batch.lengths, out=out) is out


def test_classification_is_frozen() -> None:
    result = Classification.empty(1)
    with pytest.raises(AttributeError):
        result.kind = np.zeros(1, np.uint8)  # type: ignore[misc]


@settings(max_examples=300, deadline=None)
@given(st.lists(datagrams, max_size=12), st.lists(st.integers(0, 5), max_size=4))
def test_classify_matches_reference(items: list[bytes], gaps: list[int]) -> None:
    batch = lay_out(items, gaps)
    result = classify(batch.buffer, batch.offsets, batch.lengths)
    assert_matches_reference(result, batch)

    narrow = classify(
        batch.buffer, batch.offsets.astype(np.int32), batch.lengths.astype(np.int32)
    )
    assert_matches_reference(narrow, batch)


@settings(max_examples=200, deadline=None)
@given(st.one_of(stun_messages(), raw_stun_messages(), damaged(stun_messages())))
def test_reference_framing_matches_frame_error(data: bytes) -> None:
    assert reference_frame_valid(data) == (frame_error(data) is None)


# Integrity and fingerprint.


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(stun_messages(), damaged(stun_messages())), max_size=10))
def test_check_integrity_one_key_matches_parse(items: list[bytes]) -> None:
    batch = lay_out(items, [1])
    result = check_integrity(batch.buffer, batch.offsets, batch.lengths, KEYS[0])
    assert result.dtype == np.bool_
    assert result.tolist() == [reference_integrity(d, KEYS[0]) for d in items]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(stun_messages(), damaged(stun_messages()), channel_data()),
            st.integers(-1, len(KEYS) - 1),
        ),
        max_size=10,
    )
)
def test_check_integrity_key_index_matches_parse(
    items: list[tuple[bytes, int]],
) -> None:
    batch = lay_out([d for d, _ in items], [0, 2])
    key_index = np.array([k for _, k in items], np.int32)
    result = check_integrity(
        batch.buffer, batch.offsets, batch.lengths, KEYS, key_index
    )
    expected = [reference_integrity(d, KEYS[k] if k >= 0 else None) for d, k in items]
    assert result.tolist() == expected

    wide = check_integrity(
        batch.buffer,
        batch.offsets.astype(np.int32),
        batch.lengths.astype(np.int32),
        KEYS,
        key_index.astype(np.int64),
    )
    assert wide.tolist() == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(datagrams, max_size=10))
def test_check_fingerprint_matches_parse(items: list[bytes]) -> None:
    batch = lay_out(items, [2])
    result = check_fingerprint(batch.buffer, batch.offsets, batch.lengths)
    assert result.dtype == np.bool_
    assert result.tolist() == [reference_fingerprint(d) for d in items]


def test_check_integrity_sha256_preferred() -> None:
    builder = MessageBuilder(0x0001, bytes(12))
    builder.add_message_integrity(KEYS[1])
    builder.add_message_integrity_sha256(KEYS[0])
    batch = batch_of(builder.finish(fingerprint=True))
    result = check_integrity(batch.buffer, batch.offsets, batch.lengths, KEYS[0])
    assert result.tolist() == [True]


def test_check_integrity_rejects_bad_framing() -> None:
    builder = MessageBuilder(0x0001, bytes(12))
    builder.add_username("user")
    message = bytearray(builder.finish(KEYS[0]))
    message += b"\x00"  # one byte past the length field
    batch = batch_of(bytes(message))
    result = check_integrity(batch.buffer, batch.offsets, batch.lengths, KEYS[0])
    assert result.tolist() == [False]


def test_check_integrity_into_out() -> None:
    builder = MessageBuilder(0x0001, bytes(12))
    batch = batch_of(builder.finish(KEYS[0]), b"junk")
    out = np.ones(5, np.bool_)
    result = check_integrity(
        batch.buffer, batch.offsets, batch.lengths, KEYS[0], out=out
    )
    assert result.tolist() == [True, False]
    assert out.tolist() == [True, False, True, True, True]


def test_check_fingerprint_attribute_lookalike() -> None:
    # The last 8 bytes of SOFTWARE look like a FINGERPRINT attribute header
    # and value, but they are inside another attribute.
    builder = MessageBuilder(0x0001, bytes(12))
    builder.add(0x8022, b"abcd" + struct.pack("!HHI", FINGERPRINT, 4, 0))
    batch = batch_of(builder.finish())
    result = check_fingerprint(batch.buffer, batch.offsets, batch.lengths)
    assert result.tolist() == [False]


# A MESSAGE-INTEGRITY-SHA256 after an ignored attribute is ignored as well, so
# both checks fall back to MESSAGE-INTEGRITY.
def test_check_integrity_sha256_after_other_attribute() -> None:
    builder = MessageBuilder(0x0001, bytes(12))
    builder.add_username("user")
    builder.add_message_integrity(KEYS[0])
    message = bytearray(builder.finish())
    message += struct.pack("!HH", 0x8022, 4) + b"soft"
    message += struct.pack("!HH", MESSAGE_INTEGRITY_SHA256, 32) + bytes(32)
    struct.pack_into("!H", message, 2, len(message) - 20)
    batch = batch_of(bytes(message))
    result = check_integrity(batch.buffer, batch.offsets, batch.lengths, KEYS[0])
    assert result.tolist() == [reference_integrity(bytes(message), KEYS[0])]


# Errors.

GOOD = batch_of(b"\x40\x00\x00\x00", b"junk")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("buffer", GOOD.buffer.astype(np.int8), "buffer must be a 1-D"),
        ("buffer", GOOD.buffer.reshape(2, 4), "shape (2, 4)"),
        ("buffer", GOOD.buffer[::2], "not C-contiguous"),
        ("buffer", "text", "got str"),
        ("offsets", GOOD.offsets.astype(np.float64), "dtype float64"),
        ("offsets", GOOD.offsets.astype(np.uint64), "dtype uint64"),
        ("offsets", GOOD.offsets.reshape(1, 2), "shape (1, 2)"),
        ("offsets", 3, "got int"),
        ("lengths", GOOD.lengths.astype(np.int32), "the same dtype"),
        ("lengths", [4, 4], "got list"),
    ],
)
def test_classify_rejects_wrong_type(name: str, value: object, message: str) -> None:
    arguments: dict[str, object] = {
        "buffer": GOOD.buffer,
        "offsets": GOOD.offsets,
        "lengths": GOOD.lengths,
    }
    arguments[name] = value
    with pytest.raises(TypeError, match=name) as info:
        classify(**arguments)  # type: ignore[arg-type]
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("offsets", "lengths", "message"),
    [
        ([0, 5], [4, 4], "datagram 1 (offset 5, length 4) is outside the 8-byte"),
        ([-1, 4], [4, 4], "datagram 0 (offset -1, length 4)"),
        ([0, 4], [4, -1], "datagram 1 (offset 4, length -1)"),
        ([9, 0], [0, 0], "datagram 0 (offset 9, length 0)"),
        ([0, 2**62], [4, 2**62], "datagram 1"),
        ([0], [4, 4], "offsets has 1 entries but lengths has 2"),
    ],
)
def test_classify_rejects_out_of_bounds(
    offsets: list[int], lengths: list[int], message: str
) -> None:
    with pytest.raises(ValueError) as info:
        classify(GOOD.buffer, np.array(offsets, np.int64), np.array(lengths, np.int64))
    assert message in str(info.value)


def test_classify_rejects_short_out() -> None:
    with pytest.raises(ValueError, match="output array kind has 1 entries"):
        classify(GOOD.buffer, GOOD.offsets, GOOD.lengths, out=Classification.empty(1))


def test_check_fingerprint_rejects_out_of_bounds() -> None:
    with pytest.raises(ValueError, match="datagram 1"):
        check_fingerprint(GOOD.buffer, GOOD.offsets, GOOD.lengths + 1)


def test_check_integrity_rejects_out_of_bounds() -> None:
    with pytest.raises(ValueError, match="datagram 1"):
        check_integrity(GOOD.buffer, GOOD.offsets, GOOD.lengths + 1, KEYS[0])


@pytest.mark.parametrize(
    ("keys", "key_index", "error", "message"),
    [
        (b"password", None, TypeError, "wrap the key bytes"),
        (42, None, TypeError, "got int"),
        ([], np.array([0, 0], np.int32), ValueError, "keys is empty"),
        ([KEYS[0], "x"], np.array([0, 0], np.int32), TypeError, "keys[1]"),
        (KEYS, None, ValueError, "key_index is required"),
        (KEYS, np.array([0, 3], np.int32), ValueError, "key_index[1] is 3"),
        (KEYS, np.array([-2, 0], np.int32), ValueError, "key_index[0] is -2"),
        (KEYS, np.array([0], np.int32), ValueError, "key_index has 1 entries"),
        (KEYS, np.array([0.0, 1.0]), TypeError, "key_index must be"),
    ],
)
def test_check_integrity_rejects_bad_keys(
    keys: object, key_index: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        check_integrity(
            GOOD.buffer,
            GOOD.offsets,
            GOOD.lengths,
            keys,  # type: ignore[arg-type]
            key_index,  # type: ignore[arg-type]
        )
    assert message in str(info.value)


def test_classification_empty_rejects_negative() -> None:
    with pytest.raises(ValueError, match="-1"):
        Classification.empty(-1)


@pytest.mark.parametrize("name", ["buffer", "offsets", "lengths"])
@pytest.mark.parametrize(
    "function",
    [
        lambda **a: classify(**a),
        lambda **a: check_fingerprint(**a),
        lambda **a: check_integrity(**a, keys=KEYS[0]),
    ],
    ids=["classify", "check_fingerprint", "check_integrity"],
)
def test_batch_rejects_none_input(function: Callable[..., object], name: str) -> None:
    arguments: dict[str, object] = {
        "buffer": GOOD.buffer,
        "offsets": GOOD.offsets,
        "lengths": GOOD.lengths,
    }
    arguments[name] = None

    with pytest.raises(TypeError, match=f"{name} must be .* got None"):
        function(**arguments)


def _classification(**replaced: object) -> Classification:
    fields = dataclasses.asdict(Classification.empty(2))
    fields.update(replaced)
    return Classification(**fields)


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("x", "out must be a Classification"),
        ({"kind": np.empty(2, np.uint8)}, "out must be a Classification"),
        (_classification(kind=np.empty(2, np.int8)), "out.kind must be"),
        (_classification(kind=np.empty(2, np.bool_)), "out.kind must be"),
        (_classification(method=np.empty(2, np.int16)), "out.method must be"),
        (
            _classification(transaction_id_offset=np.empty(2, np.int32)),
            "out.transaction_id_offset must be",
        ),
        (_classification(valid=np.empty(2, np.int8)), "out.valid must be"),
        (_classification(payload_length=np.empty(2, np.int64)), "out.payload_length"),
        (_classification(channel=[0, 0]), "out.channel must be"),
        (_classification(kind=np.empty((2, 2), np.uint8)), "shape (2, 2)"),
        (_classification(kind=np.empty(4, np.uint8)[::2]), "not C-contiguous"),
    ],
)
def test_classify_rejects_wrong_out(out: object, message: str) -> None:
    with pytest.raises(TypeError) as info:
        classify(GOOD.buffer, GOOD.offsets, GOOD.lengths, out=out)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_classify_rejects_read_only_out() -> None:
    kind = np.empty(2, np.uint8)
    kind.flags.writeable = False

    with pytest.raises(ValueError, match=r"out\.kind is read-only"):
        classify(
            GOOD.buffer, GOOD.offsets, GOOD.lengths, out=_classification(kind=kind)
        )


def test_classify_accepts_uint8_valid() -> None:
    out = _classification(valid=np.empty(2, np.uint8))

    result = classify(GOOD.buffer, GOOD.offsets, GOOD.lengths, out=out)

    assert result is out


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.float64])
@pytest.mark.parametrize(
    "function",
    [
        lambda out: check_fingerprint(GOOD.buffer, GOOD.offsets, GOOD.lengths, out=out),
        lambda out: check_integrity(
            GOOD.buffer, GOOD.offsets, GOOD.lengths, KEYS[0], out=out
        ),
    ],
    ids=["check_fingerprint", "check_integrity"],
)
def test_checks_reject_wrong_out_dtype(
    function: Callable[[object], object], dtype: type[np.generic]
) -> None:
    with pytest.raises(TypeError, match="out must be a 1-D C-contiguous bool"):
        function(np.empty(2, dtype))


@pytest.mark.parametrize(
    "function",
    [
        lambda out: check_fingerprint(GOOD.buffer, GOOD.offsets, GOOD.lengths, out=out),
        lambda out: check_integrity(
            GOOD.buffer, GOOD.offsets, GOOD.lengths, KEYS[0], out=out
        ),
    ],
    ids=["check_fingerprint", "check_integrity"],
)
def test_checks_reject_text_out(function: Callable[[object], object]) -> None:
    with pytest.raises(TypeError, match="got str"):
        function("x")


def test_check_integrity_key_index_with_one_key_rejected() -> None:
    with pytest.raises(ValueError, match="key_index needs a sequence of keys"):
        check_integrity(
            GOOD.buffer,
            GOOD.offsets,
            GOOD.lengths,
            KEYS[0],
            np.array([0, 0], np.int32),
        )
