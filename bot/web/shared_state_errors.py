"""A request that needs the shared state while it cannot be reached gets 503, never 500.

Operator auth (sessions, lock-outs), call tokens, browser rings and the Twilio webhook's
CallSid check read ``Runtime.shared`` on every request; when its server (Redis, PostgreSQL)
is down they raise :class:`~integrations.shared_state.base.SharedStateError`. The server
answers those with 503 and ``Retry-After`` (Twilio then uses the number's fallback URL),
logged with the route and the error, which names the operation and ids only. Nothing is let
through unchecked: a session, a token or a CallSid that cannot be checked is not accepted.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from loguru import logger

RETRY_AFTER_S = 5
UNAVAILABLE = "the server's shared state cannot be reached now: try again shortly"


async def shared_state_unavailable(request: Request, error: Exception) -> Response:
    """The 503 answer for a :class:`SharedStateError` raised while handling ``request``."""
    logger.warning(f"{request.method} {request.url.path}: shared state unavailable ({error})")
    return JSONResponse(
        {"detail": UNAVAILABLE}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
    )
