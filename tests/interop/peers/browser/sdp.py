"""A minimal SDP parser and builder for one WebRTC data-channel section.

A browser's RTCPeerConnection only takes ICE parameters inside a session
description (RFC 8866), so the Python side of a browser test needs SDP. It
reads the ICE credentials, candidates, mid and DTLS setup role out of the
browser's offer or answer. It writes an answer or offer with one
``m=application 9 UDP/DTLS/SCTP webrtc-datachannel`` section (RFC 8841)
that carries its own credentials and candidates.

Only what these tests need is handled: one media section is built, and the
parser keeps every ``a=`` line of each section but interprets only the ICE
and DTLS attributes. Browsers reject a description without a well-formed
DTLS fingerprint (RFC 8122), but these tests never complete a DTLS
handshake, so the fingerprint of any certificate does.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

DATA_CHANNEL_PROTOCOL = "UDP/DTLS/SCTP"
DATA_CHANNEL_FORMAT = "webrtc-datachannel"
SCTP_PORT = 5000
MAX_MESSAGE_SIZE = 262144
SETUP_ROLES = ("actpass", "active", "passive")


class SdpError(ValueError):
    """A session description that cannot be parsed, with the reason."""


@dataclass(frozen=True, slots=True)
class MediaSection:
    """One ``m=`` section with its ICE and DTLS attributes.

    ``ufrag`` and ``pwd`` fall back to the session-level values when the
    section has none. ``candidates`` are ``candidate:`` attribute values,
    and ``attributes`` contains every ``a=`` line of the section as a
    (name, value) pair, with None for a flag without a value.
    """

    kind: str
    port: int
    protocol: str
    formats: tuple[str, ...]
    mid: str | None
    ufrag: str | None
    pwd: str | None
    candidates: tuple[str, ...]
    end_of_candidates: bool
    fingerprint: str | None
    setup: str | None
    attributes: tuple[tuple[str, str | None], ...] = field(default=())


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A parsed session description: session attributes and media sections."""

    session_attributes: tuple[tuple[str, str | None], ...]
    media: tuple[MediaSection, ...]
    ice_lite: bool

    def data_channel(self) -> MediaSection:
        """Return the first ``m=application`` section.

        Raises:
            SdpError: the description has no application section.
        """
        for section in self.media:
            if section.kind == "application":
                return section
        raise SdpError("the session description has no m=application section")


def _attribute(line: str) -> tuple[str, str | None]:
    name, separator, value = line[2:].partition(":")
    return name, value if separator else None


def _first(attributes: list[tuple[str, str | None]], name: str) -> str | None:
    for attribute_name, value in attributes:
        if attribute_name == name:
            return value
    return None


def _media_section(
    media_line: str,
    attributes: list[tuple[str, str | None]],
    session: list[tuple[str, str | None]],
) -> MediaSection:
    fields = media_line[2:].split()
    if len(fields) < 4:
        raise SdpError(f"m= line with fewer than four fields: {media_line!r}")
    kind, port_text, protocol, *formats = fields
    port_field = port_text.partition("/")[0]
    if not port_field.isdigit():
        raise SdpError(f"m= line with an invalid port: {media_line!r}")

    setup = _first(attributes, "setup")
    if setup is not None and setup not in SETUP_ROLES:
        raise SdpError(f"invalid a=setup value {setup!r}")
    candidates = tuple(
        "candidate:" + value
        for name, value in attributes
        if name == "candidate" and value is not None
    )
    return MediaSection(
        kind=kind,
        port=int(port_field),
        protocol=protocol,
        formats=tuple(formats),
        mid=_first(attributes, "mid"),
        ufrag=_first(attributes, "ice-ufrag") or _first(session, "ice-ufrag"),
        pwd=_first(attributes, "ice-pwd") or _first(session, "ice-pwd"),
        candidates=candidates,
        end_of_candidates=any(name == "end-of-candidates" for name, _ in attributes),
        fingerprint=_first(attributes, "fingerprint") or _first(session, "fingerprint"),
        setup=setup,
        attributes=tuple(attributes),
    )


def parse_sdp(text: str) -> SessionDescription:
    """Parse a session description, with CRLF or LF line ends.

    Raises:
        SdpError: the text does not start with ``v=0``, or an ``m=`` line or
            an ``a=setup`` value is invalid.
    """
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line]
    if not lines or lines[0] != "v=0":
        raise SdpError(f"the description does not start with v=0: {text[:40]!r}")

    session: list[tuple[str, str | None]] = []
    sections: list[tuple[str, list[tuple[str, str | None]]]] = []
    for line in lines[1:]:
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"invalid SDP line {line!r}")
        if line.startswith("m="):
            sections.append((line, []))
        elif line.startswith("a="):
            target = sections[-1][1] if sections else session
            target.append(_attribute(line))

    media = tuple(
        _media_section(media_line, attributes, session)
        for media_line, attributes in sections
    )
    ice_lite = any(name == "ice-lite" for name, _ in session)
    return SessionDescription(tuple(session), media, ice_lite)


def certificate_fingerprint(der: bytes) -> str:
    """Return the ``a=fingerprint`` value of a DER certificate (SHA-256)."""
    digest = hashlib.sha256(der).hexdigest().upper()
    pairs = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    return f"sha-256 {pairs}"


def build_data_channel_sdp(
    *,
    ufrag: str,
    pwd: str,
    candidates: list[str] | tuple[str, ...],
    fingerprint: str,
    setup: str,
    mid: str = "0",
    end_of_candidates: bool = True,
    trickle: bool = True,
    session_id: int | None = None,
) -> str:
    """Build an offer or answer with one data-channel section, CRLF line ends.

    ``candidates`` are SDP candidate values, with or without ``candidate:``
    or ``a=candidate:``. An answer uses ``setup`` "active" or "passive" and
    the offer's ``mid``; an offer uses "actpass".

    Raises:
        SdpError: ``setup`` is not a DTLS role, or a credential is empty.
    """
    if setup not in SETUP_ROLES:
        raise SdpError(f"invalid setup role {setup!r}; expected one of {SETUP_ROLES}")
    if not ufrag or not pwd:
        raise SdpError("the ICE ufrag and pwd must not be empty")
    if session_id is None:
        session_id = secrets.randbelow(1 << 62)

    lines = [
        "v=0",
        f"o=- {session_id} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        f"a=group:BUNDLE {mid}",
        f"m=application 9 {DATA_CHANNEL_PROTOCOL} {DATA_CHANNEL_FORMAT}",
        "c=IN IP4 0.0.0.0",
        f"a=ice-ufrag:{ufrag}",
        f"a=ice-pwd:{pwd}",
    ]
    if trickle:
        lines.append("a=ice-options:trickle")
    lines += [
        f"a=fingerprint:{fingerprint}",
        f"a=setup:{setup}",
        f"a=mid:{mid}",
        f"a=sctp-port:{SCTP_PORT}",
        f"a=max-message-size:{MAX_MESSAGE_SIZE}",
    ]
    for line in candidates:
        value = line.strip().removeprefix("a=").removeprefix("candidate:")
        lines.append(f"a=candidate:{value}")
    if end_of_candidates:
        lines.append("a=end-of-candidates")
    return "\r\n".join(lines) + "\r\n"
