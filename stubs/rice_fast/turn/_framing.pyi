"""Type stub for the compiled TURN framing module, ``rice_fast.turn._framing``."""

from typing import Final

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

MIN_CHANNEL: Final[int]
MAX_CHANNEL: Final[int]
MAX_LEGACY_CHANNEL: Final[int]
FRAME_STUN: Final[int]
FRAME_CHANNEL_DATA: Final[int]

def encode_channel_data(
    channel: int, payload: Buffer, stream: bool = False
) -> bytes: ...
def encode_channel_data_into(
    buffer: Buffer, offset: int, channel: int, payload: Buffer, stream: bool = False
) -> int: ...
def decode_channel_data(data: Buffer) -> tuple[int, memoryview]: ...
def channel_data_payload(data: Buffer) -> tuple[int, bytes]: ...
def is_channel_data(data: Buffer) -> bool: ...
def decode_channel_data_batch(
    buffer: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
) -> tuple[
    npt.NDArray[np.uint16],
    npt.NDArray[np.int64],
    npt.NDArray[np.int32],
    npt.NDArray[np.bool_],
]: ...
def encode_channel_data_batch(
    channels: npt.NDArray[np.uint16],
    payloads: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    stream: bool = False,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...

class StreamDeframer:
    """Split a TCP or TLS byte stream into STUN and ChannelData frames."""

    frames: int
    bytes_received: int
    def __init__(self) -> None: ...
    @property
    def buffered(self) -> int: ...
    @property
    def error(self) -> Exception | None: ...
    def feed(self, data: Buffer) -> None: ...
    def next_frame(self) -> tuple[int, bytes] | None: ...
    def take_buffered(self) -> bytes: ...
    def frames_from(self, data: Buffer) -> list[tuple[int, bytes]]: ...
