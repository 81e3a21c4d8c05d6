"""Address text forms: HOST:PORT, [IPV6]:PORT."""

from __future__ import annotations

import pytest

from rice_fast.io import format_address, parse_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:3478", ("127.0.0.1", 3478)),
        ("[::1]:3478", ("::1", 3478)),
        ("stun.example.org:19302", ("stun.example.org", 19302)),
        ("[fe80::1%lo]:5", ("fe80::1%lo", 5)),
        (" 127.0.0.1:0 ", ("127.0.0.1", 0)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


def test_parse_address_default_port() -> None:
    assert parse_address("127.0.0.1", default_port=3478) == ("127.0.0.1", 3478)
    assert parse_address("::1", default_port=3478) == ("::1", 3478)
    assert parse_address("[::1]", default_port=3478) == ("::1", 3478)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.1", "missing port"),
        ("127.0.0.1:http", "not a number"),
        ("127.0.0.1:70000", "not in 0..65535"),
        ("[::1:3478", "missing ']'"),
        ("[::1]3478", "expected ':'"),
        (":3478", "host is empty"),
    ],
)
def test_parse_address_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_address(text)


def test_format_address() -> None:
    assert format_address(("127.0.0.1", 3478)) == "127.0.0.1:3478"
    assert format_address(("::1", 3478)) == "[::1]:3478"
