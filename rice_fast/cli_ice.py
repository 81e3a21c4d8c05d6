"""The ``rice-fast ice`` command: an ICE connectivity tool for two machines.

Both sides print their signalling as JSON lines on standard output and read
the peer's on standard input, so two terminals can paste to each other, or
a script can wire two processes together. Line types on stdout:

- ``{"type": "credentials", "ufrag": ..., "pwd": ..., "candidates": [...]}``
  (with ``--trickle`` the candidates follow one by one as
  ``{"type": "candidate", "candidate": "candidate:..."}``, then
  ``{"type": "end-of-candidates"}``);
- ``{"type": "connected", "local": ..., "remote": ..., "time_ms": ...}`` and
  ``{"type": "rtt", "rtt_ms": ...}`` once the pair is selected;
- ``{"type": "data", "text": ...}`` for each line the peer typed;
- ``{"type": "closed"}`` at the end.

On stdin, the signalling types above are applied and other JSON lines are
ignored, so two processes can be wired stdout to stdin. Any line that is
not JSON is sent to the peer as data once connected.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from typing import Any

from rice_fast.ice import Candidate, CandidateParseError, TurnConfig
from rice_fast.io._address import format_address, parse_address
from rice_fast.io._ice import IceConnection, IceConnectionError
from rice_fast.io._interfaces import interface_addresses
from rice_fast.stun.transport import TransportType

__all__ = ["add_parser", "run"]

logger = logging.getLogger("rice_fast.cli.ice")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

# Data that starts with this byte is the tool's own ping and pong, never a
# typed line, so the round trip can be measured on the data path.
_PING = b"\x01ping "
_PONG = b"\x01pong "


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``ice`` subcommand."""
    parser = commands.add_parser(
        "ice",
        help="connect to a peer with ICE, signalling over stdin and stdout",
        description=(
            "Gather candidates, print the credentials and candidates as JSON "
            "lines, read the peer's lines from standard input, connect, print "
            "the selected pair and the round trip time, then send each line "
            "typed on standard input to the peer and print what it sends."
        ),
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log more: -v for DEBUG",
    )
    role = parser.add_mutually_exclusive_group(required=True)
    role.add_argument("--controlling", action="store_true", help="controlling role")
    role.add_argument("--controlled", action="store_true", help="controlled role")
    parser.add_argument(
        "--address",
        metavar="IP",
        action="append",
        default=[],
        help="local address to gather host candidates on; repeat for more "
        "(default: 127.0.0.1)",
    )
    parser.add_argument(
        "--all-interfaces",
        action="store_true",
        help="gather on every interface address instead of --address; loopback, "
        "link-local and virtual interfaces are left out unless included below",
    )
    parser.add_argument(
        "--include",
        choices=("loopback", "link-local", "virtual"),
        action="append",
        default=[],
        help="with --all-interfaces, also use these kinds of address",
    )
    parser.add_argument(
        "--interface",
        metavar="NAME",
        action="append",
        help="with --all-interfaces, use only this interface; repeat for more",
    )
    parser.add_argument(
        "--exclude-interface",
        metavar="NAME",
        action="append",
        default=[],
        help="with --all-interfaces, skip this interface; repeat for more",
    )
    parser.add_argument(
        "--port-range",
        metavar="LOW-HIGH",
        help="bind local sockets to ports in this inclusive range",
    )
    parser.add_argument(
        "--stun",
        metavar="HOST:PORT",
        action="append",
        default=[],
        help="STUN server for server-reflexive candidates; repeat for more",
    )
    parser.add_argument(
        "--turn",
        metavar="HOST:PORT",
        action="append",
        default=[],
        help="TURN server for relayed candidates (needs --turn-user)",
    )
    parser.add_argument("--turn-user", metavar="U:P", help="TURN username and password")
    parser.add_argument(
        "--turn-transport",
        choices=("udp", "tcp", "tls"),
        default="udp",
        help="how to reach the TURN server (default: %(default)s)",
    )
    parser.add_argument("--tcp", action="store_true", help="add TCP host candidates")
    parser.add_argument("--no-udp", action="store_true", help="no UDP host candidates")
    parser.add_argument(
        "--trickle",
        action="store_true",
        help="print candidates as they are gathered and accept trickled ones",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="give up connecting after S seconds (default: %(default)s)",
    )
    parser.set_defaults(handler=run, log_level=logging.WARNING)


def _port_range(
    parser: argparse.ArgumentParser, text: str | None
) -> tuple[int, int] | None:
    if text is None:
        return None
    low_text, _, high_text = text.partition("-")
    try:
        low, high = int(low_text), int(high_text)
    except ValueError:
        parser.error(f"invalid --port-range {text!r}: expected LOW-HIGH")
    if not 1 <= low <= high <= 65535:
        parser.error(f"invalid --port-range {text!r}: use 1 <= LOW <= HIGH <= 65535")
    return (low, high)


