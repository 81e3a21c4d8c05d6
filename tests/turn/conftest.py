"""Fixtures of the TURN client tests: a scripted server and a TLS coturn.

``ScriptedServer`` builds the responses a TURN server would send, signed
with the long-term key, so unit tests can answer each request of a
``TurnClient`` by hand on a virtual clock. ``ClientHarness`` steps the
client: it polls events, collects transmits and parses the requests in
them. ``tls_certificate`` makes a self-signed certificate with the openssl
command line, and ``coturn_tls`` runs coturn with it.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rice_fast.stun import (
    IntegrityKey,
    Message,
    MessageBuilder,
    MessageClass,
    message_type,
    parse,
)
from rice_fast.stun.credentials import LongTermCredentials, long_term_key
from rice_fast.stun.transport import Address, Transmit, TransportType, WaitUntil
from rice_fast.turn import StreamDeframer
from rice_fast.turn.client import AllocationOptions, TurnClient
from rice_fast.turn.events import TurnEvent

USER = "alice"
PASSWORD = "wonderland"
REALM = "example.org"
SERVER: Address = ("192.0.2.1", 3478)
LOCAL: Address = ("192.0.2.10", 50000)
RELAYED: Address = ("192.0.2.1", 49152)
MAPPED: Address = ("198.51.100.7", 61000)
START = 1000.0


@dataclass
class ScriptedServer:
    """Builds TURN responses by hand: 401 challenges, signed answers, errors."""

    nonce: str = "nonce-1"
    realm: str = REALM
    key: IntegrityKey = field(
        default_factory=lambda: IntegrityKey(long_term_key(USER, REALM, PASSWORD))
    )

    def challenge(self, request: Message, code: int = 401) -> bytes:
        """Return an unsigned 401 (or 438) with REALM and NONCE."""
        builder = MessageBuilder(
            message_type(request.method, MessageClass.ERROR), request.transaction_id
        )
        builder.add_error_code(code, "Unauthenticated" if code == 401 else "Stale")
        builder.add_realm(self.realm)
        builder.add_nonce(self.nonce)
        data: bytes = builder.finish(fingerprint=True)
        return data

    def success(
        self,
        request: Message,
        build: Callable[[MessageBuilder], None] | None = None,
        *,
        sign: bool = True,
    ) -> bytes:
        """Return a success response, with attributes from ``build``."""
        builder = MessageBuilder(
            message_type(request.method, MessageClass.SUCCESS), request.transaction_id
        )
        if build is not None:
            build(builder)
        data: bytes = builder.finish(self.key if sign else None, fingerprint=True)
        return data

    def error(
        self,
        request: Message,
        code: int,
        reason: str = "",
        build: Callable[[MessageBuilder], None] | None = None,
        *,
        sign: bool = True,
    ) -> bytes:
        """Return a signed error response with ``code``."""
        builder = MessageBuilder(
            message_type(request.method, MessageClass.ERROR), request.transaction_id
        )
        builder.add_error_code(code, reason)
        if build is not None:
            build(builder)
        data: bytes = builder.finish(self.key if sign else None, fingerprint=True)
        return data

    def allocate_success(
        self,
        request: Message,
        *,
        lifetime: int = 600,
        relayed: Sequence[Address] = (RELAYED,),
        mapped: Address = MAPPED,
        extra: Callable[[MessageBuilder], None] | None = None,
    ) -> bytes:
        """Return an Allocate success response."""

        def build(builder: MessageBuilder) -> None:
            for address in relayed:
                builder.add_xor_relayed_address(*address)
            builder.add_xor_mapped_address(*mapped)
            builder.add_lifetime(lifetime)
            if extra is not None:
                extra(builder)

        return self.success(request, build)

    def verify(self, request: Message) -> bool:
        """Return whether ``request`` carries valid long-term credentials."""
        return (
            request.username() == USER
            and request.realm() == self.realm
            and request.nonce() == self.nonce
            and request.check_integrity(self.key)
        )


class MemoryTlsServer:
    """The server side of a TLS session in memory, for unit tests."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._object = context.wrap_bio(
            self._incoming, self._outgoing, server_side=True
        )
        self.established = False
        self.failed = False

    def receive(self, data: bytes) -> bytes:
        """Take bytes from the client; return the plaintext they complete."""
        self._incoming.write(data)
        if self.failed:
            return b""
        if not self.established:
            try:
                self._object.do_handshake()
            except ssl.SSLWantReadError:
                return b""
            except ssl.SSLError:
                # The client rejected the certificate and sent an alert.
                self.failed = True
                return b""
            self.established = True
        plain = b""
        while True:
            try:
                chunk = self._object.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                return plain
            if not chunk:
                return plain
            plain += chunk

    def send(self, data: bytes) -> None:
        """Encrypt ``data`` for the client."""
        self._object.write(data)

    def output(self) -> bytes:
        """Return the bytes the server side wants sent to the client."""
        return self._outgoing.read()


