"""The STUN messages and keys that the benchmarks use.

The ICE Binding request is the one a controlling agent sends on every
connectivity check: USERNAME, PRIORITY, ICE-CONTROLLING, MESSAGE-INTEGRITY
and FINGERPRINT, 88 bytes. rice_fast and aioice build it byte for byte the
same from the same transaction id, so both libraries parse identical input.
"""

from __future__ import annotations

from dataclasses import dataclass

from aioice import stun as aioice_stun

from rice_fast.stun import (
    IntegrityKey,
    MessageBuilder,
    message_type,
    parse,
    parse_verified,
)

TRANSACTION_ID = bytes.fromhex("b7e7a701bc34d686fa87dfae")
PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"
USERNAME = "evtj:h6vY"
PRIORITY = 1853817087
TIE_BREAKER = 0x932FF9B151263B36
MAPPED_HOST = "192.0.2.1"
MAPPED_PORT = 32853

BINDING_REQUEST = message_type(0x001, 0)
BINDING_SUCCESS = message_type(0x001, 2)


@dataclass(frozen=True, slots=True)
class Credentials:
    """The short-term key as raw bytes (aioice) and as an IntegrityKey."""

    password: bytes
    key: IntegrityKey


def build_request(key: IntegrityKey) -> bytes:
    """Build the Binding request with rice_fast."""
    builder = MessageBuilder(BINDING_REQUEST, TRANSACTION_ID)
    builder.add_username(USERNAME)
    builder.add_priority(PRIORITY)
    builder.add_ice_controlling(TIE_BREAKER)
    data: bytes = builder.finish(key, fingerprint=True)
    return data


def build_request_aioice(password: bytes) -> bytes:
    """Build the same Binding request with aioice.

    In aioice 0.13, ``add_message_integrity`` appends FINGERPRINT as well.
    """
    message = aioice_stun.Message(
        message_method=aioice_stun.Method.BINDING,
        message_class=aioice_stun.Class.REQUEST,
        transaction_id=TRANSACTION_ID,
        attributes={
            "USERNAME": USERNAME,
            "PRIORITY": PRIORITY,
            "ICE-CONTROLLING": TIE_BREAKER,
        },
    )
    message.add_message_integrity(password)
    return bytes(message)


def build_response(key: IntegrityKey) -> bytes:
    """Build the Binding success response with XOR-MAPPED-ADDRESS."""
    builder = MessageBuilder(BINDING_SUCCESS, TRANSACTION_ID)
    builder.add_xor_mapped_address(MAPPED_HOST, MAPPED_PORT)
    data: bytes = builder.finish(key, fingerprint=True)
    return data


def build_response_aioice(password: bytes) -> bytes:
    """Build the same Binding success response with aioice."""
    message = aioice_stun.Message(
        message_method=aioice_stun.Method.BINDING,
        message_class=aioice_stun.Class.RESPONSE,
        transaction_id=TRANSACTION_ID,
        attributes={"XOR-MAPPED-ADDRESS": (MAPPED_HOST, MAPPED_PORT)},
    )
    message.add_message_integrity(password)
    return bytes(message)


# The work that each benchmark times, shared with bench/callgrind_stun.py.

RequestFields = tuple[str | None, int | None, int | None, bool]
Address = tuple[str, int]


def receive_request(data: bytes, key: IntegrityKey) -> RequestFields:
    """Parse, check FINGERPRINT and MESSAGE-INTEGRITY, read 4 attributes."""
    message = parse(data)
    if not message.check(key):
        raise AssertionError("integrity or fingerprint check failed")
    return (
        message.username(),
        message.priority(),
        message.ice_controlling(),
        message.use_candidate(),
    )


def receive_request_one_pass(data: bytes, key: IntegrityKey) -> RequestFields:
    """The same with ``parse_verified`` and one ``ice_attributes`` call."""
    message = parse_verified(data, key)
    if message is None:
        raise AssertionError("integrity or fingerprint check failed")
    username, priority, controlling, _, use_candidate = message.ice_attributes()
    return (username, priority, controlling, use_candidate)


def receive_request_aioice(data: bytes, password: bytes) -> RequestFields:
    """The same with aioice, whose parse_message checks FINGERPRINT itself."""
    message = aioice_stun.parse_message(data)
    if not message.check_message_integrity(password):
        raise AssertionError("integrity check failed")
    attributes = message.attributes
    return (
        attributes.get("USERNAME"),
        attributes.get("PRIORITY"),
        attributes.get("ICE-CONTROLLING"),
        "USE-CANDIDATE" in attributes,
    )


def receive_response(data: bytes) -> Address | None:
    """Parse and decode XOR-MAPPED-ADDRESS, without checking anything."""
    return parse(data).xor_mapped_address()


def receive_response_aioice(data: bytes) -> Address | None:
    """The same with aioice, which also checks FINGERPRINT while parsing."""
    address: Address | None = aioice_stun.parse_message(data).attributes.get(
        "XOR-MAPPED-ADDRESS"
    )
    return address


def receive_response_checked(data: bytes, key: IntegrityKey) -> Address | None:
    """Parse, check FINGERPRINT and MESSAGE-INTEGRITY, decode the address."""
    message = parse(data)
    if not message.check(key):
        raise AssertionError("integrity or fingerprint check failed")
    return message.xor_mapped_address()


def receive_response_checked_aioice(data: bytes, password: bytes) -> Address | None:
    """The same with aioice."""
    message = aioice_stun.parse_message(data)
    if not message.check_message_integrity(password):
        raise AssertionError("integrity check failed")
    address: Address | None = message.attributes.get("XOR-MAPPED-ADDRESS")
    return address
