"""The ``rice-fast demo`` command: two ICE agents and the embedded relay.

Everything runs on loopback in one process: the relay (this project's
STUN and TURN server), and two agents over real sockets that gather host,
server-reflexive and relayed candidates, connect, and exchange data both
ways.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import statistics
import sys
import time

from rice_fast.ice import Candidate, CandidatePair, CandidateType, TurnConfig
from rice_fast.io._address import format_address
from rice_fast.io._ice import IceConnection, IceConnectionError, LocalCredentials
from rice_fast.io._relay_server import RelayConfig, RelayServer
from rice_fast.stun.transport import TransportType
from rice_fast.turn._peer_policy import PeerPolicy
from rice_fast.turn._server_config import TurnServerConfig

__all__ = ["add_parser", "run"]

logger = logging.getLogger("rice_fast.cli.demo")

EXIT_OK = 0
EXIT_FAILURE = 1

_ROUND_TRIPS = 20


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``demo`` subcommand."""
    parser = commands.add_parser(
        "demo",
        help="connect two ICE agents through the embedded relay on loopback",
        description=(
            "Start the embedded STUN/TURN relay on 127.0.0.1, run two ICE "
            "agents over real sockets, gather host, server-reflexive and "
            "relayed candidates, connect, exchange data both ways, and print "
            "the candidates, the selected pairs, the time to connect and the "
            "data round trip. Uses no network beyond loopback."
        ),
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log more: -v for DEBUG",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--relay-only",
        action="store_true",
        help="signal only relayed candidates, so every path goes through the relay",
    )
    mode.add_argument(
        "--tcp",
        action="store_true",
        help="use TCP host candidates (RFC 6544) instead of UDP",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        metavar="S",
        help="give up after S seconds (default: %(default)s)",
    )
    parser.set_defaults(handler=run, log_level=logging.WARNING)


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run the demo and return the exit status."""
    try:
        return asyncio.run(
            _demo(relay_only=args.relay_only, tcp=args.tcp, timeout=args.timeout)
        )
    except KeyboardInterrupt:
        return 130


def _describe(candidate: Candidate) -> str:
    text = (
        f"{candidate.type.value:5} {candidate.transport.value} "
        f"{format_address(candidate.address)}"
    )
    if candidate.tcp_type is not None:
        text += f" tcptype {candidate.tcp_type.value}"
    return text + f" priority {candidate.priority}"


def _describe_pair(pair: CandidatePair) -> str:
    return f"{_describe_short(pair.local)} -> {_describe_short(pair.remote)}"


def _describe_short(candidate: Candidate) -> str:
    return (
        f"{candidate.type.value} {candidate.transport.value} "
        f"{format_address(candidate.address)}"
    )


def _signalled(credentials: LocalCredentials, relay_only: bool) -> list[Candidate]:
    if not relay_only:
        return list(credentials.candidates)
    return [c for c in credentials.candidates if c.type is CandidateType.RELAYED]


async def _demo(*, relay_only: bool, tcp: bool, timeout: float) -> int:
    password = secrets.token_urlsafe(16)
    relay = RelayServer(
        RelayConfig(
            turn=TurnServerConfig(
                realm="rice-fast demo",
                users={"demo": password},
                # The demo's peers are on loopback, which a relay denies by
                # default; admit exactly that.
                peer_policy=PeerPolicy(allow=["127.0.0.0/8"]),
            ),
            listen=(("127.0.0.1", 0),),
            min_port=20000,
            max_port=60999,
        )
    )
    await relay.start()
    server = relay.addresses[TransportType.UDP][0]
    print(f"embedded relay: STUN and TURN on udp/tcp {format_address(server)}")
    stun = () if tcp else (server,)
    turn = () if tcp else (TurnConfig(server, "demo", password),)
    left = right = None
    try:
        left = await IceConnection.create(
            controlling=True, udp=not tcp, tcp=tcp, stun_servers=stun, turn_servers=turn
        )
        right = await IceConnection.create(
            controlling=False,
            udp=not tcp,
            tcp=tcp,
            stun_servers=stun,
            turn_servers=turn,
        )
        return await _connect_and_talk(left, right, relay_only, timeout)
    except (IceConnectionError, TimeoutError, OSError) as exc:
        message = str(exc) or type(exc).__name__
        print(f"rice-fast demo: failed: {message}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        for agent in (left, right):
            if agent is not None:
                await agent.close()
        relay.close()
        await relay.wait_closed()


async def _connect_and_talk(
    left: IceConnection, right: IceConnection, relay_only: bool, timeout: float
) -> int:
    started = time.perf_counter()
    gathered = await asyncio.gather(left.gather(timeout), right.gather(timeout))
    gather_time = time.perf_counter() - started
    agents = (left, right)
    names = ("L (controlling)", "R (controlled)")
    for agent, name, credentials in zip(agents, names, gathered, strict=True):
        print(f"agent {name}: ufrag {credentials.ufrag}, candidates:")
        for candidate in credentials.candidates:
            print(f"  {_describe(candidate)}")
        if agent.agent.stats.reflexive_same_as_base:
            print(
                "  srflx: the STUN server saw the host address itself (no NAT "
                "on loopback), so RFC 8445 §5.1.3 drops it as redundant"
            )
    print(f"gathering took {gather_time * 1000:.1f} ms")

    offers = [_signalled(c, relay_only) for c in gathered]
    if relay_only and not all(offers):
        raise IceConnectionError("an agent gathered no relayed candidate")
    started = time.perf_counter()
    left.set_remote(gathered[1].ufrag, gathered[1].pwd, offers[1])
    right.set_remote(gathered[0].ufrag, gathered[0].pwd, offers[0])
    left_pairs, right_pairs = await asyncio.gather(
        left.connected(timeout), right.connected(timeout)
    )
    connect_time = time.perf_counter() - started
    print(f"connected in {connect_time * 1000:.1f} ms")
    print(f"selected pair L: {_describe_pair(left_pairs[1])}")
    print(f"selected pair R: {_describe_pair(right_pairs[1])}")

    round_trips: list[float] = []
    async with asyncio.timeout(timeout):
        for i in range(_ROUND_TRIPS):
            sent = time.perf_counter()
            left.send(b"ping %d" % i)
            request = await right.recv()
            if request != b"ping %d" % i:
                raise IceConnectionError(f"R received {request!r}, sent ping {i}")
            right.send(b"pong %d" % i)
            answer = await left.recv()
            if answer != b"pong %d" % i:
                raise IceConnectionError(f"L received {answer!r}, sent pong {i}")
            round_trips.append(time.perf_counter() - sent)
    print(
        f"data: {_ROUND_TRIPS} round trips L -> R -> L, round trip median "
        f"{statistics.median(round_trips) * 1000:.3f} ms, "
        f"min {min(round_trips) * 1000:.3f} ms"
    )
    return EXIT_OK