class ClientHarness:
    """A TurnClient on a virtual clock, with its transmits parsed for tests.

    Every event the client reports is kept until ``events`` returns it, so
    polling for transmits loses none. With ``tls_server`` the harness runs
    the server side of the TLS session: client bytes are decrypted before
    parsing, and ``feed`` encrypts.
    """

    def __init__(
        self,
        transport: TransportType = TransportType.UDP,
        options: AllocationOptions | None = None,
        *,
        tls_server: MemoryTlsServer | None = None,
        **kwargs: object,
    ) -> None:
        self.now = START
        self.server = ScriptedServer()
        self.credentials = LongTermCredentials(USER, PASSWORD, "")
        self.client = TurnClient(
            transport,
            LOCAL,
            SERVER,
            self.credentials,
            options=options,
            **kwargs,  # type: ignore[arg-type]
        )
        self.tls_server = tls_server
        self.deadline: float | None = None
        self.deframers: dict[Address, StreamDeframer] = {}
        self._unreturned: list[TurnEvent] = []

    def _poll(self) -> None:
        for _ in range(1000):
            result = self.client.poll(self.now)
            if isinstance(result, TurnEvent):
                self._unreturned.append(result)
                continue
            self.deadline = result.deadline if isinstance(result, WaitUntil) else None
            return
        raise AssertionError("the client kept returning events")

    def events(self) -> list[TurnEvent]:
        """Poll the client and return the events not returned before."""
        self._poll()
        found, self._unreturned = self._unreturned, []
        return found

    def transmits(self) -> list[Transmit]:
        """Poll the client and return every pending transmit."""
        self._poll()
        found: list[Transmit] = []
        while (transmit := self.client.poll_transmit(self.now)) is not None:
            found.append(transmit)
        return found

    def frames(self) -> list[tuple[Address, bytes]]:
        """Return ``(source, frame)`` for every message the client sent.

        Over TCP and TLS the stream is split into frames first (after
        decryption, answering the TLS handshake as it goes).
        """
        found: list[tuple[Address, bytes]] = []
        for _ in range(20):
            transmits = self.transmits()
            if not transmits:
                return found
            for transmit in transmits:
                data = transmit.data
                if self.tls_server is not None:
                    data = self.tls_server.receive(data)
                    reply = self.tls_server.output()
                    if reply:
                        self.client.handle_data(
                            reply, SERVER, self.now, local=transmit.source
                        )
                found += [(transmit.source, f) for f in self._split(transmit, data)]
        raise AssertionError("the client kept sending")

    def _split(self, transmit: Transmit, data: bytes) -> list[bytes]:
        if transmit.transport is TransportType.UDP:
            return [data]
        deframer = self.deframers.setdefault(transmit.source, StreamDeframer())
        return [frame for _, frame in deframer.frames_from(data)]

    def messages(self) -> list[Message]:
        """Return the STUN messages the client sent, in order."""
        return [parse(f) for _, f in self.frames() if f[0] & 0xC0 == 0]

    def request(self, method: int) -> Message:
        """Return the one request with ``method`` among the client's messages."""
        found = [m for m in self.messages() if m.method == method and m.is_request]
        assert len(found) == 1, f"expected one request 0x{method:03x}, got {found}"
        return found[0]

    def feed(self, data: bytes, *, local: Address | None = None) -> None:
        """Hand bytes from the server to the client (encrypted under TLS)."""
        if self.tls_server is not None:
            self.tls_server.send(data)
            data = self.tls_server.output()
        self.client.handle_data(data, SERVER, self.now, local=local)

    def advance(self, seconds: float) -> None:
        """Move the virtual clock forward."""
        self.now += seconds

    def advance_to_deadline(self) -> float:
        """Move the clock to the client's deadline and return it."""
        assert self.deadline is not None, "the client has no deadline"
        self.now = self.deadline
        return self.deadline

    def allocate(
        self,
        *,
        lifetime: int = 600,
        relayed: Sequence[Address] = (RELAYED,),
        extra: Callable[[MessageBuilder], None] | None = None,
    ) -> list[TurnEvent]:
        """Answer the first Allocate with 401, then the signed one with success."""
        first = self.request(0x003)
        assert not first.has_integrity
        self.feed(self.server.challenge(first))
        second = self.request(0x003)
        assert self.server.verify(second)
        self.feed(
            self.server.allocate_success(
                second, lifetime=lifetime, relayed=relayed, extra=extra
            )
        )
        return self.events()


