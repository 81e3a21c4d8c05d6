"""The ``rice-fast`` command line.

Each subcommand registers itself in ``build_parser`` with a handler that
takes the parsed arguments and returns the exit status.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rice_fast import __version__

# The library is imported inside the functions that use it, so that a
# SIGINT while it loads reaches main's KeyboardInterrupt handler.
if TYPE_CHECKING:
    from rice_fast.io import Address
    from rice_fast.stun.auth import LongTermAuthenticator
    from rice_fast.stun.server import StunServerStats

__all__ = [
    "EXIT_ERROR_RESPONSE",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "build_parser",
    "main",
    "printable",
]

logger = logging.getLogger("rice_fast.cli")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_ERROR_RESPONSE = 4
# The shell convention for a command ended by SIGINT: 128 + 2.
EXIT_INTERRUPTED = 130

_EXIT_CODES = (
    f"exit status: {EXIT_OK} success, {EXIT_FAILURE} network or socket error, "
    f"{EXIT_USAGE} invalid arguments, {EXIT_TIMEOUT} timed out, "
    f"{EXIT_ERROR_RESPONSE} error response, {EXIT_INTERRUPTED} interrupted"
)


def printable(text: str) -> str:
    """Return ``text`` with every non-printable character escaped.

    Control characters (ESC, CR, LF, BEL...) become ``\\xNN`` escapes, and
    other non-printable code points ``\\uNNNN`` or ``\\UNNNNNNNN``, so text
    from the network cannot move the cursor, clear the screen or forge a
    line of output. Printable text, spaces included, is unchanged.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid number of seconds: {text!r}"
        ) from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(
            f"seconds must be a positive, finite number, got {text}"
        )
    return value


def _positive_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"count must be at least 1, got {value}")
    return value


def _user_password(text: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise argparse.ArgumentTypeError(
            f"invalid user {text.split(':', 1)[0]!r}: expected USER:PASSWORD"
        )
    return user, password


def _add_verbose(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="log more: -v for DEBUG",
    )


def _add_stun_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    parser = commands.add_parser(
        "stun",
        help="send a STUN Binding request and print the mapped address",
        description=(
            "Send one STUN Binding request and print the server-reflexive "
            "address, the round trip time and the server's SOFTWARE."
        ),
        epilog=_EXIT_CODES,
    )
    _add_verbose(parser, argparse.SUPPRESS)
    parser.add_argument(
        "server",
        metavar="HOST:PORT",
        help="the STUN server, for example 127.0.0.1:3478 or [::1]:3478 "
        "(port 3478 when missing)",
    )
    parser.add_argument("--tcp", action="store_true", help="use TCP instead of UDP")
    parser.add_argument(
        "--ipv6",
        action="store_true",
        help="resolve a host name to its IPv6 address (IPv4 by default)",
    )

    parser.add_argument(
        "--user",
        help="username for long-term authentication, in the realm that the "
        "server's 401 challenge names",
    )
    parser.add_argument(
        "--password",
        help="password for --user (visible to other local users in the process list)",
    )

    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        metavar="S",
        help="give up after S seconds (default: the RFC 8489 retransmission "
        "schedule, 39.5 s over UDP and TCP)",
    )
    parser.add_argument(
        "--legacy",
        action="store_true",
        help="send no FINGERPRINT, for RFC 3489 servers that reject attributes "
        "they do not know; a response with only MAPPED-ADDRESS is accepted "
        "with or without this option",
    )

    # A one-shot command: without -v only warnings reach stderr, next to
    # the one-line error message.
    parser.set_defaults(handler=_run_stun, log_level=logging.WARNING)


