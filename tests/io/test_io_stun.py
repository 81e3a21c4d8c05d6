"""asyncio STUN drivers: StunClient, binding_request and serve_stun on loopback."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from rice_fast.io import (
    StunClient,
    StunConnectionError,
    StunErrorResponse,
    StunIOError,
    StunTimeoutError,
    binding_request,
    serve_stun,
)
from rice_fast.stun import Message, MessageBuilder, Method, new_transaction_id, parse
from rice_fast.stun.agent import StunConfig
from rice_fast.stun.auth import LongTermAuthenticator, ShortTermAuthenticator
from rice_fast.stun.credentials import LongTermCredentials, ShortTermCredentials
from rice_fast.stun.transport import TransportType

# Short schedules so that timeouts take a fraction of a second.
FAST_UDP = StunConfig(rto=0.02, max_transmissions=3, final_wait_factor=2)
FAST_TCP = StunConfig(reliable_timeout=0.1)

LOOPBACKS = ["127.0.0.1", "::1"]


def _binding_request_bytes() -> bytes:
    data: bytes = MessageBuilder(0x0001, new_transaction_id()).finish(fingerprint=True)
    return data


@pytest.fixture
def silent_udp() -> Iterator[socket.socket]:
    """A bound UDP socket that never responds."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


def _drain(sock: socket.socket) -> list[bytes]:
    received: list[bytes] = []
    while True:
        try:
            received.append(sock.recv(2048))
        except BlockingIOError:
            return received


# Binding over UDP and TCP


@pytest.mark.parametrize("host", LOOPBACKS)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_binding_against_own_server(host: str, transport: str) -> None:
    async with await serve_stun((host, 0), software="rice") as service:
        server = service.udp_address if transport == "udp" else service.tcp_address
        assert server is not None

        result = await binding_request(server, transport=transport)

    assert result.mapped_address == result.local_address
    assert result.local_address[0] == host
    assert result.server == server
    assert result.transport is TransportType(transport)
    assert result.software == "rice"
    assert result.rtt >= 0
    assert result.legacy is False


async def test_binding_request_accepts_text_address() -> None:
    async with await serve_stun(("::1", 0)) as service:
        assert service.udp_address is not None
        port = service.udp_address[1]

        result = await binding_request(f"[::1]:{port}")

    assert result.server == ("::1", port)
    assert result.software is None


async def test_udp_client_talks_to_two_servers() -> None:
    async with (
        await serve_stun(("127.0.0.1", 0), tcp=False) as first,
        await serve_stun(("127.0.0.1", 0), tcp=False) as second,
        await StunClient.open_udp(("127.0.0.1", 0)) as client,
    ):
        assert first.udp_address is not None
        assert second.udp_address is not None
        replies = await asyncio.gather(
            client.request(Method.BINDING, first.udp_address),
            client.request(Method.BINDING, second.udp_address),
        )

    assert [reply.remote for reply in replies] == [
        first.udp_address,
        second.udp_address,
    ]
    for reply in replies:
        assert reply.response.xor_mapped_address() == client.local_address
    assert client.agent.stats.succeeded == 2


async def test_udp_client_passes_requests_to_handler() -> None:
    received: list[tuple[Message, tuple[str, int]]] = []
    async with await StunClient.open_udp(
        ("127.0.0.1", 0),
        on_message=lambda message, source: received.append((message, source)),
    ) as client:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind(("127.0.0.1", 0))
            request = _binding_request_bytes()
            peer.sendto(request, client.local_address)
            for _ in range(100):
                if received:
                    break
                await asyncio.sleep(0.01)

            assert len(received) == 1
            message, source = received[0]
            assert message.is_request
            assert message.transaction_id == parse(request).transaction_id
            assert source == peer.getsockname()


# Timeouts


async def test_udp_timeout_after_retransmissions(silent_udp: socket.socket) -> None:
    server = silent_udp.getsockname()

    with pytest.raises(StunTimeoutError) as caught:
        await binding_request(server, config=FAST_UDP)

    error = caught.value
    assert isinstance(error, StunIOError)
    assert isinstance(error, TimeoutError)
    assert error.server == server
    assert error.transport == "udp"
    assert error.timeout is None
    assert f"127.0.0.1:{server[1]}" in str(error)
    assert "timed out" in str(error)
    assert len(_drain(silent_udp)) == FAST_UDP.max_transmissions


