"""Parse a STUN Binding request, check its integrity and build the response.

Run it with ``python examples/stun_codec.py``. The same code is in the README.
"""

from __future__ import annotations

from rice_fast.stun import (
    IntegrityKey,
    MessageBuilder,
    MessageClass,
    Method,
    StunParseError,
    message_type,
    new_transaction_id,
    parse,
)
from rice_fast.stun.credentials import short_term_key

# ICE uses short-term credentials: the key is the password of the agent that
# receives the request (RFC 8445 §7.2.2). Key the HMAC once and reuse it.
key = IntegrityKey(short_term_key("remote-password"))


def make_request() -> bytes:
    """Build a Binding request as an ICE agent sends it."""
    builder = MessageBuilder(
        message_type(Method.BINDING, MessageClass.REQUEST), new_transaction_id()
    )
    builder.add_username("remote:local")
    builder.add_priority(0x6E7F1EFF)
    builder.add_ice_controlling(0x0123456789ABCDEF)
    return builder.finish(key, fingerprint=True)


def answer(datagram: bytes, source: tuple[str, int]) -> bytes | None:
    """Return the success response to a Binding request, or None to drop it."""
    try:
        request = parse(datagram)
    except StunParseError as exc:
        print(f"dropped: {exc.reason} (byte {exc.offset})")
        return None

    if not request.is_request or request.method != Method.BINDING:
        return None

    # check() verifies FINGERPRINT first, then MESSAGE-INTEGRITY with the key.
    if not request.check(key):
        print("dropped: integrity check failed")
        return None

    builder = MessageBuilder(
        message_type(Method.BINDING, MessageClass.SUCCESS), request.transaction_id
    )
    builder.add_xor_mapped_address(*source)
    return builder.finish(key, fingerprint=True)


def main() -> None:
    request = make_request()
    response = answer(request, ("192.0.2.10", 54321))
    assert response is not None

    reply = parse(response)
    print("success:", reply.is_success)
    print("mapped address:", reply.xor_mapped_address())
    print("integrity ok:", reply.check(key))

    # A truncated datagram is rejected with the reason and the byte offset.
    answer(request[:-8], ("192.0.2.10", 54321))


if __name__ == "__main__":
    main()
