"""Type stub for the compiled batch codec, ``rice_fast.stun._batch``.

The public API is ``rice_fast.stun.batch``, which allocates the output
arrays and wraps them; these functions write into arrays they are given.
"""

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from rice_fast.stun._codec import IntegrityKey

KIND_OTHER: Final[int]
KIND_STUN: Final[int]
KIND_CHANNEL_DATA: Final[int]

_Buffer = npt.NDArray[np.uint8] | bytes | bytearray | memoryview
_Index = npt.NDArray[np.int64] | npt.NDArray[np.int32]
_Flags = npt.NDArray[np.bool_] | npt.NDArray[np.uint8]

def classify_into(
    buffer: _Buffer,
    offsets: _Index,
    lengths: _Index,
    kind: npt.NDArray[np.uint8],
    message_class: npt.NDArray[np.uint8],
    method: npt.NDArray[np.uint16],
    transaction_id_offset: npt.NDArray[np.int64],
    valid: _Flags,
    channel: npt.NDArray[np.uint16],
    payload_offset: npt.NDArray[np.int64],
    payload_length: npt.NDArray[np.int32],
) -> int:
    """Classify each datagram into the eight output arrays; return the count."""

def check_fingerprint_into(
    buffer: _Buffer, offsets: _Index, lengths: _Index, out: _Flags
) -> int:
    """Write whether each datagram is framed STUN with a valid FINGERPRINT."""

def check_integrity_into(
    buffer: _Buffer,
    offsets: _Index,
    lengths: _Index,
    keys: IntegrityKey | Sequence[IntegrityKey],
    key_index: _Index | None,
    out: _Flags,
) -> int:
    """Write whether each datagram is framed STUN whose integrity verifies."""
