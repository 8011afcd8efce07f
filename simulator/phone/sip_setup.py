"""What the simulator's SIP phone needs around the call: where to, which ports, the offer.

``aiosipua``'s UDP transport started so that it knows its port, the target URI read,
this machine's address towards the agent, and the SDP offer
(the G.711 codecs in preference order, ``telephone-event``, 20 ms packets).
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any

from aiosipua import UdpSipTransport, parse_uri

PAYLOAD_TYPES: dict[str, int] = {"PCMU": 0, "PCMA": 8}
DTMF_PAYLOAD_TYPE = 101


@dataclass(frozen=True)
class SipTarget:
    """Where a SIP call goes: ``sip:user@host:port`` (port 5060 when absent)."""

    uri: str
    user: str
    host: str
    port: int

    @classmethod
    def parse(cls, uri: str) -> SipTarget:
        """Read a ``sip:`` URI.

        Raises:
            ValueError: not a ``sip:user@host[:port]`` URI.
        """
        if not uri.lower().startswith("sip:"):
            raise ValueError("the SIP URI must look like sip:agent@HOST[:PORT]")
        parsed = parse_uri(uri)
        if not parsed.host:
            raise ValueError("the SIP URI must name a host: sip:agent@HOST[:PORT]")
        user = parsed.user or "agent"
        port = parsed.port or 5060
        return cls(f"sip:{user}@{parsed.host}:{port}", user, parsed.host, port)

    @property
    def addr(self) -> tuple[str, int]:
        """The (host, port) INVITEs are sent to."""
        return (self.host, self.port)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport):
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int] | Any) -> None:
        self._owner._dispatch(data, (str(addr[0]), int(addr[1])))  # noqa: SLF001


class UdpTransport(UdpSipTransport):
    """aiosipua's UDP transport, started so that it knows its port.

    Works around two things in aiosipua 0.7.1's ``UdpSipTransport.start``: bound to port 0
    it keeps advertising port 0 (in Via and Contact), and its protocol asserts the
    transport is an ``asyncio.DatagramTransport``, which Python 3.11's selector transport
    is not (an error logged on every start).
    """

    async def start(self) -> None:
        """Bind the socket and learn the port it got."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=self.local_addr
        )
        self._udp_transport = transport  # type: ignore[assignment]
        host, port = transport.get_extra_info("sockname")[:2]
        self.local_addr = (str(host), int(port))


def local_ip_towards(host: str) -> str:
    """This machine's address on the route to ``host`` (what the SDP and Via advertise)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((host, 9))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def sdp_offer(ip: str, rtp_port: int, codecs: list[str], session_id: str) -> str:
    """An SDP offer: the G.711 codecs in preference order, telephone-event, 20 ms packets."""
    pts = [PAYLOAD_TYPES[c] for c in codecs]
    lines = [
        "v=0",
        f"o=- {session_id} {session_id} IN IP4 {ip}",
        "s=callagent-simulator",
        f"c=IN IP4 {ip}",
        "t=0 0",
        f"m=audio {rtp_port} RTP/AVP {' '.join(str(p) for p in [*pts, DTMF_PAYLOAD_TYPE])}",
        *(f"a=rtpmap:{PAYLOAD_TYPES[c]} {c}/8000" for c in codecs),
        f"a=rtpmap:{DTMF_PAYLOAD_TYPE} telephone-event/8000",
        f"a=fmtp:{DTMF_PAYLOAD_TYPE} 0-16",
        "a=ptime:20",
        "a=sendrecv",
    ]
    return "\r\n".join(lines) + "\r\n"
