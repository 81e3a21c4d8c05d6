"""asyncio drivers for the sans-IO state machines.

``StunClient`` runs a ``StunAgent`` over one UDP socket or TCP connection,
``binding_request`` (and its blocking form ``stun_binding``) requests the
mapped address from a STUN server, and ``serve_stun`` runs a ``StunServer``
on a UDP socket and a TCP listener. ``TurnConnection`` runs a
``TurnClient`` over UDP, TCP or TLS, and ``RelayServer`` is the TURN relay
with its compiled forwarding path. The sans-IO clock ``now`` is the event
loop's ``loop.time()``.
"""

from rice_fast.io._address import Address, format_address, parse_address
from rice_fast.io._client import StunClient
from rice_fast.io._driver import AgentDriver
from rice_fast.io._ice import IceConnection, IceConnectionError, LocalCredentials
from rice_fast.io._interfaces import InterfaceAddress, interface_addresses
from rice_fast.io._relay_server import RelayConfig, RelayServer, RelayStats
from rice_fast.io._server import StunService, serve_stun
from rice_fast.io._stun import BindingResult, binding_request, stun_binding
from rice_fast.io._tcp import StunFramingError, StunStreamDeframer
from rice_fast.io._timer import DeadlineTimer
from rice_fast.io._turn import TurnConnection
from rice_fast.io.errors import (
    StunConnectionError,
    StunErrorResponse,
    StunIOError,
    StunTimeoutError,
)

__all__ = [
    "Address",
    "AgentDriver",
    "BindingResult",
    "DeadlineTimer",
    "IceConnection",
    "IceConnectionError",
    "InterfaceAddress",
    "LocalCredentials",
    "RelayConfig",
    "RelayServer",
    "RelayStats",
    "StunClient",
    "StunConnectionError",
    "StunErrorResponse",
    "StunFramingError",
    "StunIOError",
    "StunService",
    "StunStreamDeframer",
    "StunTimeoutError",
    "TurnConnection",
    "binding_request",
    "format_address",
    "interface_addresses",
    "parse_address",
    "serve_stun",
    "stun_binding",
]
