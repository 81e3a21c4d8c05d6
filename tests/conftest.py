"""Shared fixtures: real STUN and TURN servers on loopback ports.

Every server runs as a subprocess on free loopback ports, writes a pid file
and a log file under the test's ``tmp_path``, and is stopped by pid when the
test ends. A missing binary or a server that does not come up fails the
test, never skips it, and the message gives the reason and the end of
the server's log.

Readiness is checked with plain sockets and the STUN codec, not with
``rice_fast.io``, so a bug there cannot look like a server failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rice_fast.stun import MessageBuilder, new_transaction_id, parse
from rice_fast.stun.errors import StunParseError

Address = tuple[str, int]

# Test servers take ports below the Linux ephemeral range (32768 to 60999),
# where the kernel does not place the client sockets of concurrent tests.
_PORT_RANGE = (20000, 32000)
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


# Coroutine tests

# Each ``async def`` test runs in a fresh event loop under this time limit,
# so a hung exchange fails the test instead of stalling the run.
_ASYNC_TEST_TIMEOUT = 60.0


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests with ``asyncio.run`` (no plugin needed)."""
    function = pyfuncitem.obj
    if not inspect.iscoroutinefunction(function):
        return None
    if pyfuncitem.config.pluginmanager.hasplugin("asyncio"):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    arguments = {name: pyfuncitem.funcargs[name] for name in names}

    async def run() -> None:
        await asyncio.wait_for(function(**arguments), _ASYNC_TEST_TIMEOUT)

    asyncio.run(run())
    return True


# Processes


@dataclass
class ServerProcess:
    """A server subprocess with its pid file and log file."""

    name: str
    process: subprocess.Popen[bytes]
    pid_file: Path
    log_file: Path

    @property
    def pid(self) -> int:
        """The server's pid, as the pid file records it."""
        return self.process.pid

    def running(self) -> bool:
        """Return whether the process has not exited."""
        return self.process.poll() is None

    def log(self) -> str:
        """Return the whole log file."""
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        """Return the last ``lines`` lines of the log, indented for messages."""
        tail = self.log().splitlines()[-lines:]
        return "\n".join("    " + line for line in tail) or "    (empty log)"

    def stop(self) -> int | None:
        """Send SIGTERM by pid, then SIGKILL after a grace time; return the status."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.process.wait(_STOP_TIMEOUT)
        self.pid_file.unlink(missing_ok=True)
        return self.process.returncode


def _require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} not found on PATH: install the Debian package {package} to "
            "run this interop test",
            pytrace=False,
        )
    return path


def _start_process(
    name: str, argv: Sequence[str], directory: Path, *, pid_file: Path | None = None
) -> ServerProcess:
    """Start ``argv`` with its output in a log file; write its pid file."""
    log_file = directory / f"{name}.log"
    if pid_file is None:
        pid_file = directory / f"{name}.pid"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    if not pid_file.exists():
        pid_file.write_text(f"{process.pid}\n")
    return ServerProcess(name, process, pid_file, log_file)


# Ports and probes


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(family, kind) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                return False
    return True


def free_ports(hosts: Sequence[str], count: int = 1) -> int:
    """Return a port P with P to P + count - 1 free on UDP and TCP on ``hosts``."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(_PORT_RANGE[0], _PORT_RANGE[1] - count)
        if all(
            _port_free(host, port)
            for host in hosts
            for port in range(base, base + count)
        ):
            return base
    pytest.fail(f"no free port range of {count} on {', '.join(hosts)}", pytrace=False)


