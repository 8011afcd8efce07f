"""A call in a Daily or LiveKit room: ``POST /api/rooms`` puts the bot in one.

The bot joins the room (Daily: one created through its API unless a room URL is set;
LiveKit: the configured room) and the response says how a person joins it. The call is
admitted like every call-starting route (``bot/web/admission.py``) and holds its slot
until it ends.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
from fastapi import APIRouter, HTTPException, Request

from bot.call.runtime import Runtime
from bot.call.transport import daily_call, livekit_call
from bot.client_address import ClientAddresses
from bot.settings import Settings
from bot.web.admission import Admission, CallSlot
from bot.web.call_manager import CallStarter
from transports import rooms


def create_rooms_router(
    settings: Settings,
    runtime: Runtime,
    *,
    admission: Admission,
    addresses: ClientAddresses,
    start_call: CallStarter,
    run_call: Callable[..., Coroutine[Any, Any, None]],
) -> APIRouter:
    """The room-call route.

    Args:
        settings: The server's settings (``CALLAGENT_TRANSPORT``, the Daily/LiveKit keys).
        runtime: The server's runtime.
        admission: The process's call cap and rates.
        addresses: Reads a request's client address.
        start_call: The server's ``CallManager.start``.
        run_call: Runs a call's pipeline (``bot.call.pipeline.run_call``).
    """
    router = APIRouter()

    @router.post("/api/rooms")
    async def start_room_call(request: Request) -> dict[str, Any]:
        """Put the bot in a Daily or LiveKit room and return how a person joins it."""
        if settings.transport not in ("daily", "livekit"):
            raise HTTPException(409, "CALLAGENT_TRANSPORT is webrtc: use the page at / instead.")
        slot = admission.acquire("rooms", addresses.of(request))
        try:
            return await _room_call(slot)
        except BaseException:
            slot.release()
            raise

    async def _room_call(slot: CallSlot) -> dict[str, Any]:
        if settings.transport == "daily":
            async with aiohttp.ClientSession() as session:
                join = await rooms.create_daily_room(
                    api_key=settings.daily_api_key,
                    api_url=settings.daily_api_url,
                    room_url=settings.daily_room_url,
                    session=session,
                )
            call = daily_call(join)
        else:
            join = rooms.livekit_room(
                url=settings.livekit_url,
                api_key=settings.livekit_api_key,
                api_secret=settings.livekit_api_secret,
                room=settings.livekit_room,
            )
            call = livekit_call(join)
        start_call(run_call(call.transport, call.spec, runtime), call.spec, slot)
        return {
            "url": join.url,
            "room": join.room,
            "token": join.user_token,
            "call_id": call.spec.call_id,
        }

    return router
