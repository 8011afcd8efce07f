"""A phone call over Twilio: the voice webhook and the Media Stream it names.

Routes:
    POST /twilio/voice   Twilio's voice webhook: answers TwiML ``<Connect><Stream>``; past the
                         call cap (or while the process drains) as the agent file's
                         ``when_full`` says (bot/web/when_full.py)
    WS   /twilio/stream  Twilio Media Streams: the call runs as long as the socket

Both are checked by the :class:`~bot.web.twilio_gate.TwilioGate` (closed routes,
signatures, each stream bound once to the webhook that issued it). An outbound call's
answered leg comes in the same way and is joined to its attempt (``outbound.twilio``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response, WebSocket
from loguru import logger

from bot.call.runtime import Runtime
from bot.call.transport import twilio_call
from bot.client_address import ClientAddresses
from bot.outbound.in_call import RunCall
from bot.outbound.server import Outbound
from bot.settings import Settings
from bot.web.admission import Admission, Refused
from bot.web.call_manager import CallStarter
from bot.web.twilio_gate import TwilioGate
from bot.web.when_full import when_full_twiml
from transports import twilio
from transports.input_batching import BatchingPolicy


def create_twilio_router(
    settings: Settings,
    runtime: Runtime,
    *,
    gate: TwilioGate,
    admission: Admission,
    addresses: ClientAddresses,
    outbound: Outbound,
    start_call: CallStarter,
    run_call: RunCall,
    batching: BatchingPolicy,
) -> APIRouter:
    """The Twilio webhook and stream routes.

    Args:
        settings: The server's settings.
        runtime: The server's runtime.
        gate: Checks every Twilio request and binds each stream to its webhook.
        admission: The process's call cap and drain (the stream's call takes its slot).
        addresses: Reads a request's client address.
        outbound: The server's outbound parts (an outbound call's answered leg).
        start_call: The server's ``CallManager.start``.
        run_call: Runs a call's pipeline (``bot.call.pipeline.run_call``).
        batching: The server's input batching.
    """
    router = APIRouter()

    @router.post("/twilio/voice")
    async def twilio_voice(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        public_url = await gate.check_webhook(request, form)
        attempt = request.query_params.get("attempt", "")
        extra = await outbound.twilio.webhook_parameters(attempt, form)  # outbound-api leg
        # a callee answering a call this deployment placed was promised the call at the dial
        route = "twilio-answer" if extra else "twilio-voice"
        try:  # no slot is taken: the stream takes it
            admission.check_room(route, addresses.of(request))
        except Refused:  # full, or draining (a new inbound call): as the agent file says
            xml = when_full_twiml(runtime.agent, public_url)
            return Response(content=xml, media_type="application/xml")
        ws_base = "wss://" if public_url.startswith("https://") else "ws://"
        stream_url = ws_base + urlsplit(public_url).netloc + "/twilio/stream"
        xml = twilio.build_stream_twiml(stream_url, gate.stream_parameters(form, extra))
        return Response(content=xml, media_type="application/xml")

    @router.websocket("/twilio/stream")
    async def twilio_stream(websocket: WebSocket) -> None:
        public_url = await gate.open_stream(websocket)
        if public_url is None:
            return
        await websocket.accept()
        try:
            start = await twilio.read_stream_start(websocket, timeout_s=10)
        except twilio.StreamStartError as e:
            logger.warning(f"Twilio stream rejected: {e}")
            await websocket.close(code=1003)
            return
        lease = await gate.admit_stream(websocket, start)  # bound to its webhook, once
        if lease is None:
            return
        async with lease:
            call = twilio_call(websocket, start, settings, public_url=public_url, batching=batching)
            call = await outbound.twilio.stream_call(call, start)  # an outbound call's attempt
            if call is None:
                logger.warning(f"Twilio stream for {start.call_sid} refused: attempt over")
                await websocket.close(code=1008, reason="the outbound attempt is over")
                return
            with logger.contextualize(call_id=call.spec.call_id):  # copied into the call's task
                logger.info(f"Twilio call {start.call_sid} stream connected")
                run = outbound.calls.run(run_call, call.transport, call.spec, runtime)
                await start_call(run, call.spec, None)  # lives as long as the socket

    return router
