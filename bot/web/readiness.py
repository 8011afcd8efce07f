"""``GET /readyz``: whether this process takes calls now, and its load (for load balancers).

``/healthz`` is liveness (the process answers); ``/readyz`` is readiness: 200 while the
process admits calls and has a free slot, 503 when it is full or draining, so a load
balancer's health check stops sending it calls without killing it. Both answer without
credentials and carry no caller data. With a SIP trunk configured, ``sip`` says whether this
process serves the SIP port (``role``: ``serving``; ``standby`` under ``--workers N`` while a
sibling holds it), where it listens and its SIP calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from bot.web.admission import CAPACITY_RETRY_AFTER_S, Admission
from integrations.storage.workers import WorkerId


def create_readiness_router(
    admission: Admission,
    calls: Callable[[], int],
    *,
    sip: Callable[[], dict[str, Any] | None] | None = None,
) -> APIRouter:
    """The ``/readyz`` route.

    Args:
        admission: The process's admission (cap, slots held, draining).
        calls: Calls running now.
        sip: The SIP endpoint's status (``bot/web/sip_server.py``; None: SIP is off).
    """
    router = APIRouter()

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        """200 with the load while calls are taken; 503 (same body) when full or draining."""
        held, cap = admission.in_use, admission.max_calls
        draining = not admission.admitting
        ready = not draining and held < cap
        body: dict[str, Any] = {
            "ready": ready,
            "calls": calls(),
            "slots_in_use": held,
            "max_calls": cap,
            "draining": draining,
            "load": round(held / cap, 3) if cap else 1.0,
            "process": str(WorkerId.current()),  # which process answered (host:pid:token)
        }
        sip_status = sip() if sip is not None else None
        if sip_status is not None:
            body["sip"] = sip_status
        headers = {} if ready else {"Retry-After": str(CAPACITY_RETRY_AFTER_S)}
        return JSONResponse(body, status_code=200 if ready else 503, headers=headers)

    return router
