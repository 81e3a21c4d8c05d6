"""Unit tests of the compiled STUN codec: parse, MessageBuilder, frame_error."""

from __future__ import annotations

import gc
import pickle
import struct
from typing import TYPE_CHECKING, cast

import numpy as np
import numpy.typing as npt
import pytest

from rice_fast.stun import (
    MAGIC_COOKIE,
    IntegrityKey,
    Message,
    MessageBuilder,
    StunBuildError,
    StunParseError,
    frame_error,
    is_stun,
    new_transaction_id,
    parse,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer

TXID = bytes(range(1, 13))
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111

USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
MESSAGE_INTEGRITY_SHA256 = 0x001C
SOFTWARE = 0x8022
FINGERPRINT = 0x8028


def attribute(attr_type: int, value: bytes) -> bytes:
    """Encode one attribute with zero padding to a multiple of 4 bytes."""
    padding = b"\x00" * (-len(value) % 4)
    return struct.pack("!HH", attr_type, len(value)) + value + padding


def message(
    body: bytes,
    *,
    msg_type: int = BINDING_REQUEST,
    length: int | None = None,
    cookie: int = MAGIC_COOKIE,
) -> bytes:
    """Encode a header (with the real body length unless given) and a body."""
    if length is None:
        length = len(body)
    return struct.pack("!HHI", msg_type, length, cookie) + TXID + body


def as_buffer(array: npt.NDArray[np.uint8]) -> Buffer:
    # numpy's stubs declare ndarray.__buffer__ only for Python 3.12 and later.
    return cast("Buffer", array)


def parse_error(data: bytes) -> StunParseError:
    with pytest.raises(StunParseError) as info:
        parse(data)
    return info.value


# The header.

SHORT = "message is shorter than the 20-byte header"


@pytest.mark.parametrize("size", [0, 1, 4, 19])
def test_parse_short_message(size: int) -> None:
    error = parse_error(message(b"")[:size])
    assert error.reason == SHORT
    assert error.offset == size


@pytest.mark.parametrize("first_byte", [0x40, 0x80, 0xC0])
def test_parse_top_bits_set(first_byte: int) -> None:
    data = bytearray(message(b""))
    data[0] |= first_byte
    error = parse_error(bytes(data))
    assert (
        error.reason == "the two most significant bits of the message type are not zero"
    )
    assert error.offset == 0


@pytest.mark.parametrize("length", [1, 2, 3, 5, 10])
def test_parse_length_not_multiple_of_4(length: int) -> None:
    error = parse_error(message(b"\x00" * length))
    assert error.reason == "the length field is not a multiple of 4"
    assert error.offset == 2


@pytest.mark.parametrize(("length", "body_size"), [(8, 4), (4, 8), (0, 4), (4, 0)])
def test_parse_length_mismatch(length: int, body_size: int) -> None:
    error = parse_error(message(b"\x00" * body_size, length=length))
    assert error.reason == "the length field does not match the size of the data"
    assert error.offset == 2


def test_parse_longer_than_max() -> None:
    data = message(b"") + b"\x00" * 0x10000
    error = parse_error(data)
    assert error.reason == "message is longer than 65555 bytes"
    assert error.offset == 2


def test_parse_bad_cookie() -> None:
    error = parse_error(message(b"", cookie=0x2112A443))
    assert error.reason == "the magic cookie is not 0x2112a442"
    assert error.offset == 4


def test_parse_empty_message() -> None:
    msg = parse(message(b""))
    assert len(msg) == 0
    assert msg.attribute_types() == []
    assert msg.transaction_id == TXID
    assert msg.size == 20


def test_parse_header_fields() -> None:
    msg = parse(message(b"", msg_type=BINDING_ERROR))
    assert msg.message_type == BINDING_ERROR
    assert msg.method == 0x001
    assert msg.message_class == 3
    assert msg.is_error
    assert msg.is_response
    assert not msg.is_success
    assert not msg.is_request
    assert not msg.is_indication


# The attribute walk.


def test_parse_truncated_attribute_value() -> None:
    body = struct.pack("!HH", SOFTWARE, 8) + b"abcd"
    error = parse_error(message(body))
    assert error.reason == "attribute value runs past the end of the message"
    assert error.offset == 22


def test_parse_truncated_second_attribute_value() -> None:
    body = attribute(USERNAME, b"user") + struct.pack("!HH", SOFTWARE, 12) + b"abcd"
    error = parse_error(message(body))
    assert error.reason == "attribute value runs past the end of the message"
    assert error.offset == 20 + 8 + 2


def test_parse_truncated_attribute_header() -> None:
    # A cut attribute header or padding always leaves a body whose length is
    # not a multiple of 4, so the length check reports it first.
    body = attribute(USERNAME, b"user") + struct.pack("!H", SOFTWARE)
    error = parse_error(message(body))
    assert error.reason == "the length field is not a multiple of 4"
    assert error.offset == 2


def test_parse_truncated_attribute_padding() -> None:
    body = attribute(USERNAME, b"alice")[:-3]
    error = parse_error(message(body))
    assert error.reason == "the length field is not a multiple of 4"
    assert error.offset == 2

    # With the header length still counting the padding, the sizes disagree.
    error = parse_error(message(body, length=12))
    assert error.reason == "the length field does not match the size of the data"
    assert error.offset == 2


def test_parse_attribute_after_fingerprint() -> None:
    body = attribute(FINGERPRINT, b"\x00" * 4) + attribute(SOFTWARE, b"test")
    error = parse_error(message(body))
    assert error.reason == "an attribute follows FINGERPRINT"
    assert error.offset == 28


@pytest.mark.parametrize("length", [0, 16, 19, 21, 32])
def test_parse_message_integrity_wrong_length(length: int) -> None:
    body = attribute(USERNAME, b"user") + attribute(MESSAGE_INTEGRITY, b"\x00" * length)
    error = parse_error(message(body))
    assert error.reason == "MESSAGE-INTEGRITY is not 20 bytes long"
    assert error.offset == 28 + 2


@pytest.mark.parametrize("length", [0, 12, 15, 18, 33, 36])
def test_parse_message_integrity_sha256_wrong_length(length: int) -> None:
    body = attribute(MESSAGE_INTEGRITY_SHA256, b"\x00" * length)
    error = parse_error(message(body))
    assert (
        error.reason == "MESSAGE-INTEGRITY-SHA256 is not 16 to 32 bytes in steps of 4"
    )
    assert error.offset == 22


@pytest.mark.parametrize("length", [16, 20, 24, 28, 32])
def test_parse_message_integrity_sha256_lengths(length: int) -> None:
    msg = parse(message(attribute(MESSAGE_INTEGRITY_SHA256, b"\x00" * length)))
    assert msg.has_message_integrity_sha256
    assert msg.raw(MESSAGE_INTEGRITY_SHA256) == b"\x00" * length


@pytest.mark.parametrize("length", [0, 2, 3, 5, 8])
def test_parse_fingerprint_wrong_length(length: int) -> None:
    error = parse_error(message(attribute(FINGERPRINT, b"\x00" * length)))
    assert error.reason == "FINGERPRINT is not 4 bytes long"
    assert error.offset == 22


def test_parse_many_attributes() -> None:
    # More attributes than the index stores inline.
    body = b"".join(attribute(0x8000 + i, bytes([i]) * i) for i in range(40))
    msg = parse(message(body))
    assert len(msg) == 40
    assert msg.attribute_types() == [0x8000 + i for i in range(40)]
    assert msg.raw(0x8000 + 39) == bytes([39]) * 39


def test_parse_padding_content_ignored() -> None:
    body = struct.pack("!HH", USERNAME, 1) + b"a\xff\xff\xff"
    msg = parse(message(body))
    assert msg.raw(USERNAME) == b"a"


def test_parse_error_pickles() -> None:
    error = parse_error(message(b"", cookie=0))
    copy = pickle.loads(pickle.dumps(error))
    assert copy.reason == error.reason
    assert copy.offset == error.offset
    assert isinstance(copy, ValueError)


# frame_error and is_stun.


@pytest.mark.parametrize(
    "data",
    [
        b"",
        message(b"")[:10],
        message(b"", cookie=0),
        message(b"\x00" * 4, length=8),
        message(attribute(FINGERPRINT, b"\x00" * 8)),
        message(attribute(FINGERPRINT, b"\x00" * 4) + attribute(SOFTWARE, b"x")),
    ],
)
def test_frame_error_matches_parse(data: bytes) -> None:
    error = frame_error(data)
    assert error is not None
    expected = parse_error(data)
    assert error.reason == expected.reason
    assert error.offset == expected.offset


def test_frame_error_valid() -> None:
    assert frame_error(message(attribute(USERNAME, b"user"))) is None
    assert frame_error(bytearray(message(b""))) is None


def test_is_stun() -> None:
    assert is_stun(message(b""))
    assert is_stun(memoryview(message(attribute(USERNAME, b"u"))))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        message(b"")[:19],
        message(b"", msg_type=0x0401),
        message(b"", cookie=0),
        message(b"\x00" * 4, length=8),
        b"\x40\x00\x00\x04" + b"\x00" * 4,  # ChannelData
    ],
)
def test_is_stun_rejects(data: bytes) -> None:
    assert not is_stun(data)


