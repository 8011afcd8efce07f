"""The internal route a campaign worker places a SIP attempt through.

POST /sip/dial   {"attempt": "<the attempt's signed token>"}
    -> 202 {"attempt_id", "provider_call_id"}: the INVITE is on its way; the attempt ends
       as the SIP answer or the call says (``bot/outbound/sip_leg.py``).
    400 the body is not JSON with ``attempt``; 403 a missing, forged or expired token;
    404 an unknown attempt; 409 not a ``sip`` attempt, not claimed for dialling, or dialled
    already; 503 no worker serves SIP, or no place under the call cap (with
    ``Retry-After``). On a worker that does not hold the SIP port the dial is forwarded to
    the one that does (``bot/outbound/sip_forward.py``) and its answer relayed.

The token (``bot/outbound/tokens.py``, signed with the deployment's secret) is the
authentication: it names the one attempt to dial, and only a process holding the secret
(the server, a ``callagent worker``) can make one. The request is logged by attempt id;
the token and the number never are.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from bot.outbound.sip_dialer import SIP_DIAL_PATH
from bot.outbound.sip_leg import SipLegError, SipOutboundLeg
from bot.web.admission import CAPACITY_RETRY_AFTER_S
from bot.web.json_body import json_object

MAX_BODY_BYTES = 4096
MAX_TOKEN_CHARS = 512


def create_sip_dial_router(leg: SipOutboundLeg) -> APIRouter:
    """``POST /sip/dial`` on ``leg``."""
    router = APIRouter()

    @router.post(SIP_DIAL_PATH, status_code=202, response_model=None)
    async def sip_dial(request: Request) -> dict[str, Any] | JSONResponse:
        """Dial the attempt the token names (see the module)."""
        token = _token(await json_object(request, MAX_BODY_BYTES, '{"attempt": token}'))
        try:
            dial_id = await leg.dial_token(token)
        except SipLegError as e:
            headers = {"Retry-After": str(CAPACITY_RETRY_AFTER_S)} if e.status == 503 else None
            return JSONResponse({"detail": str(e)}, status_code=e.status, headers=headers)
        return {"attempt_id": token.partition(".")[0], "provider_call_id": dial_id}

    return router


def _token(body: dict[str, Any]) -> str:
    """The ``attempt`` field of the body (raises 400 naming it)."""
    token = body.get("attempt")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise HTTPException(400, "'attempt' is required: the attempt's signed token")
    return token
