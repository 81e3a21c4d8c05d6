"""Permission and channel tables of a TurnClient, with their refresh timers.

RFC 8656 §9: a permission lasts 300 s from the last CreatePermission or
ChannelBind that installed or refreshed it, and covers every port of one
peer IP address. RFC 8656 §12: a channel binding lasts 600 s from the last
ChannelBind, and after it expires neither its number nor its peer may be
bound to anything else for another 300 s, while re-binding the same pair
is allowed. The tables refresh 60 s before each lifetime ends, which leaves
room for a full UDP retransmission schedule (39.5 s) before expiry.

The tables only keep state and deadlines; the client sends the requests.
An entry is "due" when its next request time has passed and no request for
it is in flight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from rice_fast.stun.transport import Address
from rice_fast.turn._framing import MAX_CHANNEL, MIN_CHANNEL

__all__ = [
    "CHANNEL_LIFETIME",
    "CHANNEL_QUARANTINE",
    "CHANNEL_REFRESH_MARGIN",
    "PERMISSION_LIFETIME",
    "PERMISSION_REFRESH_MARGIN",
    "Channel",
    "ChannelTable",
    "Permission",
    "PermissionTable",
]

PERMISSION_LIFETIME: Final = 300.0
PERMISSION_REFRESH_MARGIN: Final = 60.0
CHANNEL_LIFETIME: Final = 600.0
CHANNEL_REFRESH_MARGIN: Final = 60.0
CHANNEL_QUARANTINE: Final = 300.0


@dataclass(slots=True, eq=False)
class Permission:
    """One peer IP address and the state of its permission.

    ``expires_at`` is None until the server first confirms the permission
    on the current allocation. ``request_at`` is when the next
    CreatePermission is due, None when none is planned. ``wanted`` is false
    after ``remove``: the permission is left to expire. ``requested`` is
    true when the caller asked for the permission itself, false when only
    a ChannelBind installed it.
    """

    ip: str
    wanted: bool = True
    requested: bool = False
    expires_at: float | None = None
    request_at: float | None = None
    transaction_id: bytes | None = None

    @property
    def installed(self) -> bool:
        """Whether the server confirmed this permission on the allocation."""
        return self.expires_at is not None


@dataclass(slots=True, eq=False)
class Channel:
    """One channel number bound, or being bound, to one peer address."""

    number: int
    peer: Address
    wanted: bool = True
    expires_at: float | None = None
    request_at: float | None = None
    transaction_id: bytes | None = None

    @property
    def bound(self) -> bool:
        """Whether the server confirmed the binding on the allocation."""
        return self.expires_at is not None


def _earliest(*values: float | None) -> float:
    return min((v for v in values if v is not None), default=math.inf)


class PermissionTable:
    """Permissions by peer IP address, with their request and expiry times."""

    __slots__ = ("_entries", "_next")

    def __init__(self) -> None:
        self._entries: dict[str, Permission] = {}
        self._next: float | None = math.inf

    def __contains__(self, ip: object) -> bool:
        return ip in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, ip: str) -> Permission | None:
        """Return the entry for ``ip``, or None."""
        return self._entries.get(ip)

    def entries(self) -> list[Permission]:
        """Return every entry."""
        return list(self._entries.values())

    def add(self, ip: str, now: float) -> Permission:
        """Ask for a permission; an entry with no request planned is due now."""
        entry = self._entries.get(ip)
        if entry is None:
            entry = self._entries[ip] = Permission(ip, request_at=now)
        entry.requested = True
        entry.wanted = True
        if entry.transaction_id is None and entry.request_at is None:
            entry.request_at = now
        self._next = None
        return entry

    def remove(self, ip: str) -> None:
        """Stop refreshing the permission for ``ip``; it expires by itself."""
        entry = self._entries.get(ip)
        if entry is None:
            return
        entry.wanted = False
        entry.request_at = None
        if not entry.installed and entry.transaction_id is None:
            del self._entries[ip]
        self._next = None

    def sent(self, entry: Permission, transaction_id: bytes) -> None:
        """Record the request in flight for ``entry``."""
        entry.transaction_id = transaction_id
        entry.request_at = None
        self._next = None

    def confirmed(self, ip: str, now: float) -> bool:
        """Record that the server installed or refreshed the permission.

        Called for a CreatePermission and a ChannelBind success, since both
        install the permission (RFC 8656 §9, §12). Creates the entry if
        needed and returns whether the permission was new on the allocation.
        """
        entry = self._entries.get(ip)
        if entry is None:
            entry = self._entries[ip] = Permission(ip)
        first = not entry.installed
        entry.expires_at = now + PERMISSION_LIFETIME
        if entry.wanted:
            entry.request_at = now + PERMISSION_LIFETIME - PERMISSION_REFRESH_MARGIN
        self._next = None
        return first

    def finished(self, entry: Permission) -> bool:
        """Clear the request in flight; return whether ``entry`` is current."""
        current = self._entries.get(entry.ip) is entry
        entry.transaction_id = None
        self._next = None
        return current

    def retry(self, entry: Permission, at: float) -> None:
        """Plan the next request for ``entry`` at ``at``."""
        if entry.wanted:
            entry.request_at = at
        self._next = None

    def discard(self, entry: Permission) -> None:
        """Remove ``entry`` if it is the current one for its address."""
        if self._entries.get(entry.ip) is entry:
            del self._entries[entry.ip]
        self._next = None

    def expired(self, now: float) -> list[Permission]:
        """Remove and return the entries whose lifetime has ended."""
        gone = [
            e
            for e in self._entries.values()
            if e.expires_at is not None and e.expires_at <= now
        ]
        for entry in gone:
            del self._entries[entry.ip]
        if gone:
            self._next = None
        return gone

    def due(self, now: float) -> list[Permission]:
        """Return the entries whose next request is due."""
        return [
            e
            for e in self._entries.values()
            if e.request_at is not None
            and e.request_at <= now
            and e.transaction_id is None
        ]

    def next_deadline(self) -> float:
        """Return the earliest request or expiry time, inf when none."""
        if self._next is None:
            self._next = min(
                (_earliest(e.request_at, e.expires_at) for e in self._entries.values()),
                default=math.inf,
            )
        return self._next

    def reset(self) -> None:
        """Forget the server state for a new allocation.

        Entries still wanted are kept with no request planned, until
        ``schedule_unconfirmed``; the others are dropped. Requests in flight
        are forgotten, so the caller cancels them.
        """
        kept: dict[str, Permission] = {}
        for entry in self._entries.values():
            entry.transaction_id = None
            entry.expires_at = None
            entry.request_at = None
            if entry.wanted:
                kept[entry.ip] = entry
        self._entries = kept
        self._next = None

    def schedule_unconfirmed(self, now: float) -> None:
        """Make every wanted entry without a request or a permission due."""
        for entry in self._entries.values():
            if (
                entry.wanted
                and not entry.installed
                and entry.transaction_id is None
                and entry.request_at is None
            ):
                entry.request_at = now
        self._next = None


class ChannelTable:
    """Channel bindings by number and by peer, and recently expired ones."""

    __slots__ = (
        "_by_number",
        "_by_peer",
        "_next",
        "_quarantine",
        "bound_by_peer",
        "peer_by_number",
    )

    def __init__(self) -> None:
        self._by_number: dict[int, Channel] = {}
        self._by_peer: dict[Address, Channel] = {}
        # number -> (peer, until): expired bindings that RFC 8656 §12 keeps
        # from being re-used with another peer for CHANNEL_QUARANTINE.
        self._quarantine: dict[int, tuple[Address, float]] = {}
        self._next: float | None = math.inf
        self.bound_by_peer: dict[Address, int] = {}
        """Peer -> channel number of the confirmed bindings: the send path."""
        self.peer_by_number: dict[int, Address] = {}
        """Channel number -> peer of every entry: the receive path."""

    def __len__(self) -> int:
        return len(self._by_number)

    def by_peer(self, peer: Address) -> Channel | None:
        """Return the channel of ``peer``, or None."""
        return self._by_peer.get(peer)

    def peer_of(self, number: int) -> Address | None:
        """Return the peer that ChannelData on ``number`` comes from, or None."""
        return self.peer_by_number.get(number)

    def entries(self) -> list[Channel]:
        """Return every entry."""
        return list(self._by_number.values())

    def bind(self, peer: Address, now: float) -> Channel:
        """Return the channel of ``peer``, choosing a number for a new one.

        A peer whose binding expired less than 300 s ago gets its old
        number back. Raises ``LookupError`` when all 4096 numbers are taken
        or in quarantine.
        """
        entry = self._by_peer.get(peer)
        if entry is not None:
            entry.wanted = True
            if entry.transaction_id is None and entry.request_at is None:
                entry.request_at = now
            self._next = None
            return entry
        number = self._choose_number(peer, now)
        entry = Channel(number, peer, request_at=now)
        self._by_number[number] = entry
        self._by_peer[peer] = entry
        self.peer_by_number[number] = peer
        self._quarantine.pop(number, None)
        self._next = None
        return entry

    def _choose_number(self, peer: Address, now: float) -> int:
        for number, (old_peer, until) in list(self._quarantine.items()):
            if until <= now:
                del self._quarantine[number]
            elif old_peer == peer:
                return number
        blocked = {n for n, (p, _) in self._quarantine.items()}
        for number in range(MIN_CHANNEL, MAX_CHANNEL + 1):
            if number not in self._by_number and number not in blocked:
                return number
        raise LookupError("all channel numbers 0x4000..0x4fff are in use")

    def unbind(self, peer: Address) -> None:
        """Stop refreshing the channel of ``peer``; it expires by itself."""
        entry = self._by_peer.get(peer)
        if entry is None:
            return
        entry.wanted = False
        entry.request_at = None
        if not entry.bound and entry.transaction_id is None:
            self._remove(entry)
        self._next = None

    def sent(self, entry: Channel, transaction_id: bytes) -> None:
        """Record the request in flight for ``entry``."""
        entry.transaction_id = transaction_id
        entry.request_at = None
        self._next = None

    def finished(self, entry: Channel) -> bool:
        """Clear the request in flight; return whether ``entry`` is current."""
        current = self._by_number.get(entry.number) is entry
        entry.transaction_id = None
        self._next = None
        return current

    def confirmed(self, entry: Channel, now: float) -> bool:
        """Record a ChannelBind success; return whether the binding is new."""
        first = not entry.bound
        entry.expires_at = now + CHANNEL_LIFETIME
        entry.request_at = (
            now + CHANNEL_LIFETIME - CHANNEL_REFRESH_MARGIN if entry.wanted else None
        )
        self.bound_by_peer[entry.peer] = entry.number
        self._next = None
        return first

    def retry(self, entry: Channel, at: float) -> None:
        """Plan the next ChannelBind for ``entry`` at ``at``."""
        if entry.wanted:
            entry.request_at = at
        self._next = None

    def discard(self, entry: Channel) -> None:
        """Remove an entry that was never bound (its bind failed)."""
        if self._by_number.get(entry.number) is entry:
            self._remove(entry)
        self._next = None

    def _remove(self, entry: Channel) -> None:
        del self._by_number[entry.number]
        self.peer_by_number.pop(entry.number, None)
        if self._by_peer.get(entry.peer) is entry:
            del self._by_peer[entry.peer]
        if self.bound_by_peer.get(entry.peer) == entry.number:
            del self.bound_by_peer[entry.peer]

    def expired(self, now: float) -> list[Channel]:
        """Remove and return the bindings whose lifetime has ended."""
        gone = [
            e
            for e in self._by_number.values()
            if e.expires_at is not None and e.expires_at <= now
        ]
        for entry in gone:
            self._remove(entry)
            self._quarantine[entry.number] = (entry.peer, now + CHANNEL_QUARANTINE)
        if gone:
            self._next = None
        return gone

    def due(self, now: float) -> list[Channel]:
        """Return the entries whose next ChannelBind is due."""
        return [
            e
            for e in self._by_number.values()
            if e.request_at is not None
            and e.request_at <= now
            and e.transaction_id is None
        ]

    def next_deadline(self) -> float:
        """Return the earliest request or expiry time, inf when none."""
        if self._next is None:
            self._next = min(
                (
                    _earliest(e.request_at, e.expires_at)
                    for e in self._by_number.values()
                ),
                default=math.inf,
            )
        return self._next

    def reset(self) -> None:
        """Forget the server state for a new allocation.

        Wanted channels keep their numbers with no request planned, until
        ``schedule_unconfirmed``; the others are dropped, and the quarantine
        is cleared because it belonged to the old allocation.
        """
        for entry in list(self._by_number.values()):
            entry.transaction_id = None
            entry.expires_at = None
            entry.request_at = None
            if not entry.wanted:
                self._remove(entry)
        self.bound_by_peer.clear()
        self._quarantine.clear()
        self._next = None

    def schedule_unconfirmed(self, now: float) -> None:
        """Make every wanted entry without a request or a binding due."""
        for entry in self._by_number.values():
            if (
                entry.wanted
                and not entry.bound
                and entry.transaction_id is None
                and entry.request_at is None
            ):
                entry.request_at = now
        self._next = None
