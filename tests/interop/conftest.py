"""Fixtures of the interop tests in this folder.

The ICE harness tests get the pion build, network namespaces and a DTLS
certificate fingerprint; the relay tests get ``rice-fast relay`` and
coturn's ``turnutils_peer`` echo server. The matrix tests
(``test_matrix_*.py``) also get ``interop_result``, which records their
rows for ``results.py``, ``rice-fast relay`` inside a namespace, and
browser helpers: trickle negotiations, a TURN server for the page, and
the check that the browser's nominated pair is rice_fast's selected one.
A peer that cannot be built or started fails the test with the command
and its output; none of these fixtures skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from tests.interop.harness import (
    NetworkNamespace,
    PeerFailure,
    PeerProcess,
    build_pion_peer,
)
from tests.interop.peers.browser.sdp import certificate_fingerprint
from tests.interop.peers.python_peer import (
    IceDescription,
    candidate_address,
    normalize_candidate,
)
from tests.interop.results import ResultTable, ScenarioResult, write_requested

if TYPE_CHECKING:
    from tests.interop.peers.browser.drivers import BrowserConnection, BrowserDriver


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
    """Start ``rice-fast relay ARGS`` on free loopback ports; stop it after the test.

    ``host`` is the listening address, 127.0.0.1 by default. With ``::1``
    the relay also relays from 127.0.0.1, so that IPv6 clients can
    allocate IPv4 relayed addresses (RFC 6156).
    """
    started: list[RiceRelay] = []

    def start(*args: str, host: str = _RELAY_HOST) -> RiceRelay:
        port = free_ports((host, _RELAY_HOST))
        low = free_ports((host, _RELAY_HOST), count=100)
        listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if host != _RELAY_HOST:
            args = ("--relay-ip", _RELAY_HOST, "--relay-ip", host, *args)
        argv = rice_fast_argv(
            "relay",
            "--listen",
            listen,
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
        relay = RiceRelay(process, (host, port), (low, low + 99))
        started.append(relay)

        def ready() -> bool:
            listening = _RELAY_LISTENING.search(process.log()) is not None
            return listening and stun_probe_udp(relay.address)

        _wait_until_ready(process, ready, f"a worker listening on {listen}")
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


# The rice_fast interop matrix: results, relays and browser helpers for
# the test_matrix_*.py modules.

_CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:
    """Keep each test's call-phase report, for ``interop_result`` to read."""
    report = yield
    if isinstance(report, pytest.TestReport) and report.when == "call":
        item.stash[_CALL_REPORT] = report
    return report


@pytest.fixture(scope="session")
def interop_results() -> Iterator[ResultTable]:
    """The matrix rows of this session, written to docs/interop.md at its end.

    Writing happens only with ``RICE_WRITE_INTEROP_RESULTS=1``.
    """
    table = ResultTable()
    yield table
    if write_requested() and table.rows:
        table.write()


@dataclass
class ScenarioRecorder:
    """Names one matrix scenario and records its time to connect."""

    peer: str = ""
    scenario: str = ""
    role: str = ""
    transport: str = ""
    seconds: float | None = None

    def describe(self, peer: str, scenario: str, role: str, transport: str) -> None:
        """Name the scenario; call it first, so a failure still gets its row."""
        self.peer = peer
        self.scenario = scenario
        self.role = role
        self.transport = transport

    def connected(self, seconds: float) -> None:
        """Record the time to connect and print it (shown with -s)."""
        self.seconds = seconds
        print(
            f"connect time {self.peer} {self.scenario} ({self.role}, "
            f"{self.transport}): {seconds * 1000:.1f} ms"
        )


@pytest.fixture
def interop_result(
    request: pytest.FixtureRequest, interop_results: ResultTable
) -> Iterator[ScenarioRecorder]:
    """Record the test's scenario, time to connect and outcome as a matrix row."""
    recorder = ScenarioRecorder()
    yield recorder
    if not recorder.peer:
        return
    report = request.node.stash.get(_CALL_REPORT, None)
    outcome = "passed" if report is not None and report.passed else "failed"
    interop_results.add(
        ScenarioResult(
            recorder.peer,
            recorder.scenario,
            recorder.role,
            recorder.transport,
            recorder.seconds,
            outcome,
        )
    )


