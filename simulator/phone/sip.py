"""The SIP wire: the simulated phone calls the agent as a SIP user agent, G.711 over RTP.

The call is what a softphone or a carrier's trunk would place: an INVITE from an
``aiosipua`` UAC with an SDP offer of PCMU and PCMA (the preferred one first),
``telephone-event`` and ``ptime:20``; once answered, ``aiortp`` carries 20 ms G.711
packets both ways (the caller's one per tick of the phone's clock, the bot's decoded
through aiortp's jitter buffer and played out by the phone's ear, exactly as over
Twilio). :meth:`SipCallEmulator.press` sends RFC 4733 telephone-events, :meth:`hang_up`
sends BYE, and the agent's BYE is the server ending the call. A REFER from the agent
(a transfer to a person) is accepted, reported as a successful transfer (NOTIFY
``200``) and recorded in :attr:`SipCallEmulator.transfers`, as the fake Twilio REST API
records ``<Dial>`` for Twilio calls.

Barge-in over SIP has no ``clear`` message: the agent just stops sending, so
``clear_s`` stays None and what counts is when the bot's audio stopped at the phone.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from aiortp import RTPSession
from aiosipua import (
    IncomingCall,
    OutgoingCall,
    SipDigestAuth,
    SipMessage,
    SipRequest,
    SipResponse,
    SipUAC,
    SipUAS,
    notify_refer,
    parse_sdp,
)
from loguru import logger

from simulator.phone.base import PhoneCall
from simulator.phone.line import LineConditions
from simulator.phone.measure import (
    DEFAULT_FROM,
    FRAME_S,
    FRAME_SAMPLES,
    SPEECH_RMS,
    CallEndedError,
)
from simulator.phone.sip_setup import (
    DTMF_PAYLOAD_TYPE,
    PAYLOAD_TYPES,
    SipTarget,
    UdpTransport,
    local_ip_towards,
    sdp_offer,
)
from simulator.ports import free_rtp_port

Codec = Literal["PCMU", "PCMA"]
DTMF_DURATION_MS = 100
BYE_ANSWER_WAIT_S = 0.5
USER_AGENT = "callagent-simulator"


class SipCallRejectedError(CallEndedError):
    """The agent answered the INVITE with a final error (486 busy, 503, 488, ...)."""

    def __init__(self, status: int, reason: str):
        """Keep the status and reason phrase."""
        super().__init__(f"the INVITE was refused: {status} {reason}")
        self.status = status
        self.reason = reason


class SipCallEmulator(PhoneCall):
    """One phone call placed over SIP (UDP signalling, RTP G.711 media).

    Example::

        async with SipCallEmulator("sip:agent@127.0.0.1:5060") as call:
            await call.wait_for_bot_speech_start(timeout=10)
            turn = await call.say(pcm16_8k)
            await call.press("1")
            await call.hang_up()  # BYE
    """

    def __init__(
        self,
        uri: str,
        *,
        from_number: str = DEFAULT_FROM,
        codec: Codec = "PCMU",
        headers: Mapping[str, str] | None = None,
        username: str | None = None,
        password: str | None = None,
        local_ip: str | None = None,
        speech_rms: float = SPEECH_RMS,
        segment_gap_s: float = 0.3,
        barge_in_silence_s: float = 0.3,
        jitter_buffer_ms: int = 0,
        background: Callable[[int], bytes] | None = None,
        line: LineConditions | None = None,
        **_twilio_only: Any,
    ):
        """Prepare a call (nothing is sent until :meth:`connect`).

        Args:
            uri: Whom to call: ``sip:agent@127.0.0.1:5060``.
            from_number: The caller's number (the From URI's user part).
            codec: The preferred codec (offered first; the other one is offered too).
            headers: Extra INVITE headers (``X-...``).
            username: Digest user name when the agent challenges (401/407).
            password: Digest password.
            local_ip: The address to signal and receive media on (default: the route's).
            speech_rms: RMS level above which a 20 ms frame counts as speech.
            segment_gap_s: Bot audio pauses shorter than this do not end a bot utterance.
            barge_in_silence_s: Silence after a barge-in that counts as the bot stopping.
            jitter_buffer_ms: Bot audio buffered before playout starts (after an underrun).
            background: Background sound mixed under the caller's voice (see the base).
            line: Impairments (packet loss, jitter) of the media the phone sends.
            **_twilio_only: Twilio-only options (``to_number``, ``auth_token``...), ignored
                so a caller can pass the same options to either wire.
        """
        super().__init__(
            speech_rms=speech_rms,
            segment_gap_s=segment_gap_s,
            barge_in_silence_s=barge_in_silence_s,
            jitter_buffer_ms=jitter_buffer_ms,
            background=background,
            line=line,
        )
        self.target = SipTarget.parse(uri)
        self.from_number = from_number
        self.codec: str = codec
        self.codecs = [codec, *(c for c in PAYLOAD_TYPES if c != codec)]
        self._headers = dict(headers or {})
        self._auth = SipDigestAuth(username, password) if username and password else None
        self._local_ip = local_ip or local_ip_towards(self.target.host)
        self.call_sid = ""
        self.status: int | None = None
        """The INVITE's final status (200 once answered)."""
        self.transfers: list[tuple[float, str]] = []
        """(call time, Refer-To URI) of each REFER the agent sent."""
        self._transport: UdpTransport | None = None
        self._uac: SipUAC | None = None
        self._uas: SipUAS | None = None
        self._invite: OutgoingCall | None = None
        self._rtp: RTPSession | None = None
        self._rtp_ts0 = secrets.randbits(32)
        self._bye_answered = asyncio.Event()
        self._dtmf_pt = DTMF_PAYLOAD_TYPE

    async def __aenter__(self) -> SipCallEmulator:
        await self.connect()
        return self

    # Lifecycle

    async def connect(self, timeout_s: float = 10.0) -> None:
        """INVITE the agent, wait for its answer, start RTP and the 20 ms clock.

        Raises:
            SipCallRejectedError: the agent refused the call (its status is kept).
            TimeoutError: no final answer in time (a CANCEL is sent).
        """
        ip = self._local_ip
        self._transport = UdpTransport(local_addr=(ip, 0))
        self._uac = SipUAC(self._transport)
        self._uas = SipUAS(self._transport, uac=self._uac, user_agent=USER_AGENT)
        self._uas.on_bye = self._on_bye
        self._uas.on_refer = self._on_refer
        await self._uas.start()
        self._watch_bye_answers(self._transport)
        preferred = PAYLOAD_TYPES[self.codecs[0]]
        # The RTP socket is bound first so the offer can name its port; the peer's address
        # is not known until the answer (nothing is sent before it).
        rtp_port = free_rtp_port(ip)
        self._rtp = await self._open_rtp((ip, rtp_port), (ip, 9), preferred)
        offer = parse_sdp(sdp_offer(ip, rtp_port, self.codecs, str(int(time.time()))))
        rejected: list[tuple[int, str]] = []
        invite = self._uac.send_invite(
            f"sip:{self.from_number}@{ip}",
            self.target.uri,
            self.target.addr,
            offer,
            extra_headers=self._headers or None,
            user_agent=USER_AGENT,
            auth=self._auth,
        )
        invite.on_rejected = lambda _c, status, reason: rejected.append((status, reason))
        self._invite = invite
        self.call_sid = invite.call_id
        try:
            await invite.wait_answered(timeout_s)
        except TimeoutError:
            invite.cancel(self._uac)
            await self._release()
            raise
        except RuntimeError:
            await self._release()
            status, reason = rejected[0] if rejected else (0, "refused")
            self.status = status
            raise SipCallRejectedError(status, reason) from None
        self.status = 200
        answer = invite.sdp_answer
        if answer is None or answer.rtp_address is None or answer.audio is None:
            await self._end("caller")
            raise CallEndedError("the agent answered without an SDP answer")
        chosen = next(
            (c.payload_type for c in answer.audio.codecs if c.payload_type in (0, 8)), None
        )
        if chosen is None:
            await self._end("caller")
            raise CallEndedError("the agent's SDP answer has no G.711 codec")
        dtmf_pt = next(
            (
                c.payload_type
                for c in answer.audio.codecs
                if c.encoding_name.lower() == "telephone-event"
            ),
            DTMF_PAYLOAD_TYPE,
        )
        if chosen != preferred or dtmf_pt != self._dtmf_pt:
            # aiortp fixes a session's payload types when it is created: the answerer
            # picked our second choice, so the session is made again on the same port.
            self._dtmf_pt = dtmf_pt
            await self._rtp.close()
            await asyncio.sleep(0.01)  # the sockets close on the loop's next turn
            self._rtp = await self._open_rtp((ip, rtp_port), answer.rtp_address, chosen)
        else:
            self._rtp.update_remote(answer.rtp_address)
        self.codec = "PCMU" if chosen == 0 else "PCMA"
        self._rtp.on_audio = self._on_rtp_audio
        self._start_media([], f"sip-emulator-{self.call_sid}")
        logger.debug(f"emulated SIP call {self.call_sid}: answered ({self.codec})")

    async def _open_rtp(
        self, local: tuple[str, int], remote: tuple[str, int], payload_type: int
    ) -> RTPSession:
        session = await RTPSession.create(
            local_addr=local,
            remote_addr=remote,
            payload_type=payload_type,
            dtmf_payload_type=self._dtmf_pt,
            # a handset's small jitter buffer: reorder, conceal losses, no added delay
            jitter_prefetch=0,
        )
        return session

    async def _end(self, by: str) -> None:
        if self._invite is None or self._closed.is_set():
            await self._stop_tasks()
            await self._release()
            return
        self.ended_by = by
        self._closing = True
        bye = None
        if self._uac is not None:
            try:
                bye = self._invite.hangup(self._uac)
            except (ValueError, OSError):
                pass
        self._mark_closed()
        await self._stop_tasks()
        if bye is not None:
            # like a phone: the socket stays open for the BYE's 200 (briefly)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._bye_answered.wait(), BYE_ANSWER_WAIT_S)
        await self._release()

    async def _release(self) -> None:
        rtp, self._rtp = self._rtp, None
        if rtp is not None:
            await rtp.close()
        uas, self._uas = self._uas, None
        if uas is not None:
            await uas.stop()

    def _watch_bye_answers(self, transport: UdpTransport) -> None:
        handle = transport.on_message

        def spy(message: SipRequest | SipResponse, addr: tuple[str, int]) -> None:
            if isinstance(message, SipResponse) and message.call_id == self.call_sid:
                cseq = message.cseq
                if cseq is not None and cseq.method.upper() == "BYE":
                    self._bye_answered.set()
            if handle is not None:
                handle(message, addr)

        transport.on_message = spy

    def _on_bye(self, call: IncomingCall, _request: SipMessage) -> None:
        if call.call_id != self.call_sid or self._closed.is_set() or self._closing:
            return
        self.ended_by = "server"
        logger.debug(f"emulated SIP call {self.call_sid}: BYE from the agent")
        self._mark_closed()
        asyncio.ensure_future(self._after_remote_bye())

    async def _after_remote_bye(self) -> None:
        await self._stop_tasks()
        await self._release()

    def _on_refer(self, call: IncomingCall, refer_to: str) -> None:
        self.transfers.append((self.now(), refer_to))
        # A phone that followed the transfer: the new call is answered.
        notify_refer(call, 200, "OK")

    # The wire

    def _rtp_timestamp(self, frame_start_s: float) -> int:
        return (self._rtp_ts0 + round(frame_start_s / FRAME_S) * FRAME_SAMPLES) & 0xFFFFFFFF

    async def _send_frame(self, pcm16: bytes, frame_start_s: float) -> None:
        if self._rtp is not None and not self._closing:
            self._rtp.send_audio_pcm(pcm16, self._rtp_timestamp(frame_start_s))

    async def _send_digit(self, digit: str) -> None:
        if self._rtp is None:
            raise CallEndedError("the call is not connected")
        # RFC 4733: the event's packets carry the timestamp of the moment the key went down.
        self._rtp.send_dtmf(digit, DTMF_DURATION_MS, timestamp=self._rtp_timestamp(self.now()))

    def _on_rtp_audio(self, pcm16: bytes, _timestamp: int) -> None:
        if self._closed.is_set():
            return
        self.stats.bytes_received += len(pcm16) // 2  # G.711: one byte a sample
        self._receive_bot_pcm(pcm16)


async def place_sip_call(uri: str, *, timeout_s: float = 10.0, **kwargs: Any) -> SipCallEmulator:
    """Place a call over SIP and return it answered (see :class:`SipCallEmulator`)."""
    call = SipCallEmulator(uri, **kwargs)
    await call.connect(timeout_s)
    return call


__all__ = [
    "SipCallEmulator",
    "SipCallRejectedError",
    "SipTarget",
    "UdpTransport",
    "local_ip_towards",
    "place_sip_call",
    "sdp_offer",
]
