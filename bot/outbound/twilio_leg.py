"""The outbound Twilio leg: the answered call let in, and Twilio's status and AMD callbacks.

* **Voice webhook** (``Direction=outbound-api``): the answer URL carries the attempt's signed
  token (``?attempt=``). The attempt must exist, not have ended, and be this CallSid's; its
  id then rides to the stream as ``<Parameter name="callagentAttempt">`` inside the stream
  token's binding (``transports/twilio_binding.py`` signs every parameter). Without a valid
  token an outbound-api webhook is refused (403).
* **Stream**: a ``start`` with ``callagentAttempt`` becomes the attempt's outbound call.
* **Status callback** (``/twilio/call-status``): ringing / in-progress mark the attempt;
  completed / no-answer / busy / failed / canceled end it with the matching disposition
  (the call's own outcome wins). **AMD callback** (``/twilio/amd-status``): the attempt's
  ``answered_by``, and a ``MachineVerdictFrame(source="provider")`` into the live call:
  found in this process, else asked of the process that owns the CallSid through the
  shared inbox (:class:`~integrations.shared_state.calls.CallInbox`, request kind
  :data:`MACHINE_VERDICT`).

Callbacks are idempotent (an attempt ends once). The route handlers check Twilio's
signature first (``bot/web/twilio_outbound_routes.py``); nothing here logs caller data.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from loguru import logger

from bot.call.live_calls import LiveCalls
from bot.call.transport import CallTransport
from bot.outbound.attempts import Attempts
from bot.outbound.in_call import outbound_spec
from bot.outbound.tokens import AttemptTokenError, AttemptTokens
from integrations.outbound.dispositions import Disposition, MachineVerdict
from integrations.outbound.store import IN_PROGRESS, RINGING, Attempt
from integrations.shared_state.base import SharedStateError
from integrations.shared_state.calls import CallInbox, CallUnreachableError
from processors.frames import MachineVerdictFrame
from transports.twilio import TwilioStreamStart

ATTEMPT_PARAMETER = "callagentAttempt"
"""The stream ``<Parameter>`` naming the attempt of an outbound call."""
ANSWERED_BY_PARAMETER = "callagentAnsweredBy"
"""The stream ``<Parameter>`` with Twilio's ``AnsweredBy`` when the webhook had one."""

FINAL_STATUSES: dict[str, Disposition] = {
    "completed": Disposition.COMPLETED,
    "no-answer": Disposition.NO_ANSWER,
    "busy": Disposition.BUSY,
    "failed": Disposition.FAILED,
    "canceled": Disposition.NO_ANSWER,
}
"""Twilio's final ``CallStatus`` values and the disposition each gives (a fallback)."""
PROGRESS_STATUSES = {"ringing": RINGING, "in-progress": IN_PROGRESS, "answered": IN_PROGRESS}
MACHINE_VERDICT = "machine_verdict"
"""The inbox request carrying Twilio's verdict to the process that runs the call."""
REACH_TIMEOUT_S = 3.0


def machine_verdict(answered_by: str) -> MachineVerdict:
    """Twilio's ``AnsweredBy`` (human, machine_start, machine_end_beep, fax, unknown...)."""
    if answered_by == "human":
        return MachineVerdict.HUMAN
    if answered_by.startswith("machine") or answered_by == "fax":
        return MachineVerdict.MACHINE
    return MachineVerdict.UNKNOWN


