"""StunStreamDeframer: STUN messages cut out of a TCP byte stream."""

from __future__ import annotations

import pytest

from rice_fast.io import StunFramingError, StunStreamDeframer
from rice_fast.stun import MessageBuilder, new_transaction_id


def _message(software: str = "x") -> bytes:
    builder = MessageBuilder(0x0001, new_transaction_id())
    builder.add_software(software)
    data: bytes = builder.finish(fingerprint=True)
    return data


def test_whole_message_in_one_read() -> None:
    message = _message()
    deframer = StunStreamDeframer()

    assert deframer.feed(message) == [message]
    assert deframer.buffered == 0


def test_message_split_byte_by_byte() -> None:
    message = _message("split across many reads")
    deframer = StunStreamDeframer()

    frames: list[bytes] = []
    for i in range(len(message)):
        frames += deframer.feed(message[i : i + 1])
        if i < len(message) - 1:
            assert frames == []

    assert frames == [message]
    assert deframer.buffered == 0


def test_partial_header_waits() -> None:
    message = _message()
    deframer = StunStreamDeframer()

    assert deframer.feed(message[:7]) == []
    assert deframer.buffered == 7
    assert deframer.feed(message[7:]) == [message]


def test_several_messages_in_one_read() -> None:
    messages = [_message("a"), _message("bb"), _message("a longer software")]
    deframer = StunStreamDeframer()

    assert deframer.feed(b"".join(messages)) == messages


def test_several_messages_and_a_partial_one() -> None:
    first, second = _message("one"), _message("two")
    deframer = StunStreamDeframer()

    assert deframer.feed(first + second[:25]) == [first]
    assert deframer.buffered == 25
    assert deframer.feed(second[25:]) == [second]


def test_header_only_message() -> None:
    message = MessageBuilder(0x0001, new_transaction_id()).finish()
    deframer = StunStreamDeframer()

    assert deframer.feed(message + message) == [message, message]


def test_non_stun_first_byte_rejected_at_once() -> None:
    deframer = StunStreamDeframer()

    with pytest.raises(StunFramingError) as caught:
        deframer.feed(b"\x40")

    assert caught.value.offset == 0
    assert "top two bits" in caught.value.reason


def test_wrong_magic_cookie_rejected() -> None:
    message = bytearray(_message())
    message[4:8] = b"\x00\x00\x00\x00"
    deframer = StunStreamDeframer()

    with pytest.raises(StunFramingError, match="magic cookie"):
        deframer.feed(bytes(message))


def test_unaligned_length_rejected() -> None:
    message = bytearray(_message())
    message[3] |= 1
    deframer = StunStreamDeframer()

    with pytest.raises(StunFramingError, match="multiple of 4"):
        deframer.feed(bytes(message))


def test_garbage_after_message_reports_offset() -> None:
    message = _message()
    deframer = StunStreamDeframer()

    assert deframer.feed(message) == [message]
    with pytest.raises(StunFramingError) as caught:
        deframer.feed(b"GET / HTTP/1.1\r\n\r\n")

    assert caught.value.offset == len(message)
    assert isinstance(caught.value, ValueError)
