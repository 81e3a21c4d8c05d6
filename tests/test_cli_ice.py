"""``rice-fast ice``: two processes wired stdout to stdin, as two terminals."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

import pytest


class _Peer:
    """One ``rice-fast ice`` process whose stdout lines are collected."""

    def __init__(self, role: str, extra: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rice_fast.cli", "ice", f"--{role}", *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def write(self, text: str) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(text)
            stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [line for line in self.lines if line.get("type") == kind]


def _pump(source: _Peer, destination: _Peer) -> None:
    stdout = source.process.stdout
    assert stdout is not None
    for line in stdout:
        with source.lock:
            source.lines.append(json.loads(line))
        destination.write(line)


def _wait_for(peer: _Peer, kind: str, count: int = 1, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while len(peer.of_type(kind)) < count:
        assert time.monotonic() < deadline, f"no {kind!r} line: {peer.lines}"
        time.sleep(0.02)


@pytest.mark.parametrize("extra", [[], ["--trickle"], ["--tcp", "--no-udp"]])
def test_two_processes_connect_and_echo(extra: list[str]) -> None:
    left = _Peer("controlling", extra)
    right = _Peer("controlled", extra)
    threads = [
        threading.Thread(target=_pump, args=(left, right), daemon=True),
        threading.Thread(target=_pump, args=(right, left), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        _wait_for(left, "connected")
        _wait_for(right, "connected")
        _wait_for(left, "rtt")
        _wait_for(right, "rtt")
        left.write("hello from the left\n")
        right.write("hello from the right\n")
        _wait_for(left, "data")
        _wait_for(right, "data")
    finally:
        for peer in (left, right):
            stdin = peer.process.stdin
            assert stdin is not None
            stdin.close()
        for peer in (left, right):
            peer.process.wait(timeout=20)
    assert left.process.returncode == 0
    assert right.process.returncode == 0
    assert right.of_type("data")[0]["text"] == "hello from the left"
    assert left.of_type("data")[0]["text"] == "hello from the right"
    transport = "tcp" if "--tcp" in extra else "udp"
    assert f"host {transport} 127.0.0.1:" in left.of_type("connected")[0]["local"]
    assert left.of_type("rtt")[0]["rtt_ms"] >= 0
    assert left.of_type("closed")
    if "--trickle" in extra:
        assert left.of_type("candidate")
        assert left.of_type("end-of-candidates")
        assert left.of_type("credentials")[0]["candidates"] == []


def test_ice_requires_a_role() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rice_fast.cli", "ice"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--controlling" in result.stderr


def test_ice_stdin_closed_before_connecting_fails() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rice_fast.cli", "ice", "--controlled"],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "standard input closed before ICE connected" in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["type"] == "credentials"
    assert lines[-1]["type"] == "closed"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--port-range", "9-1"], "invalid --port-range"),
        (["--port-range", "x"], "expected LOW-HIGH"),
        (["--all-interfaces", "--address", "127.0.0.1"], "exclude each other"),
    ],
)
def test_ice_rejects_bad_options(arguments: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rice_fast.cli", "ice", "--controlling", *arguments],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr


def test_ice_port_range_and_loopback_interfaces() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rice_fast.cli",
            "ice",
            "--controlled",
            "--all-interfaces",
            "--include",
            "loopback",
            "--exclude-interface",
            "eth0",
            "--port-range",
            "47000-47100",
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    candidates = lines[0]["candidates"]
    assert candidates
    for line in candidates:
        fields = line.split()
        assert fields[4] in ("127.0.0.1", "::1")
        assert 47000 <= int(fields[5]) <= 47100
