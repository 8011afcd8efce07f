"""The outbound routes: place one call, follow it, and Twilio's callbacks about it.

POST /api/calls/outbound          place a call (operator credentials; counts against the
                                  call cap: 503 when it is full)
    {"to": "+15555550123", "agent": "<key>", "variables": {...}, "channel": "twilio"}
    (channel ``twilio``, ``sip``: an INVITE through the trunk, or ``browser``)
    -> 201 {"attempt_id", "provider_call_id", "status", "ring_url"}
    400 names the field (bad number, unknown agent, a variable the script needs),
    409 the number is on the do-not-call list, 502 Twilio refused (its code included),
    503 the channel is not configured here (names the settings).
GET  /api/calls/outbound/{id}     the attempt (operator credentials)
POST /api/calls/ring/decline      the browser page declines its ring {"ring": token}
POST /twilio/call-status          Twilio's status callback (signed; ``?attempt=``)
POST /twilio/amd-status           Twilio's asynchronous AnsweredBy (signed; ``?attempt=``)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from loguru import logger

from bot.call.runtime import Runtime
from bot.operator.auth import OperatorAuth
from bot.outbound.agents import default_agent_key, find_agent, missing_variables
from bot.outbound.placer import CallRequest, DoNotCallError, PlaceError
from bot.outbound.ring import RingError
from bot.outbound.server import Outbound, twilio_dial_problem
from bot.outbound.sip_plan import sip_dial_problem
from bot.web.json_body import json_object
from bot.web.twilio_gate import TwilioGate
from integrations.outbound.store import OutboundStoreError, e164

CHANNELS = ("twilio", "sip", "browser")
MAX_BODY_BYTES = 64 * 1024
MAX_VARIABLES = 50
MAX_VALUE_CHARS = 500


def create_outbound_router(
    outbound: Outbound,
    runtime: Runtime,
    operator: OperatorAuth,
    twilio_gate: TwilioGate,
    public_url: Callable[[Request], str],
) -> APIRouter:
    """The routes of the module, on the server's parts."""
    router = APIRouter()
    settings = runtime.settings

    @router.post(
        "/api/calls/outbound",
        status_code=201,
        dependencies=[Depends(operator.require)],
        response_model=None,
    )
    async def place_call(request: Request) -> dict[str, Any] | JSONResponse:
        """Place one outbound call (see the module)."""
        body = await _json_body(request)
        call = _call_request(body, runtime)
        if call.channel == "twilio":
            problem = twilio_dial_problem(settings) or twilio_gate.closed_reason
            if problem:
                raise HTTPException(503, problem)
        if call.channel == "sip":
            problem = sip_dial_problem(settings)
            if problem is None and not outbound.sip.ready:
                problem = "the SIP endpoint is not running in this server process"
            if problem:
                raise HTTPException(503, problem)
        try:
            placed = await outbound.placer.place(call, public_url(request))
        except DoNotCallError:
            raise HTTPException(409, "'to' is on the do-not-call list: never called") from None
        except OutboundStoreError:
            raise HTTPException(
                400, "'to' is not a phone number (E.164, e.g. +15555550123)"
            ) from None
        except PlaceError as e:
            return JSONResponse(
                {
                    "detail": f"the call could not be placed (error code {e.code})",
                    "attempt_id": e.attempt.id,
                    "status": e.attempt.state,
                    "disposition": e.attempt.disposition,
                    "error_code": e.code,
                },
                status_code=502,
            )
        return {
            "attempt_id": placed.attempt.id,
            "provider_call_id": placed.dialled.provider_call_id,
            "status": placed.attempt.state,
            "ring_url": placed.dialled.ring_url,
        }

    @router.get("/api/calls/outbound/{attempt_id}", dependencies=[Depends(operator.require)])
    async def get_attempt(attempt_id: str) -> dict[str, Any]:
        """One attempt: its state, disposition, provider call id and call record id."""
        attempt = await outbound.attempts.get(attempt_id[:64])
        if attempt is None:
            raise HTTPException(404, "no such attempt")
        return attempt.as_dict()

    @router.post("/api/calls/ring/decline")
    async def decline_ring(request: Request) -> dict[str, Any]:
        """The browser page declined its incoming call: the attempt ends as no-answer."""
        ring = (await _json_body(request)).get("ring")
        if not isinstance(ring, str) or not ring:
            raise HTTPException(400, "'ring' is required: the ring token from the page's link")
        try:
            attempt = await outbound.rings.decline(ring)
        except RingError as e:
            raise HTTPException(403, str(e)) from None
        return {"attempt_id": attempt.id if attempt else None, "status": "declined"}

    async def signed_form(request: Request) -> tuple[str, dict[str, str]]:
        form = {k: str(v) for k, v in (await request.form()).items()}
        await twilio_gate.check_callback(request, form)
        return request.query_params.get("attempt", ""), form

    @router.post("/twilio/call-status", dependencies=[Depends(twilio_gate.require_open)])
    async def call_status(request: Request) -> dict[str, Any]:
        """Twilio's status callback for an outbound call."""
        token, form = await signed_form(request)
        attempt = await outbound.twilio.call_status(token, form)
        return {"attempt_id": attempt.id, "state": attempt.state}

    @router.post("/twilio/amd-status", dependencies=[Depends(twilio_gate.require_open)])
    async def amd_status(request: Request) -> dict[str, Any]:
        """Twilio's asynchronous answering-machine verdict for an outbound call."""
        token, form = await signed_form(request)
        verdict = await outbound.twilio.amd_status(token, form)
        return {"verdict": verdict.value}

    return router


async def _json_body(request: Request) -> dict[str, Any]:
    return await json_object(request, MAX_BODY_BYTES)


def _call_request(body: Mapping[str, Any], runtime: Runtime) -> CallRequest:
    """The call a request asks for (raises 400 naming the field)."""
    channel = body.get("channel", "twilio")
    if channel not in CHANNELS:
        raise HTTPException(400, f"'channel' must be one of {', '.join(CHANNELS)}")
    key = body.get("agent") or default_agent_key(runtime)
    agent = find_agent(runtime, key) if isinstance(key, str) else None
    if agent is None:
        raise HTTPException(400, "'agent' is not an agent of this server (give its file's stem)")
    variables = body.get("variables") or {}
    if not isinstance(variables, dict) or len(cast(dict[str, Any], variables)) > MAX_VARIABLES:
        raise HTTPException(400, f"'variables' must be an object of at most {MAX_VARIABLES}")
    values: dict[str, str] = {}
    for name, value in cast(dict[str, Any], variables).items():
        if not isinstance(value, str | int | float) or len(str(value)) > MAX_VALUE_CHARS:
            raise HTTPException(400, f"'variables.{name[:64]}' must be a short text")
        values[str(name)] = str(value)
    missing = missing_variables(agent, values)
    if missing:
        raise HTTPException(
            400,
            f"'variables.{missing[0]}' is required by the agent's script ({', '.join(missing)})",
        )
    to = body.get("to") or ("browser" if channel == "browser" else "")
    if not isinstance(to, str) or not to:
        raise HTTPException(400, "'to' is required: the number to call (E.164)")
    if channel != "browser":
        try:
            to = e164(to)
        except OutboundStoreError:
            raise HTTPException(
                400, "'to' is not a phone number (E.164, e.g. +15555550123)"
            ) from None
    elif len(to) > 64:
        raise HTTPException(400, "'to' must be at most 64 characters for a browser call")
    logger.debug(f"outbound call request ({channel}, {len(values)} variables)")
    return CallRequest(agent=key, to=to, variables=values, channel=channel)
