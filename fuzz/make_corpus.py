"""Write the seed corpus for fuzz_stun.py: valid STUN messages of many kinds.

Usage: ``python fuzz/make_corpus.py [FOLDER]`` (default ``fuzz/corpus``).
Each seed is one file named after the SHA-1 of its bytes.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from pathlib import Path

from rice_fast.stun import IntegrityKey, MessageBuilder

TXID = bytes.fromhex("b7e7a701bc34d686fa87dfae")
KEY = IntegrityKey(b"fuzz-password")

BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
ALLOCATE_REQUEST = 0x0003
ALLOCATE_SUCCESS = 0x0103
ALLOCATE_ERROR = 0x0113
CREATE_PERMISSION_REQUEST = 0x0008
CHANNEL_BIND_REQUEST = 0x0009
SEND_INDICATION = 0x0016
CONNECT_REQUEST = 0x000A

# One plausible value for each attribute without a typed adder, so the seeds
# reach every decoder in rice_fast.stun.attributes.
IPV4_ADDRESS = struct.pack("!BBH4s", 0, 1, 3478, bytes([192, 0, 2, 1]))
IPV6_ADDRESS = struct.pack(
    "!BBH16s", 0, 2, 3478, bytes.fromhex("20010db8" + "00" * 11 + "01")
)
RAW_ATTRIBUTES: list[tuple[int, bytes]] = [
    (0x0002, IPV4_ADDRESS),  # RESPONSE-ADDRESS
    (0x0003, b"\x00\x00\x00\x06"),  # CHANGE-REQUEST
    (0x0004, IPV4_ADDRESS),  # SOURCE-ADDRESS
    (0x0005, IPV6_ADDRESS),  # CHANGED-ADDRESS
    (0x0017, b"\x02\x00\x00\x00"),  # REQUESTED-ADDRESS-FAMILY
    (0x0018, b"\x80"),  # EVEN-PORT
    (0x001A, b""),  # DONT-FRAGMENT
    (0x001D, b"\x00\x02\x00\x00"),  # PASSWORD-ALGORITHM
    (0x001E, bytes(range(32))),  # USERHASH
    (0x0022, bytes(range(8))),  # RESERVATION-TOKEN
    (0x0026, b"\x00" * 8),  # PADDING
    (0x0027, b"\x0d\x96\x00\x00"),  # RESPONSE-PORT
    (0x002A, b"\x00\x00\x00\x2a"),  # CONNECTION-ID
    (0x8000, b"\x02\x00\x00\x00"),  # ADDITIONAL-ADDRESS-FAMILY
    (0x8001, b"\x02\x00\x04\x40Address Family not Supported"),  # ADDRESS-ERROR-CODE
    (0x8002, b"\x00\x01\x00\x00\x00\x02\x00\x00"),  # PASSWORD-ALGORITHMS
    (0x8003, b"turn.example.org"),  # ALTERNATE-DOMAIN
    (0x8004, b"\x00\x00\x03\x01\x00\x00\x00\x00"),  # ICMP
    (0x8023, IPV4_ADDRESS),  # ALTERNATE-SERVER
    (0x8025, b"\x00\x00\x01\x02"),  # TRANSACTION_TRANSMIT_COUNTER
    (0x8027, b"\x00\x00\x00\x3c"),  # CACHE-TIMEOUT
    (0x802B, IPV6_ADDRESS),  # RESPONSE-ORIGIN
    (0x802C, IPV4_ADDRESS),  # OTHER-ADDRESS
    (0x7FFF, b"unknown, comprehension-required"),
    (0xC0DE, b"unknown, optional"),
]


def _ice_requests() -> list[bytes]:
    controlling = MessageBuilder(BINDING_REQUEST, TXID)
    controlling.add_username("evtj:h6vY")
    controlling.add_priority(0x6E0001FF)
    controlling.add_ice_controlling(0x932FF9B151263B36)
    controlling.add_use_candidate()
    controlled = MessageBuilder(BINDING_REQUEST, TXID)
    controlled.add_username("h6vY:evtj")
    controlled.add_priority(0x7E0000FF)
    controlled.add_ice_controlled(0x0123456789ABCDEF)
    controlled.add_software("rice_fast fuzz seed")
    return [
        controlling.finish(KEY, fingerprint=True),
        controlled.finish(KEY, sha256=True, fingerprint=True),
    ]


def _binding_responses() -> list[bytes]:
    ipv4 = MessageBuilder(BINDING_SUCCESS, TXID)
    ipv4.add_xor_mapped_address("192.0.2.1", 32853)
    ipv6 = MessageBuilder(BINDING_SUCCESS, TXID)
    ipv6.add_xor_mapped_address("2001:db8:1234:5678:11:2233:4455:6677", 32853)
    ipv6.add_software("test vector")
    both = MessageBuilder(BINDING_SUCCESS, TXID)
    both.add_xor_mapped_address("192.0.2.1", 32853)
    both.add_message_integrity(KEY)
    both.add_message_integrity_sha256(KEY, 16)
    both.add_fingerprint()
    return [ipv4.finish(KEY, fingerprint=True), ipv6.finish(), both.finish()]


def _turn_messages() -> list[bytes]:
    allocate = MessageBuilder(ALLOCATE_REQUEST, TXID)
    allocate.add_requested_transport(17)
    allocate.add_lifetime(600)
    allocate.add_username("user")
    allocate.add_realm("example.org")
    allocate.add_nonce("f//499k954d6OL34oL9FSTvy64sA")

    challenge = MessageBuilder(ALLOCATE_ERROR, TXID)
    challenge.add_error_code(401, "Unauthenticated")
    challenge.add_realm("example.org")
    challenge.add_nonce("obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA")
    challenge.add_software("rice_fast")

    unknown = MessageBuilder(ALLOCATE_ERROR, TXID)
    unknown.add_error_code(420, "Unknown Attribute")
    unknown.add_unknown_attributes([0x7FFF, 0x0031])

    granted = MessageBuilder(ALLOCATE_SUCCESS, TXID)
    granted.add_xor_relayed_address("192.0.2.15", 50000)
    granted.add_xor_mapped_address("192.0.2.1", 32853)
    granted.add_lifetime(600)

    permission = MessageBuilder(CREATE_PERMISSION_REQUEST, TXID)
    permission.add_xor_peer_address("192.0.2.150", 9000)
    permission.add_xor_peer_address("2001:db8::150", 9000)

    channel = MessageBuilder(CHANNEL_BIND_REQUEST, TXID)
    channel.add_channel_number(0x4000)
    channel.add_xor_peer_address("192.0.2.150", 9000)

    send = MessageBuilder(SEND_INDICATION, TXID)
    send.add_xor_peer_address("192.0.2.150", 9000)
    send.add_data(b"hello relay")

    connect = MessageBuilder(CONNECT_REQUEST, TXID)
    connect.add_xor_peer_address("192.0.2.150", 80)

    return [
        allocate.finish(KEY, fingerprint=True),
        challenge.finish(fingerprint=True),
        unknown.finish(),
        granted.finish(KEY),
        permission.finish(KEY, sha256=True),
        channel.finish(KEY),
        send.finish(),
        connect.finish(KEY),
    ]


def _raw_messages() -> list[bytes]:
    every = MessageBuilder(BINDING_REQUEST, TXID)
    for attr_type, value in RAW_ATTRIBUTES:
        every.add(attr_type, value)
    seeds = [every.finish(KEY, fingerprint=True), MessageBuilder(1, TXID).finish()]

    # Attributes after MESSAGE-INTEGRITY, which a receiver must ignore.
    trailing = MessageBuilder(BINDING_REQUEST, TXID)
    trailing.add_username("user")
    trailing.add_message_integrity(KEY)
    signed = trailing.finish()
    extra = struct.pack("!HH", 0x8022, 4) + b"late"
    body = signed[20:] + extra
    seeds.append(signed[:2] + struct.pack("!H", len(body)) + signed[4:20] + body)

    # An RFC 3489 Binding response: no magic cookie, a 128-bit transaction id.
    legacy_body = b"".join(
        struct.pack("!HH", attr_type, len(IPV4_ADDRESS)) + IPV4_ADDRESS
        for attr_type in (0x0001, 0x0004, 0x0005)
    )
    legacy = struct.pack("!HH", BINDING_SUCCESS, len(legacy_body)) + bytes(16)
    seeds.append(legacy + legacy_body)
    return seeds


def seed_messages() -> list[bytes]:
    """Return the seed messages."""
    return _ice_requests() + _binding_responses() + _turn_messages() + _raw_messages()


def write_corpus(folder: Path) -> None:
    """Write each seed to ``folder`` as a file named after its SHA-1."""
    folder.mkdir(parents=True, exist_ok=True)
    for data in seed_messages():
        (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


if __name__ == "__main__":
    target = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "corpus"
    )
    write_corpus(target)
    print(f"wrote {len(seed_messages())} seeds to {target}")
