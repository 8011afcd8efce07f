"""Twilio's callbacks during a warm transfer, and the hold music.

Routes:
    POST /twilio/whisper?h=TOKEN          TwiML read to the person answering (the summary)
    POST /twilio/transfer-status?h=TOKEN  Dial's action: on no answer, apologise and offer a
                                          callback (keypad 1 or "yes")
    POST /twilio/callback?h=TOKEN         the caller's answer to that offer
    GET|POST /twilio/hold                 TwiML looping the hold music (Enqueue wait URL)
    GET  /twilio/hold.wav                 the hold music

Twilio's POSTs are signature-checked like the voice webhook, on the process that receives
them. The hand-off's ticket is in the deployment's shared state, so any process answers
them alike; what they learn (the dial's status, a callback asked for) is written back to
the ticket and joins the call's event stream (``transfer_dial``: ``status``;
``callback``: ``accepted``) for whoever follows it. By then Twilio has ended the call's
media stream, so there is no live pipeline to reach. Log lines carry the call id and
Twilio's statuses only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from loguru import logger

from bot.call.handoff_desk import HandoffDesk, HandoffTicket
from bot.call.runtime import Runtime
from bot.call.transport import twilio_webhook_allowed
from bot.operator.events import CallEventReader
from integrations.crm.base import CRMError
from integrations.hold_audio import hold_music_wav
from integrations.shared_state.base import SharedStateError
from integrations.twilio_rest import say_twiml

ANSWERED = frozenset({"completed", "answered", "in-progress"})
YES_WORDS = ("yes", "yeah", "yep", "sure", "please", "okay", "ok")


def create_handoff_router(
    runtime: Runtime,
    public_url: Callable[[Request], str],
    events: CallEventReader | None = None,
) -> APIRouter:
    """The transfer callbacks and hold music routes (``events``: the calls' event streams)."""
    settings = runtime.settings
    agent = runtime.agent
    desk = runtime.handoffs or HandoffDesk(runtime.shared)
    router = APIRouter()

    async def checked_form(request: Request) -> dict[str, str]:
        form = {k: str(v) for k, v in (await request.form()).items()}
        if not twilio_webhook_allowed(settings, request, form, public_url(request)):
            logger.warning(f"Twilio {request.url.path} rejected: bad signature")
            raise HTTPException(403, "invalid Twilio signature")
        return form

    async def ticket_for(request: Request) -> HandoffTicket:
        try:
            ticket = await desk.get(request.query_params.get("h", ""))
        except SharedStateError:
            raise HTTPException(503, "the hand-off cannot be read now: try again") from None
        if ticket is None:
            raise HTTPException(404, "unknown or expired hand-off")
        return ticket

    async def learnt(request: Request, ticket: HandoffTicket, kind: str, data: dict[str, Any]):
        """Keep what a callback learnt on the ticket and in the call's event stream."""
        try:
            await desk.update(request.query_params.get("h", ""), ticket)
            if events is not None:
                await events.note(ticket.call_id, kind, data)
        except SharedStateError as e:  # the caller's call goes on; only the record misses it
            logger.bind(call_id=ticket.call_id).warning(f"{kind} not shared ({e})")

    def twiml(xml: str) -> Response:
        return Response(content=xml, media_type="application/xml")

    @router.post("/twilio/whisper")
    async def whisper(request: Request) -> Response:
        await checked_form(request)
        ticket = await ticket_for(request)
        logger.bind(call_id=ticket.call_id).info("whisper played to the person answering")
        return twiml(say_twiml(ticket.whisper))

    @router.post("/twilio/transfer-status")
    async def transfer_status(request: Request) -> Response:
        form = await checked_form(request)
        ticket = await ticket_for(request)
        status = (form.get("DialCallStatus") or form.get("QueueResult") or "unknown")[:32]
        ticket.dial_status = status
        await learnt(request, ticket, "transfer_dial", {"status": status})
        log = logger.bind(call_id=ticket.call_id)
        if status in ANSWERED or status == "hangup":
            log.info(f"transfer ended ({status})")
            return twiml(say_twiml(hang_up=True))
        log.warning(f"transfer failed after the redirect ({status})")
        from twilio.twiml.voice_response import Gather, VoiceResponse

        response = VoiceResponse()
        gather = Gather(
            input="dtmf speech",
            num_digits=1,
            timeout=6,
            hints="yes, no",
            action=f"/twilio/callback?h={request.query_params.get('h', '')}",
        )
        gather.say(
            f"{agent.transfer.failure_line} {agent.transfer.callback_offer} "
            "Press 1 or say yes for a callback."
        )
        response.append(gather)
        response.say("Thanks for calling. Goodbye.")
        response.hangup()
        return twiml(str(response.to_xml()))

    @router.post("/twilio/callback")
    async def callback(request: Request) -> Response:
        form = await checked_form(request)
        ticket = await ticket_for(request)
        speech = form.get("SpeechResult", "").lower()
        accepted = form.get("Digits") == "1" or any(w in speech.split() for w in YES_WORDS)
        ticket.callback_requested = accepted
        await learnt(request, ticket, "callback", {"accepted": accepted})
        if not accepted:
            return twiml(say_twiml("No problem. Thanks for calling. Goodbye.", hang_up=True))
        log = logger.bind(call_id=ticket.call_id)
        log.info("caller accepted a callback after a failed transfer")
        if runtime.crm is not None and ticket.customer_id:
            try:
                await runtime.crm.add_pending_action(
                    ticket.customer_id, "callback", "Transfer failed; caller asked for a callback"
                )
            except CRMError as e:
                log.warning(f"CRM callback not recorded ({e})")
        return twiml(say_twiml(agent.transfer.callback_confirmed, "Goodbye.", hang_up=True))

    @router.api_route("/twilio/hold", methods=["GET", "POST"])
    async def hold(request: Request) -> Response:
        from twilio.twiml.voice_response import VoiceResponse

        response = VoiceResponse()
        response.play(f"{public_url(request)}/twilio/hold.wav", loop=0)
        return twiml(str(response.to_xml()))

    @router.get("/twilio/hold.wav")
    async def hold_wav() -> Response:
        return Response(
            content=hold_music_wav(),
            media_type="audio/wav",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    return router
