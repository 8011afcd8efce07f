"""The agent server: one FastAPI app for browser calls, Twilio calls and health checks.

Routes:
    GET  /               the offline browser call page (WebRTC transport)
    POST /api/offer      WebRTC signalling for that page (origin, credentials off loopback;
                         see bot/web/call_access.py)
    POST /api/call-tokens  a single-use browser call token (operator token)
    POST /api/rooms      Daily / LiveKit: put the bot in a room and return how to join it
                         (see bot/web/room_routes.py)
    POST /twilio/voice   Twilio voice webhook, answers TwiML <Connect><Stream>
    WS   /twilio/stream  Twilio Media Streams (both: see bot/web/twilio_routes.py)
    POST /sip/dial       a campaign worker's SIP attempt, placed on this process's SIP trunk
                         (the attempt's signed token; see bot/web/sip_dial_routes.py)
    POST /api/calls/outbound, GET /api/calls/outbound/{id}, POST /twilio/call-status,
         /twilio/amd-status, /api/calls/ring/decline
                         one outbound call (see bot/web/outbound_routes.py)
    POST /twilio/whisper, /twilio/transfer-status, /twilio/callback; GET /twilio/hold(.wav)
                         warm-transfer callbacks and hold music (see bot/web/handoff_routes.py)
    GET  /healthz        liveness and active call count
    GET  /readyz         readiness: 200 while calls are taken, 503 full or draining (with the
                         load and the SIP endpoint's role; see bot/web/readiness.py)
    GET  /api/calls...   call records JSON (operator token; see bot/operator/calls_api.py)
    GET  /dashboard      operator dashboard (operator token; see bot/operator/dashboard.py)
    /api/campaigns..., /api/dnc, /dashboard/campaigns   campaigns and the do-not-call list
                         (operator token; see bot/operator/campaigns_api.py)
    GET  /docs, /redoc, /openapi.json   API docs (operator token; see bot/operator/api_docs.py)

Every HTTP response carries the security headers of bot/web/security_headers.py. Every
call-starting route (offer, rooms, Twilio voice and stream) is admitted by one mechanism,
``bot/web/admission.py``: a per-client rate and a per-process call cap. A phone call past the
cap (or while the process drains, ``app.state.drain``: bot/web/drain.py) is answered as the
agent file's ``when_full`` says (bot/web/when_full.py). With ``CALLAGENT_SIP_LISTEN`` set, the
SIP endpoint starts and stops with the app (bot/web/sip_server.py); its INVITEs share the
same cap and drain (486 full, 503 draining).
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any, TypedDict

from fastapi import Depends, FastAPI
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

from bot.call.handoff_desk import HandoffDesk
from bot.call.pipeline import run_call
from bot.call.records import open_call_records
from bot.call.runtime import Runtime
from bot.call.startup import load_runtime
from bot.call.transport import (
    public_base_url,
    webrtc_call,
)
from bot.campaign_agents import agent_variables
from bot.client_address import ClientAddresses
from bot.operator.api_docs import create_docs_router
from bot.operator.auth import OperatorAuth
from bot.operator.calls_api import create_calls_router
from bot.operator.campaigns_api import create_campaigns_router
from bot.operator.campaigns_dashboard import create_campaigns_dashboard_router
from bot.operator.dashboard import create_dashboard_router
from bot.operator.diagnostics import create_diagnostics_router
from bot.operator.events import CallEventBus, create_call_events_router
from bot.operator.shared_events import SharedCallEvents
from bot.outbound.server import build_outbound
from bot.outbound.wiring import (
    CampaignAttemptEnds,
    PartsFactory,
    campaign_dial_problem,
    default_parts,
    start_server_queue,
)
from bot.settings import Settings
from bot.web.admission import AdmissionMiddleware, LocalAdmission
from bot.web.call_access import (
    BrowserCallGate,
    CallTokens,
    caller_access,
    create_call_tokens_router,
)
from bot.web.call_manager import CallManager
from bot.web.drain import Drain
from bot.web.handoff_routes import create_handoff_router
from bot.web.outbound_routes import create_outbound_router
from bot.web.readiness import create_readiness_router
from bot.web.ring_gate import RING_PARAMETER, RingOfferGate
from bot.web.room_routes import create_rooms_router
from bot.web.security_headers import SecurityHeaders
from bot.web.shared_state_errors import shared_state_unavailable
from bot.web.sip_dial_routes import create_sip_dial_router
from bot.web.sip_outbound import connect_sip_outbound
from bot.web.sip_server import EndpointFactory, SipServer, default_endpoint
from bot.web.twilio_gate import TwilioGate
from bot.web.twilio_routes import create_twilio_router
from bot.web.webrtc_peers import InboxPeers
from integrations.shared_state.base import SharedStateError
from integrations.shared_state.calls import CallInbox, CallOwners
from integrations.shared_state.factory import check_reachable, open_shared_state
from integrations.storage.workers import WorkerId
from transports import webrtc
from transports.input_batching import BatchingPolicy, LoadAdaptiveBatching, NoBatching
from transports.twilio_binding import SharedCallSidLedger

STATS_WARM_WAIT_SECS = 10.0
"""Longest a stopping server waits for the dashboard statistics' warm-up thread (it logs
when done; after the process's log sinks have closed that was a "Logging error")."""