# Attributes after the integrity attribute. RFC 5389 §15.4: agents ignore the
# attributes after MESSAGE-INTEGRITY, except FINGERPRINT (and, in this codec,
# MESSAGE-INTEGRITY-SHA256, which RFC 8489 added).


def message_with_trailing_software() -> bytes:
    body = (
        attribute(USERNAME, b"user")
        + attribute(MESSAGE_INTEGRITY, b"\x11" * 20)
        + attribute(SOFTWARE, b"ignored")
        + attribute(USERNAME, b"other")
    )
    return message(body)


def test_attributes_after_integrity_ignored() -> None:
    msg = parse(message_with_trailing_software())
    assert not msg.has(SOFTWARE)
    assert msg.raw(SOFTWARE) is None
    assert msg.get(SOFTWARE) is None
    assert msg.software() is None
    assert msg.attribute_offset(SOFTWARE) == -1
    assert msg.raw_all(USERNAME) == [b"user"]
    assert msg.username() == "user"
    assert len(msg.attributes()) == 1


def test_attributes_after_integrity_listed() -> None:
    msg = parse(message_with_trailing_software())
    assert msg.attribute_types() == [USERNAME, MESSAGE_INTEGRITY, SOFTWARE, USERNAME]
    assert len(msg) == 4
    assert msg.has(MESSAGE_INTEGRITY)
    assert msg.raw(MESSAGE_INTEGRITY) == b"\x11" * 20
    assert msg.attribute_offset(MESSAGE_INTEGRITY) == 32


