"""Type stub for the relay's compiled forwarding path, ``rice_fast.io._relay``."""

from typing import Final

SOCKET_LISTENER: Final[int]
SOCKET_RELAY: Final[int]

Address = tuple[str, int]

class RelayEngine:
    """Forward relayed UDP datagrams in batches without Python per datagram."""

    received: int
    forwarded_to_peers: int
    forwarded_to_clients: int
    to_python: int
    truncated: int
    send_errors: int
    batches: int
    def __init__(self, batch: int = 64, slot: int = 2048) -> None: ...
    @property
    def routes(self) -> int: ...
    def add_socket(self, fd: int, kind: int) -> None: ...
    def remove_socket(self, fd: int) -> None: ...
    def set_route(
        self,
        in_fd: int,
        remote: Address,
        channel: int,
        out_fd: int,
        destination: Address,
        out_channel: int,
    ) -> None: ...
    def remove_route(self, in_fd: int, remote: Address, channel: int) -> bool: ...
    def route_counters(
        self, in_fd: int, remote: Address, channel: int
    ) -> tuple[int, int] | None: ...
    def process(
        self, fd: int, max_batches: int = 8
    ) -> list[tuple[bytes, Address]] | None: ...

def send_datagrams(fd: int, datagrams: list[tuple[bytes, Address]]) -> int: ...
def send_repeated(fd: int, data: bytes, destination: Address, count: int) -> int: ...
def drain(fd: int, limit: int = ...) -> tuple[int, int]: ...
