"""TurnClient and TurnConnection against coturn 4.6 on loopback.

The coturn fixtures start a real ``turnserver`` on free loopback ports
(``coturn`` from tests/conftest.py for UDP and TCP, ``coturn_tls`` from
tests/turn/conftest.py with a self-signed certificate) and fail the test
when it does not start. Peers are sockets of the test: a UDP echo socket,
or a TCP echo server for RFC 6062 allocations.
"""

from __future__ import annotations

import asyncio
import select
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

from rice_fast.io._turn import TurnConnection
from rice_fast.io.errors import StunConnectionError, StunErrorResponse
from rice_fast.stun import AddressFamily, Method, TransportProtocol
from rice_fast.stun.agent import StunAgent
from rice_fast.stun.attributes import Lifetime
from rice_fast.stun.credentials import LongTermCredentials
from rice_fast.stun.events import StunEvent, TransactionSucceeded
from rice_fast.stun.transport import Address, TransportType
from rice_fast.turn.client import AllocationOptions, TurnClient
from rice_fast.turn.events import (
    AllocateSocket,
    AllocationCreated,
    ChannelBound,
    PeerData,
    SocketPurpose,
    TurnEvent,
)

if TYPE_CHECKING:
    from tests.conftest import CoturnServer
    from tests.turn.conftest import TlsCoturn

pytestmark = pytest.mark.interop

TIMEOUT = 10.0