def test_unknown_after_integrity_not_reported() -> None:
    body = attribute(MESSAGE_INTEGRITY, b"\x00" * 20) + attribute(0x7FFF, b"")
    msg = parse(message(body))
    assert msg.unknown_comprehension_required() == []


def test_integrity_ignores_trailing_attributes() -> None:
    key = IntegrityKey(b"secret")
    builder = MessageBuilder(BINDING_REQUEST, TXID)
    builder.add_username("user")
    builder.add_message_integrity(key)
    signed = builder.finish()

    extra = attribute(SOFTWARE, b"appended")
    body = signed[20:] + extra
    data = signed[:2] + struct.pack("!H", len(body)) + signed[4:20] + body
    msg = parse(data)
    assert msg.check_integrity(key)
    assert not msg.has(SOFTWARE)


def test_sha256_after_message_integrity() -> None:
    key = IntegrityKey(b"secret")
    builder = MessageBuilder(BINDING_REQUEST, TXID)
    builder.add_username("user")
    builder.add_message_integrity(key)
    builder.add_message_integrity_sha256(key)
    builder.add_fingerprint()
    msg = parse(builder.finish())
    assert msg.attribute_types() == [
        USERNAME,
        MESSAGE_INTEGRITY,
        MESSAGE_INTEGRITY_SHA256,
        FINGERPRINT,
    ]
    assert msg.check_message_integrity(key)
    assert msg.check_message_integrity_sha256(key)
    assert msg.check_integrity(key)
    assert msg.check_fingerprint()
    assert msg.check(key)


def test_integrity_wrong_key() -> None:
    builder = MessageBuilder(BINDING_REQUEST, TXID)
    builder.add_username("user")
    msg = parse(builder.finish(IntegrityKey(b"secret"), fingerprint=True))
    wrong = IntegrityKey(b"Secret")
    assert not msg.check_integrity(wrong)
    assert not msg.check(wrong)
    assert msg.check(fingerprint=True)


def test_integrity_detects_changed_byte() -> None:
    key = IntegrityKey(b"secret")
    builder = MessageBuilder(BINDING_REQUEST, TXID)
    builder.add_username("user")
    data = bytearray(builder.finish(key))
    data[24] ^= 0x01
    msg = parse(data)
    assert not msg.check_integrity(key)


def test_fingerprint_detects_changed_byte() -> None:
    builder = MessageBuilder(BINDING_REQUEST, TXID)
    builder.add_username("user")
    data = bytearray(builder.finish(fingerprint=True))
    assert parse(bytes(data)).check_fingerprint()
    data[24] ^= 0x01
    msg = parse(data)
    assert not msg.check_fingerprint()
    assert not msg.check()


def test_no_integrity_attribute() -> None:
    msg = parse(message(attribute(USERNAME, b"user")))
    key = IntegrityKey(b"secret")
    assert not msg.has_integrity
    assert not msg.check_integrity(key)
    assert not msg.check_message_integrity(key)
    assert not msg.check_message_integrity_sha256(key)
    assert not msg.check_fingerprint()
    assert not msg.check(key, fingerprint=False)
    assert msg.check(fingerprint=False)


