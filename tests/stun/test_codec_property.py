"""Property tests of the STUN codec: bad input raises only StunParseError.

The checks on each input come from the fuzz harness (fuzz/fuzz_stun.py), so
the tests and the fuzzer hold the codec to the same rules. parse and every
accessor of Message raise nothing but StunParseError, its offset points into
the input, and frame_error agrees with parse.
"""

from __future__ import annotations

import binascii
import importlib.util
import random
import struct
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rice_fast.stun import (
    MAGIC_COOKIE,
    IntegrityKey,
    MessageBuilder,
    StunBuildError,
    StunParseError,
    parse,
)

HARNESS_PATH = Path(__file__).resolve().parents[2] / "fuzz" / "fuzz_stun.py"


def load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rice_fast_fuzz_stun", HARNESS_PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


harness = load_harness()
exercise: Callable[[bytes], None] = harness.exercise
mutate: Callable[[bytes, random.Random], bytes] = harness.mutate
SEEDS: list[bytes] = harness.seed_messages()

INTEGRITY_TYPES = {0x0008, 0x001C, 0x8028}
KEY = IntegrityKey(b"property-password")

# No deadline: the tests check behaviour, never timing. 300 examples of each
# run in about a second.
property_settings = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def header(body: bytes, msg_type: int = 0x0001) -> bytes:
    return struct.pack("!HHI", msg_type, len(body), MAGIC_COOKIE) + bytes(12)


def test_seeds_are_valid() -> None:
    assert len(SEEDS) >= 10
    for data in SEEDS:
        message = parse(data, legacy=True)
        assert message.size == len(data)
        exercise(data)


def test_harness_knows_every_method() -> None:
    # exercise_message calls each public method with the arguments listed in
    # the harness table, or with none. A method that needs arguments but is
    # missing from the table raises TypeError in test_seeds_are_valid.
    names = set(harness.public_names())
    table: dict[str, object] = harness.METHOD_ARGUMENTS
    assert set(table) <= names
    assert {"get", "attributes", "attribute_types", "check_fingerprint"} <= names


@property_settings
@given(st.binary(max_size=256))
def test_random_bytes(data: bytes) -> None:
    exercise(data)


@property_settings
@given(
    st.integers(0, 0x3FFF),
    st.binary(max_size=256),
)
def test_random_body_valid_header(msg_type: int, raw_body: bytes) -> None:
    body = raw_body + bytes(-len(raw_body) % 4)
    exercise(header(body, msg_type) + body)


@property_settings
@given(st.sampled_from(SEEDS), st.integers(0, 2**32 - 1))
def test_mutated_seeds(seed: bytes, rng_seed: int) -> None:
    exercise(mutate(seed, random.Random(rng_seed)))


