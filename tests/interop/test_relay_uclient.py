"""coturn 4.6's ``turnutils_uclient`` against ``rice-fast relay``.

uclient allocates, binds channels and sends ChannelData to
``turnutils_peer``, which echoes each datagram back through the relay.
Its summary lines give the messages sent and received and the loss. Over
UDP and TCP (``-t``) the rate is moderate: 10 clients, one 100-byte
message per client per millisecond (``-z 1``), 200 messages each. ``-T``
runs RFC 6062 TCP allocations, client to client.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from tests.conftest import _require_binary

if TYPE_CHECKING:
    from tests.conftest import Address
    from tests.interop.conftest import RiceRelay

USER = "alice"
PASSWORD = "wonderland"
CLIENTS = 10
MESSAGES = 200
# uclient waits a few seconds after its last message before it prints the
# summary, so one run takes about 6 s even at this small count.
UCLIENT_TIMEOUT = 60.0

_TOTALS = re.compile(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)")
_LOSS = re.compile(
    r"Total lost packets (\d+) \(([\d.]+)%\), total send dropped (\d+) \(([\d.]+)%\)"
)
_RTT = re.compile(r"Average round trip delay ([\d.]+) ms")

pytestmark = pytest.mark.interop


@dataclass(frozen=True, slots=True)
class UclientSummary:
    """The totals that ``turnutils_uclient`` prints at the end of a run."""

    sent: int
    received: int
    lost: int
    lost_percent: float
    send_dropped: int
    round_trip_ms: float


def parse_summary(output: str) -> UclientSummary:
    """Parse uclient's last totals, loss and round-trip lines from ``output``."""
    totals = _TOTALS.findall(output)
    loss = _LOSS.findall(output)
    rtt = _RTT.findall(output)
    assert totals, f"no tot_send_msgs line in uclient output:\n{output[-2000:]}"
    assert loss, f"no 'Total lost packets' line in uclient output:\n{output[-2000:]}"
    assert rtt, f"no round-trip line in uclient output:\n{output[-2000:]}"
    sent, received = totals[-1]
    lost, lost_percent, dropped, _ = loss[-1]
    return UclientSummary(
        sent=int(sent),
        received=int(received),
        lost=int(lost),
        lost_percent=float(lost_percent),
        send_dropped=int(dropped),
        round_trip_ms=float(rtt[-1]),
    )


def run_uclient(relay: RiceRelay, args: Sequence[str]) -> UclientSummary:
    """Run uclient against ``relay`` with ``args`` and parse its summary."""
    binary = _require_binary("turnutils_uclient", "coturn")
    argv = [
        binary,
        "-u",
        USER,
        "-w",
        PASSWORD,
        "-p",
        str(relay.address[1]),
        *args,
        relay.address[0],
    ]
    try:
        completed = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=UCLIENT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout or b""
        pytest.fail(
            f"turnutils_uclient did not finish within {UCLIENT_TIMEOUT} s: "
            f"{' '.join(argv)}\n{partial.decode(errors='replace')[-2000:]}",
            pytrace=False,
        )
    output = (completed.stdout + completed.stderr).decode(errors="replace")
    assert completed.returncode == 0, (
        f"turnutils_uclient exited with {completed.returncode}:\n{output[-2000:]}"
    )
    return parse_summary(output)


def _echo_args(peer: Address, *flags: str) -> list[str]:
    return [
        *flags,
        "-e",
        peer[0],
        "-r",
        str(peer[1]),
        "-m",
        str(CLIENTS),
        "-n",
        str(MESSAGES),
        "-l",
        "100",
        "-z",
        "1",
        "-c",
    ]


def test_summary_parser_reads_totals() -> None:
    output = (
        "6: : start_mclient: msz=10, tot_send_msgs=1800, tot_recv_msgs=1800\n"
        "6: : start_mclient: tot_send_msgs=2000, tot_recv_msgs=1990\n"
        "6: : Total lost packets 10 (0.500000%), total send dropped 0 (0.000000%)\n"
        "6: : Average round trip delay 0.412000 ms; min = 0 ms, max = 16 ms\n"
    )

    summary = parse_summary(output)

    assert summary.sent == 2000
    assert summary.received == 1990
    assert summary.lost == 10
    assert summary.lost_percent == 0.5
    assert summary.send_dropped == 0
    assert summary.round_trip_ms == 0.412


def test_uclient_udp_channels_no_loss(
    rice_relay: Callable[..., RiceRelay], turnutils_peer: Address
) -> None:
    relay = rice_relay("--allow-peer", "127.0.0.1/32")

    summary = run_uclient(relay, _echo_args(turnutils_peer))

    assert summary.sent == CLIENTS * MESSAGES
    assert summary.received == summary.sent
    assert summary.lost == 0
    assert summary.lost_percent == 0.0
    assert summary.send_dropped == 0
    counters = relay.counters()
    # Both directions of every echo went through the compiled path.
    assert counters["fast_packets_to_peer"] >= summary.sent
    assert counters["fast_packets_to_client"] >= summary.received
    assert counters["allocations_created"] >= CLIENTS


def test_uclient_tcp_channels_no_loss(
    rice_relay: Callable[..., RiceRelay], turnutils_peer: Address
) -> None:
    relay = rice_relay("--allow-peer", "127.0.0.1/32")

    # uclient binds channels anywhere in 0x4000..0x7FFF (the RFC 5766
    # range), so most of its ChannelData starts with 0x50..0x7F.
    summary = run_uclient(relay, _echo_args(turnutils_peer, "-t"))

    assert summary.sent == CLIENTS * MESSAGES
    assert summary.received == summary.sent
    assert summary.lost == 0
    assert summary.send_dropped == 0
    counters = relay.counters()
    assert counters["server_packets_to_peer"] >= summary.sent


def test_uclient_rfc6062_tcp_relay(rice_relay: Callable[..., RiceRelay]) -> None:
    relay = rice_relay("--allow-peer", "127.0.0.1/32")

    # -T: two clients with TCP allocations connect to each other's relayed
    # address (Connect, ConnectionAttempt, ConnectionBind), and each sends
    # 50 messages that the other echoes.
    summary = run_uclient(relay, ["-T", "-m", "2", "-n", "50", "-l", "100", "-z", "1"])

    assert summary.sent == 2 * 50
    assert summary.received == summary.sent
    assert summary.lost == 0
    assert summary.send_dropped == 0
    assert relay.counters()["allocations_created"] >= 2
