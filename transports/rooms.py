"""Cloud WebRTC rooms: the bot joins a Daily or a LiveKit room instead of the built-in page.

Takes plain values (the bot passes them from settings); reads no configuration itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from livekit import api as livekit_api
from pipecat.transports.daily.transport import DailyParams, DailyTransport
from pipecat.transports.daily.utils import DailyRESTHelper, DailyRoomParams, DailyRoomProperties
from pipecat.transports.livekit.transport import LiveKitParams, LiveKitTransport

BOT_NAME = "callagent"


@dataclass(frozen=True)
class RoomJoin:
    """Where a person joins the call, and the bot's credentials for the same room.

    Parameters:
        url: The room URL (Daily) or server URL (LiveKit) a person opens.
        user_token: A token for the person (None when the room needs none).
        room: The room's name.
        bot_token: The bot's token.
    """

    url: str
    user_token: str | None
    room: str
    bot_token: str | None


async def create_daily_room(
    *, api_key: str, api_url: str, room_url: str, session: aiohttp.ClientSession
) -> RoomJoin:
    """Use ``room_url`` or create a short-lived Daily room, and mint tokens for it."""
    helper = DailyRESTHelper(daily_api_key=api_key, daily_api_url=api_url, aiohttp_session=session)
    if not room_url:
        room = await helper.create_room(DailyRoomParams(properties=DailyRoomProperties()))
        room_url = room.url
    name = helper.get_name_from_url(room_url)
    if not api_key:
        return RoomJoin(url=room_url, user_token=None, room=name, bot_token=None)
    bot_token = await helper.get_token(room_url, expiry_time=2 * 60 * 60)
    user_token = await helper.get_token(room_url, expiry_time=2 * 60 * 60, owner=False)
    return RoomJoin(url=room_url, user_token=user_token, room=name, bot_token=bot_token)


def create_daily_transport(join: RoomJoin, *, sample_rate: int = 16000) -> DailyTransport:
    """The bot's transport in a Daily room (audio only; dial-in capable rooms work the same)."""
    return DailyTransport(
        join.url,
        join.bot_token,
        BOT_NAME,
        DailyParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            audio_in_sample_rate=sample_rate,
            audio_out_sample_rate=sample_rate,
        ),
    )


def livekit_room(*, url: str, api_key: str, api_secret: str, room: str) -> RoomJoin:
    """Mint the person's and the bot's tokens for a LiveKit room."""

    def token(identity: str, *, agent: bool) -> str:
        grants = livekit_api.VideoGrants(room_join=True, room=room, agent=agent)
        return (
            livekit_api.AccessToken(api_key, api_secret)
            .with_identity(identity)
            .with_name(identity)
            .with_grants(grants)
            .to_jwt()
        )

    return RoomJoin(
        url=url,
        user_token=token("caller", agent=False),
        room=room,
        bot_token=token(BOT_NAME, agent=True),
    )


def create_livekit_transport(join: RoomJoin, *, sample_rate: int = 16000) -> LiveKitTransport:
    """The bot's transport in a LiveKit room."""
    assert join.bot_token is not None
    return LiveKitTransport(
        url=join.url,
        token=join.bot_token,
        room_name=join.room,
        params=LiveKitParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            audio_in_sample_rate=sample_rate,
            audio_out_sample_rate=sample_rate,
        ),
    )