def _emit(kind: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"type": kind, **fields}) + "\n")
    sys.stdout.flush()


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run the tool and return the exit status."""
    try:
        stun = [parse_address(text, default_port=3478) for text in args.stun]
        turn_servers = [parse_address(text, default_port=3478) for text in args.turn]
    except ValueError as exc:
        parser.error(str(exc))
    if turn_servers and not args.turn_user:
        parser.error("--turn needs --turn-user U:P")
    if args.no_udp and not args.tcp:
        parser.error("--no-udp needs --tcp, or there is nothing to gather")
    if args.all_interfaces and args.address:
        parser.error("--all-interfaces and --address exclude each other")
    args.port_range = _port_range(parser, args.port_range)
    if args.all_interfaces:
        found = interface_addresses(
            loopback="loopback" in args.include,
            link_local="link-local" in args.include,
            virtual="virtual" in args.include,
            interfaces=args.interface,
            exclude_interfaces=args.exclude_interface,
        )
        if not found:
            parser.error("--all-interfaces found no usable address")
        args.address = [entry.address for entry in found]
    turn: list[TurnConfig] = []
    if turn_servers:
        user, _, password = args.turn_user.partition(":")
        transport = TransportType(args.turn_transport)
        turn = [
            TurnConfig(server, user, password, transport) for server in turn_servers
        ]
    try:
        return asyncio.run(_session(args, stun, turn))
    except KeyboardInterrupt:
        return 130


async def _stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    return reader


def _describe(candidate: Candidate) -> str:
    return (
        f"{candidate.type.value} {candidate.transport.value} "
        f"{format_address(candidate.address)}"
    )


async def _session(
    args: argparse.Namespace, stun: list[tuple[str, int]], turn: list[TurnConfig]
) -> int:
    connection = await IceConnection.create(
        controlling=args.controlling,
        addresses=args.address or ["127.0.0.1"],
        udp=not args.no_udp,
        tcp=args.tcp,
        stun_servers=stun,
        turn_servers=turn,
        trickle=args.trickle,
        port_range=args.port_range,
    )
    try:
        return await _run_connection(connection, args)
    except (IceConnectionError, TimeoutError) as exc:
        print(f"rice-fast ice: {exc or 'timed out'}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        await connection.close()
        _emit("closed")


async def _run_connection(connection: IceConnection, args: argparse.Namespace) -> int:
    reader = await _stdin_lines()
    if args.trickle:
        credentials = connection.local_credentials()
        _emit(
            "credentials", ufrag=credentials.ufrag, pwd=credentials.pwd, candidates=[]
        )
        connection.on_candidate = lambda c: _emit("candidate", candidate=c.to_sdp())
        gathering = asyncio.ensure_future(connection.gather(args.timeout))
        gathering.add_done_callback(lambda _: _emit("end-of-candidates"))
    else:
        credentials = await connection.gather(args.timeout)
        _emit(
            "credentials",
            ufrag=credentials.ufrag,
            pwd=credentials.pwd,
            candidates=[c.to_sdp() for c in credentials.candidates],
        )

    started = time.perf_counter()
    connected = asyncio.ensure_future(connection.connected(args.timeout))
    reading = asyncio.ensure_future(_read_input(reader, connection))
    receiving = asyncio.ensure_future(_receive(connection))
    try:
        done, _ = await asyncio.wait(
            {connected, reading}, return_when=asyncio.FIRST_COMPLETED
        )
        if connected not in done:
            raise IceConnectionError("standard input closed before ICE connected")
        pairs = connected.result()
        pair = pairs[1]
        _emit(
            "connected",
            local=_describe(pair.local),
            remote=_describe(pair.remote),
            time_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        connection.send(_PING + str(time.perf_counter()).encode())
        await reading
        return EXIT_OK
    finally:
        for task in (connected, reading, receiving):
            task.cancel()


async def _read_input(reader: asyncio.StreamReader, connection: IceConnection) -> None:
    remote_set = False
    while line := await reader.readline():
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if not text:
            continue
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            message = None
        if isinstance(message, dict):
            remote_set = _apply_signal(connection, message, remote_set)
            continue
        if connection.selected_pair() is None:
            print("rice-fast ice: not connected yet; line not sent", file=sys.stderr)
            continue
        connection.send(text.encode())


def _apply_signal(
    connection: IceConnection, message: dict[str, Any], remote_set: bool
) -> bool:
    kind = message.get("type")
    try:
        if kind == "credentials":
            candidates = [Candidate.from_sdp(c) for c in message.get("candidates", [])]
            connection.set_remote(
                str(message["ufrag"]), str(message["pwd"]), candidates
            )
            return True
        if kind == "candidate" and remote_set:
            connection.add_remote_candidate(Candidate.from_sdp(message["candidate"]))
        elif kind == "end-of-candidates" and remote_set:
            connection.end_of_remote_candidates()
    except (CandidateParseError, KeyError, ValueError) as exc:
        print(f"rice-fast ice: ignored a signalling line: {exc}", file=sys.stderr)
    return remote_set


async def _receive(connection: IceConnection) -> None:
    while True:
        data = await connection.recv()
        if data.startswith(_PING):
            connection.send(_PONG + data[len(_PING) :])
        elif data.startswith(_PONG):
            try:
                sent = float(data[len(_PONG) :])
            except ValueError:
                continue
            _emit("rtt", rtt_ms=round((time.perf_counter() - sent) * 1000, 3))
        else:
            _emit("data", text=data.decode("utf-8", "replace"))
