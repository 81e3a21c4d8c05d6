"""Published STUN test vectors: RFC 5769 §2.1 to §2.4 and RFC 8489 Appendix B.1.

Each vector is parsed, its integrity checked with a key derived by
``rice_fast.stun.credentials``, its fingerprint checked, its attributes read
through the codec, and a copy with one byte flipped must fail integrity.
"""

from __future__ import annotations

import pytest

from rice_fast.stun import (
    AttributeType,
    IntegrityKey,
    MessageBuilder,
    MessageClass,
    Method,
    message_type,
    parse,
)
from rice_fast.stun.credentials import (
    PasswordAlgorithm,
    SecurityFeatures,
    long_term_key,
    nonce_features,
    short_term_key,
    userhash,
)
from rice_fast.stun.errors import StunParseError


def unhex(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


def flipped(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


# RFC 5769 §2.1 to §2.3 share this password and transaction ID.
RFC5769_PASSWORD = "VOkJxbRl1RmTxUk/WvJxBt"
RFC5769_TRANSACTION_ID = unhex("b7 e7 a7 01 bc 34 d6 86 fa 87 df ae")

# RFC 5769 §2.1, Sample Request.
RFC5769_REQUEST = unhex(
    """
    00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
    00 24 00 04 6e 00 01 ff
    80 29 00 08 93 2f f9 b1 51 26 3b 36
    00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
    00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
    80 28 00 04 e5 7a 3b cf
    """
)

# RFC 5769 §2.2, Sample IPv4 Response.
RFC5769_IPV4_RESPONSE = unhex(
    """
    01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
    00 20 00 08 00 01 a1 47 e1 12 a6 43
    00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
    80 28 00 04 c0 7d 4c 96
    """
)

# RFC 5769 §2.3, Sample IPv6 Response.
RFC5769_IPV6_RESPONSE = unhex(
    """
    01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
    00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
    00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
    80 28 00 04 c8 fb 0b 4c
    """
)

# RFC 5769 §2.4 and RFC 8489 Appendix B.1 share the username, password and
# realm. The password is U+00AD, U+00AA and U+2168 among ASCII letters, and
# both RFCs give "TheMatrIX" as its prepared form.
MATRIX_USERNAME = "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
MATRIX_PASSWORD = "The\u00adM\u00aatr\u2168"
MATRIX_REALM = "example.org"

# RFC 5769 §2.4, Sample Request with Long-Term Authentication. It has no
# FINGERPRINT attribute.
RFC5769_LONG_TERM_NONCE = "f//499k954d6OL34oL9FSTvy64sA"
RFC5769_LONG_TERM_REQUEST = unhex(
    """
    00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
    00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
    00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34
                6f 4c 39 46 53 54 76 79 36 34 73 41
    00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
    00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66
    """
)

# RFC 8489 Appendix B.1, Sample Request with Long-Term Authentication with
# MESSAGE-INTEGRITY-SHA256 and USERHASH, as published.
RFC8489_NONCE = "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA"
RFC8489_TRANSACTION_ID = unhex("78 ad 34 33 c6 ad 72 c0 29 da 41 2e")
RFC8489_REQUEST = unhex(
    """
    00 01 00 9c 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
    00 1e 00 20 4a 3c f3 8f ef 69 92 bd a9 52 c6 78 04 17 da 0f
                24 81 94 15 56 9e 60 b2 05 c4 6e 41 40 7f 17 04
    00 15 00 29 6f 62 4d 61 74 4a 6f 73 32 41 41 41 43 66 2f 2f
                34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39
                46 53 54 76 79 36 34 73 41 00 00 00
    00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
    00 1c 00 20 e4 68 6c 8f 0e de b5 90 13 e0 70 90 01 0a 93 ef
                cc bc cc 54 4c 0a 45 d9 f8 30 aa 6d 6f 73 5a 01
    """
)
# The attributes above take 136 bytes (0x88), but the published length field
# is 0x9c, and the published HMAC was computed over a header that carries
# 0x9c. A receiver that follows RFC 8489 §14.6 can therefore not verify the
# sample as printed.
RFC8489_CONSISTENT_LENGTH = 0x88


# RFC 5769 §2.1 to §2.3 use short-term credentials.
SHORT_TERM_VECTORS = [
    pytest.param(RFC5769_REQUEST, id="rfc5769-2.1-request"),
    pytest.param(RFC5769_IPV4_RESPONSE, id="rfc5769-2.2-ipv4-response"),
    pytest.param(RFC5769_IPV6_RESPONSE, id="rfc5769-2.3-ipv6-response"),
]


@pytest.mark.parametrize("data", SHORT_TERM_VECTORS)
def test_rfc5769_short_term_integrity(data: bytes) -> None:
    message = parse(data)
    key = IntegrityKey(short_term_key(RFC5769_PASSWORD))

    assert message.transaction_id == RFC5769_TRANSACTION_ID
    assert message.check_message_integrity(key)
    assert message.check_integrity(key)
    assert message.check_fingerprint()
    assert message.check(key)


@pytest.mark.parametrize("data", SHORT_TERM_VECTORS)
def test_rfc5769_short_term_wrong_password(data: bytes) -> None:
    message = parse(data)
    key = IntegrityKey(short_term_key(RFC5769_PASSWORD + "x"))

    assert not message.check_integrity(key)


@pytest.mark.parametrize("data", SHORT_TERM_VECTORS)
@pytest.mark.parametrize("where", ["first-attribute", "integrity-value"])
def test_rfc5769_short_term_flipped_byte(data: bytes, where: str) -> None:
    integrity_offset = parse(data).attribute_offset(AttributeType.MESSAGE_INTEGRITY)
    index = 25 if where == "first-attribute" else integrity_offset + 7
    message = parse(flipped(data, index))
    key = IntegrityKey(short_term_key(RFC5769_PASSWORD))

    assert not message.check_integrity(key)
    assert not message.check_fingerprint()


def test_rfc5769_request_attributes() -> None:
    # RFC 5769 §2.1: SOFTWARE, PRIORITY, ICE-CONTROLLED and USERNAME, whose
    # padding bytes are spaces.
    message = parse(RFC5769_REQUEST)

    assert message.message_type == message_type(Method.BINDING, MessageClass.REQUEST)
    assert message.software() == "STUN test client"
    assert message.priority() == 0x6E0001FF
    assert message.ice_controlled() == 0x932FF9B151263B36
    assert message.username() == "evtj:h6vY"
    assert message.attribute_types() == [
        AttributeType.SOFTWARE,
        AttributeType.PRIORITY,
        AttributeType.ICE_CONTROLLED,
        AttributeType.USERNAME,
        AttributeType.MESSAGE_INTEGRITY,
        AttributeType.FINGERPRINT,
    ]


def test_rfc5769_ipv4_response_attributes() -> None:
    # RFC 5769 §2.2: mapped address 192.0.2.1 port 32853.
    message = parse(RFC5769_IPV4_RESPONSE)

    assert message.is_success
    assert message.software() == "test vector"
    assert message.xor_mapped_address() == ("192.0.2.1", 32853)


def test_rfc5769_ipv6_response_attributes() -> None:
    # RFC 5769 §2.3: mapped address 2001:db8:1234:5678:11:2233:4455:6677
    # port 32853.
    message = parse(RFC5769_IPV6_RESPONSE)

    assert message.is_success
    assert message.software() == "test vector"
    assert message.xor_mapped_address() == (
        "2001:db8:1234:5678:11:2233:4455:6677",
        32853,
    )


def test_rfc5769_long_term_integrity() -> None:
    # RFC 5769 §2.4, MESSAGE-INTEGRITY keyed with the MD5 long-term key.
    message = parse(RFC5769_LONG_TERM_REQUEST)
    key = IntegrityKey(long_term_key(MATRIX_USERNAME, MATRIX_REALM, MATRIX_PASSWORD))

    assert message.check_message_integrity(key)
    assert message.check_integrity(key)


def test_rfc5769_long_term_has_no_fingerprint() -> None:
    message = parse(RFC5769_LONG_TERM_REQUEST)

    assert not message.has_fingerprint
    assert not message.check_fingerprint()


def test_rfc5769_long_term_attributes() -> None:
    message = parse(RFC5769_LONG_TERM_REQUEST)

    assert message.transaction_id == unhex("78 ad 34 33 c6 ad 72 c0 29 da 41 2e")
    assert message.username() == MATRIX_USERNAME
    assert message.nonce() == RFC5769_LONG_TERM_NONCE
    assert message.realm() == MATRIX_REALM
    assert nonce_features(RFC5769_LONG_TERM_NONCE) is None


@pytest.mark.parametrize("index", [25, 60, 90, -5], ids=str)
def test_rfc5769_long_term_flipped_byte(index: int) -> None:
    # Bytes in USERNAME, NONCE, REALM and the MESSAGE-INTEGRITY value.
    message = parse(flipped(RFC5769_LONG_TERM_REQUEST, index))
    key = IntegrityKey(long_term_key(MATRIX_USERNAME, MATRIX_REALM, MATRIX_PASSWORD))

    assert not message.check_integrity(key)


def test_rfc5769_long_term_wrong_password() -> None:
    message = parse(RFC5769_LONG_TERM_REQUEST)
    key = IntegrityKey(long_term_key(MATRIX_USERNAME, MATRIX_REALM, "TheMatrix"))

    assert not message.check_integrity(key)


def rfc8489_sha256_key() -> IntegrityKey:
    key = long_term_key(
        MATRIX_USERNAME, MATRIX_REALM, MATRIX_PASSWORD, PasswordAlgorithm.SHA256
    )
    return IntegrityKey(key)


def rfc8489_consistent_request() -> bytes:
    # The published bytes with the length field that matches them.
    length = RFC8489_CONSISTENT_LENGTH.to_bytes(2, "big")
    return RFC8489_REQUEST[:2] + length + RFC8489_REQUEST[4:]


def test_rfc8489_published_length_is_rejected() -> None:
    with pytest.raises(StunParseError):
        parse(RFC8489_REQUEST)


def test_rfc8489_published_hmac_matches_sha256_key() -> None:
    # RFC 8489 Appendix B.1: HMAC-SHA256 over the header as printed and the
    # attributes before MESSAGE-INTEGRITY-SHA256.
    signed = RFC8489_REQUEST[:-36]
    published = RFC8489_REQUEST[-32:]

    assert rfc8489_sha256_key().hmac_sha256(signed) == published


def test_rfc8489_published_hmac_fails_with_md5_key() -> None:
    key = IntegrityKey(long_term_key(MATRIX_USERNAME, MATRIX_REALM, MATRIX_PASSWORD))

    assert key.hmac_sha256(RFC8489_REQUEST[:-36]) != RFC8489_REQUEST[-32:]


def test_rfc8489_attributes() -> None:
    message = parse(rfc8489_consistent_request())

    assert message.transaction_id == RFC8489_TRANSACTION_ID
    assert message.raw(AttributeType.USERHASH) == userhash(
        MATRIX_USERNAME, MATRIX_REALM
    )
    assert message.nonce() == RFC8489_NONCE
    assert message.realm() == MATRIX_REALM
    assert message.has_message_integrity_sha256
    assert not message.has_message_integrity
    assert not message.has_fingerprint


def test_rfc8489_nonce_cookie_features() -> None:
    # "AAAC" is the 24-bit set 0x000002: bit 1, username anonymity, counted
    # from the least significant bit as RFC 8489 erratum 6290 says.
    features = nonce_features(RFC8489_NONCE)

    assert features == SecurityFeatures(0x000002)
    assert SecurityFeatures.PASSWORD_ALGORITHMS not in features
    assert SecurityFeatures.USERNAME_ANONYMITY in features


def test_rfc8489_consistent_length_breaks_published_hmac() -> None:
    message = parse(rfc8489_consistent_request())

    assert not message.check_message_integrity_sha256(rfc8489_sha256_key())


def test_rfc8489_rebuilt_request_verifies() -> None:
    # Rebuilding the sample with the codec gives the published attributes
    # byte for byte, and an integrity value that RFC 8489 §14.6 verifies.
    key = rfc8489_sha256_key()
    builder = MessageBuilder(
        message_type(Method.BINDING, MessageClass.REQUEST), RFC8489_TRANSACTION_ID
    )
    builder.add(AttributeType.USERHASH, userhash(MATRIX_USERNAME, MATRIX_REALM))
    builder.add_nonce(RFC8489_NONCE)
    builder.add_realm(MATRIX_REALM)
    builder.add_message_integrity_sha256(key)
    built = builder.finish()

    assert built[:-32] == rfc8489_consistent_request()[:-32]
    assert parse(built).check_message_integrity_sha256(key)
    assert parse(built).check_integrity(key)


@pytest.mark.parametrize("index", [30, 70, 125, -3], ids=str)
def test_rfc8489_rebuilt_request_flipped_byte(index: int) -> None:
    # Bytes in USERHASH, NONCE, REALM and the integrity value.
    key = rfc8489_sha256_key()
    builder = MessageBuilder(
        message_type(Method.BINDING, MessageClass.REQUEST), RFC8489_TRANSACTION_ID
    )
    builder.add(AttributeType.USERHASH, userhash(MATRIX_USERNAME, MATRIX_REALM))
    builder.add_nonce(RFC8489_NONCE)
    builder.add_realm(MATRIX_REALM)
    builder.add_message_integrity_sha256(key)
    built = builder.finish()

    assert not parse(flipped(built, index)).check_message_integrity_sha256(key)
