"""A client TLS session over memory buffers, so TURN over TLS stays sans-IO.

``ssl.SSLObject`` runs the TLS state machine between two ``ssl.MemoryBIO``
buffers: the bytes the caller received from the TCP socket go into the
incoming buffer, and whatever TLS wants to send (handshake records,
encrypted application data, alerts) comes out of the outgoing buffer. No
socket is touched here.
"""

from __future__ import annotations

import logging
import ssl

__all__ = ["TlsFailure", "TlsSession", "default_context"]

_log = logging.getLogger(__name__)

# The largest read from the SSLObject at a time; a TLS record carries at
# most 16 KiB of plaintext.
_READ_SIZE = 65536


class TlsFailure(Exception):
    """The TLS session failed: a handshake error, an alert or a bad record."""


def default_context() -> ssl.SSLContext:
    """Return a client context that checks the certificate and host name."""
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH)


class TlsSession:
    """One client-side TLS session whose records travel in ``bytes``.

    Call ``start`` once and send what ``take_output`` returns. Feed every
    chunk read from the TCP connection to ``receive``, which returns the
    decrypted application data, and send ``take_output`` again after it.
    ``send`` encrypts application data; data sent before the handshake
    completes is held and encrypted when it does. ``receive`` and ``send``
    raise ``TlsFailure`` when the session fails, after which it is unusable.
    """

    __slots__ = ("_closed", "_held", "_incoming", "_object", "_outgoing", "established")

    def __init__(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._object = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=False,
            server_hostname=server_hostname,
        )
        self._held: list[bytes] = []
        self._closed = False
        self.established = False

    @property
    def closed(self) -> bool:
        """Whether the peer closed the session or it failed."""
        return self._closed

    @property
    def version(self) -> str | None:
        """The negotiated protocol version ("TLSv1.3"), None before the handshake."""
        return self._object.version()

    def start(self) -> None:
        """Begin the handshake; the ClientHello is then in ``take_output``."""
        self._handshake()

    def take_output(self) -> bytes:
        """Return and clear the bytes TLS wants sent on the TCP connection."""
        return self._outgoing.read()

    def send(self, data: bytes) -> None:
        """Encrypt ``data``, or hold it until the handshake completes."""
        if self._closed:
            raise TlsFailure("the TLS session is closed")
        if not self.established:
            self._held.append(data)
            return
        try:
            self._object.write(data)
        except ssl.SSLError as exc:
            self._closed = True
            raise TlsFailure(f"TLS write failed: {_describe(exc)}") from None

    def receive(self, data: bytes) -> list[bytes]:
        """Decrypt bytes read from the TCP connection.

        Returns the application data they complete, possibly none. A
        close_notify from the server marks the session closed and returns
        what came before it.
        """
        if self._closed:
            return []
        self._incoming.write(data)
        if not self.established:
            self._handshake()
            if not self.established:
                return []
        chunks: list[bytes] = []
        while True:
            try:
                chunk = self._object.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self._closed = True
                break
            except ssl.SSLError as exc:
                self._closed = True
                raise TlsFailure(f"TLS record error: {_describe(exc)}") from None
            if not chunk:
                self._closed = True
                break
            chunks.append(chunk)
        return chunks

    def close(self) -> None:
        """Queue a close_notify alert, if the session is still open."""
        if self._closed or not self.established:
            self._closed = True
            return
        self._closed = True
        try:
            self._object.unwrap()
        except ssl.SSLWantReadError:
            # unwrap waits for the server's close_notify. The client does not
            # wait for it, because the caller closes the TCP connection next.
            pass
        except ssl.SSLError as exc:
            _log.debug("TLS close_notify failed: %s", _describe(exc))

    def _handshake(self) -> None:
        try:
            self._object.do_handshake()
        except ssl.SSLWantReadError:
            return
        except ssl.SSLCertVerificationError as exc:
            self._closed = True
            detail = exc.verify_message or _describe(exc)
            raise TlsFailure(f"TLS certificate verification failed: {detail}") from None
        except ssl.SSLError as exc:
            self._closed = True
            raise TlsFailure(f"TLS handshake failed: {_describe(exc)}") from None
        self.established = True
        _log.debug("TLS handshake complete (%s)", self._object.version())
        held, self._held = self._held, []
        for data in held:
            self.send(data)


def _describe(exc: ssl.SSLError) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    return str(exc)