@property_settings
@given(st.sampled_from(SEEDS), st.data())
def test_bit_flips(seed: bytes, data: st.DataObject) -> None:
    flipped = bytearray(seed)
    positions = data.draw(
        st.lists(st.integers(0, len(seed) * 8 - 1), min_size=1, max_size=8)
    )
    for bit in positions:
        flipped[bit // 8] ^= 0x80 >> (bit % 8)
    exercise(bytes(flipped))


@property_settings
@given(st.sampled_from(SEEDS), st.data())
def test_truncation(seed: bytes, data: st.DataObject) -> None:
    size = data.draw(st.integers(0, len(seed) - 1))
    exercise(seed[:size])
    # Keep the header length in step with the cut, so the attribute walk runs.
    cut = bytearray(seed[: max(size, 20)])
    struct.pack_into("!H", cut, 2, len(cut) - 20)
    exercise(bytes(cut))


@property_settings
@given(st.sampled_from(SEEDS), st.integers(0, 0xFFFF), st.data())
def test_length_field_edits(seed: bytes, length: int, data: st.DataObject) -> None:
    edited = bytearray(seed)
    struct.pack_into("!H", edited, 2, length)
    exercise(bytes(edited))

    # Rewrite the length field of one attribute.
    offsets = attribute_offsets(seed)
    if offsets:
        position = data.draw(st.sampled_from(offsets))
        edited = bytearray(seed)
        struct.pack_into("!H", edited, position + 2, length)
        exercise(bytes(edited))


def attribute_offsets(data: bytes) -> list[int]:
    """Return the offsets of the attribute headers of a valid message."""
    offsets = []
    position = 20
    while position + 4 <= len(data):
        offsets.append(position)
        (attr_length,) = struct.unpack_from("!H", data, position + 2)
        position += 4 + attr_length + (-attr_length % 4)
    return offsets


# Build, then parse.

attribute_types = st.integers(0, 0xFFFF).filter(lambda t: t not in INTEGRITY_TYPES)
attribute_lists = st.lists(
    st.tuples(attribute_types, st.binary(max_size=64)), max_size=24
)


@property_settings
@given(
    st.integers(0, 0x3FFF),
    st.binary(min_size=12, max_size=12),
    attribute_lists,
    st.sampled_from(["none", "sha1", "sha256"]),
    st.booleans(),
)
def test_build_parse_round_trip(
    msg_type: int,
    transaction_id: bytes,
    attributes: list[tuple[int, bytes]],
    integrity: str,
    fingerprint: bool,
) -> None:
    builder = MessageBuilder(msg_type, transaction_id)
    for attr_type, value in attributes:
        builder.add(attr_type, value)
    key = None if integrity == "none" else KEY
    data = builder.finish(key, sha256=integrity == "sha256", fingerprint=fingerprint)

    expected_size = 20 + sum(4 + len(v) + (-len(v) % 4) for _, v in attributes)
    expected_size += {"none": 0, "sha1": 24, "sha256": 36}[integrity]
    expected_size += 8 if fingerprint else 0
    assert len(data) == expected_size

    message = parse(data)
    assert message.message_type == msg_type
    assert message.transaction_id == transaction_id
    assert message.size == len(data)

    trailer = {"none": [], "sha1": [0x0008], "sha256": [0x001C]}[integrity]
    trailer += [0x8028] if fingerprint else []
    assert message.attribute_types() == [t for t, _ in attributes] + trailer

    for attr_type in {t for t, _ in attributes}:
        values = [v for t, v in attributes if t == attr_type]
        assert message.has(attr_type)
        assert message.raw(attr_type) == values[0]
        assert message.raw_all(attr_type) == values
        offset = message.attribute_offset(attr_type)
        assert data[offset : offset + len(values[0])] == values[0]

    if key is not None:
        assert message.check_integrity(key)
        assert not message.check_integrity(IntegrityKey(b"other"))
    assert message.check_fingerprint() == fingerprint
    exercise(data)


@property_settings
@given(attribute_lists, st.integers(0, 64))
def test_build_into_buffer_matches(
    attributes: list[tuple[int, bytes]], slack: int
) -> None:
    builder = MessageBuilder(0x0001, bytes(12))
    for attr_type, value in attributes:
        builder.add(attr_type, value)
    expected = builder.finish(KEY, fingerprint=True)

    buffer = bytearray(len(expected) + slack)
    into = MessageBuilder(0x0001, bytes(12), buffer)
    for attr_type, value in attributes:
        into.add(attr_type, value)
    written = into.finish_into(KEY, fingerprint=True)
    assert written == len(expected)
    assert bytes(buffer[:written]) == expected


@property_settings
@given(attribute_lists.filter(bool), st.integers(1, 64))
def test_build_into_short_buffer_raises(
    attributes: list[tuple[int, bytes]], shortfall: int
) -> None:
    builder = MessageBuilder(0x0001, bytes(12))
    for attr_type, value in attributes:
        builder.add(attr_type, value)
    size = builder.length

    buffer = bytearray(max(20, size - shortfall))
    into = MessageBuilder(0x0001, bytes(12), buffer)
    with pytest.raises(StunBuildError, match="does not fit"):
        for attr_type, value in attributes:
            into.add(attr_type, value)
    assert into.length <= len(buffer)


def test_parse_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        parse(b"\x00")
    assert issubclass(StunParseError, ValueError)


@given(st.binary(max_size=2000), st.binary(min_size=12, max_size=12))
def test_fingerprint_matches_zlib_crc32(value: bytes, transaction_id: bytes) -> None:
    # The codec computes CRC-32 by carry-less multiplication for 64 bytes
    # and more, by table otherwise; zlib is the independent reference.
    builder = MessageBuilder(0x0001, transaction_id)
    builder.add(0x8022, value)
    data = builder.finish(fingerprint=True)
    expected = binascii.crc32(data[:-8]) ^ 0x5354554E
    assert int.from_bytes(data[-4:], "big") == expected
    assert parse(data).check_fingerprint()
