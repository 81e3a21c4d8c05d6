"""Stream: one data stream of an ICE session, with its credentials.

A stream has one check list, its local and remote credentials, the remote
candidates, and one or more components. ICE restart is per stream.
"""

from __future__ import annotations

import random
import secrets
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from rice_fast.ice.candidate import Candidate
from rice_fast.ice.component import Component, IceUsageError
from rice_fast.ice.events import CandidatePair, CandidatePairState
from rice_fast.stun import IntegrityKey
from rice_fast.stun.credentials import short_term_key
from rice_fast.stun.transport import Address

if TYPE_CHECKING:
    from rice_fast.ice._paths import Route
    from rice_fast.ice.agent import Agent

__all__ = ["Credentials", "Stream", "generate_credentials"]

# RFC 8445 §5.1.1.3: ice-char is ALPHA / DIGIT / "+" / "/".
ICE_CHARS: Final = string.ascii_letters + string.digits + "+/"
# RFC 8445 §5.3: the ufrag has at least 24 bits of randomness and 4
# characters, the password at least 128 bits and 22 characters. Each
# ice-char carries 6 bits, so 8 and 24 characters give 48 and 144 bits.
UFRAG_LENGTH: Final = 8
PWD_LENGTH: Final = 24
MIN_UFRAG_LENGTH: Final = 4
MAX_UFRAG_LENGTH: Final = 256
MIN_PWD_LENGTH: Final = 22
MAX_PWD_LENGTH: Final = 256


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """An ICE username fragment and password (RFC 8445 §5.3).

    ``key`` is the short-term MESSAGE-INTEGRITY key of the password.
    Raises ``IceUsageError`` when either is too short, too long, or has
    a character outside the ice-char set.
    """

    ufrag: str
    pwd: str
    key: IntegrityKey = field(init=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        _check_ice_chars("ufrag", self.ufrag, MIN_UFRAG_LENGTH, MAX_UFRAG_LENGTH)
        _check_ice_chars("pwd", self.pwd, MIN_PWD_LENGTH, MAX_PWD_LENGTH)
        object.__setattr__(self, "key", IntegrityKey(short_term_key(self.pwd)))

    def __repr__(self) -> str:
        return f"Credentials(ufrag={self.ufrag!r}, pwd=<hidden>)"


def _check_ice_chars(name: str, value: str, minimum: int, maximum: int) -> None:
    if not isinstance(value, str):
        raise IceUsageError(f"{name} must be a str, got {type(value).__name__}")
    if not minimum <= len(value) <= maximum:
        raise IceUsageError(
            f"{name} has {len(value)} characters; RFC 8445 §5.3 and RFC 8839 "
            f"§5.4 need {minimum} to {maximum}"
        )
    if any(char not in ICE_CHARS for char in value):
        raise IceUsageError(f"{name} has a character that is not an ice-char")


def generate_credentials(rng: random.Random | None = None) -> Credentials:
    """Draw a new ufrag and password from the ice-char set.

    Uses the ``secrets`` module unless ``rng`` is given; a seeded ``rng``
    is for reproducible tests only, because its values are predictable.
    """
    if rng is None:
        ufrag = "".join(secrets.choice(ICE_CHARS) for _ in range(UFRAG_LENGTH))
        pwd = "".join(secrets.choice(ICE_CHARS) for _ in range(PWD_LENGTH))
    else:
        ufrag = "".join(rng.choice(ICE_CHARS) for _ in range(UFRAG_LENGTH))
        pwd = "".join(rng.choice(ICE_CHARS) for _ in range(PWD_LENGTH))
    return Credentials(ufrag, pwd)


@dataclass(slots=True, eq=False)
class EarlyCheck:
    """A check that arrived before the remote credentials (RFC 8445 §7.3.1.3).

    The agent responds at once, and turns it into a triggered check with
    its peer-reflexive candidate once ``set_remote_credentials`` is called.
    """

    route: Route
    component: Component
    priority: int
    use_candidate: bool
    nomination: int | None


class Stream:
    """One data stream: credentials, remote candidates, check list, components.

    Created by ``Agent.add_stream``. Typical order: ``add_component`` for
    each component and ``Component.add_local_socket`` for each socket,
    ``gather_candidates(now)``, then from signalling
    ``set_remote_credentials`` and ``add_remote_candidate`` (and, when
    trickling, ``end_of_remote_candidates``). Without trickle, add every
    remote candidate before the next ``Agent.poll`` after
    ``set_remote_credentials``: an empty check list fails at once.
    """

    def __init__(self, agent: Agent, stream_id: int, credentials: Credentials) -> None:
        self._agent = agent
        self._id = stream_id
        self._components: list[Component] = []
        self._local = credentials
        self._previous_local: list[Credentials] = []
        self._remote: Credentials | None = None
        self._remote_candidates: list[Candidate] = []
        self._end_of_remote = False
        self._gathering = False
        self._list_id = agent._checks.add_list(self)
        self._state = "idle"
        self._early: list[EarlyCheck] = []
        self._generation = 0
        self._dirty = False
        self._running_since = 0.0
        self._last_progress = 0.0
        self._prflx_learnt: dict[tuple[int, Address], int] = {}

    # Properties.

    @property
    def id(self) -> int:
        """The stream id, unique within the agent."""
        return self._id

    @property
    def components(self) -> tuple[Component, ...]:
        """The components, in id order."""
        return tuple(self._components)

    @property
    def local_credentials(self) -> Credentials:
        """The ufrag and password to signal to the peer."""
        return self._local

    @property
    def remote_credentials(self) -> Credentials | None:
        """The peer's ufrag and password, once set."""
        return self._remote

    @property
    def remote_candidates(self) -> tuple[Candidate, ...]:
        """The signalled remote candidates of the current ICE generation."""
        return tuple(self._remote_candidates)

    @property
    def local_candidates(self) -> tuple[Candidate, ...]:
        """Every component's gathered candidates, in component order."""
        return tuple(c for comp in self._components for c in comp.local_candidates)

    @property
    def checklist_state(self) -> str:
        """ "idle" (no remote credentials), "running", "completed" or "failed"."""
        return self._state

    def candidate_pairs(self) -> tuple[tuple[CandidatePair, CandidatePairState], ...]:
        """Return the current check list's pairs with their states, in check order.

        Valid pairs with a peer-reflexive local candidate appear as pairs
        of their own.
        """
        checks = self._agent._checks
        return tuple(
            (record.public, checks.state(record))
            for record in checks.pairs(self._list_id)
        )

    def component(self, component_id: int) -> Component:
        """Return the component with this id.

        Raises ``IceUsageError`` when there is none.
        """
        if not 1 <= component_id <= len(self._components):
            raise IceUsageError(
                f"stream {self._id} has no component {component_id}; it has "
                f"{len(self._components)}"
            )
        return self._components[component_id - 1]

    # Setup.

    def add_component(self) -> Component:
        """Add the next component (ids count from 1) and return it.

        Raises ``IceUsageError`` once gathering started, because the check
        list is formed per component.
        """
        if self._gathering:
            raise IceUsageError(
                f"add_component on stream {self._id} after gather_candidates; "
                "add every component first"
            )
        if len(self._components) >= 256:
            raise IceUsageError("a stream has at most 256 components (RFC 8445)")
        component = Component(self, len(self._components) + 1)
        self._components.append(component)
        return component

    def gather_candidates(self, now: float) -> None:
        """Start gathering: host candidates at once, then STUN and TURN.

        Each candidate is reported as ``GatheredCandidate`` and each
        component's end as ``GatheringComplete``. Calling it again does
        nothing. Raises ``IceUsageError`` for a stream without components.
        """
        if not self._components:
            raise IceUsageError(f"stream {self._id} has no component to gather for")
        if self._gathering:
            return
        self._gathering = True
        self._agent._session.gather_stream(self, now)

    def set_remote_credentials(self, ufrag: str, pwd: str) -> None:
        """Set the peer's ufrag and password; checks can start.

        Setting different credentials than before, without a local
        ``restart``, means the peer restarted: the check list is rebuilt
        and its remote candidates dropped, and the peer's new candidates
        must be added again. Raises ``IceUsageError`` for invalid values.
        """
        credentials = Credentials(ufrag, pwd)
        self._agent._session.set_remote_credentials(self, credentials)

    def add_remote_candidate(self, candidate: Candidate) -> None:
        """Add one remote candidate (trickled or from the offer or answer).

        mDNS candidates (``.local`` names) are kept but never paired: resolve
        them first and add the resolved candidate. Raises ``IceUsageError``
        for a component this stream does not have, and after
        ``end_of_remote_candidates``.
        """
        self._agent._session.add_remote_candidate(self, candidate)

    def end_of_remote_candidates(self) -> None:
        """Record that the peer will signal no more candidates (RFC 8838 §13).

        Only now can a trickle check list be declared failed.
        """
        self._end_of_remote = True
        self._dirty = True

    def restart(self, now: float) -> None:
        """Start an ICE restart of this stream (RFC 8445 §9).

        New local credentials are drawn (read ``local_credentials`` and
        signal them), the remote credentials and candidates are dropped,
        and the check list is rebuilt once ``set_remote_credentials`` gives
        the peer's new ones. Local candidates are kept and reported again
        with ``GatheredCandidate`` and ``GatheringComplete``. A selected
        pair keeps carrying data, and consent checks under the previous
        credentials keep working, until the restart selects a new pair.
        """
        self._agent._session.restart_stream(self, now)
