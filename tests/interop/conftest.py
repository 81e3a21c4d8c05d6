"""Fixtures of the interop tests in this folder.

The ICE harness tests get the pion build, network namespaces and a DTLS
certificate fingerprint; the relay tests get ``rice-fast relay`` and
coturn's ``turnutils_peer`` echo server. A peer that cannot be built or
started fails the test with the command and its output; none of these
fixtures skips.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import (
    Address,
    ServerProcess,
    _require_binary,
    _start_process,
    _wait_until_ready,
    free_ports,
    rice_fast_argv,
    stun_probe_udp,
)
from tests.interop.harness import NetworkNamespace, PeerFailure, build_pion_peer
from tests.interop.peers.browser.sdp import certificate_fingerprint


@pytest.fixture(scope="session")
def pion_peer_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pion peer, built offline once per test session."""
    try:
        return build_pion_peer(tmp_path_factory.mktemp("pion-peer"))
    except PeerFailure as failure:
        pytest.fail(str(failure), pytrace=False)


@pytest.fixture
def network_namespace() -> Iterator[NetworkNamespace]:
    """A new network namespace with loopback up, deleted after the test."""
    try:
        namespace = NetworkNamespace.create()
    except PeerFailure as failure:
        pytest.fail(str(failure), pytrace=False)
    try:
        yield namespace
    finally:
        namespace.delete()


@pytest.fixture(scope="session")
def dtls_fingerprint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The ``a=fingerprint`` of a throwaway self-signed certificate.

    The browser tests stop at ICE, so the private key is never used.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl not found on PATH: install the Debian package openssl")
    directory = tmp_path_factory.mktemp("dtls-certificate")
    certificate = directory / "certificate.der"
    command = [
        openssl,
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(directory / "key.pem"),
        "-subj",
        "/CN=rice-fast-interop",
        "-days",
        "1",
        "-outform",
        "DER",
        "-out",
        str(certificate),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"openssl failed: {' '.join(command)}\n{result.stderr}")
    return certificate_fingerprint(certificate.read_bytes())


@pytest.fixture
def record_connect_time(
    record_property: Callable[[str, object], None],
) -> Callable[[str, float], None]:
    """Record a time to connect as a test property and print it (shown with -s)."""

    def record(scenario: str, seconds: float) -> None:
        record_property(f"connect_seconds[{scenario}]", round(seconds, 4))
        print(f"connect time {scenario}: {seconds * 1000:.1f} ms")

    return record


# rice-fast relay and turnutils_peer, for test_relay_aioice.py and
# test_relay_uclient.py.

_RELAY_USER = "alice"
_RELAY_PASSWORD = "wonderland"
_RELAY_REALM = "rice-fast.test"
_RELAY_HOST = "127.0.0.1"
_RELAY_LOG_TIMEOUT = 5.0
_RELAY_LISTENING = re.compile(r"worker (\d+) \(pid (\d+)\) listening on ")
_RELAY_COUNTERS = re.compile(r"worker (\d+) counters: (.*)$", re.M)


@dataclass
class RiceRelay:
    """A ``rice-fast relay`` subprocess with one worker on a loopback port.

    It accepts ``alice``/``wonderland`` in realm ``rice-fast.test`` and
    relays from ``relay_ports`` on 127.0.0.1.
    """

    process: ServerProcess
    address: Address
    relay_ports: tuple[int, int]

    def counters(self) -> dict[str, int]:
        """Send SIGUSR1 and return the counters that the worker logs."""
        seen = len(_RELAY_COUNTERS.findall(self.process.log()))
        os.kill(self.process.pid, signal.SIGUSR1)
        deadline = time.monotonic() + _RELAY_LOG_TIMEOUT
        while time.monotonic() < deadline:
            matches = _RELAY_COUNTERS.findall(self.process.log())
            if len(matches) > seen:
                items = (item.partition("=") for item in matches[-1][1].split(", "))
                return {name: int(value) for name, _, value in items}
            time.sleep(0.05)
        pytest.fail(
            f"rice-fast relay logged no counters within {_RELAY_LOG_TIMEOUT} s "
            f"of SIGUSR1. End of its log:\n{self.process.log_tail()}",
            pytrace=False,
        )


@pytest.fixture
def rice_relay(tmp_path: Path) -> Iterator[Callable[..., RiceRelay]]:
    """Start ``rice-fast relay ARGS`` on free loopback ports; stop it after the test."""
    started: list[RiceRelay] = []

    def start(*args: str) -> RiceRelay:
        port = free_ports((_RELAY_HOST,))
        low = free_ports((_RELAY_HOST,), count=100)
        argv = rice_fast_argv(
            "relay",
            "--listen",
            f"{_RELAY_HOST}:{port}",
            "--realm",
            _RELAY_REALM,
            "--user",
            f"{_RELAY_USER}:{_RELAY_PASSWORD}",
            "--min-port",
            str(low),
            "--max-port",
            str(low + 99),
            *args,
        )
        name = f"rice-fast-relay-{len(started)}"
        process = _start_process(name, argv, tmp_path)
        relay = RiceRelay(process, (_RELAY_HOST, port), (low, low + 99))
        started.append(relay)

        def ready() -> bool:
            listening = _RELAY_LISTENING.search(process.log()) is not None
            return listening and stun_probe_udp(relay.address)

        _wait_until_ready(process, ready, f"a worker listening on {_RELAY_HOST}:{port}")
        return relay

    try:
        yield start
    finally:
        for relay in started:
            relay.process.stop()


def _udp_echo_probe(address: Address) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        try:
            sock.sendto(b"probe", address)
            return sock.recv(64) == b"probe"
        except OSError:
            return False


@pytest.fixture
def turnutils_peer(tmp_path: Path) -> Iterator[Address]:
    """coturn's ``turnutils_peer`` UDP echo server on a free 127.0.0.1 port."""
    binary = _require_binary("turnutils_peer", "coturn")
    port = free_ports((_RELAY_HOST,))
    argv = [binary, "-L", _RELAY_HOST, "-p", str(port)]
    process = _start_process("turnutils_peer", argv, tmp_path)
    address = (_RELAY_HOST, port)
    try:
        _wait_until_ready(
            process,
            lambda: _udp_echo_probe(address),
            f"UDP echo on {_RELAY_HOST}:{port}",
        )
        yield address
    finally:
        process.stop()
