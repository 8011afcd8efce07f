"""What the SIP trunk transport's parts promise each other.

The signalling side (:mod:`transports.sip.endpoint`) answers and places calls and hands
each established call over as a :class:`SipCall`; the Pipecat side
(:mod:`transports.sip.transport`) reads the caller's audio and keypad from the call's
:class:`SipMedia` and writes the bot's audio to it; ``bot/`` decides which calls are
admitted (:class:`Admission`) and what runs on them. Nothing here logs caller data: log
lines carry the SIP Call-ID, status codes and sizes, never numbers, URIs' user parts or
digits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

SipDirection = Literal["inbound", "outbound"]

EndReason = Literal[
    "remote_bye",  # the peer sent BYE
    "local_bye",  # we hung up (the pipeline ended)
    "cancelled",  # CANCEL before the call was answered
    "session_expired",  # RFC 4028 refreshes stopped
    "ack_timeout",  # our 200 OK was never acknowledged
    "transferred",  # a REFER succeeded and the peer left the call
    "rtp_timeout",  # no media from the peer for too long
    "shutdown",  # the endpoint stopped
]


@dataclass(frozen=True)
class InviteInfo:
    """What an INVITE said, for the admission decision (before anything is answered).

    Parameters:
        call_id: The SIP Call-ID (logged; carries no caller data).
        source: The (host, port) the INVITE came from.
        caller: The From URI's user part (a number). Caller data: never log it.
        callee: The Request-URI's user part (which number/agent was called). Never log it.
        headers: The ``X-`` headers, lower-cased names (application metadata from a PBX).
    """

    call_id: str
    source: tuple[str, int]
    caller: str = field(repr=False)
    callee: str = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Refusal:
    """Why a call is refused: the SIP status sent instead of answering.

    Parameters:
        status: 486 (busy: the call cap), 503 (draining, not ready; with ``retry_after_s``),
            403 (unknown source), 404 (no such agent), ...
        reason: The reason phrase.
        retry_after_s: A ``Retry-After`` header (503).
    """

    status: int
    reason: str
    retry_after_s: int | None = None


class Admission(Protocol):
    """Decides whether an authorised INVITE is answered (the bot's call cap and drain)."""

    def __call__(self, invite: InviteInfo) -> Refusal | None:
        """None to answer the call; a :class:`Refusal` to refuse it."""
        ...


@dataclass(frozen=True)
class ReferOutcome:
    """How a REFER (a transfer to a person) went.

    Parameters:
        ok: The peer accepted the REFER and reported the new call's success (NOTIFY 200).
        status: The last status heard: the REFER's answer (202, 403, 405, 603, ...) or the
            NOTIFY's ``sipfrag`` status (100, 180, 200, 486, ...); 0 when nothing came back.
        reason: Why not, in words (no caller data).
    """

    ok: bool
    status: int
    reason: str = ""


class SipMedia(Protocol):
    """One call's audio and keypad, 8 kHz 16-bit mono PCM both ways.

    Incoming RTP is accepted only from the negotiated peer, reordered by a small jitter
    buffer and decoded (PCMU or PCMA, whichever the SDP chose); losses are concealed.
    Outgoing audio is queued and sent paced, one 20 ms packet per 20 ms; while the call is
    on hold nothing is sent and the queue does not grow past what was written before it.
    """

    on_audio: Callable[[bytes], None] | None
    """Called with each 20 ms of the caller's audio (320 bytes), in order."""

    on_dtmf: Callable[[str], None] | None
    """Called once per key press (RFC 4733 telephone-event; '0'-'9', '*', '#', 'A'-'D')."""

    def send_pcm(self, pcm16_8k: bytes) -> None:
        """Queue the bot's audio (any length; split into 20 ms packets)."""
        ...

    def flush(self) -> float:
        """Drop the queued, unsent audio at once (barge-in); returns the seconds dropped."""
        ...

    @property
    def queued_s(self) -> float:
        """Seconds of audio queued and not yet sent."""
        ...

    @property
    def held(self) -> bool:
        """The peer put the call on hold (``sendonly``/``inactive``/0.0.0.0 in its re-INVITE)."""
        ...


class SipCall(Protocol):
    """One established SIP dialog (answered inbound, or answered outbound)."""

    @property
    def call_id(self) -> str:
        """The SIP Call-ID (the call's provider id in records and logs)."""
        ...

    @property
    def direction(self) -> SipDirection:
        """Who called whom."""
        ...

    @property
    def invite(self) -> InviteInfo:
        """What the dialog's first INVITE said (for outbound calls: what we sent)."""
        ...

    @property
    def media(self) -> SipMedia:
        """The call's audio and keypad."""
        ...

    @property
    def ended(self) -> bool:
        """The dialog is over (BYE either way, CANCEL, expiry, ...)."""
        ...

    @property
    def end_reason(self) -> EndReason | None:
        """Why it ended (None while it goes on)."""
        ...

    def on_end(self, callback: Callable[[EndReason], Awaitable[None] | None]) -> None:
        """Call ``callback`` once when the dialog ends (at once if it already has)."""
        ...

    async def hang_up(self) -> None:
        """Send BYE (idempotent; nothing if the dialog already ended)."""
        ...

    async def refer(self, target: str, *, timeout_s: float = 30.0) -> ReferOutcome:
        """Transfer the peer to ``target`` (``sip:`` URI, or a number on the trunk) with REFER.

        Waits for the REFER's answer and the NOTIFYs about the new call (RFC 3515) up to
        ``timeout_s``. On success the peer ends our dialog with BYE (``end_reason`` becomes
        ``transferred``).
        """
        ...


CallHandler = Callable[[SipCall], Awaitable[None]]
"""Runs an established call to its end (``bot/`` starts the pipeline here)."""
