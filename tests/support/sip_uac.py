"""A SIP peer for tests: an aiosipua UAC/UAS on a free loopback port with aiortp G.711 RTP.

It plays the trunk (or the callee) against :class:`transports.sip.endpoint.SipEndpoint`:
INVITEs with an SDP offer, sends and receives RTP, RFC 4733 digits, BYE, re-INVITE, REFER
answers and NOTIFYs, and raw datagrams for the malformed-input tests.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortp import RTPSession
from aiosipua import (
    IncomingCall,
    OutgoingCall,
    SdpMessage,
    SipMessage,
    SipRequest,
    SipUAC,
    SipUAS,
    UdpSipTransport,
    build_sdp,
)
from aiosipua.sdp import _extract_codecs

from simulator.ports import free_rtp_port
from transports.sip.config import SipEndpointConfig
from transports.sip.contracts import InviteInfo, Refusal, SipCall
from transports.sip.endpoint import SipEndpoint


def offer_sdp(
    port: int, payload_types: tuple[int, ...] = (0, 8), *, dtmf_pt: int = 101
) -> SdpMessage:
    """An offer from 127.0.0.1:port with the given static payload types and telephone-event."""
    names = {0: "PCMU", 8: "PCMA", 9: "G722", 18: "G729"}
    first = payload_types[0]
    sdp = build_sdp("127.0.0.1", port, first, names[first], dtmf_payload_type=dtmf_pt)
    audio = sdp.audio
    assert audio is not None
    for pt in payload_types[1:]:
        audio.formats.insert(len(audio.formats) - (1 if dtmf_pt else 0), str(pt))
        audio.attributes["rtpmap"].append(f"{pt} {names[pt]}/8000")
    audio.codecs = _extract_codecs(audio)
    return sdp


@dataclass
class PeerEvents:
    """What the peer saw from the endpoint."""

    byes: list[str] = field(default_factory=list)
    reinvite_answers: list[SdpMessage] = field(default_factory=list)
    refers: list[tuple[IncomingCall, str]] = field(default_factory=list)
    invites: list[IncomingCall] = field(default_factory=list)
    bye_event: asyncio.Event = field(default_factory=asyncio.Event)
    refer_event: asyncio.Event = field(default_factory=asyncio.Event)
    invite_event: asyncio.Event = field(default_factory=asyncio.Event)


class SipPeer:
    """The test's side of the wire."""

    def __init__(self) -> None:
        self.transport = UdpSipTransport(local_addr=("127.0.0.1", 0))
        self.uac = SipUAC(self.transport)
        self.uas = SipUAS(self.transport, uac=self.uac, retransmit_2xx=False)
        self.events = PeerEvents()
        self.rtp: RTPSession | None = None
        self.rtp_port = 0
        self.heard = bytearray()
        self.digits: list[str] = []
        self.on_invite: Callable[[IncomingCall], None] | None = None
        self.raw: list[bytes] = []
        self.on_request: Callable[[SipRequest, tuple[str, int]], bool] | None = None
        """Sees each request first; returning True keeps it from aiosipua (a registrar, ...)."""

    async def start(self) -> SipPeer:
        """Bind on a free loopback port."""
        self.uas.on_bye = self._on_bye
        self.uas.on_refer = self._on_refer
        self.uas.on_invite = self._on_invite
        await self.uas.start()
        udp = self.transport._udp_transport
        assert udp is not None
        self.transport.local_addr = tuple(udp.get_extra_info("sockname")[:2])
        inner = self.transport.on_message

        def spy(message: object, addr: tuple[str, int]) -> None:
            self.raw.append(bytes(message))  # type: ignore[call-overload]
            if (
                isinstance(message, SipRequest)
                and self.on_request is not None
                and self.on_request(message, addr)
            ):
                return
            if inner is not None:
                inner(message, addr)  # type: ignore[arg-type]

        self.transport.on_message = spy
        return self

    async def open_rtp(self, remote: tuple[str, int] = ("127.0.0.1", 9), pt: int = 0) -> int:
        """Bind the peer's RTP (before the offer, so the offer can name the port)."""
        self.rtp_port = free_rtp_port()
        self.rtp = await RTPSession.create(
            local_addr=("127.0.0.1", self.rtp_port), remote_addr=remote, payload_type=pt
        )
        self.rtp.on_audio = lambda pcm, _ts: self.heard.extend(pcm)
        self.rtp.on_dtmf = lambda digit, _d: self.digits.append(digit)
        return self.rtp_port

    def invite(
        self,
        endpoint: tuple[str, int],
        offer: SdpMessage | None,
        *,
        user: str = "agent",
        caller: str = "15550001111",
        headers: dict[str, str] | None = None,
        auth: object = None,
    ) -> OutgoingCall:
        """Send an INVITE to the endpoint."""
        host, port = self.transport.local_addr
        return self.uac.send_invite(
            f"sip:{caller}@{host}:{port}",
            f"sip:{user}@{endpoint[0]}:{endpoint[1]}",
            endpoint,
            offer,
            extra_headers=headers,
            auth=auth,  # type: ignore[arg-type]
        )

    async def send_pcm(self, pcm: bytes, *, paced: bool = False) -> None:
        """Send PCM16 8 kHz in 20 ms packets."""
        assert self.rtp is not None
        for start in range(0, len(pcm), 320):
            self.rtp.send_audio_pcm_auto(pcm[start : start + 320])
            await asyncio.sleep(0.02 if paced else 0.001)

    def send_raw(self, data: bytes, addr: tuple[str, int]) -> None:
        """A raw datagram from the peer's SIP socket."""
        udp = self.transport._udp_transport
        assert udp is not None
        udp.sendto(data, addr)

    def responses(self, status: int) -> list[SipMessage]:
        """The responses with ``status`` the peer received so far."""
        parsed = [SipMessage.parse(raw) for raw in self.raw]
        return [m for m in parsed if getattr(m, "status_code", None) == status]

    async def close(self) -> None:
        """Close RTP and SIP."""
        if self.rtp is not None:
            await self.rtp.close()
        await self.uas.stop()

    def _on_bye(self, call: IncomingCall, _request: SipRequest) -> None:
        self.events.byes.append(call.call_id)
        self.events.bye_event.set()

    def _on_refer(self, call: IncomingCall, target: str) -> None:
        self.events.refers.append((call, target))
        self.events.refer_event.set()

    def _on_invite(self, call: IncomingCall) -> None:
        self.events.invites.append(call)
        self.events.invite_event.set()
        if self.on_invite is not None:
            self.on_invite(call)


