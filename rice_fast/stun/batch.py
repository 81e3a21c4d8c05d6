"""Classify and verify a batch of datagrams in one call.

A relay reads many datagrams per system call (``recvmmsg``, or
``socket.recvmsg_into`` in a loop) into one ``uint8`` buffer and records
where each one starts and how long it is. The functions here take that
buffer with ``offsets`` and ``lengths`` arrays and return numpy arrays with
one entry per datagram, so the per-datagram work runs in compiled code
without the GIL and without a Python object per datagram.

``buffer`` is a 1-D C-contiguous ``uint8`` array (``bytes``, ``bytearray``
and ``memoryview`` of bytes work too). ``offsets`` and ``lengths`` are 1-D
C-contiguous arrays of one shared dtype, ``int64`` (the fast path) or
``int32``. Every datagram must lie inside the buffer. A wrong type or dtype
of any input or output array, None included, raises ``TypeError`` naming
the array. Mismatched sizes, a read-only output array or a datagram
outside the buffer raise ``ValueError`` naming the first bad entry, before
any output is written.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from rice_fast.stun import _batch
from rice_fast.stun._codec import IntegrityKey

__all__ = [
    "Classification",
    "DatagramKind",
    "check_fingerprint",
    "check_integrity",
    "classify",
]

BufferLike: TypeAlias = npt.NDArray[np.uint8] | bytes | bytearray | memoryview
IndexArray: TypeAlias = npt.NDArray[np.int64] | npt.NDArray[np.int32]


class DatagramKind(enum.IntEnum):
    """The protocol of a datagram, distinguished by its first bytes (RFC 8656 §12)."""

    OTHER = _batch.KIND_OTHER
    STUN = _batch.KIND_STUN
    CHANNEL_DATA = _batch.KIND_CHANNEL_DATA


@dataclass(frozen=True, slots=True)
class Classification:
    """Per-datagram results of ``classify``, one array entry per datagram.

    Fields:

    - ``kind`` (uint8): a ``DatagramKind`` value. STUN means the first two
      bits are 00 and bytes 4..8 are the magic cookie; ChannelData means
      the first two bits are 01 and the datagram has at least 4 bytes.
    - ``message_class`` (uint8) and ``method`` (uint16): from the STUN
      message type, 0 for other kinds.
    - ``transaction_id_offset`` (int64): absolute offset of the 12-byte
      transaction id in the buffer, or -1 when the datagram is not STUN or
      is shorter than the 20-byte header.
    - ``valid`` (bool): for STUN, whether ``rice_fast.stun.frame_error``
      accepts the framing. For ChannelData, whether the length field fits
      in the datagram. Channels 0x5000..0x7FFF, which RFC 8656 reserves but
      RFC 5766 clients still bind, count as valid. Always
      False for other kinds.
    - ``channel`` (uint16): the ChannelData channel number, 0 otherwise.
    - ``payload_offset`` (int64) and ``payload_length`` (int32): the
      ChannelData payload in the buffer, or -1 and 0 when the datagram is
      not ChannelData or its length field runs past the datagram.
    """

    kind: npt.NDArray[np.uint8]
    message_class: npt.NDArray[np.uint8]
    method: npt.NDArray[np.uint16]
    transaction_id_offset: npt.NDArray[np.int64]
    valid: npt.NDArray[np.bool_]
    channel: npt.NDArray[np.uint16]
    payload_offset: npt.NDArray[np.int64]
    payload_length: npt.NDArray[np.int32]

    @classmethod
    def empty(cls, size: int) -> Classification:
        """Allocate uninitialised arrays for ``size`` datagrams, for ``out=``."""
        if size < 0:
            raise ValueError(f"size {size} is negative")
        return cls(
            kind=np.empty(size, np.uint8),
            message_class=np.empty(size, np.uint8),
            method=np.empty(size, np.uint16),
            transaction_id_offset=np.empty(size, np.int64),
            valid=np.empty(size, np.bool_),
            channel=np.empty(size, np.uint16),
            payload_offset=np.empty(size, np.int64),
            payload_length=np.empty(size, np.int32),
        )

    def __len__(self) -> int:
        return len(self.kind)

    def head(self, count: int) -> Classification:
        """Return views of the first ``count`` entries of every array."""
        return Classification(
            kind=self.kind[:count],
            message_class=self.message_class[:count],
            method=self.method[:count],
            transaction_id_offset=self.transaction_id_offset[:count],
            valid=self.valid[:count],
            channel=self.channel[:count],
            payload_offset=self.payload_offset[:count],
            payload_length=self.payload_length[:count],
        )


# The dtypes each output array may have, by Classification field name.
_OUT_DTYPES: dict[str, tuple[type[np.generic], ...]] = {
    "kind": (np.uint8,),
    "message_class": (np.uint8,),
    "method": (np.uint16,),
    "transaction_id_offset": (np.int64,),
    "valid": (np.bool_, np.uint8),
    "channel": (np.uint16,),
    "payload_offset": (np.int64,),
    "payload_length": (np.int32,),
}
_BOOL_OUT: tuple[type[np.generic], ...] = (np.bool_, np.uint8)


def _check_inputs(buffer: object, offsets: object, lengths: object) -> None:
    """Reject None, which the compiled functions would take as an empty array."""
    for name, value in (("buffer", buffer), ("offsets", offsets), ("lengths", lengths)):
        if value is None:
            kind = (
                "a 1-D C-contiguous uint8 array (or bytes, bytearray or "
                "memoryview of bytes)"
                if name == "buffer"
                else "a 1-D C-contiguous int64 or int32 array"
            )
            raise TypeError(f"{name} must be {kind}, got None")


def _check_out_array(
    name: str, array: object, dtypes: tuple[type[np.generic], ...]
) -> None:
    """Raise TypeError unless ``array`` is a writable 1-D array of ``dtypes``."""
    if isinstance(array, np.ndarray) and array.dtype.type in dtypes:
        flags = array.flags
        if array.ndim == 1 and flags.c_contiguous:
            if not flags.writeable:
                raise ValueError(f"{name} is read-only; pass a writable array")
            return

    expected = " or ".join(np.dtype(d).name for d in dtypes)
    wanted = f"{name} must be a 1-D C-contiguous {expected} array"
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{wanted}, got {type(array).__name__}")
    if array.dtype.type not in dtypes:
        raise TypeError(f"{wanted}, got dtype {array.dtype}")
    layout = "" if array.flags.c_contiguous else " that is not C-contiguous"
    raise TypeError(f"{wanted}, got shape {array.shape}{layout}")


def _check_classification(out: object) -> Classification:
    if not isinstance(out, Classification):
        raise TypeError(
            "out must be a Classification (Classification.empty(capacity) "
            f"makes one), got {type(out).__name__}"
        )
    for field, dtypes in _OUT_DTYPES.items():
        _check_out_array(f"out.{field}", getattr(out, field), dtypes)
    return out


def _batch_size(offsets: object) -> int:
    try:
        return len(offsets)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            "offsets must be a 1-D C-contiguous int64 or int32 array, got "
            f"{type(offsets).__name__}"
        ) from None


def classify(
    buffer: BufferLike,
    offsets: IndexArray,
    lengths: IndexArray,
    *,
    out: Classification | None = None,
) -> Classification:
    """Classify every datagram of a batch as STUN, ChannelData or other.

    ``out``, when given, receives the results. Its arrays need at least one
    entry per datagram, and ``Classification.empty(capacity)`` makes them.
    The result is then ``out`` itself or, for a shorter batch, views of its
    first entries. Raises ``TypeError`` or ``ValueError`` for the invalid
    arguments listed in the module docstring.
    """
    _check_inputs(buffer, offsets, lengths)
    if out is None:
        out = Classification.empty(_batch_size(offsets))
    else:
        out = _check_classification(out)
    count = _batch.classify_into(
        buffer,
        offsets,
        lengths,
        out.kind,
        out.message_class,
        out.method,
        out.transaction_id_offset,
        out.valid,
        out.channel,
        out.payload_offset,
        out.payload_length,
    )
    if count != len(out.kind):
        return out.head(count)
    return out


def check_integrity(
    buffer: BufferLike,
    offsets: IndexArray,
    lengths: IndexArray,
    keys: IntegrityKey | Sequence[IntegrityKey],
    key_index: IndexArray | None = None,
    *,
    out: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.bool_]:
    """Verify MESSAGE-INTEGRITY (or MESSAGE-INTEGRITY-SHA256) of each datagram.

    An entry is True when the datagram is validly framed STUN and its
    integrity attribute verifies under its key, by the rule of
    ``Message.check_integrity``: MESSAGE-INTEGRITY-SHA256 when it comes
    before any attribute that RFC 8489 §14.5 requires a receiver to ignore, else
    MESSAGE-INTEGRITY. Datagrams that are not STUN, are badly framed or
    carry no integrity attribute get False.

    ``keys`` is one ``IntegrityKey`` for the whole batch, or a sequence of
    keys with ``key_index`` (int32 or int64, one entry per datagram)
    choosing the key of each datagram; -1 skips the datagram (False).
    ``key_index`` with a single ``IntegrityKey`` raises ``ValueError``.
    ``out`` is an optional bool (or uint8) array with at least one entry
    per datagram; the result is ``out`` or a view of its first entries.
    """
    _check_inputs(buffer, offsets, lengths)
    if key_index is not None and isinstance(keys, IntegrityKey):
        raise ValueError(
            "key_index needs a sequence of keys, but keys is one IntegrityKey "
            "that every datagram uses; pass keys=[key, ...] to choose a key "
            "per datagram, or leave key_index out"
        )
    if out is None:
        out = np.empty(_batch_size(offsets), np.bool_)
    else:
        _check_out_array("out", out, _BOOL_OUT)
    count = _batch.check_integrity_into(buffer, offsets, lengths, keys, key_index, out)
    if count != len(out):
        return out[:count]
    return out


def check_fingerprint(
    buffer: BufferLike,
    offsets: IndexArray,
    lengths: IndexArray,
    *,
    out: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.bool_]:
    """Verify the FINGERPRINT (CRC-32, RFC 8489 §14.7) of each datagram.

    An entry is True when the datagram is validly framed STUN whose last
    attribute is a matching FINGERPRINT. ``out`` works as in
    ``check_integrity``.
    """
    _check_inputs(buffer, offsets, lengths)
    if out is None:
        out = np.empty(_batch_size(offsets), np.bool_)
    else:
        _check_out_array("out", out, _BOOL_OUT)
    count = _batch.check_fingerprint_into(buffer, offsets, lengths, out)
    if count != len(out):
        return out[:count]
    return out