class UdpEcho(asyncio.DatagramProtocol):
    """Sends every datagram back prefixed with ``echo:``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's selector datagram transport does not subclass
        # asyncio.DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.transport.sendto(b"echo:" + data, addr)


async def udp_echo(host: str) -> tuple[asyncio.DatagramTransport, Address]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(UdpEcho, local_addr=(host, 0))
    name = transport.get_extra_info("sockname")
    return transport, (name[0], name[1])


def credentials(server: CoturnServer | TlsCoturn) -> LongTermCredentials:
    # The realm is learnt from the 401; the one given here is only a hint.
    return LongTermCredentials(server.user, server.password, "")


async def exchange_both_ways(turn: TurnConnection, peer: Address) -> None:
    """Send by Send indication, then bind a channel and send by ChannelData."""
    await turn.create_permission(peer)
    turn.send_to(peer, b"indication")
    data, source = await turn.recv_from(timeout=TIMEOUT)
    assert data == b"echo:indication"
    assert source == peer
    assert turn.client.stats.send_indications == 1

    channel = await turn.bind_channel(peer)
    assert 0x4000 <= channel <= 0x4FFF
    # 13 bytes: over TCP and TLS the ChannelData is padded to 16.
    for index in range(3):
        turn.send_to(peer, b"channel-data%d" % index)
    echoes = [await turn.recv_from(timeout=TIMEOUT) for _ in range(3)]
    assert sorted(data for data, _ in echoes) == [
        b"echo:channel-data0",
        b"echo:channel-data1",
        b"echo:channel-data2",
    ]
    assert {source for _, source in echoes} == {peer}
    assert turn.client.stats.channel_data_sent == 3


@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_coturn_relays_both_ways(
    coturn: CoturnServer, transport: str, ipv6: bool
) -> None:
    server = coturn.address(ipv6)
    family = AddressFamily.IPV6 if ipv6 else AddressFamily.IPV4
    echo, peer = await udp_echo(server[0])
    try:
        async with TurnConnection.connect(
            server,
            credentials(coturn),
            transport=transport,
            options=AllocationOptions(address_family=family),
        ) as turn:
            assert len(turn.relayed_addresses) == 1
            assert turn.relayed_address[0] == server[0]
            assert turn.mapped_address == turn.client.local_address
            await exchange_both_ways(turn, peer)
            client = turn.client
        assert client.closed
    finally:
        echo.close()


@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
async def test_coturn_tls_relays_both_ways(coturn_tls: TlsCoturn, ipv6: bool) -> None:
    host = "::1" if ipv6 else "127.0.0.1"
    echo, peer = await udp_echo(host)
    try:
        async with TurnConnection.connect(
            (host, coturn_tls.tls_port),
            credentials(coturn_tls),
            transport="tls",
            ssl_context=coturn_tls.certificate.client_context(),
            options=AllocationOptions(
                address_family=AddressFamily.IPV6 if ipv6 else None
            ),
        ) as turn:
            assert turn.relayed_address[0] == host
            await exchange_both_ways(turn, peer)
    finally:
        echo.close()


async def test_coturn_tls_rejects_untrusted_certificate(coturn_tls: TlsCoturn) -> None:
    with pytest.raises(StunConnectionError, match="certificate verification failed"):
        await TurnConnection.connect(
            ("127.0.0.1", coturn_tls.tls_port),
            credentials(coturn_tls),
            transport="tls",
        )


async def test_coturn_dual_allocation(coturn: CoturnServer) -> None:
    echo4, peer4 = await udp_echo("127.0.0.1")
    echo6, peer6 = await udp_echo("::1")
    try:
        async with TurnConnection.connect(
            coturn.address(),
            credentials(coturn),
            options=AllocationOptions(dual_stack=True),
        ) as turn:
            families = [":" in host for host, _ in turn.relayed_addresses]
            assert families == [False, True]
            for peer in (peer4, peer6):
                await turn.bind_channel(peer)
                turn.send_to(peer, b"dual")
                data, source = await turn.recv_from(timeout=TIMEOUT)
                assert (data, source) == (b"echo:dual", peer)
    finally:
        echo4.close()
        echo6.close()


async def test_coturn_ipv6_relay_from_ipv4_server(coturn: CoturnServer) -> None:
    echo, peer = await udp_echo("::1")
    try:
        async with TurnConnection.connect(
            coturn.address(),
            credentials(coturn),
            options=AllocationOptions(address_family=AddressFamily.IPV6),
        ) as turn:
            assert turn.relayed_address[0] == "::1"
            await exchange_both_ways(turn, peer)
    finally:
        echo.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_coturn_wrong_password(coturn: CoturnServer, transport: str) -> None:
    wrong = LongTermCredentials(coturn.user, "not-the-password", "")

    with pytest.raises(StunErrorResponse) as raised:
        await TurnConnection.connect(coturn.address(), wrong, transport=transport)

    assert raised.value.code == 401


async def test_coturn_delete_on_close(coturn: CoturnServer) -> None:
    turn = await TurnConnection.connect(coturn.address(), credentials(coturn))
    client = turn.client
    assert turn.deletion_confirmed is None

    await turn.close()

    assert client.closed
    assert turn.deletion_confirmed is True


async def test_coturn_even_port_and_reservation(coturn: CoturnServer) -> None:
    async with TurnConnection.connect(
        coturn.address(),
        credentials(coturn),
        options=AllocationOptions(even_port=True),
    ) as first:
        reserved = first.allocation
        token = reserved.reservation_token
        assert first.relayed_address[1] % 2 == 0
        assert token is not None
        async with TurnConnection.connect(
            coturn.address(),
            credentials(coturn),
            options=AllocationOptions(reservation_token=token),
        ) as second:
            assert second.relayed_address == (
                first.relayed_address[0],
                first.relayed_address[1] + 1,
            )


async def test_coturn_connection_reallocates_after_mismatch(
    coturn: CoturnServer,
) -> None:
    loop = asyncio.get_running_loop()
    echo, peer = await udp_echo("127.0.0.1")
    creds = credentials(coturn)
    try:
        async with TurnConnection.connect(coturn.address(), creds) as turn:
            first = turn.allocation
            local = turn.client.local_address
            # A second agent on the connection's own socket deletes the
            # allocation; the test taps the socket's reads to feed it.
            intruder = StunAgent(TransportType.UDP, local)
            forward = turn._on_data

            def tap(at: Address, data: bytes, source: Address | None) -> None:
                if at == local:
                    intruder.handle_data(data, source or turn.server, loop.time())
                forward(at, data, source)

            setattr(turn, "_on_data", tap)  # noqa: B010
            intruder.send_request(
                Method.REFRESH,
                turn.server,
                loop.time(),
                attributes=[Lifetime(0)],
                credentials=creds,
            )
            deleted = False
            for _ in range(500):
                while (transmit := intruder.poll_transmit(loop.time())) is not None:
                    turn._endpoints[local].sendto(transmit.data, transmit.destination)
                event = intruder.poll(loop.time())
                if isinstance(event, TransactionSucceeded):
                    deleted = True
                    break
                await asyncio.sleep(0.01)
            assert deleted
            # coturn removes the allocation a moment after the Refresh.
            await asyncio.sleep(1.5)

            turn.client.refresh(loop.time())
            turn._process()
            for _ in range(500):
                if turn.allocation is not first and turn.client.allocated:
                    break
                await asyncio.sleep(0.01)

            assert turn.allocation is not first
            assert turn.allocation.local_address != local
            assert turn.client.stats.reallocations == 1
            await turn.bind_channel(peer)
            turn.send_to(peer, b"after 437")
            data, source = await turn.recv_from(timeout=TIMEOUT)
            assert (data, source) == (b"echo:after 437", peer)
    finally:
        echo.close()


# RFC 6062 TCP allocations.


class TcpEcho:
    """A TCP echo server of the test, the peer of the TCP relay."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.connections: list[asyncio.StreamWriter] = []

    async def start(self, host: str) -> Address:
        self.server = await asyncio.start_server(self._serve, host, 0)
        name = self.server.sockets[0].getsockname()
        return (name[0], name[1])

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections.append(writer)
        try:
            while data := await reader.read(65536):
                writer.write(b"echo:" + data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        for writer in self.connections:
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def read_exactly(turn: TurnConnection, expected: bytes) -> Address:
    """Read the stream from the relay until ``expected`` has arrived."""
    received = b""
    source: Address | None = None
    while len(received) < len(expected):
        data, source = await turn.recv_from(timeout=TIMEOUT)
        received += data
    assert received == expected
    assert source is not None
    return source


async def run_tcp_relay(turn: TurnConnection, echo: TcpEcho, peer: Address) -> None:
    await turn.create_permission(peer)

    # Client-initiated: Connect, then ConnectionBind on a data connection.
    data_local = await turn.connect_peer(peer)
    assert data_local != turn.client.local_address
    turn.send_to(peer, b"hello over tcp")
    assert await read_exactly(turn, b"echo:hello over tcp") == peer

    # Peer-initiated: the peer connects to the relayed address and the
    # server reports a ConnectionAttempt.
    reader, writer = await asyncio.open_connection(*turn.relayed_address)
    try:
        accepted = await turn.accept_peer(timeout=TIMEOUT)
        writer.write(b"from the peer")
        await writer.drain()
        assert await read_exactly(turn, b"from the peer") == accepted
        turn.send_to(accepted, b"reply")
        assert await asyncio.wait_for(reader.readexactly(5), TIMEOUT) == b"reply"
    finally:
        writer.close()


async def test_coturn_tcp_allocation_connect_and_accept(coturn: CoturnServer) -> None:
    echo = TcpEcho()
    peer = await echo.start("127.0.0.1")
    try:
        async with TurnConnection.connect(
            coturn.address(),
            credentials(coturn),
            transport="tcp",
            options=AllocationOptions(relay_transport=TransportProtocol.TCP),
        ) as turn:
            await run_tcp_relay(turn, echo, peer)
    finally:
        await echo.close()


async def test_coturn_tls_tcp_allocation(coturn_tls: TlsCoturn) -> None:
    echo = TcpEcho()
    peer = await echo.start("127.0.0.1")
    try:
        async with TurnConnection.connect(
            ("127.0.0.1", coturn_tls.tls_port),
            credentials(coturn_tls),
            transport="tls",
            ssl_context=coturn_tls.certificate.client_context(),
            options=AllocationOptions(relay_transport=TransportProtocol.TCP),
        ) as turn:
            await run_tcp_relay(turn, echo, peer)
    finally:
        await echo.close()


# 437 after the allocation was deleted behind the client's back.


class SocketLoop:
    """Drives a sans-IO TurnClient over blocking UDP sockets of the test.

    ``intruder`` is a second ``StunAgent`` on the client's first socket: it
    sends requests on the same 5-tuple as the client, which is the only way
    to delete the allocation behind the client's back.
    """

    def __init__(self, server: Address, creds: LongTermCredentials) -> None:
        self.server = server
        self.sockets: dict[Address, socket.socket] = {}
        first = self.open_socket()
        self.client = TurnClient(TransportType.UDP, first, server, creds)
        self.intruder = StunAgent(TransportType.UDP, first)
        self.credentials = creds
        self.events: list[TurnEvent] = []
        self.intruder_events: list[StunEvent] = []

    def open_socket(self) -> Address:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        name = sock.getsockname()
        self.sockets[name] = sock
        return (name[0], name[1])

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()

    def step(self, wait: float = 0.02) -> None:
        now = time.monotonic()
        while isinstance(result := self.client.poll(now), TurnEvent):
            self.events.append(result)
            if isinstance(result, AllocateSocket):
                assert result.purpose is SocketPurpose.REALLOCATE
                self.client.socket_allocated(self.open_socket(), now)
        while isinstance(event := self.intruder.poll(now), StunEvent):
            self.intruder_events.append(event)
        for sender in (self.client, self.intruder):
            while (transmit := sender.poll_transmit(now)) is not None:
                self.sockets[transmit.source].sendto(
                    transmit.data, transmit.destination
                )
        readable, _, _ = select.select(list(self.sockets.values()), [], [], wait)
        for sock in readable:
            data, source = sock.recvfrom(65536)
            local = sock.getsockname()
            local_address = (local[0], local[1])
            now = time.monotonic()
            self.client.handle_data(
                data, (source[0], source[1]), now, local=local_address
            )
            if local_address == self.intruder.local_address:
                self.intruder.handle_data(data, (source[0], source[1]), now)

    def run_until(self, condition: object, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.step()
            if callable(condition) and condition():
                return
        raise AssertionError(f"timed out; events so far: {self.events}")


@pytest.fixture
def socket_loop(coturn: CoturnServer) -> Iterator[SocketLoop]:
    loop = SocketLoop(coturn.address(), credentials(coturn))
    try:
        yield loop
    finally:
        loop.close()


def test_coturn_mismatch_reallocates(socket_loop: SocketLoop) -> None:
    loop = socket_loop
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer_address = (peer.getsockname()[0], peer.getsockname()[1])
    try:
        loop.run_until(
            lambda: any(isinstance(e, AllocationCreated) for e in loop.events)
        )
        first = loop.events[-1]
        assert isinstance(first, AllocationCreated)
        loop.client.bind_channel(peer_address, time.monotonic())
        loop.run_until(lambda: any(isinstance(e, ChannelBound) for e in loop.events))

        # Delete the allocation from the same 5-tuple; coturn removes it a
        # moment after the Refresh with LIFETIME 0 succeeds.
        loop.intruder.send_request(
            Method.REFRESH,
            loop.server,
            time.monotonic(),
            attributes=[Lifetime(0)],
            credentials=loop.credentials,
        )
        loop.run_until(
            lambda: any(
                isinstance(e, TransactionSucceeded) for e in loop.intruder_events
            )
        )
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            loop.step()

        # coturn 4.6 responds to the next Refresh with 437.
        loop.events.clear()
        loop.client.refresh(time.monotonic())
        loop.run_until(
            lambda: (
                any(isinstance(e, AllocationCreated) for e in loop.events)
                and any(isinstance(e, ChannelBound) for e in loop.events)
            )
        )
        assert isinstance(loop.events[0], AllocateSocket)
        second = next(e for e in loop.events if isinstance(e, AllocationCreated))
        assert isinstance(second, AllocationCreated)
        assert second.local_address != first.local_address
        assert loop.client.stats.reallocations == 1

        # The channel was bound again on the new allocation.
        loop.client.send_to(peer_address, b"after 437", time.monotonic())
        loop.step()
        peer.settimeout(TIMEOUT)
        data, relayed = peer.recvfrom(100)
        assert data == b"after 437"
        assert (relayed[0], relayed[1]) == second.relayed_addresses[0]
        peer.sendto(b"back", relayed)
        loop.events.clear()
        loop.run_until(lambda: any(isinstance(e, PeerData) for e in loop.events))
        assert [e for e in loop.events if isinstance(e, PeerData)] == [
            PeerData(peer_address, b"back")
        ]
    finally:
        peer.close()


# rice-fast turn.


@pytest.fixture
def turnutils_peer(tmp_path: Path) -> Iterator[Address]:
    """coturn's UDP echo peer, ``turnutils_peer``, on a free loopback port."""
    binary = shutil.which("turnutils_peer")
    if binary is None:
        pytest.fail(
            "turnutils_peer not found on PATH: install the Debian package coturn"
        )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "turnutils_peer.log").open("wb")
    process = subprocess.Popen(
        [binary, "-L", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # Wait until it echoes.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as check:
            check.settimeout(0.2)
            for _ in range(50):
                check.sendto(b"ping", ("127.0.0.1", port))
                try:
                    if check.recvfrom(100)[0] == b"ping":
                        break
                except OSError:
                    continue
            else:
                pytest.fail(f"turnutils_peer did not echo on 127.0.0.1:{port}")
        yield ("127.0.0.1", port)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def run_cli(
    command: Callable[..., list[str]], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command("turn", *args), capture_output=True, text=True, timeout=60, check=False
    )


def test_cli_turn_echoes_through_channel(
    coturn: CoturnServer,
    turnutils_peer: Address,
    rice_fast_command: Callable[..., list[str]],
) -> None:
    result = run_cli(
        rice_fast_command,
        f"127.0.0.1:{coturn.port}",
        "--user",
        coturn.user,
        "--password",
        coturn.password,
        "--peer",
        f"127.0.0.1:{turnutils_peer[1]}",
        "--count",
        "2",
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Relayed address: 127.0.0.1:")
    assert "Channel:         0x4000" in result.stdout
    replies = [line for line in lines if line.startswith("Reply")]
    assert len(replies) == 2
    assert "b'rice-fast turn 1'" in replies[0]
    assert lines[-1] == "Allocation deleted"


def test_cli_turn_tls_with_ca(
    coturn_tls: TlsCoturn, rice_fast_command: Callable[..., list[str]]
) -> None:
    base = [
        f"127.0.0.1:{coturn_tls.tls_port}",
        "--transport",
        "tls",
        "--user",
        coturn_tls.user,
        "--password",
        coturn_tls.password,
        "--family",
        "dual",
    ]

    trusted = run_cli(
        rice_fast_command, *base, "--ca", str(coturn_tls.certificate.cert)
    )
    untrusted = run_cli(rice_fast_command, *base)

    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stdout.count("Relayed address:") == 2
    assert untrusted.returncode == 1
    assert "certificate verification failed" in untrusted.stderr


def test_cli_turn_wrong_password(
    coturn: CoturnServer, rice_fast_command: Callable[..., list[str]]
) -> None:
    result = run_cli(
        rice_fast_command,
        f"127.0.0.1:{coturn.port}",
        "--user",
        coturn.user,
        "--password",
        "wrong",
    )

    assert result.returncode == 4
    assert "401" in result.stderr
    assert result.stdout == ""
