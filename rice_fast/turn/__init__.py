"""TURN (RFC 8656, RFC 5766, RFC 6062, RFC 6156): framing, client and server."""

from rice_fast.turn._framing import (
    FRAME_CHANNEL_DATA,
    FRAME_STUN,
    MAX_CHANNEL,
    MIN_CHANNEL,
    StreamDeframer,
    channel_data_payload,
    decode_channel_data,
    decode_channel_data_batch,
    encode_channel_data,
    encode_channel_data_batch,
    encode_channel_data_into,
    is_channel_data,
)
from rice_fast.turn.errors import ChannelDataError, FramingError, TurnError
from rice_fast.turn.server import (
    DEFAULT_DENIED,
    DropReason,
    PeerPolicy,
    TurnServer,
    TurnServerConfig,
    TurnServerStats,
)
from rice_fast.turn.server_events import FiveTuple, TurnServerEvent

__all__ = [
    "DEFAULT_DENIED",
    "DropReason",
    "FiveTuple",
    "PeerPolicy",
    "TurnServer",
    "TurnServerConfig",
    "TurnServerEvent",
    "TurnServerStats",
    "FRAME_CHANNEL_DATA",
    "FRAME_STUN",
    "MAX_CHANNEL",
    "MIN_CHANNEL",
    "ChannelDataError",
    "FramingError",
    "StreamDeframer",
    "TurnError",
    "channel_data_payload",
    "decode_channel_data",
    "decode_channel_data_batch",
    "encode_channel_data",
    "encode_channel_data_batch",
    "encode_channel_data_into",
    "is_channel_data",
]
