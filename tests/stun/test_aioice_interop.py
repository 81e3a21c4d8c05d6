"""Interop with aioice's STUN codec (``aioice.stun``, aioice 0.13).

Each scenario is one message, written twice: as aioice's attribute
dictionary and as typed attributes from ``rice_fast.stun.attributes``.
Messages that aioice builds, signed with ``add_message_integrity`` (which
also adds FINGERPRINT) or carrying only ``add_fingerprint``, must parse
here, verify with ``IntegrityKey`` and ``check_fingerprint``, and read back
as the typed attributes. Messages built here with ``MessageBuilder`` must
parse in aioice (whose ``parse_message`` checks FINGERPRINT),
verify with its ``check_message_integrity`` and give back the dictionary.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import aioice.stun
import pytest

from rice_fast.stun import (
    IntegrityKey,
    MessageBuilder,
    MessageClass,
    Method,
    message_type,
    parse,
)
from rice_fast.stun.attributes import (
    ChangeRequest,
    ChannelNumber,
    Data,
    ErrorCodeAttribute,
    Fingerprint,
    IceControlled,
    IceControlling,
    Lifetime,
    MappedAddress,
    MessageIntegrity,
    Nonce,
    OtherAddress,
    Priority,
    Realm,
    RequestedTransport,
    ResponseOrigin,
    Software,
    UseCandidate,
    Username,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
)

pytestmark = pytest.mark.interop

TRANSACTION_ID = b"interop-txid"
SHORT_TERM_KEY = b"9uB6K9j5ZzVQx8L4ve7bNx"
LONG_TERM_KEY = hashlib.md5(b"alice:example.org:secret").digest()
NONCE = "obMatJos2AAABbJoo8JUVxK9xvWVkBp5"

AIOICE_CLASS = {
    MessageClass.REQUEST: aioice.stun.Class.REQUEST,
    MessageClass.INDICATION: aioice.stun.Class.INDICATION,
    MessageClass.SUCCESS: aioice.stun.Class.RESPONSE,
    MessageClass.ERROR: aioice.stun.Class.ERROR,
}


@dataclass
class Scenario:
    """One message as aioice's dictionary and as typed attributes."""

    method: Method
    message_class: MessageClass
    key: bytes | None
    aioice_attributes: dict[str, Any]
    typed: list[Any] = field(default_factory=list)


LONG_TERM_CREDENTIALS = {
    "USERNAME": "alice",
    "REALM": "example.org",
    "NONCE": NONCE.encode(),
}
TYPED_CREDENTIALS = [Username("alice"), Realm("example.org"), Nonce(NONCE)]