class TwilioOutboundLeg:
    """The outbound leg's checks and callbacks (see the module)."""

    def __init__(
        self,
        tokens: AttemptTokens,
        attempts: Attempts,
        live: LiveCalls,
        inbox: CallInbox | None = None,
    ) -> None:
        self._tokens = tokens
        self._attempts = attempts
        self._live = live
        self._inbox = inbox
        if inbox is not None:
            inbox.handle(MACHINE_VERDICT, self._verdict_request)

    async def _attempt(self, token: str, call_sid: str) -> Attempt:
        """The attempt a request's token names, for this CallSid.

        Raises:
            HTTPException: 403 no or a bad token, or another call's attempt; 404 unknown.
        """
        if not token:
            raise HTTPException(403, "the 'attempt' token is required for an outbound call")
        try:
            attempt_id = self._tokens.verify(token)
        except AttemptTokenError as e:
            raise HTTPException(403, str(e)) from None
        attempt = await self._attempts.get(attempt_id)
        if attempt is None:
            raise HTTPException(404, "unknown attempt")
        if attempt.provider_call_id not in (None, call_sid) and attempt.channel == "twilio":
            raise HTTPException(403, "the attempt token is for another call (CallSid)")
        return attempt

    async def webhook_parameters(self, token: str, form: dict[str, str]) -> dict[str, str]:
        """The extra stream parameters of a voice webhook ({} for an inbound call).

        Raises:
            HTTPException: 403/404 for an outbound-api webhook without a live attempt.
        """
        if form.get("Direction") != "outbound-api":
            return {}
        call_sid = form.get("CallSid", "")
        attempt = await self._attempt(token, call_sid)
        if attempt.ended:
            raise HTTPException(403, "the attempt is over")
        if attempt.provider_call_id is None and call_sid:  # the webhook beat calls.create
            await self._attempts.mark_dialed(attempt.id, call_sid)
        parameters = {ATTEMPT_PARAMETER: attempt.id}
        if form.get("AnsweredBy"):
            parameters[ANSWERED_BY_PARAMETER] = form["AnsweredBy"][:32]
        return parameters

    async def stream_call(
        self, call: CallTransport, start: TwilioStreamStart
    ) -> CallTransport | None:
        """``call`` as its attempt's outbound call (unchanged when inbound; None: refused)."""
        attempt_id = start.custom_parameters.get(ATTEMPT_PARAMETER)
        if not attempt_id:
            return call
        attempt = await self._attempts.get(attempt_id)
        if attempt is None or attempt.ended:
            return None
        if attempt.provider_call_id not in (None, start.call_sid):
            return None
        answered_by = start.custom_parameters.get(ANSWERED_BY_PARAMETER)
        return CallTransport(call.transport, outbound_spec(call.spec, attempt, answered_by))

    async def call_status(self, token: str, form: dict[str, str]) -> Attempt:
        """Apply a status callback (idempotent); returns the attempt as it is now.

        Raises:
            HTTPException: 403/404 (token, attempt), 400 for an unknown ``CallStatus``.
        """
        attempt = await self._attempt(token, form.get("CallSid", ""))
        status = form.get("CallStatus", "")
        if status in ("queued", "initiated"):
            return attempt
        if status in PROGRESS_STATUSES:
            answered_by = form.get("AnsweredBy") or None
            await self._attempts.mark_status(attempt.id, PROGRESS_STATUSES[status], answered_by)
        elif status in FINAL_STATUSES:
            code = form.get("ErrorCode") or form.get("SipResponseCode") or ""
            await self._attempts.finish(
                attempt.id,
                FINAL_STATUSES[status],
                error_code=int(code) if code.isdigit() else None,
                error=f"Twilio status {status}" if status == "failed" else None,
            )
        else:
            raise HTTPException(400, "'CallStatus' is not a Twilio call status")
        return await self._attempts.get(attempt.id) or attempt

    async def amd_status(self, token: str, form: dict[str, str]) -> MachineVerdict:
        """Apply an ``AnsweredBy`` callback: the attempt's verdict, and the live call told.

        Raises:
            HTTPException: 403/404 (token, attempt), 400 without ``AnsweredBy``.
        """
        attempt = await self._attempt(token, form.get("CallSid", ""))
        answered_by = form.get("AnsweredBy", "")
        if not answered_by:
            raise HTTPException(400, "'AnsweredBy' is required")
        await self._attempts.set_answered_by(attempt.id, answered_by)
        verdict = machine_verdict(answered_by)
        duration = form.get("MachineDetectionDuration", "")
        payload: dict[str, Any] = {
            "attempt_id": attempt.id,
            "verdict": verdict.value,
            "decided_after_s": int(duration) / 1000 if duration.isdigit() else 0.0,
        }
        if await self._live.deliver(attempt.id, _verdict_frame(payload)):
            return verdict
        call_sid = form.get("CallSid", "") or attempt.provider_call_id or ""
        if self._inbox is not None and call_sid:
            try:
                await self._inbox.ask(call_sid, MACHINE_VERDICT, payload, timeout_s=REACH_TIMEOUT_S)
            except CallUnreachableError as e:  # not running (yet, or any more): the attempt has it
                logger.info(f"AMD verdict for attempt {attempt.id} not delivered ({e.reason})")
            except SharedStateError as e:
                logger.warning(f"AMD verdict for attempt {attempt.id} not delivered ({e})")
        return verdict

    async def _verdict_request(self, call_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """On the call's owner: the verdict into the live call (another process asked)."""
        delivered = await self._live.deliver(str(payload["attempt_id"]), _verdict_frame(payload))
        return {"delivered": delivered}


def _verdict_frame(payload: dict[str, Any]) -> MachineVerdictFrame:
    return MachineVerdictFrame(
        verdict=str(payload["verdict"]),
        source="provider",
        decided_after_s=float(payload.get("decided_after_s") or 0.0),
    )