def stun_probe_udp(address: Address, *, timeout: float = 0.2) -> bool:
    """Return whether a Binding request to ``address`` over UDP gets a response."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    transaction_id = new_transaction_id()
    # No attributes: stund drops requests with attributes it cannot pad.
    request = MessageBuilder(0x0001, transaction_id).finish()
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(request, address)
            data, _ = sock.recvfrom(2048)
        except OSError:
            return False
    try:
        return parse(data).transaction_id == transaction_id
    except StunParseError:
        return False


def tcp_probe(address: Address, *, timeout: float = 0.2) -> bool:
    """Return whether a TCP connection to ``address`` is accepted."""
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def _poll_ready(server: ServerProcess, ready: Callable[[], bool]) -> bool:
    """Poll ``ready`` until it holds, the process exits or the start timeout."""
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if not server.running():
            return False
        if ready():
            return True
        time.sleep(0.05)
    return False


def _fail_start(server: ServerProcess, expected: str) -> None:
    status = server.process.poll()
    server.stop()
    state = f"exited with status {status}" if status is not None else "kept running"
    pytest.fail(
        f"{server.name} did not come up: expected {expected}, and it {state}. "
        "End of its log:\n"
        f"{server.log_tail()}",
        pytrace=False,
    )


def _wait_until_ready(
    server: ServerProcess, ready: Callable[[], bool], expected: str
) -> None:
    if not _poll_ready(server, ready):
        _fail_start(server, expected)


# coturn


@dataclass
class CoturnServer:
    """A coturn ``turnserver`` on 127.0.0.1 and ::1, UDP and TCP, one port.

    ``user``/``password`` is a long-term credential in ``realm``; relayed
    addresses come from ``relay_ports`` on 127.0.0.1 and ::1, and loopback
    peers are allowed. coturn also listens on ``port + 1`` (its RFC 5780
    alternate port).
    """

    port: int
    relay_ports: tuple[int, int]
    process: ServerProcess
    user: str = "alice"
    password: str = "wonderland"
    realm: str = "rice-fast.test"
    hosts: tuple[str, str] = ("127.0.0.1", "::1")

    def address(self, ipv6: bool = False) -> Address:
        """Return the listening address on ::1 or 127.0.0.1."""
        return (self.hosts[1] if ipv6 else self.hosts[0], self.port)


def start_coturn(directory: Path, *, extra_args: Sequence[str] = ()) -> CoturnServer:
    """Start coturn on free loopback ports and wait until it responds.

    ``extra_args`` are appended to the command line. A start that fails
    because another program took a port between the check and the bind is
    retried on other ports, twice.
    """
    binary = _require_binary("turnserver", "coturn")
    hosts = ("127.0.0.1", "::1")
    user, password, realm = "alice", "wonderland", "rice-fast.test"
    attempts = 3
    for attempt in range(attempts):
        port = free_ports(hosts, count=2)
        relay_low = free_ports(hosts, count=100)
        relay_ports = (relay_low, relay_low + 99)
        pid_file = directory / "turnserver.pid"
        argv = [
            binary,
            "-n",
            "--listening-ip=127.0.0.1",
            "--listening-ip=::1",
            "--relay-ip=127.0.0.1",
            "--relay-ip=::1",
            f"--listening-port={port}",
            f"--min-port={relay_ports[0]}",
            f"--max-port={relay_ports[1]}",
            "--lt-cred-mech",
            f"--user={user}:{password}",
            f"--realm={realm}",
            "--fingerprint",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--allow-loopback-peers",
            f"--pidfile={pid_file}",
            "--log-file=stdout",
            "--simple-log",
            *extra_args,
        ]
        process = _start_process("turnserver", argv, directory, pid_file=pid_file)

        def ready(port: int = port) -> bool:
            return all(
                stun_probe_udp((host, port)) and tcp_probe((host, port))
                for host in hosts
            )

        if _poll_ready(process, ready):
            return CoturnServer(
                port, relay_ports, process, user, password, realm, hosts
            )
        if process.running() or attempt + 1 == attempts:
            _fail_start(
                process, f"STUN on UDP and TCP port {port} of 127.0.0.1 and ::1"
            )
        process.stop()
    raise AssertionError("unreachable: the last attempt fails the test")


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[CoturnServer]:
    """A coturn STUN/TURN server, stopped at the end of the test."""
    server = start_coturn(tmp_path)
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture
def coturn_factory(tmp_path: Path) -> Iterator[Callable[..., CoturnServer]]:
    """Start coturn with extra command-line flags: ``coturn_factory("--flag")``.

    Each call starts another server in its own folder; all of them are
    stopped at the end of the test.
    """
    started: list[CoturnServer] = []

    def start(*extra_args: str) -> CoturnServer:
        directory = tmp_path / f"coturn-{len(started)}"
        directory.mkdir()
        server = start_coturn(directory, extra_args=extra_args)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.process.stop()


# stund


@dataclass
class StundServer:
    """A stund (RFC 3489) server on 127.0.0.1:port, UDP only.

    stund also binds ``port + 1`` and the same two ports on 127.0.0.2, its
    "changed address" for RFC 3489 NAT tests.
    """

    port: int
    process: ServerProcess

    def address(self) -> Address:
        """Return the primary address, 127.0.0.1:port."""
        return ("127.0.0.1", self.port)


@pytest.fixture
def stund(tmp_path: Path) -> Iterator[StundServer]:
    """A stund server, stopped at the end of the test."""
    binary = _require_binary("stund", "stun-server")
    port = free_ports(("127.0.0.1", "127.0.0.2"), count=2)
    argv = [binary, "-h", "127.0.0.1", "-a", "127.0.0.2", "-p", str(port)]
    argv += ["-o", str(port + 1)]
    process = _start_process("stund", argv, tmp_path)
    try:
        _wait_until_ready(
            process,
            lambda: stun_probe_udp(("127.0.0.1", port)),
            f"STUN on UDP 127.0.0.1:{port}",
        )
        yield StundServer(port, process)
    finally:
        process.stop()


# rice-fast as a subprocess


def rice_fast_argv(*args: str) -> list[str]:
    """Return the command line that runs the installed ``rice-fast`` script."""
    script = Path(sys.executable).with_name("rice-fast")
    if not script.exists():
        pytest.fail(
            f"the rice-fast entry point is missing at {script}: install the "
            "package into this environment (pip install -e .)",
            pytrace=False,
        )
    return [str(script), *args]


@pytest.fixture
def rice_fast_command() -> Callable[..., list[str]]:
    """Build the argv of a ``rice-fast`` command: ``rice_fast_command("stun", ...)``."""
    return rice_fast_argv


_LISTENING = re.compile(r"STUN server listening on (?P<bound>[^(]+) \(")


@dataclass
class RiceStunServer:
    """A ``rice-fast stun-server`` subprocess and its bound addresses."""

    process: ServerProcess
    udp: Address | None = None
    tcp: Address | None = None
    stopped_status: int | None = field(default=None)

    def stop(self) -> int | None:
        """Stop it with SIGTERM and return its exit status."""
        self.stopped_status = self.process.stop()
        return self.stopped_status


def _parse_bound(text: str) -> dict[str, Address]:
    bound: dict[str, Address] = {}
    for item in text.split(","):
        transport, _, address = item.strip().partition(" ")
        host, _, port = address.rpartition(":")
        bound[transport] = (host.strip("[]"), int(port))
    return bound


@pytest.fixture
def rice_stun_server(tmp_path: Path) -> Iterator[Callable[..., RiceStunServer]]:
    """Start ``rice-fast stun-server ARGS`` and wait for its listening log line.

    Call it with the arguments after ``stun-server``; ``--listen`` defaults
    to 127.0.0.1:0. Every server started is stopped at the end of the test.
    """
    started: list[RiceStunServer] = []

    def start(*args: str) -> RiceStunServer:
        argv = list(args)
        if "--listen" not in argv:
            argv += ["--listen", "127.0.0.1:0"]
        name = f"rice-fast-stun-server-{len(started)}"
        process = _start_process(name, rice_fast_argv("stun-server", *argv), tmp_path)
        server = RiceStunServer(process)
        started.append(server)

        def ready() -> bool:
            match = _LISTENING.search(process.log())
            if match is None:
                return False
            bound = _parse_bound(match.group("bound"))
            server.udp = bound.get("udp")
            server.tcp = bound.get("tcp")
            return True

        _wait_until_ready(process, ready, "a 'STUN server listening' log line")
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