# The builder's ordering rules.


def signed_builder(stage: str) -> MessageBuilder:
    key = IntegrityKey(b"secret")
    builder = MessageBuilder(BINDING_REQUEST, TXID)
    builder.add_username("user")
    if stage in ("mi", "mi+sha256"):
        builder.add_message_integrity(key)
    if stage in ("sha256", "mi+sha256"):
        builder.add_message_integrity_sha256(key)
    if stage == "fingerprint":
        builder.add_fingerprint()
    return builder


@pytest.mark.parametrize("stage", ["mi", "sha256", "mi+sha256"])
def test_builder_rejects_attribute_after_integrity(stage: str) -> None:
    builder = signed_builder(stage)
    length = builder.length
    with pytest.raises(StunBuildError, match="after the integrity attribute"):
        builder.add_software("late")
    with pytest.raises(StunBuildError, match="after the integrity attribute"):
        builder.add(USERNAME, b"late")
    assert builder.length == length


def test_builder_allows_sha256_and_fingerprint_after_mi() -> None:
    builder = signed_builder("mi")
    builder.add_message_integrity_sha256(IntegrityKey(b"secret"), 16)
    builder.add_fingerprint()
    msg = parse(builder.finish())
    assert msg.attribute_types()[-3:] == [
        MESSAGE_INTEGRITY,
        MESSAGE_INTEGRITY_SHA256,
        FINGERPRINT,
    ]
    assert len(msg.raw(MESSAGE_INTEGRITY_SHA256) or b"") == 16


@pytest.mark.parametrize("stage", ["sha256", "mi+sha256"])
def test_builder_rejects_integrity_after_sha256(stage: str) -> None:
    builder = signed_builder(stage)
    key = IntegrityKey(b"secret")
    with pytest.raises(StunBuildError):
        builder.add_message_integrity(key)
    with pytest.raises(StunBuildError):
        builder.add_message_integrity_sha256(key)


def test_builder_rejects_message_integrity_twice() -> None:
    builder = signed_builder("mi")
    with pytest.raises(StunBuildError):
        builder.add_message_integrity(IntegrityKey(b"secret"))


@pytest.mark.parametrize("stage", ["open", "mi", "sha256", "mi+sha256"])
def test_builder_rejects_anything_after_fingerprint(stage: str) -> None:
    builder = signed_builder(stage)
    builder.add_fingerprint()
    key = IntegrityKey(b"secret")
    with pytest.raises(StunBuildError, match="after FINGERPRINT"):
        builder.add_software("late")
    with pytest.raises(StunBuildError, match="after FINGERPRINT"):
        builder.add_fingerprint()
    with pytest.raises(StunBuildError):
        builder.add_message_integrity(key)
    with pytest.raises(StunBuildError):
        builder.add_message_integrity_sha256(key)


@pytest.mark.parametrize("length", [0, 12, 18, 36])
def test_builder_rejects_sha256_length(length: int) -> None:
    builder = MessageBuilder(BINDING_REQUEST, TXID)
    with pytest.raises(StunBuildError, match=str(length)):
        builder.add_message_integrity_sha256(IntegrityKey(b"k"), length)


def test_builder_rejects_bad_header() -> None:
    with pytest.raises(
        StunBuildError, match=r"message type 16384 is outside 0\.\.16383"
    ):
        MessageBuilder(0x4000, TXID)
    with pytest.raises(StunBuildError, match="message type -1"):
        MessageBuilder(-1, TXID)
    with pytest.raises(StunBuildError, match="message type 1099511627776"):
        MessageBuilder(2**40, TXID)
    with pytest.raises(StunBuildError, match="12 bytes"):
        MessageBuilder(BINDING_REQUEST, TXID[:11])


def test_builder_rejects_oversized_value() -> None:
    builder = MessageBuilder(BINDING_REQUEST, TXID)
    with pytest.raises(StunBuildError, match="65536"):
        builder.add(0x8001, b"\x00" * 0x10000)
    builder.add(0x8001, b"\x00" * 0xFFF0)
    with pytest.raises(StunBuildError, match="exceeds 65535"):
        builder.add(0x8002, b"\x00" * 16)


def test_builder_rejects_attribute_type_out_of_range() -> None:
    builder = MessageBuilder(BINDING_REQUEST, TXID)
    with pytest.raises(StunBuildError, match="65536"):
        builder.add(0x10000, b"")
    with pytest.raises(StunBuildError, match="-1"):
        builder.add(-1, b"")


