"""Peer subprocesses and network namespaces of the interop harness.

These prove the failure paths that keep an interop test from passing or
skipping when a peer is broken: a missing program, an early exit, an
``error`` message and silence all raise PeerFailure with the command and
the peer's stderr.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.interop.harness import NetworkNamespace, PeerFailure, start_peer

pytestmark = pytest.mark.interop

TIMEOUT = 5.0


def _python(source: str) -> list[str]:
    return [sys.executable, "-c", source]


async def test_peer_messages_in_order(tmp_path: Path) -> None:
    source = (
        "import json, sys\n"
        "print(json.dumps({'type': 'local', 'ufrag': 'abcd', 'pwd': 'p' * 22,"
        " 'candidates': ['1 1 udp 1 127.0.0.1 9 typ host']}), flush=True)\n"
        "line = json.loads(sys.stdin.readline())\n"
        "print(json.dumps({'type': 'state', 'state': 'connected'}), flush=True)\n"
        "print(json.dumps({'type': 'data', 'data': line['ufrag']}), flush=True)\n"
    )
    async with start_peer("script", _python(source), tmp_path) as peer:
        local = await peer.local_description(timeout=TIMEOUT)
        await peer.send({"type": "remote", "ufrag": "wxyz", "pwd": "q" * 22})
        state = await peer.wait_for_state(("connected",), timeout=TIMEOUT)
        data = await peer.wait_for("data", timeout=TIMEOUT)
        status = await peer.close()

    assert local.ufrag == "abcd"
    assert local.candidates == ("candidate:1 1 udp 1 127.0.0.1 9 typ host",)
    assert state == "connected"
    assert data["data"] == "wxyz"
    assert status == 0
    assert [m["type"] for m in peer.messages] == ["local", "state", "data"]


async def test_peer_missing_program(tmp_path: Path) -> None:
    with pytest.raises(PeerFailure, match="cannot start"):
        async with start_peer("missing", [str(tmp_path / "no-such-peer")], tmp_path):
            pass


async def test_peer_exit_reports_stderr(tmp_path: Path) -> None:
    source = "import sys; sys.stderr.write('gi not found\\n'); sys.exit(3)"
    async with start_peer("broken", _python(source), tmp_path) as peer:
        with pytest.raises(PeerFailure) as failure:
            await peer.local_description(timeout=TIMEOUT)

    message = str(failure.value)
    assert "stdout closed" in message
    assert "exited with status 3" in message
    assert "gi not found" in message
    assert sys.executable in message


async def test_peer_error_message_fails(tmp_path: Path) -> None:
    source = 'print(\'{"type": "error", "message": "gathering failed"}\')'
    async with start_peer("failing", _python(source), tmp_path) as peer:
        with pytest.raises(PeerFailure, match="reported an error: gathering failed"):
            await peer.wait_for("local", timeout=TIMEOUT)


async def test_peer_silence_times_out(tmp_path: Path) -> None:
    source = "import sys; sys.stdin.read()"
    async with start_peer("silent", _python(source), tmp_path) as peer:
        with pytest.raises(PeerFailure, match=r"no 'local' message within 0\.3 s"):
            await peer.wait_for("local", timeout=0.3)
    # Leaving the block closed stdin, and the peer exited at end of input.
    assert peer.process.returncode == 0


def test_namespace_has_only_loopback() -> None:
    namespace = NetworkNamespace.create()
    try:
        listed = subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, check=True
        ).stdout
        links = subprocess.run(
            namespace.command(["ip", "-o", "link", "show"]),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        namespace.delete()
    after = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout

    assert namespace.name in listed
    assert len(links.splitlines()) == 1
    assert ": lo: " in links
    assert "UP" in links
    assert namespace.name not in after


async def test_namespace_connect_tcp(tmp_path: Path) -> None:
    namespace = NetworkNamespace.create()
    try:
        source = (
            "import socket\n"
            "server = socket.create_server(('127.0.0.1', 0))\n"
            "print(server.getsockname()[1], flush=True)\n"
            "connection, _ = server.accept()\n"
            "connection.sendall(b'inside')\n"
        )
        process = await asyncio.create_subprocess_exec(
            *namespace.command(_python(source)), stdout=asyncio.subprocess.PIPE
        )
        assert process.stdout is not None
        port = int(await asyncio.wait_for(process.stdout.readline(), TIMEOUT))
        sock = namespace.connect_tcp(("127.0.0.1", port))
        with sock:
            sock.settimeout(TIMEOUT)
            data = sock.recv(64)
        status = await asyncio.wait_for(process.wait(), TIMEOUT)
    finally:
        namespace.delete()

    assert data == b"inside"
    assert status == 0