def answer_sdp(call: IncomingCall, port: int) -> SdpMessage:
    """A plain PCMU answer from 127.0.0.1:port."""
    return build_sdp("127.0.0.1", port, 0, "PCMU")


def energy(pcm: bytes) -> float:
    """Mean absolute sample value."""
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm[: len(pcm) // 2 * 2])
    return sum(abs(s) for s in samples) / max(1, len(samples))


async def until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait until ``predicate()`` holds (fails the test after ``timeout_s``)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@dataclass
class Bot:
    """The handler: records what the call delivered, plays a greeting, ends when told."""

    greeting: bytes = b""
    calls: list[SipCall] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    digits: list[str] = field(default_factory=list)
    finish: asyncio.Event = field(default_factory=asyncio.Event)
    admitted: list[InviteInfo] = field(default_factory=list)
    refusal: Refusal | None = None

    async def __call__(self, call: SipCall) -> None:
        self.calls.append(call)
        call.media.on_audio = self.audio.extend
        call.media.on_dtmf = self.digits.append
        if self.greeting:
            call.media.send_pcm(self.greeting)
        ended = asyncio.Event()
        call.on_end(lambda _reason: ended.set())
        finish = asyncio.ensure_future(self.finish.wait())
        await asyncio.wait(
            {finish, asyncio.ensure_future(ended.wait())}, return_when=asyncio.FIRST_COMPLETED
        )

    def admission(self, invite: InviteInfo) -> Refusal | None:
        self.admitted.append(invite)
        return self.refusal


def config(**overrides: object) -> SipEndpointConfig:
    """An endpoint on a free loopback port (RTP in a small high range)."""
    base: dict[str, object] = {
        "listen_host": "127.0.0.1",
        "listen_port": 0,
        "rtp_ports": (42000, 42199),
        "session_expires_s": 0,
    }
    base.update(overrides)
    return SipEndpointConfig(**base)  # type: ignore[arg-type]


async def start_endpoint(bot: Bot, **overrides: object) -> SipEndpoint:
    """A started endpoint with ``bot`` as handler and admission."""
    endpoint = SipEndpoint(config(**overrides), bot, bot.admission)
    await endpoint.start()
    return endpoint