def test_finish_with_key_and_fingerprint() -> None:
    key = IntegrityKey(b"secret")
    builder = MessageBuilder(BINDING_REQUEST, TXID)
    builder.add_username("user")
    msg = parse(builder.finish(key, sha256=True, fingerprint=True))
    assert msg.attribute_types() == [USERNAME, MESSAGE_INTEGRITY_SHA256, FINGERPRINT]
    assert msg.check(key)


def test_builder_length_and_padding() -> None:
    builder = MessageBuilder(BINDING_REQUEST, TXID)
    assert builder.length == 20
    builder.add(SOFTWARE, b"abcde")
    assert builder.length == 32
    data = builder.finish()
    assert data[2:4] == b"\x00\x0c"
    assert data[-3:] == b"\x00\x00\x00"
    assert builder.transaction_id == TXID


# Building into a caller's buffer.


def test_builder_into_bytearray() -> None:
    expected_builder = MessageBuilder(BINDING_SUCCESS, TXID)
    expected_builder.add_xor_mapped_address("192.0.2.1", 32853)
    expected = expected_builder.finish(fingerprint=True)

    buffer = bytearray(256)
    builder = MessageBuilder(BINDING_SUCCESS, TXID, buffer)
    builder.add_xor_mapped_address("192.0.2.1", 32853)
    written = builder.finish_into(fingerprint=True)
    assert written == len(expected)
    assert bytes(buffer[:written]) == expected
    assert buffer[written:] == bytearray(256 - written)


def test_builder_into_numpy_array() -> None:
    buffer = np.zeros(64, dtype=np.uint8)
    builder = MessageBuilder(BINDING_REQUEST, TXID, as_buffer(buffer))
    builder.add_priority(7)
    written = builder.finish_into()
    assert written == 28
    msg = parse(as_buffer(buffer[:written]))
    assert msg.priority() == 7


def test_builder_buffer_overflow() -> None:
    buffer = bytearray(28)
    builder = MessageBuilder(BINDING_REQUEST, TXID, buffer)
    builder.add_priority(1)
    with pytest.raises(StunBuildError, match="36 bytes does not fit in the 28-byte"):
        builder.add_priority(2)
    assert builder.length == 28
    assert builder.finish_into() == 28
    assert parse(bytes(buffer)).priority() == 1


def test_finish_needs_matching_buffer_mode() -> None:
    external = MessageBuilder(BINDING_REQUEST, TXID, bytearray(64))
    with pytest.raises(StunBuildError, match="finish_into"):
        external.finish()
    owned = MessageBuilder(BINDING_REQUEST, TXID)
    with pytest.raises(StunBuildError, match=r"finish\(\)"):
        owned.finish_into()


def test_builder_buffer_smaller_than_header() -> None:
    with pytest.raises(StunBuildError, match="19 bytes"):
        MessageBuilder(BINDING_REQUEST, TXID, bytearray(19))


def test_builder_rejects_read_only_buffer() -> None:
    with pytest.raises(BufferError):
        MessageBuilder(BINDING_REQUEST, TXID, bytes(64))


# Parsing without copying.


def sample() -> bytes:
    builder = MessageBuilder(BINDING_REQUEST, TXID)
    builder.add_username("alice:bob")
    builder.add_priority(0x6E001EFF)
    return builder.finish()


@pytest.mark.parametrize(
    "wrap",
    [
        bytes,
        bytearray,
        memoryview,
        lambda data: np.frombuffer(data, dtype=np.uint8).copy(),
    ],
    ids=["bytes", "bytearray", "memoryview", "numpy"],
)
def test_parse_buffer_types(wrap: object) -> None:
    assert callable(wrap)
    msg = parse(wrap(sample()))
    assert msg.username() == "alice:bob"
    assert msg.priority() == 0x6E001EFF
    assert msg.size == len(sample())
    assert msg.data == sample()


def test_parse_bytes_keeps_object() -> None:
    data = sample()
    assert parse(data).data is data


def test_parse_bytearray_without_copy() -> None:
    data = bytearray(sample())
    msg = parse(data)
    offset = msg.attribute_offset(USERNAME)
    assert msg.raw(USERNAME) == b"alice:bob"
    data[offset] = ord("A")
    assert msg.raw(USERNAME) == b"Alice:bob"
    assert msg.username() == "Alice:bob"


def test_parse_numpy_without_copy() -> None:
    array = np.frombuffer(sample(), dtype=np.uint8).copy()
    msg = parse(as_buffer(array))
    array[msg.attribute_offset(USERNAME)] = ord("E")
    assert msg.raw(USERNAME) == b"Elice:bob"


def test_parse_memoryview_slice() -> None:
    datagrams = b"\xff" * 7 + sample() + b"\xee" * 5
    msg = parse(memoryview(datagrams)[7 : 7 + len(sample())])
    assert msg.username() == "alice:bob"
    assert msg.attribute_offset(USERNAME) == 24