SCENARIOS = {
    "binding-request-ice": Scenario(
        Method.BINDING,
        MessageClass.REQUEST,
        SHORT_TERM_KEY,
        {
            "USERNAME": "rFrg:lFrg",
            "PRIORITY": 0x6E7F1EFF,
            "ICE-CONTROLLING": 0x0123456789ABCDEF,
            "USE-CANDIDATE": None,
        },
        [
            Username("rFrg:lFrg"),
            Priority(0x6E7F1EFF),
            IceControlling(0x0123456789ABCDEF),
            UseCandidate(),
        ],
    ),
    "binding-request-controlled": Scenario(
        Method.BINDING,
        MessageClass.REQUEST,
        SHORT_TERM_KEY,
        {
            "USERNAME": "rFrg:lFrg",
            "PRIORITY": 1,
            "ICE-CONTROLLED": 0xFFFFFFFFFFFFFFFF,
        },
        [Username("rFrg:lFrg"), Priority(1), IceControlled(0xFFFFFFFFFFFFFFFF)],
    ),
    "binding-request-change-request": Scenario(
        Method.BINDING,
        MessageClass.REQUEST,
        None,
        {"CHANGE-REQUEST": 0x06},
        [ChangeRequest(change_ip=True, change_port=True)],
    ),
    "binding-success-ipv4": Scenario(
        Method.BINDING,
        MessageClass.SUCCESS,
        SHORT_TERM_KEY,
        {
            "XOR-MAPPED-ADDRESS": ("192.0.2.1", 32853),
            "MAPPED-ADDRESS": ("192.0.2.1", 32853),
            "RESPONSE-ORIGIN": ("198.51.100.1", 3478),
            "OTHER-ADDRESS": ("198.51.100.2", 3479),
            "SOFTWARE": "aioice interop",
        },
        [
            XorMappedAddress(("192.0.2.1", 32853)),
            MappedAddress(("192.0.2.1", 32853)),
            ResponseOrigin(("198.51.100.1", 3478)),
            OtherAddress(("198.51.100.2", 3479)),
            Software("aioice interop"),
        ],
    ),
    "binding-success-ipv6": Scenario(
        Method.BINDING,
        MessageClass.SUCCESS,
        SHORT_TERM_KEY,
        {
            "XOR-MAPPED-ADDRESS": ("2001:db8:1234:5678:11:2233:4455:6677", 32853),
            "MAPPED-ADDRESS": ("2001:db8::1", 1),
        },
        [
            XorMappedAddress(("2001:db8:1234:5678:11:2233:4455:6677", 32853)),
            MappedAddress(("2001:db8::1", 1)),
        ],
    ),
    "binding-error-role-conflict": Scenario(
        Method.BINDING,
        MessageClass.ERROR,
        SHORT_TERM_KEY,
        {"ERROR-CODE": (487, "Role Conflict")},
        [ErrorCodeAttribute(487, "Role Conflict")],
    ),
    "binding-error-bad-request": Scenario(
        Method.BINDING,
        MessageClass.ERROR,
        None,
        {"ERROR-CODE": (400, "Bad Request")},
        [ErrorCodeAttribute(400, "Bad Request")],
    ),
    "allocate-error-unauthenticated": Scenario(
        Method.ALLOCATE,
        MessageClass.ERROR,
        None,
        {
            "ERROR-CODE": (401, "Unauthenticated"),
            "REALM": "example.org",
            "NONCE": NONCE.encode(),
        },
        [
            ErrorCodeAttribute(401, "Unauthenticated"),
            Realm("example.org"),
            Nonce(NONCE),
        ],
    ),
    "allocate-request": Scenario(
        Method.ALLOCATE,
        MessageClass.REQUEST,
        LONG_TERM_KEY,
        {
            **LONG_TERM_CREDENTIALS,
            # aioice writes REQUESTED-TRANSPORT as a 32-bit number: the
            # protocol is its top byte.
            "REQUESTED-TRANSPORT": 17 << 24,
            "LIFETIME": 600,
        },
        [*TYPED_CREDENTIALS, RequestedTransport(17), Lifetime(600)],
    ),
    "allocate-success-ipv4": Scenario(
        Method.ALLOCATE,
        MessageClass.SUCCESS,
        LONG_TERM_KEY,
        {
            "XOR-RELAYED-ADDRESS": ("203.0.113.5", 49152),
            "XOR-MAPPED-ADDRESS": ("192.0.2.1", 32853),
            "LIFETIME": 600,
            "SOFTWARE": "relay",
        },
        [
            XorRelayedAddress(("203.0.113.5", 49152)),
            XorMappedAddress(("192.0.2.1", 32853)),
            Lifetime(600),
            Software("relay"),
        ],
    ),
    "allocate-success-ipv6": Scenario(
        Method.ALLOCATE,
        MessageClass.SUCCESS,
        LONG_TERM_KEY,
        {
            "XOR-RELAYED-ADDRESS": ("2001:db8:ffff::5", 65535),
            "XOR-MAPPED-ADDRESS": ("2001:db8::1", 0),
            "LIFETIME": 3600,
        },
        [
            XorRelayedAddress(("2001:db8:ffff::5", 65535)),
            XorMappedAddress(("2001:db8::1", 0)),
            Lifetime(3600),
        ],
    ),
    "refresh-request-delete": Scenario(
        Method.REFRESH,
        MessageClass.REQUEST,
        LONG_TERM_KEY,
        {**LONG_TERM_CREDENTIALS, "LIFETIME": 0},
        [*TYPED_CREDENTIALS, Lifetime(0)],
    ),
    "create-permission-request": Scenario(
        Method.CREATE_PERMISSION,
        MessageClass.REQUEST,
        LONG_TERM_KEY,
        {**LONG_TERM_CREDENTIALS, "XOR-PEER-ADDRESS": ("198.51.100.9", 0)},
        [*TYPED_CREDENTIALS, XorPeerAddress(("198.51.100.9", 0))],
    ),
    "channel-bind-request": Scenario(
        Method.CHANNEL_BIND,
        MessageClass.REQUEST,
        LONG_TERM_KEY,
        {
            **LONG_TERM_CREDENTIALS,
            "CHANNEL-NUMBER": 0x4001,
            "XOR-PEER-ADDRESS": ("198.51.100.9", 5000),
        },
        [
            *TYPED_CREDENTIALS,
            ChannelNumber(0x4001),
            XorPeerAddress(("198.51.100.9", 5000)),
        ],
    ),
    "channel-bind-request-ipv6": Scenario(
        Method.CHANNEL_BIND,
        MessageClass.REQUEST,
        LONG_TERM_KEY,
        {
            **LONG_TERM_CREDENTIALS,
            "CHANNEL-NUMBER": 0x4FFF,
            "XOR-PEER-ADDRESS": ("2001:db8::9", 5000),
        },
        [
            *TYPED_CREDENTIALS,
            ChannelNumber(0x4FFF),
            XorPeerAddress(("2001:db8::9", 5000)),
        ],
    ),
    "channel-bind-success": Scenario(
        Method.CHANNEL_BIND, MessageClass.SUCCESS, LONG_TERM_KEY, {}, []
    ),
    "send-indication": Scenario(
        Method.SEND,
        MessageClass.INDICATION,
        None,
        {"XOR-PEER-ADDRESS": ("198.51.100.9", 5000), "DATA": b"\x00\x01hello"},
        [XorPeerAddress(("198.51.100.9", 5000)), Data(b"\x00\x01hello")],
    ),
    "data-indication-ipv6": Scenario(
        Method.DATA,
        MessageClass.INDICATION,
        None,
        {"XOR-PEER-ADDRESS": ("2001:db8::9", 5000), "DATA": bytes(range(256))},
        [XorPeerAddress(("2001:db8::9", 5000)), Data(bytes(range(256)))],
    ),
}

