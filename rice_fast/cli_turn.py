"""``rice-fast turn``: allocate on a TURN server, optionally echo through it.

The command allocates a relayed address, prints it, and with ``--peer``
binds a channel to the peer, sends ``--count`` datagrams through it and
prints whatever comes back, then deletes the allocation.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
import sys
import time

from rice_fast.cli import printable
from rice_fast.io._address import Address, format_address, parse_address
from rice_fast.io._turn import TurnConnection
from rice_fast.io.errors import StunErrorResponse, StunIOError
from rice_fast.stun import AddressFamily, TransportProtocol
from rice_fast.stun.credentials import LongTermCredentials
from rice_fast.stun.errors import StunError, StunParseError
from rice_fast.turn.client import AllocationOptions, TurnUsageError

__all__ = ["add_parser", "run"]

logger = logging.getLogger("rice_fast.cli")

# The exit statuses of ``rice-fast`` (see rice_fast/cli.py).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_ERROR_RESPONSE = 4
EXIT_INTERRUPTED = 130

DEFAULT_PORT = 3478
DEFAULT_TLS_PORT = 5349

_EPILOG = f"""\
exit status: {EXIT_OK} success, {EXIT_FAILURE} network, socket or TLS error, \
{EXIT_USAGE} invalid arguments, {EXIT_TIMEOUT} timed out (no allocation or no \
echo), {EXIT_ERROR_RESPONSE} error response (401 wrong credentials, 486 quota)"""


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid number of seconds: {text!r}"
        ) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"seconds must be positive, got {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count: {text!r}") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"count must be 1 to 1000, got {value}")
    return value


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``turn`` subcommand on the ``rice-fast`` parser."""
    parser = commands.add_parser(
        "turn",
        help="allocate a relayed address on a TURN server",
        description=(
            "Allocate a relayed address on a TURN server and print it. With "
            "--peer, bind a channel to the peer, send --count datagrams through "
            "the relay and print the datagrams the peer sends back. The "
            "allocation is deleted on exit."
        ),
        epilog=_EPILOG,
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log more: -v for DEBUG",
    )
    parser.add_argument(
        "server",
        metavar="HOST:PORT",
        help="the TURN server, for example 127.0.0.1:3478 or [::1]:3478 (port "
        f"{DEFAULT_PORT} when missing, {DEFAULT_TLS_PORT} with --transport tls)",
    )
    parser.add_argument(
        "--user", required=True, help="username (long-term credentials)"
    )
    parser.add_argument(
        "--password",
        required=True,
        help="password for --user (visible to other local users in the process list)",
    )
    parser.add_argument(
        "--transport",
        choices=("udp", "tcp", "tls"),
        default="udp",
        help="transport to the server (default: %(default)s)",
    )
    parser.add_argument(
        "--family",
        choices=("ipv4", "ipv6", "dual"),
        help="relayed address family: REQUESTED-ADDRESS-FAMILY, or dual for an "
        "IPv4 and an IPv6 address (default: the server's, usually IPv4)",
    )
    parser.add_argument(
        "--tcp-relay",
        action="store_true",
        help="ask for a TCP allocation (RFC 6062); needs --transport tcp or tls, "
        "and --peer then opens a TCP connection to the peer",
    )
    parser.add_argument(
        "--peer",
        metavar="ADDR:PORT",
        help="send datagrams to this peer through the relay and print its replies",
    )
    parser.add_argument(
        "--count",
        type=_count,
        default=3,
        help="datagrams to send to --peer (default: %(default)s)",
    )
    parser.add_argument(
        "--ca",
        metavar="FILE",
        help="with --transport tls, trust the CA certificates in FILE (PEM) "
        "instead of the system store",
    )
    parser.add_argument(
        "--server-name",
        metavar="NAME",
        help="with --transport tls, the host name to check the certificate "
        "against (default: the HOST given)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="with --transport tls, do not check the certificate or host name",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=10.0,
        metavar="S",
        help="seconds to wait for the allocation and for each echo "
        "(default: %(default)s)",
    )
    parser.set_defaults(handler=_handle, log_level=logging.WARNING)


def _handle(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    return run(args, parser)


def _error(message: object) -> None:
    # Error reasons and other text in the message come from the server.
    print(f"rice-fast turn: {printable(str(message))}", file=sys.stderr)


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if args.transport != "tls":
        if args.ca or args.insecure or args.server_name:
            raise ValueError("--ca, --server-name and --insecure need --transport tls")
        return None
    if args.insecure:
        if args.ca:
            raise ValueError("--insecure and --ca cannot be combined")
        print(
            "rice-fast turn: warning: --insecure: the server certificate is not "
            "checked",
            file=sys.stderr,
        )
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=args.ca)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load CA file {args.ca}: {exc}") from None