def test_parse_holds_bytearray_export() -> None:
    data = bytearray(sample())
    msg = parse(data)
    with pytest.raises(BufferError):
        data.append(0)
    with pytest.raises(BufferError):
        del data[-4:]
    assert msg.username() == "alice:bob"

    del msg
    gc.collect()
    data.append(0)
    assert len(data) == len(sample()) + 1


def test_failed_parse_releases_buffer() -> None:
    data = bytearray(message(b"", cookie=0))
    with pytest.raises(StunParseError):
        parse(data)
    data.append(0)


def test_parse_rejects_non_buffer() -> None:
    with pytest.raises(TypeError):
        parse("not bytes")  # type: ignore[arg-type]


def test_message_not_constructible() -> None:
    with pytest.raises(TypeError, match="parse"):
        Message()


# RFC 3489 messages.


def rfc3489_binding_response() -> bytes:
    """A classic STUN Binding response: no magic cookie, 128-bit id."""
    transaction_id = bytes(range(0xA0, 0xB0))
    mapped = attribute(0x0001, struct.pack("!BBH4s", 0, 1, 3478, bytes([192, 0, 2, 7])))
    return struct.pack("!HH", BINDING_SUCCESS, len(mapped)) + transaction_id + mapped


def test_legacy_binding_response() -> None:
    msg = parse(rfc3489_binding_response(), legacy=True)
    assert msg.legacy
    assert msg.is_success
    assert msg.method == 0x001
    assert msg.legacy_transaction_id == bytes(range(0xA0, 0xB0))
    assert msg.address(0x0001) == ("192.0.2.7", 3478)
    assert msg.xor_mapped_address() == ("192.0.2.7", 3478)


def test_legacy_rejected_by_default() -> None:
    error = parse_error(rfc3489_binding_response())
    assert error.reason == "the magic cookie is not 0x2112a442"
    assert error.offset == 4


def test_legacy_still_checks_framing() -> None:
    data = rfc3489_binding_response()[:-4]
    with pytest.raises(StunParseError, match="does not match"):
        parse(data, legacy=True)


# Attribute accessors.


def test_unknown_comprehension_required() -> None:
    body = (
        attribute(USERNAME, b"user")
        + attribute(0x7FFF, b"")
        + attribute(0xC001, b"optional")
        + attribute(0x0FFF, b"x")
        + attribute(0x7FFF, b"again")
    )
    msg = parse(message(body))
    assert msg.unknown_comprehension_required() == [0x7FFF, 0x0FFF]
    assert msg.unknown_comprehension_required({USERNAME, 0x7FFF}) == [0x0FFF]
    assert msg.unknown_comprehension_required(frozenset()) == [USERNAME, 0x7FFF, 0x0FFF]


def test_error_code_reserved_bits_ignored() -> None:
    # RFC 8489 §14.8: the top 21 bits of ERROR-CODE are reserved, and
    # receivers must ignore them.
    value = bytes([0xFF, 0xFF, 0xF8 | 4, 1]) + b"Unauthenticated"
    msg = parse(message(attribute(ERROR_CODE, value), msg_type=BINDING_ERROR))
    assert msg.error_code() == (401, "Unauthenticated")


def test_error_code_round_trip() -> None:
    builder = MessageBuilder(BINDING_ERROR, TXID)
    builder.add_error_code(438, "Stale Nonce")
    data = builder.finish()
    assert data[24:28] == bytes([0, 0, 4, 38])
    assert parse(data).error_code() == (438, "Stale Nonce")


def test_error_code_malformed() -> None:
    short = parse(message(attribute(ERROR_CODE, b"\x00\x00\x04")))
    with pytest.raises(StunParseError) as info:
        short.error_code()
    assert info.value.offset == 22

    number = parse(message(attribute(ERROR_CODE, bytes([0, 0, 4, 100]))))
    with pytest.raises(StunParseError) as info:
        number.error_code()
    assert info.value.offset == 27


def test_builder_rejects_error_code_range() -> None:
    builder = MessageBuilder(BINDING_ERROR, TXID)
    with pytest.raises(StunBuildError, match="299"):
        builder.add_error_code(299)
    with pytest.raises(StunBuildError, match="700"):
        builder.add_error_code(700)