SCENARIO_PARAMS = [pytest.param(s, id=name) for name, s in SCENARIOS.items()]
SIGNED_PARAMS = [
    pytest.param(s, id=name) for name, s in SCENARIOS.items() if s.key is not None
]


def build_with_aioice(scenario: Scenario) -> aioice.stun.Message:
    message = aioice.stun.Message(
        message_method=aioice.stun.Method(scenario.method),
        message_class=AIOICE_CLASS[scenario.message_class],
        transaction_id=TRANSACTION_ID,
        attributes=dict(scenario.aioice_attributes),
    )
    if scenario.key is None:
        message.add_fingerprint()
    else:
        message.add_message_integrity(scenario.key)
    return message


def build_here(scenario: Scenario) -> bytes:
    builder = MessageBuilder(
        message_type(scenario.method, scenario.message_class), TRANSACTION_ID
    )
    for attribute in scenario.typed:
        builder.add_attribute(attribute)
    key = None if scenario.key is None else IntegrityKey(scenario.key)
    data = builder.finish(key, fingerprint=True)
    assert isinstance(data, bytes)
    return data


@pytest.mark.parametrize("scenario", SCENARIO_PARAMS)
def test_aioice_message_parses_here(scenario: Scenario) -> None:
    sent = build_with_aioice(scenario)
    message = parse(bytes(sent))

    assert message.method == scenario.method
    assert message.message_class == scenario.message_class
    assert message.transaction_id == TRANSACTION_ID
    assert message.check_fingerprint()
    # Without an integrity attribute, attributes() lists FINGERPRINT too.
    typed = [a for a in message.attributes() if not isinstance(a, Fingerprint)]
    assert typed == scenario.typed
    assert message.get(0x8028) == Fingerprint(sent.attributes["FINGERPRINT"])


@pytest.mark.parametrize("scenario", SIGNED_PARAMS)
def test_aioice_integrity_verifies_here(scenario: Scenario) -> None:
    assert scenario.key is not None
    sent = build_with_aioice(scenario)
    message = parse(bytes(sent))

    assert message.check_integrity(IntegrityKey(scenario.key))
    assert message.check(IntegrityKey(scenario.key))
    assert not message.check_integrity(IntegrityKey(scenario.key + b"x"))
    assert message.get(0x0008) == MessageIntegrity(sent.attributes["MESSAGE-INTEGRITY"])


@pytest.mark.parametrize("scenario", SCENARIO_PARAMS)
def test_message_from_here_parses_in_aioice(scenario: Scenario) -> None:
    received = aioice.stun.parse_message(build_here(scenario))
    attributes = dict(received.attributes)
    fingerprint = attributes.pop("FINGERPRINT")
    attributes.pop("MESSAGE-INTEGRITY", None)

    assert int(received.message_method) == scenario.method
    assert received.message_class == AIOICE_CLASS[scenario.message_class]
    assert received.transaction_id == TRANSACTION_ID
    assert isinstance(fingerprint, int)
    assert attributes == scenario.aioice_attributes


@pytest.mark.parametrize("scenario", SIGNED_PARAMS)
def test_integrity_from_here_verifies_in_aioice(scenario: Scenario) -> None:
    assert scenario.key is not None
    received = aioice.stun.parse_message(build_here(scenario))

    assert received.check_message_integrity(scenario.key)
    assert not received.check_message_integrity(scenario.key + b"x")


def test_byte_identical_to_aioice() -> None:
    # Both sides write zero padding and the same attribute order, so a
    # Binding request signed with the same key comes out byte for byte.
    scenario = SCENARIOS["binding-request-ice"]

    assert build_here(scenario) == bytes(build_with_aioice(scenario))


def test_aioice_rejects_corrupted_fingerprint() -> None:
    # A control: aioice does check the FINGERPRINT written here.
    data = bytearray(build_here(SCENARIOS["send-indication"]))
    data[-1] ^= 0x01

    with pytest.raises(ValueError, match="fingerprint"):
        aioice.stun.parse_message(bytes(data))
