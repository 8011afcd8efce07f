"""JSON API over call records (operator token required).

Routes:
    GET /api/calls            calls, newest first: ?since=&until=&outcome=&intent=&transport=
                              &limit=(1-500, default 50)&offset=(0-2**31-1)
    GET /api/calls/stats      aggregates for the same filters (default window: the last 30 days)
    GET /api/calls/{call_id}  one call with every turn

``since`` and ``until`` take a duration ago (``30m``, ``24h``, ``7d``), a date or an
ISO datetime (UTC).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from loguru import logger

from bot.call.records import CallRecords
from bot.operator.auth import OperatorAuth
from integrations.storage import CallFilter, parse_time
from integrations.storage.queries import MAX_OFFSET, MAX_PAGE, OUTCOMES

DEFAULT_STATS_WINDOW = "30d"


def call_filter(
    since: str | None = None,
    until: str | None = None,
    outcome: str | None = None,
    intent: str | None = None,
    transport: str | None = None,
    *,
    default_since: str | None = None,
) -> CallFilter:
    """Build a filter from query parameters.

    Raises:
        HTTPException: 422 naming the bad parameter.
    """
    start = since or default_since
    since_at = _time_parameter("since", start)
    until_at = _time_parameter("until", until)
    if outcome and outcome not in OUTCOMES:
        raise HTTPException(422, f"outcome must be one of {', '.join(OUTCOMES)}")
    return CallFilter(
        since=since_at,
        until=until_at,
        outcome=outcome or None,
        intent=intent or None,
        transport=transport or None,
    )


def _time_parameter(name: str, value: str | None) -> datetime | None:
    """``parse_time`` for a query parameter; 422 naming it when the value is bad."""
    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError as e:
        raise HTTPException(422, f"{name}: {e}") from None


def create_calls_router(records: Callable[[], CallRecords | None], auth: OperatorAuth) -> APIRouter:
    """The ``/api/calls`` routes.

    Args:
        records: Returns the process's call records (None when recording is off).
        auth: The operator token check.
    """
    router = APIRouter(prefix="/api/calls", dependencies=[Depends(auth.require)])

    def store() -> Any:
        current = records()
        if current is None:
            raise HTTPException(503, "call records are not enabled on this server")
        return current.store

    @router.get("")
    async def list_calls(
        since: str | None = None,
        until: str | None = None,
        outcome: str | None = None,
        intent: str | None = None,
        transport: str | None = None,
        limit: int = Query(50, ge=1, le=MAX_PAGE),
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
    ) -> dict[str, Any]:
        """Calls matching the filters, newest first, one page at a time."""
        where = call_filter(since, until, outcome, intent, transport)
        return await _read(store().alist_calls(where, limit=limit, offset=offset))

    @router.get("/stats")
    async def call_stats(
        since: str | None = None,
        until: str | None = None,
        outcome: str | None = None,
        intent: str | None = None,
        transport: str | None = None,
    ) -> dict[str, Any]:
        """Aggregates: outcomes per day, rates, reasons, intents, confidence, latency."""
        where = call_filter(
            since, until, outcome, intent, transport, default_since=DEFAULT_STATS_WINDOW
        )
        return await _read(store().astats(where))

    @router.get("/{call_id}")
    async def get_call(call_id: str) -> dict[str, Any]:
        """One call with all its turns."""
        call = await _read(store().aget_call(call_id))
        if call is None:
            raise HTTPException(404, "no such call")
        return call

    return router


async def _read(awaitable: Any) -> Any:
    """Await a store read; a database failure is a 503, never a crash of the server."""
    try:
        return await awaitable
    except HTTPException:
        raise
    except Exception as e:  # noqa: BLE001
        logger.error(f"call records API: read failed ({type(e).__name__})")
        raise HTTPException(503, "the call-record database is unavailable") from None