# rice-fast relay inside a network namespace, for the browser tests.

NAMESPACE_RELAY_PORT = 3478
NAMESPACE_RELAY_PORTS = (49152, 49251)


@pytest.fixture
def namespace_relay(
    network_namespace: NetworkNamespace, tmp_path: Path
) -> Iterator[Callable[[], RiceRelay]]:
    """Start ``rice-fast relay`` on 127.0.0.1 inside the test's namespace.

    The namespace is new, so the relay takes the fixed ports
    ``NAMESPACE_RELAY_PORT`` and ``NAMESPACE_RELAY_PORTS``. It admits
    peers on 127.0.0.1, where the browser's peer runs. It is stopped by pid
    before the namespace is deleted.
    """
    started: list[RiceRelay] = []

    def start() -> RiceRelay:
        low, high = NAMESPACE_RELAY_PORTS
        argv = rice_fast_argv(
            "relay",
            "--listen",
            f"{_RELAY_HOST}:{NAMESPACE_RELAY_PORT}",
            "--realm",
            _RELAY_REALM,
            "--user",
            f"{_RELAY_USER}:{_RELAY_PASSWORD}",
            "--min-port",
            str(low),
            "--max-port",
            str(high),
            "--allow-peer",
            "127.0.0.1/32",
        )
        name = f"rice-fast-relay-in-namespace-{len(started)}"
        process = _start_process(name, network_namespace.command(argv), tmp_path)
        relay = RiceRelay(process, (_RELAY_HOST, NAMESPACE_RELAY_PORT), (low, high))
        started.append(relay)
        _wait_until_ready(
            process,
            lambda: _RELAY_LISTENING.search(process.log()) is not None,
            f"a worker listening on {_RELAY_HOST}:{NAMESPACE_RELAY_PORT} in "
            f"the namespace {network_namespace.name}",
        )
        return relay

    try:
        yield start
    finally:
        for relay in started:
            relay.process.stop()


# Browser helpers of the matrix. The drivers are imported when used, so
# that the tests without a browser do not need Playwright.

# Wraps the page's RTCPeerConnection so that every one it creates gets the
# extra configuration (iceServers, iceTransportPolicy).
_CONFIGURE_PEER_CONNECTION = """(configurationJson) => {
  const extra = JSON.parse(configurationJson);
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(configuration) {
      super({ ...(configuration ?? {}), ...extra });
    }
  };
  return JSON.stringify(true);
}"""

# ``session`` is the top-level state object of the page's peer.js.
_CLOSE_PEER_CONNECTION = """() => {
  session.pc.close();
  return JSON.stringify(session.pc.signalingState);
}"""


async def run_in_page(browser: BrowserDriver, declaration: str, *arguments: str) -> Any:
    """Call the JavaScript function ``declaration`` in the page; return its JSON.

    The function takes string arguments and returns a JSON string.

    Raises:
        BrowserFailure: the call failed in the browser.
    """
    from tests.interop.peers.browser.drivers import (
        BrowserFailure,
        ChromiumDriver,
        FirefoxDriver,
    )

    if isinstance(browser, ChromiumDriver):
        try:
            text = await browser.page.evaluate(
                f"(args) => ({declaration})(...args)", list(arguments)
            )
        except Exception as error:  # Playwright raises its own Error type
            raise BrowserFailure(f"chromium: page function failed: {error}") from None
        return json.loads(text)
    if not isinstance(browser, FirefoxDriver):
        raise TypeError(f"no page call for driver {browser!r}")
    result = await browser.session.command(
        "script.callFunction",
        {
            "functionDeclaration": declaration,
            "arguments": [{"type": "string", "value": value} for value in arguments],
            "target": {"context": browser.context},
            "awaitPromise": True,
            "resultOwnership": "none",
        },
    )
    value = result.get("result", {})
    if result.get("type") == "exception" or value.get("type") != "string":
        raise BrowserFailure(f"firefox: page function failed: {result!r}")
    return json.loads(value["value"])


