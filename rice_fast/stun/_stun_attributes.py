"""The non-address attributes of RFC 8489, and RFC 7982's transmit counter.

Text limits follow RFC 8489: senders write at most the stated length, and
receivers accept longer values (up to 763 bytes, which the 16-bit length
field of any attribute already allows). So the constructors check the
limits and ``decode`` does not.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Final, Self

from rice_fast.stun._attribute_codec import (
    LENGTH_FIELD,
    U16_PAIR,
    U32,
    check_bytes,
    check_length,
    check_min_length,
    check_text,
    check_uint,
    decode_text,
    new_instance,
    set_field,
)
from rice_fast.stun._constants import AttributeType
from rice_fast.stun.errors import StunBuildError, StunParseError

__all__ = [
    "AlternateDomain",
    "ErrorCodeAttribute",
    "Fingerprint",
    "MessageIntegrity",
    "MessageIntegritySha256",
    "Nonce",
    "PasswordAlgorithm",
    "PasswordAlgorithms",
    "Realm",
    "Software",
    "TransactionTransmitCounter",
    "UnknownAttributes",
    "Userhash",
    "Username",
    "check_error_code",
    "decode_error_code",
]

# RFC 8489 §14.9, §14.10, §14.14 and §14.8: fewer than 128 characters,
# which "can be as long as 509 bytes when encoding them".
_MAX_TEXT_CHARS: Final = 127
_MAX_TEXT_BYTES: Final = 509

# One DNS label of RFC 1123 letters, digits and hyphens (A-labels included).
_DNS_LABEL: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")

_SHA256_LENGTHS: Final = (16, 20, 24, 28, 32)


def check_error_code(code: object, reason: object, name: str) -> None:
    """Check an error code (class 3..6, number 0..99) and its reason phrase."""
    if not 300 <= check_uint(code, 16, f"{name} code") <= 699:
        raise StunBuildError(
            f"{name} code {code} is outside 300..699 (class 3..6, number 0..99)"
        )
    check_text(reason, f"{name} reason", _MAX_TEXT_CHARS, _MAX_TEXT_BYTES)


def decode_error_code(value: bytes, name: str) -> tuple[int, str]:
    """Decode the class, number and reason that ERROR-CODE and
    ADDRESS-ERROR-CODE share in bytes 2 onwards.

    The reserved bits are ignored. The class is not range-checked, so an
    unexpected code such as 700 reaches the caller, which decides what it
    means. The reason is decoded with replacement characters, as
    ``Message.error_code()`` does, because it is only for display.
    """
    check_min_length(value, 4, name)
    number = value[3]
    if number > 99:
        raise StunParseError(f"{name} number {number} is above 99", 3)
    code = (value[2] & 0x07) * 100 + number
    return code, value[4:].decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Username:
    """USERNAME (RFC 8489 §14.3), already processed with OpaqueString.

    Built values are fewer than 509 UTF-8 bytes, as RFC 8489 requires (RFC
    5389 allowed 512).
    """

    username: str

    TYPE: ClassVar[int] = AttributeType.USERNAME

    def __post_init__(self) -> None:
        check_text(self.username, "USERNAME", 508, 508)

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the UTF-8 value."""
        return self.username.encode("utf-8")

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a UTF-8 value, or raise ``StunParseError``."""
        attribute = new_instance(cls)
        set_field(attribute, "username", decode_text(value, "USERNAME"))
        return attribute


@dataclass(frozen=True, slots=True)
class Userhash:
    """USERHASH (RFC 8489 §14.4): SHA-256 of ``username ":" realm``."""

    userhash: bytes

    TYPE: ClassVar[int] = AttributeType.USERHASH

    def __post_init__(self) -> None:
        set_field(
            self, "userhash", check_bytes(self.userhash, "USERHASH", lengths=(32,))
        )

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the 32-byte hash."""
        return self.userhash

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a 32-byte value, or raise ``StunParseError``."""
        check_length(value, 32, "USERHASH")
        attribute = new_instance(cls)
        set_field(attribute, "userhash", value)
        return attribute


@dataclass(frozen=True, slots=True)
class MessageIntegrity:
    """MESSAGE-INTEGRITY (RFC 8489 §14.5): a 20-byte HMAC-SHA1.

    Decoding does not verify it: use ``Message.check_integrity``. To sign a
    message, use ``MessageBuilder.add_message_integrity``, because adding
    this object writes its bytes as they are.
    """

    hmac: bytes

    TYPE: ClassVar[int] = AttributeType.MESSAGE_INTEGRITY

    def __post_init__(self) -> None:
        data = check_bytes(self.hmac, "MESSAGE-INTEGRITY", lengths=(20,))
        set_field(self, "hmac", data)

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the 20-byte HMAC."""
        return self.hmac

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a 20-byte value, or raise ``StunParseError``."""
        check_length(value, 20, "MESSAGE-INTEGRITY")
        attribute = new_instance(cls)
        set_field(attribute, "hmac", value)
        return attribute


@dataclass(frozen=True, slots=True)
class MessageIntegritySha256:
    """MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6): HMAC-SHA256, 16 to 32 bytes.

    As with ``MessageIntegrity``, decoding does not verify it, and
    ``MessageBuilder.add_message_integrity_sha256`` is the way to sign.
    """

    hmac: bytes

    TYPE: ClassVar[int] = AttributeType.MESSAGE_INTEGRITY_SHA256

    def __post_init__(self) -> None:
        data = check_bytes(
            self.hmac, "MESSAGE-INTEGRITY-SHA256", lengths=_SHA256_LENGTHS
        )
        set_field(self, "hmac", data)

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the (possibly truncated) HMAC."""
        return self.hmac

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a value of 16 to 32 bytes in steps of 4."""
        if len(value) not in _SHA256_LENGTHS:
            raise StunParseError(
                f"MESSAGE-INTEGRITY-SHA256 is {len(value)} bytes long, expected "
                "16 to 32 in steps of 4",
                LENGTH_FIELD,
            )
        attribute = new_instance(cls)
        set_field(attribute, "hmac", value)
        return attribute


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """FINGERPRINT (RFC 8489 §14.7): CRC-32 of the message XOR 0x5354554E.

    Decoding does not verify it: use ``Message.check_fingerprint``. To add
    a correct one, use ``MessageBuilder.add_fingerprint``.
    """

    fingerprint: int

    TYPE: ClassVar[int] = AttributeType.FINGERPRINT

    def __post_init__(self) -> None:
        check_uint(self.fingerprint, 32, "FINGERPRINT")

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the 4-byte value."""
        return U32.pack(self.fingerprint)

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a 4-byte value, or raise ``StunParseError``."""
        check_length(value, 4, "FINGERPRINT")
        attribute = new_instance(cls)
        set_field(attribute, "fingerprint", U32.unpack(value)[0])
        return attribute


@dataclass(frozen=True, slots=True)
class ErrorCodeAttribute:
    """ERROR-CODE (RFC 8489 §14.8): a 300..699 code and a reason phrase.

    ``ErrorCode(code).reason`` gives the phrase the RFCs recommend for a
    known code. The reserved bits are written as zero and ignored on
    receipt. See ``decode_error_code`` for what decoding accepts.
    """

    code: int
    reason: str = ""

    TYPE: ClassVar[int] = AttributeType.ERROR_CODE

    def __post_init__(self) -> None:
        check_error_code(self.code, self.reason, "ERROR-CODE")

    @property
    def error_class(self) -> int:
        """The hundreds digit of the code (3 to 6 in valid messages)."""
        return self.code // 100

    @property
    def number(self) -> int:
        """The code modulo 100."""
        return self.code % 100

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the 4-byte header and the UTF-8 reason."""
        head = U32.pack((self.code // 100) << 8 | self.code % 100)
        return head + self.reason.encode("utf-8")

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a value, or raise ``StunParseError`` if it is under 4 bytes
        or the number is above 99."""
        code, reason = decode_error_code(value, "ERROR-CODE")
        attribute = new_instance(cls)
        set_field(attribute, "code", code)
        set_field(attribute, "reason", reason)
        return attribute


@dataclass(frozen=True, slots=True)
class UnknownAttributes:
    """UNKNOWN-ATTRIBUTES (RFC 8489 §14.13): the types a 420 error rejects.

    The constructor takes any iterable of types and stores a tuple.
    """

    types: tuple[int, ...]

    TYPE: ClassVar[int] = AttributeType.UNKNOWN_ATTRIBUTES

    def __post_init__(self) -> None:
        if not isinstance(self.types, Iterable):
            raise StunBuildError(
                f"UNKNOWN-ATTRIBUTES types must be an iterable, got {self.types!r}"
            )
        types = tuple(self.types)
        for attr_type in types:
            check_uint(attr_type, 16, "UNKNOWN-ATTRIBUTES type")
        if len(types) > 0x7FFF:
            raise StunBuildError(
                f"UNKNOWN-ATTRIBUTES of {len(types)} types exceeds 32767"
            )
        set_field(self, "types", types)

    def encode(self, transaction_id: bytes) -> bytes:
        """Return two bytes per type."""
        return struct.pack(f"!{len(self.types)}H", *self.types)

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode two bytes per type, or raise ``StunParseError`` for an odd length."""
        if len(value) & 1:
            raise StunParseError(
                f"UNKNOWN-ATTRIBUTES has an odd length of {len(value)}", LENGTH_FIELD
            )
        attribute = new_instance(cls)
        set_field(attribute, "types", struct.unpack(f"!{len(value) // 2}H", value))
        return attribute


@dataclass(frozen=True, slots=True)
class Realm:
    """REALM (RFC 8489 §14.9), already processed with OpaqueString."""

    realm: str

    TYPE: ClassVar[int] = AttributeType.REALM

    def __post_init__(self) -> None:
        check_text(self.realm, "REALM", _MAX_TEXT_CHARS, _MAX_TEXT_BYTES)

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the UTF-8 value."""
        return self.realm.encode("utf-8")

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a UTF-8 value, or raise ``StunParseError``."""
        attribute = new_instance(cls)
        set_field(attribute, "realm", decode_text(value, "REALM"))
        return attribute


@dataclass(frozen=True, slots=True)
class Nonce:
    """NONCE (RFC 8489 §14.10), kept as text.

    The RFC 8489 §9.2 nonce cookie and security feature bits, when present,
    are part of the text, and the credential layer reads them.
    """

    nonce: str

    TYPE: ClassVar[int] = AttributeType.NONCE

    def __post_init__(self) -> None:
        check_text(self.nonce, "NONCE", _MAX_TEXT_CHARS, _MAX_TEXT_BYTES)

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the UTF-8 value."""
        return self.nonce.encode("utf-8")

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a UTF-8 value, or raise ``StunParseError``."""
        attribute = new_instance(cls)
        set_field(attribute, "nonce", decode_text(value, "NONCE"))
        return attribute


@dataclass(frozen=True, slots=True)
class Software:
    """SOFTWARE (RFC 8489 §14.14): the sender's product and version."""

    software: str

    TYPE: ClassVar[int] = AttributeType.SOFTWARE

    def __post_init__(self) -> None:
        check_text(self.software, "SOFTWARE", _MAX_TEXT_CHARS, _MAX_TEXT_BYTES)

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the UTF-8 value."""
        return self.software.encode("utf-8")

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a UTF-8 value, or raise ``StunParseError``."""
        attribute = new_instance(cls)
        set_field(attribute, "software", decode_text(value, "SOFTWARE"))
        return attribute


@dataclass(frozen=True, slots=True)
class AlternateDomain:
    """ALTERNATE-DOMAIN (RFC 8489 §14.16): the DNS name that ALTERNATE-SERVER's
    certificate must match over TLS or DTLS.

    The constructor requires an ASCII DNS name of at most 255 characters
    made of RFC 1123 labels. Decoding accepts any UTF-8.
    """

    domain: str

    TYPE: ClassVar[int] = AttributeType.ALTERNATE_DOMAIN

    def __post_init__(self) -> None:
        domain = check_text(self.domain, "ALTERNATE-DOMAIN", 255, 255)
        labels = domain.removesuffix(".").split(".")
        if not domain.isascii() or not all(_DNS_LABEL.fullmatch(x) for x in labels):
            raise StunBuildError(
                f"ALTERNATE-DOMAIN {domain!r} is not a DNS name of ASCII letters, "
                "digits and hyphens"
            )

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the value; a decoded non-ASCII name is written back as UTF-8."""
        return self.domain.encode("utf-8")

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a UTF-8 value, or raise ``StunParseError``."""
        attribute = new_instance(cls)
        set_field(attribute, "domain", decode_text(value, "ALTERNATE-DOMAIN"))
        return attribute


def _check_algorithm(algorithm: object, parameters: object, name: str) -> bytes:
    check_uint(algorithm, 16, f"{name} algorithm")
    return check_bytes(parameters, f"{name} parameters", max_length=0xFFF8)


def _encode_algorithm(algorithm: int, parameters: bytes) -> bytes:
    padding = -len(parameters) % 4
    return U16_PAIR.pack(algorithm, len(parameters)) + parameters + bytes(padding)


def _decode_algorithm(value: bytes, start: int, name: str) -> tuple[int, bytes, int]:
    """Decode one algorithm entry at ``start`` and return the next offset too.

    The padding after the last entry's parameters may be missing.
    """
    if start + 4 > len(value):
        raise StunParseError(f"{name} entry header is truncated", start)
    algorithm, length = U16_PAIR.unpack_from(value, start)
    end = start + 4 + length
    if end > len(value):
        raise StunParseError(f"{name} parameters run past the end", start + 2)
    padded = min(end + (-length % 4), len(value))
    return algorithm, value[start + 4 : end], padded


@dataclass(frozen=True, slots=True)
class PasswordAlgorithm:
    """PASSWORD-ALGORITHM (RFC 8489 §14.12): the algorithm a request uses.

    ``algorithm`` is an RFC 8489 §18.5 number: 1 for MD5, 2 for SHA-256
    (``rice_fast.stun.credentials.PasswordAlgorithm``).
    The parameters are padded to 4 bytes inside the value, as in
    PASSWORD-ALGORITHMS, so the entry matches the server's byte for byte.
    """

    algorithm: int
    parameters: bytes = b""

    TYPE: ClassVar[int] = AttributeType.PASSWORD_ALGORITHM

    def __post_init__(self) -> None:
        parameters = _check_algorithm(
            self.algorithm, self.parameters, "PASSWORD-ALGORITHM"
        )
        set_field(self, "parameters", parameters)

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the algorithm, the parameter length and the padded parameters."""
        return _encode_algorithm(self.algorithm, self.parameters)

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode exactly one entry, or raise ``StunParseError``."""
        algorithm, parameters, end = _decode_algorithm(value, 0, "PASSWORD-ALGORITHM")
        if end != len(value):
            raise StunParseError("PASSWORD-ALGORITHM has bytes after its entry", end)
        attribute = new_instance(cls)
        set_field(attribute, "algorithm", algorithm)
        set_field(attribute, "parameters", parameters)
        return attribute


@dataclass(frozen=True, slots=True)
class PasswordAlgorithms:
    """PASSWORD-ALGORITHMS (RFC 8489 §14.11): the algorithms a server offers.

    ``algorithms`` is a tuple of ``(algorithm, parameters)`` pairs in the
    server's order of preference. The constructor takes any iterable of
    pairs.
    """

    algorithms: tuple[tuple[int, bytes], ...]

    TYPE: ClassVar[int] = AttributeType.PASSWORD_ALGORITHMS

    def __post_init__(self) -> None:
        if not isinstance(self.algorithms, Iterable):
            raise StunBuildError(
                "PASSWORD-ALGORITHMS algorithms must be an iterable of "
                f"(algorithm, parameters) pairs, got {self.algorithms!r}"
            )
        entries: list[tuple[int, bytes]] = []
        for entry in self.algorithms:
            if not isinstance(entry, tuple | list) or len(entry) != 2:
                raise StunBuildError(
                    "PASSWORD-ALGORITHMS entry must be an (algorithm, parameters) "
                    f"pair, got {entry!r}"
                )
            algorithm, parameters = entry
            data = _check_algorithm(algorithm, parameters, "PASSWORD-ALGORITHMS")
            entries.append((algorithm, data))
        size = sum(4 + len(data) + -len(data) % 4 for _, data in entries)
        if size > 0xFFFF:
            raise StunBuildError(
                f"PASSWORD-ALGORITHMS value of {size} bytes exceeds 65535"
            )
        set_field(self, "algorithms", tuple(entries))

    def encode(self, transaction_id: bytes) -> bytes:
        """Return every entry with its parameters padded to 4 bytes."""
        return b"".join(_encode_algorithm(a, p) for a, p in self.algorithms)

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode every entry, or raise ``StunParseError``."""
        entries = []
        position = 0
        while position < len(value):
            algorithm, parameters, position = _decode_algorithm(
                value, position, "PASSWORD-ALGORITHMS"
            )
            entries.append((algorithm, parameters))
        attribute = new_instance(cls)
        set_field(attribute, "algorithms", tuple(entries))
        return attribute


@dataclass(frozen=True, slots=True)
class TransactionTransmitCounter:
    """TRANSACTION_TRANSMIT_COUNTER (RFC 7982 §3.1): transmission counts.

    ``requests`` is how many times the request was sent with this
    transaction id, ``responses`` how many responses the server sent (zero
    in requests).
    """

    requests: int
    responses: int = 0

    TYPE: ClassVar[int] = AttributeType.TRANSACTION_TRANSMIT_COUNTER

    def __post_init__(self) -> None:
        check_uint(self.requests, 8, "TRANSACTION_TRANSMIT_COUNTER requests")
        check_uint(self.responses, 8, "TRANSACTION_TRANSMIT_COUNTER responses")

    def encode(self, transaction_id: bytes) -> bytes:
        """Return two reserved zero bytes and the two counts."""
        return bytes((0, 0, self.requests, self.responses))

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a 4-byte value, ignoring the reserved bytes."""
        check_length(value, 4, "TRANSACTION_TRANSMIT_COUNTER")
        attribute = new_instance(cls)
        set_field(attribute, "requests", value[2])
        set_field(attribute, "responses", value[3])
        return attribute
