"""The ``rice-fast relay`` command: usage errors, signals, workers and quotas.

Usage errors run ``rice_fast.cli.main`` in-process, plus one through the
installed script to see the real exit status. The other tests start the
command as a subprocess on free loopback ports with the process helpers
of tests/conftest.py, and talk to it with TURN requests built by hand
over blocking UDP sockets.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rice_fast import cli_relay
from rice_fast.cli import main
from rice_fast.stun import (
    IntegrityKey,
    Message,
    MessageBuilder,
    MessageClass,
    Method,
    TransportProtocol,
    long_term_key,
    message_type,
    new_transaction_id,
    parse,
)
from tests.conftest import (
    ServerProcess,
    _start_process,
    _wait_until_ready,
    free_ports,
    rice_fast_argv,
    stun_probe_udp,
)

USER = "alice"
PASSWORD = "wonderland"
REALM = "rice-fast.test"
HOST = "127.0.0.1"
REQUEST_TIMEOUT = 2.0
LOG_TIMEOUT = 5.0

Address = tuple[str, int]

_LISTENING = re.compile(r"worker (\d+) \(pid (\d+)\) listening on ")
_COUNTERS = re.compile(r"worker (\d+) counters: (.*)$", re.M)


# TURN requests over a blocking socket.


def _transact(sock: socket.socket, server: Address, data: bytes) -> Message:
    transaction_id = data[8:20]
    deadline = time.monotonic() + REQUEST_TIMEOUT
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        sock.sendto(data, server)
        try:
            while True:
                response = parse(sock.recv(2048))
                if response.transaction_id == transaction_id:
                    return response
        except TimeoutError:
            continue
    raise AssertionError(f"no response from {server} within {REQUEST_TIMEOUT} s")


def allocate(server: Address) -> tuple[socket.socket, Message]:
    """Allocate from a new UDP socket: the 401 challenge, then signed.

    Returns the socket, which keeps the allocation's 5-tuple, and the
    final response.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    request_type = message_type(Method.ALLOCATE, MessageClass.REQUEST)
    builder = MessageBuilder(request_type, new_transaction_id())
    builder.add_requested_transport(TransportProtocol.UDP)
    challenge = _transact(sock, server, builder.finish())
    nonce = challenge.nonce()
    realm = challenge.realm()
    assert nonce is not None and realm is not None, "401 without NONCE or REALM"

    builder = MessageBuilder(request_type, new_transaction_id())
    builder.add_requested_transport(TransportProtocol.UDP)
    builder.add_username(USER)
    builder.add_realm(realm)
    builder.add_nonce(nonce)
    key = IntegrityKey(long_term_key(USER, realm, PASSWORD))
    return sock, _transact(sock, server, builder.finish(key, fingerprint=True))


# The command as a subprocess.


class RelayCommand:
    """A running ``rice-fast relay`` and its listening address."""

    def __init__(self, process: ServerProcess, address: Address) -> None:
        self.process = process
        self.address = address

    def wait_for_log(self, pattern: re.Pattern[str], count: int) -> list[re.Match[str]]:
        """Wait until ``pattern`` matches ``count`` times in the log."""
        deadline = time.monotonic() + LOG_TIMEOUT
        while time.monotonic() < deadline:
            matches = list(pattern.finditer(self.process.log()))
            if len(matches) >= count:
                return matches
            time.sleep(0.05)
        pytest.fail(
            f"rice-fast relay logged {pattern.pattern!r} fewer than {count} times "
            f"within {LOG_TIMEOUT} s. End of its log:\n{self.process.log_tail()}",
            pytrace=False,
        )

    def counters(self, workers: int = 1) -> dict[int, dict[str, int]]:
        """Send SIGUSR1 and return each worker's counters from its new log line."""
        seen = len(_COUNTERS.findall(self.process.log()))
        os.kill(self.process.pid, signal.SIGUSR1)
        matches = self.wait_for_log(_COUNTERS, seen + workers)[seen:]
        result: dict[int, dict[str, int]] = {}
        for match in matches:
            items = (item.partition("=") for item in match.group(2).split(", "))
            result[int(match.group(1))] = {name: int(value) for name, _, value in items}
        return result


@pytest.fixture
def relay_command(tmp_path: Path) -> Iterator[Callable[..., RelayCommand]]:
    """Start ``rice-fast relay`` on a free fixed port with ``ARGS`` appended."""
    started: list[RelayCommand] = []

    def start(*args: str, workers: int = 1) -> RelayCommand:
        port = free_ports((HOST,))
        low = free_ports((HOST,), count=100)
        argv = rice_fast_argv(
            "relay",
            "--listen",
            f"{HOST}:{port}",
            "--realm",
            REALM,
            "--user",
            f"{USER}:{PASSWORD}",
            "--min-port",
            str(low),
            "--max-port",
            str(low + 99),
            "--workers",
            str(workers),
            *args,
        )
        name = f"rice-fast-relay-{len(started)}"
        relay = RelayCommand(_start_process(name, argv, tmp_path), (HOST, port))
        started.append(relay)

        def ready() -> bool:
            listening = len(_LISTENING.findall(relay.process.log()))
            return listening == workers and stun_probe_udp(relay.address)

        _wait_until_ready(
            relay.process, ready, f"{workers} worker(s) listening on {HOST}:{port}"
        )
        return relay

    try:
        yield start
    finally:
        for relay in started:
            relay.process.stop()


