"""Errors raised by the asyncio STUN drivers."""

from __future__ import annotations

from rice_fast.io._address import Address, format_address

__all__ = [
    "StunConnectionError",
    "StunErrorResponse",
    "StunIOError",
    "StunTimeoutError",
]


def _describe(server: Address | None, transport: str) -> str:
    if server is None:
        return f"STUN server over {transport}"
    return f"STUN server {format_address(server)} over {transport}"


class StunIOError(Exception):
    """Base class of the errors a STUN exchange over a socket raises.

    ``server`` is the remote address involved, when there is one, and
    ``transport`` the transport name ("udp" or "tcp").
    """

    server: Address | None
    transport: str

    def __init__(
        self, message: str, *, server: Address | None = None, transport: str = "udp"
    ) -> None:
        super().__init__(message)
        self.server = server
        self.transport = transport


class StunTimeoutError(StunIOError, TimeoutError):
    """A request that got no response in time.

    ``timeout`` is the caller's time limit in seconds, or None when the
    agent's own retransmission schedule ran out.
    """

    timeout: float | None

    def __init__(
        self,
        server: Address | None,
        *,
        transport: str = "udp",
        method: str = "Binding",
        timeout: float | None = None,
    ) -> None:
        if timeout is None:
            detail = "after the last retransmission"
        else:
            detail = f"within {timeout:g} s"
        super().__init__(
            f"{method} request timed out: no response from "
            f"{_describe(server, transport)} {detail}",
            server=server,
            transport=transport,
        )
        self.timeout = timeout


class StunErrorResponse(StunIOError):
    """A final STUN error response, with its ERROR-CODE ``code`` and ``reason``.

    ``response`` is the parsed error response (a ``rice_fast.stun.Message``),
    or None when the error was built locally.
    """

    code: int
    reason: str
    response: object | None

    def __init__(
        self,
        code: int,
        reason: str,
        *,
        server: Address | None = None,
        transport: str = "udp",
        method: str = "Binding",
        response: object | None = None,
    ) -> None:
        error = f"{code} {reason}" if reason else str(code)
        super().__init__(
            f"{_describe(server, transport)} rejected the {method} request "
            f"with error {error}",
            server=server,
            transport=transport,
        )
        self.code = code
        self.reason = reason
        self.response = response


class StunConnectionError(StunIOError):
    """A socket or connection that failed, closed or could not be opened."""
