"""Property tests of the typed STUN attributes.

Every attribute class round-trips through ``MessageBuilder.add_attribute``
and ``parse(...).get(TYPE)``, and decoding random bytes as any known type
raises nothing but ``StunParseError``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rice_fast.stun import (
    AddressFamily,
    MessageBuilder,
    StunParseError,
    parse,
)
from rice_fast.stun.attributes import (
    ATTRIBUTE_CLASSES,
    KNOWN_ATTRIBUTES,
    AdditionalAddressFamily,
    AddressErrorCode,
    AlternateDomain,
    AlternateServer,
    ChangedAddress,
    ChangeRequest,
    ChannelNumber,
    ConnectionId,
    Data,
    DontFragment,
    ErrorCodeAttribute,
    EvenPort,
    Fingerprint,
    IceControlled,
    IceControlling,
    Icmp,
    Lifetime,
    MappedAddress,
    MessageIntegrity,
    MessageIntegritySha256,
    Nonce,
    OtherAddress,
    Padding,
    Password,
    PasswordAlgorithm,
    PasswordAlgorithms,
    Priority,
    Realm,
    ReflectedFrom,
    RequestedAddressFamily,
    RequestedTransport,
    ReservationToken,
    ResponseAddress,
    ResponseOrigin,
    ResponsePort,
    Software,
    SourceAddress,
    TransactionTransmitCounter,
    UnknownAttribute,
    UnknownAttributes,
    UseCandidate,
    Userhash,
    Username,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
    decode_attribute,
)

BINDING_SUCCESS = 0x0101

transaction_ids = st.binary(min_size=12, max_size=12)

hosts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)
addresses = st.tuples(hosts, st.integers(0, 0xFFFF))


def uints(bits: int) -> st.SearchStrategy[int]:
    return st.integers(0, (1 << bits) - 1)


# Text within the RFC 8489 sending limits: at most 127 characters, which is
# at most 508 UTF-8 bytes.
texts = st.text(st.characters(codec="utf-8"), max_size=127)
families = st.sampled_from(list(AddressFamily))
error_codes = st.integers(300, 699)
label = r"[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?"
domains = st.from_regex(rf"{label}(?:\.{label}){{0,5}}\.?", fullmatch=True)
algorithm_entries = st.tuples(uints(16), st.binary(max_size=12))


def address_strategy(cls: Any) -> st.SearchStrategy[Any]:
    return addresses.map(cls)


STRATEGIES: dict[type[Any], st.SearchStrategy[Any]] = {
    MappedAddress: address_strategy(MappedAddress),
    XorMappedAddress: address_strategy(XorMappedAddress),
    AlternateServer: address_strategy(AlternateServer),
    XorPeerAddress: address_strategy(XorPeerAddress),
    XorRelayedAddress: address_strategy(XorRelayedAddress),
    ResponseOrigin: address_strategy(ResponseOrigin),
    OtherAddress: address_strategy(OtherAddress),
    ResponseAddress: address_strategy(ResponseAddress),
    SourceAddress: address_strategy(SourceAddress),
    ChangedAddress: address_strategy(ChangedAddress),
    ReflectedFrom: address_strategy(ReflectedFrom),
    Username: texts.map(Username),
    Userhash: st.binary(min_size=32, max_size=32).map(Userhash),
    MessageIntegrity: st.binary(min_size=20, max_size=20).map(MessageIntegrity),
    MessageIntegritySha256: st.sampled_from([16, 20, 24, 28, 32])
    .flatmap(lambda n: st.binary(min_size=n, max_size=n))
    .map(MessageIntegritySha256),
    Fingerprint: uints(32).map(Fingerprint),
    ErrorCodeAttribute: st.builds(ErrorCodeAttribute, error_codes, texts),
    UnknownAttributes: st.lists(uints(16), max_size=20).map(
        lambda types: UnknownAttributes(tuple(types))
    ),
    Realm: texts.map(Realm),
    Nonce: texts.map(Nonce),
    Software: texts.map(Software),
    AlternateDomain: domains.map(AlternateDomain),
    PasswordAlgorithm: st.builds(PasswordAlgorithm, uints(16), st.binary(max_size=12)),
    PasswordAlgorithms: st.lists(algorithm_entries, max_size=5).map(
        lambda entries: PasswordAlgorithms(tuple(entries))
    ),
    Priority: uints(32).map(Priority),
    UseCandidate: st.just(UseCandidate()),
    IceControlled: uints(64).map(IceControlled),
    IceControlling: uints(64).map(IceControlling),
    ChannelNumber: st.integers(0x4000, 0x4FFF).map(ChannelNumber),
    Lifetime: uints(32).map(Lifetime),
    Data: st.binary(max_size=64).map(Data),
    RequestedAddressFamily: families.map(RequestedAddressFamily),
    EvenPort: st.booleans().map(EvenPort),
    RequestedTransport: uints(8).map(RequestedTransport),
    DontFragment: st.just(DontFragment()),
    ReservationToken: st.binary(min_size=8, max_size=8).map(ReservationToken),
    AdditionalAddressFamily: families.map(AdditionalAddressFamily),
    AddressErrorCode: st.builds(AddressErrorCode, families, error_codes, texts),
    Icmp: st.builds(Icmp, uints(8), uints(8), uints(32)),
    ConnectionId: uints(32).map(ConnectionId),
    ChangeRequest: st.builds(ChangeRequest, st.booleans(), st.booleans()),
    ResponsePort: uints(16).map(ResponsePort),
    Padding: st.binary(max_size=64).map(Padding),
    TransactionTransmitCounter: st.builds(
        TransactionTransmitCounter, uints(8), uints(8)
    ),
    Password: st.binary(max_size=32).map(Password),
}


def test_strategies_cover_every_class() -> None:
    assert set(STRATEGIES) == set(ATTRIBUTE_CLASSES.values())


@pytest.mark.parametrize("cls", list(STRATEGIES), ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data(), transaction_id=transaction_ids)
def test_round_trip_through_message(
    cls: type[Any], data: st.DataObject, transaction_id: bytes
) -> None:
    attribute = data.draw(STRATEGIES[cls])
    builder = MessageBuilder(BINDING_SUCCESS, transaction_id)
    builder.add_attribute(attribute)
    message = parse(builder.finish())

    assert message.get(cls.TYPE) == attribute
    if cls in (MessageIntegrity, MessageIntegritySha256):
        # attributes() lists only what precedes the integrity attribute.
        assert message.attributes() == []
    else:
        assert message.attributes() == [attribute]


@pytest.mark.parametrize("cls", list(STRATEGIES), ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data(), transaction_id=transaction_ids)
def test_round_trip_direct(
    cls: type[Any], data: st.DataObject, transaction_id: bytes
) -> None:
    attribute = data.draw(STRATEGIES[cls])
    value = attribute.encode(transaction_id)

    assert len(value) <= 0xFFFF
    assert decode_attribute(cls.TYPE, value, transaction_id) == attribute


known_types = st.sampled_from(sorted(KNOWN_ATTRIBUTES))
any_types = st.one_of(known_types, uints(16))
# Short values hit every fixed length, and longer ones the variable ones.
values = st.one_of(st.binary(max_size=40), st.binary(min_size=40, max_size=300))


@settings(max_examples=3000, deadline=None)
@given(attr_type=any_types, value=values, transaction_id=transaction_ids)
def test_decode_random_bytes_only_parse_error(
    attr_type: int, value: bytes, transaction_id: bytes
) -> None:
    try:
        attribute = decode_attribute(attr_type, value, transaction_id)
    except StunParseError as exc:
        assert -2 <= exc.offset <= len(value)
        return

    # What decodes encodes again, and that encoding decodes to the same
    # object: lenient decoding loses only bits the RFCs require receivers to ignore.
    if isinstance(attribute, UnknownAttribute):
        assert attribute.value == value
        return
    again = attribute.encode(transaction_id)
    assert decode_attribute(attr_type, again, transaction_id) == attribute


@settings(max_examples=500, deadline=None)
@given(attr_type=known_types, value=values, transaction_id=transaction_ids)
def test_message_get_random_value(
    attr_type: int, value: bytes, transaction_id: bytes
) -> None:
    builder = MessageBuilder(BINDING_SUCCESS, transaction_id)
    builder.add(0x8022, b"padding before")
    builder.add(attr_type, value)
    try:
        message = parse(builder.finish())
    except StunParseError:
        # The framing check rejects integrity and fingerprint lengths first.
        return

    try:
        message.get(attr_type)
    except StunParseError as exc:
        assert 0 <= exc.offset <= message.size
