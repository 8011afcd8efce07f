"""One call's G.711 RTP media: the :class:`~transports.sip.contracts.SipMedia` of the endpoint.

Built on ``aiortp``'s :class:`~aiortp.RTPSession` (jitter buffer, loss concealment, RFC 4733
telephone-events, RTCP). What this module adds: packets are accepted only from the peer's
negotiated host (symmetric RTP: the port is latched from what that host sends, so NAT works,
but a third party cannot inject or steal the stream), the caller's audio is re-cut into
20 ms frames whatever ptime the peer uses, and the bot's audio goes through our own 20 ms
pacer so that barge-in (:meth:`RtpMedia.flush`) and hold are ours to control.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from aiortp import MediaClock, PortAllocator, RTPSession
from loguru import logger

SAMPLE_RATE = 8000
FRAME_S = 0.02
FRAME_SAMPLES = 160
FRAME_BYTES = FRAME_SAMPLES * 2
"""20 ms of 8 kHz 16-bit mono PCM."""
_SILENCE = bytes(FRAME_BYTES)

PCMU = 0
PCMA = 8
SUPPORTED_PAYLOAD_TYPES = (PCMU, PCMA)
_BIND_ATTEMPTS = 8
KEYS = frozenset("0123456789*#ABCD")


class _PeerOnlySession(RTPSession):
    """An aiortp session that drops datagrams from any host but the negotiated peer's.

    aiortp accepts RTP from any source (and with ``symmetric_rtp`` would latch onto any
    source); a trunk call must not take media from a third party.
    """

    peer_hosts: frozenset[str] = frozenset()
    signalling_hosts: frozenset[str] = frozenset()
    foreign_dropped: int = 0
    bad_dropped: int = 0

    def _handle_rtp(self, data: bytes, addr: tuple[str, int]) -> None:
        if addr[0] not in self.peer_hosts:
            self.foreign_dropped += 1
            return
        try:
            super()._handle_rtp(data, addr)
        except Exception:  # a malformed telephone-event etc.: drop it, keep the call
            self.bad_dropped += 1

    def _handle_rtcp(self, data: bytes, addr: tuple[str, int]) -> None:
        if addr[0] not in self.peer_hosts:
            return
        try:
            super()._handle_rtcp(data, addr)
        except Exception:
            self.bad_dropped += 1


class RtpMedia:
    """8 kHz PCM16 in and out of one G.711 RTP stream, paced at 20 ms.

    Create with :meth:`open` once the peer's address and the codec are known.

    Args:
        call_id: The SIP Call-ID (for log lines).
        session: The bound RTP session.
        port: Its local RTP port (released to ``allocator`` on close).
        allocator: Where the port came from.
    """

    def __init__(
        self, call_id: str, session: _PeerOnlySession, port: int, allocator: PortAllocator
    ) -> None:
        self.on_audio: Callable[[bytes], None] | None = None
        self.on_dtmf: Callable[[str], None] | None = None
        self.call_id = call_id
        self.port = port
        self._session = session
        self._allocator = allocator
        self._queue: deque[bytes] = deque()
        self._tail = b""
        self._rx = bytearray()
        self._held = False
        self._peer_sends = True
        self._timestamp = random.getrandbits(32)  # RFC 3550 §5.1: a random start
        self._closed = False
        self._failed_callbacks = 0
        self.last_rx: float = asyncio.get_running_loop().time()
        session.on_audio = self._on_rtp_audio
        session.on_dtmf = self._on_rtp_dtmf
        self._clock = MediaClock(FRAME_S, self._tick)
        self._clock.start()

    @classmethod
    async def open(
        cls,
        *,
        call_id: str,
        bind_host: str,
        allocator: PortAllocator,
        remote: tuple[str, int],
        payload_type: int,
        dtmf_payload_type: int,
        port: int | None = None,
        signalling_host: str | None = None,
    ) -> RtpMedia:
        """Bind an RTP port from ``allocator`` (or the given, already allocated one) and start.

        RTP is accepted from the SDP's host and from ``signalling_host`` (the host the SIP
        came from: a trunk behind NAT writes its private address in the SDP); sending follows
        the address the accepted packets come from.

        Raises:
            RuntimeError: No free port in the range.
        """
        for _ in range(_BIND_ATTEMPTS):
            rtp_port = port if port is not None else (await allocator.allocate())[0]
            port = None
            try:
                session = await _PeerOnlySession.create(
                    local_addr=(bind_host, rtp_port),
                    remote_addr=remote,
                    payload_type=payload_type,
                    dtmf_payload_type=dtmf_payload_type,
                    jitter_capacity=16,
                    jitter_prefetch=2,
                    symmetric_rtp=True,
                )
            except OSError:  # taken between the allocator's probe and our bind
                await allocator.release(rtp_port)
                continue
            except BaseException:  # anything else (cancelled too): the port is not leaked
                await allocator.release(rtp_port)
                raise
            peer = cast(_PeerOnlySession, session)
            peer.signalling_hosts = frozenset([signalling_host] if signalling_host else [])
            peer.peer_hosts = frozenset({remote[0], *peer.signalling_hosts})
            return cls(call_id, peer, rtp_port, allocator)
        raise RuntimeError("no free RTP port")

    # --- SipMedia -------------------------------------------------------------------

    def send_pcm(self, pcm16_8k: bytes) -> None:
        """Queue the bot's audio; it leaves in 20 ms packets on the media clock."""
        if self._closed or not pcm16_8k:
            return
        data = self._tail + pcm16_8k
        whole = len(data) - len(data) % FRAME_BYTES
        for start in range(0, whole, FRAME_BYTES):
            self._queue.append(data[start : start + FRAME_BYTES])
        self._tail = data[whole:]

    def flush(self) -> float:
        """Drop the queued, unsent audio; returns the seconds dropped."""
        dropped = self.queued_s
        self._queue.clear()
        self._tail = b""
        return dropped

    @property
    def queued_s(self) -> float:
        """Seconds of audio queued and not yet sent."""
        return (len(self._queue) * FRAME_BYTES + len(self._tail)) / (SAMPLE_RATE * 2)

    @property
    def held(self) -> bool:
        """The peer put the call on hold."""
        return self._held

    # --- the endpoint's side -----------------------------------------------------------

    @property
    def payload_type(self) -> int:
        """The negotiated G.711 payload type (0 PCMU, 8 PCMA)."""
        return self._session._payload_type

    @property
    def stats(self) -> dict[str, int]:
        """Counters for tests and logs (no media content)."""
        return {
            "foreign_dropped": self._session.foreign_dropped,
            "bad_dropped": self._session.bad_dropped,
            "queued_frames": len(self._queue),
        }

    def keypress(self, digit: str) -> None:
        """A key the peer signalled outside RTP (SIP INFO), delivered like an RFC 4733 one."""
        if len(digit) == 1 and digit.upper() in KEYS:
            self._deliver(self.on_dtmf, digit.upper())

    def set_held(self, held: bool) -> None:
        """Hold: nothing is sent (the queue still plays out on the clock, unheard)."""
        if self._held and not held:
            self.last_rx = asyncio.get_running_loop().time()
        self._held = held

    def set_peer_sends(self, sends: bool) -> None:
        """Whether the peer's SDP says it sends (False for recvonly / inactive / 0.0.0.0)."""
        if sends and not self._peer_sends:
            self.last_rx = asyncio.get_running_loop().time()  # the silence counts from now
        self._peer_sends = sends

    def apply(self, held: bool, peer_sends: bool) -> None:
        """An offer's or answer's direction: hold, and whether the peer sends RTP."""
        self.set_held(held)
        self.set_peer_sends(peer_sends)

    @property
    def expects_rtp(self) -> bool:
        """The peer should be sending now (so a long silence means the call is dead).

        Not while the peer said it will not send (recvonly, inactive: on hold at its end)
        nor while it holds the call (sendonly: many PBXs send nothing on hold either).
        """
        return self._peer_sends and not self._held

    def update_peer(self, remote: tuple[str, int]) -> None:
        """A re-INVITE moved the peer's media (ignored for the 0.0.0.0 hold address)."""
        if remote[0] in ("0.0.0.0", "::") or remote[1] == 0:
            return
        self._session.peer_hosts = frozenset({remote[0], *self._session.signalling_hosts})
        self._session.update_remote(remote)

    async def close(self) -> None:
        """Stop sending, close the sockets and release the port (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        await self._clock.stop()
        await self._session.close()
        await self._allocator.release(self.port)

    # --- internals ------------------------------------------------------------------------

    def _tick(self) -> None:
        if self._queue:
            frame = self._queue.popleft()
        elif self._tail:
            frame = self._tail.ljust(FRAME_BYTES, b"\x00")
            self._tail = b""
        else:
            # Silence, not a gap: a carrier or session border controller hangs up a call
            # whose RTP stops (media timers of 30-60 s are common) and NAT bindings close;
            # Twilio and desk phones alike send a steady stream while nobody speaks.
            frame = _SILENCE
        timestamp = self._timestamp
        self._timestamp = (self._timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
        if not self._held and not self._closed:
            self._session.send_audio_pcm(frame, timestamp)

    def _on_rtp_audio(self, pcm: bytes, _timestamp: int) -> None:
        self.last_rx = asyncio.get_running_loop().time()
        if self._held:
            return
        self._rx.extend(pcm)
        while len(self._rx) >= FRAME_BYTES:
            frame = bytes(self._rx[:FRAME_BYTES])
            del self._rx[:FRAME_BYTES]
            self._deliver(self.on_audio, frame)

    def _on_rtp_dtmf(self, digit: str, _duration: int) -> None:
        self.last_rx = asyncio.get_running_loop().time()
        if digit != "?":
            self._deliver(self.on_dtmf, digit)

    def _deliver(
        self, callback: Callable[[str], None] | Callable[[bytes], None] | None, value: Any
    ) -> None:
        if callback is None:
            return
        try:
            callback(value)
        except Exception:
            self._failed_callbacks += 1
            if self._failed_callbacks == 1:
                logger.bind(provider_call_id=self.call_id).exception("sip media callback failed")
