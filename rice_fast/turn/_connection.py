"""One socket of a TurnClient to its server: byte handling under the protocol.

A ``ServerConnection`` contains what is specific to one local socket: the
``StunAgent`` that runs its transactions (a data connection uses the
control connection's agent), the TLS session over TCP, the framing of the
byte stream, and the state of an RFC 6062 data connection, whose stream
carries one STUN exchange (ConnectionBind) and then raw peer bytes.
"""

from __future__ import annotations

import enum
import struct
import types
from collections.abc import Iterator
from typing import Any, Final

from rice_fast.stun import HEADER_SIZE, MAGIC_COOKIE
from rice_fast.stun.agent import StunAgent
from rice_fast.stun.transport import Address, Transmit, TransportType
from rice_fast.turn._framing import FRAME_CHANNEL_DATA, FRAME_STUN, StreamDeframer
from rice_fast.turn._tls import TlsSession
from rice_fast.turn.events import PeerData

__all__ = [
    "DataMode",
    "FrameError",
    "ServerConnection",
    "new_peer_data",
    "new_transmit",
]

_HEADER: Final = struct.Struct("!HHI")


def _slot_setters(cls: type, fields: tuple[str, ...]) -> tuple[Any, ...] | None:
    """Return the slot descriptors' ``__set__`` of a slotted dataclass, or None."""
    setters = []
    for name in fields:
        descriptor = cls.__dict__.get(name)
        if not isinstance(descriptor, types.MemberDescriptorType):
            return None
        setters.append(descriptor.__set__)
    return tuple(setters)


_TRANSMIT_SETTERS = _slot_setters(
    Transmit, ("transport", "source", "destination", "data")
)
_PEER_DATA_SETTERS = _slot_setters(PeerData, ("peer", "data"))


def new_transmit(
    transport: TransportType, source: Address, destination: Address, data: bytes
) -> Transmit:
    """Build a ``Transmit`` as its constructor does, in about 60 % of the time.

    A frozen dataclass's ``__init__`` goes through ``object.__setattr__``
    for each field; writing the slots through their descriptors gives the
    same object. Used on the per-packet send path.
    """
    setters = _TRANSMIT_SETTERS
    if setters is None:
        return Transmit(transport, source, destination, data)
    transmit = _new_object(Transmit)
    setters[0](transmit, transport)
    setters[1](transmit, source)
    setters[2](transmit, destination)
    setters[3](transmit, data)
    return transmit


def new_peer_data(peer: Address, data: bytes) -> PeerData:
    """Build a ``PeerData`` event the way ``new_transmit`` builds a Transmit."""
    setters = _PEER_DATA_SETTERS
    if setters is None:
        return PeerData(peer, data)
    event = _new_object(PeerData)
    setters[0](event, peer)
    setters[1](event, data)
    return event


_new_object: Final = object.__new__


class FrameError(Exception):
    """The byte stream from the server cannot be split into messages."""


class DataMode(enum.Enum):
    """Where an RFC 6062 data connection is in its life."""

    BINDING = "binding"
    """Before the ConnectionBind response: the stream carries STUN."""

    AWAITING_RESULT = "awaiting-result"
    """The response frame has been read; later bytes are peer data, held
    until the client has processed the response."""

    RAW = "raw"
    """ConnectionBind succeeded: every byte is peer data."""


class ServerConnection:
    """A control or data connection from one local address to the server.

    ``frames(data)`` turns received bytes into ``(kind, frame)`` pairs, kind
    ``FRAME_STUN`` or ``FRAME_CHANNEL_DATA``, or ``FRAME_RAW`` for peer
    bytes on a bound data connection. ``wrap(data)`` returns the bytes to
    write for one outgoing message (encrypted over TLS). Both raise
    ``TlsFailure`` (from ``_tls``) or ``FrameError`` when the connection
    is beyond repair.
    """

    FRAME_RAW: Final = 0

    __slots__ = (
        "_buffer",
        "_deframer",
        "agent",
        "data_mode",
        "held",
        "local",
        "server",
        "tls",
        "transport",
    )

    def __init__(
        self,
        transport: TransportType,
        local: Address,
        server: Address,
        agent: StunAgent,
        tls: TlsSession | None = None,
        *,
        data_connection: bool = False,
    ) -> None:
        self.transport = transport
        self.local = local
        self.server = server
        self.agent = agent
        self.tls = tls
        self.data_mode: DataMode | None = DataMode.BINDING if data_connection else None
        self.held = bytearray()
        self._buffer = bytearray()
        self._deframer: StreamDeframer | None = None
        if transport.reliable and not data_connection:
            self._deframer = StreamDeframer()

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame waiting for the rest of the stream."""
        if self._deframer is not None:
            return self._deframer.buffered
        return len(self._buffer)

    def wrap(self, data: bytes) -> bytes:
        """Return the bytes to send for ``data``.

        Over TLS before the handshake completes this is b"", and the TLS
        session sends ``data`` once it can.
        """
        tls = self.tls
        if tls is None:
            return data
        tls.send(data)
        return tls.take_output()

    def take_tls_output(self) -> bytes:
        """Return handshake or alert bytes the TLS session wants sent."""
        if self.tls is None:
            return b""
        return self.tls.take_output()

    def frames(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        """Yield the frames that ``data`` completes, in order."""
        if self.transport is TransportType.UDP:
            kind = FRAME_CHANNEL_DATA if data and data[0] & 0xC0 == 0x40 else FRAME_STUN
            yield kind, data
            return
        chunks = self.tls.receive(data) if self.tls is not None else [data]
        for chunk in chunks:
            yield from self._stream_frames(chunk)

    def _stream_frames(self, chunk: bytes) -> Iterator[tuple[int, bytes]]:
        mode = self.data_mode
        if mode is DataMode.RAW:
            yield self.FRAME_RAW, chunk
            return
        if mode is DataMode.AWAITING_RESULT:
            self.held += chunk
            return
        if mode is DataMode.BINDING:
            yield from self._binding_frames(chunk)
            return
        deframer = self._deframer
        assert deframer is not None
        deframer.feed(chunk)
        while True:
            try:
                frame = deframer.next_frame()
            except ValueError as exc:
                raise FrameError(str(exc)) from None
            if frame is None:
                return
            yield frame

    def _binding_frames(self, chunk: bytes) -> Iterator[tuple[int, bytes]]:
        """Read STUN frames until the ConnectionBind response, then hold bytes.

        RFC 6062 §4.3: once the ConnectionBind succeeds, the data connection
        carries only the peer's bytes, and they may follow the response in
        the same read.
        """
        buffer = self._buffer
        buffer += chunk
        while self.data_mode is DataMode.BINDING and len(buffer) >= HEADER_SIZE:
            first, length, cookie = _HEADER.unpack_from(buffer)
            if first & 0xC000 or cookie != MAGIC_COOKIE:
                raise FrameError(
                    "the data connection sent bytes that are not STUN before "
                    "the ConnectionBind response"
                )
            end = HEADER_SIZE + length
            if len(buffer) < end:
                return
            frame = bytes(buffer[:end])
            del buffer[:end]
            if first & 0x0110 == 0x0100:
                # A success response ends the exchange. An error response
                # does not: the agent resends after a 401 or 438.
                self.data_mode = DataMode.AWAITING_RESULT
                self.held += buffer
                buffer.clear()
            yield FRAME_STUN, frame

    def bind_succeeded(self) -> bytes:
        """Enter raw mode and return the peer bytes that arrived meanwhile."""
        self.data_mode = DataMode.RAW
        held = bytes(self.held)
        self.held.clear()
        return held