@pytest.fixture
def harness() -> Callable[..., ClientHarness]:
    """Create a ``ClientHarness``: ``harness(TransportType.TCP, options)``."""
    return ClientHarness


# Certificates and TLS coturn.


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for localhost, 127.0.0.1 and ::1."""

    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """Return a client context that trusts this certificate."""
        return ssl.create_default_context(cafile=str(self.cert))

    def server_context(self) -> ssl.SSLContext:
        """Return a server context that presents this certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """Make a self-signed certificate with ``openssl req``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl not found on PATH: install the Debian package openssl")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    completed = subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        check=False,
        timeout=60,
    )
    if completed.returncode != 0:
        pytest.fail(f"openssl req failed: {completed.stderr.decode(errors='replace')}")
    return Certificate(cert, key)


def _port_free(port: int) -> bool:
    for host, family in (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)):
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(family, kind) as probe:
                try:
                    probe.bind((host, port))
                except OSError:
                    return False
    return True


def _free_range(count: int) -> int:
    rng = random.Random()
    for _ in range(200):
        # Below the Linux ephemeral range, where client sockets do not land.
        base = rng.randrange(20000, 32000 - count)
        if all(_port_free(p) for p in range(base, base + count)):
            return base
    pytest.fail(f"no {count} free ports on 127.0.0.1 and ::1")


@dataclass
class TlsCoturn:
    """coturn with TLS on ``tls_port`` (and plain TCP/UDP on ``port``)."""

    port: int
    tls_port: int
    process: subprocess.Popen[bytes]
    log_file: Path
    certificate: Certificate
    user: str = "alice"
    password: str = "wonderland"
    realm: str = "rice-fast.test"

    def log_tail(self) -> str:
        """Return the end of coturn's log."""
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-30:])

    def stop(self) -> None:
        """Stop coturn by pid."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


def _tls_ready(port: int, context: ssl.SSLContext) -> bool:
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=0.3) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1"),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


@pytest.fixture
def tls_server(tls_certificate: Certificate) -> Callable[[], MemoryTlsServer]:
    """Create the server side of an in-memory TLS session with the test cert."""
    return lambda: MemoryTlsServer(tls_certificate.server_context())


@pytest.fixture
def coturn_tls(tmp_path: Path, tls_certificate: Certificate) -> Iterator[TlsCoturn]:
    """coturn with TLS and the test's self-signed certificate.

    Fails the test (never skips) when coturn is missing or does not start.
    """
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.fail("turnserver not found on PATH: install the Debian package coturn")
    port = _free_range(2)
    relay_low = _free_range(100)
    log_file = tmp_path / "turnserver-tls.log"
    argv = [
        binary,
        "-n",
        "--listening-ip=127.0.0.1",
        "--listening-ip=::1",
        "--relay-ip=127.0.0.1",
        "--relay-ip=::1",
        f"--listening-port={port}",
        f"--tls-listening-port={port + 1}",
        f"--min-port={relay_low}",
        f"--max-port={relay_low + 99}",
        "--lt-cred-mech",
        "--user=alice:wonderland",
        "--realm=rice-fast.test",
        "--fingerprint",
        "--no-dtls",
        "--no-cli",
        f"--cert={tls_certificate.cert}",
        f"--pkey={tls_certificate.key}",
        "--allow-loopback-peers",
        f"--pidfile={tmp_path / 'turnserver-tls.pid'}",
        "--log-file=stdout",
        "--simple-log",
    ]
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = TlsCoturn(port, port + 1, process, log_file, tls_certificate)
    context = tls_certificate.client_context()
    deadline = time.monotonic() + 10
    try:
        while not _tls_ready(server.tls_port, context):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    "coturn with TLS did not come up on 127.0.0.1:"
                    f"{server.tls_port}. End of its log:\n{server.log_tail()}"
                )
            time.sleep(0.05)
        yield server
    finally:
        server.stop()