async def use_turn_server(
    browser: BrowserDriver, relay: RiceRelay, *, relay_only: bool = True
) -> None:
    """Make the page's next peer connection use ``relay`` as its TURN server.

    With ``relay_only`` it gathers and uses relayed candidates only
    (``iceTransportPolicy: "relay"``).
    """
    host, port = relay.address
    configuration = {
        "iceServers": [
            {
                "urls": [f"turn:{host}:{port}?transport=udp"],
                "username": _RELAY_USER,
                "credential": _RELAY_PASSWORD,
            }
        ],
        "iceTransportPolicy": "relay" if relay_only else "all",
    }
    await run_in_page(browser, _CONFIGURE_PEER_CONNECTION, json.dumps(configuration))


async def close_peer_connection(browser: BrowserDriver) -> None:
    """Close the page's peer connection, which then sends no more responses."""
    await run_in_page(browser, _CLOSE_PEER_CONNECTION)


async def _trickled_candidates(peer: PeerProcess, timeout: float) -> list[str]:
    """Read the peer's trickled candidates up to its end of candidates."""
    lines: list[str] = []
    seen = 0
    deadline = time.monotonic() + timeout
    while True:
        while seen < len(peer.messages):
            message = peer.messages[seen]
            seen += 1
            if message.get("type") != "candidate":
                continue
            if message.get("candidate") is None:
                return lines
            lines.append(str(message["candidate"]))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PeerFailure(peer.report(f"no end of candidates within {timeout} s"))
        await peer.next_message(timeout=remaining)


async def _trickle_both_ways(
    browser: BrowserDriver,
    peer: PeerProcess,
    browser_candidates: Sequence[str],
    mid: str,
    timeout: float,
) -> None:
    """Pass the peer's candidates to the browser and the browser's to the peer.

    Each side gets the other's candidates one at a time, after both have
    the other's credentials, and then end of candidates.
    """
    for line in await _trickled_candidates(peer, timeout):
        await browser.call("addRemoteCandidate", line, mid)
    await browser.call("addRemoteCandidate", None, mid)
    for line in browser_candidates:
        await peer.send({"type": "candidate", "candidate": normalize_candidate(line)})
    await peer.send({"type": "candidate", "candidate": None})


async def wait_browser_connected(
    browser: BrowserDriver, peer: PeerProcess, started: float, timeout: float
) -> BrowserConnection:
    """Wait until the browser and the peer report connected; read the outcome.

    ``seconds`` in the result runs from ``started`` (``time.monotonic``).

    Raises:
        BrowserFailure: iceConnectionState did not reach "connected".
        PeerFailure: the peer did not report "connected".
    """
    from tests.interop.peers.browser.drivers import (
        BrowserConnection,
        BrowserFailure,
        nominated_pair,
    )

    waited = await browser.call("waitForIceState", "connected", timeout * 1000)
    if not waited["reached"]:
        state = await browser.call("state")
        raise BrowserFailure(
            f"{browser.name}: iceConnectionState is {waited['state']!r}, not "
            f"'connected', after {timeout} s; page state: {json.dumps(state)}\n"
            + peer.report("state of the ICE peer")
        )
    await peer.wait_for_state(("connected",), timeout=timeout)
    seconds = time.monotonic() - started
    state = await browser.call("state")
    pair = await nominated_pair(browser)
    browser_ms = None
    if state["connectedAt"] is not None and state["remoteDescriptionAt"] is not None:
        browser_ms = state["connectedAt"] - state["remoteDescriptionAt"]
    return BrowserConnection(
        browser=browser.name,
        ice_connection_state=state["iceConnectionState"],
        connection_state=state["connectionState"],
        nominated_pair=pair,
        peer_pair=peer.find("selected"),
        seconds=seconds,
        browser_milliseconds=browser_ms,
    )


