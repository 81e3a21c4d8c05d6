"""ICE candidates: the value type, priorities, foundations and SDP lines.

A :class:`Candidate` is a frozen value. Local candidates carry their base
address. Remote ones come from :meth:`Candidate.from_sdp`, which accepts the
``candidate`` lines that Chromium and Firefox send: the RFC 8839 §5.1
grammar with the RFC 6544 ``tcptype`` extension. For a line it rejects, it
raises :class:`~rice_fast.ice.errors.CandidateParseError` and nothing else.

Host names are kept as text and never resolved here: an mDNS name (one
ending in ``.local``) stays in ``address`` and :attr:`Candidate.is_mdns`
tells the caller to resolve it or ignore it. IP address text is kept as
given, not normalised, so ``fe80::1%eth0`` keeps its zone.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import socket
from dataclasses import dataclass

from rice_fast.ice.errors import CandidateError, CandidateParseError
from rice_fast.stun.transport import Address, TransportType

__all__ = [
    "MAX_PRIORITY",
    "MAX_FOUNDATION_LENGTH",
    "MAX_TCP_OTHER_PREFERENCE",
    "CandidateType",
    "TcpType",
    "Candidate",
    "candidate_priority",
    "default_type_preference",
    "tcp_direction_preference",
    "tcp_local_preference",
    "compute_foundation",
    "pair_priority",
]

MAX_PRIORITY = 2**31 - 1
"""The maximum candidate priority (RFC 8445 §5.1.2.1). The minimum is 1."""

MAX_FOUNDATION_LENGTH = 32
"""The maximum foundation length, in characters (RFC 8839 §5.1)."""

MAX_TCP_OTHER_PREFERENCE = 8191
"""The maximum ``other-pref`` of a TCP local preference (RFC 6544 §4.2)."""


class CandidateType(enum.Enum):
    """The candidate type, with its SDP ``typ`` value."""

    HOST = "host"
    SERVER_REFLEXIVE = "srflx"
    PEER_REFLEXIVE = "prflx"
    RELAYED = "relay"


class TcpType(enum.Enum):
    """The direction of a TCP candidate, with its SDP ``tcptype`` value."""

    ACTIVE = "active"
    PASSIVE = "passive"
    SIMULTANEOUS_OPEN = "so"


# RFC 8445 §5.1.2.2 recommended type preferences. Peer-reflexive must rank
# above server-reflexive, and host above both.
_TYPE_PREFERENCES = {
    CandidateType.HOST: 126,
    CandidateType.PEER_REFLEXIVE: 110,
    CandidateType.SERVER_REFLEXIVE: 100,
    CandidateType.RELAYED: 0,
}

# RFC 6544 §4.2 direction preferences. Host and relayed candidates prefer
# active, then passive, then simultaneous-open. Server-reflexive candidates
# sit behind a NAT, where simultaneous-open has the best chance, so the
# order reverses. Peer-reflexive addresses are also NAT mappings and get
# the server-reflexive order; the RFC names no order for them.
_DIRECT_TCP_PREFERENCES = {
    TcpType.ACTIVE: 6,
    TcpType.PASSIVE: 4,
    TcpType.SIMULTANEOUS_OPEN: 2,
}
_NATED_TCP_PREFERENCES = {
    TcpType.SIMULTANEOUS_OPEN: 6,
    TcpType.ACTIVE: 4,
    TcpType.PASSIVE: 2,
}
_TCP_PREFERENCES = {
    CandidateType.HOST: _DIRECT_TCP_PREFERENCES,
    CandidateType.RELAYED: _DIRECT_TCP_PREFERENCES,
    CandidateType.SERVER_REFLEXIVE: _NATED_TCP_PREFERENCES,
    CandidateType.PEER_REFLEXIVE: _NATED_TCP_PREFERENCES,
}

# SDP spellings. Chromium writes the transport as "udp" and Firefox as "UDP",
# so the dictionary contains both and the common cases skip lower().
_TRANSPORTS = {
    "udp": TransportType.UDP,
    "UDP": TransportType.UDP,
    "tcp": TransportType.TCP,
    "TCP": TransportType.TCP,
}
_CANDIDATE_TYPES = {member.value: member for member in CandidateType}
_TCP_TYPES = {member.value: member for member in TcpType}

# Extension names that from_sdp reads into fields of their own. A candidate
# may not carry them in ``extensions`` too, or to_sdp would write them twice.
_RESERVED_EXTENSIONS = frozenset({"raddr", "rport", "tcptype"})

# Extension names that browsers send, known to be valid SDP tokens.
_BROWSER_EXTENSIONS = frozenset({"generation", "ufrag", "network-id", "network-cost"})

# Characters that str.translate deletes before an isalnum() test: the
# non-alphanumeric characters of an ice-char (RFC 8445 §5.1.1.3), of an SIP
# token (RFC 3261 §25.1, the grammar of extension names) and of a host name.
_ICE_CHAR_PUNCTUATION = str.maketrans("", "", "+/")
_TOKEN_PUNCTUATION = str.maketrans("", "", "-.!%*_+`'~")
_HOST_NAME_PUNCTUATION = str.maketrans("", "", "-.")
_IPV4_PUNCTUATION = str.maketrans("", "", ".")


# Priorities and foundations


def candidate_priority(
    type_preference: int, local_preference: int, component: int
) -> int:
    """Compute a candidate priority by the RFC 8445 §5.1.2.1 formula.

    The priority is ``2**24 * type_preference + 2**8 * local_preference +
    (256 - component)``.

    Raises:
        CandidateError: ``type_preference`` is outside 0 to 126,
            ``local_preference`` outside 0 to 65535, ``component`` outside
            1 to 256, or the three give the invalid priority 0.
    """
    if not _is_int(type_preference) or not 0 <= type_preference <= 126:
        raise CandidateError(
            "type_preference", f"{type_preference!r} is not an integer from 0 to 126"
        )
    if not _is_int(local_preference) or not 0 <= local_preference <= 0xFFFF:
        raise CandidateError(
            "local_preference",
            f"{local_preference!r} is not an integer from 0 to 65535",
        )
    _check_component(component)
    priority = (type_preference << 24) + (local_preference << 8) + (256 - component)
    if priority == 0:
        raise CandidateError(
            "priority",
            "type preference 0, local preference 0 and component 256 give"
            " priority 0, which is invalid; raise the local preference",
        )
    return priority


def default_type_preference(
    type: CandidateType,
    transport: TransportType = TransportType.UDP,
    tcp_type: TcpType | None = None,
) -> int:
    """Return the recommended type preference of a candidate.

    The values are those of RFC 8445 §5.1.2.2: 126 for host, 110 for
    peer-reflexive, 100 for server-reflexive and 0 for relayed candidates.
    RFC 6544 §4.2 keeps the same type preferences for TCP candidates and
    puts the TCP direction into the local preference instead (see
    :func:`tcp_local_preference`), so ``transport`` and ``tcp_type`` only
    get checked here. With one address, UDP still ranks above TCP at the
    same type because a UDP local preference of 65535 exceeds every TCP one
    with a recommended direction preference.

    Raises:
        CandidateError: ``transport`` is not UDP or TCP, or ``tcp_type`` is
            given for a UDP candidate.
    """
    if type.__class__ is not CandidateType:
        raise CandidateError("type", f"{type!r} is not a CandidateType")
    _check_transport(transport, tcp_type)
    return _TYPE_PREFERENCES[type]


def tcp_direction_preference(type: CandidateType, tcp_type: TcpType) -> int:
    """Return the RFC 6544 §4.2 ``direction-pref`` (0 to 7) of a TCP candidate.

    Host and relayed candidates rank active 6, passive 4, simultaneous-open
    2. Server-reflexive and peer-reflexive candidates, which are NAT
    mappings, rank simultaneous-open 6, active 4, passive 2.

    Raises:
        CandidateError: ``type`` or ``tcp_type`` is not a member of its enum.
    """
    if type.__class__ is not CandidateType:
        raise CandidateError("type", f"{type!r} is not a CandidateType")
    if tcp_type.__class__ is not TcpType:
        raise CandidateError("tcp_type", f"{tcp_type!r} is not a TcpType")
    return _TCP_PREFERENCES[type][tcp_type]


def tcp_local_preference(
    type: CandidateType,
    tcp_type: TcpType,
    other_preference: int = MAX_TCP_OTHER_PREFERENCE,
) -> int:
    """Compute the local preference of a TCP candidate by RFC 6544 §4.2.

    The local preference is ``2**13 * direction_pref + other_preference``,
    with the direction preference of :func:`tcp_direction_preference`.
    ``other_preference`` (0 to 8191) ranks the addresses of a multihomed
    host and stays at 8191 when there is one address. Candidates with the
    same type and direction need distinct ``other_preference`` values.

    Raises:
        CandidateError: an argument is out of range or of the wrong type.
    """
    direction = tcp_direction_preference(type, tcp_type)
    if not _is_int(other_preference) or not 0 <= other_preference <= 8191:
        raise CandidateError(
            "other_preference", f"{other_preference!r} is not an integer from 0 to 8191"
        )
    return (direction << 13) + other_preference


def compute_foundation(
    type: CandidateType,
    base_ip: str,
    server: Address | None,
    transport: TransportType,
) -> str:
    """Compute the foundation of a local candidate (RFC 8445 §5.1.1.3).

    Two candidates get the same foundation exactly when they have the same
    type, their bases have the same IP address, they were obtained from
    the same STUN or TURN server IP address and they use the same
    transport. Ports play no part. ``server`` is None for host and
    peer-reflexive candidates. The result is 8 ice-chars taken from a
    BLAKE2b hash of those four values, so it is the same in every call and
    every process.

    Raises:
        CandidateError: ``type`` is not a CandidateType, ``base_ip`` is not
            a non-empty string, ``server`` is given for a host candidate, or
            ``transport`` is not UDP or TCP.
    """
    if type.__class__ is not CandidateType:
        raise CandidateError("type", f"{type!r} is not a CandidateType")
    if base_ip.__class__ is not str or not base_ip:
        raise CandidateError("base_ip", f"{base_ip!r} is not a non-empty string")
    if server is not None and type is CandidateType.HOST:
        raise CandidateError(
            "server", f"{server!r} given for a host candidate; pass None"
        )
    _check_transport(transport, None)

    server_key = "" if server is None else _ip_key(server[0])
    key = f"{type.value} {_ip_key(base_ip)} {server_key} {transport.value}"
    digest = hashlib.blake2b(key.encode(), digest_size=6).digest()
    # Base64 of 6 bytes is 8 characters without padding, and the base64
    # alphabet is exactly the ice-char set.
    return base64.b64encode(digest).decode("ascii")


def pair_priority(controlling: int, controlled: int) -> int:
    """Compute a candidate pair priority by the RFC 8445 §6.1.2.3 formula.

    With G the priority of the controlling agent's candidate and D that of
    the controlled agent's, the pair priority is
    ``2**32 * min(G, D) + 2 * max(G, D) + (1 if G > D else 0)``.

    Raises:
        CandidateError: a priority is outside 1 to 2**31 - 1.
    """
    _check_priority("controlling", controlling)
    _check_priority("controlled", controlled)
    if controlling > controlled:
        return (controlled << 32) + 2 * controlling + 1
    return (controlling << 32) + 2 * controlled


# The candidate value


@dataclass(frozen=True, slots=True)
class Candidate:
    """One ICE candidate, local or remote.

    ``address`` is the transport address as a ``(host, port)`` pair, where
    the host is IP address text (an IPv6 address may carry a ``%zone``) or a
    host name such as an mDNS ``.local`` name. ``related_address`` is the
    SDP ``raddr``/``rport`` pair, kept as given even when a browser hides it
    as ``0.0.0.0`` port 0. ``extensions`` contains the other name and value
    pairs of the line in their order (``generation``, ``ufrag``,
    ``network-id``, ``network-cost`` and unknown ones). ``base_address`` is
    set on local candidates only and is never written to SDP.

    Every field is checked when the candidate is created.

    Raises:
        CandidateError: a field is invalid; ``field`` names it.
    """

    foundation: str
    component: int
    transport: TransportType
    priority: int
    address: Address
    type: CandidateType
    related_address: Address | None = None
    tcp_type: TcpType | None = None
    extensions: tuple[tuple[str, str], ...] = ()
    base_address: Address | None = None

    def __post_init__(self) -> None:
        # Each test accepts the common valid case inline and calls the full
        # check, which raises with the reason, only when that test fails.
        # The inline tests keep from_sdp fast.
        foundation = self.foundation
        if not (
            foundation.__class__ is str
            and 0 < len(foundation) <= MAX_FOUNDATION_LENGTH
            and foundation.isascii()
            and foundation.isalnum()
        ):
            _check_foundation(foundation)
        component = self.component
        if not (component.__class__ is int and 0 < component <= 256):
            _check_component(component)
        if self.transport is not TransportType.UDP or self.tcp_type is not None:
            _check_transport(self.transport, self.tcp_type)
        priority = self.priority
        if not (priority.__class__ is int and 0 < priority <= MAX_PRIORITY):
            _check_priority("priority", priority)
        _check_address("address", self.address)
        if self.type.__class__ is not CandidateType:
            raise CandidateError("type", f"{self.type!r} is not a CandidateType")
        if self.related_address is not None:
            _check_address("related_address", self.related_address)
        _check_extensions(self.extensions)
        if self.base_address is not None:
            _check_address("base_address", self.base_address)

    @property
    def is_mdns(self) -> bool:
        """Whether the host is an mDNS name (ends in ``.local``) to resolve."""
        host = self.address[0]
        if host.endswith(".local"):
            return True
        return host.lower().rstrip(".").endswith(".local")

    @property
    def ip_version(self) -> int:
        """The IP version of the host: 4, 6, or 0 for a host name such as mDNS."""
        host = self.address[0]
        if ":" in host:
            return 6
        if host.translate(_IPV4_PUNCTUATION).isdigit():
            return 4
        return 0

    @property
    def related_address_hidden(self) -> bool:
        """Whether ``related_address`` is the placeholder ``0.0.0.0``/``::`` port 0.

        Browsers send that placeholder instead of the real related address
        to avoid exposing a private address.
        """
        related = self.related_address
        if related is None or related[1] != 0:
            return False
        return related[0] == "0.0.0.0" or related[0] == "::"

    def extension(self, name: str) -> str | None:
        """Return the value of the first extension called ``name``, or None."""
        for extension_name, value in self.extensions:
            if extension_name == name:
                return value
        return None

    def to_sdp(self, *, prefix: bool = False) -> str:
        """Format the candidate as an SDP ``candidate`` line without a line end.

        The line starts with ``candidate:``, or with ``a=candidate:`` when
        ``prefix`` is true. The transport is written in lower case, as
        Chromium does.
        """
        host, port = self.address
        parts = [
            "a=candidate:" if prefix else "candidate:",
            self.foundation,
            " ",
            str(self.component),
            " ",
            self.transport.value,
            " ",
            str(self.priority),
            " ",
            host,
            " ",
            str(port),
            " typ ",
            self.type.value,
        ]
        if self.related_address is not None:
            related_host, related_port = self.related_address
            parts.append(f" raddr {related_host} rport {related_port}")
        if self.tcp_type is not None:
            parts.append(" tcptype ")
            parts.append(self.tcp_type.value)
        for name, value in self.extensions:
            parts.append(f" {name} {value}")
        return "".join(parts)

    @classmethod
    def from_sdp(cls, line: str) -> Candidate:
        """Parse an SDP ``candidate`` line, with or without its ``a=`` prefix.

        Surrounding whitespace and a CRLF are ignored, the transport may be
        in any case, and ``raddr``, ``rport`` and ``tcptype`` may come in any
        order after ``typ``. Every other name and value pair is kept in
        ``extensions``. Host names are kept unresolved.

        Raises:
            CandidateParseError: the line is not a valid candidate; the error
                names the line (cut to about 100 characters) and the field.
            TypeError: ``line`` is not a string.
        """
        if line.__class__ is not str:
            raise TypeError(f"candidate line must be a str, not {type(line).__name__}")
        text = line.strip()
        if text.startswith("a="):
            text = text[2:]
        if not text.startswith("candidate:") and text[:10].lower() != "candidate:":
            raise CandidateParseError(
                line, "prefix", "the line does not start with 'candidate:'"
            )
        text = text[10:]
        # Printable ASCII has no whitespace but the space, so split() below
        # splits at spaces only.
        if not (text.isascii() and text.isprintable()):
            raise CandidateParseError(
                line, "line", "the line contains a control or non-ASCII character"
            )

        tokens = text.split()
        if len(tokens) < 8:
            raise CandidateParseError(
                line, "line", f"expected at least 8 fields, found {len(tokens)}"
            )
        if len(tokens) % 2:
            raise CandidateParseError(
                line, "extensions", "an extension name has no value"
            )
        (
            foundation,
            component_text,
            transport_text,
            priority_text,
            host,
            port_text,
            typ,
            type_text,
        ) = tokens[:8]

        transport = _TRANSPORTS.get(transport_text)
        if transport is None:
            transport = _TRANSPORTS.get(transport_text.lower())
            if transport is None:
                raise CandidateParseError(
                    line,
                    "transport",
                    f"{transport_text!r} is not a candidate transport (UDP or TCP)",
                )
        if typ != "typ":
            raise CandidateParseError(line, "typ", f"expected 'typ', found {typ!r}")
        candidate_type = _CANDIDATE_TYPES.get(type_text)
        if candidate_type is None:
            candidate_type = _CANDIDATE_TYPES.get(type_text.lower())
            if candidate_type is None:
                raise CandidateParseError(
                    line, "type", f"{type_text!r} is not host, srflx, prflx or relay"
                )
        component = _parse_decimal(line, "component", component_text, 1, 256)
        priority = _parse_decimal(line, "priority", priority_text, 1, MAX_PRIORITY)
        port = _parse_decimal(line, "port", port_text, 0, 0xFFFF)

        related_host: str | None = None
        related_port: int | None = None
        tcp_type: TcpType | None = None
        extensions: list[tuple[str, str]] = []
        for index in range(8, len(tokens), 2):
            name = tokens[index]
            value = tokens[index + 1]
            if name == "raddr":
                if related_host is not None:
                    raise CandidateParseError(line, "raddr", "raddr appears twice")
                related_host = value
            elif name == "rport":
                if related_port is not None:
                    raise CandidateParseError(line, "rport", "rport appears twice")
                related_port = _parse_decimal(line, "rport", value, 0, 0xFFFF)
            elif name == "tcptype":
                if tcp_type is not None:
                    raise CandidateParseError(line, "tcptype", "tcptype appears twice")
                tcp_type = _TCP_TYPES.get(value) or _TCP_TYPES.get(value.lower())
                if tcp_type is None:
                    raise CandidateParseError(
                        line, "tcptype", f"{value!r} is not active, passive or so"
                    )
            else:
                extensions.append((name, value))

        related_address: Address | None = None
        if related_host is not None:
            if related_port is None:
                raise CandidateParseError(line, "rport", "raddr is given without rport")
            related_address = (related_host, related_port)
        elif related_port is not None:
            raise CandidateParseError(line, "raddr", "rport is given without raddr")

        try:
            return cls(
                foundation,
                component,
                transport,
                priority,
                (host, port),
                candidate_type,
                related_address,
                tcp_type,
                tuple(extensions),
            )
        except CandidateError as error:
            raise CandidateParseError(line, error.field, error.reason) from None


# Field checks, shared by Candidate.__post_init__ and the helpers above


def _is_int(value: object) -> bool:
    # bool is an int subclass but never a valid number here.
    return value.__class__ is int


def _parse_decimal(line: str, field: str, text: str, minimum: int, maximum: int) -> int:
    # int() alone would also take "+1", "1_0" and " 1". The caller has
    # already checked that the text is ASCII, and the length test keeps
    # int() away from huge digit strings.
    if len(text) > 10 or not text.isdigit():
        raise CandidateParseError(line, field, f"{text!r} is not a decimal number")
    value = int(text)
    if not minimum <= value <= maximum:
        raise CandidateParseError(
            line, field, f"{value} is not from {minimum} to {maximum}"
        )
    return value


def _check_foundation(foundation: str) -> None:
    if foundation.__class__ is not str:
        raise CandidateError("foundation", f"{foundation!r} is not a string")
    if not 0 < len(foundation) <= MAX_FOUNDATION_LENGTH:
        raise CandidateError(
            "foundation", f"{foundation!r} is not 1 to 32 characters long"
        )
    rest = foundation.translate(_ICE_CHAR_PUNCTUATION)
    if not foundation.isascii() or (rest and not rest.isalnum()):
        raise CandidateError(
            "foundation",
            f"{foundation!r} has a character other than a letter, digit, '+' or '/'",
        )


def _check_component(component: int) -> None:
    if not _is_int(component) or not 1 <= component <= 256:
        raise CandidateError(
            "component", f"{component!r} is not an integer from 1 to 256"
        )


def _check_priority(field: str, priority: int) -> None:
    if not _is_int(priority) or not 1 <= priority <= MAX_PRIORITY:
        raise CandidateError(
            field, f"{priority!r} is not an integer from 1 to 2**31 - 1"
        )


def _check_transport(transport: TransportType, tcp_type: TcpType | None) -> None:
    if transport is TransportType.UDP:
        if tcp_type is not None:
            raise CandidateError(
                "tcp_type", f"{tcp_type!r} is given for a UDP candidate; pass None"
            )
    elif transport is TransportType.TCP:
        if tcp_type is not None and tcp_type.__class__ is not TcpType:
            raise CandidateError("tcp_type", f"{tcp_type!r} is not a TcpType")
    else:
        raise CandidateError(
            "transport", f"{transport!r} is not TransportType.UDP or TransportType.TCP"
        )


def _check_address(field: str, address: Address) -> None:
    if address.__class__ is not tuple or len(address) != 2:
        raise CandidateError(
            field,
            f"{address!r} is not a (host, port) tuple; pass the first two items"
            " of an IPv6 socket address",
        )
    host, port = address
    if port.__class__ is not int or not 0 <= port <= 0xFFFF:
        raise CandidateError(field, f"port {port!r} is not an integer from 0 to 65535")
    reason = _host_error(host)
    if reason is not None:
        raise CandidateError(field, reason)


def _host_error(host: str) -> str | None:
    """Return why ``host`` is not IP address text or a host name, or None."""
    if host.__class__ is not str:
        return f"host {host!r} is not a string"
    if not (host.isascii() and host.isprintable()) or " " in host:
        return f"host {host!r} has a space, control or non-ASCII character"

    if ":" in host:
        address, percent, zone = host.partition("%")
        if percent and (not zone or "%" in zone):
            return f"host {host!r} has an empty or invalid IPv6 zone"
        try:
            socket.inet_pton(socket.AF_INET6, address)
        except (OSError, ValueError):
            return f"host {host!r} is not a valid IPv6 address"
        return None

    if host.translate(_IPV4_PUNCTUATION).isdigit():
        try:
            socket.inet_pton(socket.AF_INET, host)
        except (OSError, ValueError):
            return f"host {host!r} is not a valid IPv4 address"
        return None

    # A host name: labels of letters, digits and '-', with one optional
    # trailing dot (RFC 4566 allows a fully qualified domain name here).
    name = host[:-1] if host.endswith(".") else host
    rest = name.translate(_HOST_NAME_PUNCTUATION)
    if not rest or not rest.isalnum() or "" in name.split("."):
        return f"host {host!r} is not an IP address or a host name"
    return None


def _check_extensions(extensions: tuple[tuple[str, str], ...]) -> None:
    if extensions.__class__ is not tuple:
        raise CandidateError("extensions", f"{extensions!r} is not a tuple of pairs")
    for extension in extensions:
        if extension.__class__ is not tuple or len(extension) != 2:
            raise CandidateError(
                "extensions", f"{extension!r} is not a (name, value) tuple"
            )
        name, value = extension
        if name.__class__ is not str or name not in _BROWSER_EXTENSIONS:
            _check_extension_name(name)
        if (
            value.__class__ is not str
            or not value
            or not (value.isascii() and value.isprintable())
            or " " in value
        ):
            raise CandidateError(
                "extensions",
                f"value {value!r} of extension {name!r} is not a non-empty string"
                " of visible ASCII characters",
            )


def _check_extension_name(name: str) -> None:
    if name.__class__ is not str:
        raise CandidateError("extensions", f"extension name {name!r} is not a string")
    rest = name.translate(_TOKEN_PUNCTUATION)
    if not name or not name.isascii() or (rest and not rest.isalnum()):
        raise CandidateError(
            "extensions", f"extension name {name!r} is not an SDP token"
        )
    if name in _RESERVED_EXTENSIONS:
        raise CandidateError(
            "extensions",
            f"{name!r} is a field of its own, not an extension"
            " (use related_address or tcp_type)",
        )


def _ip_key(host: str) -> str:
    """Return a canonical form of IP address text, or the text itself."""
    address, percent, zone = host.partition("%")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        packed = socket.inet_pton(family, address)
    except (OSError, ValueError):
        return host.lower()
    return packed.hex() + percent + zone