# Usage errors.

_REQUIRED = ["relay", "--realm", REALM, "--user", f"{USER}:{PASSWORD}"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["relay", "--user", "u:p"], "the following arguments are required: --realm"),
        (["relay", "--realm", REALM], "the relay needs credentials"),
        (["relay", "--realm", REALM, "--user", "nopassword"], "expected USER:PASSWORD"),
        ([*_REQUIRED, "--min-port", "0"], "port 0 is outside 1..65535"),
        ([*_REQUIRED, "--max-port", "70000"], "port 70000 is outside 1..65535"),
        ([*_REQUIRED, "--min-port", "5000", "--max-port", "4000"], "is above"),
        ([*_REQUIRED, "--workers", "0"], "--workers 0 must be at least 1"),
        ([*_REQUIRED, "--workers", "two"], "invalid int value: 'two'"),
        ([*_REQUIRED, "--listen", "[::1"], "missing ']'"),
        ([*_REQUIRED, "--allow-peer", "not-a-network"], "not-a-network"),
        ([*_REQUIRED, "--relay-ip", "not-an-address"], "invalid --relay-ip"),
        ([*_REQUIRED, "--user-quota", "0"], "max_allocations_per_user"),
        ([*_REQUIRED, "--tls-listen", "127.0.0.1:5349"], "needs --cert and --key"),
        (
            [*_REQUIRED, "--workers", "2", "--listen", "127.0.0.1:0"],
            "needs fixed ports",
        ),
    ],
)
def test_usage_error_exits_2(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A command line that passes the checks would start serving here.
    def serve(*args: object) -> int:
        raise AssertionError(f"the relay started for {argv}")

    monkeypatch.setattr(cli_relay, "_run_worker", serve)
    monkeypatch.setattr(cli_relay, "_run_workers", serve)

    with pytest.raises(SystemExit) as raised:
        main(argv)

    assert raised.value.code == 2
    error = capsys.readouterr().err
    assert "usage: rice-fast" in error
    assert message in error


def test_usage_error_from_script_exits_2() -> None:
    argv = rice_fast_argv("relay", "--realm", REALM, "--min-port", "x")
    completed = subprocess.run(argv, capture_output=True, timeout=30, check=False)

    assert completed.returncode == 2
    assert b"invalid port number: 'x'" in completed.stderr


@pytest.mark.parametrize("transports", [[], ["--no-tcp"]], ids=["udp+tcp", "udp"])
def test_port_in_use_exits_1(
    relay_command: Callable[..., RelayCommand], transports: list[str]
) -> None:
    first = relay_command()
    argv = rice_fast_argv(
        "relay",
        "--listen",
        f"{HOST}:{first.address[1]}",
        "--realm",
        REALM,
        "--user",
        f"{USER}:{PASSWORD}",
        *transports,
    )
    completed = subprocess.run(argv, capture_output=True, timeout=30, check=False)

    assert completed.returncode == 1
    assert b"worker 0 cannot listen" in completed.stderr


# Signals.


def test_sigusr1_logs_counters(relay_command: Callable[..., RelayCommand]) -> None:
    relay = relay_command()
    sock, response = allocate(relay.address)
    try:
        counters = relay.counters()[0]
    finally:
        sock.close()
    status = relay.process.stop()

    assert response.is_success
    assert counters["allocations"] == 1
    assert counters["allocations_created"] == 1
    assert counters["requests"] >= 2
    assert counters["error_responses"] >= 1
    assert counters["relay_sockets"] == 1
    assert relay.process.running() is False
    assert status == 0
    assert re.search(r"worker 0 stopped on SIGTERM; counters: ", relay.process.log())


# Quotas and workers.


def test_user_quota_one_gives_486(relay_command: Callable[..., RelayCommand]) -> None:
    relay = relay_command("--user-quota", "1")
    first, accepted = allocate(relay.address)
    second, rejected = allocate(relay.address)
    first.close()
    second.close()

    error = rejected.error_code()
    assert accepted.is_success
    assert error is not None
    assert error[0] == 486


def test_two_workers_share_the_port(
    relay_command: Callable[..., RelayCommand],
) -> None:
    relay = relay_command(workers=2)
    pids = {int(m.group(2)) for m in relay.wait_for_log(_LISTENING, 2)}
    sockets: list[socket.socket] = []
    try:
        # SO_REUSEPORT spreads clients over the workers by a hash of their
        # address, so all 16 clients land on one worker with a chance of
        # about 2 in 65,536.
        responses = []
        for _ in range(16):
            sock, response = allocate(relay.address)
            sockets.append(sock)
            responses.append(response)
        counters = relay.counters(workers=2)
    finally:
        for sock in sockets:
            sock.close()
    status = relay.process.stop()

    assert len(pids) == 2
    assert relay.process.pid not in pids
    assert all(response.is_success for response in responses)
    assert set(counters) == {0, 1}
    assert counters[0]["allocations"] >= 1
    assert counters[1]["allocations"] >= 1
    assert counters[0]["allocations"] + counters[1]["allocations"] == 16
    assert status == 0
    assert "all relay workers stopped" in relay.process.log()