def _add_stun_server_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    parser = commands.add_parser(
        "stun-server",
        help="run a STUN Binding server over UDP and TCP",
        description=(
            "Answer STUN Binding requests over UDP and TCP until SIGINT or "
            "SIGTERM. With port 0 both transports share one free port, which "
            "the start-up log line shows."
        ),
    )
    _add_verbose(parser, argparse.SUPPRESS)
    parser.add_argument(
        "--listen",
        metavar="ADDR:PORT",
        default="127.0.0.1:3478",
        help="the address to listen on, for example 127.0.0.1:3478 or "
        "[::1]:3478 (default: %(default)s)",
    )
    parser.add_argument("--no-udp", action="store_true", help="do not listen on UDP")
    parser.add_argument("--no-tcp", action="store_true", help="do not listen on TCP")
    parser.add_argument(
        "--software",
        metavar="TEXT",
        help="SOFTWARE to send; unauthenticated responses leave it out when it "
        "would make them more than 32 bytes larger than the request",
    )
    parser.add_argument(
        "--realm",
        metavar="R",
        help="require long-term authentication in realm R (needs --user)",
    )
    parser.add_argument(
        "--user",
        metavar="U:P",
        action="append",
        type=_user_password,
        default=[],
        help="a user and password for --realm; repeat for more users (the "
        "passwords are visible to other local users in the process list)",
    )
    parser.add_argument(
        "--tcp-idle-timeout",
        type=_positive_seconds,
        metavar="S",
        default=30.0,
        help="close a TCP connection that sends no complete STUN message for "
        "S seconds (default: %(default)g)",
    )
    parser.add_argument(
        "--max-tcp-connections",
        type=_positive_count,
        metavar="N",
        default=1024,
        help="close new TCP connections at once while N are open "
        "(default: %(default)s)",
    )
    parser.set_defaults(handler=_run_stun_server, log_level=logging.INFO)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``rice-fast`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="rice-fast", description="ICE, STUN and TURN tools built on rice_fast."
    )
    parser.add_argument("--version", action="version", version=__version__)
    _add_verbose(parser, 0)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    _add_stun_parser(commands)
    _add_stun_server_parser(commands)
    # The other commands live in their own modules; importing them here,
    # not at the top, keeps rice_fast.cli importable from each of them.
    from rice_fast import cli_demo, cli_ice, cli_relay, cli_turn

    cli_demo.add_parser(commands)
    cli_ice.add_parser(commands)
    cli_turn.add_parser(commands)
    cli_relay.add_parser(commands)
    # Each handler gets its own subparser, so that a usage error found
    # after parsing prints that command's usage.
    for subparser in commands.choices.values():
        subparser.set_defaults(command_parser=subparser)
    return parser


def _configure_logging(verbose: int, default_level: int) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else default_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rice-fast`` with ``argv`` (default ``sys.argv[1:]``).

    Returns the exit status; usage errors raise ``SystemExit`` with 2.
    """
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        _configure_logging(args.verbose, args.log_level)
        status: int = args.handler(args.command_parser, args)
    except KeyboardInterrupt:
        # SIGINT while the library loads or a command starts, before the
        # command handles it: exit as a shell expects, without a traceback.
        return EXIT_INTERRUPTED
    return status


# stun


def _run_stun(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from rice_fast.io import (
        StunErrorResponse,
        StunIOError,
        StunTimeoutError,
        format_address,
        parse_address,
        stun_binding,
    )
    from rice_fast.stun.credentials import LongTermCredentials
    from rice_fast.stun.errors import StunError

    try:
        server = parse_address(args.server, default_port=3478)
    except ValueError as exc:
        parser.error(str(exc))
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password must be given together")

    credentials: LongTermCredentials | None = None
    if args.user is not None:
        try:
            # The agent takes the realm from the server's 401 challenge.
            credentials = LongTermCredentials(args.user, args.password, "")
        except (StunError, ValueError) as exc:
            parser.error(f"invalid credentials: {exc}")

    try:
        result = stun_binding(
            server,
            transport="tcp" if args.tcp else "udp",
            credentials=credentials,
            timeout=args.timeout,
            ipv6=args.ipv6,
            legacy=args.legacy,
        )
    except StunTimeoutError as exc:
        _print_error("stun", exc)
        return EXIT_TIMEOUT
    except StunErrorResponse as exc:
        _print_error("stun", exc)
        return EXIT_ERROR_RESPONSE
    except StunIOError as exc:
        _print_error("stun", exc)
        return EXIT_FAILURE
    except StunError as exc:
        # A parse error that no layer turned into a StunIOError: still bytes
        # from the server, so a protocol failure and not a usage error.
        _print_error("stun", f"the STUN server sent an invalid response: {exc}")
        return EXIT_FAILURE
    except ValueError as exc:
        parser.error(str(exc))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED

    print(f"Mapped address: {format_address(result.mapped_address)}")
    print(f"Local address:  {format_address(result.local_address)}")
    print(
        f"Server:         {format_address(result.server)} over {result.transport.value}"
    )
    print(f"RTT:            {result.rtt * 1000:.3f} ms")
    if result.software is not None:
        print(f"Software:       {printable(result.software)}")
    if result.legacy:
        print("Server type:    RFC 3489 (MAPPED-ADDRESS only, no XOR-MAPPED-ADDRESS)")
    if credentials is not None and not result.authenticated:
        print(
            "rice-fast stun: note: the server answered without asking for "
            "credentials, so --user and --password were not used",
            file=sys.stderr,
        )
    return EXIT_OK


def _print_error(command: str, error: object) -> None:
    """Print one error line for ``command``, with server text escaped."""
    print(f"rice-fast {command}: {printable(str(error))}", file=sys.stderr)


# stun-server


def _run_stun_server(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    import asyncio

    from rice_fast.io import parse_address
    from rice_fast.stun.auth import LongTermAuthenticator
    from rice_fast.stun.server import StunServer

    try:
        listen = parse_address(args.listen, default_port=3478)
    except ValueError as exc:
        parser.error(str(exc))
    if args.no_udp and args.no_tcp:
        parser.error("--no-udp and --no-tcp leave nothing to listen on")
    if args.user and not args.realm:
        parser.error("--user needs --realm")
    if args.realm and not args.user:
        parser.error("--realm needs at least one --user U:P")
    if args.software is not None:
        try:
            StunServer(software=args.software)
        except ValueError as exc:
            parser.error(f"invalid --software: {exc}")

    authenticator: LongTermAuthenticator | None = None
    if args.realm:
        users = dict(args.user)
        try:
            authenticator = LongTermAuthenticator(args.realm, users)
        except ValueError as exc:
            parser.error(f"invalid authentication settings: {exc}")

    try:
        return asyncio.run(
            _serve_stun_until_signal(
                listen,
                udp=not args.no_udp,
                tcp=not args.no_tcp,
                software=args.software,
                authenticator=authenticator,
                users=len(args.user),
                tcp_idle_timeout=args.tcp_idle_timeout,
                max_tcp_connections=args.max_tcp_connections,
            )
        )
    except KeyboardInterrupt:
        # SIGINT during start-up, before the signal handlers are installed.
        return EXIT_INTERRUPTED


async def _serve_stun_until_signal(
    listen: Address,
    *,
    udp: bool,
    tcp: bool,
    software: str | None,
    authenticator: LongTermAuthenticator | None,
    users: int,
    tcp_idle_timeout: float,
    max_tcp_connections: int,
) -> int:
    import asyncio

    from rice_fast.io import format_address, serve_stun

    try:
        service = await serve_stun(
            listen,
            udp=udp,
            tcp=tcp,
            software=software,
            authenticator=authenticator,
            tcp_idle_timeout=tcp_idle_timeout,
            max_tcp_connections=max_tcp_connections,
        )
    except OSError as exc:
        logger.error("cannot listen on %s: %s", format_address(listen), exc)
        return EXIT_FAILURE
    except ValueError as exc:
        logger.error("invalid STUN server settings: %s", exc)
        return EXIT_USAGE

    bound = ", ".join(
        f"{transport.value} {format_address(address)}"
        for transport, address in service.addresses
    )
    if authenticator is not None:
        auth = (
            f"long-term authentication in realm {authenticator.realm!r}, {users} users"
        )
    else:
        auth = "no authentication"
    logger.info("STUN server listening on %s (%s)", bound, auth)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(signum: signal.Signals) -> None:
        received.append(signum.name)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        service.close()
        await service.wait_closed()
    logger.info(
        "STUN server stopped on %s: %s",
        received[0],
        _summarize(service.server.stats),
    )
    return EXIT_OK


def _summarize(stats: StunServerStats) -> str:
    dropped = (
        stats.dropped_malformed
        + stats.dropped_bad_fingerprint
        + stats.dropped_queue_full
        + stats.ignored_indications
        + stats.ignored_responses
    )
    return (
        f"{stats.requests} requests, {stats.success_responses} success and "
        f"{stats.error_responses} error responses, {dropped} messages dropped"
    )


if __name__ == "__main__":
    sys.exit(main())