@pytest.mark.parametrize(
    ("host", "port"),
    [("192.0.2.1", 32853), ("2001:db8:1234:5678:11:2233:4455:6677", 32853)],
)
def test_xor_address_round_trip(host: str, port: int) -> None:
    builder = MessageBuilder(BINDING_SUCCESS, TXID)
    builder.add_xor_mapped_address(host, port)
    builder.add_xor_peer_address(host, port + 1)
    builder.add_xor_relayed_address(host, port + 2)
    builder.add_mapped_address(host, port + 3)
    msg = parse(builder.finish())
    assert msg.xor_mapped_address() == (host, port)
    assert msg.xor_peer_address() == (host, port + 1)
    assert msg.xor_relayed_address() == (host, port + 2)
    assert msg.address(0x0001) == (host, port + 3)


def test_xor_mapped_address_encoding() -> None:
    # XOR with the magic cookie: port 32853 ^ 0x2112, address ^ 0x2112a442.
    builder = MessageBuilder(BINDING_SUCCESS, TXID)
    builder.add_xor_mapped_address("192.0.2.1", 32853)
    value = parse(builder.finish()).raw(0x0020)
    assert value == bytes.fromhex("0001a147e112a643")


def test_xor_mapped_address_old_type() -> None:
    value = struct.pack("!BBHI", 0, 1, 5000 ^ 0x2112, 0x7F000001 ^ MAGIC_COOKIE)
    msg = parse(message(attribute(0x8020, value), msg_type=BINDING_SUCCESS))
    assert msg.xor_mapped_address() == ("127.0.0.1", 5000)


@pytest.mark.parametrize(
    ("value", "offset"),
    [
        (b"\x00\x01\x00", 22),
        (b"\x00\x01\x00\x00\x00\x00", 22),
        (b"\x00\x02\x00\x00" + b"\x00" * 4, 22),
        (b"\x00\x03\x00\x00" + b"\x00" * 4, 25),
    ],
)
def test_address_malformed(value: bytes, offset: int) -> None:
    msg = parse(message(attribute(0x0020, value)))
    with pytest.raises(StunParseError) as info:
        msg.xor_mapped_address()
    assert info.value.offset == offset


def test_builder_rejects_bad_address() -> None:
    builder = MessageBuilder(BINDING_SUCCESS, TXID)
    with pytest.raises(StunBuildError, match="not an IPv4 or IPv6"):
        builder.add_xor_mapped_address("example.com", 1)
    with pytest.raises(StunBuildError, match="65536"):
        builder.add_xor_mapped_address("192.0.2.1", 65536)


def test_ice_attributes_round_trip() -> None:
    builder = MessageBuilder(BINDING_REQUEST, TXID)
    builder.add_username("remote:local")
    builder.add_priority(0x7E0000FF)
    builder.add_ice_controlling(0xFEDCBA9876543210)
    builder.add_ice_controlled(1)
    builder.add_use_candidate()
    msg = parse(builder.finish())
    assert msg.username() == "remote:local"
    assert msg.priority() == 0x7E0000FF
    assert msg.ice_controlling() == 0xFEDCBA9876543210
    assert msg.ice_controlled() == 1
    assert msg.use_candidate()


def test_turn_attributes_round_trip() -> None:
    builder = MessageBuilder(0x0003, TXID)
    builder.add_requested_transport(17)
    builder.add_lifetime(600)
    builder.add_channel_number(0x4001)
    builder.add_data(b"\x01\x02\x03")
    builder.add_realm("example.org")
    builder.add_nonce("f//499k954d6OL34oL9FSTvy64sA")
    builder.add_software("rice_fast test")
    builder.add_unknown_attributes([0x7FFE, 0x7FFF])
    msg = parse(builder.finish())
    assert msg.raw(0x0019) == b"\x11\x00\x00\x00"
    assert msg.lifetime() == 600
    assert msg.channel_number() == 0x4001
    assert msg.data_attribute() == b"\x01\x02\x03"
    assert msg.realm() == "example.org"
    assert msg.nonce() == "f//499k954d6OL34oL9FSTvy64sA"
    assert msg.software() == "rice_fast test"
    assert msg.unknown_attributes() == [0x7FFE, 0x7FFF]


@pytest.mark.parametrize(
    ("attr_type", "accessor"),
    [
        (0x0024, Message.priority),
        (0x000D, Message.lifetime),
        (0x802A, Message.ice_controlling),
        (0x8029, Message.ice_controlled),
        (0x000C, Message.channel_number),
    ],
)
def test_fixed_size_accessor_wrong_length(attr_type: int, accessor: object) -> None:
    msg = parse(message(attribute(attr_type, b"\x00" * 6)))
    assert callable(accessor)
    with pytest.raises(StunParseError) as info:
        accessor(msg)
    assert info.value.offset == 22


def test_text_accessor_invalid_utf8() -> None:
    msg = parse(message(attribute(USERNAME, b"\xff\xfe")))
    with pytest.raises(StunParseError, match="UTF-8") as info:
        msg.username()
    assert info.value.offset == 24


