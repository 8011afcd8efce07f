"""How each transport hands a call to a person: one :class:`TransferMethod` per transport.

Twilio redirects the live call to Dial TwiML; a browser call gets an RTVI hand-off message;
a Daily dial-in call is REFERred by Daily; a call on our own SIP trunk is REFERred by us
(RFC 3515). :class:`~processors.transfer.TransferProcessor` calls the one it is given.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pipecat.frames.frames import Frame
from pipecat.processors.frameworks.rtvi import RTVIServerMessageFrame

PushFrame = Callable[[Frame], Awaitable[None]]


@dataclass(frozen=True)
class Handoff:
    """What a transfer method gets."""

    call_id: str
    trigger: str
    summary: dict[str, Any]
    idempotency_key: str


@dataclass(frozen=True)
class TransferOutcome:
    """How a transfer request went.

    Parameters:
        ok: The transport/provider accepted the transfer.
        error: Why not (no caller data).
        keep_holding: The caller stays on our stream until a person takes over (WebRTC).
    """

    ok: bool
    error: str = ""
    keep_holding: bool = False


class TransferMethod(abc.ABC):
    """How one transport hands a call to a person."""

    name = "none"

    @abc.abstractmethod
    async def transfer(self, handoff: Handoff, push: PushFrame) -> TransferOutcome:
        """Request the transfer (``push`` sends a frame down the call's pipeline)."""


class CallRedirector(Protocol):
    """Redirects a live phone call to new TwiML (``integrations.twilio_rest``)."""

    async def redirect(self, call_sid: str, twiml: str) -> str:
        """Redirect the call; raises on failure."""
        ...


class TwilioRedirect(TransferMethod):
    """Twilio: redirect the live call (REST) to TwiML that says the hold line and dials."""

    name = "twilio_redirect"

    def __init__(
        self, control: CallRedirector, call_sid: str, twiml_for: Callable[[Handoff], Awaitable[str]]
    ):
        """Configure the redirect.

        Args:
            control: The Twilio REST client.
            call_sid: The live call (``CA...``).
            twiml_for: Builds the transfer TwiML for a hand-off (Dial or Enqueue, whisper URL;
                it may keep the hand-off for Twilio's callbacks first).
        """
        self._control = control
        self._call_sid = call_sid
        self._twiml_for = twiml_for

    async def transfer(self, handoff: Handoff, push: PushFrame) -> TransferOutcome:
        """Redirect; Twilio then ends our media stream and runs the TwiML."""
        try:
            await self._control.redirect(self._call_sid, await self._twiml_for(handoff))
        except Exception as e:  # noqa: BLE001 - any failure is a failed transfer
            return TransferOutcome(False, str(e) or type(e).__name__)
        return TransferOutcome(True)


class WebRTCHandoffMessage(TransferMethod):
    """Browser calls: an RTVI server message carrying the summary; the page shows the hand-off."""

    name = "webrtc_handoff"

    async def transfer(self, handoff: Handoff, push: PushFrame) -> TransferOutcome:
        """Send ``{"type": "handoff", "summary": ...}`` to the client."""
        await push(RTVIServerMessageFrame(data={"type": "handoff", "summary": handoff.summary}))
        return TransferOutcome(True, keep_holding=True)


class DailySipRefer(TransferMethod):
    """Daily dial-in calls: a SIP REFER of the caller to the human's number or SIP URI."""

    name = "daily_sip_refer"

    def __init__(self, refer: Callable[[dict[str, Any]], Awaitable[Any]], target: str):
        """Configure the REFER.

        Args:
            refer: ``DailyTransport.sip_refer`` (returns an error or None).
            target: Where to send the caller (``sip:...`` or ``+1...``).
        """
        self._refer = refer
        self._target = target

    async def transfer(self, handoff: Handoff, push: PushFrame) -> TransferOutcome:
        """REFER the caller; Daily's answer says whether it was accepted."""
        try:
            error = await self._refer({"toEndPoint": self._target})
        except Exception as e:  # noqa: BLE001
            return TransferOutcome(False, type(e).__name__)
        return TransferOutcome(error is None, "" if error is None else "SIP REFER refused")


class ReferAnswer(Protocol):
    """How a REFER went (``transports.sip.contracts.ReferOutcome`` has this shape)."""

    @property
    def ok(self) -> bool:
        """The peer accepted the REFER and the new call succeeded (NOTIFY 200)."""
        ...

    @property
    def status(self) -> int:
        """The last SIP status heard (the REFER's answer or the NOTIFY's sipfrag); 0: none."""
        ...

    @property
    def reason(self) -> str:
        """Why not, in words (no caller data)."""
        ...


class SipRefer(TransferMethod):
    """Calls on our own SIP trunk: REFER the caller to ``transfer.target`` (RFC 3515).

    The REFER's answer and the NOTIFYs about the new call decide the outcome, so a transfer
    the target does not take (busy, no answer, REFER refused) fails here, in the call, and
    the caller is offered a callback at once; on success the peer ends our dialog (BYE).
    """

    name = "sip_refer"

    def __init__(
        self,
        refer: Callable[..., Awaitable[ReferAnswer]],
        target: str,
        *,
        timeout_s: float,
    ):
        """Configure the REFER.

        Args:
            refer: The call's ``SipCall.refer(target, timeout_s=...)``.
            target: Where to send the caller (``sip:...`` or a number on the trunk).
            timeout_s: Longest wait for the new call's outcome (the agent's dial timeout
                and a margin).
        """
        self._refer = refer
        self._target = target
        self._timeout_s = timeout_s

    async def transfer(self, handoff: Handoff, push: PushFrame) -> TransferOutcome:
        """REFER the caller and wait for how the new call went."""
        try:
            answer = await self._refer(self._target, timeout_s=self._timeout_s)
        except Exception as e:  # noqa: BLE001 - any failure is a failed transfer
            return TransferOutcome(False, f"SIP REFER failed ({type(e).__name__})")
        if answer.ok:
            return TransferOutcome(True)
        why = f"SIP REFER {answer.status or 'unanswered'}"
        return TransferOutcome(False, f"{why}: {answer.reason}" if answer.reason else why)


class NoTransfer(TransferMethod):
    """A transport (or a configuration) that cannot transfer: always fails, with the reason."""

    name = "none"

    def __init__(self, reason: str):
        """Say why transfers are impossible here."""
        self._reason = reason

    async def transfer(self, handoff: Handoff, push: PushFrame) -> TransferOutcome:
        """Fail at once."""
        return TransferOutcome(False, self._reason)