def _options(args: argparse.Namespace) -> AllocationOptions:
    family = {"ipv4": AddressFamily.IPV4, "ipv6": AddressFamily.IPV6}.get(
        args.family or ""
    )
    relay = TransportProtocol.TCP if args.tcp_relay else TransportProtocol.UDP
    if args.tcp_relay and args.transport == "udp":
        raise ValueError("--tcp-relay needs --transport tcp or tls (RFC 6062)")
    return AllocationOptions(
        relay_transport=relay, address_family=family, dual_stack=args.family == "dual"
    )


def run(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    """Run ``rice-fast turn`` with parsed ``args``; return the exit status.

    With ``parser`` (the ``turn`` subparser), invalid arguments go to its
    ``error``, which prints the usage and exits with status 2.
    """
    default_port = DEFAULT_TLS_PORT if args.transport == "tls" else DEFAULT_PORT
    try:
        server = parse_address(args.server, default_port=default_port)
        peer = parse_address(args.peer) if args.peer else None
        context = _ssl_context(args)
        options = _options(args)
        # The realm comes from the server's 401 challenge.
        credentials = LongTermCredentials(args.user, args.password, "")
    except (StunError, ValueError) as exc:
        if parser is not None:
            parser.error(str(exc))
        _error(exc)
        return EXIT_USAGE
    try:
        return asyncio.run(_session(args, server, peer, context, options, credentials))
    except TurnUsageError as exc:
        _error(exc)
        return EXIT_USAGE
    except StunParseError as exc:
        _error(f"the TURN server sent an invalid response: {exc}")
        return EXIT_FAILURE
    except StunErrorResponse as exc:
        _error(exc)
        return EXIT_ERROR_RESPONSE
    except StunIOError as exc:
        _error(exc)
        return EXIT_FAILURE
    except TimeoutError as exc:
        _error(str(exc) or f"timed out after {args.timeout:g} s")
        return EXIT_TIMEOUT
    except OSError as exc:
        _error(f"socket error: {exc}")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


async def _session(
    args: argparse.Namespace,
    server: Address,
    peer: Address | None,
    context: ssl.SSLContext | None,
    options: AllocationOptions,
    credentials: LongTermCredentials,
) -> int:
    async with TurnConnection.connect(
        server,
        credentials,
        transport=args.transport,
        options=options,
        ssl_context=context,
        server_hostname=args.server_name,
        timeout=args.timeout,
    ) as turn:
        for relayed in turn.relayed_addresses:
            print(f"Relayed address: {format_address(relayed)}")
        if turn.mapped_address is not None:
            print(f"Mapped address:  {format_address(turn.mapped_address)}")
        print(f"Server:          {format_address(turn.server)} over {args.transport}")
        if peer is None:
            status = EXIT_OK
        elif args.tcp_relay:
            status = await _echo_tcp(turn, peer, args.count, args.timeout)
        else:
            status = await _echo_udp(turn, peer, args.count, args.timeout)
    if turn.deletion_confirmed:
        print("Allocation deleted")
    else:
        print("Allocation not confirmed deleted; the server expires it by itself")
    return status


async def _echo_udp(
    turn: TurnConnection, peer: Address, count: int, timeout: float
) -> int:
    channel = await turn.bind_channel(peer, timeout=timeout)
    print(f"Channel:         0x{channel:04x} to {format_address(peer)}")
    for index in range(1, count + 1):
        payload = f"rice-fast turn {index}".encode()
        started = time.monotonic()
        turn.send_to(peer, payload)
        try:
            data, source = await turn.recv_from(timeout=timeout)
        except TimeoutError:
            _error(f"no reply from {format_address(peer)} within {timeout:g} s")
            return EXIT_TIMEOUT
        elapsed = (time.monotonic() - started) * 1000
        print(
            f"Reply {index}: {len(data)} bytes from {format_address(source)} in "
            f"{elapsed:.3f} ms: {data!r}"
        )
    return EXIT_OK


async def _echo_tcp(
    turn: TurnConnection, peer: Address, count: int, timeout: float
) -> int:
    await turn.create_permission(peer, timeout=timeout)
    await turn.connect_peer(peer, timeout=timeout)
    print(f"Connected:       TCP to {format_address(peer)} through the relay")
    for index in range(1, count + 1):
        payload = f"rice-fast turn {index}\n".encode()
        turn.send_to(peer, payload)
        try:
            data, source = await turn.recv_from(timeout=timeout)
        except TimeoutError:
            _error(f"no reply from {format_address(peer)} within {timeout:g} s")
            return EXIT_TIMEOUT
        print(
            f"Reply {index}: {len(data)} bytes from {format_address(source)}: {data!r}"
        )
    return EXIT_OK
