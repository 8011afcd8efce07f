"""The endpoint's UDP socket: what reaches aiosipua is well-formed, or it is answered 400 here.

aiosipua's UDP transport logs and drops what it cannot parse (no 400), parses headers lazily
(a bad CSeq or SDP raises deep inside the UAS, after a re-INVITE has already replaced the
dialog's INVITE) and has no size cap for datagrams. :class:`GuardedUdpTransport` checks every
request up front (start line, mandatory headers, Via/From/To/CSeq syntax, Content-Length,
an SDP body) and answers a bad one ``400`` naming the header, without handing it on, so no
dialog state is touched; an oversized datagram is dropped unread. Log lines carry sizes and
header names, never the message.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

from aiosipua import SipMessage, SipRequest, SipResponse, UdpSipTransport, parse_sdp
from aiosipua.headers import parse_address, parse_cseq, parse_via
from aiosipua.transport import _stamp_via_received  # the same stamping aiosipua does
from aiosipua.utils import generate_tag
from loguru import logger

_REQUIRED = ("via", "from", "to", "call-id", "cseq")
_COPIED = re.compile(rb"^(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:(.*)$", re.IGNORECASE)
_COMPACT = {b"v": b"Via", b"f": b"From", b"t": b"To", b"i": b"Call-ID"}


def request_problem(request: SipRequest) -> str | None:
    """The header that makes ``request`` malformed, or None when it is well-formed."""
    if not re.fullmatch(r"[A-Za-z]+", request.method) or ":" not in request.uri:
        return "Request-Line"
    for name in _REQUIRED:
        if not request.headers.get(name):
            return f"missing {name}"
    checks = (
        ("Via", lambda: [parse_via(v) for v in request.headers.get("via")]),
        ("From", lambda: parse_address(request.headers.get_first("from") or "")),
        ("To", lambda: parse_address(request.headers.get_first("to") or "")),
        ("CSeq", lambda: parse_cseq(request.headers.get_first("cseq") or "")),
    )
    for name, check in checks:
        try:
            check()
        except Exception:
            return name
    cseq = request.cseq
    if cseq is None or cseq.method.upper() != request.method.upper() or cseq.seq < 0:
        return "CSeq"
    if not request.from_addr or not request.from_addr.uri.host:
        return "From"
    try:
        request.contact  # noqa: B018 (parsed by aiosipua when a dialog is made)
    except Exception:
        return "Contact"
    length = request.headers.get_first("content-length")
    if length is not None:
        if not length.strip().isdigit():
            return "Content-Length"
    if request.body and (request.content_type or "").split(";")[0].strip().lower() == (
        "application/sdp"
    ):
        try:
            sdp = parse_sdp(request.text)
        except Exception:
            return "SDP body"
        audio = sdp.audio
        if audio is not None and (audio.connection or sdp.connection) is None:
            return "SDP body (no c= line)"
    return None


def _declared_too_long(data: bytes, message: SipMessage) -> bool:
    """A Content-Length larger than the datagram's body (a truncated UDP message)."""
    raw = message.headers.get_first("content-length")
    if raw is None or not raw.strip().isdigit():
        return False
    _, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        _, _, body = data.partition(b"\n\n")
    return int(raw.strip()) > len(body)


def bad_request_raw(data: bytes, reason: str) -> bytes | None:
    """A 400 for bytes that did not parse, built from whatever routing headers are legible."""
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    if not lines or lines[0].startswith(b"SIP/") or lines[0].upper().startswith(b"ACK "):
        return None
    copied: list[bytes] = []
    has_via = False
    for line in lines[1:]:
        match = _COPIED.match(line.strip())
        if match is None:
            continue
        name = _COMPACT.get(match.group(1).lower(), match.group(1))
        value = match.group(2).strip()
        if name.lower() == b"to" and b"tag=" not in value:
            value += b";tag=" + generate_tag().encode()
        has_via = has_via or name.lower() == b"via"
        copied.append(name + b": " + value)
    if not has_via:
        return None
    status = f"SIP/2.0 400 Bad Request ({reason})".encode()
    return b"\r\n".join([status, *copied, b"Content-Length: 0", b"", b""])


class _Protocol(asyncio.DatagramProtocol):
    """Feeds datagrams to the transport.

    aiosipua's own protocol asserts a transport class that Python 3.11's selector transport
    does not subclass, and so logs an error for every socket it binds.
    """

    def __init__(self, owner: GuardedUdpTransport) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._owner._dispatch(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        logger.warning("sip: socket error {}", type(exc).__name__)


@dataclass
class GuardedUdpTransport(UdpSipTransport):
    """aiosipua's UDP transport with a size cap and up-front validation (400 on bad input).

    Parameters:
        max_message_bytes: Larger datagrams are dropped unread.
    """

    max_message_bytes: int = 8192
    counters: dict[str, int] = field(
        default_factory=lambda: {"oversized": 0, "malformed": 0}, repr=False
    )

    async def start(self) -> None:
        """Bind the UDP socket."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=self.local_addr
        )
        self._udp_transport = transport

    def _dispatch(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) > self.max_message_bytes:
            self.counters["oversized"] += 1
            logger.warning("sip: dropped an oversized datagram ({} bytes)", len(data))
            return
        if not data.strip():  # CRLF keep-alive (RFC 5626)
            return
        try:
            message = SipMessage.parse(data)
        except Exception:
            self._reject_raw(data, addr, "unparseable")
            return
        if isinstance(message, SipRequest):
            if not data.split(b"\n", 1)[0].rstrip().upper().endswith(b" SIP/2.0"):
                self._reject(message, addr, "SIP-Version", len(data), status=505)
                return
            problem = request_problem(message)
            if problem is None and _declared_too_long(data, message):
                problem = "Content-Length"
            if problem is not None:
                self._reject(message, addr, problem, len(data))
                return
            _stamp_via_received(message, addr)
        elif not message.call_id or message.status_code < 100 or message.cseq is None:
            self.counters["malformed"] += 1
            return
        if self.on_message is None:
            return
        try:
            self.on_message(message, addr)
        except Exception:
            logger.exception("sip: handling a {}-byte message failed", len(data))

    def _reject(
        self, request: SipRequest, addr: tuple[str, int], problem: str, size: int, status: int = 400
    ) -> None:
        self.counters["malformed"] += 1
        logger.warning("sip: {} for a malformed request ({}, {} bytes)", status, problem, size)
        if request.method.upper() == "ACK":
            return
        reason = "Version Not Supported" if status == 505 else f"Bad Request ({problem})"
        response = SipResponse(status_code=status, reason_phrase=reason)
        for via in request.headers.get("via"):
            response.headers.append("Via", via)
        for name in ("from", "call-id", "cseq"):
            value = request.headers.get_first(name)
            if value:
                response.headers.set_single(name, value)
        to_value = request.headers.get_first("to")
        if to_value:
            tag = "" if "tag=" in to_value else f";tag={generate_tag()}"
            response.headers.set_single("To", to_value + tag)
        if response.headers.get("via"):
            self.send(response, addr)

    def _reject_raw(self, data: bytes, addr: tuple[str, int], problem: str) -> None:
        self.counters["malformed"] += 1
        logger.warning("sip: 400 for an {} message ({} bytes)", problem, len(data))
        reply = bad_request_raw(data, problem)
        if reply is not None and self._udp_transport is not None:
            self._udp_transport.sendto(reply, addr)
