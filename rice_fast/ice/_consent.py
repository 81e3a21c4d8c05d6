"""Selected paths: consent freshness (RFC 7675) and keepalives (RFC 8445 §11).

Once a component has a selected pair, the agent sends an authenticated
Binding request on it every 4 to 6 s (5 s randomized by +/-20 %, as RFC
7675 §5.1 requires) and records each success response. Thirty seconds
without one is consent lost: the agent stops sending on the pair and the
component fails. Consent requests are ordinary connectivity checks without
USE-CANDIDATE, retransmitted at 0.5, 1.5 and 3.5 s after the first send;
a response to any of them still counts until 30 s have passed.

Keepalives are Binding indications, sent when nothing else went out on
the pair for 15 s. With consent freshness on, the consent requests keep
the pair busy, so indications appear only when consent is off (ICE-lite
agents, or ``consent_freshness=False``).

Each selected path keeps the credentials of the ICE generation that
selected it, so consent keeps working across an ICE restart until the
restart selects a new pair.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from rice_fast.ice._checks import Transaction, TransactionKind
from rice_fast.ice._paths import Route
from rice_fast.ice.events import CandidatePair
from rice_fast.stun import IntegrityKey, Message, MessageBuilder, new_transaction_id
from rice_fast.stun._constants import MessageClass, Method, message_type

if TYPE_CHECKING:
    from rice_fast.ice.agent import Agent
    from rice_fast.ice.component import Component
    from rice_fast.ice.stream import Stream

__all__ = [
    "CONSENT_INTERVAL",
    "CONSENT_TIMEOUT",
    "KEEPALIVE_INTERVAL",
    "Consent",
    "SelectedPath",
]

_log = logging.getLogger(__name__)

CONSENT_INTERVAL: Final = 5.0
"""Mean time in seconds between consent requests (RFC 7675 §5.1)."""

CONSENT_JITTER: Final = 0.2
"""Each interval is CONSENT_INTERVAL times a uniform factor in 1 +/- this."""

CONSENT_TIMEOUT: Final = 30.0
"""Seconds without a consent response after which consent is lost."""

KEEPALIVE_INTERVAL: Final = 15.0
"""Idle seconds on the selected pair before a keepalive (RFC 8445 §11, Tr)."""

CONSENT_RETRANSMITS: Final = (0.5, 1.5, 3.5)
"""Retransmission times of a consent request after its first send."""

_BINDING_INDICATION: Final = message_type(Method.BINDING, MessageClass.INDICATION)


@dataclass(slots=True, eq=False)
class SelectedPath:
    """A component's selected pair, the route it uses and its consent state.

    ``username``, ``remote_key`` and ``priority`` are what consent requests
    carry: the credentials of the generation that selected the pair.
    ``nomination`` is the NOMINATION value of a renomination, if any.
    """

    stream: Stream
    component: Component
    pair: CandidatePair
    route: Route
    username: str
    remote_key: IntegrityKey
    priority: int
    generation: int
    pair_priority: int
    nomination: int | None
    last_sent: float
    last_consent: float
    next_consent: float = math.inf
    lost: bool = False
    stopped: bool = False
    timer_generation: int = 0


class Consent:
    """Runs consent requests, keepalives and consent expiry for an agent."""

    def __init__(self, agent: Agent, *, enabled: bool) -> None:
        self._agent = agent
        self.enabled = enabled

    def start(self, path: SelectedPath, now: float) -> None:
        """Begin consent and keepalives on a newly selected path."""
        path.last_consent = now
        if self.enabled:
            path.next_consent = now + self._interval()
        self._schedule(path)

    def stop(self, path: SelectedPath) -> None:
        """Stop every timer of a path that is no longer selected."""
        path.stopped = True
        path.timer_generation += 1
        agent = self._agent
        for txn in list(agent._transactions.values()):
            if txn.consent_path is path:
                agent._finish_transaction(txn)

    def fire(self, path: SelectedPath, now: float) -> None:
        """Handle a due timer of ``path``: expiry, consent request, keepalive."""
        if path.stopped or path.lost:
            return
        if self.enabled and now >= path.last_consent + CONSENT_TIMEOUT:
            self._lose(path, now)
            return
        if self.enabled and now >= path.next_consent:
            self._send_request(path, now)
            path.next_consent = now + self._interval()
        if now >= path.last_sent + KEEPALIVE_INTERVAL:
            self._send_keepalive(path, now)
        self._schedule(path)

    def on_response(
        self, txn: Transaction, route: Route, message: Message, now: float
    ) -> None:
        """Record a consent response; the caller checked its integrity."""
        path = txn.consent_path
        agent = self._agent
        agent._finish_transaction(txn)
        if not isinstance(path, SelectedPath) or path.stopped or path.lost:
            return
        if route.remote != path.route.remote or route.local != path.route.local:
            _log.debug("consent response from %s on the wrong path", route.remote)
            return
        if message.is_success:
            path.last_consent = now
            return
        error = message.error_code()
        # A role conflict on a consent request is resolved as for a check
        # (RFC 8445 §7.2.5.1); consent itself is not refreshed.
        if (
            error is not None
            and error[0] == 487
            and txn.controlling == agent._controlling
        ):
            agent._set_role(not txn.controlling)

    def next_request_due(self, path: SelectedPath) -> float:
        """Return the path's next timer deadline."""
        deadline = path.last_sent + KEEPALIVE_INTERVAL
        if self.enabled:
            deadline = min(
                deadline, path.next_consent, path.last_consent + CONSENT_TIMEOUT
            )
        return deadline

    # Internals.

    def _interval(self) -> float:
        factor = self._agent._rng.uniform(1 - CONSENT_JITTER, 1 + CONSENT_JITTER)
        return CONSENT_INTERVAL * factor

    def _schedule(self, path: SelectedPath) -> None:
        path.timer_generation += 1
        self._agent._push_timer(
            self.next_request_due(path), path, path.timer_generation
        )

    def _send_request(self, path: SelectedPath, now: float) -> None:
        agent = self._agent
        transaction_id = new_transaction_id()
        data = agent._checker.build_request(
            transaction_id,
            path.username,
            path.remote_key,
            path.priority,
            use_candidate=False,
        )
        schedule = [now + delay for delay in CONSENT_RETRANSMITS]
        schedule.append(now + CONSENT_TIMEOUT)
        txn = Transaction(
            transaction_id=transaction_id,
            kind=TransactionKind.CONSENT,
            pair=None,
            request=data,
            key=path.remote_key,
            controlling=agent._controlling,
            use_candidate=False,
            priority=path.priority,
            started=now,
            schedule=schedule,
            retransmit=not path.route.transport.reliable,
            consent_path=path,
        )
        agent._start_transaction(txn, path.route, now)
        path.last_sent = now

    def _send_keepalive(self, path: SelectedPath, now: float) -> None:
        builder = MessageBuilder(_BINDING_INDICATION, new_transaction_id())
        data = builder.finish(None, fingerprint=True)
        self._agent._send_route(path.route, data, now)
        self._agent._stats["keepalives_sent"] += 1
        path.last_sent = now

    def _lose(self, path: SelectedPath, now: float) -> None:
        path.lost = True
        _log.debug(
            "consent lost on stream %d component %d after %.1f s without a response",
            path.stream.id,
            path.component.id,
            now - path.last_consent,
        )
        self.stop(path)
        self._agent._session.path_lost(path, now, consent=True)
