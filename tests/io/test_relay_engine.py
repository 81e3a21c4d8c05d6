"""The compiled forwarding path of the relay, on real loopback sockets."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from rice_fast.io._relay import SOCKET_LISTENER, SOCKET_RELAY, RelayEngine

from rice_fast.stun import MessageBuilder, new_transaction_id
from rice_fast.turn import channel_data_payload, encode_channel_data

Sockets = dict[str, socket.socket]


def _udp(family: socket.AddressFamily, host: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(2.0)
    return sock


@pytest.fixture(params=[(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def sockets(request: pytest.FixtureRequest) -> Iterator[Sockets]:
    family, host = request.param
    created = {
        name: _udp(family, host) for name in ("listener", "relay", "client", "peer")
    }
    created["listener"].setblocking(False)
    created["relay"].setblocking(False)
    yield created
    for sock in created.values():
        sock.close()


def _address(sock: socket.socket) -> tuple[str, int]:
    host, port = sock.getsockname()[:2]
    return (host, port)


def _engine(s: Sockets, channel: int = 0x4001) -> RelayEngine:
    engine = RelayEngine(batch=16, slot=1500)
    listener, relay = s["listener"].fileno(), s["relay"].fileno()
    engine.add_socket(listener, SOCKET_LISTENER)
    engine.add_socket(relay, SOCKET_RELAY)
    client, peer = _address(s["client"]), _address(s["peer"])
    engine.set_route(listener, client, channel, relay, peer, 0)
    engine.set_route(relay, peer, 0, listener, client, channel)
    return engine


def _wait_readable(sock: socket.socket) -> None:
    import select

    readable, _, _ = select.select([sock], [], [], 2.0)
    assert readable, "datagram did not arrive within 2 s"


def test_channel_data_forwarded_to_peer(sockets: Sockets) -> None:
    engine = _engine(sockets)
    sockets["client"].sendto(
        encode_channel_data(0x4001, b"hello"), _address(sockets["listener"])
    )
    _wait_readable(sockets["listener"])

    assert engine.process(sockets["listener"].fileno()) is None

    data, source = sockets["peer"].recvfrom(2048)
    assert data == b"hello"
    assert source[:2] == _address(sockets["relay"])
    assert engine.forwarded_to_peers == 1


def test_peer_data_wrapped_for_client(sockets: Sockets) -> None:
    engine = _engine(sockets)
    sockets["peer"].sendto(b"world", _address(sockets["relay"]))
    _wait_readable(sockets["relay"])

    assert engine.process(sockets["relay"].fileno()) is None

    data, source = sockets["client"].recvfrom(2048)
    assert channel_data_payload(data) == (0x4001, b"world")
    assert source[:2] == _address(sockets["listener"])
    assert engine.forwarded_to_clients == 1


def test_unrouted_datagrams_returned(sockets: Sockets) -> None:
    engine = _engine(sockets)
    request = MessageBuilder(0x0001, new_transaction_id()).finish()
    listener = _address(sockets["listener"])
    sockets["client"].sendto(request, listener)
    sockets["client"].sendto(encode_channel_data(0x4002, b"x"), listener)
    sockets["client"].sendto(b"\x40\x01\x00\x09short", listener)
    _wait_readable(sockets["listener"])

    slow = engine.process(sockets["listener"].fileno())

    assert slow is not None
    assert [data for data, _ in slow] == [
        request,
        encode_channel_data(0x4002, b"x"),
        b"\x40\x01\x00\x09short",
    ]
    assert all(source == _address(sockets["client"]) for _, source in slow)
    assert engine.forwarded_to_peers == 0
    assert engine.to_python == 3


def test_unknown_peer_returned(sockets: Sockets) -> None:
    engine = _engine(sockets)
    sockets["client"].sendto(b"stranger", _address(sockets["relay"]))
    _wait_readable(sockets["relay"])

    slow = engine.process(sockets["relay"].fileno())

    assert slow == [(b"stranger", _address(sockets["client"]))]


def test_removed_route_goes_to_python(sockets: Sockets) -> None:
    engine = _engine(sockets)
    listener = sockets["listener"].fileno()
    assert engine.routes == 2
    assert engine.remove_route(listener, _address(sockets["client"]), 0x4001)
    assert not engine.remove_route(listener, _address(sockets["client"]), 0x4001)
    assert engine.routes == 1
    frame = encode_channel_data(0x4001, b"late")
    sockets["client"].sendto(frame, _address(sockets["listener"]))
    _wait_readable(sockets["listener"])

    assert engine.process(listener) == [(frame, _address(sockets["client"]))]


def test_many_datagrams_in_batches(sockets: Sockets) -> None:
    engine = _engine(sockets)
    listener = _address(sockets["listener"])
    count = 100
    for i in range(count):
        sockets["client"].sendto(encode_channel_data(0x4001, b"%03d" % i), listener)
    _wait_readable(sockets["listener"])

    assert engine.process(sockets["listener"].fileno(), max_batches=64) is None

    received = [sockets["peer"].recvfrom(2048)[0] for _ in range(count)]
    assert received == [b"%03d" % i for i in range(count)]
    assert engine.batches >= count // 16
    assert engine.route_counters(
        sockets["listener"].fileno(), _address(sockets["client"]), 0x4001
    ) == (count, 3 * count)


def test_oversized_datagram_counted_as_truncated(sockets: Sockets) -> None:
    engine = _engine(sockets)
    sockets["client"].sendto(
        encode_channel_data(0x4001, bytes(1600)), _address(sockets["listener"])
    )
    _wait_readable(sockets["listener"])

    assert engine.process(sockets["listener"].fileno()) is None
    assert engine.truncated == 1
    assert engine.forwarded_to_peers == 0


def test_route_table_grows_and_shrinks() -> None:
    engine = RelayEngine()
    for port in range(1, 5001):
        engine.set_route(3, ("192.0.2.1", port), 0x4000, 4, ("192.0.2.2", port), 0)
    assert engine.routes == 5000
    assert engine.route_counters(3, ("192.0.2.1", 4321), 0x4000) == (0, 0)
    for port in range(1, 5001, 2):
        assert engine.remove_route(3, ("192.0.2.1", port), 0x4000)
    assert engine.routes == 2500
    assert engine.route_counters(3, ("192.0.2.1", 4322), 0x4000) == (0, 0)
    assert engine.route_counters(3, ("192.0.2.1", 4321), 0x4000) is None


@pytest.mark.parametrize(
    ("remote", "message"),
    [
        (("not-an-ip", 1), "not an IPv4 or IPv6 address"),
        (("127.0.0.1", 70000), "outside 0..65535"),
        ("127.0.0.1", "not a \\(host, port\\) tuple"),
    ],
)
def test_set_route_rejects_bad_address(remote: object, message: str) -> None:
    engine = RelayEngine()
    with pytest.raises(ValueError, match=message):
        engine.set_route(3, remote, 0x4000, 4, ("127.0.0.1", 1), 0)  # type: ignore[arg-type]


def test_process_rejects_unknown_socket() -> None:
    with pytest.raises(ValueError, match="was not added"):
        RelayEngine().process(5)


@pytest.mark.parametrize(("batch", "slot"), [(0, 2048), (2048, 2048), (16, 10)])
def test_engine_rejects_bad_sizes(batch: int, slot: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        RelayEngine(batch=batch, slot=slot)


def test_send_datagrams_and_drain(sockets: Sockets) -> None:
    from rice_fast.io._relay import drain, send_datagrams

    peer = _address(sockets["peer"])
    client = _address(sockets["client"])
    items = [(b"a" * i, peer if i % 2 else client) for i in range(1, 101)]

    assert send_datagrams(sockets["listener"].fileno(), items) == 100

    _wait_readable(sockets["peer"])
    _wait_readable(sockets["client"])
    sockets["peer"].setblocking(False)
    sockets["client"].setblocking(False)
    odd = sum(range(1, 101, 2))
    even = sum(range(2, 101, 2))
    assert drain(sockets["peer"].fileno()) == (50, odd)
    assert drain(sockets["client"].fileno()) == (50, even)


def test_send_repeated_counts(sockets: Sockets) -> None:
    from rice_fast.io._relay import drain, send_repeated

    sent = send_repeated(
        sockets["client"].fileno(), b"x" * 10, _address(sockets["peer"]), 150
    )

    assert sent == 150
    _wait_readable(sockets["peer"])
    sockets["peer"].setblocking(False)
    assert drain(sockets["peer"].fileno(), limit=100)[0] >= 64
