"""``rice-fast demo`` in its three modes, run as a subprocess."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _demo(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rice_fast.cli", "demo", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _selected_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("selected pair")]


def test_demo_default_connects_over_udp() -> None:
    result = _demo()
    assert result.returncode == 0, result.stderr
    output = result.stdout
    assert "embedded relay: STUN and TURN on udp/tcp 127.0.0.1:" in output
    assert "host  udp 127.0.0.1:" in output
    assert "relay udp 127.0.0.1:" in output
    # The STUN server on loopback sees the host address, so the
    # server-reflexive candidate is found redundant and reported as such.
    assert output.count("srflx: the STUN server saw the host address") == 2
    assert "connected in " in output
    selected = _selected_lines(output)
    assert len(selected) == 2
    assert all(" udp " in line for line in selected)
    assert "data: 20 round trips L -> R -> L" in output


def test_demo_relay_only_goes_through_relay() -> None:
    result = _demo("--relay-only")
    assert result.returncode == 0, result.stderr
    selected = _selected_lines(result.stdout)
    assert len(selected) == 2
    # Only relayed candidates were signalled, so each side's remote
    # candidate is the peer's relayed address or a peer-reflexive one
    # learnt from checks that came through the relay.
    left, right = selected
    assert "-> relay udp" in left
    assert "relay udp" in right.split("->")[0]
    assert "data: 20 round trips" in result.stdout


def test_demo_tcp_uses_tcp_candidates() -> None:
    result = _demo("--tcp")
    assert result.returncode == 0, result.stderr
    output = result.stdout
    assert "tcptype passive" in output
    assert "tcptype active" in output
    selected = _selected_lines(output)
    assert len(selected) == 2
    assert all(" tcp " in line for line in selected)
    assert "data: 20 round trips" in output


@pytest.mark.parametrize("arguments", [["--tcp", "--relay-only"], ["--timeout"]])
def test_demo_rejects_bad_arguments(arguments: list[str]) -> None:
    result = _demo(*arguments)
    assert result.returncode == 2
    assert "error:" in result.stderr