class WebSocketOptions(TypedDict):
    """uvicorn's WebSocket keyword arguments, typed so they can be splatted into ``uvicorn.run``."""

    ws_max_size: int
    ws_per_message_deflate: bool


WEBSOCKET_OPTIONS: WebSocketOptions = {
    # a Media Streams message is about 300 bytes; anything near this is malformed
    "ws_max_size": 256 * 1024,
    # Twilio does not compress; offered by other clients, deflating every 20 ms frame
    # cost the event loop about 4 % of its time with eight calls (py-spy)
    "ws_per_message_deflate": False,
}
"""uvicorn's WebSocket settings for the agent's server."""


async def _stop_campaign_consumer(app: FastAPI) -> None:
    """Stop the in-process campaign consumer (no new dials; running tasks finish)."""
    queue = getattr(app.state, "campaign_queue", None)
    if queue is not None:
        await queue.stop()


def create_app(
    settings: Settings,
    runtime: Runtime | None = None,
    *,
    campaign_parts: PartsFactory = default_parts,
    sip_endpoint: EndpointFactory = default_endpoint,
) -> FastAPI:
    """Build the server app; models load once here and are shared by every call.

    ``campaign_parts`` builds the campaign store and dialler of the campaign queue
    (``app.state.campaign_queue``, started with the app; tests pass their own);
    ``sip_endpoint`` builds the SIP endpoint (``app.state.sip``, started with the app when
    ``CALLAGENT_SIP_LISTEN`` is set).
    """
    runtime = runtime or load_runtime(settings)
    if settings.shared_state_url and not runtime.shared.distributed:  # a runtime built by hand
        runtime.shared = open_shared_state(settings.shared_state_url)
    if runtime.records is None:
        runtime.records = open_call_records(settings)  # migrates the schema at start-up
    # what reaches a call from other processes: its owner, hand-off tickets, event stream
    if runtime.inbox is None:
        runtime.inbox = CallInbox(CallOwners(runtime.shared, str(WorkerId.current())))
    inbox = runtime.inbox
    if runtime.handoffs is None or runtime.handoffs.shared is not runtime.shared:
        runtime.handoffs = HandoffDesk(runtime.shared)
    call_events = runtime.call_events
    if not isinstance(call_events, CallEventBus | SharedCallEvents):  # the API reads it
        call_events = runtime.call_events = (
            SharedCallEvents(runtime.shared, inbox.owners)
            if runtime.shared.distributed
            else CallEventBus()
        )
    calls = CallManager(inbox.owners)
    batching: BatchingPolicy = (
        LoadAdaptiveBatching(
            lambda: calls.active * max(1, settings.workers),  # the host's calls, as host_calls
            settings.audio_batch_from_calls,
            settings.audio_batch_60ms_from_calls,
        )
        if settings.audio_batch_from_calls > 0 or settings.audio_batch_60ms_from_calls > 0
        else NoBatching()
    )

    addresses = ClientAddresses.from_setting(settings.trusted_proxies)
    admission = LocalAdmission(
        settings.max_calls,
        settings.call_rate_per_minute,
        settings.call_rate_burst,
        addresses=addresses,
    )
    outbound = build_outbound(settings, runtime, runtime.records)
    sip = SipServer(
        settings,
        runtime,
        calls.start,
        admission,
        endpoint_factory=sip_endpoint,
        batching=batching,
        lease=outbound.sip.forwarding,  # siblings forward their SIP dials to the SIP server
    )
    operator = OperatorAuth.from_settings(settings, addresses, runtime.shared)
    call_tokens = CallTokens(
        settings.operator_token, settings.call_token_ttl_secs, shared=runtime.shared
    )
    # outbound SIP calls (the sip channel, campaign workers' POST /sip/dial) on this endpoint
    connect_sip_outbound(
        outbound, runtime, lambda: sip.endpoint, admission, calls.start, run_call, batching
    )

    async def on_webrtc_connection(
        connection: SmallWebRTCConnection, params: dict[str, str], slot: webrtc.Admitted
    ) -> None:
        call = webrtc_call(connection, caller=params.get("caller"))
        ring = params.get(RING_PARAMETER)
        if ring is not None:  # answers an outbound call's ring
            answered = await outbound.ring_answered(call, ring)
            if answered is None:
                raise ValueError("the rung attempt is over")  # the router hangs up
            call = answered
        run = outbound.calls.run(run_call, call.transport, call.spec, runtime)
        calls.start(run, call.spec, slot)

    peers = InboxPeers(inbox)  # trickled ICE that reached another process finds its peer
    webrtc_router = webrtc.create_webrtc_router(
        on_webrtc_connection,
        gate=RingOfferGate(
            BrowserCallGate(
                access=caller_access(settings.host, settings.public_url),
                operator=operator,
                tokens=call_tokens,
                admission=admission,
                addresses=addresses,
                own_origin=lambda r: public_base_url(settings, r),
                allowed_origins=settings.allowed_origins.split(","),
            ),
            outbound.rings,
            admission,
            addresses,
        ),
        connect_timeout_s=settings.webrtc_connect_timeout_secs,
        peers=peers,
    )
    peers.serve(webrtc_router)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await check_reachable(runtime.shared)  # a wrong CALLAGENT_SHARED_STATE_URL stops here
        await inbox.start()  # requests for this process's calls from the others
        await operator.announce_login_link()  # loopback server without an operator token only
        campaign_queue = None
        if runtime.records is not None:  # the queue's truth is in the call-record database
            campaign_queue = await start_server_queue(
                settings, runtime.records.store.engine, parts=campaign_parts
            )
        _app.state.campaign_queue = campaign_queue
        if campaign_queue is not None:  # a campaign attempt's end applies its retry rules
            outbound.listeners.add(CampaignAttemptEnds(campaign_queue.runner))
        await sip.start()  # CALLAGENT_SIP_LISTEN; a port another worker holds: standby
        # started last: a start-up that fails above never reaches the join below, and the
        # thread's log line then met a closed sink ("Logging error in Loguru Handler" in CI)
        warming = None
        if runtime.records is not None:
            warming = runtime.records.store.warm_stats_in_background()  # first view is fast
        yield
        if campaign_queue is not None:
            await campaign_queue.stop()  # no new dials; running tasks finish
        await outbound.close()
        await calls.stop_all()
        await sip.stop()  # after the calls: a cancelled call's BYE still goes out
        await inbox.aclose()
        if runtime.records is not None:
            await asyncio.to_thread(runtime.records.store.flush)
        if warming is not None:
            await asyncio.to_thread(warming.join, STATS_WARM_WAIT_SECS)
        await webrtc_router.close()
        await runtime.shared.aclose()

    # closed routes, signatures, stream binding (each CallSid once across the deployment)
    twilio_gate = TwilioGate(settings, SharedCallSidLedger(runtime.shared))
    twilio_gate.log_startup()
    # the API docs are for operators: served by create_docs_router, not FastAPI's public defaults
    app = FastAPI(
        title="callagent", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.add_exception_handler(SharedStateError, shared_state_unavailable)  # 503, never 500
    app.add_middleware(AdmissionMiddleware, admission=admission, addresses=addresses)
    # added last, so outermost: refusals of the admission middleware carry the headers too
    app.add_middleware(SecurityHeaders, https=settings.public_url.startswith("https://"))
    app.state.runtime = runtime
    app.state.calls = calls
    app.state.admission = admission
    app.state.outbound = outbound  # attempt listeners, live outbound calls
    app.state.sip = sip  # the SIP endpoint (its dial() places calls on the trunk)
    # SIGTERM: stop taking calls, let the live ones finish (bot/serving/server.py runs it)
    app.state.drain = Drain(
        admission,
        runtime,
        lambda: max(calls.active, admission.in_use),
        drain_secs=settings.drain_secs,
        stop_dialing=lambda: _stop_campaign_consumer(app),
    )

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "agent": runtime.agent.name, "active_calls": calls.active}

    app.include_router(webrtc_router)
    app.include_router(
        create_rooms_router(
            settings,
            runtime,
            admission=admission,
            addresses=addresses,
            start_call=calls.start,
            run_call=run_call,
        )
    )
    app.include_router(
        create_twilio_router(
            settings,
            runtime,
            gate=twilio_gate,
            admission=admission,
            addresses=addresses,
            outbound=outbound,
            start_call=calls.start,
            run_call=run_call,
            batching=batching,
        )
    )
    app.include_router(create_readiness_router(admission, lambda: calls.active, sip=sip.status))
    app.include_router(
        create_handoff_router(runtime, twilio_gate.public_url, call_events),
        dependencies=[Depends(twilio_gate.require_open)],
    )
    app.include_router(create_docs_router(app.openapi, operator, title=app.title))
    app.include_router(create_call_tokens_router(call_tokens, operator))
    app.include_router(
        create_outbound_router(
            outbound, runtime, operator, twilio_gate, lambda r: public_base_url(settings, r)
        )
    )
    app.include_router(create_sip_dial_router(outbound.sip))  # campaign workers' SIP dials
    app.include_router(create_calls_router(lambda: runtime.records, operator))
    app.include_router(create_dashboard_router(lambda: runtime.records, operator))

    def kick_campaign(campaign_id: str) -> None:
        """A campaign was created or resumed: the queue (started with the app) fills it."""
        queue = getattr(app.state, "campaign_queue", None)
        if queue is not None:  # an enqueue writes to the queue's storage: off the loop
            asyncio.get_running_loop().run_in_executor(None, queue.kick, campaign_id)

    app.include_router(
        create_campaigns_router(
            lambda: runtime.records,
            operator,
            lambda key: agent_variables(settings, key),
            on_campaign_changed=kick_campaign,
            dial_problem=lambda: campaign_dial_problem(settings),
        )
    )
    app.include_router(
        create_campaigns_dashboard_router(
            lambda: runtime.records, operator, on_campaign_changed=kick_campaign
        )
    )
    app.include_router(create_call_events_router(call_events, operator))
    app.include_router(
        create_diagnostics_router(lambda: calls.active, operator, admission=admission.stats)
    )
    return app