def test_unknown_attributes_odd_length() -> None:
    msg = parse(message(attribute(0x000A, b"\x00\x01\x00")))
    with pytest.raises(StunParseError, match="odd"):
        msg.unknown_attributes()


def test_raw_all_and_offsets() -> None:
    body = (
        attribute(SOFTWARE, b"one")
        + attribute(USERNAME, b"u")
        + attribute(SOFTWARE, b"two")
    )
    msg = parse(message(body))
    assert msg.raw_all(SOFTWARE) == [b"one", b"two"]
    assert msg.raw(SOFTWARE) == b"one"
    assert msg.attribute_offset(SOFTWARE) == 24
    assert msg.attribute_offset(USERNAME) == 32
    assert msg.raw(0x1234) is None
    assert msg.raw_all(0x1234) == []


def test_new_transaction_id() -> None:
    ids = {new_transaction_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(txid) == 12 for txid in ids)


# Argument checking found by review: wrong types and hostile hosts.


@pytest.mark.parametrize(
    ("method", "arguments", "message"),
    [
        ("add_software", (5,), "text attribute value must be str or bytes"),
        ("add_lifetime", (600.7,), "lifetime must be an int, got float"),
        ("add_priority", (1.9,), "priority must be an int, got float"),
        ("add_error_code", (400.5,), "error code must be an int, got float"),
        ("add_error_code", (400, b"x"), "error reason must be a str, got bytes"),
        ("add_xor_mapped_address", ("1.2.3.4", 80.9), "port must be an int"),
        ("add_xor_mapped_address", (b"1.2.3.4", 80), "host"),
        ("add_attribute", (None,), "is not an attribute"),
    ],
)
def test_builder_rejects_wrong_types(
    method: str, arguments: tuple[object, ...], message: str
) -> None:
    builder = MessageBuilder(BINDING_REQUEST, TXID)
    with pytest.raises(TypeError, match=message):
        getattr(builder, method)(*arguments)
    assert builder.length == 20


def test_builder_accepts_numpy_integers() -> None:
    import numpy as np

    # The stubs say int, but anything with __index__ is accepted at run time.
    builder = MessageBuilder(np.uint16(BINDING_REQUEST), TXID)  # type: ignore[arg-type]
    builder.add_priority(np.uint32(7))  # type: ignore[arg-type]
    builder.add_xor_mapped_address("192.0.2.1", np.int64(80))  # type: ignore[arg-type]
    message = parse(builder.finish())
    assert message.priority() == 7
    assert message.xor_mapped_address() == ("192.0.2.1", 80)


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("10.0.0.1\x00.evil", "contains a NUL character"),
        ("1.2.3.4%eth0", "is not an IPv4 or IPv6 address"),
    ],
)
def test_builder_rejects_hostile_host(host: str, message: str) -> None:
    builder = MessageBuilder(BINDING_REQUEST, TXID)
    with pytest.raises(StunBuildError, match=message):
        builder.add_xor_mapped_address(host, 1)


def test_builder_drops_ipv6_zone() -> None:
    builder = MessageBuilder(BINDING_REQUEST, TXID)
    builder.add_xor_mapped_address("fe80::1%eth0", 1)
    assert parse(builder.finish()).xor_mapped_address() == ("fe80::1", 1)


@pytest.mark.parametrize("attr_type", [0x18022, -1, 2**40])
def test_lookup_rejects_type_out_of_range(attr_type: int) -> None:
    builder = MessageBuilder(BINDING_REQUEST, TXID)
    builder.add_software("x")
    message = parse(builder.finish())
    for lookup in (message.has, message.raw, message.raw_all, message.get):
        with pytest.raises(ValueError, match=r"outside 0\.\.0xffff"):
            lookup(attr_type)


def test_lookup_rejects_non_integer_type() -> None:
    message = parse(MessageBuilder(BINDING_REQUEST, TXID).finish())
    with pytest.raises(TypeError, match="attribute type must be an int"):
        message.has("SOFTWARE")  # type: ignore[arg-type]


def test_parse_rejects_non_contiguous_buffer() -> None:
    data = MessageBuilder(BINDING_REQUEST, TXID).finish() * 2
    with pytest.raises(TypeError, match="contiguous buffer"):
        parse(memoryview(data)[::2])


def test_unknown_attributes_deduplicated_and_capped() -> None:
    builder = MessageBuilder(BINDING_REQUEST, TXID)
    for attr_type in range(0x7000, 0x7000 + 500):
        builder.add(attr_type, b"")
        builder.add(attr_type, b"")
    unknown = parse(builder.finish()).unknown_comprehension_required()
    assert unknown == list(range(0x7000, 0x7000 + 32))