async def test_caller_timeout_cancels_transaction(silent_udp: socket.socket) -> None:
    server = silent_udp.getsockname()
    async with await StunClient.open_udp(("127.0.0.1", 0)) as client:
        with pytest.raises(StunTimeoutError) as caught:
            await client.request(Method.BINDING, server, timeout=0.05)

        assert caught.value.timeout == 0.05
        assert "within 0.05 s" in str(caught.value)
        assert client.agent.pending_transactions() == 0
        assert client.driver.pending == 0
        assert client.driver.timer.deadline is None


async def test_binding_request_timeout_argument(silent_udp: socket.socket) -> None:
    with pytest.raises(StunTimeoutError, match=r"within 0\.05 s"):
        await binding_request(silent_udp.getsockname(), timeout=0.05)


async def test_tcp_timeout_when_server_is_silent() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def accept(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        accepted.append(writer)

    listener = await asyncio.start_server(accept, "127.0.0.1", 0)
    server = listener.sockets[0].getsockname()[:2]
    try:
        with pytest.raises(StunTimeoutError) as caught:
            await binding_request(server, transport="tcp", config=FAST_TCP)
    finally:
        for writer in accepted:
            writer.close()
        listener.close()
        await listener.wait_closed()

    assert caught.value.transport == "tcp"
    assert caught.value.server == server


async def test_one_timer_during_retransmissions(
    silent_udp: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    handles: list[asyncio.TimerHandle] = []
    overlaps: list[int] = []
    original = loop.call_at

    def counting_call_at(when: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        now = loop.time()
        live = [h for h in handles if not h.cancelled() and h.when() > now]
        if live:
            overlaps.append(len(live))
        handle = original(when, callback, *args)
        handles.append(handle)
        return handle

    config = StunConfig(rto=0.02, max_transmissions=4, final_wait_factor=2)
    async with await StunClient.open_udp(("127.0.0.1", 0), config=config) as client:
        monkeypatch.setattr(loop, "call_at", counting_call_at)
        with pytest.raises(StunTimeoutError):
            await client.request(Method.BINDING, silent_udp.getsockname())
        monkeypatch.undo()

    # One handle per retransmission plus the final timeout, never two live.
    assert len(handles) == config.max_transmissions
    assert overlaps == []


# Error responses and authentication


@pytest.fixture
def authenticator() -> LongTermAuthenticator:
    return LongTermAuthenticator("rice-fast.test", {"alice": "wonderland"})


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_error_response_without_credentials(
    transport: str, authenticator: LongTermAuthenticator
) -> None:
    async with await serve_stun(
        ("127.0.0.1", 0), authenticator=authenticator
    ) as service:
        server = service.udp_address
        assert server is not None

        with pytest.raises(StunErrorResponse) as caught:
            await binding_request(server, transport=transport)

    error = caught.value
    assert isinstance(error, StunIOError)
    assert error.code == 401
    assert error.server == server
    assert error.transport == transport
    assert "401" in str(error)
    assert f"127.0.0.1:{server[1]}" in str(error)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_long_term_credentials_accepted(
    transport: str, authenticator: LongTermAuthenticator
) -> None:
    credentials = LongTermCredentials("alice", "wonderland", "")
    async with await serve_stun(
        ("127.0.0.1", 0), authenticator=authenticator
    ) as service:
        assert service.udp_address is not None

        result = await binding_request(
            service.udp_address, transport=transport, credentials=credentials
        )

    assert result.mapped_address == result.local_address


async def test_wrong_password_rejected(authenticator: LongTermAuthenticator) -> None:
    credentials = LongTermCredentials("alice", "not the password", "rice-fast.test")
    async with await serve_stun(
        ("127.0.0.1", 0), authenticator=authenticator
    ) as service:
        assert service.udp_address is not None

        with pytest.raises(StunErrorResponse) as caught:
            await binding_request(service.udp_address, credentials=credentials)

    assert caught.value.code == 401


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_short_term_credentials(transport: str) -> None:
    authenticator = ShortTermAuthenticator({"remote:local": "ice-password"})
    right = ShortTermCredentials("remote:local", "ice-password")
    wrong = ShortTermCredentials("remote:local", "wrong")
    async with await serve_stun(
        ("127.0.0.1", 0), authenticator=authenticator
    ) as service:
        server = service.udp_address
        assert server is not None

        result = await binding_request(server, transport=transport, credentials=right)

        # The server cannot sign its 401. StunAgent discards an unsigned
        # response to a signed request over UDP, so the request times out,
        # and over TCP it ends the transaction with that response.
        expected = StunTimeoutError if transport == "udp" else StunErrorResponse
        config = FAST_UDP if transport == "udp" else FAST_TCP
        with pytest.raises(expected) as caught:
            await binding_request(
                server, transport=transport, credentials=wrong, config=config
            )

    assert result.mapped_address == result.local_address
    if isinstance(caught.value, StunErrorResponse):
        assert caught.value.code == 401


# TCP framing on a live connection


async def test_client_closes_on_non_stun_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def answer_garbage(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read(20)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        await reader.read()
        writer.close()

    listener = await asyncio.start_server(answer_garbage, "127.0.0.1", 0)
    server = listener.sockets[0].getsockname()[:2]
    try:
        with (
            caplog.at_level(logging.INFO, logger="rice_fast.io"),
            pytest.raises(StunConnectionError) as caught,
        ):
            await binding_request(server, transport="tcp", config=FAST_TCP)
    finally:
        listener.close()
        await listener.wait_closed()

    assert "not STUN" in str(caught.value)
    assert f"{server[0]}:{server[1]} sent data over TCP" in str(caught.value)
    assert caught.value.server == server
    # The exception is the one report: the client logs the close at DEBUG.
    assert caplog.records == []


async def test_server_closes_on_non_stun_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with await serve_stun(("127.0.0.1", 0), udp=False) as service:
        assert service.tcp_address is not None
        reader, writer = await asyncio.open_connection(*service.tcp_address)
        with caplog.at_level(logging.INFO, logger="rice_fast.io"):
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            remainder = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        for _ in range(100):
            if service.closed_not_stun:
                break
            await asyncio.sleep(0.01)

    assert remainder == b""
    assert service.closed_not_stun == 1
    assert any("not STUN" in r.getMessage() for r in caplog.records)


async def test_server_deframes_split_and_joined_messages() -> None:
    async with await serve_stun(("127.0.0.1", 0), udp=False) as service:
        assert service.tcp_address is not None
        reader, writer = await asyncio.open_connection(*service.tcp_address)
        requests = [_binding_request_bytes() for _ in range(3)]

        # The first request in two writes, then the other two in one write.
        writer.write(requests[0][:11])
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(requests[0][11:] + requests[1] + requests[2])
        await writer.drain()

        responses = []
        for _ in requests:
            header = await asyncio.wait_for(reader.readexactly(20), 5)
            body = await reader.readexactly(int.from_bytes(header[2:4], "big"))
            responses.append(parse(header + body))
        local = writer.get_extra_info("sockname")[:2]
        writer.close()

    assert [r.transaction_id for r in responses] == [
        parse(r).transaction_id for r in requests
    ]
    assert all(r.is_success for r in responses)
    assert all(r.xor_mapped_address() == local for r in responses)


# The service itself


async def test_service_shares_one_port() -> None:
    service = await serve_stun(("127.0.0.1", 0))
    try:
        assert service.udp_address is not None
        assert service.tcp_address is not None
        assert service.udp_address == service.tcp_address
        assert [t for t, _ in service.addresses] == [
            TransportType.UDP,
            TransportType.TCP,
        ]
    finally:
        service.close()
        await service.wait_closed()


@pytest.mark.parametrize(("udp", "tcp"), [(True, False), (False, True)])
async def test_service_single_transport(udp: bool, tcp: bool) -> None:
    async with await serve_stun(("127.0.0.1", 0), udp=udp, tcp=tcp) as service:
        assert (service.udp_address is not None) == udp
        assert (service.tcp_address is not None) == tcp
        assert len(service.addresses) == 1


async def test_service_rejects_no_transport() -> None:
    with pytest.raises(ValueError, match="udp, tcp or both"):
        await serve_stun(("127.0.0.1", 0), udp=False, tcp=False)


async def test_service_close_ends_tcp_connections() -> None:
    service = await serve_stun(("127.0.0.1", 0))
    assert service.tcp_address is not None
    reader, writer = await asyncio.open_connection(*service.tcp_address)
    for _ in range(100):
        if service.connections:
            break
        await asyncio.sleep(0.01)
    assert service.connections == 1

    service.close()
    await asyncio.wait_for(service.wait_closed(), 5)

    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert service.connections == 0
    writer.close()


async def test_service_port_in_use() -> None:
    async with await serve_stun(("127.0.0.1", 0)) as service:
        assert service.udp_address is not None
        with pytest.raises(OSError):
            await serve_stun(service.udp_address)


async def test_client_request_after_close_fails() -> None:
    client = await StunClient.open_udp(("127.0.0.1", 0))
    client.close()
    await client.wait_closed()

    with pytest.raises(StunConnectionError, match="closed"):
        await client.request(Method.BINDING, ("127.0.0.1", 9))


async def test_tcp_connect_refused() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        address = unused.getsockname()
        # Bound but not listening: connections to it are refused.
        with pytest.raises(StunConnectionError, match="cannot connect") as caught:
            await binding_request(address, transport="tcp")

    assert caught.value.server == address


# RFC 3489 servers


class _Rfc3489Responder(asyncio.DatagramProtocol):
    """Respond as an RFC 3489 server does: echo the 16-byte transaction id
    and send only MAPPED-ADDRESS, with SOFTWARE padded by NUL bytes."""

    transport: asyncio.DatagramTransport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        # Bytes 4 to 20 are the RFC 3489 transaction id; MessageBuilder writes
        # the magic cookie at 4 to 8, which is what the request carried there.
        builder = MessageBuilder(0x0101, data[8:20])
        builder.add_mapped_address(addr[0], addr[1])
        builder.add(0x8022, b"old stun\x00\x00\x00\x00")
        self.transport.sendto(builder.finish(), addr)


@pytest.mark.parametrize("legacy", [False, True])
async def test_rfc3489_mapped_address_only(legacy: bool) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        _Rfc3489Responder, local_addr=("127.0.0.1", 0)
    )
    server = transport.get_extra_info("sockname")[:2]
    try:
        result = await binding_request(server, legacy=legacy, timeout=5)
    finally:
        transport.close()

    assert result.legacy is True
    assert result.mapped_address == result.local_address
    assert result.software == "old stun"


async def test_legacy_request_has_no_fingerprint(silent_udp: socket.socket) -> None:
    with pytest.raises(StunTimeoutError):
        await binding_request(silent_udp.getsockname(), legacy=True, config=FAST_UDP)

    requests = [parse(data) for data in _drain(silent_udp)]
    assert requests
    assert all(not request.has_fingerprint for request in requests)
    assert all(len(request) == 0 for request in requests)


# Unreachable servers, invalid server addresses and invalid responses


def _closed_udp_port(host: str = "127.0.0.1") -> tuple[str, int]:
    """Return a UDP address on loopback where nothing listens."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        address = probe.getsockname()[:2]
    return (str(address[0]), int(address[1]))


@pytest.mark.parametrize("host", LOOPBACKS)
async def test_icmp_port_unreachable_fails_at_once(host: str) -> None:
    server = _closed_udp_port(host)

    # The default schedule would wait 39.5 s; the timeout only bounds a
    # failing run, and the ICMP error must end the request well before it.
    with pytest.raises(StunConnectionError) as caught:
        await binding_request(server, timeout=20)

    assert not isinstance(caught.value, StunTimeoutError)
    assert caught.value.server == server
    assert caught.value.transport == "udp"
    message = str(caught.value)
    assert f"{host}:{server[1]}" in message or f"[{host}]:{server[1]}" in message
    assert "ICMP port unreachable" in message


async def test_connected_udp_client_survives_icmp_error() -> None:
    server = _closed_udp_port()
    async with await serve_stun(("127.0.0.1", 0), tcp=False) as service:
        assert service.udp_address is not None
        client = await StunClient.open_udp(None, remote_address=server)
        async with client:
            with pytest.raises(StunConnectionError, match="unreachable"):
                await client.request(Method.BINDING, timeout=20)
            assert client.driver.pending == 0

            # The connected socket sends nowhere else.
            with pytest.raises(StunTimeoutError):
                await client.request(Method.BINDING, service.udp_address, timeout=0.3)


@pytest.mark.parametrize(
    ("server", "message"),
    [
        (("127.0.0.1", 0), "port must be 1 to 65535"),
        (("0.0.0.0", 3478), "unspecified"),
        (("::", 3478), "unspecified"),
        ("0.0.0.0:3478", "unspecified"),
    ],
)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_binding_request_rejects_unusable_server(
    server: tuple[str, int] | str, message: str, transport: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await binding_request(server, transport=transport, timeout=5)


async def test_client_request_rejects_unusable_destination() -> None:
    async with await StunClient.open_udp(("127.0.0.1", 0)) as client:
        with pytest.raises(ValueError, match="port must be 1 to 65535"):
            await client.request(Method.BINDING, ("127.0.0.1", 0))
        with pytest.raises(ValueError, match="unspecified"):
            await client.request(Method.BINDING, ("0.0.0.0", 3478))
        with pytest.raises(ValueError, match="unspecified"):
            client.send_indication(Method.BINDING, ("::", 3478))
        with pytest.raises(ValueError, match="not an IP address"):
            await client.request(Method.BINDING, ("localhost", 3478))
        assert client.driver.pending == 0


class _BadResponder(asyncio.DatagramProtocol):
    """Respond to each request with a success response that ``extra`` makes invalid."""

    transport: asyncio.DatagramTransport

    def __init__(self, extra: tuple[tuple[int, bytes], ...]) -> None:
        self.extra = extra

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        builder = MessageBuilder(0x0101, data[8:20])
        for attribute_type, value in self.extra:
            builder.add(attribute_type, value)
        self.transport.sendto(builder.finish(fingerprint=True), addr)


@pytest.mark.parametrize(
    ("extra", "detail"),
    [
        (((0x0020, b"\x00\x09\x00"),), "invalid STUN message"),
        (((0x0020, b"\x00\x01\x00\x01\x01\x02\x03\x04"), (0x8022, b"\xff")), ""),
        (
            ((0x0020, b"\x00\x01\x00\x01\x01\x02\x03\x04"), (0x7FFE, b"")),
            "0x7ffe",
        ),
    ],
    ids=["short-xor-mapped-address", "software-not-utf8", "unknown-required"],
)
async def test_invalid_response_is_io_error(
    extra: tuple[tuple[int, bytes], ...], detail: str
) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _BadResponder(extra), local_addr=("127.0.0.1", 0)
    )
    server = transport.get_extra_info("sockname")[:2]
    try:
        with pytest.raises(StunIOError) as caught:
            await binding_request(server, timeout=5)
    finally:
        transport.close()

    assert type(caught.value) is StunIOError
    assert not isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert f"STUN server 127.0.0.1:{server[1]} over udp sent an invalid" in message
    assert detail in message
    assert caught.value.server == server


async def test_authenticated_flag() -> None:
    alice = LongTermCredentials("alice", "alice-password", "")
    open_service = await serve_stun(("127.0.0.1", 0), tcp=False)
    closed_service = await serve_stun(
        ("127.0.0.1", 0),
        tcp=False,
        authenticator=LongTermAuthenticator("example.org", {"alice": "alice-password"}),
    )
    async with open_service, closed_service:
        assert open_service.udp_address is not None
        assert closed_service.udp_address is not None

        plain = await binding_request(open_service.udp_address)
        unused = await binding_request(open_service.udp_address, credentials=alice)
        used = await binding_request(closed_service.udp_address, credentials=alice)

    assert plain.authenticated is False
    assert unused.authenticated is False
    assert used.authenticated is True


# TCP limits of the service


async def _wait_for(condition: Any, limit: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_tcp_idle_connection_closed() -> None:
    async with await serve_stun(
        ("127.0.0.1", 0), udp=False, tcp_idle_timeout=0.2
    ) as service:
        assert service.tcp_address is not None
        reader, writer = await asyncio.open_connection(*service.tcp_address)
        # Three bytes of a header: never a complete message.
        writer.write(_binding_request_bytes()[:3])

        remainder = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await _wait_for(lambda: service.connections == 0)

    assert remainder == b""
    assert service.closed_idle == 1


async def test_tcp_active_connection_stays_open() -> None:
    async with await serve_stun(
        ("127.0.0.1", 0), udp=False, tcp_idle_timeout=1.0
    ) as service:
        assert service.tcp_address is not None
        client = await StunClient.open_tcp(service.tcp_address)
        async with client:
            # Each request moves the idle deadline, so requests spread over
            # more than the timeout keep the connection.
            loop = asyncio.get_running_loop()
            end = loop.time() + 1.5
            answered = 0
            while loop.time() < end:
                await client.request(Method.BINDING, timeout=5)
                answered += 1
                await asyncio.sleep(0.1)

            assert service.connections == 1
            assert service.closed_idle == 0
            assert answered > 1


async def test_tcp_connection_limit(caplog: pytest.LogCaptureFixture) -> None:
    async with await serve_stun(
        ("127.0.0.1", 0), udp=False, max_tcp_connections=2
    ) as service:
        assert service.tcp_address is not None
        first = await StunClient.open_tcp(service.tcp_address)
        second = await StunClient.open_tcp(service.tcp_address)
        await _wait_for(lambda: service.connections == 2)

        with caplog.at_level(logging.WARNING, logger="rice_fast.io"):
            reader, writer = await asyncio.open_connection(*service.tcp_address)
            writer.write(_binding_request_bytes())
            refused = await asyncio.wait_for(reader.read(), 5)
            writer.close()

        # The open connections still work, and a closed one frees a slot.
        await first.request(Method.BINDING, timeout=5)
        second.close()
        await second.wait_closed()
        await _wait_for(lambda: service.connections == 1)
        third = await StunClient.open_tcp(service.tcp_address)
        await third.request(Method.BINDING, timeout=5)
        first.close()
        third.close()

    assert refused == b""
    assert service.refused_connections == 1
    (record,) = caplog.records
    assert "max_tcp_connections" in record.getMessage()
    assert "127.0.0.1:" in record.getMessage()


async def test_tcp_accept_errors_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from rice_fast.io import _server

    monkeypatch.setattr(_server, "_ACCEPT_RETRY_DELAY", 0.0)
    loop = asyncio.get_running_loop()
    real_accept = loop.sock_accept
    failures = 0

    async def failing_accept(sock: socket.socket) -> tuple[socket.socket, Any]:
        nonlocal failures
        if failures < 50:
            failures += 1
            raise OSError(errno.EMFILE, "Too many open files")
        return await real_accept(sock)

    monkeypatch.setattr(loop, "sock_accept", failing_accept)
    with caplog.at_level(logging.DEBUG, logger="rice_fast.io"):
        async with await serve_stun(("127.0.0.1", 0), udp=False) as service:
            assert service.tcp_address is not None
            result = await binding_request(
                service.tcp_address, transport="tcp", timeout=5
            )

    assert result.mapped_address == result.local_address
    assert service.accept_errors == 50
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1
    assert "Too many open files" in errors[0].getMessage()
    assert errors[0].exc_info is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"tcp_idle_timeout": 0}, "tcp_idle_timeout"),
        ({"tcp_idle_timeout": float("nan")}, "tcp_idle_timeout"),
        ({"max_tcp_connections": 0}, "max_tcp_connections"),
        ({"max_tcp_connections": 1.5}, "max_tcp_connections"),
    ],
)
async def test_service_rejects_invalid_tcp_limits(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await serve_stun(("127.0.0.1", 0), **settings)
