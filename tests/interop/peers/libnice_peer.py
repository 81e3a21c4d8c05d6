"""An ICE peer built on libnice, driven by JSON lines on stdin and stdout.

Run it with Debian's ``/usr/bin/python3``, the only interpreter that
Debian's ``python3-gi`` binds to, with ``gir1.2-nice-0.1`` installed.

Protocol (one JSON object per line):

- stdout, once gathering is done: ``{"type": "local", "ufrag", "pwd",
  "candidates"}``, the candidates as SDP ``candidate:`` attribute values.
- stdin, first line: the peer's ``{"ufrag", "pwd", "candidates"}``; later
  lines ``{"type": "candidate", "candidate"}`` add a trickled candidate and
  ``{"type": "send", "data"}`` sends text.
- stdout afterwards: ``{"type": "state", "state"}`` for every component
  state change, ``{"type": "selected", "local", "remote"}`` for the selected
  pair, ``{"type": "data", "data"}`` for every datagram received (each one
  is also echoed back), ``{"type": "sent", "data"}`` for the greeting and
  ``{"type": "error", "message"}`` before a failure exit.

The peer sends its greeting once the component is connected, and exits on
end of input on stdin or after ``--timeout`` seconds, with status 0 unless
something failed.

libnice 0.1.21 through GObject introspection needs three workarounds. The
receive callback is attached with ``nice_agent_attach_recv`` called through
ctypes, because introspection does not expose that function. ``upnp`` is
set to false, so the agent sends no UPnP multicast. And ``127.0.0.1`` is
added as a local address, because libnice skips loopback when gathering.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
from typing import Any

import gi  # type: ignore[import-not-found, unused-ignore]

gi.require_version("Nice", "0.1")
from gi.repository import GLib, Nice  # type: ignore[import-not-found, unused-ignore] # noqa: E402

STREAM_COMPONENT = 1

_STATE_NAMES = {
    Nice.ComponentState.DISCONNECTED: "disconnected",
    Nice.ComponentState.GATHERING: "gathering",
    Nice.ComponentState.CONNECTING: "connecting",
    Nice.ComponentState.CONNECTED: "connected",
    Nice.ComponentState.READY: "ready",
    Nice.ComponentState.FAILED: "failed",
}

_RELAY_TYPES = {
    "udp": Nice.RelayType.UDP,
    "tcp": Nice.RelayType.TCP,
}

# void (*NiceAgentRecvFunc)(NiceAgent *agent, guint stream_id,
#                           guint component_id, guint len, gchar *buf,
#                           gpointer user_data)
_RECV_FUNC = ctypes.CFUNCTYPE(
    None,
    ctypes.c_void_p,
    ctypes.c_uint,
    ctypes.c_uint,
    ctypes.c_uint,
    ctypes.POINTER(ctypes.c_char),
    ctypes.c_void_p,
)


def _load_libraries() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    libnice = ctypes.CDLL("libnice.so.10")
    libnice.nice_agent_attach_recv.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        _RECV_FUNC,
        ctypes.c_void_p,
    ]
    libnice.nice_agent_attach_recv.restype = ctypes.c_int
    libnice.nice_agent_send.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_char_p,
    ]
    libnice.nice_agent_send.restype = ctypes.c_int
    libglib = ctypes.CDLL("libglib-2.0.so.0")
    libglib.g_main_context_default.argtypes = []
    libglib.g_main_context_default.restype = ctypes.c_void_p
    return libnice, libglib


def _agent_pointer(agent: Any) -> int:
    """Return the C ``NiceAgent *`` behind a PyGObject agent."""
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    get_pointer.restype = ctypes.c_void_p
    pointer = get_pointer(agent.__gpointer__, None)
    if not pointer:
        raise RuntimeError("the agent's __gpointer__ capsule holds no pointer")
    return int(pointer)


def _emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def _split_address(text: str) -> tuple[str, int]:
    host, separator, port = text.rpartition(":")
    if not separator or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


class LibnicePeer:
    """One libnice agent with one stream of one component."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.loop = GLib.MainLoop()
        self.status = 0
        self.greeted = False
        self.remote_set = False
        self.input_buffer = b""
        self.libnice, libglib = _load_libraries()

        self.agent = Nice.Agent.new(
            GLib.MainContext.default(), Nice.Compatibility.RFC5245
        )
        self.agent.set_property("controlling-mode", options.role == "controlling")
        self.agent.set_property("upnp", False)
        self.agent.set_property("ice-udp", options.transport == "udp")
        self.agent.set_property("ice-tcp", options.transport == "tcp")
        if options.force_relay:
            self.agent.set_property("force-relay", True)
        self.pointer = _agent_pointer(self.agent)

        address = Nice.Address.new()
        address.set_from_string("127.0.0.1")
        if not self.agent.add_local_address(address):
            raise RuntimeError("libnice rejected the local address 127.0.0.1")

        self.stream = self.agent.add_stream(STREAM_COMPONENT)
        if self.stream == 0:
            raise RuntimeError("nice_agent_add_stream failed")
        if options.turn is not None:
            host, port = options.turn
            added = self.agent.set_relay_info(
                self.stream,
                STREAM_COMPONENT,
                host,
                port,
                options.turn_user,
                options.turn_password,
                _RELAY_TYPES[options.turn_transport],
            )
            if not added:
                raise RuntimeError(f"libnice rejected the TURN server {host}:{port}")

        self.agent.connect("candidate-gathering-done", self._on_gathering_done)
        self.agent.connect("component-state-changed", self._on_state_changed)
        self.agent.connect("new-selected-pair-full", self._on_selected_pair)

        # The ctypes callback object must outlive the agent: keep a reference.
        self.recv_callback = _RECV_FUNC(self._on_receive)
        context = libglib.g_main_context_default()
        attached = self.libnice.nice_agent_attach_recv(
            self.pointer,
            self.stream,
            STREAM_COMPONENT,
            context,
            self.recv_callback,
            None,
        )
        if not attached:
            raise RuntimeError("nice_agent_attach_recv failed")

    def run(self) -> int:
        """Gather, exchange the description, connect; return the exit status."""
        os.set_blocking(sys.stdin.fileno(), False)
        GLib.io_add_watch(
            sys.stdin.fileno(),
            GLib.PRIORITY_DEFAULT,
            GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR,
            self._on_stdin,
        )
        GLib.timeout_add(int(self.options.timeout * 1000), self._on_timeout)
        if not self.agent.gather_candidates(self.stream):
            self._fail("nice_agent_gather_candidates failed")
            return self.status
        self.loop.run()
        self.agent.remove_stream(self.stream)
        return self.status

    # Agent signals

    def _on_gathering_done(self, _agent: Any, stream: int) -> None:
        _, ufrag, pwd = self.agent.get_local_credentials(stream)
        candidates = [
            self.agent.generate_local_candidate_sdp(candidate).removeprefix("a=")
            for candidate in self.agent.get_local_candidates(stream, STREAM_COMPONENT)
        ]
        _emit(type="local", ufrag=ufrag, pwd=pwd, candidates=candidates)

    def _on_state_changed(
        self, _agent: Any, _stream: int, _component: int, state: int
    ) -> None:
        name = _STATE_NAMES.get(state, str(state))
        _emit(type="state", state=name)
        if name in ("connected", "ready") and not self.greeted:
            self.greeted = True
            self._send(self.options.greeting.encode())
            _emit(type="sent", data=self.options.greeting)

    def _on_selected_pair(
        self, _agent: Any, _stream: int, _component: int, local: Any, remote: Any
    ) -> None:
        _emit(
            type="selected",
            local=self.agent.generate_local_candidate_sdp(local).removeprefix("a="),
            remote=self.agent.generate_local_candidate_sdp(remote).removeprefix("a="),
        )

    def _on_receive(
        self,
        _agent: int | None,
        _stream: int,
        _component: int,
        length: int,
        buffer: Any,
        _user_data: int | None,
    ) -> None:
        data = ctypes.string_at(buffer, length)
        _emit(type="data", data=data.decode("utf-8", "replace"))
        if self.options.echo:
            self._send(data)

    def _send(self, data: bytes) -> None:
        sent = self.libnice.nice_agent_send(
            self.pointer, self.stream, STREAM_COMPONENT, len(data), data
        )
        if sent != len(data):
            _emit(type="error", message=f"nice_agent_send returned {sent}")

    # Input and timers

    def _on_stdin(self, fd: int, condition: int) -> bool:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return True
        if not chunk:
            self.loop.quit()
            return False
        self.input_buffer += chunk
        while b"\n" in self.input_buffer:
            line, _, self.input_buffer = self.input_buffer.partition(b"\n")
            if line.strip():
                self._handle_line(line)
        return True

    def _handle_line(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError as error:
            self._fail(f"invalid JSON line on stdin: {error}")
            return
        kind = message.get("type", "remote")
        if kind == "remote":
            self._set_remote(message)
        elif kind == "candidate":
            self._add_remote_candidates([message["candidate"]])
        elif kind == "send":
            self._send(message["data"].encode())
        else:
            self._fail(f"unknown message type {kind!r} on stdin")

    def _set_remote(self, message: dict[str, Any]) -> None:
        if not self.agent.set_remote_credentials(
            self.stream, message["ufrag"], message["pwd"]
        ):
            self._fail("nice_agent_set_remote_credentials failed")
            return
        self.remote_set = True
        self._add_remote_candidates(message.get("candidates", []))

    def _add_remote_candidates(self, lines: list[str]) -> None:
        candidates = []
        for line in lines:
            text = line if line.startswith("a=") else "a=" + line
            candidate = self.agent.parse_remote_candidate_sdp(self.stream, text)
            if candidate is None:
                self._fail(f"libnice cannot parse the remote candidate {line!r}")
                return
            candidates.append(candidate)
        if not candidates:
            return
        added = self.agent.set_remote_candidates(
            self.stream, STREAM_COMPONENT, candidates
        )
        if added < 0:
            self._fail("nice_agent_set_remote_candidates failed")

    def _on_timeout(self) -> bool:
        self._fail(f"timed out after {self.options.timeout} s")
        return False

    def _fail(self, message: str) -> None:
        _emit(type="error", message=message)
        self.status = 1
        self.loop.quit()


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=("controlling", "controlled"), required=True)
    parser.add_argument(
        "--transport",
        choices=("udp", "tcp"),
        default="udp",
        help="gather UDP candidates, or only TCP candidates (RFC 6544)",
    )
    parser.add_argument(
        "--turn", type=_split_address, help="TURN server HOST:PORT for a relay"
    )
    parser.add_argument("--turn-user", default="")
    parser.add_argument("--turn-password", default="")
    parser.add_argument("--turn-transport", choices=("udp", "tcp"), default="udp")
    parser.add_argument(
        "--force-relay", action="store_true", help="gather relayed candidates only"
    )
    parser.add_argument("--greeting", default="hello from libnice")
    parser.add_argument(
        "--no-echo", dest="echo", action="store_false", help="do not echo data back"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds before giving up"
    )
    return parser.parse_args(argv)


def main() -> int:
    """Run the peer and return its exit status."""
    options = parse_arguments()
    try:
        peer = LibnicePeer(options)
    except RuntimeError as error:
        _emit(type="error", message=str(error))
        return 1
    return peer.run()


if __name__ == "__main__":
    sys.exit(main())
