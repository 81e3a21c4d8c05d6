"""Allocation options, statistics and the usage error of the TurnClient."""

from __future__ import annotations

from dataclasses import dataclass

from rice_fast.stun import AddressFamily, TransportProtocol
from rice_fast.turn.errors import TurnError

__all__ = [
    "AllocationOptions",
    "TurnClientStats",
    "TurnUsageError",
    "refresh_delay",
]


class TurnUsageError(TurnError, ValueError):
    """A TurnClient call that cannot be honoured in the client's state.

    The message names the value (peer, option or state) and what to do
    instead, for example a ``send_to`` to a peer without a permission.
    """


def refresh_delay(lifetime: float) -> float:
    """Return how long after a grant of ``lifetime`` seconds to refresh.

    The refresh goes out 60 s before expiry or at 80 % of the lifetime,
    whichever is sooner, but never before half of it, so a short lifetime
    (say 30 s) is refreshed at 15 s rather than at once. For the default
    600 s lifetime that is 480 s.
    """
    return max(min(lifetime - 60.0, 0.8 * lifetime), 0.5 * lifetime)


@dataclass(frozen=True, slots=True)
class AllocationOptions:
    """Options of the Allocate request (RFC 8656 §7.1, RFC 6156, RFC 6062).

    ``relay_transport`` is REQUESTED-TRANSPORT: UDP, or TCP for an RFC 6062
    allocation, which needs a TCP or TLS control connection.
    ``address_family`` is REQUESTED-ADDRESS-FAMILY (None: the server's
    default, IPv4). ``dual_stack`` adds ADDITIONAL-ADDRESS-FAMILY IPv6 for
    an IPv4 plus IPv6 allocation. ``lifetime`` is the LIFETIME requested in
    Allocate and Refresh, in seconds (None: the server's default).
    ``dont_fragment`` sends DONT-FRAGMENT, and the client retries once
    without it when the server does not know the attribute.
    ``even_port`` sends EVEN-PORT (None: absent), with the R bit when true,
    and ``reservation_token`` sends RESERVATION-TOKEN (8 bytes from an
    earlier allocation's ``AllocationCreated.reservation_token``).

    Raises ``TurnUsageError`` for a combination that RFC 8656 §7.2 (steps 5,
    6, 8 and 9) or RFC 6062 §5.1 makes the server reject with 400.
    """

    relay_transport: TransportProtocol = TransportProtocol.UDP
    address_family: AddressFamily | None = None
    dual_stack: bool = False
    lifetime: int | None = None
    dont_fragment: bool = False
    even_port: bool | None = None
    reservation_token: bytes | None = None

    def __post_init__(self) -> None:
        try:
            TransportProtocol(self.relay_transport)
        except ValueError:
            raise TurnUsageError(
                f"relay_transport {self.relay_transport!r} is not "
                "TransportProtocol.UDP or TransportProtocol.TCP"
            ) from None
        if self.address_family is not None:
            try:
                AddressFamily(self.address_family)
            except ValueError:
                raise TurnUsageError(
                    f"address_family {self.address_family!r} is not "
                    "AddressFamily.IPV4 or AddressFamily.IPV6"
                ) from None
        if self.lifetime is not None and not 0 < self.lifetime < 1 << 32:
            raise TurnUsageError(
                f"lifetime {self.lifetime!r} must be a positive number of seconds"
            )
        token = self.reservation_token
        if token is not None and len(token) != 8:
            raise TurnUsageError(
                f"reservation_token is {len(token)} bytes long; it must be 8 bytes"
            )
        if self.dual_stack and self.address_family is not None:
            raise TurnUsageError(
                "dual_stack cannot be combined with address_family: the server "
                "rejects REQUESTED-ADDRESS-FAMILY with ADDITIONAL-ADDRESS-FAMILY"
            )
        if self.dual_stack and (token is not None or self.even_port is True):
            raise TurnUsageError(
                "dual_stack cannot be combined with reservation_token or with "
                "even_port=True (the R bit)"
            )
        if token is not None and (
            self.even_port is not None or self.address_family is not None
        ):
            raise TurnUsageError(
                "reservation_token cannot be combined with even_port or "
                "address_family: the reserved port fixes both"
            )
        if self.relay_transport == TransportProtocol.TCP and (
            self.dont_fragment or self.even_port is not None or token is not None
        ):
            raise TurnUsageError(
                "a TCP allocation (RFC 6062) takes no dont_fragment, even_port "
                "or reservation_token"
            )

    @property
    def families(self) -> frozenset[AddressFamily]:
        """The relayed address families that the request names."""
        if self.dual_stack:
            return frozenset((AddressFamily.IPV4, AddressFamily.IPV6))
        if self.address_family is not None:
            return frozenset((AddressFamily(self.address_family),))
        return frozenset((AddressFamily.IPV4,))


@dataclass(frozen=True, slots=True)
class TurnClientStats:
    """A snapshot of a TurnClient's counters.

    ``data_sent`` and ``data_received`` count application messages (Send
    and Data indications, ChannelData, reads of RFC 6062 data
    connections). The ``dropped_*`` counters count received or outgoing
    data that was discarded, each for one reason.
    """

    data_sent: int = 0
    data_received: int = 0
    send_indications: int = 0
    channel_data_sent: int = 0
    allocations: int = 0
    reallocations: int = 0
    refreshes: int = 0
    dropped_malformed_stun: int = 0
    dropped_malformed_channel_data: int = 0
    dropped_unknown_channel: int = 0
    dropped_without_permission: int = 0
    dropped_unexpected_message: int = 0
    dropped_wrong_source: int = 0
    dropped_unknown_socket: int = 0
    dropped_framing_errors: int = 0
    dropped_truncated_frames: int = 0
    dropped_while_reallocating: int = 0
