"""ICE (RFC 8445, RFC 8838, RFC 7675, RFC 6544): candidates, check lists, Agent.

This is the public API of the ICE layer. It has the sans-IO ``Agent`` with
its ``Stream`` and ``Component`` objects and events, and the ``Candidate``
value with its SDP form. The check list table can serve many agents at
once, and the ``Demultiplexer`` routes one socket's traffic to many agents.
"""

from rice_fast.ice._gathering import GATHER_STUN_CONFIG, TurnConfig
from rice_fast.ice.agent import MIN_TA, Agent, AgentStats
from rice_fast.ice.candidate import (
    MAX_FOUNDATION_LENGTH,
    MAX_PRIORITY,
    MAX_TCP_OTHER_PREFERENCE,
    Candidate,
    CandidateType,
    TcpType,
    candidate_priority,
    compute_foundation,
    default_type_preference,
    pair_priority,
    tcp_direction_preference,
    tcp_local_preference,
)
from rice_fast.ice.checklist import (
    CandidateArrays,
    CheckListError,
    CheckListState,
    CheckListTable,
    FormedPairs,
    FoundationIds,
    PairInfo,
    PairState,
    ReferenceCheckListTable,
    Retransmits,
    ScheduledChecks,
    form_pairs,
)
from rice_fast.ice.component import Component, IceUsageError, NotConnectedError
from rice_fast.ice.demux import Demultiplexer, DemultiplexerStats
from rice_fast.ice.errors import CandidateError, CandidateParseError, IceError
from rice_fast.ice.events import (
    AllocateSocket,
    CandidatePair,
    CandidatePairState,
    Closed,
    ComponentState,
    ComponentStateChange,
    ConsentLost,
    DataReceived,
    GatheredCandidate,
    GatheringComplete,
    IceEvent,
    RemoveSocket,
    SelectedPair,
)
from rice_fast.ice.stream import Credentials, Stream, generate_credentials

__all__ = [
    "GATHER_STUN_CONFIG",
    "MAX_FOUNDATION_LENGTH",
    "MAX_PRIORITY",
    "MAX_TCP_OTHER_PREFERENCE",
    "MIN_TA",
    "Agent",
    "AgentStats",
    "AllocateSocket",
    "Candidate",
    "CandidateArrays",
    "CandidateError",
    "CandidatePair",
    "CandidatePairState",
    "CandidateParseError",
    "CandidateType",
    "CheckListError",
    "CheckListState",
    "CheckListTable",
    "Closed",
    "Component",
    "ComponentState",
    "ComponentStateChange",
    "ConsentLost",
    "Credentials",
    "DataReceived",
    "Demultiplexer",
    "DemultiplexerStats",
    "FormedPairs",
    "FoundationIds",
    "GatheredCandidate",
    "GatheringComplete",
    "IceError",
    "IceEvent",
    "IceUsageError",
    "NotConnectedError",
    "PairInfo",
    "PairState",
    "ReferenceCheckListTable",
    "RemoveSocket",
    "Retransmits",
    "ScheduledChecks",
    "SelectedPair",
    "Stream",
    "TcpType",
    "TurnConfig",
    "candidate_priority",
    "compute_foundation",
    "default_type_preference",
    "form_pairs",
    "generate_credentials",
    "pair_priority",
    "tcp_direction_preference",
    "tcp_local_preference",
]