async def trickle_browser_offers(
    browser: BrowserDriver,
    peer: PeerProcess,
    fingerprint: str,
    *,
    timeout: float = 10.0,
) -> BrowserConnection:
    """Negotiate with the browser offering, every candidate trickled both ways.

    ``peer`` is a controlled Python peer started with ``--trickle``. The
    offer's candidates reach it one at a time after the credentials; its
    answer has none (``a=setup:active``), and its candidates reach the
    browser through ``addIceCandidate``.
    """
    from tests.interop.peers.browser.drivers import BrowserFailure
    from tests.interop.peers.browser.sdp import build_data_channel_sdp, parse_sdp

    offer = await browser.call("createOffer")
    section = parse_sdp(offer["sdp"]).data_channel()
    if section.ufrag is None or section.pwd is None:
        raise BrowserFailure(f"{browser.name}: offer without ICE credentials")
    candidates = section.candidates or tuple(offer["candidates"])
    if not candidates:
        raise BrowserFailure(f"{browser.name} gathered no candidate:\n{offer['sdp']}")
    mid = section.mid or "0"

    local = await peer.local_description(timeout=timeout)
    started = time.monotonic()
    await peer.send_description(IceDescription(section.ufrag, section.pwd))
    answer = build_data_channel_sdp(
        ufrag=local.ufrag,
        pwd=local.pwd,
        candidates=[],
        fingerprint=fingerprint,
        setup="active",
        mid=mid,
        end_of_candidates=False,
    )
    await browser.call("applyAnswer", answer)
    await _trickle_both_ways(browser, peer, candidates, mid, timeout)
    return await wait_browser_connected(browser, peer, started, timeout)


async def trickle_browser_answers(
    browser: BrowserDriver,
    peer: PeerProcess,
    fingerprint: str,
    *,
    timeout: float = 10.0,
) -> BrowserConnection:
    """Negotiate with the peer offering, every candidate trickled both ways.

    ``peer`` is a controlling Python peer started with ``--trickle``. Its
    offer (``a=setup:actpass``, ``a=ice-options:trickle``) has no
    candidates; the browser's answer's candidates reach it one at a time
    after the credentials.
    """
    from tests.interop.peers.browser.drivers import BrowserFailure
    from tests.interop.peers.browser.sdp import build_data_channel_sdp, parse_sdp

    local = await peer.local_description(timeout=timeout)
    offer = build_data_channel_sdp(
        ufrag=local.ufrag,
        pwd=local.pwd,
        candidates=[],
        fingerprint=fingerprint,
        setup="actpass",
        end_of_candidates=False,
    )
    started = time.monotonic()
    answer = await browser.call("createAnswer", offer)
    section = parse_sdp(answer["sdp"]).data_channel()
    if section.ufrag is None or section.pwd is None:
        raise BrowserFailure(f"{browser.name}: answer without ICE credentials")
    candidates = section.candidates or tuple(answer["candidates"])
    await peer.send_description(IceDescription(section.ufrag, section.pwd))
    await _trickle_both_ways(browser, peer, candidates, section.mid or "0", timeout)
    return await wait_browser_connected(browser, peer, started, timeout)


def check_browser_pair(result: BrowserConnection) -> None:
    """Assert ICE connected on the pair that rice_fast selected.

    The browser's nominated, succeeded pair in getStats() must have the
    address, port and transport of rice_fast's selected pair, mirrored.
    """
    assert result.ice_connection_state == "connected"
    # Without DTLS the browser never gets past "connecting".
    assert result.connection_state == "connecting"
    pair = result.nominated_pair
    assert pair is not None
    assert pair["state"] == "succeeded"
    assert pair["nominated"] is True
    assert result.peer_pair is not None
    ours_local = candidate_address(result.peer_pair["local"])
    ours_remote = candidate_address(result.peer_pair["remote"])
    theirs_local = pair["local"]
    theirs_remote = pair["remote"]
    assert (
        theirs_local["address"],
        theirs_local["port"],
        str(theirs_local["protocol"]).lower(),
    ) == (ours_remote.host, ours_remote.port, ours_remote.transport)
    assert (
        theirs_remote["address"],
        theirs_remote["port"],
        str(theirs_remote["protocol"]).lower(),
    ) == (ours_local.host, ours_local.port, ours_local.transport)
