"""Demultiplexer: many ICE agents behind one socket, as an SFU needs.

A server that gives every peer its own ICE session on one UDP port sees
all of their packets on that socket. ``Demultiplexer`` routes each one to
the agent it is for:

1. A STUN request or indication with USERNAME goes to the agent whose
   local ufrag is the part of USERNAME before the colon (RFC 8445 §7.3:
   the receiver's ufrag comes first). Ufrags of previous ICE generations
   are kept while the agent still accepts them.
2. A STUN response goes to the agent that sent the request with that
   transaction id; the demultiplexer learns the ids from the transmits it
   hands out.
3. Anything else (application data, keepalives without USERNAME, TURN
   traffic) goes to the agent that last sent to that remote address on
   that local socket, also learnt from the transmits.

Input that matches no agent is dropped and counted. Routing trusts
nothing it cannot check: the chosen agent still authenticates every STUN
message and accepts data only on routes its checks validated.

Call order: ``add_agent`` for each session, then the usual loop through
the demultiplexer instead of the agents: ``handle_data``, ``poll`` until
``WaitUntil`` or None, and ``poll_transmit`` until None. After calling an
agent directly in a way that queues events or transmits (gathering,
remote candidates, ``close``), call ``wake(agent)`` so that the next
``poll`` visits it. ``Component.send`` needs no wake: its Transmit goes
straight to the caller.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from rice_fast.ice.agent import Agent
from rice_fast.ice.component import IceUsageError
from rice_fast.ice.events import DataReceived, IceEvent
from rice_fast.stun import is_stun, parse
from rice_fast.stun.errors import StunParseError
from rice_fast.stun.transport import Address, Transmit, TransportType, WaitUntil

__all__ = ["Demultiplexer", "DemultiplexerStats"]

_log = logging.getLogger(__name__)

DEFAULT_MAX_TRANSACTIONS: Final = 65_536
"""Request transaction ids remembered for routing responses (oldest dropped)."""


@dataclass(frozen=True, slots=True)
class DemultiplexerStats:
    """Counters of a Demultiplexer: inputs routed per rule, inputs dropped."""

    routed_by_ufrag: int = 0
    routed_by_transaction: int = 0
    routed_by_address: int = 0
    dropped_malformed: int = 0
    dropped_unknown_ufrag: int = 0
    dropped_unroutable: int = 0


class Demultiplexer:
    """Route the traffic of shared sockets to the agents using them.

    See the module docstring for the routing rules and the call order.
    ``max_transactions`` bounds the table of request transaction ids.
    """

    def __init__(self, *, max_transactions: int = DEFAULT_MAX_TRANSACTIONS) -> None:
        if max_transactions < 1:
            raise IceUsageError(
                f"max_transactions must be at least 1, got {max_transactions}"
            )
        self._max_transactions = max_transactions
        self._agents: dict[int, Agent] = {}
        self._ufrags: dict[str, Agent] = {}
        self._agent_ufrags: dict[int, set[str]] = {}
        self._transactions: OrderedDict[bytes, Agent] = OrderedDict()
        self._by_address: dict[tuple[TransportType, Address, Address], Agent] = {}
        self._deadlines: list[tuple[float, int, int]] = []
        self._seq = itertools.count()
        self._awake: dict[int, Agent] = {}
        self._sending: dict[int, Agent] = {}
        self._counters: dict[str, int] = dict.fromkeys(DemultiplexerStats.__slots__, 0)

    # Agents.

    @property
    def agents(self) -> tuple[Agent, ...]:
        """The agents, in the order they were added."""
        return tuple(self._agents.values())

    @property
    def stats(self) -> DemultiplexerStats:
        """A snapshot of the counters."""
        return DemultiplexerStats(**self._counters)

    def add_agent(self, agent: Agent) -> None:
        """Start routing to ``agent``.

        Raises ``IceUsageError`` when the agent is already added or one of
        its ufrags is taken by another agent.
        """
        key = id(agent)
        if key in self._agents:
            raise IceUsageError("the agent is already in this Demultiplexer")
        for ufrag in agent.local_ufrags():
            if ufrag in self._ufrags:
                raise IceUsageError(f"ufrag {ufrag!r} is used by another agent")
        self._agents[key] = agent
        self._agent_ufrags[key] = set()
        self._refresh(agent)
        agent.set_ufrag_observer(self._refresh)
        self.wake(agent)

    def remove_agent(self, agent: Agent) -> None:
        """Stop routing to ``agent`` and forget what was learnt about it."""
        key = id(agent)
        if self._agents.pop(key, None) is None:
            return
        agent.set_ufrag_observer(None)
        for ufrag in self._agent_ufrags.pop(key, set()):
            if self._ufrags.get(ufrag) is agent:
                del self._ufrags[ufrag]
        for address, owner in list(self._by_address.items()):
            if owner is agent:
                del self._by_address[address]
        for transaction_id, owner in list(self._transactions.items()):
            if owner is agent:
                del self._transactions[transaction_id]
        self._awake.pop(key, None)
        self._sending.pop(key, None)

    def wake(self, agent: Agent) -> None:
        """Make the next ``poll`` and ``poll_transmit`` visit ``agent``."""
        key = id(agent)
        if key in self._agents:
            self._awake[key] = agent
            self._sending[key] = agent

    def _refresh(self, agent: Agent) -> None:
        key = id(agent)
        if key not in self._agents:
            return
        current = set(agent.local_ufrags())
        old = self._agent_ufrags.get(key, set())
        for ufrag in old - current:
            if self._ufrags.get(ufrag) is agent:
                del self._ufrags[ufrag]
        for ufrag in current - old:
            owner = self._ufrags.get(ufrag)
            if owner is not None and owner is not agent:
                _log.warning(
                    "ufrag %r is used by two agents; routing it to the newer", ufrag
                )
            self._ufrags[ufrag] = agent
        self._agent_ufrags[key] = current

    # Input.

    def handle_data(
        self,
        transport: TransportType,
        local: Address,
        remote: Address,
        data: bytes,
        now: float,
    ) -> tuple[Agent, DataReceived] | None:
        """Route one datagram or TCP read; return the data an agent accepted.

        Never raises for the content of ``data``.
        """
        agent = self._route(transport, local, remote, data)
        if agent is None:
            return None
        key = id(agent)
        self._awake[key] = agent
        self._sending[key] = agent
        received = agent.handle_data(transport, local, remote, data, now)
        if received is None:
            return None
        return agent, received

    def _route(
        self, transport: TransportType, local: Address, remote: Address, data: bytes
    ) -> Agent | None:
        counters = self._counters
        if transport is TransportType.UDP and data and data[0] <= 3 and is_stun(data):
            message_class = ((data[0] & 0x01) << 1) | ((data[1] >> 4) & 0x01)
            if message_class >= 2:
                agent = self._transactions.pop(data[8:20], None)
                if agent is not None:
                    counters["routed_by_transaction"] += 1
                    return agent
            else:
                try:
                    username = parse(data).username()
                except StunParseError as exc:
                    counters["dropped_malformed"] += 1
                    _log.debug("dropped malformed STUN from %s: %s", remote, exc)
                    return None
                if username is not None:
                    agent = self._ufrags.get(username.partition(":")[0])
                    if agent is None:
                        counters["dropped_unknown_ufrag"] += 1
                        _log.debug("dropped STUN from %s: unknown ufrag", remote)
                        return None
                    counters["routed_by_ufrag"] += 1
                    return agent
        agent = self._by_address.get((transport, local, remote))
        if agent is None:
            counters["dropped_unroutable"] += 1
            _log.debug(
                "dropped %d bytes from %s: no agent for the address", len(data), remote
            )
            return None
        counters["routed_by_address"] += 1
        return agent

    # Output.

    def poll(self, now: float) -> tuple[Agent, IceEvent] | WaitUntil | None:
        """Return the next event of any agent, or the earliest deadline.

        Visits the agents that got input or a ``wake`` and those whose own
        deadline has passed. Returns None when no agent has a deadline.
        """
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, _, key = heapq.heappop(deadlines)
            agent = self._agents.get(key)
            if agent is not None:
                self._awake[key] = agent
        while self._awake:
            key, agent = next(iter(self._awake.items()))
            result = agent.poll(now)
            self._sending[key] = agent
            if isinstance(result, IceEvent):
                return agent, result
            del self._awake[key]
            if isinstance(result, WaitUntil):
                heapq.heappush(deadlines, (result.deadline, next(self._seq), key))
        while deadlines:
            deadline, _, key = deadlines[0]
            if key in self._agents:
                return WaitUntil(deadline)
            heapq.heappop(deadlines)
        return None

    def poll_transmit(self, now: float) -> Transmit | None:
        """Return the next message any agent has to send, or None."""
        sending = self._sending
        while sending:
            key, agent = next(iter(sending.items()))
            transmit = agent.poll_transmit(now)
            if transmit is None:
                del sending[key]
                continue
            self._learn(agent, transmit)
            return transmit
        return None

    def _learn(self, agent: Agent, transmit: Transmit) -> None:
        self._by_address[
            (transmit.transport, transmit.source, transmit.destination)
        ] = agent
        data = transmit.data
        if (
            transmit.transport is TransportType.UDP
            and len(data) >= 20
            and data[0] & 0x01 == 0
            and data[1] & 0x10 == 0
            and is_stun(data)
        ):
            transactions = self._transactions
            transactions[data[8:20]] = agent
            if len(transactions) > self._max_transactions:
                transactions.popitem(last=False)
